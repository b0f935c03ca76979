//! A persistent append-only log replicated with rpmem semantics, and the
//! simulator proving that every crash leaves a log its recovery accepts.
//!
//! ```sh
//! cargo run -p sim --release --example replicated_log                 # 20 seeds, every allowed configuration
//! cargo run -p sim --release --example replicated_log -- --seeds 200
//! cargo run -p sim --release --example replicated_log -- --seed 7 --config adr-ddio/gpspm --verbose
//! cargo run -p sim --release --example replicated_log -- --seeds 1000 --bench   # images/s, and the simulator alone
//! cargo run -p sim --release --example replicated_log -- --faults   # also rpmemd killed, a lane reset
//! cargo run -p sim --release --example replicated_log -- --placement tcp   # over TCP lanes (all: both)
//! cargo run -p sim --release --example replicated_log -- --seed 7 --config adr-ddio/tcp --verbose
//! ```
//!
//! The application code (`append`, `recover`) is written against
//! [`Replica`]: the same functions run on a real `rpmem::Lane`.
//!
//! Layout, from the pool's first writable byte `D` (4096 with a pool
//! header):
//!
//! | offset | what |
//! |---|---|
//! | `D` | the tail: the number of committed records (8-byte word) |
//! | `D + 64 + 24 i` | record `i`: sequence number `i + 1`, value, check word |
//!
//! An append writes the record, makes it durable, then publishes it by
//! storing the new tail with an 8-byte failure-atomic persist. Recovery
//! trusts the tail: every record below it must be intact, and no append the
//! application acknowledged may be missing.

use std::error::Error;
use std::process::ExitCode;

use sim::app::{allowed_configs, Call, Fault, Placement, Replica, SimLane, Simulation};
use sim::platform::{method_arg, parse_method, platform, Config};

/// Bytes of one record: sequence number, value, check word.
pub const RECORD: u64 = 24;
/// The records start one cache line after the tail.
pub const RECORDS: u64 = 64;
/// Appends per run.
pub const APPENDS: u64 = 5;

/// The check word of a record (a mix of its sequence number and value).
pub fn check(seq: u64, value: u64) -> u64 {
    (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ value.rotate_left(17)) | 1
}

/// The bytes of record `seq` (1-based) holding `value`.
pub fn record(seq: u64, value: u64) -> [u8; RECORD as usize] {
    let mut r = [0u8; RECORD as usize];
    r[..8].copy_from_slice(&seq.to_le_bytes());
    r[8..16].copy_from_slice(&value.to_le_bytes());
    r[16..].copy_from_slice(&check(seq, value).to_le_bytes());
    r
}

/// Where record `i` (0-based) lives.
pub fn record_at<R: Replica>(r: &R, i: u64) -> u64 {
    r.data_start() + RECORDS + i * RECORD
}

/// Append record number `n` (0-based; the log holds `n` records) with
/// `value`. Correct on every platform the policy allows:
///
/// 1. the record is made durable with a deep persist (on a platform where
///    the memory controller's queue is not trusted, devdax-wpq, only deep
///    persists are durable; elsewhere it is a relaxed persist);
/// 2. only then is the tail published: a non-RELAXED persist, so the tail
///    word is failure atomic (old or new count, never a mix), followed by a
///    deep persist of the same word so that it is durable on devdax-wpq
///    too. When that returns, the append is acknowledged.
pub fn append<R: Replica>(r: &mut R, n: u64, value: u64) -> Result<(), R::Error> {
    let at = record_at(r, n);
    r.write(at, &record(n + 1, value))?;
    r.deep_persist(at, RECORD)?;
    let tail = r.data_start();
    r.write(tail, &(n + 1).to_le_bytes())?;
    r.persist(tail, 8, 0)?;
    r.deep_persist(tail, 8)
}

fn word(image: &[u8], at: u64) -> Result<u64, String> {
    let at = usize::try_from(at).map_err(|e| e.to_string())?;
    image
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("offset {at} is outside the image"))
}

/// Recovery's verdict on a post-crash image of the pool: `data_start` is
/// the pool's first writable byte; `history` the calls that returned
/// success before the crash.
pub fn recover(image: &[u8], history: &[Call], data_start: u64) -> Result<(), String> {
    let tail = word(image, data_start)?;
    let capacity = (image.len() as u64).saturating_sub(data_start + RECORDS) / RECORD;
    if tail > capacity {
        return Err(format!(
            "tail {tail} is beyond the log's capacity {capacity}"
        ));
    }
    for i in 0..tail {
        let at = data_start + RECORDS + i * RECORD;
        let (seq, value, chk) = (
            word(image, at)?,
            word(image, at + 8)?,
            word(image, at + 16)?,
        );
        if seq != i + 1 || chk != check(seq, value) {
            return Err(format!(
                "tail {tail}, but record {i} at offset {at} is not intact \
                 (sequence {seq}, value {value:#x}, check {chk:#x})"
            ));
        }
    }
    // An append is acknowledged when the deep persist of the tail returned.
    let acknowledged = history
        .iter()
        .filter(|c| matches!(c, Call::DeepPersist { offset, len: 8 } if *offset == data_start))
        .count() as u64;
    if tail < acknowledged {
        return Err(format!(
            "tail {tail}, but {acknowledged} appends were acknowledged"
        ));
    }
    Ok(())
}

