//! loom models of rpmemd's data-path shutdown coordinator: the production
//! [`LaneRegistry`] and [`WorkerGuard`], built on the `rpmemd::sync` facade,
//! which is loom's model-checked `Mutex`/`Condvar`/`Arc` in this build.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release -p rpmemd --test loom`.
//!
//! The TCP parts (`TcpServer`, its accepting thread and lane workers) block
//! in `poll` and cannot run under loom; the threads below make the registry
//! calls those threads make, in the same order (see `transport/tcp.rs`):
//! the acceptor reads a connection's hello and `admit_lane`s it with its
//! lane (models 5 to 7; models 4 and 4b: it `admit`s the connection and the
//! worker `claim`s its lane after the hello, as the RDMA path still does)
//! and starts a worker, which touches the pool, blocks "in recv" until its
//! connection is shut down, and drops its guard last; `TcpServer::stop` is
//! `stop`, join the acceptor, `wait_idle`. What each model checks is in
//! `docs/loom.md`.
#![cfg(loom)]

use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use loom::cell::UnsafeCell;
use loom::thread::JoinHandle;
use rpmemd::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rpmemd::sync::{lock, Arc, Condvar, Mutex};
use rpmemd::transport::{Connection, LaneRegistry, Refusal, WorkerGuard};

/// Preemptions explored per execution unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise: 4 explores about 120 000 executions per model (about 25 s for
/// both on one core); 3 already catches every seeded bug of `docs/loom.md`;
/// 5 takes about 5 minutes.
const DEFAULT_PREEMPTIONS: usize = 4;

/// Runs `f` under loom with [`DEFAULT_PREEMPTIONS`], and returns how many
/// executions were explored (counted with a std atomic: outside the model).
fn model<F>(f: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    let counter = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f();
    });
    let runs = runs.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("explored {runs} executions");
    runs
}

/// A lane connection. Its worker "blocks in recv" until the connection is
/// shut down, as a real worker blocked in `recv`/`poll` wakes only when
/// [`LaneRegistry::stop`] shuts its socket down.
#[derive(Debug)]
struct FakeConn {
    shut: Mutex<bool>,
    woken: Condvar,
    shutdowns: AtomicUsize,
}

impl FakeConn {
    fn new() -> Arc<FakeConn> {
        Arc::new(FakeConn {
            shut: Mutex::new(false),
            woken: Condvar::new(),
            shutdowns: AtomicUsize::new(0),
        })
    }

    /// Blocks until the connection is shut down. If nobody ever shuts it
    /// down, loom reports the deadlock.
    fn recv_until_shut(&self) {
        let mut shut = lock(&self.shut);
        while !*shut {
            shut = match self.woken.wait(shut) {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }
}

impl Connection for FakeConn {
    fn shut_down(&self) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        *lock(&self.shut) = true;
        self.woken.notify_all();
    }
}

/// The pool mapping: one cell per lane. A worker writes only the cell of
/// the lane it claimed (so a lane claimed twice is a data race loom
/// reports), and "unmapping" writes every cell (so a pool access that does
/// not happen before the unmap is a data race too).
#[derive(Debug)]
struct FakePool {
    lanes: [UnsafeCell<u64>; 2],
}

impl FakePool {
    fn new() -> Arc<FakePool> {
        Arc::new(FakePool {
            lanes: [UnsafeCell::new(0), UnsafeCell::new(0)],
        })
    }

    /// A lane worker persisting into its lane's bytes.
    fn flush(&self, lane: usize) {
        let cell = self.lanes.get(lane).expect("the model has two lanes");
        // SAFETY: loom checks the exclusivity this claims (that is the
        // point of the model); a violation panics, it is never UB.
        cell.with_mut(|p| unsafe { *p += 1 });
    }

    /// The session unmapping the pool after `wait_idle`; returns what the
    /// workers wrote.
    fn unmap(&self) -> [u64; 2] {
        let mut out = [0; 2];
        for (o, cell) in out.iter_mut().zip(&self.lanes) {
            // SAFETY: as in `flush`.
            *o = cell.with_mut(|p| unsafe { std::mem::replace(&mut *p, 0) });
        }
        out
    }
}

/// What a worker saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimed {
    Yes,
    No(Refusal),
}

