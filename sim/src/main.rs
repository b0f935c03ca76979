//! `sim`: crash-test rpmem-core's protocol engines on simulated RNICs and
//! persistence domains.
//!
//! ```text
//! sim check --seeds N [--method apm|gpspm|flush] [--platform NAME] [--placement rdma|tcp] [--replay SEED]
//! sim mutants [--seeds MAX]
//! sim platforms
//! ```

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rpmem_core::flush::mutants::Mutant;
use rpmem_core::policy::{Method, Placement};

use sim::campaign::{self, mutant_name, parse_mutant, CheckOptions, ConfigResult};
use sim::platform::{self, Platform, Verdict, PLATFORMS};
use sim::workload::Size;
use sim::world::{self, Mode, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    about = "Crash simulator for rpmem: runs rpmem-core's protocol engines on a simulated RNIC and target persistence domains, crashes at every step and checks every promise."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run seeds over the (method x platform) matrix and check every crash
    /// point. Exits 1 on a violation in an allowed configuration, on a
    /// forbidden configuration (where loss is expected) showing no loss,
    /// or on any simulator error.
    Check {
        /// Seeds per configuration.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Only this method: apm, gpspm, or flush (RDMA FLUSH; also
        /// rdma-flush).
        #[arg(long, value_parser = parse_method)]
        method: Option<Method>,
        /// Only this platform (see `sim platforms`).
        #[arg(long, value_parser = parse_platform)]
        platform: Option<Platform>,
        /// Only this placement: rdma (the NIC places WRITEs) or tcp (the
        /// core's stream machines over a modelled byte stream). Default:
        /// both.
        #[arg(long, value_parser = parse_placement)]
        placement: Option<Placement>,
        /// Re-run one seed verbosely (every step, every broken promise).
        #[arg(long)]
        replay: Option<u64>,
        /// Crash points: auto (every point for small workloads, sampled for
        /// large), exhaustive, sampled.
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: Mode,
        /// Workload size: small or large (default: one seed in four large).
        #[arg(long, value_parser = parse_size)]
        size: Option<Size>,
        /// Switch a seeded bug on (for replaying a mutant's catch).
        #[arg(long, value_parser = parse_mutant_arg)]
        mutant: Option<Mutant>,
        /// At every crash point, recompute every word's verdict from scratch
        /// and compare with the incremental bookkeeping (slow).
        #[arg(long)]
        self_check: bool,
    },
    /// Run the mutant matrix: each seeded bug must be caught. Exits 1 if
    /// one escapes.
    Mutants {
        /// Most seeds to try per mutant and allowed configuration.
        #[arg(long, default_value_t = 30)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
    },
    /// List the platforms and the policy's verdict on each method (GPSPM,
    /// APM, RDMA FLUSH over RDMA; GPSPM over TCP).
    Platforms,
}

fn parse_method(s: &str) -> Result<Method, String> {
    platform::parse_method(s)
        .ok_or_else(|| format!("unknown method {s:?}: use apm, gpspm or flush (rdma-flush)"))
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    platform::platform(s).ok_or_else(|| {
        let names: Vec<&str> = PLATFORMS.iter().map(|p| p.name).collect();
        format!("unknown platform {s:?}: use one of {}", names.join(", "))
    })
}

fn parse_placement(s: &str) -> Result<Placement, String> {
    Placement::from_name(s).map_err(|e| e.to_string())
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "auto" => Ok(Mode::Auto),
        "exhaustive" => Ok(Mode::Exhaustive),
        "sampled" => Ok(Mode::Sampled),
        _ => Err(format!(
            "unknown mode {s:?}: use auto, exhaustive or sampled"
        )),
    }
}

fn parse_size(s: &str) -> Result<Size, String> {
    match s {
        "small" => Ok(Size::Small),
        "large" => Ok(Size::Large),
        _ => Err(format!("unknown size {s:?}: use small or large")),
    }
}

fn parse_mutant_arg(s: &str) -> Result<Mutant, String> {
    parse_mutant(s).ok_or_else(|| {
        let names: Vec<&str> = Mutant::ALL.iter().map(|&m| mutant_name(m)).collect();
        format!("unknown mutant {s:?}: use one of {}", names.join(", "))
    })
}

