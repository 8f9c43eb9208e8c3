//! What a protected environment asks of the workspace it is deployed from.

use crate::config::{self, Project};
use crate::git;

/// Why a protected environment (`protect = true`) refuses to be deployed
/// from this workspace: uncommitted changes (unless `allow_dirty`), or a
/// branch other than the environment's `branch`. `None` if it does not.
/// The confirmation a protected environment also needs is the caller's.
pub fn protection(
    project: &Project,
    env: &config::Environment,
    allow_dirty: bool,
) -> Option<String> {
    if !env.protect {
        return None;
    }
    let root = &project.workspace.root;
    let revision = git::revision(root);
    if revision.commit.is_none() {
        return Some(format!(
            "environment `{}` is protected, and the workspace is not a git repository with a commit",
            env.name
        ));
    }
    if revision.dirty.get() && !allow_dirty {
        return Some(format!(
            "environment `{}` is protected, and the working tree has uncommitted changes\n\
             hint: commit or stash them, or deploy anyway with `--allow-dirty`",
            env.name
        ));
    }
    if let Some(branch) = &env.branch
        && !git::on_branch(root, branch)
    {
        let current = git::branch(root).map_or_else(
            || "a detached HEAD elsewhere".to_string(),
            |b| format!("branch `{b}`"),
        );
        return Some(format!(
            "environment `{}` is deployed from branch `{branch}`, and this is {current}",
            env.name
        ));
    }
    None
}
