//! The target's memory: CPU cache, memory controller, media, page cache —
//! and what of it survives a crash.
//!
//! Levels, top to bottom:
//!
//! * **CPU cache** (64-byte lines). CPU stores (the target's inline copy)
//!   always land here; NIC writes land here with DDIO on. A line is *dirty*
//!   when it holds data the level below lacks. Dirty lines may be evicted
//!   at any time ([`Memory::evict_random`]).
//! * **Pending write-backs**: `clwb` / `clflushopt` ([`FlushOps::flush_line`])
//!   start a write-back of the line's content at that moment; it is only
//!   known to have arrived after the next [`FlushOps::fence`]. Until then it
//!   may or may not have arrived.
//! * **Write-combining buffers**: non-temporal stores of whole lines (the
//!   target's streamed inline copy, [`TargetMemory::copy_in_streaming`]
//!   when [`Memory::set_streaming`] is on). The store first evicts the line
//!   from the cache (writing back what it held), then its data waits here
//!   until the next fence (or a deep flush, or a `msync` of persistent
//!   memory, whose kernel path fences); before that each of its words may or
//!   may not have reached the memory level, also on eADR (the buffers are
//!   not part of the cache that eADR flushes).
//! * **Memory level**: what the memory controller holds. On persistent
//!   memory with ADR this *is* the persistence domain (written straight to
//!   `media`); on a platform with a volatile write-pending queue it is the
//!   WPQ, drained by `deep_flush` (or on its own); on a file-backed DRAM
//!   pool it is the page cache (`dram`), written to the file (`media`) by
//!   `msync` (or the kernel's own write-back).
//! * **media**: the persistent image.
//!
//! Coherence: a NIC write with DDIO off first writes back and invalidates
//! the line from the cache (pending write-back first, then the dirty data),
//! then writes the memory level; so an older cache copy never lands on top
//! of newer data.
//!
//! After a crash, each aligned 8-byte word of the persistent image holds one
//! of its *crash candidates* ([`Memory::crash_candidates`]): the media value,
//! or a value that was on its way there and may have arrived — a pending
//! write-back, a dirty line that may have been evicted just before the
//! crash, a WPQ entry or dirty page that may have been drained. Words are
//! independent (8-byte failure atomicity, nothing larger).

use std::collections::{BTreeMap, BTreeSet};

use rpmem_core::flush::{FlushError, FlushOps};
use rpmem_core::persist::TargetMemory;

use crate::platform::Platform;
use crate::rng::Rng;

/// Bytes in a cache line.
pub const LINE: u64 = 64;
/// Bytes in an atomic word.
pub const WORD: u64 = 8;
/// Bytes in a page (the granularity of `msync` and page write-back).
pub const PAGE: u64 = 4096;

/// One 8-byte word value.
pub type Word = [u8; 8];

type LineData = [u8; LINE as usize];

/// Where a crash candidate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The persistent image (or, with eADR, the persistent cache over it).
    Media,
    /// A `clwb`/`clflushopt` not yet fenced.
    PendingWriteBack,
    /// A dirty cache line that may have been evicted just before the crash.
    DirtyLine,
    /// A write-pending-queue entry that may have been drained.
    WritePendingQueue,
    /// A dirty page-cache page that the kernel may have written back.
    DirtyPage,
    /// A non-temporal store waiting in a write-combining buffer (no fence
    /// yet).
    WriteCombining,
}

impl Source {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Source::Media => "media",
            Source::PendingWriteBack => "unfenced write-back",
            Source::DirtyLine => "dirty cache line (evicted at the crash)",
            Source::WritePendingQueue => "write-pending queue entry (drained at the crash)",
            Source::DirtyPage => "dirty page (written back at the crash)",
            Source::WriteCombining => "unfenced non-temporal store",
        }
    }
}

/// One possible post-crash value of a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The value.
    pub value: Word,
    /// Where it comes from.
    pub source: Source,
}

