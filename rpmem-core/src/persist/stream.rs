//! Sans-IO machines for stream transports (our TCP data path): one
//! [`StreamClient`] and one [`StreamServer`] per lane connection.
//!
//! A stream emulates the RDMA operations of [`Op`]: a `WRITE` frame carries
//! the bytes the server receives straight into the pool, a `READ_REQ` frame
//! is answered with `READ_RESP` and the bytes, a `SEND` frame carries a
//! persist message that the server executes and answers with `RECV`. Since a
//! connection is one ordered byte stream, a `SEND` is processed after every
//! earlier `WRITE` of the lane has been placed, as on an RC queue pair.
//!
//! Completions on the client: the stream has no send-side acknowledgement,
//! so once a frame is completely written the driver reports the completion
//! named by [`ClientFrame::completes`] (a signaled WRITE, a SEND) itself. A
//! READ completes when its `READ_RESP` bytes are in place; a persist
//! response arrives as a `RECV` frame.

use heapless::Deque;

use super::{Op, OpKind, ReadDest, Target, TargetError, TargetPlan};
use crate::wire::persist::{HEADER_LEN as PERSIST_HEADER_LEN, RESP_LEN};
use crate::wire::tcp::{
    self, Frame, FrameKind, FrameRepr, Hello, HelloAck, HelloAckRepr, HelloRepr, HelloStatus,
    FRAME_HEADER_LEN, HELLO_ACK_LEN, HELLO_LEN, SECRET_LEN, VERSION,
};

/// Most answers (READ_RESP, RECV) a client connection awaits at once.
const EXPECT_CAP: usize = 64;

/// What follows a client frame header on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameBody {
    /// Nothing (`READ_REQ`).
    Empty,
    /// Local region `[offset, offset + len)` (`WRITE`).
    Local {
        /// Offset in the local region.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// A persist message: the 24-byte header, then (inline) local region
    /// `[offset, offset + len)` (`SEND`).
    Message {
        /// The persist message header.
        header: [u8; PERSIST_HEADER_LEN],
        /// Inline data: `(offset, len)` in the local region.
        inline: Option<(u64, u64)>,
    },
}

/// A client frame to write: `header`, then `body`. Ideally one `writev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientFrame {
    /// The 32-byte frame header.
    pub header: [u8; FRAME_HEADER_LEN],
    /// What follows it.
    pub body: FrameBody,
    /// Completion the driver reports once the whole frame is written
    /// (`Write` for a signaled WRITE, `Send` for a SEND), if any.
    pub completes: Option<OpKind>,
}

/// A server frame header the client received, checked against what it
/// asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerFrame {
    /// `len` bytes of pool `[offset, ...)` follow; put them at `dest`, then
    /// report [`super::Completion::Read`].
    ReadResp {
        /// Pool offset.
        offset: u64,
        /// Bytes that follow.
        len: u64,
        /// Where they go.
        dest: ReadDest,
    },
    /// An 8-byte persist response follows; report it as
    /// [`super::Completion::Recv`].
    Recv,
}

