//! `rpmemd -r <poolset> [-f] [-s]` through the built binary: the pool's parts (and with `-s`
//! the pool set file) are removed, the result is the exit status, stdout stays empty.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rpmem_core::attr::PoolAttr;
use rpmemd::pool::{Pool, PoolsetDir};

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");

/// The tests of this file run one at a time: a test that holds part files open (and locked)
/// in this process must not have them inherited by an rpmemd that another test thread is
/// forking at that moment (the child would hold the lock until its `exec`).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const PART_SIZE: u64 = 2 << 20;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> (Env, std::sync::MutexGuard<'static, ()>) {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let env = Env { dir };
        assert!(fs::create_dir(env.sets()).is_ok());
        let conf = format!(
            "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = info\n",
            env.sets().display(),
            env.path("rpmemd.log").display()
        );
        assert!(fs::write(env.path("rpmemd.conf"), conf).is_ok());
        (env, serial)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sets(&self) -> PathBuf {
        self.path("sets")
    }

    /// Writes a two-part pool set `name`; returns the part paths.
    fn poolset(&self, name: &str) -> Vec<PathBuf> {
        let parts = vec![
            self.path(&format!("{name}.0")),
            self.path(&format!("{name}.1")),
        ];
        let mut text = String::from("PMEMPOOLSET\n");
        for p in &parts {
            text.push_str(&format!("{PART_SIZE} {}\n", p.display()));
        }
        assert!(fs::write(self.sets().join(name), text).is_ok());
        parts
    }

    /// Creates the pool of pool set `name` with the pool module.
    fn create(&self, name: &str) -> Vec<PathBuf> {
        let parts = self.poolset(name);
        let dir = PoolsetDir::open(self.sets()).unwrap_or_else(|e| panic!("{e}"));
        let mut attr = PoolAttr::ZERO;
        attr.signature = *b"REMOVEME";
        attr.major = 1;
        let pool = Pool::create(&dir, name, Some(&attr)).unwrap_or_else(|e| panic!("{e}"));
        assert!(pool.close().is_ok());
        parts
    }

    fn remove(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("-c")
            .arg(self.path("rpmemd.conf"))
            .args(args)
            .env("HOME", self.dir.path())
            .env("RPMEMD_GLOBAL_CONFIG", self.path("no-global.conf"))
            .env_remove("RPMEMD_SYSLOG_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("rpmemd.log")).unwrap_or_default()
    }
}

fn all_exist(paths: &[PathBuf]) -> bool {
    paths.iter().all(|p| p.exists())
}

