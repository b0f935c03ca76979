//! The 4096-byte pool header of PMDK 1.12.1 (`struct pool_hdr`).
//!
//! Every part file of a pool set with headers starts with this header. It is
//! little-endian on media. Layout (offset / size in bytes):
//!
//! | field | offset | size |
//! |---|---|---|
//! | `signature` | 0 | 8 |
//! | `major` | 8 | 4 |
//! | `features.compat` / `.incompat` / `.ro_compat` | 12 / 16 / 20 | 4 each |
//! | `poolset_uuid` | 24 | 16 |
//! | `uuid` (this part) | 40 | 16 |
//! | `prev_part_uuid` / `next_part_uuid` | 56 / 72 | 16 each |
//! | `prev_repl_uuid` / `next_repl_uuid` | 88 / 104 | 16 each |
//! | `crtime` | 120 | 8 |
//! | `arch_flags` | 128 | 16 |
//! | `unused` (zero) | 144 | 1904 |
//! | `unused2` (zero, not checksummed with `CKSUM_2K`) | 2048 | 1976 |
//! | `sds` (shutdown state) | 4024 | 64 |
//! | `checksum` | 4088 | 8 |
//!
//! In the smoltcp `wire` style, [`PoolHdr`] is a zero-copy view over a buffer
//! (one length check in [`PoolHdr::new_checked`], then no accessor can fail)
//! and [`PoolHdrRepr`] is the plain value with [`PoolHdrRepr::parse`]
//! (verifies the checksum) and [`PoolHdrRepr::emit`] (inserts it).
//!
//! [`to_attr`] / [`from_attr`] map between the header and
//! [`crate::attr::PoolAttr`] the way PMDK's rpmemd does, and [`check_parts`]
//! validates the headers of all parts of a remote pool the way
//! `util_header_check_remote` does.

mod arch;
mod attr_map;
mod check;
mod checksum;
mod error;
mod features;
#[cfg(test)]
mod tests;

pub use arch::{
    alignment_desc, ArchFlags, ALIGNMENT_DESC_BITS, DATA_BE, DATA_LE, MACHINE_AARCH64,
    MACHINE_CLASS_32, MACHINE_CLASS_64, MACHINE_LOONGARCH64, MACHINE_PPC64, MACHINE_RISCV64,
    MACHINE_UNKNOWN, MACHINE_X86_64,
};
pub use attr_map::{attr_for_create, from_attr, to_attr, PartLinks};
pub use check::check_parts;
pub use checksum::{checksum, checksum_with_field};
pub use error::{HdrError, Hex16, HexUuid, Sig};
pub use features::{
    checksum_end, uses_cksum_2k, FeatureAccess, Features, POOL_FEAT_CHECK_BAD_BLOCKS,
    POOL_FEAT_CKSUM_2K, POOL_FEAT_COMPAT_ALL, POOL_FEAT_COMPAT_VALID, POOL_FEAT_INCOMPAT_ALL,
    POOL_FEAT_INCOMPAT_DEFAULT, POOL_FEAT_INCOMPAT_VALID, POOL_FEAT_RO_COMPAT_ALL, POOL_FEAT_SDS,
    POOL_FEAT_SINGLEHDR,
};

use crate::attr::{Uuid, SIG_LEN};
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the pool header on media (`POOL_HDR_SIZE` with 4 KiB pages).
pub const POOL_HDR_SIZE: usize = 4096;
/// Length of the signature (`POOL_HDR_SIG_LEN`).
pub const POOL_HDR_SIG_LEN: usize = SIG_LEN;
/// Size of the first reserved area (`POOL_HDR_UNUSED_SIZE`).
pub const POOL_HDR_UNUSED_SIZE: usize = 1904;
/// Size of the second reserved area (`POOL_HDR_UNUSED2_SIZE`).
pub const POOL_HDR_UNUSED2_SIZE: usize = 1976;
/// End of the checksummed range with `CKSUM_2K` (`POOL_HDR_CSUM_2K_END_OFF`,
/// the offset of `unused2`).
pub const POOL_HDR_CSUM_2K_END_OFF: usize = 2048;
/// End of the checksummed range without `CKSUM_2K` (`POOL_HDR_CSUM_4K_END_OFF`,
/// the offset of `checksum`).
pub const POOL_HDR_CSUM_4K_END_OFF: usize = 4088;

