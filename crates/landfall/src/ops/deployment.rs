//! The short way to deploy: [`Deployment::prepare`] loads an environment,
//! decrypts its secrets, plans and builds; [`Deployment::execute`] deploys
//! what it prepared over a transport.

use super::build::{BuildOptions, Built, build_releases};
use crate::config::{Environment, Project};
use crate::deploy::{self, DeployOptions, Identity, Run, Summary};
use crate::error::Result;
use crate::event::Reporter;
use crate::plan::{self, Plan};
use crate::secrets;
use crate::transport::{Local, Ssh, SshOptions, Transport};

/// What to deploy, and how.
#[derive(Debug, Clone, Default)]
pub struct DeploymentOptions {
    /// Only these hosts (`web1`) and roles (`@app`); all when empty.
    pub only: Vec<String>,
    /// Deploy into `target/landfall/local/ENV/`, one directory per host,
    /// instead of to the hosts.
    pub local: bool,
    pub build: BuildOptions,
    pub deploy: DeployOptions,
}

/// An environment's releases, built and staged, ready to deploy.
#[derive(Debug)]
pub struct Deployment<'p> {
    project: &'p Project,
    pub env: Environment,
    pub plan: Plan,
    pub built: Built,
    options: DeploymentOptions,
}

impl<'p> Deployment<'p> {
    /// Loads environment `env` of `project`, decrypts its secrets, plans
    /// what goes where and builds it. Bad input is an error here, before
    /// any host is contacted.
    pub fn prepare(
        project: &'p Project,
        env: &str,
        options: DeploymentOptions,
        events: Reporter<'_>,
    ) -> Result<Deployment<'p>> {
        let env = crate::config::load_environment(project, env)?;
        plan::reaches_a_host(project, &env, &options.only)?;
        let secrets = secrets::load(project, &env)?;
        let plan = plan::plan(project, &env, &options.only, options.local, &secrets)?;
        let built = build_releases(project, &plan, &options.build, events)?;
        Ok(Deployment {
            project,
            env,
            plan,
            built,
            options,
        })
    }

    /// The transport the deployment was prepared for: the local directory
    /// of `local`, or else OpenSSH with the environment's settings,
    /// never prompting (its masters start opening now).
    pub fn transport(&self) -> Box<dyn Transport> {
        if self.options.local {
            return Box::new(Local::new(
                &self.project.workspace.landfall_dir(),
                &self.env.name,
            ));
        }
        let hosts = self.plan.hosts(&self.env);
        Box::new(Ssh::connect(
            &hosts,
            SshOptions::of(&self.env),
            self.env.jobs,
        ))
    }

    /// Deploys the prepared releases over `transport`: every host, its
    /// rollouts and health checks, rolled back on failure as the
    /// environment says. The summary says how each target ended.
    pub fn execute(&self, transport: &dyn Transport, events: Reporter<'_>) -> Summary {
        let identity = Identity::current(self.built.revision.clone());
        let run = Run {
            project: self.project,
            env: &self.env,
            transport,
            identity: &identity,
            jobs: self.env.jobs,
            events,
        };
        let mut summary = deploy::deploy(&run, &self.built.releases, &self.options.deploy);
        summary.timings.build = self.built.build_seconds;
        summary.timings.assemble = self.built.assemble_seconds;
        summary
    }
}
