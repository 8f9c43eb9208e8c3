//! The local transport: every host is a directory on this machine.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Basis, PushStats, RoundTrips, Transport};
use crate::assemble::{
    EntryKind, Gathered, MANIFEST_FILE, Release, content_mtime, copy_file, finish_file,
};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::process::{self, Cmd, ProcessError};
use crate::steps::{Reply, Script};

/// Hosts as directories on this machine.
#[derive(Debug)]
pub struct Local {
    root: PathBuf,
    trips: RoundTrips,
}

impl Local {
    /// Hosts of `env` under `<landfall dir>/local/<env>/`.
    pub fn new(landfall_dir: &Path, env: &str) -> Local {
        Local {
            root: landfall_dir.join("local").join(env),
            trips: RoundTrips::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, target: &Target) -> PathBuf {
        PathBuf::from(self.host_path(target))
    }

    /// `sh -s` from `/`, fed `script`, for `host`; or, for a script whose
    /// command reads a file (see [`Script::input_file`]), `sh -c SCRIPT`
    /// with the file on its standard input.
    fn script_cmd(&self, host: &str, script: &Script) -> Cmd {
        self.trips.count(host);
        let cmd = Cmd::new("sh");
        let cmd = match script.input_file() {
            Some(file) => cmd.arg("-c").arg(script.text()).input_file(file),
            None => cmd.arg("-s").input(script.text()),
        };
        // Steps and hooks know they run locally: a service runs as a
        // plain process, not under a service manager.
        cmd.env("LANDFALL_LOCAL", "1")
            // Each host keeps its own record of the paths deployed to it.
            .env(
                "LANDFALL_STATE",
                self.root.join(host).join(".landfall-state"),
            )
            .dir("/")
            .for_host(host)
            .bounded_output()
    }
}

impl Transport for Local {
    fn host_path(&self, target: &Target) -> String {
        let rooted = self
            .root
            .join(&target.host)
            .join(target.path.trim_start_matches('/'));
        rooted.to_string_lossy().into_owned()
    }

    fn run(&self, host: &str, script: &Script) -> Result<Reply, ProcessError> {
        let cmd = self
            .script_cmd(host, script)
            .deadline(script.deadline())
            .in_own_process_group();
        process::run_unchecked(&cmd).map(Reply::from)
    }

    /// A directory is always reached anew: the script simply runs.
    fn run_over_new_connection(
        &self,
        host: &str,
        script: &Script,
        _connect: std::time::Duration,
    ) -> Result<Reply, ProcessError> {
        self.run(host, script)
    }

    fn stream(
        &self,
        host: &str,
        script: &Script,
        stop: &(dyn Fn() -> bool + Sync),
        line: &mut dyn FnMut(&str),
    ) -> Result<Reply, ProcessError> {
        let cmd = self.script_cmd(host, script);
        process::stream_lines(&cmd, stop, line).map(Reply::from)
    }

    fn attach(&self, host: &str, script: &Script) -> Result<Option<i32>, ProcessError> {
        self.trips.count(host);
        // On this terminal, in landfall's process group: the terminal is
        // the command's.
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg(script.text())
            .env("LANDFALL_LOCAL", "1")
            .env(
                "LANDFALL_STATE",
                self.root.join(host).join(".landfall-state"),
            )
            .dir("/")
            .for_host(host);
        process::run_attached(&cmd)
    }

    fn push(
        &self,
        target: &Target,
        release: &Release,
        basis: Basis<'_>,
        progress: super::Progress<'_>,
    ) -> Result<PushStats> {
        self.trips.count(&target.host);
        let base = self.dir(target);
        if let Some(git) = &release.git {
            let url = base.join(".landfall").join("repo.git");
            return Ok(super::git_push(
                git,
                &url.to_string_lossy(),
                None,
                &target.host,
            )?);
        }
        let partial = base
            .join("releases")
            .join(format!("{}.partial", release.id));
        let link_dest = match basis {
            Basis::Derived(delta) => return apply(delta, &partial, progress),
            Basis::Release(id) => Some(id),
            Basis::Nothing => None,
        };
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
        }
        crate::files::create_dirs(&partial)?;
        let previous = link_dest.map(|id| base.join("releases").join(id));
        let mut stats = PushStats::default();
        for entry in &release.manifest.entries {
            let dest = partial.join(&entry.path);
            if let Some(parent) = dest.parent() {
                crate::files::create_dirs(parent)?;
            }
            match &entry.kind {
                EntryKind::Symlink { target } => {
                    std::os::unix::fs::symlink(target, &dest)
                        .map_err(Error::io("cannot create symlink", &dest))?;
                }
                EntryKind::File { mode, size, hash } => {
                    // rsync's quick check: same size, mtime and mode means
                    // the same file (mtimes are derived from content).
                    let old = previous.as_ref().map(|p| p.join(&entry.path));
                    let same = old
                        .as_ref()
                        .and_then(|old| fs::symlink_metadata(old).ok())
                        .is_some_and(|meta| {
                            meta.is_file()
                                && meta.size() == *size
                                && meta.mode() & 0o7777 == *mode
                                && meta.modified().ok() == Some(content_mtime(hash))
                        });
                    if same && fs::hard_link(old.as_ref().expect("checked"), &dest).is_ok() {
                        continue;
                    }
                    let source = release.local_path(&entry.path);
                    fs::copy(&source, &dest).map_err(Error::io("cannot copy", &source))?;
                    let file = fs::File::options()
                        .write(true)
                        .open(&dest)
                        .map_err(Error::io("cannot open", &dest))?;
                    finish_file(&file, &dest, *mode, hash)?;
                    stats.files += 1;
                    stats.bytes += size;
                    progress(stats.bytes);
                }
            }
        }
        let manifest = release.stage.join(MANIFEST_FILE);
        fs::copy(&manifest, partial.join(MANIFEST_FILE))
            .map_err(Error::io("cannot copy", &manifest))?;
        Ok(stats)
    }

    fn round_trips(&self) -> BTreeMap<String, usize> {
        self.trips.get()
    }
}

/// Brings `partial`, a copy of the delta's `from` made by the claim (which
/// removed what the release lacks), to the release: each path of the delta
/// is replaced by its file or link. A file is replaced, never written in
/// place, since it is a hard link to `from`'s.
fn apply(
    gathered: &Gathered<'_>,
    partial: &Path,
    progress: super::Progress<'_>,
) -> Result<PushStats> {
    let mut stats = PushStats::default();
    for path in &gathered.delta.paths {
        let source = gathered.dir.join(path);
        let dest = partial.join(path);
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() => {
                fs::remove_dir_all(&dest).map_err(Error::io("cannot remove", &dest))?;
            }
            Ok(_) => fs::remove_file(&dest).map_err(Error::io("cannot remove", &dest))?,
            Err(_) => {}
        }
        let Ok(meta) = fs::symlink_metadata(&source) else {
            continue;
        };
        if let Some(parent) = dest.parent() {
            crate::files::create_dirs(parent)?;
        }
        if meta.is_symlink() {
            let target = fs::read_link(&source).map_err(Error::io("cannot read", &source))?;
            std::os::unix::fs::symlink(target, &dest)
                .map_err(Error::io("cannot create symlink", &dest))?;
            continue;
        }
        copy_file(&source, &dest)?;
        if path != MANIFEST_FILE {
            stats.files += 1;
            stats.bytes += meta.len();
            progress(stats.bytes);
        }
    }
    Ok(stats)
}
