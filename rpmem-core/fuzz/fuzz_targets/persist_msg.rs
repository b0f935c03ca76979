//! Fuzz target: arbitrary bytes as a received persist message
//! (`rpmem_msg_persist`). `Target::handle_persist_msg` must not panic; a
//! message it accepts must only name pool bytes at or above `min_offset`,
//! carry at most `inline_max` inline bytes, and run to a response that
//! answers it, under every flush mode.
//!
//! `cargo fuzz run persist_msg -s none`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::{FlushError, FlushMode, FlushOps};
use rpmem_core::persist::{
    execute, Method, PersistMode, Target, TargetMemory, TargetParams, TargetStep,
};

const POOL: u64 = 1 << 16;
const MIN: u64 = 4096;
const INLINE_MAX: u64 = 8192;

/// A pool that asserts every access stays inside it.
struct FakeMem {
    pool: Vec<u8>,
}

impl FlushOps for FakeMem {
    fn flush_line(&mut self, offset: u64) {
        assert!(offset < POOL, "flush of line {offset} outside the pool");
    }
    fn fence(&mut self) {}
    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        assert!(offset.checked_add(len).is_some_and(|e| e <= POOL));
        Ok(())
    }
}

impl TargetMemory for FakeMem {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        assert!(
            offset >= MIN,
            "inline copy into the pool header at {offset}"
        );
        let s = offset as usize;
        self.pool[s..s + data.len()].copy_from_slice(data);
    }
}

fuzz_target!(|data: &[u8]| {
    for flush_mode in [FlushMode::Cpu, FlushMode::FenceOnly, FlushMode::Msync] {
        let target = Target::new(TargetParams {
            nlanes: 4,
            pool_size: POOL,
            min_offset: MIN,
            inline_max: INLINE_MAX,
            flush_mode,
            method: Method::Gpspm,
        })
        .unwrap();
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
        let mut mem = FakeMem {
            pool: vec![0; POOL as usize],
        };
        let resp = execute(&plan, &mut mem).unwrap();
        assert_eq!(resp, Some(plan.response()));
        if msg.mode == PersistMode::PersistSend {
            let s = msg.offset as usize;
            assert_eq!(&mem.pool[s..s + msg.size as usize], &data[24..]);
        }
    }
});
