//! Every fleet operation, over any [`Transport`]: deploy, status, logs,
//! rollback, exec, and orphans and prune.
//!
//! A deploy runs in phases, each over all hosts (`jobs` at a time):
//!
//! 1. probe: one round trip per host reads what is current for all its
//!    artifacts; a release already current is `unchanged` and left alone,
//!    and every other target's lock is taken (and its directories made) in
//!    the same round trip;
//! 2. push: copy the release into `<id>.partial` (or push a git release's
//!    commit and check its tree out there, adding the rendered files), run
//!    the `build` hook, rename; an rsync release without a `build` hook is
//!    renamed by its activation instead, saving a round trip;
//! 3. activate: each artifact's `once` hook on one host; then artifacts
//!    in `after` order, each rolled out over its hosts (`rollout`: canaries,
//!    batches, pauses, a failure budget); a host that fails switches back,
//!    and past the budget, with `rollback-all`, every host switched in this
//!    run does too;
//! 4. finish: remove old releases beyond `keep`, release the locks. A host
//!    that no other host's failure can switch back (`on_failure = "stop"`,
//!    or a run with one target to deploy) does this in its activation's
//!    round trip.
//!
//! Architecture invariant: nothing on a host changes but its lock before
//! every probe has succeeded and every lock is held, and no host is
//! activated before every push has succeeded.
//!
//! This module holds what the operations share (the run's context,
//! outcomes, bounded parallelism, probing); `phases`, `rollout` and `pull`
//! are the deploy itself, `predict` its dry run; each other operation has
//! a module of its own (`status`, `logs`, `rollback` with the fleet's
//! `history`, `exec`, `prune`).

mod decide;
pub(crate) mod history;
mod phases;
mod predict;
mod pull;
mod rollout;
#[cfg(test)]
mod tests;

pub use decide::{Action, Upload, decide, previous_good};

pub use phases::deploy;

pub use crate::steps::{Claim, LogEntry, Orphan, PathState, ServiceState};

use crate::parallel::parallel;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::assemble::Release;
use crate::config::{Environment, Project};
use crate::event::{Event, Phase, Reporter};
use crate::git::Revision;
use crate::plan::Target;
use crate::steps::{Exit, Reply, Script, Step};
use crate::transport::Transport;

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
    /// (see [`LogEntry::deploy`]): the fleet-wide handle of a deploy, as
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
    fn current() -> Option<ProcessId> {
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
fn start_time(pid: u32) -> Option<u64> {
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

    fn lock_owner(&self, env: &str) -> String {
        serde_json::json!({
            "user": self.user,
            "from": self.machine,
            "pid": self.pid,
            "process": self.process,
            "since": jiff::Timestamp::now().to_string(),
            "env": env,
            "token": self.token,
        })
        .to_string()
    }
}

/// A run's id (see [`Identity::deploy`]): when it began, and four hex
/// digits of what makes it unique, `unique`.
fn deploy_id(began: jiff::Timestamp, unique: &str) -> String {
    let hash = blake3::hash(unique.as_bytes()).to_hex();
    format!(
        "{}-{}",
        began.strftime("%Y%m%d-%H%M%S"),
        &hash.as_str()[..4]
    )
}

/// The name of the user running landfall, from `/etc/passwd`, for
/// environments without `USER` (cron, CI containers).
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_string())
    })
}

/// Who holds a lock, as [`Identity::lock_owner`] wrote it.
#[derive(Debug, serde::Deserialize)]
struct LockHolder {
    user: String,
    from: String,
    pid: u32,
    since: String,
    env: String,
    #[serde(default)]
    process: Option<ProcessId>,
}

impl LockHolder {
    /// A deploy that is certainly gone left this lock: one of this machine,
    /// this boot and this PID namespace, whose process no longer runs (its
    /// pid is free, or another process, started at another time, has it).
    /// A lock of any other deploy, or one that does not say all of that
    /// (written by an older landfall), cannot be judged from here.
    fn is_stale(&self, identity: &Identity) -> bool {
        let (Some(theirs), Some(ours)) = (&self.process, &identity.process) else {
            return false;
        };
        self.from == identity.machine
            && theirs.boot == ours.boot
            && theirs.pid_ns == ours.pid_ns
            && start_time(self.pid) != Some(theirs.started)
    }
}

