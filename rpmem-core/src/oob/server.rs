//! The server side of the out-of-band protocol (what rpmemd's `rpmemd_obc`
//! and the request handlers of `rpmemd.c` decide), without I/O.

use core::num::NonZeroU32;

use super::fill::{Accum, Out};
use super::{OobError, RejectReason};
use crate::attr::PoolAttr;
use crate::wire::oob::{
    self as wire, common_field, create_field, create_resp_field, hdr_field, open_field,
    open_resp_field, Close, CloseRepr, CloseRespRepr, Common, CommonRepr, Create, CreateRepr,
    CreateRespRepr, ExtRepr, IbcRepr, MsgHdr, MsgType, Open, OpenRepr, OpenRespRepr, PoolDesc,
    Provider, SetAttr, SetAttrRepr, SetAttrRespRepr, Status, StatusWordRepr, CLOSE_FLAGS_REMOVE,
    CLOSE_LEN, CREATE_LEN, MAX_POOL_DESC, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, MSG_HDR_LEN, OPEN_LEN,
    PROTO_MAJOR, PROTO_MINOR, SET_ATTR_LEN, STATUS_WORD_LEN,
};

/// Which providers a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProviderSet {
    /// PMDK's libfabric verbs provider (1).
    pub libfabric_verbs: bool,
    /// PMDK's libfabric sockets provider (2).
    pub libfabric_sockets: bool,
    /// Our TCP data path ([`Provider::TCP`]).
    pub tcp: bool,
    /// Our native ibverbs data path ([`Provider::VERBS`]).
    pub verbs: bool,
}

impl ProviderSet {
    /// Every known provider.
    pub const ALL: ProviderSet = ProviderSet {
        libfabric_verbs: true,
        libfabric_sockets: true,
        tcp: true,
        verbs: true,
    };

    /// True when `provider` is known and enabled.
    pub fn allows(&self, provider: Provider) -> bool {
        match provider {
            Provider::LIBFABRIC_VERBS => self.libfabric_verbs,
            Provider::LIBFABRIC_SOCKETS => self.libfabric_sockets,
            Provider::TCP => self.tcp,
            Provider::VERBS => self.verbs,
            _ => false,
        }
    }
}

/// Bounds on what a client may ask for. Everything a client declares is
/// bounded before the server acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most lanes a request may ask for (`RPMEM_ERR_BADNLANES` above).
    /// The response may still grant fewer.
    pub max_nlanes: u32,
    /// Largest inline persist buffer a request may ask for
    /// (`RPMEM_ERR_FATAL` above: PMDK would fail allocating it).
    pub max_buff_size: u64,
    /// Providers served (`RPMEM_ERR_PROVNOSUP` for a known one left out).
    pub providers: ProviderSet,
}

