//! `exec`: a command on the selected hosts, logged on each before it runs,
//! each line handed on as it comes ([`run_on`]); or, with `-t`, attached
//! to this terminal on the one host selected ([`run_attached`]).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::context::{Frontend, Settings};
use super::hosts::{OnHosts, Select, Targets, on_hosts};
use crate::config::Host;
use crate::deploy::Run;
use crate::error::{Error, Result};
use crate::parallel::parallel;
use crate::plan::{Plan, Target};
use crate::steps::{ExecInput, LogEntry, Script, Step};

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
            let request = ExecRequest {
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
                let code = run_attached(run, plan, host, &request).map_err(Error::Failed)?;
                return Ok(ExecOutcome::Attached {
                    host: host.name.clone(),
                    code,
                });
            }
            let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
            let line = |host: &str, text: &str| line(host, width, text);
            Ok(ExecOutcome::Streamed(run_on(
                run, plan, hosts, &request, &line,
            )))
        },
    )?
}

/// What a command run by `exec` did on one host.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExecResult {
    pub host: String,
    /// The command's exit status; `None` if the host was not reached or a
    /// signal ended it.
    pub code: Option<i32>,
    /// What it printed (its errors too), up to its first 64 KiB, then a
    /// line that says how much more there was. A line longer than 64 KiB
    /// is cut, and says so.
    pub stdout: String,
    /// The last 64 KiB at most of what the host's shell or ssh printed
    /// besides the command's output.
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The longest a command of `exec` may run on a host.
const EXEC_TIME: Duration = Duration::from_secs(3600);

/// How much of a command's output [`ExecResult::stdout`] keeps: the lines
/// went to the caller as they came, and a host may print without end.
const EXEC_OUTPUT_KEPT: usize = 64 * 1024;

/// A command to run on hosts (`exec`, or `run` in the shell).
#[derive(Debug, Clone, Copy)]
pub struct ExecRequest<'a> {
    /// Its words, each passed as one (`sh -c '…'` for shell syntax).
    pub command: &'a [String],
    /// Start it in this artifact's `current` rather than the home
    /// directory.
    pub artifact: Option<&'a str>,
    /// A file every host gets on its standard input, streamed to each as
    /// its command reads it, never held in memory.
    pub input: Option<&'a std::path::Path>,
    /// The secrets to mask in the command as the hosts' logs record it.
    pub mask: Option<&'a crate::secrets::Mask>,
}

/// Runs a command on hosts, `jobs` at a time, each for at most an hour,
/// handing each line it prints (its errors with its output) to `line` with
/// its host as it comes. Each host's log (the log of each artifact of the
/// plan there, or of `artifact`'s only) records who ran what and how it
/// ended. A host that has no `artifact` is not worked on.
pub fn run_on(
    run: &Run<'_>,
    plan: &Plan,
    hosts: &[&Host],
    request: &ExecRequest<'_>,
    line: &(dyn Fn(&str, &str) + Sync),
) -> Vec<ExecResult> {
    let input = request.input.map_or(ExecInput::Nothing, |path| {
        ExecInput::File(path.to_path_buf())
    });
    let text = command_text(request);
    let id = exec_id(run, &text);
    parallel(hosts, run.jobs, |host| {
        let mut result = ExecResult {
            host: host.name.clone(),
            code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
        };
        let script = match exec_script(run, plan, host, request, (&id, &text), input.clone()) {
            Ok(script) => script,
            Err(err) => {
                result.error = Some(err);
                return result;
            }
        };
        let started = std::time::Instant::now();
        let stop = || run.cancel.requested() || started.elapsed() > EXEC_TIME;
        let mut output = String::new();
        let mut dropped = 0;
        let reply = run
            .transport
            .stream(&host.name, &script, &stop, &mut |text| {
                line(&host.name, text.trim_end_matches(['\n', '\r']));
                if dropped == 0 && output.len() < EXEC_OUTPUT_KEPT {
                    output.push_str(text);
                } else {
                    dropped += text.len();
                }
            });
        if dropped > 0 {
            let _ = writeln!(
                output,
                "… [output cut at {} bytes, {dropped} more were not kept]",
                output.len()
            );
        }
        result.stdout = output;
        match reply {
            Ok(reply) => {
                result.code = reply.output.code;
                result.stderr = String::from_utf8_lossy(&reply.output.stderr).into_owned();
                if reply.output.code.is_none() && started.elapsed() > EXEC_TIME {
                    result.error = Some(format!(
                        "stopped after {}s, the longest a command may run",
                        EXEC_TIME.as_secs()
                    ));
                }
            }
            Err(err) => result.error = Some(err.to_string()),
        }
        result
    })
}

