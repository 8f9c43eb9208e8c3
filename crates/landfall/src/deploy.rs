//! Deploy, status and rollback across a fleet, over any [`Transport`].
//!
//! A deploy runs in phases, each over all hosts (`jobs` at a time):
//!
//! 1. probe: one round trip per host reads what is current for all its
//!    artifacts; a release already current is `unchanged` and left alone;
//! 2. push: lock, prepare, copy the release into `<id>.partial`, rename;
//! 3. activate: artifacts in `after` order, `max_parallel` hosts at once;
//!    on failure the host switches back, and with `rollback-all` every
//!    host switched in this run does too;
//! 4. finish: remove old releases beyond `keep`, release the locks.
//!
//! Architecture invariant: nothing on a host changes before every probe has
//! succeeded, and no host is activated before every push has succeeded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::assemble::Release;
use crate::config::{Environment, OnFailure, Project};
use crate::event::{Event, Phase, Reporter};
use crate::git::Revision;
use crate::plan::{Plan, Target};
use crate::process::Output;
use crate::steps::{self, Activation, LogEntry, PathState, Revert, Script};
use crate::transport::{Transport, changes};

/// Who is deploying, recorded in locks and logs.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub user: String,
    /// The machine landfall runs on.
    pub machine: String,
    pub pid: u32,
    /// Unique to this run; a lock is released only by the run holding it.
    pub token: String,
    pub revision: Revision,
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
        Identity {
            user,
            machine,
            pid,
            token,
            revision,
        }
    }

    fn lock_owner(&self, env: &str) -> String {
        serde_json::json!({
            "user": self.user,
            "from": self.machine,
            "pid": self.pid,
            "since": jiff::Timestamp::now().to_string(),
            "env": env,
            "token": self.token,
        })
        .to_string()
    }
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

/// Everything a fleet operation needs besides the plan.
pub struct Run<'a> {
    pub project: &'a Project,
    pub env: &'a Environment,
    pub transport: &'a dyn Transport,
    pub identity: &'a Identity,
    pub jobs: usize,
    pub events: Reporter<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub host: String,
    pub artifact: String,
    pub status: Status,
    pub release: Option<String>,
    pub previous: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub env: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub hosts: Vec<Outcome>,
}

