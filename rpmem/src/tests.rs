//! The whole client (session, lanes, region, errors) against an in-process
//! rpmemd built from the core's machines: `oob::Server` on a socket pair
//! and the core's `StreamTarget` per TCP lane over shared memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rpmem_core::flush::{FlushError, FlushMode, FlushOps};
use rpmem_core::oob::{Limits, Server, ServerEvent};
use rpmem_core::persist::{
    execute, Method, Next, StreamTarget, Target as CoreTarget, TargetMemory, TargetParams,
};
use rpmem_core::wire::oob::{ExtRepr, IbcRepr, PersistMethod, Status};
use rpmem_core::PoolAttr;

use crate::launch::Remote;
use crate::pool::Request;
use crate::{Error, Launch, Options, Region, RemotePool, FLUSH_RELAXED, PERSIST_RELAXED};

/// What the fake rpmemd does wrong, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Start-up status word holds this errno.
    StartupErrno(u32),
    /// CREATE / OPEN answered with this status.
    Refuse(Status),
    /// The lane servers stop answering (but keep the connections).
    Stall,
    /// Lane connections are closed after this many frames in total.
    DropAfterFrames(usize),
    /// The out-of-band thread exits (closing the channel) after the
    /// response to CREATE / OPEN, and the lanes stop answering.
    ExitAfterOpen,
    /// The hello is checked against another secret.
    WrongSecret,
}

/// The target's pool memory.
#[derive(Clone)]
struct Mem(Arc<Mutex<Vec<u8>>>);

struct MemView<'a>(&'a mut Vec<u8>);

impl FlushOps for MemView<'_> {
    fn flush_line(&mut self, _offset: u64) {}
    fn fence(&mut self) {}
    fn msync(&mut self, _offset: u64, _len: u64) -> Result<(), FlushError> {
        Ok(())
    }
}

impl TargetMemory for MemView<'_> {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        let at = offset as usize;
        self.0[at..at + data.len()].copy_from_slice(data);
    }
}

struct Fake {
    mem: Mem,
    attr: Arc<Mutex<PoolAttr>>,
    frames: Arc<AtomicUsize>,
}

