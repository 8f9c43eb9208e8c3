//! The commands: each maps its arguments to a request, calls its
//! operation in `landfall::ops`, renders what it returns, and gives the
//! exit status.

use landfall::config::{self, Environment, Host, Project};
use landfall::deploy::Summary;
use landfall::ops::abort::AbortRequest;
use landfall::ops::build::{BuildOutput, BuildRequest};
use landfall::ops::deploy::DeployRequest;
use landfall::ops::exec::{ExecCommand, ExecOutcome};
use landfall::ops::logs::LogsRequest;
use landfall::ops::promote::PromoteRequest;
use landfall::ops::prune::PruneRequest;
use landfall::ops::rollback::RollbackRequest;
use landfall::ops::{self, Targets};
use landfall::transport::Transport;
use landfall::{Error, plan};

use crate::cli::{
    AbortArgs, BuildArgs, CheckArgs, ConfigArgs, DeployArgs, ExecArgs, LogsArgs, MessageFormat,
    PromoteArgs, PruneArgs, RollbackArgs, StatusArgs, TargetArgs,
};
pub(crate) use crate::frontend::{Ctx, EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_WAITING, ask_yes};
use crate::json::Line;
use crate::render;

/// The transport for a run on `hosts` of the shell, with what opening it
/// warned of reported.
pub(crate) fn transport(
    ctx: &Ctx<'_>,
    project: &Project,
    env: &Environment,
    hosts: &[&Host],
    local: bool,
) -> Result<Box<dyn Transport + Send>, Error> {
    ctx.settings().transport(ctx, project, env, hosts, local)
}

fn targets(args: &TargetArgs) -> Targets {
    Targets {
        env: args.env.clone(),
        artifacts: args.artifacts.clone(),
        local: args.local,
    }
}

/// `cargo deploy` without an environment: the environments there are to
/// choose from, and how to give one; exit status 2.
fn no_environment(ctx: &Ctx<'_>) -> u8 {
    let project = match landfall::load(ctx.global.manifest_path.as_deref()) {
        Ok(project) => project,
        Err(err) => return Ctx::fail(&err),
    };
    let names = project.environment_names();
    if names.is_empty() {
        render::error(&format!(
            "no environment given, and `{}` holds none (`cargo deploy init` writes `environments/dev.toml`)",
            project.environments_dir().display()
        ));
    } else {
        render::error(&format!(
            "no environment given: `cargo deploy ENV`, where ENV is one of {} (in `{}`)",
            names.join(", "),
            project.environments_dir().display(),
        ));
    }
    if ctx.global.message_format == MessageFormat::Human {
        render::eprintln!("\n{}", crate::cli::usage());
    }
    EXIT_USAGE
}

pub(crate) fn deploy(ctx: &Ctx<'_>, args: &DeployArgs) -> u8 {
    let Some(env) = args.env.clone() else {
        return no_environment(ctx);
    };
    let request = DeployRequest {
        env,
        artifacts: args.artifacts.clone(),
        local: args.local,
        dry_run: args.dry_run,
        force: args.force,
        break_lock: args.break_lock,
        allow_dirty: args.allow_dirty,
        allow_config_drift: args.allow_config_drift,
        from: args.from.clone(),
        yes: args.yes,
    };
    match ops::deploy::deploy(&ctx.settings(), &request, ctx) {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => {
            let code = Ctx::fail(&err);
            // CI reads the last line: even a run refused up front ends with
            // a summary.
            if ctx.json() {
                ctx.printer
                    .summary(&Summary::without_hosts(&request.env, false, args.dry_run));
            }
            code
        }
    }
}

