//! The read-ahead: every target's state, read over connections opened
//! while cargo builds, so that the deploy's probe finds the answer it needs
//! already there for the releases that are current, and the push knows
//! which release to copy before it sends what differs (see
//! `ops::deploy` for when a deploy reads ahead).

use std::collections::BTreeMap;

use super::Work;
use super::decide::{self, Action};
use super::run::probe_hosts;
use crate::plan::Target;
use crate::steps::PathState;
use crate::transport::Transport;

/// Every target's state on its host, read while cargo builds: see
/// [`look_ahead`].
#[derive(Debug, Clone, Default)]
pub struct Lookahead {
    /// By host and artifact path.
    states: BTreeMap<(String, String), Result<PathState, String>>,
}

impl Lookahead {
    /// The release current at `path` on `host`, as read ahead.
    pub(super) fn current(&self, host: &str, path: &str) -> Option<&str> {
        let key = (host.to_string(), path.to_string());
        self.states.get(&key)?.as_ref().ok()?.current.as_deref()
    }

    /// The state of each of `targets` (at its `path` on its host, as the
    /// transport names it), if every one was read.
    pub(super) fn states_of(
        &self,
        targets: &[(&Target, String)],
    ) -> Option<Vec<Result<PathState, String>>> {
        targets
            .iter()
            .map(|(t, path)| self.states.get(&(t.host.clone(), path.clone())).cloned())
            .collect()
    }

    /// The state of every target of `work`, if the hosts hold each one's
    /// release already, unlocked: then the deploy has nothing to do, and
    /// needs no lock. `None` if anything is to be done, or was not read.
    pub(super) fn all_current(&self, work: &[Work<'_>]) -> Option<Vec<Result<PathState, String>>> {
        work.iter()
            .map(|w| {
                let key = (w.target.host.clone(), w.path.clone());
                let state = self.states.get(&key)?.as_ref().ok()?;
                let current = state.lock.is_none()
                    && decide::decide(w.target, w.release, decide::Found::of(state), false)
                        == Action::Unchanged;
                current.then(|| Ok(state.clone()))
            })
            .collect()
    }
}

/// Reads every target's state on its host, one round trip per host, taking
/// no lock: meant to run while cargo builds. A deploy whose releases the
/// hosts all hold already then decides from it, and makes no other round
/// trip; any other deploy probes again, taking its locks, as it would
/// have. The round trip goes over the session the deploy uses after, so it
/// costs a script, not a connection.
pub fn look_ahead(
    transport: &dyn Transport,
    env: &str,
    targets: &[&Target],
    jobs: usize,
) -> Lookahead {
    let states = probe_hosts(
        transport,
        env,
        jobs,
        targets,
        super::run::Probe {
            detail: false,
            sbom: false,
        },
        None,
    );
    Lookahead {
        states: targets
            .iter()
            .zip(states)
            .map(|(t, state)| ((t.host.clone(), transport.host_path(t)), state))
            .collect(),
    }
}