impl Fake {
    fn new(size: usize) -> Fake {
        Fake {
            mem: Mem(Arc::new(Mutex::new(vec![0u8; size]))),
            attr: Arc::new(Mutex::new(PoolAttr::ZERO)),
            frames: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn bytes(&self, at: usize, len: usize) -> Vec<u8> {
        self.mem.0.lock().unwrap()[at..at + len].to_vec()
    }

    /// Starts the out-of-band server thread; returns the client's Remote.
    fn start(&self, fault: Fault, max_lanes: u32) -> Remote {
        let (in_ours, mut in_theirs) = UnixStream::pair().unwrap();
        let (out_ours, mut out_theirs) = UnixStream::pair().unwrap();
        let (err_read, mut err_write) = UnixStream::pair().unwrap();
        let mem = self.mem.clone();
        let attr = Arc::clone(&self.attr);
        let frames = Arc::clone(&self.frames);
        thread::spawn(move || {
            let mut server = Server::new(Limits::default());
            let word = match fault {
                Fault::StartupErrno(e) => {
                    let _ = writeln!(err_write, "rpmemd: cannot read the pool set directory");
                    Server::failure_word(std::num::NonZeroU32::new(e).unwrap())
                }
                _ => server.startup_status(Ok(())).unwrap(),
            };
            out_theirs.write_all(&word).unwrap();
            if matches!(fault, Fault::StartupErrno(_)) {
                return;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = match in_theirs.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    let (used, event) = match server.handle_input(&buf) {
                        Ok(x) => x,
                        Err(_) => {
                            if let Some(r) = server.reject_response() {
                                let _ = out_theirs.write_all(r);
                            }
                            return;
                        }
                    };
                    let event = event.map(|e| match e {
                        ServerEvent::Create { common, attr, .. } => {
                            (1, common.nlanes, common.buff_size, attr, 0)
                        }
                        ServerEvent::Open { common, .. } => {
                            (2, common.nlanes, common.buff_size, PoolAttr::ZERO, 0)
                        }
                        ServerEvent::SetAttr { attr } => (3, 0, 0, attr, 0),
                        ServerEvent::Close { flags } => (4, 0, 0, PoolAttr::ZERO, flags),
                    });
                    buf.drain(..used);
                    let Some((kind, nlanes, buff_size, new_attr, _flags)) = event else {
                        if used == 0 || buf.is_empty() {
                            break;
                        }
                        continue;
                    };
                    match kind {
                        1 | 2 => {
                            if let Fault::Refuse(st) = fault {
                                let bytes = if kind == 1 {
                                    server.respond_create(st, None).unwrap().to_vec()
                                } else {
                                    server.respond_open(st, None).unwrap().to_vec()
                                };
                                let _ = writeln!(err_write, "rpmemd: pool set is not there");
                                out_theirs.write_all(&bytes).unwrap();
                                return;
                            }
                            if kind == 1 {
                                *attr.lock().unwrap() = new_attr;
                            }
                            let stored = *attr.lock().unwrap();
                            let nl = nlanes.min(max_lanes);
                            let secret = [7u8; 32];
                            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                            let port = listener.local_addr().unwrap().port();
                            let pool_size = mem.0.lock().unwrap().len() as u64;
                            let target = CoreTarget::new(TargetParams {
                                nlanes: nl,
                                pool_size,
                                min_offset: if stored.is_zero() { 0 } else { 4096 },
                                inline_max: buff_size,
                                flush_mode: FlushMode::Cpu,
                                method: Method::Gpspm,
                            })
                            .unwrap();
                            let check = if fault == Fault::WrongSecret {
                                [8u8; 32]
                            } else {
                                secret
                            };
                            let mem2 = mem.clone();
                            let frames2 = Arc::clone(&frames);
                            thread::spawn(move || {
                                for conn in listener.incoming().take(nl as usize) {
                                    let Ok(conn) = conn else { return };
                                    let mem = mem2.clone();
                                    let frames = Arc::clone(&frames2);
                                    thread::spawn(move || {
                                        serve_lane(conn, target, check, mem, fault, frames)
                                    });
                                }
                            });
                            let ibc = IbcRepr {
                                port: u32::from(port),
                                persist_method: PersistMethod::GPSPM,
                                rkey: 0,
                                raddr: 0,
                                nlanes: nl,
                            };
                            let ext = ExtRepr {
                                secret,
                                flags: 0,
                                max_inline: buff_size as u32,
                            };
                            let bytes = if kind == 1 {
                                server
                                    .respond_create(Status::Success, Some((ibc, Some(ext))))
                                    .unwrap()
                                    .to_vec()
                            } else {
                                server
                                    .respond_open(Status::Success, Some((ibc, stored, Some(ext))))
                                    .unwrap()
                                    .to_vec()
                            };
                            out_theirs.write_all(&bytes).unwrap();
                            if fault == Fault::ExitAfterOpen {
                                let _ = writeln!(err_write, "rpmemd: something broke");
                                return;
                            }
                        }
                        3 => {
                            *attr.lock().unwrap() = new_attr;
                            let bytes = server.respond_set_attr(Status::Success).unwrap().to_vec();
                            out_theirs.write_all(&bytes).unwrap();
                        }
                        _ => {
                            let bytes = server.respond_close(Status::Success).unwrap().to_vec();
                            out_theirs.write_all(&bytes).unwrap();
                            return;
                        }
                    }
                }
            }
        });
        Remote::in_process(in_ours, out_ours, Box::new(err_read)).unwrap()
    }
}

fn read_exact_or_eof(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    s.read_exact(buf).is_ok()
}

/// A sealed lane's record layer (rpmem seals every lane by default).
type Records = Option<(rpmem_core::seal::Sealer, rpmem_core::seal::Inbound<Vec<u8>>)>;

/// Reads `buf` whole: opened from records once the lane is sealed.
fn read_lane(s: &mut TcpStream, rec: &mut Records, buf: &mut [u8]) -> bool {
    let Some((_, inbound)) = rec.as_mut() else {
        return read_exact_or_eof(s, buf);
    };
    let mut done = 0;
    while done < buf.len() {
        match inbound.open_next() {
            Ok(true) => {
                let n = inbound.plaintext().len().min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&inbound.plaintext()[..n]);
                inbound.consume(n);
                done += n;
            }
            Ok(false) => match s.read(inbound.space()) {
                Ok(0) | Err(_) => return false,
                Ok(n) => inbound.received(n),
            },
            Err(_) => return false,
        }
    }
    true
}

