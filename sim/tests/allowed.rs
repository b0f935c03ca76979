//! The checker finds no broken promise in any configuration the policy
//! allows, over a few hundred seeds (every crash point of small workloads,
//! sampled points of large ones), and the incremental bookkeeping agrees
//! with a full recomputation.

use rpmem_core::policy::Method;
use rstest::rstest;
use sim::platform::{platform, Config};
use sim::workload::Size;
use sim::world::{run, RunOptions};

const SEEDS: u64 = 30;

fn config(p: &str, m: Method) -> Config {
    let c = Config::new(platform(p).unwrap(), m);
    assert!(c.allowed(), "{c} should be allowed");
    c
}

#[rstest]
#[case("adr-ddio", Method::Gpspm)]
#[case("adr-noddio", Method::Gpspm)]
#[case("adr-noddio", Method::Apm)]
#[case("eadr-ddio", Method::Gpspm)]
#[case("eadr-noddio", Method::Gpspm)]
#[case("eadr-noddio", Method::Apm)]
#[case("dram-ddio", Method::Gpspm)]
#[case("dram-noddio", Method::Gpspm)]
#[case("devdax-wpq", Method::Gpspm)]
#[case("devdax-wpq", Method::Apm)]
#[case("adr-ddio", Method::RdmaFlush)]
#[case("adr-noddio", Method::RdmaFlush)]
#[case("eadr-ddio", Method::RdmaFlush)]
#[case("eadr-noddio", Method::RdmaFlush)]
#[case("devdax-wpq", Method::RdmaFlush)]
fn allowed_configuration_keeps_every_promise(#[case] p: &str, #[case] m: Method) {
    let c = config(p, m);
    let mut ok_calls = 0;
    let mut crash_points = 0;
    for seed in 1..=SEEDS {
        let r = run(seed, c, &RunOptions::default());
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert!(
            !r.violated(),
            "{c} seed {seed}: {:?}\nreplay: sim check --replay {seed} --method {} --platform {p}",
            r.first_violation,
            sim::platform::method_arg(m)
        );
        ok_calls += r.calls_ok;
        crash_points += r.crash_points;
    }
    // The runs did real work.
    assert!(
        ok_calls > 10 * SEEDS,
        "{c}: only {ok_calls} successful calls"
    );
    assert!(
        crash_points > 50 * SEEDS,
        "{c}: only {crash_points} crash points"
    );
}

#[rstest]
#[case("adr-ddio", Method::Gpspm)]
#[case("adr-noddio", Method::Apm)]
#[case("dram-noddio", Method::Gpspm)]
#[case("adr-ddio", Method::RdmaFlush)]
fn lost_connections_fail_calls_without_breaking_promises(#[case] p: &str, #[case] m: Method) {
    let c = config(p, m);
    let mut with_fault = 0;
    let mut failed = 0;
    for seed in 1..=60 {
        let r = run(seed, c, &RunOptions::default());
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "{c} seed {seed}: {:?}", r.first_violation);
        if r.faults > 0 {
            with_fault += 1;
            failed += r.calls_failed;
        } else {
            assert_eq!(
                r.calls_failed, 0,
                "{c} seed {seed}: a call failed without a fault"
            );
        }
    }
    assert!(
        with_fault >= 5,
        "{c}: only {with_fault} runs lost a connection"
    );
    assert!(
        failed >= with_fault,
        "{c}: {failed} failed calls in {with_fault} faulty runs"
    );
}

#[rstest]
#[case("adr-ddio", Method::Gpspm)]
#[case("adr-noddio", Method::Apm)]
#[case("eadr-ddio", Method::Gpspm)]
#[case("dram-ddio", Method::Gpspm)]
#[case("devdax-wpq", Method::Apm)]
#[case("adr-ddio", Method::RdmaFlush)]
fn incremental_crash_bookkeeping_matches_full_recomputation(#[case] p: &str, #[case] m: Method) {
    let c = config(p, m);
    // Small workloads: every crash point, and the whole pool recomputed at
    // each of them (slow in debug builds, hence few seeds).
    let opts = RunOptions {
        self_check: true,
        size: Some(Size::Small),
        ..RunOptions::default()
    };
    for seed in 1..=3 {
        let r = run(seed, c, &opts);
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
    }
}
