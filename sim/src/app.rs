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
//! through rpmem-core's out-of-band machines, then the same world the
//! built-in check runs ([`crate::world`]: one
//! [`rpmem_core::persist::InitiatorLane`] per lane with its queue pair, the
//! target, its memory, and the one seeded scheduler,
//! `World::step_with`). Your workload runs in [`Simulation::threads`]
//! threads (default one, on the calling thread); each [`Replica`] call it
//! makes is started on its lane's engine and the thread waits, as it would
//! for rpmem, while the scheduler draws the next step among the network,
//! target and memory actions and the resumption of other threads whose
//! calls returned. One thread runs at a time, only between its calls; the
//! seed decides the interleaving, so calls on different lanes overlap and
//! the seed replays the run. There is a crash point before every step and
//! after the last one. When every thread has returned, what is still in
//! flight runs to the end, crash points included.
//!
//! At a crash point every aligned 8-byte word of the pool holds one of its
//! crash candidates ([`crate::memory::Memory::crash_candidates`]: the media
//! value, an unfenced write-back, a dirty line evicted at the crash, ...),
//! words independent, each whole (the platform's 8-byte store atomicity,
//! nothing larger). The images of the point are the product of the
//! candidate sets: when the product is at most [`Simulation::max_images`]
//! every image is built and judged (*exhaustive*), otherwise that many are
//! drawn from the seed (the all-old and all-new images first; *sampled*).
//! The [`Report`] counts both kinds; a [`Failure`] says which kind its
//! point was. A point where neither the memory's candidates nor the history
//! changed since the previous one is not judged again (its images were). A
//! panic in `recover` rejects the image (`recover panicked: ..`); a panic
//! in the workload is a run error ([`RunError`]).
//!
//! Besides power failures, [`Simulation::faults`] injects a fault once per
//! run ([`Fault::TargetKilled`], [`Fault::LaneReset`]) at a step drawn from
//! the seed: the workload's calls fail, crash points go on, and after a
//! killed target the memory of the surviving host is judged too.
//!
//! Placements: by default the RDMA configurations (the NIC places the
//! data); give [`Simulation::configs`] the TCP ones
//! ([`allowed_configs`]`(`[`Placement::Stream`]`)`) to run the same
//! workload over TCP lanes: each lane is then rpmem-core's
//! `StreamInitiator` and `StreamTarget` over a modelled byte stream
//! (sealed, segments of seeded sizes), with rpmemd's stores (CPU stores,
//! non-temporal stores of streamed body lines, the unfenced write-back of a
//! body's first line) in the memory model. A persist message's plan runs
//! in one scheduler step, as in rpmemd's lane thread, with a crash point
//! between two of its steps.
//!
//! Limits of this slice: the image given to `recover` has zeros in the pool
//! header page (rpmemd keeps the real header there). See
//! `docs/crash-testing.md`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;

pub use rpmem_core::policy::Placement;
pub use rpmem_replica::{Replica, FLUSH_RELAXED, PERSIST_RELAXED};

use rpmem_core::persist::CallError;

use crate::handshake::{self, Session, TargetOffer};
use crate::memory::{Candidate, Word, PAGE, WORD};
use crate::platform::{method_label, Config};
use crate::rng::Rng;
use crate::workload::Size;
use crate::world::{draw_params, AppSetup, MidPoint, Stepped, World, MUTANT_LOCK};

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

/// `platform METHOD`, e.g. `adr-ddio GPSPM`; `platform TCP` for a TCP
/// configuration (e.g. `adr-ddio TCP`).
pub fn config_name(c: &Config) -> String {
    if c.is_tcp() {
        return format!("{} TCP", c.platform.name);
    }
    format!("{} {}", c.platform.name, method_label(c.method))
}

