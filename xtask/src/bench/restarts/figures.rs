//! The figures of one setup, drawn from what the clients saw in its quiet
//! window and during its deploys, and the report: a table of every setup,
//! a table of details, and whether each meets the hand-over's target.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Result, ensure};

use super::HOSTS;
use super::clients::{Outcome, Route, Seen, StreamEnd};

/// The hand-over's target: the most the p99 latency of `/health` may grow
/// during deploys (with nothing refused or cut).
const TARGET_ADDED: Duration = Duration::from_millis(50);

/// Requests of one route during deploys.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) requests: usize,
    pub(super) refused: usize,
    pub(super) cut: usize,
}

/// What one setup measured.
#[derive(Debug)]
pub(super) struct Figures {
    pub(super) title: &'static str,
    pub(super) handover: bool,
    /// How long each deploy took, in seconds.
    pub(super) deploys: Vec<f64>,
    /// What the summary of each deploy that failed said.
    pub(super) failed: Vec<String>,
    pub(super) health: Counts,
    pub(super) slow: Counts,
    /// Streams: those asked for, refused, and cut.
    pub(super) streams: Counts,
    /// For how many hosts, of all deploys, a stream was in flight across
    /// the stop of the instance that sent it: its last line came after
    /// that instance took its last request.
    pub(super) streams_across: usize,
    /// The latencies of `/health` answered in the quiet window.
    pub(super) quiet: Vec<Duration>,
    /// The latencies of `/health` answered during deploys.
    pub(super) during: Vec<Duration>,
    /// The latencies of `/health` answered during deploys that changed
    /// nothing.
    pub(super) noop: Vec<Duration>,
    /// How many TCP sockets the network namespace had after the deploys.
    pub(super) sockets: usize,
}

impl Figures {
    pub(super) fn new(title: &'static str, handover: bool) -> Figures {
        Figures {
            title,
            handover,
            deploys: Vec::new(),
            failed: Vec::new(),
            health: Counts::default(),
            slow: Counts::default(),
            streams: Counts::default(),
            streams_across: 0,
            quiet: Vec::new(),
            during: Vec::new(),
            noop: Vec::new(),
            sockets: 0,
        }
    }

    /// Adds what the clients saw in the quiet window: only the latencies.
    pub(super) fn add_quiet(&mut self, seen: &Seen) {
        self.quiet.extend(health_latencies(seen));
    }

    /// Adds what the clients saw during a deploy that changed nothing: the
    /// latencies, once it is sure that no host's service was restarted
    /// (every host answered from one process).
    pub(super) fn add_noop(&mut self, seen: &Seen) -> Result<()> {
        let mut pids = BTreeSet::new();
        for request in &seen.requests {
            if let Outcome::Answered { pid } = request.outcome {
                pids.insert((request.host, pid));
            }
        }
        let hosts: BTreeSet<usize> = pids.iter().map(|(host, _)| *host).collect();
        ensure!(
            pids.len() == hosts.len(),
            "a deploy that changed nothing restarted a service: {pids:?}"
        );
        self.noop.extend(health_latencies(seen));
        Ok(())
    }

    /// Adds what the clients saw during a deploy that took `seconds`: the
    /// requests that started during it, and every stream held open for it.
    pub(super) fn add_deploy(&mut self, seen: &Seen, seconds: f64) {
        self.deploys.push(seconds);
        self.during.extend(health_latencies(seen));
        for request in seen.within() {
            let counts = match request.route {
                Route::Health => &mut self.health,
                Route::Slow => &mut self.slow,
            };
            counts.requests += 1;
            match request.outcome {
                Outcome::Answered { .. } => {}
                Outcome::Refused => counts.refused += 1,
                Outcome::Cut => counts.cut += 1,
            }
        }
        let mut across = BTreeSet::new();
        for stream in &seen.streams {
            self.streams.requests += 1;
            match stream.end {
                StreamEnd::Whole | StreamEnd::Open => {}
                StreamEnd::Cut => self.streams.cut += 1,
                StreamEnd::Refused => self.streams.refused += 1,
            }
            // The last request its process took on that host: once that
            // instance is told to stop, it takes none.
            let Some(pid) = stream.pid else { continue };
            let last_taken = seen
                .requests
                .iter()
                .filter(|r| r.host == stream.host && r.outcome == Outcome::Answered { pid })
                .map(|r| r.started)
                .max();
            if last_taken.is_some_and(|last| stream.last_line > last) {
                across.insert(stream.host);
            }
        }
        self.streams_across += across.len();
    }

