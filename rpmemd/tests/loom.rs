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
//! the acceptor `admit`s and starts a worker, the worker `claim`s its lane
//! after the hello, touches the pool, blocks "in recv" until its connection
//! is shut down, and drops its guard last; `TcpServer::stop` is `stop`, join
//! the acceptor, `wait_idle`. What each model checks is in `docs/loom.md`.
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
        Ok(()) => {
            let index = usize::try_from(lane).expect("small lane");
            pool.flush(index);
            conn.recv_until_shut();
            // The message being executed when the socket was shut down is
            // still flushed; only its answer fails to go out.
            pool.flush(index);
            Claimed::Yes
        }
        Err(refusal) => Claimed::No(refusal),
    };
    conn.shut_down();
    drop(conn);
    finished.fetch_add(1, Ordering::SeqCst);
    // Last: after this the session may unmap the pool.
    drop(guard);
    claimed
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

        let acceptor = {
            let reg = Arc::clone(&reg);
            let pool = Arc::clone(&pool);
            let finished = Arc::clone(&finished);
            let stop_returned = Arc::clone(&stop_returned);
            let conns = conns.clone();
            loom::thread::spawn(move || {
                let mut workers = Vec::new();
                for (lane, conn) in (0u32..).zip(conns) {
                    let after_stop = stop_returned.load(Ordering::SeqCst);
                    match LaneRegistry::admit(&reg, Arc::clone(&conn)) {
                        Ok(guard) => {
                            assert!(!after_stop, "a connection was admitted after stop returned");
                            workers.push(spawn_worker(guard, conn, lane, &pool, &finished));
                        }
                        Err(refusal) => {
                            assert_eq!(refusal, Refusal::Stopping);
                            conn.shut_down();
                        }
                    }
                }
                workers
            })
        };

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
