//! One `[artifact.X]` of `deploy.toml`: its roles, its path on the hosts,
//! how many releases it keeps, what it comes `after`, its transport, and
//! its binaries, each found in the workspace's packages. What goes into
//! its release directory besides the binaries is [`super::release`]'s;
//! its hooks, rollout and service are resolved by their own modules.

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::hooks::resolve_hooks;
use super::project::features;
use super::release::{Claims, resolve_files, resolve_shared, resolve_templates};
use super::rollout::resolve_rollout;
use super::service::resolve_service;
use super::{Checker, check_name, clean_components};
use crate::config::{Artifact, BinTarget, Transport, Workspace, raw};

const DEFAULT_KEEP: u32 = 5;

pub(super) fn resolve_artifact(
    check: &mut Checker,
    workspace: &Workspace,
    names: &BTreeSet<String>,
    project: &str,
    name: &str,
    raw: raw::Artifact,
    span: Range<usize>,
) -> Artifact {
    for role in &raw.roles {
        check_name(check, role, "role");
    }
    let roles_span = match (raw.roles.first(), raw.roles.last()) {
        (Some(first), Some(last)) => first.span().start..last.span().end,
        _ => span.clone(),
    };
    let path = artifact_path(check, name, &raw.path);
    let transport = resolve_transport(check, name, &raw);
    let keep = keep(check, raw.keep);
    let after = after(check, names, name, raw.after);

    // Every destination in the release directory, with the span that claims
    // it, to find two sources writing one path.
    let mut claims = Claims::new(name);
    let bins = resolve_bins(
        check,
        workspace,
        &mut claims,
        raw.package.as_ref(),
        &raw.features,
        raw.bins,
    );
    let files = resolve_files(check, workspace, &mut claims, raw.files);
    let templates = resolve_templates(check, workspace, &mut claims, raw.templates);
    let shared = resolve_shared(check, &claims, raw.shared);

    let (hooks, local_hooks) = resolve_hooks(check, raw.hooks);
    let rollout = resolve_rollout(check, raw.max_parallel.as_ref(), raw.rollout);
    let path_span = raw.path.span();
    let service = raw
        .service
        .map(|service| resolve_service(check, project, name, (&path, path_span), service));
    Artifact {
        name: name.to_string(),
        roles: raw.roles.into_iter().map(Spanned::into_inner).collect(),
        path,
        bins,
        files,
        templates,
        shared,
        transport,
        keep,
        after,
        rollout,
        hooks,
        local_hooks,
        service,
        span,
        roles_span,
    }
}

/// `path`: an absolute directory of plain components, without its
/// trailing `/`.
fn artifact_path(check: &mut Checker, name: &str, raw: &Spanned<String>) -> String {
    let path = raw.get_ref().trim_end_matches('/').to_string();
    if !raw.get_ref().starts_with('/') || path.is_empty() {
        check.error(
            raw.span(),
            format!("`path` of artifact `{name}` must be an absolute directory"),
            "",
        );
    } else if !clean_components(&path[1..]) {
        check.error(
            raw.span(),
            "`path` must not contain `.`, `..`, empty components or control characters",
            "",
        );
    }
    path
}

/// `keep`: at least the current release.
fn keep(check: &mut Checker, raw: Option<Spanned<i64>>) -> u32 {
    match raw {
        Some(keep) if *keep.get_ref() < 1 => {
            check.error(
                keep.span(),
                "`keep` must be at least 1",
                "the current release is always kept",
            );
            1
        }
        Some(keep) => u32::try_from(*keep.get_ref()).unwrap_or(u32::MAX),
        None => DEFAULT_KEEP,
    }
}

/// `after`: other artifacts of `deploy.toml` (`names`), never this one.
fn after(
    check: &mut Checker,
    names: &BTreeSet<String>,
    name: &str,
    raw: Vec<raw::Name>,
) -> Vec<String> {
    let mut after = Vec::new();
    for dep in raw {
        if !names.contains(dep.get_ref()) {
            let known = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            check.error_with_note(
                dep.span(),
                format!("unknown artifact `{}` in `after`", dep.get_ref()),
                "not an artifact of deploy.toml",
                format!("artifacts are: {known}"),
            );
        } else if dep.get_ref() == name {
            check.error(
                dep.span(),
                format!("artifact `{name}` lists itself in `after`"),
                "",
            );
        } else {
            after.push(dep.into_inner());
        }
    }
    after
}