/// The value of append `n` in the run of `seed` (the workload's own
/// randomness comes from the run's seed, so the seed replays the run).
pub fn value(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// The workload: [`APPENDS`] appends with `append`, then read the tail back
/// from the remote pool.
pub fn workload<F>(append: F) -> impl Fn(&mut SimLane<'_>) -> Result<(), Box<dyn Error>>
where
    F: Fn(&mut SimLane<'_>, u64, u64) -> Result<(), sim::app::SimCallError>,
{
    move |r: &mut SimLane<'_>| {
        for n in 0..APPENDS {
            append(r, n, value(r.seed(), n))?;
        }
        let mut tail = [0u8; 8];
        let at = r.data_start();
        r.read(at, &mut tail)?;
        if u64::from_le_bytes(tail) != APPENDS {
            return Err(format!("read back tail {:?}", tail).into());
        }
        Ok(())
    }
}

/// The campaign: the correct log over `seeds` in `configs`.
pub fn simulation(seeds: std::ops::Range<u64>, configs: Vec<Config>) -> Simulation<'static> {
    Simulation::new(workload(|r, n, v| append(r, n, v)), |image, history| {
        recover(image, history, 4096)
    })
    .seeds(seeds)
    .configs(configs)
}

/// Command-line options shared by the log examples.
pub struct Args {
    /// Seeds to run.
    pub seeds: std::ops::Range<u64>,
    /// Configurations to run.
    pub configs: Vec<Config>,
    /// Print the step trace of each run (with one seed and configuration).
    pub verbose: bool,
    /// Other arguments.
    pub rest: Vec<String>,
}

/// `PLATFORM/METHOD` as `--config` takes it: `adr-ddio/gpspm`, or
/// `adr-ddio/tcp` for a TCP configuration.
pub fn config_arg(c: &Config) -> String {
    let method = if c.is_tcp() {
        Placement::Stream.name()
    } else {
        method_arg(c.method)
    };
    format!("{}/{method}", c.platform.name)
}

/// Parse `--seeds N`, `--seed S`, `--config PLATFORM/METHOD` (METHOD
/// `tcp`: the platform's TCP configuration), `--placement rdma|tcp|all`
/// (every allowed configuration of that placement; default rdma),
/// `--verbose`.
pub fn args() -> Result<Args, String> {
    let mut a = Args {
        seeds: 1..21,
        configs: allowed_configs(Placement::Rdma),
        verbose: false,
        rest: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seeds" => {
                let n: u64 = value()?.parse().map_err(|e| format!("--seeds: {e}"))?;
                a.seeds = 1..n.saturating_add(1);
            }
            "--seed" => {
                let s: u64 = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                a.seeds = s..s.saturating_add(1);
            }
            "--config" => {
                let v = value()?;
                let (p, m) = v.split_once('/').ok_or(format!(
                    "--config {v}: expected PLATFORM/METHOD, e.g. adr-ddio/gpspm"
                ))?;
                let p = platform(p).ok_or(format!("unknown platform {p}"))?;
                a.configs = vec![if m.eq_ignore_ascii_case(Placement::Stream.name()) {
                    Config::tcp(p)
                } else {
                    Config::new(p, parse_method(m).ok_or(format!("unknown method {m}"))?)
                }];
            }
            "--placement" => {
                let v = value()?;
                a.configs = if v.eq_ignore_ascii_case("all") {
                    Placement::ALL
                        .into_iter()
                        .flat_map(allowed_configs)
                        .collect()
                } else {
                    let p = Placement::from_name(&v)
                        .map_err(|e| format!("--placement: {e} (or all)"))?;
                    allowed_configs(p)
                };
            }
            "--verbose" => a.verbose = true,
            _ => a.rest.push(arg),
        }
    }
    Ok(a)
}

/// Print each run's step trace (`--verbose`).
pub fn print_trace(sim: &Simulation<'_>, args: &Args) {
    for seed in args.seeds.clone() {
        for &config in &args.configs {
            for line in sim.run_one(seed, config).log {
                println!("{line}");
            }
        }
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("replicated_log: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sim = simulation(args.seeds.clone(), args.configs.clone()).verbose(args.verbose);
    if args.rest.iter().any(|a| a == "--faults") {
        // Each seed once more with the target process killed and once with
        // a lane reset, at seeded steps.
        sim = sim.faults(vec![Fault::TargetKilled, Fault::LaneReset]);
    }
    if args.verbose {
        print_trace(&sim, &args);
    }
    let start = std::time::Instant::now();
    let report = sim.run();
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    print!("{report}");
    println!(
        "{secs:.2} s, {:.0} images judged per second",
        report.images as f64 / secs
    );
    if args.rest.iter().any(|a| a == "--bench") {
        // The baseline, same process, same seeds and configurations: the
        // simulator alone (a recover that accepts every image unread).
        let bare = Simulation::new(
            workload(|r, n, v| append(r, n, v)),
            |_: &[u8], _: &[Call]| Ok(()),
        )
        .seeds(args.seeds.clone())
        .configs(args.configs.clone());
        let start = std::time::Instant::now();
        let base = bare.run();
        let base_secs = start.elapsed().as_secs_f64().max(1e-9);
        println!(
            "baseline (recover accepts unread): {base_secs:.2} s, {:.0} images per second; \
             the log's recover runs at {:.2}x the baseline's images per second",
            base.images as f64 / base_secs,
            (report.images as f64 / secs) / (base.images as f64 / base_secs).max(1e-9)
        );
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