impl Limits {
    /// 1024 lanes (libpmemobj's lane count), 1 MiB inline buffers, every
    /// provider.
    pub const DEFAULT: Limits = Limits {
        max_nlanes: crate::negotiate::MAX_NLANES,
        max_buff_size: crate::negotiate::MAX_BUFF_SIZE,
        providers: ProviderSet::ALL,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A request the server accepted, for the driver to carry out and answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvent<'a> {
    /// Create the pool set `pool_desc`; answer with
    /// [`Server::respond_create`].
    Create {
        /// Protocol version 0.1, a provider this server serves, 1 to
        /// `max_nlanes` lanes and a bounded `buff_size`.
        common: CommonRepr,
        /// Attributes for the pool header (all zero: no headers).
        attr: PoolAttr,
        /// Pool set name, as sent (not yet resolved against any directory).
        pool_desc: PoolDesc<'a>,
    },
    /// Open the pool set `pool_desc`; answer with [`Server::respond_open`].
    Open {
        /// As for [`ServerEvent::Create`].
        common: CommonRepr,
        /// Pool set name, as sent.
        pool_desc: PoolDesc<'a>,
    },
    /// Replace the pool attributes; answer with
    /// [`Server::respond_set_attr`].
    SetAttr {
        /// The new attributes.
        attr: PoolAttr,
    },
    /// Close the pool (and remove it when `flags` has
    /// [`CLOSE_FLAGS_REMOVE`]); answer with [`Server::respond_close`].
    Close {
        /// The flags as sent.
        flags: u32,
    },
}

impl ServerEvent<'_> {
    /// For [`ServerEvent::Close`]: whether the client asked for removal.
    pub fn remove(&self) -> bool {
        matches!(self, ServerEvent::Close { flags } if flags & CLOSE_FLAGS_REMOVE != 0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The start-up status word has not been produced.
    Starting,
    /// Reading a request.
    Idle { pool_open: bool },
    /// A request was delivered; its response has not been produced.
    Pending { request: MsgType },
    /// A request was refused; the refusal is in the output buffer.
    Rejected { len: usize },
    /// The session ended normally.
    Done,
    /// The session failed without an answer.
    Failed,
}

impl State {
    fn describe(&self) -> &'static str {
        match self {
            State::Starting => "the start-up status word has not been produced",
            State::Idle { pool_open: false } => "waiting for CREATE or OPEN",
            State::Idle { pool_open: true } => "the pool is open",
            State::Pending { request } => match request {
                MsgType::Create => "a CREATE_RESP is due",
                MsgType::Open => "an OPEN_RESP is due",
                MsgType::SetAttr => "a SET_ATTR_RESP is due",
                _ => "a CLOSE_RESP is due",
            },
            State::Rejected { .. } => "a request was refused and the session is over",
            State::Done => "the session has ended",
            State::Failed => "the session has failed",
        }
    }
}

/// The server machine (one per session, as rpmemd is one process per
/// session).
///
/// Produce the start-up word with [`Server::startup_status`], feed
/// everything read from stdin to [`Server::handle_input`], carry out each
/// [`ServerEvent`] and write the bytes of the matching `respond_*` call.
/// On [`OobError::Rejected`] write [`Server::reject_response`] and end the
/// session; on any other error write [`Server::failure_word`] (as PMDK's
/// rpmemd does) and end it.
#[derive(Debug)]
pub struct Server {
    limits: Limits,
    state: State,
    input: Accum<MAX_REQUEST_LEN>,
    output: Out<MAX_RESPONSE_LEN>,
    desc: [u8; MAX_POOL_DESC],
    desc_len: usize,
    session: Option<CommonRepr>,
    pending_attr: PoolAttr,
    pending_flags: u32,
}

impl Server {
    /// A server that has not yet produced its start-up status word.
    pub const fn new(limits: Limits) -> Server {
        Server {
            limits,
            state: State::Starting,
            input: Accum::new(),
            output: Out::new(),
            desc: [0; MAX_POOL_DESC],
            desc_len: 0,
            session: None,
            pending_attr: PoolAttr::ZERO,
            pending_flags: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The state in words (for logs).
    pub fn state(&self) -> &'static str {
        self.state.describe()
    }

    /// True when the session is over.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            State::Done | State::Failed | State::Rejected { .. }
        )
    }

