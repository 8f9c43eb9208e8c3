//! The phases of a deploy, in order: probe (and lock), push (`push`),
//! activate (`rollout`, `activate`), finish; or, for a dry run, the report
//! of what would change (`predict`).

use std::time::Instant;

use super::activate::{abandon, finish};
use super::decide::{self, Action, Found};
use super::push::base_delta;
use super::rollout;
use super::{DeployOptions, INTERRUPTED, Identity, Lock, Run, Status, Summary, Work};
use crate::event::{Event, Phase};
use crate::ops::build::TargetRelease;
use crate::parallel::parallel;
use crate::plan::Target;
use crate::steps::{self, Claim, Derive, PathState, Step};

/// Deploys each target's release (in plan order); with
/// [`DeployOptions::resume`], going on with a rollout that waits for
/// promotion, under its deploy id.
pub fn deploy(run: &Run<'_>, releases: &[TargetRelease], options: &DeployOptions) -> Summary {
    let identity;
    let resumed;
    let run = match &options.resume {
        Some(resume) => {
            identity = Identity {
                deploy: resume.deploy.clone(),
                ..run.identity.clone()
            };
            resumed = Run {
                identity: &identity,
                ..*run
            };
            &resumed
        }
        None => run,
    };
    let summary = super::watching(run, |run| deploy_releases(run, releases, options));
    // Staged copies of files rendered with secrets live only as long as the
    // run needs them.
    for r in releases.iter().filter(|r| r.release.secret) {
        crate::interrupt::remove_staged(&r.release.stage);
    }
    summary
}

