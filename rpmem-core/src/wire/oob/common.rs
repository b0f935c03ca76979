//! `struct rpmem_msg_common`: the 28 bytes CREATE and OPEN share.

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{read_raw, write_bytes, Error, Provider, COMMON_LEN, PROTO_MAJOR, PROTO_MINOR};

/// Field offsets of `rpmem_msg_common`, from its first byte (all
/// big-endian). In CREATE and OPEN it starts at offset 12.
pub mod field {
    use core::ops::Range;
    /// `major`: protocol major version.
    pub const MAJOR: Range<usize> = 0..2;
    /// `minor`: protocol minor version.
    pub const MINOR: Range<usize> = 2..4;
    /// `pool_size`: minimum pool size the client needs.
    pub const POOL_SIZE: Range<usize> = 4..12;
    /// `nlanes`: number of lanes the client wants.
    pub const NLANES: Range<usize> = 12..16;
    /// `provider`: `enum rpmem_provider` (or one of ours).
    pub const PROVIDER: Range<usize> = 16..20;
    /// `buff_size`: size of the inline persist buffer.
    pub const BUFF_SIZE: Range<usize> = 20..28;
    /// Size of the struct.
    pub const LEN: usize = 28;
}

/// Wire layout of `rpmem_msg_common`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawCommon {
    major: U16,
    minor: U16,
    pool_size: U64,
    nlanes: U32,
    provider: U32,
    buff_size: U64,
}

const _: () = {
    assert!(core::mem::offset_of!(RawCommon, major) == field::MAJOR.start);
    assert!(core::mem::offset_of!(RawCommon, minor) == field::MINOR.start);
    assert!(core::mem::offset_of!(RawCommon, pool_size) == field::POOL_SIZE.start);
    assert!(core::mem::offset_of!(RawCommon, nlanes) == field::NLANES.start);
    assert!(core::mem::offset_of!(RawCommon, provider) == field::PROVIDER.start);
    assert!(core::mem::offset_of!(RawCommon, buff_size) == field::BUFF_SIZE.start);
    assert!(core::mem::size_of::<RawCommon>() == field::LEN);
    assert!(field::LEN == COMMON_LEN);
};

const NAME: &str = "rpmem_msg_common";

/// A checked view of `rpmem_msg_common`.
#[derive(Clone, Copy, Debug)]
pub struct Common<'a> {
    raw: &'a RawCommon,
}

impl<'a> Common<'a> {
    /// Checks that `buf` holds the whole struct (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<Common<'a>, Error> {
        let (raw, _) = read_raw::<RawCommon>(buf, NAME)?;
        Ok(Common { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawCommon) -> Common<'a> {
        Common { raw }
    }

    /// Protocol major version.
    pub fn major(&self) -> u16 {
        self.raw.major.get()
    }

    /// Protocol minor version.
    pub fn minor(&self) -> u16 {
        self.raw.minor.get()
    }

    /// Minimum pool size the client needs.
    pub fn pool_size(&self) -> u64 {
        self.raw.pool_size.get()
    }

    /// Number of lanes the client wants.
    pub fn nlanes(&self) -> u32 {
        self.raw.nlanes.get()
    }

    /// Provider.
    pub fn provider(&self) -> Provider {
        Provider(self.raw.provider.get())
    }

    /// Inline persist buffer size.
    pub fn buff_size(&self) -> u64 {
        self.raw.buff_size.get()
    }
}

/// `rpmem_msg_common` as a value. Parsing never fails: the values are
/// checked by the server machine, which answers with the status PMDK
/// would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommonRepr {
    /// Protocol major version ([`PROTO_MAJOR`]).
    pub major: u16,
    /// Protocol minor version ([`PROTO_MINOR`], or
    /// [`CommonRepr::SEALED_TCP_MINOR`] with [`Provider::TCP`]).
    pub minor: u16,
    /// Minimum pool size the client needs.
    pub pool_size: u64,
    /// Number of lanes the client wants.
    pub nlanes: u32,
    /// Provider.
    pub provider: Provider,
    /// Inline persist buffer size.
    pub buff_size: u64,
}

impl CommonRepr {
    /// The minor version of a request naming [`Provider::TCP`] since its
    /// lanes are sealed (hello `"RPT2"`): a client before that sent
    /// [`PROTO_MINOR`] with it and cannot speak to a sealing rpmemd, an
    /// rpmemd before that refuses this minor with `RPMEM_ERR_BADPROTO`.
    /// PMDK's providers keep [`PROTO_MINOR`].
    pub const SEALED_TCP_MINOR: u16 = 2;

    /// The minor version a request naming `provider` carries (and the only
    /// one rpmemd accepts with it).
    pub const fn minor_for(provider: Provider) -> u16 {
        if provider.0 == Provider::TCP.0 {
            Self::SEALED_TCP_MINOR
        } else {
            PROTO_MINOR
        }
    }

    /// True when rpmemd answering a request for `provider` with `status`
    /// means it predates sealed TCP lanes: a sealing rpmemd accepts
    /// [`CommonRepr::SEALED_TCP_MINOR`] with [`Provider::TCP`], one from
    /// before refuses every minor but [`PROTO_MINOR`] with
    /// `RPMEM_ERR_BADPROTO`.
    pub fn refusal_predates_sealing(provider: Provider, status: super::Status) -> bool {
        provider == Provider::TCP && status == super::Status::BadProto
    }

    /// A request at the protocol version this crate speaks for `provider`
    /// ([`CommonRepr::minor_for`]).
    pub const fn new(pool_size: u64, nlanes: u32, provider: Provider, buff_size: u64) -> Self {
        CommonRepr {
            major: PROTO_MAJOR,
            minor: Self::minor_for(provider),
            pool_size,
            nlanes,
            provider,
            buff_size,
        }
    }

    /// Reads the values of a view.
    pub fn parse(view: &Common<'_>) -> CommonRepr {
        CommonRepr {
            major: view.major(),
            minor: view.minor(),
            pool_size: view.pool_size(),
            nlanes: view.nlanes(),
            provider: view.provider(),
            buff_size: view.buff_size(),
        }
    }

    pub(crate) fn to_raw(self) -> RawCommon {
        RawCommon {
            major: U16::new(self.major),
            minor: U16::new(self.minor),
            pool_size: U64::new(self.pool_size),
            nlanes: U32::new(self.nlanes),
            provider: U32::new(self.provider.0),
            buff_size: U64::new(self.buff_size),
        }
    }

    /// Length of the emitted struct.
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the struct to the front of `buf`, returning the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        write_bytes(self.to_raw().as_bytes(), buf, NAME)
    }
}
