//! Each seeded bug of rpmem-core (`flush::mutants`) is caught, where the
//! model says it matters — and not where it cannot matter. The hooks exist
//! only with `RUSTFLAGS="--cfg rpmem_mutants"` (test.sh's mutant step).
#![cfg(rpmem_mutants)]

use rpmem_core::flush::mutants::Mutant;
use rpmem_core::policy::Method;
use rstest::rstest;
use sim::campaign::{catch_in, catching_seeds};
use sim::platform::{platform, Config};

fn config(p: &str, m: Method) -> Config {
    Config::new(platform(p).unwrap(), m)
}

#[rstest]
#[case(Mutant::RespondBeforeFlush, "adr-ddio", Method::Gpspm)]
#[case(Mutant::RespondBeforeFlush, "dram-ddio", Method::Gpspm)]
#[case(Mutant::FlushSkipsFence, "adr-ddio", Method::Gpspm)]
#[case(Mutant::FlushSkipsFence, "adr-noddio", Method::Apm)]
#[case(Mutant::FlushMissesLastLine, "adr-ddio", Method::Gpspm)]
#[case(Mutant::ApmWithoutRead, "adr-noddio", Method::Apm)]
#[case(Mutant::InlineWithoutFlush, "adr-noddio", Method::Gpspm)]
#[case(Mutant::InlineWithoutFlush, "dram-noddio", Method::Gpspm)]
#[case(Mutant::DeepAsPlain, "devdax-wpq", Method::Gpspm)]
#[case(Mutant::DeepAsPlain, "devdax-wpq", Method::Apm)]
#[case(Mutant::DeepAsPlain, "devdax-wpq", Method::RdmaFlush)]
// Without FLUSH a RELAXED persist returns with its WRITE maybe still in the
// send queue or, with DDIO, in a volatile cache line.
#[case(Mutant::RdmaFlushWithoutFlush, "adr-ddio", Method::RdmaFlush)]
#[case(Mutant::RdmaFlushWithoutFlush, "adr-noddio", Method::RdmaFlush)]
#[case(Mutant::RdmaFlushWithoutFlush, "eadr-ddio", Method::RdmaFlush)]
// Inline and deep persists still go to the target CPU under RDMA FLUSH.
#[case(Mutant::InlineWithoutFlush, "adr-ddio", Method::RdmaFlush)]
#[case(Mutant::FlushSkipsFence, "adr-ddio", Method::RdmaFlush)]
fn mutant_is_caught(#[case] m: Mutant, #[case] p: &str, #[case] method: Method) {
    let c = config(p, method);
    assert!(c.allowed());
    let caught = catch_in(m, c, 20, 1);
    assert!(caught.is_some(), "{m:?} escaped in {c} over 20 seeds");
}

/// Leaving out the fence after non-temporal stores needs an inline persist
/// whose last message carries whole cache lines, on a seed whose target
/// memory streams: rarer, so more seeds.
#[rstest]
#[case("adr-ddio", Method::Gpspm)]
#[case("adr-noddio", Method::Gpspm)]
#[case("adr-noddio", Method::Apm)]
fn streamed_lines_without_a_fence_are_caught(#[case] p: &str, #[case] method: Method) {
    let c = config(p, method);
    assert!(c.allowed());
    let caught = catch_in(Mutant::StreamedWithoutFence, c, 30, 1);
    assert!(
        caught.is_some(),
        "streamed-without-fence escaped in {c} over 30 seeds"
    );
}

/// The overtaking needs a workload where an inline flush is followed on the
/// same lane by an overlapping WRITE before a drain: rarer, so more seeds.
#[rstest]
#[case("adr-ddio", Method::Gpspm)]
#[case("dram-noddio", Method::Gpspm)]
#[case("eadr-ddio", Method::Gpspm)]
fn write_overtaking_inline_data_is_caught(#[case] p: &str, #[case] method: Method) {
    let c = config(p, method);
    assert!(c.allowed());
    let caught = catch_in(Mutant::WriteOvertakesInline, c, 60, 1);
    assert!(
        caught.is_some(),
        "write-overtakes-inline escaped in {c} over 60 seeds"
    );
}

