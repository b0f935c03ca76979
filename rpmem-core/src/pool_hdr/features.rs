//! Feature flags of the pool header (`features_t` in PMDK's `pool_hdr.h`).

use super::{HdrError, POOL_HDR_CSUM_2K_END_OFF, POOL_HDR_CSUM_4K_END_OFF};

/// compat: check bad blocks in the pool (`POOL_FEAT_CHECK_BAD_BLOCKS`).
pub const POOL_FEAT_CHECK_BAD_BLOCKS: u32 = 0x0001;
/// All compat features PMDK 1.12.1 knows (`POOL_FEAT_COMPAT_ALL`).
pub const POOL_FEAT_COMPAT_ALL: u32 = POOL_FEAT_CHECK_BAD_BLOCKS;
/// compat features PMDK 1.12.1 accepts on open (`POOL_FEAT_COMPAT_VALID`).
pub const POOL_FEAT_COMPAT_VALID: u32 = POOL_FEAT_CHECK_BAD_BLOCKS;

/// incompat: the pool header is only in the first part (`POOL_FEAT_SINGLEHDR`).
pub const POOL_FEAT_SINGLEHDR: u32 = 0x0001;
/// incompat: only the first 2 KiB of the header are checksummed
/// (`POOL_FEAT_CKSUM_2K`).
pub const POOL_FEAT_CKSUM_2K: u32 = 0x0002;
/// incompat: the shutdown state (`sds`) is checked (`POOL_FEAT_SDS`).
pub const POOL_FEAT_SDS: u32 = 0x0004;
/// All incompat features PMDK 1.12.1 knows (`POOL_FEAT_INCOMPAT_ALL`).
pub const POOL_FEAT_INCOMPAT_ALL: u32 = POOL_FEAT_SINGLEHDR | POOL_FEAT_CKSUM_2K | POOL_FEAT_SDS;
/// incompat features PMDK 1.12.1 accepts on open when built with shutdown
/// state support (`POOL_FEAT_INCOMPAT_VALID` with `SDS_ENABLED`; without it
/// PMDK drops [`POOL_FEAT_SDS`] from this mask).
pub const POOL_FEAT_INCOMPAT_VALID: u32 = POOL_FEAT_INCOMPAT_ALL;
/// incompat features of a new local pool on Linux
/// (`POOL_FEAT_INCOMPAT_DEFAULT` without ndctl).
pub const POOL_FEAT_INCOMPAT_DEFAULT: u32 = POOL_FEAT_CKSUM_2K;

/// ro_compat: PMDK 1.12.1 defines no read-only-compatible feature.
pub const POOL_FEAT_RO_COMPAT_ALL: u32 = 0;

/// The three feature masks of a pool header (`features_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features {
    /// "May" features: unknown ones are ignored.
    pub compat: u32,
    /// "Must support" features: unknown ones make the pool unusable.
    pub incompat: u32,
    /// Unknown ones force read-only access.
    pub ro_compat: u32,
}

/// What [`Features::check_known`] allows (`util_feature_check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureAccess {
    /// Every incompat and ro_compat feature is known.
    ReadWrite,
    /// Some ro_compat feature is unknown: the pool may only be read.
    ReadOnly,
}

impl Features {
    /// No feature set (`features_zero`).
    pub const ZERO: Features = Features {
        compat: 0,
        incompat: 0,
        ro_compat: 0,
    };

    /// The features PMDK 1.12.1 accepts on open (`POOL_FEAT_VALID`).
    pub const VALID: Features = Features {
        compat: POOL_FEAT_COMPAT_VALID,
        incompat: POOL_FEAT_INCOMPAT_VALID,
        ro_compat: 0,
    };

    /// True when the incompat mask has [`POOL_FEAT_CKSUM_2K`].
    pub const fn uses_cksum_2k(&self) -> bool {
        uses_cksum_2k(self.incompat)
    }

    /// The first byte not covered by the header checksum for these features
    /// (`POOL_HDR_CSUM_END_OFF`).
    pub const fn checksum_end(&self) -> usize {
        checksum_end(self.incompat)
    }

    /// True when no bit is set (`util_feature_is_zero`).
    pub const fn is_zero(&self) -> bool {
        self.compat == 0 && self.incompat == 0 && self.ro_compat == 0
    }

    /// True when any bit of `flag` is set in `self` (`util_feature_is_set`).
    pub const fn is_set(&self, flag: Features) -> bool {
        (self.compat & flag.compat)
            | (self.incompat & flag.incompat)
            | (self.ro_compat & flag.ro_compat)
            != 0
    }

    /// The bits of `self` not in `known` (`util_get_unknown_features`).
    pub const fn unknown(&self, known: Features) -> Features {
        Features {
            compat: self.compat & !known.compat,
            incompat: self.incompat & !known.incompat,
            ro_compat: self.ro_compat & !known.ro_compat,
        }
    }

    /// `util_feature_check`: unknown incompat bits are an error, unknown
    /// ro_compat bits force read-only, unknown compat bits are ignored.
    ///
    /// PMDK's rpmemd does not run this on remote pools (their features are
    /// the client's business); local tools do.
    pub fn check_known(&self, known: Features) -> Result<FeatureAccess, HdrError> {
        let unknown = self.unknown(known);
        if unknown.incompat != 0 {
            return Err(HdrError::UnknownIncompat {
                bits: unknown.incompat,
            });
        }
        if unknown.ro_compat != 0 {
            return Ok(FeatureAccess::ReadOnly);
        }
        Ok(FeatureAccess::ReadWrite)
    }
}

/// True when `incompat` has [`POOL_FEAT_CKSUM_2K`]: the header checksum then
/// covers bytes `0..2048` only (see [`crate::pool_hdr::checksum`] for how
/// the rest still feeds the high half).
pub const fn uses_cksum_2k(incompat: u32) -> bool {
    incompat & POOL_FEAT_CKSUM_2K != 0
}

/// The first byte not covered by the header checksum for an incompat mask
/// (`POOL_HDR_CSUM_END_OFF`): 2048 with [`POOL_FEAT_CKSUM_2K`], else 4088.
pub const fn checksum_end(incompat: u32) -> usize {
    if uses_cksum_2k(incompat) {
        POOL_HDR_CSUM_2K_END_OFF
    } else {
        POOL_HDR_CSUM_4K_END_OFF
    }
}
