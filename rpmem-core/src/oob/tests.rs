//! Tests of the client and server machines: whole sessions split at every
//! boundary, every refusal of the server, every check of the client.

extern crate std;

use std::format;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use rstest::rstest;

use super::*;
use crate::attr::PoolAttr;
use crate::wire::oob::{
    errno, CommonRepr, CreateRepr, CreateRespRepr, ExtRepr, IbcRepr, MsgType, OpenRepr,
    OpenRespRepr, PersistMethod, PoolDesc, Provider, Response, Status, CLOSE_FLAGS_REMOVE,
};

/// A server event with its descriptor copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Create {
        common: CommonRepr,
        attr: PoolAttr,
        desc: Vec<u8>,
    },
    Open {
        common: CommonRepr,
        desc: Vec<u8>,
    },
    SetAttr {
        attr: PoolAttr,
    },
    Close {
        flags: u32,
    },
}

fn own(ev: ServerEvent<'_>) -> Ev {
    match ev {
        ServerEvent::Create {
            common,
            attr,
            pool_desc,
        } => Ev::Create {
            common,
            attr,
            desc: pool_desc.as_bytes().to_vec(),
        },
        ServerEvent::Open { common, pool_desc } => Ev::Open {
            common,
            desc: pool_desc.as_bytes().to_vec(),
        },
        ServerEvent::SetAttr { attr } => Ev::SetAttr { attr },
        ServerEvent::Close { flags } => Ev::Close { flags },
    }
}

/// Feeds `bytes` to the server in chunks of the given sizes (cycled),
/// keeping unconsumed bytes, until an event comes out.
fn server_feed(server: &mut Server, bytes: &[u8], sizes: &[usize]) -> Result<Option<Ev>, OobError> {
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        let step = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        i += 1;
        let end = (at + step).min(bytes.len());
        pending.extend_from_slice(&bytes[at..end]);
        at = end;
        loop {
            let (n, ev) = server.handle_input(&pending)?;
            let ev = ev.map(own);
            pending.drain(..n);
            if ev.is_some() {
                assert!(
                    pending.is_empty() && at == bytes.len(),
                    "one message at a time"
                );
                return Ok(ev);
            }
            if n == 0 {
                break;
            }
        }
        if at == bytes.len() {
            return Ok(None);
        }
    }
}

/// The same for the client.
fn client_feed(
    client: &mut Client,
    bytes: &[u8],
    sizes: &[usize],
) -> Result<Option<ClientEvent>, OobError> {
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        let step = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        i += 1;
        let end = (at + step).min(bytes.len());
        pending.extend_from_slice(&bytes[at..end]);
        at = end;
        loop {
            let (n, ev) = client.handle_input(&pending)?;
            pending.drain(..n);
            if ev.is_some() {
                assert!(
                    pending.is_empty() && at == bytes.len(),
                    "one message at a time"
                );
                return Ok(ev);
            }
            if n == 0 {
                break;
            }
        }
        if at == bytes.len() {
            return Ok(None);
        }
    }
}

fn ext() -> ExtRepr {
    ExtRepr {
        secret: [0x5a; 32],
        flags: crate::wire::oob::ext_flags::PMEM,
        max_inline: 4096,
    }
}

fn ibc(nlanes: u32) -> IbcRepr {
    IbcRepr {
        port: 36071,
        persist_method: PersistMethod::GPSPM,
        rkey: 1,
        raddr: 0x7fd5_7220_0000,
        nlanes,
    }
}

fn ready_pair() -> (Client, Server) {
    let mut server = Server::new(Limits::default());
    let mut client = Client::new();
    let word = server.startup_status(Ok(())).unwrap();
    assert_eq!(word, [0, 0, 0, 0]);
    assert_eq!(
        client.handle_input(&word).unwrap(),
        (4, Some(ClientEvent::Ready))
    );
    (client, server)
}

fn arb_provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::LIBFABRIC_VERBS),
        Just(Provider::LIBFABRIC_SOCKETS),
        Just(Provider::TCP),
        Just(Provider::VERBS),
    ]
}

