//! Checks written for the mutants that cargo-mutants found surviving in the
//! TCP lane machines, `persist/stream_target.rs`, `persist/stream.rs` and
//! `persist/stream_initiator.rs` (docs/simulation.md, "cargo-mutants", the
//! TCP lane machines): each test below fails under at least one of them.
//! The machines are driven here by hand, one step at a time, through the
//! public API of `rpmem_core::persist`, so that each step's exact answer
//! can be checked (the randomized `stream_lane` suite checks what a whole
//! run leaves in the pool, which many of these mutants do not change).

use rpmem_core::flush::{FlushMode, CACHE_LINE};
use rpmem_core::persist::{
    BodyPiece, CallError, CallKind, Chunk, ClientError, FrameBody, HelloAccepted, HelloReject,
    LaneParams, Method, Next, Op, OpKind, PersistMode, PersistMsgRepr, Placement, ReadDest,
    ReadSink, ServerError, ServerFrame, ServerStep, StreamClient, StreamInitiator, StreamLaneError,
    StreamServer, StreamTarget, Target, TargetParams, TargetStep, ANSWER_LEN,
};
use rpmem_core::seal::{
    ClientHandshake, LaneMode, SealError, HELLO_LEN, PROOF_LEN, SERVER_HELLO_LEN,
};
use rpmem_core::wire::tcp::{
    Error as TcpError, Frame, FrameKind, FrameRepr, Hello, HelloAckRepr, HelloRepr, HelloStatus,
    FRAME_HEADER_LEN, HELLO_ACK_LEN, VERSION,
};

const SECRET: [u8; 32] = [0x5a; 32];
const POOL: u64 = 1 << 20;
const LINE_MASK: u64 = !(CACHE_LINE - 1);

fn target() -> Target {
    Target::new(TargetParams {
        nlanes: 2,
        pool_size: POOL,
        min_offset: 0,
        inline_max: 4096,
        flush_mode: FlushMode::Cpu,
        method: Method::Gpspm,
    })
    .expect("valid target parameters")
}

fn machine(mode: LaneMode, stream: bool, piece: u64) -> StreamTarget {
    StreamTarget::new(target(), SECRET, [0x11; 32], mode, stream, piece, true)
}

/// Hands `bytes`, the first of `due` bytes, to the machine `step` bytes
/// at a time, checking before each hand-in that it asks for exactly the
/// bytes still due.
fn feed_in_pieces(l: &mut StreamTarget, bytes: &[u8], due: usize, step: usize) {
    let mut at = 0;
    while at < bytes.len() {
        assert_eq!(
            l.poll(),
            Next::Recv { len: due - at },
            "after {at} of {due} bytes"
        );
        let n = step.min(bytes.len() - at);
        l.handle_bytes(&bytes[at..at + n])
            .unwrap_or_else(|e| panic!("bytes {at}..{}: {e}", at + n));
        at += n;
    }
}

/// The whole handshake for `lane`, the hello and the proof handed in
/// `step` bytes at a time, up to the sent hello answer.
fn connect(l: &mut StreamTarget, lane: u32, step: usize) {
    let c = ClientHandshake::new(&SECRET, lane, l.mode(), [0x22; 32]);
    assert!(!l.between_frames(), "no frame before the hello");
    feed_in_pieces(l, c.hello(), HELLO_LEN, step);
    let Next::Send { bytes, hold } = l.poll() else {
        panic!("server hello expected, got {:?}", l.poll());
    };
    assert!(!hold);
    let sh: [u8; SERVER_HELLO_LEN] = bytes.try_into().expect("a whole server hello");
    l.on_sent();
    let (proof, _) = c.on_server_hello(&sh).expect("the server knows the secret");
    assert_eq!(l.lane(), None, "no lane before the proof");
    assert!(!l.between_frames(), "no frame before the proof");
    feed_in_pieces(l, &proof, PROOF_LEN, step);
    assert_eq!(l.poll(), Next::Claim { lane });
    l.on_claim(Ok(())).expect("claim reported in its state");
    assert!(matches!(l.poll(), Next::Send { bytes, hold: false } if bytes.len() == HELLO_ACK_LEN));
    l.on_sent();
    assert!(l.between_frames());
}

fn frame(kind: FrameKind, lane: u32, offset: u64, len: u64) -> [u8; FRAME_HEADER_LEN] {
    FrameRepr {
        kind,
        lane,
        req_id: 7,
        offset,
        len,
    }
    .to_bytes()
}

fn flush_write(lane: u32, offset: u64, size: u64) -> [u8; 24] {
    PersistMsgRepr {
        mode: PersistMode::FlushWrite,
        completion: false,
        lane,
        offset,
        size,
    }
    .to_bytes()
}

/// Drives a WRITE body of `[offset, offset + len)` through the machine
/// (pieces and write-backs), returning the pieces it handed out.
fn write_body(l: &mut StreamTarget, lane: u32, offset: u64, len: u64) -> Vec<BodyPiece> {
    l.handle_bytes(&frame(FrameKind::Write, lane, offset, len))
        .expect("a valid WRITE header");
    assert_eq!(l.poll(), Next::FlushHeld);
    l.on_sent();
    let mut pieces = Vec::new();
    for _ in 0..100_000 {
        match l.poll() {
            Next::Body(p) => {
                assert!(!l.between_frames(), "inside a body: {p:?}");
                pieces.push(p);
                l.on_stored().expect("a piece was due");
            }
            Next::WriteBack { .. } => {
                assert!(!l.between_frames(), "the write-back ends the body");
                l.on_written_back();
            }
            Next::Recv {
                len: FRAME_HEADER_LEN,
            } => return pieces,
            other => panic!("body of {offset}+{len}: unexpected {other:?}"),
        }
    }
    panic!("body of {offset}+{len} never ended");
}

