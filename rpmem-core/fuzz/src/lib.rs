//! What the fuzz targets share.

use rpmem_core::flush::{FlushError, FlushOps};
use rpmem_core::persist::TargetMemory;

/// A pool of `pool.len()` bytes for a target engine, whose writes must stay
/// at or above `min` and whose flushes inside the pool (checked: a panic is
/// what the fuzzer reports).
pub struct FakeMem {
    /// The pool's bytes.
    pub pool: Vec<u8>,
    /// Lowest offset a write may touch (the pool header is below).
    pub min: u64,
}

impl FakeMem {
    /// A zeroed pool of `size` bytes, writable from `min`.
    pub fn new(size: u64, min: u64) -> FakeMem {
        FakeMem {
            pool: vec![0; size as usize],
            min,
        }
    }

    fn size(&self) -> u64 {
        self.pool.len() as u64
    }
}

impl FlushOps for FakeMem {
    fn flush_line(&mut self, offset: u64) {
        assert!(offset < self.size());
    }
    fn fence(&mut self) {}
    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.size()));
        Ok(())
    }
}

impl TargetMemory for FakeMem {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        assert!(offset >= self.min);
        let s = offset as usize;
        self.pool[s..s + data.len()].copy_from_slice(data);
    }
}
