//! Fuzz target: parse arbitrary bytes as a pool set file. Parsing must not
//! panic; an error must name a line of the input (or the one after the
//! last); an accepted set must emit a canonical file that parses back to an
//! equal set and emits the same text again.
//!
//! Each input is tried twice: as it is, and after a `PMEMPOOLSET` line.
//! Without a sanitizer runtime (`-s none`) libFuzzer cannot see the memcmp
//! against the 12-byte signature, so the second form is what lets it reach
//! the grammar. Seeding it with PMDK's pool set files helps too:
//! `cargo fuzz run poolset_parse corpus/poolset_parse \
//!   ../../tests/vectors/pmdk-1.12.1/tests/util_poolset_parse -s none`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::poolset::{emit, PoolSet, MAX_PARTS, SIGNATURE};

fn check(data: &[u8]) {
    let set = match PoolSet::parse(data) {
        Ok(set) => set,
        Err(e) => {
            let nlines = data.split(|&b| b == b'\n').count();
            assert!(e.line >= 1 && e.line as usize <= nlines + 1, "{e}");
            return;
        }
    };

    // Every accessor answers without panicking and agrees with the others.
    assert!(set.replica(0).is_some_and(|r| !r.is_remote()));
    assert!(!(set.options().single_hdr && set.options().no_hdrs));
    for r in set.replicas() {
        assert!((1..=MAX_PARTS).contains(&r.nparts()));
        let nparts = if r.is_remote() {
            0
        } else {
            r.nparts() as usize
        };
        assert_eq!(r.parts().count(), nparts);
        assert_eq!(r.parts().len(), nparts);
        assert!(r.nhdrs() <= r.nparts());
        for p in r.parts() {
            assert!(p.path().starts_with('/'));
            assert!(p.size().bytes().is_none_or(|n| n >= 4096));
        }
        let _ = (r.size(), r.size_with(|_| Some(1 << 30)), r.line());
    }
    let _ = (set.pool_size(), set.pool_size_with(|_| Some(1 << 30)));

    let mut text = String::new();
    emit(&set, &mut text).expect("writing to a String");
    let again = PoolSet::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("emitted text does not parse: {e}\n{text}"));
    assert_eq!(again, set, "round trip of\n{text}");
    let mut text2 = String::new();
    emit(&again, &mut text2).expect("writing to a String");
    assert_eq!(text, text2, "emit is not canonical");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut signed = Vec::with_capacity(data.len() + SIGNATURE.len() + 1);
    signed.extend_from_slice(SIGNATURE.as_bytes());
    signed.push(b'\n');
    signed.extend_from_slice(data);
    check(&signed);
});
