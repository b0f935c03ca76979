//! One librpmem session on stdin/stdout: the out-of-band server.
//!
//! rpmemd is started by librpmem over ssh, one process per session. This
//! module drives the core's sans-IO [`Server`]: it writes the start-up status
//! word, feeds it what stdin brings, carries out each request with the pool
//! module (create, open, set attributes, close, remove) and the data path
//! ([`TcpServer`]), and writes the answers to stdout. The persistency method
//! comes from [`rpmem_core::policy::select`].
//!
//! A refused CREATE or OPEN is also explained on stderr, one line
//! `rpmemd: <reason>` written before the answer (ssh carries stderr back to
//! the client, which shows it with the status); the reason is logged as well.
//!
//! The stdin loop also watches a self-pipe that SIGTERM, SIGINT and SIGHUP
//! write to ([`signal`]): a signal, a closed stdin, or a protocol error ends
//! the session cleanly (lanes shut down and joined, pool unmapped, locks
//! released), with rpmemd's failure word on stdout as PMDK's rpmemd writes
//! it.

pub mod signal;

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Duration;

use rpmem_core::attr::PoolAttr;
use rpmem_core::negotiate::{self, Offer, SessionParams};
use rpmem_core::oob::{Limits, OobError, ProviderSet, Server, ServerEvent};
use rpmem_core::persist::Target;
use rpmem_core::policy::{self, Decision, Placement, PolicyInput};
use rpmem_core::wire::oob::{
    errno, ext_flags, CommonRepr, ExtRepr, IbcRepr, MsgType, PersistMethod, Provider, Status,
};
use rpmem_core::wire::tcp::SECRET_LEN;

use crate::config::Config;
use crate::exit;
use crate::logging::{self, notice};
use crate::pool::{Pool, PoolError, PoolOptions, PoolsetDir};
use crate::transport::tcp::{self, TcpConfig, TcpServer};
use crate::transport::PoolMemory;

// The limits a request is checked against and the grant come from the core
// (`rpmem_core::negotiate`), so that rpmem and the simulator use the same ones.
pub use rpmem_core::negotiate::{INLINE_BUDGET, MAX_BUFF_SIZE, MAX_NLANES};
/// Environment variable with `SSH_CONNECTION`'s
/// `client_ip client_port server_ip server_port`.
pub const SSH_CONNECTION_ENV: &str = "SSH_CONNECTION";
/// Bytes read from stdin at once.
const READ_CHUNK: usize = 64 * 1024;

/// The limits the out-of-band server enforces: at most [`MAX_NLANES`] lanes,
/// [`MAX_BUFF_SIZE`] inline buffers, and only our providers: TCP, and
/// native verbs when built with the `verbs` feature (PMDK's libfabric
/// providers are answered `RPMEM_ERR_PROVNOSUP`).
pub fn limits() -> Limits {
    Limits {
        providers: ProviderSet {
            libfabric_verbs: false,
            libfabric_sockets: false,
            tcp: true,
            verbs: cfg!(feature = "verbs"),
        },
        ..Limits::DEFAULT
    }
}

/// What rpmemd grants: the core's [`Offer`] with `nthreads` (one worker
/// thread per lane when set) and, over RDMA, one posted receive buffer per
/// message in flight on each lane.
pub fn offer(nthreads: usize, rdma: bool) -> Offer {
    let base = if rdma { Offer::RDMA } else { Offer::DEFAULT };
    Offer {
        nthreads: u32::try_from(nthreads).unwrap_or(u32::MAX),
        ..base
    }
}

/// Why the listening address cannot be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SSH_CONNECTION {value:?} has no usable server address (third field): {reason}")]
pub struct ListenAddrError {
    /// The variable's value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The address the data path listens on: the server side of
/// `SSH_CONNECTION` (its third field, IPv4 or IPv6, with an optional
/// `%zone`), or 127.0.0.1 when the variable is unset (local mode: rpmemd
/// started without ssh, by tests and `rpmem demo`). The port is 0 (the
/// kernel picks one).
pub fn listen_addr(ssh_connection: Option<&str>) -> Result<SocketAddr, ListenAddrError> {
    let Some(value) = ssh_connection else {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    };
    let err = |reason| ListenAddrError {
        value: value.to_owned(),
        reason,
    };
    let field = value
        .split_ascii_whitespace()
        .nth(2)
        .ok_or_else(|| err("fewer than three fields"))?;
    let (ip, zone) = match field.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (field, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| err("not an IP address"))?;
    match (ip, zone) {
        (IpAddr::V4(_), Some(_)) => Err(err("an IPv4 address with a zone")),
        (IpAddr::V4(_), None) | (IpAddr::V6(_), None) => Ok(SocketAddr::new(ip, 0)),
        (IpAddr::V6(v6), Some(zone)) => {
            let scope = zone_index(zone).ok_or_else(|| err("unknown IPv6 zone"))?;
            Ok(SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope)))
        }
    }
}

