//! `cargo deploy shell ENV`: an interactive shell over an environment's
//! fleet, with rustyline.
//!
//! The shell keeps a selection (`cd @ROLE`, `cd HOST`, `cd ARTIFACT`,
//! `cd ..`, `cd /`) shown in its prompt, lists what is below it with each
//! host's current release (`ls`), and completes commands, their options,
//! roles, hosts, artifacts and release ids. Everything else it runs is the
//! command line itself: a line is the words typed after `cargo deploy`,
//! with the environment, the selection (`--only`, and `--artifact` where
//! the command takes one) and the shell's own options added ([`COMMANDS`]
//! says where each goes), parsed by the command line's parser and run as
//! this same binary, so whatever is typed here can be scripted. `deploy`
//! is `cargo deploy ENV`; `shell`, `init` and `completions` are refused
//! with the reason. `run CMD` is `exec` on the selection and `ssh HOST` is
//! `exec -t` of a login shell on one host. History is kept per environment
//! in a private file.
//!
//! The terminal is the shell's between commands: a command that asks
//! nothing gets an empty standard input, and rustyline keeps what it read
//! past a line, so a line typed while a command runs is the next prompt's.
//! This module does no work on hosts itself but `ls` and the release ids
//! completion offers.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use clap::{CommandFactory as _, Parser as _};
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

use crate::cli::{Cli, Color, Command, Global, MessageFormat, SecretsCommand, ShellArgs};
use crate::commands::{self, Ctx, EXIT_FAILED, EXIT_OK};
use crate::render;

/// What the shell understands: its own commands, and the command line's,
/// for running a line, `help` and completion. Every command of the
/// command line has an entry (a test holds it to that).
const COMMANDS: &[Entry] = &[
    Entry {
        name: "cd",
        usage: "cd @ROLE | HOST | ARTIFACT | .. | /   narrow or widen the selection",
        runs: Runs::Own,
    },
    Entry {
        name: "ls",
        usage: "ls   what is below the selection, with each host's current release",
        runs: Runs::Own,
    },
    Entry {
        name: "run",
        usage: "run CMD…   a command on the selected hosts, each line as it comes",
        runs: Runs::Own,
    },
    Entry {
        name: "ssh",
        usage: "ssh HOST   an interactive session on one host",
        runs: Runs::Own,
    },
    Entry {
        name: "status",
        usage: "status   releases, services and orphans of the selected hosts",
        runs: Runs::Passed(Passed::fleet("status", Selection::Hosts)),
    },
    Entry {
        name: "deploy",
        usage: "deploy [--dry-run] [--force] […]   deploy to the selected hosts (and artifact)",
        runs: Runs::Passed(Passed {
            // `cargo deploy ENV`: a deploy is the command line without a
            // subcommand.
            subcommand: None,
            ..Passed::fleet("", Selection::HostsAndArtifact)
        }),
    },
    Entry {
        name: "rollback",
        usage: "rollback [--to DEPLOY|RELEASE|COMMIT] […]   switch the selected hosts back",
        runs: Runs::Passed(Passed::fleet("rollback", Selection::HostsOnly)),
    },
    Entry {
        name: "logs",
        usage: "logs [-f] [-n N] [--all-releases]   the services' logs of the selected hosts",
        runs: Runs::Passed(Passed::fleet("logs", Selection::Hosts)),
    },
    Entry {
        name: "exec",
        usage: "exec [--group] [--stdin] [-t] -- CMD…   as `cargo deploy exec`, on the selection",
        runs: Runs::Passed(EXEC),
    },
    Entry {
        name: "prune",
        usage: "prune [--yes]   remove the orphans of the selected hosts",
        runs: Runs::Passed(Passed::fleet("prune", Selection::HostsOnly)),
    },
    Entry {
        name: "build",
        usage: "build [--out DIR] […]   build and assemble for the selection, change no host",
        runs: Runs::Passed(Passed::render("build", Selection::HostsAndArtifact)),
    },
    Entry {
        name: "config",
        usage: "config [--annotate]   the variables each selected host sees",
        runs: Runs::Passed(Passed::render("config", Selection::Hosts)),
    },
    Entry {
        name: "check",
        usage: "check   validate the configuration and templates of the environment",
        runs: Runs::Passed(Passed::render("check", Selection::Hosts)),
    },
    Entry {
        name: "secrets",
        usage: "secrets edit | set NAME | show [KEY] | recipients [--rekey]   the environment's secrets",
        runs: Runs::Passed(Passed {
            subcommand: Some("secrets"),
            typed_before_env: 1,
            local: false,
            selection: Selection::None,
        }),
    },
    Entry {
        name: "help",
        usage: "help   this list",
        runs: Runs::Own,
    },
    Entry {
        name: "exit",
        usage: "exit   leave (or Ctrl-D)",
        runs: Runs::Own,
    },
    Entry {
        name: "shell",
        usage: "",
        runs: Runs::Refused(
            "this is the shell already: `exit` first to open another environment's",
        ),
    },
    Entry {
        name: "init",
        usage: "",
        runs: Runs::Refused(
            "`init` writes a workspace's files: run `cargo deploy init` outside the shell",
        ),
    },
    Entry {
        name: "completions",
        usage: "",
        runs: Runs::Refused(
            "`completions` are for your login shell: run `cargo deploy completions SHELL` outside; here Tab completes",
        ),
    },
];

