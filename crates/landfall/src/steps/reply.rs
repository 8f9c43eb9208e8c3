//! What a host's steps report: each tab-separated line of a script's
//! standard output parsed into a [`Report`], and the exit status into an
//! [`Exit`]. Nothing else reads a step's output, except the raw bytes of
//! `landfall_manifest` and `landfall_files`. A line that is no report is
//! dropped (a step's raw output, a command's); in this crate's tests, one
//! tagged as reports are but with a tag no step prints is an error. What
//! the reports say of a host's paths is read in `state.rs`, how an
//! activation ended in `outcome.rs`.

use serde::Serialize;

use super::state::LogEntry;
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
    /// A line of the current release's bill of materials.
    Sbom {
        index: usize,
        line: String,
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
    /// An activation to be confirmed armed its watcher, which switches
    /// back at `deadline` (the host's clock, in seconds since the epoch)
    /// unless the activation is confirmed.
    Armed {
        release: String,
        seconds: u64,
        deadline: i64,
    },
    /// What `landfall_confirm` found of an activation's watcher.
    Confirm {
        release: String,
        timer: Timer,
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
    /// A service with `overlap`: its instance in `slot` started beside the
    /// one that serves (`started`), was kept, serving, when switching back
    /// to the release it runs (`kept`), or stopped once the other was
    /// ready (`drained`).
    Instance {
        event: String,
        name: String,
        slot: String,
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

/// The watcher of an activation, as `landfall_confirm` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Confirmed (now, or by an earlier attempt whose answer was lost).
    Confirmed,
    /// Still waiting, until `deadline` (only read, nothing renamed).
    Armed { deadline: Option<i64> },
    /// Its time ran out after `seconds`: the host switched back by itself
    /// (how, the reports that follow say).
    Expired { seconds: Option<u64> },
    /// No record of the activation.
    Missing,
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
            "sbom" => Report::Sbom {
                index: index()?,
                line: rest(2).to_string(),
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
            "armed" => Report::Armed {
                release: fields.get(1)?.to_string(),
                seconds: fields.get(2)?.parse().ok()?,
                deadline: fields.get(3)?.trim().parse().ok()?,
            },
            "confirm" => Report::Confirm {
                release: fields.get(2)?.to_string(),
                timer: match *fields.get(1)? {
                    "done" => Timer::Confirmed,
                    "armed" => Timer::Armed {
                        deadline: fields.get(3).and_then(|d| d.trim().parse().ok()),
                    },
                    "expired" => Timer::Expired {
                        seconds: fields.get(3).and_then(|s| s.trim().parse().ok()),
                    },
                    _ => Timer::Missing,
                },
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
            "started" | "kept" | "drained" => Report::Instance {
                event: fields[0].to_string(),
                name: fields.get(1)?.to_string(),
                slot: fields.get(2)?.to_string(),
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
            .filter_map(|line| {
                let report = Report::parse(line);
                #[cfg(test)]
                if report.is_none() {
                    assert_no_unknown_tag(line);
                }
                report
            })
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
    "armed",
    "busy",
    "confirm",
    "confirmed",
    "created",
    "current",
    "derived",
    "drained",
    "failed",
    "file",
    "held",
    "hook",
    "kept",
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
    "sbom",
    "reverted",
    "service",
    "service-log",
    "service-log-line",
    "service-log-unread",
    "skip",
    "started",
    "switched",
    "timeout",
    "unclaimed",
    "underived",
    "unlocked",
    "unlogged",
    "unrecorded",
    "verdict",
];

/// The tags of lines a reply carries that no step function prints as a
/// report: the script's own (`library`, see [`Reply::library_missing`]),
/// and a manifest's, which `landfall_manifest` prints as it is.
#[cfg(test)]
const OTHER_TAGS: &[&str] = &["library", "symlink"];

/// Fails for a line that is tagged as reports are (a word of lowercase
/// letters and dashes, then a tab) with a tag that no step prints: a
/// report the steps print that this parser does not know would otherwise
/// be dropped unseen. Lines that are not tagged so are a step's raw output
/// (a command's, a service's log), which no parser reads.
#[cfg(test)]
fn assert_no_unknown_tag(line: &str) {
    let Some((tag, _)) = line.split_once('\t') else {
        return;
    };
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return;
    }
    assert!(
        TAGS.contains(&tag) || OTHER_TAGS.contains(&tag),
        "a reply line with the tag `{tag}`, which no step prints and nothing parses: {line:?}"
    );
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
pub(super) fn reply(code: i32, stdout: &str) -> Reply {
    Reply::from(Output {
        code: Some(code),
        stdout: stdout.into(),
        stderr: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    #[should_panic(expected = "the tag `activatd`, which no step prints")]
    fn a_reply_line_with_a_tag_no_step_prints_fails_a_test() {
        reply(0, "switched\tx\nactivatd\tx\n");
    }

    #[test]
    fn lines_that_are_no_reports_are_left_to_whoever_reads_the_output() {
        let r = reply(
            0,
            "landfall-manifest-v1\nfile\t0644\t1\tb3\ta\nsymlink\tt\tl\n\
             2024-01-01T00:00:00Z a line of a service\nTAB\tin a command's output\n",
        );
        assert!(r.reports.is_empty(), "{:?}", r.reports);
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