fn deploy_releases(run: &Run<'_>, releases: &[TargetRelease], options: &DeployOptions) -> Summary {
    let targets: Vec<&Target> = releases.iter().map(|r| &r.target).collect();
    let mut work: Vec<Work<'_>> = releases
        .iter()
        .map(|r| {
            let path = run.transport.host_path(&r.target);
            Work {
                target: &r.target,
                release: &r.release,
                delta: base_delta(r, &path, options),
                path,
                current: None,
                previous: None,
                // Until the probe has read the host.
                action: Action::Unchanged,
                lock: Lock::Free,
                created: None,
                unfinished: false,
                status: None,
                message: None,
                batch: None,
                resumed: false,
            }
        })
        .collect();

    // Phase 1: probe, and lock what is not current (everything, with
    // `--force`).
    let claims = (!options.dry_run).then(|| {
        let owner = run.lock_owner();
        work.iter()
            .map(|w| Step::Claim {
                index: 0,
                path: w.path.clone(),
                release: (!options.force).then(|| w.release.id.clone()),
                owner: owner.clone(),
                break_lock: options.break_lock,
                git: w.release.git.is_some(),
                name: run.artifact_name(w.target),
                derive: w.delta.as_ref().map(|d| Derive {
                    from: d.from.clone(),
                    top: d.top,
                    gone: d.gone.clone(),
                }),
                shared: super::push::shared_dirs(run, w.target)
                    .map(str::to_string)
                    .collect(),
                resume: options
                    .resume
                    .as_ref()
                    .and_then(|r| r.token(&w.target.host, &w.path)),
            })
            .collect::<Vec<_>>()
    });
    // Read while cargo built: when every host holds its release already,
    // there is nothing to lock, and nothing more to read.
    let ahead = options
        .lookahead
        .as_ref()
        .filter(|_| !options.dry_run && !options.force)
        .and_then(|ahead| ahead.all_current(&work));
    if ahead.is_none() && !options.dry_run {
        // A new release may record it: read while the hosts are.
        run.identity.revision.dirty.prefetch();
    }
    let states = match (ahead, &claims) {
        (Some(states), _) => states,
        (None, Some(claims)) => {
            probe_claiming(run, &targets, &work, claims, options.resume.is_none())
        }
        (None, None) => run.probe(&targets, false, None),
    };
    let (mut refused, unreachable) = read_probe(run, &mut work, states, options.force);
    if let Some(resume) = &options.resume {
        super::waiting::resume_work(resume, &mut work);
    }
    if options.dry_run {
        if refused || unreachable {
            return Summary::new(run, true, work.iter().map(Work::outcome).collect());
        }
        return super::predict::dry_run(run, &mut work);
    }
    // A host that cannot be read counts against the rollouts' failure
    // budgets (none, unless `max_fail` allows it).
    if unreachable && !rollout::within_budget(run, &work) {
        refused = true;
    }
    if refused || interrupted(run, &mut work) {
        // Nothing changes unless every host could be read and locked, or
        // those that could not are within the failure budget.
        finish_unactivated(run, &mut work, options);
        return Summary::new(run, false, work.iter().map(Work::outcome).collect());
    }

    // Phase 2: lock and push; a host's artifacts in turn, hosts in parallel.
    let Some(pushed) = super::push::push_all(run, &mut work, options) else {
        finish_unactivated(run, &mut work, options);
        return Summary::new(run, false, work.iter().map(Work::outcome).collect());
    };
    let (provenance, push_failed) = (pushed.provenance, pushed.failed);

    // Phase 3: the `once` hooks, then the rollout, unless more pushes
    // failed than a rollout allows (with no failure allowed, the default:
    // unless a push failed anywhere).
    let started = Instant::now();
    let activating = (!push_failed || rollout::within_budget(run, &work))
        && rollout::run_once(run, &mut work, &provenance);
    let mut halt = None;
    if activating {
        halt = rollout::activate_all(run, &mut work, &provenance, options.resume.as_ref());
    } else {
        for w in work
            .iter_mut()
            .filter(|w| w.needs_work() && w.message.is_none())
        {
            w.message = Some("not activated: another host failed before any switch".into());
        }
    }

    // Phase 4: clean up and unlock.
    if activating {
        finish(run, &mut work, true);
    } else {
        finish_unactivated(run, &mut work, options);
    }
    let mut summary = Summary::new(run, false, work.iter().map(Work::outcome).collect());
    match halt {
        Some(rollout::Halt::Stopped(stopped)) => summary.stopped = Some(stopped),
        Some(rollout::Halt::Waiting(waiting)) => summary.waiting = Some(waiting),
        None => {}
    }
    summary.timings.push = pushed.seconds;
    summary.timings.activate = started.elapsed().as_secs_f64();
    summary
}

/// Phase 4 of a run that activated nothing: what it made goes, and its
/// locks are released, but for a rollout it was to go on with, which
/// waits still (see `waiting::keep`).
fn finish_unactivated(run: &Run<'_>, work: &mut [Work<'_>], options: &DeployOptions) {
    if let Some(resume) = &options.resume {
        super::waiting::keep(run, work, resume);
    }
    finish(run, work, false);
}

