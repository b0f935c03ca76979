//! Debian 12's own PMDK 1.12.1 (`pmempool`, libpmemobj, libpmempool)
//! with a remote replica, through our `librpmem.so.1` found with
//! `LD_LIBRARY_PATH`, rpmemd started in local mode (`RPMEM_LAUNCH=local`):
//! PMDK's unchanged binaries create, use, inspect and remove a pool whose
//! replica lives in our rpmemd's pool set directory, and the replica's part
//! file holds a valid PMDK pool header and the same bytes as the local
//! replica.
//!
//! Needs the Debian packages `pmdk-tools libpmemobj1 libpmempool1
//! libpmemobj-dev` (`.ci/install-deps`); without them the tests fail and
//! name the packages.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{CBuild, TestEnv};

const POOL: u64 = 16 << 20;
const PMEMPOOL: &str = "/usr/bin/pmempool";
const PACKAGES: &str = "pmdk-tools libpmemobj1 libpmempool1 libpmemobj-dev";

/// A pool set `local.set` in the scratch directory: one local part and the
/// replica `REPLICA localhost remote.set`, whose pool set file is in
/// rpmemd's pool set directory. Returns (local.set, local part, remote part).
fn layout(env: &TestEnv) -> (PathBuf, PathBuf, PathBuf) {
    assert!(
        Path::new(PMEMPOOL).exists(),
        "{PMEMPOOL} is missing: install the Debian packages {PACKAGES} (.ci/install-deps)"
    );
    let remote = env.poolset("remote.set", &[POOL], false);
    let local_part = env.path("local.part0");
    let local_set = env.path("local.set");
    fs::write(
        &local_set,
        format!(
            "PMEMPOOLSET\n{POOL} {}\nREPLICA localhost remote.set\n",
            local_part.display()
        ),
    )
    .expect("write local.set");
    (local_set, local_part, remote[0].clone())
}

/// Runs `program` with our library first on the library path and rpmemd
/// launched locally.
fn pmdk(program: &Path, args: &[&str], env: &TestEnv, b: &CBuild) -> Output {
    let lib = b.lib_dir();
    common::run(
        program,
        args,
        env,
        &[("LD_LIBRARY_PATH", lib.to_str().expect("UTF-8 path"))],
    )
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `Name   : value` lines of `pmempool info`, in order.
fn fields<'a>(info: &'a str, name: &str) -> Vec<&'a str> {
    info.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then_some(v.trim())
        })
        .collect()
}

