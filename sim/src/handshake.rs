//! The CREATE handshake, run in memory through rpmem-core's out-of-band
//! client and server machines, to learn the lanes, the method and the
//! inline buffer size the data path uses.
//!
//! The method is settled as the real library settles it: the target
//! announces GPSPM or APM in PMDK's `persist_method` field and may offer
//! RDMA FLUSH with the extension flag `RDMA_FLUSH`; the client runs its
//! lanes with [`policy::initiator_method`] of the two (its simulated device
//! can always post FLUSH, and the user never turns it off).

use rpmem_core::negotiate::{self, Answer, Offer, SessionParams};
use rpmem_core::oob::{Client, ClientEvent, CreateRequest, Limits, OobError, Server, ServerEvent};
use rpmem_core::policy::{self, Method};
use rpmem_core::wire::oob::{
    self as wire, ext_flags, ExtRepr, IbcRepr, PersistMethod, PoolDesc, Provider, Status,
};
use rpmem_core::PoolAttr;

/// What the simulated librpmem asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAsk {
    /// Pool size.
    pub pool_size: u64,
    /// Lanes wanted.
    pub nlanes: u32,
    /// Inline buffer size wanted (`buff_size`).
    pub buff_size: u64,
    /// The pool has headers (what the attributes tell the client and the
    /// pool set the target).
    pub headers: bool,
}

/// What the simulated rpmemd offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetOffer {
    /// The method it announces in PMDK's `persist_method` field: GPSPM or
    /// APM ([`Method::RdmaFlush`] has no value there: the server machine
    /// refuses to send it and the handshake fails).
    pub method: Method,
    /// Most lanes it grants.
    pub max_nlanes: u32,
    /// Largest inline payload it accepts.
    pub max_inline: u32,
    /// The pool is persistent memory (extension flag).
    pub pmem: bool,
    /// A deep flush does more than a plain persist (extension flag).
    pub deep_flush: bool,
    /// The pool's registration accepts RDMA FLUSH with the persistent
    /// placement type (extension flag `RDMA_FLUSH`).
    pub rdma_flush: bool,
    /// The session secret (must not be all zero).
    pub secret: [u8; 32],
}

/// What both sides agreed on: the core's session parameters, from which the
/// simulated target and lanes derive theirs as rpmemd and rpmem do.
pub type Session = SessionParams;

/// The handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A machine refused a call or input.
    #[error("out-of-band {side} failed while {during}: {error}")]
    Oob {
        /// `"client"` or `"server"`.
        side: &'static str,
        /// What was being done.
        during: &'static str,
        /// The machine's error.
        error: OobError,
    },
    /// The pool descriptor could not be built.
    #[error("pool descriptor: {0}")]
    Desc(wire::Error),
    /// A machine produced an event other than the one the handshake needs.
    #[error("out-of-band handshake: expected {expected}, got {got}")]
    Unexpected {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: String,
    },
    /// The response named a method the data path does not know.
    #[error("CREATE_RESP names persist method {0}, which is neither GPSPM nor APM")]
    UnknownMethod(u32),
}

fn client_err(during: &'static str) -> impl Fn(OobError) -> HandshakeError {
    move |error| HandshakeError::Oob {
        side: "client",
        during,
        error,
    }
}

fn server_err(during: &'static str) -> impl Fn(OobError) -> HandshakeError {
    move |error| HandshakeError::Oob {
        side: "server",
        during,
        error,
    }
}