/// The flush range of the plan for a `FLUSH_WRITE` of `[offset, offset +
/// size)`, which the test then answers.
fn flush_range(l: &mut StreamTarget, lane: u32, offset: u64, size: u64) -> (u64, u64) {
    let msg = flush_write(lane, offset, size);
    l.handle_bytes(&frame(FrameKind::Send, lane, 0, msg.len() as u64))
        .expect("a valid SEND header");
    assert_eq!(l.poll(), Next::Msg { len: msg.len() });
    assert!(!l.between_frames(), "the message is due");
    let plan = l.on_msg(&msg).expect("a valid FLUSH_WRITE");
    assert_eq!(l.poll(), Next::Closed, "nothing to do while the plan runs");
    assert!(!l.between_frames(), "the answer is due");
    let range = plan
        .steps()
        .iter()
        .find_map(|s| match *s {
            TargetStep::Flush { offset, len, .. } => Some((offset, len)),
            _ => None,
        })
        .expect("a FLUSH_WRITE plan flushes");
    let resp = plan.response();
    l.on_answer(resp, false).expect("the answer was due");
    let Next::Send { bytes, .. } = l.poll() else {
        panic!("the answer goes out, got {:?}", l.poll());
    };
    assert_eq!(bytes.len(), ANSWER_LEN);
    l.on_sent();
    assert!(l.between_frames());
    range
}

/// `lane()` names the lane of the accepted hello (lane 0 here, lane 1 in
/// the unit tests), `mode()` the mode the machine was made for.
#[test]
fn lane_and_mode_are_those_of_the_connection() {
    for mode in [LaneMode::Sealed, LaneMode::Plaintext] {
        for lane in [0u32, 1] {
            let mut l = machine(mode, true, 4096);
            assert_eq!(l.mode(), mode);
            assert_eq!(l.lane(), None);
            connect(&mut l, lane, HELLO_LEN);
            assert_eq!(l.lane(), Some(lane), "{mode:?}");
            assert_eq!(l.mode(), mode);
        }
    }
}

/// The hello, the proof and frame headers arrive in pieces of any size:
/// the machine asks for exactly the rest each time and acts on the whole.
#[test]
fn the_handshake_and_frame_headers_are_reassembled_from_pieces() {
    for step in [1usize, 5, 13, PROOF_LEN - 1] {
        let mut l = machine(LaneMode::Plaintext, true, 4096);
        connect(&mut l, 1, step);
        assert_eq!(l.lane(), Some(1));
        // A READ_REQ header in pieces, then its answer.
        let h = frame(FrameKind::ReadReq, 1, 4096, 100);
        feed_in_pieces(&mut l, &h[..FRAME_HEADER_LEN - 1], FRAME_HEADER_LEN, step);
        assert!(!l.between_frames(), "a header is half-read");
        assert_eq!(l.poll(), Next::Recv { len: 1 });
        l.handle_bytes(&h[FRAME_HEADER_LEN - 1..]).unwrap();
        assert_eq!(l.poll(), Next::FlushHeld);
        l.on_sent();
        let Next::SendPool {
            header,
            offset,
            len,
        } = l.poll()
        else {
            panic!("READ_RESP expected, got {:?}", l.poll());
        };
        assert_eq!((offset, len), (4096, 100));
        assert_eq!(
            header,
            frame(FrameKind::ReadResp, 1, 4096, 100),
            "the answer repeats the request's fields"
        );
        l.on_sent();
        assert!(l.between_frames());
    }
}

/// Without streaming a body is one plain piece; with it, the whole lines
/// of a piece are named and the piece is not plain.
#[test]
fn plain_and_streamed_pieces() {
    let mut l = machine(LaneMode::Plaintext, false, 4096);
    connect(&mut l, 0, HELLO_LEN);
    let pieces = write_body(&mut l, 0, 4100, 9000);
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    let p = pieces[0];
    assert_eq!((p.offset, p.len), (4100, 9000));
    assert!(p.is_plain(), "{p:?}");

    let mut l = machine(LaneMode::Plaintext, true, 4096);
    connect(&mut l, 0, HELLO_LEN);
    let pieces = write_body(&mut l, 0, 4096, 256);
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    let p = pieces[0];
    assert_eq!((p.whole_from, p.whole_to), (4096, 4096 + 256));
    assert!(!p.is_plain(), "{p:?}");
    // A body inside one line has no whole line: plain.
    let pieces = write_body(&mut l, 0, 4100, 10);
    assert!(pieces.iter().all(BodyPiece::is_plain), "{pieces:?}");
}

/// What a streamed WRITE body leaves for the flush of the next
/// `FLUSH_WRITE`: every line from the body's first up to the end of its
/// last whole line went to memory (streamed, or written back after its
/// bytes were stored), so a flush of `[offset, offset + len + 4096)` starts
/// at the end of the body's last whole line; when the body ends inside its
/// first line, nothing is skipped. Without streaming nothing is ever
/// skipped. The exact start is checked: skipping too little costs only
/// time, which `stream_lane`'s durability model cannot see.
#[test]
fn a_streamed_body_lets_the_next_flush_skip_exactly_its_lines() {
    let bodies = [
        (0u64, 64u64),
        (0, 63),
        (0, 65),
        (64, 64),
        (64, 8192),
        (128, 4096 + 64),
        (3, 10),
        (3, 61),
        (3, 125),
        (60, 200),
        (60, 4),
        (60, 3),
        (100, 0),
        (4096 + 7, 150_000),
        (192, 100_000),
    ];
    for stream in [true, false] {
        for piece in [64u64, 192, 4096] {
            for &(offset, len) in &bodies {
                let mut l = machine(LaneMode::Plaintext, stream, piece);
                connect(&mut l, 0, HELLO_LEN);
                let pieces = write_body(&mut l, 0, offset, len);
                let stored: u64 = pieces.iter().map(|p| p.len).sum();
                assert_eq!(stored, len, "{offset}+{len}: {pieces:?}");
                let end = offset + len;
                let size = len + 4096;
                let whole_end = end & LINE_MASK;
                let expect = if stream && len > 0 && whole_end > offset & LINE_MASK {
                    whole_end
                } else {
                    offset
                };
                assert_eq!(
                    flush_range(&mut l, 0, offset, size),
                    (expect, offset + size - expect),
                    "stream {stream} piece {piece} body {offset}+{len}"
                );
                // A second flush right after skips the same lines: nothing
                // stored into them since.
                assert_eq!(
                    flush_range(&mut l, 0, offset, size),
                    (expect, offset + size - expect),
                    "stream {stream} piece {piece} body {offset}+{len}, again"
                );
            }
        }
    }
}

