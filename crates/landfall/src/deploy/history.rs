//! An artifact's history across its hosts, as their logs record it, and
//! where a rollback takes each host.
//!
//! Every change a run makes on a host is logged with the run's id
//! ([`Identity::deploy`](super::Identity::deploy)), the same on every
//! host, while release ids differ per host (rendered files do). A run's
//! entries on one host make a *turn*: the release before it and after it.
//! A deploy whose canary failed and switched back has turns that changed
//! nothing; a rollback's turns say which deploys it undid.
//!
//! `rollback` with no target goes back to what every host ran before the
//! last deploy that changed anything and that no rollback undid; with
//! `--to` it goes to what a deploy left, to a release, or to a commit.
//! Either way the choice is made for the whole artifact before any host
//! changes: a host that lacks its release is named, and nothing moves.

use std::collections::{BTreeMap, BTreeSet};

use crate::steps::PathState;

/// What one run did to one host's path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Turn {
    /// The run's id; `None` for entries logged before runs had ids, each
    /// its own turn.
    run: Option<String>,
    before: Option<String>,
    after: Option<String>,
    rollback: bool,
    undoes: Vec<String>,
}

/// What a host's log says it ran at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran<'a> {
    Release(&'a str),
    /// No release: the path was not deployed yet.
    Nothing,
    /// The log does not go back that far.
    Unrecorded,
}

impl<'a> From<Option<&'a str>> for Ran<'a> {
    fn from(release: Option<&'a str>) -> Ran<'a> {
        release.map_or(Ran::Nothing, Ran::Release)
    }
}

/// One host's turns, in the order its log has them.
#[derive(Debug, Default)]
struct Turns(Vec<Turn>);

impl Turns {
    fn of(state: &PathState) -> Turns {
        let mut turns: Vec<Turn> = Vec::new();
        for e in state.log.iter().filter(|e| e.is_change()) {
            if let Some(turn) = turns.last_mut()
                && turn.run.is_some()
                && turn.run == e.deploy
            {
                turn.after.clone_from(&e.release);
                turn.rollback |= e.event == "rollback";
                turn.undoes.extend(e.undoes.iter().cloned());
                continue;
            }
            // A switch back alone (the activation failed before it was
            // logged) and a forced reactivation start where they end.
            let before = match e.event.as_str() {
                "rolled_back" | "reactivated" => e.release.clone(),
                _ => e.previous.clone(),
            };
            turns.push(Turn {
                run: e.deploy.clone(),
                before,
                after: e.release.clone(),
                rollback: e.event == "rollback",
                undoes: e.undoes.clone(),
            });
        }
        Turns(turns)
    }

    /// The last turn before run `id` began, or `id`'s own.
    fn around(&self, id: &str, ledger: &Ledger) -> (Option<&Turn>, Option<&Turn>) {
        let own = self.0.iter().find(|t| t.run.as_deref() == Some(id));
        let before = self.0.iter().rev().find(|t| {
            t.run
                .as_deref()
                .is_none_or(|run| ledger.order(run) < ledger.order(id))
        });
        (before, own)
    }

    /// What the host ran just before run `id`.
    fn before(&self, id: &str, ledger: &Ledger) -> Ran<'_> {
        match self.around(id, ledger) {
            (_, Some(own)) => Ran::from(own.before.as_deref()),
            (Some(earlier), None) => Ran::from(earlier.after.as_deref()),
            (None, None) => Ran::Unrecorded,
        }
    }

    /// What the host ran once run `id` was done.
    fn after(&self, id: &str, ledger: &Ledger) -> Ran<'_> {
        match self.around(id, ledger) {
            (_, Some(own)) => Ran::from(own.after.as_deref()),
            (Some(earlier), None) => Ran::from(earlier.after.as_deref()),
            (None, None) => Ran::Unrecorded,
        }
    }

    /// Whether the last change here was logged before runs had ids.
    fn unnamed(&self) -> bool {
        self.0.last().is_some_and(|t| t.run.is_none())
    }
}

