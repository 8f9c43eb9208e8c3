//! Rendering: events as progress lines for people (stderr) or JSON lines
//! for CI (stdout), diagnostics, and the final summary.
//!
//! Every piece of text that may have come from a host (a command's output,
//! a log, hook output, an error quoting a host's stderr, a release id or a
//! path a host reported) goes through [`inert`] before it reaches a
//! person's terminal, here and nowhere else; JSON lines keep it exact.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use anstyle::{AnsiColor, Effects, Style};
use landfall::config::provenance::{Layer, Variable};
use landfall::deploy::{ExecResult, HostOrphans, Status, Summary, TargetStatus};
use landfall::diag::Diagnostic;
use landfall::diff::{DiffKind, FileDiff};
use landfall::event::Event;
use landfall::inert::inert;
use landfall::secrets::Mask;

use crate::cli::MessageFormat;
use crate::json::{FoundOrphan, Line};
use crate::live::{self, Live};

/// The secret values of the environments this run decrypted. Every line
/// this binary prints passes through it: the output layer is the one place
/// no secret gets past, whatever event, error or hook output carries it.
static MASK: RwLock<Option<Mask>> = RwLock::new(None);

/// Errors are JSON lines on stdout too (`--message-format json`).
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

pub(crate) fn json_errors(on: bool) {
    JSON_ERRORS.store(on, Ordering::Relaxed);
}

/// Whether an error's command line is shown (`--verbose`).
static COMMAND_LINES: AtomicBool = AtomicBool::new(false);

/// The command lines shown so far: each is shown once, however many errors
/// give it.
static SHOWN_COMMAND_LINES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// An error's message for a person, inert: what happened, and the command
/// line that failed only under `--verbose`, and only the first time.
fn shown_error(message: &str) -> String {
    let (cause, command) = landfall::split_command_line(message);
    let Some(command) = command.filter(|_| COMMAND_LINES.load(Ordering::Relaxed)) else {
        return inert(cause).into_owned();
    };
    let mut shown = SHOWN_COMMAND_LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if shown.insert(command.to_string()) {
        inert(&format!("{cause}\ncommand line: {command}")).into_owned()
    } else {
        inert(cause).into_owned()
    }
}

/// Masks these values in everything printed from now on.
pub(crate) fn hide(mask: &Mask) {
    let mut current = MASK.write().unwrap_or_else(PoisonError::into_inner);
    current.get_or_insert_with(Mask::default).extend(mask);
}

pub(crate) fn masked(text: &str) -> String {
    match MASK.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
        Some(mask) => mask.apply(text).into_owned(),
        None => text.to_string(),
    }
}

// Shadow the printing macros so that nothing in this module prints
// unmasked text.
macro_rules! eprintln {
    () => { anstream::eprintln!() };
    ($($arg:tt)*) => { anstream::eprintln!("{}", $crate::render::masked(&format!($($arg)*))) };
}
macro_rules! println {
    () => { anstream::println!() };
    ($($arg:tt)*) => { anstream::println!("{}", $crate::render::masked(&format!($($arg)*))) };
}
pub(crate) use {eprintln, println};

const GOOD: Style = AnsiColor::BrightGreen.on_default().effects(Effects::BOLD);
const WARN: Style = AnsiColor::BrightYellow.on_default().effects(Effects::BOLD);
const BAD: Style = AnsiColor::BrightRed.on_default().effects(Effects::BOLD);
const INFO: Style = AnsiColor::BrightCyan.on_default().effects(Effects::BOLD);
const DIM: Style = Style::new().effects(Effects::DIMMED);

pub(crate) struct Printer {
    pub(crate) format: MessageFormat,
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    started: Instant,
    /// A line per host, redrawn in place, on a terminal a person watches.
    live: Option<Live>,
}

