//! `struct rpmem_msg_ibc_attr`: how to reach the in-band data path
//! (28 bytes, in CREATE_RESP and OPEN_RESP at offset 16).
//!
//! `nlanes` is sent in host order (little-endian): PMDK's
//! `rpmem_ntoh_msg_ibc_attr` forgets it. The other fields are big-endian.

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::byteorder::little_endian::U32 as LeU32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{read_raw, write_bytes, Error, PersistMethod, IBC_ATTR_LEN};

/// Field offsets of `rpmem_msg_ibc_attr`, from its first byte.
pub mod field {
    use core::ops::Range;
    /// `port`: data path port (big-endian, 1..=65535 when valid).
    pub const PORT: Range<usize> = 0..4;
    /// `persist_method`: `enum rpmem_persist_method` (big-endian).
    pub const PERSIST_METHOD: Range<usize> = 4..8;
    /// `rkey`: remote key of the pool's memory region (big-endian).
    pub const RKEY: Range<usize> = 8..16;
    /// `raddr`: remote address of the pool (big-endian).
    pub const RADDR: Range<usize> = 16..24;
    /// `nlanes`: lanes granted (LITTLE-endian, host order in PMDK).
    pub const NLANES: Range<usize> = 24..28;
    /// Size of the struct.
    pub const LEN: usize = 28;
}

/// Wire layout of `rpmem_msg_ibc_attr`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawIbc {
    port: U32,
    persist_method: U32,
    rkey: U64,
    raddr: U64,
    nlanes: LeU32,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(RawIbc, port) == field::PORT.start);
    assert!(offset_of!(RawIbc, persist_method) == field::PERSIST_METHOD.start);
    assert!(offset_of!(RawIbc, rkey) == field::RKEY.start);
    assert!(offset_of!(RawIbc, raddr) == field::RADDR.start);
    assert!(offset_of!(RawIbc, nlanes) == field::NLANES.start);
    assert!(core::mem::size_of::<RawIbc>() == field::LEN);
    assert!(field::LEN == IBC_ATTR_LEN);
};

const NAME: &str = "rpmem_msg_ibc_attr";

/// A checked view of `rpmem_msg_ibc_attr`.
#[derive(Clone, Copy, Debug)]
pub struct IbcAttr<'a> {
    raw: &'a RawIbc,
}

impl<'a> IbcAttr<'a> {
    /// Checks that `buf` holds the whole struct (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<IbcAttr<'a>, Error> {
        let (raw, _) = read_raw::<RawIbc>(buf, NAME)?;
        Ok(IbcAttr { raw })
    }

    pub(crate) fn from_raw(raw: &'a RawIbc) -> IbcAttr<'a> {
        IbcAttr { raw }
    }

    /// Data path port.
    pub fn port(&self) -> u32 {
        self.raw.port.get()
    }

    /// Persist method.
    pub fn persist_method(&self) -> PersistMethod {
        PersistMethod(self.raw.persist_method.get())
    }

    /// Remote key.
    pub fn rkey(&self) -> u64 {
        self.raw.rkey.get()
    }

    /// Remote address.
    pub fn raddr(&self) -> u64 {
        self.raw.raddr.get()
    }

    /// Lanes granted (decoded little-endian).
    pub fn nlanes(&self) -> u32 {
        self.raw.nlanes.get()
    }
}

/// `rpmem_msg_ibc_attr` as a value. Parsing never fails; librpmem's checks
/// (port, persist method) are made by the client machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IbcRepr {
    /// Data path port.
    pub port: u32,
    /// Persist method.
    pub persist_method: PersistMethod,
    /// Remote key.
    pub rkey: u64,
    /// Remote address.
    pub raddr: u64,
    /// Lanes granted.
    pub nlanes: u32,
}

impl IbcRepr {
    /// All zero: what rpmemd sends in a failed response.
    pub const ZERO: IbcRepr = IbcRepr {
        port: 0,
        persist_method: PersistMethod(0),
        rkey: 0,
        raddr: 0,
        nlanes: 0,
    };

    /// Reads the values of a view.
    pub fn parse(view: &IbcAttr<'_>) -> IbcRepr {
        IbcRepr {
            port: view.port(),
            persist_method: view.persist_method(),
            rkey: view.rkey(),
            raddr: view.raddr(),
            nlanes: view.nlanes(),
        }
    }

    /// librpmem's checks of a successful response plus ours: port in
    /// 1..=65535, persist method GPSPM or APM, and 1 to `max_nlanes` lanes.
    /// `msg` and `base` (offset of the struct in the message) locate errors.
    pub fn validate(&self, msg: &'static str, base: usize, max_nlanes: u32) -> Result<(), Error> {
        if self.port == 0 {
            return Err(Error::TooSmall {
                msg,
                field: "ibc.port",
                offset: base.saturating_add(field::PORT.start),
                value: u64::from(self.port),
                min: 1,
            });
        }
        if self.port > u32::from(u16::MAX) {
            return Err(Error::TooLarge {
                msg,
                field: "ibc.port",
                offset: base.saturating_add(field::PORT.start),
                value: u64::from(self.port),
                limit: u64::from(u16::MAX),
            });
        }
        if !self.persist_method.is_known() {
            return Err(Error::Unknown {
                msg,
                field: "ibc.persist_method",
                offset: base.saturating_add(field::PERSIST_METHOD.start),
                value: u64::from(self.persist_method.0),
            });
        }
        if self.nlanes == 0 {
            return Err(Error::TooSmall {
                msg,
                field: "ibc.nlanes",
                offset: base.saturating_add(field::NLANES.start),
                value: 0,
                min: 1,
            });
        }
        if self.nlanes > max_nlanes {
            return Err(Error::TooLarge {
                msg,
                field: "ibc.nlanes",
                offset: base.saturating_add(field::NLANES.start),
                value: u64::from(self.nlanes),
                limit: u64::from(max_nlanes),
            });
        }
        Ok(())
    }

    pub(crate) fn to_raw(self) -> RawIbc {
        RawIbc {
            port: U32::new(self.port),
            persist_method: U32::new(self.persist_method.0),
            rkey: U64::new(self.rkey),
            raddr: U64::new(self.raddr),
            nlanes: LeU32::new(self.nlanes),
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
