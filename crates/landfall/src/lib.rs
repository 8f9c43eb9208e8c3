//! landfall: build, assemble and deploy Rust services.
//!
//! The pipeline is the architecture:
//!
//! ```text
//! config -> plan -> build -> assemble/hash -> transport -> activate -> report
//! ```
//!
//! [`load`] reads the workspace and `deploy.toml`,
//! [`config::load_environment`] an environment, [`plan::plan`] computes what
//! goes where, [`build_releases`] builds and assembles, and
//! [`deploy::deploy`] moves the releases over a [`transport::Transport`].
//! The library prints nothing: progress arrives as [`event::Event`]s.
//!
//! ```no_run
//! use landfall::{config, deploy, plan, transport};
//!
//! let project = landfall::load(None)?;
//! let env = config::load_environment(&project, "dev")?;
//! let secrets = landfall::secrets::load(&project, &env)?;
//! let plan = plan::plan(&project, &env, &[], true, &secrets)?;
//! let report = |event: landfall::event::Event| eprintln!("{event:?}");
//! let built = landfall::build_releases(&project, &plan, &landfall::BuildOptions::default(), &report)?;
//! let local = transport::Local::new(&project.workspace.landfall_dir(), &env.name);
//! let identity = deploy::Identity::current(built.revision.clone());
//! let run = deploy::Run { project: &project, env: &env, transport: &local, identity: &identity, jobs: env.jobs, events: &report };
//! let summary = deploy::deploy(&run, &built.releases, &deploy::DeployOptions::default());
//! assert!(summary.ok);
//! # Ok::<(), landfall::Error>(())
//! ```

pub mod assemble;
pub mod build;
pub mod bundle;
pub mod config;
pub mod deploy;
pub mod diag;
pub mod diff;
mod error;
pub mod event;
mod files;
pub mod git;
mod hash;
pub mod hooks;
pub mod init;
pub mod interrupt;
mod parallel;
pub mod plan;
mod process;
pub mod secrets;
pub mod service;
mod steps;
pub mod store;
pub mod template;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use error::{Error, Result};
pub use process::{ProcessError, ProcessErrorKind};

/// This version of landfall.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use assemble::{Assembled, Release, Store};
use bundle::{Bundle, BundleArtifact, BundleManifest, BundleRelease};
use config::Project;
use event::{Event, Reporter};
use git::Revision;
use hash::HashCache;
use plan::Plan;

/// Reads the cargo workspace (at `manifest_path`, or around the current
/// directory) and its `deploy.toml`.
pub fn load(manifest_path: Option<&Path>) -> Result<Project> {
    let workspace = build::workspace(manifest_path)?;
    config::load_project(workspace)
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Keep cargo's progress output off stderr.
    pub quiet: bool,
    /// Use this revision instead of reading the workspace's git repository
    /// (for builds of a copy of the workspace).
    pub revision: Option<Revision>,
    /// Read the trees of git artifacts from the repository of this
    /// directory instead of the workspace's (for builds of a copy).
    pub repository: Option<PathBuf>,
    /// Deploy git artifacts from HEAD even where the working tree has
    /// changes HEAD does not (each is warned about); otherwise such a tree
    /// is refused.
    pub allow_dirty: bool,
}

/// What building and assembling produced.
#[derive(Debug)]
pub struct Built<'p> {
    pub revision: Revision,
    /// One per artifact the plan deploys, in plan order.
    pub assembled: Vec<Assembled>,
    /// Each target of the plan with its release, in plan order.
    pub releases: Vec<TargetRelease<'p>>,
    pub build_seconds: f64,
    pub assemble_seconds: f64,
}

/// A target of the plan and the release staged for it.
#[derive(Debug)]
pub struct TargetRelease<'p> {
    pub target: &'p plan::Target,
    pub release: Release,
}

