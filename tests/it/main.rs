//! Integration tests: the real `cargo-deploy` binary on real workspaces.

mod bad_input;
mod build;
mod bundle;
mod claims;
mod faults;
mod git;
mod host_bytes;
mod hostile;
mod json_events;
mod links;
mod local;
mod pipeline;
mod progress;
mod pull;
mod records;
mod release;
mod remote;
mod rollout;
mod secrets;
mod security;
mod selection;
mod services;
mod shell;
mod support;
mod unreachable;
mod usage;