/// Writes `bytes`: sealed into records once the lane is sealed.
fn write_lane(s: &mut TcpStream, rec: &mut Records, bytes: &[u8]) -> bool {
    let Some((sealer, _)) = rec.as_mut() else {
        return s.write_all(bytes).is_ok();
    };
    for chunk in bytes.chunks(rpmem_core::seal::MAX_RECORD) {
        let mut out = vec![0u8; chunk.len() + 20];
        sealer.seal_from(chunk, &mut out).unwrap();
        if s.write_all(&out).is_err() {
            return false;
        }
    }
    true
}

/// One lane of the fake rpmemd: the core's `StreamTarget` driven with
/// blocking I/O (bodies received whole, nothing streamed or held).
fn serve_lane(
    mut conn: TcpStream,
    target: CoreTarget,
    secret: [u8; 32],
    mem: Mem,
    fault: Fault,
    frames: Arc<AtomicUsize>,
) {
    let mut lane = StreamTarget::new(
        target,
        secret,
        [0x3c; 32],
        rpmem_core::seal::LaneMode::Sealed,
        false,
        0,
        false,
    );
    let mut rec: Records = None;
    let mut keys = None;
    loop {
        match lane.poll() {
            Next::Recv { len } => {
                let mut buf = vec![0u8; len];
                if !read_lane(&mut conn, &mut rec, &mut buf) {
                    return;
                }
                if lane.lane().is_some() {
                    let n = frames.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Fault::DropAfterFrames(limit) = fault {
                        if n > limit {
                            return;
                        }
                    }
                }
                // A refused hello gets no answer here: the connection closes.
                if lane.handle_bytes(&buf).is_err() {
                    return;
                }
            }
            Next::Claim { .. } => {
                lane.on_claim(Ok(())).unwrap();
                keys = lane.take_keys();
            }
            Next::Send { bytes, .. } => {
                if !write_lane(&mut conn, &mut rec, bytes) {
                    return;
                }
                lane.on_sent();
                // After the hello's answer (in the clear): records.
                if let Some(k) = keys.take() {
                    let (sealer, opener) = k.server().unwrap();
                    let inbound = rpmem_core::seal::Inbound::new(
                        opener,
                        vec![0u8; rpmem_core::seal::INBOUND_BUF_LEN],
                    )
                    .unwrap();
                    rec = Some((sealer, inbound));
                }
            }
            Next::FlushHeld => lane.on_sent(),
            Next::SendPool {
                header,
                offset,
                len,
            } => {
                let mut out = header.to_vec();
                out.extend_from_slice(
                    &mem.0.lock().unwrap()[offset as usize..(offset + len) as usize],
                );
                if !write_lane(&mut conn, &mut rec, &out) {
                    return;
                }
                lane.on_sent();
            }
            Next::Body(piece) => {
                let mut data = vec![0u8; piece.len as usize];
                if !read_lane(&mut conn, &mut rec, &mut data) {
                    return;
                }
                let at = piece.offset as usize;
                mem.0.lock().unwrap()[at..at + data.len()].copy_from_slice(&data);
                lane.on_stored().unwrap();
            }
            Next::WriteBack { .. } => lane.on_written_back(),
            Next::Msg { len } => {
                let mut data = vec![0u8; len];
                if !read_lane(&mut conn, &mut rec, &mut data) {
                    return;
                }
                let Ok(plan) = lane.on_msg(&data) else {
                    return;
                };
                let resp = {
                    let mut m = mem.0.lock().unwrap();
                    execute(&plan, &mut MemView(&mut m)).unwrap().unwrap()
                };
                if fault == Fault::Stall || fault == Fault::ExitAfterOpen {
                    thread::sleep(Duration::from_secs(60));
                    return;
                }
                lane.on_answer(resp, false).unwrap();
            }
            Next::Closed => return,
        }
    }
}

