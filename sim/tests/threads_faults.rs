//! `sim::app` with several workload threads (overlapping calls on several
//! lanes, interleaved from the seed) and with faults other than power
//! failure (the target process killed, a lane's connection reset).

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};

use sim::app::{Call, Fault, FaultAt, Replica, SimCallError, SimLane, Simulation};
use sim::platform::Config;

type Res = Result<(), Box<dyn Error>>;

fn word(image: &[u8], at: u64) -> u64 {
    let at = usize::try_from(at).unwrap();
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

fn plain_durable() -> Vec<Config> {
    handoff::configs()
}

#[allow(dead_code)]
#[path = "../examples/handoff.rs"]
mod handoff;

/// Publishing what another thread has written but not yet made durable is
/// caught only because the two threads' calls overlap; publishing after
/// the other thread's persist returned passes. Same seed, same failure.
/// (`sim/examples/handoff.rs`.)
#[test]
fn a_thread_publishing_another_threads_unpersisted_record_is_caught() {
    let good = handoff::simulation(false, 1..31).run();
    assert!(good.passed(), "{good}");
    let bad = handoff::simulation(true, 1..31);
    let report = bad.run();
    let f = report.failure.clone().expect("caught");
    assert!(f.reason.contains("flag 1 published"), "{f}");
    // Thread 1 wrote the flag while thread 0's record persist had not
    // returned (it never returned before this crash: a returned one makes
    // the record durable).
    assert!(
        f.history
            .iter()
            .zip(&f.history_lanes)
            .any(|(c, &l)| l == 1 && matches!(c, Call::Write { offset: 4096, .. })),
        "{f}"
    );
    assert!(
        !f.history
            .iter()
            .any(|c| matches!(c, Call::Persist { offset: 4160, .. })),
        "{f}"
    );
    let replay = bad.run_one(f.seed, f.config);
    assert_eq!(replay.failure.as_ref(), Some(&f), "the seed replays it");
    // One thread cannot show it: its calls never overlap its own.
    let one = Simulation::new(
        |r: &mut SimLane<'_>| -> Res {
            handoff::produce(r)?;
            assert!(handoff::publish(r, true)?);
            Ok(())
        },
        |image: &[u8], history: &[Call]| handoff::recover(image, history, 4096),
    )
    .configs(handoff::configs())
    .seeds(1..31)
    .run();
    assert!(one.passed(), "{one}");
}

/// The interleaving of threads is drawn from the seed: the same seed gives
/// the same trace, seeds differ in the order in which the threads' calls
/// return, and calls of two threads are in flight at the same time.
#[test]
fn threads_interleave_from_the_seed_and_their_calls_overlap() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let d = r.data_start();
        let t = u64::from(r.thread());
        for n in 0..4u64 {
            let at = d + 512 * t + 64 * n;
            r.write(at, &[u8::try_from(t * 16 + n + 1).unwrap(); 64])?;
            r.persist(at, 64, 0)?;
        }
        Ok(())
    };
    let sim = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
        .threads(3)
        .verbose(true);
    let config = plain_durable()[0];
    let mut orders = std::collections::BTreeSet::new();
    let mut overlapped = 0;
    for seed in 1..21 {
        let a = sim.run_one(seed, config);
        let b = sim.run_one(seed, config);
        assert!(a.errors.is_empty(), "{:?}", a.errors);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} replays");
        assert_eq!(a.log, b.log);
        assert_eq!(a.calls, 3 * 8);
        // The order in which calls returned, by lane.
        let order: Vec<char> = a
            .log
            .iter()
            .filter(|l| l.contains("returns success"))
            .map(|l| {
                l.split("lane ")
                    .nth(1)
                    .and_then(|s| s.chars().next())
                    .unwrap()
            })
            .collect();
        orders.insert(order);
        // Two persists in flight at once: a call starts while another
        // lane's call has not returned.
        let mut open = std::collections::BTreeSet::new();
        let mut both = false;
        for line in &a.log {
            let lane = line.split("lane ").nth(1).and_then(|s| s.chars().next());
            if line.contains(": call persist") {
                open.insert(lane);
                both |= open.len() > 1;
            } else if line.contains("returns success") {
                open.remove(&lane);
            }
        }
        overlapped += u32::from(both);
    }
    assert!(
        orders.len() >= 10,
        "only {} orders in 20 seeds",
        orders.len()
    );
    assert!(
        overlapped >= 10,
        "calls overlapped in {overlapped} of 20 seeds"
    );
}

