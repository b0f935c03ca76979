//! Regression for the first protocol bug the simulator found in rpmem-core:
//! a non-RELAXED flush posted inline data and returned; a later call of the
//! same lane travelling by WRITE to an overlapping range could be placed by
//! the NIC before the target CPU copied that inline data, which then
//! overwrote the newer bytes although the later call had returned success.
//! The initiator now posts no WRITE (or READ) while an inline message of the
//! lane is unanswered; these directed workloads stay clean.

use rpmem_core::policy::Method;
use rstest::rstest;
use sim::platform::{platform, Config};
use sim::workload::{CallSpec, Workload};
use sim::world::{run_with_workload, RunOptions};

const SEEDS: u64 = 200;

fn inline_flush() -> CallSpec {
    CallSpec::Flush {
        offset: 4200,
        len: 64,
        relaxed: false,
    }
}

#[rstest]
#[case("adr-ddio", Method::Gpspm, vec![CallSpec::Persist { offset: 4200, len: 64, relaxed: true }])]
#[case("adr-noddio", Method::Apm, vec![CallSpec::Persist { offset: 4200, len: 64, relaxed: true }])]
#[case("eadr-noddio", Method::Gpspm, vec![CallSpec::DeepPersist { offset: 4200, len: 64 }])]
#[case("eadr-noddio", Method::Apm, vec![CallSpec::DeepPersist { offset: 4190, len: 80 }])]
#[case("adr-noddio", Method::Gpspm, vec![
    CallSpec::Flush { offset: 4208, len: 8, relaxed: true },
    CallSpec::Read { offset: 4096, len: 256 },
    CallSpec::Drain,
])]
#[case("adr-noddio", Method::Apm, vec![
    CallSpec::Flush { offset: 4200, len: 64, relaxed: true },
    CallSpec::Drain,
])]
fn a_write_after_an_inline_flush_keeps_the_newer_bytes(
    #[case] p: &str,
    #[case] m: Method,
    #[case] rest: Vec<CallSpec>,
) {
    let c = Config::new(platform(p).unwrap(), m);
    assert!(c.allowed(), "{c} should be allowed");
    let mut calls = vec![inline_flush()];
    calls.extend(rest);
    let wl = Workload { lanes: vec![calls] };
    let mut complete_runs = 0;
    for seed in 1..=SEEDS {
        let r = run_with_workload(seed, c, &RunOptions::default(), &wl);
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "{c} seed {seed}: {:?}", r.first_violation);
        if r.faults == 0 {
            assert_eq!(r.calls_ok, wl.calls() as u64, "{c} seed {seed}");
            complete_runs += 1;
        }
    }
    assert!(
        complete_runs > SEEDS / 2,
        "only {complete_runs} runs without a fault"
    );
}