/// A protocol violation seen by the client; close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Malformed bytes from the server.
    #[error("malformed data from the server: {0}")]
    Wire(tcp::Error),
    /// The server refused the hello.
    #[error("server refused the lane: {0:?}")]
    Refused(HelloStatus),
    /// An operation for another lane.
    #[error("operation for lane {got} given to the connection of lane {expected}")]
    WrongLane {
        /// Lane of the operation or frame.
        got: u32,
        /// Lane of the connection.
        expected: u32,
    },
    /// Too many answers awaited.
    #[error("more than 64 READs and SENDs await their answer on this connection")]
    TooManyOutstanding,
    /// A frame kind only a client sends.
    #[error("server sent a {0} frame, which only a client sends")]
    WrongDirection(FrameKind),
    /// An answer no request asked for, or out of order.
    #[error("server sent {got} for request {req_id}, but {expected}")]
    Unexpected {
        /// Kind received.
        got: FrameKind,
        /// Its request id.
        req_id: u64,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A READ_RESP whose range differs from the request.
    #[error("READ_RESP for request {req_id} covers offset {got_offset} length {got_len}, but offset {offset} length {len} was asked for")]
    ReadMismatch {
        /// Request id.
        req_id: u64,
        /// Offset received.
        got_offset: u64,
        /// Length received.
        got_len: u64,
        /// Offset asked.
        offset: u64,
        /// Length asked.
        len: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Expect {
    req_id: u64,
    kind: FrameKind,
    offset: u64,
    len: u64,
    dest: ReadDest,
}

/// The client side of one lane connection.
#[derive(Debug)]
pub struct StreamClient {
    lane: u32,
    next_req: u64,
    expect: Deque<Expect, EXPECT_CAP>,
}

impl StreamClient {
    /// A client for `lane`.
    pub fn new(lane: u32) -> StreamClient {
        StreamClient {
            lane,
            next_req: 0,
            expect: Deque::new(),
        }
    }

    /// The lane of the connection.
    pub fn lane(&self) -> u32 {
        self.lane
    }

    /// The hello to send first.
    pub fn hello(&self, secret: &[u8; SECRET_LEN]) -> [u8; HELLO_LEN] {
        HelloRepr {
            version: VERSION,
            lane: self.lane,
            secret: *secret,
        }
        .to_bytes()
    }

    /// Check the server's answer to the hello.
    pub fn on_hello_ack(&self, bytes: &[u8]) -> Result<(), ClientError> {
        let ack = HelloAck::new_checked(bytes).map_err(ClientError::Wire)?;
        let repr = HelloAckRepr::parse(&ack).map_err(ClientError::Wire)?;
        match repr.status {
            HelloStatus::Ok => Ok(()),
            s => Err(ClientError::Refused(s)),
        }
    }

    /// The frame that carries `op`.
    pub fn frame(&mut self, op: &Op) -> Result<ClientFrame, ClientError> {
        if op.lane() != self.lane {
            return Err(ClientError::WrongLane {
                got: op.lane(),
                expected: self.lane,
            });
        }
        let req_id = self.next_req;
        let (repr, body, completes) = match *op {
            Op::Write {
                offset,
                len,
                signaled,
                ..
            } => (
                FrameRepr {
                    kind: FrameKind::Write,
                    lane: self.lane,
                    req_id,
                    offset,
                    len,
                },
                FrameBody::Local { offset, len },
                signaled.then_some(OpKind::Write),
            ),
            Op::Read {
                offset, len, dest, ..
            } => {
                self.expect_answer(Expect {
                    req_id,
                    kind: FrameKind::ReadResp,
                    offset,
                    len,
                    dest,
                })?;
                (
                    FrameRepr {
                        kind: FrameKind::ReadReq,
                        lane: self.lane,
                        req_id,
                        offset,
                        len,
                    },
                    FrameBody::Empty,
                    None,
                )
            }
            Op::Send { msg, inline, .. } => {
                self.expect_answer(Expect {
                    req_id,
                    kind: FrameKind::Recv,
                    offset: 0,
                    len: RESP_LEN as u64,
                    dest: ReadDest::Flush,
                })?;
                let inline = inline.then_some((msg.offset, msg.size));
                let data = inline.map_or(0, |(_, l)| l);
                (
                    FrameRepr {
                        kind: FrameKind::Send,
                        lane: self.lane,
                        req_id,
                        offset: 0,
                        len: (PERSIST_HEADER_LEN as u64).saturating_add(data),
                    },
                    FrameBody::Message {
                        header: msg.to_bytes(),
                        inline,
                    },
                    Some(OpKind::Send),
                )
            }
        };
        self.next_req = self.next_req.wrapping_add(1);
        Ok(ClientFrame {
            header: repr.to_bytes(),
            body,
            completes,
        })
    }

    /// Check a frame header from the server against the oldest request
    /// awaiting an answer (the server answers in order).
    pub fn on_server_header(&mut self, bytes: &[u8]) -> Result<ServerFrame, ClientError> {
        let f = Frame::new_checked(bytes).map_err(ClientError::Wire)?;
        let repr = FrameRepr::parse(&f).map_err(ClientError::Wire)?;
        if repr.kind.from_client() {
            return Err(ClientError::WrongDirection(repr.kind));
        }
        if repr.lane != self.lane {
            return Err(ClientError::WrongLane {
                got: repr.lane,
                expected: self.lane,
            });
        }
        let Some(e) = self.expect.front().copied() else {
            return Err(ClientError::Unexpected {
                got: repr.kind,
                req_id: repr.req_id,
                expected: "no request awaits an answer",
            });
        };
        if e.req_id != repr.req_id || e.kind != repr.kind {
            return Err(ClientError::Unexpected {
                got: repr.kind,
                req_id: repr.req_id,
                expected: match e.kind {
                    FrameKind::ReadResp => "the oldest open request is a READ_REQ with another id",
                    _ => "the oldest open request is a SEND with another id",
                },
            });
        }
        if repr.kind == FrameKind::ReadResp && (repr.offset != e.offset || repr.len != e.len) {
            return Err(ClientError::ReadMismatch {
                req_id: e.req_id,
                got_offset: repr.offset,
                got_len: repr.len,
                offset: e.offset,
                len: e.len,
            });
        }
        self.expect.pop_front();
        Ok(match repr.kind {
            FrameKind::ReadResp => ServerFrame::ReadResp {
                offset: e.offset,
                len: e.len,
                dest: e.dest,
            },
            _ => ServerFrame::Recv,
        })
    }

    fn expect_answer(&mut self, e: Expect) -> Result<(), ClientError> {
        self.expect
            .push_back(e)
            .map_err(|_| ClientError::TooManyOutstanding)
    }
}

/// What the server driver does after a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerStep {
    /// `WRITE`: receive the next `len` bytes straight into pool
    /// `[offset, offset + len)` (already validated).
    ReceiveInto {
        /// Pool offset.
        offset: u64,
        /// Bytes to receive.
        len: u64,
    },
    /// `SEND`: receive the next `len` bytes (a persist message) into a
    /// buffer, then call [`StreamServer::on_msg`].
    ReceiveMsg {
        /// Bytes to receive.
        len: usize,
    },
    /// `READ_REQ`: send `header`, then pool `[offset, offset + len)`.
    SendFrom {
        /// The `READ_RESP` frame header.
        header: [u8; FRAME_HEADER_LEN],
        /// Pool offset.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
}

/// A planned persist message and the frame header of its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMsg<'a> {
    /// What to do; run it with [`super::execute`].
    pub plan: TargetPlan<'a>,
    /// The `RECV` frame header; send it followed by the response bytes the
    /// plan returns.
    pub header: [u8; FRAME_HEADER_LEN],
}

/// Why the server refuses a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloReject {
    /// Not a hello of this protocol.
    #[error("{0}")]
    Malformed(tcp::Error),
    /// Another protocol version.
    #[error("hello version (bytes 4..6) is {got}; this server speaks version 1")]
    BadVersion {
        /// Version sent.
        got: u16,
    },
    /// Wrong secret.
    #[error("hello secret (bytes 16..48) does not match the session secret")]
    BadSecret,
    /// Lane out of range.
    #[error("hello lane (bytes 8..12) is {lane}, but the session has {nlanes} lanes")]
    BadLane {
        /// Lane sent.
        lane: u32,
        /// Lanes of the session.
        nlanes: u32,
    },
}

