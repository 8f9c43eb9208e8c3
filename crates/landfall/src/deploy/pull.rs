//! Pull mode: the push of a release when the run has an object store.
//!
//! Before any host is pushed to, the store is made to hold every object of
//! the releases the run will upload, once for all hosts ([`prepare`]). Then
//! each host gets one step script ([`pull`]): the release's list (each
//! file's mode, size, blake3, sha256 and a presigned GET of its object),
//! which `landfall_pull` turns into `releases/<id>.partial`, and the
//! release's own files (rendered files, activation, manifest) inline, as a
//! git release's files added on top travel. Rendered files, which may hold
//! secrets, never go to the store. From there on the upload is what an
//! rsync push leaves, and the deploy goes on the same way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use super::{Run, Work, describe_failure};
use crate::assemble::{EntryKind, MANIFEST_FILE, Release, Store, content_mtime};
use crate::event::Event;
use crate::steps::{PullEntry, Step};
use crate::store::{Object, Remote, Sha256Index, transfer_time};
use crate::transport::PushStats;

/// The store of a run and the sha256 of every object its releases use.
pub(super) struct Pull<'a> {
    remote: &'a Remote,
    /// By blake3.
    sums: HashMap<blake3::Hash, String>,
}

/// The files of a release that come from the store: those of its
/// artifact, not its own.
fn objects_of(release: &Release) -> impl Iterator<Item = (&str, u32, u64, &blake3::Hash)> {
    release
        .manifest
        .entries
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File { mode, size, hash } if !release.rendered.contains(&entry.path) => {
                Some((entry.path.as_str(), *mode, *size, hash))
            }
            _ => None,
        })
}

/// Makes sure the store holds every object of `releases` (git releases
/// aside: they travel by git), each computed sha256 remembered for the
/// next run, and says what it put.
pub(super) fn prepare<'a>(
    run: &Run<'_>,
    remote: &'a Remote,
    releases: &[&Release],
) -> Result<Pull<'a>, String> {
    let store = Store::open(run.project).map_err(|err| format!("{err:#}"))?;
    let mut index = Sha256Index::open(&store);
    let mut sums = HashMap::new();
    let mut objects = Vec::new();
    let mut seen = BTreeSet::new();
    for release in releases.iter().filter(|r| r.git.is_none()) {
        if !seen.insert(release.id.as_str()) {
            continue;
        }
        for (path, _, size, hash) in objects_of(release) {
            if sums.contains_key(hash) {
                continue;
            }
            let local = release.local_path(path);
            let sha256 = index.sum(hash, &local).map_err(|err| format!("{err:#}"))?;
            sums.insert(*hash, sha256.clone());
            objects.push(Object {
                sha256,
                size,
                path: local,
            });
        }
    }
    // The sums are right whether or not the upload works.
    index.save().map_err(|err| format!("{err:#}"))?;
    let uploaded = remote.upload(&objects).map_err(|err| format!("{err:#}"))?;
    (run.events)(Event::Stored {
        store: remote.url.to_string(),
        objects: uploaded.objects,
        uploaded: uploaded.uploaded,
        bytes: uploaded.bytes,
    });
    Ok(Pull { remote, sums })
}

/// Makes the upload of a target's release on its host from the store, in
/// one round trip; the stats are what the host fetched from the store.
pub(super) fn pull(
    run: &Run<'_>,
    w: &Work<'_>,
    current: Option<&str>,
    pull: &Pull<'_>,
) -> Result<PushStats, String> {
    let release = w.release;
    let mut entries = Vec::new();
    let mut longest = Duration::ZERO;
    let mut allowed = Duration::ZERO;
    let mut fetched = HashSet::new();
    for entry in &release.manifest.entries {
        match &entry.kind {
            EntryKind::File { mode, size, hash } if !release.rendered.contains(&entry.path) => {
                let sha256 = pull
                    .sums
                    .get(hash)
                    .ok_or_else(|| format!("`{}` has no sha256: it was not stored", entry.path))?;
                let time = transfer_time(*size);
                longest = longest.max(time);
                if fetched.insert(hash) {
                    allowed += time;
                }
                let mtime = jiff::Timestamp::try_from(content_mtime(hash))
                    .map_err(|err| err.to_string())?
                    .strftime("%Y%m%d%H%M.%S")
                    .to_string();
                entries.push(PullEntry::File {
                    path: entry.path.clone(),
                    mode: *mode,
                    size: *size,
                    blake3: hash.to_hex().to_string(),
                    sha256: sha256.clone(),
                    mtime,
                    url: pull.remote.presign_get(&pull.remote.url.object_key(sha256)),
                });
            }
            EntryKind::File { .. } => {}
            EntryKind::Symlink { target } => entries.push(PullEntry::Symlink {
                path: entry.path.clone(),
                target: target.clone(),
            }),
        }
    }
    let partial = format!("{}/releases/{}.partial", w.path, release.id);
    let mut script = run.script(w.target).allowing(allowed).step(Step::Pull {
        path: w.path.clone(),
        release: release.id.clone(),
        current: current.map(str::to_string),
        seconds: longest.as_secs(),
        entries,
    });
    let own = release
        .rendered
        .iter()
        .map(String::as_str)
        .chain([MANIFEST_FILE]);
    for path in own {
        let staged = release.stage.join(path);
        let bytes = std::fs::read(&staged)
            .map_err(|err| format!("cannot read `{}`: {err}", staged.display()))?;
        let mode = match release.manifest.entries.iter().find(|e| e.path == path) {
            Some(crate::assemble::Entry {
                kind: EntryKind::File { mode, .. },
                ..
            }) => *mode,
            _ => 0o644,
        };
        script = script.step(Step::Put {
            dir: partial.clone(),
            name: path.to_string(),
            mode,
            bytes,
        });
    }
    let reply = run
        .transport
        .run(&w.target.host, &script)
        .map_err(|err| err.to_string())?;
    if !reply.success() {
        return Err(describe_failure(&reply));
    }
    let (files, bytes) = reply.pulled().unwrap_or_default();
    Ok(PushStats {
        files,
        bytes,
        objects: None,
    })
}
