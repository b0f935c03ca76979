//! Failures: rpmemd killed during persist, read and close; the client
//! stopping mid-session; strangers on the data port. Nothing may hang, every
//! error must name its cause, and every persist that succeeded before a kill
//! must be on the target afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rpmem::{Error, Region, RemotePool};
use rpmem_core::seal::{ClientHandshake, LaneMode, PROOF_LEN, SERVER_HELLO_LEN};
use rpmem_core::wire::tcp::{FrameKind, FrameRepr};
use rpmem_e2e::{
    assert_acked_on_target, kill9, pattern, persist_until_killed, process_alive, region, wait_for,
    TestEnv,
};

const MIB: u64 = 1 << 20;
const POOL: u64 = 8 * MIB;
/// The data deadline used here: errors must come well before it.
const DATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an error may take after rpmemd dies.
const PROMPT: Duration = Duration::from_secs(5);

fn create(env: &TestEnv, name: &str, r: &Arc<Region>, nlanes: u32) -> RemotePool {
    env.poolset(name, &[POOL], true);
    let opts = env
        .options()
        .to_builder()
        .data_timeout(DATA_TIMEOUT)
        .build();
    RemotePool::create("localhost", name, Arc::clone(r), nlanes, None, &opts).expect("create")
}

/// The message must say that rpmemd died, not be empty or generic.
fn assert_names_death(e: &Error) {
    let msg = e.to_string();
    assert!(
        msg.contains("signal 9") || msg.contains("closed") || msg.contains("reset"),
        "the error should name the cause: {msg}"
    );
    assert!(e.is_fatal(), "{msg}");
}

#[test]
fn kill_during_persist_fails_promptly_and_keeps_acknowledged_data() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "kill.set", &r, 2);
    let pid = pool.remote_pid().expect("pid");
    let run = persist_until_killed(
        &pool,
        &r,
        POOL,
        |k| 4096 + (k % 5) * 30_000,
        pid,
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
    // Later calls fail at once.
    let e = pool.persist(0, 0, 8, 0).expect_err("lane broken");
    assert!(matches!(e, Error::LaneBroken { .. }), "{e}");
    drop(pool);

    // Reopen: every acknowledged persist is on the target, last one wins.
    let opts = env.options();
    let r2 = region(POOL);
    let pool = RemotePool::open("localhost", "kill.set", Arc::clone(&r2), 1, &opts)
        .expect("reopen after the kill");
    pool.read_to_region(0, 0, POOL).expect("read back");
    pool.close().expect("close");
    let mut got = vec![0u8; POOL as usize];
    r2.read_at(0, &mut got).expect("read_at");
    assert_acked_on_target(&got, &run);
}

#[test]
fn kill_during_read_fails_promptly() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "killread.set", &r, 1);
    let pid = pool.remote_pid().expect("pid");
    let (err, waited) = thread::scope(|s| {
        let worker = s.spawn(|| {
            let mut lane = pool.lane(0).expect("lane");
            let mut buf = vec![0u8; POOL as usize];
            loop {
                let started = Instant::now();
                if let Err(e) = lane.read(0, &mut buf) {
                    return (e, started.elapsed());
                }
            }
        });
        thread::sleep(Duration::from_millis(300));
        kill9(pid);
        worker.join().expect("worker")
    });
    assert!(waited < PROMPT, "the failing read took {waited:?}");
    assert_names_death(&err);
}

#[test]
fn kill_before_close_fails_close_promptly_with_the_cause() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "killclose.set", &r, 1);
    r.write_at(0, b"x").expect("write");
    pool.persist(0, 0, 1, 0).expect("persist");
    let pid = pool.remote_pid().expect("pid");
    kill9(pid);
    let started = Instant::now();
    let e = pool.close().expect_err("rpmemd is dead");
    assert!(
        started.elapsed() < PROMPT,
        "close took {:?}",
        started.elapsed()
    );
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    assert!(e.to_string().contains("signal 9"), "{e}");
}

#[test]
fn kill_during_close_does_not_hang() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "killclose2.set", &r, 1);
    let pid = pool.remote_pid().expect("pid");
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1));
        // The process may be gone already (close won the race).
        // SAFETY: a signal to the rpmemd this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    });
    let started = Instant::now();
    // Either close wins the race or the kill does; both must end promptly,
    // and a failure must name the cause.
    if let Err(e) = pool.close() {
        assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    }
    assert!(started.elapsed() < PROMPT);
    killer.join().expect("killer");
}

#[test]
fn drop_without_close_ends_rpmemd_and_keeps_the_data() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "drop.set", &r, 2);
    let pid = pool.remote_pid().expect("pid");
    r.write_at(4096, &pattern(50_000, 1)).expect("write");
    pool.persist(1, 4096, 50_000, 0).expect("persist");
    let started = Instant::now();
    drop(pool);
    assert!(
        started.elapsed() < PROMPT,
        "drop took {:?}",
        started.elapsed()
    );
    assert!(
        wait_for(PROMPT, || !process_alive(pid)),
        "rpmemd still runs"
    );

    let r2 = region(POOL);
    let pool = RemotePool::open("localhost", "drop.set", Arc::clone(&r2), 1, &env.options())
        .expect("the pool is free again");
    let mut back = vec![0u8; 50_000];
    pool.read(0, 4096, &mut back).expect("read");
    assert_eq!(back, pattern(50_000, 1));
    pool.close().expect("close");
}

