//! `cargo deploy abort ENV`: ends the rollout that waits for promotion
//! (`pause = "until promoted"`). Nothing is built: each host that waits
//! is taken over, one the rollout activated is switched back to the
//! release before it (running what that release recorded), and every
//! lock is released ([`crate::deploy::abort`]).

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::Summary;
use crate::error::Result;

/// What to abort, and how.
#[derive(Debug, Clone, Default)]
pub struct AbortRequest {
    pub targets: Targets,
    /// A protected environment's confirmation, given up front.
    pub yes: bool,
}

/// Aborts the rollout that waits for promotion on the selected hosts. It
/// changes hosts as a rollback does: a protected environment asks first.
/// Refused (`Error::Usage`) when none waits.
pub fn abort(settings: &Settings, request: &AbortRequest, ui: &dyn Frontend) -> Result<Summary> {
    let confirmation = (!request.yes).then_some("abort");
    on_hosts(
        settings,
        &request.targets,
        Select::Targets,
        confirmation,
        ui,
        |OnHosts { run, plan, .. }| {
            crate::deploy::watching(run, |run| crate::deploy::abort(run, plan))
        },
    )?
}