/// Every configuration the persistency policy allows with `placement`:
/// [`Placement::Rdma`], the 15 (method x platform) pairs of
/// [`Config::all`] that are allowed ([`Simulation::new`]'s default);
/// [`Placement::Stream`], the TCP configurations ([`Config::all_tcp`], one
/// per platform, GPSPM with the policy's flush; all allowed). Give them to
/// [`Simulation::configs`], or both lists joined.
///
/// ```
/// use sim::app::{allowed_configs, Placement};
///
/// let tcp = allowed_configs(Placement::Stream);
/// assert!(!tcp.is_empty() && tcp.iter().all(|c| c.is_tcp()));
/// assert!(allowed_configs(Placement::Rdma).iter().all(|c| !c.is_tcp()));
/// ```
pub fn allowed_configs(placement: Placement) -> Vec<Config> {
    let all = match placement {
        Placement::Rdma => Config::all(),
        Placement::Stream => Config::all_tcp(),
    };
    all.into_iter().filter(Config::allowed).collect()
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
    /// The call failed: its lane broke (a fault of
    /// [`Simulation::faults`]: the target process killed, the lane's
    /// connection reset). Without an injected fault this is also a run
    /// error.
    #[error("{call} failed: {error}")]
    Failed {
        /// The call.
        call: String,
        /// The engine's error.
        error: String,
    },
    /// Another thread's call on this lane is still in flight (a lane is
    /// one thread's at a time, as with rpmem).
    #[error("lane {lane} is busy: another thread's call on it is in flight")]
    LaneBusy {
        /// The lane.
        lane: u32,
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
    /// The fault injected in the run before the crash, if any (replay with
    /// [`Simulation::run_with_fault`]).
    pub fault: Option<FaultAt>,
    /// Steps executed before the crash.
    pub step: u64,
    /// What `recover` said.
    pub reason: String,
    /// The calls that returned success before the crash, oldest first (what
    /// `recover` was given).
    pub history: Vec<Call>,
    /// The lane of each call of `history`.
    pub history_lanes: Vec<u32>,
    /// The calls in flight at the crash and their lanes.
    pub in_flight: Vec<(u32, Call)>,
    /// Images of the crash point (the product of the candidate counts,
    /// saturating).
    pub images_at_point: u64,
    /// Whether every image of the point was judged (else a seeded sample of
    /// [`Simulation::max_images`]).
    pub exhaustive: bool,
    /// The image is the surviving host's memory after [`Fault::TargetKilled`]
    /// (no power failure), not a crash image.
    pub surviving_host: bool,
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
        match &self.fault {
            None => writeln!(
                f,
                "  seed {} in configuration {} (replay: .configs(vec![config]).seeds({}..{}))",
                self.seed,
                config_name(&self.config),
                self.seed,
                self.seed.saturating_add(1)
            )?,
            Some(fault) => writeln!(
                f,
                "  seed {} in configuration {}, {fault} (replay: .run_with_fault({}, config, {fault:?}))",
                self.seed,
                config_name(&self.config),
                self.seed,
            )?,
        }
        if self.surviving_host {
            writeln!(
                f,
                "  no power failure: the memory of the host after the run (step {})",
                self.step
            )?;
        } else if self.in_flight.is_empty() {
            writeln!(f, "  crash after step {}, between calls", self.step)?;
        } else {
            let calls: Vec<String> = self
                .in_flight
                .iter()
                .map(|(l, c)| format!("lane {l}: {c}"))
                .collect();
            writeln!(
                f,
                "  crash after step {}, during {}",
                self.step,
                calls.join("; ")
            )?;
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
    /// The fault the run was to inject.
    pub fault: Option<FaultAt>,
    /// Whether it was injected (the run lasted long enough).
    pub fault_fired: bool,
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
    /// Runs (seed x configuration, and one per fault) executed.
    pub runs: u64,
    /// Of them, runs with a fault of [`Simulation::faults`].
    pub faulted_runs: u64,
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
            "{} runs ({} with a fault), {} steps, {} crash points ({} all images judged, {} sampled, {} unchanged), {} images judged",
            self.runs,
            self.faulted_runs,
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

/// The workload: your code against the simulated pool. With
/// [`Simulation::threads`] it runs in several threads at once (one call
/// runs at a time, the interleaving drawn from the seed), hence `Sync`.
pub type Workload<'a> = dyn Fn(&mut SimLane<'_>) -> Result<(), Box<dyn StdError>> + Sync + 'a;
/// The recovery check: `Ok` when the image (the whole pool) is acceptable
/// given the calls that returned success.
pub type Recover<'a> = dyn Fn(&[u8], &[Call]) -> Result<(), String> + 'a;

/// A fault other than the target's power failure (which is tried at every
/// step of every run anyway), injected once in a run at a step drawn from
/// the seed ([`Simulation::faults`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The target process (rpmemd) dies and the host stays up: every
    /// lane's connection is lost with what was on the wire (operations
    /// transmitted but not executed, messages not yet executed), the
    /// message the target was executing stops between two steps, and what
    /// was placed in the target's memory and caches stays there, as the
    /// platform model says (it may still be lost by a later power failure:
    /// crash points go on; at the end the image of the surviving host,
    /// every word's current value, is judged too). Calls in flight fail
    /// with [`SimCallError::Failed`], later calls too.
    TargetKilled,
    /// One lane's connection is reset (the lane drawn from the seed): its
    /// call in flight fails, what was on its wire is lost, later calls on
    /// it fail; the other lanes go on.
    LaneReset,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::TargetKilled => "target process killed",
            Fault::LaneReset => "lane connection reset",
        })
    }
}

/// A fault and where it strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultAt {
    /// The fault.
    pub fault: Fault,
    /// The step at which it strikes (the first step at or after it).
    pub step: u64,
    /// The lane a [`Fault::LaneReset`] resets.
    pub lane: u32,
}

impl fmt::Display for FaultAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            Fault::TargetKilled => write!(f, "{} at step {}", self.fault, self.step),
            Fault::LaneReset => write!(f, "lane {} reset at step {}", self.lane, self.step),
        }
    }
}

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
    threads: u32,
    faults: Vec<Fault>,
}