/// An IPv6 zone (`eth0` or a number) as an interface index.
fn zone_index(zone: &str) -> Option<u32> {
    if let Ok(n) = zone.parse::<u32>() {
        return Some(n);
    }
    let name = std::ffi::CString::new(zone).ok()?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// A fresh session secret from the kernel's random source (`getrandom`).
pub fn fresh_secret() -> io::Result<[u8; SECRET_LEN]> {
    let mut secret = [0u8; SECRET_LEN];
    let mut filled = 0usize;
    while filled < SECRET_LEN {
        let rest = secret.get_mut(filled..).unwrap_or_default();
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled = filled.saturating_add(n.unsigned_abs());
    }
    if secret.iter().all(|&b| b == 0) {
        // 2^-256: the kernel's random source is broken.
        return Err(io::Error::other("getrandom returned 32 zero bytes"));
    }
    Ok(secret)
}

/// Everything a session needs from the configuration and the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `poolset-dir`.
    pub poolset_dir: PathBuf,
    /// `persist-apm`.
    pub persist_apm: bool,
    /// `persist-general`.
    pub persist_general: bool,
    /// `nthreads` (0: no bound but [`MAX_NLANES`]).
    pub nthreads: usize,
    /// Where the data path listens ([`listen_addr`]).
    pub listen: Result<SocketAddr, ListenAddrError>,
    /// Spin budget of the lanes ([`tcp::SPIN_ENV`]).
    pub spin: Duration,
    /// Environment-dependent pool settings (`PMEM_IS_PMEM_FORCE`, ...).
    pub pool_options: PoolOptions,
}

