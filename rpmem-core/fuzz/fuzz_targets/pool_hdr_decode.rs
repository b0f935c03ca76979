//! Arbitrary bytes -> pool header view -> parse. Nothing may panic, and a
//! header that parses must re-emit to exactly the input's first 4096 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::pool_hdr::{check_parts, to_attr, PoolHdr, PoolHdrRepr, POOL_HDR_SIZE};

fuzz_target!(|data: &[u8]| {
    let Ok(view) = PoolHdr::new_checked(data) else {
        assert!(data.len() < POOL_HDR_SIZE);
        return;
    };
    // Accessors never fail once the view is checked.
    let _ = (
        view.features(),
        view.arch_flags(),
        view.sds(),
        view.compute_checksum(),
    );
    let Ok(repr) = PoolHdrRepr::parse(&view) else {
        return;
    };
    let mut out = [0u8; POOL_HDR_SIZE];
    repr.emit(&mut out)
        .expect("4096-byte buffer is long enough");
    assert_eq!(
        &out[..],
        &data[..POOL_HDR_SIZE],
        "parse/emit is not byte-exact"
    );
    assert_eq!(PoolHdrRepr::parse_bytes(&out), Ok(repr));
    let _ = repr.check();
    let _ = check_parts(&[repr, repr]);
    let _ = to_attr(&repr);
});
