//! The plan: which artifact goes to which host, with every template and hook
//! rendered for that host, and which binaries must be built.
//!
//! Architecture invariant: this module does no IO. The plan is plain data
//! computed from the resolved configuration before any side effect;
//! `--dry-run` prints it and the real run executes it.
//!
//! A [`Target`] is one artifact on one host: its rendered files and hooks,
//! its service (see [`crate::service`]), and the release's activation
//! ([`ACTIVATION_FILE`]: the hooks, the service and their time limits as
//! sh assignments), rendered once here and from then on one of the
//! release's files. [`select`] picks the hosts of `--only HOST|@ROLE`,
//! [`Plan::retain_artifacts`] the targets of `--artifact NAME`.

use std::collections::BTreeSet;
#[cfg(test)]
use std::fs;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Artifact, BinTarget, Environment, Hook, Hooks, Host, Project};
use crate::diag::{Diagnostic, Diagnostics};
use crate::error::{Error, Result};
use crate::secrets::Secrets;
use crate::service::RenderedService;
use crate::template;

pub mod checks;

use checks::RenderedCheck;

#[derive(Debug, Serialize)]
pub struct Plan {
    pub env: String,
    pub local: bool,
    /// In activation order: artifacts by `after`, then hosts by name.
    pub targets: Vec<Target>,
    /// The binaries to build, each once.
    #[serde(skip)]
    pub bins: Vec<BinTarget>,
}

impl Plan {
    /// The hosts of `env` that something of the plan goes to, in the
    /// environment's order.
    pub fn hosts<'e>(&self, env: &'e Environment) -> Vec<&'e Host> {
        env.hosts
            .iter()
            .filter(|h| self.targets.iter().any(|t| t.host == h.name))
            .collect()
    }

    /// Keeps only the targets of the artifacts `names` (`--artifact`), and
    /// the binaries they need; none are kept out when `names` is empty.
    /// Each name must be an artifact that goes to a selected host.
    pub fn retain_artifacts(&mut self, project: &Project, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            if project.artifact(name).is_none() {
                let known: Vec<String> = project
                    .artifacts
                    .iter()
                    .map(|a| format!("`{}`", a.name))
                    .collect();
                return Err(Error::Usage(format!(
                    "`--artifact {}`: deploy.toml has no such artifact (artifacts: {})",
                    crate::diag::shown(name),
                    known.join(", ")
                )));
            }
            if !self.targets.iter().any(|t| &t.artifact == name) {
                return Err(Error::Usage(format!(
                    "`--artifact {name}`: the artifact goes to no selected host of `{}`",
                    self.env
                )));
            }
        }
        self.targets.retain(|t| names.contains(&t.artifact));
        let needed: BTreeSet<&BinTarget> = project
            .artifacts
            .iter()
            .filter(|a| names.contains(&a.name))
            .flat_map(|a| &a.bins)
            .collect();
        self.bins.retain(|bin| needed.contains(bin));
        Ok(())
    }
}

/// One artifact on one host.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub host: String,
    pub address: String,
    pub artifact: String,
    /// The artifact's base directory on the host.
    pub path: String,
    /// The artifact's templates, rendered for this host.
    #[serde(skip)]
    pub rendered: Vec<RenderedFile>,
    /// The release's activation ([`ACTIVATION_FILE`]), rendered from
    /// `hooks`.
    #[serde(skip)]
    pub activation: RenderedFile,
    pub hooks: RenderedHooks,
    /// The service the artifact runs as, rendered for this host.
    pub service: Option<RenderedService>,
    /// The rollout's checks, rendered for this host.
    #[serde(skip)]
    pub checks: Vec<RenderedCheck>,
}

impl Target {
    /// The release's own files: the rendered templates, the activation and
    /// the service's files.
    pub fn release_files(&self) -> impl Iterator<Item = &RenderedFile> {
        self.rendered
            .iter()
            .chain(std::iter::once(&self.activation))
            .chain(self.service.iter().flat_map(|s| &s.files))
    }
}

/// A template rendered for one host.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    pub dst: String,
    pub mode: u32,
    pub contents: Vec<u8>,
    /// The template read `secrets`: the contents must not be shown and the
    /// file is private unless a mode was given.
    pub secret: bool,
    /// For a secret file, its rendering with every secret masked (`None` if
    /// the template cannot render that way).
    pub masked: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RenderedHooks {
    pub build: Option<String>,
    pub pre_activate: Option<String>,
    pub activate: Option<String>,
    pub health: Option<String>,
    pub once: Option<String>,
    #[serde(serialize_with = "seconds")]
    pub health_timeout: Duration,
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
}

