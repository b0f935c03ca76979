//! Round trips and validation errors of every out-of-band format.

extern crate std;

use std::format;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use rstest::rstest;

use super::*;
use crate::attr::PoolAttr;

pub(crate) fn arb_attr() -> impl Strategy<Value = PoolAttr> {
    (any::<[u8; 8]>(), any::<[u32; 4]>(), any::<[[u8; 16]; 5]>()).prop_map(|(signature, w, u)| {
        PoolAttr {
            signature,
            major: w[0],
            compat_features: w[1],
            incompat_features: w[2],
            ro_compat_features: w[3],
            poolset_uuid: u[0],
            uuid: u[1],
            next_uuid: u[2],
            prev_uuid: u[3],
            user_flags: u[4],
        }
    })
}

pub(crate) fn arb_provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::LIBFABRIC_VERBS),
        Just(Provider::LIBFABRIC_SOCKETS),
        Just(Provider::TCP),
        Just(Provider::VERBS),
        any::<u32>().prop_map(Provider),
    ]
}

pub(crate) fn arb_common() -> impl Strategy<Value = CommonRepr> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u64>(),
        any::<u32>(),
        arb_provider(),
        any::<u64>(),
    )
        .prop_map(
            |(major, minor, pool_size, nlanes, provider, buff_size)| CommonRepr {
                major,
                minor,
                pool_size,
                nlanes,
                provider,
                buff_size,
            },
        )
}

/// A descriptor: 1 to 4095 non-NUL bytes (mostly short).
pub(crate) fn arb_desc() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(1u8..=255, 1..64),
        1 => proptest::collection::vec(1u8..=255, 1..=MAX_POOL_DESC - 1),
    ]
}

pub(crate) fn arb_ext() -> impl Strategy<Value = ExtRepr> {
    (any::<[u8; 32]>(), any::<u32>(), any::<u32>()).prop_map(|(secret, flags, max_inline)| {
        ExtRepr {
            secret,
            flags,
            max_inline,
        }
    })
}

pub(crate) fn arb_ibc() -> impl Strategy<Value = IbcRepr> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(port, pm, rkey, raddr, nlanes)| IbcRepr {
            port,
            persist_method: PersistMethod(pm),
            rkey,
            raddr,
            nlanes,
        })
}

pub(crate) fn arb_status() -> impl Strategy<Value = Status> {
    (0usize..14).prop_map(|i| Status::ALL[i])
}

fn emit_vec(f: impl Fn(&mut [u8]) -> Result<usize, Error>, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len + 7];
    let n = f(&mut buf).expect("emit");
    assert_eq!(n, len, "emit length matches buffer_len");
    // Too small a buffer is an error, never a panic.
    let mut short = vec![0u8; len - 1];
    assert!(matches!(f(&mut short), Err(Error::BufferTooSmall { .. })));
    buf.truncate(n);
    buf
}

