//! The 4-byte status word rpmemd writes to stdout when it starts, in host
//! order (little-endian): 0 when it is ready, otherwise an errno. PMDK's
//! rpmemd writes the same form a second time, after the session, when it
//! fails mid-session (`main`'s error path), so a client may find one after
//! a response or instead of one.

use zerocopy::byteorder::little_endian::U32 as LeU32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{read_raw, write_bytes, Errno, Error, STATUS_WORD_LEN};

/// Wire layout of the status word.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RawStatusWord {
    value: LeU32,
}

const _: () = assert!(core::mem::size_of::<RawStatusWord>() == STATUS_WORD_LEN);

const NAME: &str = "start-up status";

/// A checked view of a status word.
#[derive(Clone, Copy, Debug)]
pub struct StatusWord<'a> {
    raw: &'a RawStatusWord,
}

impl<'a> StatusWord<'a> {
    /// Checks that `buf` holds the 4 bytes (it may hold more).
    pub fn new_checked(buf: &'a [u8]) -> Result<StatusWord<'a>, Error> {
        let (raw, _) = read_raw::<RawStatusWord>(buf, NAME)?;
        Ok(StatusWord { raw })
    }

    /// The value (decoded little-endian).
    pub fn value(&self) -> u32 {
        self.raw.value.get()
    }
}

/// A status word as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusWordRepr {
    /// 0 for "ready", otherwise rpmemd's errno.
    pub value: u32,
}

impl StatusWordRepr {
    /// The word rpmemd sends when it is ready for requests.
    pub const READY: StatusWordRepr = StatusWordRepr { value: 0 };

    /// Reads a word (every value is valid).
    pub fn parse(view: &StatusWord<'_>) -> StatusWordRepr {
        StatusWordRepr {
            value: view.value(),
        }
    }

    /// `Ok` when rpmemd is ready, its errno otherwise.
    pub fn result(&self) -> Result<(), Errno> {
        if self.value == 0 {
            Ok(())
        } else {
            Err(Errno(self.value))
        }
    }

    /// The 4 bytes of this word.
    pub fn to_bytes(&self) -> [u8; STATUS_WORD_LEN] {
        self.value.to_le_bytes()
    }

    /// Length of the emitted word.
    pub const fn buffer_len(&self) -> usize {
        STATUS_WORD_LEN
    }

    /// Writes the word to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        write_bytes(&self.to_bytes(), buf, NAME)
    }
}
