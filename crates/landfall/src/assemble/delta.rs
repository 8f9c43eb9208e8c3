//! Deltas: what a release adds to another release of its artifact that a
//! host holds (the files new or changed, and the paths that go), worked
//! out from the two manifests, and gathered at their paths for one push.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;

use super::release::manifest_entry;
use super::tree::{Source, materialise_from};
use super::{Entry, EntryKind, MANIFEST_FILE, Manifest, PROVENANCE_FILE, Release};
use crate::error::{Error, Result};
use crate::files::write_atomically;

/// What a release adds to another release of its artifact that a host
/// holds: a push that starts from a copy of that release (as hard links,
/// `landfall_derive`) sends only this.
#[derive(Debug)]
pub struct Delta {
    /// The release on the host the upload starts as a copy of.
    pub from: String,
    /// How many entries the directory of `from` has at its top on a host:
    /// its files and directories, then its manifest and its provenance.
    pub top: usize,
    /// The files new or changed since `from`, and the release's manifest.
    changed: Manifest,
    /// Every path of `changed`: what the push sends.
    pub paths: Vec<String>,
    /// Every path of `from` the release lacks (files, links and
    /// directories) whose directory it keeps: the host removes each from
    /// its copy of `from`, with what is in it, before the push
    /// (`landfall_derive`).
    pub gone: Vec<String>,
}

impl Delta {
    /// What `release` adds to `from`, or `None` when that cannot be said:
    /// a git release, `from`'s manifest not kept here, or a path that is a
    /// directory in one and a file or link in the other.
    pub fn between(release: &Release, from: &str) -> Option<Delta> {
        if release.git.is_some() || from == release.id {
            return None;
        }
        let text = fs::read_to_string(release.store.release_manifest(from)).ok()?;
        let old = Manifest::parse(&text)?;
        let new = &release.manifest;
        let old_dirs = directories(&old);
        let new_dirs = directories(new);
        let conflict = new
            .entries
            .iter()
            .any(|e| old_dirs.contains(e.path.as_str()))
            || old
                .entries
                .iter()
                .any(|e| new_dirs.contains(e.path.as_str()));
        if conflict {
            return None;
        }
        let before: BTreeMap<&str, &EntryKind> = old
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.kind))
            .collect();
        let mut changed: Vec<Entry> = new
            .entries
            .iter()
            .filter(|e| before.get(e.path.as_str()) != Some(&&e.kind))
            .cloned()
            .collect();
        changed.push(manifest_entry(&new.canonical()));
        let changed = Manifest::new(changed);
        let kept: HashSet<&str> = new.entries.iter().map(|e| e.path.as_str()).collect();
        let paths: Vec<String> = changed.entries.iter().map(|e| e.path.clone()).collect();
        // What goes, named where its directory stays: a directory that goes
        // takes what is in it.
        let parent_stays = |path: &&str| {
            path.rsplit_once('/')
                .is_none_or(|(dir, _)| new_dirs.contains(dir))
        };
        let gone = old
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| !kept.contains(p))
            .chain(old_dirs.difference(&new_dirs).copied())
            .filter(parent_stays)
            .map(str::to_string)
            .collect();
        let top: HashSet<&str> = old
            .entries
            .iter()
            .map(|e| e.path.split('/').next().unwrap_or_default())
            .collect();
        Some(Delta {
            from: from.to_string(),
            top: top.len() + [MANIFEST_FILE, PROVENANCE_FILE].len(),
            changed,
            paths,
            gone,
        })
    }

    /// Gathers the files of the delta, at their paths, for one push of
    /// `release`: removed again when the push is done with them.
    pub fn gather(&self, release: &Release) -> Result<Gathered<'_>> {
        let dir = release.store.delta_dir(&release.id, &self.from);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
        }
        if release.secret {
            crate::interrupt::staged_secrets(&dir);
        }
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(".list");
        let gathered = Gathered {
            delta: self,
            list: dir.with_file_name(name),
            dir,
        };
        materialise_from(&gathered.dir, &self.changed, |path| {
            if path == MANIFEST_FILE {
                Source::Link(release.stage.join(MANIFEST_FILE))
            } else {
                Source::Link(release.local_path(path))
            }
        })?;
        let nul_ended: String = self.paths.iter().flat_map(|p| [p.as_str(), "\0"]).collect();
        write_atomically(&gathered.list, nul_ended.as_bytes())?;
        Ok(gathered)
    }
}

/// The files of a [`Delta`] gathered for a push, removed when dropped.
#[derive(Debug)]
pub struct Gathered<'d> {
    pub delta: &'d Delta,
    /// The files new or changed, and the release's manifest, at their
    /// paths: what is sent.
    pub dir: PathBuf,
    /// The delta's paths, each ended by a NUL, as rsync's `--files-from
    /// --from0` reads them.
    pub list: PathBuf,
}

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        crate::interrupt::remove_staged(&self.dir);
        let _ = fs::remove_file(&self.list);
    }
}

/// Every directory the entries of `manifest` are in.
fn directories(manifest: &Manifest) -> BTreeSet<&str> {
    let mut dirs = BTreeSet::new();
    for entry in &manifest.entries {
        let mut path = entry.path.as_str();
        while let Some((dir, _)) = path.rsplit_once('/') {
            if !dirs.insert(dir) {
                break;
            }
            path = dir;
        }
    }
    dirs
}
