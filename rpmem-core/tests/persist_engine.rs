//! The persist engines driven against each other through a tiny in-test
//! transport: a local region, a pool with a model of what is durable, and a
//! FIFO of posted operations that runs only when the initiator has to wait
//! (so the work queue fills up as much as the engine lets it).
//!
//! With `lazy` set, an RDMA SEND only delivers its message to the target's
//! receive queue; the target CPU handles it (copies inline data, flushes,
//! answers) only when nothing else can run. WRITEs and READs executed by the
//! NIC meanwhile see the pool without that inline data, as on real RDMA.
//!
//! Durability model of the pool:
//! * a WRITE under GPSPM, a stream WRITE and an inline copy land in the CPU
//!   cache: durable once the target flushes the line and fences (or msyncs);
//! * a WRITE under APM is placed in memory: durable once a later READ of the
//!   same lane has executed.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use proptest::prelude::*;
use rstest::rstest;

use rpmem_core::flush::{FlushError, FlushMode, FlushOps, CACHE_LINE};
use rpmem_core::persist::{
    execute, CallError, CallKind, ClientError, Completion, ConfigError, FrameBody, HelloReject,
    InitiatorLane, LaneError, LaneParams, Method, Op, OpKind, PersistMode, PersistMsgRepr,
    Placement, ReadDest, ServerError, ServerFrame, ServerStep, StreamClient, StreamServer, Target,
    TargetError, TargetMemory, TargetParams, FLUSH_RELAXED, MAX_FLUSH_LEN, PERSIST_RELAXED,
};
use rpmem_core::wire::persist as pwire;
use rpmem_core::wire::tcp::{self, FrameKind, FrameRepr, HelloRepr, HelloStatus};

const HDR: u64 = 4096;
const SECRET: [u8; 32] = [0x5a; 32];

/// Mutants are a process-wide switch: every test holds this lock so a
/// mutant test never runs beside another test.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------- pool model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fl {
    Line(u64),
    Fence,
    Msync(u64, u64),
    Deep,
}

struct Mem {
    pool: Vec<u8>,
    durable: Vec<u8>,
    flushed: Vec<u64>,
    log: Vec<Fl>,
}

impl Mem {
    fn new(size: u64) -> Mem {
        Mem {
            pool: vec![0; size as usize],
            durable: vec![0; size as usize],
            flushed: Vec::new(),
            log: Vec::new(),
        }
    }

    fn make_durable(&mut self, off: u64, len: u64) {
        let s = off as usize;
        let e = (off.saturating_add(len) as usize).min(self.pool.len());
        if s < e {
            let (p, d) = (&self.pool[s..e], &mut self.durable[s..e]);
            d.copy_from_slice(p);
        }
    }
}

impl FlushOps for Mem {
    fn flush_line(&mut self, offset: u64) {
        self.flushed.push(offset);
        self.log.push(Fl::Line(offset));
    }
    fn fence(&mut self) {
        for l in std::mem::take(&mut self.flushed) {
            self.make_durable(l, CACHE_LINE);
        }
        self.log.push(Fl::Fence);
    }
    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        self.make_durable(offset, len);
        self.log.push(Fl::Msync(offset, len));
        Ok(())
    }
    fn deep_flush(&mut self) -> Result<(), FlushError> {
        self.log.push(Fl::Deep);
        Ok(())
    }
}

impl TargetMemory for Mem {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        let s = offset as usize;
        self.pool[s..s + data.len()].copy_from_slice(data);
    }
}

// ------------------------------------------------------------------ harness

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Rdma,
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Persist(u64, u64, u32),
    Deep(u64, u64),
    Flush(u64, u64, u32),
    Drain(u32),
    Read(u64, u64),
}

/// A posted operation; `body` holds the bytes a stream driver wrote at post
/// time (WRITE data, SEND message) or the message an RDMA driver copied into
/// its send buffer.
struct Posted {
    op: Op,
    header: [u8; 32],
    body: Vec<u8>,
}

#[derive(Debug)]
enum Done {
    Write,
    Read,
    Send,
    Flush,
    Recv([u8; 8]),
}

struct Harness {
    p: LaneParams,
    lane: InitiatorLane,
    target: Target,
    wire: Wire,
    client: StreamClient,
    server: StreamServer,
    local: Vec<u8>,
    mem: Mem,
    user: Vec<u8>,
    queue: VecDeque<Posted>,
    comps: VecDeque<Done>,
    /// Kind and signaled flag of every posted op whose slot is not reaped.
    unreaped: VecDeque<(OpKind, bool)>,
    max_unreaped: usize,
    apm_placed: Vec<(u64, u64)>,
    ops: Vec<Op>,
    plans: Vec<(PersistMsgRepr, Vec<Fl>)>,
    recv_first: bool,
    /// The target CPU handles delivered messages only when nothing else can
    /// run (RDMA only).
    lazy: bool,
    /// Messages delivered to the target but not handled yet (`lazy`).
    rx: VecDeque<Vec<u8>>,
    /// For every posted SEND whose response was not delivered, in order:
    /// whether it carries inline data.
    awaiting: VecDeque<bool>,
}

fn params(method: Method, wire: Wire, pool: u64) -> LaneParams {
    let transport = match wire {
        Wire::Rdma => Placement::Rdma,
        Wire::Stream => Placement::Stream,
    };
    LaneParams::new(0, 1, method, pool, HDR, transport)
}

impl Harness {
    fn new(p: LaneParams, flush_mode: FlushMode, wire: Wire) -> Harness {
        let target = Target::new(TargetParams {
            nlanes: p.nlanes,
            pool_size: p.pool_size,
            min_offset: p.min_offset,
            inline_max: p.inline_max,
            flush_mode,
            method: p.method,
        })
        .unwrap();
        let mut server = StreamServer::new(target);
        let client = StreamClient::new(p.lane);
        if wire == Wire::Stream {
            let acc = server.on_hello(&client.hello(&SECRET), &SECRET).unwrap();
            client.on_hello_ack(&acc.ack).unwrap();
        }
        Harness {
            lane: InitiatorLane::new(p).unwrap(),
            target,
            wire,
            client,
            server,
            local: vec![0; p.pool_size as usize],
            mem: Mem::new(p.pool_size),
            user: vec![0; p.pool_size as usize],
            queue: VecDeque::new(),
            comps: VecDeque::new(),
            unreaped: VecDeque::new(),
            max_unreaped: 0,
            apm_placed: Vec::new(),
            ops: Vec::new(),
            plans: Vec::new(),
            recv_first: false,
            lazy: false,
            rx: VecDeque::new(),
            awaiting: VecDeque::new(),
            p,
        }
    }

    fn rdma(method: Method) -> Harness {
        Harness::new(
            params(method, Wire::Rdma, 3 << 20),
            FlushMode::Cpu,
            Wire::Rdma,
        )
    }

