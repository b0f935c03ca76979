//! rpmem over native RDMA (cargo feature `verbs`) against the real rpmemd,
//! on a soft-RoCE device inside the VM of `tests/rxe/run.sh`, which sets
//! `RXE_ADDR` (the device's address), `TMPFS_DIR`, `DAX_DEV` and
//! `RPMEM_HW_TESTS=1`. Elsewhere (no RXE_ADDR, no RPMEM_HW_TESTS) every
//! test returns at once; inside the rig a missing variable is a failure.
//!
//! rpmemd is started in local mode with `SSH_CONNECTION` naming the rxe
//! address, as sshd would, so it listens there (RDMA cannot use loopback).
//!
//! The RDMA FLUSH tests need `NVDIMM_DAX_DEV` (the rig's `--nvdimm`) and
//! are skipped without it; `RPMEM_EXPECT_RDMA_FLUSH=1` (set by
//! `tests/rxe/flush-guest.sh` on Linux 6.12 with rdma-core 56) says FLUSH
//! must be offered and used there, otherwise the tests expect the fallback
//! to the announced method.

#![cfg(feature = "verbs")]

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rpmem::{Method, Options, Region, RemotePool, Transport, PERSIST_RELAXED};
use rpmem_core::persist::StreamClient;
use rpmem_e2e::{
    assert_acked_on_target, attr, get, pattern, persist_until_killed, put, region, TestEnv,
};
use rpmem_verbs::{resolve, Buf, Connected, EndpointConfig, Mr};

const MIB: u64 = 1 << 20;

/// A rig variable, `None` outside the rig (the test is skipped).
fn rig(var: &str) -> Option<String> {
    let inside = std::env::var("RPMEM_HW_TESTS").is_ok_and(|v| v == "1");
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if inside => panic!("{var} is not set inside the rxe rig"),
        _ => {
            eprintln!("{var} not set: skipped (runs inside tests/rxe/run.sh)");
            None
        }
    }
}

fn verbs_options(env: &TestEnv) -> Options {
    env.options()
        .to_builder()
        .transport(Transport::Verbs)
        .build()
}

/// A pool without much data on each side, used by every test: persist in
/// every mode from two lanes on two threads, read back over RDMA.
fn exercise(pool: &RemotePool, r: &Arc<Region>, base: u64) -> Vec<(u64, Vec<u8>)> {
    let mut written = Vec::new();
    // 64 B non-relaxed (inline SEND), 1 MiB relaxed (WRITE), unaligned
    // flush + drain, deep persist.
    let cases: [(u64, usize, u32); 4] = [
        (base, 64, 0),
        (base + 8192 + 3, 5000, 0),
        (base + MIB, MIB as usize, PERSIST_RELAXED),
        (base + 3 * MIB + 1, 3 * 8192 + 5, 0),
    ];
    thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, lane) in pool.lanes().expect("lanes").into_iter().enumerate() {
            let r = Arc::clone(r);
            handles.push(s.spawn(move || {
                let mut lane = lane;
                let mut mine = Vec::new();
                for (j, &(off, len, flags)) in cases.iter().enumerate() {
                    if j % 2 != i % 2 {
                        continue;
                    }
                    let data = pattern(len, off ^ 0x5a);
                    put(&r, off, &data);
                    lane.persist(off, len as u64, flags).expect("persist");
                    mine.push((off, data));
                }
                mine
            }));
        }
        for h in handles {
            written.extend(h.join().expect("lane thread"));
        }
    });
    let mut lane = pool.lane(0).expect("lane 0");
    let off = base + 6 * MIB;
    let data = pattern(4096, 77);
    put(r, off, &data);
    lane.flush(off, 2048, 0).expect("flush");
    lane.flush(off + 2048, 2048, rpmem::FLUSH_RELAXED)
        .expect("flush relaxed");
    lane.drain(0).expect("drain");
    written.push((off, data));
    let off = base + 7 * MIB;
    let data = pattern(100_000, 78);
    put(r, off, &data);
    lane.deep_persist(off, data.len() as u64)
        .expect("deep persist");
    written.push((off, data));
    // Read back over RDMA READ, larger than one read slot.
    let mut back = vec![0u8; MIB as usize];
    lane.read(base + MIB, &mut back).expect("read");
    let expected = written
        .iter()
        .find(|(o, _)| *o == base + MIB)
        .map(|(_, d)| d.clone())
        .expect("the 1 MiB case");
    assert_eq!(back, expected, "RDMA READ of the 1 MiB relaxed persist");
    written
}

