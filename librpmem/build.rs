//! Links the shared object as PMDK's librpmem.so.1: its soname, and a
//! version script that exports exactly the twelve functions under
//! `LIBRPMEM_1.0`.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let map = dir.join("librpmem.map");
    println!("cargo:rerun-if-changed={}", map.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librpmem.so.1");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