impl Summary {
    fn new(env: &str, dry_run: bool, hosts: Vec<Outcome>) -> Summary {
        // A dry run skips everything on purpose; it fails only where a host
        // could not be read.
        let ok = hosts.iter().all(|o| match o.status {
            Status::Deployed | Status::Unchanged => true,
            Status::Skipped => dry_run,
            Status::RolledBack | Status::Failed => false,
        });
        Summary {
            ok,
            env: env.to_string(),
            dry_run,
            hosts,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DeployOptions {
    pub dry_run: bool,
    pub break_lock: bool,
}

/// Runs `f` on every item, at most `jobs` at once, and returns the results
/// in order.
pub fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let threads = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, result) in worker.join().expect("workers do not panic") {
                results[i] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The state of one target during a deploy.
struct Work<'a> {
    target: &'a Target,
    release: &'a Release,
    path: String,
    current: Option<String>,
    present: bool,
    locked: bool,
    status: Option<Status>,
    message: Option<String>,
}

impl Work<'_> {
    fn outcome(&self) -> Outcome {
        Outcome {
            host: self.target.host.clone(),
            artifact: self.target.artifact.clone(),
            status: self.status.unwrap_or(Status::Skipped),
            release: Some(self.release.id.clone()),
            previous: self.current.clone(),
            message: self.message.clone(),
        }
    }

    fn needs_work(&self) -> bool {
        self.status.is_none()
    }
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

fn describe_failure(output: &Output) -> String {
    let tail = output.stderr_tail();
    let status = output.code.map_or_else(
        || "killed by a signal".to_string(),
        |c| format!("exit status {c}"),
    );
    if tail.is_empty() {
        status
    } else {
        format!("{status}:\n{tail}")
    }
}

impl Run<'_> {
    fn script(&self, target: &Target) -> Script {
        Script::new(&self.env.name, &target.host, Some(&target.artifact))
    }

    fn log_line(
        &self,
        target: &Target,
        event: &str,
        release: Option<&str>,
        previous: Option<&str>,
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
            revision: self.identity.revision.describe(),
        };
        serde_json::to_string(&entry).expect("log entries serialise")
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
    fn probe(&self, targets: &[&Target], detail: bool) -> Vec<Result<PathState, String>> {
        let hosts = by_host(targets);
        let answers = parallel(&hosts, self.jobs, |(host, indices)| {
            let paths: Vec<String> = indices
                .iter()
                .map(|&i| self.transport.host_path(targets[i]))
                .collect();
            let args = std::iter::once(if detail {
                "1".to_string()
            } else {
                "0".to_string()
            })
            .chain(paths);
            let script = Script::new(&self.env.name, host, None).call("landfall_probe", args);
            match self.transport.run(host, script.text()) {
                Ok(out) if out.success() => {
                    Ok(steps::parse_probe(&out.stdout_text(), indices.len()))
                }
                Ok(out) => Err(describe_failure(&out)),
                Err(err) => Err(err.to_string()),
            }
        });
        let mut states: Vec<Option<Result<PathState, String>>> =
            targets.iter().map(|_| None).collect();
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
}

/// Deploys the plan's releases (one per target, in plan order).
pub fn deploy(run: &Run<'_>, plan: &Plan, releases: &[Release], options: DeployOptions) -> Summary {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let mut work: Vec<Work<'_>> = plan
        .targets
        .iter()
        .zip(releases)
        .map(|(target, release)| Work {
            target,
            release,
            path: run.transport.host_path(target),
            current: None,
            present: false,
            locked: false,
            status: None,
            message: None,
        })
        .collect();

    // Phase 1: probe.
    let states = run.probe(&targets, false);
    let mut unreachable = false;
    for (w, state) in work.iter_mut().zip(states) {
        match state {
            Ok(state) => {
                w.present = state.releases.contains(&w.release.id);
                w.current = state.current;
                let unchanged = w.current.as_deref() == Some(w.release.id.as_str());
                (run.events)(Event::Probed {
                    host: w.target.host.clone(),
                    artifact: w.target.artifact.clone(),
                    release: w.release.id.clone(),
                    current: w.current.clone(),
                    unchanged,
                });
                if unchanged {
                    w.status = Some(Status::Unchanged);
                }
            }
            Err(message) => {
                unreachable = true;
                run.fail(w, Phase::Probe, message);
            }
        }
    }
    if unreachable {
        return Summary::new(
            &run.env.name,
            options.dry_run,
            work.iter().map(Work::outcome).collect(),
        );
    }
    if options.dry_run {
        return dry_run(run, &mut work);
    }

    // Phase 2: lock and push; a host's artifacts in turn, hosts in parallel.
    let pending: Vec<usize> = (0..work.len()).filter(|&i| work[i].needs_work()).collect();
    let pending_targets: Vec<&Target> = pending.iter().map(|&i| work[i].target).collect();
    let hosts = by_host(&pending_targets);
    let results = parallel(&hosts, run.jobs, |(_, indices)| {
        indices
            .iter()
            .map(|&j| push_one(run, &work[pending[j]], options.break_lock))
            .collect::<Vec<_>>()
    });
    let mut push_failed = false;
    for ((_, indices), results) in hosts.iter().zip(results) {
        for (&j, result) in indices.iter().zip(results) {
            let w = &mut work[pending[j]];
            w.locked = result.locked;
            if let Some(Current(current)) = result.current {
                w.current = current;
            }
            if let Err((phase, message)) = result.result {
                push_failed = true;
                run.fail(w, phase, message);
            }
        }
    }

    // Phase 3: activate, unless a push failed anywhere.
    if !push_failed {
        activate_all(run, &mut work);
    }

    // Phase 4: clean up and unlock.
    finish(run, &mut work);
    Summary::new(
        &run.env.name,
        false,
        work.iter().map(Work::outcome).collect(),
    )
}

struct PushResult {
    locked: bool,
    /// The current release as read under the lock, once the lock is held.
    current: Option<Current>,
    result: Result<(), (Phase, String)>,
}

/// What `current` pointed at (`None`: nothing yet).
struct Current(Option<String>);

fn push_one(run: &Run<'_>, w: &Work<'_>, break_lock: bool) -> PushResult {
    let mut result = PushResult {
        locked: false,
        current: None,
        result: Ok(()),
    };
    let owner = run.identity.lock_owner(&run.env.name);
    let script = run
        .script(w.target)
        .call(
            "landfall_lock",
            [
                w.path.as_str(),
                owner.as_str(),
                if break_lock { "1" } else { "0" },
            ],
        )
        .call(
            "landfall_prepare",
            std::iter::once(w.path.as_str()).chain(shared_dirs(run, w.target)),
        );
    let output = match run.transport.run(&w.target.host, script.text()) {
        Ok(output) => output,
        Err(err) => {
            result.result = Err((Phase::Lock, err.to_string()));
            return result;
        }
    };
    if output.code == Some(steps::EXIT_LOCKED) {
        let holder = steps::reported(&output.stdout_text(), "locked")
            .unwrap_or("")
            .to_string();
        result.result = Err((
            Phase::Lock,
            format!(
                "`{}` is locked by another deploy: {holder}; if that deploy is gone, run again with `--break-lock`",
                w.path
            ),
        ));
        return result;
    }
    result.locked = true;
    if !output.success() {
        result.result = Err((Phase::Lock, describe_failure(&output)));
        return result;
    }
    let current = steps::reported(&output.stdout_text(), "current")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    result.current = Some(Current(current.clone()));
    if w.present || current.as_deref() == Some(w.release.id.as_str()) {
        return result;
    }
    let stats = match run.transport.push(w.target, w.release, current.as_deref()) {
        Ok(stats) => stats,
        Err(err) => {
            result.result = Err((Phase::Push, format!("{err:#}")));
            return result;
        }
    };
    let script = run.script(w.target).call(
        "landfall_finalize",
        [w.path.as_str(), w.release.id.as_str()],
    );
    match run.transport.run(&w.target.host, script.text()) {
        Ok(out) if out.success() => {
            (run.events)(Event::Pushed {
                host: w.target.host.clone(),
                artifact: w.target.artifact.clone(),
                release: w.release.id.clone(),
                files: stats.files,
                bytes: stats.bytes,
            });
        }
        Ok(out) => result.result = Err((Phase::Push, describe_failure(&out))),
        Err(err) => result.result = Err((Phase::Push, err.to_string())),
    }
    result
}

fn shared_dirs<'p>(run: &'p Run<'_>, target: &Target) -> impl Iterator<Item = &'p str> {
    run.project
        .artifact(&target.artifact)
        .into_iter()
        .flat_map(|a| a.shared.iter().map(String::as_str))
}

/// The activate phase: artifacts in order, each over its hosts in batches
/// of `max_parallel`.
fn activate_all(run: &Run<'_>, work: &mut [Work<'_>]) {
    let mut switched: Vec<usize> = Vec::new();
    for artifact in &run.project.artifacts {
        let todo: Vec<usize> = (0..work.len())
            .filter(|&i| work[i].target.artifact == artifact.name && work[i].needs_work())
            .collect();
        let batch = if artifact.max_parallel == 0 {
            todo.len().max(1)
        } else {
            artifact.max_parallel as usize
        };
        let mut failed = false;
        for chunk in todo.chunks(batch) {
            let outputs = parallel(chunk, run.jobs, |&i| activate_one(run, &work[i]));
            for (&i, output) in chunk.iter().zip(outputs) {
                let w = &mut work[i];
                match output {
                    Ok((Activation::Activated, _)) => {
                        w.status = Some(Status::Deployed);
                        switched.push(i);
                        (run.events)(Event::Activated {
                            host: w.target.host.clone(),
                            artifact: w.target.artifact.clone(),
                            release: w.release.id.clone(),
                            previous: w.current.clone(),
                        });
                    }
                    Ok((Activation::PreActivateFailed, detail)) => {
                        failed = true;
                        run.fail(
                            w,
                            Phase::PreActivate,
                            format!("the hook failed; `current` is untouched{detail}"),
                        );
                    }
                    Ok((Activation::Failed { step, revert }, detail)) => {
                        failed = true;
                        let phase = if step == "health" {
                            Phase::Health
                        } else {
                            Phase::Activate
                        };
                        record_revert(run, w, phase, &revert, &detail);
                    }
                    Err(message) => {
                        failed = true;
                        run.fail(w, Phase::Activate, message);
                    }
                }
            }
            if failed {
                break;
            }
        }
        if failed {
            if run.env.on_failure == OnFailure::RollbackAll {
                revert_switched(run, work, &switched);
            }
            return;
        }
    }
}

/// Runs `landfall_activate` for one target; returns how it ended and the
/// tail of the hooks' output, for failure messages.
fn activate_one(run: &Run<'_>, w: &Work<'_>) -> Result<(Activation, String), String> {
    let hooks = &w.target.hooks;
    let previous = w.current.as_deref().unwrap_or("");
    let log_ok = run.log_line(
        w.target,
        "activated",
        Some(&w.release.id),
        w.current.as_deref(),
    );
    let log_back = run.log_line(
        w.target,
        "rolled_back",
        w.current.as_deref(),
        Some(&w.release.id),
    );
    let script = run.script(w.target).call(
        "landfall_activate",
        [
            w.path.as_str(),
            w.release.id.as_str(),
            previous,
            &steps::timeout_seconds(hooks.health_timeout),
            "1",
            &log_ok,
            &log_back,
            hooks.pre_activate.as_deref().unwrap_or(""),
            hooks.activate.as_deref().unwrap_or(""),
            hooks.health.as_deref().unwrap_or(""),
        ],
    );
    let output = run
        .transport
        .run(&w.target.host, script.text())
        .map_err(|e| e.to_string())?;
    let activation = steps::parse_activation(&output).ok_or_else(|| describe_failure(&output))?;
    let tail = output.stderr_tail();
    Ok((
        activation,
        if tail.is_empty() {
            String::new()
        } else {
            format!(":\n{tail}")
        },
    ))
}

fn record_revert(run: &Run<'_>, w: &mut Work<'_>, phase: Phase, revert: &Revert, detail: &str) {
    let what = format!("the {} hook failed{detail}", phase.name());
    match revert {
        Revert::Done { to } => {
            (run.events)(Event::RolledBack {
                host: w.target.host.clone(),
                artifact: w.target.artifact.clone(),
                release: w.release.id.clone(),
                to: to.clone(),
            });
            w.status = Some(Status::RolledBack);
            w.message = Some(match to {
                Some(to) => format!("{}: {what}; rolled back to {to}", phase.name()),
                None => format!(
                    "{}: {what}; no previous release, `current` removed",
                    phase.name()
                ),
            });
        }
        Revert::Failed { to, step } => {
            let to = to.as_deref().unwrap_or("nothing");
            run.fail(
                w,
                phase,
                format!("{what}; switched back to {to}, but its {step} hook failed too"),
            );
        }
        Revert::NotAttempted => run.fail(w, phase, what),
    }
}

/// Switches back every host switched in this run, last first.
fn revert_switched(run: &Run<'_>, work: &mut [Work<'_>], switched: &[usize]) {
    let order: Vec<usize> = switched.iter().rev().copied().collect();
    let outputs = parallel(&order, run.jobs, |&i| {
        let w = &work[i];
        let hooks = &w.target.hooks;
        let log = run.log_line(
            w.target,
            "rolled_back",
            w.current.as_deref(),
            Some(&w.release.id),
        );
        let script = run.script(w.target).call(
            "landfall_back",
            [
                w.path.as_str(),
                w.release.id.as_str(),
                w.current.as_deref().unwrap_or(""),
                &steps::timeout_seconds(hooks.health_timeout),
                &log,
                hooks.activate.as_deref().unwrap_or(""),
                hooks.health.as_deref().unwrap_or(""),
            ],
        );
        run.transport.run(&w.target.host, script.text())
    });
    for (&i, output) in order.iter().zip(outputs) {
        let w = &mut work[i];
        let phase = Phase::Rollback;
        match output {
            Ok(out) if out.code == Some(0) || out.code == Some(1) => {
                let revert = steps::parse_revert(&out.stdout_text());
                let detail = if out.success() {
                    String::new()
                } else {
                    format!(":\n{}", out.stderr_tail())
                };
                record_revert(run, w, phase, &revert, &detail);
                if matches!(revert, Revert::Done { .. }) {
                    w.message = Some("rolled back because another host failed".to_string());
                }
            }
            Ok(out) => run.fail(w, phase, describe_failure(&out)),
            Err(err) => run.fail(w, phase, err.to_string()),
        }
    }
}