pub(crate) fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Which hosts a command works on: `HOST` or `@ROLE`, any of them; empty
/// means all.
pub fn select<'e>(env: &'e Environment, only: &[String]) -> Result<Vec<&'e Host>> {
    for filter in only {
        let known = match filter.strip_prefix('@') {
            Some(role) => env.hosts.iter().any(|h| h.roles.iter().any(|r| r == role)),
            None => env.host(filter).is_some(),
        };
        if !known {
            let (what, known): (&str, BTreeSet<&str>) = if filter.starts_with('@') {
                (
                    "role",
                    env.hosts
                        .iter()
                        .flat_map(|h| h.roles.iter().map(String::as_str))
                        .collect(),
                )
            } else {
                ("host", env.hosts.iter().map(|h| h.name.as_str()).collect())
            };
            let known = known.into_iter().collect::<Vec<_>>().join(", ");
            return Err(Error::Usage(format!(
                "`--only {filter}`: no {what} `{}` in environment `{}` ({what}s: {known})",
                filter.trim_start_matches('@'),
                env.name
            )));
        }
    }
    Ok(env
        .hosts
        .iter()
        .filter(|host| {
            only.is_empty()
                || only.iter().any(|f| match f.strip_prefix('@') {
                    Some(role) => host.roles.iter().any(|r| r == role),
                    None => *f == host.name,
                })
        })
        .collect())
}

/// Refuses a selection (`--only`) under which a deploy would reach no host:
/// none of the hosts it selects receives an artifact. (An environment whose
/// hosts receive nothing at all is refused when it is loaded.)
pub fn reaches_a_host(project: &Project, env: &Environment, only: &[String]) -> Result<()> {
    if only.is_empty() {
        return Ok(());
    }
    let selected = select(env, only)?;
    if project
        .artifacts
        .iter()
        .any(|a| selected.iter().any(|h| h.receives(a)))
    {
        return Ok(());
    }
    let receiving: Vec<String> = env
        .hosts
        .iter()
        .filter(|h| project.artifacts.iter().any(|a| h.receives(a)))
        .map(|h| format!("`{}`", h.name))
        .collect();
    Err(Error::Usage(format!(
        "`--only {}` selects no host that receives an artifact, so a deploy would reach no \
         host at all (hosts of `{}` that receive one: {})",
        only.join(" --only "),
        env.name,
        receiving.join(", ")
    )))
}