impl fmt::Debug for Simulation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("configs", &self.configs.len())
            .field("seeds", &self.seeds)
            .field("pool_size", &self.pool_size)
            .field("headers", &self.headers)
            .field("max_images", &self.max_images)
            .field("lanes", &self.lanes)
            .field("threads", &self.threads)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl<'a> Simulation<'a> {
    /// A campaign over every allowed RDMA configuration
    /// ([`allowed_configs`]`(`[`Placement::Rdma`]`)`; TCP ones with
    /// [`Simulation::configs`]), seeds `1..21`, a
    /// pool of [`DEFAULT_POOL_SIZE`] bytes with a header page, one lane,
    /// one thread, power failures only.
    pub fn new(
        workload: impl Fn(&mut SimLane<'_>) -> Result<(), Box<dyn StdError>> + Sync + 'a,
        recover: impl Fn(&[u8], &[Call]) -> Result<(), String> + 'a,
    ) -> Simulation<'a> {
        Simulation {
            workload: Box::new(workload),
            recover: Box::new(recover),
            configs: Config::all()
                .into_iter()
                .filter(|c| c.allowed() && !c.is_tcp())
                .collect(),
            seeds: 1..21,
            pool_size: DEFAULT_POOL_SIZE,
            headers: true,
            max_images: DEFAULT_MAX_IMAGES,
            max_steps: DEFAULT_MAX_STEPS,
            verbose: false,
            lanes: 1,
            threads: 1,
            faults: Vec::new(),
        }
    }

    /// Lanes of the simulated pool (1 to [`MAX_LANES`]; default 1, at
    /// least [`Simulation::threads`]). Thread `t`'s [`SimLane`] is lane `t`;
    /// [`SimLane::lane`] gives a handle on any lane.
    pub fn lanes(mut self, n: u32) -> Self {
        self.lanes = n;
        self
    }

    /// Run the workload in `n` threads at once (1 to [`MAX_LANES`];
    /// default 1), as an application does with one lane per thread: thread
    /// `t` ([`SimLane::thread`]) starts with lane `t`. One thread runs at a
    /// time and only between its calls; while a thread's call is in flight
    /// the others run and issue theirs, so calls on different lanes
    /// overlap. Which thread resumes when, and every step of the network
    /// and the target between, is drawn from the seed: the seed replays the
    /// interleaving.
    ///
    /// ```
    /// use sim::app::{Call, Replica, SimLane, Simulation};
    ///
    /// // Each thread writes its own word on its own lane.
    /// let workload = |r: &mut SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
    ///     let at = r.data_start() + 64 * u64::from(r.thread());
    ///     assert_eq!(r.index(), r.thread()); // thread t starts on lane t
    ///     r.write(at, &[1; 8])?;
    ///     r.persist(at, 8, 0)?;
    ///     Ok(())
    /// };
    /// let report = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
    ///     .threads(2)
    ///     .seeds(1..3)
    ///     .run();
    /// assert!(report.passed(), "{report}");
    /// ```
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }

    /// Besides the power failure at every step, run each seed once more per
    /// fault with that fault injected at a step drawn from the seed (within
    /// the length of the fault-free run of the seed), and judge the images
    /// of every crash point of that run too. The workload sees its calls
    /// fail ([`SimCallError::Failed`]); an error it returns after the fault
    /// is not a run error.
    ///
    /// ```
    /// use sim::app::{Call, Fault, Replica, SimLane, Simulation};
    /// use sim::platform::Config;
    ///
    /// // A counter, persisted after each increment.
    /// let workload = |r: &mut SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
    ///     let d = r.data_start();
    ///     for n in 1..=3u64 {
    ///         r.write(d, &n.to_le_bytes())?;
    ///         r.persist(d, 8, 0)?; // fails once rpmemd is killed
    ///     }
    ///     Ok(())
    /// };
    /// // Every increment whose persist returned survives.
    /// let recover = |image: &[u8], history: &[Call]| -> Result<(), String> {
    ///     let count = u64::from_le_bytes(image[4096..4104].try_into().unwrap());
    ///     let acked = history.iter().filter(|c| matches!(c, Call::Persist { .. })).count();
    ///     if count as usize >= acked { Ok(()) } else { Err(format!("count {count}, {acked} acked")) }
    /// };
    /// let plain_durable = Config::all()
    ///     .into_iter()
    ///     .filter(|c| c.allowed() && c.platform.plain_persist_durable())
    ///     .collect();
    /// let report = Simulation::new(workload, recover)
    ///     .configs(plain_durable)
    ///     .faults(vec![Fault::TargetKilled, Fault::LaneReset])
    ///     .seeds(1..6)
    ///     .run();
    /// assert!(report.passed(), "{report}");
    /// assert!(report.faulted_runs > 0);
    /// ```
    pub fn faults(mut self, faults: Vec<Fault>) -> Self {
        self.faults = faults;
        self
    }

    /// The configurations to run (method x platform over RDMA, or a
    /// platform over TCP; see [`crate::platform`] and [`allowed_configs`]).
    /// The two placements may be mixed in one campaign.
    ///
    /// ```
    /// use sim::app::{allowed_configs, Call, Placement, Replica, SimLane, Simulation};
    ///
    /// let workload = |r: &mut SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
    ///     let d = r.data_start();
    ///     r.write(d, &7u64.to_le_bytes())?;
    ///     r.persist(d, 8, 0)?;
    ///     let mut back = [0u8; 8];
    ///     r.read(d, &mut back)?; // through the TCP lane's READ_RESP
    ///     assert_eq!(u64::from_le_bytes(back), 7);
    ///     Ok(())
    /// };
    /// let report = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
    ///     .configs(allowed_configs(Placement::Stream))
    ///     .seeds(1..3)
    ///     .run();
    /// assert!(report.passed(), "{report}");
    /// ```
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

    /// Run every seed in every configuration (and each fault of
    /// [`Simulation::faults`]), stopping at the first failure or error.
    pub fn run(&self) -> Report {
        let mut report = Report::default();
        for seed in self.seeds.clone() {
            for &config in &self.configs {
                let r = self.run_one(seed, config);
                let plain_steps = r.steps;
                if !report.add(r) {
                    return report;
                }
                for (k, &fault) in self.faults.iter().enumerate() {
                    let at = fault_step(seed, k, fault, plain_steps, self.nlanes());
                    let r = self.run_with_fault(seed, config, at);
                    report.faulted_runs = report.faulted_runs.saturating_add(1);
                    if !report.add(r) {
                        return report;
                    }
                }
            }
        }
        report
    }

    fn nlanes(&self) -> u32 {
        self.lanes.max(self.threads)
    }

    /// Run one seed in one configuration (a replay: the same seed gives
    /// the same run, the same failure and the same trace hash). The engines
    /// run without seeded bugs: the run shares the simulator's mutant lock
    /// with other runs without one, so a mutant run of [`crate::world`] in
    /// another thread waits for it.
    pub fn run_one(&self, seed: u64, config: Config) -> RunReport {
        self.run_inner(seed, config, None)
    }

    /// Run one seed in one configuration with a fault (a replay of a
    /// [`Failure`] whose [`Failure::fault`] is set).
    pub fn run_with_fault(&self, seed: u64, config: Config, fault: FaultAt) -> RunReport {
        self.run_inner(seed, config, Some(fault))
    }

    fn run_inner(&self, seed: u64, config: Config, fault: Option<FaultAt>) -> RunReport {
        let _no_mutant = MUTANT_LOCK.read().unwrap_or_else(|e| e.into_inner());
        let mut report = RunReport {
            seed,
            config,
            fault,
            fault_fired: false,
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
        let nthreads = idx(self.threads.into());
        let (req_tx, req_rx) = mpsc::channel();
        let mut resp_txs = Vec::new();
        let mut resp_rxs = Vec::new();
        for _ in 0..nthreads {
            let (tx, rx) = mpsc::channel();
            resp_txs.push(tx);
            resp_rxs.push(rx);
        }
        let mut run = match Run::new(seed, config, self, req_rx, resp_txs, fault) {
            Ok(r) => r,
            Err(what) => {
                report.errors.push(RunError { seed, config, what });
                return report;
            }
        };
        let info = run.info;
        let workload = &*self.workload;
        if nthreads == 1 {
            // One thread: the workload runs here, each call drives the
            // world until it returns.
            let shared = Rc::new(RefCell::new(run));
            shared.borrow_mut().start_inline();
            let mut sim = SimLane {
                link: Link::Inline(shared.clone()),
                info,
                lane: 0,
                _run: PhantomData,
            };
            let outcome = match catch_unwind(AssertUnwindSafe(|| workload(&mut sim))) {
                Ok(Ok(())) => Outcome::Ok,
                Ok(Err(e)) => Outcome::Err(e.to_string()),
                Err(p) => Outcome::Panic(panic_text(&*p)),
            };
            drop(sim);
            let mut run = shared.borrow_mut();
            if let Some(s) = run.threads.get_mut(0) {
                *s = ThreadState::Finished;
            }
            run.ended(0, outcome);
            run.drive();
            drop(run);
            return finish_report(report, &mut shared.borrow_mut());
        }
        std::thread::scope(|scope| {
            for (t, rx) in resp_rxs.into_iter().enumerate() {
                let tx = req_tx.clone();
                scope.spawn(move || thread_main(t, tx, rx, info, workload));
            }
            drop(req_tx);
            run.drive();
        });
        finish_report(report, &mut run)
    }
}

