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
