//! The resolved model written back as configuration files, and what makes
//! two models equal.
//!
//! [`Project::to_toml`] and [`Environment::to_toml`] give a `deploy.toml`
//! and an `environments/ENV.toml` that resolve to the same model: defaults
//! written out, `files` directories listed file by file, `hooks.local` only
//! where it differs. Equality compares what a configuration means, not
//! where it was written: spans, source files and warnings are left out.

use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::{
    Artifact, Environment, Hook, Hooks, Host, HostKeys, OnFailure, Project, Service, Template,
    Transport,
};

impl Project {
    /// A `deploy.toml` that resolves to this project.
    pub fn to_toml(&self) -> String {
        let mut file = Table::new();
        file.insert(
            "project".into(),
            Value::Table(table([("name", string(&self.name))])),
        );
        let mut build = table([
            ("profile", string(&self.build.profile)),
            ("features", strings(&self.build.features)),
        ]);
        build.insert(
            "no_default_features".into(),
            Value::Boolean(self.build.no_default_features),
        );
        if let Some(target) = &self.build.target {
            build.insert("target".into(), string(target));
        }
        build.insert("cargo".into(), strings(&self.build.command));
        file.insert("build".into(), Value::Table(build));
        file.insert("vars".into(), Value::Table(self.vars.clone()));
        let artifacts: Table = self
            .artifacts
            .iter()
            .map(|a| (a.name.clone(), Value::Table(self.artifact_table(a))))
            .collect();
        file.insert("artifact".into(), Value::Table(artifacts));
        let mut hooks = Table::new();
        for (key, hook) in [("before", &self.hooks.before), ("after", &self.hooks.after)] {
            if let Some(hook) = hook {
                hooks.insert(key.into(), string(hook));
            }
        }
        hooks.insert(
            "timeout".into(),
            Value::String(duration(self.hooks.timeout)),
        );
        file.insert("hooks".into(), Value::Table(hooks));
        toml::to_string(&file).expect("a table of TOML values serialises")
    }

    fn artifact_table(&self, artifact: &Artifact) -> Table {
        let root = &self.workspace.root;
        let relative = |path: &Path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned()
        };
        let entry = |src: String, dst: &str, mode: Option<u32>| {
            let mut entry = table([("src", Value::String(src)), ("dst", string(dst))]);
            if let Some(mode) = mode {
                entry.insert("mode".into(), Value::String(format!("{mode:04o}")));
            }
            Value::Table(entry)
        };
        // Bins of one package are written with it; bins of several are
        // each the only binary of that name.
        let package = artifact
            .bins
            .first()
            .map(|b| &b.package)
            .filter(|first| artifact.bins.iter().all(|b| &b.package == *first));
        let mut out = table([
            ("roles", strings(&artifact.roles)),
            ("path", string(&artifact.path)),
            (
                "bins",
                Value::Array(artifact.bins.iter().map(|b| string(&b.name)).collect()),
            ),
            (
                "files",
                Value::Array(
                    artifact
                        .files
                        .iter()
                        .map(|f| entry(relative(&f.src), &f.dst, f.mode))
                        .collect(),
                ),
            ),
            (
                "templates",
                Value::Array(
                    artifact
                        .templates
                        .iter()
                        .map(|t| entry(t.name.clone(), &t.dst, t.mode))
                        .collect(),
                ),
            ),
            ("shared", strings(&artifact.shared)),
            ("keep", Value::Integer(artifact.keep.into())),
            (
                "features",
                strings(artifact.bins.first().map_or(&[][..], |b| &b.features)),
            ),
            ("after", strings(&artifact.after)),
            (
                "rollout",
                Value::Table(table([
                    ("canary", Value::Integer(artifact.rollout.canary.into())),
                    ("pause", Value::String(duration(artifact.rollout.pause))),
                    ("max_fail", artifact.rollout.max_fail.to_toml()),
                ])),
            ),
        ]);
        if let Some(Value::Table(rollout)) = out.get_mut("rollout") {
            if artifact.rollout.batch != crate::config::Amount::All {
                rollout.insert("batch".into(), artifact.rollout.batch.to_toml());
            }
            if let Some(confirm) = artifact.rollout.confirm {
                rollout.insert("confirm".into(), Value::String(duration(confirm)));
            }
        }
        if let Some(package) = package {
            out.insert("package".into(), string(package));
        }
        match &artifact.transport {
            Transport::Rsync => {
                out.insert("transport".into(), string("rsync"));
            }
            Transport::Git { subdir } => {
                out.insert("transport".into(), string("git"));
                if !subdir.is_empty() {
                    out.insert("subdir".into(), string(subdir));
                }
            }
        }
        let mut hooks = hooks_table(&artifact.hooks, None);
        let local = hooks_table(&artifact.local_hooks, Some(&artifact.hooks));
        if !local.is_empty() {
            hooks.insert("local".into(), Value::Table(local));
        }
        out.insert("hooks".into(), Value::Table(hooks));
        if let Some(service) = &artifact.service {
            out.insert("service".into(), Value::Table(service_table(service)));
        }
        out
    }
}

