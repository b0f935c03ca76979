//! The synchronisation facade: every lock, atomic and thread of the lane
//! handling and completion path comes from here (tokio's `src/loom` pattern).
//!
//! Today the lane path needs only the per-lane locks of
//! [`RemotePool`](crate::RemotePool) (a lane is otherwise owned by one
//! thread, and the stream has no shared completion queue); add any atomic,
//! channel or thread spawn of that path here, next to them.
//!
//! In a normal build these are the `std` types. Built with
//! `RUSTFLAGS="--cfg loom"` they are [`loom`](https://docs.rs/loom)'s, so a
//! model test can explore every interleaving of the real code.
//!
//! Lock poisoning is not an error here: a thread that panicked while holding a
//! lane lock leaves a lane whose engine state is still consistent (the engine
//! never panics and every update is a single assignment), so [`lock`] simply
//! takes the guard back.
//!
//! `rpmem/tests/loom.rs` model-checks the production [`RemotePool`] and
//! [`Lane`] with these types (`docs/loom.md`).
//!
//! # Deliberately outside the facade
//!
//! * `std::sync::Arc` of the [`Region`](crate::Region) (and of the child's
//!   `RemoteInfo`): the region is handed in by the application as a std
//!   `Arc`, part of the public API; the count only keeps memory alive.
//! * The spin loop of a lane waiting for its socket (`std::thread::yield_now`,
//!   `Instant`, `poll`): it waits for the kernel, not for another thread of
//!   this library. Under loom it must stay a real wait, or the number of spin
//!   rounds (which depends on real time) would change loom's schedule from
//!   one replay to the next.
//! * The stored bytes of the region (`std` atomics inside `Region`): memory,
//!   not synchronisation, as the pool stores of rpmemd.
//! * Gap, not on purpose: the stderr reader thread and its
//!   `Mutex`/`Condvar` in `launch.rs` (read when a lane fails, to say why
//!   rpmemd went away) and the command rotation counter in `options.rs` use
//!   `std` directly.
//!
//! # Closing the pool cannot race a call
//!
//! [`RemotePool::close`] takes the pool by value, so the compiler forbids
//! closing it while a [`Lane`] borrows it:
//!
//! ```compile_fail,E0505
//! fn close_while_a_lane_is_out(pool: rpmem::RemotePool) -> Result<(), rpmem::Error> {
//!     let mut lane = pool.lane(0)?;
//!     pool.close()?; // `pool` is borrowed by `lane`
//!     lane.persist(0, 64, 0)
//! }
//! ```
//!
//! or while another thread makes a numbered call:
//!
//! ```compile_fail,E0505
//! fn close_while_a_thread_persists(pool: rpmem::RemotePool) {
//!     std::thread::scope(|s| {
//!         s.spawn(|| pool.persist(0, 0, 64, 0));
//!         let _ = pool.close(); // `pool` is borrowed by the thread
//!     });
//! }
//! ```
//!
//! or while the pool is shared:
//!
//! ```compile_fail,E0507
//! fn close_a_shared_pool(pool: std::sync::Arc<rpmem::RemotePool>) {
//!     let other = std::sync::Arc::clone(&pool);
//!     std::thread::spawn(move || other.persist(0, 0, 64, 0));
//!     let _ = pool.close(); // cannot move out of an `Arc`
//! }
//! ```
//!
//! The same code in the allowed order compiles; what remains at run time
//! (the last user of a shared pool ends it, in whichever thread) is the loom
//! model `persist_racing_close`:
//!
//! ```no_run
//! fn close_after_the_calls(pool: rpmem::RemotePool) -> Result<(), rpmem::Error> {
//!     let mut lane = pool.lane(0)?;
//!     lane.persist(0, 64, 0)?;
//!     drop(lane);
//!     std::thread::scope(|s| {
//!         s.spawn(|| pool.persist(0, 0, 64, 0));
//!     });
//!     let shared = std::sync::Arc::new(pool);
//!     let other = std::sync::Arc::clone(&shared);
//!     std::thread::spawn(move || other.persist(0, 0, 64, 0))
//!         .join()
//!         .expect("no panic")?;
//!     match std::sync::Arc::try_unwrap(shared) {
//!         Ok(pool) => pool.close(),
//!         Err(_) => Ok(()),
//!     }
//! }
//! ```
//!
//! [`RemotePool`]: crate::RemotePool
//! [`RemotePool::close`]: crate::RemotePool::close
//! [`Lane`]: crate::Lane

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::{Mutex, MutexGuard};
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}

pub(crate) use imp::*;

/// Locks `m`, taking the guard back if another thread panicked while holding
/// it (see the module documentation).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
