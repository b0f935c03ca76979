//! The pool header is out of reach of RDMA (issue 15): rpmemd registers a
//! pool from the session's `min_offset` (4096 with headers) to its end, so a
//! client that knows the pool's address, its rkey and the session secret (a
//! raw verbs client here, not the library, which never targets the header)
//! gets a remote access error for an RDMA WRITE or READ of the header, and
//! the header on disk is byte for byte what CREATE wrote; a WRITE at
//! `min_offset` lands.
//!
//! Needs an RDMA device: runs inside the rxe rig (`tests/rxe/ci.sh`, which
//! sets `RXE_ADDR` and `RPMEM_HW_TESTS=1`). Without `RXE_ADDR` the test says
//! so and returns, unless `RPMEM_HW_TESTS=1`, where that is a failure.

#![cfg(feature = "verbs")]

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem_core::attr::PoolAttr;
use rpmem_core::oob::{Client, ClientEvent, CreateRequest};
use rpmem_core::persist::StreamClient;
use rpmem_core::wire::oob::{PoolDesc, Provider};
use rpmem_verbs::{
    resolve, Access, Buf, Connected, Endpoint, EndpointConfig, Mr, Remote, Wake, Wc, WcKind,
};

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");
const POOL_SIZE: u64 = 2 << 20;
const HDR: u64 = 4096;
const T: Duration = Duration::from_secs(10);

fn rxe_addr() -> Option<IpAddr> {
    match std::env::var("RXE_ADDR") {
        Ok(a) if !a.is_empty() => Some(a.parse().expect("RXE_ADDR is an IP address")),
        _ => {
            assert_ne!(
                std::env::var("RPMEM_HW_TESTS").as_deref(),
                Ok("1"),
                "RPMEM_HW_TESTS=1 but RXE_ADDR is not set"
            );
            eprintln!("verbs_header: skipped: RXE_ADDR not set (runs inside tests/rxe/ci.sh)");
            None
        }
    }
}

struct Rpmemd {
    child: Child,
    client: Client,
    pending: Vec<u8>,
}

