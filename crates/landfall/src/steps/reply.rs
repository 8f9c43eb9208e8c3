//! What a host's steps report: each tab-separated line of a script's
//! standard output parsed into a [`Report`], and the exit status into an
//! [`Exit`]. Nothing else reads a step's output, except the raw bytes of
//! `landfall_manifest` and `landfall_files`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::assemble::Provenance;
use crate::process::Output;

/// How a script ended, as `steps.sh` documents its exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Done,
    /// Another deploy holds the lock (`landfall_lock`).
    Locked,
    /// The path holds another artifact's releases (`landfall_lock`).
    NotOwner,
    /// `pre_activate` failed; `current` was not touched.
    PreActivateFailed,
    /// `activate` or `health` failed after the switch.
    ActivationFailed,
    /// The `build` hook failed; the upload was removed.
    BuildFailed,
    /// The current release runs no service (`landfall_service_logs`).
    NoService,
    /// Anything else: an unexpected error (70), a script cut short, sh
    /// missing, or a signal (`None`).
    Other(Option<i32>),
}

impl Exit {
    fn of(code: Option<i32>) -> Exit {
        match code {
            Some(0) => Exit::Done,
            Some(3) => Exit::Locked,
            Some(4) => Exit::NotOwner,
            Some(10) => Exit::PreActivateFailed,
            Some(11) => Exit::ActivationFailed,
            Some(12) => Exit::BuildFailed,
            Some(13) => Exit::NoService,
            other => Exit::Other(other),
        }
    }
}

/// One line a step reported. `index` numbers the paths of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    Current {
        index: usize,
        release: Option<String>,
    },
    Release {
        index: usize,
        release: String,
    },
    /// A release's provenance, as recorded (`None`: not valid JSON).
    Provenance {
        index: usize,
        release: String,
        provenance: Option<Provenance>,
    },
    Lock {
        index: usize,
        holder: String,
    },
    /// The release the log's last line switched to (`None`: to no release).
    Confirmed {
        index: usize,
        release: Option<String>,
    },
    /// A line of the log (one that is not valid JSON is dropped).
    Log {
        index: usize,
        entry: LogEntry,
    },
    Held {
        index: usize,
        current: Option<String>,
    },
    Busy {
        index: usize,
        holder: String,
    },
    Unclaimed {
        index: usize,
        reason: String,
    },
    /// The claim made the path: this directory (the path or a parent) did
    /// not exist before.
    Created {
        index: usize,
        dir: String,
    },
    /// `landfall_lock` found the lock held: its first line.
    Locked {
        holder: String,
    },
    Unlocked,
    /// `landfall_prepare`: the current release, as read under the lock.
    Prepared {
        current: Option<String>,
    },
    /// `landfall_pull`: the files fetched from the store, and their bytes.
    Pulled {
        files: usize,
        bytes: u64,
    },
    /// `landfall_derive`: the upload is a copy of the current release, or
    /// (`Some`) why not.
    Derived {
        index: usize,
        refused: Option<String>,
    },
    Hook {
        name: String,
    },
    /// A hook was stopped at its time limit.
    Timeout {
        hook: String,
        seconds: String,
    },
    /// A release that recorded no activation: no hook ran for it.
    Unrecorded {
        release: String,
    },
    /// A line could not be appended to this log (a full disk, or a link
    /// landfall did not make).
    Unlogged {
        log: String,
    },
    Switched {
        release: String,
    },
    Activated {
        release: String,
    },
    /// A hook failed: `build`, `pre_activate`, `activate` or `health`.
    Failed {
        step: String,
    },
    /// Switched back to a release (`None`: `current` removed).
    Reverted {
        to: Option<String>,
    },
    RevertFailed {
        step: String,
    },
    Removed {
        release: String,
    },
    /// The state of the service the current release of a path runs.
    Service {
        index: usize,
        state: ServiceState,
    },
    /// A service was (re)started, or reloaded, with the definition of the
    /// release switched to.
    Restarted {
        name: String,
        reloaded: bool,
    },
    /// A service that the release switched to no longer runs was stopped
    /// and its definition removed.
    ServiceRemoved {
        name: String,
    },
    /// What the manager said of a service after a step failed
    /// (`landfall_service_cause`): `state` is `running`, `down`, `gave-up`
    /// or `unknown`, `words` the manager's own.
    Verdict {
        manager: String,
        state: String,
        words: String,
    },
    /// The lines of the service's own log that follow come from here.
    ServiceLog {
        from: String,
    },
    ServiceLogLine {
        line: String,
    },
    /// The service's log could not be read, and why.
    ServiceLogUnread {
        from: String,
        why: String,
    },
    /// A path that holds releases of an artifact the model no longer
    /// deploys there (`landfall_orphans`).
    Orphan(Orphan),
    /// An orphan's path was removed (`landfall_prune`).
    Pruned {
        path: String,
    },
    /// An orphan's service was left alone: another path installed a
    /// service of that name since.
    KeptService {
        name: String,
    },
}

