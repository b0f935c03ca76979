//! `rpmem_pool_attr`: the pool attributes a client gives at create time and
//! gets back at open time.
//!
//! This is the host-side value. Its wire form is
//! [`crate::wire::oob`]'s `rpmem_pool_attr_packed` (big-endian integers) and
//! its media form is a set of [`crate::pool_hdr`] fields (little-endian).

/// Length of the pool signature (`RPMEM_POOL_HDR_SIG_LEN`).
pub const SIG_LEN: usize = 8;
/// Length of every uuid (`RPMEM_POOL_HDR_UUID_LEN`).
pub const UUID_LEN: usize = 16;
/// Length of the user flags (`RPMEM_POOL_USER_FLAGS_LEN`).
pub const USER_FLAGS_LEN: usize = 16;

/// A 16-byte uuid as PMDK stores it (raw bytes, no interpretation).
pub type Uuid = [u8; UUID_LEN];

/// Pool attributes (`struct rpmem_pool_attr` of librpmem).
///
/// A pool created without headers (`NOHDRS`, `attr == NULL` in librpmem)
/// reports all-zero attributes; [`PoolAttr::is_zero`] tells that case apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolAttr {
    /// Pool signature, e.g. `b"PMEMOBJ\0"`.
    pub signature: [u8; SIG_LEN],
    /// Format major version number.
    pub major: u32,
    /// Mask of compatible ("may") features.
    pub compat_features: u32,
    /// Mask of incompatible ("must support") features.
    pub incompat_features: u32,
    /// Mask of features that force read-only when unsupported.
    pub ro_compat_features: u32,
    /// Uuid of the pool set.
    pub poolset_uuid: Uuid,
    /// Uuid of the first part.
    pub uuid: Uuid,
    /// Uuid of the next replica.
    pub next_uuid: Uuid,
    /// Uuid of the previous replica.
    pub prev_uuid: Uuid,
    /// User flags, opaque to rpmem.
    pub user_flags: [u8; USER_FLAGS_LEN],
}

impl PoolAttr {
    /// All fields zero: what a pool without headers reports.
    pub const ZERO: PoolAttr = PoolAttr {
        signature: [0; SIG_LEN],
        major: 0,
        compat_features: 0,
        incompat_features: 0,
        ro_compat_features: 0,
        poolset_uuid: [0; UUID_LEN],
        uuid: [0; UUID_LEN],
        next_uuid: [0; UUID_LEN],
        prev_uuid: [0; UUID_LEN],
        user_flags: [0; USER_FLAGS_LEN],
    };

    /// True when every field is zero (PMDK's `util_is_zeroed` on the struct).
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_zero_and_any_field_breaks_it() {
        assert!(PoolAttr::ZERO.is_zero());
        assert!(PoolAttr::default().is_zero());
        let mut a = PoolAttr::ZERO;
        a.user_flags[15] = 1;
        assert!(!a.is_zero());
    }
}
