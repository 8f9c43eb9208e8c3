//! `prune`: what artifacts that left deploy.toml (or moved) left on the
//! hosts: the [`orphans`] of each, directories of this project and
//! environment that the model no longer deploys to there, stopped and
//! removed once confirmed ([`remove`]).

use std::time::Duration;

use serde::Serialize;

use super::context::{self, Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use super::status::keep_orphans_of;
use crate::config::Host;
use crate::deploy::{Run, describe_failure};
use crate::error::{Error, Result};
use crate::event::{Event, Phase};
use crate::parallel::parallel;
use crate::plan::Plan;
use crate::steps::{Orphan, Report, Script, Step};

/// What to prune, and how.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    pub targets: Targets,
    /// The confirmation, given up front.
    pub yes: bool,
}

/// Finds the orphans on the selected hosts, hands them to `show`, asks,
/// and prunes them; nothing is removed when one host's cannot be read.
pub fn prune(
    settings: &Settings,
    request: &PruneRequest,
    ui: &dyn Frontend,
    show: &dyn Fn(&[HostOrphans]),
) -> Result<Vec<PruneResult>> {
    on_hosts(
        settings,
        &request.targets,
        Select::Orphans,
        None,
        ui,
        |OnHosts {
             run, whole, hosts, ..
         }| {
            let mut found = orphans(run, whole, hosts);
            keep_orphans_of(&mut found, &request.targets.artifacts);
            for h in &found {
                if let Some(err) = &h.error {
                    return Err(Error::Failed(format!(
                        "nothing was removed: the orphans of `{}` cannot be read: {err}",
                        h.host
                    )));
                }
            }
            let count: usize = found.iter().map(|h| h.orphans.len()).sum();
            if count == 0 {
                ui.event(Event::Warning {
                    message: format!("nothing to prune in `{}`", run.env.name),
                });
                return Ok(Vec::new());
            }
            show(&found);
            if !request.yes {
                context::confirm(
                    ui,
                    &format!(
                        "Stop and remove these {} of `{}`?",
                        context::counted(count as u64, "orphan"),
                        run.env.name
                    ),
                )?;
            }
            Ok(remove(run, &found))
        },
    )?
}

/// The orphans on one host: directories that hold releases of this
/// project and environment which the model no longer deploys there.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostOrphans {
    pub host: String,
    pub orphans: Vec<Orphan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads every selected host's record of the paths landfall deployed to,
/// one round trip per host, and reports those that hold releases of this
/// project and environment but are none of the paths the plan deploys to
/// on that host: an artifact that left `deploy.toml`, moved (`path`
/// changed), or left the host (`roles` changed).
pub fn orphans(run: &Run<'_>, plan: &Plan, hosts: &[&Host]) -> Vec<HostOrphans> {
    parallel(hosts, run.jobs, |host| {
        let known: Vec<String> = plan
            .targets
            .iter()
            .filter(|t| t.host == host.name)
            .map(|t| run.transport.host_path(t))
            .collect();
        let script = Script::new(&run.env.name, &host.name, None).step(Step::Orphans {
            project: run.project.token(),
            env: run.env.name.clone(),
            known,
        });
        let (orphans, error) = match run.transport.run(&host.name, &script) {
            Ok(reply) if reply.success() => (reply.orphans(), None),
            Ok(reply) => (Vec::new(), Some(describe_failure(&reply))),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        HostOrphans {
            host: host.name.clone(),
            orphans,
            error,
        }
    })
}

/// How pruning went on one host: the paths removed, and the error that
/// stopped it, if one did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PruneResult {
    pub host: String,
    pub pruned: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Removes the orphans found by [`orphans`], each under its lock: its
/// service stopped and removed (unless another path installed a service of
/// that name since), its directory, and its line in the host's record.
pub fn remove(run: &Run<'_>, found: &[HostOrphans]) -> Vec<PruneResult> {
    let with_orphans: Vec<&HostOrphans> = found.iter().filter(|h| !h.orphans.is_empty()).collect();
    parallel(&with_orphans, run.jobs, |host| {
        let mut script = Script::new(&run.env.name, &host.host, None);
        let time: Duration = Duration::from_secs(120);
        for orphan in &host.orphans {
            script = script.step(Step::Prune {
                path: orphan.path.clone(),
                owner: run.lock_owner(),
                name: format!(
                    "{}/{}@{}",
                    run.project.token(),
                    orphan.artifact,
                    run.env.name
                ),
            });
        }
        let script = script.allowing(time);
        let mut result = PruneResult {
            host: host.host.clone(),
            pruned: Vec::new(),
            error: None,
        };
        if run.cancel.requested() {
            result.error = Some(crate::deploy::INTERRUPTED.into());
            return result;
        }
        match run.transport.run(&host.host, &script) {
            Ok(reply) => {
                // An orphan's service left running is reported before the
                // orphan's removal.
                let mut kept = false;
                for report in &reply.reports {
                    match report {
                        Report::Pruned { path } => {
                            let orphan = host.orphans.iter().find(|o| &o.path == path);
                            (run.events)(Event::Pruned {
                                host: host.host.clone(),
                                path: path.clone(),
                                artifact: orphan.map(|o| o.artifact.clone()).unwrap_or_default(),
                                service: orphan
                                    .and_then(|o| o.service.clone())
                                    .filter(|_| !std::mem::take(&mut kept)),
                            });
                            result.pruned.push(path.clone());
                        }
                        Report::KeptService { name } => {
                            kept = true;
                            (run.events)(Event::Warning {
                                message: format!(
                                    "on `{}`: the service `{name}` was left running: another path installed it since",
                                    host.host
                                ),
                            });
                        }
                        _ => {}
                    }
                }
                if !reply.success() {
                    let error = match reply.locked_by() {
                        Some(holder) => match crate::deploy::waiting_in(holder) {
                            Some((record, since)) => format!(
                                "locked by a rollout that {}: `cargo deploy promote {env}` goes on, \
                                 `cargo deploy abort {env}` switches back",
                                record.describe(&since),
                                env = run.env.name
                            ),
                            None => format!("locked by another deploy: {holder}"),
                        },
                        None => describe_failure(&reply),
                    };
                    (run.events)(Event::Failed {
                        host: host.host.clone(),
                        artifact: String::new(),
                        phase: Phase::Prune,
                        message: error.clone(),
                    });
                    result.error = Some(error);
                }
            }
            Err(err) => result.error = Some(err.to_string()),
        }
        result
    })
}
