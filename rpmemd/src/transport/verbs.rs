//! Our native ibverbs data path (`PROV_VERBS`, cargo feature `verbs`): one
//! RC queue pair per lane, set up with librdmacm.
//!
//! rpmemd listens (`rdma_listen`) on the address the client reached it on,
//! which must belong to an RDMA device, on an ephemeral port. The pool is
//! registered once on that device with local write, remote write and remote
//! read access, **from the session's `min_offset` to its end** ([`PoolTail`]):
//! the pool header (the first 4 KiB of a pool with headers) is not part of
//! the registration, so no RDMA WRITE, READ or atomic of any client can
//! reach it (the NIC answers with a remote access error). The CREATE/OPEN
//! response tells the client the port, the pool's address (of offset 0, as
//! PMDK's `raddr`: the client adds the offset) and the rkey (PMDK's
//! `rpmem_msg_ibc_attr`), and the session secret (our extension).
//!
//! A connection request carries our 48-byte hello as private data (lane and
//! session secret). The core's [`StreamServer`] checks it, the
//! [`LaneRegistry`] refuses a lane taken twice; a refused request is
//! rejected with the 8-byte hello answer as private data, before any queue
//! pair exists, so a client without the secret never gets access to the
//! pool's registration. Anyone who reaches the port can cause refusals, so
//! their log lines are rate limited as on TCP ([`RefusalLog`]: wrong secret,
//! other refusals, too many requests waiting; the first
//! [`REFUSAL_LOG_BURST`] of each kind per [`REFUSAL_LOG_INTERVAL`], then one
//! summary line). An accepted one gets a queue pair with
//! `send_window` receive buffers of `24 + inline_max` bytes posted, and
//! its own worker thread.
//!
//! The data itself moves without rpmemd: the client's RDMA WRITEs place it
//! in the pool, APM's RDMA READs flush it. rpmemd's worker only serves
//! persist messages (GPSPM, inline persists, deep persists): each RECV is
//! planned by the core's [`Target`] and executed against [`PoolMemory`]
//! (copy inline data with 8-byte stores, flush the range, fence), then the
//! 8-byte response leaves by SEND (inline) and the buffer is posted again.
//! Waiting spins on the completion queue for [`VerbsConfig::spin`] (yielding
//! the CPU), then sleeps on the completion channel.
//!
//! RDMA FLUSH: when the session asks for it ([`VerbsConfig::flush`]: the
//! pool is persistent memory) and the device can execute persistent FLUSH
//! ([`Pd::flush_support`]), the pool is registered with
//! `IBV_ACCESS_FLUSH_PERSISTENT` as well; rxe refuses that right for memory
//! the kernel does not list as persistent memory (`EINVAL`), and then the
//! pool is registered without it. [`VerbsServer::flush`] says which, and
//! why; the session offers FLUSH to the client only after a registration
//! with the right. FLUSHes are executed by the NIC (or rxe's kernel code)
//! without this process.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rpmem_core::persist::{execute, HelloAccepted, HelloReject, ServerError, StreamServer, Target};
use rpmem_core::wire::persist::HEADER_LEN as MSG_HEADER_LEN;
use rpmem_core::wire::tcp::{HelloAckRepr, HelloStatus, HELLO_ACK_LEN, HELLO_LEN, SECRET_LEN};
use rpmem_verbs::{
    Access, Disconnector, Endpoint, EndpointConfig, Listener, Memory, Mr, Pd, Request, Wake, WcKind,
};

use super::tcp::{REFUSAL_LOG_BURST, REFUSAL_LOG_INTERVAL};
use super::{Connection, LaneRegistry, PoolMemory, Refusal};
use crate::logging::RateLimit;
use crate::sync::thread::{Builder, JoinHandle};
use crate::sync::{lock, Arc, Mutex};

