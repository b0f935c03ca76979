//! Benchmarks of the data path, and the raw baselines to judge them by.
//!
//! [`run_case`] measures one operation ([`Mode`]) of one size on one or more
//! lanes of an open [`RemotePool`]: every lane runs in its own thread on its
//! own slice of the region, each operation is timed, and the result gives
//! the median and 99th percentile latency of one operation and the
//! throughput of all lanes together ([`CaseResult`]).
//!
//! [`measure_baselines`] measures, in the same run, what the hardware and the
//! kernel give without rpmem: a TCP ping-pong (64 bytes out, 8 bytes back,
//! the shape of a small persist and its answer) with both ends busy-polling
//! and with blocking reads, a one-way TCP stream, and `memcpy` bandwidth
//! (the measurements themselves are in [`crate::baseline`]). The TCP
//! baselines need a peer on the target host, so they run over loopback only
//! (see [`Baselines`]).
//!
//! This is the `rpmem` tool's own module, not part of the rpmem library's
//! API: it drives the library through its public API only.
//!
//! The layout of a case: lane `i` uses region bytes
//! `[DATA_OFFSET + i * slot, DATA_OFFSET + (i + 1) * slot)` where `slot` is
//! the operation size rounded up to whole pages; [`region_size`] says how
//! large the region (and so the pool) must be. Nothing below
//! [`DATA_OFFSET`] is written, so the pool header of a pool with headers is
//! never touched. The benchmark overwrites the pool's data above it.

use std::io;
use std::net::IpAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rpmem::{Error, Lane, Region, RemotePool, FLUSH_RELAXED, PERSIST_RELAXED};
use serde::Serialize;

use crate::baseline::{memcpy_bandwidth, mib_per_s, percentile, ping_pong, tcp_stream, write_ack};

/// First pool offset the benchmark writes: above the 4096-byte pool header.
pub const DATA_OFFSET: u64 = 4096;

/// The default operation sizes: 64 B, 4 KiB, 1 MiB.
pub const DEFAULT_SIZES: [u64; 3] = [64, 4096, 1 << 20];

/// What one benchmark operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `persist(offset, size, flags)`: the bytes are durable when it returns.
    Persist,
    /// `flush(offset, size, flags)` then `drain(0)`.
    FlushDrain,
    /// `deep_persist(offset, size)`.
    Deep,
    /// `read(offset, buffer)`: pool bytes back into a local buffer.
    Read,
}

impl Mode {
    /// Every mode, in the order the benchmark runs them.
    pub const ALL: [Mode; 4] = [Mode::Persist, Mode::FlushDrain, Mode::Deep, Mode::Read];

    /// The name used on the command line and in JSON: `persist`,
    /// `flush-drain`, `deep`, `read`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Persist => "persist",
            Mode::FlushDrain => "flush-drain",
            Mode::Deep => "deep",
            Mode::Read => "read",
        }
    }

    /// Parses a [`Mode::name`].
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == text)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long one case runs: each lane stops after `max_ops` timed operations
/// or when `max_time` has passed, whichever comes first (at least one
/// operation always runs). `warmup` untimed operations come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most timed operations per lane.
    pub max_ops: u64,
    /// Longest time per case.
    pub max_time: Duration,
    /// Untimed operations per lane before the timed ones.
    pub warmup: u64,
}