fn opts() -> Options {
    Options::builder()
        .launch(Launch::Local)
        .control_timeout(Duration::from_secs(10))
        .data_timeout(Duration::from_secs(10))
        .build()
}

fn region(pages: usize) -> Arc<Region> {
    Arc::new(Region::new(pages * Region::page_size()).unwrap())
}

fn open_fake(
    fake: &Fake,
    fault: Fault,
    region: &Arc<Region>,
    nlanes: u32,
    attr: Option<PoolAttr>,
    o: &Options,
) -> Result<RemotePool, Error> {
    let remote = fake.start(fault, 4);
    let target = crate::Target::parse("localhost").unwrap();
    let desc = rpmem_core::wire::oob::PoolDesc::from_text("pool.set").unwrap();
    let req = Request {
        target: "localhost",
        pool_set: "pool.set",
        region: Arc::clone(region),
        nlanes,
        opts: o,
    };
    RemotePool::establish(
        remote,
        target,
        desc,
        req,
        Some(attr.unwrap_or(PoolAttr::ZERO)),
    )
}

fn sample_attr() -> PoolAttr {
    PoolAttr {
        signature: *b"PMEMOBJ\0",
        major: 6,
        user_flags: [3; 16],
        ..PoolAttr::ZERO
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn persist_flush_drain_read_round_trip_nohdrs() {
    let size = 64 * Region::page_size();
    let fake = Fake::new(size);
    let r = region(64);
    let pool = open_fake(&fake, Fault::None, &r, 8, None, &opts()).expect("create");
    assert_eq!(pool.nlanes(), 4);
    assert!(!pool.has_headers());
    assert_eq!(pool.persist_method(), Method::Gpspm);

    // 1 byte at offset 0 (no headers: allowed), unaligned, 4 KiB, and
    // more than the inline buffer.
    let cases: [(u64, usize); 5] = [
        (0, 1),
        (4097, 13),
        (8192, 4096),
        (20000, 100_000),
        (3, 8191),
    ];
    for (i, (off, len)) in cases.iter().enumerate() {
        let data = pattern(*len, i as u8);
        r.write_at(*off as usize, &data).unwrap();
        pool.persist(0, *off, *len as u64, 0).expect("persist");
        assert_eq!(fake.bytes(*off as usize, *len), data, "case {i}");
    }
    // Relaxed persist, flush + drain, deep persist.
    let data = pattern(200_000, 9);
    r.write_at(40_000, &data).unwrap();
    pool.persist(1, 40_000, 200_000, PERSIST_RELAXED)
        .expect("relaxed");
    assert_eq!(fake.bytes(40_000, 200_000), data);
    let mut lane = pool.lane(2).expect("lane");
    for k in 0..20u64 {
        r.write_at((k * 1000) as usize, &[k as u8 + 1; 10]).unwrap();
        lane.flush(k * 1000, 10, FLUSH_RELAXED).expect("flush");
    }
    lane.flush(100_000, 5000, 0).expect("inline flush");
    lane.drain(0).expect("drain");
    for k in 0..20u64 {
        assert_eq!(fake.bytes((k * 1000) as usize, 10), vec![k as u8 + 1; 10]);
    }
    lane.deep_persist(0, 4096).expect("deep");
    // Read back into a buffer and into the region.
    let mut back = vec![0u8; 200_000];
    lane.read(40_000, &mut back).expect("read");
    assert_eq!(back, data);
    r.fill(40_000, 200_000, 0).unwrap();
    lane.read_to_region(40_000, 200_000)
        .expect("read to region");
    let mut back2 = vec![0u8; 200_000];
    r.read_at(40_000, &mut back2).unwrap();
    assert_eq!(back2, data);
    drop(lane);
    pool.close().expect("close");
}

#[test]
fn argument_errors_leave_the_lane_usable() {
    let size = 16 * Region::page_size();
    let fake = Fake::new(size);
    let r = region(16);
    let pool = open_fake(&fake, Fault::None, &r, 2, Some(sample_attr()), &opts()).expect("create");
    assert!(pool.has_headers());
    assert_eq!(pool.attr(), Some(&sample_attr()));
    let mut lane = pool.lane(0).unwrap();
    type Call<'a> = Box<dyn Fn(&mut crate::Lane<'_>) -> Result<(), Error> + 'a>;
    let bad: Vec<Call> = vec![
        Box::new(|l| l.persist(0, 8, 0)),                   // header
        Box::new(|l| l.persist(4096, 8, 2)),                // flags
        Box::new(|l| l.persist(4096, size as u64, 0)),      // out of pool
        Box::new(|l| l.persist(u64::MAX - 1, 8, 0)),        // overflow
        Box::new(|l| l.flush(4096, 8, 4)),                  // flags
        Box::new(|l| l.drain(1)),                           // flags
        Box::new(|l| l.deep_persist(100, 8)),               // header
        Box::new(|l| l.read(size as u64, &mut [0u8; 1])),   // out of pool
        Box::new(|l| l.read_to_region(size as u64 - 1, 2)), // out of pool
    ];
    for (i, call) in bad.iter().enumerate() {
        let e = call(&mut lane).expect_err("refused");
        assert!(matches!(e, Error::Call { lane: 0, .. }), "case {i}: {e}");
        assert!(!e.is_fatal());
        assert_eq!(e.errno(), libc::EINVAL);
        // Still usable.
        r.write_at(4096 + i, &[i as u8 + 1]).unwrap();
        lane.persist(4096 + i as u64, 1, 0).expect("usable");
        assert_eq!(fake.bytes(4096 + i, 1), [i as u8 + 1]);
    }
    // Reading the header is allowed.
    let mut hdr = [0u8; 8];
    lane.read(0, &mut hdr).expect("header readable");
    assert!(matches!(
        pool.persist(9, 4096, 1, 0),
        Err(Error::NoSuchLane { lane: 9, nlanes: 2 })
    ));
    assert!(matches!(
        pool.persist(0, 4096, 1, 0),
        Err(Error::LaneInUse { lane: 0 })
    ));
    assert!(matches!(pool.lane(0), Err(Error::LaneInUse { lane: 0 })));
    drop(lane);
    pool.persist(0, 4096, 1, 0).expect("lane back in the pool");
    pool.close().expect("close");
}

#[test]
fn set_attr_and_reopen_see_the_attributes() {
    let size = 16 * Region::page_size();
    let fake = Fake::new(size);
    let r = region(16);
    let pool = open_fake(&fake, Fault::None, &r, 1, Some(sample_attr()), &opts()).expect("create");
    let mut new = sample_attr();
    new.major = 7;
    pool.set_attr(Some(&new)).expect("set_attr");
    pool.close().expect("close");
    assert_eq!(*fake.attr.lock().unwrap(), new);
}

#[test]
fn lanes_from_many_threads_at_once() {
    let page = Region::page_size();
    let size = 256 * page;
    let fake = Fake::new(size);
    let r = region(256);
    let pool = open_fake(&fake, Fault::None, &r, 4, None, &opts()).expect("create");
    let lanes = pool.lanes().expect("all lanes");
    assert_eq!(lanes.len(), 4);
    thread::scope(|s| {
        for mut lane in lanes {
            let r = Arc::clone(&r);
            s.spawn(move || {
                let base = lane.index() as usize * 64 * page;
                for round in 0..50usize {
                    let off = base + (round * 997) % (60 * page);
                    let data = pattern(3000, round as u8 ^ lane.index() as u8);
                    r.write_at(off, &data).unwrap();
                    let flags = if round.is_multiple_of(2) {
                        0
                    } else {
                        PERSIST_RELAXED
                    };
                    lane.persist(off as u64, 3000, flags).expect("persist");
                }
            });
        }
    });
    let mut local = vec![0u8; size];
    r.read_at(0, &mut local).unwrap();
    assert_eq!(fake.bytes(0, size), local);
    // The convenience calls lock per lane, also from many threads.
    thread::scope(|s| {
        for t in 0..8u32 {
            let pool = &pool;
            s.spawn(move || {
                for k in 0..20u64 {
                    pool.persist(t % 4, u64::from(t) * 4096 + k, 1, 0)
                        .expect("persist");
                }
            });
        }
    });
    pool.close().expect("close");
}

#[test]
fn refused_create_carries_rpmemds_words() {
    let fake = Fake::new(4 * Region::page_size());
    let r = region(4);
    let e = open_fake(&fake, Fault::Refuse(Status::NoExist), &r, 1, None, &opts())
        .expect_err("refused");
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            Error::Refused {
                status: Status::NoExist,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("pool set is not there"), "{msg}");
    assert!(msg.contains("RPMEM_ERR_NOEXIST"), "{msg}");
    assert_eq!(e.errno(), libc::ENOENT);
}

#[test]
fn startup_failure_carries_rpmemds_words() {
    let fake = Fake::new(4 * Region::page_size());
    let r = region(4);
    let e = open_fake(&fake, Fault::StartupErrno(13), &r, 1, None, &opts()).expect_err("startup");
    let msg = e.to_string();
    assert!(matches!(e, Error::Startup { .. }), "{msg}");
    assert!(msg.contains("cannot read the pool set directory"), "{msg}");
    assert_eq!(e.errno(), 13);
}

#[test]
fn wrong_secret_fails_the_servers_proof() {
    let fake = Fake::new(4 * Region::page_size());
    let r = region(4);
    let e = open_fake(&fake, Fault::WrongSecret, &r, 1, None, &opts()).expect_err("denied");
    // The server proves it knows the key first: the client names that
    // proof, and sends nothing else.
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("proof does not verify"), "{e}");
    assert!(fake.bytes(0, 4096).iter().all(|&b| b == 0));
}

