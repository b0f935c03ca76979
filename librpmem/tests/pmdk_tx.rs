//! Debian 12's own PMDK 1.12.1 with a remote replica on our rpmemd, through
//! our `librpmem.so.1` (`LD_LIBRARY_PATH`, `RPMEM_LAUNCH=local`), beyond
//! `tests/pmdk.rs`: libpmemobj transactions from several threads rebuilt
//! from the remote replica by `pmempool sync`; `pmempool transform`
//! dropping the remote replica and adding it back; `pmempool rm` with and
//! without `-f` and with a part missing; and rpmemd killed with SIGKILL in
//! the middle of a stream of transactions.
//!
//! The C program is `tests/c/pmemobj_tx.c`, written against Debian's
//! `libpmemobj.h`. Needs the Debian packages `pmdk-tools libpmemobj1
//! libpmempool1 libpmemobj-dev` (`.ci/install-deps`).

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{CBuild, TestEnv};

const POOL: u64 = 16 << 20;
const PMEMPOOL: &str = "/usr/bin/pmempool";
const PACKAGES: &str = "pmdk-tools libpmemobj1 libpmempool1 libpmemobj-dev";

/// A pool set `local.set` (one local part, `REPLICA localhost remote.set`)
/// created by `pmempool create`, and `pmemobj_tx.c` compiled. Over ssh
/// ([`Pool::over_ssh`]) the replica line names the test's OpenSSH server
/// instead and rpmemd is started by it, as PMDK's librpmem starts it.
struct Pool {
    env: TestEnv,
    b: CBuild,
    set: PathBuf,
    local_part: PathBuf,
    remote_part: PathBuf,
    exe: PathBuf,
    /// The OpenSSH server of an ssh run (kept running for the pool's life).
    sshd: Option<rpmem_e2e::sshd::Sshd>,
    /// Its ssh wrapper (`RPMEM_SSH`).
    ssh_wrapper: Option<String>,
}

impl Pool {
    fn new() -> Pool {
        Pool::with_sshd(None)
    }

    /// The same pool with its replica reached over real ssh; `None` when the
    /// ssh tests are skipped (`RPMEM_SKIP_SSH_TESTS`).
    fn over_ssh() -> Option<Pool> {
        rpmem_e2e::sshd::Sshd::start().map(|s| Pool::with_sshd(Some(s)))
    }

    fn with_sshd(sshd: Option<rpmem_e2e::sshd::Sshd>) -> Pool {
        assert!(
            Path::new(PMEMPOOL).exists(),
            "{PMEMPOOL} is missing: install the Debian packages {PACKAGES} (.ci/install-deps)"
        );
        let b = CBuild::new();
        let env = TestEnv::new();
        let remote = env.poolset("remote.set", &[POOL], false);
        let local_part = env.path("local.part0");
        let set = env.path("local.set");
        fs::write(
            &set,
            format!(
                "PMEMPOOLSET\n{POOL} {}\nREPLICA {} remote.set\n",
                local_part.display(),
                sshd.as_ref().map_or("localhost".to_owned(), |s| s.target())
            ),
        )
        .expect("write local.set");
        let exe = b.compile("pmemobj_tx.c", false, &["-lpmemobj"]);
        let pool = Pool {
            env,
            b,
            set,
            local_part,
            remote_part: remote[0].clone(),
            exe,
            ssh_wrapper: sshd
                .as_ref()
                .map(|s| s.ssh_wrapper().to_str().expect("UTF-8 path").to_owned()),
            sshd,
        };
        let out = pool.pmempool(&["create", "--layout", "test", "obj", pool.set()]);
        pool.passed(&out);
        assert!(
            pool.remote_part.exists(),
            "rpmemd created the replica's part"
        );
        pool
    }

    fn set(&self) -> &str {
        self.set.to_str().expect("UTF-8 path")
    }

