//! A git artifact's tree: the tree of a commit read from git once per
//! tree id into the store (`store/git/<tree>/`, files and symlinks with
//! normalised modes and content-derived mtimes, and its manifest beside
//! it), and the artifact's tree made of it, with its `files` and shared
//! links on top, which hosts get from a checkout and what is added to it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::artifact::{hash_inputs, shared_links};
use super::tree::{Source, finish_file, partial_of};
use super::{Assembled, Entry, EntryKind, GitTree, Manifest, Store, store_artifact};
use crate::config::Artifact;
use crate::error::{Error, Result};
use crate::files::{self, write_atomically};
use crate::git::{self, TreeSource};
use crate::hash::HashCache;

/// Hashes a git artifact's inputs and makes sure its tree is in the store:
/// the files of `source`'s tree, with `files` on top (replacing files of
/// the same path) and links to shared directories.
pub(crate) fn assemble_git(
    store: &Store,
    artifact: &Artifact,
    repo: &Path,
    source: &TreeSource,
    cache: &mut HashCache,
) -> Result<Assembled> {
    let (tree_dir, tree_manifest) = git_tree(store, artifact, repo, &source.tree)?;
    let inputs: Vec<(String, &Path, Option<u32>)> = artifact
        .files
        .iter()
        .map(|f| (f.dst.clone(), f.src.as_path(), f.mode))
        .collect();
    let (files, copies) = hash_inputs(&inputs, cache)?;
    let added: BTreeMap<String, Entry> = files
        .into_iter()
        .chain(shared_links(artifact))
        .map(|e| (e.path.clone(), e))
        .collect();
    let manifest = with_added(artifact, tree_manifest, &added)?;
    let (id, dir, reused) = store_artifact(store, &manifest, |path| match copies.get(path) {
        Some(src) => Source::Copy(src.to_path_buf()),
        None => Source::Link(tree_dir.join(path)),
    })?;
    Ok(Assembled {
        artifact: artifact.name.clone(),
        id,
        dir,
        manifest,
        reused,
        git: Some(GitTree {
            repository: repo.to_path_buf(),
            commit: source.commit.clone(),
            tree: source.tree.clone(),
            added: added.into_keys().collect(),
        }),
        sbom: false,
    })
}

/// The git tree `tree` in the store, and its manifest: read from git once
/// per tree id, into `store/git/<tree>/` with its manifest beside it.
fn git_tree(
    store: &Store,
    artifact: &Artifact,
    repo: &Path,
    tree: &str,
) -> Result<(PathBuf, Manifest)> {
    let tree_dir = store.root.join("store").join("git").join(tree);
    let tree_manifest = match read_manifest(&tree_dir) {
        Some(manifest) => manifest,
        None => store_tree(&tree_dir, repo, tree).map_err(|err| match err {
            Error::Usage(message) => {
                Error::Usage(format!("artifact `{}`: {message}", artifact.name))
            }
            other => other,
        })?,
    };
    Ok((tree_dir, tree_manifest))
}

/// The tree's entries with `added` (`files` and shared links) over them,
/// unless one of the tree's directories would be a file or a link.
fn with_added(
    artifact: &Artifact,
    tree: Manifest,
    added: &BTreeMap<String, Entry>,
) -> Result<Manifest> {
    let mut entries: Vec<Entry> = tree
        .entries
        .into_iter()
        .filter(|e| !added.contains_key(&e.path))
        .collect();
    entries.extend(added.values().cloned());
    let manifest = Manifest::new(entries);
    if let Some((dir, inside)) = manifest.file_over_directory() {
        let (what, name) = if added.contains_key(dir) {
            ("is added by `files` or `shared`", dir)
        } else {
            ("holds files", inside)
        };
        return Err(Error::Usage(format!(
            "artifact `{}`: `{dir}` is a directory of the repository's tree and a file or link \
             of the artifact (`{name}` {what})",
            artifact.name
        )));
    }
    Ok(manifest)
}

/// The manifest stored beside a tree of the store, if it is complete.
fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(dir.with_extension("manifest")).ok()?;
    Manifest::parse(&text).filter(|_| dir.is_dir())
}

/// Reads a git tree into `dir` (files and symlinks, with normalised modes
/// and content-derived mtimes) and records its manifest beside it.
fn store_tree(dir: &Path, repo: &Path, tree: &str) -> Result<Manifest> {
    let listed = git::list_tree(repo, tree)?;
    if let Some(sub) = listed
        .iter()
        .find(|e| e.kind == git::TreeEntryKind::Submodule)
    {
        return Err(Error::Usage(format!(
            "`{}` is a submodule, and git artifacts deploy the tree of one repository",
            sub.path
        )));
    }
    // Manifests are tab-separated lines, and hosts get paths as shell words.
    if let Some(odd) = listed.iter().find(|e| e.path.chars().any(char::is_control)) {
        return Err(Error::Usage(format!(
            "`{}` has a control character (such as a tab or a newline) in its name",
            odd.path.escape_debug()
        )));
    }
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    files::create_dirs(&partial)?;
    let oids: Vec<&str> = listed.iter().map(|e| e.oid.as_str()).collect();
    let mut entries = Vec::with_capacity(listed.len());
    let mut failure = None;
    git::read_blobs(repo, &oids, |i, _size, blob| {
        let entry = &listed[i];
        let path = partial.join(&entry.path);
        let result = write_blob(&path, entry, blob);
        match result {
            Ok(kind) => entries.push(Entry {
                path: entry.path.clone(),
                kind,
            }),
            Err(err) => {
                failure = Some(err);
                return Err(io::Error::other("stopped"));
            }
        }
        Ok(())
    })
    .map_err(|err| failure.take().unwrap_or(Error::Process(err)))?;
    if let Some(err) = failure {
        return Err(err);
    }
    let manifest = Manifest::new(entries);
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))?;
    write_atomically(
        &dir.with_extension("manifest"),
        manifest.canonical().as_bytes(),
    )?;
    Ok(manifest)
}

/// Writes one blob of a tree: a file (hashed as it is written) or a
/// symlink (the blob is its target).
fn write_blob(path: &Path, entry: &git::TreeEntry, blob: &mut dyn io::Read) -> Result<EntryKind> {
    if let Some(parent) = path.parent() {
        files::create_dirs(parent)?;
    }
    match entry.kind {
        git::TreeEntryKind::Symlink => {
            let mut target = String::new();
            blob.read_to_string(&mut target)
                .map_err(Error::io("cannot read the link", path))?;
            std::os::unix::fs::symlink(&target, path)
                .map_err(Error::io("cannot create symlink", path))?;
            Ok(EntryKind::Symlink { target })
        }
        git::TreeEntryKind::File { executable } => {
            let mut file = fs::File::create(path).map_err(Error::io("cannot create", path))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = blob
                    .read(&mut buf)
                    .map_err(Error::io("cannot read", path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(Error::io("cannot write", path))?;
                size += n as u64;
            }
            let hash = hasher.finalize();
            let mode = if executable { 0o755 } else { 0o644 };
            finish_file(&file, path, mode, &hash)?;
            Ok(EntryKind::File { mode, size, hash })
        }
        git::TreeEntryKind::Submodule => unreachable!("submodules are refused before"),
    }
}