/// Phase 4: old releases go, locks are released.
fn finish(run: &Run<'_>, work: &mut [Work<'_>]) {
    let locked: Vec<usize> = (0..work.len()).filter(|&i| work[i].locked).collect();
    let outputs = parallel(&locked, run.jobs, |&i| {
        let w = &work[i];
        let mut script = run.script(w.target);
        if w.status == Some(Status::Deployed) {
            let keep = run
                .project
                .artifact(&w.target.artifact)
                .map_or(1, |a| a.keep)
                .to_string();
            script = script.call(
                "landfall_cleanup",
                [w.path.as_str(), &keep, w.current.as_deref().unwrap_or("")],
            );
        }
        script = script.call(
            "landfall_unlock",
            [w.path.as_str(), run.identity.token.as_str()],
        );
        run.transport.run(&w.target.host, script.text())
    });
    for (&i, output) in locked.iter().zip(outputs) {
        let w = &mut work[i];
        w.locked = false;
        match output {
            Ok(out) if out.success() => {
                let removed: Vec<String> = out
                    .stdout_text()
                    .lines()
                    .filter_map(|l| l.strip_prefix("removed\t").map(str::to_string))
                    .collect();
                if !removed.is_empty() {
                    (run.events)(Event::Removed {
                        host: w.target.host.clone(),
                        artifact: w.target.artifact.clone(),
                        releases: removed,
                    });
                }
            }
            // The release is active; failing to tidy up is worth a warning,
            // not a failed deploy.
            Ok(out) => (run.events)(Event::Warning {
                message: format!(
                    "on `{}`: cleaning up `{}` failed: {}",
                    w.target.host,
                    w.path,
                    describe_failure(&out)
                ),
            }),
            Err(err) => (run.events)(Event::Warning {
                message: format!("cleaning up `{}` failed: {err}", w.path),
            }),
        }
    }
}