/// Runs a command on one host for the person at this terminal, on a
/// pseudo-terminal there (`exec -t`, and `ssh HOST` in the shell, whose
/// command is a login shell), logged on the host as [`exec`] logs it.
/// Returns its exit status.
///
/// Its output is not made inert (see `landfall::inert`) nor bounded: the
/// person asked for the host's terminal itself, one host they chose, as
/// `ssh -t` gives it, and a full-screen program, a pager or an editor
/// there works only with its control sequences. Nothing of it passes
/// through landfall's memory, which the pseudo-terminal connects straight
/// to this one.
pub fn run_attached(
    run: &Run<'_>,
    plan: &Plan,
    host: &Host,
    request: &ExecRequest<'_>,
) -> Result<Option<i32>, String> {
    let text = command_text(request);
    let script = exec_script(
        run,
        plan,
        host,
        request,
        (&exec_id(run, &text), &text),
        ExecInput::Terminal,
    )?;
    run.transport
        .attach(&host.name, &script)
        .map_err(|err| err.to_string())
}

/// The command as the hosts' logs record it: its words quoted, secrets
/// masked.
fn command_text(request: &ExecRequest<'_>) -> String {
    let text = request
        .command
        .iter()
        .map(|w| crate::process::quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    match request.mask {
        Some(mask) => mask.apply(&text).into_owned(),
        None => text,
    }
}

/// The id both log entries of one command share, on every host it runs
/// on: who ran it, where, when and what, hashed, so that no two runs of
/// a command share one.
fn exec_id(run: &Run<'_>, text: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    for part in [
        run.identity.user.as_str(),
        run.identity.machine.as_str(),
        &run.env.name,
        &now.as_nanos().to_string(),
        &std::process::id().to_string(),
        text,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.finalize().to_hex()[..16].to_string()
}

/// The script that runs `request` on `host`, and logs it there as `text`
/// under `id`: before it runs, and how it ended.
fn exec_script(
    run: &Run<'_>,
    plan: &Plan,
    host: &Host,
    request: &ExecRequest<'_>,
    (id, text): (&str, &str),
    input: ExecInput,
) -> Result<Script, String> {
    let on_host: Vec<&Target> = plan
        .targets
        .iter()
        .filter(|t| t.host == host.name)
        .filter(|t| request.artifact.is_none_or(|a| t.artifact == a))
        .collect();
    let dir = match request.artifact {
        Some(artifact) => match on_host.first() {
            Some(target) => Some(format!("{}/current", run.transport.host_path(target))),
            None => return Err(format!("`{artifact}` is not deployed to this host")),
        },
        None => None,
    };
    let artifact = match on_host.as_slice() {
        [one] => one.artifact.clone(),
        _ => String::new(),
    };
    let start = LogEntry {
        time: jiff::Timestamp::now().to_string(),
        event: "exec".into(),
        env: run.env.name.clone(),
        artifact,
        release: None,
        previous: None,
        user: run.identity.user.clone(),
        from: run.identity.machine.clone(),
        revision: None,
        command: Some(text.to_string()),
        status: None,
        id: Some(id.to_string()),
        deploy: None,
        undoes: Vec::new(),
        reason: None,
    };
    // The time it ended and its status are only known on the host, once
    // the command ended: the host adds them to the entry's other fields.
    let serde_json::Value::Object(mut end) = serde_json::to_value(LogEntry {
        event: "exec_end".into(),
        ..start.clone()
    })
    .expect("log entries serialise") else {
        unreachable!("a log entry is an object")
    };
    end.remove("time");
    let end = serde_json::Value::Object(end).to_string();
    Ok(
        Script::new(&run.env.name, &host.name, None).step(Step::Exec {
            dir,
            input,
            logs: on_host.iter().map(|t| run.transport.host_path(t)).collect(),
            start: serde_json::to_string(&start).expect("log entries serialise"),
            end: end[1..end.len() - 1].to_string(),
            words: request.command.to_vec(),
        }),
    )
}
