//! One lane of the TCP data path: the core's [`StreamInitiator`] (engine,
//! framing, hello, send queue, reassembly) over one TCP connection. This
//! file only moves bytes:
//!
//! 1. write what the machine has to transmit
//!    ([`StreamInitiator::poll_transmit`]) with `sendmsg`: frame headers and
//!    persist messages from the machine, region bytes straight from the
//!    region (read by the kernel), in one gather list; report how many went
//!    out;
//! 2. read what the server sent into a staging buffer and hand it to the
//!    machine ([`StreamInitiator::handle_bytes`]), which puts `READ_RESP`
//!    bytes into the read's destination through a [`ReadSink`]; a large
//!    `READ_RESP` body is received straight into its destination
//!    ([`StreamInitiator::read_direct`]);
//! 3. stop when the machine has the call's result
//!    ([`StreamInitiator::poll_completion`]).
//!
//! On a sealed lane (the default; `docs/protocol.md`) the connection starts
//! with the core's handshake ([`rpmem_core::seal`]: the secret never goes on
//! the wire, rpmemd proves it knows it before any frame leaves), and from
//! then on every byte written is sealed into an AES-256-GCM record here
//! (region bytes are copied into the record buffer, the machine learns of
//! them as written once their whole record went out) and every byte read is
//! opened by the core's [`Inbound`] before the machine sees it.
//!
//! While nothing moves, the loop spins on non-blocking I/O for the spin
//! budget, then sleeps in `poll` until the socket is ready, rpmemd's channel
//! hangs up, or the data deadline (no progress for that long) passes.

use std::io;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use rpmem_core::persist::{Chunk, LaneParams, ReadDest, ReadSink, StreamInitiator};
use rpmem_core::seal::{
    Inbound, LaneMode, Sealer, INBOUND_BUF_LEN, MAX_RECORD, MAX_RECORD_WIRE, NONCE_LEN,
    RECORD_HEADER_LEN,
};
use rpmem_core::wire::tcp::SECRET_LEN;

use crate::driver::{deliver, Driver, LaneCx, LaneIo, ReadInto};
use crate::error::Error;
use crate::launch::{poll_ms, RemoteInfo};
use crate::oob::STDERR_GRACE;
use crate::region::Region;
use std::sync::Arc;

/// Bytes of the receive staging buffer (headers, responses, small bodies).
const STAGE_LEN: usize = 64 * 1024;
/// READ_RESP bodies at least this long are received straight into their
/// destination instead of through the staging buffer.
const DIRECT_MIN: usize = 4096;
/// Most gather entries per `sendmsg`.
const MAX_IOV: usize = 64;
/// Records a sealed lane seals before it writes them with one `sendmsg`.
const SEAL_BATCH: usize = 4;
/// Bytes of the buffer the hello's answer is received into.
const HELLO_BUF: usize = 64;

/// How a lane was configured.
#[derive(Clone, Debug)]
pub(crate) struct LaneSetup {
    /// Host for messages.
    pub(crate) host: String,
    /// Where to connect.
    pub(crate) addr: (String, u16),
    /// The session secret.
    pub(crate) secret: [u8; SECRET_LEN],
    /// Sealed (the default) or plaintext (both sides chose it).
    pub(crate) mode: LaneMode,
    /// Engine parameters (lane number inside).
    pub(crate) params: LaneParams,
    /// Spin budget.
    pub(crate) spin: Duration,
    /// Data-path deadline without progress.
    pub(crate) stall: Duration,
    /// Deadline of connecting and the hello.
    pub(crate) connect_timeout: Duration,
    /// rpmemd's stdout: hangs up when rpmemd (or ssh) goes away.
    pub(crate) watch_fd: Option<RawFd>,
}

/// The TCP I/O of one connected lane (the shared state and the core's
/// [`StreamInitiator`] are in its [`Driver`]).
pub(crate) struct LaneConn {
    sock: TcpStream,
    region: Arc<Region>,
    stage: Box<[u8]>,
    watch_fd: Option<RawFd>,
    /// The record layer of a sealed lane.
    sealed: Option<Box<Sealed>>,
}

/// The record layer of a sealed lane.
struct Sealed {
    sealer: Sealer,
    inbound: Inbound<Box<[u8]>>,
    /// The record buffer ([`SEAL_BATCH`] records of [`MAX_RECORD_WIRE`]
    /// bytes, zeroed once): the records being written are `out[..out_len]`,
    /// `out[sent..out_len]` is still to go.
    out: Box<[u8]>,
    out_len: usize,
    sent: usize,
    /// Plaintext bytes of the machine those records hold.
    out_plain: u64,
}