fn dry_run(run: &Run<'_>, work: &mut [Work<'_>]) -> Summary {
    for w in work.iter_mut() {
        if w.status.is_some() {
            continue;
        }
        let old = match &w.current {
            Some(current) => run
                .transport
                .read_manifest(w.target, current)
                .ok()
                .flatten()
                .unwrap_or_default(),
            None => crate::assemble::Manifest::default(),
        };
        let diff = changes(&old, &w.release.manifest);
        let hooks = &w.target.hooks;
        let hooks: Vec<String> = [
            ("pre_activate", &hooks.pre_activate),
            ("activate", &hooks.activate),
            ("health", &hooks.health),
        ]
        .into_iter()
        .filter(|(_, h)| h.is_some())
        .map(|(name, _)| name.to_string())
        .collect();
        (run.events)(Event::WouldDeploy {
            host: w.target.host.clone(),
            artifact: w.target.artifact.clone(),
            release: w.release.id.clone(),
            current: w.current.clone(),
            added: diff.added,
            removed: diff.removed,
            changed: diff.changed,
            hooks,
        });
        w.status = Some(Status::Skipped);
        w.message = Some("dry run".to_string());
    }
    Summary::new(
        &run.env.name,
        true,
        work.iter().map(Work::outcome).collect(),
    )
}

