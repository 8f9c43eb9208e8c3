//! Transports: how step scripts reach a host and how a staged release gets
//! there.
//!
//! A [`Transport`] runs step scripts (a [`Script`] of steps, answered by a [`Reply`]) and copies
//! staged trees; everything else about a deploy is the same whichever
//! transport is used. [`Local`] re-roots every host under
//! `target/landfall/local/ENV/HOST/` and needs neither ssh nor rsync;
//! [`Ssh`] uses the system's OpenSSH client and rsync, over one
//! `ControlMaster` per host.
//!
//! A transport runs a script within its deadline (or over a connection of
//! its own, not the one it keeps, to prove the host can be reached anew),
//! streams one with none
//! (a log followed, a command's output as it comes), attaches one to this
//! terminal (a pseudo-terminal on the host, as `ssh -t` gives), pushes a
//! release from what the host has ([`Basis`]), and counts each host's
//! round trips. A host keeps its own copy of the step library: the first
//! script sent to it expects that copy and carries only its calls; a host
//! that lacks it runs none of them and gets the script again with the
//! library, to keep. From then on every script to it is only calls.

mod local;
mod ssh;

pub use crate::steps::{Reply, Script};

/// Told the bytes a push has written so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// What a push of a release starts from on the host.
#[derive(Debug, Clone, Copy)]
pub enum Basis<'a> {
    /// Nothing: every file is sent.
    Nothing,
    /// A release of the host, by id: files unchanged since it are
    /// hard-linked from it.
    Release(&'a str),
    /// The upload is a copy of the delta's `from` already (made by the
    /// claim, `landfall_derive`): only the delta is sent, and what `from`
    /// has that the release lacks is removed.
    Derived(&'a Gathered<'a>),
}
use std::collections::BTreeMap;
use std::sync::Mutex;

pub use local::Local;
pub use ssh::{Ssh, SshOptions};

use crate::assemble::{EntryKind, Gathered, GitRelease, Manifest, Release};
use crate::error::Result;
use crate::plan::Target;
use crate::process::{self, Cmd, ProcessError};
use crate::steps::Functions;

/// The ref of a host's repository that holds the commit last pushed. It is
/// forced: history rewrites need no repair on the host.
const PUSHED_REF: &str = "refs/landfall/pushed";

/// Pushes a git release's commit to `url` (with `GIT_SSH_COMMAND` when the
/// host is remote). git sends only the objects the host does not have.
fn git_push(
    git: &GitRelease,
    url: &str,
    ssh_command: Option<String>,
    host: &str,
) -> Result<PushStats, ProcessError> {
    let mut cmd = Cmd::new("git")
        .arg("-C")
        .arg(&git.repository)
        .args([
            "push",
            "--force",
            "--progress",
            // The user's pre-push hooks guard their remotes, not this.
            "--no-verify",
            "--recurse-submodules=no",
            url,
        ])
        .arg(format!("{}:{PUSHED_REF}", git.commit))
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(ssh) = ssh_command {
        cmd = cmd
            .env("GIT_SSH_COMMAND", ssh)
            .env("GIT_SSH_VARIANT", "ssh");
    }
    let output = process::run(&cmd.in_own_process_group().for_host(host))?;
    Ok(parse_git_push(&output.stderr))
}

/// Reads the object count and size from git's progress on stderr: the
/// last `Writing objects: 100% (N/N), SIZE` line. Nothing written (the
/// host had everything) is zero objects.
fn parse_git_push(stderr: &[u8]) -> PushStats {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .split(['\r', '\n'])
        .filter_map(|line| line.trim().strip_prefix("Writing objects: 100% ("))
        .next_back();
    let (objects, bytes) = last
        .and_then(|rest| {
            let (count, rest) = rest.split_once('/')?;
            let size = rest.split_once("), ")?.1;
            let size = size.split(['|', ',']).next()?.trim();
            let (number, unit) = size.split_once(' ')?;
            let number: f64 = number.parse().ok()?;
            let scale = match unit {
                "bytes" => 1.0,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some((count.parse().ok()?, (number * scale) as u64))
        })
        .unwrap_or((0, 0));
    PushStats {
        files: 0,
        bytes,
        objects: Some(objects),
    }
}

/// What a push wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushStats {
    /// Files whose content was sent (unchanged ones are hard links).
    pub files: usize,
    /// Bytes sent: file content locally, everything rsync sent remotely;
    /// for git releases, the objects git sent and the files added on top.
    pub bytes: u64,
    /// For git releases: how many objects git sent (only those the host's
    /// repository did not have).
    pub objects: Option<u64>,
}

pub trait Transport: Sync {
    /// The directory that stands for `target.path` on its host.
    fn host_path(&self, target: &Target) -> String;

    /// Runs steps on a host and returns what they reported, whatever the
    /// script's exit status; an error means the host could not be reached.
    fn run(&self, host: &str, script: &Script) -> Result<Reply, ProcessError>;

