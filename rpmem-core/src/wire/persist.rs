//! `rpmem_msg_persist` and `rpmem_msg_persist_resp`: the in-band persist
//! request the target executes, and its answer. Every transport carries
//! them unchanged (an RDMA SEND / RECV, or the body of a TCP `SEND` /
//! `RECV` frame, see [`crate::wire::tcp`]).
//!
//! Layout (PMDK 1.12.1 `rpmem_proto.h`), all integers **little-endian**:
//!
//! ```text
//! rpmem_msg_persist                       rpmem_msg_persist_resp
//! offset size field                       offset size field
//!  0     4    flags                        0     4    flags
//!  4     4    lane                         4     4    lane
//!  8     8    addr (pool offset)
//! 16     8    size
//! 24     size data (PERSIST_SEND only)
//! ```
//!
//! Differences from PMDK, on purpose:
//!
//! * PMDK sends these structs in host byte order; we define them as
//!   little-endian, which is the same bytes on x86_64 and aarch64 (the only
//!   platforms rpmem runs on) and makes the format independent of the host.
//! * `addr` is the **pool offset** of the range, not `raddr + offset` as in
//!   PMDK: no virtual address of the target leaks to the initiator, and the
//!   field means the same on every transport (TCP has no remote address).
//! * A message is exactly as long as its content says: 24 bytes, or
//!   24 + `size` for `PERSIST_SEND`. PMDK's daemon trusts `size` for the
//!   inline copy even beyond the received bytes; we reject a mismatch.
//! * The response echoes the request's flags (PMDK leaves them unset).

use core::fmt;

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Field offsets of both messages.
pub mod field {
    use core::ops::Range;

    /// `rpmem_msg_persist.flags`: mode in bits 0-1, `COMPLETION` in bit 2.
    pub const FLAGS: Range<usize> = 0..4;
    /// `rpmem_msg_persist.lane`: the lane the request was sent on.
    pub const LANE: Range<usize> = 4..8;
    /// `rpmem_msg_persist.addr`: pool offset of the range.
    pub const ADDR: Range<usize> = 8..16;
    /// `rpmem_msg_persist.size`: length of the range in bytes.
    pub const SIZE: Range<usize> = 16..24;
    /// Start of the inline data of a `PERSIST_SEND` message.
    pub const DATA: usize = 24;

    /// `rpmem_msg_persist_resp.flags`: the request's flags, echoed.
    pub const RESP_FLAGS: Range<usize> = 0..4;
    /// `rpmem_msg_persist_resp.lane`: the request's lane, echoed.
    pub const RESP_LANE: Range<usize> = 4..8;
}

/// Length of the `rpmem_msg_persist` header (everything before `data`).
pub const HEADER_LEN: usize = field::DATA;
/// Length of `rpmem_msg_persist_resp`.
pub const RESP_LEN: usize = field::RESP_LANE.end;

/// Mode value: make a range written by RDMA WRITE durable (`RPMEM_FLUSH_WRITE`).
pub const FLUSH_WRITE: u32 = 0;
/// Mode value: deep persist of a range written by RDMA WRITE (`RPMEM_DEEP_PERSIST`).
pub const DEEP_PERSIST: u32 = 1;
/// Mode value: the data travels in the message (`RPMEM_PERSIST_SEND`).
pub const PERSIST_SEND: u32 = 2;
/// Flag bit PMDK's initiator may leave set in a message (`RPMEM_COMPLETION`,
/// its internal "signal this work request" bit). Accepted and ignored.
pub const COMPLETION: u32 = 4;
/// The two bits that hold the mode (`RPMEM_FLUSH_PERSIST_MASK`).
pub const MODE_MASK: u32 = 0x3;
/// Every flag bit with a meaning.
pub const KNOWN_FLAGS: u32 = MODE_MASK | COMPLETION;

/// What the target does with the range of a persist message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PersistMode {
    /// The bytes were placed by WRITE; make them durable (`RPMEM_FLUSH_WRITE`).
    FlushWrite = FLUSH_WRITE,
    /// The bytes were placed by WRITE; make them durable down to the lowest
    /// persistence domain software can reach (`RPMEM_DEEP_PERSIST`).
    DeepPersist = DEEP_PERSIST,
    /// The bytes follow the header; copy them with 8-byte stores, then make
    /// them durable (`RPMEM_PERSIST_SEND`).
    PersistSend = PERSIST_SEND,
}

impl PersistMode {
    /// The mode held in the low two bits of `flags`, if they name one.
    pub fn from_flags(flags: u32) -> Option<PersistMode> {
        match flags & MODE_MASK {
            FLUSH_WRITE => Some(PersistMode::FlushWrite),
            DEEP_PERSIST => Some(PersistMode::DeepPersist),
            PERSIST_SEND => Some(PersistMode::PersistSend),
            _ => None,
        }
    }

