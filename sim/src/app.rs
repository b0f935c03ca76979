//! Crash-test your own code: the simulator as a library.
//!
//! Write your application against [`Replica`] (the trait `rpmem::Lane`
//! implements for real), give the simulator a **workload** (your code,
//! run against a simulated pool) and a **recover** function (your recovery
//! code's verdict on a post-crash image of the remote pool), and
//! [`Simulation::run`] crashes the target at every step of every call,
//! builds the post-crash images of that step and runs `recover` on each.
//!
//! ```
//! use sim::app::{Call, Replica, Simulation, PERSIST_RELAXED};
//!
//! // The application: a value, then a flag saying it is there.
//! let workload = |r: &mut sim::app::SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
//!     let base = r.data_start();
//!     r.write(base + 64, &42u64.to_le_bytes())?;
//!     r.persist(base + 64, 8, PERSIST_RELAXED)?;
//!     r.write(base, &1u64.to_le_bytes())?;
//!     r.persist(base, 8, 0)?;
//!     Ok(())
//! };
//! // Its recovery: if the flag is set, the value must be there.
//! let recover = |image: &[u8], _history: &[Call]| -> Result<(), String> {
//!     let word = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
//!     match (word(4096), word(4096 + 64)) {
//!         (0, _) | (1, 42) => Ok(()),
//!         (flag, value) => Err(format!("flag {flag} but value {value}")),
//!     }
//! };
//! let report = Simulation::new(workload, recover).seeds(1..4).run();
//! // Plain persists are durable on every allowed platform but one: on
//! // devdax-wpq only deep persists reach media, and there the flag may
//! // survive without the value.
//! let failure = report.failure.expect("caught");
//! assert_eq!(failure.config.platform.name, "devdax-wpq");
//! println!("{failure}"); // seed, configuration, history, differing words
//! ```
//!
//! How a run goes (one seed in one configuration): the CREATE handshake
//! through rpmem-core's out-of-band machines, one lane per
//! [`Simulation::lanes`] ([`rpmem_core::persist::InitiatorLane`], each with
//! its queue pair [`Qp`]), the target ([`Target`]) and its memory
//! ([`Memory`]), as [`crate::world`] runs them for the built-in check. Your
//! workload runs on the calling thread; each [`Replica`] call it makes (on
//! the [`SimLane`], lane 0, or on [`SimLane::lane`]) is started on its
//! lane's engine and then executed **step by step to completion** (transmit,
//! place, deliver, target copy/flush/respond, complete, reap, evictions and
//! drains, in an order the seed decides), with a crash point before every
//! step and after the last one; what other lanes left in flight (a flush
//! not yet drained) moves on in the same steps. When the workload returns,
//! what is still in flight runs to the end, crash points included.
//!
//! At a crash point every aligned 8-byte word of the pool holds one of its
//! crash candidates ([`Memory::crash_candidates`]: the media value, an
//! unfenced write-back, a dirty line evicted at the crash, ...), words
//! independent. The images of the point are the product of the candidate
//! sets: when the product is at most [`Simulation::max_images`] every image
//! is built and judged (*exhaustive*), otherwise that many are drawn from
//! the seed (the all-old and all-new images first; *sampled*). The
//! [`Report`] counts both kinds; a [`Failure`] says which kind its point was.
//! A point where neither the memory's candidates nor the history changed
//! since the previous one is not judged again (its images were). A panic
//! in `recover` rejects the image (`recover panicked: ..`); a panic in the
//! workload is a run error ([`RunError`]).
//!
//! Limits of this slice: calls run one at a time, each to its end, and the
//! workload runs between calls, never during one (what the simulator
//! interleaves is the network, the target and the memory, not your
//! threads: two lanes' calls never overlap); no connection
//! loss is injected; the image given to `recover` has zeros in the pool
//! header page (rpmemd keeps the real header there). See
//! `docs/crash-testing.md`.

