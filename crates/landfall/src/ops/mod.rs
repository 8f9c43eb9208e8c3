//! The library's operations: one per command of `cargo deploy`, each in a
//! module of its own, as cargo keeps its own. A command maps its arguments
//! to [`Settings`] and a request, calls its operation, and renders what the
//! operation reports through its [`Frontend`]:
//!
//! - [`deploy::deploy`], [`promote::promote`], [`abort::abort`],
//!   [`build::build`], [`check::check`], [`rollback::rollback`],
//!   [`status::status`], [`exec::exec`], [`logs::logs`], [`prune::prune`],
//!   [`init::init`], [`init::sudoers`];
//! - and what they are made of: building and staging releases
//!   ([`build`]), what a protected environment asks ([`protection`]),
//!   reproducibility ([`reproducible`]), and opening the selected hosts
//!   for a command on them (`hosts`). A bundle's releases are staged by
//!   [`crate::bundle::releases`].

pub mod abort;
pub mod build;
pub mod check;
mod context;
pub mod deploy;
pub mod exec;
mod hosts;
pub mod init;
pub mod logs;
pub mod promote;
pub mod protection;
pub mod prune;
pub mod reproducible;
pub mod rollback;
pub mod status;

pub use context::{Frontend, Settings, confirm, counted, loaded, secrets};
pub use hosts::Targets;
