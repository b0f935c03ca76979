//! The initiator's side of a whole TCP lane as one sans-IO machine:
//! [`StreamInitiator`] wraps the lane's [`InitiatorLane`] (what to post) and
//! its [`StreamClient`] (how operations become frames) and owns everything a
//! driver would otherwise keep between two system calls: the hello and its
//! answer, the queue of frames being written and how much of them went out,
//! the completions a stream makes up ("frame written" for a signaled WRITE
//! or a SEND), and the reassembly of what the server sends (frame headers,
//! persist responses, `READ_RESP` bodies).
//!
//! A driver is a loop, in the style of quinn-proto:
//!
//! ```text
//! lane.persist(offset, len, flags)?;               // or any other call
//! loop {
//!     let n = write(lane.poll_transmit());         // headers, messages, region ranges
//!     lane.on_transmitted(n)?;
//!     match lane.read_direct() {                   // a large READ_RESP body?
//!         Some((at, want)) => lane.on_read_direct(recv_into(dest + at, want))?,
//!         None => lane.handle_bytes(recv(&mut buf), &mut sink)?,
//!     }
//!     if let Some(result) = lane.poll_completion() { break result }
//! }
//! ```
//!
//! Region bytes are never copied by the machine: [`Chunk::Region`] names a
//! range of the caller's region for the driver to hand to the kernel, and
//! `READ_RESP` bytes go to the caller's [`ReadSink`] (or, with
//! [`read_direct`](StreamInitiator::read_direct), straight from the socket
//! into the destination).

use heapless::Deque;

use super::{
    CallError, CallKind, Completion, ConfigError, FrameBody, InitiatorLane, LaneError, LaneParams,
    OpKind, ReadDest, ServerFrame, StreamClient,
};
use crate::seal::{
    ClientHandshake, LaneKeys, LaneMode, SealError, HELLO_LEN, NONCE_LEN, PROOF_LEN,
    SERVER_HELLO_LEN,
};
use crate::wire::persist::{HEADER_LEN as MSG_HEADER_LEN, RESP_LEN};
use crate::wire::tcp::{FRAME_HEADER_LEN, HELLO_ACK_LEN, SECRET_LEN};

/// Most frames queued for writing at once; further operations stay in the
/// engine until frames went out.
pub const MAX_QUEUED_FRAMES: usize = 64;

/// A piece of what to write next, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes held by the machine (the hello, frame and message headers).
    Bytes(&'a [u8]),
    /// Local region `[offset, offset + len)`: the driver sends the caller's
    /// bytes from there, without copying them into the machine.
    Region {
        /// Offset in the local region.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

impl Chunk<'_> {
    /// Bytes of the chunk.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::Region { len, .. } => *len,
        }
    }

    /// True for a chunk of no bytes (never returned by [`Transmit`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the bytes of a `rpmem_read` go: the driver's destination (the
/// caller's buffer, or the region at the read's offset).
pub trait ReadSink {
    /// Put `bytes` at offset `at` of the read's destination (the READ's
    /// buffer offset plus what arrived of its body before). Returns false
    /// when they do not fit: the lane breaks.
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool;
}

/// A failure of the lane: the connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamLaneError {
    /// The server broke the framing, answered out of order, or refused the
    /// hello.
    #[error("{0}")]
    Stream(super::ClientError),
    /// The engine saw a completion or a response that does not fit.
    #[error("{0}")]
    Lane(LaneError),
    /// A `READ_RESP` body that does not fit the read's destination.
    #[error("READ_RESP of {len} bytes does not fit the destination of the read")]
    ReadDestination {
        /// Length of the body.
        len: u64,
    },
    /// The handshake failed: rpmemd refused the hello, or its proof does
    /// not verify (an impostor, or bytes changed on the way).
    #[error("{0}")]
    Handshake(SealError),
    /// More bytes reported written or received directly than were asked for
    /// (a driver bug).
    #[error("the driver reported {got} bytes {what}, but only {max} were due")]
    Overrun {
        /// `"written"` or `"received"`.
        what: &'static str,
        /// Bytes reported.
        got: u64,
        /// Bytes due.
        max: u64,
    },
}

