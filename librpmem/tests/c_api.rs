//! C programs against `include/librpmem.h` and the built `librpmem.so.1`,
//! run in local mode against the real rpmemd.

mod common;

use common::{assert_passed, run, CBuild, TestEnv};

/// Pool size of the tests: 8 MiB.
const POOL: u64 = 8 << 20;

#[test]
fn header_layout_constants_and_check_version() {
    let b = CBuild::new();
    let exe = b.compile("layout.c", true, &[]);
    let env = TestEnv::new();
    let out = run(&exe, &[], &env, &[]);
    assert_passed(&out, &env);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("sizeof 104, offsets 0 8 12 16 20 24 40 56 72 88"));
}

#[test]
fn argument_rules_and_errno_values() {
    let b = CBuild::new();
    let exe = b.compile("args.c", true, &[]);
    let env = TestEnv::new();
    env.poolset("hdr.set", &[POOL], false);
    env.poolset("nohdrs.set", &[POOL], true);
    let size = POOL.to_string();
    let out = run(
        &exe,
        &["hdr.set", "nohdrs.set", &size],
        &env,
        &[("RPMEM_MAX_NLANES", "3")],
    );
    assert_passed(&out, &env);
    assert!(
        !env.poolset_path("hdr.set").exists(),
        "REMOVE_POOL_SET removed it"
    );
}

#[test]
fn four_threads_one_lane_each_then_attributes_reopen_and_remove() {
    let b = CBuild::new();
    let exe = b.compile("threads.c", true, &[]);
    let env = TestEnv::new();
    let parts = env.poolset("t.set", &[POOL], false);
    let size = POOL.to_string();
    let out = run(&exe, &["t.set", &size], &env, &[]);
    assert_passed(&out, &env);
    assert!(!parts[0].exists(), "rpmem_remove removed the part file");
    assert!(
        env.poolset_path("t.set").exists(),
        "the pool set file stays without REMOVE_POOL_SET"
    );
}

#[test]
fn a_dead_rpmemd_makes_the_pool_unusable_with_one_errno() {
    let b = CBuild::new();
    let exe = b.compile("broken.c", true, &[]);
    let env = TestEnv::new();
    env.poolset("b.set", &[POOL], false);
    let size = POOL.to_string();
    let out = run(&exe, &["b.set", &size], &env, &[]);
    assert_passed(&out, &env);
}

#[test]
fn errormsg_names_the_call_the_pool_set_and_rpmemds_words() {
    let b = CBuild::new();
    let exe = b.compile("errmsg.c", true, &[]);
    let env = TestEnv::new();
    let size = POOL.to_string();
    let out = run(&exe, &["missing.set", &size], &env, &[]);
    assert_passed(&out, &env);
}

#[test]
fn dlopen_dlsym_create_persist_close_dlclose_twice_and_exit() {
    let b = CBuild::new();
    // Not linked with the library: found through LD_LIBRARY_PATH, as
    // libpmemobj finds it.
    let exe = b.compile("dlopen.c", false, &["-ldl"]);
    let env = TestEnv::new();
    let parts = env.poolset("d.set", &[POOL], false);
    let size = POOL.to_string();
    let lib = b.lib_dir();
    let out = run(
        &exe,
        &["d.set", &size],
        &env,
        &[("LD_LIBRARY_PATH", lib.to_str().expect("UTF-8 path"))],
    );
    assert_passed(&out, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("dlopen: ok"));
    // The second cycle's bytes are on the target.
    let bytes = TestEnv::file_bytes(&parts[0], 4096, 65536);
    assert!(bytes.iter().all(|&b| b == 0x22));
}

#[test]
fn calls_on_different_lanes_run_at_the_same_time() {
    let b = CBuild::new();
    let exe = b.compile("lanes.c", true, &[]);
    let env = TestEnv::new();
    env.poolset("l.set", &[POOL], true);
    let size = POOL.to_string();
    let out = run(&exe, &["l.set", &size], &env, &[]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_passed(&out, &env);
}

#[test]
fn environment_is_read_per_call_and_maps_pmdks_provider_switches() {
    let b = CBuild::new();
    let exe = b.compile("env.c", true, &[]);
    let env = TestEnv::new();
    env.poolset("e.set", &[POOL], true);
    let size = POOL.to_string();
    let out = run(&exe, &["e.set", &size], &env, &[]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_passed(&out, &env);
}

#[test]
fn the_header_works_from_cxx() {
    let b = CBuild::new();
    let exe = b.compile_with("c++", "cxx.cc", &["-std=c++11"]);
    let env = TestEnv::new();
    let out = run(&exe, &[], &env, &[]);
    assert_passed(&out, &env);
}

#[test]
fn exiting_without_close_is_clean_and_the_pool_opens_again() {
    let b = CBuild::new();
    let exe = b.compile("noclose.c", true, &[]);
    let env = TestEnv::new();
    env.poolset("n.set", &[POOL], false);
    let size = POOL.to_string();
    let out = run(&exe, &["n.set", &size, "create"], &env, &[]);
    assert_passed(&out, &env);
    let out = run(&exe, &["n.set", &size, "open"], &env, &[]);
    assert_passed(&out, &env);
}
