//! One simulated run: the handshake, the initiator lanes, the queue pairs,
//! the target and its memory, stepped by a seeded scheduler, with a crash
//! point between every two steps.
//!
//! The initiator and target sides are rpmem-core's own machines
//! ([`InitiatorLane`], [`Target`], [`rpmem_core::oob`]); the target runs
//! each step of a message's plan through
//! [`rpmem_core::persist::TargetPlan::execute_step`], i.e. through
//! [`rpmem_core::flush::persist_range_streamed`] over the simulated
//! [`Memory`], which streams inline copies (non-temporal stores) in the
//! seeds that draw it.
//!
//! With RDMA FLUSH the remote NIC executes each FLUSH as rxe's responder
//! does: a write-back of every cache line of the range, then a fence, on the
//! target memory ([`nic_flush`]); only then does the FLUSH's response
//! travel back. On a file-backed DRAM pool that reaches the page cache, not
//! the file: no `msync`, so nothing becomes durable (the policy never
//! offers FLUSH there).
//!
//! Steps (each one action; the scheduler picks among the enabled ones with
//! per-run weights, which gives delays and reordering across lanes):
//!
//! | action | what |
//! |---|---|
//! | start | a lane issues its next call (writing its data into the local region first) |
//! | transmit | a lane's oldest posted operation reaches the remote NIC |
//! | execute | the remote NIC executes its oldest operation: places a WRITE, answers a READ, delivers a SEND, makes a FLUSH's range persistent |
//! | complete | the oldest operation of a send queue completes (WRITE/SEND: once at the remote NIC; READ, FLUSH: once executed and answered) |
//! | reap | the initiator takes one completion; the lane posts what it can and returns its call's result |
//! | target | the target CPU runs one step of a persist message's plan (copy, flush, deep flush, respond) |
//! | evict | a dirty cache line is written back on its own |
//! | drain | a write-pending-queue line or a dirty page reaches media on its own |
//! | lose | (fault) a lane's connection is lost |
//! | kill | (fault, application runs) the target process dies: every lane's connection is lost, the message being executed stops; the memory stays |

use std::collections::VecDeque;
use std::sync::RwLock;

use rpmem_core::flush::mutants::{self, Mutant};
use rpmem_core::flush::FlushMode;
use rpmem_core::flush::FlushOps;
use rpmem_core::persist::{
    CallError, CallKind, Completion, InitiatorLane, LaneError, Op, ReadDest, ServerError,
    StreamInitiator, StreamLaneError, StreamTarget, Target, TargetError, TargetStep, FLUSH_RELAXED,
    PERSIST_RELAXED,
};

use crate::app::Call;

use crate::checker::Checker;
use crate::crash::{CrashTracker, Finding};
use crate::handshake::{self, ClientAsk, HandshakeError, Session, TargetOffer};
use crate::memory::{Candidate, MemStats, Memory, LINE, PAGE, WORD};
use crate::platform::Config;
use crate::rng::Rng;
use crate::rnic::{Cqe, Inbound, Qp, CONN_RESET};
use crate::workload::{CallSpec, Size, Workload};

/// How crash points are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Exhaustive for small workloads, sampled for large ones.
    Auto,
    /// Every point between two steps.
    Exhaustive,
    /// About one point in eight, and the end.
    Sampled,
}

/// Options of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunOptions {
    /// The seeded bug switched on for the run. It has an effect only in a
    /// build with the hooks (`rpmem_core::flush::mutants::COMPILED`, i.e.
    /// `RUSTFLAGS="--cfg rpmem_mutants"`); `sim` refuses to run one without.
    pub mutant: Mutant,
    /// Crash point selection.
    pub mode: Mode,
    /// Workload size; `None`: drawn from the seed (one seed in four large).
    pub size: Option<Size>,
    /// Keep a line per step in the report.
    pub verbose: bool,
    /// Give up after this many steps.
    pub max_steps: u64,
    /// At every crash point, judge every word of the pool from scratch and
    /// compare with the incremental verdicts (slow; for tests).
    pub self_check: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mutant: Mutant::None,
            mode: Mode::Auto,
            size: None,
            verbose: false,
            max_steps: 200_000,
            self_check: false,
        }
    }
}

/// Scheduler weights of one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Weights {
    /// start, transmit, execute, complete, reap, target.
    pub kind: [u64; 6],
    /// Per-lane factor (lanes progress at different speeds).
    pub lane: Vec<u64>,
    /// Spontaneous eviction.
    pub evict: u64,
    /// Spontaneous WPQ / page drain.
    pub drain: u64,
}

/// Everything drawn from the seed before the run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Params {
    /// Workload size.
    pub size: Size,
    /// Pool size (a multiple of 4096).
    pub pool_size: u64,
    /// The pool has headers (its first 4096 bytes cannot be written): the
    /// session's `min_offset` follows from it, as on both real sides.
    pub headers: bool,
    /// What the client asks in CREATE.
    pub ask: ClientAsk,
    /// Lanes the target grants at most.
    pub target_max_lanes: u32,
    /// Largest inline payload the target takes.
    pub target_max_inline: u32,
    /// Send queue depth.
    pub wq_size: u32,
    /// Persist messages in flight per lane.
    pub send_window: u32,
    /// Largest WRITE/READ.
    pub max_op_len: u64,
    /// Scheduler weights.
    pub weights: Weights,
    /// Lose lane `.1`'s connection at step `.0`.
    pub conn_loss: Option<(u64, u32)>,
    /// The target memory stores the whole lines of inline copies with
    /// non-temporal stores where the plan lets it ([`Memory::set_streaming`]).
    pub stream_inline: bool,
    /// What the TCP placement draws (unused by RDMA runs).
    pub tcp: TcpParams,
}

/// What a TCP run draws from the seed (from a stream of its own, so that
/// every RDMA parameter is what it was before the TCP placement existed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpParams {
    /// Largest segment: every transfer on a stream (the initiator's send,
    /// the target's receive, the initiator's receive) moves 1 to `seg_max`
    /// bytes, drawn per transfer.
    pub seg_max: u64,
    /// rpmemd stores the whole cache lines of `WRITE` bodies with
    /// non-temporal stores and writes back the partial first line
    /// (`stream_stores`; only where the target flushes CPU caches).
    pub stream_bodies: bool,
    /// Bytes of a streamed body piece (rpmemd: `STREAM_CHUNK`).
    pub piece: u64,
    /// Answers may be held back while more input is queued
    /// (`hold_answers`).
    pub hold: bool,
    /// `READ_RESP` bodies are received straight into the destination
    /// (`read_direct`) instead of through `handle_bytes`.
    pub direct: bool,
}

