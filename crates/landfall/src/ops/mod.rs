//! The operations of the library, each in a module of its own, as cargo
//! keeps its own: building and staging releases, bundles, what a protected
//! environment asks, reproducibility, and [`Deployment`](deployment::Deployment),
//! which puts them together.

pub mod build;
pub mod bundle;
pub mod deployment;
pub mod protection;
pub mod reproducible;
