//! The activate phase as a rollout: per artifact, in `after` order, the
//! canaries first, then batches, each followed by the artifact's checks
//! and a pause during which the hosts activated so far are checked again
//! (`observe`), or a wait for promotion (`waiting`), and a failure budget
//! (`[artifact.X.rollout]`). Before any of it, each artifact's `once`
//! hook runs on one host.

use std::time::Duration;

use super::activate::{
    ActivationEnd, activate_one, record_revert, report_removed, revert_switched,
};
use super::observe::{Failure, Watch, observe};
use super::summary::Waiting;
use super::waiting::Resume;
use super::{Action, Lock, Run, Status, Stopped, Work, describe_failure};
use crate::config::{Artifact, OnFailure};
use crate::event::{Event, Phase};
use crate::parallel::parallel;
use crate::steps::{Activation, Step};

/// How many of an artifact's hosts may fail before its rollout stops: its
/// `max_fail`, of the hosts it has in this run.
pub(super) fn allowed_failures(artifact: &Artifact, work: &[Work<'_>]) -> usize {
    let hosts = work
        .iter()
        .filter(|w| w.target.artifact == artifact.name)
        .count();
    artifact.rollout.max_fail.of(hosts)
}

/// How many of an artifact's hosts failed so far in this run: those that
/// failed, and those whose activation failed and that switched back.
fn failures(artifact: &str, work: &[Work<'_>]) -> usize {
    work.iter()
        .filter(|w| {
            w.target.artifact == artifact
                && matches!(w.status, Some(Status::Failed | Status::RolledBack))
        })
        .count()
}

/// Whether every artifact's failures so far are within its budget (hosts
/// that could not be read or pushed to count against it).
pub(super) fn within_budget(run: &Run<'_>, work: &[Work<'_>]) -> bool {
    run.project
        .artifacts
        .iter()
        .all(|a| failures(&a.name, work) <= allowed_failures(a, work))
}

/// Runs each artifact's `once` hook on one host (the first that the
/// rollout activates), after every push and before any switch. Returns
/// false if one failed: then nothing is activated.
pub(super) fn run_once(run: &Run<'_>, work: &mut [Work<'_>], provenance: &str) -> bool {
    for artifact in &run.project.artifacts {
        // The run that waited for promotion ran it before any switch.
        if work
            .iter()
            .any(|w| w.resumed && w.target.artifact == artifact.name)
        {
            continue;
        }
        let Some(i) = (0..work.len()).find(|&i| {
            work[i].target.artifact == artifact.name
                && work[i].needs_work()
                && work[i].target.hooks.once.is_some()
        }) else {
            continue;
        };
        if super::phases::interrupted(run, work) {
            return false;
        }
        let w = &work[i];
        let mut script = run
            .script(w.target)
            .allowing(super::hook_time(w.target.hooks.timeout));
        if w.unfinished {
            script = script.step(super::activate::finalize(w, provenance));
        }
        script = script.step(Step::Once {
            path: w.path.clone(),
            release: w.release.id.clone(),
        });
        let result = run.transport.run(&w.target.host, &script);
        let w = &mut work[i];
        match result {
            Ok(reply) if reply.success() => {
                w.unfinished = false;
                (run.events)(Event::Once {
                    host: w.target.host.clone(),
                    artifact: w.target.artifact.clone(),
                    release: w.release.id.clone(),
                });
            }
            Ok(reply) => {
                let message = if reply.exit == crate::steps::Exit::PreActivateFailed {
                    format!(
                        "the hook failed; no host was switched:\n{}",
                        reply.hook_output()
                    )
                } else {
                    describe_failure(&reply)
                };
                run.fail(w, Phase::Once, message);
                let host = w.target.host.clone();
                skip_all(
                    work,
                    &format!(
                        "not activated: the once hook of `{}` failed on `{host}`",
                        artifact.name
                    ),
                );
                return false;
            }
            Err(err) => {
                run.fail(w, Phase::Once, err.to_string());
                skip_all(
                    work,
                    &format!(
                        "not activated: the once hook of `{}` could not run",
                        artifact.name
                    ),
                );
                return false;
            }
        }
    }
    true
}