/// What the log says of an activation.
pub(crate) struct Change<'a> {
    /// `activated` (a deploy), `rollback`, or `reactivated` (`--force`).
    pub(crate) event: &'a str,
    /// The commit the release was built from.
    pub(crate) revision: Option<String>,
    /// For a rollback: the deploys it undoes (see [`LogEntry::undoes`]).
    pub(crate) undoes: &'a [String],
}

/// Everything a fleet operation needs besides the plan.
pub struct Run<'a> {
    pub project: &'a Project,
    pub env: &'a Environment,
    pub transport: &'a dyn Transport,
    pub identity: &'a Identity,
    pub jobs: usize,
    pub events: Reporter<'a>,
    /// Asked for, the run starts no new work and settles what is in flight
    /// as a failure would.
    pub cancel: &'a crate::interrupt::Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Deployed,
    Unchanged,
    RolledBack,
    Failed,
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::Unchanged => "unchanged",
            Status::RolledBack => "rolled_back",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// How one artifact on one host ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Outcome {
    pub host: String,
    pub artifact: String,
    pub status: Status,
    pub release: Option<String>,
    pub previous: Option<String>,
    /// The batch of its artifact's rollout the host was activated in,
    /// from 1 (the canaries, if there are any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub ok: bool,
    pub env: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub hosts: Vec<Outcome>,
    /// The run's id, recorded with what it changed on every host (see
    /// [`Identity::deploy`]): `rollback --to` takes it. `None` when the
    /// run changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// The rollout that stopped, if one did: the hosts after it were not
    /// activated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// Commands and copies per host: what the run cost in round trips.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub round_trips: BTreeMap<String, usize>,
    /// Seconds spent in each phase.
    pub timings: Timings,
}

/// Why an artifact's rollout stopped, as the event said it and the
/// summary says it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Stopped {
    pub artifact: String,
    pub reason: String,
    /// How many of its hosts failed in this run, switched back or not.
    pub failed: usize,
    /// How many its `max_fail` allowed.
    pub max_fail: usize,
}

/// Seconds per phase of a run. `build` and `assemble` are the caller's to
/// fill in (a deploy gets its releases ready-made).
#[derive(Debug, Clone, Copy, Default, Serialize, schemars::JsonSchema)]
pub struct Timings {
    pub build: f64,
    pub assemble: f64,
    pub push: f64,
    pub activate: f64,
}

