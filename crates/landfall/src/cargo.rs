//! Cargo: the workspace as cargo sees it, and a reproducible `cargo build`
//! of the binaries the plan needs.
//!
//! The build runs `$CARGO build --locked` with `SOURCE_DATE_EPOCH` from the
//! HEAD commit, path prefixes remapped, no incremental compilation and its
//! own target directory, so that the same commit and toolchain give the
//! same bytes in any directory. Binary paths come from cargo's JSON
//! messages. It is one invocation of `cargo build` (or of `[build] cargo`,
//! such as `cargo zigbuild`) per package and set of features, so that no
//! artifact's features reach another's dependencies; [`check_target`]
//! says whether `[build] target` is installed.
//!
//! [`WorkspaceAhead`] runs `cargo metadata` on a thread while the caller
//! goes on with the workspace as the last run here found it
//! (`target/landfall/workspace.json`, see [`remember`]): a guess until
//! cargo confirms it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cargo_metadata::{Message, Metadata};

use crate::config::{BinTarget, BuildSettings, Project, Workspace};
use crate::diag::Diagnostic;
use crate::error::{Error, Result};
use crate::process::{self, Cmd};

pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The longest cargo may take to describe the workspace (no network), or
/// rustc to say what it builds for: a cargo that waits on another's lock
/// of the package cache is stopped and named past it.
const METADATA_TIME: std::time::Duration = std::time::Duration::from_secs(300);

/// The longest cargo may take to write a new workspace's `Cargo.lock`,
/// which reads the registry's index.
const LOCKFILE_TIME: std::time::Duration = std::time::Duration::from_secs(600);

/// Describes the workspace with `cargo metadata` (no dependency resolution,
/// no network).
pub fn workspace(manifest_path: Option<&Path>) -> Result<Workspace> {
    let mut cmd = Cmd::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .deadline(METADATA_TIME);
    if let Some(path) = manifest_path {
        cmd = cmd.arg("--manifest-path").arg(path);
    }
    if let Some(path) = manifest_path.filter(|p| !p.is_file()) {
        return Err(Error::Usage(format!(
            "`--manifest-path {}`: no such file",
            path.display()
        )));
    }
    // Cargo's own message says what is wrong, whole; the command line it
    // ran would only add the toolchain's path.
    let output = process::run_unchecked(&cmd)
        .map_err(|err| Error::Usage(format!("cannot read the cargo workspace: {err}")))?;
    if !output.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Usage(if stderr.trim().is_empty() {
            "cannot read the cargo workspace: `cargo metadata` failed and said nothing".to_string()
        } else {
            format!(
                "cannot read the cargo workspace (`cargo metadata`):\n{}",
                stderr.trim_end()
            )
        }));
    }
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

/// `cargo metadata`, run on a thread of its own while the caller goes on
/// with the workspace as an earlier run here found it (see [`remember`]).
///
/// Cargo takes tens of milliseconds to describe even a small workspace,
/// which is most of a deploy that has nothing to do. Whatever is worked
/// out from [`remembered`](WorkspaceAhead::remembered) is a guess until
/// [`finish`](WorkspaceAhead::finish) says it holds: nothing may be
/// changed, printed or asked on its strength.
#[derive(Debug)]
pub struct WorkspaceAhead {
    remembered: Option<Workspace>,
    described: std::thread::JoinHandle<Result<Workspace>>,
}

/// Where a workspace is remembered, in its landfall directory.
const REMEMBERED: &str = "workspace.json";

impl WorkspaceAhead {
    /// Starts `cargo metadata` (see [`workspace`]) and reads the workspace
    /// remembered for `manifest_path`, or the current directory.
    pub fn start(manifest_path: Option<&Path>) -> WorkspaceAhead {
        let path = manifest_path.map(Path::to_path_buf);
        let described = std::thread::spawn(move || workspace(path.as_deref()));
        WorkspaceAhead {
            remembered: remembered(manifest_path),
            described,
        }
    }

    /// The workspace as the last run from here found it, if it was kept.
    pub fn remembered(&self) -> Option<&Workspace> {
        self.remembered.as_ref()
    }

    /// The workspace as cargo describes it now, and whether it is other
    /// than the one remembered (then [`remember`] it, once a run may
    /// write).
    pub fn finish(self) -> Result<(Workspace, bool)> {
        let workspace = self
            .described
            .join()
            .unwrap_or_else(|_| Err(Error::Failed("`cargo metadata` was not read".into())))?;
        let changed = self.remembered.as_ref() != Some(&workspace);
        Ok((workspace, changed))
    }
}

