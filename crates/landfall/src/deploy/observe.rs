//! What follows a batch of a rollout: the artifact's checks, run from the
//! deploying machine, until each passes for every host activated so far
//! (within its `timeout`), then through the pause, with the hosts' own
//! health, until it ends. A host that fails is switched back, and counts
//! as a failed host of the rollout. The hosts a rollout that waited for
//! promotion activated are judged again when it goes on: the checks as
//! after a batch, and their health once.
//!
//! A check that has not passed yet for a host is waiting: an `http` or
//! `exec` check that fails then is tried again a second later, as a health
//! check is, and a Prometheus query without a sample has no data yet.
//! Once a check has passed for a host, any failure switches it back; a
//! Prometheus sample beyond its bound does at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::activate::revert_switched;
use super::checks::{self, Place, Verdict};
use super::{Lock, Run, Status, Work};
use crate::config::Artifact;
use crate::event::{CheckState, Event, Phase};
use crate::parallel::parallel;
use crate::plan::checks::{RenderedCheck, RenderedProbe, Sets};
use crate::steps::Step;

/// How often the hosts activated so far are checked during a pause, and
/// checks that passed are run again.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How soon a check that has not passed yet is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// A host that failed in a rollout, and where.
pub(super) type Failure = (usize, Phase);

/// Checks (by index) on hosts (work indices).
type Seen = HashSet<(usize, usize)>;

/// Since when a check's Prometheus server has not answered for a host.
type Unanswered = HashMap<(usize, usize), Instant>;

/// Hosts to switch back (work indices), by why, and where they failed.
type Unwell = BTreeMap<String, (Phase, Vec<usize>)>;

/// One check's verdict on some hosts (work indices).
struct Found {
    check: usize,
    hosts: Vec<usize>,
    verdict: Verdict,
}

/// What follows a batch, besides the checks until each passes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Watch {
    /// The pause before the next batch (zero: none), through which the
    /// checks and the hosts' health are run again.
    Pause(Duration),
    /// The hosts were activated before the rollout waited for promotion,
    /// and are judged again as the rollout goes on: their health once.
    Again,
}

/// Watches the hosts of `artifact` switched so far (`switched`) after
/// `batch` was activated (or, `Watch::Again`, after it waited for
/// promotion): its checks until each passes, and, through a pause, the
/// checks and the hosts' health. The hosts that failed, switched back.
pub(super) fn observe(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    artifact: &Artifact,
    (switched, batch): (&[usize], &[usize]),
    watch: Watch,
) -> Vec<Failure> {
    let (pause, again) = match watch {
        Watch::Pause(pause) => (pause, false),
        Watch::Again => (Duration::ZERO, true),
    };
    let has_checks = !artifact.rollout.checks.is_empty();
    if !has_checks && pause.is_zero() && !again {
        return Vec::new();
    }
    let start = Instant::now();
    let end = start + pause;
    let mut next_health = start + CHECK_EVERY;
    // Judged again, the hosts' health is read once, at once.
    let mut health_again = again;
    // A host of an earlier batch passed every check already.
    let mut passed: HashSet<(usize, usize)> = HashSet::new();
    for &i in switched.iter().filter(|i| !batch.contains(i)) {
        for c in 0..work[i].target.checks.len() {
            passed.insert((c, i));
        }
    }
    let mut waiting: HashSet<(usize, usize)> = HashSet::new();
    let mut unanswered: Unanswered = HashMap::new();
    let mut failed = Vec::new();
    loop {
        let live = live(work, artifact, switched);
        if live.is_empty() {
            return failed;
        }
        let now = Instant::now();
        let mut unwell: Unwell = BTreeMap::new();
        if has_checks {
            for found in run_checks(run, work, artifact, &live) {
                judge(
                    run,
                    work,
                    artifact,
                    found,
                    start,
                    (&mut passed, &mut waiting, &mut unanswered),
                    &mut unwell,
                );
            }
        }
        if std::mem::take(&mut health_again)
            || (!pause.is_zero() && (now >= next_health || now >= end))
        {
            next_health = now + CHECK_EVERY;
            for (i, why) in health(run, work, &live, again) {
                if !unwell.values().any(|(_, hosts)| hosts.contains(&i)) {
                    unwell
                        .entry(why)
                        .or_insert((Phase::Health, Vec::new()))
                        .1
                        .push(i);
                }
            }
        }
        for (why, (phase, hosts)) in unwell {
            revert_switched(run, work, &hosts, Some(&why));
            failed.extend(hosts.into_iter().map(|i| (i, phase)));
        }
        let live = self::live(work, artifact, switched);
        let pending = live
            .iter()
            .any(|&i| (0..work[i].target.checks.len()).any(|c| !passed.contains(&(c, i))));
        let now = Instant::now();
        if !pending && now >= end {
            return failed;
        }
        let mut next = now + if pending { RETRY } else { CHECK_EVERY };
        if now < end {
            next = next.min(end);
        }
        if run
            .cancel
            .wait(next.saturating_duration_since(Instant::now()))
        {
            return failed;
        }
    }
}