/// Prints a line of `--message-format json` on stdout, masked.
pub(crate) fn json_line(line: &Line<'_>) {
    let line = masked(&serde_json::to_string(line).expect("events serialise"));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `n` of `noun`, in the singular for one: `1 host`, `2 hosts`.
pub(crate) fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub(crate) fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

impl Printer {
    pub(crate) fn new(format: MessageFormat, quiet: bool, verbose: bool) -> Printer {
        COMMAND_LINES.store(verbose, Ordering::Relaxed);
        Printer {
            format,
            quiet,
            verbose,
            started: Instant::now(),
            live: (format == MessageFormat::Human && live::wanted(quiet)).then(Live::new),
        }
    }

    /// A progress line: a right-aligned verb, cargo style. Its text is
    /// shown inert: it names hosts, and releases and paths they reported.
    fn status(&self, verb: &str, style: Style, text: &str) {
        if !self.quiet {
            eprintln!("{style}{verb:>12}{style:#} {}", inert(text));
        }
    }

    pub(crate) fn event(&self, event: Event) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Event(&event));
            return;
        }
        match &self.live {
            Some(live) if live.show(&event) => {}
            Some(live) => live.above(|| self.plain(event)),
            None => self.plain(event),
        }
    }

    /// An event as lines of its own.
    fn plain(&self, event: Event) {
        match event {
            Event::Warning { message } => warning(&message),
            Event::Waiting { host, seconds } => {
                self.status("Waiting", WARN, &format!("for {host} ({seconds}s)"));
            }
            Event::BuildStarted { bins } => self.status("Building", GOOD, &bins.join(", ")),
            Event::Assembled {
                artifact,
                id,
                files,
                bytes,
                reused,
            } => {
                let note = if reused { ", unchanged" } else { "" };
                // Made here, from the workspace: nothing a host said.
                if !self.quiet {
                    eprintln!(
                        "{GOOD}{:>12}{GOOD:#} {artifact} {DIM}{}{DIM:#} ({}, {}{note})",
                        "Assembled",
                        short(&id),
                        counted(files as u64, "file"),
                        size(bytes)
                    );
                }
            }
            Event::Stored {
                store,
                objects,
                uploaded,
                bytes,
            } => self.status(
                "Stored",
                GOOD,
                &format!(
                    "{store} ({uploaded} of {} put, {})",
                    counted(objects as u64, "object"),
                    size(bytes)
                ),
            ),
            Event::Probed {
                host,
                artifact,
                release,
                unchanged: true,
                ..
            } => {
                self.status(
                    "Unchanged",
                    DIM,
                    &format!("{host} {artifact} {}", short(&release)),
                );
            }
            // A push under way is for the live lines; its end is a line.
            Event::Probed { .. } | Event::BuildFinished { .. } | Event::Pushing { .. } => {}
            Event::WouldDeploy {
                host,
                artifact,
                release,
                current,
                added,
                removed,
                changed,
                hooks,
                diffs,
                diff_file,
            } => {
                let from = current
                    .as_deref()
                    .map_or_else(|| "nothing".to_string(), |c| short(c).to_string());
                self.status(
                    "Would deploy",
                    WARN,
                    &format!("{host} {artifact} {} (now {from})", short(&release)),
                );
                if !self.quiet {
                    for path in &added {
                        eprintln!("{:>12}   {GOOD}+{GOOD:#} {}", "", inert(path));
                    }
                    for path in &removed {
                        eprintln!("{:>12}   {BAD}-{BAD:#} {}", "", inert(path));
                    }
                    for path in &changed {
                        eprintln!("{:>12}   {WARN}~{WARN:#} {}", "", inert(path));
                    }
                    if !hooks.is_empty() {
                        eprintln!("{:>12}   hooks: {}", "", inert(&hooks.join(", ")));
                    }
                    for diff in &diffs {
                        print_diff(diff);
                    }
                    if let Some(file) = diff_file {
                        eprintln!(
                            "{:>12}   {DIM}the whole diff: {}{DIM:#}",
                            "",
                            file.display()
                        );
                    }
                }
            }
            Event::Pushed {
                host,
                artifact,
                release,
                files,
                bytes,
                objects,
            } => {
                let objects =
                    objects.map_or_else(String::new, |n| format!("{}, ", counted(n, "git object")));
                self.status(
                    "Pushed",
                    GOOD,
                    &format!(
                        "{host} {artifact} {} ({objects}{} written, {})",
                        short(&release),
                        counted(files as u64, "file"),
                        size(bytes)
                    ),
                );
            }
            Event::Activated {
                host,
                artifact,
                release,
                previous,
            } => {
                let was = previous
                    .map(|p| format!(" (was {})", short(&p)))
                    .unwrap_or_default();
                self.status(
                    "Activated",
                    GOOD,
                    &format!("{host} {artifact} {}{was}", short(&release)),
                );
            }
            Event::RolledBack {
                host,
                artifact,
                release,
                to,
            } => {
                let to = to.as_deref().map_or("nothing", short);
                self.status(
                    "Rolled back",
                    WARN,
                    &format!("{host} {artifact} {} -> {to}", short(&release)),
                );
            }
            Event::Failed {
                host,
                artifact,
                phase,
                message,
            } => {
                eprintln!(
                    "{BAD}{:>12}{BAD:#} {host} {artifact} ({}): {}",
                    "Failed",
                    phase.name(),
                    shown_error(&message)
                );
            }
            Event::Batch {
                artifact,
                batch,
                batches,
                canary,
                hosts,
            } => {
                if batches > 1 {
                    let what = if canary { "canary" } else { "batch" };
                    self.status(
                        "Rolling out",
                        INFO,
                        &format!("{artifact} {what} {batch}/{batches}: {}", hosts.join(", ")),
                    );
                }
            }
            Event::Pause {
                artifact,
                seconds,
                next,
            } => self.status(
                "Pausing",
                INFO,
                &format!(
                    "{artifact} for {seconds}s before batch {next}, checking the hosts activated"
                ),
            ),
            Event::RolloutStopped {
                artifact,
                failed,
                max_fail,
                reason,
            } => eprintln!(
                "{BAD}{:>12}{BAD:#} {}",
                "Stopped",
                inert(&describe_stop(&landfall::deploy::Stopped {
                    artifact,
                    reason,
                    failed,
                    max_fail,
                }))
            ),
            Event::Once {
                host,
                artifact,
                release,
            } => self.status(
                "Ran once",
                GOOD,
                &format!("{host} {artifact} {}", short(&release)),
            ),
            Event::Hook {
                hook,
                ok,
                seconds,
                output,
            } => {
                let (verb, style) = if ok {
                    ("Hook", GOOD)
                } else {
                    ("Hook failed", BAD)
                };
                self.status(verb, style, &format!("{hook} ({seconds:.2}s)"));
                if !self.quiet {
                    for line in output.lines() {
                        eprintln!("{:>12}   {DIM}{}{DIM:#}", "", inert(line));
                    }
                }
            }
            Event::Orphan { host, orphan } => {
                let found = FoundOrphan {
                    host: &host,
                    orphan: &orphan,
                };
                eprintln!("{WARN}{:>12}{WARN:#} {}", "Orphan", describe_orphan(&found));
            }
            Event::Pruned {
                host,
                path,
                artifact,
                service,
            } => {
                let service =
                    service.map_or_else(String::new, |s| format!(", service {s} removed"));
                self.status(
                    "Pruned",
                    GOOD,
                    &format!("{host} {artifact} {path}{service}"),
                );
            }
            Event::Removed {
                host,
                artifact,
                releases,
            } => {
                if self.verbose {
                    self.status(
                        "Removed",
                        DIM,
                        &format!(
                            "{host} {artifact} {}",
                            releases
                                .iter()
                                .map(|r| short(r))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
        }
    }

    pub(crate) fn summary(&self, summary: &Summary) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Summary(summary));
            return;
        }
        if let Some(live) = &self.live {
            live.done();
        }
        let width = |f: fn(&landfall::deploy::Outcome) -> usize| {
            summary.hosts.iter().map(f).max().unwrap_or(0)
        };
        let host_w = width(|o| o.host.len()).max(4);
        let art_w = width(|o| o.artifact.len()).max(8);
        // A batch column when some rollout had more than one batch.
        let batched = summary.hosts.iter().any(|o| o.batch.is_some_and(|b| b > 1));
        if !summary.hosts.is_empty() {
            eprintln!();
            let batch = if batched { "batch  " } else { "" };
            eprintln!(
                "{DIM}{:host_w$}  {:art_w$}  {batch}{:11}  {:20}  previous{DIM:#}",
                "host", "artifact", "status", "release"
            );
        }
        for o in &summary.hosts {
            let style = match o.status {
                Status::Deployed => GOOD,
                Status::Unchanged | Status::Skipped => DIM,
                Status::RolledBack => WARN,
                Status::Failed => BAD,
            };
            // Ids a host reported, and messages that quote it.
            let release = inert(o.release.as_deref().unwrap_or("-"));
            let previous = inert(o.previous.as_deref().unwrap_or("-"));
            let batch = match (batched, o.batch) {
                (false, _) => String::new(),
                (true, Some(b)) => format!("{b:<5}  "),
                (true, None) => format!("{:<5}  ", "-"),
            };
            eprintln!(
                "{:host_w$}  {:art_w$}  {batch}{style}{:11}{style:#}  {release:20}  {previous}",
                o.host,
                o.artifact,
                o.status.name()
            );
            if let Some(message) = &o.message
                && (o.status != Status::Skipped || self.verbose)
            {
                for line in shown_error(message).lines() {
                    eprintln!("{:host_w$}  {DIM}{line}{DIM:#}", "");
                }
            }
        }
        if let Some(stopped) = &summary.stopped {
            eprintln!();
            eprintln!(
                "{BAD}{:>12}{BAD:#} {}",
                "Stopped",
                inert(&describe_stop(stopped))
            );
        }
        let mut counts: Vec<(Status, usize)> = Vec::new();
        for o in &summary.hosts {
            match counts.iter_mut().find(|(s, _)| *s == o.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((o.status, 1)),
            }
        }
        let counts = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let counts = if counts.is_empty() {
            "nothing to do".to_string()
        } else {
            counts
        };
        let seconds = self.started.elapsed().as_secs_f64();
        let (verb, style) = match (summary.dry_run, summary.ok) {
            (true, _) => ("Dry run", INFO),
            (false, true) => ("Finished", GOOD),
            (false, false) => ("Failed", BAD),
        };
        eprintln!();
        let phases = summary.timings.describe();
        let phases = if phases.is_empty() {
            String::new()
        } else {
            format!(" ({phases})")
        };
        let deploy = summary
            .deploy
            .as_ref()
            .map_or_else(String::new, |id| format!(", deploy {id}"));
        eprintln!(
            "{style}{verb:>12}{style:#} {}: {counts} in {seconds:.2}s{phases}{deploy}",
            summary.env
        );
    }

    /// One line a command printed on a host, as it comes: `host | line` on
    /// stdout, or a JSON `output` event.
    pub(crate) fn output_line(&self, host: &str, width: usize, line: &str) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Output { host, line });
        } else {
            println!(
                "{}",
                masked(&format!("{INFO}{host:width$}{INFO:#} | {}", inert(line)))
            );
        }
    }

    /// The end of `exec`: with `group` (each host's output kept in it),
    /// one block per distinct output with the hosts that gave it, failed
    /// ones first; then the hosts that failed, each with why. Under JSON,
    /// an `exec` event per host and a summary.
    pub(crate) fn exec_report(&self, env: &str, results: &[ExecResult], group: Option<Spools>) {
        if self.format == MessageFormat::Json {
            for result in results {
                json_line(&Line::Exec(result));
            }
            let ok = results.iter().all(ExecResult::success);
            json_line(&Line::Summary(&Summary::without_hosts(env, ok, false)));
            return;
        }
        if let Some(spools) = group {
            let mut outputs = spools.finish();
            // Failed hosts' blocks first, then by the hosts' order.
            let mut blocks: Vec<Block<'_>> = Vec::new();
            for result in results {
                let output = outputs.remove(&result.host);
                let failed = !result.success();
                let error = result.error.as_deref();
                match blocks.iter_mut().find(|(f, e, o, _)| {
                    *f == failed && *e == error && same_output(o.as_ref(), output.as_ref())
                }) {
                    Some((_, _, _, hosts)) => hosts.push(&result.host),
                    None => blocks.push((failed, error, output, vec![&result.host])),
                }
            }
            blocks.sort_by_key(|(failed, _, _, _)| !*failed);
            for (failed, error, output, hosts) in &blocks {
                let style = if *failed { BAD } else { INFO };
                println!("{DIM}----------------{DIM:#}");
                println!("{style}{}{style:#}", hosts.join(","));
                println!("{DIM}----------------{DIM:#}");
                if let Some(output) = output {
                    print_spooled(output);
                }
                if let Some(error) = error {
                    println!("{}", shown_error(error));
                }
            }
        }
        let width = results.iter().map(|r| r.host.len()).max().unwrap_or(0);
        let mut failed = Vec::new();
        for result in results {
            for line in result.stderr.lines() {
                eprintln!("{INFO}{:width$}{INFO:#} | {}", result.host, inert(line));
            }
            if result.success() {
                continue;
            }
            let why = match (&result.error, result.code) {
                (Some(error), _) => error.clone(),
                (None, Some(code)) => format!("exit status {code}"),
                (None, None) => "killed by a signal".to_string(),
            };
            eprintln!("{BAD}{:width$}{BAD:#} | {}", result.host, shown_error(&why));
            failed.push(result.host.as_str());
        }
        if !failed.is_empty() {
            error(&format!(
                "the command failed on {} of {}: {}",
                failed.len(),
                counted(results.len() as u64, "host"),
                failed.join(", ")
            ));
        }
    }

    /// One line of a service's log, on stdout, as it comes: prefixed by
    /// `label` (the host, or host/artifact), or a JSON line.
    pub(crate) fn log_line(
        &self,
        label: &str,
        width: usize,
        host: &str,
        artifact: &str,
        text: &str,
    ) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Log {
                host,
                artifact,
                line: text,
            });
            return;
        }
        println!("{INFO}{label:width$}{INFO:#} | {}", inert(text));
    }

    /// One host's variables, on stdout: TOML people can read, with each
    /// value's origin as a comment when `annotate` is set.
    pub(crate) fn config_report(&self, env: &str, host: &str, vars: &[Variable], annotate: bool) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Config { env, host, vars });
            return;
        }
        println!("# host `{host}` of environment `{env}`");
        let lines: Vec<String> = vars
            .iter()
            .map(|v| format!("{} = {}", v.key, v.value))
            .collect();
        let width = lines.iter().map(String::len).max().unwrap_or(0);
        for (line, var) in lines.iter().zip(vars) {
            if !annotate {
                println!("{line}");
                continue;
            }
            let mut origin = match var.origin.layer {
                Layer::Deploy => var.origin.at.clone(),
                Layer::Environment => format!("{} (environment)", var.origin.at),
                Layer::Host => format!("{} (host `{host}`)", var.origin.at),
                Layer::CommandLine => format!("{} (command line)", var.origin.at),
            };
            if !var.overrides.is_empty() {
                let over: Vec<&str> = var.overrides.iter().map(|o| o.at.as_str()).collect();
                origin = format!("{origin}, overrides {}", over.join(", "));
            }
            println!("{line:width$}  {DIM}# {origin}{DIM:#}");
        }
        println!();
    }

    pub(crate) fn status_report(
        &self,
        env: &str,
        report: &[TargetStatus],
        orphans: &[HostOrphans],
    ) {
        let found: Vec<FoundOrphan<'_>> = orphans
            .iter()
            .flat_map(|h| {
                h.orphans.iter().map(|orphan| FoundOrphan {
                    host: &h.host,
                    orphan,
                })
            })
            .collect();
        if self.format == MessageFormat::Json {
            json_line(&Line::Status {
                env,
                hosts: report,
                orphans: &found,
            });
            return;
        }
        Printer::targets_report(report);
        if !found.is_empty() {
            println!(
                "{WARN}orphans{WARN:#} {DIM}(no longer in deploy.toml for these hosts; `cargo deploy prune {env}` removes them){DIM:#}"
            );
            for o in &found {
                println!("  {}", describe_orphan(o));
            }
        }
        for h in orphans {
            if let Some(err) = &h.error
                && report.iter().all(|t| t.host != h.host || t.error.is_none())
            {
                println!(
                    "{INFO}{}{INFO:#} {BAD}orphans unknown{BAD:#}: {}",
                    h.host,
                    shown_error(err)
                );
            }
        }
    }

    /// The last line of a command that has no summary.
    pub(crate) fn finished(&self, text: &str) {
        self.status("Finished", GOOD, text);
    }

    /// What `prune` would remove, before it asks.
    pub(crate) fn orphans_report(&self, orphans: &[HostOrphans]) {
        if self.format == MessageFormat::Json {
            for h in orphans {
                for orphan in &h.orphans {
                    json_line(&Line::Event(&Event::Orphan {
                        host: h.host.clone(),
                        orphan: orphan.clone(),
                    }));
                }
            }
            return;
        }
        for h in orphans {
            for orphan in &h.orphans {
                eprintln!(
                    "{WARN}{:>12}{WARN:#} {}",
                    "Orphan",
                    describe_orphan(&FoundOrphan {
                        host: &h.host,
                        orphan
                    })
                );
            }
        }
    }

    fn targets_report(report: &[TargetStatus]) {
        for target in report {
            println!(
                "{INFO}{}{INFO:#} {} {DIM}{}{DIM:#}",
                target.host, target.artifact, target.path
            );
            // Everything below but the styles is what the host reported.
            if let Some(err) = &target.error {
                println!("  {BAD}unreachable{BAD:#}: {}", shown_error(err));
                continue;
            }
            if let Some(lock) = &target.lock {
                println!("  {WARN}locked{WARN:#}: {}", inert(lock));
            }
            if let Some(service) = &target.service {
                let style = if service.running() { GOOD } else { BAD };
                let mut line = format!(
                    "  service {} ({}): {style}{}{style:#}",
                    inert(&service.name),
                    inert(&service.manager),
                    inert(&service.state)
                );
                if let Some(pid) = service.pid {
                    let _ = write!(line, ", pid {pid}");
                }
                match &service.since {
                    // supervisord says how long it has been up.
                    Some(up) if up.starts_with("up ") => {
                        let _ = write!(line, ", {}", inert(up));
                    }
                    Some(since) => {
                        let _ = write!(line, ", since {}", inert(since));
                    }
                    None => {}
                }
                println!("{line}");
            }
            if target.releases.is_empty() {
                println!("  no releases");
            }
            for release in &target.releases {
                let marker = if release.current {
                    format!("{GOOD}*{GOOD:#}")
                } else {
                    " ".to_string()
                };
                let made = release.provenance.as_ref().map_or_else(
                    || "no provenance recorded".to_string(),
                    |p| {
                        let mut made = match &p.revision {
                            Some(rev) => format!("built from {}", landfall::git::short(rev)),
                            None => "built from no git revision".to_string(),
                        };
                        if p.dirty {
                            made.push_str(" with uncommitted changes");
                        }
                        if let Some(bundle) = &p.bundle {
                            let _ = write!(made, ", bundle {bundle}");
                        }
                        for over in &p.overrides {
                            let _ = write!(made, ", --var {over}");
                        }
                        format!("{made}, by {}@{} {}", p.user, p.from, p.time)
                    },
                );
                let last = release.activated.as_ref().map_or_else(String::new, |e| {
                    // What the entry did to this release.
                    let what = match e.event.as_str() {
                        "activated" => "deployed",
                        "rollback" => "rolled back to",
                        "rolled_back" => "switched back to",
                        other => other,
                    };
                    let deploy = e
                        .deploy
                        .as_ref()
                        .map_or_else(String::new, |id| format!(" (deploy {id})"));
                    format!("; {what} {} by {}@{}{deploy}", e.time, e.user, e.from)
                });
                println!(
                    "  {marker} {}  {DIM}{}{}{DIM:#}",
                    inert(&release.id),
                    inert(&made),
                    inert(&last)
                );
            }
        }
    }
}

