//! The examples' application code, unchanged, against a real rpmemd through
//! rpmem (local mode): the functions the simulator crash-tests are the
//! functions that run. The pool the target holds afterwards is accepted by
//! the same recovery code, read back through the lane and from the part
//! file.

use std::sync::Arc;

use rpmem::RemotePool;
use rpmem_e2e::{attr, region, TestEnv};
use sim::app::Call;

#[allow(dead_code)]
#[path = "../examples/replicated_log.rs"]
mod log;

#[allow(dead_code)]
#[path = "../examples/two_slot.rs"]
mod two_slot;

const POOL: u64 = 2 << 20;

#[test]
fn the_log_and_the_two_slot_record_run_unchanged_on_rpmem_lanes() {
    let env = TestEnv::new();
    let parts = env.poolset("app.set", &[POOL], false);
    let r = region(POOL);
    let pool = RemotePool::create(
        "localhost",
        "app.set",
        Arc::clone(&r),
        1,
        Some(&attr(3)),
        &env.options(),
    )
    .expect("create");
    let mut lane = pool.lane(0).expect("lane 0");
    assert_eq!(rpmem_replica_start(&lane), 4096);

    // The log: records from offset 4096 + 64 on, tail at 4096.
    for n in 0..log::APPENDS {
        log::append(&mut lane, n, log::value(7, n)).expect("append");
    }
    // What the simulator's history would hold: one acknowledging deep
    // persist of the tail per append.
    let history: Vec<Call> = (0..log::APPENDS)
        .map(|_| Call::DeepPersist {
            offset: 4096,
            len: 8,
        })
        .collect();
    let mut image = vec![0u8; POOL as usize];
    lane.read(0, &mut image).expect("read the pool back");
    log::recover(&image, &history, 4096).expect("the replicated log is accepted");
    assert_eq!(image[4096..4104], log::APPENDS.to_le_bytes());

    drop(lane);
    pool.close().expect("close");
    let file = std::fs::read(&parts[0]).expect("part file");
    log::recover(&file, &history, 4096).expect("the part file is accepted");
    assert_eq!(
        file[4096..],
        image[4096..],
        "read back equals the part file"
    );

    // The two-slot record, in a second pool, through the same trait.
    let parts = env.poolset("slot.set", &[POOL], false);
    let r = region(POOL);
    let pool = RemotePool::create(
        "localhost",
        "slot.set",
        Arc::clone(&r),
        1,
        Some(&attr(4)),
        &env.options(),
    )
    .expect("create");
    let mut lane = pool.lane(0).expect("lane 0");
    let mut history = Vec::new();
    for version in 1..=two_slot::UPDATES {
        two_slot::update(&mut lane, 9, version).expect("update");
        history.push(Call::DeepPersist {
            offset: 4096,
            len: 8,
        });
    }
    drop(lane);
    pool.close().expect("close");
    let file = std::fs::read(&parts[0]).expect("part file");
    two_slot::recover(&file, &history, 4096, false).expect("the record is accepted");
    assert_eq!(file[4096..4104], two_slot::UPDATES.to_le_bytes());
}

fn rpmem_replica_start(lane: &rpmem::Lane<'_>) -> u64 {
    use sim::app::Replica;
    lane.data_start()
}
