//! The simulator as a library (`sim::app`): what it reports, what it never
//! reports, sampling, refused calls, read-back, replay.

use std::error::Error;

use sim::app::{Call, Replica, SimCallError, SimLane, Simulation, PERSIST_RELAXED};
use sim::platform::{platform, Config, METHODS, PLATFORMS};

type Res = Result<(), Box<dyn Error>>;

fn every_config() -> Vec<Config> {
    Config::all()
}

fn allowed() -> Vec<Config> {
    Config::all().into_iter().filter(Config::allowed).collect()
}

fn word(image: &[u8], at: usize) -> [u8; 8] {
    image[at..at + 8].try_into().unwrap()
}

/// Generations of non-RELAXED persists over 5 lines, each word filled with
/// its generation number. The platform model gives every word its old or
/// new value whole (8-byte failure atomicity), in every configuration, also
/// the forbidden ones: a torn word is never reported.
#[test]
fn an_image_the_platform_cannot_produce_is_never_reported() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        for g in 1..=4u8 {
            r.write(base + 8, &[g; 320])?;
            if g % 2 == 0 {
                r.persist(base + 8, 320, 0)?;
            } else {
                r.flush(base + 8, 320, 0)?;
            }
        }
        Ok(())
    };
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        for at in (4096..4096 + 336).step_by(8) {
            let w = word(image, at);
            if w.iter().any(|&b| b != w[0]) || w[0] > 4 {
                return Err(format!("word {at} is {w:?}"));
            }
        }
        Ok(())
    };
    let report = Simulation::new(workload, recover)
        .configs(every_config())
        .seeds(1..8)
        .max_images(64)
        .run();
    assert!(report.passed(), "{report}");
    assert!(report.images > report.crash_points / 4, "{report}");
}

/// The user's recovery sees the library's promise: once a persist returned,
/// its generation (or a later one) is in every word of its range, in every
/// allowed configuration where plain persists are durable.
#[test]
fn acknowledged_persists_are_in_every_image() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        for g in 1..=5u8 {
            r.write(base, &[g; 200])?;
            let flags = if g % 2 == 0 { PERSIST_RELAXED } else { 0 };
            r.persist(base, 200, flags)?;
        }
        Ok(())
    };
    let recover = |image: &[u8], history: &[Call]| -> Result<(), String> {
        let acked = history
            .iter()
            .filter(|c| matches!(c, Call::Persist { .. }))
            .count() as u8;
        for at in (4096..4096 + 200 / 8 * 8).step_by(8) {
            let w = word(image, at);
            if w[0] < acked {
                return Err(format!(
                    "word {at} holds generation {}, {acked} acknowledged",
                    w[0]
                ));
            }
        }
        Ok(())
    };
    let configs = allowed()
        .into_iter()
        .filter(|c| c.platform.plain_persist_durable())
        .collect();
    let report = Simulation::new(workload, recover)
        .configs(configs)
        .seeds(1..11)
        .run();
    assert!(report.passed(), "{report}");
}

/// An image the recovery rejects is reported with its seed, its
/// configuration, the history up to the crash and the differing words; the
/// same seed reports the same failure.
#[test]
fn a_rejected_image_is_reported_with_seed_history_and_words() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        r.write(base + 16, &7u64.to_le_bytes())?;
        r.persist(base + 16, 8, 0)?;
        Ok(())
    };
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        if word(image, 4096 + 16) == 7u64.to_le_bytes() {
            return Err("seven".to_string());
        }
        Ok(())
    };
    let config = Config::new(platform("adr-ddio").unwrap(), METHODS[0]);
    let sim = Simulation::new(workload, recover)
        .configs(vec![config])
        .seeds(5..6);
    let report = sim.run();
    let f = report.failure.clone().expect("rejected");
    assert_eq!((f.seed, f.config, f.reason.as_str()), (5, config, "seven"));
    assert_eq!(
        f.history.first(),
        Some(&Call::Write {
            offset: 4096 + 16,
            data: 7u64.to_le_bytes().to_vec()
        })
    );
    // The write is still being persisted, or was: the word differs from
    // the acknowledged state (zero) only while the persist is in flight.
    if !f.in_flight.is_empty() {
        assert_eq!(f.diff.len(), 1, "{f}");
        assert_eq!(f.diff[0].offset, 4096 + 16);
        assert_eq!(f.diff[0].acknowledged, [0; 8]);
    }
    assert_eq!(word(&f.image, 4096 + 16), 7u64.to_le_bytes());
    let text = report.to_string();
    for needle in ["seed 5", "adr-ddio GPSPM", "seven", "write(4112, 8 bytes"] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    assert_eq!(sim.run_one(5, config).failure, Some(f));
}