// ---- persist/stream.rs: StreamClient and StreamServer on their own ----

fn parse_frame(bytes: &[u8]) -> FrameRepr {
    FrameRepr::parse(&Frame::new_checked(bytes).expect("32 bytes")).expect("a valid frame")
}

fn server_frame(kind: FrameKind, lane: u32, req_id: u64, offset: u64, len: u64) -> [u8; 32] {
    FrameRepr {
        kind,
        lane,
        req_id,
        offset,
        len,
    }
    .to_bytes()
}

/// The version-1 hello: what the client sends, what the server accepts,
/// and the answer each refusal gets (none for bytes that are not a hello).
#[test]
fn the_v1_hello_is_checked_and_each_refusal_answered() {
    let c = StreamClient::new(3);
    assert_eq!(c.lane(), 3);
    for lane in [0u32, 1] {
        let c = StreamClient::new(lane);
        assert_eq!(c.lane(), lane);
        let hello = c.hello(&SECRET);
        let repr = HelloRepr::parse(&Hello::new_checked(&hello[..]).unwrap()).unwrap();
        assert!(
            repr == HelloRepr {
                version: VERSION,
                lane,
                secret: SECRET
            },
            "the hello names version 1, lane {lane} and the secret"
        );
        let mut s = StreamServer::new(target());
        assert_eq!(s.nlanes(), 2);
        assert_eq!(s.lane(), None);
        let ok = HelloAckRepr {
            status: HelloStatus::Ok,
        }
        .to_bytes();
        assert_eq!(
            s.on_hello(&hello, &SECRET),
            Ok(HelloAccepted { lane, ack: ok })
        );
        assert_eq!(s.lane(), Some(lane));
        assert_eq!(c.on_hello_ack(&ok), Ok(()));
        // A second hello closes the connection.
        assert_eq!(s.on_hello(&hello, &SECRET), Err(ServerError::HelloAgain));
        assert_eq!(s.lane(), None);
        assert_eq!(s.on_hello(&hello, &SECRET), Err(ServerError::Closed));
    }

    let hello = |version: u16, lane: u32, secret: [u8; 32]| {
        HelloRepr {
            version,
            lane,
            secret,
        }
        .to_bytes()
    };
    let mut last_differs = SECRET;
    last_differs[31] ^= 1;
    let mut first_differs = SECRET;
    first_differs[0] ^= 0x80;
    let mut bad_magic = hello(VERSION, 0, SECRET);
    bad_magic[0] ^= 0xff;
    let cases: [([u8; HELLO_LEN], HelloReject, Option<HelloStatus>); 6] = [
        (
            hello(VERSION, 0, last_differs),
            HelloReject::BadSecret,
            Some(HelloStatus::Denied),
        ),
        (
            hello(VERSION, 1, first_differs),
            HelloReject::BadSecret,
            Some(HelloStatus::Denied),
        ),
        (
            hello(VERSION, 2, SECRET),
            HelloReject::BadLane { lane: 2, nlanes: 2 },
            Some(HelloStatus::BadLane),
        ),
        (
            hello(VERSION, u32::MAX, SECRET),
            HelloReject::BadLane {
                lane: u32::MAX,
                nlanes: 2,
            },
            Some(HelloStatus::BadLane),
        ),
        (
            hello(2, 0, SECRET),
            HelloReject::BadVersion { got: 2 },
            Some(HelloStatus::BadVersion),
        ),
        (
            bad_magic,
            HelloReject::Malformed(TcpError::BadMagic {
                what: "hello",
                got: [b'R' ^ 0xff, b'P', b'T', b'1'],
            }),
            None,
        ),
    ];
    for (bytes, reject, status) in cases {
        let mut s = StreamServer::new(target());
        assert_eq!(
            s.on_hello(&bytes, &SECRET),
            Err(ServerError::Hello(reject)),
            "{reject:?}"
        );
        let reply = reject.reply();
        assert_eq!(
            reply,
            status.map(|status| HelloAckRepr { status }.to_bytes())
        );
        if let (Some(reply), Some(status)) = (reply, status) {
            assert_eq!(
                StreamClient::new(0).on_hello_ack(&reply),
                Err(ClientError::Refused(status))
            );
        }
        // Refused is closed: no frame, no second try.
        assert_eq!(s.lane(), None);
        assert_eq!(
            s.on_frame_header(&frame(FrameKind::ReadReq, 0, 0, 8)),
            Err(ServerError::Closed)
        );
        assert_eq!(
            s.on_hello(&hello(VERSION, 0, SECRET), &SECRET),
            Err(ServerError::Closed)
        );
    }
    // An answer that is not one.
    let mut not_an_ack = HelloAckRepr {
        status: HelloStatus::Ok,
    }
    .to_bytes();
    not_an_ack[0] ^= 1;
    assert!(matches!(
        StreamClient::new(0).on_hello_ack(&not_an_ack),
        Err(ClientError::Wire(_))
    ));
    assert!(matches!(
        StreamClient::new(0).on_hello_ack(&[0; 3]),
        Err(ClientError::Wire(_))
    ));
}