/// A directory on a host that holds releases of an artifact of this
/// project and environment, which the model no longer deploys there: the
/// artifact left `deploy.toml`, or its `path` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Orphan {
    pub path: String,
    pub artifact: String,
    pub current: Option<String>,
    /// The service its current release runs: `MANAGER NAME`.
    pub service: Option<String>,
}

/// What the service manager says of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ServiceState {
    /// `systemd`, `systemd-user`, `supervisor`, or `process` (`--local`).
    pub manager: String,
    pub name: String,
    /// As the manager says it: `active (running)`, `failed (failed)`,
    /// `RUNNING`, `FATAL`, `running`, `stopped`…
    pub state: String,
    pub pid: Option<u32>,
    /// Since when it is in that state, as the manager says it.
    pub since: Option<String>,
}

impl ServiceState {
    /// Whether the manager says it runs.
    pub fn running(&self) -> bool {
        let state = self.state.to_ascii_lowercase();
        state.starts_with("active") || state == "running"
    }
}

fn some(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

impl Report {
    /// Parses one line; `None` for anything that is no report.
    fn parse(line: &str) -> Option<Report> {
        let fields: Vec<&str> = line.split('\t').collect();
        let index = || fields.get(1)?.parse::<usize>().ok();
        // The value after the index: everything else on the line.
        let rest = |n: usize| line.splitn(n + 1, '\t').nth(n).unwrap_or("");
        Some(match fields[0] {
            "current" if fields.len() >= 3 => Report::Current {
                index: index()?,
                release: some(rest(2)),
            },
            "release" => Report::Release {
                index: index()?,
                release: rest(2).to_string(),
            },
            "provenance" => Report::Provenance {
                index: index()?,
                release: fields.get(2)?.to_string(),
                provenance: serde_json::from_str(rest(3)).ok(),
            },
            "confirmed" => Report::Confirmed {
                index: index()?,
                release: some(rest(2)),
            },
            "lock" => Report::Lock {
                index: index()?,
                holder: rest(2).to_string(),
            },
            "log" => Report::Log {
                index: index()?,
                entry: serde_json::from_str(rest(2)).ok()?,
            },
            "held" => Report::Held {
                index: index()?,
                current: some(rest(2)),
            },
            "busy" => Report::Busy {
                index: index()?,
                holder: rest(2).to_string(),
            },
            "unclaimed" => Report::Unclaimed {
                index: index()?,
                reason: rest(2).trim().to_string(),
            },
            "created" => Report::Created {
                index: index()?,
                dir: rest(2).to_string(),
            },
            "locked" => Report::Locked {
                holder: rest(1).to_string(),
            },
            "unlocked" => Report::Unlocked,
            "prepared" => Report::Prepared {
                current: some(rest(1)),
            },
            "pulled" => Report::Pulled {
                files: fields.get(1)?.parse().ok()?,
                bytes: fields.get(2)?.parse().ok()?,
            },
            "derived" => Report::Derived {
                index: index()?,
                refused: None,
            },
            "underived" => Report::Derived {
                index: index()?,
                refused: Some(rest(2).to_string()),
            },
            "hook" => Report::Hook {
                name: rest(1).to_string(),
            },
            "timeout" => Report::Timeout {
                hook: fields.get(1)?.to_string(),
                seconds: fields.get(2)?.to_string(),
            },
            "unrecorded" => Report::Unrecorded {
                release: rest(1).to_string(),
            },
            "unlogged" => Report::Unlogged {
                log: rest(1).to_string(),
            },
            "switched" => Report::Switched {
                release: rest(1).to_string(),
            },
            "activated" => Report::Activated {
                release: rest(1).to_string(),
            },
            "failed" => Report::Failed {
                step: rest(1).to_string(),
            },
            "reverted" => Report::Reverted { to: some(rest(1)) },
            "revert-failed" => Report::RevertFailed {
                step: rest(1).to_string(),
            },
            "removed" => Report::Removed {
                release: rest(1).to_string(),
            },
            "service" => Report::Service {
                index: index()?,
                state: ServiceState {
                    manager: fields.get(2)?.to_string(),
                    name: fields.get(3)?.to_string(),
                    state: fields.get(4)?.to_string(),
                    pid: fields.get(5).and_then(|p| p.parse().ok()),
                    since: fields.get(6).and_then(|s| some(s.trim())),
                },
            },
            "restarted" => Report::Restarted {
                name: rest(1).to_string(),
                reloaded: false,
            },
            "reloaded" => Report::Restarted {
                name: rest(1).to_string(),
                reloaded: true,
            },
            "removed-service" => Report::ServiceRemoved {
                name: rest(1).to_string(),
            },
            "verdict" => Report::Verdict {
                manager: fields.get(1)?.to_string(),
                state: fields.get(2)?.to_string(),
                words: rest(3).to_string(),
            },
            "service-log" => Report::ServiceLog {
                from: rest(1).to_string(),
            },
            "service-log-line" => Report::ServiceLogLine {
                line: rest(1).to_string(),
            },
            "service-log-unread" => Report::ServiceLogUnread {
                from: fields.get(1)?.to_string(),
                why: rest(2).to_string(),
            },
            "orphan" => Report::Orphan(Orphan {
                path: fields.get(1)?.to_string(),
                artifact: fields.get(2)?.to_string(),
                current: fields.get(3).and_then(|c| some(c)),
                service: fields.get(4).and_then(|s| some(s)),
            }),
            "pruned" => Report::Pruned {
                path: rest(1).to_string(),
            },
            "kept-service" => Report::KeptService {
                name: rest(1).to_string(),
            },
            _ => return None,
        })
    }
}

/// What a script did on a host: its exit, its reports, and its output.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) exit: Exit,
    pub(crate) reports: Vec<Report>,
    pub(crate) output: Output,
}

