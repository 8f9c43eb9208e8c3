//! Live progress on a terminal: a line per host and artifact, redrawn in
//! place (indicatif), with what it is doing, the bytes its push wrote and
//! their rate, and how long it has taken. Everything else is printed
//! above the lines.
//!
//! Only on a terminal a person watches: not without one, not with `-q`,
//! not under `CI`, and not when `TERM` is `dumb`; there, progress stays
//! plain lines (see `render::Printer`).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use landfall::event::Event;

use crate::render::{masked, short, size};

/// Whether progress can be live: stderr is a terminal, and nothing says
/// the output is read by a program.
pub(crate) fn wanted(quiet: bool) -> bool {
    !quiet
        && std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

pub(crate) struct Live {
    multi: MultiProgress,
    /// By host and artifact.
    lines: Mutex<BTreeMap<(String, String), Line>>,
}

/// Bytes a second, from `since` until now.
fn rate(bytes: u64, since: Instant) -> u64 {
    let seconds = since.elapsed().as_secs_f64().max(0.001);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rate to show"
    )]
    let rate = (bytes as f64 / seconds) as u64;
    rate
}

/// One target's line, and when its current phase began.
struct Line {
    bar: ProgressBar,
    since: Instant,
}

impl Live {
    pub(crate) fn new() -> Live {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            lines: Mutex::new(BTreeMap::new()),
        }
    }

    /// Shows `event` on its target's line; `false` if it is not about one
    /// target, to be printed as a line of its own (see [`Live::above`]).
    pub(crate) fn show(&self, event: &Event) -> bool {
        match event {
            Event::Probed {
                host,
                artifact,
                release,
                unchanged,
                ..
            } => self.with_line(host, artifact, |line| {
                let release = short(release);
                if *unchanged {
                    line.bar.finish_with_message(format!("unchanged {release}"));
                } else {
                    line.bar.set_message(format!("pushing {release}…"));
                }
            }),
            Event::Pushing {
                host,
                artifact,
                bytes,
                ..
            }
            | Event::Pushed {
                host,
                artifact,
                bytes,
                ..
            } => self.with_line(host, artifact, |line| {
                let done = matches!(event, Event::Pushed { .. });
                // A pushed host waits for its rollout's batch.
                let (said, then) = if done {
                    ("pushed", ", waiting for its batch")
                } else {
                    ("pushing:", "")
                };
                let rate = size(rate(*bytes, line.since));
                line.bar
                    .set_message(format!("{said} {} ({rate}/s){then}", size(*bytes)));
                if done {
                    line.since = Instant::now();
                }
            }),
            Event::Activated {
                host,
                artifact,
                release,
                ..
            } => self.finish(host, artifact, &format!("activated {}", short(release))),
            Event::RolledBack {
                host, artifact, to, ..
            } => {
                let to = to.as_deref().map_or("no release", short);
                self.finish(host, artifact, &format!("rolled back to {to}"));
            }
            Event::Failed {
                host,
                artifact,
                phase,
                ..
            } => self.finish(host, artifact, &format!("failed in {}", phase.name())),
            // Printed as a line of its own too.
            Event::Batch {
                artifact, hosts, ..
            } => {
                for host in hosts {
                    self.with_line(host, artifact, |line| {
                        line.bar.set_message("activating…");
                        line.since = Instant::now();
                    });
                }
                return false;
            }
            Event::RolloutStopped { artifact, .. } => {
                let lines = self.lines.lock().expect("no thread panics holding it");
                for ((_, of), line) in lines.iter() {
                    if of == artifact && !line.bar.is_finished() {
                        line.bar
                            .finish_with_message("not activated: the rollout stopped");
                    }
                }
                return false;
            }
            Event::RolloutWaiting { .. } => {
                let lines = self.lines.lock().expect("no thread panics holding it");
                for line in lines.values() {
                    if !line.bar.is_finished() {
                        line.bar.finish_with_message("waits for promotion");
                    }
                }
                return false;
            }
            _ => return false,
        }
        true
    }

    /// Prints with the lines out of the way, then draws them again below.
    pub(crate) fn above(&self, print: impl FnOnce()) {
        self.multi.suspend(print);
    }

    /// Leaves every line as it last was, for the summary that follows.
    pub(crate) fn done(&self) {
        for line in self
            .lines
            .lock()
            .expect("no thread panics holding it")
            .values()
        {
            if !line.bar.is_finished() {
                line.bar.abandon();
            }
        }
    }

    /// Works on the line of `host` and `artifact`, added if it is new.
    fn with_line(&self, host: &str, artifact: &str, work: impl FnOnce(&mut Line)) {
        let mut lines = self.lines.lock().expect("no thread panics holding it");
        let line = lines
            .entry((host.to_string(), artifact.to_string()))
            .or_insert_with(|| {
                let style =
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed:.dim}")
                        .expect("the template is valid")
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
                let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
                bar.set_prefix(masked(&format!("{host:<12} {artifact:<8}")));
                Line {
                    bar,
                    since: Instant::now(),
                }
            });
        let new = line.bar.message().is_empty() && !line.bar.is_finished();
        work(line);
        // Ticking from its first message on, so that it is never drawn
        // without one.
        if new && !line.bar.is_finished() {
            line.bar.enable_steady_tick(Duration::from_millis(100));
        }
    }

    /// Ends a line with `message`, inert: it names a release a host
    /// reported.
    fn finish(&self, host: &str, artifact: &str, message: &str) {
        self.with_line(host, artifact, |line| {
            line.bar
                .finish_with_message(masked(&landfall::inert::inert(message)));
        });
    }
}
