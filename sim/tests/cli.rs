//! The command line: output format and exit status.

use std::process::Command;

fn sim(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("run sim");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn check_prints_every_configuration_and_the_summary_line() {
    let (ok, out) = sim(&["check", "--seeds", "2"]);
    assert!(ok, "{out}");
    let last = last_line(&out);
    // "allowed configurations: P crash points, V post-crash values judged,
    // at most M words in flight, 0 violations; forbidden: ..., loss found in
    // 5 of 6": what was done, allowed and forbidden apart.
    let (allowed, forbidden) = last.split_once("; forbidden: ").expect("two halves");
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let a = numbers(allowed);
    assert!(allowed.starts_with("allowed configurations: "), "{last}");
    assert!(allowed.ends_with(" 0 violations"), "{last}");
    assert!(a[0] > 0 && a[1] > a[0] && a[2] > 0, "{last}");
    let f = numbers(forbidden);
    assert!(f[0] > 0 && f[1] > f[0] && f[2] > 0, "{last}");
    assert!(forbidden.ends_with("loss found in 5 of 6"), "{last}");
    // 7 platforms x 3 methods over RDMA, 7 platforms over TCP.
    assert_eq!(
        out.lines().filter(|l| l.contains(" crash points ")).count(),
        28
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(" TCP   allowed   seeds "))
            .count(),
        7,
        "{out}"
    );
    // The placements apart, then the total.
    let rdma = out
        .lines()
        .find(|l| l.starts_with("RDMA (21 configurations): allowed configurations: "));
    assert!(
        rdma.is_some_and(|l| l.ends_with("loss found in 5 of 6")),
        "{out}"
    );
    let tcp = out
        .lines()
        .find(|l| l.starts_with("TCP (7 configurations): allowed configurations: "));
    assert!(tcp.is_some_and(|l| l.ends_with(" 0 violations")), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(" FLUSH allowed   seeds "))
            .count(),
        5,
        "{out}"
    );
}

#[test]
fn check_can_be_narrowed_to_one_configuration() {
    let (ok, out) = sim(&[
        "check",
        "--seeds",
        "3",
        "--method",
        "apm",
        "--platform",
        "adr-ddio",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("adr-ddio     APM   forbidden"), "{out}");
    let last = last_line(&out);
    assert!(last.starts_with("forbidden: "), "{last}");
    assert!(last.ends_with("loss found in 1 of 1"), "{last}");
}

#[test]
fn rdma_flush_is_selected_by_flush_or_rdma_flush() {
    for name in ["flush", "rdma-flush"] {
        let (ok, out) = sim(&[
            "check",
            "--seeds",
            "3",
            "--method",
            name,
            "--platform",
            "dram-ddio",
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("dram-ddio    FLUSH forbidden"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.contains(" crash points ")).count(),
            1
        );
    }
}

#[cfg(rpmem_mutants)]
#[test]
fn violation_in_rdma_flush_configuration_names_the_flush_method_to_replay() {
    let (ok, out) = sim(&[
        "check",
        "--seeds",
        "2",
        "--method",
        "flush",
        "--platform",
        "adr-ddio",
        "--mutant",
        "rdma-flush-without-flush",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("check --replay 1 --method flush --platform adr-ddio"),
        "{out}"
    );
}

#[test]
fn check_can_be_narrowed_to_one_placement() {
    let (ok, out) = sim(&["check", "--seeds", "2", "--placement", "tcp"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" crash points ")).count(),
        7,
        "{out}"
    );
    assert!(out.contains("adr-ddio     TCP   allowed"), "{out}");
    assert!(last_line(&out).ends_with(" 0 violations"), "{out}");
    let (ok, out) = sim(&["check", "--seeds", "1", "--placement", "rdma"]);
    assert!(ok, "{out}");
    assert!(!out.contains(" TCP "), "{out}");
    let (ok, _) = sim(&["check", "--placement", "carrier-pigeon"]);
    assert!(!ok);
}

#[cfg(rpmem_mutants)]
#[test]
fn violation_in_tcp_configuration_names_the_placement_to_replay() {
    let (ok, out) = sim(&[
        "check",
        "--seeds",
        "3",
        "--placement",
        "tcp",
        "--platform",
        "adr-ddio",
        "--mutant",
        "written-back-line-not-flushed",
    ]);
    assert!(!ok, "{out}");
    // The catching seed depends on the engines' step order; the replay
    // line must name it together with the TCP placement.
    let replay = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("replay: cargo run -p sim --release -- check --replay ")
        })
        .unwrap_or_else(|| panic!("no replay line: {out}"));
    let (seed, rest) = replay
        .split_once(' ')
        .expect("seed, then the configuration");
    assert!(matches!(seed, "1" | "2" | "3"), "{out}");
    assert_eq!(
        rest, "--method gpspm --platform adr-ddio --placement tcp",
        "{out}"
    );
}