use std::collections::{BTreeMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use rpmem_replica::{Replica, FLUSH_RELAXED, PERSIST_RELAXED};

use rpmem_core::persist::{
    CallError, Completion, InitiatorLane, LaneError, Op, Placement, ReadDest, Target, TargetError,
    TargetStep,
};

use crate::handshake::{self, Session, TargetOffer};
use crate::memory::{Candidate, Memory, Word, PAGE, WORD};
use crate::platform::{method_label, Config};
use crate::rng::Rng;
use crate::rnic::{Cqe, Inbound, Qp, CONN_RESET};
use crate::workload::Size;
use crate::world::{draw_params, nic_flush, Params, MUTANT_LOCK};

/// Default pool size: the header page and three data pages.
pub const DEFAULT_POOL_SIZE: u64 = 4 * PAGE;
/// Default bound on the images judged per crash point.
pub const DEFAULT_MAX_IMAGES: u64 = 1024;
/// Default bound on the steps of one run.
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;
/// Lanes a simulated pool has at most.
pub const MAX_LANES: u32 = 4;
/// Words listed at most in a failure's difference.
pub const MAX_DIFF_WORDS: usize = 32;

/// One call of the application, as the history records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// [`Replica::write`]: bytes written into the local region.
    Write {
        /// Pool offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// [`Replica::persist`].
    Persist {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Flags (0 or [`PERSIST_RELAXED`]).
        flags: u32,
    },
    /// [`Replica::deep_persist`].
    DeepPersist {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// [`Replica::flush`].
    Flush {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Flags (0 or [`FLUSH_RELAXED`]).
        flags: u32,
    },
    /// [`Replica::drain`].
    Drain {
        /// Flags (0).
        flags: u32,
    },
    /// [`Replica::read`].
    Read {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl Call {
    /// The range the call sends to the pool, if it sends one.
    pub fn sent(&self) -> Option<(u64, u64)> {
        match *self {
            Call::Persist { offset, len, .. }
            | Call::DeepPersist { offset, len }
            | Call::Flush { offset, len, .. } => Some((offset, len)),
            Call::Write { .. } | Call::Drain { .. } | Call::Read { .. } => None,
        }
    }

    /// Whether the call covers pool offset `at` (writes: the bytes written;
    /// the others: their range).
    pub fn covers(&self, at: u64) -> bool {
        let (o, l) = match self {
            Call::Write { offset, data } => (*offset, data.len() as u64),
            Call::Persist { offset, len, .. }
            | Call::DeepPersist { offset, len }
            | Call::Flush { offset, len, .. }
            | Call::Read { offset, len } => (*offset, *len),
            Call::Drain { .. } => return false,
        };
        at >= o && at - o < l
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = |flags: u32| {
            if flags == 0 {
                "0".to_string()
            } else if flags == PERSIST_RELAXED {
                "RELAXED".to_string()
            } else {
                format!("{flags:#x}")
            }
        };
        match self {
            Call::Write { offset, data } => {
                write!(f, "write({offset}, {} bytes", data.len())?;
                if let Some(head) = data.get(..data.len().min(16)) {
                    write!(f, ": {}", hex(head))?;
                    if data.len() > 16 {
                        write!(f, " ..")?;
                    }
                }
                write!(f, ")")
            }
            Call::Persist {
                offset,
                len,
                flags: fl,
            } => {
                write!(f, "persist({offset}, {len}, {})", flags(*fl))
            }
            Call::DeepPersist { offset, len } => write!(f, "deep_persist({offset}, {len})"),
            Call::Flush {
                offset,
                len,
                flags: fl,
            } => {
                write!(f, "flush({offset}, {len}, {})", flags(*fl))
            }
            Call::Drain { flags } => write!(f, "drain({flags})"),
            Call::Read { offset, len } => write!(f, "read({offset}, {len})"),
        }
    }
}

/// `platform METHOD`, e.g. `adr-ddio GPSPM`.
pub fn config_name(c: &Config) -> String {
    format!("{} {}", c.platform.name, method_label(c.method))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a call on a [`SimLane`] did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimCallError {
    /// The engine refused the call before anything was sent (bad flags, a
    /// range outside the pool or inside the pool header): as rpmem's
    /// `Error::Call`. The lane is unchanged.
    #[error("{call} refused: {error}")]
    Rejected {
        /// The call.
        call: String,
        /// The engine's answer.
        error: CallError,
    },
    /// A local-region access outside the region.
    #[error("local region access [{offset}, +{len}) outside the region of {size} bytes")]
    OutOfRange {
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Region size.
        size: u64,
    },
    /// The lane broke (cannot happen in this slice: no faults are injected;
    /// reported as a simulator error).
    #[error("{call} failed: {error}")]
    Failed {
        /// The call.
        call: String,
        /// The engine's error.
        error: LaneError,
    },
    /// The pool has no such lane ([`Simulation::lanes`]).
    #[error("lane {lane} does not exist: the pool has {nlanes} lane(s)")]
    NoSuchLane {
        /// The lane asked for.
        lane: u32,
        /// Lanes of the pool.
        nlanes: u32,
    },
    /// The simulation stops the workload: a crash image was rejected, or
    /// the run hit a limit or a simulator error. Propagate it (`?`).
    #[error("the simulation stopped this run")]
    Stopped,
}

/// The first crash image `recover` rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The seed (replay with [`Simulation::run_one`] or `.seeds(s..s + 1)`).
    pub seed: u64,
    /// The configuration.
    pub config: Config,
    /// Steps executed before the crash.
    pub step: u64,
    /// What `recover` said.
    pub reason: String,
    /// The calls that returned success before the crash, oldest first (what
    /// `recover` was given).
    pub history: Vec<Call>,
    /// The lane of each call of `history`.
    pub history_lanes: Vec<u32>,
    /// The lane and call in flight at the crash, if any.
    pub in_flight: Option<(u32, Call)>,
    /// Images of the crash point (the product of the candidate counts,
    /// saturating).
    pub images_at_point: u64,
    /// Whether every image of the point was judged (else a seeded sample of
    /// [`Simulation::max_images`]).
    pub exhaustive: bool,
    /// Index of the rejected image among those judged at the point.
    pub image_index: u64,
    /// The rejected image.
    pub image: Vec<u8>,
    /// Words of the image that differ from the last acknowledged state
    /// (what the pool holds if exactly the acknowledged calls reached it),
    /// lowest offset first, at most [`MAX_DIFF_WORDS`].
    pub diff: Vec<WordDiff>,
    /// Words that differ in all (the list may be cut).
    pub diff_total: usize,
}

/// One word of a rejected image that differs from the acknowledged state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordDiff {
    /// Pool offset of the word.
    pub offset: u64,
    /// Its value in the image.
    pub image: Word,
    /// Its value in the acknowledged state.
    pub acknowledged: Word,
    /// Where the image's value comes from (media, a dirty cache line, ...).
    pub source: &'static str,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "recover rejected a crash image: {}", self.reason)?;
        writeln!(
            f,
            "  seed {} in configuration {} (replay: .configs(vec![config]).seeds({}..{}))",
            self.seed,
            config_name(&self.config),
            self.seed,
            self.seed.saturating_add(1)
        )?;
        match &self.in_flight {
            Some((l, c)) => writeln!(f, "  crash after step {}, during lane {l}: {c}", self.step)?,
            None => writeln!(f, "  crash after step {}, between calls", self.step)?,
        }
        writeln!(
            f,
            "  image {} of {} at this crash point ({})",
            self.image_index.saturating_add(1),
            self.images_at_point,
            if self.exhaustive {
                "all images judged"
            } else {
                "a seeded sample judged"
            }
        )?;
        writeln!(f, "  calls that returned success, oldest first:")?;
        if self.history.is_empty() {
            writeln!(f, "    (none)")?;
        }
        for (i, c) in self.history.iter().enumerate() {
            match self.history_lanes.get(i) {
                Some(l) => writeln!(f, "    {:>3}. lane {l}: {c}", i.saturating_add(1))?,
                None => writeln!(f, "    {:>3}. {c}", i.saturating_add(1))?,
            }
        }
        writeln!(
            f,
            "  words that differ from the last acknowledged state ({}):",
            self.diff_total
        )?;
        for d in &self.diff {
            writeln!(
                f,
                "    word {:>6}: image {} ({}), acknowledged {}",
                d.offset,
                hex(&d.image),
                d.source,
                hex(&d.acknowledged)
            )?;
        }
        if self.diff_total > self.diff.len() {
            writeln!(f, "    ...")?;
        }
        Ok(())
    }
}

/// Something that must not happen: a simulator error, a limit, or a
/// workload that returned an error of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    /// The seed.
    pub seed: u64,
    /// The configuration.
    pub config: Config,
    /// What happened.
    pub what: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} in {}: {}",
            self.seed,
            config_name(&self.config),
            self.what
        )
    }
}

