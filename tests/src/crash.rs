//! The crash campaign on the real binaries (`tests/crash_campaign.rs`).
//!
//! Each run is one seed. The seed gives a *plan*: start a session (create
//! the pool, or open one the harness created), then a random mix of
//! persists (sizes 1 B .. 1 MiB, lanes, default / relaxed flags, deep
//! persists), `set_attr`, reads and a close. A child process,
//! `crash_client` (`src/bin/crash_client.rs`), carries the plan out through
//! the library and prints a line before each step (`BEGIN i`) and one after
//! each step that succeeded (`OK i`). The harness picks, from the same seed,
//! a process to kill (rpmemd, the ssh client, or the client itself), a step
//! of the plan and a delay after that step began, and sends SIGKILL then.
//!
//! Afterwards every process of the session must be gone within its
//! deadline, and the pool must hold what was acknowledged: the harness
//! opens it again (local mode) and reads it all back. Every persist that
//! printed `OK` is there byte for byte (a later one wins over an earlier
//! one); the bytes of the one step that began without an `OK` may hold the
//! old or the new bytes. The attributes are those of the last `set_attr`
//! that printed `OK`, or of the one in flight. A run killed during create
//! either opens or fails to open with an error, after which `remove` with
//! `REMOVE_FORCE` must succeed and the pool set must be creatable again.
//!
//! Every wait has a deadline; a wait that passes its deadline is a hang,
//! reported with the seed. `CRASH_SEED=N` replays one run.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rpmem::{remove, Options, PoolAttr, RemotePool, PERSIST_RELAXED, REMOVE_FORCE};

use crate::sshd::{process_name, process_running, Sshd};
use crate::{attr, pattern, region, TestEnv};

const MIB: u64 = 1 << 20;
/// The pool set of every run: two parts with headers.
pub const PARTS: [u64; 2] = [2 * MIB, 2 * MIB];
/// The pool size the client uses: both parts minus the second part's
/// header.
pub const POOL_LEN: u64 = 4 * MIB - 4096;
/// The pool header: persists start above it.
pub const HDR: u64 = 4096;
/// Lanes the client asks for.
pub const NLANES: u32 = 4;
/// The pool set file name inside the run's pool set directory.
pub const POOL_SET: &str = "crash.set";
/// Deadlines of the client's library calls.
pub const CLIENT_CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of the client's data path.
pub const CLIENT_DATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client may take to end after the kill: its own deadlines
/// plus a margin. Longer is a hang.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// How long rpmemd and ssh may take to go away after the client ended.
pub const SESSION_END_DEADLINE: Duration = Duration::from_secs(15);
/// How long a run may take to reach its kill step.
pub const KILL_STEP_DEADLINE: Duration = Duration::from_secs(30);

/// splitmix64: one seed, one stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and a stream number (client and killer draw
    /// from different streams of one seed).
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `RemotePool::create` with the attributes of generation 0.
    Create,
    /// `RemotePool::open` of the pool the harness created.
    Open,
    /// Write `pattern(len, key)` at `off` into the region, then persist it.
    Persist {
        lane: u32,
        off: u64,
        len: u64,
        flags: u32,
        key: u64,
    },
    /// The same with `deep_persist`.
    DeepPersist {
        lane: u32,
        off: u64,
        len: u64,
        key: u64,
    },
    /// The next `count` steps (persists on disjoint ranges and different
    /// lanes) at once, one thread each.
    Burst { count: u8 },
    /// `set_attr` with the attributes of generation `gen`.
    SetAttr { gen: u8 },
    /// Read back a range and compare it with the region.
    Read { lane: u32, off: u64, len: u64 },
    /// `RemotePool::close`.
    Close,
}

