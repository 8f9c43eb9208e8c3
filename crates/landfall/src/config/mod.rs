//! Configuration: `deploy.toml` and `environments/ENV.toml`, read in two
//! steps.
//!
//! `raw` parses the files into serde structs that keep spans and reject
//! unknown keys; `resolve` turns them into the model below, with defaults
//! applied, paths made absolute, source trees listed and every semantic
//! check done, each error pointing at its line. The model is what every
//! later stage works from; nothing after this module reads a config file.

pub mod provenance;
mod raw;
mod resolve;
mod write;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use raw::{HostKeys, Manager, OnFailure};
pub use resolve::{load_environment, load_project};

use crate::diag::{Diagnostic, SourceFile};

/// The user's Cargo workspace, as `cargo metadata` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workspace {
    pub root: PathBuf,
    pub manifest_path: PathBuf,
    pub target_dir: PathBuf,
    pub root_package: Option<String>,
    /// Binary target name -> the workspace packages that define it.
    pub bins: BTreeMap<String, Vec<String>>,
}

impl Workspace {
    /// Where landfall keeps its store, stage, cache and local targets.
    pub fn landfall_dir(&self) -> PathBuf {
        self.target_dir.join("landfall")
    }

    /// `name` in [`landfall_dir`](Workspace::landfall_dir), made if need
    /// be as a directory only its user may enter.
    pub fn private_dir(&self, name: &str) -> crate::Result<PathBuf> {
        let dir = self.landfall_dir().join(name);
        crate::files::private_dir(&dir)?;
        Ok(dir)
    }

    /// Shows a path relative to the workspace root when it is inside it.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// `deploy.toml`, resolved.
#[derive(Debug)]
pub struct Project {
    pub workspace: Workspace,
    pub name: String,
    /// The project's own id (`[project] id`, made by `init`): what hosts
    /// know it by, with its name, in the records of the paths and services
    /// it deploys to, so that another project of the same name is told
    /// apart.
    pub id: Option<String>,
    pub build: BuildSettings,
    pub vars: toml::Table,
    /// In activation order: every artifact comes after those in its `after`.
    pub artifacts: Vec<Artifact>,
    pub hooks: ProjectHooks,
    pub warnings: Vec<Diagnostic>,
    pub(crate) file: Arc<SourceFile>,
    /// Where `[build] target` is written, for `check`'s diagnostics.
    pub(crate) target_span: Option<std::ops::Range<usize>>,
}

impl Project {
    /// How the records on a host name the project: `NAME:ID`, or its name
    /// alone if it has no id.
    pub fn token(&self) -> String {
        match &self.id {
            Some(id) => format!("{}:{id}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    pub fn environments_dir(&self) -> PathBuf {
        self.workspace.root.join("environments")
    }

    /// The names of all environments, from `environments/*.toml`.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.environments_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(".toml").map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    pub profile: String,
    /// Features of every artifact's build.
    pub features: Vec<String>,
    pub no_default_features: bool,
    pub target: Option<String>,
    /// The command that builds, `cargo build` unless `[build] cargo` says
    /// otherwise (`["cargo", "zigbuild"]`).
    pub command: Vec<String>,
}

#[derive(Debug)]
pub struct Artifact {
    pub name: String,
    pub roles: Vec<String>,
    /// The base directory on the host; absolute.
    pub path: String,
    pub bins: Vec<BinTarget>,
    /// Every source file, listed: directories in `files` are expanded.
    pub files: Vec<FileSource>,
    pub templates: Vec<Template>,
    pub shared: Vec<String>,
    pub transport: Transport,
    pub keep: u32,
    pub after: Vec<String>,
    pub rollout: Rollout,
    pub hooks: Hooks,
    /// The hooks `--local` runs: `hooks.local` laid over `hooks`.
    pub local_hooks: Hooks,
    /// The long-lived process the artifact runs as, if any.
    pub service: Option<Service>,
    pub(crate) span: Range<usize>,
    /// Where its `roles` are written (the artifact's table if it has none).
    pub(crate) roles_span: Range<usize>,
}

/// `[artifact.X.service]`, resolved. Its texts are templates, rendered per
/// host like hooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub manager: Manager,
    /// The unit's (or program's) name: `PROJECT-ARTIFACT` unless given.
    pub name: String,
    /// The command, run from the release in the foreground.
    pub exec: Hook,
    /// The account it runs as (system managers only); the deploying user's
    /// by default.
    pub user: Option<String>,
    /// Sorted by name.
    pub environment: Vec<(String, Hook)>,
    /// Addresses the manager listens on and hands over (systemd only).
    pub listen: Vec<Hook>,
    /// What says the service is ready: `http://…`, `tcp://HOST:PORT` or
    /// `exec:COMMAND`.
    pub ready: Option<Hook>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// Reload instead of restart when the binary is unchanged.
    pub reload: bool,
    /// A new release starts beside the one that serves, which drains once
    /// the new one is ready (the hand-over); else stop-then-start. On by
    /// default for a service with `listen`, which can run twice.
    pub overlap: bool,
    /// The service says when it is ready with `sd_notify` (`READY=1`).
    pub notify: bool,
}

/// How an artifact's tree reaches its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The assembled tree, with rsync (or a copy, locally).
    Rsync,
    /// The tree of the workspace's HEAD commit, pushed to a bare repository
    /// on the host and checked out there, with `files` and templates added.
    Git {
        /// The part of the repository deployed: a directory relative to the
        /// workspace root, `/`-separated; empty for the whole workspace.
        subdir: String,
    },
}

/// A binary as one build makes it: the same binary built with other
/// features is another target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BinTarget {
    pub name: String,
    pub package: String,
    /// The artifact's own features (sorted), besides `[build] features`.
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    pub src: PathBuf,
    /// Relative to the release directory, `/`-separated.
    pub dst: String,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// The name under `templates/`.
    pub name: String,
    pub dst: String,
    pub mode: Option<u32>,
    pub source: Arc<SourceFile>,
}

