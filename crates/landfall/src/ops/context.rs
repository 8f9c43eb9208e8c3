//! What every operation is given by whoever runs it: [`Settings`], the
//! options that are not the operation's own (the workspace, `--var`,
//! `--only`, `--jobs`), and a [`Frontend`], through which it reports and
//! asks. The binary implements `Frontend` for a terminal or for JSON; a
//! library user implements it however it shows progress.

use std::path::{Path, PathBuf};

use crate::config::{self, Environment, Host, Project};
use crate::diag::Diagnostic;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::secrets::{Mask, Secrets};
use crate::transport::{Local, Ssh, SshOptions, Transport};

/// The options every operation shares.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The workspace's `Cargo.toml`; cargo looks around the current
    /// directory when `None`.
    pub manifest_path: Option<PathBuf>,
    /// `KEY=VALUE` overrides of the environment's variables, in order.
    pub vars: Vec<String>,
    /// Only these hosts (`web1`) and roles (`@app`); all when empty.
    pub only: Vec<String>,
    /// How many hosts at once; the environment's `jobs` when `None`.
    pub jobs: Option<usize>,
    /// Close the ssh masters when the run ends, rather than keeping them
    /// for the next run.
    pub no_persist: bool,
    /// Keep cargo's output of a build to itself.
    pub quiet_build: bool,
    /// The request to stop the operation's work on hosts.
    pub cancel: crate::interrupt::Cancel,
}

/// Whoever runs an operation: where its events go, and who answers its
/// questions.
pub trait Frontend: Sync {
    /// Reports an event.
    fn event(&self, event: Event);

    /// Reports warnings found in the workspace's files, with where they
    /// are.
    fn diagnostics(&self, warnings: &[Diagnostic]);

    /// Secrets were decrypted: nothing shown from now on may hold their
    /// values.
    fn hide(&self, mask: &Mask);

    /// Whether a person is there to answer a question (and to type a
    /// passphrase for ssh).
    fn can_ask(&self) -> bool;

    /// Asks a yes-or-no question; whether the answer was yes.
    fn ask(&self, question: &str) -> Result<bool>;
}

impl Settings {
    /// Reads the workspace and environment `name`, with the overrides
    /// applied; reports the warnings of both.
    pub fn load(&self, ui: &dyn Frontend, name: &str) -> Result<(Project, Environment)> {
        let project = crate::load(self.manifest_path.as_deref())?;
        let env = self.environment(&project, name)?;
        ui.diagnostics(&env.warnings);
        ui.diagnostics(&project.warnings);
        Ok((project, env))
    }

    /// Environment `name` of `project`, with the overrides applied; its
    /// warnings unsaid.
    pub fn environment(&self, project: &Project, name: &str) -> Result<Environment> {
        let mut env = config::load_environment(project, name)?;
        for var in &self.vars {
            config::provenance::parse_override(var, &mut env.overrides).map_err(Error::Usage)?;
        }
        Ok(env)
    }

    /// A directory of the workspace, for git, which finds the repository
    /// from any of them: the manifest's, or the current one.
    pub(crate) fn workspace_dir(&self) -> &Path {
        let manifest_dir = self.manifest_path.as_deref().and_then(Path::parent);
        manifest_dir
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// How many hosts of `env` are worked on at once.
    pub fn jobs(&self, env: &Environment) -> usize {
        self.jobs.unwrap_or(env.jobs)
    }

    /// The transport for a run on `hosts`: their local directories, or
    /// OpenSSH with the environment's settings. What opening it warned of
    /// is returned, unsaid.
    pub(crate) fn open_transport(
        &self,
        ui: &dyn Frontend,
        project: &Project,
        env: &Environment,
        hosts: &[&Host],
        local: bool,
    ) -> Result<(Box<dyn Transport + Send>, Vec<String>)> {
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
        options.batch = !ui.can_ask();
        if self.no_persist {
            options.persist = std::time::Duration::ZERO;
        }
        let ssh = Ssh::connect(hosts, options, self.jobs(env));
        let warnings = ssh.warnings().to_vec();
        Ok((Box::new(ssh), warnings))
    }

    /// `open_transport`, with its warnings
    /// reported.
    pub fn transport(
        &self,
        ui: &dyn Frontend,
        project: &Project,
        env: &Environment,
        hosts: &[&Host],
        local: bool,
    ) -> Result<Box<dyn Transport + Send>> {
        let (transport, warnings) = self.open_transport(ui, project, env, hosts, local)?;
        for message in warnings {
            ui.event(Event::Warning { message });
        }
        Ok(transport)
    }
}

/// Decrypts the environment's secrets, hides their values from what `ui`
/// shows, and reports their warnings.
pub fn secrets(ui: &dyn Frontend, project: &Project, env: &Environment) -> Result<Secrets> {
    let secrets = crate::secrets::load(project, env)?;
    loaded(ui, &secrets);
    Ok(secrets)
}

/// Hides the values of `secrets` from what `ui` shows from now on, and
/// reports their warnings.
pub fn loaded(ui: &dyn Frontend, secrets: &Secrets) {
    ui.hide(secrets.mask());
    for warning in &secrets.warnings {
        ui.event(Event::Warning {
            message: warning.clone(),
        });
    }
}

/// Asks `ui` a yes-or-no `question` before a change; without a person to
/// ask, only `--yes` confirms.
pub fn confirm(ui: &dyn Frontend, question: &str) -> Result<()> {
    if !ui.can_ask() {
        return Err(Error::Usage(
            "confirm with `--yes` (there is no terminal to ask on); nothing was changed".into(),
        ));
    }
    if ui.ask(question)? {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed; nothing was changed".into()))
    }
}

/// `n` of `noun`, in the singular for one: `1 host`, `2 hosts`.
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
