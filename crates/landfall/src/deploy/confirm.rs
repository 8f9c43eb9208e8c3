//! The confirmation of an activation (`[artifact.X.rollout] confirm`): a
//! host that is lost switches back by itself.
//!
//! A release can break what reaches its host (sshd, the network, the
//! firewall) and still pass its health check, which runs on the host; the
//! master connection landfall keeps, opened before, would not notice.
//! So an activation of an artifact with `confirm` that went well arms a
//! watcher on its host (`confirm.sh`), which switches back to the release
//! before unless the activation is confirmed within the window, counted
//! from the end of that healthy activation. Right after a host's
//! activation, landfall confirms it over a new connection
//! ([`Transport::run_over_new_connection`](crate::transport::Transport::run_over_new_connection)),
//! retrying connections that fail (not confirmations that fail) until
//! shortly before the window ends, each attempt with a short connect
//! deadline of its own: one failed attempt (sshd restarting during the
//! activation, say) is no reason to switch back. A host never reached is
//! asked, once its window is over, through the kept connection (or a last
//! new one) what it did, and reported as it is.
//!
//! A host that was not confirmed is a failed host of the rollout, as one
//! whose activation failed is: it counts against the budget, stops a
//! canary, and makes `rollback-all` switch the others back. An activation
//! to be confirmed keeps its lock until it is (see `activate_one`): no
//! other deploy starts within the window. This module runs the
//! confirmation and records it; the rollout calls it for each host it
//! activated, as soon as that host's activation ends.

use std::time::{Duration, Instant};

use super::activate::ActivationEnd;
use super::decide::Action;
use super::{Run, Status, Work, describe_failure};
use crate::event::{Event, Phase};
use crate::steps::{Activation, Arm, Reply, Revert, Step, Timer};

/// The longest one attempt to open a new connection may take.
const CONNECT: Duration = Duration::from_secs(5);

/// The pause between two attempts to connect.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How long after the end of its window, as landfall counts it (from when
/// it heard of the activation, so after the host began to count), a host
/// never reached anew is asked what it did: its watcher may wake late.
const AFTER_WINDOW: Duration = Duration::from_secs(1);

/// What the activation of a target arms on its host, if its artifact is
/// to be confirmed: a deploy's activation, which switches back when it
/// fails (not `--force` reactivating the current release).
pub(super) fn arm(run: &Run<'_>, w: &Work<'_>) -> Option<Arm> {
    let window = window(run, w)?;
    let mut log = run.log_entry(
        w.target,
        "rolled_back",
        w.previous.as_deref(),
        Some(&w.release.id),
        None,
        &[],
    );
    log.reason = Some(format!("not confirmed within {}s", window.as_secs()));
    Some(Arm {
        seconds: window.as_secs(),
        token: run.identity.token.clone(),
        log: serde_json::to_string(&log).expect("log entries serialise"),
    })
}

/// The confirmation window of a target's activation, if it is to be
/// confirmed: its artifact has one, and it is a deploy's activation.
fn window(run: &Run<'_>, w: &Work<'_>) -> Option<Duration> {
    if w.action == Action::Reactivate {
        return None;
    }
    run.project
        .artifact(&w.target.artifact)?
        .rollout
        .confirm
        .filter(|window| !window.is_zero())
}

/// How the confirmation of one host ended.
#[derive(Debug)]
pub(super) enum Confirmation {
    Confirmed,
    /// The host's watcher switched it back, the reply says how; when no
    /// new connection reached the host, why not.
    Expired {
        reply: Reply,
        unreached: Option<String>,
    },
    /// landfall switched it back itself, through the kept connection, for
    /// `why`; the reply says how.
    SwitchedBack {
        reply: Reply,
        why: String,
    },
    Failed(String),
}

/// Confirms a target's activation, if it armed a watcher: at once, over
/// a new connection, as [`Confirmation`] tells. `None`: there is nothing
/// to confirm (the activation failed, or its artifact is not confirmed).
pub(super) fn confirm_one(
    run: &Run<'_>,
    w: &Work<'_>,
    end: &Result<ActivationEnd, String>,
) -> Option<Confirmation> {
    let Ok(ActivationEnd {
        activation: Activation::Activated,
        armed,
        ..
    }) = end
    else {
        return None;
    };
    let window = window(run, w)?;
    let Some(deadline) = *armed else {
        return Some(Confirmation::Failed(
            "the host did not say it armed the timer that switches it back unless it is \
             confirmed"
                .into(),
        ));
    };
    Some(confirm(run, w, window, deadline))
}

