//! `cargo deploy shell ENV`: an interactive shell over an environment's
//! fleet, with rustyline.
//!
//! The shell keeps a selection (`cd @ROLE`, `cd HOST`, `cd ARTIFACT`,
//! `cd ..`, `cd /`) shown in its prompt, lists what is below it with each
//! host's current release (`ls`), and completes commands, roles, hosts,
//! artifacts and release ids. Everything else it runs is the command line
//! itself: `status`, `deploy …`, `rollback …`, `logs …`, `exec …` and
//! `prune` run this same binary with the environment and the selection
//! (`--only`) added, so whatever is typed here can be scripted; `run CMD`
//! is `exec` on the selection and `ssh HOST` is `exec -t` of a login shell
//! on one host. History is kept per environment in a private file.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use landfall::config::{Environment, Project};
use landfall::deploy::{self, Identity, Run};
use landfall::event::Event;
use landfall::{Error, plan};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Editor, Helper};

use crate::cli::ShellArgs;
use crate::commands::{self, Ctx, EXIT_FAILED, EXIT_OK};
use crate::render;

/// What the shell understands, for `help` and completion.
const COMMANDS: &[(&str, &str)] = &[
    (
        "cd",
        "cd @ROLE | HOST | ARTIFACT | .. | /   narrow or widen the selection",
    ),
    (
        "ls",
        "ls   what is below the selection, with each host's current release",
    ),
    (
        "run",
        "run CMD…   a command on the selected hosts, each line as it comes",
    ),
    ("ssh", "ssh HOST   an interactive session on one host"),
    (
        "status",
        "status   releases, services and orphans of the selected hosts",
    ),
    (
        "deploy",
        "deploy [--dry-run] […]   deploy to the selected hosts",
    ),
    (
        "rollback",
        "rollback [--to RELEASE] […]   switch the selected hosts back",
    ),
    (
        "logs",
        "logs [-f] [-n N]   the services' logs of the selected hosts",
    ),
    (
        "exec",
        "exec [--group] […] -- CMD…   as `cargo deploy exec`",
    ),
    ("prune", "prune   remove the orphans of the selected hosts"),
    ("help", "help   this list"),
    ("exit", "exit   leave (or Ctrl-D)"),
];

/// One step of the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Role(String),
    Host(String),
    Artifact(String),
}

impl Step {
    fn text(&self) -> String {
        match self {
            Step::Role(role) => format!("@{role}"),
            Step::Host(host) | Step::Artifact(host) => host.clone(),
        }
    }
}

/// The shell's state: the environment, the selection, and what completion
/// offers.
struct Shell<'a> {
    ctx: &'a Ctx<'a>,
    project: &'a Project,
    env: &'a Environment,
    local: bool,
    path: Vec<Step>,
    names: Arc<Mutex<Names>>,
}

/// What completion offers besides commands.
#[derive(Debug, Default)]
struct Names {
    roles: BTreeSet<String>,
    hosts: BTreeSet<String>,
    artifacts: BTreeSet<String>,
    releases: BTreeSet<String>,
}

pub(crate) fn run(ctx: &Ctx<'_>, args: &ShellArgs) -> u8 {
    // Ctrl-C belongs to the command that runs (a child, on this terminal):
    // the shell only notes it, and goes on. At the prompt it is a key.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGINT,
        Arc::new(AtomicBool::new(false)),
    );
    let (project, env) = match ctx.load(&args.env) {
        Ok(loaded) => loaded,
        Err(err) => return Ctx::fail(&err),
    };
    let names = Names {
        roles: env
            .hosts
            .iter()
            .flat_map(|h| h.roles.iter().cloned())
            .collect(),
        hosts: env.hosts.iter().map(|h| h.name.clone()).collect(),
        artifacts: project.artifacts.iter().map(|a| a.name.clone()).collect(),
        releases: BTreeSet::new(),
    };
    let mut shell = Shell {
        ctx,
        project: &project,
        env: &env,
        local: args.local,
        path: Vec::new(),
        names: Arc::new(Mutex::new(names)),
    };
    match shell.session() {
        Ok(()) => EXIT_OK,
        Err(err) => Ctx::fail(&err),
    }
}

