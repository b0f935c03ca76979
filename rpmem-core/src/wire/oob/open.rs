//! OPEN (`struct rpmem_msg_open`, 44 bytes + descriptor) and OPEN_RESP
//! (`struct rpmem_msg_open_resp`, 148 bytes, + 64 with our extension).

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::common::RawCommon;
use super::create::{desc_bytes, write_desc};
use super::ext::{self, RawExt};
use super::hdr::RawMsgHdr;
use super::hdr_resp::RawRespHdr;
use super::ibc::RawIbc;
use super::pool_attr::RawPoolAttr;
use super::{
    check_room, read_raw, write_bytes, Common, CommonRepr, Error, Ext, ExtRepr, IbcAttr, IbcRepr,
    MsgHdr, MsgHdrRepr, MsgType, PoolAttrPacked, PoolDesc, Provider, RespHdr, RespHdrRepr, Status,
    EXT_LEN, OPEN_LEN, OPEN_RESP_LEN,
};
use crate::attr::PoolAttr;

/// Field offsets of OPEN, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `hdr`: request header.
    pub const HDR: Range<usize> = 0..12;
    /// `c`: common fields.
    pub const C: Range<usize> = 12..40;
    /// `pool_desc.size` (big-endian), NUL included.
    pub const POOL_DESC_SIZE: Range<usize> = 40..44;
    /// `pool_desc.desc`: first byte of the descriptor.
    pub const POOL_DESC: usize = 44;
    /// Size without the descriptor bytes.
    pub const LEN: usize = 44;
}

/// Field offsets of OPEN_RESP, from its first byte.
pub mod resp_field {
    use core::ops::Range;
    /// `hdr`: response header.
    pub const HDR: Range<usize> = 0..16;
    /// `ibc`: in-band attributes.
    pub const IBC: Range<usize> = 16..44;
    /// `pool_attr`: the attributes stored in the pool.
    pub const POOL_ATTR: Range<usize> = 44..148;
    /// Our extension block, present when `hdr.size` is 212.
    pub const EXT: Range<usize> = 148..212;
    /// Size without the extension.
    pub const LEN: usize = 148;
}

/// Wire layout of the fixed part of `rpmem_msg_open`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawOpen {
    hdr: RawMsgHdr,
    c: RawCommon,
    pool_desc_size: U32,
}

/// Wire layout of `rpmem_msg_open_resp`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawOpenResp {
    hdr: RawRespHdr,
    ibc: RawIbc,
    pool_attr: RawPoolAttr,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RawOpen, hdr) == field::HDR.start);
    assert!(offset_of!(RawOpen, c) == field::C.start);
    assert!(offset_of!(RawOpen, pool_desc_size) == field::POOL_DESC_SIZE.start);
    assert!(size_of::<RawOpen>() == field::LEN && field::LEN == OPEN_LEN);
    assert!(offset_of!(RawOpenResp, hdr) == resp_field::HDR.start);
    assert!(offset_of!(RawOpenResp, ibc) == resp_field::IBC.start);
    assert!(offset_of!(RawOpenResp, pool_attr) == resp_field::POOL_ATTR.start);
    assert!(size_of::<RawOpenResp>() == resp_field::LEN);
    assert!(resp_field::LEN == OPEN_RESP_LEN);
    assert!(resp_field::EXT.start == OPEN_RESP_LEN);
    assert!(resp_field::EXT.end == OPEN_RESP_LEN + EXT_LEN);
};

const NAME: &str = "OPEN";
const RESP_NAME: &str = "OPEN_RESP";

/// A checked view of an OPEN message: the fixed part plus the
/// `hdr.size - 44` descriptor bytes the header announces.
#[derive(Clone, Copy, Debug)]
pub struct Open<'a> {
    raw: &'a RawOpen,
    desc: &'a [u8],
}

impl<'a> Open<'a> {
    /// Checks that `buf` holds the whole message as its header sizes it
    /// (`hdr.size` between 44 and 44 + `MAX_POOL_DESC`); `buf` may hold
    /// more.
    pub fn new_checked(buf: &'a [u8]) -> Result<Open<'a>, Error> {
        let (raw, rest) = read_raw::<RawOpen>(buf, NAME)?;
        let desc = desc_bytes(NAME, raw.hdr.size.get(), field::LEN, rest, buf.len())?;
        Ok(Open { raw, desc })
    }

    /// The request header.
    pub fn hdr(&self) -> MsgHdr<'a> {
        MsgHdr::from_raw(&self.raw.hdr)
    }

    /// The common fields.
    pub fn common(&self) -> Common<'a> {
        Common::from_raw(&self.raw.c)
    }

    /// `pool_desc.size`.
    pub fn pool_desc_size(&self) -> u32 {
        self.raw.pool_desc_size.get()
    }

    /// The bytes after the fixed part that `hdr.size` covers.
    pub fn pool_desc_bytes(&self) -> &'a [u8] {
        self.desc
    }

    /// Length of the message (`hdr.size`).
    pub fn total_len(&self) -> usize {
        field::LEN.saturating_add(self.desc.len())
    }
}

