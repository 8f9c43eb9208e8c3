//! `cargo deploy ENV`, end to end: [`deploy()`] reads the workspace and the
//! environment, refuses what a protected environment refuses, asks, runs
//! the `before` hook, builds (or verifies a bundle) while the hosts are
//! read, deploys over the transport, and runs the `after` hook. The binary
//! and library users run this same operation.
//!
//! Its fast path, the read-ahead: while cargo describes the workspace,
//! the deploy is prepared with the workspace the last run here found, and
//! when nothing is to run or be asked before the hosts are contacted, the
//! connections open and the hosts are read meanwhile (`Contact`). Unless
//! cargo then describes the same workspace, all of that is thrown away,
//! unseen, and the deploy is prepared again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::build::BuildOptions;
use super::context::{self, Frontend, Settings};
use crate::bundle::Digest;
use crate::bundle::releases::FromOptions;
use crate::cargo::WorkspaceAhead;
use crate::config::{self, Environment, Project, Workspace};
use crate::deploy::{self, DeployOptions, Identity, Run, Summary};
use crate::diag::Diagnostic;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::secrets::{Mask, Secrets};
use crate::store::{Remote, StoreUrl};
use crate::transport::Transport;
use crate::{hooks, plan};

/// What to deploy, and how: the options of `cargo deploy ENV`.
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools, reason = "the command's flags")]
pub struct DeployRequest {
    pub env: String,
    /// Only these artifacts; all when empty.
    pub artifacts: Vec<String>,
    /// Deploy into `target/landfall/local/ENV/`, one directory per host.
    pub local: bool,
    /// Say what would change, and change nothing.
    pub dry_run: bool,
    /// Activate again releases that are current already.
    pub force: bool,
    /// Take a lock another deploy left.
    pub break_lock: bool,
    /// Build from a tree with uncommitted changes, even for a protected
    /// environment.
    pub allow_dirty: bool,
    /// Deploy a bundle whose configuration differs from the workspace's.
    pub allow_config_drift: bool,
    /// `--from LOCATION[#blake3:HEX]`: deploy that bundle instead of
    /// building.
    pub from: Option<PathBuf>,
    /// A protected environment's confirmation, given up front.
    pub yes: bool,
}

/// Deploys as `request` says; the summary says how each target ended.
/// Bad input is an error before any host is contacted.
pub fn deploy(settings: &Settings, request: &DeployRequest, ui: &dyn Frontend) -> Result<Summary> {
    deploy_as(settings, request, ui, false)
}

/// Deploys as `request` says; with `promote`, going on with the rollout
/// that waits for promotion (see [`super::promote`]), which the releases
/// built must be those of.
pub(crate) fn deploy_as(
    settings: &Settings,
    request: &DeployRequest,
    ui: &dyn Frontend,
    promote: bool,
) -> Result<Summary> {
    // A build records HEAD, read while cargo describes the workspace.
    let head = request
        .from
        .is_none()
        .then(|| crate::git::HeadAhead::start(settings.workspace_dir()));
    let workspace = WorkspaceAhead::start(settings.manifest_path.as_deref());
    let deploy = Deploy {
        settings,
        request,
        ui,
        promote,
    };
    let mut warnings = Vec::new();
    let prepared = deploy.prepare_ahead(workspace, &mut warnings);
    ui.diagnostics(&warnings);
    let (prepared, early) = prepared?;
    deploy.run(head, &prepared, early)
}

/// A deploy under way: what it was asked, and whom it reports to.
struct Deploy<'a> {
    settings: &'a Settings,
    request: &'a DeployRequest,
    ui: &'a dyn Frontend,
    /// It goes on with the rollout that waits for promotion.
    promote: bool,
}

/// What a deploy works out before it may print, ask, run or change
/// anything: the project, the environment, the secrets and the plan.
struct Prepared {
    project: Project,
    env: Environment,
    /// Why the protected environment refuses the deploy; a dry run is only
    /// warned.
    refused: Option<String>,
    secrets: Secrets,
    plan: plan::Plan,
    /// Where `--from` takes the bundle from, and the digest it is pinned
    /// to.
    from: Option<(PathBuf, Option<Digest>)>,
    /// The store of a `--from s3://…`.
    from_store: Option<Remote>,
    /// The store the hosts pull from.
    store: Option<Remote>,
    /// Whether the workspace is other than the one remembered.
    workspace_changed: bool,
}

