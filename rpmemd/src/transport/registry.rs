//! The shutdown coordinator of a session's data path ([`LaneRegistry`]),
//! shared by the accepting thread and the lane workers: which connections are
//! open, which lanes are taken (each lane may be connected once), how many
//! worker threads still run, and the stop that shuts every connection down and
//! waits for them.

use rpmem_core::wire::tcp::HelloStatus;

use crate::sync::{lock, Arc, Condvar, Mutex};

/// A connection the registry can shut down from another thread.
pub trait Connection: Send + Sync {
    /// Shuts both directions down, waking any thread blocked on it.
    fn shut_down(&self);
}

/// Why the registry refused a connection or a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The session is stopping.
    #[error("the session is stopping")]
    Stopping,
    /// Too many connections have not yet said which lane they are.
    #[error("too many connections are waiting for their hello ({0} at most)")]
    TooManyPending(usize),
    /// The lane is already connected.
    #[error("lane {0} is already connected")]
    LaneTaken(u32),
    /// The lane does not exist.
    #[error("lane {lane} does not exist (the session has {nlanes} lanes)")]
    NoSuchLane {
        /// The lane asked for.
        lane: u32,
        /// Lanes of the session.
        nlanes: u32,
    },
}

impl Refusal {
    /// The hello answer a refused connection gets: `BadLane` when its lane
    /// is the problem; nothing (the connection is just closed or rejected)
    /// when the session is stopping or too many connections wait.
    pub fn hello_status(&self) -> Option<HelloStatus> {
        match self {
            Refusal::LaneTaken(_) | Refusal::NoSuchLane { .. } => Some(HelloStatus::BadLane),
            Refusal::Stopping | Refusal::TooManyPending(_) => None,
        }
    }
}

/// A connection's place in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

#[derive(Debug)]
struct Entry<C> {
    id: ConnId,
    conn: Arc<C>,
    lane: Option<u32>,
}

#[derive(Debug)]
struct State<C> {
    stopping: bool,
    taken: Vec<bool>,
    conns: Vec<Entry<C>>,
    next_id: u64,
    workers: usize,
}

/// The shutdown coordinator of one session's data path.
///
/// The accepting thread [`admit`](Self::admit)s every connection (which
/// also counts its worker thread), the worker [`claim`](Self::claim)s its
/// lane after the hello, and drops its [`WorkerGuard`] as the very last thing
/// it does. [`stop`](Self::stop) refuses anything new, shuts every
/// connection down (a worker blocked in `recv` or `poll` wakes up), and
/// [`wait_idle`](Self::wait_idle) returns once no worker is left, after
/// which nothing touches the pool any more.
#[derive(Debug)]
pub struct LaneRegistry<C> {
    nlanes: u32,
    max_pending: usize,
    state: Mutex<State<C>>,
    idle: Condvar,
}

impl<C: Connection> LaneRegistry<C> {
    /// A registry for `nlanes` lanes that lets at most `max_pending`
    /// connections wait for their hello at once.
    pub fn new(nlanes: u32, max_pending: usize) -> LaneRegistry<C> {
        let n = usize::try_from(nlanes).unwrap_or(0);
        LaneRegistry {
            nlanes,
            max_pending,
            state: Mutex::new(State {
                stopping: false,
                taken: vec![false; n],
                conns: Vec::new(),
                next_id: 0,
                workers: 0,
            }),
            idle: Condvar::new(),
        }
    }

    /// Lanes of the session.
    pub fn nlanes(&self) -> u32 {
        self.nlanes
    }

    /// Registers a new connection (an associated function, as loom's `Arc`
    /// cannot be a method receiver) and the worker thread about to serve it.
    /// On success the caller must start the worker and hand it the guard
    /// (dropping the guard unstarted is fine: it unregisters).
    pub fn admit(this: &Arc<Self>, conn: Arc<C>) -> Result<WorkerGuard<C>, Refusal> {
        let mut s = lock(&this.state);
        if s.stopping {
            return Err(Refusal::Stopping);
        }
        let pending = s.conns.iter().filter(|e| e.lane.is_none()).count();
        if pending >= this.max_pending {
            return Err(Refusal::TooManyPending(this.max_pending));
        }
        let id = ConnId(s.next_id);
        s.next_id = s.next_id.wrapping_add(1);
        s.conns.push(Entry {
            id,
            conn,
            lane: None,
        });
        s.workers = s.workers.saturating_add(1);
        Ok(WorkerGuard {
            registry: Arc::clone(this),
            id,
        })
    }

