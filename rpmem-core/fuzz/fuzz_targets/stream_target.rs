//! Fuzz target: arbitrary bytes into a `StreamTarget` (the target's side of a
//! whole TCP lane, as rpmemd's worker drives it), delivered in pieces of
//! arbitrary sizes, with the driver doing what `poll` says.
//!
//! Checked: nothing panics, the machine never loops; no pool step (a body
//! piece, a write-back, a READ_RESP, a persist message) comes before the
//! hello with the session secret was accepted and its lane claimed; every
//! pool range stays inside the pool and writes stay above the header; the
//! streamed lines of a body piece lie inside the piece, on cache lines; after
//! an error the machine says nothing more but a refusal's answer.
//!
//! The first input byte chooses: bit 0 — a client that knows the session
//! secret runs the handshake for lane `(byte >> 3) % 4` first (its hello,
//! the server's answer checked, its proof; so the fuzzer reaches the
//! frames), else the handshake is whatever the input holds; bit 1 — stream
//! bodies; bit 2 — hold answers. The second byte is the size of the pieces
//! the bytes arrive in. The frames are the machine's plaintext (the record
//! layer is the target `sealed_lane`).
//!
//! `cargo fuzz run stream_target -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::{FlushMode, CACHE_LINE};
use rpmem_core::persist::{execute, Next, StreamTarget};
use rpmem_core::seal::LaneMode;
use rpmem_core_fuzz::{sealed_handshake, target, FakeMem, MIN, POOL, SECRET};

fuzz_target!(|input: &[u8]| {
    let [mode, piece, rest @ ..] = input else {
        return;
    };
    let piece = usize::from(*piece).max(1);
    let target = target(4, 256, FlushMode::Cpu);
    let mut lane = StreamTarget::new(
        target,
        SECRET,
        [0x42; 32],
        LaneMode::Sealed,
        mode & 2 != 0,
        256,
        mode & 4 != 0,
    );
    let mut claimed = false;
    if mode & 1 != 0 {
        sealed_handshake(&mut lane, u32::from(mode >> 3) % 4, [7; 32]);
        claimed = true;
        lane.on_claim(Ok(())).unwrap();
    }
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice(rest);
    let mut data: &[u8] = &bytes;
    let mut mem = FakeMem::new(POOL, MIN);
    let mut failed = false;
    // Every round either consumes input or moves the machine a step that
    // does not repeat without input: a bound far above that catches a loop.
    for _ in 0..bytes.len().saturating_mul(8).saturating_add(64) {
        match lane.poll() {
            Next::Recv { len } => {
                assert!(len > 0);
                let n = len.min(piece).min(data.len());
                if n == 0 {
                    return;
                }
                let (now, later) = data.split_at(n);
                data = later;
                if lane.handle_bytes(now).is_err() {
                    failed = true;
                }
            }
            Next::Claim { lane: l } => {
                assert!(!failed && !claimed);
                assert!(l < 4, "lane {l} claimed");
                claimed = true;
                lane.on_claim(Ok(())).unwrap();
            }
            Next::Send { bytes, .. } => {
                assert!(!bytes.is_empty());
                lane.on_sent();
            }
            Next::FlushHeld => {
                assert!(claimed && !failed);
                lane.on_sent();
            }
            Next::SendPool { offset, len, .. } => {
                assert!(claimed && !failed);
                assert!(offset.checked_add(len).is_some_and(|e| e <= POOL));
                lane.on_sent();
            }
            Next::Body(p) => {
                assert!(claimed && !failed);
                assert!(p.len > 0 && p.offset >= MIN);
                let end = p.offset.checked_add(p.len).unwrap();
                assert!(end <= POOL);
                assert!(p.offset <= p.whole_from && p.whole_from <= p.whole_to);
                assert!(p.whole_to <= end || p.is_plain());
                if !p.is_plain() {
                    assert_eq!(p.whole_from % CACHE_LINE, 0);
                    assert_eq!(p.whole_to % CACHE_LINE, 0);
                }
                let n = p.len as usize;
                if data.len() < n {
                    return;
                }
                let (now, later) = data.split_at(n);
                data = later;
                let s = p.offset as usize;
                mem.pool[s..s + n].copy_from_slice(now);
                lane.on_stored().unwrap();
            }
            Next::WriteBack { from, to } => {
                assert!(claimed && !failed);
                assert!(from < to && to <= POOL && from % CACHE_LINE == 0);
                lane.on_written_back();
            }
            Next::Msg { len } => {
                assert!(claimed && !failed);
                assert!((24..=24 + 256).contains(&len), "message of {len} bytes");
                if data.len() < len {
                    return;
                }
                let (now, later) = data.split_at(len);
                data = later;
                match lane.on_msg(now) {
                    Ok(plan) => {
                        assert_eq!(Some(plan.msg().lane), lane.lane());
                        let resp = execute(&plan, &mut mem).unwrap();
                        let resp = resp.unwrap_or_else(|| plan.response());
                        lane.on_answer(resp, !data.is_empty()).unwrap();
                    }
                    Err(_) => failed = true,
                }
            }
            Next::Closed => return,
        }
    }
    panic!("the machine did not stop after {} input bytes", bytes.len());
});
