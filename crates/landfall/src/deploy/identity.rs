//! Who is deploying, and from which process: what locks and logs record,
//! and the deploy id a run gives the fleet.

use serde::Serialize;

use super::waiting::WaitRecord;
use crate::git::Revision;

/// Who is deploying, recorded in locks and logs.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Identity {
    pub user: String,
    /// The machine landfall runs on.
    pub machine: String,
    pub pid: u32,
    /// Unique to this run; a lock is released only by the run holding it.
    pub token: String,
    /// This run's id, recorded with every change it makes on every host
    /// (see `LogEntry::deploy`): the fleet-wide handle of a deploy, as
    /// release ids differ per host. It starts with the time the run began
    /// (UTC, to the second), so that ids sort in the order runs began:
    /// `20261207-164200-3fa2`.
    pub deploy: String,
    pub revision: Revision,
    /// What makes the process certain, beyond the machine's name and its
    /// pid: the boot (`/proc/sys/kernel/random/boot_id`), the PID
    /// namespace (a container shares the host's name but not its pids),
    /// and the process's start time, in clock ticks since the boot (a pid
    /// is reused; a start time with it is not). `None` where there is no
    /// `/proc`.
    pub process: Option<ProcessId>,
}

/// A process, certainly: see [`Identity::process`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ProcessId {
    pub boot: String,
    pub pid_ns: String,
    pub started: u64,
}

impl ProcessId {
    /// This process.
    pub(super) fn current() -> Option<ProcessId> {
        Some(ProcessId {
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()?
                .trim()
                .to_string(),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .to_string_lossy()
                .into_owned(),
            started: start_time(std::process::id())?,
        })
    }
}

/// When process `pid` started, in clock ticks since the boot (field 22 of
/// `/proc/PID/stat`); `None` if there is no such process.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command's name, in parentheses, may hold anything: the fields
    // are counted from after its last parenthesis (field 3 on).
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Identity {
    pub fn current(revision: Revision) -> Identity {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(user_from_passwd)
            .unwrap_or_else(|| "unknown".into());
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let pid = std::process::id();
        let now = jiff::Timestamp::now();
        let token = format!("{machine}-{pid}-{}", now.as_nanosecond());
        let deploy = deploy_id(now, &token);
        Identity {
            user,
            machine,
            pid,
            token,
            deploy,
            revision,
            process: ProcessId::current(),
        }
    }

    pub(super) fn lock_owner(&self, env: &str) -> String {
        self.owner(env).to_string()
    }

    /// The owner line of a lock kept while a rollout waits for promotion:
    /// [`Identity::lock_owner`]'s, token and all (the run's steps still
    /// release it), with `waiting`, what waits there; `since` says from
    /// when.
    pub(super) fn waiting_owner(&self, env: &str, waiting: &WaitRecord) -> String {
        let mut owner = self.owner(env);
        owner["waiting"] = serde_json::to_value(waiting).expect("a record serialises");
        owner.to_string()
    }

    fn owner(&self, env: &str) -> serde_json::Value {
        serde_json::json!({
            "user": self.user,
            "from": self.machine,
            "pid": self.pid,
            "process": self.process,
            "since": jiff::Timestamp::now().to_string(),
            "env": env,
            "token": self.token,
        })
    }
}

/// A run's id (see [`Identity::deploy`]): when it began, and four hex
/// digits of what makes it unique, `unique`.
pub(super) fn deploy_id(began: jiff::Timestamp, unique: &str) -> String {
    let hash = blake3::hash(unique.as_bytes()).to_hex();
    format!(
        "{}-{}",
        began.strftime("%Y%m%d-%H%M%S"),
        &hash.as_str()[..4]
    )
}

/// The name of the user running landfall, from `/etc/passwd`, for
/// environments without `USER` (cron, CI containers).
pub(super) fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_string())
    })
}

/// Who holds a lock, as [`Identity::lock_owner`] (or
/// [`Identity::waiting_owner`]) wrote it.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LockHolder {
    pub(super) user: String,
    pub(super) from: String,
    pub(super) pid: u32,
    pub(super) since: String,
    pub(super) env: String,
    #[serde(default)]
    process: Option<ProcessId>,
    /// The run's token (see [`Identity::token`]).
    #[serde(default)]
    pub(super) token: String,
    /// What waits there, when the lock is kept by a rollout that waits for
    /// promotion.
    #[serde(default)]
    pub(super) waiting: Option<WaitRecord>,
}

impl LockHolder {
    /// A deploy that is certainly gone left this lock: one of this machine,
    /// this boot and this PID namespace, whose process no longer runs (its
    /// pid is free, or another process, started at another time, has it).
    /// A lock of any other deploy, or one that does not say all of that
    /// (written by an older landfall), cannot be judged from here, and a
    /// lock kept by a rollout that waits for promotion is never stale.
    pub(super) fn is_stale(&self, identity: &Identity) -> bool {
        // The process of a rollout that waits for promotion is gone on
        // purpose: its lock is kept for the run that goes on.
        if self.waiting.is_some() {
            return false;
        }
        let (Some(theirs), Some(ours)) = (&self.process, &identity.process) else {
            return false;
        };
        self.from == identity.machine
            && theirs.boot == ours.boot
            && theirs.pid_ns == ours.pid_ns
            && start_time(self.pid) != Some(theirs.started)
    }
}
