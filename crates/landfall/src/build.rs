//! Build: the workspace as cargo sees it, and a reproducible `cargo build`
//! of the binaries the plan needs.
//!
//! The build runs `$CARGO build --locked` with `SOURCE_DATE_EPOCH` from the
//! HEAD commit, path prefixes remapped, no incremental compilation and its
//! own target directory, so that the same commit and toolchain give the
//! same bytes in any directory. Binary paths come from cargo's JSON
//! messages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cargo_metadata::{Message, Metadata};

use crate::config::{BinTarget, BuildSettings, Workspace};
use crate::error::{Error, Result};
use crate::process::{self, Cmd};

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Describes the workspace with `cargo metadata` (no dependency resolution,
/// no network).
pub fn workspace(manifest_path: Option<&Path>) -> Result<Workspace> {
    let mut cmd = Cmd::new(cargo()).args(["metadata", "--format-version", "1", "--no-deps"]);
    if let Some(path) = manifest_path {
        cmd = cmd.arg("--manifest-path").arg(path);
    }
    if let Some(path) = manifest_path.filter(|p| !p.is_file()) {
        return Err(Error::Usage(format!(
            "`--manifest-path {}`: no such file",
            path.display()
        )));
    }
    // Cargo's own message says what is wrong; the command line it ran would
    // only add the toolchain's path.
    let output = process::run(&cmd).map_err(|err| match err.kind {
        process::ProcessErrorKind::Status { stderr_tail, .. } if !stderr_tail.is_empty() => {
            Error::Usage(format!(
                "cannot read the cargo workspace (`cargo metadata`):\n{}",
                stderr_tail.trim_end()
            ))
        }
        _ => Error::Usage(format!("cannot read the cargo workspace: {err}")),
    })?;
    let metadata: Metadata = serde_json::from_slice(&output.stdout)
        .map_err(|err| Error::Failed(format!("cannot parse `cargo metadata` output: {err}")))?;

    let mut bins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in metadata.workspace_packages() {
        for target in package.targets.iter().filter(|t| t.is_bin()) {
            bins.entry(target.name.clone())
                .or_default()
                .push(package.name.to_string());
        }
    }
    let root: PathBuf = metadata.workspace_root.clone().into();
    Ok(Workspace {
        manifest_path: root.join("Cargo.toml"),
        root,
        target_dir: metadata.target_directory.clone().into(),
        root_package: metadata.root_package().map(|p| p.name.to_string()),
        bins,
    })
}

/// Where the reproducible build keeps its own target directory.
pub fn target_dir(workspace: &Workspace) -> PathBuf {
    workspace.landfall_dir().join("build")
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    pub workspace_root: &'a Path,
    pub target_dir: &'a Path,
    pub settings: &'a BuildSettings,
    pub bins: &'a [BinTarget],
    pub source_date_epoch: i64,
    pub quiet: bool,
}

/// Builds the binaries and returns their paths by name.
pub fn build(request: &BuildRequest<'_>) -> Result<BTreeMap<String, PathBuf>> {
    if request.bins.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut cmd = Cmd::new(cargo())
        .arg("build")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(request.workspace_root.join("Cargo.toml"))
        .args([
            "--profile",
            &request.settings.profile,
            "--message-format",
            "json-render-diagnostics",
        ])
        .dir(request.workspace_root)
        .env("CARGO_TARGET_DIR", request.target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .env("SOURCE_DATE_EPOCH", request.source_date_epoch.to_string());
    if request.quiet {
        cmd = cmd.arg("--quiet");
    }
    let mut packages: Vec<&str> = request.bins.iter().map(|b| b.package.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    for package in packages {
        cmd = cmd.args(["--package", package]);
    }
    for bin in request.bins {
        cmd = cmd.args(["--bin", &bin.name]);
    }
    if !request.settings.features.is_empty() {
        cmd = cmd.args(["--features", &request.settings.features.join(",")]);
    }
    if let Some(target) = &request.settings.target {
        cmd = cmd.args(["--target", target]);
    }
    cmd = with_remapped_paths(cmd, request.workspace_root);

    let stdout = process::run_passing_stderr(&cmd, request.quiet)?;
    let mut paths = BTreeMap::new();
    for message in Message::parse_stream(stdout.as_slice()) {
        let Ok(Message::CompilerArtifact(artifact)) = message else {
            continue;
        };
        if !artifact.target.is_bin() {
            continue;
        }
        if let Some(exe) = artifact.executable {
            paths.insert(artifact.target.name.clone(), PathBuf::from(exe));
        }
    }
    for bin in request.bins {
        if !paths.contains_key(&bin.name) {
            return Err(Error::Failed(format!(
                "cargo built no executable for binary `{}`",
                bin.name
            )));
        }
    }
    Ok(paths)
}

/// Adds `--remap-path-prefix` for the workspace and cargo's home, so that
/// no absolute build path ends up in a binary.
///
/// The flags go through `--config build.rustflags`, which cargo merges with
/// the user's configured flags; when `RUSTFLAGS` is set it would override
/// that, so the flags are appended to it instead.
fn with_remapped_paths(cmd: Cmd, workspace_root: &Path) -> Cmd {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut flags = vec![format!(
        "--remap-path-prefix={}=.",
        workspace_root.display()
    )];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    if let Some(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .ok()
        .filter(|f| !f.is_empty())
    {
        let all: Vec<String> = encoded
            .split('\u{1f}')
            .map(str::to_string)
            .chain(flags)
            .collect();
        cmd.env("CARGO_ENCODED_RUSTFLAGS", all.join("\u{1f}"))
    } else if let Some(plain) = std::env::var("RUSTFLAGS")
        .ok()
        .filter(|f| !f.trim().is_empty())
    {
        let all: Vec<String> = plain
            .split_whitespace()
            .map(str::to_string)
            .chain(flags)
            .collect();
        cmd.env("CARGO_ENCODED_RUSTFLAGS", all.join("\u{1f}"))
    } else {
        let array = flags
            .iter()
            .map(|f| toml::Value::String(f.clone()).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        cmd.arg("--config")
            .arg(format!("build.rustflags = [{array}]"))
    }
}

/// The Rust toolchain that builds the workspace: `rustc -V` and its host
/// triple, as `rustc 1.x.y (hash date) on x86_64-unknown-linux-gnu`.
pub fn toolchain(workspace_root: &Path) -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = process::run(&Cmd::new(rustc).arg("-vV").dir(workspace_root))?;
    let text = output.stdout_text();
    let version = text.lines().next().unwrap_or_default().trim();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or("unknown");
    Ok(format!("{version} on {host}"))
}

/// Writes `Cargo.lock` if the workspace has none (builds use `--locked`);
/// returns whether it did.
pub fn ensure_lockfile(workspace: &Workspace) -> Result<bool> {
    if workspace.root.join("Cargo.lock").exists() {
        return Ok(false);
    }
    process::run(
        &Cmd::new(cargo())
            .arg("generate-lockfile")
            .arg("--manifest-path")
            .arg(&workspace.manifest_path)
            .dir(&workspace.root),
    )?;
    Ok(true)
}