fn arb_attr() -> impl Strategy<Value = PoolAttr> {
    crate::wire::oob::tests::arb_attr()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A whole session between the two machines, every byte stream cut in
    /// random pieces: CREATE or OPEN, some SET_ATTRs, CLOSE.
    #[test]
    fn sessions_split_anywhere(
        provider in arb_provider(),
        create in any::<bool>(),
        attr in arb_attr(),
        new_attrs in proptest::collection::vec(arb_attr(), 0..3),
        desc in crate::wire::oob::tests::arb_desc(),
        nlanes in 1u32..=1024,
        grant in 1u32..=1024,
        flags in prop_oneof![Just(0u32), Just(CLOSE_FLAGS_REMOVE)],
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let granted = grant.min(nlanes);
        let mut server = Server::new(Limits::default());
        let mut client = Client::new();
        let word = server.startup_status(Ok(())).unwrap();
        prop_assert_eq!(client_feed(&mut client, &word, &sizes).unwrap(), Some(ClientEvent::Ready));

        let pool_desc = PoolDesc::new(&desc).unwrap();
        let common = CommonRepr::new(1 << 30, nlanes, provider, 8192);
        let e = provider.has_extension().then(ext);
        let request = if create {
            client.send_create(&CreateRequest {
                pool_size: 1 << 30, nlanes, provider, buff_size: 8192, attr, pool_desc,
            }).unwrap().to_vec()
        } else {
            client.send_open(&OpenRequest {
                pool_size: 1 << 30, nlanes, provider, buff_size: 8192, pool_desc,
            }).unwrap().to_vec()
        };
        let ev = server_feed(&mut server, &request, &sizes).unwrap();
        let answer = if create {
            prop_assert_eq!(ev, Some(Ev::Create { common, attr, desc: desc.clone() }));
            server.respond_create(Status::Success, Some((ibc(granted), e))).unwrap().to_vec()
        } else {
            prop_assert_eq!(ev, Some(Ev::Open { common, desc: desc.clone() }));
            server.respond_open(Status::Success, Some((ibc(granted), attr, e))).unwrap().to_vec()
        };
        prop_assert_eq!(server.pool_desc().map(|d| d.as_bytes().to_vec()), Some(desc.clone()));
        let ev = client_feed(&mut client, &answer, &sizes).unwrap();
        if create {
            prop_assert_eq!(ev, Some(ClientEvent::Created(CreateResponse { ibc: ibc(granted), ext: e })));
        } else {
            prop_assert_eq!(ev, Some(ClientEvent::Opened(OpenResponse { ibc: ibc(granted), attr, ext: e })));
        }
        prop_assert_eq!(client.session(), Some((provider, granted)));

        for a in &new_attrs {
            let bytes = client.send_set_attr(a).unwrap().to_vec();
            prop_assert_eq!(server_feed(&mut server, &bytes, &sizes).unwrap(), Some(Ev::SetAttr { attr: *a }));
            let answer = server.respond_set_attr(Status::Success).unwrap().to_vec();
            prop_assert_eq!(client_feed(&mut client, &answer, &sizes).unwrap(), Some(ClientEvent::AttrSet));
        }

        let bytes = client.send_close(flags).unwrap().to_vec();
        prop_assert_eq!(server_feed(&mut server, &bytes, &sizes).unwrap(), Some(Ev::Close { flags }));
        let answer = server.respond_close(Status::Success).unwrap().to_vec();
        prop_assert_eq!(client_feed(&mut client, &answer, &sizes).unwrap(), Some(ClientEvent::Closed));
        prop_assert!(client.is_finished() && server.is_finished());
        prop_assert!(client.handle_eof().is_ok());
        prop_assert!(server.handle_eof().is_ok());
    }

    /// Arbitrary bytes into both machines never panic, however split.
    #[test]
    fn machines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), split in any::<usize>(), provider in arb_provider()) {
        let split = split % (bytes.len() + 1);
        let mut server = Server::new(Limits::default());
        server.startup_status(Ok(())).unwrap();
        let _ = server_feed(&mut server, &bytes[..split], &[7]);
        let _ = server_feed(&mut server, &bytes[split..], &[3]);
        let _ = server.handle_eof();

        let mut client = Client::new();
        let _ = client.handle_input(&[0, 0, 0, 0]);
        let _ = client.send_create(&CreateRequest {
            pool_size: 1 << 20, nlanes: 4, provider, buff_size: 8192, attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("p.set").unwrap(),
        });
        let _ = client_feed(&mut client, &bytes[..split], &[5]);
        let _ = client_feed(&mut client, &bytes[split..], &[1]);
        let _ = client.handle_eof();
    }
}

#[test]
fn one_byte_at_a_time_with_extension() {
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_open(&OpenRequest {
            pool_size: 4096,
            nlanes: 8,
            provider: Provider::TCP,
            buff_size: 64,
            pool_desc: PoolDesc::from_text("dir/pool.set").unwrap(),
        })
        .unwrap()
        .to_vec();
    let mut event = None;
    for (i, b) in req.iter().enumerate() {
        let (n, ev) = server.handle_input(core::slice::from_ref(b)).unwrap();
        assert_eq!(n, 1);
        let ev = ev.map(own);
        assert_eq!(ev.is_some(), i + 1 == req.len());
        event = event.or(ev);
    }
    assert!(matches!(event, Some(Ev::Open { desc, .. }) if desc == b"dir/pool.set"));
    let answer = server
        .respond_open(Status::Success, Some((ibc(2), PoolAttr::ZERO, Some(ext()))))
        .unwrap()
        .to_vec();
    assert_eq!(answer.len(), 212);
    for (i, b) in answer.iter().enumerate() {
        let (n, ev) = client.handle_input(core::slice::from_ref(b)).unwrap();
        assert_eq!(n, 1);
        if i + 1 == answer.len() {
            assert_eq!(
                ev,
                Some(ClientEvent::Opened(OpenResponse {
                    ibc: ibc(2),
                    attr: PoolAttr::ZERO,
                    ext: Some(ext())
                }))
            );
        } else {
            assert_eq!(ev, None);
        }
    }
}

