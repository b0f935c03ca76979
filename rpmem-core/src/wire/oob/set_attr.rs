//! SET_ATTR (`struct rpmem_msg_set_attr`, 116 bytes) and SET_ATTR_RESP
//! (`struct rpmem_msg_set_attr_resp`, 16 bytes).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::close::check_req_hdr;
use super::hdr::RawMsgHdr;
use super::pool_attr::RawPoolAttr;
use super::{
    read_raw, write_bytes, Error, MsgHdr, MsgHdrRepr, MsgType, PoolAttrPacked, RespHdr,
    RespHdrRepr, Status, SET_ATTR_LEN, SET_ATTR_RESP_LEN,
};
use crate::attr::PoolAttr;

/// Field offsets of SET_ATTR, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `hdr`: request header.
    pub const HDR: Range<usize> = 0..12;
    /// `pool_attr`: the new attributes.
    pub const POOL_ATTR: Range<usize> = 12..116;
    /// Size of the message.
    pub const LEN: usize = 116;
}

/// Wire layout of `rpmem_msg_set_attr`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawSetAttr {
    hdr: RawMsgHdr,
    pool_attr: RawPoolAttr,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RawSetAttr, hdr) == field::HDR.start);
    assert!(offset_of!(RawSetAttr, pool_attr) == field::POOL_ATTR.start);
    assert!(size_of::<RawSetAttr>() == field::LEN && field::LEN == SET_ATTR_LEN);
    assert!(SET_ATTR_RESP_LEN == super::MSG_HDR_RESP_LEN);
};

const NAME: &str = "SET_ATTR";

/// A checked view of a SET_ATTR message.
#[derive(Clone, Copy, Debug)]
pub struct SetAttr<'a> {
    raw: &'a RawSetAttr,
}

impl<'a> SetAttr<'a> {
    /// Checks that `buf` holds the whole message (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<SetAttr<'a>, Error> {
        let (raw, _) = read_raw::<RawSetAttr>(buf, NAME)?;
        Ok(SetAttr { raw })
    }

    /// The request header.
    pub fn hdr(&self) -> MsgHdr<'a> {
        MsgHdr::from_raw(&self.raw.hdr)
    }

    /// The new attributes.
    pub fn pool_attr(&self) -> PoolAttrPacked<'a> {
        PoolAttrPacked::from_raw(&self.raw.pool_attr)
    }
}

/// A SET_ATTR request as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetAttrRepr {
    /// The new attributes (all zero asks rpmemd to clear them).
    pub attr: PoolAttr,
}

impl SetAttrRepr {
    /// Parses a SET_ATTR: type 7 and size exactly 116.
    pub fn parse(view: &SetAttr<'_>) -> Result<SetAttrRepr, Error> {
        check_req_hdr(&view.hdr(), MsgType::SetAttr, field::LEN)?;
        Ok(SetAttrRepr {
            attr: view.pool_attr().to_attr(),
        })
    }

    /// Length of the emitted message.
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = RawSetAttr {
            hdr: MsgHdrRepr::raw_for(MsgType::SetAttr, field::LEN),
            pool_attr: PoolAttrPacked::raw_of(&self.attr),
        };
        write_bytes(raw.as_bytes(), buf, NAME)
    }
}

/// A SET_ATTR_RESP as a value (a bare response header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetAttrRespRepr {
    /// Status.
    pub status: Status,
}

impl SetAttrRespRepr {
    /// Parses a SET_ATTR_RESP: type 8, size exactly 16, then a known status.
    pub fn parse(view: &RespHdr<'_>) -> Result<SetAttrRespRepr, Error> {
        let hdr =
            RespHdrRepr::parse_expecting(view, MsgType::SetAttrResp, SET_ATTR_RESP_LEN, None)?;
        Ok(SetAttrRespRepr { status: hdr.status })
    }

    /// Length of the emitted message.
    pub const fn buffer_len(&self) -> usize {
        SET_ATTR_RESP_LEN
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let raw = RespHdrRepr::raw_for(self.status, MsgType::SetAttrResp, SET_ATTR_RESP_LEN);
        write_bytes(raw.as_bytes(), buf, "SET_ATTR_RESP")
    }
}