/// Something that must not happen in any run, mutant or not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// An engine or the memory refused the run's parameters.
    #[error("setup: {0}")]
    Setup(String),
    /// The initiator refused a call the workload made (a valid one).
    #[error("lane {lane}: {call} refused: {error}")]
    CallRejected {
        /// Lane.
        lane: u32,
        /// The call.
        call: String,
        /// The engine's answer.
        error: CallError,
    },
    /// A lane broke without an injected fault.
    #[error("lane {lane} broke without a fault: {error}")]
    LaneBroken {
        /// Lane.
        lane: u32,
        /// The engine's error.
        error: LaneError,
    },
    /// A TCP lane broke without an injected fault.
    #[error("TCP lane {lane} broke without a fault: {error}")]
    StreamBroken {
        /// Lane.
        lane: u32,
        /// The initiator machine's error.
        error: StreamLaneError,
    },
    /// The TCP target machine refused what the initiator sent.
    #[error("TCP lane {lane}: target refused {what}: {error}")]
    StreamRefused {
        /// Lane.
        lane: u32,
        /// What it refused.
        what: &'static str,
        /// The target machine's error.
        error: ServerError,
    },
    /// The target refused what the initiator sent.
    #[error("lane {lane}: target refused {what}: {error}")]
    TargetRefused {
        /// Lane.
        lane: u32,
        /// What it refused.
        what: &'static str,
        /// The target's error.
        error: TargetError,
    },
    /// The engine posted something impossible.
    #[error("lane {lane}: engine posted {what}")]
    BadOp {
        /// Lane.
        lane: u32,
        /// What.
        what: String,
    },
    /// A call never finished.
    #[error("lane {lane} is stuck at the end of the run: {what}")]
    Stuck {
        /// Lane.
        lane: u32,
        /// What was pending.
        what: String,
    },
    /// The run did not end.
    #[error("no end after {0} steps")]
    StepLimit(u64),
    /// The workload issued too many writes.
    #[error("{0}")]
    TooManyWrites(#[from] crate::checker::TooManyWrites),
    /// The simulator's own bookkeeping is inconsistent.
    #[error("internal: {0}")]
    Internal(String),
}

/// A crash point whose images break a promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Steps executed before the crash.
    pub step: u64,
    /// The first broken promise.
    pub finding: Finding,
}

/// What one run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The configuration.
    pub config: Config,
    /// The mutant that was on.
    pub mutant: Mutant,
    /// Parameters drawn from the seed.
    pub params: Params,
    /// What the handshake agreed (None if it failed).
    pub session: Option<Session>,
    /// The workload.
    pub workload: Workload,
    /// Steps executed.
    pub steps: u64,
    /// Crash points examined.
    pub crash_points: u64,
    /// Post-crash word values judged: every candidate value of every word
    /// whose candidates or promises changed since the previous crash point
    /// (the verdicts of the other words carry over: see `crash.rs`).
    pub values_judged: u64,
    /// The most words in flight (with more than one possible post-crash
    /// value) at one crash point.
    pub max_in_flight: u64,
    /// Crash points at which some image breaks a promise.
    pub violating_points: u64,
    /// The first of them.
    pub first_violation: Option<Violation>,
    /// Things that must never happen.
    pub errors: Vec<SimError>,
    /// FNV-1a hash of the step trace (same seed, same hash).
    pub trace_hash: u64,
    /// Calls that returned success.
    pub calls_ok: u64,
    /// Calls that failed or were refused because the lane broke.
    pub calls_failed: u64,
    /// Connection losses injected.
    pub faults: u64,
    /// What the memory was asked to do.
    pub mem: MemStats,
    /// One line per step (verbose runs).
    pub log: Vec<String>,
}

impl RunReport {
    /// Whether some crash point broke a promise.
    pub fn violated(&self) -> bool {
        self.violating_points > 0
    }
}

/// Guards the process-wide mutant switch: runs without a mutant share it
/// (also [`crate::app`]'s runs), a run with a mutant holds it alone (and
/// switches the mutant off again).
pub(crate) static MUTANT_LOCK: RwLock<()> = RwLock::new(());

/// Switches the mutant off again when dropped.
struct MutantReset;

impl Drop for MutantReset {
    fn drop(&mut self) {
        mutants::set(Mutant::None);
    }
}

/// Run `seed` in `config`. Safe to call from several threads: the global
/// mutant switch of rpmem-core is only changed while no other run is
/// active.
pub fn run(seed: u64, config: Config, opts: &RunOptions) -> RunReport {
    locked(seed, config, opts, None)
}

/// Like [`run`], but with the caller's workload instead of the seed's
/// (lane `i` of `workload` runs on lane `i`; lanes beyond the granted
/// number are dropped). The seed still decides the parameters and the
/// schedule: a directed scenario, explored over seeds.
pub fn run_with_workload(
    seed: u64,
    config: Config,
    opts: &RunOptions,
    workload: &Workload,
) -> RunReport {
    locked(seed, config, opts, Some(workload))
}

fn locked(seed: u64, config: Config, opts: &RunOptions, wl: Option<&Workload>) -> RunReport {
    if opts.mutant == Mutant::None {
        let _shared = MUTANT_LOCK.read().unwrap_or_else(|e| e.into_inner());
        return World::run(seed, config, opts, wl);
    }
    let _alone = MUTANT_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let _reset = MutantReset;
    mutants::set(opts.mutant);
    World::run(seed, config, opts, wl)
}

/// Draw the parameters of `seed` (before the handshake).
pub fn draw_params(seed: u64, size: Option<Size>) -> Params {
    let mut rng = Rng::new(seed).fork(1);
    let size = size.unwrap_or(if seed % 4 == 3 {
        Size::Large
    } else {
        Size::Small
    });
    let pages = match size {
        Size::Small => 2,
        Size::Large => 4,
    };
    let nlanes = u32::try_from(rng.range(1, 4)).unwrap_or(1);
    let buff_size = *rng
        .pick(&[8u64, 16, 24, 64, 200, 1024, 8192])
        .unwrap_or(&8192);
    let target_max_inline = *rng.pick(&[64u32, 8192, 1 << 20]).unwrap_or(&8192);
    let target_max_lanes = u32::try_from(rng.range(1, 4)).unwrap_or(1);
    let wq_size = *rng.pick(&[1u32, 2, 3, 4, 8, 50]).unwrap_or(&50);
    let send_window = u32::try_from(rng.range(1, 3)).unwrap_or(1);
    let max_op_len = *rng
        .pick(&[64u64, 100, 512, 4096, 1 << 30])
        .unwrap_or(&(1 << 30));
    let mut kind = [1u64; 6];
    for k in &mut kind {
        *k = rng.range(1, 8);
    }
    let lane = (0..4).map(|_| rng.range(1, 4)).collect();
    let evict = *rng.pick(&[0u64, 0, 1, 3]).unwrap_or(&0);
    let drain = *rng.pick(&[0u64, 1, 3]).unwrap_or(&0);
    let conn_loss = if rng.chance(1, 5) {
        Some((rng.range(1, 80), u32::try_from(rng.below(4)).unwrap_or(0)))
    } else {
        None
    };
    // Drawn last, so that every earlier draw is what it was before it.
    let stream_inline = rng.chance(3, 4);
    let mut t = Rng::new(seed).fork(8);
    let tcp = TcpParams {
        seg_max: *t
            .pick(&[8u64, 60, 600, 1500, 9000, 1 << 20])
            .unwrap_or(&1500),
        stream_bodies: t.chance(2, 3),
        piece: *t.pick(&[64u64, 128, 320, 4096]).unwrap_or(&4096),
        hold: t.chance(1, 2),
        direct: t.chance(1, 2),
    };
    Params {
        size,
        pool_size: PAGE * (1 + pages),
        headers: true,
        ask: ClientAsk {
            pool_size: PAGE * (1 + pages),
            nlanes,
            buff_size,
            headers: true,
        },
        target_max_lanes,
        target_max_inline,
        wq_size,
        send_window,
        max_op_len,
        weights: Weights {
            kind,
            lane,
            evict,
            drain,
        },
        conn_loss,
        stream_inline,
        tcp,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Start(u32),
    Transmit(u32),
    Execute(u32),
    Complete(u32),
    Reap(u32),
    Target(u32),
    Evict,
    Drain,
    Lose(u32),
    /// TCP: the initiator writes one segment of what its lane transmits.
    Send(u32),
    /// TCP: the initiator receives one segment of what the target sent.
    Deliver(u32),
    /// TCP: the target's lane machine takes one step (receives a segment,
    /// stores a body piece, writes back a line, executes a message, sends).
    Serve(u32),
    /// (fault, application runs) the target process dies: every lane's
    /// connection is lost, what was on the wire with it, and the message
    /// the target was executing stops; the memory stays (the host is up).
    Kill,
}

/// What one scheduler step did ([`World::step_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stepped {
    /// A step of the world (network, target, memory).
    World,
    /// The caller's action `i` (of the `extra` weights) was drawn; the
    /// step is counted, the caller carries it out.
    Extra(usize),
    /// Nothing can move.
    Idle,
    /// The step limit is reached.
    Limit,
}

