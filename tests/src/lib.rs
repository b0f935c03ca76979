//! Helpers of the end-to-end tests: find (or build) the rpmemd binary, lay
//! out a scratch directory with a configuration and pool set files, and
//! give the `rpmem` options that start that rpmemd in local mode.
//!
//! Test helpers panic with a message on any set-up failure: a test that
//! cannot be set up fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rpmem::{Launch, Options, PoolAttr, Region};

pub mod crash;
pub mod sshd;

/// Deadline of every control-path wait in the tests.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of a data-path call without progress in the tests.
pub const DATA_TIMEOUT: Duration = Duration::from_secs(20);

/// The rpmemd binary of this build: `target/<profile>/rpmemd` next to the
/// test executable's `deps` directory. When it is missing, it is built once
/// with `cargo build -p rpmemd` into the same target directory and profile.
pub fn rpmemd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = profile_dir();
        let bin = profile_dir.join("rpmemd");
        if !bin.exists() {
            build_rpmemd(&profile_dir);
        }
        assert!(
            bin.exists(),
            "{} is missing after building rpmemd",
            bin.display()
        );
        bin
    })
}

fn build_rpmemd(profile_dir: &Path) {
    cargo_build(
        profile_dir,
        &["-p", "rpmemd", "--bin", "rpmemd"],
        cfg!(feature = "verbs"),
    );
}

/// `target/<profile>` of this build: the test executable is in its `deps`
/// directory (or, for a program, in it).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe
        .parent()
        .unwrap_or_else(|| panic!("no directory above {}", exe.display()))
        .to_path_buf();
    if dir.file_name().and_then(|n| n.to_str()) == Some("deps") {
        dir.pop();
    }
    dir
}

/// An example program of the workspace (`cargo build -p <package> --example
/// <name>`), built into this build's target directory and profile if missing.
pub fn example_bin(package: &str, name: &str) -> PathBuf {
    let dir = profile_dir();
    let bin = dir.join("examples").join(name);
    if !bin.exists() {
        cargo_build(&dir, &["-p", package, "--example", name], false);
    }
    assert!(
        bin.exists(),
        "{} is missing after building it",
        bin.display()
    );
    bin
}

/// A program of the workspace (`cargo build -p <package> --bin <name>`),
/// built into this build's target directory and profile if missing.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let dir = profile_dir();
    let bin = dir.join(name);
    if !bin.exists() {
        cargo_build(&dir, &["-p", package, "--bin", name], false);
    }
    assert!(
        bin.exists(),
        "{} is missing after building it",
        bin.display()
    );
    bin
}

/// `cargo build <what>` into the target directory and profile of `profile_dir`.
fn cargo_build(profile_dir: &Path, what: &[&str], verbs: bool) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = profile_dir
        .parent()
        .unwrap_or_else(|| panic!("no target directory above {}", profile_dir.display()));
    // The workspace this crate belongs to.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(what)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    if verbs {
        cmd.args(["--features", "verbs"]);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what:?}: {e}"));
    assert!(status.success(), "cargo build {what:?} failed: {status}");
}

/// A zeroed, page-aligned local region of `len` bytes.
pub fn region(len: u64) -> Arc<Region> {
    Arc::new(Region::new(len as usize).expect("region"))
}

/// Writes `data` at `offset` of the local region.
pub fn put(r: &Region, offset: u64, data: &[u8]) {
    r.write_at(offset as usize, data).expect("write_at");
}

/// Reads `len` bytes at `offset` of the local region.
pub fn get(r: &Region, offset: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    r.read_at(offset as usize, &mut b).expect("read_at");
    b
}

