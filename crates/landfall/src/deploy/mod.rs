//! The deploy's machinery, over any [`Transport`](crate::transport::Transport),
//! which the operations of [`crate::ops`] drive.
//!
//! A deploy runs in phases, each over all hosts (`jobs` at a time):
//!
//! 1. probe: one round trip per host reads what is current for all its
//!    artifacts; a release already current is `unchanged` and left alone,
//!    and every other target's lock is taken (and its directories made) in
//!    the same round trip;
//! 2. push: copy the release into `<id>.partial` (or push a git release's
//!    commit and check its tree out there, adding the rendered files), run
//!    the `build` hook, rename; an rsync release without a `build` hook is
//!    renamed by its activation instead, saving a round trip;
//! 3. activate: each artifact's `once` hook on one host; then artifacts
//!    in `after` order, each rolled out over its hosts (`rollout`: canaries,
//!    batches, pauses, a failure budget); a host that fails switches back,
//!    and past the budget, with `rollback-all`, every host switched in this
//!    run does too; a rollout that waits for promotion ends the run after a
//!    batch, its locks kept, for a later run to go on with (`waiting`);
//! 4. finish: remove old releases beyond `keep`, release the locks (but
//!    those kept for a rollout that waits). A host that no other host's
//!    failure can switch back (`on_failure = "stop"`, or a run with one
//!    target to deploy) does this in its activation's round trip.
//!
//! Architecture invariant: nothing on a host changes but its lock before
//! every probe has succeeded and every lock is held, and no host is
//! activated before every push has succeeded.
//!
//! This module holds the deploy's options and the state of each target
//! during it; `run` the context every operation on hosts works with (and
//! the probe and locked activations they share), `summary` how a run
//! ended, `identity` who runs it; `phases`, `push`, `pull`, `rollout` and
//! `activate` are the deploy itself, `confirm` the confirmation of an
//! activation over a new connection, `decide` what it does with each
//! target, `predict` its dry run, `lookahead` the read-ahead, `watch` the
//! naming of hosts that keep it waiting, `waiting` a rollout that waits
//! for promotion (and its promotion or abort), and `history` the fleet's
//! past deploys, which a rollback reads.

mod activate;
mod checks;
mod confirm;
mod decide;
pub(crate) mod history;
mod identity;
mod lookahead;
mod observe;
mod phases;
mod predict;
mod pull;
mod push;
mod rollout;
mod run;
mod summary;
#[cfg(test)]
mod tests;
mod waiting;
mod watch;

pub use decide::{Action, Upload, decide, previous_good};

pub use identity::{Identity, ProcessId};
pub use lookahead::{Lookahead, look_ahead};
pub use phases::deploy;
pub(crate) use run::Change;
pub use run::Run;
pub use summary::{Outcome, Status, Stopped, Summary, Timings, Waiting};
pub use waiting::{Resume, WaitRecord, abort, resumable, waiting_in};
pub(crate) use watch::watching;

pub use crate::steps::{Claim, LogEntry, Orphan, PathState, ServiceState};

use std::collections::BTreeMap;

use crate::assemble::Release;
use crate::plan::Target;
use crate::steps::Reply;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub dry_run: bool,
    pub break_lock: bool,
    /// Run the activation of releases that are current already.
    pub force: bool,
    /// The bundle the releases come from, recorded with each new release.
    pub bundle: Option<String>,
    /// The `--var KEY=VALUE` overrides recorded with each new release, as
    /// [`Secrets::recorded_override`](crate::secrets::Secrets::recorded_override)
    /// masks them.
    pub overrides: Vec<String>,
    /// The object store hosts pull releases from (pull mode), if any.
    pub store: Option<crate::store::Remote>,
    /// The hosts' state as [`look_ahead`] read it while cargo built.
    pub lookahead: Option<Lookahead>,
    /// The rollout that waits for promotion, which this deploy goes on
    /// with (`cargo deploy promote`; see [`resumable`]).
    pub resume: Option<Resume>,
}

/// What a target not yet worked on says when the run was asked to stop.
pub(crate) const INTERRUPTED: &str =
    "interrupted: landfall was asked to stop before this host's turn";

/// The state of one target during a deploy.
struct Work<'a> {
    target: &'a Target,
    release: &'a Release,
    path: String,
    current: Option<String>,
    /// The release to switch back to if the activation fails: `current`,
    /// unless a deploy interrupted while holding the lock left a release
    /// current that the log never confirmed (see [`decide::previous_good`]).
    previous: Option<String>,
    /// What the deploy does with it, once the probe has read the host.
    action: Action,
    lock: Lock,
    /// The outermost directory the lock's claim made (the path did not
    /// exist): removed again if the run goes no further.
    created: Option<String>,
    /// Uploaded in full but not yet renamed: the activation renames it.
    unfinished: bool,
    /// What the release adds to the one read ahead as current, which the
    /// claim is asked to make the upload a copy of (`landfall_derive`);
    /// from the claim on, `Some` only if it did: the push then sends only
    /// this.
    delta: Option<crate::assemble::Delta>,
    status: Option<Status>,
    message: Option<String>,
    /// The batch of the rollout it was activated in.
    batch: Option<usize>,
    /// Its lock was kept by the rollout this run resumes (see
    /// [`DeployOptions::resume`]), and is this run's now.
    resumed: bool,
}

impl Work<'_> {
    fn outcome(&self) -> Outcome {
        Outcome {
            host: self.target.host.clone(),
            artifact: self.target.artifact.clone(),
            status: self.status.unwrap_or(Status::Skipped),
            release: Some(self.release.id.clone()),
            previous: self.current.clone(),
            batch: self.batch,
            message: self.message.clone(),
        }
    }

    fn needs_work(&self) -> bool {
        self.status.is_none()
    }
}

/// This run's hold on a target's deploy lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Not held (or released).
    Free,
    /// Left behind by a deploy of this machine that is gone: the push takes
    /// it over.
    TakeOver,
    Held,
    /// Held, and kept when the run ends: the rollout waits for promotion.
    Kept,
}

/// How long a hook limited to `timeout` may take: it is stopped then, and
/// killed 5 seconds later.
fn hook_time(timeout: std::time::Duration) -> std::time::Duration {
    timeout + std::time::Duration::from_secs(5)
}

/// What the hooks of one activation may take at most (`pre_activate`,
/// `activate`, `health`, and a service's stop, start and `ready`),
/// switching back included, the release switched back to taken to have the
/// same time limits.
pub(crate) fn activation_time(target: &Target) -> std::time::Duration {
    let hooks = &target.hooks;
    let mut once = hook_time(hooks.timeout) * 2 + hook_time(hooks.health_timeout);
    if let Some(service) = &target.service {
        // The old process may take its whole stop time, the new one its
        // ready time; the manager's own work is quick.
        once += hook_time(service.stop_timeout) + hook_time(service.ready_timeout);
    }
    once * 2
}

/// Targets grouped by host, keeping plan order within a host.
fn by_host(targets: &[&Target]) -> Vec<(String, Vec<usize>)> {
    let mut hosts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        hosts.entry(&target.host).or_default().push(i);
    }
    hosts
        .into_iter()
        .map(|(h, idx)| (h.to_string(), idx))
        .collect()
}

pub(crate) fn describe_failure(reply: &Reply) -> String {
    reply.describe_failure()
}