/// The frame of each operation: kind, lane, request ids in order, range,
/// body and the completion its driver reports once it is written.
#[test]
fn each_operation_gets_its_frame() {
    let mut c = StreamClient::new(1);
    let w = c
        .frame(&Op::Write {
            lane: 1,
            offset: 4096,
            len: 100,
            signaled: true,
        })
        .unwrap();
    assert_eq!(
        parse_frame(&w.header),
        FrameRepr {
            kind: FrameKind::Write,
            lane: 1,
            req_id: 0,
            offset: 4096,
            len: 100
        }
    );
    assert_eq!(
        w.body,
        FrameBody::Local {
            offset: 4096,
            len: 100
        }
    );
    assert_eq!(w.completes, Some(OpKind::Write));
    let w = c
        .frame(&Op::Write {
            lane: 1,
            offset: 64,
            len: 8,
            signaled: false,
        })
        .unwrap();
    assert_eq!(parse_frame(&w.header).req_id, 1);
    assert_eq!(w.completes, None);
    let r = c
        .frame(&Op::Read {
            lane: 1,
            offset: 128,
            len: 40,
            dest: ReadDest::User { buf_offset: 5 },
        })
        .unwrap();
    assert_eq!(
        parse_frame(&r.header),
        FrameRepr {
            kind: FrameKind::ReadReq,
            lane: 1,
            req_id: 2,
            offset: 128,
            len: 40
        }
    );
    assert_eq!((r.body, r.completes), (FrameBody::Empty, None));
    let msg = PersistMsgRepr {
        mode: PersistMode::PersistSend,
        completion: false,
        lane: 1,
        offset: 256,
        size: 16,
    };
    let s = c
        .frame(&Op::Send {
            lane: 1,
            msg,
            inline: true,
        })
        .unwrap();
    assert_eq!(
        parse_frame(&s.header),
        FrameRepr {
            kind: FrameKind::Send,
            lane: 1,
            req_id: 3,
            offset: 0,
            len: 24 + 16
        }
    );
    assert_eq!(
        s.body,
        FrameBody::Message {
            header: msg.to_bytes(),
            inline: Some((256, 16))
        }
    );
    assert_eq!(s.completes, Some(OpKind::Send));
    let flush = PersistMsgRepr {
        mode: PersistMode::FlushWrite,
        ..msg
    };
    let s = c
        .frame(&Op::Send {
            lane: 1,
            msg: flush,
            inline: false,
        })
        .unwrap();
    assert_eq!(parse_frame(&s.header).len, 24);
    assert_eq!(parse_frame(&s.header).req_id, 4);
    assert_eq!(
        s.body,
        FrameBody::Message {
            header: flush.to_bytes(),
            inline: None
        }
    );
    // No frame for an RDMA FLUSH, none for another lane; neither uses up a
    // request id.
    assert_eq!(
        c.frame(&Op::Flush {
            lane: 1,
            offset: 0,
            len: 8
        }),
        Err(ClientError::Unsupported(OpKind::Flush))
    );
    assert_eq!(
        c.frame(&Op::Write {
            lane: 0,
            offset: 0,
            len: 8,
            signaled: true
        }),
        Err(ClientError::WrongLane {
            got: 0,
            expected: 1
        })
    );
    let w = c
        .frame(&Op::Write {
            lane: 1,
            offset: 0,
            len: 8,
            signaled: true,
        })
        .unwrap();
    assert_eq!(parse_frame(&w.header).req_id, 5);
}

/// The server's answers are checked against the requests in order: the
/// right kind, request id, lane and (for READ_RESP) range, or a named
/// error that leaves the awaited answers as they were.
#[test]
fn answers_are_matched_to_requests_in_order() {
    let mut c = StreamClient::new(1);
    let dest = ReadDest::User { buf_offset: 5 };
    c.frame(&Op::Read {
        lane: 1,
        offset: 128,
        len: 40,
        dest,
    })
    .unwrap();
    let msg = PersistMsgRepr {
        mode: PersistMode::FlushWrite,
        completion: false,
        lane: 1,
        offset: 0,
        size: 64,
    };
    for _ in 0..2 {
        c.frame(&Op::Send {
            lane: 1,
            msg,
            inline: false,
        })
        .unwrap();
    }
    let read_text = "the oldest open request is a READ_REQ with another id";
    let send_text = "the oldest open request is a SEND with another id";
    let errors = [
        (
            server_frame(FrameKind::ReadReq, 1, 0, 128, 40),
            ClientError::WrongDirection(FrameKind::ReadReq),
        ),
        (
            server_frame(FrameKind::ReadResp, 0, 0, 128, 40),
            ClientError::WrongLane {
                got: 0,
                expected: 1,
            },
        ),
        (
            server_frame(FrameKind::ReadResp, 1, 1, 128, 40),
            ClientError::Unexpected {
                got: FrameKind::ReadResp,
                req_id: 1,
                expected: read_text,
            },
        ),
        (
            server_frame(FrameKind::Recv, 1, 0, 0, 8),
            ClientError::Unexpected {
                got: FrameKind::Recv,
                req_id: 0,
                expected: read_text,
            },
        ),
        (
            server_frame(FrameKind::ReadResp, 1, 0, 192, 40),
            ClientError::ReadMismatch {
                req_id: 0,
                got_offset: 192,
                got_len: 40,
                offset: 128,
                len: 40,
            },
        ),
        (
            server_frame(FrameKind::ReadResp, 1, 0, 128, 41),
            ClientError::ReadMismatch {
                req_id: 0,
                got_offset: 128,
                got_len: 41,
                offset: 128,
                len: 40,
            },
        ),
    ];
    for (bytes, e) in errors {
        assert_eq!(c.on_server_header(&bytes), Err(e));
    }
    assert!(matches!(
        c.on_server_header(&[0u8; 31]),
        Err(ClientError::Wire(_))
    ));
    assert_eq!(
        c.on_server_header(&server_frame(FrameKind::ReadResp, 1, 0, 128, 40)),
        Ok(ServerFrame::ReadResp {
            offset: 128,
            len: 40,
            dest
        })
    );
    assert_eq!(
        c.on_server_header(&server_frame(FrameKind::Recv, 1, 1, 0, 8)),
        Ok(ServerFrame::Recv)
    );
    assert_eq!(
        c.on_server_header(&server_frame(FrameKind::ReadResp, 1, 2, 0, 8)),
        Err(ClientError::Unexpected {
            got: FrameKind::ReadResp,
            req_id: 2,
            expected: send_text,
        })
    );
    assert_eq!(
        c.on_server_header(&server_frame(FrameKind::Recv, 1, 2, 0, 8)),
        Ok(ServerFrame::Recv)
    );
    assert_eq!(
        c.on_server_header(&server_frame(FrameKind::Recv, 1, 3, 0, 8)),
        Err(ClientError::Unexpected {
            got: FrameKind::Recv,
            req_id: 3,
            expected: "no request awaits an answer",
        })
    );
}