impl Timings {
    /// `build 1.20s, assemble 0.05s, …` for the phases that took time.
    pub fn describe(&self) -> String {
        [
            ("build", self.build),
            ("assemble", self.assemble),
            ("push", self.push),
            ("activate", self.activate),
        ]
        .iter()
        .filter(|(_, s)| *s >= 0.005)
        .map(|(name, s)| format!("{name} {s:.2}s"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

impl Summary {
    /// The summary of a run that reached no host: refused before it
    /// started, or one (`exec`) whose hosts report otherwise.
    pub fn without_hosts(env: &str, ok: bool, dry_run: bool) -> Summary {
        Summary {
            ok,
            env: env.to_string(),
            dry_run,
            hosts: Vec::new(),
            deploy: None,
            stopped: None,
            round_trips: BTreeMap::new(),
            timings: Timings::default(),
        }
    }

    pub(crate) fn new(run: &Run<'_>, dry_run: bool, hosts: Vec<Outcome>) -> Summary {
        // A dry run skips everything on purpose; it fails only where a host
        // could not be read.
        let ok = hosts.iter().all(|o| match o.status {
            Status::Deployed | Status::Unchanged => true,
            Status::Skipped => dry_run,
            Status::RolledBack | Status::Failed => false,
        });
        // What a host logged carries the run's id: a switch (a deploy, a
        // rollback) or a switch back.
        let changed = hosts
            .iter()
            .any(|o| matches!(o.status, Status::Deployed | Status::RolledBack));
        Summary {
            ok,
            env: run.env.name.clone(),
            dry_run,
            deploy: changed.then(|| run.identity.deploy.clone()),
            stopped: None,
            hosts,
            round_trips: run.transport.round_trips(),
            timings: Timings::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub dry_run: bool,
    pub break_lock: bool,
    /// Run the activation of releases that are current already.
    pub force: bool,
    /// The bundle the releases come from, recorded with each new release.
    pub bundle: Option<String>,
    /// The `--var KEY=VALUE` overrides recorded with each new release, as
    /// [`Secrets::recorded_override`](crate::secrets::Secrets::recorded_override)
    /// masks them.
    pub overrides: Vec<String>,
    /// The object store hosts pull releases from (pull mode), if any.
    pub store: Option<crate::store::Remote>,
    /// The hosts' state as [`look_ahead`] read it while cargo built.
    pub lookahead: Option<Lookahead>,
}

/// Every target's state on its host, read while cargo builds: see
/// [`look_ahead`].
#[derive(Debug, Clone, Default)]
pub struct Lookahead {
    /// By host and artifact path.
    states: BTreeMap<(String, String), Result<PathState, String>>,
}

impl Lookahead {
    /// The release current at `path` on `host`, as read ahead.
    fn current(&self, host: &str, path: &str) -> Option<&str> {
        let key = (host.to_string(), path.to_string());
        self.states.get(&key)?.as_ref().ok()?.current.as_deref()
    }

    /// The state of every target of `work`, if the hosts hold each one's
    /// release already, unlocked: then the deploy has nothing to do, and
    /// needs no lock. `None` if anything is to be done, or was not read.
    fn all_current(&self, work: &[Work<'_>]) -> Option<Vec<Result<PathState, String>>> {
        work.iter()
            .map(|w| {
                let key = (w.target.host.clone(), w.path.clone());
                let state = self.states.get(&key)?.as_ref().ok()?;
                let current = state.lock.is_none()
                    && decide::decide(w.target, w.release, decide::Found::of(state), false)
                        == Action::Unchanged;
                current.then(|| Ok(state.clone()))
            })
            .collect()
    }
}

/// Reads every target's state on its host, one round trip per host, taking
/// no lock: meant to run while cargo builds. A deploy whose releases the
/// hosts all hold already then decides from it, and makes no other round
/// trip; any other deploy probes again, taking its locks, as it would
/// have. The round trip goes over the session the deploy uses after, so it
/// costs a script, not a connection.
pub fn look_ahead(
    transport: &dyn Transport,
    env: &str,
    targets: &[&Target],
    jobs: usize,
) -> Lookahead {
    let states = probe_hosts(transport, env, jobs, targets, false, None);
    Lookahead {
        states: targets
            .iter()
            .zip(states)
            .map(|(t, state)| ((t.host.clone(), transport.host_path(t)), state))
            .collect(),
    }
}

/// What a target not yet worked on says when the run was asked to stop.
pub(crate) const INTERRUPTED: &str =
    "interrupted: landfall was asked to stop before this host's turn";

/// How often a host that keeps landfall waiting is named.
const WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A transport that notes the round trips in flight, so that a host that
/// keeps landfall waiting can be named while it does.
struct Watched<'a> {
    inner: &'a dyn Transport,
    in_flight: std::sync::Mutex<BTreeMap<u64, (String, std::time::Instant)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Watched<'_> {
    fn track<T>(&self, host: &str, f: impl FnOnce() -> T) -> T {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .expect("not poisoned")
            .insert(key, (host.to_string(), std::time::Instant::now()));
        let result = f();
        self.in_flight.lock().expect("not poisoned").remove(&key);
        result
    }

    /// Names every host that has kept a round trip waiting for another
    /// [`WAITING_EVERY`] since it was last named.
    fn report_waiting(&self, events: Reporter<'_>, named: &mut BTreeMap<u64, u64>) {
        let in_flight = self.in_flight.lock().expect("not poisoned").clone();
        named.retain(|key, _| in_flight.contains_key(key));
        for (key, (host, started)) in in_flight {
            let seconds = started.elapsed().as_secs();
            let due = seconds / WAITING_EVERY.as_secs();
            let last = named.entry(key).or_insert(0);
            if due > *last {
                *last = due;
                events(Event::Waiting { host, seconds });
            }
        }
    }
}

impl Transport for Watched<'_> {
    fn host_path(&self, target: &Target) -> String {
        self.inner.host_path(target)
    }

    fn run(&self, host: &str, script: &Script) -> Result<Reply, crate::process::ProcessError> {
        self.track(host, || self.inner.run(host, script))
    }

    /// Not watched: a stream waits for its output on purpose.
    fn stream(
        &self,
        host: &str,
        script: &Script,
        stop: &(dyn Fn() -> bool + Sync),
        line: &mut dyn FnMut(&str),
    ) -> Result<Reply, crate::process::ProcessError> {
        self.inner.stream(host, script, stop, line)
    }

    /// Not watched: a person is at it.
    fn attach(
        &self,
        host: &str,
        script: &Script,
    ) -> Result<Option<i32>, crate::process::ProcessError> {
        self.inner.attach(host, script)
    }

    fn push(
        &self,
        target: &Target,
        release: &Release,
        basis: crate::transport::Basis<'_>,
        progress: crate::transport::Progress<'_>,
    ) -> crate::error::Result<crate::transport::PushStats> {
        self.track(&target.host, || {
            self.inner.push(target, release, basis, progress)
        })
    }

    fn round_trips(&self) -> BTreeMap<String, usize> {
        self.inner.round_trips()
    }
}

/// Runs `f` with a run whose transport names, every [`WAITING_EVERY`],
/// each host that keeps a round trip waiting; as work on hosts, which a
/// first signal settles (see [`crate::interrupt::on_hosts`]).
pub(crate) fn watching<T>(run: &Run<'_>, f: impl FnOnce(&Run<'_>) -> T) -> T {
    crate::interrupt::on_hosts(|| watching_hosts(run, f))
}

fn watching_hosts<T>(run: &Run<'_>, f: impl FnOnce(&Run<'_>) -> T) -> T {
    let watched = Watched {
        inner: run.transport,
        in_flight: std::sync::Mutex::new(BTreeMap::new()),
        next: std::sync::atomic::AtomicU64::new(0),
    };
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watched = &watched;
        scope.spawn(move || {
            let mut named = BTreeMap::new();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(std::time::Duration::from_secs(1))
            {
                watched.report_waiting(run.events, &mut named);
            }
        });
        let watched_run = Run {
            transport: watched,
            ..*run
        };
        let result = f(&watched_run);
        drop(done);
        result
    })
}

/// The state of one target during a deploy.
struct Work<'a> {
    target: &'a Target,
    release: &'a Release,
    path: String,
    current: Option<String>,
    /// The release to switch back to if the activation fails: `current`,
    /// unless a deploy interrupted while holding the lock left a release
    /// current that the log never confirmed (see [`decide::previous_good`]).
    previous: Option<String>,
    /// What the deploy does with it, once the probe has read the host.
    action: Action,
    lock: Lock,
    /// The outermost directory the lock's claim made (the path did not
    /// exist): removed again if the run goes no further.
    created: Option<String>,
    /// Uploaded in full but not yet renamed: the activation renames it.
    unfinished: bool,
    /// What the release adds to the one read ahead as current, which the
    /// claim is asked to make the upload a copy of (`landfall_derive`);
    /// from the claim on, `Some` only if it did: the push then sends only
    /// this.
    delta: Option<crate::assemble::Delta>,
    status: Option<Status>,
    message: Option<String>,
    /// The batch of the rollout it was activated in.
    batch: Option<usize>,
}

