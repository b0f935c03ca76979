//! The TCP placement: each lane is the core's two stream machines,
//! [`StreamInitiator`] (what `rpmem`'s TCP lane drives) and
//! [`StreamTarget`] (what `rpmemd`'s TCP worker drives), over a modelled
//! byte stream per direction. Bytes are delivered in order, in segments of
//! 1 to `seg_max` bytes drawn per transfer; every transfer is a step, so a
//! crash (or an injected connection reset) may cut a stream at any byte.
//!
//! The driver here does what rpmemd's `drive` / `receive_piece` do, on the
//! simulated [`Memory`]:
//!
//! * a plain body piece is received straight into the pool (the kernel's
//!   copy: CPU stores into the cache), segment by segment as it arrives;
//! * a streamed piece is received whole into a buffer, then stored: the
//!   bytes around its whole lines with CPU stores, the whole lines with
//!   non-temporal stores ([`Memory::nt_store_line`]: write-combining
//!   buffers, durable at the next fence);
//! * the partial first line's write-back is `flush_line` per line, no
//!   fence;
//! * a persist message is received whole, planned by the machine (which
//!   lets the flush of a `FLUSH_WRITE` skip the lines it recorded as
//!   written back), its plan executed step by step with a crash point
//!   between two steps, and its answer sent only after the whole plan, as
//!   `rpmem_core::persist::execute` does in rpmemd;
//! * held answers leave before anything else is sent and before the target
//!   waits for input (rpmemd's `SockIo`).
//!
//! Lanes are sealed, as rpmem and rpmemd make them by default: the machines
//! run the handshake (nonces from the seed), and after the hello answer
//! every transfer is sealed into AES-256-GCM records by the sending side's
//! key and opened by the receiving side's [`Inbound`] before the machine
//! sees it (the streams below carry the opened bytes; a transfer is whole
//! records, cut at the random segment sizes).

use std::collections::VecDeque;

use rpmem_core::flush::FlushOps;
use rpmem_core::persist::{
    BodyPiece, Chunk, Next, ReadSink, StreamInitiator, StreamTarget, TargetStep,
};
use rpmem_core::seal::{Inbound, LaneKeys, Sealer, INBOUND_BUF_LEN, MAX_RECORD};

use super::{fnv, idx, lane_idx, Engine, Failure, SimError, World};
use crate::memory::LINE;

/// The target's side of one TCP lane and the two streams between the
/// machines.
#[derive(Debug)]
pub(super) struct Conn {
    target: StreamTarget,
    /// Bytes the initiator sent that the target has not received yet.
    c2s: VecDeque<u8>,
    /// Bytes the target sent that the initiator has not received yet.
    pub(super) s2c: VecDeque<u8>,
    /// Answers held back by the target (not sent yet).
    held: Vec<u8>,
    /// A streamed body piece or a persist message being received.
    acc: Vec<u8>,
    /// Bytes of the current plain body piece stored so far.
    got: u64,
    /// The connection was reset, or the target closed it.
    pub(super) broken: bool,
    /// The target's keys, taken at the claim; its record layer starts once
    /// the hello answer is out.
    srv_keys: Option<LaneKeys>,
    /// The target's record layer (seals `s2c`, opens what the initiator
    /// sealed).
    srv: Option<Records>,
    /// The initiator's record layer, once it is connected.
    cli: Option<Records>,
    /// Bytes at the head of `s2c` sent in the clear (the handshake).
    s2c_clear: usize,
}

/// One side's record layer.
struct Records {
    sealer: Sealer,
    inbound: Inbound<Vec<u8>>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

impl Records {
    fn new(pair: Option<(Sealer, rpmem_core::seal::Opener)>) -> Option<Records> {
        let (sealer, opener) = pair?;
        let inbound = Inbound::new(opener, vec![0u8; INBOUND_BUF_LEN]).ok()?;
        Some(Records { sealer, inbound })
    }
}

/// Seals `plain` with `from`'s key and opens it with `to`'s: what crossed
/// the wire, as the receiving machine gets it.
fn through_records(
    plain: &[u8],
    from: &mut Records,
    to: &mut Records,
) -> Result<Vec<u8>, rpmem_core::seal::SealError> {
    let mut out = Vec::with_capacity(plain.len());
    for chunk in plain.chunks(MAX_RECORD) {
        let mut rec = vec![0u8; chunk.len() + 20];
        let n = from.sealer.seal_from(chunk, &mut rec)?;
        let mut at = 0;
        while at < n {
            let space = to.inbound.space();
            let k = space.len().min(n - at);
            if let (Some(d), Some(src)) = (space.get_mut(..k), rec.get(at..at + k)) {
                d.copy_from_slice(src);
            }
            to.inbound.received(k);
            at += k;
            while to.inbound.open_next()? {
                out.extend_from_slice(to.inbound.plaintext());
                let m = to.inbound.plaintext().len();
                to.inbound.consume(m);
            }
        }
    }
    Ok(out)
}

impl Conn {
    pub(super) fn new(target: StreamTarget) -> Conn {
        Conn {
            target,
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            held: Vec::new(),
            acc: Vec::new(),
            got: 0,
            broken: false,
            srv_keys: None,
            srv: None,
            cli: None,
            s2c_clear: 0,
        }
    }