/// Where a rollback goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Goal {
    /// What every host ran before a deploy (a rollback with no `--to`).
    Before(String),
    /// Each host's previous release, for hosts whose logs predate run ids.
    Previous,
    /// What a deploy left: the run's whole id.
    Deploy(String),
    /// A release, by a prefix of its id.
    Release(String),
    /// The release built from a commit, by a prefix of its hash.
    Commit(String),
}

/// The shortest commit prefix taken for a commit, as git's.
const COMMIT_PREFIX: usize = 4;

/// Tells what `to` names, among the runs, releases and commits the hosts
/// of every artifact record: one kind only, and one run at most.
pub(crate) fn goal<'a>(
    to: &str,
    states: impl Iterator<Item = &'a PathState>,
) -> Result<Goal, String> {
    let mut runs = BTreeSet::new();
    let (mut release, mut commit) = (false, false);
    for state in states {
        for e in &state.log {
            if let Some(run) = e.deploy.as_deref().filter(|r| r.starts_with(to)) {
                runs.insert(run.to_string());
            }
        }
        release |= state.releases.iter().any(|r| r.starts_with(to));
        commit |= to.len() >= COMMIT_PREFIX
            && state
                .provenance
                .values()
                .any(|p| p.revision.as_deref().is_some_and(|rev| rev.starts_with(to)));
    }
    if runs.len() > 1 {
        return Err(format!(
            "`{to}` names several deploys ({}); give more characters",
            runs.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let named: Vec<(Goal, &str)> = [
        runs.pop_first().map(|run| (Goal::Deploy(run), "a deploy")),
        release.then(|| (Goal::Release(to.to_string()), "a release")),
        commit.then(|| (Goal::Commit(to.to_string()), "a commit")),
    ]
    .into_iter()
    .flatten()
    .collect();
    match <[_; 1]>::try_from(named) {
        Ok([(goal, _)]) => Ok(goal),
        Err(named) if named.is_empty() => Err(format!(
            "no deploy, release or commit `{to}` is recorded on these hosts (`status` shows them)"
        )),
        Err(named) => {
            let kinds: Vec<&str> = named.iter().map(|(_, kind)| *kind).collect();
            Err(format!(
                "`{to}` names {}; give more characters",
                kinds.join(" and ")
            ))
        }
    }
}

/// Where a rollback takes one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    Switch(String),
    /// On it already, or nothing to do here: why.
    Stay(String),
    /// Its release is not here (never was, or was removed): why.
    Lacking(String),
}

/// Where a rollback takes every host of one artifact.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per host, in the order given.
    pub picks: Vec<Pick>,
    /// What the hosts go back to, for messages: `what it ran before
    /// deploy 20261207-164200-3fa2`.
    pub what: String,
    /// The deploys the rollback undoes, recorded with it.
    pub undoes: Vec<String>,
}

/// The runs recorded on a selection of hosts, across every artifact (run
/// ids are the fleet's), in the order they began, and those of them that
/// are deploys that changed something and that no rollback undid.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// When each run logged its first change, on any host: runs are told
    /// apart by it, and by their ids, which begin with the second they
    /// began (two may share it).
    began: BTreeMap<String, jiff::Timestamp>,
    /// The standing deploys, oldest first.
    standing: Vec<String>,
    /// Some host's last change was logged before runs had ids.
    unnamed: bool,
}

