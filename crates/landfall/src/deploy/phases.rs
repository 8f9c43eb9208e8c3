//! The phases of a deploy: probe, push, activate, finish (or, for a dry
//! run, the report of what would change).

use super::decide::{self, Action, Found, Upload};
use super::rollout;
use super::{
    DeployOptions, INTERRUPTED, Lock, Run, Status, Summary, Work, by_host, describe_failure,
};
use crate::parallel::parallel;
use std::time::Instant;

use crate::assemble::{Delta, EntryKind, MANIFEST_FILE, Provenance};
use crate::event::{Event, Phase};
use crate::ops::build::TargetRelease;
use crate::plan::Target;
use crate::steps::{self, Activation, Claim, Derive, Exit, Revert, Script, Step};
use crate::transport::Basis;

/// Deploys each target's release (in plan order).
pub fn deploy(run: &Run<'_>, releases: &[TargetRelease], options: &DeployOptions) -> Summary {
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
                shared: shared_dirs(run, w.target).map(str::to_string).collect(),
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
        (None, Some(claims)) => probe_claiming(run, &targets, &work, claims),
        (None, None) => run.probe(&targets, false, None),
    };
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
                w.action = decide::decide(w.target, w.release, Found::of(&state), options.force);
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
        finish(run, &mut work, false);
        return Summary::new(run, false, work.iter().map(Work::outcome).collect());
    }

    // Phase 2: lock and push; a host's artifacts in turn, hosts in parallel.
    let started = Instant::now();
    let pending: Vec<usize> = (0..work.len()).filter(|&i| work[i].needs_work()).collect();
    let pending_targets: Vec<&Target> = pending.iter().map(|&i| work[i].target).collect();
    let hosts = by_host(&pending_targets);
    // Only a release that is pushed records it (and a run that pushes
    // nothing does not wait for `git status`).
    let provenance = if pending.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&provenance(run, options)).expect("provenance serialises")
    };
    // With a store, it gets every object the pushes need first, once for
    // all hosts; each host then fetches what it lacks from it.
    let pull = match &options.store {
        Some(remote) => {
            // What a lock taken over in the push is decided again from: it
            // may upload too.
            let releases: Vec<&crate::assemble::Release> = pending
                .iter()
                .map(|&i| &work[i])
                .filter(|w| w.action.uploads() || w.lock != Lock::Held)
                .map(|w| w.release)
                .collect();
            match super::pull::prepare(run, remote, &releases) {
                Ok(pull) => Some(pull),
                Err(message) => {
                    for &i in &pending {
                        run.fail(&mut work[i], Phase::Push, message.clone());
                    }
                    finish(run, &mut work, false);
                    return Summary::new(run, false, work.iter().map(Work::outcome).collect());
                }
            }
        }
        None => None,
    };
    let results = parallel(&hosts, run.jobs, |(_, indices)| {
        indices
            .iter()
            .map(|&j| push_one(run, &work[pending[j]], &provenance, pull.as_ref()))
            .collect::<Vec<_>>()
    });
    let mut push_failed = false;
    for ((_, indices), results) in hosts.iter().zip(results) {
        for (&j, result) in indices.iter().zip(results) {
            let w = &mut work[pending[j]];
            if result.locked {
                w.lock = Lock::Held;
            }
            w.unfinished = result.unfinished;
            if let Some(Current(current)) = result.current {
                w.current = current;
            }
            if let Some(action) = result.action {
                w.action = action;
            }
            if let Err((phase, message)) = result.result {
                push_failed = true;
                run.fail(w, phase, message);
            }
        }
    }

    let push = started.elapsed().as_secs_f64();

    // Phase 3: the `once` hooks, then the rollout, unless more pushes
    // failed than a rollout allows (with no failure allowed, the default:
    // unless a push failed anywhere).
    let started = Instant::now();
    let activating = (!push_failed || rollout::within_budget(run, &work))
        && rollout::run_once(run, &mut work, &provenance);
    let mut stopped = None;
    if activating {
        stopped = rollout::activate_all(run, &mut work, &provenance);
    } else {
        for w in work
            .iter_mut()
            .filter(|w| w.needs_work() && w.message.is_none())
        {
            w.message = Some("not activated: another host failed before any switch".into());
        }
    }

    // Phase 4: clean up and unlock.
    finish(run, &mut work, activating);
    let mut summary = Summary::new(run, false, work.iter().map(Work::outcome).collect());
    summary.stopped = stopped;
    summary.timings.push = push;
    summary.timings.activate = started.elapsed().as_secs_f64();
    summary
}

