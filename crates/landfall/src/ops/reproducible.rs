//! Two independent builds of one commit, compared.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::build::{BuildOptions, Built, build_releases};
use crate::assemble::Assembled;
use crate::config::{self, Project};
use crate::error::{Error, Result};
use crate::event::Reporter;
use crate::{git, load, plan, secrets, transport};

/// The ids two independent builds produced, per artifact and per target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct BuildIds {
    pub artifacts: BTreeMap<String, String>,
    pub releases: BTreeMap<String, String>,
}

impl BuildIds {
    fn of(built: &Built) -> BuildIds {
        BuildIds {
            artifacts: built
                .assembled
                .iter()
                .map(|a| (a.artifact.clone(), a.id.clone()))
                .collect(),
            releases: built
                .releases
                .iter()
                .map(|r| {
                    let t = &r.target;
                    (format!("{}/{}", t.host, t.artifact), r.release.id.clone())
                })
                .collect(),
        }
    }
}

/// Copies the workspace into two fresh directories of different depth,
/// builds and assembles each from scratch, and compares the ids. Returns
/// both sets of ids; the caller decides what a difference means.
pub fn check_reproducible(
    project: &Project,
    env_name: &str,
    only: &[String],
    quiet: bool,
    events: Reporter<'_>,
) -> Result<(BuildIds, BuildIds, Vec<String>)> {
    let revision = git::revision(&project.workspace.root);
    let base = std::env::temp_dir().join(format!("landfall-reproducible-{}", std::process::id()));
    let dirs = [base.join("a"), base.join("second").join("b")];
    let result = (|| {
        let mut all = Vec::new();
        let mut built_all = Vec::new();
        for dir in &dirs {
            copy_workspace(&project.workspace.root, &project.workspace.target_dir, dir)?;
            let copy = load(Some(&dir.join("Cargo.toml")))?;
            let env = config::load_environment(&copy, env_name)?;
            let secrets = secrets::load(&copy, &env)?;
            let plan = plan::plan(&copy, &env, only, false, &secrets)?;
            let options = BuildOptions {
                quiet,
                revision: Some(revision.clone()),
                repository: Some(project.workspace.root.clone()),
                allow_dirty: true,
            };
            let built = build_releases(&copy, &plan, &options, events)?;
            all.push(BuildIds::of(&built));
            built_all.push(built.assembled);
        }
        let differences = differing_files(&built_all[0], &built_all[1]);
        let second = all.pop().expect("two builds");
        let first = all.pop().expect("two builds");
        Ok((first, second, differences))
    })();
    let _ = fs::remove_dir_all(&base);
    result
}

fn differing_files(a: &[Assembled], b: &[Assembled]) -> Vec<String> {
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        let changes = transport::changes(&x.manifest, &y.manifest);
        for path in changes
            .added
            .iter()
            .chain(&changes.removed)
            .chain(&changes.changed)
        {
            out.push(format!("{}: {path}", x.artifact));
        }
    }
    out
}

/// Copies a workspace's files (not its target directory nor `.git`).
fn copy_workspace(root: &Path, target_dir: &Path, dest: &Path) -> Result<()> {
    let walker = walkdir::WalkDir::new(root).into_iter().filter_entry(|e| {
        let path = e.path();
        !(path == target_dir
            || (e.depth() == 1 && (e.file_name() == ".git" || e.file_name() == "target")))
    });
    for entry in walker {
        let entry = entry.map_err(|e| Error::Failed(format!("cannot copy the workspace: {e}")))?;
        let rel = entry.path().strip_prefix(root).expect("walked under root");
        let out: PathBuf = dest.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            crate::files::create_dirs(&out)?;
        } else if kind.is_symlink() {
            let link =
                fs::read_link(entry.path()).map_err(Error::io("cannot read", entry.path()))?;
            std::os::unix::fs::symlink(link, &out)
                .map_err(Error::io("cannot create symlink", &out))?;
        } else {
            fs::copy(entry.path(), &out).map_err(Error::io("cannot copy", entry.path()))?;
        }
    }
    Ok(())
}