    /// Registers a connection that already proved the session secret
    /// together with its lane, in one step: refused at once when the lane
    /// is already taken (or does not exist) or the session is stopping,
    /// never for connections waiting for their hello (the bound of
    /// [`admit`](Self::admit) does not apply). On success the caller must
    /// start the worker and hand it the guard.
    pub fn admit_lane(
        this: &Arc<Self>,
        conn: Arc<C>,
        lane: u32,
    ) -> Result<WorkerGuard<C>, Refusal> {
        let mut s = lock(&this.state);
        if s.stopping {
            return Err(Refusal::Stopping);
        }
        let index = usize::try_from(lane).unwrap_or(usize::MAX);
        match s.taken.get_mut(index) {
            None => {
                return Err(Refusal::NoSuchLane {
                    lane,
                    nlanes: this.nlanes,
                })
            }
            Some(true) => return Err(Refusal::LaneTaken(lane)),
            Some(t) => *t = true,
        }
        let id = ConnId(s.next_id);
        s.next_id = s.next_id.wrapping_add(1);
        s.conns.push(Entry {
            id,
            conn,
            lane: Some(lane),
        });
        s.workers = s.workers.saturating_add(1);
        Ok(WorkerGuard {
            registry: Arc::clone(this),
            id,
        })
    }

    /// Gives lane `lane` to the connection of `guard`. Each lane may be
    /// claimed once per session, even after its connection closed (unless
    /// its worker never started: [`WorkerGuard::unstarted`]).
    pub fn claim(&self, guard: &WorkerGuard<C>, lane: u32) -> Result<(), Refusal> {
        let mut s = lock(&self.state);
        if s.stopping {
            return Err(Refusal::Stopping);
        }
        let index = usize::try_from(lane).unwrap_or(usize::MAX);
        match s.taken.get(index) {
            None => {
                return Err(Refusal::NoSuchLane {
                    lane,
                    nlanes: self.nlanes,
                })
            }
            Some(true) => return Err(Refusal::LaneTaken(lane)),
            Some(false) => {}
        }
        if let Some(t) = s.taken.get_mut(index) {
            *t = true;
        }
        if let Some(e) = s.conns.iter_mut().find(|e| e.id == guard.id) {
            e.lane = Some(lane);
        }
        Ok(())
    }

    /// Frees the lane of connection `id`, if it has one (see
    /// [`WorkerGuard::unstarted`]).
    fn unclaim(&self, id: ConnId) -> Option<u32> {
        let mut s = lock(&self.state);
        let lane = s
            .conns
            .iter_mut()
            .find(|e| e.id == id)
            .and_then(|e| e.lane.take())?;
        if let Some(t) = s.taken.get_mut(usize::try_from(lane).unwrap_or(usize::MAX)) {
            *t = false;
        }
        Some(lane)
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        lock(&self.state).stopping
    }

    /// Number of lanes claimed so far.
    pub fn claimed(&self) -> usize {
        lock(&self.state).taken.iter().filter(|&&t| t).count()
    }

    /// Worker threads still registered.
    pub fn workers(&self) -> usize {
        lock(&self.state).workers
    }

    /// Refuses every new connection and claim, and shuts down every open
    /// connection. Returns how many were shut down. Idempotent.
    pub fn stop(&self) -> usize {
        let conns: Vec<Arc<C>> = {
            let mut s = lock(&self.state);
            s.stopping = true;
            s.conns.iter().map(|e| Arc::clone(&e.conn)).collect()
        };
        for c in &conns {
            c.shut_down();
        }
        conns.len()
    }

    /// Waits until every worker dropped its guard.
    pub fn wait_idle(&self) {
        let mut s = lock(&self.state);
        while s.workers > 0 {
            s = match self.idle.wait(s) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }

    fn release(&self, id: ConnId) {
        let mut s = lock(&self.state);
        s.conns.retain(|e| e.id != id);
        s.workers = s.workers.saturating_sub(1);
        if s.workers == 0 {
            self.idle.notify_all();
        }
    }
}

/// Proof that a worker is registered; dropping it unregisters the
/// connection and the worker. A worker drops it after its last access to the
/// pool.
#[derive(Debug)]
pub struct WorkerGuard<C: Connection> {
    registry: Arc<LaneRegistry<C>>,
    id: ConnId,
}

impl<C: Connection> WorkerGuard<C> {
    /// The registry.
    pub fn registry(&self) -> &LaneRegistry<C> {
        &self.registry
    }