impl std::fmt::Debug for LaneConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConn")
            .field("sealed", &self.sealed.is_some())
            .finish()
    }
}

/// The read's destination, as the machine's [`ReadSink`].
struct Sink<'r, 'a, 'b> {
    region: &'r Region,
    into: &'a mut ReadInto<'b>,
}

impl ReadSink for Sink<'_, '_, '_> {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        deliver(
            self.region,
            self.into,
            ReadDest::User { buf_offset: at },
            0,
            bytes,
        )
    }
}

impl LaneConn {
    /// Connects and runs the handshake (the hello, rpmemd's proof checked,
    /// the lane's proof, the answer).
    pub(crate) fn connect(
        setup: &LaneSetup,
        region: Arc<Region>,
        remote: Option<Arc<RemoteInfo>>,
    ) -> Result<Driver<LaneConn>, Error> {
        // rpmemd closes connections that wait for their hello while too
        // many others do (a flood from the same address, docs/protocol.md):
        // a lane closed before rpmemd said anything is tried again, with a
        // growing pause, until the connect timeout has passed.
        let give_up = Instant::now() + setup.connect_timeout;
        let mut pause = RETRY_FIRST_PAUSE;
        loop {
            match Self::attempt(setup, Arc::clone(&region), remote.clone(), give_up) {
                Ok(conn) => return Ok(conn),
                Err(Attempt::Closed(e)) if Instant::now() + pause < give_up => {
                    log::debug!(
                        "rpmem: lane {} to {}: {e}; trying again in {pause:?}",
                        setup.params.lane,
                        setup.host
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX_PAUSE);
                }
                Err(Attempt::Closed(e) | Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    /// One connection and handshake, until `give_up` at the latest.
    fn attempt(
        setup: &LaneSetup,
        region: Arc<Region>,
        remote: Option<Arc<RemoteInfo>>,
        give_up: Instant,
    ) -> Result<Driver<LaneConn>, Attempt> {
        let index = setup.params.lane;
        let conn_err = |what: String, message: String| Error::Connection {
            host: setup.host.clone(),
            lane: index,
            what,
            message,
        };
        let nonce = rpmem_core::seal::fresh_random::<NONCE_LEN>().map_err(|e| {
            Attempt::Failed(Error::Io {
                what: format!("lane {index}: drawing the handshake nonce"),
                source: e,
            })
        })?;
        let mut machine = StreamInitiator::new(setup.params, &setup.secret, nonce, setup.mode)
            .map_err(|e| {
                Attempt::Failed(Error::Protocol {
                    host: setup.host.clone(),
                    during: format!("setting up lane {index}"),
                    detail: format!("rpmemd's answer gives lane parameters that cannot work: {e}"),
                })
            })?;
        let (host, port) = (&setup.addr.0, setup.addr.1);
        let what = format!("connecting to {host} port {port}");
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| Attempt::Failed(conn_err(what.clone(), e.to_string())))?
            .collect();
        let mut last = None;
        let mut sock = None;
        let left = give_up
            .saturating_duration_since(Instant::now())
            .max(RETRY_FIRST_PAUSE);
        for a in &addrs {
            match TcpStream::connect_timeout(a, left) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{a}: {e}")),
            }
        }
        let Some(sock) = sock else {
            let os = last.unwrap_or_else(|| "the name resolves to no address".to_owned());
            let words = remote
                .as_ref()
                .map(|r| format!("; {}", r.describe(STDERR_GRACE)))
                .unwrap_or_default();
            return Err(Attempt::Failed(conn_err(what, format!("{os}{words}"))));
        };
        let io_err =
            |what: &str, e: io::Error| Attempt::Failed(conn_err(what.to_owned(), e.to_string()));
        sock.set_nodelay(true)
            .map_err(|e| io_err("setting TCP_NODELAY", e))?;
        let deadline = give_up;
        sock.set_nonblocking(true)
            .map_err(|e| io_err("making the socket non-blocking", e))?;
        let fd = sock.as_raw_fd();
        // The handshake: the machine says what to send (its hello, then
        // its proof) and judges what arrives.
        let protocol = |e: rpmem_core::persist::StreamLaneError| {
            Attempt::Failed(Error::Protocol {
                host: setup.host.clone(),
                during: format!("opening lane {index}"),
                detail: e.to_string(),
            })
        };
        // Whether rpmemd sent anything: a connection it closed before that
        // may be tried again; after it, a failure is the lane's answer.
        let mut heard = false;
        let mut buf = [0u8; HELLO_BUF];
        while !machine.is_connected() {
            let out: Vec<u8> = machine
                .poll_transmit()
                .filter_map(|c| match c {
                    Chunk::Bytes(b) => Some(b.to_vec()),
                    Chunk::Region { .. } => None,
                })
                .flatten()
                .collect();
            if !out.is_empty() {
                send_exact(fd, &out, deadline).map_err(|e| {
                    let closed = !heard && closed_by_peer(&e);
                    let e = conn_err("sending the handshake".to_owned(), e.to_string());
                    if closed {
                        Attempt::Closed(e)
                    } else {
                        Attempt::Failed(e)
                    }
                })?;
                machine.on_transmitted(out.len() as u64).map_err(protocol)?;
                continue;
            }
            match recv_some(fd, &mut buf, deadline) {
                Ok(n) => {
                    heard = true;
                    let got = buf.get(..n).unwrap_or(&[]);
                    let mut nothing = ReadInto::Nothing;
                    let mut sink = Sink {
                        region: &region,
                        into: &mut nothing,
                    };
                    machine.handle_bytes(got, &mut sink).map_err(protocol)?;
                }
                Err(e) => {
                    let closed = !heard && closed_by_peer(&e);
                    let words = remote
                        .as_ref()
                        .map(|r| format!("; {}", r.describe(STDERR_GRACE)))
                        .unwrap_or_default();
                    let e = conn_err(
                        "waiting for rpmemd's side of the handshake".to_owned(),
                        format!("{e}{words}"),
                    );
                    return Err(if closed {
                        Attempt::Closed(e)
                    } else {
                        Attempt::Failed(e)
                    });
                }
            }
        }
        let sealed = match machine.take_keys().and_then(|k| k.client()) {
            Some((sealer, opener)) => {
                let inbound = Inbound::new(opener, vec![0u8; INBOUND_BUF_LEN].into_boxed_slice())
                    .map_err(|e| {
                    Attempt::Failed(conn_err(
                        "setting up the record layer".to_owned(),
                        e.to_string(),
                    ))
                })?;
                Some(Box::new(Sealed {
                    sealer,
                    inbound,
                    out: vec![0u8; SEAL_BATCH * MAX_RECORD_WIRE].into_boxed_slice(),
                    out_len: 0,
                    sent: 0,
                    out_plain: 0,
                }))
            }
            None => {
                log::warn!(
                    "lane {index} to {}: plaintext data path (chosen on both sides): the pool's bytes cross the network in the clear",
                    setup.host
                );
                None
            }
        };
        Ok(Driver {
            cx: LaneCx {
                index,
                engine: machine,
                remote,
                broken: None,
                host: setup.host.clone(),
                spin: setup.spin,
                stall: setup.stall,
                label: "",
            },
            io: LaneConn {
                sock,
                region,
                stage: vec![0u8; STAGE_LEN].into_boxed_slice(),
                watch_fd: setup.watch_fd,
                sealed,
            },
        })
    }

    /// One round of writing and reading. Returns whether anything moved.
    fn pump_io(
        &mut self,
        cx: &mut LaneCx<StreamInitiator>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        let wrote = self.write_out(cx)?;
        let read = self.read_in(cx, into)?;
        Ok(wrote || read)
    }

    /// Writes what the machine has to transmit until the socket takes no
    /// more.
    fn write_out(&mut self, cx: &mut LaneCx<StreamInitiator>) -> Result<bool, Error> {
        if self.sealed.is_some() {
            return self.write_sealed(cx);
        }
        let mut progressed = false;
        loop {
            let mut iov = IovList::new();
            let mut bad = None;
            for chunk in cx.engine.poll_transmit() {
                if iov.len() == MAX_IOV {
                    break;
                }
                let (ptr, len) = match chunk {
                    Chunk::Bytes(b) => (b.as_ptr(), b.len()),
                    Chunk::Region { offset, len } => match self.region.raw(offset, len) {
                        Some(p) => (p.cast_const(), usize::try_from(len).unwrap_or(usize::MAX)),
                        None => {
                            bad = Some((offset, len));
                            break;
                        }
                    },
                };
                iov.push(libc::iovec {
                    iov_base: ptr as *mut libc::c_void,
                    iov_len: len,
                });
            }
            if let Some(range) = bad {
                return Err(cx.fail(format!(
                    "frame for region range {range:?} lies outside the region"
                )));
            }
            if iov.is_empty() {
                return Ok(progressed);
            }
            let n = match sendmsg(self.sock.as_raw_fd(), iov.as_slice()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progressed),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(connection_lost(cx, "sending", &e)),
            };
            if n == 0 {
                return Ok(progressed);
            }
            progressed = true;
            if let Err(e) = cx.engine.on_transmitted(n as u64) {
                return Err(cx.fail(e.to_string()));
            }
        }
    }

    /// Seals what the machine has to transmit into records of at most
    /// [`MAX_RECORD`] bytes, up to [`SEAL_BATCH`] at a time, and writes them
    /// until the socket takes no more. The machine learns of its bytes as
    /// written once the whole batch holding them went out.
    fn write_sealed(&mut self, cx: &mut LaneCx<StreamInitiator>) -> Result<bool, Error> {
        let mut progressed = false;
        loop {
            let Some(s) = self.sealed.as_deref_mut() else {
                return Ok(progressed);
            };
            if s.sent < s.out_len {
                let rest = s.out.get(s.sent..s.out_len).unwrap_or(&[]);
                let iov = [libc::iovec {
                    iov_base: rest.as_ptr() as *mut libc::c_void,
                    iov_len: rest.len(),
                }];
                let n = match sendmsg(self.sock.as_raw_fd(), &iov) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progressed),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(connection_lost(cx, "sending", &e)),
                };
                if n == 0 {
                    return Ok(progressed);
                }
                progressed = true;
                s.sent += n;
                if s.sent == s.out_len {
                    let plain = s.out_plain;
                    s.out_len = 0;
                    s.sent = 0;
                    s.out_plain = 0;
                    if let Err(e) = cx.engine.on_transmitted(plain) {
                        return Err(cx.fail(e.to_string()));
                    }
                }
                continue;
            }
            // The next records: what the machine has, up to SEAL_BATCH
            // records of up to MAX_RECORD bytes each, back to back in `out`
            // (one `sendmsg` for them), copied straight behind each header.
            s.sent = 0;
            s.out_len = 0;
            s.out_plain = 0;
            while s.out_len + MAX_RECORD_WIRE <= s.out.len() {
                let at = s.out_len;
                let body = at + RECORD_HEADER_LEN;
                let end = body + MAX_RECORD;
                let mut fill = body;
                // Bytes of the machine already sealed into this batch.
                let mut skip = s.out_plain;
                let mut bad = None;
                for chunk in cx.engine.poll_transmit() {
                    if fill == end {
                        break;
                    }
                    let room = end - fill;
                    match chunk {
                        Chunk::Bytes(b) => {
                            let k = usize::try_from(skip).unwrap_or(usize::MAX).min(b.len());
                            skip -= k as u64;
                            let b = b.get(k..).unwrap_or_default();
                            let take = room.min(b.len());
                            if let (Some(dst), Some(src)) =
                                (s.out.get_mut(fill..fill + take), b.get(..take))
                            {
                                dst.copy_from_slice(src);
                            }
                            fill += take;
                        }
                        Chunk::Region { offset, len } => {
                            let k = skip.min(len);
                            skip -= k;
                            let (from, left) = (offset.saturating_add(k), len - k);
                            if left == 0 {
                                continue;
                            }
                            let take = usize::try_from(left).unwrap_or(usize::MAX).min(room);
                            let ok = match (usize::try_from(from), s.out.get_mut(fill..fill + take))
                            {
                                (Ok(o), Some(dst)) => self.region.read_at(o, dst).is_ok(),
                                _ => false,
                            };
                            if !ok {
                                bad = Some((offset, len));
                                break;
                            }
                            fill += take;
                        }
                    }
                }
                if let Some(range) = bad {
                    return Err(cx.fail(format!(
                        "frame for region range {range:?} lies outside the region"
                    )));
                }
                let plain = fill - body;
                if plain == 0 {
                    break;
                }
                let rec = s.out.get_mut(at..).unwrap_or_default();
                match s.sealer.seal_in_place(rec, plain) {
                    Ok(total) => s.out_len += total,
                    Err(e) => return Err(cx.fail(e.to_string())),
                }
                s.out_plain += plain as u64;
            }
            if s.out_len == 0 {
                return Ok(progressed);
            }
        }
    }

    /// Reads records from the socket, opens them (the core's [`Inbound`])
    /// and hands their bytes to the machine.
    fn read_sealed(
        &mut self,
        cx: &mut LaneCx<StreamInitiator>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        let mut progressed = false;
        loop {
            let Some(s) = self.sealed.as_deref_mut() else {
                return Ok(progressed);
            };
            loop {
                match s.inbound.open_next() {
                    Ok(true) => {
                        let got = s.inbound.plaintext();
                        let n = got.len();
                        let mut sink = Sink {
                            region: &self.region,
                            into,
                        };
                        if let Err(e) = cx.engine.handle_bytes(got, &mut sink) {
                            return Err(cx.fail(e.to_string()));
                        }
                        s.inbound.consume(n);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        return Err(
                            cx.fail(format!("the data from rpmemd does not authenticate: {e}"))
                        )
                    }
                }
            }
            let space = s.inbound.space();
            let (ptr, cap) = (space.as_mut_ptr(), space.len());
            let n = match recv_raw(self.sock.as_raw_fd(), ptr, cap) {
                Ok(0) => return Err(closed_by_peer_during(cx)),
                Ok(n) => n.min(cap),
                Err(e) if is_again(&e) => return Ok(progressed),
                Err(e) => return Err(connection_lost(cx, "receiving", &e)),
            };
            progressed = true;
            s.inbound.received(n);
        }
    }

    /// Reads what the server sent and hands it to the machine.
    fn read_in(
        &mut self,
        cx: &mut LaneCx<StreamInitiator>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        if self.sealed.is_some() {
            return self.read_sealed(cx, into);
        }
        let mut progressed = false;
        loop {
            // Large READ_RESP bodies go straight to their destination.
            if let Some((at, want)) = cx.engine.read_direct() {
                if want >= DIRECT_MIN as u64 {
                    if let Some(ptr) = dest_ptr(&self.region, into, at, want) {
                        let fd = self.sock.as_raw_fd();
                        let want = usize::try_from(want).unwrap_or(usize::MAX);
                        let n = match recv_raw(fd, ptr, want) {
                            Ok(0) => return Err(closed_by_peer_during(cx)),
                            Ok(n) => n,
                            Err(e) if is_again(&e) => return Ok(progressed),
                            Err(e) => return Err(connection_lost(cx, "receiving", &e)),
                        };
                        progressed = true;
                        if let Err(e) = cx.engine.on_read_direct(n as u64) {
                            return Err(cx.fail(e.to_string()));
                        }
                        continue;
                    }
                    // Not a plain destination: the staged path checks and
                    // reports it.
                }
            }
            let fd = self.sock.as_raw_fd();
            let (ptr, cap) = (self.stage.as_mut_ptr(), self.stage.len());
            let n = match recv_raw(fd, ptr, cap) {
                Ok(0) => return Err(closed_by_peer_during(cx)),
                Ok(n) => n.min(cap),
                Err(e) if is_again(&e) => return Ok(progressed),
                Err(e) => return Err(connection_lost(cx, "receiving", &e)),
            };
            progressed = true;
            let got = self.stage.get(..n).unwrap_or(&[]);
            let mut sink = Sink {
                region: &self.region,
                into,
            };
            if let Err(e) = cx.engine.handle_bytes(got, &mut sink) {
                return Err(cx.fail(e.to_string()));
            }
        }
    }

    /// Sleeps until the socket is ready, rpmemd's channel hangs up, or
    /// `limit` passes.
    fn wait_io(&mut self, cx: &mut LaneCx<StreamInitiator>, limit: Duration) -> Result<(), Error> {
        let mut events = libc::POLLIN;
        if cx.engine.has_unsent() {
            events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.watch_fd.unwrap_or(-1),
                events: 0,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries (a negative fd is ignored).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, poll_ms(limit)) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(fail_io(cx, "waiting for the data connection", e));
        }
        let [sock, watch] = fds;
        if watch.revents & (libc::POLLHUP | libc::POLLERR) != 0 && sock.revents == 0 {
            return Err(cx.hung_up());
        }
        Ok(())
    }
}

