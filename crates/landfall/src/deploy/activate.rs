//! The activation of one target on its host, and what follows it: the
//! switch back of a target that failed (or of every target switched, as
//! the rollout decides), old releases removed and locks released.

use super::decide::Action;
use super::{Lock, Run, Status, Work, describe_failure};
use crate::event::{Event, Phase};
use crate::parallel::parallel;
use crate::steps::{Activation, Revert, Script, Step};

pub(super) fn finalize(w: &Work<'_>, provenance: &str) -> Step {
    Step::Finalize {
        path: w.path.clone(),
        release: w.release.id.clone(),
        provenance: provenance.to_string(),
    }
}

/// How an activation ended on one host.
pub(super) struct ActivationEnd {
    pub(super) activation: Activation,
    /// The tail of the hooks' output, or why the service did not run, for
    /// failure messages.
    pub(super) detail: String,
    /// The service's manager gave up on it, which ended the wait for it.
    pub(super) gave_up: bool,
    /// When the host tidied up and unlocked in the same round trip: the
    /// releases it removed.
    pub(super) tidied: Option<Vec<String>>,
    /// When the watcher the activation armed switches back unless it is
    /// confirmed (the host's clock, seconds since the epoch).
    pub(super) armed: Option<i64>,
}

/// Runs the activation for one target, renaming its upload first if the
/// push left that to it, and with `tidy` removing old releases and
/// unlocking once it is activated. An activation to be confirmed arms
/// its host's watcher, and keeps the lock until it is confirmed.
pub(super) fn activate_one(
    run: &Run<'_>,
    w: &Work<'_>,
    tidy: bool,
    provenance: &str,
) -> Result<ActivationEnd, String> {
    let arm = super::confirm::arm(run, w);
    let tidy = tidy && arm.is_none();
    let mut script = run
        .script(w.target)
        .allowing(super::activation_time(w.target));
    if w.unfinished {
        script = script.step(finalize(w, provenance));
    }
    let reactivate = w.action == Action::Reactivate;
    let (event, previous) = if reactivate {
        ("reactivated", None)
    } else {
        ("activated", w.previous.as_deref())
    };
    let mut activation = run.activation(
        w.target,
        &w.path,
        (&w.release.id, previous),
        !reactivate,
        &super::Change {
            event,
            revision: run.identity.revision.describe(),
            undoes: &[],
        },
    );
    if let Step::Activate { confirm, .. } = &mut activation {
        *confirm = arm;
    }
    script = script.step(activation);
    if tidy {
        script = tidy_up(run, w, script, true);
    }
    let reply = run
        .transport
        .run(&w.target.host, &script)
        .map_err(|e| e.to_string())?;
    run.notify(&w.target.host, &w.target.artifact, &reply);
    let activation = reply.activation().ok_or_else(|| describe_failure(&reply))?;
    let tail = reply.failure_output();
    Ok(ActivationEnd {
        activation,
        detail: if tail.is_empty() {
            String::new()
        } else {
            format!(":\n{tail}")
        },
        gave_up: reply.causes().0.is_some_and(|cause| cause.gave_up()),
        tidied: reply.unlocked().then(|| reply.removed()),
        armed: reply.armed(),
    })
}

/// The end of a target's deploy in a run that activated nothing anywhere:
/// what its claim made (`created`) goes again, or else the upload left
/// unfinished, and the lock is released. A first deploy that goes no
/// further leaves nothing on a host.
pub(super) fn abandon(run: &Run<'_>, w: &Work<'_>, created: Option<&str>) -> Script {
    let script = run.script(w.target);
    match created {
        Some(dir) => script.step(Step::Forget {
            path: w.path.clone(),
            dir: dir.to_string(),
            token: run.identity.token.clone(),
        }),
        None => tidy_up(run, w, script, false),
    }
}

/// Appends the end of a target's deploy: with `deployed`, the removal of
/// releases beyond `keep`, and otherwise of an upload left unfinished; then
/// the release of the lock.
pub(super) fn tidy_up(run: &Run<'_>, w: &Work<'_>, script: Script, deployed: bool) -> Script {
    let script = if deployed {
        let keep = run
            .project
            .artifact(&w.target.artifact)
            .map_or(1, |a| a.keep as usize);
        script.step(Step::Cleanup {
            path: w.path.clone(),
            keep,
            previous: w.previous.clone(),
        })
    } else {
        script.step(Step::Discard {
            path: w.path.clone(),
            release: w.release.id.clone(),
        })
    };
    script.step(Step::Unlock {
        path: w.path.clone(),
        token: run.identity.token.clone(),
    })
}

pub(super) fn report_removed(run: &Run<'_>, w: &Work<'_>, releases: Vec<String>) {
    if !releases.is_empty() {
        (run.events)(Event::Removed {
            host: w.target.host.clone(),
            artifact: w.target.artifact.clone(),
            releases,
        });
    }
}