/// Byte ranges of every field of `struct pool_hdr`.
pub mod field {
    use core::ops::Range;

    /// `signature[8]`.
    pub const SIGNATURE: Range<usize> = 0..8;
    /// `major`, u32.
    pub const MAJOR: Range<usize> = 8..12;
    /// `features.compat`, u32.
    pub const COMPAT: Range<usize> = 12..16;
    /// `features.incompat`, u32.
    pub const INCOMPAT: Range<usize> = 16..20;
    /// `features.ro_compat`, u32.
    pub const RO_COMPAT: Range<usize> = 20..24;
    /// `poolset_uuid`.
    pub const POOLSET_UUID: Range<usize> = 24..40;
    /// `uuid` of this part.
    pub const UUID: Range<usize> = 40..56;
    /// `prev_part_uuid`.
    pub const PREV_PART_UUID: Range<usize> = 56..72;
    /// `next_part_uuid`.
    pub const NEXT_PART_UUID: Range<usize> = 72..88;
    /// `prev_repl_uuid`.
    pub const PREV_REPL_UUID: Range<usize> = 88..104;
    /// `next_repl_uuid`.
    pub const NEXT_REPL_UUID: Range<usize> = 104..120;
    /// `crtime`, u64 seconds since the epoch.
    pub const CRTIME: Range<usize> = 120..128;
    /// `arch_flags` (16 bytes, see [`arch`]).
    pub const ARCH_FLAGS: Range<usize> = 128..144;
    /// `unused[1904]`, zero.
    pub const UNUSED: Range<usize> = 144..2048;
    /// `unused2[1976]`, zero.
    pub const UNUSED2: Range<usize> = 2048..4024;
    /// `sds` (64 bytes, see [`sds`]).
    pub const SDS: Range<usize> = 4024..4088;
    /// `checksum`, u64.
    pub const CHECKSUM: Range<usize> = 4088..4096;

    /// Fields of `struct arch_flags`, relative to [`ARCH_FLAGS`].
    pub mod arch {
        use core::ops::Range;
        /// `alignment_desc`, u64.
        pub const ALIGNMENT_DESC: Range<usize> = 0..8;
        /// `machine_class`, u8.
        pub const MACHINE_CLASS: usize = 8;
        /// `data`, u8.
        pub const DATA: usize = 9;
        /// `reserved[4]`.
        pub const RESERVED: Range<usize> = 10..14;
        /// `machine`, u16.
        pub const MACHINE: Range<usize> = 14..16;
    }

    /// Fields of `struct shutdown_state`, relative to [`SDS`].
    pub mod sds {
        use core::ops::Range;
        /// `usc`, u64 unsafe shutdown count.
        pub const USC: Range<usize> = 0..8;
        /// `uuid`, u64 checksum of the parts' device ids.
        pub const UUID: Range<usize> = 8..16;
        /// `dirty`, u8.
        pub const DIRTY: usize = 16;
        /// `reserved[39]`.
        pub const RESERVED: Range<usize> = 17..56;
        /// `checksum`, u64 over the 64 bytes.
        pub const CHECKSUM: Range<usize> = 56..64;
    }
}

/// The on-media structs, for zero-copy access. Private: [`PoolHdr`] is the
/// public view.
mod raw {
    use super::*;

    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub(super) struct RawArchFlags {
        pub(super) alignment_desc: U64,
        pub(super) machine_class: u8,
        pub(super) data: u8,
        pub(super) reserved: [u8; 4],
        pub(super) machine: U16,
    }

    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub(super) struct RawShutdownState {
        pub(super) usc: U64,
        pub(super) uuid: U64,
        pub(super) dirty: u8,
        pub(super) reserved: [u8; 39],
        pub(super) checksum: U64,
    }

    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub(super) struct RawPoolHdr {
        pub(super) signature: [u8; SIG_LEN],
        pub(super) major: U32,
        pub(super) compat: U32,
        pub(super) incompat: U32,
        pub(super) ro_compat: U32,
        pub(super) poolset_uuid: Uuid,
        pub(super) uuid: Uuid,
        pub(super) prev_part_uuid: Uuid,
        pub(super) next_part_uuid: Uuid,
        pub(super) prev_repl_uuid: Uuid,
        pub(super) next_repl_uuid: Uuid,
        pub(super) crtime: U64,
        pub(super) arch_flags: RawArchFlags,
        pub(super) unused: [u8; POOL_HDR_UNUSED_SIZE],
        pub(super) unused2: [u8; POOL_HDR_UNUSED2_SIZE],
        pub(super) sds: RawShutdownState,
        pub(super) checksum: U64,
    }