impl Deploy<'_> {
    /// Prepares a deploy, with what loading the project and the
    /// environment warned of put in `warnings`, unsaid.
    fn prepare(
        &self,
        (workspace, workspace_changed): (Workspace, bool),
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<Prepared> {
        let Deploy {
            settings, request, ..
        } = self;
        let project = config::load_project(workspace)?;
        let env = settings.environment(&project, &request.env)?;
        warnings.extend(env.warnings.iter().chain(&project.warnings).cloned());
        plan::reaches_a_host(&project, &env, &settings.only)?;
        let refused = super::protection::protection(&project, &env, request.allow_dirty);
        if let Some(problem) = refused.as_ref().filter(|_| !request.dry_run) {
            return Err(Error::Usage(problem.clone()));
        }
        let secrets = crate::secrets::load(&project, &env)?;
        let mut plan = plan::plan(&project, &env, &settings.only, request.local, &secrets)?;
        plan.retain_artifacts(&project, &request.artifacts)?;
        // Hosts pull from the environment's store, reached with the `AWS_*`
        // variables, which are checked before anything is built or
        // contacted. A dry run reads no store, and `--local` copies on this
        // machine, where a store would save nothing.
        let from = bundle_source(request.from.as_deref())?;
        let from_store = match from.as_ref().and_then(|f| store_url(&f.0)).transpose()? {
            Some(url) => Some(Remote::from_env(&url)?),
            None => None,
        };
        let pulls = !request.local && !request.dry_run;
        let store = match &env.store {
            Some(url) if pulls => Some(Remote::from_env(url)?),
            // A bundle pulled from a store is pulled by the hosts from
            // there, unless the environment has a store of its own.
            _ if pulls => from_store.clone(),
            _ => None,
        };
        Ok(Prepared {
            project,
            env,
            refused,
            secrets,
            plan,
            from,
            from_store,
            store,
            workspace_changed,
        })
    }

    /// Prepares a deploy while cargo describes the workspace (see the
    /// module's docs).
    fn prepare_ahead(
        &self,
        workspace: WorkspaceAhead,
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<(Prepared, Option<Contact>)> {
        let Some(guess) = workspace.remembered().cloned() else {
            let prepared = self.prepare(workspace.finish()?, warnings)?;
            return Ok((prepared, None));
        };
        let attempt = self.prepare((guess.clone(), false), warnings);
        let early = match &attempt {
            Ok(prepared) if self.contacts_first(prepared) => self.contact(prepared).ok(),
            _ => None,
        };
        let (workspace, changed) = workspace.finish()?;
        if !changed {
            return Ok((attempt?, early));
        }
        drop(early);
        warnings.clear();
        let prepared = self.prepare((workspace, changed), warnings)?;
        Ok((prepared, None))
    }

    /// Whether a deploy contacts its hosts before it runs, asks or refuses
    /// anything: no `before` hook, no question, no git tree to read, no
    /// bundle to verify.
    fn contacts_first(&self, prepared: &Prepared) -> bool {
        let Prepared {
            project, env, plan, ..
        } = prepared;
        let request = self.request;
        let git_tree = project.artifacts.iter().any(|artifact| {
            matches!(artifact.transport, config::Transport::Git { .. })
                && plan.targets.iter().any(|t| t.artifact == artifact.name)
        });
        request.from.is_none()
            && !request.local
            && !request.dry_run
            && !request.force
            && project.hooks.before.is_none()
            // A protected environment asks first, unless told yes.
            && (!env.protect || request.yes)
            && !git_tree
    }

    /// Opens the deploy's transport, and reads the hosts over it while the
    /// releases are built (not for a bundle, which builds nothing, nor for
    /// a dry run or `--force`, which read the hosts as they go).
    fn contact(&self, prepared: &Prepared) -> Result<Contact> {
        let Prepared {
            project, env, plan, ..
        } = prepared;
        let request = self.request;
        let (transport, warnings) =
            self.settings
                .open_transport(self.ui, project, env, &plan.hosts(env), request.local)?;
        let transport: Arc<dyn Transport + Send> = Arc::from(transport);
        let ahead = (request.from.is_none() && !request.dry_run && !request.force).then(|| {
            let transport = Arc::clone(&transport);
            let (env, targets) = (env.name.clone(), plan.targets.clone());
            let jobs = self.settings.jobs(&prepared.env);
            std::thread::spawn(move || {
                let targets: Vec<&plan::Target> = targets.iter().collect();
                deploy::look_ahead(transport.as_ref(), &env, &targets, jobs)
            })
        });
        Ok(Contact {
            transport,
            ahead,
            warnings,
        })
    }

    /// Deploys what was prepared: says what preparing found, asks, runs the
    /// `before` hook, builds while the hosts are read, deploys, and runs
    /// the `after` hook.
    fn run(
        &self,
        head: Option<crate::git::HeadAhead>,
        prepared: &Prepared,
        early: Option<Contact>,
    ) -> Result<Summary> {
        let Deploy {
            settings,
            request,
            ui,
            ..
        } = *self;
        let report = |event| ui.event(event);
        if let Some(problem) = &prepared.refused {
            report(Event::Warning {
                message: format!("{problem}; a deploy would be refused"),
            });
        }
        let Prepared {
            project,
            env,
            secrets,
            plan,
            from,
            from_store,
            ..
        } = prepared;
        context::loaded(ui, secrets);
        if env.protect && !request.dry_run && !request.yes {
            let what = if self.promote { "promotion" } else { "deploy" };
            confirm_protected(ui, env, plan, what)?;
        }
        let bundle = verify_bundle(project, from.as_ref(), from_store.as_ref())?;
        let host_names: Vec<String> = plan.hosts(env).iter().map(|h| h.name.clone()).collect();
        // `before` runs before any host is contacted (the connections open
        // while cargo builds); a dry run runs neither hook.
        if !request.dry_run && project.hooks.before.is_some() {
            let context = hooks::Context {
                project,
                env,
                hosts: &host_names,
                revision: crate::git::revision(&project.workspace.root).commit,
                summary: None,
            };
            hooks::run(hooks::Which::Before, &context, &report)?;
        }
        let (built, mut contact) = self.releases(head, prepared, bundle.as_ref(), early)?;
        for warning in &contact.warnings {
            report(Event::Warning {
                message: warning.clone(),
            });
        }
        let mut options = self.options(prepared, bundle.as_ref(), contact.looked_ahead());
        let identity = Identity::current(built.revision.clone());
        let run = Run {
            project,
            env,
            transport: contact.transport.as_ref(),
            identity: &identity,
            jobs: settings.jobs(env),
            events: &report,
            cancel: &settings.cancel,
        };
        if self.promote {
            let ahead = options.lookahead.as_ref();
            options.resume = Some(deploy::resumable(&run, &built.releases, ahead)?);
        }
        let mut summary = deploy::deploy(&run, &built.releases, &options);
        // A deploy leaves alone what artifacts that left deploy.toml (or
        // moved) left on the hosts: the dry run says what stays, and what
        // removes it. Only the whole plan tells an orphan from an artifact
        // not selected.
        if request.dry_run && request.artifacts.is_empty() {
            report_orphans(&run, plan);
        }
        summary.timings.build = built.build_seconds;
        summary.timings.assemble = built.assemble_seconds;
        // `after` runs once the summary is known, and before it is
        // returned: the summary stays the last line of the output.
        if !request.dry_run && project.hooks.after.is_some() {
            after_hook(ui, project, env, secrets.mask(), &host_names, &summary);
        }
        Ok(summary)
    }

    /// The releases to deploy, from the bundle, or built while the hosts
    /// are read over the connections opened meanwhile (`early`, when the
    /// deploy opened them before cargo described the workspace); and the
    /// deploy's transport.
    fn releases(
        &self,
        head: Option<crate::git::HeadAhead>,
        prepared: &Prepared,
        bundle: Option<&crate::bundle::Bundle>,
        early: Option<Contact>,
    ) -> Result<(super::build::Built, Contact)> {
        let Deploy {
            settings,
            request,
            ui,
            ..
        } = *self;
        let report = |event| ui.event(event);
        let Prepared {
            project,
            plan,
            from,
            ..
        } = prepared;
        if let Some(bundle) = bundle {
            let options = FromOptions {
                allow_config_drift: request.allow_config_drift,
            };
            let built = crate::bundle::releases::releases_from_bundle(
                project, plan, bundle, options, &report,
            )?;
            if let Some((location, None)) = from {
                report(Event::Warning {
                    message: format!(
                        "the bundle `{}` is not pinned: any bundle put there is deployed; its \
                         manifest's digest is {}, which `--from '{}#{}'` pins",
                        location.display(),
                        bundle.digest,
                        location.display(),
                        bundle.digest
                    ),
                });
            }
            Ok((built, self.contact(prepared)?))
        } else {
            let options = BuildOptions {
                quiet: settings.quiet_build,
                // A dry run shows what HEAD would change, and warns.
                allow_dirty: request.allow_dirty || request.dry_run,
                revision: head.map(|head| head.of(&project.workspace.root)),
                ..BuildOptions::default()
            };
            // A git artifact's tree is refused (a dirty tree, a missing
            // `subdir`) before any host is contacted.
            let sources = super::build::read_sources(project, plan, &options, &report)?;
            // The connections open while cargo builds and the artifacts are
            // assembled, and the hosts are read over them meanwhile.
            let contact = match early {
                Some(contact) => contact,
                None => self.contact(prepared)?,
            };
            let built =
                super::build::build_from_sources(project, plan, sources, &options, &report)?;
            // The next deploy goes on with this workspace while cargo
            // describes it; one that stops before it builds writes nothing.
            if prepared.workspace_changed {
                let _ = crate::cargo::remember(&project.workspace);
            }
            Ok((built, contact))
        }
    }

    /// What the deploy is told besides its releases.
    fn options(
        &self,
        prepared: &Prepared,
        bundle: Option<&crate::bundle::Bundle>,
        lookahead: Option<deploy::Lookahead>,
    ) -> DeployOptions {
        let Prepared {
            secrets,
            from,
            from_store,
            store,
            ..
        } = prepared;
        let request = self.request;
        DeployOptions {
            dry_run: request.dry_run,
            break_lock: request.break_lock,
            force: request.force,
            // Where the bundle came from, and the digest of what was
            // deployed, pinned or not.
            bundle: from.as_ref().zip(bundle).map(|((location, _), bundle)| {
                let location = if from_store.is_some() {
                    location.clone()
                } else {
                    std::path::absolute(location).unwrap_or_else(|_| location.clone())
                };
                format!("{}#{}", location.display(), bundle.digest)
            }),
            // A value that is a secret, or whose key names one, is recorded
            // masked: the release's provenance is read by `status`.
            overrides: self
                .settings
                .vars
                .iter()
                .map(|var| secrets.recorded_override(var))
                .collect(),
            store: store.clone(),
            lookahead,
            resume: None,
        }
    }
}

/// A deploy's transport, and the hosts' state read over it while the
/// releases are built.
struct Contact {
    transport: Arc<dyn Transport + Send>,
    ahead: Option<std::thread::JoinHandle<deploy::Lookahead>>,
    /// What opening the transport warned of, said once the deploy goes on.
    warnings: Vec<String>,
}

impl Contact {
    /// The hosts' state, once it has been read.
    fn looked_ahead(&mut self) -> Option<deploy::Lookahead> {
        self.ahead.take().and_then(|ahead| ahead.join().ok())
    }
}

impl Drop for Contact {
    /// The transport closes its sessions once the hosts are read.
    fn drop(&mut self) {
        self.looked_ahead();
    }
}

/// The object store a `--from` or `--out` names, if it names one
/// (`s3://…`); a path otherwise.
pub fn store_url(path: &Path) -> Option<Result<StoreUrl>> {
    let text = path.to_str()?;
    text.starts_with("s3://").then(|| {
        StoreUrl::parse(text).map_err(|why| Error::Usage(format!("invalid store `{text}`: {why}")))
    })
}

/// `--from LOCATION[#blake3:HEX]`: the bundle's directory or store, and
/// the digest of the manifest it is pinned to.
fn bundle_source(from: Option<&Path>) -> Result<Option<(PathBuf, Option<Digest>)>> {
    let Some(from) = from else {
        return Ok(None);
    };
    let Some(text) = from.to_str() else {
        return Ok(Some((from.to_path_buf(), None)));
    };
    let (location, pin) = crate::bundle::split_pin(text)
        .map_err(|why| Error::Usage(format!("`--from {text}`: {why}")))?;
    Ok(Some((PathBuf::from(location), pin)))
}

/// A bundle is verified before anything runs or any host is contacted:
/// the manifest against its pin, then every file against the manifest.
/// One in a store is fetched to this machine first (once), and verified
/// the same way.
fn verify_bundle(
    project: &Project,
    from: Option<&(PathBuf, Option<Digest>)>,
    from_store: Option<&Remote>,
) -> Result<Option<crate::bundle::Bundle>> {
    let Some((location, pin)) = from else {
        return Ok(None);
    };
    let bundle = match from_store {
        Some(remote) => {
            let store = crate::assemble::Store::open(project)?;
            let dir = crate::bundle::fetch(remote, &store, pin.as_ref())?;
            crate::bundle::open(&dir, pin.as_ref())?
        }
        None => crate::bundle::open(location, pin.as_ref())?,
    };
    Ok(Some(bundle))
}

/// Asks to confirm a deploy, a promotion, an abort or a rollback (`what`)
/// of a protected environment; without a person to ask, only `--yes`
/// confirms.
pub(crate) fn confirm_protected(
    ui: &dyn Frontend,
    env: &Environment,
    plan: &plan::Plan,
    what: &str,
) -> Result<()> {
    if !ui.can_ask() {
        return Err(Error::Usage(format!(
            "environment `{}` is protected: confirm the {what} with `--yes` (there is no terminal to ask on)",
            env.name
        )));
    }
    let hosts: Vec<&str> = plan
        .targets
        .iter()
        .map(|t| t.host.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let verb = match what {
        "deploy" => "Deploy to",
        "promotion" => "Go on with the rollout that waits in",
        "abort" => "Switch back the rollout that waits in",
        _ => "Roll back",
    };
    let question = format!(
        "{verb} protected environment `{}` ({}: {})?",
        env.name,
        context::counted(hosts.len() as u64, "host"),
        hosts.join(", ")
    );
    if ui.ask(&question)? {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "the {what} was not confirmed; nothing was changed"
        )))
    }
}

