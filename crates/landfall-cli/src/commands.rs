//! Glue between the command line and the library: one function per
//! command, each returning the exit status.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use landfall::build::WorkspaceAhead;
use landfall::bundle::Digest;
use landfall::config::{self, Environment, Host, Project, Workspace};
use landfall::deploy::{self, DeployOptions, Identity, Run, Summary};
use landfall::diag::Diagnostic;
use landfall::event::Event;
use landfall::ops;
use landfall::ops::build::BuildOptions;
use landfall::ops::bundle::FromOptions;
use landfall::secrets::Secrets;
use landfall::transport::{Local, Ssh, SshOptions, Transport};
use landfall::{Error, hooks, plan};

use crate::cli::{
    BuildArgs, CheckArgs, ConfigArgs, DeployArgs, ExecArgs, Global, LogsArgs, MessageFormat,
    PruneArgs, RollbackArgs, TargetArgs,
};
use crate::json::Line;
use crate::render::{self, Printer};

pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;

pub(crate) struct Ctx<'a> {
    pub(crate) global: &'a Global,
    pub(crate) printer: &'a Printer,
}

impl Ctx<'_> {
    fn report(&self) -> impl Fn(Event) + Sync + '_ {
        |event| self.printer.event(event)
    }

    fn warn(&self, warnings: &[Diagnostic]) {
        if self.global.message_format == MessageFormat::Json {
            for w in warnings {
                self.printer.event(Event::Warning {
                    message: w.to_string(),
                });
            }
        } else {
            for w in warnings {
                render::diagnostic(w);
            }
        }
    }

    /// Reads the workspace and an environment, with `--var` applied.
    pub(crate) fn load(&self, env: &str) -> Result<(Project, Environment), Error> {
        let project = landfall::load(self.global.manifest_path.as_deref())?;
        let env = self.environment(&project, env)?;
        self.warn(&project.warnings);
        Ok((project, env))
    }

    fn environment(&self, project: &Project, name: &str) -> Result<Environment, Error> {
        let env = self.environment_of(project, name)?;
        self.warn(&env.warnings);
        Ok(env)
    }

    /// [`environment`](Ctx::environment), with its warnings unsaid.
    fn environment_of(&self, project: &Project, name: &str) -> Result<Environment, Error> {
        let mut env = config::load_environment(project, name)?;
        for var in &self.global.vars {
            config::provenance::parse_override(var, &mut env.overrides).map_err(Error::Usage)?;
        }
        Ok(env)
    }

    /// Decrypts the environment's secrets; from now on their values are
    /// masked in everything printed.
    fn secrets(&self, project: &Project, env: &Environment) -> Result<Secrets, Error> {
        let secrets = landfall::secrets::load(project, env)?;
        self.loaded(&secrets);
        Ok(secrets)
    }

    /// Hides the secrets' values from every line printed from now on, and
    /// reports their warnings.
    fn loaded(&self, secrets: &Secrets) {
        render::hide(secrets.mask());
        for warning in &secrets.warnings {
            self.printer.event(Event::Warning {
                message: warning.clone(),
            });
        }
    }

    fn jobs(&self, env: &Environment) -> usize {
        self.global.jobs.map_or(env.jobs, |j| j as usize)
    }

    /// Reports a library error and returns its exit status.
    pub(crate) fn fail(err: &Error) -> u8 {
        match err {
            Error::Config(diags) => {
                for diag in &diags.0 {
                    render::diagnostic(diag);
                }
            }
            other => render::error(&error_chain(other)),
        }
        if err.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_FAILED
        }
    }

    fn finish(&self, summary: &Summary) -> u8 {
        self.printer.summary(summary);
        if summary.ok { EXIT_OK } else { EXIT_FAILED }
    }
}

/// The transport for a run: local directories, or the hosts over ssh.
pub(crate) fn transport(
    ctx: &Ctx<'_>,
    project: &Project,
    env: &Environment,
    hosts: &[&Host],
    local: bool,
) -> Result<Box<dyn Transport>, Error> {
    let (transport, warnings) = open_transport(ctx, project, env, hosts, local)?;
    for message in warnings {
        ctx.printer.event(Event::Warning { message });
    }
    Ok(transport)
}

/// [`transport`], with what opening it warned of, unsaid.
fn open_transport(
    ctx: &Ctx<'_>,
    project: &Project,
    env: &Environment,
    hosts: &[&Host],
    local: bool,
) -> Result<(Box<dyn Transport + Send>, Vec<String>), Error> {
    if local {
        let local = Local::new(&project.workspace.landfall_dir(), &env.name);
        return Ok((Box::new(local), Vec::new()));
    }
    if let Some(config) = env.ssh_config.as_ref().filter(|c| !c.is_file()) {
        return Err(Error::Usage(format!(
            "the `ssh_config` of environment `{}` does not exist: `{}`",
            env.name,
            config.display()
        )));
    }
    let mut options = SshOptions::of(env);
    options.batch = !interactive();
    if ctx.global.no_persist {
        options.persist = std::time::Duration::ZERO;
    }
    let ssh = Ssh::connect(hosts, options, ctx.jobs(env));
    let warnings = ssh.warnings().to_vec();
    Ok((Box::new(ssh), warnings))
}

/// The object store a `--from` or `--out` names, if it names one
/// (`s3://…`); a path otherwise.
fn store_url(path: &std::path::Path) -> Option<Result<landfall::store::StoreUrl, Error>> {
    let text = path.to_str()?;
    text.starts_with("s3://").then(|| {
        landfall::store::StoreUrl::parse(text)
            .map_err(|why| Error::Usage(format!("invalid store `{text}`: {why}")))
    })
}

