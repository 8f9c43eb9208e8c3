//! `exec`: a command on the selected hosts, streamed, or attached to this
//! terminal on one host.

use std::path::Path;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::deploy::{self, ExecResult};
use crate::error::{Error, Result};

/// A command to run, and how.
#[derive(Debug, Clone, Copy)]
pub struct ExecCommand<'a> {
    pub targets: &'a Targets,
    /// Its words, each passed as one.
    pub command: &'a [String],
    /// A file every host gets on its standard input.
    pub input: Option<&'a Path>,
    /// Attach the one selected host's command to this terminal.
    pub tty: bool,
}

/// How `exec` went: each host's result, streamed, or the one host's exit
/// status on a terminal.
#[derive(Debug)]
pub enum ExecOutcome {
    Streamed(Vec<ExecResult>),
    Attached { host: String, code: Option<i32> },
}

/// Runs `command` on the selected hosts, in the `current` of the one
/// artifact `--artifact` names, or the home directory. Each line a host
/// prints goes to `line` with the host and the width of the longest host
/// name, as it comes.
pub fn exec(
    settings: &Settings,
    command: &ExecCommand<'_>,
    ui: &dyn Frontend,
    line: &(dyn Fn(&str, usize, &str) + Sync),
) -> Result<ExecOutcome> {
    let artifact = match command.targets.artifacts.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        [..] => {
            return Err(Error::Usage(
                "`exec` starts the command in one artifact's `current`: give `--artifact` once"
                    .into(),
            ));
        }
    };
    on_hosts(
        settings,
        command.targets,
        Select::Targets,
        None,
        ui,
        |OnHosts {
             run, plan, hosts, ..
         }| {
            // Secrets typed in a command are masked in the hosts' logs,
            // when they can be read here.
            let secrets = crate::secrets::load(run.project, run.env).ok();
            let request = deploy::ExecRequest {
                command: command.command,
                artifact,
                input: command.input,
                mask: secrets.as_ref().map(crate::secrets::Secrets::mask),
            };
            if command.tty {
                let [host] = hosts else {
                    return Err(Error::Usage(format!(
                        "`-t` works on one host, and {} are selected: choose one with `--only HOST`",
                        hosts.len()
                    )));
                };
                let code =
                    deploy::exec_attached(run, plan, host, &request).map_err(Error::Failed)?;
                return Ok(ExecOutcome::Attached {
                    host: host.name.clone(),
                    code,
                });
            }
            let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
            let line = |host: &str, text: &str| line(host, width, text);
            Ok(ExecOutcome::Streamed(deploy::exec(
                run, plan, hosts, &request, &line,
            )))
        },
    )?
}
