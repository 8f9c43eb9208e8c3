//! `cargo deploy`: parse the command line, call the library, render its
//! events and map the outcome to an exit status.

mod cli;
mod commands;
mod frontend;
mod json;
mod live;
mod render;
mod secrets;
mod shell;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Color, Command, MessageFormat};
use commands::Ctx;
use render::Printer;

fn main() -> ExitCode {
    // Cargo runs `cargo-deploy deploy ARGS…` for `cargo deploy ARGS…`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "deploy") {
        args.remove(1);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                commands::EXIT_USAGE
            } else {
                commands::EXIT_OK
            });
        }
    };
    let global = cli.global();
    match global.color {
        Color::Always => anstream::ColorChoice::Always.write_global(),
        Color::Never => anstream::ColorChoice::Never.write_global(),
        Color::Auto => {}
    }
    render::json_errors(global.message_format == MessageFormat::Json);
    let printer = Printer::new(global.message_format, global.quiet, global.verbose);
    let cancel = landfall::interrupt::Cancel::default();
    let ctx = Ctx {
        global: &global,
        printer: &printer,
        cancel: &cancel,
    };
    // The fleet's commands settle on a first signal and end on a second;
    // `secrets edit` handles signals its own way (its editor gets them too).
    // The shell leaves Ctrl-C to the commands it runs.
    if !matches!(cli.command, Some(Command::Secrets(_) | Command::Shell(_))) {
        signals::listen(cancel.clone());
    }
    let code = match &cli.command {
        None => commands::deploy(&ctx, &cli.deploy),
        Some(Command::Build(args)) => commands::build(&ctx, args),
        Some(Command::Status(args)) => commands::status(&ctx, args),
        Some(Command::Rollback(args)) => commands::rollback(&ctx, args),
        Some(Command::Promote(args)) => commands::promote(&ctx, args),
        Some(Command::Abort(args)) => commands::abort(&ctx, args),
        Some(Command::Check(args)) => commands::check(&ctx, args),
        Some(Command::Exec(args)) => commands::exec(&ctx, args),
        Some(Command::Logs(args)) => commands::logs(&ctx, args),
        Some(Command::Config(args)) => commands::config(&ctx, args),
        Some(Command::Prune(args)) => commands::prune(&ctx, args),
        Some(Command::Shell(args)) => shell::run(&ctx, args),
        Some(Command::Secrets(command)) => secrets::run(&ctx, command),
        Some(Command::Completions(args)) => {
            cli::completions(args.shell, &mut std::io::stdout());
            commands::EXIT_OK
        }
        Some(Command::Init(args)) => match &args.sudoers {
            Some(env) => commands::sudoers(&ctx, env),
            None => commands::init(&ctx),
        },
    };
    match signals::received() {
        Some(signal) => ExitCode::from(signals::exit_status(signal)),
        None => ExitCode::from(code),
    }
}
