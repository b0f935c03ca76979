//! The error of every fallible call of this crate.

use std::io;

/// A verb failed: which one, on what, and the operating system's reason.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    /// What was being done (`"ibv_reg_mr of 4096 bytes"`, ...).
    pub what: String,
    /// The reason (errno, or a description for protocol-level failures).
    #[source]
    pub source: io::Error,
}

impl Error {
    /// `what` failed with the thread's current `errno`.
    pub(crate) fn last_os(what: impl Into<String>) -> Error {
        Error {
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// `what` failed with the error code a verb returned (verbs that return
    /// the errno rather than setting it: `ibv_post_send`, `ibv_dereg_mr`).
    pub(crate) fn code(what: impl Into<String>, rc: i32) -> Error {
        let errno = if rc < 0 { -rc } else { rc };
        let source = if errno == 0 {
            io::Error::last_os_error()
        } else {
            io::Error::from_raw_os_error(errno)
        };
        Error {
            what: what.into(),
            source,
        }
    }

    /// `what` failed for a reason that is not an errno.
    pub(crate) fn other(what: impl Into<String>, kind: io::ErrorKind, why: String) -> Error {
        Error {
            what: what.into(),
            source: io::Error::new(kind, why),
        }
    }

    /// The errno, when the reason is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The kind of the reason.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}
