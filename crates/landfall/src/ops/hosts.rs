//! What every command on an environment's hosts does first:
//! [`on_hosts`] reads the workspace and the environment, selects hosts
//! and artifacts as `--only` and `--artifact` say, asks a protected
//! environment's confirmation where the command changes hosts, opens the
//! transport and hands the command a [`Run`].

use super::context::{Frontend, Settings};
use crate::config::Host;
use crate::deploy::{Identity, Run};
use crate::error::Result;
use crate::plan::{self, Plan};
use crate::secrets::Secrets;

/// Which hosts and artifacts a command works on.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub env: String,
    /// `--artifact`: only these; all when empty.
    pub artifacts: Vec<String>,
    /// The local directories of `--local`, rather than the hosts.
    pub local: bool,
}

/// What `--artifact` selects for a command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    /// Its targets, on the hosts that have them.
    Targets,
    /// Its targets, and every selected host, whose orphans are read
    /// against every path the model deploys to (`status`).
    TargetsAndOrphans,
    /// Orphans deployed as it, which may have left deploy.toml (`prune`).
    Orphans,
}

/// What a command on hosts is handed: the run, the plan of the artifacts
/// selected, the whole plan, and the hosts selected.
pub(crate) struct OnHosts<'r, 'a> {
    pub(crate) run: &'r Run<'a>,
    pub(crate) plan: &'r Plan,
    pub(crate) whole: &'r Plan,
    pub(crate) hosts: &'r [&'a Host],
}

/// Connects to the selected hosts and runs `f` on them. With
/// `confirmation`, a protected environment's confirmation of that
/// (`rollback`) is asked for before any host is contacted. A first signal
/// settles the work rather than ending it.
pub(crate) fn on_hosts<T>(
    settings: &Settings,
    targets: &Targets,
    select: Select,
    confirmation: Option<&str>,
    ui: &dyn Frontend,
    f: impl FnOnce(OnHosts<'_, '_>) -> T,
) -> Result<T> {
    let (project, env) = settings.load(ui, &targets.env)?;
    // Only the plan's shape is needed, never a file's contents: no identity
    // is needed either.
    let secrets = Secrets::placeholders();
    let whole = plan::plan(&project, &env, &settings.only, targets.local, &secrets)?;
    let mut plan = Plan {
        env: whole.env.clone(),
        local: whole.local,
        targets: whole.targets.clone(),
        bins: Vec::new(),
    };
    let mut hosts = plan::select(&env, &settings.only)?;
    if select != Select::Orphans && !targets.artifacts.is_empty() {
        plan.retain_artifacts(&project, &targets.artifacts)?;
        if select == Select::Targets {
            hosts.retain(|h| plan.targets.iter().any(|t| t.host == h.name));
        }
    }
    if let Some(what) = confirmation
        && env.protect
    {
        super::deploy::confirm_protected(ui, &env, &plan, what)?;
    }
    let revision = crate::git::revision(&project.workspace.root);
    crate::interrupt::on_hosts(|| {
        let transport = settings.transport(ui, &project, &env, &hosts, targets.local)?;
        let identity = Identity::current(revision);
        let report = |event| ui.event(event);
        let run = Run {
            project: &project,
            env: &env,
            transport: transport.as_ref(),
            identity: &identity,
            jobs: settings.jobs(&env),
            events: &report,
            cancel: &settings.cancel,
        };
        Ok(f(OnHosts {
            run: &run,
            plan: &plan,
            whole: &whole,
            hosts: &hosts,
        }))
    })
}
