//! `status`: each selected target's releases, lock and service, read in
//! one round trip per host ([`read`]), and the orphans on the selected
//! hosts; with `--sbom`, the same round trip reads the bill of materials
//! of each current release ([`crate::sbom::SBOM_FILE`]).

use serde::Serialize;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use super::prune::{HostOrphans, orphans};
use crate::assemble::Provenance;
use crate::deploy::{Run, WaitRecord, waiting_in};
use crate::error::Result;
use crate::plan::{Plan, Target};
use crate::steps::{LogEntry, ServiceState};

/// What `status` found.
#[derive(Debug)]
pub struct StatusReport {
    pub targets: Vec<TargetStatus>,
    pub orphans: Vec<HostOrphans>,
}

impl StatusReport {
    /// Whether every target and every host's orphans could be read.
    pub fn ok(&self) -> bool {
        self.targets.iter().all(|t| t.error.is_none())
            && self.orphans.iter().all(|h| h.error.is_none())
    }
}

/// What `cargo deploy status ENV` is asked.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub targets: Targets,
    /// Read each current release's bill of materials too.
    pub sbom: bool,
}

/// Reads the selected targets; orphans are read against every path the
/// model deploys to, and those of the artifacts asked for kept.
pub fn status(
    settings: &Settings,
    request: &StatusRequest,
    ui: &dyn Frontend,
) -> Result<StatusReport> {
    let targets = &request.targets;
    on_hosts(
        settings,
        targets,
        Select::TargetsAndOrphans,
        None,
        ui,
        |OnHosts {
             run,
             plan,
             whole,
             hosts,
         }| {
            let mut orphans = orphans(run, whole, hosts);
            keep_orphans_of(&mut orphans, &targets.artifacts);
            StatusReport {
                targets: read_with(run, plan, request.sbom),
                orphans,
            }
        },
    )
}

/// Keeps the orphans that were deployed as one of `names` (all of them when
/// it is empty): an orphan's artifact may have left deploy.toml, so its
/// name is the one the host recorded.
pub(crate) fn keep_orphans_of(found: &mut [HostOrphans], names: &[String]) {
    if names.is_empty() {
        return;
    }
    for host in found {
        host.orphans.retain(|o| names.contains(&o.artifact));
    }
}

/// One artifact on one host, as `status` reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetStatus {
    pub host: String,
    pub artifact: String,
    pub path: String,
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<ReleaseStatus>,
    /// Who holds the deploy lock, as its owner line says it; for a lock
    /// kept by a rollout that waits for promotion, `waits for promotion:
    /// deploy ID, batch N of M, since T`.
    pub lock: Option<String>,
    /// What waits, when a rollout that waits for promotion keeps the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitRecord>,
    /// The service the current release runs, as its manager says it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
    /// The other instance of a service with `overlap`, when it runs
    /// beside the one that serves: a hand-over under way, or one stopped
    /// midway (the next deploy stops it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beside: Option<ServiceState>,
    /// With `--sbom`: the current release's bill of materials, the
    /// `CycloneDX` document as the host holds it (a string if it is not
    /// JSON); none for a release without binaries, or made before
    /// releases had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<serde_json::Value>,
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
pub fn read(run: &Run<'_>, plan: &Plan) -> Vec<TargetStatus> {
    read_with(run, plan, false)
}

/// [`read`], with each current release's bill of materials if `sbom`.
pub fn read_with(run: &Run<'_>, plan: &Plan, sbom: bool) -> Vec<TargetStatus> {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe_for_status(&targets, sbom);
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
                waiting: None,
                service: None,
                beside: None,
                sbom: None,
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
                    match state.lock.as_deref().and_then(waiting_in) {
                        Some((record, since)) => {
                            report.lock = Some(record.describe(&since));
                            report.waiting = Some(record);
                        }
                        None => report.lock = state.lock,
                    }
                    report.service = state.service;
                    report.beside = state.beside;
                    report.sbom = state.sbom.map(|text| {
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                    });
                }
                Err(err) => report.error = Some(err),
            }
            report
        })
        .collect()
}