/// A `[service]` table, with every key written out.
fn service_table(service: &Service) -> Table {
    let mut out = table([
        ("manager", string(service.manager.as_str())),
        ("name", string(&service.name)),
        ("exec", string(&service.exec.text)),
        (
            "environment",
            Value::Table(
                service
                    .environment
                    .iter()
                    .map(|(key, value)| (key.clone(), string(&value.text)))
                    .collect(),
            ),
        ),
        (
            "listen",
            Value::Array(service.listen.iter().map(|l| string(&l.text)).collect()),
        ),
        (
            "ready_timeout",
            Value::String(duration(service.ready_timeout)),
        ),
        (
            "stop_timeout",
            Value::String(duration(service.stop_timeout)),
        ),
        ("reload", Value::Boolean(service.reload)),
        ("overlap", Value::Boolean(service.overlap)),
        ("notify", Value::Boolean(service.notify)),
    ]);
    if let Some(user) = &service.user {
        out.insert("user".into(), string(user));
    }
    if let Some(ready) = &service.ready {
        out.insert("ready".into(), string(&ready.text));
    }
    out
}

/// A `[hooks]` table; with `over`, only what differs from it (for
/// `hooks.local`, which is laid over the hooks).
fn hooks_table(hooks: &Hooks, over: Option<&Hooks>) -> Table {
    let mut out = Table::new();
    let all = [
        ("build", &hooks.build, over.map(|o| &o.build)),
        (
            "pre_activate",
            &hooks.pre_activate,
            over.map(|o| &o.pre_activate),
        ),
        ("activate", &hooks.activate, over.map(|o| &o.activate)),
        ("health", &hooks.health, over.map(|o| &o.health)),
        ("once", &hooks.once, over.map(|o| &o.once)),
    ];
    for (name, hook, base) in all {
        if let Some(hook) = hook
            && base != Some(&Some(hook.clone()))
        {
            out.insert(name.into(), string(&hook.text));
        }
    }
    let limits = [
        (
            "health_timeout",
            hooks.health_timeout,
            over.map(|o| o.health_timeout),
        ),
        ("timeout", hooks.timeout, over.map(|o| o.timeout)),
    ];
    for (name, limit, base) in limits {
        if base != Some(limit) {
            out.insert(name.into(), Value::String(duration(limit)));
        }
    }
    out
}

/// A duration as `health_timeout` and `timeout` read it, such as `1m 30s`.
fn duration(duration: Duration) -> String {
    let signed = jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX);
    format!("{signed:#}")
}

