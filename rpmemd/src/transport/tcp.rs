//! Our TCP data path (`PROV_TCP`): one TCP connection per lane.
//!
//! rpmemd listens on an ephemeral port of the address the client reached it
//! on and announces the port and a fresh 32-byte session secret in the
//! CREATE/OPEN response. An accepting thread takes every connection, sets
//! `TCP_NODELAY` and reads its hello itself, without waiting on any one
//! connection: each new connection gets a core lane machine,
//! [`StreamTarget`], which first asks for the 48-byte hello; the accepting
//! thread `poll`s every waiting connection with the listener and hands
//! what arrives to its machine. A connection that has not proven the
//! session secret thus costs a socket and its partial hello, never a
//! thread, and holds nothing a lane of the session needs (issue 15):
//!
//! * its hello must be complete within [`TcpConfig::hello_timeout`];
//! * at most [`TcpConfig::max_pending`] connections wait at once; a new
//!   one beyond it closes the oldest waiting connection of the peer address
//!   with the most waiting (after one last read of its hello), so a flood
//!   from one address closes its own connections first, and a client's
//!   hello, sent right after it connected, is pushed out only if that many
//!   newer connections from its address arrive before it does;
//! * once the machine accepts the hello (secret in constant time, lane
//!   below `nlanes`), the lane is claimed in the [`LaneRegistry`] at once
//!   ([`LaneRegistry::admit_lane`]: a lane already connected is refused at
//!   once, with the hello's answer) and a worker thread starts for it,
//!   which drives the machine from there: it does what
//!   [`StreamTarget::poll`] says and reports back, and keeps no protocol
//!   state of its own. Only after that does the machine ask for frames:
//!
//! * `WRITE`: the body comes in pieces of [`STREAM_CHUNK`] bytes that the
//!   machine hands out with the cache-line arithmetic (which whole lines to
//!   stream, the bytes around them, the partial first line to write back
//!   afterwards): the worker receives each into a lane buffer that stays in
//!   the CPU cache and stores its whole lines into the pool with
//!   non-temporal stores ([`TcpConfig::stream_stores`]); where that does not
//!   apply (`msync` targets, other CPUs) the body is one piece received
//!   straight into the pool;
//! * `SEND`: the persist message is received into a lane buffer, planned by
//!   the core and executed against [`PoolMemory`] (inline data stored with
//!   one store of 8 or 16 bytes per aligned word, whole cache lines of large
//!   copies with non-temporal stores where the target flushes CPU caches;
//!   then cache flush / `msync` / deep flush), then the `RECV` header and the
//!   8-byte response leave in one `send` — or, while the next frame's bytes
//!   are already queued ([`TcpConfig::hold_answers`]; the machine says
//!   whether an answer may wait), with the answers of the messages that
//!   follow, up to [`MAX_HELD_ANSWERS`] in one `send`;
//! * `READ_REQ`: the `READ_RESP` header and the pool bytes leave in one
//!   `sendmsg`, after any answer held back.
//!
//! Latency: each wait first spins on a non-blocking `recv`/`send`
//! (`MSG_DONTWAIT`) for [`TcpConfig::spin`] (`RPMEMD_SPIN_US`, default 50 µs),
//! yielding the CPU between polls ([`TcpConfig::spin_yield`]), then blocks in
//! `poll`. Without the yield, a worker spinning on a CPU the client (or the
//! kernel's network work) needs delays the very message it waits for: on a
//! 2-core machine with other load, a 64-byte persist took 60 µs instead of
//! about 11 (`examples/datapath_bench.rs`).
//!
//! Durability is decided by the core: the flush of a persist message's
//! range and the fence before the answer run as the core's plan says. The
//! lines of a WRITE body that the machine had streamed (and the first one it
//! had written back) are recorded inside it, and the core's plan for the
//! lane's next `FLUSH_WRITE` skips those lines, keeping the fence that makes
//! them durable. Inline data works the same way within one
//! message: [`execute`] hands the copy to
//! [`TargetMemory::copy_in_streaming`], which reports the lines it
//! streamed, and the plan's flush skips them and keeps its fence
//! ([`TcpConfig::stream_inline`]; `docs/BENCHMARKS.md` has the figures).
//! Measured on this project's 2-core machine
//! (`examples/datapath_bench.rs --flushcost`): copying 1 MiB into the cache
//! and writing it back with `clwb` costs 235-270 µs of CPU, streaming it
//! through a cache-resident buffer with non-temporal stores 100-115 µs;
//! writing back lines that are already clean (or were streamed) still costs
//! about 40% of writing back dirty ones, which is why the plan skips them
//! rather than flushing them again.
//!
//! Shutdown: [`TcpServer::stop`] makes the registry refuse new connections,
//! shuts every connection down (a worker blocked in `recv` or `poll` wakes),
//! wakes and joins the accepting thread (the connections still waiting
//! for their hello close with it), and waits until every worker has left. After it returns nothing touches the pool.

use std::fmt;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rpmem_core::flush::FlushMode;
use rpmem_core::persist::{
    execute, BodyPiece, HelloReject, Next, ServerError, StreamTarget, Target, TargetMemory,
    ANSWER_LEN,
};
use rpmem_core::seal::{
    Inbound, LaneMode, SealError, Sealer, INBOUND_BUF_LEN, MAX_RECORD, RECORD_HEADER_LEN, TAG_LEN,
};
use rpmem_core::wire::tcp::{HELLO_LEN, SECRET_LEN};

use super::{Connection, LaneRegistry, PoolMemory, Refusal, WorkerGuard};
use crate::logging::RateLimit;
use crate::sync::thread::{Builder, JoinHandle};
use crate::sync::Arc;

