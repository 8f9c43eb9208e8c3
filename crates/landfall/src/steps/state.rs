//! What a probe and a claim found on a host, per path, read from the
//! reports of a [`Reply`]: [`PathState`], with the [`Claim`] of a path and
//! the [`LogEntry`]s of its log.

use serde::{Deserialize, Serialize};

use super::reply::{Reply, Report, ServiceState};
use crate::assemble::Provenance;

/// What a host holds for one artifact path.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct PathState {
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<String>,
    /// Each release's provenance, where it recorded one.
    #[serde(skip)]
    pub provenance: std::collections::BTreeMap<String, Provenance>,
    pub log: Vec<LogEntry>,
    pub lock: Option<String>,
    /// The release the log last confirmed running (`Some(None)`: none),
    /// if there is a log.
    #[serde(skip)]
    pub confirmed: Option<Option<String>>,
    /// What `landfall_claim` did, when the probe asked for the lock.
    #[serde(skip)]
    pub claim: Option<Claim>,
    /// The service the current release runs, when the probe asked for
    /// detail.
    #[serde(skip)]
    pub service: Option<ServiceState>,
    /// The other instance of a service with `overlap`, when it runs too:
    /// a hand-over under way, or one stopped midway.
    #[serde(skip)]
    pub beside: Option<ServiceState>,
    /// The current release's bill of materials, as the host holds it, when
    /// the probe asked for it.
    #[serde(skip)]
    pub sbom: Option<String>,
}

/// The outcome of `landfall_claim` for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lock is held by this run; `current` as read under it, and the
    /// outermost directory the claim made, for a path that did not exist.
    Held {
        current: Option<String>,
        created: Option<String>,
        /// The upload is a copy of `current` (see `landfall_derive`).
        derived: bool,
    },
    /// Another deploy holds the lock: its lock line.
    Busy(String),
    /// The lock or the directories could not be made: why.
    Unclaimed(String),
}

/// One line of `.landfall/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogEntry {
    pub time: String,
    /// `activated` (a deploy), `rolled_back` (switched back when an
    /// activation failed), `rollback` (`cargo deploy rollback`),
    /// `reactivated` (`--force`), `exec` (a command about to run on the
    /// host, logged before it starts) or `exec_end` (how that command
    /// ended, with the same `id`).
    pub event: String,
    pub env: String,
    pub artifact: String,
    /// The release switched to.
    pub release: Option<String>,
    /// The release switched from.
    pub previous: Option<String>,
    pub user: String,
    /// The machine landfall ran on.
    pub from: String,
    /// The commit the release switched to was built from.
    pub revision: Option<String>,
    /// For `exec` (a command a person ran with `exec` or the shell): the
    /// command, secrets masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For `exec_end`: the command's exit status (the shell's, 128 and
    /// the signal's number, if a signal ended it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// For `exec` and `exec_end`: the same for both entries of one
    /// command, on every host it ran on. An `exec` with no `exec_end` of
    /// its id is a command that ended the shell which ran it, or is still
    /// running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The run that made the change (see
    /// [`Identity::deploy`](crate::deploy::Identity::deploy)): every host a
    /// deploy or a rollback changed records the same. Entries written
    /// before runs had ids have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// For `rollback`: the deploys it undid, which a later rollback goes
    /// back past.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undoes: Vec<String>,
    /// Why, for a change a host made by itself: `rolled_back` when an
    /// activation was not confirmed in time (`[artifact.X.rollout]
    /// confirm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl LogEntry {
    /// Whether it records a change of the release (not a command run).
    pub(crate) fn is_change(&self) -> bool {
        !self.event.starts_with("exec")
    }
}

