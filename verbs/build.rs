//! Finds out whether the rdma-core headers that rdma-sys generates its
//! bindings from have RDMA FLUSH (`ibv_wr_flush`, `IBV_QP_EX_WITH_FLUSH`:
//! rdma-core 45 and later) and, if so, sets the cfg `rpmem_verbs_flush`.
//!
//! rdma-sys 0.3 asks pkg-config for libibverbs' and librdmacm's include
//! directories (honouring `PKG_CONFIG_PATH`), sorts them, and adds
//! `/usr/include` after them; bindgen then appends `BINDGEN_EXTRA_CLANG_ARGS`.
//! The first of those directories that has `infiniband/verbs.h` is the one
//! clang reads, so that is the one looked at here. To build against an
//! rdma-core installed elsewhere, point `PKG_CONFIG_PATH` at its
//! `lib/pkgconfig` (an `-I` in `BINDGEN_EXTRA_CLANG_ARGS` alone is not
//! enough: `/usr/include` comes first). See docs/rdma-flush.md.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(rpmem_verbs_flush)");
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
        "BINDGEN_EXTRA_CLANG_ARGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_VERBS").is_none() {
        return;
    }
    let Some(header) = include_dirs()
        .into_iter()
        .map(|d| d.join("infiniband").join("verbs.h"))
        .find(|h| h.is_file())
    else {
        println!("cargo:warning=rpmem-verbs: no infiniband/verbs.h found; RDMA FLUSH left out");
        return;
    };
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header).unwrap_or_default();
    if text.contains("ibv_wr_flush") && text.contains("IBV_QP_EX_WITH_FLUSH") {
        println!("cargo:rustc-cfg=rpmem_verbs_flush");
    }
}

/// The include directories in the order clang searches them for rdma-sys.
fn include_dirs() -> Vec<PathBuf> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let mut dirs: Vec<String> = Vec::new();
    for lib in ["libibverbs", "librdmacm"] {
        let Ok(out) = Command::new(&pkg_config)
            .args(["--cflags-only-I", lib])
            .output()
        else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let flags = String::from_utf8_lossy(&out.stdout).into_owned();
        for word in flags.split_whitespace() {
            if let Some(dir) = word.strip_prefix("-I") {
                dirs.push(dir.to_owned());
            }
        }
    }
    dirs.sort_unstable();
    dirs.dedup();
    dirs.push("/usr/include".to_owned());
    if let Ok(extra) = env::var("BINDGEN_EXTRA_CLANG_ARGS") {
        let mut words = extra.split_whitespace();
        while let Some(word) = words.next() {
            if word == "-I" || word == "-isystem" {
                if let Some(dir) = words.next() {
                    dirs.push(dir.to_owned());
                }
            } else if let Some(dir) = word.strip_prefix("-I") {
                dirs.push(dir.to_owned());
            } else if let Some(dir) = word.strip_prefix("-isystem") {
                dirs.push(dir.to_owned());
            }
        }
    }
    dirs.into_iter().map(PathBuf::from).collect()
}
