//! What every command is run with ([`Ctx`]: the global options and the
//! printer), and the terminal's side of the library's operations: the
//! [`Frontend`] that renders their events and asks their questions.

use landfall::Error;
use landfall::config::{Environment, Project};
use landfall::deploy::Summary;
use landfall::diag::Diagnostic;
use landfall::event::Event;
use landfall::interrupt::Cancel;
use landfall::ops::{Frontend, Settings};
use landfall::secrets::Mask;

use crate::cli::{Global, MessageFormat};
use crate::render::{self, Printer};

pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
/// The rollout waits for promotion (`cargo deploy promote`, or `abort`).
pub(crate) const EXIT_WAITING: u8 = 3;

pub(crate) struct Ctx<'a> {
    pub(crate) global: &'a Global,
    pub(crate) printer: &'a Printer,
    /// What a signal asks of the command's work on hosts.
    pub(crate) cancel: &'a Cancel,
}

impl Ctx<'_> {
    /// The options every operation shares, from the command line.
    pub(crate) fn settings(&self) -> Settings {
        let global = self.global;
        Settings {
            manifest_path: global.manifest_path.clone(),
            vars: global.vars.clone(),
            only: global.only.clone(),
            jobs: global.jobs.map(|j| j as usize),
            no_persist: global.no_persist,
            quiet_build: global.quiet || self.json(),
            cancel: self.cancel.clone(),
        }
    }

    pub(crate) fn json(&self) -> bool {
        self.global.message_format == MessageFormat::Json
    }

    /// Reads the workspace and an environment, with `--var` applied.
    pub(crate) fn load(&self, env: &str) -> Result<(Project, Environment), Error> {
        self.settings().load(self, env)
    }

    /// Reports a library error and returns its exit status.
    pub(crate) fn fail(err: &Error) -> u8 {
        match err {
            Error::Config(diags) => {
                for diag in &diags.0 {
                    render::diagnostic(diag);
                }
            }
            other => render::error(&other.chain()),
        }
        if err.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_FAILED
        }
    }

    /// Prints the summary a command ends with; its exit status. A rollout
    /// that waits for promotion has a status of its own, whatever failed
    /// within its budget: the run is not over.
    pub(crate) fn finish(&self, summary: &Summary) -> u8 {
        self.printer.summary(summary);
        if summary.waiting.is_some() {
            EXIT_WAITING
        } else if summary.ok {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }
}

impl Frontend for Ctx<'_> {
    fn event(&self, event: Event) {
        self.printer.event(event);
    }

    fn diagnostics(&self, warnings: &[Diagnostic]) {
        for warning in warnings {
            if self.json() {
                self.printer.event(Event::Warning {
                    message: warning.to_string(),
                });
            } else {
                render::diagnostic(warning);
            }
        }
    }

    fn hide(&self, mask: &Mask) {
        render::hide(mask);
    }

    fn can_ask(&self) -> bool {
        interactive()
    }

    fn ask(&self, question: &str) -> Result<bool, Error> {
        answered_yes(question)
    }
}

/// A person at a terminal who could answer a prompt; CI never is.
pub(crate) fn interactive() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("CI").is_none() && std::io::stdin().is_terminal()
}

/// Asks `question` if there is a terminal to ask on; whether the answer
/// was yes.
pub(crate) fn ask_yes(question: &str) -> bool {
    interactive() && answered_yes(question).unwrap_or(false)
}

/// Asks `question` on the terminal; whether the answer was yes.
fn answered_yes(question: &str) -> Result<bool, Error> {
    anstream::eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|err| Error::Usage(format!("no answer: {err}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
