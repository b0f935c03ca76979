//! The mapped pool as the lane workers see it ([`PoolMemory`]): a raw pointer
//! and a length (never a `&mut [u8]`: several lane threads write the pool at
//! the same time), with the [`FlushOps`] and [`TargetMemory`] the core's
//! persist engine drives.

use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use rpmem_core::flush::cpu::{store_line, FlushInstr, LineStore, CAN_STORE_LINES};
use rpmem_core::flush::{FlushError, FlushOps, CACHE_LINE};
use rpmem_core::persist::TargetMemory;

use crate::pool::{region_deep_flush, Pool};
use crate::sync::Arc;

/// What a deep persist triggers besides the CPU flush: the `deep_flush` of
/// the NVDIMM regions under Device DAX parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeepFlush {
    /// Where sysfs is mounted.
    pub sysfs: PathBuf,
    /// The regions, by number.
    pub regions: Vec<u32>,
}

impl DeepFlush {
    /// The deep flush targets of `pool`.
    pub fn of(pool: &Pool) -> DeepFlush {
        DeepFlush {
            sysfs: pool.sysfs().to_path_buf(),
            regions: pool.deep_flush_regions(),
        }
    }

    fn run(&self) -> Result<(), FlushError> {
        for &region in &self.regions {
            region_deep_flush(Path::new(&self.sysfs), region).map_err(|e| FlushError {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        }
        Ok(())
    }
}

/// The mapped pool as the data path sees it: a raw pointer and a length.
///
/// Cloned into every lane worker. All writes go through raw pointers (the
/// kernel's `recv` straight into the pool, or 8-byte atomic stores for inline
/// data), all flushes through `flush_line_raw`, so no thread ever holds a
/// Rust reference to bytes another thread may write.
#[derive(Clone, Debug)]
pub struct PoolMemory {
    base: NonNull<u8>,
    len: usize,
    flush: FlushInstr,
    deep: Arc<DeepFlush>,
    /// Shortest inline copy that [`TargetMemory::copy_in_streaming`]
    /// streams.
    stream_inline_min: usize,
}

// SAFETY: a PoolMemory is an address range plus plain data. The creator
// promised (`PoolMemory::new`) that the range stays mapped while any clone
// is used; every access through it is a raw-pointer access whose concurrency
// is handled by `crate::sync::pool_store_*` or by the kernel.
unsafe impl Send for PoolMemory {}
// SAFETY: as for Send: `&PoolMemory` gives no access that `PoolMemory` does
// not, and none of it forms references into the mapping.
unsafe impl Sync for PoolMemory {}

impl PoolMemory {
    /// Wraps `[base, base + len)`.
    ///
    /// # Safety
    ///
    /// The range must be one mapping (or adjacent mappings) that is readable
    /// and writable, starts on a page boundary, and stays mapped as long as
    /// this value or any clone of it is used to access it (dropping one
    /// accesses nothing). Nothing else may form a Rust reference to its bytes
    /// while a clone is used to write them.
    pub unsafe fn new(base: NonNull<u8>, len: usize, flush: FlushInstr, deep: DeepFlush) -> Self {
        PoolMemory {
            base,
            len,
            flush,
            deep: Arc::new(deep),
            stream_inline_min: STREAM_INLINE_MIN,
        }
    }

    /// Sets the shortest inline copy that
    /// [`copy_in_streaming`](TargetMemory::copy_in_streaming) streams
    /// (default [`STREAM_INLINE_MIN`]; `usize::MAX` never streams, so that
    /// every inline copy goes through the cache and is flushed line by
    /// line).
    pub fn set_stream_inline_min(&mut self, min: usize) {
        self.stream_inline_min = min;
    }

    /// The memory of `pool`.
    ///
    /// # Safety
    ///
    /// `pool` must not be closed (dropped) while this value or a clone of it
    /// is used (the session stops its transport, which waits for every lane
    /// worker, before it closes the pool), and nothing may take a `&[u8]` of
    /// the pool ([`Pool::as_slice`]) while lanes write it.
    pub unsafe fn from_pool(pool: &Pool) -> Option<Self> {
        let base = NonNull::new(pool.as_mut_ptr())?;
        // SAFETY: the pool's mapping is one read-write range of `len()`
        // bytes starting at a page boundary; the caller keeps it mapped.
        Some(unsafe { PoolMemory::new(base, pool.len(), pool.flush_instr(), DeepFlush::of(pool)) })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true for a pool.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer to `[offset, offset + len)`, `None` if the range does not lie
    /// inside the memory (the engine validated it; this is defence in depth).
    pub fn range(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let start = usize::try_from(offset).ok()?;
        let len = usize::try_from(len).ok()?;
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // `wrapping_add` only computes an address; `end <= len` keeps it
        // inside (or one past) the mapping.
        Some(self.base.as_ptr().wrapping_add(start))
    }

    /// The flush instruction.
    pub fn flush_instr(&self) -> FlushInstr {
        self.flush
    }

    /// Whether [`store_lines_streaming`](Self::store_lines_streaming) works
    /// here (x86_64: `movntdq`, SSE2, which every x86_64 CPU has).
    pub const fn can_stream() -> bool {
        CAN_STORE_LINES
    }

    /// Stores `data` at `offset` with non-temporal stores, whole cache lines
    /// only: the bytes go towards memory without being kept in the cache,
    /// so the lines need no write-back, only the fence that a persist's
    /// plan always ends with. `offset` must be cache-line aligned and
    /// `data` a whole number of lines inside the memory; returns false (and
    /// stores nothing) otherwise, or where [`can_stream`](Self::can_stream)
    /// is false.
    pub fn store_lines_streaming(&self, offset: u64, data: &[u8]) -> bool {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if !Self::can_stream()
            || !offset.is_multiple_of(CACHE_LINE)
            || !len.is_multiple_of(CACHE_LINE)
        {
            return false;
        }
        let Some(dst) = self.range(offset, len) else {
            return false;
        };
        // `movntdq` needs 16-byte alignment (given by the page-aligned base;
        // checked anyway).
        if !(dst as usize).is_multiple_of(16) {
            return false;
        }
        for (i, line) in data.chunks_exact(CACHE_LINE as usize).enumerate() {
            let to = dst.wrapping_add(i.wrapping_mul(CACHE_LINE as usize));
            let Ok(line) = <&[u8; 64]>::try_from(line) else {
                return false;
            };
            // SAFETY: `[to, to + 64)` lies in the mapping (`range` checked
            // the whole run), which stays mapped while `self` exists; no
            // Rust reference to the pool exists (the stores happen inside
            // the core's asm block). `to` is 16-byte aligned (checked
            // above), so the store cannot be refused half way.
            unsafe { store_line(to, line, LineStore::NonTemporal) };
        }
        true
    }

    /// Starts writing back the cache lines of `[from, to)` (clipped to the
    /// memory) without a fence. It makes nothing durable by itself: only a
    /// later fence does, which the core's plan for a persist always has (the
    /// plan skips lines reported written back through
    /// `StreamServer::on_body_written_back`, never the fence).
    pub fn write_back(&self, from: u64, to: u64) {
        let end = to.min(u64::try_from(self.len).unwrap_or(u64::MAX));
        let mut line = from & !(CACHE_LINE - 1);
        while line < end {
            if let Some(p) = self.range(line, 1) {
                // SAFETY: `range` checked that the byte lies in the mapping,
                // which stays mapped while `self` exists.
                unsafe { self.flush.flush_line_raw(p.cast_const()) };
            }
            line = match line.checked_add(CACHE_LINE) {
                Some(l) => l,
                None => break,
            };
        }
    }
}

#[cfg(all(test, not(loom)))]
impl PoolMemory {
    /// Orders the streaming stores before the test reads the bytes.
    fn fence_for_test(&self) {
        self.flush.fence();
    }
}

impl FlushOps for PoolMemory {
    fn flush_line(&mut self, offset: u64) {
        if let Some(p) = self.range(offset, 1) {
            // SAFETY: `range` checked that the byte lies in the mapping,
            // which stays mapped while `self` exists (`PoolMemory::new`).
            unsafe { self.flush.flush_line_raw(p.cast_const()) };
        }
    }

    fn fence(&mut self) {
        self.flush.fence();
    }

    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        // The engine rounds to pages; clip to the pool (whose size is a
        // multiple of the page size) in case the round-up passed its end.
        let avail = u64::try_from(self.len).unwrap_or(u64::MAX);
        let len = len.min(avail.saturating_sub(offset));
        if len == 0 {
            return Ok(());
        }
        let Some(p) = self.range(offset, len) else {
            return Err(FlushError {
                errno: libc::EINVAL,
            });
        };
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        // SAFETY: `[p, p + n)` lies in the mapping (checked by `range`) and
        // `p` is page aligned (the engine aligns `offset`, the base is page
        // aligned); msync reads no Rust-visible state.
        let rc = unsafe { libc::msync(p.cast(), n, libc::MS_SYNC) };
        if rc != 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            return Err(FlushError { errno });
        }
        Ok(())
    }

    fn deep_flush(&mut self) -> Result<(), FlushError> {
        self.deep.run()
    }
}

/// Inline copies of at least this many bytes are streamed by
/// [`TargetMemory::copy_in_streaming`] (whole cache lines with non-temporal
/// stores); shorter ones go through the cache like
/// [`TargetMemory::copy_in`], where a small persist's line is likely to be
/// already.
pub const STREAM_INLINE_MIN: usize = 1024;

/// How [`copy_words`] stores its bulk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bulk {
    /// Ordinary (cached) 16-byte aligned stores (`movdqa`).
    Cached,
    /// Non-temporal 16-byte stores (`movntdq`), whole 64-byte lines only.
    Streaming,
}

