//! A request to stop a run ([`Cancel`], which the binary makes when it
//! receives SIGINT or SIGTERM and which each run carries), and the files
//! that must not outlive the process.
//!
//! A fleet operation asked to stop starts no new work: what is in flight
//! on a host finishes there (the steps do not depend on the connection),
//! and the run settles as a failure would, `on_failure` included. The
//! rendered files that hold secrets, staged while a run needs them, are
//! registered here so that a second signal, which ends the process at
//! once, can still remove them.
//!
//! Before any work on a host is under way (see [`on_hosts`]), there is
//! nothing to settle: checking, rendering, building and assembling are
//! local, and a first signal ends them at once ([`end_unless_on_hosts`]),
//! with the build cargo runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A request to stop, shared by whoever may make it (a signal handler, a
/// caller's timeout) and the run it is for, which checks it before each
/// new piece of work, or waits on it. Clones are the same request.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<(Mutex<bool>, Condvar)>);

impl Cancel {
    /// Asks the run to stop as soon as it can.
    pub fn request(&self) {
        let (asked, changed) = &*self.0;
        *asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        changed.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        *self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits `time`, or less if a stop is asked for meanwhile; whether one
    /// was.
    pub fn wait(&self, time: Duration) -> bool {
        let (asked, changed) = &*self.0;
        let guard = asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = changed
            .wait_timeout_while(guard, time, |asked| !*asked)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard
    }
}

/// How many runs of work on hosts are under way. The signal handler holds
/// it while the process ends, so that none starts meanwhile.
static ON_HOSTS: Mutex<usize> = Mutex::new(0);

/// Runs `f`, work on hosts: a first signal asks it to stop and lets it
/// settle as a failure would, rather than ending the process.
pub fn on_hosts<T>(f: impl FnOnce() -> T) -> T {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            *ON_HOSTS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) -= 1;
        }
    }
    *ON_HOSTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    let _done = Done;
    f()
}

/// Unless work on hosts is under way, stops the local processes landfall
/// waits for (a build), removes the staged secrets and calls `end`, which
/// ends the process; no work on hosts starts meanwhile. Returns (only)
/// when work on hosts is under way.
pub fn end_unless_on_hosts(end: impl FnOnce()) {
    let on_hosts = ON_HOSTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *on_hosts > 0 {
        return;
    }
    crate::process::stop_local();
    remove_staged_secrets();
    end();
    drop(on_hosts);
}

static STAGED_SECRETS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Notes a staged directory that holds rendered secrets.
pub(crate) fn staged_secrets(dir: &Path) {
    let mut dirs = STAGED_SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !dirs.iter().any(|d| d == dir) {
        dirs.push(dir.to_path_buf());
    }
}

/// Removes a staged directory of secrets, and forgets it.
pub(crate) fn remove_staged(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    STAGED_SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|d| d != dir);
}

/// Removes every staged directory of secrets still there: for a process
/// about to end at once.
pub fn remove_staged_secrets() {
    let dirs = std::mem::take(
        &mut *STAGED_SECRETS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
