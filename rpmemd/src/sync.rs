//! The one door to synchronisation for the session and transport code.
//!
//! Every `Mutex`, `Condvar`, atomic, `Arc` and thread spawn of `session` and
//! `transport` comes from here (tokio's `src/loom` pattern): the standard
//! library's types in a normal build, the `loom` crate's model-checked ones
//! when built with `RUSTFLAGS="--cfg loom"`. Code written against this module
//! can be put under a loom model without change.
//!
//! Two things stay outside loom on purpose, and are named here so that they
//! too are reached through this module:
//!
//! * [`signal_safe`]: the process-wide statics a signal handler touches. A
//!   signal handler may only use lock-free atomics on `static`s, which loom
//!   does not model.
//! * [`pool_store_u64`] / [`pool_store_u8`]: stores into the shared pool
//!   mapping. They are memory accesses, not synchronisation (the client
//!   orders its lanes itself, as with RDMA); they use relaxed atomic stores
//!   so that lanes writing the same bytes concurrently are not a data race in
//!   Rust's memory model, and so that an aligned 8-byte word is written with
//!   exactly one 8-byte store (8-byte failure atomicity).
//!
//! The waits of a lane for its socket (`std::thread::yield_now`,
//! `std::hint::spin_loop`, `poll`, and the accepting thread's back-off
//! `std::thread::sleep` in `transport/tcp.rs`) stay `std` too: they wait for
//! the kernel, not for another thread, and under loom the number of spin
//! rounds (real time) would change loom's schedule between replays.
//!
//! `tests/loom.rs` model-checks the [`LaneRegistry`](crate::transport::LaneRegistry)
//! shutdown coordinator with these types; `docs/loom.md` says what the
//! models check.

#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Atomics for shared state between threads.
pub mod atomic {
    #[cfg(not(loom))]
    pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
}

/// Threads.
pub mod thread {
    #[cfg(not(loom))]
    pub use std::thread::{spawn, Builder, JoinHandle};

    #[cfg(loom)]
    pub use loom::thread::{spawn, Builder, JoinHandle};
}

/// Statics shared with a signal handler (never loom: see the module text).
pub mod signal_safe {
    pub use core::sync::atomic::{AtomicI32, Ordering};
}

/// Locks `mutex`, taking the data even if another thread panicked while
/// holding it (the state guarded in this crate stays consistent at every
/// statement, so a poisoned lock is still usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Stores `value` at `ptr` with one 8-byte store.
///
/// # Safety
///
/// `ptr` must be 8-byte aligned, valid for writes of 8 bytes, and stay mapped
/// for the duration of the call. Other threads may access the same bytes
/// concurrently only through these functions or from outside the program
/// (the kernel, a device).
pub unsafe fn pool_store_u64(ptr: *mut u64, value: u64) {
    // SAFETY: the caller guarantees alignment, validity and that every
    // concurrent Rust access is atomic; `from_ptr` needs exactly that.
    let cell = unsafe { core::sync::atomic::AtomicU64::from_ptr(ptr) };
    cell.store(value, core::sync::atomic::Ordering::Relaxed);
}

/// Stores one byte at `ptr`.
///
/// # Safety
///
/// `ptr` must be valid for a 1-byte write and stay mapped for the duration of
/// the call; concurrent Rust accesses to it must be atomic.
pub unsafe fn pool_store_u8(ptr: *mut u8, value: u8) {
    // SAFETY: as for `pool_store_u64`, with an alignment of 1.
    let cell = unsafe { core::sync::atomic::AtomicU8::from_ptr(ptr) };
    cell.store(value, core::sync::atomic::Ordering::Relaxed);
}
