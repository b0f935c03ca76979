//! Our TCP data path (`PROV_TCP`): one TCP connection per lane.
//!
//! rpmemd listens on an ephemeral port of the address the client reached it
//! on and announces the port and a fresh 32-byte session secret in the
//! CREATE/OPEN response. An accepting thread takes every connection, sets
//! `TCP_NODELAY`, registers it with the [`LaneRegistry`] and starts a worker
//! thread for it. The worker first reads the 48-byte hello (within
//! [`TcpConfig::hello_timeout`]) and lets the core's
//! [`StreamServer`](rpmem_core::persist::StreamServer) check it (secret in
//! constant time, lane below `nlanes`); the registry then refuses a second
//! connection for the same lane. Only after that does the worker read frames:
//!
//! * `WRITE`: the body is received straight into the pool, at the offset the
//!   core validated (no intermediate copy);
//! * `SEND`: the persist message is received into a lane buffer, planned by
//!   the core's [`Target`] and executed against [`PoolMemory`] (8-byte stores
//!   for inline data, cache flush / `msync` / deep flush), then the `RECV`
//!   header and the 8-byte response leave in one `send`;
//! * `READ_REQ`: the `READ_RESP` header and the pool bytes leave in one
//!   `sendmsg`.
//!
//! Latency: each wait first spins on a non-blocking `recv`/`send`
//! (`MSG_DONTWAIT`) for [`TcpConfig::spin`] (`RPMEMD_SPIN_US`, default 50 µs),
//! then blocks in `poll`.
//!
//! Shutdown: [`TcpServer::stop`] makes the registry refuse new connections,
//! shuts every connection down (a worker blocked in `recv` or `poll` wakes),
//! wakes and joins the accepting thread, and waits until every worker has
//! left. After it returns nothing touches the pool.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rpmem_core::persist::{execute, HelloReject, ServerError, ServerStep, StreamServer, Target};
use rpmem_core::wire::persist::RESP_LEN;
use rpmem_core::wire::tcp::{HelloAckRepr, HelloStatus, FRAME_HEADER_LEN, HELLO_LEN, SECRET_LEN};

use super::{Connection, LaneRegistry, PoolMemory, Refusal, WorkerGuard};
use crate::sync::thread::{Builder, JoinHandle};
use crate::sync::Arc;

/// Environment variable: microseconds a lane spins on a non-blocking socket
/// before it blocks in `poll` (0 disables spinning).
pub const SPIN_ENV: &str = "RPMEMD_SPIN_US";
/// Default spin budget.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Largest spin budget accepted from [`SPIN_ENV`].
pub const MAX_SPIN: Duration = Duration::from_millis(10);
/// How long a new connection may take to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections that may wait for their hello at the same time.
pub const MAX_PENDING: usize = 16;
/// How often a blocked wait re-checks whether the session is stopping (a
/// safety net: stopping shuts the sockets down, which wakes the wait).
const POLL_SLICE_MS: i32 = 500;
/// Stack of a lane worker (it holds no large buffer on the stack).
const WORKER_STACK: usize = 256 * 1024;

/// How the TCP data path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Address to listen on; its port should be 0 (an ephemeral port).
    pub bind: SocketAddr,
    /// Spin budget of every wait before blocking.
    pub spin: Duration,
    /// Time a connection has to send its hello.
    pub hello_timeout: Duration,
    /// Connections that may wait for their hello at once.
    pub max_pending: usize,
}

impl TcpConfig {
    /// Listening on `bind` with the default spin, hello timeout and bound.
    pub fn new(bind: SocketAddr) -> TcpConfig {
        TcpConfig {
            bind,
            spin: DEFAULT_SPIN,
            hello_timeout: HELLO_TIMEOUT,
            max_pending: MAX_PENDING,
        }
    }
}

/// The spin budget for a value of [`SPIN_ENV`]: microseconds, decimal, at
/// most [`MAX_SPIN`]. `None` (unset) gives [`DEFAULT_SPIN`]; an invalid value
/// is an error naming it.
pub fn parse_spin(value: Option<&str>) -> Result<Duration, String> {
    let Some(text) = value else {
        return Ok(DEFAULT_SPIN);
    };
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match parsed.map(Duration::from_micros) {
        Some(d) if d <= MAX_SPIN => Ok(d),
        _ => Err(format!(
            "{SPIN_ENV}={text:?} is not a number of microseconds from 0 to {}",
            MAX_SPIN.as_micros()
        )),
    }
}