    /// Put fresh bytes into local `[off, off + len)`.
    fn fill(&mut self, off: u64, len: u64, seed: u64) {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for b in &mut self.local[off as usize..(off + len) as usize] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x as u8) | 1;
        }
    }

    fn start(&mut self, c: Call) -> Result<(), CallError> {
        match c {
            Call::Persist(o, l, f) => self.lane.persist(o, l, f),
            Call::Deep(o, l) => self.lane.deep_persist(o, l),
            Call::Flush(o, l, f) => self.lane.flush(o, l, f),
            Call::Drain(f) => self.lane.drain(f),
            Call::Read(o, l) => self.lane.read(o, l),
        }
    }

    /// Start `c` and drive it to its end.
    fn call(&mut self, c: Call) -> Result<Result<(), LaneError>, CallError> {
        self.start(c)?;
        Ok(self.run())
    }

    fn run(&mut self) -> Result<(), LaneError> {
        loop {
            while let Some(op) = self.lane.poll_op() {
                self.post(op);
            }
            if let Some(r) = self.lane.poll_done() {
                return r;
            }
            if !self.comps.is_empty() {
                if let Err(e) = self.deliver_one() {
                    // The call in flight failed with it.
                    assert_eq!(self.lane.poll_done(), Some(Err(e)));
                    return Err(e);
                }
            } else if !self.queue.is_empty() {
                self.execute_one();
            } else if !self.rx.is_empty() {
                self.target_one();
            } else {
                panic!(
                    "deadlock: the lane waits ({:?}) but nothing is in flight",
                    self.lane.call_in_flight()
                );
            }
        }
    }

    fn post(&mut self, op: Op) {
        assert_eq!(op.lane(), self.p.lane);
        self.ops.push(op);
        self.unreaped.push_back((op.kind(), op.is_signaled()));
        self.max_unreaped = self.max_unreaped.max(self.unreaped.len());
        assert!(
            self.unreaped.len() <= self.p.wq_size as usize,
            "{} operations outstanding with a work queue of {}",
            self.unreaped.len(),
            self.p.wq_size
        );
        assert!(self.lane.outstanding() <= u64::from(self.p.wq_size));
        match op {
            Op::Send { inline, .. } => self.awaiting.push_back(inline),
            Op::Write { .. }
            | Op::Read {
                dest: ReadDest::User { .. },
                ..
            } => assert!(
                !self.awaiting.contains(&true),
                "{op:?} posted while a PERSIST_SEND of the lane is unanswered"
            ),
            Op::Read { .. } | Op::Flush { .. } => {}
        }
        let local = |o: u64, l: u64, v: &Vec<u8>| v[o as usize..(o + l) as usize].to_vec();
        match self.wire {
            Wire::Rdma => {
                let body = match op {
                    Op::Send { msg, inline, .. } => {
                        let mut b = msg.to_bytes().to_vec();
                        if inline {
                            b.extend(local(msg.offset, msg.size, &self.local));
                        }
                        b
                    }
                    _ => Vec::new(),
                };
                self.queue.push_back(Posted {
                    op,
                    header: [0; 32],
                    body,
                });
            }
            Wire::Stream => {
                let f = self.client.frame(&op).unwrap();
                let body = match f.body {
                    FrameBody::Empty => Vec::new(),
                    FrameBody::Local { offset, len } => local(offset, len, &self.local),
                    FrameBody::Message { header, inline } => {
                        let mut b = header.to_vec();
                        if let Some((o, l)) = inline {
                            b.extend(local(o, l, &self.local));
                        }
                        b
                    }
                };
                // The frame is written now: local completions are due.
                match f.completes {
                    Some(OpKind::Write) => self.comps.push_back(Done::Write),
                    Some(OpKind::Send) => self.comps.push_back(Done::Send),
                    None => {}
                    Some(k) => panic!("unexpected local completion {k}"),
                }
                self.queue.push_back(Posted {
                    op,
                    header: f.header,
                    body,
                });
            }
        }
    }

    fn run_plan(&mut self, bytes: &[u8]) -> [u8; 8] {
        let plan = self.target.handle_persist_msg(bytes).unwrap();
        let before = self.mem.log.len();
        let resp = execute(&plan, &mut self.mem).unwrap().unwrap();
        assert_eq!(resp, plan.response());
        self.plans
            .push((*plan.msg(), self.mem.log[before..].to_vec()));
        resp
    }

    fn execute_one(&mut self) {
        let Posted { op, header, body } = self.queue.pop_front().unwrap();
        match self.wire {
            Wire::Rdma => match op {
                Op::Write {
                    offset,
                    len,
                    signaled,
                    ..
                } => {
                    let (s, e) = (offset as usize, (offset + len) as usize);
                    self.target.check_write(0, offset, len).unwrap();
                    let data = self.local[s..e].to_vec();
                    self.mem.pool[s..e].copy_from_slice(&data);
                    if self.p.method == Method::Apm {
                        self.apm_placed.push((offset, len));
                    }
                    if signaled {
                        self.comps.push_back(Done::Write);
                    }
                }
                Op::Read {
                    offset, len, dest, ..
                } => {
                    self.target.check_read(0, offset, len).unwrap();
                    match dest {
                        ReadDest::Flush => {
                            for (o, l) in std::mem::take(&mut self.apm_placed) {
                                self.mem.make_durable(o, l);
                            }
                        }
                        ReadDest::User { buf_offset } => {
                            let (s, e) = (offset as usize, (offset + len) as usize);
                            let b = buf_offset as usize;
                            let src = self.mem.pool[s..e].to_vec();
                            self.user[b..b + src.len()].copy_from_slice(&src);
                        }
                    }
                    self.comps.push_back(Done::Read);
                }
                Op::Flush { offset, len, .. } => {
                    // The responder makes what is placed in the range durable.
                    self.target.check_read(0, offset, len).unwrap();
                    self.mem.make_durable(offset, len);
                    self.comps.push_back(Done::Flush);
                }
                Op::Send { .. } if self.lazy => {
                    // Delivered and acknowledged by the NIC; the CPU comes later.
                    self.rx.push_back(body);
                    self.comps.push_back(Done::Send);
                }
                Op::Send { .. } => {
                    let resp = self.run_plan(&body);
                    if self.recv_first {
                        self.comps.push_back(Done::Recv(resp));
                        self.comps.push_back(Done::Send);
                    } else {
                        self.comps.push_back(Done::Send);
                        self.comps.push_back(Done::Recv(resp));
                    }
                }
            },
            Wire::Stream => match self.server.on_frame_header(&header).unwrap() {
                ServerStep::ReceiveInto { offset, len } => {
                    assert_eq!(body.len() as u64, len);
                    let s = offset as usize;
                    self.mem.pool[s..s + body.len()].copy_from_slice(&body);
                }
                ServerStep::ReceiveMsg { len } => {
                    assert_eq!(body.len(), len);
                    let m = self.server.on_msg(&body).unwrap();
                    let hdr = m.header;
                    let resp = self.run_plan(&body);
                    assert_eq!(
                        self.client.on_server_header(&hdr).unwrap(),
                        ServerFrame::Recv
                    );
                    self.comps.push_back(Done::Recv(resp));
                }
                ServerStep::SendFrom {
                    header: h,
                    offset,
                    len,
                } => {
                    let f = self.client.on_server_header(&h).unwrap();
                    let ServerFrame::ReadResp { dest, .. } = f else {
                        panic!("{f:?}")
                    };
                    let ReadDest::User { buf_offset } = dest else {
                        panic!("flush READ over a stream")
                    };
                    let (s, b) = (offset as usize, buf_offset as usize);
                    let src = self.mem.pool[s..s + len as usize].to_vec();
                    self.user[b..b + src.len()].copy_from_slice(&src);
                    self.comps.push_back(Done::Read);
                    let _ = op;
                }
            },
        }
    }

    /// The target CPU handles the oldest delivered message (`lazy`).
    fn target_one(&mut self) {
        let body = self.rx.pop_front().unwrap();
        let resp = self.run_plan(&body);
        self.comps.push_back(Done::Recv(resp));
    }

    fn deliver_one(&mut self) -> Result<(), LaneError> {
        let d = self.comps.pop_front().unwrap();
        let c = match &d {
            Done::Write => Completion::Write { lane: 0 },
            Done::Read => Completion::Read { lane: 0 },
            Done::Send => Completion::Send { lane: 0 },
            Done::Flush => Completion::Flush { lane: 0 },
            Done::Recv(b) => Completion::Recv { lane: 0, bytes: b },
        };
        if matches!(d, Done::Recv(_)) {
            self.awaiting.pop_front().expect("response without a SEND");
        } else {
            // Reap every op up to the oldest signaled one; it must match.
            loop {
                let (kind, signaled) = self.unreaped.pop_front().expect("completion without op");
                if signaled {
                    assert_eq!(
                        kind,
                        c.kind(),
                        "completion order differs from posting order"
                    );
                    break;
                }
            }
        }
        self.lane.handle_completion(c)
    }

    /// Run everything still queued and deliver every completion.
    fn quiesce(&mut self) {
        while !self.queue.is_empty() || !self.comps.is_empty() || !self.rx.is_empty() {
            if !self.comps.is_empty() {
                self.deliver_one().unwrap();
            } else if !self.queue.is_empty() {
                self.execute_one();
            } else {
                self.target_one();
            }
        }
        assert!(!self.lane.expects_completion());
    }

    fn assert_durable(&self, off: u64, len: u64) {
        let (s, e) = (off as usize, (off + len) as usize);
        if self.mem.durable[s..e] != self.local[s..e] {
            let first = (s..e)
                .find(|&i| self.mem.durable[i] != self.local[i])
                .unwrap();
            panic!(
                "pool byte {first} is not durable: durable {:#x}, local {:#x}",
                self.mem.durable[first], self.local[first]
            );
        }
    }

    fn ops_since(&self, n: usize) -> Vec<Op> {
        self.ops[n..].to_vec()
    }
}

// ----------------------------------------------------------- op shorthands

fn w(offset: u64, len: u64) -> Op {
    Op::Write {
        lane: 0,
        offset,
        len,
        signaled: false,
    }
}

fn send(mode: PersistMode, offset: u64, size: u64) -> Op {
    Op::Send {
        lane: 0,
        msg: PersistMsgRepr {
            mode,
            completion: false,
            lane: 0,
            offset,
            size,
        },
        inline: mode == PersistMode::PersistSend,
    }
}

fn inl(offset: u64, size: u64) -> Op {
    send(PersistMode::PersistSend, offset, size)
}

fn fw(offset: u64, size: u64) -> Op {
    send(PersistMode::FlushWrite, offset, size)
}

fn deep(offset: u64, size: u64) -> Op {
    send(PersistMode::DeepPersist, offset, size)
}

fn rflush() -> Op {
    Op::Read {
        lane: 0,
        offset: 0,
        len: 8,
        dest: ReadDest::Flush,
    }
}

fn rdf(offset: u64, len: u64) -> Op {
    Op::Flush {
        lane: 0,
        offset,
        len,
    }
}