    /// Our library first on the library path (and the variables of
    /// `extra`).
    /// Over ssh also PMDK's way of starting rpmemd: librpmem runs `ssh ...
    /// rpmemd` (`RPMEM_CMD`: the test's rpmemd with its configuration, an
    /// absolute path).
    fn vars<'a>(&'a self, lib: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![("LD_LIBRARY_PATH", lib)];
        if let Some(w) = &self.ssh_wrapper {
            v.push(("RPMEM_LAUNCH", "ssh"));
            v.push(("RPMEM_SSH", w.as_str()));
        }
        v.extend_from_slice(extra);
        v
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let lib = self.b.lib_dir();
        let lib = lib.to_str().expect("UTF-8 path");
        common::run(program, args, &self.env, &self.vars(lib, &[]))
    }

    fn pmempool(&self, args: &[&str]) -> Output {
        self.run(Path::new(PMEMPOOL), args)
    }

    /// `pmemobj_tx <pool set> args...`
    fn tx(&self, set: &str, args: &[&str]) -> Output {
        self.run(&self.exe, &[&[set], args].concat())
    }

    fn passed(&self, out: &Output) {
        common::assert_passed(out, &self.env);
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn errtext(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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

/// `pmempool info` of one part file (no pool set, no library needed).
fn part_info(part: &Path) -> String {
    let out = Command::new(PMEMPOOL)
        .arg("info")
        .arg(part)
        .output()
        .expect("pmempool info");
    let info = text(&out);
    assert!(
        out.status.success(),
        "pmempool info {}: {info}",
        part.display()
    );
    info
}

/// Bytes from `from` on of both files are equal (the pool header, the
/// first 4 KiB, differs per replica, and libpmemobj's run-time fields of
/// its header page are not replicated).
fn same_bytes(a: &Path, b: &Path, from: usize) {
    let x = fs::read(a).expect("read part");
    let y = fs::read(b).expect("read part");
    assert_eq!(x.len(), y.len());
    if let Some(i) = (from..x.len()).find(|&i| x[i] != y[i]) {
        panic!(
            "{} and {} differ at offset {i:#x} (from {from:#x} on they must be equal)",
            a.display(),
            b.display()
        );
    }
}

/// The lane numbers rpmemd's log says were connected.
fn lanes_connected(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split_once("lane ")?.1.strip_suffix(" connected"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// 4 threads x 50 records, one libpmemobj transaction each (a new record
/// with `pmemobj_tx_zalloc`, the root's oid array and count with
/// `pmemobj_tx_add_range`, the thread's previous record updated in place
/// under an undo log); the pool is closed, the local part deleted, and
/// `pmempool sync` rebuilds it from the remote replica, where every record
/// is, with its contents, version and checksum.
#[test]
fn transactions_from_four_threads_are_rebuilt_from_the_remote_replica() {
    transactions_rebuilt_from_the_remote_replica(&Pool::new());
}

/// The same with the replica reached over real ssh (`REPLICA
/// <user>@127.0.0.1:<port> remote.set`, rpmemd started by the test's sshd).
#[test]
fn transactions_over_real_ssh_are_rebuilt_from_the_remote_replica() {
    let Some(p) = Pool::over_ssh() else {
        return;
    };
    transactions_rebuilt_from_the_remote_replica(&p);
    assert!(
        p.env.log().contains("ssh connection: 127.0.0.1"),
        "rpmemd was started by sshd: {}",
        p.env.log()
    );
}

fn transactions_rebuilt_from_the_remote_replica(p: &Pool) {
    let out = p.tx(p.set(), &["write", "4", "50"]);
    p.passed(&out);
    assert_eq!(text(&out), "wrote 200 records\n");
    // libpmemobj gives each thread a lane of its own: several of ours.
    let lanes = lanes_connected(&p.env.log());
    assert!(
        lanes.iter().filter(|&&l| l != 0).count() >= 2,
        "the threads used several lanes: {lanes:?}\n{}",
        p.env.log()
    );

    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["sync", "-v", p.set()]);
    p.passed(&out);
    assert!(text(&out).contains("synchronized"), "{}", text(&out));
    assert!(
        p.local_part.exists(),
        "pmempool sync created the local part"
    );

    let out = p.tx(p.set(), &["check", "4", "50"]);
    p.passed(&out);
    assert_eq!(text(&out), "200 records ok\n");
}

/// `pmempool transform` to a pool set without the `REPLICA` line drops the
/// remote replica: libpmempool removes its part through `rpmem_remove`,
/// and the pool keeps working without it (no rpmemd is started any more).
/// Transforming back adds a remote replica: rpmemd creates the part, which
/// gets a valid PMDK header linked to the local replica and the pool's
/// bytes, including what was written while there was no replica; the local
/// replica rebuilt from it holds everything.
#[test]
fn transform_drops_the_remote_replica_and_adds_it_back() {
    transform_drops_and_adds_the_remote_replica(&Pool::new());
}

/// The same with the replica reached over real ssh.
#[test]
fn transform_over_real_ssh_drops_the_remote_replica_and_adds_it_back() {
    let Some(p) = Pool::over_ssh() else {
        return;
    };
    transform_drops_and_adds_the_remote_replica(&p);
    assert!(
        p.env.log().contains("ssh connection: 127.0.0.1"),
        "rpmemd was started by sshd: {}",
        p.env.log()
    );
}

fn transform_drops_and_adds_the_remote_replica(p: &Pool) {
    let out = p.tx(p.set(), &["write", "3", "20"]);
    p.passed(&out);

    let alone = p.env.path("alone.set");
    fs::write(
        &alone,
        format!("PMEMPOOLSET\n{POOL} {}\n", p.local_part.display()),
    )
    .expect("write alone.set");
    let alone = alone.to_str().expect("UTF-8 path");

    let out = p.pmempool(&["transform", "-v", p.set(), alone]);
    p.passed(&out);
    assert!(text(&out).contains("transformed"), "{}", text(&out));
    assert!(
        !p.remote_part.exists(),
        "the dropped replica's part was removed"
    );
    let log = p.env.log();
    assert!(log.contains("removed 'remote.set'"), "{log}");

    // The pool works alone: its header names no other replica, the records
    // are there, and new transactions commit; nothing reaches rpmemd.
    let out = p.pmempool(&["info", alone]);
    p.passed(&out);
    let info = text(&out);
    assert!(info.contains("Number of replicas       : 1"), "{info}");
    let uuid = fields(&info, "UUID");
    assert_eq!(fields(&info, "Next replica UUID"), uuid, "{info}");
    assert_eq!(fields(&info, "Previous replica UUID"), uuid, "{info}");
    let out = p.tx(alone, &["check", "3", "20"]);
    p.passed(&out);
    let out = p.tx(alone, &["loop", "25"]);
    p.passed(&out);
    let out = p.tx(alone, &["loopcheck"]);
    p.passed(&out);
    assert_eq!(text(&out), "loop 25 ok\n");
    assert_eq!(p.env.log(), log, "no rpmemd session without the replica");
    assert!(!p.remote_part.exists());

    // Back: a new remote replica.
    let out = p.pmempool(&["transform", "-v", alone, p.set()]);
    p.passed(&out);
    assert!(p.remote_part.exists(), "rpmemd created the new part");
    let part = part_info(&p.remote_part);
    assert_eq!(
        fields(&part, "Signature"),
        ["PMEMOBJ [part file]"],
        "{part}"
    );
    assert!(fields(&part, "Checksum")[0].ends_with("[OK]"), "{part}");
    let out = p.pmempool(&["info", p.set()]);
    p.passed(&out);
    let info = text(&out);
    assert!(info.contains("Replica 1 - remote"), "{info}");
    assert!(
        fields(&info, "Checksum")
            .iter()
            .all(|c| c.ends_with("[OK]")),
        "{info}"
    );
    assert_eq!(
        fields(&part, "Pool set UUID"),
        fields(&info, "Pool set UUID")
    );
    // The replicas point at each other: the local one's UUID is the new
    // part's previous and next replica, and the other way round.
    assert_eq!(fields(&part, "Previous replica UUID"), uuid, "{part}");
    assert_eq!(fields(&part, "Next replica UUID"), uuid, "{part}");
    assert_eq!(
        fields(&info, "Next replica UUID"),
        fields(&part, "UUID"),
        "{info}"
    );
    same_bytes(&p.local_part, &p.remote_part, 0x2000);

    // The new replica holds the pool: the local one rebuilt from it.
    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    let out = p.tx(p.set(), &["check", "3", "20"]);
    p.passed(&out);
    assert_eq!(text(&out), "60 records ok\n");
    let out = p.tx(p.set(), &["loopcheck"]);
    p.passed(&out);
    assert_eq!(text(&out), "loop 25 ok\n");
}

/// `pmempool rm` of a pool set with a remote replica (libpmempool runs
/// `rpmem_remove`, i.e. `rpmemd --remove remote.set [--force]`):
/// * everything present, with and without `-f`: every part removed;
/// * `-a`: the pool set files too, the local one and rpmemd's;
/// * the remote part missing, without `-f`: fails and names the replica;
///   the local part is removed all the same (PMDK goes on with the next
///   part); rpmemd says which part did not exist;
/// * the remote part missing, with `-f`: succeeds;
/// * the local part missing, without `-f`: fails naming the file; the
///   remote part is removed all the same.
#[test]
fn rm_of_a_pool_set_with_a_remote_replica() {
    let p = Pool::new();
    let set = p.set();
    let create = |p: &Pool| {
        let out = p.pmempool(&["create", "--layout", "test", "obj", set]);
        p.passed(&out);
        assert!(p.local_part.exists() && p.remote_part.exists());
    };

    // Present, without -f.
    let out = p.pmempool(&["rm", "-v", set]);
    p.passed(&out);
    assert!(
        text(&out).contains("removed 'remote.set' on 'localhost'"),
        "{}",
        text(&out)
    );
    assert!(!p.local_part.exists() && !p.remote_part.exists());

    // Present, with -f.
    create(&p);
    let out = p.pmempool(&["rm", "-f", set]);
    p.passed(&out);
    assert!(!p.local_part.exists() && !p.remote_part.exists());

    // -a: the pool set files too.
    create(&p);
    let saved = fs::read(&p.set).expect("read local.set");
    let out = p.pmempool(&["rm", "-a", "-v", set]);
    p.passed(&out);
    assert!(!p.local_part.exists() && !p.remote_part.exists());
    assert!(!p.set.exists(), "the local pool set file was removed");
    assert!(
        !p.env.poolset_path("remote.set").exists(),
        "rpmemd removed its pool set file (RPMEM_REMOVE_POOL_SET)"
    );
    fs::write(&p.set, &saved).expect("write local.set");
    p.env.poolset("remote.set", &[POOL], false);

    // The remote part missing, without -f: fails naming the replica.
    create(&p);
    fs::remove_file(&p.remote_part).expect("remove the remote part");
    let out = p.pmempool(&["rm", set]);
    assert!(
        !out.status.success(),
        "pmempool rm without -f and a missing remote part must fail:\n{}{}",
        text(&out),
        errtext(&out)
    );
    assert!(
        errtext(&out).contains("cannot remove 'remote.set' on 'localhost'"),
        "{}",
        errtext(&out)
    );
    // rpmemd exits with the errno of the failure, as PMDK's does, and
    // rpmem_remove makes it its errno: pmempool says why.
    assert!(
        errtext(&out)
            .contains("cannot remove 'remote.set' on 'localhost': No such file or directory"),
        "{}",
        errtext(&out)
    );
    assert!(!p.local_part.exists(), "the local part was removed");
    let log = p.env.log();
    let missing = p.remote_part.display().to_string();
    assert!(
        log.contains(&missing) && log.contains("No such file or directory"),
        "rpmemd says which part is missing:\n{log}"
    );

    // The remote part missing, with -f: succeeds.
    create(&p);
    fs::remove_file(&p.remote_part).expect("remove the remote part");
    let out = p.pmempool(&["rm", "-f", "-v", set]);
    p.passed(&out);
    assert!(!p.local_part.exists());
    assert!(
        p.env.log().contains("1 part(s) did not exist"),
        "{}",
        p.env.log()
    );

    // The local part missing, without -f: fails naming it; the remote
    // part is removed all the same.
    create(&p);
    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["rm", set]);
    assert!(!out.status.success(), "{}", errtext(&out));
    let local = p.local_part.display().to_string();
    assert!(
        errtext(&out).contains(&format!("cannot remove file '{local}'")),
        "{}",
        errtext(&out)
    );
    assert!(!p.remote_part.exists(), "the remote part was removed");
}

/// What the loop program printed and how it ended.
struct Stream {
    /// The numbers of the committed transactions, in order.
    committed: Vec<u64>,
    status: std::process::ExitStatus,
    stderr: String,
}

/// Runs `pmemobj_tx <set> loop` and kills its rpmemd (a child of the
/// program whose command line holds the test's configuration path) with
/// SIGKILL once `after` transactions are reported committed; the program
/// must end within 30 s.
fn kill_rpmemd_during_loop(p: &Pool, after: usize) -> Stream {
    let lib = p.b.lib_dir();
    let lib = lib.to_str().expect("UTF-8 path");
    // The local replica is a file on disk: libpmem would msync every
    // persist to the disk (~60 ms a transaction here); treated as pmem its
    // persists are cache flushes. rpmemd, not the machine, is killed, so
    // the local replica's durability does not matter to the test.
    let vars = p.vars(lib, &[("PMEM_IS_PMEM_FORCE", "1")]);
    let mut child = common::command(&p.exe, &[p.set(), "loop", "100000000"], &p.env, &vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pmemobj_tx loop");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(());
            lines.push(line);
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < after {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(()) => seen += 1,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "only {seen} transactions committed before {e:?}:\n{}\n--- rpmemd.log\n{}",
                    err_reader.join().unwrap_or_default(),
                    p.env.log()
                );
            }
        }
    }

    let conf = p.env.path("rpmemd.conf");
    let conf = conf.to_str().expect("UTF-8 path");
    let mut rpmemd = Vec::new();
    let found = rpmem_e2e::wait_for(Duration::from_secs(10), || {
        rpmemd = if p.sshd.is_some() {
            // Started by sshd for the program's ssh, not by the program.
            common::rpmemd_processes(conf)
        } else {
            common::children_matching(pid, conf)
        };
        !rpmemd.is_empty()
    });
    if !found || rpmemd.len() != 1 {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the program's rpmemd (a child with {conf} in its command line): {rpmemd:?}");
    }
    rpmem_e2e::kill9(rpmemd[0]);

    let mut status = None;
    let ended = rpmem_e2e::wait_for(Duration::from_secs(30), || {
        status = child.try_wait().expect("wait for the program");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the program hung: still running 30 s after rpmemd was killed\n--- stderr\n{}",
            err_reader.join().unwrap_or_default()
        );
    }
    let lines = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let committed = lines
        .iter()
        .map(|l| {
            l.parse::<u64>()
                .unwrap_or_else(|_| panic!("unexpected output line {l:?}"))
        })
        .collect();
    Stream {
        committed,
        status: status.expect("exit status"),
        stderr,
    }
}