impl Reply {
    /// The state of each of `count` probed paths.
    pub(crate) fn states(&self, count: usize) -> Vec<PathState> {
        let mut states = vec![PathState::default(); count];
        for report in &self.reports {
            let index = match report {
                Report::Current { index, .. }
                | Report::Release { index, .. }
                | Report::Provenance { index, .. }
                | Report::Log { index, .. }
                | Report::Sbom { index, .. }
                | Report::Lock { index, .. }
                | Report::Confirmed { index, .. }
                | Report::Held { index, .. }
                | Report::Busy { index, .. }
                | Report::Unclaimed { index, .. }
                | Report::Created { index, .. }
                | Report::Derived { index, .. }
                | Report::Service { index, .. } => *index,
                _ => continue,
            };
            let Some(state) = states.get_mut(index) else {
                continue;
            };
            match report.clone() {
                Report::Current { release, .. } => state.current = release,
                Report::Release { release, .. } => state.releases.push(release),
                Report::Provenance {
                    release,
                    provenance: Some(provenance),
                    ..
                } => {
                    state.provenance.insert(release, provenance);
                }
                Report::Log { entry, .. } => state.log.push(entry),
                Report::Sbom { line, .. } => {
                    let text = state.sbom.get_or_insert_with(String::new);
                    text.push_str(&line);
                    text.push('\n');
                }
                Report::Lock { holder, .. } => state.lock = Some(holder),
                Report::Confirmed { release, .. } => state.confirmed = Some(release),
                Report::Held { current, .. } => {
                    state.claim = Some(Claim::Held {
                        current,
                        created: None,
                        derived: false,
                    });
                }
                Report::Created { dir, .. } => {
                    if let Some(Claim::Held { created, .. }) = &mut state.claim {
                        *created = Some(dir);
                    }
                }
                Report::Derived { refused, .. } => {
                    if let Some(Claim::Held { derived, .. }) = &mut state.claim {
                        *derived = refused.is_none();
                    }
                }
                Report::Busy { holder, .. } => state.claim = Some(Claim::Busy(holder)),
                Report::Unclaimed { reason, .. } => state.claim = Some(Claim::Unclaimed(reason)),
                Report::Service { state: service, .. } => {
                    // The instance that serves comes first.
                    if state.service.is_none() {
                        state.service = Some(service);
                    } else {
                        state.beside = Some(service);
                    }
                }
                _ => {}
            }
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::reply::reply;

    #[test]
    fn probe_output_is_parsed_per_path() {
        let states = reply(
            0,
            "current\t0\tabc\nrelease\t0\tabc\nrelease\t0\tdef\ncurrent\t1\t\nlog\t0\tnot json\n\
             confirmed\t0\tdef\nconfirmed\t1\t\n\
             provenance\t0\tabc\t{\"revision\":\"c0ffee\",\"dirty\":false,\"user\":\"ann\",\"from\":\"m\",\"time\":\"t\",\"landfall\":\"0.1.0\"}\n",
        )
        .states(2);
        assert_eq!(states[0].current.as_deref(), Some("abc"));
        assert_eq!(states[0].releases, ["abc", "def"]);
        assert_eq!(
            states[0].provenance["abc"].revision.as_deref(),
            Some("c0ffee")
        );
        assert_eq!(states[1].current, None);
        assert_eq!(states[0].confirmed, Some(Some("def".into())));
        assert_eq!(states[1].confirmed, Some(None));
        assert!(states[0].log.is_empty());
        assert_eq!(states[0].claim, None);

        let states = reply(
            0,
            "current\t0\tabc\ncurrent\t1\t\ncurrent\t2\t\nheld\t0\tabc\nheld\t1\t\n\
             busy\t2\t{\"user\":\"ann\"}\nunclaimed\t3\tcannot create /srv/x \n\
             held\t4\t\ncreated\t4\t/srv\nheld\t5\tabc\nderived\t5\n\
             held\t6\tabc\nunderived\t6\tabc/x changed after the release was made\n",
        )
        .states(7);
        let held = |current: Option<&str>| Claim::Held {
            current: current.map(str::to_string),
            created: None,
            derived: false,
        };
        assert_eq!(states[0].claim, Some(held(Some("abc"))));
        assert_eq!(
            states[5].claim,
            Some(Claim::Held {
                current: Some("abc".into()),
                created: None,
                derived: true,
            })
        );
        assert_eq!(states[6].claim, Some(held(Some("abc"))));
        assert_eq!(states[1].claim, Some(held(None)));
        assert_eq!(
            states[2].claim,
            Some(Claim::Busy(r#"{"user":"ann"}"#.into()))
        );
        assert_eq!(
            states[3].claim,
            Some(Claim::Unclaimed("cannot create /srv/x".into()))
        );
        assert_eq!(
            states[4].claim,
            Some(Claim::Held {
                current: None,
                created: Some("/srv".into()),
                derived: false,
            })
        );
    }
}