fn ru(offset: u64, len: u64, buf_offset: u64) -> Op {
    Op::Read {
        lane: 0,
        offset,
        len,
        dest: ReadDest::User { buf_offset },
    }
}

use Method::{Apm, Gpspm, RdmaFlush};

const R: u32 = PERSIST_RELAXED;

// ------------------------------------------------------------ op sequences

#[rstest]
// GPSPM: relaxed persist = WRITE + FLUSH_WRITE SEND (PMDK's send-after-write).
#[case::gpspm_relaxed(Gpspm, vec![Call::Persist(4097, 1, R)], vec![w(4097, 1), fw(4097, 1)])]
// Non-relaxed: inline SEND, no WRITE.
#[case::gpspm_inline(Gpspm, vec![Call::Persist(4096, 1, 0)], vec![inl(4096, 1)])]
// Larger than the inline buffer: chunks cut at 8-byte boundaries.
#[case::gpspm_inline_chunks(Gpspm, vec![Call::Persist(4100, 20000, 0)],
    vec![inl(4100, 8188), inl(12288, 8192), inl(20480, 3620)])]
// APM: relaxed persist = WRITE + 8-byte READ at offset 0.
#[case::apm_relaxed(Apm, vec![Call::Persist(8192, 4096, R)], vec![w(8192, 4096), rflush()])]
// APM non-relaxed uses the inline SEND too (as PMDK's rpmem_fip_persist_apm).
#[case::apm_inline(Apm, vec![Call::Persist(8192, 64, 0)], vec![inl(8192, 64)])]
#[case::gpspm_deep(Gpspm, vec![Call::Deep(4096, 100)], vec![w(4096, 100), deep(4096, 100)])]
#[case::apm_deep(Apm, vec![Call::Deep(4096, 100)], vec![w(4096, 100), deep(4096, 100)])]
// flush + drain: WRITEs, then one message for the merged range.
#[case::gpspm_flush_drain(Gpspm,
    vec![Call::Flush(4096, 100, FLUSH_RELAXED), Call::Flush(4196, 50, FLUSH_RELAXED), Call::Drain(0)],
    vec![w(4096, 100), w(4196, 50), fw(4096, 150)])]
#[case::gpspm_flush_far_apart(Gpspm,
    vec![Call::Flush(4096, 10, FLUSH_RELAXED), Call::Flush(1 << 20, 10, FLUSH_RELAXED), Call::Drain(0)],
    vec![w(4096, 10), w(1 << 20, 10), fw(4096, 10), fw(1 << 20, 10)])]
#[case::apm_flush_drain(Apm,
    vec![Call::Flush(4096, 100, FLUSH_RELAXED), Call::Flush(1 << 20, 10, FLUSH_RELAXED), Call::Drain(0)],
    vec![w(4096, 100), w(1 << 20, 10), rflush()])]
#[case::inline_flush_then_drain(Gpspm, vec![Call::Flush(4096, 8, 0), Call::Drain(0)],
    vec![inl(4096, 8)])]
// A persist also drains earlier flushes.
#[case::persist_drains_flushes(Gpspm,
    vec![Call::Flush(1 << 20, 10, FLUSH_RELAXED), Call::Persist(4096, 8, R)],
    vec![w(1 << 20, 10), w(4096, 8), fw(1 << 20, 10), fw(4096, 8)])]
// RDMA FLUSH: relaxed persist = WRITE + FLUSH of the range (librpma's write + flush).
#[case::rdma_flush_relaxed(RdmaFlush, vec![Call::Persist(8192, 4096, R)], vec![w(8192, 4096), rdf(8192, 4096)])]
// Non-relaxed and deep persists go to the target CPU, as under APM.
#[case::rdma_flush_inline(RdmaFlush, vec![Call::Persist(8192, 64, 0)], vec![inl(8192, 64)])]
#[case::rdma_flush_deep(RdmaFlush, vec![Call::Deep(4096, 100)], vec![w(4096, 100), deep(4096, 100)])]
// flush + drain: ranges merged as GPSPM's messages, one FLUSH each.
#[case::rdma_flush_flush_drain(RdmaFlush,
    vec![Call::Flush(4096, 100, FLUSH_RELAXED), Call::Flush(4196, 50, FLUSH_RELAXED),
         Call::Flush(1 << 20, 10, FLUSH_RELAXED), Call::Drain(0)],
    vec![w(4096, 100), w(4196, 50), w(1 << 20, 10), rdf(4096, 150), rdf(1 << 20, 10)])]
#[case::drain_nothing(Apm, vec![Call::Drain(0)], vec![])]
#[case::persist_zero_len(Gpspm, vec![Call::Persist(4096, 0, 0)], vec![])]
#[case::read(Gpspm, vec![Call::Read(0, 100)], vec![ru(0, 100, 0)])]
fn op_sequences(#[case] method: Method, #[case] calls: Vec<Call>, #[case] want: Vec<Op>) {
    let _g = serial();
    let mut h = Harness::rdma(method);
    for c in calls {
        if let Call::Persist(o, l, _) | Call::Flush(o, l, _) | Call::Deep(o, l) = c {
            h.fill(o, l, o);
        }
        h.call(c).unwrap().unwrap();
    }
    assert_eq!(h.ops, want);
}

#[test]
fn a_flush_covers_at_most_two_gib() {
    // No harness: the ranges are too large to back with memory.
    let gib = 1u64 << 30;
    let mut p = params(RdmaFlush, Wire::Rdma, 8 * gib);
    p.max_op_len = gib;
    let mut lane = InitiatorLane::new(p).unwrap();
    lane.persist(HDR, 5 * gib, R).unwrap();
    let ops: Vec<Op> = std::iter::from_fn(|| lane.poll_op()).collect();
    let flushes: Vec<Op> = ops
        .iter()
        .copied()
        .filter(|o| o.kind() == OpKind::Flush)
        .collect();
    assert_eq!(ops.len(), 5 + 3, "{ops:?}");
    assert_eq!(
        flushes,
        vec![
            rdf(HDR, MAX_FLUSH_LEN),
            rdf(HDR + MAX_FLUSH_LEN, MAX_FLUSH_LEN),
            rdf(HDR + 2 * MAX_FLUSH_LEN, gib)
        ]
    );
    for _ in 0..3 {
        lane.handle_completion(Completion::Flush { lane: 0 })
            .unwrap();
    }
    assert_eq!(lane.poll_done(), Some(Ok(())));
}

#[test]
fn reads_are_split_at_the_transport_maximum() {
    let _g = serial();
    let mut p = params(Apm, Wire::Rdma, 1 << 20);
    p.max_op_len = 4096;
    let mut h = Harness::new(p, FlushMode::Cpu, Wire::Rdma);
    h.fill(4096, 10000, 3);
    h.call(Call::Persist(4096, 10000, R)).unwrap().unwrap();
    let n = h.ops.len();
    assert_eq!(
        h.ops,
        vec![w(4096, 4096), w(8192, 4096), w(12288, 1808), rflush()]
    );
    h.call(Call::Read(4000, 9000)).unwrap().unwrap();
    assert_eq!(
        h.ops_since(n),
        vec![
            ru(4000, 4096, 0),
            ru(8096, 4096, 4096),
            ru(12192, 808, 8192)
        ]
    );
    assert_eq!(&h.user[..9000], &h.mem.pool[4000..13000]);
    assert_eq!(&h.user[96..9000], &h.local[4096..13000]);
}

// ------------------------------------------- inline data, then WRITE/READ

impl Harness {
    /// An RDMA harness whose target CPU handles messages as late as possible.
    fn lazy(method: Method, window: u32) -> Harness {
        let mut p = params(method, Wire::Rdma, 1 << 20);
        p.send_window = window;
        let mut h = Harness::new(p, FlushMode::Cpu, Wire::Rdma);
        h.lazy = true;
        h
    }

    /// Post everything the lane offers now, without running anything.
    fn post_ready(&mut self) -> Vec<Op> {
        let mut v = Vec::new();
        while let Some(op) = self.lane.poll_op() {
            self.post(op);
            v.push(op);
        }
        v
    }
}

/// The bug the simulator found: a non-relaxed flush returned with its inline
/// SEND unanswered; a later call of the lane travelling by WRITE to an
/// overlapping range was placed by the NIC before the target CPU copied the
/// inline data, which then overwrote the newer bytes although the later call
/// had returned success.
#[rstest]
fn a_write_never_overtakes_unanswered_inline_data(
    #[values(Apm, Gpspm)] method: Method,
    #[values(
        Call::Persist(5000, 64, R),
        Call::Persist(4990, 100, R),
        Call::Flush(5010, 8, FLUSH_RELAXED),
        Call::Deep(5000, 64)
    )]
    later: Call,
    #[values(1, 3)] window: u32,
) {
    let _g = serial();
    let mut h = Harness::lazy(method, window);
    h.fill(5000, 64, 1);
    h.call(Call::Flush(5000, 64, 0)).unwrap().unwrap();
    let (Call::Persist(o, l, _) | Call::Flush(o, l, _) | Call::Deep(o, l)) = later else {
        unreachable!()
    };
    h.fill(o, l, 2);
    h.call(later).unwrap().unwrap();
    h.call(Call::Drain(0)).unwrap().unwrap();
    // The newer bytes are in the pool and durable, the older ones around.
    assert_eq!(&h.mem.pool[4096..8192], &h.local[4096..8192]);
    h.assert_durable(4990, 100);
    h.quiesce();
}