/// `pmemobj_tx <set> loopcheck`: the number of transactions in the pool.
fn loop_count(p: &Pool, what: &str) -> u64 {
    let out = p.tx(p.set(), &["loopcheck"]);
    assert!(
        out.status.success(),
        "{what}: the pool does not open or its transactions are not all there ({}):\n{}{}\n--- rpmemd.log\n{}",
        out.status,
        text(&out),
        errtext(&out),
        p.env.log()
    );
    let t = text(&out);
    t.strip_prefix("loop ")
        .and_then(|r| r.strip_suffix(" ok\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: unexpected output {t:?}"))
}

/// rpmemd killed with SIGKILL while a program commits one libpmemobj
/// transaction after another (each frees a record, allocates one and
/// updates the root's count and sum), printing each one's number as soon
/// as `TX_END` returns.
///
/// The program fails as with PMDK's own librpmem: the next
/// `rpmem_persist` fails at once (connection reset), and libpmemobj's
/// handler of a failed remote persist (`obj_handle_remote_persist_error`)
/// cleans the pool up and aborts; PMDK 1.12.1's clean-up persists again,
/// fails again and re-enters itself, so the process dies of SIGSEGV
/// (SIGABRT if it got as far as its `abort()`). What matters: it ends, at
/// once, and reports no further commit.
///
/// Then the pool holds every transaction reported committed, whichever
/// replica it is rebuilt from by `pmempool sync`:
/// * from the remote replica (the local part deleted): everything a
///   committed `TX_END` persisted was on the remote replica first;
/// * from the local replica, PMDK's master (the remote part deleted, as
///   after losing the remote node): rpmemd creates the replica again from
///   it, and the local replica rebuilt from that holds the same;
/// * with both parts as the crash left them, `pmempool sync` finds nothing
///   broken (both headers are valid; it says "synchronized" and changes
///   nothing) and the pool opens, libpmemobj recovering from the local
///   replica; after that open the remote replica holds the same.
///
/// Each count may include the transaction after the last one reported: it
/// was in flight when rpmemd died and may have committed.
#[test]
fn rpmemd_killed_in_a_transaction_stream() {
    rpmemd_killed_in_a_transaction_stream_on(&Pool::new());
}