impl From<LaneError> for StreamLaneError {
    fn from(e: LaneError) -> StreamLaneError {
        StreamLaneError::Lane(e)
    }
}

impl From<super::ClientError> for StreamLaneError {
    fn from(e: super::ClientError) -> StreamLaneError {
        StreamLaneError::Stream(e)
    }
}

/// A frame being written.
#[derive(Clone, Copy, Debug)]
struct OutFrame {
    header: [u8; FRAME_HEADER_LEN],
    msg: Option<[u8; MSG_HEADER_LEN]>,
    /// Region bytes that follow: `(offset, len)`.
    data: Option<(u64, u64)>,
    total: u64,
    written: u64,
    completes: Option<OpKind>,
}

impl OutFrame {
    fn new(f: &super::ClientFrame) -> OutFrame {
        let (msg, data) = match f.body {
            FrameBody::Empty => (None, None),
            FrameBody::Local { offset, len } => (None, Some((offset, len))),
            FrameBody::Message { header, inline } => (Some(header), inline),
        };
        let total = (FRAME_HEADER_LEN as u64)
            .saturating_add(msg.map_or(0, |m| m.len() as u64))
            .saturating_add(data.map_or(0, |(_, l)| l));
        OutFrame {
            header: f.header,
            msg,
            data,
            total,
            written: 0,
            completes: f.completes,
        }
    }
}

/// What the receiver is in the middle of.
#[derive(Clone, Copy, Debug)]
enum Rx {
    /// The server hello (`have` bytes of it so far).
    ServerHello {
        buf: [u8; SERVER_HELLO_LEN],
        have: usize,
    },
    /// The hello's answer (`have` bytes of it so far).
    HelloAck {
        buf: [u8; HELLO_ACK_LEN],
        have: usize,
    },
    /// A frame header.
    Header {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// A READ_RESP body.
    Read { dest: ReadDest, len: u64, got: u64 },
    /// A persist response.
    Recv { buf: [u8; RESP_LEN], have: usize },
}

impl Rx {
    fn header() -> Rx {
        Rx::Header {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        }
    }
}

/// The hello's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hello {
    /// `written` bytes of it went out.
    Sending { written: usize },
    /// Sent; the server hello is due.
    AwaitServer,
    /// `written` bytes of the client's proof went out.
    Proving { written: usize },
    /// Proof sent; the answer is due.
    AwaitAck,
    /// Accepted: frames may flow.
    Ready,
}

/// The initiator's side of one TCP lane (see the module documentation).
#[derive(Debug)]
pub struct StreamInitiator {
    engine: InitiatorLane,
    client: StreamClient,
    handshake: ClientHandshake,
    proof: [u8; PROOF_LEN],
    keys: Option<LaneKeys>,
    hello_state: Hello,
    out: Deque<OutFrame, MAX_QUEUED_FRAMES>,
    rx: Rx,
    /// The call's result, once the engine has it.
    done: Option<Result<(), LaneError>>,
    failed: Option<StreamLaneError>,
}

impl StreamInitiator {
    /// A lane that starts with the handshake of [`crate::seal`]: proving
    /// it knows `secret` (which never goes on the wire) with `client_nonce`
    /// (fresh random bytes from the driver), for a lane of `mode`. `params`
    /// must describe a stream placement lane.
    ///
    /// The machine speaks plaintext frames: on a sealed lane the driver
    /// takes the keys once connected ([`take_keys`](Self::take_keys)) and
    /// from then on seals every byte it writes and opens every record
    /// before handing its bytes in.
    pub fn new(
        params: LaneParams,
        secret: &[u8; SECRET_LEN],
        client_nonce: [u8; NONCE_LEN],
        mode: LaneMode,
    ) -> Result<StreamInitiator, ConfigError> {
        let engine = InitiatorLane::new(params)?;
        let client = StreamClient::new(params.lane);
        let handshake = ClientHandshake::new(secret, params.lane, mode, client_nonce);
        Ok(StreamInitiator {
            engine,
            client,
            handshake,
            proof: [0; PROOF_LEN],
            keys: None,
            hello_state: Hello::Sending { written: 0 },
            out: Deque::new(),
            rx: Rx::ServerHello {
                buf: [0; SERVER_HELLO_LEN],
                have: 0,
            },
            done: None,
            failed: None,
        })
    }