#[rstest]
fn the_switch_from_inline_to_write_waits_for_the_response(#[values(Apm, Gpspm)] method: Method) {
    let _g = serial();
    let mut h = Harness::lazy(method, 2);
    h.fill(5000, 64, 1);
    h.start(Call::Flush(5000, 64, 0)).unwrap();
    assert_eq!(h.post_ready(), vec![inl(5000, 64)]);
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    h.fill(5000, 64, 2);
    h.start(Call::Persist(5000, 64, R)).unwrap();
    // Nothing may be posted: the inline SEND is unanswered.
    assert_eq!(h.post_ready(), vec![]);
    assert_eq!(h.lane.poll_done(), None);
    assert!(h.lane.expects_completion());
    // Its send completion is not enough: the target CPU has not copied yet.
    h.execute_one();
    h.deliver_one().unwrap();
    assert_eq!(h.post_ready(), vec![]);
    assert_eq!(h.rx.len(), 1);
    // The response is.
    h.target_one();
    h.deliver_one().unwrap();
    assert_eq!(h.post_ready().first(), Some(&w(5000, 64)));
    assert_eq!(h.run(), Ok(()));
    h.assert_durable(5000, 64);
    assert_eq!(&h.mem.pool[5000..5064], &h.local[5000..5064]);
}

#[rstest]
fn a_read_sees_the_lanes_unanswered_inline_data(
    #[values(Apm, Gpspm)] method: Method,
    #[values(1, 4)] window: u32,
) {
    let _g = serial();
    let mut h = Harness::lazy(method, window);
    h.fill(5000, 64, 1);
    h.fill(9000, 20000, 2);
    h.call(Call::Flush(5000, 64, 0)).unwrap().unwrap();
    h.call(Call::Flush(9000, 20000, 0)).unwrap().unwrap();
    h.call(Call::Read(4990, 30000)).unwrap().unwrap();
    assert_eq!(&h.user[..30000], &h.local[4990..34990]);
    h.quiesce();
}

#[rstest]
fn consecutive_inline_flushes_stay_pipelined(#[values(Apm, Gpspm)] method: Method) {
    let _g = serial();
    let mut h = Harness::lazy(method, 4);
    // One flush cut into three chunks, then a flush of an overlapping range:
    // all four SENDs are posted without any completion.
    h.fill(4096, 3 * 8192, 1);
    h.start(Call::Flush(4096, 3 * 8192, 0)).unwrap();
    let mut posted = h.post_ready();
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    h.fill(8192, 100, 2);
    h.start(Call::Flush(8192, 100, 0)).unwrap();
    posted.extend(h.post_ready());
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    assert_eq!(
        posted,
        vec![
            inl(4096, 8192),
            inl(12288, 8192),
            inl(20480, 8192),
            inl(8192, 100)
        ]
    );
    assert_eq!(h.queue.len(), 4);
    assert!(h.comps.is_empty() && h.rx.is_empty());
    // A non-relaxed persist pipelines behind them too, up to the window.
    h.fill(40000, 8, 3);
    h.start(Call::Persist(40000, 8, 0)).unwrap();
    assert_eq!(h.post_ready(), vec![]);
    assert_eq!(h.run(), Ok(()));
    assert_eq!(h.ops.last(), Some(&inl(40000, 8)));
    h.assert_durable(4096, 3 * 8192);
    h.assert_durable(40000, 8);
}

#[test]
fn only_inline_messages_hold_writes_back() {
    let _g = serial();
    let mut h = Harness::lazy(Gpspm, 1);
    // Nine relaxed flushes far apart: the ninth range pushes the oldest out
    // of the eight GPSPM remembers, into its own FLUSH_WRITE message.
    for i in 0..8u64 {
        let off = HDR + i * 20000;
        h.fill(off, 100, i);
        h.call(Call::Flush(off, 100, FLUSH_RELAXED))
            .unwrap()
            .unwrap();
    }
    let ninth = HDR + 8 * 20000;
    h.fill(ninth, 100, 8);
    h.start(Call::Flush(ninth, 100, FLUSH_RELAXED)).unwrap();
    assert_eq!(h.post_ready(), vec![w(ninth, 100), fw(HDR, 100)]);
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    // That message is unanswered, yet the next WRITE follows at once (its
    // range merges with a remembered one: nothing else is pushed out).
    let next = HDR + 20000 + 200;
    h.fill(next, 100, 9);
    h.start(Call::Flush(next, 100, FLUSH_RELAXED)).unwrap();
    assert_eq!(h.post_ready(), vec![w(next, 100)]);
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    assert!(h.rx.is_empty() && h.comps.is_empty());
    h.call(Call::Drain(0)).unwrap().unwrap();
    for i in 0..9u64 {
        h.assert_durable(HDR + i * 20000, 100);
    }
    h.assert_durable(next, 100);
}

// ----------------------------------------------------------- pool contents

#[derive(Clone, Copy, Debug)]
enum How {
    Persist,
    PersistRelaxed,
    Deep,
    FlushDrain,
    FlushDrainRelaxed,
}

/// Lines of `[off, off + len)`, in order.
fn lines(off: u64, len: u64) -> Vec<Fl> {
    let mut v = Vec::new();
    let mut l = off & !(CACHE_LINE - 1);
    while l < off + len {
        v.push(Fl::Line(l));
        l += CACHE_LINE;
    }
    v
}

#[rstest]
fn pool_holds_the_data_and_every_touched_line_is_flushed_then_fenced(
    #[values(Apm, Gpspm, RdmaFlush)] method: Method,
    #[values(
        How::Persist,
        How::PersistRelaxed,
        How::Deep,
        How::FlushDrain,
        How::FlushDrainRelaxed
    )]
    how: How,
    #[values((4096, 1), (4099, 13), (8192, 4096), (4196, 1 << 20))] range: (u64, u64),
) {
    let _g = serial();
    let (off, len) = range;
    let mut h = Harness::rdma(method);
    h.fill(off, len, 7);
    let calls = match how {
        How::Persist => vec![Call::Persist(off, len, 0)],
        How::PersistRelaxed => vec![Call::Persist(off, len, R)],
        How::Deep => vec![Call::Deep(off, len)],
        How::FlushDrain => vec![Call::Flush(off, len, 0), Call::Drain(0)],
        How::FlushDrainRelaxed => vec![Call::Flush(off, len, FLUSH_RELAXED), Call::Drain(0)],
    };
    for c in calls {
        h.call(c).unwrap().unwrap();
    }
    h.assert_durable(off, len);
    // Nothing outside the range was written.
    let (s, e) = (off as usize, (off + len) as usize);
    assert!(h.mem.pool[..s].iter().all(|&b| b == 0));
    assert!(h.mem.pool[e..].iter().all(|&b| b == 0));
    // Every message flushed exactly its lines, then fenced (then deep flush).
    let mut covered = 0;
    for (msg, log) in &h.plans {
        let mut want = lines(msg.offset, msg.size);
        want.push(Fl::Fence);
        if msg.mode == PersistMode::DeepPersist {
            want.push(Fl::Deep);
        }
        assert_eq!(log, &want, "flushes of {msg:?}");
        covered += msg.size;
    }
    match (method, how) {
        // APM makes relaxed data durable with the READ alone.
        (Apm, How::PersistRelaxed | How::FlushDrainRelaxed) => {
            assert!(h.plans.is_empty());
            assert_eq!(h.ops.last(), Some(&rflush()));
        }
        // RDMA FLUSH likewise with FLUSHes covering the range.
        (RdmaFlush, How::PersistRelaxed | How::FlushDrainRelaxed) => {
            assert!(h.plans.is_empty());
            let flushed: u64 = h
                .ops
                .iter()
                .map(|o| match o {
                    Op::Flush { len, .. } => *len,
                    _ => 0,
                })
                .sum();
            assert_eq!(flushed, len);
        }
        _ => assert_eq!(covered, len),
    }
    h.quiesce();
}

#[test]
fn msync_mode_syncs_whole_pages() {
    let _g = serial();
    let p = params(Gpspm, Wire::Rdma, 1 << 20);
    let mut h = Harness::new(p, FlushMode::Msync, Wire::Rdma);
    h.fill(5000, 10, 1);
    h.call(Call::Persist(5000, 10, R)).unwrap().unwrap();
    h.assert_durable(5000, 10);
    assert_eq!(h.plans[0].1, vec![Fl::Msync(4096, 4096)]);
}

// ------------------------------------------------------------- work queue

