//! `[artifact.X.rollout]`: canaries, batches, pauses (or a wait for a
//! person's promotion), the failure budget, the checks run from outside
//! the hosts and the confirmation's window, with `max_parallel`, the older
//! name of `rollout.batch`.

use std::time::Duration;

use toml::Spanned;

use super::{Checker, parse_duration};
use crate::config::{Amount, Bound, Check, Hook, Probe, Rollout, raw};

/// The `pause` that waits for `cargo deploy promote`.
const UNTIL_PROMOTED: &str = "until promoted";

/// How long a check may take to pass after a batch is activated, unless
/// it says.
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

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
            // A person decides when the rollout goes on.
            _ if pause.get_ref() == UNTIL_PROMOTED => {
                rollout.promote = true;
                Duration::ZERO
            }
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
    rollout.checks = checks(check, raw.check);
    rollout
}

/// `[[artifact.X.rollout.check]]`, each named (by its `name`, or else by
/// its kind, numbered when there are several) and each name once.
fn checks(check: &mut Checker, raw: Vec<Spanned<raw::Check>>) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    let kinds: Vec<Option<&'static str>> = raw.iter().map(|c| kind(c.get_ref())).collect();
    for (i, raw) in raw.into_iter().enumerate() {
        let span = raw.span();
        let mut raw = raw.into_inner();
        let (raw_name, raw_timeout) = (raw.name.take(), raw.timeout.take());
        let Some(probe) = probe(check, span.clone(), raw) else {
            continue;
        };
        let kind = kinds[i].unwrap_or("check");
        let name = match &raw_name {
            Some(name)
                if name.get_ref().trim().is_empty()
                    || name.get_ref().chars().any(char::is_control) =>
            {
                check.error(
                    name.span(),
                    "a check's name must be a word or a few, on one line",
                    "",
                );
                continue;
            }
            Some(name) => name.get_ref().clone(),
            None if kinds.iter().filter(|k| **k == Some(kind)).count() > 1 => {
                let n = kinds[..=i].iter().filter(|k| **k == Some(kind)).count();
                format!("{kind} {n}")
            }
            None => kind.to_string(),
        };
        if out.iter().any(|c| c.name == name) {
            check.error(
                raw_name.as_ref().map_or(span.clone(), Spanned::span),
                format!("two checks are named `{name}`"),
                "give each check a `name` of its own",
            );
            continue;
        }
        let timeout = raw_timeout.as_ref().map_or(DEFAULT_CHECK_TIMEOUT, |t| {
            parse_duration(check, "timeout", t)
        });
        out.push(Check {
            name,
            probe,
            timeout,
        });
    }
    out
}

/// The kind of a check: the one of `http`, `exec` and `prometheus` it
/// gives, if it gives one.
fn kind(raw: &raw::Check) -> Option<&'static str> {
    match (&raw.http, &raw.exec, &raw.prometheus) {
        (Some(_), None, None) => Some("http"),
        (None, Some(_), None) => Some("exec"),
        (None, None, Some(_)) => Some("prometheus"),
        _ => None,
    }
}

/// What a check asks, with every key checked against its kind.
fn probe(check: &mut Checker, span: std::ops::Range<usize>, raw: raw::Check) -> Option<Probe> {
    let template = |check: &mut Checker, text: Spanned<String>| {
        if text.get_ref().contains('\0') {
            check.error(text.span(), "a check cannot contain NUL characters", "");
            return None;
        }
        if text.get_ref().trim().is_empty() {
            check.error(text.span(), "this is empty", "");
            return None;
        }
        Some(Hook {
            span: text.span(),
            text: text.into_inner(),
        })
    };
    // A key that belongs to another kind of check is a mistake.
    let misplaced =
        |check: &mut Checker, kind: &str, keys: &[(&str, Option<std::ops::Range<usize>>)]| {
            for (key, span) in keys {
                if let Some(span) = span {
                    check.error(
                        span.clone(),
                        format!("`{key}` is not a key of an `{kind}` check"),
                        "",
                    );
                }
            }
        };
    let span_of = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
    match kind(&raw) {
        Some("http") => {
            misplaced(
                check,
                "http",
                &[
                    ("query", span_of(&raw.query)),
                    ("below", raw.below.as_ref().map(Spanned::span)),
                    ("above", raw.above.as_ref().map(Spanned::span)),
                ],
            );
            let mut status = None;
            if let Some(s) = raw.status {
                if let Ok(code @ 100..=599) = u16::try_from(*s.get_ref()) {
                    status = Some(code);
                } else {
                    check.error(
                        s.span(),
                        format!(
                            "`status` must be an HTTP status, from 100 to 599, not {}",
                            s.get_ref()
                        ),
                        "",
                    );
                    return None;
                }
            }
            let url = template(check, raw.http?)?;
            if !url.text.starts_with("http://")
                && !url.text.starts_with("https://")
                && !url.text.starts_with("{{")
            {
                check.error(
                    url.span.clone(),
                    "an `http` check needs a URL",
                    "write e.g. \"https://{{ host.name }}.example.com/health\"",
                );
                return None;
            }
            Some(Probe::Http {
                url,
                status,
                body: raw.body.map(Spanned::into_inner),
            })
        }
        Some("exec") => {
            misplaced(
                check,
                "exec",
                &[
                    ("status", raw.status.as_ref().map(Spanned::span)),
                    ("body", span_of(&raw.body)),
                    ("query", span_of(&raw.query)),
                    ("below", raw.below.as_ref().map(Spanned::span)),
                    ("above", raw.above.as_ref().map(Spanned::span)),
                ],
            );
            Some(Probe::Exec {
                command: template(check, raw.exec?)?,
            })
        }
        Some("prometheus") => {
            misplaced(
                check,
                "prometheus",
                &[
                    ("status", raw.status.as_ref().map(Spanned::span)),
                    ("body", span_of(&raw.body)),
                ],
            );
            let server = template(check, raw.prometheus?)?;
            let Some(query) = raw.query else {
                check.error(
                    span,
                    "a `prometheus` check needs a `query`",
                    "write e.g. query = 'sum(rate(http_errors_total[1m]))' and below = 0.5",
                );
                return None;
            };
            let query = template(check, query)?;
            let bound = match (raw.below, raw.above) {
                (Some(below), None) => Bound::Below(below.into_inner()),
                (None, Some(above)) => Bound::Above(above.into_inner()),
                (Some(_), Some(above)) => {
                    check.error(
                        above.span(),
                        "a check gives `below` or `above`, not both",
                        "",
                    );
                    return None;
                }
                (None, None) => {
                    check.error(
                        query.span.clone(),
                        "a `prometheus` check needs a bound its samples must meet",
                        "add `below = N` or `above = N`",
                    );
                    return None;
                }
            };
            if let Bound::Below(b) | Bound::Above(b) = bound
                && !b.is_finite()
            {
                check.error(query.span.clone(), "a bound must be a finite number", "");
                return None;
            }
            Some(Probe::Prometheus {
                server,
                query,
                bound,
            })
        }
        _ => {
            check.error(
                span,
                "a check gives exactly one of `http`, `exec` and `prometheus`",
                "split it into one check for each",
            );
            None
        }
    }
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