/// Breaks the lane for a failed system call `what`.
fn fail_io(cx: &mut LaneCx<StreamInitiator>, what: &str, e: io::Error) -> Error {
    cx.note_broken(format!("{what}: {e}"));
    Error::Io {
        what: format!("lane {}: {what}", cx.index),
        source: e,
    }
}

/// Breaks the lane because rpmemd closed its connection.
fn closed_by_peer_during(cx: &mut LaneCx<StreamInitiator>) -> Error {
    let what = format!("rpmemd closed the data connection during a {}", cx.what());
    cx.lost(what)
}

/// Breaks the lane because `doing` failed with `e`.
fn connection_lost(cx: &mut LaneCx<StreamInitiator>, doing: &str, e: &io::Error) -> Error {
    let what = format!("{doing} during a {} failed ({e})", cx.what());
    cx.lost(what)
}

impl LaneIo for LaneConn {
    type Engine = StreamInitiator;

    fn pump(
        &mut self,
        cx: &mut LaneCx<StreamInitiator>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        self.pump_io(cx, into)
    }

    /// The machine's result already waits for every frame of the call.
    fn flushed(&self) -> bool {
        true
    }

    fn wait(
        &mut self,
        cx: &mut LaneCx<StreamInitiator>,
        _into: &mut ReadInto<'_>,
        limit: Duration,
    ) -> Result<(), Error> {
        self.wait_io(cx, limit)
    }