fn finish_report(mut report: RunReport, run: &mut Run<'_>) -> RunReport {
    report.fault_fired = run.world.faulted();
    report.steps = run.world.steps();
    report.calls = run.history.len() as u64;
    report.crash_points = run.crash_points;
    report.exhaustive_points = run.exhaustive_points;
    report.sampled_points = run.sampled_points;
    report.unchanged_points = run.unchanged_points;
    report.images = run.images;
    report.failure = run.failure.take();
    report.errors = std::mem::take(&mut run.errors);
    report.trace_hash = run.world.trace_hash();
    report.log = run.world.take_log();
    report
}

/// Where fault `k` of a campaign strikes in `seed`: a step within the
/// fault-free run's length (and a lane), drawn from a stream of its own.
fn fault_step(seed: u64, k: usize, fault: Fault, steps: u64, nlanes: u32) -> FaultAt {
    let mut rng = Rng::new(seed).fork(10u64.saturating_add(k as u64));
    FaultAt {
        fault,
        step: rng.below(steps.max(1)),
        lane: u32::try_from(rng.below(u64::from(nlanes.max(1)))).unwrap_or(0),
    }
}

impl Report {
    /// Add a run; false when the campaign stops (a failure or an error).
    fn add(&mut self, r: RunReport) -> bool {
        self.runs = self.runs.saturating_add(1);
        self.steps = self.steps.saturating_add(r.steps);
        self.crash_points = self.crash_points.saturating_add(r.crash_points);
        self.exhaustive_points = self.exhaustive_points.saturating_add(r.exhaustive_points);
        self.sampled_points = self.sampled_points.saturating_add(r.sampled_points);
        self.unchanged_points = self.unchanged_points.saturating_add(r.unchanged_points);
        self.images = self.images.saturating_add(r.images);
        self.errors.extend(r.errors);
        if r.failure.is_some() {
            self.failure = r.failure;
        }
        self.passed()
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

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

// ----- a run: the coordinator and the workload's threads -----

/// What a workload thread asks the coordinator.
#[derive(Debug)]
enum Req {
    Write {
        lane: u32,
        offset: u64,
        data: Vec<u8>,
    },
    ReadLocal {
        offset: u64,
        len: u64,
    },
    Call {
        lane: u32,
        call: Call,
    },
    History,
    Steps,
    Done(Outcome),
}

/// How a workload thread ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Err(String),
    Panic(String),
}

/// The coordinator's answer.
#[derive(Debug)]
enum Resp {
    Go,
    Ok,
    Bytes(Vec<u8>),
    History(Vec<Call>),
    Steps(u64),
    Err(SimCallError),
}

/// A workload thread's end of the channels.
#[derive(Debug)]
struct Chan {
    thread: usize,
    tx: mpsc::Sender<(usize, Req)>,
    rx: mpsc::Receiver<Resp>,
}

impl Chan {
    fn ask(&self, req: Req) -> Resp {
        if self.tx.send((self.thread, req)).is_err() {
            return Resp::Err(SimCallError::Stopped);
        }
        self.rx.recv().unwrap_or(Resp::Err(SimCallError::Stopped))
    }
}

/// How a [`SimLane`] reaches the run: from a thread of its own (several
/// workload threads), or directly on the caller's thread (one: no thread
/// switch per call).
#[derive(Clone)]
enum Link<'s> {
    Thread(Rc<Chan>),
    Inline(Rc<RefCell<Run<'s>>>),
}

impl Link<'_> {
    fn ask(&self, req: Req) -> Resp {
        match self {
            Link::Thread(chan) => chan.ask(req),
            Link::Inline(run) => match run.try_borrow_mut() {
                Ok(mut run) => run.inline(req),
                Err(_) => Resp::Err(SimCallError::Stopped),
            },
        }
    }
}

/// What a [`SimLane`] knows without asking.
#[derive(Clone, Copy, Debug)]
struct Info {
    seed: u64,
    config: Config,
    session: Session,
    size: u64,
    nlanes: u32,
}

fn thread_main(
    t: usize,
    tx: mpsc::Sender<(usize, Req)>,
    rx: mpsc::Receiver<Resp>,
    info: Info,
    workload: &Workload<'_>,
) {
    let chan = Rc::new(Chan { thread: t, tx, rx });
    // Nothing runs before the coordinator says so.
    let go = chan.rx.recv();
    if !matches!(go, Ok(Resp::Go)) {
        let _ = chan.tx.send((t, Req::Done(Outcome::Ok)));
        return;
    }
    let lane = u32::try_from(t).unwrap_or(0) % info.nlanes.max(1);
    let mut sim = SimLane {
        link: Link::Thread(chan.clone()),
        info,
        lane,
        _run: PhantomData,
    };
    let outcome = match catch_unwind(AssertUnwindSafe(|| workload(&mut sim))) {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Err(e.to_string()),
        Err(p) => Outcome::Panic(panic_text(&*p)),
    };
    let _ = chan.tx.send((t, Req::Done(outcome)));
}

/// The simulated pool as a thread of your workload sees it: one lane of it
/// (thread `t` starts with lane `t`), a [`Replica`]. [`SimLane::lane`]
/// gives a handle on another lane (held at the same time, as rpmem's
/// lanes). Every call runs inside the simulator, step by step with a
/// crash point at every step; the thread waits for it as it would for
/// rpmem, while other threads run and what other lanes have in flight
/// progresses.
pub struct SimLane<'s> {
    link: Link<'s>,
    info: Info,
    lane: u32,
    _run: PhantomData<&'s ()>,
}