#[test]
fn stalled_target_times_out_and_breaks_only_that_lane() {
    let fake = Fake::new(16 * Region::page_size());
    let r = region(16);
    let o = opts()
        .to_builder()
        .data_timeout(Duration::from_millis(300))
        .build();
    let pool = open_fake(&fake, Fault::Stall, &r, 2, None, &o).expect("create");
    let start = Instant::now();
    let e = pool.persist(0, 0, 8, 0).expect_err("stall");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("lane 0"), "{e}");
    let e2 = pool.persist(0, 0, 8, 0).expect_err("broken");
    assert!(matches!(e2, Error::LaneBroken { lane: 0, .. }), "{e2}");
    drop(pool);
}

#[test]
fn connection_drop_mid_persist_is_an_error_naming_the_cause() {
    let fake = Fake::new(64 * Region::page_size());
    let r = region(64);
    let pool = open_fake(&fake, Fault::DropAfterFrames(3), &r, 1, None, &opts()).expect("create");
    let start = Instant::now();
    let mut failed = None;
    for k in 0..10u64 {
        if let Err(e) = pool.persist(0, k * 8192, 8192, 0) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("a persist fails");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, Error::Connection { lane: 0, .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("closed the data connection") || msg.contains("reset by peer"),
        "{msg}"
    );
}

#[test]
fn channel_hangup_fails_a_waiting_call() {
    let fake = Fake::new(16 * Region::page_size());
    let r = region(16);
    let o = opts()
        .to_builder()
        .data_timeout(Duration::from_secs(20))
        .build();
    // The out-of-band thread exits after OPEN; lanes stall: the waiting call
    // must notice the hang-up long before the data deadline.
    let remote = fake.start(Fault::ExitAfterOpen, 4);
    let target = crate::Target::parse("localhost").unwrap();
    let desc = rpmem_core::wire::oob::PoolDesc::from_text("pool.set").unwrap();
    let req = Request {
        target: "localhost",
        pool_set: "pool.set",
        region: Arc::clone(&r),
        nlanes: 1,
        opts: &o,
    };
    let pool =
        RemotePool::establish(remote, target, desc, req, Some(PoolAttr::ZERO)).expect("create");
    let start = Instant::now();
    let e = pool.persist(0, 0, 8, 0).expect_err("rpmemd gone");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    assert!(e.to_string().contains("something broke"), "{e}");
    let e = pool.close().expect_err("channel gone");
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
}

#[test]
fn invalid_create_arguments() {
    let r = region(1);
    let o = opts();
    let e = RemotePool::create("localhost", "pool.set", Arc::clone(&r), 0, None, &o)
        .expect_err("0 lanes");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e =
        RemotePool::create("", "pool.set", Arc::clone(&r), 1, None, &o).expect_err("bad target");
    assert!(matches!(e, Error::InvalidTarget { .. }));
    let e = RemotePool::create("example.com", "pool.set", Arc::clone(&r), 1, None, &o)
        .expect_err("not loopback");
    assert!(e.to_string().contains("loopback"), "{e}");
    let e = RemotePool::open("localhost", "", Arc::clone(&r), 1, &o).expect_err("empty name");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = crate::remove("localhost", "p.set", 4, &o).expect_err("bad flags");
    assert!(e.to_string().contains("flags"), "{e}");
    let bad_cmd = o.to_builder().command("/nonexistent/rpmemd").build();
    let e =
        RemotePool::open("localhost", "p.set", Arc::clone(&r), 1, &bad_cmd).expect_err("no rpmemd");
    assert!(matches!(e, Error::Launch { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/rpmemd"), "{e}");
}

#[test]
fn remove_reports_exit_status_and_stderr() {
    // `ls --remove p.set` fails with a message on stderr.
    let o = opts().to_builder().command("ls").build();
    let e = crate::remove("localhost", "p.set", 0, &o).expect_err("fails");
    assert!(matches!(e, Error::RemoveFailed { code: 2, .. }), "{e}");
    assert!(e.to_string().contains("--remove"), "{e}");
    let ok = opts().to_builder().command("true").build();
    crate::remove(
        "localhost",
        "p.set",
        crate::REMOVE_FORCE | crate::REMOVE_POOL_SET,
        &ok,
    )
    .expect("true succeeds");
}

#[test]
fn plaintext_lanes_need_both_sides() {
    use crate::pool::tcp_lane_mode;
    use rpmem_core::seal::LaneMode;
    use rpmem_core::wire::oob::ext_flags::{PLAINTEXT, PMEM};
    assert_eq!(tcp_lane_mode("h", PMEM, false).unwrap(), LaneMode::Sealed);
    assert_eq!(
        tcp_lane_mode("h", PLAINTEXT | PMEM, true).unwrap(),
        LaneMode::Plaintext
    );
    let e = tcp_lane_mode("h", PLAINTEXT, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused by the client"), "{e}");
    let e = tcp_lane_mode("h", 0, true).unwrap_err().to_string();
    assert!(e.contains("refused by rpmemd's configuration"), "{e}");
}