/// At most 64 READs and SENDs await their answers; the 65th is refused.
#[test]
fn at_most_64_answers_are_awaited() {
    let mut c = StreamClient::new(0);
    let read = Op::Read {
        lane: 0,
        offset: 0,
        len: 8,
        dest: ReadDest::Flush,
    };
    for _ in 0..64 {
        c.frame(&read).unwrap();
    }
    assert_eq!(c.frame(&read), Err(ClientError::TooManyOutstanding));
    c.on_server_header(&server_frame(FrameKind::ReadResp, 0, 0, 0, 8))
        .unwrap();
    assert!(c.frame(&read).is_ok());
}

/// The server's checks of frames and messages, each with its named error,
/// and the connection closed after each.
#[test]
fn the_server_refuses_bad_frames_and_messages_by_name() {
    let open = |lane: u32| {
        let mut s = StreamServer::new(target());
        s.accept_lane(lane).unwrap();
        assert_eq!(s.lane(), Some(lane));
        s
    };
    // Before the hello nothing is accepted.
    let mut s = StreamServer::new(target());
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::ReadReq, 0, 0, 8)),
        Err(ServerError::NotAuthenticated)
    );
    let mut s = StreamServer::new(target());
    assert_eq!(
        s.accept_lane(2),
        Err(ServerError::Hello(HelloReject::BadLane {
            lane: 2,
            nlanes: 2
        }))
    );
    assert_eq!(s.accept_lane(1), Err(ServerError::Closed));

    let max = 24 + 4096;
    let cases: [([u8; 32], ServerError); 3] = [
        (
            server_frame(FrameKind::Recv, 1, 0, 0, 8),
            ServerError::WrongDirection(FrameKind::Recv),
        ),
        (
            frame(FrameKind::ReadReq, 0, 0, 8),
            ServerError::LaneMismatch {
                what: "frame header",
                got: 0,
                lane: 1,
            },
        ),
        (
            frame(FrameKind::Send, 1, 0, max + 1),
            ServerError::MsgTooLarge { len: max + 1, max },
        ),
    ];
    for (bytes, e) in cases {
        let mut s = open(1);
        assert_eq!(s.on_frame_header(&bytes), Err(e));
        assert_eq!(s.lane(), None, "closed after {e:?}");
    }
    // The largest message is announced.
    let mut s = open(1);
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::Send, 1, 0, max)),
        Ok(ServerStep::ReceiveMsg { len: max as usize })
    );
    // A frame header while the message is due.
    assert_eq!(
        s.on_frame_header(&frame(FrameKind::ReadReq, 1, 0, 8)),
        Err(ServerError::MsgDue { req_id: 7 })
    );
    // A message without a SEND, one of the wrong length, one for another
    // lane.
    let msg = flush_write(1, 0, 64);
    let mut s = open(1);
    assert_eq!(s.on_msg(&msg), Err(ServerError::NoMsgDue));
    let mut s = open(1);
    s.on_frame_header(&frame(FrameKind::Send, 1, 0, 24))
        .unwrap();
    assert_eq!(
        s.on_msg(&msg[..23]),
        Err(ServerError::MsgLen {
            got: 23,
            expected: 24
        })
    );
    let mut s = open(1);
    s.on_frame_header(&frame(FrameKind::Send, 1, 0, 24))
        .unwrap();
    assert_eq!(
        s.on_msg(&flush_write(0, 0, 64)),
        Err(ServerError::LaneMismatch {
            what: "persist message",
            got: 0,
            lane: 1
        })
    );
    assert_eq!(s.lane(), None);
    // The right message is planned and answered with a RECV header.
    let mut s = open(1);
    s.on_frame_header(&frame(FrameKind::Send, 1, 0, 24))
        .unwrap();
    let m = s.on_msg(&msg).unwrap();
    assert_eq!(m.header, server_frame(FrameKind::Recv, 1, 7, 0, 8));
    assert_eq!(m.plan.msg().offset, 0);
    assert_eq!(s.lane(), Some(1));
}

