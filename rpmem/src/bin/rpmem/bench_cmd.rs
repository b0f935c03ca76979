//! `rpmem bench`: latency and throughput of the data path, with the raw
//! baselines of the same run beside them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::bench::{self, BaselineBudget, Baselines, Budget, CaseResult, Mode};
use rpmem::{RemotePool, Target};
use serde_json::json;

use crate::cli::BenchArgs;
use crate::error::{CliError, CliResult};
use crate::local::{LocalTarget, LOCAL_TARGET};
use crate::pool_cmds::{self, region};
use crate::values::{human_bytes, round_up_page};

/// rpmemd's environment variable for its spin budget.
pub const RPMEMD_SPIN_ENV: &str = "RPMEMD_SPIN_US";
/// The largest spin budget rpmemd accepts.
pub const RPMEMD_MAX_SPIN_US: u64 = 10_000;
/// Smallest part rpmemd creates (`RPMEM_MIN_PART`).
pub const MIN_PART: u64 = 2 << 20;

/// The aims of the two ratios: 64 B persist median over the raw round trip.
pub const TARGET_LATENCY_RATIO: f64 = 1.5;
/// 1 MiB persist throughput over the raw TCP stream.
pub const TARGET_THROUGHPUT_RATIO: f64 = 0.7;
/// The aim of sealed lanes: 64 B persist median at most this times the
/// plaintext one (issue 15).
pub const TARGET_SEALED_LATENCY_RATIO: f64 = 1.15;
/// The aim of sealed lanes: 1 MiB persist throughput at least this share of
/// the plaintext one.
pub const TARGET_SEALED_THROUGHPUT_RATIO: f64 = 0.8;
/// The sizes of the sealed-versus-plaintext rows.
pub const SEALED_SIZES: [u64; 2] = [64, 1 << 20];

/// The smallest believable ratio of a time over the time of something it
/// contains (a 64 B persist over the bare round trip it includes, a sealed
/// persist over the plaintext one): 1.0 up to noise; below this the
/// denominator was disturbed (a busy machine), not beaten.
pub const MIN_TIME_RATIO: f64 = 0.5;
/// The largest believable ratio of a rate over the rate of something it
/// cannot outrun (1 MiB persists over the bare TCP stream they travel on):
/// 1.0 up to noise; above this the denominator was disturbed.
pub const MAX_RATE_RATIO: f64 = 1.5;

/// What a ratio compares, which bounds what it can believably be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatioKind {
    /// A time over a time it cannot be shorter than: at least
    /// [`MIN_TIME_RATIO`]; its aim is an upper limit.
    TimeOverFloor,
    /// A rate over a rate it cannot exceed: at most [`MAX_RATE_RATIO`]; its
    /// aim is a lower limit.
    RateOverCeiling,
}

impl RatioKind {
    /// True when `x` can be a measurement of this kind rather than of a
    /// disturbed baseline.
    pub fn plausible(self, x: f64) -> bool {
        x.is_finite()
            && match self {
                RatioKind::TimeOverFloor => x >= MIN_TIME_RATIO,
                RatioKind::RateOverCeiling => x <= MAX_RATE_RATIO,
            }
    }

    /// `x` judged against `aim`.
    pub fn judge(self, x: f64, aim: f64) -> Verdict {
        if !self.plausible(x) {
            return Verdict::Unreliable;
        }
        let reached = match self {
            RatioKind::TimeOverFloor => x <= aim,
            RatioKind::RateOverCeiling => x >= aim,
        };
        if reached {
            Verdict::Reached
        } else {
            Verdict::NotReached
        }
    }

    /// Why `x` is not believable, naming the two figures (`num` over
    /// `den`, each with its unit), or `None` when it is.
    pub fn doubt(self, x: f64, num: &str, den: &str) -> Option<String> {
        if self.plausible(x) {
            return None;
        }
        Some(match self {
            RatioKind::TimeOverFloor => format!(
                "{num} is {x:.2}x {den}, which it cannot beat (at least {MIN_TIME_RATIO}x is \
                 believable): the baseline was disturbed, run again"
            ),
            RatioKind::RateOverCeiling => format!(
                "{num} is {x:.2}x {den}, which it cannot outrun (at most {MAX_RATE_RATIO}x is \
                 believable): the baseline was disturbed, run again"
            ),
        })
    }
}

/// A ratio against its aim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the aim.
    Reached,
    /// Outside the aim.
    NotReached,
    /// Not judged: the ratio is not believable ([`RatioKind::plausible`]).
    Unreliable,
}

impl Verdict {
    /// The words of the text output.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Reached => "reached",
            Verdict::NotReached => "NOT reached",
            Verdict::Unreliable => "not judged, the baseline is unreliable",
        }
    }

    /// The value in `--json`'s `verdicts`.
    pub fn key(self) -> &'static str {
        match self {
            Verdict::Reached => "reached",
            Verdict::NotReached => "not reached",
            Verdict::Unreliable => "unreliable",
        }
    }
}

