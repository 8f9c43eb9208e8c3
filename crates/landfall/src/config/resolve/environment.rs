//! `environments/ENV.toml`, resolved against the project: the
//! `[environment]` settings (jobs, ssh, the store), the hosts and their
//! roles, the recipients of its secrets, and the checks that need both
//! files: that the project's artifacts reach its hosts, and that no two
//! artifacts share a directory on one host.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::{Checker, check_name, parse, read_source};
use crate::config::{Artifact, Environment, Host, Project, raw};
use crate::diag::Diagnostic;
use crate::error::{Error, Result};

const DEFAULT_JOBS: u32 = 16;
/// How long ssh's master connections outlive a run unless told (as
/// Ansible's `ControlPersist`).
const DEFAULT_SSH_PERSIST: Duration = Duration::from_secs(60);

/// Reads `environments/NAME.toml` and resolves it against the project.
pub fn load_environment(project: &Project, name: &str) -> Result<Environment> {
    let path = environment_file(project, name)?;
    let file = read_source(&path, format!("environments/{name}.toml"))?;
    let raw: raw::EnvironmentFile = parse(&file)?;
    let mut check = Checker::new(Arc::clone(&file));

    let section = raw.environment;
    let jobs = match section.jobs {
        Some(jobs) if *jobs.get_ref() == 0 => {
            check.error(jobs.span(), "`jobs` must be at least 1", "");
            1
        }
        Some(jobs) => *jobs.get_ref(),
        None => DEFAULT_JOBS,
    };
    // The user reaches ssh's command line and its `%r` expansions (in a
    // `ProxyCommand`, say): a user name, nothing a shell would read.
    if let Some(user) = &section.user {
        check_name(&mut check, user, "user");
    }
    let ssh_config = section
        .ssh_config
        .map(|p| project.environments_dir().join(p.get_ref()));
    let ssh_persist = ssh_persist(&mut check, section.ssh_persist.as_ref());
    let store = section.store.as_ref().and_then(|text| {
        match crate::store::StoreUrl::parse(text.get_ref()) {
            Ok(url) => Some(url),
            Err(why) => {
                check.error(
                    text.span(),
                    format!("invalid store `{}`", crate::diag::shown(text.get_ref())),
                    why,
                );
                None
            }
        }
    });

    let hosts = resolve_hosts(&mut check, raw.hosts);
    check_reach(&mut check, project, name, &hosts);
    check_overlaps(&mut check, project, &hosts);
    let recipients = recipients(&mut check, raw.secrets);

    let warnings = check.finish()?;
    Ok(Environment {
        name: name.to_string(),
        protect: section.protect.unwrap_or(false),
        branch: section.branch.map(Spanned::into_inner),
        jobs: jobs as usize,
        user: section.user.map(Spanned::into_inner),
        ssh_config,
        ssh_persist,
        store,
        on_failure: section.on_failure.unwrap_or(raw::OnFailure::RollbackAll),
        host_keys: section.host_keys.unwrap_or_default(),
        vars: raw.vars,
        hosts,
        recipients,
        overrides: toml::Table::new(),
        warnings,
        file,
    })
}

/// The file of the environment `name`, if it names one of the project's
/// and is read through no link that leaves the workspace.
fn environment_file(project: &Project, name: &str) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let path = project.environments_dir().join(format!("{name}.toml"));
    if !valid || !path.is_file() {
        let known = project.environment_names();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(Error::Usage(format!(
            "unknown environment `{name}`: no `environments/{name}.toml` (environments: {known})"
        )));
    }
    if let Some(link) = crate::files::link_leaving(&project.workspace.root, &path) {
        return Err(Error::Usage(format!(
            "`{}` is a link that points outside the workspace, which an environment is not \
             read through",
            project.workspace.display(&link)
        )));
    }
    Ok(path)
}

/// `ssh_persist`: how long the master connections outlive a run, `0s`
/// for not at all.
fn ssh_persist(check: &mut Checker, text: Option<&Spanned<String>>) -> Duration {
    match text {
        None => DEFAULT_SSH_PERSIST,
        Some(text) => match text.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() => d.unsigned_abs(),
            _ => {
                check.error(
                    text.span(),
                    format!("invalid duration `{}`", text.get_ref()),
                    "write e.g. `60s` or `10m`; `0s` closes the connections with each run",
                );
                DEFAULT_SSH_PERSIST
            }
        },
    }
}

