//! `install.sh` installs the library under its three names, the header
//! and a pkg-config file with which a C program builds and runs.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

fn install(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let so = common::built_so();
    let out = Command::new("sh")
        .arg(&script)
        .args(args)
        .arg("--lib")
        .arg(&so)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "install.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", pc_dir)
        .env_remove("PKG_CONFIG_SYSROOT_DIR")
        .args(args)
        .arg("librpmem")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config (install pkg-config): {e}"));
    assert!(
        out.status.success(),
        "pkg-config {args:?} librpmem: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn installed_library_builds_and_runs_a_program_through_pkg_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("usr");
    let prefix_s = prefix.to_str().expect("UTF-8 path");
    install(&["--prefix", prefix_s]);

    let lib = prefix.join("lib");
    let real = lib.join("librpmem.so.1.0.0");
    assert!(real.is_file());
    assert_eq!(
        fs::read(&real).expect("read"),
        fs::read(common::built_so()).expect("read")
    );
    assert_eq!(
        fs::read_link(lib.join("librpmem.so.1")).expect("link"),
        Path::new("librpmem.so.1.0.0")
    );
    assert_eq!(
        fs::read_link(lib.join("librpmem.so")).expect("link"),
        Path::new("librpmem.so.1")
    );
    let header = prefix.join("include/librpmem.h");
    assert_eq!(
        fs::read(&header).expect("header"),
        fs::read(common::include_dir().join("librpmem.h")).expect("header")
    );

    let pc_dir = lib.join("pkgconfig");
    assert_eq!(pkg_config(&pc_dir, &["--modversion"]), "1.12.1");
    let cflags = pkg_config(&pc_dir, &["--cflags"]);
    let libs = pkg_config(&pc_dir, &["--libs"]);
    assert_eq!(cflags, format!("-I{prefix_s}/include"));
    assert_eq!(libs, format!("-L{prefix_s}/lib -lrpmem"));

    // layout.c needs no rpmemd: header constants, layout, check_version.
    let exe = dir.path().join("layout");
    let mut cc = Command::new("cc");
    cc.args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(common::c_source("layout.c"))
        .args(cflags.split_whitespace())
        .args(libs.split_whitespace())
        .arg(format!("-Wl,-rpath,{prefix_s}/lib"))
        .arg("-lpthread");
    let out = cc.output().expect("cc");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().expect("run layout");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It runs against the installed file, found through its soname.
    let ldd = Command::new("ldd").arg(&exe).output().expect("ldd");
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        ldd.contains(&format!("librpmem.so.1 => {prefix_s}/lib/librpmem.so.1")),
        "{ldd}"
    );
}

#[test]
fn destdir_stages_the_files_and_keeps_the_prefix_in_the_pc_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    install(&[
        "--prefix",
        "/opt/rpmem",
        "--libdir",
        "/opt/rpmem/lib64",
        "--destdir",
        stage.to_str().expect("UTF-8 path"),
    ]);
    let pc =
        fs::read_to_string(stage.join("opt/rpmem/lib64/pkgconfig/librpmem.pc")).expect("pc file");
    assert!(pc.contains("prefix=/opt/rpmem\n"), "{pc}");
    assert!(pc.contains("libdir=/opt/rpmem/lib64\n"), "{pc}");
    assert!(pc.contains("includedir=/opt/rpmem/include\n"), "{pc}");
    assert!(!pc.contains('@'), "{pc}");
    assert!(stage.join("opt/rpmem/lib64/librpmem.so.1.0.0").is_file());
    assert!(stage.join("opt/rpmem/include/librpmem.h").is_file());
}
