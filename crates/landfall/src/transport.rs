//! Transports: how steps run on a host and how a staged release gets there.
//!
//! A [`Transport`] runs step scripts (see [`crate::steps`]) and copies
//! staged trees; everything else about a deploy is the same whichever
//! transport is used. [`Local`] re-roots every host under
//! `target/landfall/local/ENV/HOST/` and needs neither ssh nor rsync.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::assemble::{EntryKind, Manifest, Release, content_mtime, finish_file};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::process::{self, Cmd, Output, ProcessError};

/// What a push wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushStats {
    pub files: usize,
    /// Bytes of file content written; linked files count nothing.
    pub bytes: u64,
}

pub trait Transport: Sync {
    /// The directory that stands for `target.path` on its host.
    fn host_path(&self, target: &Target) -> String;

    /// Runs a step script on a host and returns its output, whatever its
    /// exit status.
    fn run(&self, host: &str, script: &str) -> Result<Output, ProcessError>;

    /// Copies a staged release into `<path>/releases/<id>.partial`, hard
    /// linking files unchanged since `link_dest` (a release id on the
    /// host), and records the release's manifest on the host.
    fn push(
        &self,
        target: &Target,
        release: &Release,
        link_dest: Option<&str>,
    ) -> Result<PushStats>;

    /// Reads the manifest a host recorded for one of its releases.
    fn read_manifest(&self, target: &Target, release: &str) -> Result<Option<Manifest>>;
}

/// Hosts as directories on this machine.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
}

impl Local {
    /// Hosts of `env` under `<landfall dir>/local/<env>/`.
    pub fn new(landfall_dir: &Path, env: &str) -> Local {
        Local {
            root: landfall_dir.join("local").join(env),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, target: &Target) -> PathBuf {
        PathBuf::from(self.host_path(target))
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

    fn run(&self, host: &str, script: &str) -> Result<Output, ProcessError> {
        process::run_unchecked(&Cmd::new("sh").arg("-c").arg(script).dir("/").for_host(host))
    }

    fn push(
        &self,
        target: &Target,
        release: &Release,
        link_dest: Option<&str>,
    ) -> Result<PushStats> {
        let base = self.dir(target);
        let partial = base
            .join("releases")
            .join(format!("{}.partial", release.id));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
        }
        fs::create_dir_all(&partial).map_err(Error::io("cannot create", &partial))?;
        let previous = link_dest.map(|id| base.join("releases").join(id));
        let mut stats = PushStats::default();
        for entry in &release.manifest.entries {
            let dest = partial.join(&entry.path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
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
                    let source = release.stage.join(&entry.path);
                    fs::copy(&source, &dest).map_err(Error::io("cannot copy", &source))?;
                    let file = fs::File::options()
                        .write(true)
                        .open(&dest)
                        .map_err(Error::io("cannot open", &dest))?;
                    finish_file(&file, &dest, *mode, hash)?;
                    stats.files += 1;
                    stats.bytes += size;
                }
            }
        }
        let manifests = base.join(".landfall").join("manifests");
        fs::create_dir_all(&manifests).map_err(Error::io("cannot create", &manifests))?;
        crate::hash::write_atomically(
            &manifests.join(&release.id),
            release.manifest.canonical().as_bytes(),
        )?;
        Ok(stats)
    }

    fn read_manifest(&self, target: &Target, release: &str) -> Result<Option<Manifest>> {
        let path = self
            .dir(target)
            .join(".landfall")
            .join("manifests")
            .join(release);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Manifest::parse(&text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("cannot read", &path)(err)),
        }
    }
}

/// Files added, removed and changed between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

pub fn changes(old: &Manifest, new: &Manifest) -> Changes {
    let old: BTreeMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let new: BTreeMap<&str, &EntryKind> = new
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut out = Changes::default();
    for (path, kind) in &new {
        match old.get(path) {
            None => out.added.push((*path).to_string()),
            Some(old_kind) if old_kind != kind => out.changed.push((*path).to_string()),
            Some(_) => {}
        }
    }
    out.removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .map(|p| (*p).to_string())
        .collect();
    out
}
