//! rpmem over real ssh: every test starts its own OpenSSH server on a
//! loopback address (`rpmem_e2e::sshd`), and the library launches the real
//! rpmemd through it exactly as it would on a remote host
//! (`ssh -T -oBatchMode=yes -p PORT user@127.0.0.1 '<rpmemd> -c <config>'`).
//! rpmemd sees `SSH_CONNECTION` and listens for the data path on the
//! server address from it.
//!
//! Without `/usr/sbin/sshd` every test fails and names the package to
//! install, unless `RPMEM_SKIP_SSH_TESTS=1` is set.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rpmem::{remove, Error, Options, RemotePool, PERSIST_RELAXED, REMOVE_FORCE, REMOVE_POOL_SET};
use rpmem_core::wire::oob::Status;
use rpmem_e2e::sshd::{ipv6_loopback_available, process_name, process_running, Sshd};
use rpmem_e2e::{
    assert_acked_on_target, attr, get, kill9, pattern, persist_until_killed, put, region, wait_for,
    TestEnv,
};

const MIB: u64 = 1 << 20;
const POOL: u64 = 8 * MIB;
/// The data deadline of the kill tests: errors must come well before it.
const DATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an error may take after ssh dies.
const PROMPT: Duration = Duration::from_secs(5);

/// Persists of several sizes (1 B, unaligned, 4 KiB, 1 MiB, more than the
/// inline buffer, relaxed and not), each on its own lane in turn.
const CASES: [(u64, usize, u32); 8] = [
    (0, 1, 0),
    (4097, 13, 0),
    (8192, 4096, 0),
    (MIB, MIB as usize, 0),
    (3 * MIB + 3, 3 * 65_536 + 5, 0),
    (4 * MIB, MIB as usize, PERSIST_RELAXED),
    (5 * MIB + 1, 4096 * 3 + 1, PERSIST_RELAXED),
    (POOL - 1, 1, 0),
];

#[test]
fn harness_runs_commands_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let out = sshd.run("echo \"$SSH_CONNECTION\"; echo done");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh failed ({}): {}\nsshd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    let fields: Vec<&str> = stdout.lines().next().unwrap_or("").split(' ').collect();
    assert_eq!(fields.len(), 4, "SSH_CONNECTION: {stdout:?}");
    assert_eq!(fields[2], "127.0.0.1", "{stdout:?}");
    assert_eq!(fields[3], sshd.port().to_string(), "{stdout:?}");
    assert!(stdout.contains("done"), "{stdout:?}");
    // The host key was accepted and recorded for the port.
    let known = std::fs::read_to_string(sshd.path("known_hosts")).expect("known_hosts");
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port())),
        "{known}"
    );
}

