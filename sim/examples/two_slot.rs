//! A record larger than 8 bytes, updated failure-atomically over rpmem with
//! two slots and an 8-byte selector, and the simulator checking it; with
//! `--bug in-place`, the same record overwritten in place, which a crash
//! can leave half old, half new (caught).
//!
//! ```sh
//! cargo run -p sim --release --example two_slot                   # every image accepted
//! cargo run -p sim --release --example two_slot -- --bug in-place # caught: a torn record
//! cargo run -p sim --release --example two_slot -- --seeds 100
//! ```
//!
//! Layout, from the pool's first writable byte `D`:
//!
//! | offset | what |
//! |---|---|
//! | `D` | the version `v` (8-byte word); the current record is in slot `v % 2` |
//! | `D + 64` | slot 0: version, 11 payload words, check word (104 bytes) |
//! | `D + 192` | slot 1 |
//!
//! An update writes version `v + 1` into the *other* slot, makes it durable,
//! then switches the version word with an 8-byte failure-atomic persist (and
//! a deep persist, for devdax-wpq). Recovery reads the version and checks
//! that its slot holds exactly that version, intact.

use std::error::Error;
use std::process::ExitCode;

use sim::app::{Call, Replica, SimLane, Simulation};

/// Payload words per record.
pub const WORDS: usize = 11;
/// Bytes of one slot: version, payload, check word.
pub const SLOT: u64 = 8 * (WORDS as u64 + 2);
/// Updates per run.
pub const UPDATES: u64 = 4;

/// Offset of slot `i` (0 or 1).
pub fn slot_at(data_start: u64, i: u64) -> u64 {
    data_start + 64 + (i % 2) * 128
}

/// The bytes of the record of `version`: its payload words are derived
/// from `seed` and `version`, the last word checks the others.
pub fn record(seed: u64, version: u64) -> Vec<u8> {
    let mut words = vec![version];
    let mut x = seed ^ version.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..WORDS {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        words.push(x);
    }
    words.push(check(&words));
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn check(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1
}

/// Correct: shadow slot, then the version word.
pub fn update<R: Replica>(r: &mut R, seed: u64, version: u64) -> Result<(), R::Error> {
    let d = r.data_start();
    let at = slot_at(d, version);
    r.write(at, &record(seed, version))?;
    r.deep_persist(at, SLOT)?;
    r.write(d, &version.to_le_bytes())?;
    r.persist(d, 8, 0)?;
    r.deep_persist(d, 8)
}

/// BUG: both slots skipped; the record is overwritten in slot 0 in place,
/// then the version.
pub fn update_in_place<R: Replica>(r: &mut R, seed: u64, version: u64) -> Result<(), R::Error> {
    let d = r.data_start();
    let at = slot_at(d, 0);
    r.write(at, &record(seed, version))?;
    r.persist(at, SLOT, 0)?; // each word atomic, the record not
    r.deep_persist(at, SLOT)?;
    r.write(d, &version.to_le_bytes())?;
    r.persist(d, 8, 0)?;
    r.deep_persist(d, 8)
}

fn words(image: &[u8], at: u64, n: usize) -> Result<Vec<u64>, String> {
    let at = usize::try_from(at).map_err(|e| e.to_string())?;
    let bytes = image
        .get(at..at + 8 * n)
        .ok_or(format!("offset {at} outside the image"))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Recovery: the version's slot holds that version, intact; no
/// acknowledged update is lost. `in_place`: the record is always in slot 0.
pub fn recover(image: &[u8], history: &[Call], d: u64, in_place: bool) -> Result<(), String> {
    let version = words(image, d, 1)?.first().copied().unwrap_or(0);
    let acknowledged = history
        .iter()
        .filter(|c| matches!(c, Call::DeepPersist { offset, len: 8 } if *offset == d))
        .count() as u64;
    if version < acknowledged {
        return Err(format!(
            "version {version}, but {acknowledged} updates were acknowledged"
        ));
    }
    if version == 0 {
        return Ok(()); // nothing published yet
    }
    let slot = if in_place { 0 } else { version };
    let w = words(image, slot_at(d, slot), WORDS + 2)?;
    let (body, chk) = w.split_at(WORDS + 1);
    if body.first() != Some(&version) || chk.first() != Some(&check(body)) {
        return Err(format!(
            "version {version}, but its slot holds version {:?} with a {} check word",
            body.first(),
            if chk.first() == Some(&check(body)) {
                "valid"
            } else {
                "wrong"
            }
        ));
    }
    Ok(())
}

/// The campaign: `in_place` selects the bug.
pub fn simulation(in_place: bool, seeds: std::ops::Range<u64>) -> Simulation<'static> {
    let workload = move |r: &mut SimLane<'_>| -> Result<(), Box<dyn Error>> {
        let seed = r.seed();
        for version in 1..=UPDATES {
            if in_place {
                update_in_place(r, seed, version)?;
            } else {
                update(r, seed, version)?;
            }
        }
        Ok(())
    };
    Simulation::new(workload, move |image: &[u8], history: &[Call]| {
        recover(image, history, 4096, in_place)
    })
    .seeds(seeds)
}

fn main() -> ExitCode {
    let mut in_place = false;
    let mut seeds = 1..21;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let n = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), args.next()) {
            ("--bug", Some(b)) if b == "in-place" => in_place = true,
            ("--seeds", v) if n(v.clone()).is_some() => {
                seeds = 1..n(v).unwrap_or(20).saturating_add(1);
            }
            ("--seed", v) if n(v.clone()).is_some() => {
                let s = n(v).unwrap_or(1);
                seeds = s..s.saturating_add(1);
            }
            _ => {
                eprintln!("two_slot: usage: [--bug in-place] [--seeds N | --seed S]");
                return ExitCode::from(2);
            }
        }
    }
    let report = simulation(in_place, seeds).run();
    print!("{report}");
    // Without the bug every image must be accepted; with it, the bug must
    // be caught.
    if report.passed() != in_place {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
