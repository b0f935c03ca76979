//! The TCP placement: the core's stream machines (`StreamInitiator`,
//! `StreamTarget`) over a modelled byte stream keep every promise in every
//! platform, exercise what rpmemd's worker does (streamed bodies, the
//! written-back first line, held answers, direct READ_RESP bodies, resets),
//! and replay exactly from the seed.

use rstest::rstest;
use sim::platform::{platform, Config, PLATFORMS};
use sim::workload::Size;
use sim::world::{run, RunOptions};

fn tcp(p: &str) -> Config {
    let c = Config::tcp(platform(p).unwrap());
    assert!(c.allowed(), "{c} should be allowed");
    c
}

#[rstest]
#[case("adr-ddio")]
#[case("eadr-noddio")]
#[case("dram-ddio")]
#[case("devdax-wpq")]
fn tcp_keeps_every_promise(#[case] p: &str) {
    let c = tcp(p);
    let (mut ok, mut points) = (0, 0);
    for seed in 1..=40 {
        let r = run(seed, c, &RunOptions::default());
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert!(
            !r.violated(),
            "{c} seed {seed}: {:?}\nreplay: sim check --replay {seed} --platform {p} --placement tcp",
            r.first_violation
        );
        ok += r.calls_ok;
        points += r.crash_points;
    }
    assert!(ok > 400, "{c}: only {ok} successful calls");
    assert!(points > 4000, "{c}: only {points} crash points");
}

#[test]
fn large_tcp_workloads_keep_every_promise_at_every_crash_point() {
    let c = tcp("adr-ddio");
    let opts = RunOptions {
        size: Some(Size::Large),
        mode: sim::world::Mode::Exhaustive,
        ..RunOptions::default()
    };
    for seed in 1..=6 {
        let r = run(seed, c, &opts);
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "seed {seed}: {:?}", r.first_violation);
    }
}

#[test]
fn the_incremental_bookkeeping_agrees_over_tcp() {
    for p in ["adr-ddio", "devdax-wpq"] {
        for seed in 1..=4 {
            let r = run(
                seed,
                tcp(p),
                &RunOptions {
                    self_check: true,
                    ..RunOptions::default()
                },
            );
            assert!(r.errors.is_empty(), "{p} seed {seed}: {:?}", r.errors);
        }
    }
}

#[test]
fn same_seed_same_trace_over_tcp() {
    for seed in [1, 2, 3, 4, 77] {
        let a = run(seed, tcp("adr-ddio"), &RunOptions::default());
        let b = run(seed, tcp("adr-ddio"), &RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(
            (a.steps, a.crash_points, a.values_judged),
            (b.steps, b.crash_points, b.values_judged)
        );
    }
}

/// Over TCP rpmemd's CPU receives every byte: whether the NIC would place
/// into the cache (DDIO) does not enter, so both runs are the same run.
#[test]
fn ddio_does_not_matter_over_tcp() {
    for (a, b) in [("adr-ddio", "adr-noddio"), ("dram-ddio", "dram-noddio")] {
        for seed in 1..=5 {
            let ra = run(seed, tcp(a), &RunOptions::default());
            let rb = run(seed, tcp(b), &RunOptions::default());
            assert_eq!(ra.trace_hash, rb.trace_hash, "{a} vs {b}, seed {seed}");
        }
    }
}

/// The seeds reach every part of the driver: streamed body pieces with
/// non-temporal stores, the partial first line written back, plain bodies,
/// held answers, direct and indirect READ_RESP bodies, streamed inline
/// copies, one-byte segments and connection resets (whose calls fail
/// without a simulator error).
#[test]
fn the_seeds_exercise_the_whole_driver() {
    let c = tcp("adr-ddio");
    let mut seen = std::collections::BTreeSet::new();
    let mut resets = 0;
    for seed in 1..=60 {
        let r = run(
            seed,
            c,
            &RunOptions {
                verbose: true,
                ..RunOptions::default()
            },
        );
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        let log = r.log.join("\n");
        for (what, needle) in [
            ("streamed piece", "non-temporal"),
            (
                "first line written back",
                "writes back the body's first line",
            ),
            ("plain body", "body bytes at"),
            ("held answer", "(held)"),
            ("held answers sent", "sends the held answers"),
            ("one-byte segment", " sends 1 bytes"),
            ("READ_RESP", "READ_RESP ["),
            ("message in pieces", "-byte message"),
        ] {
            if log.contains(needle) {
                seen.insert(what);
            }
        }
        if log.contains("CONNECTION RESET") {
            resets += 1;
        }
        if r.params.tcp.direct && log.contains("READ_RESP [") {
            seen.insert("direct READ_RESP");
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(resets >= 5, "only {resets} seeds reset a connection");
}

#[test]
fn every_platform_has_a_tcp_configuration() {
    let all = Config::all_tcp();
    assert_eq!(all.len(), PLATFORMS.len());
    assert!(all.iter().all(|c| c.allowed() && c.is_tcp()));
}