impl Default for Budget {
    /// 20 000 operations or 1 second per case, after 100 warm-up operations.
    fn default() -> Budget {
        Budget {
            max_ops: 20_000,
            max_time: Duration::from_secs(1),
            warmup: 100,
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    /// The operation.
    pub mode: Mode,
    /// Bytes per operation.
    pub size: u64,
    /// Lanes (threads) that ran the operation at the same time.
    pub lanes: u32,
    /// Timed operations, all lanes together.
    pub ops: u64,
    /// Median latency of one operation, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of one operation, in microseconds.
    pub p99_us: f64,
    /// Bytes moved by all lanes divided by the wall time of the case, in
    /// MiB (2^20 bytes) per second.
    pub mib_s: f64,
    /// The throughput the median latency implies: `lanes × size / p50`,
    /// in MiB/s. Unlike `mib_s` it ignores the slowest operations, so it
    /// is steadier on a busy machine.
    pub mib_s_p50: f64,
    /// CPU time per operation in microseconds (user and system, all
    /// threads) of this process during the case, from `/proc/self/stat`.
    /// `None` where `/proc` cannot be read.
    pub client_cpu_us: Option<f64>,
    /// The same for the pool's local child process (rpmemd with `--local`;
    /// over ssh it is the ssh client, which does not do the target's work,
    /// so the figure is left out there).
    pub target_cpu_us: Option<f64>,
}

/// The raw baselines of one run. A TCP figure is `None` when it was not
/// measured (the target is not this host: the peer would have to run
/// there).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Baselines {
    /// Median round trip of 64 bytes out and 8 bytes back over TCP, both
    /// ends busy-polling non-blocking sockets, in microseconds.
    pub tcp_rtt_p50_us: Option<f64>,
    /// The same round trip with blocking reads on both ends.
    pub tcp_rtt_blocking_p50_us: Option<f64>,
    /// One-way TCP stream bandwidth (1 MiB writes, the reader discards),
    /// in MiB/s.
    pub tcp_stream_mib_s: Option<f64>,
    /// `memcpy` bandwidth of this host (64 MiB buffers), in MiB/s.
    pub memcpy_mib_s: f64,
    /// Median time of 1 MiB written to a TCP socket until the reader, having
    /// received all of it, answers one byte (blocking I/O), in
    /// microseconds: the raw analogue of a 1 MiB persist.
    pub tcp_1m_ack_p50_us: Option<f64>,
}

/// Options of the baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaselineBudget {
    /// Round trips of each ping-pong.
    pub rtt_rounds: u32,
    /// Bytes of the TCP stream.
    pub stream_bytes: u64,
    /// Bytes copied by the memcpy measurement.
    pub memcpy_bytes: u64,
}

impl Default for BaselineBudget {
    /// 20 000 round trips, 1 GiB streamed, 2 GiB copied.
    fn default() -> BaselineBudget {
        BaselineBudget {
            rtt_rounds: 20_000,
            stream_bytes: 1 << 30,
            memcpy_bytes: 2 << 30,
        }
    }
}

/// Bytes of the region slot of one lane for operations of `size` bytes:
/// `size` rounded up to whole 4 KiB pages (at least one page).
pub fn slot_size(size: u64) -> u64 {
    size.max(1).div_ceil(4096).saturating_mul(4096)
}

/// Region (and pool) size a benchmark with operations of at most
/// `max_size` bytes on `lanes` lanes needs: the header page and one slot per
/// lane.
pub fn region_size(max_size: u64, lanes: u32) -> u64 {
    slot_size(max_size)
        .saturating_mul(u64::from(lanes.max(1)))
        .saturating_add(DATA_OFFSET)
}

/// Fills the region above [`DATA_OFFSET`] with a non-zero pattern, so that
/// the benchmark moves real pages rather than the kernel's zero page.
pub fn fill_pattern(region: &Region) -> Result<(), Error> {
    let start = usize::try_from(DATA_OFFSET).unwrap_or(usize::MAX);
    let mut chunk = vec![0u8; 1 << 16];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    let mut at = start;
    while at < region.len() {
        let n = (region.len() - at).min(chunk.len());
        region.write_at(at, chunk.get(..n).unwrap_or(&[]))?;
        at += n;
    }
    Ok(())
}