/// A lane worker as `transport/tcp.rs` runs it: claim the lane (after the
/// hello), flush into the pool, block in recv until the connection is shut
/// down, finish the flush in hand, shut its connection, drop the guard last.
fn worker(
    guard: WorkerGuard<FakeConn>,
    conn: Arc<FakeConn>,
    lane: u32,
    pool: Arc<FakePool>,
    finished: Arc<AtomicUsize>,
) -> Claimed {
    let claimed = match guard.registry().claim(&guard, lane) {
        Ok(()) => Claimed::Yes,
        Err(refusal) => Claimed::No(refusal),
    };
    let lane = (claimed == Claimed::Yes).then_some(lane);
    serve(guard, conn, lane, &pool, &finished);
    claimed
}

/// What a worker does once it holds its lane (`Some`), or after it was
/// refused one (`None`): flush into the lane's bytes, block in recv until
/// the connection is shut down, finish the flush in hand; then shut its
/// connection and drop the guard last.
fn serve(
    guard: WorkerGuard<FakeConn>,
    conn: Arc<FakeConn>,
    lane: Option<u32>,
    pool: &FakePool,
    finished: &AtomicUsize,
) {
    if let Some(lane) = lane {
        let index = usize::try_from(lane).expect("small lane");
        pool.flush(index);
        conn.recv_until_shut();
        // The message being executed when the socket was shut down is
        // still flushed; only its answer fails to go out.
        pool.flush(index);
    }
    conn.shut_down();
    drop(conn);
    finished.fetch_add(1, Ordering::SeqCst);
    // Last: after this the session may unmap the pool.
    drop(guard);
}

fn spawn_worker(
    guard: WorkerGuard<FakeConn>,
    conn: Arc<FakeConn>,
    lane: u32,
    pool: &Arc<FakePool>,
    finished: &Arc<AtomicUsize>,
) -> JoinHandle<Claimed> {
    let pool = Arc::clone(pool);
    let finished = Arc::clone(finished);
    loom::thread::spawn(move || worker(guard, conn, lane, pool, finished))
}

/// The registry call that admits a connection (with the lane its hello
/// named, for `admit_lane`).
type Admit =
    fn(&Arc<LaneRegistry<FakeConn>>, Arc<FakeConn>, u32) -> Result<WorkerGuard<FakeConn>, Refusal>;

/// The worker started for an admitted connection.
type Spawn<W> = fn(
    WorkerGuard<FakeConn>,
    Arc<FakeConn>,
    u32,
    &Arc<FakePool>,
    &Arc<AtomicUsize>,
) -> JoinHandle<W>;

/// The accepting thread of models 4 and 5: takes `conns` in turn (lane 0,
/// 1, ...), `admit`s each and starts its worker with `spawn`, or shuts a
/// refused one down; a refusal must be `Stopping`, and nothing may be
/// admitted after `stop_returned` was set. Returns the workers.
fn spawn_acceptor<W: 'static>(
    reg: &Arc<LaneRegistry<FakeConn>>,
    pool: &Arc<FakePool>,
    finished: &Arc<AtomicUsize>,
    stop_returned: &Arc<AtomicBool>,
    conns: &[Arc<FakeConn>; 2],
    admit: Admit,
    spawn: Spawn<W>,
) -> JoinHandle<Vec<JoinHandle<W>>> {
    let (reg, pool, finished) = (Arc::clone(reg), Arc::clone(pool), Arc::clone(finished));
    let stop_returned = Arc::clone(stop_returned);
    let conns = conns.clone();
    loom::thread::spawn(move || {
        let mut workers = Vec::new();
        for (lane, conn) in (0u32..).zip(conns) {
            let after_stop = stop_returned.load(Ordering::SeqCst);
            match admit(&reg, Arc::clone(&conn), lane) {
                Ok(guard) => {
                    assert!(!after_stop, "lane {lane} was admitted after stop returned");
                    workers.push(spawn(guard, conn, lane, &pool, &finished));
                }
                Err(refusal) => {
                    assert_eq!(refusal, Refusal::Stopping);
                    conn.shut_down();
                }
            }
        }
        workers
    })
}

