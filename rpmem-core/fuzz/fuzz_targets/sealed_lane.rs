//! Fuzz target: rpmemd's side of a sealed TCP lane (the record layer,
//! `seal::Inbound`, in front of a `StreamTarget`), fed records that a client
//! with the lane's keys sealed, some of them forged, replayed, reordered,
//! dropped or cut, in pieces of arbitrary sizes.
//!
//! Checked: nothing panics, the machine never loops; the plaintext the
//! record layer hands out is exactly a prefix of the records that arrived
//! unchanged and in order before the first tampered one (so nothing of a
//! tampered record, and nothing after it, ever reaches the machine or the
//! pool); once a whole tampered record has arrived the record layer has
//! failed; the pool changes only through bytes of that prefix.
//!
//! Input: byte 0 — the size of the pieces the wire bytes arrive in; then
//! groups `[op, len, len bytes of plaintext]`: op % 6 is 0..=1 an honest
//! record, 2 the record with one bit flipped (at `op`'s other bits), 3 the
//! previous record again (replayed), 4 the record sealed but never sent
//! (dropped), 5 the record sent before the previous one (reordered). A last
//! partial record is cut. The plaintexts are the machine's frames, so the
//! fuzzer reaches WRITE bodies through honest records.
//!
//! `cargo fuzz run sealed_lane -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::FlushMode;
use rpmem_core::persist::{execute, Next, StreamTarget};
use rpmem_core::seal::{Inbound, LaneMode, INBOUND_BUF_LEN, RECORD_HEADER_LEN, TAG_LEN};
use rpmem_core_fuzz::{sealed_handshake, target, FakeMem, MIN, POOL, SECRET};