/// Stores `src` at `dst`, every aligned 8-byte word of the destination by
/// exactly one store of 8 bytes, or, in the bulk, of 16 bytes at a 16-byte
/// aligned address (which also writes each of its two words at once:
/// 8-byte failure atomicity either way). Bytes outside whole words go one
/// by one. Returns the destination range `[from, to)`, in bytes from `dst`,
/// that was stored with non-temporal stores (empty unless `bulk` is
/// [`Bulk::Streaming`]): whole 64-byte lines of the address space.
///
/// # Safety
///
/// `[dst, dst + src.len())` must be valid for writes and stay mapped for
/// the call; other threads may access it concurrently only through
/// `crate::sync::pool_store_*`, these stores, or from outside the program.
unsafe fn copy_words(dst: *mut u8, src: &[u8], bulk: Bulk) -> (usize, usize) {
    let n = src.len();
    let at = |i: usize| (dst as usize).wrapping_add(i);
    let mut i = 0usize;
    // Head: single bytes up to the first 8-byte boundary.
    while i < n && at(i) % 8 != 0 {
        if let Some(&b) = src.get(i) {
            // SAFETY: `dst + i` lies in the caller's range.
            unsafe { crate::sync::pool_store_u8(dst.wrapping_add(i), b) };
        }
        i += 1;
    }
    // Words up to the alignment of the bulk stores.
    let align = match bulk {
        Bulk::Cached => 16,
        Bulk::Streaming => CACHE_LINE as usize,
    };
    let store_word = |i: usize, word: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        // SAFETY: `dst + i` is 8-byte aligned (after the head) and the 8
        // bytes lie in the caller's range.
        unsafe {
            crate::sync::pool_store_u64(
                dst.wrapping_add(i).cast::<u64>(),
                u64::from_ne_bytes(bytes),
            )
        };
    };
    while at(i) % align != 0 {
        let Some(word) = src.get(i..i.wrapping_add(8)) else {
            break;
        };
        store_word(i, word);
        i += 8;
    }
    let bulk_from = i;
    let how = match bulk {
        Bulk::Cached => LineStore::Cached,
        Bulk::Streaming => LineStore::NonTemporal,
    };
    if CAN_STORE_LINES && at(i) % align == 0 {
        while let Some(block) = src
            .get(i..i.wrapping_add(64))
            .and_then(|b| <&[u8; 64]>::try_from(b).ok())
        {
            // SAFETY: `[dst + i, dst + i + 64)` lies in the caller's range;
            // it is 16-byte aligned (checked above), so the core's store
            // writes the whole line.
            if !unsafe { store_line(dst.wrapping_add(i), block, how) } {
                break;
            }
            i += 64;
        }
    }
    let streamed = match bulk {
        Bulk::Streaming => (bulk_from, i),
        Bulk::Cached => (0, 0),
    };
    // Remaining words, then single bytes.
    while let Some(word) = src.get(i..i.wrapping_add(8)) {
        store_word(i, word);
        i += 8;
    }
    while let Some(&b) = src.get(i) {
        // SAFETY: `dst + i` lies in the caller's range.
        unsafe { crate::sync::pool_store_u8(dst.wrapping_add(i), b) };
        i += 1;
    }
    streamed
}

