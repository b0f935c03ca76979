//! The out-of-band loop of a session: stdin read and fed to the core's
//! [`Server`](rpmem_core::oob::Server), each request carried out, the answers
//! written to stdout; a signal or a closed stdin ends it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rpmem_core::attr::PoolAttr;
use rpmem_core::oob::{OobError, ServerEvent};
use rpmem_core::wire::oob::{CommonRepr, IbcRepr, MsgType, Status};

use super::{refusal_line, signal, Ending, Next, Session};
use crate::logging::{self, notice};
use crate::pool::PoolError;

/// Bytes read from stdin at once.
const READ_CHUNK: usize = 64 * 1024;

impl Session<'_> {
    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.flush()
    }

    /// Tells the client why its request was refused (stderr). A failure to
    /// write is only logged: the answer on stdout still goes out.
    fn tell_refusal(&mut self, reason: &str) {
        let line = refusal_line(reason);
        let written = self
            .errors
            .write_all(line.as_bytes())
            .and_then(|()| self.errors.flush());
        if let Err(e) = written {
            log::warn!("cannot write the reason of the refusal to stderr: {e}");
        }
    }

    pub(super) fn run(
        &mut self,
        input: BorrowedFd<'_>,
        interrupt: Option<&signal::SignalPipe>,
    ) -> Ending {
        let word = match self.server.startup_status(Ok(())) {
            Ok(word) => word,
            Err(e) => return Ending::Protocol(e),
        };
        if let Err(e) = self.write(&word) {
            return Ending::Io(format!("writing the status word to stdout failed: {e}"));
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match wait_input(input, interrupt) {
                Ok(Wake::Input) => {}
                Ok(Wake::Signal(s)) => return Ending::Signal(s),
                Err(e) => return Ending::Io(format!("waiting for stdin failed: {e}")),
            }
            // SAFETY: `buf` is a valid, writable buffer of its length.
            let n = unsafe { libc::read(input.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => continue,
                    _ => return Ending::Io(format!("reading stdin failed: {e}")),
                }
            }
            let n = n.unsigned_abs();
            if n == 0 {
                return self.on_eof();
            }
            let mut data = buf.get(..n).unwrap_or_default();
            while !data.is_empty() {
                match self.feed(data) {
                    Ok((used, Next::Continue)) => {
                        data = data.get(used..).unwrap_or_default();
                        if used == 0 {
                            break;
                        }
                    }
                    Ok((_, Next::End(ending))) => return ending,
                    Err(ending) => return ending,
                }
            }
        }
    }

    fn on_eof(&mut self) -> Ending {
        match self.server.handle_eof() {
            Ok(()) if self.requests == 0 => Ending::NoRequest,
            Ok(()) => Ending::Io("stdin closed after the session ended".to_owned()),
            Err(e) => Ending::ClientGone(e),
        }
    }

    /// Feeds bytes to the server machine and carries out the request they
    /// complete.
    fn feed(&mut self, data: &[u8]) -> Result<(usize, Next), Ending> {
        let (used, request) = match self.server.handle_input(data) {
            Ok((used, event)) => (used, event.map(Request::from_event)),
            Err(e @ OobError::Rejected { .. }) => return Err(self.refused(e)),
            Err(e) => return Err(Ending::Protocol(e)),
        };
        let Some(request) = request else {
            return Ok((used, Next::Continue));
        };
        self.requests = self.requests.saturating_add(1);
        let next = match request {
            Request::Create { common, attr, name } => self.create(&common, &attr, name.as_deref()),
            Request::Open { common, name } => self.open(&common, name.as_deref()),
            Request::SetAttr { attr } => self.set_attr(&attr),
            Request::Close { remove } => self.close(remove),
        };
        next.map(|n| (used, n))
    }

    /// A request the server machine refused: send its answer and end.
    fn refused(&mut self, e: OobError) -> Ending {
        let OobError::Rejected {
            request,
            status,
            reason,
        } = e
        else {
            return Ending::Protocol(e);
        };
        let text = if let rpmem_core::oob::RejectReason::ProviderDisabled(p) = reason {
            format!("{request} asks for provider {p}, which this rpmemd does not serve")
        } else {
            format!("{request} refused: {reason}")
        };
        log::error!("{text}");
        if matches!(request, MsgType::Create | MsgType::Open) {
            self.tell_refusal(&text);
        }
        notice!("{request} response: (status = {})", status.to_u32());
        let answer = self.server.reject_response().map(<[u8]>::to_vec);
        if let Some(bytes) = answer {
            if let Err(e) = self.write(&bytes) {
                return Ending::Io(format!("writing the {request} answer failed: {e}"));
            }
        }
        Ending::Refused { request, status }
    }

    fn log_request(kind: &str, common: &CommonRepr, name: Option<&str>) {
        notice!("{kind} request:");
        notice!(
            "    pool descriptor: '{}'",
            logging::escape(name.unwrap_or("(not UTF-8)"))
        );
        notice!("    pool size: {}", common.pool_size);
        notice!("    nlanes: {}", common.nlanes);
        notice!("    provider: {}", common.provider);
        notice!("    buff_size: {}", common.buff_size);
    }

    fn create(
        &mut self,
        common: &CommonRepr,
        attr: &PoolAttr,
        name: Option<&str>,
    ) -> Result<Next, Ending> {
        Self::log_request("create", common, name);
        log_attr("pool attributes:", attr);
        let result = self.open_pool(common, name, Some(attr));
        let (status, accept) = match result {
            Ok((active, ibc, ext)) => {
                self.active = Some(active);
                (Status::Success, Some((ibc, Some(ext))))
            }
            Err(failure) => {
                self.tell_refusal(&failure.reason);
                (failure.status, None)
            }
        };
        log_response("create", status, accept.as_ref().map(|a| &a.0));
        let bytes = match self.server.respond_create(status, accept) {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(Ending::Protocol(e)),
        };
        self.answer(&bytes, MsgType::Create, status)
    }

    fn open(&mut self, common: &CommonRepr, name: Option<&str>) -> Result<Next, Ending> {
        Self::log_request("open", common, name);
        let result = self.open_pool(common, name, None);
        let (status, accept) = match result {
            Ok((active, ibc, ext)) => {
                let attr = active.pool.attr();
                log::info!("pool attributes:");
                log_attr_fields(&attr);
                self.active = Some(active);
                (Status::Success, Some((ibc, attr, Some(ext))))
            }
            Err(failure) => {
                self.tell_refusal(&failure.reason);
                (failure.status, None)
            }
        };
        log_response("open", status, accept.as_ref().map(|a| &a.0));
        let bytes = match self.server.respond_open(status, accept) {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(Ending::Protocol(e)),
        };
        self.answer(&bytes, MsgType::Open, status)
    }

    /// Writes the answer to CREATE / OPEN; a failure status ends the session.
    fn answer(&mut self, bytes: &[u8], request: MsgType, status: Status) -> Result<Next, Ending> {
        if let Err(e) = self.write(bytes) {
            return Err(Ending::Io(format!(
                "writing the {request} answer failed: {e}"
            )));
        }
        if status.is_success() {
            Ok(Next::Continue)
        } else {
            Ok(Next::End(Ending::Refused { request, status }))
        }
    }

    fn set_attr(&mut self, attr: &PoolAttr) -> Result<Next, Ending> {
        notice!("set attributes request");
        let status = match self.active.as_mut() {
            Some(active) => {
                let none = attr.is_zero() && active.pool.options().no_hdrs;
                match active.pool.set_attr((!none).then_some(attr)) {
                    Ok(()) => {
                        log::info!("new pool attributes:");
                        log_attr_fields(attr);
                        Status::Success
                    }
                    Err(e) => pool_failure(&e),
                }
            }
            None => Status::Fatal,
        };
        notice!(
            "set attributes request response: (status = {})",
            status.to_u32()
        );
        let bytes = match self.server.respond_set_attr(status) {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(Ending::Protocol(e)),
        };
        if let Err(e) = self.write(&bytes) {
            return Err(Ending::Io(format!(
                "writing the SET_ATTR answer failed: {e}"
            )));
        }
        Ok(Next::Continue)
    }

    fn close(&mut self, remove: bool) -> Result<Next, Ending> {
        notice!("close request");
        let status = match self.active.take() {
            Some(active) => {
                let remove_now = remove && active.created;
                if remove && !active.created {
                    log::warn!(
                        "CLOSE asks to remove '{}', but this session opened it rather than \
                         created it: not removing it (as PMDK's rpmemd)",
                        logging::escape(&active.name)
                    );
                }
                notice!("closing pool");
                match active.finish(remove_now) {
                    Ok(()) => Status::Success,
                    Err(e) => {
                        log::error!("closing the pool failed: {e}");
                        Status::Fatal
                    }
                }
            }
            None => Status::Fatal,
        };
        notice!("close request response (status = {})", status.to_u32());
        let bytes = match self.server.respond_close(status) {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(Ending::Protocol(e)),
        };
        if let Err(e) = self.write(&bytes) {
            return Err(Ending::Io(format!("writing the CLOSE answer failed: {e}")));
        }
        Ok(Next::End(Ending::Closed(status)))
    }
}

