//! The end of a run for a person: a table of every target's outcome (with
//! a batch column when a rollout had several, and each failure's message
//! under its row), the rollout that stopped or waits, if one does, and a
//! last line with the count of each outcome, the time taken by each phase
//! and the deploy's id.

use landfall::deploy::{Outcome, Status, Stopped, Summary, Waiting};
use landfall::inert::inert;

use super::{BAD, DIM, GOOD, INFO, Printer, WARN, counted, json_line, shown_error};
use crate::cli::MessageFormat;
use crate::json::Line;

impl Printer {
    pub(crate) fn summary(&self, summary: &Summary) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Summary(summary));
            return;
        }
        if let Some(live) = &self.live {
            live.done();
        }
        print_outcomes(&summary.hosts, self.verbose);
        if let Some(stopped) = &summary.stopped {
            eprintln!();
            eprintln!(
                "{BAD}{:>12}{BAD:#} {}",
                "Stopped",
                inert(&describe_stop(stopped))
            );
        }
        if let Some(waiting) = &summary.waiting {
            eprintln!();
            eprintln!(
                "{WARN}{:>12}{WARN:#} {}",
                "Waiting",
                inert(&describe_wait(waiting, &summary.env))
            );
        }
        self.print_totals(summary);
    }

    /// The last line: the outcomes counted, the time taken and by which
    /// phases, and the deploy's id.
    fn print_totals(&self, summary: &Summary) {
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
            _ if summary.waiting.is_some() => ("Waiting", WARN),
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
}

/// The table of outcomes, a row per target, with each one's message under
/// it (a skipped or waiting target's only when `verbose`).
fn print_outcomes(outcomes: &[Outcome], verbose: bool) {
    let width = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).max().unwrap_or(0);
    let host_w = width(|o| o.host.len()).max(4);
    let art_w = width(|o| o.artifact.len()).max(8);
    // A batch column when some rollout had more than one batch.
    let batched = outcomes.iter().any(|o| o.batch.is_some_and(|b| b > 1));
    if !outcomes.is_empty() {
        eprintln!();
        let batch = if batched { "batch  " } else { "" };
        eprintln!(
            "{DIM}{:host_w$}  {:art_w$}  {batch}{:11}  {:20}  previous{DIM:#}",
            "host", "artifact", "status", "release"
        );
    }
    for o in outcomes {
        let style = match o.status {
            Status::Deployed => GOOD,
            Status::Unchanged | Status::Skipped => DIM,
            Status::Waiting => INFO,
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
            && (!matches!(o.status, Status::Skipped | Status::Waiting) || verbose)
        {
            for line in shown_error(message).lines() {
                eprintln!("{:host_w$}  {DIM}{line}{DIM:#}", "");
            }
        }
    }
}

/// A rollout that waits for promotion, as the event and the summary say
/// it, with the two commands that end the wait.
pub(super) fn describe_wait(waiting: &Waiting, env: &str) -> String {
    format!(
        "{}: the rollout of deploy {} waits for promotion after batch {} of {}: \
         `cargo deploy promote {env}` goes on, `cargo deploy abort {env}` switches back",
        waiting.artifact, waiting.deploy, waiting.batch, waiting.batches
    )
}

/// A stopped rollout, as the event and the summary say it: `app: a canary
/// failed: `web1` (1 host failed, none allowed)`.
pub(super) fn describe_stop(stopped: &Stopped) -> String {
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