/// The `--json` key of the latency ratio.
const LATENCY_KEY: &str = "persist_64_p50_over_tcp_rtt_p50";
/// The `--json` key of the throughput ratio.
const THROUGHPUT_KEY: &str = "persist_1m_mib_s_over_tcp_stream";
/// The `--json` key of the throughput ratio by medians.
const MEDIAN_KEY: &str = "tcp_1m_ack_p50_over_persist_1m_p50";

/// The loopback address the TCP baselines use for `host`, when it is one.
pub fn loopback_ip(host: &Target) -> Option<IpAddr> {
    if !host.is_loopback() {
        return None;
    }
    match host.host().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) if host.host().eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Err(_) => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    }
}

/// Gives an rpmemd started from this process (local mode: rpmemd inherits
/// the environment) the client's spin budget, unless `RPMEMD_SPIN_US` is
/// set already.
pub fn set_daemon_spin(spin: Duration) {
    if std::env::var_os(RPMEMD_SPIN_ENV).is_none() {
        let us = u64::try_from(spin.as_micros())
            .unwrap_or(RPMEMD_MAX_SPIN_US)
            .min(RPMEMD_MAX_SPIN_US);
        // Called before this process starts any thread.
        std::env::set_var(RPMEMD_SPIN_ENV, us.to_string());
    }
}

/// The client options of the benchmark and the demo: the environment and
/// the connection arguments, as for every other subcommand (the library's
/// spin budget, [`rpmem::DEFAULT_SPIN`], unless `--spin-us` or
/// `RPMEM_SPIN_US` says otherwise).
pub fn bench_options(conn: &crate::cli::ConnArgs, own: Option<&str>) -> CliResult<rpmem::Options> {
    match own {
        Some(what) => conn.own_rpmemd_options(what),
        None => conn.options(),
    }
}

/// Everything one run measured.
pub struct Report {
    /// Where it ran, in words.
    pub setup: serde_json::Value,
    /// The cases.
    pub results: Vec<CaseResult>,
    /// The baselines.
    pub baselines: Baselines,
    /// Persist on sealed lanes and on plaintext lanes, measured one after
    /// the other per size in this run (`--local` only: a second rpmemd
    /// configured `tcp-plaintext = yes`).
    pub sealed_vs_plaintext: Vec<(CaseResult, CaseResult)>,
}

impl Report {
    fn find(&self, mode: Mode, size: u64, lanes: u32) -> Option<&CaseResult> {
        self.results
            .iter()
            .find(|r| r.mode == mode && r.size == size && r.lanes == lanes)
    }

    /// 64 B persist median over the busy-polling ping-pong.
    pub fn latency_ratio(&self) -> Option<f64> {
        let r = self.find(Mode::Persist, 64, 1)?;
        Some(r.p50_us / self.baselines.tcp_rtt_p50_us.filter(|v| *v > 0.0)?)
    }

    /// Why the latency ratio is not believable, if it is not.
    pub fn latency_doubt(&self) -> Option<String> {
        let x = self.latency_ratio()?;
        let r = self.find(Mode::Persist, 64, 1)?;
        RatioKind::TimeOverFloor.doubt(
            x,
            &format!("the 64 B persist median ({:.1} µs)", r.p50_us),
            &format!(
                "the busy-polling ping-pong median ({:.1} µs), a round trip each persist \
                 includes,",
                self.baselines.tcp_rtt_p50_us.unwrap_or(0.0)
            ),
        )
    }

    /// Why the throughput ratio of `lanes` lanes is not believable, if it
    /// is not: `lanes` lanes may together outrun one stream `lanes` times.
    pub fn throughput_doubt(&self, lanes: u32) -> Option<String> {
        let x = self.throughput_ratio(lanes)?;
        let r = self.find(Mode::Persist, 1 << 20, lanes)?;
        let per_lane = x / f64::from(lanes.max(1));
        RatioKind::RateOverCeiling.doubt(
            per_lane,
            &format!(
                "1 MiB persists ({:.1} MiB/s per lane of {lanes})",
                r.mib_s / f64::from(lanes.max(1))
            ),
            &format!(
                "the bare TCP stream ({:.1} MiB/s) they travel on",
                self.baselines.tcp_stream_mib_s.unwrap_or(0.0)
            ),
        )
    }

    /// Why the throughput ratio by medians is not believable, if it is not.
    pub fn median_throughput_doubt(&self) -> Option<String> {
        let x = self.median_throughput_ratio()?;
        let r = self.find(Mode::Persist, 1 << 20, 1)?;
        RatioKind::RateOverCeiling.doubt(
            x,
            &format!(
                "the raw 1 MiB write-and-answer median ({:.1} µs) in the time of a 1 MiB persist",
                self.baselines.tcp_1m_ack_p50_us.unwrap_or(0.0)
            ),
            &format!(
                "the 1 MiB persist median ({:.1} µs), which includes such an exchange,",
                r.p50_us
            ),
        )
    }