/// A request copied out of the server machine's event (which borrows it).
enum Request {
    Create {
        common: CommonRepr,
        attr: PoolAttr,
        name: Option<String>,
    },
    Open {
        common: CommonRepr,
        name: Option<String>,
    },
    SetAttr {
        attr: PoolAttr,
    },
    Close {
        remove: bool,
    },
}

impl Request {
    fn from_event(event: ServerEvent<'_>) -> Request {
        let remove = event.remove();
        match event {
            ServerEvent::Create {
                common,
                attr,
                pool_desc,
            } => Request::Create {
                common,
                attr,
                name: pool_desc.to_str().map(str::to_owned),
            },
            ServerEvent::Open { common, pool_desc } => Request::Open {
                common,
                name: pool_desc.to_str().map(str::to_owned),
            },
            ServerEvent::SetAttr { attr } => Request::SetAttr { attr },
            ServerEvent::Close { .. } => Request::Close { remove },
        }
    }
}

/// Logs a pool failure and gives its status (PMDK's `rpmemd_db_get_status`
/// mapping, in the pool module).
fn pool_failure(e: &PoolError) -> Status {
    log::error!("{e}");
    e.rpmem_status()
}

fn log_response(kind: &str, status: Status, ibc: Option<&IbcRepr>) {
    notice!("{kind} request response: (status = {})", status.to_u32());
    if let Some(ibc) = ibc {
        notice!("    port: {}", ibc.port);
        notice!("    nlanes: {}", ibc.nlanes);
        notice!("    persist method: {}", ibc.persist_method);
    }
}

