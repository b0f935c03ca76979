//! The safe layer against a real (soft-RoCE) device. Runs only where
//! `RXE_ADDR` names an address of an RDMA device, which `tests/rxe/run.sh`
//! sets inside its VM; elsewhere every test returns at once.

#![cfg(feature = "verbs")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rpmem_verbs::{
    resolve, Access, Buf, Connected, Endpoint, EndpointConfig, Listener, Mr, Remote, Wake, Wc,
    WcKind,
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