pub(crate) fn build(ctx: &Ctx<'_>, args: &BuildArgs) -> u8 {
    let request = BuildRequest {
        env: args.env.clone(),
        artifacts: args.artifacts.clone(),
        out: args.out.clone(),
        check_reproducible: args.check_reproducible,
    };
    match ops::build::build(&ctx.settings(), &request, ctx) {
        Ok(output) => {
            ctx.printer.build_report(&output);
            match output {
                BuildOutput::Reproducible { first, second, .. } if first != second => Ctx::fail(
                    &Error::Failed("the two builds differ: the build is not reproducible".into()),
                ),
                _ => EXIT_OK,
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn check(ctx: &Ctx<'_>, args: &CheckArgs) -> u8 {
    let report = match ops::check::check(&ctx.settings(), args.env.as_deref(), ctx) {
        Ok(report) => report,
        Err(err) => return Ctx::fail(&err),
    };
    // A hook shared by the hosts' and `--local`'s sets fails in both: say
    // each problem once.
    let mut seen = std::collections::BTreeSet::new();
    for err in &report.errors {
        match err {
            Error::Config(diags) => {
                for diag in diags.0.iter().filter(|d| seen.insert(d.to_string())) {
                    render::diagnostic(diag);
                }
            }
            other => {
                if seen.insert(other.to_string()) {
                    Ctx::fail(other);
                }
            }
        }
    }
    ctx.printer.check_report(&report);
    if report.errors.is_empty() {
        EXIT_OK
    } else if report.errors.iter().all(Error::is_usage) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

pub(crate) fn status(ctx: &Ctx<'_>, args: &StatusArgs) -> u8 {
    let request = ops::status::StatusRequest {
        targets: targets(&args.target),
        sbom: args.sbom,
    };
    match ops::status::status(&ctx.settings(), &request, ctx) {
        Ok(report) => {
            ctx.printer
                .status_report(&args.target.env, &report.targets, &report.orphans);
            if report.ok() { EXIT_OK } else { EXIT_FAILED }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn rollback(ctx: &Ctx<'_>, args: &RollbackArgs) -> u8 {
    let request = RollbackRequest {
        targets: targets(&args.target),
        to: args.to.clone(),
        break_lock: args.break_lock,
        yes: args.yes,
    };
    match ops::rollback::rollback(&ctx.settings(), &request, ctx) {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn promote(ctx: &Ctx<'_>, args: &PromoteArgs) -> u8 {
    let request = PromoteRequest {
        env: args.env.clone(),
        local: args.local,
        allow_dirty: args.allow_dirty,
        allow_config_drift: args.allow_config_drift,
        from: args.from.clone(),
        yes: args.yes,
    };
    match ops::promote::promote(&ctx.settings(), &request, ctx) {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => {
            let code = Ctx::fail(&err);
            // As a deploy's: CI reads the last line.
            if ctx.json() {
                ctx.printer
                    .summary(&Summary::without_hosts(&request.env, false, false));
            }
            code
        }
    }
}

pub(crate) fn abort(ctx: &Ctx<'_>, args: &AbortArgs) -> u8 {
    let request = AbortRequest {
        targets: targets(&args.target),
        yes: args.yes,
    };
    match ops::abort::abort(&ctx.settings(), &request, ctx) {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn prune(ctx: &Ctx<'_>, args: &PruneArgs) -> u8 {
    let request = PruneRequest {
        targets: targets(&args.target),
        yes: args.yes,
    };
    let show = |found: &[ops::prune::HostOrphans]| ctx.printer.orphans_report(found);
    match ops::prune::prune(&ctx.settings(), &request, ctx, &show) {
        Ok(results) => {
            let pruned: usize = results.iter().map(|r| r.pruned.len()).sum();
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| r.error.is_some())
                .map(|r| r.host.as_str())
                .collect();
            if failed.is_empty() {
                if pruned > 0 {
                    ctx.printer.finished(&format!(
                        "{} pruned",
                        render::counted(pruned as u64, "orphan")
                    ));
                }
                EXIT_OK
            } else {
                render::error(&format!(
                    "pruning failed on {}; {} pruned",
                    failed.join(", "),
                    render::counted(pruned as u64, "orphan")
                ));
                EXIT_FAILED
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn exec(ctx: &Ctx<'_>, args: &ExecArgs) -> u8 {
    use std::io::IsTerminal as _;
    let input = if args.stdin {
        match spool_stdin() {
            Ok(file) => Some(file),
            Err(err) => {
                return Ctx::fail(&Error::Usage(format!("cannot read standard input: {err}")));
            }
        }
    } else {
        None
    };
    if args.tty && !std::io::stdin().is_terminal() {
        return Ctx::fail(&Error::Usage(
            "`-t` needs a terminal: landfall's standard input is not one".into(),
        ));
    }
    // Each host's output, with `--group`, waits in a file until all are
    // done; JSON has it in each host's `exec` event.
    let spools = (args.group && !ctx.json()).then(render::Spools::default);
    let line = |host: &str, width: usize, text: &str| match &spools {
        Some(spools) => spools.line(host, text),
        None if !args.group => ctx.printer.output_line(host, width, text),
        None => {}
    };
    let targets = targets(&args.target);
    let command = ExecCommand {
        targets: &targets,
        command: &args.command,
        input: input.as_ref().map(tempfile::NamedTempFile::path),
        tty: args.tty,
    };
    match ops::exec::exec(&ctx.settings(), &command, ctx, &line) {
        Ok(ExecOutcome::Streamed(results)) => {
            ctx.printer.exec_report(&args.target.env, &results, spools);
            if results.iter().all(ops::exec::ExecResult::success) {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Ok(ExecOutcome::Attached { code: Some(0), .. }) => EXIT_OK,
        Ok(ExecOutcome::Attached { host, code }) => {
            let how = code.map_or_else(
                || "a signal ended it".to_string(),
                |c| format!("exit status {c}"),
            );
            render::error(&format!("the command failed on {host}: {how}"));
            EXIT_FAILED
        }
        Err(err) => Ctx::fail(&err),
    }
}

/// Copies standard input, as it comes, into a file only this user can
/// read, removed when it is dropped: each host then streams it from there,
/// so that no size of input is ever held in memory, however many hosts
/// read it.
fn spool_stdin() -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
    Ok(file)
}

pub(crate) fn logs(ctx: &Ctx<'_>, args: &LogsArgs) -> u8 {
    // Following a log ends with Ctrl-C.
    crate::signals::expected();
    let request = LogsRequest {
        targets: targets(&args.target),
        lines: args.lines,
        follow: args.follow,
        all_releases: args.all_releases,
    };
    let line = |line: &ops::logs::LogLine<'_>| {
        ctx.printer
            .log_line(line.label, line.width, line.host, line.artifact, line.text);
    };
    match ops::logs::logs(&ctx.settings(), &request, ctx, &line) {
        Ok(results) => {
            let mut ok = true;
            for result in &results {
                if let Some(error) = &result.error {
                    ok = false;
                    render::error(&format!(
                        "`{}` on `{}`: {error}",
                        result.artifact, result.host
                    ));
                }
            }
            if let Some(signal) = crate::signals::received() {
                crate::signals::exit_status(signal)
            } else if ok {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn config(ctx: &Ctx<'_>, args: &ConfigArgs) -> u8 {
    let result = (|| {
        let (project, env) = ctx.load(&args.env)?;
        let mut only = ctx.global.only.clone();
        only.extend(args.host.iter().cloned());
        let hosts = plan::select(&env, &only)?;
        for host in hosts {
            let vars = config::provenance::annotate(&project, &env, host);
            ctx.printer
                .config_report(&env.name, &host.name, &vars, args.annotate);
        }
        Ok(EXIT_OK)
    })();
    result.unwrap_or_else(|err| Ctx::fail(&err))
}

/// `init --sudoers ENV`: the sudo rules for the environment's system
/// services, on stdout.
pub(crate) fn sudoers(ctx: &Ctx<'_>, env: &str) -> u8 {
    match ops::init::sudoers(&ctx.settings(), env, ctx) {
        Ok(rules) => {
            render::println!("{rules}");
            EXIT_OK
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn init(ctx: &Ctx<'_>) -> u8 {
    let created = match ops::init::init(&ctx.settings()) {
        Ok(created) => created,
        Err(err) => return Ctx::fail(&err),
    };
    if ctx.json() {
        render::json_line(&Line::Initialized { created: &created });
    } else {
        for path in &created {
            render::eprintln!("{:>12} {path}", "Created");
        }
        render::eprintln!(
            "Next: cargo deploy dev --local (and commit Cargo.lock: deploys build with --locked)"
        );
    }
    EXIT_OK
}
