//! Pins the rpmem-core issue the workload generator steers around
//! (`sim::workload::KNOWN_ISSUE_INLINE_OVERTAKEN`): a non-RELAXED flush
//! posts inline data and returns; a later WRITE of the same lane to an
//! overlapping range can be placed before the target CPU copies the inline
//! data, which then overwrites it — and the later call returns success.
//!
//! When rpmem-core is fixed this test fails: delete it, the
//! `known_issues` option and the workaround in `sim::workload`.

use rpmem_core::persist::CallKind;
use rpmem_core::policy::Method;
use rstest::rstest;
use sim::checker::Problem;
use sim::platform::{platform, Config};
use sim::workload::{CallSpec, Workload};
use sim::world::{run_with_workload, RunOptions};

fn scenario(second: CallSpec) -> Workload {
    Workload {
        lanes: vec![vec![
            CallSpec::Flush {
                offset: 4200,
                len: 64,
                relaxed: false,
            },
            second,
        ]],
    }
}

#[rstest]
#[case("adr-ddio", Method::Gpspm, CallSpec::Persist { offset: 4200, len: 64, relaxed: true })]
#[case("adr-noddio", Method::Apm, CallSpec::Persist { offset: 4200, len: 64, relaxed: true })]
#[case("eadr-noddio", Method::Gpspm, CallSpec::DeepPersist { offset: 4200, len: 64 })]
fn write_overtaking_inline_data_of_its_lane_is_still_found(
    #[case] p: &str,
    #[case] m: Method,
    #[case] second: CallSpec,
) {
    let c = Config::new(platform(p).unwrap(), m);
    assert!(c.allowed());
    let wl = scenario(second);
    let opts = RunOptions::default();
    let hit = (1..=200).find_map(|seed| {
        let r = run_with_workload(seed, c, &opts, &wl);
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        match r.first_violation?.finding.problem {
            Problem::Stale { got, newer, .. } => Some((seed, got, newer)),
            _ => None,
        }
    });
    let (seed, got, newer) = hit.expect("the known issue was not reproduced in 200 schedules");
    // The pool keeps the older inline flush although the later call of the
    // same lane returned success.
    assert_eq!(
        (got.id, got.kind, got.relaxed),
        (1, CallKind::Flush, false),
        "seed {seed}"
    );
    assert_eq!((newer.id, newer.lane), (2, 0), "seed {seed}");
}

#[test]
fn draining_between_the_two_calls_avoids_it() {
    let c = Config::new(platform("adr-ddio").unwrap(), Method::Gpspm);
    let wl = Workload {
        lanes: vec![vec![
            CallSpec::Flush {
                offset: 4200,
                len: 64,
                relaxed: false,
            },
            CallSpec::Drain,
            CallSpec::Persist {
                offset: 4200,
                len: 64,
                relaxed: true,
            },
        ]],
    };
    for seed in 1..=200 {
        let r = run_with_workload(seed, c, &RunOptions::default(), &wl);
        assert!(
            r.errors.is_empty() && !r.violated(),
            "seed {seed}: {:?}",
            r.first_violation
        );
    }
}