    fn refused(&self) -> usize {
        self.health.refused + self.slow.refused + self.streams.refused
    }

    fn cut(&self) -> usize {
        self.health.cut + self.slow.cut
    }

    /// The p99 latencies of `/health` in the quiet window and during
    /// deploys, corrected for the requests the client did not send while
    /// it waited (see [`corrected`]), with the median of the quiet window
    /// as the interval between requests.
    fn p99s(&self) -> Option<(Duration, Duration)> {
        Some((
            self.corrected_p99(&self.quiet)?,
            self.corrected_p99(&self.during)?,
        ))
    }

    /// The p99 of `samples`, corrected with the median of the quiet window.
    fn corrected_p99(&self, samples: &[Duration]) -> Option<Duration> {
        p99(&corrected(samples, median(&self.quiet)?))
    }

    /// The corrected p99 of `/health` during deploys less that of the
    /// quiet window, in milliseconds (negative when the quiet window was
    /// the slower).
    fn added_ms(&self) -> Option<f64> {
        let (quiet, during) = self.p99s()?;
        Some(ms(during) - ms(quiet))
    }

    fn meets_target(&self) -> bool {
        self.failed.is_empty()
            && self.refused() == 0
            && self.cut() == 0
            && self.streams.cut == 0
            && self
                .added_ms()
                .is_some_and(|added| added <= ms(TARGET_ADDED))
    }
}

/// The latencies of the `/health` requests answered while what was
/// measured ran.
fn health_latencies(seen: &Seen) -> impl Iterator<Item = Duration> + '_ {
    seen.within()
        .filter(|r| r.route == Route::Health && matches!(r.outcome, Outcome::Answered { .. }))
        .map(|r| r.took)
}

/// The latencies a client sending a request every `interval` would have
/// seen, from those of a client that sends the next request only once the
/// last is answered: a request that took `L` stands too for those the
/// steady client would have sent while it waited, which would have waited
/// `L - interval`, `L - 2 * interval`, … (`HdrHistogram`'s correction for
/// coordinated omission). Without it, a restart that holds the one
/// request in flight for seconds counts once among thousands of quick
/// ones, and the p99 never shows it.
fn corrected(samples: &[Duration], interval: Duration) -> Vec<Duration> {
    let mut all = Vec::with_capacity(samples.len());
    for &latency in samples {
        all.push(latency);
        let mut missed = latency.saturating_sub(interval);
        while !interval.is_zero() && missed >= interval {
            all.push(missed);
            missed -= interval;
        }
    }
    all
}

/// The 99th percentile (nearest rank) of `samples`.
fn p99(samples: &[Duration]) -> Option<Duration> {
    percentile(samples, 99)
}

fn median(samples: &[Duration]) -> Option<Duration> {
    percentile(samples, 50)
}