#[test]
fn nohdrs_pool_replicates_reopens_and_reads_back_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("nohdrs.set", &[POOL], true);
    let opts = sshd.options(&env);
    let target = sshd.target();
    let r = region(POOL);
    let pool = RemotePool::create(&target, "nohdrs.set", Arc::clone(&r), 4, None, &opts)
        .unwrap_or_else(|e| panic!("create over ssh: {e}\nsshd log:\n{}", sshd.log()));
    assert!(
        pool.nlanes() >= 2 && pool.nlanes() <= 4,
        "{}",
        pool.nlanes()
    );
    assert!(!pool.has_headers());
    // The child is ssh, and rpmemd runs below sshd.
    let pid = pool.remote_pid().expect("pid");
    assert_eq!(process_name(pid).as_deref(), Some("ssh"));
    assert_eq!(sshd.remote_processes("rpmemd").len(), 1, "one rpmemd");
    assert_ne!(pool.data_port(), sshd.port());

    for (i, (off, len, flags)) in CASES.iter().enumerate() {
        put(&r, *off, &pattern(*len, i as u64));
        let lane = i as u32 % pool.nlanes();
        pool.persist(lane, *off, *len as u64, *flags)
            .unwrap_or_else(|e| panic!("persist case {i}: {e}"));
    }
    // Every lane from its own thread at once.
    thread::scope(|s| {
        for mut lane in pool.lanes().expect("lanes") {
            let r = Arc::clone(&r);
            s.spawn(move || {
                let base = 6 * MIB + u64::from(lane.index()) * 65_536;
                for k in 0..50u64 {
                    let len = 1 + (k * 7919) % 8000;
                    let off = base + (k * 1021) % (65_536 - len);
                    put(&r, off, &pattern(len as usize, k ^ base));
                    let flags = if k.is_multiple_of(3) {
                        PERSIST_RELAXED
                    } else {
                        0
                    };
                    lane.persist(off, len, flags)
                        .expect("persist from a thread");
                }
            });
        }
    });
    // Read back through the data path while the pool is open.
    let mut back = vec![0u8; MIB as usize];
    pool.read(pool.nlanes() - 1, MIB, &mut back).expect("read");
    assert_eq!(back, get(&r, MIB, MIB as usize));
    pool.close().expect("close");
    assert!(
        wait_for(PROMPT, || sshd.remote_processes("rpmemd").is_empty()),
        "rpmemd ended after close"
    );

    // The part file holds every persisted byte.
    let file = std::fs::read(&parts[0]).expect("part file");
    assert_eq!(file.len() as u64, POOL);
    for (i, (off, len, _)) in CASES.iter().enumerate() {
        let at = *off as usize;
        assert_eq!(
            &file[at..at + len],
            &pattern(*len, i as u64)[..],
            "case {i} on disk"
        );
    }
    let threads = 6 * MIB as usize..7 * MIB as usize;
    assert_eq!(
        &file[threads.clone()],
        &get(&r, threads.start as u64, threads.len())[..],
        "the threads' persists on disk"
    );
    // rpmemd was started by sshd: it logged the ssh connection.
    let log = env.log();
    assert!(
        log.contains(&format!("127.0.0.1 {}", sshd.port())),
        "rpmemd saw SSH_CONNECTION: {log}"
    );

    // Reopen with a fresh region and read the whole pool back.
    let r2 = region(POOL);
    let pool = RemotePool::open(&target, "nohdrs.set", Arc::clone(&r2), 3, &opts).expect("open");
    assert!(pool.attr().is_none());
    pool.read_to_region(0, 0, POOL).expect("read the pool");
    pool.close().expect("close again");
    assert_eq!(get(&r2, 0, POOL as usize), file, "read back = part file");
}

#[test]
fn header_pool_set_attr_and_two_parts_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("hdr.set", &[POOL / 2, POOL / 2], false);
    let opts = sshd.options(&env);
    let target = sshd.target();
    // Two parts with headers: the second part's header page is not pool
    // space, so the pool is one page smaller than the parts.
    let size = POOL - 4096;
    let r = region(size);
    let a = attr(1);
    let pool = RemotePool::create(&target, "hdr.set", Arc::clone(&r), 2, Some(&a), &opts)
        .unwrap_or_else(|e| panic!("create over ssh: {e}\nsshd log:\n{}", sshd.log()));
    assert!(pool.has_headers());
    assert_eq!(pool.attr(), Some(&a));
    let e = pool
        .persist(0, 0, 8, 0)
        .expect_err("the header is not writable");
    assert!(matches!(e, Error::Call { .. }), "{e}");
    put(&r, 4096, b"first bytes after the header");
    pool.persist(0, 4096, 28, 0)
        .expect("persist after the header");
    // A range across the two parts.
    let straddle = POOL / 2 - 5000;
    put(&r, straddle, &pattern(10_000, 7));
    pool.persist(1 % pool.nlanes(), straddle, 10_000, PERSIST_RELAXED)
        .expect("persist across parts");
    let b = attr(2);
    pool.set_attr(Some(&b)).expect("set_attr");
    pool.close().expect("close");

    assert_eq!(
        TestEnv::file_bytes(&parts[0], 4096, 28),
        b"first bytes after the header"
    );
    assert_eq!(TestEnv::file_bytes(&parts[0], 0, 8), b"RPMEMTST");
    // The second part starts with its own header page.
    let first = TestEnv::file_bytes(&parts[0], straddle, 5000);
    let second = TestEnv::file_bytes(&parts[1], 4096, 5000);
    assert_eq!([first, second].concat(), pattern(10_000, 7), "on disk");

    let r2 = region(size);
    let pool = RemotePool::open(&target, "hdr.set", Arc::clone(&r2), 2, &opts).expect("reopen");
    assert_eq!(pool.attr(), Some(&b), "set_attr is visible after reopening");
    let mut buf = vec![0u8; 10_000];
    pool.read(0, straddle, &mut buf).expect("read across parts");
    assert_eq!(buf, pattern(10_000, 7));
    pool.set_attr(None).expect("set_attr(None)");
    pool.close().expect("close");
    let pool = RemotePool::open(&target, "hdr.set", Arc::clone(&r2), 1, &opts).expect("reopen");
    assert_eq!(pool.attr(), None, "set_attr(None) stored zeros");
    pool.close().expect("close");
}