impl HelloReject {
    /// The 8-byte answer to send before closing, if the client deserves one
    /// (not for bytes that are not a hello of this protocol at all).
    pub fn reply(&self) -> Option<[u8; HELLO_ACK_LEN]> {
        let status = match self {
            HelloReject::Malformed(_) => return None,
            HelloReject::BadVersion { .. } => HelloStatus::BadVersion,
            HelloReject::BadSecret => HelloStatus::Denied,
            HelloReject::BadLane { .. } => HelloStatus::BadLane,
        };
        Some(HelloAckRepr { status }.to_bytes())
    }
}

/// A protocol violation seen by the server; close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The hello was refused.
    #[error("hello refused: {0}")]
    Hello(HelloReject),
    /// A hello after the connection was accepted.
    #[error("a second hello on an accepted connection")]
    HelloAgain,
    /// A frame before an accepted hello.
    #[error("frame received before an accepted hello")]
    NotAuthenticated,
    /// The connection failed earlier.
    #[error("connection already failed")]
    Closed,
    /// A frame header while a persist message body was due.
    #[error("frame header received while the body of SEND request {req_id} was due")]
    MsgDue {
        /// Request id of the SEND.
        req_id: u64,
    },
    /// A persist message body while none was due.
    #[error("persist message received without a SEND frame announcing it")]
    NoMsgDue,
    /// Malformed frame header.
    #[error("malformed frame header: {0}")]
    Wire(tcp::Error),
    /// A frame kind only the server sends.
    #[error("client sent a {0} frame, which only the server sends")]
    WrongDirection(FrameKind),
    /// A frame or message for another lane.
    #[error("{what} names lane {got}, but this connection carries lane {lane}")]
    LaneMismatch {
        /// What named it.
        what: &'static str,
        /// Lane named.
        got: u32,
        /// Lane of the connection.
        lane: u32,
    },
    /// A SEND longer than a persist message may be.
    #[error("SEND frame len (bytes 24..32) is {len}, more than 24 + the inline buffer = {max}")]
    MsgTooLarge {
        /// The len field.
        len: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A persist message body of the wrong length.
    #[error("persist message body is {got} bytes, but its SEND frame announced {expected}")]
    MsgLen {
        /// Bytes given.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
    /// The target refused the request.
    #[error("{0}")]
    Target(TargetError),
}

/// A hello that was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelloAccepted {
    /// Lane of the connection.
    pub lane: u32,
    /// The answer to send.
    pub ack: [u8; HELLO_ACK_LEN],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitHello,
    Ready { lane: u32 },
    AwaitMsg { lane: u32, req_id: u64, len: usize },
    Closed,
}

