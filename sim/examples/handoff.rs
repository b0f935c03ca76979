//! Two threads, one lane each, as an application replicating with rpmem
//! runs them: a producer writes a record and persists it on lane 0; a
//! publisher, on lane 1, sets a flag saying the record is durable once the
//! producer says its persist returned. With `--bug early` the publisher
//! publishes as soon as it sees the record in the local region, while the
//! producer's persist may still be in flight: the flag can become durable
//! first, which the simulator finds because the two threads' calls overlap
//! (with one thread, or calls run one at a time, it cannot show).
//!
//! ```sh
//! cargo run -p sim --release --example handoff                 # every image accepted
//! cargo run -p sim --release --example handoff -- --bug early  # caught
//! cargo run -p sim --release --example handoff -- --seeds 200
//! ```
//!
//! Layout, from the pool's first writable byte `D`:
//!
//! | offset | what |
//! |---|---|
//! | `D` | the flag: 1 when the record is published (8-byte word) |
//! | `D + 64` | the record (8-byte word) |
//! | `D + 128` | the producer's "persisted" mark, local only (never sent) |

use std::error::Error;
use std::process::ExitCode;

use sim::app::{Call, Replica, SimLane, Simulation};
use sim::platform::Config;

/// The published flag, from `data_start`.
pub const FLAG: u64 = 0;
/// The record.
pub const RECORD: u64 = 64;
/// The producer's local mark: its persist returned.
pub const READY: u64 = 128;
/// The record's value.
pub const VALUE: u64 = 0xabcd;

/// The producer (thread 0, lane 0): the record, durable, then the mark.
pub fn produce<R: Replica>(r: &mut R) -> Result<(), R::Error> {
    let d = r.data_start();
    r.write(d + RECORD, &VALUE.to_le_bytes())?;
    r.persist(d + RECORD, 8, 0)?;
    r.write(d + READY, &1u64.to_le_bytes())
}

/// The publisher (thread 1, lane 1): waits, making calls (a thread waits
/// for its calls like for rpmem's; that is when others run), until it sees
/// the producer's mark (`early`: the record itself), then publishes the
/// flag. Gives up after 200 rounds.
pub fn publish<R: Replica>(r: &mut R, early: bool) -> Result<bool, R::Error> {
    let d = r.data_start();
    let watch = if early { d + RECORD } else { d + READY };
    for _ in 0..200 {
        let mut buf = [0u8; 8];
        r.read_local(watch, &mut buf)?;
        if u64::from_le_bytes(buf) != 0 {
            r.write(d + FLAG, &1u64.to_le_bytes())?;
            r.persist(d + FLAG, 8, 0)?;
            return Ok(true);
        }
        r.read(d + FLAG, &mut buf)?;
    }
    Ok(false)
}

/// Recovery: a published flag means the record is there.
pub fn recover(image: &[u8], _history: &[Call], data_start: u64) -> Result<(), String> {
    let word = |at: u64| -> Result<u64, String> {
        let at = usize::try_from(at).map_err(|e| e.to_string())?;
        image
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| format!("offset {at} is outside the image"))
    };
    match (word(data_start + FLAG)?, word(data_start + RECORD)?) {
        (0, _) | (1, VALUE) => Ok(()),
        (flag, record) => Err(format!("flag {flag} published, record {record:#x}")),
    }
}

/// The configurations where a plain persist is durable (on devdax-wpq
/// only deep persists are; this example's persists are plain).
pub fn configs() -> Vec<Config> {
    Config::all()
        .into_iter()
        .filter(|c| c.allowed() && !c.is_tcp() && c.platform.plain_persist_durable())
        .collect()
}

/// The campaign: two threads, the publisher `early` or not.
pub fn simulation(early: bool, seeds: std::ops::Range<u64>) -> Simulation<'static> {
    let workload = move |r: &mut SimLane<'_>| -> Result<(), Box<dyn Error>> {
        if r.thread() == 0 {
            produce(r)?;
        } else if !publish(r, early)? {
            return Err("the producer's record never appeared".into());
        }
        Ok(())
    };
    Simulation::new(workload, |image, history| recover(image, history, 4096))
        .threads(2)
        .configs(configs())
        .seeds(seeds)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let mut early = false;
    let mut seeds = 1..21;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let n = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), args.next()) {
            ("--bug", Some(b)) if b == "early" => early = true,
            ("--seeds", v) if n(v.clone()).is_some() => {
                seeds = 1..n(v).unwrap_or(20).saturating_add(1);
            }
            ("--seed", v) if n(v.clone()).is_some() => {
                let s = n(v).unwrap_or(1);
                seeds = s..s.saturating_add(1);
            }
            _ => {
                eprintln!("handoff: usage: [--bug early] [--seeds N | --seed S]");
                return ExitCode::from(2);
            }
        }
    }
    let report = simulation(early, seeds).run();
    print!("{report}");
    if report.passed() != early {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
