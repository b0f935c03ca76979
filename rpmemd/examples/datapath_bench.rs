//! Loopback benchmark of rpmemd's TCP data path, next to raw TCP baselines
//! measured in the same run.
//!
//! ```text
//! cargo run --release -p rpmemd --example datapath_bench -- [options]
//! ```
//!
//! What runs, all in this process (threads are scheduled like the separate
//! processes of a real deployment):
//!
//! * the target: a pool set (`OPTION NOHDRS`, one part in a scratch
//!   directory) created by rpmemd's pool module, the persistency method
//!   chosen by the core's policy (pmem forced by default, as with
//!   `PMEM_IS_PMEM_FORCE=1`; `--msync` for a page-cache pool), and rpmemd's
//!   [`TcpServer`] with its lane workers;
//! * the initiator: one thread per lane driving the core's lane machine
//!   `StreamInitiator` the way the `rpmem` library does (non-blocking
//!   `sendmsg`/`recv`, spin for the spin budget yielding between polls, then
//!   `poll`); `--pace-gbps` paces the region bytes it sends (WRITE bodies and
//!   inline data) like a network link would;
//! * `busy-pingpong`: a TCP ping-pong where both sides busy-poll a
//!   non-blocking socket (`size` bytes out, 8 bytes back);
//! * `busy-stream` / `raw-stream`: a one-way TCP stream of `--stream-mib`
//!   MiB, one 8-byte acknowledgement at the end (throughput only), both sides
//!   busy-polling, or waiting as rpmemd's workers do;
//! * the interleaved cases (`--variants`): calls alternate in blocks between
//!   `raw-pingpong` (an echo server waiting as rpmemd's workers do) and
//!   rpmemd with chosen settings (`rpmemd:yield=0`, `rpmemd:spin=0`,
//!   `rpmemd:nt=0`), so that all of them see the same machine load. With one
//!   lane, `srv_cpu_us` / `srv_wait_us` are the serving threads' CPU time
//!   and run-queue wait per call (`/proc/self/task/*/schedstat`);
//! * `--flushcost`: the CPU cost of making 1 MiB durable: writing back dirty
//!   lines, writing back the same lines again once clean, a full flush after
//!   a chunked write-back, storing and writing back 64 KiB chunks in turn;
//!   and for a WRITE body, copying it into the cache and writing it back
//!   with `clwb` against streaming it through a 64 KiB buffer with
//!   non-temporal stores.
//!
//! Cases: 64 B and 4 KiB persists (inline, flags 0) and 1 MiB relaxed
//! persists (WRITE + persist message), or with `--strict` 1 MiB persists
//! with flags 0 too (inline persist messages of 64 KiB), 1 and 2 lanes
//! (every lane in its own thread at once). Variants `rpmemd:ntinline=0`
//! (inline data copied through the cache and flushed line by line) and
//! `rpmemd:hold=0` (every answer sent on its own) take back this
//! project's inline-throughput changes one at a time. Each line gives median, p99 and mean of one call and the
//! throughput.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use rpmem_core::flush::cpu::FlushInstr;
use rpmem_core::flush::CACHE_LINE;
use rpmem_core::persist::{
    Chunk, LaneParams, Placement, ReadSink, StreamInitiator, Target, TargetParams, PERSIST_RELAXED,
};
use rpmem_core::policy::{self, PolicyInput};
use rpmem_core::wire::tcp::SECRET_LEN;
use rpmemd::pool::{Pool, PoolOptions, PoolsetDir};
use rpmemd::transport::tcp::{TcpConfig, TcpServer};
use rpmemd::transport::PoolMemory;

/// Bytes of the pool (each lane works in its own 16 MiB slice).
const LANE_SLICE: u64 = 16 << 20;
/// Largest persist the harness makes.
const MAX_SIZE: u64 = 4 << 20;
const MIB: f64 = (1u64 << 20) as f64;
/// Inline persist buffer of both sides: the `rpmem` library's default
/// (`DEFAULT_INLINE_SIZE`, 64 KiB), with its send window of 16 messages.
const INLINE_MAX: u64 = 64 * 1024;

#[derive(Parser, Debug, Clone)]
#[command(about = "Loopback benchmark of rpmemd's TCP data path")]
struct Args {
    /// Calls per case and lane (1 MiB cases use a quarter, at least 50).
    #[arg(long, default_value_t = 4000)]
    iters: usize,
    /// Persist sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,4096,1048576")]
    sizes: Vec<u64>,
    /// Lane counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    lanes: Vec<u32>,
    /// What the interleaved cases talk to, space separated: `raw` (a TCP
    /// echo server with rpmemd's spin-then-poll policy) or `rpmemd` with
    /// optional settings, e.g. `rpmemd:spin=0`, `rpmemd:yield=0`,
    /// `rpmemd:nt=0` (WRITE bodies received straight into the pool, no
    /// non-temporal stores). Calls alternate
    /// between the variants in blocks, so that every variant sees the same
    /// machine load.
    #[arg(long, default_value = "raw rpmemd")]
    variants: String,
    /// Calls in a row to one variant before switching to the next.
    #[arg(long, default_value_t = 16)]
    block: usize,
    /// The client's spin budget in µs (`RPMEM_SPIN_US`).
    #[arg(long, default_value_t = 50)]
    client_spin_us: u64,
    /// The client spins without yielding (the library yields).
    #[arg(long)]
    client_no_yield: bool,
    /// Pace the region bytes the client sends (WRITE bodies, inline data)
    /// to this many Gbit/s (0: as fast as loopback goes), to stand in for a real network link: on loopback the
    /// whole body is queued before rpmemd's worker reads it, so the worker
    /// never waits for data mid-body.
    #[arg(long, default_value_t = 0.0)]
    pace_gbps: f64,
    /// Use a page-cache pool (msync) instead of forcing pmem.
    #[arg(long)]
    msync: bool,
    /// MiB sent by the raw stream baseline.
    #[arg(long, default_value_t = 256)]
    stream_mib: u64,
    /// Scratch directory for the pool (a fresh temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the busy-poll ping-pong and stream baselines.
    #[arg(long)]
    no_busy: bool,
    /// Also measure the cost of cache line write-back (dirty, clean, chunked).
    #[arg(long)]
    flushcost: bool,
    /// Only measure the cost of cache line write-back.
    #[arg(long)]
    flushcost_only: bool,
    /// Label printed in front of every result line.
    #[arg(long, default_value = "")]
    label: String,
    /// Persist every size without RELAXED (large persists then travel as
    /// inline persist messages, as `rpmem_persist` with flags 0 does).
    #[arg(long)]
    strict: bool,
    /// Every call of a lane persists the same range (as `rpmem bench`
    /// does), instead of walking through the lane's slice of the pool.
    #[arg(long)]
    hot: bool,
}