/// `bins`, each built by the package that defines it (or by `package`),
/// with the artifact's `features`, and claimed at `bin/NAME`.
fn resolve_bins(
    check: &mut Checker,
    workspace: &Workspace,
    claims: &mut Claims<'_>,
    raw_package: Option<&Spanned<String>>,
    raw_features: &[Spanned<String>],
    raw_bins: Vec<raw::Name>,
) -> Vec<BinTarget> {
    let name = claims.artifact();
    let own_features = features(check, raw_features.to_vec());
    if raw_bins.is_empty() {
        // `package` and `features` say how `bins` are built.
        for (key, span) in [
            ("package", raw_package.map(Spanned::span)),
            ("features", raw_features.first().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                check.error(
                    span,
                    format!("`{key}` of artifact `{name}` applies to its `bins`, and it has none"),
                    "",
                );
            }
        }
    }
    let package = raw_package.and_then(|package| package_with_bins(check, workspace, package));
    let package_given = raw_package.is_some();
    let mut bins = Vec::new();
    for bin in raw_bins {
        if let Some(package) = bin_package(check, workspace, &bin, package.as_ref(), package_given)
        {
            claims.claim(check, &format!("bin/{}", bin.get_ref()), bin.span());
            bins.push(BinTarget {
                name: bin.get_ref().clone(),
                package,
                features: own_features.clone(),
            });
        }
    }
    bins
}

/// `package`, if it is a package of the workspace with binaries.
fn package_with_bins(
    check: &mut Checker,
    workspace: &Workspace,
    package: &Spanned<String>,
) -> Option<String> {
    let known: BTreeSet<&String> = workspace.bins.values().flatten().collect();
    if known.contains(package.get_ref()) {
        Some(package.get_ref().clone())
    } else {
        check.error_with_note(
            package.span(),
            format!(
                "no package `{}` with binaries in the workspace",
                crate::diag::shown(package.get_ref())
            ),
            "",
            format!(
                "packages with binaries are: {}",
                known
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        None
    }
}

/// The package that builds the binary `bin`: `package` (the artifact's
/// `package`, if it is one), or else the one package that defines it.
/// `package_given` says whether a `package` was written, which is
/// reported already when it is not one.
fn bin_package(
    check: &mut Checker,
    workspace: &Workspace,
    bin: &raw::Name,
    package: Option<&String>,
    package_given: bool,
) -> Option<String> {
    let packages = workspace.bins.get(bin.get_ref()).map(Vec::as_slice);
    match (packages, package, package_given) {
        (Some(packages), Some(package), _) if packages.contains(package) => Some(package.clone()),
        (Some(packages), Some(package), _) => {
            check.error(
                bin.span(),
                format!(
                    "package `{package}` has no binary `{}`: {} has",
                    bin.get_ref(),
                    packages
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "",
            );
            None
        }
        // The package was named, and is not one: said above.
        (Some(_), None, true) => None,
        (Some([package]), None, false) => Some(package.clone()),
        (Some(packages), None, false) => {
            check.error_with_note(
                bin.span(),
                format!(
                    "binary `{}` is defined by several packages: {}",
                    bin.get_ref(),
                    packages.join(", ")
                ),
                "",
                format!("name the one to build: `package = \"{}\"`", packages[0]),
            );
            None
        }
        (None, _, _) => {
            let known = workspace
                .bins
                .keys()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            check.error_with_note(
                bin.span(),
                format!("no binary target `{}` in the workspace", bin.get_ref()),
                "not a `[[bin]]` of any workspace member",
                format!("binaries are: {known}"),
            );
            None
        }
    }
}

/// `transport` and `subdir`. A git artifact deploys a tree of the
/// repository: it has no binaries of its own (a `build` hook can make them
/// on the host).
fn resolve_transport(check: &mut Checker, name: &str, raw: &raw::Artifact) -> Transport {
    let git = raw
        .transport
        .as_ref()
        .is_some_and(|t| *t.get_ref() == raw::Transport::Git);
    let subdir = match &raw.subdir {
        Some(subdir) if !git => {
            check.error(
                subdir.span(),
                format!("`subdir` needs `transport = \"git\"` (artifact `{name}`)"),
                "only git artifacts deploy a part of the repository",
            );
            String::new()
        }
        Some(subdir) => {
            let text = subdir.get_ref().trim_end_matches('/');
            if text.starts_with('/') || !clean_components(text) {
                check.error(
                    subdir.span(),
                    "`subdir` must be a relative directory of the workspace",
                    "no `.`, `..`, empty components or control characters",
                );
            }
            text.to_string()
        }
        None => String::new(),
    };
    if git && let Some(bin) = raw.bins.first() {
        check.error_with_note(
            bin.span(),
            format!("git artifact `{name}` cannot have `bins`"),
            "a git artifact deploys the repository's tree",
            "put the binaries in an rsync artifact, or build them on the host with `hooks.build`"
                .to_string(),
        );
    }
    if git {
        Transport::Git { subdir }
    } else {
        Transport::Rsync
    }
}
