//! The target's side of a whole TCP lane as one sans-IO machine:
//! [`StreamTarget`] wraps the lane's [`StreamServer`] (hello, frame checks,
//! plans) and owns what a driver would otherwise keep between two system
//! calls: the hello and frame-header reassembly, the progress of a `WRITE`
//! body and the cache-line arithmetic that decides which of its lines go to
//! memory as they arrive (so that the flush of the lane's next `FLUSH_WRITE`
//! may skip them), the answer of each persist message and whether it may
//! wait to leave with the next ones.
//!
//! A driver is a loop of `poll → do what it says → report`:
//!
//! ```text
//! loop {
//!     match lane.poll() {
//!         Next::Recv { len }        => lane.handle_bytes(recv(len))?,
//!         Next::Claim { lane: l }   => lane.on_claim(registry.claim(l))?, // Err: the refusal's status
//!         Next::Send { bytes, hold }=> { send(bytes, hold); lane.on_sent() }
//!         Next::FlushHeld           => { send_held(); lane.on_sent() }
//!         Next::SendPool { header, offset, len } => { send(header, pool[offset..]); lane.on_sent() }
//!         Next::Body(piece)         => { recv(piece.len); store(piece); lane.on_stored()? }
//!         Next::WriteBack { from, to } => { write_back(from, to); lane.on_written_back() }
//!         Next::Msg { len }         => { let plan = lane.on_msg(recv(len))?;
//!                                        lane.on_answer(execute(plan)?, more_queued)? }
//!         Next::Closed              => break,
//!     }
//! }
//! ```

use heapless::Vec;

use super::{ServerError, ServerStep, StreamServer, Target, TargetPlan};
use crate::flush::CACHE_LINE;
use crate::seal::{
    LaneKeys, LaneMode, ServerHandshake, HELLO_LEN, NONCE_LEN, PROOF_LEN, SERVER_HELLO_LEN,
};
use crate::wire::persist::RESP_LEN;
use crate::wire::tcp::{HelloAckRepr, HelloStatus, FRAME_HEADER_LEN, HELLO_ACK_LEN, SECRET_LEN};

/// Bytes of one answer to a persist message: the `RECV` frame header and the
/// 8-byte response.
pub const ANSWER_LEN: usize = FRAME_HEADER_LEN + RESP_LEN;

/// Most bytes the machine itself hands out in one send (the server hello).
const OUT_CAP: usize = SERVER_HELLO_LEN;

/// A piece of a `WRITE` body: receive its `len` bytes, then store them at
/// pool `offset`: `[offset, whole_from)` and `[whole_to, offset + len)` with
/// ordinary stores, the whole cache lines `[whole_from, whole_to)` with
/// non-temporal stores (or ordinary stores followed by a write-back of those
/// lines, no fence). Then report [`StreamTarget::on_stored`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyPiece {
    /// Pool offset of the piece's first byte (validated by the core).
    pub offset: u64,
    /// Bytes of the piece.
    pub len: u64,
    /// Start of the whole lines to stream.
    pub whole_from: u64,
    /// End of the whole lines to stream.
    pub whole_to: u64,
}