/// `[artifact.X.rollout]`: the order and pace in which hosts are
/// activated, how they are judged, and how many may fail before the
/// rollout stops.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Hosts activated (and healthy) first, alone: any failure among them
    /// stops the rollout.
    pub canary: u32,
    /// Hosts activated at once after the canaries.
    pub batch: Amount,
    /// The wait between batches, during which the hosts activated so far
    /// are checked again.
    pub pause: Duration,
    /// Hosts that may fail (each switched back alone) before the rollout
    /// stops and `on_failure` applies.
    pub max_fail: Amount,
    /// How long a host waits, once activated, to be confirmed over a new
    /// connection before it switches back by itself (whole seconds, at
    /// least one); `None`: no confirmation.
    pub confirm: Option<Duration>,
    /// Checks run from the deploying machine after each batch and through
    /// its pause (`[[artifact.X.rollout.check]]`).
    pub checks: Vec<Check>,
    /// `pause = "until promoted"`: after each batch but the last, the
    /// rollout waits, its hosts locked, until a person runs `cargo deploy
    /// promote` (or `abort`); `pause` is then zero.
    pub promote: bool,
}

/// A rollout check, judged from outside the hosts: it must pass within
/// its `timeout` of a batch's activation, and keep passing through the
/// pause; a failure counts as a failed health check of the hosts it
/// judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What events and messages call it: its `name`, or else its kind.
    pub name: String,
    pub probe: Probe,
    /// How long after a batch's activation it may take to pass.
    pub timeout: Duration,
}

/// What a check asks, each field a template rendered for every host of
/// the artifact.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// An HTTP request from the deploying machine: it passes with `status`
    /// (any 2xx by default) and, if given, `body` in the answer.
    Http {
        url: Hook,
        status: Option<u16>,
        body: Option<String>,
    },
    /// A command run on the deploying machine, which passes by exiting 0.
    Exec { command: Hook },
    /// An instant query to a Prometheus server, whose every sample must be
    /// within `bound`.
    Prometheus {
        server: Hook,
        query: Hook,
        bound: Bound,
    },
}

/// The condition a Prometheus sample must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Below(f64),
    Above(f64),
}