/// Model 4: rpmemd shuts the data path down while an acceptor admits two
/// connections and their workers flush.
///
/// Checked in every interleaving: a connection admitted at any point is
/// shut down (otherwise its worker never leaves `recv` and loom reports a
/// deadlock); `admit` refuses once `stop` has returned; `wait_idle` returns
/// only after every admitted worker finished, and every pool access of a
/// worker happens before the unmap (loom's race detector on the pool cells);
/// nothing is registered afterwards.
#[test]
fn stop_while_workers_flush() {
    let runs = model(|| {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 4));
        let pool = FakePool::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let stop_returned = Arc::new(AtomicBool::new(false));
        let conns = [FakeConn::new(), FakeConn::new()];

        let acceptor = spawn_acceptor(
            &reg,
            &pool,
            &finished,
            &stop_returned,
            &conns,
            |reg, conn, _lane| LaneRegistry::admit(reg, conn),
            spawn_worker,
        );

        // TcpServer::stop: stop, join the acceptor, wait for the workers.
        let open = reg.stop();
        stop_returned.store(true, Ordering::SeqCst);
        let workers = acceptor.join().expect("the acceptor does not panic");
        reg.wait_idle();

        // Every admitted worker has left, and its pool accesses are over.
        assert_eq!(finished.load(Ordering::SeqCst), workers.len());
        assert_eq!(reg.workers(), 0);
        let written = pool.unmap();
        assert!(open <= workers.len(), "stop shut {open} connections down");

        let mut claimed = 0;
        for w in workers {
            match w.join().expect("a worker does not panic") {
                Claimed::Yes => claimed += 1,
                Claimed::No(refusal) => assert_eq!(refusal, Refusal::Stopping),
            }
        }
        // A worker that claimed its lane flushed twice; no other did.
        assert_eq!(written.iter().sum::<u64>(), 2 * claimed);
        assert_eq!(reg.claimed(), usize::try_from(claimed).expect("small"));
        for conn in &conns {
            assert!(conn.shutdowns.load(Ordering::SeqCst) >= 1);
        }
        // Nothing is admitted after the stop.
        assert_eq!(
            LaneRegistry::admit(&reg, FakeConn::new()).err(),
            Some(Refusal::Stopping)
        );
        assert_eq!(reg.workers(), 0);
    });
    assert!(runs > 1, "explored {runs} executions");
}

/// Model 4b: two connections say they are lane 0 while the session stops.
///
/// Checked in every interleaving: at most one of them gets the lane (and
/// exactly one when the stop came after both claims), the other is told
/// `LaneTaken` or `Stopping`; only the owner writes the lane's bytes (a
/// second writer is a race loom reports); `wait_idle` still waits for both.
#[test]
fn lane_is_claimed_once_while_stopping() {
    let runs = model(|| {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 4));
        let pool = FakePool::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..2 {
            let conn = FakeConn::new();
            let guard =
                LaneRegistry::admit(&reg, Arc::clone(&conn)).expect("admitted before the stop");
            workers.push(spawn_worker(guard, conn, 0, &pool, &finished));
        }

        reg.stop();
        reg.wait_idle();
        assert_eq!(finished.load(Ordering::SeqCst), 2);
        let written = pool.unmap();

        let seen: Vec<Claimed> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker does not panic"))
            .collect();
        let owners = seen.iter().filter(|&&c| c == Claimed::Yes).count();
        assert!(owners <= 1, "lane 0 was claimed twice: {seen:?}");
        let stopped = seen.contains(&Claimed::No(Refusal::Stopping));
        if !stopped {
            assert_eq!(owners, 1, "nobody got lane 0: {seen:?}");
        }
        for c in &seen {
            assert!(
                matches!(
                    c,
                    Claimed::Yes
                        | Claimed::No(Refusal::LaneTaken(0))
                        | Claimed::No(Refusal::Stopping)
                ),
                "unexpected outcome {c:?}"
            );
        }
        assert_eq!(reg.claimed(), owners);
        assert_eq!(written, [2 * owners as u64, 0]);
    });
    assert!(runs > 1, "explored {runs} executions");
}

/// What a connection racing for a lane through `admit_lane` saw, counted
/// over all executions of a model (std atomics: outside the model), so that
/// a model can show it reached each outcome and is not checking nothing.
#[derive(Debug, Default)]
struct Outcomes {
    counts: [StdAtomicUsize; 4],
}