/// An initiator lane's machine: the RDMA engine, or the TCP lane machine.
#[derive(Debug)]
enum Engine {
    Rdma(Box<InitiatorLane>),
    Tcp(Box<StreamInitiator>),
}

impl Engine {
    fn is_idle(&self) -> bool {
        match self {
            Engine::Rdma(e) => e.is_idle(),
            Engine::Tcp(s) => s.call_in_flight().is_none(),
        }
    }

    fn call(&mut self, spec: &CallSpec) -> Result<(), CallError> {
        let flag = |r: bool, f: u32| if r { f } else { 0 };
        match (self, *spec) {
            (
                Engine::Rdma(e),
                CallSpec::Persist {
                    offset,
                    len,
                    relaxed,
                },
            ) => e.persist(offset, len, flag(relaxed, PERSIST_RELAXED)),
            (
                Engine::Tcp(s),
                CallSpec::Persist {
                    offset,
                    len,
                    relaxed,
                },
            ) => s.persist(offset, len, flag(relaxed, PERSIST_RELAXED)),
            (
                Engine::Rdma(e),
                CallSpec::Flush {
                    offset,
                    len,
                    relaxed,
                },
            ) => e.flush(offset, len, flag(relaxed, FLUSH_RELAXED)),
            (
                Engine::Tcp(s),
                CallSpec::Flush {
                    offset,
                    len,
                    relaxed,
                },
            ) => s.flush(offset, len, flag(relaxed, FLUSH_RELAXED)),
            (Engine::Rdma(e), CallSpec::Drain) => e.drain(0),
            (Engine::Tcp(s), CallSpec::Drain) => s.drain(0),
            (Engine::Rdma(e), CallSpec::DeepPersist { offset, len }) => e.deep_persist(offset, len),
            (Engine::Tcp(s), CallSpec::DeepPersist { offset, len }) => s.deep_persist(offset, len),
            (Engine::Rdma(e), CallSpec::Read { offset, len }) => e.read(offset, len),
            (Engine::Tcp(s), CallSpec::Read { offset, len }) => s.read(offset, len),
        }
    }

    fn pending(&self) -> String {
        match self {
            Engine::Rdma(e) => format!(
                "{} operations outstanding, expects a completion: {}",
                e.outstanding(),
                e.expects_completion()
            ),
            Engine::Tcp(s) => format!(
                "TCP lane, bytes unsent: {}, connected: {}, failure: {:?}",
                s.has_unsent(),
                s.is_connected(),
                s.failure()
            ),
        }
    }

    fn outstanding(&self) -> u64 {
        match self {
            Engine::Rdma(e) => e.outstanding(),
            Engine::Tcp(_) => 0,
        }
    }

    /// Start an application's call (any flags: the engine judges them).
    fn call_app(&mut self, call: &Call) -> Result<(), CallError> {
        match (self, call) {
            (Engine::Rdma(e), &Call::Persist { offset, len, flags }) => {
                e.persist(offset, len, flags)
            }
            (Engine::Tcp(s), &Call::Persist { offset, len, flags }) => {
                s.persist(offset, len, flags)
            }
            (Engine::Rdma(e), &Call::DeepPersist { offset, len }) => e.deep_persist(offset, len),
            (Engine::Tcp(s), &Call::DeepPersist { offset, len }) => s.deep_persist(offset, len),
            (Engine::Rdma(e), &Call::Flush { offset, len, flags }) => e.flush(offset, len, flags),
            (Engine::Tcp(s), &Call::Flush { offset, len, flags }) => s.flush(offset, len, flags),
            (Engine::Rdma(e), &Call::Drain { flags }) => e.drain(flags),
            (Engine::Tcp(s), &Call::Drain { flags }) => s.drain(flags),
            (Engine::Rdma(e), &Call::Read { offset, len }) => e.read(offset, len),
            (Engine::Tcp(s), &Call::Read { offset, len }) => s.read(offset, len),
            (_, Call::Write { .. }) => Ok(()),
        }
    }
}

/// Why a call failed.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Rdma(LaneError),
    Tcp(StreamLaneError),
    /// Application runs, TCP: the lane's connection was reset (an injected
    /// fault) while the call was in flight.
    Reset,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rdma(e) => e.fmt(f),
            Failure::Tcp(e) => e.fmt(f),
            Failure::Reset => f.write_str("the connection was reset"),
        }
    }
}

#[derive(Debug)]
struct LaneDrv {
    engine: Engine,
    calls: VecDeque<CallSpec>,
    current: Option<(CallSpec, CallKind, Option<u8>)>,
    dead: bool,
    fault: bool,
    reported: bool,
    /// Application runs: the result of the call that returned, until the
    /// application takes it ([`World::take_done`]).
    done: Option<Result<(), Failure>>,
    /// Application runs: where an RDMA READ's data lands.
    read_buf: Vec<u8>,
}

#[derive(Debug, Default)]
struct TargetLane {
    rx: VecDeque<Vec<u8>>,
    /// The message being executed, the index of its next step, and what its
    /// inline copy streamed (carried to its flush).
    cur: Option<(Vec<u8>, usize, (u64, u64))>,
}

pub(crate) struct World {
    params: Params,
    /// Lowest writable offset of the session (from its `headers`).
    min_offset: u64,
    mode: Mode,
    verbose: bool,
    self_check: bool,
    target: Target,
    mem: Memory,
    qps: Vec<Qp>,
    lanes: Vec<LaneDrv>,
    tlanes: Vec<TargetLane>,
    /// The initiator's local region, one view per lane: a lane sends the
    /// data of its own calls (see `docs/simulation.md`, data races).
    local: Vec<Vec<u8>>,
    /// TCP runs: per lane, the target's machine and the two byte streams
    /// (empty for RDMA runs).
    conns: Vec<tcp::Conn>,
    /// TCP runs: draws segment sizes.
    seg_rng: Rng,
    checker: Checker,
    tracker: CrashTracker,
    sched: Rng,
    bg: Rng,
    crash_rng: Rng,
    step: u64,
    hash: u64,
    log: Vec<String>,
    errors: Vec<SimError>,
    calls_ok: u64,
    calls_failed: u64,
    crash_points: u64,
    max_in_flight: u64,
    violating_points: u64,
    first_violation: Option<Violation>,
    lost_fired: bool,
    /// Driven by an application ([`crate::app`]): calls come from
    /// [`World::app_start`], their data is the application's, their results
    /// wait in [`World::take_done`]; no built-in checker.
    app: bool,
    /// Application runs: kill the target process at this step.
    kill_at: Option<u64>,
    killed: bool,
    /// Application runs: crash points inside one scheduler step (between
    /// the steps of a TCP persist message's plan), waiting for the
    /// application's judge ([`World::take_mid_points`]).
    mid_points: Vec<MidPoint>,
}