/// Environment variable: microseconds a lane spins on a non-blocking socket
/// before it blocks in `poll` (0 disables spinning).
pub const SPIN_ENV: &str = "RPMEMD_SPIN_US";
/// Default spin budget.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Bytes of a WRITE body received at a time when
/// [`TcpConfig::stream_stores`] is on (the buffer stays in the CPU cache).
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Largest spin budget accepted from [`SPIN_ENV`].
pub const MAX_SPIN: Duration = Duration::from_millis(10);
/// How long a new connection may take to send its hello (a client sends
/// it right after it connected).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections of the RDMA data path that may wait for their connection
/// request's check at the same time.
pub const MAX_PENDING: usize = 16;
/// Connections of the TCP data path that may wait for their hello at the
/// same time (each costs a socket and 48 bytes, no thread); beyond it the
/// oldest of the address with the most waiting is closed.
pub const MAX_PENDING_HELLOS: usize = 64;
/// Most connections accepted in one go before the hellos of those waiting
/// are read again.
const ACCEPT_BURST: usize = 32;
/// How often a blocked wait re-checks whether the session is stopping (a
/// safety net: stopping shuts the sockets down, which wakes the wait).
const POLL_SLICE_MS: i32 = 500;
/// Stack of a lane worker (it holds no large buffer on the stack).
const WORKER_STACK: usize = 256 * 1024;
/// Most answers a lane holds back to send them in one `send`.
pub const MAX_HELD_ANSWERS: usize = 16;
/// Refused connections of one kind logged per [`REFUSAL_LOG_INTERVAL`]; the
/// others are counted and summed up in one line.
pub const REFUSAL_LOG_BURST: u32 = 5;
/// The interval of [`REFUSAL_LOG_BURST`].
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate limits of the messages that peers without a lane (no valid hello:
/// anyone who can reach the port) cause: a flood of them must not flood
/// the log. Lanes of the session never touch them.
#[derive(Debug)]
struct RefusalLog {
    /// Hellos with a wrong session secret.
    bad_secret: RateLimit,
    /// Any other connection that did not become a lane (bad hello, bad
    /// lane or version, a lane connected twice).
    refused: RateLimit,
    /// Connections closed without a complete hello: timed out, or to make
    /// room for newer ones.
    waiting: RateLimit,
    /// `accept` failures.
    accept_failed: RateLimit,
}

impl RefusalLog {
    fn new() -> RefusalLog {
        RefusalLog {
            bad_secret: RateLimit::new(
                "lane connections with a wrong session secret",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
            refused: RateLimit::new(
                "other refused lane connections",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
            waiting: RateLimit::new(
                "lane connections closed without a complete hello",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
            accept_failed: RateLimit::new(
                "failed accepts of lane connections",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
        }
    }

    fn all(&self) -> [&RateLimit; 4] {
        [
            &self.bad_secret,
            &self.refused,
            &self.waiting,
            &self.accept_failed,
        ]
    }
}

/// How the TCP data path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Address to listen on; its port should be 0 (an ephemeral port).
    pub bind: SocketAddr,
    /// Spin budget of every wait before blocking.
    pub spin: Duration,
    /// Yield the CPU (`sched_yield`) between the polls of a spin, so that a
    /// thread waiting for this CPU (the client on a small machine, the
    /// kernel's network work) runs first.
    pub spin_yield: bool,
    /// Receive WRITE bodies through a per-lane buffer of [`STREAM_CHUNK`]
    /// bytes and store their whole cache lines into the pool with
    /// non-temporal stores ([`PoolMemory::store_lines_streaming`]); the
    /// core's plan for the persist that follows skips those lines and keeps
    /// the fence. Only where the target flushes CPU caches and the CPU can
    /// ([`PoolMemory::can_stream`]).
    pub stream_stores: bool,
    /// Store the whole cache lines of large inline persist messages with
    /// non-temporal stores, so that the core's plan flushes only their
    /// partial first and last lines before its fence
    /// ([`PoolMemory::set_stream_inline_min`],
    /// [`TargetMemory::copy_in_streaming`]). Only where the target flushes
    /// CPU caches (the core decides) and the CPU can.
    pub stream_inline: bool,
    /// Hold back the answer to a persist message while the next frame's
    /// bytes are already queued on the socket, to send up to
    /// [`MAX_HELD_ANSWERS`] answers in one `send`; an answer is never held
    /// while the lane would wait for the socket.
    pub hold_answers: bool,
    /// Time a connection has to send its hello.
    pub hello_timeout: Duration,
    /// Connections that may wait for their hello at once (at least 1); a
    /// new one beyond it closes the oldest waiting connection of the
    /// address with the most waiting. Lanes that proved the session secret
    /// are never counted.
    pub max_pending: usize,
    /// Lanes in the clear (after a handshake that still proves the key):
    /// only when the client chose it too; logged. Default off: every lane
    /// is sealed (`rpmem_core::seal`).
    pub plaintext: bool,
    /// Accept connections only from this address (the ssh client's, from
    /// `SSH_CONNECTION`): others are closed at once, unread. `None`: from
    /// any address (local mode).
    pub peer: Option<IpAddr>,
}

impl TcpConfig {
    /// Listening on `bind` with the default spin, hello timeout and bound.
    pub fn new(bind: SocketAddr) -> TcpConfig {
        TcpConfig {
            bind,
            spin: DEFAULT_SPIN,
            spin_yield: true,
            stream_stores: true,
            stream_inline: true,
            hold_answers: true,
            hello_timeout: HELLO_TIMEOUT,
            max_pending: MAX_PENDING_HELLOS,
            plaintext: false,
            peer: None,
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
    spin_yield: bool,
    /// `TcpConfig::stream_stores` where it applies.
    stream_stores: bool,
    /// `TcpConfig::hold_answers`.
    hold_answers: bool,
    hello_timeout: Duration,
    /// `TcpConfig::max_pending`, at least 1.
    max_pending: usize,
    /// Sealed, or plaintext (`TcpConfig::plaintext`).
    mode: LaneMode,
    /// `TcpConfig::peer`.
    peer: Option<IpAddr>,
    refusals: Arc<RefusalLog>,
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
    refusals: Arc<RefusalLog>,
}

impl TcpServer {
    /// Binds `config.bind` and starts accepting lanes of the session served
    /// by `target`, whose hello must carry `secret`. Workers write `mem`.
    pub fn start(
        config: &TcpConfig,
        target: Target,
        secret: [u8; SECRET_LEN],
        mut mem: PoolMemory,
    ) -> io::Result<TcpServer> {
        if !config.stream_inline {
            mem.set_stream_inline_min(usize::MAX);
        }
        let listener = TcpListener::bind(config.bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (wake, wake_rx) = UnixStream::pair()?;
        let registry = Arc::new(LaneRegistry::new(
            target.params().nlanes,
            config.max_pending.max(1),
        ));
        let stream = target.params().flush_mode == FlushMode::Cpu
            && config.stream_stores
            && PoolMemory::can_stream();
        let refusals = Arc::new(RefusalLog::new());
        let shared = Arc::new(Shared {
            refusals: Arc::clone(&refusals),
            stream_stores: stream,
            hold_answers: config.hold_answers,
            target,
            secret,
            mem,
            spin: config.spin,
            spin_yield: config.spin_yield,
            hello_timeout: config.hello_timeout,
            max_pending: config.max_pending.max(1),
            peer: config.peer,
            mode: if config.plaintext {
                LaneMode::Plaintext
            } else {
                LaneMode::Sealed
            },
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
            refusals,
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
        // What was suppressed is summed up before the session goes on.
        for limit in self.refusals.all() {
            limit.flush();
        }
        open
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection that has not proven the session secret yet: it costs a
/// socket and its partial hello in the accepting thread, never a thread of
/// its own, and it never holds anything a lane of the session needs.
struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    /// Boxed: waiting connections move between lists.
    lane: Box<StreamTarget>,
    /// When its hello must be complete.
    deadline: Option<Instant>,
}

/// What reading a waiting connection's hello came to.
enum Hello {
    /// More of the hello is to come.
    Waiting(Waiting),
    /// It became a lane (its worker runs), or it was refused and closed.
    Done,
}

fn accept_loop(
    listener: &TcpListener,
    wake: &UnixStream,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) {
    // Oldest first.
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        let pollfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        fds.clear();
        fds.push(pollfd(listener.as_raw_fd()));
        fds.push(pollfd(wake.as_raw_fd()));
        fds.extend(waiting.iter().map(|w| pollfd(w.stream.as_raw_fd())));
        // Wake up for the first hello deadline.
        let now = Instant::now();
        let timeout = waiting
            .iter()
            .filter_map(|w| w.deadline)
            .min()
            .map_or(POLL_SLICE_MS, |d| {
                let left = d.saturating_duration_since(now).as_millis();
                i32::try_from(left.saturating_add(1))
                    .unwrap_or(POLL_SLICE_MS)
                    .min(POLL_SLICE_MS)
            });
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(2);
        // SAFETY: `fds` is a valid array of at least `nfds` pollfd
        // structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) };
        let revents = |i: usize| fds.get(i).map_or(0, |f| f.revents);
        if registry.is_stopping() || revents(1) != 0 {
            // The waiting connections close as `waiting` is dropped.
            return;
        }
        // Sum up refusals suppressed in an interval that is over (reads
        // the clock only when there are some).
        for limit in shared.refusals.all() {
            limit.flush_expired();
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("waiting for lane connections failed: {e}");
                return;
            }
            continue;
        }
        // The hellos that moved, then the deadlines.
        let now = Instant::now();
        for (i, w) in std::mem::take(&mut waiting).into_iter().enumerate() {
            let w = if revents(i.saturating_add(2)) != 0 {
                match read_hello(w, registry, shared) {
                    Hello::Waiting(w) => w,
                    Hello::Done => continue,
                }
            } else {
                w
            };
            if w.deadline.is_some_and(|d| now >= d) {
                close_waiting(w, &LaneEnd::Io(IoError::Timeout), shared);
            } else {
                waiting.push(w);
            }
        }
        if revents(0) == 0 {
            continue;
        }
        // A bounded burst, so that a flood of connections cannot starve
        // the hellos of those already waiting.
        for _ in 0..ACCEPT_BURST {
            match listener.accept() {
                Ok((stream, peer)) => on_connection(stream, peer, &mut waiting, registry, shared),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if shared.refusals.accept_failed.admit() {
                        log::warn!("accepting a lane connection failed: {e}");
                    }
                    // EMFILE and friends: give the system a moment.
                    std::thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

/// A new connection: its hello is read at once if it is already there;
/// otherwise it waits, and when [`TcpConfig::max_pending`] connections
/// already wait, one of them is closed first ([`make_room`]).
fn on_connection(
    stream: TcpStream,
    peer: SocketAddr,
    waiting: &mut Vec<Waiting>,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) {
    if let Some(client) = shared.peer {
        if peer.ip().to_canonical() != client.to_canonical() {
            if shared.refusals.refused.admit() {
                log::warn!(
                    "connection from {peer} refused: only the ssh client's address {client} may connect"
                );
            }
            stream.shut_down();
            return;
        }
    }
    if let Err(e) = stream.set_nodelay(true) {
        log::warn!("connection from {peer}: cannot set TCP_NODELAY: {e}");
    }
    let nonce = match crate::session::fresh_secret() {
        Ok(n) => n,
        Err(e) => {
            log::error!("connection from {peer}: no randomness for the handshake: {e}");
            stream.shut_down();
            return;
        }
    };
    let w = Waiting {
        stream,
        peer,
        lane: Box::new(StreamTarget::new(
            shared.target,
            shared.secret,
            nonce,
            shared.mode,
            shared.stream_stores,
            STREAM_CHUNK as u64,
            shared.hold_answers,
        )),
        deadline: Instant::now().checked_add(shared.hello_timeout),
    };
    if let Hello::Waiting(w) = read_hello(w, registry, shared) {
        make_room(waiting, registry, shared);
        waiting.push(w);
    }
}

/// Makes room for one more waiting connection: while
/// [`TcpConfig::max_pending`] wait, the oldest connection of the address
/// with the most waiting connections is read one last time and closed if
/// its hello is still not complete. A flood from one address thus only
/// ever closes that address's connections while others wait too, and a
/// client's own hello, sent right after it connected, is pushed out only
/// if `max_pending` newer connections from its address arrive before it.
fn make_room(
    waiting: &mut Vec<Waiting>,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) {
    while waiting.len() >= shared.max_pending {
        let count = |ip: std::net::IpAddr| waiting.iter().filter(|w| w.peer.ip() == ip).count();
        // The first (oldest) connection of the address with the most.
        let mut victim = 0usize;
        let mut most = 0usize;
        for (i, w) in waiting.iter().enumerate() {
            let n = count(w.peer.ip());
            if n > most {
                most = n;
                victim = i;
            }
        }
        if victim >= waiting.len() {
            return;
        }
        let w = waiting.remove(victim);
        if let Hello::Waiting(w) = read_hello(w, registry, shared) {
            close_waiting(w, &LaneEnd::Evicted(shared.max_pending), shared);
        }
    }
}

/// Closes a connection whose hello did not come in time or that had to
/// make room; rate-limited, as anyone who reaches the port can cause it.
fn close_waiting(w: Waiting, end: &LaneEnd, shared: &Shared) {
    if shared.refusals.waiting.admit() {
        let peer = w.peer;
        log::warn!("connection from {peer} {end}");
    }
    w.stream.shut_down();
}

/// Reads what a waiting connection has sent of its hello, without waiting,
/// and hands it to the core's machine; once the hello is accepted, claims
/// its lane and starts the lane's worker.
fn read_hello(
    mut w: Waiting,
    registry: &Arc<LaneRegistry<TcpStream>>,
    shared: &Arc<Shared>,
) -> Hello {
    let fd = w.stream.as_raw_fd();
    let mut buf = [0u8; HELLO_LEN];
    let number = loop {
        let len = match w.lane.poll() {
            Next::Recv { len } => len,
            Next::Claim { lane } => break lane,
            // The server hello: a few bytes into a fresh socket's empty
            // send buffer, which take them at once.
            Next::Send { bytes, .. } => {
                // SAFETY: `bytes` is valid for reads of its length.
                let n = unsafe {
                    libc::send(
                        fd,
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if usize::try_from(n).ok() != Some(bytes.len()) {
                    let end = LaneEnd::Io(IoError::Os(io::Error::last_os_error()));
                    w.stream.shut_down();
                    log_refusal(&end, w.peer, shared);
                    return Hello::Done;
                }
                w.lane.on_sent();
                continue;
            }
            // Nothing else comes before the claim.
            _ => {
                let end = LaneEnd::Protocol(ServerError::Closed);
                refused(&w.stream, &w.lane, w.peer, &end, shared);
                return Hello::Done;
            }
        };
        let have = HELLO_LEN.saturating_sub(len);
        let Some(part) = buf.get_mut(..len) else {
            let end = LaneEnd::Protocol(ServerError::Closed);
            refused(&w.stream, &w.lane, w.peer, &end, shared);
            return Hello::Done;
        };
        // SAFETY: `part` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, part.as_mut_ptr().cast(), part.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            let got = part.get(..n.unsigned_abs()).unwrap_or(&[]);
            if let Err(e) = w.lane.handle_bytes(got) {
                refused(&w.stream, &w.lane, w.peer, &LaneEnd::Protocol(e), shared);
                return Hello::Done;
            }
            continue;
        }
        let end = if n == 0 {
            LaneEnd::Io(IoError::Eof { got: have })
        } else {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Hello::Waiting(w),
                _ => LaneEnd::Io(IoError::Os(e)),
            }
        };
        refused(&w.stream, &w.lane, w.peer, &end, shared);
        return Hello::Done;
    };
    // The secret is proven: the lane is claimed at once (a lane already
    // connected is refused at once), with no bound on waiting connections
    // in its way.
    let Waiting {
        stream,
        peer,
        mut lane,
        ..
    } = w;
    let conn = Arc::new(stream);
    match LaneRegistry::admit_lane(registry, Arc::clone(&conn), number) {
        Ok(guard) => {
            if lane.on_claim(Ok(())).is_err() {
                conn.shut_down();
                return Hello::Done;
            }
            start_worker(guard, conn, *lane, number, peer, shared);
        }
        Err(refusal) => {
            let _ = lane.on_claim(Err(refusal.hello_status()));
            refused(&conn, &lane, peer, &LaneEnd::Refused(refusal), shared);
        }
    }
    Hello::Done
}

/// A connection that will not become a lane: the machine's last answer (a
/// refused hello's status), if it has one, goes out without waiting; the
/// refusal is logged (rate-limited) and the connection closed.
fn refused(
    stream: &TcpStream,
    lane: &StreamTarget,
    peer: SocketAddr,
    end: &LaneEnd,
    shared: &Shared,
) {
    if let Next::Send { bytes, .. } = lane.poll() {
        // SAFETY: `bytes` is valid for reads of its length. A few bytes
        // into a fresh socket's empty send buffer: they fit, or are lost.
        let _ = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
    log_refusal(end, peer, shared);
    stream.shut_down();
}

/// Logs why a connection did not become a lane. Anyone who reaches the
/// port can cause these: rate-limited.
fn log_refusal(end: &LaneEnd, peer: SocketAddr, shared: &Shared) {
    if let LaneEnd::Protocol(
        ServerError::Hello(HelloReject::BadSecret) | ServerError::Seal(SealError::ClientProof),
    ) = end
    {
        if shared.refusals.bad_secret.admit() {
            log::warn!("connection from {peer} refused: wrong session secret ({end})");
        }
    } else if shared.refusals.refused.admit() {
        log::warn!("connection from {peer} {end}");
    }
}

/// Starts the worker of a lane just claimed. If its thread cannot be
/// created, the lane is given back (nothing was received on it) and the
/// connection closed without the hello's answer; the client may connect
/// the lane again.
fn start_worker(
    guard: WorkerGuard<TcpStream>,
    conn: Arc<TcpStream>,
    lane: StreamTarget,
    number: u32,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) {
    let shared = Arc::clone(shared);
    let starting = Starting(Some(guard));
    let spawned = spawn_worker(peer, move || {
        if let Some(guard) = starting.started() {
            worker(guard, conn, lane, number, &shared, peer);
        }
    });
    if let Err(e) = spawned {
        // The closure was dropped unrun: `Starting` gave the lane back, and
        // the connection is unregistered and closed.
        log::error!(
            "cannot start the worker thread of lane {number} ({peer}): {e}; the connection is \
             closed without an answer and the lane is free to be connected again"
        );
    }
}

/// A claimed lane's guard on its way into the worker's thread. Dropped
/// before the worker took it (the thread could not be created, and its
/// closure was dropped unrun), it gives the lane back
/// ([`WorkerGuard::unstarted`]).
struct Starting(Option<WorkerGuard<TcpStream>>);

impl Starting {
    /// In the worker's thread: the guard, now the worker's to drop last.
    fn started(mut self) -> Option<WorkerGuard<TcpStream>> {
        self.0.take()
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(guard) = self.0.take() {
            guard.unstarted();
        }
    }
}

/// Runs `f` on a new lane worker thread. Under test, the thread of a
/// connection from an address in [`NO_THREAD_FOR`] is refused as the
/// system refuses one (`EAGAIN`), once per entry.
fn spawn_worker<F: FnOnce() + Send + 'static>(peer: SocketAddr, f: F) -> io::Result<()> {
    #[cfg(all(test, not(loom)))]
    {
        let mut refuse = NO_THREAD_FOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = refuse.iter().position(|ip| *ip == peer.ip()) {
            refuse.remove(i);
            // As `std::thread::Builder::spawn` does when the thread cannot
            // be created: the closure is dropped unrun.
            drop(f);
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
    }
    #[cfg(not(all(test, not(loom))))]
    let _ = peer;
    Builder::new()
        .name("rpmemd-lane".to_owned())
        .stack_size(WORKER_STACK)
        .spawn(f)
        .map(drop)
}

/// Test hook of [`spawn_worker`]: the addresses whose next lane worker
/// thread cannot be created. A test's own `std` mutex: nothing of the
/// loom models.
#[cfg(all(test, not(loom)))]
static NO_THREAD_FOR: std::sync::Mutex<Vec<IpAddr>> = std::sync::Mutex::new(Vec::new());

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
    /// Closed without a complete hello to make room: this many connections
    /// were waiting for theirs.
    Evicted(usize),
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
            LaneEnd::Evicted(n) => write!(
                f,
                "closed without a complete hello: {n} connections were waiting for theirs, and it was the oldest of the address with the most"
            ),
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

/// A lane's worker thread: started once the accepting thread read the
/// connection's hello and claimed its lane (`lane` is the machine just
/// after the claim, its answer to the hello still to send).
fn worker(
    guard: WorkerGuard<TcpStream>,
    conn: Arc<TcpStream>,
    lane: StreamTarget,
    number: u32,
    shared: &Shared,
    peer: SocketAddr,
) {
    log::info!("lane {number} connected");
    let end = serve(&guard, &conn, lane, shared);
    let stopping = guard.registry().is_stopping();
    match &end {
        LaneEnd::Disconnected | LaneEnd::Stopped => {
            log::info!("lane {number} ({peer}) {end}")
        }
        LaneEnd::Io(IoError::Eof { .. }) | LaneEnd::Io(IoError::Os(_)) if stopping => {
            log::info!("lane {number} ({peer}) closed: the session is ending")
        }
        _ => log::warn!("lane {number} ({peer}) {end}"),
    }
    conn.shut_down();
    drop(conn);
    // Last: after this the session may unmap the pool.
    drop(guard);
}

/// Runs one lane: its hello's answer, then frames until the end.
fn serve(
    guard: &WorkerGuard<TcpStream>,
    conn: &TcpStream,
    mut lane: StreamTarget,
    shared: &Shared,
) -> LaneEnd {
    let registry = guard.registry();
    let stop = || registry.is_stopping();
    let mut io = SockIo::new(conn.as_raw_fd(), shared.spin, shared.spin_yield, &stop);
    if shared.hold_answers {
        io.track_queued();
    }
    // The hello's answer goes in the clear; after it, on a sealed lane,
    // every byte is a record.
    let keys = lane.take_keys();
    if let Next::Send { bytes, .. } = lane.poll() {
        if let Err(e) = io.send_all(bytes) {
            return e.into();
        }
        lane.on_sent();
    }
    match keys.and_then(|k| k.server()) {
        Some((sealer, opener)) => match Inbound::new(opener, vec![0u8; INBOUND_BUF_LEN].into()) {
            Ok(inbound) => {
                io.seal = Some(Box::new(SealIo {
                    sealer,
                    inbound,
                    out: Vec::with_capacity(MAX_RECORD + RECORD_HEADER_LEN + TAG_LEN),
                }))
            }
            Err(e) => return IoError::Seal(e).into(),
        },
        None => log::warn!(
            "lane {} is plaintext (chosen by configuration and by the client): its bytes cross the network in the clear",
            lane.lane().unwrap_or(u32::MAX)
        ),
    }
    let end = drive(&mut io, &mut lane, shared);
    // Answers of persist messages that were executed (their data is
    // durable) still go out, whatever ended the connection.
    let _ = io.flush_answers();
    end
}

/// Sends what the machine has to say before it closes (a refused hello's
/// answer), if anything.
fn farewell(io: &mut SockIo<'_>, lane: &StreamTarget) {
    if let Next::Send { bytes, .. } = lane.poll() {
        let _ = io.send_all(bytes);
    }
}

/// The lane's loop: does what the core's [`StreamTarget`] says next, until
/// the connection ends.
fn drive(io: &mut SockIo<'_>, lane: &mut StreamTarget, shared: &Shared) -> LaneEnd {
    let mut mem = shared.mem.clone();
    let mut msg: Vec<u8> = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    let mut control = [0u8; HELLO_LEN];
    loop {
        match lane.poll() {
            Next::Recv { len } => {
                let Some(buf) = control.get_mut(..len) else {
                    return LaneEnd::Protocol(ServerError::TooManyBytes {
                        due: control.len(),
                        got: len,
                    });
                };
                match io.recv_exact(buf, None) {
                    Ok(()) => {}
                    Err(IoError::Eof { got: 0 }) if lane.between_frames() => {
                        return LaneEnd::Disconnected
                    }
                    Err(e) => return e.into(),
                }
                if let Err(e) = lane.handle_bytes(buf) {
                    farewell(io, lane);
                    return e.into();
                }
            }
            // The accepting thread claimed the lane before the worker
            // started; the machine does not ask again.
            Next::Claim { .. } => return LaneEnd::Protocol(ServerError::Closed),
            Next::Send { bytes, hold } => {
                // Held bytes leave before anything else is sent and before
                // the lane waits for the socket (`SockIo`).
                io.answers.extend_from_slice(bytes);
                if !hold || io.answers.len() >= MAX_HELD_ANSWERS * ANSWER_LEN {
                    if let Err(e) = io.flush_answers() {
                        return e.into();
                    }
                }
                lane.on_sent();
            }
            Next::FlushHeld => {
                if let Err(e) = io.flush_answers() {
                    return e.into();
                }
                lane.on_sent();
            }
            Next::SendPool {
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
                lane.on_sent();
            }
            Next::Body(piece) => {
                if let Err(e) = receive_piece(io, &mut mem, &piece, &mut chunk) {
                    return e;
                }
                if let Err(e) = lane.on_stored() {
                    return e.into();
                }
            }
            Next::WriteBack { from, to } => {
                mem.write_back(from, to);
                lane.on_written_back();
            }
            Next::Msg { len } => {
                if msg.len() < len {
                    msg.resize(len, 0);
                }
                let Some(body) = msg.get_mut(..len) else {
                    return LaneEnd::Range {
                        offset: 0,
                        len: u64::try_from(len).unwrap_or(u64::MAX),
                    };
                };
                if let Err(e) = io.recv_exact_queued(body) {
                    return e.into();
                }
                let plan = match lane.on_msg(body) {
                    Ok(p) => p,
                    Err(e) => return e.into(),
                };
                let resp = match execute(&plan, &mut mem) {
                    Ok(r) => r.unwrap_or_else(|| plan.response()),
                    Err(e) => return LaneEnd::Flush(e),
                };
                // The kernel said with this message's bytes whether the
                // next frame's are already here: then the answer may wait
                // to leave with the next ones.
                let more_queued = io.queued.is_some_and(|n| n > 0) || io.buffered() > 0;
                if let Err(e) = lane.on_answer(resp, more_queued) {
                    return e.into();
                }
            }
            Next::Closed => return LaneEnd::Protocol(ServerError::Closed),
        }
    }
}

/// Receives one piece of a WRITE body (the core validated its range) and
/// stores it as the piece says: a plain piece straight into the pool (the
/// kernel writes it), else through `chunk` (it stays in the CPU cache):
/// its whole lines with non-temporal stores (or stores and a write-back
/// where the CPU cannot), the bytes around them with ordinary stores.
fn receive_piece(
    io: &mut SockIo<'_>,
    mem: &mut PoolMemory,
    piece: &BodyPiece,
    chunk: &mut Vec<u8>,
) -> Result<(), LaneEnd> {
    let (offset, len) = (piece.offset, piece.len);
    let Some(dst) = mem.range(offset, len) else {
        return Err(LaneEnd::Range { offset, len });
    };
    let n = usize::try_from(len).unwrap_or(usize::MAX);
    if piece.is_plain() && io.seal.is_none() {
        // SAFETY: `range` checked that `[dst, dst + n)` lies in the pool
        // mapping, which stays mapped until this worker drops its guard;
        // the kernel writes it, no Rust reference exists.
        return unsafe { io.recv_raw(dst, n, None) }.map_err(LaneEnd::from);
    }
    if piece.is_plain() {
        // A sealed lane: the bytes are opened (authenticated) in the record
        // buffer and stored from there, one opened record at a time (no
        // byte of a record reaches the pool before its tag verified).
        return io
            .recv_opened_with(n, None, |done, bytes| {
                mem.copy_in(offset.saturating_add(done as u64), bytes);
            })
            .map_err(LaneEnd::from);
    }
    if chunk.len() < n {
        chunk.resize(n, 0);
    }
    let Some(buf) = chunk.get_mut(..n) else {
        return Err(LaneEnd::Range { offset, len });
    };
    io.recv_exact(buf, None)?;
    let data: &[u8] = buf;
    let at = |o: u64| usize::try_from(o.saturating_sub(offset)).unwrap_or(usize::MAX);
    let (head, rest) = data.split_at(at(piece.whole_from).min(data.len()));
    let (whole, tail) = rest.split_at(
        at(piece.whole_to)
            .saturating_sub(head.len())
            .min(rest.len()),
    );
    if !head.is_empty() {
        mem.copy_in(offset, head);
    }
    if !whole.is_empty() && !mem.store_lines_streaming(piece.whole_from, whole) {
        mem.copy_in(piece.whole_from, whole);
        mem.write_back(piece.whole_from, piece.whole_to);
    }
    if !tail.is_empty() {
        mem.copy_in(piece.whole_to, tail);
    }
    Ok(())
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
    /// A record from the client failed to open.
    Seal(SealError),
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
            IoError::Seal(e) => write!(f, "the data from the client does not authenticate: {e}"),
        }
    }
}

/// Spin-then-poll I/O on one socket.
struct SockIo<'a> {
    fd: RawFd,
    spin: Duration,
    spin_yield: bool,
    stop: &'a dyn Fn() -> bool,
    /// Whether the kernel reports, with each receive, the bytes still
    /// queued on the socket (`TCP_INQ`).
    inq: bool,
    /// What the last receive that got bytes reported queued behind them
    /// (`None`: unknown). Set by
    /// [`recv_exact_queued`](Self::recv_exact_queued).
    queued: Option<usize>,
    /// The receive in progress asks for `queued` (`recvmsg` with a control
    /// buffer instead of `recv`).
    want_queued: bool,
    /// Answers to persist messages held back to leave in one `send`
    /// ([`flush_answers`](Self::flush_answers)); sent before any wait.
    answers: Vec<u8>,
    /// The record layer of a sealed lane: every byte received is opened
    /// before it is handed out, every byte sent is sealed.
    seal: Option<Box<SealIo>>,
}

/// The record layer of a sealed lane.
struct SealIo {
    sealer: Sealer,
    inbound: Inbound<Box<[u8]>>,
    /// The record being built.
    out: Vec<u8>,
}

impl<'a> SockIo<'a> {
    fn new(fd: RawFd, spin: Duration, spin_yield: bool, stop: &'a dyn Fn() -> bool) -> SockIo<'a> {
        SockIo {
            fd,
            spin,
            spin_yield,
            stop,
            inq: false,
            queued: None,
            want_queued: false,
            answers: Vec::with_capacity(MAX_HELD_ANSWERS * ANSWER_LEN),
            seal: None,
        }
    }

    /// Bytes received and not yet handed out (sealed lanes).
    fn buffered(&self) -> usize {
        self.seal.as_ref().map_or(0, |s| s.inbound.buffered())
    }

    /// Asks the kernel to report the bytes still queued after each receive
    /// (`TCP_INQ`, Linux 4.18+). Without it (older kernels, other systems)
    /// every answer is sent at once.
    fn track_queued(&mut self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let on: libc::c_int = 1;
            // SAFETY: `on` is a valid c_int for the duration of the call.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_INQ,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            self.inq = rc == 0;
        }
    }

    /// Sends the answers held back, if any.
    fn flush_answers(&mut self) -> Result<(), IoError> {
        if self.answers.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.answers);
        let sent = self.send_all(&out);
        self.answers = out;
        self.answers.clear();
        sent
    }

    /// One non-blocking receive into `[ptr, ptr + len)`; within
    /// [`recv_exact_queued`](Self::recv_exact_queued), also records the
    /// bytes still queued behind the ones received.
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + len)` must be valid for writes for the whole call.
    unsafe fn recv_once(&mut self, ptr: *mut u8, len: usize) -> isize {
        if !self.want_queued {
            // SAFETY: the caller's range is valid for writes.
            return unsafe { libc::recv(self.fd, ptr.cast(), len, libc::MSG_DONTWAIT) };
        }
        let mut iov = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        // Room for one cmsg carrying a c_int, 8-byte aligned.
        let mut control = [0u64; 4];
        // SAFETY: a zeroed msghdr is valid; the fields set below point at
        // `iov` and `control`, which outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` describes one iovec over the caller's range and a
        // control buffer of the size given.
        let n = unsafe { libc::recvmsg(self.fd, &mut msg, libc::MSG_DONTWAIT) };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if n > 0 {
            self.queued = None;
            // SAFETY: the kernel filled `msg_control` with well-formed
            // cmsgs of at most `msg_controllen` bytes; the CMSG_* helpers
            // stay inside it, and the data is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_TCP && (*c).cmsg_type == libc::TCP_CM_INQ {
                        let v = libc::CMSG_DATA(c).cast::<libc::c_int>().read_unaligned();
                        self.queued = usize::try_from(v).ok();
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
        }
        n
    }

    /// [`recv_exact`](Self::recv_exact), recording in
    /// [`queued`](Self::queued) what the kernel reports still queued after
    /// the last bytes (with [`track_queued`](Self::track_queued) on; other
    /// receives use the cheaper `recv`).
    fn recv_exact_queued(&mut self, buf: &mut [u8]) -> Result<(), IoError> {
        self.queued = None;
        self.want_queued = self.inq;
        let got = self.recv_exact(buf, None);
        self.want_queued = false;
        got
    }

    fn recv_exact(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<(), IoError> {
        if self.seal.is_some() {
            return self.recv_opened(buf, deadline);
        }
        // SAFETY: a slice is valid for writes of its length.
        unsafe { self.recv_raw(buf.as_mut_ptr(), buf.len(), deadline) }
    }

    /// Fills `buf` with opened (authenticated) bytes of a sealed lane:
    /// records are received into the record buffer and opened there.
    fn recv_opened(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<(), IoError> {
        self.recv_opened_with(buf.len(), deadline, |done, src| {
            if let Some(d) = buf.get_mut(done..done + src.len()) {
                d.copy_from_slice(src);
            }
        })
    }

    /// Receives `want` opened (authenticated) bytes of a sealed lane and
    /// hands them to `put(bytes already handed, bytes)` straight from the
    /// record buffer, in order. `put` only ever sees bytes of records whose
    /// tag verified.
    fn recv_opened_with(
        &mut self,
        want: usize,
        deadline: Option<Instant>,
        mut put: impl FnMut(usize, &[u8]),
    ) -> Result<(), IoError> {
        let mut done = 0usize;
        let mut spin_from = None;
        while done < want {
            let Some(s) = self.seal.as_deref_mut() else {
                return Err(IoError::Stopped);
            };
            match s.inbound.open_next() {
                Ok(true) => {
                    let have = s.inbound.plaintext();
                    let take = have.len().min(want - done);
                    put(done, have.get(..take).unwrap_or_default());
                    s.inbound.consume(take);
                    done += take;
                    continue;
                }
                Ok(false) => {}
                Err(e) => return Err(IoError::Seal(e)),
            }
            let space = s.inbound.space();
            let (ptr, len) = (space.as_mut_ptr(), space.len());
            // SAFETY: `[ptr, ptr + len)` is the record buffer's free space,
            // which nothing else touches during the call.
            let n = unsafe { self.recv_once(ptr, len) };
            if n > 0 {
                if let Some(s) = self.seal.as_deref_mut() {
                    s.inbound.received(n.unsigned_abs());
                }
                spin_from = None;
                continue;
            }
            self.recv_stalled(n, done, &mut spin_from, deadline)?;
        }
        Ok(())
    }

    /// After a receive that returned `n` (zero or less) with `got` bytes
    /// already in: the end of the stream (`n == 0`) or the socket's error,
    /// or `Ok` to try again (interrupted; nothing to read yet, so the
    /// answers held back go first, or else the socket is waited for). Called
    /// right after the receive, before anything can change `errno`.
    fn recv_stalled(
        &mut self,
        n: isize,
        got: usize,
        spin_from: &mut Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<(), IoError> {
        if n == 0 {
            return Err(IoError::Eof { got });
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            // Nothing to read now: what is held back goes first.
            io::ErrorKind::WouldBlock if !self.answers.is_empty() => self.flush_answers(),
            io::ErrorKind::WouldBlock => self.wait(libc::POLLIN, spin_from, deadline),
            _ => Err(IoError::Os(e)),
        }
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
            let n = unsafe { self.recv_once(ptr.wrapping_add(done), len - done) };
            if n > 0 {
                done = done.saturating_add(n.unsigned_abs());
                spin_from = None;
                continue;
            }
            self.recv_stalled(n, done, &mut spin_from, deadline)?;
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
        if self.seal.is_none() {
            // SAFETY: the caller's guarantee.
            return unsafe { self.send_raw(parts) };
        }
        let mut first = 0usize;
        loop {
            // The next record: up to MAX_RECORD bytes of the parts.
            let Some(mut s) = self.seal.take() else {
                return Ok(());
            };
            s.out.clear();
            s.out.resize(RECORD_HEADER_LEN, 0);
            while let Some(part) = parts.get_mut(first) {
                let room = MAX_RECORD + RECORD_HEADER_LEN - s.out.len();
                if room == 0 {
                    break;
                }
                let take = part.1.min(room);
                // SAFETY: the caller guarantees `part` readable for its
                // length; `take` is at most that.
                let src = unsafe { std::slice::from_raw_parts(part.0, take) };
                s.out.extend_from_slice(src);
                part.0 = part.0.wrapping_add(take);
                part.1 -= take;
                if part.1 == 0 {
                    first += 1;
                }
            }
            let plain = s.out.len() - RECORD_HEADER_LEN;
            if plain == 0 {
                self.seal = Some(s);
                return Ok(());
            }
            s.out.resize(plain + RECORD_HEADER_LEN + TAG_LEN, 0);
            let sealed = s.sealer.seal_in_place(&mut s.out, plain);
            let rec = std::mem::take(&mut s.out);
            self.seal = Some(s);
            if let Err(e) = sealed {
                return Err(IoError::Seal(e));
            }
            // SAFETY: `rec` is a live buffer for the call.
            let sent = unsafe { self.send_raw(&mut [(rec.as_ptr(), rec.len())]) };
            if let Some(s) = self.seal.as_deref_mut() {
                s.out = rec;
            }
            sent?;
        }
    }

    /// [`send_parts`](Self::send_parts) as the bytes are (no record layer).
    ///
    /// # Safety
    ///
    /// Each `(ptr, len)` must be valid for reads for the whole call.
    unsafe fn send_raw(&mut self, parts: &mut [(*const u8, usize)]) -> Result<(), IoError> {
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
                if self.spin_yield {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
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

    /// The client side of the handshake over `s`: hello, rpmemd's proof
    /// checked, the lane's proof, the answer's status.
    fn handshake(
        s: &mut std::net::TcpStream,
        lane: u32,
        secret: &[u8; SECRET_LEN],
        mode: LaneMode,
    ) -> rpmem_core::wire::tcp::HelloStatus {
        use rpmem_core::wire::tcp::{HelloAck, HelloAckRepr};
        use std::io::{Read, Write};
        let c = rpmem_core::seal::ClientHandshake::new(secret, lane, mode, [lane as u8; 32]);
        s.write_all(c.hello()).unwrap();
        let mut sh = [0u8; rpmem_core::seal::SERVER_HELLO_LEN];
        s.read_exact(&mut sh).unwrap();
        let (proof, _) = c.on_server_hello(&sh).unwrap();
        s.write_all(&proof).unwrap();
        let mut ack = [0u8; rpmem_core::wire::tcp::HELLO_ACK_LEN];
        s.read_exact(&mut ack).unwrap();
        HelloAckRepr::parse(&HelloAck::new_checked(&ack).unwrap())
            .unwrap()
            .status
    }

    /// [`handshake`] of a sealed lane, with a 10 s read timeout on `s`.
    fn sealed_hello(
        s: &mut TcpStream,
        lane: u32,
        secret: &[u8; SECRET_LEN],
    ) -> rpmem_core::wire::tcp::HelloStatus {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        handshake(s, lane, secret, LaneMode::Sealed)
    }

    /// One page of a [`ScratchPool`].
    #[repr(C, align(4096))]
    #[derive(Clone, Copy)]
    struct Page([u8; 4096]);

    /// A zeroed, page-aligned scratch "pool" on the heap: the target side of
    /// a test writes it through [`ScratchPool::memory`].
    struct ScratchPool(Vec<Page>);

    impl ScratchPool {
        fn new(size: usize) -> ScratchPool {
            assert_eq!(size % 4096, 0, "whole pages");
            ScratchPool(vec![Page([0; 4096]); size / 4096])
        }

        fn len(&self) -> usize {
            self.0.len() * 4096
        }

        /// The pool as rpmemd's [`PoolMemory`], flushing with this CPU's
        /// instructions.
        ///
        /// # Safety
        ///
        /// The pool must outlive every use of the returned memory (and of
        /// its clones), and must not be read while that memory writes it.
        unsafe fn memory(&mut self) -> PoolMemory {
            use crate::transport::DeepFlush;
            use rpmem_core::flush::cpu::FlushInstr;
            let len = self.len();
            let base = std::ptr::NonNull::new(self.0.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: one heap allocation of `len` bytes, readable and
            // writable, page aligned (`Page`); the caller keeps it alive and
            // unread while the memory writes it.
            unsafe { PoolMemory::new(base, len, FlushInstr::detect(), DeepFlush::default()) }
        }

        /// A copy of the pool's bytes.
        fn bytes(&self) -> Vec<u8> {
            self.0.iter().flat_map(|p| p.0).collect()
        }
    }

    /// A GPSPM target of `nlanes` lanes over a pool of `pool_size` bytes
    /// (all of it writable), taking inline bodies of up to `inline_max`
    /// bytes and flushing by `flush_mode`.
    fn gpspm_target(
        nlanes: u32,
        pool_size: usize,
        inline_max: u64,
        flush_mode: FlushMode,
    ) -> Target {
        use rpmem_core::persist::{Method, TargetParams};
        Target::new(TargetParams {
            nlanes,
            pool_size: pool_size as u64,
            min_offset: 0,
            inline_max,
            flush_mode,
            method: Method::Gpspm,
        })
        .unwrap()
    }

    /// A [`TcpServer`] on `config` over `pool` with a [`gpspm_target`] of
    /// `nlanes` lanes.
    ///
    /// # Safety
    ///
    /// As [`ScratchPool::memory`]: `pool` outlives the server and is not
    /// read before the server stopped.
    unsafe fn start_server(
        config: &TcpConfig,
        pool: &mut ScratchPool,
        nlanes: u32,
        inline_max: u64,
        flush_mode: FlushMode,
        secret: [u8; SECRET_LEN],
    ) -> TcpServer {
        let target = gpspm_target(nlanes, pool.len(), inline_max, flush_mode);
        // SAFETY: the caller's promise.
        let mem = unsafe { pool.memory() };
        TcpServer::start(config, target, secret, mem).unwrap()
    }

    /// The configuration of the tests that count waiting connections: on
    /// 127.0.0.1, a hello may wait 30 s.
    fn waiting_config() -> TcpConfig {
        let mut config = TcpConfig::new("127.0.0.1:0".parse().unwrap());
        config.hello_timeout = Duration::from_secs(30);
        config
    }

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

    #[test]
    fn defaults_yield_and_stream() {
        let c = TcpConfig::new("127.0.0.1:0".parse().unwrap());
        assert!(c.spin_yield);
        assert!(c.stream_stores);
        assert!(c.stream_inline);
        assert!(c.hold_answers);
        assert_eq!(c.spin, DEFAULT_SPIN);
    }

    /// WRITE bodies of every shape, in pieces of 4 KiB as the core's lane
    /// machine hands them out (whole lines streamed, the bytes around them
    /// stored, the first partial line written back): every byte lands, and
    /// nothing outside the body is touched.
    #[rstest::rstest]
    #[case(0, 64)]
    #[case(0, 100)]
    #[case(3, 10)]
    #[case(100, 20)]
    #[case(60, 10)]
    #[case(60, 200)]
    #[case(128, 0)]
    #[case(64, 131_077)]
    #[case(7, 150_000)]
    fn streamed_bodies_land_whole(#[case] offset: u64, #[case] len: u64) {
        use rpmem_core::persist::StreamClient;
        use rpmem_core::wire::tcp::{FrameKind, FrameRepr};
        use std::io::Write;

        let size = 256 * 1024;
        let mut pool = ScratchPool::new(size);
        // SAFETY: `pool` outlives `mem` and is read only after `mem` wrote
        // its last byte.
        let mut mem = unsafe { pool.memory() };
        let target = gpspm_target(1, size, 64, FlushMode::Cpu);
        let secret = [1u8; SECRET_LEN];
        let mut lane =
            StreamTarget::new(target, secret, [2; 32], LaneMode::Sealed, true, 4096, false);
        let c = rpmem_core::seal::ClientHandshake::new(&secret, 0, LaneMode::Sealed, [3; 32]);
        lane.handle_bytes(c.hello()).unwrap();
        let Next::Send { bytes, .. } = lane.poll() else {
            panic!("{:?}", lane.poll());
        };
        let (proof, _) = c.on_server_hello(bytes.try_into().unwrap()).unwrap();
        lane.on_sent();
        lane.handle_bytes(&proof).unwrap();
        lane.on_claim(Ok(())).unwrap();
        lane.on_sent();
        // The body below goes in the clear: this test is about the pieces.
        let _ = StreamClient::new(0);
        let header = FrameRepr {
            kind: FrameKind::Write,
            lane: 0,
            req_id: 0,
            offset,
            len,
        };
        lane.handle_bytes(&header.to_bytes()).unwrap();
        let body: Vec<u8> = (0..len).map(|i| (i % 253) as u8 + 1).collect();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let sent = body.clone();
        let writer = std::thread::spawn(move || tx.write_all(&sent).unwrap());
        let stop = || false;
        let mut io = SockIo::new(rx.as_raw_fd(), Duration::from_micros(50), true, &stop);
        let mut chunk = Vec::new();
        loop {
            match lane.poll() {
                Next::FlushHeld => lane.on_sent(),
                Next::Body(piece) => {
                    assert!(piece.len <= 4096 + 64, "{piece:?}");
                    receive_piece(&mut io, &mut mem, &piece, &mut chunk).unwrap();
                    lane.on_stored().unwrap();
                }
                Next::WriteBack { from, to } => {
                    mem.write_back(from, to);
                    lane.on_written_back();
                }
                Next::Recv { .. } => break,
                other => panic!("{other:?}"),
            }
        }
        writer.join().unwrap();
        let bytes = pool.bytes();
        let (o, l) = (offset as usize, len as usize);
        assert_eq!(&bytes[o..o + l], &body[..]);
        assert!(bytes[..o].iter().all(|&b| b == 0));
        assert!(bytes[o + l..].iter().all(|&b| b == 0));
    }

    /// A plain WRITE body piece on a sealed lane is stored straight from the
    /// opened records: whole when every tag verifies; when the second
    /// record was altered on the way, the first record's bytes land and not
    /// one byte of the second.
    #[rstest::rstest]
    #[case(false)]
    #[case(true)]
    fn sealed_plain_pieces_store_only_verified_records(#[case] tamper: bool) {
        use rpmem_core::seal::{ClientHandshake, ServerHandshake, MAX_RECORD_WIRE, NONCE_LEN};
        use std::io::Write;

        let secret = [7u8; SECRET_LEN];
        let c = ClientHandshake::new(&secret, 0, LaneMode::Sealed, [3; 32]);
        let (sh, server_hello) =
            ServerHandshake::on_hello(&secret, c.hello(), [4; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        let (proof, client_keys) = c.on_server_hello(&server_hello).unwrap();
        let (_, opener) = sh.on_proof(&proof).unwrap().server().unwrap();
        let (mut sealer, _) = client_keys.client().unwrap();

        let (offset, len) = (4096u64, MAX_RECORD + 34_464);
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let mut wire = Vec::new();
        for part in body.chunks(MAX_RECORD) {
            let mut rec = vec![0u8; MAX_RECORD_WIRE];
            let n = sealer.seal_from(part, &mut rec).unwrap();
            wire.push(rec[..n].to_vec());
        }
        assert_eq!(wire.len(), 2);
        if tamper {
            wire[1][RECORD_HEADER_LEN + 100] ^= 1;
        }

        let mut pool = ScratchPool::new(256 * 1024);
        // SAFETY: `pool` outlives `mem`, which is dropped before the pool is
        // read.
        let mut mem = unsafe { pool.memory() };
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            for rec in wire {
                tx.write_all(&rec).unwrap();
            }
        });
        let stop = || false;
        let mut io = SockIo::new(rx.as_raw_fd(), Duration::from_micros(50), true, &stop);
        io.seal = Some(Box::new(SealIo {
            sealer: client_keys.client().unwrap().0,
            inbound: Inbound::new(opener, vec![0u8; INBOUND_BUF_LEN].into()).unwrap(),
            out: Vec::new(),
        }));
        let piece = BodyPiece {
            offset,
            len: len as u64,
            whole_from: 0,
            whole_to: 0,
        };
        assert!(piece.is_plain());
        let got = receive_piece(&mut io, &mut mem, &piece, &mut Vec::new());
        writer.join().unwrap();
        drop(mem);
        let bytes = pool.bytes();
        let o = offset as usize;
        assert!(bytes[..o].iter().all(|&b| b == 0));
        if tamper {
            assert!(matches!(got, Err(LaneEnd::Io(IoError::Seal(_)))), "{got:?}");
            assert_eq!(&bytes[o..o + MAX_RECORD], &body[..MAX_RECORD]);
            assert!(bytes[o + MAX_RECORD..].iter().all(|&b| b == 0));
        } else {
            got.unwrap();
            assert_eq!(&bytes[o..o + len], &body[..]);
            assert!(bytes[o + len..].iter().all(|&b| b == 0));
        }
    }

    fn loopback_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.set_nodelay(true).unwrap();
        (c, s)
    }

    #[test]
    fn the_kernel_reports_what_is_queued_behind_a_receive() {
        use std::io::Write;
        let (mut c, s) = loopback_pair();
        let stop = || false;
        let mut io = SockIo::new(s.as_raw_fd(), Duration::from_micros(50), true, &stop);
        io.track_queued();
        if !io.inq {
            // A kernel without TCP_INQ: every answer goes out at once.
            return;
        }
        c.write_all(&[5u8; 100]).unwrap();
        let mut buf = [0u8; 40];
        // All 100 bytes may take a moment to be queued.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let mut avail: libc::c_int = 0;
            // SAFETY: FIONREAD writes one c_int.
            unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut avail) };
            if avail >= 100 || Instant::now() > until {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        io.recv_exact_queued(&mut buf).unwrap();
        assert_eq!(io.queued, Some(60));
        let mut rest = [0u8; 60];
        io.recv_exact_queued(&mut rest).unwrap();
        assert_eq!(io.queued, Some(0));
        // A plain receive does not ask.
        c.write_all(&[6u8; 10]).unwrap();
        let mut more = [0u8; 4];
        io.recv_exact(&mut more, None).unwrap();
        assert_eq!(io.queued, Some(0));
        assert!(buf.iter().chain(rest.iter()).all(|&b| b == 5));
    }

    #[test]
    fn held_answers_leave_before_the_lane_waits() {
        use std::io::{Read, Write};
        let (mut c, s) = loopback_pair();
        let stop = || false;
        let mut io = SockIo::new(s.as_raw_fd(), Duration::from_micros(50), true, &stop);
        io.track_queued();
        io.answers.extend_from_slice(b"two answers");
        // The peer sends its next bytes only after it got the answers: if
        // the lane waited while holding them, both would wait forever (the
        // read times out and the test fails).
        let peer = std::thread::spawn(move || {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = [0u8; 11];
            c.read_exact(&mut got).unwrap();
            c.write_all(b"next").unwrap();
            got
        });
        let mut next = [0u8; 4];
        io.recv_exact(&mut next, None).unwrap();
        assert_eq!(&next, b"next");
        assert_eq!(&peer.join().unwrap(), b"two answers");
        assert!(io.answers.is_empty());
    }

    /// A TCP connection to `to` from `from` (any port): loopback has every
    /// address of 127/8, so two "hosts" can be told apart on one machine.
    fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> TcpStream {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 only")
        };
        let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: plain socket calls on a descriptor this test owns, with
        // sockaddr_in values that live across the calls.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let local = sin(from, 0);
            assert_eq!(
                libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
                0
            );
            let remote = sin(*to.ip(), to.port());
            assert_eq!(
                libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
                0
            );
            TcpStream::from_raw_fd(fd)
        }
    }

    /// Closed by the server: the read ends (nothing was sent to it).
    fn closed_within(s: &TcpStream, limit: Duration) -> bool {
        use std::io::Read;
        s.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 8];
        match (&*s).read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }

    /// Issue 15: more connections than may wait for their hello, all from
    /// one address, close that address's oldest waiting connections, never
    /// the one waiting from another address, whose hello is then served;
    /// a lane that proved the secret is never counted.
    #[test]
    fn a_flood_from_one_address_closes_only_its_own_waiting_connections() {
        use rpmem_core::wire::tcp::HelloStatus;

        let mut pool = ScratchPool::new(64 * 1024);
        let secret = [7u8; SECRET_LEN];
        let mut config = waiting_config();
        config.max_pending = 4;
        // SAFETY: `pool` outlives the server (stopped below) and is not read.
        let mut server = unsafe { start_server(&config, &mut pool, 2, 64, FlushMode::Cpu, secret) };
        let addr = server.local_addr();
        // A lane that proved the secret first: it is never counted.
        let mut lane0 = TcpStream::connect(addr).unwrap();
        assert_eq!(sealed_hello(&mut lane0, 0, &secret), HelloStatus::Ok);
        let mut other = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr);
        std::thread::sleep(Duration::from_millis(100));
        let flood: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // The 9 oldest of the flood are closed: 3 of it wait with `other`.
        for (i, s) in flood.iter().enumerate().take(9) {
            assert!(closed_within(s, Duration::from_secs(10)), "flood {i}");
        }
        for s in &flood[9..] {
            assert!(!closed_within(s, Duration::from_millis(50)));
        }
        assert!(!closed_within(&other, Duration::from_millis(50)));
        assert_eq!(sealed_hello(&mut other, 1, &secret), HelloStatus::Ok);
        assert_eq!(server.lanes_connected(), 2);
        drop(flood);
        server.stop();
    }

    /// Issue 15: with `peer` set (the ssh client's address), a connection
    /// from another address is closed at once, unread; the client's own
    /// lanes connect.
    #[test]
    fn only_the_ssh_clients_address_may_connect() {
        use rpmem_core::wire::tcp::HelloStatus;

        let mut pool = ScratchPool::new(64 * 1024);
        let secret = [9u8; SECRET_LEN];
        let mut config = waiting_config();
        config.peer = Some("127.0.0.2".parse().unwrap());
        // SAFETY: `pool` outlives the server (stopped below) and is not read.
        let mut server = unsafe { start_server(&config, &mut pool, 1, 64, FlushMode::Cpu, secret) };
        let addr = server.local_addr();
        let stranger = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 1), addr);
        assert!(closed_within(&stranger, Duration::from_secs(1)));
        let mut client = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr);
        assert_eq!(sealed_hello(&mut client, 0, &secret), HelloStatus::Ok);
        assert_eq!(server.lanes_connected(), 1);
        server.stop();
        drop(pool);
    }

    /// A lane whose worker thread cannot be created is given back: its
    /// connection closes without the hello's answer, and the client's next
    /// connection for the same lane is served.
    #[test]
    fn a_lane_whose_worker_cannot_start_may_be_connected_again() {
        use rpmem_core::wire::tcp::HelloStatus;
        use std::io::{Read, Write};

        let mut pool = ScratchPool::new(64 * 1024);
        let secret = [5u8; SECRET_LEN];
        // SAFETY: `pool` outlives the server (stopped below) and is not read.
        let mut server =
            unsafe { start_server(&waiting_config(), &mut pool, 1, 64, FlushMode::Cpu, secret) };
        let addr = server.local_addr();
        // An address of this test's own: the hook refuses its next thread.
        let from = std::net::Ipv4Addr::new(127, 0, 0, 3);
        NO_THREAD_FOR.lock().unwrap().push(IpAddr::V4(from));
        let mut first = connect_from(from, addr);
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let c = rpmem_core::seal::ClientHandshake::new(&secret, 0, LaneMode::Sealed, [3; 32]);
        first.write_all(c.hello()).unwrap();
        let mut sh = [0u8; rpmem_core::seal::SERVER_HELLO_LEN];
        first.read_exact(&mut sh).unwrap();
        let (proof, _) = c.on_server_hello(&sh).unwrap();
        first.write_all(&proof).unwrap();
        // The lane was claimed, its worker refused: closed, nothing said.
        assert!(closed_within(&first, Duration::from_secs(10)));
        assert!(NO_THREAD_FOR.lock().unwrap().is_empty(), "the hook ran");
        assert_eq!(server.lanes_connected(), 0);
        let mut second = connect_from(from, addr);
        assert_eq!(sealed_hello(&mut second, 0, &secret), HelloStatus::Ok);
        assert_eq!(server.lanes_connected(), 1);
        server.stop();
        drop(pool);
    }

    /// A client of the real server that writes many inline persist messages
    /// at once, then a READ_REQ: every answer comes, in order, before the
    /// read's bytes, and a lone message is answered without anything after
    /// it.
    #[rstest::rstest]
    #[case(FlushMode::Cpu, true)]
    #[case(FlushMode::Cpu, false)]
    #[case(FlushMode::FenceOnly, true)]
    fn pipelined_inline_messages_are_all_answered_in_order(
        #[case] flush_mode: FlushMode,
        #[case] hold: bool,
    ) {
        use rpmem_core::persist::{
            FrameBody, Op, PersistMode, PersistMsgRepr, ReadDest, ServerFrame, StreamClient,
        };
        use rpmem_core::wire::persist::RESP_LEN;
        use rpmem_core::wire::tcp::FRAME_HEADER_LEN;
        use std::io::{Read, Write};

        const INLINE: u64 = 64 * 1024;
        let size = 2usize << 20;
        let mut pool = ScratchPool::new(size);
        let secret = [9u8; SECRET_LEN];
        let mut config = TcpConfig::new("127.0.0.1:0".parse().unwrap());
        config.hold_answers = hold;
        // Frames in the clear: this test counts them on the wire.
        config.plaintext = true;
        // SAFETY: `pool` outlives the server, stopped below before the pool
        // is read.
        let mut server = unsafe { start_server(&config, &mut pool, 1, INLINE, flush_mode, secret) };
        let mut sock = TcpStream::connect(server.local_addr()).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut client = StreamClient::new(0);
        assert_eq!(
            handshake(&mut sock, 0, &secret, LaneMode::Plaintext),
            rpmem_core::wire::tcp::HelloStatus::Ok
        );

        let local: Vec<u8> = (0..size).map(|i| (i % 251) as u8 ^ 0x3c).collect();
        let mut out = Vec::new();
        let send = |client: &mut StreamClient, offset: u64, len: u64, out: &mut Vec<u8>| {
            let msg = PersistMsgRepr {
                mode: PersistMode::PersistSend,
                completion: false,
                lane: 0,
                offset,
                size: len,
            };
            let f = client
                .frame(&Op::Send {
                    lane: 0,
                    msg,
                    inline: true,
                })
                .unwrap();
            out.extend_from_slice(&f.header);
            let FrameBody::Message { header, .. } = f.body else {
                panic!("not a message");
            };
            out.extend_from_slice(&header);
            out.extend_from_slice(&local[offset as usize..(offset + len) as usize]);
        };
        // 16 messages of 64 KiB (one 1 MiB persist), unaligned at the start.
        let first = 100u64;
        for k in 0..16 {
            send(&mut client, first + k * INLINE, INLINE, &mut out);
        }
        let read = client
            .frame(&Op::Read {
                lane: 0,
                offset: first,
                len: 4096,
                dest: ReadDest::User { buf_offset: 0 },
            })
            .unwrap();
        out.extend_from_slice(&read.header);
        sock.write_all(&out).unwrap();
        for _ in 0..16 {
            let mut h = [0u8; FRAME_HEADER_LEN + RESP_LEN];
            sock.read_exact(&mut h).unwrap();
            assert_eq!(
                client.on_server_header(&h[..FRAME_HEADER_LEN]).unwrap(),
                ServerFrame::Recv
            );
        }
        let mut h = [0u8; FRAME_HEADER_LEN];
        sock.read_exact(&mut h).unwrap();
        assert!(matches!(
            client.on_server_header(&h).unwrap(),
            ServerFrame::ReadResp { len: 4096, .. }
        ));
        let mut back = vec![0u8; 4096];
        sock.read_exact(&mut back).unwrap();
        assert_eq!(&back[..], &local[first as usize..first as usize + 4096]);
        // A lone message is answered though nothing follows it.
        let mut lone = Vec::new();
        send(&mut client, first + 16 * INLINE, 8, &mut lone);
        sock.write_all(&lone).unwrap();
        let mut h = [0u8; FRAME_HEADER_LEN + RESP_LEN];
        sock.read_exact(&mut h).unwrap();
        assert_eq!(
            client.on_server_header(&h[..FRAME_HEADER_LEN]).unwrap(),
            ServerFrame::Recv
        );
        drop(sock);
        server.stop();
        let pool = pool.bytes();
        let end = (first + 16 * INLINE + 8) as usize;
        assert_eq!(&pool[first as usize..end], &local[first as usize..end]);
        assert!(pool[..first as usize].iter().all(|&b| b == 0));
        assert!(pool[end..].iter().all(|&b| b == 0));
    }
}
