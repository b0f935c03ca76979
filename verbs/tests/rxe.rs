//! The safe layer against a real (soft-RoCE) device. Runs only where
//! `RXE_ADDR` names an address of an RDMA device, which `tests/rxe/run.sh`
//! sets inside its VM; elsewhere every test returns at once.
//!
//! `RPMEM_VERBS_EXPECT_FLUSH=1` makes the FLUSH test require that RDMA
//! FLUSH (global visibility) is detected and works (the rig with
//! `--kernel backports --rdma-core new` and this crate built against
//! rdma-core >= 45 headers); `=0` requires that detection says no (the
//! default rig: kernel 6.1, rdma-core 44). Unset, the test checks whichever
//! of the two it finds.

#![cfg(feature = "verbs")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rpmem_verbs::{
    flush_compiled, resolve, Access, Buf, Connected, Endpoint, EndpointConfig, FlushSupport,
    FlushType, Listener, Mr, Remote, Wake, Wc, WcKind,
};

const T: Duration = Duration::from_secs(10);

fn rxe_addr() -> Option<SocketAddr> {
    let a = std::env::var("RXE_ADDR").ok()?;
    Some(SocketAddr::new(a.parse().ok()?, 0))
}

fn config(source: Option<Arc<Mr>>, remote: Option<Remote>) -> EndpointConfig {
    EndpointConfig {
        send_slots: 4,
        send_slot_len: 64,
        recv_slots: 4,
        recv_slot_len: 4096,
        read_slots: 2,
        read_slot_len: 65536,
        max_send_wr: 32,
        max_inline: 64,
        source,
        remote,
    }
}

/// Polls until `n` completions arrived (or fails after 10 s).
fn completions(ep: &mut Endpoint, n: usize) -> Vec<Wc> {
    let mut out = Vec::new();
    let deadline = Instant::now() + T;
    while out.len() < n {
        if ep.poll(&mut out).unwrap() > 0 {
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} completions: {out:?}",
            out.len()
        );
        match ep.wait(Duration::from_millis(200)).unwrap() {
            Wake::Disconnected => panic!("disconnected while waiting: {out:?}"),
            Wake::Rearmed | Wake::Completion | Wake::TimedOut => {}
        }
    }
    out
}

