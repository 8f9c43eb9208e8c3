//! A rollout that waits for a person (`pause = "until promoted"`).
//!
//! After a batch that is not its artifact's last has passed its checks,
//! the run ends ([`wait`]): every target whose lock it holds keeps it,
//! rewritten on the host to a waiting record ([`WaitRecord`], a field of
//! the lock's owner line), and the targets not yet activated wait. The
//! state lives on the hosts alone, so that the rollout can go on from a
//! new shell, a new clone or another machine:
//!
//! - `cargo deploy promote` builds as a deploy does, reads the records
//!   ([`resumable`]) and deploys again with a [`Resume`]: its claims take
//!   the kept locks over, the targets the waiting run activated count as
//!   switched in this run (and are checked again first), and the rollout
//!   goes on after the batch it reached, under the same deploy id;
//! - `cargo deploy abort` ([`abort`]) takes the locks over, switches the
//!   targets activated so far back to the release before them, and
//!   releases every lock.
//!
//! Any other run that meets such a lock is refused, and told both commands
//! ([`refusal`]); a lock kept so is never stale.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::identity::{Identity, LockHolder};
use super::lookahead::Lookahead;
use super::summary::Waiting;
use super::{Action, Lock, Outcome, Run, Status, Summary, Work, describe_failure};
use crate::error::{Error, Result};
use crate::event::{Event, Phase};
use crate::ops::build::TargetRelease;
use crate::parallel::parallel;
use crate::plan::{Plan, Target};
use crate::steps::{Exit, Revert, Step};

/// What a rollout that waits for promotion records on each host whose lock
/// it keeps, in the lock's owner line (`waiting`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitRecord {
    /// The deploy that waits (see `Identity::deploy`): the run that goes
    /// on with it records its changes under the same id.
    pub deploy: String,
    /// The artifact whose rollout waits.
    pub artifact: String,
    /// The batch the rollout reached (from 1), and how many it has.
    pub batch: usize,
    pub batches: usize,
    /// This target's release.
    pub release: String,
    /// The release it goes back to (`None`: none, `current` is removed).
    pub previous: Option<String>,
    /// Whether the target was activated, and passed its checks.
    pub activated: bool,
    /// The commit the releases were built from, and whether the tree had
    /// changes.
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
}

impl WaitRecord {
    /// `waits for promotion: deploy ID, batch N of M, since T`, as `status`
    /// shows a lock kept by a rollout that waits.
    pub fn describe(&self, since: &str) -> String {
        format!(
            "waits for promotion: deploy {}, batch {} of {}, since {since}",
            self.deploy, self.batch, self.batches
        )
    }

    /// The commit, as a person checks it out.
    fn commit(&self) -> String {
        match &self.commit {
            Some(commit) if self.dirty => format!("{commit} (with uncommitted changes)"),
            Some(commit) => commit.clone(),
            None => "an unknown commit".to_string(),
        }
    }
}

/// The record of a lock, given its owner line, if a rollout that waits
/// for promotion keeps it; and when it began to wait.
pub fn waiting_in(lock: &str) -> Option<(WaitRecord, String)> {
    let holder = serde_json::from_str::<LockHolder>(lock).ok()?;
    Some((holder.waiting?, holder.since))
}

/// Why a lock kept by a rollout that waits for promotion refuses a run,
/// and what ends the wait.
pub(super) fn refusal(path: &str, holder: &LockHolder) -> String {
    let deploy = holder.waiting.as_ref().map_or("", |w| w.deploy.as_str());
    format!(
        "a rollout of deploy {deploy} waits for promotion on `{path}` (by {}@{} since {}): \
         `cargo deploy promote {env}` goes on, `cargo deploy abort {env}` switches back",
        holder.user,
        holder.from,
        holder.since,
        env = holder.env
    )
}

