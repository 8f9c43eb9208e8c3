//! A bundle's releases: the manifest of a build's artifacts, written for
//! CI to promote, and the releases staged from a bundle with the
//! workspace's configuration.

use std::time::Instant;

use super::{Bundle, BundleArtifact, BundleManifest};
use crate::assemble::Store;
use crate::config::{self, Project};
use crate::error::{Error, Result};
use crate::event::{Event, Reporter};
use crate::git::{self, Revision};
use crate::ops::build::{Built, stage_all};
use crate::plan::Plan;
use crate::{VERSION, bundle, cargo};

/// The manifest of a bundle of what `built` holds, for `plan`'s
/// environment.
pub fn bundle_manifest(project: &Project, plan: &Plan, built: &Built) -> Result<BundleManifest> {
    Ok(BundleManifest {
        schema: bundle::SCHEMA.to_string(),
        landfall: VERSION.to_string(),
        project: project.name.clone(),
        revision: built.revision.commit.clone(),
        dirty: built.revision.dirty.get(),
        source_date_epoch: built.revision.time,
        toolchain: cargo::toolchain(&project.workspace.root)?,
        profile: project.build.profile.clone(),
        target: project.build.target.clone(),
        features: project.build.features.clone(),
        env: plan.env.clone(),
        artifacts: built.assembled.iter().map(BundleArtifact::of).collect(),
        releases: built.release_ids(),
    })
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
/// let bundle = bundle::open(std::path::Path::new("bundle"), None)?;
/// let report = |event: landfall::event::Event| eprintln!("{event:?}");
/// let built = landfall::bundle::releases::releases_from_bundle(&project, &plan, &bundle, Default::default(), &report)?;
/// for r in &built.releases {
///     println!("{} {}: {}", r.target.host, r.target.artifact, r.release.id);
/// }
/// # Ok::<(), landfall::Error>(())
/// ```
pub fn releases_from_bundle(
    project: &Project,
    plan: &Plan,
    bundle: &Bundle,
    options: FromOptions,
    events: Reporter<'_>,
) -> Result<Built> {
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