/// The workspace kept by an earlier run, found as cargo would find it: in
/// the nearest directory above the manifest (or the current directory)
/// that has a `deploy.toml` beside its `Cargo.toml`, and only if it says
/// that directory is its root. It is in the landfall directory under
/// `$CARGO_TARGET_DIR`, or else under `target` there.
fn remembered(manifest_path: Option<&Path>) -> Option<Workspace> {
    let start = match manifest_path {
        Some(path) => std::path::absolute(path).ok()?.parent()?.to_path_buf(),
        None => std::env::current_dir().ok()?,
    };
    let root = start
        .ancestors()
        .find(|dir| dir.join("deploy.toml").is_file() && dir.join("Cargo.toml").is_file())?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::absolute(PathBuf::from(dir)).ok()?,
        None => root.join("target"),
    };
    let text = std::fs::read(target.join("landfall").join(REMEMBERED)).ok()?;
    let workspace: Workspace = serde_json::from_slice(&text).ok()?;
    (workspace.root == root).then_some(workspace)
}

/// Keeps `workspace` for the next run's [`WorkspaceAhead`]; only that
/// run's head start is lost if it cannot.
pub fn remember(workspace: &Workspace) -> Result<()> {
    let text = serde_json::to_vec(workspace)
        .map_err(|err| Error::Failed(format!("cannot keep the workspace: {err}")))?;
    let dir = workspace.landfall_dir();
    crate::files::private_dir(&dir)?;
    crate::files::write_atomically(&dir.join(REMEMBERED), &text)
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

/// The binaries one cargo invocation builds: those of one package, with one
/// set of features. Builds of different packages are kept apart, so that
/// one package's features never change another's dependencies, and adding
/// a service rebuilds nothing else.
fn builds(bins: &[BinTarget]) -> BTreeMap<(&str, &[String]), Vec<&BinTarget>> {
    let mut builds: BTreeMap<(&str, &[String]), Vec<&BinTarget>> = BTreeMap::new();
    for bin in bins {
        builds
            .entry((bin.package.as_str(), bin.features.as_slice()))
            .or_default()
            .push(bin);
    }
    builds
}

/// Builds the binaries, one cargo invocation per distinct build, and
/// returns their paths.
pub fn build(request: &BuildRequest<'_>) -> Result<BTreeMap<BinTarget, PathBuf>> {
    let builds = builds(request.bins);
    let mut paths = BTreeMap::new();
    for (index, ((package, features), bins)) in builds.iter().enumerate() {
        let built = build_one(request, package, features, bins)?;
        for bin in bins {
            let Some(path) = built.get(&bin.name) else {
                return Err(Error::Failed(format!(
                    "cargo built no executable for binary `{}`",
                    bin.name
                )));
            };
            // Cargo puts every build of a binary at one path: a later build
            // of it with other features would replace this one. A hard link
            // keeps this build's bytes (cargo replaces the file, it does
            // not write into it).
            let kept = if builds.len() > 1 {
                let dir = request
                    .target_dir
                    .join("landfall-bins")
                    .join(index.to_string());
                keep(path, &dir.join(&bin.name))?
            } else {
                path.clone()
            };
            paths.insert((*bin).clone(), kept);
        }
    }
    Ok(paths)
}

/// Links `path` at `kept`, replacing what was there.
fn keep(path: &Path, kept: &Path) -> Result<PathBuf> {
    let cannot = |err: std::io::Error| {
        Error::Failed(format!(
            "cannot keep the binary at `{}`: {err}",
            kept.display()
        ))
    };
    if let Some(dir) = kept.parent() {
        std::fs::create_dir_all(dir).map_err(cannot)?;
    }
    match std::fs::remove_file(kept) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(cannot(err)),
        _ => {}
    }
    std::fs::hard_link(path, kept)
        .or_else(|_| std::fs::copy(path, kept).map(drop))
        .map_err(cannot)?;
    Ok(kept.to_path_buf())
}

/// The command that builds: `[build] cargo`, with `cargo` itself the one
/// that runs landfall (`$CARGO`), so that one toolchain does everything.
fn build_command(settings: &BuildSettings) -> Cmd {
    let (program, args) = settings
        .command
        .split_first()
        .map_or(("cargo", &[][..]), |(p, a)| (p.as_str(), a));
    let program = if program == "cargo" {
        cargo()
    } else {
        program.into()
    };
    Cmd::new(program).args(args)
}