#[rstest]
fn work_queue_is_never_overrun(
    #[values(1, 2, 3, 4, 7, 50)] wq: u32,
    #[values(Apm, Gpspm, RdmaFlush)] method: Method,
    #[values(1, 3)] window: u32,
) {
    let _g = serial();
    let mut p = params(method, Wire::Rdma, 1 << 20);
    p.wq_size = wq;
    p.send_window = window;
    let mut h = Harness::new(p, FlushMode::Cpu, Wire::Rdma);
    // Many small relaxed flushes far apart (GPSPM keeps 8 ranges: later ones
    // evict earlier ones into their own messages), then inline flushes.
    for i in 0..40u64 {
        let off = HDR + i * 20000;
        h.fill(off, 100, i);
        h.call(Call::Flush(off, 100, FLUSH_RELAXED))
            .unwrap()
            .unwrap();
    }
    for i in 0..10u64 {
        let off = HDR + 50 + i * 20000;
        h.fill(off, 20, i + 100);
        h.call(Call::Flush(off, 20, 0)).unwrap().unwrap();
    }
    h.call(Call::Drain(0)).unwrap().unwrap();
    for i in 0..40u64 {
        h.assert_durable(HDR + i * 20000, 100);
    }
    assert!(h.max_unreaped <= wq as usize);
    // The queue was used: with the lazy transport it filled up.
    if wq <= 7 {
        assert_eq!(h.max_unreaped, wq as usize);
    }
    h.quiesce();
}

#[test]
fn signalling_every_kth_write() {
    let _g = serial();
    let mut p = params(Apm, Wire::Rdma, 1 << 20);
    p.wq_size = 8;
    let mut h = Harness::new(p, FlushMode::Cpu, Wire::Rdma);
    for i in 0..9u64 {
        h.call(Call::Flush(HDR + i * 10, 10, FLUSH_RELAXED))
            .unwrap()
            .unwrap();
    }
    let signaled: Vec<bool> = h.ops.iter().map(|o| o.is_signaled()).collect();
    // k = wq / 2 = 4.
    assert_eq!(
        signaled,
        vec![false, false, false, true, false, false, false, true, false]
    );
}

// ------------------------------------------------------------ call errors

#[rstest]
#[case::below_header(Call::Persist(4095, 1, 0), CallError::BelowMinOffset { offset: 4095, min: 4096 })]
#[case::deep_below_header(Call::Deep(0, 1), CallError::BelowMinOffset { offset: 0, min: 4096 })]
#[case::flush_below_header(Call::Flush(100, 1, 0), CallError::BelowMinOffset { offset: 100, min: 4096 })]
#[case::past_end(Call::Persist(65535, 2, 0), CallError::OutOfPool { offset: 65535, len: 2, pool_size: 65536 })]
#[case::offset_at_end(Call::Persist(65536, 0, 0), CallError::OutOfPool { offset: 65536, len: 0, pool_size: 65536 })]
#[case::overflow(Call::Persist(8192, u64::MAX, 0), CallError::RangeOverflow { offset: 8192, len: u64::MAX })]
#[case::read_overflow(Call::Read(1, u64::MAX), CallError::RangeOverflow { offset: 1, len: u64::MAX })]
#[case::read_past_end(Call::Read(0, 65537), CallError::OutOfPool { offset: 0, len: 65537, pool_size: 65536 })]
#[case::persist_flags(Call::Persist(4096, 1, 2), CallError::UnknownFlags { flags: 2, allowed: 1 })]
#[case::flush_flags(Call::Flush(4096, 1, 0x80), CallError::UnknownFlags { flags: 0x80, allowed: 1 })]
#[case::drain_flags(Call::Drain(1), CallError::UnknownFlags { flags: 1, allowed: 0 })]
fn argument_errors_change_nothing(
    #[values(Apm, Gpspm)] method: Method,
    #[case] bad: Call,
    #[case] want: CallError,
) {
    let _g = serial();
    let mut h = Harness::new(
        params(method, Wire::Rdma, 65536),
        FlushMode::Cpu,
        Wire::Rdma,
    );
    assert_eq!(h.call(bad), Err(want));
    assert!(h.lane.is_idle());
    assert_eq!(h.lane.poll_op(), None);
    assert_eq!(h.lane.poll_done(), None);
    // Still usable.
    h.fill(4096, 64, 1);
    h.call(Call::Persist(4096, 64, R)).unwrap().unwrap();
    h.assert_durable(4096, 64);
    assert!(!want.to_string().is_empty());
}

#[test]
fn reading_the_header_is_allowed() {
    let _g = serial();
    let mut h = Harness::rdma(Gpspm);
    h.mem.pool[..8].copy_from_slice(b"PMEMPOOL");
    h.call(Call::Read(0, 8)).unwrap().unwrap();
    assert_eq!(&h.user[..8], b"PMEMPOOL");
}

#[test]
fn a_second_call_while_one_is_in_flight_is_refused() {
    let _g = serial();
    let mut h = Harness::rdma(Gpspm);
    h.lane.persist(4096, 8, 0).unwrap();
    assert_eq!(
        h.lane.flush(4096, 8, 0),
        Err(CallError::Busy(CallKind::Persist))
    );
    assert_eq!(h.run(), Ok(()));
    // Finished but not collected: still busy.
    h.lane.drain(0).unwrap();
    while let Some(op) = h.lane.poll_op() {
        h.post(op);
    }
    assert_eq!(h.lane.read(0, 1), Err(CallError::Busy(CallKind::Drain)));
    assert_eq!(h.lane.poll_done(), Some(Ok(())));
    assert!(h.lane.is_idle());
}

#[rstest]
#[case::apm_on_stream(|p: &mut LaneParams| { p.method = Apm; p.transport = Placement::Stream },
    ConfigError::ApmNeedsRdma)]
#[case::rdma_flush_on_stream(|p: &mut LaneParams| { p.method = RdmaFlush; p.transport = Placement::Stream },
    ConfigError::RdmaFlushNeedsRdma)]
#[case::no_lanes(|p: &mut LaneParams| p.nlanes = 0, ConfigError::NoLanes)]
#[case::lane(|p: &mut LaneParams| p.lane = 1, ConfigError::LaneOutOfRange { lane: 1, nlanes: 1 })]
#[case::empty(|p: &mut LaneParams| { p.pool_size = 0; p.min_offset = 0 }, ConfigError::EmptyPool)]
#[case::min(|p: &mut LaneParams| p.pool_size = 4096,
    ConfigError::MinOffsetBeyondPool { min_offset: 4096, pool_size: 4096 })]
#[case::inline(|p: &mut LaneParams| p.inline_max = 7, ConfigError::InlineMaxTooSmall { inline_max: 7 })]
#[case::wq(|p: &mut LaneParams| p.wq_size = 0, ConfigError::ZeroWqSize)]
#[case::window(|p: &mut LaneParams| p.send_window = 17, ConfigError::BadSendWindow { window: 17, max: 16 })]
#[case::window0(|p: &mut LaneParams| p.send_window = 0, ConfigError::BadSendWindow { window: 0, max: 16 })]
#[case::op_len(|p: &mut LaneParams| p.max_op_len = 0, ConfigError::ZeroMaxOpLen)]
#[case::apm_tiny(|p: &mut LaneParams| { p.method = Apm; p.pool_size = 4; p.min_offset = 0 },
    ConfigError::PoolTooSmallForApm { pool_size: 4 })]
fn bad_lane_configs_are_rejected(#[case] edit: fn(&mut LaneParams), #[case] want: ConfigError) {
    let mut p = params(Gpspm, Wire::Rdma, 1 << 20);
    edit(&mut p);
    assert_eq!(InitiatorLane::new(p).unwrap_err(), want);
    assert!(!want.to_string().is_empty());
}

#[test]
fn gpspm_on_stream_is_fine() {
    assert!(InitiatorLane::new(params(Gpspm, Wire::Stream, 1 << 20)).is_ok());
}

// ------------------------------------------------------- completion errors

fn in_flight_persist(method: Method) -> Harness {
    let mut h = Harness::rdma(method);
    h.fill(4096, 8, 1);
    h.lane.persist(4096, 8, R).unwrap();
    while let Some(op) = h.lane.poll_op() {
        h.post(op);
    }
    h
}

#[rstest]
#[case::wrong_lane(Completion::Write { lane: 3 }, LaneError::WrongLane { got: 3, expected: 0 })]
#[case::unsignaled_write_reported(Completion::Write { lane: 0 },
    LaneError::UnexpectedCompletion { got: OpKind::Write, expected: Some(OpKind::Send) })]
#[case::short_response(Completion::Recv { lane: 0, bytes: &[0; 4] },
    LaneError::BadResponse(pwire::Error::ResponseLength { len: 4 }))]
#[case::flags_mismatch(Completion::Recv { lane: 0, bytes: &[1, 0, 0, 0, 0, 0, 0, 0] },
    LaneError::ResponseMismatch { field: "flags", got: 1, expected: 0 })]
#[case::failed(Completion::Failed { lane: 0, op: OpKind::Write, status: 12 },
    LaneError::OpFailed { op: OpKind::Write, status: 12 })]