/// The hosts of `artifact` switched in this run and on the new release
/// still.
fn live(work: &[Work<'_>], artifact: &Artifact, switched: &[usize]) -> Vec<usize> {
    switched
        .iter()
        .copied()
        .filter(|&i| {
            work[i].target.artifact == artifact.name
                && work[i].status == Some(Status::Deployed)
                && work[i].lock == Lock::Held
        })
        .collect()
}

/// The hosts of `artifact` on the new release (switched, or holding it
/// already), and the others of the run.
fn sets<'a>(work: &'a [Work<'_>], artifact: &Artifact) -> Sets<'a> {
    let mut sets = Sets::default();
    for w in work.iter().filter(|w| w.target.artifact == artifact.name) {
        let host = (w.target.host.as_str(), w.target.address.as_str());
        if matches!(w.status, Some(Status::Deployed | Status::Unchanged)) {
            sets.new.push(host);
        } else {
            sets.old.push(host);
        }
    }
    sets
}

/// Runs every check for the `live` hosts, `jobs` at once. Hosts whose
/// Prometheus queries read the same are asked once, and share the verdict.
fn run_checks(run: &Run<'_>, work: &[Work<'_>], artifact: &Artifact, live: &[usize]) -> Vec<Found> {
    let sets = sets(work, artifact);
    let mut jobs: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut asked: BTreeMap<(String, String), usize> = BTreeMap::new();
    for &i in live {
        for (c, check) in work[i].target.checks.iter().enumerate() {
            if let RenderedProbe::Prometheus { server, query, .. } = &check.probe {
                let key = (server.clone(), RenderedProbe::query_for(query, &sets));
                if let Some(&job) = asked.get(&key) {
                    jobs[job].1.push(i);
                    continue;
                }
                asked.insert(key, jobs.len());
            }
            jobs.push((c, vec![i]));
        }
    }
    let verdicts = parallel(&jobs, run.jobs, |(c, hosts)| {
        let w = &work[hosts[0]];
        let place = Place {
            env: &run.env.name,
            target: w.target,
            release: &w.release.id,
            workspace: &run.project.workspace.root,
        };
        checks::run(&w.target.checks[*c], &place, &sets)
    });
    jobs.into_iter()
        .zip(verdicts)
        .map(|((check, hosts), verdict)| Found {
            check,
            hosts,
            verdict,
        })
        .collect()
}

/// Takes one verdict into the state of its check on its hosts: a first
/// pass and a first wait are said, and a failure adds the hosts to
/// `unwell`, by why.
fn judge(
    run: &Run<'_>,
    work: &[Work<'_>],
    artifact: &Artifact,
    found: Found,
    start: Instant,
    (passed, waiting, unanswered): (&mut Seen, &mut Seen, &mut Unanswered),
    unwell: &mut Unwell,
) {
    let check: &RenderedCheck = &work[found.hosts[0]].target.checks[found.check];
    let c = found.check;
    let late = start.elapsed() >= check.timeout;
    let say = |hosts: &[usize], state: CheckState, detail: &str| {
        if hosts.is_empty() {
            return;
        }
        (run.events)(Event::Check {
            artifact: artifact.name.clone(),
            check: check.name.clone(),
            kind: check.kind().to_string(),
            hosts: hosts.iter().map(|&i| work[i].target.host.clone()).collect(),
            state,
            detail: detail.to_string(),
        });
    };
    let (new, old): (Vec<usize>, Vec<usize>) = found
        .hosts
        .iter()
        .partition(|&&i| !passed.contains(&(c, i)));
    if !matches!(found.verdict, Verdict::Unanswered(_)) {
        for &i in &found.hosts {
            unanswered.remove(&(c, i));
        }
    }
    match found.verdict {
        // A server that does not answer knows nothing of the release: it
        // fails the check only once that lasted the check's `timeout`.
        Verdict::Unanswered(why) => {
            let now = Instant::now();
            let mut first = Vec::new();
            let mut failing = Vec::new();
            for &i in &found.hosts {
                let since = *unanswered.entry((c, i)).or_insert_with(|| {
                    first.push(i);
                    now
                });
                if now.duration_since(since) >= check.timeout {
                    failing.push(i);
                }
            }
            say(&first, CheckState::Waiting, &why);
            let detail = format!("no answer for {}: {why}", seconds(check.timeout));
            fail(check, &failing, &detail, unwell);
            say(&failing, CheckState::Failed, &detail);
        }
        Verdict::Pass(seen) => {
            for &i in &new {
                passed.insert((c, i));
            }
            say(&new, CheckState::Passed, &seen);
        }
        Verdict::NoData(why) if !late => {
            let first: Vec<usize> = new
                .into_iter()
                .filter(|&i| waiting.insert((c, i)))
                .collect();
            say(&first, CheckState::Waiting, &why);
        }
        // Passed before: a query without data now judges nothing.
        Verdict::NoData(why) => {
            let detail = format!("no data within {}: {why}", seconds(check.timeout));
            fail(check, &new, &detail, unwell);
            say(&new, CheckState::Failed, &detail);
        }
        Verdict::Fail(why) => {
            // A probe not yet passed may still come up; a query's verdict,
            // and a host that passed before, are final.
            let final_now = late || matches!(check.probe, RenderedProbe::Prometheus { .. });
            let (failing, first) = if final_now {
                (found.hosts.clone(), Vec::new())
            } else {
                let first: Vec<usize> = new
                    .iter()
                    .copied()
                    .filter(|&i| waiting.insert((c, i)))
                    .collect();
                (old, first)
            };
            say(&first, CheckState::Waiting, &why);
            let detail = if late
                && !new.is_empty()
                && !matches!(check.probe, RenderedProbe::Prometheus { .. })
            {
                format!("it did not pass within {}: {why}", seconds(check.timeout))
            } else {
                why
            };
            fail(check, &failing, &detail, unwell);
            say(&failing, CheckState::Failed, &detail);
        }
    }
}

fn fail(check: &RenderedCheck, hosts: &[usize], detail: &str, unwell: &mut Unwell) {
    if hosts.is_empty() {
        return;
    }
    let why = format!("the check `{}` failed: {detail}", check.name);
    unwell
        .entry(why)
        .or_insert((Phase::Check, Vec::new()))
        .1
        .extend(hosts);
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The hosts' own health (`Step::Check`: the service's state, its `ready`,
/// the `health` hook): those that are not well, and why.
fn health(run: &Run<'_>, work: &[Work<'_>], live: &[usize], again: bool) -> Vec<(usize, String)> {
    let when = if again {
        "after the wait for promotion"
    } else {
        "during the pause"
    };
    let results = parallel(live, run.jobs, |&i| {
        let w = &work[i];
        let script = run
            .script(w.target)
            .allowing(super::activation_time(w.target))
            .step(Step::Check {
                path: w.path.clone(),
                release: w.release.id.clone(),
            });
        run.transport.run(&w.target.host, &script)
    });
    let mut unwell = Vec::new();
    for (&i, result) in live.iter().zip(results) {
        let (what, detail) = match result {
            Ok(reply) if reply.success() => continue,
            Ok(reply) => {
                let what = reply
                    .reports
                    .iter()
                    .find_map(|r| match r {
                        crate::steps::Report::Failed { step } => Some(step.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "health".into());
                (what, reply.failure_output())
            }
            Err(err) => ("health".into(), err.to_string()),
        };
        (run.events)(Event::Warning {
            message: format!(
                "on `{}`: `{}` is not well {when} ({what} failed): switching it back{}",
                work[i].target.host,
                work[i].target.artifact,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(":\n{detail}")
                }
            ),
        });
        unwell.push((i, format!("it was not well {when}")));
    }
    unwell
}