impl Op {
    /// The phase of the session this step belongs to (the result table's
    /// rows).
    pub fn phase(&self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Open => "open",
            Op::Persist { .. } | Op::DeepPersist { .. } | Op::Burst { .. } => "persist",
            Op::SetAttr { .. } => "set_attr",
            Op::Read { .. } => "read",
            Op::Close => "close",
        }
    }

    /// The range this step writes to the pool, with its pattern key.
    pub fn write(&self) -> Option<(u64, u64, u64)> {
        match *self {
            Op::Persist { off, len, key, .. } | Op::DeepPersist { off, len, key, .. } => {
                Some((off, len, key))
            }
            _ => None,
        }
    }
}

/// The attributes of generation `gen` of run `seed`: every field differs
/// between generations, `user_flags` is never zero (rpmemd would replace
/// zero flags with its own).
pub fn attr_of(seed: u64, gen: u8) -> PoolAttr {
    let base = 1 + ((seed % 50) as u8) * 4 + gen.wrapping_mul(7) % 40;
    attr(base)
}

/// What a run does: the client's steps.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// The steps; the first is `Create` or `Open`, the last `Close`.
    pub ops: Vec<Op>,
}

/// Persist lengths: tiny, a cache line, unaligned, a page, beyond the
/// inline size, 1 MiB.
const LENS: [u64; 9] = [1, 8, 63, 64, 100, 4096, 65_536 + 17, 300_000, MIB];

impl Plan {
    /// The plan of `seed`.
    pub fn of(seed: u64) -> Plan {
        let mut rng = Rng::new(seed, 1);
        let mut ops = vec![if rng.below(2) == 0 {
            Op::Create
        } else {
            Op::Open
        }];
        let middle = 4 + rng.below(21);
        let mut gen = 0u8;
        let mut seen_attr = false;
        let mut seen_read = false;
        for i in 0..middle {
            let last = i + 1 == middle;
            let roll = rng.below(100);
            let op = if (last && !seen_attr) || (!last && (60..75).contains(&roll)) {
                gen = gen.wrapping_add(1);
                seen_attr = true;
                Op::SetAttr { gen }
            } else if (last && !seen_read) || (!last && roll >= 75) {
                seen_read = true;
                let len = 1 + rng.below(256 * 1024);
                Op::Read {
                    lane: rng.below(u64::from(NLANES)) as u32,
                    off: HDR + rng.below(POOL_LEN - HDR - len + 1),
                    len,
                }
            } else {
                let len = match rng.below(4) {
                    0 => 1 + rng.below(MIB),
                    _ => LENS[rng.below(LENS.len() as u64) as usize],
                };
                let off = HDR + rng.below(POOL_LEN - HDR - len + 1);
                let lane = rng.below(u64::from(NLANES)) as u32;
                let key = (seed << 16) ^ (ops.len() as u64);
                if !last && (6..14).contains(&roll) {
                    // 2 to 4 persists at once, each in its own slice of
                    // the pool, on lanes 0, 1, ...
                    let count = 2 + rng.below(3);
                    ops.push(Op::Burst { count: count as u8 });
                    let slice = (POOL_LEN - HDR) / count;
                    for t in 0..count {
                        let len = len.min(slice).max(1);
                        let off = HDR + t * slice + rng.below(slice - len + 1);
                        let flags = if rng.below(2) == 0 {
                            0
                        } else {
                            PERSIST_RELAXED
                        };
                        ops.push(Op::Persist {
                            lane: t as u32,
                            off,
                            len,
                            flags,
                            key: (seed << 16) ^ (ops.len() as u64),
                        });
                    }
                    continue;
                }
                if roll < 6 {
                    Op::DeepPersist {
                        lane,
                        off,
                        len,
                        key,
                    }
                } else {
                    let flags = if rng.below(2) == 0 {
                        0
                    } else {
                        PERSIST_RELAXED
                    };
                    Op::Persist {
                        lane,
                        off,
                        len,
                        flags,
                        key,
                    }
                }
            };
            ops.push(op);
        }
        // A plan whose last middle step had to be a set_attr may still
        // lack a read.
        if !seen_read {
            ops.push(Op::Read {
                lane: 0,
                off: HDR,
                len: 4096,
            });
        }
        ops.push(Op::Close);
        Plan { seed, ops }
    }

