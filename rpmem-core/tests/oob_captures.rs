//! The out-of-band sessions captured between PMDK 1.12.1's librpmem and
//! rpmemd (`tests/vectors/pmdk-1.12.1/wire/`), byte for byte.
//!
//! Every message decodes to the values annotated in `decoded.txt` (written
//! out below), re-encodes to the same bytes, and both machines reproduce
//! the sessions: the server fed the client's bytes (split anywhere) answers
//! with exactly rpmemd's bytes, and the client driven by rpmemd's bytes
//! sends exactly librpmem's.

use std::path::PathBuf;

use rpmem_core::oob::{
    Client, ClientEvent, CreateRequest, CreateResponse, Limits, OpenRequest, OpenResponse, Server,
    ServerEvent,
};
use rpmem_core::wire::oob::{
    CloseRepr, CloseRespRepr, CommonRepr, CreateRepr, CreateRespRepr, IbcRepr, MsgType, OpenRepr,
    OpenRespRepr, PersistMethod, PoolDesc, Provider, Request, Response, SetAttrRepr,
    SetAttrRespRepr, Status, StatusWord, StatusWordRepr,
};
use rpmem_core::PoolAttr;
use rstest::rstest;

fn capture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "vectors",
        "pmdk-1.12.1",
        "wire",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn seq(start: u8) -> [u8; 16] {
    std::array::from_fn(|i| start + i as u8)
}

/// `sig=b'RPMEMCYC' major=0x1020304 compat=0x11 incompat=0x22 ro_compat=0x33
/// poolset_uuid=10..1f uuid=20..2f next_uuid=30..3f prev_uuid=40..4f
/// user_flags=50..5f`
fn attr_cyc() -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMCYC",
        major: 0x0102_0304,
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

/// The same with `sig=b'RPMEMSET' major=0xa0b0c0d`.
fn attr_set() -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMSET",
        major: 0x0a0b_0c0d,
        ..attr_cyc()
    }
}

/// `proto=0.1 pool_size=… nlanes=… provider=sockets buff_size=8192`
fn common(pool_size: u64, nlanes: u32) -> CommonRepr {
    CommonRepr {
        major: 0,
        minor: 1,
        pool_size,
        nlanes,
        provider: Provider::LIBFABRIC_SOCKETS,
        buff_size: 8192,
    }
}

