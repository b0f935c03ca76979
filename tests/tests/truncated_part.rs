//! A part file truncated after creation, shorter than the pool set says
//! (issue 15): opening the pool fails with an error that names the file, its
//! size and the size the pool set file gives; rpmemd does not panic and
//! ends; `remove` (with and without `--force`) removes the pool.

use std::fs::OpenOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem::{remove, Error, RemotePool, REMOVE_FORCE, REMOVE_POOL_SET};
use rpmem_e2e::crash::session_processes;
use rpmem_e2e::{attr, pattern, put, region, TestEnv};

const MIB: u64 = 1 << 20;
const PROMPT: Duration = Duration::from_secs(10);

/// A two-part pool with headers and some data; returns the part paths.
fn make_pool(env: &TestEnv, name: &str) -> Vec<std::path::PathBuf> {
    let parts = env.poolset(name, &[2 * MIB, 2 * MIB], false);
    let r = region(4 * MIB - 4096);
    let pool = RemotePool::create(
        "localhost",
        name,
        Arc::clone(&r),
        1,
        Some(&attr(9)),
        &env.options(),
    )
    .expect("create");
    put(&r, 4096, &pattern(100_000, 1));
    pool.persist(0, 4096, 100_000, 0).expect("persist");
    pool.close().expect("close");
    parts
}

fn truncate(path: &std::path::Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .unwrap_or_else(|e| panic!("truncate {}: {e}", path.display()));
}

fn assert_open_names_sizes(env: &TestEnv, name: &str, part: &std::path::Path, actual: u64) {
    let started = Instant::now();
    let e = RemotePool::open("localhost", name, region(4 * MIB - 4096), 1, &env.options())
        .expect_err("a truncated part cannot open");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    let msg = e.to_string();
    eprintln!("the error: {msg}");
    assert!(
        msg.contains(&part.display().to_string()),
        "names the file: {msg}"
    );
    assert!(
        msg.contains(&format!("is {actual} bytes")),
        "names its size {actual}: {msg}"
    );
    assert!(
        msg.contains(&format!("says {}", 2 * MIB)),
        "names the expected size: {msg}"
    );
    let log = env.log();
    assert!(!log.contains("panicked"), "{log}");
    let marker = env.path("rpmemd.conf").display().to_string();
    let end = Instant::now() + PROMPT;
    while !session_processes("rpmemd", &marker).is_empty() {
        assert!(Instant::now() < end, "rpmemd still runs after the refusal");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn truncated_second_part_fails_open_with_both_sizes_and_remove_works() {
    let env = TestEnv::new();
    let parts = make_pool(&env, "t.set");
    truncate(&parts[1], MIB + 123);
    assert_open_names_sizes(&env, "t.set", &parts[1], MIB + 123);
    // Without --force: every part is there, so remove removes them all.
    remove("localhost", "t.set", 0, &env.options()).expect("remove");
    for p in &parts {
        assert!(!p.exists(), "{} is left", p.display());
    }
    assert!(
        env.poolset_path("t.set").exists(),
        "the pool set file stays"
    );
    // The pool can be made again.
    make_pool(&env, "t.set");
}

#[test]
fn part_truncated_to_zero_fails_open_and_force_remove_takes_the_pool_set_too() {
    let env = TestEnv::new();
    let parts = make_pool(&env, "z.set");
    truncate(&parts[0], 0);
    assert_open_names_sizes(&env, "z.set", &parts[0], 0);
    remove(
        "localhost",
        "z.set",
        REMOVE_FORCE | REMOVE_POOL_SET,
        &env.options(),
    )
    .expect("remove --force --pool-set");
    for p in &parts {
        assert!(!p.exists(), "{} is left", p.display());
    }
    assert!(!env.poolset_path("z.set").exists());
}

#[test]
fn part_longer_than_the_pool_set_says_is_refused_the_same_way() {
    let env = TestEnv::new();
    let parts = make_pool(&env, "l.set");
    truncate(&parts[1], 3 * MIB);
    assert_open_names_sizes(&env, "l.set", &parts[1], 3 * MIB);
    remove("localhost", "l.set", 0, &env.options()).expect("remove");
}
