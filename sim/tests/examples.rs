//! The log examples (sim/examples/) as tests: the correct log passes every
//! allowed configuration, each bug is caught where it matters (and only
//! there), and the printed seed replays the same failure.

// The bug example includes the correct one as its module `log`.
#[allow(dead_code)]
#[path = "../examples/replicated_log_bug.rs"]
mod log_bug;

use log_bug::log;

use sim::platform::Config;

fn allowed() -> Vec<Config> {
    Config::all().into_iter().filter(Config::allowed).collect()
}

#[test]
fn the_correct_log_survives_every_crash_in_every_allowed_configuration() {
    let report = log::simulation(1..31, allowed()).run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.runs, 30 * allowed().len() as u64);
    assert!(report.images > 1000, "{report}");
    assert!(report.exhaustive_points > 0, "{report}");
}

#[test]
fn the_correct_log_survives_a_killed_target_and_a_reset_lane() {
    let report = log::simulation(1..11, allowed())
        .faults(vec![
            sim::app::Fault::TargetKilled,
            sim::app::Fault::LaneReset,
        ])
        .run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.faulted_runs, 2 * 10 * allowed().len() as u64);
}

#[test]
fn the_tail_first_bug_is_caught_in_every_allowed_configuration() {
    for config in allowed() {
        let sim = log_bug::simulation("tail-first", 1..4, vec![config]).unwrap();
        let report = sim.run();
        let f = report.failure.as_ref().unwrap_or_else(|| {
            panic!("not caught in {}: {report}", sim::app::config_name(&config))
        });
        assert!(f.reason.contains("not intact"), "{f}");
        // The crash is inside the publication of the tail (the record was
        // never sent), and the report names the calls before it.
        assert!(
            f.history
                .iter()
                .any(|c| matches!(c, sim::app::Call::Write { offset: 4096, .. })),
            "{f}"
        );
        assert!(f.diff.iter().any(|d| d.offset == 4096), "{f}");
    }
}

#[test]
fn the_printed_seed_replays_the_same_failure() {
    let sim = log_bug::simulation("tail-first", 1..6, allowed()).unwrap();
    let first = sim.run().failure.expect("caught");
    let text = first.to_string();
    assert!(text.contains(&format!("seed {}", first.seed)), "{text}");
    assert!(text.contains("calls that returned success"), "{text}");
    let again = sim.run_one(first.seed, first.config);
    assert_eq!(again.failure.as_ref(), Some(&first));
    assert_eq!(
        sim.run_one(first.seed, first.config).trace_hash,
        again.trace_hash
    );
}

#[test]
fn plain_persists_are_caught_on_devdax_wpq_only() {
    for config in allowed() {
        let report = log_bug::simulation("plain-persist", 1..11, vec![config])
            .unwrap()
            .run();
        assert!(report.errors.is_empty(), "{report}");
        if config.platform.name == "devdax-wpq" {
            assert!(report.failure.is_some(), "{report}");
        } else {
            assert!(
                report.failure.is_none(),
                "{}: {report}",
                sim::app::config_name(&config)
            );
        }
    }
}

#[allow(dead_code)]
#[path = "../examples/two_slot.rs"]
mod two_slot;

#[test]
fn the_two_slot_update_survives_every_crash_in_every_allowed_configuration() {
    let report = two_slot::simulation(false, 1..16).run();
    assert!(report.passed(), "{report}");
    assert_eq!(report.runs, 15 * allowed().len() as u64);
}

#[test]
fn the_in_place_update_is_caught_as_a_torn_record() {
    let report = two_slot::simulation(true, 1..6).run();
    let f = report.failure.expect("caught");
    assert!(f.reason.contains("its slot holds"), "{f}");
    // Torn between two versions: the crash is inside the in-place persist
    // of a later version, after an earlier one was published.
    assert!(
        matches!(
            f.in_flight.as_slice(),
            [(
                0,
                sim::app::Call::Persist {
                    len: two_slot::SLOT,
                    ..
                }
            )]
        ),
        "{f}"
    );
    assert!(
        f.history.iter().any(|c| matches!(
            c,
            sim::app::Call::DeepPersist {
                offset: 4096,
                len: 8
            }
        )),
        "{f}"
    );
}

#[test]
fn a_relaxed_flush_never_drained_on_another_lane_is_caught_everywhere() {
    for config in allowed() {
        let report = log_bug::simulation("undrained", 1..4, vec![config])
            .unwrap()
            .run();
        let f = report
            .failure
            .unwrap_or_else(|| panic!("not caught in {}", sim::app::config_name(&config)));
        assert!(f.reason.contains("not intact"), "{f}");
        // The record's flush is on lane 0, the tail's calls on lane 1.
        let flush = f
            .history
            .iter()
            .position(|c| matches!(c, sim::app::Call::Flush { .. }))
            .expect("the record's flush returned");
        assert_eq!(f.history_lanes.get(flush), Some(&0), "{f}");
        assert!(f.to_string().contains("lane 1: "), "{f}");
    }
}
