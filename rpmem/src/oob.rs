//! The out-of-band session: drives `rpmem_core::oob::Client` over rpmemd's
//! stdin and stdout, with a deadline on every wait.

use std::time::{Duration, Instant};

use rpmem_core::oob::{
    Client, ClientEvent, CreateRequest, CreateResponse, OobError, OpenRequest, OpenResponse,
};
use rpmem_core::wire::oob::{CommonRepr, MsgType, Provider, Status, PROTO_MINOR};
use rpmem_core::PoolAttr;

use crate::error::Error;
use crate::launch::{Recv, Remote};

/// What the library waits for after sending CREATE.
const WAIT_CREATE: &str = "waiting for CREATE_RESP";
/// What the library waits for after sending OPEN.
const WAIT_OPEN: &str = "waiting for OPEN_RESP";

/// How long to wait for rpmemd's last stderr lines once it has ended.
pub(crate) const STDERR_GRACE: Duration = Duration::from_secs(2);

/// One out-of-band session with rpmemd.
pub(crate) struct OobSession {
    remote: Remote,
    client: Client,
    pending: Vec<u8>,
    host: String,
    pool_set: String,
    timeout: Duration,
    /// The provider of the CREATE / OPEN sent, once sent.
    provider: Option<Provider>,
}

impl std::fmt::Debug for OobSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OobSession")
            .field("command", &self.remote.command())
            .field("pid", &self.remote.info().pid)
            .field("state", &self.client.state())
            .field("host", &self.host)
            .field("pool_set", &self.pool_set)
            .finish()
    }
}

impl OobSession {
    /// Waits for rpmemd's start-up status word.
    pub(crate) fn start(
        remote: Remote,
        host: &str,
        pool_set: &str,
        timeout: Duration,
    ) -> Result<OobSession, Error> {
        let mut s = OobSession {
            remote,
            client: Client::new(),
            pending: Vec::new(),
            host: host.to_owned(),
            pool_set: pool_set.to_owned(),
            timeout,
            provider: None,
        };
        match s.wait_event("waiting for rpmemd's start-up status word")? {
            ClientEvent::Ready => Ok(s),
            other => Err(s.unexpected(other, "waiting for rpmemd's start-up status word")),
        }
    }

    /// The started process.
    pub(crate) fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Sends CREATE and waits for CREATE_RESP.
    pub(crate) fn create(&mut self, req: &CreateRequest<'_>) -> Result<CreateResponse, Error> {
        let during = WAIT_CREATE;
        let bytes = self
            .client
            .send_create(req)
            .map_err(|e| local_request_error(&e))?
            .to_vec();
        self.provider = Some(req.provider);
        self.send(&bytes, "sending CREATE")?;
        match self.wait_event(during)? {
            ClientEvent::Created(r) => Ok(r),
            other => Err(self.unexpected(other, during)),
        }
    }

    /// Sends OPEN and waits for OPEN_RESP.
    pub(crate) fn open(&mut self, req: &OpenRequest<'_>) -> Result<OpenResponse, Error> {
        let during = WAIT_OPEN;
        let bytes = self
            .client
            .send_open(req)
            .map_err(|e| local_request_error(&e))?
            .to_vec();
        self.provider = Some(req.provider);
        self.send(&bytes, "sending OPEN")?;
        match self.wait_event(during)? {
            ClientEvent::Opened(r) => Ok(r),
            other => Err(self.unexpected(other, during)),
        }
    }

    /// Sends SET_ATTR and waits for SET_ATTR_RESP.
    pub(crate) fn set_attr(&mut self, attr: &PoolAttr) -> Result<(), Error> {
        let during = "waiting for SET_ATTR_RESP";
        let bytes = self
            .client
            .send_set_attr(attr)
            .map_err(|e| local_request_error(&e))?
            .to_vec();
        self.send(&bytes, "sending SET_ATTR")?;
        match self.wait_event(during)? {
            ClientEvent::AttrSet => Ok(()),
            other => Err(self.unexpected(other, during)),
        }
    }

    /// Sends CLOSE (with `flags`) and waits for CLOSE_RESP.
    pub(crate) fn close(&mut self, flags: u32) -> Result<(), Error> {
        let during = "waiting for CLOSE_RESP";
        let bytes = self
            .client
            .send_close(flags)
            .map_err(|e| local_request_error(&e))?
            .to_vec();
        self.send(&bytes, "sending CLOSE")?;
        match self.wait_event(during)? {
            ClientEvent::Closed => Ok(()),
            other => Err(self.unexpected(other, during)),
        }
    }

    /// True while a pool is open in this session (CLOSE may be sent).
    pub(crate) fn is_established(&self) -> bool {
        self.client.is_established()
    }