fn main() {
    let args = Args::parse();
    if args.flushcost || args.flushcost_only {
        flush_cost(&args);
        if args.flushcost_only {
            return;
        }
    }
    let variants: Vec<Variant> = args
        .variants
        .split_whitespace()
        .map(|v| Variant::parse(v).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let scratch = match &args.dir {
        Some(d) => Scratch::At(d.clone()),
        None => Scratch::Temp(tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))),
    };
    println!(
        "{:<10} {:<22} {:>8} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "label",
        "case",
        "size",
        "lanes",
        "median_us",
        "p99_us",
        "mean_us",
        "MiB/s",
        "srv_cpu_us",
        "srv_wait_us"
    );
    for &lanes in &args.lanes {
        if !args.no_busy {
            for &size in &args.sizes {
                let r = raw_pingpong(size, lanes, iters_for(&args, size));
                r.print(&args.label, "busy-pingpong", size, lanes);
            }
            let r = raw_stream(args.stream_mib, lanes, Waiter::BUSY);
            r.print(&args.label, "busy-stream", args.stream_mib << 20, lanes);
            let r = raw_stream(args.stream_mib, lanes, Knobs::default().waiter());
            r.print(&args.label, "raw-stream", args.stream_mib << 20, lanes);
        }
        if variants.is_empty() {
            continue;
        }
        let mut servers: Vec<Server> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| Server::start(v, scratch.path(), i, lanes, &args))
            .collect();
        // endpoints[lane][variant]
        let mut endpoints: Vec<Vec<Endpoint>> = (0..lanes)
            .map(|lane| servers.iter().map(|s| s.connect(lane, &args)).collect())
            .collect();
        for &size in &args.sizes {
            let results = run(
                &mut endpoints,
                variants.len(),
                size,
                iters_for(&args, size),
                args.block,
                (args.strict, args.hot),
            );
            for (v, r) in variants.iter().zip(results) {
                r.print(&args.label, &v.name, size, lanes);
            }
        }
        // Every persisted byte must be in the pool: each lane's slice of
        // each rpmemd pool equals that lane's local memory.
        for (v, s) in servers.drain(..).enumerate() {
            let locals: Vec<&[u8]> = endpoints
                .iter()
                .filter_map(|eps| match eps.get(v) {
                    Some(Endpoint::Rpmemd(c)) => Some(c.local.as_slice()),
                    _ => None,
                })
                .collect();
            s.stop_and_check(&locals, &variants[v].name);
        }
        drop(endpoints);
    }
}

fn iters_for(args: &Args, size: u64) -> usize {
    if size >= 1 << 20 {
        (args.iters / 4).max(50)
    } else {
        args.iters
    }
}

enum Scratch {
    At(PathBuf),
    Temp(tempfile::TempDir),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::At(p) => p,
            Scratch::Temp(t) => t.path(),
        }
    }
}

/// Latencies of one case and the wall time of the whole run.
struct Results {
    samples: Vec<Duration>,
    bytes: u64,
    wall: Duration,
    /// CPU time and run-queue wait of the serving threads (rpmemd's lane
    /// workers, the echo server), when known.
    server: Option<ThreadTime>,
}

/// Time a set of threads spent on a CPU and waiting for one
/// (`/proc/self/task/*/schedstat`).
#[derive(Clone, Copy, Debug, Default)]
struct ThreadTime {
    run_ns: u64,
    wait_ns: u64,
}

impl ThreadTime {
    /// The serving threads of this process: named `rpmemd-lane` or
    /// `raw-echo`.
    fn servers() -> ThreadTime {
        let mut t = ThreadTime::default();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return t;
        };
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if !matches!(comm.trim(), "rpmemd-lane" | "raw-echo") {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
            let mut f = stat
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0));
            t.run_ns += f.next().unwrap_or(0);
            t.wait_ns += f.next().unwrap_or(0);
        }
        t
    }

    fn since(self, before: ThreadTime) -> ThreadTime {
        ThreadTime {
            run_ns: self.run_ns.saturating_sub(before.run_ns),
            wait_ns: self.wait_ns.saturating_sub(before.wait_ns),
        }
    }

    fn add(&mut self, other: ThreadTime) {
        self.run_ns += other.run_ns;
        self.wait_ns += other.wait_ns;
    }
}