    /// The lane's number.
    pub fn lane(&self) -> u32 {
        self.client.lane()
    }

    /// The engine's parameters.
    pub fn params(&self) -> &LaneParams {
        self.engine.params()
    }

    /// The server accepted the hello: calls may run.
    pub fn is_connected(&self) -> bool {
        self.hello_state == Hello::Ready
    }

    /// The lane's keys, once rpmemd proved it knows them (given once). On a
    /// sealed lane everything after the hello answer goes through them.
    pub fn take_keys(&mut self) -> Option<LaneKeys> {
        self.keys.take()
    }

    /// The call in flight, if any.
    pub fn call_in_flight(&self) -> Option<CallKind> {
        self.engine.call_in_flight()
    }

    /// Why the lane broke, once it did.
    pub fn failure(&self) -> Option<StreamLaneError> {
        self.failed
    }

    /// `rpmem_persist` (see [`InitiatorLane::persist`]).
    pub fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
        self.check()?;
        self.engine.persist(offset, len, flags)
    }

    /// `rpmem_deep_persist` (see [`InitiatorLane::deep_persist`]).
    pub fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
        self.check()?;
        self.engine.deep_persist(offset, len)
    }

    /// `rpmem_flush` (see [`InitiatorLane::flush`]).
    pub fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
        self.check()?;
        self.engine.flush(offset, len, flags)
    }

    /// `rpmem_drain` (see [`InitiatorLane::drain`]).
    pub fn drain(&mut self, flags: u32) -> Result<(), CallError> {
        self.check()?;
        self.engine.drain(flags)
    }

    /// `rpmem_read` of pool `[offset, offset + len)`: the bytes go to the
    /// driver's [`ReadSink`] at offsets `0..len` (see
    /// [`InitiatorLane::read`]).
    pub fn read(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
        self.check()?;
        self.engine.read(offset, len)
    }

    fn check(&self) -> Result<(), CallError> {
        match (self.failed, self.engine.broken()) {
            (None, _) => Ok(()),
            (Some(_), Some(e)) => Err(CallError::Broken(e)),
            // `fail` breaks the engine too; this is not reached.
            (Some(_), None) => Err(CallError::Broken(LaneError::OpFailed {
                op: OpKind::Recv,
                status: 0,
            })),
        }
    }

    /// What to write next: the unwritten bytes of the hello or of the queued
    /// frames, in order, after taking every operation the engine allows (up
    /// to [`MAX_QUEUED_FRAMES`] frames). Write any prefix of it, then report
    /// how many bytes went out with [`on_transmitted`](Self::on_transmitted).
    pub fn poll_transmit(&mut self) -> Transmit<'_> {
        if self.failed.is_none() && self.hello_state == Hello::Ready {
            self.take_ops();
        }
        Transmit {
            lane: self,
            frame: 0,
            part: 0,
        }
    }

    /// True when bytes wait to be written.
    pub fn has_unsent(&self) -> bool {
        match self.hello_state {
            Hello::Sending { .. } | Hello::Proving { .. } => true,
            _ => !self.out.is_empty(),
        }
    }

    fn take_ops(&mut self) {
        while !self.out.is_full() {
            let Some(op) = self.engine.poll_op() else {
                break;
            };
            match self.client.frame(&op) {
                // Cannot be full: checked above.
                Ok(f) => {
                    let _ = self.out.push_back(OutFrame::new(&f));
                }
                Err(e) => {
                    self.fail(StreamLaneError::Stream(e));
                    return;
                }
            }
        }
    }

    /// `n` more bytes of what [`poll_transmit`](Self::poll_transmit) gave
    /// were written. A frame written whole completes its signaled WRITE or
    /// its SEND (a stream has no other send-side acknowledgement).
    pub fn on_transmitted(&mut self, mut n: u64) -> Result<(), StreamLaneError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Hello::Sending { written } = self.hello_state {
            let left = (HELLO_LEN - written) as u64;
            let take = left.min(n);
            // `take` is at most HELLO_LEN.
            let now = written + take as usize;
            self.hello_state = if now == HELLO_LEN {
                Hello::AwaitServer
            } else {
                Hello::Sending { written: now }
            };
            n -= take;
        }
        if let Hello::Proving { written } = self.hello_state {
            let left = (PROOF_LEN - written) as u64;
            let take = left.min(n);
            // `take` is at most PROOF_LEN.
            let now = written + take as usize;
            self.hello_state = if now == PROOF_LEN {
                Hello::AwaitAck
            } else {
                Hello::Proving { written: now }
            };
            n -= take;
        }
        while n > 0 {
            let Some(f) = self.out.front_mut() else {
                return Err(self.fail(StreamLaneError::Overrun {
                    what: "written",
                    got: n,
                    max: 0,
                }));
            };
            let take = f.total.saturating_sub(f.written).min(n);
            f.written += take;
            n -= take;
            if f.written >= f.total {
                let completes = f.completes;
                self.out.pop_front();
                let lane = self.lane();
                match completes {
                    Some(OpKind::Write) => self.complete(Completion::Write { lane })?,
                    Some(_) => self.complete(Completion::Send { lane })?,
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Bytes received from the server, all of them consumed: the hello's
    /// answer, frame headers and persist responses are reassembled here;
    /// `READ_RESP` body bytes go to `sink`.
    pub fn handle_bytes<S: ReadSink + ?Sized>(
        &mut self,
        mut bytes: &[u8],
        sink: &mut S,
    ) -> Result<(), StreamLaneError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !bytes.is_empty() {
            let used = self.consume(bytes, sink)?;
            bytes = bytes.get(used..).unwrap_or(&[]);
        }
        Ok(())
    }

    /// Handles a prefix of `bytes`; returns its length (at least 1).
    fn consume<S: ReadSink + ?Sized>(
        &mut self,
        bytes: &[u8],
        sink: &mut S,
    ) -> Result<usize, StreamLaneError> {
        let lane = self.lane();
        match self.rx {
            Rx::ServerHello { mut buf, have } => {
                let take = fill(&mut buf, have, bytes);
                if have + take < SERVER_HELLO_LEN {
                    self.rx = Rx::ServerHello {
                        buf,
                        have: have + take,
                    };
                    return Ok(take);
                }
                if self.hello_state != Hello::AwaitServer {
                    return Err(self.fail(StreamLaneError::Handshake(SealError::Malformed {
                        what: "server hello",
                        why: "it arrived before the client hello was sent",
                    })));
                }
                match self.handshake.on_server_hello(&buf) {
                    Ok((proof, keys)) => {
                        self.proof = proof;
                        self.keys = Some(keys);
                        self.hello_state = Hello::Proving { written: 0 };
                        self.rx = Rx::HelloAck {
                            buf: [0; HELLO_ACK_LEN],
                            have: 0,
                        };
                        Ok(take)
                    }
                    Err(e) => Err(self.fail(StreamLaneError::Handshake(e))),
                }
            }
            Rx::HelloAck { mut buf, have } => {
                let take = fill(&mut buf, have, bytes);
                if have + take < HELLO_ACK_LEN {
                    self.rx = Rx::HelloAck {
                        buf,
                        have: have + take,
                    };
                    return Ok(take);
                }
                if self.hello_state != Hello::AwaitAck {
                    return Err(self.fail(StreamLaneError::Handshake(SealError::Malformed {
                        what: "hello answer",
                        why: "it arrived before the client's proof was sent",
                    })));
                }
                if let Err(e) = self.client.on_hello_ack(&buf) {
                    return Err(self.fail(e.into()));
                }
                // On a sealed lane, nothing may follow in the clear: the
                // server sends nothing before a request, and what follows
                // the answer goes through the record layer.
                if self.handshake.mode() == LaneMode::Sealed && bytes.len() > take {
                    return Err(self.fail(StreamLaneError::Handshake(SealError::Malformed {
                        what: "hello answer",
                        why: "bytes in the clear follow it on a sealed lane",
                    })));
                }
                self.hello_state = Hello::Ready;
                self.rx = Rx::header();
                Ok(take)
            }
            Rx::Header { mut buf, have } => {
                let take = fill(&mut buf, have, bytes);
                if have + take < FRAME_HEADER_LEN {
                    self.rx = Rx::Header {
                        buf,
                        have: have + take,
                    };
                    return Ok(take);
                }
                match self.client.on_server_header(&buf) {
                    Ok(ServerFrame::Recv) => {
                        self.rx = Rx::Recv {
                            buf: [0; RESP_LEN],
                            have: 0,
                        }
                    }
                    Ok(ServerFrame::ReadResp { len, dest, .. }) => {
                        self.rx = Rx::Read { dest, len, got: 0 };
                        // A zero-length body is complete at once.
                        if len == 0 {
                            self.rx = Rx::header();
                            self.complete(Completion::Read { lane })?;
                        }
                    }
                    Err(e) => return Err(self.fail(e.into())),
                }
                Ok(take)
            }
            Rx::Recv { mut buf, have } => {
                let take = fill(&mut buf, have, bytes);
                if have + take < RESP_LEN {
                    self.rx = Rx::Recv {
                        buf,
                        have: have + take,
                    };
                    return Ok(take);
                }
                self.rx = Rx::header();
                self.complete(Completion::Recv { lane, bytes: &buf })?;
                Ok(take)
            }
            Rx::Read { dest, len, got } => {
                let take = usize::try_from(len - got)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let part = bytes.get(..take).unwrap_or(&[]);
                if let ReadDest::User { buf_offset } = dest {
                    let at = buf_offset.saturating_add(got);
                    if !sink.put(at, part) {
                        return Err(self.fail(StreamLaneError::ReadDestination { len }));
                    }
                }
                self.body_done(dest, len, got + take as u64)?;
                Ok(take)
            }
        }
    }

    /// While a `rpmem_read`'s `READ_RESP` body is being received: the
    /// destination offset of its next byte and how many are due, so that the
    /// driver may receive them straight into the destination and report them
    /// with [`on_read_direct`](Self::on_read_direct) instead of passing them
    /// through [`handle_bytes`](Self::handle_bytes).
    pub fn read_direct(&self) -> Option<(u64, u64)> {
        match self.rx {
            Rx::Read {
                dest: ReadDest::User { buf_offset },
                len,
                got,
            } if self.failed.is_none() => Some((buf_offset.saturating_add(got), len - got)),
            _ => None,
        }
    }

    /// `n` bytes of the body named by [`read_direct`](Self::read_direct)
    /// were received into the destination.
    pub fn on_read_direct(&mut self, n: u64) -> Result<(), StreamLaneError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.rx {
            Rx::Read { dest, len, got } if n <= len - got => self.body_done(dest, len, got + n),
            Rx::Read { len, got, .. } => Err(self.fail(StreamLaneError::Overrun {
                what: "received",
                got: n,
                max: len - got,
            })),
            _ => Err(self.fail(StreamLaneError::Overrun {
                what: "received",
                got: n,
                max: 0,
            })),
        }
    }

    fn body_done(&mut self, dest: ReadDest, len: u64, got: u64) -> Result<(), StreamLaneError> {
        if got >= len {
            self.rx = Rx::header();
            let lane = self.lane();
            self.complete(Completion::Read { lane })
        } else {
            self.rx = Rx::Read { dest, len, got };
            Ok(())
        }
    }

    /// The result of the call in flight: an error as soon as there is one,
    /// success once the engine is done and every frame of the call is
    /// written (a finished flush leaves nothing behind for the next call).
    pub fn poll_completion(&mut self) -> Option<Result<(), StreamLaneError>> {
        if self.done.is_none() {
            self.done = self.engine.poll_done();
        }
        match self.done {
            Some(Err(e)) => {
                self.done = None;
                Some(Err(self.failed.unwrap_or(StreamLaneError::Lane(e))))
            }
            Some(Ok(())) if self.out.is_empty() => {
                self.done = None;
                Some(Ok(()))
            }
            _ => None,
        }
    }

    fn complete(&mut self, c: Completion<'_>) -> Result<(), StreamLaneError> {
        self.engine
            .handle_completion(c)
            .map_err(|e| self.fail(StreamLaneError::Lane(e)))
    }

    /// Breaks the lane (the first cause stays) and returns the cause. The
    /// engine breaks with it, so the call in flight ends.
    fn fail(&mut self, e: StreamLaneError) -> StreamLaneError {
        let e = *self.failed.get_or_insert(e);
        if self.engine.broken().is_none() {
            let _ = self.engine.handle_completion(Completion::Failed {
                lane: self.lane(),
                op: OpKind::Recv,
                status: 0,
            });
        }
        e
    }
}

