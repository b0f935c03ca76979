//! SET_ATTR is atomic across the parts of a pool: a crash at any step of
//! the rewrite leaves a pool that opens, whose part headers all agree, and
//! whose attributes are either all the old ones or all the new ones (the
//! new ones once the intent record was durable).
//!
//! The crash is injected with `Pool::set_attr_crash_test`, which runs the
//! real SET_ATTR up to a step and returns as if the process had died there;
//! dropping the pool then unmaps it and releases its locks, as the kernel
//! does for a dead process. Torn writes (a partial intent record, a header
//! half rewritten) are written the way a crash would leave them.

use std::fs;
use std::path::PathBuf;

use rpmem_core::attr::PoolAttr;
use rpmem_core::pool_hdr::{check_parts, to_attr, PoolHdrRepr};
use rpmemd::pool::{
    status, NameProblem, Pool, PoolError, PoolOptions, PoolsetDir, Recovery, SetAttrCrash,
};

const PART: u64 = 2 << 20;

struct Env {
    tmp: tempfile::TempDir,
    dir: PoolsetDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        for d in ["sets", "parts"] {
            fs::create_dir(tmp.path().join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
        }
        let dir = PoolsetDir::open(tmp.path().join("sets")).unwrap_or_else(|e| panic!("{e}"));
        Env { tmp, dir }
    }

    fn part(&self, i: usize) -> PathBuf {
        self.tmp.path().join("parts").join(format!("part{i}"))
    }

