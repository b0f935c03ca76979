//! rpmemd's pool storage on real (emulated) persistent memory: pmem
//! detection through a successful `MAP_SYNC` mapping (ext4 `-o dax`),
//! its absence on a page-cache file system, and Device DAX parts.
//!
//! These tests need the VM rig (`tests/rxe/run.sh`, see docs/rxe-rig.md):
//! it sets `PMEM_DIR`, `PLAIN_DIR` and `DAX_DEV`. They are gated by
//! `RPMEM_HW_TESTS`:
//!
//! - unset: every test prints why it skips and returns (normal host runs);
//! - `RPMEM_HW_TESTS=1`: every test runs, and a missing or empty
//!   `PMEM_DIR` / `PLAIN_DIR` / `DAX_DEV` is a failure, not a skip.
//!
//! ```sh
//! cargo test -p rpmemd --test pmem_hw --no-run      # on the host
//! tests/rxe/run.sh --no-baseline -- env RPMEM_HW_TESTS=1 <binary> --test-threads=1
//! ```

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rpmem_core::attr::PoolAttr;
use rpmem_core::flush::{deep_persist_range, persist_range, FlushMode};
use rpmemd::pool::{remove_with, status, Pool, PoolOptions, PoolsetDir, RemoveOptions};

const MIB: u64 = 1 << 20;
/// First byte after part 0's header.
const DATA_OFF: u64 = 4096;
/// Bytes written and read back.
const DATA_LEN: u64 = 256 << 10;

/// The value of the rig variable `var`, or `None` (with a note on stderr)
/// when hardware tests are not enabled. Panics when they are enabled
/// (`RPMEM_HW_TESTS=1`) and `var` is missing or empty.
fn hw_var(test: &str, var: &str) -> Option<String> {
    match std::env::var("RPMEM_HW_TESTS") {
        Ok(v) if v == "1" => {}
        Ok(v) => {
            eprintln!("{test}: skipped: RPMEM_HW_TESTS={v:?} (set RPMEM_HW_TESTS=1 in the VM rig)");
            return None;
        }
        Err(_) => {
            eprintln!(
                "{test}: skipped: RPMEM_HW_TESTS is unset (run it in tests/rxe/run.sh with RPMEM_HW_TESTS=1)"
            );
            return None;
        }
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => panic!(
            "{test}: RPMEM_HW_TESTS=1 but {var} is missing or empty \
             (tests/rxe/run.sh sets it; an empty DAX_DEV means its Device DAX setup failed)"
        ),
    }
}

/// Options that leave pmem detection to the mapping and the file type.
fn unforced() -> PoolOptions {
    PoolOptions {
        pmem_force: None,
        ..PoolOptions::from_env()
    }
}

fn attr() -> PoolAttr {
    let seq = |start: u8| -> [u8; 16] { std::array::from_fn(|i| start.wrapping_add(i as u8)) };
    PoolAttr {
        signature: *b"RPMEMHW\0",
        major: 7,
        compat_features: 0,
        incompat_features: 0,
        ro_compat_features: 0,
        poolset_uuid: seq(0x10),
        uuid: seq(0x20),
        next_uuid: seq(0x30),
        prev_uuid: seq(0x40),
        user_flags: seq(0x50),
    }
}

/// The byte written at pool offset `off`.
fn pattern(off: u64) -> u8 {
    (off.wrapping_mul(31) ^ (off >> 9)) as u8
}

/// A pool set directory `sets/` inside a fresh directory under `base`,
/// holding `hw.set` whose one part is `part_line` (`@` = that directory).
struct Site {
    tmp: tempfile::TempDir,
    dir: PoolsetDir,
}

impl Site {
    fn new(base: &Path, part_line: &str) -> Site {
        let tmp = tempfile::Builder::new()
            .prefix("rpmemd-hw-")
            .tempdir_in(base)
            .unwrap_or_else(|e| panic!("cannot make a directory in {}: {e}", base.display()));
        let sets = tmp.path().join("sets");
        fs::create_dir(&sets).unwrap();
        let line = part_line.replace('@', tmp.path().to_str().unwrap());
        fs::write(sets.join("hw.set"), format!("PMEMPOOLSET\n{line}\n")).unwrap();
        let dir = PoolsetDir::open(&sets).unwrap();
        Site { tmp, dir }
    }
}

/// Writes the pattern into `[DATA_OFF, DATA_OFF + DATA_LEN)` through the
/// mapping and persists it with `mode` through the pool's `FlushOps`.
fn write_and_persist(pool: &mut Pool, mode: FlushMode, deep: bool) {
    assert!(pool.size() >= DATA_OFF + DATA_LEN, "pool too small");
    let base = pool.as_mut_ptr();
    for off in DATA_OFF..DATA_OFF + DATA_LEN {
        // SAFETY: `off` is inside the mapping (checked above) and this test
        // is the only user of the pool.
        unsafe { base.add(off as usize).write_volatile(pattern(off)) };
    }
    if deep {
        deep_persist_range(pool, mode, DATA_OFF, DATA_LEN).unwrap();
    } else {
        persist_range(pool, mode, DATA_OFF, DATA_LEN).unwrap();
    }
}

fn check_pattern(pool: &Pool) {
    let bytes = pool.as_slice();
    for off in DATA_OFF..DATA_OFF + DATA_LEN {
        let got = bytes[off as usize];
        assert_eq!(got, pattern(off), "byte at pool offset {off} after reopen");
    }
}

