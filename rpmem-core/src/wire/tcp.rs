//! Framing of the TCP data path (our transport; PMDK used libfabric).
//!
//! Each lane is one TCP connection. The client opens it with a 48-byte
//! [`HelloRepr`] carrying the lane number and the 32-byte session secret it
//! got over the authenticated out-of-band (ssh) channel; the server answers
//! with an 8-byte [`HelloAckRepr`] or closes. After that both sides exchange
//! frames: a fixed 32-byte header ([`FrameRepr`]) followed, for `WRITE`,
//! `SEND`, `READ_RESP` and `RECV`, by `len` bytes.
//!
//! All integers are little-endian.
//!
//! ```text
//! hello (client -> server, 48 bytes)      hello ack (server -> client, 8 bytes)
//!  0  4  magic "RPT1"                      0  4  magic "RPT1"
//!  4  2  version (1)                       4  4  status (0 ok, 1 bad version,
//!  6  2  reserved, 0                                 2 denied, 3 bad lane)
//!  8  4  lane
//! 12  4  reserved, 0
//! 16 32  secret
//!
//! frame header (32 bytes)
//!  0  1  kind: 1 WRITE, 2 READ_REQ, 3 SEND (client -> server),
//!              0x81 READ_RESP, 0x82 RECV (server -> client)
//!  1  1  flags, 0
//!  2  2  reserved, 0
//!  4  4  lane (must be the connection's lane)
//!  8  8  request id (client's counter; echoed in READ_RESP and RECV)
//! 16  8  offset: pool offset (WRITE, READ_REQ, READ_RESP), 0 otherwise
//! 24  8  len: bytes that follow (WRITE, SEND, READ_RESP, RECV) or bytes
//!        asked for (READ_REQ)
//! ```
//!
//! A `SEND` body is one encoded `rpmem_msg_persist` ([`crate::wire::persist`]),
//! 24 bytes plus at most the inline buffer size. A `RECV` body is one 8-byte
//! `rpmem_msg_persist_resp`. The machines that drive these frames are
//! [`StreamClient`] and [`StreamServer`].

pub use crate::persist::{StreamClient, StreamServer};

use core::fmt;

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::wire::persist::{HEADER_LEN as PERSIST_HEADER_LEN, RESP_LEN};

/// Magic of the hello and its answer.
pub const MAGIC: [u8; 4] = *b"RPT1";
/// Protocol version this code speaks.
pub const VERSION: u16 = 1;
/// Length of the session secret.
pub const SECRET_LEN: usize = 32;
/// Length of the hello.
pub const HELLO_LEN: usize = 48;
/// Length of the hello answer.
pub const HELLO_ACK_LEN: usize = 8;
/// Length of every frame header.
pub const FRAME_HEADER_LEN: usize = 32;

/// Field offsets of the three formats.
pub mod field {
    /// The hello.
    pub mod hello {
        use core::ops::Range;
        /// `"RPT1"`.
        pub const MAGIC: Range<usize> = 0..4;
        /// Protocol version.
        pub const VERSION: Range<usize> = 4..6;
        /// Must be zero.
        pub const RESERVED: Range<usize> = 6..8;
        /// Lane this connection carries.
        pub const LANE: Range<usize> = 8..12;
        /// Must be zero.
        pub const RESERVED2: Range<usize> = 12..16;
        /// Session secret.
        pub const SECRET: Range<usize> = 16..48;
    }
    /// The hello answer.
    pub mod ack {
        use core::ops::Range;
        /// `"RPT1"`.
        pub const MAGIC: Range<usize> = 0..4;
        /// [`super::super::HelloStatus`].
        pub const STATUS: Range<usize> = 4..8;
    }
    /// The frame header.
    pub mod frame {
        use core::ops::Range;
        /// [`super::super::FrameKind`].
        pub const KIND: usize = 0;
        /// Must be zero.
        pub const FLAGS: usize = 1;
        /// Must be zero.
        pub const RESERVED: Range<usize> = 2..4;
        /// Lane of the connection.
        pub const LANE: Range<usize> = 4..8;
        /// Request id.
        pub const REQ_ID: Range<usize> = 8..16;
        /// Pool offset.
        pub const OFFSET: Range<usize> = 16..24;
        /// Length.
        pub const LEN: Range<usize> = 24..32;
    }
}