/// How long a request has to become an established connection.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accepting thread and idle workers re-check for a stop.
const SLICE: Duration = Duration::from_millis(200);
/// Stack of a lane worker.
const WORKER_STACK: usize = 256 * 1024;
/// `IBV_WC_WR_FLUSH_ERR`: the status of work requests flushed when a queue
/// pair enters the error state.
const WC_WR_FLUSH_ERR: u32 = 5;

// SAFETY: `PoolMemory::new`'s contract keeps the range mapped while any
// clone is used; a registration holding a clone counts as a use (the NIC
// may access the pool as long as it exists), and the session stops the
// verbs server, which drops the registration and waits for every worker,
// before it unmaps the pool. Lane workers only write the pool through raw
// pointers (`PoolMemory::copy_in`), never through references.
unsafe impl Memory for PoolMemory {
    fn as_ptr(&self) -> *mut u8 {
        self.range(0, 0).unwrap_or(std::ptr::null_mut())
    }
    fn len(&self) -> usize {
        PoolMemory::len(self)
    }
}

/// The part of the pool the NIC may reach: `[start, end)` of the pool, where
/// `start` is the session's `min_offset` (4096 with pool headers, 0 without).
/// Registering only this range keeps the header out of every remote WRITE,
/// READ and atomic: the rkey does not cover it.
#[derive(Clone, Debug)]
struct PoolTail {
    mem: PoolMemory,
    /// First registered offset; at most `mem.len()`.
    start: usize,
}

impl PoolTail {
    /// `[min_offset, end)` of `mem`; `None` when nothing would be left.
    fn new(mem: &PoolMemory, min_offset: u64) -> Option<PoolTail> {
        let start = usize::try_from(min_offset).ok()?;
        (start < mem.len()).then(|| PoolTail {
            mem: mem.clone(),
            start,
        })
    }
}

// SAFETY: the same range promise as `PoolMemory`'s (above), for a suffix of
// it: `start < mem.len()` (checked by `PoolTail::new`), so
// `[as_ptr(), as_ptr() + len())` lies inside the pool's mapping, which the
// session keeps mapped until the verbs server dropped the registration.
unsafe impl Memory for PoolTail {
    fn as_ptr(&self) -> *mut u8 {
        self.mem
            .range(self.start as u64, 0)
            .unwrap_or(std::ptr::null_mut())
    }
    fn len(&self) -> usize {
        self.mem.len().saturating_sub(self.start)
    }
}

/// Which rate limit a refused connection request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefusalKind {
    /// A hello with a wrong session secret.
    BadSecret,
    /// Anything else that did not become a lane: private data that is not a
    /// hello, another version, a lane out of range or already connected.
    Refused,
    /// Too many requests were waiting for their worker.
    Busy,
}

/// Rate limits of the refusals peers without a lane cause (anyone who can
/// reach the port): a flood of connection requests must not flood the log.
/// Lanes of the session never touch them.
#[derive(Debug)]
struct RefusalLog {
    bad_secret: RateLimit,
    refused: RateLimit,
    busy: RateLimit,
}