    fn waiting_for(&self, cx: &LaneCx<StreamInitiator>) -> &'static str {
        if cx.engine.has_unsent() {
            "sending data"
        } else {
            "waiting for rpmemd's answer"
        }
    }

    /// Closes the connection (the server sees end of file).
    fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

impl Drop for LaneConn {
    fn drop(&mut self) {
        LaneIo::shutdown(self);
    }
}

/// First pause before a lane closed during its handshake is tried again.
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between two tries.
const RETRY_MAX_PAUSE: Duration = Duration::from_millis(200);

/// How one try at connecting a lane ended.
enum Attempt {
    /// rpmemd closed the connection before it sent anything (it may have
    /// shed a connection waiting for its hello): worth another try.
    Closed(Error),
    /// Anything else: the error to report.
    Failed(Error),
}

/// The peer ended the connection (closed or reset it).
fn closed_by_peer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn is_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The address of `want` bytes at offset `at` of a read's destination,
/// when they lie inside it.
fn dest_ptr(region: &Region, into: &mut ReadInto<'_>, at: u64, want: u64) -> Option<*mut u8> {
    let end = at.checked_add(want)?;
    match into {
        ReadInto::Nothing => None,
        ReadInto::Region { offset, len } => {
            if end > *len {
                return None;
            }
            region.raw(offset.checked_add(at)?, want)
        }
        ReadInto::User(buf) => {
            let at = usize::try_from(at).ok()?;
            let end = usize::try_from(end).ok()?;
            buf.get_mut(at..end).map(|s| s.as_mut_ptr())
        }
    }
}

