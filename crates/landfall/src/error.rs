//! The library's error type.
//!
//! The binary maps [`Error::is_usage`] errors to exit status 2 (nothing was
//! contacted or changed) and every other error to exit status 1.

use std::io;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostics;
use crate::process::ProcessError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or templates are invalid.
    #[error("{0}")]
    Config(Diagnostics),
    /// The command line asked for something that does not exist.
    #[error("{0}")]
    Usage(String),
    /// A process (cargo, git, sh) failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A local file operation failed.
    #[error("{action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A check found a problem that is not a configuration error, such as a
    /// build that is not reproducible.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// Errors found before anything was contacted or changed.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Usage(_))
    }

    /// The error with all its causes: `top: cause: cause`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }

    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