fuzz_target!(|input: &[u8]| {
    let [piece, rest @ ..] = input else {
        return;
    };
    let mut rest: &[u8] = rest;
    let piece = usize::from(*piece).max(1);
    let target = target(1, 256, FlushMode::Cpu);
    // The handshake, as a client with the secret runs it.
    let mut lane = StreamTarget::new(target, SECRET, [1; 32], LaneMode::Sealed, false, 0, false);
    let (server_keys, client_keys) = sealed_handshake(&mut lane, 0, [2; 32]);
    let (_, opener) = server_keys.server().unwrap();
    lane.on_claim(Ok(())).unwrap();
    assert!(matches!(lane.poll(), Next::Send { .. }));
    lane.on_sent();
    let (mut sealer, _) = client_keys.client().unwrap();

    // The wire: records sealed by the client, some tampered with. Each
    // entry: its bytes, and (its counter, its plaintext) unless changed.
    type Entry = (Vec<u8>, Option<(u64, Vec<u8>)>);
    let mut entries: Vec<Entry> = Vec::new();
    let mut last: Option<Entry> = None;
    let mut held: Option<Entry> = None;
    // A flipped length: the record layer may wait for bytes that never come.
    let mut uncertain = false;
    while let [op, len, more @ ..] = rest {
        let n = usize::from(*len).max(1).min(more.len());
        if n == 0 {
            break;
        }
        let (plain, after) = more.split_at(n);
        rest = after;
        let counter = sealer.counter();
        let mut rec = vec![0u8; n + RECORD_HEADER_LEN + TAG_LEN];
        sealer.seal_from(plain, &mut rec).unwrap();
        let entry: Entry = (rec.clone(), Some((counter, plain.to_vec())));
        let push = |e: Entry, entries: &mut Vec<Entry>, held: &mut Option<Entry>| {
            entries.push(e);
            if let Some(h) = held.take() {
                entries.push(h);
            }
        };
        match op % 6 {
            0 | 1 => push(entry.clone(), &mut entries, &mut held),
            2 => {
                let bit = usize::from(op / 6) % (rec.len() * 8);
                let mut bad = rec.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                uncertain |= bit < RECORD_HEADER_LEN * 8;
                push((bad, None), &mut entries, &mut held);
            }
            3 => {
                let again = last.clone().unwrap_or_else(|| entry.clone());
                push(again, &mut entries, &mut held);
            }
            4 => {}
            _ => {
                if let Some(h) = held.replace(entry.clone()) {
                    entries.push(h);
                }
            }
        }
        last = Some(entry);
    }
    if let Some(h) = held.take() {
        entries.push(h);
    }
    // What the record layer must hand out: records in counter order, each
    // unchanged, up to the first that is not; where that one ends.
    let mut wire: Vec<u8> = Vec::new();
    let mut honest: Vec<u8> = Vec::new();
    let mut anomaly_end: Option<usize> = None;
    let mut expect = 0u64;
    for (bytes, info) in &entries {
        wire.extend_from_slice(bytes);
        if anomaly_end.is_some() {
            continue;
        }
        match info {
            Some((counter, plain)) if *counter == expect => {
                honest.extend_from_slice(plain);
                expect += 1;
            }
            _ => anomaly_end = Some(wire.len()),
        }
    }

    // rpmemd's side: the wire in pieces into the record buffer; opened bytes
    // into the machine; bodies into the pool.
    let mut inbound = Inbound::new(opener, vec![0u8; INBOUND_BUF_LEN]).unwrap();
    let mut opened: Vec<u8> = Vec::new();
    let mut fed = 0usize;
    let mut failed = false;
    let mut mem = FakeMem::new(POOL, MIN);
    let mut plain: Vec<u8> = Vec::new();
    let mut rounds = 0usize;
    while fed < wire.len() && !failed {
        let space = inbound.space();
        let n = piece.min(space.len()).min(wire.len() - fed);
        assert!(n > 0, "no room in the record buffer");
        space[..n].copy_from_slice(&wire[fed..fed + n]);
        inbound.received(n);
        fed += n;
        loop {
            match inbound.open_next() {
                Ok(true) => {
                    let p = inbound.plaintext();
                    opened.extend_from_slice(p);
                    plain.extend_from_slice(p);
                    let k = p.len();
                    inbound.consume(k);
                }
                Ok(false) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        // The opened bytes only, through the machine.
        let mut at = 0usize;
        loop {
            rounds += 1;
            assert!(rounds < 1_000_000, "the machine did not stop");
            match lane.poll() {
                Next::Recv { len } => {
                    let k = len.min(plain.len() - at);
                    if k == 0 {
                        break;
                    }
                    if lane.handle_bytes(&plain[at..at + k]).is_err() {
                        break;
                    }
                    at += k;
                }
                Next::Body(p) => {
                    let k = p.len as usize;
                    if plain.len() - at < k {
                        break;
                    }
                    let s = p.offset as usize;
                    mem.pool[s..s + k].copy_from_slice(&plain[at..at + k]);
                    at += k;
                    lane.on_stored().unwrap();
                }
                Next::Msg { len } => {
                    if plain.len() - at < len {
                        break;
                    }
                    let ok = match lane.on_msg(&plain[at..at + len]) {
                        Ok(plan) => {
                            let resp = execute(&plan, &mut mem).unwrap();
                            let resp = resp.unwrap_or_else(|| plan.response());
                            lane.on_answer(resp, false).unwrap();
                            true
                        }
                        Err(_) => false,
                    };
                    at += len;
                    if !ok {
                        break;
                    }
                }
                Next::Send { .. } | Next::FlushHeld | Next::SendPool { .. } => lane.on_sent(),
                Next::WriteBack { .. } => lane.on_written_back(),
                Next::Claim { .. } => panic!("a second claim"),
                Next::Closed => break,
            }
        }
        plain.drain(..at);
    }
    // Only the honest prefix was ever handed out.
    assert!(
        opened.len() <= honest.len(),
        "{} bytes opened, {} honest",
        opened.len(),
        honest.len()
    );
    assert_eq!(opened[..], honest[..opened.len()]);
    // A whole tampered record that arrived made the record layer fail.
    if let Some(end) = anomaly_end {
        if fed >= end && !uncertain {
            assert!(failed, "a tampered record was accepted");
        }
    } else {
        assert_eq!(opened, honest, "honest records were refused");
        assert!(!failed);
    }
});
