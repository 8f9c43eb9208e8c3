//! How a run ended: each target's [`Outcome`], and the [`Summary`] every
//! command on hosts ends with.

use std::collections::BTreeMap;

use serde::Serialize;

use super::run::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Deployed,
    Unchanged,
    RolledBack,
    Failed,
    Skipped,
    /// Not activated yet: the rollout waits for promotion.
    Waiting,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::Unchanged => "unchanged",
            Status::RolledBack => "rolled_back",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Waiting => "waiting",
        }
    }
}

/// How one artifact on one host ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Outcome {
    pub host: String,
    pub artifact: String,
    pub status: Status,
    pub release: Option<String>,
    pub previous: Option<String>,
    /// The batch of its artifact's rollout the host was activated in,
    /// from 1 (the canaries, if there are any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Outcome {
    /// A target not worked on (yet): `skipped`, with nothing to say.
    pub fn skipped(target: &crate::plan::Target) -> Outcome {
        Outcome {
            host: target.host.clone(),
            artifact: target.artifact.clone(),
            status: Status::Skipped,
            release: None,
            previous: None,
            batch: None,
            message: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub ok: bool,
    pub env: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub hosts: Vec<Outcome>,
    /// The run's id, recorded with what it changed on every host (see
    /// `Identity::deploy`): `rollback --to` takes it. `None` when the
    /// run changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// The rollout that stopped, if one did: the hosts after it were not
    /// activated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// The rollout that waits for promotion, if one does: `cargo deploy
    /// promote` goes on with it, `cargo deploy abort` switches back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Commands and copies per host: what the run cost in round trips.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub round_trips: BTreeMap<String, usize>,
    /// Seconds spent in each phase.
    pub timings: Timings,
}

/// Why an artifact's rollout stopped, as the event said it and the
/// summary says it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Stopped {
    pub artifact: String,
    pub reason: String,
    /// How many of its hosts failed in this run, switched back or not.
    pub failed: usize,
    /// How many its `max_fail` allowed.
    pub max_fail: usize,
}

/// A rollout that waits for promotion, as the event said it and the
/// summary says it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Waiting {
    pub artifact: String,
    /// The batch it reached (from 1), and how many it has.
    pub batch: usize,
    pub batches: usize,
    /// The deploy that waits, which `promote` goes on with.
    pub deploy: String,
}

/// Seconds per phase of a run. `build` and `assemble` are the caller's to
/// fill in (a deploy gets its releases ready-made).
#[derive(Debug, Clone, Copy, Default, Serialize, schemars::JsonSchema)]
pub struct Timings {
    pub build: f64,
    pub assemble: f64,
    pub push: f64,
    pub activate: f64,
}

impl Timings {
    /// `build 1.20s, assemble 0.05s, …` for the phases that took time.
    pub fn describe(&self) -> String {
        [
            ("build", self.build),
            ("assemble", self.assemble),
            ("push", self.push),
            ("activate", self.activate),
        ]
        .iter()
        .filter(|(_, s)| *s >= 0.005)
        .map(|(name, s)| format!("{name} {s:.2}s"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

impl Summary {
    /// The summary of a run that reached no host: refused before it
    /// started, or one (`exec`) whose hosts report otherwise.
    pub fn without_hosts(env: &str, ok: bool, dry_run: bool) -> Summary {
        Summary {
            ok,
            env: env.to_string(),
            dry_run,
            hosts: Vec::new(),
            deploy: None,
            stopped: None,
            waiting: None,
            round_trips: BTreeMap::new(),
            timings: Timings::default(),
        }
    }

    pub(crate) fn new(run: &Run<'_>, dry_run: bool, hosts: Vec<Outcome>) -> Summary {
        // A dry run skips everything on purpose; it fails only where a host
        // could not be read.
        let ok = hosts.iter().all(|o| match o.status {
            Status::Deployed | Status::Unchanged | Status::Waiting => true,
            Status::Skipped => dry_run,
            Status::RolledBack | Status::Failed => false,
        });
        // What a host logged carries the run's id: a switch (a deploy, a
        // rollback) or a switch back.
        let changed = hosts
            .iter()
            .any(|o| matches!(o.status, Status::Deployed | Status::RolledBack));
        Summary {
            ok,
            env: run.env.name.clone(),
            dry_run,
            deploy: changed.then(|| run.identity.deploy.clone()),
            stopped: None,
            waiting: None,
            hosts,
            round_trips: run.transport.round_trips(),
            timings: Timings::default(),
        }
    }
}
