//! Transports: how step scripts reach a host and how a staged release gets
//! there.
//!
//! A [`Transport`] runs step scripts (see [`crate::steps`]) and copies
//! staged trees; everything else about a deploy is the same whichever
//! transport is used. [`Local`] re-roots every host under
//! `target/landfall/local/ENV/HOST/` and needs neither ssh nor rsync;
//! [`Ssh`] uses the system's OpenSSH client and rsync, over one
//! `ControlMaster` per host.

mod local;
mod ssh;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use local::Local;
pub use ssh::{Ssh, SshOptions};

use crate::assemble::{EntryKind, Manifest, Release};
use crate::error::Result;
use crate::plan::Target;
use crate::process::{Output, ProcessError};

/// What a push wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushStats {
    /// Files whose content was sent (unchanged ones are hard links).
    pub files: usize,
    /// Bytes sent: file content locally, everything rsync sent remotely.
    pub bytes: u64,
}

pub trait Transport: Sync {
    /// The directory that stands for `target.path` on its host.
    fn host_path(&self, target: &Target) -> String;

    /// Runs a step script on a host and returns its output, whatever the
    /// script's exit status; an error means the host could not be reached.
    fn run(&self, host: &str, script: &str) -> Result<Output, ProcessError>;

    /// Copies a staged release into `<path>/releases/<id>.partial`, hard
    /// linking files unchanged since `link_dest` (a release id on the host).
    fn push(
        &self,
        target: &Target,
        release: &Release,
        link_dest: Option<&str>,
    ) -> Result<PushStats>;

    /// How many round trips (commands and copies) each host has seen.
    fn round_trips(&self) -> BTreeMap<String, usize>;
}

/// Counts round trips per host.
#[derive(Debug, Default)]
struct RoundTrips(Mutex<BTreeMap<String, usize>>);

impl RoundTrips {
    fn count(&self, host: &str) {
        let mut map = self.0.lock().expect("no thread panics holding it");
        *map.entry(host.to_string()).or_default() += 1;
    }

    fn get(&self) -> BTreeMap<String, usize> {
        self.0.lock().expect("no thread panics holding it").clone()
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