impl BodyPiece {
    /// True when nothing of the piece is to be streamed: its bytes may be
    /// received straight into the pool.
    pub fn is_plain(&self) -> bool {
        self.whole_from >= self.whole_to
    }
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Receive exactly `len` bytes (the hello, a frame header) and hand them
    /// to [`StreamTarget::handle_bytes`].
    Recv {
        /// Bytes due.
        len: usize,
    },
    /// The hello names `lane` and carries the right secret: claim the lane
    /// (refusing a second connection for it is the driver's job: it sees
    /// every connection), then report [`StreamTarget::on_claim`].
    Claim {
        /// The lane.
        lane: u32,
    },
    /// Send `bytes`, then report [`StreamTarget::on_sent`]. With `hold`, the
    /// bytes (an answer to a persist message) may wait to leave in one send
    /// with what follows, but never past a wait for the socket nor past
    /// [`Next::FlushHeld`].
    Send {
        /// What to send.
        bytes: &'a [u8],
        /// May be held back.
        hold: bool,
    },
    /// Send every answer held back now (a `WRITE` body or a `READ_RESP`
    /// follows, which may take long), then report
    /// [`StreamTarget::on_sent`].
    FlushHeld,
    /// `READ_REQ`: send `header`, then pool `[offset, offset + len)`
    /// (validated), then report [`StreamTarget::on_sent`].
    SendPool {
        /// The `READ_RESP` frame header.
        header: [u8; FRAME_HEADER_LEN],
        /// Pool offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// Receive and store the next piece of a `WRITE` body.
    Body(BodyPiece),
    /// Write back (no fence) the cache lines of `[from, to)`, the body's
    /// partial first line, now that its bytes are stored; then report
    /// [`StreamTarget::on_written_back`].
    WriteBack {
        /// First line.
        from: u64,
        /// End of the line.
        to: u64,
    },
    /// Receive a persist message of exactly `len` bytes into a buffer and
    /// hand it to [`StreamTarget::on_msg`].
    Msg {
        /// Bytes due.
        len: usize,
    },
    /// The connection is over (an error, or a refused hello whose answer was
    /// sent): close it.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    Hello {
        buf: [u8; HELLO_LEN],
        have: usize,
    },
    /// The client's proof of the key.
    Proof {
        buf: [u8; PROOF_LEN],
        have: usize,
    },
    Claim {
        lane: u32,
        ack: [u8; HELLO_ACK_LEN],
    },
    /// Bytes in `out` to send, then go on with `then`.
    Send {
        len: usize,
        hold: bool,
        then: After,
    },
    Header {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    FlushHeld {
        then: Pending,
    },
    SendPool {
        header: [u8; FRAME_HEADER_LEN],
        offset: u64,
        len: u64,
    },
    Body(Body),
    WriteBack(Body),
    Msg {
        len: usize,
    },
    /// A plan is being executed; its answer is due.
    Answer,
    Closed,
}

/// Where a send leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Header,
    Proof,
    Closed,
}

/// What a flush of held answers precedes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Body(Body),
    SendPool {
        header: [u8; FRAME_HEADER_LEN],
        offset: u64,
        len: u64,
    },
}

/// A `WRITE` body in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Body {
    offset: u64,
    end: u64,
    /// Next byte due.
    pos: u64,
    /// Whole lines of the body (its first line counts when the body's
    /// bytes of it end the line): `[lines_from, lines_to)`.
    lines_from: u64,
    lines_to: u64,
    /// The body has whole lines.
    has_lines: bool,
}

impl Body {
    fn first(&self) -> u64 {
        self.offset & !(CACHE_LINE - 1)
    }
}

/// The target's side of one TCP lane (see the module documentation).
#[derive(Debug)]
pub struct StreamTarget {
    server: StreamServer,
    secret: [u8; SECRET_LEN],
    server_nonce: [u8; NONCE_LEN],
    mode: LaneMode,
    handshake: Option<ServerHandshake>,
    keys: Option<LaneKeys>,
    /// Store the whole lines of WRITE bodies with non-temporal stores.
    stream: bool,
    /// Bytes of a streamed body piece.
    piece: u64,
    /// Answers may be held back.
    hold: bool,
    state: In,
    /// Bytes of the send in progress.
    out: Vec<u8, OUT_CAP>,
    /// The `RECV` header of the message being executed.
    answer_header: [u8; FRAME_HEADER_LEN],
}

