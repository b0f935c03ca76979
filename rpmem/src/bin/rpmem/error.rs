//! The errors of the command-line tool and its exit codes.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed on the target or its result is wrong: rpmemd refused or failed, the pool set file is invalid (`poolset`), verification failed (`demo`) |
//! | 2 | usage: a command-line argument, target address, size or `RPMEM_*` variable is invalid (nothing was started) |
//! | 3 | a local problem: a local file cannot be read or written, rpmemd or ssh cannot be found or started |
//! | 4 | the connection failed: rpmemd or ssh went away, a data connection broke, a deadline passed, rpmemd broke the protocol |

use std::io;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the operation failed on the target, or its result is wrong.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: invalid command line, target, size or environment.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a local file or program problem.
pub const EXIT_LOCAL: u8 = 3;
/// Exit code: the connection to rpmemd failed.
pub const EXIT_CONNECTION: u8 = 4;

/// Everything a subcommand can fail with. The message is one sentence that
/// says what was being done and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument is invalid.
    #[error("{0}")]
    Usage(String),
    /// A library call failed.
    #[error("{what}: {source}")]
    Rpmem {
        /// What the tool was doing.
        what: String,
        /// The library's error (boxed: it is large).
        #[source]
        source: Box<rpmem::Error>,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the tool was doing.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Something this tool needs locally is missing (e.g. rpmemd).
    #[error("{0}")]
    Local(String),
    /// The operation ran but its result is wrong (e.g. verification).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The exit code for this error (see the module documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Io { .. } | CliError::Local(_) => EXIT_LOCAL,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::Rpmem { source, .. } => rpmem_exit_code(source),
        }
    }

    /// Wraps a library error with what the tool was doing.
    pub fn rpmem(what: impl Into<String>) -> impl FnOnce(rpmem::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Rpmem {
            what,
            source: Box::new(source),
        }
    }

    /// Wraps an I/O error with what the tool was doing.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }
}

/// The exit code of a library error: the side that failed.
pub fn rpmem_exit_code(e: &rpmem::Error) -> u8 {
    use rpmem::Error as E;
    match e {
        E::InvalidTarget { .. }
        | E::InvalidArgument(_)
        | E::Env { .. }
        | E::Call { .. }
        | E::NoSuchLane { .. } => EXIT_USAGE,
        E::Launch { .. } | E::Io { .. } => EXIT_LOCAL,
        E::Disconnected { .. }
        | E::Protocol { .. }
        | E::Timeout { .. }
        | E::Connection { .. }
        | E::LaneBroken { .. } => EXIT_CONNECTION,
        _ => EXIT_FAILED,
    }
}

/// The result of a subcommand.
pub type CliResult<T = ()> = Result<T, CliError>;