/// A malformed hello, hello answer or frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Wrong number of bytes.
    #[error("{what} is {len} bytes long; it must be exactly {need}")]
    Length {
        /// Which format.
        what: &'static str,
        /// Bytes given.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// Magic is not `"RPT1"`.
    #[error("{what} magic (bytes 0..4) is {got:02x?}, not \"RPT1\"")]
    BadMagic {
        /// Which format.
        what: &'static str,
        /// The bytes found.
        got: [u8; 4],
    },
    /// A field that must be zero is not.
    #[error("{field} is 0x{value:x}; it must be 0")]
    NotZero {
        /// Name and bytes of the field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Unknown frame kind.
    #[error("frame kind (byte 0) is 0x{kind:02x}, which names no frame")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// Unknown hello status.
    #[error("hello answer status (bytes 4..8) is {status}, which names no status")]
    UnknownStatus {
        /// The status.
        status: u32,
    },
    /// A length that the frame kind does not allow.
    #[error("{kind} frame len (bytes 24..32) is {len}; {rule}")]
    BadLen {
        /// Frame kind.
        kind: FrameKind,
        /// The len field.
        len: u64,
        /// What it must be.
        rule: &'static str,
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
struct HelloBytes {
    magic: [u8; 4],
    version: U16,
    reserved: U16,
    lane: U32,
    reserved2: U32,
    secret: [u8; SECRET_LEN],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct AckBytes {
    magic: [u8; 4],
    status: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FrameBytes {
    kind: u8,
    flags: u8,
    reserved: U16,
    lane: U32,
    req_id: U64,
    offset: U64,
    len: U64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<HelloBytes>() == HELLO_LEN);
    assert!(offset_of!(HelloBytes, version) == field::hello::VERSION.start);
    assert!(offset_of!(HelloBytes, reserved) == field::hello::RESERVED.start);
    assert!(offset_of!(HelloBytes, lane) == field::hello::LANE.start);
    assert!(offset_of!(HelloBytes, reserved2) == field::hello::RESERVED2.start);
    assert!(offset_of!(HelloBytes, secret) == field::hello::SECRET.start);
    assert!(size_of::<AckBytes>() == HELLO_ACK_LEN);
    assert!(offset_of!(AckBytes, status) == field::ack::STATUS.start);
    assert!(size_of::<FrameBytes>() == FRAME_HEADER_LEN);
    assert!(offset_of!(FrameBytes, kind) == field::frame::KIND);
    assert!(offset_of!(FrameBytes, flags) == field::frame::FLAGS);
    assert!(offset_of!(FrameBytes, reserved) == field::frame::RESERVED.start);
    assert!(offset_of!(FrameBytes, lane) == field::frame::LANE.start);
    assert!(offset_of!(FrameBytes, req_id) == field::frame::REQ_ID.start);
    assert!(offset_of!(FrameBytes, offset) == field::frame::OFFSET.start);
    assert!(offset_of!(FrameBytes, len) == field::frame::LEN.start);
};

fn emit_into(src: &[u8], buf: &mut [u8]) -> Result<(), Error> {
    match buf.get_mut(..src.len()) {
        Some(dst) => {
            dst.copy_from_slice(src);
            Ok(())
        }
        None => Err(Error::BufferTooSmall {
            len: buf.len(),
            need: src.len(),
        }),
    }
}

/// A received hello: a view over its 48 bytes.
#[derive(Clone, Copy)]
pub struct Hello<'a> {
    b: &'a HelloBytes,
}

impl fmt::Debug for Hello<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Hello")
            .field("magic", &self.b.magic)
            .field("version", &self.version())
            .field("lane", &self.lane())
            .finish_non_exhaustive()
    }
}

impl<'a> Hello<'a> {
    /// View exactly 48 bytes as a hello.
    pub fn new_checked(buf: &'a [u8]) -> Result<Hello<'a>, Error> {
        match HelloBytes::ref_from_bytes(buf) {
            Ok(b) => Ok(Hello { b }),
            Err(_) => Err(Error::Length {
                what: "hello",
                len: buf.len(),
                need: HELLO_LEN,
            }),
        }
    }

    /// The magic bytes.
    pub fn magic(&self) -> [u8; 4] {
        self.b.magic
    }

    /// The version field.
    pub fn version(&self) -> u16 {
        self.b.version.get()
    }

    /// The lane field.
    pub fn lane(&self) -> u32 {
        self.b.lane.get()
    }

    /// The secret.
    pub fn secret(&self) -> &'a [u8; SECRET_LEN] {
        &self.b.secret
    }
}

/// The hello as plain values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HelloRepr {
    /// Protocol version of the client.
    pub version: u16,
    /// Lane the connection carries.
    pub lane: u32,
    /// Session secret.
    pub secret: [u8; SECRET_LEN],
}

