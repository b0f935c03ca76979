//! CREATE (`struct rpmem_msg_create`, 148 bytes + descriptor) and
//! CREATE_RESP (`struct rpmem_msg_create_resp`, 44 bytes, + 64 with our
//! extension).

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::common::RawCommon;
use super::ext::{self, RawExt};
use super::hdr::RawMsgHdr;
use super::hdr_resp::RawRespHdr;
use super::ibc::RawIbc;
use super::pool_attr::RawPoolAttr;
use super::{
    check_room, len_u64, read_raw, write_bytes, Common, CommonRepr, Error, Ext, ExtRepr, IbcAttr,
    IbcRepr, MsgHdr, MsgHdrRepr, MsgType, PoolAttrPacked, PoolDesc, Provider, RespHdr, RespHdrRepr,
    Status, CREATE_LEN, CREATE_RESP_LEN, EXT_LEN, MAX_POOL_DESC,
};
use crate::attr::PoolAttr;

/// Field offsets of CREATE, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `hdr`: request header ([`hdr_field`](crate::wire::oob::hdr_field)).
    pub const HDR: Range<usize> = 0..12;
    /// `c`: common fields ([`common_field`](crate::wire::oob::common_field)).
    pub const C: Range<usize> = 12..40;
    /// `pool_attr`: attributes to store in the pool header.
    pub const POOL_ATTR: Range<usize> = 40..144;
    /// `pool_desc.size` (big-endian), NUL included.
    pub const POOL_DESC_SIZE: Range<usize> = 144..148;
    /// `pool_desc.desc`: first byte of the descriptor.
    pub const POOL_DESC: usize = 148;
    /// Size without the descriptor bytes.
    pub const LEN: usize = 148;
}

/// Field offsets of CREATE_RESP, from its first byte.
pub mod resp_field {
    use core::ops::Range;
    /// `hdr`: response header ([`hdr_resp_field`](crate::wire::oob::hdr_resp_field)).
    pub const HDR: Range<usize> = 0..16;
    /// `ibc`: in-band attributes ([`ibc_field`](crate::wire::oob::ibc_field)).
    pub const IBC: Range<usize> = 16..44;
    /// Our extension block, present when `hdr.size` is 108.
    pub const EXT: Range<usize> = 44..108;
    /// Size without the extension.
    pub const LEN: usize = 44;
}

/// Wire layout of the fixed part of `rpmem_msg_create`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawCreate {
    hdr: RawMsgHdr,
    c: RawCommon,
    pool_attr: RawPoolAttr,
    pool_desc_size: U32,
}

/// Wire layout of `rpmem_msg_create_resp`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawCreateResp {
    hdr: RawRespHdr,
    ibc: RawIbc,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RawCreate, hdr) == field::HDR.start);
    assert!(offset_of!(RawCreate, c) == field::C.start);
    assert!(offset_of!(RawCreate, pool_attr) == field::POOL_ATTR.start);
    assert!(offset_of!(RawCreate, pool_desc_size) == field::POOL_DESC_SIZE.start);
    assert!(size_of::<RawCreate>() == field::LEN && field::LEN == CREATE_LEN);
    assert!(offset_of!(RawCreateResp, hdr) == resp_field::HDR.start);
    assert!(offset_of!(RawCreateResp, ibc) == resp_field::IBC.start);
    assert!(size_of::<RawCreateResp>() == resp_field::LEN);
    assert!(resp_field::LEN == CREATE_RESP_LEN);
    assert!(resp_field::EXT.start == CREATE_RESP_LEN);
    assert!(resp_field::EXT.end == CREATE_RESP_LEN + EXT_LEN);
};

const NAME: &str = "CREATE";
const RESP_NAME: &str = "CREATE_RESP";

