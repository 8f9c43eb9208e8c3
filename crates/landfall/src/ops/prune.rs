//! `prune`: what artifacts that left deploy.toml (or moved) left on the
//! hosts, stopped and removed once confirmed.

use super::context::{self, Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use super::status::keep_orphans_of;
use crate::deploy::{self, HostOrphans, PruneResult};
use crate::error::{Error, Result};
use crate::event::Event;

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
            let mut found = deploy::orphans(run, whole, hosts);
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
            Ok(deploy::prune(run, &found))
        },
    )?
}