/// The rollout of `waiting.artifact` waits for promotion after batch
/// `waiting.batch`: every target whose lock this run holds keeps it,
/// rewritten to its waiting record, and those not worked on yet wait. An
/// upload the activation was to rename is given its name first (with
/// `provenance`): the run that goes on finds the release complete, and
/// sends nothing. `Err` (why) if a lock could not be kept: then every lock
/// is held as before (a kept one still names this run's token, which
/// releases it), and the rollout stops.
pub(super) fn wait(
    run: &Run<'_>,
    work: &mut [Work<'_>],
    waiting: &Waiting,
    provenance: &str,
) -> Result<(), String> {
    let held: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].lock == Lock::Held)
        .collect();
    let revision = &run.identity.revision;
    let results = parallel(&held, run.jobs, |&i| {
        let w = &work[i];
        let record = WaitRecord {
            deploy: waiting.deploy.clone(),
            artifact: waiting.artifact.clone(),
            batch: waiting.batch,
            batches: waiting.batches,
            release: w.release.id.clone(),
            previous: w.previous.clone(),
            activated: w.status == Some(Status::Deployed),
            commit: revision.commit.clone(),
            dirty: revision.dirty.get(),
        };
        let mut script = run.script(w.target);
        if w.unfinished {
            script = script.step(super::activate::finalize(w, provenance));
        }
        let script = script.step(Step::Wait {
            path: w.path.clone(),
            token: run.identity.token.clone(),
            owner: run.identity.waiting_owner(&run.env.name, &record),
        });
        match run.transport.run(&w.target.host, &script) {
            Ok(reply) if reply.success() => Ok(()),
            Ok(reply) => Err(describe_failure(&reply)),
            Err(err) => Err(err.to_string()),
        }
    });
    let mut failed = Vec::new();
    for (&i, result) in held.iter().zip(results) {
        match result {
            Ok(()) => {
                work[i].lock = Lock::Kept;
                work[i].unfinished = false;
            }
            Err(why) => failed.push(format!("on `{}`: {why}", work[i].target.host)),
        }
    }
    if !failed.is_empty() {
        for w in work.iter_mut().filter(|w| w.lock == Lock::Kept) {
            w.lock = Lock::Held;
        }
        return Err(format!(
            "the rollout could not wait for promotion, for a lock could not be kept ({})",
            failed.join("; ")
        ));
    }
    for w in work.iter_mut().filter(|w| w.needs_work()) {
        w.status = Some(Status::Waiting);
        w.message = Some(format!(
            "waits for promotion: the rollout of `{}` stopped after batch {} of {}",
            waiting.artifact, waiting.batch, waiting.batches
        ));
    }
    (run.events)(Event::RolloutWaiting {
        artifact: waiting.artifact.clone(),
        batch: waiting.batch,
        batches: waiting.batches,
        deploy: waiting.deploy.clone(),
    });
    Ok(())
}

/// A rollout that waits for promotion, as a deploy that goes on with it
/// needs it: read from the hosts by [`resumable`].
#[derive(Debug, Clone)]
pub struct Resume {
    /// The deploy that waits: the run goes on under its id.
    pub deploy: String,
    /// The artifact whose rollout waits, and the batch it reached.
    pub(super) artifact: String,
    pub(super) batch: usize,
    /// Each waiting target's record, and the token of the run that keeps
    /// its lock, by host and path.
    records: BTreeMap<(String, String), (WaitRecord, String)>,
}

impl Resume {
    /// The token of the run that keeps the lock of `path` on `host`, if a
    /// rollout of this deploy waits there.
    pub(super) fn token(&self, host: &str, path: &str) -> Option<String> {
        let key = (host.to_string(), path.to_string());
        self.records.get(&key).map(|(_, token)| token.clone())
    }
}