/// Computes the plan for the selected hosts of an environment, rendering
/// templates and hooks with `secrets`.
pub fn plan(
    project: &Project,
    env: &Environment,
    only: &[String],
    local: bool,
    secrets: &Secrets,
) -> Result<Plan> {
    let hosts = select(env, only)?;
    let mut jinja = template::engine();
    template::add_functions(&mut jinja, env);

    let mut targets = Vec::new();
    let mut errors = Vec::new();
    let mut bins = Vec::new();
    let mut seen_bins = BTreeSet::new();
    for artifact in &project.artifacts {
        let receivers: Vec<&&Host> = hosts.iter().filter(|h| h.receives(artifact)).collect();
        if receivers.is_empty() {
            continue;
        }
        for bin in &artifact.bins {
            if seen_bins.insert(bin) {
                bins.push(bin.clone());
            }
        }
        for host in receivers {
            match target(project, env, &jinja, host, artifact, local, secrets) {
                Ok(target) => targets.push(target),
                Err(mut diags) => errors.append(&mut diags),
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Config(Diagnostics(errors)));
    }
    Ok(Plan {
        env: env.name.clone(),
        local,
        targets,
        bins,
    })
}

fn target(
    project: &Project,
    env: &Environment,
    jinja: &minijinja::Environment<'_>,
    host: &Host,
    artifact: &Artifact,
    local: bool,
    secrets: &Secrets,
) -> Result<Target, Vec<Diagnostic>> {
    let context = template::context(project, env, host, artifact, secrets);
    let placeholders = Secrets::placeholders();
    let masked_context = std::cell::OnceCell::new();
    let mut errors = Vec::new();
    let mut rendered = Vec::new();
    for tpl in &artifact.templates {
        match template::render(
            jinja,
            &tpl.source,
            &tpl.source.text,
            &template::Origin::At(0),
            &context,
        ) {
            Ok(text) => {
                let secret = context.read_secrets();
                // What `--dry-run` may show of a file holding secrets: the
                // template rendered with every secret as the mask.
                let masked = secret
                    .then(|| {
                        let context = masked_context.get_or_init(|| {
                            template::context(project, env, host, artifact, &placeholders)
                        });
                        template::render(
                            jinja,
                            &tpl.source,
                            &tpl.source.text,
                            &template::Origin::At(0),
                            context,
                        )
                        .ok()
                    })
                    .flatten()
                    .map(String::into_bytes);
                rendered.push(RenderedFile {
                    dst: tpl.dst.clone(),
                    mode: tpl.mode.unwrap_or(if secret { 0o600 } else { 0o644 }),
                    contents: text.into_bytes(),
                    secret,
                    masked,
                });
            }
            Err(diag) => errors.push(diag),
        }
    }
    let hooks: &Hooks = if local {
        &artifact.local_hooks
    } else {
        &artifact.hooks
    };
    // Each field of the service gets a context of its own, so that what
    // each read of the secrets is known.
    let field = |hook: &Hook, command: bool, secrets: &Secrets| {
        let context = template::context(project, env, host, artifact, secrets);
        let origin =
            template::Origin::of_toml_string(&project.file.text, hook.span.clone(), &hook.text);
        let text = if command {
            template::render_hook(jinja, &project.file, &hook.text, &origin, &context)?
        } else {
            template::render(jinja, &project.file, &hook.text, &origin, &context)?
        };
        Ok((text, context.read_secrets()))
    };
    let service = match &artifact.service {
        Some(service) => match crate::service::render(
            project,
            artifact,
            service,
            &host.name,
            env.user.as_deref(),
            &mut |hook, command| field(hook, command, secrets),
            &mut |hook, command| field(hook, command, &placeholders),
        ) {
            Ok(service) => Some(service),
            Err(mut diags) => {
                errors.append(&mut diags);
                None
            }
        },
        None => None,
    };
    // Whether any hook read a secret: each rendering says so of itself.
    let hook_context = template::context(project, env, host, artifact, secrets);
    let read_secret = std::cell::Cell::new(false);
    let mut render_hook = |hook: &Option<Hook>, context: &template::Context<'_>| {
        let hook = hook.as_ref()?;
        let origin =
            template::Origin::of_toml_string(&project.file.text, hook.span.clone(), &hook.text);
        let rendered = template::render_hook(jinja, &project.file, &hook.text, &origin, context);
        read_secret.set(read_secret.get() || context.read_secrets());
        match rendered {
            // A hook runs as one argument of `sh -c`, which the kernel
            // bounds (128 KiB on Linux): a longer one is refused here
            // rather than failing on every host.
            Ok(text) if text.len() > MAX_HOOK_BYTES => {
                errors.push(
                    crate::diag::Diagnostic::error(format!(
                        "a hook renders {} bytes for host `{}`, more than the {MAX_HOOK_BYTES} a \
                         command line holds",
                        text.len(),
                        host.name
                    ))
                    .at(
                        &project.file,
                        hook.span.clone(),
                        "put the commands in a script among the artifact's files, and run that",
                    ),
                );
                None
            }
            // A hook written with CRLF line ends runs as it reads.
            Ok(text) => Some(text.replace("\r\n", "\n")),
            Err(diag) => {
                errors.push(diag);
                None
            }
        }
    };
    let render_all = |render: &mut dyn FnMut(&Option<Hook>) -> Option<String>| RenderedHooks {
        build: render(&hooks.build),
        pre_activate: render(&hooks.pre_activate),
        activate: render(&hooks.activate),
        health: render(&hooks.health),
        once: render(&hooks.once),
        health_timeout: hooks.health_timeout,
        timeout: hooks.timeout,
    };
    let rendered_hooks = render_all(&mut |hook| render_hook(hook, &hook_context));
    let secret = read_secret.get();
    let masked = secret.then(|| {
        let context = masked_context
            .get_or_init(|| template::context(project, env, host, artifact, &placeholders));
        let masked = render_all(&mut |hook| render_hook(hook, context));
        activation(&masked, service.as_ref()).into_bytes()
    });
    let activation = RenderedFile {
        dst: ACTIVATION_FILE.to_string(),
        mode: if secret { 0o600 } else { 0o644 },
        contents: activation(&rendered_hooks, service.as_ref()).into_bytes(),
        secret,
        masked,
    };
    let hooks = rendered_hooks;
    let checks = render_checks(project, env, jinja, host, artifact, secrets, &mut errors);
    // Checks judge real hosts from outside (their names, the fleet's
    // Prometheus): under `--local` they are checked as written, not run.
    let checks = if local { Vec::new() } else { checks };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Target {
        host: host.name.clone(),
        address: host.address.clone(),
        artifact: artifact.name.clone(),
        path: artifact.path.clone(),
        rendered,
        activation,
        hooks,
        service,
        checks,
    })
}

