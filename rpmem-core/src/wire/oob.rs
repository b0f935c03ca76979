//! Out-of-band messages, byte-compatible with PMDK 1.12.1 `rpmem_proto.h`,
//! plus our extension block.
//!
//! The out-of-band protocol runs over the ssh channel: the client writes
//! rpmemd's stdin and reads its stdout. Every integer is big-endian except
//! three fields PMDK sends in host order (little-endian on every platform
//! rpmem supports): the 4-byte start-up status word ([`StatusWord`]),
//! `rpmem_msg_ibc_attr.nlanes` ([`IbcAttr`]) and `rpmem_msg_close.flags`
//! ([`Close`]).
//!
//! Each format has a view (`new_checked` is the only step that can fail,
//! after which every accessor is infallible) and a `*Repr` value with
//! `parse` and `emit`. Offsets in errors are counted from the first byte of
//! the message. [`Request`] and [`Response`] dispatch on the header type.
//!
//! | message | fixed size | followed by |
//! |---|---|---|
//! | CREATE | 148 | pool descriptor (`pool_desc.size` bytes, NUL-terminated) |
//! | CREATE_RESP | 44 | [`Ext`] (64) for our providers |
//! | OPEN | 44 | pool descriptor |
//! | OPEN_RESP | 148 | [`Ext`] (64) for our providers |
//! | CLOSE | 16 | |
//! | CLOSE_RESP | 16 | |
//! | SET_ATTR | 116 | |
//! | SET_ATTR_RESP | 16 | |
//!
//! `docs/protocol.md` (part 1) describes every field.

mod close;
mod common;
mod create;
mod error;
mod ext;
mod hdr;
mod hdr_resp;
mod ibc;
mod message;
mod open;
mod pool_attr;
mod pool_desc;
mod set_attr;
mod status_word;
#[cfg(test)]
pub(crate) mod tests;
mod types;

pub use close::{field as close_field, Close, CloseRepr, CloseRespRepr};
pub use common::{field as common_field, Common, CommonRepr};
pub use create::{
    field as create_field, resp_field as create_resp_field, Create, CreateRepr, CreateResp,
    CreateRespRepr,
};
pub use error::Error;
pub use ext::{field as ext_field, flags as ext_flags, Ext, ExtRepr};
pub use hdr::{field as hdr_field, MsgHdr, MsgHdrRepr};
pub use hdr_resp::{field as hdr_resp_field, RespHdr, RespHdrRepr};
pub use ibc::{field as ibc_field, IbcAttr, IbcRepr};
pub use message::{Request, Response};
pub use open::{
    field as open_field, resp_field as open_resp_field, Open, OpenRepr, OpenResp, OpenRespRepr,
};
pub use pool_attr::{field as pool_attr_field, PoolAttrPacked};
pub use pool_desc::PoolDesc;
pub use set_attr::{field as set_attr_field, SetAttr, SetAttrRepr, SetAttrRespRepr};
pub use status_word::{StatusWord, StatusWordRepr};
pub use types::{errno, Errno, MsgType, PersistMethod, Provider, Status, STATUS_COUNT};

/// `RPMEM_PROTO_MAJOR`: the only protocol major version PMDK 1.12.1 speaks.
pub const PROTO_MAJOR: u16 = 0;
/// `RPMEM_PROTO_MINOR`: the only protocol minor version PMDK 1.12.1 speaks.
pub const PROTO_MINOR: u16 = 1;

/// `RPMEM_CLOSE_FLAGS_REMOVE`: remove the pool set when closing it.
pub const CLOSE_FLAGS_REMOVE: u32 = 0x1;
/// `RPMEM_DEF_BUFF_SIZE`: the inline persist buffer size librpmem asks for.
pub const DEF_BUFF_SIZE: u64 = 8192;

/// Our TCP data path provider (`PROV_TCP`).
pub const PROV_TCP: Provider = Provider::TCP;
/// Our native ibverbs data path provider (`PROV_VERBS`).
pub const PROV_VERBS: Provider = Provider::VERBS;

/// Largest `pool_desc.size` accepted (descriptor plus its NUL): `PATH_MAX`
/// of Linux. PMDK has no bound (rpmemd `malloc`s whatever the header says);
/// we reject a larger declared size before reading the descriptor.
pub const MAX_POOL_DESC: usize = 4096;

/// Size of `struct rpmem_msg_hdr`.
pub const MSG_HDR_LEN: usize = 12;
/// Size of `struct rpmem_msg_hdr_resp`.
pub const MSG_HDR_RESP_LEN: usize = 16;
/// Size of `struct rpmem_msg_common`.
pub const COMMON_LEN: usize = 28;
/// Size of `struct rpmem_pool_attr_packed`.
pub const POOL_ATTR_LEN: usize = 104;
/// Size of `struct rpmem_msg_pool_desc` without the descriptor bytes.
pub const POOL_DESC_HDR_LEN: usize = 4;
/// Size of `struct rpmem_msg_ibc_attr`.
pub const IBC_ATTR_LEN: usize = 28;
/// Size of our `struct rpmem_msg_ext`.
pub const EXT_LEN: usize = 64;
/// Size of `struct rpmem_msg_create` without the descriptor bytes.
pub const CREATE_LEN: usize = 148;
/// Size of `struct rpmem_msg_create_resp` (without our extension).
pub const CREATE_RESP_LEN: usize = 44;
/// Size of `struct rpmem_msg_open` without the descriptor bytes.
pub const OPEN_LEN: usize = 44;
/// Size of `struct rpmem_msg_open_resp` (without our extension).
pub const OPEN_RESP_LEN: usize = 148;
/// Size of `struct rpmem_msg_close`.
pub const CLOSE_LEN: usize = 16;
/// Size of `struct rpmem_msg_close_resp`.
pub const CLOSE_RESP_LEN: usize = 16;
/// Size of `struct rpmem_msg_set_attr`.
pub const SET_ATTR_LEN: usize = 116;
/// Size of `struct rpmem_msg_set_attr_resp`.
pub const SET_ATTR_RESP_LEN: usize = 16;
/// Size of the start-up status word (and of rpmemd's failure word).
pub const STATUS_WORD_LEN: usize = 4;

/// The largest request a client can send: CREATE with the longest
/// descriptor.
pub const MAX_REQUEST_LEN: usize = CREATE_LEN + MAX_POOL_DESC;
/// The largest response rpmemd can send: OPEN_RESP with our extension.
pub const MAX_RESPONSE_LEN: usize = OPEN_RESP_LEN + EXT_LEN;

/// Reads a fixed-layout struct from the front of `buf`.
fn read_raw<'a, T>(buf: &'a [u8], msg: &'static str) -> Result<(&'a T, &'a [u8]), Error>
where
    T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    T::ref_from_prefix(buf).map_err(|_| Error::Truncated {
        msg,
        need: core::mem::size_of::<T>(),
        have: buf.len(),
    })
}

/// Writes `bytes` to the front of `buf`, returning the number written.
fn write_bytes(bytes: &[u8], buf: &mut [u8], msg: &'static str) -> Result<usize, Error> {
    let have = buf.len();
    let dst = buf.get_mut(..bytes.len()).ok_or(Error::BufferTooSmall {
        msg,
        need: bytes.len(),
        have,
    })?;
    dst.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// Checks that a buffer can take `need` bytes before anything is written.
fn check_room(buf: &[u8], need: usize, msg: &'static str) -> Result<(), Error> {
    if buf.len() < need {
        Err(Error::BufferTooSmall {
            msg,
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Converts a length to the `u64` of a wire field (lossless on every
/// platform Rust supports; saturates otherwise).
fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
