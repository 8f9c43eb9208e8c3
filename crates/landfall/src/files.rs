//! Directories and files as landfall writes them on this machine: modes
//! that do not depend on the user's umask, and writes that readers never
//! see half done.
//!
//! A release's directories are `rwxr-xr-x` wherever they are made (the
//! store, the stage, a `--local` host; rsync sends them so), so that a
//! release looks the same on every host and no other user can write into
//! it. landfall's own directory, `target/landfall/`, is private: it holds
//! rendered secrets while a deploy stages them.
//!
//! Links get one rule each way. What landfall reads of the workspace
//! (`files`, templates, environments, secrets) follows a link only while it
//! stays inside the workspace ([`link_leaving`]); the files `init` writes
//! there are created new, never opened, through no link ([`write_new`]).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The mode of every directory landfall makes in a tree it stores, stages
/// or deploys.
pub(crate) const DIR_MODE: u32 = 0o755;

/// The mode of a file [`write_atomically`] creates.
const FILE_MODE: u32 = 0o644;

/// Creates `dir` and its missing parents, each `rwxr-xr-x` whatever the
/// umask. Directories that exist are left as they are.
pub(crate) fn create_dirs(dir: &Path) -> Result<()> {
    create_dir(dir, DIR_MODE)
}

/// Creates `dir` (its missing parents as [`create_dirs`] does) as
/// `rwx------`, and makes it so if it exists with more: landfall's own
/// directory, which only its user may enter.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    create_dir(dir, 0o700)?;
    let meta = fs::metadata(dir).map_err(Error::io("cannot read", dir))?;
    if meta.permissions().mode() & 0o077 != 0 {
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent, DIR_MODE)?;
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        // The umask may have taken bits away: the mode is set as such.
        Ok(()) => set_mode(dir, mode),
        // Made meanwhile by another thread or process.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(err) => Err(Error::io("cannot create", dir)(err)),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(Error::io("cannot set the mode of", path))
}

/// Writes a file through a temporary name and a rename, so that readers see
/// the old or the new content, never a part. A new file is `rw-r--r--`; a
/// file replaced keeps its mode, less any write permission for others.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let mode = fs::metadata(path).map_or(FILE_MODE, |m| m.permissions().mode() & 0o7755);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        io::Write::write_all(&mut file, bytes)?;
        file.set_permissions(fs::Permissions::from_mode(mode))
    };
    write().map_err(Error::io("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("cannot rename", &tmp))
}

/// The first link on the way from `root` down to `path` (`path` itself
/// included) that leads outside `root`, if any. A workspace's files are
/// read through links that stay inside it, as `files` sources are, and
/// through no other: what a link outside leads to is not the workspace's.
/// A link that leads nowhere is left to the read that follows, which fails.
pub(crate) fn link_leaving(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let inside = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut at = root.to_path_buf();
    for component in rel.components() {
        at.push(component);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
            && fs::canonicalize(&at).is_ok_and(|target| !target.starts_with(&inside))
        {
            return Some(at);
        }
    }
    None
}

/// Writes new files under `root`, each at a path relative to it, making
/// their directories, and follows no link doing so: if any of the paths,
/// or a directory on the way to one, is a link (even one that leads
/// nowhere), or a file is there already, nothing is written and the error
/// names it. Each file is created, never opened, so nothing that appears
/// meanwhile is written through either.
pub(crate) fn write_new(root: &Path, files: &[(PathBuf, &[u8])]) -> Result<()> {
    for (rel, _) in files {
        let mut at = root.to_path_buf();
        let mut shown = PathBuf::new();
        for component in rel.components() {
            at.push(component);
            shown.push(component);
            match fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::Usage(format!(
                        "`{}` is a link, which landfall does not write through; \
                         nothing was written",
                        shown.display()
                    )));
                }
                Ok(_) if shown == *rel => {
                    return Err(Error::Usage(format!(
                        "`{}` exists already; nothing was written",
                        rel.display()
                    )));
                }
                _ => {}
            }
        }
    }
    for (rel, bytes) in files {
        let path = root.join(rel);
        let mut dir = root.to_path_buf();
        for component in rel.parent().into_iter().flat_map(Path::components) {
            dir.push(component);
            match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => {}
                // A directory, not a link to one: mkdir does not follow.
                Err(err)
                    if err.kind() == io::ErrorKind::AlreadyExists
                        && fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) => {}
                Err(err) => return Err(Error::io("cannot create", &dir)(err)),
            }
        }
        // `O_CREAT | O_EXCL`: it fails on anything at the path, a link
        // that leads nowhere included, which it does not follow.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(Error::io("cannot create", &path))?;
        io::Write::write_all(&mut file, bytes).map_err(Error::io("cannot write", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directories_are_rwxr_xr_x_landfalls_own_private_and_writes_keep_modes() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dirs(&deep).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&root.path().join(dir)), DIR_MODE, "{dir}");
        }
        // An existing directory is the user's: left alone.
        let open = root.path().join("open");
        fs::create_dir(&open).unwrap();
        set_mode(&open, 0o777).unwrap();
        create_dirs(&open.join("x")).unwrap();
        assert_eq!(mode(&open), 0o777);
        assert_eq!(mode(&open.join("x")), DIR_MODE);

        let own = root.path().join("open/landfall");
        create_dirs(&own).unwrap();
        private_dir(&own).unwrap();
        assert_eq!(mode(&own), 0o700);
        private_dir(&root.path().join("new/landfall")).unwrap();
        assert_eq!(mode(&root.path().join("new/landfall")), 0o700);
        assert_eq!(mode(&root.path().join("new")), DIR_MODE);

        let file = root.path().join("d/file");
        write_atomically(&file, b"one").unwrap();
        assert_eq!(mode(&file), 0o644);
        set_mode(&file, 0o666).unwrap();
        write_atomically(&file, b"two").unwrap();
        assert_eq!(
            (fs::read(&file).unwrap(), mode(&file)),
            (b"two".to_vec(), 0o644)
        );
        set_mode(&file, 0o600).unwrap();
        write_atomically(&file, b"three").unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