impl Work<'_> {
    fn outcome(&self) -> Outcome {
        Outcome {
            host: self.target.host.clone(),
            artifact: self.target.artifact.clone(),
            status: self.status.unwrap_or(Status::Skipped),
            release: Some(self.release.id.clone()),
            previous: self.current.clone(),
            batch: self.batch,
            message: self.message.clone(),
        }
    }

    fn needs_work(&self) -> bool {
        self.status.is_none()
    }
}

/// This run's hold on a target's deploy lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Not held (or released).
    Free,
    /// Left behind by a deploy of this machine that is gone: the push takes
    /// it over.
    TakeOver,
    Held,
}

/// How long a hook limited to `timeout` may take: it is stopped then, and
/// killed 5 seconds later.
fn hook_time(timeout: std::time::Duration) -> std::time::Duration {
    timeout + std::time::Duration::from_secs(5)
}

/// What the hooks of one activation may take at most (`pre_activate`,
/// `activate`, `health`, and a service's stop, start and `ready`),
/// switching back included, the release switched back to taken to have the
/// same time limits.
pub(crate) fn activation_time(target: &Target) -> std::time::Duration {
    let hooks = &target.hooks;
    let mut once = hook_time(hooks.timeout) * 2 + hook_time(hooks.health_timeout);
    if let Some(service) = &target.service {
        // The old process may take its whole stop time, the new one its
        // ready time; the manager's own work is quick.
        once += hook_time(service.stop_timeout) + hook_time(service.ready_timeout);
    }
    once * 2
}