/// Points with more images than `max_images` are judged on a sample (and
/// the report says so); the bound keeps the work per point fixed.
#[test]
fn large_in_flight_ranges_are_sampled_and_counted_as_such() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        r.write(base, &[9; 2048])?;
        r.persist(base, 2048, PERSIST_RELAXED)?;
        Ok(())
    };
    let config = Config::new(platform("adr-ddio").unwrap(), METHODS[0]);
    let report = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()))
        .configs(vec![config])
        .seeds(1..4)
        .max_images(16)
        .run();
    assert!(report.passed(), "{report}");
    assert!(report.sampled_points > 0, "{report}");
    assert!(
        report.images <= 16 * (report.exhaustive_points + report.sampled_points),
        "{report}"
    );
    // A sampled point that fails says it was sampled.
    let report = Simulation::new(workload, |image: &[u8], history: &[Call]| {
        if history.len() == 1 && image[4096..4096 + 2048].contains(&9) {
            Err("some of it arrived".to_string())
        } else {
            Ok(())
        }
    })
    .configs(vec![config])
    .seeds(1..2)
    .max_images(2)
    .run();
    let f = report.failure.expect("an image with some data");
    assert!(!f.exhaustive, "{f}");
    assert!(f.to_string().contains("a seeded sample judged"), "{f}");
}

/// A call the engine refuses returns an error to the workload, changes
/// nothing and stays out of the history; the lane stays usable. Reads
/// return the remote pool's bytes.
#[test]
fn refused_calls_and_read_back() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        assert_eq!(base, 4096);
        assert!(matches!(
            r.persist(0, 8, 0),
            Err(SimCallError::Rejected { .. })
        ));
        assert!(matches!(
            r.persist(base, 8, 0x80),
            Err(SimCallError::Rejected { .. })
        ));
        assert!(matches!(
            r.write(r.size() - 4, &[1; 8]),
            Err(SimCallError::OutOfRange { .. })
        ));
        r.write(base, b"remote!!")?;
        let mut back = [0u8; 8];
        r.read(base, &mut back)?;
        assert_eq!(&back, &[0; 8], "not flushed yet");
        r.flush(base, 8, 0)?;
        r.drain(0)?;
        r.read(base, &mut back)?;
        assert_eq!(&back, b"remote!!");
        let mut local = [0u8; 8];
        r.read_local(base, &mut local)?;
        assert_eq!(&local, b"remote!!");
        assert_eq!(r.history().len(), 5);
        Ok(())
    };
    let report = Simulation::new(workload, |_: &[u8], h: &[Call]| {
        if h.iter().any(|c| c.covers(0)) {
            Err("a refused call is in the history".to_string())
        } else {
            Ok(())
        }
    })
    .configs(every_config())
    .seeds(1..4)
    .run();
    assert!(report.passed(), "{report}");
}

#[test]
fn workload_errors_and_bad_pool_sizes_are_errors_not_panics() {
    let report = Simulation::new(
        |_: &mut SimLane<'_>| -> Res { Err("mine".into()) },
        |_: &[u8], _: &[Call]| Ok(()),
    )
    .seeds(1..2)
    .run();
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.errors[0].what.contains("mine"), "{report}");
    for size in [0, 100, 4096, 4096 * 3 + 1, u64::MAX] {
        let report = Simulation::new(
            |_: &mut SimLane<'_>| -> Res { Ok(()) },
            |_: &[u8], _: &[Call]| Ok(()),
        )
        .pool_size(size)
        .seeds(1..2)
        .run();
        assert_eq!(report.errors.len(), 1, "{size}: {report}");
    }
    // Without a header one page is enough, and offset 0 is writable.
    let report = Simulation::new(
        |r: &mut SimLane<'_>| -> Res {
            assert_eq!(r.data_start(), 0);
            r.write(0, &[1; 8])?;
            r.persist(0, 8, 0)?;
            Ok(())
        },
        |_: &[u8], _: &[Call]| Ok(()),
    )
    .headers(false)
    .pool_size(4096)
    .seeds(1..3)
    .run();
    assert!(report.passed(), "{report}");
}

