//! `rpmem`: remote persistent memory, the initiator side (librpmem's API).
//!
//! The library replicates a local memory [`Region`] into a pool set on
//! another host. It starts **rpmemd** there over ssh (or, in local mode,
//! directly on this host), agrees on the pool over rpmemd's stdin/stdout
//! (the out-of-band protocol of PMDK 1.12.1), then moves data over one TCP
//! connection per lane. A successful [`Lane::persist`] means the bytes are
//! durable on the target.
//!
//! All protocol logic lives in `rpmem-core`; this crate moves bytes between
//! its machines and the operating system.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rpmem::{Options, PoolAttr, Region, RemotePool, PERSIST_RELAXED};
//!
//! # fn main() -> Result<(), rpmem::Error> {
//! // 1 MiB of local memory, replicated into "pool.set" on host "target",
//! // a pool with headers: the first 4096 bytes hold the attributes.
//! let region = Arc::new(Region::new(1 << 20)?);
//! let opts = Options::from_env()?;
//! let attr = PoolAttr { signature: *b"MYAPP\0\0\0", major: 1, ..PoolAttr::ZERO };
//! let pool = RemotePool::create("alice@target", "pool.set", Arc::clone(&region), 4, Some(&attr), &opts)?;
//!
//! // Write locally, then make it durable remotely.
//! region.write_at(4096, b"hello, remote pmem")?;
//! let mut lane = pool.lane(0)?;
//! lane.persist(4096, 18, 0)?;
//! lane.persist(8192, 4096, PERSIST_RELAXED)?;
//! drop(lane);
//!
//! // Lanes work from several threads at once: one `Lane` per thread.
//! std::thread::scope(|s| {
//!     for mut lane in pool.lanes().expect("lanes are free") {
//!         s.spawn(move || lane.persist((1 + u64::from(lane.index())) * 4096, 4096, 0));
//!     }
//! });
//! pool.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! The parts that need no remote host run anywhere:
//!
//! ```
//! use rpmem::{Options, Launch, Region, Target};
//!
//! let t: Target = "alice@[::1]:2222".parse().unwrap();
//! assert_eq!((t.user(), t.host(), t.port()), (Some("alice"), "::1", Some(2222)));
//!
//! let region = Region::new(Region::page_size()).unwrap();
//! region.write_at(10, b"abc").unwrap();
//! let mut back = [0u8; 3];
//! region.read_at(10, &mut back).unwrap();
//! assert_eq!(&back, b"abc");
//!
//! let opts = Options::builder().launch(Launch::Local).command("rpmemd -c /etc/rpmemd.conf").build();
//! assert_eq!(opts.launch(), Launch::Local);
//! ```
//!
//! See `docs/rpmem.md` for the manual: launch modes, environment, lanes and
//! threads, deadlines, errors, and differences from PMDK.

#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
// No panic on untrusted input, enforced (issue 15): outside tests, no unwrap,
// expect, panic! or unchecked indexing; fallible code returns typed errors.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod datapath;
mod driver;
mod error;
mod lane;
mod launch;
mod list;
mod oob;
mod options;
mod pool;
mod region;
mod replica;
pub(crate) mod sync;
mod target;
#[cfg(feature = "verbs")]
mod verbs_lane;

#[cfg(test)]
mod tests;

/// The README's Rust example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use error::Error;
pub use list::{list_pool_sets, PoolSetEntry, PoolSetList, PoolSetStatus, MAX_LIST_OUTPUT};
pub use options::{
    CommandRotation, Launch, Options, OptionsBuilder, Transport, DEFAULT_CMD,
    DEFAULT_CONTROL_TIMEOUT, DEFAULT_DATA_TIMEOUT, DEFAULT_INLINE_SIZE, DEFAULT_SPIN, DEFAULT_SSH,
    DEFAULT_WQ_SIZE, ENV_CMD, ENV_LAUNCH, ENV_MAX_NLANES, ENV_PROVIDER, ENV_RDMA_FLUSH,
    ENV_SPIN_US, ENV_SSH, ENV_WORK_QUEUE_SIZE,
};
pub use pool::{remove, Lane, RemotePool, REMOVE_FORCE, REMOVE_POOL_SET};
pub use region::Region;
pub use rpmem_core::persist::{Method, FLUSH_RELAXED, PERSIST_RELAXED};
pub use rpmem_core::PoolAttr;
pub use target::Target;
