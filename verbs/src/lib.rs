//! A thin safe layer over `rdma-sys` (libibverbs and librdmacm) for rpmem's
//! RDMA data path. Every `unsafe` block of the verbs transport lives in this
//! crate; rpmemd and the rpmem library use only the safe types below.
//!
//! * [`Listener`] (target) and [`resolve`] (initiator) set up reliable
//!   connections (RC queue pairs) with librdmacm. Connection requests carry
//!   up to [`MAX_PRIVATE_DATA`] bytes of private data (our hello, with the
//!   session secret), and the answer (accept or reject) carries private data
//!   back, so a connection that does not know the secret is rejected before
//!   it gets a queue pair.
//! * [`Pd`] is a protection domain on the device the connection resolved to;
//!   it keeps that device open.
//! * [`Mr`] registers memory with the NIC. It owns (or holds a promise for)
//!   the memory it registers ([`Memory`]), so a registration cannot outlive
//!   the memory it describes, and it keeps its protection domain alive.
//! * [`Endpoint`] is one connected queue pair with its completion queue and
//!   the registered buffers it sends from and receives into, divided in
//!   slots. A slot that is posted to the NIC cannot be borrowed; its
//!   completion ([`Wc`]) hands it back. RDMA WRITE reads from one
//!   registered source ([`Mr`]); RDMA READ and WRITE address one remote
//!   registration ([`Remote`]); both ranges are checked before posting.
//!
//! * RDMA FLUSH (IBTA's persistency operation, rdma-core >= 45 and a
//!   device that has it, e.g. rxe from Linux 6.2): [`Pd::flush_support`]
//!   finds out at run time whether it can be posted,
//!   [`Endpoint::post_flush`] posts it; see the [`FlushType`] docs and
//!   `docs/rdma-flush.md`. Where anything is missing the answer is "no",
//!   never an error.
//!
//! Errors name the verb that failed and the operating system's reason.
//!
//! Everything here exists only with the cargo feature `verbs` (which needs
//! rdma-core's headers and libclang to build); without it the crate is
//! empty.

#![warn(missing_docs)]

#[cfg(feature = "verbs")]
mod cm;
#[cfg(feature = "verbs")]
mod error;
#[cfg(feature = "verbs")]
mod flush;
#[cfg(feature = "verbs")]
mod mem;
#[cfg(feature = "verbs")]
mod qp;

#[cfg(feature = "verbs")]
pub use cm::{resolve, Connected, Listener, Pending, Request, Resolved};
#[cfg(feature = "verbs")]
pub use error::Error;
#[cfg(feature = "verbs")]
pub use flush::{flush_compiled, FlushSupport, FlushType};
#[cfg(feature = "verbs")]
pub use mem::{Access, Buf, Memory, Mr, Pd};
#[cfg(feature = "verbs")]
pub use qp::{Disconnector, Endpoint, EndpointConfig, Remote, Wake, Wc, WcKind};

/// Most bytes of private data a connection request over RoCE or IB carries
/// (56 for `rdma_connect`; an accept may carry 196, a reject 148, but we use
/// the same bound everywhere).
pub const MAX_PRIVATE_DATA: usize = 56;