impl Connection for TcpStream {
    fn shut_down(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// What every worker of a session shares.
struct Shared {
    target: Target,
    secret: [u8; SECRET_LEN],
    mem: PoolMemory,
    spin: Duration,
    hello_timeout: Duration,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target)
            .field("secret", &"<redacted>")
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

/// A running TCP data path. Dropping it stops it (see [`TcpServer::stop`]).
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    registry: Arc<LaneRegistry<TcpStream>>,
    wake: Option<UnixStream>,
    accept: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// Binds `config.bind` and starts accepting lanes of the session served
    /// by `target`, whose hello must carry `secret`. Workers write `mem`.
    pub fn start(
        config: &TcpConfig,
        target: Target,
        secret: [u8; SECRET_LEN],
        mem: PoolMemory,
    ) -> io::Result<TcpServer> {
        let listener = TcpListener::bind(config.bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (wake, wake_rx) = UnixStream::pair()?;
        let registry = Arc::new(LaneRegistry::new(
            target.params().nlanes,
            config.max_pending.max(1),
        ));
        let shared = Arc::new(Shared {
            target,
            secret,
            mem,
            spin: config.spin,
            hello_timeout: config.hello_timeout,
        });
        let reg = Arc::clone(&registry);
        let accept = Builder::new()
            .name("rpmemd-accept".to_owned())
            .spawn(move || accept_loop(&listener, &wake_rx, &reg, &shared))?;
        Ok(TcpServer {
            addr,
            registry,
            wake: Some(wake),
            accept: Some(accept),
        })
    }

    /// The address listened on (with the ephemeral port chosen).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Lanes connected so far.
    pub fn lanes_connected(&self) -> usize {
        self.registry.claimed()
    }

    /// Stops the data path: no new connection or lane, every connection shut
    /// down, the accepting thread joined, every worker gone. Idempotent.
    /// Returns the number of connections that were open.
    pub fn stop(&mut self) -> usize {
        let open = self.registry.stop();
        if let Some(wake) = self.wake.take() {
            let _ = wake.shutdown(Shutdown::Both);
        }
        if let Some(accept) = self.accept.take() {
            if accept.join().is_err() {
                log::error!("the TCP accepting thread panicked");
            }
        }
        self.registry.wait_idle();
        open
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    wake: &UnixStream,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, POLL_SLICE_MS) };
        if registry.is_stopping() || fds[1].revents != 0 {
            return;
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("waiting for lane connections failed: {e}");
                return;
            }
            continue;
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => on_connection(stream, peer, registry, shared),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("accepting a lane connection failed: {e}");
                    // EMFILE and friends: give the system a moment.
                    std::thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

fn on_connection(
    stream: TcpStream,
    peer: SocketAddr,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        log::warn!("connection from {peer}: cannot set TCP_NODELAY: {e}");
    }
    let conn = Arc::new(stream);
    let guard = match LaneRegistry::admit(registry, Arc::clone(&conn)) {
        Ok(guard) => guard,
        Err(refusal) => {
            log::warn!("refusing a connection from {peer}: {refusal}");
            conn.shut_down();
            return;
        }
    };
    let shared = Arc::clone(shared);
    let spawned = Builder::new()
        .name("rpmemd-lane".to_owned())
        .stack_size(WORKER_STACK)
        .spawn(move || worker(guard, conn, &shared, peer));
    if let Err(e) = spawned {
        // The closure (with the guard and the connection) was dropped: the
        // connection is unregistered and closed.
        log::error!("cannot start a lane worker for {peer}: {e}");
    }
}

/// Why a lane connection ended.
#[derive(Debug)]
enum LaneEnd {
    /// The client closed the connection between frames.
    Disconnected,
    /// The session is stopping.
    Stopped,
    /// A protocol violation or a refused hello.
    Protocol(ServerError),
    /// The registry refused the lane.
    Refused(Refusal),
    /// A flush failed; the request was not answered.
    Flush(rpmem_core::flush::FlushError),
    /// The core accepted a range the mapping does not hold (cannot happen
    /// with a consistent pool size; the connection is closed).
    Range { offset: u64, len: u64 },
    /// A socket error, an early end of stream, or a hello timeout.
    Io(IoError),
}

impl fmt::Display for LaneEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaneEnd::Disconnected => f.write_str("closed by the client"),
            LaneEnd::Stopped => f.write_str("closed: the session is ending"),
            LaneEnd::Protocol(e) => write!(f, "protocol violation: {e}"),
            LaneEnd::Refused(r) => write!(f, "refused: {r}"),
            LaneEnd::Flush(e) => write!(f, "making data durable failed: {e}"),
            LaneEnd::Range { offset, len } => {
                write!(
                    f,
                    "range at offset {offset} of length {len} is outside the mapping"
                )
            }
            LaneEnd::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<IoError> for LaneEnd {
    fn from(e: IoError) -> LaneEnd {
        match e {
            IoError::Stopped => LaneEnd::Stopped,
            e => LaneEnd::Io(e),
        }
    }
}

impl From<ServerError> for LaneEnd {
    fn from(e: ServerError) -> LaneEnd {
        LaneEnd::Protocol(e)
    }
}

fn worker(guard: WorkerGuard<TcpStream>, conn: Arc<TcpStream>, shared: &Shared, peer: SocketAddr) {
    let mut lane = None;
    let end = serve(&guard, &conn, shared, &mut lane);
    let stopping = guard.registry().is_stopping();
    match (&end, lane) {
        (LaneEnd::Disconnected | LaneEnd::Stopped, Some(l)) => {
            log::info!("lane {l} ({peer}) {end}")
        }
        (LaneEnd::Io(IoError::Eof { .. }) | LaneEnd::Io(IoError::Os(_)), Some(l)) if stopping => {
            log::info!("lane {l} ({peer}) closed: the session is ending")
        }
        (_, Some(l)) => log::warn!("lane {l} ({peer}) {end}"),
        (_, None) if stopping => log::debug!("connection from {peer} {end}"),
        (_, None) => log::warn!("connection from {peer} {end}"),
    }
    conn.shut_down();
    drop(conn);
    // Last: after this the session may unmap the pool.
    drop(guard);
}

/// Runs one connection: hello, then frames until the end.
fn serve(
    guard: &WorkerGuard<TcpStream>,
    conn: &TcpStream,
    shared: &Shared,
    lane_out: &mut Option<u32>,
) -> LaneEnd {
    let registry = guard.registry();
    let stop = || registry.is_stopping();
    let mut io = SockIo {
        fd: conn.as_raw_fd(),
        spin: shared.spin,
        stop: &stop,
    };
    let mut server = StreamServer::new(shared.target);

    let mut hello = [0u8; HELLO_LEN];
    let deadline = Instant::now().checked_add(shared.hello_timeout);
    if let Err(e) = io.recv_exact(&mut hello, deadline) {
        return e.into();
    }
    let accepted = match server.on_hello(&hello, &shared.secret) {
        Ok(a) => a,
        Err(e) => {
            if let ServerError::Hello(reject) = &e {
                if let Some(reply) = reject.reply() {
                    let _ = io.send_all(&reply);
                }
                if matches!(reject, HelloReject::BadSecret) {
                    log::warn!("a lane connection gave a wrong session secret");
                }
            }
            return e.into();
        }
    };
    if let Err(refusal) = registry.claim(guard, accepted.lane) {
        if matches!(refusal, Refusal::LaneTaken(_) | Refusal::NoSuchLane { .. }) {
            let reply = HelloAckRepr {
                status: HelloStatus::BadLane,
            }
            .to_bytes();
            let _ = io.send_all(&reply);
        }
        return LaneEnd::Refused(refusal);
    }
    let lane = accepted.lane;
    *lane_out = Some(lane);
    if let Err(e) = io.send_all(&accepted.ack) {
        return e.into();
    }
    log::info!("lane {lane} connected");
    run_frames(&mut io, &mut server, shared)
}

fn run_frames(io: &mut SockIo<'_>, server: &mut StreamServer, shared: &Shared) -> LaneEnd {
    let mut mem = shared.mem.clone();
    let mut msg: Vec<u8> = Vec::new();
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        match io.recv_exact(&mut header, None) {
            Ok(()) => {}
            Err(IoError::Eof { got: 0 }) => return LaneEnd::Disconnected,
            Err(e) => return e.into(),
        }
        let step = match server.on_frame_header(&header) {
            Ok(step) => step,
            Err(e) => return e.into(),
        };
        match step {
            ServerStep::ReceiveInto { offset, len } => {
                let Some(dst) = mem.range(offset, len) else {
                    return LaneEnd::Range { offset, len };
                };
                let n = usize::try_from(len).unwrap_or(usize::MAX);
                // SAFETY: `range` checked that `[dst, dst + n)` lies in the
                // pool mapping, which stays mapped until this worker drops
                // its guard; the kernel writes it, no Rust reference exists.
                if let Err(e) = unsafe { io.recv_raw(dst, n, None) } {
                    return e.into();
                }
            }
            ServerStep::ReceiveMsg { len } => {
                if msg.len() < len {
                    msg.resize(len, 0);
                }
                let Some(body) = msg.get_mut(..len) else {
                    return LaneEnd::Range {
                        offset: 0,
                        len: u64::try_from(len).unwrap_or(u64::MAX),
                    };
                };
                if let Err(e) = io.recv_exact(body, None) {
                    return e.into();
                }
                let planned = match server.on_msg(body) {
                    Ok(m) => m,
                    Err(e) => return e.into(),
                };
                let resp = match execute(&planned.plan, &mut mem) {
                    Ok(r) => r.unwrap_or_else(|| planned.plan.response()),
                    Err(e) => return LaneEnd::Flush(e),
                };
                let mut out = [0u8; FRAME_HEADER_LEN + RESP_LEN];
                let (head, tail) = out.split_at_mut(FRAME_HEADER_LEN);
                head.copy_from_slice(&planned.header);
                tail.copy_from_slice(&resp);
                if let Err(e) = io.send_all(&out) {
                    return e.into();
                }
            }
            ServerStep::SendFrom {
                header,
                offset,
                len,
            } => {
                let Some(src) = mem.range(offset, len) else {
                    return LaneEnd::Range { offset, len };
                };
                let n = usize::try_from(len).unwrap_or(usize::MAX);
                // SAFETY: `[src, src + n)` lies in the mapping (checked) and
                // stays mapped while this worker runs; the kernel reads it.
                let sent = unsafe {
                    io.send_parts(&mut [(header.as_ptr(), header.len()), (src.cast_const(), n)])
                };
                if let Err(e) = sent {
                    return e.into();
                }
            }
        }
    }
}