#[rstest]
// The cache is persistent: skipping flushes cannot lose anything.
#[case(Mutant::RespondBeforeFlush, "eadr-ddio", Method::Gpspm)]
#[case(Mutant::FlushSkipsFence, "eadr-noddio", Method::Apm)]
#[case(Mutant::FlushMissesLastLine, "eadr-ddio", Method::Gpspm)]
// msync pools never use the line flush.
#[case(Mutant::FlushSkipsFence, "dram-ddio", Method::Gpspm)]
#[case(Mutant::FlushMissesLastLine, "dram-noddio", Method::Gpspm)]
// GPSPM never posts APM's READ.
#[case(Mutant::ApmWithoutRead, "adr-ddio", Method::Gpspm)]
// Deep and plain persists reach the same domain here.
#[case(Mutant::DeepAsPlain, "adr-ddio", Method::Gpspm)]
#[case(Mutant::DeepAsPlain, "dram-ddio", Method::Gpspm)]
// Inline copies are streamed only where the target flushes CPU caches: not
// with eADR (cached stores are durable) nor on msync pools.
#[case(Mutant::StreamedWithoutFence, "eadr-ddio", Method::Gpspm)]
#[case(Mutant::StreamedWithoutFence, "dram-noddio", Method::Gpspm)]
// GPSPM and APM never post FLUSH.
#[case(Mutant::RdmaFlushWithoutFlush, "adr-ddio", Method::Gpspm)]
#[case(Mutant::RdmaFlushWithoutFlush, "adr-noddio", Method::Apm)]
// Plain persists promise nothing where the write-pending queue is volatile.
#[case(Mutant::RdmaFlushWithoutFlush, "devdax-wpq", Method::RdmaFlush)]
// RDMA FLUSH never posts APM's READ.
#[case(Mutant::ApmWithoutRead, "adr-ddio", Method::RdmaFlush)]
fn mutant_that_cannot_matter_is_not_reported(
    #[case] m: Mutant,
    #[case] p: &str,
    #[case] method: Method,
) {
    let c = config(p, method);
    assert_eq!(
        catch_in(m, c, 8, 1).map(|(n, s, v)| (n, s, v.finding.problem.to_string())),
        None
    );
}

/// The TCP mutants (the target's lane machine, `StreamTarget`): each is
/// caught by several independent seeds, not one, where the target flushes
/// CPU caches (ADR); and never where it cannot matter (eADR: the cache is
/// persistent; msync pools: the flush is a page write-back that skips
/// nothing; devdax-wpq: plain persists promise nothing).
#[rstest]
// The partial first line of a streamed body: needs an unaligned RELAXED
// persist whose body ends that line, on a seed that streams bodies.
#[case(Mutant::WrittenBackLineNotFlushed, 15)]
// A plain body counted as written back: needs a seed whose target does not
// stream bodies (one in three) and a RELAXED persist of two lines or more.
#[case(Mutant::PlainBodyCountedWrittenBack, 6)]
fn tcp_mutant_is_caught_by_several_seeds(#[case] m: Mutant, #[case] at_least: usize) {
    for p in ["adr-ddio", "adr-noddio"] {
        let c = Config::tcp(platform(p).unwrap());
        let seeds = catching_seeds(m, c, 1..=60);
        assert!(
            seeds.len() >= at_least,
            "{m:?} in {c}: caught by seeds {seeds:?} of 1..=60, want at least {at_least}"
        );
    }
    for p in ["eadr-ddio", "dram-noddio", "devdax-wpq"] {
        let c = Config::tcp(platform(p).unwrap());
        assert_eq!(
            catching_seeds(m, c, 1..=20),
            Vec::<u64>::new(),
            "{m:?} in {c}"
        );
    }
    // The RDMA placement never runs the stream machines.
    let c = config("adr-ddio", Method::Gpspm);
    assert_eq!(
        catching_seeds(m, c, 1..=10),
        Vec::<u64>::new(),
        "{m:?} in {c}"
    );
}

/// The older mutants of the target's flush are caught over TCP too, through
/// the same plans; respond-before-flush is not: over TCP the answer leaves
/// only after the whole plan ran (as rpmemd's `execute` does), and
/// write-overtakes-inline cannot happen on an ordered stream that one
/// worker reads frame by frame.
#[rstest]
#[case(Mutant::FlushSkipsFence, "adr-ddio", true)]
#[case(Mutant::FlushMissesLastLine, "adr-noddio", true)]
#[case(Mutant::InlineWithoutFlush, "dram-ddio", true)]
#[case(Mutant::StreamedWithoutFence, "adr-ddio", true)]
#[case(Mutant::DeepAsPlain, "devdax-wpq", true)]
#[case(Mutant::RespondBeforeFlush, "adr-ddio", false)]
#[case(Mutant::WriteOvertakesInline, "adr-ddio", false)]
fn target_mutants_over_tcp(#[case] m: Mutant, #[case] p: &str, #[case] caught: bool) {
    let c = Config::tcp(platform(p).unwrap());
    let seeds = catching_seeds(m, c, 1..=if caught { 30 } else { 15 });
    assert_eq!(!seeds.is_empty(), caught, "{m:?} in {c}: {seeds:?}");
}

#[test]
fn campaign_catches_all_eleven() {
    // 30 seeds, the CLI's default: write-overtakes-inline needs 25,
    // plain-body-counted-written-back 12, streamed-without-fence 10.
    let results = sim::campaign::mutants(30, 1, |_| {});
    assert_eq!(results.len(), 11);
    for r in &results {
        assert!(r.caught.is_some(), "{:?} escaped", r.mutant);
        assert!(r.seeds_tried >= 1 && r.seeds_tried <= 30);
    }
    assert_eq!(
        sim::campaign::mutants_final_line(&results),
        "caught 11 of 11 mutants"
    );
}