impl From<Output> for Reply {
    fn from(output: Output) -> Reply {
        let reports = output
            .stdout_text()
            .lines()
            .filter_map(Report::parse)
            .collect();
        Reply {
            exit: Exit::of(output.code),
            reports,
            output,
        }
    }
}

impl Reply {
    /// The files `landfall_files` printed, by name: each a `file NAME
    /// SIZE` line and its bytes; `skip NAME` names one it did not send.
    pub(crate) fn files(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut out: &[u8] = &self.output.stdout;
        let mut files = std::collections::BTreeMap::new();
        while let Some(end) = out.iter().position(|&b| b == b'\n') {
            let header = String::from_utf8_lossy(&out[..end]).into_owned();
            out = &out[end + 1..];
            // Lines tagged "skip" name a file too large to send.
            let Some(("file", rest)) = header.split_once('\t') else {
                continue;
            };
            let Some((name, size)) = rest.rsplit_once('\t') else {
                break;
            };
            let Ok(size) = size.parse::<usize>() else {
                break;
            };
            if out.len() < size {
                break;
            }
            files.insert(name.to_string(), out[..size].to_vec());
            out = &out[size..];
        }
        files
    }
}

/// Every tag a line of a reply begins with, as the host steps print them:
/// each is parsed here, [`Report::parse`]'s or [`Reply::files`]'s.
#[cfg(test)]
const TAGS: &[&str] = &[
    "activated",
    "busy",
    "confirmed",
    "created",
    "current",
    "derived",
    "failed",
    "file",
    "held",
    "hook",
    "kept-service",
    "lock",
    "locked",
    "log",
    "orphan",
    "prepared",
    "provenance",
    "pruned",
    "pulled",
    "release",
    "reloaded",
    "removed",
    "removed-service",
    "restarted",
    "revert-failed",
    "reverted",
    "service",
    "service-log",
    "service-log-line",
    "service-log-unread",
    "skip",
    "switched",
    "timeout",
    "unclaimed",
    "underived",
    "unlocked",
    "unlogged",
    "unrecorded",
    "verdict",
];

/// What a host holds for one artifact path.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct PathState {
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<String>,
    /// Each release's provenance, where it recorded one.
    #[serde(skip)]
    pub provenance: std::collections::BTreeMap<String, Provenance>,
    pub log: Vec<LogEntry>,
    pub lock: Option<String>,
    /// The release the log last confirmed running (`Some(None)`: none),
    /// if there is a log.
    #[serde(skip)]
    pub confirmed: Option<Option<String>>,
    /// What `landfall_claim` did, when the probe asked for the lock.
    #[serde(skip)]
    pub claim: Option<Claim>,
    /// The service the current release runs, when the probe asked for
    /// detail.
    #[serde(skip)]
    pub service: Option<ServiceState>,
}