    /// For a worker that never started (its thread could not be created):
    /// gives back the lane its connection claimed, as nothing was received
    /// or written through it, so that a new connection may claim it; then
    /// unregisters the connection and the worker, as dropping the guard
    /// does. Returns the lane freed, `None` when the connection had none.
    pub fn unstarted(self) -> Option<u32> {
        self.registry.unclaim(self.id)
    }
}

impl<C: Connection> Drop for WorkerGuard<C> {
    fn drop(&mut self) {
        self.registry.release(self.id);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct FakeConn {
        shut: AtomicUsize,
    }

    impl Connection for FakeConn {
        fn shut_down(&self) {
            self.shut.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn lanes_are_claimed_once_and_bounded() {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 8));
        let a = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        let b = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        assert_eq!(reg.claim(&a, 1), Ok(()));
        assert_eq!(reg.claim(&b, 1), Err(Refusal::LaneTaken(1)));
        assert_eq!(
            reg.claim(&b, 2),
            Err(Refusal::NoSuchLane { lane: 2, nlanes: 2 })
        );
        drop(a);
        // A lane stays taken after its connection closed.
        assert_eq!(reg.claim(&b, 1), Err(Refusal::LaneTaken(1)));
        assert_eq!(reg.claim(&b, 0), Ok(()));
        assert_eq!(reg.claimed(), 2);
        assert_eq!(reg.workers(), 1);
    }

    #[test]
    fn proven_lanes_are_admitted_past_waiting_connections_and_once() {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 1));
        let _waiting = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        // The bound of waiting connections does not apply.
        let a = LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), 1).unwrap();
        assert_eq!(reg.claimed(), 1);
        assert_eq!(reg.workers(), 2);
        // A duplicate is refused at once, also after the first closed.
        assert_eq!(
            LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), 1).err(),
            Some(Refusal::LaneTaken(1))
        );
        drop(a);
        assert_eq!(
            LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), 1).err(),
            Some(Refusal::LaneTaken(1))
        );
        assert_eq!(
            LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), 2).err(),
            Some(Refusal::NoSuchLane { lane: 2, nlanes: 2 })
        );
        let conn = Arc::new(FakeConn::default());
        let b = LaneRegistry::admit_lane(&reg, Arc::clone(&conn), 0).unwrap();
        assert_eq!(reg.stop(), 2);
        assert_eq!(conn.shut.load(Ordering::SeqCst), 1);
        assert_eq!(
            LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), 0).err(),
            Some(Refusal::Stopping)
        );
        drop(b);
        assert_eq!(reg.workers(), 1);
    }

    #[test]
    fn a_lane_whose_worker_never_started_is_given_back() {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 8));
        let lane = |n: u32| LaneRegistry::admit_lane(&reg, Arc::new(FakeConn::default()), n);
        let a = lane(1).unwrap();
        let served = lane(0).unwrap();
        assert_eq!((reg.claimed(), reg.workers()), (2, 2));
        assert_eq!(a.unstarted(), Some(1));
        assert_eq!((reg.claimed(), reg.workers()), (1, 1));
        // Lane 1 may be connected again; lane 0 (served) still may not,
        // neither while served nor after.
        let b = lane(1).unwrap();
        assert_eq!(lane(0).err(), Some(Refusal::LaneTaken(0)));
        drop(served);
        assert_eq!(lane(0).err(), Some(Refusal::LaneTaken(0)));
        // A connection without a lane frees nothing.
        let waiting = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        assert_eq!(waiting.unstarted(), None);
        assert_eq!(reg.claimed(), 2);
        drop(b);
        assert_eq!(reg.workers(), 0);
    }

    #[test]
    fn only_lane_refusals_get_a_hello_answer() {
        assert_eq!(
            Refusal::LaneTaken(1).hello_status(),
            Some(HelloStatus::BadLane)
        );
        assert_eq!(
            Refusal::NoSuchLane { lane: 9, nlanes: 2 }.hello_status(),
            Some(HelloStatus::BadLane)
        );
        assert_eq!(Refusal::Stopping.hello_status(), None);
        assert_eq!(Refusal::TooManyPending(16).hello_status(), None);
    }

    #[test]
    fn pending_connections_are_bounded() {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(4, 2));
        let a = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        let _b = LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).unwrap();
        assert_eq!(
            LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).err(),
            Some(Refusal::TooManyPending(2))
        );
        reg.claim(&a, 0).unwrap();
        assert!(LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).is_ok());
    }

    #[test]
    fn stop_shuts_everything_down_and_waits_for_workers() {
        let reg = Arc::new(LaneRegistry::<FakeConn>::new(2, 8));
        let conn = Arc::new(FakeConn::default());
        let guard = LaneRegistry::admit(&reg, Arc::clone(&conn)).unwrap();
        let worker = crate::sync::thread::spawn(move || {
            // A worker that runs until its connection is shut down.
            while guard.registry().workers() > 0 && !guard.registry().is_stopping() {
                std::hint::spin_loop();
            }
            drop(guard);
        });
        assert_eq!(reg.stop(), 1);
        reg.wait_idle();
        assert_eq!(conn.shut.load(Ordering::SeqCst), 1);
        assert_eq!(reg.workers(), 0);
        assert!(worker.join().is_ok());
        assert_eq!(
            LaneRegistry::admit(&reg, Arc::new(FakeConn::default())).err(),
            Some(Refusal::Stopping)
        );
        assert_eq!(reg.stop(), 0);
    }
}