impl Results {
    fn print(mut self, label: &str, case: &str, size: u64, lanes: u32) {
        self.samples.sort_unstable();
        let n = self.samples.len().max(1);
        let at = |q: f64| {
            let i = ((n as f64 - 1.0) * q).round() as usize;
            self.samples.get(i).copied().unwrap_or_default()
        };
        let mean = self.samples.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(u32::MAX);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mibs = self.bytes as f64 / MIB / self.wall.as_secs_f64().max(1e-9);
        let (median, p99) = if self.samples.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.1}", us(at(0.5))),
                format!("{:.1}", us(at(0.99))),
            )
        };
        let (cpu, wait) = match self.server {
            Some(t) => {
                let per = |ns: u64| format!("{:.1}", ns as f64 / 1e3 / n as f64);
                (per(t.run_ns), per(t.wait_ns))
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<10} {:<22} {:>8} {:>5} {:>10} {:>10} {:>10.1} {:>10.0} {:>10} {:>10}",
            label,
            case,
            size,
            lanes,
            median,
            p99,
            us(mean),
            mibs,
            cpu,
            wait
        );
    }
}

// ----- socket helpers -------------------------------------------------------

fn errno_kind() -> io::Error {
    io::Error::last_os_error()
}

/// Non-blocking `recv`; `Ok(0)` when nothing is there yet.
fn recv_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n > 0 {
        return Ok(n.unsigned_abs());
    }
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"));
    }
    let e = errno_kind();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

/// Non-blocking gather send; `Ok(0)` when the socket buffer is full.
fn sendmsg_some(fd: RawFd, parts: &[(*const u8, usize)]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 8];
    let mut count = 0;
    for (slot, &(p, l)) in iov.iter_mut().zip(parts.iter().filter(|p| p.1 > 0)) {
        slot.iov_base = p.cast_mut().cast();
        slot.iov_len = l;
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: a zeroed msghdr is valid; it points at `iov`, which outlives
    // the call, whose buffers the caller keeps readable.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count as _;
    // SAFETY: `msg` describes `count` readable buffers.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n >= 0 {
        return Ok(n.unsigned_abs());
    }
    let e = errno_kind();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