#[test]
fn platforms_lists_the_verdicts_of_three_methods_and_tcp() {
    let (ok, out) = sim(&["platforms"]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 7, "{out}");
    let adr = out.lines().find(|l| l.starts_with("adr-ddio ")).unwrap();
    assert!(
        adr.ends_with(
            "[GPSPM Allowed, APM ForbiddenLossExpected, RDMA FLUSH Allowed, TCP (GPSPM) Allowed]"
        ),
        "{adr}"
    );
    let dram = out.lines().find(|l| l.starts_with("dram-noddio ")).unwrap();
    assert!(
        dram.ends_with("RDMA FLUSH ForbiddenLossExpected, TCP (GPSPM) Allowed]"),
        "{dram}"
    );
}

#[cfg(rpmem_mutants)]
#[test]
fn violation_in_allowed_configuration_exits_non_zero() {
    // With a seeded bug on, the allowed configuration shows violations.
    let (ok, out) = sim(&[
        "check",
        "--seeds",
        "3",
        "--method",
        "gpspm",
        "--platform",
        "adr-ddio",
        "--mutant",
        "respond-before-flush",
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("VIOLATION: seed"), "{out}");
    assert!(
        out.contains("replay: cargo run -p sim --release -- check --replay"),
        "{out}"
    );
}

#[test]
fn replay_is_verbose_and_deterministic() {
    let args = [
        "check",
        "--replay",
        "4",
        "--method",
        "gpspm",
        "--platform",
        "dram-ddio",
    ];
    let (ok, a) = sim(&args);
    assert!(ok, "{a}");
    assert!(a.contains("lane 0: call persist("), "{a}");
    assert!(a.contains("trace hash "), "{a}");
    let (_, b) = sim(&args);
    assert_eq!(a, b);
}

#[cfg(not(rpmem_mutants))]
#[test]
fn mutants_without_the_hooks_say_how_to_get_them() {
    for args in [
        &["mutants", "--seeds", "1"][..],
        &["check", "--seeds", "1", "--mutant", "flush-skips-fence"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(args)
            .output()
            .expect("running sim");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--cfg rpmem_mutants"), "{args:?}: {err}");
    }
}

#[cfg(rpmem_mutants)]
#[test]
fn mutants_reports_each_and_the_total() {
    let (ok, out) = sim(&["mutants", "--seeds", "30"]);
    assert!(ok, "{out}");
    for name in [
        "respond-before-flush",
        "flush-skips-fence",
        "flush-misses-last-line",
        "apm-without-read",
        "inline-without-flush",
        "deep-as-plain",
        "write-overtakes-inline",
        "streamed-without-fence",
        "rdma-flush-without-flush",
        "written-back-line-not-flushed",
        "plain-body-counted-written-back",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains("caught after")),
            "{name}: {out}"
        );
    }
    assert_eq!(last_line(&out), "caught 11 of 11 mutants");
}

#[test]
fn bad_arguments_are_refused() {
    let (ok, _) = sim(&["check", "--method", "rdma"]);
    assert!(!ok);
    let (ok, _) = sim(&["check", "--platform", "nowhere"]);
    assert!(!ok);
}
