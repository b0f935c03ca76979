//! Fuzz target: arbitrary bytes as a received persist message
//! (`rpmem_msg_persist`). `Target::handle_persist_msg` must not panic; a
//! message it accepts must only name pool bytes at or above `min_offset`,
//! carry at most `inline_max` inline bytes, and run to a response that
//! answers it, under every flush mode.
//!
//! `cargo fuzz run persist_msg -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::FlushMode;
use rpmem_core::persist::{execute, PersistMode, TargetStep};
use rpmem_core_fuzz::{target, FakeMem, MIN, POOL};

const INLINE_MAX: u64 = 8192;

fuzz_target!(|data: &[u8]| {
    for flush_mode in [FlushMode::Cpu, FlushMode::FenceOnly, FlushMode::Msync] {
        let target = target(4, INLINE_MAX, flush_mode);
        let Ok(plan) = target.handle_persist_msg(data) else {
            continue;
        };
        let msg = *plan.msg();
        assert!(msg.lane < 4);
        assert!(msg.offset >= MIN);
        assert!(msg.offset.checked_add(msg.size).is_some_and(|e| e <= POOL));
        if msg.mode == PersistMode::PersistSend {
            assert!(msg.size <= INLINE_MAX);
            assert_eq!(data.len() as u64, 24 + msg.size);
        } else {
            assert_eq!(data.len(), 24);
        }
        assert!(matches!(plan.steps().last(), Some(TargetStep::Respond(_))));
        let mut mem = FakeMem::new(POOL, MIN);
        let resp = execute(&plan, &mut mem).unwrap();
        assert_eq!(resp, Some(plan.response()));
        if msg.mode == PersistMode::PersistSend {
            let s = msg.offset as usize;
            assert_eq!(&mem.pool[s..s + msg.size as usize], &data[24..]);
        }
    }
});