/// The outcome of `landfall_claim` for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lock is held by this run; `current` as read under it, and the
    /// outermost directory the claim made, for a path that did not exist.
    Held {
        current: Option<String>,
        created: Option<String>,
        /// The upload is a copy of `current` (see `landfall_derive`).
        derived: bool,
    },
    /// Another deploy holds the lock: its lock line.
    Busy(String),
    /// The lock or the directories could not be made: why.
    Unclaimed(String),
}

/// One line of `.landfall/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogEntry {
    pub time: String,
    /// `activated` (a deploy), `rolled_back` (switched back when an
    /// activation failed), `rollback` (`cargo deploy rollback`),
    /// `reactivated` (`--force`), `exec` (a command about to run on the
    /// host, logged before it starts) or `exec_end` (how that command
    /// ended, with the same `id`).
    pub event: String,
    pub env: String,
    pub artifact: String,
    /// The release switched to.
    pub release: Option<String>,
    /// The release switched from.
    pub previous: Option<String>,
    pub user: String,
    /// The machine landfall ran on.
    pub from: String,
    /// The commit the release switched to was built from.
    pub revision: Option<String>,
    /// For `exec` (a command a person ran with `exec` or the shell): the
    /// command, secrets masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For `exec_end`: the command's exit status (the shell's, 128 and
    /// the signal's number, if a signal ended it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// For `exec` and `exec_end`: the same for both entries of one
    /// command, on every host it ran on. An `exec` with no `exec_end` of
    /// its id is a command that ended the shell which ran it, or is still
    /// running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The run that made the change (see
    /// [`Identity::deploy`](crate::deploy::Identity::deploy)): every host a
    /// deploy or a rollback changed records the same. Entries written
    /// before runs had ids have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// For `rollback`: the deploys it undid, which a later rollback goes
    /// back past.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undoes: Vec<String>,
}

impl LogEntry {
    /// Whether it records a change of the release (not a command run).
    pub(crate) fn is_change(&self) -> bool {
        !self.event.starts_with("exec")
    }
}

/// How an activation ended on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Activation {
    Activated,
    /// Before the switch, `pre_activate` failed or the service manager
    /// cannot be used (`step` is `service`); `current` was not touched.
    PreActivateFailed {
        step: String,
    },
    /// `activate` or `health` failed after the switch.
    Failed {
        step: String,
        revert: Revert,
    },
}

/// Why a service did not run, as its host reported it after a step
/// failed: what its manager said, and the end of its own log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cause {
    /// `systemd`, `systemd-user`, `supervisor`, or `process` (`--local`).
    pub(crate) manager: String,
    /// `running`, `down` (the manager will start it again), `gave-up`, or
    /// `unknown` (the manager did not answer).
    pub(crate) state: String,
    /// The manager's own words: `failed (Result: start-limit-hit)`,
    /// `FATAL Exited too quickly`, `exited with status 1`…
    pub(crate) words: String,
    /// Where its log was read (a file, or the `journalctl` command).
    pub(crate) log_from: Option<String>,
    pub(crate) log: Vec<String>,
    /// Why the log could not be read, if it could not.
    pub(crate) unread: Option<String>,
}

impl Cause {
    /// Whether the manager gave up on the service: it will not run again
    /// unless started anew.
    pub(crate) fn gave_up(&self) -> bool {
        self.state == "gave-up"
    }

