//! The client of the crash campaign (`tests/crash_campaign.rs`,
//! `rpmem_e2e::crash`): carries out the plan of one seed through the
//! library and prints a line before each step (`BEGIN i`) and after each
//! step that succeeded (`OK i`), flushed at once, so that the harness knows
//! what was acknowledged when it kills a process.
//!
//! `crash_client SEED`, with `CRASH_TARGET`, `CRASH_POOLSET` and the
//! library's `RPMEM_*` variables (`RPMEM_LAUNCH`, `RPMEM_CMD`, `RPMEM_SSH`).
//! Exit status 0 when every step succeeded; 3 after a step failed (`ERR i
//! message`); 4 when a read returned other bytes than were persisted
//! (`MISMATCH i offset`); 2 on a usage error.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use rpmem::{Options, Region, RemotePool};
use rpmem_e2e::crash::{
    attr_of, Op, Plan, CLIENT_CONTROL_TIMEOUT, CLIENT_DATA_TIMEOUT, NLANES, POOL_LEN,
};
use rpmem_e2e::pattern;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The harness reads these lines; if it has gone, nobody listens.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let Some(seed) = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: crash_client SEED (with CRASH_TARGET, CRASH_POOLSET, RPMEM_*)");
        return ExitCode::from(2);
    };
    let (Ok(target), Ok(pool_set)) = (
        std::env::var("CRASH_TARGET"),
        std::env::var("CRASH_POOLSET"),
    ) else {
        eprintln!("crash_client: CRASH_TARGET and CRASH_POOLSET must be set");
        return ExitCode::from(2);
    };
    let opts = match Options::from_env() {
        Ok(o) => o
            .to_builder()
            .control_timeout(CLIENT_CONTROL_TIMEOUT)
            .data_timeout(CLIENT_DATA_TIMEOUT)
            .build(),
        Err(e) => {
            eprintln!("crash_client: {e}");
            return ExitCode::from(2);
        }
    };
    let region = match Region::new(POOL_LEN as usize) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("crash_client: region: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = Plan::of(seed);
    let mut pool: Option<RemotePool> = None;
    let mut i = 0;
    while let Some(op) = plan.ops.get(i) {
        say(&format!("BEGIN {i}"));
        let (result, next) = match *op {
            Op::Burst { count } => {
                let subs = plan.ops.get(i + 1..i + 1 + usize::from(count));
                (
                    burst(i + 1, subs.unwrap_or(&[]), &region, pool.as_ref()),
                    i + 1 + usize::from(count),
                )
            }
            op => (
                step(&plan, op, &target, &pool_set, &region, &opts, &mut pool),
                i + 1,
            ),
        };
        match result {
            Ok(()) => say(&format!("OK {i}")),
            Err(Step::Failed(msg)) => {
                say(&format!("ERR {i} {}", msg.replace('\n', " | ")));
                return ExitCode::from(3);
            }
            Err(Step::Mismatch(at)) => {
                say(&format!("MISMATCH {i} {at}"));
                return ExitCode::from(4);
            }
        }
        i = next;
    }
    ExitCode::SUCCESS
}

/// The persists `ops` (steps `first`, `first + 1`, ...) at once, one
/// thread each; each says `BEGIN` and `OK` for itself.
fn burst(
    first: usize,
    ops: &[Op],
    region: &Arc<Region>,
    pool: Option<&RemotePool>,
) -> Result<(), Step> {
    let pool = pool.ok_or_else(|| Step::Failed("no pool is open".to_owned()))?;
    let results: Vec<Result<(), Step>> = std::thread::scope(|s| {
        let handles: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(k, op)| {
                let j = first + k;
                s.spawn(move || {
                    say(&format!("BEGIN {j}"));
                    persist(pool, region, *op)?;
                    say(&format!("OK {j}"));
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Step::Failed("a burst thread panicked".to_owned())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// A persist or deep persist of `op`'s pattern.
fn persist(p: &RemotePool, region: &Arc<Region>, op: Op) -> Result<(), Step> {
    match op {
        Op::Persist {
            lane,
            off,
            len,
            flags,
            key,
        } => {
            region
                .write_at(off as usize, &pattern(len as usize, key))
                .map_err(failed)?;
            p.persist(lane % p.nlanes(), off, len, flags)
                .map_err(failed)
        }
        Op::DeepPersist {
            lane,
            off,
            len,
            key,
        } => {
            region
                .write_at(off as usize, &pattern(len as usize, key))
                .map_err(failed)?;
            p.deep_persist(lane % p.nlanes(), off, len).map_err(failed)
        }
        other => Err(Step::Failed(format!("{other:?} is not a persist"))),
    }
}

enum Step {
    Failed(String),
    Mismatch(u64),
}

fn failed(e: impl std::fmt::Display) -> Step {
    Step::Failed(e.to_string())
}

fn open_pool(pool: &Option<RemotePool>) -> Result<&RemotePool, Step> {
    pool.as_ref()
        .ok_or_else(|| Step::Failed("no pool is open".to_owned()))
}

fn step(
    plan: &Plan,
    op: Op,
    target: &str,
    pool_set: &str,
    region: &Arc<Region>,
    opts: &Options,
    pool: &mut Option<RemotePool>,
) -> Result<(), Step> {
    match op {
        Op::Create => {
            let attr = plan.initial_attr();
            let p = RemotePool::create(
                target,
                pool_set,
                Arc::clone(region),
                NLANES,
                Some(&attr),
                opts,
            )
            .map_err(failed)?;
            *pool = Some(p);
        }
        Op::Open => {
            let p = RemotePool::open(target, pool_set, Arc::clone(region), NLANES, opts)
                .map_err(failed)?;
            if p.attr() != Some(&plan.initial_attr()) {
                return Err(Step::Failed(format!(
                    "open: the pool's attributes are {:?}, not those it was created with",
                    p.attr()
                )));
            }
            *pool = Some(p);
        }
        Op::Persist { .. } | Op::DeepPersist { .. } => persist(open_pool(pool)?, region, op)?,
        Op::Burst { .. } => {
            return Err(Step::Failed("a burst runs in the main loop".to_owned()));
        }
        Op::SetAttr { gen } => {
            let p = open_pool(pool)?;
            p.set_attr(Some(&attr_of(plan.seed, gen))).map_err(failed)?;
        }
        Op::Read { lane, off, len } => {
            let p = open_pool(pool)?;
            let mut back = vec![0u8; len as usize];
            p.read(lane % p.nlanes(), off, &mut back).map_err(failed)?;
            let mut mine = vec![0u8; len as usize];
            region.read_at(off as usize, &mut mine).map_err(failed)?;
            if let Some(at) = back.iter().zip(&mine).position(|(a, b)| a != b) {
                return Err(Step::Mismatch(off + at as u64));
            }
        }
        Op::Close => {
            let p = pool
                .take()
                .ok_or_else(|| Step::Failed("no pool is open".to_owned()))?;
            p.close().map_err(failed)?;
        }
    }
    Ok(())
}
