//! The client side of the out-of-band protocol (what librpmem's
//! `rpmem_obc` and `rpmem_ssh` do), without I/O.

use super::fill::{Accum, Out};
use super::OobError;
use crate::attr::PoolAttr;
use crate::wire::oob::{
    self as wire, common_field, create_field, create_resp_field, hdr_resp_field, open_field,
    open_resp_field, CloseRepr, CommonRepr, CreateRepr, Errno, ExtRepr, IbcRepr, MsgType, OpenRepr,
    PoolDesc, Provider, RespHdr, RespHdrRepr, Response, SetAttrRepr, Status, StatusWord,
    StatusWordRepr, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, MSG_HDR_RESP_LEN, STATUS_WORD_LEN,
};

/// What the client asks for in CREATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateRequest<'a> {
    /// Size of the local pool to replicate.
    pub pool_size: u64,
    /// Lanes wanted (at least 1); rpmemd may grant fewer.
    pub nlanes: u32,
    /// Data path provider.
    pub provider: Provider,
    /// Inline persist buffer size (librpmem sends 8192).
    pub buff_size: u64,
    /// Attributes of the new pool ([`PoolAttr::ZERO`] for no headers).
    pub attr: PoolAttr,
    /// Pool set name on the target.
    pub pool_desc: PoolDesc<'a>,
}

/// What the client asks for in OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRequest<'a> {
    /// Size of the local pool to replicate.
    pub pool_size: u64,
    /// Lanes wanted (at least 1); rpmemd may grant fewer.
    pub nlanes: u32,
    /// Data path provider.
    pub provider: Provider,
    /// Inline persist buffer size (librpmem sends 8192).
    pub buff_size: u64,
    /// Pool set name on the target.
    pub pool_desc: PoolDesc<'a>,
}

/// A successful CREATE_RESP, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateResponse {
    /// How to reach the data path (port 1..=65535, GPSPM or APM, 1 to the
    /// requested number of lanes).
    pub ibc: IbcRepr,
    /// Our extension block: present exactly when the provider is ours.
    pub ext: Option<ExtRepr>,
}

/// A successful OPEN_RESP, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenResponse {
    /// How to reach the data path.
    pub ibc: IbcRepr,
    /// The attributes stored in the pool.
    pub attr: PoolAttr,
    /// Our extension block: present exactly when the provider is ours.
    pub ext: Option<ExtRepr>,
}

/// What the client learnt from the bytes it was fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// rpmemd's start-up status word is 0: requests may be sent.
    Ready,
    /// The pool was created.
    Created(CreateResponse),
    /// The pool was opened.
    Opened(OpenResponse),
    /// SET_ATTR succeeded.
    AttrSet,
    /// CLOSE succeeded; the session is over.
    Closed,
    /// rpmemd answered `request` with a failure status. After a failed
    /// CREATE, OPEN or CLOSE the session is over; after a failed SET_ATTR
    /// the pool stays open. [`Status::errno`] is what librpmem reports.
    Failed {
        /// The status received.
        status: Status,
        /// The request it answers.
        request: MsgType,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for rpmemd's start-up status word.
    AwaitStatus,
    /// Ready for CREATE or OPEN.
    Ready,
    /// A request is out; its response has not fully arrived.
    Awaiting {
        request: MsgType,
        provider: Provider,
        nlanes: u32,
    },
    /// The pool is open.
    Established { provider: Provider, nlanes: u32 },
    /// The session ended normally.
    Done,
    /// The session failed.
    Failed,
}

impl State {
    fn describe(&self) -> &'static str {
        match self {
            State::AwaitStatus => "waiting for the start-up status word",
            State::Ready => "no pool is open yet",
            State::Awaiting { request, .. } => match request {
                MsgType::Create => "waiting for CREATE_RESP",
                MsgType::Open => "waiting for OPEN_RESP",
                MsgType::SetAttr => "waiting for SET_ATTR_RESP",
                _ => "waiting for CLOSE_RESP",
            },
            State::Established { .. } => "the pool is open",
            State::Done => "the session has ended",
            State::Failed => "the session has failed",
        }
    }
}

/// The client machine.
///
/// Feed it everything read from rpmemd's stdout with
/// [`Client::handle_input`] (any split; it returns how much it used and
/// stops after each event), write what the `send_*` calls return to
/// rpmemd's stdin, and tell it about end of file with
/// [`Client::handle_eof`].
#[derive(Debug)]
pub struct Client {
    state: State,
    input: Accum<MAX_RESPONSE_LEN>,
    output: Out<MAX_REQUEST_LEN>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client waiting for rpmemd's start-up status word.
    pub const fn new() -> Client {
        Client {
            state: State::AwaitStatus,
            input: Accum::new(),
            output: Out::new(),
        }
    }