/// Copies what fits of `src` into `buf[have..]`; returns how many bytes.
fn fill(buf: &mut [u8], have: usize, src: &[u8]) -> usize {
    let room = buf.get_mut(have..).unwrap_or(&mut []);
    let take = room.len().min(src.len());
    if let (Some(d), Some(s)) = (room.get_mut(..take), src.get(..take)) {
        d.copy_from_slice(s);
    }
    take
}

/// The unwritten bytes of a lane, in order (see
/// [`StreamInitiator::poll_transmit`]).
#[derive(Debug)]
pub struct Transmit<'a> {
    lane: &'a StreamInitiator,
    frame: usize,
    /// 0 hello or frame header, 1 message header, 2 region bytes.
    part: u8,
}

impl<'a> Iterator for Transmit<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let lane: &'a StreamInitiator = self.lane;
        if lane.failed.is_some() {
            return None;
        }
        match lane.hello_state {
            Hello::Sending { written } => {
                if self.frame > 0 {
                    return None;
                }
                self.frame = 1;
                return lane.handshake.hello().get(written..).map(Chunk::Bytes);
            }
            Hello::Proving { written } => {
                if self.frame > 0 {
                    return None;
                }
                self.frame = 1;
                return lane.proof.get(written..).map(Chunk::Bytes);
            }
            Hello::AwaitServer | Hello::AwaitAck => return None,
            Hello::Ready => {}
        }
        loop {
            let f = lane.out.iter().nth(self.frame)?;
            let part = self.part;
            self.part += 1;
            if self.part > 2 {
                self.part = 0;
                self.frame += 1;
            }
            let skip = f.written;
            let hlen = FRAME_HEADER_LEN as u64;
            let mlen = f.msg.map_or(0, |_| MSG_HEADER_LEN as u64);
            let chunk = match part {
                0 if skip < hlen => f
                    .header
                    .get(usize::try_from(skip).unwrap_or(usize::MAX)..)
                    .map(Chunk::Bytes),
                1 => match &f.msg {
                    Some(m) if skip < hlen + mlen => {
                        let from = skip.saturating_sub(hlen);
                        m.get(usize::try_from(from).unwrap_or(usize::MAX)..)
                            .map(Chunk::Bytes)
                    }
                    _ => None,
                },
                2 => match f.data {
                    Some((offset, len)) => {
                        let from = skip.saturating_sub(hlen + mlen);
                        (from < len).then(|| Chunk::Region {
                            offset: offset.saturating_add(from),
                            len: len - from,
                        })
                    }
                    None => None,
                },
                _ => None,
            };
            if let Some(c) = chunk.filter(|c| !c.is_empty()) {
                return Some(c);
            }
        }
    }
}
