//! A line of the command line run as this binary, on this terminal: parsed
//! first by the command line's own parser, and given the terminal only if
//! the command talks to the person; any other gets an empty standard
//! input, so that what is typed while it runs stays for the next prompt.

use clap::Parser as _;
use landfall::config::Environment;

use super::Shell;
use crate::cli::{Cli, Command, SecretsCommand};
use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_WAITING};

impl Shell<'_> {
    /// Runs this binary with `argv` (the words after `cargo deploy`), on
    /// this terminal, and waits for it.
    ///
    /// The line is parsed here first, by the command line's own parser:
    /// what it refuses is said without starting anything, and what it
    /// accepts says whether the command is one to talk to (a session on a
    /// host, an editor, a confirmation it will ask for). Only such a
    /// command reads the terminal; any other gets an empty standard input,
    /// so that what is typed while it runs stays for the next prompt.
    pub(super) fn child(&self, argv: &[String]) -> Result<(), String> {
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
            // The summary says the rollout waits, and what goes on.
            Some(code) if code == i32::from(EXIT_WAITING) => Ok(()),
            Some(code) => Err(format!("exit status {code}")),
            None => Ok(()),
        }
    }
}

/// Whether the command `cli` stands for reads the terminal: a session on
/// a host (`exec -t`), `exec --stdin`, an editor (`secrets edit`), a
/// value typed in (`secrets set`), or a
/// confirmation (a deploy, promotion, abort or rollback of a protected
/// environment, a prune, without `--yes`).
fn talks(cli: &Cli, env: &Environment) -> bool {
    match &cli.command {
        None => env.protect && !cli.deploy.yes && !cli.deploy.dry_run,
        Some(Command::Rollback(args)) => env.protect && !args.yes,
        Some(Command::Promote(args)) => env.protect && !args.yes,
        Some(Command::Abort(args)) => env.protect && !args.yes,
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