/// What one run (one seed, one configuration) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The configuration.
    pub config: Config,
    /// Steps executed.
    pub steps: u64,
    /// Calls that returned success.
    pub calls: u64,
    /// Crash points.
    pub crash_points: u64,
    /// Points whose images were all judged.
    pub exhaustive_points: u64,
    /// Points judged on a seeded sample.
    pub sampled_points: u64,
    /// Points equal to the previous one (not judged again).
    pub unchanged_points: u64,
    /// Images given to `recover`.
    pub images: u64,
    /// The first rejected image.
    pub failure: Option<Failure>,
    /// Simulator errors, limits, workload errors.
    pub errors: Vec<RunError>,
    /// FNV-1a hash of the step trace: the same seed gives the same hash.
    pub trace_hash: u64,
    /// One line per step (with [`Simulation::verbose`]).
    pub log: Vec<String>,
}

/// What a campaign found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Runs (seed x configuration) executed.
    pub runs: u64,
    /// Steps over all runs.
    pub steps: u64,
    /// Crash points over all runs.
    pub crash_points: u64,
    /// Points whose images were all judged.
    pub exhaustive_points: u64,
    /// Points judged on a seeded sample.
    pub sampled_points: u64,
    /// Points equal to the previous one of their run.
    pub unchanged_points: u64,
    /// Images given to `recover`.
    pub images: u64,
    /// The first failure (the campaign stops there).
    pub failure: Option<Failure>,
    /// The first errors (the campaign stops at the first run with one).
    pub errors: Vec<RunError>,
}

impl Report {
    /// No image rejected and no error.
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} runs, {} steps, {} crash points ({} all images judged, {} sampled, {} unchanged), {} images judged",
            self.runs,
            self.steps,
            self.crash_points,
            self.exhaustive_points,
            self.sampled_points,
            self.unchanged_points,
            self.images
        )?;
        for e in &self.errors {
            writeln!(f, "ERROR: {e}")?;
        }
        match &self.failure {
            Some(fail) => write!(f, "FAILURE: {fail}"),
            None if self.errors.is_empty() => writeln!(f, "every image accepted"),
            None => Ok(()),
        }
    }
}

/// The workload: your code against the simulated pool.
pub type Workload<'a> = dyn Fn(&mut SimLane<'_>) -> Result<(), Box<dyn StdError>> + 'a;
/// The recovery check: `Ok` when the image (the whole pool) is acceptable
/// given the calls that returned success.
pub type Recover<'a> = dyn Fn(&[u8], &[Call]) -> Result<(), String> + 'a;

/// A crash-test campaign: a workload, a recovery check, configurations and
/// seeds.
pub struct Simulation<'a> {
    workload: Box<Workload<'a>>,
    recover: Box<Recover<'a>>,
    configs: Vec<Config>,
    seeds: Range<u64>,
    pool_size: u64,
    headers: bool,
    max_images: u64,
    max_steps: u64,
    verbose: bool,
    lanes: u32,
}

impl fmt::Debug for Simulation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("configs", &self.configs.len())
            .field("seeds", &self.seeds)
            .field("pool_size", &self.pool_size)
            .field("headers", &self.headers)
            .field("max_images", &self.max_images)
            .finish_non_exhaustive()
    }
}

impl<'a> Simulation<'a> {
    /// A campaign over every allowed configuration
    /// (`Config::all()` filtered by [`Config::allowed`]), seeds `1..21`, a
    /// pool of [`DEFAULT_POOL_SIZE`] bytes with a header page.
    pub fn new(
        workload: impl Fn(&mut SimLane<'_>) -> Result<(), Box<dyn StdError>> + 'a,
        recover: impl Fn(&[u8], &[Call]) -> Result<(), String> + 'a,
    ) -> Simulation<'a> {
        Simulation {
            workload: Box::new(workload),
            recover: Box::new(recover),
            configs: Config::all().into_iter().filter(Config::allowed).collect(),
            seeds: 1..21,
            pool_size: DEFAULT_POOL_SIZE,
            headers: true,
            max_images: DEFAULT_MAX_IMAGES,
            max_steps: DEFAULT_MAX_STEPS,
            verbose: false,
            lanes: 1,
        }
    }

    /// Lanes of the simulated pool (1 to [`MAX_LANES`]; default 1). The
    /// workload gets lane 0 as the [`SimLane`] itself and the others from
    /// [`SimLane::lane`]. Calls still run one at a time, each to its end;
    /// what a lane left in flight moves on while other lanes' calls run.
    pub fn lanes(mut self, n: u32) -> Self {
        self.lanes = n;
        self
    }

    /// The configurations to run (method x platform; see
    /// [`crate::platform`]).
    pub fn configs(mut self, configs: Vec<Config>) -> Self {
        self.configs = configs;
        self
    }

    /// The seeds to run, each in every configuration.
    pub fn seeds(mut self, seeds: Range<u64>) -> Self {
        self.seeds = seeds;
        self
    }

    /// Pool size in bytes: a multiple of 4096, at least two pages with a
    /// header, one without.
    pub fn pool_size(mut self, bytes: u64) -> Self {
        self.pool_size = bytes;
        self
    }

    /// Whether the pool has a header page (its first 4096 bytes cannot be
    /// written; [`Replica::data_start`] is 4096). Default: true.
    pub fn headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// Images judged per crash point at most: points with more are judged
    /// on a seeded sample of this many (at least 2: all-old, all-new).
    pub fn max_images(mut self, n: u64) -> Self {
        self.max_images = n.max(2);
        self
    }

    /// Steps per run at most (a run that needs more is an error).
    pub fn max_steps(mut self, n: u64) -> Self {
        self.max_steps = n;
        self
    }

    /// Keep one line per step in each [`RunReport::log`].
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    /// Run every seed in every configuration, stopping at the first failure
    /// or error.
    pub fn run(&self) -> Report {
        let mut report = Report::default();
        for seed in self.seeds.clone() {
            for &config in &self.configs {
                let r = self.run_one(seed, config);
                report.runs = report.runs.saturating_add(1);
                report.steps = report.steps.saturating_add(r.steps);
                report.crash_points = report.crash_points.saturating_add(r.crash_points);
                report.exhaustive_points =
                    report.exhaustive_points.saturating_add(r.exhaustive_points);
                report.sampled_points = report.sampled_points.saturating_add(r.sampled_points);
                report.unchanged_points =
                    report.unchanged_points.saturating_add(r.unchanged_points);
                report.images = report.images.saturating_add(r.images);
                report.errors.extend(r.errors);
                if r.failure.is_some() {
                    report.failure = r.failure;
                }
                if !report.passed() {
                    return report;
                }
            }
        }
        report
    }

