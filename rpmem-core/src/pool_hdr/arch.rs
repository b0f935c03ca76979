//! `struct arch_flags`: the architecture a pool was created on.
//!
//! PMDK fills these 16 bytes with `util_get_arch_flags` and checks them with
//! `util_check_arch_flags` when libpmemobj & co. open a local pool.
//!
//! **rpmemd is different.** A remote pool's header stores the client's
//! `rpmem_pool_attr.user_flags` in these 16 bytes, copied raw
//! (`rpmemd_get_attr` / `util_set_rpmem_attr` in PMDK 1.12.1), and PMDK's
//! `util_header_check_remote` never calls `util_check_arch_flags`: it only
//! requires every part header of the pool to hold the same 16 bytes as the
//! first part. The daemon must therefore not run [`ArchFlags::compatible`]
//! on remote pools; [`crate::pool_hdr::check_parts`] does what rpmemd does.
//! The one place where the running machine's flags reach a remote header is
//! pool creation with all-zero `user_flags`: `util_header_create` then writes
//! the daemon's own [`ArchFlags::current`] (see
//! [`crate::pool_hdr::attr_for_create`]).

use super::{field, HdrError};
use core::ffi::{c_char, c_int, c_long, c_longlong, c_short};
use core::mem::align_of;

/// Number of bits per type in the alignment descriptor (`ALIGNMENT_DESC_BITS`).
pub const ALIGNMENT_DESC_BITS: u32 = 4;

/// `machine_class` of a 64-bit machine (`PMDK_MACHINE_CLASS_64`, ELFCLASS64).
pub const MACHINE_CLASS_64: u8 = 2;
/// `machine_class` of a 32-bit machine (ELFCLASS32). PMDK 1.12.1 supports
/// only 64-bit machines; this value is reported on 32-bit builds.
pub const MACHINE_CLASS_32: u8 = 1;
/// `data` of a little-endian machine (`PMDK_DATA_LE`, ELFDATA2LSB).
pub const DATA_LE: u8 = 1;
/// `data` of a big-endian machine (`PMDK_DATA_BE`, ELFDATA2MSB).
pub const DATA_BE: u8 = 2;
/// `machine` of x86_64 (`PMDK_MACHINE_X86_64`, EM_X86_64).
pub const MACHINE_X86_64: u16 = 62;
/// `machine` of aarch64 (`PMDK_MACHINE_AARCH64`, EM_AARCH64).
pub const MACHINE_AARCH64: u16 = 183;
/// `machine` of ppc64 (`PMDK_MACHINE_PPC64`, EM_PPC64).
pub const MACHINE_PPC64: u16 = 21;
/// `machine` of riscv64 (`PMDK_MACHINE_RISCV64`, EM_RISCV).
pub const MACHINE_RISCV64: u16 = 243;
/// `machine` of loongarch64 (`PMDK_MACHINE_LOONGARCH64`, EM_LOONGARCH).
pub const MACHINE_LOONGARCH64: u16 = 258;
/// `machine` reported on an architecture PMDK does not know (EM_NONE).
/// PMDK refuses to compile there.
pub const MACHINE_UNKNOWN: u16 = 0;

/// Alignment of C's `long double`. Rust has no such type, so this is the
/// value the platform C ABI gives it: 16 on x86_64 (80-bit x87 padded to 16
/// bytes) and on aarch64 / riscv64 / ppc64 / loongarch64 Linux (IEEE quad or
/// double-double), 4 on 32-bit x86, 8 (same as `double`) elsewhere.
const fn long_double_align() -> usize {
    if cfg!(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "powerpc64",
        target_arch = "loongarch64"
    )) {
        16
    } else if cfg!(target_arch = "x86") {
        4
    } else {
        align_of::<f64>()
    }
}

/// One type's nibble: `(alignment - 1) & 0xf` (`alignment_desc_of`).
const fn desc_of(align: usize) -> u64 {
    ((align as u64).wrapping_sub(1)) & ((1 << ALIGNMENT_DESC_BITS) - 1)
}

/// PMDK's `alignment_desc()` for this build: the alignments of `char`,
/// `short`, `int`, `long`, `long long`, `size_t`, `off_t`, `float`, `double`,
/// `long double` and `void *`, each stored as `alignment - 1` in 4 bits,
/// first type in the lowest nibble. `0x000007f737777310` on x86_64 Linux.
pub const fn alignment_desc() -> u64 {
    // `off_t` is 64-bit on every 64-bit Linux (and with PMDK's
    // `_FILE_OFFSET_BITS=64` on 32-bit ones).
    const B: u32 = ALIGNMENT_DESC_BITS;
    desc_of(align_of::<c_char>())
        | desc_of(align_of::<c_short>()) << B
        | desc_of(align_of::<c_int>()) << (2 * B)
        | desc_of(align_of::<c_long>()) << (3 * B)
        | desc_of(align_of::<c_longlong>()) << (4 * B)
        | desc_of(align_of::<usize>()) << (5 * B)
        | desc_of(align_of::<i64>()) << (6 * B)
        | desc_of(align_of::<f32>()) << (7 * B)
        | desc_of(align_of::<f64>()) << (8 * B)
        | desc_of(long_double_align()) << (9 * B)
        | desc_of(align_of::<*const u8>()) << (10 * B)
}