fn confirm(run: &Run<'_>, w: &Work<'_>, window: Duration, deadline: i64) -> Confirmation {
    // The host counted its window from before its answer came.
    let started = Instant::now();
    let margin = (window / 5).clamp(Duration::from_secs(1), CONNECT);
    let attempts_end = started + window.saturating_sub(margin);
    let script = |only_read| {
        run.script(w.target)
            .allowing(super::activation_time(w.target))
            .step(Step::Confirm {
                path: w.path.clone(),
                release: w.release.id.clone(),
                only_read,
            })
    };
    let confirming = script(false);
    let mut attempts = 0;
    let unreached = loop {
        let left = attempts_end.saturating_duration_since(Instant::now());
        let connect = left.clamp(Duration::from_secs(1), CONNECT);
        let attempt = run
            .transport
            .run_over_new_connection(&w.target.host, &confirming, connect);
        let error = match attempt {
            Ok(reply) => return answered(run, w, (reply, deadline), None),
            Err(err) => err.to_string(),
        };
        attempts += 1;
        if attempts == 1 {
            // Said once: the wait that follows may be the whole window.
            (run.events)(Event::Warning {
                message: format!(
                    "on `{}`: `{}` could not be confirmed over a new connection yet ({error}); \
                     trying again until shortly before the host switches back by itself at {}",
                    w.target.host,
                    w.target.artifact,
                    host_time(deadline)
                ),
            });
        }
        if run.cancel.requested() {
            return switch_back(run, w, "landfall was asked to stop before it was confirmed");
        }
        if Instant::now() + RETRY_PAUSE >= attempts_end {
            break error;
        }
        if !pause_until(run, Instant::now() + RETRY_PAUSE) {
            return switch_back(run, w, "landfall was asked to stop before it was confirmed");
        }
    };
    // Never reached anew: once its window is over, the host is asked what
    // it did.
    if !pause_until(run, started + window + AFTER_WINDOW) {
        return switch_back(run, w, "landfall was asked to stop before it was confirmed");
    }
    let reading = script(true);
    let read = run.transport.run(&w.target.host, &reading).or_else(|kept| {
        run.transport
            .run_over_new_connection(&w.target.host, &reading, CONNECT)
            .map_err(|_| kept)
    });
    match read {
        Ok(reply) => answered(run, w, (reply, deadline), Some(unreached)),
        Err(kept) => Confirmation::Failed(format!(
            "not confirmed: no new connection could be made ({unreached}), and nothing could \
             be read through the kept one either ({kept}); the host's own timer switches it \
             back at {}",
            host_time(deadline)
        )),
    }
}