#[test]
fn remove_with_force_and_pool_set_flags_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("rm.set", &[POOL], true);
    let opts = sshd.options(&env);
    let target = sshd.target();
    let r = region(POOL);
    RemotePool::create(&target, "rm.set", Arc::clone(&r), 1, None, &opts)
        .expect("create")
        .close()
        .expect("close");
    assert!(parts[0].exists());
    remove(&target, "rm.set", 0, &opts).expect("remove");
    assert!(!parts[0].exists(), "part file removed");
    assert!(env.poolset_path("rm.set").exists(), "pool set file kept");

    // Nothing left to remove: rpmemd's words and exit status, unless forced.
    let e = remove(&target, "rm.set", 0, &opts).expect_err("already removed");
    let Error::RemoveFailed { message, code, .. } = &e else {
        panic!("expected RemoveFailed: {e}");
    };
    assert!(!message.trim().is_empty() && *code != 0, "{e}");
    assert!(message.contains("rm.set"), "rpmemd names the pool set: {e}");
    remove(&target, "rm.set", REMOVE_FORCE, &opts).expect("forced");

    RemotePool::create(&target, "rm.set", Arc::clone(&r), 1, None, &opts)
        .expect("create again")
        .close()
        .expect("close");
    remove(&target, "rm.set", REMOVE_POOL_SET, &opts).expect("remove with the set");
    assert!(!parts[0].exists());
    assert!(
        !env.poolset_path("rm.set").exists(),
        "pool set file removed"
    );
    let e = remove(&target, "rm.set", REMOVE_POOL_SET, &opts).expect_err("no pool set");
    assert!(matches!(e, Error::RemoveFailed { .. }), "{e}");
    assert!(e.to_string().contains("rm.set"), "{e}");
}

#[test]
fn rpmemd_errors_reach_the_caller_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    env.poolset("p.set", &[POOL], true);
    let opts = sshd.options(&env);
    let target = sshd.target();
    let r = region(POOL);
    let timed = |what: &str, f: &dyn Fn() -> Error| {
        let started = Instant::now();
        let e = f();
        assert!(
            started.elapsed() < PROMPT,
            "{what} took {:?}",
            started.elapsed()
        );
        let msg = e.to_string();
        assert!(!msg.trim_end().ends_with(':'), "{what}: empty cause: {msg}");
        e
    };

    // No pool set file: rpmemd answers RPMEM_ERR_NOEXIST.
    let e = timed("open of a missing pool set", &|| {
        RemotePool::open(&target, "missing.set", Arc::clone(&r), 1, &opts).expect_err("missing")
    });
    let Error::Refused {
        status, message, ..
    } = &e
    else {
        panic!("expected Refused: {e}");
    };
    assert_eq!(*status, Status::NoExist, "{e}");
    assert!(!message.trim().is_empty(), "{e}");
    assert_eq!(e.errno(), libc::ENOENT, "{e}");

    // A pool set whose pool does not exist yet.
    let e = timed("open before create", &|| {
        RemotePool::open(&target, "p.set", Arc::clone(&r), 1, &opts).expect_err("no pool")
    });
    assert!(matches!(e, Error::Refused { .. }), "{e}");

    // rpmemd cannot start: its own message comes through ssh's stderr.
    let bad_config = opts
        .to_builder()
        .command(format!(
            "{} -c {}",
            rpmem_e2e::rpmemd_bin().display(),
            env.path("missing.conf").display()
        ))
        .build();
    let e = timed("a missing configuration", &|| {
        RemotePool::create(&target, "p.set", Arc::clone(&r), 1, None, &bad_config)
            .expect_err("bad configuration")
    });
    assert!(
        e.to_string().contains("missing.conf"),
        "rpmemd's own words: {e}"
    );

    // No rpmemd on the target: the remote shell's words.
    let no_rpmemd = opts
        .to_builder()
        .command(env.path("no-such-rpmemd").display().to_string())
        .build();
    let e = timed("a missing rpmemd", &|| {
        RemotePool::create(&target, "p.set", Arc::clone(&r), 1, None, &no_rpmemd)
            .expect_err("no rpmemd")
    });
    assert!(e.is_fatal(), "{e}");
    assert!(
        e.to_string().contains("no-such-rpmemd"),
        "the shell's message: {e}"
    );

    // The channel still works after all of that.
    RemotePool::create(&target, "p.set", Arc::clone(&r), 1, None, &opts)
        .expect("create")
        .close()
        .expect("close");
}