    /// What accessors read if the buffer were ever too short (cannot happen
    /// after `new_checked`; it keeps every accessor panic-free regardless).
    pub(super) static ZERO_HDR: RawPoolHdr = RawPoolHdr {
        signature: [0; SIG_LEN],
        major: U32::ZERO,
        compat: U32::ZERO,
        incompat: U32::ZERO,
        ro_compat: U32::ZERO,
        poolset_uuid: [0; 16],
        uuid: [0; 16],
        prev_part_uuid: [0; 16],
        next_part_uuid: [0; 16],
        prev_repl_uuid: [0; 16],
        next_repl_uuid: [0; 16],
        crtime: U64::ZERO,
        arch_flags: RawArchFlags {
            alignment_desc: U64::ZERO,
            machine_class: 0,
            data: 0,
            reserved: [0; 4],
            machine: U16::ZERO,
        },
        unused: [0; POOL_HDR_UNUSED_SIZE],
        unused2: [0; POOL_HDR_UNUSED2_SIZE],
        sds: RawShutdownState {
            usc: U64::ZERO,
            uuid: U64::ZERO,
            dirty: 0,
            reserved: [0; 39],
            checksum: U64::ZERO,
        },
        checksum: U64::ZERO,
    };

    // The layout above must match `field` (and PMDK's struct_layout.txt).
    macro_rules! at {
        ($t:ty, $f:ident, $r:expr) => {
            const _: () = assert!(core::mem::offset_of!($t, $f) == $r);
        };
    }
    const _: () = assert!(core::mem::size_of::<RawPoolHdr>() == POOL_HDR_SIZE);
    const _: () = assert!(core::mem::size_of::<RawArchFlags>() == 16);
    const _: () = assert!(core::mem::size_of::<RawShutdownState>() == 64);
    at!(RawPoolHdr, signature, field::SIGNATURE.start);
    at!(RawPoolHdr, major, field::MAJOR.start);
    at!(RawPoolHdr, compat, field::COMPAT.start);
    at!(RawPoolHdr, incompat, field::INCOMPAT.start);
    at!(RawPoolHdr, ro_compat, field::RO_COMPAT.start);
    at!(RawPoolHdr, poolset_uuid, field::POOLSET_UUID.start);
    at!(RawPoolHdr, uuid, field::UUID.start);
    at!(RawPoolHdr, prev_part_uuid, field::PREV_PART_UUID.start);
    at!(RawPoolHdr, next_part_uuid, field::NEXT_PART_UUID.start);
    at!(RawPoolHdr, prev_repl_uuid, field::PREV_REPL_UUID.start);
    at!(RawPoolHdr, next_repl_uuid, field::NEXT_REPL_UUID.start);
    at!(RawPoolHdr, crtime, field::CRTIME.start);
    at!(RawPoolHdr, arch_flags, field::ARCH_FLAGS.start);
    at!(RawPoolHdr, unused, field::UNUSED.start);
    at!(RawPoolHdr, unused2, field::UNUSED2.start);
    at!(RawPoolHdr, sds, field::SDS.start);
    at!(RawPoolHdr, checksum, field::CHECKSUM.start);
    at!(
        RawArchFlags,
        alignment_desc,
        field::arch::ALIGNMENT_DESC.start
    );
    at!(RawArchFlags, machine_class, field::arch::MACHINE_CLASS);
    at!(RawArchFlags, data, field::arch::DATA);
    at!(RawArchFlags, reserved, field::arch::RESERVED.start);
    at!(RawArchFlags, machine, field::arch::MACHINE.start);
    at!(RawShutdownState, usc, field::sds::USC.start);
    at!(RawShutdownState, uuid, field::sds::UUID.start);
    at!(RawShutdownState, dirty, field::sds::DIRTY);
    at!(RawShutdownState, reserved, field::sds::RESERVED.start);
    at!(RawShutdownState, checksum, field::sds::CHECKSUM.start);
}