/// Records how switching back went. `detail` is the tail of the hooks'
/// output, or why the service did not run, shown after the message;
/// `gave_up`: its manager gave up on the service, which ended the wait.
pub(super) fn record_revert(
    run: &Run<'_>,
    w: &mut Work<'_>,
    phase: Phase,
    (step, gave_up): (Option<&str>, bool),
    revert: &Revert,
    detail: &str,
) {
    let ready_timeout = w.target.service.as_ref().map(|s| s.ready_timeout);
    let what = match (phase, step) {
        (Phase::Rollback, why) => why.unwrap_or("another host failed").to_string(),
        (_, Some("service")) => "the service could not be started".to_string(),
        (_, Some("confirm")) => {
            "the host could not arm the timer that switches it back unless it is confirmed"
                .to_string()
        }
        // Its manager gave up before the time was up: the detail says so.
        (_, Some("ready")) if gave_up => "the service was not ready".to_string(),
        (_, Some("ready")) => format!(
            "the service was not ready within {}s",
            crate::steps::timeout_seconds(ready_timeout.unwrap_or_default())
        ),
        _ => format!("the {} hook failed", phase.name()),
    };
    match revert {
        Revert::Done { to } => {
            (run.events)(Event::RolledBack {
                host: w.target.host.clone(),
                artifact: w.target.artifact.clone(),
                release: w.release.id.clone(),
                to: to.clone(),
            });
            w.status = Some(Status::RolledBack);
            let back = to.as_deref().map_or_else(
                || "no previous release, `current` removed".to_string(),
                |to| format!("rolled back to {to}"),
            );
            w.message = Some(format!("{}: {what}; {back}{detail}", phase.name()));
        }
        Revert::Failed { to, step } => {
            let to = to.as_deref().unwrap_or("nothing");
            run.fail(
                w,
                phase,
                format!(
                    "{what}; switched back to {to}, but {} it recorded failed too{detail}",
                    match step.as_str() {
                        "service" => "the service".to_string(),
                        "ready" => "the readiness check of the service".to_string(),
                        hook => format!("the {hook} hook"),
                    }
                ),
            );
        }
        Revert::NotAttempted => run.fail(w, phase, format!("{what}{detail}")),
    }
}

/// The script that switches a target back to the release before this
/// run's (its watcher disarmed first, if it has one), and logs it.
pub(super) fn back(run: &Run<'_>, w: &Work<'_>) -> Script {
    let log = run.log_line(
        w.target,
        "rolled_back",
        w.previous.as_deref(),
        Some(&w.release.id),
        None,
        &[],
    );
    run.script(w.target)
        .allowing(super::activation_time(w.target))
        .step(Step::Back {
            path: w.path.clone(),
            from: w.release.id.clone(),
            to: w.previous.clone(),
            log,
        })
}

/// Switches back every host switched in this run, last first; `why` says
/// why, when it is not that another host failed.
pub(super) fn revert_switched(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    switched: &[usize],
    why: Option<&str>,
) {
    let order: Vec<usize> = switched.iter().rev().copied().collect();
    let outputs = parallel(&order, run.jobs, |&i| {
        let w = &work[i];
        run.transport.run(&w.target.host, &back(run, w))
    });
    for (&i, output) in order.iter().zip(outputs) {
        let w = &mut work[i];
        let phase = Phase::Rollback;
        match output {
            Ok(reply) if matches!(reply.output.code, Some(0 | 1)) => {
                run.notify(&w.target.host, &w.target.artifact, &reply);
                let detail = if reply.success() {
                    String::new()
                } else {
                    format!(":\n{}", reply.failure_output())
                };
                record_revert(run, w, phase, (why, false), &reply.revert(), &detail);
            }
            Ok(reply) => run.fail(w, phase, describe_failure(&reply)),
            Err(err) => run.fail(w, phase, err.to_string()),
        }
    }
}

/// Phase 4: old releases go, locks are released. When the run activated
/// nothing (`activating` false: it was refused, or a push failed), the
/// directories its claims made go too.
pub(super) fn finish(run: &Run<'_>, work: &mut [Work<'_>], activating: bool) {
    let locked: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].lock == Lock::Held)
        .collect();
    let outputs = parallel(&locked, run.jobs, |&i| {
        let w = &work[i];
        let script = if activating {
            tidy_up(
                run,
                w,
                run.script(w.target),
                w.status == Some(Status::Deployed),
            )
        } else {
            abandon(run, w, w.created.as_deref())
        };
        run.transport.run(&w.target.host, &script)
    });
    for (&i, output) in locked.iter().zip(outputs) {
        let w = &mut work[i];
        w.lock = Lock::Free;
        match output {
            Ok(reply) if reply.success() => report_removed(run, w, reply.removed()),
            // The release is active; failing to tidy up is worth a warning,
            // not a failed deploy.
            Ok(reply) => (run.events)(Event::Warning {
                message: format!(
                    "on `{}`: cleaning up `{}` failed: {}",
                    w.target.host,
                    w.path,
                    describe_failure(&reply)
                ),
            }),
            Err(err) => (run.events)(Event::Warning {
                message: format!("cleaning up `{}` failed: {err}", w.path),
            }),
        }
    }
}
