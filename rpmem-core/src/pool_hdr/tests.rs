//! Unit tests of the pool header module.

use super::*;
use crate::attr::PoolAttr;
use proptest::prelude::*;
use rstest::rstest;
use std::format;
use std::string::ToString;
use std::vec::Vec;

fn seq(start: u8) -> Uuid {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn sample_attr() -> PoolAttr {
    PoolAttr {
        signature: *b"PMEMOBJ\0",
        major: 6,
        compat_features: POOL_FEAT_CHECK_BAD_BLOCKS,
        incompat_features: POOL_FEAT_CKSUM_2K,
        ro_compat_features: 0,
        poolset_uuid: seq(0x10),
        uuid: seq(0x20),
        next_uuid: seq(0x30),
        prev_uuid: seq(0x40),
        user_flags: seq(0x50),
    }
}

/// Headers of a pool of `n` parts, linked in a ring, part 0's uuid = attr.uuid.
fn pool_of(n: usize, attr: &PoolAttr) -> Vec<PoolHdrRepr> {
    let uuids: Vec<Uuid> = (0..n)
        .map(|i| {
            if i == 0 {
                attr.uuid
            } else {
                seq(0x80 + 16 * i as u8)
            }
        })
        .collect();
    (0..n)
        .map(|i| {
            from_attr(
                attr,
                PartLinks::ring(&uuids, i).expect("in range"),
                1_700_000_000,
            )
        })
        .collect()
}

// ---------------------------------------------------------------- checksum

/// A straightforward second implementation of PMDK's loop, on words.
fn model_checksum(words: &[u32], field_word: Option<usize>, skip_word: usize) -> u64 {
    let (mut lo, mut hi) = (0u32, 0u32);
    let mut i = 0;
    while i < words.len() {
        if Some(i) == field_word || i >= skip_word {
            hi = hi.wrapping_add(lo).wrapping_add(lo);
            i += 2;
        } else {
            lo = lo.wrapping_add(words[i]);
            hi = hi.wrapping_add(lo);
            i += 1;
        }
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[rstest]
#[case::empty(&[], 0, 0, 0)]
#[case::one_word(&[1, 0, 0, 0], 4, 0, 0x0000_0001_0000_0001)]
#[case::two_words(&[1, 0, 0, 0, 2, 0, 0, 0], 8, 0, 0x0000_0004_0000_0003)]
// Words at/after skip_off count as zero but still feed `hi`, two at a time.
#[case::skip_second_pair(&[1, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0], 16, 8, 0x0000_000a_0000_0003)]
// An odd skip word: the loop steps 2 words past the end, adding `lo` twice.
#[case::skip_odd_word(&[1, 0, 0, 0, 9, 0, 0, 0], 8, 4, 0x0000_0003_0000_0001)]
// Little-endian words.
#[case::le_word(&[0x78, 0x56, 0x34, 0x12], 4, 0, 0x1234_5678_1234_5678)]
fn checksum_small_cases(
    #[case] bytes: &[u8],
    #[case] end: usize,
    #[case] skip: usize,
    #[case] want: u64,
) {
    assert_eq!(checksum(bytes, end, skip), want);
}

#[test]
fn checksum_never_panics_on_short_or_odd_input() {
    // end past the data: missing bytes read as zero.
    assert_eq!(
        checksum(&[1, 0, 0, 0], 8, 0),
        checksum(&[1, 0, 0, 0, 0, 0, 0, 0], 8, 0)
    );
    // end not a multiple of 4: last word zero-padded.
    assert_eq!(
        checksum(&[1, 2, 3, 4, 5], 5, 0),
        checksum(&[1, 2, 3, 4, 5, 0, 0, 0], 8, 0)
    );
    // huge values.
    let _ = checksum(&[0xff; 16], usize::MAX / 8, usize::MAX);
    let _ = checksum_with_field(&[0xff; 16], 16, usize::MAX, 3);
}

#[test]
fn sds_checksum_uses_the_field_rule() {
    let mut sds = ShutdownState {
        usc: 5,
        uuid: 0xdead_beef,
        dirty: 1,
        reserved: [0; 39],
        checksum: 0,
    };
    sds.checksum = sds.compute_checksum();
    assert!(sds.checksum_ok());
    let bytes = sds.to_bytes();
    let words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(sds.checksum, model_checksum(&words, Some(14), 16));
    sds.dirty = 0;
    assert!(!sds.checksum_ok());
    // An all-zero state has checksum zero.
    assert_eq!(ShutdownState::ZERO.compute_checksum(), 0);
}

proptest! {
    #[test]
    fn checksum_matches_model(
        words in proptest::collection::vec(any::<u32>(), 0..64),
        skip in 0usize..80,
        field in proptest::option::of(0usize..64),
    ) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let end = bytes.len();
        let skip_off = skip * 4;
        let skip_word = if skip_off == 0 { words.len() } else { skip };
        let got = match field {
            Some(f) => checksum_with_field(&bytes, end, f * 4, skip_off),
            None => checksum(&bytes, end, skip_off),
        };
        prop_assert_eq!(got, model_checksum(&words, field, skip_word));
    }
}

proptest! {
    /// `end` past the data reads zeros, computed without looping over them:
    /// same result as really appending the zeros.
    #[test]
    fn zero_tail_matches_padding(
        data in proptest::collection::vec(any::<u8>(), 0..40),
        extra in 0usize..48,
        skip in 0usize..120,
        field in proptest::option::of(0usize..120),
    ) {
        let end = data.len() + extra;
        let mut padded = data.clone();
        padded.resize(end.div_ceil(4) * 4, 0);
        let (a, b) = match field {
            Some(f) => (
                checksum_with_field(&data, end, f, skip),
                checksum_with_field(&padded, end, f, skip),
            ),
            None => (checksum(&data, end, skip), checksum(&padded, end, skip)),
        };
        prop_assert_eq!(a, b);
    }
}

#[test]
fn huge_end_is_cheap() {
    // 2^59 words of zero tail: must not loop over them.
    let a = checksum(&[1, 0, 0, 0], usize::MAX / 8, 0);
    let words = (usize::MAX / 8).div_ceil(4) as u64;
    assert_eq!(a, ((words & 0xffff_ffff) << 32) | 1);
}

// ------------------------------------------------------------ 2K vs 4K range

#[rstest]
#[case::no_features(0, POOL_HDR_CSUM_4K_END_OFF, false)]
#[case::cksum_2k(POOL_FEAT_CKSUM_2K, POOL_HDR_CSUM_2K_END_OFF, true)]
#[case::singlehdr_only(POOL_FEAT_SINGLEHDR, POOL_HDR_CSUM_4K_END_OFF, false)]
#[case::sds_only(POOL_FEAT_SDS, POOL_HDR_CSUM_4K_END_OFF, false)]
#[case::all(POOL_FEAT_INCOMPAT_ALL, POOL_HDR_CSUM_2K_END_OFF, true)]
#[case::unknown_bits(0xffff_fff0, POOL_HDR_CSUM_4K_END_OFF, false)]
fn checksum_range_follows_incompat(#[case] incompat: u32, #[case] end: usize, #[case] is_2k: bool) {
    assert_eq!(checksum_end(incompat), end);
    assert_eq!(uses_cksum_2k(incompat), is_2k);
    let f = Features {
        compat: 0,
        incompat,
        ro_compat: 0,
    };
    assert_eq!(f.checksum_end(), end);

    // A byte in unused2-free territory past 2048 (the sds area) is covered
    // only by the 4K checksum.
    let mut attr = sample_attr();
    attr.incompat_features = incompat;
    let mut repr = from_attr(&attr, PartLinks::single(attr.uuid), 1);
    let before = repr.to_bytes();
    repr.sds.usc = 0x1234;
    let mut tampered = repr.to_bytes();
    // Put the old checksum back: only valid if sds is outside the range.
    tampered[field::CHECKSUM].copy_from_slice(&before[field::CHECKSUM]);
    let parsed = PoolHdrRepr::parse_bytes(&tampered);
    if is_2k {
        assert_eq!(parsed.map(|r| r.sds.usc), Ok(0x1234));
    } else {
        assert!(
            matches!(parsed, Err(HdrError::BadChecksum { end: 4088, .. })),
            "{parsed:?}"
        );
    }
}

#[test]
fn view_checksum_matches_model() {
    let repr = from_attr(&sample_attr(), PartLinks::single(seq(0x20)), 99);
    let bytes = repr.to_bytes();
    let words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let hdr = PoolHdr::new_checked(&bytes[..]).expect("len");
    assert_eq!(hdr.checksum(), model_checksum(&words, Some(1022), 512));
    hdr.verify_checksum()
        .expect("emit inserts a valid checksum");
}

// ------------------------------------------------------------- feature flags

#[rstest]
#[case::none(Features::ZERO, Ok(FeatureAccess::ReadWrite))]
#[case::known(Features { compat: 1, incompat: POOL_FEAT_INCOMPAT_ALL, ro_compat: 0 }, Ok(FeatureAccess::ReadWrite))]
#[case::unknown_compat_ignored(Features { compat: 0x8000, incompat: 0, ro_compat: 0 }, Ok(FeatureAccess::ReadWrite))]
#[case::unknown_ro_compat(Features { compat: 0, incompat: 0, ro_compat: 0x10 }, Ok(FeatureAccess::ReadOnly))]
#[case::unknown_incompat(Features { compat: 0, incompat: 0x10 | POOL_FEAT_CKSUM_2K, ro_compat: 0x10 }, Err(HdrError::UnknownIncompat { bits: 0x10 }))]
fn feature_check_like_pmdk(#[case] f: Features, #[case] want: Result<FeatureAccess, HdrError>) {
    assert_eq!(f.check_known(Features::VALID), want);
}

#[rstest]
#[case::singlehdr(POOL_FEAT_SINGLEHDR, 0x1)]
#[case::cksum_2k(POOL_FEAT_CKSUM_2K, 0x2)]
#[case::sds(POOL_FEAT_SDS, 0x4)]
#[case::incompat_all(POOL_FEAT_INCOMPAT_ALL, 0x7)]
#[case::incompat_default(POOL_FEAT_INCOMPAT_DEFAULT, 0x2)]
#[case::bad_blocks(POOL_FEAT_CHECK_BAD_BLOCKS, 0x1)]
#[case::compat_all(POOL_FEAT_COMPAT_ALL, 0x1)]
#[case::ro_compat_all(POOL_FEAT_RO_COMPAT_ALL, 0x0)]
fn feature_values_match_pmdk(#[case] got: u32, #[case] want: u32) {
    assert_eq!(got, want);
}

#[test]
fn feature_helpers() {
    let f = Features {
        compat: 0x3,
        incompat: 0x6,
        ro_compat: 0x8,
    };
    assert!(!f.is_zero());
    assert!(Features::ZERO.is_zero());
    assert!(f.is_set(Features {
        compat: 0,
        incompat: POOL_FEAT_SDS,
        ro_compat: 0
    }));
    assert!(!f.is_set(Features {
        compat: 0,
        incompat: POOL_FEAT_SINGLEHDR,
        ro_compat: 0
    }));
    assert_eq!(
        f.unknown(Features::VALID),
        Features {
            compat: 0x2,
            incompat: 0,
            ro_compat: 0x8
        }
    );
}

// ---------------------------------------------------------------- arch flags

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn alignment_desc_is_pmdks_x86_64_value() {
    assert_eq!(alignment_desc(), 0x0000_07f7_3777_7310);
    let cur = ArchFlags::current();
    assert_eq!(cur.alignment_desc, 0x0000_07f7_3777_7310);
    assert_eq!(cur.machine, 62);
    assert_eq!(cur.machine_class, 2);
    assert_eq!(cur.data, 1);
    assert_eq!(cur.reserved, [0; 4]);
    assert_eq!(
        cur.to_bytes(),
        [0x10, 0x73, 0x77, 0x37, 0xf7, 0x07, 0, 0, 2, 1, 0, 0, 0, 0, 62, 0]
    );
}

#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_machine() {
    assert_eq!(ArchFlags::current().machine, 183);
}

#[test]
fn arch_flags_bytes_round_trip() {
    let b = seq(0x50);
    let a = ArchFlags::from_bytes(b);
    assert_eq!(a.alignment_desc, 0x5756_5554_5352_5150);
    assert_eq!(a.machine_class, 0x58);
    assert_eq!(a.data, 0x59);
    assert_eq!(a.reserved, [0x5a, 0x5b, 0x5c, 0x5d]);
    assert_eq!(a.machine, 0x5f5e);
    assert_eq!(a.to_bytes(), b);
}

#[rstest]
#[case::same(|_a: &mut ArchFlags| {}, None)]
#[case::reserved(|a: &mut ArchFlags| a.reserved[2] = 1, Some("arch_flags.reserved"))]
#[case::machine(|a: &mut ArchFlags| a.machine = 3, Some("arch_flags.machine"))]
#[case::data(|a: &mut ArchFlags| a.data = DATA_BE, Some("arch_flags.data"))]
#[case::class(|a: &mut ArchFlags| a.machine_class = 1, Some("arch_flags.machine_class"))]
#[case::align(|a: &mut ArchFlags| a.alignment_desc ^= 0xf00, Some("arch_flags.alignment_desc"))]
// PMDK checks the reserved bytes before machine.
#[case::reserved_first(|a: &mut ArchFlags| { a.reserved[0] = 1; a.machine = 9 }, Some("arch_flags.reserved"))]
fn arch_compatibility(#[case] change: fn(&mut ArchFlags), #[case] bad_field: Option<&str>) {
    let cur = ArchFlags::current();
    let mut stored = cur;
    change(&mut stored);
    match (stored.compatible(&cur), bad_field) {
        (Ok(()), None) => {}
        (Err(HdrError::ArchMismatch { field, .. }), Some(want)) => assert_eq!(field, want),
        (got, want) => panic!("got {got:?}, want failure in {want:?}"),
    }
}

#[test]
fn expected_reserved_is_ignored() {
    let cur = ArchFlags::current();
    let mut expected = cur;
    expected.reserved = [1, 2, 3, 4];
    assert_eq!(cur.compatible(&expected), Ok(()));
}

// ------------------------------------------------------------ view and repr

#[test]
fn view_rejects_short_buffers_and_never_panics() {
    let short = [0u8; 100];
    assert_eq!(
        PoolHdr::new_checked(&short[..]).map(|_| ()),
        Err(HdrError::TooShort { len: 100 })
    );
    let mut v = PoolHdr::new_unchecked([0xffu8; 10]);
    assert_eq!(v.major(), 0);
    assert_eq!(v.signature(), [0; 8]);
    assert!(v.as_bytes().is_empty());
    v.set_major(7);
    v.fill_checksum();
    assert_eq!(v.into_inner(), [0xff; 10]);
    assert_eq!(
        PoolHdrRepr::parse(&PoolHdr::new_unchecked(&short[..])),
        Err(HdrError::TooShort { len: 100 })
    );
}

#[test]
fn setters_write_little_endian_at_the_documented_offsets() {
    let mut buf = [0u8; POOL_HDR_SIZE];
    let mut v = PoolHdr::new_checked(&mut buf[..]).expect("len");
    v.set_major(0x0102_0304);
    v.set_features(Features {
        compat: 0x11,
        incompat: 0x22,
        ro_compat: 0x33,
    });
    v.set_crtime(0x0807_0605_0403_0201);
    v.set_arch_flags(ArchFlags {
        machine: 0xabcd,
        ..ArchFlags::ZERO
    });
    v.set_sds(ShutdownState {
        dirty: 9,
        checksum: 0x55,
        ..ShutdownState::ZERO
    });
    v.set_checksum(0xaa);
    assert_eq!(buf[field::MAJOR], [4, 3, 2, 1]);
    assert_eq!(buf[field::COMPAT], [0x11, 0, 0, 0]);
    assert_eq!(buf[field::INCOMPAT], [0x22, 0, 0, 0]);
    assert_eq!(buf[field::RO_COMPAT], [0x33, 0, 0, 0]);
    assert_eq!(buf[field::CRTIME], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        buf[field::ARCH_FLAGS.start + 14..field::ARCH_FLAGS.end],
        [0xcd, 0xab]
    );
    assert_eq!(buf[field::SDS.start + field::sds::DIRTY], 9);
    assert_eq!(buf[field::SDS.start + 56], 0x55);
    assert_eq!(buf[field::CHECKSUM], [0xaa, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn zeroed_header_parses_but_fails_check() {
    let zero = [0u8; POOL_HDR_SIZE];
    let v = PoolHdr::new_checked(&zero[..]).expect("len");
    assert!(v.is_zeroed());
    let repr = PoolHdrRepr::parse(&v).expect("zero checksum of zero data");
    assert!(repr.is_zeroed());
    assert_eq!(repr.check(), Err(HdrError::Zeroed { part: 0 }));
    assert_eq!(check_parts(&[repr]), Err(HdrError::Zeroed { part: 0 }));
}

#[test]
fn nonzero_unused_is_rejected_with_its_offset() {
    let mut attr = sample_attr();
    attr.incompat_features = 0; // 4K checksum: fix it up after the change
    let mut bytes = from_attr(&attr, PartLinks::single(attr.uuid), 5).to_bytes();
    bytes[500] = 0x42;
    let mut v = PoolHdr::new_checked(&mut bytes[..]).expect("len");
    v.fill_checksum();
    assert_eq!(
        PoolHdrRepr::parse_bytes(&bytes),
        Err(HdrError::NonZeroReserved {
            field: "unused",
            offset: 500,
            value: 0x42
        })
    );
}

#[test]
fn error_messages_are_readable() {
    let e = HdrError::BadChecksum {
        stored: 1,
        computed: 2,
        end: 2048,
    };
    let m = e.to_string();
    assert!(
        m.contains("stored 0x0000000000000001") && m.contains("computed 0x0000000000000002"),
        "{m}"
    );
    assert!(m.contains("0..2048"), "{m}");
    let e = HdrError::PartLink {
        part: 2,
        field: "next_part_uuid",
        neighbour: 0,
        found: HexUuid(seq(0)),
        expected: HexUuid(seq(0x10)),
    };
    assert_eq!(
        e.to_string(),
        "part 2: pool header field `next_part_uuid` is 00010203-0405-0607-0809-0a0b0c0d0e0f, \
         but the uuid of part 0 is 10111213-1415-1617-1819-1a1b1c1d1e1f"
    );
    let e = HdrError::SignatureMismatch {
        part: 1,
        found: Sig(*b"PMEM\0\x01ab"),
        expected: Sig(*b"PMEMOBJ\0"),
    };
    assert_eq!(
        e.to_string(),
        "part 1: pool header field `signature` is \"PMEM\\x00\\x01ab\", part 0 has \"PMEMOBJ\\x00\""
    );
    let e = HdrError::ArchFlagsMismatch {
        part: 1,
        found: Hex16(seq(0)),
        expected: Hex16([0; 16]),
    };
    assert!(e.to_string().contains("000102030405060708090a0b0c0d0e0f"));
}

// ------------------------------------------------------------- attr mapping

#[test]
fn to_attr_from_attr_round_trip() {
    let attr = sample_attr();
    let repr = from_attr(&attr, PartLinks::single(attr.uuid), 42);
    assert_eq!(to_attr(&repr), attr);
    assert_eq!(repr.prev_repl_uuid, attr.prev_uuid);
    assert_eq!(repr.next_repl_uuid, attr.next_uuid);
    assert_eq!(repr.arch_flags_bytes(), attr.user_flags);
    assert_eq!(repr.crtime, 42);
    assert_eq!(repr.sds, ShutdownState::ZERO);
}

#[rstest]
#[case::one(1)]
#[case::two(2)]
#[case::three(3)]
#[case::five(5)]
fn ring_links(#[case] n: usize) {
    let uuids: Vec<Uuid> = (0..n).map(|i| seq(16 * i as u8)).collect();
    for i in 0..n {
        let l = PartLinks::ring(&uuids, i).expect("in range");
        assert_eq!(l.uuid, uuids[i]);
        assert_eq!(l.prev_part, uuids[(i + n - 1) % n]);
        assert_eq!(l.next_part, uuids[(i + 1) % n]);
    }
    assert_eq!(PartLinks::ring(&uuids, n), None);
    assert_eq!(PartLinks::ring(&[], 0), None);
    assert_eq!(
        PartLinks::ring(&uuids[..1], 0),
        Some(PartLinks::single(uuids[0]))
    );
}

#[test]
fn attr_for_create_fills_pmdk_defaults() {
    let fresh_set = seq(0xa0);
    let fresh_part = seq(0xb0);
    let zero = PoolAttr {
        signature: *b"SIG\0\0\0\0\0",
        major: 1,
        ..PoolAttr::ZERO
    };
    let eff = attr_for_create(&zero, fresh_set, fresh_part);
    assert_eq!(eff.poolset_uuid, fresh_set);
    assert_eq!(eff.uuid, fresh_part);
    assert_eq!(eff.prev_uuid, fresh_part);
    assert_eq!(eff.next_uuid, fresh_part);
    assert_eq!(eff.user_flags, ArchFlags::current().to_bytes());
    assert_eq!((eff.signature, eff.major), (zero.signature, 1));
    // Given values are kept.
    let attr = sample_attr();
    assert_eq!(attr_for_create(&attr, fresh_set, fresh_part), attr);
    // Only the zero ones are replaced.
    let partial = PoolAttr {
        next_uuid: [0; 16],
        ..attr
    };
    assert_eq!(
        attr_for_create(&partial, fresh_set, fresh_part).next_uuid,
        attr.uuid
    );
}

#[rstest]
#[case::one_part(1)]
#[case::two_parts(2)]
#[case::three_parts(3)]
fn apply_set_attr_keeps_the_ring_closed(#[case] n: usize) {
    let old = sample_attr();
    let mut hdrs = pool_of(n, &old);
    check_parts(&hdrs).expect("fresh pool is consistent");
    let new = PoolAttr {
        signature: *b"RPMEMSET",
        major: 0x0a0b_0c0d,
        compat_features: 0x11,
        incompat_features: 0x22,
        ro_compat_features: 0x33,
        poolset_uuid: seq(0x10),
        uuid: seq(0xe0),
        next_uuid: seq(0x30),
        prev_uuid: seq(0x40),
        user_flags: seq(0x50),
    };
    for (i, h) in hdrs.iter_mut().enumerate() {
        h.apply_set_attr(&new, i, n);
        assert_eq!(h.crtime, 1_700_000_000, "crtime kept");
    }
    check_parts(&hdrs).expect("ring still closed after set_attr");
    assert_eq!(to_attr(&hdrs[0]), new);
    // Out-of-range index: nothing changes.
    let before = hdrs[0];
    hdrs[0].apply_set_attr(&old, n, n);
    assert_eq!(hdrs[0], before);
}

// -------------------------------------------------------------- link checks

fn corrupt_part(p: usize, change: fn(&mut PoolHdrRepr)) -> Result<(), HdrError> {
    let mut hdrs = pool_of(3, &sample_attr());
    change(&mut hdrs[p]);
    check_parts(&hdrs)
}

#[rstest]
#[case::ok(1, |_h: &mut PoolHdrRepr| {}, None)]
#[case::zeroed(2, |h: &mut PoolHdrRepr| *h = PoolHdrRepr::parse_bytes(&[0; 4096]).expect("zero"), Some("zeroed"))]
#[case::signature(1, |h: &mut PoolHdrRepr| h.signature[0] ^= 1, Some("signature"))]
#[case::major(2, |h: &mut PoolHdrRepr| h.major += 1, Some("major"))]
#[case::compat(1, |h: &mut PoolHdrRepr| h.features.compat ^= 8, Some("features.compat"))]
#[case::incompat(1, |h: &mut PoolHdrRepr| h.features.incompat ^= 8, Some("features.incompat"))]
#[case::ro_compat(1, |h: &mut PoolHdrRepr| h.features.ro_compat ^= 8, Some("features.ro_compat"))]
#[case::poolset(2, |h: &mut PoolHdrRepr| h.poolset_uuid[3] ^= 1, Some("poolset_uuid"))]
#[case::prev_repl(1, |h: &mut PoolHdrRepr| h.prev_repl_uuid[3] ^= 1, Some("prev_repl_uuid"))]
#[case::next_repl(1, |h: &mut PoolHdrRepr| h.next_repl_uuid[3] ^= 1, Some("next_repl_uuid"))]
#[case::arch(2, |h: &mut PoolHdrRepr| h.arch_flags.machine ^= 1, Some("arch_flags"))]
#[case::prev_part(1, |h: &mut PoolHdrRepr| h.prev_part_uuid[0] ^= 1, Some("prev_part_uuid"))]
#[case::next_part(2, |h: &mut PoolHdrRepr| h.next_part_uuid[0] ^= 1, Some("next_part_uuid"))]
// Part 1's own uuid changed: part 0's next link and part 2's prev link break;
// part 0 is checked first.
#[case::own_uuid(1, |h: &mut PoolHdrRepr| h.uuid[0] ^= 1, Some("next_part_uuid"))]
// crtime and sds may differ between parts.
#[case::crtime(2, |h: &mut PoolHdrRepr| h.crtime += 1, None)]
#[case::sds(1, |h: &mut PoolHdrRepr| h.sds.usc = 3, None)]
fn link_and_consistency_checks(
    #[case] part: usize,
    #[case] change: fn(&mut PoolHdrRepr),
    #[case] bad: Option<&str>,
) {
    let got = corrupt_part(part, change);
    let field = match got {
        Ok(()) => None,
        Err(HdrError::Zeroed { .. }) => Some("zeroed"),
        Err(HdrError::SignatureMismatch { .. }) => Some("signature"),
        Err(HdrError::ArchFlagsMismatch { .. }) => Some("arch_flags"),
        Err(HdrError::ValueMismatch { field, .. })
        | Err(HdrError::UuidMismatch { field, .. })
        | Err(HdrError::PartLink { field, .. }) => Some(field),
        Err(other) => panic!("unexpected error {other:?}"),
    };
    assert_eq!(field, bad, "{got:?}");
    if let Err(e) = got {
        let wanted_part = if bad == Some("next_part_uuid") && part == 1 {
            0
        } else {
            part
        };
        assert!(
            e.to_string().starts_with(&format!("part {wanted_part}:")),
            "{e}"
        );
    }
}

#[test]
fn link_error_names_the_neighbour() {
    let mut hdrs = pool_of(3, &sample_attr());
    hdrs[2].next_part_uuid = seq(0x99);
    assert_eq!(
        check_parts(&hdrs),
        Err(HdrError::PartLink {
            part: 2,
            field: "next_part_uuid",
            neighbour: 0,
            found: HexUuid(seq(0x99)),
            expected: HexUuid(hdrs[0].uuid),
        })
    );
}

#[test]
fn singlehdr_rules() {
    let mut attr = sample_attr();
    attr.incompat_features |= POOL_FEAT_SINGLEHDR;
    assert_eq!(check_parts(&[]), Err(HdrError::NoParts));
    let one = pool_of(1, &attr);
    check_parts(&one).expect("single header linked to itself");
    let three = pool_of(3, &attr);
    assert_eq!(
        check_parts(&three),
        Err(HdrError::SingleHdrWithManyHeaders { count: 3 })
    );
    // A SINGLEHDR header whose links do not point at itself.
    let mut bad = one[0];
    bad.next_part_uuid = seq(0x77);
    assert!(matches!(
        bad.check(),
        Err(HdrError::PartLink {
            field: "next_part_uuid",
            ..
        })
    ));
}

// --------------------------------------------------------------- round trip

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>()
}

prop_compose! {
    fn arb_sds()(usc in any::<u64>(), uuid in any::<u64>(), dirty in any::<u8>(),
                 reserved in proptest::collection::vec(any::<u8>(), 39),
                 checksum in any::<u64>()) -> ShutdownState {
        let mut r = [0u8; 39];
        r.copy_from_slice(&reserved);
        ShutdownState { usc, uuid, dirty, reserved: r, checksum }
    }
}

prop_compose! {
    fn arb_repr()(
        signature in any::<[u8; 8]>(),
        major in any::<u32>(),
        features in (any::<u32>(), any::<u32>(), any::<u32>()),
        uuids in (arb_uuid(), arb_uuid(), arb_uuid(), arb_uuid(), arb_uuid(), arb_uuid()),
        crtime in any::<u64>(),
        arch in any::<[u8; 16]>(),
        sds in arb_sds(),
    ) -> PoolHdrRepr {
        PoolHdrRepr {
            signature,
            major,
            features: Features { compat: features.0, incompat: features.1, ro_compat: features.2 },
            poolset_uuid: uuids.0,
            uuid: uuids.1,
            prev_part_uuid: uuids.2,
            next_part_uuid: uuids.3,
            prev_repl_uuid: uuids.4,
            next_repl_uuid: uuids.5,
            crtime,
            arch_flags: ArchFlags::from_bytes(arch),
            sds,
        }
    }
}

proptest! {
    #[test]
    fn parse_emit_round_trip(repr in arb_repr()) {
        let bytes = repr.to_bytes();
        let parsed = PoolHdrRepr::parse_bytes(&bytes);
        prop_assert_eq!(parsed, Ok(repr));
        // And the view agrees with the value.
        let v = PoolHdr::new_checked(&bytes[..]).expect("len");
        prop_assert_eq!(v.uuid(), repr.uuid);
        prop_assert_eq!(v.arch_flags(), repr.arch_flags);
        prop_assert_eq!(v.uses_cksum_2k(), repr.uses_cksum_2k());
    }

    #[test]
    fn attr_round_trip(attr in (any::<[u8; 8]>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(),
                                arb_uuid(), arb_uuid(), arb_uuid(), arb_uuid(), any::<[u8; 16]>())
        .prop_map(|t| PoolAttr {
            signature: t.0, major: t.1, compat_features: t.2, incompat_features: t.3,
            ro_compat_features: t.4, poolset_uuid: t.5, uuid: t.6, next_uuid: t.7,
            prev_uuid: t.8, user_flags: t.9,
        }),
        crtime in any::<u64>())
    {
        let repr = from_attr(&attr, PartLinks::single(attr.uuid), crtime);
        let parsed = PoolHdrRepr::parse_bytes(&repr.to_bytes()).expect("emitted header parses");
        prop_assert_eq!(to_attr(&parsed), attr);
    }

    /// Random edits anywhere, then a fresh checksum: the header either parses
    /// and re-emits byte for byte, or a reserved area is non-zero.
    #[test]
    fn edited_headers_reemit_exactly(
        repr in arb_repr(),
        edits in proptest::collection::vec((0usize..POOL_HDR_SIZE, any::<u8>()), 0..8),
    ) {
        let mut bytes = repr.to_bytes();
        for (off, v) in edits {
            if let Some(b) = bytes.get_mut(off) {
                *b = v;
            }
        }
        let mut v = PoolHdr::new_checked(&mut bytes[..]).expect("len");
        v.fill_checksum();
        match PoolHdrRepr::parse_bytes(&bytes) {
            Ok(r) => prop_assert_eq!(&r.to_bytes()[..], &bytes[..]),
            Err(HdrError::NonZeroReserved { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
        if let Ok(r) = PoolHdrRepr::parse_bytes(&bytes) {
            prop_assert_eq!(&r.to_bytes()[..], &bytes[..POOL_HDR_SIZE]);
        }
    }
}
