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

use super::{Op, OpKind, PersistMode, ReadDest, Target, TargetError, TargetPlan};
use crate::flush::CACHE_LINE;
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
    /// An operation a stream transport has no frame for.
    #[error("a stream transport (TCP) has no {0} operation")]
    Unsupported(OpKind),
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
            Op::Flush { .. } => return Err(ClientError::Unsupported(OpKind::Flush)),
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
    /// The sealed-lane hello was refused before any proof.
    #[error("hello refused: {0}")]
    HelloRefused(crate::seal::HelloRefusal),
    /// The handshake failed: the client's proof does not verify, or a
    /// record failed to open.
    #[error("{0}")]
    Seal(crate::seal::SealError),
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
    /// A driver handed in more bytes than the lane machine asked for (a
    /// driver bug).
    #[error("{got} bytes handed in where at most {due} were due")]
    TooManyBytes {
        /// Bytes due.
        due: usize,
        /// Bytes handed in.
        got: usize,
    },
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
///
/// Early write-back: a driver may write back (`flush_line`, no fence) the
/// cache lines of a WRITE body as they arrive and report it with
/// [`on_body_written_back`](Self::on_body_written_back); the flush of a
/// later `FLUSH_WRITE` persist message of the lane then skips those lines
/// (see [`Target::handle_persist_msg_written_back`]) until the lane stores
/// into the pool again. A driver that reports nothing gets the plans of
/// [`Target::handle_persist_msg`].
#[derive(Debug)]
pub struct StreamServer {
    target: Target,
    state: State,
    /// Pool range of the WRITE body just received, until the next frame.
    body: Option<(u64, u64)>,
    /// Lines `[from, to)` written back after this lane last stored into
    /// them; cleared by the next WRITE and by an inline persist.
    written_back: Option<(u64, u64)>,
}

impl StreamServer {
    /// A server for a new connection of the session served by `target`.
    pub fn new(target: Target) -> StreamServer {
        StreamServer {
            target,
            state: State::AwaitHello,
            body: None,
            written_back: None,
        }
    }