/// The decoded 16 bytes at offset 128 of the pool header (`struct arch_flags`).
///
/// All fields are kept as stored, including `reserved`, so that
/// [`ArchFlags::from_bytes`] and [`ArchFlags::to_bytes`] are exact inverses:
/// on a remote pool these bytes are the client's opaque `user_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArchFlags {
    /// Alignment descriptor (see [`alignment_desc`]).
    pub alignment_desc: u64,
    /// Address size class ([`MACHINE_CLASS_64`]).
    pub machine_class: u8,
    /// Data encoding ([`DATA_LE`] / [`DATA_BE`]).
    pub data: u8,
    /// Reserved, zero in headers PMDK writes for local pools.
    pub reserved: [u8; 4],
    /// ELF machine number ([`MACHINE_X86_64`], [`MACHINE_AARCH64`], ...).
    pub machine: u16,
}

impl ArchFlags {
    /// Size of `struct arch_flags` on media (`POOL_HDR_ARCH_LEN`).
    pub const LEN: usize = 16;

    /// All-zero flags.
    pub const ZERO: ArchFlags = ArchFlags {
        alignment_desc: 0,
        machine_class: 0,
        data: 0,
        reserved: [0; 4],
        machine: 0,
    };

    /// The flags of the machine this crate was compiled for, as
    /// `util_get_arch_flags` computes them (fixed at compile time).
    pub const fn current() -> ArchFlags {
        let machine = if cfg!(target_arch = "x86_64") {
            MACHINE_X86_64
        } else if cfg!(target_arch = "aarch64") {
            MACHINE_AARCH64
        } else if cfg!(target_arch = "powerpc64") {
            MACHINE_PPC64
        } else if cfg!(target_arch = "riscv64") {
            MACHINE_RISCV64
        } else if cfg!(target_arch = "loongarch64") {
            MACHINE_LOONGARCH64
        } else {
            MACHINE_UNKNOWN
        };
        let machine_class = if cfg!(target_pointer_width = "64") {
            MACHINE_CLASS_64
        } else {
            MACHINE_CLASS_32
        };
        let data = if cfg!(target_endian = "little") {
            DATA_LE
        } else {
            DATA_BE
        };
        ArchFlags {
            alignment_desc: alignment_desc(),
            machine_class,
            data,
            reserved: [0; 4],
            machine,
        }
    }

    /// Decodes the 16 on-media bytes (integers little-endian).
    pub const fn from_bytes(b: [u8; 16]) -> ArchFlags {
        ArchFlags {
            alignment_desc: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            machine_class: b[8],
            data: b[9],
            reserved: [b[10], b[11], b[12], b[13]],
            machine: u16::from_le_bytes([b[14], b[15]]),
        }
    }

    /// Encodes to the 16 on-media bytes (integers little-endian).
    pub const fn to_bytes(&self) -> [u8; 16] {
        let a = self.alignment_desc.to_le_bytes();
        let m = self.machine.to_le_bytes();
        let r = self.reserved;
        [
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
            a[6],
            a[7],
            self.machine_class,
            self.data,
            r[0],
            r[1],
            r[2],
            r[3],
            m[0],
            m[1],
        ]
    }

    /// True when all 16 bytes are zero.
    pub const fn is_zero(&self) -> bool {
        self.alignment_desc == 0
            && self.machine_class == 0
            && self.data == 0
            && self.reserved[0] == 0
            && self.reserved[1] == 0
            && self.reserved[2] == 0
            && self.reserved[3] == 0
            && self.machine == 0
    }

    /// `util_check_arch_flags`: may a pool whose header holds `self` be used
    /// on a machine whose flags are `expected` (normally
    /// [`ArchFlags::current`])?
    ///
    /// Like PMDK it requires `self.reserved` to be zero and `machine`,
    /// `data`, `machine_class` and `alignment_desc` to be equal; PMDK checks
    /// nothing else (it never looks at `expected.reserved`). PMDK logs every
    /// mismatch and fails once; this reports the first one in PMDK's order.
    ///
    /// Not for remote pools: see the module documentation.
    pub fn compatible(&self, expected: &ArchFlags) -> Result<(), HdrError> {
        let base = field::ARCH_FLAGS.start;
        if self.reserved != [0; 4] {
            return Err(HdrError::ArchMismatch {
                field: "arch_flags.reserved",
                offset: base.saturating_add(field::arch::RESERVED.start),
                found: u64::from(u32::from_le_bytes(self.reserved)),
                expected: 0,
            });
        }
        let checks: [(&'static str, usize, u64, u64); 4] = [
            (
                "arch_flags.machine",
                field::arch::MACHINE.start,
                u64::from(self.machine),
                u64::from(expected.machine),
            ),
            (
                "arch_flags.data",
                field::arch::DATA,
                u64::from(self.data),
                u64::from(expected.data),
            ),
            (
                "arch_flags.machine_class",
                field::arch::MACHINE_CLASS,
                u64::from(self.machine_class),
                u64::from(expected.machine_class),
            ),
            (
                "arch_flags.alignment_desc",
                field::arch::ALIGNMENT_DESC.start,
                self.alignment_desc,
                expected.alignment_desc,
            ),
        ];
        for (name, off, found, want) in checks {
            if found != want {
                return Err(HdrError::ArchMismatch {
                    field: name,
                    offset: base.saturating_add(off),
                    found,
                    expected: want,
                });
            }
        }
        Ok(())
    }
}
