//! `rollback`: the selected hosts back to where the fleet's history says,
//! or to `--to`: every selected host of an artifact goes there, or none
//! does ([`switch_back`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{Outcome, Run, Status, Summary, describe_failure, history};
use crate::error::{Error, Result};
use crate::event::{Event, Phase};
use crate::parallel::parallel;
use crate::plan::{Plan, Target};
use crate::steps::{Activation, PathState, Script, Step};

/// What to roll back to, and how.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    pub targets: Targets,
    /// `--to`: a deploy id, a release id, a commit or a git ref of the
    /// workspace; the last deploy undone when `None`.
    pub to: Option<String>,
    /// Take a lock another run left.
    pub break_lock: bool,
    /// A protected environment's confirmation, given up front.
    pub yes: bool,
}

/// Rolls back as `request` says. A rollback changes hosts as a deploy
/// does: a protected environment asks first. It needs no clean tree nor
/// branch: it runs what the releases recorded, not the workspace.
pub fn rollback(
    settings: &Settings,
    request: &RollbackRequest,
    ui: &dyn Frontend,
) -> Result<Summary> {
    // A git ref is resolved before any host is contacted.
    let to = request
        .to
        .as_deref()
        .map(|to| goal(settings, to))
        .transpose()?;
    let confirmation = (!request.yes).then_some("rollback");
    on_hosts(
        settings,
        &request.targets,
        Select::Targets,
        confirmation,
        ui,
        |OnHosts { run, plan, .. }| switch_back(run, plan, to.as_deref(), request.break_lock),
    )
}

/// What `--to` names, as hosts record it: ids and hashes as given, a git
/// ref (a tag, `HEAD~1`) as the commit it names in the workspace.
fn goal(settings: &Settings, to: &str) -> Result<String> {
    if to
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
    {
        return Ok(to.to_string());
    }
    crate::git::commit_of(settings.workspace_dir(), to).ok_or_else(|| {
        Error::Usage(format!(
            "`--to {to}` is neither a deploy id, a release id or a commit hash, nor a git ref of the workspace"
        ))
    })
}

/// Switches every target back to its previous release (or to `to`), runs
/// activate and health, and reports `rolled_back` where that worked.
pub fn switch_back(run: &Run<'_>, plan: &Plan, to: Option<&str>, break_lock: bool) -> Summary {
    crate::deploy::watching(run, |run| rollback_watched(run, plan, to, break_lock))
}

fn rollback_watched(run: &Run<'_>, plan: &Plan, to: Option<&str>, break_lock: bool) -> Summary {
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let states = run.probe(&targets, true, None);
    let mut outcomes: Vec<Outcome> = targets.iter().map(|t| Outcome::skipped(t)).collect();
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
        let time = crate::deploy::activation_time(target).max(Duration::from_secs(600));
        let activate = |script: Script| {
            script.allowing(time).step(run.activation(
                target,
                &path,
                (release, current.as_deref()),
                true,
                &crate::deploy::Change {
                    event: "rollback",
                    revision: revision.clone(),
                    undoes: &undoes[&target.artifact],
                },
            ))
        };
        if run.cancel.requested() {
            return Err(crate::deploy::INTERRUPTED.into());
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
