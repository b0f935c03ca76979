//! What the tests of the `rpmem` tool share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `rpmem` binary of this build.
pub const RPMEM: &str = env!("CARGO_BIN_EXE_rpmem");

/// The rpmemd binary next to the rpmem binary, built once if missing (the
/// same target directory and profile).
pub fn rpmemd() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(RPMEM).parent().expect("the binary's directory");
        let bin = dir.join("rpmemd");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-p",
                "rpmemd",
                "--bin",
                "rpmemd",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(dir.parent().expect("the target directory"));
            match dir.file_name().and_then(|n| n.to_str()) {
                Some("release") => {
                    cmd.arg("--release");
                }
                Some("debug") | None => {}
                Some(other) => {
                    cmd.args(["--profile", other]);
                }
            }
            let status = cmd.status().expect("running cargo to build rpmemd");
            assert!(status.success(), "building rpmemd failed: {status}");
        }
        assert!(bin.exists(), "{} is missing", bin.display());
        bin
    })
}
