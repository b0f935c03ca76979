//! Helpers of the C tests: find the built `librpmem_c.so`, give it its
//! installed names (`librpmem.so.1`, `librpmem.so`) in a scratch
//! directory, compile C programs against `include/librpmem.h` with `cc`,
//! and run them with the local-mode rpmemd of an `rpmem_e2e::TestEnv`.
//!
//! Every helper panics with a message when something cannot be set up: a
//! test that cannot be set up fails.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use rpmem_e2e::TestEnv;

/// The profile directory of this build (`target/<profile>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe
        .parent()
        .unwrap_or_else(|| panic!("no directory above {}", exe.display()))
        .to_path_buf();
    if dir.file_name().and_then(|n| n.to_str()) == Some("deps") {
        dir.pop();
    }
    dir
}

/// The shared object cargo built for this test run: `deps/librpmem_c.so`.
/// (`cargo test` rebuilds the library there but does not copy it up to
/// `target/<profile>/`, which may hold an older `cargo build`'s.)
pub fn built_so() -> PathBuf {
    let dir = profile_dir();
    for p in [dir.join("deps/librpmem_c.so"), dir.join("librpmem_c.so")] {
        if p.exists() {
            return p;
        }
    }
    panic!("librpmem_c.so is not in {} (or its deps/)", dir.display());
}

/// The crate's `include/` directory.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// A C source file of `tests/c/`.
pub fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// A scratch directory holding the library under its installed names and
/// the compiled test programs.
#[derive(Debug)]
pub struct CBuild {
    dir: tempfile::TempDir,
}

impl Default for CBuild {
    fn default() -> Self {
        CBuild::new()
    }
}

impl CBuild {
    /// `lib/librpmem.so.1` and `lib/librpmem.so`, symbolic links to the
    /// built shared object.
    pub fn new() -> CBuild {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let lib = dir.path().join("lib");
        fs::create_dir(&lib).unwrap_or_else(|e| panic!("mkdir lib: {e}"));
        let so = built_so();
        for name in ["librpmem.so.1", "librpmem.so"] {
            std::os::unix::fs::symlink(&so, lib.join(name))
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
        CBuild { dir }
    }

    /// The directory with `librpmem.so.1`.
    pub fn lib_dir(&self) -> PathBuf {
        self.dir.path().join("lib")
    }

    /// Compiles `tests/c/<source>` into program `<source without .c>`,
    /// linked with `-lrpmem` (found in `lib_dir`, also the run path) unless
    /// `link` is false, with warnings as errors.
    pub fn compile(&self, source: &str, link: bool, extra: &[&str]) -> PathBuf {
        self.build("cc", source, link, &[&["-std=gnu11"], extra].concat())
    }

    /// Compiles `tests/c/<source>` with `compiler` (e.g. `c++`), linked
    /// with `-lrpmem`.
    pub fn compile_with(&self, compiler: &str, source: &str, extra: &[&str]) -> PathBuf {
        self.build(compiler, source, true, extra)
    }

    fn build(&self, compiler: &str, source: &str, link: bool, extra: &[&str]) -> PathBuf {
        let stem = source.split('.').next().unwrap_or(source);
        let exe = self.dir.path().join(stem);
        let mut cmd = Command::new(compiler);
        cmd.args(["-Wall", "-Wextra", "-Werror", "-g", "-o"])
            .arg(&exe)
            .arg("-I")
            .arg(include_dir())
            .arg(c_source(source));
        if link {
            cmd.arg("-L")
                .arg(self.lib_dir())
                .arg(format!("-Wl,-rpath,{}", self.lib_dir().display()))
                .arg("-lrpmem");
        }
        cmd.args(extra).arg("-lpthread");
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {compiler} (install build-essential): {e}"));
        assert!(
            out.status.success(),
            "compiling {source} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    }
}

/// Runs `exe` with `args`, every inherited `RPMEM_*` variable removed, the
/// local-mode launch of `env`'s rpmemd, and `vars`.
pub fn run(exe: &Path, args: &[&str], env: &TestEnv, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("RPMEM") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RPMEM_LAUNCH", "local")
        .env("RPMEM_CMD", env.command());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// Asserts that a test program exited with status 0, showing its output
/// and rpmemd's log otherwise.
pub fn assert_passed(out: &Output, env: &TestEnv) {
    assert!(
        out.status.success(),
        "the C program failed ({}):\n--- stdout\n{}--- stderr\n{}--- rpmemd.log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.log()
    );
}

/// The command [`run`] runs, not yet started: `exe` with `args`, every
/// inherited `RPMEM_*` variable removed, the local-mode launch of `env`'s
/// rpmemd, and `vars` (for programs a test must watch while they run).
pub fn command(exe: &Path, args: &[&str], env: &TestEnv, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("RPMEM") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RPMEM_LAUNCH", "local")
        .env("RPMEM_CMD", env.command());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// The rpmemd processes (`/proc/<pid>/comm` is `rpmemd`) whose command line
/// contains `needle`, whoever started them (over ssh: sshd's session).
pub fn rpmemd_processes(needle: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "rpmemd" {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline: Vec<u8> = cmdline
            .iter()
            .map(|&c| if c == 0 { b' ' } else { c })
            .collect();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// The processes whose parent is `parent` and whose command line contains
/// `needle` (read from `/proc`; processes that end while being read are
/// skipped).
pub fn children_matching(parent: u32, needle: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline: Vec<u8> = cmdline
            .iter()
            .map(|&c| if c == 0 { b' ' } else { c })
            .collect();
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold
        // spaces and parentheses, so read after the last ')'.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}