/// What `sim mutants` and `--mutant` say in a build without the hooks.
const NO_HOOKS: &str = "sim: this build has no seeded bugs: they are compiled only with \
RUSTFLAGS=\"--cfg rpmem_mutants\" (so that no build of rpmemd or rpmem can contain them). \
Run: RUSTFLAGS=\"--cfg rpmem_mutants\" CARGO_TARGET_DIR=target/mutants cargo run -p sim --release -- mutants";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wants_mutant = match &cli.cmd {
        Cmd::Mutants { .. } => true,
        Cmd::Check { mutant, .. } => mutant.is_some(),
        _ => false,
    };
    if wants_mutant && !rpmem_core::flush::mutants::COMPILED {
        eprintln!("{NO_HOOKS}");
        return ExitCode::from(2);
    }
    let ok = match cli.cmd {
        Cmd::Check {
            seeds,
            first_seed,
            method,
            platform,
            placement,
            replay,
            mode,
            size,
            mutant,
            self_check,
        } => {
            let opts = CheckOptions {
                seeds,
                first_seed,
                method,
                platform,
                placement,
                mode,
                size,
                mutant: mutant.unwrap_or(Mutant::None),
                self_check,
            };
            match replay {
                Some(seed) => replay_seed(seed, &opts),
                None => check(&opts),
            }
        }
        Cmd::Mutants { seeds, first_seed } => mutants(seeds, first_seed),
        Cmd::Platforms => {
            for p in PLATFORMS {
                let mut verdicts: Vec<String> = platform::METHODS
                    .iter()
                    .map(|&m| {
                        let c = platform::Config::new(p, m);
                        format!("{} {:?}", m, c.verdict)
                    })
                    .collect();
                verdicts.push(format!(
                    "TCP (GPSPM) {:?}",
                    platform::Config::tcp(p).verdict
                ));
                println!("{:<12} {}  [{}]", p.name, p.describe(), verdicts.join(", "));
            }
            true
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_details(r: &ConfigResult) {
    if let Some((seed, v)) = &r.first_violation {
        let what = if r.config.allowed() {
            "VIOLATION"
        } else {
            "loss (expected)"
        };
        println!(
            "    {what}: seed {seed}, crash after step {}: word {} may hold {:?} ({}): {}",
            v.step,
            v.finding.word,
            v.finding.candidate.value,
            v.finding.candidate.source.name(),
            v.finding.problem
        );
        if r.config.allowed() {
            println!(
                "    replay: cargo run -p sim --release -- check --replay {seed} --method {} --platform {} --placement {}",
                platform::method_arg(r.config.method),
                r.config.platform.name,
                r.config.placement.name()
            );
        }
    }
    for (seed, e) in r.errors.iter().take(5) {
        println!("    ERROR seed {seed}: {e}");
    }
    if r.errors.len() > 5 {
        println!("    ... {} more errors", r.errors.len() - 5);
    }
}

fn check(opts: &CheckOptions) -> bool {
    println!(
        "checking seeds {}..={} per configuration{}",
        opts.first_seed,
        opts.first_seed.saturating_add(opts.seeds).saturating_sub(1),
        if opts.mutant == Mutant::None {
            String::new()
        } else {
            format!(" with mutant {} ON", mutant_name(opts.mutant))
        }
    );
    let summary = campaign::check(opts, |r| {
        println!("{}", r.line());
        print_details(r);
    });
    if !summary.ok() {
        for r in summary.results.iter().filter(|r| !r.as_expected()) {
            if r.config.verdict == Verdict::ForbiddenLossExpected && r.violating_points == 0 {
                println!(
                    "  {} is forbidden and must lose data, but no loss was found: the checker may be blind",
                    r.config
                );
            }
        }
    }
    for line in summary.placement_lines() {
        println!("{line}");
    }
    println!("{}", summary.final_line());
    summary.ok()
}

fn replay_seed(seed: u64, opts: &CheckOptions) -> bool {
    let mut ok = true;
    for config in campaign::configs(opts.method, opts.platform, opts.placement) {
        let run_opts = RunOptions {
            mutant: opts.mutant,
            mode: opts.mode,
            size: opts.size,
            self_check: opts.self_check,
            verbose: true,
            ..RunOptions::default()
        };
        let r = world::run(seed, config, &run_opts);
        println!(
            "=== seed {seed}, {} ({:?}), platform: {}",
            config,
            config.verdict,
            config.platform.describe()
        );
        if r.mutant != Mutant::None {
            println!("mutant ON: {}", mutant_name(r.mutant));
        }
        println!("params: {:?}", r.params);
        for (l, calls) in r.workload.lanes.iter().enumerate() {
            let calls: Vec<String> = calls.iter().map(ToString::to_string).collect();
            println!("lane {l} workload: {}", calls.join("; "));
        }
        for line in &r.log {
            println!("{line}");
        }
        println!(
            "steps {}, calls ok {} failed {}, crash points {}, values judged {}, at most {} words in flight, violating crash points {}",
            r.steps,
            r.calls_ok,
            r.calls_failed,
            r.crash_points,
            r.values_judged,
            r.max_in_flight,
            r.violating_points
        );
        println!("memory: {:?}", r.mem);
        if let Some(v) = &r.first_violation {
            println!(
                "first violation: crash after step {}: word {} may hold {:?} ({}): {}",
                v.step,
                v.finding.word,
                v.finding.candidate.value,
                v.finding.candidate.source.name(),
                v.finding.problem
            );
        }
        for e in &r.errors {
            println!("ERROR: {e}");
        }
        println!("trace hash {:016x}", r.trace_hash);
        if !r.errors.is_empty() || (config.allowed() && r.violated()) {
            ok = false;
        }
    }
    ok
}

fn mutants(max_seeds: u64, first_seed: u64) -> bool {
    let results = campaign::mutants(max_seeds, first_seed, |r| {
        for line in r.lines() {
            println!("{line}");
        }
    });
    println!("{}", campaign::mutants_final_line(&results));
    results.iter().all(|r| r.caught.is_some())
}
