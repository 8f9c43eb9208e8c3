//! The configuration files as written: serde structs that only parse.
//!
//! Unknown keys are rejected and every value keeps its span, so that the
//! semantic checks in [`super::resolve`] can point at the line that is wrong.
//! Nothing here applies defaults or looks at other files.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployFile {
    #[serde(default)]
    pub(crate) project: Project,
    #[serde(default)]
    pub(crate) build: Build,
    #[serde(default)]
    pub(crate) vars: toml::Table,
    #[serde(default)]
    pub(crate) artifact: BTreeMap<Name, Spanned<Artifact>>,
    #[serde(default)]
    pub(crate) hooks: ProjectHooks,
}

/// The top-level `[hooks]`: commands run on the deploying machine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectHooks {
    pub(crate) before: Option<Spanned<String>>,
    pub(crate) after: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

/// `[artifact.X.rollout]`: how the activation goes through the hosts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rollout {
    pub(crate) canary: Option<Spanned<u32>>,
    pub(crate) batch: Option<Spanned<Amount>>,
    pub(crate) pause: Option<Spanned<String>>,
    pub(crate) max_fail: Option<Spanned<Amount>>,
    pub(crate) confirm: Option<Spanned<String>>,
    /// `[[artifact.X.rollout.check]]`: judged from outside the hosts.
    #[serde(default)]
    pub(crate) check: Vec<Spanned<Check>>,
}

/// One `[[artifact.X.rollout.check]]`: exactly one of `http`, `exec` and
/// `prometheus`, with what goes with it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) http: Option<Spanned<String>>,
    pub(crate) status: Option<Spanned<i64>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) exec: Option<Spanned<String>>,
    pub(crate) prometheus: Option<Spanned<String>>,
    pub(crate) query: Option<Spanned<String>>,
    pub(crate) below: Option<Spanned<f64>>,
    pub(crate) above: Option<Spanned<f64>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

/// A number of hosts, or a share of them (`"25%"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Amount {
    Count(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Project {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Build {
    pub(crate) profile: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) features: Vec<Spanned<String>>,
    pub(crate) no_default_features: Option<bool>,
    pub(crate) target: Option<Spanned<String>>,
    /// The command that builds, in place of `cargo build`.
    pub(crate) cargo: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Artifact {
    #[serde(default)]
    pub(crate) roles: Vec<Name>,
    pub(crate) path: Spanned<String>,
    #[serde(default)]
    pub(crate) bins: Vec<Name>,
    /// The package whose binaries `bins` are.
    pub(crate) package: Option<Spanned<String>>,
    /// Features of this artifact's build, besides `[build] features`.
    #[serde(default)]
    pub(crate) features: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) files: Vec<Spanned<FileEntry>>,
    #[serde(default)]
    pub(crate) templates: Vec<Spanned<TemplateEntry>>,
    #[serde(default)]
    pub(crate) shared: Vec<Spanned<String>>,
    pub(crate) keep: Option<Spanned<i64>>,
    pub(crate) transport: Option<Spanned<Transport>>,
    /// For git artifacts: the part of the repository to deploy.
    pub(crate) subdir: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) after: Vec<Name>,
    /// The older name of `rollout.batch`.
    pub(crate) max_parallel: Option<Spanned<u32>>,
    pub(crate) rollout: Option<Spanned<Rollout>>,
    #[serde(default)]
    pub(crate) hooks: Hooks,
    pub(crate) service: Option<Spanned<Service>>,
}

/// `[artifact.X.service]`: the artifact runs as a long-lived process under
/// a service manager.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    pub(crate) manager: Spanned<Manager>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) exec: Spanned<String>,
    pub(crate) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) environment: BTreeMap<Name, Spanned<toml::Value>>,
    #[serde(default)]
    pub(crate) listen: Vec<Spanned<String>>,
    pub(crate) ready: Option<Spanned<String>>,
    pub(crate) ready_timeout: Option<Spanned<String>>,
    pub(crate) stop_timeout: Option<Spanned<String>>,
    pub(crate) reload: Option<bool>,
    pub(crate) overlap: Option<Spanned<bool>>,
    pub(crate) notify: Option<bool>,
}

/// Which service manager runs a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    /// A system unit of systemd.
    Systemd,
    /// A unit of the deploying user's own systemd (`systemctl --user`).
    SystemdUser,
    /// A program of supervisord.
    Supervisor,
}

impl Manager {
    /// As written in `deploy.toml`, and in a release's activation.
    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::SystemdUser => "systemd-user",
            Manager::Supervisor => "supervisor",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub(crate) src: Spanned<String>,
    pub(crate) dst: Spanned<String>,
    pub(crate) mode: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateEntry {
    pub(crate) src: Spanned<String>,
    pub(crate) dst: Spanned<String>,
    pub(crate) mode: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Rsync,
    Git,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Hooks {
    pub(crate) build: Option<Spanned<String>>,
    pub(crate) pre_activate: Option<Spanned<String>>,
    pub(crate) activate: Option<Spanned<String>>,
    pub(crate) health: Option<Spanned<String>>,
    pub(crate) health_timeout: Option<Spanned<String>>,
    /// Runs on one host per deploy, before any switch.
    pub(crate) once: Option<Spanned<String>>,
    /// How long any other hook may run.
    pub(crate) timeout: Option<Spanned<String>>,
    /// Replacements used by `--local` for hooks that only make sense on a
    /// server.
    pub(crate) local: Option<Spanned<LocalHooks>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalHooks {
    pub(crate) build: Option<Spanned<String>>,
    pub(crate) pre_activate: Option<Spanned<String>>,
    pub(crate) activate: Option<Spanned<String>>,
    pub(crate) health: Option<Spanned<String>>,
    pub(crate) health_timeout: Option<Spanned<String>>,
    pub(crate) once: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentFile {
    #[serde(default)]
    pub(crate) environment: EnvironmentSection,
    #[serde(default)]
    pub(crate) vars: toml::Table,
    #[serde(default)]
    pub(crate) hosts: BTreeMap<Name, Spanned<Host>>,
    pub(crate) secrets: Option<Secrets>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentSection {
    pub(crate) protect: Option<bool>,
    pub(crate) branch: Option<Spanned<String>>,
    pub(crate) jobs: Option<Spanned<u32>>,
    pub(crate) user: Option<Spanned<String>>,
    pub(crate) ssh_config: Option<Spanned<String>>,
    /// How long the master connections to the hosts outlive a run.
    pub(crate) ssh_persist: Option<Spanned<String>>,
    /// The object store hosts pull from: `s3://BUCKET/PREFIX`.
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) on_failure: Option<OnFailure>,
    pub(crate) host_keys: Option<HostKeys>,
}

/// How unknown host keys are treated. A changed key is always refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    /// Only hosts whose key is known already (the default).
    #[default]
    Strict,
    /// A host seen for the first time has its key recorded in
    /// `known_hosts` (OpenSSH's `StrictHostKeyChecking=accept-new`).
    AcceptNew,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Switch back every host already switched in this run.
    RollbackAll,
    /// Stop activating; hosts already switched stay on the new release.
    Stop,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Host {
    pub(crate) address: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) roles: Vec<Name>,
    #[serde(default)]
    pub(crate) vars: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Secrets {
    #[serde(default)]
    pub(crate) recipients: Vec<Spanned<String>>,
}