impl fmt::Debug for HelloRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloRepr")
            .field("version", &self.version)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

impl HelloRepr {
    /// Check magic and reserved fields. The version is returned as sent:
    /// the server decides what it accepts.
    pub fn parse(h: &Hello<'_>) -> Result<HelloRepr, Error> {
        if h.b.magic != MAGIC {
            return Err(Error::BadMagic {
                what: "hello",
                got: h.b.magic,
            });
        }
        let r = h.b.reserved.get();
        if r != 0 {
            return Err(Error::NotZero {
                field: "hello reserved field (bytes 6..8)",
                value: u64::from(r),
            });
        }
        let r2 = h.b.reserved2.get();
        if r2 != 0 {
            return Err(Error::NotZero {
                field: "hello reserved field (bytes 12..16)",
                value: u64::from(r2),
            });
        }
        Ok(HelloRepr {
            version: h.version(),
            lane: h.lane(),
            secret: *h.secret(),
        })
    }

    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        HELLO_LEN
    }

    /// The 48 bytes.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let b = HelloBytes {
            magic: MAGIC,
            version: U16::new(self.version),
            reserved: U16::new(0),
            lane: U32::new(self.lane),
            reserved2: U32::new(0),
            secret: self.secret,
        };
        let mut out = [0u8; HELLO_LEN];
        out.copy_from_slice(b.as_bytes());
        out
    }

    /// Write the 48 bytes to the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        emit_into(&self.to_bytes(), buf)
    }
}

/// The server's answer to a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HelloStatus {
    /// Accepted: frames may follow.
    Ok = 0,
    /// The server does not speak the client's version.
    BadVersion = 1,
    /// Wrong secret.
    Denied = 2,
    /// The lane does not exist.
    BadLane = 3,
}

impl HelloStatus {
    /// Decode a status value.
    pub fn from_u32(v: u32) -> Option<HelloStatus> {
        match v {
            0 => Some(HelloStatus::Ok),
            1 => Some(HelloStatus::BadVersion),
            2 => Some(HelloStatus::Denied),
            3 => Some(HelloStatus::BadLane),
            _ => None,
        }
    }
}

/// A received hello answer: a view over its 8 bytes.
#[derive(Clone, Copy)]
pub struct HelloAck<'a> {
    b: &'a AckBytes,
}

impl fmt::Debug for HelloAck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloAck")
            .field("magic", &self.b.magic)
            .field("status", &self.status())
            .finish()
    }
}

impl<'a> HelloAck<'a> {
    /// View exactly 8 bytes as a hello answer.
    pub fn new_checked(buf: &'a [u8]) -> Result<HelloAck<'a>, Error> {
        match AckBytes::ref_from_bytes(buf) {
            Ok(b) => Ok(HelloAck { b }),
            Err(_) => Err(Error::Length {
                what: "hello answer",
                len: buf.len(),
                need: HELLO_ACK_LEN,
            }),
        }
    }

    /// The magic bytes.
    pub fn magic(&self) -> [u8; 4] {
        self.b.magic
    }

    /// The raw status field.
    pub fn status(&self) -> u32 {
        self.b.status.get()
    }
}

/// The hello answer as plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelloAckRepr {
    /// The verdict.
    pub status: HelloStatus,
}

