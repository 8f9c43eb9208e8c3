//! The host protocol: the steps that read and change a host, written once
//! as POSIX sh functions (`steps.sh`: the parts in `steps/sh/`, joined in
//! the order `steps/sh/parts.rs` gives) and run by every transport the same
//! way, as a script on the standard input of `sh -s`, locally or over ssh.
//!
//! A [`Step`] is one call, as a Rust value: this module defines them.
//! `call.rs` is the one translation of a step into a call of its function,
//! its arguments as named variables (`lf_path=...`); `library.rs` takes
//! the step functions apart, so that a script carries only those it needs;
//! [`Script`] (`script.rs`) is the steps for one host, and
//! [`Script::text`] the one place they become sh, every value quoted by
//! [`crate::process::quote`]. What a script reports is parsed into a
//! [`Reply`] (`reply.rs`), whose reports are read into what a host holds
//! (`state.rs`) and how an activation ended (`outcome.rs`). This module
//! runs nothing itself.
//!
//! ```text
//! Step ──Script::text──▶ "{ …; lf_path='/a b'; landfall_x; unset lf_path; … }"
//!                                    │ sh -s, locally or over ssh
//! Reply ◀──reply.rs───── "held\t0\t4f1c…" … exit 11
//! ```
//!
//! The parts of `steps.sh` each begin by saying what they hold:
//! `common.sh` (the lines every script opens with, how a step function
//! reads its arguments, the exit statuses), `probe.sh`, `lock.sh` (the
//! lock, who owns a path, the host's registry of locked paths, the log),
//! `release.sh` (the claim, the upload, the `build` hook, finalization),
//! `activate.sh` (the switch, hooks under `timeout`, the switch back),
//! `confirm.sh` (the host's watcher of an activation to be confirmed),
//! `service.sh` with `systemd.sh` and `supervisor.sh` (and `process.sh`,
//! the service under `--local`), `logs.sh`, `prune.sh` and `exec.sh`.

mod call;
mod library;
mod outcome;
mod reply;
mod script;
mod state;

pub(crate) use library::{Functions, LIBRARY_MISSING};
pub(crate) use outcome::{Activation, Revert};
pub(crate) use reply::{Exit, Report, Timer};
pub use reply::{Orphan, Reply, ServiceState};
pub use script::Script;
pub use state::{Claim, LogEntry, PathState};

/// One step on a host: a call of one function of `steps.sh` (see
/// `call.rs`). Paths are the artifact's directory on the host (see
/// [`crate::transport::Transport::host_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Reads each path (numbered in order): its current release, complete
    /// releases, lock and, with `detail`, each release's provenance and the
    /// log's tail; with `sbom`, the current release's bill of materials.
    Probe {
        detail: bool,
        sbom: bool,
        paths: Vec<String>,
    },
    /// Unless `release` is current and unlocked, takes the lock of the
    /// path numbered `index` for artifact `name` (project/artifact) and
    /// makes the directories a release needs; with no `release`, always.
    /// With `derive`, and that release current once the lock is held, the
    /// upload of `release` is made a copy of it (`landfall_derive`), so that
    /// the push sends only what differs.
    Claim {
        index: usize,
        path: String,
        release: Option<String>,
        owner: String,
        break_lock: bool,
        git: bool,
        name: String,
        derive: Option<Derive>,
        shared: Vec<String>,
        /// The token of the run whose rollout waits for promotion, which
        /// this run resumes: the lock that run kept is taken over.
        resume: Option<String>,
    },
    /// Takes the lock, or exits [`Exit::Locked`] or [`Exit::NotOwner`].
    Lock {
        path: String,
        owner: String,
        break_lock: bool,
        name: String,
    },
    /// Releases the lock if the run holding `token` holds it.
    Unlock { path: String, token: String },
    /// Keeps the lock the run holding `token` holds while its rollout
    /// waits for promotion: rewritten to `owner`, which says what waits.
    Wait {
        path: String,
        token: String,
        owner: String,
    },
    /// Takes over, for `owner`, the lock the run holding `token` kept while
    /// its rollout waits for promotion, or exits [`Exit::Locked`].
    TakeOver {
        path: String,
        owner: String,
        token: String,
        name: String,
    },
    /// Undoes the claim of a path that did not exist, by a run that goes no
    /// further: removes `dir`, the outermost directory the claim made, if
    /// the run holding `token` holds the lock.
    Forget {
        path: String,
        dir: String,
        token: String,
    },
    /// The directories a release needs; reports the current release.
    Prepare { path: String, shared: Vec<String> },
    /// The bare repository git releases are pushed to.
    GitInit { path: String },
    /// Checks a pushed tree out into the release's upload directory.
    Checkout {
        path: String,
        release: String,
        tree: String,
    },
    /// Makes the upload of `release` from an object store: each file
    /// hard-linked from `current` when it has the same content there, or
    /// fetched from its presigned URL with curl, at most `seconds` each,
    /// and checked against its sha256; symlinks made. The release's own
    /// files follow as [`Step::Put`]s.
    Pull {
        path: String,
        release: String,
        current: Option<String>,
        seconds: u64,
        entries: Vec<PullEntry>,
    },
    /// Writes a file into `dir` (its bytes travel in the script).
    Put {
        dir: String,
        name: String,
        mode: u32,
        bytes: Vec<u8>,
    },
    /// A symlink in `dir`.
    Link {
        dir: String,
        name: String,
        target: String,
    },
    /// Runs the `build` hook the upload recorded.
    Build {
        path: String,
        release: String,
        previous: Option<String>,
    },
    /// Records the provenance (one line of JSON) of a complete upload and
    /// gives it its name.
    Finalize {
        path: String,
        release: String,
        provenance: String,
    },
    /// Removes an upload that will not be activated.
    Discard { path: String, release: String },
    /// Prints a release's manifest.
    Manifest { path: String, release: String },
    /// Prints files of a release no bigger than `max` bytes.
    Files {
        path: String,
        release: String,
        max: u64,
        files: Vec<String>,
    },
    /// Runs the activation `release` recorded; with `revert`, a failure
    /// after the switch goes back to `previous` and runs what it recorded.
    /// With `confirm` (and `revert`), one that went well arms the host's
    /// watcher, which switches back unless a [`Step::Confirm`] comes in
    /// time; `log_ok` is then logged by that confirmation.
    Activate {
        path: String,
        release: String,
        previous: Option<String>,
        revert: bool,
        log_ok: String,
        log_back: String,
        confirm: Option<Arm>,
    },
    /// Confirms the activation of `release` (armed by [`Step::Activate`]
    /// with `confirm`), unless its watcher acted first; reports what the
    /// host's record says. With `only_read`, confirms nothing.
    Confirm {
        path: String,
        release: String,
        only_read: bool,
    },
    /// Switches back from `from` to `to` (or to nothing) and runs what
    /// `to` recorded.
    Back {
        path: String,
        from: String,
        to: Option<String>,
        log: String,
    },
    /// Removes releases beyond the `keep` most recently activated, never
    /// the current one nor `previous`.
    Cleanup {
        path: String,
        keep: usize,
        previous: Option<String>,
    },
    /// Prints the last `lines` lines of the log of the service the current
    /// release runs, each after its time: those since the current
    /// release's service started, or with `all_releases` those of every
    /// release, each release's led by the line where it started; with
    /// `follow` what it writes next, until stopped. Exits
    /// [`Exit::NoService`] if it runs none.
    ServiceLogs {
        path: String,
        lines: u32,
        follow: bool,
        all_releases: bool,
    },
    /// Runs the `once` hook `release` (complete, not current) recorded;
    /// exits [`Exit::PreActivateFailed`] if it fails.
    Once { path: String, release: String },
    /// Checks the activated `release` again (one try of `ready` and
    /// `health`); exits [`Exit::ActivationFailed`] if it is not well.
    Check { path: String, release: String },
    /// Reports every path this host's registry lists that holds releases of
    /// `project` for `env` and is not one of `known`.
    Orphans {
        project: String,
        env: String,
        known: Vec<String>,
    },
    /// Removes the orphan `path` (of `name`, project/artifact@env) under
    /// its lock, and its service if it is still the one it installed.
    Prune {
        path: String,
        owner: String,
        name: String,
    },
    /// A command given as words, each quoted, run from `/` with no input
    /// (what the tests of scripts run).
    #[cfg(test)]
    Command { words: Vec<String> },
    /// A command given as words, run by a person (`exec`, `run`): `start`
    /// appended to the log of each path of `logs` first (the command does
    /// not run where that fails), then the command run from `dir` (the
    /// home directory if none), with its errors with its output (unless on
    /// a terminal); then an entry of the host's time, `end` (the other
    /// fields of a JSON object, without its braces) and the command's exit
    /// status, appended to the same logs.
    Exec {
        dir: Option<String>,
        input: ExecInput,
        logs: Vec<String>,
        start: String,
        end: String,
        words: Vec<String>,
    },
}