/// Run start-up status, CREATE and CREATE_RESP between a fresh client and
/// server.
pub fn create(ask: &ClientAsk, offer: &TargetOffer) -> Result<Session, HandshakeError> {
    let mut server = Server::new(Limits::DEFAULT);
    let mut client = Client::new();

    let word = server
        .startup_status(Ok(()))
        .map_err(server_err("writing the start-up status"))?;
    match client
        .handle_input(&word)
        .map_err(client_err("reading the start-up status"))?
    {
        (4, Some(ClientEvent::Ready)) => {}
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "the client to be ready",
                got: format!("{other:?}"),
            })
        }
    }

    let desc = PoolDesc::from_text("sim.set").map_err(HandshakeError::Desc)?;
    let request = CreateRequest {
        pool_size: ask.pool_size,
        nlanes: ask.nlanes,
        provider: Provider::VERBS,
        buff_size: ask.buff_size,
        attr: PoolAttr::ZERO,
        pool_desc: desc,
    };
    let bytes = client
        .send_create(&request)
        .map_err(client_err("sending CREATE"))?
        .to_vec();
    let (used, event) = server
        .handle_input(&bytes)
        .map_err(server_err("reading CREATE"))?;
    let common = match event {
        Some(ServerEvent::Create { common, .. }) if used == bytes.len() => common,
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "a complete CREATE",
                got: format!("{other:?} after {used} of {} bytes", bytes.len()),
            })
        }
    };

    // rpmemd's grant over RDMA, within this target's drawn limits.
    let grant = negotiate::grant(
        common.nlanes,
        common.buff_size,
        &Offer {
            max_nlanes: offer.max_nlanes,
            max_inline: u64::from(offer.max_inline),
            ..Offer::RDMA
        },
    );
    let (granted, max_inline) = (
        grant.nlanes,
        u32::try_from(grant.inline_max).unwrap_or(u32::MAX),
    );
    let mut flags = 0;
    if offer.pmem {
        flags |= ext_flags::PMEM;
    }
    if offer.deep_flush {
        flags |= ext_flags::DEEP_FLUSH;
    }
    if offer.rdma_flush {
        flags |= ext_flags::RDMA_FLUSH;
    }
    let ibc = IbcRepr {
        port: 1,
        persist_method: PersistMethod(offer.method.wire_value()),
        rkey: 0x5157,
        raddr: 0,
        nlanes: granted,
    };
    let ext = ExtRepr {
        secret: offer.secret,
        flags,
        max_inline,
    };
    let answer = server
        .respond_create(Status::Success, Some((ibc, Some(ext))))
        .map_err(server_err("answering CREATE"))?
        .to_vec();
    let (_, event) = client
        .handle_input(&answer)
        .map_err(client_err("reading CREATE_RESP"))?;
    let resp = match event {
        Some(ClientEvent::Created(resp)) => resp,
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "CREATE_RESP",
                got: format!("{other:?}"),
            })
        }
    };
    let wire_method = resp.ibc.persist_method.0;
    let announced =
        Method::from_wire(wire_method).ok_or(HandshakeError::UnknownMethod(wire_method))?;
    let flush_offered = resp
        .ext
        .is_some_and(|e| e.flags & ext_flags::RDMA_FLUSH != 0);
    let method = policy::initiator_method(announced, flush_offered, true, true);
    Ok(negotiate::accept(
        ask.buff_size,
        ask.pool_size,
        ask.headers,
        &Answer {
            nlanes: resp.ibc.nlanes,
            max_inline: resp.ext.map(|e| e.max_inline),
            announced,
        },
        method,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn offer(method: Method, max_nlanes: u32) -> TargetOffer {
        TargetOffer {
            method,
            max_nlanes,
            max_inline: 4096,
            pmem: true,
            deep_flush: false,
            rdma_flush: false,
            secret: [7; 32],
        }
    }

    #[test]
    fn create_negotiates_lanes_method_and_inline_size() {
        let ask = ClientAsk {
            pool_size: 1 << 20,
            nlanes: 4,
            buff_size: 8192,
            headers: true,
        };
        let s = create(&ask, &offer(Method::Apm, 2)).unwrap();
        assert_eq!(
            s,
            Session {
                nlanes: 2,
                pool_size: 1 << 20,
                headers: true,
                method: Method::Apm,
                announced: Method::Apm,
                inline_max: 4096
            }
        );
        let s = create(&ask, &offer(Method::Gpspm, 8)).unwrap();
        assert_eq!((s.nlanes, s.method), (4, Method::Gpspm));
    }

    #[test]
    fn all_zero_secret_is_refused_by_the_server_machine() {
        let ask = ClientAsk {
            pool_size: 1 << 20,
            nlanes: 1,
            buff_size: 64,
            headers: true,
        };
        let mut o = offer(Method::Gpspm, 1);
        o.secret = [0; 32];
        assert!(matches!(
            create(&ask, &o),
            Err(HandshakeError::Oob { side: "server", .. })
        ));
    }

    #[rstest]
    #[case(Method::Gpspm, true, Method::RdmaFlush)]
    #[case(Method::Apm, true, Method::RdmaFlush)]
    #[case(Method::Gpspm, false, Method::Gpspm)]
    #[case(Method::Apm, false, Method::Apm)]
    fn the_client_runs_rdma_flush_exactly_when_the_target_offers_it(
        #[case] announced: Method,
        #[case] flag: bool,
        #[case] expect: Method,
    ) {
        let ask = ClientAsk {
            pool_size: 1 << 20,
            nlanes: 2,
            buff_size: 256,
            headers: false,
        };
        let mut o = offer(announced, 4);
        o.rdma_flush = flag;
        let s = create(&ask, &o).unwrap();
        assert_eq!(
            s,
            Session {
                nlanes: 2,
                pool_size: 1 << 20,
                headers: false,
                method: expect,
                announced,
                inline_max: 256
            }
        );
    }

    #[test]
    fn rdma_flush_cannot_be_announced_in_pmdks_field() {
        let ask = ClientAsk {
            pool_size: 1 << 20,
            nlanes: 1,
            buff_size: 64,
            headers: true,
        };
        let mut o = offer(Method::RdmaFlush, 1);
        o.rdma_flush = true;
        // The server machine refuses to emit a value PMDK does not define.
        assert!(matches!(
            create(&ask, &o),
            Err(HandshakeError::Oob {
                side: "server",
                during: "answering CREATE",
                ..
            })
        ));
    }
}