impl HelloAckRepr {
    /// Check magic and status.
    pub fn parse(a: &HelloAck<'_>) -> Result<HelloAckRepr, Error> {
        if a.magic() != MAGIC {
            return Err(Error::BadMagic {
                what: "hello answer",
                got: a.magic(),
            });
        }
        let status = a.status();
        match HelloStatus::from_u32(status) {
            Some(status) => Ok(HelloAckRepr { status }),
            None => Err(Error::UnknownStatus { status }),
        }
    }

    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        HELLO_ACK_LEN
    }

    /// The 8 bytes.
    pub fn to_bytes(&self) -> [u8; HELLO_ACK_LEN] {
        let b = AckBytes {
            magic: MAGIC,
            status: U32::new(self.status as u32),
        };
        let mut out = [0u8; HELLO_ACK_LEN];
        out.copy_from_slice(b.as_bytes());
        out
    }

    /// Write the 8 bytes to the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        emit_into(&self.to_bytes(), buf)
    }
}

/// Kind of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// Client: `len` bytes follow, for pool `[offset, offset + len)`.
    Write = 0x01,
    /// Client: send pool `[offset, offset + len)` back.
    ReadReq = 0x02,
    /// Client: a persist message of `len` bytes follows.
    Send = 0x03,
    /// Server: the `len` bytes of pool `[offset, ...)` asked for follow.
    ReadResp = 0x81,
    /// Server: an 8-byte persist response follows.
    Recv = 0x82,
}

impl FrameKind {
    /// Decode a kind byte.
    pub fn from_u8(v: u8) -> Option<FrameKind> {
        match v {
            0x01 => Some(FrameKind::Write),
            0x02 => Some(FrameKind::ReadReq),
            0x03 => Some(FrameKind::Send),
            0x81 => Some(FrameKind::ReadResp),
            0x82 => Some(FrameKind::Recv),
            _ => None,
        }
    }

    /// Sent by the client (as opposed to the server).
    pub fn from_client(self) -> bool {
        matches!(
            self,
            FrameKind::Write | FrameKind::ReadReq | FrameKind::Send
        )
    }

    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Write => "WRITE",
            FrameKind::ReadReq => "READ_REQ",
            FrameKind::Send => "SEND",
            FrameKind::ReadResp => "READ_RESP",
            FrameKind::Recv => "RECV",
        }
    }

    /// Bytes of body that follow a header with this kind and `len`.
    pub fn body_len(self, len: u64) -> u64 {
        match self {
            FrameKind::ReadReq => 0,
            FrameKind::Write | FrameKind::Send | FrameKind::ReadResp | FrameKind::Recv => len,
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A received frame header: a view over its 32 bytes.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    b: &'a FrameBytes,
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &self.kind())
            .field("lane", &self.lane())
            .field("req_id", &self.req_id())
            .field("offset", &self.offset())
            .field("len", &self.len())
            .finish()
    }
}

