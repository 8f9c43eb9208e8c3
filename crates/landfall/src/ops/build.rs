//! Building: cargo, then each artifact assembled into the store and each
//! target's release staged; and [`build`], the `build` command, which
//! writes or publishes the releases as a bundle, or checks that building
//! is reproducible.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::assemble::{self, Assembled, Release, Store};
use crate::bundle::BundleRelease;
use crate::config::{self, Project};
use crate::error::Result;
use crate::event::{Event, Reporter};
use crate::git::{self, Revision};
use crate::hash::HashCache;
use crate::plan::{self, Plan};
use crate::{Error, cargo, diag};

/// What `cargo deploy build ENV` is asked.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub env: String,
    /// Only these artifacts; all when empty.
    pub artifacts: Vec<String>,
    /// Write the releases as a bundle to this directory, or publish it to
    /// this store (`s3://…`).
    pub out: Option<PathBuf>,
    /// Build twice, in two places, and compare.
    pub check_reproducible: bool,
}

/// What `build` produced.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "made once per command")]
pub enum BuildOutput {
    /// The releases, built and staged for environment `env`.
    Releases { env: String, built: Built },
    /// A bundle written to a directory or published to a store: where,
    /// the digest that pins it, and its manifest.
    Bundle {
        location: String,
        digest: crate::bundle::Digest,
        manifest: crate::bundle::BundleManifest,
    },
    /// Two builds compared: the ids of each, and what differs.
    Reproducible {
        first: super::reproducible::BuildIds,
        second: super::reproducible::BuildIds,
        differences: Vec<String>,
    },
}

/// Builds the environment's releases as `request` says. Building deploys
/// nothing: a dirty tree is only warned about.
pub fn build(
    settings: &super::Settings,
    request: &BuildRequest,
    ui: &dyn super::Frontend,
) -> Result<BuildOutput> {
    let (project, env) = settings.load(ui, &request.env)?;
    let report = |event| ui.event(event);
    if request.check_reproducible {
        let (first, second, differences) = super::reproducible::check_reproducible(
            &project,
            &env.name,
            &settings.only,
            settings.quiet_build,
            &report,
        )?;
        return Ok(BuildOutput::Reproducible {
            first,
            second,
            differences,
        });
    }
    let secrets = super::secrets(ui, &project, &env)?;
    let mut plan = plan::plan(&project, &env, &settings.only, false, &secrets)?;
    plan.retain_artifacts(&project, &request.artifacts)?;
    let options = BuildOptions {
        quiet: settings.quiet_build,
        allow_dirty: true,
        ..BuildOptions::default()
    };
    let built = build_releases(&project, &plan, &options, &report)?;
    // Staged copies of files rendered with secrets live only as long as a
    // run needs them: a build deploys nothing, and needs them no longer
    // than it takes to write its bundle.
    let secret: Vec<PathBuf> = built
        .releases
        .iter()
        .filter(|r| r.release.secret)
        .map(|r| r.release.stage.clone())
        .collect();
    let output = build_output(&project, &plan, built, request.out.as_deref(), ui);
    for stage in &secret {
        crate::interrupt::remove_staged(stage);
    }
    output
}

