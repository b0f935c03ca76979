//! `struct rpmem_msg_ext`: our extension block (not in PMDK), 64 bytes,
//! appended to a successful CREATE_RESP / OPEN_RESP when the request named
//! one of our providers ([`Provider::TCP`](super::Provider::TCP),
//! [`Provider::VERBS`](super::Provider::VERBS)). The response header's
//! `size` covers it. All integers are big-endian.

use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{len_u64, read_raw, write_bytes, Error, EXT_LEN};

/// Field offsets of `rpmem_msg_ext`, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `magic`: [`MAGIC`](super::ExtRepr::MAGIC), `"RPX1"`.
    pub const MAGIC: Range<usize> = 0..4;
    /// `version`: [`VERSION`](super::ExtRepr::VERSION).
    pub const VERSION: Range<usize> = 4..6;
    /// `size`: size of the block, 64.
    pub const SIZE: Range<usize> = 6..8;
    /// `secret`: the per-session secret the data path must prove it knows.
    pub const SECRET: Range<usize> = 8..40;
    /// `flags`: see [`flags`](super::flags).
    pub const FLAGS: Range<usize> = 40..44;
    /// `max_inline`: largest payload the target accepts inline with a
    /// persist request.
    pub const MAX_INLINE: Range<usize> = 44..48;
    /// `reserved`: zero.
    pub const RESERVED: Range<usize> = 48..64;
    /// Size of the block.
    pub const LEN: usize = 64;
}

/// Bits of `rpmem_msg_ext.flags`. Bits not defined here are ignored by
/// readers and sent as zero.
pub mod flags {
    /// The target pool is on persistent memory (flushing CPU caches makes
    /// data durable).
    pub const PMEM: u32 = 1 << 0;
    /// A deep flush (`RPMEM_DEEP_PERSIST`) does more than a normal persist
    /// on this target (it syncs a non-pmem pool or a Device DAX region).
    pub const DEEP_FLUSH: u32 = 1 << 1;
    /// The pool's RDMA registration accepts IBTA RDMA FLUSH with the
    /// persistent placement type: an initiator whose device can post it may
    /// make its WRITEs durable with FLUSH instead of the announced method
    /// (see `rpmem_core::policy`, RDMA FLUSH). Only with the verbs provider.
    pub const RDMA_FLUSH: u32 = 1 << 2;
    /// The session's TCP lanes are plaintext (rpmemd's `tcp-plaintext =
    /// yes`): after the handshake, frames go in the clear. A client that
    /// did not choose plaintext refuses the session; one that did refuses a
    /// session without this bit. Only with the TCP provider.
    pub const PLAINTEXT: u32 = 1 << 3;
}

/// Wire layout of `rpmem_msg_ext`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawExt {
    magic: U32,
    version: U16,
    size: U16,
    secret: [u8; 32],
    flags: U32,
    max_inline: U32,
    reserved: [u8; 16],
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(RawExt, magic) == field::MAGIC.start);
    assert!(offset_of!(RawExt, version) == field::VERSION.start);
    assert!(offset_of!(RawExt, size) == field::SIZE.start);
    assert!(offset_of!(RawExt, secret) == field::SECRET.start);
    assert!(offset_of!(RawExt, flags) == field::FLAGS.start);
    assert!(offset_of!(RawExt, max_inline) == field::MAX_INLINE.start);
    assert!(offset_of!(RawExt, reserved) == field::RESERVED.start);
    assert!(core::mem::size_of::<RawExt>() == field::LEN);
    assert!(field::LEN == EXT_LEN);
};

const NAME: &str = "rpmem_msg_ext";

/// A checked view of `rpmem_msg_ext`.
#[derive(Clone, Copy, Debug)]
pub struct Ext<'a> {
    raw: &'a RawExt,
}

impl<'a> Ext<'a> {
    /// Checks that `buf` holds the whole block (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<Ext<'a>, Error> {
        let (raw, _) = read_raw::<RawExt>(buf, NAME)?;
        Ok(Ext { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawExt) -> Ext<'a> {
        Ext { raw }
    }

    /// The `magic` field.
    pub fn magic(&self) -> u32 {
        self.raw.magic.get()
    }

    /// The `version` field.
    pub fn version(&self) -> u16 {
        self.raw.version.get()
    }

    /// The `size` field.
    pub fn size(&self) -> u16 {
        self.raw.size.get()
    }

    /// The session secret.
    pub fn secret(&self) -> &'a [u8; 32] {
        &self.raw.secret
    }

    /// The `flags` field.
    pub fn flags(&self) -> u32 {
        self.raw.flags.get()
    }

    /// The `max_inline` field.
    pub fn max_inline(&self) -> u32 {
        self.raw.max_inline.get()
    }

    /// The reserved bytes.
    pub fn reserved(&self) -> &'a [u8; 16] {
        &self.raw.reserved
    }
}

/// `rpmem_msg_ext` as a value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtRepr {
    /// Per-session secret (256 bits). The data path's first message must
    /// prove knowledge of it; it is never all zero in a valid response.
    pub secret: [u8; 32],
    /// [`flags`] bits.
    pub flags: u32,
    /// Largest inline persist payload the target accepts.
    pub max_inline: u32,
}