/// A stopped rollout, as the event and the summary say it: `app: a canary
/// failed: `web1` (1 host failed, none allowed)`.
fn describe_stop(stopped: &landfall::deploy::Stopped) -> String {
    let allowed = match stopped.max_fail {
        0 => "none allowed".to_string(),
        n => format!("{n} allowed"),
    };
    format!(
        "{}: the rollout stopped, {} ({} failed, {allowed}); the hosts after it were not activated",
        stopped.artifact,
        stopped.reason,
        counted(u64::try_from(stopped.failed).unwrap_or(u64::MAX), "host")
    )
}

/// A block of `exec --group`: whether its hosts failed, their error, their
/// output, and the hosts.
type Block<'a> = (bool, Option<&'a str>, Option<std::fs::File>, Vec<&'a str>);

/// Each host's output of `exec --group`, kept until every host is done in
/// a file of its own that only this user can read and that is gone with
/// it: a host may print more than memory holds.
#[derive(Debug, Default)]
pub(crate) struct Spools {
    files: std::sync::Mutex<std::collections::BTreeMap<String, Spool>>,
}

#[derive(Debug)]
enum Spool {
    Kept(std::io::BufWriter<std::fs::File>),
    /// It could not be written (a full disk), for this reason.
    Lost(String),
}

