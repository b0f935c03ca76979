//! The error of the out-of-band machines.

use crate::wire::oob::{self as wire, Errno, MsgType, Provider, Status};

/// Why a machine refused input or a call.
///
/// After any error but [`OobError::WrongState`], [`OobError::BadRequest`]
/// and [`OobError::BadResponse`] (mistakes of the caller, which leave the
/// machine as it was) the session is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OobError {
    /// A received message could not be decoded or failed librpmem's checks.
    #[error("{0}")]
    Wire(#[from] wire::Error),
    /// The server refused a request; [`Server::reject_response`] holds the
    /// answer carrying `status` when the request type has one.
    ///
    /// [`Server::reject_response`]: crate::oob::Server::reject_response
    #[error("{request} refused with {status}: {reason}")]
    Rejected {
        /// The request refused.
        request: MsgType,
        /// The status sent back (what PMDK's rpmemd would answer).
        status: Status,
        /// What was wrong.
        reason: RejectReason,
    },
    /// The call is not allowed in the machine's current state.
    #[error("{call} is not allowed while {state}")]
    WrongState {
        /// The call made.
        call: &'static str,
        /// The state the machine is in, in words.
        state: &'static str,
    },
    /// The request the caller asked the client to send is invalid.
    #[error("invalid request: {0}")]
    BadRequest(wire::Error),
    /// The response the driver asked the server to send is invalid.
    #[error("invalid response: {0}")]
    BadResponse(wire::Error),
    /// The response the driver asked the server to send is incomplete or
    /// carries what it must not.
    #[error("invalid {response}: {reason}")]
    InvalidResponse {
        /// The response being built.
        response: MsgType,
        /// What was wrong.
        reason: &'static str,
    },
    /// rpmemd's start-up status word holds an errno: it could not start.
    /// Its stderr usually says why.
    #[error("rpmemd failed to start: {errno}")]
    StartupFailed {
        /// The errno rpmemd sent.
        errno: Errno,
    },
    /// rpmemd sent its failure word (an errno, little-endian) instead of a
    /// response or when nothing was expected.
    #[error("rpmemd reported a failure, {errno}, while {during}")]
    RemoteFailure {
        /// The errno rpmemd sent.
        errno: Errno,
        /// What the client was doing.
        during: &'static str,
    },
    /// Bytes arrived when nothing was expected (PMDK's connection monitor
    /// calls this `EPROTO`).
    #[error("unexpected data {bytes:02x?} while {during}")]
    UnexpectedData {
        /// The first four bytes.
        bytes: [u8; 4],
        /// What the machine was doing.
        during: &'static str,
    },
    /// The channel closed in the middle of a message.
    #[error("the connection closed while {during}: {got} of {need} bytes had arrived")]
    UnexpectedEof {
        /// What the machine was waiting for.
        during: &'static str,
        /// Bytes of it received.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The channel closed between messages at a time the session was not
    /// over.
    #[error("the connection closed while {during}")]
    Disconnected {
        /// What the session was doing.
        during: &'static str,
    },
}

/// Why the server refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// A field is invalid.
    #[error("{0}")]
    Invalid(wire::Error),
    /// SET_ATTR or CLOSE before CREATE / OPEN.
    #[error("no pool is open (CREATE or OPEN must come first)")]
    NoPool,
    /// A second CREATE / OPEN in one session.
    #[error("a pool is already open in this session")]
    PoolOpen,
    /// A known provider this server was configured not to serve.
    #[error("provider {0} is not enabled on this server")]
    ProviderDisabled(Provider),
}
