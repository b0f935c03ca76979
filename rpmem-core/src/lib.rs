//! `rpmem-core`: the part of rpmem that every other part stands on.
//!
//! Everything in this crate is `#![no_std]`, needs no allocator and never
//! panics on any input. It holds:
//!
//! * [`poolset`] — the pool set file grammar of `poolset(5)` and PMDK's size rules;
//! * [`pool_hdr`] — the 4096-byte `struct pool_hdr` of PMDK 1.12.1 and its checksum;
//! * [`attr`] — `rpmem_pool_attr`, the attributes a client stores in a pool;
//! * [`wire`] — every wire format: the out-of-band messages (byte-compatible
//!   with PMDK 1.12.1 `rpmem_proto.h`) and the in-band data path messages;
//! * [`oob`] — sans-IO client and server machines for the out-of-band handshake;
//! * [`persist`] — the per-lane persist engines of the initiator and the target;
//! * [`policy`] — the persistency method table of `rpmemd(1)`;
//! * [`flush`] — CPU cache flush primitives and the trait the engines flush through.
//!
//! Protocol logic lives here once. The daemon, the library and the simulator
//! only move bytes and completions between these machines and the world.
#![no_std]
#![deny(unsafe_code)]
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

#[cfg(feature = "std")]
extern crate std;

pub mod attr;
pub mod flush;
pub mod list;
pub mod negotiate;
pub mod oob;
pub mod persist;
pub mod policy;
pub mod pool_hdr;
pub mod poolset;
pub mod seal;
pub mod text;
pub mod wire;

pub use attr::PoolAttr;