/// Waits until `until`, unless the run is asked to stop: false then.
fn pause_until(run: &Run<'_>, until: Instant) -> bool {
    loop {
        if run.cancel.requested() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

/// What the host answered to a confirmation (or, with `unreached`, to a
/// read once the window is over, as no new connection reached it); its
/// watcher's deadline, as the activation said it.
fn answered(
    run: &Run<'_>,
    w: &Work<'_>,
    (reply, deadline): (Reply, i64),
    unreached: Option<String>,
) -> Confirmation {
    if !reply.success() {
        return Confirmation::Failed(format!(
            "the confirmation failed on the host: {}; unless it is confirmed, the host's own \
             timer switches it back at {}",
            describe_failure(&reply),
            host_time(deadline)
        ));
    }
    match reply.timer(&w.release.id) {
        Some(Timer::Confirmed) => Confirmation::Confirmed,
        Some(Timer::Expired { .. }) => Confirmation::Expired { reply, unreached },
        // Its time is up, and its watcher did not act (it was stopped, or
        // is late): it is switched back from here.
        Some(Timer::Armed { .. }) => switch_back(
            run,
            w,
            &format!(
                "not confirmed in time ({}), and the host did not switch back by itself",
                unreached.as_deref().unwrap_or("no answer")
            ),
        ),
        Some(Timer::Missing) | None => Confirmation::Failed(format!(
            "the host holds no timer of this activation to confirm: its record \
             (`{}/.landfall/confirm`) is gone",
            w.path
        )),
    }
}

/// Switches a host back from here, through the kept connection, as a
/// rollback of the run does; its watcher is disarmed first.
fn switch_back(run: &Run<'_>, w: &Work<'_>, why: &str) -> Confirmation {
    match run
        .transport
        .run(&w.target.host, &super::activate::back(run, w))
    {
        Ok(reply) if matches!(reply.output.code, Some(0 | 1)) => Confirmation::SwitchedBack {
            reply,
            why: why.to_string(),
        },
        Ok(reply) => Confirmation::Failed(format!(
            "{why}; switching it back failed: {}",
            describe_failure(&reply)
        )),
        Err(err) => Confirmation::Failed(format!("{why}; switching it back failed: {err}")),
    }
}

/// A time of a host's clock (seconds since the epoch), for a person.
fn host_time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(
        |_| format!("{seconds} (seconds since 1970, the host's clock)"),
        |t| format!("{} (the host's clock)", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
    )
}

/// Records how each confirmation ended, and returns the hosts that were
/// not confirmed: failed hosts of the rollout.
pub(super) fn record(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    confirmations: Vec<(usize, Confirmation)>,
) -> Vec<(usize, Phase)> {
    let mut failed = Vec::new();
    for (i, confirmation) in confirmations {
        let w = &mut work[i];
        let seconds = window(run, w).unwrap_or_default().as_secs();
        match confirmation {
            Confirmation::Confirmed => {
                (run.events)(Event::Confirmed {
                    host: w.target.host.clone(),
                    artifact: w.target.artifact.clone(),
                    release: w.release.id.clone(),
                });
                continue;
            }
            Confirmation::Expired { reply, unreached } => {
                let why = match unreached {
                    None => format!("not confirmed within {seconds}s over a new connection"),
                    Some(error) => format!(
                        "not confirmed within {seconds}s: no new connection reached the host \
                         ({error})"
                    ),
                };
                switched_back(run, w, &why, "the host switched back", " by itself", &reply);
            }
            Confirmation::SwitchedBack { reply, why } => {
                switched_back(run, w, &why, "switched back", "", &reply);
            }
            Confirmation::Failed(message) => run.fail(w, Phase::Confirm, message),
        }
        failed.push((i, Phase::Confirm));
    }
    failed
}

/// Records a host switched back from the release it was not confirmed
/// on: `why`, then what `reply` says the switch back did.
fn switched_back(run: &Run<'_>, w: &mut Work<'_>, why: &str, what: &str, how: &str, reply: &Reply) {
    run.notify(&w.target.host, &w.target.artifact, reply);
    // What the hooks of a switch back that went well said is no news: it
    // is shown only when it did not go well.
    let tail = reply.failure_output();
    let detail = if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    };
    let to = |to: &Option<String>| {
        to.as_deref().map_or_else(
            || "no release (it had none before; `current` removed)".to_string(),
            str::to_string,
        )
    };
    match reply.revert() {
        Revert::Done { to: back } => {
            (run.events)(Event::RolledBack {
                host: w.target.host.clone(),
                artifact: w.target.artifact.clone(),
                release: w.release.id.clone(),
                to: back.clone(),
            });
            w.status = Some(Status::RolledBack);
            w.message = Some(format!(
                "{}: {why}; {what} to {}{how}",
                Phase::Confirm.name(),
                to(&back)
            ));
        }
        Revert::Failed { to: back, step } => run.fail(
            w,
            Phase::Confirm,
            format!(
                "{why}; {what} to {}{how}, but {} it recorded failed there{detail}",
                to(&back),
                match step.as_str() {
                    "service" => "the service".to_string(),
                    "ready" => "the readiness check of the service".to_string(),
                    hook => format!("the {hook} hook"),
                }
            ),
        ),
        Revert::NotAttempted => run.fail(
            w,
            Phase::Confirm,
            format!("{why}; the switch back did not finish{detail}"),
        ),
    }
}