/// Counters of what the memory was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemStats {
    /// `flush_line` calls.
    pub flush_lines: u64,
    /// `fence` calls.
    pub fences: u64,
    /// `msync` calls.
    pub msyncs: u64,
    /// `deep_flush` calls.
    pub deep_flushes: u64,
    /// Lines evicted on their own.
    pub evictions: u64,
    /// WPQ lines / pages drained on their own.
    pub drains: u64,
    /// Accesses outside the pool (a bug in a caller; ignored).
    pub out_of_range: u64,
    /// Lines stored with non-temporal stores.
    pub nt_lines: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Line {
    data: LineData,
    dirty: bool,
}

/// The target's memory for one pool (see the module documentation).
#[derive(Clone, Debug)]
pub struct Memory {
    plat: Platform,
    size: u64,
    media: Vec<u8>,
    dram: Vec<u8>,
    dirty_pages: BTreeSet<u64>,
    wpq: BTreeMap<u64, LineData>,
    cache: BTreeMap<u64, Line>,
    pending: BTreeMap<u64, LineData>,
    /// Lines stored with non-temporal stores, not yet fenced.
    wc: BTreeMap<u64, LineData>,
    /// Whether `copy_in_streaming` streams whole lines.
    streaming: bool,
    changed: BTreeSet<u64>,
    stats: MemStats,
}

/// A pool size the model cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pool size {size} is not a non-zero multiple of the {PAGE}-byte page")]
pub struct BadPoolSize {
    /// The size asked for.
    pub size: u64,
}