fn bad_completions_break_the_lane(#[case] c: Completion<'static>, #[case] want: LaneError) {
    let _g = serial();
    let mut h = in_flight_persist(Gpspm);
    assert_eq!(h.lane.handle_completion(c), Err(want));
    assert_eq!(h.lane.poll_done(), Some(Err(want)));
    assert_eq!(h.lane.broken(), Some(want));
    assert_eq!(h.lane.drain(0), Err(CallError::Broken(want)));
    assert_eq!(
        h.lane.handle_completion(Completion::Send { lane: 0 }),
        Err(want)
    );
    assert!(!want.to_string().is_empty());
}

#[test]
fn unexpected_completions_when_idle() {
    let _g = serial();
    let mut h = Harness::rdma(Apm);
    assert_eq!(
        h.lane.handle_completion(Completion::Read { lane: 0 }),
        Err(LaneError::UnexpectedCompletion {
            got: OpKind::Read,
            expected: None
        })
    );
    let mut h = Harness::rdma(Gpspm);
    assert_eq!(
        h.lane.handle_completion(Completion::Recv {
            lane: 0,
            bytes: &[0; 8]
        }),
        Err(LaneError::UnexpectedResponse)
    );
}

#[test]
fn response_for_another_lane_is_a_protocol_error() {
    let _g = serial();
    let mut h = in_flight_persist(Gpspm);
    h.execute_one();
    h.execute_one();
    let resp = pwire::PersistRespRepr { flags: 0, lane: 1 }.to_bytes();
    assert_eq!(
        h.lane.handle_completion(Completion::Recv {
            lane: 0,
            bytes: &resp
        }),
        Err(LaneError::ResponseMismatch {
            field: "lane",
            got: 1,
            expected: 0
        })
    );
}

#[test]
fn response_may_arrive_before_the_send_completion() {
    let _g = serial();
    let mut h = Harness::rdma(Gpspm);
    h.recv_first = true;
    for i in 0..5 {
        h.fill(4096 + i * 8, 8, i);
        h.call(Call::Persist(4096 + i * 8, 8, 0)).unwrap().unwrap();
    }
    h.assert_durable(4096, 40);
    h.quiesce();
}

// ------------------------------------------------------------ target checks

fn target(nlanes: u32) -> Target {
    Target::new(TargetParams {
        nlanes,
        pool_size: 1 << 20,
        min_offset: HDR,
        inline_max: 64,
        flush_mode: FlushMode::Cpu,
        method: Gpspm,
    })
    .unwrap()
}

fn msg(flags: u32, lane: u32, addr: u64, size: u64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(flags.to_le_bytes());
    v.extend(lane.to_le_bytes());
    v.extend(addr.to_le_bytes());
    v.extend(size.to_le_bytes());
    v.extend(data);
    v
}

#[rstest]
#[case::lane(msg(0, 4, 4096, 8, &[]), TargetError::BadLane { what: "persist message lane field", lane: 4, nlanes: 4 }, "lane 4")]
#[case::below(msg(0, 0, 4095, 8, &[]), TargetError::BelowMinOffset {
    what: "persist message addr/size fields", offset: 4095, min: 4096 }, "offset 4095")]
#[case::past_end(msg(1, 0, (1 << 20) - 4, 8, &[]), TargetError::OutOfPool {
    what: "persist message addr/size fields", offset: (1 << 20) - 4, len: 8, pool_size: 1 << 20 }, "length 8")]
#[case::overflow(msg(0, 0, 4096, u64::MAX, &[]), TargetError::OutOfPool {
    what: "persist message addr/size fields", offset: 4096, len: u64::MAX, pool_size: 1 << 20 }, "18446744073709551615")]
#[case::flags(msg(0x10, 0, 4096, 8, &[]), TargetError::Msg(pwire::Error::UnknownFlags { flags: 0x10, unknown: 0x10 }), "0x10")]
#[case::mode3(msg(3, 0, 4096, 8, &[]), TargetError::Msg(pwire::Error::BadMode { flags: 3 }), "mode 3")]
#[case::inline_short(msg(2, 0, 4096, 8, &[1, 2, 3]), TargetError::Msg(pwire::Error::InlineSizeMismatch {
    declared: 8, actual: 3 }), "size 8")]
#[case::inline_big(msg(2, 0, 4096, 65, &[7; 65]), TargetError::InlineTooLarge { size: 65, max: 64 }, "65")]
#[case::data_on_flush(msg(0, 0, 4096, 8, &[1]), TargetError::Msg(pwire::Error::UnexpectedData {
    mode: PersistMode::FlushWrite, len: 1 }), "FLUSH_WRITE")]
#[case::truncated(vec![0; 23], TargetError::Msg(pwire::Error::Truncated { len: 23 }), "23 bytes")]
fn target_rejects_bad_messages(
    #[case] bytes: Vec<u8>,
    #[case] want: TargetError,
    #[case] text: &str,
) {
    let _g = serial();
    let got = target(4).handle_persist_msg(&bytes).unwrap_err();
    assert_eq!(got, want);
    let s = got.to_string();
    assert!(s.contains(text), "{s:?} does not name {text:?}");
}

#[test]
fn a_message_must_name_the_lane_it_arrived_on() {
    let _g = serial();
    let t = target(4);
    let b = msg(0, 2, 4096, 8, &[]);
    // On its own lane the message is planned as by handle_persist_msg.
    let plan = t.handle_persist_msg_on_lane(2, &b).unwrap();
    assert_eq!(plan, t.handle_persist_msg(&b).unwrap());
    // On another lane it is refused, naming both lanes.
    let e = t.handle_persist_msg_on_lane(1, &b).unwrap_err();
    assert_eq!(e, TargetError::LaneMismatch { got: 2, lane: 1 });
    let s = e.to_string();
    assert!(
        s.contains("lane field is 2") && s.contains("on lane 1"),
        "{s}"
    );
    // Every other check still comes first.
    let bad = msg(0, 2, 4095, 8, &[]);
    assert!(matches!(
        t.handle_persist_msg_on_lane(2, &bad),
        Err(TargetError::BelowMinOffset { .. })
    ));
}

#[test]
fn target_plans() {
    let _g = serial();
    let t = target(4);
    let data = [9u8; 16];
    let b = msg(2 | 4, 3, 4100, 16, &data);
    let plan = t.handle_persist_msg(&b).unwrap();
    use rpmem_core::persist::TargetStep as S;
    let resp = [6, 0, 0, 0, 3, 0, 0, 0];
    assert_eq!(
        plan.steps(),
        &[
            S::CopyInline {
                offset: 4100,
                data: &data
            },
            S::Flush {
                mode: FlushMode::Cpu,
                offset: 4100,
                len: 16
            },
            S::Respond(resp)
        ]
    );
    let b = msg(1, 0, 8192, 100, &[]);
    let plan = t.handle_persist_msg(&b).unwrap();
    assert_eq!(
        plan.steps(),
        &[
            S::DeepFlush {
                mode: FlushMode::Cpu,
                offset: 8192,
                len: 100
            },
            S::Respond([1, 0, 0, 0, 0, 0, 0, 0])
        ]
    );
    // Zero-length FLUSH_WRITE at the very end is valid (and flushes nothing).
    let b = msg(0, 0, 1 << 20, 0, &[]);
    let mut mem = Mem::new(1 << 20);
    let plan = t.handle_persist_msg(&b).unwrap();
    assert_eq!(execute(&plan, &mut mem), Ok(Some([0; 8])));
    assert!(mem.log.is_empty());
}

#[rstest]
#[case::ok(0, 4096, 10, true, None)]
#[case::below(0, 4000, 10, true, Some("offset 4000 is below 4096"))]
#[case::read_header(0, 0, 10, false, None)]
#[case::past(0, (1 << 20) - 1, 2, false, Some("does not fit"))]
#[case::overflow(0, 5000, u64::MAX, true, Some("does not fit"))]
#[case::lane(9, 4096, 1, true, Some("lane 9 does not exist"))]
fn target_checks_emulated_writes_and_reads(
    #[case] lane: u32,
    #[case] off: u64,
    #[case] len: u64,
    #[case] write: bool,
    #[case] err: Option<&str>,
) {
    let t = target(4);
    let r = if write {
        t.check_write(lane, off, len)
    } else {
        t.check_read(lane, off, len)
    };
    match err {
        None => assert_eq!(r, Ok(())),
        Some(text) => {
            let s = r.unwrap_err().to_string();
            assert!(s.contains(text), "{s}");
        }
    }
}

// ---------------------------------------------------------------- streams

