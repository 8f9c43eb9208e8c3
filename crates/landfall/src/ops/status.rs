//! `status`: each selected target's releases, lock and service, and the
//! orphans on the selected hosts.

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{self, HostOrphans, TargetStatus};
use crate::error::Result;

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

/// Reads the selected targets; orphans are read against every path the
/// model deploys to, and those of the artifacts asked for kept.
pub fn status(settings: &Settings, targets: &Targets, ui: &dyn Frontend) -> Result<StatusReport> {
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
            let mut orphans = deploy::orphans(run, whole, hosts);
            keep_orphans_of(&mut orphans, &targets.artifacts);
            StatusReport {
                targets: deploy::status(run, plan),
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