use raw::{RawPoolHdr, RawShutdownState};

/// The shutdown state kept in the header (`struct shutdown_state`, 64 bytes
/// at offset 4024). Kept byte-exact, `reserved` included.
///
/// PMDK only uses it when the `SDS` incompat feature is set, and repairs it
/// (re-initialises it) rather than failing when its checksum is wrong, so
/// [`PoolHdrRepr::parse`] never rejects a header because of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShutdownState {
    /// Sum of the unsafe shutdown counts of the parts' devices.
    pub usc: u64,
    /// Sum of the checksums of the parts' device ids.
    pub uuid: u64,
    /// Non-zero while the pool is open.
    pub dirty: u8,
    /// Reserved bytes.
    pub reserved: [u8; 39],
    /// Checksum of the 64 bytes (field counted as zero).
    pub checksum: u64,
}

impl Default for ShutdownState {
    fn default() -> Self {
        Self::ZERO
    }
}

impl ShutdownState {
    /// Size on media.
    pub const LEN: usize = 64;

    /// All zero: what rpmemd writes for pools without the `SDS` feature.
    pub const ZERO: ShutdownState = ShutdownState {
        usc: 0,
        uuid: 0,
        dirty: 0,
        reserved: [0; 39],
        checksum: 0,
    };

    fn from_raw(r: &RawShutdownState) -> Self {
        ShutdownState {
            usc: r.usc.get(),
            uuid: r.uuid.get(),
            dirty: r.dirty,
            reserved: r.reserved,
            checksum: r.checksum.get(),
        }
    }

    fn to_raw(self) -> RawShutdownState {
        RawShutdownState {
            usc: U64::new(self.usc),
            uuid: U64::new(self.uuid),
            dirty: self.dirty,
            reserved: self.reserved,
            checksum: U64::new(self.checksum),
        }
    }

    /// The 64 on-media bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.to_raw().as_bytes());
        out
    }

    /// The checksum PMDK's `shutdown_state_checksum` would store:
    /// `util_checksum(sds, 64, &sds->checksum, 1, 0)`.
    pub fn compute_checksum(&self) -> u64 {
        checksum_with_field(&self.to_bytes(), Self::LEN, field::sds::CHECKSUM.start, 0)
    }

    /// True when the stored checksum matches (PMDK re-initialises the state
    /// instead of failing when it does not).
    pub fn checksum_ok(&self) -> bool {
        self.compute_checksum() == self.checksum
    }
}

/// A zero-copy view of a pool header over a byte buffer.
///
/// After [`PoolHdr::new_checked`] the buffer is known to hold at least 4096
/// bytes and no accessor can fail or panic. Only the first 4096 bytes are
/// used. Integers are read and written little-endian.
#[derive(Debug, Clone)]
pub struct PoolHdr<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PoolHdr<T> {
    /// Wraps a buffer without checking its length. Accessors still never
    /// panic: on a short buffer they read zeros and setters do nothing. Use
    /// [`PoolHdr::new_checked`] unless the length is already known.
    pub const fn new_unchecked(buffer: T) -> PoolHdr<T> {
        PoolHdr { buffer }
    }