/// The same with rpmemd started over real ssh and killed there: the
/// program's ssh session ends with it.
#[test]
fn rpmemd_killed_over_real_ssh_in_a_transaction_stream() {
    let Some(p) = Pool::over_ssh() else {
        return;
    };
    rpmemd_killed_in_a_transaction_stream_on(&p);
}

fn rpmemd_killed_in_a_transaction_stream_on(p: &Pool) {
    let stream = kill_rpmemd_during_loop(p, 200);
    let signal = stream.status.signal();
    assert!(
        signal == Some(libc::SIGSEGV) || signal == Some(libc::SIGABRT),
        "libpmemobj ends the program on a failed remote persist; it ended with {} ({} committed)\n--- stderr\n{}",
        stream.status,
        stream.committed.len(),
        stream.stderr
    );
    let n = stream.committed.len() as u64;
    assert!(n >= 200);
    assert!(
        stream.committed.iter().copied().eq(0..n),
        "transactions are numbered from 0 in order"
    );
    // The pool holds n or n + 1 transactions (numbers 0..n-1 were
    // reported committed; number n was in flight).
    let holds_every_committed = |count: u64, what: &str| {
        assert!(
            count == n || count == n + 1,
            "{what}: the pool holds {count} transactions, {n} were reported committed"
        );
    };

    let crash_local = p.env.path("crash.local");
    let crash_remote = p.env.path("crash.remote");
    fs::copy(&p.local_part, &crash_local).expect("save the local part");
    fs::copy(&p.remote_part, &crash_remote).expect("save the remote part");

    // From the remote replica.
    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    let from_remote = loop_count(p, "rebuilt from the remote replica");
    holds_every_committed(from_remote, "rebuilt from the remote replica");

    // From the local replica: rpmemd creates the remote part again.
    fs::copy(&crash_local, &p.local_part).expect("restore the local part");
    fs::remove_file(&p.remote_part).expect("remove the remote part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    assert!(
        p.remote_part.exists(),
        "pmempool sync created the remote part"
    );
    let from_local = loop_count(p, "the remote replica rebuilt from the local one");
    holds_every_committed(from_local, "the remote replica rebuilt from the local one");
    // ... and the rebuilt remote replica holds it too.
    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    assert_eq!(
        loop_count(p, "the local replica rebuilt from the rebuilt remote one"),
        from_local
    );

    // Both parts as the crash left them.
    fs::copy(&crash_local, &p.local_part).expect("restore the local part");
    fs::copy(&crash_remote, &p.remote_part).expect("restore the remote part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    let as_left = loop_count(p, "both replicas as the crash left them");
    assert_eq!(as_left, from_local, "the local replica is the master");
    // That open brought the remote replica up to date (libpmemobj copies
    // its lanes to every remote replica when it opens a pool, and
    // replicates its recovery): rebuilt from it, the pool is the same.
    fs::remove_file(&p.local_part).expect("remove the local part");
    let out = p.pmempool(&["sync", p.set()]);
    p.passed(&out);
    assert_eq!(
        loop_count(p, "rebuilt from the remote replica after an open"),
        as_left
    );
    eprintln!(
        "rpmemd killed: the program ended with {}; {n} transactions reported committed; \
         the pool holds {from_remote} rebuilt from the remote replica, {from_local} from the local one",
        stream.status
    );
}
