//! `status` and `rollback`: reading what hosts hold, and switching back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{Outcome, Run, Status, Summary, describe_failure, history, parallel};
use crate::assemble::Provenance;
use crate::config::Host;
use crate::event::{Event, Phase};
use crate::plan::{Plan, Target};
use crate::steps::{
    Activation, ExecInput, Exit, LogEntry, Orphan, PathState, Report, Script, ServiceState, Step,
};

/// One artifact on one host, as `status` reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetStatus {
    pub host: String,
    pub artifact: String,
    pub path: String,
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<ReleaseStatus>,
    pub lock: Option<String>,
    /// The service the current release runs, as its manager says it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReleaseStatus {
    pub id: String,
    pub current: bool,
    /// Where the release comes from, as it recorded when it was made.
    pub provenance: Option<Provenance>,
    /// The last log entry that switched to this release, if any: a
    /// deploy, a rollback, or a switch back.
    pub activated: Option<LogEntry>,
}

/// Reads what every target's host holds, one round trip per host.
pub fn status(run: &Run<'_>, plan: &Plan) -> Vec<TargetStatus> {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true, None);
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
                service: None,
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
                            // A release recorded before overrides were
                            // masked may hold a credential in the clear.
                            provenance: state.provenance.get(id).map(|p| Provenance {
                                overrides: p
                                    .overrides
                                    .iter()
                                    .map(|o| crate::secrets::shown_override(o))
                                    .collect(),
                                ..p.clone()
                            }),
                            activated: state
                                .log
                                .iter()
                                .rev()
                                .find(|e| e.release.as_ref() == Some(id))
                                .cloned(),
                        })
                        .collect();
                    report.current = state.current;
                    report.lock = state.lock;
                    report.service = state.service;
                }
                Err(err) => report.error = Some(err),
            }
            report
        })
        .collect()
}

/// How `logs` ended for one target.
#[derive(Debug, Clone)]
pub struct LogsResult {
    pub host: String,
    pub artifact: String,
    /// Why its log could not be read, if it could not.
    pub error: Option<String>,
}