proptest! {
    #[test]
    fn create_round_trip(common in arb_common(), attr in arb_attr(), desc in arb_desc()) {
        let repr = CreateRepr { common, attr, pool_desc: PoolDesc::new(&desc).unwrap() };
        let bytes = emit_vec(|b| repr.emit(b), repr.buffer_len());
        prop_assert_eq!(bytes.len(), 148 + desc.len() + 1);
        let view = Create::new_checked(&bytes).unwrap();
        prop_assert_eq!(view.total_len(), bytes.len());
        prop_assert_eq!(CreateRepr::parse(&view).unwrap(), repr);
        prop_assert_eq!(Request::parse(&bytes).unwrap(), Request::Create(repr));
    }

    #[test]
    fn open_round_trip(common in arb_common(), desc in arb_desc(), trailing in proptest::collection::vec(any::<u8>(), 0..8)) {
        let repr = OpenRepr { common, pool_desc: PoolDesc::new(&desc).unwrap() };
        let mut bytes = emit_vec(|b| repr.emit(b), repr.buffer_len());
        bytes.extend_from_slice(&trailing);
        let parsed = Request::parse(&bytes).unwrap();
        prop_assert_eq!(parsed, Request::Open(repr));
        prop_assert_eq!(parsed.buffer_len(), 44 + desc.len() + 1);
    }

    #[test]
    fn close_and_set_attr_round_trip(flags in any::<u32>(), attr in arb_attr()) {
        let close = CloseRepr { flags };
        let bytes = emit_vec(|b| close.emit(b), close.buffer_len());
        prop_assert_eq!(&bytes[12..16], &flags.to_le_bytes()[..]);
        prop_assert_eq!(Request::parse(&bytes).unwrap(), Request::Close(close));
        let set = SetAttrRepr { attr };
        let bytes = emit_vec(|b| set.emit(b), set.buffer_len());
        prop_assert_eq!(Request::parse(&bytes).unwrap(), Request::SetAttr(set));
    }

    #[test]
    fn create_resp_round_trip(status in arb_status(), ibc in arb_ibc(), ext in proptest::option::of(arb_ext())) {
        let repr = CreateRespRepr { status, ibc, ext };
        let bytes = emit_vec(|b| repr.emit(b), repr.buffer_len());
        prop_assert_eq!(bytes.len(), if ext.is_some() { 108 } else { 44 });
        prop_assert_eq!(&bytes[40..44], &ibc.nlanes.to_le_bytes()[..]);
        prop_assert_eq!(Response::parse(&bytes, Provider::TCP).unwrap(), Response::Create(repr));
        let pmdk = Response::parse(&bytes, Provider::LIBFABRIC_SOCKETS);
        if ext.is_some() {
            let rejected = matches!(
                pmdk,
                Err(Error::Mismatch { field: "hdr.size", offset: 8, value: 108, expected: 44, .. })
            );
            prop_assert!(rejected);
        } else {
            prop_assert_eq!(pmdk.unwrap(), Response::Create(repr));
        }
    }

    #[test]
    fn open_resp_round_trip(status in arb_status(), ibc in arb_ibc(), attr in arb_attr(), ext in proptest::option::of(arb_ext())) {
        let repr = OpenRespRepr { status, ibc, attr, ext };
        let bytes = emit_vec(|b| repr.emit(b), repr.buffer_len());
        prop_assert_eq!(bytes.len(), if ext.is_some() { 212 } else { 148 });
        prop_assert_eq!(Response::parse(&bytes, Provider::VERBS).unwrap(), Response::Open(repr));
    }

    #[test]
    fn close_and_set_attr_resp_round_trip(status in arb_status()) {
        let c = CloseRespRepr { status };
        let bytes = emit_vec(|b| c.emit(b), c.buffer_len());
        prop_assert_eq!(Response::parse(&bytes, Provider::TCP).unwrap(), Response::Close(c));
        let s = SetAttrRespRepr { status };
        let bytes = emit_vec(|b| s.emit(b), s.buffer_len());
        prop_assert_eq!(Response::parse(&bytes, Provider::TCP).unwrap(), Response::SetAttr(s));
    }

    #[test]
    fn parts_round_trip(common in arb_common(), ibc in arb_ibc(), ext in arb_ext(), attr in arb_attr(), word in any::<u32>()) {
        let bytes = emit_vec(|b| common.emit(b), common.buffer_len());
        prop_assert_eq!(CommonRepr::parse(&Common::new_checked(&bytes).unwrap()), common);
        let bytes = emit_vec(|b| ibc.emit(b), ibc.buffer_len());
        prop_assert_eq!(IbcRepr::parse(&IbcAttr::new_checked(&bytes).unwrap()), ibc);
        let bytes = emit_vec(|b| ext.emit(b), ext.buffer_len());
        prop_assert_eq!(&bytes[..4], b"RPX1");
        prop_assert_eq!(ExtRepr::parse(&Ext::new_checked(&bytes).unwrap()).unwrap(), ext);
        let bytes = emit_vec(|b| PoolAttrPacked::emit(&attr, b), POOL_ATTR_LEN);
        prop_assert_eq!(PoolAttrPacked::new_checked(&bytes).unwrap().to_attr(), attr);
        let w = StatusWordRepr { value: word };
        let bytes = emit_vec(|b| w.emit(b), w.buffer_len());
        prop_assert_eq!(&bytes[..], &word.to_le_bytes()[..]);
        prop_assert_eq!(StatusWordRepr::parse(&StatusWord::new_checked(&bytes).unwrap()), w);
    }

    #[test]
    fn headers_round_trip(t in 1u32..=8, size in any::<u64>(), status in arb_status()) {
        let msg_type = MsgType::from_u32(t).unwrap();
        let h = MsgHdrRepr { msg_type, size };
        let bytes = emit_vec(|b| h.emit(b), h.buffer_len());
        prop_assert_eq!(MsgHdrRepr::parse(&MsgHdr::new_checked(&bytes).unwrap()).unwrap(), h);
        let h = RespHdrRepr { status, msg_type, size };
        let bytes = emit_vec(|b| h.emit(b), h.buffer_len());
        prop_assert_eq!(RespHdrRepr::parse(&RespHdr::new_checked(&bytes).unwrap()).unwrap(), h);
    }

    /// Whatever the bytes, parsing never panics and a successful parse
    /// re-emits the same bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), p in arb_provider()) {
        if let Ok(r) = Request::parse(&bytes) {
            let mut out = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut out).unwrap(), out.len());
            prop_assert_eq!(&out[..], &bytes[..out.len()]);
        }
        if let Ok(r) = Response::parse(&bytes, p) {
            let mut out = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut out).unwrap(), out.len());
            prop_assert_eq!(&out[..], &bytes[..out.len()]);
        }
    }
}

