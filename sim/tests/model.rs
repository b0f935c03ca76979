//! The model's building blocks through the public API: RC ordering,
//! 8-byte atomicity of crash outcomes, eviction, msync, write-pending queue.

use rpmem_core::flush::FlushOps;
use rpmem_core::persist::{Op, ReadDest};
use sim::crash::images;
use sim::memory::{Memory, Source};
use sim::platform::platform;
use sim::rng::Rng;
use sim::rnic::{Cqe, Inbound, Qp};

fn mem(p: &str) -> Memory {
    Memory::new(platform(p).unwrap(), 8192).unwrap()
}

fn values(m: &Memory, w: u64) -> Vec<[u8; 8]> {
    m.crash_candidates(w).iter().map(|c| c.value).collect()
}

#[test]
fn rc_read_is_answered_only_after_earlier_writes_are_placed() {
    let mut m = mem("adr-noddio");
    let mut qp = Qp::new();
    qp.post(
        Op::Write {
            lane: 0,
            offset: 4096,
            len: 8,
            signaled: false,
        },
        vec![5; 8],
    );
    let read = qp.post(
        Op::Read {
            lane: 0,
            offset: 4096,
            len: 8,
            dest: ReadDest::Flush,
        },
        Vec::new(),
    );
    qp.transmit();
    qp.transmit();
    // Transmitted but not placed: the WRITE sits in the remote NIC's
    // buffers, the data is not in the pool, the READ cannot complete.
    assert_eq!(values(&m, 4096), vec![[0; 8]]);
    assert!(!qp.can_complete() || qp.sq().front().unwrap().id != read);
    // The NIC executes in order: the WRITE first.
    match qp.pop_inbound() {
        Some(Inbound::Write { offset, data }) => m.nic_write(offset, &data),
        other => panic!("{other:?}"),
    }
    match qp.pop_inbound() {
        Some(Inbound::Read {
            sq_id, offset, len, ..
        }) => {
            assert_eq!(m.read(offset, len), vec![5; 8]);
            qp.mark_executed(sq_id);
        }
        other => panic!("{other:?}"),
    }
    qp.complete(); // the unsignaled WRITE, silently
    qp.complete();
    assert_eq!(qp.reap(), Some(Cqe::Read));
    assert_eq!(qp.reap(), None);
    // DDIO off + ADR: placed means durable (APM's premise).
    assert_eq!(values(&m, 4096), vec![[5; 8]]);
}

#[test]
fn crash_outcomes_are_whole_words() {
    let mut m = mem("adr-ddio");
    // 24 unflushed bytes straddling three words.
    m.nic_write(4100, &[3; 24]);
    let words: Vec<_> = [4096u64, 4104, 4112, 4120]
        .iter()
        .map(|&w| (w, m.crash_candidates(w)))
        .collect();
    let imgs = images(&words, 1000);
    assert_eq!(imgs.len(), 16);
    for img in &imgs {
        for &(w, v) in img {
            // Each word is either entirely old or entirely what the cache
            // holds (partial words keep their untouched bytes).
            let new = m.read(w, 8);
            assert!(v == [0; 8] || v[..] == new[..], "word {w}: {v:?}");
        }
    }
}

#[test]
fn dirty_line_may_be_evicted_before_the_crash_and_eviction_persists_it() {
    let mut m = mem("adr-ddio");
    m.cpu_store(4160, &[9; 8]);
    let c = m.crash_candidates(4160);
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].source, Source::DirtyLine);
    let mut rng = Rng::new(3);
    assert_eq!(m.evict_random(&mut rng), Some(4160));
    assert_eq!(values(&m, 4160), vec![[9; 8]]);
    assert_eq!(m.stats().evictions, 1);
}

#[test]
fn only_msync_makes_a_dram_pool_durable() {
    let mut m = mem("dram-ddio");
    m.nic_write(4096, &[1; 64]);
    m.flush_line(4096);
    m.fence();
    assert_eq!(values(&m, 4096), vec![[0; 8], [1; 8]]);
    m.msync(4096, 4096).unwrap();
    assert_eq!(values(&m, 4096), vec![[1; 8]]);
}

#[test]
fn unfenced_clwb_is_in_flight() {
    let mut m = mem("adr-ddio");
    m.nic_write(4096, &[1; 8]);
    m.flush_line(4096);
    let c = m.crash_candidates(4096);
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].source, Source::PendingWriteBack);
    m.fence();
    assert_eq!(values(&m, 4096), vec![[1; 8]]);
}

#[test]
fn write_pending_queue_is_drained_only_by_deep_flush() {
    let mut m = mem("devdax-wpq");
    m.nic_write(4096, &[1; 8]);
    assert_eq!(values(&m, 4096), vec![[0; 8], [1; 8]]);
    m.fence();
    assert_eq!(values(&m, 4096), vec![[0; 8], [1; 8]]);
    m.deep_flush().unwrap();
    assert_eq!(values(&m, 4096), vec![[1; 8]]);
}

mod property {
    use proptest::prelude::*;
    use rpmem_core::flush::{deep_persist_range, persist_range};
    use rpmem_core::policy::Method;
    use sim::memory::{Memory, WORD};
    use sim::platform::{Config, PLATFORMS};

    #[derive(Clone, Debug)]
    enum Access {
        Nic(u64, u64, u8),
        Cpu(u64, u64, u8),
        FlushLine(u64),
    }

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![
            (0u64..8192, 1u64..300, 1u8..255).prop_map(|(o, l, v)| Access::Nic(o, l, v)),
            (0u64..8192, 1u64..300, 1u8..255).prop_map(|(o, l, v)| Access::Cpu(o, l, v)),
            (0u64..8192).prop_map(Access::FlushLine),
        ]
    }

    proptest! {
        /// The shipped range flush, over the simulated memory, makes every
        /// word of the range durable on every platform (deep persist on the
        /// platform whose plain persist does not promise durability).
        #[test]
        fn shipped_persist_range_makes_the_range_durable(
            platform in 0usize..PLATFORMS.len(),
            accesses in proptest::collection::vec(access(), 0..12),
            off in 0u64..8192,
            len in 1u64..3000,
        ) {
            let p = PLATFORMS[platform];
            let mode = Config::new(p, Method::Gpspm).flush;
            let mut m = Memory::new(p, 8192).unwrap();
            for a in &accesses {
                match *a {
                    Access::Nic(o, l, v) => m.nic_write(o, &vec![v; l.min(8192 - o) as usize]),
                    Access::Cpu(o, l, v) => m.cpu_store(o, &vec![v; l.min(8192 - o) as usize]),
                    Access::FlushLine(o) => rpmem_core::flush::FlushOps::flush_line(&mut m, o),
                }
            }
            let len = len.min(8192 - off);
            if p.plain_persist_durable() {
                persist_range(&mut m, mode, off, len).unwrap();
            } else {
                deep_persist_range(&mut m, mode, off, len).unwrap();
            }
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
