//! Data path transports of rpmemd: what moves bytes between the lanes of a
//! client and the mapped pool.
//!
//! * [`PoolMemory`]: the pool as lane workers see it, a raw pointer and a
//!   length (never a `&mut [u8]`: several lane threads write the pool at the
//!   same time), with the [`FlushOps`] and [`TargetMemory`] the core's persist
//!   engine drives.
//! * [`LaneRegistry`]: the shutdown coordinator shared by the accepting
//!   thread and the lane workers: which connections are open, which lanes are
//!   taken (each lane may be connected once), how many worker threads still
//!   run, and the stop that shuts every connection down and waits for them.
//!   The TCP data path registers a connection only once it proved the
//!   session secret, with its lane ([`LaneRegistry::admit_lane`]); the
//!   connections still waiting for their hello stay in its accepting thread.
//! * [`tcp`]: our TCP data path (`PROV_TCP`).
//!
//! Protocol decisions (frame checks, hello and secret, persist plans) are
//! made by `rpmem_core::persist`; this module only moves bytes.

mod memory;
mod registry;
pub mod tcp;
#[cfg(feature = "verbs")]
pub mod verbs;

pub use memory::{DeepFlush, PoolMemory, STREAM_INLINE_MIN};
pub use registry::{ConnId, Connection, LaneRegistry, Refusal, WorkerGuard};
