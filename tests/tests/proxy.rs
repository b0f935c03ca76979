//! A man in the middle of the TCP data path (issue 15): a proxy of the
//! test's own between the client and rpmemd's data port. The client is
//! pointed at it with `RPMEM_DATA_ADDR` (rpmem's test hook); the proxy
//! finds rpmemd's real port in rpmemd's log (`data path listening on ...`).
//! rpmemd runs in local mode behind a wrapper that copies its stdout (the
//! out-of-band answers, which carry the session secret) to a file, so the
//! test knows the secret an eavesdropper must not learn.
//!
//! * capture: every byte through the proxy, both directions: neither the
//!   session secret nor a known payload pattern may be among them;
//! * tamper: one bit flipped in the client's bytes of a persist: the
//!   persist fails, and the pool holds nothing of it;
//! * forge: the proxy swallows a persist and answers on rpmemd's behalf,
//!   as an attacker who knows the protocol but not the key would: where it
//!   can read the client's frames (cleartext), a RECV answer made for the
//!   request it saw; where it cannot, rpmemd's answer to the previous
//!   request, replayed. The persist must not succeed.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rpmem::{Launch, Options, RemotePool};
use rpmem_core::attr::PoolAttr;
use rpmem_core::oob::{Client, ClientEvent, CreateRequest};
use rpmem_core::wire::oob::{PoolDesc, Provider};
use rpmem_core::wire::persist::{PersistMsg, PersistMsgRepr, PersistRespRepr, RESP_LEN};
use rpmem_core::wire::tcp::{Frame, FrameKind, FrameRepr, FRAME_HEADER_LEN};
use rpmem_e2e::{attr, put, region, rpmemd_bin, TestEnv, CONTROL_TIMEOUT};

const MIB: u64 = 1 << 20;
const POOL: u64 = 2 * MIB;
/// The client's bytes of a tampered persist: the bit flipped is in the
/// byte this far into them (past any frame header, inside a 4 KiB body).
const FLIP_AT: usize = 2048;
/// A payload nobody else sends.
const PAYLOAD: &[u8; 64] = b"rpmem proxy payload pattern: an eavesdropper must not see this 7";

/// What the proxy does to the bytes it passes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Passes everything on.
    Pass = 0,
    /// Flips one bit of the client's byte [`FLIP_AT`] from now on.
    Flip = 1,
    /// Swallows the client's bytes from now on and answers each read of
    /// them with rpmemd's last answer.
    Forge = 2,
}

/// Everything that went through, both directions, in order.
#[derive(Default)]
struct Tap {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// rpmemd's bytes since the client's last bytes: its latest answer.
    last_answer: Vec<u8>,
    /// rpmemd's answer before the client's current bytes.
    prev_answer: Vec<u8>,
    /// The client's bytes since the mode changed.
    since_switch: usize,
    /// The client's bytes swallowed in [`Mode::Forge`].
    swallowed: Vec<u8>,
    /// Whether the swallowed request was answered.
    forged: bool,
}

/// What a forger can make of the client's swallowed bytes.
enum Forgery {
    /// An answer to the request it read.
    Answer(Vec<u8>),
    /// The request is not complete yet.
    NeedMore,
    /// Bytes it cannot read as frames (encrypted).
    Unreadable,
}

