//! The decode / encode error of every out-of-band wire format.

/// What was wrong with a message, naming the message, the field and the
/// byte offset of the field from the start of the message.
///
/// `msg` is the message name (`"CREATE"`, `"OPEN_RESP"`, `"request header"`,
/// `"start-up status"`), `field` the C field path (`"pool_desc.size"`,
/// `"ibc.nlanes"`, `"c.major"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends before the message does.
    #[error("{msg}: only {have} bytes available, the message needs {need}")]
    Truncated {
        /// Message name.
        msg: &'static str,
        /// Bytes the message needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The output buffer given to `emit` is too small.
    #[error("{msg}: output buffer of {have} bytes is too small, the message needs {need}")]
    BufferTooSmall {
        /// Message name.
        msg: &'static str,
        /// Bytes the message needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A field is above its limit.
    #[error("{msg}: {field} {value} at offset {offset} exceeds the limit {limit}")]
    TooLarge {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the field in the message.
        offset: usize,
        /// The value found.
        value: u64,
        /// The largest value allowed.
        limit: u64,
    },
    /// A field is below its minimum.
    #[error("{msg}: {field} {value} at offset {offset} is below the minimum {min}")]
    TooSmall {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the field in the message.
        offset: usize,
        /// The value found.
        value: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// A field must have one exact value and has another.
    #[error("{msg}: {field} {value} at offset {offset} should be {expected}")]
    Mismatch {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the field in the message.
        offset: usize,
        /// The value found.
        value: u64,
        /// The value required.
        expected: u64,
    },
    /// A CREATE / OPEN names [`Provider::TCP`](super::Provider::TCP) at
    /// the protocol minor version from before TCP lanes were sealed: the
    /// client cannot speak to this rpmemd's lanes.
    #[error(
        "{msg}: c.minor {minor} at offset {offset} with provider tcp: the client predates sealed TCP lanes (it speaks protocol 0.{minor}, this rpmemd needs 0.{needed} with tcp); upgrade the client"
    )]
    ClientPredatesSealing {
        /// Message name.
        msg: &'static str,
        /// Byte offset of `c.minor` in the message.
        offset: usize,
        /// The minor version the client sent.
        minor: u16,
        /// The minor version this rpmemd needs with the TCP provider.
        needed: u16,
    },
    /// A field holds a value outside its enumeration.
    #[error("{msg}: {field} {value} at offset {offset} is not a known value")]
    Unknown {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the field in the message.
        offset: usize,
        /// The value found.
        value: u64,
    },
    /// The message type is defined but not the one allowed here.
    #[error("{msg}: hdr.type {value} at offset {offset} is not {expected}")]
    UnexpectedType {
        /// Message name (or `"request header"`).
        msg: &'static str,
        /// Byte offset of the type field.
        offset: usize,
        /// The type found.
        value: u32,
        /// What was allowed, in words.
        expected: &'static str,
    },
    /// The pool descriptor's last byte is not NUL.
    #[error(
        "{msg}: pool_desc.desc is not NUL-terminated (byte at offset {offset} is {byte:#04x})"
    )]
    NotTerminated {
        /// Message name.
        msg: &'static str,
        /// Offset of the descriptor's last byte.
        offset: usize,
        /// The byte found there.
        byte: u8,
    },
    /// The pool descriptor has a NUL before its end, so its string length
    /// does not match `pool_desc.size`.
    #[error("{msg}: pool_desc.desc has a NUL at offset {offset}, before its end at offset {end}")]
    EmbeddedNul {
        /// Message name.
        msg: &'static str,
        /// Offset of the early NUL.
        offset: usize,
        /// Offset of the terminating NUL.
        end: usize,
    },
    /// The extension block does not start with `"RPX1"`.
    #[error(
        "{msg}: ext.magic {value:#010x} at offset {offset} should be {expected:#010x} (\"RPX1\")"
    )]
    BadMagic {
        /// Message name.
        msg: &'static str,
        /// Byte offset of the magic.
        offset: usize,
        /// The magic found.
        value: u32,
        /// The magic required.
        expected: u32,
    },
    /// Bytes that must be zero are not.
    #[error("{msg}: {field} at offset {offset} must be zero")]
    NonZero {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the first non-zero byte.
        offset: usize,
    },
    /// A field that must not be all zero is.
    #[error("{msg}: {field} at offset {offset} is all zero")]
    AllZero {
        /// Message name.
        msg: &'static str,
        /// Field path.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
    },
}

impl Error {
    /// The message name the error is about.
    pub fn msg(&self) -> &'static str {
        match *self {
            Error::Truncated { msg, .. }
            | Error::BufferTooSmall { msg, .. }
            | Error::TooLarge { msg, .. }
            | Error::TooSmall { msg, .. }
            | Error::Mismatch { msg, .. }
            | Error::Unknown { msg, .. }
            | Error::UnexpectedType { msg, .. }
            | Error::NotTerminated { msg, .. }
            | Error::EmbeddedNul { msg, .. }
            | Error::BadMagic { msg, .. }
            | Error::NonZero { msg, .. }
            | Error::AllZero { msg, .. }
            | Error::ClientPredatesSealing { msg, .. } => msg,
        }
    }

    /// The field the error is about, when it is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match *self {
            Error::TooLarge { field, .. }
            | Error::TooSmall { field, .. }
            | Error::Mismatch { field, .. }
            | Error::Unknown { field, .. }
            | Error::NonZero { field, .. }
            | Error::AllZero { field, .. } => Some(field),
            Error::UnexpectedType { .. } => Some("hdr.type"),
            Error::NotTerminated { .. } | Error::EmbeddedNul { .. } => Some("pool_desc.desc"),
            Error::BadMagic { .. } => Some("ext.magic"),
            Error::ClientPredatesSealing { .. } => Some("c.minor"),
            Error::Truncated { .. } | Error::BufferTooSmall { .. } => None,
        }
    }

    /// The byte offset the error is about, when there is one.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Error::TooLarge { offset, .. }
            | Error::TooSmall { offset, .. }
            | Error::Mismatch { offset, .. }
            | Error::Unknown { offset, .. }
            | Error::UnexpectedType { offset, .. }
            | Error::NotTerminated { offset, .. }
            | Error::EmbeddedNul { offset, .. }
            | Error::BadMagic { offset, .. }
            | Error::NonZero { offset, .. }
            | Error::AllZero { offset, .. }
            | Error::ClientPredatesSealing { offset, .. } => Some(offset),
            Error::Truncated { .. } | Error::BufferTooSmall { .. } => None,
        }
    }
}
