//! The one error type of the library.

use std::io;
use std::time::Duration;

use rpmem_core::persist::CallError;
use rpmem_core::wire::oob::{errno, Errno, MsgType, Status};

/// Everything that can go wrong, with what happened and on which side: this
/// process (arguments, environment, starting ssh), the target (rpmemd's
/// answer or its own message), or the connection between them.
///
/// Whenever rpmemd (or ssh) failed, the error carries rpmemd's own words:
/// the lines it wrote on stderr, or, when it wrote none, its exit status or
/// the text of the status code it answered with. These texts are never empty.
///
/// [`Error::errno`] gives the `errno` librpmem would have set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target address cannot be parsed (local).
    #[error("invalid target address {target:?}: {reason}")]
    InvalidTarget {
        /// The text given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument of a library call is invalid (local); nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An environment variable has a value the library cannot use (local).
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data-path call was refused before anything was sent (bad flags,
    /// range outside the pool, offset inside the pool header). The lane is
    /// unchanged and usable.
    #[error("lane {lane}: {source}")]
    Call {
        /// The lane of the call.
        lane: u32,
        /// What the persist engine refused.
        #[source]
        source: CallError,
    },
    /// The lane number is not below the number of lanes of the pool.
    #[error("lane {lane} does not exist: the pool has {nlanes} lane(s), 0 to {}", nlanes.saturating_sub(1))]
    NoSuchLane {
        /// The lane asked for.
        lane: u32,
        /// Lanes of the pool.
        nlanes: u32,
    },
    /// The lane is held by a [`Lane`](crate::Lane) handle; only that handle
    /// may use it until it is dropped.
    #[error("lane {lane} is held by a Lane handle; use that handle or drop it first")]
    LaneInUse {
        /// The lane asked for.
        lane: u32,
    },
    /// The lane failed earlier (connection lost, timeout, protocol error);
    /// every later call on it fails. Close the pool and open it again.
    #[error("lane {lane} is unusable after an earlier failure: {cause}")]
    LaneBroken {
        /// The lane.
        lane: u32,
        /// The first failure, in words.
        cause: String,
    },
    /// ssh (or rpmemd in local mode) could not be started (local).
    #[error("cannot start {command:?}: {source}")]
    Launch {
        /// The program and its arguments.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// rpmemd could not start: its start-up status word holds an errno.
    #[error("rpmemd on {host} failed to start ({errno}): {message}")]
    Startup {
        /// The target host.
        host: String,
        /// The errno rpmemd sent.
        errno: Errno,
        /// rpmemd's own message (stderr), or the errno's text.
        message: String,
    },
    /// rpmemd answered a request with a failure status.
    #[error("rpmemd on {host} refused {request} of pool set {pool_set:?}: {status}: {message}")]
    Refused {
        /// The target host.
        host: String,
        /// The request refused.
        request: MsgType,
        /// The pool set named.
        pool_set: String,
        /// The status rpmemd answered with.
        status: Status,
        /// rpmemd's own message (stderr), or the status text.
        message: String,
    },
    /// rpmemd (or ssh) went away: it exited, closed the channel, or sent its
    /// failure word, while the library waited for something.
    #[error("rpmemd on {host} went away while {during}: {message}")]
    Disconnected {
        /// The target host.
        host: String,
        /// What the library was waiting for.
        during: String,
        /// rpmemd's own message (stderr), exit status, or errno text.
        message: String,
    },
    /// rpmemd sent bytes that break the protocol.
    #[error("protocol error from rpmemd on {host} while {during}: {detail}")]
    Protocol {
        /// The target host.
        host: String,
        /// What the library was doing.
        during: String,
        /// What was wrong (from the core's decoders and machines).
        detail: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {after:?} while {during} (rpmemd on {host}): {message}")]
    Timeout {
        /// The target host.
        host: String,
        /// What the library was waiting for.
        during: String,
        /// The time waited.
        after: Duration,
        /// What rpmemd said so far (stderr), or that it said nothing.
        message: String,
    },
    /// A data-path connection failed (connect, hello, reset, end of file).
    #[error("lane {lane} to {host}: {what}: {message}")]
    Connection {
        /// The target host.
        host: String,
        /// The lane.
        lane: u32,
        /// What failed, e.g. "connecting to 127.0.0.1:7000".
        what: String,
        /// The OS error or the end of stream, and rpmemd's own message.
        message: String,
    },
    /// A local system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What the library was doing.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `rpmemd --remove` failed.
    #[error("rpmemd on {host} could not remove pool set {pool_set:?} ({exit}): {message}")]
    RemoveFailed {
        /// The target host.
        host: String,
        /// The pool set named.
        pool_set: String,
        /// Exit status of the remote command, in words.
        exit: String,
        /// The exit code (librpmem's result), or -1 when killed by a signal.
        code: i32,
        /// rpmemd's own message (stderr), or the exit status.
        message: String,
    },
    /// `rpmemd --list` ran and exited with a failure (e.g. its `poolset-dir` does not exist,
    /// or it is an rpmemd without `--list`).
    #[error(
        "rpmemd on {host} could not list the pool set files of its poolset-dir ({exit}): {message}"
    )]
    ListFailed {
        /// The target host.
        host: String,
        /// Exit status of the remote command, in words.
        exit: String,
        /// rpmemd's own message (stderr), or that it wrote none.
        message: String,
    },
}

impl Error {
    /// The `errno` librpmem would have set for this failure.
    pub fn errno(&self) -> i32 {
        let e = match self {
            Error::InvalidTarget { .. }
            | Error::InvalidArgument(_)
            | Error::Env { .. }
            | Error::Call { .. }
            | Error::NoSuchLane { .. } => errno::EINVAL,
            Error::LaneInUse { .. } => errno::EBUSY,
            Error::LaneBroken { .. } | Error::Disconnected { .. } => errno::ECONNRESET,
            Error::Launch { source, .. } | Error::Io { source, .. } => {
                return source.raw_os_error().unwrap_or(libc::EIO)
            }
            Error::Startup { errno, .. } => errno.0,
            Error::Refused { status, .. } => status.errno(),
            Error::Protocol { .. } => errno::EPROTO,
            Error::Timeout { .. } => libc::ETIMEDOUT as u32,
            Error::Connection { .. } => errno::ECONNRESET,
            Error::RemoveFailed { code, .. } => {
                return if *code > 0 { *code } else { libc::EREMOTEIO }
            }
            Error::ListFailed { .. } => return libc::EREMOTEIO,
        };
        i32::try_from(e).unwrap_or(libc::EIO)
    }

    /// True when the failure ends the usefulness of a lane or the session
    /// (as opposed to a refused argument, after which the handle is intact).
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Error::InvalidArgument(_)
                | Error::Call { .. }
                | Error::NoSuchLane { .. }
                | Error::LaneInUse { .. }
        )
    }
}