/// Options from librpmem's environment variables: `RPMEM_SSH` is a
/// wrapper script (one program) that adds `-F <config>`.
#[test]
fn environment_variables_select_ssh_wrapper_and_command() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("env.set", &[POOL], true);
    let wrapper = sshd.ssh_wrapper().display().to_string();
    let command = env.command();
    let opts = Options::from_lookup(|name| match name {
        "RPMEM_SSH" => Some(wrapper.clone()),
        "RPMEM_CMD" => Some(command.clone()),
        "RPMEM_MAX_NLANES" => Some("2".to_owned()),
        _ => None,
    })
    .expect("options");
    assert_eq!(opts.ssh(), wrapper);
    let r = region(POOL);
    let pool = RemotePool::create(&sshd.target(), "env.set", Arc::clone(&r), 8, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(pool.nlanes(), 2, "RPMEM_MAX_NLANES");
    put(&r, 12_345, &pattern(54_321, 9));
    pool.persist(1, 12_345, 54_321, 0).expect("persist");
    pool.close().expect("close");
    assert_eq!(
        TestEnv::file_bytes(&parts[0], 12_345, 54_321),
        pattern(54_321, 9)
    );
}

/// rpmemd finds its configuration through a variable the client sends
/// (`-o SetEnv=`) and sshd accepts (`AcceptEnv`): the command is the bare
/// rpmemd path.
#[test]
fn rpmemd_configuration_from_an_accepted_variable() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("setenv.set", &[POOL], true);
    let mut args = sshd.ssh_args();
    args.push("-o".to_owned());
    args.push(format!(
        "SetEnv=RPMEMD_GLOBAL_CONFIG={}",
        env.path("rpmemd.conf").display()
    ));
    let opts = sshd
        .options(&env)
        .to_builder()
        .ssh_args(args)
        .command(rpmem_e2e::rpmemd_bin().display().to_string())
        .build();
    let r = region(POOL);
    let pool = RemotePool::create(&sshd.target(), "setenv.set", Arc::clone(&r), 1, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    put(&r, 0, b"configured by SetEnv");
    pool.persist(0, 0, 20, 0).expect("persist");
    pool.close().expect("close");
    assert_eq!(
        TestEnv::file_bytes(&parts[0], 0, 20),
        b"configured by SetEnv"
    );
    assert!(
        env.log().contains("ssh connection: 127.0.0.1"),
        "rpmemd logged into the configured file: {}",
        env.log()
    );
}