/// Builds the binaries the plan needs, assembles every artifact into the
/// store and stages every target's release.
pub fn build_releases<'p>(
    project: &Project,
    plan: &'p Plan,
    options: &BuildOptions,
    events: Reporter<'_>,
) -> Result<Built<'p>> {
    let sources = read_sources(project, plan, options, events)?;
    build_from_sources(project, plan, sources, options, events)
}

/// What a build reads from the repository before it starts: the HEAD tree
/// of every git artifact the plan deploys. Reading it is where a dirty tree
/// or a missing `subdir` is refused, so a caller that reads the sources
/// before it contacts any host refuses such input with nothing contacted.
#[derive(Debug)]
pub struct Sources<'p> {
    trees: BTreeMap<&'p str, git::TreeSource>,
}

/// Reads the sources of a build (see [`Sources`]); [`build_from_sources`]
/// builds from them.
pub fn read_sources<'p>(
    project: &'p Project,
    plan: &Plan,
    options: &BuildOptions,
    events: Reporter<'_>,
) -> Result<Sources<'p>> {
    let repository = options
        .repository
        .as_deref()
        .unwrap_or(&project.workspace.root);
    let trees = git_trees(project, plan, repository, options.allow_dirty, events)?;
    Ok(Sources { trees })
}

/// [`build_releases`], from sources read before.
pub fn build_from_sources<'p>(
    project: &Project,
    plan: &'p Plan,
    sources: Sources<'_>,
    options: &BuildOptions,
    events: Reporter<'_>,
) -> Result<Built<'p>> {
    let repository = options
        .repository
        .as_deref()
        .unwrap_or(&project.workspace.root);
    let trees = sources.trees;
    // landfall's directory is private before cargo builds into it.
    let store = Store::open(project)?;
    let started = Instant::now();
    let bin_names: Vec<String> = plan.bins.iter().map(|b| b.name.clone()).collect();
    if !bin_names.is_empty() {
        events(Event::BuildStarted {
            bins: bin_names.clone(),
        });
    }
    let target_dir = build::target_dir(&project.workspace);
    // The build needs only the commit's time. Whether the tree is dirty
    // (`git status`, which may hash every changed file) is read only if a
    // release records it (see `Dirty`).
    let root = &project.workspace.root;
    let revision = options
        .revision
        .clone()
        .unwrap_or_else(|| git::head(root).with_dirty(git::Dirty::deferred(root)));
    let binaries = build::build(&build::BuildRequest {
        workspace_root: root,
        target_dir: &target_dir,
        settings: &project.build,
        bins: &plan.bins,
        source_date_epoch: revision.time,
        quiet: options.quiet,
    });
    let binaries = binaries?;
    let build_seconds = started.elapsed().as_secs_f64();
    if !bin_names.is_empty() {
        events(Event::BuildFinished {
            bins: bin_names,
            seconds: build_seconds,
        });
    }

    let started = Instant::now();
    let mut cache = HashCache::load(&store.hash_cache());
    let mut assembled: Vec<Assembled> = Vec::new();
    for artifact in &project.artifacts {
        if !plan.targets.iter().any(|t| t.artifact == artifact.name) {
            continue;
        }
        let done = match trees.get(artifact.name.as_str()) {
            Some(source) => {
                assemble::assemble_git(&store, artifact, repository, source, &mut cache)?
            }
            None => assemble::assemble(&store, artifact, &binaries, &mut cache)?,
        };
        events(Event::assembled(&done));
        assembled.push(done);
    }
    cache.save()?;
    let releases = stage_all(&store, plan, &assembled)?;
    Ok(Built {
        revision,
        assembled,
        releases,
        build_seconds,
        assemble_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Stages every target's release from its artifact's tree.
fn stage_all<'p>(
    store: &Store,
    plan: &'p Plan,
    assembled: &[Assembled],
) -> Result<Vec<TargetRelease<'p>>> {
    let by_name: BTreeMap<&str, &Assembled> =
        assembled.iter().map(|a| (a.artifact.as_str(), a)).collect();
    plan.targets
        .iter()
        .map(|target| {
            let release = assemble::stage(store, by_name[target.artifact.as_str()], target)?;
            Ok(TargetRelease { target, release })
        })
        .collect()
}