#[test]
fn strangers_on_the_data_port_write_nothing() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "stranger.set", &r, 2);
    let port = pool.data_port();
    let frame = FrameRepr {
        kind: FrameKind::Write,
        lane: 0,
        req_id: 0,
        offset: 0,
        len: 8,
    }
    .to_bytes();

    // A wrong secret: the stranger cannot check rpmemd's proof, nor make
    // its own, so it sends made-up proof bytes and then a frame.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let stranger = ClientHandshake::new(&[0x55; 32], 0, LaneMode::Sealed, [0x33; 32]);
    let _ = s.write_all(stranger.hello());
    let mut server_hello = [0u8; SERVER_HELLO_LEN];
    s.read_exact(&mut server_hello)
        .expect("rpmemd answers a well-formed hello with its own");
    assert!(
        stranger.on_server_hello(&server_hello).is_err(),
        "rpmemd's proof must not verify under another secret"
    );
    let _ = s.write_all(&[0x55; PROOF_LEN]);
    let _ = s.write_all(&frame);
    let _ = s.write_all(b"EVILDATA");
    let mut ack = Vec::new();
    let _ = s.read_to_end(&mut ack); // closed by rpmemd (maybe after a refusal)
    assert!(ack.len() <= 8, "no more than a refusal comes back");

    // No hello at all: a WRITE frame straight away.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(&frame);
    let _ = s.write_all(b"EVILDATA");
    let _ = s.write_all(&[0u8; 8]);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);

    // The session is unharmed and the pool holds no stranger's bytes.
    let mut head = [0u8; 8];
    pool.read(0, 0, &mut head).expect("read");
    assert_eq!(head, [0u8; 8]);
    r.write_at(0, b"ours").expect("write");
    pool.persist(1, 0, 4, 0).expect("persist still works");
    pool.close().expect("close");
}

#[test]
fn rpmemd_start_up_failure_carries_its_message() {
    let env = TestEnv::new();
    env.poolset("x.set", &[POOL], true);
    let opts = env
        .options()
        .to_builder()
        .command(format!(
            "{} -c {}",
            rpmem_e2e::rpmemd_bin().display(),
            env.path("missing.conf").display()
        ))
        .build();
    let r = region(POOL);
    let e = RemotePool::create("localhost", "x.set", Arc::clone(&r), 1, None, &opts)
        .expect_err("bad configuration");
    let msg = e.to_string();
    assert!(
        msg.contains("missing.conf"),
        "rpmemd's own words are in the error: {msg}"
    );
}

#[test]
fn broken_rpmemd_command_fails_promptly() {
    let env = TestEnv::new();
    env.poolset("x.set", &[POOL], true);
    // A program that exits at once without a word on stdout.
    let opts = env.options().to_builder().command("false").build();
    let r = region(POOL);
    let started = Instant::now();
    let e = RemotePool::create("localhost", "x.set", Arc::clone(&r), 1, None, &opts)
        .expect_err("not rpmemd");
    assert!(started.elapsed() < PROMPT);
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    assert!(e.to_string().contains("exited with status 1"), "{e}");
}

#[test]
fn silent_rpmemd_times_out() {
    let env = TestEnv::new();
    env.poolset("x.set", &[POOL], true);
    // A program that never answers.
    let opts = env
        .options()
        .to_builder()
        .command("sleep 60")
        .control_timeout(Duration::from_millis(500))
        .build();
    let r = region(POOL);
    let started = Instant::now();
    let e = RemotePool::create("localhost", "x.set", Arc::clone(&r), 1, None, &opts)
        .expect_err("silent");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("start-up status word"), "{e}");
}

/// A host that still runs PMDK 1.12.1's rpmemd: it does not know our TCP data
/// path. Its request loop (`rpmemd_obc_check_provider` failing, then `main`'s
/// error path) sends no answer: it logs "invalid provider -- <n>", writes its
/// errno as a 4-byte word and exits with a failure. The stand-in below does
/// exactly that on stdin/stdout. Both CREATE and OPEN must say what happened
/// and what to do, not "rpmemd reported errno 2".
#[test]
fn pmdk_rpmemd_on_the_target_is_named_with_the_remedy() {
    let env = TestEnv::new();
    env.poolset("x.set", &[POOL], false);
    let script = env.path("pmdk-rpmemd.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         # start-up status word: ready\n\
         printf '\\000\\000\\000\\000'\n\
         # the request header and body\n\
         head -c 16 >/dev/null\n\
         echo 'rpmemd: invalid provider -- 1380974593' >&2\n\
         # main's error path: errno (ENOENT here) as a host-order word\n\
         printf '\\002\\000\\000\\000'\n\
         exit 1\n",
    )
    .expect("script");
    let opts = env
        .options()
        .to_builder()
        .command(format!("sh {}", script.display()))
        .build();
    let r = region(POOL);
    let attr = rpmem_e2e::attr(3);
    let errors = [
        RemotePool::create("localhost", "x.set", Arc::clone(&r), 1, Some(&attr), &opts)
            .expect_err("PMDK's rpmemd cannot create"),
        RemotePool::open("localhost", "x.set", Arc::clone(&r), 1, &opts)
            .expect_err("PMDK's rpmemd cannot open"),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(matches!(e, Error::Protocol { .. }), "{msg}");
        assert!(msg.contains("probably PMDK's"), "says what happened: {msg}");
        assert!(msg.contains("RPMEM_CMD"), "says what to do: {msg}");
        assert!(
            msg.contains("invalid provider"),
            "with rpmemd's own words: {msg}"
        );
    }
}