    /// The attributes the pool starts with.
    pub fn initial_attr(&self) -> PoolAttr {
        attr_of(self.seed, 0)
    }
}

/// How a session is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Launch {
    /// rpmemd started by the library (`--launch local`).
    Local,
    /// rpmemd started through the test's OpenSSH server.
    Ssh,
}

impl fmt::Display for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launch::Local => "local",
            Launch::Ssh => "ssh",
        })
    }
}

/// Who gets the SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Victim {
    /// rpmemd.
    Rpmemd,
    /// The ssh client the library started.
    Ssh,
    /// The client process.
    Client,
}

impl fmt::Display for Victim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Victim::Rpmemd => "rpmemd",
            Victim::Ssh => "ssh client",
            Victim::Client => "client",
        })
    }
}

/// The killer's choices for a run.
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    /// How the session is started.
    pub launch: Launch,
    /// Who is killed.
    pub victim: Victim,
    /// The step during which the kill is sent: after its `BEGIN` line ...
    pub step: usize,
    /// ... and this long after it.
    pub delay: Duration,
}

impl Kill {
    /// The killer's choices for `plan`; `ssh` when runs over ssh are
    /// possible.
    pub fn of(plan: &Plan, ssh: bool) -> Kill {
        let mut rng = Rng::new(plan.seed, 2);
        let launch = if ssh && rng.below(3) == 0 {
            Launch::Ssh
        } else {
            Launch::Local
        };
        let victims: &[Victim] = match launch {
            Launch::Local => &[Victim::Rpmemd, Victim::Client],
            Launch::Ssh => &[Victim::Rpmemd, Victim::Ssh, Victim::Client],
        };
        let victim = victims[rng.below(victims.len() as u64) as usize];
        // A phase first (each about as often), then a step of that phase.
        let phases = ["start", "persist", "set_attr", "read", "close"];
        let phase = phases[rng.below(phases.len() as u64) as usize];
        let steps: Vec<usize> = plan
            .ops
            .iter()
            .enumerate()
            .filter(|(i, op)| match phase {
                "start" => *i == 0,
                p => op.phase() == p,
            })
            .map(|(i, _)| i)
            .collect();
        let step = if steps.is_empty() {
            0
        } else {
            steps[rng.below(steps.len() as u64) as usize]
        };
        // Zero a quarter of the time, else up to 3 ms for small steps; up
        // to 40 ms for the start (ssh takes that long to connect).
        let max_us = if step == 0 { 40_000 } else { 3_000 };
        let delay = match rng.below(4) {
            0 => Duration::ZERO,
            _ => Duration::from_micros(rng.below(max_us)),
        };
        Kill {
            launch,
            victim,
            step,
            delay,
        }
    }
}

/// How a run ended when nothing was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fine {
    /// The pool opened and held everything acknowledged.
    Reopened,
    /// Killed during create: the pool opened afterwards.
    CreateKilledOpens,
    /// Killed during create: open refused (the message), remove worked
    /// and the pool set was created again.
    CreateKilledRemoved(String),
}

/// What was wrong with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrong {
    /// A wait passed its deadline.
    Hang(String),
    /// An acknowledged persist or attribute is not on the target.
    Lost(String),
    /// The pool did not open again.
    Reopen(String),
    /// Anything else (a panic of the client, a failed removal, a read that
    /// returned other bytes).
    Other(String),
}

impl fmt::Display for Wrong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wrong::Hang(m) => write!(f, "hang: {m}"),
            Wrong::Lost(m) => write!(f, "loss: {m}"),
            Wrong::Reopen(m) => write!(f, "reopen failed: {m}"),
            Wrong::Other(m) => write!(f, "failure: {m}"),
        }
    }
}

/// One run's record.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// What the killer chose.
    pub kill: Kill,
    /// The phase the session was in when the signal was sent (the last
    /// step that had begun), or `None` when the client had ended first.
    pub phase_at_kill: Option<&'static str>,
    /// Whether the victim existed at the moment of the kill.
    pub killed: bool,
    /// From the kill to the end of the client.
    pub client_end: Option<Duration>,
    /// Persists acknowledged before the kill.
    pub acked: usize,
    /// Steps begun and never acknowledged (more than one: a burst was cut).
    pub unacked: usize,
    /// The verdict.
    pub result: Result<Fine, Wrong>,
}