/// A write-back report is taken only for the body just received, aligned,
/// and within its whole lines; the plan of the next FLUSH_WRITE shows
/// whether it was.
#[test]
fn write_back_reports_are_checked_and_recorded() {
    let open = || {
        let mut s = StreamServer::new(target());
        s.accept_lane(0).unwrap();
        s
    };
    let flush_start = |s: &mut StreamServer| {
        s.on_frame_header(&frame(FrameKind::Send, 0, 0, 24))
            .unwrap();
        let msg = flush_write(0, 100, 8000);
        let m = s.on_msg(&msg).unwrap();
        match m.plan.steps()[0] {
            TargetStep::Flush { offset, .. } => offset,
            ref other => panic!("{other:?}"),
        }
    };
    // Body [100, 4200): its lines run from 64 to 4160.
    for (to, taken) in [
        (0u64, false),
        (64, false),
        (100, false),
        (128, true),
        (4160, true),
        (4224, false),
        (4160 + 1, false),
        (LINE_MASK, false),
    ] {
        let mut s = open();
        s.on_frame_header(&frame(FrameKind::Write, 0, 100, 4100))
            .unwrap();
        assert_eq!(s.on_body_written_back(to), taken, "to {to}");
        let expect = if taken { to } else { 100 };
        assert_eq!(flush_start(&mut s), expect, "to {to}");
    }
    // Only right after the body.
    let mut s = open();
    assert!(!s.on_body_written_back(128));
    s.on_frame_header(&frame(FrameKind::Write, 0, 100, 4100))
        .unwrap();
    s.on_frame_header(&frame(FrameKind::ReadReq, 0, 0, 8))
        .unwrap();
    assert!(!s.on_body_written_back(128));
    assert_eq!(flush_start(&mut s), 100);
}

// ---- persist/stream_initiator.rs: the client lane, step by step ----

/// A sink that takes bytes into a buffer, or refuses them all.
struct Sink {
    buf: Vec<u8>,
    refuse: bool,
}

impl ReadSink for Sink {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        if self.refuse {
            return false;
        }
        let at = at as usize;
        match self.buf.get_mut(at..at + bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

fn sink() -> Sink {
    Sink {
        buf: vec![0; 4096],
        refuse: false,
    }
}

fn initiator(lane: u32, mode: LaneMode) -> StreamInitiator {
    let mut p = LaneParams::new(lane, 2, Method::Gpspm, POOL, 0, Placement::Stream);
    p.inline_max = 64;
    StreamInitiator::new(p, &SECRET, [0x44; 32], mode).expect("valid lane parameters")
}

/// Everything `poll_transmit` offers, as bytes (region bytes are `0xee`).
fn offered(l: &mut StreamInitiator) -> Vec<u8> {
    let mut out = Vec::new();
    for c in l.poll_transmit() {
        match c {
            Chunk::Bytes(b) => out.extend_from_slice(b),
            Chunk::Region { len, .. } => out.extend(std::iter::repeat_n(0xee, len as usize)),
        }
    }
    out
}

/// Runs the server's steps up to its next `Recv`, returning what it sent.
fn server_run(t: &mut StreamTarget) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match t.poll() {
            Next::Claim { .. } => t.on_claim(Ok(())).unwrap(),
            Next::Send { bytes, .. } => {
                out.extend_from_slice(bytes);
                t.on_sent();
            }
            Next::FlushHeld => t.on_sent(),
            _ => return out,
        }
    }
}

/// The handshake between an initiator and a target machine, each step's
/// bytes checked; returns the pair connected.
fn connected_pair(mode: LaneMode) -> (StreamInitiator, StreamTarget) {
    let mut l = initiator(1, mode);
    let mut t = machine(mode, true, 4096);
    assert_eq!(l.lane(), 1);
    assert_eq!(l.params().lane, 1);
    assert!(!l.is_connected());
    assert!(l.has_unsent(), "the hello is due");
    let hello = offered(&mut l);
    assert_eq!(hello.len(), HELLO_LEN);
    l.on_transmitted(HELLO_LEN as u64 - 1).unwrap();
    assert!(l.has_unsent(), "one byte of the hello is due");
    assert_eq!(offered(&mut l), hello[HELLO_LEN - 1..]);
    l.on_transmitted(1).unwrap();
    assert!(!l.has_unsent(), "the server hello is awaited");
    assert!(offered(&mut l).is_empty());
    t.handle_bytes(&hello).unwrap();
    let sh = server_run(&mut t);
    l.handle_bytes(&sh, &mut sink()).unwrap();
    assert!(l.has_unsent(), "the proof is due");
    assert!(!l.is_connected());
    let proof = offered(&mut l);
    assert_eq!(proof.len(), PROOF_LEN);
    l.on_transmitted(PROOF_LEN as u64).unwrap();
    assert!(!l.has_unsent(), "the answer is awaited");
    t.handle_bytes(&proof).unwrap();
    let ack = server_run(&mut t);
    assert_eq!(ack.len(), HELLO_ACK_LEN);
    // The answer in two pieces.
    l.handle_bytes(&ack[..3], &mut sink()).unwrap();
    assert!(!l.is_connected());
    l.handle_bytes(&ack[3..], &mut sink()).unwrap();
    assert!(l.is_connected());
    assert!(!l.has_unsent());
    assert!(l.take_keys().is_some());
    assert!(l.take_keys().is_none(), "the keys are given once");
    assert_eq!(l.failure(), None);
    (l, t)
}