    /// Writes `sets/<name>` with `nparts` parts of 2 MiB.
    fn poolset(&self, name: &str, nparts: usize, options: &str) {
        let mut text = format!("PMEMPOOLSET\n{options}");
        for i in 0..nparts {
            text.push_str(&format!("{PART} {}\n", self.part(i).display()));
        }
        let path = self.tmp.path().join("sets").join(name);
        fs::write(path, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    fn sets_listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.tmp.path().join("sets"))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    fn create(&self, name: &str, attr: &PoolAttr) -> Result<Pool, PoolError> {
        Pool::create_with(&self.dir, name, Some(attr), &opts())
    }

    fn open(&self, name: &str) -> Result<Pool, PoolError> {
        Pool::open_with(&self.dir, name, &opts())
    }
}

fn opts() -> PoolOptions {
    PoolOptions {
        pmem_force: Some(false),
        ..PoolOptions::from_env()
    }
}

/// Attributes with every field non-zero (so none is replaced by a default)
/// and every field different for different `seed`s.
fn attr(seed: u8, single_hdr: bool) -> PoolAttr {
    let seq = |start: u8| -> [u8; 16] { std::array::from_fn(|i| start.wrapping_add(i as u8)) };
    PoolAttr {
        signature: [b'C', b'R', b'A', b'S', b'H', b'0' + seed, b'!', 0],
        major: u32::from(seed) + 1,
        compat_features: u32::from(seed) << 8,
        // CKSUM_2K, as libpmemobj sets it, and SINGLEHDR for such pool sets.
        incompat_features: 0x2 | u32::from(single_hdr),
        ro_compat_features: u32::from(seed) << 4,
        poolset_uuid: seq(seed.wrapping_mul(16)),
        uuid: seq(seed.wrapping_mul(16).wrapping_add(1)),
        next_uuid: seq(seed.wrapping_mul(16).wrapping_add(2)),
        prev_uuid: seq(seed.wrapping_mul(16).wrapping_add(3)),
        user_flags: seq(seed.wrapping_mul(16).wrapping_add(4)),
    }
}

/// The part headers as the files hold them; every one must parse and
/// together they must pass PMDK's remote header check.
fn headers_on_disk(env: &Env, nhdrs: usize, what: &str) -> Vec<PoolHdrRepr> {
    let hdrs: Vec<PoolHdrRepr> = (0..nhdrs)
        .map(|i| {
            let bytes = fs::read(env.part(i)).unwrap_or_else(|e| panic!("{what}: read: {e}"));
            PoolHdrRepr::parse_bytes(&bytes[..4096])
                .unwrap_or_else(|e| panic!("{what}: part {i} header: {e}"))
        })
        .collect();
    check_parts(&hdrs).unwrap_or_else(|e| panic!("{what}: the part headers disagree: {e}"));
    hdrs
}

fn same_attr_fields(a: &PoolAttr, b: &PoolAttr) -> bool {
    a == b
}

/// Creates a pool of `nparts` parts with `attr(1)`, crashes a SET_ATTR to
/// `attr(2)` at `crash`, and checks what opening it again gives.
fn crash_and_reopen(nparts: usize, options: &str, crash: SetAttrCrash) {
    let what = format!("{nparts} part(s) {options:?}, crash at {crash:?}");
    let env = Env::new();
    env.poolset("p.set", nparts, options);
    let single = options.contains("SINGLEHDR");
    let old = attr(1, single);
    let new = attr(2, single);
    let pool = env
        .create("p.set", &old)
        .unwrap_or_else(|e| panic!("{what}: create: {e}"));
    let nhdrs = if single { 1 } else { nparts };
    drop(pool);

    let mut pool = env
        .open("p.set")
        .unwrap_or_else(|e| panic!("{what}: open before the crash: {e}"));
    pool.set_attr_crash_test(&new, crash)
        .unwrap_or_else(|e| panic!("{what}: set_attr up to the crash: {e}"));
    // The process "dies": the mapping and the locks go.
    drop(pool);

    let pool = env
        .open("p.set")
        .unwrap_or_else(|e| panic!("{what}: the pool does not open after the crash: {e}"));
    let want = if crash.after_record() { new } else { old };
    match (crash, pool.recovery()) {
        (SetAttrCrash::BeforeRecord | SetAttrCrash::RecordRemoved, None) => {}
        (
            SetAttrCrash::TornRecord(_) | SetAttrCrash::HoledRecord,
            Some(Recovery::Discarded { .. }),
        ) => {}
        (_, Some(Recovery::RolledForward { rewritten })) if crash.after_record() => {
            let expect: Vec<usize> = match crash {
                SetAttrCrash::RecordDurable => (0..nhdrs).collect(),
                SetAttrCrash::TornHeader(k) => (k..nhdrs).collect(),
                SetAttrCrash::AfterHeader(k) => (k + 1..nhdrs).collect(),
                _ => Vec::new(),
            };
            assert_eq!(rewritten, &expect, "{what}: parts rewritten on open");
        }
        (_, r) => panic!("{what}: opening did {r:?} with the intent record"),
    }
    let got = pool.attr();
    assert!(
        same_attr_fields(&got, &want),
        "{what}: attributes after reopening are {got:?}, expected the {} ones {want:?}",
        if crash.after_record() { "new" } else { "old" }
    );
    drop(pool);

    let hdrs = headers_on_disk(&env, nhdrs, &what);
    for (i, h) in hdrs.iter().enumerate() {
        let mut a = to_attr(h);
        // Only part 0 carries the pool's uuid; the others have their own.
        a.uuid = want.uuid;
        assert!(
            same_attr_fields(&a, &want),
            "{what}: part {i}'s header holds {a:?}, expected {want:?}"
        );
    }
    assert_eq!(
        env.sets_listing(),
        ["p.set"],
        "{what}: something is left next to the pool set file"
    );

    // Opening again changes nothing, and SET_ATTR works on the recovered pool.
    let mut pool = env
        .open("p.set")
        .unwrap_or_else(|e| panic!("{what}: second open: {e}"));
    assert!(same_attr_fields(&pool.attr(), &want), "{what}");
    let third = attr(3, single);
    pool.set_attr(Some(&third))
        .unwrap_or_else(|e| panic!("{what}: set_attr after recovery: {e}"));
    drop(pool);
    let pool = env
        .open("p.set")
        .unwrap_or_else(|e| panic!("{what}: open after a later set_attr: {e}"));
    assert!(same_attr_fields(&pool.attr(), &third), "{what}");
}

fn every_crash_point(nparts: usize, options: &str) {
    let nhdrs = if options.contains("SINGLEHDR") {
        1
    } else {
        nparts
    };
    for crash in SetAttrCrash::every(nhdrs) {
        crash_and_reopen(nparts, options, crash);
    }
}

#[test]
fn one_part_survives_a_crash_at_every_step() {
    every_crash_point(1, "");
}

#[test]
fn two_parts_survive_a_crash_at_every_step() {
    every_crash_point(2, "");
}

#[test]
fn three_parts_survive_a_crash_at_every_step() {
    every_crash_point(3, "");
}

#[test]
fn singlehdr_pool_survives_a_crash_at_every_step() {
    every_crash_point(3, "OPTION SINGLEHDR\n");
}

#[test]
fn every_step_is_a_crash_point() {
    // Before the record, three torn records, the durable record, a torn
    // header and a rewritten header per part, the record removed.
    assert_eq!(SetAttrCrash::every(3).len(), 6 + 2 * 3 + 1);
}

/// Sets up a two-part pool with `attr(1)` and an intent record left by a
/// SET_ATTR to `attr(2)` that crashed right after the record was durable.
fn pool_with_durable_record(env: &Env) {
    env.poolset("p.set", 2, "");
    drop(
        env.create("p.set", &attr(1, false))
            .unwrap_or_else(|e| panic!("create: {e}")),
    );
    let mut pool = env.open("p.set").unwrap_or_else(|e| panic!("open: {e}"));
    pool.set_attr_crash_test(&attr(2, false), SetAttrCrash::RecordDurable)
        .unwrap_or_else(|e| panic!("set_attr: {e}"));
    drop(pool);
}

#[test]
fn a_record_that_does_not_fit_the_headers_is_refused_and_kept() {
    let env = Env::new();
    pool_with_durable_record(&env);
    // Part 1's header changes by other means: it is now neither the header
    // before the SET_ATTR nor the one after it.
    let mut bytes = fs::read(env.part(1)).unwrap_or_else(|e| panic!("{e}"));
    let mut hdr = PoolHdrRepr::parse_bytes(&bytes[..4096]).unwrap_or_else(|e| panic!("{e}"));
    hdr.crtime ^= 1;
    hdr.emit(&mut bytes[..4096])
        .unwrap_or_else(|e| panic!("{e}"));
    fs::write(env.part(1), &bytes).unwrap_or_else(|e| panic!("{e}"));
    let e = env
        .open("p.set")
        .map(|_| ())
        .expect_err("a misfit record must stop the open");
    let m = e.to_string();
    assert_eq!(e.status(), status::POOL_CFG, "{m}");
    assert!(
        matches!(e, PoolError::Intent { .. })
            && m.contains("p.set.rpmemd-set-attr")
            && m.contains("part 1")
            && m.contains("neither the one before nor the one after"),
        "{m}"
    );
    // Nothing was written and the record is still there.
    let after = fs::read(env.part(1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after[..4096], bytes[..4096]);
    assert_eq!(env.sets_listing(), ["p.set", "p.set.rpmemd-set-attr"]);
}

#[test]
fn a_record_for_other_parts_is_refused() {
    let env = Env::new();
    pool_with_durable_record(&env);
    // The pool set file now names other part files (same sizes).
    for i in 0..2 {
        fs::copy(env.part(i), env.part(i + 5)).unwrap_or_else(|e| panic!("{e}"));
    }
    let text = format!(
        "PMEMPOOLSET\n{PART} {}\n{PART} {}\n",
        env.part(5).display(),
        env.part(6).display()
    );
    fs::write(env.tmp.path().join("sets/p.set"), text).unwrap_or_else(|e| panic!("{e}"));
    let e = env
        .open("p.set")
        .map(|_| ())
        .expect_err("the record names other parts");
    let m = e.to_string();
    assert!(m.contains("its part 0 is") && m.contains("part0"), "{m}");
}

#[test]
fn create_removes_the_record_of_a_former_pool() {
    let env = Env::new();
    pool_with_durable_record(&env);
    for i in 0..2 {
        fs::remove_file(env.part(i)).unwrap_or_else(|e| panic!("{e}"));
    }
    let pool = env
        .create("p.set", &attr(3, false))
        .unwrap_or_else(|e| panic!("create over a stale record: {e}"));
    drop(pool);
    assert_eq!(env.sets_listing(), ["p.set"]);
    let pool = env.open("p.set").unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(pool.recovery(), None);
    assert_eq!(pool.attr(), attr(3, false));
}

#[test]
fn names_of_intent_records_are_not_pool_set_names() {
    let env = Env::new();
    pool_with_durable_record(&env);
    for name in ["p.set.rpmemd-set-attr", "sub/x.rpmemd-set-attr"] {
        let e = env.open(name).map(|_| ()).expect_err("a reserved name");
        assert!(
            matches!(
                e,
                PoolError::BadName {
                    problem: NameProblem::Reserved,
                    ..
                }
            ),
            "{name}: {e}"
        );
        assert_eq!(e.status(), status::BADNAME);
    }
}

#[test]
fn set_attr_leaves_no_record_and_names_where_it_would_be() {
    let env = Env::new();
    env.poolset("p.set", 3, "");
    let mut pool = env
        .create("p.set", &attr(1, false))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pool
        .intent_record_path()
        .ends_with("sets/p.set.rpmemd-set-attr"));
    pool.set_attr(Some(&attr(2, false)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool.attr(), attr(2, false));
    assert_eq!(env.sets_listing(), ["p.set"]);
}

#[test]
fn removing_the_pool_removes_its_record() {
    let env = Env::new();
    pool_with_durable_record(&env);
    rpmemd::pool::remove_with(
        &env.dir,
        "p.set",
        rpmemd::pool::RemoveOptions {
            force: false,
            remove_poolset_file: true,
        },
        &opts(),
    )
    .unwrap_or_else(|e| panic!("remove: {e}"));
    assert!(env.sets_listing().is_empty(), "{:?}", env.sets_listing());
}

#[test]
fn a_pool_set_name_near_name_max_has_a_record_too() {
    let env = Env::new();
    let name = format!("{}.set", "n".repeat(246)); // 250 bytes
    env.poolset(&name, 2, "");
    drop(
        env.create(&name, &attr(1, false))
            .unwrap_or_else(|e| panic!("create: {e}")),
    );
    let mut pool = env.open(&name).unwrap_or_else(|e| panic!("open: {e}"));
    pool.set_attr_crash_test(&attr(2, false), SetAttrCrash::AfterHeader(0))
        .unwrap_or_else(|e| panic!("set_attr: {e}"));
    drop(pool);
    assert_eq!(env.sets_listing().len(), 2, "{:?}", env.sets_listing());
    let pool = env.open(&name).unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(pool.attr(), attr(2, false));
    assert_eq!(env.sets_listing(), [name]);
}

#[test]
fn a_removal_that_leaves_parts_keeps_the_record() {
    let env = Env::new();
    pool_with_durable_record(&env);
    // Another process holds part 1 (a flock of its own).
    let holder = fs::File::open(env.part(1)).unwrap_or_else(|e| panic!("{e}"));
    holder
        .try_lock()
        .unwrap_or_else(|e| panic!("locking part 1: {e}"));
    let report = rpmemd::pool::remove_report(
        &env.dir,
        "p.set",
        rpmemd::pool::RemoveOptions {
            force: true,
            remove_poolset_file: false,
        },
        &opts(),
    )
    .unwrap_or_else(|e| panic!("remove: {e}"));
    assert!(report.left_something());
    assert_eq!(env.sets_listing(), ["p.set", "p.set.rpmemd-set-attr"]);
}
