//! Decide, then act: what a deploy does with each target, from its release
//! and what the probe read on its host. The real run executes the actions
//! and `--dry-run` prints them; neither derives them again.
//!
//! Architecture invariant: this module does no IO.

use serde::Serialize;

use crate::assemble::Release;
use crate::plan::Target;
use crate::steps::PathState;

/// What a deploy does with one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The release is current and nothing holds the lock: nothing is sent
    /// and no hook runs.
    Unchanged,
    /// The release is current, and `--force` runs its activation again.
    Reactivate,
    /// The release is made on the host as `Upload` says, then activated.
    Activate(Upload),
}

/// How a release gets onto its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Upload {
    /// The host has it, complete: nothing is sent.
    Present,
    /// One copy into `<id>.partial`, which the activation renames.
    Copy,
    /// A copy, then a round trip that completes it: a git release's
    /// checkout and the files added on top, the `build` hook, the rename.
    Complete,
}

/// What a probe read of a target's path that the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub current: Option<&'a str>,
    pub releases: &'a [String],
    /// A deploy holds or left the lock: it may have switched `current`
    /// without finishing the activation.
    pub locked: bool,
}

impl<'a> Found<'a> {
    pub fn of(state: &'a PathState) -> Found<'a> {
        Found {
            current: state.current.as_deref(),
            releases: &state.releases,
            locked: state.lock.is_some(),
        }
    }
}

/// The action for a target whose release is `release`, given what was
/// found on its host.
pub fn decide(target: &Target, release: &Release, found: Found<'_>, force: bool) -> Action {
    let id = release.id.as_str();
    if found.current == Some(id) {
        // A lock means a deploy is running or was interrupted, maybe after
        // switching `current` but before activate and health finished:
        // only an unlocked current release is unchanged.
        if force || found.locked {
            return Action::Reactivate;
        }
        return Action::Unchanged;
    }
    if found.releases.iter().any(|r| r == id) {
        return Action::Activate(Upload::Present);
    }
    if release.git.is_some() || target.hooks.build.is_some() {
        Action::Activate(Upload::Complete)
    } else {
        Action::Activate(Upload::Copy)
    }
}

/// The release a failed activation switches back to. It is the current
/// one, unless a deploy holding the lock (`lock_found`) was interrupted:
/// then `current` may be a release it switched to but never confirmed
/// healthy, and the release the log last confirmed is taken instead (none,
/// if the log confirmed none), as long as the host still has it.
pub fn previous_good(state: &PathState, lock_found: bool) -> Option<String> {
    let current = state.current.clone();
    if !lock_found {
        return current;
    }
    match &state.confirmed {
        Some(Some(confirmed)) if Some(confirmed) != current.as_ref() => {
            if state.releases.contains(confirmed) {
                Some(confirmed.clone())
            } else {
                current
            }
        }
        Some(None) => None,
        _ => current,
    }
}

impl Action {
    /// The hooks this action runs on the host, in order.
    pub fn hooks(self, target: &Target) -> Vec<&'static str> {
        let hooks = &target.hooks;
        let build = matches!(self, Action::Activate(Upload::Complete)) && hooks.build.is_some();
        let activation = self != Action::Unchanged;
        [
            ("build", build),
            ("pre_activate", activation && hooks.pre_activate.is_some()),
            ("service", activation && target.service.is_some()),
            (
                "ready",
                activation && target.service.as_ref().is_some_and(|s| s.ready.is_some()),
            ),
            ("activate", activation && hooks.activate.is_some()),
            ("health", activation && hooks.health.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, runs)| runs.then_some(name))
        .collect()
    }

