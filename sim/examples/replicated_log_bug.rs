//! The replicated log of `replicated_log.rs` with a classic bug, and the
//! simulator catching it: it prints the seed, the configuration, the calls
//! up to the crash and the words that differ, and exits 0 when the bug was
//! caught (1 when it escaped).
//!
//! ```sh
//! cargo run -p sim --release --example replicated_log_bug                       # tail persisted before the record
//! cargo run -p sim --release --example replicated_log_bug -- --bug plain-persist
//! cargo run -p sim --release --example replicated_log_bug -- --bug undrained
//! cargo run -p sim --release --example replicated_log_bug -- --seed 1 --config adr-ddio/gpspm --verbose
//! cargo run -p sim --release --example replicated_log_bug -- --placement tcp    # over TCP lanes
//! ```
//!
//! Bugs (`--bug`):
//!
//! * `tail-first` (default): the new tail is published (persisted, even
//!   deep persisted) before the record it covers. A crash between the two
//!   leaves a tail that covers a record never sent. Caught on every
//!   platform, in the first seed.
//! * `plain-persist`: record and tail are made durable with plain persists,
//!   in the right order. Correct wherever plain persists are durable; on
//!   `devdax-wpq` (the memory controller's write-pending queue is not
//!   trusted to survive a power failure, only deep persists reach media)
//!   the tail may reach media while the record does not. Caught there
//!   only.
//! * `undrained` (two lanes): the record is flushed RELAXED on lane 0 and
//!   never drained; the tail is persisted on lane 1. A persist drains only
//!   its own lane's flushes, so the tail can be durable while the record's
//!   WRITE is still in the network or in the target's cache. Caught on
//!   every platform.

use std::process::ExitCode;

use sim::app::{Replica, SimCallError, SimLane, Simulation, FLUSH_RELAXED, PERSIST_RELAXED};
use sim::platform::Config;

#[allow(dead_code)]
#[path = "replicated_log.rs"]
pub mod log;

/// BUG: the tail first, then the record.
pub fn append_tail_first<R: Replica>(r: &mut R, n: u64, value: u64) -> Result<(), R::Error> {
    let tail = r.data_start();
    r.write(tail, &(n + 1).to_le_bytes())?;
    r.persist(tail, 8, 0)?;
    r.deep_persist(tail, 8)?;
    let at = log::record_at(r, n);
    r.write(at, &log::record(n + 1, value))?;
    r.deep_persist(at, log::RECORD)
}

/// BUG on devdax-wpq: plain persists only (right order). The append is
/// acknowledged when the tail's persist returns.
pub fn append_plain<R: Replica>(r: &mut R, n: u64, value: u64) -> Result<(), R::Error> {
    let at = log::record_at(r, n);
    r.write(at, &log::record(n + 1, value))?;
    r.persist(at, log::RECORD, PERSIST_RELAXED)?;
    let tail = r.data_start();
    r.write(tail, &(n + 1).to_le_bytes())?;
    r.persist(tail, 8, 0)
}

/// BUG: the record's RELAXED flush on lane 0 is never drained; the tail is
/// published on lane 1. (Two lanes of one simulated pool are taken one at a
/// time from the [`SimLane`], so this function is written for it rather
/// than for two `Replica`s.)
pub fn append_undrained(r: &mut SimLane<'_>, n: u64, value: u64) -> Result<(), SimCallError> {
    let at = log::record_at(r, n);
    r.write(at, &log::record(n + 1, value))?;
    r.flush(at, log::RECORD, FLUSH_RELAXED)?;
    let tail = r.data_start();
    let mut lane1 = r.lane(1)?;
    lane1.write(tail, &(n + 1).to_le_bytes())?;
    lane1.persist(tail, 8, 0)?;
    lane1.deep_persist(tail, 8)
}

/// The campaign with the bug `bug` (`tail-first`, `plain-persist` or
/// `undrained`).
pub fn simulation(
    bug: &str,
    seeds: std::ops::Range<u64>,
    configs: Vec<Config>,
) -> Result<Simulation<'static>, String> {
    let recover = |image: &[u8], history: &[sim::app::Call]| log::recover(image, history, 4096);
    let sim = match bug {
        "tail-first" => {
            Simulation::new(log::workload(|r, n, v| append_tail_first(r, n, v)), recover)
        }
        "plain-persist" => Simulation::new(log::workload(|r, n, v| append_plain(r, n, v)), recover),
        "undrained" => Simulation::new(log::workload(append_undrained), recover).lanes(2),
        other => {
            return Err(format!(
                "unknown bug {other}: tail-first, plain-persist or undrained"
            ))
        }
    };
    Ok(sim.seeds(seeds).configs(configs))
}

fn main() -> ExitCode {
    let args = match log::args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("replicated_log_bug: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bug = "tail-first".to_string();
    let mut rest = args.rest.iter();
    while let Some(a) = rest.next() {
        match (a.as_str(), rest.next()) {
            ("--bug", Some(b)) => bug = b.clone(),
            _ => {
                eprintln!("replicated_log_bug: unknown argument {a}");
                return ExitCode::from(2);
            }
        }
    }
    let sim = match simulation(&bug, args.seeds.clone(), args.configs.clone()) {
        Ok(s) => s.verbose(args.verbose),
        Err(e) => {
            eprintln!("replicated_log_bug: {e}");
            return ExitCode::from(2);
        }
    };
    if args.verbose {
        log::print_trace(&sim, &args);
    }
    let report = sim.run();
    print!("{report}");
    match &report.failure {
        Some(f) => {
            println!(
                "caught: replay with --bug {bug} --seed {} --config {}",
                f.seed,
                log::config_arg(&f.config)
            );
            ExitCode::SUCCESS
        }
        None => {
            println!("NOT caught: the simulator did not see the bug {bug}");
            ExitCode::FAILURE
        }
    }
}
