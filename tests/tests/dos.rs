//! Issue 15, "anyone who can reach the data port can block a session": an
//! attacker on loopback holds connections to a session's data port that
//! never become lanes (silent, a slow hello that never ends, hellos with a
//! wrong secret), then the real client connects a new lane (lanes connect on
//! their first call) and persists. It must succeed within a deadline far
//! below rpmemd's hello timeout, and its bytes must be on the target.
//!
//! Bounded: loopback only, a fixed number of connections, every wait with a
//! deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem::{Region, RemotePool};
use rpmem_core::seal::{ClientHandshake, LaneMode, HELLO_LEN, PROOF_LEN};
use rpmem_e2e::{pattern, region, TestEnv};

const MIB: u64 = 1 << 20;
const POOL: u64 = 4 * MIB;
/// How long a new lane's first persist may take with attackers around:
/// far below rpmemd's hello timeout, so the lane was not merely let in
/// after the attackers' connections timed out.
const DEADLINE: Duration = Duration::from_secs(2);

/// How an attacker's connection behaves.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Connects and sends nothing.
    Silent,
    /// Sends all of a correct-looking hello but its last byte, then waits.
    Partial,
    /// Sends a whole hello for lane 0 and a proof made without the
    /// session's secret, then waits.
    WrongSecret,
}

fn attacker(port: u16, kind: Attack) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let hello = *ClientHandshake::new(&[0x5a; 32], 0, LaneMode::Sealed, [0x17; 32]).hello();
    let mut w = &s;
    match kind {
        Attack::Silent => {}
        // rpmemd may already have closed it: errors are fine.
        Attack::Partial => drop(w.write_all(&hello[..HELLO_LEN - 1])),
        Attack::WrongSecret => {
            drop(w.write_all(&hello));
            drop(w.write_all(&[0x5a; PROOF_LEN]));
        }
    }
    s
}

fn create(env: &TestEnv, name: &str, r: &Arc<Region>, nlanes: u32) -> RemotePool {
    env.poolset(name, &[POOL], true);
    RemotePool::create(
        "localhost",
        name,
        Arc::clone(r),
        nlanes,
        None,
        &env.options(),
    )
    .expect("create")
}

/// `count` attackers of each kind in `kinds`, then a persist on `lane` (not
/// yet connected): it succeeds within [`DEADLINE`] and lands.
fn new_lane_persists_past(kinds: &[Attack], count: usize, nlanes: u32, lane: u32) {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "dos.set", &r, nlanes);
    let port = pool.data_port();
    let mut held = Vec::new();
    for &kind in kinds {
        for _ in 0..count {
            held.push(attacker(port, kind));
        }
    }
    // Let rpmemd see every attacker before the real lane comes.
    std::thread::sleep(Duration::from_millis(100));

    let data = pattern(4096, 15);
    r.write_at(8192, &data).expect("write");
    let start = Instant::now();
    let got = pool.persist(lane, 8192, 4096, 0);
    let took = start.elapsed();
    eprintln!(
        "{kinds:?} x{count}: lane {lane} of {nlanes} connected and persisted in {took:?}: {got:?}"
    );
    assert!(
        got.is_ok(),
        "lane {lane} failed with attackers around: {got:?}"
    );
    assert!(took < DEADLINE, "lane {lane} took {took:?}");
    // Durable on the target: read back through another lane.
    let mut back = vec![0u8; 4096];
    pool.read(0, 8192, &mut back).expect("read");
    assert_eq!(back, data);
    drop(held);
    pool.close().expect("close");
}

#[test]
fn sixteen_silent_connections_do_not_block_a_new_lane() {
    new_lane_persists_past(&[Attack::Silent], 16, 4, 3);
}

#[test]
fn partial_hellos_do_not_block_a_new_lane() {
    new_lane_persists_past(&[Attack::Partial], 16, 2, 1);
}

#[test]
fn a_mixed_crowd_beyond_any_budget_does_not_block_a_new_lane() {
    new_lane_persists_past(
        &[Attack::Silent, Attack::Partial, Attack::WrongSecret],
        48,
        4,
        3,
    );
}

/// Connections that never become lanes do not stay forever: rpmemd closes
/// the oldest ones once more arrive than it lets wait, and the rest when
/// their hello deadline passes.
#[test]
fn waiting_connections_are_closed_by_rpmemd() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "closed.set", &r, 2);
    let port = pool.data_port();
    let mut held: Vec<TcpStream> = (0..8).map(|_| attacker(port, Attack::Partial)).collect();
    let start = Instant::now();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("an unfinished hello got {other:?} instead of being closed"),
        }
    }
    let took = start.elapsed();
    eprintln!("8 unfinished hellos closed after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    pool.close().expect("close");
}

/// A stream of new connections (bounded: 3000, or 3 s) that rpmemd must
/// keep closing to make room, while the real client connects three new
/// lanes one after the other and persists on each.
#[test]
fn a_stream_of_new_connections_does_not_block_new_lanes() {
    let env = TestEnv::new();
    let r = region(POOL);
    let pool = create(&env, "churn.set", &r, 4);
    let port = pool.data_port();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3);
            let mut open = std::collections::VecDeque::new();
            let mut made = 0u32;
            while made < 3000
                && Instant::now() < until
                && !stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                    open.push_back(s);
                    made += 1;
                }
                if open.len() > 100 {
                    open.pop_front();
                }
            }
            made
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let data = pattern(4096, 16);
    r.write_at(16384, &data).expect("write");
    for lane in 1..4 {
        let start = Instant::now();
        let got = pool.persist(lane, 16384, 4096, 0);
        let took = start.elapsed();
        eprintln!("lane {lane} connected and persisted in {took:?} under a stream of connections: {got:?}");
        assert!(got.is_ok(), "lane {lane}: {got:?}");
        assert!(took < DEADLINE, "lane {lane} took {took:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = flood.join().expect("flood thread");
    eprintln!("{made} connections made");
    let mut back = vec![0u8; 4096];
    pool.read(0, 16384, &mut back).expect("read");
    assert_eq!(back, data);
    pool.close().expect("close");
}
