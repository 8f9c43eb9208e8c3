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
//!
//! A module per part: [`line`](mod@line) (the table of what the shell understands,
//! [`COMMANDS`], and the words after `cargo deploy` a line becomes),
//! [`selection`] (`cd`, and the hosts and artifact the selection stands
//! for), [`child`] (a line run as this binary, on this terminal),
//! [`hosts`] (`ls`, and the release ids completion offers, read from the
//! hosts) and [`completion`].

mod child;
mod completion;
mod hosts;
mod line;
mod selection;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use landfall::Error;
use landfall::config::{Environment, Project};
use rustyline::error::ReadlineError;
use rustyline::{CompletionType, Config, Editor};

use completion::{Completion, Names};
use line::{COMMANDS, EXEC, Runs, argv, ssh_argv};
use selection::Step;

use crate::cli::ShellArgs;
use crate::commands::{self, Ctx, EXIT_OK};
use crate::render;

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

    /// Runs a line (its `words`), of the shell's own or of the command
    /// line.
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
                help();
                Ok(())
            }
            (Runs::Own, "cd") => self.cd(rest),
            (Runs::Own, "ls") => {
                self.ls();
                Ok(())
            }
            (Runs::Own, "run") => self.run_on_selection(rest),
            (Runs::Own, "ssh") => {
                let [host] = rest else {
                    return Err("ssh to which host? `ssh HOST`".into());
                };
                if self.env.host(host).is_none() {
                    return Err(format!("no host `{host}` in `{}`", self.env.name));
                }
                self.child(&ssh_argv(&self.env.name, host, self.local, self.ctx.global))
            }
            (Runs::Own, _) => unreachable!("`exit` ends the session before a command runs"),
        }
    }

    /// `run CMD…`: `exec` of the command on the selection, confirmed first
    /// in a protected environment.
    fn run_on_selection(&self, rest: &[String]) -> Result<(), String> {
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
}

/// `help`: the usage of every command the shell runs, and those it
/// refuses.
fn help() {
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
}

fn save_history(editor: &mut Editor<Completion, rustyline::history::FileHistory>, file: &PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    if editor.save_history(file).is_ok() {
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}
