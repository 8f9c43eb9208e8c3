//! From raw files to the resolved model, with every semantic check.
//!
//! All problems found are collected and reported together, each at its
//! span. The only IO here is reading the configuration files, the
//! templates and listing source trees (which is part of checking them).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw;
use super::{
    Amount, Artifact, BinTarget, BuildSettings, Environment, FileSource, Hook, Hooks, Host,
    Project, ProjectHooks, Rollout, Service, Template, Transport, Workspace,
};
use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::error::{Error, Result};

const DEFAULT_KEEP: u32 = 5;
const DEFAULT_JOBS: u32 = 16;
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `build`, `pre_activate` and `activate` may run by default: a
/// hook that hangs must not hold a deploy, and its lock, forever.
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long ssh's master connections outlive a run unless told (as
/// Ansible's `ControlPersist`).
const DEFAULT_SSH_PERSIST: Duration = Duration::from_secs(60);

/// Collects diagnostics for one file.
struct Checker {
    file: Arc<SourceFile>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker {
    fn new(file: Arc<SourceFile>) -> Checker {
        Checker {
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, label: impl Into<String>) {
        let diag = Diagnostic::error(message).at(&self.file, span, label);
        self.errors.push(diag);
    }

    fn error_with_note(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        label: &str,
        note: String,
    ) {
        let diag = Diagnostic::error(message)
            .at(&self.file, span, label)
            .note(note);
        self.errors.push(diag);
    }

    /// A warning may point into another file (deploy.toml, while checking
    /// an environment).
    fn warning(
        &mut self,
        file: &Arc<SourceFile>,
        span: Range<usize>,
        message: String,
        label: String,
    ) {
        let diag = Diagnostic::warning(message).at(file, span, label);
        self.warnings.push(diag);
    }

    fn finish(self) -> Result<Vec<Diagnostic>> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(Error::Config(Diagnostics(self.errors)))
        }
    }
}

/// Reads a configuration file. A file that cannot be read, or is not UTF-8,
/// is a configuration error like any other: nothing has been touched yet.
fn read_source(path: &Path, display: String) -> Result<Arc<SourceFile>> {
    let bytes = fs::read(path).map_err(|err| {
        Error::Config(Diagnostics(vec![Diagnostic::error(format!(
            "cannot read `{display}`: {err}"
        ))]))
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Arc::new(SourceFile { display, text })),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(err.as_bytes()).into_owned();
            let file = Arc::new(SourceFile {
                display: display.clone(),
                text,
            });
            let diag = Diagnostic::error(format!("`{display}` is not UTF-8 text")).at(
                &file,
                at..at + 1,
                "invalid UTF-8",
            );
            Err(Error::Config(Diagnostics(vec![diag])))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &Arc<SourceFile>) -> Result<T> {
    toml::from_str(&file.text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let message = plain_types(err.message().trim_end());
        Error::Config(Diagnostics(vec![
            Diagnostic::error(message).at(file, span, ""),
        ]))
    })
}