/// `exec`, which `run` is on the selection.
const EXEC: Passed = Passed::fleet("exec", Selection::HostsAndArtifact);

/// A word the shell knows, and how it runs a line that starts with it.
struct Entry {
    name: &'static str,
    /// Its line in `help`; none for a command refused here.
    usage: &'static str,
    runs: Runs,
}

#[derive(Debug, Clone, Copy)]
enum Runs {
    /// The shell's own (`cd`, `ls`, `help`, `exit`), or its shorthand for
    /// `exec` (`run`, `ssh`).
    Own,
    /// A command of the command line, run as this binary with the
    /// environment and the selection added.
    Passed(Passed),
    /// A command of the command line that means nothing over an
    /// environment: why, in one line.
    Refused(&'static str),
}

/// How a line becomes the words after `cargo deploy`: the subcommand, the
/// words typed before the environment (`secrets show`'s `show`), the
/// environment, the selection, `--local`, the shell's own options, then
/// the rest of the line as typed. The selection and the options come
/// before whatever was typed, so before a `--` that ends the options.
#[derive(Debug, Clone, Copy)]
struct Passed {
    subcommand: Option<&'static str>,
    typed_before_env: usize,
    /// Whether it takes `--local` (it works on the hosts or their local
    /// directories).
    local: bool,
    selection: Selection,
}

impl Passed {
    /// A command that works on the hosts, or their local directories.
    const fn fleet(subcommand: &'static str, selection: Selection) -> Passed {
        Passed {
            subcommand: Some(subcommand),
            typed_before_env: 0,
            local: true,
            selection,
        }
    }

