//! The cgroup2 directories systemd hosts run in, one per host, named
//! after the test bed's directory: where they are, whether a process is in
//! one, and removing one once its processes are gone.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{Init, Testbed};

/// Where the cgroup2 hierarchy is mounted: `/sys/fs/cgroup/unified` on a
/// machine with hybrid cgroups, `/sys/fs/cgroup` on one with cgroup v2
/// only. systemd hosts need it: their systemd manages a cgroup2 tree.
pub(crate) fn cgroup2_root() -> Result<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .context("this machine has no cgroup v2 hierarchy, which systemd hosts need")
}

impl Testbed {
    /// The cgroup2 directory a systemd host runs in (made when it starts,
    /// removed when it stops), or `None` for a plain host. Its name holds
    /// the test bed's directory, so that test beds that run at the same
    /// time each have their own.
    pub fn cgroup(&self, name: &str) -> Option<PathBuf> {
        if self.init != Init::Systemd {
            return None;
        }
        let root = cgroup2_root().ok()?;
        let base = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // FNV-1a of the whole path: two checkouts both have a
        // `target/testbed`.
        let hash = self
            .dir
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
            });
        Some(root.join(format!("landfall-testbed.{base}.{hash:08x}.{name}")))
    }
}

/// Whether process `pid` lives, in cgroup2 directory `cgroup` (a path from
/// the hierarchy's root, `/name`) or below it.
pub(crate) fn in_cgroup(pid: u32, cgroup: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let alive = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    alive
        && text.lines().any(|line| {
            line.strip_prefix("0::").is_some_and(|path| {
                path == cgroup
                    || path
                        .strip_prefix(cgroup)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        })
}

/// Removes a cgroup2 directory and the ones below it, deepest first (a
/// cgroup's files go with it; a cgroup with processes cannot go). One that
/// is not there is fine.
pub(crate) fn remove_cgroup(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot read `{}`", dir.display())),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove `{}`", dir.display()))
        }
        _ => Ok(()),
    }
}