    /// The driver wrote back (`flush_line`, no fence) every cache line from
    /// the first line of the WRITE body just received up to pool offset
    /// `to` (cache-line aligned), each line only after every byte of the
    /// body in it had been received. Call it after the body and before the
    /// next frame header. Returns whether it was recorded: not without a
    /// WRITE body just received, nor for `to` unaligned or past the body's
    /// last whole line.
    ///
    /// Since the driver stores only from this lane's thread, each such line
    /// was written back after every store of this lane into it. Until the
    /// lane's next WRITE or inline persist, the flush of a `FLUSH_WRITE`
    /// persist message skips the lines recorded here (the fence always
    /// stays).
    pub fn on_body_written_back(&mut self, to: u64) -> bool {
        let line = CACHE_LINE - 1;
        let Some((start, end)) = self.body else {
            return false;
        };
        if !matches!(self.state, State::Ready { .. }) || to & line != 0 {
            return false;
        }
        let first = start & !line;
        if to <= first || to > end & !line {
            return false;
        }
        self.written_back = Some((first, to));
        true
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

    /// Accept `lane` for a connection whose handshake proved the key
    /// ([`crate::seal::ServerHandshake`]); the lane must exist.
    pub fn accept_lane(&mut self, lane: u32) -> Result<(), ServerError> {
        match self.state {
            State::AwaitHello => {}
            State::Closed => return Err(ServerError::Closed),
            State::Ready { .. } | State::AwaitMsg { .. } => {
                return self.fail(ServerError::HelloAgain);
            }
        }
        let nlanes = self.target.params().nlanes;
        if lane >= nlanes {
            return self.fail(ServerError::Hello(HelloReject::BadLane { lane, nlanes }));
        }
        self.state = State::Ready { lane };
        Ok(())
    }

    /// Lanes of the session.
    pub fn nlanes(&self) -> u32 {
        self.target.params().nlanes
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
        let planned = match self.written_back {
            Some(lines) => self.target.handle_persist_msg_written_back(bytes, lines),
            None => self.target.handle_persist_msg(bytes),
        };
        let plan = match planned {
            Ok(p) => p,
            Err(e) => return self.fail(ServerError::Target(e)),
        };
        if plan.msg().mode == PersistMode::PersistSend {
            // The plan stores the inline data: lines may be dirty again.
            self.written_back = None;
        }
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
        self.body = None;
        match repr.kind {
            FrameKind::Write => {
                self.target
                    .check_write(lane, repr.offset, repr.len)
                    .map_err(ServerError::Target)?;
                // The body stores into the pool: forget earlier write-backs.
                self.written_back = None;
                self.body = Some((repr.offset, repr.offset.saturating_add(repr.len)));
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

#[cfg(test)]
mod tests {
    //! Early write-back: the plans of a lane that reports written-back lines
    //! make every line of a persist's range durable, exactly as the full
    //! plans do, checked against a model of the cache lines.

    use super::*;
    use crate::flush::{FlushError, FlushMode, FlushOps};
    use crate::persist::{execute, Method, PersistMsgRepr, TargetMemory, TargetParams, TargetStep};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const LINES: usize = 64;
    const POOL: u64 = LINES as u64 * CACHE_LINE;
    const SECRET: [u8; SECRET_LEN] = [7; SECRET_LEN];

    /// The state of one cache line.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Line {
        /// Nothing stored since it was last made durable.
        Durable,
        /// Stored into; not written back since.
        Dirty,
        /// Written back after the last store; durable at the next fence.
        Pending,
    }

    /// The pool as cache lines.
    struct Model {
        lines: Vec<Line>,
    }

    impl Model {
        fn new() -> Model {
            Model {
                lines: vec![Line::Durable; LINES],
            }
        }

        fn index(offset: u64) -> usize {
            usize::try_from(offset / CACHE_LINE).unwrap()
        }

        /// A store into `[offset, offset + len)`.
        fn store(&mut self, offset: u64, len: u64) {
            if len == 0 {
                return;
            }
            for l in Self::index(offset)..=Self::index(offset + len - 1) {
                self.lines[l] = Line::Dirty;
            }
        }

        fn durable(&self, offset: u64, len: u64) -> bool {
            len == 0
                || (Self::index(offset)..=Self::index(offset + len - 1))
                    .all(|l| self.lines[l] == Line::Durable)
        }
    }

    impl FlushOps for Model {
        fn flush_line(&mut self, offset: u64) {
            let l = &mut self.lines[Self::index(offset)];
            if *l == Line::Dirty {
                *l = Line::Pending;
            }
        }
        fn fence(&mut self) {
            for l in &mut self.lines {
                if *l == Line::Pending {
                    *l = Line::Durable;
                }
            }
        }
        fn msync(&mut self, _: u64, _: u64) -> Result<(), FlushError> {
            unreachable!("the model target flushes CPU caches")
        }
    }

    impl TargetMemory for Model {
        fn copy_in(&mut self, offset: u64, data: &[u8]) {
            self.store(offset, data.len() as u64);
        }
    }

    fn target() -> Target {
        Target::new(TargetParams {
            nlanes: 1,
            pool_size: POOL,
            min_offset: 0,
            inline_max: POOL,
            flush_mode: FlushMode::Cpu,
            method: Method::Gpspm,
        })
        .unwrap()
    }

    fn server() -> StreamServer {
        let mut s = StreamServer::new(target());
        let hello = HelloRepr {
            version: VERSION,
            lane: 0,
            secret: SECRET,
        }
        .to_bytes();
        s.on_hello(&hello, &SECRET).unwrap();
        s
    }

    fn header(kind: FrameKind, offset: u64, len: u64) -> [u8; FRAME_HEADER_LEN] {
        FrameRepr {
            kind,
            lane: 0,
            req_id: 1,
            offset,
            len,
        }
        .to_bytes()
    }

    fn msg(mode: PersistMode, offset: u64, len: u64) -> Vec<u8> {
        let repr = PersistMsgRepr {
            mode,
            completion: false,
            lane: 0,
            offset,
            size: len,
        };
        let mut bytes = repr.to_bytes().to_vec();
        if mode == PersistMode::PersistSend {
            bytes.resize(bytes.len() + len as usize, 0xab);
        }
        bytes
    }

    /// What a lane does next.
    #[derive(Clone, Debug)]
    enum Act {
        /// A WRITE body, with the first `whole` of its whole lines written
        /// back early (reported honestly).
        Write { offset: u64, len: u64, whole: u64 },
        /// A READ.
        Read { offset: u64, len: u64 },
        /// A persist message.
        Msg {
            mode: PersistMode,
            offset: u64,
            len: u64,
        },
        /// What `rpmem_persist` with `RPMEM_PERSIST_RELAXED` sends: a WRITE
        /// (written back as `Write`), then a FLUSH_WRITE of its range.
        Persist { offset: u64, len: u64, whole: u64 },
    }

    fn range() -> impl Strategy<Value = (u64, u64)> {
        (0..POOL).prop_flat_map(|o| (Just(o), 0..=(POOL - o).min(1024)))
    }

    fn act() -> impl Strategy<Value = Act> {
        let mode = prop_oneof![
            Just(PersistMode::FlushWrite),
            Just(PersistMode::FlushWrite),
            Just(PersistMode::DeepPersist),
            Just(PersistMode::PersistSend),
        ];
        prop_oneof![
            3 => (range(), 0u64..20).prop_map(|((offset, len), whole)| Act::Write { offset, len, whole }),
            1 => range().prop_map(|(offset, len)| Act::Read { offset, len }),
            3 => (mode, range()).prop_map(|(mode, (offset, len))| Act::Msg { mode, offset, len }),
            3 => (range(), 0u64..20).prop_map(|((offset, len), whole)| Act::Persist { offset, len, whole }),
        ]
    }

    /// Runs `acts` on a lane; the driver writes back honestly. Checks after
    /// every persist that its whole range is durable, and that the plan is
    /// the full plan whenever no write-back applies. Returns how many plans
    /// skipped lines.
    fn run(acts: &[Act]) -> Result<usize, TestCaseError> {
        let mut s = server();
        let mut m = Model::new();
        let mut skipped = 0;
        let mut queue: Vec<Act> = Vec::new();
        for act in acts {
            match *act {
                Act::Persist { offset, len, whole } => {
                    queue.push(Act::Write { offset, len, whole });
                    queue.push(Act::Msg {
                        mode: PersistMode::FlushWrite,
                        offset,
                        len,
                    });
                }
                ref other => queue.push(other.clone()),
            }
        }
        for act in &queue {
            match *act {
                Act::Persist { .. } => unreachable!("expanded above"),
                Act::Write { offset, len, whole } => {
                    let step = s.on_frame_header(&header(FrameKind::Write, offset, len));
                    prop_assert_eq!(step, Ok(ServerStep::ReceiveInto { offset, len }));
                    m.store(offset, len);
                    let first = offset & !(CACHE_LINE - 1);
                    let whole_end = (offset + len) & !(CACHE_LINE - 1);
                    let to = (first + whole * CACHE_LINE).min(whole_end);
                    let mut line = first;
                    while line < to {
                        m.flush_line(line);
                        line += CACHE_LINE;
                    }
                    let recorded = s.on_body_written_back(to);
                    prop_assert_eq!(recorded, to > first);
                }
                Act::Read { offset, len } => {
                    let step = s.on_frame_header(&header(FrameKind::ReadReq, offset, len));
                    let sends = matches!(step, Ok(ServerStep::SendFrom { .. }));
                    prop_assert!(sends, "{:?}", step);
                }
                Act::Msg { mode, offset, len } => {
                    let bytes = msg(mode, offset, len);
                    let step = s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64));
                    prop_assert_eq!(step, Ok(ServerStep::ReceiveMsg { len: bytes.len() }));
                    let planned = s.on_msg(&bytes).unwrap();
                    let full = target().handle_persist_msg(&bytes).unwrap();
                    // The skipping plan differs from the full one only in
                    // where a FLUSH_WRITE's flush starts.
                    prop_assert_eq!(planned.plan.steps().len(), full.steps().len());
                    prop_assert_eq!(planned.plan.response(), full.response());
                    if mode != PersistMode::FlushWrite || s.written_back.is_none() {
                        prop_assert_eq!(&planned.plan, &full);
                    }
                    if planned.plan != full {
                        skipped += 1;
                    }
                    execute(&planned.plan, &mut m).unwrap();
                    prop_assert!(
                        m.durable(offset, len),
                        "{:?} left lines not durable: {:?}",
                        act,
                        m.lines
                    );
                }
            }
        }
        Ok(skipped)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn skipping_written_back_lines_keeps_every_persist_durable(
            acts in proptest::collection::vec(act(), 1..24)
        ) {
            run(&acts)?;
        }
    }

    /// The property above does reach plans that skip lines (often).
    #[test]
    fn the_property_exercises_skipping_plans() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = proptest::collection::vec(act(), 1..24);
        let mut skipped = 0;
        for _ in 0..300 {
            let acts = strategy.new_tree(&mut runner).unwrap().current();
            skipped += run(&acts).unwrap();
        }
        assert!(skipped > 300, "only {skipped} plans skipped lines");
    }

    #[test]
    fn a_persist_after_a_written_back_write_flushes_only_the_rest() {
        let mut s = server();
        s.on_frame_header(&header(FrameKind::Write, 100, 1000))
            .unwrap();
        // Lines 64..640 written back (the body's whole lines end at 1088).
        assert!(s.on_body_written_back(640));
        let bytes = msg(PersistMode::FlushWrite, 100, 1000);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        let planned = s.on_msg(&bytes).unwrap();
        assert!(matches!(
            planned.plan.steps(),
            [
                TargetStep::Flush {
                    mode: FlushMode::Cpu,
                    offset: 640,
                    len: 460
                },
                TargetStep::Respond(_)
            ]
        ));
        // The whole range written back: the last line is still flushed,
        // and the fence is always there.
        s.on_frame_header(&header(FrameKind::Write, 128, 128))
            .unwrap();
        assert!(s.on_body_written_back(256));
        let bytes = msg(PersistMode::FlushWrite, 128, 128);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        let planned = s.on_msg(&bytes).unwrap();
        assert!(matches!(
            planned.plan.steps(),
            [
                TargetStep::Flush {
                    offset: 192,
                    len: 64,
                    ..
                },
                TargetStep::Respond(_)
            ]
        ));
    }

    #[test]
    fn write_back_reports_that_do_not_fit_are_refused() {
        let mut s = server();
        // No WRITE body yet.
        assert!(!s.on_body_written_back(128));
        s.on_frame_header(&header(FrameKind::Write, 100, 1000))
            .unwrap();
        assert!(!s.on_body_written_back(100)); // not line aligned
        assert!(!s.on_body_written_back(64)); // nothing
        assert!(!s.on_body_written_back(1152)); // past the last whole line
        assert!(s.on_body_written_back(1088));
        // After the next frame header the body is gone.
        s.on_frame_header(&header(FrameKind::ReadReq, 0, 8))
            .unwrap();
        assert!(!s.on_body_written_back(1088));
    }

    #[test]
    fn an_inline_persist_or_a_new_write_forgets_the_write_back() {
        let mut s = server();
        s.on_frame_header(&header(FrameKind::Write, 0, 1024))
            .unwrap();
        assert!(s.on_body_written_back(1024));
        let bytes = msg(PersistMode::PersistSend, 0, 64);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        s.on_msg(&bytes).unwrap();
        let bytes = msg(PersistMode::FlushWrite, 0, 1024);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        let planned = s.on_msg(&bytes).unwrap();
        assert_eq!(planned.plan, target().handle_persist_msg(&bytes).unwrap());

        s.on_frame_header(&header(FrameKind::Write, 0, 1024))
            .unwrap();
        assert!(s.on_body_written_back(1024));
        s.on_frame_header(&header(FrameKind::Write, 2048, 64))
            .unwrap();
        let bytes = msg(PersistMode::FlushWrite, 0, 1024);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        let planned = s.on_msg(&bytes).unwrap();
        assert_eq!(planned.plan, target().handle_persist_msg(&bytes).unwrap());
    }

    /// The model check can fail: a driver that reports lines it did not
    /// write back gets a plan that leaves them dirty, and the check sees it.
    #[test]
    fn the_model_catches_a_false_report() {
        let mut s = server();
        let mut m = Model::new();
        s.on_frame_header(&header(FrameKind::Write, 0, 1024))
            .unwrap();
        m.store(0, 1024);
        assert!(s.on_body_written_back(512)); // but nothing was written back
        let bytes = msg(PersistMode::FlushWrite, 0, 1024);
        s.on_frame_header(&header(FrameKind::Send, 0, bytes.len() as u64))
            .unwrap();
        let planned = s.on_msg(&bytes).unwrap();
        execute(&planned.plan, &mut m).unwrap();
        assert!(!m.durable(0, 1024));
        assert!(m.durable(512, 512));
    }
}
