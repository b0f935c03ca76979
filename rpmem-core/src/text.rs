//! One escaping scheme for text that a peer controls or that a terminal or a
//! log must not act on: pool set names (a client picks them), rpmemd's texts
//! that the `rpmem` tool prints, rpmemd's log lines.
//!
//! [`Escaped`] writes bytes as text in which nothing can break a line, move
//! the cursor, reorder or hide characters:
//!
//! * `\` as `\\`; tab, line feed and carriage return as `\t`, `\n`, `\r`;
//! * every other ASCII control character (C0 and DEL) as `\xHH`;
//! * bytes that are not UTF-8 as `\xHH`;
//! * the Unicode characters of [`is_hostile`] that are not ASCII (C1
//!   controls, line and paragraph separators, bidirectional controls,
//!   zero-width and invisible formatting characters, the byte order mark) as
//!   `\u{HHHH}`;
//! * everything else as it is.
//!
//! The scheme is reversible (`rpmem`'s list parser reads it back), and the
//! output holds no character of [`is_hostile`].

use core::fmt::{self, Write};

/// Whether `c` must not reach a terminal or a log line as it is: a control
/// character (C0, DEL, C1), or a character that breaks a line or reorders or
/// hides text (Arabic letter mark, Mongolian vowel separator, zero-width
/// characters and directional marks, line and paragraph separators,
/// bidirectional embeddings, overrides and isolates, invisible operators, the
/// byte order mark, interlinear annotation characters).
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x061c
                | 0x180e
                | 0x200b..=0x200f
                | 0x2028..=0x202e
                | 0x2060..=0x206f
                | 0xfeff
                | 0xfff9..=0xfffb
        )
}

/// Writes `c` escaped if it must be (see the module documentation), as it is
/// otherwise; `\` is written as `\\`.
pub fn write_char(out: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\\' => out.write_str("\\\\"),
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        c if c.is_ascii_control() => write!(out, "\\x{:02x}", u32::from(c)),
        c if is_hostile(c) => write!(out, "\\u{{{:04x}}}", u32::from(c)),
        c => out.write_char(c),
    }
}

/// Bytes shown escaped (see the module documentation): `format!("{}",
/// Escaped(name))`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write_char(f, c)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed buffer for `Display` output (the core has no allocator).
    struct Buf {
        bytes: [u8; 256],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    fn shown(bytes: &[u8]) -> Buf {
        let mut b = Buf {
            bytes: [0; 256],
            len: 0,
        };
        write!(b, "{}", Escaped(bytes)).unwrap();
        b
    }

    fn text(b: &Buf) -> &str {
        core::str::from_utf8(&b.bytes[..b.len]).unwrap()
    }

    #[test]
    fn escapes_what_a_terminal_or_a_log_would_act_on() {
        for (input, want) in [
            (&b"pools/db.set"[..], "pools/db.set"),
            ("café ü 日本".as_bytes(), "café ü 日本"),
            (b"a\tb\nc\rd\\e", "a\\tb\\nc\\rd\\\\e"),
            (b"\x1b[31mred\x7f\0", "\\x1b[31mred\\x7f\\x00"),
            (b"\xff\xfe", "\\xff\\xfe"),
            (
                "\u{202e}txt\u{85}\u{2028}\u{feff}".as_bytes(),
                "\\u{202e}txt\\u{0085}\\u{2028}\\u{feff}",
            ),
        ] {
            let b = shown(input);
            assert_eq!(text(&b), want);
            assert!(!text(&b).chars().any(is_hostile), "{want}");
        }
    }
}
