//! One lane of the TCP data path: an `InitiatorLane` (what to post) and a
//! `StreamClient` (how operations become frames) over one TCP connection.
//!
//! The driver loop of a call:
//!
//! 1. take every operation the engine allows ([`InitiatorLane::poll_op`]),
//!    frame it and queue it;
//! 2. write queued frames with `sendmsg` (header, persist message and region
//!    bytes in one gather list; region bytes are read by the kernel); a
//!    completely written frame reports its completion;
//! 3. read what the server sent: frame headers, persist responses, and
//!    READ_RESP bodies received straight into the destination;
//! 4. stop when the engine has the call's result.
//!
//! While nothing moves, the loop spins on non-blocking I/O for the spin
//! budget, then sleeps in `poll` until the socket is ready, rpmemd's channel
//! hangs up, or the data deadline (no progress for that long) passes.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use rpmem_core::persist::{
    Completion, FrameBody, InitiatorLane, LaneParams, Op, OpKind, ReadDest, ServerFrame,
    StreamClient,
};
use rpmem_core::wire::persist::{HEADER_LEN as MSG_HEADER_LEN, RESP_LEN};
use rpmem_core::wire::tcp::{FRAME_HEADER_LEN, HELLO_ACK_LEN, SECRET_LEN};

use crate::driver::{DriveLane, LaneCx};
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

/// Where the bytes of the call's READs go.
pub(crate) enum ReadInto<'a> {
    /// The call reads nothing.
    Nothing,
    /// Region `[offset, offset + len)`.
    Region {
        /// Region offset of buffer offset 0.
        offset: u64,
        /// Length of the destination.
        len: u64,
    },
    /// The caller's buffer.
    User(&'a mut [u8]),
}

/// A frame being written.
#[derive(Debug)]
struct OutFrame {
    header: [u8; FRAME_HEADER_LEN],
    msg: Option<[u8; MSG_HEADER_LEN]>,
    /// Region bytes that follow: `(offset, len)`.
    data: Option<(u64, u64)>,
    total: u64,
    written: u64,
    completes: Option<OpKind>,
}

impl OutFrame {
    fn from_client(f: &rpmem_core::persist::ClientFrame) -> OutFrame {
        let (msg, data) = match f.body {
            FrameBody::Empty => (None, None),
            FrameBody::Local { offset, len } => (None, Some((offset, len))),
            FrameBody::Message { header, inline } => (Some(header), inline),
        };
        let total = (FRAME_HEADER_LEN as u64)
            .saturating_add(msg.map_or(0, |m| m.len() as u64))
            .saturating_add(data.map_or(0, |(_, l)| l));
        OutFrame {
            header: f.header,
            msg,
            data,
            total,
            written: 0,
            completes: f.completes,
        }
    }
}

/// What the receiver is in the middle of.
#[derive(Debug)]
enum Rx {
    /// A frame header (`have` bytes of it so far).
    Header {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// A READ_RESP body.
    Read { dest: ReadDest, len: u64, got: u64 },
    /// A persist response.
    Recv { buf: [u8; RESP_LEN], have: usize },
}

impl Rx {
    fn header() -> Rx {
        Rx::Header {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        }
    }
}

/// How a lane was configured.
#[derive(Clone, Debug)]
pub(crate) struct LaneSetup {
    /// Host for messages.
    pub(crate) host: String,
    /// Where to connect.
    pub(crate) addr: (String, u16),
    /// The session secret.
    pub(crate) secret: [u8; SECRET_LEN],
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

/// One connected lane.
pub(crate) struct LaneConn {
    cx: LaneCx,
    stream: StreamClient,
    sock: TcpStream,
    region: Arc<Region>,
    out: VecDeque<OutFrame>,
    rx: Rx,
    stage: Box<[u8]>,
    stage_start: usize,
    stage_end: usize,
    watch_fd: Option<RawFd>,
}

impl std::fmt::Debug for LaneConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConn")
            .field("index", &self.cx.index)
            .field("queued_frames", &self.out.len())
            .field("broken", &self.cx.broken)
            .finish()
    }
}

