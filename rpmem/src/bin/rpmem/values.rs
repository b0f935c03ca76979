//! Parsing and printing of the values on the command line: sizes, numbers,
//! uuids, signatures, user flags.

use std::fmt::Write as _;

/// The page size every region size must be a multiple of.
pub const PAGE: u64 = 4096;

/// A size such as `4096`, `4K`, `4KiB`, `1M`, `10MB` (the pool set file's
/// size grammar, `docs/poolset.md`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    rpmem_core::poolset::parse_size(text).map_err(|e| {
        format!(
            "{text:?} is not a size ({e}): give bytes, optionally with a suffix such as K, M, G, KiB, MiB, kB or MB"
        )
    })
}

/// A non-negative 32-bit number, decimal or `0x` hexadecimal.
pub fn parse_u32(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    };
    parsed.ok_or_else(|| {
        format!("{text:?} is not a 32-bit number (decimal digits, or 0x and hexadecimal digits)")
    })
}

/// Decodes exactly `N` bytes from hexadecimal digits, ignoring `-`.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// A uuid: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (the 16 bytes in order,
/// as libuuid writes them) or 32 hexadecimal digits.
pub fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let dashes_ok = !text.contains('-')
        || (text.len() == 36
            && [8, 13, 18, 23]
                .iter()
                .all(|&i| text.as_bytes().get(i) == Some(&b'-'))
            && text.matches('-').count() == 4);
    match hex_bytes::<16>(text) {
        Some(bytes) if dashes_ok => Ok(bytes),
        _ => Err(format!(
            "{text:?} is not a uuid (write it as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits)"
        )),
    }
}

/// The text form of a uuid (bytes in order).
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A pool signature: at most 8 bytes of printable ASCII, padded with NUL
/// bytes.
pub fn parse_signature(text: &str) -> Result<[u8; 8], String> {
    if text.len() > 8 || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(format!(
            "{text:?} is not a pool signature (at most 8 printable ASCII characters)"
        ));
    }
    let mut sig = [0u8; 8];
    for (d, s) in sig.iter_mut().zip(text.bytes()) {
        *d = s;
    }
    Ok(sig)
}

/// A signature for display: the text up to the first NUL when it is
/// printable, otherwise the bytes in hexadecimal.
pub fn format_signature(sig: &[u8; 8]) -> String {
    let text: Vec<u8> = sig.iter().copied().take_while(|&b| b != 0).collect();
    let rest_zero = sig
        .get(text.len()..)
        .is_none_or(|r| r.iter().all(|&b| b == 0));
    if rest_zero && text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(&text).into_owned()
    } else {
        hex(sig)
    }
}

/// User flags: 32 hexadecimal digits (16 bytes).
pub fn parse_user_flags(text: &str) -> Result<[u8; 16], String> {
    hex_bytes::<16>(text)
        .filter(|_| !text.contains('-'))
        .ok_or_else(|| {
            format!("{text:?} is not 16 bytes of user flags (give 32 hexadecimal digits)")
        })
}

/// Bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A byte count for people: `512 B`, `4 KiB`, `1.5 MiB`, `700 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

/// Rounds up to whole pages.
pub fn round_up_page(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(PAGE)
}

/// Fresh random bytes from the kernel (for uuids).
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// A random (version 4) uuid.
pub fn random_uuid() -> std::io::Result<[u8; 16]> {
    let mut u = random_bytes::<16>()?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

/// Deterministic bytes for `pattern_at(seed, offset)`: the byte a
/// demonstration writes at pool offset `offset`.
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let mut x = offset
        .wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    (x >> 24) as u8
}

/// Fills `buf` with the pattern of `seed` for pool offsets starting at `offset`.
pub fn fill_pattern(buf: &mut [u8], seed: u64, offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, offset.wrapping_add(i as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_pool_set_grammar() {
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn numbers_are_decimal_or_hex() {
        assert_eq!(parse_u32("17"), Ok(17));
        assert_eq!(parse_u32("0x1f"), Ok(31));
        assert!(parse_u32("0x").is_err());
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("4294967296").is_err());
    }

    #[test]
    fn uuids_round_trip() {
        let text = "00112233-4455-6677-8899-aabbccddeeff";
        let u = parse_uuid(text).expect("valid");
        assert_eq!(u[0], 0x00);
        assert_eq!(u[15], 0xff);
        assert_eq!(format_uuid(&u), text);
        assert_eq!(parse_uuid("00112233445566778899aabbccddeeff"), Ok(u));
        assert!(parse_uuid("0011223-34455-6677-8899-aabbccddeeff").is_err());
        assert!(parse_uuid("xyz").is_err());
        let r = random_uuid().expect("urandom");
        assert_eq!(r[6] >> 4, 4);
    }

    #[test]
    fn signatures_pad_with_nul() {
        assert_eq!(parse_signature("PMEMOBJ"), Ok(*b"PMEMOBJ\0"));
        assert!(parse_signature("TOOLONGSIG").is_err());
        assert!(parse_signature("a\tb").is_err());
        assert_eq!(format_signature(b"PMEMOBJ\0"), "PMEMOBJ");
        assert_eq!(
            format_signature(&[1, 0, 0, 0, 0, 0, 0, 0]),
            "0100000000000000"
        );
    }

    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
    }
}