impl StreamTarget {
    /// A lane of the session served by `target`, whose client must prove
    /// it knows `secret` ([`crate::seal`]: the handshake answers with
    /// `server_nonce`, fresh random bytes from the driver, and accepts only
    /// lanes of `mode`). With `stream`, the whole cache lines of `WRITE`
    /// bodies are handed out to be stored non-temporally in pieces of
    /// `piece` bytes (rounded down to whole lines, at least one), and the
    /// flush of the lane's next `FLUSH_WRITE` skips them; without, every
    /// body is one plain piece. With `hold`, answers may wait for the next
    /// ones.
    ///
    /// The machine speaks plaintext frames: on a sealed lane the driver
    /// takes the keys after the claim ([`take_keys`](Self::take_keys)) and
    /// from then on opens every record before handing its bytes in, and
    /// seals every byte it sends.
    pub fn new(
        target: Target,
        secret: [u8; SECRET_LEN],
        server_nonce: [u8; NONCE_LEN],
        mode: LaneMode,
        stream: bool,
        piece: u64,
        hold: bool,
    ) -> StreamTarget {
        StreamTarget {
            server: StreamServer::new(target),
            secret,
            server_nonce,
            mode,
            handshake: None,
            keys: None,
            stream,
            piece: (piece & !(CACHE_LINE - 1)).max(CACHE_LINE),
            hold,
            state: In::Hello {
                buf: [0; HELLO_LEN],
                have: 0,
            },
            out: Vec::new(),
            answer_header: [0; FRAME_HEADER_LEN],
        }
    }

    /// The lane, once the hello is accepted.
    pub fn lane(&self) -> Option<u32> {
        self.server.lane()
    }

    /// The lane mode this machine accepts.
    pub fn mode(&self) -> LaneMode {
        self.mode
    }

    /// The lane's keys, once the client's proof verified (given once).
    /// Everything after the hello answer goes through them on a sealed
    /// lane.
    pub fn take_keys(&mut self) -> Option<LaneKeys> {
        self.keys.take()
    }

    /// True between frames: the client may close the connection here
    /// without losing anything.
    pub fn between_frames(&self) -> bool {
        matches!(self.state, In::Header { have: 0, .. })
    }