impl LaneConn {
    /// Connects, says hello with the secret and checks the answer.
    pub(crate) fn connect(
        setup: &LaneSetup,
        region: Arc<Region>,
        remote: Option<Arc<RemoteInfo>>,
    ) -> Result<LaneConn, Error> {
        let index = setup.params.lane;
        let conn_err = |what: String, message: String| Error::Connection {
            host: setup.host.clone(),
            lane: index,
            what,
            message,
        };
        let engine = InitiatorLane::new(setup.params).map_err(|e| Error::Protocol {
            host: setup.host.clone(),
            during: format!("setting up lane {index}"),
            detail: format!("rpmemd's answer gives lane parameters that cannot work: {e}"),
        })?;
        let (host, port) = (&setup.addr.0, setup.addr.1);
        let what = format!("connecting to {host} port {port}");
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| conn_err(what.clone(), e.to_string()))?
            .collect();
        let mut last = None;
        let mut sock = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, setup.connect_timeout) {
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
            return Err(conn_err(what, format!("{os}{words}")));
        };
        let io_err = |what: &str, e: io::Error| conn_err(what.to_owned(), e.to_string());
        sock.set_nodelay(true)
            .map_err(|e| io_err("setting TCP_NODELAY", e))?;
        let stream = StreamClient::new(index);
        let hello = stream.hello(&setup.secret);
        let deadline = Instant::now() + setup.connect_timeout;
        sock.set_nonblocking(true)
            .map_err(|e| io_err("making the socket non-blocking", e))?;
        let fd = sock.as_raw_fd();
        send_exact(fd, &hello, deadline).map_err(|e| io_err("sending the hello", e))?;
        let mut ack = [0u8; HELLO_ACK_LEN];
        match recv_exact(fd, &mut ack, deadline) {
            Ok(()) => {}
            Err(e) => {
                let words = remote
                    .as_ref()
                    .map(|r| format!("; {}", r.describe(STDERR_GRACE)))
                    .unwrap_or_default();
                return Err(conn_err(
                    "waiting for the answer to the hello".to_owned(),
                    format!("{e}{words}"),
                ));
            }
        }
        stream.on_hello_ack(&ack).map_err(|e| Error::Protocol {
            host: setup.host.clone(),
            during: format!("opening lane {index}"),
            detail: e.to_string(),
        })?;
        Ok(LaneConn {
            cx: LaneCx {
                index,
                engine,
                remote,
                broken: None,
                host: setup.host.clone(),
                spin: setup.spin,
                stall: setup.stall,
                label: "",
            },
            stream,
            sock,
            region,
            out: VecDeque::new(),
            rx: Rx::header(),
            stage: vec![0u8; STAGE_LEN].into_boxed_slice(),
            stage_start: 0,
            stage_end: 0,
            watch_fd: setup.watch_fd,
        })
    }

    /// One round of posting, writing and reading. Returns whether anything
    /// moved.
    fn pump_io(&mut self, into: &mut ReadInto<'_>) -> Result<bool, Error> {
        let mut progressed = false;
        while let Some(op) = self.cx.engine.poll_op() {
            self.post(&op)?;
            progressed = true;
        }
        if self.write_frames()? {
            progressed = true;
        }
        if self.read_frames(into)? {
            progressed = true;
        }
        Ok(progressed)
    }

    fn post(&mut self, op: &Op) -> Result<(), Error> {
        match self.stream.frame(op) {
            Ok(f) => {
                self.out.push_back(OutFrame::from_client(&f));
                Ok(())
            }
            Err(e) => Err(self.cx.fail(e.to_string())),
        }
    }

    /// Writes queued frames; reports the completions of finished ones.
    fn write_frames(&mut self) -> Result<bool, Error> {
        let mut progressed = false;
        while !self.out.is_empty() {
            let mut iov = IovList::new();
            for f in &self.out {
                if iov.len() + 3 > MAX_IOV {
                    break;
                }
                if !self.frame_iov(f, &mut iov) {
                    return Err(self.cx.fail(format!(
                        "frame for region range {:?} lies outside the region",
                        f.data
                    )));
                }
            }
            if iov.is_empty() {
                break;
            }
            let n = match sendmsg(self.sock.as_raw_fd(), iov.as_slice()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.connection_lost("sending", &e)),
            };
            if n == 0 {
                break;
            }
            progressed = true;
            self.advance(n as u64)?;
        }
        Ok(progressed)
    }

    /// Appends the gather entries of the unwritten part of `f`; false when
    /// its region range is invalid.
    fn frame_iov(&self, f: &OutFrame, iov: &mut IovList) -> bool {
        let mut skip = f.written;
        let mut push = |ptr: *const u8, len: u64, skip: &mut u64| {
            if *skip >= len {
                *skip -= len;
                return;
            }
            let from = *skip;
            *skip = 0;
            let n = usize::try_from(len - from).unwrap_or(usize::MAX);
            let Ok(from) = usize::try_from(from) else {
                return;
            };
            iov.push(libc::iovec {
                iov_base: ptr.wrapping_add(from) as *mut libc::c_void,
                iov_len: n,
            });
        };
        push(f.header.as_ptr(), FRAME_HEADER_LEN as u64, &mut skip);
        if let Some(m) = &f.msg {
            push(m.as_ptr(), MSG_HEADER_LEN as u64, &mut skip);
        }
        if let Some((offset, len)) = f.data {
            match self.region.raw(offset, len) {
                Some(p) => push(p, len, &mut skip),
                None => return false,
            }
        }
        true
    }

    /// Accounts `n` written bytes to the queued frames in order.
    fn advance(&mut self, mut n: u64) -> Result<(), Error> {
        while n > 0 {
            let Some(f) = self.out.front_mut() else {
                break;
            };
            let left = f.total.saturating_sub(f.written);
            let take = left.min(n);
            f.written += take;
            n -= take;
            if f.written >= f.total {
                let completes = f.completes;
                self.out.pop_front();
                if let Some(kind) = completes {
                    let c = match kind {
                        OpKind::Write => Completion::Write {
                            lane: self.cx.index,
                        },
                        _ => Completion::Send {
                            lane: self.cx.index,
                        },
                    };
                    self.complete(c)?;
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, c: Completion<'_>) -> Result<(), Error> {
        match self.cx.engine.handle_completion(c) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.cx.fail(e.to_string())),
        }
    }

    /// Reads and handles what the server sent.
    fn read_frames(&mut self, into: &mut ReadInto<'_>) -> Result<bool, Error> {
        let mut progressed = false;
        loop {
            // Large READ_RESP bodies go straight to their destination.
            if let Rx::Read { dest, len, got } = self.rx {
                if self.stage_start == self.stage_end && len - got >= DIRECT_MIN as u64 {
                    match self.recv_direct(into, dest, got, len - got)? {
                        Some(0) => break,
                        Some(n) => {
                            progressed = true;
                            self.body_done(dest, len, got + n)?;
                            continue;
                        }
                        // Not a plain destination: the staged path checks
                        // and reports it.
                        None => {}
                    }
                }
            }
            if self.stage_start == self.stage_end {
                self.stage_start = 0;
                self.stage_end = 0;
                match self.recv_stage()? {
                    0 => break,
                    _ => progressed = true,
                }
            }
            self.consume_stage(into)?;
        }
        Ok(progressed)
    }

    /// Handles staged bytes.
    fn consume_stage(&mut self, into: &mut ReadInto<'_>) -> Result<(), Error> {
        while self.stage_start < self.stage_end {
            let avail = self.stage_end - self.stage_start;
            let from = self.stage_start;
            match std::mem::replace(&mut self.rx, Rx::header()) {
                Rx::Header { mut buf, have } => {
                    let take = (FRAME_HEADER_LEN - have).min(avail);
                    copy_from(&mut buf, have, &self.stage, from, take);
                    self.stage_start += take;
                    if have + take == FRAME_HEADER_LEN {
                        self.on_header(&buf)?;
                    } else {
                        self.rx = Rx::Header {
                            buf,
                            have: have + take,
                        };
                    }
                }
                Rx::Recv { mut buf, have } => {
                    let take = (RESP_LEN - have).min(avail);
                    copy_from(&mut buf, have, &self.stage, from, take);
                    self.stage_start += take;
                    if have + take == RESP_LEN {
                        self.complete(Completion::Recv {
                            lane: self.cx.index,
                            bytes: &buf,
                        })?;
                    } else {
                        self.rx = Rx::Recv {
                            buf,
                            have: have + take,
                        };
                    }
                }
                Rx::Read { dest, len, got } => {
                    let take = usize::try_from(len - got).unwrap_or(usize::MAX).min(avail);
                    let src = self.stage.get(from..from + take).unwrap_or(&[]);
                    if !deliver(&self.region, into, dest, got, src) {
                        return Err(self.cx.fail(format!(
                            "READ_RESP of {len} bytes does not fit the destination of the read"
                        )));
                    }
                    self.stage_start += take;
                    self.body_done(dest, len, got + take as u64)?;
                }
            }
        }
        Ok(())
    }

    fn on_header(&mut self, header: &[u8; FRAME_HEADER_LEN]) -> Result<(), Error> {
        match self.stream.on_server_header(header) {
            Ok(ServerFrame::Recv) => {
                self.rx = Rx::Recv {
                    buf: [0; RESP_LEN],
                    have: 0,
                };
                Ok(())
            }
            Ok(ServerFrame::ReadResp { len, dest, .. }) => {
                self.rx = Rx::Read { dest, len, got: 0 };
                // A zero-length body is complete at once.
                if len == 0 {
                    self.rx = Rx::header();
                    self.complete(Completion::Read {
                        lane: self.cx.index,
                    })?;
                }
                Ok(())
            }
            Err(e) => Err(self.cx.fail(e.to_string())),
        }
    }

    /// Records `got` bytes of a READ_RESP body; completes it when whole.
    fn body_done(&mut self, dest: ReadDest, len: u64, got: u64) -> Result<(), Error> {
        if got >= len {
            self.rx = Rx::header();
            self.complete(Completion::Read {
                lane: self.cx.index,
            })
        } else {
            self.rx = Rx::Read { dest, len, got };
            Ok(())
        }
    }

    /// Receives into the staging buffer; 0 when nothing is there now.
    fn recv_stage(&mut self) -> Result<usize, Error> {
        let fd = self.sock.as_raw_fd();
        let (ptr, cap) = (self.stage.as_mut_ptr(), self.stage.len());
        match recv_raw(fd, ptr, cap) {
            Ok(0) => Err(self.closed_by_peer()),
            Ok(n) => {
                self.stage_end = n.min(cap);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(self.connection_lost("receiving", &e)),
        }
    }

    /// Receives up to `want` body bytes straight into the destination;
    /// `None` when the destination is not a plain buffer range.
    fn recv_direct(
        &mut self,
        into: &mut ReadInto<'_>,
        dest: ReadDest,
        got: u64,
        want: u64,
    ) -> Result<Option<u64>, Error> {
        let Some(ptr) = dest_ptr(&self.region, into, dest, got, want) else {
            return Ok(None);
        };
        let fd = self.sock.as_raw_fd();
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        match recv_raw(fd, ptr, want) {
            Ok(0) => Err(self.closed_by_peer()),
            Ok(n) => Ok(Some(n as u64)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(0)),
            Err(e) => Err(self.connection_lost("receiving", &e)),
        }
    }

    /// Sleeps until the socket is ready, rpmemd's channel hangs up, or
    /// `limit` passes.
    fn wait_io(&mut self, limit: Duration) -> Result<(), Error> {
        let mut events = libc::POLLIN;
        if !self.out.is_empty() {
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
            return Err(self.fail_io("waiting for the data connection", e));
        }
        let [sock, watch] = fds;
        if watch.revents & (libc::POLLHUP | libc::POLLERR) != 0 && sock.revents == 0 {
            return Err(self.cx.hung_up());
        }
        Ok(())
    }

    fn fail_io(&mut self, what: &str, e: io::Error) -> Error {
        self.cx.note_broken(format!("{what}: {e}"));
        Error::Io {
            what: format!("lane {}: {what}", self.cx.index),
            source: e,
        }
    }

    fn closed_by_peer(&mut self) -> Error {
        let what = format!(
            "rpmemd closed the data connection during a {}",
            self.cx.what()
        );
        self.cx.lost(what)
    }

    fn connection_lost(&mut self, doing: &str, e: &io::Error) -> Error {
        let what = format!("{doing} during a {} failed ({e})", self.cx.what());
        self.cx.lost(what)
    }
}

impl DriveLane for LaneConn {
    fn cx(&self) -> &LaneCx {
        &self.cx
    }

    fn cx_mut(&mut self) -> &mut LaneCx {
        &mut self.cx
    }

    fn pump(&mut self, into: &mut ReadInto<'_>) -> Result<bool, Error> {
        self.pump_io(into)
    }

    fn flushed(&self) -> bool {
        self.out.is_empty()
    }

    fn wait(&mut self, _into: &mut ReadInto<'_>, limit: Duration) -> Result<(), Error> {
        self.wait_io(limit)
    }

    fn waiting_for(&self) -> &'static str {
        if self.out.is_empty() {
            "waiting for rpmemd's answer"
        } else {
            "sending data"
        }
    }

    /// Closes the connection (the server sees end of file).
    fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

impl Drop for LaneConn {
    fn drop(&mut self) {
        DriveLane::shutdown(self);
    }
}

/// Copies `take` bytes of `src[from..]` into `dst[at..]` (ranges checked).
fn copy_from(dst: &mut [u8], at: usize, src: &[u8], from: usize, take: usize) {
    if let (Some(d), Some(s)) = (dst.get_mut(at..at + take), src.get(from..from + take)) {
        d.copy_from_slice(s);
    }
}

/// The destination address of `want` bytes at buffer offset `buf_offset +
/// got` of a READ, when it lies inside the destination.
fn dest_ptr(
    region: &Region,
    into: &mut ReadInto<'_>,
    dest: ReadDest,
    got: u64,
    want: u64,
) -> Option<*mut u8> {
    let ReadDest::User { buf_offset } = dest else {
        return None;
    };
    let at = buf_offset.checked_add(got)?;
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

/// Puts staged READ_RESP bytes `src` at body offset `got`; false when they
/// do not fit the destination.
pub(crate) fn deliver(
    region: &Region,
    into: &mut ReadInto<'_>,
    dest: ReadDest,
    got: u64,
    src: &[u8],
) -> bool {
    let ReadDest::User { buf_offset } = dest else {
        // APM's flushing READ: the bytes are thrown away.
        return true;
    };
    let Some(at) = buf_offset.checked_add(got) else {
        return false;
    };
    let Some(end) = at.checked_add(src.len() as u64) else {
        return false;
    };
    match into {
        ReadInto::Nothing => false,
        ReadInto::Region { offset, len } => {
            if end > *len {
                return false;
            }
            let Some(start) = offset.checked_add(at).and_then(|s| usize::try_from(s).ok()) else {
                return false;
            };
            if region.check(start, src.len()).is_err() {
                return false;
            }
            region.copy_in(start, src);
            true
        }
        ReadInto::User(buf) => {
            let (Ok(at), Ok(end)) = (usize::try_from(at), usize::try_from(end)) else {
                return false;
            };
            match buf.get_mut(at..end) {
                Some(d) => {
                    d.copy_from_slice(src);
                    true
                }
                None => false,
            }
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

/// Receives exactly `buf.len()` bytes before `deadline`.
fn recv_exact(fd: RawFd, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or(&mut []);
        match recv_raw(fd, rest.as_mut_ptr(), rest.len()) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "rpmemd closed the connection (a wrong session secret, or rpmemd went away)",
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !crate::launch::poll_one(fd, libc::POLLIN, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
