//! rpmemd exit statuses (documented in docs/rpmemd.md, "EXIT STATUS").

use std::process::ExitCode;

/// How rpmemd ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// 0: the request succeeded (`--help`, `--version`, `--dump-config`, a session, a removal).
    Success = 0,
    /// 1: the session or the removal failed.
    Failure = 1,
    /// 2: the command line is invalid.
    Usage = 2,
    /// 3: the configuration is invalid (a file line, a missing `-c` file, `poolset-dir`, no
    /// home directory).
    Config = 3,
    /// 4: logging cannot be set up (the log file cannot be opened).
    Logging = 4,
}

impl Status {
    /// The numeric exit status.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}
