//! Pool storage of rpmemd against real files: create, open, set_attr,
//! close, remove, locking, mapping, pmem facts and flushing.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rpmem_core::attr::PoolAttr;
use rpmem_core::flush::{persist_range, FlushMode, FlushOps};
use rpmem_core::pool_hdr::{PoolHdrRepr, POOL_FEAT_SINGLEHDR};
use rpmemd::pool::{
    remove, remove_with, status, NameProblem, Pool, PoolError, PoolOptions, PoolsetDir,
    RemoveOptions, Strategy, MIN_PART, MIN_POOL,
};
use rstest::rstest;

const MIB: u64 = 1 << 20;

/// A pool set directory `sets/` and a directory `parts/` for part files.
struct Env {
    tmp: tempfile::TempDir,
    dir: PoolsetDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sets")).unwrap();
        fs::create_dir(tmp.path().join("parts")).unwrap();
        let dir = PoolsetDir::open(tmp.path().join("sets")).unwrap();
        Env { tmp, dir }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn part(&self, name: &str) -> PathBuf {
        self.root().join("parts").join(name)
    }

    /// Writes `sets/<name>` with `body`, where `@` stands for the parts dir.
    fn set(&self, name: &str, body: &str) {
        let parts = self.root().join("parts");
        let text = format!(
            "PMEMPOOLSET\n{}",
            body.replace('@', parts.to_str().unwrap())
        );
        let p = self.root().join("sets").join(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(p, text).unwrap();
    }

    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root().join("parts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

fn attr(incompat: u32) -> PoolAttr {
    let seq = |start: u8| -> [u8; 16] { std::array::from_fn(|i| start + i as u8) };
    PoolAttr {
        signature: *b"RPMEMCYC",
        major: 0x0102_0304,
        compat_features: 0x11,
        incompat_features: incompat,
        ro_compat_features: 0x33,
        poolset_uuid: seq(0x10),
        uuid: seq(0x20),
        next_uuid: seq(0x30),
        prev_uuid: seq(0x40),
        user_flags: seq(0x50),
    }
}

/// The attributes PMDK's rpmemd wrote into the reference header.
fn pmdk_set_attr() -> PoolAttr {
    PoolAttr {
        signature: *b"RPMEMSET",
        major: 0x0a0b_0c0d,
        ..attr(0x22)
    }
}

fn opts() -> PoolOptions {
    PoolOptions {
        pmem_force: None,
        ..PoolOptions::from_env()
    }
}

fn create(env: &Env, name: &str, a: Option<&PoolAttr>) -> Result<Pool, PoolError> {
    Pool::create_with(&env.dir, name, a, &opts())
}

fn open(env: &Env, name: &str) -> Result<Pool, PoolError> {
    Pool::open_with(&env.dir, name, &opts())
}

fn header_of(path: &Path) -> PoolHdrRepr {
    let bytes = fs::read(path).unwrap();
    PoolHdrRepr::parse_bytes(&bytes[..4096]).unwrap()
}

fn reference_header() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/pmdk-1.12.1/pool_hdr/rpmemd_created_hdr_after_set_attr.bin");
    fs::read(p).unwrap()
}

// ---------------------------------------------------------------- names

#[rstest]
#[case("/etc/passwd", NameProblem::Absolute)]
#[case("../escape.set", NameProblem::DotDot)]
#[case("sub/../../escape.set", NameProblem::DotDot)]
#[case("", NameProblem::Empty)]
#[case("out-link.set", NameProblem::SymlinkEscapes)]
#[case("outdir/pool.set", NameProblem::SymlinkEscapes)]
#[case("abs-link.set", NameProblem::SymlinkEscapes)]
fn names_escaping_the_poolset_dir_are_refused(
    #[case] name: &str,
    #[case] problem: NameProblem,
    #[values(Strategy::Openat2, Strategy::Walk)] strategy: Strategy,
) {
    let env = Env::new();
    // A valid pool set outside the pool set directory, reachable only by escaping.
    fs::write(
        env.root().join("escape.set"),
        format!("PMEMPOOLSET\n2M {}\n", env.part("p").display()),
    )
    .unwrap();
    fs::create_dir(env.root().join("elsewhere")).unwrap();
    fs::copy(
        env.root().join("escape.set"),
        env.root().join("elsewhere/pool.set"),
    )
    .unwrap();
    symlink("../escape.set", env.root().join("sets/out-link.set")).unwrap();
    symlink(
        env.root().join("escape.set"),
        env.root().join("sets/abs-link.set"),
    )
    .unwrap();
    symlink("../elsewhere", env.root().join("sets/outdir")).unwrap();
    let dir = PoolsetDir::open_with(env.root().join("sets"), strategy).unwrap();

    for result in [
        Pool::create_with(&dir, name, Some(&attr(0x22)), &opts()).map(drop),
        Pool::open_with(&dir, name, &opts()).map(drop),
        remove(&dir, name, RemoveOptions::default()),
        remove(
            &dir,
            name,
            RemoveOptions {
                force: true,
                remove_poolset_file: true,
            },
        ),
    ] {
        match result {
            Err(e @ PoolError::BadName { .. }) => {
                assert_eq!(e.status(), status::BADNAME, "{e}");
                assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
                let PoolError::BadName { problem: p, .. } = e else {
                    unreachable!()
                };
                assert_eq!(p, problem);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        !env.part("p").exists(),
        "nothing may be created through an escaping name"
    );
    assert!(env.root().join("escape.set").exists());
    assert!(env.root().join("elsewhere/pool.set").exists());
}

#[test]
fn symlinks_inside_the_poolset_dir_are_followed() {
    let env = Env::new();
    env.set("real/pool.set", "2M @/p\n");
    symlink("real", env.root().join("sets/alias")).unwrap();
    let pool = create(&env, "alias/pool.set", Some(&attr(0x22))).unwrap();
    assert_eq!(pool.nparts(), 1);
}

#[test]
fn a_pool_set_name_must_name_a_regular_file() {
    let env = Env::new();
    fs::create_dir(env.root().join("sets/adir")).unwrap();
    let fifo = std::ffi::CString::new(env.root().join("sets/fifo.set").to_str().unwrap()).unwrap();
    // SAFETY: plain mkfifo(3) on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for name in ["adir", "fifo.set"] {
        let e = open(&env, name).unwrap_err();
        assert_eq!(e.status(), status::POOL_CFG, "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}

#[test]
fn missing_pool_set_is_noexist() {
    let env = Env::new();
    let e = open(&env, "nope.set").unwrap_err();
    assert_eq!(e.status(), status::NOEXIST, "{e}");
    let e = create(&env, "dir/nope.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::NOEXIST, "{e}");
    assert!(
        e.to_string().contains("\"dir\""),
        "names the missing component: {e}"
    );
}

// ---------------------------------------------------------------- create

#[test]
fn create_writes_0600_parts_with_linked_headers() {
    let env = Env::new();
    env.set("p.set", "2M @/p0\n3M @/p1\n2M @/p2\n");
    let a = attr(0x22);
    let pool = create(&env, "p.set", Some(&a)).unwrap();
    // Pool size: all parts rounded to pages, minus the headers of parts 1 and 2.
    assert_eq!(pool.size(), 7 * MIB - 2 * 4096);
    assert_eq!(pool.len() as u64, pool.size());
    assert_eq!(pool.attr(), a);
    assert!(pool.check_requested_size(pool.size()).is_ok());
    let e = pool.check_requested_size(pool.size() + 1).unwrap_err();
    assert_eq!(e.status(), status::BADSIZE);

    let hdrs: Vec<PoolHdrRepr> = (0..3)
        .map(|i| header_of(&env.part(&format!("p{i}"))))
        .collect();
    for (i, size) in [2 * MIB, 3 * MIB, 2 * MIB].iter().enumerate() {
        let meta = fs::metadata(env.part(&format!("p{i}"))).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "part {i}");
        assert_eq!(meta.len(), *size);
        let h = &hdrs[i];
        assert_eq!(h.signature, a.signature);
        assert_eq!(h.major, a.major);
        assert_eq!(h.features.compat, a.compat_features);
        assert_eq!(h.features.incompat, a.incompat_features);
        assert_eq!(h.features.ro_compat, a.ro_compat_features);
        assert_eq!(h.poolset_uuid, a.poolset_uuid);
        assert_eq!(h.next_repl_uuid, a.next_uuid);
        assert_eq!(h.prev_repl_uuid, a.prev_uuid);
        assert_eq!(h.arch_flags_bytes(), a.user_flags);
        assert_ne!(h.crtime, 0);
    }
    // Part 0 carries the client's uuid; the parts form a ring.
    assert_eq!(hdrs[0].uuid, a.uuid);
    assert_ne!(hdrs[1].uuid, hdrs[2].uuid);
    for i in 0..3 {
        assert_eq!(hdrs[i].next_part_uuid, hdrs[(i + 1) % 3].uuid);
        assert_eq!(hdrs[i].prev_part_uuid, hdrs[(i + 2) % 3].uuid);
    }
    assert_eq!(hdrs[0].to_attr(), a);
    rpmem_core::pool_hdr::check_parts(&hdrs).unwrap();
}

#[test]
fn zero_attributes_get_pmdks_defaults() {
    let env = Env::new();
    env.set("p.set", "2M @/p0\n");
    let a = PoolAttr {
        signature: *b"ZEROUUID",
        major: 1,
        ..PoolAttr::ZERO
    };
    let pool = create(&env, "p.set", Some(&a)).unwrap();
    let got = pool.attr();
    assert_ne!(got.poolset_uuid, [0; 16]);
    assert_ne!(got.uuid, [0; 16]);
    assert_eq!(got.prev_uuid, got.uuid);
    assert_eq!(got.next_uuid, got.uuid);
    assert_eq!(
        got.user_flags,
        rpmem_core::pool_hdr::ArchFlags::current().to_bytes()
    );
    drop(pool);
    assert_eq!(open(&env, "p.set").unwrap().attr(), got);
}

#[test]
fn nohdrs_pool_has_no_headers() {
    let env = Env::new();
    env.set("n.set", "OPTION NOHDRS\n2M @/n0\n2M @/n1\n");
    let pool = create(&env, "n.set", None).unwrap();
    assert_eq!(pool.attr(), PoolAttr::ZERO);
    assert_eq!(pool.size(), 4 * MIB, "no header is skipped");
    drop(pool);
    for p in ["n0", "n1"] {
        let bytes = fs::read(env.part(p)).unwrap();
        assert!(bytes.iter().all(|b| *b == 0), "{p} has no header");
    }
    let mut pool = open(&env, "n.set").unwrap();
    assert_eq!(pool.attr(), PoolAttr::ZERO);
    pool.set_attr(None).unwrap();
    let e = pool.set_attr(Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
}

#[rstest]
#[case("OPTION NOHDRS\n2M @/x\n", Some(0x22), "NOHDRS")]
#[case("2M @/x\n", None, "no pool attributes")]
#[case("OPTION SINGLEHDR\n2M @/x\n", Some(0x22), "SINGLEHDR")]
#[case("2M @/x\n", Some(0x22 | POOL_FEAT_SINGLEHDR), "SINGLEHDR")]
fn attributes_must_match_the_header_options(
    #[case] body: &str,
    #[case] incompat: Option<u32>,
    #[case] word: &str,
) {
    let env = Env::new();
    env.set("x.set", body);
    let a = incompat.map(attr);
    let e = create(&env, "x.set", a.as_ref()).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(e.to_string().contains(word), "{e}");
    assert!(env.listing().is_empty(), "nothing created");
}

#[test]
fn singlehdr_pool_maps_later_parts_whole() {
    let env = Env::new();
    env.set("s.set", "OPTION SINGLEHDR\n2M @/s0\n2M @/s1\n");
    let a = attr(0x22 | POOL_FEAT_SINGLEHDR);
    let pool = create(&env, "s.set", Some(&a)).unwrap();
    assert_eq!(pool.size(), 4 * MIB);
    assert_eq!(pool.part_range(1), Some((2 * MIB, 2 * MIB)));
    let h = header_of(&env.part("s0"));
    assert_eq!(h.prev_part_uuid, h.uuid);
    assert_eq!(h.next_part_uuid, h.uuid);
    drop(pool);
    assert!(fs::read(env.part("s1")).unwrap().iter().all(|b| *b == 0));
    assert_eq!(open(&env, "s.set").unwrap().attr(), a);
}

#[test]
fn existing_parts_with_data_give_exists() {
    let env = Env::new();
    env.set("e.set", "2M @/e0\n2M @/e1\n");
    // A previous pool's second part: the right size, but holding data.
    let mut old = vec![0u8; 2 * MIB as usize];
    old[100] = 7;
    fs::write(env.part("e1"), &old).unwrap();
    let e = create(&env, "e.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::EXISTS, "{e}");
    assert!(
        e.to_string().contains("e1") && e.to_string().contains("byte 100"),
        "{e}"
    );
    // The part created meanwhile is gone again; the existing one is untouched.
    assert!(!env.part("e0").exists());
    assert_eq!(fs::read(env.part("e1")).unwrap(), old);

    // A pool created twice: the second create finds headers.
    env.set("twice.set", "2M @/t0\n");
    drop(create(&env, "twice.set", Some(&attr(0x22))).unwrap());
    let e = create(&env, "twice.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::EXISTS, "{e}");
    assert!(
        env.part("t0").exists(),
        "an existing pool is never removed by a failed create"
    );
}

#[test]
fn existing_zeroed_parts_of_the_right_size_are_used() {
    let env = Env::new();
    env.set("z.set", "2M @/z0\n");
    fs::write(env.part("z0"), vec![0u8; 2 * MIB as usize]).unwrap();
    fs::set_permissions(env.part("z0"), fs::Permissions::from_mode(0o640)).unwrap();
    let pool = create(&env, "z.set", Some(&attr(0x22))).unwrap();
    assert_eq!(pool.attr(), attr(0x22));
    // Not created here, so its mode is left alone.
    assert_eq!(
        fs::metadata(env.part("z0")).unwrap().permissions().mode() & 0o777,
        0o640
    );

    env.set("w.set", "2M @/w0\n");
    fs::write(env.part("w0"), vec![0u8; MIB as usize * 3]).unwrap();
    let e = create(&env, "w.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(
        e.to_string().contains("3145728") && e.to_string().contains("2097152"),
        "{e}"
    );
}

#[rstest]
#[case("4K @/a\n", "pool of 4096 bytes", "8192")]
#[case("4K @/a\n4K @/b\n", "pool of 4096 bytes", "8192")]
#[case("1M @/a\n", "part 0", "2097152")]
#[case("2M @/a\n1M @/b\n", "part 1", "1048576")]
fn small_parts_and_pools_are_refused(#[case] body: &str, #[case] what: &str, #[case] number: &str) {
    let env = Env::new();
    env.set("small.set", body);
    for e in [
        create(&env, "small.set", Some(&attr(0x22))).unwrap_err(),
        open(&env, "small.set").unwrap_err(),
    ] {
        assert_eq!(e.status(), status::POOL_CFG, "{e}");
        let m = e.to_string();
        assert!(m.contains(what) && m.contains(number), "{m}");
    }
    assert!(env.listing().is_empty());
    assert_eq!(MIN_POOL, 8192);
    assert_eq!(MIN_PART, 2 * MIB);
}

#[rstest]
#[case("2M @/a\nREPLICA remotehost remote.set\n", "line 3", "remote replica")]
#[case("2M @/a\nREPLICA\n2M @/b\n", "2 replicas", "exactly one")]
fn replicas_are_refused(#[case] body: &str, #[case] w1: &str, #[case] w2: &str) {
    let env = Env::new();
    env.set("r.set", body);
    let e = create(&env, "r.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(
        e.to_string().contains(w1) && e.to_string().contains(w2),
        "{e}"
    );
    assert!(env.listing().is_empty());
}

#[test]
fn a_file_cannot_be_two_parts() {
    let env = Env::new();
    env.set("dup.set", "2M @/a\n2M @/b\n2M @/a\n");
    let e = create(&env, "dup.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(e.to_string().contains("parts 0 and 2"), "{e}");
    assert!(env.listing().is_empty());
    // Two names of one existing file.
    fs::write(env.part("real"), vec![0u8; 2 * MIB as usize]).unwrap();
    symlink(env.part("real"), env.part("alias")).unwrap();
    env.set("alias.set", "2M @/real\n2M @/alias\n");
    let e = create(&env, "alias.set", Some(&attr(0x22))).unwrap_err();
    assert!(e.to_string().contains("parts 0 and 1"), "{e}");
}

#[test]
fn parse_errors_name_the_line() {
    let env = Env::new();
    env.set("bad.set", "2M @/a\nbogus line here\n");
    let e = create(&env, "bad.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG);
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn failed_create_leaves_nothing_behind() {
    let env = Env::new();
    let missing = env.root().join("no-such-dir");
    env.set(
        "c.set",
        &format!("2M @/c0\n2M @/c1\n2M {}/c2\n", missing.display()),
    );
    let e = create(&env, "c.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::NOEXIST, "{e}");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    assert!(
        env.listing().is_empty(),
        "created parts removed: {:?}",
        env.listing()
    );
    // And the pool can be created once the directory exists.
    fs::create_dir(&missing).unwrap();
    let pool = create(&env, "c.set", Some(&attr(0x22))).unwrap();
    assert_eq!(pool.nparts(), 3);
}

// ---------------------------------------------------------------- open

#[test]
fn data_and_attributes_survive_close_and_reopen() {
    let env = Env::new();
    env.set("d.set", "2M @/d0\n2M @/d1\n");
    let a = attr(0x22);
    let pool = create(&env, "d.set", Some(&a)).unwrap();
    assert_eq!(pool.part_range(0), Some((0, 2 * MIB)));
    assert_eq!(pool.part_range(1), Some((2 * MIB, 2 * MIB - 4096)));
    // Write across the part boundary through the mapping.
    let boundary = 2 * MIB as usize;
    let data: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(1))
        .collect();
    // SAFETY: the range lies inside the pool mapping, which nothing else uses.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), pool.as_mut_ptr().add(boundary - 32), 64);
    }
    let mut shared = &pool;
    persist_range(&mut shared, FlushMode::Msync, (boundary - 32) as u64, 64).unwrap();
    // Read back through the mapping before it goes: if the file below
    // lacks the bytes, this tells a store that missed the part's mapping
    // from a file that lost what was mapped (a failure seen once under
    // heavy load, not reproduced since).
    assert_eq!(
        &pool.as_slice()[boundary - 32..boundary + 32],
        &data[..],
        "the bytes just stored, read through the pool mapping"
    );
    pool.close().unwrap();

    // On disk: the first half at the end of part 0, the second half just
    // after part 1's header.
    let p0 = fs::read(env.part("d0")).unwrap();
    let p1 = fs::read(env.part("d1")).unwrap();
    assert_eq!(
        &p0[boundary - 32..boundary],
        &data[..32],
        "the end of part 0 in its file (part 0 is {} bytes)",
        p0.len()
    );
    assert_eq!(&p1[4096..4096 + 32], &data[32..]);

    let pool = open(&env, "d.set").unwrap();
    assert_eq!(pool.attr(), a);
    assert_eq!(pool.size(), 4 * MIB - 4096);
    assert_eq!(&pool.as_slice()[boundary - 32..boundary + 32], &data[..]);
    // The header is the start of the pool.
    assert_eq!(&pool.as_slice()[..8], b"RPMEMCYC");
}

#[test]
fn set_attr_persists_in_every_header() {
    let env = Env::new();
    env.set("a.set", "2M @/a0\n2M @/a1\n2M @/a2\n");
    let mut pool = create(&env, "a.set", Some(&attr(0x22))).unwrap();
    let before: Vec<PoolHdrRepr> = (0..3)
        .map(|i| header_of(&env.part(&format!("a{i}"))))
        .collect();
    let mut b = pmdk_set_attr();
    b.uuid = [0x99; 16];
    pool.set_attr(Some(&b)).unwrap();
    assert_eq!(pool.attr(), b);
    drop(pool);
    let after: Vec<PoolHdrRepr> = (0..3)
        .map(|i| header_of(&env.part(&format!("a{i}"))))
        .collect();
    for i in 0..3 {
        assert_eq!(after[i].signature, *b"RPMEMSET");
        assert_eq!(after[i].major, 0x0a0b_0c0d);
        assert_eq!(after[i].crtime, before[i].crtime, "crtime kept");
    }
    assert_eq!(after[0].uuid, [0x99; 16]);
    assert_eq!(after[1].uuid, before[1].uuid);
    assert_eq!(after[1].prev_part_uuid, [0x99; 16]);
    assert_eq!(after[2].next_part_uuid, [0x99; 16]);
    rpmem_core::pool_hdr::check_parts(&after).unwrap();
    assert_eq!(open(&env, "a.set").unwrap().attr(), b);
}

#[test]
fn set_attr_on_one_part_gives_pmdks_header() {
    let env = Env::new();
    env.set("remote.set", "16M @/remote\n");
    let mut pool = create(&env, "remote.set", Some(&attr(0x22))).unwrap();
    pool.set_attr(Some(&pmdk_set_attr())).unwrap();
    drop(pool);
    let ours = fs::read(env.part("remote")).unwrap();
    let theirs = reference_header();
    // Everything but the creation time and the checksum (which covers it).
    assert_eq!(&ours[..120], &theirs[..120]);
    assert_eq!(&ours[128..4088], &theirs[128..4088]);
}

#[test]
fn a_header_written_by_pmdk_is_accepted() {
    let env = Env::new();
    // The header does not record the pool size: any one-part set whose
    // part file has exactly the set's size (and at least 2 MiB) matches.
    // 16 MiB is the size of PMDK's session that wrote it.
    env.set("remote.set", "16M @/remote\n");
    let mut bytes = reference_header();
    bytes.resize(16 * MIB as usize, 0);
    fs::write(env.part("remote"), &bytes).unwrap();
    let pool = open(&env, "remote.set").unwrap();
    assert_eq!(pool.attr(), pmdk_set_attr());
    assert_eq!(pool.size(), 16 * MIB);
    drop(pool);

    // A part file of another size does not match the set.
    env.set("other.set", "8M @/remote\n");
    let e = open(&env, "other.set").unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
}

#[rstest]
#[case(0, 0x41, "checksum")]
#[case(4088, 0x01, "checksum")]
fn corrupt_headers_are_refused(#[case] offset: usize, #[case] xor: u8, #[case] word: &str) {
    let env = Env::new();
    env.set("h.set", "2M @/h0\n2M @/h1\n");
    drop(create(&env, "h.set", Some(&attr(0x22))).unwrap());
    let mut bytes = fs::read(env.part("h1")).unwrap();
    bytes[offset] ^= xor;
    fs::write(env.part("h1"), &bytes).unwrap();
    let e = open(&env, "h.set").unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(
        e.to_string().contains("part 1") && e.to_string().contains(word),
        "{e}"
    );
}

#[test]
fn mismatched_parts_are_refused() {
    let env = Env::new();
    env.set("x.set", "2M @/x0\n");
    env.set("y.set", "2M @/y0\n");
    drop(create(&env, "x.set", Some(&attr(0x22))).unwrap());
    let other = PoolAttr {
        uuid: [0x77; 16],
        ..attr(0x22)
    };
    drop(create(&env, "y.set", Some(&other)).unwrap());
    // A pool set made of parts of two different pools.
    env.set("mix.set", "2M @/x0\n2M @/y0\n");
    let e = open(&env, "mix.set").unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    // A zeroed header.
    fs::write(env.part("z"), vec![0u8; 2 * MIB as usize]).unwrap();
    env.set("zero.set", "2M @/z\n");
    let e = open(&env, "zero.set").unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(e.to_string().contains("zero"), "{e}");
    // A missing part.
    env.set("gone.set", "2M @/x0\n2M @/gone\n");
    let e = open(&env, "gone.set").unwrap_err();
    assert_eq!(e.status(), status::NOEXIST, "{e}");
}

// ---------------------------------------------------------------- directories

#[test]
fn directory_parts_hold_numbered_part_files() {
    let env = Env::new();
    fs::create_dir(env.part("dir0")).unwrap();
    fs::create_dir(env.part("dir1")).unwrap();
    env.set("dirs.set", "OPTION SINGLEHDR\n4M @/dir0\n2M @/dir1/\n");
    let a = attr(0x22 | POOL_FEAT_SINGLEHDR);
    let pool = create(&env, "dirs.set", Some(&a)).unwrap();
    assert_eq!(pool.size(), 6 * MIB);
    let paths: Vec<PathBuf> = pool.part_paths().map(Path::to_path_buf).collect();
    assert_eq!(
        paths,
        vec![env.part("dir0/000000.pmem"), env.part("dir1/000001.pmem")]
    );
    drop(pool);
    assert_eq!(
        fs::metadata(env.part("dir0/000000.pmem")).unwrap().len(),
        4 * MIB
    );
    let pool = open(&env, "dirs.set").unwrap();
    assert_eq!(pool.attr(), a);
    drop(pool);
    remove(&env.dir, "dirs.set", RemoveOptions::default()).unwrap();
    assert_eq!(fs::read_dir(env.part("dir0")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(env.part("dir1")).unwrap().count(), 0);
}

#[rstest]
#[case("4M @/d\n", "SINGLEHDR")]
#[case("OPTION SINGLEHDR\n4M @/d\n2M @/file\n", "mix")]
fn directory_pool_sets_need_singlehdr_and_no_files(#[case] body: &str, #[case] word: &str) {
    let env = Env::new();
    fs::create_dir(env.part("d")).unwrap();
    env.set("d.set", body);
    let e = create(&env, "d.set", Some(&attr(0x22 | POOL_FEAT_SINGLEHDR))).unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(e.to_string().contains(word), "{e}");
}

#[test]
fn directory_part_numbering_gaps_are_refused() {
    let env = Env::new();
    fs::create_dir(env.part("d")).unwrap();
    fs::write(env.part("d/000000.pmem"), vec![0u8; 2 * MIB as usize]).unwrap();
    fs::write(env.part("d/000002.pmem"), vec![0u8; 2 * MIB as usize]).unwrap();
    env.set("d.set", "OPTION SINGLEHDR\n4M @/d\n");
    let e = open(&env, "d.set").unwrap_err();
    assert_eq!(e.status(), status::POOL_CFG, "{e}");
    assert!(e.to_string().contains("000001.pmem"), "{e}");
}

// ---------------------------------------------------------------- locking

#[test]
fn a_pool_in_use_is_busy_even_within_one_process() {
    let env = Env::new();
    env.set("b.set", "2M @/b0\n2M @/b1\n");
    let pool = create(&env, "b.set", Some(&attr(0x22))).unwrap();
    // flock belongs to the open file description: a second open() in the
    // same process conflicts.
    let e = open(&env, "b.set").unwrap_err();
    assert_eq!(e.status(), status::BUSY, "{e}");
    assert!(e.to_string().contains("part 0"), "{e}");
    let e = create(&env, "b.set", Some(&attr(0x22))).unwrap_err();
    assert_eq!(e.status(), status::BUSY, "{e}");
    // From another thread too.
    let name = "b.set".to_owned();
    let dir = PoolsetDir::open(env.root().join("sets")).unwrap();
    let status_from_thread =
        std::thread::spawn(move || Pool::open_with(&dir, &name, &opts()).unwrap_err().status())
            .join()
            .unwrap();
    assert_eq!(status_from_thread, status::BUSY);
    // Removing a pool in use fails and removes nothing.
    let e = remove(
        &env.dir,
        "b.set",
        RemoveOptions {
            force: false,
            remove_poolset_file: true,
        },
    )
    .unwrap_err();
    assert_eq!(e.status(), status::BUSY, "{e}");
    assert!(env.part("b0").exists() && env.part("b1").exists());
    assert!(env.root().join("sets/b.set").exists());
    // The locks go with the pool.
    drop(pool);
    let pool = open(&env, "b.set").unwrap();
    pool.close().unwrap();
    drop(open(&env, "b.set").unwrap());
}

/// Runs one `#[ignore]`d test of this binary in a child process with extra
/// environment; true when it passed.
fn run_child(test: &str, envs: &[(&str, &str)]) -> bool {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("1 passed")
}

#[test]
fn a_pool_in_use_is_busy_for_another_process() {
    let env = Env::new();
    env.set("b.set", "2M @/b0\n");
    let pool = create(&env, "b.set", Some(&attr(0x22))).unwrap();
    let dir = env.root().join("sets");
    assert!(run_child(
        "child_open_is_busy",
        &[("POOL_TEST_DIR", dir.to_str().unwrap())]
    ));
    drop(pool);
    // Once closed, the other process may open it (the child then fails).
    assert!(!run_child(
        "child_open_is_busy",
        &[("POOL_TEST_DIR", dir.to_str().unwrap())]
    ));
}

#[test]
#[ignore = "run by a_pool_in_use_is_busy_for_another_process in a child process"]
fn child_open_is_busy() {
    let dir = PoolsetDir::open(std::env::var("POOL_TEST_DIR").unwrap()).unwrap();
    let e = Pool::open_with(&dir, "b.set", &opts()).unwrap_err();
    assert_eq!(e.status(), status::BUSY, "{e}");
}

// ---------------------------------------------------------------- remove

#[rstest]
#[case(false, false)]
#[case(false, true)]
#[case(true, false)]
#[case(true, true)]
fn remove_removes_parts_and_optionally_the_set_file(
    #[case] force: bool,
    #[case] remove_poolset_file: bool,
) {
    let env = Env::new();
    env.set("r.set", "2M @/r0\n2M @/r1\n");
    drop(create(&env, "r.set", Some(&attr(0x22))).unwrap());
    remove(
        &env.dir,
        "r.set",
        RemoveOptions {
            force,
            remove_poolset_file,
        },
    )
    .unwrap();
    assert!(env.listing().is_empty());
    assert_eq!(env.root().join("sets/r.set").exists(), !remove_poolset_file);
    // The pool can be created again.
    if !remove_poolset_file {
        drop(create(&env, "r.set", Some(&attr(0x22))).unwrap());
    }
}

#[test]
fn remove_without_force_stops_at_a_missing_part_and_force_goes_on() {
    let env = Env::new();
    env.set("r.set", "2M @/r0\n2M @/r1\n2M @/r2\n");
    drop(create(&env, "r.set", Some(&attr(0x22))).unwrap());
    fs::remove_file(env.part("r1")).unwrap();
    let opts = RemoveOptions {
        force: false,
        remove_poolset_file: true,
    };
    let e = remove(&env.dir, "r.set", opts).unwrap_err();
    assert_eq!(e.status(), status::NOEXIST, "{e}");
    assert!(e.to_string().contains("r1"), "{e}");
    assert_eq!(env.listing(), vec!["r0", "r2"], "nothing removed");
    assert!(env.root().join("sets/r.set").exists());

    remove(
        &env.dir,
        "r.set",
        RemoveOptions {
            force: true,
            remove_poolset_file: true,
        },
    )
    .unwrap();
    assert!(env.listing().is_empty());
    assert!(!env.root().join("sets/r.set").exists());
}

#[test]
fn remove_of_a_missing_or_broken_set() {
    let env = Env::new();
    let e = remove(&env.dir, "nope.set", RemoveOptions::default()).unwrap_err();
    assert_eq!(e.status(), status::NOEXIST);
    remove(
        &env.dir,
        "nope.set",
        RemoveOptions {
            force: true,
            remove_poolset_file: true,
        },
    )
    .unwrap();
    env.set("broken.set", "not a pool set\n");
    assert_eq!(
        remove(&env.dir, "broken.set", RemoveOptions::default())
            .unwrap_err()
            .status(),
        status::POOL_CFG
    );
    // With force, the unparsable set file itself is still removed.
    remove(
        &env.dir,
        "broken.set",
        RemoveOptions {
            force: true,
            remove_poolset_file: true,
        },
    )
    .unwrap();
    assert!(!env.root().join("sets/broken.set").exists());
}

#[test]
fn close_and_remove_deletes_the_parts_but_not_the_set() {
    let env = Env::new();
    env.set("c.set", "2M @/c0\n2M @/c1\n");
    let pool = create(&env, "c.set", Some(&attr(0x22))).unwrap();
    pool.close_and_remove().unwrap();
    assert!(env.listing().is_empty());
    assert!(env.root().join("sets/c.set").exists());
    assert_eq!(open(&env, "c.set").unwrap_err().status(), status::NOEXIST);
}

#[test]
fn remove_with_explicit_options_matches_remove() {
    let env = Env::new();
    env.set("o.set", "2M @/o0\n");
    drop(create(&env, "o.set", Some(&attr(0x22))).unwrap());
    remove_with(&env.dir, "o.set", RemoveOptions::default(), &opts()).unwrap();
    assert!(env.listing().is_empty());
}

// ---------------------------------------------------------------- pmem and flushing

#[test]
fn regular_files_are_not_pmem_unless_forced() {
    let env = Env::new();
    env.set("p.set", "2M @/p0\n");
    let o = PoolOptions {
        pmem_force: None,
        ..PoolOptions::from_env()
    };
    let pool = Pool::create_with(&env.dir, "p.set", Some(&attr(0x22)), &o).unwrap();
    // On a file system without DAX, MAP_SYNC is refused: page cache, not pmem.
    assert_eq!(pool.is_pmem(), pool.part_map_sync(0).unwrap());
    assert!(!pool.cache_persistent() || pool.is_pmem());
    drop(pool);
    let forced = PoolOptions {
        pmem_force: Some(true),
        ..PoolOptions::from_env()
    };
    assert!(Pool::open_with(&env.dir, "p.set", &forced)
        .unwrap()
        .is_pmem());
    let unforced = PoolOptions {
        pmem_force: Some(false),
        ..PoolOptions::from_env()
    };
    assert!(!Pool::open_with(&env.dir, "p.set", &unforced)
        .unwrap()
        .is_pmem());
}

#[test]
fn pmem_is_pmem_force_env_makes_the_pool_pmem() {
    let env = Env::new();
    env.set("p.set", "2M @/p0\n");
    let dir = env.root().join("sets");
    assert!(run_child(
        "child_env_force",
        &[
            ("POOL_TEST_DIR", dir.to_str().unwrap()),
            ("PMEM_IS_PMEM_FORCE", "1"),
            ("WANT_PMEM", "1")
        ]
    ));
    assert!(run_child(
        "child_env_force",
        &[
            ("POOL_TEST_DIR", dir.to_str().unwrap()),
            ("PMEM_IS_PMEM_FORCE", "0"),
            ("WANT_PMEM", "0")
        ]
    ));
}

#[test]
#[ignore = "run by pmem_is_pmem_force_env_makes_the_pool_pmem in a child process"]
fn child_env_force() {
    let dir = PoolsetDir::open(std::env::var("POOL_TEST_DIR").unwrap()).unwrap();
    let want = std::env::var("WANT_PMEM").unwrap() == "1";
    let pool = match Pool::open(&dir, "p.set") {
        Ok(p) => p,
        Err(_) => Pool::create(&dir, "p.set", Some(&attr(0x22))).unwrap(),
    };
    assert_eq!(pool.is_pmem(), want);
}

#[rstest]
#[case(FlushMode::Cpu)]
#[case(FlushMode::FenceOnly)]
#[case(FlushMode::Msync)]
fn flush_ops_run_on_the_mapping(#[case] mode: FlushMode) {
    let env = Env::new();
    env.set("f.set", "2M @/f0\n2M @/f1\n");
    let mut pool = create(&env, "f.set", Some(&attr(0x22))).unwrap();
    let size = pool.size();
    // SAFETY: inside the mapping, no other user.
    unsafe {
        pool.as_mut_ptr().add(5000).write(0x5a);
        pool.as_mut_ptr().add(3 * MIB as usize).write(0xa5);
    }
    // Whole pool, across the part boundary, and single lines.
    persist_range(&mut pool, mode, 0, size).unwrap();
    persist_range(&mut pool, mode, 2 * MIB - 100, 200).unwrap();
    rpmem_core::flush::deep_persist_range(&mut pool, mode, 5000, 1).unwrap();
    // Out-of-range requests are ignored by flush_line and clamped to the
    // pool by msync.
    pool.flush_line(size + 64);
    assert!(pool.msync(size - 4096, 8192).is_ok());
    pool.fence();
    pool.deep_flush().unwrap();
    drop(pool);
    assert_eq!(fs::read(env.part("f0")).unwrap()[5000], 0x5a);
    // Pool offset 3 MiB is part 1 offset 1 MiB + its 4 KiB header.
    assert_eq!(fs::read(env.part("f1")).unwrap()[MIB as usize + 4096], 0xa5);
}

/// Pools mapped by several threads at once keep their own bytes: mapping a
/// part over the pool's reservation used to try `MAP_SYNC | MAP_FIXED`
/// first, which ext4 and xfs refuse only after the reserved range was
/// unmapped, so another thread's header mapping could land in the hole and
/// be mapped over (its header then read as the other pool's zeros).
#[test]
fn pools_mapped_by_concurrent_threads_keep_their_headers() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 150;
    let env = Env::new();
    for t in 0..THREADS {
        let mut body = String::new();
        for p in 0..3 {
            body.push_str(&format!("2M @/t{t}p{p}\n"));
        }
        env.set(&format!("t{t}.set"), &body);
        drop(create(&env, &format!("t{t}.set"), Some(&attr(0))).unwrap());
    }
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let env = &env;
            s.spawn(move || {
                let name = format!("t{t}.set");
                for round in 0..ROUNDS {
                    let mut pool = open(env, &name)
                        .unwrap_or_else(|e| panic!("thread {t} round {round}: open: {e}"));
                    let mut a = attr(0);
                    a.major = u32::try_from(round).unwrap_or(0);
                    pool.set_attr(Some(&a))
                        .unwrap_or_else(|e| panic!("thread {t} round {round}: set_attr: {e}"));
                }
            });
        }
    });
}