fn desc(s: &'static str) -> PoolDesc<'static> {
    PoolDesc::from_text(s).expect("valid descriptor")
}

/// `ibc: port=… persist_method=GPSPM rkey=0x1 raddr=… nlanes=…`
fn ibc(port: u32, raddr: u64, nlanes: u32) -> IbcRepr {
    IbcRepr {
        port,
        persist_method: PersistMethod::GPSPM,
        rkey: 1,
        raddr,
        nlanes,
    }
}

fn create(pool_size: u64, attr: PoolAttr, d: &'static str) -> Request<'static> {
    Request::Create(CreateRepr {
        common: common(pool_size, 3),
        attr,
        pool_desc: desc(d),
    })
}

fn open(d: &'static str) -> Request<'static> {
    Request::Open(OpenRepr {
        common: common(1 << 24, 2),
        pool_desc: desc(d),
    })
}

const CLOSE: Request<'static> = Request::Close(CloseRepr { flags: 0 });

fn ok_create(i: IbcRepr) -> Response {
    Response::Create(CreateRespRepr {
        status: Status::Success,
        ibc: i,
        ext: None,
    })
}

fn failed_create(status: Status) -> Response {
    Response::Create(CreateRespRepr {
        status,
        ibc: IbcRepr::ZERO,
        ext: None,
    })
}

fn ok_open(i: IbcRepr, attr: PoolAttr) -> Response {
    Response::Open(OpenRespRepr {
        status: Status::Success,
        ibc: i,
        attr,
        ext: None,
    })
}

const CLOSE_OK: Response = Response::Close(CloseRespRepr {
    status: Status::Success,
});

/// One captured session: the requests in order (with their offsets in the
/// c2s capture) and rpmemd's answers (after its status word).
struct Session {
    requests: Vec<(usize, Request<'static>)>,
    responses: Vec<(usize, Response)>,
}

/// Every capture with a session, values from `decoded.txt`.
fn session(name: &str) -> Session {
    match name {
        "session1_create_setattr_close" => Session {
            requests: vec![
                (0, create(16_777_216, attr_cyc(), "remote.set")),
                (159, Request::SetAttr(SetAttrRepr { attr: attr_set() })),
                (275, CLOSE),
            ],
            responses: vec![
                (4, ok_create(ibc(36071, 0x7fd5_7220_0000, 3))),
                (
                    48,
                    Response::SetAttr(SetAttrRespRepr {
                        status: Status::Success,
                    }),
                ),
                (64, CLOSE_OK),
            ],
        },
        "session2_open_close" => Session {
            requests: vec![(0, open("remote.set")), (55, CLOSE)],
            responses: vec![
                (4, ok_open(ibc(41567, 0x7f10_38e0_0000, 2), attr_set())),
                (152, CLOSE_OK),
            ],
        },
        "session4_nohdrs_create_close" => Session {
            requests: vec![
                (0, create(16_777_216, PoolAttr::ZERO, "nohdrs.set")),
                (159, CLOSE),
            ],
            responses: vec![
                (4, ok_create(ibc(37149, 0x7f3d_1340_0000, 3))),
                (48, CLOSE_OK),
            ],
        },
        "session5_nohdrs_open_close" => Session {
            requests: vec![(0, open("nohdrs.set")), (55, CLOSE)],
            responses: vec![
                (4, ok_open(ibc(38797, 0x7ff7_3360_0000, 2), PoolAttr::ZERO)),
                (152, CLOSE_OK),
            ],
        },
        "err1_create_enoent" => Session {
            requests: vec![(0, create(16_777_216, attr_cyc(), "nope.set"))],
            responses: vec![(4, failed_create(Status::NoExist))],
        },
        "err2_create_too_big" => Session {
            requests: vec![(0, create(536_870_912, attr_cyc(), "remote.set"))],
            responses: vec![(4, failed_create(Status::BadSize))],
        },
        "err3_create_exists" => Session {
            requests: vec![(0, create(16_777_216, attr_cyc(), "remote.set"))],
            responses: vec![(4, failed_create(Status::Exists))],
        },
        other => panic!("no session {other}"),
    }
}

const SESSIONS: [&str; 7] = [
    "session1_create_setattr_close",
    "session2_open_close",
    "session4_nohdrs_create_close",
    "session5_nohdrs_open_close",
    "err1_create_enoent",
    "err2_create_too_big",
    "err3_create_exists",
];

#[rstest]
#[case::session1("session1_create_setattr_close", 3, 291, 80)]
#[case::session2("session2_open_close", 2, 71, 168)]
#[case::session4("session4_nohdrs_create_close", 2, 175, 64)]
#[case::session5("session5_nohdrs_open_close", 2, 71, 168)]
#[case::err1("err1_create_enoent", 1, 157, 48)]
#[case::err2("err2_create_too_big", 1, 159, 48)]
#[case::err3("err3_create_exists", 1, 159, 48)]
fn captures_decode_and_reencode(
    #[case] name: &str,
    #[case] nrequests: usize,
    #[case] c2s_len: usize,
    #[case] s2c_len: usize,
) {
    let c2s = capture(&format!("{name}.c2s.bin"));
    let s2c = capture(&format!("{name}.s2c.bin"));
    assert_eq!((c2s.len(), s2c.len()), (c2s_len, s2c_len));
    let expected = session(name);
    assert_eq!(expected.requests.len(), nrequests);

    // c2s: the requests, back to back.
    let mut at = 0;
    for (offset, want) in &expected.requests {
        assert_eq!(at, *offset, "{name}: request offset");
        let got = Request::parse(&c2s[at..]).unwrap_or_else(|e| panic!("{name} +{at}: {e}"));
        assert_eq!(&got, want, "{name} +{at}");
        let mut out = vec![0u8; got.buffer_len()];
        assert_eq!(got.emit(&mut out).unwrap(), out.len());
        assert_eq!(out, &c2s[at..at + out.len()], "{name} +{at}: re-encoding");
        at += out.len();
    }
    assert_eq!(at, c2s.len(), "{name}: nothing after the last request");

    // s2c: the status word, then the answers.
    let word = StatusWordRepr::parse(&StatusWord::new_checked(&s2c).unwrap());
    assert_eq!(word, StatusWordRepr::READY);
    assert_eq!(word.to_bytes(), s2c[..4]);
    let mut at = 4;
    for (offset, want) in &expected.responses {
        assert_eq!(at, *offset, "{name}: response offset");
        let got = Response::parse(&s2c[at..], Provider::LIBFABRIC_SOCKETS)
            .unwrap_or_else(|e| panic!("{name} +{at}: {e}"));
        assert_eq!(&got, want, "{name} +{at}");
        let mut out = vec![0u8; got.buffer_len()];
        assert_eq!(got.emit(&mut out).unwrap(), out.len());
        assert_eq!(out, &s2c[at..at + out.len()], "{name} +{at}: re-encoding");
        at += out.len();
    }
    assert_eq!(at, s2c.len(), "{name}: nothing after the last response");
}

#[rstest]
#[case::session3("session3_remove")]
#[case::session6("session6_nohdrs_remove")]
fn remove_sessions_send_nothing(#[case] name: &str) {
    // `rpmemd --remove` answers with its exit status only.
    assert!(capture(&format!("{name}.c2s.bin")).is_empty());
    assert!(capture(&format!("{name}.s2c.bin")).is_empty());
}

/// Piece sizes to cut a byte stream into: one byte at a time, all at once,
/// and a few pseudo-random patterns (fixed seeds, so failures replay).
fn split_plans() -> Vec<Vec<usize>> {
    let mut plans = vec![vec![1], vec![usize::MAX]];
    for seed in [1u64, 7, 42, 1234, 0xdead_beef] {
        let mut x = seed;
        let plan = (0..32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1 + (x % 23) as usize
            })
            .collect();
        plans.push(plan);
    }
    plans
}

/// Cuts `bytes` into pieces following `plan` (cycled).
fn pieces<'a>(bytes: &'a [u8], plan: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = plan[i % plan.len()].min(bytes.len() - at);
        out.push(&bytes[at..at + n]);
        at += n;
        i += 1;
    }
    out
}

/// The answer the server gives to a request, taken from the capture.
fn respond(server: &mut Server, want: &Response) -> Vec<u8> {
    match *want {
        Response::Create(r) if r.status.is_success() => server
            .respond_create(r.status, Some((r.ibc, r.ext)))
            .unwrap()
            .to_vec(),
        Response::Create(r) => server.respond_create(r.status, None).unwrap().to_vec(),
        Response::Open(r) => server
            .respond_open(r.status, Some((r.ibc, r.attr, r.ext)))
            .unwrap()
            .to_vec(),
        Response::SetAttr(r) => server.respond_set_attr(r.status).unwrap().to_vec(),
        Response::Close(r) => server.respond_close(r.status).unwrap().to_vec(),
    }
}

/// The server machine, fed librpmem's bytes cut every way, sees the
/// captured requests and answers with exactly rpmemd's bytes.
#[rstest]
fn server_reproduces_rpmemd(#[values(0, 1, 2, 3, 4, 5, 6)] which: usize) {
    let name = SESSIONS[which];
    let c2s = capture(&format!("{name}.c2s.bin"));
    let s2c = capture(&format!("{name}.s2c.bin"));
    let expected = session(name);
    for plan in split_plans() {
        let mut server = Server::new(Limits::default());
        let mut out = server.startup_status(Ok(())).unwrap().to_vec();
        let mut pending: Vec<u8> = Vec::new();
        let mut next = 0;
        for piece in pieces(&c2s, &plan) {
            pending.extend_from_slice(piece);
            loop {
                let (n, event) = server.handle_input(&pending).unwrap();
                let seen = event.map(|e| match e {
                    ServerEvent::Create {
                        common,
                        attr,
                        pool_desc,
                    } => {
                        assert_eq!(
                            Request::Create(CreateRepr {
                                common,
                                attr,
                                pool_desc
                            }),
                            expected.requests[next].1
                        );
                    }
                    ServerEvent::Open { common, pool_desc } => {
                        assert_eq!(
                            Request::Open(OpenRepr { common, pool_desc }),
                            expected.requests[next].1
                        );
                    }
                    ServerEvent::SetAttr { attr } => {
                        assert_eq!(
                            Request::SetAttr(SetAttrRepr { attr }),
                            expected.requests[next].1
                        );
                    }
                    ServerEvent::Close { flags } => {
                        assert_eq!(
                            Request::Close(CloseRepr { flags }),
                            expected.requests[next].1
                        );
                    }
                });
                pending.drain(..n);
                if seen.is_some() {
                    out.extend(respond(&mut server, &expected.responses[next].1));
                    next += 1;
                } else if n == 0 {
                    break;
                }
            }
        }
        assert_eq!(next, expected.requests.len(), "{name}: all requests seen");
        assert_eq!(out, s2c, "{name} {plan:?}: rpmemd's bytes");
        assert!(server.is_finished(), "{name}: session over");
        assert!(server.handle_eof().is_ok());
    }
}

/// The request the client sends for a captured one.
fn send(client: &mut Client, want: &Request<'static>) -> Vec<u8> {
    match *want {
        Request::Create(r) => client
            .send_create(&CreateRequest {
                pool_size: r.common.pool_size,
                nlanes: r.common.nlanes,
                provider: r.common.provider,
                buff_size: r.common.buff_size,
                attr: r.attr,
                pool_desc: r.pool_desc,
            })
            .unwrap()
            .to_vec(),
        Request::Open(r) => client
            .send_open(&OpenRequest {
                pool_size: r.common.pool_size,
                nlanes: r.common.nlanes,
                provider: r.common.provider,
                buff_size: r.common.buff_size,
                pool_desc: r.pool_desc,
            })
            .unwrap()
            .to_vec(),
        Request::SetAttr(r) => client.send_set_attr(&r.attr).unwrap().to_vec(),
        Request::Close(r) => client.send_close(r.flags).unwrap().to_vec(),
    }
}

/// The event the client reports for a captured response.
fn event_for(want: &Response, request: MsgType) -> ClientEvent {
    if !want.status().is_success() {
        return ClientEvent::Failed {
            status: want.status(),
            request,
        };
    }
    match *want {
        Response::Create(r) => ClientEvent::Created(CreateResponse {
            ibc: r.ibc,
            ext: r.ext,
        }),
        Response::Open(r) => ClientEvent::Opened(OpenResponse {
            ibc: r.ibc,
            attr: r.attr,
            ext: r.ext,
        }),
        Response::SetAttr(_) => ClientEvent::AttrSet,
        Response::Close(_) => ClientEvent::Closed,
    }
}

/// The client machine, fed rpmemd's bytes cut every way, reports the
/// captured answers and sends exactly librpmem's bytes.
#[rstest]
fn client_reproduces_librpmem(#[values(0, 1, 2, 3, 4, 5, 6)] which: usize) {
    let name = SESSIONS[which];
    let c2s = capture(&format!("{name}.c2s.bin"));
    let s2c = capture(&format!("{name}.s2c.bin"));
    let expected = session(name);
    for plan in split_plans() {
        let mut client = Client::new();
        let mut sent: Vec<u8> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut next = 0;
        let mut events = Vec::new();
        for piece in pieces(&s2c, &plan) {
            pending.extend_from_slice(piece);
            loop {
                let (n, event) = client.handle_input(&pending).unwrap();
                pending.drain(..n);
                match event {
                    Some(ClientEvent::Ready) => {
                        sent.extend(send(&mut client, &expected.requests[0].1));
                    }
                    Some(e) => {
                        let req = expected.requests[next].1.msg_type();
                        assert_eq!(e, event_for(&expected.responses[next].1, req), "{name}");
                        events.push(e);
                        next += 1;
                        if let Some((_, r)) = expected.requests.get(next) {
                            sent.extend(send(&mut client, r));
                        }
                    }
                    None if n == 0 => break,
                    None => {}
                }
            }
        }
        assert_eq!(next, expected.responses.len(), "{name}: all answers seen");
        assert_eq!(sent, c2s, "{name} {plan:?}: librpmem's bytes");
        assert!(client.is_finished(), "{name}: session over");
        assert!(client.handle_eof().is_ok());
    }
}

/// The three refused CREATEs give librpmem's errno.
#[rstest]
#[case::enoent("err1_create_enoent", Status::NoExist, 2)]
#[case::too_big("err2_create_too_big", Status::BadSize, 27)]
#[case::exists("err3_create_exists", Status::Exists, 17)]
fn error_captures_give_the_status(#[case] name: &str, #[case] status: Status, #[case] errno: u32) {
    let s2c = capture(&format!("{name}.s2c.bin"));
    let r = Response::parse(&s2c[4..], Provider::LIBFABRIC_SOCKETS).unwrap();
    assert_eq!(r.status(), status);
    assert_eq!(status.errno(), errno);
    let mut client = Client::new();
    assert_eq!(
        client.handle_input(&s2c).unwrap(),
        (4, Some(ClientEvent::Ready))
    );
    send(&mut client, &session(name).requests[0].1);
    assert_eq!(
        client.handle_input(&s2c[4..]).unwrap(),
        (
            44,
            Some(ClientEvent::Failed {
                status,
                request: MsgType::Create
            })
        )
    );
}

/// The three host-order fields sit where decoded.txt says, little-endian.
#[test]
fn host_order_quirks() {
    let s2c = capture("session1_create_setattr_close.s2c.bin");
    assert_eq!(&s2c[0..4], &[0, 0, 0, 0]); // status word
    assert_eq!(&s2c[4 + 40..4 + 44], &[3, 0, 0, 0]); // ibc.nlanes = 3, LE
    let c2s = capture("session1_create_setattr_close.c2s.bin");
    let mut out = [0u8; 16];
    CloseRepr { flags: 1 }.emit(&mut out).unwrap();
    assert_eq!(&out[12..], &[1, 0, 0, 0]); // close flags, LE
    assert_eq!(&c2s[275 + 12..], &[0, 0, 0, 0]);
}