impl fmt::Debug for SimLane<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLane")
            .field("seed", &self.info.seed)
            .field("config", &self.info.config)
            .field("thread", &self.thread())
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

impl<'s> SimLane<'s> {
    /// The run's seed (seed your workload's own randomness from it, so that
    /// the seed replays the run).
    pub fn seed(&self) -> u64 {
        self.info.seed
    }

    /// The run's configuration.
    pub fn config(&self) -> Config {
        self.info.config
    }

    /// What the handshake agreed (method, lanes, inline size, ...).
    pub fn session(&self) -> &Session {
        &self.info.session
    }

    /// Lanes of the pool ([`Simulation::lanes`]).
    pub fn nlanes(&self) -> u32 {
        self.info.nlanes
    }

    /// The workload thread this handle belongs to (0 to
    /// [`Simulation::threads`] - 1).
    pub fn thread(&self) -> u32 {
        match &self.link {
            Link::Thread(chan) => u32::try_from(chan.thread).unwrap_or(u32::MAX),
            Link::Inline(_) => 0,
        }
    }

    /// The lane this handle calls on.
    pub fn index(&self) -> u32 {
        self.lane
    }

    /// A handle on lane `index` for this thread (it may hold several). A
    /// call on a lane whose previous call (from another thread) is still
    /// in flight is refused with [`SimCallError::LaneBusy`].
    pub fn lane(&self, index: u32) -> Result<SimLane<'s>, SimCallError> {
        if index >= self.info.nlanes {
            return Err(SimCallError::NoSuchLane {
                lane: index,
                nlanes: self.info.nlanes,
            });
        }
        Ok(SimLane {
            link: self.link.clone(),
            info: self.info,
            lane: index,
            _run: PhantomData,
        })
    }

    /// Steps executed so far.
    pub fn steps(&self) -> u64 {
        match self.link.ask(Req::Steps) {
            Resp::Steps(n) => n,
            _ => 0,
        }
    }

    /// The calls that returned success so far (all threads).
    pub fn history(&self) -> Vec<Call> {
        match self.link.ask(Req::History) {
            Resp::History(h) => h,
            _ => Vec::new(),
        }
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), SimCallError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.info.size => Ok(()),
            _ => Err(SimCallError::OutOfRange {
                offset,
                len,
                size: self.info.size,
            }),
        }
    }

    fn call(&mut self, call: Call) -> Result<Resp, SimCallError> {
        match self.link.ask(Req::Call {
            lane: self.lane,
            call,
        }) {
            Resp::Err(e) => Err(e),
            r => Ok(r),
        }
    }
}

impl Replica for SimLane<'_> {
    type Error = SimCallError;

    fn size(&self) -> u64 {
        self.info.size
    }

    fn data_start(&self) -> u64 {
        self.info.session.min_offset()
    }

    /// Copies into the local region (one region for all lanes, as rpmem's):
    /// no step, no crash point (nothing reaches the pool until a persist or
    /// flush covers it).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SimCallError> {
        self.check_range(offset, data.len() as u64)?;
        match self.link.ask(Req::Write {
            lane: self.lane,
            offset,
            data: data.to_vec(),
        }) {
            Resp::Err(e) => Err(e),
            _ => Ok(()),
        }
    }

    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        self.check_range(offset, buf.len() as u64)?;
        match self.link.ask(Req::ReadLocal {
            offset,
            len: buf.len() as u64,
        }) {
            Resp::Bytes(b) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                Ok(())
            }
            Resp::Err(e) => Err(e),
            _ => Err(SimCallError::Stopped),
        }
    }

    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.call(Call::Persist { offset, len, flags }).map(drop)
    }

    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), SimCallError> {
        self.call(Call::DeepPersist { offset, len }).map(drop)
    }

    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), SimCallError> {
        self.call(Call::Flush { offset, len, flags }).map(drop)
    }

    fn drain(&mut self, flags: u32) -> Result<(), SimCallError> {
        self.call(Call::Drain { flags }).map(drop)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SimCallError> {
        let len = buf.len() as u64;
        match self.call(Call::Read { offset, len })? {
            Resp::Bytes(b) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                Ok(())
            }
            _ => Err(SimCallError::Stopped),
        }
    }
}

/// Where a workload thread is.
#[derive(Debug)]
enum ThreadState {
    /// Waiting to be resumed with this answer (a scheduler action).
    Ready(Resp),
    /// Running (the coordinator serves its requests).
    Running,
    /// Waiting for its call to return.
    InCall,
    Finished,
}

/// One run: the world (rpmem-core's engines over the simulated RNIC,
/// target and memory, stepped by [`World`]'s scheduler), the workload's
/// threads, and the crash images judged at every point.
struct Run<'s> {
    seed: u64,
    config: Config,
    info: Info,
    recover: &'s Recover<'s>,
    max_images: u64,
    max_steps: u64,
    world: World,
    sample: Rng,
    resume_weight: Vec<u64>,
    fault: Option<FaultAt>,
    // Threads.
    rx: mpsc::Receiver<(usize, Req)>,
    txs: Vec<mpsc::Sender<Resp>>,
    threads: Vec<ThreadState>,
    // Per lane: the call in flight (thread, call, the bytes it sends as the
    // region held them), the flushes that returned and are not drained.
    in_flight: Vec<Option<(usize, Call, Vec<u8>)>>,
    unacked: Vec<Vec<(u64, Vec<u8>)>>,
    // Crash images.
    base: Vec<u8>,
    img: Vec<u8>,
    multi: BTreeMap<u64, Vec<Candidate>>,
    judged_history: Option<usize>,
    /// Steps executed before the crash point being judged.
    point_step: u64,
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