impl Ledger {
    pub(crate) fn of<'a>(states: impl IntoIterator<Item = &'a PathState>) -> Ledger {
        let states: Vec<&PathState> = states.into_iter().collect();
        let mut began: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
        for e in states.iter().flat_map(|s| &s.log).filter(|e| e.is_change()) {
            let (Some(run), Ok(time)) = (&e.deploy, e.time.parse::<jiff::Timestamp>()) else {
                continue;
            };
            let first = began.entry(run.clone()).or_insert(time);
            *first = (*first).min(time);
        }
        let turns: Vec<Turns> = states.iter().map(|s| Turns::of(s)).collect();
        let undone: BTreeSet<&str> = turns
            .iter()
            .flat_map(|t| &t.0)
            .flat_map(|t| t.undoes.iter().map(String::as_str))
            .collect();
        let mut ledger = Ledger {
            began,
            standing: Vec::new(),
            unnamed: turns.iter().any(Turns::unnamed),
        };
        let standing: BTreeSet<&str> = turns
            .iter()
            .flat_map(|t| &t.0)
            .filter(|t| !t.rollback && t.before != t.after)
            .filter_map(|t| t.run.as_deref())
            .filter(|run| !undone.contains(run))
            .collect();
        let mut standing: Vec<String> = standing.into_iter().map(str::to_string).collect();
        standing.sort_by(|a, b| ledger.order(a).cmp(&ledger.order(b)));
        ledger.standing = standing;
        ledger
    }

    /// Where run `id` comes among the others.
    fn order<'a>(&self, id: &'a str) -> (Option<jiff::Timestamp>, &'a str) {
        (self.began.get(id).copied(), id)
    }

    /// What a rollback with no `--to` goes back past: the last deploy that
    /// changed anything. `None` when there is none, or when hosts' logs
    /// predate run ids (each then goes back a release).
    pub(crate) fn undo(&self) -> Result<Goal, String> {
        match self.standing.last() {
            Some(last) => Ok(Goal::Before(last.clone())),
            None if self.unnamed => Ok(Goal::Previous),
            None => Err("no deploy recorded on these hosts changed anything that a rollback has not undone: nothing to roll back".into()),
        }
    }

    /// The standing deploys after `id`: what going back to it undoes.
    fn after(&self, id: &str) -> Vec<String> {
        self.standing
            .iter()
            .filter(|run| self.order(run) > self.order(id))
            .cloned()
            .collect()
    }
}