/// Probes every host and takes the lock of every target that is not
/// current, in the same round trip. Two deploys started at once can each
/// take some of the locks both need; then neither could go on. So a run
/// that finds another live deploy holding a lock it needs, and itself holds
/// some, releases them and tries again a moment later (a different moment
/// for each run): one of the two then gets every lock, and the other is
/// refused by it.
fn probe_claiming(
    run: &Run<'_>,
    targets: &[&Target],
    work: &[Work<'_>],
    claims: &[Step],
) -> Vec<Result<steps::PathState, String>> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        let states = run.probe(targets, false, Some(claims));
        let claim = |i: usize| states[i].as_ref().ok().and_then(|s| s.claim.as_ref());
        let held: Vec<usize> = (0..states.len())
            .filter(|&i| matches!(claim(i), Some(Claim::Held { .. })))
            .collect();
        let contested = (0..states.len())
            .any(|i| matches!(claim(i), Some(Claim::Busy(holder)) if !run.is_stale(holder)));
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

/// What `r`'s release adds to the release read ahead as current at `path`,
/// whose copy the claim makes the upload, if it is current then: when a
/// push copies files over ssh or here (not git's, nor a store's) and this
/// machine keeps that release's manifest, to send only what differs.
/// A dry run claims nothing, and `--force` compares every file. Nor is a
/// release with a `build` hook copied: what the hook made in it is no file
/// of its manifest, and the hook would write it again through the links.
fn base_delta(r: &TargetRelease, path: &str, options: &DeployOptions) -> Option<Delta> {
    if options.dry_run || options.force || options.store.is_some() || r.target.hooks.build.is_some()
    {
        return None;
    }
    let from = options.lookahead.as_ref()?.current(&r.target.host, path)?;
    Delta::between(&r.release, from)
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

/// How often a push says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What a new release records of where it comes from.
fn provenance(run: &Run<'_>, options: &DeployOptions) -> Provenance {
    Provenance {
        revision: run.identity.revision.commit.clone(),
        dirty: run.identity.revision.dirty.get(),
        bundle: options.bundle.clone(),
        overrides: options.overrides.clone(),
        user: run.identity.user.clone(),
        from: run.identity.machine.clone(),
        time: jiff::Timestamp::now().to_string(),
        landfall: crate::VERSION.to_string(),
    }
}

struct PushResult {
    /// The lock was taken here (a lock left by a gone deploy, taken over).
    locked: bool,
    /// The current release as read under a lock taken here.
    current: Option<Current>,
    /// The action decided again from what was read under that lock.
    action: Option<Action>,
    /// Uploaded, but the rename is left to the activation.
    unfinished: bool,
    result: Result<(), (Phase, String)>,
}

/// What `current` pointed at (`None`: nothing yet).
struct Current(Option<String>);

fn push_one(
    run: &Run<'_>,
    w: &Work<'_>,
    provenance: &str,
    pull: Option<&super::pull::Pull<'_>>,
) -> PushResult {
    let mut result = PushResult {
        locked: false,
        current: None,
        action: None,
        unfinished: false,
        result: Ok(()),
    };
    if run.cancel.requested() {
        result.result = Err((Phase::Push, INTERRUPTED.to_string()));
        return result;
    }
    let mut current = w.current.clone();
    let mut action = w.action;
    if w.lock != Lock::Held {
        // The probe found a lock left behind by a deploy of this machine
        // that is gone (and said so), and it is taken over; or the probe
        // could not tell, and the lock is taken as usual.
        let prepare = |script: Script| {
            let script = script.step(Step::Prepare {
                path: w.path.clone(),
                shared: shared_dirs(run, w.target).map(str::to_string).collect(),
            });
            if w.release.git.is_some() {
                script.step(Step::GitInit {
                    path: w.path.clone(),
                })
            } else {
                script
            }
        };
        let reply = match run.locked(w.target, &w.path, w.lock == Lock::TakeOver, prepare) {
            Ok(reply) => reply,
            Err(err) => {
                result.result = Err(err);
                return result;
            }
        };
        result.locked = true;
        if !reply.success() {
            result.result = Err((Phase::Lock, describe_failure(&reply)));
            return result;
        }
        current = reply.prepared().flatten();
        result.current = Some(Current(current.clone()));
        // The lock is this run's now. What the interrupted run left is
        // judged again: it may have switched `current` without finishing
        // the activation, so a current release is activated again.
        let releases: Vec<String> = match w.action {
            Action::Activate(Upload::Present) => vec![w.release.id.clone()],
            _ => Vec::new(),
        };
        let found = Found {
            current: current.as_deref(),
            releases: &releases,
            locked: true,
        };
        let force = w.action == Action::Reactivate;
        action = decide::decide(w.target, w.release, found, force);
        result.action = Some(action);
    }
    if !action.uploads() {
        return result;
    }
    let pushed = match pull {
        Some(pull) if w.release.git.is_none() => {
            super::pull::pull(run, w, current.as_deref(), pull)
        }
        _ => {
            let said = std::sync::Mutex::new(std::time::Instant::now());
            let progress = |bytes| {
                let mut said = said.lock().expect("no thread panics holding it");
                if said.elapsed() >= PROGRESS_EVERY {
                    *said = std::time::Instant::now();
                    (run.events)(Event::Pushing {
                        host: w.target.host.clone(),
                        artifact: w.target.artifact.clone(),
                        release: w.release.id.clone(),
                        bytes,
                    });
                }
            };
            // A copy of `current` made by the claim needs only what the
            // release adds to it; if that cannot be gathered here, the
            // copy is brought to the release like any upload.
            let gathered = w
                .delta
                .as_ref()
                .filter(|d| current.as_deref() == Some(d.from.as_str()))
                .and_then(|d| d.gather(w.release).ok());
            let basis = match (&gathered, current.as_deref()) {
                (Some(gathered), _) => Basis::Derived(gathered),
                (None, Some(current)) => Basis::Release(current),
                (None, None) => Basis::Nothing,
            };
            run.transport
                .push(w.target, w.release, basis, &progress)
                .map_err(|err| format!("{err:#}"))
        }
    };
    let mut stats = match pushed {
        Ok(stats) => stats,
        Err(message) => {
            result.result = Err((Phase::Push, message));
            return result;
        }
    };
    if let Some(git) = &w.release.git {
        // The files added on top of the checkout travel in the step script.
        for entry in &git.added {
            if let EntryKind::File { size, .. } = entry.kind {
                stats.files += 1;
                stats.bytes += size;
            }
        }
    }
    let pushed = || {
        (run.events)(Event::Pushed {
            host: w.target.host.clone(),
            artifact: w.target.artifact.clone(),
            release: w.release.id.clone(),
            files: stats.files,
            bytes: stats.bytes,
            objects: stats.objects,
        });
    };
    if action == Action::Activate(Upload::Copy) {
        // Nothing runs on the upload: the activation renames it.
        result.unfinished = true;
        pushed();
        return result;
    }
    let script = match completion(run, w, current.as_deref(), provenance) {
        Ok(script) => script,
        Err(message) => {
            result.result = Err((Phase::Push, message));
            return result;
        }
    };
    match run.transport.run(&w.target.host, &script) {
        Ok(reply) if reply.success() => pushed(),
        Ok(reply) if reply.exit == Exit::BuildFailed => {
            let tail = reply.hook_output();
            result.result = Err((
                Phase::Build,
                format!("the hook failed; `current` is untouched:\n{tail}"),
            ));
        }
        Ok(reply) => result.result = Err((Phase::Push, describe_failure(&reply))),
        Err(err) => result.result = Err((Phase::Push, err.to_string())),
    }
    result
}

/// The steps that turn an upload into a release, in one round trip: for a
/// git release the checkout of its tree and the files added on top and its
/// manifest, then the `build` hook if there is one, then the rename.
fn completion(
    run: &Run<'_>,
    w: &Work<'_>,
    current: Option<&str>,
    provenance: &str,
) -> Result<Script, String> {
    let mut script = run
        .script(w.target)
        .allowing(super::hook_time(w.target.hooks.timeout));
    let id = w.release.id.as_str();
    let partial = format!("{}/releases/{id}.partial", w.path);
    if let Some(git) = &w.release.git {
        script = script.step(Step::Checkout {
            path: w.path.clone(),
            release: id.to_string(),
            tree: git.tree.clone(),
        });
        for entry in &git.added {
            script = script.step(match &entry.kind {
                EntryKind::File { mode, .. } => {
                    let staged = w.release.local_path(&entry.path);
                    let bytes = std::fs::read(&staged)
                        .map_err(|err| format!("cannot read `{}`: {err}", staged.display()))?;
                    Step::Put {
                        dir: partial.clone(),
                        name: entry.path.clone(),
                        mode: *mode,
                        bytes,
                    }
                }
                EntryKind::Symlink { target } => Step::Link {
                    dir: partial.clone(),
                    name: entry.path.clone(),
                    target: target.clone(),
                },
            });
        }
    }
    if w.target.hooks.build.is_some() {
        script = script.step(Step::Build {
            path: w.path.clone(),
            release: id.to_string(),
            previous: current.map(str::to_string),
        });
    }
    if w.release.git.is_some() {
        script = script.step(Step::Put {
            dir: partial,
            name: MANIFEST_FILE.to_string(),
            mode: 0o644,
            bytes: w.release.manifest.canonical().into_bytes(),
        });
    }
    Ok(script.step(finalize(w, provenance)))
}

pub(super) fn finalize(w: &Work<'_>, provenance: &str) -> Step {
    Step::Finalize {
        path: w.path.clone(),
        release: w.release.id.clone(),
        provenance: provenance.to_string(),
    }
}

fn shared_dirs<'p>(run: &'p Run<'_>, target: &Target) -> impl Iterator<Item = &'p str> {
    run.project
        .artifact(&target.artifact)
        .into_iter()
        .flat_map(|a| a.shared.iter().map(String::as_str))
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
}

/// Runs the activation for one target, renaming its upload first if the
/// push left that to it, and with `tidy` removing old releases and
/// unlocking once it is activated.
pub(super) fn activate_one(
    run: &Run<'_>,
    w: &Work<'_>,
    tidy: bool,
    provenance: &str,
) -> Result<ActivationEnd, String> {
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
    script = script.step(run.activation(
        w.target,
        &w.path,
        (&w.release.id, previous),
        !reactivate,
        &super::Change {
            event,
            revision: run.identity.revision.describe(),
            undoes: &[],
        },
    ));
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
    })
}

/// The end of a target's deploy in a run that activated nothing anywhere:
/// what its claim made (`created`) goes again, or else the upload left
/// unfinished, and the lock is released. A first deploy that goes no
/// further leaves nothing on a host.
fn abandon(run: &Run<'_>, w: &Work<'_>, created: Option<&str>) -> Script {
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
fn tidy_up(run: &Run<'_>, w: &Work<'_>, script: Script, deployed: bool) -> Script {
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
        let log = run.log_line(
            w.target,
            "rolled_back",
            w.previous.as_deref(),
            Some(&w.release.id),
            None,
            &[],
        );
        let script = run
            .script(w.target)
            .allowing(super::activation_time(w.target))
            .step(Step::Back {
                path: w.path.clone(),
                from: w.release.id.clone(),
                to: w.previous.clone(),
                log,
            });
        run.transport.run(&w.target.host, &script)
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
fn finish(run: &Run<'_>, work: &mut [Work<'_>], activating: bool) {
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