impl<'a> Frame<'a> {
    /// View exactly 32 bytes as a frame header.
    pub fn new_checked(buf: &'a [u8]) -> Result<Frame<'a>, Error> {
        match FrameBytes::ref_from_bytes(buf) {
            Ok(b) => Ok(Frame { b }),
            Err(_) => Err(Error::Length {
                what: "frame header",
                len: buf.len(),
                need: FRAME_HEADER_LEN,
            }),
        }
    }

    /// The raw kind byte.
    pub fn kind(&self) -> u8 {
        self.b.kind
    }

    /// The lane field.
    pub fn lane(&self) -> u32 {
        self.b.lane.get()
    }

    /// The request id field.
    pub fn req_id(&self) -> u64 {
        self.b.req_id.get()
    }

    /// The offset field.
    pub fn offset(&self) -> u64 {
        self.b.offset.get()
    }

    /// The len field.
    pub fn len(&self) -> u64 {
        self.b.len.get()
    }

    /// True when the len field is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frame header as plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRepr {
    /// Kind.
    pub kind: FrameKind,
    /// Lane of the connection.
    pub lane: u32,
    /// Request id.
    pub req_id: u64,
    /// Pool offset (0 for `SEND` and `RECV`).
    pub offset: u64,
    /// Length (see the module documentation).
    pub len: u64,
}

impl FrameRepr {
    /// Check kind, zero fields and the per-kind rules: `RECV` is exactly 8
    /// bytes, `SEND` at least a 24-byte persist header, both at offset 0.
    /// Range checks against a pool belong to the target.
    pub fn parse(f: &Frame<'_>) -> Result<FrameRepr, Error> {
        let kind = FrameKind::from_u8(f.b.kind).ok_or(Error::UnknownKind { kind: f.b.kind })?;
        if f.b.flags != 0 {
            return Err(Error::NotZero {
                field: "frame flags (byte 1)",
                value: u64::from(f.b.flags),
            });
        }
        let r = f.b.reserved.get();
        if r != 0 {
            return Err(Error::NotZero {
                field: "frame reserved field (bytes 2..4)",
                value: u64::from(r),
            });
        }
        let repr = FrameRepr {
            kind,
            lane: f.lane(),
            req_id: f.req_id(),
            offset: f.offset(),
            len: f.len(),
        };
        match kind {
            FrameKind::Send | FrameKind::Recv if repr.offset != 0 => Err(Error::NotZero {
                field: "offset of a SEND or RECV frame (bytes 16..24)",
                value: repr.offset,
            }),
            FrameKind::Send if repr.len < PERSIST_HEADER_LEN as u64 => Err(Error::BadLen {
                kind,
                len: repr.len,
                rule: "a persist message is at least 24 bytes",
            }),
            FrameKind::Recv if repr.len != RESP_LEN as u64 => Err(Error::BadLen {
                kind,
                len: repr.len,
                rule: "a persist response is exactly 8 bytes",
            }),
            _ => Ok(repr),
        }
    }

    /// Length on the wire of the header.
    pub fn buffer_len(&self) -> usize {
        FRAME_HEADER_LEN
    }