/// The server side of one lane connection. Until a hello with the right
/// secret is accepted, no call returns a step that touches the pool; any
/// error closes the connection for good.
#[derive(Debug)]
pub struct StreamServer {
    target: Target,
    state: State,
}

impl StreamServer {
    /// A server for a new connection of the session served by `target`.
    pub fn new(target: Target) -> StreamServer {
        StreamServer {
            target,
            state: State::AwaitHello,
        }
    }

    /// The lane, once the hello is accepted.
    pub fn lane(&self) -> Option<u32> {
        match self.state {
            State::Ready { lane } | State::AwaitMsg { lane, .. } => Some(lane),
            State::AwaitHello | State::Closed => None,
        }
    }

    /// Check the 48-byte hello; the secret is compared in constant time.
    /// Refusing lanes already taken by another connection is the driver's
    /// job (it sees every connection).
    pub fn on_hello(
        &mut self,
        bytes: &[u8],
        expected_secret: &[u8; SECRET_LEN],
    ) -> Result<HelloAccepted, ServerError> {
        match self.state {
            State::AwaitHello => {}
            State::Closed => return Err(ServerError::Closed),
            State::Ready { .. } | State::AwaitMsg { .. } => {
                return self.fail(ServerError::HelloAgain);
            }
        }
        match self.check_hello(bytes, expected_secret) {
            Ok(lane) => {
                self.state = State::Ready { lane };
                Ok(HelloAccepted {
                    lane,
                    ack: HelloAckRepr {
                        status: HelloStatus::Ok,
                    }
                    .to_bytes(),
                })
            }
            Err(r) => self.fail(ServerError::Hello(r)),
        }
    }

    /// Check a 32-byte frame header and say what to do next.
    pub fn on_frame_header(&mut self, bytes: &[u8]) -> Result<ServerStep, ServerError> {
        let lane = match self.state {
            State::Ready { lane } => lane,
            State::AwaitHello => return self.fail(ServerError::NotAuthenticated),
            State::AwaitMsg { req_id, .. } => return self.fail(ServerError::MsgDue { req_id }),
            State::Closed => return Err(ServerError::Closed),
        };
        match self.frame_step(lane, bytes) {
            Ok(step) => Ok(step),
            Err(e) => self.fail(e),
        }
    }