/// Attributes for a pool with headers, distinct per `seed`.
pub fn attr(seed: u8) -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMTST",
        major: 1,
        compat_features: 0,
        incompat_features: 0,
        ro_compat_features: 0,
        poolset_uuid: [seed; 16],
        uuid: [seed.wrapping_add(1); 16],
        next_uuid: [seed.wrapping_add(2); 16],
        prev_uuid: [seed.wrapping_add(3); 16],
        user_flags: [seed.wrapping_add(4); 16],
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A scratch directory: `rpmemd.conf`, a pool set directory `sets/`, the
/// part files and rpmemd's log file.
#[derive(Debug)]
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl TestEnv {
    /// A fresh directory with a configuration (GPSPM, log file at debug).
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let env = TestEnv { dir };
        fs::create_dir(env.path("sets")).unwrap_or_else(|e| panic!("mkdir sets: {e}"));
        let text = format!(
            "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = debug\npersist-general = yes\n",
            env.path("sets").display(),
            env.path("rpmemd.log").display(),
        );
        fs::write(env.path("rpmemd.conf"), text).unwrap_or_else(|e| panic!("config: {e}"));
        env
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The command that starts this environment's rpmemd.
    pub fn command(&self) -> String {
        format!(
            "{} -c {}",
            rpmemd_bin().display(),
            self.path("rpmemd.conf").display()
        )
    }

    /// Options for local mode with this environment's rpmemd.
    pub fn options(&self) -> Options {
        Options::builder()
            .launch(Launch::Local)
            .command(self.command())
            .control_timeout(CONTROL_TIMEOUT)
            .data_timeout(DATA_TIMEOUT)
            .build()
    }

    /// Writes pool set `name` with parts of `sizes` bytes (files
    /// `<name>.partN` in the directory); `OPTION NOHDRS` when `nohdrs`.
    /// Returns the part paths.
    pub fn poolset(&self, name: &str, sizes: &[u64], nohdrs: bool) -> Vec<PathBuf> {
        let mut text = String::from("PMEMPOOLSET\n");
        if nohdrs {
            text.push_str("OPTION NOHDRS\n");
        }
        let mut parts = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let p = self.path(&format!("{name}.part{i}"));
            text.push_str(&format!("{size} {}\n", p.display()));
            parts.push(p);
        }
        fs::write(self.poolset_path(name), text).unwrap_or_else(|e| panic!("pool set: {e}"));
        parts
    }

    /// Path of pool set file `name`.
    pub fn poolset_path(&self, name: &str) -> PathBuf {
        self.path("sets").join(name)
    }

    /// Bytes `[offset, offset + len)` of a file.
    pub fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
        let all = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        all.get(start..start + len)
            .unwrap_or_else(|| panic!("{} is shorter than {}", path.display(), start + len))
            .to_vec()
    }

    /// rpmemd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("rpmemd.log")).unwrap_or_default()
    }
}

/// True while process `pid` exists (not yet reaped).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: u32) {
    let pid = libc::pid_t::try_from(pid).unwrap_or_else(|_| panic!("pid {pid}"));
    // SAFETY: sending a signal to a process this test started.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}");
}

/// Waits until `cond` holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// What [`persist_until_killed`] saw.
pub struct KillRun {
    /// Every persist that returned success: `(offset, len, seed)`, in order.
    pub acked: Vec<(u64, u64, u64)>,
    /// The persist that failed: `(offset, len)`.
    pub failed: (u64, u64),
    /// Its error.
    pub err: rpmem::Error,
    /// How long the failing call took.
    pub waited: Duration,
}

/// Persists pattern data on lane 0 of `pool` in a loop (lengths from
/// `len_of(k)`, default and relaxed flags in turn, offsets spread over a
/// pool of `pool_size` bytes), sends SIGKILL to `pid` after `after`, and
/// returns when a persist fails. Panics if persists keep succeeding long
/// after the kill.
pub fn persist_until_killed(
    pool: &rpmem::RemotePool,
    r: &Region,
    pool_size: u64,
    len_of: impl Fn(u64) -> u64 + Sync,
    pid: u32,
    after: Duration,
) -> KillRun {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let mut lane = pool.lane(0).expect("lane");
            let mut acked = Vec::new();
            let mut k = 0u64;
            loop {
                let len = len_of(k);
                let off = (k * 65_536) % (pool_size - len);
                put(r, off, &pattern(len as usize, k));
                let flags = if k.is_multiple_of(2) {
                    0
                } else {
                    rpmem::PERSIST_RELAXED
                };
                let started = Instant::now();
                match lane.persist(off, len, flags) {
                    Ok(()) => acked.push((off, len, k)),
                    Err(err) => {
                        return KillRun {
                            acked,
                            failed: (off, len),
                            err,
                            waited: started.elapsed(),
                        }
                    }
                }
                k += 1;
                assert!(
                    !(stop.load(Ordering::Relaxed) && k > 100_000),
                    "persists keep succeeding after process {pid} was killed"
                );
            }
        });
        std::thread::sleep(after);
        kill9(pid);
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("worker")
    })
}

/// Checks that `got` (the whole pool, read back after a reopen) holds every
/// acknowledged persist of `run`, the later ones winning; the bytes of the
/// failed persist may have reached the target in part and are not checked.
pub fn assert_acked_on_target(got: &[u8], run: &KillRun) {
    let mut expect = vec![0u8; got.len()];
    for (off, len, k) in &run.acked {
        let at = *off as usize;
        expect[at..at + *len as usize].copy_from_slice(&pattern(*len as usize, *k));
    }
    let (f_off, f_len) = run.failed;
    for (off, len, k) in &run.acked {
        for i in *off..off + len {
            if i >= f_off && i < f_off + f_len {
                continue;
            }
            let at = i as usize;
            assert_eq!(
                got[at], expect[at],
                "persist #{k} at {off} (+{len}) was acknowledged but byte {i} is not on the target"
            );
        }
    }
}
