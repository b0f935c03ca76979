//! `struct rpmem_msg_pool_desc`: the pool descriptor (pool set name) that
//! ends CREATE and OPEN: a big-endian `u32 size` then `size` bytes, the last
//! of which is the terminating NUL.

use core::fmt;

use super::{Error, MAX_POOL_DESC};

/// A pool descriptor: 1 to `MAX_POOL_DESC - 1` bytes without NUL. On the
/// wire it is followed by a NUL and `pool_desc.size` counts that NUL.
///
/// The bytes are not required to be UTF-8 (PMDK treats them as a C
/// string); [`PoolDesc::to_str`] gives the text when it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolDesc<'a> {
    bytes: &'a [u8],
}

const NAME: &str = "pool descriptor";

impl<'a> PoolDesc<'a> {
    /// Checks that `bytes` can be sent as a descriptor: not empty, no NUL,
    /// and with its NUL at most [`MAX_POOL_DESC`] bytes.
    pub fn new(bytes: &'a [u8]) -> Result<PoolDesc<'a>, Error> {
        let size = bytes.len().saturating_add(1);
        if bytes.is_empty() {
            return Err(Error::TooSmall {
                msg: NAME,
                field: "pool_desc.size",
                offset: 0,
                value: 1,
                min: 2,
            });
        }
        if size > MAX_POOL_DESC {
            return Err(Error::TooLarge {
                msg: NAME,
                field: "pool_desc.size",
                offset: 0,
                value: super::len_u64(size),
                limit: super::len_u64(MAX_POOL_DESC),
            });
        }
        if let Some(pos) = bytes.iter().position(|&b| b == 0) {
            return Err(Error::EmbeddedNul {
                msg: NAME,
                offset: pos,
                end: bytes.len(),
            });
        }
        Ok(PoolDesc { bytes })
    }

    /// [`PoolDesc::new`] for text.
    pub fn from_text(text: &'a str) -> Result<PoolDesc<'a>, Error> {
        Self::new(text.as_bytes())
    }

    /// The descriptor without its NUL.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The descriptor as text, `None` when it is not UTF-8.
    pub fn to_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes).ok()
    }

    /// A descriptor already checked by the caller (the server keeps a copy
    /// of a validated one).
    pub(crate) fn from_validated(bytes: &'a [u8]) -> PoolDesc<'a> {
        PoolDesc { bytes }
    }

    /// `pool_desc.size` on the wire: the length plus the NUL.
    pub fn wire_size(&self) -> usize {
        self.bytes.len().saturating_add(1)
    }

    /// Validates the descriptor of a received CREATE or OPEN.
    ///
    /// `declared` is `pool_desc.size` (at `size_offset` in the message);
    /// `desc` is every byte the header says follows the fixed part (at
    /// `desc_offset`). Checks, in order: the declared size against
    /// [`MAX_POOL_DESC`], against the bytes actually there, against PMDK's
    /// minimum of 2, the terminating NUL and the absence of an earlier NUL
    /// (PMDK's `strlen(desc) + 1 == size`).
    pub(crate) fn check_wire(
        msg: &'static str,
        size_offset: usize,
        declared: u32,
        desc: &'a [u8],
        desc_offset: usize,
    ) -> Result<PoolDesc<'a>, Error> {
        let declared_u64 = u64::from(declared);
        if declared_u64 > super::len_u64(MAX_POOL_DESC) {
            return Err(Error::TooLarge {
                msg,
                field: "pool_desc.size",
                offset: size_offset,
                value: declared_u64,
                limit: super::len_u64(MAX_POOL_DESC),
            });
        }
        if declared_u64 != super::len_u64(desc.len()) {
            return Err(Error::Mismatch {
                msg,
                field: "pool_desc.size",
                offset: size_offset,
                value: declared_u64,
                expected: super::len_u64(desc.len()),
            });
        }
        if declared < 2 {
            return Err(Error::TooSmall {
                msg,
                field: "pool_desc.size",
                offset: size_offset,
                value: declared_u64,
                min: 2,
            });
        }
        let end = desc_offset.saturating_add(desc.len().saturating_sub(1));
        let (&last, body) = desc.split_last().ok_or(Error::TooSmall {
            msg,
            field: "pool_desc.size",
            offset: size_offset,
            value: declared_u64,
            min: 2,
        })?;
        if last != 0 {
            return Err(Error::NotTerminated {
                msg,
                offset: end,
                byte: last,
            });
        }
        if let Some(pos) = body.iter().position(|&b| b == 0) {
            return Err(Error::EmbeddedNul {
                msg,
                offset: desc_offset.saturating_add(pos),
                end,
            });
        }
        Ok(PoolDesc { bytes: body })
    }
}

impl fmt::Display for PoolDesc<'_> {
    /// The descriptor with bytes that are not UTF-8 written as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PoolDesc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolDesc(\"{self}\")")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn new_rejects_empty_nul_and_long() {
        assert!(matches!(
            PoolDesc::new(b""),
            Err(Error::TooSmall {
                value: 1,
                min: 2,
                ..
            })
        ));
        assert!(matches!(
            PoolDesc::new(b"a\0b"),
            Err(Error::EmbeddedNul { offset: 1, .. })
        ));
        let long = [b'a'; MAX_POOL_DESC];
        assert!(matches!(
            PoolDesc::new(&long),
            Err(Error::TooLarge {
                value: 4097,
                limit: 4096,
                ..
            })
        ));
        let ok = PoolDesc::new(&long[..MAX_POOL_DESC - 1]).expect("fits");
        assert_eq!(ok.wire_size(), MAX_POOL_DESC);
    }

    #[test]
    fn check_wire_order_and_offsets() {
        let e = PoolDesc::check_wire("CREATE", 144, 70000, b"x\0", 148).unwrap_err();
        assert_eq!(
            std::format!("{e}"),
            "CREATE: pool_desc.size 70000 at offset 144 exceeds the limit 4096"
        );
        let e = PoolDesc::check_wire("CREATE", 144, 3, b"x\0", 148).unwrap_err();
        assert!(matches!(
            e,
            Error::Mismatch {
                value: 3,
                expected: 2,
                ..
            }
        ));
        let e = PoolDesc::check_wire("OPEN", 40, 1, b"\0", 44).unwrap_err();
        assert!(matches!(e, Error::TooSmall { offset: 40, .. }));
        let e = PoolDesc::check_wire("OPEN", 40, 3, b"abc", 44).unwrap_err();
        assert!(matches!(
            e,
            Error::NotTerminated {
                offset: 46,
                byte: b'c',
                ..
            }
        ));
        let e = PoolDesc::check_wire("OPEN", 40, 4, b"a\0b\0", 44).unwrap_err();
        assert!(matches!(
            e,
            Error::EmbeddedNul {
                offset: 45,
                end: 47,
                ..
            }
        ));
        let d = PoolDesc::check_wire("OPEN", 40, 4, b"abc\0", 44).expect("valid");
        assert_eq!(d.as_bytes(), b"abc");
        assert_eq!(d.to_str(), Some("abc"));
    }

    #[test]
    fn display_escapes_non_utf8() {
        let d = PoolDesc::new(b"a\xffb").expect("valid");
        assert_eq!(std::format!("{d}"), "a\\xffb");
        assert_eq!(d.to_str(), None);
    }
}
