//! The crash campaign on the real binaries (`rpmem_e2e::crash` describes a
//! run): many seeded sessions, each with a SIGKILL of rpmemd, the ssh client
//! or the client at a random moment of create, open, set_attr, persist, read
//! or close; afterwards nothing may hang, every acknowledged persist and
//! attribute must be on the target, and every pool must open again (or,
//! killed during create, be removable and creatable again).
//!
//! `CRASH_RUNS=N` runs N seeds (default 32, but no new run starts after
//! 40 s once 8 have run; `CRASH_SECONDS` sets that budget), from
//! `CRASH_FIRST_SEED` (default: from the clock, printed);
//! `CRASH_SEED=S` replays seed S alone. One run in three goes through the
//! test's own OpenSSH server unless `RPMEM_SKIP_SSH_TESTS=1`. The result
//! table is printed on stderr (`--nocapture` to see it on success);
//! `docs/testing.md` has the figures of a 1000-run campaign.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rpmem_e2e::crash::{Campaign, Fine, Kill, Plan, Table};
use rpmem_e2e::sshd::Sshd;

/// The CI campaign's time budget (no new run starts after it) ...
const DEFAULT_BUDGET: Duration = Duration::from_secs(40);
/// ... and the runs it makes however long they take.
const MIN_RUNS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// `msg` with the run's temporary directory replaced by `<dir>`.
fn without_dir(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(at) = rest.find("/tmp/.tmp") {
        out.push_str(&rest[..at]);
        out.push_str("<dir>");
        rest = &rest[at + "/tmp/.tmp".len()..];
        let end = rest.find('/').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn crash_campaign() {
    let (first, runs) = match env_u64("CRASH_SEED") {
        Some(seed) => (seed, 1),
        None => {
            let first = env_u64("CRASH_FIRST_SEED").unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() % 1_000_000 * 1000)
                    .unwrap_or(0)
            });
            (first, env_u64("CRASH_RUNS").unwrap_or(32))
        }
    };
    // Without CRASH_RUNS (CI), no new run starts after the time budget
    // (at least MIN_RUNS run): a debug build's sealed data path is slow on
    // a loaded machine.
    let budget = match (env_u64("CRASH_SECONDS"), env_u64("CRASH_RUNS")) {
        (Some(secs), _) => Some(Duration::from_secs(secs)),
        (None, None) if runs > 1 => Some(DEFAULT_BUDGET),
        _ => None,
    };
    eprintln!(
        "crash campaign: seeds {first}..{} (CRASH_SEED=<seed> replays one)",
        first + runs
    );
    let started = Instant::now();
    let campaign = Campaign::new(Path::new(env!("CARGO_BIN_EXE_crash_client")), Sshd::start());
    let mut table = Table::default();
    let mut failures = Vec::new();
    let mut fine_removed = 0;
    let mut refusals = std::collections::BTreeMap::new();
    let mut done = 0;
    for seed in first..first + runs {
        if done >= MIN_RUNS && budget.is_some_and(|b| started.elapsed() >= b) {
            eprintln!(
                "time budget of {:?} spent: stopping after {done} of {runs} runs \
                 (CRASH_RUNS=N runs all N)",
                budget.unwrap_or_default()
            );
            break;
        }
        done += 1;
        let o = campaign.run(seed);
        table.add(&o);
        match &o.result {
            Ok(Fine::CreateKilledRemoved(msg)) => {
                fine_removed += 1;
                if fine_removed <= 3 {
                    eprintln!("seed {seed}: killed during create, open said: {msg}");
                }
                *refusals.entry(without_dir(msg)).or_insert(0u32) += 1;
            }
            Ok(_) => {}
            Err(w) => {
                eprintln!(
                    "seed {seed} FAILED ({} killed in {}, plan {:?}, kill {:?}): {w}",
                    o.kill.victim,
                    o.phase_at_kill.unwrap_or("after the end"),
                    Plan::of(seed).ops,
                    Kill::of(&Plan::of(seed), true)
                );
                failures.push((seed, w.to_string()));
            }
        }
    }
    eprintln!(
        "{done} runs in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        table.markdown()
    );
    for (msg, n) in &refusals {
        eprintln!("killed during create, then open refused ({n} runs): {msg}");
    }
    assert!(
        failures.is_empty(),
        "{} of {done} runs failed; replay one with CRASH_SEED=<seed>: {failures:#?}",
        failures.len()
    );
}

#[test]
fn plans_reach_every_phase() {
    // The killer's choices over 300 seeds reach every phase and victim, so
    // a campaign of a few dozen runs covers them all.
    let mut phases = std::collections::BTreeSet::new();
    let mut victims = std::collections::BTreeSet::new();
    let mut bursts = 0;
    for seed in 0..300 {
        let plan = Plan::of(seed);
        assert!(matches!(
            plan.ops.first(),
            Some(rpmem_e2e::crash::Op::Create | rpmem_e2e::crash::Op::Open)
        ));
        assert_eq!(plan.ops.last(), Some(&rpmem_e2e::crash::Op::Close));
        let kill = Kill::of(&plan, true);
        phases.insert(plan.ops[kill.step].phase());
        victims.insert(kill.victim);
        // The same seed, the same plan.
        assert_eq!(Plan::of(seed).ops, plan.ops);
        // The persists of a burst follow it, on disjoint ranges.
        for (i, op) in plan.ops.iter().enumerate() {
            if let rpmem_e2e::crash::Op::Burst { count } = op {
                bursts += 1;
                let subs = &plan.ops[i + 1..=i + usize::from(*count)];
                let ranges: Vec<(u64, u64, u64)> =
                    subs.iter().map(|o| o.write().expect("a persist")).collect();
                for (a, ra) in ranges.iter().enumerate() {
                    for rb in &ranges[a + 1..] {
                        assert!(
                            ra.0 + ra.1 <= rb.0 || rb.0 + rb.1 <= ra.0,
                            "seed {seed}: burst ranges overlap: {ranges:?}"
                        );
                    }
                }
            }
        }
    }
    for p in ["create", "open", "persist", "set_attr", "read", "close"] {
        assert!(phases.contains(p), "no kill during {p}: {phases:?}");
    }
    assert_eq!(victims.len(), 3, "{victims:?}");
    assert!(bursts > 100, "{bursts} bursts in 300 plans");
}