/// Decides where a rollback takes each of the hosts of one artifact
/// (`hosts`, each with its state), towards `goal`. `Err` refuses the whole
/// artifact, saying why.
pub(crate) fn rollback(
    hosts: &[(&str, &PathState)],
    goal: &Goal,
    ledger: &Ledger,
) -> Result<Plan, String> {
    let turns: Vec<Turns> = hosts.iter().map(|(_, s)| Turns::of(s)).collect();
    let switch_to = |state: &PathState, release: Option<&str>, lacking: String| match release {
        Some(release) if state.current.as_deref() == Some(release) => {
            Pick::Stay(format!("already on {release}"))
        }
        Some(release) if state.releases.iter().any(|r| r == release) => {
            Pick::Switch(release.to_string())
        }
        Some(release) => Pick::Lacking(format!("{release}{lacking} is no longer here")),
        None => Pick::Lacking(lacking),
    };
    match goal {
        Goal::Previous => Ok(unnamed(hosts)),
        Goal::Before(last) => {
            // Hosts on which the deploy made the artifact's first release:
            // if it is every host's, the artifact came with the deploy, and
            // stays.
            let first = |turns: &Turns, state: &PathState| {
                turns.before(last, ledger) == Ran::Nothing && state.current.is_some()
            };
            if turns
                .iter()
                .zip(hosts)
                .all(|(turns, (_, state))| first(turns, state))
            {
                return Ok(Plan {
                    picks: hosts
                        .iter()
                        .map(|_| Pick::Stay(format!("deploy {last} made its first release here")))
                        .collect(),
                    what: format!("what it ran before deploy {last}"),
                    undoes: Vec::new(),
                });
            }
            let picks = hosts
                .iter()
                .zip(&turns)
                .map(|((_, state), turns)| match turns.before(last, ledger) {
                    _ if state.current.is_none() && turns.0.is_empty() => {
                        Pick::Stay("nothing was deployed here".into())
                    }
                    Ran::Release(release) => switch_to(state, Some(release), String::new()),
                    Ran::Nothing => Pick::Lacking(format!("ran nothing before deploy {last}")),
                    Ran::Unrecorded => {
                        Pick::Lacking(format!("its log records nothing before deploy {last}"))
                    }
                })
                .collect();
            let plan = Plan {
                picks,
                what: format!("what it ran before deploy {last}"),
                undoes: vec![last.clone()],
            };
            one_commit(hosts, &plan)?;
            Ok(plan)
        }
        Goal::Deploy(id) => Ok(Plan {
            picks: hosts
                .iter()
                .zip(&turns)
                .map(|((_, state), turns)| match turns.after(id, ledger) {
                    Ran::Release(release) => switch_to(state, Some(release), String::new()),
                    Ran::Nothing => Pick::Lacking(format!("ran nothing after deploy {id}")),
                    Ran::Unrecorded => {
                        Pick::Lacking(format!("its log records nothing as old as deploy {id}"))
                    }
                })
                .collect(),
            what: format!("what it ran after deploy {id}"),
            undoes: ledger.after(id),
        }),
        Goal::Release(prefix) => {
            let mut picks = Vec::new();
            for (_, state) in hosts {
                let matches: Vec<&String> = state
                    .releases
                    .iter()
                    .filter(|r| r.starts_with(prefix.as_str()))
                    .collect();
                picks.push(match matches.as_slice() {
                    [one] => switch_to(state, Some(one), String::new()),
                    [] => Pick::Lacking(format!("no release `{prefix}` here")),
                    _ => {
                        return Err(format!(
                            "`{prefix}` matches several releases; give more characters"
                        ));
                    }
                });
            }
            Ok(plan_towards(
                hosts,
                &turns,
                picks,
                format!("release {prefix}"),
                ledger,
            ))
        }
        Goal::Commit(prefix) => {
            let picks = hosts
                .iter()
                .map(|(_, state)| {
                    // The one of the commit's releases activated last.
                    let built = state.releases.iter().find(|r| {
                        state.provenance.get(*r).is_some_and(|p| {
                            p.revision
                                .as_deref()
                                .is_some_and(|rev| rev.starts_with(prefix.as_str()))
                        })
                    });
                    match built {
                        Some(release) => switch_to(state, Some(release), String::new()),
                        None => Pick::Lacking(format!("no release built from {prefix} here")),
                    }
                })
                .collect();
            Ok(plan_towards(
                hosts,
                &turns,
                picks,
                format!("commit {prefix}"),
                ledger,
            ))
        }
    }
}

/// A plan towards given releases: it undoes the deploys that came after
/// the last run that left a host on its release.
fn plan_towards(
    hosts: &[(&str, &PathState)],
    turns: &[Turns],
    picks: Vec<Pick>,
    what: String,
    ledger: &Ledger,
) -> Plan {
    let left = hosts
        .iter()
        .zip(turns)
        .zip(&picks)
        .filter_map(|(((_, state), turns), pick)| {
            let release = match pick {
                Pick::Switch(release) => release.as_str(),
                Pick::Stay(_) => state.current.as_deref()?,
                Pick::Lacking(_) => return None,
            };
            turns
                .0
                .iter()
                .filter(|t| t.after.as_deref() == Some(release))
                .filter_map(|t| t.run.as_deref())
                .max_by_key(|run| ledger.order(run))
        })
        .max_by_key(|run| ledger.order(run));
    Plan {
        picks,
        what,
        undoes: left.map(|run| ledger.after(run)).unwrap_or_default(),
    }
}

