//! Facts about the workspace's git repository: the revision being deployed,
//! whether the tree is dirty, and the commit time that makes builds
//! reproducible.

use std::path::Path;

use serde::Serialize;

use crate::process::{self, Cmd};

/// Used as `SOURCE_DATE_EPOCH` outside a git repository: 1980-01-01, the
/// earliest time a zip archive can hold.
const FALLBACK_EPOCH: i64 = 315_532_800;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Revision {
    /// The HEAD commit, or `None` outside a git repository.
    pub commit: Option<String>,
    pub dirty: bool,
    /// The HEAD commit's time, in seconds since the epoch.
    pub time: i64,
}

impl Revision {
    /// The revision as people read it: a short hash, `+dirty` when the tree
    /// has changes.
    pub fn describe(&self) -> Option<String> {
        let commit = self.commit.as_deref()?;
        Some(format!(
            "{}{}",
            &commit[..commit.len().min(12)],
            if self.dirty { "+dirty" } else { "" }
        ))
    }
}

/// Reads the revision of the repository containing `dir`; a directory
/// outside any repository has none.
pub fn revision(dir: &Path) -> Revision {
    let git = |args: &[&str]| {
        process::run(&Cmd::new("git").arg("-C").arg(dir).args(args))
            .ok()
            .map(|o| o.stdout_text())
    };
    let Some(head) = git(&["log", "-1", "--format=%H %ct"]) else {
        return Revision {
            commit: None,
            dirty: false,
            time: FALLBACK_EPOCH,
        };
    };
    let mut words = head.split_whitespace();
    let commit = words.next().map(str::to_string);
    let time = words
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(FALLBACK_EPOCH);
    let dirty = git(&["status", "--porcelain", "--untracked-files=normal"])
        .is_some_and(|s| !s.trim().is_empty());
    Revision {
        commit,
        dirty,
        time,
    }
}
