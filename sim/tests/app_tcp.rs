//! Application runs (sim::app) over the TCP placement: the log examples
//! in every allowed TCP configuration, a bug caught and replayed from its
//! printed seed, reads through the stream, faults, and crash points inside
//! a persist message's plan.

// The bug example includes the correct one as its module `log`.
#[allow(dead_code)]
#[path = "../examples/replicated_log_bug.rs"]
mod log_bug;

use log_bug::log;

use sim::app::{
    allowed_configs, config_name, Call, Fault, Placement, Replica, SimLane, Simulation,
};
use sim::platform::Config;

fn tcp() -> Vec<Config> {
    allowed_configs(Placement::Stream)
}

#[test]
fn the_allowed_tcp_configurations_are_one_per_platform() {
    let c = tcp();
    assert_eq!(c.len(), sim::PLATFORMS.len());
    assert!(c.iter().all(|c| c.is_tcp() && c.allowed()));
    for c in &c {
        assert!(config_name(c).ends_with(" TCP"), "{}", config_name(c));
        assert_eq!(log::config_arg(c), format!("{}/tcp", c.platform.name));
    }
}

#[test]
fn the_correct_log_survives_every_crash_in_every_allowed_tcp_configuration() {
    let report = log::simulation(1..31, tcp()).run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.runs, 30 * tcp().len() as u64);
    assert!(report.images > 1000, "{report}");
    // A crash point before every step, the steps of a persist message's
    // plan on the target included (they run inside one scheduler step),
    // one before the first call and one after the last.
    assert!(
        report.crash_points >= report.steps + report.runs,
        "{report}"
    );
}

#[test]
fn the_correct_log_survives_a_killed_target_and_a_reset_lane_over_tcp() {
    let report = log::simulation(1..11, tcp())
        .faults(vec![Fault::TargetKilled, Fault::LaneReset])
        .run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.faulted_runs, 2 * 10 * tcp().len() as u64);
}

#[test]
fn the_tail_first_bug_is_caught_over_tcp_and_its_printed_seed_replays_it() {
    for config in tcp() {
        let sim = log_bug::simulation("tail-first", 1..4, vec![config]).unwrap();
        let report = sim.run();
        let f = report
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("not caught in {}: {report}", config_name(&config)));
        assert!(f.reason.contains("not intact"), "{f}");
        assert!(f.config.is_tcp(), "{f}");
        let text = f.to_string();
        assert!(
            text.contains(&format!(
                "seed {} in configuration {}",
                f.seed,
                config_name(&config)
            )),
            "{text}"
        );
        let again = sim.run_one(f.seed, f.config);
        assert_eq!(again.failure.as_ref(), Some(f));
        assert_eq!(sim.run_one(f.seed, f.config).trace_hash, again.trace_hash);
    }
}

#[test]
fn plain_persists_are_caught_on_devdax_wpq_only_over_tcp() {
    for config in tcp() {
        let report = log_bug::simulation("plain-persist", 1..11, vec![config])
            .unwrap()
            .run();
        assert!(report.errors.is_empty(), "{report}");
        assert_eq!(
            report.failure.is_some(),
            config.platform.name == "devdax-wpq",
            "{}: {report}",
            config_name(&config)
        );
    }
}

#[test]
fn a_relaxed_flush_never_drained_on_another_lane_is_caught_over_tcp() {
    let report = log_bug::simulation("undrained", 1..4, tcp()).unwrap().run();
    let f = report.failure.expect("caught");
    assert!(f.reason.contains("not intact"), "{f}");
}

/// Writes `len` bytes of a pattern, persists them, reads them back from
/// the remote pool and compares.
fn read_back(len: u64) -> impl Fn(&mut SimLane<'_>) -> Result<(), Box<dyn std::error::Error>> {
    move |r: &mut SimLane<'_>| {
        let at = r.data_start() + 8;
        let data: Vec<u8> = (0..len)
            .map(|i| (i.wrapping_mul(31) ^ r.seed()) as u8 | 1)
            .collect();
        r.write(at, &data)?;
        r.persist(at, len, 0)?;
        let mut back = vec![0u8; data.len()];
        r.read(at, &mut back)?;
        if back != data {
            return Err(format!("read back differs from what was persisted ({len} bytes)").into());
        }
        Ok(())
    }
}