    /// The pool set name of this session's CREATE / OPEN, once received.
    pub fn pool_desc(&self) -> Option<PoolDesc<'_>> {
        self.session?;
        self.desc.get(..self.desc_len).map(PoolDesc::from_validated)
    }

    /// The common fields of this session's CREATE / OPEN, once received.
    pub fn session(&self) -> Option<CommonRepr> {
        self.session
    }

    fn wrong_state(&self, call: &'static str) -> OobError {
        OobError::WrongState {
            call,
            state: self.state.describe(),
        }
    }

    /// The start-up status word: `Ok(())` when rpmemd is ready (4 zero
    /// bytes), or the errno that stopped it (after which the session is
    /// over). Host (little-endian) order, as PMDK writes it.
    pub fn startup_status(
        &mut self,
        result: Result<(), NonZeroU32>,
    ) -> Result<[u8; STATUS_WORD_LEN], OobError> {
        if self.state != State::Starting {
            return Err(self.wrong_state("startup_status"));
        }
        match result {
            Ok(()) => {
                self.state = State::Idle { pool_open: false };
                Ok(StatusWordRepr::READY.to_bytes())
            }
            Err(errno) => {
                self.state = State::Failed;
                Ok(Self::failure_word(errno))
            }
        }
    }

    /// The word PMDK's rpmemd writes when it fails after start-up without
    /// answering (its `errno`, little-endian): write it and end the session.
    pub fn failure_word(errno: NonZeroU32) -> [u8; STATUS_WORD_LEN] {
        StatusWordRepr { value: errno.get() }.to_bytes()
    }

    /// The answer to a refused request (after [`OobError::Rejected`]): the
    /// response of the request's type carrying the status, with zero
    /// attributes as PMDK sends them.
    pub fn reject_response(&self) -> Option<&[u8]> {
        match self.state {
            State::Rejected { len } => Some(self.output.get(len)),
            _ => None,
        }
    }

    fn fail(&mut self, error: OobError) -> OobError {
        self.state = State::Failed;
        self.input.clear();
        error
    }

    /// Refuses `request` with `status`: builds the typed answer and ends
    /// the session.
    fn reject(&mut self, request: MsgType, status: Status, reason: RejectReason) -> OobError {
        let space = self.output.space();
        let emitted = match request {
            MsgType::Create => CreateRespRepr {
                status,
                ibc: IbcRepr::ZERO,
                ext: None,
            }
            .emit(space),
            MsgType::Open => OpenRespRepr {
                status,
                ibc: IbcRepr::ZERO,
                attr: PoolAttr::ZERO,
                ext: None,
            }
            .emit(space),
            MsgType::SetAttr => SetAttrRespRepr { status }.emit(space),
            _ => CloseRespRepr { status }.emit(space),
        };
        self.input.clear();
        self.state = match emitted {
            Ok(len) => State::Rejected { len },
            Err(_) => State::Failed,
        };
        OobError::Rejected {
            request,
            status,
            reason,
        }
    }

    /// Takes bytes read from the client. Returns how many were used (the
    /// rest belongs to later calls) and the request they completed, if any.
    /// Stops after each request until it is answered: more bytes before the
    /// answer are a [`OobError::WrongState`] error (an empty slice is always
    /// fine and does nothing).
    pub fn handle_input(
        &mut self,
        input: &[u8],
    ) -> Result<(usize, Option<ServerEvent<'_>>), OobError> {
        if input.is_empty() {
            return Ok((0, None));
        }
        let State::Idle { pool_open } = self.state else {
            return Err(self.wrong_state("handle_input"));
        };

        let (mut used, complete) = self.input.fill(MSG_HDR_LEN, input);
        if !complete {
            return Ok((used, None));
        }
        let (request, total) = self.check_header()?;
        let (more, complete) = self.input.fill(total, input.get(used..).unwrap_or(&[]));
        used = used.saturating_add(more);
        if !complete {
            return Ok((used, None));
        }
        let result = match request {
            MsgType::Create | MsgType::Open => self.take_open(request, pool_open),
            MsgType::SetAttr => self.take_set_attr(pool_open),
            _ => self.take_close(pool_open),
        };
        self.input.clear();
        result?;
        Ok((used, Some(self.event())))
    }

    /// Judges a complete request header: a request type, and a size that
    /// fits that type (bounded, so a client cannot make us wait for or hold
    /// more than [`MAX_REQUEST_LEN`] bytes).
    fn check_header(&mut self) -> Result<(MsgType, usize), OobError> {
        let hdr = match MsgHdr::new_checked(self.input.bytes()) {
            Ok(hdr) => hdr,
            Err(e) => return Err(self.fail(e.into())),
        };
        let value = hdr.msg_type();
        let size = hdr.size();
        let request = match MsgType::from_u32(value) {
            Some(t) if t.is_request() => t,
            Some(_) => {
                return Err(self.fail(OobError::Wire(wire::Error::UnexpectedType {
                    msg: "request header",
                    offset: hdr_field::TYPE.start,
                    value,
                    expected: "a request type (CREATE, OPEN, CLOSE or SET_ATTR)",
                })))
            }
            None => {
                return Err(self.fail(OobError::Wire(wire::Error::Unknown {
                    msg: "request header",
                    field: "hdr.type",
                    offset: hdr_field::TYPE.start,
                    value: u64::from(value),
                })))
            }
        };
        let msg = request.name();
        let offset = hdr_field::SIZE.start;
        let (min, max) = match request {
            MsgType::Create => (CREATE_LEN, CREATE_LEN + MAX_POOL_DESC),
            MsgType::Open => (OPEN_LEN, OPEN_LEN + MAX_POOL_DESC),
            MsgType::SetAttr => (SET_ATTR_LEN, SET_ATTR_LEN),
            _ => (CLOSE_LEN, CLOSE_LEN),
        };
        let (min64, max64) = (len_u64(min), len_u64(max));
        let problem = if min == max && size != min64 {
            Some((
                Status::Fatal,
                wire::Error::Mismatch {
                    msg,
                    field: "hdr.size",
                    offset,
                    value: size,
                    expected: min64,
                },
            ))
        } else if size < min64 {
            Some((
                Status::Fatal,
                wire::Error::TooSmall {
                    msg,
                    field: "hdr.size",
                    offset,
                    value: size,
                    min: min64,
                },
            ))
        } else if size > max64 {
            // Only CREATE and OPEN get here: their descriptor is too long.
            Some((
                Status::BadName,
                wire::Error::TooLarge {
                    msg,
                    field: "hdr.size",
                    offset,
                    value: size,
                    limit: max64,
                },
            ))
        } else {
            None
        };
        match problem {
            Some((status, e)) => Err(self.reject(request, status, RejectReason::Invalid(e))),
            None => Ok((request, usize::try_from(size).unwrap_or(max))),
        }
    }

    /// Judges a complete CREATE or OPEN in rpmemd's order: protocol
    /// version, descriptor, provider, then our bounds on lanes and buffer
    /// size, then the session state. Keeps the descriptor.
    fn take_open(&mut self, request: MsgType, pool_open: bool) -> Result<(), OobError> {
        let msg = request.name();
        let c_at = create_field::C.start;
        let bytes = self.input.bytes();
        let parsed = if request == MsgType::Create {
            parse_create(msg, bytes)
        } else {
            parse_open(msg, bytes)
        };
        let (common, attr) = match parsed {
            Ok((common, attr, desc)) => {
                // Keep the descriptor for the session (the checks below
                // end the session if they fail, so overwriting is fine).
                let src = desc.as_bytes();
                let len = src.len().min(MAX_POOL_DESC);
                if let (Some(dst), Some(src)) = (self.desc.get_mut(..len), src.get(..len)) {
                    dst.copy_from_slice(src);
                }
                self.desc_len = len;
                (common, attr)
            }
            Err((status, e)) => return Err(self.reject(request, status, RejectReason::Invalid(e))),
        };

        let provider = common.provider;
        if !provider.is_known() {
            let e = wire::Error::Unknown {
                msg,
                field: "c.provider",
                offset: c_at + common_field::PROVIDER.start,
                value: u64::from(provider.0),
            };
            return Err(self.reject(request, Status::BadProvider, RejectReason::Invalid(e)));
        }
        if !self.limits.providers.allows(provider) {
            return Err(self.reject(
                request,
                Status::ProvNoSup,
                RejectReason::ProviderDisabled(provider),
            ));
        }
        let nlanes_at = c_at + common_field::NLANES.start;
        if common.nlanes == 0 {
            let e = wire::Error::TooSmall {
                msg,
                field: "c.nlanes",
                offset: nlanes_at,
                value: 0,
                min: 1,
            };
            return Err(self.reject(request, Status::BadNlanes, RejectReason::Invalid(e)));
        }
        if common.nlanes > self.limits.max_nlanes {
            let e = wire::Error::TooLarge {
                msg,
                field: "c.nlanes",
                offset: nlanes_at,
                value: u64::from(common.nlanes),
                limit: u64::from(self.limits.max_nlanes),
            };
            return Err(self.reject(request, Status::BadNlanes, RejectReason::Invalid(e)));
        }
        if common.buff_size > self.limits.max_buff_size {
            let e = wire::Error::TooLarge {
                msg,
                field: "c.buff_size",
                offset: c_at + common_field::BUFF_SIZE.start,
                value: common.buff_size,
                limit: self.limits.max_buff_size,
            };
            return Err(self.reject(request, Status::Fatal, RejectReason::Invalid(e)));
        }
        if pool_open {
            return Err(self.reject(request, Status::Fatal, RejectReason::PoolOpen));
        }

        self.session = Some(common);
        self.pending_attr = attr;
        self.state = State::Pending { request };
        Ok(())
    }

    fn take_set_attr(&mut self, pool_open: bool) -> Result<(), OobError> {
        let parsed = SetAttr::new_checked(self.input.bytes()).and_then(|v| SetAttrRepr::parse(&v));
        let repr = match parsed {
            Ok(r) => r,
            Err(e) => {
                return Err(self.reject(MsgType::SetAttr, Status::Fatal, RejectReason::Invalid(e)))
            }
        };
        if !pool_open {
            return Err(self.reject(MsgType::SetAttr, Status::Fatal, RejectReason::NoPool));
        }
        self.pending_attr = repr.attr;
        self.state = State::Pending {
            request: MsgType::SetAttr,
        };
        Ok(())
    }

    fn take_close(&mut self, pool_open: bool) -> Result<(), OobError> {
        let parsed = Close::new_checked(self.input.bytes()).and_then(|v| CloseRepr::parse(&v));
        let repr = match parsed {
            Ok(r) => r,
            Err(e) => {
                return Err(self.reject(MsgType::Close, Status::Fatal, RejectReason::Invalid(e)))
            }
        };
        if !pool_open {
            return Err(self.reject(MsgType::Close, Status::Fatal, RejectReason::NoPool));
        }
        self.pending_flags = repr.flags;
        self.state = State::Pending {
            request: MsgType::Close,
        };
        Ok(())
    }

    /// The CREATE_RESP for the pending CREATE.
    ///
    /// With [`Status::Success`], `accept` must hold the in-band attributes
    /// (port 1..=65535, GPSPM or APM, 1 to the requested number of lanes)
    /// and, exactly when the request named one of our providers, the
    /// extension block (non-zero secret); a mistake there is an error that
    /// leaves the machine waiting for a correct answer. With any other
    /// status `accept` is ignored, zeros are sent as PMDK does, and the
    /// session is over.
    pub fn respond_create(
        &mut self,
        status: Status,
        accept: Option<(IbcRepr, Option<ExtRepr>)>,
    ) -> Result<&[u8], OobError> {
        if self.state
            != (State::Pending {
                request: MsgType::Create,
            })
        {
            return Err(self.wrong_state("respond_create"));
        }
        let repr = if status.is_success() {
            let (ibc, ext) = accept.ok_or(OobError::InvalidResponse {
                response: MsgType::CreateResp,
                reason: "a successful answer needs the in-band attributes",
            })?;
            self.check_accept(MsgType::CreateResp, &ibc, ext, create_resp_field::EXT.start)?;
            CreateRespRepr { status, ibc, ext }
        } else {
            CreateRespRepr {
                status,
                ibc: IbcRepr::ZERO,
                ext: None,
            }
        };
        let len = repr
            .emit(self.output.space())
            .map_err(OobError::BadResponse)?;
        self.finish_open(status);
        Ok(self.output.get(len))
    }

    /// The OPEN_RESP for the pending OPEN; `accept` carries the in-band
    /// attributes, the pool's attributes and the extension block. Same
    /// rules as [`Server::respond_create`]; a failed answer carries zero
    /// attributes.
    pub fn respond_open(
        &mut self,
        status: Status,
        accept: Option<(IbcRepr, PoolAttr, Option<ExtRepr>)>,
    ) -> Result<&[u8], OobError> {
        if self.state
            != (State::Pending {
                request: MsgType::Open,
            })
        {
            return Err(self.wrong_state("respond_open"));
        }
        let repr = if status.is_success() {
            let (ibc, attr, ext) = accept.ok_or(OobError::InvalidResponse {
                response: MsgType::OpenResp,
                reason: "a successful answer needs the in-band and pool attributes",
            })?;
            self.check_accept(MsgType::OpenResp, &ibc, ext, open_resp_field::EXT.start)?;
            OpenRespRepr {
                status,
                ibc,
                attr,
                ext,
            }
        } else {
            OpenRespRepr {
                status,
                ibc: IbcRepr::ZERO,
                attr: PoolAttr::ZERO,
                ext: None,
            }
        };
        let len = repr
            .emit(self.output.space())
            .map_err(OobError::BadResponse)?;
        self.finish_open(status);
        Ok(self.output.get(len))
    }

    /// The SET_ATTR_RESP for the pending SET_ATTR. The pool stays open
    /// whatever the status (as in PMDK).
    pub fn respond_set_attr(&mut self, status: Status) -> Result<&[u8], OobError> {
        if self.state
            != (State::Pending {
                request: MsgType::SetAttr,
            })
        {
            return Err(self.wrong_state("respond_set_attr"));
        }
        let len = SetAttrRespRepr { status }
            .emit(self.output.space())
            .map_err(OobError::BadResponse)?;
        self.state = State::Idle { pool_open: true };
        Ok(self.output.get(len))
    }

    /// The CLOSE_RESP for the pending CLOSE; the session is over.
    pub fn respond_close(&mut self, status: Status) -> Result<&[u8], OobError> {
        if self.state
            != (State::Pending {
                request: MsgType::Close,
            })
        {
            return Err(self.wrong_state("respond_close"));
        }
        let len = CloseRespRepr { status }
            .emit(self.output.space())
            .map_err(OobError::BadResponse)?;
        self.state = State::Done;
        Ok(self.output.get(len))
    }

    /// After a CREATE_RESP / OPEN_RESP: the pool is open on success, the
    /// session over otherwise (PMDK's rpmemd exits after a failed one).
    fn finish_open(&mut self, status: Status) {
        self.state = if status.is_success() {
            State::Idle { pool_open: true }
        } else {
            State::Done
        };
    }

    /// What a successful CREATE_RESP / OPEN_RESP must satisfy.
    fn check_accept(
        &self,
        response: MsgType,
        ibc: &IbcRepr,
        ext: Option<ExtRepr>,
        ext_at: usize,
    ) -> Result<(), OobError> {
        let requested = self.session.map_or(0, |c| c.nlanes);
        let provider = self.session.map_or(Provider::UNKNOWN, |c| c.provider);
        ibc.validate(response.name(), create_resp_field::IBC.start, requested)
            .map_err(OobError::BadResponse)?;
        match ext {
            Some(ext) if provider.has_extension() => ext
                .validate(response.name(), ext_at)
                .map_err(OobError::BadResponse),
            Some(_) => Err(OobError::InvalidResponse {
                response,
                reason: "the extension block is only for our providers (PMDK's would reject it)",
            }),
            None if provider.has_extension() => Err(OobError::InvalidResponse {
                response,
                reason: "our providers need the extension block",
            }),
            None => Ok(()),
        }
    }

    /// Tells the server the client's side reached end of file.
    ///
    /// Fine once the session is over or before any request; an error when
    /// a request was cut short, a response is still due, or the pool is
    /// open (the driver then closes it as PMDK's rpmemd does).
    pub fn handle_eof(&mut self) -> Result<(), OobError> {
        let got = self.input.len();
        let during = self.state.describe();
        let result = match self.state {
            State::Done | State::Failed | State::Rejected { .. } | State::Starting => Ok(()),
            State::Idle { .. } if got > 0 => {
                let need = MsgHdr::new_checked(self.input.bytes())
                    .map(|h| usize::try_from(h.size()).unwrap_or(usize::MAX))
                    .unwrap_or(MSG_HDR_LEN);
                Err(OobError::UnexpectedEof {
                    during: "reading a request",
                    got,
                    need,
                })
            }
            State::Idle { pool_open: false } => Ok(()),
            State::Idle { pool_open: true } | State::Pending { .. } => {
                Err(OobError::Disconnected { during })
            }
        };
        if !matches!(self.state, State::Rejected { .. }) {
            self.state = if result.is_ok() {
                State::Done
            } else {
                State::Failed
            };
        }
        self.input.clear();
        result
    }

    /// The event for the pending request.
    fn event(&self) -> ServerEvent<'_> {
        let desc = PoolDesc::from_validated(self.desc.get(..self.desc_len).unwrap_or(&[]));
        let common = self
            .session
            .unwrap_or(CommonRepr::new(0, 0, Provider::UNKNOWN, 0));
        match self.state {
            State::Pending {
                request: MsgType::Create,
            } => ServerEvent::Create {
                common,
                attr: self.pending_attr,
                pool_desc: desc,
            },
            State::Pending {
                request: MsgType::Open,
            } => ServerEvent::Open {
                common,
                pool_desc: desc,
            },
            State::Pending {
                request: MsgType::SetAttr,
            } => ServerEvent::SetAttr {
                attr: self.pending_attr,
            },
            _ => ServerEvent::Close {
                flags: self.pending_flags,
            },
        }
    }
}