    /// The ratios of `--json`: `ratios` (as measured, `null` when not
    /// measured), `verdicts` (the ratios with an aim: `reached`, `not
    /// reached` or `unreliable`) and `unreliable_ratios` (key to reason, for
    /// each ratio that is not believable).
    pub fn ratios_json(&self) -> serde_json::Value {
        let judge = |x: Option<f64>, kind: RatioKind, aim: f64| x.map(|x| kind.judge(x, aim).key());
        let mut unreliable = serde_json::Map::new();
        for (key, doubt) in [
            (LATENCY_KEY, self.latency_doubt()),
            (THROUGHPUT_KEY, self.throughput_doubt(1)),
            (MEDIAN_KEY, self.median_throughput_doubt()),
        ] {
            if let Some(why) = doubt {
                unreliable.insert(key.to_owned(), why.into());
            }
        }
        json!({
            "ratios": {
                LATENCY_KEY: self.latency_ratio(),
                THROUGHPUT_KEY: self.throughput_ratio(1),
                MEDIAN_KEY: self.median_throughput_ratio(),
            },
            "verdicts": {
                LATENCY_KEY: judge(
                    self.latency_ratio(),
                    RatioKind::TimeOverFloor,
                    TARGET_LATENCY_RATIO,
                ),
                THROUGHPUT_KEY: judge(
                    self.throughput_ratio(1),
                    RatioKind::RateOverCeiling,
                    TARGET_THROUGHPUT_RATIO,
                ),
            },
            "unreliable_ratios": unreliable,
        })
    }

    /// 1 MiB persist throughput (lanes) over the raw stream.
    pub fn throughput_ratio(&self, lanes: u32) -> Option<f64> {
        let r = self.find(Mode::Persist, 1 << 20, lanes)?;
        Some(r.mib_s / self.baselines.tcp_stream_mib_s.filter(|v| *v > 0.0)?)
    }

    /// The same comparison by medians, which a busy machine disturbs less:
    /// the raw 1 MiB write-and-acknowledge time over the 1 MiB persist
    /// median (one lane).
    pub fn median_throughput_ratio(&self) -> Option<f64> {
        let r = self.find(Mode::Persist, 1 << 20, 1)?;
        let raw = self.baselines.tcp_1m_ack_p50_us?;
        (r.p50_us > 0.0).then(|| raw / r.p50_us)
    }
}