/// One artifact on one host, as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub host: String,
    pub artifact: String,
    pub path: String,
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<ReleaseStatus>,
    pub lock: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseStatus {
    pub id: String,
    pub current: bool,
    /// The last log entry that activated this release, if any.
    pub activated: Option<LogEntry>,
}

/// Reads what every target's host holds, one round trip per host.
pub fn status(run: &Run<'_>, plan: &Plan) -> Vec<TargetStatus> {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true);
    targets
        .iter()
        .zip(states)
        .map(|(target, state)| {
            let path = run.transport.host_path(target);
            let mut report = TargetStatus {
                host: target.host.clone(),
                artifact: target.artifact.clone(),
                path,
                current: None,
                releases: Vec::new(),
                lock: None,
                error: None,
            };
            match state {
                Ok(state) => {
                    report.releases = state
                        .releases
                        .iter()
                        .map(|id| ReleaseStatus {
                            id: id.clone(),
                            current: state.current.as_ref() == Some(id),
                            activated: state
                                .log
                                .iter()
                                .rev()
                                .find(|e| e.release.as_ref() == Some(id) && e.event == "activated")
                                .cloned(),
                        })
                        .collect();
                    report.current = state.current;
                    report.lock = state.lock;
                }
                Err(err) => report.error = Some(err),
            }
            report
        })
        .collect()
}