#[test]
fn write_read_send_recv_and_reject() {
    let Some(addr) = rxe_addr() else {
        eprintln!("RXE_ADDR not set: skipped (runs inside tests/rxe/run.sh)");
        return;
    };
    let listener = Listener::bind(addr, 8).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_ne!(port, 0);
    let pd = listener.pd().unwrap();
    let target = Arc::new(
        Mr::register(
            &pd,
            Buf::new(1 << 20).unwrap(),
            Access::LOCAL_WRITE | Access::REMOTE_WRITE | Access::REMOTE_READ,
        )
        .unwrap(),
    );
    let remote = Remote {
        addr: target.addr(),
        rkey: target.rkey(),
        len: target.len() as u64,
    };
    let server_target = Arc::clone(&target);
    let server = thread::spawn(move || {
        // First request: wrong password, rejected with a reason.
        let req = listener.next_request(T).unwrap().expect("first request");
        assert_eq!(&req.private_data()[..5], b"wrong");
        req.reject(b"denied").unwrap();
        // Second: accepted; echo one message back with a prefix.
        let req = listener.next_request(T).unwrap().expect("second request");
        assert_eq!(&req.private_data()[..6], b"secret");
        let pending = req.endpoint(&pd, config(None, None)).unwrap();
        let mut ep = pending.accept(b"welcome", T).unwrap();
        let wc = completions(&mut ep, 1);
        assert_eq!(wc[0].kind, WcKind::Recv, "{wc:?}");
        assert!(wc[0].is_ok(), "{}", wc[0].status_str());
        let msg = ep
            .recv_data(wc[0].slot, wc[0].byte_len as usize)
            .unwrap()
            .to_vec();
        ep.post_recv(wc[0].slot).unwrap();
        let mut answer = b"got:".to_vec();
        answer.extend_from_slice(&msg[..8]);
        ep.post_send(1, &answer, None)
            .unwrap()
            .expect("a free send slot");
        let wc = completions(&mut ep, 1);
        assert_eq!((wc[0].kind, wc[0].tag), (WcKind::Send, 1));
        // Wait for the client to go away.
        let deadline = Instant::now() + T;
        loop {
            let mut out = Vec::new();
            ep.poll(&mut out).unwrap();
            if ep.wait(Duration::from_millis(200)).unwrap() == Wake::Disconnected {
                break;
            }
            assert!(Instant::now() < deadline, "no disconnect seen");
        }
        drop(ep);
        // The client's WRITE is in the target's memory.
        let mut seen = vec![0u8; 4096];
        server_target.copy_out(8192, &mut seen).unwrap();
        seen
    });

    let dst = SocketAddr::new(addr.ip(), port);
    // Rejected, with the target's reason.
    let r = resolve(dst, T).unwrap();
    let cpd = r.pd().unwrap();
    let src = Arc::new(Mr::register(&cpd, Buf::new(65536).unwrap(), Access::LOCAL_WRITE).unwrap());
    match r
        .endpoint(&cpd, config(Some(Arc::clone(&src)), Some(remote)))
        .unwrap()
        .connect(b"wrong", T)
        .unwrap()
    {
        Connected::Rejected(private, _) => assert_eq!(&private[..6], b"denied"),
        Connected::Accepted(..) => panic!("a wrong secret was accepted"),
    }
    // Accepted.
    let r = resolve(dst, T).unwrap();
    let mut ep = match r
        .endpoint(&cpd, config(Some(Arc::clone(&src)), Some(remote)))
        .unwrap()
        .connect(b"secret", T)
        .unwrap()
    {
        Connected::Accepted(ep, private) => {
            assert_eq!(&private[..7], b"welcome");
            ep
        }
        Connected::Rejected(p, s) => panic!("rejected: {p:?} {s}"),
    };
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    src.copy_in(100, &pattern).unwrap();
    // WRITE (unsignaled then signaled), READ back, flushing READ.
    ep.post_write(1, 100, 2048, 8192, false).unwrap();
    ep.post_write(2, 2148, 2048, 8192 + 2048, true).unwrap();
    ep.post_read_discard(3, 0, 8).unwrap();
    let slot = ep
        .post_read(4, 8192, 4096)
        .unwrap()
        .expect("a free read slot");
    let wc = completions(&mut ep, 3);
    let kinds: Vec<_> = wc.iter().map(|w| (w.kind, w.tag, w.is_ok())).collect();
    assert_eq!(
        kinds,
        vec![
            (WcKind::Write, 2, true),
            (WcKind::Discard, 3, true),
            (WcKind::Read, 4, true)
        ]
    );
    let back = ep.take_read(slot, 4096, |b| b.to_vec()).unwrap();
    assert_eq!(back, pattern);
    assert!(
        ep.take_read(slot, 4096, |_| ()).is_none(),
        "a slot is taken once"
    );
    // The same held back and posted as one list: nothing leaves before
    // end_batch, then all of it, in order.
    let second: Vec<u8> = pattern.iter().map(|b| b ^ 0x5a).collect();
    src.copy_in(100, &second).unwrap();
    ep.begin_batch();
    ep.post_write(11, 100, 4096, 16384, false).unwrap();
    ep.post_read_discard(12, 0, 8).unwrap();
    let slot = ep
        .post_read(13, 16384, 4096)
        .unwrap()
        .expect("a free read slot");
    std::thread::sleep(Duration::from_millis(200));
    let mut none = Vec::new();
    assert_eq!(
        ep.poll(&mut none).unwrap(),
        0,
        "posted before end_batch: {none:?}"
    );
    ep.end_batch().unwrap();
    let wc = completions(&mut ep, 2);
    let kinds: Vec<_> = wc.iter().map(|w| (w.kind, w.tag, w.is_ok())).collect();
    assert_eq!(
        kinds,
        vec![(WcKind::Discard, 12, true), (WcKind::Read, 13, true)]
    );
    let back = ep.take_read(slot, 4096, |b| b.to_vec()).unwrap();
    assert_eq!(back, second);
    src.copy_in(100, &pattern).unwrap();
    // Ranges outside the registrations are refused before posting.
    assert!(ep.post_write(5, 65536 - 10, 11, 0, true).is_err());
    assert!(ep.post_read(6, (1 << 20) - 4, 8).is_err());
    // SEND with a header and a tail from the source registration.
    ep.post_send(7, b"HDR:", Some((100, 4))).unwrap().unwrap();
    let wc = completions(&mut ep, 2);
    assert!(
        wc.iter().any(|w| w.kind == WcKind::Send && w.tag == 7),
        "{wc:?}"
    );
    let recv = wc
        .iter()
        .find(|w| w.kind == WcKind::Recv)
        .expect("the answer");
    let answer = ep
        .recv_data(recv.slot, recv.byte_len as usize)
        .unwrap()
        .to_vec();
    let mut expected = b"got:HDR:".to_vec();
    expected.extend_from_slice(&pattern[..4]);
    assert_eq!(answer, expected);
    drop(ep);
    let seen = server.join().unwrap();
    assert_eq!(seen, pattern);
}