/// One cargo invocation: `package`'s `bins`, with `features` besides
/// `[build] features`; the paths of the executables by name.
fn build_one(
    request: &BuildRequest<'_>,
    package: &str,
    features: &[String],
    bins: &[&BinTarget],
) -> Result<BTreeMap<String, PathBuf>> {
    let settings = request.settings;
    let mut cmd = build_command(settings)
        .arg("--locked")
        .arg("--manifest-path")
        .arg(request.workspace_root.join("Cargo.toml"))
        .args([
            "--profile",
            &settings.profile,
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
    cmd = cmd.args(["--package", package]);
    for bin in bins {
        cmd = cmd.args(["--bin", &bin.name]);
    }
    cmd = with_features(
        cmd,
        settings.features.iter().chain(features).cloned(),
        settings.no_default_features,
    );
    if let Some(target) = &settings.target {
        cmd = cmd.args(["--target", target]);
    }
    cmd = with_remapped_paths(cmd, request.workspace_root);

    let stdout =
        process::run_passing_stderr(&cmd, request.quiet).map_err(|err| match err.kind {
            // Cargo's own errors say what is wrong, whole: they were shown as
            // cargo printed them, or are here.
            process::ProcessErrorKind::Status { code, stderr_tail } => {
                let status = code.map_or_else(
                    || "was killed".to_string(),
                    |c| format!("exited with status {c}"),
                );
                Error::Failed(if stderr_tail.is_empty() {
                    format!(
                        "the build of `{package}` failed: `{}` {status} (its errors are above)",
                        err.command
                    )
                } else {
                    format!(
                        "the build of `{package}` failed: `{}` {status}:\n{stderr_tail}",
                        err.command
                    )
                })
            }
            _ => Error::Process(err),
        })?;
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
    let output = process::run(
        &Cmd::new(rustc)
            .arg("-vV")
            .dir(workspace_root)
            .deadline(METADATA_TIME),
    )?;
    let text = output.stdout_text();
    let version = text.lines().next().unwrap_or_default().trim();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or("unknown");
    Ok(format!("{version} on {host}"))
}

/// The triple of the machine rustc builds on, which builds for it when
/// `[build] target` names none.
pub(crate) fn host_triple(workspace_root: &Path) -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = process::run(
        &Cmd::new(rustc)
            .arg("-vV")
            .dir(workspace_root)
            .deadline(METADATA_TIME),
    )?;
    output
        .stdout_text()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|host| host.trim().to_string())
        .ok_or_else(|| Error::Failed("`rustc -vV` names no host".into()))
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
            .dir(&workspace.root)
            .deadline(LOCKFILE_TIME),
    )?;
    Ok(true)
}

/// `[build] target`, if this machine's toolchain cannot build for it: an
/// error at the key, saying how to install it. A target of cargo-zigbuild
/// (`x86_64-unknown-linux-gnu.2.17`) is checked without its glibc version;
/// a target specification file is left to cargo.
pub fn check_target(project: &Project) -> Option<Diagnostic> {
    let target = project.build.target.as_deref()?;
    if Path::new(target)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return None;
    }
    let triple = without_glibc_version(target);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let root = &project.workspace.root;
    let print = |what: &str| {
        process::run(
            &Cmd::new(&rustc)
                .args(["--print", what])
                .dir(root)
                .deadline(METADATA_TIME),
        )
        .map(|output| output.stdout_text())
    };
    let at = |diag: Diagnostic, label: &str| match &project.target_span {
        Some(span) => diag.at(&project.file, span.clone(), label),
        None => diag,
    };
    let known = match print("target-list") {
        Ok(list) => list.lines().any(|line| line.trim() == triple),
        Err(err) => {
            return Some(Diagnostic::error(format!(
                "cannot ask rustc which targets it knows: {err}"
            )));
        }
    };
    if !known {
        return Some(
            at(
                Diagnostic::error(format!(
                    "`{}` is not a target rustc knows",
                    crate::diag::shown(target)
                )),
                "unknown target",
            )
            .note("`rustc --print target-list` lists them"),
        );
    }
    let sysroot = print("sysroot").ok()?;
    let libraries = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(triple)
        .join("lib");
    if libraries.is_dir() {
        return None;
    }
    Some(
        at(
            Diagnostic::error(format!(
                "the target `{triple}` is not installed for the toolchain that builds this workspace"
            )),
            "not installed",
        )
        .note(format!("install it with `rustup target add {triple}`")),
    )
}

/// `x86_64-unknown-linux-gnu` for cargo-zigbuild's
/// `x86_64-unknown-linux-gnu.2.17`, which pins the glibc version.
pub(crate) fn without_glibc_version(target: &str) -> &str {
    match target.split_once('.') {
        Some((triple, version))
            if triple.contains("-linux-gnu")
                && version
                    .split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            triple
        }
        _ => target,
    }
}

/// `cmd` (a cargo command) with `--features` (each once, sorted) and
/// `--no-default-features` as the build settings say.
pub(crate) fn with_features(
    mut cmd: Cmd,
    features: impl Iterator<Item = String>,
    no_default_features: bool,
) -> Cmd {
    let mut all: Vec<String> = features.collect();
    all.sort_unstable();
    all.dedup();
    if !all.is_empty() {
        cmd = cmd.args(["--features", &all.join(",")]);
    }
    if no_default_features {
        cmd = cmd.arg("--no-default-features");
    }
    cmd
}