impl Spools {
    /// Keeps one line of `host`'s output.
    pub(crate) fn line(&self, host: &str, line: &str) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let spool = files.entry(host.to_string()).or_insert_with(|| {
            tempfile::tempfile().map_or_else(
                |err| Spool::Lost(err.to_string()),
                |file| Spool::Kept(std::io::BufWriter::new(file)),
            )
        });
        if let Spool::Kept(file) = spool
            && let Err(err) = writeln!(file, "{line}")
        {
            *spool = Spool::Lost(err.to_string());
        }
    }

    /// Each host's output, to read from its start; a warning for each
    /// that could not be kept.
    fn finish(self) -> std::collections::BTreeMap<String, std::fs::File> {
        let files = self
            .files
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut kept = std::collections::BTreeMap::new();
        for (host, spool) in files {
            let file = match spool {
                Spool::Kept(file) => file.into_inner().map_err(|err| err.error().to_string()),
                Spool::Lost(why) => Err(why),
            };
            match file {
                Ok(file) => {
                    kept.insert(host, file);
                }
                Err(why) => warning(&format!("the output of `{host}` could not be kept: {why}")),
            }
        }
        kept
    }
}

/// Whether two hosts' outputs are the same, read a piece at a time.
fn same_output(a: Option<&std::fs::File>, b: Option<&std::fs::File>) -> bool {
    use std::os::unix::fs::FileExt as _;
    let len = |f: Option<&std::fs::File>| f.and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
    if len(a) != len(b) {
        return false;
    }
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (mut left, mut right) = ([0u8; 8192], [0u8; 8192]);
    let mut at = 0;
    loop {
        match (a.read_at(&mut left, at), b.read_at(&mut right, at)) {
            (Ok(0), Ok(0)) => return true,
            (Ok(n), Ok(m)) if n == m && left[..n] == right[..n] => at += n as u64,
            _ => return false,
        }
    }
}