/// `rpmem bench`.
pub fn bench(a: &BenchArgs) -> CliResult {
    let sizes: Vec<u64> = if a.sizes.is_empty() {
        bench::DEFAULT_SIZES.to_vec()
    } else {
        a.sizes.clone()
    };
    if let Some(bad) = sizes.iter().find(|&&s| s == 0 || s > (1 << 30)) {
        return Err(CliError::Usage(format!(
            "operation size {bad} is out of range: use 1 byte to 1 GiB"
        )));
    }
    let mut modes: Vec<Mode> = Vec::new();
    for m in if a.mode.is_empty() {
        Mode::ALL.to_vec()
    } else {
        a.mode.clone()
    } {
        if !modes.contains(&m) {
            modes.push(m);
        }
    }
    let max_size = sizes.iter().copied().max().unwrap_or(64);
    let need = bench::region_size(max_size, a.lanes);
    if !a.local && (a.rpmemd.is_some() || a.dir.is_some()) {
        let given = if a.rpmemd.is_some() {
            "--rpmemd"
        } else {
            "--dir"
        };
        return Err(CliError::Usage(format!(
            "{given} only applies with --local (rpmemd started on this host with a scratch \
             pool); against TARGET POOLSET the target's rpmemd and pool are used"
        )));
    }
    let opts = bench_options(&a.conn, a.local.then_some("bench --local"))?;
    let budget = Budget {
        max_ops: a.ops,
        max_time: a.seconds,
        warmup: a.ops.min(100),
    };
    let quiet = a.json;
    let mut note = |s: &str| {
        if !quiet {
            tell!("{s}");
        }
    };

    let (local, pool) = if a.local {
        set_daemon_spin(opts.spin());
        let lt = LocalTarget::new(
            a.rpmemd.as_deref(),
            a.dir.as_deref(),
            "rpmem-bench-",
            &mut note,
        )?;
        let part = round_up_page(need.max(MIN_PART))
            .ok_or_else(|| CliError::Usage("the benchmark's pool would be too large".to_owned()))?;
        lt.write_poolset("bench.set", part, false)?;
        let region = region(part, "the benchmark's pool size")?;
        let attr = pool_cmds::attributes(&crate::cli::AttrArgs::default())?;
        let local_opts = lt.options(&opts);
        if crate::out::verbose() {
            crate::cli::describe_launch(&local_opts);
        }
        let pool = RemotePool::create(
            LOCAL_TARGET,
            "bench.set",
            region,
            a.lanes,
            attr.as_ref(),
            &local_opts,
        )
        .map_err(CliError::rpmem(
            "cannot create the benchmark's pool on the local rpmemd",
        ))?;
        (Some(lt), pool)
    } else {
        let (Some(target), Some(set)) = (&a.target, &a.pool_set) else {
            return Err(CliError::Usage(
                "give TARGET and POOLSET, or --local".to_owned(),
            ));
        };
        let region = region(need, "the benchmark's pool size")?;
        let pool = RemotePool::open(target, set, region, a.lanes, &opts).map_err(
            CliError::rpmem(format!(
                "cannot open pool set {set:?} on {target} with the {need} bytes the benchmark \
                 needs ({} lane(s) of {} plus the 4096-byte header)",
                a.lanes,
                human_bytes(bench::slot_size(max_size))
            )),
        )?;
        (None, pool)
    };

    let mut outcome = measure(
        &pool,
        &sizes,
        &modes,
        a,
        &budget,
        &opts,
        local.as_ref(),
        &mut note,
    );
    if let (Ok(report), Some(lt)) = (outcome.as_mut(), local.as_ref()) {
        match measure_plaintext(&pool, lt, &opts, a, &budget, need, &mut note) {
            Ok(rows) => report.sealed_vs_plaintext = rows,
            Err(e) => outcome = Err(e),
        }
    }
    let closed = pool
        .close()
        .map_err(CliError::rpmem("closing the benchmark's pool"));
    if let Some(lt) = local {
        // The pool set file and the part live in the scratch directory,
        // which goes away with everything in it.
        lt.close()?;
    }
    let report = outcome?;
    closed?;
    if a.json {
        let mut out = json!({
            "results": report.results,
            "baselines": report.baselines,
            "setup": report.setup,
            "sealed_vs_plaintext": report.sealed_vs_plaintext.iter().map(|(s, p)| {
                let (p50, mib_s) = sealed_doubts(s, p);
                let mut unreliable = serde_json::Map::new();
                for (key, doubt) in [("p50_ratio", p50), ("mib_s_ratio", mib_s)] {
                    if let Some(why) = doubt {
                        unreliable.insert(key.to_owned(), why.into());
                    }
                }
                json!({
                    "size": s.size,
                    "sealed": s,
                    "plaintext": p,
                    "p50_ratio": ratio(s.p50_us, p.p50_us),
                    "mib_s_ratio": ratio(s.mib_s, p.mib_s),
                    "unreliable_ratios": unreliable,
                })
            }).collect::<Vec<_>>(),
        });
        if let (Some(out), serde_json::Value::Object(ratios)) =
            (out.as_object_mut(), report.ratios_json())
        {
            out.extend(ratios);
        }
        emit!("{out}");
    } else {
        print_report(&report);
    }
    Ok(())
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Why the sealed-over-plaintext median ratio and throughput ratio of one
/// row are not believable, each if it is not: sealing adds work to a
/// plaintext persist and takes none away.
fn sealed_doubts(s: &CaseResult, p: &CaseResult) -> (Option<String>, Option<String>) {
    let p50 = ratio(s.p50_us, p.p50_us).and_then(|x| {
        RatioKind::TimeOverFloor.doubt(
            x,
            &format!("the sealed median ({:.1} µs)", s.p50_us),
            &format!("the plaintext median ({:.1} µs)", p.p50_us),
        )
    });
    let mib_s = ratio(s.mib_s, p.mib_s).and_then(|x| {
        RatioKind::RateOverCeiling.doubt(
            x,
            &format!("the sealed throughput ({:.1} MiB/s)", s.mib_s),
            &format!("the plaintext throughput ({:.1} MiB/s)", p.mib_s),
        )
    });
    (p50, mib_s)
}

/// The sealed-versus-plaintext rows: a second local rpmemd whose
/// configuration adds `tcp-plaintext = yes`, a pool of one plaintext lane
/// on it, and per size of [`SEALED_SIZES`] a persist case on the sealed
/// pool then one on the plaintext pool.
fn measure_plaintext(
    pool: &RemotePool,
    lt: &LocalTarget,
    opts: &rpmem::Options,
    a: &BenchArgs,
    budget: &Budget,
    need: u64,
    note: &mut dyn FnMut(&str),
) -> CliResult<Vec<(CaseResult, CaseResult)>> {
    let conf = lt.path().join("plaintext.conf");
    let base = std::fs::read_to_string(lt.config_path()).map_err(CliError::io(format!(
        "reading {}",
        lt.config_path().display()
    )))?;
    std::fs::write(&conf, format!("{base}tcp-plaintext = yes\n"))
        .map_err(CliError::io(format!("writing {}", conf.display())))?;
    let command = lt.command().replace(
        &lt.config_path().display().to_string(),
        &conf.display().to_string(),
    );
    let part = round_up_page(need.max(MIN_PART))
        .ok_or_else(|| CliError::Usage("the benchmark's pool would be too large".to_owned()))?;
    lt.write_poolset("bench-plain.set", part, false)?;
    let region = region(part, "the benchmark's pool size")?;
    let attr = pool_cmds::attributes(&crate::cli::AttrArgs::default())?;
    let popts = lt
        .options(opts)
        .to_builder()
        .command(command)
        .tcp_plaintext(true)
        .build();
    note("sealed versus plaintext lanes: a second rpmemd with tcp-plaintext = yes ...");
    let plain = RemotePool::create(
        LOCAL_TARGET,
        "bench-plain.set",
        region,
        1,
        attr.as_ref(),
        &popts,
    )
    .map_err(CliError::rpmem(
        "cannot create the plaintext pool on the second local rpmemd",
    ))?;
    bench::fill_pattern(plain.region()).map_err(CliError::rpmem("filling the region"))?;
    let mut rows = Vec::new();
    for size in SEALED_SIZES {
        note(&format!(
            "persist of {} on a sealed, then a plaintext lane ...",
            human_bytes(size)
        ));
        let sealed = bench::run_case(pool, Mode::Persist, size, 1, a.relaxed, budget).map_err(
            CliError::rpmem(format!("sealed persist of {size} bytes failed")),
        )?;
        let plaintext = bench::run_case(&plain, Mode::Persist, size, 1, a.relaxed, budget)
            .map_err(CliError::rpmem(format!(
                "plaintext persist of {size} bytes failed"
            )))?;
        rows.push((sealed, plaintext));
    }
    plain
        .close()
        .map_err(CliError::rpmem("closing the plaintext pool"))?;
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
fn measure(
    pool: &RemotePool,
    sizes: &[u64],
    modes: &[Mode],
    a: &BenchArgs,
    budget: &Budget,
    opts: &rpmem::Options,
    local: Option<&LocalTarget>,
    note: &mut dyn FnMut(&str),
) -> CliResult<Report> {
    let lanes = a.lanes.min(pool.nlanes()).max(1);
    bench::fill_pattern(pool.region()).map_err(CliError::rpmem("filling the region"))?;
    let tcp_ip = loopback_ip(pool.target());
    note(&match tcp_ip {
        Some(ip) => format!("measuring the baselines over {ip} ..."),
        None => format!(
            "measuring memcpy only: the raw-TCP baselines need a peer on {}, so they run only \
             against this host (--local or a loopback target)",
            pool.target().host()
        ),
    });
    // As many round trips as operations per case (within 100..=20000), and
    // a stream sized to match (16 MiB to 1 GiB).
    let rounds = a.ops.clamp(100, 20_000);
    let stream = (rounds << 20).div_euclid(20).clamp(16 << 20, 1 << 30);
    let baseline_budget = BaselineBudget {
        rtt_rounds: u32::try_from(rounds).unwrap_or(20_000),
        stream_bytes: stream,
        memcpy_bytes: stream.saturating_mul(2),
    };
    let baselines = bench::measure_baselines(tcp_ip, &baseline_budget)
        .map_err(CliError::io("measuring the raw TCP baselines"))?;
    let mut results = Vec::new();
    let mut case = |mode: Mode, size: u64, n: u32, note: &mut dyn FnMut(&str)| -> CliResult {
        note(&format!(
            "{mode} of {} on {n} lane(s) ...",
            human_bytes(size)
        ));
        let r = bench::run_case(pool, mode, size, n, a.relaxed, budget).map_err(
            CliError::rpmem(format!("{mode} of {size} bytes on {n} lane(s) failed")),
        )?;
        results.push(r);
        Ok(())
    };
    for &mode in modes {
        for &size in sizes {
            case(mode, size, 1, note)?;
        }
    }
    let max_size = sizes.iter().copied().max().unwrap_or(64);
    if lanes > 1 {
        for &mode in modes {
            case(mode, max_size, lanes, note)?;
        }
    }
    let setup = json!({
        "target": pool.target().to_string(),
        "pool_set": pool.pool_set(),
        "local": local.is_some(),
        "pool_on_tmpfs": local.map(LocalTarget::on_tmpfs),
        "pool_fs": local.map(|l| l.storage().fs_type().to_owned()),
        "pool_on_memory_or_pmem": local.map(|l| l.storage().is_memory_or_pmem()),
        "persist_method": pool.persist_method().name(),
        "lanes": lanes,
        "relaxed": a.relaxed,
        "client_spin_us": opts.spin().as_micros() as u64,
        "rpmemd_spin_us": local.and_then(|_| {
            std::env::var(RPMEMD_SPIN_ENV).ok().and_then(|v| v.parse::<u64>().ok())
        }),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    Ok(Report {
        setup,
        results,
        baselines,
        sealed_vs_plaintext: Vec::new(),
    })
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(
        || "not measured (remote target)".to_owned(),
        |v| format!("{v:.1} {unit}"),
    )
}

fn print_report(r: &Report) {
    let s = &r.setup;
    say!(
        "rpmem bench: pool set {} on {}{}, persistency method {}, {} relaxed flags",
        s["pool_set"],
        s["target"].as_str().unwrap_or("?"),
        if s["local"] == true {
            if s["pool_on_tmpfs"] == true {
                " (rpmemd started locally, pool on tmpfs)"
            } else {
                " (rpmemd started locally)"
            }
        } else {
            ""
        },
        s["persist_method"].as_str().unwrap_or("?"),
        if s["relaxed"] == true {
            "with"
        } else {
            "without"
        },
    );
    match (s["local"] == true, s["pool_on_memory_or_pmem"].as_bool()) {
        (true, Some(false)) => say!(
            "NOTE: the pool is on {} here, neither tmpfs nor persistent memory (DAX): each \
             persist is an msync to that file system (about 135 µs on ext4), so these figures \
             measure the file system, not rpmem; use --dir on tmpfs (/dev/shm) or a DAX mount",
            s["pool_fs"].as_str().unwrap_or("?")
        ),
        (true, _) => {}
        (false, _) => say!(
            "NOTE: the figures mean something only when the pool on the target is on tmpfs or \
             persistent memory (DAX); on a disk file system each persist is an msync (about \
             135 µs on ext4) and the ratios below measure that"
        ),
    }
    say!(
        "spin budget: client {} µs{}",
        s["client_spin_us"],
        match s["rpmemd_spin_us"].as_u64() {
            Some(v) => format!(", rpmemd {v} µs"),
            None => String::new(),
        }
    );
    say!();
    say!(
        "{:<12} {:>9} {:>5} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "mode",
        "size",
        "lanes",
        "ops",
        "p50 µs",
        "p99 µs",
        "MiB/s",
        "@p50"
    );
    for c in &r.results {
        say!(
            "{:<12} {:>9} {:>5} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            c.mode.name(),
            human_bytes(c.size),
            c.lanes,
            c.ops,
            c.p50_us,
            c.p99_us,
            c.mib_s,
            c.mib_s_p50
        );
    }
    let b = &r.baselines;
    say!();
    say!("baselines, measured in this run:");
    say!(
        "  TCP ping-pong 64 B / 8 B, busy-polling  p50 {}",
        fmt_opt(b.tcp_rtt_p50_us, "µs")
    );
    say!(
        "  TCP ping-pong 64 B / 8 B, blocking      p50 {}",
        fmt_opt(b.tcp_rtt_blocking_p50_us, "µs")
    );
    say!(
        "  TCP stream                               {}",
        fmt_opt(b.tcp_stream_mib_s, "MiB/s")
    );
    say!(
        "  TCP 1 MiB written, 1 byte answered       p50 {}",
        fmt_opt(b.tcp_1m_ack_p50_us, "µs")
    );
    say!(
        "  memcpy                                   {:.1} MiB/s",
        b.memcpy_mib_s
    );
    // A ratio that is not believable is not judged: its reason instead.
    let doubted = |doubt: Option<String>| {
        if let Some(why) = doubt {
            say!("  UNRELIABLE: {why}");
        }
    };
    if let Some(x) = r.latency_ratio() {
        say!();
        say!("64 B persist median / busy-polling TCP ping-pong median: {x:.2}");
        say!(
            "  how much longer a durable 64-byte write takes than a bare 64-byte network round \
             trip; 1.0 is the network's floor, rpmem aims for at most {TARGET_LATENCY_RATIO}: {}",
            RatioKind::TimeOverFloor
                .judge(x, TARGET_LATENCY_RATIO)
                .text()
        );
        doubted(r.latency_doubt());
    }
    if let Some(x) = r.throughput_ratio(1) {
        say!("1 MiB persist throughput, 1 lane / TCP stream throughput: {x:.2}");
        say!(
            "  the share of a bare TCP stream's bandwidth that durable 1 MiB writes get; 1.0 is \
             the network's ceiling, rpmem aims for at least {TARGET_THROUGHPUT_RATIO}: {}",
            RatioKind::RateOverCeiling
                .judge(x, TARGET_THROUGHPUT_RATIO)
                .text()
        );
        doubted(r.throughput_doubt(1));
    }
    let lanes = s
        .get("lanes")
        .and_then(|l| l.as_u64())
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(1);
    if lanes > 1 {
        if let Some(x) = r.throughput_ratio(lanes) {
            say!("1 MiB persist throughput, {lanes} lanes / TCP stream: {x:.2}");
            doubted(r.throughput_doubt(lanes));
        }
    }
    if let Some(x) = r.median_throughput_ratio() {
        say!(
            "the same by medians, TCP 1 MiB write+answer / 1 MiB persist, 1 lane: {x:.2} \
             (steadier on a busy machine)"
        );
        doubted(r.median_throughput_doubt());
    }
    if !r.sealed_vs_plaintext.is_empty() {
        say!();
        say!(
            "sealed lanes (AES-256-GCM, the default) / plaintext lanes, persist, 1 lane, this run:"
        );
        for (s, p) in &r.sealed_vs_plaintext {
            say!(
                "  {:>9}  p50 {:.1} / {:.1} µs = {}   MiB/s {:.1} / {:.1} = {}",
                human_bytes(s.size),
                s.p50_us,
                p.p50_us,
                ratio(s.p50_us, p.p50_us).map_or("-".to_owned(), |x| format!("{x:.2}")),
                s.mib_s,
                p.mib_s,
                ratio(s.mib_s, p.mib_s).map_or("-".to_owned(), |x| format!("{x:.2}")),
            );
            let (p50_doubt, mib_s_doubt) = sealed_doubts(s, p);
            doubted(p50_doubt);
            doubted(mib_s_doubt);
            if s.size == 64 {
                if let Some(x) = ratio(s.p50_us, p.p50_us) {
                    say!(
                        "    64 B median aim: at most {TARGET_SEALED_LATENCY_RATIO}x plaintext: {}",
                        RatioKind::TimeOverFloor
                            .judge(x, TARGET_SEALED_LATENCY_RATIO)
                            .text()
                    );
                }
            }
            if s.size == 1 << 20 {
                if let (Some(sc), Some(st), Some(pc), Some(pt)) = (
                    s.client_cpu_us,
                    s.target_cpu_us,
                    p.client_cpu_us,
                    p.target_cpu_us,
                ) {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    let floor = (sc + st) / cores as f64;
                    // Spinning for the socket counts as CPU time too: the
                    // floor is the work alone only without it.
                    let spin_us = |key: &str| r.setup.get(key).and_then(|v| v.as_u64());
                    let spinning = spin_us("client_spin_us").unwrap_or(0) > 0
                        || spin_us("rpmemd_spin_us").unwrap_or(0) > 0;
                    // The plaintext case's mean time per persist, from its
                    // throughput: the sealed one can reach at most this share.
                    let plain_mean = ratio(s.size as f64 / (1024.0 * 1024.0) * 1e6, p.mib_s);
                    say!(
                        "    CPU per persist, client + rpmemd: {sc:.0} + {st:.0} µs sealed, \
                         {pc:.0} + {pt:.0} µs plaintext; with {cores} core(s) a sealed one \
                         takes at least {floor:.0} µs on average, at most {} of the plaintext \
                         throughput{}",
                        plain_mean
                            .and_then(|m| ratio(m, floor))
                            .map_or("-".to_owned(), |x| format!("{x:.2}x")),
                        if spinning {
                            " (spinning included: --spin-us 0 measures the work alone)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(x) = ratio(s.mib_s, p.mib_s) {
                    say!(
                        "    1 MiB throughput aim: at least {TARGET_SEALED_THROUGHPUT_RATIO}x plaintext: {}",
                        RatioKind::RateOverCeiling
                            .judge(x, TARGET_SEALED_THROUGHPUT_RATIO)
                            .text()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn case(size: u64, lanes: u32, p50_us: f64, mib_s: f64) -> CaseResult {
        CaseResult {
            mode: Mode::Persist,
            size,
            lanes,
            ops: 1000,
            p50_us,
            p99_us: p50_us * 2.0,
            mib_s,
            mib_s_p50: mib_s,
            client_cpu_us: None,
            target_cpu_us: None,
        }
    }

    /// A report of a 64 B and a 1 MiB persist case on one lane against
    /// the given baselines.
    fn report(rtt_us: f64, stream_mib_s: f64, ack_1m_us: f64) -> Report {
        Report {
            setup: json!({}),
            results: vec![case(64, 1, 20.0, 3.0), case(1 << 20, 1, 500.0, 2000.0)],
            baselines: Baselines {
                tcp_rtt_p50_us: Some(rtt_us),
                tcp_rtt_blocking_p50_us: Some(rtt_us),
                tcp_stream_mib_s: Some(stream_mib_s),
                memcpy_mib_s: 7000.0,
                tcp_1m_ack_p50_us: Some(ack_1m_us),
            },
            sealed_vs_plaintext: Vec::new(),
        }
    }

    #[test]
    fn ratios_are_judged_against_their_aims_and_what_is_possible() {
        let time = RatioKind::TimeOverFloor;
        assert_eq!(time.judge(1.2, 1.5), Verdict::Reached);
        assert_eq!(time.judge(1.5, 1.5), Verdict::Reached);
        assert_eq!(time.judge(2.0, 1.5), Verdict::NotReached);
        assert_eq!(time.judge(0.97, 1.5), Verdict::Reached, "noise around 1.0");
        assert_eq!(time.judge(0.5, 1.5), Verdict::Reached);
        assert_eq!(time.judge(0.49, 1.5), Verdict::Unreliable);
        // The busy machine's ping-pong of 7956 µs against a 20 µs persist.
        assert_eq!(time.judge(20.0 / 7956.0, 1.5), Verdict::Unreliable);
        let rate = RatioKind::RateOverCeiling;
        assert_eq!(rate.judge(0.8, 0.7), Verdict::Reached);
        assert_eq!(rate.judge(0.5, 0.7), Verdict::NotReached);
        assert_eq!(rate.judge(1.5, 0.7), Verdict::Reached);
        assert_eq!(rate.judge(1.51, 0.7), Verdict::Unreliable);
        for bad in [f64::NAN, f64::INFINITY] {
            assert_eq!(time.judge(bad, 1.5), Verdict::Unreliable);
            assert_eq!(rate.judge(bad, 0.7), Verdict::Unreliable);
        }
        assert!(time.doubt(1.0, "a", "b").is_none());
        let why = time.doubt(0.1, "the persist", "the round trip").unwrap();
        assert!(why.contains("the persist is 0.10x the round trip"), "{why}");
        assert_ne!(Verdict::Unreliable.text(), Verdict::Reached.text());
    }

    #[test]
    fn a_disturbed_baseline_is_reported_not_judged() {
        // Believable: 20 µs over a 15 µs round trip, 2000 MiB/s of 2500,
        // a raw exchange of 400 µs in a persist's 500 µs.
        let good = report(15.0, 2500.0, 400.0);
        assert!(good.latency_doubt().is_none());
        assert!(good.throughput_doubt(1).is_none());
        assert!(good.median_throughput_doubt().is_none());
        let v = good.ratios_json();
        assert_eq!(v["verdicts"][LATENCY_KEY], "reached");
        assert_eq!(v["verdicts"][THROUGHPUT_KEY], "reached");
        assert_eq!(v["unreliable_ratios"], json!({}));
        assert!((v["ratios"][LATENCY_KEY].as_f64().unwrap() - 20.0 / 15.0).abs() < 1e-9);

        // A ping-pong median of 7956 µs, a stream of 100 MiB/s, a raw
        // exchange of 5000 µs: every ratio is past what can be.
        let bad = report(7956.0, 100.0, 5000.0);
        let v = bad.ratios_json();
        assert_eq!(v["verdicts"][LATENCY_KEY], "unreliable");
        assert_eq!(v["verdicts"][THROUGHPUT_KEY], "unreliable");
        // The measured ratios stay, under their keys.
        assert!(v["ratios"][LATENCY_KEY].as_f64().unwrap() < 0.01);
        for key in [LATENCY_KEY, THROUGHPUT_KEY, MEDIAN_KEY] {
            let why = v["unreliable_ratios"][key].as_str().unwrap_or_default();
            assert!(why.contains("run again"), "{key}: {v}");
        }
        let why = bad.latency_doubt().unwrap();
        assert!(why.contains("7956.0 µs"), "{why}");
        assert!(why.contains("(20.0 µs)"), "{why}");

        // Not reached is still said when the baseline is believable.
        let slow = report(5.0, 2500.0, 400.0);
        assert_eq!(slow.ratios_json()["verdicts"][LATENCY_KEY], "not reached");

        // Not measured: null ratio, null verdict, no doubt.
        let mut none = report(15.0, 2500.0, 400.0);
        none.baselines.tcp_rtt_p50_us = None;
        let v = none.ratios_json();
        assert_eq!(v["ratios"][LATENCY_KEY], Value::Null);
        assert_eq!(v["verdicts"][LATENCY_KEY], Value::Null);
        assert!(none.latency_doubt().is_none());
    }

    #[test]
    fn several_lanes_may_outrun_one_stream_as_many_times() {
        let mut r = report(15.0, 1000.0, 400.0);
        r.results.push(case(1 << 20, 2, 600.0, 2600.0));
        // 1300 MiB/s per lane over a 1000 MiB/s stream: believable.
        assert!(r.throughput_doubt(2).is_none());
        r.results.push(case(1 << 20, 3, 600.0, 6000.0));
        assert!(r.throughput_doubt(3).is_some());
    }

    #[test]
    fn sealed_rows_cannot_beat_plaintext_by_much() {
        let s = case(64, 1, 25.0, 2.5);
        assert_eq!(sealed_doubts(&s, &case(64, 1, 20.0, 3.0)), (None, None));
        let (p50, mib_s) = sealed_doubts(&s, &case(64, 1, 900.0, 0.1));
        assert!(p50.unwrap().contains("plaintext median (900.0 µs)"));
        assert!(mib_s.unwrap().contains("plaintext throughput (0.1 MiB/s)"));
    }
}