#[rstest]
fn stream_transport_end_to_end(
    #[values((4096, 1), (4099, 13), (8192, 4096), (4196, 1 << 20))] r: (u64, u64),
) {
    let _g = serial();
    let (off, len) = r;
    let mut h = Harness::new(
        params(Gpspm, Wire::Stream, 3 << 20),
        FlushMode::Cpu,
        Wire::Stream,
    );
    h.fill(off, len, 11);
    h.call(Call::Persist(off, len, 0)).unwrap().unwrap();
    h.assert_durable(off, len);
    h.fill(off, len, 12);
    h.call(Call::Flush(off, len, FLUSH_RELAXED))
        .unwrap()
        .unwrap();
    h.call(Call::Drain(0)).unwrap().unwrap();
    h.assert_durable(off, len);
    h.fill(off, len, 13);
    h.call(Call::Deep(off, len)).unwrap().unwrap();
    h.assert_durable(off, len);
    h.call(Call::Read(off, len)).unwrap().unwrap();
    assert_eq!(
        &h.user[..len as usize],
        &h.local[off as usize..(off + len) as usize]
    );
    h.quiesce();
}

fn frame(kind: FrameKind, lane: u32, offset: u64, len: u64) -> [u8; 32] {
    FrameRepr {
        kind,
        lane,
        req_id: 0,
        offset,
        len,
    }
    .to_bytes()
}

fn hello(version: u16, lane: u32, secret: [u8; 32]) -> [u8; 48] {
    HelloRepr {
        version,
        lane,
        secret,
    }
    .to_bytes()
}

/// Every way in which a connection that was not accepted tries to reach
/// the pool: each is refused, and the connection stays closed.
#[rstest]
#[case::wrong_secret(hello(1, 0, [0x5b; 32]), HelloReject::BadSecret, Some(HelloStatus::Denied))]
#[case::one_bit_off({ let mut s = SECRET; s[31] ^= 1; hello(1, 0, s) }, HelloReject::BadSecret, Some(HelloStatus::Denied))]
#[case::bad_version(hello(2, 0, SECRET), HelloReject::BadVersion { got: 2 }, Some(HelloStatus::BadVersion))]
#[case::bad_lane(hello(1, 4, SECRET), HelloReject::BadLane { lane: 4, nlanes: 4 }, Some(HelloStatus::BadLane))]
#[case::bad_magic({ let mut h = hello(1, 0, SECRET); h[0] = b'X'; h },
    HelloReject::Malformed(tcp::Error::BadMagic { what: "hello", got: *b"XPT1" }), None)]
fn rejected_hello_reaches_no_pool_step(
    #[case] bytes: [u8; 48],
    #[case] why: HelloReject,
    #[case] status: Option<HelloStatus>,
) {
    let _g = serial();
    let mut s = StreamServer::new(target(4));
    let e = s.on_hello(&bytes, &SECRET).unwrap_err();
    assert_eq!(e, ServerError::Hello(why));
    let reply = why.reply();
    assert_eq!(
        reply.map(
            |b| tcp::HelloAckRepr::parse(&tcp::HelloAck::new_checked(&b).unwrap())
                .unwrap()
                .status
        ),
        status
    );
    if let Some(b) = reply {
        assert_eq!(
            StreamClient::new(0).on_hello_ack(&b),
            Err(ClientError::Refused(status.unwrap()))
        );
    }
    assert_eq!(s.lane(), None);
    // Nothing gets through afterwards, not even a correct hello.
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Write, 0, 4096, 8)),
        Err(ServerError::Closed)
    );
    assert_eq!(s.on_msg(&msg(0, 0, 4096, 8, &[])), Err(ServerError::Closed));
    assert_eq!(
        s.on_hello(&hello(1, 0, SECRET), &SECRET),
        Err(ServerError::Closed)
    );
}

#[test]
fn frames_before_the_hello_are_refused() {
    let _g = serial();
    for f in [
        frame(FrameKind::Write, 0, 4096, 8),
        frame(FrameKind::ReadReq, 0, 0, 8),
        frame(FrameKind::Send, 0, 0, 24),
    ] {
        let mut s = StreamServer::new(target(4));
        assert_eq!(s.on_frame_header(&f), Err(ServerError::NotAuthenticated));
        assert_eq!(
            s.on_hello(&hello(1, 0, SECRET), &SECRET),
            Err(ServerError::Closed)
        );
    }
    let mut s = StreamServer::new(target(4));
    assert_eq!(
        s.on_msg(&msg(0, 0, 4096, 8, &[])),
        Err(ServerError::NotAuthenticated)
    );
}

fn accepted(lane: u32) -> StreamServer {
    let mut s = StreamServer::new(target(4));
    let a = s.on_hello(&hello(1, lane, SECRET), &SECRET).unwrap();
    assert_eq!(a.lane, lane);
    StreamClient::new(lane).on_hello_ack(&a.ack).unwrap();
    s
}

#[rstest]
#[case::other_lane(frame(FrameKind::Write, 1, 4096, 8), "names lane 1")]
#[case::header_write(frame(FrameKind::Write, 2, 0, 8), "offset 0 is below 4096")]
#[case::past_end(frame(FrameKind::ReadReq, 2, 1 << 20, 1), "does not fit")]
#[case::server_kind(frame(FrameKind::Recv, 2, 0, 8), "only the server sends")]
#[case::big_send(frame(FrameKind::Send, 2, 0, 24 + 65), "more than 24 + the inline buffer = 88")]
#[case::garbage([0xff; 32], "names no frame")]
fn bad_frames_close_the_connection(#[case] f: [u8; 32], #[case] text: &str) {
    let _g = serial();
    let mut s = accepted(2);
    let e = s.on_frame_header(&f).unwrap_err();
    assert!(e.to_string().contains(text), "{e}");
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Write, 2, 4096, 8)),
        Err(ServerError::Closed)
    );
}

#[test]
fn server_steps() {
    let _g = serial();
    let mut s = accepted(2);
    assert_eq!(s.lane(), Some(2));
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Write, 2, 4096, 8)),
        Ok(ServerStep::ReceiveInto {
            offset: 4096,
            len: 8
        })
    );
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::ReadReq, 2, 0, 8)),
        Ok(ServerStep::SendFrom {
            header: frame(FrameKind::ReadResp, 2, 0, 8),
            offset: 0,
            len: 8
        })
    );
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Send, 2, 0, 24)),
        Ok(ServerStep::ReceiveMsg { len: 24 })
    );
    // The announced body must come next, with the announced length and lane.
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Write, 2, 4096, 8)),
        Err(ServerError::MsgDue { req_id: 0 })
    );
    let mut s = accepted(2);
    s.on_frame_header(&frame(FrameKind::Send, 2, 0, 24))
        .unwrap();
    assert_eq!(
        s.on_msg(&msg(0, 2, 4096, 8, &[1])),
        Err(ServerError::MsgLen {
            got: 25,
            expected: 24
        })
    );
    let mut s = accepted(2);
    s.on_frame_header(&frame(FrameKind::Send, 2, 0, 24))
        .unwrap();
    assert_eq!(
        s.on_msg(&msg(0, 1, 4096, 8, &[])),
        Err(ServerError::LaneMismatch {
            what: "persist message",
            got: 1,
            lane: 2
        })
    );
    let mut s = accepted(2);
    s.on_frame_header(&frame(FrameKind::Send, 2, 0, 24))
        .unwrap();
    let body = msg(0, 2, 4096, 8, &[]);
    let m = s.on_msg(&body).unwrap();
    assert_eq!(m.header, frame(FrameKind::Recv, 2, 0, 8));
    assert_eq!(m.plan.response(), [0, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        s.on_msg(&msg(0, 2, 4096, 8, &[])),
        Err(ServerError::NoMsgDue)
    );
    let mut s = accepted(2);
    assert_eq!(
        s.on_hello(&hello(1, 2, SECRET), &SECRET),
        Err(ServerError::HelloAgain)
    );
}

#[test]
fn client_frames_and_answers() {
    let _g = serial();
    let mut c = StreamClient::new(1);
    let h = c.hello(&SECRET);
    assert_eq!(&h[..4], b"RPT1");
    let f = c
        .frame(&Op::Write {
            lane: 1,
            offset: 4096,
            len: 10,
            signaled: true,
        })
        .unwrap();
    assert_eq!(f.header, frame(FrameKind::Write, 1, 4096, 10));
    assert_eq!(
        f.body,
        FrameBody::Local {
            offset: 4096,
            len: 10
        }
    );
    assert_eq!(f.completes, Some(OpKind::Write));
    let rd = c.frame(&ru(0, 8, 0).with_lane(1)).unwrap();
    assert_eq!(rd.completes, None);
    assert_eq!(rd.body, FrameBody::Empty);
    let sm = c.frame(&inl(4096, 10).with_lane(1)).unwrap();
    assert_eq!(sm.completes, Some(OpKind::Send));
    let FrameBody::Message { inline, .. } = sm.body else {
        panic!()
    };
    assert_eq!(inline, Some((4096, 10)));
    // Answers must come in request order and match.
    let resp_for = |kind, req_id: u64, offset, len| {
        let mut b = frame(kind, 1, offset, len);
        b[8..16].copy_from_slice(&req_id.to_le_bytes());
        b
    };
    assert!(matches!(
        c.on_server_header(&resp_for(FrameKind::Recv, 2, 0, 8)),
        Err(ClientError::Unexpected { .. })
    ));
    assert!(matches!(
        c.on_server_header(&resp_for(FrameKind::ReadResp, 1, 0, 9)),
        Err(ClientError::ReadMismatch { .. })
    ));
    assert_eq!(
        c.on_server_header(&resp_for(FrameKind::ReadResp, 1, 0, 8)),
        Ok(ServerFrame::ReadResp {
            offset: 0,
            len: 8,
            dest: ReadDest::User { buf_offset: 0 }
        })
    );
    assert_eq!(
        c.on_server_header(&resp_for(FrameKind::Recv, 2, 0, 8)),
        Ok(ServerFrame::Recv)
    );
    assert!(matches!(
        c.on_server_header(&resp_for(FrameKind::Recv, 3, 0, 8)),
        Err(ClientError::Unexpected { .. })
    ));
    assert_eq!(
        c.on_server_header(&resp_for(FrameKind::Write, 3, 0, 8)),
        Err(ClientError::WrongDirection(FrameKind::Write))
    );
    assert_eq!(
        c.frame(&w(0, 1)),
        Err(ClientError::WrongLane {
            got: 0,
            expected: 1
        })
    );
}