/// What the client printed, step by step.
#[derive(Debug, Default)]
struct Seen {
    began: Vec<usize>,
    ok: Vec<usize>,
    errors: Vec<String>,
    mismatches: Vec<String>,
}

impl Seen {
    fn take(&mut self, line: &str) {
        let mut words = line.splitn(3, ' ');
        let word = words.next().unwrap_or("");
        let index = words.next().and_then(|w| w.parse::<usize>().ok());
        match (word, index) {
            ("BEGIN", Some(i)) => self.began.push(i),
            ("OK", Some(i)) => self.ok.push(i),
            ("ERR", _) => self.errors.push(line.to_owned()),
            ("MISMATCH", _) => self.mismatches.push(line.to_owned()),
            _ => {}
        }
    }

    fn last_begun(&self) -> Option<usize> {
        self.began.last().copied()
    }
}

/// The processes of a session: `name` (`/proc/<pid>/comm`) with `marker`
/// (the run's configuration path) in their command line, not zombies.
pub fn session_processes(name: &str, marker: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_name(*pid).as_deref() == Some(name))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .filter(|pid| process_running(*pid))
        .collect()
}

fn sigkill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: a signal to a process of this run's session (found by
        // its configuration path); a vanished process yields ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The campaign's shared parts: the client program and, when runs over
/// ssh are possible, the OpenSSH server.
pub struct Campaign {
    client: PathBuf,
    sshd: Option<Sshd>,
}

impl Campaign {
    /// A campaign with the `crash_client` program at `client`; `sshd` for
    /// runs over ssh (a third of the runs when present).
    pub fn new(client: &Path, sshd: Option<Sshd>) -> Campaign {
        Campaign {
            client: client.to_path_buf(),
            sshd,
        }
    }

    /// Runs seed `seed`.
    pub fn run(&self, seed: u64) -> Outcome {
        let plan = Plan::of(seed);
        let kill = Kill::of(&plan, self.sshd.is_some());
        let env = TestEnv::new();
        let mut outcome = Outcome {
            seed,
            kill,
            phase_at_kill: None,
            killed: false,
            client_end: None,
            acked: 0,
            unacked: 0,
            result: Ok(Fine::Reopened),
        };
        outcome.result = self.run_in(&env, &plan, &mut outcome);
        if outcome.result.is_err() {
            // Leave nothing running for the next run.
            let marker = env.path("rpmemd.conf").display().to_string();
            for name in ["rpmemd", "ssh"] {
                for pid in session_processes(name, &marker) {
                    sigkill(pid);
                }
            }
        }
        outcome
    }

