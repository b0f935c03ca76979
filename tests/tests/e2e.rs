//! rpmem against the real rpmemd, started by the library in local mode:
//! replicate, close, reopen, read back, and compare with the part files.

use std::sync::Arc;
use std::thread;

use rpmem::{
    remove, Error, RemotePool, FLUSH_RELAXED, PERSIST_RELAXED, REMOVE_FORCE, REMOVE_POOL_SET,
};
use rpmem_core::wire::oob::Status;
use rpmem_e2e::{attr, get, pattern, put, region, TestEnv};

const MIB: u64 = 1 << 20;
const POOL: u64 = 8 * MIB;

/// Sizes the brief asks for: 1 B, unaligned, 4 KiB, 1 MiB, and more than
/// the 8 KiB inline buffer (non-relaxed persists are cut into messages).
const CASES: [(u64, usize, u32); 8] = [
    (0, 1, 0),
    (4097, 13, 0),
    (8192, 4096, 0),
    (MIB, MIB as usize, 0),
    (3 * MIB + 3, 3 * 8192 + 5, 0),
    (4 * MIB, MIB as usize, PERSIST_RELAXED),
    (5 * MIB + 1, 4096 * 3 + 1, PERSIST_RELAXED),
    (POOL - 1, 1, 0),
];

#[test]
fn nohdrs_pool_replicates_reopens_and_reads_back() {
    let env = TestEnv::new();
    let parts = env.poolset("nohdrs.set", &[POOL], true);
    let opts = env.options();
    let r = region(POOL);
    let pool = RemotePool::create("localhost", "nohdrs.set", Arc::clone(&r), 4, None, &opts)
        .expect("create");
    assert!(pool.nlanes() >= 1 && pool.nlanes() <= 4);
    assert!(!pool.has_headers());
    assert!(pool.attr().is_none());

    for (i, (off, len, flags)) in CASES.iter().enumerate() {
        put(&r, *off, &pattern(*len, i as u64));
        let lane = i as u32 % pool.nlanes();
        pool.persist(lane, *off, *len as u64, *flags)
            .unwrap_or_else(|e| panic!("persist case {i}: {e}"));
    }
    // flush + drain, deep persist.
    let mut lane = pool.lane(0).expect("lane 0");
    for k in 0..64u64 {
        let off = 6 * MIB + k * 5000;
        put(&r, off, &pattern(100, 1000 + k));
        let flags = if k.is_multiple_of(2) {
            FLUSH_RELAXED
        } else {
            0
        };
        lane.flush(off, 100, flags).expect("flush");
    }
    lane.drain(0).expect("drain");
    put(&r, 7 * MIB, &pattern(10_000, 77));
    lane.deep_persist(7 * MIB, 10_000).expect("deep persist");
    // Read back through the data path, while the pool is open.
    let mut back = vec![0u8; MIB as usize];
    lane.read(MIB, &mut back).expect("read");
    assert_eq!(back, get(&r, MIB, MIB as usize));
    drop(lane);
    pool.close().expect("close");

    // The part file holds what the region holds in every persisted range.
    let file = std::fs::read(&parts[0]).expect("part file");
    for (i, (off, len, _)) in CASES.iter().enumerate() {
        let at = *off as usize;
        assert_eq!(
            &file[at..at + len],
            &get(&r, *off, *len)[..],
            "case {i} on disk"
        );
    }
    for k in 0..64u64 {
        let at = (6 * MIB + k * 5000) as usize;
        assert_eq!(
            &file[at..at + 100],
            &pattern(100, 1000 + k)[..],
            "flush {k} on disk"
        );
    }
    let at = 7 * MIB as usize;
    assert_eq!(&file[at..at + 10_000], &pattern(10_000, 77)[..]);

    // Reopen with a fresh region and read everything back into it.
    let r2 = region(POOL);
    let pool =
        RemotePool::open("localhost", "nohdrs.set", Arc::clone(&r2), 2, &opts).expect("open");
    assert!(pool.attr().is_none());
    let mut lane = pool.lane(pool.nlanes() - 1).expect("lane");
    lane.read_to_region(0, POOL).expect("read whole pool");
    drop(lane);
    pool.close().expect("close again");
    assert_eq!(
        get(&r2, 0, POOL as usize),
        file,
        "read back equals the part file"
    );
}