trait WithLane {
    fn with_lane(self, lane: u32) -> Op;
}

impl WithLane for Op {
    fn with_lane(self, l: u32) -> Op {
        match self {
            Op::Write {
                offset,
                len,
                signaled,
                ..
            } => Op::Write {
                lane: l,
                offset,
                len,
                signaled,
            },
            Op::Read {
                offset, len, dest, ..
            } => Op::Read {
                lane: l,
                offset,
                len,
                dest,
            },
            Op::Send {
                mut msg, inline, ..
            } => {
                msg.lane = l;
                Op::Send {
                    lane: l,
                    msg,
                    inline,
                }
            }
            Op::Flush { offset, len, .. } => Op::Flush {
                lane: l,
                offset,
                len,
            },
        }
    }
}

// ----------------------------------------------------------------- mutants

#[cfg(rpmem_mutants)]
mod mutants {
    use super::*;
    use rpmem_core::flush::mutants::{set, Mutant};

    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set(Mutant::None);
        }
    }

    /// Persist in several ways; returns whether every persisted byte was
    /// durable and every target plan flushed before answering.
    fn all_durable(method: Method) -> bool {
        let mut h = Harness::rdma(method);
        let mut ok = true;
        for (i, c) in [
            Call::Persist(4096, 100, R),
            Call::Persist(8192, 100, 0),
            Call::Deep(16384, 100),
        ]
        .into_iter()
        .enumerate()
        {
            let (Call::Persist(o, l, _) | Call::Deep(o, l)) = c else {
                unreachable!()
            };
            h.fill(o, l, i as u64);
            h.call(c).unwrap().unwrap();
            ok &= h.mem.durable[o as usize..(o + l) as usize]
                == h.local[o as usize..(o + l) as usize];
        }
        for (m, log) in &h.plans {
            ok &= log.last()
                == Some(&if m.mode == PersistMode::DeepPersist {
                    Fl::Deep
                } else {
                    Fl::Fence
                });
        }
        ok
    }

    #[test]
    fn mutants_are_caught() {
        let _g = serial();
        let _r = Reset;
        set(Mutant::None);
        assert!(all_durable(Apm) && all_durable(Gpspm));
        set(Mutant::ApmWithoutRead);
        assert!(!all_durable(Apm));
        set(Mutant::InlineWithoutFlush);
        assert!(!all_durable(Gpspm));
        set(Mutant::DeepAsPlain);
        assert!(!all_durable(Gpspm));
        set(Mutant::RespondBeforeFlush);
        let t = target(1);
        let body = msg(0, 0, 4096, 8, &[]);
        let plan = t.handle_persist_msg(&body).unwrap();
        assert!(matches!(
            plan.steps()[0],
            rpmem_core::persist::TargetStep::Respond(_)
        ));
    }
}

// --------------------------------------------------------------- proptest

#[derive(Clone, Debug)]
struct Setup {
    method: Method,
    wire: Wire,
    wq: u32,
    window: u32,
    inline_max: u64,
    max_op_len: u64,
    msync: bool,
    recv_first: bool,
    nohdrs: bool,
    lazy: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![
            Just((Apm, Wire::Rdma)),
            Just((Gpspm, Wire::Rdma)),
            Just((Gpspm, Wire::Stream))
        ],
        1u32..9,
        1u32..4,
        prop_oneof![Just(8u64), Just(64), Just(100), Just(8192)],
        prop_oneof![Just(64u64), Just(1000), Just(1 << 20)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                (method, wire),
                wq,
                window,
                inline_max,
                max_op_len,
                msync,
                recv_first,
                nohdrs,
                lazy,
            )| {
                Setup {
                    method,
                    wire,
                    wq,
                    window,
                    inline_max,
                    max_op_len,
                    msync,
                    recv_first,
                    nohdrs,
                    lazy: lazy && wire == Wire::Rdma,
                }
            },
        )
}

const PPOOL: u64 = 64 * 1024;

fn any_call() -> impl Strategy<Value = Call> {
    let range = (0u64..PPOOL + 16, prop_oneof![0u64..200, 0u64..20_000]);
    let flags = prop_oneof![4 => Just(0u32), 4 => Just(1u32), 1 => Just(2u32)];
    prop_oneof![
        4 => (range.clone(), flags.clone()).prop_map(|((o, l), f)| Call::Persist(o, l, f)),
        2 => range.clone().prop_map(|(o, l)| Call::Deep(o, l)),
        4 => (range.clone(), flags).prop_map(|((o, l), f)| Call::Flush(o, l, f)),
        2 => prop_oneof![9 => Just(0u32), 1 => Just(1u32)].prop_map(Call::Drain),
        1 => range.prop_map(|(o, l)| Call::Read(o, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn random_call_sequences_keep_every_persisted_byte_durable(
        s in setup(),
        calls in proptest::collection::vec(any_call(), 1..40),
    ) {
        let _g = serial();
        let mut p = params(s.method, s.wire, PPOOL);
        p.wq_size = s.wq;
        p.send_window = s.window;
        p.inline_max = s.inline_max;
        p.max_op_len = s.max_op_len;
        if s.nohdrs {
            p.min_offset = 0;
        }
        let mode = if s.msync { FlushMode::Msync } else { FlushMode::Cpu };
        let mut h = Harness::new(p, mode, s.wire);
        h.recv_first = s.recv_first;
        h.lazy = s.lazy;
        let mut covered = vec![false; PPOOL as usize];
        for (i, c) in calls.into_iter().enumerate() {
            let range = match c {
                Call::Persist(o, l, _) | Call::Flush(o, l, _) | Call::Deep(o, l) => Some((o, l)),
                _ => None,
            };
            let valid_write = range.is_some_and(|(o, l)| {
                o >= p.min_offset && o < PPOOL && o.checked_add(l).is_some_and(|e| e <= PPOOL)
            });
            let saved = h.local.clone();
            if valid_write {
                let (o, l) = range.unwrap();
                h.fill(o, l, i as u64 + 1);
            }
            let n = h.ops.len();
            match h.call(c) {
                Err(e) => {
                    prop_assert!(!matches!(e, CallError::Busy(_) | CallError::Broken(_)), "{e}");
                    prop_assert_eq!(h.ops.len(), n, "a refused call posted operations");
                    prop_assert!(h.lane.is_idle());
                    // The refused call's bytes were not meant to be persisted:
                    // restore them so the model stays exact.
                    h.local = saved;
                    continue;
                }
                Ok(r) => prop_assert_eq!(r, Ok(())),
            }
            if let Some((o, l)) = range {
                covered[o as usize..(o + l) as usize].iter_mut().for_each(|b| *b = true);
            }
            match c {
                Call::Persist(..) | Call::Deep(..) | Call::Drain(_) => {
                    for (i, _) in covered.iter().enumerate().filter(|(_, c)| **c) {
                        prop_assert_eq!(h.mem.durable[i], h.local[i], "pool byte {} after {:?}", i, c);
                    }
                }
                Call::Read(o, l) => {
                    // Read-your-writes: every earlier call of the lane, also
                    // an unanswered inline flush, is visible.
                    prop_assert_eq!(&h.user[..l as usize], &h.local[o as usize..(o + l) as usize]);
                }
                Call::Flush(..) => {}
            }
            prop_assert!(h.lane.outstanding() <= u64::from(s.wq));
        }
        h.call(Call::Drain(0)).unwrap().unwrap();
        h.quiesce();
        for (i, _) in covered.iter().enumerate().filter(|(_, c)| **c) {
            prop_assert_eq!(h.mem.durable[i], h.local[i], "pool byte {} at the end", i);
            prop_assert_eq!(h.mem.pool[i], h.local[i]);
        }
        // Header bytes were never written.
        if !s.nohdrs {
            prop_assert!(h.mem.pool[..HDR as usize].iter().all(|&b| b == 0));
        }
        prop_assert!(h.max_unreaped <= s.wq as usize);
    }
}