    /// Ends the process: closes its stdin, waits up to the control timeout
    /// for it to exit, kills it otherwise.
    pub(crate) fn finish(mut self) {
        let deadline = Instant::now() + self.timeout;
        self.remote.finish(deadline);
    }

    /// Ends the process quickly (drop without close): closes its stdin,
    /// waits up to `grace`, kills it otherwise.
    pub(crate) fn abandon(mut self, grace: Duration) {
        self.remote.finish(Instant::now() + grace);
    }

    fn send(&mut self, bytes: &[u8], during: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout;
        match self.remote.send_all(bytes, deadline) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => Err(self.timeout_error(during)),
            Err(e) => Err(Error::Disconnected {
                host: self.host.clone(),
                during: during.to_owned(),
                message: format!(
                    "writing to {} failed ({e}); {}",
                    self.remote.info().who,
                    self.remote.info().describe(STDERR_GRACE)
                ),
            }),
        }
    }

    /// Feeds the client machine until it reports an event.
    fn wait_event(&mut self, during: &str) -> Result<ClientEvent, Error> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        loop {
            if !self.pending.is_empty() {
                match self.client.handle_input(&self.pending) {
                    Ok((used, event)) => {
                        let used = used.min(self.pending.len());
                        self.pending.drain(..used);
                        if let Some(event) = event {
                            return match event {
                                ClientEvent::Failed { status, request } => {
                                    Err(self.refused(status, request))
                                }
                                event => Ok(event),
                            };
                        }
                        if used > 0 {
                            continue;
                        }
                    }
                    Err(e) => return Err(self.machine_error(e, during)),
                }
            }
            match self.remote.recv_some(&mut buf, deadline) {
                Ok(Recv::Data(n)) => self.pending.extend_from_slice(buf.get(..n).unwrap_or(&[])),
                Ok(Recv::Eof) => {
                    return Err(match self.client.handle_eof() {
                        Err(e) => self.machine_error(e, during),
                        Ok(()) => self.gone(during, None),
                    });
                }
                Ok(Recv::Timeout) => return Err(self.timeout_error(during)),
                Err(e) => {
                    return Err(Error::Io {
                        what: format!("reading from {} while {during}", self.remote.info().who),
                        source: e,
                    })
                }
            }
        }
    }

    fn refused(&mut self, status: Status, request: MsgType) -> Error {
        // rpmemd ends the session after a failed CREATE, OPEN or CLOSE; wait
        // for it so that its last words are on stderr.
        let grace = if request == MsgType::SetAttr {
            Duration::from_millis(50)
        } else {
            let _ = self
                .remote
                .wait_until(Instant::now() + STDERR_GRACE.min(self.timeout));
            STDERR_GRACE
        };
        let text = self.remote.info().stderr.text(grace);
        let message = refusal_message(&self.host, self.provider, status, text);
        Error::Refused {
            host: self.host.clone(),
            request,
            pool_set: self.pool_set.clone(),
            status,
            message,
        }
    }

    fn machine_error(&mut self, e: OobError, during: &str) -> Error {
        match e {
            OobError::StartupFailed { errno } => {
                let _ = self
                    .remote
                    .wait_until(Instant::now() + STDERR_GRACE.min(self.timeout));
                let text = self.remote.info().stderr.text(STDERR_GRACE);
                Error::Startup {
                    host: self.host.clone(),
                    errno,
                    message: if text.is_empty() {
                        "rpmemd wrote nothing on stderr; its log on the target may say more"
                            .to_owned()
                    } else {
                        text
                    },
                }
            }
            OobError::RemoteFailure { errno, .. }
                if during == WAIT_CREATE || during == WAIT_OPEN =>
            {
                // Our rpmemd answers every well-formed CREATE/OPEN with a
                // status; PMDK 1.12.1's rpmemd ends the session with its
                // failure word when the request names a data path it does not
                // know (it logs "invalid provider -- <n>").
                let _ = self
                    .remote
                    .wait_until(Instant::now() + STDERR_GRACE.min(self.timeout));
                let words = self.remote.info().describe(STDERR_GRACE);
                Error::Protocol {
                    host: self.host.clone(),
                    during: during.to_owned(),
                    detail: format!(
                        "rpmemd ended the session with {errno} instead of answering. That is what \
                         PMDK's rpmemd (1.12.1 and earlier) does with a request for a data path it \
                         does not know, such as this library's TCP data path: the rpmemd started \
                         on {host} is probably PMDK's, which cannot serve this library. Install \
                         this project's rpmemd on {host}, or set RPMEM_CMD to its path there \
                         ({words})",
                        host = self.host
                    ),
                }
            }
            OobError::RemoteFailure { errno, .. } => {
                self.gone(during, Some(format!("rpmemd reported {errno}")))
            }
            OobError::UnexpectedEof { got, need, .. } => self.gone(
                during,
                Some(format!("the channel closed after {got} of {need} bytes")),
            ),
            OobError::Disconnected { .. } => self.gone(during, None),
            other => Error::Protocol {
                host: self.host.clone(),
                during: during.to_owned(),
                detail: other.to_string(),
            },
        }
    }

    /// rpmemd (or ssh) went away: its own words, and `what` we saw.
    fn gone(&mut self, during: &str, what: Option<String>) -> Error {
        let _ = self
            .remote
            .wait_until(Instant::now() + STDERR_GRACE.min(self.timeout));
        let words = self.remote.info().describe(STDERR_GRACE);
        Error::Disconnected {
            host: self.host.clone(),
            during: during.to_owned(),
            message: match what {
                Some(w) => format!("{w}; {words}"),
                None => words,
            },
        }
    }

    fn timeout_error(&self, during: &str) -> Error {
        Error::Timeout {
            host: self.host.clone(),
            during: during.to_owned(),
            after: self.timeout,
            message: self.remote.info().describe(Duration::ZERO),
        }
    }

    fn unexpected(&self, event: ClientEvent, during: &str) -> Error {
        Error::Protocol {
            host: self.host.clone(),
            during: during.to_owned(),
            detail: format!("the client machine reported {event:?}"),
        }
    }
}