    /// PMDK's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            PersistMode::FlushWrite => "FLUSH_WRITE",
            PersistMode::DeepPersist => "DEEP_PERSIST",
            PersistMode::PersistSend => "PERSIST_SEND",
        }
    }
}

impl fmt::Display for PersistMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A malformed persist message or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the 24-byte header.
    #[error("persist message is {len} bytes long, shorter than its 24-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// A response that is not exactly 8 bytes.
    #[error("persist response is {len} bytes long; it must be exactly 8")]
    ResponseLength {
        /// Bytes received.
        len: usize,
    },
    /// Bits set in `flags` that have no meaning.
    #[error("flags field (bytes 0..4) is 0x{flags:x}: bits 0x{unknown:x} are not defined")]
    UnknownFlags {
        /// The whole flags field.
        flags: u32,
        /// The undefined bits.
        unknown: u32,
    },
    /// Mode bits equal to 3, which names no mode.
    #[error("flags field (bytes 0..4) is 0x{flags:x}: mode 3 in bits 0-1 is not defined")]
    BadMode {
        /// The whole flags field.
        flags: u32,
    },
    /// `PERSIST_SEND` whose data length differs from `size`.
    #[error("PERSIST_SEND message declares size {declared} (bytes 16..24) but carries {actual} data bytes")]
    InlineSizeMismatch {
        /// The `size` field.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
    /// Data after the header of a message whose mode carries none.
    #[error("{mode} message carries no data, but {len} bytes follow its 24-byte header")]
    UnexpectedData {
        /// Mode of the message.
        mode: PersistMode,
        /// Bytes after the header.
        len: usize,
    },
    /// `emit` was given a buffer that is too small.
    #[error("buffer of {len} bytes is too small: {need} bytes needed")]
    BufferTooSmall {
        /// Length of the buffer given.
        len: usize,
        /// Length required.
        need: usize,
    },
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    flags: U32,
    lane: U32,
    addr: U64,
    size: U64,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Resp {
    flags: U32,
    lane: U32,
}

const _: () = {
    assert!(core::mem::size_of::<Header>() == HEADER_LEN);
    assert!(core::mem::offset_of!(Header, flags) == field::FLAGS.start);
    assert!(core::mem::offset_of!(Header, lane) == field::LANE.start);
    assert!(core::mem::offset_of!(Header, addr) == field::ADDR.start);
    assert!(core::mem::offset_of!(Header, size) == field::SIZE.start);
    assert!(core::mem::size_of::<Resp>() == RESP_LEN);
    assert!(core::mem::offset_of!(Resp, flags) == field::RESP_FLAGS.start);
    assert!(core::mem::offset_of!(Resp, lane) == field::RESP_LANE.start);
};

/// Check the flag bits: only known bits, and a defined mode.
fn check_flags(flags: u32) -> Result<PersistMode, Error> {
    let unknown = flags & !KNOWN_FLAGS;
    if unknown != 0 {
        return Err(Error::UnknownFlags { flags, unknown });
    }
    PersistMode::from_flags(flags).ok_or(Error::BadMode { flags })
}

/// A received `rpmem_msg_persist`: a view over its bytes. Built by
/// [`PersistMsg::new_checked`], after which no accessor can fail.
#[derive(Clone, Copy)]
pub struct PersistMsg<'a> {
    header: &'a Header,
    data: &'a [u8],
}

