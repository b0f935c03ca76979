//! `struct rpmem_msg_hdr_resp`: the 16-byte header of every response.

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{len_u64, read_raw, write_bytes, Error, MsgType, Status, MSG_HDR_RESP_LEN};

/// Field offsets of `rpmem_msg_hdr_resp` (all big-endian).
pub mod field {
    use core::ops::Range;
    /// `status`: `enum rpmem_err`.
    pub const STATUS: Range<usize> = 0..4;
    /// `type`: `enum rpmem_msg_type`.
    pub const TYPE: Range<usize> = 4..8;
    /// `size`: size of the whole message, header included.
    pub const SIZE: Range<usize> = 8..16;
    /// Size of the header.
    pub const LEN: usize = 16;
}

/// Wire layout of `rpmem_msg_hdr_resp`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawRespHdr {
    pub(crate) status: U32,
    pub(crate) msg_type: U32,
    pub(crate) size: U64,
}

const _: () = {
    assert!(core::mem::offset_of!(RawRespHdr, status) == field::STATUS.start);
    assert!(core::mem::offset_of!(RawRespHdr, msg_type) == field::TYPE.start);
    assert!(core::mem::offset_of!(RawRespHdr, size) == field::SIZE.start);
    assert!(core::mem::size_of::<RawRespHdr>() == field::LEN);
    assert!(field::LEN == MSG_HDR_RESP_LEN);
};

const NAME: &str = "response header";

/// A checked view of a response header.
#[derive(Clone, Copy, Debug)]
pub struct RespHdr<'a> {
    raw: &'a RawRespHdr,
}

impl<'a> RespHdr<'a> {
    /// Checks that `buf` holds a whole header (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<RespHdr<'a>, Error> {
        let (raw, _) = read_raw::<RawRespHdr>(buf, NAME)?;
        Ok(RespHdr { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawRespHdr) -> RespHdr<'a> {
        RespHdr { raw }
    }

    /// The raw `status` field.
    pub fn status(&self) -> u32 {
        self.raw.status.get()
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

/// A response header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespHdrRepr {
    /// Response status.
    pub status: Status,
    /// Message type.
    pub msg_type: MsgType,
    /// Size of the whole message.
    pub size: u64,
}

impl RespHdrRepr {
    /// Parses a header: the status must be below `MAX_RPMEM_ERR` and the
    /// type one PMDK defines. `msg` names the message in errors.
    pub(crate) fn parse_in(view: &RespHdr<'_>, msg: &'static str) -> Result<RespHdrRepr, Error> {
        let value = view.msg_type();
        let msg_type = MsgType::from_u32(value).ok_or(Error::Unknown {
            msg,
            field: "hdr.type",
            offset: field::TYPE.start,
            value: u64::from(value),
        })?;
        let value = view.status();
        let status = Status::from_u32(value).ok_or(Error::Unknown {
            msg,
            field: "hdr.status",
            offset: field::STATUS.start,
            value: u64::from(value),
        })?;
        Ok(RespHdrRepr {
            status,
            msg_type,
            size: view.size(),
        })
    }

    /// Parses a header on its own (see [`RespHdrRepr::parse_in`]).
    pub fn parse(view: &RespHdr<'_>) -> Result<RespHdrRepr, Error> {
        Self::parse_in(view, NAME)
    }

    /// Parses the header of a message that must be of type `expected` and
    /// `plain_len` bytes long, or `ext_len` bytes when that is `Some` (a
    /// response carrying our extension). Checks in librpmem's order: type,
    /// size, then status.
    pub(crate) fn parse_expecting(
        view: &RespHdr<'_>,
        expected: MsgType,
        plain_len: usize,
        ext_len: Option<usize>,
    ) -> Result<RespHdrRepr, Error> {
        let msg = expected.name();
        let value = view.msg_type();
        if value != expected.to_u32() {
            return Err(Error::Mismatch {
                msg,
                field: "hdr.type",
                offset: field::TYPE.start,
                value: u64::from(value),
                expected: u64::from(expected.to_u32()),
            });
        }
        let size = view.size();
        let plain = len_u64(plain_len);
        let with_ext = ext_len.map(len_u64);
        if size != plain && Some(size) != with_ext {
            return Err(Error::Mismatch {
                msg,
                field: "hdr.size",
                offset: field::SIZE.start,
                value: size,
                expected: with_ext.unwrap_or(plain),
            });
        }
        Self::parse_in(view, msg)
    }

    /// The header for a response of `msg_type` that is `len` bytes long.
    pub(crate) fn raw_for(status: Status, msg_type: MsgType, len: usize) -> RawRespHdr {
        RawRespHdr {
            status: U32::new(status.to_u32()),
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
        let raw = RawRespHdr {
            status: U32::new(self.status.to_u32()),
            msg_type: U32::new(self.msg_type.to_u32()),
            size: U64::new(self.size),
        };
        write_bytes(raw.as_bytes(), buf, NAME)
    }
}