fn poll_one(fd: RawFd, events: libc::c_short, ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// How a side waits when nothing moved: spin (yielding or not) for a
/// budget, then block in `poll`.
#[derive(Clone, Copy)]
struct Waiter {
    spin: Duration,
    yield_cpu: bool,
}

impl Waiter {
    const BUSY: Waiter = Waiter {
        spin: Duration::MAX,
        yield_cpu: false,
    };

    fn idle(&self, fd: RawFd, events: libc::c_short, since: &mut Option<Instant>) {
        let now = Instant::now();
        let start = *since.get_or_insert(now);
        if now.saturating_duration_since(start) < self.spin {
            if self.yield_cpu {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            return;
        }
        poll_one(fd, events, 100);
    }
}

fn send_all(fd: RawFd, buf: &[u8], w: Waiter) -> io::Result<()> {
    let mut done = 0;
    let mut since = None;
    while done < buf.len() {
        let rest = &buf[done..];
        let n = sendmsg_some(fd, &[(rest.as_ptr(), rest.len())])?;
        if n == 0 {
            w.idle(fd, libc::POLLOUT, &mut since);
        } else {
            since = None;
            done += n;
        }
    }
    Ok(())
}

fn recv_all(fd: RawFd, buf: &mut [u8], w: Waiter) -> io::Result<()> {
    let mut done = 0;
    let mut since = None;
    while done < buf.len() {
        let n = recv_some(fd, &mut buf[done..])?;
        if n == 0 {
            w.idle(fd, libc::POLLIN, &mut since);
        } else {
            since = None;
            done += n;
        }
    }
    Ok(())
}

/// Sends every part in order (gather writes), waiting with `w`.
fn send_parts(fd: RawFd, parts: &mut [(*const u8, usize)], w: Waiter) -> io::Result<()> {
    let mut since = None;
    while parts.iter().any(|p| p.1 > 0) {
        let n = sendmsg_some(fd, parts)?;
        if n == 0 {
            w.idle(fd, libc::POLLOUT, &mut since);
            continue;
        }
        since = None;
        let mut sent = n;
        for p in parts.iter_mut() {
            let take = sent.min(p.1);
            p.0 = p.0.wrapping_add(take);
            p.1 -= take;
            sent -= take;
        }
    }
    Ok(())
}

fn loopback_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let c = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    let (s, _) = l.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    for t in [&c, &s] {
        t.set_nodelay(true)
            .unwrap_or_else(|e| panic!("nodelay: {e}"));
    }
    (c, s)
}

// ----- raw TCP baselines ----------------------------------------------------

/// `lanes` connections at once; on each, `iters` round trips of `size`
/// bytes out and 8 bytes back, both sides busy-polling.
fn raw_pingpong(size: u64, lanes: u32, iters: usize) -> Results {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let pairs: Vec<_> = (0..lanes).map(|_| loopback_pair()).collect();
    let start = Arc::new(Barrier::new(lanes as usize + 1));
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (c, s) in pairs {
        servers.push(thread::spawn(move || {
            let mut buf = vec![0u8; size];
            let ack = [1u8; 8];
            for _ in 0..iters {
                recv_all(s.as_raw_fd(), &mut buf, Waiter::BUSY).unwrap_or_else(|e| panic!("{e}"));
                send_all(s.as_raw_fd(), &ack, Waiter::BUSY).unwrap_or_else(|e| panic!("{e}"));
            }
        }));
        let start = Arc::clone(&start);
        clients.push(thread::spawn(move || {
            let data = vec![7u8; size];
            let mut ack = [0u8; 8];
            let mut samples = Vec::with_capacity(iters);
            start.wait();
            for _ in 0..iters {
                let t = Instant::now();
                send_all(c.as_raw_fd(), &data, Waiter::BUSY).unwrap_or_else(|e| panic!("{e}"));
                recv_all(c.as_raw_fd(), &mut ack, Waiter::BUSY).unwrap_or_else(|e| panic!("{e}"));
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    start.wait();
    let t = Instant::now();
    let mut samples = Vec::new();
    for c in clients {
        samples.extend(c.join().unwrap_or_else(|_| panic!("client panicked")));
    }
    let wall = t.elapsed();
    for s in servers {
        s.join().unwrap_or_else(|_| panic!("server panicked"));
    }
    Results {
        samples,
        bytes: size as u64 * iters as u64 * u64::from(lanes),
        wall,
        server: None,
    }
}

/// `lanes` connections at once, each streaming `mib` MiB one way, then one
/// 8-byte acknowledgement; both sides wait with `w`.
fn raw_stream(mib: u64, lanes: u32, w: Waiter) -> Results {
    let total = usize::try_from(mib << 20).unwrap_or(usize::MAX);
    let pairs: Vec<_> = (0..lanes).map(|_| loopback_pair()).collect();
    let start = Arc::new(Barrier::new(lanes as usize + 1));
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (c, s) in pairs {
        servers.push(thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut left = total;
            while left > 0 {
                let n = left.min(buf.len());
                recv_all(s.as_raw_fd(), &mut buf[..n], w).unwrap_or_else(|e| panic!("{e}"));
                left -= n;
            }
            send_all(s.as_raw_fd(), &[1u8; 8], w).unwrap_or_else(|e| panic!("{e}"));
        }));
        let start = Arc::clone(&start);
        clients.push(thread::spawn(move || {
            let data = vec![7u8; 1 << 20];
            let mut left = total;
            start.wait();
            while left > 0 {
                let n = left.min(data.len());
                send_all(c.as_raw_fd(), &data[..n], w).unwrap_or_else(|e| panic!("{e}"));
                left -= n;
            }
            let mut ack = [0u8; 8];
            recv_all(c.as_raw_fd(), &mut ack, w).unwrap_or_else(|e| panic!("{e}"));
        }));
    }
    start.wait();
    let t = Instant::now();
    for c in clients {
        c.join().unwrap_or_else(|_| panic!("client panicked"));
    }
    let wall = t.elapsed();
    for s in servers {
        s.join().unwrap_or_else(|_| panic!("server panicked"));
    }
    Results {
        samples: Vec::new(),
        bytes: (total as u64) * u64::from(lanes),
        wall,
        server: None,
    }
}

// ----- interleaved variants -----------------------------------------------

/// rpmemd's data path settings under test.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    spin: Duration,
    spin_yield: bool,
    stream_stores: bool,
    stream_inline: bool,
    hold_answers: bool,
}

impl Knobs {
    /// How rpmemd's workers wait with these settings.
    fn waiter(&self) -> Waiter {
        Waiter {
            spin: self.spin,
            yield_cpu: self.spin_yield,
        }
    }
}

impl Default for Knobs {
    fn default() -> Self {
        let c = TcpConfig::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        Knobs {
            spin: c.spin,
            spin_yield: c.spin_yield,
            stream_stores: c.stream_stores,
            stream_inline: c.stream_inline,
            hold_answers: c.hold_answers,
        }
    }
}

/// One thing the interleaved cases talk to.
#[derive(Clone, Debug)]
struct Variant {
    name: String,
    /// `None`: the raw echo server.
    rpmemd: Option<Knobs>,
}

impl Variant {
    fn parse(text: &str) -> Result<Variant, String> {
        let mut parts = text.split(':');
        let kind = parts.next().unwrap_or_default();
        let mut knobs = Knobs::default();
        match kind {
            "raw" => {
                return Ok(Variant {
                    name: "raw-pingpong".to_owned(),
                    rpmemd: None,
                })
            }
            "rpmemd" => {}
            other => return Err(format!("unknown variant {other:?} (raw or rpmemd)")),
        }
        for setting in parts {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("{setting:?} is not key=value"))?;
            let n: u64 = value
                .parse()
                .map_err(|_| format!("{setting:?}: {value:?} is not a number"))?;
            match key {
                "spin" => knobs.spin = Duration::from_micros(n),
                "yield" => knobs.spin_yield = n != 0,
                "nt" => knobs.stream_stores = n != 0,
                "ntinline" => knobs.stream_inline = n != 0,
                "hold" => knobs.hold_answers = n != 0,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (spin, yield, nt, ntinline, hold)"
                    ))
                }
            }
        }
        Ok(Variant {
            name: text.replace("rpmemd", "rpmemd-persist"),
            rpmemd: Some(knobs),
        })
    }
}

/// A running variant.
enum Server {
    Raw { spin: Duration },
    Rpmemd(Box<Bench>),
}

impl Server {
    fn start(v: &Variant, dir: &Path, index: usize, nlanes: u32, args: &Args) -> Server {
        match &v.rpmemd {
            None => Server::Raw {
                spin: Knobs::default().spin,
            },
            Some(knobs) => Server::Rpmemd(Box::new(Bench::start(dir, index, nlanes, knobs, args))),
        }
    }

