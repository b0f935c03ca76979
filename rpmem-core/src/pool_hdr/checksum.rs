//! PMDK's Fletcher-64-like checksum (`util_checksum_compute` of
//! `src/common/util.c`).
//!
//! The data is read as little-endian 32-bit words. Two 32-bit sums run over
//! them: `lo` adds every word, `hi` adds `lo` after every word. The result is
//! `hi << 32 | lo`. All additions wrap.
//!
//! Two PMDK details matter for bit-exact results:
//!
//! * The checksum field itself and every word at or after `skip_off` count
//!   as zero, but they are **not** left out: the loop still steps over them,
//!   two words (8 bytes) at a time, adding `lo` to `hi` once per word. So a
//!   "2K checksum" is not the plain checksum of the first 2048 bytes: `hi`
//!   keeps growing over the zeroed upper half of the header.
//! * `skip_off == 0` means "skip nothing" (the skip point is the end).

/// Reads the little-endian 32-bit word at word index `word` of `bytes`,
/// padding with zeros where the slice ends.
fn word_at(bytes: &[u8], word: usize) -> u32 {
    let start = word.saturating_mul(4);
    let mut w = [0u8; 4];
    for (k, slot) in w.iter_mut().enumerate() {
        if let Some(b) = start.checked_add(k).and_then(|i| bytes.get(i)) {
            *slot = *b;
        }
    }
    u32::from_le_bytes(w)
}

/// The checksum core with an optional in-range checksum field.
///
/// `field_off` is the byte offset of the 8-byte checksum field when it lies
/// inside the summed range (PMDK's `csump`), `None` when it lies elsewhere.
fn compute(bytes: &[u8], end: usize, field_off: Option<usize>, skip_off: usize) -> u64 {
    // PMDK aborts when `len % 4 != 0`; here the last partial word is read
    // zero-padded, which is what the C loop would read if it did not abort.
    let words = end.div_ceil(4);
    let skip_word = if skip_off == 0 {
        words
    } else {
        // A skip point inside a word: C compares word pointers with `>=`,
        // so the word that contains `skip_off` is still summed unless the
        // offset is word-aligned. Rounding up reproduces that.
        skip_off.div_ceil(4)
    };
    // The checksum field only matches when it is word-aligned (C compares
    // `uint32_t *` pointers for equality).
    let field_word = field_off.and_then(|off| if off % 4 == 0 { Some(off / 4) } else { None });

    let mut lo: u32 = 0;
    let mut hi: u32 = 0;
    let mut i: usize = 0;
    // Words that hold data; past them everything reads as zero.
    let data_words = words.min(bytes.len().div_ceil(4));
    while i < data_words {
        if Some(i) == field_word || i >= skip_word {
            // Two words that count as zero: `lo` stays, `hi` grows twice.
            hi = hi.wrapping_add(lo);
            hi = hi.wrapping_add(lo);
            i = i.saturating_add(2);
        } else {
            lo = lo.wrapping_add(word_at(bytes, i));
            hi = hi.wrapping_add(lo);
            i = i.saturating_add(1);
        }
    }
    // The rest (if `end` reaches past the data) is zeros: `lo` no longer
    // changes and `hi` gains `lo` once per step of one word. Count those
    // steps instead of looping, so a huge `end` costs nothing.
    if i < words {
        let adds = zero_tail_adds(i, words, field_word, skip_word);
        // `hi` is mod 2^32, so only `adds` mod 2^32 matters.
        hi = hi.wrapping_add(lo.wrapping_mul(adds as u32));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// How many times the C loop adds `lo` to `hi` going from word `i` to the
/// end (`words`) over zero data: one per word, plus one when the last
/// two-word step runs one word past the end.
fn zero_tail_adds(i: usize, words: usize, field_word: Option<usize>, skip_word: usize) -> usize {
    // Phase A: single steps below the skip point, except a two-word step on
    // the checksum field.
    let limit = skip_word.min(words);
    let after_a = match field_word {
        Some(f) if i < limit && f >= i && f.saturating_add(1) == limit => limit.saturating_add(1),
        _ => limit.max(i),
    };
    let mut adds = after_a.saturating_sub(i);
    // Phase B: two-word steps from the skip point to the end.
    if after_a < words {
        adds = adds.saturating_add(words.saturating_sub(after_a).div_ceil(2).saturating_mul(2));
    }
    adds
}

/// PMDK's `util_checksum_compute(bytes, end, csump, skip_off)` for the case
/// where the checksum field lies at or after `skip_off` (true for the pool
/// header, whose checksum field at 4088 is never before the skip point).
///
/// * `end` — the length PMDK passes as `len` (4096 for a pool header);
/// * `skip_off` — the first byte that counts as zero
///   ([`crate::pool_hdr::POOL_HDR_CSUM_2K_END_OFF`] or
///   [`crate::pool_hdr::POOL_HDR_CSUM_4K_END_OFF`] for a pool header);
///   `0` means nothing is skipped.
///
/// Never panics: bytes past the end of `bytes` read as zero, and an `end`
/// that is not a multiple of 4 reads the last word zero-padded (PMDK aborts
/// in that case).
pub fn checksum(bytes: &[u8], end: usize, skip_off: usize) -> u64 {
    compute(bytes, end, None, skip_off)
}

/// PMDK's `util_checksum_compute` with the checksum field at byte offset
/// `field_off` inside the summed range (that field and the word after it
/// count as zero). Used for `struct shutdown_state`, whose checksum sits at
/// offset 56 of 64 and is computed with `skip_off == 0`.
pub fn checksum_with_field(bytes: &[u8], end: usize, field_off: usize, skip_off: usize) -> u64 {
    compute(bytes, end, Some(field_off), skip_off)
}