    /// Wraps a buffer after checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<PoolHdr<T>, HdrError> {
        let hdr = Self::new_unchecked(buffer);
        hdr.check_len()?;
        Ok(hdr)
    }

    /// Fails with [`HdrError::TooShort`] when the buffer is shorter than 4096 bytes.
    pub fn check_len(&self) -> Result<(), HdrError> {
        let len = self.buffer.as_ref().len();
        if len < POOL_HDR_SIZE {
            Err(HdrError::TooShort { len })
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn raw(&self) -> &RawPoolHdr {
        match RawPoolHdr::ref_from_prefix(self.buffer.as_ref()) {
            Ok((hdr, _)) => hdr,
            Err(_) => &raw::ZERO_HDR,
        }
    }

    /// The 4096 header bytes (empty if the buffer is too short).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref().get(..POOL_HDR_SIZE).unwrap_or(&[])
    }

    /// `signature`.
    pub fn signature(&self) -> [u8; SIG_LEN] {
        self.raw().signature
    }

    /// `major`, the format major version.
    pub fn major(&self) -> u32 {
        self.raw().major.get()
    }

    /// The three feature masks.
    pub fn features(&self) -> Features {
        let r = self.raw();
        Features {
            compat: r.compat.get(),
            incompat: r.incompat.get(),
            ro_compat: r.ro_compat.get(),
        }
    }

    /// `poolset_uuid`.
    pub fn poolset_uuid(&self) -> Uuid {
        self.raw().poolset_uuid
    }

    /// `uuid` of this part.
    pub fn uuid(&self) -> Uuid {
        self.raw().uuid
    }

    /// `prev_part_uuid`.
    pub fn prev_part_uuid(&self) -> Uuid {
        self.raw().prev_part_uuid
    }

    /// `next_part_uuid`.
    pub fn next_part_uuid(&self) -> Uuid {
        self.raw().next_part_uuid
    }

    /// `prev_repl_uuid`.
    pub fn prev_repl_uuid(&self) -> Uuid {
        self.raw().prev_repl_uuid
    }

    /// `next_repl_uuid`.
    pub fn next_repl_uuid(&self) -> Uuid {
        self.raw().next_repl_uuid
    }

    /// `crtime`, creation time in seconds since the epoch.
    pub fn crtime(&self) -> u64 {
        self.raw().crtime.get()
    }

    /// `arch_flags`, decoded.
    pub fn arch_flags(&self) -> ArchFlags {
        ArchFlags::from_bytes(self.arch_flags_bytes())
    }

    /// `arch_flags` as the 16 raw bytes (a remote pool's `user_flags`).
    pub fn arch_flags_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(self.raw().arch_flags.as_bytes());
        out
    }

    /// `unused` (1904 bytes that must be zero).
    pub fn unused(&self) -> &[u8] {
        &self.raw().unused
    }

    /// `unused2` (1976 bytes that must be zero).
    pub fn unused2(&self) -> &[u8] {
        &self.raw().unused2
    }

    /// `sds`, the shutdown state.
    pub fn sds(&self) -> ShutdownState {
        ShutdownState::from_raw(&self.raw().sds)
    }

    /// `checksum` as stored.
    pub fn checksum(&self) -> u64 {
        self.raw().checksum.get()
    }

    /// End of the checksummed range for this header's incompat features.
    pub fn checksum_end(&self) -> usize {
        checksum_end(self.raw().incompat.get())
    }

    /// True when the header uses the 2 KiB checksum (`CKSUM_2K`).
    pub fn uses_cksum_2k(&self) -> bool {
        uses_cksum_2k(self.raw().incompat.get())
    }

    /// The checksum PMDK computes for these bytes:
    /// `util_checksum(hdr, 4096, &hdr->checksum, 0, POOL_HDR_CSUM_END_OFF(hdr))`.
    pub fn compute_checksum(&self) -> u64 {
        checksum(self.raw().as_bytes(), POOL_HDR_SIZE, self.checksum_end())
    }

    /// Fails with [`HdrError::BadChecksum`] (stored vs computed) when the
    /// stored checksum is wrong.
    pub fn verify_checksum(&self) -> Result<(), HdrError> {
        let stored = self.checksum();
        let computed = self.compute_checksum();
        if stored == computed {
            Ok(())
        } else {
            Err(HdrError::BadChecksum {
                stored,
                computed,
                end: self.checksum_end(),
            })
        }
    }

    /// True when all 4096 bytes are zero (`util_is_zeroed`).
    pub fn is_zeroed(&self) -> bool {
        self.raw().as_bytes().iter().all(|&b| b == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> PoolHdr<T> {
    fn raw_mut(&mut self) -> Option<&mut RawPoolHdr> {
        RawPoolHdr::mut_from_prefix(self.buffer.as_mut())
            .ok()
            .map(|(hdr, _)| hdr)
    }

    /// Sets `signature`.
    pub fn set_signature(&mut self, v: [u8; SIG_LEN]) {
        if let Some(r) = self.raw_mut() {
            r.signature = v;
        }
    }

    /// Sets `major`.
    pub fn set_major(&mut self, v: u32) {
        if let Some(r) = self.raw_mut() {
            r.major.set(v);
        }
    }

    /// Sets the three feature masks.
    pub fn set_features(&mut self, v: Features) {
        if let Some(r) = self.raw_mut() {
            r.compat.set(v.compat);
            r.incompat.set(v.incompat);
            r.ro_compat.set(v.ro_compat);
        }
    }

    /// Sets `poolset_uuid`.
    pub fn set_poolset_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.poolset_uuid = v;
        }
    }

    /// Sets `uuid`.
    pub fn set_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.uuid = v;
        }
    }

    /// Sets `prev_part_uuid`.
    pub fn set_prev_part_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.prev_part_uuid = v;
        }
    }

    /// Sets `next_part_uuid`.
    pub fn set_next_part_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.next_part_uuid = v;
        }
    }

    /// Sets `prev_repl_uuid`.
    pub fn set_prev_repl_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.prev_repl_uuid = v;
        }
    }

    /// Sets `next_repl_uuid`.
    pub fn set_next_repl_uuid(&mut self, v: Uuid) {
        if let Some(r) = self.raw_mut() {
            r.next_repl_uuid = v;
        }
    }

    /// Sets `crtime`.
    pub fn set_crtime(&mut self, v: u64) {
        if let Some(r) = self.raw_mut() {
            r.crtime.set(v);
        }
    }

    /// Sets `arch_flags` from its decoded form.
    pub fn set_arch_flags(&mut self, v: ArchFlags) {
        self.set_arch_flags_bytes(v.to_bytes());
    }

    /// Sets `arch_flags` from 16 raw bytes (a remote pool's `user_flags`).
    pub fn set_arch_flags_bytes(&mut self, v: [u8; 16]) {
        if let Some(r) = self.raw_mut() {
            r.arch_flags.as_mut_bytes().copy_from_slice(&v);
        }
    }

    /// Zeroes `unused` and `unused2`.
    pub fn clear_unused(&mut self) {
        if let Some(r) = self.raw_mut() {
            r.unused.fill(0);
            r.unused2.fill(0);
        }
    }

    /// Sets `sds`.
    pub fn set_sds(&mut self, v: ShutdownState) {
        if let Some(r) = self.raw_mut() {
            r.sds = v.to_raw();
        }
    }

    /// Sets `checksum` to a given value.
    pub fn set_checksum(&mut self, v: u64) {
        if let Some(r) = self.raw_mut() {
            r.checksum.set(v);
        }
    }

    /// Computes the checksum over the current bytes and stores it
    /// (`util_checksum(..., insert = 1, ...)`).
    pub fn fill_checksum(&mut self) {
        let sum = self.compute_checksum();
        self.set_checksum(sum);
    }
}