/// Reads the descriptor bytes a request header announces after a fixed part
/// of `fixed` bytes, refusing a size above `fixed + MAX_POOL_DESC` before
/// looking at them.
pub(crate) fn desc_bytes<'a>(
    msg: &'static str,
    size: u64,
    fixed: usize,
    rest: &'a [u8],
    have: usize,
) -> Result<&'a [u8], Error> {
    let max = fixed.saturating_add(MAX_POOL_DESC);
    if size > len_u64(max) {
        return Err(Error::TooLarge {
            msg,
            field: "hdr.size",
            offset: super::hdr_field::SIZE.start,
            value: size,
            limit: len_u64(max),
        });
    }
    if size < len_u64(fixed) {
        return Err(Error::TooSmall {
            msg,
            field: "hdr.size",
            offset: super::hdr_field::SIZE.start,
            value: size,
            min: len_u64(fixed),
        });
    }
    // `size` is between `fixed` and `max`, both `usize`.
    let total = usize::try_from(size).unwrap_or(max);
    let body = total.saturating_sub(fixed);
    rest.get(..body).ok_or(Error::Truncated {
        msg,
        need: total,
        have,
    })
}

/// A checked view of a CREATE message: the fixed part plus the
/// `hdr.size - 148` descriptor bytes the header announces.
#[derive(Clone, Copy, Debug)]
pub struct Create<'a> {
    raw: &'a RawCreate,
    desc: &'a [u8],
}

impl<'a> Create<'a> {
    /// Checks that `buf` holds the whole message as its header sizes it
    /// (`hdr.size` between 148 and 148 + [`MAX_POOL_DESC`]); `buf` may hold
    /// more.
    pub fn new_checked(buf: &'a [u8]) -> Result<Create<'a>, Error> {
        let (raw, rest) = read_raw::<RawCreate>(buf, NAME)?;
        let desc = desc_bytes(NAME, raw.hdr.size.get(), field::LEN, rest, buf.len())?;
        Ok(Create { raw, desc })
    }

    /// The request header.
    pub fn hdr(&self) -> MsgHdr<'a> {
        MsgHdr::from_raw(&self.raw.hdr)
    }

    /// The common fields.
    pub fn common(&self) -> Common<'a> {
        Common::from_raw(&self.raw.c)
    }

    /// The pool attributes.
    pub fn pool_attr(&self) -> PoolAttrPacked<'a> {
        PoolAttrPacked::from_raw(&self.raw.pool_attr)
    }

    /// `pool_desc.size`.
    pub fn pool_desc_size(&self) -> u32 {
        self.raw.pool_desc_size.get()
    }

    /// The bytes after the fixed part that `hdr.size` covers (the
    /// descriptor with its NUL when the message is valid).
    pub fn pool_desc_bytes(&self) -> &'a [u8] {
        self.desc
    }

    /// Length of the message (`hdr.size`).
    pub fn total_len(&self) -> usize {
        field::LEN.saturating_add(self.desc.len())
    }
}

/// A CREATE request as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateRepr<'a> {
    /// Common fields.
    pub common: CommonRepr,
    /// Attributes for the new pool (all zero for a pool without headers).
    pub attr: PoolAttr,
    /// Pool set name.
    pub pool_desc: PoolDesc<'a>,
}