fn none_exist(paths: &[PathBuf]) -> bool {
    paths.iter().all(|p| !Path::new(p).exists())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn remove_deletes_the_parts_and_keeps_the_pool_set_file() {
    let (env, _serial) = Env::new();
    let parts = env.create("a.set");
    assert!(all_exist(&parts));
    let out = env.remove(&["-r", "a.set"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "remove mode writes nothing on stdout"
    );
    assert!(none_exist(&parts));
    assert!(env.sets().join("a.set").exists());
    let log = env.log();
    assert!(log.contains("info: removing 'a.set'"), "{log}");
    assert!(log.contains("notice: removed 'a.set'"), "{log}");
}

#[test]
fn remove_with_pool_set_deletes_the_pool_set_file_too() {
    let (env, _serial) = Env::new();
    let parts = env.create("b.set");
    let out = env.remove(&["--remove", "b.set", "--pool-set"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(none_exist(&parts));
    assert!(!env.sets().join("b.set").exists());
}

#[test]
fn remove_without_force_fails_on_a_missing_part_and_removes_nothing() {
    let (env, _serial) = Env::new();
    let parts = env.create("c.set");
    assert!(fs::remove_file(&parts[1]).is_ok());
    let out = env.remove(&["-r", "c.set", "-s"]);
    assert_eq!(out.status.code(), Some(libc::ENOENT));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("removing 'c.set' failed"), "{stderr}");
    assert!(
        parts[0].exists(),
        "nothing is removed when a part is missing"
    );
    assert!(env.sets().join("c.set").exists());
    assert!(env.log().contains("err: removing 'c.set' failed"));
}

#[test]
fn remove_with_force_ignores_a_missing_part() {
    let (env, _serial) = Env::new();
    let parts = env.create("d.set");
    assert!(fs::remove_file(&parts[1]).is_ok());
    let out = env.remove(&["-r", "d.set", "-f", "-s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(none_exist(&parts));
    assert!(!env.sets().join("d.set").exists());
    // The log says what was removed and what was not there.
    let log = env.log();
    assert!(
        log.contains(
            "notice: removed 'd.set': 1 part(s) removed, 1 part(s) did not exist, pool set file \
             removed\n"
        ),
        "{log}"
    );
    assert!(
        log.contains(&format!("info:     removed: {}\n", parts[0].display())),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "info:     did not exist: {}\n",
            parts[1].display()
        )),
        "{log}"
    );
}

/// `--force` used to ignore a part it could not lock and exit 0, so `rpmem remove --force`
/// said "removed" while the pool in use was still there. Now whatever is left makes the
/// removal fail, with the list on stderr (stdout stays empty: PMDK's librpmem takes any byte
/// there for a protocol error).
#[test]
fn remove_with_force_of_a_pool_in_use_fails_and_lists_what_was_left() {
    let (env, _serial) = Env::new();
    let parts = env.create("f.set");
    let dir = PoolsetDir::open(env.sets()).unwrap_or_else(|e| panic!("{e}"));
    let held = Pool::open(&dir, "f.set").unwrap_or_else(|e| panic!("{e}"));
    let out = env.remove(&["-r", "f.set", "-f", "-s"]);
    assert_eq!(
        out.status.code(),
        Some(libc::EBUSY),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{:?}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let set_file = env.sets().join("f.set");
    let expected_first = "rpmemd: removing 'f.set' left files behind (--force removes what it \
                          can): 0 part(s) removed, 2 part(s) NOT removed, pool set file NOT \
                          removed (kept because parts were left)\n";
    assert!(stderr.starts_with(expected_first), "{stderr}");
    for (i, part) in parts.iter().enumerate() {
        assert!(
            stderr.contains(&format!(
                "rpmemd: not removed: {}: part {i} ({part:?}) is in use by another process",
                part.display()
            )),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!(
            "rpmemd: not removed: pool set file {}: kept because parts were left",
            set_file.display()
        )),
        "{stderr}"
    );
    assert!(all_exist(&parts));
    assert!(set_file.exists());
    assert!(env
        .log()
        .contains("err: removing 'f.set' left files behind"));
    drop(held);
    let out = env.remove(&["-r", "f.set", "-f", "-s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(none_exist(&parts));
    assert!(!set_file.exists());
}

/// One part locked by someone else: `--force` removes the other one and says which is which.
#[test]
fn remove_with_force_says_what_was_and_was_not_removed() {
    let (env, _serial) = Env::new();
    let parts = env.create("g.set");
    let locked = fs::File::open(&parts[1]).unwrap_or_else(|e| panic!("{e}"));
    assert!(locked.try_lock().is_ok());
    let out = env.remove(&["-r", "g.set", "-f"]);
    assert_eq!(out.status.code(), Some(libc::EBUSY));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(": 1 part(s) removed, 1 part(s) NOT removed, pool set file kept\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("rpmemd: not removed: {}: ", parts[1].display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("rpmemd: removed: {}\n", parts[0].display())),
        "{stderr}"
    );
    assert!(!parts[0].exists() && parts[1].exists());
    drop(locked);
}

#[test]
fn remove_of_a_missing_pool_set() {
    let (env, _serial) = Env::new();
    let out = env.remove(&["-r", "nope.set"]);
    assert_eq!(out.status.code(), Some(libc::ENOENT));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("nope.set"));
    // --force ignores pool errors...
    let out = env.remove(&["-r", "nope.set", "-f"]);
    assert_eq!(out.status.code(), Some(0));
    // ...but not unsafe names.
    let out = env.remove(&["-r", "../escape.set", "-f"]);
    assert_eq!(out.status.code(), Some(libc::EINVAL));
    assert!(out.stdout.is_empty());
}

#[test]
fn remove_of_a_pool_in_use_is_refused() {
    let (env, _serial) = Env::new();
    let parts = env.create("e.set");
    let dir = PoolsetDir::open(env.sets()).unwrap_or_else(|e| panic!("{e}"));
    let held = Pool::open(&dir, "e.set").unwrap_or_else(|e| panic!("{e}"));
    let out = env.remove(&["-r", "e.set"]);
    assert_eq!(out.status.code(), Some(libc::EBUSY));
    assert!(all_exist(&parts), "a busy pool is not touched");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("; nothing was removed"),
        "{stderr}"
    );
    drop(held);
    let out = env.remove(&["-r", "e.set"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(none_exist(&parts));
}