    /// A command that renders for the hosts and contacts none.
    const fn render(subcommand: &'static str, selection: Selection) -> Passed {
        Passed {
            local: false,
            ..Passed::fleet(subcommand, selection)
        }
    }
}

/// What of the selection a command is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// Nothing: it is about the environment as a whole.
    None,
    /// Its hosts (`--only`); a selected artifact stands for the hosts that
    /// have it, and the command covers their other artifacts too.
    Hosts,
    /// Its hosts, and its artifact (`--artifact`), if one is selected.
    HostsAndArtifact,
    /// Its hosts; it is refused under a selected artifact, as it would
    /// change the hosts' other artifacts too.
    HostsOnly,
}

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

    /// `--only` for the selection: nothing for the whole environment, its
    /// role for one role, and otherwise each selected host by name (a
    /// role and an artifact, or two roles, select fewer hosts than either
    /// `--only` alone would).
    fn only(&self) -> Vec<String> {
        match self.path.as_slice() {
            [] => Vec::new(),
            [Step::Role(role)] => vec!["--only".into(), format!("@{role}")],
            _ => self
                .selected_hosts()
                .into_iter()
                .flat_map(|h| ["--only".to_string(), h.to_string()])
                .collect(),
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            env: &self.env.name,
            only: self.only(),
            artifact: self.artifact(),
            local: self.local,
            global: self.ctx.global,
        }
    }

    fn command(&mut self, words: &[String]) -> Result<(), String> {
        let rest = &words[1..];
        let Some(entry) = COMMANDS.iter().find(|e| e.name == words[0]) else {
            return Err(format!("unknown command `{}`: `help` lists them", words[0]));
        };
        match (entry.runs, entry.name) {
            (Runs::Refused(why), _) => Err(why.to_string()),
            (Runs::Passed(passed), name) => {
                let argv = argv(passed, rest, &self.scope())?;
                let result = self.child(&argv);
                if matches!(name, "deploy" | "rollback") {
                    // New releases, for completion.
                    self.refresh_releases();
                }
                result
            }
            (Runs::Own, "help") => {
                for entry in COMMANDS.iter().filter(|e| !e.usage.is_empty()) {
                    println!("  {}", entry.usage);
                }
                let refused: Vec<&str> = COMMANDS
                    .iter()
                    .filter(|e| matches!(e.runs, Runs::Refused(_)))
                    .map(|e| e.name)
                    .collect();
                println!(
                    "  (not here: {}; run them outside the shell)",
                    refused.join(", ")
                );
                Ok(())
            }
            (Runs::Own, "cd") => self.cd(rest),
            (Runs::Own, "ls") => {
                self.ls();
                Ok(())
            }
            (Runs::Own, "run") => {
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
                let mut typed = vec!["--".to_string()];
                typed.extend(rest.iter().cloned());
                let argv = argv(EXEC, &typed, &self.scope())?;
                self.child(&argv)
            }
            (Runs::Own, "ssh") => {
                let [host] = rest else {
                    return Err("ssh to which host? `ssh HOST`".into());
                };
                if self.env.host(host).is_none() {
                    return Err(format!("no host `{host}` in `{}`", self.env.name));
                }
                // One host, whatever the selection.
                let mut argv: Vec<String> = vec!["exec".into(), self.env.name.clone()];
                argv.extend(["--only".into(), host.clone()]);
                if self.local {
                    argv.push("--local".into());
                }
                argv.extend(inherited(self.ctx.global, &[]));
                argv.extend(
                    ["-t", "--", "sh", "-c", "exec \"${SHELL:-sh}\" -l"].map(str::to_string),
                );
                self.child(&argv)
            }
            (Runs::Own, _) => unreachable!("`exit` ends the session before a command runs"),
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
            cancel: self.ctx.cancel,
        };
        Ok(f(&run, &plan))
    }

    /// Runs this binary with `argv` (the words after `cargo deploy`), on
    /// this terminal, and waits for it.
    ///
    /// The line is parsed here first, by the command line's own parser:
    /// what it refuses is said without starting anything, and what it
    /// accepts says whether the command is one to talk to (a session on a
    /// host, an editor, a confirmation it will ask for). Only such a
    /// command reads the terminal; any other gets an empty standard input,
    /// so that what is typed while it runs stays for the next prompt.
    fn child(&self, argv: &[String]) -> Result<(), String> {
        let cli = match Cli::try_parse_from(
            std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str)),
        ) {
            Ok(cli) => cli,
            Err(err) => {
                // Its usage, or its help (`deploy --help`).
                let _ = err.print();
                return Ok(());
            }
        };
        let exe = std::env::current_exe().map_err(|err| format!("cannot find landfall: {err}"))?;
        let mut command = std::process::Command::new(exe);
        // As cargo runs it for `cargo deploy …`.
        command.arg("deploy").args(argv);
        if !talks(&cli, self.env) {
            command.stdin(std::process::Stdio::null());
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

/// Whether the command `cli` stands for reads the terminal: a session on
/// a host (`exec -t`), `exec --stdin`, an editor (`secrets edit`), a
/// value typed in (`secrets set`), or a
/// confirmation (a deploy or rollback of a protected environment, a prune,
/// without `--yes`).
fn talks(cli: &Cli, env: &Environment) -> bool {
    match &cli.command {
        None => env.protect && !cli.deploy.yes && !cli.deploy.dry_run,
        Some(Command::Rollback(args)) => env.protect && !args.yes,
        Some(Command::Prune(args)) => !args.yes,
        Some(Command::Exec(args)) => args.tty || args.stdin,
        Some(Command::Secrets(SecretsCommand::Edit(_) | SecretsCommand::Set(_))) => true,
        Some(
            Command::Build(_)
            | Command::Status(_)
            | Command::Check(_)
            | Command::Logs(_)
            | Command::Config(_)
            | Command::Shell(_)
            | Command::Secrets(SecretsCommand::Show(_) | SecretsCommand::Recipients(_))
            | Command::Init(_)
            | Command::Completions(_),
        ) => false,
    }
}

/// Where a line of the command line runs: the environment, the selection
/// and the shell's own options.
struct Scope<'a> {
    env: &'a str,
    /// `--only` for the selection.
    only: Vec<String>,
    artifact: Option<&'a str>,
    local: bool,
    global: &'a Global,
}

