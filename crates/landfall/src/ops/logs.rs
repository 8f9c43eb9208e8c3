//! `logs`: the service logs of the selected targets, streamed at once.

use std::collections::BTreeSet;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{self, LogsResult};
use crate::error::{Error, Result};

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
            Ok(deploy::logs(
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