/// Targets grouped by host, keeping plan order within a host.
fn by_host(targets: &[&Target]) -> Vec<(String, Vec<usize>)> {
    let mut hosts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        hosts.entry(&target.host).or_default().push(i);
    }
    hosts
        .into_iter()
        .map(|(h, idx)| (h.to_string(), idx))
        .collect()
}

pub(crate) fn describe_failure(reply: &Reply) -> String {
    reply.describe_failure()
}

impl Run<'_> {
    pub(crate) fn script(&self, target: &Target) -> Script {
        Script::new(&self.env.name, &target.host, Some(&target.artifact))
    }

    /// What a host records as the owner of a target's directory: the
    /// project, the artifact and the environment (see `landfall_owns`).
    pub(super) fn artifact_name(&self, target: &Target) -> String {
        format!(
            "{}/{}@{}",
            self.project.token(),
            target.artifact,
            self.env.name
        )
    }

    /// Runs `then` (more step calls) under the deploy lock of `path` on the
    /// target's host, in one round trip. A lock left behind by a deploy of
    /// this machine that is gone is reported and taken over; any other
    /// holder makes this an error that names it.
    pub(crate) fn locked(
        &self,
        target: &Target,
        path: &str,
        break_lock: bool,
        then: impl Fn(Script) -> Script,
    ) -> Result<Reply, (Phase, String)> {
        let owner = self.lock_owner();
        let name = self.artifact_name(target);
        let attempt = |force: bool| {
            let lock = self.script(target).step(Step::Lock {
                path: path.to_string(),
                owner: owner.clone(),
                break_lock: force,
                name: name.clone(),
            });
            let reply = self
                .transport
                .run(&target.host, &then(lock))
                .map_err(|err| (Phase::Lock, err.to_string()))?;
            if reply.exit == Exit::NotOwner {
                return Err((
                    Phase::Lock,
                    reply.output.stderr_tail().trim_end().to_string(),
                ));
            }
            Ok(reply)
        };
        let reply = attempt(break_lock)?;
        if reply.exit != Exit::Locked {
            return Ok(reply);
        }
        self.judge_lock(target, path, reply.locked_by().unwrap_or(""))?;
        let reply = attempt(true)?;
        if reply.exit == Exit::Locked {
            return Err((
                Phase::Lock,
                format!("`{path}` was locked again by another deploy"),
            ));
        }
        Ok(reply)
    }

    /// Whether a lock, given its first line, was left behind by a deploy
    /// of this machine that is gone.
    fn is_stale(&self, text: &str) -> bool {
        serde_json::from_str::<LockHolder>(text).is_ok_and(|h| h.is_stale(self.identity))
    }

    /// Judges a lock another deploy holds on `path`, given its first line:
    /// one left behind by a deploy of this machine that is gone is reported
    /// and may be taken over (`Ok`); any other holder is an error that
    /// names it.
    fn judge_lock(&self, target: &Target, path: &str, text: &str) -> Result<(), (Phase, String)> {
        match serde_json::from_str::<LockHolder>(text) {
            Ok(holder) if holder.is_stale(self.identity) => {
                (self.events)(Event::Warning {
                    message: format!(
                        "on `{}`: `{path}` was locked since {} by a deploy of this machine (pid {}) that is gone; \
                         taking the lock over",
                        target.host, holder.since, holder.pid
                    ),
                });
                Ok(())
            }
            Ok(holder) => Err((
                Phase::Lock,
                format!(
                    "`{path}` is locked by another deploy: {}@{} (pid {}, environment `{}`) since {}; \
                     if that deploy is gone, run again with `--break-lock`",
                    holder.user, holder.from, holder.pid, holder.env, holder.since
                ),
            )),
            Err(_) => Err((
                Phase::Lock,
                format!(
                    "`{path}` is locked: {text}; if no deploy is running, run again with `--break-lock`"
                ),
            )),
        }
    }

    pub(super) fn lock_owner(&self) -> String {
        self.identity.lock_owner(&self.env.name)
    }

    /// The activation of `release` of a target: what the release
    /// recorded, switching back to `previous` (and running what that
    /// recorded) if activate or health fail and `revert` is set. `change`
    /// is what the log says of it.
    pub(crate) fn activation(
        &self,
        target: &Target,
        path: &str,
        (release, previous): (&str, Option<&str>),
        revert: bool,
        change: &Change<'_>,
    ) -> Step {
        Step::Activate {
            path: path.to_string(),
            release: release.to_string(),
            previous: previous.map(str::to_string),
            revert,
            log_ok: self.log_line(
                target,
                change.event,
                Some(release),
                previous,
                change.revision.clone(),
                change.undoes,
            ),
            // The revision of a release switched back to is not known here;
            // the log's earlier entries have it.
            log_back: self.log_line(target, "rolled_back", previous, Some(release), None, &[]),
        }
    }

    fn log_line(
        &self,
        target: &Target,
        event: &str,
        release: Option<&str>,
        previous: Option<&str>,
        revision: Option<String>,
        undoes: &[String],
    ) -> String {
        let entry = LogEntry {
            time: jiff::Timestamp::now().to_string(),
            event: event.to_string(),
            env: self.env.name.clone(),
            artifact: target.artifact.clone(),
            release: release.map(str::to_string),
            previous: previous.map(str::to_string),
            user: self.identity.user.clone(),
            from: self.identity.machine.clone(),
            revision,
            command: None,
            status: None,
            id: None,
            deploy: Some(self.identity.deploy.clone()),
            undoes: undoes.to_vec(),
        };
        serde_json::to_string(&entry).expect("log entries serialise")
    }

    /// Warns of what a reply says a person should know (see
    /// [`Reply::notices`]).
    pub(crate) fn notify(&self, host: &str, artifact: &str, reply: &Reply) {
        for notice in reply.notices() {
            (self.events)(Event::Warning {
                message: format!("on `{host}`, `{artifact}`: {notice}"),
            });
        }
    }

    fn fail(&self, work: &mut Work<'_>, phase: Phase, message: String) {
        work.status = Some(Status::Failed);
        work.message = Some(format!("{}: {message}", phase.name()));
        (self.events)(Event::Failed {
            host: work.target.host.clone(),
            artifact: work.target.artifact.clone(),
            phase,
            message,
        });
    }

    /// One round trip per host: the state of every artifact path on it.
    /// With `claims` (per target, a claim of its lock), the same round trip
    /// takes the deploy lock of every target whose release is not current,
    /// and prepares its directories.
    pub(crate) fn probe(
        &self,
        targets: &[&Target],
        detail: bool,
        claims: Option<&[Step]>,
    ) -> Vec<Result<PathState, String>> {
        probe_hosts(
            self.transport,
            &self.env.name,
            self.jobs,
            targets,
            detail,
            claims,
        )
    }
}