impl RefusalLog {
    fn new() -> RefusalLog {
        RefusalLog {
            bad_secret: RateLimit::new(
                "RDMA connection requests with a wrong session secret",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
            refused: RateLimit::new(
                "other refused RDMA connection requests",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
            busy: RateLimit::new(
                "RDMA connection requests refused while too many waited",
                REFUSAL_LOG_BURST,
                REFUSAL_LOG_INTERVAL,
            ),
        }
    }

    fn limit(&self, kind: RefusalKind) -> &RateLimit {
        match kind {
            RefusalKind::BadSecret => &self.bad_secret,
            RefusalKind::Refused => &self.refused,
            RefusalKind::Busy => &self.busy,
        }
    }

    fn all(&self) -> [&RateLimit; 3] {
        [&self.bad_secret, &self.refused, &self.busy]
    }

    /// Counts a refusal; logs it (and returns true) while its kind is
    /// within its burst.
    fn note(&self, refused: &Refused, peer: &str) -> bool {
        let logged = self.limit(refused.kind).admit();
        if logged {
            log::warn!("RDMA connection from {peer} refused: {}", refused.why);
        }
        logged
    }
}

/// Why a connection request does not become a lane, and what it is told.
#[derive(Debug)]
struct Refused {
    /// The 8-byte hello answer carried by the reject, if the peer deserves one.
    answer: Option<[u8; HELLO_ACK_LEN]>,
    kind: RefusalKind,
    why: String,
}

/// Checks a connection request's private data as the core's hello: the
/// accepted hello, or why not (nothing about the request is logged here).
fn check_hello(
    private_data: &[u8],
    target: Target,
    secret: &[u8; SECRET_LEN],
) -> Result<HelloAccepted, Refused> {
    let Some(hello) = private_data.get(..HELLO_LEN) else {
        return Err(Refused {
            answer: None,
            kind: RefusalKind::Refused,
            why: format!(
                "{} bytes of private data, not a {HELLO_LEN}-byte hello",
                private_data.len()
            ),
        });
    };
    let mut check = StreamServer::new(target);
    check.on_hello(hello, secret).map_err(|e| match e {
        ServerError::Hello(r) => Refused {
            answer: r.reply(),
            kind: if r == HelloReject::BadSecret {
                RefusalKind::BadSecret
            } else {
                RefusalKind::Refused
            },
            why: r.to_string(),
        },
        e => Refused {
            answer: None,
            kind: RefusalKind::Refused,
            why: e.to_string(),
        },
    })
}

/// The refusal of a request from `from` when only `client` may connect.
fn peer_refusal(client: Option<IpAddr>, from: Option<SocketAddr>) -> Option<Refused> {
    let client = client?;
    if from.is_some_and(|a| a.ip().to_canonical() == client.to_canonical()) {
        return None;
    }
    Some(Refused {
        answer: None,
        kind: RefusalKind::Refused,
        why: format!("only the ssh client's address {client} may connect"),
    })
}

/// A registry refusal as a refused request.
fn registry_refusal(r: Refusal) -> Refused {
    Refused {
        answer: r.hello_status().map(ack),
        kind: if matches!(r, Refusal::TooManyPending(_)) {
            RefusalKind::Busy
        } else {
            RefusalKind::Refused
        },
        why: r.to_string(),
    }
}

/// How the verbs data path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerbsConfig {
    /// Address to listen on (of an RDMA device); port 0 for an ephemeral one.
    pub bind: SocketAddr,
    /// Spin budget of a lane worker before it sleeps.
    pub spin: Duration,
    /// Persist messages a lane may have unanswered (receive buffers posted
    /// per lane); the client must not send more.
    pub send_window: u32,
    /// Connection requests waiting for their worker at once.
    pub max_pending: usize,
    /// Register the pool for persistent RDMA FLUSH where the device can
    /// (the pool is persistent memory).
    pub flush: bool,
    /// Accept connection requests only from this address (the ssh
    /// client's, from `SSH_CONNECTION`); `None`: from any (local mode).
    pub peer: Option<IpAddr>,
}

/// What became of registering the pool for persistent RDMA FLUSH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlushRegistration {
    /// Registered with `IBV_ACCESS_FLUSH_PERSISTENT`: FLUSH can be offered.
    Registered,
    /// Not asked for (the pool is not persistent memory).
    NotAsked,
    /// The device (or the rdma-core this rpmemd runs with or was built
    /// against) cannot execute persistent FLUSH.
    DeviceLacks,
    /// The device refused the right for this memory (the message says
    /// why); the pool is registered without it.
    Refused(String),
}