    /// Run one seed in one configuration (a replay: the same seed gives
    /// the same run, the same failure and the same trace hash). The engines
    /// run without seeded bugs: the run shares the simulator's mutant lock
    /// with other runs without one, so a mutant run of [`crate::world`] in
    /// another thread waits for it.
    pub fn run_one(&self, seed: u64, config: Config) -> RunReport {
        let _no_mutant = MUTANT_LOCK.read().unwrap_or_else(|e| e.into_inner());
        let mut report = RunReport {
            seed,
            config,
            steps: 0,
            calls: 0,
            crash_points: 0,
            exhaustive_points: 0,
            sampled_points: 0,
            unchanged_points: 0,
            images: 0,
            failure: None,
            errors: Vec::new(),
            trace_hash: FNV_OFFSET,
            log: Vec::new(),
        };
        let mut lane = match SimLane::new(seed, config, self) {
            Ok(l) => l,
            Err(what) => {
                report.errors.push(RunError { seed, config, what });
                return report;
            }
        };
        lane.crash_point();
        if !lane.stopped {
            let workload = &self.workload;
            let outcome = catch_unwind(AssertUnwindSafe(|| workload(&mut lane)));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if !lane.stopped {
                        lane.error(format!("the workload returned an error: {e}"));
                    }
                }
                Err(p) => {
                    // The run's state is whatever the panic left: no quiesce.
                    let text = panic_text(&*p);
                    lane.error(format!("the workload panicked: {text}"));
                }
            }
        }
        if !lane.stopped {
            lane.quiesce();
        }
        report.steps = lane.step;
        report.calls = lane.history.len() as u64;
        report.crash_points = lane.crash_points;
        report.exhaustive_points = lane.exhaustive_points;
        report.sampled_points = lane.sampled_points;
        report.unchanged_points = lane.unchanged_points;
        report.images = lane.images;
        report.failure = lane.failure.take();
        report.errors = std::mem::take(&mut lane.errors);
        report.trace_hash = lane.hash;
        report.log = std::mem::take(&mut lane.log);
        report
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

fn idx(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn word_at(buf: &[u8], w: u64) -> Word {
    let mut out = [0u8; 8];
    if let Some(src) = buf.get(idx(w)..idx(w.saturating_add(WORD))) {
        out.copy_from_slice(src);
    }
    out
}

fn set_word(buf: &mut [u8], w: u64, v: &Word) {
    if let Some(dst) = buf.get_mut(idx(w)..idx(w.saturating_add(WORD))) {
        dst.copy_from_slice(v);
    }
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Transmit(usize),
    Execute(usize),
    Complete(usize),
    Reap(usize),
    Target(usize),
    Evict,
    Drain,
}

/// One lane's engine, queue pair and target-side queue.
#[derive(Debug)]
struct LaneState {
    engine: InitiatorLane,
    qp: Qp,
    rx: VecDeque<Vec<u8>>,
    /// The message the target is executing, its next step, what streamed.
    cur_msg: Option<(Vec<u8>, usize, (u64, u64))>,
    done: Option<Result<(), LaneError>>,
    /// The call in flight and the bytes it sends (as the region held them).
    in_flight: Option<(Call, Vec<u8>)>,
    /// Flushes of this lane that returned, not yet drained.
    unacked_flushes: Vec<(u64, Vec<u8>)>,
    read_buf: Vec<u8>,
}

/// The simulated pool as your workload sees it. It implements [`Replica`]
/// as lane 0; [`SimLane::lane`] gives the other lanes
/// ([`Simulation::lanes`]). Every call runs to completion inside the
/// simulator, with a crash point at every step, while what other lanes
/// still have in flight progresses too.
pub struct SimLane<'s> {
    seed: u64,
    config: Config,
    params: Params,
    session: Session,
    recover: &'s Recover<'s>,
    max_images: u64,
    max_steps: u64,
    verbose: bool,
    target: Target,
    mem: Memory,
    lanes: Vec<LaneState>,
    local: Vec<u8>,
    sched: Rng,
    bg: Rng,
    sample: Rng,
    step: u64,
    hash: u64,
    log: Vec<String>,
    // Crash images.
    base: Vec<u8>,
    img: Vec<u8>,
    multi: BTreeMap<u64, Vec<Candidate>>,
    judged_history: Option<usize>,
    // History and the acknowledged state.
    history: Vec<Call>,
    history_lanes: Vec<u32>,
    acked: Vec<u8>,
    // Results.
    crash_points: u64,
    exhaustive_points: u64,
    sampled_points: u64,
    unchanged_points: u64,
    images: u64,
    failure: Option<Failure>,
    errors: Vec<RunError>,
    stopped: bool,
}

impl fmt::Debug for SimLane<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLane")
            .field("seed", &self.seed)
            .field("config", &self.config)
            .field("session", &self.session)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