/// One round trip per host: the state of every artifact path on it. With
/// `claims` (per target, a claim of its lock), the same round trip takes
/// the deploy lock of every target whose release is not current, and
/// prepares its directories.
fn probe_hosts(
    transport: &dyn Transport,
    env: &str,
    jobs: usize,
    targets: &[&Target],
    detail: bool,
    claims: Option<&[Step]>,
) -> Vec<Result<PathState, String>> {
    let hosts = by_host(targets);
    let answers = parallel(&hosts, jobs, |(host, indices)| {
        let paths: Vec<String> = indices
            .iter()
            .map(|&i| transport.host_path(targets[i]))
            .collect();
        let mut script = Script::new(env, host, None).step(Step::Probe { detail, paths });
        for (k, &i) in indices.iter().enumerate() {
            if let Some(Step::Claim { .. }) = claims.map(|c| &c[i]) {
                let mut claim = claims.expect("checked")[i].clone();
                if let Step::Claim { index, .. } = &mut claim {
                    *index = k;
                }
                script = script.step(claim);
            }
        }
        match transport.run(host, &script) {
            Ok(reply) if reply.success() => Ok(reply.states(indices.len())),
            Ok(reply) => Err(describe_failure(&reply)),
            Err(err) => Err(err.to_string()),
        }
    });
    let mut states: Vec<Option<Result<PathState, String>>> = targets.iter().map(|_| None).collect();
    for ((_, indices), answer) in hosts.iter().zip(answers) {
        match answer {
            Ok(found) => {
                for (&i, state) in indices.iter().zip(found) {
                    states[i] = Some(Ok(state));
                }
            }
            Err(message) => {
                for &i in indices {
                    states[i] = Some(Err(message.clone()));
                }
            }
        }
    }
    states
        .into_iter()
        .map(|s| s.expect("every target was probed"))
        .collect()
}