impl Bound {
    pub fn holds(self, value: f64) -> bool {
        match self {
            Bound::Below(bound) => value < bound,
            Bound::Above(bound) => value > bound,
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Below(bound) => write!(f, "below {bound}"),
            Bound::Above(bound) => write!(f, "above {bound}"),
        }
    }
}

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout {
            canary: 0,
            batch: Amount::All,
            pause: Duration::ZERO,
            max_fail: Amount::Count(0),
            checks: Vec::new(),
            confirm: None,
            promote: false,
        }
    }
}

/// A number of hosts, or a share of the artifact's hosts in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    All,
    Count(u32),
    /// Percent, 1 to 100.
    Percent(u32),
}

impl Amount {
    /// How many of `hosts` this is. A share is rounded down (`10%` of 6
    /// hosts is none), as Ansible's `max_fail_percentage` counts.
    pub fn of(self, hosts: usize) -> usize {
        match self {
            Amount::All => hosts,
            Amount::Count(n) => (n as usize).min(hosts),
            Amount::Percent(p) => hosts * p as usize / 100,
        }
    }

    /// How many of `hosts` this is, a share rounded up (`25%` of 6 hosts
    /// is 2): the size of a batch.
    pub fn of_rounded_up(self, hosts: usize) -> usize {
        match self {
            Amount::Percent(p) => (hosts * p as usize).div_ceil(100),
            other => other.of(hosts),
        }
    }

    /// As written in `deploy.toml`.
    pub fn to_toml(self) -> toml::Value {
        match self {
            Amount::All => toml::Value::Integer(0),
            Amount::Count(n) => toml::Value::Integer(n.into()),
            Amount::Percent(p) => toml::Value::String(format!("{p}%")),
        }
    }
}

/// The top-level `[hooks]`: commands run by `sh -c` on the deploying
/// machine, in the workspace's root, with the `LANDFALL_*` variables of the
/// run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectHooks {
    /// Before any host is contacted; if it fails, nothing is deployed.
    pub before: Option<String>,
    /// After the summary, whatever the outcome, with the summary's JSON in
    /// `LANDFALL_SUMMARY`.
    pub after: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    /// Runs on the host in the uploaded release before it is complete.
    pub build: Option<Hook>,
    pub pre_activate: Option<Hook>,
    pub activate: Option<Hook>,
    pub health: Option<Hook>,
    pub health_timeout: Duration,
    /// Runs on one host of the artifact per deploy, in the new release,
    /// after every push and before any switch (a migration).
    pub once: Option<Hook>,
    /// How long `build`, `pre_activate`, `activate` or `once` may run
    /// before it is stopped.
    pub timeout: Duration,
}

/// A hook's command text, a template rendered per host.
#[derive(Debug, Clone)]
pub struct Hook {
    pub text: String,
    pub(crate) span: Range<usize>,
}

/// `environments/ENV.toml`, resolved.
#[derive(Debug)]
pub struct Environment {
    pub name: String,
    pub protect: bool,
    pub branch: Option<String>,
    pub jobs: usize,
    pub user: Option<String>,
    pub ssh_config: Option<PathBuf>,
    /// How long a master connection to a host stays open once a run no
    /// longer uses it, for the next run to start warm; zero: it closes with
    /// the run.
    pub ssh_persist: Duration,
    /// The object store hosts pull releases from (pull mode), if any.
    pub store: Option<crate::store::StoreUrl>,
    pub on_failure: OnFailure,
    pub host_keys: HostKeys,
    pub vars: toml::Table,
    /// Sorted by name.
    pub hosts: Vec<Host>,
    pub recipients: Vec<String>,
    /// Variables given on the command line (`--var KEY=VALUE`): they beat
    /// every file.
    pub overrides: toml::Table,
    pub warnings: Vec<Diagnostic>,
    pub(crate) file: Arc<SourceFile>,
}

impl Environment {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub roles: Vec<String>,
    pub vars: toml::Table,
    pub(crate) span: Range<usize>,
}

impl Host {
    pub fn receives(&self, artifact: &Artifact) -> bool {
        artifact.roles.iter().any(|role| self.roles.contains(role))
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else is
/// replaced.
pub fn merge_vars(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge_vars(base, over),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod reference;
#[cfg(test)]
pub(crate) mod tests;