fn percentile(samples: &[Duration], p: usize) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * p).div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median_seconds(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The report: `heading` (what ran, where), the figures of every setup,
/// their details, and the target of each.
pub(super) fn render(heading: &str, setups: &[Figures]) -> String {
    let shown = |p: Option<Duration>| p.map_or("-".into(), |p| format!("{:.1}", ms(p)));
    let mut text = format!(
        "## Requests lost while a deploy restarts the service\n\n{heading}\n\n\
         | setup | deploys | requests | refused | cut | streams cut | p99 quiet (ms) | \
         p99 during (ms) | p99 added (ms) |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for f in setups {
        let p99s = f.p99s();
        let deploys = match f.failed.len() {
            0 => f.deploys.len().to_string(),
            failed => format!("{} ({failed} failed)", f.deploys.len()),
        };
        let _ = writeln!(
            text,
            "| {} | {deploys} | {} | {} | {} | {} of {} | {} | {} | {} |",
            f.title,
            f.health.requests + f.slow.requests,
            f.refused(),
            f.cut(),
            f.streams.cut,
            f.streams.requests - f.streams.refused,
            shown(p99s.map(|p| p.0)),
            shown(p99s.map(|p| p.1)),
            f.added_ms()
                .map_or("-".into(), |added| format!("{added:+.1}")),
        );
    }
    text.push_str(
        "\n| setup | `/health`: requests, refused, cut | `/slow`: requests, refused, cut | \
         streams: asked, refused, cut | a stream across the stop (hosts × deploys) | \
         p99 during deploys that change nothing (ms) | `/health` p99 uncorrected, quiet / \
         during (ms) | longest `/health` (ms) | deploy (s, median) | TCP sockets after |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for f in setups {
        let counts = |c: Counts| format!("{}, {}, {}", c.requests, c.refused, c.cut);
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} of {} | {} | {} / {} | {} | {:.1} | {} |",
            f.title,
            counts(f.health),
            counts(f.slow),
            counts(f.streams),
            f.streams_across,
            f.deploys.len() * HOSTS,
            shown(f.corrected_p99(&f.noop)),
            shown(p99(&f.quiet)),
            shown(p99(&f.during)),
            shown(f.during.iter().max().copied()),
            median_seconds(&f.deploys),
            f.sockets,
        );
    }
    let _ = writeln!(
        text,
        "\nThe hand-over's target: 0 refused, 0 cut, 0 streams cut, p99 added at most {} ms.\n",
        TARGET_ADDED.as_millis()
    );
    for f in setups {
        let verdict = if f.meets_target() {
            "met".to_string()
        } else {
            let mut missed = Vec::new();
            if !f.failed.is_empty() {
                missed.push(format!(
                    "{} deploys failed: {}",
                    f.failed.len(),
                    f.failed[0]
                ));
            }
            if f.refused() > 0 {
                missed.push(format!("{} refused", f.refused()));
            }
            if f.cut() > 0 {
                missed.push(format!("{} cut", f.cut()));
            }
            if f.streams.cut > 0 {
                missed.push(format!("{} streams cut", f.streams.cut));
            }
            match f.added_ms() {
                Some(added) if added > ms(TARGET_ADDED) => {
                    missed.push(format!("p99 added {added:.1} ms"));
                }
                None => missed.push("no latency measured".into()),
                Some(_) => {}
            }
            format!("missed ({})", missed.join(", "))
        };
        let kind = if f.handover {
            "hand-over"
        } else {
            "stop-then-start, for comparison"
        };
        let _ = writeln!(text, "- {} ({kind}): {verdict}", f.title);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(p99(&samples), Some(Duration::from_millis(198)));
        assert_eq!(
            p99(&[Duration::from_millis(7)]),
            Some(Duration::from_millis(7))
        );
        assert_eq!(p99(&[]), None);
    }

    #[test]
    fn a_request_held_for_long_stands_for_those_not_sent_meanwhile() {
        let ms = Duration::from_millis;
        assert_eq!(corrected(&[ms(1), ms(1)], ms(1)), [ms(1), ms(1)]);
        assert_eq!(corrected(&[ms(4)], ms(1)), [ms(4), ms(3), ms(2), ms(1)]);
        assert_eq!(corrected(&[ms(5)], ms(2)), [ms(5), ms(3)]);
    }
}
