//! Fuzz target: client-supplied pool set names resolved beneath a real
//! pool set directory, as rpmemd's sessions and `--remove` resolve them.
//!
//! Once per process it builds a tree in a temporary directory: the pool set
//! directory `root/` with nested directories, files whose names play with
//! dots, a FIFO, and symbolic links that stay inside, leave it (relative,
//! absolute, through `..`, through a sibling whose name starts like the
//! root's), come back in after leaving, dangle, loop, or chain up to the
//! link limit; and files outside it. For every input name, with both
//! resolution strategies (`openat2` and the component walk):
//!
//! * `PoolsetDir::open_file` (what a session opens the pool set file with):
//!   an accepted name is beneath the root (or, through a final link to `..`,
//!   the root directory itself, which a session refuses as no regular file),
//!   checked on the real file system (`/proc/self/fd/N` of the opened
//!   descriptor); a refused one is a typed `PoolError` (bad name, missing, or
//!   a named system call failure);
//! * both strategies agree on acceptance and open the same inode;
//! * `PoolsetDir::open_parent` (where `unlink` and the SET_ATTR intent record
//!   work): the directory is the root or beneath it, the last component a
//!   plain name;
//! * when bit 0 of the first input byte is set, `rpmemd::pool::remove_report`
//!   with `--force` and the pool set file (rpmemd `--remove -f`): afterwards
//!   every file and link outside the root is still there, and the tree is
//!   rebuilt.
//!
//! The name is the rest of the input (UTF-8; other inputs are skipped, as
//! rpmemd refuses them before resolution). `dict/pool_names.dict` holds the
//! tree's names.
//!
//! `cargo fuzz run pool_names corpus/pool_names -- -dict=dict/pool_names.dict`
#![no_main]

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rpmemd::pool::{
    check_name, remove_report, PoolError, PoolOptions, PoolsetDir, PoolsetFileFate, RemoveOptions,
    Strategy,
};

/// The tree and the pool set directory opened both ways.
struct Tree {
    /// The temporary directory holding everything (canonical).
    base: PathBuf,
    /// The pool set directory, `base/root` (canonical).
    root: PathBuf,
    /// Files and links outside the root that nothing may remove.
    outside: Vec<PathBuf>,
    /// `root` opened with `Strategy::Openat2` and `Strategy::Walk`.
    dirs: [PoolsetDir; 2],
}

static TREE: OnceLock<Tree> = OnceLock::new();
/// `base`, for the exit handler.
static BASE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_tree() {
    if let Some(base) = BASE.get() {
        let _ = fs::remove_dir_all(base);
    }
}

/// Files and links inside the root, created afresh by `fill_root`.
fn fill_root(root: &Path, base: &Path) {
    let dirs = ["sub/deeper", "...", "..d", "d..", "dir with space"];
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // Not pool sets: `--remove -f` removes no part because of them.
    let files = [
        "a.set",
        "sub/b.set",
        "sub/deeper/c.set",
        ".../d.set",
        "..a",
        "b..",
        "...set",
        ". .",
        "dir with space/e.set",
        "..d/f.set",
    ];
    for f in files {
        fs::write(root.join(f), b"not a pool set\n").unwrap();
    }
    let fifo = std::ffi::CString::new(root.join("fifo.set").as_os_str().as_bytes()).unwrap();
    // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let abs = |p: &str| base.join(p).into_os_string();
    let links: Vec<(OsString, &str)> = vec![
        // Inside.
        ("a.set".into(), "inside-link.set"),
        ("../a.set".into(), "sub/up-link.set"),
        ("deeper".into(), "sub/dirlink"),
        (".".into(), "sub/selflink"),
        ("..".into(), "sub/dotdot-link"),
        ("../../a.set".into(), "sub/deeper/stay.set"),
        ("sub/../a.set".into(), "through-sub.set"),
        ("sub/dirlink/c.set".into(), "via-dirlink.set"),
        ("nowhere.set".into(), "dangling.set"),
        ("fifo.set".into(), "fifo-link.set"),
        ("loop2".into(), "loop1"),
        ("loop1".into(), "loop2"),
        // Outside.
        ("..".into(), "dotdot-link"),
        ("../..".into(), "sub/dotdot2"),
        ("../outside.set".into(), "out-link.set"),
        ("../outdir".into(), "outdir-link"),
        ("sub/../../outside.set".into(), "sneaky.set"),
        ("../root2/y.set".into(), "prefix-trap.set"),
        ("../root/a.set".into(), "roundtrip.set"),
        ("../../../outside.set".into(), "sub/deeper/escape.set"),
        (abs("outside.set"), "abs-link.set"),
        (abs("root/a.set"), "abs-inside.set"),
        (abs("root"), "abs-root"),
        ("/proc/self/root".into(), "proc-root"),
        ("/proc/self/cwd".into(), "proc-cwd"),
    ];
    for (target, link) in &links {
        symlink(target, root.join(link)).unwrap();
    }
    // A chain of 40 links to a.set (the limit) and one of 41.
    for (prefix, n) in [("c", 40), ("k", 41)] {
        for i in 0..n {
            let next = if i + 1 == n {
                "a.set".to_owned()
            } else {
                format!("{prefix}{}", i + 1)
            };
            symlink(next, root.join(format!("{prefix}{i}"))).unwrap();
        }
    }
}

