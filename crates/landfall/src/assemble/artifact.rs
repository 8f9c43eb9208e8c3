//! An artifact's tree: its own files hashed (while cargo builds), its
//! binaries hashed once built, the links to its shared directories, and
//! the tree put into the store under its id, its files linked to the
//! store's objects. A git artifact's tree is [`super::git_tree`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::tree::{Source, materialise_from};
use super::{Entry, EntryKind, Manifest, Store};
use crate::config::{Artifact, BinTarget};
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::hash::HashCache;

/// An artifact tree in the store.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Assembled {
    pub artifact: String,
    /// The full blake3 hex of the manifest.
    pub id: String,
    #[serde(skip)]
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// True if the store already held this tree.
    pub reused: bool,
    /// For a git artifact: the commit and tree it comes from, and which
    /// entries do not (`files` and shared links, added on the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitTree>,
    /// Landfall wrote its bill of materials (`crate::sbom::SBOM_FILE`).
    #[serde(skip)]
    pub sbom: bool,
}

/// Where a git artifact's tree comes from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GitTree {
    /// The local repository holding the commit.
    #[serde(skip)]
    pub repository: PathBuf,
    pub commit: String,
    pub tree: String,
    #[serde(skip)]
    pub added: BTreeSet<String>,
}

/// Hashes `paths` as assembling does, with the stat-keyed cache kept in
/// the file `cache`, and returns how many files had to be read (the
/// others were known to the cache, unchanged).
pub fn hash_files(cache: &Path, paths: &[&Path]) -> Result<usize> {
    let mut hashes = HashCache::load(cache);
    hashes.hash_files(paths)?;
    hashes.save()?;
    Ok(hashes.files_read)
}

/// An artifact's own files (its `files`, less those a template replaces),
/// hashed. They do not depend on the build, so they are hashed while cargo
/// builds, and only the binaries wait for it.
#[derive(Debug)]
pub(crate) struct OwnFiles {
    entries: Vec<Entry>,
    sources: BTreeMap<String, PathBuf>,
}

/// Hashes an artifact's own files (see [`OwnFiles`]).
pub(crate) fn hash_own_files(artifact: &Artifact, cache: &mut HashCache) -> Result<OwnFiles> {
    // A file that a template replaces is not part of the artifact: the
    // release has the rendered one, and the artifact tree and a release's
    // own files never share a path.
    let inputs: Vec<(String, &Path, Option<u32>)> = artifact
        .files
        .iter()
        .filter(|f| !artifact.templates.iter().any(|t| t.dst == f.dst))
        .map(|f| (f.dst.clone(), f.src.as_path(), f.mode))
        .collect();
    let (entries, sources) = hash_inputs(&inputs, cache)?;
    Ok(OwnFiles {
        entries,
        sources: sources
            .into_iter()
            .map(|(dst, src)| (dst, src.to_path_buf()))
            .collect(),
    })
}

/// Hashes an artifact's binaries and makes sure its tree, with its own
/// files hashed before, is in the store.
pub(crate) fn assemble(
    store: &Store,
    artifact: &Artifact,
    own: OwnFiles,
    binaries: &BTreeMap<BinTarget, PathBuf>,
    sbom: &crate::sbom::Graph,
    cache: &mut HashCache,
) -> Result<Assembled> {
    let mut inputs: Vec<(String, &Path, Option<u32>)> = Vec::new();
    for bin in &artifact.bins {
        let path = binaries
            .get(bin)
            .ok_or_else(|| Error::Failed(format!("binary `{}` was not built", bin.name)))?;
        inputs.push((format!("bin/{}", bin.name), path, Some(0o755)));
    }
    let (mut entries, bins) = hash_inputs(&inputs, cache)?;
    let OwnFiles {
        entries: own_entries,
        mut sources,
    } = own;
    entries.extend(own_entries);
    entries.extend(shared_links(artifact));
    sources.extend(bins.into_iter().map(|(dst, src)| (dst, src.to_path_buf())));
    // The bill of materials is one of the artifact's files, so its id
    // covers it.
    let document = sbom.document(&artifact.name, &artifact.bins);
    if let Some(document) = &document {
        entries.push(Entry {
            path: crate::sbom::SBOM_FILE.to_string(),
            kind: EntryKind::File {
                mode: 0o644,
                size: document.len() as u64,
                hash: blake3::hash(document),
            },
        });
    }
    let manifest = Manifest::new(entries);
    let (id, dir, reused) = store_artifact(store, &manifest, |path| match &document {
        Some(document) if path == crate::sbom::SBOM_FILE => Source::Bytes(document),
        _ => Source::Copy(sources[path].clone()),
    })?;
    Ok(Assembled {
        artifact: artifact.name.clone(),
        id,
        dir,
        manifest,
        reused,
        git: None,
        sbom: document.is_some(),
    })
}

/// Hashes the files that go into an artifact (destination, source,
/// declared mode) into entries, with where each comes from.
pub(super) fn hash_inputs<'a>(
    inputs: &[(String, &'a Path, Option<u32>)],
    cache: &mut HashCache,
) -> Result<(Vec<Entry>, BTreeMap<String, &'a Path>)> {
    let paths: Vec<&Path> = inputs.iter().map(|(_, src, _)| *src).collect();
    let facts = cache.hash_files(&paths)?;
    let mut entries = Vec::with_capacity(inputs.len());
    let mut sources = BTreeMap::new();
    for ((dst, src, mode), facts) in inputs.iter().zip(&facts) {
        let mode = mode.unwrap_or(if facts.executable { 0o755 } else { 0o644 });
        entries.push(Entry {
            path: dst.clone(),
            kind: EntryKind::File {
                mode,
                size: facts.size,
                hash: facts.hash,
            },
        });
        sources.insert(dst.clone(), *src);
    }
    Ok((entries, sources))
}

/// The links from a release to the artifact's shared directories.
pub(super) fn shared_links(artifact: &Artifact) -> impl Iterator<Item = Entry> + '_ {
    artifact.shared.iter().map(|dir| Entry {
        path: dir.clone(),
        kind: EntryKind::Symlink {
            target: shared_link(dir),
        },
    })
}

/// A relative link from `<path>/releases/<id>/<dir>` to `<path>/shared/<dir>`.
pub(super) fn shared_link(dir: &str) -> String {
    let depth = dir.split('/').count() + 1;
    format!("{}shared/{dir}", "../".repeat(depth))
}

/// Puts an artifact tree into the store under its id unless it is there
/// already; returns the id, the directory and whether it was there.
pub(crate) fn store_artifact<'a>(
    store: &Store,
    manifest: &Manifest,
    source: impl Fn(&str) -> Source<'a>,
) -> Result<(String, PathBuf, bool)> {
    let id = manifest.id().to_hex().to_string();
    let dir = store.artifact_dir(&id);
    let reused = dir.is_dir();
    if !reused {
        // Copied files are kept as objects, which the tree links to.
        materialise_from(&dir, manifest, |path| match source(path) {
            Source::Copy(from) => Source::Stored(store, from),
            other => other,
        })?;
        write_atomically(
            &store.root.join("store").join(format!("{id}.manifest")),
            manifest.canonical().as_bytes(),
        )?;
    }
    Ok((id, dir, reused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_shared_links_climb_out_of_the_release() {
        assert_eq!(shared_link("var/log"), "../../../shared/var/log");
    }
}
