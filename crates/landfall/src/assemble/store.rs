//! The store's directories under `target/landfall/` (artifact trees,
//! stages, the hash cache, the directories a push gathers its delta in)
//! and its objects: one file per content and mode, copied in once and
//! checked against its hash as it is copied, which every tree links to.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::tree::{finish_file, link_or_copy};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::files::{self, write_atomically};

/// The layout of the store and the stage. 2: every file's mtime is before
/// 2010-03 (see [`content_mtime`](super::content_mtime)), and every
/// directory's is 2001-09-09; layout 1 spread files' to 2035, and gave
/// directories the time they were made.
const STORE_LAYOUT: &str = "2";

/// Paths of landfall's local state under `target/landfall/`.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// The store of `project`'s workspace, in landfall's own directory,
    /// which is made private (it holds rendered secrets while they are
    /// staged).
    pub fn open(project: &Project) -> Result<Store> {
        let root = project.workspace.landfall_dir();
        files::private_dir(&root)?;
        let store = Store { root };
        store.upgrade()?;
        Ok(store)
    }

    /// Empties a store of an earlier layout (see [`STORE_LAYOUT`]): all it
    /// holds is made again from the workspace.
    fn upgrade(&self) -> Result<()> {
        let layout = self.root.join("layout");
        if fs::read_to_string(&layout).is_ok_and(|l| l.trim() == STORE_LAYOUT) {
            return Ok(());
        }
        for name in ["store", "stage"] {
            let dir = self.root.join(name);
            if !dir.exists() {
                continue;
            }
            // Out of the way at once, so that no run finds it half gone.
            let old = self.root.join(format!("{name}.old.{}", std::process::id()));
            fs::rename(&dir, &old).map_err(Error::io("cannot rename", &dir))?;
            fs::remove_dir_all(&old).map_err(Error::io("cannot remove", &old))?;
        }
        write_atomically(&layout, format!("{STORE_LAYOUT}\n").as_bytes())
    }

    pub fn artifact_dir(&self, id: &str) -> PathBuf {
        self.root.join("store").join(id)
    }

    pub fn stage_dir(&self, release: &str) -> PathBuf {
        self.root.join("stage").join(release)
    }

    /// The manifest of a release staged here, kept after its stage goes.
    pub fn release_manifest(&self, release: &str) -> PathBuf {
        self.root.join("stage").join(format!("{release}.manifest"))
    }

    /// Where the files a release adds to another are gathered for one
    /// push: a directory of its own, since hosts are pushed to at once.
    pub(super) fn delta_dir(&self, release: &str, from: &str) -> PathBuf {
        static PUSHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("delta")
            .join(format!("{release}-{from}.{}.{n}", std::process::id()))
    }

    pub fn hash_cache(&self) -> PathBuf {
        self.root.join("hash-cache")
    }

    /// The object holding `from`'s content with `mode`, copied into the
    /// store unless it is there already. The copy is hashed as it is made,
    /// so that a file changed since it was hashed never enters the store
    /// under the wrong name.
    fn object(&self, from: &Path, mode: u32, hash: &blake3::Hash) -> Result<PathBuf> {
        let path = self.object_path(mode, hash);
        if path.is_file() {
            return Ok(path);
        }
        let dir = path.parent().expect("objects are in a directory");
        files::create_dirs(dir)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut input = fs::File::open(from).map_err(Error::io("cannot read", from))?;
        let mut output = fs::File::create(&tmp).map_err(Error::io("cannot create", &tmp))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0; 1 << 16];
        loop {
            let n =
                io::Read::read(&mut input, &mut buffer).map_err(Error::io("cannot read", from))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            output
                .write_all(&buffer[..n])
                .map_err(Error::io("cannot write", &tmp))?;
        }
        if hasher.finalize() != *hash {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Failed(format!(
                "`{}` changed while it was being assembled; run the deploy again",
                from.display()
            )));
        }
        finish_file(&output, &tmp, mode, hash)?;
        fs::rename(&tmp, &path).map_err(Error::io("cannot rename", &tmp))?;
        Ok(path)
    }

    fn object_path(&self, mode: u32, hash: &blake3::Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root
            .join("store/objects")
            .join(&hex[..2])
            .join(format!("{}-{mode:o}", &hex[2..]))
    }

    /// Links `to` to the object holding `from`'s content with `mode`, made
    /// first if the store lacks it (see [`Store::object`]). Most objects
    /// are there already, so the link is tried first.
    pub(super) fn link_object(
        &self,
        from: &Path,
        mode: u32,
        hash: &blake3::Hash,
        to: &Path,
    ) -> Result<()> {
        if fs::hard_link(self.object_path(mode, hash), to).is_ok() {
            return Ok(());
        }
        link_or_copy(&self.object(from, mode, hash)?, to)
    }
}