impl fmt::Debug for PersistMsg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistMsg")
            .field("flags", &self.flags())
            .field("lane", &self.lane())
            .field("addr", &self.addr())
            .field("size", &self.size())
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl<'a> PersistMsg<'a> {
    /// View `buf` (one whole message) as a persist message. Fails only when
    /// it is shorter than the header; field values are checked by
    /// [`PersistMsgRepr::parse`].
    pub fn new_checked(buf: &'a [u8]) -> Result<PersistMsg<'a>, Error> {
        match Header::ref_from_prefix(buf) {
            Ok((header, data)) => Ok(PersistMsg { header, data }),
            Err(_) => Err(Error::Truncated { len: buf.len() }),
        }
    }

    /// The raw `flags` field.
    pub fn flags(&self) -> u32 {
        self.header.flags.get()
    }

    /// The `lane` field.
    pub fn lane(&self) -> u32 {
        self.header.lane.get()
    }

    /// The `addr` field (a pool offset in this protocol).
    pub fn addr(&self) -> u64 {
        self.header.addr.get()
    }

    /// The `size` field.
    pub fn size(&self) -> u64 {
        self.header.size.get()
    }

    /// Every byte after the header (the inline data of `PERSIST_SEND`).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// The header of a persist message as plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersistMsgRepr {
    /// What the target does with the range.
    pub mode: PersistMode,
    /// The `COMPLETION` bit (meaningless to the target; kept for round trips).
    pub completion: bool,
    /// Lane the request is sent on.
    pub lane: u32,
    /// Pool offset of the range (`addr` on the wire).
    pub offset: u64,
    /// Length of the range.
    pub size: u64,
}

impl PersistMsgRepr {
    /// Decode and check a message: flags known, mode defined, and the data
    /// length consistent with the mode (`size` bytes for `PERSIST_SEND`,
    /// none otherwise). Range checks against a pool belong to the target.
    pub fn parse(msg: &PersistMsg<'_>) -> Result<PersistMsgRepr, Error> {
        let flags = msg.flags();
        let mode = check_flags(flags)?;
        let size = msg.size();
        let data_len = msg.data().len();
        match mode {
            PersistMode::PersistSend => {
                if u64::try_from(data_len).ok() != Some(size) {
                    return Err(Error::InlineSizeMismatch {
                        declared: size,
                        actual: data_len,
                    });
                }
            }
            PersistMode::FlushWrite | PersistMode::DeepPersist => {
                if data_len != 0 {
                    return Err(Error::UnexpectedData {
                        mode,
                        len: data_len,
                    });
                }
            }
        }
        Ok(PersistMsgRepr {
            mode,
            completion: flags & COMPLETION != 0,
            lane: msg.lane(),
            offset: msg.addr(),
            size,
        })
    }

    /// The `flags` field this message carries.
    pub fn flags(&self) -> u32 {
        let c = if self.completion { COMPLETION } else { 0 };
        self.mode as u32 | c
    }

    /// Whole message length on the wire: the header, plus `size` data bytes
    /// for `PERSIST_SEND` (saturating; real sizes are bounded by the inline
    /// buffer).
    pub fn buffer_len(&self) -> u64 {
        match self.mode {
            PersistMode::PersistSend => (HEADER_LEN as u64).saturating_add(self.size),
            PersistMode::FlushWrite | PersistMode::DeepPersist => HEADER_LEN as u64,
        }
    }

    /// The 24 header bytes. The inline data (if any) follows them on the
    /// wire; the sender appends it from its own memory.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let h = Header {
            flags: U32::new(self.flags()),
            lane: U32::new(self.lane),
            addr: U64::new(self.offset),
            size: U64::new(self.size),
        };
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(h.as_bytes());
        out
    }

    /// Write the 24 header bytes to the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let bytes = self.to_bytes();
        match buf.get_mut(..HEADER_LEN) {
            Some(dst) => {
                dst.copy_from_slice(&bytes);
                Ok(())
            }
            None => Err(Error::BufferTooSmall {
                len: buf.len(),
                need: HEADER_LEN,
            }),
        }
    }
}

/// `rpmem_msg_persist_resp` as plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersistRespRepr {
    /// The flags of the request answered (echoed by the target).
    pub flags: u32,
    /// The lane of the request answered.
    pub lane: u32,
}

impl PersistRespRepr {
    /// The response to `msg`.
    pub fn answering(msg: &PersistMsgRepr) -> PersistRespRepr {
        PersistRespRepr {
            flags: msg.flags(),
            lane: msg.lane,
        }
    }

    /// Decode a response: exactly 8 bytes, only known flag bits, a defined
    /// mode.
    pub fn parse(buf: &[u8]) -> Result<PersistRespRepr, Error> {
        let resp = match Resp::ref_from_bytes(buf) {
            Ok(r) => r,
            Err(_) => return Err(Error::ResponseLength { len: buf.len() }),
        };
        let flags = resp.flags.get();
        check_flags(flags)?;
        Ok(PersistRespRepr {
            flags,
            lane: resp.lane.get(),
        })
    }

    /// Length on the wire (always 8).
    pub fn buffer_len(&self) -> usize {
        RESP_LEN
    }

    /// The 8 response bytes.
    pub fn to_bytes(&self) -> [u8; RESP_LEN] {
        let r = Resp {
            flags: U32::new(self.flags),
            lane: U32::new(self.lane),
        };
        let mut out = [0u8; RESP_LEN];
        out.copy_from_slice(r.as_bytes());
        out
    }

