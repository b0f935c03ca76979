//! Fuzz target: arbitrary bytes into a `StreamServer`, as a TCP connection
//! would deliver them: a 48-byte hello, then frame headers, each followed
//! by the body the server asks for.
//!
//! Checked: nothing panics; no pool step is ever returned before a hello
//! with the session secret was accepted; every pool step stays inside the
//! pool (and writes stay above the header); after an error the connection
//! stays closed.
//!
//! The first input byte chooses the hello: odd — the next 48 bytes, as
//! they come (a fuzzer practically never guesses the secret, so this checks
//! the refusals); even — a valid hello for lane `byte % 4`, so the fuzzer
//! reaches the frame parser.
//!
//! `cargo fuzz run tcp_frames -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::FlushMode;
use rpmem_core::persist::{execute, ServerError, ServerStep, StreamClient, StreamServer};
use rpmem_core_fuzz::{target, FakeMem, MIN, POOL, SECRET};

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, mut data)) = input.split_first() else {
        return;
    };
    let target = target(4, 256, FlushMode::Cpu);
    let mut server = StreamServer::new(target);
    let mut mem = FakeMem::new(POOL, MIN);

    let hello_bytes;
    let hello: &[u8] = if mode % 2 == 0 {
        hello_bytes = StreamClient::new(u32::from(mode / 2) % 4).hello(&SECRET);
        &hello_bytes
    } else {
        match take(&mut data, 48) {
            Some(h) => h,
            None => data,
        }
    };
    match server.on_hello(hello, &SECRET) {
        Ok(acc) => {
            assert_eq!(&hello[16..48], &SECRET, "hello accepted without the secret");
            assert!(acc.lane < 4);
        }
        Err(e) => {
            if let ServerError::Hello(r) = e {
                let _ = r.reply();
            }
            // Refused: nothing reaches the pool, whatever follows.
            while let Some(h) = take(&mut data, 32) {
                assert_eq!(server.on_frame_header(h), Err(ServerError::Closed));
            }
            assert_eq!(server.on_msg(data), Err(ServerError::Closed));
            return;
        }
    }

    while let Some(header) = take(&mut data, 32) {
        let step = match server.on_frame_header(header) {
            Ok(s) => s,
            Err(_) => {
                assert_eq!(server.on_frame_header(header), Err(ServerError::Closed));
                return;
            }
        };
        match step {
            ServerStep::ReceiveInto { offset, len } => {
                assert!(offset >= MIN);
                let end = offset.checked_add(len).unwrap();
                assert!(end <= POOL);
                let n = (len as usize).min(data.len());
                let body = take(&mut data, n).unwrap();
                let s = offset as usize;
                mem.pool[s..s + n].copy_from_slice(body);
            }
            ServerStep::SendFrom { offset, len, .. } => {
                assert!(offset.checked_add(len).is_some_and(|e| e <= POOL));
            }
            ServerStep::ReceiveMsg { len } => {
                assert!((24..=24 + 256).contains(&len));
                let Some(body) = take(&mut data, len) else {
                    return;
                };
                match server.on_msg(body) {
                    Ok(m) => {
                        assert_eq!(Some(m.plan.msg().lane), server.lane());
                        let resp = execute(&m.plan, &mut mem).unwrap();
                        assert_eq!(resp, Some(m.plan.response()));
                    }
                    Err(_) => {
                        assert_eq!(server.on_msg(body), Err(ServerError::Closed));
                        return;
                    }
                }
            }
        }
    }
});