/// Marks every target not yet worked on as skipped, for `reason`.
fn skip_all(work: &mut [Work<'_>], reason: &str) {
    for w in work.iter_mut().filter(|w| w.needs_work()) {
        w.status = Some(Status::Skipped);
        // One interrupted says so already.
        w.message.get_or_insert_with(|| reason.to_string());
    }
}

/// The hosts of one artifact in the order the rollout takes them: the
/// canaries alone first (with `canaries`), then batches.
fn batches(
    artifact: &Artifact,
    todo: &[usize],
    hosts: usize,
    canaries: bool,
) -> Vec<(bool, Vec<usize>)> {
    let rollout = &artifact.rollout;
    let canaries = if canaries {
        (rollout.canary as usize).min(todo.len())
    } else {
        0
    };
    let size = rollout.batch.of_rounded_up(hosts).max(1);
    let mut out = Vec::new();
    if canaries > 0 {
        out.push((true, todo[..canaries].to_vec()));
    }
    for chunk in todo[canaries..].chunks(size) {
        out.push((false, chunk.to_vec()));
    }
    out
}

/// How the activate phase ended before its last artifact was rolled out.
pub(super) enum Halt {
    /// A rollout stopped: the artifacts after it are not activated.
    Stopped(Stopped),
    /// A rollout waits for promotion: the locks are kept.
    Waiting(Waiting),
}

/// The activate phase: artifacts in order, each rolled out over its hosts.
/// Returns how it ended early, if it did: a rollout that stopped (the
/// artifacts after it are not activated), or one that waits for
/// promotion. With `resume`, it goes on with the rollout that waited: the
/// hosts activated then count as switched in this run and are checked
/// again first, and the rollout of the artifact that waited goes on after
/// the batch it reached, with no canary again.
pub(super) fn activate_all(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    provenance: &str,
    resume: Option<&Resume>,
) -> Option<Halt> {
    let mut switched: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].resumed && work[i].status == Some(Status::Deployed))
        .collect();
    // A host that activated is done, and may tidy up and unlock in the same
    // round trip, unless another host's failure, or a check after its
    // batch, during a pause or after a wait for promotion, could still
    // switch it back.
    let tidy = (run.env.on_failure == OnFailure::Stop
        || work.iter().filter(|w| w.needs_work()).count() == 1)
        && switched.is_empty()
        && run.project.artifacts.iter().all(|a| {
            a.rollout.pause.is_zero() && a.rollout.checks.is_empty() && !a.rollout.promote
        });
    for artifact in &run.project.artifacts {
        skip_after_failed(run, work, artifact);
        let todo: Vec<usize> = (0..work.len())
            .filter(|&i| work[i].target.artifact == artifact.name && work[i].needs_work())
            .collect();
        let hosts = work
            .iter()
            .filter(|w| w.target.artifact == artifact.name)
            .count();
        let allowed = allowed_failures(artifact, work);
        // The batches done before the rollout waited.
        let done = resume
            .filter(|r| r.artifact == artifact.name)
            .map_or(0, |r| r.batch);
        let plan = batches(artifact, &todo, hosts, done == 0);
        let count = done + plan.len();
        let mut stopped: Option<String> = None;
        // The hosts activated before the wait are checked again first, as
        // after their batch: a canary among them still stops the rollout.
        let again: Vec<usize> = switched
            .iter()
            .copied()
            .filter(|&i| work[i].target.artifact == artifact.name)
            .collect();
        if !again.is_empty() {
            let canary = done == 1 && artifact.rollout.canary > 0;
            let failed_here = observe(run, work, artifact, (&switched, &again), Watch::Again);
            stopped = judge(run, work, artifact, allowed, canary, &failed_here);
        }
        for (n, (canary, batch)) in plan.iter().enumerate() {
            if stopped.is_some() {
                break;
            }
            let number = done + n + 1;
            if super::phases::interrupted(run, work) {
                stopped = Some("landfall was asked to stop".into());
                break;
            }
            for &i in batch {
                work[i].batch = Some(number);
            }
            (run.events)(Event::Batch {
                artifact: artifact.name.clone(),
                batch: number,
                batches: count,
                canary: *canary,
                hosts: batch.iter().map(|&i| work[i].target.host.clone()).collect(),
            });
            // Each host is confirmed as soon as its own activation ends:
            // its window counts from then.
            let outputs = parallel(batch, run.jobs, |&i| {
                let end = activate_one(run, &work[i], tidy, provenance);
                let confirmation = super::confirm::confirm_one(run, &work[i], &end);
                (end, confirmation)
            });
            let mut failed_here = Vec::new();
            let mut confirmations = Vec::new();
            for (&i, (output, confirmation)) in batch.iter().zip(outputs) {
                match record_activation(run, &mut work[i], output) {
                    None if work[i].action != Action::Reactivate => switched.push(i),
                    None => {}
                    Some(phase) => failed_here.push((i, phase)),
                }
                confirmations.extend(confirmation.map(|c| (i, c)));
            }
            failed_here.extend(super::confirm::record(run, work, confirmations));
            if let Some(reason) = judge(run, work, artifact, allowed, *canary, &failed_here) {
                stopped = Some(reason);
                break;
            }
            // Asked to stop while this batch ran: the run settles as a
            // failure would, whatever the batch did.
            if super::phases::interrupted(run, work) {
                stopped = Some("landfall was asked to stop".into());
                break;
            }
            // The checks, and the pause before the next batch.
            let pause = if number < count {
                artifact.rollout.pause
            } else {
                Duration::ZERO
            };
            if !pause.is_zero() {
                (run.events)(Event::Pause {
                    artifact: artifact.name.clone(),
                    seconds: pause.as_secs_f64(),
                    next: number + 1,
                });
            }
            let failed_here = observe(run, work, artifact, (&switched, batch), Watch::Pause(pause));
            if let Some(reason) = judge(run, work, artifact, allowed, *canary, &failed_here) {
                stopped = Some(reason);
                break;
            }
            // A person says when the next batch goes: the run ends here,
            // its locks kept.
            if number < count && artifact.rollout.promote {
                if super::phases::interrupted(run, work) {
                    stopped = Some("landfall was asked to stop".into());
                    break;
                }
                let waiting = Waiting {
                    artifact: artifact.name.clone(),
                    batch: number,
                    batches: count,
                    deploy: run.identity.deploy.clone(),
                };
                match super::waiting::wait(run, work, &waiting, provenance) {
                    Ok(()) => return Some(Halt::Waiting(waiting)),
                    Err(reason) => {
                        stopped = Some(reason);
                        break;
                    }
                }
            }
        }
        if let Some(reason) = stopped {
            let stopped = Stopped {
                artifact: artifact.name.clone(),
                failed: failures(&artifact.name, work),
                max_fail: allowed,
                reason: reason.clone(),
            };
            (run.events)(Event::RolloutStopped {
                artifact: stopped.artifact.clone(),
                failed: stopped.failed,
                max_fail: stopped.max_fail,
                reason: stopped.reason.clone(),
            });
            skip_all(
                work,
                &format!("not activated: the rollout stopped ({reason})"),
            );
            if run.env.on_failure == OnFailure::RollbackAll {
                // A host that already tidied up and unlocked (the only one
                // this run deploys) is done, and stays so; one switched
                // back by a check in a pause is back already.
                switched.retain(|&i| {
                    work[i].lock == Lock::Held && work[i].status == Some(Status::Deployed)
                });
                let why = format!("the rollout stopped: {reason}");
                revert_switched(run, work, &switched, Some(&why));
            }
            return Some(Halt::Stopped(stopped));
        }
    }
    None
}