/// The words after `cargo deploy` for a line of the command line's
/// `passed` command, of which `typed` is what followed its name, run over
/// `scope`.
fn argv(passed: Passed, typed: &[String], scope: &Scope<'_>) -> Result<Vec<String>, String> {
    let options: Vec<&str> = typed
        .iter()
        .map(String::as_str)
        .take_while(|w| *w != "--")
        .collect();
    let given = |long: &str| {
        options.iter().any(|w| {
            w.strip_prefix(long)
                .is_some_and(|v| v.is_empty() || v.starts_with('='))
        })
    };
    if passed.selection != Selection::None && given("--only") {
        return Err("the selection is the `--only` here: `cd HOST` or `cd @ROLE` instead".into());
    }
    let artifact = scope.artifact;
    if let Some(artifact) = artifact {
        match passed.selection {
            Selection::HostsAndArtifact if given("--artifact") => {
                return Err(format!(
                    "the selection names the artifact, `{artifact}`: `cd ..` to name another"
                ));
            }
            Selection::HostsOnly => {
                return Err(format!(
                    "it would change every artifact of the selected hosts, not only `{artifact}`: `cd ..` first"
                ));
            }
            _ => {}
        }
    }
    let mut argv: Vec<String> = passed.subcommand.iter().map(ToString::to_string).collect();
    // `secrets` alone, or with an option such as `--help`, has no
    // subcommand to put the environment after.
    let before_env = passed.typed_before_env;
    let has_subcommand =
        typed.len() >= before_env && typed[..before_env].iter().all(|w| !w.starts_with('-'));
    if !has_subcommand {
        argv.extend(typed.iter().cloned());
        return Ok(argv);
    }
    argv.extend(typed[..before_env].iter().cloned());
    argv.push(scope.env.to_string());
    if passed.selection != Selection::None {
        argv.extend(scope.only.iter().cloned());
    }
    if passed.selection == Selection::HostsAndArtifact
        && let Some(artifact) = artifact
    {
        argv.extend(["--artifact".to_string(), artifact.to_string()]);
    }
    if passed.local && scope.local && !given("--local") {
        argv.push("--local".into());
    }
    argv.extend(inherited(scope.global, &options));
    argv.extend(typed[before_env..].iter().cloned());
    Ok(argv)
}