impl<'a> CreateRepr<'a> {
    /// Parses a CREATE: the type, then the descriptor (PMDK's checks, see
    /// [`PoolDesc`]). The common fields are not judged here.
    pub fn parse(view: &Create<'a>) -> Result<CreateRepr<'a>, Error> {
        let ty = view.hdr().msg_type();
        if ty != MsgType::Create.to_u32() {
            return Err(Error::Mismatch {
                msg: NAME,
                field: "hdr.type",
                offset: super::hdr_field::TYPE.start,
                value: u64::from(ty),
                expected: u64::from(MsgType::Create.to_u32()),
            });
        }
        let pool_desc = PoolDesc::check_wire(
            NAME,
            field::POOL_DESC_SIZE.start,
            view.pool_desc_size(),
            view.desc,
            field::POOL_DESC,
        )?;
        Ok(CreateRepr {
            common: CommonRepr::parse(&view.common()),
            attr: view.pool_attr().to_attr(),
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
        let raw = RawCreate {
            hdr: MsgHdrRepr::raw_for(MsgType::Create, len),
            c: self.common.to_raw(),
            pool_attr: PoolAttrPacked::raw_of(&self.attr),
            pool_desc_size: U32::new(u32::try_from(self.pool_desc.wire_size()).unwrap_or(0)),
        };
        write_bytes(raw.as_bytes(), buf, NAME)?;
        write_desc(self.pool_desc, buf, field::POOL_DESC, NAME)?;
        Ok(len)
    }
}

/// Writes a descriptor and its NUL at `at` in `buf`.
pub(crate) fn write_desc(
    desc: PoolDesc<'_>,
    buf: &mut [u8],
    at: usize,
    msg: &'static str,
) -> Result<(), Error> {
    let have = buf.len();
    let need = at.saturating_add(desc.wire_size());
    let dst = buf
        .get_mut(at..need)
        .ok_or(Error::BufferTooSmall { msg, need, have })?;
    let (text, nul) = dst.split_at_mut(desc.as_bytes().len());
    text.copy_from_slice(desc.as_bytes());
    nul.fill(0);
    Ok(())
}

/// A checked view of a CREATE_RESP: the 44 PMDK bytes, plus the extension
/// block when `hdr.size` says 108.
#[derive(Clone, Copy, Debug)]
pub struct CreateResp<'a> {
    raw: &'a RawCreateResp,
    ext: Option<&'a RawExt>,
}

impl<'a> CreateResp<'a> {
    /// Checks that `buf` holds the whole message (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<CreateResp<'a>, Error> {
        let (raw, rest) = read_raw::<RawCreateResp>(buf, RESP_NAME)?;
        let ext = ext::read_in_resp(
            raw.hdr.size.get(),
            rest,
            resp_field::LEN,
            buf.len(),
            RESP_NAME,
        )?;
        Ok(CreateResp { raw, ext })
    }

    /// The response header.
    pub fn hdr(&self) -> RespHdr<'a> {
        RespHdr::from_raw(&self.raw.hdr)
    }

    /// The in-band attributes.
    pub fn ibc(&self) -> IbcAttr<'a> {
        IbcAttr::from_raw(&self.raw.ibc)
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

/// A CREATE_RESP as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateRespRepr {
    /// Status.
    pub status: Status,
    /// In-band attributes (all zero in PMDK's failed responses).
    pub ibc: IbcRepr,
    /// Our extension block.
    pub ext: Option<ExtRepr>,
}

impl CreateRespRepr {
    /// Parses a CREATE_RESP answering a request for `provider`: type, size
    /// (44; or 108 with the extension, only for our providers, so that a
    /// PMDK provider rejects trailing bytes exactly as librpmem does),
    /// status, then the extension block.
    pub fn parse(view: &CreateResp<'_>, provider: Provider) -> Result<CreateRespRepr, Error> {
        let ext_len = provider.has_extension().then_some(resp_field::EXT.end);
        let hdr = RespHdrRepr::parse_expecting(
            &view.hdr(),
            MsgType::CreateResp,
            resp_field::LEN,
            ext_len,
        )?;
        let ext = ext::parse_in_resp(view.ext(), RESP_NAME, resp_field::EXT.start)?;
        Ok(CreateRespRepr {
            status: hdr.status,
            ibc: IbcRepr::parse(&view.ibc()),
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
        let raw = RawCreateResp {
            hdr: RespHdrRepr::raw_for(self.status, MsgType::CreateResp, len),
            ibc: self.ibc.to_raw(),
        };
        write_bytes(raw.as_bytes(), buf, RESP_NAME)?;
        ext::emit_in_resp(self.ext, buf, resp_field::EXT.start, RESP_NAME)?;
        Ok(len)
    }
}