/// A socket error seen by a lane.
#[derive(Debug)]
enum IoError {
    /// The peer closed the stream after `got` bytes of the item being read.
    Eof { got: usize },
    /// The hello did not arrive in time.
    Timeout,
    /// The session is stopping.
    Stopped,
    /// The operating system's error.
    Os(io::Error),
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Eof { got } => {
                write!(f, "the connection closed in the middle of a message ({got} bytes of it had arrived)")
            }
            IoError::Timeout => f.write_str("no hello arrived in time"),
            IoError::Stopped => f.write_str("the session is ending"),
            IoError::Os(e) => write!(f, "socket error: {e}"),
        }
    }
}

/// Spin-then-poll I/O on one socket.
struct SockIo<'a> {
    fd: RawFd,
    spin: Duration,
    stop: &'a dyn Fn() -> bool,
}

impl SockIo<'_> {
    fn recv_exact(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<(), IoError> {
        // SAFETY: a slice is valid for writes of its length.
        unsafe { self.recv_raw(buf.as_mut_ptr(), buf.len(), deadline) }
    }

    /// Receives exactly `len` bytes into `ptr`.
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + len)` must be valid for writes for the whole call.
    unsafe fn recv_raw(
        &mut self,
        ptr: *mut u8,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<(), IoError> {
        let mut done = 0usize;
        let mut spin_from = None;
        while done < len {
            // SAFETY: `ptr + done .. ptr + len` is inside the caller's range.
            let n = unsafe {
                libc::recv(
                    self.fd,
                    ptr.wrapping_add(done).cast(),
                    len - done,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                done = done.saturating_add(n.unsigned_abs());
                spin_from = None;
                continue;
            }
            if n == 0 {
                return Err(IoError::Eof { got: done });
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.wait(libc::POLLIN, &mut spin_from, deadline)?,
                _ => return Err(IoError::Os(e)),
            }
        }
        Ok(())
    }

    fn send_all(&mut self, buf: &[u8]) -> Result<(), IoError> {
        // SAFETY: a slice is valid for reads of its length.
        unsafe { self.send_parts(&mut [(buf.as_ptr(), buf.len())]) }
    }

    /// Sends every part, in order, with as few `sendmsg` calls as possible.
    ///
    /// # Safety
    ///
    /// Each `(ptr, len)` must be valid for reads for the whole call.
    unsafe fn send_parts(&mut self, parts: &mut [(*const u8, usize)]) -> Result<(), IoError> {
        let mut first = 0usize;
        let mut spin_from = None;
        loop {
            while parts.get(first).is_some_and(|p| p.1 == 0) {
                first += 1;
            }
            let Some(rest) = parts.get(first..).filter(|r| !r.is_empty()) else {
                return Ok(());
            };
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 4];
            let mut count = 0usize;
            for (slot, &(p, l)) in iov.iter_mut().zip(rest.iter()) {
                slot.iov_base = p.cast_mut().cast();
                slot.iov_len = l;
                count += 1;
            }
            // SAFETY: a zeroed msghdr is valid; the fields set below point at
            // `iov`, which outlives the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = count as _;
            // SAFETY: `msg` describes `count` valid iovecs whose buffers the
            // caller guarantees readable.
            let n =
                unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n >= 0 {
                let mut sent = n.unsigned_abs();
                spin_from = None;
                for part in parts.iter_mut().skip(first) {
                    let take = sent.min(part.1);
                    part.0 = part.0.wrapping_add(take);
                    part.1 -= take;
                    sent -= take;
                    if sent == 0 {
                        break;
                    }
                }
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.wait(libc::POLLOUT, &mut spin_from, None)?,
                _ => return Err(IoError::Os(e)),
            }
        }
    }

    /// Waits until the socket may be ready for `events`: spins for the
    /// budget first, then blocks in `poll` (re-checking the stop flag and the
    /// deadline every [`POLL_SLICE_MS`]).
    fn wait(
        &mut self,
        events: libc::c_short,
        spin_from: &mut Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<(), IoError> {
        let now = Instant::now();
        if !self.spin.is_zero() {
            let start = *spin_from.get_or_insert(now);
            if now.saturating_duration_since(start) < self.spin {
                std::hint::spin_loop();
                return Ok(());
            }
        }
        loop {
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(IoError::Timeout);
                    }
                    i32::try_from(left.as_millis().saturating_add(1))
                        .unwrap_or(POLL_SLICE_MS)
                        .min(POLL_SLICE_MS)
                }
                None => POLL_SLICE_MS,
            };
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, slice) };
            if rc > 0 {
                *spin_from = None;
                return Ok(());
            }
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(IoError::Os(e));
                }
            }
            if (self.stop)() {
                return Err(IoError::Stopped);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_budget_from_the_environment() {
        assert_eq!(parse_spin(None), Ok(DEFAULT_SPIN));
        assert_eq!(parse_spin(Some("0")), Ok(Duration::ZERO));
        assert_eq!(parse_spin(Some("120")), Ok(Duration::from_micros(120)));
        assert_eq!(parse_spin(Some("10000")), Ok(MAX_SPIN));
        for bad in ["", "-1", "1e3", " 5", "10001", "99999999999999999999"] {
            let e = parse_spin(Some(bad)).unwrap_err();
            assert!(e.contains(SPIN_ENV), "{e}");
        }
    }
}
