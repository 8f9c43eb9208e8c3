//! [`Scoped`]: a test bed in a fresh temporary directory, stopped and
//! removed when it is dropped, which is how tests start hosts.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;

use crate::{Init, Testbed};

/// A test bed that is stopped and removed when dropped, for tests.
pub struct Scoped {
    pub testbed: Testbed,
    _dir: TempDir,
}

/// A temporary directory under the system's, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Scoped {
    /// Starts `count` plain hosts in a fresh temporary directory.
    pub fn up(count: usize) -> Result<Scoped> {
        Scoped::up_with(count, Init::Plain)
    }

    /// Starts `count` hosts run by `init` in a fresh temporary directory.
    pub fn up_with(count: usize, init: Init) -> Result<Scoped> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: ssh's control sockets live under paths derived from it.
        let dir = std::env::temp_dir().join(format!("lftb-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let guard = TempDir(dir.clone());
        let testbed = Testbed::up_with(&dir, count, init)?;
        Ok(Scoped {
            testbed,
            _dir: guard,
        })
    }
}

impl std::ops::Deref for Scoped {
    type Target = Testbed;
    fn deref(&self) -> &Testbed {
        &self.testbed
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        let _ = self.testbed.down();
    }
}
