//! [`Run`], what every fleet operation works with (the project, the
//! environment, the transport, who runs it, its events and its
//! cancellation), and the round trips every operation shares: the probe,
//! locked activations and their log entries.

use super::identity::{Identity, LockHolder};
use super::summary::Status;
use super::{Work, by_host, describe_failure};
use crate::config::{Environment, Project};
use crate::event::{Event, Phase, Reporter};
use crate::parallel::parallel;
use crate::plan::Target;
use crate::steps::{Exit, LogEntry, PathState, Reply, Script, Step};
use crate::transport::Transport;

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
    pub(super) fn is_stale(&self, text: &str) -> bool {
        serde_json::from_str::<LockHolder>(text).is_ok_and(|h| h.is_stale(self.identity))
    }

    /// Judges a lock another deploy holds on `path`, given its first line:
    /// one left behind by a deploy of this machine that is gone is reported
    /// and may be taken over (`Ok`); any other holder is an error that
    /// names it; one kept by a rollout that waits for promotion names the
    /// commands that end the wait.
    pub(super) fn judge_lock(
        &self,
        target: &Target,
        path: &str,
        text: &str,
    ) -> Result<(), (Phase, String)> {
        match serde_json::from_str::<LockHolder>(text) {
            Ok(holder) if holder.waiting.is_some() => {
                Err((Phase::Lock, super::waiting::refusal(path, &holder)))
            }
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

    pub(crate) fn lock_owner(&self) -> String {
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
            confirm: None,
        }
    }

    pub(super) fn log_line(
        &self,
        target: &Target,
        event: &str,
        release: Option<&str>,
        previous: Option<&str>,
        revision: Option<String>,
        undoes: &[String],
    ) -> String {
        let entry = self.log_entry(target, event, release, previous, revision, undoes);
        serde_json::to_string(&entry).expect("log entries serialise")
    }

    /// The log entry of a change this run makes, as [`Run::log_line`]
    /// writes it.
    pub(super) fn log_entry(
        &self,
        target: &Target,
        event: &str,
        release: Option<&str>,
        previous: Option<&str>,
        revision: Option<String>,
        undoes: &[String],
    ) -> LogEntry {
        LogEntry {
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
            reason: None,
        }
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

    pub(super) fn fail(&self, work: &mut Work<'_>, phase: Phase, message: String) {
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
            Probe {
                detail,
                sbom: false,
            },
            claims,
        )
    }

    /// [`probe`](Run::probe) with detail, and, with `sbom`, each current
    /// release's bill of materials.
    pub(crate) fn probe_for_status(
        &self,
        targets: &[&Target],
        sbom: bool,
    ) -> Vec<Result<PathState, String>> {
        probe_hosts(
            self.transport,
            &self.env.name,
            self.jobs,
            targets,
            Probe { detail: true, sbom },
            None,
        )
    }
}

/// What a probe reads besides each path's releases and lock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// Each release's provenance, the log's tail, the service.
    pub(super) detail: bool,
    /// The current release's bill of materials.
    pub(super) sbom: bool,
}

/// One round trip per host: the state of every artifact path on it. With
/// `claims` (per target, a claim of its lock), the same round trip takes
/// the deploy lock of every target whose release is not current, and
/// prepares its directories.
pub(super) fn probe_hosts(
    transport: &dyn Transport,
    env: &str,
    jobs: usize,
    targets: &[&Target],
    probe: Probe,
    claims: Option<&[Step]>,
) -> Vec<Result<PathState, String>> {
    let hosts = by_host(targets);
    let answers = parallel(&hosts, jobs, |(host, indices)| {
        let paths: Vec<String> = indices
            .iter()
            .map(|&i| transport.host_path(targets[i]))
            .collect();
        let mut script = Script::new(env, host, None).step(Step::Probe {
            detail: probe.detail,
            sbom: probe.sbom,
            paths,
        });
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
