//! An event as a progress line for a person: a right-aligned verb and
//! what it is about, cargo style, on stderr (or in the live lines, which
//! take the events they show); the dry run's changes under its line are
//! [`super::predict`]'s.

use landfall::event::{CheckState, Event};
use landfall::inert::inert;

use super::predict::{print_changes, print_diffs};
use super::reports::describe_orphan;
use super::summary::describe_stop;
use super::{
    BAD, DIM, GOOD, INFO, Printer, WARN, counted, json_line, short, shown_error, size, warning,
};
use crate::cli::MessageFormat;
use crate::json::{FoundOrphan, Line};

impl Printer {
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
                    print_changes(&added, &removed, &changed, &hooks);
                    print_diffs(&diffs, diff_file.as_deref());
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
            Event::Confirmed {
                host,
                artifact,
                release,
            } => self.status(
                "Confirmed",
                GOOD,
                &format!(
                    "{host} {artifact} {} over a new connection",
                    short(&release)
                ),
            ),
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
            Event::Check {
                artifact,
                check,
                kind,
                hosts,
                state,
                detail,
            } => {
                let about = format!("{artifact} `{check}` ({kind}) on {}", hosts.join(", "));
                match state {
                    CheckState::Passed => {
                        self.status("Checked", GOOD, &format!("{about}: {detail}"));
                    }
                    CheckState::Waiting => self.status(
                        "Checking",
                        INFO,
                        &format!("{about}, not passing yet: {}", first_line(&detail)),
                    ),
                    CheckState::Failed => eprintln!(
                        "{BAD}{:>12}{BAD:#} {}: {}",
                        "Check failed",
                        inert(&about),
                        shown_error(&detail)
                    ),
                }
            }
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
            Event::RolloutWaiting {
                artifact,
                batch,
                batches,
                deploy,
            } => self.status(
                "Waiting",
                WARN,
                &format!(
                    "{artifact} after batch {batch}/{batches}: deploy {deploy} waits for promotion"
                ),
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
}

/// The first line of a text, to say it in a progress line.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