/// A crash point inside a scheduler step of an application run: the words
/// whose crash candidates changed since the previous point, with their
/// candidates then.
#[derive(Debug)]
pub(crate) struct MidPoint {
    /// Steps executed before it.
    pub(crate) step: u64,
    /// The changed words and their candidates.
    pub(crate) words: Vec<(u64, Vec<Candidate>)>,
}

mod tcp;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn idx(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn lane_idx(l: u32) -> usize {
    usize::try_from(l).unwrap_or(usize::MAX)
}

impl World {
    fn run(seed: u64, config: Config, opts: &RunOptions, wl: Option<&Workload>) -> RunReport {
        let params = draw_params(seed, opts.size);
        let mut root = Rng::new(seed);
        let _params_stream = root.fork(1);
        let mut wl_rng = root.fork(2);
        let sched = root.fork(3);
        let bg = root.fork(4);
        let crash_rng = root.fork(5);
        let mut secret_rng = root.fork(6);
        let mut align_rng = root.fork(7);
        let seg_rng = root.fork(9);

        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&secret_rng.next_u64().to_le_bytes());
        }
        secret[0] |= 1;

        let mut report = RunReport {
            seed,
            config,
            mutant: opts.mutant,
            params: params.clone(),
            session: None,
            workload: Workload { lanes: Vec::new() },
            steps: 0,
            crash_points: 0,
            values_judged: 0,
            max_in_flight: 0,
            violating_points: 0,
            first_violation: None,
            errors: Vec::new(),
            trace_hash: FNV_OFFSET,
            calls_ok: 0,
            calls_failed: 0,
            faults: 0,
            mem: MemStats::default(),
            log: Vec::new(),
        };

        let offer = TargetOffer {
            method: config.announced(),
            max_nlanes: params.target_max_lanes,
            max_inline: params.target_max_inline,
            pmem: config.platform.pmem,
            deep_flush: config.platform.deep_differs(),
            rdma_flush: config.offers_rdma_flush(),
            secret,
        };
        let session = match handshake::create(&params.ask, &offer) {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e.into());
                return report;
            }
        };
        report.session = Some(session);
        if session.method != config.method {
            report.errors.push(SimError::Internal(format!(
                "the handshake settled on {} (announced {}), the configuration runs {}",
                session.method, session.announced, config.method
            )));
            return report;
        }
        let workload = match wl {
            Some(w) => Workload {
                lanes: w
                    .lanes
                    .iter()
                    .take(usize::try_from(session.nlanes).unwrap_or(usize::MAX))
                    .cloned()
                    .collect(),
            },
            None => {
                let mut w = Workload::generate(
                    &mut wl_rng,
                    params.size,
                    session.nlanes,
                    session.min_offset(),
                    params.pool_size,
                );
                // Whole cache lines in some inline persists, for the
                // target's non-temporal stores (streamed in 3 seeds of 4).
                w.line_align_some(
                    &mut align_rng,
                    (1, 3),
                    session.min_offset(),
                    params.pool_size,
                );
                w
            }
        };
        report.workload = workload.clone();

        let mut world = match World::new(config, params, session, &workload, opts, secret) {
            Ok(w) => w,
            Err(e) => {
                report.errors.push(e);
                return report;
            }
        };
        world.sched = sched;
        world.bg = bg;
        world.crash_rng = crash_rng;
        world.seg_rng = seg_rng;
        if config.is_tcp() {
            let t = world.params.tcp;
            world.note(format!(
                "TCP: segments of 1..={} bytes, bodies {}, pieces of {} bytes, answers {}held, READ_RESP {}",
                t.seg_max,
                if world.streams_bodies() { "streamed" } else { "plain" },
                t.piece,
                if t.hold { "" } else { "never " },
                if t.direct { "direct" } else { "through handle_bytes" }
            ));
        }
        world.note(format!(
            "session: {} lanes, {} (announced {}), inline_max {}, wq_size {}, send_window {}, max_op_len {}{}",
            session.nlanes,
            session.method,
            session.announced,
            session.inline_max,
            world.params.wq_size,
            world.params.send_window,
            world.params.max_op_len,
            if world.params.stream_inline {
                ", inline copies streamed"
            } else {
                ""
            }
        ));
        world.main_loop(opts.max_steps);

        report.steps = world.step;
        report.crash_points = world.crash_points;
        report.values_judged = world.tracker.judged();
        report.max_in_flight = world.max_in_flight;
        report.violating_points = world.violating_points;
        report.first_violation = world.first_violation;
        report.errors = world.errors;
        report.trace_hash = world.hash;
        report.calls_ok = world.calls_ok;
        report.calls_failed = world.calls_failed;
        report.faults = u64::from(world.lost_fired);
        report.mem = world.mem.stats();
        report.log = world.log;
        report
    }

    fn new(
        config: Config,
        params: Params,
        session: Session,
        workload: &Workload,
        opts: &RunOptions,
        secret: [u8; 32],
    ) -> Result<World, SimError> {
        let mode = match opts.mode {
            Mode::Auto => match params.size {
                Size::Small => Mode::Exhaustive,
                Size::Large => Mode::Sampled,
            },
            m => m,
        };
        // The target knows what it announced, not what the initiator chose
        // (it executes every valid message whatever the method).
        let target = Target::new(session.target(config.flush))
            .map_err(|e| SimError::Setup(format!("target: {e}")))?;
        let mut mem = Memory::new(config.platform, params.pool_size)
            .map_err(|e| SimError::Setup(format!("memory: {e}")))?;
        mem.set_streaming(params.stream_inline);
        let mut lanes = Vec::new();
        let mut conns = Vec::new();
        for l in 0..session.nlanes {
            let mut p = session.lane(l, config.placement);
            p.wq_size = params.wq_size;
            p.send_window = params.send_window;
            p.max_op_len = params.max_op_len;
            let setup = |e: &dyn std::fmt::Display| SimError::Setup(format!("lane {l}: {e}"));
            let engine = if config.is_tcp() {
                // Handshake nonces from the seed (the secret is).
                let mode = rpmem_core::seal::LaneMode::Sealed;
                let nonce = |k: u8| secret.map(|b| b ^ k ^ l as u8);
                let init =
                    StreamInitiator::new(p, &secret, nonce(0x5c), mode).map_err(|e| setup(&e))?;
                // rpmemd streams bodies only where the target flushes CPU
                // caches (and the CPU can).
                let stream = config.flush == FlushMode::Cpu && params.tcp.stream_bodies;
                conns.push(tcp::Conn::new(StreamTarget::new(
                    target,
                    secret,
                    nonce(0x36),
                    mode,
                    stream,
                    params.tcp.piece,
                    params.tcp.hold,
                )));
                Engine::Tcp(Box::new(init))
            } else {
                Engine::Rdma(Box::new(InitiatorLane::new(p).map_err(|e| setup(&e))?))
            };
            let calls = workload
                .lanes
                .get(lane_idx(l))
                .map(|c| c.iter().copied().collect())
                .unwrap_or_default();
            lanes.push(LaneDrv {
                engine,
                calls,
                current: None,
                dead: false,
                fault: false,
                reported: false,
                done: None,
                read_buf: Vec::new(),
            });
        }
        let n = lanes.len();
        Ok(World {
            min_offset: session.min_offset(),
            mode,
            verbose: opts.verbose,
            self_check: opts.self_check,
            target,
            mem,
            qps: (0..n).map(|_| Qp::new()).collect(),
            lanes,
            tlanes: (0..n).map(|_| TargetLane::default()).collect(),
            local: (0..n).map(|_| vec![0; idx(params.pool_size)]).collect(),
            conns,
            seg_rng: Rng::new(0),
            checker: Checker::new(config.platform.plain_persist_durable()),
            tracker: CrashTracker::new(),
            params,
            sched: Rng::new(0),
            bg: Rng::new(0),
            crash_rng: Rng::new(0),
            step: 0,
            hash: FNV_OFFSET,
            log: Vec::new(),
            errors: Vec::new(),
            calls_ok: 0,
            calls_failed: 0,
            crash_points: 0,
            max_in_flight: 0,
            violating_points: 0,
            first_violation: None,
            lost_fired: false,
            app: false,
            kill_at: None,
            killed: false,
            mid_points: Vec::new(),
        })
    }

    /// Record a trace line (hashed always, kept when verbose).
    fn note(&mut self, line: String) {
        self.hash = fnv(self.hash, &self.step.to_le_bytes());
        self.hash = fnv(self.hash, line.as_bytes());
        if self.verbose {
            self.log.push(format!("[{:>5}] {line}", self.step));
        }
    }

    fn main_loop(&mut self, max_steps: u64) {
        loop {
            self.maybe_crash_point();
            match self.step_with(&[], max_steps) {
                Stepped::World | Stepped::Extra(_) => {}
                Stepped::Idle => break,
                Stepped::Limit => {
                    self.errors.push(SimError::StepLimit(max_steps));
                    break;
                }
            }
        }
        self.crash_point();
        self.check_idle();
    }

    /// One scheduler step: draw among the enabled actions and the caller's
    /// `extra` ones (weights), carry out a drawn action of the world. The
    /// one scheduler of both the built-in check and application runs
    /// ([`crate::app`], whose extra actions resume a workload thread).
    pub(crate) fn step_with(&mut self, extra: &[u64], max_steps: u64) -> Stepped {
        let actions = self.enabled();
        if actions.is_empty() && extra.is_empty() {
            return Stepped::Idle;
        }
        if self.step >= max_steps {
            return Stepped::Limit;
        }
        let mut weights: Vec<u64> = actions.iter().map(|(_, w)| *w).collect();
        weights.extend_from_slice(extra);
        let Some(choice) = self.sched.weighted(&weights) else {
            return Stepped::Idle;
        };
        let drawn = match actions.get(choice) {
            Some(&(action, _)) => {
                self.apply(action);
                Stepped::World
            }
            None => Stepped::Extra(choice.saturating_sub(actions.len())),
        };
        self.step = self.step.saturating_add(1);
        drawn
    }

    /// A crash point here, unless the run samples them and this one is not
    /// drawn.
    fn maybe_crash_point(&mut self) {
        let check = match self.mode {
            Mode::Sampled => self.crash_rng.chance(1, 8),
            Mode::Exhaustive | Mode::Auto => true,
        };
        if check {
            self.crash_point();
        }
    }

    fn crash_point(&mut self) {
        let mut changed = self.mem.take_changed();
        changed.extend(self.checker.take_changed());
        self.tracker.update(&self.mem, &self.checker, &changed);
        if self.self_check {
            let words = (0..self.mem.size() / WORD).map(|i| i.saturating_mul(WORD));
            if let Err(e) = self.tracker.verify(&self.mem, &self.checker, words) {
                self.errors
                    .push(SimError::Internal(format!("after step {}: {e}", self.step)));
                self.self_check = false;
            }
        }
        self.crash_points = self.crash_points.saturating_add(1);
        self.max_in_flight = self
            .max_in_flight
            .max(u64::try_from(self.tracker.in_flight_words()).unwrap_or(u64::MAX));
        if self.tracker.violated() {
            self.violating_points = self.violating_points.saturating_add(1);
            if let Some(f) = self.tracker.first_finding().cloned() {
                if self.verbose {
                    self.log.push(format!(
                        "[{:>5}] CRASH HERE breaks a promise: word {} may hold {:?} ({}): {}",
                        self.step,
                        f.word,
                        f.candidate.value,
                        f.candidate.source.name(),
                        f.problem
                    ));
                }
                if self.first_violation.is_none() {
                    self.first_violation = Some(Violation {
                        step: self.step,
                        finding: f,
                    });
                }
            }
        }
    }

    fn check_idle(&mut self) {
        for (l, lane) in self.lanes.iter().enumerate() {
            let l = u32::try_from(l).unwrap_or(u32::MAX);
            if lane.dead {
                continue;
            }
            if let Some((spec, _, _)) = lane.current {
                self.errors.push(SimError::Stuck {
                    lane: l,
                    what: format!("{spec} never returned ({})", lane.engine.pending()),
                });
            } else if !lane.calls.is_empty() {
                self.errors.push(SimError::Stuck {
                    lane: l,
                    what: format!("{} calls never started", lane.calls.len()),
                });
            }
        }
    }

    // ----- scheduling -----

    fn enabled(&mut self) -> Vec<(Action, u64)> {
        if let Some(at) = self.kill_at {
            if !self.killed && self.step >= at {
                return vec![(Action::Kill, 1)];
            }
        }
        if let Some((at, lane)) = self.params.conn_loss {
            let lane = lane % u32::try_from(self.lanes.len().max(1)).unwrap_or(1);
            if !self.lost_fired && self.step >= at {
                return vec![(Action::Lose(lane), 1)];
            }
        }
        let w = &self.params.weights;
        let mut out = Vec::new();
        for (i, lane) in self.lanes.iter().enumerate() {
            let l = u32::try_from(i).unwrap_or(u32::MAX);
            let f = w.lane.get(i).copied().unwrap_or(1);
            let k = |n: usize| w.kind.get(n).copied().unwrap_or(1).saturating_mul(f);
            if !lane.dead
                && lane.current.is_none()
                && !lane.calls.is_empty()
                && lane.engine.is_idle()
            {
                out.push((Action::Start(l), k(0)));
            }
            if let Some(c) = self.conns.get(i) {
                if let Engine::Tcp(s) = &lane.engine {
                    if !c.broken && s.has_unsent() {
                        out.push((Action::Send(l), k(1)));
                    }
                    if !c.broken && !c.s2c.is_empty() && s.failure().is_none() {
                        out.push((Action::Deliver(l), k(4)));
                    }
                }
                if c.can_serve() {
                    out.push((Action::Serve(l), k(5)));
                }
            }
            if let Some(qp) = self.qps.get(i) {
                if qp.can_transmit() {
                    out.push((Action::Transmit(l), k(1)));
                }
                if qp.can_execute() {
                    out.push((Action::Execute(l), k(2)));
                }
                if qp.can_complete() {
                    out.push((Action::Complete(l), k(3)));
                }
                if qp.can_reap() {
                    out.push((Action::Reap(l), k(4)));
                }
            }
            if let Some(t) = self.tlanes.get(i) {
                if t.cur.is_some() || !t.rx.is_empty() {
                    out.push((Action::Target(l), k(5)));
                }
            }
        }
        if w.evict > 0 && !self.mem.dirty_lines().is_empty() {
            out.push((Action::Evict, w.evict));
        }
        if w.drain > 0 && self.mem.can_drain() {
            out.push((Action::Drain, w.drain));
        }
        out
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::Start(l) => self.start(l),
            Action::Transmit(l) => {
                if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
                    let id = qp.transmit();
                    self.note(format!(
                        "lane {l}: op #{} reaches the remote NIC",
                        id.unwrap_or(0)
                    ));
                }
            }
            Action::Execute(l) => self.execute(l),
            Action::Complete(l) => {
                let done = self.qps.get_mut(lane_idx(l)).and_then(Qp::complete);
                if let Some(e) = done {
                    self.note(format!(
                        "lane {l}: op #{} {} completes{}",
                        e.id,
                        e.op.kind(),
                        if e.op.is_signaled() {
                            ""
                        } else {
                            " (unsignaled)"
                        }
                    ));
                }
            }
            Action::Reap(l) => self.reap(l),
            Action::Target(l) => self.target_step(l),
            Action::Evict => {
                if let Some(line) = self.mem.evict_random(&mut self.bg) {
                    self.note(format!("cache line {line} evicted"));
                }
            }
            Action::Drain => {
                if let Some(at) = self.mem.drain_random(&mut self.bg) {
                    self.note(format!("{at} drained to media"));
                }
            }
            Action::Send(l) => self.tcp_send(l),
            Action::Deliver(l) => self.tcp_deliver(l),
            Action::Serve(l) => self.tcp_serve(l),
            Action::Lose(l) if !self.conns.is_empty() => {
                self.lost_fired = true;
                self.tcp_reset(l);
            }
            Action::Kill => self.kill(),
            Action::Lose(l) => {
                self.lost_fired = true;
                if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
                    qp.break_connection();
                }
                if let Some(t) = self.tlanes.get_mut(lane_idx(l)) {
                    t.rx.clear();
                }
                if let Some(lane) = self.lanes.get_mut(lane_idx(l)) {
                    lane.fault = true;
                }
                self.note(format!("lane {l}: CONNECTION LOST"));
            }
        }
    }

    // ----- initiator -----

    fn start(&mut self, l: u32) {
        let step = self.step;
        let Some(lane) = self.lanes.get_mut(lane_idx(l)) else {
            return;
        };
        let Some(spec) = lane.calls.pop_front() else {
            return;
        };
        let (kind, relaxed) = match spec {
            CallSpec::Persist { relaxed, .. } => (CallKind::Persist, relaxed),
            CallSpec::Flush { relaxed, .. } => (CallKind::Flush, relaxed),
            CallSpec::Drain => (CallKind::Drain, false),
            CallSpec::DeepPersist { .. } => (CallKind::DeepPersist, true),
            CallSpec::Read { .. } => (CallKind::Read, false),
        };
        let mut own = None;
        if let Some((offset, len)) = spec.written() {
            match self.checker.issue(l, kind, relaxed, offset, len, step) {
                Ok(id) => {
                    let end = offset.saturating_add(len);
                    if let Some(dst) = self
                        .local
                        .get_mut(lane_idx(l))
                        .and_then(|v| v.get_mut(idx(offset)..idx(end)))
                    {
                        dst.fill(id);
                    }
                    own = Some(id);
                }
                Err(e) => {
                    self.errors.push(e.into());
                    lane.dead = true;
                    return;
                }
            }
        }
        let r = lane.engine.call(&spec);
        match r {
            Ok(()) => lane.current = Some((spec, kind, own)),
            Err(CallError::Broken(_)) => {
                lane.dead = true;
                self.calls_failed = self.calls_failed.saturating_add(1);
            }
            Err(error) => {
                lane.dead = true;
                self.errors.push(SimError::CallRejected {
                    lane: l,
                    call: spec.to_string(),
                    error,
                });
            }
        }
        let id = own.map_or(String::new(), |id| format!(" (write #{id})"));
        self.note(format!("lane {l}: call {spec}{id}"));
        self.settle(l);
    }

    /// Post everything the lane can post, then collect its result.
    fn settle(&mut self, l: u32) {
        if !self.conns.is_empty() {
            return self.tcp_settle(l);
        }
        for _ in 0..100_000 {
            let op = match self.lanes.get_mut(lane_idx(l)).map(|lane| &mut lane.engine) {
                Some(Engine::Rdma(e)) => e.poll_op(),
                _ => None,
            };
            let Some(op) = op else { break };
            self.post(l, op);
        }
        let result = match self.lanes.get_mut(lane_idx(l)).map(|lane| &mut lane.engine) {
            Some(Engine::Rdma(e)) => e.poll_done(),
            _ => None,
        };
        if let Some(r) = result {
            self.finish(l, r.map_err(Failure::Rdma));
        }
    }

    fn post(&mut self, l: u32, op: Op) {
        if op.lane() != l {
            self.errors.push(SimError::BadOp {
                lane: l,
                what: format!("{op:?} for lane {}", op.lane()),
            });
            return;
        }
        let view = self.local.get(lane_idx(l));
        let local = |off: u64, len: u64| -> Option<Vec<u8>> {
            view?
                .get(idx(off)..idx(off.saturating_add(len)))
                .map(<[u8]>::to_vec)
        };
        let payload = match op {
            Op::Write { offset, len, .. } => local(offset, len),
            Op::Read { .. } => Some(Vec::new()),
            Op::Flush { offset, len, .. } => {
                // The engine flushes only what it wrote: inside the
                // writable part of the pool, never empty.
                let end = offset.checked_add(len);
                let inside = len > 0
                    && offset >= self.min_offset
                    && end.is_some_and(|e| e <= self.params.pool_size);
                inside.then(Vec::new)
            }
            Op::Send { msg, inline, .. } => {
                let mut v = msg.to_bytes().to_vec();
                if inline {
                    match local(msg.offset, msg.size) {
                        Some(d) => {
                            v.extend_from_slice(&d);
                            Some(v)
                        }
                        None => None,
                    }
                } else {
                    Some(v)
                }
            }
        };
        let Some(payload) = payload else {
            self.errors.push(SimError::BadOp {
                lane: l,
                what: format!("{op:?} outside the local region (or the writable pool)"),
            });
            return;
        };
        let wq = u64::from(self.params.wq_size);
        let outstanding = self
            .lanes
            .get(lane_idx(l))
            .map_or(0, |lane| lane.engine.outstanding());
        if outstanding > wq {
            self.errors.push(SimError::BadOp {
                lane: l,
                what: format!("{op:?} with {outstanding} operations outstanding (wq_size {wq})"),
            });
        }
        let id = self
            .qps
            .get_mut(lane_idx(l))
            .map_or(0, |qp| qp.post(op, payload));
        self.note(format!("lane {l}: post op #{id} {}", describe_op(&op)));
    }

    fn finish(&mut self, l: u32, r: Result<(), Failure>) {
        let step = self.step;
        let Some(lane) = self.lanes.get_mut(lane_idx(l)) else {
            return;
        };
        let cur = lane.current.take();
        let call = cur.map_or("?".to_string(), |(s, _, _)| s.to_string());
        if self.app {
            lane.done = Some(r);
        }
        match r {
            Ok(()) => {
                self.calls_ok = self.calls_ok.saturating_add(1);
                if let Some((_, kind, own)) = cur.filter(|_| !self.app) {
                    self.checker.call_succeeded(l, kind, own, step);
                }
                self.note(format!("lane {l}: {call} returns success"));
            }
            Err(error) => {
                self.calls_failed = self.calls_failed.saturating_add(1);
                lane.dead = true;
                if !lane.fault && !lane.reported {
                    lane.reported = true;
                    self.errors.push(match error {
                        Failure::Rdma(error) => SimError::LaneBroken { lane: l, error },
                        Failure::Tcp(error) => SimError::StreamBroken { lane: l, error },
                        Failure::Reset => SimError::Internal(format!(
                            "lane {l}: connection reset without an injected fault"
                        )),
                    });
                }
                self.note(format!("lane {l}: {call} fails: {error}"));
            }
        }
    }

    fn reap(&mut self, l: u32) {
        let Some(cqe) = self.qps.get_mut(lane_idx(l)).and_then(Qp::reap) else {
            return;
        };
        let Some(lane) = self.lanes.get_mut(lane_idx(l)) else {
            return;
        };
        let Engine::Rdma(engine) = &mut lane.engine else {
            return;
        };
        let r = match cqe {
            Cqe::Write => engine.handle_completion(Completion::Write { lane: l }),
            Cqe::Read => engine.handle_completion(Completion::Read { lane: l }),
            Cqe::Send => engine.handle_completion(Completion::Send { lane: l }),
            Cqe::Flush => engine.handle_completion(Completion::Flush { lane: l }),
            Cqe::Recv(bytes) => engine.handle_completion(Completion::Recv {
                lane: l,
                bytes: &bytes,
            }),
            Cqe::Failed(op) => engine.handle_completion(Completion::Failed {
                lane: l,
                op,
                status: CONN_RESET,
            }),
        };
        if let Err(error) = r {
            // A call in flight fails through poll_done; an idle lane's next
            // call is refused with CallError::Broken.
            let idle = lane.current.is_none();
            if idle && !lane.fault && !lane.reported {
                lane.reported = true;
                self.errors.push(SimError::LaneBroken { lane: l, error });
            }
        }
        self.note(format!("lane {l}: reap {cqe:?}"));
        self.settle(l);
    }

    // ----- remote NIC and target -----

    fn refuse(&mut self, l: u32, what: &'static str, error: TargetError) {
        self.errors.push(SimError::TargetRefused {
            lane: l,
            what,
            error,
        });
        if let Some(lane) = self.lanes.get_mut(lane_idx(l)) {
            lane.fault = true;
        }
        if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
            qp.break_connection();
        }
    }

    fn execute(&mut self, l: u32) {
        let Some(inbound) = self.qps.get_mut(lane_idx(l)).and_then(Qp::pop_inbound) else {
            return;
        };
        match inbound {
            Inbound::Write { offset, data } => {
                let len = data.len() as u64;
                if let Err(e) = self.target.check_write(l, offset, len) {
                    return self.refuse(l, "a WRITE", e);
                }
                self.mem.nic_write(offset, &data);
                self.note(format!("lane {l}: WRITE [{offset}, +{len}) placed"));
            }
            Inbound::Read {
                sq_id,
                offset,
                len,
                dest,
            } => {
                if let Err(e) = self.target.check_read(l, offset, len) {
                    return self.refuse(l, "a READ", e);
                }
                let data = self.mem.read(offset, len);
                self.hash = fnv(self.hash, &data);
                if let (true, ReadDest::User { buf_offset }) = (self.app, dest) {
                    let end = buf_offset.saturating_add(len);
                    if let Some(dst) = self
                        .lanes
                        .get_mut(lane_idx(l))
                        .and_then(|lane| lane.read_buf.get_mut(idx(buf_offset)..idx(end)))
                    {
                        dst.copy_from_slice(&data);
                    }
                }
                if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
                    qp.mark_executed(sq_id);
                }
                self.note(format!("lane {l}: READ [{offset}, +{len}) answered"));
            }
            Inbound::Flush { sq_id, offset, len } => {
                nic_flush(&mut self.mem, offset, len);
                if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
                    qp.mark_executed(sq_id);
                }
                self.note(format!(
                    "lane {l}: FLUSH [{offset}, +{len}) executed (lines written back, fenced), answered"
                ));
            }
            Inbound::Send { bytes } => {
                let n = bytes.len();
                if let Some(t) = self.tlanes.get_mut(lane_idx(l)) {
                    t.rx.push_back(bytes);
                }
                self.note(format!(
                    "lane {l}: SEND of {n} bytes delivered to the target"
                ));
            }
        }
    }

    fn target_step(&mut self, l: u32) {
        let Some(t) = self.tlanes.get_mut(lane_idx(l)) else {
            return;
        };
        if t.cur.is_none() {
            t.cur = t.rx.pop_front().map(|b| (b, 0, (0, 0)));
        }
        let Some((bytes, i, mut streamed)) = t.cur.take() else {
            return;
        };
        let (nsteps, mut what, outcome) = {
            let plan = match self.target.handle_persist_msg(&bytes) {
                Ok(p) => p,
                Err(e) => return self.refuse(l, "a persist message", e),
            };
            let nsteps = plan.steps().len();
            let Some(step) = plan.steps().get(i).copied() else {
                return;
            };
            let what = describe_step(&step, plan.msg().mode.name());
            (
                nsteps,
                what,
                plan.execute_step(i, &mut self.mem, &mut streamed),
            )
        };
        if i == 0 && streamed.0 < streamed.1 {
            what.push_str(&format!(
                " (lines [{}, {}) non-temporal)",
                streamed.0, streamed.1
            ));
        }
        match outcome {
            Ok(Some(resp)) => {
                if let Some(qp) = self.qps.get_mut(lane_idx(l)) {
                    qp.push_recv(resp);
                }
            }
            Ok(None) => {}
            Err(e) => self.errors.push(SimError::Setup(format!(
                "simulated flush failed (cannot happen): {e}"
            ))),
        }
        let next = i.saturating_add(1);
        if next < nsteps {
            if let Some(t) = self.tlanes.get_mut(lane_idx(l)) {
                t.cur = Some((bytes, next, streamed));
            }
        }
        self.note(format!("lane {l}: target {what}"));
    }
}

