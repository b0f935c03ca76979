//! `struct rpmem_pool_attr` as C lays it out, and its conversion to and
//! from [`rpmem::PoolAttr`].

use std::ffi::c_char;
use std::mem::{offset_of, size_of};

use rpmem::PoolAttr;

/// `RPMEM_POOL_HDR_SIG_LEN`.
pub const SIG_LEN: usize = 8;
/// `RPMEM_POOL_HDR_UUID_LEN`.
pub const UUID_LEN: usize = 16;
/// `RPMEM_POOL_USER_FLAGS_LEN`.
pub const USER_FLAGS_LEN: usize = 16;

/// `struct rpmem_pool_attr` of PMDK 1.12.1's `librpmem.h`: 104 bytes, no
/// padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpmemPoolAttr {
    /// Pool signature.
    pub signature: [c_char; SIG_LEN],
    /// Format major version number.
    pub major: u32,
    /// Mask of compatible features.
    pub compat_features: u32,
    /// Mask of incompatible features.
    pub incompat_features: u32,
    /// Mask of read-only compatible features.
    pub ro_compat_features: u32,
    /// Uuid of the pool set.
    pub poolset_uuid: [u8; UUID_LEN],
    /// Uuid of the first part.
    pub uuid: [u8; UUID_LEN],
    /// Uuid of the next replica.
    pub next_uuid: [u8; UUID_LEN],
    /// Uuid of the previous replica.
    pub prev_uuid: [u8; UUID_LEN],
    /// User flags.
    pub user_flags: [u8; USER_FLAGS_LEN],
}

// PMDK's layout, checked at compile time (the C tests check the header).
const _: () = {
    assert!(size_of::<RpmemPoolAttr>() == 104);
    assert!(offset_of!(RpmemPoolAttr, signature) == 0);
    assert!(offset_of!(RpmemPoolAttr, major) == 8);
    assert!(offset_of!(RpmemPoolAttr, compat_features) == 12);
    assert!(offset_of!(RpmemPoolAttr, incompat_features) == 16);
    assert!(offset_of!(RpmemPoolAttr, ro_compat_features) == 20);
    assert!(offset_of!(RpmemPoolAttr, poolset_uuid) == 24);
    assert!(offset_of!(RpmemPoolAttr, uuid) == 40);
    assert!(offset_of!(RpmemPoolAttr, next_uuid) == 56);
    assert!(offset_of!(RpmemPoolAttr, prev_uuid) == 72);
    assert!(offset_of!(RpmemPoolAttr, user_flags) == 88);
    assert!(std::mem::align_of::<RpmemPoolAttr>() == 4);
};

impl From<&RpmemPoolAttr> for PoolAttr {
    fn from(a: &RpmemPoolAttr) -> PoolAttr {
        PoolAttr {
            signature: a.signature.map(|c| c as u8),
            major: a.major,
            compat_features: a.compat_features,
            incompat_features: a.incompat_features,
            ro_compat_features: a.ro_compat_features,
            poolset_uuid: a.poolset_uuid,
            uuid: a.uuid,
            next_uuid: a.next_uuid,
            prev_uuid: a.prev_uuid,
            user_flags: a.user_flags,
        }
    }
}

impl From<&PoolAttr> for RpmemPoolAttr {
    fn from(a: &PoolAttr) -> RpmemPoolAttr {
        RpmemPoolAttr {
            signature: a.signature.map(|b| b as c_char),
            major: a.major,
            compat_features: a.compat_features,
            incompat_features: a.incompat_features,
            ro_compat_features: a.ro_compat_features,
            poolset_uuid: a.poolset_uuid,
            uuid: a.uuid,
            next_uuid: a.next_uuid,
            prev_uuid: a.prev_uuid,
            user_flags: a.user_flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_round_trips_every_field() {
        let a = PoolAttr {
            signature: *b"PMEMOBJ\xff",
            major: 6,
            compat_features: 1,
            incompat_features: 2,
            ro_compat_features: 3,
            poolset_uuid: [4; 16],
            uuid: [5; 16],
            next_uuid: [6; 16],
            prev_uuid: [7; 16],
            user_flags: [8; 16],
        };
        let c = RpmemPoolAttr::from(&a);
        assert_eq!(c.signature[7] as u8, 0xff);
        assert_eq!(PoolAttr::from(&c), a);
    }
}