impl Settings {
    /// The settings of this process: `config` plus `SSH_CONNECTION`,
    /// `RPMEMD_SPIN_US` (an invalid value is logged and the default used),
    /// `PMEM_IS_PMEM_FORCE`, `PMEM_NO_CLWB`, `PMEM_NO_CLFLUSHOPT`.
    pub fn from_config(config: &Config) -> Settings {
        let ssh = std::env::var(SSH_CONNECTION_ENV).ok();
        let spin_value = std::env::var(tcp::SPIN_ENV).ok();
        let spin = match tcp::parse_spin(spin_value.as_deref()) {
            Ok(spin) => spin,
            Err(e) => {
                log::warn!("{e}; using {} µs", tcp::DEFAULT_SPIN.as_micros());
                tcp::DEFAULT_SPIN
            }
        };
        Settings {
            poolset_dir: config.poolset_dir.clone(),
            persist_apm: config.persist_apm,
            persist_general: config.persist_general,
            nthreads: config.nthreads,
            listen: listen_addr(ssh.as_deref()),
            spin,
            pool_options: PoolOptions::from_env(),
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Ending {
    /// CLOSE was answered (with this status).
    Closed(Status),
    /// A request was answered with a failure status, which ends the session
    /// (a failed CREATE or OPEN, or a request the server refused).
    Refused {
        /// The request.
        request: MsgType,
        /// The status sent.
        status: Status,
    },
    /// stdin was closed before any request.
    NoRequest,
    /// stdin was closed while a pool was open or a request was incomplete.
    ClientGone(OobError),
    /// A signal asked rpmemd to stop.
    Signal(libc::c_int),
    /// The client broke the protocol without a response being possible.
    Protocol(OobError),
    /// stdin or stdout failed.
    Io(String),
}

impl Ending {
    /// The exit status: 0 when the session ended by the protocol (CLOSE
    /// answered, or a request answered with its failure status, as PMDK's
    /// rpmemd exits 0 then), 1 otherwise.
    pub fn exit_status(&self) -> exit::Status {
        match self {
            Ending::Closed(_) | Ending::Refused { .. } => exit::Status::Success,
            _ => exit::Status::Failure,
        }
    }

    /// The errno of the failure word written to stdout for an ending without
    /// a final answer (`None` when the session ended with one).
    fn failure_errno(&self) -> Option<u32> {
        match self {
            Ending::Closed(_) | Ending::Refused { .. } => None,
            Ending::NoRequest | Ending::ClientGone(_) => Some(errno::ECONNRESET),
            Ending::Signal(_) => Some(errno::ECONNABORTED),
            Ending::Protocol(_) => Some(errno::EPROTO),
            Ending::Io(_) => Some(5),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Closed(s) if s.is_success() => f.write_str("the session was closed"),
            Ending::Closed(s) => write!(f, "the session was closed with status {s}"),
            Ending::Refused { request, status } => {
                write!(
                    f,
                    "{request} was answered with {status}; the session is over"
                )
            }
            Ending::NoRequest => {
                f.write_str("the client closed the out-of-band connection without a request")
            }
            Ending::ClientGone(e) => write!(f, "out-of-band connection lost: {e}"),
            Ending::Signal(s) => write!(f, "terminated by {}", signal::name(*s)),
            Ending::Protocol(e) => write!(f, "out-of-band protocol error: {e}"),
            Ending::Io(e) => f.write_str(e),
        }
    }
}

/// The open pool of a session and its data path. The data path is stopped
/// (every lane worker joined) before the pool is closed; field order makes
/// a drop do the same.
#[derive(Debug)]
/// The running data path of a session.
enum DataPath {
    Tcp(TcpServer),
    #[cfg(feature = "verbs")]
    Verbs(crate::transport::verbs::VerbsServer),
}

impl DataPath {
    fn stop(&mut self) -> usize {
        match self {
            DataPath::Tcp(s) => s.stop(),
            #[cfg(feature = "verbs")]
            DataPath::Verbs(s) => s.stop(),
        }
    }
}

struct Active {
    data: Option<DataPath>,
    pool: Pool,
    created: bool,
    name: String,
}

impl Active {
    /// Stops the data path, then closes the pool (removing its parts when
    /// `remove`).
    fn finish(mut self, remove: bool) -> Result<(), PoolError> {
        if let Some(mut data) = self.data.take() {
            let open = data.stop();
            log::info!("data path stopped ({open} connections were open)");
        }
        let Active { pool, name, .. } = self;
        if remove {
            notice!("removing '{}'", logging::escape(&name));
            pool.close_and_remove()?;
            log::info!("removed '{}'", logging::escape(&name));
            Ok(())
        } else {
            pool.close()?;
            log::info!("pool closed");
            Ok(())
        }
    }
}

/// What a handled request asks the loop to do.
enum Next {
    Continue,
    End(Ending),
}

/// The state of one session.
struct Session<'a> {
    settings: &'a Settings,
    server: Server,
    out: &'a mut dyn Write,
    errors: &'a mut dyn Write,
    active: Option<Active>,
    requests: usize,
}

/// Why a CREATE or OPEN failed: the status answered, and rpmemd's own words
/// (logged at `err`, and written to stderr for the client).
#[derive(Debug)]
struct Failure {
    status: Status,
    reason: String,
}

impl Failure {
    /// Logs `reason` at `err` and keeps it with `status`.
    fn logged(status: Status, reason: impl fmt::Display) -> Failure {
        let reason = reason.to_string();
        log::error!("{reason}");
        Failure { status, reason }
    }

    /// A pool failure, with its status (PMDK's `rpmemd_db_get_status`
    /// mapping, in the pool module).
    fn pool(e: &PoolError) -> Failure {
        Failure::logged(e.rpmem_status(), e)
    }
}

/// The line written to stderr for a refused request: `rpmemd: <reason>`,
/// on one line (line breaks inside the reason become `; `).
pub fn refusal_line(reason: &str) -> String {
    let one_line = reason
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    format!("{}: {one_line}\n", crate::logging::IDENT)
}

/// Serves one session: writes the start-up status word to `output`, then
/// reads requests from `input` until the session ends. `interrupt` (the
/// signal pipe) ends it when readable. Never returns with a lane worker
/// running or the pool mapped. The reason of a refused CREATE or OPEN goes
/// to stderr ([`serve_to`]).
pub fn serve(
    settings: &Settings,
    input: BorrowedFd<'_>,
    output: &mut dyn Write,
    interrupt: Option<&signal::SignalPipe>,
) -> Ending {
    serve_to(settings, input, output, &mut io::stderr(), interrupt)
}

/// [`serve`], writing the reason of a refused CREATE or OPEN (also logged)
/// to `errors` as one line `rpmemd: <reason>` ([`refusal_line`]) before the
/// answer: rpmemd's stderr, which ssh carries back to the client, so that
/// it can show rpmemd's own words and not only the status.
pub fn serve_to(
    settings: &Settings,
    input: BorrowedFd<'_>,
    output: &mut dyn Write,
    errors: &mut dyn Write,
    interrupt: Option<&signal::SignalPipe>,
) -> Ending {
    let mut session = Session {
        settings,
        server: Server::new(limits()),
        out: output,
        errors,
        active: None,
        requests: 0,
    };
    let ending = session.run(input, interrupt);
    if let Some(active) = session.active.take() {
        notice!("closing pool");
        if let Err(e) = active.finish(false) {
            log::error!("closing the pool failed: {e}");
        }
    }
    if let Some(errno) = ending.failure_errno().and_then(NonZeroU32::new) {
        let _ = session.write(&Server::failure_word(errno));
    }
    ending
}

impl Session<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
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

    fn run(&mut self, input: BorrowedFd<'_>, interrupt: Option<&signal::SignalPipe>) -> Ending {
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

    /// Creates (`attr` given) or opens the pool, checks it, chooses the
    /// persistency method and starts the data path. Any failure after the
    /// pool was created removes it again, as PMDK's rpmemd does.
    fn open_pool(
        &mut self,
        common: &CommonRepr,
        name: Option<&str>,
        attr: Option<&PoolAttr>,
    ) -> Result<(Active, IbcRepr, ExtRepr), Failure> {
        let Some(name) = name else {
            return Err(Failure::logged(
                Status::BadName,
                "the pool descriptor is not valid UTF-8",
            ));
        };
        let settings = self.settings;
        let dir = PoolsetDir::open(&settings.poolset_dir).map_err(|e| Failure::pool(&e))?;
        let created = attr.is_some();
        let pool = match attr {
            Some(a) => {
                let a = (!a.is_zero()).then_some(a);
                Pool::create_with(&dir, name, a, &settings.pool_options)
            }
            None => Pool::open_with(&dir, name, &settings.pool_options),
        }
        .map_err(|e| Failure::pool(&e))?;
        let mut active = Active {
            data: None,
            pool,
            created,
            name: name.to_owned(),
        };
        match self.start_data_path(&mut active, common) {
            Ok((ibc, ext)) => Ok((active, ibc, ext)),
            Err(failure) => {
                if let Err(e) = active.finish(created) {
                    log::error!("cleaning up after the failed request: {e}");
                }
                Err(failure)
            }
        }
    }

    fn start_data_path(
        &self,
        active: &mut Active,
        common: &CommonRepr,
    ) -> Result<(IbcRepr, ExtRepr), Failure> {
        let settings = self.settings;
        let pool = &active.pool;
        if let Err(e) = pool.check_requested_size(common.pool_size) {
            return Err(Failure::pool(&e));
        }
        let verbs = common.provider == Provider::VERBS;
        let placement = if verbs {
            Placement::Rdma
        } else {
            Placement::Stream
        };
        let decision = choose_method(settings, pool, placement)?;
        // A verbs lane keeps one receive buffer per message in flight posted
        // (registered memory), a TCP lane one buffer: the budget bounds what
        // all lanes hold together.
        let grant = negotiate::grant(
            common.nlanes,
            common.buff_size,
            &offer(settings.nthreads, verbs),
        );
        let (nlanes, inline) = (grant.nlanes, grant.inline_max);
        if nlanes < common.nlanes {
            log::info!(
                "granting {nlanes} of the {} lanes asked for (nthreads {}, inline buffer {inline} bytes)",
                common.nlanes,
                settings.nthreads
            );
        }
        let params = SessionParams::granted(
            grant,
            common.pool_size,
            !pool.options().no_hdrs,
            decision.method,
        );
        let target = Target::new(params.target(decision.flush)).map_err(|e| {
            Failure::logged(
                Status::BadSize,
                format_args!(
                    "the requested pool size {} is unusable: {e}",
                    common.pool_size
                ),
            )
        })?;
        let secret = fresh_secret().map_err(|e| {
            Failure::logged(
                Status::Fatal,
                format_args!("cannot draw the session secret: {e}"),
            )
        })?;
        let bind = settings
            .listen
            .clone()
            .map_err(|e| Failure::logged(Status::FatalConn, e))?;
        // SAFETY: the pool outlives the data path: `Active::finish` (and
        // dropping an `Active`) stops the data path, which waits for every
        // lane worker (and drops the RDMA registration), before the pool is
        // closed; nothing takes a slice of the pool while the data path runs.
        let mem = unsafe { PoolMemory::from_pool(pool) }
            .ok_or_else(|| Failure::logged(Status::Fatal, "the pool mapping has a null address"))?;
        let (data, port, raddr, rkey, flush_registered) = if verbs {
            Self::start_verbs(settings, bind, target, secret, mem, pool.is_pmem())?
        } else {
            let mut config = TcpConfig::new(bind);
            config.spin = settings.spin;
            let server = TcpServer::start(&config, target, secret, mem).map_err(|e| {
                Failure::logged(
                    Status::FatalConn,
                    format_args!("cannot listen on {bind} for the data path: {e}"),
                )
            })?;
            log::info!("data path listening on {}", server.local_addr());
            let port = server.port();
            (DataPath::Tcp(server), port, 0, 0, false)
        };
        let mut flags = 0;
        if pool.is_pmem() {
            flags |= ext_flags::PMEM;
        }
        if !pool.is_pmem() || !pool.deep_flush_regions().is_empty() {
            flags |= ext_flags::DEEP_FLUSH;
        }
        if verbs
            && policy::offer_rdma_flush(policy_input(settings, pool, placement), flush_registered)
        {
            flags |= ext_flags::RDMA_FLUSH;
            notice!(
                "RDMA FLUSH offered: the client may make its writes durable with persistent FLUSH instead of {}",
                decision.method
            );
        }
        let ibc = IbcRepr {
            port: u32::from(port),
            persist_method: PersistMethod(decision.method.wire_value()),
            rkey: u64::from(rkey),
            raddr,
            nlanes,
        };
        let ext = ExtRepr {
            secret,
            flags,
            max_inline: u32::try_from(inline).unwrap_or(u32::MAX),
        };
        active.data = Some(data);
        Ok((ibc, ext))
    }

    #[cfg(feature = "verbs")]
    fn start_verbs(
        settings: &Settings,
        bind: SocketAddr,
        target: Target,
        secret: [u8; SECRET_LEN],
        mem: PoolMemory,
        pmem: bool,
    ) -> Result<(DataPath, u16, u64, u32, bool), Failure> {
        use crate::transport::verbs::{FlushRegistration, VerbsConfig, VerbsServer};
        let config = VerbsConfig {
            bind,
            spin: settings.spin,
            send_window: rpmem_core::persist::MAX_SEND_WINDOW,
            max_pending: tcp::MAX_PENDING,
            flush: pmem,
        };
        let server = VerbsServer::start(&config, target, secret, mem).map_err(|e| {
            Failure::logged(
                Status::FatalConn,
                format_args!("cannot start the RDMA data path on {bind}: {e}"),
            )
        })?;
        let addr = server.local_addr();
        log::info!(
            "RDMA data path listening on {addr} ({}), pool registered at {:#x} rkey {:#x}",
            server.device(),
            server.raddr(),
            server.rkey()
        );
        let (raddr, rkey) = (server.raddr(), server.rkey());
        let flush = *server.flush() == FlushRegistration::Registered;
        if !flush {
            log::info!("RDMA FLUSH not offered: {}", server.flush());
        }
        Ok((DataPath::Verbs(server), addr.port(), raddr, rkey, flush))
    }

    #[cfg(not(feature = "verbs"))]
    fn start_verbs(
        _settings: &Settings,
        _bind: SocketAddr,
        _target: Target,
        _secret: [u8; SECRET_LEN],
        _mem: PoolMemory,
        _pmem: bool,
    ) -> Result<(DataPath, u16, u64, u32, bool), Failure> {
        // The out-of-band server refuses the provider before this.
        Err(Failure::logged(
            Status::ProvNoSup,
            "this rpmemd was built without the verbs data path (cargo feature `verbs`)",
        ))
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

/// The persistency method for `pool` (logged at `notice` with the reason);
/// `RPMEM_ERR_POOL_CFG` when the configuration enables none.
fn choose_method(
    settings: &Settings,
    pool: &Pool,
    placement: Placement,
) -> Result<Decision, Failure> {
    match policy::select(policy_input(settings, pool, placement)) {
        Ok(d) => {
            notice!("persistency method: {} ({})", d.method, d.reason);
            log::info!(
                "    target flush: {:?} (flush instruction {})",
                d.flush,
                pool.flush_instr().name()
            );
            Ok(d)
        }
        Err(e) => Err(Failure::logged(Status::PoolCfg, e)),
    }
}

/// What the policy decides on for `pool` under `settings`.
fn policy_input(settings: &Settings, pool: &Pool, placement: Placement) -> PolicyInput {
    PolicyInput {
        persist_apm: settings.persist_apm,
        persist_general: settings.persist_general,
        pool_is_pmem: pool.is_pmem(),
        cache_persistent: pool.cache_persistent(),
        placement,
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

/// Runs a session on this process's stdin and stdout with the signal
/// handlers installed, logs how it ended, and gives the exit status.
pub fn run(config: &Config) -> exit::Status {
    let settings = Settings::from_config(config);
    let signals = match signal::SignalPipe::install() {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("cannot install signal handlers: {e}");
            None
        }
    };
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    // SAFETY: fd 0 is stdin, open for the life of the process.
    let input = unsafe { BorrowedFd::borrow_raw(stdin.as_raw_fd()) };
    // When the log itself goes to stderr, the reason of a refusal is already
    // there (logged at `err`); it is not written twice.
    let mut errors: Box<dyn Write> = if crate::logging::logs_to_stderr() {
        Box::new(io::sink())
    } else {
        Box::new(io::stderr())
    };
    let ending = serve_to(
        &settings,
        input,
        &mut stdout,
        &mut *errors,
        signals.as_ref(),
    );
    drop(signals);
    let status = ending.exit_status();
    match (&ending, status) {
        (_, exit::Status::Success) => notice!("{ending}"),
        _ => {
            log::error!("{ending}");
            if !crate::logging::logs_to_stderr() {
                let _ = writeln!(io::stderr(), "{}: {ending}", crate::logging::IDENT);
            }
        }
    }
    status
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use rpmem_core::oob::ClientEvent;
    use rpmem_core::wire::oob::Provider;
    use rstest::rstest;

    #[rstest]
    #[case(None, "127.0.0.1:0")]
    #[case(Some("10.0.0.2 51234 10.0.0.1 22"), "10.0.0.1:0")]
    #[case(Some("::1 51234 ::1 22"), "[::1]:0")]
    #[case(Some("2001:db8::2 4 2001:db8::1 22"), "[2001:db8::1]:0")]
    #[case(Some("fe80::2%1 4 fe80::1%1 22"), "[fe80::1%1]:0")]
    fn listens_on_the_server_side_of_ssh_connection(
        #[case] value: Option<&str>,
        #[case] expected: &str,
    ) {
        let addr = listen_addr(value).unwrap();
        assert_eq!(addr.to_string(), expected);
    }

    #[rstest]
    #[case("", "fewer than three fields")]
    #[case("1.2.3.4 5", "fewer than three fields")]
    #[case("1.2.3.4 5 host.example 22", "not an IP address")]
    #[case("1.2.3.4 5 1.2.3.5%eth0 22", "an IPv4 address with a zone")]
    #[case("::1 5 fe80::1%no-such-interface-x 22", "unknown IPv6 zone")]
    fn bad_ssh_connection_values_are_named(#[case] value: &str, #[case] reason: &str) {
        let e = listen_addr(Some(value)).unwrap_err();
        assert_eq!(e.reason, reason);
        assert!(e.to_string().contains(&format!("{value:?}")));
    }

    #[rstest]
    #[case(4, 0, 8192, false, 4)]
    #[case(0, 0, 8192, false, 1)]
    #[case(2000, 0, 8192, false, MAX_NLANES)]
    #[case(64, 8, 8192, false, 8)]
    #[case(1024, 0, 1 << 20, false, 255)]
    #[case(u32::MAX, 1 << 40, 1 << 20, false, 255)]
    #[case(1024, 0, 1 << 20, true, 15)]
    fn lanes_granted_are_bounded(
        #[case] requested: u32,
        #[case] nthreads: usize,
        #[case] inline: u64,
        #[case] rdma: bool,
        #[case] expected: u32,
    ) {
        let g = negotiate::grant(requested, inline, &offer(nthreads, rdma));
        assert_eq!(g.nlanes, expected);
    }

    #[rstest]
    #[case(0, 8192)]
    #[case(1, 8)]
    #[case(8192, 8192)]
    #[case(u64::MAX, MAX_BUFF_SIZE)]
    fn inline_buffer(#[case] asked: u64, #[case] granted: u64) {
        assert_eq!(
            negotiate::grant(1, asked, &offer(0, false)).inline_max,
            granted
        );
    }

    #[test]
    fn secrets_are_fresh() {
        let a = fresh_secret().unwrap();
        let b = fresh_secret().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; SECRET_LEN]);
    }

    #[test]
    fn only_our_tcp_provider_is_served() {
        let l = limits();
        assert!(l.providers.allows(Provider::TCP));
        assert!(!l.providers.allows(Provider::LIBFABRIC_SOCKETS));
        assert!(!l.providers.allows(Provider::LIBFABRIC_VERBS));
        assert_eq!(l.providers.allows(Provider::VERBS), cfg!(feature = "verbs"));
        assert_eq!(l.max_nlanes, MAX_NLANES);
    }

    /// What the client saw of one session driven through [`serve_to`].
    struct Seen {
        events: Vec<ClientEvent>,
        ending: Ending,
        stderr: String,
    }

    /// Runs a session in a thread on socket pairs; `requests` gives the
    /// bytes of each request once the previous event arrived (`None`: stop
    /// sending and close stdin).
    fn drive(
        poolset_dir: &std::path::Path,
        mut requests: impl FnMut(&mut rpmem_core::oob::Client, usize) -> Option<Vec<u8>>,
    ) -> Seen {
        use std::io::Read;
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixStream;

        let settings = Settings {
            poolset_dir: poolset_dir.to_path_buf(),
            persist_apm: false,
            persist_general: true,
            nthreads: 0,
            listen: listen_addr(None),
            spin: tcp::DEFAULT_SPIN,
            pool_options: crate::pool::PoolOptions::from_env(),
        };
        let (mut stdin, stdin_server) = UnixStream::pair().unwrap();
        let (mut stdout, mut stdout_server) = UnixStream::pair().unwrap();
        stdout
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut errors = Vec::new();
            let ending = serve_to(
                &settings,
                stdin_server.as_fd(),
                &mut stdout_server,
                &mut errors,
                None,
            );
            (ending, String::from_utf8(errors).unwrap())
        });
        let mut client = rpmem_core::oob::Client::new();
        let mut events = Vec::new();
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let (used, event) = client.handle_input(&pending).unwrap();
            pending.drain(..used);
            if let Some(event) = event {
                events.push(event);
                match requests(&mut client, events.len()) {
                    Some(bytes) => stdin.write_all(&bytes).unwrap(),
                    None => break,
                }
                continue;
            }
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
        }
        drop(stdin);
        let (ending, stderr) = server.join().unwrap();
        Seen {
            events,
            ending,
            stderr,
        }
    }