/// A gather list on the stack (no allocation per send).
struct IovList {
    v: [libc::iovec; MAX_IOV],
    n: usize,
}

impl IovList {
    fn new() -> IovList {
        IovList {
            v: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV],
            n: 0,
        }
    }

    fn len(&self) -> usize {
        self.n
    }

    fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Appends an entry; ignored when full (callers check `len` first).
    fn push(&mut self, e: libc::iovec) {
        if let Some(slot) = self.v.get_mut(self.n) {
            *slot = e;
            self.n += 1;
        }
    }

    fn as_slice(&self) -> &[libc::iovec] {
        self.v.get(..self.n).unwrap_or(&[])
    }
}

/// `sendmsg(fd, iov, MSG_NOSIGNAL | MSG_DONTWAIT)`.
fn sendmsg(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points at live memory: frame headers in the queue,
    // or region bytes (kept alive by the `Arc<Region>`), checked in range.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// `recv(fd, ptr, len, MSG_DONTWAIT)`.
fn recv_raw(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: callers pass an address valid for `len` bytes of writes: the
    // staging buffer, a checked part of the caller's buffer, or a checked
    // region range (written by the kernel, not by Rust code).
    let n = unsafe { libc::recv(fd, ptr.cast(), len, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// Sends all of `bytes` before `deadline`.
fn send_exact(fd: RawFd, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0usize;
    while done < bytes.len() {
        let rest = bytes.get(done..).unwrap_or(&[]);
        // SAFETY: `rest` is a live buffer.
        let n = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            done += n.unsigned_abs();
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                if !crate::launch::poll_one(fd, libc::POLLOUT, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// Receives at least one byte into `buf` before `deadline`.
fn recv_some(fd: RawFd, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        match recv_raw(fd, buf.as_mut_ptr(), buf.len()) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "rpmemd closed the connection (a wrong session secret, or rpmemd went away)",
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !crate::launch::poll_one(fd, libc::POLLIN, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
            }
            Err(e) => return Err(e),
        }
    }
}