/// The options the shell was started with (`global`), for a command it
/// runs, but those of them in `typed` (the options of the line), which
/// win.
fn inherited(global: &Global, typed: &[&str]) -> Vec<String> {
    let given = |names: &[&str]| {
        typed.iter().any(|w| {
            names.iter().any(|name| {
                *w == *name
                    || w.strip_prefix(name)
                        .is_some_and(|v| v.starts_with('=') || !name.starts_with("--"))
            })
        })
    };
    let mut options = Vec::new();
    if let Some(jobs) = global.jobs.filter(|_| !given(&["--jobs", "-j"])) {
        options.push(format!("--jobs={jobs}"));
    }
    if global.no_persist && !given(&["--no-persist"]) {
        options.push("--no-persist".into());
    }
    options.extend(global.vars.iter().map(|var| format!("--var={var}")));
    if let Some(path) = global
        .manifest_path
        .as_ref()
        .filter(|_| !given(&["--manifest-path"]))
    {
        options.push(format!("--manifest-path={}", path.display()));
    }
    if !given(&["--verbose", "-v", "--quiet", "-q"]) {
        if global.verbose {
            options.push("--verbose".into());
        }
        if global.quiet {
            options.push("--quiet".into());
        }
    }
    if global.color != Color::Auto && !given(&["--color"]) {
        let color = if global.color == Color::Always {
            "always"
        } else {
            "never"
        };
        options.push(format!("--color={color}"));
    }
    if global.message_format == MessageFormat::Json && !given(&["--message-format"]) {
        options.push("--message-format=json".into());
    }
    options
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
            [] => COMMANDS
                .iter()
                .filter(|e| !matches!(e.runs, Runs::Refused(_)))
                .map(|e| e.name.to_string())
                .collect(),
            ["secrets"] => ["edit", "set", "show", "recipients"]
                .map(str::to_string)
                .to_vec(),
            [command, ..] if word.starts_with('-') && !before.contains(&"--") => {
                options(&before[..before.len().min(if *command == "secrets" { 2 } else { 1 })])
            }
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

/// The long options of the command of the command line that `words` name
/// (`deploy`, `status`, `secrets show` …) but those the shell adds itself.
fn options(words: &[&str]) -> Vec<String> {
    let mut command = Cli::command();
    // Global options reach the subcommands when the command is built.
    command.build();
    for word in words.iter().filter(|w| **w != "deploy") {
        match command.find_subcommand(word) {
            Some(sub) => command = sub.clone(),
            None => return Vec::new(),
        }
    }
    command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(clap::Arg::get_long)
        .filter(|long| !matches!(*long, "only" | "local"))
        .map(|long| format!("--{long}"))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> Global {
        Global {
            only: Vec::new(),
            jobs: Some(3),
            message_format: MessageFormat::Human,
            verbose: false,
            quiet: false,
            color: Color::Auto,
            vars: vec!["port=1".into()],
            manifest_path: None,
            no_persist: true,
        }
    }

    fn passed(name: &str) -> Passed {
        match COMMANDS.iter().find(|e| e.name == name).map(|e| e.runs) {
            Some(Runs::Passed(passed)) => passed,
            other => panic!("`{name}` is not passed on: {other:?}"),
        }
    }

    /// The words after `cargo deploy` for `line` typed under `only` and
    /// `artifact` in a shell on `prod --local`.
    fn line(line: &str, only: &[&str], artifact: Option<&str>) -> Result<Vec<String>, String> {
        let global = global();
        let scope = Scope {
            env: "prod",
            only: only.iter().map(ToString::to_string).collect(),
            artifact,
            local: true,
            global: &global,
        };
        let words = shlex::split(line).unwrap();
        argv(passed(&words[0]), &words[1..], &scope)
    }

    /// The subcommand the command line makes of `argv`, and its matches.
    fn parse(argv: &[String]) -> (Option<String>, clap::ArgMatches) {
        let words = std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str));
        let matches = Cli::command()
            .try_get_matches_from(words)
            .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
        let mut name = matches.subcommand_name().map(str::to_string);
        if let Some(("secrets", sub)) = matches.subcommand() {
            name = sub.subcommand_name().map(|s| format!("secrets {s}"));
        }
        (name, matches)
    }

    /// Every command of the command line is run by the shell or refused
    /// with a reason, and `help` and completion offer only those it runs.
    #[test]
    fn every_command_of_the_command_line_has_a_place_in_the_shell() {
        for sub in Cli::command().get_subcommands() {
            let entry = COMMANDS.iter().find(|e| e.name == sub.get_name());
            match entry.map(|e| (e.runs, e.usage)) {
                Some((Runs::Passed(_), usage)) => assert!(usage.starts_with(sub.get_name())),
                Some((Runs::Refused(why), "")) => assert!(!why.is_empty()),
                other => panic!("`{}`: {other:?}", sub.get_name()),
            }
        }
        // A deploy is the command line without a subcommand.
        assert_eq!(passed("deploy").subcommand, None);
    }

    /// Each command the shell passes on parses as that command, with the
    /// environment, the selection and the shell's options.
    #[test]
    fn each_line_is_the_command_with_the_environment_and_the_selection() {
        for (typed, want) in [
            ("deploy --dry-run", None),
            ("status", Some("status")),
            ("rollback --to 1f", Some("rollback")),
            ("logs -n 3", Some("logs")),
            ("exec -- sh -c 'echo --only'", Some("exec")),
            ("prune --yes", Some("prune")),
            ("build", Some("build")),
            ("config --annotate", Some("config")),
            ("check", Some("check")),
            ("secrets show db.password", Some("secrets show")),
            ("secrets recipients", Some("secrets recipients")),
            ("secrets edit", Some("secrets edit")),
        ] {
            let argv = line(typed, &["--only", "@web"], None).unwrap();
            let (name, matches) = parse(&argv);
            assert_eq!(name.as_deref(), want, "{typed}: {argv:?}");
            let cli = Cli::try_parse_from(
                std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str)),
            )
            .unwrap();
            let global = cli.global();
            assert_eq!(global.jobs, Some(3), "{argv:?}");
            assert!(global.no_persist, "{argv:?}");
            assert_eq!(global.vars, ["port=1"], "{argv:?}");
            let sub = matches.subcommand().map_or(&matches, |(_, m)| m);
            let env = match sub.subcommand() {
                Some((_, secrets)) => secrets.get_one::<String>("env"),
                None => sub.get_one::<String>("env"),
            };
            assert_eq!(env.map(String::as_str), Some("prod"), "{argv:?}");
            if !typed.starts_with("secrets") {
                assert_eq!(global.only, ["@web"], "{argv:?}");
            }
        }
        // `--local`, where the command takes it.
        let argv = line("deploy", &[], None).unwrap();
        assert_eq!(argv[..2], ["prod", "--local"]);
        let argv = line("config", &[], None).unwrap();
        assert!(!argv.contains(&"--local".to_string()), "{argv:?}");
        // The command's own words after `--` are its own.
        let argv = line("exec -- echo --only x", &[], None).unwrap();
        assert_eq!(argv[argv.len() - 4..], ["--", "echo", "--only", "x"]);
    }

    /// A selected artifact is the `--artifact` of what takes one, is
    /// refused by what would change the hosts' other artifacts, and a
    /// typed `--only` is refused: the selection is the shell's `--only`.
    #[test]
    fn the_selection_is_given_once_and_only_where_it_means_what_it_says() {
        let only = ["--only", "host2"];
        for typed in ["deploy", "exec -- pwd", "build"] {
            let argv = line(typed, &only, Some("app")).unwrap();
            let cli = Cli::try_parse_from(
                std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str)),
            )
            .unwrap();
            let artifacts = match &cli.command {
                None => cli.deploy.artifacts.clone(),
                Some(Command::Exec(exec)) => exec.target.artifacts.clone(),
                Some(Command::Build(build)) => build.artifacts.clone(),
                Some(other) => panic!("{other:?}"),
            };
            assert_eq!(artifacts, ["app"], "{typed}");
        }
        for typed in ["rollback", "prune"] {
            let err = line(typed, &only, Some("app")).unwrap_err();
            assert!(err.contains("every artifact"), "{err}");
        }
        let err = line("deploy --artifact site", &only, Some("app")).unwrap_err();
        assert!(err.contains("names the artifact"), "{err}");
        let err = line("status --only host1", &only, None).unwrap_err();
        assert!(err.contains("`cd HOST`"), "{err}");
        // Options the line gives win over the shell's.
        let argv = line("status --jobs 1 -v", &[], None).unwrap();
        assert!(!argv.iter().any(|w| w.starts_with("--jobs=")), "{argv:?}");
        parse(&argv);
        // `secrets` without its subcommand is left to the command line.
        assert_eq!(
            line("secrets --help", &[], None).unwrap(),
            ["secrets", "--help"]
        );
    }

    /// Completion offers the commands the shell runs, each command's own
    /// options but those the shell adds, and `secrets`' subcommands.
    #[test]
    fn completion_offers_what_the_shell_runs() {
        let completion = Completion {
            names: Arc::new(Mutex::new(Names::default())),
        };
        let history = rustyline::history::MemHistory::new();
        let ctx = rustyline::Context::new(&history);
        let complete = |line: &str| completion.complete(line, line.len(), &ctx).unwrap().1;
        let commands = complete("");
        for name in [
            "deploy", "status", "build", "config", "check", "secrets", "cd", "run",
        ] {
            assert!(commands.iter().any(|c| c == name), "{commands:?}");
        }
        for name in ["shell", "init", "completions"] {
            assert!(!commands.iter().any(|c| c == name), "{commands:?}");
        }
        assert_eq!(complete("secrets s"), ["set", "show"]);
        let options = complete("deploy --");
        assert!(options.iter().any(|o| o == "--dry-run"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "--only" || o == "--local"),
            "{options:?}"
        );
        assert_eq!(complete("rollback --t"), ["--to"]);
        assert_eq!(complete("secrets recipients --r"), ["--rekey"]);
        assert!(complete("exec -- ls --").is_empty());
    }
}