/// What a build of `plan` gives: its releases, or, with `out`, the bundle
/// they make, written there or published to the store it names.
fn build_output(
    project: &Project,
    plan: &Plan,
    built: Built,
    out: Option<&Path>,
    ui: &dyn super::Frontend,
) -> Result<BuildOutput> {
    let Some(out) = out else {
        return Ok(BuildOutput::Releases {
            env: plan.env.clone(),
            built,
        });
    };
    let report = |event| ui.event(event);
    let manifest = crate::bundle::releases::bundle_manifest(project, plan, &built)?;
    let (location, digest) = if let Some(url) = super::deploy::store_url(out).transpose()? {
        let remote = crate::store::Remote::from_env(&url)?;
        let store = Store::open(project)?;
        let (uploaded, digest) =
            crate::bundle::publish(&remote, &store, &manifest, &built.assembled)?;
        report(Event::Stored {
            store: url.to_string(),
            objects: uploaded.objects,
            uploaded: uploaded.uploaded,
            bytes: uploaded.bytes,
        });
        (url.to_string(), digest)
    } else {
        let digest = crate::bundle::write(out, &manifest, &built.assembled)?;
        (out.display().to_string(), digest)
    };
    Ok(BuildOutput::Bundle {
        location,
        digest,
        manifest,
    })
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Keep cargo's progress output off stderr.
    pub quiet: bool,
    /// Use this revision instead of reading the workspace's git repository
    /// (for builds of a copy of the workspace, or with HEAD read ahead, see
    /// [`git::HeadAhead`]).
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
pub struct Built {
    pub revision: Revision,
    /// One per artifact the plan deploys, in plan order.
    pub assembled: Vec<Assembled>,
    /// Each target of the plan with its release, in plan order.
    pub releases: Vec<TargetRelease>,
    pub build_seconds: f64,
    pub assemble_seconds: f64,
}

/// A target of the plan and the release staged for it.
#[derive(Debug)]
pub struct TargetRelease {
    pub target: plan::Target,
    pub release: Release,
}

/// Builds the binaries the plan needs, assembles every artifact into the
/// store and stages every target's release.
pub fn build_releases(
    project: &Project,
    plan: &Plan,
    options: &BuildOptions,
    events: Reporter<'_>,
) -> Result<Built> {
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
pub fn build_from_sources(
    project: &Project,
    plan: &Plan,
    sources: Sources<'_>,
    options: &BuildOptions,
    events: Reporter<'_>,
) -> Result<Built> {
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
    let target_dir = cargo::target_dir(&project.workspace);
    // The build needs only the commit's time. Whether the tree is dirty
    // (`git status`, which may hash every changed file) is read only if a
    // release records it (see `Dirty`).
    let root = &project.workspace.root;
    let revision = options
        .revision
        .clone()
        .unwrap_or_else(|| git::head(root).with_dirty(git::Dirty::deferred(root)));
    // The artifacts' own files are hashed while cargo builds.
    let planned =
        |artifact: &&config::Artifact| plan.targets.iter().any(|t| t.artifact == artifact.name);
    let (binaries, hashed) = std::thread::scope(|scope| {
        let hashed = scope.spawn(|| {
            let mut cache = HashCache::load(&store.hash_cache());
            let own: Result<BTreeMap<&str, assemble::OwnFiles>> = project
                .artifacts
                .iter()
                .filter(planned)
                .filter(|artifact| !trees.contains_key(artifact.name.as_str()))
                .map(|artifact| {
                    let own = assemble::hash_own_files(artifact, &mut cache)?;
                    Ok((artifact.name.as_str(), own))
                })
                .collect();
            (cache, own)
        });
        // What the binaries are built from is read while they build.
        let sbom = scope.spawn(|| {
            if plan.bins.is_empty() {
                Ok(crate::sbom::Graph::default())
            } else {
                crate::sbom::describe(root, &project.build, &plan.bins)
            }
        });
        let binaries = cargo::build(&cargo::BuildRequest {
            workspace_root: root,
            target_dir: &target_dir,
            settings: &project.build,
            bins: &plan.bins,
            source_date_epoch: revision.time,
            quiet: options.quiet,
        });
        let sbom = sbom.join().expect("reading the packages does not panic");
        (
            binaries.and_then(|b| Ok((b, sbom?))),
            hashed.join().expect("hashing does not panic"),
        )
    });
    let (binaries, sbom) = binaries?;
    let (mut cache, own) = hashed;
    let mut own = own?;
    let build_seconds = started.elapsed().as_secs_f64();
    if !bin_names.is_empty() {
        events(Event::BuildFinished {
            bins: bin_names,
            seconds: build_seconds,
        });
    }

    let started = Instant::now();
    let mut assembled: Vec<Assembled> = Vec::new();
    for artifact in project.artifacts.iter().filter(planned) {
        let done = if let Some(source) = trees.get(artifact.name.as_str()) {
            assemble::assemble_git(&store, artifact, repository, source, &mut cache)?
        } else {
            let files = own
                .remove(artifact.name.as_str())
                .expect("the own files of every artifact built were hashed");
            assemble::assemble(&store, artifact, files, &binaries, &sbom, &mut cache)?
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
pub(crate) fn stage_all(
    store: &Store,
    plan: &Plan,
    assembled: &[Assembled],
) -> Result<Vec<TargetRelease>> {
    let by_name: BTreeMap<&str, &Assembled> =
        assembled.iter().map(|a| (a.artifact.as_str(), a)).collect();
    plan.targets
        .iter()
        .map(|target| {
            let release = assemble::stage(store, by_name[target.artifact.as_str()], target)?;
            Ok(TargetRelease {
                target: target.clone(),
                release,
            })
        })
        .collect()
}

impl Built {
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
