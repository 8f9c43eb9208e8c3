//! `status`: what every target's host holds, read in one round trip per host.

use serde::Serialize;

use super::Run;
use crate::assemble::Provenance;
use crate::plan::{Plan, Target};
use crate::steps::{LogEntry, ServiceState};

/// One artifact on one host, as `status` reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetStatus {
    pub host: String,
    pub artifact: String,
    pub path: String,
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<ReleaseStatus>,
    pub lock: Option<String>,
    /// The service the current release runs, as its manager says it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReleaseStatus {
    pub id: String,
    pub current: bool,
    /// Where the release comes from, as it recorded when it was made.
    pub provenance: Option<Provenance>,
    /// The last log entry that switched to this release, if any: a
    /// deploy, a rollback, or a switch back.
    pub activated: Option<LogEntry>,
}

/// Reads what every target's host holds, one round trip per host.
pub fn status(run: &Run<'_>, plan: &Plan) -> Vec<TargetStatus> {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true, None);
    targets
        .iter()
        .zip(states)
        .map(|(target, state)| {
            let path = run.transport.host_path(target);
            let mut report = TargetStatus {
                host: target.host.clone(),
                artifact: target.artifact.clone(),
                path,
                current: None,
                releases: Vec::new(),
                lock: None,
                service: None,
                error: None,
            };
            match state {
                Ok(state) => {
                    report.releases = state
                        .releases
                        .iter()
                        .map(|id| ReleaseStatus {
                            id: id.clone(),
                            current: state.current.as_ref() == Some(id),
                            // A release recorded before overrides were
                            // masked may hold a credential in the clear.
                            provenance: state.provenance.get(id).map(|p| Provenance {
                                overrides: p
                                    .overrides
                                    .iter()
                                    .map(|o| crate::secrets::shown_override(o))
                                    .collect(),
                                ..p.clone()
                            }),
                            activated: state
                                .log
                                .iter()
                                .rev()
                                .find(|e| e.release.as_ref() == Some(id))
                                .cloned(),
                        })
                        .collect();
                    report.current = state.current;
                    report.lock = state.lock;
                    report.service = state.service;
                }
                Err(err) => report.error = Some(err),
            }
            report
        })
        .collect()
}
