//! landfall: build, assemble and deploy Rust services.
//!
//! The pipeline is the architecture:
//!
//! ```text
//! config -> plan -> build -> assemble/hash -> transport -> activate -> report
//! ```
//!
//! [`Deployment::prepare`] loads an environment, plans what goes where
//! and builds it; [`Deployment::execute`] deploys that over a
//! [`transport::Transport`]. The library prints nothing: progress arrives
//! as [`event::Event`]s.
//!
//! ```no_run
//! use landfall::{Deployment, DeploymentOptions};
//!
//! let project = landfall::load(None)?;
//! let report = |event: landfall::event::Event| eprintln!("{event:?}");
//! let options = DeploymentOptions { local: true, ..Default::default() };
//! let deployment = Deployment::prepare(&project, "dev", options, &report)?;
//! let summary = deployment.execute(deployment.transport().as_ref(), &report);
//! assert!(summary.ok);
//! # Ok::<(), landfall::Error>(())
//! ```
//!
//! The steps it takes are public too, as [`ops`] and the modules of the
//! pipeline: [`config::load_environment`], [`plan::plan`],
//! [`ops::build::build_releases`], [`deploy::deploy`].

pub mod assemble;
pub mod build;
pub mod bundle;
pub mod config;
pub mod deploy;
pub mod diag;
pub mod diff;
mod error;
pub mod event;
mod files;
pub mod git;
mod hash;
pub mod hooks;
pub mod inert;
pub mod init;
pub mod interrupt;
pub mod ops;
mod parallel;
pub mod plan;
mod process;
pub mod secrets;
pub mod service;
mod steps;
pub mod store;
pub mod template;
pub mod transport;

use std::path::Path;

pub use error::{Error, Result};
pub use ops::deployment::{Deployment, DeploymentOptions};
pub use process::{ProcessError, ProcessErrorKind, split_command_line};

/// This version of landfall.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use config::Project;

/// Reads the cargo workspace (at `manifest_path`, or around the current
/// directory) and its `deploy.toml`.
pub fn load(manifest_path: Option<&Path>) -> Result<Project> {
    let workspace = build::workspace(manifest_path)?;
    config::load_project(workspace)
}
