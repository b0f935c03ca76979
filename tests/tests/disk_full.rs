//! A full file system under the pool set's parts (issue 15): each test
//! mounts a small tmpfs of its own (root only; without root every test
//! returns early after saying so on stderr) and puts the part files on it.
//!
//! * A create that does not fit fails with an error naming the part file
//!   and ENOSPC, leaves no part file behind, and rpmemd ends.
//! * A pool whose part files were made whole (every create allocates its
//!   parts) keeps taking persists when another file fills the file system.
//! * A part file made sparse after creation (copied with
//!   `cp --sparse=always`, as a backup restore does) on a file system that is
//!   then filled: opening it fails with ENOSPC naming the part, instead of
//!   rpmemd dying of SIGBUS at the first persist into a hole.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem::{Error, RemotePool, REMOVE_FORCE};
use rpmem_e2e::crash::session_processes;
use rpmem_e2e::{attr, pattern, put, region, TestEnv};

const MIB: u64 = 1 << 20;
/// A failing create must answer well within the tests' deadlines.
const PROMPT: Duration = Duration::from_secs(10);

/// A tmpfs of `size` bytes mounted on a fresh directory; unmounted (lazily)
/// on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with a line on stderr) when not running as root.
    fn mount(size: u64) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "skipped: mounting a small tmpfs needs root (CI runs as root); run this test \
                 as root to see a full file system"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The names in the file system.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Writes a file of zeros in 64 KiB pieces until the file system is
    /// full; returns how many bytes it took.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path(name)).expect("create filler");
        let chunk = vec![0u8; 65_536];
        let mut n = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                    break;
                }
            }
        }
        n
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A pool set `name` in `env` whose parts are `tmp`'s files `part0`, ...
fn poolset_on(env: &TestEnv, tmp: &Tmpfs, name: &str, sizes: &[u64]) -> Vec<PathBuf> {
    let mut text = String::from("PMEMPOOLSET\n");
    let mut parts = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let p = tmp.path(&format!("part{i}"));
        text.push_str(&format!("{size} {}\n", p.display()));
        parts.push(p);
    }
    std::fs::write(env.poolset_path(name), text).expect("pool set file");
    parts
}