    fn open_request(client: &mut rpmem_core::oob::Client, name: &str) -> Vec<u8> {
        let req = rpmem_core::oob::OpenRequest {
            pool_size: 1 << 20,
            nlanes: 1,
            provider: Provider::TCP,
            buff_size: 8192,
            pool_desc: rpmem_core::wire::oob::PoolDesc::from_text(name).unwrap(),
        };
        client.send_open(&req).unwrap().to_vec()
    }

    fn create_request(
        client: &mut rpmem_core::oob::Client,
        name: &str,
        provider: Provider,
    ) -> Vec<u8> {
        let req = rpmem_core::oob::CreateRequest {
            pool_size: 1 << 20,
            nlanes: 1,
            provider,
            buff_size: 8192,
            attr: PoolAttr::ZERO,
            pool_desc: rpmem_core::wire::oob::PoolDesc::from_text(name).unwrap(),
        };
        client.send_create(&req).unwrap().to_vec()
    }

    fn assert_refused(seen: &Seen, request: MsgType, status: Status, words: &[&str]) {
        assert!(
            matches!(
                seen.events.last(),
                Some(ClientEvent::Failed { status: s, request: r }) if *s == status && *r == request
            ),
            "{:?}",
            seen.events
        );
        assert!(
            matches!(seen.ending, Ending::Refused { request: r, status: s } if r == request && s == status),
            "{}",
            seen.ending
        );
        // One line, `rpmemd: <reason>`, naming the cause.
        assert!(seen.stderr.starts_with("rpmemd: "), "{:?}", seen.stderr);
        assert!(seen.stderr.ends_with('\n'), "{:?}", seen.stderr);
        assert_eq!(seen.stderr.matches('\n').count(), 1, "{:?}", seen.stderr);
        for w in words {
            assert!(
                seen.stderr.contains(w),
                "{w:?} missing in {:?}",
                seen.stderr
            );
        }
    }

