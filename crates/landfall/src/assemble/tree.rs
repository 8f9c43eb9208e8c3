//! Trees on this machine's disk: a tree written from its manifest, each
//! file from where a [`Source`] says (linked, copied, from the store or
//! rendered bytes), built beside its place and renamed into it, with
//! modes and content-derived mtimes set and every directory's mtime fixed;
//! and the links and copies that keep a file's mode and mtime.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::{EntryKind, Manifest, Store, content_mtime};
use crate::error::{Error, Result};
use crate::files;

/// Where [`materialise_from`] gets a file's bytes.
pub(crate) enum Source<'a> {
    /// A file of the store, already in its final form: hard-linked.
    Link(PathBuf),
    /// A file of the workspace or a bundle: copied, then given its mode and
    /// mtime.
    Copy(PathBuf),
    /// A file of the workspace kept as an object of the store (made from
    /// it if the store lacks it), which the tree links to.
    Stored(&'a Store, PathBuf),
    /// Rendered bytes, which may be secret: written to a private file.
    Bytes(&'a [u8]),
}

/// Builds a tree in `<dir>.partial`, each file from where `source` says,
/// and renames it into place.
pub(crate) fn materialise_from<'a>(
    dir: &Path,
    manifest: &Manifest,
    source: impl Fn(&str) -> Source<'a>,
) -> Result<()> {
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    files::create_dirs(&partial)?;
    // Most files share their directory with others: each is made once.
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for entry in &manifest.entries {
        let path = partial.join(&entry.path);
        if let Some(parent) = path.parent()
            && !dirs.contains(parent)
        {
            files::create_dirs(parent)?;
            dirs.insert(parent.to_path_buf());
        }
        let (mode, hash) = match &entry.kind {
            EntryKind::File { mode, hash, .. } => (*mode, hash),
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(Error::io("cannot create symlink", &path))?;
                continue;
            }
        };
        write_file(&path, mode, hash, source(&entry.path))?;
    }
    set_directory_times(&partial, &dirs)?;
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))
}

/// Writes the file `path` of a tree from `source`, with its mode and its
/// content-derived mtime.
fn write_file(path: &Path, mode: u32, hash: &blake3::Hash, source: Source<'_>) -> Result<()> {
    match source {
        Source::Link(from) => link_or_copy(&from, path)?,
        Source::Stored(store, from) => store.link_object(&from, mode, hash, path)?,
        Source::Copy(from) => {
            fs::copy(&from, path).map_err(Error::io("cannot copy", &from))?;
            let file = fs::File::options()
                .write(true)
                .open(path)
                .map_err(Error::io("cannot open", path))?;
            finish_file(&file, path, mode, hash)?;
        }
        Source::Bytes(bytes) => {
            // Private from the start: a rendered file may hold secrets,
            // and its final mode is set only once it is complete.
            let mut file = fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(Error::io("cannot create", path))?;
            file.write_all(bytes)
                .map_err(Error::io("cannot write", path))?;
            finish_file(&file, path, mode, hash)?;
        }
    }
    Ok(())
}

/// Gives `partial`, and every directory of it that holds files (`dirs`)
/// and those between, the same mtime.
fn set_directory_times(partial: &Path, dirs: &HashSet<PathBuf>) -> Result<()> {
    // Every directory gets the same mtime, before any release: a copy
    // keeps it (rsync `--times`), so that nothing in a release is newer
    // than the release unless it was changed on the host, whatever this
    // machine's clock says (see `landfall_derive`).
    let mut all: HashSet<&Path> = HashSet::new();
    for dir in dirs {
        let mut dir = dir.as_path();
        while dir.starts_with(partial) && all.insert(dir) {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
    all.insert(partial);
    for dir in all {
        fs::File::open(dir)
            .and_then(|d| d.set_modified(UNIX_EPOCH + Duration::from_secs(DIRECTORY_MTIME)))
            .map_err(Error::io("cannot set the time of", dir))?;
    }
    Ok(())
}

/// The mtime of every directory landfall makes a tree of, as seconds since
/// the epoch: 2001-09-09, the earliest of
/// [`content_mtime`](super::content_mtime)'s.
const DIRECTORY_MTIME: u64 = 1_000_000_000;

pub(super) fn partial_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Sets a file's content-derived mtime and its mode.
pub(crate) fn finish_file(
    file: &fs::File,
    path: &Path,
    mode: u32,
    hash: &blake3::Hash,
) -> Result<()> {
    let mtime = content_mtime(hash);
    file.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
        .map_err(Error::io("cannot set the time of", path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("cannot set the mode of", path))
}

/// Hard-links a file, or copies it (with its mode and mtime) where a link is
/// impossible, such as across file systems.
pub(crate) fn link_or_copy(source: &Path, dest: &Path) -> Result<()> {
    if fs::hard_link(source, dest).is_ok() {
        return Ok(());
    }
    copy_file(source, dest)
}

/// Copies a file with its mode and mtime.
pub(crate) fn copy_file(source: &Path, dest: &Path) -> Result<()> {
    fs::copy(source, dest).map_err(Error::io("cannot copy", source))?;
    let meta = fs::metadata(source).map_err(Error::io("cannot read", source))?;
    let file = fs::File::options()
        .write(true)
        .open(dest)
        .map_err(Error::io("cannot open", dest))?;
    file.set_modified(meta.modified().map_err(Error::io("cannot read", source))?)
        .map_err(Error::io("cannot set the time of", dest))
}