impl Shell<'_> {
    fn session(&mut self) -> Result<(), Error> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .auto_add_history(false)
            .build();
        let mut editor: Editor<Completion, rustyline::history::FileHistory> =
            Editor::with_config(config)
                .map_err(|err| Error::Failed(format!("no terminal: {err}")))?;
        editor.set_helper(Some(Completion {
            names: Arc::clone(&self.names),
        }));
        let history = self.history_file()?;
        // A first session has no history yet.
        let _ = editor.load_history(&history);
        self.refresh_releases();
        eprintln!(
            "landfall shell on `{}`: `help` lists the commands, Tab completes, Ctrl-D leaves.",
            self.env.name
        );
        loop {
            let line = match editor.readline(&self.prompt()) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(err) => return Err(Error::Failed(format!("cannot read a line: {err}"))),
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let _ = editor.add_history_entry(line);
            save_history(&mut editor, &history);
            let Some(words) = shlex::split(line) else {
                render::error("unbalanced quotes");
                continue;
            };
            if matches!(words[0].as_str(), "exit" | "quit") {
                break;
            }
            if let Err(message) = self.command(&words) {
                render::error(&message);
            }
        }
        save_history(&mut editor, &history);
        Ok(())
    }

    /// `target/landfall/shell/ENV.history`, in a directory only its user
    /// may enter.
    fn history_file(&self) -> Result<PathBuf, Error> {
        let dir = self.project.workspace.private_dir("shell")?;
        Ok(dir.join(format!("{}.history", self.env.name)))
    }

    /// `prod @web/host2 (1 host)> `
    fn prompt(&self) -> String {
        let hosts = self.selected_hosts().len();
        let path: Vec<String> = self.path.iter().map(Step::text).collect();
        let path = if path.is_empty() {
            String::new()
        } else {
            format!(" {}", path.join("/"))
        };
        format!(
            "{}{path} ({hosts} host{})> ",
            self.env.name,
            if hosts == 1 { "" } else { "s" }
        )
    }

    /// The hosts the selection stands for, in name order.
    fn selected_hosts(&self) -> Vec<&str> {
        self.env
            .hosts
            .iter()
            .filter(|h| {
                self.path.iter().all(|step| match step {
                    Step::Role(role) => h.roles.contains(role),
                    Step::Host(host) => &h.name == host,
                    Step::Artifact(artifact) => self
                        .project
                        .artifact(artifact)
                        .is_some_and(|a| h.receives(a)),
                })
            })
            .map(|h| h.name.as_str())
            .collect()
    }

    fn artifact(&self) -> Option<&str> {
        self.path.iter().rev().find_map(|step| match step {
            Step::Artifact(artifact) => Some(artifact.as_str()),
            _ => None,
        })
    }

    /// `--only` for the selection: its host, or its role, or nothing.
    fn only(&self) -> Vec<String> {
        let host = self.path.iter().rev().find_map(|s| match s {
            Step::Host(h) => Some(h.clone()),
            _ => None,
        });
        let role = self.path.iter().rev().find_map(|s| match s {
            Step::Role(r) => Some(format!("@{r}")),
            _ => None,
        });
        match (host, role, self.artifact()) {
            (Some(host), _, _) => vec!["--only".into(), host],
            (None, Some(role), _) => vec!["--only".into(), role],
            // An artifact alone: the hosts that have it.
            (None, None, Some(_)) => self
                .selected_hosts()
                .into_iter()
                .flat_map(|h| ["--only".to_string(), h.to_string()])
                .collect(),
            (None, None, None) => Vec::new(),
        }
    }

    fn command(&mut self, words: &[String]) -> Result<(), String> {
        let rest = &words[1..];
        match words[0].as_str() {
            "help" => {
                for (_, usage) in COMMANDS {
                    println!("  {usage}");
                }
                Ok(())
            }
            "cd" => self.cd(rest),
            "ls" => {
                self.ls();
                Ok(())
            }
            "run" => {
                if rest.is_empty() {
                    return Err("run what? `run CMD…`".into());
                }
                if self.env.protect
                    && !commands::ask_yes(&format!(
                        "Run `{}` on {} of protected environment `{}`?",
                        rest.join(" "),
                        render::counted(self.selected_hosts().len() as u64, "host"),
                        self.env.name
                    ))
                {
                    return Err("not confirmed; nothing was run".into());
                }
                let mut args = vec!["exec".to_string(), self.env.name.clone()];
                args.extend(self.only());
                if let Some(artifact) = self.artifact() {
                    args.extend(["--artifact".to_string(), artifact.to_string()]);
                }
                args.push("--".into());
                args.extend(rest.iter().cloned());
                self.child(&args)
            }
            "ssh" => {
                let [host] = rest else {
                    return Err("ssh to which host? `ssh HOST`".into());
                };
                if self.env.host(host).is_none() {
                    return Err(format!("no host `{host}` in `{}`", self.env.name));
                }
                let args: Vec<String> = [
                    "exec",
                    &self.env.name,
                    "--only",
                    host,
                    "-t",
                    "--",
                    "sh",
                    "-c",
                    "exec \"${SHELL:-sh}\" -l",
                ]
                .iter()
                .map(ToString::to_string)
                .collect();
                self.child(&args)
            }
            command @ ("status" | "logs" | "prune" | "exec" | "deploy" | "rollback") => {
                let mut args = vec![command.to_string(), self.env.name.clone()];
                args.extend(self.only());
                args.extend(rest.iter().cloned());
                let result = self.child(&args);
                if matches!(command, "deploy" | "rollback") {
                    // New releases, for completion.
                    self.refresh_releases();
                }
                result
            }
            other => Err(format!("unknown command `{other}`: `help` lists them")),
        }
    }

    fn cd(&mut self, rest: &[String]) -> Result<(), String> {
        let target = match rest {
            [] => "/",
            [one] => one.as_str(),
            _ => return Err("cd to one place at a time".into()),
        };
        for part in target.split('/') {
            match part {
                "" if target.starts_with('/') => self.path.clear(),
                "" | "." => {}
                ".." => {
                    self.path.pop();
                }
                role if role.starts_with('@') => {
                    let role = &role[1..];
                    let found = self.env.hosts.iter().any(|h| {
                        h.roles.iter().any(|r| r == role)
                            && self.selected_hosts().contains(&h.name.as_str())
                    });
                    if !found {
                        return Err(format!("no selected host has role `{role}`"));
                    }
                    self.path.push(Step::Role(role.to_string()));
                }
                name if self.env.host(name).is_some() => {
                    if !self.selected_hosts().contains(&name) {
                        return Err(format!("`{name}` is not in the selection: `cd /` first"));
                    }
                    self.path.push(Step::Host(name.to_string()));
                }
                name if self.project.artifact(name).is_some() => {
                    self.path.push(Step::Artifact(name.to_string()));
                    if self.selected_hosts().is_empty() {
                        self.path.pop();
                        return Err(format!("no selected host has artifact `{name}`"));
                    }
                }
                other => {
                    return Err(format!(
                        "no role, host or artifact `{other}` in `{}`",
                        self.env.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// What is below the selection: each selected host with its roles, and
    /// each of its artifacts with its current release (read from the
    /// hosts).
    fn ls(&self) {
        let hosts: Vec<String> = self
            .selected_hosts()
            .into_iter()
            .map(str::to_string)
            .collect();
        let report = self.with_run(&hosts, deploy::status);
        let report = match report {
            Ok(report) => report,
            Err(err) => {
                render::error(&err.to_string());
                return;
            }
        };
        let width = hosts.iter().map(String::len).max().unwrap_or(0);
        for host in &hosts {
            let roles = self
                .env
                .host(host)
                .map(|h| h.roles.join(", "))
                .unwrap_or_default();
            println!("{host:width$}  @{roles}");
            for target in report.iter().filter(|t| &t.host == host) {
                if self.artifact().is_some_and(|a| a != target.artifact) {
                    continue;
                }
                let current = match (&target.error, &target.current) {
                    (Some(err), _) => format!("unreachable: {err}"),
                    (None, Some(current)) => current.clone(),
                    (None, None) => "not deployed".into(),
                };
                // What the host reported.
                let current = landfall::inert::inert(&current);
                println!("{:width$}    {:<12} {current}", "", target.artifact);
            }
        }
        self.note_releases(&report);
    }

    /// Reads the release ids on the hosts, for completion.
    fn refresh_releases(&self) {
        let hosts: Vec<String> = self.env.hosts.iter().map(|h| h.name.clone()).collect();
        if let Ok(report) = self.with_run(&hosts, deploy::status) {
            self.note_releases(&report);
        }
    }

    fn note_releases(&self, report: &[deploy::TargetStatus]) {
        let mut names = self.names.lock().expect("not poisoned");
        // A completion is shown as it is: only what has the shape of a
        // release id (hex digits) is offered, whatever a host listed.
        for target in report {
            names.releases.extend(
                target
                    .releases
                    .iter()
                    .filter(|r| !r.id.is_empty() && r.id.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|r| r.id.clone()),
            );
        }
    }

    /// Runs `f` with a run over `hosts` whose events are not shown (a
    /// warning aside).
    fn with_run<T>(
        &self,
        hosts: &[String],
        f: impl FnOnce(&Run<'_>, &plan::Plan) -> T,
    ) -> Result<T, Error> {
        let only: Vec<String> = hosts.to_vec();
        let secrets = landfall::secrets::Secrets::placeholders();
        let plan = plan::plan(self.project, self.env, &only, self.local, &secrets)?;
        let selected: Vec<&landfall::config::Host> = self
            .env
            .hosts
            .iter()
            .filter(|h| hosts.contains(&h.name))
            .collect();
        let transport =
            commands::transport(self.ctx, self.project, self.env, &selected, self.local)?;
        let identity = Identity::current(landfall::git::revision(&self.project.workspace.root));
        let report = |event: Event| {
            if let Event::Warning { .. } = event {
                self.ctx.printer.event(event);
            }
        };
        let run = Run {
            project: self.project,
            env: self.env,
            transport: transport.as_ref(),
            identity: &identity,
            jobs: self.env.jobs,
            events: &report,
        };
        Ok(f(&run, &plan))
    }

    /// Runs this binary with `args` (after the environment's `--local`, if
    /// the shell has it), on this terminal, and waits for it.
    fn child(&self, args: &[String]) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|err| format!("cannot find landfall: {err}"))?;
        let mut all = args.to_vec();
        if self.local {
            // Before a `--`, which ends the options.
            let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
            all.insert(at, "--local".into());
        }
        let mut command = std::process::Command::new(exe);
        command.arg("deploy").args(&all);
        let global = &self.ctx.global;
        if let Some(jobs) = global.jobs {
            command.arg(format!("--jobs={jobs}"));
        }
        let status = command
            .status()
            .map_err(|err| format!("cannot run landfall: {err}"))?;
        match status.code() {
            Some(code) if code == i32::from(EXIT_OK) => Ok(()),
            Some(code) if code == i32::from(EXIT_FAILED) => Ok(()),
            Some(code) => Err(format!("exit status {code}")),
            None => Ok(()),
        }
    }
}

fn save_history(editor: &mut Editor<Completion, rustyline::history::FileHistory>, file: &PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    if editor.save_history(file).is_ok() {
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}

/// Tab completion: commands first, then what each command takes.
struct Completion {
    names: Arc<Mutex<Names>>,
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let line = &line[..pos];
        let start = line.rfind(' ').map_or(0, |i| i + 1);
        let word = &line[start..];
        let before: Vec<&str> = line[..start].split_whitespace().collect();
        let names = self.names.lock().expect("not poisoned");
        let offered: Vec<String> = match before.as_slice() {
            [] => COMMANDS.iter().map(|(c, _)| (*c).to_string()).collect(),
            ["cd", ..] => {
                let mut all = vec!["..".to_string(), "/".to_string()];
                all.extend(names.roles.iter().map(|r| format!("@{r}")));
                all.extend(names.hosts.iter().cloned());
                all.extend(names.artifacts.iter().cloned());
                all
            }
            ["ssh", ..] => names.hosts.iter().cloned().collect(),
            [.., "--to"] => names.releases.iter().cloned().collect(),
            [.., "--only"] => names
                .hosts
                .iter()
                .cloned()
                .chain(names.roles.iter().map(|r| format!("@{r}")))
                .collect(),
            [.., "--artifact"] => names.artifacts.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Ok((
            start,
            offered
                .into_iter()
                .filter(|o| o.starts_with(word))
                .collect(),
        ))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for Completion {}

impl Helper for Completion {}