/// What an activation to be confirmed arms on its host (see
/// [`Step::Activate`] and `confirm.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arm {
    /// How long the host waits to be confirmed, from the end of an
    /// activation that went well.
    pub(crate) seconds: u64,
    /// The run's lock token: the watcher releases the lock only if this
    /// run still holds it.
    pub(crate) token: String,
    /// The log line of the watcher's switch back (its time made the
    /// host's when it is written).
    pub(crate) log: String,
}

/// The release a claim makes an upload a copy of, if it is current (see
/// [`Step::Claim`]), and how many entries its directory has at its top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derive {
    pub(crate) from: String,
    pub(crate) top: usize,
    /// The paths of `from` the release lacks, removed from the copy.
    pub(crate) gone: Vec<String>,
}

/// One entry of a release pulled from an object store ([`Step::Pull`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullEntry {
    File {
        path: String,
        mode: u32,
        size: u64,
        blake3: String,
        sha256: String,
        /// The file's mtime, UTC, as `touch -t` reads it.
        mtime: String,
        /// A presigned GET of the object.
        url: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl PullEntry {
    /// Its line of `landfall_pull`'s list.
    fn line(&self) -> String {
        match self {
            PullEntry::File {
                path,
                mode,
                size,
                blake3,
                sha256,
                mtime,
                url,
            } => format!("file\t{mode:04o}\t{size}\t{blake3}\t{sha256}\t{mtime}\t{url}\t{path}\n"),
            PullEntry::Symlink { path, target } => format!("symlink\t{target}\t{path}\n"),
        }
    }
}

/// The standard input of a command run by [`Step::Exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecInput {
    Nothing,
    /// A file of this machine, the same on every host. It is never read
    /// into memory: the transport sends the script as the command of its
    /// shell (`sh -c`) and the file as its standard input, read as it is
    /// sent (see [`Script::input_file`]).
    File(std::path::PathBuf),
    /// The terminal the script was started on (`ssh -t`), as it is.
    Terminal,
}

/// Seconds for a hook's time limit, rounded up so that a sub-second
/// timeout still allows one try.
pub(crate) fn timeout_seconds(timeout: std::time::Duration) -> String {
    timeout.as_secs_f64().ceil().max(1.0).to_string()
}

/// Fails unless `text` parses as sh.
#[cfg(test)]
fn assert_parses_as_sh(text: &str) {
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", text])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