/// Nanoseconds as microseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Runs one case: `mode` with operations of `size` bytes on lanes
/// `0..lanes` of `pool`, each lane in its own thread. `relaxed` uses
/// [`PERSIST_RELAXED`] / [`FLUSH_RELAXED`] (no 8-byte atomicity, fewer
/// messages) for `persist` and `flush`.
///
/// The region must be at least [`region_size`]`(size, lanes)` bytes; the
/// benchmark writes the pool above [`DATA_OFFSET`].
pub fn run_case(
    pool: &RemotePool,
    mode: Mode,
    size: u64,
    lanes: u32,
    relaxed: bool,
    budget: &Budget,
) -> Result<CaseResult, Error> {
    if size == 0 {
        return Err(Error::InvalidArgument(
            "a benchmark operation must move at least one byte".to_owned(),
        ));
    }
    let lanes = lanes.max(1);
    if lanes > pool.nlanes() {
        return Err(Error::InvalidArgument(format!(
            "the benchmark wants {lanes} lanes but the pool has {}",
            pool.nlanes()
        )));
    }
    let need = region_size(size, lanes);
    if pool.size() < need {
        return Err(Error::InvalidArgument(format!(
            "{lanes} lane(s) of {size}-byte operations need a pool of at least {need} bytes; \
             this one has {}",
            pool.size()
        )));
    }
    let handles = (0..lanes)
        .map(|i| pool.lane(i))
        .collect::<Result<Vec<_>, _>>()?;
    let slot = slot_size(size);
    let barrier = Barrier::new(handles.len());
    let target_pid = pool.remote_pid().filter(|&pid| is_rpmemd(pid));
    let cpu_before = (
        cpu_ticks("self"),
        target_pid.and_then(|p| cpu_ticks(&p.to_string())),
    );
    let outcome: Vec<Result<LaneRun, Error>> = std::thread::scope(|s| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|mut lane| {
                let barrier = &barrier;
                s.spawn(move || {
                    let offset = DATA_OFFSET + u64::from(lane.index()) * slot;
                    run_lane(&mut lane, mode, offset, size, relaxed, budget, barrier)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(Error::InvalidArgument(
                        "a benchmark thread panicked".to_owned(),
                    ))
                })
            })
            .collect()
    });
    let mut samples = Vec::new();
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    for run in outcome {
        let run = run?;
        first_start = Some(first_start.map_or(run.start, |t| t.min(run.start)));
        last_end = Some(last_end.map_or(run.end, |t| t.max(run.end)));
        samples.extend(run.samples_ns);
    }
    let per_op = |before: Option<u64>, after: Option<u64>, ops: u64| match (before, after) {
        (Some(b), Some(a)) if ops > 0 => {
            Some(a.saturating_sub(b) as f64 * 1e6 / clock_ticks_per_s() / ops as f64)
        }
        _ => None,
    };
    let cpu_after = (
        cpu_ticks("self"),
        target_pid.and_then(|p| cpu_ticks(&p.to_string())),
    );
    samples.sort_unstable();
    let ops = samples.len() as u64;
    let elapsed = match (first_start, last_end) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let p50 = percentile(&samples, 0.50);
    Ok(CaseResult {
        mode,
        size,
        lanes,
        ops,
        p50_us: us(p50),
        p99_us: us(percentile(&samples, 0.99)),
        mib_s: mib_per_s(ops.saturating_mul(size), elapsed),
        mib_s_p50: mib_per_s(
            size.saturating_mul(u64::from(lanes)),
            Duration::from_nanos(p50),
        ),
        client_cpu_us: per_op(cpu_before.0, cpu_after.0, ops),
        target_cpu_us: per_op(cpu_before.1, cpu_after.1, ops),
    })
}

/// User plus system CPU time of process `pid` ("self" for this one), all
/// its threads including those that ended, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count the fields after its closing parenthesis (field 3 onwards).
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Whether process `pid` runs rpmemd (with `--local` the pool's child is
/// rpmemd itself; over ssh it is the ssh client).
fn is_rpmemd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("rpmemd"))
}

/// Clock ticks per second of `/proc`'s CPU times.
fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// What one lane thread measured.
struct LaneRun {
    samples_ns: Vec<u64>,
    start: Instant,
    end: Instant,
}

fn run_lane(
    lane: &mut Lane<'_>,
    mode: Mode,
    offset: u64,
    size: u64,
    relaxed: bool,
    budget: &Budget,
    barrier: &Barrier,
) -> Result<LaneRun, Error> {
    let mut buf = if mode == Mode::Read {
        vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)]
    } else {
        Vec::new()
    };
    let persist_flags = if relaxed { PERSIST_RELAXED } else { 0 };
    let flush_flags = if relaxed { FLUSH_RELAXED } else { 0 };
    let mut op = |lane: &mut Lane<'_>| -> Result<(), Error> {
        match mode {
            Mode::Persist => lane.persist(offset, size, persist_flags),
            Mode::FlushDrain => {
                lane.flush(offset, size, flush_flags)?;
                lane.drain(0)
            }
            Mode::Deep => lane.deep_persist(offset, size),
            Mode::Read => lane.read(offset, &mut buf),
        }
    };
    // Every lane warms up, then all start the timed part together (a lane
    // whose warm-up failed still waits, so that no other lane waits forever).
    let mut warmup = Ok(());
    for _ in 0..budget.warmup {
        warmup = op(lane);
        if warmup.is_err() {
            break;
        }
    }
    barrier.wait();
    warmup?;
    let cap = usize::try_from(budget.max_ops.min(1 << 24)).unwrap_or(1 << 24);
    let mut samples_ns = Vec::with_capacity(cap);
    let start = Instant::now();
    let deadline = start + budget.max_time;
    let mut now = start;
    loop {
        op(lane)?;
        let t = Instant::now();
        samples_ns.push(u64::try_from(t.duration_since(now).as_nanos()).unwrap_or(u64::MAX));
        now = t;
        if samples_ns.len() as u64 >= budget.max_ops || now >= deadline {
            break;
        }
    }
    Ok(LaneRun {
        samples_ns,
        start,
        end: now,
    })
}

