//! `struct rpmem_msg_hdr`: the 12-byte header of every request.

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{len_u64, read_raw, write_bytes, Error, MsgType, MSG_HDR_LEN};

/// Field offsets of `rpmem_msg_hdr` (all big-endian).
pub mod field {
    use core::ops::Range;
    /// `type`: `enum rpmem_msg_type`.
    pub const TYPE: Range<usize> = 0..4;
    /// `size`: size of the whole message, header included.
    pub const SIZE: Range<usize> = 4..12;
    /// Size of the header.
    pub const LEN: usize = 12;
}

/// Wire layout of `rpmem_msg_hdr`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawMsgHdr {
    pub(crate) msg_type: U32,
    pub(crate) size: U64,
}

const _: () = {
    assert!(core::mem::offset_of!(RawMsgHdr, msg_type) == field::TYPE.start);
    assert!(core::mem::offset_of!(RawMsgHdr, size) == field::SIZE.start);
    assert!(core::mem::size_of::<RawMsgHdr>() == field::LEN);
    assert!(field::LEN == MSG_HDR_LEN);
};

const NAME: &str = "request header";

/// A checked view of a request header.
#[derive(Clone, Copy, Debug)]
pub struct MsgHdr<'a> {
    raw: &'a RawMsgHdr,
}

impl<'a> MsgHdr<'a> {
    /// Checks that `buf` holds a whole header (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<MsgHdr<'a>, Error> {
        let (raw, _) = read_raw::<RawMsgHdr>(buf, NAME)?;
        Ok(MsgHdr { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawMsgHdr) -> MsgHdr<'a> {
        MsgHdr { raw }
    }

    /// The raw `type` field.
    pub fn msg_type(&self) -> u32 {
        self.raw.msg_type.get()
    }

    /// The `size` field: the length of the whole message.
    pub fn size(&self) -> u64 {
        self.raw.size.get()
    }
}

/// A request header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgHdrRepr {
    /// Message type.
    pub msg_type: MsgType,
    /// Size of the whole message.
    pub size: u64,
}

impl MsgHdrRepr {
    /// Parses a header; the type must be one PMDK defines.
    pub fn parse(view: &MsgHdr<'_>) -> Result<MsgHdrRepr, Error> {
        let value = view.msg_type();
        let msg_type = MsgType::from_u32(value).ok_or(Error::Unknown {
            msg: NAME,
            field: "hdr.type",
            offset: field::TYPE.start,
            value: u64::from(value),
        })?;
        Ok(MsgHdrRepr {
            msg_type,
            size: view.size(),
        })
    }

    /// The header for a message of `msg_type` that is `len` bytes long.
    pub(crate) fn raw_for(msg_type: MsgType, len: usize) -> RawMsgHdr {
        RawMsgHdr {
            msg_type: U32::new(msg_type.to_u32()),
            size: U64::new(len_u64(len)),
        }
    }

    /// Length of the emitted header.
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the header to the front of `buf`, returning the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = RawMsgHdr {
            msg_type: U32::new(self.msg_type.to_u32()),
            size: U64::new(self.size),
        };
        write_bytes(raw.as_bytes(), buf, NAME)
    }
}