impl std::fmt::Display for FlushRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushRegistration::Registered => {
                f.write_str("the pool is registered for persistent RDMA FLUSH")
            }
            FlushRegistration::NotAsked => f.write_str(
                "the pool is not persistent memory, so persistent RDMA FLUSH cannot make it durable",
            ),
            FlushRegistration::DeviceLacks => f.write_str(if rpmem_verbs::flush_compiled() {
                "the device cannot execute persistent RDMA FLUSH (rxe needs Linux 6.2 or later and rdma-core 45 or later)"
            } else {
                "this rpmemd was built against rdma-core headers without RDMA FLUSH (rdma-core 45 or later has it)"
            }),
            FlushRegistration::Refused(why) => write!(
                f,
                "the device refused to register the pool for persistent RDMA FLUSH ({why}); \
                 rxe grants it only on memory the kernel lists as persistent memory, such as \
                 Device DAX on an ACPI NVDIMM"
            ),
        }
    }
}

/// A lane's connection as the registry sees it: something to disconnect.
#[derive(Debug, Default)]
pub struct VerbsConn {
    disconnector: Mutex<Option<Disconnector>>,
}

impl Connection for VerbsConn {
    fn shut_down(&self) {
        let d = lock(&self.disconnector).clone();
        if let Some(d) = d {
            d.disconnect();
        }
    }
}

struct Shared {
    target: Target,
    secret: [u8; SECRET_LEN],
    mem: PoolMemory,
    spin: Duration,
    window: u32,
    // Keeps the pool registered while lanes run; dropped by `stop`.
    pd: Arc<Pd>,
    refusals: RefusalLog,
    /// `VerbsConfig::peer`.
    peer: Option<IpAddr>,
}

/// The running verbs data path of one session.
pub struct VerbsServer {
    addr: SocketAddr,
    device: String,
    raddr: u64,
    rkey: u32,
    flush: FlushRegistration,
    registry: Arc<LaneRegistry<VerbsConn>>,
    accept: Option<JoinHandle<()>>,
    pool_mr: Option<Arc<Mr>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VerbsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerbsServer")
            .field("addr", &self.addr)
            .field("device", &self.device)
            .finish()
    }
}

/// Why the verbs data path did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A verb failed (no RDMA device on the address, registration refused).
    #[error(transparent)]
    Verbs(#[from] rpmem_verbs::Error),
    /// The session's `min_offset` leaves nothing of the pool to register.
    #[error("min_offset {min_offset} leaves nothing of a pool of {pool_len} bytes to register")]
    NothingToRegister {
        /// Lowest offset the data path may reach.
        min_offset: u64,
        /// Length of the pool.
        pool_len: usize,
    },
    /// The accepting thread did not start.
    #[error("cannot start the accepting thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl VerbsServer {
    /// Listens on `config.bind`, registers the pool from the target's
    /// `min_offset` to its end and starts accepting.
    pub fn start(
        config: &VerbsConfig,
        target: Target,
        secret: [u8; SECRET_LEN],
        mem: PoolMemory,
    ) -> Result<VerbsServer, StartError> {
        let listener = Listener::bind(config.bind, 64)?;
        let addr = listener.local_addr().unwrap_or(config.bind);
        let device = listener.device_name();
        let pd = listener.pd()?;
        let min_offset = target.params().min_offset;
        let tail = PoolTail::new(&mem, min_offset).ok_or(StartError::NothingToRegister {
            min_offset,
            pool_len: mem.len(),
        })?;
        let (pool_mr, flush) = register_pool(&pd, &tail, config.flush)?;
        let pool_mr = Arc::new(pool_mr);
        // The client addresses the pool from offset 0 (PMDK's `raddr`): the
        // registration starts `start` bytes further.
        let raddr = pool_mr.addr().wrapping_sub(tail.start as u64);
        let registry = Arc::new(LaneRegistry::new(
            target.params().nlanes,
            config.max_pending,
        ));
        let shared = Arc::new(Shared {
            target,
            secret,
            mem,
            spin: config.spin,
            window: config.send_window.max(1),
            pd,
            refusals: RefusalLog::new(),
            peer: config.peer,
        });
        let reg = Arc::clone(&registry);
        let mr_for_lanes = Arc::clone(&pool_mr);
        let for_accept = Arc::clone(&shared);
        let accept = Builder::new()
            .name("rpmemd-rdma-accept".to_owned())
            .spawn(move || accept_loop(&listener, &reg, &for_accept, &mr_for_lanes))?;
        Ok(VerbsServer {
            addr,
            device,
            raddr,
            rkey: pool_mr.rkey(),
            flush,
            registry,
            accept: Some(accept),
            pool_mr: Some(pool_mr),
            shared,
        })
    }

    /// Address and port listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The RDMA device.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The address of the pool's offset 0 for the client's WRITEs and READs
    /// (the registration itself starts at `min_offset`).
    pub fn raddr(&self) -> u64 {
        self.raddr
    }

    /// The pool registration's remote key.
    pub fn rkey(&self) -> u32 {
        self.rkey
    }

    /// Whether the pool is registered for persistent RDMA FLUSH, or why not.
    pub fn flush(&self) -> &FlushRegistration {
        &self.flush
    }

    /// Stops accepting, disconnects every lane, waits for the workers, and
    /// deregisters the pool. Returns how many connections were open.
    pub fn stop(&mut self) -> usize {
        let open = self.registry.stop();
        if let Some(h) = self.accept.take() {
            if h.join().is_err() {
                log::error!("the RDMA accepting thread panicked");
            }
        }
        self.registry.wait_idle();
        self.pool_mr = None;
        // What was suppressed is summed up before the session goes on.
        for limit in self.shared.refusals.all() {
            limit.flush();
        }
        open
    }
}