/// The handshake's order is enforced: no server hello before the client
/// hello went out, no answer before the proof went out, and on a sealed
/// lane nothing in the clear after the answer.
#[test]
fn the_initiator_handshake_keeps_its_order() {
    connected_pair(LaneMode::Plaintext);
    connected_pair(LaneMode::Sealed);

    // A server hello before the client hello was reported written.
    let mut l = initiator(1, LaneMode::Plaintext);
    let mut t = machine(LaneMode::Plaintext, true, 4096);
    let hello = offered(&mut l);
    t.handle_bytes(&hello).unwrap();
    let sh = server_run(&mut t);
    let e = StreamLaneError::Handshake(SealError::Malformed {
        what: "server hello",
        why: "it arrived before the client hello was sent",
    });
    assert_eq!(l.handle_bytes(&sh, &mut sink()), Err(e));
    assert_eq!(l.failure(), Some(e));
    assert!(
        offered(&mut l).is_empty(),
        "nothing goes out after a failure"
    );
    assert_eq!(l.on_transmitted(1), Err(e));

    // The answer before the proof was reported written.
    let mut l = initiator(1, LaneMode::Plaintext);
    let mut t = machine(LaneMode::Plaintext, true, 4096);
    let hello = offered(&mut l);
    l.on_transmitted(hello.len() as u64).unwrap();
    t.handle_bytes(&hello).unwrap();
    l.handle_bytes(&server_run(&mut t), &mut sink()).unwrap();
    let proof = offered(&mut l);
    l.on_transmitted(PROOF_LEN as u64 - 1).unwrap();
    t.handle_bytes(&proof).unwrap();
    let ack = server_run(&mut t);
    assert_eq!(
        l.handle_bytes(&ack, &mut sink()),
        Err(StreamLaneError::Handshake(SealError::Malformed {
            what: "hello answer",
            why: "it arrived before the client's proof was sent",
        }))
    );
    assert!(!l.is_connected());

    // Bytes after the answer: frames in the clear are fine on a plaintext
    // lane (here the first bytes of a header), not on a sealed one.
    for mode in [LaneMode::Plaintext, LaneMode::Sealed] {
        let mut l = initiator(1, mode);
        let mut t = machine(mode, true, 4096);
        let hello = offered(&mut l);
        l.on_transmitted(hello.len() as u64).unwrap();
        t.handle_bytes(&hello).unwrap();
        l.handle_bytes(&server_run(&mut t), &mut sink()).unwrap();
        let proof = offered(&mut l);
        l.on_transmitted(PROOF_LEN as u64).unwrap();
        t.handle_bytes(&proof).unwrap();
        let mut bytes = server_run(&mut t);
        bytes.extend_from_slice(&[0x82, 0, 0]);
        let r = l.handle_bytes(&bytes, &mut sink());
        if mode == LaneMode::Sealed {
            assert_eq!(
                r,
                Err(StreamLaneError::Handshake(SealError::Malformed {
                    what: "hello answer",
                    why: "bytes in the clear follow it on a sealed lane",
                }))
            );
            assert!(!l.is_connected());
        } else {
            assert_eq!(r, Ok(()));
            assert!(l.is_connected());
        }
    }
}

/// Reads: the body goes to the sink at the read's offsets, or is received
/// directly; a sink that refuses it, or a driver that reports more bytes
/// than are due, breaks the lane with a named error that stays the cause.
#[test]
fn read_bodies_go_where_they_are_due() {
    let resp = |len: u64| {
        let mut b = server_frame(FrameKind::ReadResp, 1, 0, 4096, len).to_vec();
        b.extend((0..len).map(|i| i as u8));
        b
    };
    // Through the sink, in pieces.
    let (mut l, _) = connected_pair(LaneMode::Plaintext);
    l.read(4096, 100).unwrap();
    assert_eq!(l.call_in_flight(), Some(CallKind::Read));
    let req = offered(&mut l);
    assert_eq!(req.len(), FRAME_HEADER_LEN);
    assert!(l.has_unsent());
    l.on_transmitted(req.len() as u64).unwrap();
    assert!(!l.has_unsent());
    let mut s = sink();
    let bytes = resp(100);
    for piece in bytes.chunks(7) {
        assert_eq!(l.poll_completion(), None);
        l.handle_bytes(piece, &mut s).unwrap();
    }
    assert_eq!(l.poll_completion(), Some(Ok(())));
    assert_eq!(l.call_in_flight(), None);
    assert_eq!(&s.buf[..100], &bytes[FRAME_HEADER_LEN..]);

    // Directly: the lane names where and how much.
    let (mut l, _) = connected_pair(LaneMode::Plaintext);
    assert_eq!(l.read_direct(), None);
    assert_eq!(
        l.on_read_direct(1),
        Err(StreamLaneError::Overrun {
            what: "received",
            got: 1,
            max: 0
        })
    );
    let (mut l, _) = connected_pair(LaneMode::Plaintext);
    l.read(4096, 100).unwrap();
    let n = offered(&mut l).len() as u64;
    l.on_transmitted(n).unwrap();
    l.handle_bytes(&resp(100)[..FRAME_HEADER_LEN + 30], &mut sink())
        .unwrap();
    assert_eq!(l.read_direct(), Some((30, 70)));
    l.on_read_direct(20).unwrap();
    assert_eq!(l.read_direct(), Some((50, 50)));
    let e = StreamLaneError::Overrun {
        what: "received",
        got: 51,
        max: 50,
    };
    assert_eq!(l.on_read_direct(51), Err(e));
    assert_eq!(l.failure(), Some(e));
    assert_eq!(l.read_direct(), None, "nothing is due on a broken lane");
    assert_eq!(l.poll_completion(), Some(Err(e)));
    // The first cause stays.
    assert_eq!(l.on_read_direct(1), Err(e));
    assert_eq!(l.handle_bytes(&[0], &mut sink()), Err(e));
    assert!(matches!(l.persist(0, 8, 0), Err(CallError::Broken(_))));
    assert!(matches!(l.read(0, 8), Err(CallError::Broken(_))));
    assert!(matches!(l.flush(0, 8, 0), Err(CallError::Broken(_))));
    assert!(matches!(l.deep_persist(0, 8), Err(CallError::Broken(_))));
    assert!(matches!(l.drain(0), Err(CallError::Broken(_))));

    // A sink that refuses the bytes.
    let (mut l, _) = connected_pair(LaneMode::Plaintext);
    l.read(4096, 100).unwrap();
    let n = offered(&mut l).len() as u64;
    l.on_transmitted(n).unwrap();
    let mut s = sink();
    s.refuse = true;
    assert_eq!(
        l.handle_bytes(&resp(100), &mut s),
        Err(StreamLaneError::ReadDestination { len: 100 })
    );
}

