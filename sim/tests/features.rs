//! The `mutants` feature of rpmem-core is enabled only by this crate: a
//! build of the shipped packages alone must not compile the hooks.

use std::process::Command;

fn core_features_of(package: &str) -> Option<String> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "features",
            "-i",
            "rpmem-core",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn rpmemd_alone_never_gets_the_mutants_feature() {
    let tree = core_features_of("rpmemd").expect("cargo tree -p rpmemd");
    assert!(tree.contains("rpmem-core feature \"std\""), "{tree}");
    assert!(!tree.contains("mutants"), "{tree}");
}

#[test]
fn rpmem_alone_never_gets_the_mutants_feature() {
    // The initiator library may not be a workspace member yet.
    if let Some(tree) = core_features_of("rpmem") {
        assert!(!tree.contains("mutants"), "{tree}");
    }
}

#[test]
fn sim_gets_it() {
    let tree = core_features_of("sim").expect("cargo tree -p sim");
    assert!(tree.contains("rpmem-core feature \"mutants\""), "{tree}");
}
