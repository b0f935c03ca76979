//! The pool header against a header written by PMDK 1.12.1's rpmemd.
//!
//! `rpmemd_created_hdr_after_set_attr.bin` is part 0 of a one-part pool
//! after `rpmem_set_attr` with these attributes: signature "RPMEMSET",
//! major 0x0a0b0c0d, compat 0x11, incompat 0x22 (so `CKSUM_2K` is set),
//! ro_compat 0x33, poolset_uuid 0x10..=0x1f, uuid 0x20..=0x2f,
//! next_uuid 0x30..=0x3f, prev_uuid 0x40..=0x4f, user_flags 0x50..=0x5f.

use rpmem_core::attr::PoolAttr;
use rpmem_core::pool_hdr::{
    check_parts, checksum, from_attr, to_attr, HdrError, PartLinks, PoolHdr, PoolHdrRepr,
    POOL_HDR_CSUM_2K_END_OFF, POOL_HDR_SIZE,
};
use std::path::PathBuf;

fn reference_bytes() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/pmdk-1.12.1/pool_hdr/rpmemd_created_hdr_after_set_attr.bin");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read reference header {}: {e}", path.display()));
    assert_eq!(bytes.len(), POOL_HDR_SIZE, "reference header size");
    bytes
}

fn seq(start: u8) -> [u8; 16] {
    core::array::from_fn(|i| start + i as u8)
}

fn expected_attr() -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMSET",
        major: 0x0a0b_0c0d,
        compat_features: 0x11,
        incompat_features: 0x22,
        ro_compat_features: 0x33,
        poolset_uuid: seq(0x10),
        uuid: seq(0x20),
        next_uuid: seq(0x30),
        prev_uuid: seq(0x40),
        user_flags: seq(0x50),
    }
}

#[test]
fn view_reads_every_field() {
    let bytes = reference_bytes();
    let hdr = PoolHdr::new_checked(&bytes[..]).expect("4096 bytes");
    assert_eq!(&hdr.signature(), b"RPMEMSET");
    assert_eq!(hdr.major(), 0x0a0b_0c0d);
    let f = hdr.features();
    assert_eq!((f.compat, f.incompat, f.ro_compat), (0x11, 0x22, 0x33));
    assert!(hdr.uses_cksum_2k());
    assert_eq!(hdr.checksum_end(), POOL_HDR_CSUM_2K_END_OFF);
    assert_eq!(hdr.poolset_uuid(), seq(0x10));
    assert_eq!(hdr.uuid(), seq(0x20));
    // One part: the ring of parts is the part itself.
    assert_eq!(hdr.prev_part_uuid(), seq(0x20));
    assert_eq!(hdr.next_part_uuid(), seq(0x20));
    assert_eq!(hdr.prev_repl_uuid(), seq(0x40));
    assert_eq!(hdr.next_repl_uuid(), seq(0x30));
    assert_eq!(hdr.arch_flags_bytes(), seq(0x50));
    assert_eq!(hdr.crtime(), 0x6b02_1905);
    assert_eq!(hdr.checksum(), 0x7b34_51a1_d045_527f);
    assert_eq!(hdr.compute_checksum(), hdr.checksum());
    assert!(hdr.unused().iter().all(|&b| b == 0));
    assert!(hdr.unused2().iter().all(|&b| b == 0));
    assert!(hdr.sds().to_bytes().iter().all(|&b| b == 0));
}

#[test]
fn checksum_function_matches_stored_value() {
    let bytes = reference_bytes();
    assert_eq!(
        checksum(&bytes, POOL_HDR_SIZE, POOL_HDR_CSUM_2K_END_OFF),
        0x7b34_51a1_d045_527f
    );
    // PMDK's 2K checksum is not the plain checksum of the first 2048 bytes:
    // the high half keeps accumulating over the skipped words.
    assert_ne!(
        checksum(&bytes, POOL_HDR_CSUM_2K_END_OFF, 0),
        0x7b34_51a1_d045_527f
    );
}

#[test]
fn parse_gives_back_the_attributes() {
    let bytes = reference_bytes();
    let repr = PoolHdrRepr::parse_bytes(&bytes).expect("reference header parses");
    assert_eq!(to_attr(&repr), expected_attr());
    assert_eq!(repr.to_attr(), expected_attr());
    repr.check().expect("reference header passes check");
    check_parts(&[repr]).expect("one-part pool is consistent");
}

#[test]
fn reemit_is_byte_identical() {
    let bytes = reference_bytes();
    let repr = PoolHdrRepr::parse_bytes(&bytes).expect("parses");
    assert_eq!(&repr.to_bytes()[..], &bytes[..]);
    let mut buf = vec![0xa5u8; POOL_HDR_SIZE + 10];
    repr.emit(&mut buf).expect("buffer is long enough");
    assert_eq!(&buf[..POOL_HDR_SIZE], &bytes[..]);
    assert!(
        buf[POOL_HDR_SIZE..].iter().all(|&b| b == 0xa5),
        "emit wrote past 4096"
    );
    assert_eq!(
        repr.emit(&mut buf[..4095]),
        Err(HdrError::TooShort { len: 4095 })
    );
}

#[test]
fn from_attr_rebuilds_the_reference_header() {
    let bytes = reference_bytes();
    let attr = expected_attr();
    let crtime = PoolHdr::new_checked(&bytes[..]).expect("len").crtime();
    let repr = from_attr(&attr, PartLinks::single(attr.uuid), crtime);
    assert_eq!(&repr.to_bytes()[..], &bytes[..]);
}

#[test]
fn any_flipped_byte_in_checksummed_range_is_a_checksum_error() {
    let bytes = reference_bytes();
    let stored = 0x7b34_51a1_d045_527f_u64;
    // 0..2048 is summed (CKSUM_2K); 4088..4096 is the checksum itself.
    let offsets = (0..POOL_HDR_CSUM_2K_END_OFF).chain(4088..POOL_HDR_SIZE);
    for off in offsets {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[off] ^= flip;
            match PoolHdrRepr::parse_bytes(&b) {
                Err(HdrError::BadChecksum {
                    stored: s,
                    computed,
                    ..
                }) => {
                    assert_ne!(s, computed, "offset {off}");
                    if off < 4088 {
                        assert_eq!(s, stored, "offset {off}: stored value misreported");
                    }
                }
                other => panic!("offset {off} flip {flip:#x}: expected BadChecksum, got {other:?}"),
            }
        }
    }
}

#[test]
fn unchecksummed_bytes_are_caught_or_kept() {
    let bytes = reference_bytes();
    // unused2 is outside the 2K checksum but must be zero.
    let mut b = bytes.clone();
    b[3000] = 7;
    assert_eq!(
        PoolHdrRepr::parse_bytes(&b),
        Err(HdrError::NonZeroReserved {
            field: "unused2",
            offset: 3000,
            value: 7
        })
    );
    // sds is outside the 2K checksum and kept as it is.
    let mut b = bytes.clone();
    b[4024 + 16] = 1;
    let repr = PoolHdrRepr::parse_bytes(&b).expect("sds change keeps a valid 2K checksum");
    assert_eq!(repr.sds.dirty, 1);
    assert_eq!(&repr.to_bytes()[..], &b[..]);
}

#[test]
fn error_messages_name_the_field() {
    let mut b = reference_bytes();
    b[8] ^= 1;
    let err = PoolHdrRepr::parse_bytes(&b).expect_err("corrupt");
    let msg = err.to_string();
    assert!(msg.contains("checksum"), "{msg}");
    assert!(msg.contains("0x7b3451a1d045527f"), "{msg}");
}