/// Two threads on one lane: the second's call while the first's is in
/// flight is refused with LaneBusy (a lane is one thread's at a time).
#[test]
fn a_lane_in_use_by_another_thread_is_busy() {
    let busy = AtomicU64::new(0);
    let workload = |r: &mut SimLane<'_>| -> Res {
        let d = r.data_start();
        let mut l0 = r.lane(0)?;
        for _ in 0..20 {
            match l0.persist(d, 64, 0) {
                Ok(()) => {}
                Err(SimCallError::LaneBusy { lane: 0 }) => {
                    busy.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    };
    let report = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
        .threads(2)
        .seeds(1..4)
        .run();
    assert!(report.passed(), "{report}");
    assert!(busy.load(Ordering::Relaxed) > 0);
}

/// An append-only log: records of 24 bytes, then the count, 8-byte
/// atomic. Correct on every platform where plain persists are durable.
fn log_workload(r: &mut SimLane<'_>) -> Res {
    let d = r.data_start();
    for n in 0..4u64 {
        let at = d + 64 + 24 * n;
        let rec: Vec<u8> = [n + 1, !(n + 1), 0x5a5a]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        r.write(at, &rec)?;
        r.persist(at, 24, 0)?;
        r.write(d, &(n + 1).to_le_bytes())?;
        r.persist(d, 8, 0)?;
    }
    Ok(())
}

fn log_recover(image: &[u8], history: &[Call]) -> Result<(), String> {
    let count = word(image, 4096);
    if count > 4 {
        return Err(format!("count {count}"));
    }
    for n in 0..count {
        let at = 4096 + 64 + 24 * n;
        if word(image, at) != n + 1 || word(image, at + 8) != !(n + 1) {
            return Err(format!("count {count}, record {n} missing"));
        }
    }
    let published = history
        .iter()
        .filter(|c| matches!(c, Call::Persist { offset: 4096, .. }))
        .count() as u64;
    if count < published {
        return Err(format!("count {count}, but {published} appends returned"));
    }
    Ok(())
}

/// The log passes with the target process killed and with a lane reset at
/// seeded steps; the workload sees its calls fail (which is not a run
/// error); the faults fire.
#[test]
fn the_log_survives_a_killed_target_and_a_reset_lane() {
    let report = Simulation::new(log_workload, log_recover)
        .configs(plain_durable())
        .faults(vec![Fault::TargetKilled, Fault::LaneReset])
        .seeds(1..16)
        .run();
    assert!(report.passed(), "{report}");
    let configs = plain_durable().len() as u64;
    assert_eq!(report.runs, 15 * configs * 3);
    assert_eq!(report.faulted_runs, 15 * configs * 2);
}

/// A fault at a given step: the call in flight fails with Failed, the
/// workload's error after it is not a run error, the calls that returned
/// before stay in the history; after a kill the surviving host's memory is
/// judged (one more image than the crash points give).
#[test]
fn a_fault_fails_the_call_in_flight_and_is_replayed() {
    let failed = AtomicU64::new(0);
    let workload = |r: &mut SimLane<'_>| -> Res {
        log_workload(r).inspect_err(|e| {
            if e.downcast_ref::<SimCallError>()
                .is_some_and(|e| matches!(e, SimCallError::Failed { .. }))
            {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let sim = Simulation::new(workload, log_recover);
    let config = plain_durable()[0];
    let plain = sim.run_one(1, config);
    assert!(plain.errors.is_empty(), "{:?}", plain.errors);
    for fault in [Fault::TargetKilled, Fault::LaneReset] {
        let at = FaultAt {
            fault,
            step: plain.steps / 2,
            lane: 0,
        };
        let before = failed.load(Ordering::Relaxed);
        let a = sim.run_with_fault(1, config, at);
        let b = sim.run_with_fault(1, config, at);
        assert!(a.errors.is_empty(), "{fault}: {:?}", a.errors);
        assert!(a.failure.is_none());
        assert!(a.fault_fired, "{fault}");
        assert_eq!(a.trace_hash, b.trace_hash, "{fault} replays");
        assert_eq!(failed.load(Ordering::Relaxed), before + 2, "{fault}");
        assert!(a.calls < plain.calls, "{fault}: {} calls", a.calls);
        assert!(a.calls > 0);
    }
    // Images judged after the workload saw its call fail (at least the
    // surviving host's memory): a failure there names the fault.
    let saw = std::sync::atomic::AtomicBool::new(false);
    let strict = Simulation::new(
        |r: &mut SimLane<'_>| -> Res {
            log_workload(r).inspect_err(|_| saw.store(true, Ordering::Relaxed))
        },
        |_: &[u8], _: &[Call]| {
            if saw.load(Ordering::Relaxed) {
                Err("judged after the call failed".to_string())
            } else {
                Ok(())
            }
        },
    );
    let at = FaultAt {
        fault: Fault::TargetKilled,
        step: plain.steps / 2,
        lane: 0,
    };
    let f = strict
        .run_with_fault(1, config, at)
        .failure
        .expect("rejected");
    assert_eq!(f.fault, Some(at), "{f}");
    assert!(f.to_string().contains("target process killed"), "{f}");
}

/// A thread that panics or returns an error is a run error (reported, not
/// unwound out of `run`), and the other threads are released: their calls
/// return Stopped and the run ends.
#[test]
fn a_failing_thread_stops_the_run_and_releases_the_others() {
    for panic in [false, true] {
        let stopped = AtomicU64::new(0);
        let workload = |r: &mut SimLane<'_>| -> Res {
            let d = r.data_start();
            if r.thread() == 1 {
                r.persist(d, 8, 0)?;
                if panic {
                    panic!("thread 1 gives up");
                }
                return Err("thread 1 gives up".into());
            }
            for n in 0..1000u64 {
                match r.persist(d + 64 + 8 * (n % 100), 8, 0) {
                    Ok(()) => {}
                    Err(SimCallError::Stopped) => {
                        stopped.fetch_add(1, Ordering::Relaxed);
                        return Err(SimCallError::Stopped.into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        };
        let report = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
            .threads(2)
            .seeds(1..3)
            .run();
        assert_eq!(report.errors.len(), 1, "{report}");
        let what = &report.errors[0].what;
        assert!(what.contains("thread 1 gives up"), "{what}");
        assert_eq!(what.contains("panicked"), panic, "{what}");
        assert_eq!(stopped.load(Ordering::Relaxed), 1);
    }
}