    #[test]
    fn a_refused_open_tells_the_reason_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let seen = drive(dir.path(), |c, n| {
            (n == 1).then(|| open_request(c, "missing.set"))
        });
        assert_refused(&seen, MsgType::Open, Status::NoExist, &["missing.set"]);
    }

    #[test]
    fn a_refused_create_tells_the_reason_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        // Too small for a pool: the pool module refuses it.
        std::fs::write(
            dir.path().join("tiny.set"),
            format!(
                "PMEMPOOLSET\nOPTION NOHDRS\n4096 {}\n",
                dir.path().join("tiny.part").display()
            ),
        )
        .unwrap();
        let seen = drive(dir.path(), |c, n| {
            (n == 1).then(|| create_request(c, "tiny.set", Provider::TCP))
        });
        let Some(ClientEvent::Failed { status, .. }) = seen.events.last() else {
            panic!("{:?}", seen.events);
        };
        assert_refused(&seen, MsgType::Create, *status, &["tiny.set"]);
    }

    #[test]
    fn a_create_the_server_machine_rejects_tells_the_reason_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let seen = drive(dir.path(), |c, n| {
            (n == 1).then(|| create_request(c, "p.set", Provider::LIBFABRIC_SOCKETS))
        });
        assert_refused(&seen, MsgType::Create, Status::ProvNoSup, &["provider"]);
    }

    #[test]
    fn a_served_session_writes_nothing_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ok.set"),
            format!(
                "PMEMPOOLSET\nOPTION NOHDRS\n{} {}\n",
                8 << 20,
                dir.path().join("ok.part").display()
            ),
        )
        .unwrap();
        let seen = drive(dir.path(), |c, n| match n {
            1 => Some(create_request(c, "ok.set", Provider::TCP)),
            2 => Some(c.send_close(0).unwrap().to_vec()),
            _ => None,
        });
        assert!(
            matches!(
                seen.events.as_slice(),
                [
                    ClientEvent::Ready,
                    ClientEvent::Created(_),
                    ClientEvent::Closed
                ]
            ),
            "{:?}",
            seen.events
        );
        assert!(
            matches!(seen.ending, Ending::Closed(s) if s.is_success()),
            "{}",
            seen.ending
        );
        assert_eq!(seen.stderr, "");
    }

    #[rstest]
    #[case("no such pool set", "rpmemd: no such pool set\n")]
    #[case("line one\n  line two\n", "rpmemd: line one; line two\n")]
    #[case("", "rpmemd: \n")]
    fn refusal_lines_are_one_line(#[case] reason: &str, #[case] line: &str) {
        assert_eq!(refusal_line(reason), line);
    }

    #[test]
    fn endings_map_to_exit_statuses_and_failure_words() {
        let closed = Ending::Closed(Status::Success);
        assert_eq!(closed.exit_status(), exit::Status::Success);
        assert_eq!(closed.failure_errno(), None);
        let refused = Ending::Refused {
            request: MsgType::Create,
            status: Status::ProvNoSup,
        };
        assert_eq!(refused.exit_status(), exit::Status::Success);
        assert_eq!(refused.failure_errno(), None);
        let signal = Ending::Signal(libc::SIGTERM);
        assert_eq!(signal.exit_status(), exit::Status::Failure);
        assert_eq!(signal.failure_errno(), Some(errno::ECONNABORTED));
        assert_eq!(signal.to_string(), "terminated by SIGTERM");
        assert_eq!(Ending::NoRequest.exit_status(), exit::Status::Failure);
    }
}