/// What [`crate::app`] needs to set up a [`World`] it drives.
pub(crate) struct AppSetup {
    pub(crate) seed: u64,
    pub(crate) config: Config,
    pub(crate) params: Params,
    pub(crate) session: Session,
    pub(crate) secret: [u8; 32],
    pub(crate) verbose: bool,
}

/// The world as an application run drives it ([`crate::app`]): the same
/// engines, queue pairs, target, memory and scheduler as the built-in
/// check; calls come from the application instead of a generated workload.
impl World {
    pub(crate) fn new_app(s: AppSetup) -> Result<World, SimError> {
        let opts = RunOptions {
            verbose: s.verbose,
            ..RunOptions::default()
        };
        let empty = Workload { lanes: Vec::new() };
        let mut world = World::new(s.config, s.params, s.session, &empty, &opts, s.secret)?;
        let mut root = Rng::new(s.seed);
        let _params_stream = root.fork(1);
        let _workload_stream = root.fork(2);
        world.sched = root.fork(3);
        world.bg = root.fork(4);
        world.crash_rng = root.fork(5);
        world.seg_rng = Rng::new(s.seed).fork(9);
        world.app = true;
        Ok(world)
    }

    /// Kill the target process at step `at` (once).
    pub(crate) fn kill_at(&mut self, at: u64) {
        self.kill_at = Some(at);
    }

