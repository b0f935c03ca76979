//! `rpmem-replica`: one trait, [`Replica`], for what an application does with
//! a memory region that rpmem replicates to a remote pool: write bytes into
//! the local region, make ranges durable remotely (`persist`,
//! `deep_persist`, `flush` + `drain`, with librpmem's flags), and read the
//! remote pool back.
//!
//! Two implementations exist:
//!
//! * `rpmem::Lane` (the real library: TCP or RDMA lanes to a real rpmemd);
//!   its [`Replica::write`] is `Region::write_at`;
//! * `sim::app::SimLane` (the crash simulator: rpmem-core's engines over a
//!   simulated RNIC and persistence domains, crashed at every step).
//!
//! Code written against `R: Replica` runs unchanged on both, so the code you
//! crash-test in the simulator is the code you ship.
//!
//! The trait lives in this small crate, not in `rpmem` or `sim`, because
//! neither of those may depend on the other: `rpmem` must not pull in the
//! simulator, and the simulator must not pull in rpmem's ssh, TCP and RDMA
//! plumbing. Both depend on this crate (and on `rpmem-core`, whose flag
//! values it re-exports).
//!
//! ```
//! use rpmem_replica::{Replica, PERSIST_RELAXED};
//!
//! /// Append `value` at slot `n` of a table starting at `base`, then publish
//! /// the new count in the 8-byte word at `count_at`.
//! fn append<R: Replica>(r: &mut R, base: u64, count_at: u64, n: u64, value: u64) -> Result<(), R::Error> {
//!     let at = base + n * 8;
//!     r.write(at, &value.to_le_bytes())?;
//!     r.persist(at, 8, PERSIST_RELAXED)?; // the data first ...
//!     r.write(count_at, &(n + 1).to_le_bytes())?;
//!     r.persist(count_at, 8, 0) // ... then the count, 8-byte failure atomic
//! }
//! # let _ = append::<NoReplica>;
//! # struct NoReplica;
//! # impl Replica for NoReplica {
//! #     type Error = std::io::Error;
//! #     fn size(&self) -> u64 { 0 }
//! #     fn data_start(&self) -> u64 { 0 }
//! #     fn write(&mut self, _: u64, _: &[u8]) -> Result<(), Self::Error> { Ok(()) }
//! #     fn read_local(&self, _: u64, _: &mut [u8]) -> Result<(), Self::Error> { Ok(()) }
//! #     fn persist(&mut self, _: u64, _: u64, _: u32) -> Result<(), Self::Error> { Ok(()) }
//! #     fn deep_persist(&mut self, _: u64, _: u64) -> Result<(), Self::Error> { Ok(()) }
//! #     fn flush(&mut self, _: u64, _: u64, _: u32) -> Result<(), Self::Error> { Ok(()) }
//! #     fn drain(&mut self, _: u32) -> Result<(), Self::Error> { Ok(()) }
//! #     fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), Self::Error> { Ok(()) }
//! # }
//! ```
#![warn(missing_docs)]

pub use rpmem_core::persist::{FLUSH_RELAXED, PERSIST_RELAXED};

/// What an application does with one lane of a replicated region.
///
/// Offsets are pool offsets (the local region and the remote pool have the
/// same size and layout). The semantics are librpmem's (`docs/rpmem.md`):
///
/// * [`persist`](Replica::persist)`(off, len, 0)`: the range travels inside
///   persist messages; every aligned 8-byte word of it is written failure
///   atomically (after a crash it holds the old or the new value, never a
///   mix). Returns once the range, and every earlier flush of this lane, is
///   durable. With [`PERSIST_RELAXED`]: the same durability, no 8-byte
///   atomicity.
/// * [`deep_persist`](Replica::deep_persist): a relaxed persist, then the
///   target flushes the range to the lowest persistence domain software
///   reaches. On a platform whose memory controller is not trusted to
///   survive a power failure (Device DAX without trusted ADR) only deep
///   persists are durable.
/// * [`flush`](Replica::flush) sends and returns early; a later
///   [`drain`](Replica::drain) (or persist) on the same lane makes it
///   durable. Flags: 0 or [`FLUSH_RELAXED`].
/// * Calls on different lanes are not ordered with respect to each other.
/// * The data sent is read from the local region when it is sent, which
///   for a flush may be after the call returned: do not change flushed bytes
///   before the drain that covers them.
pub trait Replica {
    /// What a failed or refused call returns.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Size of the pool (and of the local region) in bytes.
    fn size(&self) -> u64;

    /// The first offset that may be written: 4096 when the pool has a pool
    /// header (its first page), 0 without.
    fn data_start(&self) -> u64;

    /// Copy `data` into the local region at `offset`. Nothing reaches the
    /// remote pool until a persist or flush covers it.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Self::Error>;

    /// Copy local region bytes at `offset` into `buf`.
    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// `rpmem_persist`: make `[offset, offset + len)` durable remotely.
    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Self::Error>;

    /// `rpmem_deep_persist`: persist, then flush to the deepest domain.
    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), Self::Error>;

    /// `rpmem_flush`: start sending `[offset, offset + len)`.
    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Self::Error>;

    /// `rpmem_drain`: make every earlier flush of this lane durable. `flags`
    /// must be 0.
    fn drain(&mut self, flags: u32) -> Result<(), Self::Error>;

    /// `rpmem_read`: read remote pool bytes at `offset` into `buf`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

impl<R: Replica + ?Sized> Replica for &mut R {
    type Error = R::Error;

    fn size(&self) -> u64 {
        (**self).size()
    }
    fn data_start(&self) -> u64 {
        (**self).data_start()
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write(offset, data)
    }
    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_local(offset, buf)
    }
    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Self::Error> {
        (**self).persist(offset, len, flags)
    }
    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), Self::Error> {
        (**self).deep_persist(offset, len)
    }
    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Self::Error> {
        (**self).flush(offset, len, flags)
    }
    fn drain(&mut self, flags: u32) -> Result<(), Self::Error> {
        (**self).drain(flags)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read(offset, buf)
    }
}