/// Connects to `listener` (whose side accepts with an empty config and
/// waits for the disconnect) with a new 64 KiB registration holding `data`
/// as the WRITE source and `remote` as the target; returns the endpoint,
/// the source and the server thread.
fn connect_pair(
    listener: Listener,
    pd: Arc<rpmem_verbs::Pd>,
    addr: SocketAddr,
    data: &[u8],
    remote: Remote,
) -> (Endpoint, Arc<Mr>, thread::JoinHandle<()>) {
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let req = listener.next_request(T).unwrap().expect("a request");
        let mut ep = req
            .endpoint(&pd, config(None, None))
            .unwrap()
            .accept(b"ok", T)
            .unwrap();
        let deadline = Instant::now() + T;
        loop {
            let mut out = Vec::new();
            ep.poll(&mut out).unwrap();
            if ep.wait(Duration::from_millis(200)).unwrap() == Wake::Disconnected {
                break;
            }
            assert!(Instant::now() < deadline, "no disconnect seen");
        }
    });
    let r = resolve(SocketAddr::new(addr.ip(), port), T).unwrap();
    let cpd = r.pd().unwrap();
    let src = Arc::new(Mr::register(&cpd, Buf::new(65536).unwrap(), Access::LOCAL_WRITE).unwrap());
    src.copy_in(0, data).unwrap();
    let ep = match r
        .endpoint(&cpd, config(Some(Arc::clone(&src)), Some(remote)))
        .unwrap()
        .connect(b"hello", T)
        .unwrap()
    {
        Connected::Accepted(ep, _) => *ep,
        Connected::Rejected(p, s) => panic!("rejected: {p:?} {s}"),
    };
    (ep, src, server)
}

