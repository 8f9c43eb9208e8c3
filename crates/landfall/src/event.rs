//! Events: what the library tells its caller while it works.
//!
//! The library never prints. It emits events; the binary renders them as
//! progress lines for people or as JSON lines for CI.

use serde::Serialize;

/// Receives events, possibly from several threads at once.
pub type Reporter<'a> = &'a (dyn Fn(Event) + Sync);

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Warning {
        message: String,
    },
    /// A host has been working on a round trip for this long, and landfall
    /// still waits for it (said every 10 seconds, until its deadline).
    Waiting {
        host: String,
        seconds: u64,
    },
    BuildStarted {
        bins: Vec<String>,
    },
    BuildFinished {
        bins: Vec<String>,
        seconds: f64,
    },
    Assembled {
        artifact: String,
        id: String,
        files: usize,
        bytes: u64,
        /// Already in the store from an earlier run.
        reused: bool,
    },
    /// A host's current release was read and compared with the new one.
    Probed {
        host: String,
        artifact: String,
        release: String,
        current: Option<String>,
        unchanged: bool,
    },
    /// What a dry run would do for one host and artifact.
    WouldDeploy {
        host: String,
        artifact: String,
        release: String,
        current: Option<String>,
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
        hooks: Vec<String>,
        /// Text diffs of the files that differ (rendered files first), with
        /// secrets masked.
        diffs: Vec<crate::diff::FileDiff>,
        /// Where the whole diff is, when `diffs` were cut.
        diff_file: Option<std::path::PathBuf>,
    },
    /// The object store holds every object of the releases a deploy
    /// uploads (pull mode): `uploaded` of the `objects` were put now, the
    /// rest it had.
    Stored {
        store: String,
        objects: usize,
        uploaded: usize,
        bytes: u64,
    },
    /// A push is under way: the bytes it has written so far (said every
    /// half second, from half a second on).
    Pushing {
        host: String,
        artifact: String,
        release: String,
        bytes: u64,
    },
    Pushed {
        host: String,
        artifact: String,
        release: String,
        files: usize,
        /// Bytes written to the host (unchanged files are hard links); in
        /// pull mode, what the host fetched from the store.
        bytes: u64,
        /// For git artifacts: the objects git sent.
        #[serde(skip_serializing_if = "Option::is_none")]
        objects: Option<u64>,
    },
    Activated {
        host: String,
        artifact: String,
        release: String,
        previous: Option<String>,
    },
    /// An activated host was confirmed over a new connection in time: its
    /// watcher will not switch it back (`[artifact.X.rollout] confirm`).
    Confirmed {
        host: String,
        artifact: String,
        release: String,
    },
    RolledBack {
        host: String,
        artifact: String,
        /// The release that failed or was undone.
        release: String,
        /// Where `current` points now.
        to: Option<String>,
    },
    Failed {
        host: String,
        artifact: String,
        phase: Phase,
        message: String,
    },
    Removed {
        host: String,
        artifact: String,
        releases: Vec<String>,
    },
    /// A batch of an artifact's rollout starts (numbered from 1; the
    /// canaries, if any, are the first).
    Batch {
        artifact: String,
        batch: usize,
        batches: usize,
        canary: bool,
        hosts: Vec<String>,
    },
    /// The rollout waits before batch `next`, checking the hosts activated
    /// so far.
    Pause {
        artifact: String,
        seconds: f64,
        next: usize,
    },
    /// A rollout check's verdict on hosts of the artifact, after a batch or
    /// during its pause: it passed (said once a batch), it has not passed
    /// yet (said once), or it failed, which switches those hosts back.
    Check {
        artifact: String,
        check: String,
        /// `http`, `exec` or `prometheus`.
        kind: String,
        hosts: Vec<String>,
        state: CheckState,
        /// What it saw, or why it failed.
        detail: String,
    },
    /// An artifact's rollout stopped: a canary failed, or more hosts failed
    /// than `max_fail` allows (`on_failure` applies then).
    RolloutStopped {
        artifact: String,
        failed: usize,
        max_fail: usize,
        reason: String,
    },
    /// An artifact's rollout waits for promotion after batch `batch` of
    /// `batches` (`pause = "until promoted"`): the run ends, its hosts
    /// locked, until `cargo deploy promote` goes on with deploy `deploy`
    /// or `cargo deploy abort` switches back.
    RolloutWaiting {
        artifact: String,
        batch: usize,
        batches: usize,
        deploy: String,
    },
    /// The artifact's `once` hook ran, and passed, on this host.
    Once {
        host: String,
        artifact: String,
        release: String,
    },
    /// A top-level hook (`before` or `after`) ran on this machine.
    Hook {
        hook: String,
        ok: bool,
        seconds: f64,
        /// What it printed (stdout, then stderr).
        output: String,
    },
    /// A path that holds releases of this project and environment that the
    /// model no longer deploys there.
    Orphan {
        host: String,
        #[serde(flatten)]
        orphan: crate::steps::Orphan,
    },
    /// An orphan was removed (`prune`).
    Pruned {
        host: String,
        path: String,
        artifact: String,
        /// Its service, stopped and removed.
        service: Option<String>,
    },
}

impl Event {
    /// An artifact's tree is in the store.
    pub fn assembled(done: &crate::assemble::Assembled) -> Event {
        Event::Assembled {
            artifact: done.artifact.clone(),
            id: done.id.clone(),
            files: done.manifest.entries.len(),
            bytes: done.manifest.total_size(),
            reused: done.reused,
        }
    }
}

/// Where in a deploy something happened.
/// Where a rollout check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Passed,
    /// Not passed yet, within its `timeout`.
    Waiting,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Probe,
    Lock,
    Push,
    Build,
    PreActivate,
    Activate,
    Health,
    /// A rollout check, run from the deploying machine.
    Check,
    // The confirmation of an activated host over a new connection.
    Confirm,
    Once,
    Rollback,
    Cleanup,
    Prune,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Probe => "probe",
            Phase::Lock => "lock",
            Phase::Push => "push",
            Phase::Build => "build",
            Phase::PreActivate => "pre_activate",
            Phase::Activate => "activate",
            Phase::Health => "health",
            Phase::Check => "check",
            Phase::Confirm => "confirm",
            Phase::Once => "once",
            Phase::Prune => "prune",
            Phase::Rollback => "rollback",
            Phase::Cleanup => "cleanup",
        }
    }
}