/// The orphans on the plan's hosts, each an `orphan` event, and how to
/// remove them; a host whose orphans cannot be read was reported by the
/// probe already.
fn report_orphans(run: &Run<'_>, plan: &plan::Plan) {
    let hosts = plan.hosts(run.env);
    let found = super::prune::orphans(run, plan, &hosts);
    let mut count: u64 = 0;
    for host in found.into_iter().filter(|h| h.error.is_none()) {
        for orphan in host.orphans {
            count += 1;
            (run.events)(Event::Orphan {
                host: host.host.clone(),
                orphan,
            });
        }
    }
    if count > 0 {
        (run.events)(Event::Warning {
            message: format!(
                "this deploy leaves {} on the hosts (directories and services of artifacts \
                 that left deploy.toml or moved): `cargo deploy prune {}` stops and removes {}",
                context::counted(count, "orphan"),
                run.env.name,
                if count == 1 { "it" } else { "them" }
            ),
        });
    }
}

/// The summary as the last line of `--message-format json` has it, with
/// `mask` applied: what the `after` hook reads.
pub fn summary_line(summary: &Summary, mask: &Mask) -> String {
    #[derive(Serialize)]
    #[serde(tag = "event", rename_all = "snake_case")]
    enum Line<'a> {
        Summary(&'a Summary),
    }
    let line = serde_json::to_string(&Line::Summary(summary)).expect("a summary serialises");
    mask.apply(&line).into_owned()
}

/// Runs the `after` hook with the summary in a private file; a failure is
/// a warning: the deploy is over, and its exit status says how it went.
fn after_hook(
    ui: &dyn Frontend,
    project: &Project,
    env: &Environment,
    mask: &Mask,
    hosts: &[String],
    summary: &Summary,
) {
    let report = |event| ui.event(event);
    let file = match hooks::write_summary(project, env, &summary_line(summary, mask)) {
        Ok(file) => file,
        Err(err) => {
            report(Event::Warning {
                message: format!("the `after` hook did not run: {}", err.chain()),
            });
            return;
        }
    };
    let context = hooks::Context {
        project,
        env,
        hosts,
        revision: crate::git::revision(&project.workspace.root).commit,
        summary: Some((&file, summary.ok)),
    };
    if let Err(err) = hooks::run(hooks::Which::After, &context, &report) {
        report(Event::Warning {
            message: err.chain(),
        });
    }
}