    /// A first line with the manager's verdict, then the log's last lines.
    fn describe(&self) -> String {
        let manager = match self.manager.as_str() {
            "systemd" => "systemd",
            "systemd-user" => "the user's systemd",
            "supervisor" => "supervisord",
            _ => "the service's process",
        };
        let words = &self.words;
        let mut text = match (self.state.as_str(), self.manager.as_str()) {
            ("gave-up", "process") => format!("the service's process is gone: it {words}"),
            ("gave-up", _) => format!("{manager} gave up on the service: {words}"),
            ("down", _) => format!("the service is not running ({manager}: {words})"),
            ("running", _) => format!("{manager} says the service runs: {words}"),
            _ => format!("{manager} did not say what became of the service ({words})"),
        };
        if let Some(why) = &self.unread {
            let from = self.log_from.as_deref().unwrap_or("its log");
            let _ = write!(text, "\nits log cannot be read (`{from}`): {why}");
        } else if let Some(from) = &self.log_from {
            let lines: Vec<&str> = self
                .log
                .iter()
                .map(String::as_str)
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.is_empty() {
                let _ = write!(text, "\nits log (`{from}`) is empty");
            } else {
                let _ = write!(text, "\nthe last lines of its log (`{from}`):");
                for line in lines {
                    text.push('\n');
                    text.push_str(line);
                }
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revert {
    /// Not asked to switch back.
    NotAttempted,
    /// Back on the previous release (or on none, if there was none) and,
    /// as far as its own activate and health tell, working.
    Done { to: Option<String> },
    /// Switched back, but activate or health failed there too.
    Failed { to: Option<String>, step: String },
}

impl Reply {
    /// The host lacks the step library the script expected it to keep, and
    /// ran none of the steps (see [`super::Functions::Cached`]).
    pub(crate) fn library_missing(&self) -> bool {
        self.output.code == Some(super::LIBRARY_MISSING) && self.said("library\tmissing")
    }

    /// The host could not keep the step library it was sent (see
    /// [`super::Functions::Keep`]); the steps ran all the same.
    pub(crate) fn library_unkept(&self) -> bool {
        self.said("library\tunkept")
    }

    fn said(&self, line: &str) -> bool {
        self.output.stdout_text().lines().any(|l| l == line)
    }

    pub(crate) fn success(&self) -> bool {
        self.exit == Exit::Done
    }

    /// The state of each of `count` probed paths.
    pub(crate) fn states(&self, count: usize) -> Vec<PathState> {
        let mut states = vec![PathState::default(); count];
        for report in &self.reports {
            let index = match report {
                Report::Current { index, .. }
                | Report::Release { index, .. }
                | Report::Provenance { index, .. }
                | Report::Log { index, .. }
                | Report::Lock { index, .. }
                | Report::Confirmed { index, .. }
                | Report::Held { index, .. }
                | Report::Busy { index, .. }
                | Report::Unclaimed { index, .. }
                | Report::Created { index, .. }
                | Report::Derived { index, .. }
                | Report::Service { index, .. } => *index,
                _ => continue,
            };
            let Some(state) = states.get_mut(index) else {
                continue;
            };
            match report.clone() {
                Report::Current { release, .. } => state.current = release,
                Report::Release { release, .. } => state.releases.push(release),
                Report::Provenance {
                    release,
                    provenance: Some(provenance),
                    ..
                } => {
                    state.provenance.insert(release, provenance);
                }
                Report::Log { entry, .. } => state.log.push(entry),
                Report::Lock { holder, .. } => state.lock = Some(holder),
                Report::Confirmed { release, .. } => state.confirmed = Some(release),
                Report::Held { current, .. } => {
                    state.claim = Some(Claim::Held {
                        current,
                        created: None,
                        derived: false,
                    });
                }
                Report::Created { dir, .. } => {
                    if let Some(Claim::Held { created, .. }) = &mut state.claim {
                        *created = Some(dir);
                    }
                }
                Report::Derived { refused, .. } => {
                    if let Some(Claim::Held { derived, .. }) = &mut state.claim {
                        *derived = refused.is_none();
                    }
                }
                Report::Busy { holder, .. } => state.claim = Some(Claim::Busy(holder)),
                Report::Unclaimed { reason, .. } => state.claim = Some(Claim::Unclaimed(reason)),
                Report::Service { state: service, .. } => state.service = Some(service),
                _ => {}
            }
        }
        states
    }

    /// What `landfall_prepare` read: `Some(current)` if it ran.
    #[allow(
        clippy::option_option,
        reason = "whether the step ran, and the current release it found if any"
    )]
    pub(crate) fn prepared(&self) -> Option<Option<String>> {
        self.reports.iter().find_map(|r| match r {
            Report::Prepared { current } => Some(current.clone()),
            _ => None,
        })
    }

    /// What `landfall_pull` fetched: files and bytes.
    pub(crate) fn pulled(&self) -> Option<(usize, u64)> {
        self.reports.iter().find_map(|r| match r {
            Report::Pulled { files, bytes } => Some((*files, *bytes)),
            _ => None,
        })
    }

    /// Who holds the lock that `landfall_lock` could not take.
    pub(crate) fn locked_by(&self) -> Option<&str> {
        self.reports.iter().find_map(|r| match r {
            Report::Locked { holder } => Some(holder.as_str()),
            _ => None,
        })
    }

    pub(crate) fn unlocked(&self) -> bool {
        self.reports.contains(&Report::Unlocked)
    }

    /// The orphans `landfall_orphans` reported.
    pub(crate) fn orphans(&self) -> Vec<Orphan> {
        self.reports
            .iter()
            .filter_map(|r| match r {
                Report::Orphan(orphan) => Some(orphan.clone()),
                _ => None,
            })
            .collect()
    }

    /// The releases `landfall_cleanup` removed.
    pub(crate) fn removed(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter_map(|r| match r {
                Report::Removed { release } => Some(release.clone()),
                _ => None,
            })
            .collect()
    }

    /// What the steps did that a person should know although they went
    /// on: a release switched to that recorded no activation (made by a
    /// landfall before releases carried theirs), so that no hook ran for
    /// it; a log line that could not be written.
    pub(crate) fn notices(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter_map(|r| match r {
                Report::Unrecorded { release } => Some(format!(
                    "release {release} recorded no activation (it was made by an older \
                     landfall), so no hook ran for it"
                )),
                Report::Unlogged { log } => Some(format!(
                    "`{log}` could not be appended to (is the disk full, or is it a link?); \
                     this change is not in the log"
                )),
                _ => None,
            })
            .collect()
    }

    fn failed_step(&self) -> Option<&str> {
        self.reports.iter().find_map(|r| match r {
            Report::Failed { step } => Some(step.as_str()),
            _ => None,
        })
    }

    /// How `landfall_activate` ended, if it ended as it documents.
    pub(crate) fn activation(&self) -> Option<Activation> {
        let activated = self
            .reports
            .iter()
            .any(|r| matches!(r, Report::Activated { .. }));
        match self.exit {
            Exit::Done if activated => Some(Activation::Activated),
            Exit::PreActivateFailed => Some(Activation::PreActivateFailed {
                step: self.failed_step().unwrap_or("pre_activate").to_string(),
            }),
            Exit::ActivationFailed => Some(Activation::Failed {
                step: self.failed_step().unwrap_or("activate").to_string(),
                revert: self.revert(),
            }),
            _ => None,
        }
    }

    /// How switching back (`landfall_back`) went, if it was tried.
    pub(crate) fn revert(&self) -> Revert {
        let Some(to) = self.reports.iter().find_map(|r| match r {
            Report::Reverted { to } => Some(to.clone()),
            _ => None,
        }) else {
            return Revert::NotAttempted;
        };
        match self.reports.iter().find_map(|r| match r {
            Report::RevertFailed { step } => Some(step.clone()),
            _ => None,
        }) {
            Some(step) => Revert::Failed { to, step },
            None => Revert::Done { to },
        }
    }

    /// What the hooks of a step left to show: a line for each hook stopped
    /// at its time limit, then the tail of their output.
    pub(crate) fn hook_output(&self) -> String {
        let mut text = String::new();
        for report in &self.reports {
            if let Report::Timeout { hook, seconds } = report {
                let _ = writeln!(
                    text,
                    "the {hook} hook did not finish within {seconds}s and was stopped"
                );
            }
        }
        text.push_str(&self.output.stderr_tail());
        text.trim_end().to_string()
    }

    /// What the host said of the service after a step failed: the first
    /// for the release activated (or checked), the second for the one
    /// switched back to (see `landfall_service_cause`).
    pub(crate) fn causes(&self) -> (Option<Cause>, Option<Cause>) {
        let (mut ours, mut back) = (None, None);
        let mut reverted = false;
        for report in &self.reports {
            let slot = if reverted { &mut back } else { &mut ours };
            match report.clone() {
                Report::Reverted { .. } => reverted = true,
                Report::Verdict {
                    manager,
                    state,
                    words,
                } => {
                    *slot = Some(Cause {
                        manager,
                        state,
                        words,
                        ..Cause::default()
                    });
                }
                Report::ServiceLog { from } => {
                    if let Some(cause) = slot {
                        cause.log_from = Some(from);
                    }
                }
                Report::ServiceLogLine { line } => {
                    if let Some(cause) = slot {
                        cause.log.push(line);
                    }
                }
                Report::ServiceLogUnread { from, why } => {
                    if let Some(cause) = slot {
                        cause.log_from = Some(from);
                        cause.unread = Some(why);
                    }
                }
                _ => {}
            }
        }
        (ours, back)
    }

    /// What to show of a step that failed after the switch: a line for
    /// each hook stopped at its time limit, then, where the host said why
    /// the service did not run (its manager's verdict and the end of its
    /// own log), that, for the release activated and for the one switched
    /// back to; else the tail of the hooks' output. The output of hooks
    /// that passed (`pre_activate`'s) is no cause of a service's failure.
    pub(crate) fn failure_output(&self) -> String {
        let (ours, back) = self.causes();
        if ours.is_none() && back.is_none() {
            return self.hook_output();
        }
        let mut text = String::new();
        for report in &self.reports {
            if let Report::Timeout { hook, seconds } = report {
                let _ = writeln!(
                    text,
                    "the {hook} hook did not finish within {seconds}s and was stopped"
                );
            }
        }
        if let Some(cause) = ours {
            let _ = writeln!(text, "{}", cause.describe());
        }
        if let Some(cause) = back {
            let _ = writeln!(text, "after switching back, {}", cause.describe());
        }
        text.trim_end().to_string()
    }

    /// The exit status and the tail of stderr, for a step that failed in a
    /// way it does not report.
    pub(crate) fn describe_failure(&self) -> String {
        let tail = self.output.stderr_tail();
        let status = self.output.code.map_or_else(
            || "killed by a signal".to_string(),
            |c| format!("exit status {c}"),
        );
        if tail.is_empty() {
            status
        } else {
            format!("{status}:\n{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    /// The host steps and this parser speak one protocol: every tag the
    /// steps print is one this file parses, and every tag it parses is
    /// one the steps print.
    #[test]
    fn every_tag_the_steps_print_is_parsed_and_every_tag_parsed_is_printed() {
        let steps = super::super::library::FUNCTIONS;
        let this = include_str!("reply.rs");
        // The parsing code: what comes before the list of tags.
        let this = &this[..this.find("const TAGS").expect("the list of tags")];
        let printed: std::collections::BTreeSet<&str> = steps
            .split("printf '")
            .skip(1)
            .filter_map(|rest| rest.split_once("\\t").map(|(tag, _)| tag))
            .filter(|tag| {
                !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            })
            .collect();
        let known: std::collections::BTreeSet<&str> = super::TAGS.iter().copied().collect();
        assert_eq!(
            printed, known,
            "the tags steps.sh prints, and those TAGS lists"
        );
        for tag in super::TAGS {
            assert!(
                this.contains(&format!("\"{tag}\"")),
                "`{tag}` is listed but not parsed"
            );
        }
    }

    #[test]
    fn files_are_parsed_byte_exact() {
        let out = b"file\ta b.txt\t4\nx\ny\nskip\tbig\nfile\tbin\t3\n\0\n\x01";
        let files = Reply::from(Output {
            code: Some(0),
            stdout: out.to_vec(),
            stderr: Vec::new(),
        })
        .files();
        assert_eq!(files["a b.txt"], b"x\ny\n");
        assert_eq!(files["bin"], b"\0\n\x01");
        assert!(!files.contains_key("big"));
    }

    use super::*;

    fn reply(code: i32, stdout: &str) -> Reply {
        Reply::from(Output {
            code: Some(code),
            stdout: stdout.into(),
            stderr: Vec::new(),
        })
    }

    #[test]
    fn probe_output_is_parsed_per_path() {
        let states = reply(
            0,
            "current\t0\tabc\nrelease\t0\tabc\nrelease\t0\tdef\ncurrent\t1\t\nlog\t0\tnot json\n\
             confirmed\t0\tdef\nconfirmed\t1\t\n\
             provenance\t0\tabc\t{\"revision\":\"c0ffee\",\"dirty\":false,\"user\":\"ann\",\"from\":\"m\",\"time\":\"t\",\"landfall\":\"0.1.0\"}\n",
        )
        .states(2);
        assert_eq!(states[0].current.as_deref(), Some("abc"));
        assert_eq!(states[0].releases, ["abc", "def"]);
        assert_eq!(
            states[0].provenance["abc"].revision.as_deref(),
            Some("c0ffee")
        );
        assert_eq!(states[1].current, None);
        assert_eq!(states[0].confirmed, Some(Some("def".into())));
        assert_eq!(states[1].confirmed, Some(None));
        assert!(states[0].log.is_empty());
        assert_eq!(states[0].claim, None);

        let states = reply(
            0,
            "current\t0\tabc\ncurrent\t1\t\ncurrent\t2\t\nheld\t0\tabc\nheld\t1\t\n\
             busy\t2\t{\"user\":\"ann\"}\nunclaimed\t3\tcannot create /srv/x \n\
             held\t4\t\ncreated\t4\t/srv\nheld\t5\tabc\nderived\t5\n\
             held\t6\tabc\nunderived\t6\tabc/x changed after the release was made\n",
        )
        .states(7);
        let held = |current: Option<&str>| Claim::Held {
            current: current.map(str::to_string),
            created: None,
            derived: false,
        };
        assert_eq!(states[0].claim, Some(held(Some("abc"))));
        assert_eq!(
            states[5].claim,
            Some(Claim::Held {
                current: Some("abc".into()),
                created: None,
                derived: true,
            })
        );
        assert_eq!(states[6].claim, Some(held(Some("abc"))));
        assert_eq!(states[1].claim, Some(held(None)));
        assert_eq!(
            states[2].claim,
            Some(Claim::Busy(r#"{"user":"ann"}"#.into()))
        );
        assert_eq!(
            states[3].claim,
            Some(Claim::Unclaimed("cannot create /srv/x".into()))
        );
        assert_eq!(
            states[4].claim,
            Some(Claim::Held {
                current: None,
                created: Some("/srv".into()),
                derived: false,
            })
        );
    }

    #[test]
    fn activation_outcomes() {
        assert_eq!(
            reply(0, "switched\tx\nactivated\tx\n").activation(),
            Some(Activation::Activated)
        );
        assert_eq!(
            reply(10, "failed\tpre_activate\n").activation(),
            Some(Activation::PreActivateFailed {
                step: "pre_activate".into()
            })
        );
        assert_eq!(
            reply(10, "failed\tservice\n").activation(),
            Some(Activation::PreActivateFailed {
                step: "service".into()
            })
        );
        assert_eq!(
            reply(11, "switched\tx\nfailed\thealth\nreverted\tp\n").activation(),
            Some(Activation::Failed {
                step: "health".into(),
                revert: Revert::Done {
                    to: Some("p".into())
                }
            })
        );
        assert_eq!(
            reply(11, "failed\tactivate\nreverted\tp\nrevert-failed\thealth\n").activation(),
            Some(Activation::Failed {
                step: "activate".into(),
                revert: Revert::Failed {
                    to: Some("p".into()),
                    step: "health".into()
                }
            })
        );
        assert_eq!(reply(0, "switched\tx\n").activation(), None);
        assert_eq!(reply(70, "").activation(), None);
        assert_eq!(reply(2, "").exit, Exit::Other(Some(2)));
    }

    #[test]
    fn a_service_that_did_not_run_is_shown_by_its_managers_verdict_and_log_not_by_hook_output() {
        let r = Reply::from(Output {
            code: Some(11),
            stdout: "hook\tpre_activate\nswitched\tx\nhook\tservice\nrestarted\tapp\n\
                     hook\tready\nfailed\tready\n\
                     verdict\tsystemd\tgave-up\tfailed (Result: start-limit-hit), restarted 4 times\n\
                     service-log\tjournalctl -u app.service\n\
                     service-log-line\trefusing to start\n\
                     service-log-line\tapp.service: Start request repeated too quickly.\n\
                     reverted\tp\nhook\tservice\nrestarted\tapp\nhook\tready\nrevert-failed\tready\n\
                     verdict\tsupervisor\tdown\tBACKOFF Exited too quickly\n\
                     service-log-unread\t/var/log/supervisor/app.log\tdeploy cannot read it\n"
                .into(),
            stderr: b"the configuration is fine\n".to_vec(),
        });
        let (ours, back) = r.causes();
        assert!(ours.as_ref().is_some_and(Cause::gave_up));
        assert!(!back.as_ref().unwrap().gave_up());
        assert_eq!(
            r.failure_output(),
            "systemd gave up on the service: failed (Result: start-limit-hit), restarted 4 times\n\
             the last lines of its log (`journalctl -u app.service`):\n\
             refusing to start\n\
             app.service: Start request repeated too quickly.\n\
             after switching back, the service is not running (supervisord: BACKOFF Exited too \
             quickly)\n\
             its log cannot be read (`/var/log/supervisor/app.log`): deploy cannot read it"
        );
        // Without a verdict, the hooks' output is what there is to show.
        let r = Reply::from(Output {
            code: Some(11),
            stdout: "failed\thealth\n".into(),
            stderr: b"health says no\n".to_vec(),
        });
        assert_eq!(r.causes(), (None, None));
        assert_eq!(r.failure_output(), "health says no");
    }

    #[test]
    fn other_reports() {
        let r = reply(
            0,
            "prepared\t\nunrecorded\tr1\nremoved\ta\nremoved\tb\nunlocked\t\n\
             timeout\tactivate\t5\nnoise from somewhere\n",
        );
        assert_eq!(r.prepared(), Some(None));
        assert_eq!(
            r.notices(),
            [
                "release r1 recorded no activation (it was made by an older landfall), so no hook ran for it"
            ]
        );
        assert_eq!(r.removed(), ["a", "b"]);
        assert!(r.unlocked());
        assert_eq!(
            r.hook_output(),
            "the activate hook did not finish within 5s and was stopped"
        );
        assert_eq!(
            reply(3, "locked\t{\"a\":1}\n").locked_by(),
            Some("{\"a\":1}")
        );
    }
}
