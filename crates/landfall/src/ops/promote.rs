//! `cargo deploy promote ENV`: goes on with the rollout that waits for
//! promotion (`pause = "until promoted"`). It builds, or reads a bundle,
//! exactly as a deploy does (it is one: [`super::deploy`] with the rollout
//! to resume), reads what waits on the hosts, refuses a checkout that
//! builds other releases than those that wait, and then goes on: the
//! hosts activated so far are checked again, and the rollout takes its
//! next batches, as the artifact says, under the waiting deploy's id. The
//! state is the hosts': any checkout of the same commit, on any machine,
//! may promote.

use std::path::PathBuf;

use super::context::{Frontend, Settings};
use super::deploy::DeployRequest;
use crate::deploy::Summary;
use crate::error::Result;

/// What to promote, and how: the options of `cargo deploy promote ENV`.
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools, reason = "the command's flags")]
pub struct PromoteRequest {
    pub env: String,
    /// The local directories of `--local` deploys, rather than the hosts.
    pub local: bool,
    /// Build from a tree with uncommitted changes, even for a protected
    /// environment (the releases must still be those that wait).
    pub allow_dirty: bool,
    /// Promote a bundle whose configuration differs from the workspace's.
    pub allow_config_drift: bool,
    /// `--from LOCATION[#blake3:HEX]`: the releases from that bundle,
    /// rather than built.
    pub from: Option<PathBuf>,
    /// A protected environment's confirmation, given up front.
    pub yes: bool,
}

/// Goes on with the rollout that waits for promotion in `request.env`.
/// Refused (`Error::Usage`) when none waits, or when the releases built
/// are not those it waits with.
pub fn promote(
    settings: &Settings,
    request: &PromoteRequest,
    ui: &dyn Frontend,
) -> Result<Summary> {
    let deploy = DeployRequest {
        env: request.env.clone(),
        local: request.local,
        allow_dirty: request.allow_dirty,
        allow_config_drift: request.allow_config_drift,
        from: request.from.clone(),
        yes: request.yes,
        ..DeployRequest::default()
    };
    super::deploy::deploy_as(settings, &deploy, ui, true)
}