/// Targets of `artifact` on hosts where an artifact it comes `after` failed
/// in this run are not activated.
fn skip_after_failed(run: &Run<'_>, work: &mut [Work<'_>], artifact: &Artifact) {
    if artifact.after.is_empty() {
        return;
    }
    let failed: Vec<(String, String)> = work
        .iter()
        .filter(|w| {
            artifact.after.contains(&w.target.artifact)
                && matches!(w.status, Some(Status::Failed | Status::RolledBack))
        })
        .map(|w| (w.target.host.clone(), w.target.artifact.clone()))
        .collect();
    for w in work
        .iter_mut()
        .filter(|w| w.target.artifact == artifact.name && w.needs_work())
    {
        if let Some((_, before)) = failed.iter().find(|(host, _)| *host == w.target.host) {
            w.status = Some(Status::Skipped);
            w.message = Some(format!(
                "not activated: `{before}`, which it comes after, failed on this host"
            ));
            (run.events)(Event::Warning {
                message: format!(
                    "on `{}`: `{}` is not activated, since `{before}` failed there",
                    w.target.host, artifact.name
                ),
            });
        }
    }
}

/// Records how one activation ended; where it failed, if it did (`None`:
/// the host is on the new release).
fn record_activation(
    run: &Run<'_>,
    w: &mut Work<'_>,
    output: Result<ActivationEnd, String>,
) -> Option<Phase> {
    match output {
        Ok(ActivationEnd {
            activation: Activation::Activated,
            tidied,
            ..
        }) => {
            w.status = Some(Status::Deployed);
            (run.events)(Event::Activated {
                host: w.target.host.clone(),
                artifact: w.target.artifact.clone(),
                release: w.release.id.clone(),
                previous: w.current.clone(),
            });
            if let Some(removed) = tidied {
                w.lock = Lock::Free;
                report_removed(run, w, removed);
            }
            None
        }
        Ok(ActivationEnd {
            activation: Activation::PreActivateFailed { step },
            detail,
            ..
        }) => {
            let what = if step == "service" {
                "the service manager cannot be used here"
            } else {
                "the hook failed"
            };
            run.fail(
                w,
                Phase::PreActivate,
                format!("{what}; `current` is untouched{detail}"),
            );
            Some(Phase::PreActivate)
        }
        Ok(ActivationEnd {
            activation: Activation::Failed { step, revert },
            detail,
            gave_up,
            ..
        }) => {
            let phase = if step == "health" || step == "ready" {
                Phase::Health
            } else {
                Phase::Activate
            };
            record_revert(run, w, phase, (Some(&step), gave_up), &revert, &detail);
            Some(phase)
        }
        Err(message) => {
            run.fail(w, Phase::Activate, message);
            Some(Phase::Activate)
        }
    }
}

