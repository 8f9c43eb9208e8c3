//! `rollback`: the selected hosts back to where the fleet's history says,
//! or to `--to`.

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{self, Summary};
use crate::error::{Error, Result};

/// What to roll back to, and how.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    pub targets: Targets,
    /// `--to`: a deploy id, a release id, a commit or a git ref of the
    /// workspace; the last deploy undone when `None`.
    pub to: Option<String>,
    /// Take a lock another run left.
    pub break_lock: bool,
    /// A protected environment's confirmation, given up front.
    pub yes: bool,
}

/// Rolls back as `request` says. A rollback changes hosts as a deploy
/// does: a protected environment asks first. It needs no clean tree nor
/// branch: it runs what the releases recorded, not the workspace.
pub fn rollback(
    settings: &Settings,
    request: &RollbackRequest,
    ui: &dyn Frontend,
) -> Result<Summary> {
    // A git ref is resolved before any host is contacted.
    let to = request
        .to
        .as_deref()
        .map(|to| goal(settings, to))
        .transpose()?;
    let confirmation = (!request.yes).then_some("rollback");
    on_hosts(
        settings,
        &request.targets,
        Select::Targets,
        confirmation,
        ui,
        |OnHosts { run, plan, .. }| deploy::rollback(run, plan, to.as_deref(), request.break_lock),
    )
}

/// What `--to` names, as hosts record it: ids and hashes as given, a git
/// ref (a tag, `HEAD~1`) as the commit it names in the workspace.
fn goal(settings: &Settings, to: &str) -> Result<String> {
    if to
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
    {
        return Ok(to.to_string());
    }
    let workspace = crate::cargo::workspace(settings.manifest_path.as_deref())?;
    crate::git::commit_of(&workspace.root, to).ok_or_else(|| {
        Error::Usage(format!(
            "`--to {to}` is neither a deploy id, a release id or a commit hash, nor a git ref of the workspace"
        ))
    })
}