#[test]
fn reads_over_tcp_return_the_remote_bytes() {
    // Seeds draw segment sizes, sealed records, READ_RESP bodies received
    // directly or through handle_bytes.
    // (Two images per crash point: the reads are what is checked here.)
    for len in [8, 1500] {
        let report = Simulation::new(read_back(len), |_: &[u8], _: &[Call]| Ok(()))
            .configs(tcp())
            .seeds(1..4)
            .max_images(2)
            .run();
        assert!(report.passed(), "{len} bytes: {report}");
        assert_eq!(report.runs, 3 * tcp().len() as u64);
    }
}

#[test]
fn a_call_on_a_reset_tcp_lane_fails_and_does_not_hang() {
    // Persist until a call fails; after a reset every later call fails too.
    let workload = |r: &mut SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
        let d = r.data_start();
        let mut failed = false;
        for n in 1..=6u64 {
            r.write(d, &n.to_le_bytes())?;
            match r.persist(d, 8, 0) {
                Ok(()) if failed => return Err("a call succeeded after the reset".into()),
                Ok(()) => {}
                Err(sim::app::SimCallError::Failed { .. }) => failed = true,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    };
    let sim = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
        .configs(tcp())
        .seeds(1..6)
        .faults(vec![Fault::LaneReset, Fault::TargetKilled]);
    let report = sim.run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.faulted_runs, 2 * 5 * tcp().len() as u64);
}

#[allow(dead_code)]
#[path = "../examples/two_slot.rs"]
mod two_slot;

#[allow(dead_code)]
#[path = "../examples/handoff.rs"]
mod handoff;

#[test]
fn the_other_shapes_run_over_tcp_too() {
    // The two-slot update: correct passes, in place is caught torn.
    let good = two_slot::simulation(false, 1..6).configs(tcp()).run();
    assert!(good.passed(), "{good}");
    let bad = two_slot::simulation(true, 1..6).configs(tcp()).run();
    let f = bad.failure.expect("in-place update caught over TCP");
    assert!(f.reason.contains("its slot holds"), "{f}");
    // Two threads on two TCP lanes, calls overlapping (plain persists:
    // the platforms where they are durable, as the example runs).
    let plain: Vec<Config> = tcp()
        .into_iter()
        .filter(|c| c.platform.plain_persist_durable())
        .collect();
    let good = handoff::simulation(false, 1..6)
        .configs(plain.clone())
        .run();
    assert!(good.passed(), "{good}");
    let bad = handoff::simulation(true, 1..11).configs(plain).run();
    let f = bad.failure.expect("early publication caught over TCP");
    assert!(f.config.is_tcp(), "{f}");
}

#[test]
fn rpmemd_streamed_and_written_back_body_lines_are_in_the_images() {
    // A 200-byte record flushed RELAXED on lane 0 and never drained, a
    // flag persisted on lane 1: the flag may be durable while the record's
    // lines are not. Where the seed makes rpmemd stream bodies, the whole
    // lines of the record are non-temporal stores (its partial first line
    // is written back without a fence): rejected images show words of
    // those stores not yet fenced.
    const LEN: u64 = 200;
    let workload = |r: &mut SimLane<'_>| -> Result<(), Box<dyn std::error::Error>> {
        let at = r.data_start() + 64 + 8;
        r.write(at, &[0xab; LEN as usize])?;
        r.flush(at, LEN, sim::app::FLUSH_RELAXED)?;
        let mut lane1 = r.lane(1)?;
        let flag = r.data_start();
        lane1.write(flag, &1u64.to_le_bytes())?;
        lane1.persist(flag, 8, 0)?;
        Ok(())
    };
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        let record = &image[4096 + 72..4096 + 72 + LEN as usize];
        if image[4096] == 1 && record.iter().any(|&b| b != 0xab) {
            return Err("flag set, record not whole".into());
        }
        Ok(())
    };
    let config = Config::tcp(sim::platform::platform("adr-ddio").expect("platform"));
    let sim = Simulation::new(workload, recover)
        .lanes(2)
        .configs(vec![config]);
    let mut sources = std::collections::BTreeSet::new();
    for seed in 1..31 {
        if let Some(f) = sim.run_one(seed, config).failure {
            sources.extend(f.diff.iter().map(|d| d.source));
        }
    }
    assert!(
        sources.contains("unfenced non-temporal store"),
        "{sources:?}"
    );
}