fn attr() -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMCYC",
        major: 1,
        ..PoolAttr::ZERO
    }
}

fn create_bytes() -> Vec<u8> {
    let repr = CreateRepr {
        common: CommonRepr::new(1 << 24, 3, Provider::LIBFABRIC_SOCKETS, 8192),
        attr: attr(),
        pool_desc: PoolDesc::from_text("remote.set").unwrap(),
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut b).unwrap();
    b
}

fn open_bytes() -> Vec<u8> {
    let repr = OpenRepr {
        common: CommonRepr::new(1 << 24, 2, Provider::LIBFABRIC_SOCKETS, 8192),
        pool_desc: PoolDesc::from_text("remote.set").unwrap(),
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut b).unwrap();
    b
}

fn put_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn resp_bytes(ext: bool, open: bool) -> Vec<u8> {
    let e = ext.then_some(ExtRepr {
        secret: [7; 32],
        flags: ext_flags::PMEM,
        max_inline: 4096,
    });
    let r = if open {
        Response::Open(OpenRespRepr {
            status: Status::Success,
            ibc: IbcRepr::ZERO,
            attr: attr(),
            ext: e,
        })
    } else {
        Response::Create(CreateRespRepr {
            status: Status::Success,
            ibc: IbcRepr::ZERO,
            ext: e,
        })
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

type Mutate = fn(&mut Vec<u8>);

#[rstest]
#[case::truncated(|b: &mut Vec<u8>| b.truncate(100), "CREATE: only 100 bytes available, the message needs 148")]
#[case::hdr_size_too_large(|b: &mut Vec<u8>| put_be64(b, 4, 148 + 4097), "CREATE: hdr.size 4245 at offset 4 exceeds the limit 4244")]
#[case::hdr_size_too_small(|b: &mut Vec<u8>| put_be64(b, 4, 147), "CREATE: hdr.size 147 at offset 4 is below the minimum 148")]
#[case::hdr_size_beyond_buffer(|b: &mut Vec<u8>| put_be64(b, 4, 170), "CREATE: only 159 bytes available, the message needs 170")]
#[case::wrong_type(|b: &mut Vec<u8>| put_be32(b, 0, 3), "CREATE: hdr.type 3 at offset 0 should be 1")]
#[case::desc_size_over_limit(|b: &mut Vec<u8>| put_be32(b, 144, 70000), "CREATE: pool_desc.size 70000 at offset 144 exceeds the limit 4096")]
#[case::desc_size_mismatch(|b: &mut Vec<u8>| put_be32(b, 144, 12), "CREATE: pool_desc.size 12 at offset 144 should be 11")]
#[case::desc_size_small(|b: &mut Vec<u8>| { put_be32(b, 144, 1); put_be64(b, 4, 149); b.truncate(149); b[148] = 0; }, "CREATE: pool_desc.size 1 at offset 144 is below the minimum 2")]
#[case::desc_not_terminated(|b: &mut Vec<u8>| { let n = b.len(); b[n - 1] = b'x'; }, "CREATE: pool_desc.desc is not NUL-terminated (byte at offset 158 is 0x78)")]
#[case::desc_embedded_nul(|b: &mut Vec<u8>| b[152] = 0, "CREATE: pool_desc.desc has a NUL at offset 152, before its end at offset 158")]
fn create_validation(#[case] mutate: Mutate, #[case] expected: &str) {
    let mut b = create_bytes();
    mutate(&mut b);
    let e = Create::new_checked(&b)
        .and_then(|v| CreateRepr::parse(&v))
        .unwrap_err();
    assert_eq!(format!("{e}"), expected);
    if b.get(..4) == Some(&[0, 0, 0, 1][..]) {
        // The generic parser dispatches on the type and agrees.
        assert_eq!(Request::parse(&b).unwrap_err(), e);
    }
}

#[rstest]
#[case::hdr_size_too_large(|b: &mut Vec<u8>| put_be64(b, 4, 44 + 4097), "OPEN: hdr.size 4141 at offset 4 exceeds the limit 4140")]
#[case::desc_size_over_limit(|b: &mut Vec<u8>| put_be32(b, 40, 4097), "OPEN: pool_desc.size 4097 at offset 40 exceeds the limit 4096")]
#[case::desc_size_mismatch(|b: &mut Vec<u8>| put_be32(b, 40, 5), "OPEN: pool_desc.size 5 at offset 40 should be 11")]
#[case::desc_not_terminated(|b: &mut Vec<u8>| { let n = b.len(); b[n - 1] = b'!'; }, "OPEN: pool_desc.desc is not NUL-terminated (byte at offset 54 is 0x21)")]
#[case::desc_embedded_nul(|b: &mut Vec<u8>| b[44] = 0, "OPEN: pool_desc.desc has a NUL at offset 44, before its end at offset 54")]
fn open_validation(#[case] mutate: Mutate, #[case] expected: &str) {
    let mut b = open_bytes();
    mutate(&mut b);
    let e = Request::parse(&b).unwrap_err();
    assert_eq!(format!("{e}"), expected);
}

#[rstest]
#[case::close_size(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0], "CLOSE: hdr.size 17 at offset 4 should be 16")]
#[case::close_short(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], "CLOSE: only 14 bytes available, the message needs 16")]
#[case::unknown_type(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 16], "request header: hdr.type 9 at offset 0 is not a known value")]
#[case::response_type(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 16], "request header: hdr.type 2 at offset 0 is not a request type (CREATE, OPEN, CLOSE or SET_ATTR)")]
#[case::short_header(&[0, 0, 0, 5], "request header: only 4 bytes available, the message needs 12")]
fn request_header_validation(#[case] bytes: &[u8], #[case] expected: &str) {
    assert_eq!(format!("{}", Request::parse(bytes).unwrap_err()), expected);
}

#[test]
fn set_attr_size_must_be_exact() {
    let mut b = vec![0u8; 116];
    SetAttrRepr { attr: attr() }.emit(&mut b).unwrap();
    put_be64(&mut b, 4, 115);
    assert_eq!(
        format!("{}", Request::parse(&b).unwrap_err()),
        "SET_ATTR: hdr.size 115 at offset 4 should be 116"
    );
}

#[rstest]
#[case::wrong_size(false, false, |b: &mut Vec<u8>| put_be64(b, 8, 45), Provider::LIBFABRIC_SOCKETS, "CREATE_RESP: hdr.size 45 at offset 8 should be 44")]
#[case::status_unknown(false, false, |b: &mut Vec<u8>| put_be32(b, 0, 14), Provider::LIBFABRIC_SOCKETS, "CREATE_RESP: hdr.status 14 at offset 0 is not a known value")]
#[case::ext_for_pmdk(true, false, |_: &mut Vec<u8>| {}, Provider::LIBFABRIC_VERBS, "CREATE_RESP: hdr.size 108 at offset 8 should be 44")]
#[case::ext_bad_size_for_ours(false, false, |b: &mut Vec<u8>| put_be64(b, 8, 100), Provider::TCP, "CREATE_RESP: hdr.size 100 at offset 8 should be 108")]
#[case::ext_truncated(true, false, |b: &mut Vec<u8>| b.truncate(100), Provider::TCP, "CREATE_RESP: only 100 bytes available, the message needs 108")]
#[case::ext_magic(true, false, |b: &mut Vec<u8>| b[44] = b'X', Provider::TCP, "CREATE_RESP: ext.magic 0x58505831 at offset 44 should be 0x52505831 (\"RPX1\")")]
#[case::ext_version(true, false, |b: &mut Vec<u8>| b[49] = 2, Provider::TCP, "CREATE_RESP: ext.version 2 at offset 48 should be 1")]
#[case::ext_size(true, false, |b: &mut Vec<u8>| b[51] = 65, Provider::TCP, "CREATE_RESP: ext.size 65 at offset 50 should be 64")]
#[case::ext_reserved(true, false, |b: &mut Vec<u8>| b[100] = 1, Provider::TCP, "CREATE_RESP: ext.reserved at offset 100 must be zero")]
#[case::open_ext_magic(true, true, |b: &mut Vec<u8>| b[148] = 0, Provider::VERBS, "OPEN_RESP: ext.magic 0x00505831 at offset 148 should be 0x52505831 (\"RPX1\")")]
#[case::open_ext_for_pmdk(true, true, |_: &mut Vec<u8>| {}, Provider::LIBFABRIC_SOCKETS, "OPEN_RESP: hdr.size 212 at offset 8 should be 148")]
#[case::open_status(false, true, |b: &mut Vec<u8>| put_be32(b, 0, 0xffff_ffff), Provider::LIBFABRIC_SOCKETS, "OPEN_RESP: hdr.status 4294967295 at offset 0 is not a known value")]
#[case::request_type(false, false, |b: &mut Vec<u8>| put_be32(b, 4, 1), Provider::TCP, "response header: hdr.type 1 at offset 4 is not a response type")]
#[case::unknown_type(false, false, |b: &mut Vec<u8>| put_be32(b, 4, 0), Provider::TCP, "response header: hdr.type 0 at offset 4 is not a known value")]
fn response_validation(
    #[case] ext: bool,
    #[case] open: bool,
    #[case] mutate: Mutate,
    #[case] provider: Provider,
    #[case] expected: &str,
) {
    let mut b = resp_bytes(ext, open);
    mutate(&mut b);
    assert_eq!(
        format!("{}", Response::parse(&b, provider).unwrap_err()),
        expected
    );
}

#[test]
fn typed_response_parsers_check_the_type() {
    let mut b = resp_bytes(false, false);
    put_be32(&mut b, 4, 4);
    let view = CreateResp::new_checked(&b).unwrap();
    assert_eq!(
        format!(
            "{}",
            CreateRespRepr::parse(&view, Provider::LIBFABRIC_SOCKETS).unwrap_err()
        ),
        "CREATE_RESP: hdr.type 4 at offset 4 should be 2"
    );
    let b = resp_bytes(false, true);
    let mut c = b.clone();
    put_be32(&mut c, 4, 2);
    let view = OpenResp::new_checked(&c).unwrap();
    assert_eq!(
        format!("{}", OpenRespRepr::parse(&view, Provider::TCP).unwrap_err()),
        "OPEN_RESP: hdr.type 2 at offset 4 should be 4"
    );
}

#[test]
fn close_resp_and_set_attr_resp_sizes_are_exact() {
    let mut b = vec![0u8; 16];
    CloseRespRepr {
        status: Status::Success,
    }
    .emit(&mut b)
    .unwrap();
    assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 16]);
    put_be64(&mut b, 8, 20);
    assert_eq!(
        format!("{}", Response::parse(&b, Provider::TCP).unwrap_err()),
        "CLOSE_RESP: hdr.size 20 at offset 8 should be 16"
    );
    put_be32(&mut b, 4, 8);
    assert_eq!(
        format!("{}", Response::parse(&b, Provider::TCP).unwrap_err()),
        "SET_ATTR_RESP: hdr.size 20 at offset 8 should be 16"
    );
}