/// Prints a host's kept output, line by line, inert.
fn print_spooled(file: &std::fs::File) {
    use std::io::{BufRead as _, Seek as _};
    let mut file = file;
    if file.rewind().is_err() {
        return;
    }
    // Its lines were cut as they came, so none is long.
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { return };
        println!("{}", landfall::inert::inert_bytes(&line));
    }
}

fn describe_orphan(o: &FoundOrphan<'_>) -> String {
    let current = o.orphan.current.as_deref().map_or_else(
        || "no current release".to_string(),
        |c| format!("current {}", short(c)),
    );
    let service = o
        .orphan
        .service
        .as_deref()
        .map_or_else(String::new, |s| format!(", runs service {s}"));
    // What a host reported of its orphans.
    format!(
        "{} {} {DIM}{}{DIM:#} ({})",
        o.host,
        inert(&o.orphan.artifact),
        inert(&o.orphan.path),
        inert(&format!("{current}{service}"))
    )
}

/// Errors and warnings always go to stderr, whatever `--quiet` says.
pub(crate) fn diagnostic(diag: &Diagnostic) {
    eprintln!("{}", diag.render(true));
    if JSON_ERRORS.load(Ordering::Relaxed) {
        json_line(&Line::Error {
            message: &diag.message,
            location: diag.position(),
        });
    }
}

