//! Checks written for the mutants that cargo-mutants found surviving in
//! `persist/initiator.rs` and in the seeded-bug hooks of `flush/mod.rs` and
//! `persist/initiator.rs` (docs/simulation.md, "cargo-mutants"): each test
//! below fails under at least one of them. Drivers (rpmem's lanes, the
//! simulator) decide what to do next from the lane's state accessors, so
//! these are checked through a whole call. The hook tests are compiled only
//! with `--cfg rpmem_mutants` (test.sh's mutant step runs them).

use std::sync::{Mutex, MutexGuard};

use rpmem_core::persist::{
    CallError, CallKind, Completion, InitiatorLane, LaneParams, Method, Op, PersistMode,
    PersistRespRepr, Placement,
};

/// The seeded bugs are one process-wide switch: every test holds this lock,
/// so no test runs while another one has a seeded bug switched on.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn gpspm_lane() -> InitiatorLane {
    InitiatorLane::new(LaneParams::new(
        0,
        1,
        Method::Gpspm,
        1 << 20,
        4096,
        Placement::Rdma,
    ))
    .expect("valid lane parameters")
}

/// Start a 64-byte persist (an inline `PERSIST_SEND` under GPSPM) and
/// return its one posted operation.
fn start_inline_persist(lane: &mut InitiatorLane) -> Op {
    lane.persist(4096, 64, 0).expect("the call is accepted");
    let op = lane.poll_op().expect("the persist posts its message");
    assert_eq!(lane.poll_op(), None, "one message for 64 bytes");
    match op {
        Op::Send { msg, inline, .. } => {
            assert!(inline);
            assert_eq!(msg.mode, PersistMode::PersistSend);
        }
        other => panic!("expected an inline SEND, got {other:?}"),
    }
    op
}

fn response_to(op: &Op) -> [u8; 8] {
    match op {
        Op::Send { msg, .. } => PersistRespRepr::answering(msg).to_bytes(),
        other => panic!("no response answers {other:?}"),
    }
}

#[test]
fn a_call_is_in_flight_until_its_result_is_collected() {
    let _serial = serial();
    let mut lane = gpspm_lane();
    assert_eq!(lane.call_in_flight(), None);
    assert!(lane.is_idle());
    assert!(!lane.expects_completion());

    let op = start_inline_persist(&mut lane);
    assert_eq!(lane.call_in_flight(), Some(CallKind::Persist));
    assert!(!lane.is_idle(), "a call is in flight");
    assert!(lane.expects_completion());

    // The send completion first: only the response is awaited now.
    lane.handle_completion(Completion::Send { lane: 0 })
        .expect("the SEND completion is expected");
    assert!(
        lane.expects_completion(),
        "the persist response is still awaited"
    );
    assert_eq!(lane.call_in_flight(), Some(CallKind::Persist));

    let resp = response_to(&op);
    lane.handle_completion(Completion::Recv {
        lane: 0,
        bytes: &resp,
    })
    .expect("the response answers the message");
    assert!(!lane.expects_completion());
    // The lane settles the call when polled: nothing more to post, the
    // call is over, but its result is not collected yet: not idle.
    assert_eq!(lane.call_in_flight(), Some(CallKind::Persist));
    assert_eq!(lane.poll_op(), None);
    assert_eq!(lane.call_in_flight(), None);
    assert!(!lane.is_idle(), "a result waits to be collected");
    assert_eq!(lane.poll_done(), Some(Ok(())));
    assert!(lane.is_idle());
    assert_eq!(lane.poll_done(), None);
}

#[test]
fn a_response_before_the_send_completion_leaves_the_send_awaited() {
    let _serial = serial();
    let mut lane = gpspm_lane();
    let op = start_inline_persist(&mut lane);
    let resp = response_to(&op);
    lane.handle_completion(Completion::Recv {
        lane: 0,
        bytes: &resp,
    })
    .expect("a response may arrive before the send completion");
    assert!(
        lane.expects_completion(),
        "the SEND's own completion is still awaited"
    );
    assert_eq!(lane.call_in_flight(), Some(CallKind::Persist));
    lane.handle_completion(Completion::Send { lane: 0 })
        .expect("the SEND completion is expected");
    assert!(!lane.expects_completion());
    assert_eq!(lane.poll_done(), Some(Ok(())));
    assert!(lane.is_idle());
}

#[test]
fn a_range_may_end_at_the_last_byte_of_the_pool() {
    let _serial = serial();
    let pool = 1u64 << 20;
    // Up to the last byte: accepted, by every call that names a range.
    let mut lane = gpspm_lane();
    assert_eq!(lane.persist(pool - 64, 64, 0), Ok(()));
    let mut lane = gpspm_lane();
    assert_eq!(lane.flush(pool - 4096, 4096, 0), Ok(()));
    let mut lane = gpspm_lane();
    assert_eq!(lane.deep_persist(pool - 100, 100), Ok(()));
    let mut lane = gpspm_lane();
    assert_eq!(lane.read(pool - 8, 8), Ok(()));
    // One byte further: refused, and the lane stays idle.
    let mut lane = gpspm_lane();
    assert_eq!(
        lane.persist(pool - 64, 65, 0),
        Err(CallError::OutOfPool {
            offset: pool - 64,
            len: 65,
            pool_size: pool
        })
    );
    assert!(lane.is_idle());
    assert_eq!(
        lane.read(pool, 0),
        Err(CallError::OutOfPool {
            offset: pool,
            len: 0,
            pool_size: pool
        }),
        "an offset at the pool's end names no byte of it"
    );
}