fn idx(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn read_line(v: &[u8], line: u64) -> LineData {
    let mut out = [0u8; LINE as usize];
    if let Some(src) = v.get(idx(line)..idx(line.saturating_add(LINE))) {
        out.copy_from_slice(src);
    }
    out
}

fn write_bytes(v: &mut [u8], off: u64, bytes: &[u8]) {
    let end = off.saturating_add(bytes.len() as u64);
    if let Some(dst) = v.get_mut(idx(off)..idx(end)) {
        dst.copy_from_slice(bytes);
    }
}

fn word_of(line: &LineData, w: u64) -> Word {
    let at = idx(w % LINE);
    let mut out = [0u8; 8];
    if let Some(src) = line.get(at..at.saturating_add(8)) {
        out.copy_from_slice(src);
    }
    out
}

impl Memory {
    /// A zero-filled pool of `size` bytes on `plat`.
    pub fn new(plat: Platform, size: u64) -> Result<Memory, BadPoolSize> {
        if size == 0 || !size.is_multiple_of(PAGE) || usize::try_from(size).is_err() {
            return Err(BadPoolSize { size });
        }
        Ok(Memory {
            plat,
            size,
            media: vec![0; idx(size)],
            dram: if plat.pmem {
                Vec::new()
            } else {
                vec![0; idx(size)]
            },
            dirty_pages: BTreeSet::new(),
            wpq: BTreeMap::new(),
            cache: BTreeMap::new(),
            pending: BTreeMap::new(),
            wc: BTreeMap::new(),
            streaming: false,
            changed: BTreeSet::new(),
            stats: MemStats::default(),
        })
    }

    /// The platform modelled.
    pub fn platform(&self) -> &Platform {
        &self.plat
    }

    /// Pool size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What the memory was asked to do so far.
    pub fn stats(&self) -> MemStats {
        self.stats
    }

    /// Whether [`TargetMemory::copy_in_streaming`] stores the whole cache
    /// lines of a copy with non-temporal stores (as rpmemd does for large
    /// inline copies) or copies like [`TargetMemory::copy_in`] (off by
    /// default).
    pub fn set_streaming(&mut self, on: bool) {
        self.streaming = on;
    }

    /// Whether streaming is on.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// Words whose crash candidates may have changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.changed)
    }

    /// Mark the words of `line` whose value differs between `old` and `new`.
    ///
    /// Marking only changed values is enough: a word's candidate *set* can
    /// only change when one of the values it is built from changes (moving
    /// a value from one level to another that already shows it, or dropping
    /// a copy equal to a remaining one, leaves the set as it was).
    fn mark_diff(&mut self, line: u64, old: &LineData, new: &LineData) {
        for (i, (a, b)) in old.chunks(8).zip(new.chunks(8)).enumerate() {
            if a != b {
                self.changed
                    .insert(line.saturating_add((i as u64).saturating_mul(WORD)));
            }
        }
    }

    fn in_pool(&self, off: u64, len: u64) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// Lines touched by `[off, off + len)`.
    fn lines(off: u64, len: u64) -> impl Iterator<Item = u64> {
        let first = off & !(LINE - 1);
        let end = off.saturating_add(len);
        (0..)
            .map(move |i: u64| first.saturating_add(i.saturating_mul(LINE)))
            .take_while(move |&l| l < end)
    }

    // ----- the memory level -----

    fn mem_line(&self, line: u64) -> LineData {
        if !self.plat.pmem {
            return read_line(&self.dram, line);
        }
        if let Some(q) = self.wpq.get(&line) {
            return *q;
        }
        read_line(&self.media, line)
    }

    fn mem_store_line(&mut self, line: u64, data: LineData) {
        let old = self.mem_line(line);
        if !self.plat.pmem {
            write_bytes(&mut self.dram, line, &data);
            self.dirty_pages.insert(line & !(PAGE - 1));
        } else if self.plat.wpq_volatile {
            self.wpq.insert(line, data);
        } else {
            write_bytes(&mut self.media, line, &data);
        }
        self.mark_diff(line, &old, &data);
    }

    /// Write back whatever the cache holds for `line` that the memory level
    /// lacks: the pending write-back first (older), then dirty data. A line
    /// in a write-combining buffer (never also cached: a non-temporal store
    /// evicts the line, a CPU store first drains the buffer) goes too.
    fn write_back(&mut self, line: u64) {
        if let Some(snap) = self.pending.remove(&line) {
            self.mem_store_line(line, snap);
        }
        if let Some(data) = self.wc.remove(&line) {
            self.mem_store_line(line, data);
        }
        let dirty = match self.cache.get_mut(&line) {
            Some(l) if l.dirty => {
                l.dirty = false;
                Some(l.data)
            }
            _ => None,
        };
        if let Some(data) = dirty {
            self.mem_store_line(line, data);
        }
    }

    /// Evict `line` from the cache (writing back what it must; the clean
    /// copy dropped equals the memory level).
    pub fn evict(&mut self, line: u64) {
        self.write_back(line);
        self.cache.remove(&line);
    }

    // ----- writers -----

    /// A non-temporal store of the whole line at `line` (64-byte aligned,
    /// inside the pool): the line leaves the cache (what it held is written
    /// back), and `data` waits in a write-combining buffer until a fence.
    /// A line already waiting there is drained first (a newer store never
    /// lands under an older one).
    pub fn nt_store_line(&mut self, line: u64, data: &[u8; LINE as usize]) {
        if line & (LINE - 1) != 0 || !self.in_pool(line, LINE) {
            self.stats.out_of_range = self.stats.out_of_range.saturating_add(1);
            return;
        }
        self.evict(line);
        self.stats.nt_lines = self.stats.nt_lines.saturating_add(1);
        let old = self.mem_line(line);
        self.wc.insert(line, *data);
        self.mark_diff(line, &old, data);
    }

    /// CPU stores of `bytes` at `off` (write-back caching: into the cache).
    /// A line waiting in a write-combining buffer is drained to the memory
    /// level first.
    pub fn cpu_store(&mut self, off: u64, bytes: &[u8]) {
        if !self.in_pool(off, bytes.len() as u64) {
            self.stats.out_of_range = self.stats.out_of_range.saturating_add(1);
            return;
        }
        let end = off.saturating_add(bytes.len() as u64);
        for line in Self::lines(off, bytes.len() as u64) {
            if let Some(data) = self.wc.remove(&line) {
                self.mem_store_line(line, data);
            }
            let mut l = match self.cache.get(&line) {
                Some(l) => *l,
                None => Line {
                    data: self.mem_line(line),
                    dirty: false,
                },
            };
            let old = l.data;
            let from = off.max(line);
            let to = end.min(line.saturating_add(LINE));
            let src = bytes.get(idx(from - off)..idx(to - off)).unwrap_or(&[]);
            if let Some(dst) = l.data.get_mut(idx(from - line)..idx(to - line)) {
                dst.copy_from_slice(src);
            }
            l.dirty = true;
            self.cache.insert(line, l);
            self.mark_diff(line, &old, &l.data);
        }
    }

    /// The NIC places `bytes` at `off` (an RDMA WRITE, or a SEND's payload
    /// landing in a receive buffer): into the cache with DDIO on, else to
    /// the memory controller after writing back and invalidating the line.
    pub fn nic_write(&mut self, off: u64, bytes: &[u8]) {
        if self.plat.ddio {
            self.cpu_store(off, bytes);
            return;
        }
        if !self.in_pool(off, bytes.len() as u64) {
            self.stats.out_of_range = self.stats.out_of_range.saturating_add(1);
            return;
        }
        let end = off.saturating_add(bytes.len() as u64);
        for line in Self::lines(off, bytes.len() as u64) {
            self.evict(line);
            let mut data = self.mem_line(line);
            let from = off.max(line);
            let to = end.min(line.saturating_add(LINE));
            let src = bytes.get(idx(from - off)..idx(to - off)).unwrap_or(&[]);
            if let Some(dst) = data.get_mut(idx(from - line)..idx(to - line)) {
                dst.copy_from_slice(src);
            }
            self.mem_store_line(line, data);
        }
    }

    /// A coherent read of `[off, off + len)` (what an RDMA READ or the CPU
    /// sees). Out-of-pool bytes read as 0.
    pub fn read(&self, off: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(idx(len.min(self.size)));
        let end = off.saturating_add(len);
        for line in Self::lines(off, len) {
            let data = self.coherent_line(line);
            let from = off.max(line);
            let to = end.min(line.saturating_add(LINE));
            out.extend_from_slice(data.get(idx(from - line)..idx(to - line)).unwrap_or(&[]));
        }
        out
    }

    fn coherent_line(&self, line: u64) -> LineData {
        if let Some(data) = self.wc.get(&line) {
            return *data;
        }
        match self.cache.get(&line) {
            Some(l) => l.data,
            None => self.mem_line(line),
        }
    }

    // ----- things that happen on their own -----

    /// Lines holding data the level below lacks (dirty, pending, or in a
    /// write-combining buffer).
    pub fn dirty_lines(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .cache
            .iter()
            .filter(|(_, l)| l.dirty)
            .map(|(&a, _)| a)
            .chain(self.pending.keys().copied())
            .chain(self.wc.keys().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Evict one dirty (or pending) line chosen by `rng`; returns it.
    pub fn evict_random(&mut self, rng: &mut Rng) -> Option<u64> {
        let lines = self.dirty_lines();
        let line = *rng.pick(&lines)?;
        self.evict(line);
        self.stats.evictions = self.stats.evictions.saturating_add(1);
        Some(line)
    }

    /// Whether something can drain on its own (WPQ entries, dirty pages).
    pub fn can_drain(&self) -> bool {
        !self.wpq.is_empty() || !self.dirty_pages.is_empty()
    }

    /// Drain one WPQ line to media, or write back one dirty page to the
    /// file, chosen by `rng`; returns its offset.
    pub fn drain_random(&mut self, rng: &mut Rng) -> Option<u64> {
        let lines: Vec<u64> = self.wpq.keys().copied().collect();
        let pages: Vec<u64> = self.dirty_pages.iter().copied().collect();
        if let Some(&line) = rng.pick(&lines) {
            self.drain_wpq_line(line);
            self.stats.drains = self.stats.drains.saturating_add(1);
            return Some(line);
        }
        let page = *rng.pick(&pages)?;
        self.write_page(page);
        self.stats.drains = self.stats.drains.saturating_add(1);
        Some(page)
    }

    fn drain_wpq_line(&mut self, line: u64) {
        if let Some(data) = self.wpq.remove(&line) {
            let old = read_line(&self.media, line);
            write_bytes(&mut self.media, line, &data);
            self.mark_diff(line, &old, &data);
        }
    }

    /// Write one page of a non-pmem pool to the file (coherently: dirty
    /// cache lines of the page are written back to the page first).
    fn write_page(&mut self, page: u64) {
        for line in Self::lines(page, PAGE) {
            self.write_back(line);
        }
        for line in Self::lines(page, PAGE) {
            let old = read_line(&self.media, line);
            let new = read_line(&self.dram, line);
            if old != new {
                write_bytes(&mut self.media, line, &new);
                self.mark_diff(line, &old, &new);
            }
        }
        self.dirty_pages.remove(&page);
    }

    // ----- crash -----

    /// Every value word `w` (8-aligned) may hold after a crash now, the
    /// deterministic one ([`Source::Media`]) first; duplicates removed.
    pub fn crash_candidates(&self, w: u64) -> Vec<Candidate> {
        let w = w & !(WORD - 1);
        let line = w & !(LINE - 1);
        let mut out: Vec<Candidate> = Vec::with_capacity(4);
        let mut add = |value: Word, source: Source| {
            if !out.iter().any(|c| c.value == value) {
                out.push(Candidate { value, source });
            }
        };
        let media = word_of(&read_line(&self.media, line), w);
        if self.plat.eadr {
            // The cache is persistent: at power loss it is written down
            // whole, so the coherent value survives. Write-combining
            // buffers are not part of it: their words may be lost.
            let cached = match self.cache.get(&line) {
                Some(l) => l.data,
                None => self.mem_line(line),
            };
            add(word_of(&cached, w), Source::Media);
            if let Some(data) = self.wc.get(&line) {
                add(word_of(data, w), Source::WriteCombining);
            }
            return out;
        }
        add(media, Source::Media);
        if let Some(snap) = self.pending.get(&line) {
            add(word_of(snap, w), Source::PendingWriteBack);
        }
        if let Some(l) = self.cache.get(&line) {
            if l.dirty {
                add(word_of(&l.data, w), Source::DirtyLine);
            }
        }
        if let Some(data) = self.wc.get(&line) {
            add(word_of(data, w), Source::WriteCombining);
        }
        if let Some(q) = self.wpq.get(&line) {
            add(word_of(q, w), Source::WritePendingQueue);
        }
        if !self.plat.pmem && self.dirty_pages.contains(&(w & !(PAGE - 1))) {
            add(word_of(&read_line(&self.dram, line), w), Source::DirtyPage);
        }
        out
    }

    /// The persistent image if nothing in flight arrives (every word's
    /// first candidate).
    pub fn crash_image_base(&self) -> Vec<u8> {
        let mut img = self.media.clone();
        if self.plat.eadr {
            for (&line, l) in &self.cache {
                write_bytes(&mut img, line, &l.data);
            }
        }
        img
    }
}

impl FlushOps for Memory {
    fn flush_line(&mut self, offset: u64) {
        self.stats.flush_lines = self.stats.flush_lines.saturating_add(1);
        let line = offset & !(LINE - 1);
        if line >= self.size {
            self.stats.out_of_range = self.stats.out_of_range.saturating_add(1);
            return;
        }
        let snap = match self.cache.get_mut(&line) {
            Some(l) if l.dirty => {
                l.dirty = false;
                Some(l.data)
            }
            _ => None,
        };
        if let Some(snap) = snap {
            // A newer write-back of the same line supersedes an older one.
            if let Some(older) = self.pending.insert(line, snap) {
                self.mark_diff(line, &older, &snap);
            }
        }
    }

    fn fence(&mut self) {
        self.stats.fences = self.stats.fences.saturating_add(1);
        self.complete_fenced();
    }

    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        self.stats.msyncs = self.stats.msyncs.saturating_add(1);
        let first = offset & !(PAGE - 1);
        let end = offset.saturating_add(len).min(self.size);
        let mut page = first;
        if self.plat.pmem {
            // The kernel's write-back of a DAX mapping ends with a fence.
            self.complete_fenced();
        }
        while page < end {
            if self.plat.pmem {
                // pmem_msync on a DAX mapping: every line of the page is
                // written back and fenced.
                for line in Self::lines(page, PAGE) {
                    self.write_back(line);
                }
            } else {
                self.write_page(page);
            }
            page = page.saturating_add(PAGE);
        }
        Ok(())
    }

    /// The kernel's Device DAX deep flush fences first (`wmb()` before the
    /// flush-hint writes), completing pending write-backs, then drains the
    /// write-pending queue to media.
    fn deep_flush(&mut self) -> Result<(), FlushError> {
        self.stats.deep_flushes = self.stats.deep_flushes.saturating_add(1);
        self.complete_fenced();
        let lines: Vec<u64> = self.wpq.keys().copied().collect();
        for line in lines {
            self.drain_wpq_line(line);
        }
        Ok(())
    }
}

impl Memory {
    /// What a fence completes: every pending write-back and every line in
    /// a write-combining buffer reaches the memory level.
    fn complete_fenced(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (line, snap) in pending {
            self.mem_store_line(line, snap);
        }
        let wc = std::mem::take(&mut self.wc);
        for (line, data) in wc {
            self.mem_store_line(line, data);
        }
    }
}

impl TargetMemory for Memory {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        self.cpu_store(offset, data);
    }

    /// With [`Memory::set_streaming`] on: the partial lines at both ends
    /// with CPU stores, every whole line with a non-temporal store; reports
    /// the whole lines. Off: [`copy_in`](TargetMemory::copy_in).
    fn copy_in_streaming(&mut self, offset: u64, data: &[u8]) -> (u64, u64) {
        let len = data.len() as u64;
        let first = offset.saturating_add(LINE - 1) & !(LINE - 1);
        let end = offset.saturating_add(len) & !(LINE - 1);
        if !self.streaming || first >= end || !self.in_pool(offset, len) {
            self.cpu_store(offset, data);
            return (offset, offset);
        }
        let at = |o: u64| idx(o.saturating_sub(offset));
        self.cpu_store(offset, data.get(..at(first)).unwrap_or(&[]));
        let mut line = first;
        while line < end {
            let mut block = [0u8; LINE as usize];
            if let Some(src) = data.get(at(line)..at(line.saturating_add(LINE))) {
                block.copy_from_slice(src);
            }
            self.nt_store_line(line, &block);
            line = line.saturating_add(LINE);
        }
        self.cpu_store(end, data.get(at(end)..).unwrap_or(&[]));
        (first, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::platform;

    fn mem(name: &str) -> Memory {
        Memory::new(platform(name).unwrap(), 2 * PAGE).unwrap()
    }

    fn values(m: &Memory, w: u64) -> Vec<Word> {
        m.crash_candidates(w).iter().map(|c| c.value).collect()
    }

    const NEW: Word = [7; 8];
    const ZERO: Word = [0; 8];

    #[test]
    fn ddio_write_sits_in_cache_until_flushed_and_fenced() {
        let mut m = mem("adr-ddio");
        m.nic_write(64, &NEW);
        assert_eq!(values(&m, 64), vec![ZERO, NEW]);
        m.flush_line(64);
        // Not durable until the fence: both outcomes possible.
        assert_eq!(values(&m, 64), vec![ZERO, NEW]);
        m.fence();
        assert_eq!(values(&m, 64), vec![NEW]);
    }

    #[test]
    fn non_allocating_write_is_durable_on_adr() {
        let mut m = mem("adr-noddio");
        m.nic_write(128, &NEW);
        assert_eq!(values(&m, 128), vec![NEW]);
        assert!(m.dirty_lines().is_empty());
    }

    #[test]
    fn non_allocating_write_writes_back_a_dirty_line_first() {
        let mut m = mem("adr-noddio");
        m.cpu_store(0, &[1; 16]);
        m.nic_write(8, &NEW);
        // Word 0 got the CPU's data (written back), word 8 the NIC's.
        assert_eq!(values(&m, 0), vec![[1; 8]]);
        assert_eq!(values(&m, 8), vec![NEW]);
    }

    #[test]
    fn eviction_makes_a_dirty_line_durable() {
        let mut m = mem("adr-ddio");
        m.nic_write(64, &NEW);
        let mut rng = Rng::new(1);
        assert_eq!(m.evict_random(&mut rng), Some(64));
        assert_eq!(values(&m, 64), vec![NEW]);
        assert_eq!(m.evict_random(&mut rng), None);
    }

    #[test]
    fn pending_write_back_is_resolved_before_a_later_one() {
        let mut m = mem("adr-ddio");
        m.cpu_store(0, &[1; 8]);
        m.flush_line(0);
        m.cpu_store(0, &[2; 8]);
        // Old, the unfenced snapshot, or the dirty newer value.
        assert_eq!(values(&m, 0), vec![ZERO, [1; 8], [2; 8]]);
        m.evict(0);
        assert_eq!(values(&m, 0), vec![[2; 8]]);
    }

    #[test]
    fn eadr_cache_is_persistent() {
        let mut m = mem("eadr-ddio");
        m.nic_write(64, &NEW);
        assert_eq!(values(&m, 64), vec![NEW]);
        assert_eq!(&m.crash_image_base()[64..72], &NEW);
    }

    #[test]
    fn msync_makes_dram_pool_durable_and_flush_does_not() {
        let mut m = mem("dram-ddio");
        m.nic_write(4096 + 8, &NEW);
        m.flush_line(4096);
        m.fence();
        // Fenced into the page cache: volatile, maybe written back.
        assert_eq!(values(&m, 4096 + 8), vec![ZERO, NEW]);
        m.msync(4096, 4096).unwrap();
        assert_eq!(values(&m, 4096 + 8), vec![NEW]);
    }

    #[test]
    fn msync_covers_only_its_pages() {
        let mut m = mem("dram-noddio");
        m.nic_write(0, &NEW);
        m.nic_write(4096, &NEW);
        m.msync(4096, 4096).unwrap();
        assert_eq!(values(&m, 4096), vec![NEW]);
        assert_eq!(values(&m, 0), vec![ZERO, NEW]);
    }

    #[test]
    fn wpq_needs_deep_flush() {
        let mut m = mem("devdax-wpq");
        m.nic_write(64, &NEW);
        m.flush_line(64);
        m.fence();
        assert_eq!(values(&m, 64), vec![ZERO, NEW]);
        m.deep_flush().unwrap();
        assert_eq!(values(&m, 64), vec![NEW]);
    }

    #[test]
    fn deep_flush_completes_pending_write_backs_first() {
        let mut m = mem("devdax-wpq");
        m.cpu_store(64, &NEW);
        m.flush_line(64);
        m.deep_flush().unwrap();
        assert_eq!(values(&m, 64), vec![NEW]);
    }

    #[test]
    fn reads_are_coherent() {
        let mut m = mem("adr-ddio");
        m.nic_write(60, &[5; 8]);
        assert_eq!(m.read(58, 12), vec![0, 0, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0]);
    }

    #[test]
    fn out_of_pool_accesses_are_counted_not_applied() {
        let mut m = mem("adr-ddio");
        m.cpu_store(2 * PAGE - 4, &[1; 8]);
        m.flush_line(2 * PAGE);
        assert_eq!(m.stats().out_of_range, 2);
        assert!(m.dirty_lines().is_empty());
    }

    #[test]
    fn changed_words_are_reported_once() {
        let mut m = mem("adr-ddio");
        m.cpu_store(12, &[1; 8]);
        let c = m.take_changed();
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), vec![8, 16]);
        assert!(m.take_changed().is_empty());
        // Writing the same bytes again changes no candidate.
        m.cpu_store(12, &[1; 8]);
        assert!(m.take_changed().is_empty());
    }

    #[test]
    fn non_temporal_stores_wait_for_the_fence() {
        let mut m = mem("adr-ddio");
        m.nt_store_line(64, &[7; 64]);
        // Each word may or may not have arrived; none is torn.
        for w in (64..128).step_by(8) {
            assert_eq!(values(&m, w), vec![ZERO, NEW]);
        }
        // Not in the cache: a line flush does nothing for it.
        m.flush_line(64);
        assert_eq!(values(&m, 64), vec![ZERO, NEW]);
        // Readers see it at once.
        assert_eq!(m.read(64, 8), NEW.to_vec());
        m.fence();
        assert_eq!(values(&m, 64), vec![NEW]);
        assert!(m.dirty_lines().is_empty());
        assert_eq!(m.stats().nt_lines, 1);
    }

    #[test]
    fn a_non_temporal_store_evicts_the_cached_line_first() {
        let mut m = mem("adr-ddio");
        m.cpu_store(64, &[1; 64]);
        m.nt_store_line(64, &[7; 64]);
        // The dirty data went down first: never older than it.
        assert_eq!(values(&m, 64), vec![[1; 8], NEW]);
        // A CPU store into the line drains the buffer first.
        m.cpu_store(64, &[2; 8]);
        assert_eq!(values(&m, 64), vec![NEW, [2; 8]]);
        assert_eq!(values(&m, 72), vec![NEW]);
    }

    #[test]
    fn write_combining_is_not_persistent_even_with_eadr() {
        let mut m = mem("eadr-ddio");
        m.nt_store_line(128, &[7; 64]);
        assert_eq!(values(&m, 128), vec![ZERO, NEW]);
        assert_eq!(&m.crash_image_base()[128..136], &ZERO);
        m.fence();
        assert_eq!(values(&m, 128), vec![NEW]);
    }

    #[test]
    fn deep_flush_and_dax_msync_complete_non_temporal_stores() {
        let mut m = mem("devdax-wpq");
        m.nt_store_line(64, &[7; 64]);
        m.deep_flush().unwrap();
        assert_eq!(values(&m, 64), vec![NEW]);
        let mut m = mem("adr-noddio");
        m.nt_store_line(64, &[7; 64]);
        m.msync(4096, 4096).unwrap();
        assert_eq!(values(&m, 64), vec![NEW]);
    }

    #[test]
    fn streaming_copies_store_whole_lines_non_temporally() {
        let mut m = mem("adr-ddio");
        let data = [9u8; 200];
        // Off: a plain copy.
        assert_eq!(m.copy_in_streaming(100, &data), (100, 100));
        assert_eq!(m.stats().nt_lines, 0);
        assert_eq!(m.dirty_lines(), vec![64, 128, 192, 256]);
        let mut m = mem("adr-ddio");
        m.set_streaming(true);
        assert!(m.streaming());
        assert_eq!(m.copy_in_streaming(4196, &data), (4224, 4352));
        assert_eq!(m.stats().nt_lines, 2);
        assert_eq!(m.read(4196, 200), data.to_vec());
        // Partial lines are cached and dirty, whole lines wait for a fence.
        assert_eq!(m.dirty_lines(), vec![4160, 4224, 4288, 4352]);
        // Too short for a whole line: a plain copy.
        assert_eq!(m.copy_in_streaming(10, &[1; 60]), (10, 10));
    }

    #[test]
    fn bad_non_temporal_stores_are_counted_not_applied() {
        let mut m = mem("adr-ddio");
        m.nt_store_line(65, &[1; 64]);
        m.nt_store_line(2 * PAGE, &[1; 64]);
        assert_eq!(m.stats().out_of_range, 2);
        assert!(m.dirty_lines().is_empty());
    }

    #[test]
    fn bad_pool_size_is_refused() {
        assert_eq!(
            Memory::new(platform("adr-ddio").unwrap(), 100).unwrap_err(),
            BadPoolSize { size: 100 }
        );
    }
}
