//! RDMA FLUSH, the third persistency method: the handshake settles on it
//! when the target offers it, the initiator's drain posts one FLUSH per
//! written range, the simulated NIC executes each FLUSH as rxe's responder
//! (write-back of every line of the range, then a fence) before answering
//! it, and inline and deep persists still go to the target CPU.

#[cfg(rpmem_mutants)]
use rpmem_core::flush::mutants::Mutant;
use rpmem_core::policy::Method;
use rstest::rstest;
use sim::memory::{Memory, Source};
use sim::platform::{platform, Config};
use sim::workload::{CallSpec, Workload};
use sim::world::{nic_flush, run, run_with_workload, RunOptions};

fn config(p: &str) -> Config {
    let c = Config::new(platform(p).unwrap(), Method::RdmaFlush);
    assert!(c.allowed(), "{c} should be allowed");
    c
}

fn verbose() -> RunOptions {
    RunOptions {
        verbose: true,
        ..RunOptions::default()
    }
}

fn count(log: &[String], what: &str) -> usize {
    log.iter().filter(|l| l.contains(what)).count()
}

fn relaxed(offset: u64, len: u64) -> CallSpec {
    CallSpec::Persist {
        offset,
        len,
        relaxed: true,
    }
}

#[test]
fn the_session_runs_rdma_flush_while_the_target_announces_gpspm() {
    for seed in 1..=10 {
        let r = run(seed, config("adr-ddio"), &verbose());
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        let s = r.session.unwrap();
        assert_eq!((s.method, s.announced), (Method::RdmaFlush, Method::Gpspm));
        // GPSPM's FLUSH_WRITE messages are replaced by FLUSHes.
        assert_eq!(count(&r.log, "SEND FLUSH_WRITE"), 0, "seed {seed}");
        // Every FLUSH posted was executed by the NIC and reaped, unless the
        // connection was lost.
        let flushes = r
            .log
            .iter()
            .filter(|l| l.contains(": post op #") && l.contains(" FLUSH ["))
            .count();
        if r.faults == 0 {
            assert_eq!(
                count(&r.log, ") executed (lines written back, fenced)"),
                flushes
            );
            assert_eq!(count(&r.log, "reap Flush"), flushes, "seed {seed}");
        }
    }
}

#[test]
fn flushes_happen_in_the_campaign() {
    // Over a few seeds the drain does post FLUSHes (seed 1's first call is
    // a RELAXED persist, which always ends with one).
    let r = run(1, config("adr-ddio"), &verbose());
    assert!(count(&r.log, "FLUSH [") >= 2, "{:#?}", r.log);
    assert!(r.mem.flush_lines > 0 && r.mem.fences > 0);
}

/// RELAXED persists travel by WRITE + FLUSH only: one FLUSH per call (one
/// written range each), and every promise holds over many schedules.
#[rstest]
#[case("adr-ddio")]
#[case("adr-noddio")]
#[case("eadr-ddio")]
fn relaxed_persists_are_made_durable_by_the_flush_alone(#[case] p: &str) {
    let wl = Workload {
        lanes: vec![
            vec![relaxed(4200, 64), relaxed(4400, 300), relaxed(4210, 8)],
            vec![relaxed(4230, 100), relaxed(5000, 9)],
        ],
    };
    let c = config(p);
    let mut clean = 0;
    for seed in 1..=200 {
        let r = run_with_workload(seed, c, &verbose(), &wl);
        assert!(r.errors.is_empty(), "{c} seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "{c} seed {seed}: {:?}", r.first_violation);
        if r.faults == 0 {
            let calls: usize = r.workload.lanes.iter().map(Vec::len).sum();
            let flushes = r
                .log
                .iter()
                .filter(|l| l.contains(": post op #") && l.contains(" FLUSH ["))
                .count();
            assert_eq!(flushes, calls, "{c} seed {seed}");
            assert_eq!(count(&r.log, "SEND "), 0, "{c} seed {seed}");
            clean += 1;
        }
    }
    assert!(clean > 100);
}

/// The NIC's FLUSH is modelled on its own, not with rpmemd's
/// `persist_range`: the seeded flush bugs of rpmemd cannot reach a
/// workload that never asks the target CPU to flush.
#[cfg(rpmem_mutants)]
#[rstest]
#[case(Mutant::FlushSkipsFence)]
#[case(Mutant::FlushMissesLastLine)]
fn rpmemds_flush_bugs_do_not_reach_the_nics_flush(#[case] m: Mutant) {
    let wl = Workload {
        lanes: vec![vec![relaxed(4100, 200), relaxed(4300, 129)]],
    };
    let opts = RunOptions {
        mutant: m,
        ..RunOptions::default()
    };
    for seed in 1..=30 {
        let r = run_with_workload(seed, config("adr-ddio"), &opts, &wl);
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "{m:?} seed {seed}: {:?}", r.first_violation);
    }
}

#[test]
fn inline_and_deep_persists_still_go_to_the_target_cpu() {
    let wl = Workload {
        lanes: vec![vec![
            CallSpec::Persist {
                offset: 4200,
                len: 8,
                relaxed: false,
            },
            CallSpec::DeepPersist {
                offset: 4300,
                len: 100,
            },
        ]],
    };
    let mut inline = 0;
    for seed in 1..=40 {
        let r = run_with_workload(seed, config("devdax-wpq"), &verbose(), &wl);
        assert!(r.errors.is_empty(), "seed {seed}: {:?}", r.errors);
        assert!(!r.violated(), "seed {seed}: {:?}", r.first_violation);
        if r.faults > 0 {
            continue;
        }
        assert_eq!(count(&r.log, "SEND DEEP_PERSIST"), 1, "seed {seed}");
        if count(&r.log, "SEND PERSIST_SEND") > 0 {
            inline += 1;
        }
    }
    // Inline sizes of at least 8 bytes are drawn: the 8-byte persist goes
    // inline in every seed.
    assert!(inline > 20, "only {inline} seeds sent the persist inline");
}

