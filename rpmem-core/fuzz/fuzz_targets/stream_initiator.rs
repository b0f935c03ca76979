//! Fuzz target: a `StreamInitiator` (the initiator's side of a whole TCP
//! lane, as rpmem drives it) given calls chosen by the input and arbitrary
//! server bytes, in pieces of arbitrary sizes.
//!
//! Checked: nothing panics, the machine never loops; every region range it
//! asks the driver to send lies inside the region; every READ_RESP byte it
//! hands over fits the read's destination; a call completes at most once;
//! after a failure the lane stays failed.
//!
//! Input: byte 0 bit 0 — a server that knows the session secret answers the
//! handshake first (server hello with its proof, then the hello answer; so
//! the fuzzer reaches the frames), else the handshake's answers are server
//! bytes like the rest; byte 1 — the size of the pieces server bytes
//! arrive in; then groups of 4 bytes, each a call (kind, offset page, length,
//! flags) followed by up to 64 server bytes whose count is the group's last
//! byte (low 6 bits).
//!
//! Hostile bytes rarely form a valid answer to a persist, so most runs end
//! in the hello, the frame checks and the refusals; the machine's deep
//! states over valid but arbitrarily cut streams are the property test
//! `rpmem-core/tests/stream_lane.rs` (both machines against each other).
//!
//! `cargo fuzz run stream_initiator -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::negotiate::SessionParams;
use rpmem_core::persist::{Chunk, Method, Placement, ReadSink, StreamInitiator};
use rpmem_core::seal::{LaneMode, ServerHandshake};
use rpmem_core::wire::tcp::{HelloAckRepr, HelloStatus};
use rpmem_core_fuzz::{POOL, SECRET};

/// The destination of the read in flight.
struct Sink {
    len: u64,
}

impl ReadSink for Sink {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        assert!(
            at.checked_add(bytes.len() as u64)
                .is_some_and(|e| e <= self.len),
            "READ_RESP bytes at {at}+{} past a {}-byte read",
            bytes.len(),
            self.len
        );
        true
    }
}

/// Writes everything the lane has; returns the machine's own bytes (the
/// handshake's, frame and message headers).
fn transmit_all(lane: &mut StreamInitiator) -> Vec<u8> {
    let mut total = 0u64;
    let mut own = Vec::new();
    for c in lane.poll_transmit() {
        assert!(!c.is_empty());
        match c {
            Chunk::Region { offset, len } => {
                assert!(offset.checked_add(len).is_some_and(|e| e <= POOL));
            }
            Chunk::Bytes(b) => own.extend_from_slice(b),
        }
        total += c.len();
    }
    if total > 0 {
        let _ = lane.on_transmitted(total);
    }
    own
}

fuzz_target!(|input: &[u8]| {
    let [mode, piece, rest @ ..] = input else {
        return;
    };
    let mut rest: &[u8] = rest;
    let piece = usize::from(*piece).max(1);
    let session = SessionParams {
        nlanes: 2,
        pool_size: POOL,
        headers: true,
        inline_max: 256,
        method: Method::Gpspm,
        announced: Method::Gpspm,
    };
    // The frames in the clear after the handshake (the record layer is the
    // target `sealed_lane`).
    let lane_mode = LaneMode::Plaintext;
    let mut lane = StreamInitiator::new(
        session.lane(1, Placement::Stream),
        &SECRET,
        [5; 32],
        lane_mode,
    )
    .unwrap();
    let mut sink = Sink { len: 0 };
    let hello = transmit_all(&mut lane);
    if mode & 1 != 0 {
        let hello: [u8; 48] = hello.as_slice().try_into().unwrap();
        let (_, answer) =
            ServerHandshake::on_hello(&SECRET, &hello, [6; 32], 2, lane_mode).unwrap();
        lane.handle_bytes(&answer, &mut sink).unwrap();
        assert_eq!(transmit_all(&mut lane).len(), 32, "the client proof");
        let ack = HelloAckRepr {
            status: HelloStatus::Ok,
        }
        .to_bytes();
        lane.handle_bytes(&ack, &mut sink).unwrap();
        assert!(lane.is_connected());
    }
    let mut rounds = 0usize;
    while let [kind, page, size, count, more @ ..] = rest {
        let (kind, page, size, count) = (*kind, *page, *size, *count);
        rounds += 1;
        assert!(rounds <= input.len(), "the machine did not stop");
        let offset = u64::from(page) * 256;
        let len = u64::from(size) * 97 + 1;
        let flags = u32::from(kind >> 4 & 1);
        if lane.call_in_flight().is_none() && lane.failure().is_none() && lane.is_connected() {
            let _ = match kind % 5 {
                0 => lane.persist(offset, len, flags),
                1 => lane.flush(offset, len, flags),
                2 => lane.drain(0),
                3 => lane.deep_persist(offset, len),
                _ => {
                    sink.len = len;
                    lane.read(offset, len)
                }
            };
        }
        transmit_all(&mut lane);
        let n = usize::from(count & 63).min(more.len());
        let (server, after) = more.split_at(n);
        rest = after;
        let mut server = server;
        while !server.is_empty() {
            let was_failed = lane.failure().is_some();
            let take = match lane.read_direct() {
                Some((at, want)) => {
                    let take = (want as usize).min(piece).min(server.len());
                    assert!(at + take as u64 <= sink.len);
                    let _ = lane.on_read_direct(take as u64);
                    take
                }
                None => {
                    let take = piece.min(server.len());
                    let _ = lane.handle_bytes(&server[..take], &mut sink);
                    take
                }
            };
            if was_failed {
                assert!(lane.failure().is_some(), "a failed lane recovered");
            }
            server = &server[take..];
            transmit_all(&mut lane);
        }
        if lane.poll_completion().is_some() {
            // Reported once: the next poll has nothing for this call.
            if lane.call_in_flight().is_none() {
                assert!(lane.poll_completion().is_none());
            }
        }
    }
});