#[rstest]
#[case::port_zero(IbcRepr { port: 0, ..good_ibc() }, "CREATE_RESP: ibc.port 0 at offset 16 is below the minimum 1")]
#[case::port_large(IbcRepr { port: 65536, ..good_ibc() }, "CREATE_RESP: ibc.port 65536 at offset 16 exceeds the limit 65535")]
#[case::persist_method(IbcRepr { persist_method: PersistMethod(3), ..good_ibc() }, "CREATE_RESP: ibc.persist_method 3 at offset 20 is not a known value")]
#[case::no_lanes(IbcRepr { nlanes: 0, ..good_ibc() }, "CREATE_RESP: ibc.nlanes 0 at offset 40 is below the minimum 1")]
#[case::too_many_lanes(IbcRepr { nlanes: 5, ..good_ibc() }, "CREATE_RESP: ibc.nlanes 5 at offset 40 exceeds the limit 4")]
fn ibc_validation(#[case] ibc: IbcRepr, #[case] expected: &str) {
    assert!(good_ibc().validate("CREATE_RESP", 16, 4).is_ok());
    assert_eq!(
        format!("{}", ibc.validate("CREATE_RESP", 16, 4).unwrap_err()),
        expected
    );
}

fn good_ibc() -> IbcRepr {
    IbcRepr {
        port: 65535,
        persist_method: PersistMethod::APM,
        rkey: 1,
        raddr: 2,
        nlanes: 4,
    }
}