#[test]
fn gpspm_over_verbs_on_a_file_pool_survives_reopen() {
    let Some(addr) = rig("RXE_ADDR") else {
        return;
    };
    let env = TestEnv::new();
    let size = 16 * MIB;
    let parts = env.poolset("verbs.set", &[size], false);
    let opts = verbs_options(&env);
    let r = region(size);
    let a = attr(7);
    let pool = RemotePool::create(&addr, "verbs.set", Arc::clone(&r), 2, Some(&a), &opts)
        .expect("create over verbs");
    assert_eq!(pool.persist_method(), Method::Gpspm);
    assert_eq!(pool.nlanes(), 2);
    let written = exercise(&pool, &r, 4096);
    pool.close().expect("close");
    // On disk, in the part file (one part: pool offset = file offset).
    for (off, data) in &written {
        assert_eq!(
            &TestEnv::file_bytes(&parts[0], *off, data.len()),
            data,
            "part file at {off}"
        );
    }
    // Reopen into a fresh region and read everything back.
    let r2 = region(size);
    let pool = RemotePool::open(&addr, "verbs.set", Arc::clone(&r2), 1, &opts).expect("reopen");
    assert_eq!(pool.attr(), Some(&a));
    for (off, data) in &written {
        pool.read_to_region(0, *off, data.len() as u64)
            .expect("read");
        assert_eq!(&get(&r2, *off, data.len()), data, "read back at {off}");
    }
    pool.close().expect("close");
    rpmem::remove(&addr, "verbs.set", rpmem::REMOVE_POOL_SET, &opts).expect("remove");
    assert!(!parts[0].exists(), "the part file is removed");
    assert!(
        !env.poolset_path("verbs.set").exists(),
        "the pool set file is removed"
    );
    let log = env.log();
    assert!(log.contains("persistency method: GPSPM"), "{log}");
    assert!(log.contains("RDMA data path listening on"), "{log}");
    assert!(log.contains("lane 1 connected over RDMA from"), "{log}");
    // Lanes closed by the client end quietly.
    assert!(
        !log.contains("RECV failed") && !log.contains("SEND failed"),
        "{log}"
    );
}

#[test]
fn apm_over_verbs_on_device_dax() {
    let (Some(addr), Some(dev)) = (rig("RXE_ADDR"), rig("DAX_DEV")) else {
        return;
    };
    let env = TestEnv::new();
    // The administrator says the NIC writes into the persistence domain.
    let conf = env.path("rpmemd.conf");
    let mut text = fs::read_to_string(&conf).expect("config");
    text.push_str("persist-apm = yes\n");
    fs::write(&conf, text).expect("config");
    fs::write(
        env.poolset_path("dax.set"),
        format!("PMEMPOOLSET\nAUTO {dev}\n"),
    )
    .expect("set");
    let name = PathBuf::from(&dev);
    let name = name
        .file_name()
        .and_then(|n| n.to_str())
        .expect("device name");
    let size: u64 = fs::read_to_string(format!("/sys/bus/dax/devices/{name}/size"))
        .expect("Device DAX size in sysfs")
        .trim()
        .parse()
        .expect("a size");
    clear_first_page(&dev);
    let opts = verbs_options(&env);
    let r = region(size);
    let a = attr(9);
    let pool = RemotePool::create(&addr, "dax.set", Arc::clone(&r), 2, Some(&a), &opts)
        .expect("create on Device DAX over verbs");
    assert_eq!(pool.persist_method(), Method::Apm, "{}", env.log());
    let written = exercise(&pool, &r, 4096);
    pool.close().expect("close");
    let r2 = region(size);
    let pool = RemotePool::open(&addr, "dax.set", Arc::clone(&r2), 1, &opts).expect("reopen");
    for (off, data) in &written {
        pool.read_to_region(0, *off, data.len() as u64)
            .expect("read");
        assert_eq!(&get(&r2, *off, data.len()), data, "read back at {off}");
    }
    pool.close().expect("close");
    let log = env.log();
    assert!(log.contains("persistency method: APM"), "{log}");
    // The memmap= range is legacy pmem: rxe refuses persistent FLUSH on it
    // (or the kernel, rdma-core or this build lacks FLUSH), so it is not
    // offered and the client runs APM.
    assert!(log.contains("RDMA FLUSH not offered: "), "{log}");
}

