//! `check`: the workspace's files, and every environment's (or one's),
//! read and planned as a deploy would, contacting no host.

use super::context::{self, Frontend, Settings};
use crate::error::{Error, Result};
use crate::plan;

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// How many artifacts deploy.toml defines.
    pub artifacts: usize,
    /// The environments checked.
    pub environments: Vec<String>,
    /// How many hosts they have.
    pub hosts: usize,
    /// Every problem found, in order; none when all is well.
    pub errors: Vec<Error>,
}

/// Checks environment `env`, or every environment when `None`. Only a
/// workspace that cannot be read at all is an error; what is wrong in it
/// is in the report.
pub fn check(settings: &Settings, env: Option<&str>, ui: &dyn Frontend) -> Result<CheckReport> {
    let project = crate::load(settings.manifest_path.as_deref())?;
    ui.diagnostics(&project.warnings);
    let environments = match env {
        Some(name) => vec![name.to_string()],
        None => project.environment_names(),
    };
    let mut errors = Vec::new();
    if let Some(diag) = crate::cargo::check_target(&project) {
        errors.push(Error::Config(crate::diag::Diagnostics(vec![diag])));
    }
    let mut hosts = 0;
    for name in &environments {
        let env = match settings.environment(&project, name) {
            Ok(env) => env,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        ui.diagnostics(&env.warnings);
        hosts += env.hosts.len();
        // Without an identity that decrypts them, secrets are placeholders.
        let secrets = match crate::secrets::load_for_check(&project, &env) {
            Ok(secrets) => secrets,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        context::loaded(ui, &secrets);
        // Both sets of hooks must render: the hosts' and `--local`'s.
        for local in [false, true] {
            if let Err(err) = plan::plan(&project, &env, &settings.only, local, &secrets) {
                errors.push(err);
            }
        }
    }
    Ok(CheckReport {
        artifacts: project.artifacts.len(),
        environments,
        hosts,
        errors,
    })
}
