//! The two TCP lane machines, [`StreamInitiator`] and [`StreamTarget`],
//! driven against each other over an in-memory byte stream cut into
//! segments of any size: every call's bytes land in the pool, every read
//! returns the pool's bytes, and after every persist, deep persist or drain
//! every cache line of the pool is durable in a model of the cache (stores
//! dirty a line; the target's streamed whole lines, write-backs and flushes
//! make it pending; a fence makes pending lines durable), whatever the
//! segment sizes and the size of the target's body pieces; hostile server
//! bytes break the lane with an error, never a panic.

use std::collections::VecDeque;

use proptest::prelude::*;

use rpmem_core::flush::{FlushError, FlushMode, FlushOps, CACHE_LINE};
use rpmem_core::persist::{
    execute, CallError, Chunk, LaneParams, Method, Next, Placement, ReadSink, StreamInitiator,
    StreamLaneError, StreamTarget, Target, TargetMemory, TargetParams, PERSIST_RELAXED,
};
use rpmem_core::seal::{LaneMode, HELLO_LEN};

const POOL: u64 = 64 * 1024;
const SECRET: [u8; 32] = [0x33; 32];

/// The state of one cache line of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Nothing stored since it was last made durable.
    Durable,
    /// Stored into with ordinary stores; not written back since.
    Dirty,
    /// Written back or streamed after the last store; durable at the next
    /// fence.
    Pending,
}

/// The pool: its bytes and the state of each cache line.
struct Pool {
    bytes: Vec<u8>,
    lines: Vec<Line>,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            bytes: vec![0; POOL as usize],
            lines: vec![Line::Durable; (POOL / CACHE_LINE) as usize],
        }
    }

    fn set(&mut self, from: u64, to: u64, how: Line) {
        if from >= to {
            return;
        }
        for l in (from / CACHE_LINE)..=((to - 1) / CACHE_LINE) {
            let line = &mut self.lines[l as usize];
            *line = match how {
                // A write-back only changes a dirty line.
                Line::Pending if *line == Line::Durable => Line::Durable,
                how => how,
            };
        }
    }

    /// Bytes stored with ordinary stores.
    fn store(&mut self, offset: u64, data: &[u8]) {
        let at = offset as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
        self.set(offset, offset + data.len() as u64, Line::Dirty);
    }

    /// Whole lines stored with non-temporal stores.
    fn stream(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        assert_eq!(offset % CACHE_LINE, 0, "streamed lines start on a line");
        assert_eq!(
            data.len() as u64 % CACHE_LINE,
            0,
            "streamed lines are whole"
        );
        let at = offset as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
        for l in (offset / CACHE_LINE)..((offset + data.len() as u64) / CACHE_LINE) {
            self.lines[l as usize] = Line::Pending;
        }
    }
}

impl FlushOps for Pool {
    fn flush_line(&mut self, offset: u64) {
        self.set(offset, offset + 1, Line::Pending);
    }
    fn fence(&mut self) {
        for l in &mut self.lines {
            if *l == Line::Pending {
                *l = Line::Durable;
            }
        }
    }
    fn msync(&mut self, _: u64, _: u64) -> Result<(), FlushError> {
        unreachable!("the test target flushes CPU caches")
    }
}

impl TargetMemory for Pool {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        self.store(offset, data);
    }
}

/// The server end: the core's target lane machine, taking bytes from its
/// input once they are there.
struct Server {
    lane: StreamTarget,
    input: VecDeque<u8>,
    output: VecDeque<u8>,
    pool: Pool,
}