/// A CREATE's version, descriptor and values, with the status PMDK would
/// answer a failure with.
fn parse_create<'a>(
    msg: &'static str,
    bytes: &'a [u8],
) -> Result<(CommonRepr, PoolAttr, PoolDesc<'a>), (Status, wire::Error)> {
    let view = Create::new_checked(bytes).map_err(|e| (Status::BadName, e))?;
    check_version(msg, &view.common())?;
    let repr = CreateRepr::parse(&view).map_err(|e| (Status::BadName, e))?;
    Ok((repr.common, repr.attr, repr.pool_desc))
}

/// An OPEN's version, descriptor and values, with the status PMDK would
/// answer a failure with.
fn parse_open<'a>(
    msg: &'static str,
    bytes: &'a [u8],
) -> Result<(CommonRepr, PoolAttr, PoolDesc<'a>), (Status, wire::Error)> {
    let view = Open::new_checked(bytes).map_err(|e| (Status::BadName, e))?;
    check_version(msg, &view.common())?;
    let repr = OpenRepr::parse(&view).map_err(|e| (Status::BadName, e))?;
    Ok((repr.common, PoolAttr::ZERO, repr.pool_desc))
}

/// PMDK's `rpmemd_obc_check_proto_ver`: exactly 0.1, except with our TCP
/// provider, whose lanes are sealed: exactly 0.2
/// ([`CommonRepr::SEALED_TCP_MINOR`]); 0.1 with it is a client from before
/// the sealing, refused with [`wire::Error::ClientPredatesSealing`].
fn check_version(msg: &'static str, common: &Common<'_>) -> Result<(), (Status, wire::Error)> {
    let at = create_field::C.start;
    if common.major() != PROTO_MAJOR {
        return Err((
            Status::BadProto,
            wire::Error::Mismatch {
                msg,
                field: "c.major",
                offset: at + common_field::MAJOR.start,
                value: u64::from(common.major()),
                expected: u64::from(PROTO_MAJOR),
            },
        ));
    }
    let needed = CommonRepr::minor_for(common.provider());
    if common.minor() == needed {
        return Ok(());
    }
    let offset = at + common_field::MINOR.start;
    if common.provider() == Provider::TCP && common.minor() == PROTO_MINOR {
        return Err((
            Status::BadProto,
            wire::Error::ClientPredatesSealing {
                msg,
                offset,
                minor: common.minor(),
                needed,
            },
        ));
    }
    Err((
        Status::BadProto,
        wire::Error::Mismatch {
            msg,
            field: "c.minor",
            offset,
            value: u64::from(common.minor()),
            expected: u64::from(needed),
        },
    ))
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

const _: () = {
    assert!(create_field::C.start == open_field::C.start);
    assert!(create_resp_field::IBC.start == open_resp_field::IBC.start);
};