    fn connect(&self, lane: u32, args: &Args) -> Endpoint {
        let waiter = Waiter {
            spin: Duration::from_micros(args.client_spin_us),
            yield_cpu: !args.client_no_yield,
        };
        match self {
            Server::Raw { spin } => Endpoint::Raw(RawEcho::start(
                Waiter {
                    spin: *spin,
                    yield_cpu: true,
                },
                waiter,
            )),
            Server::Rpmemd(b) => Endpoint::Rpmemd(Box::new(ClientLane::connect(
                b.server.port(),
                lane,
                b.target.params().nlanes,
                &b.secret,
                b.target.params().pool_size,
                waiter,
                args.pace_gbps,
            ))),
        }
    }

    /// Stops the variant; for rpmemd, checks that lane `i`'s slice of the
    /// pool equals `locals[i]`'s (panics otherwise).
    fn stop_and_check(self, locals: &[&[u8]], name: &str) {
        if let Server::Rpmemd(b) = self {
            b.stop_and_check(locals, name);
        }
    }
}

/// One lane's connection to one variant.
enum Endpoint {
    Raw(RawEcho),
    Rpmemd(Box<ClientLane>),
}

impl Endpoint {
    /// One call: a persist of `[off, off + size)`, or a raw round trip of
    /// `size` bytes.
    fn call(&mut self, off: u64, size: u64, k: u64, strict: bool) -> Duration {
        match self {
            Endpoint::Raw(r) => {
                let t = Instant::now();
                r.round_trip(size);
                t.elapsed()
            }
            Endpoint::Rpmemd(c) => {
                let flags = if size > 8192 && !strict {
                    PERSIST_RELAXED
                } else {
                    0
                };
                c.local_touch(off, size, k);
                let t = Instant::now();
                c.persist(off, size, flags);
                t.elapsed()
            }
        }
    }
}

/// A TCP echo server thread: reads an 8-byte length and that many bytes,
/// answers 8 bytes. It waits like rpmemd's workers (spin, yield, poll).
struct RawEcho {
    sock: TcpStream,
    waiter: Waiter,
    data: Vec<u8>,
    server: Option<thread::JoinHandle<()>>,
}

impl RawEcho {
    fn start(server_wait: Waiter, client_wait: Waiter) -> RawEcho {
        let (c, s) = loopback_pair();
        let server = thread::Builder::new()
            .name("raw-echo".to_owned())
            .spawn(move || {
                let fd = s.as_raw_fd();
                let mut buf = vec![0u8; MAX_SIZE as usize];
                loop {
                    let mut len = [0u8; 8];
                    if recv_all(fd, &mut len, server_wait).is_err() {
                        return;
                    }
                    let n = (u64::from_le_bytes(len) as usize).min(buf.len());
                    if recv_all(fd, &mut buf[..n], server_wait).is_err() {
                        return;
                    }
                    if send_all(fd, &[1u8; 8], server_wait).is_err() {
                        return;
                    }
                }
            });
        let server = server.unwrap_or_else(|e| panic!("spawn: {e}"));
        RawEcho {
            sock: c,
            waiter: client_wait,
            data: vec![7u8; MAX_SIZE as usize],
            server: Some(server),
        }
    }

    fn round_trip(&mut self, size: u64) {
        let fd = self.sock.as_raw_fd();
        let n = (size as usize).min(self.data.len());
        let len = (n as u64).to_le_bytes();
        let data = &self.data[..n];
        let mut parts = [(len.as_ptr(), len.len()), (data.as_ptr(), n)];
        send_parts(fd, &mut parts, self.waiter).unwrap_or_else(|e| panic!("{e}"));
        let mut ack = [0u8; 8];
        recv_all(fd, &mut ack, self.waiter).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for RawEcho {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        if let Some(s) = self.server.take() {
            let _ = s.join();
        }
    }
}

/// Every lane in its own thread at once; each thread alternates between
/// the variants in blocks of `block` calls, `iters` calls per variant.
fn run(
    endpoints: &mut Vec<Vec<Endpoint>>,
    nvariants: usize,
    size: u64,
    iters: usize,
    block: usize,
    (strict, hot): (bool, bool),
) -> Vec<Results> {
    let nlanes = endpoints.len();
    let start = Arc::new(Barrier::new(nlanes + 1));
    let mut threads = Vec::new();
    for (lane, mut eps) in endpoints.drain(..).enumerate() {
        let start = Arc::clone(&start);
        threads.push(thread::spawn(move || {
            let base = lane as u64 * LANE_SLICE;
            let offset = |k: u64| {
                if hot {
                    base
                } else {
                    base + (k * size.max(4096)) % (LANE_SLICE - MAX_SIZE)
                }
            };
            let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(iters); nvariants];
            let mut server_time = vec![ThreadTime::default(); nvariants];
            for ep in eps.iter_mut() {
                for k in 0..8u64 {
                    ep.call(offset(k), size, k, strict);
                }
            }
            start.wait();
            let mut k = 0u64;
            while samples.iter().any(|s| s.len() < iters) {
                for (v, ep) in eps.iter_mut().enumerate() {
                    let before = if nlanes == 1 {
                        Some(ThreadTime::servers())
                    } else {
                        None
                    };
                    for _ in 0..block.max(1) {
                        if samples[v].len() >= iters {
                            break;
                        }
                        let d = ep.call(offset(k), size, k, strict);
                        samples[v].push(d);
                        k += 1;
                    }
                    if let Some(before) = before {
                        server_time[v].add(ThreadTime::servers().since(before));
                    }
                }
            }
            (eps, samples, server_time)
        }));
    }
    start.wait();
    let mut per_variant: Vec<Vec<Duration>> = vec![Vec::new(); nvariants];
    let mut server_time = vec![None; nvariants];
    for th in threads {
        let (eps, samples, times) = th.join().unwrap_or_else(|_| panic!("lane panicked"));
        endpoints.push(eps);
        for (v, s) in samples.into_iter().enumerate() {
            per_variant[v].extend(s);
        }
        if nlanes == 1 {
            server_time = times.into_iter().map(Some).collect();
        }
    }
    per_variant
        .into_iter()
        .zip(server_time)
        .map(|(samples, server)| {
            // Lanes ran at once: a variant's share of the wall time is its
            // busy time per lane.
            let busy = samples.iter().sum::<Duration>() / u32::try_from(nlanes).unwrap_or(1);
            Results {
                bytes: size * samples.len() as u64,
                samples,
                wall: busy,
                server,
            }
        })
        .collect()
}

