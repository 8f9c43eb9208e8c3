//! `[artifact.X.rollout]`: canaries, batches, pauses, the failure
//! budget and the confirmation's window, with `max_parallel`, the older
//! name of `rollout.batch`.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::{Amount, Rollout, raw};

/// `[artifact.X.rollout]`, with `max_parallel`, its older name for
/// `batch`.
pub(super) fn resolve_rollout(
    check: &mut Checker,
    max_parallel: Option<&Spanned<u32>>,
    raw: Option<Spanned<raw::Rollout>>,
) -> Rollout {
    let mut rollout = Rollout::default();
    if let Some(max) = max_parallel
        && *max.get_ref() > 0
    {
        rollout.batch = Amount::Count(*max.get_ref());
    }
    let Some(raw) = raw else {
        return rollout;
    };
    let raw = raw.into_inner();
    if let Some(canary) = raw.canary {
        rollout.canary = canary.into_inner();
    }
    if let Some(batch) = raw.batch {
        if let Some(max) = max_parallel {
            check.error(
                max.span(),
                "`max_parallel` and `rollout.batch` say the same thing",
                "`max_parallel` is the older name of `rollout.batch`: keep only `batch`",
            );
        }
        match amount(check, "batch", &batch) {
            Some(Amount::Count(0)) => check.error(
                batch.span(),
                "`batch` must be at least 1 host (or a share, such as \"25%\")",
                "",
            ),
            Some(b) => rollout.batch = b,
            None => {}
        }
    }
    if let Some(pause) = raw.pause {
        rollout.pause = match pause.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() => d.unsigned_abs(),
            _ => {
                check.error(
                    pause.span(),
                    format!("invalid duration `{}`", pause.get_ref()),
                    "write e.g. `30s`, `2m` or `1m 30s`",
                );
                Duration::ZERO
            }
        };
    }
    if let Some(max_fail) = raw.max_fail
        && let Some(m) = amount(check, "max_fail", &max_fail)
    {
        rollout.max_fail = m;
    }
    if let Some(confirm) = raw.confirm {
        rollout.confirm = confirm_window(check, &confirm);
    }
    rollout
}

/// `confirm`: a duration longer than zero, rounded up to whole seconds
/// (the host's timer counts seconds).
fn confirm_window(check: &mut Checker, raw: &Spanned<String>) -> Option<Duration> {
    match raw.get_ref().parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_positive() => {
            let d = d.unsigned_abs();
            Some(Duration::from_secs(
                d.as_secs() + u64::from(d.subsec_nanos() > 0),
            ))
        }
        Ok(_) => {
            check.error(
                raw.span(),
                format!(
                    "`confirm` must be longer than zero, not `{}`",
                    raw.get_ref()
                ),
                "write how long a host waits to be confirmed, e.g. `30s`, or leave `confirm` out",
            );
            None
        }
        Err(_) => {
            check.error(
                raw.span(),
                format!("invalid duration `{}`", raw.get_ref()),
                "write e.g. `30s`, `2m` or `1m 30s`",
            );
            None
        }
    }
}

/// A number of hosts (`2`) or a share of them (`"25%"`).
fn amount(check: &mut Checker, key: &str, raw: &Spanned<raw::Amount>) -> Option<Amount> {
    let help = "write a number of hosts, such as 2, or a share of them, such as \"25%\"";
    match raw.get_ref() {
        raw::Amount::Count(n) => {
            if let Ok(n) = u32::try_from(*n) {
                return Some(Amount::Count(n));
            }
            check.error(
                raw.span(),
                format!("`{key}` must be a number of hosts, not {n}"),
                help,
            );
            None
        }
        raw::Amount::Text(text) => {
            let percent = text
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u32>().ok());
            match percent {
                Some(p @ 1..=100) => Some(Amount::Percent(p)),
                Some(0) if key == "max_fail" => Some(Amount::Count(0)),
                _ => {
                    check.error(
                        raw.span(),
                        format!("`{key}` must be a number of hosts or a share from 1% to 100%, not `{text}`"),
                        help,
                    );
                    None
                }
            }
        }
    }
}