impl core::fmt::Debug for ExtRepr {
    /// Never prints the secret.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExtRepr")
            .field("secret", &"<redacted>")
            .field("flags", &self.flags)
            .field("max_inline", &self.max_inline)
            .finish()
    }
}

impl ExtRepr {
    /// `"RPX1"` big-endian.
    pub const MAGIC: u32 = 0x5250_5831;
    /// The only version defined.
    pub const VERSION: u16 = 1;

    /// Parses a block that sits at `base` in message `msg`: checks magic,
    /// version, size and that the reserved bytes are zero.
    pub(crate) fn parse_in(view: &Ext<'_>, msg: &'static str, base: usize) -> Result<Self, Error> {
        if view.magic() != Self::MAGIC {
            return Err(Error::BadMagic {
                msg,
                offset: base.saturating_add(field::MAGIC.start),
                value: view.magic(),
                expected: Self::MAGIC,
            });
        }
        if view.version() != Self::VERSION {
            return Err(Error::Mismatch {
                msg,
                field: "ext.version",
                offset: base.saturating_add(field::VERSION.start),
                value: u64::from(view.version()),
                expected: u64::from(Self::VERSION),
            });
        }
        if usize::from(view.size()) != field::LEN {
            return Err(Error::Mismatch {
                msg,
                field: "ext.size",
                offset: base.saturating_add(field::SIZE.start),
                value: u64::from(view.size()),
                expected: super::len_u64(field::LEN),
            });
        }
        if let Some(pos) = view.reserved().iter().position(|&b| b != 0) {
            return Err(Error::NonZero {
                msg,
                field: "ext.reserved",
                offset: base
                    .saturating_add(field::RESERVED.start)
                    .saturating_add(pos),
            });
        }
        Ok(ExtRepr {
            secret: *view.secret(),
            flags: view.flags(),
            max_inline: view.max_inline(),
        })
    }

    /// Parses a block on its own.
    pub fn parse(view: &Ext<'_>) -> Result<Self, Error> {
        Self::parse_in(view, NAME, 0)
    }

    /// The check a client makes on top of parsing: the secret must not be
    /// all zero (a zero secret means the server forgot to draw one).
    pub fn validate(&self, msg: &'static str, base: usize) -> Result<(), Error> {
        if self.secret.iter().all(|&b| b == 0) {
            return Err(Error::AllZero {
                msg,
                field: "ext.secret",
                offset: base.saturating_add(field::SECRET.start),
            });
        }
        Ok(())
    }

    pub(crate) fn to_raw(self) -> RawExt {
        RawExt {
            magic: U32::new(Self::MAGIC),
            version: U16::new(Self::VERSION),
            size: U16::new(field::LEN as u16),
            secret: self.secret,
            flags: U32::new(self.flags),
            max_inline: U32::new(self.max_inline),
            reserved: [0; 16],
        }
    }

    /// Length of the emitted block.
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the block to the front of `buf`, returning the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        write_bytes(self.to_raw().as_bytes(), buf, NAME)
    }
}

// The block inside CREATE_RESP and OPEN_RESP, which carry it the same way:
// after their PMDK bytes, covered by the header's `size`.

/// The block of a response whose PMDK part is `pmdk_len` bytes: present
/// when the header's `size` is `pmdk_len + EXT_LEN`. `rest` is what the
/// response buffer (`have` bytes) holds after the PMDK part.
pub(crate) fn read_in_resp<'a>(
    size: u64,
    rest: &'a [u8],
    pmdk_len: usize,
    have: usize,
    msg: &'static str,
) -> Result<Option<&'a RawExt>, Error> {
    let need = pmdk_len.saturating_add(EXT_LEN);
    if size != len_u64(need) {
        return Ok(None);
    }
    let (raw, _) =
        read_raw::<RawExt>(rest, msg).map_err(|_| Error::Truncated { msg, need, have })?;
    Ok(Some(raw))
}

/// Length of a response whose PMDK part is `pmdk_len` bytes, with or
/// without the block.
pub(crate) fn resp_len(pmdk_len: usize, with_ext: bool) -> usize {
    if with_ext {
        pmdk_len.saturating_add(EXT_LEN)
    } else {
        pmdk_len
    }
}

/// Parses a response's block, found at offset `pmdk_len` of it.
pub(crate) fn parse_in_resp(
    view: Option<Ext<'_>>,
    msg: &'static str,
    pmdk_len: usize,
) -> Result<Option<ExtRepr>, Error> {
    view.map(|e| ExtRepr::parse_in(&e, msg, pmdk_len))
        .transpose()
}

/// Writes `ext`, if any, after the `pmdk_len` PMDK bytes at the front of
/// `buf`.
pub(crate) fn emit_in_resp(
    ext: Option<ExtRepr>,
    buf: &mut [u8],
    pmdk_len: usize,
    msg: &'static str,
) -> Result<(), Error> {
    let Some(ext) = ext else { return Ok(()) };
    let have = buf.len();
    let tail = buf.get_mut(pmdk_len..).ok_or(Error::BufferTooSmall {
        msg,
        need: pmdk_len.saturating_add(EXT_LEN),
        have,
    })?;
    write_bytes(ext.to_raw().as_bytes(), tail, msg).map(|_| ())
}
