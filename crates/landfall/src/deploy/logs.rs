//! `logs`: every host's service log, streamed at once.

use super::{Run, describe_failure};
use crate::plan::{Plan, Target};
use crate::steps::{Exit, Step};

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
