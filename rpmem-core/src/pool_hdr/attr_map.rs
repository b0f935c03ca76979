//! Pool attributes (`rpmem_pool_attr`) <-> pool header, as PMDK's rpmemd
//! maps them.
//!
//! PMDK 1.12.1 reference points (`src/common/set.c`,
//! `src/tools/rpmemd/rpmemd_db.c`):
//!
//! * open: `util_get_rpmem_attr` reads the attributes from **part 0's**
//!   header: signature, major, the three feature masks, `poolset_uuid`,
//!   `uuid`, `next_uuid <- next_repl_uuid`, `prev_uuid <- prev_repl_uuid`,
//!   `user_flags <- the 16 bytes of arch_flags`. A pool without headers
//!   (`NOHDRS`) reports all-zero attributes.
//! * set_attr: `util_replica_set_attr` rewrites every part header with
//!   `util_set_rpmem_attr` (everything above except `uuid`), then sets
//!   part 0's `uuid`, the last part's `next_part_uuid` and part 1's
//!   `prev_part_uuid` to `attr.uuid`, so the part ring stays closed around
//!   the new first-part uuid. `crtime`, `sds` and the other parts' uuids
//!   are kept. See [`PoolHdrRepr::apply_set_attr`].
//! * create: `rpmemd_get_attr` + `util_header_create`. Zero fields get
//!   defaults first (see [`attr_for_create`]), then each part gets its own
//!   (random) uuid, linked in a ring, `crtime` from the part file's
//!   `st_ctime`, and a checksum.

use super::{ArchFlags, Features, PoolHdrRepr, ShutdownState};
use crate::attr::{PoolAttr, Uuid, UUID_LEN};

/// The part-specific uuids of one part header: its own uuid and its
/// neighbours' in the ring of parts of its replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PartLinks {
    /// This part's uuid (`uuid`). Part 0's is the pool's `attr.uuid`.
    pub uuid: Uuid,
    /// The previous part's uuid (`prev_part_uuid`); for part 0, the last part's.
    pub prev_part: Uuid,
    /// The next part's uuid (`next_part_uuid`); for the last part, part 0's.
    pub next_part: Uuid,
}

impl PartLinks {
    /// The links of the only part of a one-part pool: all three are `uuid`.
    pub const fn single(uuid: Uuid) -> PartLinks {
        PartLinks {
            uuid,
            prev_part: uuid,
            next_part: uuid,
        }
    }

    /// The links of part `index` of a pool whose parts have the uuids
    /// `part_uuids` in order (PMDK's `PARTP` / `PARTN` ring). `None` when
    /// `index` is out of range.
    pub fn ring(part_uuids: &[Uuid], index: usize) -> Option<PartLinks> {
        let uuid = *part_uuids.get(index)?;
        let (prev, next) = ring_neighbours(index, part_uuids.len())?;
        Some(PartLinks {
            uuid,
            prev_part: *part_uuids.get(prev)?,
            next_part: *part_uuids.get(next)?,
        })
    }
}

/// The indices of the previous and the next part of part `index` in a ring
/// of `n` parts (PMDK's `PARTPidx` / `PARTNidx`); `None` if `index >= n`.
pub(super) fn ring_neighbours(index: usize, n: usize) -> Option<(usize, usize)> {
    if index >= n {
        return None;
    }
    let prev = match index.checked_sub(1) {
        Some(p) => p,
        None => n.checked_sub(1)?,
    };
    let next = index.checked_add(1).filter(|&x| x < n).unwrap_or(0);
    Some((prev, next))
}

/// The attributes stored in a pool header (`util_get_rpmem_attr`).
/// Give it part 0's header: `uuid` is that part's uuid.
pub fn to_attr(hdr: &PoolHdrRepr) -> PoolAttr {
    PoolAttr {
        signature: hdr.signature,
        major: hdr.major,
        compat_features: hdr.features.compat,
        incompat_features: hdr.features.incompat,
        ro_compat_features: hdr.features.ro_compat,
        poolset_uuid: hdr.poolset_uuid,
        uuid: hdr.uuid,
        next_uuid: hdr.next_repl_uuid,
        prev_uuid: hdr.prev_repl_uuid,
        user_flags: hdr.arch_flags.to_bytes(),
    }
}