/// The NVDIMM's Device DAX and whether FLUSH is expected there; `None`
/// (skipped) without `--nvdimm`.
fn nvdimm_rig() -> Option<(String, String, bool)> {
    let addr = rig("RXE_ADDR")?;
    let Some(dev) = std::env::var("NVDIMM_DAX_DEV")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("NVDIMM_DAX_DEV not set: skipped (runs in tests/rxe/flush-check.sh)");
        return None;
    };
    let expect = std::env::var("RPMEM_EXPECT_RDMA_FLUSH").is_ok_and(|v| v == "1");
    Some((addr, dev, expect))
}

/// Writes a pool set `name` of Device DAX `dev` (cleared first).
fn dax_set(env: &TestEnv, name: &str, dev: &str, nohdrs: bool) -> u64 {
    let opt = if nohdrs { "OPTION NOHDRS\n" } else { "" };
    fs::write(
        env.poolset_path(name),
        format!("PMEMPOOLSET\n{opt}AUTO {dev}\n"),
    )
    .expect("set");
    clear_first_page(dev);
    let base = PathBuf::from(dev);
    let base = base
        .file_name()
        .and_then(|n| n.to_str())
        .expect("device name");
    fs::read_to_string(format!("/sys/bus/dax/devices/{base}/size"))
        .expect("Device DAX size in sysfs")
        .trim()
        .parse()
        .expect("a size")
}

#[test]
fn rdma_flush_on_nvdimm_device_dax() {
    let Some((addr, dev, expect)) = nvdimm_rig() else {
        return;
    };
    let env = TestEnv::new();
    let size = dax_set(&env, "nv.set", &dev, false);
    let opts = verbs_options(&env);
    let r = region(size);
    let a = attr(11);
    let pool = RemotePool::create(&addr, "nv.set", Arc::clone(&r), 2, Some(&a), &opts)
        .expect("create on the NVDIMM over verbs");
    let want = if expect {
        Method::RdmaFlush
    } else {
        Method::Gpspm
    };
    assert_eq!(pool.persist_method(), want, "{}", env.log());
    let written = exercise(&pool, &r, 4096);
    pool.close().expect("close");
    // Reopen without FLUSH (RPMEM_RDMA_FLUSH=0): the announced method.
    let r2 = region(size);
    let no_flush = opts.to_builder().rdma_flush(false).build();
    let pool = RemotePool::open(&addr, "nv.set", Arc::clone(&r2), 1, &no_flush).expect("reopen");
    assert_eq!(pool.persist_method(), Method::Gpspm);
    for (off, data) in &written {
        pool.read_to_region(0, *off, data.len() as u64)
            .expect("read");
        assert_eq!(&get(&r2, *off, data.len()), data, "read back at {off}");
    }
    pool.close().expect("close");
    let log = env.log();
    assert!(log.contains("persistency method: GPSPM"), "{log}");
    if expect {
        assert!(
            log.contains("RDMA FLUSH offered: the client may make its writes durable"),
            "{log}"
        );
        assert!(!log.contains("RDMA FLUSH not offered"), "{log}");
    } else {
        assert!(log.contains("RDMA FLUSH not offered: "), "{log}");
    }
}

#[test]
fn kill_during_persist_with_rdma_flush_keeps_acknowledged_data() {
    let Some((addr, dev, expect)) = nvdimm_rig() else {
        return;
    };
    // Persists spread over the first 8 MiB of the device.
    const SPAN: u64 = 8 * MIB;
    let env = TestEnv::new();
    let size = dax_set(&env, "nvkill.set", &dev, true);
    let opts = verbs_options(&env)
        .to_builder()
        .data_timeout(Duration::from_secs(20))
        .build();
    let r = region(size);
    let pool =
        RemotePool::create(&addr, "nvkill.set", Arc::clone(&r), 1, None, &opts).expect("create");
    if expect {
        assert_eq!(pool.persist_method(), Method::RdmaFlush);
    }
    kill_and_check(&addr, "nvkill.set", pool, &r, SPAN, &opts);
}