impl Drop for VerbsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Registers the pool for the lanes' WRITEs and READs, and for persistent
/// FLUSH when `flush` asks and the device can (falling back to a
/// registration without it when the device refuses that right).
fn register_pool(
    pd: &Arc<Pd>,
    mem: &PoolTail,
    flush: bool,
) -> Result<(Mr, FlushRegistration), rpmem_verbs::Error> {
    let base = Access::LOCAL_WRITE | Access::REMOTE_WRITE | Access::REMOTE_READ;
    if !flush {
        return Ok((
            Mr::register(pd, mem.clone(), base)?,
            FlushRegistration::NotAsked,
        ));
    }
    let support = pd.flush_support();
    if !support.persistent {
        return Ok((
            Mr::register(pd, mem.clone(), base)?,
            FlushRegistration::DeviceLacks,
        ));
    }
    let mut access = base | Access::FLUSH_PERSISTENT;
    if support.global {
        access = access | Access::FLUSH_GLOBAL;
    }
    match Mr::register(pd, mem.clone(), access) {
        Ok(mr) => Ok((mr, FlushRegistration::Registered)),
        Err(e) => {
            let why = e.to_string();
            Ok((
                Mr::register(pd, mem.clone(), base)?,
                FlushRegistration::Refused(why),
            ))
        }
    }
}

fn accept_loop(
    listener: &Listener,
    registry: &Arc<LaneRegistry<VerbsConn>>,
    shared: &Arc<Shared>,
    pool_mr: &Arc<Mr>,
) {
    while !registry.is_stopping() {
        // Sum up refusals suppressed in an interval that is over (reads the
        // clock only when there are some).
        for limit in shared.refusals.all() {
            limit.flush_expired();
        }
        match listener.next_request(SLICE) {
            Ok(None) => {}
            Ok(Some(req)) => admit(req, registry, shared, pool_mr),
            Err(e) => {
                log::error!("RDMA data path: {e}; no more lanes are accepted");
                return;
            }
        }
    }
}

/// Rejects a request with its answer; logs it within the rate limit of its
/// kind (a failure to reject only when the refusal itself was logged).
fn reject(req: Request, refused: &Refused, peer: &str, log: &RefusalLog) {
    let logged = log.note(refused, peer);
    let answer = refused.answer.as_ref().map_or(&[][..], |b| &b[..]);
    if let Err(e) = req.reject(answer) {
        if logged {
            log::warn!("rejecting the connection from {peer}: {e}");
        }
    }
}