/// The same seed gives the same run; other seeds give other schedules.
#[test]
fn runs_are_deterministic_from_the_seed() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        for i in 0..4u64 {
            r.write(base + i * 40, &[i as u8 + 1; 40])?;
            r.flush(base + i * 40, 40, if i % 2 == 0 { 0 } else { 1 })?;
        }
        r.drain(0)?;
        Ok(())
    };
    let sim = Simulation::new(workload, |_: &[u8], _: &[Call]| Ok(()));
    let mut varied = 0;
    for p in PLATFORMS {
        for m in METHODS {
            let config = Config::new(p, m);
            let mut hashes = std::collections::BTreeSet::new();
            for seed in 1..4 {
                let a = sim.run_one(seed, config);
                let b = sim.run_one(seed, config);
                assert_eq!(a, b);
                assert!(a.errors.is_empty(), "{:?}", a.errors);
                hashes.insert(a.trace_hash);
            }
            if hashes.len() > 1 {
                varied += 1;
            }
        }
    }
    assert!(
        varied >= 15,
        "only {varied} configurations vary with the seed"
    );
}

/// Two lanes: a flush drained on its own lane before the other lane
/// publishes passes; the lanes are checked.
#[test]
fn two_lanes_with_a_drain_pass_and_lane_numbers_are_checked() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        assert_eq!(r.nlanes(), 2);
        assert!(matches!(
            r.lane(2),
            Err(SimCallError::NoSuchLane { lane: 2, nlanes: 2 })
        ));
        let base = r.data_start();
        for n in 0..3u64 {
            r.write(base + 64 + n * 16, &[n as u8 + 1; 16])?;
            r.flush(base + 64 + n * 16, 16, sim::app::FLUSH_RELAXED)?;
            r.drain(0)?;
            let mut l1 = r.lane(1)?;
            l1.write(base, &(n + 1).to_le_bytes())?;
            l1.persist(base, 8, 0)?;
        }
        Ok(())
    };
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        let count = u64::from_le_bytes(word(image, 4096));
        for n in 0..count {
            let at = 4096 + 64 + 16 * n as usize;
            if image[at..at + 16] != [n as u8 + 1; 16] {
                return Err(format!("count {count}, entry {n} missing"));
            }
        }
        Ok(())
    };
    let configs = allowed()
        .into_iter()
        .filter(|c| c.platform.plain_persist_durable())
        .collect();
    let report = Simulation::new(workload, recover)
        .lanes(2)
        .configs(configs)
        .seeds(1..11)
        .run();
    assert!(report.passed(), "{report}");
    for n in [0, 5] {
        let report = Simulation::new(
            |_: &mut SimLane<'_>| -> Res { Ok(()) },
            |_: &[u8], _: &[Call]| Ok(()),
        )
        .lanes(n)
        .seeds(1..2)
        .run();
        assert_eq!(report.errors.len(), 1, "{n}: {report}");
    }
}

/// Recovery code that panics on an image rejects it (reported with its seed
/// and history, like an `Err`); a workload that panics is a run error. The
/// campaign itself does not panic.
#[test]
fn panics_in_user_code_are_reported_not_propagated() {
    let workload = |r: &mut SimLane<'_>| -> Res {
        let base = r.data_start();
        r.write(base, &1000u64.to_le_bytes())?;
        r.persist(base, 8, 0)?;
        Ok(())
    };
    // Trusts the stored length blindly: an out-of-bounds slice.
    let recover = |image: &[u8], _: &[Call]| -> Result<(), String> {
        let n = u64::from_le_bytes(word(image, 4096)) as usize;
        let _ = &image[4096..4096 + n * 1000];
        Ok(())
    };
    let report = Simulation::new(workload, recover).seeds(1..2).run();
    let f = report.failure.expect("the panic is a rejection");
    assert!(f.reason.starts_with("recover panicked: "), "{f}");
    assert!(
        f.history.iter().any(|c| matches!(c, Call::Write { .. })),
        "{f}"
    );
    let report = Simulation::new(
        |_: &mut SimLane<'_>| -> Res { panic!("workload bug") },
        |_: &[u8], _: &[Call]| Ok(()),
    )
    .seeds(1..2)
    .run();
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.errors[0].what.contains("workload bug"), "{report}");
}