/// The rollout that waits for promotion on the hosts of `releases`, read
/// in one round trip per host (taking no lock), unless `ahead` read them
/// all while the releases were built, for a deploy of `releases` to go on
/// with. Refused (`Error::Usage`) if none waits, if rollouts of
/// several deploys do, or if a target that waits would get another
/// release than the one it waits with: the checkout is not the one that
/// started the rollout. A host that cannot be read is left to the
/// deploy's probe.
pub fn resumable(
    run: &Run<'_>,
    releases: &[TargetRelease],
    ahead: Option<&Lookahead>,
) -> Result<Resume> {
    let targets: Vec<&Target> = releases.iter().map(|r| &r.target).collect();
    let paths: Vec<(&Target, String)> = targets
        .iter()
        .map(|&t| (t, run.transport.host_path(t)))
        .collect();
    let states = ahead
        .and_then(|ahead| ahead.states_of(&paths))
        .unwrap_or_else(|| run.probe(&targets, false, None));
    let mut records = BTreeMap::new();
    let mut mismatches = Vec::new();
    for (r, state) in releases.iter().zip(&states) {
        let Some(lock) = state.as_ref().ok().and_then(|s| s.lock.as_deref()) else {
            continue;
        };
        let Ok(holder) = serde_json::from_str::<LockHolder>(lock) else {
            continue;
        };
        let Some(record) = holder.waiting else {
            continue;
        };
        if record.release != r.release.id {
            mismatches.push(format!(
                "`{}` waits on `{}` with release {} of commit {}, but this checkout builds {}",
                r.target.artifact,
                r.target.host,
                record.release,
                record.commit(),
                r.release.id
            ));
        }
        let path = run.transport.host_path(&r.target);
        records.insert((r.target.host.clone(), path), (record, holder.token));
    }
    let env = &run.env.name;
    let deploys: BTreeSet<&str> = records.values().map(|(r, _)| r.deploy.as_str()).collect();
    let Some(&deploy) = deploys.iter().next() else {
        return Err(Error::Usage(format!(
            "no rollout waits for promotion in `{env}`"
        )));
    };
    if deploys.len() > 1 {
        return Err(Error::Usage(format!(
            "rollouts of several deploys wait for promotion in `{env}` ({}): promote or abort \
             the hosts of each with `--only`",
            deploys.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    if !mismatches.is_empty() {
        let commits: BTreeSet<String> = records.values().map(|(r, _)| r.commit()).collect();
        return Err(Error::Usage(format!(
            "this checkout does not build what the rollout of deploy {deploy} waits with:\n{}\n\
             check out {} and promote from there, or `cargo deploy abort {env}`",
            mismatches.join("\n"),
            commits.into_iter().collect::<Vec<_>>().join(" or ")
        )));
    }
    // Where the rollout stands: as far as its hosts say it got.
    let (artifact, batch) = records
        .values()
        .map(|(r, _)| (r.batch, r.artifact.clone()))
        .max()
        .map(|(batch, artifact)| (artifact, batch))
        .expect("a record was read");
    Ok(Resume {
        deploy: deploy.to_string(),
        artifact,
        batch,
        records,
    })
}

/// Takes into each target's work what the rollout it resumes recorded,
/// where the probe took the kept lock over; for a target the waiting run
/// activated (and still on its release), that it is deployed, switched in
/// this run as far as a switch back is concerned, and the release it goes
/// back to. One not activated is one to activate, as any.
pub(super) fn resume_work(resume: &Resume, work: &mut [Work<'_>]) {
    for w in work.iter_mut().filter(|w| w.lock == Lock::Held) {
        let key = (w.target.host.clone(), w.path.clone());
        let Some((record, _)) = resume.records.get(&key) else {
            continue;
        };
        w.resumed = true;
        if record.activated && w.current.as_deref() == Some(record.release.as_str()) {
            w.status = Some(Status::Deployed);
            w.action = Action::Activate(super::Upload::Present);
            w.previous.clone_from(&record.previous);
            w.current.clone_from(&record.previous);
            w.message = Some(format!(
                "activated before the rollout waited (batch {} of {})",
                record.batch, record.batches
            ));
        }
    }
}

/// A run that was to go on with `resume` activated nothing (it was
/// refused or interrupted, or a push or a `once` hook failed): the rollout
/// waits still. Each lock the run took over is kept again, with the record
/// it held (and this run's token, which the next run takes over), and a
/// target that was to be activated waits; the next `promote` or `abort`
/// finds the rollout as it was. A lock that cannot be kept is released
/// with the others, and said.
pub(super) fn keep(run: &Run<'_>, work: &mut [Work<'_>], resume: &Resume) {
    let taken: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].resumed && work[i].lock == Lock::Held)
        .collect();
    let results = parallel(&taken, run.jobs, |&i| {
        let w = &work[i];
        let key = (w.target.host.clone(), w.path.clone());
        let (record, _) = &resume.records[&key];
        let script = run.script(w.target).step(Step::Wait {
            path: w.path.clone(),
            token: run.identity.token.clone(),
            owner: run.identity.waiting_owner(&run.env.name, record),
        });
        match run.transport.run(&w.target.host, &script) {
            Ok(reply) if reply.success() => Ok(()),
            Ok(reply) => Err(describe_failure(&reply)),
            Err(err) => Err(err.to_string()),
        }
    });
    for (&i, result) in taken.iter().zip(results) {
        let w = &mut work[i];
        match result {
            Ok(()) => {
                w.lock = Lock::Kept;
                if matches!(w.status, None | Some(Status::Skipped)) {
                    w.status = Some(Status::Waiting);
                    w.message = Some(format!(
                        "still waits for promotion: this run activated nothing{}",
                        w.message
                            .as_deref()
                            .map_or_else(String::new, |m| format!(" ({m})"))
                    ));
                }
            }
            Err(why) => (run.events)(Event::Warning {
                message: format!(
                    "on `{}`: `{}` no longer waits for promotion, for its lock could not be \
                     kept: {why}",
                    w.target.host, w.target.artifact
                ),
            }),
        }
    }
}

/// `cargo deploy abort`: ends the rollout that waits for promotion on the
/// targets of `plan`. Each target that waits is taken over; one the
/// waiting run activated is switched back to the release before it (or
/// its `current` removed, for a first deploy), running what that release
/// recorded, and logged under the waiting deploy's id; every lock is
/// released. A target never activated keeps its pushed release (`keep`
/// removes it in time). Refused (`Error::Usage`) if no rollout waits, or
/// rollouts of several deploys do.
pub fn abort(run: &Run<'_>, plan: &Plan) -> Result<Summary> {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, false, None);
    let mut outcomes: Vec<Outcome> = targets.iter().map(|t| Outcome::skipped(t)).collect();
    // Per target that waits: its index, record, the token of the run that
    // keeps its lock, and its current release.
    let mut found: Vec<(usize, WaitRecord, String, Option<String>)> = Vec::new();
    let mut unread = false;
    for (i, state) in states.into_iter().enumerate() {
        match state {
            Err(message) => {
                unread = true;
                outcomes[i].status = Status::Failed;
                outcomes[i].message = Some(format!("probe: {message}"));
                (run.events)(Event::Failed {
                    host: targets[i].host.clone(),
                    artifact: targets[i].artifact.clone(),
                    phase: Phase::Probe,
                    message,
                });
            }
            Ok(state) => {
                let holder = state
                    .lock
                    .as_deref()
                    .and_then(|l| serde_json::from_str::<LockHolder>(l).ok());
                if let Some(LockHolder {
                    waiting: Some(record),
                    token,
                    ..
                }) = holder
                {
                    found.push((i, record, token, state.current));
                }
            }
        }
    }
    let env = &run.env.name;
    let deploys: BTreeSet<&str> = found.iter().map(|(_, r, _, _)| r.deploy.as_str()).collect();
    if deploys.len() > 1 {
        return Err(Error::Usage(format!(
            "rollouts of several deploys wait for promotion in `{env}` ({}): promote or abort \
             the hosts of each with `--only`",
            deploys.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let Some(deploy) = deploys.into_iter().next().map(str::to_string) else {
        if unread {
            return Ok(Summary::new(run, false, outcomes));
        }
        return Err(Error::Usage(format!(
            "no rollout waits for promotion in `{env}`"
        )));
    };
    // The switches back are the waiting deploy's, as a failed deploy's are.
    let identity = Identity {
        deploy,
        ..run.identity.clone()
    };
    let run = &Run {
        identity: &identity,
        ..*run
    };
    let results = parallel(&found, run.jobs, |(i, record, token, current)| {
        let target = targets[*i];
        let path = run.transport.host_path(target);
        let back = record.activated && current.as_deref() == Some(record.release.as_str());
        let mut script = run
            .script(target)
            .allowing(super::activation_time(target))
            .step(Step::TakeOver {
                path: path.clone(),
                owner: run.lock_owner(),
                token: token.clone(),
                name: run.artifact_name(target),
            });
        if back {
            script = script.step(Step::Back {
                path: path.clone(),
                from: record.release.clone(),
                to: record.previous.clone(),
                log: run.log_line(
                    target,
                    "rolled_back",
                    record.previous.as_deref(),
                    Some(&record.release),
                    None,
                    &[],
                ),
            });
        }
        script = script.step(Step::Unlock {
            path,
            token: run.identity.token.clone(),
        });
        (back, run.transport.run(&target.host, &script))
    });
    for ((i, record, _, current), (back, result)) in found.iter().zip(results) {
        // As a deploy says it: the release that waited, and the one before
        // it, which an activated host is switched back to.
        let outcome = &mut outcomes[*i];
        outcome.release = Some(record.release.clone());
        outcome.previous = if back {
            record.previous.clone()
        } else {
            current.clone()
        };
        let failure = match result {
            Err(err) => Some((Phase::Lock, err.to_string())),
            Ok(reply) if reply.exit == Exit::Locked => Some((
                Phase::Lock,
                format!(
                    "the lock is another run's now: {}",
                    reply.locked_by().unwrap_or("")
                ),
            )),
            Ok(reply) if back => {
                run.notify(&outcome.host, &outcome.artifact, &reply);
                match reply.revert() {
                    Revert::Done { to } => {
                        outcome.status = Status::RolledBack;
                        outcome.message = Some(format!(
                            "the rollout was aborted: {}",
                            to.as_deref().map_or_else(
                                || "no previous release, `current` removed".to_string(),
                                |to| format!("rolled back to {to}")
                            )
                        ));
                        (run.events)(Event::RolledBack {
                            host: outcome.host.clone(),
                            artifact: outcome.artifact.clone(),
                            release: record.release.clone(),
                            to,
                        });
                        None
                    }
                    Revert::Failed { to, step } => Some((
                        Phase::Rollback,
                        format!(
                            "switched back to {}, but its {step} failed:\n{}",
                            to.as_deref().unwrap_or("nothing"),
                            reply.failure_output()
                        ),
                    )),
                    Revert::NotAttempted => Some((Phase::Rollback, describe_failure(&reply))),
                }
            }
            Ok(reply) if reply.success() => {
                outcome.message =
                    Some("the rollout was aborted before it was activated here".to_string());
                None
            }
            Ok(reply) => Some((Phase::Lock, describe_failure(&reply))),
        };
        if let Some((phase, message)) = failure {
            outcome.status = Status::Failed;
            outcome.message = Some(format!("{}: {message}", phase.name()));
            (run.events)(Event::Failed {
                host: outcome.host.clone(),
                artifact: outcome.artifact.clone(),
                phase,
                message,
            });
        }
    }
    // For an abort, as for a rollback, `rolled_back` is what success looks
    // like.
    let mut summary = Summary::new(run, false, outcomes);
    summary.ok = summary
        .hosts
        .iter()
        .all(|o| matches!(o.status, Status::RolledBack | Status::Skipped));
    Ok(summary)
}