fn ack(status: HelloStatus) -> [u8; HELLO_ACK_LEN] {
    HelloAckRepr { status }.to_bytes()
}

fn admit(
    req: Request,
    registry: &Arc<LaneRegistry<VerbsConn>>,
    shared: &Arc<Shared>,
    pool_mr: &Arc<Mr>,
) {
    let peer_addr = req.peer_addr();
    let peer = peer_addr.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
    if let Some(refused) = peer_refusal(shared.peer, peer_addr) {
        reject(req, &refused, &peer, &shared.refusals);
        return;
    }
    // The hello, as on TCP; private data is padded by the transport.
    let accepted = match check_hello(req.private_data(), shared.target, &shared.secret) {
        Ok(a) => a,
        Err(refused) => {
            reject(req, &refused, &peer, &shared.refusals);
            return;
        }
    };
    let lane = accepted.lane;
    let conn = Arc::new(VerbsConn::default());
    let claimed = LaneRegistry::admit(registry, Arc::clone(&conn))
        .and_then(|guard| registry.claim(&guard, lane).map(|()| guard));
    let guard = match claimed {
        Ok(g) => g,
        Err(r) => {
            reject(req, &registry_refusal(r), &peer, &shared.refusals);
            return;
        }
    };
    let inline_max = usize::try_from(shared.target.params().inline_max).unwrap_or(usize::MAX);
    let config = EndpointConfig {
        send_slots: shared.window,
        send_slot_len: 64,
        recv_slots: shared.window,
        recv_slot_len: MSG_HEADER_LEN.saturating_add(inline_max),
        read_slots: 0,
        read_slot_len: 0,
        max_send_wr: shared.window.saturating_add(1),
        max_inline: 64,
        source: None,
        remote: None,
    };
    let ep = match req.endpoint(&shared.pd, config) {
        Ok(p) => p.accept(&accepted.ack, ESTABLISH_TIMEOUT),
        Err(e) => Err(e),
    };
    let ep = match ep {
        Ok(ep) => ep,
        Err(e) => {
            log::error!("RDMA lane {lane} from {peer}: {e}");
            return;
        }
    };
    *lock(&conn.disconnector) = Some(ep.disconnector());
    log::info!(
        "lane {lane} connected over RDMA from {peer} ({}, inline {} bytes)",
        ep.device_name(),
        ep.max_inline()
    );
    let shared = Arc::clone(shared);
    let mr = Arc::clone(pool_mr);
    let spawned = Builder::new()
        .name("rpmemd-rdma-lane".to_owned())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let mut ep = ep;
            if let Err(e) = serve(&mut ep, lane, &shared, guard.registry()) {
                log::error!("lane {lane} ({peer}): {e}");
            }
            // Disconnect and free the queue pair before the worker counts
            // as gone; the pool registration goes with the server.
            drop(ep);
            drop(mr);
            drop(guard);
        });
    if let Err(e) = spawned {
        log::error!("cannot start an RDMA lane worker: {e}");
    }
}

