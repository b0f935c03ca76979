//! CLOSE (`struct rpmem_msg_close`, 16 bytes) and CLOSE_RESP
//! (`struct rpmem_msg_close_resp`, 16 bytes).
//!
//! `flags` is sent in host order (little-endian): PMDK's
//! `rpmem_ntoh_msg_close` converts only the header.

use zerocopy::byteorder::little_endian::U32 as LeU32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::hdr::RawMsgHdr;
use super::{
    len_u64, read_raw, write_bytes, Error, MsgHdr, MsgHdrRepr, MsgType, RespHdr, RespHdrRepr,
    Status, CLOSE_LEN, CLOSE_RESP_LEN,
};

/// Field offsets of CLOSE, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `hdr`: request header.
    pub const HDR: Range<usize> = 0..12;
    /// `flags` (LITTLE-endian): [`CLOSE_FLAGS_REMOVE`](crate::wire::oob::CLOSE_FLAGS_REMOVE).
    pub const FLAGS: Range<usize> = 12..16;
    /// Size of the message.
    pub const LEN: usize = 16;
}

/// Wire layout of `rpmem_msg_close`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawClose {
    hdr: RawMsgHdr,
    flags: LeU32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RawClose, hdr) == field::HDR.start);
    assert!(offset_of!(RawClose, flags) == field::FLAGS.start);
    assert!(size_of::<RawClose>() == field::LEN && field::LEN == CLOSE_LEN);
    assert!(CLOSE_RESP_LEN == super::MSG_HDR_RESP_LEN);
};

const NAME: &str = "CLOSE";

/// A checked view of a CLOSE message.
#[derive(Clone, Copy, Debug)]
pub struct Close<'a> {
    raw: &'a RawClose,
}

impl<'a> Close<'a> {
    /// Checks that `buf` holds the whole message (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<Close<'a>, Error> {
        let (raw, _) = read_raw::<RawClose>(buf, NAME)?;
        Ok(Close { raw })
    }

    /// The request header.
    pub fn hdr(&self) -> MsgHdr<'a> {
        MsgHdr::from_raw(&self.raw.hdr)
    }

    /// The flags (decoded little-endian).
    pub fn flags(&self) -> u32 {
        self.raw.flags.get()
    }
}

/// A CLOSE request as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseRepr {
    /// Flags; bits other than `CLOSE_FLAGS_REMOVE` are ignored by rpmemd.
    pub flags: u32,
}

impl CloseRepr {
    /// Parses a CLOSE: type 5 and size exactly 16.
    pub fn parse(view: &Close<'_>) -> Result<CloseRepr, Error> {
        check_req_hdr(&view.hdr(), MsgType::Close, field::LEN)?;
        Ok(CloseRepr {
            flags: view.flags(),
        })
    }

    /// Length of the emitted message.
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = RawClose {
            hdr: MsgHdrRepr::raw_for(MsgType::Close, field::LEN),
            flags: LeU32::new(self.flags),
        };
        write_bytes(raw.as_bytes(), buf, NAME)
    }
}

/// Checks the type and exact size of a fixed-size request.
pub(crate) fn check_req_hdr(hdr: &MsgHdr<'_>, ty: MsgType, len: usize) -> Result<(), Error> {
    let msg = ty.name();
    if hdr.msg_type() != ty.to_u32() {
        return Err(Error::Mismatch {
            msg,
            field: "hdr.type",
            offset: super::hdr_field::TYPE.start,
            value: u64::from(hdr.msg_type()),
            expected: u64::from(ty.to_u32()),
        });
    }
    if hdr.size() != len_u64(len) {
        return Err(Error::Mismatch {
            msg,
            field: "hdr.size",
            offset: super::hdr_field::SIZE.start,
            value: hdr.size(),
            expected: len_u64(len),
        });
    }
    Ok(())
}

/// A CLOSE_RESP as a value (a bare response header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseRespRepr {
    /// Status.
    pub status: Status,
}

impl CloseRespRepr {
    /// Parses a CLOSE_RESP: type 6, size exactly 16, then a known status.
    pub fn parse(view: &RespHdr<'_>) -> Result<CloseRespRepr, Error> {
        let hdr = RespHdrRepr::parse_expecting(view, MsgType::CloseResp, CLOSE_RESP_LEN, None)?;
        Ok(CloseRespRepr { status: hdr.status })
    }

    /// Length of the emitted message.
    pub const fn buffer_len(&self) -> usize {
        CLOSE_RESP_LEN
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = RespHdrRepr::raw_for(self.status, MsgType::CloseResp, CLOSE_RESP_LEN);
        write_bytes(raw.as_bytes(), buf, "CLOSE_RESP")
    }
}
