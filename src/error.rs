//! Exit codes and the top-level error type of commands.

use std::fmt;

/// The documented exit statuses of `catsync` (README, SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (and, with `--detailed-exitcode`, a plan without changes).
    Success = 0,
    /// An error: unreadable input, I/O failure, a refused operation.
    Error = 1,
    /// With `--detailed-exitcode`: the plan has changes.
    Changes = 2,
    /// The pipeline configuration is invalid.
    InvalidConfig = 3,
    /// A run is already in progress for this pipeline.
    InProgress = 4,
    /// The pipeline is deactivated.
    Deactivated = 5,
    /// The run finished, but some items failed.
    ItemErrors = 6,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that ends a command: what to print and which exit status to use.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration problems, already rendered (with positions and hints).
    #[error("{rendered}")]
    InvalidConfig { rendered: String },
    /// Anything else, as a lowercase phrase saying what failed and how to fix it.
    #[error("{message}")]
    Failed { message: String },
    /// A refusal with its own exit status (a run in progress, a deactivated pipeline).
    #[error("{message}")]
    Refused { message: String, exit: Exit },
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Stdout was closed by its reader (`catsync plan … | head`): nothing more can be shown, and
    /// nothing went wrong, so the command ends quietly with status 0.
    #[error("stdout was closed")]
    StdoutClosed,
}

impl Error {
    pub fn failed(message: impl fmt::Display) -> Self {
        Error::Failed { message: message.to_string() }
    }

    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { action, path: path.display().to_string(), source }
    }

    pub fn refused(exit: Exit, message: impl fmt::Display) -> Self {
        Error::Refused { message: message.to_string(), exit }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::InvalidConfig { .. } => Exit::InvalidConfig,
            Error::Refused { exit, .. } => *exit,
            Error::Failed { .. } | Error::Io { .. } => Exit::Error,
            Error::StdoutClosed => Exit::Success,
        }
    }
}

impl From<crate::state::StateError> for Error {
    fn from(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Locked { .. } => Error::refused(Exit::InProgress, e),
            other => Error::failed(other),
        }
    }
}

impl From<crate::plan::PlanError> for Error {
    fn from(e: crate::plan::PlanError) -> Self {
        match e {
            crate::plan::PlanError::State(s) => s.into(),
            other => Error::failed(other),
        }
    }
}