/// Refuses a rollback that would leave the artifact's hosts on releases
/// of different commits: the fleet ran several versions before the deploy
/// it goes back past (a deploy was narrowed to some hosts), and which one
/// is meant only a person can say.
fn one_commit(hosts: &[(&str, &PathState)], plan: &Plan) -> Result<(), String> {
    let mut commits: Vec<(String, Vec<&str>)> = Vec::new();
    for ((host, state), pick) in hosts.iter().zip(&plan.picks) {
        let release = match pick {
            Pick::Switch(release) => release.as_str(),
            Pick::Stay(_) => match state.current.as_deref() {
                Some(current) => current,
                None => continue,
            },
            Pick::Lacking(_) => continue,
        };
        let Some(provenance) = state.provenance.get(release) else {
            continue;
        };
        let Some(revision) = provenance.revision.as_deref() else {
            continue;
        };
        let commit = crate::git::describe(revision, provenance.dirty);
        match commits.iter_mut().find(|(c, _)| *c == commit) {
            Some((_, names)) => names.push(host),
            None => commits.push((commit, vec![host])),
        }
    }
    if commits.len() < 2 {
        return Ok(());
    }
    let each: Vec<String> = commits
        .iter()
        .map(|(commit, names)| format!("{commit} on {}", names.join(", ")))
        .collect();
    Err(format!(
        "the hosts would go back to different commits ({}), as a deploy before was narrowed to some of them: choose one with `--to COMMIT` or `--to DEPLOY`",
        each.join("; ")
    ))
}