/// `--from LOCATION[#blake3:HEX]`: the bundle's directory or store, and
/// the digest of the manifest it is pinned to.
fn bundle_source(args: &DeployArgs) -> Result<Option<(PathBuf, Option<Digest>)>, Error> {
    let Some(from) = &args.from else {
        return Ok(None);
    };
    let Some(text) = from.to_str() else {
        return Ok(Some((from.clone(), None)));
    };
    let (location, pin) = landfall::bundle::split_pin(text)
        .map_err(|why| Error::Usage(format!("`--from {text}`: {why}")))?;
    Ok(Some((PathBuf::from(location), pin)))
}

/// A person at a terminal who could answer a prompt; CI never is.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("CI").is_none() && std::io::stdin().is_terminal()
}

/// `cargo deploy` without an environment: the environments there are to
/// choose from, and how to give one; exit status 2.
fn no_environment(ctx: &Ctx<'_>) -> u8 {
    let project = match landfall::load(ctx.global.manifest_path.as_deref()) {
        Ok(project) => project,
        Err(err) => return Ctx::fail(&err),
    };
    let names = project.environment_names();
    if names.is_empty() {
        render::error(&format!(
            "no environment given, and `{}` holds none (`cargo deploy init` writes `environments/dev.toml`)",
            project.environments_dir().display()
        ));
    } else {
        render::error(&format!(
            "no environment given: `cargo deploy ENV`, where ENV is one of {} (in `{}`)",
            names.join(", "),
            project.environments_dir().display(),
        ));
    }
    if ctx.global.message_format == MessageFormat::Human {
        render::eprintln!("\n{}", crate::cli::usage());
    }
    EXIT_USAGE
}

pub(crate) fn deploy(ctx: &Ctx<'_>, args: &DeployArgs) -> u8 {
    let Some(env_name) = args.env.as_deref() else {
        return no_environment(ctx);
    };
    // A build records HEAD, read while cargo describes the workspace.
    let head = args.from.is_none().then(|| {
        let manifest_dir = ctx.global.manifest_path.as_deref().and_then(Path::parent);
        let dir = manifest_dir.filter(|dir| !dir.as_os_str().is_empty());
        landfall::git::HeadAhead::start(dir.unwrap_or(Path::new(".")))
    });
    let workspace = WorkspaceAhead::start(ctx.global.manifest_path.as_deref());
    let mut warnings = Vec::new();
    let prepared = prepare_ahead(ctx, args, env_name, workspace, &mut warnings);
    ctx.warn(&warnings);
    let result =
        prepared.and_then(|(prepared, early)| deploy_prepared(ctx, args, head, &prepared, early));
    match result {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => {
            let code = Ctx::fail(&err);
            // CI reads the last line: even a run refused up front ends with
            // a summary.
            if ctx.global.message_format == MessageFormat::Json {
                ctx.printer
                    .summary(&Summary::without_hosts(env_name, false, args.dry_run));
            }
            code
        }
    }
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
    from_store: Option<landfall::store::Remote>,
    /// The store the hosts pull from.
    store: Option<landfall::store::Remote>,
    /// Whether the workspace is other than the one remembered.
    workspace_changed: bool,
}

