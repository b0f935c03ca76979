//! Benchmark of the C face: a libpmemobj transaction with a remote replica
//! beside the same transaction on a local-only pool and beside a raw TCP
//! round trip, and `rpmem_persist` through the C API beside the Rust API,
//! all in the same run, in interleaved rounds.
//!
//! ```sh
//! cargo build --release -p rpmemd -p librpmem
//! cargo run --release -p librpmem --example bench -- [--rounds 5] [--tx 5000] [--ops 5000]
//! ```
//!
//! Needs `cc`, Debian's `libpmemobj-dev` (PMDK 1.12.1's libpmemobj, used
//! unchanged) and the release `rpmemd` next to this program's directory.
//! rpmemd runs in local mode on this host; the pools live on `/dev/shm`
//! (tmpfs), and the transactions run with `PMEM_IS_PMEM_FORCE=1` so that
//! libpmemobj flushes the local pool with CPU instructions, as on persistent
//! memory, in both the local-only and the replicated case. The C programs
//! are in `librpmem/bench/`; `shim.c` is a `librpmem.so.1` that counts
//! `rpmem_persist` calls and forwards everything to ours, so the run can say
//! how many round trips one transaction costs. Figures and their discussion:
//! `docs/BENCHMARKS.md`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use rpmem::{Launch, Options, PoolAttr, Region, RemotePool};

/// The raw TCP ping-pong of `rpmem bench`: the one file the `rpmem` tool
/// measures its baselines with (std only), compiled here too rather than
/// copied or exported from the rpmem library. This example uses its
/// ping-pong only.
#[path = "../../rpmem/src/bin/rpmem/baseline.rs"]
#[allow(dead_code)]
mod baseline;

const POOL: u64 = 16 << 20;
const SIZES: [u64; 3] = [64, 4096, 1 << 20];

struct Args {
    rounds: usize,
    tx: u64,
    ops: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rounds: 5,
        tx: 5000,
        ops: 5000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{flag}: {value:?} is not a positive number"))?;
        match flag.as_str() {
            "--rounds" => a.rounds = usize::try_from(n).map_err(|e| e.to_string())?,
            "--tx" => a.tx = n,
            "--ops" => a.ops = n,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// `target/<profile>`: this example runs from its `examples/` directory.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("no profile directory above {}", exe.display()))
}

fn find(profile: &Path, names: &[&str], what: &str) -> Result<PathBuf, String> {
    names
        .iter()
        .map(|n| profile.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "{what} is not in {} (build it: cargo build --release -p rpmemd -p librpmem)",
                profile.display()
            )
        })
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `key=<number>` out of a line of the C programs' output.
fn field(line: &str, key: &str) -> Result<f64, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in {line:?}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_ns(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(f64::NAN, |&n| n as f64)
}

struct Setup {
    dir: PathBuf,
    rpmemd_cmd: String,
    so: PathBuf,
    shim_dir: PathBuf,
    lib_dir: PathBuf,
    tx: PathBuf,
    persist: PathBuf,
}

