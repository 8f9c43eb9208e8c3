//! Rendering: events as progress lines for people (stderr) or JSON lines
//! for CI (stdout), diagnostics, and the final summary.
//!
//! Every piece of text that may have come from a host (a command's output,
//! a log, hook output, an error quoting a host's stderr, a release id or a
//! path a host reported) goes through [`inert`] before it reaches a
//! person's terminal, here and nowhere else; JSON lines keep it exact.
//!
//! This module holds the output's one gate: the run's [`Mask`], the
//! printing macros that apply it, JSON lines, errors, warnings and
//! diagnostics, and the [`Printer`] with its styles. What it prints is
//! laid out by a module per kind of output: [`progress`] (an event as a
//! progress line), [`predict`] (the dry run's changes and diffs under
//! its line), [`summary`] (the table a run ends with, and a stopped
//! rollout), [`hosts_output`] (what commands and services print on
//! hosts: `exec`, grouped or line by line, and `logs`) and [`reports`]
//! (`status`, `config`, orphans).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use anstyle::{AnsiColor, Effects, Style};
use landfall::diag::Diagnostic;
use landfall::inert::inert;
use landfall::secrets::Mask;

use crate::cli::MessageFormat;
use crate::json::Line;
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
// unmasked text. They are defined before the modules below, which are
// in their scope: nothing in those prints unmasked text either.
macro_rules! eprintln {
    () => { anstream::eprintln!() };
    ($($arg:tt)*) => { anstream::eprintln!("{}", $crate::render::masked(&format!($($arg)*))) };
}
macro_rules! println {
    () => { anstream::println!() };
    ($($arg:tt)*) => { anstream::println!("{}", $crate::render::masked(&format!($($arg)*))) };
}
pub(crate) use {eprintln, println};

mod build;
mod hosts_output;
mod predict;
mod progress;
mod reports;
mod summary;

pub(crate) use hosts_output::Spools;

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

    /// The last line of a command that has no summary.
    pub(crate) fn finished(&self, text: &str) {
        self.status("Finished", GOOD, text);
    }
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
