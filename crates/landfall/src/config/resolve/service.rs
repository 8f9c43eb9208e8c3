//! `[artifact.X.service]`: the manager, the service's name and account,
//! its command, environment, sockets and readiness check, and its time
//! limits. What is rendered per host (`exec`, `environment`, `listen`,
//! `ready`) is checked again once rendered; the rest is checked here, in
//! particular what reaches the privileged text of a unit, a program
//! section or a sudo rule: names and the artifact's path.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{Checker, parse_duration};
use crate::config::{Hook, Service, raw};

/// How long a service may take to be ready, and to stop, unless told.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// `[artifact.X.service]` of the artifact `artifact` at `path`.
pub(super) fn resolve_service(
    check: &mut Checker,
    project: &str,
    artifact: &str,
    (path, path_span): (&str, Range<usize>),
    raw: Spanned<raw::Service>,
) -> Service {
    let span = raw.span();
    let raw = raw.into_inner();
    let manager = *raw.manager.get_ref();
    let name = service_name(check, project, artifact, raw.name);
    // The path is written into the unit or program definition, whose
    // quoting rules differ from sh's, and read by root's service manager:
    // only plain paths go there (no `,`, which separates supervisord's
    // and sudoers' lists, no `:`, no `%`, no space).
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.+@".contains(&b))
    {
        check.error(
            path_span,
            format!("artifact `{artifact}` runs a service, so its `path` must be plain"),
            "a service's path may hold letters, digits and `/-_.+@` only",
        );
    }
    let exec = if raw.exec.get_ref().trim().is_empty() {
        check.error(
            raw.exec.span(),
            "`exec` is empty",
            "give the command the service runs, e.g. `bin/server --config etc/server.toml`",
        );
        None
    } else {
        command_text(check, "exec", raw.exec)
    };
    let user = service_user(check, manager, raw.user);
    let environment = service_environment(check, raw.environment);
    let listen = service_listen(check, raw.listen);
    let ready = raw.ready.and_then(|ready| service_ready(check, ready));
    let reload = raw.reload.unwrap_or(false);
    let overlap = service_overlap(check, raw.overlap, !listen.is_empty() && !reload, reload);
    let limit = |check: &mut Checker, key: &str, text: Option<Spanned<String>>, default| {
        text.map_or(default, |text| parse_duration(check, key, &text))
    };
    Service {
        manager,
        name,
        exec: exec.unwrap_or(Hook {
            span,
            text: String::new(),
        }),
        user,
        environment,
        listen,
        ready,
        ready_timeout: limit(
            check,
            "ready_timeout",
            raw.ready_timeout,
            DEFAULT_READY_TIMEOUT,
        ),
        stop_timeout: limit(
            check,
            "stop_timeout",
            raw.stop_timeout,
            DEFAULT_STOP_TIMEOUT,
        ),
        reload,
        overlap,
        notify: raw.notify.unwrap_or(false),
    }
}

/// Whether a name may become a unit's or a program's, and a file name in
/// /etc: letters, digits and a few marks only.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['-', '.'])
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `name`, or `PROJECT-ARTIFACT`.
fn service_name(
    check: &mut Checker,
    project: &str,
    artifact: &str,
    name: Option<Spanned<String>>,
) -> String {
    match name {
        Some(name) => {
            if !plain(name.get_ref()) || name.get_ref().len() > 200 {
                check.error(
                    name.span(),
                    format!(
                        "invalid service name `{}`",
                        crate::diag::shown(name.get_ref())
                    ),
                    "use letters, digits, `-`, `_` and `.`, not starting with `-` or `.`",
                );
            }
            name.into_inner()
        }
        None => format!("{project}-{artifact}"),
    }
}

/// A text of the service that is rendered per host and crosses a shell:
/// anything but NUL.
fn command_text(check: &mut Checker, key: &str, text: Spanned<String>) -> Option<Hook> {
    if text.get_ref().contains('\0') {
        check.error(
            text.span(),
            format!("`{key}` cannot contain NUL characters"),
            "",
        );
        return None;
    }
    Some(Hook {
        span: text.span(),
        text: text.into_inner(),
    })
}

