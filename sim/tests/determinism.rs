//! One seed replays one run exactly.

#[cfg(rpmem_mutants)]
use rpmem_core::flush::mutants::Mutant;
use rpmem_core::policy::Method;
use sim::platform::{platform, Config};
#[cfg(rpmem_mutants)]
use sim::workload::Size;
use sim::world::{run, RunOptions};

fn cfg() -> Config {
    Config::new(platform("adr-ddio").unwrap(), Method::Gpspm)
}

#[test]
fn same_seed_same_trace() {
    for seed in [1, 2, 3, 4, 77] {
        let a = run(seed, cfg(), &RunOptions::default());
        let b = run(seed, cfg(), &RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(
            (a.steps, a.crash_points, a.values_judged, a.calls_ok),
            (b.steps, b.crash_points, b.values_judged, b.calls_ok)
        );
        assert_eq!(a.workload, b.workload);
    }
}

#[test]
fn verbose_replay_has_the_same_trace() {
    let quiet = run(5, cfg(), &RunOptions::default());
    let loud = run(
        5,
        cfg(),
        &RunOptions {
            verbose: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(quiet.trace_hash, loud.trace_hash);
    assert!(quiet.log.is_empty());
    assert!(loud.log.len() as u64 > loud.steps / 2);
}

#[test]
fn different_seeds_different_traces() {
    let mut hashes: Vec<u64> = (1..=20)
        .map(|s| run(s, cfg(), &RunOptions::default()).trace_hash)
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 20);
}

#[cfg(rpmem_mutants)]
#[test]
fn mutant_runs_are_reproducible_too() {
    let opts = RunOptions {
        mutant: Mutant::FlushSkipsFence,
        size: Some(Size::Large),
        ..RunOptions::default()
    };
    let a = run(9, cfg(), &opts);
    let b = run(9, cfg(), &opts);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.first_violation, b.first_violation);
    // And the mutant is off again for the next run.
    let clean = run(
        9,
        cfg(),
        &RunOptions {
            size: Some(Size::Large),
            ..RunOptions::default()
        },
    );
    assert!(!clean.violated());
}
