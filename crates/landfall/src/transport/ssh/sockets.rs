//! Where the ssh transport keeps its masters' sockets: a directory of
//! this run's, and, for connections kept between runs, one of the user's
//! that must be theirs alone (ssh sends commands down any socket in it).
//! Socket paths must be short and plain for ssh to use them.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory of the user's kept master connections:
/// `$XDG_RUNTIME_DIR/landfall-ssh` (else `/tmp/landfall-ssh-UID`), made
/// private if it is not there. It is used only if it is a directory (not a
/// link) that belongs to the user, that nobody else may enter, and that
/// holds nothing of anyone else's: ssh would send commands down any socket
/// in it, so one planted by another user is refused, and so is the whole
/// directory.
fn persistent_dir(uid: u32) -> std::result::Result<PathBuf, String> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|base| short_and_plain(base))
        .map_or_else(
            || PathBuf::from(format!("/tmp/landfall-ssh-{uid}")),
            |base| base.join("landfall-ssh"),
        );
    match fs::DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(format!("cannot make `{}`: {err}", base.display())),
    }
    check_private(&base, uid)?;
    Ok(base)
}

/// The directory of kept master connections (see [`persistent_dir`]) of
/// the user whose run made `run_dir`, the run's own control directory,
/// which says who this user is; `None` if it cannot be read.
pub(super) fn persistent_dir_of(run_dir: &Path) -> Option<std::result::Result<PathBuf, String>> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = fs::metadata(run_dir).ok()?.uid();
    Some(persistent_dir(uid))
}

/// Whether `dir` is a directory of user `uid`'s alone, holding nothing of
/// anyone else's and no link; why not, if not.
pub(super) fn check_private(dir: &Path, uid: u32) -> std::result::Result<(), String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let shown = dir.display();
    let meta = fs::symlink_metadata(dir).map_err(|err| format!("cannot read `{shown}`: {err}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("`{shown}` is a link"));
    }
    if !meta.is_dir() {
        return Err(format!("`{shown}` is not a directory"));
    }
    if meta.uid() != uid {
        return Err(format!(
            "`{shown}` belongs to user id {}, not to this user ({uid})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("others may use `{shown}` (mode {mode:04o})"));
    }
    let entries = fs::read_dir(dir).map_err(|err| format!("cannot read `{shown}`: {err}"))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() != uid {
            return Err(format!(
                "`{}` belongs to user id {}: someone else put it there",
                path.display(),
                meta.uid()
            ));
        }
        if meta.file_type().is_symlink() {
            return Err(format!("`{}` is a link", path.display()));
        }
    }
    Ok(())
}

/// A base directory whose sockets' paths ssh can use: short, absolute, and
/// of letters, digits and `/._-` only.
pub(super) fn short_and_plain(base: &Path) -> bool {
    base.to_str().is_some_and(|text| {
        base.is_absolute()
            && text.len() + SOCKET_ROOM <= SOCKET_PATH_MAX + 20
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    })
}

/// A new directory for the master connections' sockets, which only this
/// user may enter, in the temporary directory. Its name is made fresh: a
/// directory of that name made by someone else is never used. Sockets need
/// short paths (about 100 bytes at most) that ssh reads as they are, so a
/// `TMPDIR` that is long, or holds anything but letters, digits and
/// `/._-`, is passed over for `/tmp`. `None` if none can be made: then
/// every connection is a connection of its own.
pub(super) fn control_dir() -> Option<PathBuf> {
    control_dir_in(&std::env::temp_dir()).or_else(|| control_dir_in(Path::new("/tmp")))
}

/// The room a socket's name needs in a control directory: `landfall-`, a
/// pid and a counter, `/`, and a socket's name (40 hex digits), plus ssh's own
/// suffix while it makes the socket.
pub(super) const SOCKET_ROOM: usize = 90;
pub(super) const SOCKET_PATH_MAX: usize = 104;

pub(super) fn control_dir_in(base: &Path) -> Option<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if !short_and_plain(base) {
        return None;
    }
    for _ in 0..100 {
        let dir = base.join(format!(
            "landfall-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Some(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_kept_connections_is_used_only_if_it_is_the_users_alone() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let root = tempfile::tempdir().unwrap();
        let uid = fs::metadata(root.path()).unwrap().uid();
        let dir = root.path().join("kept");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        assert_eq!(check_private(&dir, uid), Ok(()));
        fs::write(dir.join("socket-of-ours"), "").unwrap();
        assert_eq!(check_private(&dir, uid), Ok(()));

        // Another owner, a mode others may use, a link.
        let err = check_private(&dir, uid + 1).unwrap_err();
        assert!(err.contains("belongs to user id"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private(&dir, uid).unwrap_err();
        assert!(err.contains("others may use"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(check_private(&link, uid).unwrap_err().contains("is a link"));

        // Something of another user's inside: the whole directory is
        // refused (only root can do this to root, which the tests run as).
        if uid == 0 {
            let planted = dir.join("planted");
            fs::write(&planted, "").unwrap();
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
            let err = check_private(&dir, uid).unwrap_err();
            assert!(err.contains("someone else put it there"), "{err}");
        }
    }

    #[test]
    fn control_directories_are_new_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let a = control_dir().unwrap();
        let b = control_dir().unwrap();
        assert_ne!(a, b);
        for dir in [a, b] {
            let mode = fs::metadata(&dir).unwrap().permissions().mode();
            fs::remove_dir(&dir).unwrap();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
    }

    #[test]
    fn a_temporary_directory_sockets_cannot_use_is_passed_over() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(80)));
        assert!(control_dir_in(&long).is_none());
        assert!(control_dir_in(Path::new("/tmp/it's here")).is_none());
        assert!(control_dir_in(Path::new("relative")).is_none());
        let dir = control_dir_in(Path::new("/tmp")).unwrap();
        fs::remove_dir(&dir).unwrap();
    }
}
