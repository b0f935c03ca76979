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

mod data_path;
mod listen;
mod oob;
pub mod signal;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Duration;

use rpmem_core::negotiate::Offer;
use rpmem_core::oob::{Limits, OobError, ProviderSet, Server};
use rpmem_core::wire::oob::{errno, MsgType, Status};

use crate::config::Config;
use crate::exit;
use crate::logging::notice;
use crate::pool::{PoolError, PoolOptions};
use crate::transport::tcp;

use data_path::Active;

pub use listen::{client_addr, fresh_secret, listen_addr, ListenAddrError, SSH_CONNECTION_ENV};
// The limits a request is checked against and the grant come from the core
// (`rpmem_core::negotiate`), so that rpmem and the simulator use the same ones.
pub use rpmem_core::negotiate::{INLINE_BUDGET, MAX_BUFF_SIZE, MAX_NLANES};

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
    /// The only address data connections are accepted from: the ssh
    /// client's ([`client_addr`]); `None`: any (local mode).
    pub peer: Option<std::net::IpAddr>,
    /// Spin budget of the lanes ([`tcp::SPIN_ENV`]).
    pub spin: Duration,
    /// `tcp-plaintext`: TCP lanes in the clear for clients that chose it.
    pub tcp_plaintext: bool,
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
            peer: client_addr(ssh.as_deref()),
            spin,
            tcp_plaintext: config.tcp_plaintext,
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
