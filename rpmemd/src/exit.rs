//! rpmemd exit statuses (documented in docs/rpmemd.md, "EXIT STATUS").

use std::process::ExitCode;

/// How rpmemd ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0: the request succeeded (`--help`, `--version`, `--dump-config`, a session, a removal).
    Success,
    /// 1: the session (or a listing) failed.
    Failure,
    /// 2: the command line is invalid.
    Usage,
    /// 3: the configuration is invalid (a file line, a missing `-c` file, `poolset-dir`, no
    /// home directory).
    Config,
    /// 4: logging cannot be set up (the log file cannot be opened).
    Logging,
    /// `--remove` failed: the exit status is the errno of the first failure (1 to 255), as
    /// PMDK's rpmemd does (`ret = errno`). PMDK's librpmem, and ours, turn it into
    /// `rpmem_remove`'s errno, which libpmempool prints ("No such file or directory").
    RemoveFailed(u8),
}

impl Status {
    /// The numeric exit status.
    pub const fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Config => 3,
            Status::Logging => 4,
            Status::RemoveFailed(errno) => {
                if errno == 0 {
                    1
                } else {
                    errno
                }
            }
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}
