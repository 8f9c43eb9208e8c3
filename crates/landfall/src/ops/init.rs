//! `init`: a new deployment's files written into the workspace, or, with
//! `--sudoers ENV`, the sudo rules an environment's services need.

use super::context::{Frontend, Settings};
use crate::error::{Error, Result};

/// Writes `deploy.toml`, an environment and a template into the
/// workspace, and `Cargo.lock` if it has none; the paths written.
pub fn init(settings: &Settings) -> Result<Vec<String>> {
    let workspace = crate::cargo::workspace(settings.manifest_path.as_deref())?;
    let files = crate::init::scaffold(&workspace);
    crate::init::write(&workspace, &files)?;
    let mut created: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    if crate::cargo::ensure_lockfile(&workspace)? {
        created.push("Cargo.lock".to_string());
    }
    Ok(created)
}

/// The sudo rules that let the environment's deploy account (its `user`,
/// or this one) start, stop and reload its system services, and nothing
/// else, with how to install them.
pub fn sudoers(settings: &Settings, env: &str, ui: &dyn Frontend) -> Result<String> {
    let (project, env) = settings.load(ui, env)?;
    let user = env.user.clone().unwrap_or_else(|| {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "deploy".into())
    });
    let services: Vec<(&str, &str, &crate::config::Service)> = project
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
    let rules = crate::service::sudoers(&user, &services).map_err(Error::Usage)?;
    Ok(format!(
        "# sudo rules for landfall's deploys of `{}` as `{user}`: install with\n\
         # visudo -f /etc/sudoers.d/landfall-{}\n\
         # They let `{user}` start, stop and reload these services as root, with\n\
         # exactly these arguments, and nothing else. Only root installs their\n\
         # definitions: a deploy says which one a release needs, and where.\n\n{rules}",
        env.name,
        // sudo skips the files of /etc/sudoers.d whose names hold a `.`.
        project.name.replace('.', "-"),
    ))
}