impl Outcomes {
    fn note(&self, i: usize) {
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn get(&self, i: usize) -> usize {
        self.counts
            .get(i)
            .map_or(0, |c| c.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A worker started for a connection that `admit_lane` admitted together
/// with its lane (the accepting thread of `transport/tcp.rs` read and
/// verified its hello): no claim of its own.
fn spawn_admitted(
    guard: WorkerGuard<FakeConn>,
    conn: Arc<FakeConn>,
    lane: u32,
    pool: &Arc<FakePool>,
    finished: &Arc<AtomicUsize>,
) -> JoinHandle<()> {
    let pool = Arc::clone(pool);
    let finished = Arc::clone(finished);
    loom::thread::spawn(move || serve(guard, conn, Some(lane), &pool, &finished))
}

/// Model 5: the accepting thread admits two proven connections, for lanes
/// 0 and 1, with `admit_lane` while the session stops (`TcpServer::stop`:
/// `stop`, join the acceptor, `wait_idle`, unmap).
///
/// Checked in every interleaving: `admit_lane` refuses (`Stopping`, nothing
/// else) once `stop` has returned; every connection it admitted is shut
/// down (otherwise its worker never leaves recv: loom reports a deadlock);
/// `wait_idle` returns only after every admitted worker finished, and their
/// pool accesses happen before the unmap (race detector); a lane is counted
/// as claimed exactly when its connection was admitted.
#[test]
fn admit_lane_while_stopping() {
    // How many of the two connections were admitted: 0, 1 or 2.
    let seen = std::sync::Arc::new(Outcomes::default());
    let seen_in = std::sync::Arc::clone(&seen);
    let runs = model(move || {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 1));
        let pool = FakePool::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let stop_returned = Arc::new(AtomicBool::new(false));
        let conns = [FakeConn::new(), FakeConn::new()];

        let acceptor = spawn_acceptor(
            &reg,
            &pool,
            &finished,
            &stop_returned,
            &conns,
            LaneRegistry::admit_lane,
            spawn_admitted,
        );

        let open = reg.stop();
        stop_returned.store(true, Ordering::SeqCst);
        let workers = acceptor.join().expect("the acceptor does not panic");
        reg.wait_idle();

        let admitted = workers.len();
        assert_eq!(finished.load(Ordering::SeqCst), admitted);
        assert_eq!(reg.workers(), 0);
        let written = pool.unmap();
        assert!(open <= admitted, "stop shut {open} connections down");
        for w in workers {
            w.join().expect("a worker does not panic");
        }
        // The acceptor goes lane by lane and a refusal is final, so the
        // admitted lanes are the first ones; each flushed twice.
        let expected: [u64; 2] = [0, 1].map(|i| if i < admitted { 2 } else { 0 });
        assert_eq!(written, expected);
        assert_eq!(reg.claimed(), admitted);
        for conn in &conns {
            assert!(conn.shutdowns.load(Ordering::SeqCst) >= 1);
        }
        assert_eq!(
            LaneRegistry::admit_lane(&reg, FakeConn::new(), 1).err(),
            Some(Refusal::Stopping)
        );
        seen_in.note(admitted);
    });
    assert!(runs > 1, "explored {runs} executions");
    for admitted in 0..=2 {
        assert!(
            seen.get(admitted) > 0,
            "no execution admitted exactly {admitted} connections"
        );
    }
}

/// Model 6: two proven connections for the same lane race through
/// `admit_lane` while the session stops. (The TCP path admits from its one
/// accepting thread; the registry promises this to any caller.)
///
/// Checked in every interleaving: at most one is admitted; a connection
/// is told `LaneTaken(0)` only when the other one has the lane; when
/// neither was refused for the stop, exactly one has the lane and the other
/// is told `LaneTaken(0)`; nothing is admitted after `stop` returned; only
/// the owner writes the lane's bytes (a second writer is a race loom
/// reports), before the unmap; `claimed()` agrees.
#[test]
fn admit_lane_races_for_one_lane() {
    // 0: one admitted, one LaneTaken; 1: one admitted, one Stopping;
    // 2: both Stopping.
    let seen = std::sync::Arc::new(Outcomes::default());
    let seen_in = std::sync::Arc::clone(&seen);
    let runs = model(move || {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 1));
        let pool = FakePool::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let stop_returned = Arc::new(AtomicBool::new(false));
        let conns = [FakeConn::new(), FakeConn::new()];

        let racers: Vec<JoinHandle<Claimed>> = conns
            .iter()
            .map(|conn| {
                let reg = Arc::clone(&reg);
                let pool = Arc::clone(&pool);
                let finished = Arc::clone(&finished);
                let stop_returned = Arc::clone(&stop_returned);
                let conn = Arc::clone(conn);
                loom::thread::spawn(move || {
                    let after_stop = stop_returned.load(Ordering::SeqCst);
                    match LaneRegistry::admit_lane(&reg, Arc::clone(&conn), 0) {
                        Ok(guard) => {
                            assert!(!after_stop, "lane 0 was admitted after stop returned");
                            // The worker, on this thread: the model's
                            // threads stay few.
                            serve(guard, conn, Some(0), &pool, &finished);
                            Claimed::Yes
                        }
                        Err(refusal) => {
                            conn.shut_down();
                            Claimed::No(refusal)
                        }
                    }
                })
            })
            .collect();

        reg.stop();
        stop_returned.store(true, Ordering::SeqCst);
        let seen: Vec<Claimed> = racers
            .into_iter()
            .map(|r| r.join().expect("a racer does not panic"))
            .collect();
        reg.wait_idle();
        let written = pool.unmap();

        let owners = seen.iter().filter(|&&c| c == Claimed::Yes).count();
        let taken = seen
            .iter()
            .filter(|&&c| c == Claimed::No(Refusal::LaneTaken(0)))
            .count();
        let stopped = seen
            .iter()
            .filter(|&&c| c == Claimed::No(Refusal::Stopping))
            .count();
        assert_eq!(owners + taken + stopped, 2, "unexpected outcome: {seen:?}");
        assert!(owners <= 1, "lane 0 was admitted twice: {seen:?}");
        assert!(
            taken == 0 || owners == 1,
            "LaneTaken without an owner: {seen:?}"
        );
        if stopped == 0 {
            assert_eq!((owners, taken), (1, 1), "{seen:?}");
        }
        assert_eq!(finished.load(Ordering::SeqCst), owners);
        assert_eq!(reg.claimed(), owners);
        assert_eq!(reg.workers(), 0);
        assert_eq!(written, [2 * owners as u64, 0]);
        for conn in &conns {
            assert!(conn.shutdowns.load(Ordering::SeqCst) >= 1);
        }
        seen_in.note(match (owners, taken) {
            (1, 1) => 0,
            (1, 0) => 1,
            _ => 2,
        });
    });
    assert!(runs > 1, "explored {runs} executions");
    for (i, what) in ["owner + LaneTaken", "owner + Stopping", "both Stopping"]
        .iter()
        .enumerate()
    {
        assert!(seen.get(i) > 0, "no execution ended with {what}");
    }
}

