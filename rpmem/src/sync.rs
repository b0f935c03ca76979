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