/// A valid request to mutate: CREATE (or OPEN) for the sockets provider.
fn request_bytes(create: bool) -> Vec<u8> {
    let common = CommonRepr::new(1 << 24, 3, Provider::LIBFABRIC_SOCKETS, 8192);
    let pool_desc = PoolDesc::from_text("remote.set").unwrap();
    let mut b = vec![0u8; 4300];
    let n = if create {
        CreateRepr {
            common,
            attr: PoolAttr::ZERO,
            pool_desc,
        }
        .emit(&mut b)
        .unwrap()
    } else {
        OpenRepr { common, pool_desc }.emit(&mut b).unwrap()
    };
    b.truncate(n);
    b
}

fn be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

type Mutate = fn(&mut Vec<u8>);

/// Every refusal of a CREATE / OPEN: the status PMDK would answer with, the
/// reason in words, and an answer of the right type carrying the status.
#[rstest]
#[case::major(true, |b: &mut Vec<u8>| be16(b, 12, 1), Status::BadProto, "c.major 1 at offset 12 should be 0")]
#[case::minor(false, |b: &mut Vec<u8>| be16(b, 14, 2), Status::BadProto, "c.minor 2 at offset 14 should be 1")]
#[case::version_before_desc(true, |b: &mut Vec<u8>| { be16(b, 12, 9); be32(b, 144, 3); }, Status::BadProto, "c.major 9")]
#[case::desc_size_mismatch(true, |b: &mut Vec<u8>| be32(b, 144, 12), Status::BadName, "pool_desc.size 12 at offset 144 should be 11")]
#[case::desc_too_long(true, |b: &mut Vec<u8>| be32(b, 144, 5000), Status::BadName, "pool_desc.size 5000 at offset 144 exceeds the limit 4096")]
#[case::desc_not_terminated(false, |b: &mut Vec<u8>| { let n = b.len(); b[n - 1] = b'x'; }, Status::BadName, "not NUL-terminated")]
#[case::desc_embedded_nul(false, |b: &mut Vec<u8>| b[46] = 0, Status::BadName, "NUL at offset 46")]
#[case::desc_too_small(false, |b: &mut Vec<u8>| { be32(b, 40, 1); be64(b, 4, 45); b.truncate(45); b[44] = 0; }, Status::BadName, "pool_desc.size 1 at offset 40 is below the minimum 2")]
#[case::hdr_size_over_limit(true, |b: &mut Vec<u8>| be64(b, 4, 1 << 40), Status::BadName, "hdr.size 1099511627776 at offset 4 exceeds the limit 4244")]
#[case::hdr_size_below_fixed(true, |b: &mut Vec<u8>| be64(b, 4, 100), Status::Fatal, "hdr.size 100 at offset 4 is below the minimum 148")]
#[case::provider_unknown(true, |b: &mut Vec<u8>| be32(b, 28, 0), Status::BadProvider, "c.provider 0 at offset 28 is not a known value")]
#[case::provider_three(false, |b: &mut Vec<u8>| be32(b, 28, 3), Status::BadProvider, "c.provider 3 at offset 28")]
#[case::no_lanes(true, |b: &mut Vec<u8>| be32(b, 24, 0), Status::BadNlanes, "c.nlanes 0 at offset 24 is below the minimum 1")]
#[case::too_many_lanes(false, |b: &mut Vec<u8>| be32(b, 24, 1025), Status::BadNlanes, "c.nlanes 1025 at offset 24 exceeds the limit 1024")]
#[case::buff_size(true, |b: &mut Vec<u8>| be64(b, 32, u64::MAX), Status::Fatal, "c.buff_size 18446744073709551615 at offset 32 exceeds the limit 1048576")]
fn server_refuses_open_and_create(
    #[case] create: bool,
    #[case] mutate: Mutate,
    #[case] status: Status,
    #[case] reason: &str,
) {
    let mut b = request_bytes(create);
    mutate(&mut b);
    let request = if create {
        MsgType::Create
    } else {
        MsgType::Open
    };
    let (_, mut server) = ready_pair();
    let err = server_feed(&mut server, &b, &[1, 2, 3]).unwrap_err();
    match err {
        OobError::Rejected {
            request: r,
            status: s,
            ..
        } => {
            assert_eq!((r, s), (request, status));
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let text = format!("{err}");
    assert!(text.contains(reason), "{text:?} should contain {reason:?}");
    assert!(text.starts_with(&format!("{} refused with {}", request, status.name())));
    // The answer: the right type, the status, zeros.
    let answer = server.reject_response().expect("typed answer").to_vec();
    match Response::parse(&answer, Provider::LIBFABRIC_SOCKETS).unwrap() {
        Response::Create(CreateRespRepr {
            status: s,
            ibc,
            ext,
        }) => {
            assert!(create);
            assert_eq!((s, ibc, ext), (status, IbcRepr::ZERO, None));
        }
        Response::Open(OpenRespRepr {
            status: s,
            ibc,
            attr,
            ext,
        }) => {
            assert!(!create);
            assert_eq!(
                (s, ibc, attr, ext),
                (status, IbcRepr::ZERO, PoolAttr::ZERO, None)
            );
        }
        other => panic!("unexpected answer {other:?}"),
    }
    assert!(server.is_finished());
    assert!(matches!(
        server.handle_input(&[1]),
        Err(OobError::WrongState { .. })
    ));
}

/// A client from before sealed TCP lanes (CREATE / OPEN for the TCP
/// provider at protocol 0.1) is refused at the out-of-band step, before any
/// lane connects, with a reason naming both versions and what to do; 0.2 is
/// refused with PMDK's providers.
#[rstest]
#[case::old_tcp_create(true, Provider::TCP, 1, "c.minor 1 at offset 14 with provider tcp: the client predates sealed TCP lanes (it speaks protocol 0.1, this rpmemd needs 0.2 with tcp); upgrade the client")]
#[case::old_tcp_open(false, Provider::TCP, 1, "the client predates sealed TCP lanes (it speaks protocol 0.1, this rpmemd needs 0.2 with tcp); upgrade the client")]
#[case::future_tcp(true, Provider::TCP, 3, "c.minor 3 at offset 14 should be 2")]
#[case::sealed_minor_with_pmdk(
    false,
    Provider::LIBFABRIC_SOCKETS,
    2,
    "c.minor 2 at offset 14 should be 1"
)]
fn server_refuses_a_client_from_before_sealed_tcp_lanes(
    #[case] create: bool,
    #[case] provider: Provider,
    #[case] minor: u16,
    #[case] reason: &str,
) {
    let mut b = request_bytes(create);
    be32(&mut b, 28, provider.0);
    be16(&mut b, 14, minor);
    let (_, mut server) = ready_pair();
    let err = server_feed(&mut server, &b, &[7]).unwrap_err();
    let request = if create {
        MsgType::Create
    } else {
        MsgType::Open
    };
    match err {
        OobError::Rejected {
            request: r,
            status: s,
            reason: RejectReason::Invalid(e),
        } => {
            assert_eq!((r, s), (request, Status::BadProto));
            assert_eq!((e.field(), e.offset()), (Some("c.minor"), Some(14)));
            if minor == 1 {
                assert!(matches!(
                    e,
                    crate::wire::oob::Error::ClientPredatesSealing {
                        minor: 1,
                        needed: 2,
                        ..
                    }
                ));
            }
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let text = format!("{err}");
    assert!(text.contains(reason), "{text:?} should contain {reason:?}");
    assert!(server.reject_response().is_some());
}

/// A sealing client asks for protocol 0.2 with the TCP provider (0.1 with
/// PMDK's); an rpmemd from before the sealing accepts only 0.1 and answers
/// `RPMEM_ERR_BADPROTO`, which the client recognises as "rpmemd predates
/// sealed TCP lanes" (only with the TCP provider).
#[test]
fn client_from_after_sealing_is_refused_by_an_old_rpmemd() {
    for (provider, minor) in [
        (Provider::TCP, 2u16),
        (Provider::VERBS, 1),
        (Provider::LIBFABRIC_SOCKETS, 1),
        (Provider::LIBFABRIC_VERBS, 1),
    ] {
        let (mut client, _) = ready_pair();
        let bytes = client
            .send_create(&CreateRequest {
                pool_size: 1 << 20,
                nlanes: 3,
                provider,
                buff_size: 8192,
                attr: PoolAttr::ZERO,
                pool_desc: PoolDesc::from_text("x").unwrap(),
            })
            .unwrap()
            .to_vec();
        assert_eq!(bytes[14..16], minor.to_be_bytes(), "{provider}");
        assert_eq!(CommonRepr::minor_for(provider), minor);
        // PMDK 1.12.1's (and our pre-sealing) rpmemd: exactly 0.1.
        let old_rpmemd_accepts = minor == crate::wire::oob::PROTO_MINOR;
        assert_eq!(old_rpmemd_accepts, provider != Provider::TCP);
    }
    let mut client = created_client(Provider::TCP, 3);
    let b = create_resp(Status::BadProto, IbcRepr::ZERO, None);
    assert_eq!(
        client_feed(&mut client, &b, &[5]).unwrap(),
        Some(ClientEvent::Failed {
            status: Status::BadProto,
            request: MsgType::Create
        })
    );
    assert!(CommonRepr::refusal_predates_sealing(
        Provider::TCP,
        Status::BadProto
    ));
    assert!(!CommonRepr::refusal_predates_sealing(
        Provider::LIBFABRIC_VERBS,
        Status::BadProto
    ));
    assert!(!CommonRepr::refusal_predates_sealing(
        Provider::TCP,
        Status::NoExist
    ));
}

#[test]
fn server_refuses_a_provider_it_does_not_serve() {
    let limits = Limits {
        providers: ProviderSet {
            libfabric_sockets: false,
            ..ProviderSet::ALL
        },
        ..Limits::default()
    };
    let mut server = Server::new(limits);
    server.startup_status(Ok(())).unwrap();
    let err = server_feed(&mut server, &request_bytes(true), &[500]).unwrap_err();
    assert_eq!(
        err,
        OobError::Rejected {
            request: MsgType::Create,
            status: Status::ProvNoSup,
            reason: RejectReason::ProviderDisabled(Provider::LIBFABRIC_SOCKETS)
        }
    );
    assert_eq!(
        format!("{err}"),
        "CREATE refused with RPMEM_ERR_PROVNOSUP (Provider not supported): provider sockets (0x2) is not enabled on this server"
    );
}

#[rstest]
#[case::set_attr_first(MsgType::SetAttr)]
#[case::close_first(MsgType::Close)]
fn server_needs_a_pool_first(#[case] request: MsgType) {
    let (_, mut server) = ready_pair();
    let mut b = vec![0u8; 116];
    let n = match request {
        MsgType::SetAttr => crate::wire::oob::SetAttrRepr {
            attr: PoolAttr::ZERO,
        }
        .emit(&mut b)
        .unwrap(),
        _ => crate::wire::oob::CloseRepr { flags: 0 }
            .emit(&mut b)
            .unwrap(),
    };
    let err = server_feed(&mut server, &b[..n], &[4]).unwrap_err();
    assert_eq!(
        err,
        OobError::Rejected {
            request,
            status: Status::Fatal,
            reason: RejectReason::NoPool
        }
    );
    let answer = server.reject_response().unwrap();
    let parsed = Response::parse(answer, Provider::TCP).unwrap();
    assert_eq!(parsed.msg_type(), request.response().unwrap());
    assert_eq!(parsed.status(), Status::Fatal);
}

#[test]
fn server_refuses_a_second_create() {
    let (_, mut server) = ready_pair();
    server_feed(&mut server, &request_bytes(true), &[9]).unwrap();
    server
        .respond_create(Status::Success, Some((ibc(3), None)))
        .unwrap();
    let err = server_feed(&mut server, &request_bytes(false), &[9]).unwrap_err();
    assert_eq!(
        err,
        OobError::Rejected {
            request: MsgType::Open,
            status: Status::Fatal,
            reason: RejectReason::PoolOpen
        }
    );
}

#[rstest]
#[case::close_size(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 17], MsgType::Close, "CLOSE: hdr.size 17 at offset 4 should be 16")]
#[case::set_attr_size(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 16], MsgType::SetAttr, "SET_ATTR: hdr.size 16 at offset 4 should be 116")]
fn server_refuses_wrong_fixed_sizes_at_the_header(
    #[case] header: &[u8],
    #[case] request: MsgType,
    #[case] reason: &str,
) {
    let (_, mut server) = ready_pair();
    // The header alone is enough: the server never waits for the body.
    let err = server.handle_input(header).unwrap_err();
    assert!(
        matches!(err, OobError::Rejected { request: r, status: Status::Fatal, .. } if r == request)
    );
    assert!(format!("{err}").ends_with(reason));
}

#[rstest]
#[case::unknown_type(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16], "request header: hdr.type 0 at offset 0 is not a known value")]
#[case::response_type(&[0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 16], "request header: hdr.type 6 at offset 0 is not a request type (CREATE, OPEN, CLOSE or SET_ATTR)")]
fn server_drops_what_it_cannot_frame(#[case] header: &[u8], #[case] text: &str) {
    let (_, mut server) = ready_pair();
    let err = server.handle_input(header).unwrap_err();
    assert!(matches!(err, OobError::Wire(_)));
    assert_eq!(format!("{err}"), text);
    assert_eq!(server.reject_response(), None);
    let errno = core::num::NonZeroU32::new(errno::EPROTO).unwrap();
    assert_eq!(Server::failure_word(errno), [71, 0, 0, 0]);
}

#[test]
fn server_call_order_is_enforced() {
    let mut server = Server::new(Limits::default());
    assert!(matches!(
        server.handle_input(&[0]),
        Err(OobError::WrongState {
            call: "handle_input",
            ..
        })
    ));
    assert!(matches!(
        server.respond_close(Status::Success),
        Err(OobError::WrongState { .. })
    ));
    server.startup_status(Ok(())).unwrap();
    assert!(server.startup_status(Ok(())).is_err());
    server_feed(&mut server, &request_bytes(true), &[1000]).unwrap();
    // A response is due: more input waits (nothing is no-op).
    assert_eq!(server.handle_input(&[]).unwrap(), (0, None));
    assert!(matches!(
        server.handle_input(&[0]),
        Err(OobError::WrongState { .. })
    ));
    assert!(matches!(
        server.respond_open(Status::Success, None),
        Err(OobError::WrongState {
            call: "respond_open",
            ..
        })
    ));
    // Invalid successful answers are refused and can be corrected.
    assert!(matches!(
        server.respond_create(Status::Success, None),
        Err(OobError::InvalidResponse { .. })
    ));
    assert!(matches!(
        server.respond_create(Status::Success, Some((ibc(4), None))),
        Err(OobError::BadResponse(crate::wire::oob::Error::TooLarge {
            field: "ibc.nlanes",
            ..
        }))
    ));
    assert!(matches!(
        server.respond_create(Status::Success, Some((ibc(3), Some(ext())))),
        Err(OobError::InvalidResponse { .. })
    ));
    assert!(matches!(
        server.respond_create(Status::Success, Some((IbcRepr { port: 0, ..ibc(3) }, None))),
        Err(OobError::BadResponse(_))
    ));
    let ok = server
        .respond_create(Status::Success, Some((ibc(3), None)))
        .unwrap();
    assert_eq!(ok.len(), 44);
    assert!(matches!(
        server.respond_create(Status::Success, Some((ibc(3), None))),
        Err(OobError::WrongState { .. })
    ));
}

#[test]
fn server_extension_rules_for_our_providers() {
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes: 2,
            provider: Provider::VERBS,
            buff_size: 0,
            attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap()
        .to_vec();
    server_feed(&mut server, &req, &[3]).unwrap();
    assert!(matches!(
        server.respond_create(Status::Success, Some((ibc(2), None))),
        Err(OobError::InvalidResponse { .. })
    ));
    let zero_secret = ExtRepr {
        secret: [0; 32],
        ..ext()
    };
    assert!(matches!(
        server.respond_create(Status::Success, Some((ibc(2), Some(zero_secret)))),
        Err(OobError::BadResponse(
            crate::wire::oob::Error::AllZero { .. }
        ))
    ));
    // A failed answer never carries the extension.
    let failed = server
        .respond_create(Status::Exists, Some((ibc(2), Some(ext()))))
        .unwrap()
        .to_vec();
    assert_eq!(failed.len(), 44);
    assert_eq!(
        client_feed(&mut client, &failed, &[5]).unwrap(),
        Some(ClientEvent::Failed {
            status: Status::Exists,
            request: MsgType::Create
        })
    );
    assert!(client.is_finished() && server.is_finished());
}

#[test]
fn failed_set_attr_keeps_the_pool_open_failed_open_ends() {
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_open(&OpenRequest {
            pool_size: 1 << 20,
            nlanes: 2,
            provider: Provider::LIBFABRIC_VERBS,
            buff_size: 8192,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap()
        .to_vec();
    server_feed(&mut server, &req, &[3]).unwrap();
    let a = server
        .respond_open(Status::Success, Some((ibc(1), PoolAttr::ZERO, None)))
        .unwrap()
        .to_vec();
    client_feed(&mut client, &a, &[100]).unwrap();
    let req = client.send_set_attr(&PoolAttr::ZERO).unwrap().to_vec();
    server_feed(&mut server, &req, &[3]).unwrap();
    let a = server.respond_set_attr(Status::NoAccess).unwrap().to_vec();
    assert_eq!(
        client_feed(&mut client, &a, &[1]).unwrap(),
        Some(ClientEvent::Failed {
            status: Status::NoAccess,
            request: MsgType::SetAttr
        })
    );
    assert!(client.is_established());
    assert_eq!(client.session(), Some((Provider::LIBFABRIC_VERBS, 1)));
    // A failed OPEN ends both sides.
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_open(&OpenRequest {
            pool_size: 1 << 20,
            nlanes: 2,
            provider: Provider::LIBFABRIC_VERBS,
            buff_size: 8192,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap()
        .to_vec();
    server_feed(&mut server, &req, &[3]).unwrap();
    let a = server.respond_open(Status::Busy, None).unwrap().to_vec();
    assert_eq!(a.len(), 148);
    assert_eq!(
        client_feed(&mut client, &a, &[1]).unwrap(),
        Some(ClientEvent::Failed {
            status: Status::Busy,
            request: MsgType::Open
        })
    );
    assert!(client.is_finished() && server.is_finished());
    assert_eq!(Status::Busy.errno(), errno::EBUSY);
}

#[test]
fn server_eof_rules() {
    // Before any request: fine.
    let (_, mut server) = ready_pair();
    assert!(server.handle_eof().is_ok());
    // In the middle of a request.
    let (_, mut server) = ready_pair();
    server_feed(&mut server, &request_bytes(true)[..20], &[20]).unwrap();
    assert_eq!(
        server.handle_eof(),
        Err(OobError::UnexpectedEof {
            during: "reading a request",
            got: 20,
            need: 159
        })
    );
    // With the pool open.
    let (_, mut server) = ready_pair();
    server_feed(&mut server, &request_bytes(true), &[200]).unwrap();
    server
        .respond_create(Status::Success, Some((ibc(3), None)))
        .unwrap();
    assert_eq!(
        server.handle_eof(),
        Err(OobError::Disconnected {
            during: "the pool is open"
        })
    );
}

#[test]
fn startup_failure_form() {
    let mut server = Server::new(Limits::default());
    let errno = core::num::NonZeroU32::new(errno::EACCES).unwrap();
    let word = server.startup_status(Err(errno)).unwrap();
    assert_eq!(word, [13, 0, 0, 0]);
    assert!(server.is_finished());
    let mut client = Client::new();
    // Split in two.
    assert_eq!(client.handle_input(&word[..3]).unwrap(), (3, None));
    let err = client.handle_input(&word[3..]).unwrap_err();
    assert_eq!(
        err,
        OobError::StartupFailed {
            errno: crate::wire::oob::Errno(13)
        }
    );
    assert_eq!(
        format!("{err}"),
        "rpmemd failed to start: errno 13 (EACCES: Permission denied)"
    );
    assert!(client.is_finished());
}

#[test]
fn client_eof_rules() {
    let mut client = Client::new();
    client.handle_input(&[0, 0]).unwrap();
    assert_eq!(
        client.handle_eof(),
        Err(OobError::UnexpectedEof {
            during: "waiting for the start-up status word",
            got: 2,
            need: 4
        })
    );
    // rpmemd's failure word instead of CREATE_RESP.
    let (mut client, _) = ready_pair();
    client
        .send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes: 1,
            provider: Provider::LIBFABRIC_SOCKETS,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap();
    assert_eq!(client.handle_input(&[71, 0, 0, 0]).unwrap(), (4, None));
    let err = client.handle_eof().unwrap_err();
    assert_eq!(
        err,
        OobError::RemoteFailure {
            errno: crate::wire::oob::Errno(71),
            during: "waiting for CREATE_RESP"
        }
    );
    assert_eq!(
        format!("{err}"),
        "rpmemd reported a failure, errno 71 (EPROTO: Protocol error), while waiting for CREATE_RESP"
    );
    // Cut in the middle of a response.
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes: 1,
            provider: Provider::LIBFABRIC_SOCKETS,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap()
        .to_vec();
    server_feed(&mut server, &req, &[64]).unwrap();
    let a = server
        .respond_create(Status::Success, Some((ibc(1), None)))
        .unwrap()
        .to_vec();
    client.handle_input(&a[..30]).unwrap();
    assert_eq!(
        client.handle_eof(),
        Err(OobError::UnexpectedEof {
            during: "waiting for CREATE_RESP",
            got: 30,
            need: 44
        })
    );
    // With the pool open; and after the session, fine.
    let (mut client, mut server) = ready_pair();
    let req = client
        .send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes: 1,
            provider: Provider::LIBFABRIC_SOCKETS,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap()
        .to_vec();
    server_feed(&mut server, &req, &[64]).unwrap();
    let a = server
        .respond_create(Status::Success, Some((ibc(1), None)))
        .unwrap()
        .to_vec();
    client_feed(&mut client, &a, &[64]).unwrap();
    // rpmemd's failure word while the pool is open (PMDK: monitor EPROTO).
    let err = client.handle_input(&[5, 0, 0, 0]).unwrap_err();
    assert_eq!(
        err,
        OobError::RemoteFailure {
            errno: crate::wire::oob::Errno(5),
            during: "the pool is open"
        }
    );
    assert!(client.is_finished());
}

#[test]
fn client_call_order_and_request_checks() {
    let mut client = Client::new();
    let req = CreateRequest {
        pool_size: 1 << 20,
        nlanes: 1,
        provider: Provider::LIBFABRIC_SOCKETS,
        buff_size: 8192,
        attr: PoolAttr::ZERO,
        pool_desc: PoolDesc::from_text("x").unwrap(),
    };
    assert_eq!(
        client.send_create(&req).unwrap_err(),
        OobError::WrongState {
            call: "send_create",
            state: "waiting for the start-up status word"
        }
    );
    client.handle_input(&[0; 4]).unwrap();
    assert!(matches!(
        client.send_close(0),
        Err(OobError::WrongState {
            call: "send_close",
            ..
        })
    ));
    assert!(matches!(
        client.send_set_attr(&PoolAttr::ZERO),
        Err(OobError::WrongState { .. })
    ));
    assert_eq!(
        format!(
            "{}",
            client
                .send_create(&CreateRequest {
                    provider: Provider(7),
                    ..req
                })
                .unwrap_err()
        ),
        "invalid request: CREATE: c.provider 7 at offset 28 is not a known value"
    );
    assert_eq!(
        format!(
            "{}",
            client
                .send_create(&CreateRequest { nlanes: 0, ..req })
                .unwrap_err()
        ),
        "invalid request: CREATE: c.nlanes 0 at offset 24 is below the minimum 1"
    );
    // Still ready after refused calls.
    let bytes = client.send_create(&req).unwrap();
    assert_eq!(bytes.len(), 150);
    assert!(matches!(
        client.send_open(&OpenRequest {
            pool_size: 1,
            nlanes: 1,
            provider: Provider::TCP,
            buff_size: 0,
            pool_desc: PoolDesc::from_text("y").unwrap(),
        }),
        Err(OobError::WrongState { .. })
    ));
}

fn created_client(provider: Provider, nlanes: u32) -> Client {
    let (mut client, _) = ready_pair();
    client
        .send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes,
            provider,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: PoolDesc::from_text("x").unwrap(),
        })
        .unwrap();
    client
}

fn create_resp(status: Status, ibc: IbcRepr, ext: Option<ExtRepr>) -> Vec<u8> {
    let r = CreateRespRepr { status, ibc, ext };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

/// librpmem's checks of a CREATE_RESP, and ours.
#[rstest]
#[case::wrong_type(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be32(b, 4, 6), "CREATE_RESP: hdr.type 6 at offset 4 should be 2")]
#[case::wrong_size(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be64(b, 8, 1 << 33), "CREATE_RESP: hdr.size 8589934592 at offset 8 should be 44")]
#[case::bad_status(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be32(b, 0, 99), "CREATE_RESP: hdr.status 99 at offset 0 is not a known value")]
#[case::port_zero(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be32(b, 16, 0), "CREATE_RESP: ibc.port 0 at offset 16 is below the minimum 1")]
#[case::port_big(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be32(b, 16, 65536), "CREATE_RESP: ibc.port 65536 at offset 16 exceeds the limit 65535")]
#[case::persist_method(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| be32(b, 20, 0), "CREATE_RESP: ibc.persist_method 0 at offset 20 is not a known value")]
#[case::more_lanes(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| b[40] = 4, "CREATE_RESP: ibc.nlanes 4 at offset 40 exceeds the limit 3")]
#[case::no_lanes(Provider::LIBFABRIC_SOCKETS, |b: &mut Vec<u8>| b[40] = 0, "CREATE_RESP: ibc.nlanes 0 at offset 40 is below the minimum 1")]
#[case::trailing_ext_for_pmdk(Provider::LIBFABRIC_VERBS, |b: &mut Vec<u8>| { be64(b, 8, 108); b.extend_from_slice(&[0; 64]); }, "CREATE_RESP: hdr.size 108 at offset 8 should be 44")]
#[case::missing_ext(Provider::TCP, |_: &mut Vec<u8>| {}, "CREATE_RESP: hdr.size 44 at offset 8 should be 108")]
#[case::zero_secret(Provider::TCP, |b: &mut Vec<u8>| { be64(b, 8, 108); let mut e = vec![0u8; 64]; ExtRepr { secret: [0; 32], flags: 0, max_inline: 0 }.emit(&mut e).unwrap(); b.extend_from_slice(&e); }, "CREATE_RESP: ext.secret at offset 52 is all zero")]
fn client_checks_create_resp(
    #[case] provider: Provider,
    #[case] mutate: Mutate,
    #[case] text: &str,
) {
    let mut client = created_client(provider, 3);
    let mut b = create_resp(Status::Success, ibc(3), None);
    mutate(&mut b);
    let err = client_feed(&mut client, &b, &[1, 5, 13]).unwrap_err();
    assert_eq!(format!("{err}"), text);
    assert!(client.is_finished());
    assert!(matches!(
        client.handle_input(&[0]),
        Err(OobError::WrongState { .. })
    ));
    assert_eq!(client.handle_input(&[]).unwrap(), (0, None));
}

#[test]
fn client_judges_the_header_before_waiting_for_the_body() {
    let mut client = created_client(Provider::LIBFABRIC_SOCKETS, 3);
    let mut hdr = create_resp(Status::Success, ibc(3), None);
    be64(&mut hdr, 8, u64::MAX);
    hdr.truncate(16);
    assert!(matches!(
        client.handle_input(&hdr),
        Err(OobError::Wire(crate::wire::oob::Error::Mismatch {
            field: "hdr.size",
            ..
        }))
    ));
}

#[test]
fn client_reports_failed_status_after_the_whole_message() {
    let mut client = created_client(Provider::TCP, 3);
    let b = create_resp(Status::NoExist, IbcRepr::ZERO, None);
    assert_eq!(client.handle_input(&b[..43]).unwrap(), (43, None));
    assert_eq!(
        client.handle_input(&b[43..]).unwrap(),
        (
            1,
            Some(ClientEvent::Failed {
                status: Status::NoExist,
                request: MsgType::Create
            })
        )
    );
    assert_eq!(Status::NoExist.errno(), errno::ENOENT);
}

#[test]
fn client_reports_unexpected_data() {
    let (mut client, _) = ready_pair();
    let err = client.handle_input(&[0, 0, 0, 9]).unwrap_err();
    assert_eq!(
        err,
        OobError::UnexpectedData {
            bytes: [0, 0, 0, 9],
            during: "no pool is open yet"
        }
    );
}