/// Create with the client attributes, write + persist, close, reopen, read
/// back, close and remove. Returns the facts seen at create:
/// (is_pmem, map_sync of part 0, size).
fn round_trip(site: &Site, mode: FlushMode, deep: bool) -> (bool, Option<bool>, u64) {
    let opts = unforced();
    let a = attr();
    let mut pool = Pool::create_with(&site.dir, "hw.set", Some(&a), &opts)
        .unwrap_or_else(|e| panic!("create: {e}"));
    let facts = (pool.is_pmem(), pool.part_map_sync(0), pool.size());
    eprintln!(
        "created {}: size {} is_pmem {} map_sync {:?} cache_persistent {} flush {:?} part {:?}",
        pool.poolset_path().display(),
        pool.size(),
        pool.is_pmem(),
        pool.part_map_sync(0),
        pool.cache_persistent(),
        pool.flush_instr(),
        pool.part_paths().collect::<Vec<_>>(),
    );
    write_and_persist(&mut pool, mode, deep);
    pool.close().unwrap();

    let pool = Pool::open_with(&site.dir, "hw.set", &opts).unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(pool.attr(), a, "attributes after reopen");
    assert_eq!(pool.is_pmem(), facts.0, "is_pmem after reopen");
    assert_eq!(pool.part_map_sync(0), facts.1, "map_sync after reopen");
    assert_eq!(pool.size(), facts.2, "size after reopen");
    check_pattern(&pool);
    pool.close_and_remove().unwrap();
    facts
}

#[test]
fn dax_fs_part_is_pmem_through_map_sync() {
    let Some(dir) = hw_var("dax_fs_part_is_pmem_through_map_sync", "PMEM_DIR") else {
        return;
    };
    let site = Site::new(Path::new(&dir), "8M @/part0");
    let part = site.tmp.path().join("part0");
    let (pmem, map_sync, size) = round_trip(&site, FlushMode::Cpu, false);
    assert!(pmem, "a part on {dir} (ext4 -o dax) must be pmem");
    assert_eq!(map_sync, Some(true), "MAP_SYNC must succeed on {dir}");
    assert_eq!(size, 8 * MIB);
    assert!(!part.exists(), "close_and_remove left {}", part.display());
}

#[test]
fn page_cache_part_is_not_pmem() {
    let Some(dir) = hw_var("page_cache_part_is_not_pmem", "PLAIN_DIR") else {
        return;
    };
    let site = Site::new(Path::new(&dir), "8M @/part0");
    let (pmem, map_sync, size) = round_trip(&site, FlushMode::Msync, false);
    assert!(!pmem, "a part on {dir} (ext4 without dax) must not be pmem");
    assert_eq!(map_sync, Some(false), "MAP_SYNC must fail on {dir}");
    assert_eq!(size, 8 * MIB);
}

/// The size sysfs gives for the Device DAX `dev`, read through the dax
/// bus (`/sys/bus/dax/devices/<name>/size`, or the older
/// `/sys/class/dax/<name>/size`), not the `/sys/dev/char/M:m` path rpmemd
/// uses.
fn devdax_sysfs_size(dev: &Path) -> u64 {
    let name = dev.file_name().unwrap().to_str().unwrap();
    let tries =
        ["/sys/bus/dax/devices", "/sys/class/dax"].map(|d| Path::new(d).join(name).join("size"));
    for p in &tries {
        if let Ok(text) = fs::read_to_string(p) {
            return text
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", p.display()));
        }
    }
    panic!("no sysfs size for {} (tried {tries:?})", dev.display());
}

#[test]
fn device_dax_auto_part_is_pmem_and_device_sized() {
    let Some(dev) = hw_var("device_dax_auto_part_is_pmem_and_device_sized", "DAX_DEV") else {
        return;
    };
    let dev = PathBuf::from(dev);
    let meta = fs::metadata(&dev).unwrap_or_else(|e| panic!("{}: {e}", dev.display()));
    assert!(
        meta.file_type().is_char_device(),
        "{} is not a character device",
        dev.display()
    );
    let want = devdax_sysfs_size(&dev);
    eprintln!(
        "{}: rdev {:#x}, sysfs size {want}",
        dev.display(),
        meta.rdev()
    );

    let site = Site::new(&std::env::temp_dir(), &format!("AUTO {}", dev.display()));
    let keep_set = RemoveOptions {
        force: false,
        remove_poolset_file: false,
    };
    // The rig's own Device DAX check leaves a test pattern at the start of
    // the device, and create (like PMDK's) refuses a part whose first page
    // holds data. Removing the pool zeroes the first 2 MiB of a Device DAX
    // without reading its header.
    remove_with(&site.dir, "hw.set", keep_set, &unforced())
        .unwrap_or_else(|e| panic!("initial remove: {e}"));

    let (pmem, _map_sync, size) = round_trip(&site, FlushMode::Cpu, true);
    assert!(pmem, "a Device DAX part must be pmem");
    assert_eq!(size, want, "pool size must be the Device DAX size");
    // close_and_remove zeroed the device's header: the pool can no longer
    // be opened, and a new create finds the device clean.
    assert!(Pool::open_with(&site.dir, "hw.set", &unforced()).is_err());
    let pool = Pool::create_with(&site.dir, "hw.set", Some(&attr()), &unforced())
        .unwrap_or_else(|e| panic!("create after remove: {e}"));
    assert!(pool.is_pmem());
    pool.close().unwrap();
    // A Device DAX that holds a pool is refused by create (RPMEM_ERR_EXISTS).
    let err = Pool::create_with(&site.dir, "hw.set", Some(&attr()), &unforced())
        .expect_err("create over an existing pool must fail");
    eprintln!("create over the existing pool: {err}");
    assert_eq!(err.status(), status::EXISTS, "{err}");
    remove_with(&site.dir, "hw.set", keep_set, &unforced()).unwrap();
    assert!(dev.exists(), "remove must not unlink a Device DAX");
}
