//! landfall: build, assemble and deploy Rust services.
//!
//! The pipeline is the architecture:
//!
//! ```text
//! config -> plan -> build -> assemble/hash -> transport -> activate -> report
//! ```
//!
//! Each command of `cargo deploy` is one operation of [`ops`], which the
//! binary calls with its arguments mapped to a request, and whose
//! [`event::Event`]s and questions it renders through an
//! [`ops::Frontend`]. The library prints nothing.
//!
//! ```no_run
//! use landfall::ops::deploy::{DeployRequest, deploy};
//!
//! struct Log;
//! impl landfall::ops::Frontend for Log {
//!     fn event(&self, event: landfall::event::Event) {
//!         eprintln!("{event:?}");
//!     }
//!     fn diagnostics(&self, warnings: &[landfall::diag::Diagnostic]) {
//!         warnings.iter().for_each(|w| eprintln!("{w}"));
//!     }
//!     fn hide(&self, _: &landfall::secrets::Mask) {}
//!     fn can_ask(&self) -> bool {
//!         false
//!     }
//!     fn ask(&self, _: &str) -> landfall::Result<bool> {
//!         Ok(false)
//!     }
//! }
//!
//! let request = DeployRequest { env: "dev".into(), local: true, ..Default::default() };
//! let summary = deploy(&landfall::ops::Settings::default(), &request, &Log)?;
//! assert!(summary.ok);
//! # Ok::<(), landfall::Error>(())
//! ```
//!
//! The steps the operations take are public too: [`config::load_environment`],
//! [`plan::plan`], [`ops::build::build_releases`], [`deploy::deploy`].
//!
//! Private to the crate: the host protocol (`steps`), whose types the API
//! shows are re-exported where they are used ([`transport::Script`],
//! [`transport::Reply`], [`deploy::PathState`], [`deploy::LogEntry`],
//! [`deploy::Orphan`]); `process` (its errors re-exported:
//! [`ProcessError`]); `files`, `hash`, `parallel`; and what the operations
//! use on their caller's behalf: `hooks`, `init`, `template`. What the
//! binary and `xtask` need of those has a function of its own:
//! [`config::Workspace::private_dir`], [`secrets::write_encrypted`],
//! [`assemble::hash_files`].

pub mod assemble;
pub mod bundle;
pub mod cargo;
pub mod config;
pub mod deploy;
pub mod diag;
pub mod diff;
mod error;
pub mod event;
mod files;
pub mod git;
mod hash;
pub(crate) mod hooks;
pub mod inert;
pub(crate) mod init;
pub mod interrupt;
pub mod ops;
mod parallel;
pub mod plan;
mod process;
pub mod sbom;
pub mod secrets;
pub mod service;
mod steps;
pub mod store;
pub(crate) mod template;
pub mod transport;

use std::path::Path;

pub use error::{Error, Result};
pub use process::{ProcessError, ProcessErrorKind, split_command_line};

/// This version of landfall.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use config::Project;

/// Reads the cargo workspace (at `manifest_path`, or around the current
/// directory) and its `deploy.toml`.
pub fn load(manifest_path: Option<&Path>) -> Result<Project> {
    let workspace = cargo::workspace(manifest_path)?;
    config::load_project(workspace)
}