    /// The 32 header bytes.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let b = FrameBytes {
            kind: self.kind as u8,
            flags: 0,
            reserved: U16::new(0),
            lane: U32::new(self.lane),
            req_id: U64::new(self.req_id),
            offset: U64::new(self.offset),
            len: U64::new(self.len),
        };
        let mut out = [0u8; FRAME_HEADER_LEN];
        out.copy_from_slice(b.as_bytes());
        out
    }

    /// Write the 32 header bytes to the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        emit_into(&self.to_bytes(), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[test]
    fn frame_bytes_are_little_endian_at_documented_offsets() {
        let f = FrameRepr {
            kind: FrameKind::Write,
            lane: 0x0102_0304,
            req_id: 5,
            offset: 0x1000,
            len: 0x20,
        };
        let b = f.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(&b[8..16], &5u64.to_le_bytes());
        assert_eq!(&b[16..24], &0x1000u64.to_le_bytes());
        assert_eq!(&b[24..32], &0x20u64.to_le_bytes());
    }

    #[test]
    fn hello_bytes() {
        let h = HelloRepr {
            version: 1,
            lane: 7,
            secret: [0xab; 32],
        };
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"RPT1");
        assert_eq!(&b[4..6], &[1, 0]);
        assert_eq!(&b[8..12], &[7, 0, 0, 0]);
        assert_eq!(&b[16..48], &[0xab; 32]);
        // The secret never shows in debug output.
        let mut dbg: heapless::String<256> = heapless::String::new();
        core::fmt::Write::write_fmt(&mut dbg, format_args!("{h:?}")).unwrap();
        assert!(!dbg.contains("171"), "{dbg}");
    }

    fn frame_bytes(kind: u8, flags: u8, offset: u64, len: u64) -> [u8; 32] {
        let mut b = FrameRepr {
            kind: FrameKind::Write,
            lane: 0,
            req_id: 0,
            offset,
            len,
        }
        .to_bytes();
        b[0] = kind;
        b[1] = flags;
        b
    }

    #[rstest]
    #[case(frame_bytes(0x04, 0, 0, 0), Error::UnknownKind { kind: 4 })]
    #[case(frame_bytes(0x01, 1, 0, 0), Error::NotZero { field: "frame flags (byte 1)", value: 1 })]
    #[case(frame_bytes(0x03, 0, 0, 23), Error::BadLen { kind: FrameKind::Send, len: 23,
        rule: "a persist message is at least 24 bytes" })]
    #[case(frame_bytes(0x82, 0, 0, 9), Error::BadLen { kind: FrameKind::Recv, len: 9,
        rule: "a persist response is exactly 8 bytes" })]
    #[case(frame_bytes(0x03, 0, 8, 24), Error::NotZero {
        field: "offset of a SEND or RECV frame (bytes 16..24)", value: 8 })]
    fn bad_frames(#[case] bytes: [u8; 32], #[case] want: Error) {
        let f = Frame::new_checked(&bytes).unwrap();
        assert_eq!(FrameRepr::parse(&f), Err(want));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert_eq!(
            Frame::new_checked(&[0; 31]).unwrap_err(),
            Error::Length {
                what: "frame header",
                len: 31,
                need: 32
            }
        );
        assert!(Hello::new_checked(&[0; 49]).is_err());
        assert!(HelloAck::new_checked(&[0; 7]).is_err());
        let mut small = [0u8; 4];
        assert_eq!(
            HelloAckRepr {
                status: HelloStatus::Ok
            }
            .emit(&mut small),
            Err(Error::BufferTooSmall { len: 4, need: 8 })
        );
    }

    #[rstest]
    #[case(*b"RPT0", 0, Error::BadMagic { what: "hello answer", got: *b"RPT0" })]
    #[case(*b"RPT1", 9, Error::UnknownStatus { status: 9 })]
    fn bad_acks(#[case] magic: [u8; 4], #[case] status: u32, #[case] want: Error) {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&magic);
        b[4..].copy_from_slice(&status.to_le_bytes());
        let a = HelloAck::new_checked(&b).unwrap();
        assert_eq!(a.status(), status);
        assert_eq!(HelloAckRepr::parse(&a), Err(want));
    }

    fn any_kind() -> impl Strategy<Value = FrameKind> {
        prop_oneof![
            Just(FrameKind::Write),
            Just(FrameKind::ReadReq),
            Just(FrameKind::Send),
            Just(FrameKind::ReadResp),
            Just(FrameKind::Recv),
        ]
    }

    fn any_status() -> impl Strategy<Value = HelloStatus> {
        prop_oneof![
            Just(HelloStatus::Ok),
            Just(HelloStatus::BadVersion),
            Just(HelloStatus::Denied),
            Just(HelloStatus::BadLane),
        ]
    }

    proptest! {
        #[test]
        fn frame_round_trip(kind in any_kind(), lane: u32, req_id: u64, offset: u64, len: u64) {
            let (offset, len) = match kind {
                FrameKind::Send => (0, len.max(24)),
                FrameKind::Recv => (0, 8),
                _ => (offset, len),
            };
            let f = FrameRepr { kind, lane, req_id, offset, len };
            let mut buf = [0u8; 40];
            f.emit(&mut buf).unwrap();
            let view = Frame::new_checked(&buf[..32]).unwrap();
            prop_assert_eq!(FrameRepr::parse(&view), Ok(f));
        }

        #[test]
        fn hello_round_trip(version: u16, lane: u32, secret: [u8; 32]) {
            let h = HelloRepr { version, lane, secret };
            let b = h.to_bytes();
            prop_assert_eq!(HelloRepr::parse(&Hello::new_checked(&b).unwrap()), Ok(h));
        }

        #[test]
        fn ack_round_trip(status in any_status()) {
            let a = HelloAckRepr { status };
            let b = a.to_bytes();
            prop_assert_eq!(HelloAckRepr::parse(&HelloAck::new_checked(&b).unwrap()), Ok(a));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(f) = Frame::new_checked(&bytes) { let _ = FrameRepr::parse(&f); }
            if let Ok(h) = Hello::new_checked(&bytes) { let _ = HelloRepr::parse(&h); }
            if let Ok(a) = HelloAck::new_checked(&bytes) { let _ = HelloAckRepr::parse(&a); }
        }
    }
}