/// Measures the baselines. The TCP ones run over `tcp_host` (a loopback
/// address: both ends run in this process) when it is `Some`.
pub fn measure_baselines(
    tcp_host: Option<IpAddr>,
    budget: &BaselineBudget,
) -> io::Result<Baselines> {
    let (rtt, rtt_blocking, stream, ack) = match tcp_host {
        Some(ip) => {
            let busy = ping_pong(ip, true, budget.rtt_rounds)?;
            let blocking = ping_pong(ip, false, budget.rtt_rounds)?;
            let stream = tcp_stream(ip, budget.stream_bytes)?;
            let ack = write_ack(ip, 1 << 20, (budget.rtt_rounds / 20).clamp(20, 1000))?;
            (
                Some(us(percentile(&busy, 0.5))),
                Some(us(percentile(&blocking, 0.5))),
                Some(stream),
                Some(us(percentile(&ack, 0.5))),
            )
        }
        None => (None, None, None, None),
    };
    Ok(Baselines {
        tcp_rtt_p50_us: rtt,
        tcp_rtt_blocking_p50_us: rtt_blocking,
        tcp_stream_mib_s: stream,
        memcpy_mib_s: memcpy_bandwidth(budget.memcpy_bytes),
        tcp_1m_ack_p50_us: ack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::net::Ipv4Addr;

    #[rstest]
    #[case(1, 4096)]
    #[case(64, 4096)]
    #[case(4096, 4096)]
    #[case(4097, 8192)]
    #[case(1 << 20, 1 << 20)]
    fn slots_are_whole_pages(#[case] size: u64, #[case] slot: u64) {
        assert_eq!(slot_size(size), slot);
    }

    #[test]
    fn region_holds_header_and_one_slot_per_lane() {
        assert_eq!(region_size(64, 1), 8192);
        assert_eq!(region_size(1 << 20, 4), 4096 + (4 << 20));
        assert_eq!(region_size(1 << 20, 0), 4096 + (1 << 20));
    }

    #[test]
    fn modes_round_trip_their_names() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("flush"), None);
        assert_eq!(
            serde_json::to_string(&Mode::FlushDrain).ok().as_deref(),
            Some("\"flush-drain\"")
        );
    }

    #[test]
    fn loopback_baselines_are_positive() {
        let b = measure_baselines(
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            &BaselineBudget {
                rtt_rounds: 200,
                stream_bytes: 4 << 20,
                memcpy_bytes: 64 << 20,
            },
        )
        .expect("loopback baselines");
        for v in [
            b.tcp_rtt_p50_us,
            b.tcp_rtt_blocking_p50_us,
            b.tcp_stream_mib_s,
        ] {
            assert!(v.is_some_and(|v| v > 0.0), "{b:?}");
        }
        assert!(b.memcpy_mib_s > 0.0);
    }

    #[test]
    fn remote_baselines_leave_tcp_out() {
        let b = measure_baselines(
            None,
            &BaselineBudget {
                rtt_rounds: 1,
                stream_bytes: 1,
                memcpy_bytes: 1,
            },
        )
        .expect("memcpy only");
        assert_eq!(b.tcp_rtt_p50_us, None);
        assert_eq!(b.tcp_stream_mib_s, None);
        assert_eq!(b.tcp_1m_ack_p50_us, None);
        assert!(b.memcpy_mib_s > 0.0);
    }
}