/// Model 7: the bound on connections waiting for their hello (`admit`'s
/// `max_pending`, here 1) and `admit_lane`. A connection admitted with
/// `admit` waits for its hello and fills the bound; one thread admits a
/// proven connection for lane 0 with `admit_lane`, while another claims
/// lane 1 for the waiting connection and then admits a new waiting one.
///
/// Checked in every interleaving: `admit_lane` is never refused for the
/// waiting connections, and the connection it admits, which has its lane,
/// never counts as waiting: once the waiting connection has its lane, the
/// next `admit` succeeds however the two threads interleave.
#[test]
fn admit_lane_is_outside_the_pending_bound() {
    let runs = model(|| {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 1));
        let waiting =
            LaneRegistry::admit(&reg, FakeConn::new()).expect("the first waiting connection");
        assert_eq!(
            LaneRegistry::admit(&reg, FakeConn::new()).err(),
            Some(Refusal::TooManyPending(1))
        );

        let proven = {
            let reg = Arc::clone(&reg);
            loom::thread::spawn(move || LaneRegistry::admit_lane(&reg, FakeConn::new(), 0))
        };
        let hello = {
            let reg = Arc::clone(&reg);
            loom::thread::spawn(move || {
                assert_eq!(reg.claim(&waiting, 1), Ok(()));
                let next = LaneRegistry::admit(&reg, FakeConn::new());
                (waiting, next)
            })
        };
        let proven = proven.join().expect("no panic");
        let (waiting, next) = hello.join().expect("no panic");
        let proven = proven.expect("admit_lane refused a proven connection");
        let next = next.expect("a connection with its lane counted as waiting");

        assert_eq!(reg.claimed(), 2);
        assert_eq!(reg.workers(), 3);
        // The new connection waits for its hello: the bound is full again.
        assert_eq!(
            LaneRegistry::admit(&reg, FakeConn::new()).err(),
            Some(Refusal::TooManyPending(1))
        );
        assert_eq!(reg.stop(), 3);
        drop((proven, waiting, next));
        reg.wait_idle();
        assert_eq!(reg.workers(), 0);
    });
    assert!(runs > 1, "explored {runs} executions");
}