/// `[hosts.NAME]`: each host with its address (its name unless given) and
/// roles.
fn resolve_hosts(check: &mut Checker, raw: BTreeMap<raw::Name, Spanned<raw::Host>>) -> Vec<Host> {
    let mut hosts = Vec::new();
    for (host_name, host) in raw {
        check_name(check, &host_name, "host name");
        let span = host.span();
        let host = host.into_inner();
        for role in &host.roles {
            check_name(check, role, "role");
        }
        let address = match host.address {
            Some(address) => {
                let ok = !address.get_ref().is_empty()
                    && !address.get_ref().starts_with('-')
                    && address
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:[]@".contains(&b));
                if !ok {
                    check.error(
                        address.span(),
                        format!(
                            "invalid address `{}`",
                            crate::diag::shown(address.get_ref())
                        ),
                        "a host name or IP address",
                    );
                }
                address.into_inner()
            }
            None => host_name.get_ref().clone(),
        };
        hosts.push(Host {
            name: host_name.into_inner(),
            address,
            roles: host.roles.into_iter().map(Spanned::into_inner).collect(),
            vars: host.vars,
            span,
        });
    }
    hosts
}

/// An environment that no artifact goes to is a mistake (a role's name
/// mistyped, most likely), not a deploy with nothing to do: an error at
/// each artifact's roles in `deploy.toml`. Where some artifact goes, one
/// that goes nowhere is warned about.
fn check_reach(check: &mut Checker, project: &Project, name: &str, hosts: &[Host]) {
    let reached = project
        .artifacts
        .iter()
        .any(|a| hosts.iter().any(|h| h.receives(a)));
    if hosts.is_empty() && !project.artifacts.is_empty() {
        check.error(
            0..0,
            format!("environment `{name}` has no hosts: a deploy would reach no host at all"),
            "add a `[hosts.NAME]` table with the roles of the artifacts it gets",
        );
    } else if !reached && !project.artifacts.is_empty() {
        let known: BTreeSet<&str> = hosts
            .iter()
            .flat_map(|h| h.roles.iter().map(String::as_str))
            .collect();
        let known = if known.is_empty() {
            format!("no host of `{name}` has a role")
        } else {
            format!(
                "the roles of `{name}`'s hosts are {}",
                known
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for artifact in &project.artifacts {
            let diag = Diagnostic::error(format!(
                "no host of environment `{name}` has a role of artifact `{}`: a deploy \
                 would reach no host at all",
                artifact.name
            ))
            .at(
                &project.file,
                artifact.roles_span.clone(),
                "no host has these",
            )
            .note(known.clone());
            check.errors.push(diag);
        }
    }
    for artifact in &project.artifacts {
        if reached && !hosts.iter().any(|h| h.receives(artifact)) {
            let roles = artifact
                .roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let roles = if roles.is_empty() {
                "no roles".to_string()
            } else {
                format!("roles {roles}")
            };
            let message = format!("artifact `{}` goes to no host of `{name}`", artifact.name);
            check.warning(
                &project.file,
                artifact.span.clone(),
                message,
                format!("has {roles}"),
            );
        }
    }
}

/// Two artifacts sharing a base directory on one host would share its
/// `current`, releases and lock.
fn check_overlaps(check: &mut Checker, project: &Project, hosts: &[Host]) {
    for host in hosts {
        let mine: Vec<&Artifact> = project
            .artifacts
            .iter()
            .filter(|a| host.receives(a))
            .collect();
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[i + 1..] {
                let nested = a.path == b.path
                    || b.path.starts_with(&format!("{}/", a.path))
                    || a.path.starts_with(&format!("{}/", b.path));
                if nested {
                    check.error(
                        host.span.clone(),
                        format!(
                            "artifacts `{}` and `{}` overlap on host `{}`",
                            a.name, b.name, host.name
                        ),
                        format!("`{}` and `{}`", a.path, b.path),
                    );
                }
            }
        }
    }
}

/// `[secrets] recipients`, each an age or ssh public key.
fn recipients(check: &mut Checker, raw: Option<raw::Secrets>) -> Vec<String> {
    raw.map(|s| s.recipients)
        .unwrap_or_default()
        .into_iter()
        .map(|recipient| {
            if let Err(why) = crate::secrets::parse_recipient(recipient.get_ref()) {
                check.error(recipient.span(), "invalid secrets recipient", why);
            }
            recipient.into_inner()
        })
        .collect()
}