/// A GPSPM lane with a send window of 2 and 64-byte inline messages, in
/// the middle of a 256-byte persist (four messages): the two it could post.
fn two_messages_posted() -> (InitiatorLane, [Op; 2]) {
    let mut p = LaneParams::new(0, 1, Method::Gpspm, 1 << 20, 4096, Placement::Rdma);
    p.send_window = 2;
    p.inline_max = 64;
    let mut lane = InitiatorLane::new(p).expect("valid lane parameters");
    lane.persist(4096, 256, 0).expect("the call is accepted");
    let first = lane.poll_op().expect("first message");
    let second = lane.poll_op().expect("second message");
    assert_eq!(lane.poll_op(), None, "the send window is full");
    (lane, [first, second])
}

#[test]
fn a_message_buffer_is_reused_only_after_its_send_completed() {
    let _serial = serial();
    // Both answered before their SENDs completed: both send buffers are
    // still owned by the NIC, so the window stays full.
    let (mut lane, ops) = two_messages_posted();
    for op in &ops {
        let resp = response_to(op);
        lane.handle_completion(Completion::Recv {
            lane: 0,
            bytes: &resp,
        })
        .expect("a response may come before its send completion");
    }
    assert_eq!(lane.poll_op(), None, "two SENDs still in the send queue");
    lane.handle_completion(Completion::Send { lane: 0 })
        .expect("the first SEND completes");
    assert!(
        matches!(lane.poll_op(), Some(Op::Send { inline: true, .. })),
        "one buffer is free again"
    );
    assert_eq!(lane.poll_op(), None);
}

#[test]
fn unanswered_messages_never_exceed_the_send_window() {
    let _serial = serial();
    // Both SENDs completed, neither answered: the target has no receive
    // buffer left for this lane, so the window stays full.
    let (mut lane, ops) = two_messages_posted();
    for _ in &ops {
        lane.handle_completion(Completion::Send { lane: 0 })
            .expect("the SEND completes");
    }
    assert_eq!(lane.poll_op(), None, "two messages await their responses");
    let resp = response_to(&ops[0]);
    lane.handle_completion(Completion::Recv {
        lane: 0,
        bytes: &resp,
    })
    .expect("the first message is answered");
    assert!(
        matches!(lane.poll_op(), Some(Op::Send { inline: true, .. })),
        "one response slot is free again"
    );
    assert_eq!(lane.poll_op(), None);
}

/// The seeded bug `FlushMissesLastLine` (compiled only with
/// `--cfg rpmem_mutants`) must do what the simulator's mutant step expects
/// of it: skip exactly the last line of a range of several lines, and
/// nothing else.
#[cfg(rpmem_mutants)]
#[test]
fn the_seeded_flush_bug_skips_exactly_the_last_line() {
    let _serial = serial();
    use rpmem_core::flush::mutants::{set, Mutant};
    use rpmem_core::flush::{persist_range, FlushError, FlushMode, FlushOps};

    #[derive(Default)]
    struct Lines(Vec<u64>);
    impl FlushOps for Lines {
        fn flush_line(&mut self, offset: u64) {
            self.0.push(offset);
        }
        fn fence(&mut self) {}
        fn msync(&mut self, _: u64, _: u64) -> Result<(), FlushError> {
            Ok(())
        }
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set(Mutant::None);
        }
    }
    let flushed = |offset, len| {
        let mut l = Lines::default();
        persist_range(&mut l, FlushMode::Cpu, offset, len).expect("a CPU flush cannot fail");
        l.0
    };
    let _reset = Reset;
    set(Mutant::None);
    assert_eq!(flushed(4100, 200), [4096, 4160, 4224, 4288]);
    set(Mutant::FlushMissesLastLine);
    assert_eq!(
        flushed(4100, 200),
        [4096, 4160, 4224],
        "the last line skipped"
    );
    assert_eq!(flushed(4096, 128), [4096], "the last of two lines skipped");
    assert_eq!(
        flushed(4100, 10),
        [4096],
        "a single line is the first: kept"
    );
}

/// The seeded bug `RdmaFlushWithoutFlush` (compiled only with
/// `--cfg rpmem_mutants`) drops the RDMA FLUSHes of a lane that runs RDMA
/// FLUSH, and nothing on a lane of another method.
#[cfg(rpmem_mutants)]
#[test]
fn the_seeded_rdma_flush_bug_only_touches_rdma_flush_lanes() {
    let _serial = serial();
    use rpmem_core::flush::mutants::{set, Mutant};
    use rpmem_core::persist::PERSIST_RELAXED;

    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set(Mutant::None);
        }
    }
    // The operations a relaxed persist posts before it must wait.
    let posted = |method| {
        let mut lane = InitiatorLane::new(LaneParams::new(
            0,
            1,
            method,
            1 << 20,
            4096,
            Placement::Rdma,
        ))
        .expect("valid lane parameters");
        lane.persist(4096, 4096, PERSIST_RELAXED)
            .expect("the call is accepted");
        let mut ops = Vec::new();
        while let Some(op) = lane.poll_op() {
            ops.push(op);
        }
        ops
    };
    let flush_write = |ops: &[Op]| {
        ops.iter()
            .any(|op| matches!(op, Op::Send { msg, .. } if msg.mode == PersistMode::FlushWrite))
    };
    let rdma_flush = |ops: &[Op]| ops.iter().any(|op| matches!(op, Op::Flush { .. }));
    let _reset = Reset;
    set(Mutant::None);
    assert!(flush_write(&posted(Method::Gpspm)));
    assert!(rdma_flush(&posted(Method::RdmaFlush)));
    set(Mutant::RdmaFlushWithoutFlush);
    assert!(
        flush_write(&posted(Method::Gpspm)),
        "GPSPM still sends its FLUSH_WRITE"
    );
    assert!(
        !rdma_flush(&posted(Method::RdmaFlush)),
        "the seeded bug drops the FLUSH"
    );
}
