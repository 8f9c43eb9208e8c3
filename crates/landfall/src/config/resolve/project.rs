//! `deploy.toml` as a whole: the `[project]` table (its name and id), the
//! `[build]` settings, every artifact (each resolved by [`super::artifact`])
//! with the checks that span them (two artifacts running one service, the
//! cycles of `after`), and the top-level `[hooks]`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use toml::Spanned;

use super::artifact::resolve_artifact;
use super::hooks::resolve_project_hooks;
use super::{Checker, check_name, parse, read_source};
use crate::config::{Artifact, BuildSettings, Project, Workspace, raw};
use crate::diag::SourceFile;
use crate::error::{Error, Result};

/// Reads `deploy.toml` at the workspace root and resolves it.
pub fn load_project(workspace: Workspace) -> Result<Project> {
    let path = workspace.root.join("deploy.toml");
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "no `deploy.toml` in `{}`: create one with `cargo deploy init`",
            workspace.root.display()
        )));
    }
    let file = read_source(&path, "deploy.toml".to_string())?;
    let raw: raw::DeployFile = parse(&file)?;
    let mut check = Checker::new(Arc::clone(&file));

    let name = project_name(&mut check, &workspace, raw.project.name);
    let id = project_id(&mut check, &file, &name, raw.project.id);
    let target_span = raw.build.target.as_ref().map(Spanned::span);
    let build = build_settings(&mut check, raw.build);
    let artifacts = resolve_artifacts(&mut check, &workspace, &name, raw.artifact);
    let artifacts = order_artifacts(&mut check, artifacts);
    let hooks = resolve_project_hooks(&mut check, raw.hooks);
    let warnings = check.finish()?;
    Ok(Project {
        workspace,
        name,
        id,
        build,
        vars: raw.vars,
        artifacts,
        hooks,
        warnings,
        file,
        target_span,
    })
}

/// `[project] name`, or else the workspace's root package, or else its
/// directory's name.
fn project_name(
    check: &mut Checker,
    workspace: &Workspace,
    name: Option<Spanned<String>>,
) -> String {
    match name {
        Some(name) => {
            check_name(check, &name, "project name");
            name.into_inner()
        }
        None => workspace.root_package.clone().unwrap_or_else(|| {
            workspace
                .root
                .file_name()
                .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned())
        }),
    }
}

/// `[project] id`, checked; a project without one is warned about, since
/// hosts then know it by its name alone.
fn project_id(
    check: &mut Checker,
    file: &Arc<SourceFile>,
    name: &str,
    id: Option<Spanned<String>>,
) -> Option<String> {
    if let Some(id) = id {
        let text = id.get_ref();
        if !(8..=64).contains(&text.len())
            || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            check.error(
                id.span(),
                format!("invalid project id `{}`", crate::diag::shown(text)),
                "8 to 64 letters, digits and `-`, as `cargo deploy init` makes one",
            );
        }
        Some(id.into_inner())
    } else {
        check.warning(
            file,
            0..0,
            format!(
                "`[project]` has no `id`: hosts know this project by its name alone, \
                 so another project named `{name}` may deploy over its paths and services"
            ),
            format!(
                "add `id = \"{}\"` under `[project]`",
                crate::init::project_id()
            ),
        );
        None
    }
}

/// `[build]`, with its defaults.
fn build_settings(check: &mut Checker, raw: raw::Build) -> BuildSettings {
    BuildSettings {
        profile: raw
            .profile
            .map_or_else(|| "release".to_string(), Spanned::into_inner),
        features: features(check, raw.features),
        no_default_features: raw.no_default_features.unwrap_or(false),
        target: raw.target.map(Spanned::into_inner),
        command: build_command(check, raw.cargo),
    }
}

/// Every `[artifact.X]`, in the order of the file, and no two running the
/// same service.
fn resolve_artifacts(
    check: &mut Checker,
    workspace: &Workspace,
    project: &str,
    raw: BTreeMap<raw::Name, Spanned<raw::Artifact>>,
) -> Vec<Artifact> {
    let names: BTreeSet<String> = raw.keys().map(|k| k.get_ref().clone()).collect();
    let mut artifacts: Vec<Artifact> = Vec::new();
    for (artifact_name, artifact) in raw {
        check_name(check, &artifact_name, "artifact name");
        let span = artifact.span();
        let artifact = resolve_artifact(
            check,
            workspace,
            &names,
            project,
            artifact_name.get_ref(),
            artifact.into_inner(),
            span.clone(),
        );
        // A service name is one unit or program on a host: two artifacts
        // naming the same one would take it from each other.
        if let Some(service) = &artifact.service
            && let Some(other) = artifacts
                .iter()
                .find(|a| a.service.as_ref().is_some_and(|s| s.name == service.name))
        {
            check.error(
                span,
                format!(
                    "artifacts `{}` and `{}` both run the service `{}`",
                    other.name, artifact.name, service.name
                ),
                "give one of them another `name` in its `service` table",
            );
        }
        artifacts.push(artifact);
    }
    artifacts
}

/// Cargo features, as `--features` takes them: `NAME` or `PACKAGE/NAME`.
pub(super) fn features(check: &mut Checker, raw: Vec<Spanned<String>>) -> Vec<String> {
    let mut features: Vec<String> = Vec::new();
    for feature in raw {
        let text = feature.get_ref();
        let valid = !text.is_empty()
            && text.split('/').count() <= 2
            && text.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
            });
        if valid {
            features.push(feature.into_inner());
        } else {
            check.error(
                feature.span(),
                format!("`{}` is not a cargo feature", crate::diag::shown(text)),
                "a feature is `NAME` or `PACKAGE/NAME`",
            );
        }
    }
    features.sort();
    features.dedup();
    features
}

/// `[build] cargo`: the command that builds, in place of `cargo build`.
fn build_command(check: &mut Checker, raw: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    let default = || vec!["cargo".to_string(), "build".to_string()];
    let Some(raw) = raw else {
        return default();
    };
    let span = raw.span();
    let words: Vec<Spanned<String>> = raw.into_inner();
    if words.is_empty() {
        check.error(
            span,
            "`cargo` must name a command, such as `[\"cargo\", \"zigbuild\"]`",
            "empty",
        );
        return default();
    }
    for word in &words {
        if word.get_ref().is_empty() || word.get_ref().contains('\0') {
            check.error(word.span(), "a word of `cargo` must not be empty", "");
        }
    }
    words.into_iter().map(Spanned::into_inner).collect()
}

/// Sorts artifacts so that each comes after those in its `after`, and
/// reports cycles.
fn order_artifacts(check: &mut Checker, artifacts: Vec<Artifact>) -> Vec<Artifact> {
    let mut remaining: Vec<Artifact> = artifacts;
    let mut ordered: Vec<Artifact> = Vec::new();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|a| {
            a.after
                .iter()
                .all(|dep| ordered.iter().any(|o| &o.name == dep))
        });
        if let Some(i) = ready {
            ordered.push(remaining.remove(i));
        } else {
            let names: Vec<String> = remaining.iter().map(|a| format!("`{}`", a.name)).collect();
            let first = &remaining[0];
            check.error(
                first.span.clone(),
                format!("the `after` lists of {} form a cycle", names.join(", ")),
                "part of the cycle",
            );
            ordered.append(&mut remaining);
        }
    }
    ordered
}
