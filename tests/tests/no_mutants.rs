//! The rpmemd and rpmem binaries of this build carry none of the simulator's
//! seeded bugs. This build is `cargo test --workspace`, where the simulator is
//! built together with them: with a cargo feature, the hooks would be unified
//! into the shipped programs here. They are a cfg (`--cfg rpmem_mutants`) that
//! only the mutant step's own build sets, so the marker text that comes with
//! them must be absent. (`sim/tests/features.rs` shows the marker is there
//! when the hooks are; `.ci/no-mutant-hooks.sh` checks the release binaries.)
#![cfg(not(rpmem_mutants))]

use std::path::Path;

use rpmem_core::flush::mutants::MARKER;
use rpmem_e2e::{rpmemd_bin, workspace_bin};

fn has_marker(bin: &Path) -> bool {
    let bytes = std::fs::read(bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()));
    bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

#[test]
fn shipped_binaries_of_a_workspace_build_have_no_seeded_bugs() {
    let rpmem = workspace_bin("rpmem", "rpmem");
    for bin in [rpmemd_bin(), rpmem.as_path()] {
        assert!(
            !has_marker(bin),
            "{} contains the simulator's seeded-bug hooks",
            bin.display()
        );
    }
}
