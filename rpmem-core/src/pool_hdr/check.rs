//! Validation of part headers on open, as PMDK's rpmemd does it
//! (`util_header_check_remote` called by `util_pool_open_remote`).
//!
//! rpmemd checks, for every part header, in this order: not all zero; same
//! signature, major and feature masks as part 0; a valid checksum (done by
//! [`PoolHdrRepr::parse`]); same `poolset_uuid`, `prev_repl_uuid`,
//! `next_repl_uuid` and `arch_flags` bytes as part 0; `prev_part_uuid` /
//! `next_part_uuid` naming the neighbouring parts' uuids. It does **not**
//! check `major != 0`, known features or the architecture flags against the
//! running machine: those are the client's attributes.

use super::attr_map::ring_neighbours;
use super::{HdrError, Hex16, HexUuid, PoolHdrRepr, Sig, POOL_FEAT_SINGLEHDR};

impl PoolHdrRepr {
    /// Checks what can be checked on one header alone: it is not all zero,
    /// and with the `SINGLEHDR` incompat feature its part links point at
    /// itself (PMDK links the single header to part 0's uuid, its own).
    ///
    /// For the headers of a whole pool use [`check_parts`], which runs this
    /// on every part.
    pub fn check(&self) -> Result<(), HdrError> {
        self.check_at(0)
    }

    fn check_at(&self, part: usize) -> Result<(), HdrError> {
        if self.is_zeroed() {
            return Err(HdrError::Zeroed { part });
        }
        if self.features.incompat & POOL_FEAT_SINGLEHDR != 0 {
            link(part, "prev_part_uuid", part, self.prev_part_uuid, self.uuid)?;
            link(part, "next_part_uuid", part, self.next_part_uuid, self.uuid)?;
        }
        Ok(())
    }
}

fn link(
    part: usize,
    field: &'static str,
    neighbour: usize,
    found: [u8; 16],
    expected: [u8; 16],
) -> Result<(), HdrError> {
    if found == expected {
        Ok(())
    } else {
        Err(HdrError::PartLink {
            part,
            field,
            neighbour,
            found: HexUuid(found),
            expected: HexUuid(expected),
        })
    }
}

fn value(part: usize, field: &'static str, found: u32, expected: u32) -> Result<(), HdrError> {
    if found == expected {
        Ok(())
    } else {
        Err(HdrError::ValueMismatch {
            part,
            field,
            found: u64::from(found),
            expected: u64::from(expected),
        })
    }
}

fn uuid(
    part: usize,
    field: &'static str,
    found: [u8; 16],
    expected: [u8; 16],
) -> Result<(), HdrError> {
    if found == expected {
        Ok(())
    } else {
        Err(HdrError::UuidMismatch {
            part,
            field,
            found: HexUuid(found),
            expected: HexUuid(expected),
        })
    }
}

/// Checks the headers of all parts of one (remote) pool, in part order, the
/// way `util_header_check_remote` does (see the module documentation). Each
/// header must already have been parsed (which verified its checksum).
///
/// A pool with the `SINGLEHDR` incompat feature has a header only in part 0,
/// so exactly one header must be given then.
pub fn check_parts(hdrs: &[PoolHdrRepr]) -> Result<(), HdrError> {
    let Some(first) = hdrs.first() else {
        return Err(HdrError::NoParts);
    };
    let n = hdrs.len();
    if first.features.incompat & POOL_FEAT_SINGLEHDR != 0 && n > 1 {
        return Err(HdrError::SingleHdrWithManyHeaders { count: n });
    }
    // Per-header checks first, so that a zeroed part is reported as such
    // rather than as a broken link in its neighbour (PMDK checks part by
    // part and would report the neighbour's link).
    for (p, h) in hdrs.iter().enumerate() {
        h.check_at(p)?;
    }
    for (p, h) in hdrs.iter().enumerate() {
        if h.signature != first.signature {
            return Err(HdrError::SignatureMismatch {
                part: p,
                found: Sig(h.signature),
                expected: Sig(first.signature),
            });
        }
        value(p, "major", h.major, first.major)?;
        value(
            p,
            "features.compat",
            h.features.compat,
            first.features.compat,
        )?;
        value(
            p,
            "features.incompat",
            h.features.incompat,
            first.features.incompat,
        )?;
        value(
            p,
            "features.ro_compat",
            h.features.ro_compat,
            first.features.ro_compat,
        )?;
        uuid(p, "poolset_uuid", h.poolset_uuid, first.poolset_uuid)?;
        uuid(p, "prev_repl_uuid", h.prev_repl_uuid, first.prev_repl_uuid)?;
        uuid(p, "next_repl_uuid", h.next_repl_uuid, first.next_repl_uuid)?;
        if h.arch_flags != first.arch_flags {
            return Err(HdrError::ArchFlagsMismatch {
                part: p,
                found: Hex16(h.arch_flags.to_bytes()),
                expected: Hex16(first.arch_flags.to_bytes()),
            });
        }
        let (prev, next) = ring_neighbours(p, n).unwrap_or((p, p));
        let prev_uuid = hdrs.get(prev).map_or([0; 16], |x| x.uuid);
        let next_uuid = hdrs.get(next).map_or([0; 16], |x| x.uuid);
        link(p, "prev_part_uuid", prev, h.prev_part_uuid, prev_uuid)?;
        link(p, "next_part_uuid", next, h.next_part_uuid, next_uuid)?;
    }
    Ok(())
}
