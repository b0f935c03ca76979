//! Sans-IO out-of-band (ssh channel) client and server machines.
//!
//! The machines never read or write anything themselves: the driver feeds
//! them the bytes it received (in pieces of any size, split anywhere) and
//! writes out the bytes they return. They allocate nothing (fixed buffers
//! sized by [`MAX_REQUEST_LEN`](crate::wire::oob::MAX_REQUEST_LEN) and
//! [`MAX_RESPONSE_LEN`](crate::wire::oob::MAX_RESPONSE_LEN)), read no clock
//! and never panic.
//!
//! The session, as PMDK 1.12.1 runs it:
//!
//! 1. rpmemd writes its 4-byte status word (0, or an errno if it could not
//!    start) — [`Server::startup_status`], [`ClientEvent::Ready`];
//! 2. the client sends CREATE or OPEN; rpmemd answers CREATE_RESP /
//!    OPEN_RESP (a failed answer ends the session);
//! 3. the client sends any number of SET_ATTR, each answered;
//! 4. the client sends CLOSE; rpmemd answers CLOSE_RESP and exits.
//!
//! When rpmemd fails mid-session without answering, it writes a second
//! status word holding its errno ([`Server::failure_word`]); the client
//! reports it as [`OobError::RemoteFailure`].
//!
//! ```
//! use rpmem_core::oob::{Client, ClientEvent, CreateRequest, Limits, Server, ServerEvent};
//! use rpmem_core::wire::oob::{IbcRepr, PersistMethod, PoolDesc, Provider, Status};
//! use rpmem_core::PoolAttr;
//!
//! let mut server = Server::new(Limits::default());
//! let mut client = Client::new();
//! let word = server.startup_status(Ok(())).unwrap();
//! assert_eq!(client.handle_input(&word).unwrap(), (4, Some(ClientEvent::Ready)));
//!
//! let request = CreateRequest {
//!     pool_size: 1 << 24,
//!     nlanes: 4,
//!     provider: Provider::LIBFABRIC_SOCKETS,
//!     buff_size: 8192,
//!     attr: PoolAttr::ZERO,
//!     pool_desc: PoolDesc::from_text("pool.set").unwrap(),
//! };
//! let bytes = client.send_create(&request).unwrap().to_vec();
//! let (used, event) = server.handle_input(&bytes).unwrap();
//! assert_eq!(used, bytes.len());
//! assert!(matches!(event, Some(ServerEvent::Create { .. })));
//! let ibc = IbcRepr { port: 7000, persist_method: PersistMethod::GPSPM, rkey: 1, raddr: 0x1000, nlanes: 4 };
//! let answer = server.respond_create(Status::Success, Some((ibc, None))).unwrap().to_vec();
//! let (_, event) = client.handle_input(&answer).unwrap();
//! assert!(matches!(event, Some(ClientEvent::Created(r)) if r.ibc == ibc));
//! ```

mod client;
mod error;
mod fill;
mod server;
#[cfg(test)]
mod tests;

pub use client::{Client, ClientEvent, CreateRequest, CreateResponse, OpenRequest, OpenResponse};
pub use error::{OobError, RejectReason};
pub use server::{Limits, ProviderSet, Server, ServerEvent};
