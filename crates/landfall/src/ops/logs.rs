//! `logs`: the service logs of the selected targets, every host's streamed
//! at once ([`stream`]), each line with whose it is.

use std::collections::BTreeSet;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{Run, describe_failure};
use crate::error::{Error, Result};
use crate::plan::{Plan, Target};
use crate::steps::{Exit, Step};

/// Which lines of the logs, and for how long.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    pub targets: Targets,
    /// The last this many lines.
    pub lines: u32,
    /// Then what comes, until a stop is asked for.
    pub follow: bool,
    /// The lines of every release's service, not only the current one's.
    pub all_releases: bool,
}

/// One line of a service's log.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    pub host: &'a str,
    pub artifact: &'a str,
    /// Whose it is, as a person reads it: the host, and the artifact too
    /// when services of several artifacts are shown.
    pub label: &'a str,
    /// The width of the longest label.
    pub width: usize,
    pub text: &'a str,
}

/// Streams the logs of the selected targets' services to `line` until
/// they end, or, following them, until a stop is asked for.
pub fn logs(
    settings: &Settings,
    request: &LogsRequest,
    ui: &dyn Frontend,
    line: &(dyn Fn(&LogLine<'_>) + Sync),
) -> Result<Vec<LogsResult>> {
    on_hosts(
        settings,
        &request.targets,
        Select::Targets,
        None,
        ui,
        |OnHosts { run, plan, .. }| {
            let services: Vec<_> = plan
                .targets
                .iter()
                .filter(|t| t.service.is_some())
                .collect();
            if services.is_empty() {
                return Err(Error::Usage(format!(
                    "no artifact of environment `{}` runs a service on the selected hosts \
                     (see `[artifact.NAME.service]` in the guide)",
                    request.targets.env
                )));
            }
            // With services of several artifacts, each line says whose it
            // is.
            let several = services
                .iter()
                .map(|t| t.artifact.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                > 1;
            let label = |host: &str, artifact: &str| {
                if several {
                    format!("{host}/{artifact}")
                } else {
                    host.to_string()
                }
            };
            let width = services
                .iter()
                .map(|t| label(&t.host, &t.artifact).len())
                .max()
                .unwrap_or(0);
            let each = |target: &crate::plan::Target, text: &str| {
                line(&LogLine {
                    host: &target.host,
                    artifact: &target.artifact,
                    label: &label(&target.host, &target.artifact),
                    width,
                    text,
                });
            };
            Ok(stream(
                run,
                plan,
                request.lines,
                request.follow,
                request.all_releases,
                &|| run.cancel.requested(),
                &each,
            ))
        },
    )?
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
pub fn stream(
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