/// ssh options given directly (no configuration file): `-i key -o
/// UserKnownHostsFile=.. -o StrictHostKeyChecking=accept-new -o
/// IdentitiesOnly=yes`. A key sshd does not know fails at once with ssh's
/// own words (batch mode: no password prompt).
#[test]
fn ssh_options_on_the_command_line_and_a_refused_key() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    let parts = env.poolset("opt.set", &[POOL], true);
    let direct = |key: &std::path::Path| {
        let mut args = vec![
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-i".to_owned(),
            key.display().to_string(),
        ];
        for o in [
            format!("UserKnownHostsFile={}", env.path("known_hosts").display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "StrictHostKeyChecking=accept-new".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ] {
            args.push("-o".to_owned());
            args.push(o);
        }
        sshd.options(&env).to_builder().ssh_args(args).build()
    };
    let r = region(POOL);
    let opts = direct(&sshd.path("client_ed25519"));
    let pool = RemotePool::create(&sshd.target(), "opt.set", Arc::clone(&r), 1, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    put(&r, 100, b"direct options");
    pool.persist(0, 100, 14, 0).expect("persist");
    pool.close().expect("close");
    assert_eq!(TestEnv::file_bytes(&parts[0], 100, 14), b"direct options");

    let stranger = env.path("stranger_ed25519");
    rpmem_e2e::sshd::keygen(&stranger, "not authorized");
    let opts = direct(&stranger);
    let started = Instant::now();
    let e = RemotePool::open(&sshd.target(), "opt.set", Arc::clone(&r), 1, &opts)
        .expect_err("a key sshd does not know");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert!(e.is_fatal(), "{e}");
    assert!(
        e.to_string().contains("Permission denied"),
        "ssh's own words: {e}"
    );
}

fn assert_names_death(e: &Error) {
    let msg = e.to_string();
    assert!(
        msg.contains("signal 9")
            || msg.contains("closed")
            || msg.contains("reset")
            || msg.contains("hung up"),
        "the error should name the cause: {msg}"
    );
    assert!(e.is_fatal(), "{msg}");
}

/// ssh is killed while a lane persists in a loop: the failing call returns
/// well within the data deadline, later calls and close fail promptly, the
/// remote rpmemd goes away, and every acknowledged persist is on the target.
#[test]
fn killing_ssh_during_persists_fails_promptly_and_keeps_acknowledged_data() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    env.poolset("kill.set", &[POOL], true);
    let opts = sshd
        .options(&env)
        .to_builder()
        .data_timeout(DATA_TIMEOUT)
        .build();
    let target = sshd.target();
    let r = region(POOL);
    let pool = RemotePool::create(&target, "kill.set", Arc::clone(&r), 2, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    let ssh_pid = pool.remote_pid().expect("pid");
    assert_eq!(process_name(ssh_pid).as_deref(), Some("ssh"));
    let run = persist_until_killed(
        &pool,
        &r,
        POOL,
        |k| 4096 + (k % 5) * 30_000,
        ssh_pid,
        Duration::from_millis(300),
    );
    assert!(
        run.waited < PROMPT,
        "the failing persist took {:?}",
        run.waited
    );
    assert_names_death(&run.err);
    assert!(
        !run.acked.is_empty(),
        "some persists succeeded before the kill"
    );

    let started = Instant::now();
    let e = pool.persist(0, 0, 8, 0).expect_err("lane broken");
    assert!(matches!(e, Error::LaneBroken { .. }), "{e}");
    let e = pool.close().expect_err("ssh is dead");
    assert!(
        started.elapsed() < PROMPT,
        "close took {:?}",
        started.elapsed()
    );
    assert!(!e.to_string().trim_end().ends_with(':'), "{e}");
    assert!(
        wait_for(PROMPT, || sshd.remote_processes("rpmemd").is_empty()),
        "rpmemd on the target ends when its ssh session dies"
    );

    // Reopen over ssh: every acknowledged persist is there.
    let r2 = region(POOL);
    let pool = RemotePool::open(&target, "kill.set", Arc::clone(&r2), 1, &opts)
        .expect("reopen after the kill");
    pool.read_to_region(0, 0, POOL).expect("read back");
    pool.close().expect("close");
    assert_acked_on_target(&get(&r2, 0, POOL as usize), &run);
}

/// ssh is killed while the pool is idle: once rpmemd on the target has
/// gone, the next call fails at once (no hang), and so does close.
#[test]
fn killing_ssh_between_calls_fails_the_next_call_promptly() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    env.poolset("idle.set", &[POOL], true);
    let opts = sshd
        .options(&env)
        .to_builder()
        .data_timeout(DATA_TIMEOUT)
        .build();
    let r = region(POOL);
    let pool = RemotePool::create(&sshd.target(), "idle.set", Arc::clone(&r), 2, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    put(&r, 0, &pattern(8192, 1));
    pool.persist(0, 0, 8192, 0)
        .expect("persist before the kill");
    let ssh_pid = pool.remote_pid().expect("pid");
    kill9(ssh_pid);
    assert!(wait_for(PROMPT, || !process_running(ssh_pid)), "ssh ended");
    assert!(
        wait_for(PROMPT, || sshd.remote_processes("rpmemd").is_empty()),
        "rpmemd on the target ends when its ssh session dies"
    );
    for (lane, flags) in [(0, 0), (1, PERSIST_RELAXED)] {
        let started = Instant::now();
        let e = pool
            .persist(lane, 4096, 4096, flags)
            .expect_err("the session is gone");
        assert!(
            started.elapsed() < PROMPT,
            "lane {lane}: the call took {:?}",
            started.elapsed()
        );
        assert_names_death(&e);
    }
    let started = Instant::now();
    let e = pool.close().expect_err("ssh is dead");
    assert!(
        started.elapsed() < PROMPT,
        "close took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(e, Error::Disconnected { .. }),
        "close after the kill: {e}"
    );
    assert!(e.to_string().contains("signal 9"), "{e}");
}

/// The IPv6 loopback target `user@[::1]:PORT`: ssh and the data path both
/// over ::1. Skipped (with a message) without an IPv6 loopback.
#[test]
fn ipv6_loopback_target() {
    if !ipv6_loopback_available() {
        eprintln!("skipping ipv6_loopback_target: this machine cannot listen on [::1]");
        return;
    }
    let Some(sshd) = Sshd::start_on(IpAddr::V6(Ipv6Addr::LOCALHOST)) else {
        return;
    };
    let target = sshd.target();
    assert_eq!(target, format!("{}@[::1]:{}", sshd.user(), sshd.port()));
    let env = TestEnv::new();
    let parts = env.poolset("v6.set", &[POOL], false);
    let opts = sshd.options(&env);
    let r = region(POOL);
    let a = attr(6);
    let pool = RemotePool::create(&target, "v6.set", Arc::clone(&r), 2, Some(&a), &opts)
        .unwrap_or_else(|e| panic!("create over [::1]: {e}\nsshd log:\n{}", sshd.log()));
    put(&r, 4096, &pattern(100_000, 6));
    pool.persist(0, 4096, 100_000, 0).expect("persist");
    put(&r, POOL - 8192, &pattern(8192, 7));
    pool.persist(1 % pool.nlanes(), POOL - 8192, 8192, PERSIST_RELAXED)
        .expect("persist relaxed");
    let mut back = vec![0u8; 100_000];
    pool.read(0, 4096, &mut back).expect("read");
    assert_eq!(back, pattern(100_000, 6));
    pool.close().expect("close");
    assert_eq!(
        TestEnv::file_bytes(&parts[0], 4096, 100_000),
        pattern(100_000, 6)
    );
    assert_eq!(
        TestEnv::file_bytes(&parts[0], POOL - 8192, 8192),
        pattern(8192, 7)
    );
    assert!(
        env.log().contains(&format!("::1 {}", sshd.port())),
        "rpmemd saw an IPv6 SSH_CONNECTION: {}",
        env.log()
    );
    let pool = RemotePool::open(&target, "v6.set", Arc::clone(&r), 1, &opts).expect("reopen");
    assert_eq!(pool.attr(), Some(&a));
    pool.close().expect("close");
}

/// Dropping the harness kills sshd and every session below it (rpmemd
/// included), and the library then notices at once.
#[test]
fn dropping_the_harness_kills_sshd_and_its_sessions() {
    let Some(sshd) = Sshd::start() else { return };
    let env = TestEnv::new();
    env.poolset("drop.set", &[POOL], true);
    let opts = sshd.options(&env);
    let r = region(POOL);
    let pool = RemotePool::create(&sshd.target(), "drop.set", Arc::clone(&r), 1, None, &opts)
        .unwrap_or_else(|e| panic!("create: {e}\nsshd log:\n{}", sshd.log()));
    let rpmemd = sshd.remote_processes("rpmemd");
    assert_eq!(rpmemd.len(), 1, "{rpmemd:?}");
    let sshd_pid = sshd.pid();
    let addr = sshd.addr();
    let started = Instant::now();
    drop(sshd);
    assert!(
        started.elapsed() < PROMPT,
        "drop took {:?}",
        started.elapsed()
    );
    assert!(!process_running(sshd_pid), "sshd is gone");
    assert!(!process_running(rpmemd[0]), "rpmemd is gone");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nothing listens on {addr} any more"
    );
    let started = Instant::now();
    let e = pool.persist(0, 0, 8, 0).expect_err("the session is gone");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert_names_death(&e);
    drop(pool);
}
