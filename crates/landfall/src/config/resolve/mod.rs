//! From raw files to the resolved model, with every semantic check.
//!
//! All problems found are collected and reported together, each at its
//! span. The only IO here is reading the configuration files, the
//! templates and listing source trees (which is part of checking them).
//!
//! This module holds what every table's check shares: reading and parsing
//! a file, the [`Checker`] that collects a file's diagnostics, and the
//! checks of names, durations and relative paths. Each part of the model
//! is resolved by a module of its own: [`project`] (`deploy.toml`: the
//! project, its build and the order of its artifacts), [`artifact`] (one
//! `[artifact.X]`: where it goes, its binaries, its transport), [`release`]
//! (the paths an artifact puts in its release directory: `files`,
//! `templates`, `shared`), [`service`], [`hooks`], [`rollout`], and
//! [`environment`] (`environments/ENV.toml`: its settings, its hosts, and
//! whether the project's artifacts reach them).

mod artifact;
mod environment;
mod hooks;
mod project;
mod release;
mod rollout;
mod service;

use std::fs;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

pub use environment::load_environment;
use hooks::DEFAULT_HEALTH_TIMEOUT;
pub use project::load_project;

use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::error::{Error, Result};

/// Collects diagnostics for one file.
struct Checker {
    file: Arc<SourceFile>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker {
    fn new(file: Arc<SourceFile>) -> Checker {
        Checker {
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, label: impl Into<String>) {
        let diag = Diagnostic::error(message).at(&self.file, span, label);
        self.errors.push(diag);
    }

    fn error_with_note(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        label: &str,
        note: String,
    ) {
        let diag = Diagnostic::error(message)
            .at(&self.file, span, label)
            .note(note);
        self.errors.push(diag);
    }

    /// A warning may point into another file (deploy.toml, while checking
    /// an environment).
    fn warning(
        &mut self,
        file: &Arc<SourceFile>,
        span: Range<usize>,
        message: String,
        label: String,
    ) {
        let diag = Diagnostic::warning(message).at(file, span, label);
        self.warnings.push(diag);
    }

    fn finish(self) -> Result<Vec<Diagnostic>> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(Error::Config(Diagnostics(self.errors)))
        }
    }
}

/// Reads a configuration file. A file that cannot be read, or is not UTF-8,
/// is a configuration error like any other: nothing has been touched yet.
fn read_source(path: &Path, display: String) -> Result<Arc<SourceFile>> {
    let bytes = fs::read(path).map_err(|err| {
        Error::Config(Diagnostics(vec![Diagnostic::error(format!(
            "cannot read `{display}`: {err}"
        ))]))
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Arc::new(SourceFile { display, text })),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(err.as_bytes()).into_owned();
            let file = Arc::new(SourceFile {
                display: display.clone(),
                text,
            });
            let diag = Diagnostic::error(format!("`{display}` is not UTF-8 text")).at(
                &file,
                at..at + 1,
                "invalid UTF-8",
            );
            Err(Error::Config(Diagnostics(vec![diag])))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &Arc<SourceFile>) -> Result<T> {
    toml::from_str(&file.text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let message = plain_types(err.message().trim_end());
        Error::Config(Diagnostics(vec![
            Diagnostic::error(message).at(file, span, ""),
        ]))
    })
}

/// serde's names of types, as a TOML file calls them.
fn plain_types(message: &str) -> String {
    [
        ("expected i64", "expected an integer"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
    ]
    .iter()
    .fold(message.to_string(), |message, (serde, toml)| {
        message.replace(serde, toml)
    })
}

/// A name that becomes a path, or a word of a command line.
fn check_name(check: &mut Checker, name: &Spanned<String>, what: &str) {
    // `.` and `..` would name a directory that is not the host's (or the
    // artifact's) own wherever a name becomes a path.
    let ok = !name.get_ref().is_empty()
        && !name.get_ref().starts_with('-')
        && !name.get_ref().bytes().all(|b| b == b'.')
        && name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        check.error(
            name.span(),
            format!("invalid {what} `{}`", crate::diag::shown(name.get_ref())),
            "use letters, digits, `-`, `_` and `.`, not starting with `-`, and not dots alone",
        );
    }
}

/// A positive duration, such as `30s` or `1m 30s`.
fn parse_duration(check: &mut Checker, key: &str, text: &Spanned<String>) -> Duration {
    match text.get_ref().parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_positive() => d.unsigned_abs(),
        Ok(_) => {
            check.error(text.span(), format!("`{key}` must be positive"), "");
            DEFAULT_HEALTH_TIMEOUT
        }
        Err(_) => {
            check.error(
                text.span(),
                format!("invalid duration `{}`", text.get_ref()),
                "write e.g. `30s`, `2m` or `1m 30s`",
            );
            DEFAULT_HEALTH_TIMEOUT
        }
    }
}

/// True if a relative path has only normal components, with no control
/// characters (the manifest is line-based, and paths cross shells).
fn clean_components(path: &str) -> bool {
    !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}