    fn run_in(&self, env: &TestEnv, plan: &Plan, outcome: &mut Outcome) -> Result<Fine, Wrong> {
        let kill = outcome.kill;
        env.poolset(POOL_SET, &PARTS, false);
        let local = env.options();
        if plan.ops.first() == Some(&Op::Open) {
            let pool = RemotePool::create(
                "localhost",
                POOL_SET,
                region(POOL_LEN),
                1,
                Some(&plan.initial_attr()),
                &local,
            )
            .map_err(|e| Wrong::Other(format!("the harness's create failed: {e}")))?;
            pool.close()
                .map_err(|e| Wrong::Other(format!("the harness's close failed: {e}")))?;
        }
        let marker = env.path("rpmemd.conf").display().to_string();

        let mut cmd = Command::new(&self.client);
        cmd.arg(plan.seed.to_string())
            .env("RPMEM_CMD", env.command())
            .env("CRASH_POOLSET", POOL_SET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                fs::File::create(env.path("client.err"))
                    .map_err(|e| Wrong::Other(format!("client.err: {e}")))?,
            ));
        match (kill.launch, &self.sshd) {
            (Launch::Ssh, Some(sshd)) => {
                cmd.env("RPMEM_LAUNCH", "ssh")
                    .env("RPMEM_SSH", sshd.ssh_wrapper())
                    .env("CRASH_TARGET", sshd.target());
            }
            _ => {
                cmd.env("RPMEM_LAUNCH", "local")
                    .env("CRASH_TARGET", "localhost");
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Wrong::Other(format!("cannot start {}: {e}", self.client.display())))?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let mut seen = Seen::default();
        let ended = self.drive(&mut child, &rx, &mut seen, &marker, plan, outcome);
        let status = match ended {
            Ok(status) => status,
            Err(w) => {
                sigkill(child.id());
                let _ = child.wait();
                let _ = reader.join();
                return Err(with_err(w, env));
            }
        };
        let _ = reader.join();
        for line in rx.try_iter() {
            seen.take(&line);
        }
        outcome.acked = seen
            .ok
            .iter()
            .filter(|i| plan.ops.get(**i).and_then(Op::write).is_some())
            .count();
        outcome.unacked = seen.began.iter().filter(|i| !seen.ok.contains(i)).count();
        if let Some(m) = seen.mismatches.first() {
            return Err(Wrong::Other(format!(
                "the client read back other bytes: {m}"
            )));
        }
        // The client ends by itself unless it was the victim: with 0, or
        // with 3 after a failed step.
        use std::os::unix::process::ExitStatusExt;
        let by_us = outcome.killed && kill.victim == Victim::Client;
        match (status.code(), status.signal()) {
            (Some(0), _) => {}
            (Some(3), _) if !seen.errors.is_empty() => {}
            (_, Some(9)) if by_us => {}
            _ => {
                return Err(with_err(
                    Wrong::Other(format!(
                        "the client ended with {status} (errors: {:?})",
                        seen.errors
                    )),
                    env,
                ))
            }
        }
        if !outcome.killed && seen.ok.last() != Some(&(plan.ops.len() - 1)) {
            return Err(with_err(
                Wrong::Other(format!(
                    "nothing was killed, yet the client did not finish: {:?}",
                    seen.errors
                )),
                env,
            ));
        }

        // Every process of the session ends by itself.
        let end = Instant::now() + SESSION_END_DEADLINE;
        loop {
            let left: Vec<u32> = ["rpmemd", "ssh"]
                .iter()
                .flat_map(|n| session_processes(n, &marker))
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= end {
                return Err(Wrong::Hang(format!(
                    "processes {left:?} of the session still run {SESSION_END_DEADLINE:?} after \
                     the client ended"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }

        // rpmemd's stderr reaches the client's error messages; its log must
        // not show a panic either.
        let client_err = fs::read_to_string(env.path("client.err")).unwrap_or_default();
        for (what, text) in [
            ("rpmemd's log", env.log()),
            ("the client's stderr", client_err),
        ] {
            if let Some(line) = text.lines().find(|l| l.contains("panicked")) {
                return Err(Wrong::Other(format!("a panic in {what}: {line}")));
            }
        }
        if let Some(line) = seen.errors.iter().find(|l| l.contains("panicked")) {
            return Err(Wrong::Other(format!(
                "a panic reported to the client: {line}"
            )));
        }

        let created = plan.ops.first() == Some(&Op::Open) || seen.ok.contains(&0);
        if created {
            check_pool(env, plan, &seen, &local).map(|()| Fine::Reopened)
        } else {
            undo_create(&local, plan)
        }
    }

    /// Reads the client's lines, kills at the chosen moment, and waits for
    /// the client to end; every wait with its deadline.
    fn drive(
        &self,
        child: &mut Child,
        rx: &mpsc::Receiver<String>,
        seen: &mut Seen,
        marker: &str,
        plan: &Plan,
        outcome: &mut Outcome,
    ) -> Result<std::process::ExitStatus, Wrong> {
        let kill = outcome.kill;
        let started = Instant::now();
        // Phase 1: until the kill step begins (or the client ends).
        let mut at_step = false;
        let mut kill_sent = None;
        while !at_step {
            let left = KILL_STEP_DEADLINE.saturating_sub(started.elapsed());
            match rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    seen.take(&line);
                    at_step = seen.began.contains(&kill.step);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(Wrong::Hang(format!(
                        "step {} did not begin within {KILL_STEP_DEADLINE:?} (steps begun: {:?}, \
                         done: {:?})",
                        kill.step, seen.began, seen.ok
                    )))
                }
            }
        }
        if at_step {
            let victims = |child: &mut Child| match kill.victim {
                Victim::Client => match child.try_wait() {
                    Ok(None) => vec![child.id()],
                    _ => Vec::new(),
                },
                Victim::Rpmemd => session_processes("rpmemd", marker),
                Victim::Ssh => session_processes("ssh", marker),
            };
            // rpmemd and ssh come to be during the first step: wait until
            // the victim exists (or the step is over), then the delay.
            let until = Instant::now() + KILL_STEP_DEADLINE;
            while victims(child).is_empty() && Instant::now() < until {
                for line in rx.try_iter() {
                    seen.take(&line);
                }
                if seen.ok.contains(&kill.step) || !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if !kill.delay.is_zero() {
                std::thread::sleep(kill.delay);
            }
            for line in rx.try_iter() {
                seen.take(&line);
            }
            let pids = victims(child);
            // The phase: the step begun last (done or not).
            outcome.phase_at_kill = seen
                .last_begun()
                .and_then(|i| plan.ops.get(i))
                .map(Op::phase);
            for pid in &pids {
                sigkill(*pid);
            }
            outcome.killed = !pids.is_empty();
            kill_sent = Some(Instant::now());
        }
        // Phase 2: the client ends.
        let end = Instant::now() + CLIENT_DEADLINE;
        loop {
            for line in rx.try_iter() {
                seen.take(&line);
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    outcome.client_end = kill_sent.map(|t: Instant| t.elapsed());
                    return Ok(status);
                }
                Ok(None) => {}
                Err(e) => return Err(Wrong::Other(format!("waiting for the client: {e}"))),
            }
            if Instant::now() >= end {
                return Err(Wrong::Hang(format!(
                    "the client still runs {CLIENT_DEADLINE:?} after the kill of the {} (steps \
                     begun: {:?}, done: {:?})",
                    kill.victim, seen.began, seen.ok
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn with_err(w: Wrong, env: &TestEnv) -> Wrong {
    let err = fs::read_to_string(env.path("client.err")).unwrap_or_default();
    let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
    match w {
        Wrong::Other(m) if !tail.is_empty() => Wrong::Other(format!("{m}; client stderr: {tail}")),
        Wrong::Hang(m) if !tail.is_empty() => Wrong::Hang(format!("{m}; client stderr: {tail}")),
        w => w,
    }
}

/// Opens the pool again and compares it with what was acknowledged.
fn check_pool(env: &TestEnv, plan: &Plan, seen: &Seen, opts: &Options) -> Result<(), Wrong> {
    let pool = RemotePool::open("localhost", POOL_SET, region(POOL_LEN), 1, opts)
        .map_err(|e| Wrong::Reopen(format!("{e}\nrpmemd log tail: {}", log_tail(env))))?;
    let got_attr = pool.attr().copied();
    pool.close()
        .map_err(|e| Wrong::Reopen(format!("close after the reopen: {e}")))?;
    // The data straight from the part files (what is on disk, and no 4 MiB
    // through the sealed data path of a debug build): part 0 is the pool's
    // first 2 MiB, part 1 from its file offset 4096 (its header) the rest.
    let mut got = Vec::with_capacity(POOL_LEN as usize);
    for (i, size) in PARTS.iter().enumerate() {
        let path = env.path(&format!("{POOL_SET}.part{i}"));
        let bytes =
            fs::read(&path).map_err(|e| Wrong::Reopen(format!("read {}: {e}", path.display())))?;
        let from = if i == 0 { 0 } else { HDR as usize };
        let part = bytes
            .get(from..*size as usize)
            .ok_or_else(|| Wrong::Reopen(format!("{} is {} bytes", path.display(), bytes.len())))?;
        got.extend_from_slice(part);
    }
    if got.len() != POOL_LEN as usize {
        return Err(Wrong::Other(format!(
            "the parts hold {} bytes of pool, not {POOL_LEN}",
            got.len()
        )));
    }

    // The steps in flight: begun, not acknowledged (one, or the persists
    // of a burst).
    let in_flight: Vec<usize> = seen
        .began
        .iter()
        .copied()
        .filter(|i| !seen.ok.contains(i))
        .collect();

    // Attributes: the last acknowledged generation, or the one in flight.
    let mut acked_gen = 0u8;
    for i in &seen.ok {
        if let Some(Op::SetAttr { gen }) = plan.ops.get(*i) {
            acked_gen = *gen;
        }
    }
    let mut allowed = vec![attr_of(plan.seed, acked_gen)];
    for i in &in_flight {
        if let Some(Op::SetAttr { gen }) = plan.ops.get(*i) {
            allowed.push(attr_of(plan.seed, *gen));
        }
    }
    match got_attr {
        Some(a) if allowed.contains(&a) => {}
        other => {
            return Err(Wrong::Lost(format!(
                "the pool's attributes are {other:?}, expected generation {acked_gen}{}",
                if allowed.len() > 1 {
                    " or the one in flight"
                } else {
                    ""
                }
            )))
        }
    }

    // Data: acknowledged persists in order, the later winning.
    let mut expect = vec![0u8; POOL_LEN as usize];
    for i in &seen.ok {
        if let Some((off, len, key)) = plan.ops.get(*i).and_then(Op::write) {
            expect[off as usize..(off + len) as usize].copy_from_slice(&pattern(len as usize, key));
        }
    }
    let flights: Vec<(u64, u64, Vec<u8>)> = in_flight
        .iter()
        .filter_map(|i| plan.ops.get(*i).and_then(Op::write))
        .map(|(off, len, key)| (off, len, pattern(len as usize, key)))
        .collect();
    for at in HDR as usize..POOL_LEN as usize {
        if got[at] == expect[at] {
            continue;
        }
        let in_a_flight = flights.iter().any(|(off, len, bytes)| {
            let (off, len) = (*off as usize, *len as usize);
            at >= off && at < off + len && got[at] == bytes[at - off]
        });
        if in_a_flight {
            continue;
        }
        let writer = seen
            .ok
            .iter()
            .rev()
            .find(|i| {
                plan.ops
                    .get(**i)
                    .and_then(Op::write)
                    .is_some_and(|(off, len, _)| (at as u64) >= off && (at as u64) < off + len)
            })
            .map(|i| format!("step {i} ({:?})", plan.ops[*i]))
            .unwrap_or_else(|| "no acknowledged step (zero expected)".to_owned());
        return Err(Wrong::Lost(format!(
            "byte {at} is {:#04x}, expected {:#04x}: written by {writer}",
            got[at], expect[at]
        )));
    }
    Ok(())
}

/// Killed during create: the pool opens, or it does not and `remove
/// --force` cleans it up so that it can be created again.
fn undo_create(opts: &Options, plan: &Plan) -> Result<Fine, Wrong> {
    match RemotePool::open("localhost", POOL_SET, region(POOL_LEN), 1, opts) {
        Ok(pool) => {
            // A pool that opens has whole headers: the client's.
            if pool.attr() != Some(&plan.initial_attr()) {
                return Err(Wrong::Lost(format!(
                    "killed during create, the pool opens with attributes {:?}, not the \
                     client's",
                    pool.attr()
                )));
            }
            pool.close()
                .map_err(|e| Wrong::Reopen(format!("close of the half-created pool: {e}")))?;
            Ok(Fine::CreateKilledOpens)
        }
        Err(open_err) => {
            let msg = open_err.to_string();
            if msg.trim().is_empty() {
                return Err(Wrong::Other(
                    "open of a half-created pool failed with an empty message".to_owned(),
                ));
            }
            remove("localhost", POOL_SET, REMOVE_FORCE, opts).map_err(|e| {
                Wrong::Other(format!(
                    "open of the half-created pool failed ({msg}) and so did remove --force: {e}"
                ))
            })?;
            let pool = RemotePool::create(
                "localhost",
                POOL_SET,
                region(POOL_LEN),
                1,
                Some(&attr_of(0, 0)),
                opts,
            )
            .map_err(|e| {
                Wrong::Other(format!(
                    "create after remove --force of a half-created pool: {e}"
                ))
            })?;
            pool.close()
                .map_err(|e| Wrong::Other(format!("close after the re-create: {e}")))?;
            Ok(Fine::CreateKilledRemoved(msg))
        }
    }
}

fn log_tail(env: &TestEnv) -> String {
    let log = env.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// The result table: one row per launch, victim and phase.
#[derive(Debug, Default)]
pub struct Table {
    rows: BTreeMap<(Launch, Victim, &'static str), Row>,
}

/// One row of [`Table`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Row {
    /// Runs.
    pub runs: u32,
    /// Runs in which the victim existed at the kill (the others ended
    /// before it).
    pub killed: u32,
    /// Acknowledged persists checked.
    pub acked: u64,
    /// Hangs.
    pub hangs: u32,
    /// Losses.
    pub losses: u32,
    /// Reopen failures.
    pub reopen_failures: u32,
    /// Other failures.
    pub other: u32,
    /// Killed during create, then refused to open and removed.
    pub removed: u32,
    /// The longest time from a kill to the end of the client.
    pub slowest_end: Duration,
    /// Runs that ended with two or more persists of a burst unacknowledged.
    pub cut_bursts: u32,
}

impl Table {
    /// Adds a run.
    pub fn add(&mut self, o: &Outcome) {
        let phase = o.phase_at_kill.unwrap_or("after the end");
        let row = self
            .rows
            .entry((o.kill.launch, o.kill.victim, phase))
            .or_default();
        row.runs += 1;
        row.killed += u32::from(o.killed);
        row.acked += o.acked as u64;
        row.slowest_end = row.slowest_end.max(o.client_end.unwrap_or_default());
        row.cut_bursts += u32::from(o.unacked >= 2);
        match &o.result {
            Ok(Fine::CreateKilledRemoved(_)) => row.removed += 1,
            Ok(_) => {}
            Err(Wrong::Hang(_)) => row.hangs += 1,
            Err(Wrong::Lost(_)) => row.losses += 1,
            Err(Wrong::Reopen(_)) => row.reopen_failures += 1,
            Err(Wrong::Other(_)) => row.other += 1,
        }
    }

    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| launch | killed | phase | runs | victim alive at kill | acked persists checked | hangs | losses | reopen failures | other failures | create undone by remove | slowest client end after the kill | cut with 2+ persists in flight |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut total = Row::default();
        for ((launch, victim, phase), r) in &self.rows {
            s.push_str(&format!(
                "| {launch} | {victim} | {phase} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms | {} |\n",
                r.runs,
                r.killed,
                r.acked,
                r.hangs,
                r.losses,
                r.reopen_failures,
                r.other,
                r.removed,
                r.slowest_end.as_millis(),
                r.cut_bursts
            ));
            total.runs += r.runs;
            total.killed += r.killed;
            total.acked += r.acked;
            total.hangs += r.hangs;
            total.losses += r.losses;
            total.reopen_failures += r.reopen_failures;
            total.other += r.other;
            total.removed += r.removed;
            total.slowest_end = total.slowest_end.max(r.slowest_end);
            total.cut_bursts += r.cut_bursts;
        }
        s.push_str(&format!(
            "| **all** | | | {} | {} | {} | {} | {} | {} | {} | {} | {} ms | {} |\n",
            total.runs,
            total.killed,
            total.acked,
            total.hangs,
            total.losses,
            total.reopen_failures,
            total.other,
            total.removed,
            total.slowest_end.as_millis(),
            total.cut_bursts
        ));
        s
    }
}