    /// Whether anything is sent to the host.
    pub fn uploads(self) -> bool {
        matches!(self, Action::Activate(Upload::Copy | Upload::Complete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::Manifest;
    use crate::plan::{RenderedFile, RenderedHooks};

    fn target(build: bool) -> Target {
        Target {
            host: "web1".into(),
            address: "web1".into(),
            artifact: "app".into(),
            path: "/srv/app".into(),
            rendered: Vec::new(),
            activation: RenderedFile {
                dst: crate::plan::ACTIVATION_FILE.into(),
                mode: 0o644,
                contents: Vec::new(),
                secret: false,
                masked: None,
            },
            hooks: RenderedHooks {
                build: build.then(|| "make".into()),
                activate: Some("restart".into()),
                health: Some("probe".into()),
                ..RenderedHooks::default()
            },
            service: None,
            checks: Vec::new(),
        }
    }

    fn release(id: &str) -> Release {
        Release {
            id: id.into(),
            artifact: "app".into(),
            artifact_id: "a".into(),
            tree: "/".into(),
            stage: "/".into(),
            rendered: std::collections::BTreeSet::new(),
            manifest: Manifest::default(),
            secret: false,
            git: None,
            store: crate::assemble::Store { root: "/".into() },
        }
    }

    fn found<'a>(current: Option<&'a str>, releases: &'a [String], locked: bool) -> Found<'a> {
        Found {
            current,
            releases,
            locked,
        }
    }

    #[test]
    fn each_state_of_a_host_has_one_action() {
        let (plain, built) = (target(false), target(true));
        let new = release("new");
        let old = ["old".to_string()];
        let both = ["new".to_string(), "old".to_string()];
        let cases = [
            (
                &plain,
                found(Some("new"), &both, false),
                false,
                Action::Unchanged,
            ),
            (
                &plain,
                found(Some("new"), &both, false),
                true,
                Action::Reactivate,
            ),
            (
                &plain,
                found(Some("new"), &both, true),
                false,
                Action::Reactivate,
            ),
            (
                &plain,
                found(Some("old"), &both, false),
                false,
                Action::Activate(Upload::Present),
            ),
            (
                &built,
                found(Some("old"), &both, false),
                false,
                Action::Activate(Upload::Present),
            ),
            (
                &plain,
                found(Some("old"), &old, false),
                false,
                Action::Activate(Upload::Copy),
            ),
            (
                &plain,
                found(None, &[], false),
                true,
                Action::Activate(Upload::Copy),
            ),
            (
                &built,
                found(Some("old"), &old, false),
                false,
                Action::Activate(Upload::Complete),
            ),
        ];
        for (target, found, force, expected) in cases {
            assert_eq!(
                decide(target, &new, found, force),
                expected,
                "{found:?}, force {force}"
            );
        }
    }

    #[test]
    fn a_release_the_log_never_confirmed_is_not_gone_back_to() {
        let state = |current: &str, confirmed: Option<Option<&str>>| PathState {
            current: Some(current.into()),
            releases: vec!["r3".into(), "r2".into(), "r1".into()],
            confirmed: confirmed.map(|c| c.map(str::to_string)),
            ..PathState::default()
        };
        let good = |s: &PathState, lock| previous_good(s, lock);
        // No lock: whatever is current was confirmed, or never touched.
        assert_eq!(
            good(&state("r3", Some(Some("r2"))), false).as_deref(),
            Some("r3")
        );
        // An interrupted deploy switched to r3 but the log confirmed r2.
        assert_eq!(
            good(&state("r3", Some(Some("r2"))), true).as_deref(),
            Some("r2")
        );
        assert_eq!(
            good(&state("r3", Some(Some("r3"))), true).as_deref(),
            Some("r3")
        );
        assert_eq!(
            good(&state("r3", Some(Some("gone"))), true).as_deref(),
            Some("r3")
        );
        assert_eq!(good(&state("r3", Some(None)), true), None);
        assert_eq!(good(&state("r3", None), true).as_deref(), Some("r3"));
    }

    #[test]
    fn the_build_hook_runs_only_for_a_release_that_is_made() {
        let built = target(true);
        assert_eq!(
            Action::Activate(Upload::Complete).hooks(&built),
            ["build", "activate", "health"]
        );
        assert_eq!(
            Action::Activate(Upload::Present).hooks(&built),
            ["activate", "health"]
        );
        assert_eq!(Action::Reactivate.hooks(&built), ["activate", "health"]);
        assert!(Action::Unchanged.hooks(&built).is_empty());
        assert!(!Action::Activate(Upload::Present).uploads());
        assert!(Action::Activate(Upload::Copy).uploads());
    }
}