// ----- rpmemd -------------------------------------------------------------

/// A pool and rpmemd's data path serving it. Field order: the server stops
/// (joining every lane worker) before the pool is unmapped.
struct Bench {
    server: TcpServer,
    pool: Pool,
    secret: [u8; SECRET_LEN],
    target: Target,
    files: [PathBuf; 2],
}

impl Bench {
    fn start(dir: &Path, index: usize, nlanes: u32, knobs: &Knobs, args: &Args) -> Bench {
        let pool_size = LANE_SLICE * u64::from(nlanes);
        let name = format!("bench-{index}-{nlanes}-{}.set", std::process::id());
        let part = dir.join(format!("{name}.part0"));
        let _ = std::fs::remove_file(&part);
        std::fs::write(
            dir.join(&name),
            format!(
                "PMEMPOOLSET\nOPTION NOHDRS\n{pool_size} {}\n",
                part.display()
            ),
        )
        .unwrap_or_else(|e| panic!("pool set: {e}"));
        let set_dir = PoolsetDir::open(dir).unwrap_or_else(|e| panic!("{e}"));
        let mut opts = PoolOptions::from_env();
        opts.pmem_force = Some(!args.msync);
        let pool =
            Pool::create_with(&set_dir, &name, None, &opts).unwrap_or_else(|e| panic!("{e}"));
        let decision = policy::select(PolicyInput {
            persist_apm: false,
            persist_general: true,
            pool_is_pmem: pool.is_pmem(),
            cache_persistent: pool.cache_persistent(),
            placement: Placement::Stream,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "# variant {index}, {nlanes} lane(s): {knobs:?}, method {}, target flush {:?}, instruction {}",
            decision.method,
            decision.flush,
            pool.flush_instr().name()
        );
        let target = Target::new(TargetParams {
            nlanes,
            pool_size,
            min_offset: 0,
            inline_max: INLINE_MAX,
            flush_mode: decision.flush,
            method: decision.method,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut secret = [0u8; SECRET_LEN];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13).wrapping_add(1);
        }
        // SAFETY: `pool` outlives `server` (field order, and `stop` stops the
        // server first); nothing takes a slice of the pool.
        let mem = unsafe { PoolMemory::from_pool(&pool) }.unwrap_or_else(|| panic!("null pool"));
        let mut config = TcpConfig::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        // This bench's client moves frames in the clear: it measures the
        // data path without the record layer (rpmem bench has the sealed
        // rows).
        config.plaintext = true;
        config.spin = knobs.spin;
        config.spin_yield = knobs.spin_yield;
        config.stream_stores = knobs.stream_stores;
        config.stream_inline = knobs.stream_inline;
        config.hold_answers = knobs.hold_answers;
        let server =
            TcpServer::start(&config, target, secret, mem).unwrap_or_else(|e| panic!("{e}"));
        Bench {
            server,
            pool,
            secret,
            target,
            files: [part, dir.join(&name)],
        }
    }

    fn stop_and_check(mut self, locals: &[&[u8]], name: &str) {
        self.server.stop();
        drop(self.server);
        // Every lane worker has left: nothing writes the pool any more.
        let pool = self.pool.as_slice();
        for (lane, local) in locals.iter().enumerate() {
            let from = lane * LANE_SLICE as usize;
            let to = from + LANE_SLICE as usize;
            if pool.get(from..to) != local.get(from..to) {
                let at = (from..to)
                    .find(|&i| pool.get(i) != local.get(i))
                    .unwrap_or(from);
                panic!("{name}: lane {lane}: pool byte {at} differs from what was persisted");
            }
        }
        eprintln!("# {name}: every persisted byte is in the pool");
        let _ = self.pool.close();
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// One lane of the initiator: the core's lane machine (`StreamInitiator`)
/// driven like the `rpmem` library drives it (non-blocking `sendmsg` of what
/// it transmits, `recv` into a buffer it handles, spin then `poll`).
struct ClientLane {
    sock: TcpStream,
    machine: StreamInitiator,
    local: Vec<u8>,
    waiter: Waiter,
    /// Nanoseconds per byte of region data sent (0: no pacing).
    pace_ns_per_byte: f64,
    rx: Vec<u8>,
}

/// A bench lane reads nothing back: any READ_RESP byte is refused.
struct NoReads;

impl ReadSink for NoReads {
    fn put(&mut self, _at: u64, _bytes: &[u8]) -> bool {
        false
    }
}

impl ClientLane {
    fn connect(
        port: u16,
        lane: u32,
        nlanes: u32,
        secret: &[u8; SECRET_LEN],
        pool_size: u64,
        waiter: Waiter,
        pace_gbps: f64,
    ) -> ClientLane {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
        sock.set_nodelay(true).unwrap_or_else(|e| panic!("{e}"));
        let mut params = LaneParams::new(
            lane,
            nlanes,
            rpmem_core::persist::Method::Gpspm,
            pool_size,
            0,
            Placement::Stream,
        );
        // As the `rpmem` library sets up its lanes.
        params.inline_max = INLINE_MAX;
        params.send_window = rpmem_core::persist::MAX_SEND_WINDOW;
        let machine = StreamInitiator::new(
            params,
            secret,
            [lane as u8; 32],
            rpmem_core::seal::LaneMode::Plaintext,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut l = ClientLane {
            sock,
            machine,
            local: vec![0u8; usize::try_from(pool_size).unwrap_or(0)],
            waiter,
            pace_ns_per_byte: if pace_gbps > 0.0 {
                8.0 / pace_gbps
            } else {
                0.0
            },
            rx: vec![0u8; 64 * 1024],
        };
        let mut since = None;
        while !l.machine.is_connected() {
            if !l.exchange() {
                l.waiter.idle(l.sock.as_raw_fd(), libc::POLLIN, &mut since);
            }
        }
        l
    }

    /// Changes the local bytes about to be persisted (as an application
    /// would), one byte per cache line.
    fn local_touch(&mut self, off: u64, len: u64, k: u64) {
        let (o, l) = (off as usize, len as usize);
        for b in self.local[o..o + l].iter_mut().step_by(CACHE_LINE as usize) {
            *b = k as u8;
        }
    }

    fn persist(&mut self, off: u64, len: u64, flags: u32) {
        self.machine
            .persist(off, len, flags)
            .unwrap_or_else(|e| panic!("{e}"));
        self.complete();
    }

    fn complete(&mut self) {
        let lane = self.machine.lane();
        let mut since = None;
        loop {
            let moved = self.exchange();
            if let Some(result) = self.machine.poll_completion() {
                result.unwrap_or_else(|e| panic!("lane {lane}: {e}"));
                return;
            }
            if moved {
                since = None;
            } else {
                let events = if self.machine.has_unsent() {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                self.waiter.idle(self.sock.as_raw_fd(), events, &mut since);
            }
        }
    }

    /// One non-blocking round of writing and reading; whether bytes moved.
    fn exchange(&mut self) -> bool {
        let fd = self.sock.as_raw_fd();
        let mut parts = [(std::ptr::null::<u8>(), 0usize); 8];
        let mut count = 0;
        let mut region = None;
        for c in self.machine.poll_transmit().take(parts.len()) {
            let part = match c {
                Chunk::Bytes(b) => (b.as_ptr(), b.len()),
                Chunk::Region { offset, len } => {
                    let (o, l) = (offset as usize, len as usize);
                    region.get_or_insert(count);
                    (self.local[o..o + l].as_ptr(), l)
                }
            };
            parts[count] = part;
            count += 1;
        }
        let sent = match region {
            // Paced: what precedes the region bytes, then those bytes at
            // the link's pace.
            Some(at) if self.pace_ns_per_byte > 0.0 => {
                let head = &mut parts[..at];
                let n: usize = head.iter().map(|p| p.1).sum();
                send_parts(fd, head, self.waiter).unwrap_or_else(|e| panic!("{e}"));
                let (p, l) = parts[at];
                self.paced(p, l);
                n + l
            }
            _ => sendmsg_some(fd, &parts[..count]).unwrap_or_else(|e| panic!("{e}")),
        };
        if sent > 0 {
            self.machine
                .on_transmitted(sent as u64)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let got = recv_some(fd, &mut self.rx).unwrap_or_else(|e| panic!("{e}"));
        if got > 0 {
            self.machine
                .handle_bytes(&self.rx[..got], &mut NoReads)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        sent > 0 || got > 0
    }
}

impl ClientLane {
    /// Sends `[p, p + len)` in 16 KiB pieces, each no earlier than the
    /// paced link would have carried it.
    fn paced(&self, p: *const u8, len: usize) {
        let fd = self.sock.as_raw_fd();
        let start = Instant::now();
        let mut sent = 0usize;
        while sent < len {
            let n = (len - sent).min(16 << 10);
            let due = Duration::from_nanos((sent as f64 * self.pace_ns_per_byte) as u64);
            while start.elapsed() < due {
                thread::yield_now();
            }
            let mut parts = [(p.wrapping_add(sent), n)];
            send_parts(fd, &mut parts, self.waiter).unwrap_or_else(|e| panic!("{e}"));
            sent += n;
        }
    }
}

// ----- cache line write-back cost ----------------------------------------

fn flush_cost(args: &Args) {
    let len = 1usize << 20;
    let scratch = tempfile::tempfile_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))
        .unwrap_or_else(|e| panic!("{e}"));
    scratch
        .set_len(len as u64)
        .unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: a fresh shared mapping of a file this function owns.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            scratch.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        map,
        libc::MAP_FAILED,
        "mmap: {}",
        io::Error::last_os_error()
    );
    let base = NonNull::new(map.cast::<u8>()).unwrap_or_else(|| panic!("null mapping"));
    let instrs = [
        FlushInstr::detect(),
        FlushInstr::detect_with(true, false),
        FlushInstr::detect_with(true, true),
    ];
    let mut seen = Vec::new();
    println!(
        "{:<10} {:<12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14} {:>14}",
        "label",
        "instr",
        "store_us",
        "dirty_us",
        "clean_us",
        "after64k_us",
        "chunks_us",
        "store+flush_us",
        "interleave_us"
    );
    for instr in instrs {
        if seen.contains(&instr) {
            continue;
        }
        seen.push(instr);
        let rounds = 200;
        let mut store = Vec::new();
        let mut dirty = Vec::new();
        let mut clean = Vec::new();
        let mut after = Vec::new();
        let mut chunks = Vec::new();
        let mut store_flush = Vec::new();
        let mut interleaved = Vec::new();
        for r in 0..rounds {
            // Store everything, then flush and fence (the plan today)...
            let t = Instant::now();
            // SAFETY: the mapping is `len` writable bytes.
            unsafe { std::ptr::write_bytes(base.as_ptr(), r as u8 ^ 0x0f, len) };
            flush_all(instr, base, len, true);
            store_flush.push(t.elapsed());
            // ... or write back each 64 KiB chunk right after storing it,
            // then flush everything again and fence (early write-back
            // without idle time, and the plan's flush).
            let t = Instant::now();
            for c in (0..len).step_by(64 << 10) {
                // SAFETY: `c .. c + 64 KiB` is inside the mapping.
                let p = unsafe { NonNull::new_unchecked(base.as_ptr().add(c)) };
                // SAFETY: as above.
                unsafe { std::ptr::write_bytes(p.as_ptr(), r as u8 ^ 0xf0, 64 << 10) };
                flush_all(instr, p, 64 << 10, false);
            }
            flush_all(instr, base, len, true);
            interleaved.push(t.elapsed());
            let t = Instant::now();
            // SAFETY: the mapping is `len` writable bytes.
            unsafe { std::ptr::write_bytes(base.as_ptr(), r as u8, len) };
            store.push(t.elapsed());
            let t = Instant::now();
            flush_all(instr, base, len, true);
            dirty.push(t.elapsed());
            let t = Instant::now();
            flush_all(instr, base, len, true);
            clean.push(t.elapsed());
            // Early write-back in 64 KiB chunks (no fence), then the full
            // flush the plan makes.
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(base.as_ptr(), r as u8 ^ 0x55, len) };
            let t = Instant::now();
            for c in (0..len).step_by(64 << 10) {
                // SAFETY: `c` is inside the mapping.
                let p = unsafe { NonNull::new_unchecked(base.as_ptr().add(c)) };
                flush_all(instr, p, 64 << 10, false);
            }
            chunks.push(t.elapsed());
            let t = Instant::now();
            flush_all(instr, base, len, true);
            after.push(t.elapsed());
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort_unstable();
            v[v.len() / 2].as_secs_f64() * 1e6
        };
        println!(
            "{:<10} {:<12} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>14.1} {:>14.1}",
            args.label,
            instr.name(),
            med(&mut store),
            med(&mut dirty),
            med(&mut clean),
            med(&mut after),
            med(&mut chunks),
            med(&mut store_flush),
            med(&mut interleaved)
        );
    }
    stream_cost(args, base, len);
    // SAFETY: unmapping the mapping made above.
    unsafe { libc::munmap(map, len) };
}

/// How rpmemd can place a 1 MiB WRITE body: copied into the cache (as the
/// kernel's `recv` does) and written back with `clwb`, or copied 64 KiB at a
/// time into a cache-resident buffer and stored with non-temporal stores
/// (`PoolMemory::store_lines_streaming`); each ends with the fence. Also the
/// cost of writing back the streamed lines again.
fn stream_cost(args: &Args, base: NonNull<u8>, len: usize) {
    // SAFETY: the mapping is `len` bytes, page aligned, and outlives `mem`;
    // nothing references it while `mem` is used.
    let mem = unsafe {
        PoolMemory::new(
            base,
            len,
            FlushInstr::detect(),
            rpmemd::transport::DeepFlush::default(),
        )
    };
    let chunk = 64 << 10;
    let mut src = vec![0u8; len * 4];
    let mut bounce = vec![0u8; chunk];
    let (mut cached, mut streamed, mut again) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..200usize {
        // The source stands for socket buffers just written by the sender.
        let s = &mut src[(r % 4) * len..(r % 4 + 1) * len];
        s.fill(r as u8);
        let t = Instant::now();
        // SAFETY: `s` and the mapping are `len` bytes each and disjoint.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), base.as_ptr(), len) };
        flush_all(FlushInstr::detect(), base, len, true);
        cached.push(t.elapsed());
        s.fill(r as u8 ^ 0x33);
        let t = Instant::now();
        for (i, piece) in s.chunks(chunk).enumerate() {
            bounce[..piece.len()].copy_from_slice(piece);
            let ok = mem.store_lines_streaming((i * chunk) as u64, &bounce[..piece.len()]);
            assert!(ok || !PoolMemory::can_stream());
        }
        FlushInstr::detect().fence();
        streamed.push(t.elapsed());
        let t = Instant::now();
        flush_all(FlushInstr::detect(), base, len, true);
        again.push(t.elapsed());
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    println!(
        "{:<10} {:<12} {:>14} {:>14} {:>16}",
        "label", "1 MiB body", "copy+clwb_us", "bounce+nt_us", "clwb_after_nt_us"
    );
    println!(
        "{:<10} {:<12} {:>14.1} {:>14.1} {:>16.1}",
        args.label,
        FlushInstr::detect().name(),
        med(&mut cached),
        med(&mut streamed),
        med(&mut again)
    );
}

fn flush_all(instr: FlushInstr, base: NonNull<u8>, len: usize, fence: bool) {
    for off in (0..len).step_by(CACHE_LINE as usize) {
        // SAFETY: `base + off` is inside the mapping.
        unsafe { instr.flush_line_raw(base.as_ptr().add(off)) };
    }
    if fence {
        instr.fence();
    }
}