impl Environment {
    /// An `environments/ENV.toml` that resolves to this environment (but
    /// for `--var` overrides, which no file holds).
    pub fn to_toml(&self, environments_dir: &Path) -> String {
        let mut section = table([
            ("protect", Value::Boolean(self.protect)),
            (
                "jobs",
                Value::Integer(i64::try_from(self.jobs).unwrap_or(i64::MAX)),
            ),
            (
                "on_failure",
                string(match self.on_failure {
                    OnFailure::RollbackAll => "rollback-all",
                    OnFailure::Stop => "stop",
                }),
            ),
            (
                "host_keys",
                string(match self.host_keys {
                    HostKeys::Strict => "strict",
                    HostKeys::AcceptNew => "accept-new",
                }),
            ),
        ]);
        if let Some(branch) = &self.branch {
            section.insert("branch".into(), string(branch));
        }
        if let Some(user) = &self.user {
            section.insert("user".into(), string(user));
        }
        section.insert(
            "ssh_persist".into(),
            Value::String(duration(self.ssh_persist)),
        );
        if let Some(store) = &self.store {
            section.insert("store".into(), Value::String(store.to_string()));
        }
        if let Some(config) = &self.ssh_config {
            let config = config.strip_prefix(environments_dir).unwrap_or(config);
            section.insert(
                "ssh_config".into(),
                Value::String(config.to_string_lossy().into_owned()),
            );
        }
        let hosts: Table = self
            .hosts
            .iter()
            .map(|host| {
                let host_table = table([
                    ("address", string(&host.address)),
                    ("roles", strings(&host.roles)),
                    ("vars", Value::Table(host.vars.clone())),
                ]);
                (host.name.clone(), Value::Table(host_table))
            })
            .collect();
        let mut file = table([
            ("environment", Value::Table(section)),
            ("vars", Value::Table(self.vars.clone())),
            ("hosts", Value::Table(hosts)),
        ]);
        if !self.recipients.is_empty() {
            file.insert(
                "secrets".into(),
                Value::Table(table([("recipients", strings(&self.recipients))])),
            );
        }
        toml::to_string(&file).expect("a table of TOML values serialises")
    }
}

fn string(text: &str) -> Value {
    Value::String(text.to_string())
}

fn strings(texts: &[String]) -> Value {
    Value::Array(texts.iter().map(|t| string(t)).collect())
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Table {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

// Equality: what a configuration means. Spans, source files and warnings
// say where and how it was written.

impl PartialEq for Project {
    fn eq(&self, other: &Project) -> bool {
        self.workspace == other.workspace
            && self.name == other.name
            && self.build == other.build
            && self.vars == other.vars
            && self.artifacts == other.artifacts
            && self.hooks == other.hooks
    }
}

impl PartialEq for Artifact {
    fn eq(&self, other: &Artifact) -> bool {
        self.name == other.name
            && self.roles == other.roles
            && self.path == other.path
            && self.bins == other.bins
            && self.files == other.files
            && self.templates == other.templates
            && self.shared == other.shared
            && self.transport == other.transport
            && self.keep == other.keep
            && self.after == other.after
            && self.rollout == other.rollout
            && self.hooks == other.hooks
            && self.local_hooks == other.local_hooks
            && self.service == other.service
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.name == other.name
            && self.dst == other.dst
            && self.mode == other.mode
            && self.source.text == other.source.text
    }
}

impl PartialEq for Hook {
    fn eq(&self, other: &Hook) -> bool {
        self.text == other.text
    }
}

impl PartialEq for Environment {
    fn eq(&self, other: &Environment) -> bool {
        self.name == other.name
            && self.protect == other.protect
            && self.branch == other.branch
            && self.jobs == other.jobs
            && self.user == other.user
            && self.ssh_config == other.ssh_config
            && self.ssh_persist == other.ssh_persist
            && self.store == other.store
            && self.on_failure == other.on_failure
            && self.host_keys == other.host_keys
            && self.vars == other.vars
            && self.hosts == other.hosts
            && self.recipients == other.recipients
            && self.overrides == other.overrides
    }
}

impl PartialEq for Host {
    fn eq(&self, other: &Host) -> bool {
        self.name == other.name
            && self.address == other.address
            && self.roles == other.roles
            && self.vars == other.vars
    }
}