#[test]
fn flush_after_write_is_detected_and_completes() {
    let Some(addr) = rxe_addr() else {
        eprintln!("RXE_ADDR not set: skipped (runs inside tests/rxe/run.sh)");
        return;
    };
    let expect = std::env::var("RPMEM_VERBS_EXPECT_FLUSH").ok();
    let listener = Listener::bind(addr, 8).unwrap();
    let pd = listener.pd().unwrap();
    let support = pd.flush_support();
    eprintln!(
        "device {}: built with FLUSH headers {}, FLUSH support {support:?}",
        pd.device_name(),
        flush_compiled()
    );
    if !flush_compiled() {
        assert_eq!(support, FlushSupport::NONE, "no FLUSH without the headers");
    }
    match expect.as_deref() {
        Some("1") => assert!(
            support.global,
            "RPMEM_VERBS_EXPECT_FLUSH=1 but global FLUSH was not detected: {support:?} (built with FLUSH headers: {})",
            flush_compiled()
        ),
        Some("0") => assert_eq!(support, FlushSupport::NONE),
        _ => {}
    }
    // The target: anonymous memory, with the FLUSH right where there is one
    // (registering with it where FLUSH is absent is refused by the kernel).
    let mut access = Access::LOCAL_WRITE | Access::REMOTE_WRITE | Access::REMOTE_READ;
    if support.global {
        access = access | Access::FLUSH_GLOBAL;
        assert!(access.contains(FlushType::Global.access()));
    }
    let target = Arc::new(Mr::register(&pd, Buf::new(1 << 20).unwrap(), access).unwrap());
    let remote = Remote {
        addr: target.addr(),
        rkey: target.rkey(),
        len: target.len() as u64,
    };
    // Persistence needs memory the kernel lists as persistent memory.
    if support.persistent {
        persistent_registration(&pd);
    }

    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 31 + 5) as u8).collect();
    let (mut ep, _src, server) = connect_pair(listener, Arc::clone(&pd), addr, &pattern, remote);
    assert_eq!(
        ep.flush_support(),
        support,
        "the endpoint gets its domain's FLUSH"
    );

    if support.global {
        // WRITE (unsignaled), FLUSH (global) of the same range, READ back.
        ep.post_write(1, 0, 4096, 16384, false).unwrap();
        ep.post_flush(2, 16384, 4096, FlushType::Global).unwrap();
        let slot = ep.post_read(3, 16384, 4096).unwrap().expect("a read slot");
        let wc = completions(&mut ep, 2);
        let seen: Vec<_> = wc
            .iter()
            .map(|w| (w.kind, w.tag, w.is_flush(), w.is_ok()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (WcKind::Discard, 2, true, true),
                (WcKind::Read, 3, false, true)
            ],
            "statuses: {:?}",
            wc.iter().map(Wc::status_str).collect::<Vec<_>>()
        );
        let back = ep.take_read(slot, 4096, |b| b.to_vec()).unwrap();
        assert_eq!(back, pattern, "the READ after the FLUSH sees the WRITE");
        let mut there = vec![0u8; 4096];
        target.copy_out(16384, &mut there).unwrap();
        assert_eq!(there, pattern, "the WRITE is in the target's memory");
        // Ranges outside the registration and empty ones are refused
        // before posting.
        assert!(ep
            .post_flush(4, (1 << 20) - 8, 16, FlushType::Global)
            .is_err());
        assert!(ep.post_flush(4, 0, 0, FlushType::Global).is_err());
        if !support.persistent {
            let e = ep.post_flush(4, 0, 8, FlushType::Persistent).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        }
    } else {
        // Detection said no: posting is refused up front, nothing is
        // posted, and the queue pair still works (the READ-after-WRITE
        // fallback).
        for kind in [FlushType::Global, FlushType::Persistent] {
            let e = ep.post_flush(2, 16384, 4096, kind).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            eprintln!("post_flush({kind:?}) refused as expected: {e}");
        }
        ep.post_write(1, 0, 4096, 16384, false).unwrap();
        let slot = ep.post_read(3, 16384, 4096).unwrap().expect("a read slot");
        let wc = completions(&mut ep, 1);
        assert_eq!(
            (wc[0].kind, wc[0].tag, wc[0].is_ok()),
            (WcKind::Read, 3, true)
        );
        assert!(!wc[0].is_flush());
        let back = ep.take_read(slot, 4096, |b| b.to_vec()).unwrap();
        assert_eq!(back, pattern);
    }
    drop(ep);
    server.join().unwrap();
}

/// With `DAX_DEV` set: registers 2 MiB of the Device DAX with the
/// persistent FLUSH right. rxe allows it only when every page is persistent
/// memory the kernel lists as such (`IORES_DESC_PERSISTENT_MEMORY`); the
/// rig's `memmap=` pmem is "legacy" persistent memory, which rxe refuses
/// with `EINVAL`. Either outcome is reported; any other error fails.
fn persistent_registration(pd: &Arc<rpmem_verbs::Pd>) {
    let Some(dev) = std::env::var("DAX_DEV").ok().filter(|d| !d.is_empty()) else {
        eprintln!("DAX_DEV not set: persistent registration not tried");
        return;
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .unwrap();
    let map = Buf::map_shared(&file, 2 << 20).unwrap();
    let access = Access::LOCAL_WRITE
        | Access::REMOTE_WRITE
        | Access::REMOTE_READ
        | FlushType::Persistent.access();
    match Mr::register(pd, map, access) {
        Ok(mr) => eprintln!("{dev}: registered with FLUSH_PERSISTENT ({mr:?})"),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{dev}: {e}");
            eprintln!(
                "{dev}: FLUSH_PERSISTENT registration refused as rxe does on legacy pmem: {e}"
            );
        }
    }
}

