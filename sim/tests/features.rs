//! The seeded bugs of rpmem-core exist only in a build made with
//! `RUSTFLAGS="--cfg rpmem_mutants"`: the `sim` binary of this very build has
//! the hooks exactly when the cfg is set. This is also the positive control
//! of the check that the shipped binaries carry none (`.ci/no-mutant-hooks.sh`
//! on release builds, `tests/tests/no_mutants.rs` on the workspace build):
//! the marker it looks for is there when the hooks are.

use rpmem_core::flush::mutants::{COMPILED, MARKER};

fn sim_binary_has_marker() -> bool {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_sim")).expect("reading the sim binary");
    bin.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

#[test]
fn the_sim_binary_has_the_hooks_exactly_with_the_cfg() {
    assert_eq!(COMPILED, cfg!(rpmem_mutants));
    assert_eq!(
        sim_binary_has_marker(),
        COMPILED,
        "the marker of the seeded-bug hooks should be in the sim binary exactly when \
         --cfg rpmem_mutants is set (COMPILED = {COMPILED})"
    );
}
