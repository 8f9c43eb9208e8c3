//! The top-level `[hooks]` of `deploy.toml`: `before` and `after`, run by
//! `sh -c` on the machine that deploys, in the workspace's root, with a
//! deadline (`[hooks] timeout`).
//!
//! `before` runs before any host is contacted: if it fails, nothing is
//! deployed. `after` runs once the summary is known, whatever it says, with
//! the summary's JSON in the file `LANDFALL_SUMMARY`; its failure is
//! reported, and changes nothing else.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Environment, Project};
use crate::error::{Error, Result};
use crate::event::{Event, Reporter};
use crate::process::{self, Cmd};

/// Which of the top-level hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Before,
    After,
}

impl Which {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Which::Before => "before",
            Which::After => "after",
        }
    }
}

/// What a top-level hook is told of the run.
pub(crate) struct Context<'a> {
    pub(crate) project: &'a Project,
    pub(crate) env: &'a Environment,
    /// The hosts the run selected.
    pub(crate) hosts: &'a [String],
    /// The commit being deployed, if known.
    pub(crate) revision: Option<String>,
    /// For `after`: the file holding the summary's JSON, and whether the
    /// run succeeded.
    pub(crate) summary: Option<(&'a Path, bool)>,
}

/// Writes a deploy's summary (its JSON line, `json`) where the `after`
/// hook reads it: `summaries/ENV.json` in landfall's private directory.
pub(crate) fn write_summary(project: &Project, env: &Environment, json: &str) -> Result<PathBuf> {
    let file = project
        .workspace
        .private_dir("summaries")?
        .join(format!("{}.json", env.name));
    crate::files::write_atomically(&file, json.as_bytes())?;
    Ok(file)
}

/// Runs the hook `which`, if the project has one, and reports it. A hook
/// that fails (or is stopped at its deadline) is an error that says so,
/// with the tail of its output.
pub(crate) fn run(which: Which, context: &Context<'_>, events: Reporter<'_>) -> Result<()> {
    let hooks = &context.project.hooks;
    let command = match which {
        Which::Before => &hooks.before,
        Which::After => &hooks.after,
    };
    let Some(command) = command else {
        return Ok(());
    };
    let mut cmd = Cmd::new("sh")
        .arg("-c")
        .arg(command)
        .dir(&context.project.workspace.root)
        .deadline(hooks.timeout)
        .bounded_output()
        .env("LANDFALL_HOOK", which.name())
        .env("LANDFALL_PROJECT", &context.project.name)
        .env("LANDFALL_ENV", &context.env.name)
        .env("LANDFALL_HOSTS", context.hosts.join(" "))
        .env(
            "LANDFALL_REVISION",
            context.revision.clone().unwrap_or_default(),
        );
    if let Some((path, ok)) = context.summary {
        cmd = cmd
            .env("LANDFALL_SUMMARY", path)
            .env("LANDFALL_OK", if ok { "1" } else { "0" });
    }
    let started = Instant::now();
    let result = process::run_unchecked(&cmd);
    let seconds = started.elapsed().as_secs_f64();
    let (ok, output, failure) = match result {
        Ok(out) => {
            let mut text = out.stdout_text();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let failure = (!out.success()).then(|| {
                out.code.map_or_else(
                    || "it was killed by a signal".to_string(),
                    |c| format!("it exited with status {c}"),
                )
            });
            (out.success(), text.trim_end().to_string(), failure)
        }
        Err(err) => (false, String::new(), Some(err.to_string())),
    };
    events(Event::Hook {
        hook: which.name().to_string(),
        ok,
        seconds,
        output: output.clone(),
    });
    match failure {
        None => Ok(()),
        Some(why) => {
            let consequence = match which {
                Which::Before => "; nothing was deployed",
                Which::After => "",
            };
            let tail = process::tail(output.as_bytes(), 12);
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(":\n{tail}")
            };
            Err(Error::Failed(format!(
                "the `{}` hook of deploy.toml failed ({why}){consequence}{tail}",
                which.name()
            )))
        }
    }
}
