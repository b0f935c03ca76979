//! loom models of the initiator's lane handling: the production
//! [`RemotePool`] (its per-lane slots are `rpmem`'s sync facade, loom's
//! `Mutex` in this build), [`rpmem::Lane`] handles and the production lane
//! connections, talking real TCP to a small data-path server run by the test.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release -p rpmem --test loom`.
//!
//! How this works, and its limits: loom runs the model's threads one at a
//! time on one OS thread and switches only at loom operations (here: taking
//! and releasing a lane slot, the test's own atomics, spawn and join). A
//! lane's socket I/O therefore runs as one step between two switches, and
//! the answers come from the fake rpmemd below, which runs on ordinary OS
//! threads outside the model. loom explores every order of the lane-slot
//! operations (take, give back, lock for a numbered call, close) across the
//! threads; it does not interleave two lanes' I/O. `docs/loom.md` lists what
//! each model checks.
#![cfg(loom)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread::JoinHandle;
use rpmem::{Error, Method, Options, Region, RemotePool};
use rpmem_core::flush::{FlushError, FlushMode, FlushOps};
use rpmem_core::persist::{execute, Next, StreamTarget, Target, TargetMemory, TargetParams};
use rpmem_core::wire::tcp::SECRET_LEN;

/// Preemption bound unless `LOOM_MAX_PREEMPTIONS` sets one: none. These
/// models have few loom operations, so loom explores every interleaving of
/// them (a few thousand executions, seconds).
const DEFAULT_PREEMPTIONS: Option<usize> = None;
/// Lanes of every model pool.
const NLANES: u32 = 2;
/// Size of the pool (one page).
const POOL_SIZE: usize = 4096;
/// Bytes of every persist.
const LEN: u64 = 64;
/// A persist at this offset makes the fake rpmemd die instead of answering.
const KILL_AT: u64 = 3584;
/// The data-path deadline of the model pools: far longer than any answer
/// takes, so that a call that ends with `Error::Timeout` was stuck.
const STALL: Duration = Duration::from_secs(5);
/// Stack of every model thread, in machine words (loom's generators count
/// words): lane I/O needs more than loom's 32 KiB default.
const STACK_WORDS: usize = 64 * 1024;

/// Runs `f` under loom with [`DEFAULT_PREEMPTIONS`]; returns how many
/// executions were explored (counted outside the model).
fn model<F>(f: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = DEFAULT_PREEMPTIONS;
    }
    let counter = std::sync::Arc::clone(&runs);
    let f = std::sync::Arc::new(f);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The body runs on a model thread with a large stack.
        let f = std::sync::Arc::clone(&f);
        spawn(move || f())
            .join()
            .expect("the model body does not panic");
    });
    let runs = runs.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("explored {runs} executions");
    runs
}

/// Spawns a model thread with [`STACK_WORDS`] of stack.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(STACK_WORDS)
        .spawn(f)
        .expect("loom spawns threads")
}

// ---------------------------------------------------------------------------
// The fake rpmemd: the data path of one session on ordinary OS threads.
// ---------------------------------------------------------------------------

/// How the fake rpmemd dies when it receives a persist at [`KILL_AT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Death {
    /// rpmemd crashes: every lane connection is closed, its stdout too.
    Crash,
    /// The ssh connection to rpmemd dies (its stdout hangs up) while rpmemd
    /// itself stops answering but keeps the lane sockets open.
    Hang,
}

/// State shared by the fake rpmemd's threads and the test.
#[derive(Debug)]
struct Served {
    /// The pool: what persists made "durable".
    pool: std::sync::Mutex<Vec<u8>>,
    /// The server ends of the lane connections (so that a crash closes all).
    conns: std::sync::Mutex<Vec<TcpStream>>,
    /// Connections that ended because the client closed them.
    ended: std::sync::Mutex<usize>,
    ended_cv: std::sync::Condvar,
    /// rpmemd's end of its "stdout" (the initiator watches the other end).
    stdout: std::sync::Mutex<Option<UnixStream>>,
    dead: std::sync::atomic::AtomicBool,
    death: Death,
}

