//! Configurations the policy forbids, run anyway by forcing the method: the
//! checker must find the data loss (proof that it can see it).

use rpmem_core::policy::Method;
use rstest::rstest;
use sim::checker::Problem;
use sim::platform::{platform, Config, Verdict};
use sim::world::{run, RunOptions};

#[rstest]
#[case("adr-ddio")]
#[case("dram-ddio")]
#[case("dram-noddio")]
fn forbidden_apm_loses_data(#[case] p: &str) {
    let c = Config::new(platform(p).unwrap(), Method::Apm);
    assert_eq!(c.verdict, Verdict::ForbiddenLossExpected);
    let lost = (1..=10).find_map(|seed| run(seed, c, &RunOptions::default()).first_violation);
    let v = lost.unwrap_or_else(|| panic!("{c}: no loss in 10 seeds"));
    // APM's promise: a RELAXED persist is durable once its READ completed.
    // Here its bytes may still be in a volatile cache or page.
    assert!(
        matches!(
            v.finding.problem,
            Problem::Lost { .. } | Problem::Stale { .. }
        ),
        "{:?}",
        v.finding.problem
    );
}

/// RDMA FLUSH on a file-backed DRAM pool: the responder writes the lines
/// back and fences, which reaches the page cache but not the file (no
/// `msync`); the policy never offers it there, and forced it loses data.
#[rstest]
#[case("dram-ddio")]
#[case("dram-noddio")]
fn forbidden_rdma_flush_loses_data(#[case] p: &str) {
    let c = Config::new(platform(p).unwrap(), Method::RdmaFlush);
    assert_eq!(c.verdict, Verdict::ForbiddenLossExpected);
    let mut lossy = 0;
    for seed in 1..=10 {
        let r = run(seed, c, &RunOptions::default());
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert_eq!(r.session.map(|s| s.method), Some(Method::RdmaFlush));
        if let Some(v) = r.first_violation {
            assert!(
                matches!(
                    v.finding.problem,
                    Problem::Lost { .. } | Problem::Stale { .. }
                ),
                "{:?}",
                v.finding.problem
            );
            lossy += 1;
        }
    }
    assert!(lossy >= 5, "{c}: loss in only {lossy} of 10 seeds");
}

#[test]
fn forbidden_apm_loses_data_on_the_very_first_relaxed_persist() {
    // Seed 1's first call is lane 0's RELAXED persist: crashing right after
    // it returns loses it on a DDIO platform.
    let c = Config::new(platform("adr-ddio").unwrap(), Method::Apm);
    let r = run(1, c, &RunOptions::default());
    let v = r.first_violation.expect("loss");
    match v.finding.problem {
        Problem::Lost { promised, .. } => {
            assert_eq!((promised.id, promised.lane), (1, 0));
            assert!(promised.relaxed);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn apm_with_ddio_on_eadr_is_forbidden_but_safe_in_the_model() {
    // rpmemd(1) forbids persist-apm without non-allocating writes, but with
    // eADR the cache the NIC writes into is persistent: no loss.
    let c = Config::new(platform("eadr-ddio").unwrap(), Method::Apm);
    assert_eq!(c.verdict, Verdict::ForbiddenSafeInModel);
    for seed in 1..=20 {
        let r = run(seed, c, &RunOptions::default());
        assert!(
            r.errors.is_empty() && !r.violated(),
            "seed {seed}: {:?}",
            r.first_violation
        );
    }
}