    /// Lose lane `lane`'s connection at step `at` (once).
    pub(crate) fn reset_at(&mut self, at: u64, lane: u32) {
        self.params.conn_loss = Some((at, lane));
    }

    /// Whether an injected fault fired.
    pub(crate) fn faulted(&self) -> bool {
        self.killed || self.lost_fired
    }

    fn kill(&mut self) {
        self.killed = true;
        for i in 0..self.lanes.len() {
            let l = u32::try_from(i).unwrap_or(u32::MAX);
            if !self.conns.is_empty() {
                self.tcp_reset(l);
            }
            if let Some(qp) = self.qps.get_mut(i) {
                qp.break_connection();
            }
            if let Some(t) = self.tlanes.get_mut(i) {
                t.rx.clear();
                t.cur = None;
            }
            if let Some(lane) = self.lanes.get_mut(i) {
                lane.fault = true;
            }
        }
        self.note("TARGET PROCESS KILLED (the host stays up)".to_string());
    }

    /// Copy `data` into the local region (every lane's view: one region).
    pub(crate) fn write_local(&mut self, offset: u64, data: &[u8]) {
        let end = offset.saturating_add(data.len() as u64);
        for view in &mut self.local {
            if let Some(dst) = view.get_mut(idx(offset)..idx(end)) {
                dst.copy_from_slice(data);
            }
        }
    }