impl Setup {
    fn new(profile: &Path) -> Result<Setup, String> {
        let rpmemd = find(profile, &["rpmemd"], "rpmemd")?;
        let so = find(
            profile,
            &["librpmem_c.so", "deps/librpmem_c.so"],
            "librpmem_c.so",
        )?;
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("librpmem-bench-{}", std::process::id()));
        let mk = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()));
        let (sets, shim_dir, lib_dir) = (dir.join("sets"), dir.join("shim"), dir.join("lib"));
        for d in [&sets, &shim_dir, &lib_dir] {
            mk(d)?;
        }
        let conf = dir.join("rpmemd.conf");
        fs::write(
            &conf,
            format!(
                "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = notice\npersist-general = yes\n",
                sets.display(),
                dir.join("rpmemd.log").display()
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        std::os::unix::fs::symlink(&so, lib_dir.join("librpmem.so.1"))
            .and_then(|()| std::os::unix::fs::symlink(&so, lib_dir.join("librpmem.so")))
            .map_err(|e| format!("linking the library: {e}"))?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench");
        let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
        let (tx, persist) = (dir.join("tx"), dir.join("persist"));
        run(
            Command::new("cc")
                .args(["-O2", "-o"])
                .arg(&tx)
                .arg(src.join("tx.c"))
                .args(["-lpmemobj", "-ldl"]),
            "compiling tx.c (needs libpmemobj-dev)",
        )?;
        run(
            Command::new("cc")
                .args(["-O2", "-shared", "-fPIC", "-Wl,-soname,librpmem.so.1", "-I"])
                .arg(&include)
                .arg("-o")
                .arg(shim_dir.join("librpmem.so.1"))
                .arg(src.join("shim.c"))
                .arg("-ldl"),
            "compiling shim.c",
        )?;
        run(
            Command::new("cc")
                .args(["-O2", "-I"])
                .arg(&include)
                .arg("-o")
                .arg(&persist)
                .arg(src.join("persist.c"))
                .arg(format!("-L{}", lib_dir.display()))
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
                .arg("-lrpmem"),
            "compiling persist.c",
        )?;
        Ok(Setup {
            rpmemd_cmd: format!("{} -c {}", rpmemd.display(), conf.display()),
            dir,
            so,
            shim_dir,
            lib_dir,
            tx,
            persist,
        })
    }

    fn sets(&self) -> PathBuf {
        self.dir.join("sets")
    }

    /// Writes pool set `name` in rpmemd's directory with one part.
    fn remote_set(&self, name: &str) -> Result<PathBuf, String> {
        let part = self.dir.join(format!("{name}.part"));
        let _ = fs::remove_file(&part);
        fs::write(
            self.sets().join(name),
            format!("PMEMPOOLSET\n{POOL} {}\n", part.display()),
        )
        .map_err(|e| format!("pool set {name}: {e}"))?;
        Ok(part)
    }

    /// A libpmemobj run of `n` transactions; with `remote`, the pool set has
    /// `REPLICA localhost remote.set` and libpmemobj loads the counting shim.
    /// Returns (p50 ns, persists per transaction).
    fn tx(&self, n: u64, remote: bool) -> Result<(f64, f64), String> {
        let local = self.dir.join("local.part");
        let _ = fs::remove_file(&local);
        let mut text = format!("PMEMPOOLSET\n{POOL} {}\n", local.display());
        let mut cmd = Command::new(&self.tx);
        cmd.env("PMEM_IS_PMEM_FORCE", "1");
        let remote_part = if remote {
            text.push_str("REPLICA localhost remote.set\n");
            cmd.env("LD_LIBRARY_PATH", &self.shim_dir)
                .env("RPMEM_SHIM_REAL", &self.so)
                .env("RPMEM_LAUNCH", "local")
                .env("RPMEM_CMD", &self.rpmemd_cmd);
            Some(self.remote_set("remote.set")?)
        } else {
            None
        };
        let set = self.dir.join("local.set");
        fs::write(&set, text).map_err(|e| format!("local.set: {e}"))?;
        let out = run(cmd.arg(&set).arg(n.to_string()), "tx")?;
        let _ = fs::remove_file(&local);
        if let Some(p) = remote_part {
            let _ = fs::remove_file(p);
        }
        let line = out.lines().find(|l| l.starts_with("tx ")).unwrap_or("");
        let persists = field(line, "persists")?;
        Ok((field(line, "p50_ns")?, persists / n as f64))
    }

    /// `rpmem_persist` through the C API: p50 ns per size.
    fn c_persist(&self, ops: u64) -> Result<Vec<f64>, String> {
        self.remote_set("c.set")?;
        let out = run(
            Command::new(&self.persist)
                .args(["localhost", "c.set"])
                .arg(POOL.to_string())
                .arg(ops.to_string())
                .env("LD_LIBRARY_PATH", &self.lib_dir)
                .env("RPMEM_LAUNCH", "local")
                .env("RPMEM_CMD", &self.rpmemd_cmd),
            "persist",
        )?;
        SIZES
            .iter()
            .map(|s| {
                let line = out
                    .lines()
                    .find(|l| l.starts_with(&format!("persist size={s} ")))
                    .unwrap_or("");
                field(line, "p50_ns")
            })
            .collect()
    }

    /// The same through the Rust API, in this process.
    fn rust_persist(&self, ops: u64) -> Result<Vec<f64>, String> {
        self.remote_set("rust.set")?;
        let opts = Options::builder()
            .launch(Launch::Local)
            .command(self.rpmemd_cmd.clone())
            .build();
        let region = Arc::new(Region::new(POOL as usize).map_err(|e| e.to_string())?);
        let attr = PoolAttr {
            signature: *b"BENCH\0\0\0",
            major: 1,
            ..PoolAttr::ZERO
        };
        let pool = RemotePool::create("localhost", "rust.set", region, 1, Some(&attr), &opts)
            .map_err(|e| e.to_string())?;
        let mut lane = pool.lane(0).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for &len in &SIZES {
            let n = if len >= 1 << 20 { ops.min(2000) } else { ops };
            let mut lat = Vec::new();
            for i in 0..n + 100 {
                let t0 = Instant::now();
                lane.persist(4096, len, 0).map_err(|e| e.to_string())?;
                if i >= 100 {
                    lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
            }
            out.push(median_ns(lat));
        }
        drop(lane);
        pool.close().map_err(|e| e.to_string())?;
        rpmem::remove("localhost", "rust.set", 0, &opts).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn bench(a: &Args) -> Result<(), String> {
    let setup = Setup::new(&profile_dir()?)?;
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (mut r_tx_local, mut r_tx_rtt, mut per_tx, mut r_rt_rtt) = (vec![], vec![], vec![], vec![]);
    let mut r_c_rust = vec![vec![]; SIZES.len()];
    let mut r_rust_rtt = vec![];
    println!(
        "round  tcp_rtt_us  tx_local_us  tx_remote_us  persists/tx  c_persist_us(64,4K,1M)  rust_persist_us(64,4K,1M)"
    );
    for round in 1..=a.rounds {
        let rtt = median_ns(baseline::ping_pong(lo, true, 4000).map_err(|e| e.to_string())?);
        let (tx_local, _) = setup.tx(a.tx, false)?;
        let (tx_remote, persists) = setup.tx(a.tx, true)?;
        let c = setup.c_persist(a.ops)?;
        let rust = setup.rust_persist(a.ops)?;
        let us = |ns: f64| ns / 1000.0;
        println!(
            "{round:>5}  {:>10.1}  {:>11.1}  {:>12.1}  {:>11.2}  {:>7.1} {:>7.1} {:>8.1}  {:>7.1} {:>7.1} {:>8.1}",
            us(rtt),
            us(tx_local),
            us(tx_remote),
            persists,
            us(c[0]),
            us(c[1]),
            us(c[2]),
            us(rust[0]),
            us(rust[1]),
            us(rust[2])
        );
        r_tx_local.push(tx_remote / tx_local);
        r_tx_rtt.push(tx_remote / rtt);
        per_tx.push(persists);
        // What one round trip of the transaction costs beyond the local work.
        r_rt_rtt.push((tx_remote - tx_local) / persists.max(1.0) / rtt);
        for (i, v) in r_c_rust.iter_mut().enumerate() {
            v.push(c[i] / rust[i]);
        }
        r_rust_rtt.push(rust[0] / rtt);
    }
    println!();
    println!("medians of the per-round ratios over {} rounds:", a.rounds);
    println!(
        "  persists (round trips) per transaction     {:.2}",
        median(&mut per_tx)
    );
    println!(
        "  tx remote / tx local-only                  {:.2}x",
        median(&mut r_tx_local)
    );
    println!(
        "  tx remote / raw TCP round trip             {:.2}x",
        median(&mut r_tx_rtt)
    );
    println!(
        "  (tx remote - tx local) per round trip / raw TCP round trip  {:.2}x",
        median(&mut r_rt_rtt)
    );
    println!(
        "  64 B persist, Rust API / raw TCP round trip  {:.2}x",
        median(&mut r_rust_rtt)
    );
    for (i, s) in SIZES.iter().enumerate() {
        println!(
            "  C API / Rust API, {s:>7} B persist         {:.2}x",
            median(&mut r_c_rust[i])
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