/// After a batch (or a pause) in which `failed` hosts failed: the reason
/// the rollout stops, if it does. Otherwise each of them, switched back on
/// its own, is reported `failed`, within the budget.
fn judge(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    artifact: &Artifact,
    allowed: usize,
    canary: bool,
    failed: &[Failure],
) -> Option<String> {
    if failed.is_empty() {
        return None;
    }
    if canary {
        return Some(format!(
            "a canary failed: {}",
            hosts_of(work, failed).join(", ")
        ));
    }
    let total = failures(&artifact.name, work);
    if total > allowed {
        return Some(format!(
            "{total} host{} failed, more than `max_fail` allows ({allowed})",
            if total == 1 { "" } else { "s" }
        ));
    }
    for &(i, phase) in failed {
        let w = &mut work[i];
        if w.status != Some(Status::RolledBack) {
            // Failed already, and reported so.
            continue;
        }
        // Switched back on its own: reported `failed`, for the rollout goes
        // on without it.
        w.status = Some(Status::Failed);
        // The message says where, first, as the event does.
        let message = w.message.clone().unwrap_or_default();
        let text = message
            .split_once(": ")
            .map_or(message.as_str(), |(_, rest)| rest);
        (run.events)(Event::Failed {
            host: w.target.host.clone(),
            artifact: w.target.artifact.clone(),
            phase,
            message: format!(
                "within the failure budget ({total} of {allowed} allowed), the rollout goes on \
                 without this host: {text}"
            ),
        });
    }
    None
}

fn hosts_of(work: &[Work<'_>], failed: &[Failure]) -> Vec<String> {
    failed
        .iter()
        .map(|&(i, _)| format!("`{}`", work[i].target.host))
        .collect()
}