/// A pool header as a plain value.
///
/// Every byte of a header that [`PoolHdrRepr::parse`] accepts is kept, so
/// `emit(parse(bytes)) == bytes`. The checksum is not kept: `parse` verifies
/// it and `emit` computes it. `unused`/`unused2` are not kept either: `parse`
/// requires them to be zero and `emit` writes zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolHdrRepr {
    /// Pool signature.
    pub signature: [u8; SIG_LEN],
    /// Format major version.
    pub major: u32,
    /// Feature masks.
    pub features: Features,
    /// Uuid of the pool set.
    pub poolset_uuid: Uuid,
    /// Uuid of this part.
    pub uuid: Uuid,
    /// Uuid of the previous part (ring order).
    pub prev_part_uuid: Uuid,
    /// Uuid of the next part (ring order).
    pub next_part_uuid: Uuid,
    /// Uuid of the previous replica.
    pub prev_repl_uuid: Uuid,
    /// Uuid of the next replica.
    pub next_repl_uuid: Uuid,
    /// Creation time, seconds since the epoch.
    pub crtime: u64,
    /// Architecture flags; on a remote pool, the client's `user_flags`.
    pub arch_flags: ArchFlags,
    /// Shutdown state.
    pub sds: ShutdownState,
}

impl PoolHdrRepr {
    /// Reads a header from a checked view.
    ///
    /// Verifies the checksum first ([`HdrError::BadChecksum`] shows the
    /// stored and the computed value), then that `unused` and `unused2` are
    /// zero ([`HdrError::NonZeroReserved`] names the first non-zero byte).
    /// An all-zero header parses (its checksum is zero too): use
    /// [`PoolHdrRepr::check`] to reject it.
    pub fn parse<T: AsRef<[u8]>>(hdr: &PoolHdr<T>) -> Result<PoolHdrRepr, HdrError> {
        hdr.check_len()?;
        hdr.verify_checksum()?;
        let r = hdr.raw();
        let areas: [(&'static str, &[u8], usize); 2] = [
            ("unused", &r.unused, field::UNUSED.start),
            ("unused2", &r.unused2, field::UNUSED2.start),
        ];
        for (name, bytes, base) in areas {
            if let Some((i, &value)) = bytes.iter().enumerate().find(|(_, &b)| b != 0) {
                return Err(HdrError::NonZeroReserved {
                    field: name,
                    offset: base.saturating_add(i),
                    value,
                });
            }
        }
        Ok(PoolHdrRepr {
            signature: r.signature,
            major: r.major.get(),
            features: hdr.features(),
            poolset_uuid: r.poolset_uuid,
            uuid: r.uuid,
            prev_part_uuid: r.prev_part_uuid,
            next_part_uuid: r.next_part_uuid,
            prev_repl_uuid: r.prev_repl_uuid,
            next_repl_uuid: r.next_repl_uuid,
            crtime: r.crtime.get(),
            arch_flags: hdr.arch_flags(),
            sds: hdr.sds(),
        })
    }

    /// [`PoolHdr::new_checked`] then [`PoolHdrRepr::parse`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<PoolHdrRepr, HdrError> {
        Self::parse(&PoolHdr::new_checked(bytes)?)
    }