/// An OPEN request as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRepr<'a> {
    /// Common fields.
    pub common: CommonRepr,
    /// Pool set name.
    pub pool_desc: PoolDesc<'a>,
}

impl<'a> OpenRepr<'a> {
    /// Parses an OPEN: the type, then the descriptor (see [`PoolDesc`]).
    pub fn parse(view: &Open<'a>) -> Result<OpenRepr<'a>, Error> {
        let ty = view.hdr().msg_type();
        if ty != MsgType::Open.to_u32() {
            return Err(Error::Mismatch {
                msg: NAME,
                field: "hdr.type",
                offset: super::hdr_field::TYPE.start,
                value: u64::from(ty),
                expected: u64::from(MsgType::Open.to_u32()),
            });
        }
        let pool_desc = PoolDesc::check_wire(
            NAME,
            field::POOL_DESC_SIZE.start,
            view.pool_desc_size(),
            view.desc,
            field::POOL_DESC,
        )?;
        Ok(OpenRepr {
            common: CommonRepr::parse(&view.common()),
            pool_desc,
        })
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        field::LEN.saturating_add(self.pool_desc.wire_size())
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        check_room(buf, len, NAME)?;
        let raw = RawOpen {
            hdr: MsgHdrRepr::raw_for(MsgType::Open, len),
            c: self.common.to_raw(),
            pool_desc_size: U32::new(u32::try_from(self.pool_desc.wire_size()).unwrap_or(0)),
        };
        write_bytes(raw.as_bytes(), buf, NAME)?;
        write_desc(self.pool_desc, buf, field::POOL_DESC, NAME)?;
        Ok(len)
    }
}

/// A checked view of an OPEN_RESP: the 148 PMDK bytes, plus the extension
/// block when `hdr.size` says 212.
#[derive(Clone, Copy, Debug)]
pub struct OpenResp<'a> {
    raw: &'a RawOpenResp,
    ext: Option<&'a RawExt>,
}

impl<'a> OpenResp<'a> {
    /// Checks that `buf` holds the whole message (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<OpenResp<'a>, Error> {
        let (raw, rest) = read_raw::<RawOpenResp>(buf, RESP_NAME)?;
        let ext = ext::read_in_resp(
            raw.hdr.size.get(),
            rest,
            resp_field::LEN,
            buf.len(),
            RESP_NAME,
        )?;
        Ok(OpenResp { raw, ext })
    }

    /// The response header.
    pub fn hdr(&self) -> RespHdr<'a> {
        RespHdr::from_raw(&self.raw.hdr)
    }

    /// The in-band attributes.
    pub fn ibc(&self) -> IbcAttr<'a> {
        IbcAttr::from_raw(&self.raw.ibc)
    }

    /// The pool attributes.
    pub fn pool_attr(&self) -> PoolAttrPacked<'a> {
        PoolAttrPacked::from_raw(&self.raw.pool_attr)
    }

    /// The extension block, when the header's size covers one.
    pub fn ext(&self) -> Option<Ext<'a>> {
        self.ext.map(Ext::from_raw)
    }

    /// Length of the message as far as this view covers it.
    pub fn total_len(&self) -> usize {
        ext::resp_len(resp_field::LEN, self.ext.is_some())
    }
}

/// An OPEN_RESP as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRespRepr {
    /// Status.
    pub status: Status,
    /// In-band attributes (all zero in PMDK's failed responses).
    pub ibc: IbcRepr,
    /// The attributes stored in the pool (all zero for a pool without
    /// headers).
    pub attr: PoolAttr,
    /// Our extension block.
    pub ext: Option<ExtRepr>,
}

impl OpenRespRepr {
    /// Parses an OPEN_RESP answering a request for `provider` (see
    /// [`CreateRespRepr::parse`](super::CreateRespRepr::parse) for the
    /// order of checks).
    pub fn parse(view: &OpenResp<'_>, provider: Provider) -> Result<OpenRespRepr, Error> {
        let ext_len = provider.has_extension().then_some(resp_field::EXT.end);
        let hdr =
            RespHdrRepr::parse_expecting(&view.hdr(), MsgType::OpenResp, resp_field::LEN, ext_len)?;
        let ext = ext::parse_in_resp(view.ext(), RESP_NAME, resp_field::EXT.start)?;
        Ok(OpenRespRepr {
            status: hdr.status,
            ibc: IbcRepr::parse(&view.ibc()),
            attr: view.pool_attr().to_attr(),
            ext,
        })
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        ext::resp_len(resp_field::LEN, self.ext.is_some())
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        check_room(buf, len, RESP_NAME)?;
        let raw = RawOpenResp {
            hdr: RespHdrRepr::raw_for(self.status, MsgType::OpenResp, len),
            ibc: self.ibc.to_raw(),
            pool_attr: PoolAttrPacked::raw_of(&self.attr),
        };
        write_bytes(raw.as_bytes(), buf, RESP_NAME)?;
        ext::emit_in_resp(self.ext, buf, resp_field::EXT.start, RESP_NAME)?;
        Ok(len)
    }
}