/// The artifact's rollout checks, rendered for `host`: URLs and queries
/// verbatim, commands shell-quoted, as hooks are.
fn render_checks(
    project: &Project,
    env: &Environment,
    jinja: &minijinja::Environment<'_>,
    host: &Host,
    artifact: &Artifact,
    secrets: &Secrets,
    errors: &mut Vec<Diagnostic>,
) -> Vec<RenderedCheck> {
    let mut context = template::context(project, env, host, artifact, secrets);
    context.new = Some(checks::SetView::markers("new"));
    context.old = Some(checks::SetView::markers("old"));
    let origin = |hook: &Hook| {
        template::Origin::of_toml_string(&project.file.text, hook.span.clone(), &hook.text)
    };
    let mut out = Vec::new();
    for check in &artifact.rollout.checks {
        let rendered = checks::render(
            check,
            &mut |hook| template::render(jinja, &project.file, &hook.text, &origin(hook), &context),
            &mut |hook| {
                template::render_hook(jinja, &project.file, &hook.text, &origin(hook), &context)
            },
        );
        match rendered {
            Ok(check) => out.push(check),
            Err(diag) => errors.push(diag),
        }
    }
    out
}

/// The most a rendered hook may hold: it must fit in one argument of a
/// command line.
pub const MAX_HOOK_BYTES: usize = 64 * 1024;

/// The file in every release directory that holds its activation: what
/// activating the release, or going back to it, runs.
pub const ACTIVATION_FILE: &str = ".landfall-activation";

/// A release's activation as `landfall_recorded` reads it: sh assignments,
/// every value quoted. It is one of the release's files, so the release id
/// covers it, and a release holding a secret in a hook keeps it at 0600.
/// Where the release runs (`LANDFALL_ENV`, `LANDFALL_HOST`, its path) is
/// not part of it: hosts whose files and hooks are the same share a
/// release id, in every environment.
fn activation(hooks: &RenderedHooks, service: Option<&RenderedService>) -> String {
    use crate::process::quote;
    let hook = |h: &Option<String>| quote(h.as_deref().unwrap_or(""));
    let seconds = crate::steps::timeout_seconds;
    format!(
        "# The activation of this release, written by landfall and read by its steps.\n\
         hook_build={}\nhook_pre_activate={}\nhook_activate={}\nhook_health={}\n\
         health_timeout={}\nhook_timeout={}\n{}",
        hook(&hooks.build),
        hook(&hooks.pre_activate),
        hook(&hooks.activate),
        hook(&hooks.health),
        seconds(hooks.health_timeout),
        seconds(hooks.timeout),
        crate::service::activation(service),
    ) + &once(hooks)
}