impl Server {
    fn new(secret: [u8; 32], inline_max: u64, piece: u64) -> Server {
        let target = Target::new(TargetParams {
            nlanes: 1,
            pool_size: POOL,
            min_offset: 0,
            inline_max,
            flush_mode: FlushMode::Cpu,
            method: Method::Gpspm,
        })
        .unwrap();
        Server {
            // The framing over an in-memory stream, in the clear; the sealed
            // record layer has its own tests (seal.rs, the drivers).
            lane: StreamTarget::new(
                target,
                secret,
                [9; 32],
                LaneMode::Plaintext,
                true,
                piece,
                true,
            ),
            input: VecDeque::new(),
            output: VecDeque::new(),
            pool: Pool::new(),
        }
    }

    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        (self.input.len() >= n).then(|| self.input.drain(..n).collect())
    }

    /// Runs what its input allows; false once it closed the connection.
    fn run(&mut self) -> bool {
        loop {
            match self.lane.poll() {
                Next::Recv { len } => {
                    let Some(b) = self.take(len) else {
                        return true;
                    };
                    // A refused hello still sends its answer (next round).
                    let _ = self.lane.handle_bytes(&b);
                }
                Next::Claim { .. } => self.lane.on_claim(Ok(())).unwrap(),
                Next::Send { bytes, .. } => {
                    self.output.extend(bytes);
                    self.lane.on_sent();
                }
                Next::FlushHeld => self.lane.on_sent(),
                Next::SendPool {
                    header,
                    offset,
                    len,
                } => {
                    self.output.extend(header);
                    let (a, b) = (offset as usize, (offset + len) as usize);
                    self.output.extend(&self.pool.bytes[a..b]);
                    self.lane.on_sent();
                }
                Next::Body(piece) => {
                    let Some(body) = self.take(piece.len as usize) else {
                        return true;
                    };
                    let at = |o: u64| (o - piece.offset) as usize;
                    let (head, rest) = body.split_at(at(piece.whole_from));
                    let (whole, tail) = rest.split_at(at(piece.whole_to) - head.len());
                    self.pool.store(piece.offset, head);
                    self.pool.stream(piece.whole_from, whole);
                    self.pool.store(piece.whole_to, tail);
                    self.lane.on_stored().unwrap();
                }
                Next::WriteBack { from, to } => {
                    self.pool.set(from, to, Line::Pending);
                    self.lane.on_written_back();
                }
                Next::Msg { len } => {
                    let Some(msg) = self.take(len) else {
                        return true;
                    };
                    let Ok(plan) = self.lane.on_msg(&msg) else {
                        return false;
                    };
                    let resp = execute(&plan, &mut self.pool)
                        .unwrap()
                        .unwrap_or_else(|| plan.response());
                    let more = !self.input.is_empty();
                    self.lane.on_answer(resp, more).unwrap();
                }
                Next::Closed => return false,
            }
        }
    }
}

struct Buf<'a>(&'a mut Vec<u8>);

impl ReadSink for Buf<'_> {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        let at = at as usize;
        match self.0.get_mut(at..at + bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

/// One lane over the in-memory stream.
struct Rig {
    lane: StreamInitiator,
    server: Server,
    region: Vec<u8>,
    /// Segment sizes of the two directions, used in turn.
    cuts: Vec<usize>,
    cut: usize,
    direct: bool,
}

impl Rig {
    fn new(cuts: Vec<usize>, inline_max: u64, window: u32, direct: bool) -> Rig {
        Rig::with_piece(cuts, inline_max, window, direct, 4096)
    }

    fn with_piece(cuts: Vec<usize>, inline_max: u64, window: u32, direct: bool, piece: u64) -> Rig {
        let mut params = LaneParams::new(0, 1, Method::Gpspm, POOL, 0, Placement::Stream);
        params.inline_max = inline_max;
        params.send_window = window;
        params.wq_size = 8;
        params.max_op_len = 16 * 1024;
        let region = (0..POOL).map(|i| (i * 7 + 3) as u8).collect();
        Rig {
            lane: StreamInitiator::new(params, &SECRET, [3; 32], LaneMode::Plaintext).unwrap(),
            server: Server::new(SECRET, inline_max, piece),
            region,
            cuts: if cuts.is_empty() { vec![1 << 20] } else { cuts },
            cut: 0,
            direct,
        }
    }

    fn next_cut(&mut self) -> usize {
        let c = self.cuts[self.cut % self.cuts.len()];
        self.cut += 1;
        c.max(1)
    }

    /// Moves bytes until the call completes; `buf` receives a read.
    fn drive(&mut self, buf: &mut Vec<u8>) -> Result<(), StreamLaneError> {
        for _ in 0..1_000_000 {
            // Write at most one segment of what the lane transmits.
            let budget = self.next_cut();
            let mut seg = Vec::new();
            for c in self.lane.poll_transmit() {
                let bytes: &[u8] = match c {
                    Chunk::Bytes(b) => b,
                    Chunk::Region { offset, len } => {
                        &self.region[offset as usize..(offset + len) as usize]
                    }
                };
                let room = budget - seg.len();
                seg.extend_from_slice(&bytes[..bytes.len().min(room)]);
                if seg.len() == budget {
                    break;
                }
            }
            self.lane.on_transmitted(seg.len() as u64)?;
            self.server.input.extend(seg);
            let open = self.server.run();
            // Deliver at most one segment back.
            let n = self.next_cut().min(self.server.output.len());
            if let (true, Some((at, want))) = (self.direct, self.lane.read_direct()) {
                let n = n.min(want as usize);
                let bytes: Vec<u8> = self.server.output.drain(..n).collect();
                let at = at as usize;
                buf[at..at + n].copy_from_slice(&bytes);
                self.lane.on_read_direct(n as u64)?;
            } else {
                let bytes: Vec<u8> = self.server.output.drain(..n).collect();
                self.lane.handle_bytes(&bytes, &mut Buf(buf))?;
            }
            if let Some(r) = self.lane.poll_completion() {
                return r;
            }
            if !open && self.server.output.is_empty() {
                return Err(StreamLaneError::Overrun {
                    what: "closed",
                    got: 0,
                    max: 0,
                });
            }
        }
        panic!("the call never completed");
    }

    fn connect(&mut self) {
        self.drive_until_connected();
        assert!(self.lane.is_connected());
    }

    fn drive_until_connected(&mut self) {
        for _ in 0..10_000 {
            if self.lane.is_connected() {
                return;
            }
            let budget = self.next_cut();
            let mut seg = Vec::new();
            for c in self.lane.poll_transmit() {
                if let Chunk::Bytes(b) = c {
                    seg.extend_from_slice(&b[..b.len().min(budget - seg.len())]);
                }
            }
            self.lane.on_transmitted(seg.len() as u64).unwrap();
            self.server.input.extend(seg);
            self.server.run();
            let n = self.next_cut().min(self.server.output.len());
            let bytes: Vec<u8> = self.server.output.drain(..n).collect();
            self.lane
                .handle_bytes(&bytes, &mut Buf(&mut Vec::new()))
                .unwrap();
        }
    }
}

#[derive(Clone, Debug)]
enum Call {
    Persist {
        offset: u64,
        len: u64,
        relaxed: bool,
    },
    Flush {
        offset: u64,
        len: u64,
        relaxed: bool,
    },
    Drain,
    Deep {
        offset: u64,
        len: u64,
    },
    Read {
        offset: u64,
        len: u64,
    },
    /// Change the local region (what the next calls replicate).
    Touch {
        offset: u64,
        len: u64,
        byte: u8,
    },
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    (0..POOL).prop_flat_map(|o| (Just(o), 0..=(POOL - o).min(40_000)))
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => (range(), any::<bool>()).prop_map(|((offset, len), relaxed)| Call::Persist { offset, len, relaxed }),
        2 => (range(), any::<bool>()).prop_map(|((offset, len), relaxed)| Call::Flush { offset, len, relaxed }),
        1 => Just(Call::Drain),
        1 => range().prop_map(|(offset, len)| Call::Deep { offset, len }),
        2 => range().prop_map(|(offset, len)| Call::Read { offset, len }),
        3 => (range(), any::<u8>()).prop_map(|((offset, len), byte)| Call::Touch { offset, len, byte }),
    ]
}

