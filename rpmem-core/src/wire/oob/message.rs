//! Any request or any response, dispatched on the header's type.

use super::{
    hdr_field, hdr_resp_field, Close, CloseRepr, CloseRespRepr, Create, CreateRepr, CreateResp,
    CreateRespRepr, Error, MsgHdr, MsgType, Open, OpenRepr, OpenResp, OpenRespRepr, Provider,
    RespHdr, SetAttr, SetAttrRepr, SetAttrRespRepr, Status,
};

/// Any message a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// CREATE.
    Create(CreateRepr<'a>),
    /// OPEN.
    Open(OpenRepr<'a>),
    /// CLOSE.
    Close(CloseRepr),
    /// SET_ATTR.
    SetAttr(SetAttrRepr),
}

impl<'a> Request<'a> {
    /// Parses the request at the front of `buf` (which may hold more bytes
    /// after it; [`Request::buffer_len`] tells how many belong to it).
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, Error> {
        let hdr = MsgHdr::new_checked(buf)?;
        let value = hdr.msg_type();
        match MsgType::from_u32(value) {
            Some(MsgType::Create) => Ok(Request::Create(CreateRepr::parse(&Create::new_checked(
                buf,
            )?)?)),
            Some(MsgType::Open) => Ok(Request::Open(OpenRepr::parse(&Open::new_checked(buf)?)?)),
            Some(MsgType::Close) => {
                Ok(Request::Close(CloseRepr::parse(&Close::new_checked(buf)?)?))
            }
            Some(MsgType::SetAttr) => Ok(Request::SetAttr(SetAttrRepr::parse(
                &SetAttr::new_checked(buf)?,
            )?)),
            Some(_) => Err(Error::UnexpectedType {
                msg: "request header",
                offset: hdr_field::TYPE.start,
                value,
                expected: "a request type (CREATE, OPEN, CLOSE or SET_ATTR)",
            }),
            None => Err(Error::Unknown {
                msg: "request header",
                field: "hdr.type",
                offset: hdr_field::TYPE.start,
                value: u64::from(value),
            }),
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Request::Create(_) => MsgType::Create,
            Request::Open(_) => MsgType::Open,
            Request::Close(_) => MsgType::Close,
            Request::SetAttr(_) => MsgType::SetAttr,
        }
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        match self {
            Request::Create(r) => r.buffer_len(),
            Request::Open(r) => r.buffer_len(),
            Request::Close(r) => r.buffer_len(),
            Request::SetAttr(r) => r.buffer_len(),
        }
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Request::Create(r) => r.emit(buf),
            Request::Open(r) => r.emit(buf),
            Request::Close(r) => r.emit(buf),
            Request::SetAttr(r) => r.emit(buf),
        }
    }
}

/// Any message rpmemd sends after its start-up status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// CREATE_RESP.
    Create(CreateRespRepr),
    /// OPEN_RESP.
    Open(OpenRespRepr),
    /// CLOSE_RESP.
    Close(CloseRespRepr),
    /// SET_ATTR_RESP.
    SetAttr(SetAttrRespRepr),
}

impl Response {
    /// Parses the response at the front of `buf`, for a session whose
    /// CREATE/OPEN named `provider` (which decides whether the extension
    /// block may follow, see [`CreateRespRepr::parse`]).
    pub fn parse(buf: &[u8], provider: Provider) -> Result<Response, Error> {
        let hdr = RespHdr::new_checked(buf)?;
        let value = hdr.msg_type();
        match MsgType::from_u32(value) {
            Some(MsgType::CreateResp) => Ok(Response::Create(CreateRespRepr::parse(
                &CreateResp::new_checked(buf)?,
                provider,
            )?)),
            Some(MsgType::OpenResp) => Ok(Response::Open(OpenRespRepr::parse(
                &OpenResp::new_checked(buf)?,
                provider,
            )?)),
            Some(MsgType::CloseResp) => Ok(Response::Close(CloseRespRepr::parse(&hdr)?)),
            Some(MsgType::SetAttrResp) => Ok(Response::SetAttr(SetAttrRespRepr::parse(&hdr)?)),
            Some(_) => Err(Error::UnexpectedType {
                msg: "response header",
                offset: hdr_resp_field::TYPE.start,
                value,
                expected: "a response type",
            }),
            None => Err(Error::Unknown {
                msg: "response header",
                field: "hdr.type",
                offset: hdr_resp_field::TYPE.start,
                value: u64::from(value),
            }),
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Response::Create(_) => MsgType::CreateResp,
            Response::Open(_) => MsgType::OpenResp,
            Response::Close(_) => MsgType::CloseResp,
            Response::SetAttr(_) => MsgType::SetAttrResp,
        }
    }

    /// The status.
    pub fn status(&self) -> Status {
        match self {
            Response::Create(r) => r.status,
            Response::Open(r) => r.status,
            Response::Close(r) => r.status,
            Response::SetAttr(r) => r.status,
        }
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        match self {
            Response::Create(r) => r.buffer_len(),
            Response::Open(r) => r.buffer_len(),
            Response::Close(r) => r.buffer_len(),
            Response::SetAttr(r) => r.buffer_len(),
        }
    }

    /// Writes the message to the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Response::Create(r) => r.emit(buf),
            Response::Open(r) => r.emit(buf),
            Response::Close(r) => r.emit(buf),
            Response::SetAttr(r) => r.emit(buf),
        }
    }
}