    /// Runs steps on a host over a connection of their own, opened for
    /// them and closed after them: never the host's kept one, so that
    /// their answer proves the host can still be reached anew (a release
    /// that broke its sshd or its network cannot). The connection must be
    /// open within `connect`, and the steps then end within their
    /// deadline; it counts as a round trip. An error means the host could
    /// not be reached.
    fn run_over_new_connection(
        &self,
        host: &str,
        script: &Script,
        connect: std::time::Duration,
    ) -> Result<Reply, ProcessError>;

    /// Runs steps on a host with no deadline, handing each line they print
    /// to `line` as it comes (with its end of line, if it had one), until they end or `stop` says so (see
    /// `process::stream_lines`); for output that may not end, such as a
    /// service's log followed. The reply has the exit, and no reports.
    fn stream(
        &self,
        host: &str,
        script: &Script,
        stop: &(dyn Fn() -> bool + Sync),
        line: &mut dyn FnMut(&str),
    ) -> Result<Reply, ProcessError>;

    /// Runs steps on a host for the person at this terminal, who works
    /// with them (a pseudo-terminal on the host, as `ssh -t` gives), until
    /// they end; returns their exit status (`None`: a signal ended them).
    fn attach(&self, host: &str, script: &Script) -> Result<Option<i32>, ProcessError>;

    /// Copies a staged release into `<path>/releases/<id>.partial`, from
    /// what `basis` says is there.
    /// A git release's commit goes to `<path>/.landfall/repo.git` instead;
    /// the checkout is a step.
    ///
    /// `progress` is told, now and then, how many bytes the copy has
    /// written so far.
    fn push(
        &self,
        target: &Target,
        release: &Release,
        basis: Basis<'_>,
        progress: Progress<'_>,
    ) -> Result<PushStats>;

    /// How many round trips (commands and copies) each host has seen.
    fn round_trips(&self) -> BTreeMap<String, usize>;
}

/// Counts round trips per host.
#[derive(Debug, Default)]
struct RoundTrips(Mutex<BTreeMap<String, usize>>);

impl RoundTrips {
    fn count(&self, host: &str) {
        let mut map = self.0.lock().expect("no thread panics holding it");
        *map.entry(host.to_string()).or_default() += 1;
    }

    fn get(&self) -> BTreeMap<String, usize> {
        self.0.lock().expect("no thread panics holding it").clone()
    }
}

/// Which hosts keep the step library, so that a script need carry only
/// its calls (see [`Functions`]).
#[derive(Debug, Default)]
struct Libraries(Mutex<BTreeMap<String, bool>>);

impl Libraries {
    /// Runs `script` on `host` with `send`, which sends a script's text.
    /// It carries only its calls if the host keeps the library, or may
    /// (the first script to a host finds out); a host that lacks it runs
    /// none of them, and gets the script again with the library to keep.
    fn run(
        &self,
        host: &str,
        script: &Script,
        send: impl Fn(String) -> Result<Reply, ProcessError>,
    ) -> Result<Reply, ProcessError> {
        if self.kept(host) == Some(false) {
            return send(script.text_with(Functions::Inline));
        }
        let reply = send(script.text_with(Functions::Cached))?;
        if !reply.library_missing() {
            self.set(host, true);
            return Ok(reply);
        }
        let reply = send(script.text_with(Functions::Keep))?;
        self.set(host, !reply.library_unkept());
        Ok(reply)
    }

    /// How a script that cannot be sent twice (its input is a person's, or
    /// its output is handed on as it comes) gets its functions.
    fn functions(&self, host: &str) -> Functions {
        if self.kept(host) == Some(true) {
            Functions::Cached
        } else {
            Functions::Inline
        }
    }

    fn kept(&self, host: &str) -> Option<bool> {
        let map = self.0.lock().expect("no thread panics holding it");
        map.get(host).copied()
    }

    fn set(&self, host: &str, kept: bool) {
        let mut map = self.0.lock().expect("no thread panics holding it");
        map.insert(host.to_string(), kept);
    }
}

/// Files added, removed and changed between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

pub fn changes(old: &Manifest, new: &Manifest) -> Changes {
    let old: BTreeMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let new: BTreeMap<&str, &EntryKind> = new
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut out = Changes::default();
    for (path, kind) in &new {
        match old.get(path) {
            None => out.added.push((*path).to_string()),
            Some(old_kind) if old_kind != kind => out.changed.push((*path).to_string()),
            Some(_) => {}
        }
    }
    out.removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .map(|p| (*p).to_string())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_push_counts_come_from_its_last_progress_line() {
        let stderr = b"Enumerating objects: 9, done.\nWriting objects:  50% (3/6)\r\
                       Writing objects: 100% (6/6)\rWriting objects: 100% (6/6), 1.50 KiB | 1.50 MiB/s, done.\n\
                       Total 6 (delta 1), reused 0 (delta 0), pack-reused 0\n";
        let stats = parse_git_push(stderr);
        assert_eq!((stats.objects, stats.bytes), (Some(6), 1536));
        let small =
            parse_git_push(b"Writing objects: 100% (3/3), 290 bytes | 290.00 KiB/s, done.\n");
        assert_eq!((small.objects, small.bytes), (Some(3), 290));
        let nothing = parse_git_push(b"Everything up-to-date\n");
        assert_eq!((nothing.objects, nothing.bytes), (Some(0), 0));
    }
}