/// Why a lane worker stopped serving.
#[derive(Debug, thiserror::Error)]
enum LaneEnd {
    #[error("{0}")]
    Verbs(#[from] rpmem_verbs::Error),
    #[error("refused a persist message: {0}")]
    Refused(String),
    #[error("{op} failed: {status}")]
    Completion { op: &'static str, status: String },
    #[error("flushing the pool failed: errno {0}")]
    Flush(i32),
}

/// Serves one lane until it disconnects or the session stops.
fn serve(
    ep: &mut Endpoint,
    lane: u32,
    shared: &Shared,
    registry: &LaneRegistry<VerbsConn>,
) -> Result<(), LaneEnd> {
    let mut mem = shared.mem.clone();
    let mut wcs = Vec::with_capacity(16);
    let mut pending: std::collections::VecDeque<[u8; 8]> = std::collections::VecDeque::new();
    let mut spin_until = Instant::now() + shared.spin;
    loop {
        wcs.clear();
        let n = ep.poll(&mut wcs)?;
        for wc in &wcs {
            if !wc.is_ok() {
                // Flushed work requests: the queue pair went to the error
                // state, which a disconnect (the client closing its lane, or
                // the session stopping) does; a real error shows first with
                // its own status.
                if wc.status == WC_WR_FLUSH_ERR || ep.is_disconnected() || registry.is_stopping() {
                    return Ok(());
                }
                return Err(LaneEnd::Completion {
                    op: match wc.kind {
                        WcKind::Recv => "RECV",
                        _ => "SEND",
                    },
                    status: wc.status_str(),
                });
            }
            match wc.kind {
                WcKind::Recv => {
                    let resp = {
                        let len = wc.byte_len as usize;
                        let Some(bytes) = ep.recv_data(wc.slot, len) else {
                            return Err(LaneEnd::Refused(format!(
                                "{len} bytes received, more than the receive buffer"
                            )));
                        };
                        let plan = shared
                            .target
                            .handle_persist_msg_on_lane(lane, bytes)
                            .map_err(|e| LaneEnd::Refused(e.to_string()))?;
                        execute(&plan, &mut mem).map_err(|e| LaneEnd::Flush(e.errno))?
                    };
                    ep.post_recv(wc.slot)?;
                    if let Some(r) = resp {
                        pending.push_back(r);
                    }
                }
                WcKind::Send => {}
                other => {
                    return Err(LaneEnd::Refused(format!(
                        "unexpected {other:?} completion on a target queue pair"
                    )))
                }
            }
        }
        while let Some(r) = pending.front() {
            if ep.post_send(0, r, None)?.is_none() {
                break;
            }
            pending.pop_front();
        }
        if n > 0 {
            spin_until = Instant::now() + shared.spin;
            continue;
        }
        if registry.is_stopping() {
            return Ok(());
        }
        if Instant::now() < spin_until {
            std::thread::yield_now();
            continue;
        }
        match ep.wait(SLICE)? {
            // The client is gone: nothing it sent is waiting for an answer
            // it could still receive.
            Wake::Disconnected => return Ok(()),
            Wake::Rearmed | Wake::Completion | Wake::TimedOut => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! What needs no RDMA device: the registered range and the refusal
    //! limits. Connecting, rejecting and the remote access error of a WRITE
    //! to the header run in the rxe rig (`verbs/tests/rxe.rs`,
    //! `tests/rxe/header-guard.sh`).
    use super::*;
    use crate::transport::DeepFlush;
    use rpmem_core::flush::cpu::FlushInstr;
    use rpmem_core::flush::FlushMode;
    use rpmem_core::persist::{Method, StreamClient, TargetParams};
    use std::ptr::NonNull;

    /// One page, page aligned (`PoolMemory` wants a page-aligned base).
    #[repr(C, align(4096))]
    #[derive(Clone, Copy)]
    struct Page([u8; 4096]);

    const SECRET: [u8; SECRET_LEN] = [7; SECRET_LEN];

    fn target(nlanes: u32) -> Target {
        Target::new(TargetParams {
            nlanes,
            pool_size: 64 * 1024,
            min_offset: 4096,
            inline_max: 64,
            flush_mode: FlushMode::Cpu,
            method: Method::Gpspm,
        })
        .unwrap()
    }

    #[test]
    fn the_registration_starts_at_min_offset() {
        let mut backing = vec![Page([0; 4096]); 4];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives `mem`; nothing writes through it.
        let mem =
            unsafe { PoolMemory::new(base, 4 * 4096, FlushInstr::detect(), DeepFlush::default()) };
        let tail = PoolTail::new(&mem, 4096).unwrap();
        assert_eq!(tail.as_ptr(), base.as_ptr().wrapping_add(4096));
        assert_eq!(tail.len(), 3 * 4096);
        // Pools without headers: the whole pool.
        let all = PoolTail::new(&mem, 0).unwrap();
        assert_eq!((all.as_ptr(), all.len()), (base.as_ptr(), 4 * 4096));
        // Nothing left to register: refused, never an empty or inverted range.
        assert!(PoolTail::new(&mem, 4 * 4096).is_none());
        assert!(PoolTail::new(&mem, u64::MAX).is_none());
        drop(backing);
    }

    #[test]
    fn hellos_are_classified_for_their_limits() {
        let t = target(2);
        let good = StreamClient::new(1).hello(&SECRET);
        let accepted = check_hello(&good, t, &SECRET).unwrap();
        assert_eq!(accepted.lane, 1);
        // Private data is padded by the transport: a longer buffer is fine.
        let mut padded = good.to_vec();
        padded.resize(56, 0);
        assert!(check_hello(&padded, t, &SECRET).is_ok());

        let wrong = StreamClient::new(0).hello(&[8; SECRET_LEN]);
        let r = check_hello(&wrong, t, &SECRET).unwrap_err();
        assert_eq!(r.kind, RefusalKind::BadSecret);
        assert_eq!(r.answer, Some(ack(HelloStatus::Denied)));
        assert!(r.why.contains("secret"), "{}", r.why);

        let short = check_hello(&good[..20], t, &SECRET).unwrap_err();
        assert_eq!(short.kind, RefusalKind::Refused);
        assert_eq!(short.answer, None);
        assert!(
            short.why.contains("20 bytes of private data"),
            "{}",
            short.why
        );

        let no_lane = StreamClient::new(2).hello(&SECRET);
        let r = check_hello(&no_lane, t, &SECRET).unwrap_err();
        assert_eq!(r.kind, RefusalKind::Refused);
        assert_eq!(r.answer, Some(ack(HelloStatus::BadLane)));

        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let from = |a: &str| Some(SocketAddr::new(a.parse().unwrap(), 4791));
        assert!(peer_refusal(None, from("198.51.100.1")).is_none());
        assert!(peer_refusal(Some(client), from("192.0.2.7")).is_none());
        assert!(peer_refusal(Some(client), from("::ffff:192.0.2.7")).is_none());
        let other = peer_refusal(Some(client), from("192.0.2.8")).unwrap();
        assert_eq!((other.kind, other.answer), (RefusalKind::Refused, None));
        assert!(peer_refusal(Some(client), None).is_some());

        let busy = registry_refusal(Refusal::TooManyPending(16));
        assert_eq!((busy.kind, busy.answer), (RefusalKind::Busy, None));
        let taken = registry_refusal(Refusal::LaneTaken(0));
        assert_eq!(taken.kind, RefusalKind::Refused);
        assert_eq!(taken.answer, Some(ack(HelloStatus::BadLane)));
    }

    /// 10,000 refusals of each kind within one interval log
    /// `REFUSAL_LOG_BURST` lines per kind, not one each: the flood the
    /// TCP test (`rpmemd/tests/logging.rs`) sends, on the verbs path's
    /// classification and limits.
    #[test]
    fn refusal_floods_are_rate_limited_per_kind() {
        let t = target(1);
        let log = RefusalLog::new();
        let wrong = StreamClient::new(0).hello(&[9; SECRET_LEN]);
        type Flood<'a> = (&'static str, Box<dyn Fn() -> Refused + 'a>);
        let floods: [Flood<'_>; 3] = [
            (
                "wrong secret",
                Box::new(|| check_hello(&wrong, t, &SECRET).unwrap_err()),
            ),
            (
                "bad private data",
                Box::new(|| check_hello(&[0xff; 48], t, &SECRET).unwrap_err()),
            ),
            (
                "too many connects",
                Box::new(|| registry_refusal(Refusal::TooManyPending(16))),
            ),
        ];
        for (name, refusal) in &floods {
            let logged = (0..10_000)
                .filter(|_| log.note(&refusal(), "192.0.2.1:4791"))
                .count();
            assert_eq!(
                logged, REFUSAL_LOG_BURST as usize,
                "{name}: {logged} of 10000 refusals logged"
            );
        }
    }
}