    /// The state in words (for logs).
    pub fn state(&self) -> &'static str {
        self.state.describe()
    }

    /// True once CREATE or OPEN succeeded and until CLOSE is answered.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// True when the session is over (closed, refused or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// The provider and lanes granted, once established.
    pub fn session(&self) -> Option<(Provider, u32)> {
        match self.state {
            State::Established { provider, nlanes } => Some((provider, nlanes)),
            State::Awaiting {
                request: MsgType::SetAttr | MsgType::Close,
                provider,
                nlanes,
            } => Some((provider, nlanes)),
            _ => None,
        }
    }

    fn wrong_state(&self, call: &'static str) -> OobError {
        OobError::WrongState {
            call,
            state: self.state.describe(),
        }
    }

    fn fail(&mut self, error: OobError) -> OobError {
        self.state = State::Failed;
        self.input.clear();
        error
    }

    /// Checks what CREATE and OPEN share before anything is sent: the
    /// provider is one we know and at least one lane is asked for.
    fn check_common(msg: &'static str, common: &CommonRepr) -> Result<(), OobError> {
        if !common.provider.is_known() {
            return Err(OobError::BadRequest(wire::Error::Unknown {
                msg,
                field: "c.provider",
                offset: create_field::C.start + common_field::PROVIDER.start,
                value: u64::from(common.provider.0),
            }));
        }
        if common.nlanes == 0 {
            return Err(OobError::BadRequest(wire::Error::TooSmall {
                msg,
                field: "c.nlanes",
                offset: create_field::C.start + common_field::NLANES.start,
                value: 0,
                min: 1,
            }));
        }
        Ok(())
    }

    /// The CREATE to write to rpmemd. Only allowed once [`ClientEvent::Ready`]
    /// was seen and before any other request.
    pub fn send_create(&mut self, request: &CreateRequest<'_>) -> Result<&[u8], OobError> {
        if self.state != State::Ready {
            return Err(self.wrong_state("send_create"));
        }
        let repr = CreateRepr {
            common: CommonRepr::new(
                request.pool_size,
                request.nlanes,
                request.provider,
                request.buff_size,
            ),
            attr: request.attr,
            pool_desc: request.pool_desc,
        };
        Self::check_common("CREATE", &repr.common)?;
        let len = repr
            .emit(self.output.space())
            .map_err(OobError::BadRequest)?;
        self.state = State::Awaiting {
            request: MsgType::Create,
            provider: request.provider,
            nlanes: request.nlanes,
        };
        Ok(self.output.get(len))
    }

    /// The OPEN to write to rpmemd. Only allowed once [`ClientEvent::Ready`]
    /// was seen and before any other request.
    pub fn send_open(&mut self, request: &OpenRequest<'_>) -> Result<&[u8], OobError> {
        if self.state != State::Ready {
            return Err(self.wrong_state("send_open"));
        }
        let repr = OpenRepr {
            common: CommonRepr::new(
                request.pool_size,
                request.nlanes,
                request.provider,
                request.buff_size,
            ),
            pool_desc: request.pool_desc,
        };
        Self::check_common("OPEN", &repr.common)?;
        let len = repr
            .emit(self.output.space())
            .map_err(OobError::BadRequest)?;
        self.state = State::Awaiting {
            request: MsgType::Open,
            provider: request.provider,
            nlanes: request.nlanes,
        };
        Ok(self.output.get(len))
    }

    /// The SET_ATTR to write to rpmemd. Only allowed while the pool is open
    /// and no other request is out.
    pub fn send_set_attr(&mut self, attr: &PoolAttr) -> Result<&[u8], OobError> {
        let State::Established { provider, nlanes } = self.state else {
            return Err(self.wrong_state("send_set_attr"));
        };
        let len = SetAttrRepr { attr: *attr }
            .emit(self.output.space())
            .map_err(OobError::BadRequest)?;
        self.state = State::Awaiting {
            request: MsgType::SetAttr,
            provider,
            nlanes,
        };
        Ok(self.output.get(len))
    }

    /// The CLOSE to write to rpmemd (`flags`:
    /// [`CLOSE_FLAGS_REMOVE`](crate::wire::oob::CLOSE_FLAGS_REMOVE) or 0).
    /// Only allowed while the pool is open and no other request is out.
    pub fn send_close(&mut self, flags: u32) -> Result<&[u8], OobError> {
        let State::Established { provider, nlanes } = self.state else {
            return Err(self.wrong_state("send_close"));
        };
        let len = CloseRepr { flags }
            .emit(self.output.space())
            .map_err(OobError::BadRequest)?;
        self.state = State::Awaiting {
            request: MsgType::Close,
            provider,
            nlanes,
        };
        Ok(self.output.get(len))
    }

    /// Takes bytes read from rpmemd. Returns how many were used (the rest
    /// belongs to later calls) and the event they completed, if any. Stops
    /// after each event. An empty slice is always fine and does nothing.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(usize, Option<ClientEvent>), OobError> {
        if input.is_empty() {
            return Ok((0, None));
        }
        match self.state {
            State::Failed => Err(self.wrong_state("handle_input")),
            State::AwaitStatus => self.input_status(input),
            State::Awaiting {
                request,
                provider,
                nlanes,
            } => self.input_response(input, request, provider, nlanes),
            State::Ready | State::Established { .. } | State::Done => self.input_unexpected(input),
        }
    }

    fn input_status(&mut self, input: &[u8]) -> Result<(usize, Option<ClientEvent>), OobError> {
        let (used, complete) = self.input.fill(STATUS_WORD_LEN, input);
        if !complete {
            return Ok((used, None));
        }
        let word = StatusWord::new_checked(self.input.bytes()).map(|v| StatusWordRepr::parse(&v));
        self.input.clear();
        match word.map_err(OobError::Wire)?.result() {
            Ok(()) => {
                self.state = State::Ready;
                Ok((used, Some(ClientEvent::Ready)))
            }
            Err(errno) => Err(self.fail(OobError::StartupFailed { errno })),
        }
    }

    /// Bytes when no response is expected: PMDK's monitor treats any as a
    /// protocol error; rpmemd's failure word is the usual cause.
    fn input_unexpected(&mut self, input: &[u8]) -> Result<(usize, Option<ClientEvent>), OobError> {
        let during = self.state.describe();
        let (used, complete) = self.input.fill(STATUS_WORD_LEN, input);
        if !complete {
            return Ok((used, None));
        }
        let error = Self::word_error(self.input.bytes(), during);
        Err(self.fail(error))
    }

    /// The error for four bytes that arrived instead of a message: rpmemd's
    /// failure word when they read as a plausible errno.
    fn word_error(bytes: &[u8], during: &'static str) -> OobError {
        let mut word = [0u8; 4];
        if let Some(src) = bytes.get(..4) {
            word.copy_from_slice(src);
        }
        let value = u32::from_le_bytes(word);
        if (1..4096).contains(&value) {
            OobError::RemoteFailure {
                errno: Errno(value),
                during,
            }
        } else {
            OobError::UnexpectedData {
                bytes: word,
                during,
            }
        }
    }

    fn input_response(
        &mut self,
        input: &[u8],
        request: MsgType,
        provider: Provider,
        nlanes: u32,
    ) -> Result<(usize, Option<ClientEvent>), OobError> {
        let expected = request.response().unwrap_or(MsgType::CloseResp);
        let (plain_len, ext_len) = match expected {
            MsgType::CreateResp => (create_resp_field::LEN, Some(create_resp_field::EXT.end)),
            MsgType::OpenResp => (open_resp_field::LEN, Some(open_resp_field::EXT.end)),
            _ => (MSG_HDR_RESP_LEN, None),
        };
        let ext_len = ext_len.filter(|_| provider.has_extension());

        // The header first: its type, size and status are judged before
        // anything more is read, so a bad size never makes us wait.
        let (mut used, complete) = self.input.fill(MSG_HDR_RESP_LEN, input);
        if !complete {
            return Ok((used, None));
        }
        let hdr = RespHdr::new_checked(self.input.bytes())
            .and_then(|h| RespHdrRepr::parse_expecting(&h, expected, plain_len, ext_len));
        let hdr = match hdr {
            Ok(hdr) => hdr,
            Err(e) => return Err(self.fail(OobError::Wire(e))),
        };
        let total = usize::try_from(hdr.size).unwrap_or(usize::MAX);
        let (more, complete) = self.input.fill(total, input.get(used..).unwrap_or(&[]));
        used = used.saturating_add(more);
        if !complete {
            return Ok((used, None));
        }

        let parsed = Response::parse(self.input.bytes(), provider);
        self.input.clear();
        let response = match parsed {
            Ok(r) => r,
            Err(e) => return Err(self.fail(OobError::Wire(e))),
        };
        let status = response.status();
        if !status.is_success() {
            self.state = if request == MsgType::SetAttr {
                State::Established { provider, nlanes }
            } else {
                State::Done
            };
            return Ok((used, Some(ClientEvent::Failed { status, request })));
        }
        let event = match response {
            Response::Create(r) => {
                let checked = Self::check_ibc_ext(
                    "CREATE_RESP",
                    &r.ibc,
                    r.ext,
                    provider,
                    nlanes,
                    create_resp_field::IBC.start,
                    create_resp_field::EXT.start,
                );
                if let Err(e) = checked {
                    return Err(self.fail(e));
                }
                self.state = State::Established {
                    provider,
                    nlanes: r.ibc.nlanes,
                };
                ClientEvent::Created(CreateResponse {
                    ibc: r.ibc,
                    ext: r.ext,
                })
            }
            Response::Open(r) => {
                let checked = Self::check_ibc_ext(
                    "OPEN_RESP",
                    &r.ibc,
                    r.ext,
                    provider,
                    nlanes,
                    open_resp_field::IBC.start,
                    open_resp_field::EXT.start,
                );
                if let Err(e) = checked {
                    return Err(self.fail(e));
                }
                self.state = State::Established {
                    provider,
                    nlanes: r.ibc.nlanes,
                };
                ClientEvent::Opened(OpenResponse {
                    ibc: r.ibc,
                    attr: r.attr,
                    ext: r.ext,
                })
            }
            Response::SetAttr(_) => {
                self.state = State::Established { provider, nlanes };
                ClientEvent::AttrSet
            }
            Response::Close(_) => {
                self.state = State::Done;
                ClientEvent::Closed
            }
        };
        Ok((used, Some(event)))
    }

    /// librpmem's checks of a successful CREATE_RESP / OPEN_RESP (port,
    /// persist method), ours (1 to the requested number of lanes), and the
    /// extension: required for our providers, with a non-zero secret.
    fn check_ibc_ext(
        msg: &'static str,
        ibc: &IbcRepr,
        ext: Option<ExtRepr>,
        provider: Provider,
        nlanes: u32,
        ibc_at: usize,
        ext_at: usize,
    ) -> Result<(), OobError> {
        ibc.validate(msg, ibc_at, nlanes)?;
        match ext {
            Some(ext) => ext.validate(msg, ext_at)?,
            None if provider.has_extension() => {
                return Err(OobError::Wire(wire::Error::Mismatch {
                    msg,
                    field: "hdr.size",
                    offset: hdr_resp_field::SIZE.start,
                    value: u64::try_from(ext_at).unwrap_or(u64::MAX),
                    expected: u64::try_from(ext_at.saturating_add(wire::EXT_LEN))
                        .unwrap_or(u64::MAX),
                }));
            }
            None => {}
        }
        Ok(())
    }

    /// Tells the client rpmemd's stdout reached end of file.
    ///
    /// Fine once the session is over; otherwise an error saying what was
    /// expected. When the last bytes were rpmemd's failure word (an errno)
    /// the error is [`OobError::RemoteFailure`].
    pub fn handle_eof(&mut self) -> Result<(), OobError> {
        let during = self.state.describe();
        let got = self.input.len();
        let result = match self.state {
            State::Done | State::Failed if got == 0 => return Ok(()),
            State::AwaitStatus => Err(OobError::UnexpectedEof {
                during,
                got,
                need: STATUS_WORD_LEN,
            }),
            State::Awaiting { .. } if got == STATUS_WORD_LEN => {
                Err(Self::word_error(self.input.bytes(), during))
            }
            State::Awaiting { .. } => {
                let need = RespHdr::new_checked(self.input.bytes())
                    .map(|h| usize::try_from(h.size()).unwrap_or(usize::MAX))
                    .unwrap_or(MSG_HDR_RESP_LEN);
                Err(OobError::UnexpectedEof { during, got, need })
            }
            _ if got > 0 => Err(OobError::UnexpectedEof {
                during,
                got,
                need: STATUS_WORD_LEN,
            }),
            _ => Err(OobError::Disconnected { during }),
        };
        self.state = State::Failed;
        self.input.clear();
        result
    }
}

// Offsets used above are those of CREATE; OPEN's common block sits at the
// same place.
const _: () = assert!(create_field::C.start == open_field::C.start);