    /// What to do next.
    pub fn poll(&self) -> Next<'_> {
        match self.state {
            In::Hello { have, .. } => Next::Recv {
                len: HELLO_LEN - have,
            },
            In::Proof { have, .. } => Next::Recv {
                len: PROOF_LEN - have,
            },
            In::Header { have, .. } => Next::Recv {
                len: FRAME_HEADER_LEN - have,
            },
            In::Claim { lane, .. } => Next::Claim { lane },
            In::Send { len, hold, .. } => Next::Send {
                bytes: self.out.get(..len).unwrap_or(&[]),
                hold,
            },
            In::FlushHeld { .. } => Next::FlushHeld,
            In::SendPool {
                header,
                offset,
                len,
            } => Next::SendPool {
                header,
                offset,
                len,
            },
            In::Body(b) => Next::Body(self.next_piece(&b)),
            In::WriteBack(b) => Next::WriteBack {
                from: b.first(),
                to: b.first().saturating_add(CACHE_LINE),
            },
            In::Msg { len } => Next::Msg { len },
            In::Answer | In::Closed => Next::Closed,
        }
    }

    fn next_piece(&self, b: &Body) -> BodyPiece {
        if !self.stream {
            return BodyPiece {
                offset: b.pos,
                len: b.end - b.pos,
                whole_from: b.end,
                whole_to: b.end,
            };
        }
        // The first piece reaches one piece past the first whole line, so
        // that every later piece starts on a line.
        let next = if b.pos < b.lines_from {
            b.lines_from.saturating_add(self.piece).min(b.end)
        } else {
            b.pos.saturating_add(self.piece).min(b.end)
        };
        let whole_from = b.lines_from.clamp(b.pos, next);
        let whole_to = b.lines_to.clamp(whole_from, next);
        BodyPiece {
            offset: b.pos,
            len: next - b.pos,
            whole_from,
            whole_to,
        }
    }

    /// Bytes received for [`Next::Recv`] (at most the bytes it named; a
    /// short piece is kept until the rest arrives). An error closes the
    /// connection; a refused hello's answer is still to be sent
    /// ([`Next::Send`], then [`Next::Closed`]).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        let r = self.take_bytes(bytes);
        if r.is_err() && !matches!(self.state, In::Send { .. }) {
            self.state = In::Closed;
        }
        r
    }

    fn take_bytes(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        match self.state {
            In::Hello { mut buf, have } => {
                let take = fill(&mut buf, have, bytes)?;
                if have + take < HELLO_LEN {
                    self.state = In::Hello {
                        buf,
                        have: have + take,
                    };
                    return Ok(());
                }
                let nlanes = self.server.nlanes();
                match ServerHandshake::on_hello(
                    &self.secret,
                    &buf,
                    self.server_nonce,
                    nlanes,
                    self.mode,
                ) {
                    Ok((hs, answer)) => {
                        self.handshake = Some(hs);
                        self.out.clear();
                        let _ = self.out.extend_from_slice(&answer);
                        self.state = In::Send {
                            len: answer.len(),
                            hold: false,
                            then: After::Proof,
                        };
                        Ok(())
                    }
                    Err(r) => {
                        match r.reply() {
                            Some(b) => self.send_then_close(&b),
                            None => self.state = In::Closed,
                        }
                        Err(ServerError::HelloRefused(r))
                    }
                }
            }
            In::Proof { mut buf, have } => {
                let take = fill(&mut buf, have, bytes)?;
                if have + take < PROOF_LEN {
                    self.state = In::Proof {
                        buf,
                        have: have + take,
                    };
                    return Ok(());
                }
                let Some(hs) = self.handshake.take() else {
                    self.state = In::Closed;
                    return Err(ServerError::Closed);
                };
                match hs.on_proof(&buf) {
                    Ok(keys) => {
                        self.server.accept_lane(hs.lane())?;
                        self.keys = Some(keys);
                        self.state = In::Claim {
                            lane: hs.lane(),
                            ack: HelloAckRepr {
                                status: HelloStatus::Ok,
                            }
                            .to_bytes(),
                        };
                        Ok(())
                    }
                    Err(e) => {
                        self.close_with(Some(
                            HelloAckRepr {
                                status: HelloStatus::Denied,
                            }
                            .to_bytes(),
                        ));
                        Err(ServerError::Seal(e))
                    }
                }
            }
            In::Header { mut buf, have } => {
                let take = fill(&mut buf, have, bytes)?;
                if have + take < FRAME_HEADER_LEN {
                    self.state = In::Header {
                        buf,
                        have: have + take,
                    };
                    return Ok(());
                }
                let step = match self.server.on_frame_header(&buf) {
                    Ok(s) => s,
                    Err(e) => {
                        self.state = In::Closed;
                        return Err(e);
                    }
                };
                self.state = match step {
                    ServerStep::ReceiveInto { offset, len } => {
                        let body = self.body(offset, len);
                        In::FlushHeld {
                            then: Pending::Body(body),
                        }
                    }
                    ServerStep::ReceiveMsg { len } => In::Msg { len },
                    ServerStep::SendFrom {
                        header,
                        offset,
                        len,
                    } => In::FlushHeld {
                        then: Pending::SendPool {
                            header,
                            offset,
                            len,
                        },
                    },
                };
                Ok(())
            }
            _ => {
                self.state = In::Closed;
                Err(ServerError::Closed)
            }
        }
    }

    fn body(&self, offset: u64, len: u64) -> Body {
        let line = CACHE_LINE - 1;
        let end = offset.saturating_add(len);
        let first = offset & !line;
        let first_end = first.saturating_add(CACHE_LINE);
        let lines_from = if offset == first {
            offset
        } else {
            first_end.min(end)
        };
        Body {
            offset,
            end,
            pos: offset,
            lines_from,
            lines_to: (end & !line).max(lines_from),
            has_lines: offset == first || end >= first_end,
        }
    }

    /// The hello's lane was claimed (`Ok`), or refused with the status to
    /// answer, if any (`Err`; then the answer is sent and the connection
    /// closes).
    pub fn on_claim(
        &mut self,
        claimed: Result<(), Option<HelloStatus>>,
    ) -> Result<(), ServerError> {
        let In::Claim { ack, .. } = self.state else {
            self.state = In::Closed;
            return Err(ServerError::Closed);
        };
        match claimed {
            Ok(()) => {
                self.out.clear();
                let _ = self.out.extend_from_slice(&ack);
                self.state = In::Send {
                    len: ack.len(),
                    hold: false,
                    then: After::Header,
                };
            }
            Err(status) => self.close_with(status.map(|s| HelloAckRepr { status: s }.to_bytes())),
        }
        Ok(())
    }

    fn close_with(&mut self, reply: Option<[u8; HELLO_ACK_LEN]>) {
        match reply {
            Some(r) => self.send_then_close(&r),
            None => self.state = In::Closed,
        }
    }

    fn send_then_close(&mut self, bytes: &[u8]) {
        self.out.clear();
        let _ = self.out.extend_from_slice(bytes);
        self.state = In::Send {
            len: self.out.len(),
            hold: false,
            then: After::Closed,
        };
    }

    /// What [`Next::Send`], [`Next::FlushHeld`] or [`Next::SendPool`] named
    /// was sent (or queued to be sent, for held bytes).
    pub fn on_sent(&mut self) {
        self.state = match self.state {
            In::Send { then, .. } => match then {
                After::Header => header(),
                After::Proof => In::Proof {
                    buf: [0; PROOF_LEN],
                    have: 0,
                },
                After::Closed => In::Closed,
            },
            In::FlushHeld {
                then: Pending::Body(b),
            } => self.after_piece(b),
            In::FlushHeld {
                then:
                    Pending::SendPool {
                        header,
                        offset,
                        len,
                    },
            } => In::SendPool {
                header,
                offset,
                len,
            },
            In::SendPool { .. } => header(),
            other => other,
        };
    }

    /// The piece [`Next::Body`] named was received and stored as it said.
    pub fn on_stored(&mut self) -> Result<(), ServerError> {
        let In::Body(b) = self.state else {
            self.state = In::Closed;
            return Err(ServerError::Closed);
        };
        let piece = self.next_piece(&b);
        let b = Body {
            pos: piece.offset.saturating_add(piece.len),
            ..b
        };
        self.state = self.after_piece(b);
        Ok(())
    }

    /// The state after `b` received up to `b.pos`.
    fn after_piece(&mut self, b: Body) -> In {
        if b.pos < b.end {
            return In::Body(b);
        }
        if !self.stream {
            #[cfg(rpmem_mutants)]
            if crate::flush::mutants::active(
                crate::flush::mutants::Mutant::PlainBodyCountedWrittenBack,
            ) {
                self.record_written_back(&b);
            }
            return header();
        }
        #[cfg(rpmem_mutants)]
        if crate::flush::mutants::active(crate::flush::mutants::Mutant::WrittenBackLineNotFlushed) {
            self.record_written_back(&b);
            return header();
        }
        if b.offset != b.first() && b.has_lines {
            // The body's first line, partly the body's: written back now
            // that its bytes are stored.
            return In::WriteBack(b);
        }
        self.record_written_back(&b);
        header()
    }

    /// [`Next::WriteBack`] was done.
    pub fn on_written_back(&mut self) {
        if let In::WriteBack(b) = self.state {
            self.record_written_back(&b);
            self.state = header();
        }
    }

    /// Every line from the body's first up to `lines_to` went to memory
    /// (streamed, or written back after its bytes were stored): the core's
    /// plan for the lane's next FLUSH_WRITE may skip them.
    fn record_written_back(&mut self, b: &Body) {
        if b.has_lines && b.lines_to > b.first() {
            self.server.on_body_written_back(b.lines_to);
        }
    }

    /// Plan the persist message [`Next::Msg`] asked for (exactly its bytes).
    /// Execute the plan ([`super::execute`]), then report its response with
    /// [`on_answer`](Self::on_answer); until then [`poll`](Self::poll) has
    /// nothing to say ([`Next::Closed`]: no other step may run meanwhile).
    pub fn on_msg<'a>(&mut self, bytes: &'a [u8]) -> Result<TargetPlan<'a>, ServerError> {
        if !matches!(self.state, In::Msg { .. }) {
            self.state = In::Closed;
            return Err(ServerError::NoMsgDue);
        }
        match self.server.on_msg(bytes) {
            Ok(m) => {
                self.answer_header = m.header;
                self.state = In::Answer;
                Ok(m.plan)
            }
            Err(e) => {
                self.state = In::Closed;
                Err(e)
            }
        }
    }

    /// The plan of the last message was executed (its data is durable) and
    /// gives `resp`. `more_queued`: the next frame's bytes are already here,
    /// so the answer may wait to leave with the next ones.
    pub fn on_answer(
        &mut self,
        resp: [u8; RESP_LEN],
        more_queued: bool,
    ) -> Result<(), ServerError> {
        if self.state != In::Answer {
            self.state = In::Closed;
            return Err(ServerError::Closed);
        }
        self.out.clear();
        let _ = self.out.extend_from_slice(&self.answer_header);
        let _ = self.out.extend_from_slice(&resp);
        self.state = In::Send {
            len: ANSWER_LEN,
            hold: self.hold && more_queued,
            then: After::Header,
        };
        Ok(())
    }
}