/// `user`: an account name, which a user's own systemd has no use for.
fn service_user(
    check: &mut Checker,
    manager: raw::Manager,
    user: Option<Spanned<String>>,
) -> Option<String> {
    match user {
        Some(user) if manager == raw::Manager::SystemdUser => {
            check.error(
                user.span(),
                "`user` does not apply to `manager = \"systemd-user\"`",
                "a user's own systemd runs its services as that user",
            );
            None
        }
        Some(user) => {
            if !plain(user.get_ref()) {
                check.error(
                    user.span(),
                    format!("invalid user `{}`", crate::diag::shown(user.get_ref())),
                    "an account name: letters, digits, `-`, `_` and `.`",
                );
            }
            Some(user.into_inner())
        }
        None => None,
    }
}

/// `environment`: variables with names the shell takes, none of them
/// landfall's own, each a string, a number or a boolean.
fn service_environment(
    check: &mut Checker,
    variables: impl IntoIterator<Item = (raw::Name, Spanned<toml::Value>)>,
) -> Vec<(String, Hook)> {
    let mut environment = Vec::new();
    for (key, value) in variables {
        let valid =
            key.get_ref().bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
        if !valid || key.get_ref().is_empty() {
            check.error(
                key.span(),
                format!(
                    "invalid environment variable name `{}`",
                    crate::diag::shown(key.get_ref())
                ),
                "letters, digits and `_`, not starting with a digit",
            );
            continue;
        }
        if key.get_ref().starts_with("LANDFALL_") {
            check.error(
                key.span(),
                format!("`{}` is set by landfall", key.get_ref()),
                "`LANDFALL_*` variables are landfall's own",
            );
            continue;
        }
        let span = value.span();
        let value = match value.into_inner() {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                check.error(
                    span,
                    format!(
                        "`{}` must be a string, a number or a boolean",
                        key.get_ref()
                    ),
                    "",
                );
                continue;
            }
        };
        if let Some(hook) = command_text(check, "environment", Spanned::new(span, value)) {
            environment.push((key.into_inner(), hook));
        }
    }
    environment
}

/// `listen`: under systemd, sockets it holds for the service across
/// restarts and hands to each instance; under supervisord, which holds no
/// sockets, the addresses each instance binds itself (with
/// `SO_REUSEPORT`), on which a new instance is seen to listen before the
/// one that serves is stopped.
fn service_listen(check: &mut Checker, addresses: Vec<Spanned<String>>) -> Vec<Hook> {
    addresses
        .into_iter()
        .filter_map(|address| command_text(check, "listen", address))
        .collect()
}

/// `overlap`: whether a new release starts beside the one that serves. A
/// service with `listen` can run twice (its instances share the sockets,
/// or bind them with `SO_REUSEPORT`), so it does by default; any other
/// only when told. A service that asks to be reloaded is reloaded where it
/// runs, not handed over.
fn service_overlap(
    check: &mut Checker,
    overlap: Option<Spanned<bool>>,
    listens: bool,
    reload: bool,
) -> bool {
    match overlap {
        Some(overlap) if *overlap.get_ref() && reload => {
            check.error(
                overlap.span(),
                "`overlap` and `reload` ask for two things: a new release started beside the \
                 one that serves, or the one that serves reloaded",
                "keep one of them",
            );
            false
        }
        Some(overlap) => overlap.into_inner(),
        None => listens,
    }
}

/// `ready`: a URL to get, a port to connect to, or a command.
fn service_ready(check: &mut Checker, ready: Spanned<String>) -> Option<Hook> {
    let known = ["http://", "https://", "tcp://", "exec:"];
    if known.iter().any(|p| ready.get_ref().starts_with(p)) {
        command_text(check, "ready", ready)
    } else {
        check.error(
            ready.span(),
            "`ready` must start with `http://`, `https://`, `tcp://` or `exec:`",
            "",
        );
        None
    }
}