/// A predicted change of one file, indented under its target.
fn print_diff(diff: &FileDiff) {
    let pad = "";
    match diff.kind {
        DiffKind::Binary => eprintln!(
            "{pad:>14}{DIM}binary file {} differs{DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Large => eprintln!(
            "{pad:>14}{DIM}{} differs (too big to diff){DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Hidden => eprintln!(
            "{pad:>14}{DIM}{} differs (it holds secrets; its template cannot be shown masked){DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Text => {
            for line in diff.diff.lines() {
                let style = if line.starts_with("+++") || line.starts_with("---") {
                    Style::new().effects(Effects::BOLD)
                } else if line.starts_with('+') {
                    GOOD
                } else if line.starts_with('-') {
                    BAD
                } else if line.starts_with("@@") {
                    INFO
                } else {
                    Style::new()
                };
                // The old side is the file on the host.
                eprintln!("{pad:>14}{style}{}{style:#}", inert(line));
            }
            let shown = diff.diff.lines().count();
            if diff.lines > shown {
                eprintln!("{pad:>14}{DIM}… {} more lines{DIM:#}", diff.lines - shown);
            }
        }
    }
}

/// A warning, inert: it may quote a host.
pub(crate) fn warning(message: &str) {
    eprintln!("{WARN}warning{WARN:#}: {}", shown_error(message));
}

/// An error, inert: it may quote a host's stderr.
pub(crate) fn error(message: &str) {
    eprintln!("{BAD}error{BAD:#}: {}", shown_error(message));
    if JSON_ERRORS.load(Ordering::Relaxed) {
        json_line(&Line::Error {
            message,
            location: None,
        });
    }
}