#[test]
fn ext_secret_must_not_be_zero() {
    let ext = ExtRepr {
        secret: [0; 32],
        flags: 0,
        max_inline: 0,
    };
    assert_eq!(
        format!("{}", ext.validate("OPEN_RESP", 148).unwrap_err()),
        "OPEN_RESP: ext.secret at offset 156 is all zero"
    );
    let mut one = ext;
    one.secret[31] = 1;
    assert!(one.validate("OPEN_RESP", 148).is_ok());
    assert!(!format!("{one:?}").contains('1') || format!("{one:?}").contains("redacted"));
}

#[test]
fn errors_name_message_field_and_offset() {
    let mut b = create_bytes();
    put_be32(&mut b, 144, 70000);
    let e = Request::parse(&b).unwrap_err();
    assert_eq!(e.msg(), "CREATE");
    assert_eq!(e.field(), Some("pool_desc.size"));
    assert_eq!(e.offset(), Some(144));
}

#[test]
fn known_bytes_of_a_create() {
    // The fixed layout, field by field, with the values of
    // `create_bytes()`.
    let b = create_bytes();
    assert_eq!(&b[0..4], &[0, 0, 0, 1]);
    assert_eq!(&b[4..12], &159u64.to_be_bytes());
    assert_eq!(&b[12..16], &[0, 0, 0, 1]);
    assert_eq!(&b[16..24], &(1u64 << 24).to_be_bytes());
    assert_eq!(&b[24..28], &3u32.to_be_bytes());
    assert_eq!(&b[28..32], &2u32.to_be_bytes());
    assert_eq!(&b[32..40], &8192u64.to_be_bytes());
    assert_eq!(&b[40..48], b"RPMEMCYC");
    assert_eq!(&b[48..52], &1u32.to_be_bytes());
    assert_eq!(&b[144..148], &11u32.to_be_bytes());
    assert_eq!(&b[148..], b"remote.set\0");
}