impl Served {
    fn die(&self) {
        self.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        *self.stdout.lock().expect("not poisoned") = None;
        if self.death == Death::Crash {
            for c in self.conns.lock().expect("not poisoned").iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    fn is_dead(&self) -> bool {
        self.dead.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn bytes(&self, offset: u64, len: u64) -> Vec<u8> {
        let pool = self.pool.lock().expect("not poisoned");
        let (at, len) = (offset as usize, len as usize);
        pool[at..at + len].to_vec()
    }
}

/// The pool as the core's target engine sees it.
struct Memory<'a>(&'a Served);

impl FlushOps for Memory<'_> {
    fn flush_line(&mut self, _offset: u64) {}
    fn fence(&mut self) {}
    fn msync(&mut self, _offset: u64, _len: u64) -> Result<(), FlushError> {
        Ok(())
    }
}

impl TargetMemory for Memory<'_> {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        let mut pool = self.0.pool.lock().expect("not poisoned");
        let at = offset as usize;
        pool[at..at + data.len()].copy_from_slice(data);
    }
}

/// One session of the fake rpmemd.
struct FakeRpmemd {
    addr: SocketAddr,
    secret: [u8; SECRET_LEN],
    /// The initiator's end of rpmemd's stdout.
    watch: UnixStream,
    served: std::sync::Arc<Served>,
}

impl FakeRpmemd {
    /// Listens on loopback and serves [`NLANES`] connections with the core's
    /// `StreamTarget`.
    fn start(death: Death) -> FakeRpmemd {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (watch, stdout) = UnixStream::pair().expect("socketpair");
        let secret = [0x5a; SECRET_LEN];
        let served = std::sync::Arc::new(Served {
            pool: std::sync::Mutex::new(vec![0; POOL_SIZE]),
            conns: std::sync::Mutex::new(Vec::new()),
            ended: std::sync::Mutex::new(0),
            ended_cv: std::sync::Condvar::new(),
            stdout: std::sync::Mutex::new(Some(stdout)),
            dead: std::sync::atomic::AtomicBool::new(false),
            death,
        });
        let target = Target::new(TargetParams {
            nlanes: NLANES,
            pool_size: POOL_SIZE as u64,
            min_offset: 0,
            inline_max: rpmem::DEFAULT_INLINE_SIZE,
            flush_mode: FlushMode::Cpu,
            method: Method::Gpspm,
        })
        .expect("valid target");
        let s = std::sync::Arc::clone(&served);
        std::thread::spawn(move || {
            for _ in 0..NLANES {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if let Ok(c) = stream.try_clone() {
                    s.conns.lock().expect("not poisoned").push(c);
                }
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || serve(stream, &s, target, &secret));
            }
        });
        FakeRpmemd {
            addr,
            secret,
            watch,
            served,
        }
    }

    /// The pool, connected with the production lane code.
    fn connect(&self, region: &std::sync::Arc<Region>) -> RemotePool {
        let opts = Options::builder()
            .spin(Duration::ZERO)
            .data_timeout(STALL)
            .control_timeout(STALL)
            .build();
        RemotePool::loom_connect(
            self.addr,
            self.secret,
            std::sync::Arc::clone(region),
            NLANES,
            Method::Gpspm,
            Some(self.watch.as_raw_fd()),
            &opts,
        )
        .expect("lanes connect to the fake rpmemd")
    }

    /// Waits until every lane connection was closed by the initiator.
    fn all_ended(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut ended = self.served.ended.lock().expect("not poisoned");
        while *ended < NLANES as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ended = self
                .served
                .ended_cv
                .wait_timeout(ended, left)
                .expect("not poisoned")
                .0;
        }
        true
    }
}

/// Serves one lane connection until the initiator closes it.
fn serve(mut sock: TcpStream, s: &Served, target: Target, secret: &[u8; SECRET_LEN]) {
    let _ = sock.set_nodelay(true);
    let clean = serve_frames(&mut sock, s, target, secret);
    if clean {
        *s.ended.lock().expect("not poisoned") += 1;
        s.ended_cv.notify_all();
    }
}

/// Reads exactly `buf.len()` bytes; `false` at end of stream or on error.
fn read_full(sock: &mut TcpStream, buf: &mut [u8]) -> bool {
    sock.read_exact(buf).is_ok()
}