fn sent(expect: &mut [u8], region: &[u8], offset: u64, len: u64) {
    let (a, b) = (offset as usize, (offset + len) as usize);
    expect[a..b].copy_from_slice(&region[a..b]);
}

/// Runs `calls`; after every call the pool holds the region's bytes of
/// every range sent so far, and every read returns the pool's bytes.
fn run(calls: &[Call], cuts: Vec<usize>, inline: u64, window: u32, direct: bool, piece: u64) {
    let mut rig = Rig::with_piece(cuts, inline, window, direct, piece);
    rig.connect();
    // What the pool must hold: the region's bytes of every range sent, as
    // they were at the call (a call's frames are all written before it
    // completes, so the region may change afterwards).
    let mut expect = vec![0u8; POOL as usize];
    for c in calls {
        let mut buf = Vec::new();
        let flags = |relaxed: bool| if relaxed { PERSIST_RELAXED } else { 0 };
        match *c {
            Call::Touch { offset, len, byte } => {
                let (a, b) = (offset as usize, (offset + len) as usize);
                rig.region[a..b].fill(byte);
                continue;
            }
            Call::Persist {
                offset,
                len,
                relaxed,
            } => {
                rig.lane.persist(offset, len, flags(relaxed)).unwrap();
                sent(&mut expect, &rig.region, offset, len);
            }
            Call::Flush {
                offset,
                len,
                relaxed,
            } => {
                rig.lane.flush(offset, len, flags(relaxed)).unwrap();
                sent(&mut expect, &rig.region, offset, len);
            }
            Call::Drain => rig.lane.drain(0).unwrap(),
            Call::Deep { offset, len } => {
                rig.lane.deep_persist(offset, len).unwrap();
                sent(&mut expect, &rig.region, offset, len);
            }
            Call::Read { offset, len } => {
                rig.lane.read(offset, len).unwrap();
                buf = vec![0u8; len as usize];
            }
        }
        rig.drive(&mut buf).unwrap();
        // The test's server places every byte at once.
        assert!(rig.server.pool.bytes == expect, "pool differs after {c:?}");
        if matches!(c, Call::Persist { .. } | Call::Deep { .. } | Call::Drain) {
            let open: Vec<usize> = (rig.server.pool.lines.iter().enumerate())
                .filter(|(_, &l)| l != Line::Durable)
                .map(|(i, _)| i)
                .collect();
            assert!(open.is_empty(), "lines {open:?} not durable after {c:?}");
        }
        if let Call::Read { offset, len } = *c {
            let (a, b) = (offset as usize, (offset + len) as usize);
            assert_eq!(buf, rig.server.pool.bytes[a..b], "read {c:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn calls_over_a_stream_cut_anywhere_land_in_the_pool(
        calls in proptest::collection::vec(call(), 1..12),
        cuts in proptest::collection::vec(1usize..5000, 0..6),
        inline in prop_oneof![Just(8u64), Just(64), Just(8192)],
        window in 1u32..4,
        direct: bool,
        piece in prop_oneof![Just(64u64), Just(192), Just(4096), Just(65536)],
    ) {
        run(&calls, cuts, inline, window, direct, piece);
    }

    /// Whatever a hostile or broken server sends, the lane fails with an
    /// error or waits; it never panics, and once failed every call says so.
    #[test]
    fn hostile_server_bytes_break_the_lane_without_panicking(
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 1usize..64,
    ) {
        let mut rig = Rig::new(vec![cut], 64, 1, false);
        rig.connect();
        rig.lane.persist(0, 100, 0).unwrap();
        let mut failed = false;
        for piece in junk.chunks(cut) {
            if rig.lane.handle_bytes(piece, &mut Buf(&mut Vec::new())).is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            prop_assert!(rig.lane.failure().is_some());
            prop_assert!(matches!(rig.lane.poll_completion(), Some(Err(_))));
            prop_assert!(matches!(rig.lane.persist(0, 8, 0), Err(CallError::Broken(_))));
        }
    }
}

#[test]
fn a_wrong_secret_fails_the_servers_proof() {
    let mut rig = Rig::new(vec![7], 64, 1, false);
    rig.server = Server::new([0x44; 32], 64, 4096);
    let mut seg = Vec::new();
    for c in rig.lane.poll_transmit() {
        if let Chunk::Bytes(b) = c {
            seg.extend_from_slice(b);
        }
    }
    assert_eq!(seg.len(), HELLO_LEN);
    rig.lane.on_transmitted(seg.len() as u64).unwrap();
    rig.server.input.extend(seg);
    assert!(rig.server.run());
    let answer: Vec<u8> = rig.server.output.drain(..).collect();
    let e = rig
        .lane
        .handle_bytes(&answer, &mut Buf(&mut Vec::new()))
        .unwrap_err();
    assert_eq!(
        e,
        StreamLaneError::Handshake(rpmem_core::seal::SealError::ServerProof)
    );
    assert!(
        e.to_string().contains("does not know the session secret"),
        "{e}"
    );
    assert!(!rig.lane.is_connected());
    // Nothing, not even the proof, goes out after that.
    assert_eq!(rig.lane.poll_transmit().count(), 0);
}

#[test]
fn nothing_but_the_hello_goes_out_before_it_is_accepted() {
    let mut rig = Rig::new(vec![1 << 20], 64, 1, false);
    rig.lane.persist(0, 16, 0).unwrap();
    let total: u64 = rig.lane.poll_transmit().map(|c| c.len()).sum();
    assert_eq!(total, HELLO_LEN as u64);
    rig.lane.on_transmitted(total).unwrap();
    assert_eq!(rig.lane.poll_transmit().count(), 0);
    assert!(!rig.lane.has_unsent());
    // Reporting more than was due is a driver bug the lane refuses.
    assert!(matches!(
        rig.lane.on_transmitted(1),
        Err(StreamLaneError::Overrun { .. })
    ));
}

#[test]
fn a_flush_completes_only_once_its_frames_are_written() {
    let mut rig = Rig::new(vec![1 << 20], 64, 4, false);
    rig.connect();
    rig.lane.flush(0, 1000, PERSIST_RELAXED).unwrap();
    let total: u64 = rig.lane.poll_transmit().map(|c| c.len()).sum();
    assert!(total > 1000);
    assert!(rig.lane.poll_completion().is_none());
    rig.lane.on_transmitted(total - 1).unwrap();
    assert!(rig.lane.poll_completion().is_none());
    rig.lane.on_transmitted(1).unwrap();
    assert_eq!(rig.lane.poll_completion(), Some(Ok(())));
}