/// The `once` hook's line of an activation; none without one, so that the
/// ids of releases made before there was such a hook do not change.
fn once(hooks: &RenderedHooks) -> String {
    hooks
        .once
        .as_ref()
        .map(|h| format!("hook_once={}\n", crate::process::quote(h)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::Fixture;

    fn fixture() -> Fixture {
        Fixture::new(&[
            (
                "deploy.toml",
                "[vars]\nport = 80\n\n[artifact.web]\nroles = [\"web\"]\npath = \"/srv/web\"\nbins = [\"svc\"]\n\
                 templates = [{ src = \"web.toml.j2\", dst = \"etc/web.toml\", mode = \"0640\" }]\n\
                 [artifact.web.hooks]\nhealth = \"curl localhost:{{ vars.port }}\"\n\
                 [artifact.web.hooks.local]\nhealth = \"true {{ host.name }}\"\n\n\
                 [artifact.db]\nroles = [\"db\"]\npath = \"/srv/db\"\nbins = [\"svc\"]\n",
            ),
            (
                "templates/web.toml.j2",
                "host = \"{{ host.name }}\"\nport = {{ vars.port }}\ndbs = \"{{ hosts_with_role(\"db\") | map(attribute=\"name\") | join(\",\") }}\"\n",
            ),
            (
                "environments/dev.toml",
                "[hosts.web1]\nroles = [\"web\"]\nvars = { port = 81 }\n[hosts.web2]\nroles = [\"web\"]\n[hosts.db1]\nroles = [\"db\"]\n",
            ),
        ])
    }

    fn targets(plan: &Plan) -> Vec<String> {
        plan.targets
            .iter()
            .map(|t| format!("{}/{}", t.host, t.artifact))
            .collect()
    }

    #[test]
    fn every_host_gets_its_artifacts_with_rendered_files() {
        let fixture = fixture();
        let (project, env) = fixture.load("dev");
        let plan = plan(&project, &env, &[], false, &Secrets::none()).unwrap();
        assert_eq!(targets(&plan), ["db1/db", "web1/web", "web2/web"]);
        assert_eq!(plan.bins.len(), 1, "a binary used twice is built once");
        let web1 = &plan.targets[1];
        assert_eq!(web1.rendered.len(), 1);
        assert_eq!(web1.rendered[0].mode, 0o640);
        assert_eq!(
            String::from_utf8_lossy(&web1.rendered[0].contents),
            "host = \"web1\"\nport = 81\ndbs = \"db1\"\n"
        );
        assert_eq!(web1.hooks.health.as_deref(), Some("curl localhost:81"));
        assert_eq!(
            plan.targets[2].hooks.health.as_deref(),
            Some("curl localhost:80")
        );
    }

    #[test]
    fn hooks_written_with_crlf_line_ends_run_as_they_read() {
        let fixture = fixture();
        let deploy = crate::config::tests::root(&fixture).join("deploy.toml");
        let text = fs::read_to_string(&deploy).unwrap().replace(
            "health = \"curl localhost:{{ vars.port }}\"\n",
            "health = \"\"\"\ncurl localhost:{{ vars.port }} &&\ntrue\n\"\"\"\n",
        );
        fs::write(&deploy, text.replace('\n', "\r\n")).unwrap();
        let (project, env) = fixture.load("dev");
        let plan = plan(&project, &env, &[], false, &Secrets::none()).unwrap();
        assert_eq!(
            plan.targets[1].hooks.health.as_deref(),
            Some("curl localhost:81 &&\ntrue\n")
        );
    }

    #[test]
    fn local_plans_use_local_hooks() {
        let fixture = fixture();
        let (project, env) = fixture.load("dev");
        let plan = plan(&project, &env, &[], true, &Secrets::none()).unwrap();
        assert_eq!(plan.targets[1].hooks.health.as_deref(), Some("true web1"));
    }

    #[test]
    fn only_selects_hosts_and_roles() {
        let fixture = fixture();
        let (project, env) = fixture.load("dev");
        let only = |filters: &[&str]| {
            let filters: Vec<String> = filters.iter().map(ToString::to_string).collect();
            plan(&project, &env, &filters, false, &Secrets::none()).map(|p| targets(&p))
        };
        assert_eq!(only(&["web2"]).unwrap(), ["web2/web"]);
        assert_eq!(only(&["@db", "web1"]).unwrap(), ["db1/db", "web1/web"]);
        let err = only(&["@cache"]).unwrap_err();
        assert!(err.is_usage());
        assert!(
            err.to_string()
                .starts_with("`--only @cache`: no role `cache` in environment `dev`"),
            "{err}"
        );
        assert!(
            only(&["web9"])
                .unwrap_err()
                .to_string()
                .contains("no host `web9`")
        );
    }

    #[test]
    fn a_template_that_fails_for_one_host_names_it() {
        let fixture = fixture();
        fs::write(
            crate::config::tests::root(&fixture).join("templates/web.toml.j2"),
            "x = {{ host.vars.port }}\n",
        )
        .unwrap();
        let (project, env) = fixture.load("dev");
        let err = plan(&project, &env, &[], false, &Secrets::none())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "templates/web.toml.j2:1:12: cannot render `templates/web.toml.j2` for host `web2`"
            ),
            "{err}"
        );
    }
}
