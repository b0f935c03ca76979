//! Sizes as PMDK 1.12.1's `util_parse_size` reads them, minus its silent
//! wrap-arounds.
//!
//! A size is a run of decimal digits, optionally preceded by `+`, optionally
//! followed by exactly one suffix from [`SUFFIXES`] (case matters: `kB` is
//! valid, `KB` and `kb` are not). PMDK reads the number with `sscanf("%zu")`,
//! so it also takes `-1G` (the negation wraps to a huge number that is then
//! multiplied) and numbers larger than 64 bits (clamped, then multiplied with
//! wrap-around). Here a minus sign and any value that does not fit in `u64`
//! are errors.

use core::fmt;

/// Every size suffix PMDK accepts and its multiplier, exactly as spelled in
/// `util_parse_size`'s table: JEDEC (binary, one letter), IEC (binary, `iB`)
/// and SI (decimal, `B` obligatory).
pub const SUFFIXES: [(&str, u64); 16] = [
    ("B", 1),
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
    ("P", 1 << 50),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
];

/// Why a size string was rejected by [`parse_size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SizeError {
    /// Not digits followed by nothing or by one suffix of [`SUFFIXES`].
    #[error("incorrect format of size")]
    Format,
    /// A well-formed size with a minus sign (PMDK wraps it to a huge value).
    #[error("negative sizes are not allowed")]
    Negative,
    /// The number, or the number times its suffix, exceeds `u64::MAX`.
    #[error("the size does not fit in 64 bits")]
    Overflow,
}

/// Parses a size such as `100G`, `1000000`, `4KiB` or `10GB` into bytes.
///
/// Zero is returned as `Ok(0)`; the pool set parser rejects it separately
/// (PMDK does too).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let bytes = s.as_bytes();
    let (negative, unsigned) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, bytes),
    };
    let ndigits = unsigned.iter().take_while(|b| b.is_ascii_digit()).count();
    if ndigits == 0 {
        return Err(SizeError::Format);
    }
    let (digits, unit) = unsigned
        .split_at_checked(ndigits)
        .ok_or(SizeError::Format)?;
    let multiplier = if unit.is_empty() {
        1
    } else {
        SUFFIXES
            .iter()
            .find(|(name, _)| name.as_bytes() == unit)
            .map(|&(_, mult)| mult)
            .ok_or(SizeError::Format)?
    };
    if negative {
        return Err(SizeError::Negative);
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d.wrapping_sub(b'0'))))
            .ok_or(SizeError::Overflow)?;
    }
    value.checked_mul(multiplier).ok_or(SizeError::Overflow)
}

/// A size written the canonical way: with the largest binary suffix
/// (`P`, `T`, `G`, `M`, `K`) that divides it exactly, else as plain bytes.
/// [`parse_size`] reads every output back to the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalSize(pub u64);

impl fmt::Display for CanonicalSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const BINARY: [(&str, u32); 5] = [("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)];
        let n = self.0;
        if n != 0 {
            for (suffix, shift) in BINARY {
                if n.trailing_zeros() >= shift {
                    return write!(f, "{}{}", n >> shift, suffix);
                }
            }
        }
        write!(f, "{n}")
    }
}