fn values(m: &Memory, w: u64) -> Vec<[u8; 8]> {
    m.crash_candidates(w).iter().map(|c| c.value).collect()
}

#[rstest]
#[case("adr-ddio")]
#[case("adr-noddio")]
#[case("eadr-ddio")]
#[case("eadr-noddio")]
fn nic_flush_makes_placed_bytes_durable_on_pmem(#[case] p: &str) {
    let mut m = Memory::new(platform(p).unwrap(), 8192).unwrap();
    m.nic_write(4100, &[7; 200]);
    nic_flush(&mut m, 4100, 200);
    for w in (4096..4304).step_by(8) {
        let v = values(&m, w);
        assert_eq!(v.len(), 1, "{p} word {w}: {v:?}");
        assert_eq!(&v[0][..], &m.read(w, 8)[..]);
    }
    assert_eq!(m.stats().msyncs, 0);
}

#[test]
fn nic_flush_covers_every_line_of_the_range_and_fences_once() {
    let mut m = Memory::new(platform("adr-ddio").unwrap(), 8192).unwrap();
    // 2 bytes straddling a line boundary, and the line after (not flushed).
    m.nic_write(4159, &[1; 2]);
    m.nic_write(4224, &[2; 8]);
    nic_flush(&mut m, 4159, 2);
    assert_eq!(m.stats().flush_lines, 2);
    assert_eq!(m.stats().fences, 1);
    assert_eq!(values(&m, 4152), vec![[0, 0, 0, 0, 0, 0, 0, 1]]);
    assert_eq!(values(&m, 4160), vec![[1, 0, 0, 0, 0, 0, 0, 0]]);
    let c = m.crash_candidates(4224);
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].source, Source::DirtyLine);
    // An empty FLUSH does nothing at all.
    nic_flush(&mut m, 4224, 0);
    assert_eq!((m.stats().flush_lines, m.stats().fences), (2, 1));
}

#[rstest]
#[case("dram-ddio")]
#[case("dram-noddio")]
fn nic_flush_does_not_make_a_dram_pool_durable(#[case] p: &str) {
    let mut m = Memory::new(platform(p).unwrap(), 8192).unwrap();
    m.nic_write(4096, &[3; 64]);
    nic_flush(&mut m, 4096, 64);
    // In the page cache, not in the file: no msync.
    assert_eq!(values(&m, 4096), vec![[0; 8], [3; 8]]);
    assert_eq!(m.crash_candidates(4096)[1].source, Source::DirtyPage);
    assert_eq!(m.stats().msyncs, 0);
}

#[test]
fn nic_flush_reaches_only_the_write_pending_queue_on_devdax_wpq() {
    let mut m = Memory::new(platform("devdax-wpq").unwrap(), 8192).unwrap();
    m.nic_write(4096, &[4; 8]);
    nic_flush(&mut m, 4096, 8);
    assert_eq!(values(&m, 4096), vec![[0; 8], [4; 8]]);
    assert_eq!(
        m.crash_candidates(4096)[1].source,
        Source::WritePendingQueue
    );
}

mod property {
    use proptest::prelude::*;
    use sim::memory::{Memory, WORD};
    use sim::platform::PLATFORMS;
    use sim::world::nic_flush;

    #[derive(Clone, Debug)]
    enum Access {
        Nic(u64, u64, u8),
        Cpu(u64, u64, u8),
    }

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![
            (0u64..8192, 1u64..300, 1u8..255).prop_map(|(o, l, v)| Access::Nic(o, l, v)),
            (0u64..8192, 1u64..300, 1u8..255).prop_map(|(o, l, v)| Access::Cpu(o, l, v)),
        ]
    }

    proptest! {
        /// On every platform where the policy offers FLUSH and plain
        /// persists are durable, the NIC's FLUSH leaves every word of its
        /// range with a single crash outcome: the current value.
        #[test]
        fn nic_flush_makes_its_range_durable_where_flush_is_offered(
            platform in 0usize..PLATFORMS.len(),
            accesses in proptest::collection::vec(access(), 0..12),
            off in 0u64..8192,
            len in 1u64..3000,
        ) {
            let p = PLATFORMS[platform];
            prop_assume!(p.pmem && p.plain_persist_durable());
            let mut m = Memory::new(p, 8192).unwrap();
            for a in &accesses {
                match *a {
                    Access::Nic(o, l, v) => m.nic_write(o, &vec![v; l.min(8192 - o) as usize]),
                    Access::Cpu(o, l, v) => m.cpu_store(o, &vec![v; l.min(8192 - o) as usize]),
                }
            }
            let len = len.min(8192 - off);
            nic_flush(&mut m, off, len);
            let mut w = off & !(WORD - 1);
            while w < off + len {
                let c = m.crash_candidates(w);
                prop_assert_eq!(c.len(), 1, "{} word {}: {:?}", p.name, w, c);
                prop_assert_eq!(&c[0].value[..], &m.read(w, 8)[..]);
                w += WORD;
            }
        }
    }
}