fn header() -> In {
    In::Header {
        buf: [0; FRAME_HEADER_LEN],
        have: 0,
    }
}

/// Copies `src` into `buf[have..]`; more bytes than are due is an error.
fn fill(buf: &mut [u8], have: usize, src: &[u8]) -> Result<usize, ServerError> {
    let room = buf.get_mut(have..).unwrap_or(&mut []);
    match room.get_mut(..src.len()) {
        Some(d) => {
            d.copy_from_slice(src);
            Ok(src.len())
        }
        None => Err(ServerError::TooManyBytes {
            due: room.len(),
            got: src.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flush::FlushMode;
    use crate::persist::{Method, PersistMode, PersistMsgRepr, TargetParams};
    use crate::seal::ClientHandshake;
    use crate::wire::tcp::{FrameKind, FrameRepr};
    use proptest::prelude::*;
    use std::vec::Vec as StdVec;

    const SECRET: [u8; SECRET_LEN] = [3; SECRET_LEN];
    const POOL: u64 = 1 << 20;

    fn lane(stream: bool, hold: bool) -> StreamTarget {
        let target = Target::new(TargetParams {
            nlanes: 2,
            pool_size: POOL,
            min_offset: 0,
            inline_max: 4096,
            flush_mode: FlushMode::Cpu,
            method: Method::Gpspm,
        })
        .unwrap();
        StreamTarget::new(
            target,
            SECRET,
            [8; 32],
            LaneMode::Sealed,
            stream,
            4096,
            hold,
        )
    }

    fn client(lane: u32, secret: [u8; SECRET_LEN]) -> ClientHandshake {
        ClientHandshake::new(&secret, lane, LaneMode::Sealed, [6; 32])
    }

    fn hello(lane: u32, secret: [u8; SECRET_LEN]) -> [u8; HELLO_LEN] {
        *client(lane, secret).hello()
    }

    /// The whole handshake of a client with `secret` for `lane`, up to the
    /// claim; the client's own check of the server hello is skipped when
    /// the secret differs (it would refuse), so that the server's check of
    /// the proof is what is tested.
    fn handshake(
        l: &mut StreamTarget,
        lane: u32,
        secret: [u8; SECRET_LEN],
    ) -> Result<(), ServerError> {
        let c = client(lane, secret);
        l.handle_bytes(c.hello())?;
        let Next::Send { bytes, .. } = l.poll() else {
            panic!("{:?}", l.poll());
        };
        let sh: [u8; SERVER_HELLO_LEN] = bytes.try_into().unwrap();
        l.on_sent();
        let proof = match c.on_server_hello(&sh) {
            Ok((p, _)) => p,
            Err(_) => [0x77; PROOF_LEN],
        };
        assert_eq!(l.poll(), Next::Recv { len: PROOF_LEN });
        l.handle_bytes(&proof)
    }

    fn frame(kind: FrameKind, offset: u64, len: u64) -> [u8; FRAME_HEADER_LEN] {
        FrameRepr {
            kind,
            lane: 1,
            req_id: 9,
            offset,
            len,
        }
        .to_bytes()
    }

    fn connected(stream: bool, hold: bool) -> StreamTarget {
        let mut l = lane(stream, hold);
        assert_eq!(l.poll(), Next::Recv { len: HELLO_LEN });
        // In two pieces: the rest is asked for.
        let h = hello(1, SECRET);
        l.handle_bytes(&h[..10]).unwrap();
        assert_eq!(
            l.poll(),
            Next::Recv {
                len: HELLO_LEN - 10
            }
        );
        let mut l = lane(stream, hold);
        handshake(&mut l, 1, SECRET).unwrap();
        assert_eq!(l.poll(), Next::Claim { lane: 1 });
        assert!(l.take_keys().is_some());
        l.on_claim(Ok(())).unwrap();
        assert!(
            matches!(l.poll(), Next::Send { hold: false, bytes } if bytes.len() == HELLO_ACK_LEN)
        );
        l.on_sent();
        assert!(l.between_frames());
        assert_eq!(l.lane(), Some(1));
        l
    }

    #[test]
    fn a_refused_claim_answers_and_closes() {
        let mut l = lane(true, true);
        handshake(&mut l, 0, SECRET).unwrap();
        l.on_claim(Err(Some(HelloStatus::BadLane))).unwrap();
        let Next::Send { bytes, .. } = l.poll() else {
            panic!("{:?}", l.poll());
        };
        assert_eq!(
            bytes,
            HelloAckRepr {
                status: HelloStatus::BadLane
            }
            .to_bytes()
        );
        l.on_sent();
        assert_eq!(l.poll(), Next::Closed);
        // A refusal without an answer closes at once.
        let mut l = lane(true, true);
        handshake(&mut l, 0, SECRET).unwrap();
        l.on_claim(Err(None)).unwrap();
        assert_eq!(l.poll(), Next::Closed);
    }

    #[test]
    fn a_wrong_secret_is_answered_then_closed() {
        let mut l = lane(true, true);
        let e = handshake(&mut l, 0, [4; SECRET_LEN]).unwrap_err();
        assert_eq!(e, ServerError::Seal(crate::seal::SealError::ClientProof));
        assert_eq!(l.take_keys().map(|_| ()), None);
        let Next::Send { bytes, .. } = l.poll() else {
            panic!("{:?}", l.poll());
        };
        assert_eq!(
            bytes,
            HelloAckRepr {
                status: HelloStatus::Denied
            }
            .to_bytes()
        );
        l.on_sent();
        assert_eq!(l.poll(), Next::Closed);
        assert!(l.handle_bytes(&[0; 8]).is_err());
    }

    #[test]
    fn answers_may_be_held_only_while_more_is_queued_and_go_before_a_read() {
        let mut l = connected(false, true);
        let msg = PersistMsgRepr {
            mode: PersistMode::FlushWrite,
            completion: false,
            lane: 1,
            offset: 0,
            size: 64,
        }
        .to_bytes();
        for more in [true, false] {
            l.handle_bytes(&frame(FrameKind::Send, 0, msg.len() as u64))
                .unwrap();
            assert_eq!(l.poll(), Next::Msg { len: msg.len() });
            let plan = l.on_msg(&msg).unwrap();
            let resp = plan.response();
            l.on_answer(resp, more).unwrap();
            let Next::Send { bytes, hold } = l.poll() else {
                panic!("{:?}", l.poll());
            };
            assert_eq!(bytes.len(), ANSWER_LEN);
            assert_eq!(&bytes[FRAME_HEADER_LEN..], &resp);
            assert_eq!(hold, more);
            l.on_sent();
        }
        // A READ_REQ: held answers are flushed before its READ_RESP.
        l.handle_bytes(&frame(FrameKind::ReadReq, 128, 64)).unwrap();
        assert_eq!(l.poll(), Next::FlushHeld);
        l.on_sent();
        assert!(matches!(
            l.poll(),
            Next::SendPool {
                offset: 128,
                len: 64,
                ..
            }
        ));
        l.on_sent();
        assert!(l.between_frames());
        // Without holding, no answer is ever held.
        let mut l = connected(false, false);
        l.handle_bytes(&frame(FrameKind::Send, 0, msg.len() as u64))
            .unwrap();
        let plan = l.on_msg(&msg).unwrap();
        let resp = plan.response();
        l.on_answer(resp, true).unwrap();
        assert!(matches!(l.poll(), Next::Send { hold: false, .. }));
    }

    /// The pieces of a streamed body: contiguous, every later piece starts
    /// on a line, the whole lines lie inside the body's whole lines, and
    /// the partial first line is written back at the end.
    #[test]
    fn streamed_body_pieces_cover_the_body() {
        for (offset, len) in [
            (0u64, 64u64),
            (3, 10),
            (60, 200),
            (7, 150_000),
            (64, 8192),
            (100, 0),
        ] {
            let mut l = connected(true, true);
            l.handle_bytes(&frame(FrameKind::Write, offset, len))
                .unwrap();
            assert_eq!(l.poll(), Next::FlushHeld);
            l.on_sent();
            let mut pos = offset;
            let mut wrote_back = false;
            loop {
                match l.poll() {
                    Next::Body(p) => {
                        assert_eq!(p.offset, pos);
                        assert!(p.len > 0);
                        assert!(p.whole_from >= p.offset && p.whole_to <= p.offset + p.len);
                        if !p.is_plain() {
                            assert_eq!(p.whole_from % CACHE_LINE, 0);
                            assert_eq!(p.whole_to % CACHE_LINE, 0);
                        }
                        if pos != offset {
                            assert_eq!(p.offset % CACHE_LINE, 0, "{p:?}");
                        }
                        pos += p.len;
                        l.on_stored().unwrap();
                    }
                    Next::WriteBack { from, to } => {
                        assert_eq!(from, offset & !(CACHE_LINE - 1));
                        assert_eq!(to, from + CACHE_LINE);
                        assert_ne!(offset % CACHE_LINE, 0);
                        wrote_back = true;
                        l.on_written_back();
                    }
                    Next::Recv {
                        len: FRAME_HEADER_LEN,
                    } => break,
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(pos, offset + len);
            let end = offset + len;
            let first_end = (offset & !(CACHE_LINE - 1)) + CACHE_LINE;
            assert_eq!(
                wrote_back,
                offset % CACHE_LINE != 0 && end >= first_end,
                "{offset} {len}"
            );
        }
    }

    proptest! {
        /// Whatever a client sends, in whatever pieces, the machine asks
        /// for bytes, hands out steps or closes; it never panics, never
        /// asks for more than a message's or a body's bytes, and is closed
        /// for good after an error.
        #[test]
        fn hostile_clients_never_panic(
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            valid_hello: bool,
            stream: bool,
        ) {
            let mut l = lane(stream, true);
            let mut input: StdVec<u8> = StdVec::new();
            if valid_hello {
                // The whole handshake; the junk then comes as frames.
                handshake(&mut l, 1, SECRET).unwrap();
            }
            input.extend_from_slice(&junk);
            let mut at = 0usize;
            let mut failed = false;
            for _ in 0..10_000 {
                let rest = &input[at.min(input.len())..];
                match l.poll() {
                    Next::Recv { len } => {
                        let n = len.min(rest.len()).min(7);
                        if n == 0 { break; }
                        at += n;
                        if l.handle_bytes(&rest[..n]).is_err() { failed = true; }
                    }
                    Next::Claim { .. } => l.on_claim(Ok(())).unwrap(),
                    Next::Send { .. } | Next::FlushHeld | Next::SendPool { .. } => l.on_sent(),
                    Next::Body(p) => {
                        let n = usize::try_from(p.len).unwrap();
                        if rest.len() < n { break; }
                        at += n;
                        l.on_stored().unwrap();
                    }
                    Next::WriteBack { .. } => l.on_written_back(),
                    Next::Msg { len } => {
                        prop_assert!(len <= 24 + 4096);
                        if rest.len() < len { break; }
                        at += len;
                        match l.on_msg(&rest[..len]) {
                            Ok(plan) => {
                                let resp = plan.response();
                                l.on_answer(resp, false).unwrap();
                            }
                            Err(_) => failed = true,
                        }
                    }
                    Next::Closed => break,
                }
                if failed {
                    // Only a refused hello's answer may still go out.
                    if let Next::Send { .. } = l.poll() {
                        l.on_sent();
                    }
                    prop_assert_eq!(l.poll(), Next::Closed);
                    prop_assert!(l.handle_bytes(&[0]).is_err());
                    break;
                }
            }
        }
    }
}