/// The message of [`Error::Refused`]: rpmemd's stderr `text`, or a
/// pointer to its log when it wrote nothing. When the refusal means rpmemd
/// predates sealed TCP lanes (`RPMEM_ERR_BADPROTO` to a request for the TCP
/// provider, which this client sends at protocol 0.2), it says so first,
/// naming both versions and what to do.
fn refusal_message(host: &str, provider: Option<Provider>, status: Status, text: String) -> String {
    let said = if text.is_empty() {
        "rpmemd wrote nothing on stderr; its log on the target may say more".to_owned()
    } else {
        text
    };
    match provider {
        Some(p) if CommonRepr::refusal_predates_sealing(p, status) => format!(
            "rpmemd on {host} predates sealed TCP lanes: this client needs protocol 0.{new} with \
             the tcp provider and that rpmemd accepts only 0.{old}; upgrade rpmemd on {host} \
             (rpmemd said: {said})",
            new = CommonRepr::SEALED_TCP_MINOR,
            old = PROTO_MINOR,
        ),
        _ => said,
    }
}

/// A request the core refused to build: a caller mistake (bad pool set name,
/// no lanes) caught before anything was sent.
fn local_request_error(e: &OobError) -> Error {
    Error::InvalidArgument(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_proto_to_a_tcp_request_names_an_rpmemd_from_before_sealing() {
        let old_rpmemd = "CREATE refused: CREATE: c.minor 2 at offset 14 should be 1".to_owned();
        let m = refusal_message(
            "node7",
            Some(Provider::TCP),
            Status::BadProto,
            old_rpmemd.clone(),
        );
        assert_eq!(
            m,
            "rpmemd on node7 predates sealed TCP lanes: this client needs protocol 0.2 with the \
             tcp provider and that rpmemd accepts only 0.1; upgrade rpmemd on node7 (rpmemd \
             said: CREATE refused: CREATE: c.minor 2 at offset 14 should be 1)"
        );
        let e = Error::Refused {
            host: "node7".to_owned(),
            request: MsgType::Create,
            pool_set: "p.set".to_owned(),
            status: Status::BadProto,
            message: m,
        };
        let shown = e.to_string();
        assert!(shown.contains("upgrade rpmemd on node7"), "{shown}");
        assert_eq!(e.errno(), libc::EPROTONOSUPPORT);
        // Not with PMDK's providers, nor with another status.
        assert_eq!(
            refusal_message(
                "n",
                Some(Provider::LIBFABRIC_VERBS),
                Status::BadProto,
                old_rpmemd.clone()
            ),
            old_rpmemd
        );
        assert_eq!(
            refusal_message(
                "n",
                Some(Provider::TCP),
                Status::NoExist,
                old_rpmemd.clone()
            ),
            old_rpmemd
        );
        assert_eq!(
            refusal_message("n", None, Status::BadProto, String::new()),
            "rpmemd wrote nothing on stderr; its log on the target may say more"
        );
        assert!(
            refusal_message("n", Some(Provider::TCP), Status::BadProto, String::new()).ends_with(
                "(rpmemd said: rpmemd wrote nothing on stderr; its log on the target may say more)"
            )
        );
    }
}