/// The manifest of a bundle of what `built` holds, for `plan`'s
/// environment.
pub fn bundle_manifest(
    project: &Project,
    plan: &Plan,
    built: &Built<'_>,
) -> Result<BundleManifest> {
    Ok(BundleManifest {
        schema: bundle::SCHEMA.to_string(),
        landfall: VERSION.to_string(),
        project: project.name.clone(),
        revision: built.revision.commit.clone(),
        dirty: built.revision.dirty.get(),
        source_date_epoch: built.revision.time,
        toolchain: build::toolchain(&project.workspace.root)?,
        profile: project.build.profile.clone(),
        target: project.build.target.clone(),
        features: project.build.features.clone(),
        env: plan.env.clone(),
        artifacts: built.assembled.iter().map(BundleArtifact::of).collect(),
        releases: built.release_ids(),
    })
}

impl Built<'_> {
    /// The release of each target, by host and artifact.
    pub fn release_ids(&self) -> Vec<BundleRelease> {
        self.releases
            .iter()
            .map(|r| BundleRelease {
                host: r.target.host.clone(),
                artifact: r.target.artifact.clone(),
                release: r.release.id.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FromOptions {
    /// Render the bundle's releases with a configuration of another commit
    /// than the bundle's.
    pub allow_config_drift: bool,
}

/// Takes the plan's artifacts from a verified bundle instead of building
/// them, and stages every target's release with the workspace's
/// configuration (templates, secrets, hooks).
///
/// ```no_run
/// use landfall::{bundle, config, plan, secrets};
///
/// let project = landfall::load(None)?;
/// let env = config::load_environment(&project, "prod")?;
/// let secrets = secrets::load(&project, &env)?;
/// let plan = plan::plan(&project, &env, &[], false, &secrets)?;
/// // Every file is checked against the bundle's manifest here.
/// let bundle = bundle::open(std::path::Path::new("bundle"))?;
/// let report = |event: landfall::event::Event| eprintln!("{event:?}");
/// let built = landfall::releases_from_bundle(&project, &plan, &bundle, Default::default(), &report)?;
/// for r in &built.releases {
///     println!("{} {}: {}", r.target.host, r.target.artifact, r.release.id);
/// }
/// # Ok::<(), landfall::Error>(())
/// ```
pub fn releases_from_bundle<'p>(
    project: &Project,
    plan: &'p Plan,
    bundle: &Bundle,
    options: FromOptions,
    events: Reporter<'_>,
) -> Result<Built<'p>> {
    let started = Instant::now();
    let config = git::revision(&project.workspace.root);
    let built_from = &bundle.manifest;
    let drift = match (&config.commit, &built_from.revision) {
        (Some(now), Some(then)) if now != then => Some(format!(
            "the bundle was built from {}, the configuration is at {}",
            git::short(then),
            git::short(now)
        )),
        (Some(_), Some(_)) if config.dirty.get() => Some(format!(
            "the bundle was built from {}, and the configuration has uncommitted changes",
            git::short(built_from.revision.as_deref().unwrap_or_default())
        )),
        _ => None,
    };
    if let Some(drift) = drift {
        if !options.allow_config_drift {
            return Err(Error::Usage(format!(
                "{drift}\nhint: templates, hooks and hosts come from the workspace; deploy them \
                 with the bundle anyway with `--allow-config-drift`"
            )));
        }
        events(Event::Warning {
            message: format!("{drift}: rendering with the workspace's configuration"),
        });
    }
    // Every artifact is checked before anything is written.
    let mut imports = Vec::new();
    for artifact in &project.artifacts {
        if !plan.targets.iter().any(|t| t.artifact == artifact.name) {
            continue;
        }
        let Some(from) = bundle.artifact(&artifact.name) else {
            let names: Vec<&str> = built_from
                .artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            return Err(Error::Usage(format!(
                "bundle `{}` has no artifact `{}` of deploy.toml (it has: {})",
                bundle.dir.display(),
                artifact.name,
                names.join(", ")
            )));
        };
        let git = matches!(artifact.transport, config::Transport::Git { .. });
        if git != from.git.is_some() {
            return Err(Error::Usage(format!(
                "artifact `{}` is a {} artifact in deploy.toml but not in bundle `{}`",
                artifact.name,
                if git { "git" } else { "rsync" },
                bundle.dir.display()
            )));
        }
        if let Some(commit) = from.git.as_ref().map(|g| g.commit.as_str())
            && !git::has_commit(&project.workspace.root, commit)
        {
            return Err(Error::Usage(format!(
                "artifact `{}` of the bundle is commit {}, which this repository does not have; \
                 fetch it first",
                artifact.name,
                git::short(commit)
            )));
        }
        imports.push(&artifact.name);
    }
    let store = Store::open(project)?;
    let mut assembled = Vec::new();
    for name in imports {
        let done = bundle.import(&store, name, &project.workspace.root)?;
        events(Event::assembled(&done));
        assembled.push(done);
    }
    let releases = stage_all(&store, plan, &assembled)?;
    Ok(Built {
        revision: Revision {
            commit: built_from.revision.clone(),
            dirty: git::Dirty::known(built_from.dirty),
            time: built_from.source_date_epoch,
        },
        assembled,
        releases,
        build_seconds: 0.0,
        assemble_seconds: started.elapsed().as_secs_f64(),
    })
}

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

/// The HEAD trees of the git artifacts the plan deploys. A tree with
/// uncommitted changes under an artifact's directory is refused, or with
/// `allow_dirty` deployed from HEAD with a warning.
fn git_trees<'p>(
    project: &'p Project,
    plan: &Plan,
    repository: &Path,
    allow_dirty: bool,
    events: Reporter<'_>,
) -> Result<BTreeMap<&'p str, git::TreeSource>> {
    let mut trees = BTreeMap::new();
    for artifact in &project.artifacts {
        let config::Transport::Git { subdir } = &artifact.transport else {
            continue;
        };
        if !plan.targets.iter().any(|t| t.artifact == artifact.name) {
            continue;
        }
        let source = git::tree_source(repository, subdir).map_err(|message| {
            let message = format!("artifact `{}` (transport git): {message}", artifact.name);
            let diag = diag::Diagnostic::error(message).at(
                &project.file,
                artifact.span.clone(),
                "deploys a tree of the HEAD commit",
            );
            Error::Config(diag::Diagnostics(vec![diag]))
        })?;
        if !source.dirty.is_empty() {
            const SHOWN: usize = 10;
            let mut paths = source.dirty[..source.dirty.len().min(SHOWN)].join(", ");
            if source.dirty.len() > SHOWN {
                let _ = write!(paths, " and {} more", source.dirty.len() - SHOWN);
            }
            let commit = git::short(&source.commit);
            if !allow_dirty {
                return Err(Error::Usage(format!(
                    "artifact `{}` (transport git) deploys the HEAD commit ({commit}), but the \
                     working tree has changes it does not: {paths}\n\
                     hint: commit them, or deploy HEAD as it is with `--allow-dirty`",
                    artifact.name
                )));
            }
            events(Event::Warning {
                message: format!(
                    "artifact `{}` deploys the HEAD commit ({commit}) without the working \
                     tree's changes to {paths}",
                    artifact.name
                ),
            });
        }
        trees.insert(artifact.name.as_str(), source);
    }
    Ok(trees)
}

/// The ids two independent builds produced, per artifact and per target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct BuildIds {
    pub artifacts: BTreeMap<String, String>,
    pub releases: BTreeMap<String, String>,
}

impl BuildIds {
    fn of(built: &Built<'_>) -> BuildIds {
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
                    let t = r.target;
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