/// Switches every target back to its previous release (or to `to`), runs
/// activate and health, and reports `rolled_back` where that worked.
pub fn rollback(run: &Run<'_>, plan: &Plan, to: Option<&str>, break_lock: bool) -> Summary {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut chosen: Vec<(usize, String, Option<String>)> = Vec::new();
    let mut refused = false;
    for (i, (target, state)) in targets.iter().zip(states).enumerate() {
        let mut outcome = Outcome {
            host: target.host.clone(),
            artifact: target.artifact.clone(),
            status: Status::Skipped,
            release: None,
            previous: None,
            message: None,
        };
        match state
            .map_err(|e| format!("probe: {e}"))
            .and_then(|state| rollback_target(&state, to))
        {
            Ok(Choice::Switch { release, current }) => {
                outcome.release = Some(release.clone());
                outcome.previous.clone_from(&current);
                chosen.push((i, release, current));
            }
            Ok(Choice::Skip(reason)) => outcome.message = Some(reason),
            Err(message) => {
                refused = true;
                outcome.status = Status::Failed;
                outcome.message = Some(message);
            }
        }
        outcomes.push(outcome);
    }
    // Like a deploy, a rollback changes no host unless every host could be
    // read and every choice is clear.
    if refused || chosen.is_empty() {
        if chosen.is_empty() && !refused {
            for outcome in &mut outcomes {
                outcome.status = Status::Failed;
            }
        }
        let mut summary = Summary::new(&run.env.name, false, outcomes);
        summary.ok = false;
        return summary;
    }
    let owner = run.identity.lock_owner(&run.env.name);
    let results = parallel(&chosen, run.jobs, |(i, release, current)| {
        let target = targets[*i];
        let path = run.transport.host_path(target);
        let lock = run.script(target).call(
            "landfall_lock",
            [
                path.as_str(),
                owner.as_str(),
                if break_lock { "1" } else { "0" },
            ],
        );
        match run.transport.run(&target.host, lock.text()) {
            Ok(out) if out.success() => {}
            Ok(out) if out.code == Some(steps::EXIT_LOCKED) => {
                let holder = steps::reported(&out.stdout_text(), "locked")
                    .unwrap_or("")
                    .to_string();
                return Err(format!(
                    "lock: `{path}` is locked by another deploy: {holder}"
                ));
            }
            Ok(out) => return Err(format!("lock: {}", describe_failure(&out))),
            Err(err) => return Err(format!("lock: {err}")),
        }
        let hooks = &target.hooks;
        let log_ok = run.log_line(target, "activated", Some(release), current.as_deref());
        let log_back = run.log_line(target, "rolled_back", current.as_deref(), Some(release));
        let script = run.script(target).call(
            "landfall_activate",
            [
                path.as_str(),
                release.as_str(),
                current.as_deref().unwrap_or(""),
                &steps::timeout_seconds(hooks.health_timeout),
                "1",
                &log_ok,
                &log_back,
                hooks.pre_activate.as_deref().unwrap_or(""),
                hooks.activate.as_deref().unwrap_or(""),
                hooks.health.as_deref().unwrap_or(""),
            ],
        );
        let result = run
            .transport
            .run(&target.host, script.text())
            .map_err(|e| e.to_string());
        let unlock = run.script(target).call(
            "landfall_unlock",
            [path.as_str(), run.identity.token.as_str()],
        );
        let _ = run.transport.run(&target.host, unlock.text());
        result
    });
    for ((i, release, _), result) in chosen.iter().zip(results) {
        let outcome = &mut outcomes[*i];
        match result.map(|out| (steps::parse_activation(&out), out)) {
            Ok((Some(Activation::Activated), _)) => {
                outcome.status = Status::RolledBack;
                (run.events)(Event::RolledBack {
                    host: outcome.host.clone(),
                    artifact: outcome.artifact.clone(),
                    release: outcome.previous.clone().unwrap_or_default(),
                    to: Some(release.clone()),
                });
            }
            Ok((Some(Activation::PreActivateFailed), out)) => {
                outcome.message = Some(format!(
                    "pre_activate failed; `current` is untouched:\n{}",
                    out.stderr_tail()
                ));
            }
            Ok((Some(Activation::Failed { step, .. }), out)) => {
                outcome.message = Some(format!(
                    "{step} failed on {release}; switched back:\n{}",
                    out.stderr_tail()
                ));
            }
            Ok((None, out)) => outcome.message = Some(describe_failure(&out)),
            Err(err) => outcome.message = Some(err),
        }
        if outcome.status == Status::Failed {
            (run.events)(Event::Failed {
                host: outcome.host.clone(),
                artifact: outcome.artifact.clone(),
                phase: Phase::Rollback,
                message: outcome.message.clone().unwrap_or_default(),
            });
        }
    }
    // For a rollback, `rolled_back` is what success looks like; targets
    // with nothing to roll back to are skipped.
    let mut summary = Summary::new(&run.env.name, false, outcomes);
    summary.ok = summary
        .hosts
        .iter()
        .all(|o| matches!(o.status, Status::RolledBack | Status::Skipped));
    summary
}