/// The header rpmemd writes for one part of a pool with attributes `attr`.
///
/// Signature, major, features, `poolset_uuid`, `prev_repl_uuid <- prev_uuid`,
/// `next_repl_uuid <- next_uuid` and `arch_flags <- user_flags` come from
/// `attr` unchanged; `uuid`, `prev_part_uuid`, `next_part_uuid` from `part`
/// (part 0's uuid should be `attr.uuid`: build them with
/// [`PartLinks::ring`] or [`PartLinks::single`]); `crtime` as given; `sds`
/// zero (PMDK's rpmemd only fills it when the client sets the `SDS` incompat
/// feature, from the devices' unsafe shutdown counts, which is the daemon's
/// business).
///
/// This is the set_attr mapping, which copies every field raw. For a new
/// pool, first apply PMDK's defaults for zero fields with
/// [`attr_for_create`].
pub fn from_attr(attr: &PoolAttr, part: PartLinks, crtime: u64) -> PoolHdrRepr {
    PoolHdrRepr {
        signature: attr.signature,
        major: attr.major,
        features: Features {
            compat: attr.compat_features,
            incompat: attr.incompat_features,
            ro_compat: attr.ro_compat_features,
        },
        poolset_uuid: attr.poolset_uuid,
        uuid: part.uuid,
        prev_part_uuid: part.prev_part,
        next_part_uuid: part.next_part,
        prev_repl_uuid: attr.prev_uuid,
        next_repl_uuid: attr.next_uuid,
        crtime,
        arch_flags: ArchFlags::from_bytes(attr.user_flags),
        sds: ShutdownState::ZERO,
    }
}

/// The attributes PMDK's rpmemd actually stores when it creates a pool
/// (`util_pool_create_uuids` + `util_header_create`), given fresh uuids the
/// caller generated (this crate has no random source):
///
/// * zero `poolset_uuid` -> `fresh_poolset_uuid`;
/// * zero `uuid` (first part) -> `fresh_first_part_uuid`;
/// * zero `prev_uuid` / `next_uuid` -> the (effective) first part uuid:
///   a remote pool is a single replica, so its neighbour replica is itself;
/// * zero `user_flags` -> the daemon's own [`ArchFlags::current`]. So a
///   client that gives zero user flags reads the daemon's architecture flags
///   back on open; that is PMDK's behaviour and is kept.
///
/// Everything else is copied unchanged.
pub fn attr_for_create(
    attr: &PoolAttr,
    fresh_poolset_uuid: Uuid,
    fresh_first_part_uuid: Uuid,
) -> PoolAttr {
    let zero = [0u8; UUID_LEN];
    let mut out = *attr;
    if out.poolset_uuid == zero {
        out.poolset_uuid = fresh_poolset_uuid;
    }
    if out.uuid == zero {
        out.uuid = fresh_first_part_uuid;
    }
    if out.prev_uuid == zero {
        out.prev_uuid = out.uuid;
    }
    if out.next_uuid == zero {
        out.next_uuid = out.uuid;
    }
    if out.user_flags == [0; 16] {
        out.user_flags = ArchFlags::current().to_bytes();
    }
    out
}

impl PoolHdrRepr {
    /// The attributes of the pool, read from this header (see [`to_attr`]).
    pub fn to_attr(&self) -> PoolAttr {
        to_attr(self)
    }

    /// Rewrites this header, the header of part `index` of a pool of
    /// `nparts` part headers, as rpmemd's set_attr does
    /// (`util_replica_set_attr`): all attribute fields from `attr`; `uuid`
    /// only on part 0; `next_part_uuid` on the last part and `prev_part_uuid`
    /// on part 1 (mod `nparts`) become `attr.uuid`. `crtime` and `sds` are
    /// kept. Does nothing when `index >= nparts`.
    pub fn apply_set_attr(&mut self, attr: &PoolAttr, index: usize, nparts: usize) {
        // Part 0's neighbours: the last part (HDRP) and part 1 (HDRN).
        let Some((last, second)) = ring_neighbours(0, nparts) else {
            return;
        };
        if index >= nparts {
            return;
        }
        self.signature = attr.signature;
        self.major = attr.major;
        self.features = Features {
            compat: attr.compat_features,
            incompat: attr.incompat_features,
            ro_compat: attr.ro_compat_features,
        };
        self.poolset_uuid = attr.poolset_uuid;
        self.next_repl_uuid = attr.next_uuid;
        self.prev_repl_uuid = attr.prev_uuid;
        self.arch_flags = ArchFlags::from_bytes(attr.user_flags);
        if index == 0 {
            self.uuid = attr.uuid;
        }
        if index == last {
            self.next_part_uuid = attr.uuid;
        }
        if index == second {
            self.prev_part_uuid = attr.uuid;
        }
    }
}
