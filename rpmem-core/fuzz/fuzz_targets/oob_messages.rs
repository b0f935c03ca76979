//! Arbitrary bytes into every out-of-band decoder and both machines.
//!
//! Input layout: byte 0 picks the provider (and whether the client sends
//! CREATE or OPEN), byte 1 the split point; the rest is the message data.
//! Properties: nothing panics; every successful parse re-emits the very
//! bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::oob::{Client, CreateRequest, Limits, OpenRequest, Server, ServerEvent};
use rpmem_core::wire::oob::{
    ExtRepr, IbcRepr, PersistMethod, PoolDesc, Provider, Request, Response, Status,
    MAX_REQUEST_LEN, MAX_RESPONSE_LEN,
};
use rpmem_core::PoolAttr;

const PROVIDERS: [Provider; 5] = [
    Provider::LIBFABRIC_VERBS,
    Provider::LIBFABRIC_SOCKETS,
    Provider::TCP,
    Provider::VERBS,
    Provider(3),
];

fuzz_target!(|data: &[u8]| {
    let (selector, split, body) = match data {
        [a, b, rest @ ..] => (*a, *b as usize, rest),
        _ => return,
    };
    let provider = PROVIDERS[selector as usize % PROVIDERS.len()];
    let split = split.min(body.len());

    // The generic parsers: a success re-emits the same bytes.
    if let Ok(request) = Request::parse(body) {
        let mut out = [0u8; MAX_REQUEST_LEN];
        let n = request.emit(&mut out).expect("emit a parsed request");
        assert_eq!(n, request.buffer_len());
        assert_eq!(&out[..n], &body[..n]);
    }
    for p in [provider, Provider::LIBFABRIC_SOCKETS, Provider::TCP] {
        if let Ok(response) = Response::parse(body, p) {
            let mut out = [0u8; MAX_RESPONSE_LEN];
            let n = response.emit(&mut out).expect("emit a parsed response");
            assert_eq!(n, response.buffer_len());
            assert_eq!(&out[..n], &body[..n]);
        }
    }

    // The server, fed the body in two pieces, answering every request.
    let mut server = Server::new(Limits::default());
    let _ = server.startup_status(Ok(()));
    'server: for piece in [&body[..split], &body[split..]] {
        let mut rest = piece;
        loop {
            let answer = match server.handle_input(rest) {
                Ok((n, event)) => {
                    rest = &rest[n..];
                    match event {
                        Some(ServerEvent::Create { common, .. }) => Some((true, common)),
                        Some(ServerEvent::Open { common, .. }) => Some((false, common)),
                        Some(ServerEvent::SetAttr { .. }) => {
                            let _ = server.respond_set_attr(Status::Success);
                            continue;
                        }
                        Some(ServerEvent::Close { .. }) => {
                            let _ = server.respond_close(Status::Success);
                            continue;
                        }
                        None if n == 0 => break,
                        None => continue,
                    }
                }
                Err(_) => {
                    let _ = server.reject_response();
                    break 'server;
                }
            };
            if let Some((create, common)) = answer {
                let ibc = IbcRepr {
                    port: 7000,
                    persist_method: PersistMethod::APM,
                    rkey: 1,
                    raddr: 4096,
                    nlanes: common.nlanes,
                };
                let ext = common.provider.has_extension().then_some(ExtRepr {
                    secret: [1; 32],
                    flags: 0,
                    max_inline: 0,
                });
                let ok = if create {
                    server
                        .respond_create(Status::Success, Some((ibc, ext)))
                        .is_ok()
                } else {
                    server
                        .respond_open(Status::Success, Some((ibc, PoolAttr::ZERO, ext)))
                        .is_ok()
                };
                assert!(ok, "a valid answer to an accepted request");
            }
        }
    }
    let _ = server.handle_eof();

    // The client, after a good start-up word and a request, fed the body.
    let mut client = Client::new();
    let _ = client.handle_input(&[0, 0, 0, 0]);
    let pool_desc = PoolDesc::from_text("fuzz.set").expect("valid descriptor");
    if selector & 0x80 == 0 {
        let _ = client.send_create(&CreateRequest {
            pool_size: 1 << 20,
            nlanes: 4,
            provider,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc,
        });
    } else {
        let _ = client.send_open(&OpenRequest {
            pool_size: 1 << 20,
            nlanes: 4,
            provider,
            buff_size: 8192,
            pool_desc,
        });
    }
    'client: for piece in [&body[..split], &body[split..]] {
        let mut rest = piece;
        loop {
            match client.handle_input(rest) {
                Ok((n, event)) => {
                    rest = &rest[n..];
                    if event.is_some() && client.is_established() {
                        let _ = client.send_set_attr(&PoolAttr::ZERO);
                    } else if n == 0 {
                        break;
                    }
                }
                Err(_) => break 'client,
            }
        }
    }
    let _ = client.handle_eof();
});