impl Rpmemd {
    fn event(&mut self) -> ClientEvent {
        loop {
            if !self.pending.is_empty() {
                let (used, event) = self.client.handle_input(&self.pending).unwrap();
                self.pending.drain(..used);
                if let Some(event) = event {
                    return event;
                }
            }
            let mut buf = [0u8; 4096];
            let n = self.child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
            assert!(n > 0, "rpmemd closed stdout");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, bytes: &[u8]) -> ClientEvent {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
        self.event()
    }
}

/// Polls until one completion arrives (or fails after 10 s).
fn one_completion(ep: &mut Endpoint) -> Wc {
    let mut out = Vec::new();
    let deadline = Instant::now() + T;
    loop {
        if ep.poll(&mut out).unwrap() > 0 {
            return out.remove(0);
        }
        assert!(Instant::now() < deadline, "no completion within {T:?}");
        match ep.wait(Duration::from_millis(200)).unwrap() {
            Wake::Disconnected => {
                // The completion may still be queued.
                if ep.poll(&mut out).unwrap() > 0 {
                    return out.remove(0);
                }
                panic!("disconnected without a completion");
            }
            Wake::Rearmed | Wake::Completion | Wake::TimedOut => {}
        }
    }
}

/// Connects lane `lane` with the session secret as any client would.
fn connect(
    dst: SocketAddr,
    lane: u32,
    secret: &[u8; 32],
    remote: Remote,
) -> (Box<Endpoint>, Arc<Mr>) {
    let r = resolve(dst, T).unwrap();
    let pd = r.pd().unwrap();
    let src = Arc::new(Mr::register(&pd, Buf::new(1 << 16).unwrap(), Access::LOCAL_WRITE).unwrap());
    let config = EndpointConfig {
        send_slots: 4,
        send_slot_len: 64,
        recv_slots: 4,
        recv_slot_len: 64,
        read_slots: 1,
        read_slot_len: 4096,
        max_send_wr: 8,
        max_inline: 0,
        source: Some(Arc::clone(&src)),
        remote: Some(remote),
    };
    let hello = StreamClient::new(lane).hello(secret);
    match r.endpoint(&pd, config).unwrap().connect(&hello, T).unwrap() {
        Connected::Accepted(ep, _) => (ep, src),
        Connected::Rejected(p, s) => panic!("lane {lane} rejected: {p:?} (status {s})"),
    }
}

#[test]
fn rdma_cannot_reach_the_pool_header() {
    let Some(ip) = rxe_addr() else { return };
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("h.part");
    fs::write(
        dir.path().join("h.set"),
        format!("PMEMPOOLSET\n{POOL_SIZE} {}\n", part.display()),
    )
    .unwrap();
    let conf = dir.path().join("rpmemd.conf");
    fs::write(
        &conf,
        format!(
            "poolset-dir = {0}\nuse-syslog = no\nlog-file = {0}/rpmemd.log\nlog-level = info\npersist-general = yes\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("RPMEMD_GLOBAL_CONFIG", dir.path().join("no-global.conf"))
        .env("SSH_CONNECTION", format!("{ip} 40000 {ip} 22"))
        .env("PMEM_IS_PMEM_FORCE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut d = Rpmemd {
        child,
        client: Client::new(),
        pending: Vec::new(),
    };
    assert_eq!(d.event(), ClientEvent::Ready);
    let mut attr = PoolAttr::ZERO;
    attr.signature = *b"HDRGUARD";
    attr.major = 1;
    attr.poolset_uuid = [3; 16];
    attr.uuid = [4; 16];
    attr.next_uuid = [4; 16];
    attr.prev_uuid = [4; 16];
    let create = CreateRequest {
        pool_size: POOL_SIZE,
        nlanes: 4,
        provider: Provider::VERBS,
        buff_size: 8192,
        attr,
        pool_desc: PoolDesc::from_text("h.set").unwrap(),
    };
    let bytes = d.client.send_create(&create).unwrap().to_vec();
    let resp = match d.send(&bytes) {
        ClientEvent::Created(r) => r,
        other => panic!("CREATE: {other:?}"),
    };
    let secret = resp.ext.expect("our extension block").secret;
    let remote = Remote {
        addr: resp.ibc.raddr,
        rkey: u32::try_from(resp.ibc.rkey).unwrap(),
        len: POOL_SIZE,
    };
    let dst = SocketAddr::new(ip, u16::try_from(resp.ibc.port).unwrap());
    let mut header = vec![0u8; HDR as usize];
    fs::File::open(&part)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(&header[..8], b"HDRGUARD", "CREATE wrote the header");

    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 13 + 5) as u8).collect();
    // Lane 0: an RDMA WRITE over the header's first bytes.
    let (mut ep, src) = connect(dst, 0, &secret, remote);
    src.copy_in(0, &pattern).unwrap();
    ep.post_write(1, 0, 64, 0, true).unwrap();
    let wc = one_completion(&mut ep);
    assert_eq!(wc.kind, WcKind::Write);
    assert!(!wc.is_ok(), "an RDMA WRITE to offset 0 completed");
    eprintln!("WRITE to offset 0: {}", wc.status_str());
    // IBV_WC_REM_ACCESS_ERR
    assert_eq!(wc.status, 10, "{}", wc.status_str());
    drop(ep);
    // Lane 1: an RDMA WRITE that straddles min_offset. (A lane whose queue
    // pair failed stays taken until rpmemd's worker sees it go: every case
    // gets a lane of its own.)
    let (mut ep, src) = connect(dst, 1, &secret, remote);
    src.copy_in(0, &pattern).unwrap();
    ep.post_write(1, 0, 128, HDR - 64, true).unwrap();
    let wc = one_completion(&mut ep);
    assert_eq!(
        (wc.kind, wc.status),
        (WcKind::Write, 10),
        "{}",
        wc.status_str()
    );
    drop(ep);
    // Lane 2: an RDMA READ of the header.
    let (mut ep, _src) = connect(dst, 2, &secret, remote);
    ep.post_read(2, 0, 64).unwrap().expect("a free read slot");
    let wc = one_completion(&mut ep);
    assert_eq!(wc.kind, WcKind::Read);
    assert_eq!(wc.status, 10, "READ of the header: {}", wc.status_str());
    drop(ep);
    // Lane 3: a WRITE at min_offset lands, and reads back.
    let (mut ep, src) = connect(dst, 3, &secret, remote);
    src.copy_in(0, &pattern).unwrap();
    ep.post_write(3, 0, 4096, HDR, true).unwrap();
    let wc = one_completion(&mut ep);
    assert!(wc.is_ok(), "WRITE at min_offset: {}", wc.status_str());
    let slot = ep
        .post_read(4, HDR, 4096)
        .unwrap()
        .expect("a free read slot");
    let wc = one_completion(&mut ep);
    assert!(wc.is_ok(), "READ at min_offset: {}", wc.status_str());
    let back = ep.take_read(slot, 4096, |b| b.to_vec()).unwrap();
    assert_eq!(back, pattern);
    drop(ep);

    let bytes = d.client.send_close(0).unwrap().to_vec();
    assert_eq!(d.send(&bytes), ClientEvent::Closed);
    drop(d.child.stdin.take());
    assert!(d.child.wait().unwrap().success());

    let on_disk = fs::read(&part).unwrap();
    assert!(
        on_disk[..HDR as usize] == header[..],
        "the pool header changed"
    );
    assert_eq!(&on_disk[HDR as usize..HDR as usize + 4096], &pattern[..]);
}