/// Hosts whose last change was logged before runs had ids: each goes back
/// to the release that was current before its current one.
fn unnamed(hosts: &[(&str, &PathState)]) -> Plan {
    let picks = hosts
        .iter()
        .map(|(_, state)| {
            let current = state.current.as_ref();
            let from_log = state.log.iter().rev().find_map(|e| {
                (e.event == "activated" && e.release.as_ref() == current)
                    .then(|| e.previous.clone())
                    .flatten()
            });
            let candidate = from_log
                .filter(|p| state.releases.contains(p))
                .or_else(|| state.releases.iter().find(|r| Some(*r) != current).cloned());
            match candidate {
                Some(release) => Pick::Switch(release),
                None => Pick::Lacking("no previous release to roll back to".into()),
            }
        })
        .collect();
    Plan {
        picks,
        what: "its previous release (its log predates deploy ids)".into(),
        undoes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::Provenance;
    use crate::steps::LogEntry;

    fn entry(
        event: &str,
        run: Option<&str>,
        release: Option<&str>,
        previous: Option<&str>,
    ) -> LogEntry {
        LogEntry {
            time: "2026-12-07T00:00:00Z".into(),
            event: event.into(),
            env: "prod".into(),
            artifact: "web".into(),
            release: release.map(str::to_string),
            previous: previous.map(str::to_string),
            user: "ops".into(),
            from: "laptop".into(),
            revision: None,
            command: None,
            status: None,
            id: None,
            deploy: run.map(str::to_string),
            undoes: Vec::new(),
            reason: None,
        }
    }

    /// A host's state from its log: its releases are every one the log
    /// names, current the last one switched to.
    fn host(log: Vec<LogEntry>) -> PathState {
        let mut releases: Vec<String> = Vec::new();
        for e in &log {
            for r in [&e.release, &e.previous].into_iter().flatten() {
                if !releases.contains(r) {
                    releases.push(r.clone());
                }
            }
        }
        let current = log
            .iter()
            .rev()
            .find(|e| e.is_change())
            .and_then(|e| e.release.clone());
        PathState {
            current,
            releases,
            log,
            ..PathState::default()
        }
    }

    fn built(revision: &str) -> Provenance {
        Provenance {
            revision: Some(revision.into()),
            dirty: false,
            bundle: None,
            overrides: Vec::new(),
            user: "ops".into(),
            from: "laptop".into(),
            time: "2026-12-07T00:00:00Z".into(),
            landfall: "0".into(),
        }
    }

    fn deployed(run: &str, to: &str, from: Option<&str>) -> LogEntry {
        entry("activated", Some(run), Some(to), from)
    }

    /// Where a rollback takes `hosts`, towards `goal` or, with none, past
    /// the last deploy.
    fn plan(hosts: &[PathState], goal: Option<&Goal>) -> Result<Plan, String> {
        let named: Vec<(&str, &PathState)> = hosts.iter().map(|s| ("h", s)).collect();
        let ledger = Ledger::of(hosts);
        match goal {
            Some(goal) => rollback(&named, goal, &ledger),
            None => rollback(&named, &ledger.undo()?, &ledger),
        }
    }

    fn switches(plan: &Plan) -> Vec<Option<&str>> {
        plan.picks
            .iter()
            .map(|p| match p {
                Pick::Switch(r) => Some(r.as_str()),
                _ => None,
            })
            .collect()
    }

    const D1: &str = "20261201-100000-aaaa";
    const D2: &str = "20261202-100000-bbbb";
    const D3: &str = "20261203-100000-cccc";

    #[test]
    fn a_failed_canary_changed_nothing_so_every_host_goes_back_past_the_deploy_before() {
        // D1 took every host from its 0 release to its 1 (ids differ per
        // host); D2's canary (a) failed and switched back; b and c were
        // never reached.
        let a = host(vec![
            deployed(D1, "a1", Some("a0")),
            entry("rolled_back", Some(D2), Some("a1"), Some("a2")),
        ]);
        let b = host(vec![deployed(D1, "b1", Some("b0"))]);
        let c = host(vec![deployed(D1, "c1", Some("c0"))]);
        let plan = plan(&[a, b, c], None).unwrap();
        assert_eq!(switches(&plan), [Some("a0"), Some("b0"), Some("c0")]);
        assert_eq!(plan.undoes, [D1]);
    }

    #[test]
    fn a_rollout_stopped_after_its_canary_goes_back_on_the_canary_only() {
        let a = host(vec![
            deployed(D1, "a1", Some("a0")),
            deployed(D2, "a2", Some("a1")),
        ]);
        let b = host(vec![deployed(D1, "b1", Some("b0"))]);
        let plan = plan(&[a, b], None).unwrap();
        assert_eq!(plan.picks[0], Pick::Switch("a1".into()));
        assert!(
            matches!(plan.picks[1], Pick::Stay(_)),
            "{:?}",
            plan.picks[1]
        );
        assert_eq!(plan.undoes, [D2]);
    }

    #[test]
    fn a_second_rollback_goes_back_past_the_deploy_before() {
        let mut undo = entry("rollback", Some(D3), Some("a1"), Some("a2"));
        undo.undoes = vec![D2.into()];
        let a = host(vec![
            deployed(D1, "a1", Some("a0")),
            deployed(D2, "a2", Some("a1")),
            undo,
        ]);
        let plan = plan(&[a], None).unwrap();
        assert_eq!(switches(&plan), [Some("a0")]);
        assert_eq!(plan.undoes, [D1]);
    }

    #[test]
    fn a_host_whose_release_is_gone_is_named_and_nothing_else_is_decided() {
        let a = host(vec![
            deployed(D1, "a1", Some("a0")),
            deployed(D2, "a2", Some("a1")),
        ]);
        let mut b = host(vec![
            deployed(D1, "b1", Some("b0")),
            deployed(D2, "b2", Some("b1")),
        ]);
        b.releases.retain(|r| r != "b1");
        let plan = plan(&[a, b], None).unwrap();
        assert_eq!(plan.picks[0], Pick::Switch("a1".into()));
        assert!(matches!(&plan.picks[1], Pick::Lacking(why) if why.contains("b1")));
    }

    #[test]
    fn an_artifact_a_deploy_brought_stays_unless_it_was_on_some_hosts_before() {
        let a = host(vec![deployed(D1, "a1", None)]);
        let b = host(vec![deployed(D1, "b1", None)]);
        let brought = plan(&[a, b], None).unwrap();
        assert!(brought.picks.iter().all(|p| matches!(p, Pick::Stay(_))));
        assert!(brought.undoes.is_empty());

        // A host added to the fleet by the deploy cannot go back with the
        // others.
        let a = host(vec![
            deployed(D1, "a1", None),
            deployed(D2, "a2", Some("a1")),
        ]);
        let b = host(vec![deployed(D2, "b2", None)]);
        let plan = plan(&[a, b], None).unwrap();
        assert_eq!(plan.picks[0], Pick::Switch("a1".into()));
        assert!(matches!(&plan.picks[1], Pick::Lacking(_)));
    }

    #[test]
    fn hosts_that_ran_different_commits_before_are_not_guessed_between() {
        let mut a = host(vec![
            deployed(D1, "a1", None),
            deployed(D3, "a3", Some("a1")),
        ]);
        let mut b = host(vec![
            deployed(D1, "b1", None),
            deployed(D2, "b2", Some("b1")),
            deployed(D3, "b3", Some("b2")),
        ]);
        let built = |rev: &str| built(rev);
        a.provenance.insert("a1".into(), built("1111111111"));
        b.provenance.insert("b2".into(), built("2222222222"));
        let err = plan(&[a, b], None).unwrap_err();
        assert!(err.contains("different commits"), "{err}");
    }

    #[test]
    fn to_a_deploy_takes_each_host_to_what_that_deploy_left_it_on() {
        // b was not changed by D2 (unchanged, or not reached): it ran what
        // D1 left it on.
        let a = host(vec![
            deployed(D1, "a1", Some("a0")),
            deployed(D2, "a2", Some("a1")),
            deployed(D3, "a3", Some("a2")),
        ]);
        let b = host(vec![
            deployed(D1, "b1", Some("b0")),
            deployed(D3, "b3", Some("b1")),
        ]);
        let plan = plan(&[a, b], Some(&Goal::Deploy(D2.into()))).unwrap();
        assert_eq!(switches(&plan), [Some("a2"), Some("b1")]);
        assert_eq!(plan.undoes, [D3]);
    }

    #[test]
    fn what_to_names_is_one_kind_of_thing() {
        let mut a = host(vec![
            deployed(D1, "2026120100", None),
            deployed(D2, "bb", Some("2026120100")),
        ]);
        a.provenance.insert("bb".into(), built("cafe0123"));
        let states = || std::iter::once(&a);
        assert_eq!(goal("20261202", states()), Ok(Goal::Deploy(D2.into())));
        assert_eq!(goal("cafe", states()), Ok(Goal::Commit("cafe".into())));
        assert_eq!(goal("bb", states()), Ok(Goal::Release("bb".into())));
        assert!(
            goal("2026", states())
                .unwrap_err()
                .contains("several deploys")
        );
        assert!(
            goal("20261201", states())
                .unwrap_err()
                .contains("a deploy and a release")
        );
        assert!(goal("ff", states()).is_err());
    }

    #[test]
    fn runs_that_began_in_the_same_second_are_told_apart_by_when_they_logged() {
        let (early, late) = ("20261207-100000-ffff", "20261207-100000-0000");
        let mut first = deployed(early, "a1", Some("a0"));
        first.time = "2026-12-07T10:00:00.1Z".into();
        let mut second = deployed(late, "a2", Some("a1"));
        second.time = "2026-12-07T10:00:00.52Z".into();
        let plan = plan(&[host(vec![first, second])], None).unwrap();
        assert_eq!(switches(&plan), [Some("a1")]);
        assert_eq!(plan.undoes, [late]);
    }

    #[test]
    fn logs_before_deploy_ids_go_back_one_release_per_host() {
        let a = host(vec![
            entry("activated", None, Some("a1"), Some("a0")),
            entry("activated", None, Some("a2"), Some("a1")),
        ]);
        let plan = plan(&[a], None).unwrap();
        assert_eq!(switches(&plan), [Some("a1")]);
        assert!(plan.undoes.is_empty());
    }
}