fn no_rpmemd_left(env: &TestEnv) {
    let marker = env.path("rpmemd.conf").display().to_string();
    let end = Instant::now() + PROMPT;
    while !session_processes("rpmemd", &marker).is_empty() {
        assert!(Instant::now() < end, "rpmemd still runs after the failure");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_enospc_naming(e: &Error, part: &Path) {
    let msg = e.to_string();
    eprintln!("the error: {msg}");
    assert!(
        msg.contains(&part.display().to_string()),
        "the error names the part file {}: {msg}",
        part.display()
    );
    assert!(
        msg.contains("No space left on device") || msg.contains("ENOSPC"),
        "the error says the file system is full: {msg}"
    );
}

#[test]
fn create_that_does_not_fit_fails_naming_the_part_and_leaves_nothing() {
    let Some(tmp) = Tmpfs::mount(4 * MIB) else {
        return;
    };
    let env = TestEnv::new();
    // The first part fits, the second does not.
    let parts = poolset_on(&env, &tmp, "big.set", &[2 * MIB, 4 * MIB]);
    let r = region(6 * MIB - 4096);
    let started = Instant::now();
    let e = RemotePool::create(
        "localhost",
        "big.set",
        Arc::clone(&r),
        1,
        Some(&attr(1)),
        &env.options(),
    )
    .expect_err("6 MiB of parts cannot fit in 4 MiB");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert_enospc_naming(&e, &parts[1]);
    assert!(
        tmp.names().is_empty(),
        "the failed create left {:?}",
        tmp.names()
    );
    no_rpmemd_left(&env);
    // rpmemd said why in its log too.
    assert!(
        env.log().contains("No space left on device"),
        "{}",
        env.log()
    );

    // Nothing to open; remove --force has nothing to do and succeeds; a
    // pool that fits can then be created on the same file system.
    let e = RemotePool::open("localhost", "big.set", Arc::clone(&r), 1, &env.options())
        .expect_err("no pool");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    rpmem::remove("localhost", "big.set", REMOVE_FORCE, &env.options()).expect("remove --force");
    poolset_on(&env, &tmp, "fits.set", &[2 * MIB]);
    let pool = RemotePool::create(
        "localhost",
        "fits.set",
        region(2 * MIB),
        1,
        Some(&attr(2)),
        &env.options(),
    )
    .expect("a pool that fits");
    pool.close().expect("close");
}

#[test]
fn allocated_pool_keeps_taking_persists_on_a_full_file_system() {
    let Some(tmp) = Tmpfs::mount(8 * MIB) else {
        return;
    };
    let env = TestEnv::new();
    poolset_on(&env, &tmp, "p.set", &[2 * MIB, 2 * MIB]);
    let len = 4 * MIB - 4096;
    let r = region(len);
    let pool = RemotePool::create(
        "localhost",
        "p.set",
        Arc::clone(&r),
        2,
        Some(&attr(3)),
        &env.options(),
    )
    .expect("create");
    let filled = tmp.fill("filler");
    assert!(filled < 8 * MIB - 4 * MIB + MIB, "filled {filled}");
    // Every page of the pool, after the file system is full.
    let data = pattern((len - 4096) as usize, 7);
    put(&r, 4096, &data);
    pool.persist(0, 4096, len - 4096, 0)
        .expect("persists into allocated parts need no space");
    pool.close().expect("close");
    let r2 = region(len);
    let pool =
        RemotePool::open("localhost", "p.set", Arc::clone(&r2), 1, &env.options()).expect("reopen");
    let mut back = vec![0u8; data.len()];
    pool.read(0, 4096, &mut back).expect("read");
    assert!(back == data, "the pool holds what was persisted");
    pool.close().expect("close");
}

#[test]
fn sparse_part_on_a_full_file_system_fails_open_naming_the_part() {
    let Some(tmp) = Tmpfs::mount(6 * MIB) else {
        return;
    };
    let env = TestEnv::new();
    let parts = poolset_on(&env, &tmp, "s.set", &[2 * MIB, 2 * MIB]);
    let len = 4 * MIB - 4096;
    let pool = RemotePool::create(
        "localhost",
        "s.set",
        region(len),
        1,
        Some(&attr(4)),
        &env.options(),
    )
    .expect("create");
    pool.close().expect("close");
    // A restore from a sparse backup: the same bytes, holes where zeros are.
    for p in &parts {
        let copy = p.with_extension("copy");
        let st = Command::new("cp")
            .arg("--sparse=always")
            .arg(p)
            .arg(&copy)
            .status()
            .expect("cp");
        assert!(st.success());
        std::fs::rename(&copy, p).expect("rename");
    }
    tmp.fill("filler");

    let r = region(len);
    let started = Instant::now();
    match RemotePool::open("localhost", "s.set", Arc::clone(&r), 1, &env.options()) {
        Err(e) => {
            assert!(started.elapsed() < PROMPT);
            assert_enospc_naming(&e, &parts[0]);
        }
        Ok(pool) => {
            // Without allocation at open, the first store into a hole
            // raises SIGBUS in rpmemd.
            put(&r, 4096, &pattern((len - 4096) as usize, 5));
            let res = pool.persist(0, 4096, len - 4096, 0);
            drop(pool);
            panic!(
                "a sparse pool on a full file system opened; the persist into its holes \
                 returned {res:?}; rpmemd's log: {}",
                env.log()
            );
        }
    }
    no_rpmemd_left(&env);
    // Room again: the pool opens and keeps its attributes.
    std::fs::remove_file(tmp.path("filler")).expect("rm filler");
    let pool = RemotePool::open("localhost", "s.set", Arc::clone(&r), 1, &env.options())
        .expect("open with room");
    assert_eq!(pool.attr().map(|a| a.signature), Some(attr(4).signature));
    put(&r, 4096, &pattern((len - 4096) as usize, 6));
    pool.persist(0, 4096, len - 4096, 0).expect("persist");
    pool.close().expect("close");
}

#[test]
fn set_attr_on_a_full_pool_set_directory_fails_and_keeps_the_old_attributes() {
    // The pool set directory and the parts on one small tmpfs: SET_ATTR
    // writes its intent record into the pool set directory first.
    let Some(tmp) = Tmpfs::mount(4 * MIB) else {
        return;
    };
    let env = TestEnv::new();
    std::fs::write(
        env.path("rpmemd.conf"),
        format!(
            "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = debug\n\
             persist-general = yes\n",
            tmp.dir.path().display(),
            env.path("rpmemd.log").display()
        ),
    )
    .expect("config");
    std::fs::write(
        tmp.path("a.set"),
        format!(
            "PMEMPOOLSET\n{} {}\n",
            2 * MIB,
            tmp.path("a.part0").display()
        ),
    )
    .expect("pool set file");
    let r = region(2 * MIB);
    let pool = RemotePool::create(
        "localhost",
        "a.set",
        Arc::clone(&r),
        1,
        Some(&attr(5)),
        &env.options(),
    )
    .expect("create");
    tmp.fill("filler");
    let e = pool
        .set_attr(Some(&attr(6)))
        .expect_err("no room for the intent record");
    let msg = e.to_string();
    eprintln!("the error: {msg}");
    // The SET_ATTR answer carries a status only (PMDK's protocol); the
    // session goes on, so rpmemd says the rest in its log.
    assert!(msg.contains("RPMEM_ERR_FATAL"), "{msg}");
    let log = env.log();
    let line = log
        .lines()
        .find(|l| l.contains("a.set.rpmemd-set-attr") && l.contains("No space left on device"))
        .unwrap_or_else(|| panic!("rpmemd's log names the record and ENOSPC: {log}"));
    eprintln!("rpmemd's log: {line}");
    // The session goes on: persists still work, close works.
    put(&r, 4096, &pattern(8192, 3));
    pool.persist(0, 4096, 8192, 0)
        .expect("persist after the failed set_attr");
    pool.close().expect("close");
    // The pool keeps the old attributes; no record is left behind.
    let pool =
        RemotePool::open("localhost", "a.set", region(2 * MIB), 1, &env.options()).expect("reopen");
    assert_eq!(pool.attr(), Some(&attr(5)));
    pool.close().expect("close");
    assert!(!tmp.path("a.set.rpmemd-set-attr").exists());
    // With room again, set_attr works.
    std::fs::remove_file(tmp.path("filler")).expect("rm filler");
    let pool =
        RemotePool::open("localhost", "a.set", region(2 * MIB), 1, &env.options()).expect("reopen");
    pool.set_attr(Some(&attr(6))).expect("set_attr with room");
    pool.close().expect("close");
}