impl<'s> Run<'s> {
    fn new(
        seed: u64,
        config: Config,
        sim: &'s Simulation<'s>,
        rx: mpsc::Receiver<(usize, Req)>,
        txs: Vec<mpsc::Sender<Resp>>,
        fault: Option<FaultAt>,
    ) -> Result<Run<'s>, String> {
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
        let nlanes = sim.nlanes();
        if !(1..=MAX_LANES).contains(&sim.lanes) || !(1..=MAX_LANES).contains(&sim.threads) {
            return Err(format!(
                "{} lanes and {} threads asked: the simulator runs 1 to {MAX_LANES} of each",
                sim.lanes, sim.threads
            ));
        }
        let mut params = draw_params(seed, Some(Size::Small));
        params.pool_size = sim.pool_size;
        params.headers = sim.headers;
        params.ask.pool_size = sim.pool_size;
        params.ask.headers = sim.headers;
        params.ask.nlanes = nlanes;
        // The workload needs its lanes: the target grants them.
        params.target_max_lanes = nlanes;
        params.conn_loss = None;
        let mut secret_rng = Rng::new(seed).fork(6);
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
        if session.nlanes != nlanes {
            return Err(format!("{nlanes} lanes asked, {} granted", session.nlanes));
        }
        let size = idx(params.pool_size);
        let resume_weight = (0..sim.threads)
            .map(|t| {
                let k = params.weights.kind.first().copied().unwrap_or(1);
                let f = params.weights.lane.get(idx(t.into())).copied().unwrap_or(1);
                k.saturating_mul(f).max(1)
            })
            .collect();
        let info = Info {
            seed,
            config,
            session,
            size: params.pool_size,
            nlanes,
        };
        let mut world = World::new_app(AppSetup {
            seed,
            config,
            params,
            session,
            secret,
            verbose: sim.verbose,
        })
        .map_err(|e| e.to_string())?;
        match fault {
            Some(FaultAt {
                fault: Fault::TargetKilled,
                step,
                ..
            }) => world.kill_at(step),
            Some(FaultAt {
                fault: Fault::LaneReset,
                step,
                lane,
            }) => world.reset_at(step, lane),
            None => {}
        }
        let nthreads = txs.len();
        let mut run = Run {
            seed,
            config,
            info,
            recover: &*sim.recover,
            max_images: sim.max_images,
            max_steps: sim.max_steps,
            world,
            sample: Rng::new(seed).fork(5),
            resume_weight,
            fault,
            rx,
            txs,
            threads: (0..nthreads)
                .map(|_| ThreadState::Ready(Resp::Go))
                .collect(),
            in_flight: (0..nlanes).map(|_| None).collect(),
            unacked: (0..nlanes).map(|_| Vec::new()).collect(),
            base: vec![0; size],
            img: vec![0; size],
            multi: BTreeMap::new(),
            judged_history: None,
            point_step: 0,
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
        };
        run.world.app_note(format!(
            "session: {} lane(s), {} thread(s), {} (announced {}), inline_max {}{}",
            session.nlanes,
            nthreads,
            session.method,
            session.announced,
            session.inline_max,
            match fault {
                Some(f) => format!(", fault: {f}"),
                None => String::new(),
            }
        ));
        Ok(run)
    }

    fn note(&mut self, line: String) {
        self.world.app_note(line);
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

    fn world_errors(&mut self) {
        for e in self.world.take_errors() {
            self.error(e.to_string());
        }
    }

    fn send(&mut self, t: usize, resp: Resp) {
        if let Some(tx) = self.txs.get(t) {
            if tx.send(resp).is_err() {
                if let Some(s) = self.threads.get_mut(t) {
                    *s = ThreadState::Finished;
                }
            }
        }
    }

    /// The scheduler loop: the world's actions and the resumption of ready
    /// threads, drawn by [`World::step_with`], a crash point before every
    /// step and after the last.
    fn drive(&mut self) {
        self.drive_until(None);
        if !self.stopped
            && matches!(
                self.fault,
                Some(FaultAt {
                    fault: Fault::TargetKilled,
                    ..
                })
            )
            && self.world.faulted()
        {
            self.judge_surviving_host();
        }
        self.release();
    }

    /// One workload thread, on the caller's thread: the first crash point
    /// (the empty pool), then the workload runs.
    fn start_inline(&mut self) {
        self.crash_point();
        if let Some(s) = self.threads.get_mut(0) {
            *s = ThreadState::Running;
        }
    }

    /// A request of the workload running on the caller's thread: a call
    /// drives the world until it returns.
    fn inline(&mut self, req: Req) -> Resp {
        let Req::Call { lane, call } = req else {
            return self
                .immediate(req)
                .unwrap_or(Resp::Err(SimCallError::Stopped));
        };
        if self.stopped {
            return Resp::Err(SimCallError::Stopped);
        }
        if let Err(e) = self.start(0, lane, call) {
            return Resp::Err(e);
        }
        if let Some(s) = self.threads.get_mut(0) {
            *s = ThreadState::InCall;
        }
        self.drive_until(Some(0))
            .unwrap_or(Resp::Err(SimCallError::Stopped))
    }

    /// The requests answered at once (no step); `None` for a call or an
    /// end.
    fn immediate(&mut self, req: Req) -> Option<Resp> {
        Some(match req {
            Req::Write { lane, offset, data } => {
                if self.stopped {
                    return Some(Resp::Err(SimCallError::Stopped));
                }
                self.world.write_local(offset, &data);
                let call = Call::Write { offset, data };
                self.note(format!("lane {lane}: call {call}"));
                self.history.push(call);
                self.history_lanes.push(lane);
                Resp::Ok
            }
            Req::ReadLocal { offset, len } => Resp::Bytes(self.world.local_bytes(offset, len)),
            Req::History => Resp::History(self.history.clone()),
            Req::Steps => Resp::Steps(self.world.steps()),
            Req::Call { .. } | Req::Done(_) => return None,
        })
    }

    /// The scheduler loop until thread `inline` is ready (its answer), or
    /// nothing moves (`None`).
    fn drive_until(&mut self, inline: Option<usize>) -> Option<Resp> {
        loop {
            self.mid_points();
            self.collect();
            self.crash_point();
            if self.stopped {
                return None;
            }
            if let Some(t) = inline {
                if let Some(s) = self.threads.get_mut(t) {
                    if matches!(s, ThreadState::Ready(_)) {
                        if let ThreadState::Ready(resp) = std::mem::replace(s, ThreadState::Running)
                        {
                            return Some(resp);
                        }
                    }
                }
            }
            let ready: Vec<usize> = self
                .threads
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, ThreadState::Ready(_)))
                .map(|(t, _)| t)
                .collect();
            let weights: Vec<u64> = ready
                .iter()
                .map(|&t| self.resume_weight.get(t).copied().unwrap_or(1))
                .collect();
            match self.world.step_with(&weights, self.max_steps) {
                Stepped::World => self.world_errors(),
                Stepped::Extra(i) => {
                    if let Some(&t) = ready.get(i) {
                        self.resume(t);
                    }
                }
                Stepped::Idle => {
                    let stuck: Vec<String> = self
                        .in_flight
                        .iter()
                        .enumerate()
                        .filter_map(|(l, c)| {
                            c.as_ref().map(|(_, call, _)| {
                                format!(
                                    "lane {l}: {call} never returned ({})",
                                    self.world.pending(lane_no(l))
                                )
                            })
                        })
                        .collect();
                    for what in stuck {
                        self.error(what);
                    }
                    return None;
                }
                Stepped::Limit => {
                    let limit = self.max_steps;
                    self.error(format!("no end after {limit} steps"));
                    return None;
                }
            }
        }
    }

    /// Let every thread that has not ended run to its end: each of its
    /// calls now returns [`SimCallError::Stopped`].
    fn release(&mut self) {
        self.stopped = true;
        for t in 0..self.threads.len() {
            let state = match self.threads.get_mut(t) {
                Some(s) => std::mem::replace(s, ThreadState::Running),
                None => continue,
            };
            match state {
                ThreadState::Finished => {
                    if let Some(s) = self.threads.get_mut(t) {
                        *s = ThreadState::Finished;
                    }
                }
                // A thread that never started ends without running.
                ThreadState::Ready(_) | ThreadState::InCall | ThreadState::Running => {
                    self.send(t, Resp::Err(SimCallError::Stopped));
                    self.serve(t);
                }
            }
        }
    }

    fn resume(&mut self, t: usize) {
        let Some(s) = self.threads.get_mut(t) else {
            return;
        };
        let ThreadState::Ready(resp) = std::mem::replace(s, ThreadState::Running) else {
            return;
        };
        self.note(format!("thread {t} resumes"));
        self.send(t, resp);
        self.serve(t);
    }

    /// Serve thread `t`'s requests until it waits for a call or ends.
    fn serve(&mut self, t: usize) {
        loop {
            if matches!(self.threads.get(t), Some(ThreadState::Finished) | None) {
                return;
            }
            let Ok((from, req)) = self.rx.recv() else {
                if let Some(s) = self.threads.get_mut(t) {
                    *s = ThreadState::Finished;
                }
                return;
            };
            if from != t {
                // Cannot happen: one thread runs at a time.
                self.error(format!("thread {from} ran while thread {t} had the turn"));
            }
            match req {
                Req::Write { .. } | Req::ReadLocal { .. } | Req::History | Req::Steps => {
                    let resp = self
                        .immediate(req)
                        .unwrap_or(Resp::Err(SimCallError::Stopped));
                    self.send(from, resp);
                }
                Req::Call { lane, call } => {
                    if self.stopped {
                        self.send(from, Resp::Err(SimCallError::Stopped));
                        continue;
                    }
                    match self.start(from, lane, call) {
                        Ok(()) => {
                            if let Some(s) = self.threads.get_mut(from) {
                                *s = ThreadState::InCall;
                            }
                            return;
                        }
                        Err(e) => self.send(from, Resp::Err(e)),
                    }
                }
                Req::Done(outcome) => {
                    if let Some(s) = self.threads.get_mut(from) {
                        *s = ThreadState::Finished;
                    }
                    self.ended(from, outcome);
                    if from == t {
                        return;
                    }
                }
            }
        }
    }

    fn ended(&mut self, t: usize, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.note(format!("thread {t} ends")),
            Outcome::Err(e) if self.stopped || self.world.faulted() => {
                self.note(format!("thread {t} ends with an error: {e}"));
            }
            Outcome::Err(e) => self.error(format!("the workload returned an error: {e}")),
            Outcome::Panic(p) => {
                // The run's state is whatever the panic left.
                self.error(format!("the workload panicked: {p}"));
            }
        }
    }

    /// Start `call` on lane `lane` for thread `t`.
    fn start(&mut self, t: usize, lane: u32, call: Call) -> Result<(), SimCallError> {
        let l = idx(lane.into());
        match self.in_flight.get(l) {
            None => {
                return Err(SimCallError::NoSuchLane {
                    lane,
                    nlanes: self.info.nlanes,
                })
            }
            Some(Some(_)) => return Err(SimCallError::LaneBusy { lane }),
            Some(None) => {}
        }
        let snapshot = call
            .sent()
            .map(|(o, len)| {
                if o.checked_add(len).is_some_and(|e| e <= self.info.size) {
                    self.world.local_bytes(o, len)
                } else {
                    Vec::new()
                }
            })
            .unwrap_or_default();
        let read_len = match call {
            Call::Read { len, .. } => len,
            _ => 0,
        };
        match self.world.app_start(lane, &call, read_len) {
            Ok(()) => {
                if let Some(slot) = self.in_flight.get_mut(l) {
                    *slot = Some((t, call, snapshot));
                }
                self.world.count_step();
                self.world_errors();
                Ok(())
            }
            Err(CallError::Broken(error)) => {
                self.note(format!(
                    "lane {lane}: call {call} fails: lane broken: {error}"
                ));
                Err(SimCallError::Failed {
                    call: call.to_string(),
                    error: format!("lane is broken: {error}"),
                })
            }
            Err(error) => {
                self.note(format!("lane {lane}: call {call} refused: {error}"));
                Err(SimCallError::Rejected {
                    call: call.to_string(),
                    error,
                })
            }
        }
    }

    /// Collect the calls that returned: their threads are ready.
    fn collect(&mut self) {
        for l in 0..self.in_flight.len() {
            if !matches!(self.in_flight.get(l), Some(Some(_))) {
                continue;
            }
            let lane = lane_no(l);
            let Some(result) = self.world.take_done(lane) else {
                continue;
            };
            let Some((t, call, snapshot)) = self.in_flight.get_mut(l).and_then(Option::take) else {
                continue;
            };
            let resp = match result {
                Ok(()) => {
                    self.note(format!("lane {lane}: {call} returns success"));
                    self.acknowledge(l, &call, snapshot);
                    let resp = match call {
                        Call::Read { .. } => Resp::Bytes(self.world.take_read(lane)),
                        _ => Resp::Ok,
                    };
                    self.history.push(call);
                    self.history_lanes.push(lane);
                    resp
                }
                Err(error) => {
                    self.note(format!("lane {lane}: {call} fails: {error}"));
                    Resp::Err(SimCallError::Failed {
                        call: call.to_string(),
                        error,
                    })
                }
            };
            if let Some(s) = self.threads.get_mut(t) {
                *s = ThreadState::Ready(resp);
            }
        }
        self.world_errors();
    }

    /// Update the acknowledged state (for the difference in a failure
    /// report) as the built-in checker's promises go: where plain persists
    /// are durable, a persist, deep persist or drain acknowledges every
    /// earlier flush of its lane and its own range; elsewhere only a deep
    /// persist acknowledges, its own range.
    fn acknowledge(&mut self, l: usize, call: &Call, snapshot: Vec<u8>) {
        let plain = self.config.platform.plain_persist_durable();
        let Some(unacked) = self.unacked.get_mut(l) else {
            return;
        };
        let apply = |acked: &mut Vec<u8>, offset: u64, data: &[u8]| {
            let end = offset.saturating_add(data.len() as u64);
            if let Some(dst) = acked.get_mut(idx(offset)..idx(end)) {
                dst.copy_from_slice(data);
            }
        };
        match call {
            Call::Flush { offset, .. } => unacked.push((*offset, snapshot)),
            Call::Persist { offset, .. } | Call::DeepPersist { offset, .. } if plain => {
                for (o, d) in std::mem::take(unacked) {
                    apply(&mut self.acked, o, &d);
                }
                apply(&mut self.acked, *offset, &snapshot);
            }
            Call::Drain { .. } if plain => {
                for (o, d) in std::mem::take(unacked) {
                    apply(&mut self.acked, o, &d);
                }
            }
            Call::DeepPersist { offset, .. } => apply(&mut self.acked, *offset, &snapshot),
            _ => {}
        }
    }

    // ----- crash points -----

    /// The crash points inside the last step (TCP: between two steps of a
    /// persist message's plan, which the target runs in one scheduler step
    /// as rpmemd's lane thread does), judged like the others.
    fn mid_points(&mut self) {
        for MidPoint { step, words } in self.world.take_mid_points() {
            self.judge_point(step, words);
        }
    }

    /// The crash point after the last step.
    fn crash_point(&mut self) {
        if self.stopped {
            return;
        }
        let words = self
            .world
            .mem_mut()
            .take_changed()
            .into_iter()
            .map(|w| (w, self.world.mem().crash_candidates(w)))
            .collect();
        let step = self.world.steps();
        self.judge_point(step, words);
    }

    /// Judge a crash point after `step` steps, where `changed` are the words
    /// whose candidates changed since the previous point.
    fn judge_point(&mut self, step: u64, changed: Vec<(u64, Vec<Candidate>)>) {
        if self.stopped {
            return;
        }
        self.point_step = step;
        let none_changed = changed.is_empty();
        for (w, cands) in changed {
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
        if none_changed && self.judged_history == Some(self.history.len()) {
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
            if let Err(reason) = self.judge_image() {
                let sources: BTreeMap<u64, &'static str> = words
                    .iter()
                    .zip(&pick)
                    .filter_map(|((w, c), &i)| c.get(i).map(|c| (*w, c.source.name())))
                    .collect();
                self.fail(reason, &sources, product, Judged::Point { exhaustive }, n);
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

    /// `recover`'s verdict on the image in `img` (a panic rejects it).
    fn judge_image(&mut self) -> Result<(), String> {
        self.images = self.images.saturating_add(1);
        let recover = self.recover;
        let (img, history) = (&self.img, &self.history);
        catch_unwind(AssertUnwindSafe(|| recover(img, history)))
            .unwrap_or_else(|p| Err(format!("recover panicked: {}", panic_text(&*p))))
    }

    /// After the target process was killed and the run ended: the host
    /// stayed up, so the pool holds what its memory holds (every word's
    /// current, coherent value).
    fn judge_surviving_host(&mut self) {
        let size = self.info.size;
        self.point_step = self.world.steps();
        self.img = self.world.mem().read(0, size);
        if let Err(reason) = self.judge_image() {
            self.fail(reason, &BTreeMap::new(), 1, Judged::SurvivingHost, 0);
        }
        self.img.clone_from(&self.base);
    }

    fn fail(
        &mut self,
        reason: String,
        sources: &BTreeMap<u64, &'static str>,
        product: u64,
        judged: Judged,
        index: u64,
    ) {
        let mut diff = Vec::new();
        let mut total = 0usize;
        let mut w = 0u64;
        while w < self.info.size {
            let (a, b) = (word_at(&self.img, w), word_at(&self.acked, w));
            if a != b {
                total = total.saturating_add(1);
                if diff.len() < MAX_DIFF_WORDS {
                    diff.push(WordDiff {
                        offset: w,
                        image: a,
                        acknowledged: b,
                        source: sources.get(&w).copied().unwrap_or(match judged {
                            Judged::SurvivingHost => "memory of the surviving host",
                            Judged::Point { .. } => "media",
                        }),
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
            fault: self.fault.filter(|_| self.world.faulted()),
            step: self.point_step,
            reason,
            history: self.history.clone(),
            history_lanes: self.history_lanes.clone(),
            in_flight: self
                .in_flight
                .iter()
                .enumerate()
                .filter_map(|(l, c)| c.as_ref().map(|(_, call, _)| (lane_no(l), call.clone())))
                .collect(),
            images_at_point: product,
            exhaustive: match judged {
                Judged::Point { exhaustive } => exhaustive,
                Judged::SurvivingHost => true,
            },
            surviving_host: judged == Judged::SurvivingHost,
            image_index: index,
            image: self.img.clone(),
            diff,
            diff_total: total,
        });
        self.stopped = true;
    }
}

/// How a rejected image was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judged {
    Point { exhaustive: bool },
    SurvivingHost,
}

fn lane_no(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