    /// Plan the persist message announced by the last `SEND` frame (exactly
    /// its bytes). Run the plan, then send `header` and the response bytes.
    pub fn on_msg<'a>(&mut self, bytes: &'a [u8]) -> Result<ServerMsg<'a>, ServerError> {
        let (lane, req_id, len) = match self.state {
            State::AwaitMsg { lane, req_id, len } => (lane, req_id, len),
            State::Closed => return Err(ServerError::Closed),
            State::AwaitHello => return self.fail(ServerError::NotAuthenticated),
            State::Ready { .. } => return self.fail(ServerError::NoMsgDue),
        };
        if bytes.len() != len {
            return self.fail(ServerError::MsgLen {
                got: bytes.len(),
                expected: len,
            });
        }
        let plan = match self.target.handle_persist_msg(bytes) {
            Ok(p) => p,
            Err(e) => return self.fail(ServerError::Target(e)),
        };
        if plan.msg().lane != lane {
            return self.fail(ServerError::LaneMismatch {
                what: "persist message",
                got: plan.msg().lane,
                lane,
            });
        }
        self.state = State::Ready { lane };
        let header = FrameRepr {
            kind: FrameKind::Recv,
            lane,
            req_id,
            offset: 0,
            len: RESP_LEN as u64,
        }
        .to_bytes();
        Ok(ServerMsg { plan, header })
    }

    fn fail<T>(&mut self, e: ServerError) -> Result<T, ServerError> {
        self.state = State::Closed;
        Err(e)
    }

    fn check_hello(&self, bytes: &[u8], secret: &[u8; SECRET_LEN]) -> Result<u32, HelloReject> {
        let view = Hello::new_checked(bytes).map_err(HelloReject::Malformed)?;
        if view.magic() != tcp::MAGIC {
            return Err(HelloReject::Malformed(tcp::Error::BadMagic {
                what: "hello",
                got: view.magic(),
            }));
        }
        if view.version() != VERSION {
            return Err(HelloReject::BadVersion {
                got: view.version(),
            });
        }
        let hello = HelloRepr::parse(&view).map_err(HelloReject::Malformed)?;
        if !ct_eq(&hello.secret, secret) {
            return Err(HelloReject::BadSecret);
        }
        let nlanes = self.target.params().nlanes;
        if hello.lane >= nlanes {
            return Err(HelloReject::BadLane {
                lane: hello.lane,
                nlanes,
            });
        }
        Ok(hello.lane)
    }

    fn frame_step(&mut self, lane: u32, bytes: &[u8]) -> Result<ServerStep, ServerError> {
        let f = Frame::new_checked(bytes).map_err(ServerError::Wire)?;
        let repr = FrameRepr::parse(&f).map_err(ServerError::Wire)?;
        if !repr.kind.from_client() {
            return Err(ServerError::WrongDirection(repr.kind));
        }
        if repr.lane != lane {
            return Err(ServerError::LaneMismatch {
                what: "frame header",
                got: repr.lane,
                lane,
            });
        }
        match repr.kind {
            FrameKind::Write => {
                self.target
                    .check_write(lane, repr.offset, repr.len)
                    .map_err(ServerError::Target)?;
                Ok(ServerStep::ReceiveInto {
                    offset: repr.offset,
                    len: repr.len,
                })
            }
            FrameKind::ReadReq => {
                self.target
                    .check_read(lane, repr.offset, repr.len)
                    .map_err(ServerError::Target)?;
                let header = FrameRepr {
                    kind: FrameKind::ReadResp,
                    ..repr
                }
                .to_bytes();
                Ok(ServerStep::SendFrom {
                    header,
                    offset: repr.offset,
                    len: repr.len,
                })
            }
            _ => {
                let max =
                    (PERSIST_HEADER_LEN as u64).saturating_add(self.target.params().inline_max);
                let len = match usize::try_from(repr.len) {
                    Ok(len) if repr.len <= max => len,
                    _ => return Err(ServerError::MsgTooLarge { len: repr.len, max }),
                };
                self.state = State::AwaitMsg {
                    lane,
                    req_id: repr.req_id,
                    len,
                };
                Ok(ServerStep::ReceiveMsg { len })
            }
        }
    }
}

/// Compare two secrets without an early exit.
fn ct_eq(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    core::hint::black_box(diff) == 0
}