fn build() -> Tree {
    let base = std::env::temp_dir().join(format!("rpmemd-fuzz-names-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("root")).unwrap();
    let base = base.canonicalize().unwrap();
    BASE.set(base.clone()).unwrap();
    // SAFETY: registers a plain `extern "C" fn()` that only removes files.
    unsafe { libc::atexit(remove_tree) };
    let root = base.join("root");
    fs::write(base.join("outside.set"), b"outside\n").unwrap();
    fs::create_dir(base.join("outdir")).unwrap();
    fs::write(base.join("outdir/x.set"), b"outside\n").unwrap();
    fs::create_dir(base.join("root2")).unwrap();
    fs::write(base.join("root2/y.set"), b"outside\n").unwrap();
    symlink("root/a.set", base.join("outside-link.set")).unwrap();
    let outside = [
        "outside.set",
        "outdir",
        "outdir/x.set",
        "root2/y.set",
        "outside-link.set",
    ]
    .iter()
    .map(|p| base.join(p))
    .collect();
    fill_root(&root, &base);
    let dirs = [
        PoolsetDir::open_with(&root, Strategy::Openat2).unwrap(),
        PoolsetDir::open_with(&root, Strategy::Walk).unwrap(),
    ];
    Tree {
        base,
        root,
        outside,
        dirs,
    }
}

/// Where the descriptor points, by the kernel's account.
fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
}

fn beneath(root: &Path, p: &Path) -> bool {
    p != root && p.starts_with(root)
}

/// A refusal must be one of the typed errors resolution produces.
fn check_refusal(name: &str, e: &PoolError) {
    assert!(
        matches!(
            e,
            PoolError::BadName { .. } | PoolError::NoPoolSet { .. } | PoolError::Io { .. }
        ),
        "{name:?}: unexpected error {e:?}"
    );
    assert!(!e.to_string().is_empty());
    let _ = e.status();
}

fn check_parent(t: &Tree, name: &str, r: Result<(OwnedFd, &str), PoolError>) {
    match r {
        Ok((dir, last)) => {
            let p = fd_path(&dir);
            assert!(
                p == t.root || beneath(&t.root, &p),
                "{name:?}: parent {p:?} is outside {:?}",
                t.root
            );
            assert!(
                !last.is_empty() && last != "." && last != ".." && !last.contains('/'),
                "{name:?}: last component {last:?}"
            );
        }
        Err(e) => check_refusal(name, &e),
    }
}

fn remove_and_rebuild(t: &Tree, name: &str, dir: &PoolsetDir) {
    let opts = RemoveOptions {
        force: true,
        remove_poolset_file: true,
    };
    let removed = match remove_report(dir, name, opts, &PoolOptions::default()) {
        Ok(r) => !r.removed.is_empty() || matches!(r.poolset_file, PoolsetFileFate::Removed),
        Err(e) => {
            check_refusal(name, &e);
            false
        }
    };
    for p in &t.outside {
        assert!(
            p.symlink_metadata().is_ok(),
            "{name:?}: --remove -f removed {p:?}, outside the pool set directory"
        );
    }
    assert!(t.root.is_dir() && t.base.is_dir());
    if !removed {
        return;
    }
    for entry in fs::read_dir(&t.root).unwrap() {
        let entry = entry.unwrap();
        let p = entry.path();
        if entry.file_type().unwrap().is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
    }
    fill_root(&t.root, &t.base);
}

fuzz_target!(|input: &[u8]| {
    let [mode, name @ ..] = input else {
        return;
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let t = TREE.get_or_init(build);
    let text_ok = check_name(name).is_ok();
    let mut opened = Vec::with_capacity(2);
    for dir in &t.dirs {
        match dir.open_file(name) {
            Ok(f) => {
                assert!(text_ok, "{name:?}: opened, but check_name refuses it");
                let p = fd_path(&f);
                let m = f.metadata().unwrap();
                // A name ending in a link to `.` or `..` may name the pool
                // set directory itself (a session then refuses it: not a
                // regular file); never anything above or beside it.
                assert!(
                    beneath(&t.root, &p) || (p == t.root && m.is_dir()),
                    "{name:?} opened {p:?}, outside {:?}",
                    t.root
                );
                opened.push(Some((m.dev(), m.ino())));
            }
            Err(e) => {
                check_refusal(name, &e);
                opened.push(None);
            }
        }
        check_parent(t, name, dir.open_parent(name));
    }
    assert_eq!(
        opened[0], opened[1],
        "{name:?}: openat2 and the walk disagree (dev, inode)"
    );
    if mode & 1 != 0 {
        let dir = &t.dirs[usize::from(mode & 2 != 0)];
        remove_and_rebuild(t, name, dir);
    }
});
