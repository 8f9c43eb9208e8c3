//! Hooks and their time limits: the top-level `[hooks]`, run on the
//! deploying machine, and an artifact's `hooks`, run on its hosts, with
//! the `hooks.local` that replace them under `--local`.

use std::time::Duration;

use toml::Spanned;

use super::{Checker, parse_duration};
use crate::config::{Hook, Hooks, ProjectHooks, raw};

pub(super) const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `build`, `pre_activate` and `activate` may run by default: a
/// hook that hangs must not hold a deploy, and its lock, forever.
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// The top-level `[hooks]`.
pub(super) fn resolve_project_hooks(check: &mut Checker, raw: raw::ProjectHooks) -> ProjectHooks {
    let command = |check: &mut Checker, text: Option<Spanned<String>>| {
        let text = text?;
        if text.get_ref().contains('\0') {
            check.error(text.span(), "hooks cannot contain NUL characters", "");
            return None;
        }
        if text.get_ref().trim().is_empty() {
            check.error(
                text.span(),
                "an empty hook",
                "remove the key, or give it a command",
            );
            return None;
        }
        Some(text.into_inner())
    };
    ProjectHooks {
        before: command(check, raw.before),
        after: command(check, raw.after),
        timeout: raw.timeout.map_or(DEFAULT_HOOK_TIMEOUT, |t| {
            parse_duration(check, "timeout", &t)
        }),
    }
}

/// An artifact's `hooks`, and those it runs under `--local`.
pub(super) fn resolve_hooks(check: &mut Checker, raw: raw::Hooks) -> (Hooks, Hooks) {
    let hook = |check: &mut Checker, text: Option<Spanned<String>>| {
        let text = text?;
        if text.get_ref().contains('\0') {
            check.error(text.span(), "hooks cannot contain NUL characters", "");
            return None;
        }
        Some(Hook {
            span: text.span(),
            text: text.into_inner(),
        })
    };
    let timeout = |check: &mut Checker, key: &str, text: Option<Spanned<String>>| {
        text.map(|text| parse_duration(check, key, &text))
    };
    let hooks = Hooks {
        build: hook(check, raw.build),
        pre_activate: hook(check, raw.pre_activate),
        activate: hook(check, raw.activate),
        health: hook(check, raw.health),
        health_timeout: timeout(check, "health_timeout", raw.health_timeout)
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        once: hook(check, raw.once),
        timeout: timeout(check, "timeout", raw.timeout).unwrap_or(DEFAULT_HOOK_TIMEOUT),
    };
    let mut local = hooks.clone();
    if let Some(over) = raw.local {
        let over = over.into_inner();
        if let Some(h) = hook(check, over.build) {
            local.build = Some(h);
        }
        if let Some(h) = hook(check, over.pre_activate) {
            local.pre_activate = Some(h);
        }
        if let Some(h) = hook(check, over.activate) {
            local.activate = Some(h);
        }
        if let Some(h) = hook(check, over.health) {
            local.health = Some(h);
        }
        if let Some(h) = hook(check, over.once) {
            local.once = Some(h);
        }
        if let Some(t) = timeout(check, "health_timeout", over.health_timeout) {
            local.health_timeout = t;
        }
        if let Some(t) = timeout(check, "timeout", over.timeout) {
            local.timeout = t;
        }
    }
    (hooks, local)
}