/// Persists on `pool` (one lane, 64 B to 40 KiB at a time over the first
/// `span` bytes) until rpmemd is killed half a second in; checks that the
/// failing persist failed within 10 s, that some succeeded before, and,
/// after reopening `set`, that every acknowledged persist is on the target.
/// Returns the failing persist's error, in words.
fn kill_and_check(
    addr: &str,
    set: &str,
    pool: RemotePool,
    r: &Arc<Region>,
    span: u64,
    opts: &Options,
) -> String {
    let pid = pool.remote_pid().expect("rpmemd's pid");
    let run = persist_until_killed(
        &pool,
        r,
        span,
        |k| 64 + (k % 3) * 20_000,
        pid,
        Duration::from_millis(500),
    );
    let msg = run.err.to_string();
    assert!(
        run.waited < Duration::from_secs(10),
        "the failing persist took {:?}: {msg}",
        run.waited
    );
    assert!(
        !run.acked.is_empty(),
        "some persists succeeded before the kill"
    );
    drop(pool);
    let r2 = region(r.len() as u64);
    let pool = RemotePool::open(addr, set, Arc::clone(&r2), 1, opts).expect("reopen");
    pool.read_to_region(0, 0, span).expect("read back");
    pool.close().expect("close");
    assert_acked_on_target(&get(&r2, 0, span as usize), &run);
    msg
}

/// Zeroes the first page of a Device DAX device (earlier users of the VM's
/// device, such as the rig's own probe, leave data there, and creating a
/// pool refuses a device that holds data).
fn clear_first_page(dev: &str) {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .unwrap_or_else(|e| panic!("open {dev}: {e}"));
    // SAFETY: a new shared mapping of the device's first page, written and
    // unmapped here; nothing else maps it in this process.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap {dev}: {}",
            std::io::Error::last_os_error()
        );
        std::ptr::write_bytes(p.cast::<u8>(), 0, 4096);
        libc::msync(p, 4096, libc::MS_SYNC);
        libc::munmap(p, 4096);
    }
}

#[test]
fn a_wrong_secret_gets_no_queue_pair() {
    let Some(addr) = rig("RXE_ADDR") else {
        return;
    };
    let env = TestEnv::new();
    env.poolset("s.set", &[8 * MIB], false);
    let opts = verbs_options(&env);
    let r = region(8 * MIB);
    let pool = RemotePool::create(&addr, "s.set", Arc::clone(&r), 1, Some(&attr(1)), &opts)
        .expect("create");
    let ip: std::net::IpAddr = addr.parse().expect("RXE_ADDR is an IP address");
    let dst = std::net::SocketAddr::new(ip, pool.data_port());
    let resolved = resolve(dst, Duration::from_secs(10)).expect("resolve");
    let pd = resolved.pd().expect("pd");
    let src = Arc::new(
        Mr::register(
            &pd,
            Buf::new(4096).expect("buf"),
            rpmem_verbs::Access::LOCAL_READ,
        )
        .expect("mr"),
    );
    let config = EndpointConfig {
        send_slots: 1,
        send_slot_len: 64,
        recv_slots: 1,
        recv_slot_len: 64,
        read_slots: 0,
        read_slot_len: 0,
        max_send_wr: 4,
        max_inline: 64,
        source: Some(src),
        remote: None,
    };
    let hello = StreamClient::new(0).hello(&[0x42; 32]);
    match resolved
        .endpoint(&pd, config)
        .expect("endpoint")
        .connect(&hello, Duration::from_secs(10))
        .expect("an answer")
    {
        Connected::Rejected(private, _) => {
            let e = StreamClient::new(0)
                .on_hello_ack(&private[..8])
                .expect_err("the answer refuses");
            let text = e.to_string().to_lowercase();
            assert!(text.contains("denied"), "{text}");
        }
        Connected::Accepted(..) => panic!("a wrong secret was accepted"),
    }
    // The pool still works for the real client.
    let data = pattern(64, 5);
    put(&r, 8192, &data);
    pool.persist(0, 8192, 64, 0)
        .expect("persist after the refused connection");
    pool.close().expect("close");
    let log = env.log();
    assert!(
        log.contains("RDMA connection from") && log.contains("refused"),
        "{log}"
    );
}

#[test]
fn kill_during_persist_over_verbs_fails_promptly_and_keeps_acknowledged_data() {
    let Some(addr) = rig("RXE_ADDR") else {
        return;
    };
    const POOL: u64 = 8 * MIB;
    let env = TestEnv::new();
    env.poolset("kill.set", &[POOL], true);
    let opts = verbs_options(&env)
        .to_builder()
        .data_timeout(Duration::from_secs(20))
        .build();
    let r = region(POOL);
    let pool =
        RemotePool::create(&addr, "kill.set", Arc::clone(&r), 1, None, &opts).expect("create");
    let msg = kill_and_check(&addr, "kill.set", pool, &r, POOL, &opts);
    assert!(
        msg.contains("signal 9"),
        "the error should say rpmemd was killed: {msg}"
    );
}