/// Bytes `[from, len)` of both files are equal; the pool header (first
/// 4 KiB) differs per replica, and libpmemobj's run-time fields of its
/// header page are not replicated, so callers start at 0x2000.
fn same_bytes(a: &Path, b: &Path, from: usize) {
    let x = fs::read(a).expect("read local part");
    let y = fs::read(b).expect("read remote part");
    assert_eq!(x.len(), y.len());
    if let Some(i) = (from..x.len()).find(|&i| x[i] != y[i]) {
        panic!(
            "{} and {} differ at offset {i:#x} (from {from:#x} on they must be equal)",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn pmempool_creates_inspects_and_removes_a_pool_with_a_replica_on_our_rpmemd() {
    let b = CBuild::new();
    let env = TestEnv::new();
    let (local_set, local_part, remote_part) = layout(&env);
    let set = local_set.to_str().expect("UTF-8 path");
    let pmempool = Path::new(PMEMPOOL);

    let out = pmdk(
        pmempool,
        &["create", "--layout", "test", "obj", set],
        &env,
        &b,
    );
    common::assert_passed(&out, &env);
    assert!(remote_part.exists(), "rpmemd created the replica's part");

    let out = pmdk(pmempool, &["info", set], &env, &b);
    common::assert_passed(&out, &env);
    let info = text(&out);
    assert!(info.contains("Replica 1 - remote"), "{info}");
    assert_eq!(fields(&info, "node"), ["localhost"], "{info}");
    assert_eq!(fields(&info, "pool set"), ["remote.set"], "{info}");
    assert_eq!(fields(&info, "Layout"), ["test"], "{info}");
    assert!(
        fields(&info, "Checksum")
            .iter()
            .all(|c| c.ends_with("[OK]")),
        "{info}"
    );

    // The replica's part file, read by PMDK's own pmempool as a part file.
    let out = Command::new(pmempool)
        .arg("info")
        .arg(&remote_part)
        .output()
        .expect("pmempool info");
    let part = text(&out);
    assert!(out.status.success(), "{part}");
    assert_eq!(
        fields(&part, "Signature"),
        ["PMEMOBJ [part file]"],
        "{part}"
    );
    assert_eq!(fields(&part, "Major"), ["6"], "{part}");
    assert_eq!(fields(&part, "Checksum").len(), 1, "{part}");
    assert!(fields(&part, "Checksum")[0].ends_with("[OK]"), "{part}");
    // The same pool set; the replicas point at each other.
    assert_eq!(
        fields(&part, "Pool set UUID"),
        fields(&info, "Pool set UUID")
    );
    assert_eq!(
        fields(&part, "Previous replica UUID"),
        fields(&info, "UUID"),
        "local:\n{info}\nremote:\n{part}"
    );
    same_bytes(&local_part, &remote_part, 0x2000);

    let out = pmdk(pmempool, &["rm", "-v", set], &env, &b);
    common::assert_passed(&out, &env);
    assert!(
        text(&out).contains("removed 'remote.set' on 'localhost'"),
        "{}",
        text(&out)
    );
    assert!(
        !remote_part.exists(),
        "pmempool rm removed the replica through rpmem_remove"
    );
    assert!(!local_part.exists());
}

#[test]
fn libpmemobj_replicates_a_root_object_through_our_library() {
    let b = CBuild::new();
    let env = TestEnv::new();
    let (local_set, local_part, remote_part) = layout(&env);
    let set = local_set.to_str().expect("UTF-8 path");
    let out = pmdk(
        Path::new(PMEMPOOL),
        &["create", "--layout", "test", "obj", set],
        &env,
        &b,
    );
    common::assert_passed(&out, &env);

    let exe = b.compile("pmemobj.c", false, &["-lpmemobj"]);
    let out = pmdk(&exe, &[set, "3"], &env, &b);
    common::assert_passed(&out, &env);
    let line = text(&out);
    let mut f = line.split_whitespace();
    assert_eq!(f.next(), Some("root"), "{line}");
    let off: usize = f.next().and_then(|v| v.parse().ok()).expect("root offset");
    let len: usize = f.next().and_then(|v| v.parse().ok()).expect("root size");

    // One part per replica: pool offsets are file offsets.
    let remote = TestEnv::file_bytes(&remote_part, off as u64, len);
    let expect: Vec<u8> = (0..len)
        .map(|i| ((i * 131 + 3 * 7 + (i >> 9)) & 0xff) as u8)
        .collect();
    assert!(remote == expect, "the root object is on the remote replica");

    // libpmemobj leaves a few heap words unreplicated (run-time state it
    // rebuilds when it opens the pool): the same program on a pool set
    // with a local replica, which PMDK copies itself, differs at the same
    // offsets, and our remote replica must differ nowhere else.
    let local_rep = env.path("localrep.set");
    fs::write(
        &local_rep,
        format!(
            "PMEMPOOLSET\n{POOL} {}\nREPLICA\n{POOL} {}\n",
            env.path("lr.part0").display(),
            env.path("lr.part1").display()
        ),
    )
    .expect("write localrep.set");
    let lr = local_rep.to_str().expect("UTF-8 path");
    let out = pmdk(
        Path::new(PMEMPOOL),
        &["create", "--layout", "test", "obj", lr],
        &env,
        &b,
    );
    common::assert_passed(&out, &env);
    let out = pmdk(&exe, &[lr, "3"], &env, &b);
    common::assert_passed(&out, &env);
    let ours = differing(&local_part, &remote_part, 0x2000);
    let pmdks = differing(&env.path("lr.part0"), &env.path("lr.part1"), 0x2000);
    assert_eq!(
        ours, pmdks,
        "offsets where the replicas differ: ours vs PMDK's local replica"
    );
}

/// Offsets of the aligned 8-byte words from `from` on that differ between
/// the two files (words, not bytes: some of the differing words are
/// pointers, whose single bytes may match by chance).
fn differing(a: &Path, b: &Path, from: usize) -> Vec<usize> {
    let x = fs::read(a).expect("read part");
    let y = fs::read(b).expect("read part");
    assert_eq!(x.len(), y.len());
    (from..x.len())
        .step_by(8)
        .filter(|&i| x.get(i..i + 8) != y.get(i..i + 8))
        .collect()
}

/// The same over real ssh (`RPMEM_LAUNCH=ssh`, the default, as with PMDK):
/// the replica line names `<user>@127.0.0.1:<port>` of an OpenSSH server the
/// test starts (`rpmem_e2e::sshd`); `RPMEM_SSH` is its wrapper script.
/// `RPMEM_SKIP_SSH_TESTS=1` skips it, as the other ssh tests.
#[test]
fn pmempool_over_real_ssh() {
    let Some(sshd) = rpmem_e2e::sshd::Sshd::start() else {
        return;
    };
    let b = CBuild::new();
    let env = TestEnv::new();
    assert!(
        Path::new(PMEMPOOL).exists(),
        "{PMEMPOOL} is missing: install the Debian packages {PACKAGES} (.ci/install-deps)"
    );
    let remote = env.poolset("remote.set", &[POOL], false);
    let local_part = env.path("local.part0");
    let local_set = env.path("local.set");
    fs::write(
        &local_set,
        format!(
            "PMEMPOOLSET\n{POOL} {}\nREPLICA {} remote.set\n",
            local_part.display(),
            sshd.target()
        ),
    )
    .expect("write local.set");
    let set = local_set.to_str().expect("UTF-8 path");
    let lib = b.lib_dir();
    let wrapper = sshd.ssh_wrapper();
    let vars = [
        ("LD_LIBRARY_PATH", lib.to_str().expect("UTF-8 path")),
        ("RPMEM_LAUNCH", "ssh"),
        ("RPMEM_SSH", wrapper.to_str().expect("UTF-8 path")),
    ];
    let pmempool = Path::new(PMEMPOOL);
    let out = common::run(
        pmempool,
        &["create", "--layout", "test", "obj", set],
        &env,
        &vars,
    );
    if !out.status.success() {
        eprintln!("sshd log:\n{}", sshd.log());
    }
    common::assert_passed(&out, &env);
    let out = common::run(pmempool, &["info", set], &env, &vars);
    common::assert_passed(&out, &env);
    let info = text(&out);
    assert_eq!(fields(&info, "node"), [sshd.target().as_str()], "{info}");
    same_bytes(&local_part, &remote[0], 0x2000);
    assert!(
        env.log().contains("ssh connection: 127.0.0.1"),
        "rpmemd was started by sshd: {}",
        env.log()
    );
    let out = common::run(pmempool, &["rm", set], &env, &vars);
    common::assert_passed(&out, &env);
    assert!(!remote[0].exists());
}

/// `pmempool sync` rebuilds a lost replica from the other: the local one
/// from the remote (libpmempool reads it with `rpmem_open` + `rpmem_read`),
/// then the remote one from the local (`rpmem_create` + `rpmem_persist`);
/// libpmemobj finds its root object in the rebuilt pool.
#[test]
fn pmempool_sync_rebuilds_the_local_and_the_remote_replica() {
    let b = CBuild::new();
    let env = TestEnv::new();
    let (local_set, local_part, remote_part) = layout(&env);
    let set = local_set.to_str().expect("UTF-8 path");
    let pmempool = Path::new(PMEMPOOL);
    let out = pmdk(
        pmempool,
        &["create", "--layout", "test", "obj", set],
        &env,
        &b,
    );
    common::assert_passed(&out, &env);
    let exe = b.compile("pmemobj.c", false, &["-lpmemobj"]);
    let out = pmdk(&exe, &[set, "5"], &env, &b);
    common::assert_passed(&out, &env);

    // The local replica is lost: rebuilt from the remote one.
    fs::remove_file(&local_part).expect("remove the local part");
    let out = pmdk(pmempool, &["sync", "-v", set], &env, &b);
    common::assert_passed(&out, &env);
    assert!(text(&out).contains("synchronized"), "{}", text(&out));
    let out = pmdk(&exe, &[set, "5", "check"], &env, &b);
    common::assert_passed(&out, &env);
    same_bytes(&local_part, &remote_part, 0x2000);

    // The remote replica is lost: rebuilt from the local one.
    fs::remove_file(&remote_part).expect("remove the remote part");
    let out = pmdk(pmempool, &["sync", set], &env, &b);
    common::assert_passed(&out, &env);
    assert!(remote_part.exists(), "rpmemd created the part again");
    same_bytes(&local_part, &remote_part, 0x2000);
    let out = Command::new(pmempool)
        .arg("info")
        .arg(&remote_part)
        .output()
        .expect("pmempool info");
    let part = text(&out);
    assert!(out.status.success(), "{part}");
    assert_eq!(
        fields(&part, "Signature"),
        ["PMEMOBJ [part file]"],
        "{part}"
    );
    assert!(fields(&part, "Checksum")[0].ends_with("[OK]"), "{part}");
    let out = pmdk(&exe, &[set, "5", "check"], &env, &b);
    common::assert_passed(&out, &env);
}

/// `RPMEM_CMD="a|b"`: PMDK's round robin over the replicas of one pool set.
/// Two remote replicas, each on its own rpmemd (own configuration and pool
/// set directory): the first replica's session takes the first command, the
/// second the second, in `pmempool create` and again in `pmempool info`.
#[test]
fn rpmem_cmd_round_robin_gives_each_replica_its_own_rpmemd() {
    let b = CBuild::new();
    let one = TestEnv::new();
    let two = TestEnv::new();
    assert!(
        Path::new(PMEMPOOL).exists(),
        "{PMEMPOOL} is missing: install the Debian packages {PACKAGES} (.ci/install-deps)"
    );
    let r1 = one.poolset("r1.set", &[POOL], false);
    let r2 = two.poolset("r2.set", &[POOL], false);
    let local_part = one.path("local.part0");
    let local_set = one.path("local.set");
    fs::write(
        &local_set,
        format!(
            "PMEMPOOLSET\n{POOL} {}\nREPLICA localhost r1.set\nREPLICA localhost r2.set\n",
            local_part.display()
        ),
    )
    .expect("write local.set");
    let set = local_set.to_str().expect("UTF-8 path");
    let lib = b.lib_dir();
    let cmds = format!("{}|{}", one.command(), two.command());
    let vars = [
        ("LD_LIBRARY_PATH", lib.to_str().expect("UTF-8 path")),
        ("RPMEM_CMD", cmds.as_str()),
    ];
    let pmempool = Path::new(PMEMPOOL);
    for args in [
        &["create", "--layout", "test", "obj", set][..],
        &["info", set],
    ] {
        let out = common::run(pmempool, args, &one, &vars);
        if !out.status.success() {
            eprintln!("second rpmemd's log:\n{}", two.log());
        }
        common::assert_passed(&out, &one);
    }
    assert!(r1[0].exists() && r2[0].exists());
    same_bytes(&local_part, &r1[0], 0x2000);
    same_bytes(&local_part, &r2[0], 0x2000);
    assert!(!one.log().contains("r2.set") && !two.log().contains("r1.set"));
}

/// libpmemobj from 8 threads at once (its lanes become concurrent
/// `rpmem_persist` calls on several of ours); then the local replica is
/// deleted and rebuilt from the remote one with `pmempool sync`, and every
/// object the threads allocated is there with its bytes.
#[test]
fn libpmemobj_from_eight_threads_then_the_pool_rebuilt_from_the_replica() {
    let b = CBuild::new();
    let env = TestEnv::new();
    let (local_set, local_part, _remote_part) = layout(&env);
    let set = local_set.to_str().expect("UTF-8 path");
    let pmempool = Path::new(PMEMPOOL);
    let out = pmdk(
        pmempool,
        &["create", "--layout", "test", "obj", set],
        &env,
        &b,
    );
    common::assert_passed(&out, &env);
    let exe = b.compile("pmemobj_mt.c", false, &["-lpmemobj"]);
    let out = pmdk(&exe, &[set, "write"], &env, &b);
    common::assert_passed(&out, &env);
    assert_eq!(text(&out), "320 objects ok\n");
    fs::remove_file(&local_part).expect("remove the local part");
    let out = pmdk(pmempool, &["sync", set], &env, &b);
    common::assert_passed(&out, &env);
    let out = pmdk(&exe, &[set, "check"], &env, &b);
    common::assert_passed(&out, &env);
    assert_eq!(text(&out), "320 objects ok\n");
    // rpmemd logs "lane N connected" per lane used; only the 8-thread run
    // uses more than lane 0.
    let log = env.log();
    let beyond_0 = log
        .lines()
        .filter_map(|l| l.split_once("lane ")?.1.strip_suffix(" connected"))
        .filter(|n| *n != "0")
        .count();
    assert!(
        beyond_0 >= 1,
        "libpmemobj's threads used several lanes:\n{log}"
    );
}
