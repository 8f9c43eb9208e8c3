//! The push: each release copied to its host (over rsync, from a store
//! the host pulls from, or as a git commit), from the current release's
//! copy when this machine knows what that holds, and readied for the
//! activation.

use std::time::Instant;

use super::activate::finalize;
use super::decide::{self, Action, Found, Upload};
use super::{DeployOptions, INTERRUPTED, Lock, Run, Work, by_host, describe_failure};
use crate::assemble::{Delta, EntryKind, MANIFEST_FILE, Provenance};
use crate::event::{Event, Phase};
use crate::ops::build::TargetRelease;
use crate::parallel::parallel;
use crate::plan::Target;
use crate::steps::{Exit, Script, Step};
use crate::transport::Basis;

/// What the push leaves for the activation.
pub(super) struct Pushed {
    /// What the new releases record of where they come from, as JSON.
    pub(super) provenance: String,
    /// A push failed somewhere.
    pub(super) failed: bool,
    pub(super) seconds: f64,
}

/// Pushes every target that needs it (taking over the locks the probe
/// judged it may), a host's artifacts in turn, hosts in parallel, and
/// notes in each target's work what its push found and did. `None` if the
/// store could not be readied: then every such target failed, and nothing
/// was pushed.
pub(super) fn push_all(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    options: &DeployOptions,
) -> Option<Pushed> {
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
                    return None;
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

    Some(Pushed {
        provenance,
        failed: push_failed,
        seconds: started.elapsed().as_secs_f64(),
    })
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

/// What `r`'s release adds to the release read ahead as current at `path`,
/// whose copy the claim makes the upload, if it is current then: when a
/// push copies files over ssh or here (not git's, nor a store's) and this
/// machine keeps that release's manifest, to send only what differs.
/// A dry run claims nothing, and `--force` compares every file. Nor is a
/// release with a `build` hook copied: what the hook made in it is no file
/// of its manifest, and the hook would write it again through the links.
pub(super) fn base_delta(r: &TargetRelease, path: &str, options: &DeployOptions) -> Option<Delta> {
    if options.dry_run || options.force || options.store.is_some() || r.target.hooks.build.is_some()
    {
        return None;
    }
    let from = options.lookahead.as_ref()?.current(&r.target.host, path)?;
    Delta::between(&r.release, from)
}

pub(super) fn shared_dirs<'p>(run: &'p Run<'_>, target: &Target) -> impl Iterator<Item = &'p str> {
    run.project
        .artifact(&target.artifact)
        .into_iter()
        .flat_map(|a| a.shared.iter().map(String::as_str))
}