/// Prints the log of the service of every target that runs one, each host
/// at once, each line after its time: the last `lines` lines since the
/// current release's service started (of every release with
/// `all_releases`), and with `follow` what comes next, until `stop` says
/// so. Each line goes to `line` with its host and artifact as it comes.
pub fn logs(
    run: &Run<'_>,
    plan: &Plan,
    lines: u32,
    follow: bool,
    all_releases: bool,
    stop: &(dyn Fn() -> bool + Sync),
    line: &(dyn Fn(&Target, &str) + Sync),
) -> Vec<LogsResult> {
    let targets: Vec<&Target> = plan
        .targets
        .iter()
        .filter(|t| t.service.is_some())
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                scope.spawn(move || {
                    let script = run.script(target).step(Step::ServiceLogs {
                        path: run.transport.host_path(target),
                        lines,
                        follow,
                        all_releases,
                    });
                    let reply = run
                        .transport
                        .stream(&target.host, &script, stop, &mut |text| {
                            line(target, text.trim_end_matches(['\n', '\r']));
                        });
                    let error = match reply {
                        Ok(reply) if reply.exit == Exit::NoService => {
                            Some("its current release runs no service".to_string())
                        }
                        // Stopped on purpose, by a signal.
                        Ok(reply) if reply.output.code.is_none() => None,
                        Ok(reply) if !reply.success() => Some(describe_failure(&reply)),
                        Ok(_) => None,
                        Err(err) => Some(err.to_string()),
                    };
                    LogsResult {
                        host: target.host.clone(),
                        artifact: target.artifact.clone(),
                        error,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a log reader does not panic"))
            .collect()
    })
}

/// Switches every target back to its previous release (or to `to`), runs
/// activate and health, and reports `rolled_back` where that worked.
pub fn rollback(run: &Run<'_>, plan: &Plan, to: Option<&str>, break_lock: bool) -> Summary {
    super::watching(run, |run| rollback_watched(run, plan, to, break_lock))
}

fn rollback_watched(run: &Run<'_>, plan: &Plan, to: Option<&str>, break_lock: bool) -> Summary {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true, None);
    let mut outcomes: Vec<Outcome> = targets
        .iter()
        .map(|target| Outcome {
            host: target.host.clone(),
            artifact: target.artifact.clone(),
            status: Status::Skipped,
            release: None,
            previous: None,
            batch: None,
            message: None,
        })
        .collect();
    // Like a deploy, a rollback changes no host unless every host could be
    // read and every choice is clear.
    let mut refused = false;
    for (outcome, state) in outcomes.iter_mut().zip(&states) {
        if let Err(err) = state {
            outcome.status = Status::Failed;
            outcome.message = Some(format!("probe: {err}"));
            refused = true;
        }
    }
    let read: Vec<&PathState> = states.iter().filter_map(|s| s.as_ref().ok()).collect();
    let ledger = history::Ledger::of(read.iter().copied());
    let goal = match to {
        Some(to) => history::goal(to, read.iter().copied()),
        None => ledger.undo(),
    };
    let goal = match goal {
        Ok(goal) => goal,
        Err(message) => return refusal(run, outcomes, &message),
    };
    // Per target switched: its index, the release to switch to, the
    // current one, and the commit the release was built from; per
    // artifact, the deploys the rollback undoes.
    let mut chosen: Vec<(usize, String, Option<String>, Option<String>)> = Vec::new();
    let mut undoes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let artifacts: BTreeSet<&str> = targets.iter().map(|t| t.artifact.as_str()).collect();
    for artifact in artifacts {
        let indices: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].artifact == artifact && states[i].is_ok())
            .collect();
        let hosts: Vec<(&str, &PathState)> = indices
            .iter()
            .map(|&i| (targets[i].host.as_str(), states[i].as_ref().expect("read")))
            .collect();
        let decided = match history::rollback(&hosts, &goal, &ledger) {
            Ok(decided) => decided,
            Err(message) => {
                for &i in &indices {
                    outcomes[i].status = Status::Failed;
                    outcomes[i].message = Some(message.clone());
                }
                (run.events)(Event::Warning {
                    message: format!("`{artifact}`: {message}"),
                });
                refused = true;
                continue;
            }
        };
        let lacking: Vec<usize> = indices
            .iter()
            .zip(&decided.picks)
            .filter(|(_, pick)| matches!(pick, history::Pick::Lacking(_)))
            .map(|(&i, _)| i)
            .collect();
        // An artifact that no host has the goal of is not concerned: an id
        // is one artifact's.
        if to.is_some() && lacking.len() == indices.len() {
            for &i in &indices {
                outcomes[i].message = Some(format!("nothing of `{}` here", to.unwrap_or_default()));
            }
            continue;
        }
        // The hosts of an artifact go back together, or none does: a fleet
        // is not left on two versions.
        if !lacking.is_empty() {
            let names: Vec<String> = lacking
                .iter()
                .map(|&i| format!("`{}`", targets[i].host))
                .collect();
            for (&i, pick) in indices.iter().zip(&decided.picks) {
                let outcome = &mut outcomes[i];
                outcome.status = Status::Failed;
                outcome.message = Some(match pick {
                    history::Pick::Lacking(why) => format!(
                        "cannot go back to {}: {why}; nothing was rolled back",
                        decided.what
                    ),
                    _ => format!(
                        "not rolled back, as {} cannot go back with it",
                        names.join(", ")
                    ),
                });
            }
            (run.events)(Event::Warning {
                message: format!(
                    "`{artifact}`: {} cannot go back to {}: nothing was rolled back (select the hosts that can with `--only`)",
                    names.join(", "),
                    decided.what
                ),
            });
            refused = true;
            continue;
        }
        undoes.insert(artifact.to_string(), decided.undoes.clone());
        for (&i, pick) in indices.iter().zip(decided.picks) {
            let state = states[i].as_ref().expect("read");
            match pick {
                history::Pick::Switch(release) => {
                    let outcome = &mut outcomes[i];
                    outcome.release = Some(release.clone());
                    outcome.previous.clone_from(&state.current);
                    outcome.message = Some(format!("back to {}", decided.what));
                    let revision = state
                        .provenance
                        .get(&release)
                        .and_then(|p| Some(crate::git::describe(p.revision.as_deref()?, p.dirty)));
                    chosen.push((i, release, state.current.clone(), revision));
                }
                history::Pick::Stay(why) => {
                    outcomes[i].message = Some(format!("{why}: {}", decided.what));
                }
                history::Pick::Lacking(_) => unreachable!("refused above"),
            }
        }
    }
    if refused {
        let mut summary = Summary::new(run, false, outcomes);
        summary.ok = false;
        return summary;
    }
    if chosen.is_empty() {
        // Every host is where the rollback would take it: asked for with
        // `--to`, that is done; with none, there was nothing to undo.
        if let history::Goal::Before(last) = &goal {
            return refusal(
                run,
                outcomes,
                &format!(
                    "nothing to roll back: every host runs what it ran before deploy {last}, or the deploy brought it"
                ),
            );
        }
        let mut summary = Summary::new(run, false, outcomes);
        summary.ok = true;
        return summary;
    }
    // What runs is what the release recorded when it was made: its own
    // hooks, with its own secrets, whatever the workspace says today.
    let results = parallel(&chosen, run.jobs, |(i, release, current, revision)| {
        let target = targets[*i];
        let path = run.transport.host_path(target);
        // The release's own hooks may have other time limits than today's:
        // it is given at least ten minutes.
        let time = super::activation_time(target).max(Duration::from_secs(600));
        let activate = |script: Script| {
            script.allowing(time).step(run.activation(
                target,
                &path,
                (release, current.as_deref()),
                true,
                &super::Change {
                    event: "rollback",
                    revision: revision.clone(),
                    undoes: &undoes[&target.artifact],
                },
            ))
        };
        if crate::interrupt::stop_requested() {
            return Err(super::INTERRUPTED.into());
        }
        let result = run
            .locked(target, &path, break_lock, activate)
            .map_err(|(phase, err)| format!("{}: {err}", phase.name()));
        let unlock = run.script(target).step(Step::Unlock {
            path: path.clone(),
            token: run.identity.token.clone(),
        });
        let _ = run.transport.run(&target.host, &unlock);
        result
    });
    for ((i, release, _, _), result) in chosen.iter().zip(results) {
        let outcome = &mut outcomes[*i];
        // A target chosen for switching back either is or has failed.
        outcome.status = Status::Failed;
        if let Ok(reply) = &result {
            run.notify(&outcome.host, &outcome.artifact, reply);
        }
        match result.map(|reply| (reply.activation(), reply)) {
            Ok((Some(Activation::Activated), _)) => {
                outcome.status = Status::RolledBack;
                (run.events)(Event::RolledBack {
                    host: outcome.host.clone(),
                    artifact: outcome.artifact.clone(),
                    release: outcome.previous.clone().unwrap_or_default(),
                    to: Some(release.clone()),
                });
            }
            Ok((Some(Activation::PreActivateFailed { step }), out)) => {
                let what = if step == "service" {
                    "the service manager cannot be used here"
                } else {
                    "pre_activate failed"
                };
                outcome.message = Some(format!(
                    "{what}; `current` is untouched:\n{}",
                    out.hook_output()
                ));
            }
            Ok((Some(Activation::Failed { step, .. }), out)) => {
                outcome.message = Some(format!(
                    "{step} failed on {release}; switched back:\n{}",
                    out.failure_output()
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
    let mut summary = Summary::new(run, false, outcomes);
    summary.ok = summary
        .hosts
        .iter()
        .all(|o| matches!(o.status, Status::RolledBack | Status::Skipped));
    summary
}

/// A rollback refused as a whole before any host changed: why, on every
/// target.
fn refusal(run: &Run<'_>, mut outcomes: Vec<Outcome>, message: &str) -> Summary {
    for outcome in &mut outcomes {
        outcome.status = Status::Failed;
        outcome.message = Some(format!("{message}: nothing was rolled back"));
    }
    (run.events)(Event::Warning {
        message: format!("{message}: nothing was rolled back"),
    });
    let mut summary = Summary::new(run, false, outcomes);
    summary.ok = false;
    summary
}

/// What a command run by `exec` did on one host.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExecResult {
    pub host: String,
    /// The command's exit status; `None` if the host was not reached or a
    /// signal ended it.
    pub code: Option<i32>,
    /// What it printed (its errors too), up to its first 64 KiB, then a
    /// line that says how much more there was. A line longer than 64 KiB
    /// is cut, and says so.
    pub stdout: String,
    /// The last 64 KiB at most of what the host's shell or ssh printed
    /// besides the command's output.
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The longest a command of `exec` may run on a host.
const EXEC_TIME: Duration = Duration::from_secs(3600);

/// How much of a command's output [`ExecResult::stdout`] keeps: the lines
/// went to the caller as they came, and a host may print without end.
const EXEC_OUTPUT_KEPT: usize = 64 * 1024;

/// A command to run on hosts (`exec`, or `run` in the shell).
#[derive(Debug, Clone, Copy)]
pub struct ExecRequest<'a> {
    /// Its words, each passed as one (`sh -c '…'` for shell syntax).
    pub command: &'a [String],
    /// Start it in this artifact's `current` rather than the home
    /// directory.
    pub artifact: Option<&'a str>,
    /// A file every host gets on its standard input, streamed to each as
    /// its command reads it, never held in memory.
    pub input: Option<&'a std::path::Path>,
    /// The secrets to mask in the command as the hosts' logs record it.
    pub mask: Option<&'a crate::secrets::Mask>,
}

/// Runs a command on hosts, `jobs` at a time, each for at most an hour,
/// handing each line it prints (its errors with its output) to `line` with
/// its host as it comes. Each host's log (the log of each artifact of the
/// plan there, or of `artifact`'s only) records who ran what and how it
/// ended. A host that has no `artifact` is not worked on.
pub fn exec(
    run: &Run<'_>,
    plan: &Plan,
    hosts: &[&Host],
    request: &ExecRequest<'_>,
    line: &(dyn Fn(&str, &str) + Sync),
) -> Vec<ExecResult> {
    let input = request.input.map_or(ExecInput::Nothing, |path| {
        ExecInput::File(path.to_path_buf())
    });
    let text = command_text(request);
    let id = exec_id(run, &text);
    parallel(hosts, run.jobs, |host| {
        let mut result = ExecResult {
            host: host.name.clone(),
            code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
        };
        let script = match exec_script(run, plan, host, request, (&id, &text), input.clone()) {
            Ok(script) => script,
            Err(err) => {
                result.error = Some(err);
                return result;
            }
        };
        let started = std::time::Instant::now();
        let stop = || crate::interrupt::stop_requested() || started.elapsed() > EXEC_TIME;
        let mut output = String::new();
        let mut dropped = 0;
        let reply = run
            .transport
            .stream(&host.name, &script, &stop, &mut |text| {
                line(&host.name, text.trim_end_matches(['\n', '\r']));
                if dropped == 0 && output.len() < EXEC_OUTPUT_KEPT {
                    output.push_str(text);
                } else {
                    dropped += text.len();
                }
            });
        if dropped > 0 {
            let _ = writeln!(
                output,
                "… [output cut at {} bytes, {dropped} more were not kept]",
                output.len()
            );
        }
        result.stdout = output;
        match reply {
            Ok(reply) => {
                result.code = reply.output.code;
                result.stderr = String::from_utf8_lossy(&reply.output.stderr).into_owned();
                if reply.output.code.is_none() && started.elapsed() > EXEC_TIME {
                    result.error = Some(format!(
                        "stopped after {}s, the longest a command may run",
                        EXEC_TIME.as_secs()
                    ));
                }
            }
            Err(err) => result.error = Some(err.to_string()),
        }
        result
    })
}

/// Runs a command on one host for the person at this terminal, on a
/// pseudo-terminal there (`exec -t`, and `ssh HOST` in the shell, whose
/// command is a login shell), logged on the host as [`exec`] logs it.
/// Returns its exit status.
///
/// Its output is not made inert (see `landfall::inert`) nor bounded: the
/// person asked for the host's terminal itself, one host they chose, as
/// `ssh -t` gives it, and a full-screen program, a pager or an editor
/// there works only with its control sequences. Nothing of it passes
/// through landfall's memory, which the pseudo-terminal connects straight
/// to this one.
pub fn exec_attached(
    run: &Run<'_>,
    plan: &Plan,
    host: &Host,
    request: &ExecRequest<'_>,
) -> Result<Option<i32>, String> {
    let text = command_text(request);
    let script = exec_script(
        run,
        plan,
        host,
        request,
        (&exec_id(run, &text), &text),
        ExecInput::Terminal,
    )?;
    run.transport
        .attach(&host.name, &script)
        .map_err(|err| err.to_string())
}

/// The command as the hosts' logs record it: its words quoted, secrets
/// masked.
fn command_text(request: &ExecRequest<'_>) -> String {
    let text = request
        .command
        .iter()
        .map(|w| crate::process::quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    match request.mask {
        Some(mask) => mask.apply(&text).into_owned(),
        None => text,
    }
}

/// The id both log entries of one command share, on every host it runs
/// on: who ran it, where, when and what, hashed, so that no two runs of
/// a command share one.
fn exec_id(run: &Run<'_>, text: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    for part in [
        run.identity.user.as_str(),
        run.identity.machine.as_str(),
        &run.env.name,
        &now.as_nanos().to_string(),
        &std::process::id().to_string(),
        text,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.finalize().to_hex()[..16].to_string()
}

/// The script that runs `request` on `host`, and logs it there as `text`
/// under `id`: before it runs, and how it ended.
fn exec_script(
    run: &Run<'_>,
    plan: &Plan,
    host: &Host,
    request: &ExecRequest<'_>,
    (id, text): (&str, &str),
    input: ExecInput,
) -> Result<Script, String> {
    let on_host: Vec<&Target> = plan
        .targets
        .iter()
        .filter(|t| t.host == host.name)
        .filter(|t| request.artifact.is_none_or(|a| t.artifact == a))
        .collect();
    let dir = match request.artifact {
        Some(artifact) => match on_host.first() {
            Some(target) => Some(format!("{}/current", run.transport.host_path(target))),
            None => return Err(format!("`{artifact}` is not deployed to this host")),
        },
        None => None,
    };
    let artifact = match on_host.as_slice() {
        [one] => one.artifact.clone(),
        _ => String::new(),
    };
    let start = LogEntry {
        time: jiff::Timestamp::now().to_string(),
        event: "exec".into(),
        env: run.env.name.clone(),
        artifact,
        release: None,
        previous: None,
        user: run.identity.user.clone(),
        from: run.identity.machine.clone(),
        revision: None,
        command: Some(text.to_string()),
        status: None,
        id: Some(id.to_string()),
        deploy: None,
        undoes: Vec::new(),
    };
    // The time it ended and its status are only known on the host, once
    // the command ended: the host adds them to the entry's other fields.
    let serde_json::Value::Object(mut end) = serde_json::to_value(LogEntry {
        event: "exec_end".into(),
        ..start.clone()
    })
    .expect("log entries serialise") else {
        unreachable!("a log entry is an object")
    };
    end.remove("time");
    let end = serde_json::Value::Object(end).to_string();
    Ok(
        Script::new(&run.env.name, &host.name, None).step(Step::Exec {
            dir,
            input,
            logs: on_host.iter().map(|t| run.transport.host_path(t)).collect(),
            start: serde_json::to_string(&start).expect("log entries serialise"),
            end: end[1..end.len() - 1].to_string(),
            words: request.command.to_vec(),
        }),
    )
}

/// The orphans on one host: directories that hold releases of this
/// project and environment which the model no longer deploys there.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostOrphans {
    pub host: String,
    pub orphans: Vec<Orphan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads every selected host's record of the paths landfall deployed to,
/// one round trip per host, and reports those that hold releases of this
/// project and environment but are none of the paths the plan deploys to
/// on that host: an artifact that left `deploy.toml`, moved (`path`
/// changed), or left the host (`roles` changed).
pub fn orphans(run: &Run<'_>, plan: &Plan, hosts: &[&Host]) -> Vec<HostOrphans> {
    parallel(hosts, run.jobs, |host| {
        let known: Vec<String> = plan
            .targets
            .iter()
            .filter(|t| t.host == host.name)
            .map(|t| run.transport.host_path(t))
            .collect();
        let script = Script::new(&run.env.name, &host.name, None).step(Step::Orphans {
            project: run.project.token(),
            env: run.env.name.clone(),
            known,
        });
        let (orphans, error) = match run.transport.run(&host.name, &script) {
            Ok(reply) if reply.success() => (reply.orphans(), None),
            Ok(reply) => (Vec::new(), Some(describe_failure(&reply))),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        HostOrphans {
            host: host.name.clone(),
            orphans,
            error,
        }
    })
}

/// How pruning went on one host: the paths removed, and the error that
/// stopped it, if one did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PruneResult {
    pub host: String,
    pub pruned: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Removes the orphans found by [`orphans`], each under its lock: its
/// service stopped and removed (unless another path installed a service of
/// that name since), its directory, and its line in the host's record.
pub fn prune(run: &Run<'_>, found: &[HostOrphans]) -> Vec<PruneResult> {
    let with_orphans: Vec<&HostOrphans> = found.iter().filter(|h| !h.orphans.is_empty()).collect();
    parallel(&with_orphans, run.jobs, |host| {
        let mut script = Script::new(&run.env.name, &host.host, None);
        let time: Duration = Duration::from_secs(120);
        for orphan in &host.orphans {
            script = script.step(Step::Prune {
                path: orphan.path.clone(),
                owner: run.lock_owner(),
                name: format!(
                    "{}/{}@{}",
                    run.project.token(),
                    orphan.artifact,
                    run.env.name
                ),
            });
        }
        let script = script.allowing(time);
        let mut result = PruneResult {
            host: host.host.clone(),
            pruned: Vec::new(),
            error: None,
        };
        if crate::interrupt::stop_requested() {
            result.error = Some(super::INTERRUPTED.into());
            return result;
        }
        match run.transport.run(&host.host, &script) {
            Ok(reply) => {
                // An orphan's service left running is reported before the
                // orphan's removal.
                let mut kept = false;
                for report in &reply.reports {
                    match report {
                        Report::Pruned { path } => {
                            let orphan = host.orphans.iter().find(|o| &o.path == path);
                            (run.events)(Event::Pruned {
                                host: host.host.clone(),
                                path: path.clone(),
                                artifact: orphan.map(|o| o.artifact.clone()).unwrap_or_default(),
                                service: orphan
                                    .and_then(|o| o.service.clone())
                                    .filter(|_| !std::mem::take(&mut kept)),
                            });
                            result.pruned.push(path.clone());
                        }
                        Report::KeptService { name } => {
                            kept = true;
                            (run.events)(Event::Warning {
                                message: format!(
                                    "on `{}`: the service `{name}` was left running: another path installed it since",
                                    host.host
                                ),
                            });
                        }
                        _ => {}
                    }
                }
                if !reply.success() {
                    let error = match reply.locked_by() {
                        Some(holder) => format!("locked by another deploy: {holder}"),
                        None => describe_failure(&reply),
                    };
                    (run.events)(Event::Failed {
                        host: host.host.clone(),
                        artifact: String::new(),
                        phase: Phase::Prune,
                        message: error.clone(),
                    });
                    result.error = Some(error);
                }
            }
            Err(err) => result.error = Some(err.to_string()),
        }
        result
    })
}