    /// Whether the target's machine can take a step.
    pub(super) fn can_serve(&self) -> bool {
        if self.broken {
            return false;
        }
        match self.target.poll() {
            Next::Recv { .. } | Next::Body(_) | Next::Msg { .. } => !self.c2s.is_empty(),
            Next::Claim { .. }
            | Next::Send { .. }
            | Next::FlushHeld
            | Next::SendPool { .. }
            | Next::WriteBack { .. } => true,
            Next::Closed => false,
        }
    }

    fn flush_held(&mut self) {
        self.s2c.extend(self.held.drain(..));
    }

    /// Up to `n` bytes of the initiator's stream.
    fn take(&mut self, n: u64) -> Vec<u8> {
        let n = idx(n).min(self.c2s.len());
        self.c2s.drain(..n).collect()
    }
}

/// `READ_RESP` bytes: hashed into the trace by the target already.
struct Discard;

impl ReadSink for Discard {
    fn put(&mut self, _: u64, _: &[u8]) -> bool {
        true
    }
}

/// Application runs: `READ_RESP` bytes go to the lane's read buffer (what
/// the application's `read` returns).
struct ToBuf<'a>(&'a mut Vec<u8>);

impl ReadSink for ToBuf<'_> {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        let end = at.saturating_add(bytes.len() as u64);
        match self.0.get_mut(idx(at)..idx(end)) {
            Some(d) => {
                d.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

impl World {
    /// Whether this run's target streams `WRITE` bodies.
    pub(super) fn streams_bodies(&self) -> bool {
        self.params.tcp.stream_bodies
            && self.target.params().flush_mode == rpmem_core::flush::FlushMode::Cpu
    }

    /// Bytes of the next transfer: 1 to `seg_max`.
    fn segment(&mut self) -> u64 {
        self.seg_rng.range(1, self.params.tcp.seg_max.max(1))
    }

    fn stream(&mut self, l: u32) -> Option<&mut StreamInitiator> {
        match self.lanes.get_mut(lane_idx(l)).map(|lane| &mut lane.engine) {
            Some(Engine::Tcp(s)) => Some(s),
            _ => None,
        }
    }

    /// Let the lane take what its engine posted, then collect its result.
    pub(super) fn tcp_settle(&mut self, l: u32) {
        let Some(s) = self.stream(l) else {
            return;
        };
        // Taking the engine's operations into frames is poll_transmit's
        // work; nothing is written here.
        let _ = s.poll_transmit().count();
        let result = s.poll_completion();
        if let Some(r) = result {
            self.finish(l, r.map_err(Failure::Tcp));
        }
    }

    /// The initiator writes one segment of what its lane transmits.
    pub(super) fn tcp_send(&mut self, l: u32) {
        let budget = self.segment();
        let i = lane_idx(l);
        let (Some(Engine::Tcp(s)), Some(local)) = (
            self.lanes.get_mut(i).map(|lane| &mut lane.engine),
            self.local.get(i),
        ) else {
            return;
        };
        let mut seg: Vec<u8> = Vec::new();
        let mut bad = None;
        for c in s.poll_transmit() {
            let room = idx(budget).saturating_sub(seg.len());
            if room == 0 {
                break;
            }
            match c {
                Chunk::Bytes(b) => seg.extend_from_slice(b.get(..room.min(b.len())).unwrap_or(b)),
                Chunk::Region { offset, len } => {
                    let n = len.min(room as u64);
                    match local.get(idx(offset)..idx(offset.saturating_add(n))) {
                        Some(d) => seg.extend_from_slice(d),
                        None => {
                            bad = Some(format!(
                                "region [{offset}, +{len}) outside the local region"
                            ));
                            break;
                        }
                    }
                }
            }
        }
        let n = seg.len() as u64;
        let r = s.on_transmitted(n);
        let connected = s.is_connected();
        let keys = if connected { s.take_keys() } else { None };
        if let Some(what) = bad {
            self.errors.push(SimError::BadOp { lane: l, what });
        }
        if let Err(error) = r {
            self.errors.push(SimError::StreamBroken { lane: l, error });
        }
        let mut sealed_failed = None;
        if let Some(c) = self.conns.get_mut(i) {
            if let Some(k) = keys {
                c.cli = Records::new(k.client());
            }
            match (connected, c.cli.as_mut(), c.srv.as_mut()) {
                (true, Some(cli), Some(srv)) if !seg.is_empty() => {
                    match through_records(&seg, cli, srv) {
                        Ok(opened) => c.c2s.extend(opened),
                        Err(e) => sealed_failed = Some(e),
                    }
                }
                (true, _, _) if !seg.is_empty() => {
                    sealed_failed = Some(rpmem_core::seal::SealError::Exhausted)
                }
                _ => c.c2s.extend(seg),
            }
        }
        if let Some(e) = sealed_failed {
            self.errors.push(SimError::Internal(format!(
                "lane {l}: the record layer failed on the initiator's bytes: {e}"
            )));
        }
        self.note(format!("lane {l}: initiator sends {n} bytes"));
        self.settle(l);
    }

    /// The initiator receives one segment of what the target sent.
    pub(super) fn tcp_deliver(&mut self, l: u32) {
        let budget = self.segment();
        let direct = self.params.tcp.direct;
        let app = self.app;
        let i = lane_idx(l);
        let (Some((Engine::Tcp(s), read_buf)), Some(c)) = (
            self.lanes
                .get_mut(i)
                .map(|lane| (&mut lane.engine, &mut lane.read_buf)),
            self.conns.get_mut(i),
        ) else {
            return;
        };
        let mut discard = Discard;
        let mut to_buf = ToBuf(read_buf);
        let sink: &mut dyn ReadSink = if app { &mut to_buf } else { &mut discard };
        let mut n = idx(budget).min(c.s2c.len());
        let sealed = c.srv.is_some() && c.s2c_clear == 0;
        if c.srv.is_some() && c.s2c_clear > 0 {
            // The end of the handshake, in the clear.
            n = n.min(c.s2c_clear);
            c.s2c_clear -= n;
        }
        let r = match s.read_direct() {
            Some((at, want)) if direct && !sealed => {
                n = n.min(idx(want));
                let bytes: Vec<u8> = c.s2c.drain(..n).collect();
                if app && !sink.put(at, &bytes) {
                    Err(rpmem_core::persist::StreamLaneError::ReadDestination { len: want })
                } else {
                    s.on_read_direct(n as u64)
                }
            }
            _ if sealed => {
                let bytes: Vec<u8> = c.s2c.drain(..n).collect();
                if c.cli.is_none() {
                    c.cli = Records::new(s.take_keys().and_then(|k| k.client()));
                }
                match (c.srv.as_mut(), c.cli.as_mut()) {
                    (Some(srv), Some(cli)) if !bytes.is_empty() => {
                        match through_records(&bytes, srv, cli) {
                            Ok(opened) => s.handle_bytes(&opened, sink),
                            Err(e) => Err(rpmem_core::persist::StreamLaneError::Handshake(e)),
                        }
                    }
                    (_, None) if !bytes.is_empty() => {
                        Err(rpmem_core::persist::StreamLaneError::Handshake(
                            rpmem_core::seal::SealError::Exhausted,
                        ))
                    }
                    _ => Ok(()),
                }
            }
            _ => {
                let bytes: Vec<u8> = c.s2c.drain(..n).collect();
                s.handle_bytes(&bytes, sink)
            }
        };
        if let Err(e) = r {
            // A call in flight fails through poll_completion; an idle lane
            // breaks here.
            let idle = self.lanes.get(i).is_some_and(|lane| lane.current.is_none());
            if let Some(lane) = self.lanes.get_mut(i) {
                if idle && !lane.fault && !lane.reported {
                    lane.reported = true;
                    lane.dead = true;
                    self.errors
                        .push(SimError::StreamBroken { lane: l, error: e });
                }
            }
        }
        self.note(format!("lane {l}: initiator receives {n} bytes"));
        self.settle(l);
    }

    /// A connection reset on lane `l`: both streams lose what they carry;
    /// the call in flight fails (rpmem's lane sees the reset) and the lane
    /// takes no more calls.
    pub(super) fn tcp_reset(&mut self, l: u32) {
        let i = lane_idx(l);
        if let Some(c) = self.conns.get_mut(i) {
            c.broken = true;
            c.c2s.clear();
            c.s2c.clear();
            c.held.clear();
        }
        let mut failed = None;
        let app = self.app;
        if let Some(lane) = self.lanes.get_mut(i) {
            lane.fault = true;
            lane.dead = true;
            if let Some((spec, _, _)) = lane.current.take() {
                failed = Some(spec);
                if app {
                    // The application's call returns the reset.
                    lane.done = Some(Err(Failure::Reset));
                }
            }
        }
        if let Some(spec) = failed {
            self.calls_failed = self.calls_failed.saturating_add(1);
            self.note(format!("lane {l}: {spec} fails: connection reset"));
        }
        self.note(format!("lane {l}: CONNECTION RESET"));
    }

    fn refuse_tcp(&mut self, l: u32, what: &'static str, error: rpmem_core::persist::ServerError) {
        self.errors.push(SimError::StreamRefused {
            lane: l,
            what,
            error,
        });
        if let Some(c) = self.conns.get_mut(lane_idx(l)) {
            c.broken = true;
        }
        if let Some(lane) = self.lanes.get_mut(lane_idx(l)) {
            lane.fault = true;
        }
    }

    /// One step of the target's lane machine.
    pub(super) fn tcp_serve(&mut self, l: u32) {
        let budget = self.segment();
        let i = lane_idx(l);
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let what = match c.target.poll() {
            Next::Recv { len } => {
                let bytes = c.take(budget.min(len as u64));
                let n = bytes.len();
                if let Err(e) = c.target.handle_bytes(&bytes) {
                    // A refused hello's answer would still be sent.
                    return self.refuse_tcp(l, "a hello or frame header", e);
                }
                format!("receives {n} bytes")
            }
            Next::Claim { lane } => {
                if lane != l {
                    return self.refuse_tcp(
                        l,
                        "a hello for another lane",
                        rpmem_core::persist::ServerError::Closed,
                    );
                }
                // One connection per lane: the claim always succeeds.
                let _ = c.target.on_claim(Ok(()));
                c.srv_keys = c.target.take_keys();
                "claims the lane".to_string()
            }
            Next::Send { bytes, hold } => {
                let n = bytes.len();
                if hold {
                    c.held.extend_from_slice(bytes);
                } else {
                    c.s2c.extend(c.held.drain(..));
                    c.s2c.extend(bytes);
                }
                c.target.on_sent();
                // The hello answer is out: records from here on.
                if let Some(k) = c.srv_keys.take() {
                    c.srv = Records::new(k.server());
                    c.s2c_clear = c.s2c.len();
                }
                format!("sends {n} bytes{}", if hold { " (held)" } else { "" })
            }
            Next::FlushHeld => {
                c.flush_held();
                c.target.on_sent();
                "sends the held answers".to_string()
            }
            Next::SendPool {
                header,
                offset,
                len,
            } => {
                c.flush_held();
                c.s2c.extend(header);
                let data = self.mem.read(offset, len);
                self.hash = fnv(self.hash, &data);
                let Some(c) = self.conns.get_mut(i) else {
                    return;
                };
                c.s2c.extend(data);
                c.target.on_sent();
                format!("READ_RESP [{offset}, +{len}) sent")
            }
            Next::Body(piece) => match self.tcp_body(i, &piece, budget) {
                Some(w) => w,
                None => return,
            },
            Next::WriteBack { from, to } => {
                let mut line = from & !(LINE - 1);
                while line < to {
                    self.mem.flush_line(line);
                    line = line.saturating_add(LINE);
                }
                if let Some(c) = self.conns.get_mut(i) {
                    c.target.on_written_back();
                }
                format!("writes back the body's first line [{from}, {to}) (no fence)")
            }
            Next::Msg { len } => {
                let want = (len as u64).saturating_sub(c.acc.len() as u64);
                let bytes = c.take(budget.min(want));
                c.acc.extend_from_slice(&bytes);
                if c.acc.len() < len {
                    format!("receives {} of a {len}-byte message", c.acc.len())
                } else {
                    let msg = std::mem::take(&mut c.acc);
                    return self.tcp_msg(l, &msg);
                }
            }
            Next::Closed => return,
        };
        self.after_serve(i);
        self.note(format!("lane {l}: target {what}"));
    }

    /// Held answers leave before the target waits for input.
    fn after_serve(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i) {
            let waits = matches!(
                c.target.poll(),
                Next::Recv { .. } | Next::Body(_) | Next::Msg { .. }
            );
            if waits && c.c2s.is_empty() {
                c.flush_held();
            }
        }
    }

    /// Receive (part of) a body piece and store it as rpmemd's
    /// `receive_piece` does. Returns the trace text.
    fn tcp_body(&mut self, i: usize, piece: &BodyPiece, budget: u64) -> Option<String> {
        let c = self.conns.get_mut(i)?;
        if piece.is_plain() {
            // Straight into the pool as it arrives (the kernel's copy).
            let want = piece.len.saturating_sub(c.got);
            let bytes = c.take(budget.min(want));
            let at = piece.offset.saturating_add(c.got);
            c.got = c.got.saturating_add(bytes.len() as u64);
            let done = c.got >= piece.len;
            self.mem.cpu_store(at, &bytes);
            let c = self.conns.get_mut(i)?;
            let what = format!("stores {} body bytes at {at}", bytes.len());
            if done {
                c.got = 0;
                if let Err(e) = c.target.on_stored() {
                    self.errors.push(SimError::Internal(format!(
                        "target refused a stored piece: {e}"
                    )));
                }
            }
            return Some(what);
        }
        // Streamed: received whole into a buffer, then stored.
        let want = piece.len.saturating_sub(c.acc.len() as u64);
        let bytes = c.take(budget.min(want));
        c.acc.extend_from_slice(&bytes);
        if (c.acc.len() as u64) < piece.len {
            return Some(format!(
                "receives {} of a {}-byte body piece",
                c.acc.len(),
                piece.len
            ));
        }
        let data = std::mem::take(&mut c.acc);
        let at = |o: u64| idx(o.saturating_sub(piece.offset)).min(data.len());
        let head = data.get(..at(piece.whole_from)).unwrap_or(&[]);
        let whole = data
            .get(at(piece.whole_from)..at(piece.whole_to))
            .unwrap_or(&[]);
        let tail = data.get(at(piece.whole_to)..).unwrap_or(&[]);
        self.mem.cpu_store(piece.offset, head);
        for (k, line) in whole.chunks(idx(LINE)).enumerate() {
            let mut block = [0u8; LINE as usize];
            if line.len() == block.len() {
                block.copy_from_slice(line);
                let off = piece
                    .whole_from
                    .saturating_add((k as u64).saturating_mul(LINE));
                self.mem.nt_store_line(off, &block);
            }
        }
        self.mem.cpu_store(piece.whole_to, tail);
        let c = self.conns.get_mut(i)?;
        if let Err(e) = c.target.on_stored() {
            self.errors.push(SimError::Internal(format!(
                "target refused a stored piece: {e}"
            )));
        }
        Some(format!(
            "stores a body piece [{}, +{}), lines [{}, {}) non-temporal",
            piece.offset, piece.len, piece.whole_from, piece.whole_to
        ))
    }

    /// A whole persist message: plan it, execute the plan one step at a
    /// time (a crash point between two steps), then answer.
    fn tcp_msg(&mut self, l: u32, msg: &[u8]) {
        let i = lane_idx(l);
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let plan = match c.target.on_msg(msg) {
            Ok(p) => p,
            Err(e) => return self.refuse_tcp(l, "a persist message", e),
        };
        let mode = plan.msg().mode.name();
        let mut streamed = (0u64, 0u64);
        let mut resp = None;
        let steps = plan.steps().len();
        for k in 0..steps {
            if k > 0 {
                self.step = self.step.saturating_add(1);
                if self.app {
                    // The application judges it (crate::app).
                    self.app_mid_point();
                } else {
                    self.maybe_crash_point();
                }
            }
            let Some(step) = plan.steps().get(k).copied() else {
                break;
            };
            let mut what = super::describe_step(&step, mode);
            match plan.execute_step(k, &mut self.mem, &mut streamed) {
                Ok(Some(r)) => resp = Some(r),
                Ok(None) => {}
                Err(e) => self.errors.push(SimError::Setup(format!(
                    "simulated flush failed (cannot happen): {e}"
                ))),
            }
            if matches!(step, TargetStep::CopyInline { .. }) && streamed.0 < streamed.1 {
                what.push_str(&format!(
                    " (lines [{}, {}) non-temporal)",
                    streamed.0, streamed.1
                ));
            }
            self.note(format!("lane {l}: target {what}"));
        }
        let resp = resp.unwrap_or_else(|| plan.response());
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let more = !c.c2s.is_empty();
        if let Err(e) = c.target.on_answer(resp, more) {
            return self.refuse_tcp(l, "an answer", e);
        }
        self.after_serve(i);
    }
}
