//! Errors of the pool header module.

use crate::attr::Uuid;
use core::fmt;

/// A uuid shown as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (bytes in stored
/// order, as `uuid_unparse` prints PMDK's raw `uuid_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HexUuid(pub Uuid);

impl fmt::Display for HexUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A signature shown as text, with non-printable bytes as `\xNN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sig(pub [u8; 8]);

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

/// Sixteen bytes shown as hex (the `arch_flags` / `user_flags` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hex16(pub [u8; 16]);

impl fmt::Display for Hex16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Everything that can be wrong with a pool header or a set of part headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HdrError {
    /// The buffer cannot hold a 4096-byte header.
    #[error("pool header buffer is {len} bytes long, a pool header needs 4096")]
    TooShort {
        /// Length of the buffer given.
        len: usize,
    },
    /// The stored checksum does not match the data.
    #[error(
        "pool header checksum (field `checksum` at byte 4088) is wrong: stored {stored:#018x}, \
         computed {computed:#018x} over bytes 0..{end}"
    )]
    BadChecksum {
        /// Value in the `checksum` field.
        stored: u64,
        /// Value computed from the header.
        computed: u64,
        /// End of the checksummed range (2048 or 4088).
        end: usize,
    },
    /// A reserved area that must be zero is not.
    #[error("pool header field `{field}` must be zero, but byte {offset} is {value:#04x}")]
    NonZeroReserved {
        /// Name of the reserved field (`unused`, `unused2`).
        field: &'static str,
        /// Byte offset in the header of the first non-zero byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// The header is all zeros: no pool was ever created here.
    #[error("part {part}: pool header is all zeros (the part was never initialised)")]
    Zeroed {
        /// Index of the part (0 for a header checked alone).
        part: usize,
    },
    /// The architecture flags do not allow opening on this machine.
    #[error("pool header field `{field}` (byte {offset}) is {found:#x}, this machine needs {expected:#x}")]
    ArchMismatch {
        /// Field name, e.g. `arch_flags.machine`.
        field: &'static str,
        /// Byte offset of the field in the header.
        offset: usize,
        /// Value in the header.
        found: u64,
        /// Value required.
        expected: u64,
    },
    /// An incompat feature bit that this code does not support is set.
    #[error("pool header field `features.incompat` (byte 16) has unknown feature bits {bits:#x}")]
    UnknownIncompat {
        /// The unknown bits.
        bits: u32,
    },
    /// No part headers were given to check.
    #[error("no part headers to check")]
    NoParts,
    /// `SINGLEHDR` is set but more than one header was given.
    #[error(
        "pool header has the SINGLEHDR incompat feature (only part 0 has a header), \
         but {count} part headers were given"
    )]
    SingleHdrWithManyHeaders {
        /// Number of headers given.
        count: usize,
    },
    /// A part's signature differs from part 0.
    #[error("part {part}: pool header field `signature` is {found}, part 0 has {expected}")]
    SignatureMismatch {
        /// Index of the part.
        part: usize,
        /// Its signature.
        found: Sig,
        /// Part 0's signature.
        expected: Sig,
    },
    /// A part's integer field differs from part 0.
    #[error("part {part}: pool header field `{field}` is {found:#x}, part 0 has {expected:#x}")]
    ValueMismatch {
        /// Index of the part.
        part: usize,
        /// Field name (`major`, `features.compat`, ...).
        field: &'static str,
        /// Its value.
        found: u64,
        /// Part 0's value.
        expected: u64,
    },
    /// A part's uuid field differs from part 0's.
    #[error("part {part}: pool header field `{field}` is {found}, part 0 has {expected}")]
    UuidMismatch {
        /// Index of the part.
        part: usize,
        /// Field name (`poolset_uuid`, `prev_repl_uuid`, `next_repl_uuid`).
        field: &'static str,
        /// Its value.
        found: HexUuid,
        /// Part 0's value.
        expected: HexUuid,
    },
    /// A part's `arch_flags` (the remote pool's `user_flags`) differ from part 0's.
    #[error("part {part}: pool header field `arch_flags` is {found}, part 0 has {expected}")]
    ArchFlagsMismatch {
        /// Index of the part.
        part: usize,
        /// Its bytes.
        found: Hex16,
        /// Part 0's bytes.
        expected: Hex16,
    },
    /// A part's prev/next part uuid does not name its neighbour.
    #[error(
        "part {part}: pool header field `{field}` is {found}, but the uuid of part {neighbour} is {expected}"
    )]
    PartLink {
        /// Index of the part.
        part: usize,
        /// `prev_part_uuid` or `next_part_uuid`.
        field: &'static str,
        /// Index of the neighbouring part the field must name.
        neighbour: usize,
        /// Value in the field.
        found: HexUuid,
        /// The neighbour's uuid.
        expected: HexUuid,
    },
}