/// serde's names of types, as a TOML file calls them.
fn plain_types(message: &str) -> String {
    [
        ("expected i64", "expected an integer"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
    ]
    .iter()
    .fold(message.to_string(), |message, (serde, toml)| {
        message.replace(serde, toml)
    })
}

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

    let name = match raw.project.name {
        Some(name) => {
            check_name(&mut check, &name, "project name");
            name.into_inner()
        }
        None => workspace.root_package.clone().unwrap_or_else(|| {
            workspace
                .root
                .file_name()
                .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned())
        }),
    };
    let id = if let Some(id) = raw.project.id {
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
        {
            check.warning(
                &Arc::clone(&file),
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
        }
        None
    };
    let target_span = raw.build.target.as_ref().map(Spanned::span);
    let build = BuildSettings {
        profile: raw
            .build
            .profile
            .map_or_else(|| "release".to_string(), Spanned::into_inner),
        features: features(&mut check, raw.build.features),
        no_default_features: raw.build.no_default_features.unwrap_or(false),
        target: raw.build.target.map(Spanned::into_inner),
        command: build_command(&mut check, raw.build.cargo),
    };

    let names: BTreeSet<String> = raw.artifact.keys().map(|k| k.get_ref().clone()).collect();
    let mut artifacts: Vec<Artifact> = Vec::new();
    for (artifact_name, artifact) in raw.artifact {
        check_name(&mut check, &artifact_name, "artifact name");
        let span = artifact.span();
        let artifact = resolve_artifact(
            &mut check,
            &workspace,
            &names,
            &name,
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

/// Cargo features, as `--features` takes them: `NAME` or `PACKAGE/NAME`.
fn features(check: &mut Checker, raw: Vec<Spanned<String>>) -> Vec<String> {
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

fn check_name(check: &mut Checker, name: &Spanned<String>, what: &str) {
    // `.` and `..` would name a directory that is not the host's (or the
    // artifact's) own wherever a name becomes a path.
    let ok = !name.get_ref().is_empty()
        && !name.get_ref().starts_with('-')
        && !name.get_ref().bytes().all(|b| b == b'.')
        && name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        check.error(
            name.span(),
            format!("invalid {what} `{}`", crate::diag::shown(name.get_ref())),
            "use letters, digits, `-`, `_` and `.`, not starting with `-`, and not dots alone",
        );
    }
}

fn resolve_artifact(
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
    let path = raw.path.get_ref().trim_end_matches('/').to_string();
    if !raw.path.get_ref().starts_with('/') || path.is_empty() {
        check.error(
            raw.path.span(),
            format!("`path` of artifact `{name}` must be an absolute directory"),
            "",
        );
    } else if !clean_components(&path[1..]) {
        check.error(
            raw.path.span(),
            "`path` must not contain `.`, `..`, empty components or control characters",
            "",
        );
    }

    let transport = resolve_transport(check, name, &raw);
    let keep = match raw.keep {
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
    };
    let mut after = Vec::new();
    for dep in raw.after {
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

    // Every destination in the release directory, with the span that claims
    // it, to find two sources writing one path.
    let mut claimed = Claims::default();
    let mut claim = |check: &mut Checker, dst: &str, span: Range<usize>| {
        let conflict = match claimed.conflict(dst) {
            Some(Conflict::Twice(first)) => Some((
                format!("`{dst}` is written twice in artifact `{name}`"),
                first,
            )),
            Some(Conflict::FileAbove(parent, first)) => Some((
                format!("`{parent}` is both a file and a directory in artifact `{name}`"),
                first,
            )),
            Some(Conflict::FilesBelow(child, first)) => Some((
                format!(
                    "`{dst}` is both a file and the directory of `{child}` in artifact `{name}`"
                ),
                first,
            )),
            None => None,
        };
        if let Some((message, first)) = conflict {
            let (line, _) = crate::diag::line_column(&check.file.text, first.start);
            check.error(span, message, format!("conflicts with line {line}"));
        } else {
            claimed.insert(dst, span);
        }
    };

    let own_features = features(check, raw.features.clone());
    if raw.bins.is_empty() {
        // `package` and `features` say how `bins` are built.
        for (key, span) in [
            ("package", raw.package.as_ref().map(Spanned::span)),
            ("features", raw.features.first().map(Spanned::span)),
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
    let package = raw.package.as_ref().and_then(|package| {
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
    });
    let mut bins = Vec::new();
    for bin in raw.bins {
        let packages = workspace.bins.get(bin.get_ref()).map(Vec::as_slice);
        let chosen = match (packages, &package, &raw.package) {
            (Some(packages), Some(package), _) if packages.contains(package) => {
                Some(package.clone())
            }
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
            (Some(_), None, Some(_)) => None,
            (Some([package]), None, None) => Some(package.clone()),
            (Some(packages), None, None) => {
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
        };
        if let Some(package) = chosen {
            claim(check, &format!("bin/{}", bin.get_ref()), bin.span());
            bins.push(BinTarget {
                name: bin.get_ref().clone(),
                package,
                features: own_features.clone(),
            });
        }
    }

    let mut files = Vec::new();
    for entry in raw.files {
        let entry_span = entry.span();
        let entry = entry.into_inner();
        let mode = entry.mode.as_ref().and_then(|m| parse_mode(check, m));
        let Some(dst) = check_dst(check, &entry.dst) else {
            continue;
        };
        let Some(src) = check_src(check, workspace, &entry.src) else {
            continue;
        };
        for (src, dst) in list_sources(check, workspace, &src, &dst, entry.src.span()) {
            claim(check, &dst, entry_span.clone());
            files.push(FileSource { src, dst, mode });
        }
    }

    let mut templates = Vec::new();
    let templates_dir = workspace.root.join("templates");
    for entry in raw.templates {
        let entry_span = entry.span();
        let entry = entry.into_inner();
        let mode = entry.mode.as_ref().and_then(|m| parse_mode(check, m));
        let Some(dst) = check_dst(check, &entry.dst) else {
            continue;
        };
        let src = entry.src.get_ref();
        if src.is_empty() || src.starts_with('/') || !clean_components(src) {
            check.error(
                entry.src.span(),
                "template `src` must be a relative path under `templates/`",
                "",
            );
            continue;
        }
        let path = templates_dir.join(src);
        // A template, the templates directory, or one on the way, that is
        // a link must resolve inside the workspace, as under `files`; and
        // it must be a file, which a FIFO or a device is not.
        if let Some(link) = crate::files::link_leaving(&workspace.root, &path) {
            check.error(
                entry.src.span(),
                format!(
                    "`{}` is a link that points outside the workspace, which a template \
                     is not read through",
                    workspace.display(&link)
                ),
                "copy what it points to into the workspace",
            );
            continue;
        }
        if let Ok(meta) = fs::metadata(&path)
            && !meta.is_file()
        {
            let kind = if meta.is_dir() {
                "a directory"
            } else {
                special_kind(meta.file_type())
            };
            check.error(
                entry.src.span(),
                format!("template `templates/{src}` is {kind}, not a file"),
                "",
            );
            continue;
        }
        let text = match fs::read(&path) {
            Ok(bytes) => {
                let Ok(text) = String::from_utf8(bytes) else {
                    let message = format!("template `templates/{src}` is not UTF-8 text");
                    check.error(entry.src.span(), message, "");
                    continue;
                };
                text
            }
            Err(err) => {
                check.error(
                    entry.src.span(),
                    format!("cannot read template `templates/{src}`: {err}"),
                    "no such template",
                );
                continue;
            }
        };
        claim(check, &dst, entry_span.clone());
        let source = Arc::new(SourceFile {
            display: format!("templates/{src}"),
            text,
        });
        templates.push(Template {
            name: src.clone(),
            dst,
            mode,
            source,
        });
    }

    let mut shared = Vec::new();
    for dir in raw.shared {
        let Some(dst) = check_dst(check, &dir) else {
            continue;
        };
        let inside = claimed.at_or_below(&dst);
        if let Some(inside) = inside {
            check.error(
                dir.span(),
                format!("shared directory `{dst}` overlaps `{inside}` of the release"),
                "",
            );
        }
        shared.push(dst);
    }

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

/// How long a service may take to be ready, and to stop, unless told.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// `[artifact.X.service]`. What is rendered per host (`exec`,
/// `environment`, `listen`, `ready`) is checked again once rendered; the
/// rest is checked here.
fn resolve_service(
    check: &mut Checker,
    project: &str,
    artifact: &str,
    (path, path_span): (&str, Range<usize>),
    raw: Spanned<raw::Service>,
) -> Service {
    let span = raw.span();
    let raw = raw.into_inner();
    let manager = *raw.manager.get_ref();
    // The name becomes a unit's or a program's, and a file name in
    // /etc: letters, digits and a few marks only.
    let plain = |text: &str| {
        !text.is_empty()
            && !text.starts_with(['-', '.'])
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let name = match raw.name {
        Some(name) => {
            if !plain(name.get_ref()) || name.get_ref().len() > 200 {
                check.error(
                    name.span(),
                    format!(
                        "invalid service name `{}`",
                        crate::diag::shown(name.get_ref())
                    ),
                    "use letters, digits, `-`, `_` and `.`, not starting with `-` or `.`",
                );
            }
            name.into_inner()
        }
        None => format!("{project}-{artifact}"),
    };
    // The path is written into the unit or program definition, whose
    // quoting rules differ from sh's, and read by root's service manager:
    // only plain paths go there (no `,`, which separates supervisord's
    // and sudoers' lists, no `:`, no `%`, no space).
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.+@".contains(&b))
    {
        check.error(
            path_span,
            format!("artifact `{artifact}` runs a service, so its `path` must be plain"),
            "a service's path may hold letters, digits and `/-_.+@` only",
        );
    }
    let text = |check: &mut Checker, key: &str, text: Spanned<String>| -> Option<Hook> {
        if text.get_ref().contains('\0') {
            check.error(
                text.span(),
                format!("`{key}` cannot contain NUL characters"),
                "",
            );
            return None;
        }
        Some(Hook {
            span: text.span(),
            text: text.into_inner(),
        })
    };
    let exec = if raw.exec.get_ref().trim().is_empty() {
        check.error(
            raw.exec.span(),
            "`exec` is empty",
            "give the command the service runs, e.g. `bin/server --config etc/server.toml`",
        );
        None
    } else {
        text(check, "exec", raw.exec)
    };
    let user = match raw.user {
        Some(user) if manager == raw::Manager::SystemdUser => {
            check.error(
                user.span(),
                "`user` does not apply to `manager = \"systemd-user\"`",
                "a user's own systemd runs its services as that user",
            );
            None
        }
        Some(user) => {
            if !plain(user.get_ref()) {
                check.error(
                    user.span(),
                    format!("invalid user `{}`", crate::diag::shown(user.get_ref())),
                    "an account name: letters, digits, `-`, `_` and `.`",
                );
            }
            Some(user.into_inner())
        }
        None => None,
    };
    let mut environment = Vec::new();
    for (key, value) in raw.environment {
        let valid =
            key.get_ref().bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
        if !valid || key.get_ref().is_empty() {
            check.error(
                key.span(),
                format!(
                    "invalid environment variable name `{}`",
                    crate::diag::shown(key.get_ref())
                ),
                "letters, digits and `_`, not starting with a digit",
            );
            continue;
        }
        if key.get_ref().starts_with("LANDFALL_") {
            check.error(
                key.span(),
                format!("`{}` is set by landfall", key.get_ref()),
                "`LANDFALL_*` variables are landfall's own",
            );
            continue;
        }
        let span = value.span();
        let value = match value.into_inner() {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                check.error(
                    span,
                    format!(
                        "`{}` must be a string, a number or a boolean",
                        key.get_ref()
                    ),
                    "",
                );
                continue;
            }
        };
        if let Some(hook) = text(check, "environment", Spanned::new(span, value)) {
            environment.push((key.into_inner(), hook));
        }
    }
    let mut listen = Vec::new();
    for address in raw.listen {
        if manager != raw::Manager::Systemd && manager != raw::Manager::SystemdUser {
            check.error_with_note(
                address.span(),
                format!(
                    "`listen` needs systemd's socket activation; `{}` cannot hold sockets across restarts",
                    manager.as_str()
                ),
                "",
                "with supervisord, restart hosts a few at a time (`rollout.batch`) instead".into(),
            );
            break;
        }
        listen.extend(text(check, "listen", address));
    }
    let ready = raw.ready.and_then(|ready| {
        let known = ["http://", "https://", "tcp://", "exec:"];
        if known.iter().any(|p| ready.get_ref().starts_with(p)) {
            text(check, "ready", ready)
        } else {
            check.error(
                ready.span(),
                "`ready` must start with `http://`, `https://`, `tcp://` or `exec:`",
                "",
            );
            None
        }
    });
    let limit = |check: &mut Checker, key: &str, text: Option<Spanned<String>>, default| {
        text.map_or(default, |text| parse_duration(check, key, &text))
    };
    Service {
        manager,
        name,
        exec: exec.unwrap_or(Hook {
            span,
            text: String::new(),
        }),
        user,
        environment,
        listen,
        ready,
        ready_timeout: limit(
            check,
            "ready_timeout",
            raw.ready_timeout,
            DEFAULT_READY_TIMEOUT,
        ),
        stop_timeout: limit(
            check,
            "stop_timeout",
            raw.stop_timeout,
            DEFAULT_STOP_TIMEOUT,
        ),
        reload: raw.reload.unwrap_or(false),
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

/// `[artifact.X.rollout]`, with `max_parallel`, its older name for
/// `batch`.
fn resolve_rollout(
    check: &mut Checker,
    max_parallel: Option<&Spanned<u32>>,
    raw: Option<Spanned<raw::Rollout>>,
) -> Rollout {
    let mut rollout = Rollout::default();
    if let Some(max) = max_parallel
        && *max.get_ref() > 0
    {
        rollout.batch = Amount::Count(*max.get_ref());
    }
    let Some(raw) = raw else {
        return rollout;
    };
    let raw = raw.into_inner();
    if let Some(canary) = raw.canary {
        rollout.canary = canary.into_inner();
    }
    if let Some(batch) = raw.batch {
        if let Some(max) = max_parallel {
            check.error(
                max.span(),
                "`max_parallel` and `rollout.batch` say the same thing",
                "`max_parallel` is the older name of `rollout.batch`: keep only `batch`",
            );
        }
        match amount(check, "batch", &batch) {
            Some(Amount::Count(0)) => check.error(
                batch.span(),
                "`batch` must be at least 1 host (or a share, such as \"25%\")",
                "",
            ),
            Some(b) => rollout.batch = b,
            None => {}
        }
    }
    if let Some(pause) = raw.pause {
        rollout.pause = match pause.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() => d.unsigned_abs(),
            _ => {
                check.error(
                    pause.span(),
                    format!("invalid duration `{}`", pause.get_ref()),
                    "write e.g. `30s`, `2m` or `1m 30s`",
                );
                Duration::ZERO
            }
        };
    }
    if let Some(max_fail) = raw.max_fail
        && let Some(m) = amount(check, "max_fail", &max_fail)
    {
        rollout.max_fail = m;
    }
    rollout
}

/// A number of hosts (`2`) or a share of them (`"25%"`).
fn amount(check: &mut Checker, key: &str, raw: &Spanned<raw::Amount>) -> Option<Amount> {
    let help = "write a number of hosts, such as 2, or a share of them, such as \"25%\"";
    match raw.get_ref() {
        raw::Amount::Count(n) => {
            if let Ok(n) = u32::try_from(*n) {
                return Some(Amount::Count(n));
            }
            check.error(
                raw.span(),
                format!("`{key}` must be a number of hosts, not {n}"),
                help,
            );
            None
        }
        raw::Amount::Text(text) => {
            let percent = text
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u32>().ok());
            match percent {
                Some(p @ 1..=100) => Some(Amount::Percent(p)),
                Some(0) if key == "max_fail" => Some(Amount::Count(0)),
                _ => {
                    check.error(
                        raw.span(),
                        format!("`{key}` must be a number of hosts or a share from 1% to 100%, not `{text}`"),
                        help,
                    );
                    None
                }
            }
        }
    }
}

/// The top-level `[hooks]`.
fn resolve_project_hooks(check: &mut Checker, raw: raw::ProjectHooks) -> ProjectHooks {
    let command = |check: &mut Checker, text: Option<Spanned<String>>| {
        let text = text?;
        if text.get_ref().contains('\0') {
            check.error(text.span(), "hooks cannot contain NUL characters", "");
            return None;
        }
        if text.get_ref().trim().is_empty() {
            check.error(
                text.span(),
                "an empty hook",
                "remove the key, or give it a command",
            );
            return None;
        }
        Some(text.into_inner())
    };
    ProjectHooks {
        before: command(check, raw.before),
        after: command(check, raw.after),
        timeout: raw.timeout.map_or(DEFAULT_HOOK_TIMEOUT, |t| {
            parse_duration(check, "timeout", &t)
        }),
    }
}

fn resolve_hooks(check: &mut Checker, raw: raw::Hooks) -> (Hooks, Hooks) {
    let hook = |check: &mut Checker, text: Option<Spanned<String>>| {
        let text = text?;
        if text.get_ref().contains('\0') {
            check.error(text.span(), "hooks cannot contain NUL characters", "");
            return None;
        }
        Some(Hook {
            span: text.span(),
            text: text.into_inner(),
        })
    };
    let timeout = |check: &mut Checker, key: &str, text: Option<Spanned<String>>| {
        text.map(|text| parse_duration(check, key, &text))
    };
    let hooks = Hooks {
        build: hook(check, raw.build),
        pre_activate: hook(check, raw.pre_activate),
        activate: hook(check, raw.activate),
        health: hook(check, raw.health),
        health_timeout: timeout(check, "health_timeout", raw.health_timeout)
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        once: hook(check, raw.once),
        timeout: timeout(check, "timeout", raw.timeout).unwrap_or(DEFAULT_HOOK_TIMEOUT),
    };
    let mut local = hooks.clone();
    if let Some(over) = raw.local {
        let over = over.into_inner();
        if let Some(h) = hook(check, over.build) {
            local.build = Some(h);
        }
        if let Some(h) = hook(check, over.pre_activate) {
            local.pre_activate = Some(h);
        }
        if let Some(h) = hook(check, over.activate) {
            local.activate = Some(h);
        }
        if let Some(h) = hook(check, over.health) {
            local.health = Some(h);
        }
        if let Some(h) = hook(check, over.once) {
            local.once = Some(h);
        }
        if let Some(t) = timeout(check, "health_timeout", over.health_timeout) {
            local.health_timeout = t;
        }
        if let Some(t) = timeout(check, "timeout", over.timeout) {
            local.timeout = t;
        }
    }
    (hooks, local)
}

fn parse_duration(check: &mut Checker, key: &str, text: &Spanned<String>) -> Duration {
    match text.get_ref().parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_positive() => d.unsigned_abs(),
        Ok(_) => {
            check.error(text.span(), format!("`{key}` must be positive"), "");
            DEFAULT_HEALTH_TIMEOUT
        }
        Err(_) => {
            check.error(
                text.span(),
                format!("invalid duration `{}`", text.get_ref()),
                "write e.g. `30s`, `2m` or `1m 30s`",
            );
            DEFAULT_HEALTH_TIMEOUT
        }
    }
}

fn parse_mode(check: &mut Checker, mode: &Spanned<String>) -> Option<u32> {
    let text = mode.get_ref();
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(value) if (3..=4).contains(&digits.len()) && value <= 0o7777 => Some(value),
        _ => {
            check.error(
                mode.span(),
                format!("invalid mode `{text}`"),
                "write an octal mode such as `0644` or `0640`",
            );
            None
        }
    }
}

/// True if a relative path has only normal components, with no control
/// characters (the manifest is line-based, and paths cross shells).
fn clean_components(path: &str) -> bool {
    !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn check_dst(check: &mut Checker, dst: &Spanned<String>) -> Option<String> {
    let text = dst.get_ref().trim_end_matches('/');
    if dst.get_ref().starts_with('/') {
        check.error(
            dst.span(),
            format!("`{}` is absolute", dst.get_ref()),
            "destinations are relative to the release directory",
        );
        None
    } else if text.split('/').any(|c| c == "..") {
        check.error(
            dst.span(),
            format!("`{}` escapes the release directory", dst.get_ref()),
            "`..` is not allowed here",
        );
        None
    } else if text.is_empty() || !clean_components(text) {
        check.error(
            dst.span(),
            format!(
                "invalid destination `{}`",
                crate::diag::shown(dst.get_ref())
            ),
            "use a relative path without `.`, `..` or control characters",
        );
        None
    } else if crate::assemble::reserved(text)
        || text
            .split('/')
            .next()
            .is_some_and(|top| top == crate::service::SERVICE_DIR)
    {
        check.error(
            dst.span(),
            format!("`{text}` is landfall's own in every release"),
            "choose another destination",
        );
        None
    } else {
        Some(text.to_string())
    }
}

fn check_src(check: &mut Checker, workspace: &Workspace, src: &Spanned<String>) -> Option<PathBuf> {
    let rel = Path::new(src.get_ref());
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        check.error(
            src.span(),
            format!("`{}` is outside the workspace", src.get_ref()),
            "sources are workspace-relative",
        );
        return None;
    }
    let path = workspace.root.join(rel);
    if fs::symlink_metadata(&path).is_err() {
        check.error(
            src.span(),
            format!("no such file or directory `{}`", src.get_ref()),
            "",
        );
        return None;
    }
    Some(path)
}

/// The paths of a release claimed so far, each with the span that claims
/// it, and each directory above them with the first of its paths (by
/// name): a claim is looked up, not compared with every other.
#[derive(Default)]
struct Claims {
    paths: HashMap<String, Range<usize>>,
    dirs: HashMap<String, String>,
}

/// Why a path cannot be claimed, with the span of the claim it conflicts
/// with.
enum Conflict<'c> {
    /// It is claimed already.
    Twice(Range<usize>),
    /// A directory above it is claimed as a file.
    FileAbove(&'c str, Range<usize>),
    /// It is a directory of claimed paths, the first of them this one.
    FilesBelow(&'c str, Range<usize>),
}

impl Claims {
    fn conflict(&self, path: &str) -> Option<Conflict<'_>> {
        if let Some(first) = self.paths.get(path) {
            return Some(Conflict::Twice(first.clone()));
        }
        let above = path
            .match_indices('/')
            .find_map(|(i, _)| self.paths.get_key_value(&path[..i]));
        if let Some((dir, first)) = above {
            return Some(Conflict::FileAbove(dir, first.clone()));
        }
        let below = self.dirs.get(path)?;
        Some(Conflict::FilesBelow(below, self.paths[below].clone()))
    }

    fn insert(&mut self, path: &str, span: Range<usize>) {
        for (i, _) in path.match_indices('/') {
            match self.dirs.get_mut(&path[..i]) {
                Some(first) if path < first.as_str() => *first = path.to_string(),
                Some(_) => {}
                None => {
                    self.dirs.insert(path[..i].to_string(), path.to_string());
                }
            }
        }
        self.paths.insert(path.to_string(), span);
    }

    /// `path` if it is claimed, or else the first claimed path below it.
    fn at_or_below(&self, path: &str) -> Option<&str> {
        match self.paths.get_key_value(path) {
            Some((path, _)) => Some(path),
            None => self.dirs.get(path).map(String::as_str),
        }
    }
}

/// Lists the files under a source (a file or a directory, hidden files
/// included), sorted, with their destinations.
fn list_sources(
    check: &mut Checker,
    workspace: &Workspace,
    src: &Path,
    dst: &str,
    span: Range<usize>,
) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let root = fs::canonicalize(&workspace.root).unwrap_or_else(|_| workspace.root.clone());
    // A symlink (to a file or a directory) must resolve inside the
    // workspace; one that escapes is reported and not followed.
    let mut escaping = Vec::new();
    // Sorted by name: the paths of one directory differ only there, and
    // comparing them whole spares taking each name apart.
    let walker = walkdir::WalkDir::new(src)
        .follow_links(true)
        .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
        .into_iter();
    let target_dir = fs::canonicalize(&workspace.target_dir).ok();
    let walker = walker.filter_entry(|entry| {
        // A repository's own data and the build's output are never a
        // release's files, even under `src = "."`.
        if entry.depth() > 0
            && (entry.file_name() == ".git"
                || target_dir.as_deref().is_some_and(|t| entry.path() == t)
                || (entry.depth() == 1
                    && src == workspace.root.as_path()
                    && entry.file_name() == "target"))
        {
            return false;
        }
        let inside = !entry.path_is_symlink()
            || fs::canonicalize(entry.path()).is_ok_and(|target| target.starts_with(&root));
        if !inside {
            escaping.push(entry.path().to_path_buf());
        }
        inside
    });
    let mut entries = Vec::new();
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) if !entry.file_type().is_file() => {
                let kind = special_kind(entry.file_type());
                check.error(
                    span.clone(),
                    format!(
                        "`{}` is {kind}: only files, directories and links are deployed",
                        workspace.display(entry.path())
                    ),
                    "",
                );
            }
            Ok(entry) => entries.push(entry.into_path()),
            Err(err) => {
                check.error(
                    span.clone(),
                    format!("cannot read `{}`: {err}", workspace.display(src)),
                    "",
                );
            }
        }
    }
    for path in escaping {
        check.error(
            span.clone(),
            format!(
                "symlink `{}` points outside the workspace",
                workspace.display(&path)
            ),
            "copy what it points to into the workspace",
        );
    }
    for path in entries {
        let path = path.as_path();
        let rel = path.strip_prefix(src).unwrap_or(Path::new(""));
        let Some(rel) = rel.to_str() else {
            check.error(
                span.clone(),
                format!("file name `{}` is not UTF-8", workspace.display(path)),
                "",
            );
            continue;
        };
        let dst = if rel.is_empty() {
            dst.to_string()
        } else {
            format!("{dst}/{rel}")
        };
        if !clean_components(&dst) {
            check.error(
                span.clone(),
                format!(
                    "file name `{}` has control characters",
                    crate::diag::shown(&dst)
                ),
                "",
            );
            continue;
        }
        out.push((path.to_path_buf(), dst));
    }
    out
}

/// What a file that is neither a regular file nor a directory is, as a
/// message says it.
fn special_kind(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
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

/// Reads `environments/NAME.toml` and resolves it against the project.
pub fn load_environment(project: &Project, name: &str) -> Result<Environment> {
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let path = project.environments_dir().join(format!("{name}.toml"));
    if !valid || !path.is_file() {
        let known = project.environment_names();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(Error::Usage(format!(
            "unknown environment `{name}`: no `environments/{name}.toml` (environments: {known})"
        )));
    }
    if let Some(link) = crate::files::link_leaving(&project.workspace.root, &path) {
        return Err(Error::Usage(format!(
            "`{}` is a link that points outside the workspace, which an environment is not \
             read through",
            project.workspace.display(&link)
        )));
    }
    let file = read_source(&path, format!("environments/{name}.toml"))?;
    let raw: raw::EnvironmentFile = parse(&file)?;
    let mut check = Checker::new(Arc::clone(&file));

    let section = raw.environment;
    let jobs = match section.jobs {
        Some(jobs) if *jobs.get_ref() == 0 => {
            check.error(jobs.span(), "`jobs` must be at least 1", "");
            1
        }
        Some(jobs) => *jobs.get_ref(),
        None => DEFAULT_JOBS,
    };
    // The user reaches ssh's command line and its `%r` expansions (in a
    // `ProxyCommand`, say): a user name, nothing a shell would read.
    if let Some(user) = &section.user {
        check_name(&mut check, user, "user");
    }
    let ssh_config = section
        .ssh_config
        .map(|p| project.environments_dir().join(p.get_ref()));
    let ssh_persist = match &section.ssh_persist {
        None => DEFAULT_SSH_PERSIST,
        Some(text) => match text.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() => d.unsigned_abs(),
            _ => {
                check.error(
                    text.span(),
                    format!("invalid duration `{}`", text.get_ref()),
                    "write e.g. `60s` or `10m`; `0s` closes the connections with each run",
                );
                DEFAULT_SSH_PERSIST
            }
        },
    };
    let store = section.store.as_ref().and_then(|text| {
        match crate::store::StoreUrl::parse(text.get_ref()) {
            Ok(url) => Some(url),
            Err(why) => {
                check.error(
                    text.span(),
                    format!("invalid store `{}`", crate::diag::shown(text.get_ref())),
                    why,
                );
                None
            }
        }
    });

    let mut hosts = Vec::new();
    for (host_name, host) in raw.hosts {
        check_name(&mut check, &host_name, "host name");
        let span = host.span();
        let host = host.into_inner();
        for role in &host.roles {
            check_name(&mut check, role, "role");
        }
        let address = match host.address {
            Some(address) => {
                let ok = !address.get_ref().is_empty()
                    && !address.get_ref().starts_with('-')
                    && address
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:[]@".contains(&b));
                if !ok {
                    check.error(
                        address.span(),
                        format!(
                            "invalid address `{}`",
                            crate::diag::shown(address.get_ref())
                        ),
                        "a host name or IP address",
                    );
                }
                address.into_inner()
            }
            None => host_name.get_ref().clone(),
        };
        hosts.push(Host {
            name: host_name.into_inner(),
            address,
            roles: host.roles.into_iter().map(Spanned::into_inner).collect(),
            vars: host.vars,
            span,
        });
    }

    // An environment that no artifact goes to is a mistake (a role's name
    // mistyped, most likely), not a deploy with nothing to do.
    let reached = project
        .artifacts
        .iter()
        .any(|a| hosts.iter().any(|h| h.receives(a)));
    if hosts.is_empty() && !project.artifacts.is_empty() {
        check.error(
            0..0,
            format!("environment `{name}` has no hosts: a deploy would reach no host at all"),
            "add a `[hosts.NAME]` table with the roles of the artifacts it gets",
        );
    } else if !reached && !project.artifacts.is_empty() {
        let known: BTreeSet<&str> = hosts
            .iter()
            .flat_map(|h| h.roles.iter().map(String::as_str))
            .collect();
        let known = if known.is_empty() {
            format!("no host of `{name}` has a role")
        } else {
            format!(
                "the roles of `{name}`'s hosts are {}",
                known
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for artifact in &project.artifacts {
            let diag = Diagnostic::error(format!(
                "no host of environment `{name}` has a role of artifact `{}`: a deploy \
                 would reach no host at all",
                artifact.name
            ))
            .at(
                &project.file,
                artifact.roles_span.clone(),
                "no host has these",
            )
            .note(known.clone());
            check.errors.push(diag);
        }
    }
    for artifact in &project.artifacts {
        if reached && !hosts.iter().any(|h| h.receives(artifact)) {
            let roles = artifact
                .roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let roles = if roles.is_empty() {
                "no roles".to_string()
            } else {
                format!("roles {roles}")
            };
            let message = format!("artifact `{}` goes to no host of `{name}`", artifact.name);
            check.warning(
                &project.file,
                artifact.span.clone(),
                message,
                format!("has {roles}"),
            );
        }
    }
    // Two artifacts sharing a base directory on one host would share its
    // `current`, releases and lock.
    for host in &hosts {
        let mine: Vec<&Artifact> = project
            .artifacts
            .iter()
            .filter(|a| host.receives(a))
            .collect();
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[i + 1..] {
                let nested = a.path == b.path
                    || b.path.starts_with(&format!("{}/", a.path))
                    || a.path.starts_with(&format!("{}/", b.path));
                if nested {
                    check.error(
                        host.span.clone(),
                        format!(
                            "artifacts `{}` and `{}` overlap on host `{}`",
                            a.name, b.name, host.name
                        ),
                        format!("`{}` and `{}`", a.path, b.path),
                    );
                }
            }
        }
    }

    let recipients: Vec<String> = raw
        .secrets
        .map(|s| s.recipients)
        .unwrap_or_default()
        .into_iter()
        .map(|recipient| {
            if let Err(why) = crate::secrets::parse_recipient(recipient.get_ref()) {
                check.error(recipient.span(), "invalid secrets recipient", why);
            }
            recipient.into_inner()
        })
        .collect();

    let warnings = check.finish()?;
    Ok(Environment {
        name: name.to_string(),
        protect: section.protect.unwrap_or(false),
        branch: section.branch.map(Spanned::into_inner),
        jobs: jobs as usize,
        user: section.user.map(Spanned::into_inner),
        ssh_config,
        ssh_persist,
        store,
        on_failure: section.on_failure.unwrap_or(raw::OnFailure::RollbackAll),
        host_keys: section.host_keys.unwrap_or_default(),
        vars: raw.vars,
        hosts,
        recipients,
        overrides: toml::Table::new(),
        warnings,
        file,
    })
}