    /// Bytes [`PoolHdrRepr::emit`] writes: always 4096.
    pub const fn buffer_len(&self) -> usize {
        POOL_HDR_SIZE
    }

    /// Writes the header into the first 4096 bytes of `buf`, with zeroed
    /// reserved areas and the checksum computed and inserted. Bytes past
    /// 4096 are left alone. Fails with [`HdrError::TooShort`] if `buf` is
    /// shorter than 4096 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), HdrError> {
        let mut hdr = PoolHdr::new_checked(buf)?;
        self.emit_into(&mut hdr);
        Ok(())
    }

    /// Writes the header through a view (see [`PoolHdrRepr::emit`]).
    pub fn emit_into<T: AsRef<[u8]> + AsMut<[u8]>>(&self, hdr: &mut PoolHdr<T>) {
        hdr.set_signature(self.signature);
        hdr.set_major(self.major);
        hdr.set_features(self.features);
        hdr.set_poolset_uuid(self.poolset_uuid);
        hdr.set_uuid(self.uuid);
        hdr.set_prev_part_uuid(self.prev_part_uuid);
        hdr.set_next_part_uuid(self.next_part_uuid);
        hdr.set_prev_repl_uuid(self.prev_repl_uuid);
        hdr.set_next_repl_uuid(self.next_repl_uuid);
        hdr.set_crtime(self.crtime);
        hdr.set_arch_flags(self.arch_flags);
        hdr.clear_unused();
        hdr.set_sds(self.sds);
        hdr.fill_checksum();
    }

    /// The emitted 4096 bytes.
    pub fn to_bytes(&self) -> [u8; POOL_HDR_SIZE] {
        let mut out = [0u8; POOL_HDR_SIZE];
        self.emit_into(&mut PoolHdr::new_unchecked(&mut out[..]));
        out
    }

    /// True when the header uses the 2 KiB checksum (`CKSUM_2K`).
    pub const fn uses_cksum_2k(&self) -> bool {
        self.features.uses_cksum_2k()
    }

    /// End of the checksummed range (2048 or 4088).
    pub const fn checksum_end(&self) -> usize {
        self.features.checksum_end()
    }

    /// The 16 `arch_flags` bytes (a remote pool's `user_flags`).
    pub const fn arch_flags_bytes(&self) -> [u8; 16] {
        self.arch_flags.to_bytes()
    }

    /// True when the header is all zero (PMDK's "pool header zeroed").
    pub fn is_zeroed(&self) -> bool {
        self.signature == [0; SIG_LEN]
            && self.major == 0
            && self.features.is_zero()
            && self.poolset_uuid == [0; 16]
            && self.uuid == [0; 16]
            && self.prev_part_uuid == [0; 16]
            && self.next_part_uuid == [0; 16]
            && self.prev_repl_uuid == [0; 16]
            && self.next_repl_uuid == [0; 16]
            && self.crtime == 0
            && self.arch_flags.is_zero()
            && self.sds == ShutdownState::ZERO
    }
}