enum Choice {
    Switch {
        release: String,
        current: Option<String>,
    },
    Skip(String),
}

/// Picks the release to roll back to: `to` (a unique prefix of a release
/// on the host), or the one that was current before the current one.
fn rollback_target(state: &PathState, to: Option<&str>) -> Result<Choice, String> {
    let current = state.current.clone();
    let release = if let Some(prefix) = to {
        let matches: Vec<&String> = state
            .releases
            .iter()
            .filter(|r| r.starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [one] => (*one).clone(),
            [] => return Ok(Choice::Skip(format!("no release `{prefix}` here"))),
            _ => {
                return Err(format!(
                    "`{prefix}` matches several releases; give more characters"
                ));
            }
        }
    } else {
        let from_log = state.log.iter().rev().find_map(|e| {
            (e.event == "activated" && e.release == current)
                .then(|| e.previous.clone())
                .flatten()
        });
        let candidate = from_log.filter(|p| state.releases.contains(p)).or_else(|| {
            state
                .releases
                .iter()
                .find(|r| Some(*r) != current.as_ref())
                .cloned()
        });
        match candidate {
            Some(release) => release,
            None => {
                return Ok(Choice::Skip(
                    "no previous release to roll back to".to_string(),
                ));
            }
        }
    };
    if Some(&release) == current.as_ref() {
        return Ok(Choice::Skip(format!("{release} is already current")));
    }
    Ok(Choice::Switch { release, current })
}