/// With `NVDIMM_DAX_DEV` set (the rig's `--nvdimm`: Device DAX on an ACPI
/// NVDIMM, which the kernel lists as persistent memory): registers 2 MiB
/// of it with both FLUSH rights, WRITEs into it, FLUSHes with persistence
/// and then global visibility placement, and READs the bytes back.
#[test]
fn persistent_flush_into_nvdimm() {
    let Some(addr) = rxe_addr() else {
        eprintln!("RXE_ADDR not set: skipped (runs inside tests/rxe/run.sh)");
        return;
    };
    let Some(dev) = std::env::var("NVDIMM_DAX_DEV")
        .ok()
        .filter(|d| !d.is_empty())
    else {
        eprintln!("NVDIMM_DAX_DEV not set: skipped (tests/rxe/run.sh --nvdimm sets it)");
        return;
    };
    let expect = std::env::var("RPMEM_VERBS_EXPECT_FLUSH").ok();
    let listener = Listener::bind(addr, 8).unwrap();
    let pd = listener.pd().unwrap();
    let support = pd.flush_support();
    if !support.persistent {
        assert_ne!(
            expect.as_deref(),
            Some("1"),
            "RPMEM_VERBS_EXPECT_FLUSH=1 but persistent FLUSH was not detected: {support:?}"
        );
        eprintln!("persistent FLUSH not available ({support:?}): skipped");
        return;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .unwrap();
    let access = Access::LOCAL_WRITE
        | Access::REMOTE_WRITE
        | Access::REMOTE_READ
        | FlushType::Persistent.access()
        | FlushType::Global.access();
    let target = Arc::new(
        Mr::register(&pd, Buf::map_shared(&file, 2 << 20).unwrap(), access)
            .unwrap_or_else(|e| panic!("{dev} is NFIT pmem, rxe must allow FLUSH_PERSISTENT: {e}")),
    );
    let remote = Remote {
        addr: target.addr(),
        rkey: target.rkey(),
        len: target.len() as u64,
    };
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 11) as u8).collect();
    let (mut ep, _src, server) = connect_pair(listener, Arc::clone(&pd), addr, &pattern, remote);
    ep.post_write(1, 0, 4096, 8192, true).unwrap();
    ep.post_flush(2, 8192, 4096, FlushType::Persistent).unwrap();
    ep.post_flush(3, 8192, 4096, FlushType::Global).unwrap();
    let slot = ep.post_read(4, 8192, 4096).unwrap().expect("a read slot");
    let wc = completions(&mut ep, 4);
    let seen: Vec<_> = wc
        .iter()
        .map(|w| (w.kind, w.tag, w.is_flush(), w.is_ok()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (WcKind::Write, 1, false, true),
            (WcKind::Discard, 2, true, true),
            (WcKind::Discard, 3, true, true),
            (WcKind::Read, 4, false, true)
        ],
        "statuses: {:?}",
        wc.iter().map(Wc::status_str).collect::<Vec<_>>()
    );
    assert_eq!(ep.take_read(slot, 4096, |b| b.to_vec()).unwrap(), pattern);
    let mut there = vec![0u8; 4096];
    target.copy_out(8192, &mut there).unwrap();
    assert_eq!(there, pattern, "the WRITE is in the NVDIMM");
    eprintln!("{dev}: WRITE + persistent FLUSH + global FLUSH + READ completed, data intact");
    drop(ep);
    server.join().unwrap();
}