/// A frame completes its call only once written whole; the offered bytes
/// are the rest of each frame; reporting more is refused.
#[test]
fn frames_are_offered_and_counted_to_the_byte() {
    let (mut l, mut t) = connected_pair(LaneMode::Plaintext);
    l.persist(4096, 40, 0).unwrap();
    assert_eq!(l.call_in_flight(), Some(CallKind::Persist));
    let all = offered(&mut l);
    // A SEND frame: header, message header, 40 inline bytes.
    assert_eq!(all.len(), FRAME_HEADER_LEN + 24 + 40);
    let chunks: Vec<u64> = l.poll_transmit().map(|c| c.len()).collect();
    assert_eq!(chunks, [FRAME_HEADER_LEN as u64, 24, 40]);
    assert!(l.poll_transmit().all(|c| !c.is_empty()));
    for (i, cut) in [10usize, 30, 20].iter().enumerate() {
        let done: usize = [10usize, 30, 20][..i].iter().sum();
        assert_eq!(offered(&mut l), all[done..], "after {done} bytes");
        l.on_transmitted(*cut as u64).unwrap();
    }
    assert_eq!(offered(&mut l), all[60..]);
    assert_eq!(
        l.poll_transmit().next(),
        Some(Chunk::Region {
            offset: 4096 + 4,
            len: 36
        })
    );
    l.on_transmitted(36).unwrap();
    assert!(!l.has_unsent());
    // The persist completes with the server's answer, not before.
    assert_eq!(l.poll_completion(), None);
    t.handle_bytes(&all[..FRAME_HEADER_LEN]).unwrap();
    assert_eq!(t.poll(), Next::Msg { len: 24 + 40 });
    let plan = t.on_msg(&all[FRAME_HEADER_LEN..]).unwrap();
    assert_eq!(plan.msg().offset, 4096);
    let resp = plan.response();
    t.on_answer(resp, false).unwrap();
    let answer = server_run(&mut t);
    assert_eq!(answer.len(), ANSWER_LEN);
    l.handle_bytes(&answer[..ANSWER_LEN - 1], &mut sink())
        .unwrap();
    assert_eq!(l.poll_completion(), None);
    l.handle_bytes(&answer[ANSWER_LEN - 1..], &mut sink())
        .unwrap();
    assert_eq!(l.poll_completion(), Some(Ok(())));
    assert_eq!(l.call_in_flight(), None);
    // Reporting more bytes written than were offered breaks the lane.
    assert_eq!(
        l.on_transmitted(1),
        Err(StreamLaneError::Overrun {
            what: "written",
            got: 1,
            max: 0
        })
    );
}

/// A chunk's length and emptiness, for both kinds.
#[test]
fn chunks_know_their_length() {
    for (c, len) in [
        (Chunk::Bytes(&[1, 2, 3]), 3u64),
        (Chunk::Bytes(&[]), 0),
        (Chunk::Region { offset: 5, len: 70 }, 70),
        (Chunk::Region { offset: 5, len: 0 }, 0),
    ] {
        assert_eq!(c.len(), len, "{c:?}");
        assert_eq!(c.is_empty(), len == 0, "{c:?}");
    }
}

/// Reporting more bytes of the hello or of the proof written than were
/// offered is a driver bug the lane refuses, also after part of them went
/// out.
#[test]
fn over_reporting_the_handshake_is_refused() {
    let overrun = StreamLaneError::Overrun {
        what: "written",
        got: 1,
        max: 0,
    };
    // The hello: 10 bytes, then one more than the other 38.
    let mut l = initiator(1, LaneMode::Plaintext);
    l.on_transmitted(10).unwrap();
    assert_eq!(offered(&mut l).len(), HELLO_LEN - 10);
    assert_eq!(l.on_transmitted(HELLO_LEN as u64 - 10 + 1), Err(overrun));
    assert_eq!(l.failure(), Some(overrun));

    // The proof: 10 bytes, then one more than the other 22.
    let mut l = initiator(1, LaneMode::Plaintext);
    let mut t = machine(LaneMode::Plaintext, true, 4096);
    let hello = offered(&mut l);
    l.on_transmitted(hello.len() as u64).unwrap();
    t.handle_bytes(&hello).unwrap();
    l.handle_bytes(&server_run(&mut t), &mut sink()).unwrap();
    l.on_transmitted(10).unwrap();
    assert_eq!(offered(&mut l).len(), PROOF_LEN - 10);
    assert_eq!(l.on_transmitted(PROOF_LEN as u64 - 10 + 1), Err(overrun));
    assert!(!l.is_connected());
}

/// A READ_RESP body ends at its length: bytes after it in the same hand-in
/// are the next frame's (here a header no request awaits, which breaks the
/// lane), never more of the body.
#[test]
fn a_read_body_ends_at_its_length() {
    let (mut l, _) = connected_pair(LaneMode::Plaintext);
    l.read(4096, 100).unwrap();
    let n = offered(&mut l).len() as u64;
    l.on_transmitted(n).unwrap();
    let mut bytes = server_frame(FrameKind::ReadResp, 1, 0, 4096, 100).to_vec();
    bytes.extend((0..100u32).map(|i| i as u8 | 0x80));
    let mut s = sink();
    l.handle_bytes(&bytes[..FRAME_HEADER_LEN + 30], &mut s)
        .unwrap();
    let mut rest = bytes[FRAME_HEADER_LEN + 30..].to_vec();
    rest.extend_from_slice(&server_frame(FrameKind::Recv, 1, 1, 0, 8));
    assert_eq!(
        l.handle_bytes(&rest, &mut s),
        Err(StreamLaneError::Stream(ClientError::Unexpected {
            got: FrameKind::Recv,
            req_id: 1,
            expected: "no request awaits an answer",
        }))
    );
    assert_eq!(&s.buf[..100], &bytes[FRAME_HEADER_LEN..]);
    assert!(
        s.buf[100..].iter().all(|&b| b == 0),
        "nothing past the body"
    );
}
