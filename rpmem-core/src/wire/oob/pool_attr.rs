//! `struct rpmem_pool_attr_packed`: pool attributes on the wire (104 bytes).
//!
//! The value type is [`crate::attr::PoolAttr`].

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{read_raw, write_bytes, Error, POOL_ATTR_LEN};
use crate::attr::{PoolAttr, SIG_LEN, USER_FLAGS_LEN, UUID_LEN};

/// Field offsets of `rpmem_pool_attr_packed`, from its first byte. The
/// four feature/version words are big-endian; the rest are raw bytes.
pub mod field {
    use core::ops::Range;
    /// `signature`.
    pub const SIGNATURE: Range<usize> = 0..8;
    /// `major`.
    pub const MAJOR: Range<usize> = 8..12;
    /// `compat_features`.
    pub const COMPAT_FEATURES: Range<usize> = 12..16;
    /// `incompat_features`.
    pub const INCOMPAT_FEATURES: Range<usize> = 16..20;
    /// `ro_compat_features`.
    pub const RO_COMPAT_FEATURES: Range<usize> = 20..24;
    /// `poolset_uuid`.
    pub const POOLSET_UUID: Range<usize> = 24..40;
    /// `uuid`.
    pub const UUID: Range<usize> = 40..56;
    /// `next_uuid`.
    pub const NEXT_UUID: Range<usize> = 56..72;
    /// `prev_uuid`.
    pub const PREV_UUID: Range<usize> = 72..88;
    /// `user_flags`.
    pub const USER_FLAGS: Range<usize> = 88..104;
    /// Size of the struct.
    pub const LEN: usize = 104;
}

/// Wire layout of `rpmem_pool_attr_packed`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawPoolAttr {
    signature: [u8; SIG_LEN],
    major: U32,
    compat_features: U32,
    incompat_features: U32,
    ro_compat_features: U32,
    poolset_uuid: [u8; UUID_LEN],
    uuid: [u8; UUID_LEN],
    next_uuid: [u8; UUID_LEN],
    prev_uuid: [u8; UUID_LEN],
    user_flags: [u8; USER_FLAGS_LEN],
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(RawPoolAttr, signature) == field::SIGNATURE.start);
    assert!(offset_of!(RawPoolAttr, major) == field::MAJOR.start);
    assert!(offset_of!(RawPoolAttr, compat_features) == field::COMPAT_FEATURES.start);
    assert!(offset_of!(RawPoolAttr, incompat_features) == field::INCOMPAT_FEATURES.start);
    assert!(offset_of!(RawPoolAttr, ro_compat_features) == field::RO_COMPAT_FEATURES.start);
    assert!(offset_of!(RawPoolAttr, poolset_uuid) == field::POOLSET_UUID.start);
    assert!(offset_of!(RawPoolAttr, uuid) == field::UUID.start);
    assert!(offset_of!(RawPoolAttr, next_uuid) == field::NEXT_UUID.start);
    assert!(offset_of!(RawPoolAttr, prev_uuid) == field::PREV_UUID.start);
    assert!(offset_of!(RawPoolAttr, user_flags) == field::USER_FLAGS.start);
    assert!(core::mem::size_of::<RawPoolAttr>() == field::LEN);
    assert!(field::LEN == POOL_ATTR_LEN);
};

const NAME: &str = "rpmem_pool_attr_packed";

/// A checked view of `rpmem_pool_attr_packed`.
#[derive(Clone, Copy, Debug)]
pub struct PoolAttrPacked<'a> {
    raw: &'a RawPoolAttr,
}

impl<'a> PoolAttrPacked<'a> {
    /// Checks that `buf` holds the whole struct (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<PoolAttrPacked<'a>, Error> {
        let (raw, _) = read_raw::<RawPoolAttr>(buf, NAME)?;
        Ok(PoolAttrPacked { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawPoolAttr) -> PoolAttrPacked<'a> {
        PoolAttrPacked { raw }
    }

    /// The attributes as a value (every bit pattern is valid).
    pub fn to_attr(&self) -> PoolAttr {
        let r = self.raw;
        PoolAttr {
            signature: r.signature,
            major: r.major.get(),
            compat_features: r.compat_features.get(),
            incompat_features: r.incompat_features.get(),
            ro_compat_features: r.ro_compat_features.get(),
            poolset_uuid: r.poolset_uuid,
            uuid: r.uuid,
            next_uuid: r.next_uuid,
            prev_uuid: r.prev_uuid,
            user_flags: r.user_flags,
        }
    }

    pub(crate) fn raw_of(attr: &PoolAttr) -> RawPoolAttr {
        RawPoolAttr {
            signature: attr.signature,
            major: U32::new(attr.major),
            compat_features: U32::new(attr.compat_features),
            incompat_features: U32::new(attr.incompat_features),
            ro_compat_features: U32::new(attr.ro_compat_features),
            poolset_uuid: attr.poolset_uuid,
            uuid: attr.uuid,
            next_uuid: attr.next_uuid,
            prev_uuid: attr.prev_uuid,
            user_flags: attr.user_flags,
        }
    }

    /// Writes `attr` in wire form to the front of `buf`, returning the
    /// bytes written ([`POOL_ATTR_LEN`]).
    pub fn emit(attr: &PoolAttr, buf: &mut [u8]) -> Result<usize, Error> {
        write_bytes(Self::raw_of(attr).as_bytes(), buf, NAME)
    }
}