    /// Write the 8 response bytes to the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let bytes = self.to_bytes();
        match buf.get_mut(..RESP_LEN) {
            Some(dst) => {
                dst.copy_from_slice(&bytes);
                Ok(())
            }
            None => Err(Error::BufferTooSmall {
                len: buf.len(),
                need: RESP_LEN,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[test]
    fn layout_matches_pmdk_bytes() {
        let m = PersistMsgRepr {
            mode: PersistMode::PersistSend,
            completion: false,
            lane: 3,
            offset: 0x1122_3344_5566_7788,
            size: 2,
        };
        let b = m.to_bytes();
        assert_eq!(
            b,
            [
                2, 0, 0, 0, 3, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 2, 0, 0, 0,
                0, 0, 0, 0
            ]
        );
        let r = PersistRespRepr::answering(&m).to_bytes();
        assert_eq!(r, [2, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[rstest]
    #[case(0, Some(PersistMode::FlushWrite))]
    #[case(1, Some(PersistMode::DeepPersist))]
    #[case(2, Some(PersistMode::PersistSend))]
    #[case(3, None)]
    #[case(6, Some(PersistMode::PersistSend))]
    fn mode_from_flags(#[case] flags: u32, #[case] mode: Option<PersistMode>) {
        assert_eq!(PersistMode::from_flags(flags), mode);
    }

    #[rstest]
    #[case(&[0u8; 23][..], Error::Truncated { len: 23 })]
    #[case(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        Error::BadMode { flags: 3 })]
    #[case(&[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        Error::UnknownFlags { flags: 8, unknown: 8 })]
    #[case(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9][..],
        Error::InlineSizeMismatch { declared: 2, actual: 1 })]
    #[case(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9][..],
        Error::UnexpectedData { mode: PersistMode::DeepPersist, len: 1 })]
    fn bad_messages(#[case] bytes: &[u8], #[case] want: Error) {
        let got = PersistMsg::new_checked(bytes).and_then(|m| PersistMsgRepr::parse(&m));
        assert_eq!(got, Err(want));
    }

    #[rstest]
    #[case(&[0u8; 7][..], Error::ResponseLength { len: 7 })]
    #[case(&[0u8; 9][..], Error::ResponseLength { len: 9 })]
    #[case(&[3, 0, 0, 0, 0, 0, 0, 0][..], Error::BadMode { flags: 3 })]
    #[case(&[0, 1, 0, 0, 0, 0, 0, 0][..], Error::UnknownFlags { flags: 0x100, unknown: 0x100 })]
    fn bad_responses(#[case] bytes: &[u8], #[case] want: Error) {
        assert_eq!(PersistRespRepr::parse(bytes), Err(want));
    }

    #[test]
    fn emit_into_small_buffer_fails_without_panic() {
        let m = PersistMsgRepr {
            mode: PersistMode::FlushWrite,
            completion: true,
            lane: 0,
            offset: 0,
            size: 0,
        };
        let mut small = [0u8; 10];
        assert_eq!(
            m.emit(&mut small),
            Err(Error::BufferTooSmall { len: 10, need: 24 })
        );
        let r = PersistRespRepr::answering(&m);
        assert_eq!(
            r.emit(&mut small[..4]),
            Err(Error::BufferTooSmall { len: 4, need: 8 })
        );
        assert_eq!(r.emit(&mut small), Ok(()));
    }

    fn any_mode() -> impl Strategy<Value = PersistMode> {
        prop_oneof![
            Just(PersistMode::FlushWrite),
            Just(PersistMode::DeepPersist),
            Just(PersistMode::PersistSend),
        ]
    }

    proptest! {
        #[test]
        fn msg_round_trip(mode in any_mode(), completion: bool, lane: u32, offset: u64,
                          data in proptest::collection::vec(any::<u8>(), 0..64),
                          size: u64) {
            let size = if mode == PersistMode::PersistSend { data.len() as u64 } else { size };
            let repr = PersistMsgRepr { mode, completion, lane, offset, size };
            let mut buf = [0u8; HEADER_LEN + 64];
            repr.emit(&mut buf).unwrap();
            let total = if mode == PersistMode::PersistSend {
                buf[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(&data);
                HEADER_LEN + data.len()
            } else {
                HEADER_LEN
            };
            prop_assert_eq!(repr.buffer_len(), total as u64);
            let view = PersistMsg::new_checked(&buf[..total]).unwrap();
            prop_assert_eq!(PersistMsgRepr::parse(&view), Ok(repr));
            prop_assert_eq!(view.data().len(), total - HEADER_LEN);
        }

        #[test]
        fn resp_round_trip(mode in any_mode(), completion: bool, lane: u32) {
            let r = PersistRespRepr {
                flags: mode as u32 | if completion { COMPLETION } else { 0 },
                lane,
            };
            prop_assert_eq!(PersistRespRepr::parse(&r.to_bytes()), Ok(r));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(m) = PersistMsg::new_checked(&bytes) {
                let _ = PersistMsgRepr::parse(&m);
            }
            let _ = PersistRespRepr::parse(&bytes);
        }
    }
}