#[test]
fn header_pool_attributes_set_attr_and_reopen() {
    let env = TestEnv::new();
    let parts = env.poolset("hdr.set", &[POOL], false);
    let opts = env.options();
    let r = region(POOL);
    let a = attr(1);
    let pool = RemotePool::create("localhost", "hdr.set", Arc::clone(&r), 2, Some(&a), &opts)
        .expect("create");
    assert!(pool.has_headers());
    assert_eq!(pool.attr(), Some(&a));

    // The header is not writable through the data path; the lane is fine after.
    let e = pool.persist(0, 0, 8, 0).expect_err("header");
    assert!(matches!(e, Error::Call { .. }), "{e}");
    put(&r, 4096, b"first byte after the header");
    pool.persist(0, 4096, 27, 0)
        .expect("persist after the header");
    put(&r, POOL - 4096, &pattern(4096, 5));
    pool.persist(1 % pool.nlanes(), POOL - 4096, 4096, PERSIST_RELAXED)
        .expect("persist at the end");

    let b = attr(2);
    pool.set_attr(Some(&b)).expect("set_attr");
    pool.close().expect("close");

    let file = std::fs::read(&parts[0]).expect("part file");
    assert_eq!(&file[4096..4096 + 27], b"first byte after the header");
    assert_eq!(&file[(POOL - 4096) as usize..], &pattern(4096, 5)[..]);
    assert_eq!(&file[..8], b"RPMEMTST", "the pool header is rpmemd's");

    let r2 = region(POOL);
    let pool = RemotePool::open("localhost", "hdr.set", Arc::clone(&r2), 2, &opts).expect("open");
    assert_eq!(pool.attr(), Some(&b), "set_attr is visible after reopening");
    let mut buf = vec![0u8; 27];
    pool.read(0, 4096, &mut buf).expect("read");
    assert_eq!(&buf, b"first byte after the header");
    // Reading the header is allowed.
    let mut hdr = [0u8; 8];
    pool.read(0, 0, &mut hdr).expect("read header");
    assert_eq!(&hdr, b"RPMEMTST");
    pool.close().expect("close");
}

#[test]
fn lanes_from_several_threads_at_once() {
    let env = TestEnv::new();
    let parts = env.poolset("mt.set", &[POOL], true);
    let opts = env.options();
    let r = region(POOL);
    let pool =
        RemotePool::create("localhost", "mt.set", Arc::clone(&r), 4, None, &opts).expect("create");
    let n = pool.nlanes() as u64;
    let slice = POOL / n;
    thread::scope(|s| {
        for mut lane in pool.lanes().expect("lanes") {
            let r = Arc::clone(&r);
            s.spawn(move || {
                let base = u64::from(lane.index()) * slice;
                for k in 0..100u64 {
                    let len = 1 + (k * 7919) % 20_000;
                    let off = base + (k * 104_729) % (slice - len);
                    put(&r, off, &pattern(len as usize, k ^ base));
                    let flags = if k.is_multiple_of(3) {
                        PERSIST_RELAXED
                    } else {
                        0
                    };
                    lane.persist(off, len, flags).expect("persist");
                }
            });
        }
    });
    // And the locking convenience calls from more threads than lanes. Each
    // thread owns its 64 KiB: two threads writing the same bytes through
    // different lanes would race (lanes are not ordered with each other),
    // and the last persist to arrive need not hold the last bytes written.
    thread::scope(|s| {
        for t in 0..8u64 {
            let (pool, r) = (&pool, &r);
            s.spawn(move || {
                for k in 0..16u64 {
                    let off = t * 4096 * 16 + k * 4096;
                    put(r, off, &pattern(4096, t * 100 + k));
                    pool.persist((t % n) as u32, off, 4096, 0).expect("persist");
                }
            });
        }
    });
    pool.close().expect("close");
    let file = std::fs::read(&parts[0]).expect("part file");
    assert_eq!(file, get(&r, 0, POOL as usize), "every byte persisted");
}