/// After the fake rpmemd hung: answer nothing, wait for the initiator to
/// close. Returns true once it did.
fn wait_for_close(sock: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match sock.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The core's `StreamTarget` driven with blocking I/O (bodies received
/// whole, nothing streamed or held); returns whether the connection ended
/// because the initiator closed it (not because this server crashed or
/// failed).
fn serve_frames(
    sock: &mut TcpStream,
    s: &Served,
    target: Target,
    secret: &[u8; SECRET_LEN],
) -> bool {
    // Plaintext lanes after the handshake (`RemotePool::loom_connect`).
    let mut lane = StreamTarget::new(
        target,
        *secret,
        [0x21; 32],
        rpmem_core::seal::LaneMode::Plaintext,
        false,
        0,
        false,
    );
    let mut msg = Vec::new();
    loop {
        match lane.poll() {
            Next::Recv { len } if lane.lane().is_none() => {
                let mut hello = vec![0u8; len];
                if !read_full(sock, &mut hello) || lane.handle_bytes(&hello).is_err() {
                    return false;
                }
            }
            Next::Recv { len } => {
                // A frame header: end of stream before it is the initiator
                // closing the lane.
                let mut header = vec![0u8; len];
                match sock.read(&mut header[..1]) {
                    Ok(0) => return !s.is_dead() || s.death == Death::Hang,
                    Ok(_) => {}
                    Err(_) => return false,
                }
                if !read_full(sock, &mut header[1..]) {
                    return false;
                }
                if s.is_dead() {
                    return s.death == Death::Hang && wait_for_close(sock);
                }
                if lane.handle_bytes(&header).is_err() {
                    return false;
                }
            }
            Next::Claim { .. } => {
                if lane.on_claim(Ok(())).is_err() {
                    return false;
                }
            }
            Next::Send { bytes, .. } => {
                if sock.write_all(bytes).is_err() {
                    return false;
                }
                lane.on_sent();
            }
            Next::FlushHeld => lane.on_sent(),
            Next::SendPool {
                header,
                offset,
                len,
            } => {
                let body = s.bytes(offset, len);
                if sock.write_all(&header).is_err() || sock.write_all(&body).is_err() {
                    return false;
                }
                lane.on_sent();
            }
            Next::Body(piece) => {
                let mut body = vec![0u8; piece.len as usize];
                if !read_full(sock, &mut body) {
                    return false;
                }
                Memory(s).copy_in(piece.offset, &body);
                if lane.on_stored().is_err() {
                    return false;
                }
            }
            Next::WriteBack { .. } => lane.on_written_back(),
            Next::Msg { len } => {
                msg.resize(len, 0);
                if !read_full(sock, &mut msg) {
                    return false;
                }
                let Ok(plan) = lane.on_msg(&msg) else {
                    return false;
                };
                if plan.msg().offset == KILL_AT || s.is_dead() {
                    s.die();
                    return s.death == Death::Hang && wait_for_close(sock);
                }
                let Ok(resp) = execute(&plan, &mut Memory(s)) else {
                    return false;
                };
                let resp = resp.unwrap_or_else(|| plan.response());
                if lane.on_answer(resp, false).is_err() {
                    return false;
                }
            }
            Next::Closed => return false,
        }
    }
}

// ---------------------------------------------------------------------------
// The models.
// ---------------------------------------------------------------------------

/// One model execution's pool: a fresh fake rpmemd, region and pool.
struct Rig {
    rpmemd: FakeRpmemd,
    region: std::sync::Arc<Region>,
}

impl Rig {
    fn new(death: Death) -> (Rig, RemotePool) {
        let rpmemd = FakeRpmemd::start(death);
        let region = std::sync::Arc::new(Region::new(POOL_SIZE).expect("one page"));
        let pool = rpmemd.connect(&region);
        (Rig { rpmemd, region }, pool)
    }

    /// Fills `[offset, offset + LEN)` of the region with `byte`.
    fn fill(&self, offset: u64, byte: u8) {
        self.region
            .write_at(offset as usize, &[byte; LEN as usize])
            .expect("inside the region");
    }

    /// Whether the fake rpmemd holds `byte` in `[offset, offset + LEN)`.
    fn durable(&self, offset: u64, byte: u8) -> bool {
        self.rpmemd.served.bytes(offset, LEN) == [byte; LEN as usize]
    }
}

/// Model 1: concurrent persists on different lanes.
///
/// Thread A makes a numbered persist on lane 0; thread B takes lane 1 as a
/// `Lane` handle, persists and gives it back; the model's main thread makes
/// a numbered persist on lane 0 (racing A for the same lane) and then one on
/// lane 1 (racing B's handle). Checked in every order of the slot
/// operations: both numbered calls on lane 0 succeed (one waits for the
/// other, neither is refused), B's handle works, the numbered call on lane 1
/// either succeeds or is refused with `LaneInUse` (B holds the handle), every
/// successful persist is durable in the fake rpmemd, and afterwards every
/// lane is back in the pool (`lanes()` takes them all).
#[test]
fn concurrent_persists_on_different_lanes() {
    let runs = model(|| {
        let (rig, pool) = Rig::new(Death::Crash);
        let rig = Arc::new(rig);
        let pool = Arc::new(pool);

        let a = {
            let (rig, pool) = (Arc::clone(&rig), Arc::clone(&pool));
            spawn(move || {
                rig.fill(0, 0xa1);
                pool.persist(0, 0, LEN, 0)
            })
        };
        let b = {
            let (rig, pool) = (Arc::clone(&rig), Arc::clone(&pool));
            spawn(move || {
                let mut lane = pool.lane(1)?;
                rig.fill(1024, 0xb1);
                lane.persist(1024, LEN, 0)
            })
        };
        rig.fill(2048, 0xc1);
        rig.fill(3072, 0xc2);
        let main_lane0 = pool.persist(0, 2048, LEN, 0);
        let main_lane1 = pool.persist(1, 3072, LEN, 0);
        let a = a.join().expect("thread A does not panic");
        let b = b.join().expect("thread B does not panic");

        assert!(a.is_ok(), "numbered persist on lane 0 (A): {a:?}");
        assert!(
            main_lane0.is_ok(),
            "numbered persist on lane 0 (main): {main_lane0:?}"
        );
        assert!(b.is_ok(), "persist through the lane 1 handle: {b:?}");
        match &main_lane1 {
            Ok(()) => assert!(rig.durable(3072, 0xc2)),
            Err(Error::LaneInUse { lane: 1 }) => assert!(rig.durable(3072, 0)),
            Err(e) => panic!("numbered persist on lane 1: {e:?}"),
        }
        assert!(rig.durable(0, 0xa1));
        assert!(rig.durable(1024, 0xb1));
        assert!(rig.durable(2048, 0xc1));
        let lanes = pool.lanes().expect("every lane is back in the pool");
        assert_eq!(lanes.len(), NLANES as usize);
        drop(lanes);
        let pool = Arc::try_unwrap(pool).expect("the threads are done");
        pool.close().expect("close without a session");
        assert!(rig.rpmemd.all_ended(STALL), "a lane connection stayed open");
    });
    assert!(runs > 1, "explored {runs} executions");
}

/// Model 2: a persist racing the end of the pool.
///
/// `RemotePool::close` takes the pool by value, so it cannot run while a
/// `Lane` borrows the pool or another thread uses it (the compile_fail
/// examples in `rpmem/src/sync.rs` show it). What is left at run time: the
/// pool is shared (`Arc`) by two threads that persist, and whichever drops
/// the last reference ends it: thread B closes it if it is the only owner
/// left, else thread A's drop ends it through `Drop`. Checked in every
/// order: every persist succeeds and is durable, `close` (when it runs)
/// succeeds, and either way every lane connection is closed towards rpmemd
/// (a lane left out of its slot would stay open).
#[test]
fn persist_racing_close() {
    let runs = model(|| {
        let (rig, pool) = Rig::new(Death::Crash);
        let rig = Arc::new(rig);
        let pool = Arc::new(pool);

        let a = {
            let (rig, pool) = (Arc::clone(&rig), Arc::clone(&pool));
            spawn(move || {
                rig.fill(0, 0xa2);
                let r = pool.persist(0, 0, LEN, 0);
                drop(pool);
                r
            })
        };
        let b = {
            let (rig, pool) = (Arc::clone(&rig), Arc::clone(&pool));
            spawn(move || {
                let persisted = {
                    let mut lane = pool.lane(1)?;
                    rig.fill(1024, 0xb2);
                    lane.persist(1024, LEN, 0)
                };
                let closed = Arc::try_unwrap(pool).ok().map(RemotePool::close);
                persisted.map(|()| closed)
            })
        };
        drop(pool);
        let a = a.join().expect("thread A does not panic");
        let b = b.join().expect("thread B does not panic");

        assert!(a.is_ok(), "persist on lane 0: {a:?}");
        match b {
            Ok(None) => {}
            Ok(Some(closed)) => assert!(closed.is_ok(), "close: {closed:?}"),
            Err(e) => panic!("persist on lane 1: {e:?}"),
        }
        assert!(rig.durable(0, 0xa2));
        assert!(rig.durable(1024, 0xb2));
        assert!(
            rig.rpmemd.all_ended(STALL),
            "a lane connection stayed open after the pool ended"
        );
    });
    assert!(runs > 1, "explored {runs} executions");
}

/// What a call's error may be once the peer is gone.
fn is_peer_gone(e: &Error) -> bool {
    matches!(
        e,
        Error::Connection { .. } | Error::Disconnected { .. } | Error::LaneBroken { .. }
    )
}

/// Model 3: the peer dies while a lane waits for its answer.
///
/// Thread A's persist on lane 0 makes the fake rpmemd die instead of
/// answering (crashing, or hanging with its ssh channel gone), so A is
/// waiting for the answer when the peer dies; thread B persists on lane 1
/// twice, before or after that. Checked in every order: A's call fails with
/// a connection error, never by running into the data deadline; a call that
/// starts after A saw the failure fails too (no success after the peer
/// died); a lane whose call failed answers its next call with `LaneBroken`;
/// every call returns; the broken lanes are back in the pool and `close`
/// works.
fn peer_dies_while_lanes_wait(death: Death) {
    let runs = model(move || {
        let (rig, pool) = Rig::new(death);
        let rig = Arc::new(rig);
        let pool = Arc::new(pool);
        let failed = Arc::new(AtomicBool::new(false));

        let a = {
            let (pool, failed) = (Arc::clone(&pool), Arc::clone(&failed));
            spawn(move || {
                let started = Instant::now();
                let first = pool.persist(0, KILL_AT, LEN, 0);
                let took = started.elapsed();
                failed.store(true, Ordering::SeqCst);
                let second = pool.persist(0, 0, LEN, 0);
                (first, took, second)
            })
        };
        let b = {
            let (rig, pool, failed) = (Arc::clone(&rig), Arc::clone(&pool), Arc::clone(&failed));
            spawn(move || {
                let mut seen = Vec::new();
                for byte in [0xb3, 0xb4] {
                    let after_death = failed.load(Ordering::SeqCst);
                    rig.fill(1024, byte);
                    let r = pool.persist(1, 1024, LEN, 0);
                    if after_death {
                        assert!(r.is_err(), "a persist succeeded after the peer died");
                    }
                    seen.push(r);
                }
                seen
            })
        };
        let (first, took, second) = a.join().expect("thread A does not panic");
        let seen = b.join().expect("thread B does not panic");

        match &first {
            Err(e) if is_peer_gone(e) => {}
            other => panic!("the call waiting when the peer died returned {other:?}"),
        }
        assert!(
            took < STALL,
            "the dying peer was noticed only after {took:?}"
        );
        assert!(
            matches!(second, Err(Error::LaneBroken { lane: 0, .. })),
            "the next call on the broken lane 0 returned {second:?}"
        );
        for r in &seen {
            if let Err(e) = r {
                assert!(is_peer_gone(e), "lane 1 failed with {e:?}");
            }
        }
        if let [Err(_), second] = seen.as_slice() {
            assert!(
                matches!(second, Err(Error::LaneBroken { lane: 1, .. })),
                "the next call on the broken lane 1 returned {second:?}"
            );
        }
        let lanes = pool.lanes().expect("broken lanes are back in the pool");
        drop(lanes);
        let pool = Arc::try_unwrap(pool).expect("the threads are done");
        pool.close().expect("close without a session");
        if death == Death::Hang {
            // The hung rpmemd kept its sockets: the initiator closed them.
            assert!(rig.rpmemd.all_ended(STALL), "a lane connection stayed open");
        }
    });
    assert!(runs > 1, "explored {runs} executions");
}

#[test]
fn peer_crashes_while_lanes_wait() {
    peer_dies_while_lanes_wait(Death::Crash);
}

#[test]
fn peer_hangs_up_while_lanes_wait() {
    peer_dies_while_lanes_wait(Death::Hang);
}