/// Notes in each target's work what the probe read of it: its current
/// release, the lock it holds or found, and so what the deploy does with
/// it. Whether a lock was refused, and whether a host could not be read.
fn read_probe(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    states: Vec<Result<PathState, String>>,
    force: bool,
) -> (bool, bool) {
    let mut refused = false;
    let mut unreachable = false;
    for (w, state) in work.iter_mut().zip(states) {
        match state {
            Ok(mut state) => {
                // A deploy held the lock, or was interrupted holding it.
                let lock_found = state.lock.is_some();
                let unchanged = decide::decide(w.target, w.release, Found::of(&state), false)
                    == Action::Unchanged;
                (run.events)(Event::Probed {
                    host: w.target.host.clone(),
                    artifact: w.target.artifact.clone(),
                    release: w.release.id.clone(),
                    current: state.current.clone(),
                    unchanged,
                });
                let claim = state.claim.take();
                if !matches!(claim, Some(Claim::Held { derived: true, .. })) {
                    w.delta = None;
                }
                match claim {
                    Some(Claim::Held {
                        current, created, ..
                    }) => {
                        // Read again under the lock, which now holds it
                        // still.
                        w.lock = Lock::Held;
                        w.created = created;
                        state.current = current;
                        state.lock = None;
                    }
                    Some(Claim::Busy(holder)) => {
                        // A lock this run may take over is taken in the push.
                        match run.judge_lock(w.target, &w.path, &holder) {
                            Ok(()) => w.lock = Lock::TakeOver,
                            Err((phase, message)) => {
                                refused = true;
                                run.fail(w, phase, message);
                            }
                        }
                    }
                    Some(Claim::Unclaimed(message)) => {
                        refused = true;
                        run.fail(w, Phase::Lock, message);
                    }
                    None => {}
                }
                w.action = decide::decide(w.target, w.release, Found::of(&state), force);
                w.previous = decide::previous_good(&state, lock_found);
                w.current = state.current;
                if w.action == Action::Unchanged && w.status.is_none() {
                    w.status = Some(Status::Unchanged);
                }
            }
            Err(message) => {
                unreachable = true;
                run.fail(w, Phase::Probe, message);
            }
        }
    }
    (refused, unreachable)
}

/// Probes every host and takes the lock of every target that is not
/// current, in the same round trip. Two deploys started at once can each
/// take some of the locks both need; then neither could go on. So a run
/// that finds another live deploy holding a lock it needs, and itself holds
/// some, releases them and tries again a moment later (a different moment
/// for each run): one of the two then gets every lock, and the other is
/// refused by it. Without `retry`, it does not: a run that goes on with a
/// rollout that waits for promotion could not take back a waiting lock it
/// let go of; refused, it keeps them waiting (see `waiting::keep`).
fn probe_claiming(
    run: &Run<'_>,
    targets: &[&Target],
    work: &[Work<'_>],
    claims: &[Step],
    retry: bool,
) -> Vec<Result<steps::PathState, String>> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = if retry { 1 } else { ATTEMPTS };
    loop {
        let states = run.probe(targets, false, Some(claims));
        let claim = |i: usize| states[i].as_ref().ok().and_then(|s| s.claim.as_ref());
        let held: Vec<usize> = (0..states.len())
            .filter(|&i| matches!(claim(i), Some(Claim::Held { .. })))
            .collect();
        // A rollout that waits for promotion does not let go by itself:
        // trying again would only wait.
        let contested = (0..states.len()).any(|i| {
            matches!(claim(i), Some(Claim::Busy(holder))
                if !run.is_stale(holder) && super::waiting_in(holder).is_none())
        });
        if held.is_empty() || !contested || attempt == ATTEMPTS {
            return states;
        }
        parallel(&held, run.jobs, |&i| {
            let w = &work[i];
            let created = match claim(i) {
                Some(Claim::Held { created, .. }) => created.clone(),
                _ => None,
            };
            let script = abandon(run, w, created.as_deref());
            let _ = run.transport.run(&w.target.host, &script);
        });
        std::thread::sleep(backoff(attempt));
        attempt += 1;
    }
}

/// A pause of 100 to 500 ms times `attempt`, different for every run.
fn backoff(attempt: u32) -> std::time::Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = u64::from(now.subsec_nanos()) ^ u64::from(std::process::id()).rotate_left(17);
    // One round of a 64-bit mix spreads neighbouring seeds apart.
    let mixed = (seed ^ (seed >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    std::time::Duration::from_millis(100 + (mixed >> 33) % 400) * attempt
}

/// Whether the run was asked to stop; if so, every target not yet worked
/// on is marked so (it ends `skipped`, with the reason).
pub(super) fn interrupted(run: &Run<'_>, work: &mut [Work<'_>]) -> bool {
    if !run.cancel.requested() {
        return false;
    }
    for w in work
        .iter_mut()
        .filter(|w| w.needs_work() && w.message.is_none())
    {
        w.message = Some(INTERRUPTED.to_string());
    }
    true
}