    /// Local region bytes (empty if out of range).
    pub(crate) fn local_bytes(&self, offset: u64, len: u64) -> Vec<u8> {
        self.local
            .first()
            .and_then(|v| v.get(idx(offset)..idx(offset.saturating_add(len))))
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Start an application call on lane `l` (its READ data lands in the
    /// lane's buffer of `read_len` bytes).
    pub(crate) fn app_start(
        &mut self,
        l: u32,
        call: &Call,
        read_len: u64,
    ) -> Result<(), CallError> {
        let (spec, kind) = match *call {
            Call::Persist { offset, len, flags } => (
                CallSpec::Persist {
                    offset,
                    len,
                    relaxed: flags != 0,
                },
                CallKind::Persist,
            ),
            Call::Flush { offset, len, flags } => (
                CallSpec::Flush {
                    offset,
                    len,
                    relaxed: flags != 0,
                },
                CallKind::Flush,
            ),
            Call::DeepPersist { offset, len } => {
                (CallSpec::DeepPersist { offset, len }, CallKind::DeepPersist)
            }
            Call::Drain { .. } => (CallSpec::Drain, CallKind::Drain),
            Call::Read { offset, len } => (CallSpec::Read { offset, len }, CallKind::Read),
            Call::Write { .. } => return Ok(()),
        };
        // The application checks the lane first: a missing one is busy.
        let reset = self.conns.get(lane_idx(l)).is_some_and(|c| c.broken);
        let Some(lane) = self.lanes.get_mut(lane_idx(l)) else {
            return Err(CallError::Busy(kind));
        };
        if reset {
            // TCP: the connection is gone (rpmem's lane sees the reset).
            return Err(CallError::Broken(LaneError::OpFailed {
                op: rpmem_core::persist::OpKind::Recv,
                status: CONN_RESET,
            }));
        }
        lane.engine.call_app(call)?;
        lane.read_buf = vec![0; idx(read_len)];
        lane.current = Some((spec, kind, None));
        lane.done = None;
        self.note(format!("lane {l}: call {call}"));
        self.settle(l);
        Ok(())
    }

    /// The result of lane `l`'s call, once it returned (failures as text).
    pub(crate) fn take_done(&mut self, l: u32) -> Option<Result<(), String>> {
        let lane = self.lanes.get_mut(lane_idx(l))?;
        lane.done.take().map(|r| r.map_err(|e| e.to_string()))
    }

    /// A crash point inside the current step (TCP: between two steps of a
    /// persist message's plan), for the application to judge.
    fn app_mid_point(&mut self) {
        let words = self
            .mem
            .take_changed()
            .into_iter()
            .map(|w| (w, self.mem.crash_candidates(w)))
            .collect();
        self.mid_points.push(MidPoint {
            step: self.step,
            words,
        });
    }

    /// The crash points inside the last step, oldest first.
    pub(crate) fn take_mid_points(&mut self) -> Vec<MidPoint> {
        std::mem::take(&mut self.mid_points)
    }

    /// What a READ of lane `l` brought back (RDMA or TCP).
    pub(crate) fn take_read(&mut self, l: u32) -> Vec<u8> {
        self.lanes
            .get_mut(lane_idx(l))
            .map(|lane| std::mem::take(&mut lane.read_buf))
            .unwrap_or_default()
    }

    /// What lane `l` still has outstanding (for a stuck call's report).
    pub(crate) fn pending(&self, l: u32) -> String {
        self.lanes
            .get(lane_idx(l))
            .map_or(String::new(), |lane| lane.engine.pending())
    }

    pub(crate) fn mem(&self) -> &Memory {
        &self.mem
    }

    pub(crate) fn mem_mut(&mut self) -> &mut Memory {
        &mut self.mem
    }

    /// Errors since the last call (what must not happen).
    pub(crate) fn take_errors(&mut self) -> Vec<SimError> {
        std::mem::take(&mut self.errors)
    }

    pub(crate) fn app_note(&mut self, line: String) {
        self.note(line);
    }

    pub(crate) fn steps(&self) -> u64 {
        self.step
    }

    /// Count a step the caller took (an application call's start).
    pub(crate) fn count_step(&mut self) {
        self.step = self.step.saturating_add(1);
    }

    pub(crate) fn trace_hash(&self) -> u64 {
        self.hash
    }

    pub(crate) fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }
}

/// The remote NIC executes an RDMA FLUSH (persistent placement type) of
/// `[offset, offset + len)` as rxe's responder does: a write-back of every
/// cache line of the range, then a fence.
///
/// Written here rather than with `rpmem_core::flush::persist_range`: that
/// is rpmemd's code, whose seeded bugs (a missing fence, a missing last
/// line) must not leak into the model of the NIC.
pub fn nic_flush(mem: &mut Memory, offset: u64, len: u64) {
    if len == 0 {
        return;
    }
    let end = offset.saturating_add(len);
    let mut line = offset & !(LINE - 1);
    while line < end {
        mem.flush_line(line);
        line = match line.checked_add(LINE) {
            Some(next) => next,
            None => break,
        };
    }
    mem.fence();
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::Write {
            offset,
            len,
            signaled,
            ..
        } => format!(
            "WRITE [{offset}, +{len}){}",
            if *signaled { " signaled" } else { "" }
        ),
        Op::Read {
            offset, len, dest, ..
        } => format!("READ [{offset}, +{len}) {dest:?}"),
        Op::Send { msg, inline, .. } => format!(
            "SEND {} [{}, +{}){}",
            msg.mode,
            msg.offset,
            msg.size,
            if *inline { " inline" } else { "" }
        ),
        Op::Flush { offset, len, .. } => format!("FLUSH [{offset}, +{len})"),
    }
}

fn describe_step(step: &TargetStep<'_>, mode: &str) -> String {
    match step {
        TargetStep::CopyInline { offset, data } => {
            format!("{mode}: copy {} bytes to {offset}", data.len())
        }
        TargetStep::Flush {
            mode: m,
            offset,
            len,
        } => {
            format!("{mode}: flush ({m:?}) [{offset}, +{len})")
        }
        TargetStep::DeepFlush {
            mode: m,
            offset,
            len,
        } => {
            format!("{mode}: deep flush ({m:?}) [{offset}, +{len})")
        }
        TargetStep::Respond(_) => format!("{mode}: respond"),
    }
}