impl TargetMemory for PoolMemory {
    /// One store per aligned 8-byte word (16-byte aligned `movdqa` stores,
    /// each writing two words at once, for the bulk on x86_64).
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let Some(dst) = self.range(offset, len) else {
            return;
        };
        // SAFETY: `range` checked that `[dst, dst + len)` lies in the
        // mapping, which stays mapped while `self` exists.
        unsafe { copy_words(dst, data, Bulk::Cached) };
    }

    /// Copies of at least [`STREAM_INLINE_MIN`] bytes (see
    /// [`set_stream_inline_min`](PoolMemory::set_stream_inline_min)) store their whole
    /// cache lines with `movntdq` (x86_64), the partial lines at both ends
    /// with ordinary stores; shorter copies, and other CPUs, use
    /// [`copy_in`](TargetMemory::copy_in).
    fn copy_in_streaming(&mut self, offset: u64, data: &[u8]) -> (u64, u64) {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if !Self::can_stream() || data.len() < self.stream_inline_min {
            self.copy_in(offset, data);
            return (offset, offset);
        }
        let Some(dst) = self.range(offset, len) else {
            return (offset, offset);
        };
        // SAFETY: as in `copy_in`.
        let (from, to) = unsafe { copy_words(dst, data, Bulk::Streaming) };
        let rel = |b: usize| offset.saturating_add(u64::try_from(b).unwrap_or(u64::MAX));
        (rel(from), rel(to))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn copy_in_writes_every_byte_at_any_alignment() {
        let mut backing = vec![0u64; 64];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives `mem` and no reference to it is used
        // while `mem` writes.
        let mut mem =
            unsafe { PoolMemory::new(base, 512, FlushInstr::Unsupported, DeepFlush::default()) };
        for (offset, len) in [(0u64, 64usize), (3, 29), (8, 8), (13, 1), (500, 12)] {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ 0x5a).collect();
            mem.copy_in(offset, &data);
            let bytes: Vec<u8> = backing.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let start = offset as usize;
            assert_eq!(&bytes[start..start + len], &data[..], "{offset} {len}");
        }
        // Out of range: nothing written, no panic.
        mem.copy_in(510, &[1, 2, 3, 4]);
        assert_eq!(mem.range(510, 4), None);
        assert!(mem.range(508, 4).is_some());
    }

    /// Page-aligned scratch memory for the copy tests.
    #[repr(C, align(4096))]
    #[derive(Clone, Copy)]
    struct Page([u8; 4096]);

    fn pages(n: usize) -> (Vec<Page>, PoolMemory) {
        let mut backing = vec![Page([0; 4096]); n];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the caller keeps `backing` alive (it is returned with
        // `mem`, whose moves do not move the heap buffer) and reads it only
        // after the writes.
        let mem =
            unsafe { PoolMemory::new(base, n * 4096, FlushInstr::detect(), DeepFlush::default()) };
        (backing, mem)
    }

    #[test]
    fn copies_write_exactly_their_bytes_at_every_alignment() {
        for streaming in [false, true] {
            for offset in [0u64, 1, 7, 8, 15, 16, 40, 63, 64, 100, 4095] {
                for len in [1usize, 7, 8, 9, 63, 64, 65, 200, 1023, 1024, 1100, 5000] {
                    let (backing, mut mem) = pages(3);
                    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
                    let got = if streaming {
                        mem.copy_in_streaming(offset, &data)
                    } else {
                        mem.copy_in(offset, &data);
                        (offset, offset)
                    };
                    mem.fence_for_test();
                    let bytes: Vec<u8> = backing.iter().flat_map(|p| p.0).collect();
                    let (o, end) = (offset as usize, offset as usize + len);
                    assert_eq!(&bytes[o..end], &data[..], "{streaming} {offset} {len}");
                    assert!(bytes[..o].iter().all(|&b| b == 0));
                    assert!(bytes[end..].iter().all(|&b| b == 0));
                    let whole = ((offset + 63) & !63, (offset + len as u64) & !63);
                    let want = if streaming
                        && PoolMemory::can_stream()
                        && len >= STREAM_INLINE_MIN
                        && whole.0 < whole.1
                    {
                        whole
                    } else {
                        got
                    };
                    assert_eq!(got, want, "{offset} {len}");
                    assert!(got.0 <= got.1);
                }
            }
        }
        // Out of range: nothing stored, nothing reported.
        let (backing, mut mem) = pages(1);
        assert_eq!(mem.copy_in_streaming(4000, &[1; 2048]), (4000, 4000));
        assert!(backing.iter().flat_map(|p| p.0).all(|b| b == 0));
    }

    #[test]
    fn write_back_runs_on_real_memory_and_stays_inside() {
        let mut backing = vec![0u64; 1024];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        for instr in [
            FlushInstr::detect(),
            FlushInstr::detect_with(true, false),
            FlushInstr::detect_with(true, true),
        ] {
            // SAFETY: `backing` outlives `mem`; nothing references it while
            // `mem` is used.
            let mut mem = unsafe { PoolMemory::new(base, 8192, instr, DeepFlush::default()) };
            mem.copy_in(100, &[7u8; 300]);
            // Unaligned start, and an end past the memory: clipped, no fault.
            mem.write_back(100, 400);
            mem.write_back(8000, u64::MAX);
            mem.write_back(u64::MAX - 10, u64::MAX);
        }
        let bytes: Vec<u8> = backing.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert!(bytes[100..400].iter().all(|&b| b == 7));
    }

    #[test]
    fn streaming_stores_write_whole_lines_only() {
        #[repr(C, align(4096))]
        #[derive(Clone, Copy)]
        struct Page([u8; 4096]);
        let mut backing = vec![Page([0; 4096]); 2];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives `mem`; nothing references it while
        // `mem` is used.
        let mem =
            unsafe { PoolMemory::new(base, 8192, FlushInstr::detect(), DeepFlush::default()) };
        let data: Vec<u8> = (0..256u32).map(|i| i as u8 ^ 0xa5).collect();
        // Refused: unaligned offset, partial line, past the end.
        assert!(!mem.store_lines_streaming(32, &data));
        assert!(!mem.store_lines_streaming(64, &data[..100]));
        assert!(!mem.store_lines_streaming(8192 - 128, &data));
        assert!(mem.store_lines_streaming(8192 - 256, &data) == PoolMemory::can_stream());
        assert!(mem.store_lines_streaming(128, &data) == PoolMemory::can_stream());
        mem.fence_for_test();
        let bytes: Vec<u8> = backing.iter().flat_map(|p| p.0).collect();
        if PoolMemory::can_stream() {
            assert_eq!(&bytes[128..384], &data[..]);
            assert_eq!(&bytes[8192 - 256..], &data[..]);
            assert!(bytes[..128].iter().all(|&b| b == 0));
            assert!(bytes[384..8192 - 256].iter().all(|&b| b == 0));
        } else {
            assert!(bytes.iter().all(|&b| b == 0));
        }
    }
}