fn lane_no(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<'s> SimLane<'s> {
    fn new(seed: u64, config: Config, sim: &'s Simulation<'s>) -> Result<SimLane<'s>, String> {
        if !sim.pool_size.is_multiple_of(PAGE)
            || sim.pool_size < PAGE.saturating_mul(if sim.headers { 2 } else { 1 })
            || sim.pool_size > 1 << 30
        {
            return Err(format!(
                "pool size {} must be a multiple of {PAGE}, at least {} and at most 1 GiB",
                sim.pool_size,
                if sim.headers { 2 * PAGE } else { PAGE }
            ));
        }
        if !(1..=MAX_LANES).contains(&sim.lanes) {
            return Err(format!(
                "{} lanes asked: the simulator runs 1 to {MAX_LANES}",
                sim.lanes
            ));
        }
        let mut params = draw_params(seed, Some(Size::Small));
        params.pool_size = sim.pool_size;
        params.headers = sim.headers;
        params.ask.pool_size = sim.pool_size;
        params.ask.headers = sim.headers;
        params.ask.nlanes = sim.lanes;
        // The workload needs its lanes: the target grants them.
        params.target_max_lanes = sim.lanes;
        params.conn_loss = None;
        let mut root = Rng::new(seed);
        let _params_stream = root.fork(1);
        let _workload_stream = root.fork(2);
        let sched = root.fork(3);
        let bg = root.fork(4);
        let sample = root.fork(5);
        let mut secret_rng = root.fork(6);
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&secret_rng.next_u64().to_le_bytes());
        }
        secret[0] |= 1;
        let offer = TargetOffer {
            method: config.announced(),
            max_nlanes: params.target_max_lanes,
            max_inline: params.target_max_inline,
            pmem: config.platform.pmem,
            deep_flush: config.platform.deep_differs(),
            rdma_flush: config.offers_rdma_flush(),
            secret,
        };
        let session = handshake::create(&params.ask, &offer).map_err(|e| e.to_string())?;
        if session.method != config.method {
            return Err(format!(
                "the handshake settled on {} (announced {}), the configuration runs {}",
                session.method, session.announced, config.method
            ));
        }
        if session.nlanes != sim.lanes {
            return Err(format!(
                "{} lanes asked, {} granted",
                sim.lanes, session.nlanes
            ));
        }
        let target =
            Target::new(session.target(config.flush)).map_err(|e| format!("target: {e}"))?;
        let mut mem =
            Memory::new(config.platform, params.pool_size).map_err(|e| format!("memory: {e}"))?;
        mem.set_streaming(params.stream_inline);
        let mut lanes = Vec::new();
        for l in 0..session.nlanes {
            let mut p = session.lane(l, Placement::Rdma);
            p.wq_size = params.wq_size;
            p.send_window = params.send_window;
            p.max_op_len = params.max_op_len;
            let engine = InitiatorLane::new(p).map_err(|e| format!("lane {l}: {e}"))?;
            lanes.push(LaneState {
                engine,
                qp: Qp::new(),
                rx: VecDeque::new(),
                cur_msg: None,
                done: None,
                in_flight: None,
                unacked_flushes: Vec::new(),
                read_buf: Vec::new(),
            });
        }
        let size = idx(params.pool_size);
        let mut sl = SimLane {
            seed,
            config,
            session,
            recover: &*sim.recover,
            max_images: sim.max_images,
            max_steps: sim.max_steps,
            verbose: sim.verbose,
            target,
            mem,
            lanes,
            local: vec![0; size],
            sched,
            bg,
            sample,
            step: 0,
            hash: FNV_OFFSET,
            log: Vec::new(),
            base: vec![0; size],
            img: vec![0; size],
            multi: BTreeMap::new(),
            judged_history: None,
            history: Vec::new(),
            history_lanes: Vec::new(),
            acked: vec![0; size],
            crash_points: 0,
            exhaustive_points: 0,
            sampled_points: 0,
            unchanged_points: 0,
            images: 0,
            failure: None,
            errors: Vec::new(),
            stopped: false,
            params,
        };
        sl.note(format!(
            "session: {} lane(s), {} (announced {}), inline_max {}, wq_size {}, send_window {}, max_op_len {}{}",
            session.nlanes,
            session.method,
            session.announced,
            session.inline_max,
            sl.params.wq_size,
            sl.params.send_window,
            sl.params.max_op_len,
            if sl.params.stream_inline {
                ", inline copies streamed"
            } else {
                ""
            }
        ));
        Ok(sl)
    }

    /// The run's seed (seed your workload's own randomness from it, so that
    /// the seed replays the run).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The run's configuration.
    pub fn config(&self) -> Config {
        self.config
    }

    /// What the handshake agreed (method, lanes, inline size, ...).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Lanes of the pool ([`Simulation::lanes`]).
    pub fn nlanes(&self) -> u32 {
        lane_no(self.lanes.len())
    }

    /// Lane `index` as a [`Replica`] (lane 0 is also `self`). Its calls
    /// run to completion like lane 0's; what another lane left in flight
    /// (a flush not yet drained) keeps moving meanwhile.
    pub fn lane(&mut self, index: u32) -> Result<OtherLane<'_, 's>, SimCallError> {
        if usize::try_from(index).map_or(true, |i| i >= self.lanes.len()) {
            return Err(SimCallError::NoSuchLane {
                lane: index,
                nlanes: self.nlanes(),
            });
        }
        Ok(OtherLane {
            sim: self,
            lane: index,
        })
    }

    /// Steps executed so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The calls that returned success so far.
    pub fn history(&self) -> &[Call] {
        &self.history
    }

    fn note(&mut self, line: String) {
        self.hash = fnv(self.hash, &self.step.to_le_bytes());
        self.hash = fnv(self.hash, line.as_bytes());
        if self.verbose {
            self.log.push(format!("[{:>6}] {line}", self.step));
        }
    }

    fn error(&mut self, what: String) {
        self.note(format!("ERROR: {what}"));
        self.errors.push(RunError {
            seed: self.seed,
            config: self.config,
            what,
        });
        self.stopped = true;
    }

    fn local_range(&self, offset: u64, len: u64) -> Result<Range<usize>, SimCallError> {
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= self.params.pool_size => Ok(idx(offset)..idx(end)),
            _ => Err(SimCallError::OutOfRange {
                offset,
                len,
                size: self.params.pool_size,
            }),
        }
    }

    // ----- calls -----

    fn write_local(&mut self, l: usize, offset: u64, data: &[u8]) -> Result<(), SimCallError> {
        if self.stopped {
            return Err(SimCallError::Stopped);
        }
        let r = self.local_range(offset, data.len() as u64)?;
        if let Some(dst) = self.local.get_mut(r) {
            dst.copy_from_slice(data);
        }
        let call = Call::Write {
            offset,
            data: data.to_vec(),
        };
        self.note(format!("lane {l}: call {call}"));
        self.history.push(call);
        self.history_lanes.push(lane_no(l));
        Ok(())
    }

    fn read_local_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        let r = self.local_range(offset, buf.len() as u64)?;
        if let Some(src) = self.local.get(r) {
            buf.copy_from_slice(src);
        }
        Ok(())
    }

    fn read_remote(&mut self, l: usize, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        let len = buf.len() as u64;
        if let Some(lane) = self.lanes.get_mut(l) {
            lane.read_buf = vec![0; buf.len()];
        }
        self.call(l, Call::Read { offset, len }, |e| e.read(offset, len))?;
        if let Some(src) = self.lanes.get(l).map(|lane| &lane.read_buf) {
            if src.len() == buf.len() {
                buf.copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// Start `call` on lane `l`'s engine and run the simulation until it
    /// returns.
    fn call(
        &mut self,
        l: usize,
        call: Call,
        start: impl FnOnce(&mut InitiatorLane) -> Result<(), CallError>,
    ) -> Result<(), SimCallError> {
        if self.stopped {
            return Err(SimCallError::Stopped);
        }
        let snapshot = match call.sent() {
            Some((o, len)) => self
                .local
                .get(self.local_range(o, len).unwrap_or(0..0))
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let Some(lane) = self.lanes.get_mut(l) else {
            return Err(SimCallError::NoSuchLane {
                lane: lane_no(l),
                nlanes: self.nlanes(),
            });
        };
        if let Err(error) = start(&mut lane.engine) {
            self.note(format!("lane {l}: call {call} refused: {error}"));
            return Err(SimCallError::Rejected {
                call: call.to_string(),
                error,
            });
        }
        lane.in_flight = Some((call.clone(), snapshot));
        self.note(format!("lane {l}: call {call}"));
        self.settle(l);
        self.step = self.step.saturating_add(1);
        loop {
            self.crash_point();
            if self.stopped {
                return Err(SimCallError::Stopped);
            }
            if let Some(result) = self.lanes.get_mut(l).and_then(|lane| lane.done.take()) {
                return self.finish(l, result);
            }
            if !self.advance() {
                let what = match self.lanes.get(l) {
                    Some(lane) => format!(
                        "lane {l}: {call} never returned ({} operations outstanding, expects a completion: {})",
                        lane.engine.outstanding(),
                        lane.engine.expects_completion()
                    ),
                    None => format!("lane {l}: {call} never returned"),
                };
                self.error(what);
                return Err(SimCallError::Stopped);
            }
        }
    }

    fn finish(&mut self, l: usize, result: Result<(), LaneError>) -> Result<(), SimCallError> {
        let Some((call, snapshot)) = self.lanes.get_mut(l).and_then(|lane| lane.in_flight.take())
        else {
            self.error(format!("lane {l}: a result without a call in flight"));
            return Err(SimCallError::Stopped);
        };
        match result {
            Ok(()) => {
                self.note(format!("lane {l}: {call} returns success"));
                self.acknowledge(l, &call, snapshot);
                self.history.push(call);
                self.history_lanes.push(lane_no(l));
                Ok(())
            }
            Err(error) => {
                self.note(format!("lane {l}: {call} fails: {error}"));
                self.error(format!(
                    "lane {l}: {call} failed although no fault was injected: {error}"
                ));
                Err(SimCallError::Failed {
                    call: call.to_string(),
                    error,
                })
            }
        }
    }

    /// Update the acknowledged state (for the difference in a failure
    /// report) as the built-in checker's promises go: where plain persists
    /// are durable, a persist, deep persist or drain acknowledges every
    /// earlier flush of its lane and its own range; elsewhere only a deep
    /// persist acknowledges, its own range.
    fn acknowledge(&mut self, l: usize, call: &Call, snapshot: Vec<u8>) {
        let plain = self.config.platform.plain_persist_durable();
        let Some(lane) = self.lanes.get_mut(l) else {
            return;
        };
        let apply = |acked: &mut Vec<u8>, offset: u64, data: &[u8]| {
            let end = offset.saturating_add(data.len() as u64);
            if let Some(dst) = acked.get_mut(idx(offset)..idx(end)) {
                dst.copy_from_slice(data);
            }
        };
        match call {
            Call::Flush { offset, .. } => lane.unacked_flushes.push((*offset, snapshot)),
            Call::Persist { offset, .. } | Call::DeepPersist { offset, .. } if plain => {
                for (o, d) in std::mem::take(&mut lane.unacked_flushes) {
                    apply(&mut self.acked, o, &d);
                }
                apply(&mut self.acked, *offset, &snapshot);
            }
            Call::Drain { .. } if plain => {
                for (o, d) in std::mem::take(&mut lane.unacked_flushes) {
                    apply(&mut self.acked, o, &d);
                }
            }
            Call::DeepPersist { offset, .. } => apply(&mut self.acked, *offset, &snapshot),
            _ => {}
        }
    }

    /// Run what is still in flight after the workload returned.
    fn quiesce(&mut self) {
        loop {
            self.crash_point();
            if self.stopped || !self.advance() {
                return;
            }
        }
    }

    /// One scheduler step; false when nothing can move (or a limit).
    fn advance(&mut self) -> bool {
        if self.step >= self.max_steps {
            let limit = self.max_steps;
            self.error(format!("no end after {limit} steps"));
            return false;
        }
        let actions = self.enabled();
        if actions.is_empty() {
            return false;
        }
        let weights: Vec<u64> = actions.iter().map(|(_, w)| *w).collect();
        let Some(&(action, _)) = self.sched.weighted(&weights).and_then(|i| actions.get(i)) else {
            return false;
        };
        self.apply(action);
        self.step = self.step.saturating_add(1);
        true
    }

    fn enabled(&self) -> Vec<(Action, u64)> {
        let w = &self.params.weights;
        let mut out = Vec::new();
        for (i, lane) in self.lanes.iter().enumerate() {
            let f = w.lane.get(i).copied().unwrap_or(1);
            let k = |n: usize| w.kind.get(n).copied().unwrap_or(1).saturating_mul(f);
            if lane.qp.can_transmit() {
                out.push((Action::Transmit(i), k(1)));
            }
            if lane.qp.can_execute() {
                out.push((Action::Execute(i), k(2)));
            }
            if lane.qp.can_complete() {
                out.push((Action::Complete(i), k(3)));
            }
            if lane.qp.can_reap() {
                out.push((Action::Reap(i), k(4)));
            }
            if lane.cur_msg.is_some() || !lane.rx.is_empty() {
                out.push((Action::Target(i), k(5)));
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
            Action::Transmit(l) => {
                let id = self.lanes.get_mut(l).and_then(|lane| lane.qp.transmit());
                self.note(format!(
                    "lane {l}: op #{} reaches the remote NIC",
                    id.unwrap_or(0)
                ));
            }
            Action::Execute(l) => self.execute(l),
            Action::Complete(l) => {
                if let Some(e) = self.lanes.get_mut(l).and_then(|lane| lane.qp.complete()) {
                    self.note(format!("lane {l}: op #{} {} completes", e.id, e.op.kind()));
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
        }
    }

    /// Post everything lane `l`'s engine can post, then collect its result.
    fn settle(&mut self, l: usize) {
        for _ in 0..100_000 {
            let Some(op) = self.lanes.get_mut(l).and_then(|lane| lane.engine.poll_op()) else {
                break;
            };
            self.post(l, op);
        }
        if let Some(lane) = self.lanes.get_mut(l) {
            if let Some(r) = lane.engine.poll_done() {
                lane.done = Some(r);
            }
        }
    }

    fn post(&mut self, l: usize, op: Op) {
        if usize::try_from(op.lane()).ok() != Some(l) {
            self.error(format!(
                "lane {l}: the engine posted {op:?} for lane {}",
                op.lane()
            ));
            return;
        }
        let local = |off: u64, len: u64| -> Option<Vec<u8>> {
            self.local
                .get(idx(off)..idx(off.saturating_add(len)))
                .map(<[u8]>::to_vec)
        };
        let payload = match op {
            Op::Write { offset, len, .. } => local(offset, len),
            Op::Read { .. } => Some(Vec::new()),
            Op::Flush { offset, len, .. } => {
                let end = offset.checked_add(len);
                let inside = len > 0
                    && offset >= self.session.min_offset()
                    && end.is_some_and(|e| e <= self.params.pool_size);
                inside.then(Vec::new)
            }
            Op::Send { msg, inline, .. } => {
                let mut v = msg.to_bytes().to_vec();
                if inline {
                    local(msg.offset, msg.size).map(|d| {
                        v.extend_from_slice(&d);
                        v
                    })
                } else {
                    Some(v)
                }
            }
        };
        let Some(payload) = payload else {
            self.error(format!(
                "lane {l}: the engine posted {op:?} outside the local region (or the writable pool)"
            ));
            return;
        };
        let id = self
            .lanes
            .get_mut(l)
            .map_or(0, |lane| lane.qp.post(op, payload));
        self.note(format!("lane {l}: post op #{id} {op:?}"));
    }

    fn reap(&mut self, l: usize) {
        let Some(lane) = self.lanes.get_mut(l) else {
            return;
        };
        let Some(cqe) = lane.qp.reap() else {
            return;
        };
        let n = lane_no(l);
        let r = match cqe {
            Cqe::Write => lane.engine.handle_completion(Completion::Write { lane: n }),
            Cqe::Read => lane.engine.handle_completion(Completion::Read { lane: n }),
            Cqe::Send => lane.engine.handle_completion(Completion::Send { lane: n }),
            Cqe::Flush => lane.engine.handle_completion(Completion::Flush { lane: n }),
            Cqe::Recv(bytes) => lane.engine.handle_completion(Completion::Recv {
                lane: n,
                bytes: &bytes,
            }),
            Cqe::Failed(op) => lane.engine.handle_completion(Completion::Failed {
                lane: n,
                op,
                status: CONN_RESET,
            }),
        };
        let idle = lane.in_flight.is_none();
        self.note(format!("lane {l}: reap {cqe:?}"));
        if let Err(error) = r {
            if idle {
                self.error(format!("lane {l} broke while idle: {error}"));
            }
        }
        self.settle(l);
    }

    fn refuse(&mut self, l: usize, what: &str, error: TargetError) {
        self.error(format!("lane {l}: the target refused {what}: {error}"));
        if let Some(lane) = self.lanes.get_mut(l) {
            lane.qp.break_connection();
        }
    }

    fn execute(&mut self, l: usize) {
        let n = lane_no(l);
        let Some(inbound) = self.lanes.get_mut(l).and_then(|lane| lane.qp.pop_inbound()) else {
            return;
        };
        match inbound {
            Inbound::Write { offset, data } => {
                let len = data.len() as u64;
                if let Err(e) = self.target.check_write(n, offset, len) {
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
                if let Err(e) = self.target.check_read(n, offset, len) {
                    return self.refuse(l, "a READ", e);
                }
                let data = self.mem.read(offset, len);
                self.hash = fnv(self.hash, &data);
                if let Some(lane) = self.lanes.get_mut(l) {
                    if let ReadDest::User { buf_offset } = dest {
                        let end = buf_offset.saturating_add(len);
                        if let Some(dst) = lane.read_buf.get_mut(idx(buf_offset)..idx(end)) {
                            dst.copy_from_slice(&data);
                        }
                    }
                    lane.qp.mark_executed(sq_id);
                }
                self.note(format!("lane {l}: READ [{offset}, +{len}) answered"));
            }
            Inbound::Flush { sq_id, offset, len } => {
                nic_flush(&mut self.mem, offset, len);
                if let Some(lane) = self.lanes.get_mut(l) {
                    lane.qp.mark_executed(sq_id);
                }
                self.note(format!(
                    "lane {l}: FLUSH [{offset}, +{len}) executed, answered"
                ));
            }
            Inbound::Send { bytes } => {
                let len = bytes.len();
                if let Some(lane) = self.lanes.get_mut(l) {
                    lane.rx.push_back(bytes);
                }
                self.note(format!(
                    "lane {l}: SEND of {len} bytes delivered to the target"
                ));
            }
        }
    }

    fn target_step(&mut self, l: usize) {
        let Some(lane) = self.lanes.get_mut(l) else {
            return;
        };
        if lane.cur_msg.is_none() {
            lane.cur_msg = lane.rx.pop_front().map(|b| (b, 0, (0, 0)));
        }
        let Some((bytes, i, mut streamed)) = lane.cur_msg.take() else {
            return;
        };
        let (nsteps, what, outcome) = {
            let plan = match self.target.handle_persist_msg(&bytes) {
                Ok(p) => p,
                Err(e) => return self.refuse(l, "a persist message", e),
            };
            let nsteps = plan.steps().len();
            let Some(step) = plan.steps().get(i) else {
                return;
            };
            let what = match step {
                TargetStep::CopyInline { offset, data } => {
                    format!("copy {} bytes to {offset}", data.len())
                }
                TargetStep::Flush { mode, offset, len } => {
                    format!("flush ({mode:?}) [{offset}, +{len})")
                }
                TargetStep::DeepFlush { mode, offset, len } => {
                    format!("deep flush ({mode:?}) [{offset}, +{len})")
                }
                TargetStep::Respond(_) => "respond".to_string(),
            };
            (
                nsteps,
                format!("{}: {what}", plan.msg().mode.name()),
                plan.execute_step(i, &mut self.mem, &mut streamed),
            )
        };
        match outcome {
            Ok(Some(resp)) => {
                if let Some(lane) = self.lanes.get_mut(l) {
                    lane.qp.push_recv(resp);
                }
            }
            Ok(None) => {}
            Err(e) => self.error(format!("simulated flush failed (cannot happen): {e}")),
        }
        let next = i.saturating_add(1);
        if next < nsteps {
            if let Some(lane) = self.lanes.get_mut(l) {
                lane.cur_msg = Some((bytes, next, streamed));
            }
        }
        self.note(format!("lane {l}: target {what}"));
    }

    // ----- crash points -----

    fn crash_point(&mut self) {
        if self.stopped {
            return;
        }
        let changed = self.mem.take_changed();
        for &w in &changed {
            let cands = self.mem.crash_candidates(w);
            let first = cands.first().map_or([0; 8], |c| c.value);
            set_word(&mut self.base, w, &first);
            set_word(&mut self.img, w, &first);
            if cands.len() > 1 {
                self.multi.insert(w, cands);
            } else {
                self.multi.remove(&w);
            }
        }
        self.crash_points = self.crash_points.saturating_add(1);
        if changed.is_empty() && self.judged_history == Some(self.history.len()) {
            self.unchanged_points = self.unchanged_points.saturating_add(1);
            return;
        }
        self.judged_history = Some(self.history.len());
        let words: Vec<(u64, Vec<Candidate>)> =
            self.multi.iter().map(|(w, c)| (*w, c.clone())).collect();
        let product = words
            .iter()
            .fold(1u64, |n, (_, c)| n.saturating_mul(c.len() as u64));
        let exhaustive = product <= self.max_images;
        if exhaustive {
            self.exhaustive_points = self.exhaustive_points.saturating_add(1);
        } else {
            self.sampled_points = self.sampled_points.saturating_add(1);
        }
        let count = product.min(self.max_images);
        let mut pick = vec![0usize; words.len()];
        for n in 0..count {
            if !exhaustive {
                for (p, (_, c)) in pick.iter_mut().zip(&words) {
                    let len = c.len();
                    *p = match n {
                        0 => 0,
                        1 => len.saturating_sub(1),
                        _ => idx(self.sample.below(len as u64)),
                    };
                }
            }
            for ((w, c), &i) in words.iter().zip(&pick) {
                if let Some(cand) = c.get(i) {
                    set_word(&mut self.img, *w, &cand.value);
                }
            }
            self.images = self.images.saturating_add(1);
            let recover = self.recover;
            let (img, history) = (&self.img, &self.history);
            let verdict = catch_unwind(AssertUnwindSafe(|| recover(img, history)))
                .unwrap_or_else(|p| Err(format!("recover panicked: {}", panic_text(&*p))));
            if let Err(reason) = verdict {
                self.fail(reason, &words, &pick, product, exhaustive, n);
            }
            for (w, _) in &words {
                let v = word_at(&self.base, *w);
                set_word(&mut self.img, *w, &v);
            }
            if self.stopped {
                return;
            }
            if exhaustive {
                // Advance the odometer.
                for (p, (_, c)) in pick.iter_mut().zip(&words) {
                    *p = p.saturating_add(1);
                    if *p < c.len() {
                        break;
                    }
                    *p = 0;
                }
            }
        }
    }

    fn fail(
        &mut self,
        reason: String,
        words: &[(u64, Vec<Candidate>)],
        pick: &[usize],
        product: u64,
        exhaustive: bool,
        index: u64,
    ) {
        let sources: BTreeMap<u64, &'static str> = words
            .iter()
            .zip(pick)
            .filter_map(|((w, c), &i)| c.get(i).map(|c| (*w, c.source.name())))
            .collect();
        let mut diff = Vec::new();
        let mut total = 0usize;
        let mut w = 0u64;
        while w < self.params.pool_size {
            let (a, b) = (word_at(&self.img, w), word_at(&self.acked, w));
            if a != b {
                total = total.saturating_add(1);
                if diff.len() < MAX_DIFF_WORDS {
                    diff.push(WordDiff {
                        offset: w,
                        image: a,
                        acknowledged: b,
                        source: sources.get(&w).copied().unwrap_or("media"),
                    });
                }
            }
            w = w.saturating_add(WORD);
        }
        self.note(format!(
            "CRASH HERE: recover rejected image {index}: {reason}"
        ));
        self.failure = Some(Failure {
            seed: self.seed,
            config: self.config,
            step: self.step,
            reason,
            history: self.history.clone(),
            history_lanes: self.history_lanes.clone(),
            in_flight: self
                .lanes
                .iter()
                .enumerate()
                .find_map(|(i, l)| l.in_flight.as_ref().map(|(c, _)| (lane_no(i), c.clone()))),
            images_at_point: product,
            exhaustive,
            image_index: index,
            image: self.img.clone(),
            diff,
            diff_total: total,
        });
        self.stopped = true;
    }
}

/// Lane `lane` of a [`SimLane`] ([`SimLane::lane`]), as a [`Replica`].
pub struct OtherLane<'a, 's> {
    sim: &'a mut SimLane<'s>,
    lane: u32,
}

impl fmt::Debug for OtherLane<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtherLane")
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

impl SimLane<'_> {
    fn persist_on(
        &mut self,
        l: usize,
        offset: u64,
        len: u64,
        flags: u32,
    ) -> Result<(), SimCallError> {
        self.call(l, Call::Persist { offset, len, flags }, |e| {
            e.persist(offset, len, flags)
        })
    }

    fn deep_persist_on(&mut self, l: usize, offset: u64, len: u64) -> Result<(), SimCallError> {
        self.call(l, Call::DeepPersist { offset, len }, |e| {
            e.deep_persist(offset, len)
        })
    }

    fn flush_on(
        &mut self,
        l: usize,
        offset: u64,
        len: u64,
        flags: u32,
    ) -> Result<(), SimCallError> {
        self.call(l, Call::Flush { offset, len, flags }, |e| {
            e.flush(offset, len, flags)
        })
    }

    fn drain_on(&mut self, l: usize, flags: u32) -> Result<(), SimCallError> {
        self.call(l, Call::Drain { flags }, |e| e.drain(flags))
    }
}

/// Lane 0.
impl Replica for SimLane<'_> {
    type Error = SimCallError;

    fn size(&self) -> u64 {
        self.params.pool_size
    }

    fn data_start(&self) -> u64 {
        self.session.min_offset()
    }

    /// Copies into the local region (one region for all lanes, as rpmem's):
    /// no step, no crash point (nothing reaches the pool until a persist or
    /// flush covers it).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SimCallError> {
        self.write_local(0, offset, data)
    }

    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        self.read_local_at(offset, buf)
    }

    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.persist_on(0, offset, len, flags)
    }

    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), SimCallError> {
        self.deep_persist_on(0, offset, len)
    }

    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.flush_on(0, offset, len, flags)
    }

    fn drain(&mut self, flags: u32) -> Result<(), SimCallError> {
        self.drain_on(0, flags)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        self.read_remote(0, offset, buf)
    }
}

impl Replica for OtherLane<'_, '_> {
    type Error = SimCallError;

    fn size(&self) -> u64 {
        self.sim.size()
    }

    fn data_start(&self) -> u64 {
        self.sim.data_start()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SimCallError> {
        self.sim.write_local(idx(self.lane.into()), offset, data)
    }

    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        self.sim.read_local_at(offset, buf)
    }

    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.sim
            .persist_on(idx(self.lane.into()), offset, len, flags)
    }

    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), SimCallError> {
        self.sim.deep_persist_on(idx(self.lane.into()), offset, len)
    }

    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.sim.flush_on(idx(self.lane.into()), offset, len, flags)
    }

    fn drain(&mut self, flags: u32) -> Result<(), SimCallError> {
        self.sim.drain_on(idx(self.lane.into()), flags)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        self.sim.read_remote(idx(self.lane.into()), offset, buf)
    }
}