/// Logs `title` and the attributes under it, all at `info`: a heading at a more severe level
/// than its fields would show empty at `log-level = notice`.
fn log_attr(title: &str, attr: &PoolAttr) {
    log::info!("{title}");
    if attr.is_zero() {
        log::info!("    NULL");
    } else {
        log_attr_fields(attr);
    }
}

fn log_attr_fields(attr: &PoolAttr) {
    let sig: String = attr
        .signature
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| char::from(b))
        .collect();
    log::info!("    signature: '{}'", sig.escape_default());
    log::info!("    major: {}", attr.major);
    log::info!("    compat_features: {:#x}", attr.compat_features);
    log::info!("    incompat_features: {:#x}", attr.incompat_features);
    log::info!("    ro_compat_features: {:#x}", attr.ro_compat_features);
    log::info!("    poolset_uuid: {}", hex(&attr.poolset_uuid));
    log::info!("    uuid: {}", hex(&attr.uuid));
    log::info!("    next_uuid: {}", hex(&attr.next_uuid));
    log::info!("    prev_uuid: {}", hex(&attr.prev_uuid));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What woke the stdin loop.
enum Wake {
    Input,
    Signal(libc::c_int),
}

/// Waits until stdin is readable (or closed) or a signal arrived.
fn wait_input(input: BorrowedFd<'_>, interrupt: Option<&signal::SignalPipe>) -> io::Result<Wake> {
    loop {
        if let Some(s) = interrupt.and_then(signal::SignalPipe::caught) {
            return Ok(Wake::Signal(s));
        }
        let mut fds = [
            libc::pollfd {
                fd: input.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: interrupt.map_or(-1, |p| p.fd().as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structures (a
        // negative fd is ignored by poll).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[1].revents != 0 {
            continue;
        }
        if fds[0].revents != 0 {
            return Ok(Wake::Input);
        }
    }
}