#[test]
fn two_part_pool_maps_offsets_across_parts() {
    let env = TestEnv::new();
    let parts = env.poolset("two.set", &[2 * MIB, 2 * MIB], true);
    let opts = env.options();
    let r = region(4 * MIB);
    let pool =
        RemotePool::create("localhost", "two.set", Arc::clone(&r), 1, None, &opts).expect("create");
    // A range that straddles the two parts.
    let off = 2 * MIB - 5000;
    put(&r, off, &pattern(10_000, 3));
    pool.persist(0, off, 10_000, 0).expect("persist");
    pool.close().expect("close");
    let a = TestEnv::file_bytes(&parts[0], off, 5000);
    let b = TestEnv::file_bytes(&parts[1], 0, 5000);
    assert_eq!([a, b].concat(), pattern(10_000, 3));
}

#[test]
fn refusals_name_the_cause() {
    let env = TestEnv::new();
    env.poolset("p.set", &[POOL], true);
    let opts = env.options();
    let r = region(POOL);

    let e =
        RemotePool::open("localhost", "p.set", Arc::clone(&r), 1, &opts).expect_err("no pool yet");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(!e.to_string().ends_with(": "), "{e}");

    let e = RemotePool::open("localhost", "missing.set", Arc::clone(&r), 1, &opts)
        .expect_err("no pool set file");
    assert!(
        matches!(
            e,
            Error::Refused {
                status: Status::NoExist,
                ..
            }
        ),
        "{e}"
    );

    let pool =
        RemotePool::create("localhost", "p.set", Arc::clone(&r), 1, None, &opts).expect("create");
    let e = RemotePool::open("localhost", "p.set", Arc::clone(&r), 1, &opts).expect_err("in use");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    pool.close().expect("close");

    // A pool with headers that exists already.
    env.poolset("h.set", &[POOL], false);
    RemotePool::create(
        "localhost",
        "h.set",
        Arc::clone(&r),
        1,
        Some(&attr(4)),
        &opts,
    )
    .expect("create h.set")
    .close()
    .expect("close h.set");
    let e = RemotePool::create(
        "localhost",
        "h.set",
        Arc::clone(&r),
        1,
        Some(&attr(4)),
        &opts,
    )
    .expect_err("exists");
    assert!(matches!(e, Error::Refused { .. }), "{e}");

    let big = region(2 * POOL);
    let e = RemotePool::open("localhost", "p.set", big, 1, &opts).expect_err("too big");
    assert!(
        matches!(
            e,
            Error::Refused {
                status: Status::BadSize,
                ..
            }
        ),
        "{e}"
    );
    let e = RemotePool::create(
        "localhost",
        "p.set",
        Arc::clone(&r),
        1,
        Some(&attr(3)),
        &opts,
    )
    .expect_err("attributes for a NOHDRS set");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
}