/// A RECV answer for the first SEND among `bytes` (cleartext frames),
/// made with the public wire format.
fn forge_plaintext(bytes: &[u8]) -> Forgery {
    let mut pos = 0;
    loop {
        let Some(head) = bytes.get(pos..pos + FRAME_HEADER_LEN) else {
            return Forgery::NeedMore;
        };
        let Some(f) = Frame::new_checked(head)
            .ok()
            .and_then(|f| FrameRepr::parse(&f).ok())
        else {
            return Forgery::Unreadable;
        };
        let body_len = match f.kind {
            FrameKind::Write | FrameKind::Send => usize::try_from(f.len).unwrap_or(usize::MAX),
            FrameKind::ReadReq => 0,
            FrameKind::ReadResp | FrameKind::Recv => return Forgery::Unreadable,
        };
        let start = pos + FRAME_HEADER_LEN;
        let Some(body) = bytes.get(start..start.saturating_add(body_len)) else {
            return Forgery::NeedMore;
        };
        if f.kind == FrameKind::Send {
            let Some(msg) = PersistMsg::new_checked(body)
                .ok()
                .and_then(|m| PersistMsgRepr::parse(&m).ok())
            else {
                return Forgery::Unreadable;
            };
            let answer = FrameRepr {
                kind: FrameKind::Recv,
                lane: f.lane,
                req_id: f.req_id,
                offset: 0,
                len: RESP_LEN as u64,
            };
            let resp = PersistRespRepr::answering(&msg);
            return Forgery::Answer([&answer.to_bytes()[..], &resp.to_bytes()[..]].concat());
        }
        pos = start + body_len;
    }
}

struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    tap: Arc<Mutex<Tap>>,
    stop: Arc<AtomicBool>,
    /// Connections still to be closed at once, unread, as rpmemd sheds
    /// connections waiting for their hello in a flood.
    shed: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on 127.0.0.1; each connection is passed to the data port
    /// named in `log` (rpmemd's log file) once it appears there, except the
    /// first `shed`, which are closed unread.
    fn start(log: std::path::PathBuf, shed: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let addr = listener.local_addr().expect("proxy address");
        listener.set_nonblocking(true).expect("nonblocking");
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let tap = Arc::new(Mutex::new(Tap::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let shed = Arc::new(AtomicUsize::new(shed));
        let (m, t, s) = (Arc::clone(&mode), Arc::clone(&tap), Arc::clone(&stop));
        let to_shed = Arc::clone(&shed);
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _))
                        if to_shed
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok() =>
                    {
                        drop(client);
                    }
                    Ok((client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        let upstream = connect_upstream(&log);
                        relay(client, upstream, &m, &t);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            mode,
            tap,
            stop,
            shed,
        }
    }

    fn set(&self, mode: Mode) {
        let mut tap = self.tap.lock().unwrap();
        tap.since_switch = 0;
        tap.swallowed.clear();
        tap.forged = false;
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn captured(&self) -> Vec<u8> {
        let tap = self.tap.lock().unwrap();
        [tap.to_server.as_slice(), tap.to_client.as_slice()].concat()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// rpmemd's data port, from its log (written before it answers CREATE).
fn connect_upstream(log: &std::path::Path) -> TcpStream {
    let end = Instant::now() + CONTROL_TIMEOUT;
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("data path listening on ").nth(1) {
            let addr: SocketAddr = rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
                .expect("rpmemd's listen address in its log");
            return TcpStream::connect(addr).expect("proxy connects to rpmemd");
        }
        assert!(
            Instant::now() < end,
            "rpmemd never said where it listens:\n{text}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Pumps both directions of one connection on two threads.
fn relay(client: TcpStream, server: TcpStream, mode: &Arc<AtomicU8>, tap: &Arc<Mutex<Tap>>) {
    let (c2, s2, back) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
        client.try_clone().expect("clone"),
    );
    let (m, t) = (Arc::clone(mode), Arc::clone(tap));
    // Client -> rpmemd.
    thread::spawn(move || {
        let (mut from, mut to, mut back) = (client, server, back);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            let mode = m.load(Ordering::SeqCst);
            let mut tap = t.lock().unwrap();
            tap.to_server.extend_from_slice(chunk);
            if !tap.last_answer.is_empty() {
                tap.prev_answer = std::mem::take(&mut tap.last_answer);
            }
            let start = tap.since_switch;
            tap.since_switch += n;
            if mode == Mode::Forge as u8 {
                // Swallowed, and answered once: made for the request where
                // the forger can read it, else rpmemd's previous answer.
                tap.swallowed.extend_from_slice(chunk);
                let forged = if tap.forged {
                    Vec::new()
                } else {
                    match forge_plaintext(&tap.swallowed) {
                        Forgery::Answer(a) => a,
                        Forgery::NeedMore => Vec::new(),
                        Forgery::Unreadable => tap.prev_answer.clone(),
                    }
                };
                tap.forged |= !forged.is_empty();
                drop(tap);
                if back.write_all(&forged).is_err() {
                    break;
                }
                continue;
            }
            if mode == Mode::Flip as u8 && start <= FLIP_AT && FLIP_AT < start + n {
                chunk[FLIP_AT - start] ^= 0x10;
            }
            drop(tap);
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    // rpmemd -> client.
    let t = Arc::clone(tap);
    thread::spawn(move || {
        let (mut from, mut to) = (s2, c2);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut tap = t.lock().unwrap();
                tap.to_client.extend_from_slice(&buf[..n]);
                tap.last_answer.extend_from_slice(&buf[..n]);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// rpmemd (local mode, behind a wrapper that copies its stdout to a file)
/// with a pool of `nlanes` lanes whose TCP lanes go through a proxy.
struct Session {
    env: TestEnv,
    proxy: Proxy,
    part: std::path::PathBuf,
    region: Arc<rpmem::Region>,
    pool: Option<RemotePool>,
}

impl Session {
    fn start(nlanes: u32) -> Session {
        Session::start_shedding(nlanes, 0)
    }

    /// A session whose proxy closes its first `shed` lane connections unread.
    fn start_shedding(nlanes: u32, shed: usize) -> Session {
        let env = TestEnv::new();
        let part = env.poolset("p.set", &[POOL], false).remove(0);
        let wrapper = env.path("rpmemd-tee");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# rpmemd, its stdout (the out-of-band answers) copied to oob.out\n\
                 '{}' -c '{}' | tee '{}'\n",
                rpmemd_bin().display(),
                env.path("rpmemd.conf").display(),
                env.path("oob.out").display()
            ),
        )
        .expect("wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
        let proxy = Proxy::start(env.path("rpmemd.log"), shed);
        let hook = proxy.addr.to_string();
        let opts = Options::from_lookup(|n| (n == "RPMEM_DATA_ADDR").then(|| hook.clone()))
            .expect("RPMEM_DATA_ADDR")
            .to_builder()
            .launch(Launch::Local)
            .command(wrapper.display().to_string())
            .control_timeout(CONTROL_TIMEOUT)
            .data_timeout(Duration::from_secs(5))
            .build();
        let region = region(POOL);
        let pool = RemotePool::create(
            "localhost",
            "p.set",
            Arc::clone(&region),
            nlanes,
            Some(&attr(1)),
            &opts,
        )
        .unwrap_or_else(|e| panic!("create through the proxy: {e}\nrpmemd log:\n{}", env.log()));
        Session {
            env,
            proxy,
            part,
            region,
            pool: Some(pool),
        }
    }

    fn pool(&self) -> &RemotePool {
        self.pool.as_ref().expect("open")
    }

    /// The session secret, from rpmemd's CREATE answer in `oob.out`.
    fn secret(&self) -> [u8; 32] {
        let out = fs::read(self.env.path("oob.out")).expect("oob.out");
        let mut client = Client::new();
        let (used, event) = client.handle_input(&out).expect("status word");
        assert_eq!(event, Some(ClientEvent::Ready));
        let desc = PoolDesc::from_text("p.set").expect("pool desc");
        let request = CreateRequest {
            pool_size: POOL,
            nlanes: 2,
            provider: Provider::TCP,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: desc,
        };
        client.send_create(&request).expect("create state");
        match client.handle_input(&out[used..]) {
            Ok((_, Some(ClientEvent::Created(r)))) => r.ext.expect("our extension").secret,
            other => panic!("rpmemd's CREATE answer in oob.out: {other:?}"),
        }
    }

    /// Bytes of the part file (rpmemd's view of the pool) at `off`.
    fn on_target(&self, off: u64, len: usize) -> Vec<u8> {
        TestEnv::file_bytes(&self.part, off, len)
    }
}

fn block(seed: u8) -> Vec<u8> {
    PAYLOAD
        .iter()
        .map(|b| b ^ seed)
        .cycle()
        .take(4096)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Baseline, through the proxy untouched: persists land.
#[test]
fn through_the_proxy_untouched_persists_land() {
    let s = Session::start(2);
    for lane in 0..2u32 {
        let off = 4096 * (1 + u64::from(lane));
        put(&s.region, off, &block(0));
        s.pool()
            .persist(lane, off, 4096, 0)
            .expect("persist through the proxy");
        assert_eq!(s.on_target(off, 4096), block(0));
    }
    assert!(
        !s.proxy.captured().is_empty(),
        "the lanes went through the proxy"
    );
}

/// Issue 15: a lane whose connection is closed before rpmemd says anything
/// (as rpmemd sheds connections waiting for their hello in a flood) is
/// tried again within the connect timeout, and its persists land.
#[test]
fn lanes_closed_before_the_handshake_are_tried_again() {
    let s = Session::start_shedding(2, 3);
    for lane in 0..2u32 {
        let off = 4096 * (1 + u64::from(lane));
        put(&s.region, off, &block(3));
        s.pool()
            .persist(lane, off, 4096, 0)
            .unwrap_or_else(|e| panic!("persist on lane {lane} after shed connections: {e}"));
        assert_eq!(s.on_target(off, 4096), block(3));
    }
    assert_eq!(
        s.proxy.shed.load(Ordering::SeqCst),
        0,
        "the proxy closed all three connections it was to close"
    );
}

#[test]
fn eavesdropper_sees_neither_secret_nor_payload() {
    let mut s = Session::start(2);
    for lane in 0..2u32 {
        let off = 4096 * (1 + u64::from(lane));
        put(&s.region, off, &block(0));
        s.pool().persist(lane, off, 4096, 0).expect("persist");
    }
    s.pool.take().expect("open").close().expect("close");
    let secret = s.secret();
    let bytes = s.proxy.captured();
    assert!(bytes.len() > 8192, "{} bytes captured", bytes.len());
    assert!(
        !contains(&bytes, &secret),
        "the session secret crossed the data path in the clear"
    );
    assert!(
        !contains(&bytes, &PAYLOAD[..32]),
        "the payload pattern crossed the data path in the clear"
    );
}

#[test]
fn one_flipped_bit_fails_the_persist_and_writes_nothing() {
    let s = Session::start(1);
    put(&s.region, 4096, &block(0));
    s.pool().persist(0, 4096, 4096, 0).expect("first persist");
    let before = s.on_target(8192, 4096);
    put(&s.region, 8192, &block(0x55));
    s.proxy.set(Mode::Flip);
    let r = s.pool().persist(0, 8192, 4096, 0);
    assert!(
        r.is_err(),
        "a persist whose bytes were changed on the way succeeded"
    );
    // Whatever rpmemd still does with the connection, nothing of it lands.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.on_target(8192, 4096),
        before,
        "the pool holds bytes of the tampered persist"
    );
}

#[test]
fn a_forged_durable_answer_does_not_make_a_persist_succeed() {
    let s = Session::start(1);
    put(&s.region, 4096, &block(0));
    s.pool().persist(0, 4096, 4096, 0).expect("first persist");
    put(&s.region, 8192, &block(0x33));
    s.proxy.set(Mode::Forge);
    let r = s.pool().persist(0, 8192, 4096, 0);
    assert!(
        s.proxy.tap.lock().unwrap().forged,
        "the proxy forged no answer"
    );
    assert!(
        r.is_err(),
        "the proxy's answer made a persist that never reached rpmemd succeed"
    );
    assert_ne!(s.on_target(8192, 4096), block(0x33));
}