/// Prepares a deploy, with what loading the project and the environment
/// warned of put in `warnings`, unsaid.
fn prepare(
    ctx: &Ctx<'_>,
    args: &DeployArgs,
    env_name: &str,
    (workspace, workspace_changed): (Workspace, bool),
    warnings: &mut Vec<Diagnostic>,
) -> Result<Prepared, Error> {
    let project = config::load_project(workspace)?;
    let env = ctx.environment_of(&project, env_name)?;
    warnings.extend(env.warnings.iter().chain(&project.warnings).cloned());
    plan::reaches_a_host(&project, &env, &ctx.global.only)?;
    let refused = ops::protection::protection(&project, &env, args.allow_dirty);
    if let Some(problem) = refused.as_ref().filter(|_| !args.dry_run) {
        return Err(Error::Usage(problem.clone()));
    }
    let secrets = landfall::secrets::load(&project, &env)?;
    let mut plan = plan::plan(&project, &env, &ctx.global.only, args.local, &secrets)?;
    plan.retain_artifacts(&project, &args.artifacts)?;
    // Hosts pull from the environment's store, reached with the `AWS_*`
    // variables, which are checked before anything is built or contacted.
    // A dry run reads no store, and `--local` copies on this machine, where
    // a store would save nothing.
    let from = bundle_source(args)?;
    let from_store = match from.as_ref().and_then(|f| store_url(&f.0)).transpose()? {
        Some(url) => Some(landfall::store::Remote::from_env(&url)?),
        None => None,
    };
    let store = match &env.store {
        Some(url) if !args.local && !args.dry_run => Some(landfall::store::Remote::from_env(url)?),
        // A bundle pulled from a store is pulled by the hosts from there,
        // unless the environment has a store of its own.
        _ if !args.local && !args.dry_run => from_store.clone(),
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

/// Prepares a deploy while cargo describes the workspace, with the
/// workspace as the last run here found it. A deploy that runs nothing and
/// asks nothing before it contacts the hosts also opens its connections
/// and reads the hosts meanwhile: those are only reads. Unless cargo then
/// describes the same workspace, all of it is thrown away, unseen, and the
/// deploy is prepared again.
fn prepare_ahead(
    ctx: &Ctx<'_>,
    args: &DeployArgs,
    env_name: &str,
    workspace: WorkspaceAhead,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(Prepared, Option<Contact>), Error> {
    let Some(guess) = workspace.remembered().cloned() else {
        let prepared = prepare(ctx, args, env_name, workspace.finish()?, warnings)?;
        return Ok((prepared, None));
    };
    let attempt = prepare(ctx, args, env_name, (guess.clone(), false), warnings);
    let early = match &attempt {
        Ok(prepared) if contacts_first(args, prepared) => Contact::open(ctx, prepared, args).ok(),
        _ => None,
    };
    let (workspace, changed) = workspace.finish()?;
    if !changed {
        return Ok((attempt?, early));
    }
    drop(early);
    warnings.clear();
    let prepared = prepare(ctx, args, env_name, (workspace, changed), warnings)?;
    Ok((prepared, None))
}

/// Whether a deploy contacts its hosts before it runs, asks or refuses
/// anything: no `before` hook, no question, no git tree to read, no bundle
/// to verify.
fn contacts_first(args: &DeployArgs, prepared: &Prepared) -> bool {
    let Prepared {
        project, env, plan, ..
    } = prepared;
    let git_tree = project.artifacts.iter().any(|artifact| {
        matches!(artifact.transport, config::Transport::Git { .. })
            && plan.targets.iter().any(|t| t.artifact == artifact.name)
    });
    args.from.is_none()
        && !args.local
        && !args.dry_run
        && !args.force
        && project.hooks.before.is_none()
        // A protected environment asks first, unless told yes.
        && (!env.protect || args.yes)
        && !git_tree
}

/// A deploy's transport, and the hosts' state read over it while the
/// releases are built (not for a bundle, which builds nothing, nor for a
/// dry run or `--force`, which read the hosts as they go).
struct Contact {
    transport: Arc<dyn Transport + Send>,
    ahead: Option<std::thread::JoinHandle<deploy::Lookahead>>,
    /// What opening the transport warned of, said once the deploy goes on.
    warnings: Vec<String>,
}

impl Contact {
    fn open(ctx: &Ctx<'_>, prepared: &Prepared, args: &DeployArgs) -> Result<Contact, Error> {
        let Prepared {
            project, env, plan, ..
        } = prepared;
        let (transport, warnings) =
            open_transport(ctx, project, env, &plan.hosts(env), args.local)?;
        let transport: Arc<dyn Transport + Send> = Arc::from(transport);
        let ahead = (args.from.is_none() && !args.dry_run && !args.force).then(|| {
            let transport = Arc::clone(&transport);
            let (env, targets, jobs) = (env.name.clone(), plan.targets.clone(), ctx.jobs(env));
            std::thread::spawn(move || {
                let targets: Vec<&landfall::plan::Target> = targets.iter().collect();
                deploy::look_ahead(transport.as_ref(), &env, &targets, jobs)
            })
        });
        Ok(Contact {
            transport,
            ahead,
            warnings,
        })
    }

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

/// Deploys what was prepared: says what preparing found, asks, runs the
/// `before` hook, builds while the hosts are read, deploys, and runs the
/// `after` hook.
fn deploy_prepared(
    ctx: &Ctx<'_>,
    args: &DeployArgs,
    head: Option<landfall::git::HeadAhead>,
    prepared: &Prepared,
    early: Option<Contact>,
) -> Result<Summary, Error> {
    let report = ctx.report();
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
        store,
        ..
    } = prepared;
    ctx.loaded(secrets);
    if env.protect && !args.dry_run && !args.yes {
        confirm(env, plan, "deploy")?;
    }
    // A bundle is verified before anything runs or any host is contacted:
    // the manifest against its pin, then every file against the manifest.
    // One in a store is fetched to this machine first (once), and verified
    // the same way.
    let bundle = match from {
        Some((location, pin)) => {
            let bundle = match from_store {
                Some(remote) => {
                    let store = landfall::assemble::Store::open(project)?;
                    let dir = landfall::bundle::fetch(remote, &store, pin.as_ref())?;
                    landfall::bundle::open(&dir, pin.as_ref())?
                }
                None => landfall::bundle::open(location, pin.as_ref())?,
            };
            Some(bundle)
        }
        None => None,
    };
    let host_names: Vec<String> = plan.hosts(env).iter().map(|h| h.name.clone()).collect();
    let revision = || landfall::git::revision(&project.workspace.root).commit;
    // `before` runs before any host is contacted (the connections open
    // while cargo builds); a dry run runs neither hook.
    if !args.dry_run && project.hooks.before.is_some() {
        let context = hooks::Context {
            project,
            env,
            hosts: &host_names,
            revision: revision(),
            summary: None,
        };
        hooks::run(hooks::Which::Before, &context, &report)?;
    }
    let (built, mut contact) = if let Some(bundle) = &bundle {
        let options = FromOptions {
            allow_config_drift: args.allow_config_drift,
        };
        let built = ops::bundle::releases_from_bundle(project, plan, bundle, options, &report)?;
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
        let contact = Contact::open(ctx, prepared, args)?;
        (built, contact)
    } else {
        let options = BuildOptions {
            quiet: ctx.global.quiet || ctx.global.message_format == MessageFormat::Json,
            // A dry run shows what HEAD would change, and warns.
            allow_dirty: args.allow_dirty || args.dry_run,
            revision: head.map(|head| head.of(&project.workspace.root)),
            ..BuildOptions::default()
        };
        // A git artifact's tree is refused (a dirty tree, a missing
        // `subdir`) before any host is contacted.
        let sources = ops::build::read_sources(project, plan, &options, &report)?;
        // The connections open while cargo builds and the artifacts are
        // assembled, and the hosts are read over them meanwhile.
        let contact = match early {
            Some(contact) => contact,
            None => Contact::open(ctx, prepared, args)?,
        };
        let built = ops::build::build_from_sources(project, plan, sources, &options, &report)?;
        // The next deploy goes on with this workspace while cargo
        // describes it; one that stops before it builds writes nothing.
        if prepared.workspace_changed {
            let _ = landfall::build::remember(&project.workspace);
        }
        (built, contact)
    };
    for warning in &contact.warnings {
        report(Event::Warning {
            message: warning.clone(),
        });
    }
    let options = DeployOptions {
        dry_run: args.dry_run,
        break_lock: args.break_lock,
        force: args.force,
        // Where the bundle came from, and the digest of what was deployed,
        // pinned or not.
        bundle: from
            .as_ref()
            .zip(bundle.as_ref())
            .map(|((location, _), bundle)| {
                let location = if from_store.is_some() {
                    location.clone()
                } else {
                    std::path::absolute(location).unwrap_or_else(|_| location.clone())
                };
                format!("{}#{}", location.display(), bundle.digest)
            }),
        // A value that is a secret, or whose key names one, is recorded
        // masked: the release's provenance is read by `status`.
        overrides: ctx
            .global
            .vars
            .iter()
            .map(|var| secrets.recorded_override(var))
            .collect(),
        store: store.clone(),
        lookahead: contact.looked_ahead(),
    };
    let identity = Identity::current(built.revision.clone());
    let run = Run {
        project,
        env,
        transport: contact.transport.as_ref(),
        identity: &identity,
        jobs: ctx.jobs(env),
        events: &report,
    };
    let mut summary = deploy::deploy(&run, &built.releases, &options);
    // A deploy leaves alone what artifacts that left deploy.toml (or moved)
    // left on the hosts: the dry run says what stays, and what removes it.
    // Only the whole plan tells an orphan from an artifact not selected.
    if args.dry_run && args.artifacts.is_empty() {
        report_orphans(&run, plan, &report);
    }
    summary.timings.build = built.build_seconds;
    summary.timings.assemble = built.assemble_seconds;
    // `after` runs once the summary is known, and before it is printed:
    // the summary stays the last line of the output.
    if !args.dry_run && project.hooks.after.is_some() {
        after_hook(ctx, project, env, &host_names, &summary, &report);
    }
    Ok(summary)
}

/// The orphans on the plan's hosts, each an `orphan` event, and how to
/// remove them; a host whose orphans cannot be read was reported by the
/// probe already.
fn report_orphans(run: &Run<'_>, plan: &plan::Plan, report: &(dyn Fn(Event) + Sync)) {
    let hosts = plan.hosts(run.env);
    let found = deploy::orphans(run, plan, &hosts);
    let mut count: u64 = 0;
    for host in found.into_iter().filter(|h| h.error.is_none()) {
        for orphan in host.orphans {
            count += 1;
            report(Event::Orphan {
                host: host.host.clone(),
                orphan,
            });
        }
    }
    if count > 0 {
        report(Event::Warning {
            message: format!(
                "this deploy leaves {} on the hosts (directories and services of artifacts \
                 that left deploy.toml or moved): `cargo deploy prune {}` stops and removes {}",
                render::counted(count, "orphan"),
                run.env.name,
                if count == 1 { "it" } else { "them" }
            ),
        });
    }
}

/// Runs the `after` hook with the summary in a private file; a failure is
/// a warning: the deploy is over, and its exit status says how it went.
fn after_hook(
    ctx: &Ctx<'_>,
    project: &Project,
    env: &Environment,
    hosts: &[String],
    summary: &Summary,
    report: &(dyn Fn(Event) + Sync),
) {
    let written = hooks::write_summary(project, env, &render::summary_json(summary));
    let file = match written {
        Ok(file) => file,
        Err(err) => {
            ctx.printer.event(Event::Warning {
                message: format!("the `after` hook did not run: {}", error_chain(&err)),
            });
            return;
        }
    };
    let context = hooks::Context {
        project,
        env,
        hosts,
        revision: landfall::git::revision(&project.workspace.root).commit,
        summary: Some((&file, summary.ok)),
    };
    if let Err(err) = hooks::run(hooks::Which::After, &context, report) {
        report(Event::Warning {
            message: error_chain(&err),
        });
    }
}

/// Asks the person at the terminal to confirm a deploy or a rollback
/// (`what`) of a protected environment; without a terminal (or under CI)
/// only `--yes` confirms.
fn confirm(env: &Environment, plan: &plan::Plan, what: &str) -> Result<(), Error> {
    if !interactive() {
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
    let verb = if what == "deploy" {
        "Deploy to"
    } else {
        "Roll back"
    };
    let question = format!(
        "{verb} protected environment `{}` ({}: {})?",
        env.name,
        render::counted(hosts.len() as u64, "host"),
        hosts.join(", ")
    );
    if answered_yes(&question)? {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "the {what} was not confirmed; nothing was changed"
        )))
    }
}

/// A bundle written or published: where, the digest that pins it, and
/// its artifacts.
fn print_bundle(location: &str, digest: &Digest, manifest: &landfall::bundle::BundleManifest) {
    render::println!("bundle {location}");
    render::println!("digest {digest}");
    for a in &manifest.artifacts {
        render::println!("{}  {}", a.name, a.id);
    }
    render::eprintln!(
        "Deploy exactly this bundle with: cargo deploy ENV --from '{location}#{digest}'"
    );
}

pub(crate) fn build(ctx: &Ctx<'_>, args: &BuildArgs) -> u8 {
    let result = (|| {
        let (project, env) = ctx.load(&args.env)?;
        let report = ctx.report();
        let quiet = ctx.global.quiet || ctx.global.message_format == MessageFormat::Json;
        if args.check_reproducible {
            let (first, second, differences) = ops::reproducible::check_reproducible(
                &project,
                &env.name,
                &ctx.global.only,
                quiet,
                &report,
            )?;
            let same = first == second;
            if ctx.global.message_format == MessageFormat::Json {
                render::json_line(&Line::Reproducible {
                    ok: same,
                    first: &first,
                    second: &second,
                    differences: &differences,
                });
            } else {
                for (artifact, id) in &first.artifacts {
                    let other = &second.artifacts[artifact];
                    let verdict = if id == other {
                        "identical"
                    } else {
                        "DIFFERENT"
                    };
                    render::println!("{artifact}  {id}  {other}  {verdict}");
                }
                for difference in &differences {
                    render::println!("  differs: {difference}");
                }
            }
            return if same {
                Ok(EXIT_OK)
            } else {
                Err(Error::Failed(
                    "the two builds differ: the build is not reproducible".into(),
                ))
            };
        }
        let secrets = ctx.secrets(&project, &env)?;
        let mut plan = plan::plan(&project, &env, &ctx.global.only, false, &secrets)?;
        plan.retain_artifacts(&project, &args.artifacts)?;
        let built = ops::build::build_releases(
            &project,
            &plan,
            &BuildOptions {
                quiet,
                // Building deploys nothing: a dirty tree is only warned about.
                allow_dirty: true,
                ..BuildOptions::default()
            },
            &report,
        )?;
        if let Some(url) = args.out.as_deref().and_then(store_url).transpose()? {
            let remote = landfall::store::Remote::from_env(&url)?;
            let manifest = ops::bundle::bundle_manifest(&project, &plan, &built)?;
            let store = landfall::assemble::Store::open(&project)?;
            let (uploaded, digest) =
                landfall::bundle::publish(&remote, &store, &manifest, &built.assembled)?;
            report(Event::Stored {
                store: url.to_string(),
                objects: uploaded.objects,
                uploaded: uploaded.uploaded,
                bytes: uploaded.bytes,
            });
            if ctx.global.message_format == MessageFormat::Json {
                render::json_line(&Line::Bundle {
                    dir: url.to_string(),
                    digest: digest.to_string(),
                    manifest: &manifest,
                });
            } else {
                print_bundle(&url.to_string(), &digest, &manifest);
            }
            return Ok(EXIT_OK);
        }
        if let Some(out) = &args.out {
            let manifest = ops::bundle::bundle_manifest(&project, &plan, &built)?;
            let digest = landfall::bundle::write(out, &manifest, &built.assembled)?;
            if ctx.global.message_format == MessageFormat::Json {
                render::json_line(&Line::Bundle {
                    dir: out.display().to_string(),
                    digest: digest.to_string(),
                    manifest: &manifest,
                });
            } else {
                print_bundle(&out.display().to_string(), &digest, &manifest);
            }
            return Ok(EXIT_OK);
        }
        if ctx.global.message_format == MessageFormat::Json {
            let releases = built.release_ids();
            render::json_line(&Line::Manifest {
                env: &env.name,
                revision: &built.revision,
                artifacts: &built.assembled,
                releases: &releases,
            });
        } else {
            for a in &built.assembled {
                render::println!("{}  {}", a.artifact, a.id);
                for entry in &a.manifest.entries {
                    render::println!("    {}", entry.path);
                }
            }
            for r in &built.releases {
                render::println!("{}  {}  {}", r.target.host, r.target.artifact, r.release.id);
            }
        }
        Ok(EXIT_OK)
    })();
    result.unwrap_or_else(|err| Ctx::fail(&err))
}

pub(crate) fn check(ctx: &Ctx<'_>, args: &CheckArgs) -> u8 {
    let project = match landfall::load(ctx.global.manifest_path.as_deref()) {
        Ok(project) => project,
        Err(err) => return Ctx::fail(&err),
    };
    ctx.warn(&project.warnings);
    let names = match &args.env {
        Some(name) => vec![name.clone()],
        None => project.environment_names(),
    };
    let mut errors = Vec::new();
    if let Some(diag) = landfall::build::check_target(&project) {
        errors.push(Error::Config(landfall::diag::Diagnostics(vec![diag])));
    }
    let mut hosts = 0;
    for name in &names {
        let env = match ctx.environment(&project, name) {
            Ok(env) => env,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        hosts += env.hosts.len();
        // Without an identity that decrypts them, secrets are placeholders.
        let secrets = match landfall::secrets::load_for_check(&project, &env)
            .inspect(|secrets| ctx.loaded(secrets))
        {
            Ok(secrets) => secrets,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        // Both sets of hooks must render: the hosts' and `--local`'s.
        for local in [false, true] {
            if let Err(err) = plan::plan(&project, &env, &ctx.global.only, local, &secrets) {
                errors.push(err);
            }
        }
    }
    let checked = || {
        if ctx.global.message_format == MessageFormat::Json {
            render::json_line(&Line::Checked {
                ok: errors.is_empty(),
                artifacts: project.artifacts.len(),
                environments: &names,
                hosts,
            });
        }
    };
    if errors.is_empty() {
        checked();
        if !ctx.global.quiet && ctx.global.message_format == MessageFormat::Human {
            render::eprintln!(
                "{:>12} {}, {} ({}), {}",
                "Checked",
                render::counted(project.artifacts.len() as u64, "artifact"),
                render::counted(names.len() as u64, "environment"),
                names.join(", "),
                render::counted(hosts as u64, "host")
            );
        }
        return EXIT_OK;
    }
    // A hook shared by the hosts' and `--local`'s sets fails in both: say
    // each problem once.
    let mut seen = std::collections::BTreeSet::new();
    for err in &errors {
        match err {
            Error::Config(diags) => {
                for diag in diags.0.iter().filter(|d| seen.insert(d.to_string())) {
                    render::diagnostic(diag);
                }
            }
            other => {
                if seen.insert(other.to_string()) {
                    Ctx::fail(other);
                }
            }
        }
    }
    checked();
    if errors.iter().all(Error::is_usage) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// What `--artifact` selects for a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Select {
    /// Its targets, on the hosts that have them.
    Targets,
    /// Its targets, and every selected host, whose orphans are read
    /// against every path the model deploys to (`status`).
    TargetsAndOrphans,
    /// Orphans deployed as it, which may have left deploy.toml (`prune`).
    Orphans,
}

/// Connects to the selected hosts and runs `f` on them, with the plan of
/// the artifacts `--artifact` selects and the whole plan. With `confirm`,
/// a protected environment's confirmation of that (`rollback`) is asked
/// for before any host is contacted.
fn run_on_targets<T>(
    ctx: &Ctx<'_>,
    args: &TargetArgs,
    select: Select,
    confirmation: Option<&str>,
    f: impl FnOnce(&Run<'_>, &plan::Plan, &plan::Plan, &[&Host]) -> T,
) -> Result<T, Error> {
    let (project, env) = ctx.load(&args.env)?;
    // Only the plan's shape is needed, never a file's contents: no identity
    // is needed either.
    let secrets = Secrets::placeholders();
    let whole = plan::plan(&project, &env, &ctx.global.only, args.local, &secrets)?;
    let mut plan = plan::Plan {
        env: whole.env.clone(),
        local: whole.local,
        targets: whole.targets.clone(),
        bins: Vec::new(),
    };
    let mut hosts = plan::select(&env, &ctx.global.only)?;
    if select != Select::Orphans && !args.artifacts.is_empty() {
        plan.retain_artifacts(&project, &args.artifacts)?;
        if select == Select::Targets {
            hosts.retain(|h| plan.targets.iter().any(|t| t.host == h.name));
        }
    }
    if let Some(what) = confirmation
        && env.protect
    {
        confirm(&env, &plan, what)?;
    }
    let revision = landfall::git::revision(&project.workspace.root);
    // Work on hosts: a first signal settles it rather than ending it.
    landfall::interrupt::on_hosts(|| {
        with_run(ctx, &project, &env, &hosts, args.local, revision, |run| {
            f(run, &plan, &whole, &hosts)
        })
    })
}

/// Connects to `hosts` (or their local directories) and runs `f` with the
/// context every fleet operation needs.
fn with_run<T>(
    ctx: &Ctx<'_>,
    project: &Project,
    env: &Environment,
    hosts: &[&Host],
    local: bool,
    revision: landfall::git::Revision,
    f: impl FnOnce(&Run<'_>) -> T,
) -> Result<T, Error> {
    let transport = transport(ctx, project, env, hosts, local)?;
    let identity = Identity::current(revision);
    let report = ctx.report();
    let run = Run {
        project,
        env,
        transport: transport.as_ref(),
        identity: &identity,
        jobs: ctx.jobs(env),
        events: &report,
    };
    Ok(f(&run))
}

pub(crate) fn status(ctx: &Ctx<'_>, args: &TargetArgs) -> u8 {
    // Orphans are read against every path the model deploys to, and those
    // of the artifacts asked for shown.
    let result = run_on_targets(
        ctx,
        args,
        Select::TargetsAndOrphans,
        None,
        |run, plan, whole, hosts| {
            let mut orphans = deploy::orphans(run, whole, hosts);
            keep_orphans_of(&mut orphans, &args.artifacts);
            (deploy::status(run, plan), orphans)
        },
    );
    match result {
        Ok((report, orphans)) => {
            ctx.printer.status_report(&args.env, &report, &orphans);
            if report.iter().any(|t| t.error.is_some()) || orphans.iter().any(|h| h.error.is_some())
            {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn rollback(ctx: &Ctx<'_>, args: &RollbackArgs) -> u8 {
    // A rollback changes hosts as a deploy does: a protected environment
    // asks first. It needs no clean tree nor branch: it runs what the
    // releases recorded, not the workspace.
    let confirmation = (!args.yes).then_some("rollback");
    // A git ref is resolved before any host is contacted.
    let to = match args
        .to
        .as_deref()
        .map(|to| rollback_goal(ctx, to))
        .transpose()
    {
        Ok(to) => to,
        Err(err) => return Ctx::fail(&err),
    };
    match run_on_targets(
        ctx,
        &args.target,
        Select::Targets,
        confirmation,
        |run, plan, _, _| deploy::rollback(run, plan, to.as_deref(), args.break_lock),
    ) {
        Ok(summary) => ctx.finish(&summary),
        Err(err) => Ctx::fail(&err),
    }
}

/// What `rollback --to` names, as hosts record it: ids and hashes as
/// given, a git ref (a tag, `HEAD~1`) as the commit it names in the
/// workspace.
fn rollback_goal(ctx: &Ctx<'_>, to: &str) -> Result<String, Error> {
    if to
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
    {
        return Ok(to.to_string());
    }
    let project = landfall::load(ctx.global.manifest_path.as_deref())?;
    landfall::git::commit_of(&project.workspace.root, to).ok_or_else(|| {
        Error::Usage(format!(
            "`--to {to}` is neither a deploy id, a release id or a commit hash, nor a git ref of the workspace"
        ))
    })
}

pub(crate) fn prune(ctx: &Ctx<'_>, args: &PruneArgs) -> u8 {
    let result = run_on_targets(
        ctx,
        &args.target,
        Select::Orphans,
        None,
        |run, _, whole, hosts| {
            let mut found = deploy::orphans(run, whole, hosts);
            keep_orphans_of(&mut found, &args.target.artifacts);
            for h in &found {
                if let Some(err) = &h.error {
                    return Err(Error::Failed(format!(
                        "nothing was removed: the orphans of `{}` cannot be read: {err}",
                        h.host
                    )));
                }
            }
            let count: usize = found.iter().map(|h| h.orphans.len()).sum();
            if count == 0 {
                ctx.printer.event(Event::Warning {
                    message: format!("nothing to prune in `{}`", run.env.name),
                });
                return Ok(Vec::new());
            }
            ctx.printer.orphans_report(&found);
            if !args.yes {
                ask(&format!(
                    "Stop and remove these {count} orphan{} of `{}`?",
                    if count == 1 { "" } else { "s" },
                    run.env.name
                ))?;
            }
            Ok(deploy::prune(run, &found))
        },
    );
    match result.and_then(|r| r) {
        Ok(results) => {
            let pruned: usize = results.iter().map(|r| r.pruned.len()).sum();
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| r.error.is_some())
                .map(|r| r.host.as_str())
                .collect();
            if failed.is_empty() {
                if pruned > 0 {
                    ctx.printer.finished(&format!(
                        "{} pruned",
                        render::counted(pruned as u64, "orphan")
                    ));
                }
                EXIT_OK
            } else {
                render::error(&format!(
                    "pruning failed on {}; {} pruned",
                    failed.join(", "),
                    render::counted(pruned as u64, "orphan")
                ));
                EXIT_FAILED
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

/// Keeps the orphans that were deployed as one of `names` (all of them when
/// it is empty): an orphan's artifact may have left deploy.toml, so its
/// name is the one the host recorded.
fn keep_orphans_of(found: &mut [deploy::HostOrphans], names: &[String]) {
    if names.is_empty() {
        return;
    }
    for host in found {
        host.orphans.retain(|o| names.contains(&o.artifact));
    }
}

/// Asks the person at the terminal a yes-or-no `question`; without a
/// terminal (or under CI) the answer is no, and only `--yes` confirms.
fn ask(question: &str) -> Result<(), Error> {
    if !interactive() {
        return Err(Error::Usage(
            "confirm with `--yes` (there is no terminal to ask on); nothing was changed".into(),
        ));
    }
    if answered_yes(question)? {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed; nothing was changed".into()))
    }
}

/// Asks `question` if there is a terminal to ask on; whether the answer
/// was yes.
pub(crate) fn ask_yes(question: &str) -> bool {
    interactive() && answered_yes(question).unwrap_or(false)
}

/// Asks `question` on the terminal; whether the answer was yes.
fn answered_yes(question: &str) -> Result<bool, Error> {
    anstream::eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|err| Error::Usage(format!("no answer: {err}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// An error with all its causes: `top: cause: cause`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

pub(crate) fn exec(ctx: &Ctx<'_>, args: &ExecArgs) -> u8 {
    use std::io::IsTerminal as _;
    let input = if args.stdin {
        match spool_stdin() {
            Ok(file) => Some(file),
            Err(err) => {
                return Ctx::fail(&Error::Usage(format!("cannot read standard input: {err}")));
            }
        }
    } else {
        None
    };
    if args.tty && !std::io::stdin().is_terminal() {
        return Ctx::fail(&Error::Usage(
            "`-t` needs a terminal: landfall's standard input is not one".into(),
        ));
    }
    // Each host's output, with `--group`, waits in a file until all are
    // done; JSON has it in each host's `exec` event.
    let spools = (args.group && ctx.global.message_format == MessageFormat::Human)
        .then(render::Spools::default);
    let artifact = match args.target.artifacts.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        [..] => {
            return Ctx::fail(&Error::Usage(
                "`exec` starts the command in one artifact's `current`: give `--artifact` once"
                    .into(),
            ));
        }
    };
    let results = run_on_targets(
        ctx,
        &args.target,
        Select::Targets,
        None,
        |run, plan, _, hosts| {
            // Secrets typed in a command are masked in the hosts' logs, when
            // they can be read here.
            let secrets = landfall::secrets::load(run.project, run.env).ok();
            let request = deploy::ExecRequest {
                command: &args.command,
                artifact,
                input: input.as_ref().map(tempfile::NamedTempFile::path),
                mask: secrets.as_ref().map(landfall::secrets::Secrets::mask),
            };
            if args.tty {
                let [host] = hosts else {
                    return Err(Error::Usage(format!(
                        "`-t` works on one host, and {} are selected: choose one with `--only HOST`",
                        hosts.len()
                    )));
                };
                let code =
                    deploy::exec_attached(run, plan, host, &request).map_err(Error::Failed)?;
                return Ok(ExecOutcome::Attached(host.name.clone(), code));
            }
            let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
            let line = |host: &str, text: &str| match &spools {
                Some(spools) => spools.line(host, text),
                None if !args.group => ctx.printer.output_line(host, width, text),
                None => {}
            };
            Ok(ExecOutcome::Streamed(deploy::exec(
                run, plan, hosts, &request, &line,
            )))
        },
    );
    match results.and_then(|r| r) {
        Ok(ExecOutcome::Streamed(results)) => {
            ctx.printer.exec_report(&args.target.env, &results, spools);
            if results.iter().all(deploy::ExecResult::success) {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Ok(ExecOutcome::Attached(_, Some(0))) => EXIT_OK,
        Ok(ExecOutcome::Attached(host, code)) => {
            let how = code.map_or_else(
                || "a signal ended it".to_string(),
                |c| format!("exit status {c}"),
            );
            render::error(&format!("the command failed on {host}: {how}"));
            EXIT_FAILED
        }
        Err(err) => Ctx::fail(&err),
    }
}

/// Copies standard input, as it comes, into a file only this user can
/// read, removed when it is dropped: each host then streams it from there,
/// so that no size of input is ever held in memory, however many hosts
/// read it.
fn spool_stdin() -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
    Ok(file)
}

/// How `exec` went: each host's result, streamed, or the one host's exit
/// status on a terminal.
enum ExecOutcome {
    Streamed(Vec<deploy::ExecResult>),
    Attached(String, Option<i32>),
}

pub(crate) fn logs(ctx: &Ctx<'_>, args: &LogsArgs) -> u8 {
    // Following a log ends with Ctrl-C.
    crate::signals::expected();
    let results = run_on_targets(
        ctx,
        &args.target,
        Select::Targets,
        None,
        |run, plan, _, _| {
            if !plan.targets.iter().any(|t| t.service.is_some()) {
                return Err(Error::Usage(format!(
                    "no artifact of environment `{}` runs a service on the selected hosts \
                 (see `[artifact.NAME.service]` in the guide)",
                    args.target.env
                )));
            }
            // With services of several artifacts, each line says whose it is.
            let artifacts: std::collections::BTreeSet<&str> = plan
                .targets
                .iter()
                .filter(|t| t.service.is_some())
                .map(|t| t.artifact.as_str())
                .collect();
            let width = plan
                .targets
                .iter()
                .filter(|t| t.service.is_some())
                .map(|t| {
                    t.host.len()
                        + if artifacts.len() > 1 {
                            t.artifact.len() + 1
                        } else {
                            0
                        }
                })
                .max()
                .unwrap_or(0);
            let line = |target: &plan::Target, text: &str| {
                let label = if artifacts.len() > 1 {
                    format!("{}/{}", target.host, target.artifact)
                } else {
                    target.host.clone()
                };
                ctx.printer
                    .log_line(&label, width, &target.host, &target.artifact, text);
            };
            Ok(deploy::logs(
                run,
                plan,
                args.lines,
                args.follow,
                args.all_releases,
                &landfall::interrupt::stop_requested,
                &line,
            ))
        },
    );
    match results.and_then(|r| r) {
        Ok(results) => {
            let mut ok = true;
            for result in &results {
                if let Some(error) = &result.error {
                    ok = false;
                    render::error(&format!(
                        "`{}` on `{}`: {error}",
                        result.artifact, result.host
                    ));
                }
            }
            if let Some(signal) = crate::signals::received() {
                crate::signals::exit_status(signal)
            } else if ok {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(err) => Ctx::fail(&err),
    }
}

pub(crate) fn config(ctx: &Ctx<'_>, args: &ConfigArgs) -> u8 {
    let result = (|| {
        let (project, env) = ctx.load(&args.env)?;
        let mut only = ctx.global.only.clone();
        only.extend(args.host.iter().cloned());
        let hosts = plan::select(&env, &only)?;
        for host in hosts {
            let vars = config::provenance::annotate(&project, &env, host);
            ctx.printer
                .config_report(&env.name, &host.name, &vars, args.annotate);
        }
        Ok(EXIT_OK)
    })();
    result.unwrap_or_else(|err| Ctx::fail(&err))
}

/// `init --sudoers ENV`: the sudo rules for the environment's system
/// services, on stdout.
pub(crate) fn sudoers(ctx: &Ctx<'_>, env: &str) -> u8 {
    let result = (|| {
        let (project, env) = ctx.load(env)?;
        let user = env.user.clone().unwrap_or_else(|| {
            std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "deploy".into())
        });
        let services: Vec<(&str, &str, &config::Service)> = project
            .artifacts
            .iter()
            .filter(|a| env.hosts.iter().any(|h| h.receives(a)))
            .filter_map(|a| Some((a.name.as_str(), a.path.as_str(), a.service.as_ref()?)))
            .collect();
        if services.is_empty() {
            return Err(Error::Usage(format!(
                "no artifact of environment `{}` runs a service",
                env.name
            )));
        }
        let rules = landfall::service::sudoers(&user, &services).map_err(Error::Usage)?;
        render::println!(
            "# sudo rules for landfall's deploys of `{}` as `{user}`: install with\n\
             # visudo -f /etc/sudoers.d/landfall-{}\n\
             # They let `{user}` start, stop and reload these services as root, with\n\
             # exactly these arguments, and nothing else. Only root installs their\n\
             # definitions: a deploy says which one a release needs, and where.\n\n{rules}",
            env.name,
            // sudo skips the files of /etc/sudoers.d whose names hold a `.`.
            project.name.replace('.', "-"),
        );
        Ok(EXIT_OK)
    })();
    result.unwrap_or_else(|err| Ctx::fail(&err))
}

pub(crate) fn init(ctx: &Ctx<'_>) -> u8 {
    let result = (|| {
        let workspace = landfall::build::workspace(ctx.global.manifest_path.as_deref())?;
        let files = landfall::init::scaffold(&workspace);
        landfall::init::write(&workspace, &files)?;
        let mut created: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        if landfall::build::ensure_lockfile(&workspace)? {
            created.push("Cargo.lock".to_string());
        }
        if ctx.global.message_format == MessageFormat::Json {
            render::json_line(&Line::Initialized { created: &created });
        } else {
            for path in &created {
                render::eprintln!("{:>12} {path}", "Created");
            }
            render::eprintln!(
                "Next: cargo deploy dev --local (and commit Cargo.lock: deploys build with --locked)"
            );
        }
        Ok(EXIT_OK)
    })();
    result.unwrap_or_else(|err| Ctx::fail(&err))
}