#[test]
fn remove_with_force_and_pool_set_flags() {
    let env = TestEnv::new();
    let parts = env.poolset("rm.set", &[POOL], true);
    let opts = env.options();
    let r = region(POOL);
    RemotePool::create("localhost", "rm.set", Arc::clone(&r), 1, None, &opts)
        .expect("create")
        .close()
        .expect("close");
    assert!(parts[0].exists());
    remove("localhost", "rm.set", 0, &opts).expect("remove");
    assert!(!parts[0].exists(), "part file removed");
    assert!(env.poolset_path("rm.set").exists(), "pool set file kept");

    // Nothing left to remove: an error with rpmemd's words, unless forced.
    let e = remove("localhost", "rm.set", 0, &opts).expect_err("already removed");
    assert!(matches!(e, Error::RemoveFailed { .. }), "{e}");
    let Error::RemoveFailed { message, code, .. } = &e else {
        unreachable!()
    };
    assert!(!message.is_empty() && *code != 0, "{e}");
    remove("localhost", "rm.set", REMOVE_FORCE, &opts).expect("forced");

    RemotePool::create("localhost", "rm.set", Arc::clone(&r), 1, None, &opts)
        .expect("create again")
        .close()
        .expect("close");
    remove("localhost", "rm.set", REMOVE_POOL_SET, &opts).expect("remove with the set");
    assert!(!parts[0].exists());
    assert!(
        !env.poolset_path("rm.set").exists(),
        "pool set file removed"
    );

    let e = remove("localhost", "rm.set", 8, &opts).expect_err("bad flags");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[test]
fn every_argument_error_leaves_the_handle_usable() {
    let env = TestEnv::new();
    let parts = env.poolset("args.set", &[POOL], false);
    let opts = env.options();
    let r = region(POOL);
    let pool = RemotePool::create(
        "localhost",
        "args.set",
        Arc::clone(&r),
        1,
        Some(&attr(9)),
        &opts,
    )
    .expect("create");
    let mut lane = pool.lane(0).expect("lane");
    let mut buf = [0u8; 16];
    let errors = [
        lane.persist(100, 8, 0).expect_err("header"),
        lane.persist(4096, 8, 0x10).expect_err("flags"),
        lane.persist(4096, POOL, 0).expect_err("beyond the pool"),
        lane.persist(u64::MAX, 2, 0).expect_err("overflow"),
        lane.deep_persist(0, 8).expect_err("header"),
        lane.flush(4096, 8, 2).expect_err("flags"),
        lane.flush(POOL, 1, 0).expect_err("beyond the pool"),
        lane.drain(1).expect_err("drain flags"),
        lane.read(POOL - 8, &mut buf)
            .expect_err("read beyond the pool"),
        lane.read_to_region(POOL, 1)
            .expect_err("read beyond the pool"),
    ];
    for (i, e) in errors.iter().enumerate() {
        assert!(matches!(e, Error::Call { .. }), "case {i}: {e}");
        assert_eq!(e.errno(), libc::EINVAL, "case {i}");
        put(&r, 8192 + i as u64, &[i as u8 + 1]);
        lane.persist(8192 + i as u64, 1, 0)
            .unwrap_or_else(|e| panic!("lane unusable after case {i}: {e}"));
    }
    drop(lane);
    let e = pool.persist(5, 4096, 1, 0).expect_err("no such lane");
    assert!(matches!(e, Error::NoSuchLane { .. }), "{e}");
    pool.close().expect("close");
    let file = TestEnv::file_bytes(&parts[0], 8192, errors.len());
    assert_eq!(file, (1..=errors.len() as u8).collect::<Vec<_>>());
}

/// Threads of process `pid` (its `/proc/<pid>/task` entries).
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/task: {e}"))
        .count()
}

/// libpmemobj asks for 1024 lanes for every pool it opens and uses lane 0
/// plus one lane per application thread. TCP lanes connect on first use, so
/// the 1024 granted lanes cost rpmemd one thread (and the client one
/// connection) per lane used: opening holds lane 0 only, and each further
/// lane adds one worker when its first call arrives.
#[test]
fn a_thousand_lanes_cost_only_the_lanes_used() {
    let env = TestEnv::new();
    let parts = env.poolset("many.set", &[POOL], false);
    let opts = env.options();
    let r = region(POOL);
    let pool = RemotePool::create(
        "localhost",
        "many.set",
        Arc::clone(&r),
        1024,
        Some(&attr(7)),
        &opts,
    )
    .expect("create with 1024 lanes");
    assert_eq!(pool.nlanes(), 1024, "rpmemd grants libpmemobj's 1024 lanes");
    let pid = pool.remote_pid().expect("rpmemd's pid in local mode");
    let at_open = threads_of(pid);
    assert!(
        at_open < 16,
        "rpmemd runs {at_open} threads right after opening 1024 lanes: lanes were connected eagerly"
    );
    for (lane, off) in [(1u32, 8192u64), (1000, 16384), (1023, 3 * MIB)] {
        put(&r, off, &pattern(4096, u64::from(lane)));
        pool.persist(lane, off, 4096, 0)
            .expect("persist on a lane not used before");
    }
    // The workers start when the connections arrive; give them a moment.
    let grew = rpmem_e2e::wait_for(std::time::Duration::from_secs(5), || {
        threads_of(pid) == at_open + 3
    });
    assert!(
        grew,
        "three lanes used: rpmemd should run {} threads, runs {}",
        at_open + 3,
        threads_of(pid)
    );
    // A second call on a used lane does not connect again.
    pool.persist(1000, 16384, 4096, 0).expect("persist again");
    assert_eq!(threads_of(pid), at_open + 3);
    pool.close().expect("close");
    for (lane, off) in [(1u32, 8192u64), (1000, 16384), (1023, 3 * MIB)] {
        assert_eq!(
            TestEnv::file_bytes(&parts[0], off, 4096),
            pattern(4096, u64::from(lane)),
            "lane {lane}'s persist is in the part file"
        );
    }
}
