//! Making bytes of a mapped pool durable.
//!
//! The persist engines never execute a flush instruction themselves: they
//! call [`persist_range`] / [`deep_persist_range`], which drive a
//! [`FlushOps`] implementation. The daemon implements [`FlushOps`] over a real
//! mapping with the CPU instructions of [`cpu`]; the simulator implements it
//! over its model of caches and persistence domains. That way the code that
//! decides *what* to flush is the code that ships, in every setting.

pub mod cpu;

/// Size of a CPU cache line on every platform we flush on.
pub const CACHE_LINE: u64 = 64;
/// Granularity of `msync`.
pub const PAGE: u64 = 4096;

/// How a target makes written bytes durable (the result of
/// [`crate::policy`]'s table on the target side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushMode {
    /// Pool is persistent memory and the CPU cache is not in the
    /// persistence domain: flush every touched line, then fence.
    Cpu,
    /// Pool is persistent memory and the platform persists the CPU cache
    /// (eADR): a fence suffices. Only chosen when the platform says so.
    FenceOnly,
    /// Pool is not persistent memory (page cache, DRAM-backed file):
    /// `msync` the touched pages.
    Msync,
}

/// An error reported by a [`FlushOps`] implementation (for example `msync`
/// failing with an errno).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushError {
    /// The OS error number, or 0 when there is none.
    pub errno: i32,
}

impl core::fmt::Display for FlushError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "flush failed (errno {})", self.errno)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FlushError {}

/// The primitive operations a pool mapping offers. Offsets are pool offsets
/// (bytes from the start of the mapped pool), already range-checked by the
/// caller.
pub trait FlushOps {
    /// Write back (and possibly evict) the cache line that holds `offset`
    /// (`clwb`, `clflushopt`, `clflush` or `dc cvap`). Not ordered by itself.
    fn flush_line(&mut self, offset: u64);
    /// Order all earlier line flushes before anything later (`sfence`,
    /// `dsb ish`). After it returns the flushed lines are durable.
    fn fence(&mut self);
    /// Synchronously write back the pages of `[offset, offset + len)`
    /// (page-aligned by the caller) to the backing store (`msync(MS_SYNC)`).
    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError>;
    /// Flush any buffer between the memory controller and the media that a
    /// normal persist leaves volatile (Device DAX `deep_flush`). Platforms
    /// without such a buffer do nothing.
    fn deep_flush(&mut self) -> Result<(), FlushError> {
        Ok(())
    }
}

/// Make `[offset, offset + len)` durable with `mode`.
///
/// Overflow-safe: a range that would wrap is clamped to the end of the
/// address space (callers validate ranges first; this is defence in depth).
pub fn persist_range<F: FlushOps + ?Sized>(
    ops: &mut F,
    mode: FlushMode,
    offset: u64,
    len: u64,
) -> Result<(), FlushError> {
    if len == 0 {
        return Ok(());
    }
    match mode {
        FlushMode::Cpu => {
            let first = offset & !(CACHE_LINE - 1);
            let end = offset.saturating_add(len);
            let mut line = first;
            while line < end {
                #[cfg(rpmem_mutants)]
                if mutants::active(mutants::Mutant::FlushMissesLastLine)
                    && line.saturating_add(CACHE_LINE) >= end
                    && line != first
                {
                    break;
                }
                ops.flush_line(line);
                line = match line.checked_add(CACHE_LINE) {
                    Some(l) => l,
                    None => break,
                };
            }
            #[cfg(rpmem_mutants)]
            if mutants::active(mutants::Mutant::FlushSkipsFence) {
                return Ok(());
            }
            ops.fence();
            Ok(())
        }
        FlushMode::FenceOnly => {
            ops.fence();
            Ok(())
        }
        FlushMode::Msync => {
            let first = offset & !(PAGE - 1);
            let end = offset.saturating_add(len);
            // Round the end up to a page; near the top of the address space
            // keep the (already clamped) end.
            let end = end.checked_add(PAGE - 1).map_or(end, |e| e & !(PAGE - 1));
            ops.msync(first, end - first)
        }
    }
}

/// [`persist_range`] for a range some of whose cache lines were stored with
/// non-temporal stores (`movntdq`, `movnti`) instead of ordinary ones.
///
/// `streamed` names those lines, `[streamed.0, streamed.1)`, cache-line
/// aligned; an empty, unaligned, or wrapping pair means none (every line is
/// flushed as by [`persist_range`]). A non-temporal store does not leave its
/// line dirty in the cache: the bytes go towards memory through the CPU's
/// write-combining buffers, where only the next fence makes them durable,
/// exactly as it does for a line written back by [`FlushOps::flush_line`].
/// So:
///
/// * [`FlushMode::Cpu`]: every line of the range outside `streamed` is
///   flushed, then the fence comes **always**, even when no line is left to
///   flush (it is what makes the streamed lines durable);
/// * [`FlushMode::FenceOnly`]: the fence (eADR makes the cache persistent,
///   not the write-combining buffers);
/// * [`FlushMode::Msync`]: the fence, so that the kernel's write-back finds
///   the streamed bytes in memory, then the `msync` of the whole range.
///
/// An empty range does nothing, as with [`persist_range`].
pub fn persist_range_streamed<F: FlushOps + ?Sized>(
    ops: &mut F,
    mode: FlushMode,
    offset: u64,
    len: u64,
    streamed: (u64, u64),
) -> Result<(), FlushError> {
    let (from, to) = streamed;
    let line = CACHE_LINE - 1;
    if len == 0 || from >= to || from & line != 0 || to & line != 0 {
        return persist_range(ops, mode, offset, len);
    }
    #[cfg(rpmem_mutants)]
    let skip_fence = mutants::active(mutants::Mutant::StreamedWithoutFence);
    #[cfg(not(rpmem_mutants))]
    let skip_fence = false;
    match mode {
        FlushMode::Cpu => {
            let first = offset & !line;
            let end = offset.saturating_add(len);
            let mut at = first;
            while at < end {
                if !(from <= at && at < to) {
                    ops.flush_line(at);
                }
                at = match at.checked_add(CACHE_LINE) {
                    Some(l) => l,
                    None => break,
                };
            }
            if !skip_fence {
                ops.fence();
            }
            Ok(())
        }
        FlushMode::FenceOnly => {
            if !skip_fence {
                ops.fence();
            }
            Ok(())
        }
        FlushMode::Msync => {
            ops.fence();
            persist_range(ops, mode, offset, len)
        }
    }
}

/// Deep persist of `[offset, offset + len)`: a normal persist, then the
/// platform's deep flush (`pmem_deep_persist` semantics). With `Msync` the
/// `msync` already reaches the media.
pub fn deep_persist_range<F: FlushOps + ?Sized>(
    ops: &mut F,
    mode: FlushMode,
    offset: u64,
    len: u64,
) -> Result<(), FlushError> {
    persist_range(ops, mode, offset, len)?;
    match mode {
        FlushMode::Msync => Ok(()),
        FlushMode::Cpu | FlushMode::FenceOnly => ops.deep_flush(),
    }
}

pub mod mutants {
    //! Seeded bugs for the simulator's mutant matrix.
    //!
    //! The hooks that break the engines exist only in a build made with
    //! `RUSTFLAGS="--cfg rpmem_mutants"` ([`COMPILED`]): no `Cargo.toml` can
    //! switch them on, so no workspace or dependency build of rpmemd or rpmem
    //! ever contains them (a cargo feature could be unified into one). This
    //! module's switch is always there; without the cfg, [`active`] is
    //! always false and nothing calls it. At most one mutant is active at a
    //! time; the simulator sets it per run. See docs/simulation.md.
    use core::sync::atomic::{AtomicU8, Ordering};

    /// Whether this build has the hooks (`--cfg rpmem_mutants`).
    pub const COMPILED: bool = cfg!(rpmem_mutants);

    /// Text that a build with the hooks carries in its binary (the hook
    /// check keeps it there), and that a check of the shipped binaries looks
    /// for (`.ci/no-mutant-hooks.sh`, `tests/tests/no_mutants.rs`).
    pub const MARKER: &str = "rpmem-core: seeded-bug hooks compiled in (--cfg rpmem_mutants)";

    /// One deliberately broken behaviour.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum Mutant {
        /// No mutant active.
        None = 0,
        /// The target answers a GPSPM persist before flushing.
        RespondBeforeFlush = 1,
        /// The flush omits the final fence.
        FlushSkipsFence = 2,
        /// The flush range misses the last cache line.
        FlushMissesLastLine = 3,
        /// APM posts the WRITE without the READ after it.
        ApmWithoutRead = 4,
        /// An inline persist is copied without a flush.
        InlineWithoutFlush = 5,
        /// A deep persist is treated as a plain one.
        DeepAsPlain = 6,
        /// The initiator posts a WRITE (or READ) while an inline persist of
        /// the same lane is unanswered, so the NIC may place newer bytes
        /// before the target CPU copies the older inline ones.
        WriteOvertakesInline = 7,
        /// The target leaves out the fence after an inline copy whose
        /// whole cache lines went out with non-temporal stores, as if those
        /// stores were durable when issued (they wait in write-combining
        /// buffers until a fence).
        StreamedWithoutFence = 8,
        /// With RDMA FLUSH, the initiator's drain posts no FLUSH after the
        /// WRITEs (as if their completion made them durable).
        RdmaFlushWithoutFlush = 9,
        /// The target's TCP lane ([`crate::persist::StreamTarget`]) leaves
        /// out the write-back of a streamed WRITE body's partial first line
        /// but still records the line as written back, so the flush of the
        /// lane's next `FLUSH_WRITE` skips a line that is only dirty in the
        /// cache.
        WrittenBackLineNotFlushed = 10,
        /// The target's TCP lane records the lines of a WRITE body stored
        /// with ordinary stores (not streamed, nothing written back) as
        /// written back, so the flush of the lane's next `FLUSH_WRITE`
        /// skips them: its answer leaves before the body is durable.
        PlainBodyCountedWrittenBack = 11,
    }

    impl Mutant {
        /// Every real mutant (not `None`).
        pub const ALL: [Mutant; 11] = [
            Mutant::RespondBeforeFlush,
            Mutant::FlushSkipsFence,
            Mutant::FlushMissesLastLine,
            Mutant::ApmWithoutRead,
            Mutant::InlineWithoutFlush,
            Mutant::DeepAsPlain,
            Mutant::WriteOvertakesInline,
            Mutant::StreamedWithoutFence,
            Mutant::RdmaFlushWithoutFlush,
            Mutant::WrittenBackLineNotFlushed,
            Mutant::PlainBodyCountedWrittenBack,
        ];
    }

    static ACTIVE: AtomicU8 = AtomicU8::new(0);

    /// Switch `m` on (and every other mutant off).
    pub fn set(m: Mutant) {
        ACTIVE.store(m as u8, Ordering::SeqCst);
    }

    /// Is `m` the active mutant? Always false without `--cfg rpmem_mutants`.
    pub fn active(m: Mutant) -> bool {
        if !COMPILED {
            return false;
        }
        // Keeps MARKER's bytes in every binary that links a hook.
        core::hint::black_box(MARKER.as_ptr());
        m != Mutant::None && ACTIVE.load(Ordering::Relaxed) == m as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Records what the flush code asked for.
    #[derive(Default)]
    struct Rec {
        lines: heapless::Vec<u64, 64>,
        fences: usize,
        msyncs: heapless::Vec<(u64, u64), 4>,
        deep: usize,
        fence_after_last_line: bool,
    }

    impl FlushOps for Rec {
        fn flush_line(&mut self, offset: u64) {
            self.lines.push(offset).unwrap();
            self.fence_after_last_line = false;
        }
        fn fence(&mut self) {
            self.fences += 1;
            self.fence_after_last_line = true;
        }
        fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
            self.msyncs.push((offset, len)).unwrap();
            Ok(())
        }
        fn deep_flush(&mut self) -> Result<(), FlushError> {
            self.deep += 1;
            Ok(())
        }
    }

    #[rstest]
    #[case(0, 1, &[0])]
    #[case(63, 1, &[0])]
    #[case(63, 2, &[0, 64])]
    #[case(64, 64, &[64])]
    #[case(65, 64, &[64, 128])]
    #[case(4096, 256, &[4096, 4160, 4224, 4288])]
    #[case(u64::MAX - 10, 5, &[u64::MAX - 63])]
    fn cpu_mode_flushes_every_touched_line_then_fences(
        #[case] off: u64,
        #[case] len: u64,
        #[case] lines: &[u64],
    ) {
        let mut r = Rec::default();
        persist_range(&mut r, FlushMode::Cpu, off, len).unwrap();
        assert_eq!(&r.lines[..], lines);
        assert_eq!(r.fences, 1);
        assert!(r.fence_after_last_line);
    }

    #[test]
    fn wrapping_range_is_clamped_not_panicking() {
        let mut r = Rec::default();
        persist_range(&mut r, FlushMode::Cpu, u64::MAX - 1, 100).unwrap();
        assert_eq!(&r.lines[..], &[u64::MAX - 63]);
        persist_range(&mut r, FlushMode::Msync, u64::MAX - 1, 100).unwrap();
        assert_eq!(r.msyncs[0], (u64::MAX - 4095, 4095));
    }

    #[rstest]
    #[case(0, 1, (0, 4096))]
    #[case(4095, 2, (0, 8192))]
    #[case(8192, 4096, (8192, 4096))]
    #[case(100, 10000, (0, 12288))]
    fn msync_mode_covers_whole_pages(#[case] off: u64, #[case] len: u64, #[case] want: (u64, u64)) {
        let mut r = Rec::default();
        persist_range(&mut r, FlushMode::Msync, off, len).unwrap();
        assert_eq!(&r.msyncs[..], &[want]);
        assert!(r.lines.is_empty());
        assert_eq!(r.fences, 0);
    }

    #[test]
    fn empty_range_does_nothing() {
        for mode in [FlushMode::Cpu, FlushMode::FenceOnly, FlushMode::Msync] {
            let mut r = Rec::default();
            persist_range(&mut r, mode, 100, 0).unwrap();
            assert!(r.lines.is_empty() && r.msyncs.is_empty() && r.fences == 0);
        }
    }

    #[test]
    fn fence_only_mode_fences_without_flushing() {
        let mut r = Rec::default();
        persist_range(&mut r, FlushMode::FenceOnly, 0, 4096).unwrap();
        assert!(r.lines.is_empty());
        assert_eq!(r.fences, 1);
    }

    #[test]
    fn deep_persist_adds_the_deep_flush_except_for_msync() {
        let mut r = Rec::default();
        deep_persist_range(&mut r, FlushMode::Cpu, 0, 64).unwrap();
        assert_eq!((r.lines.len(), r.fences, r.deep), (1, 1, 1));
        let mut r = Rec::default();
        deep_persist_range(&mut r, FlushMode::Msync, 0, 64).unwrap();
        assert_eq!((r.msyncs.len(), r.deep), (1, 0));
    }

    #[rstest]
    // Whole lines streamed in the middle: only the partial edges flushed.
    #[case(100, 300, (128, 384), &[64, 384])]
    // Everything streamed: no line flushed, the fence still comes.
    #[case(128, 256, (128, 384), &[])]
    // The streamed lines reach past the range: only the range matters.
    #[case(128, 128, (0, 4096), &[])]
    // Streamed lines at the start only.
    #[case(64, 256, (64, 192), &[192, 256])]
    // Nothing streamed, or a report that is not whole lines: every line.
    #[case(100, 100, (128, 128), &[64, 128, 192])]
    #[case(100, 100, (130, 192), &[64, 128, 192])]
    #[case(100, 100, (128, 190), &[64, 128, 192])]
    #[case(100, 100, (192, 128), &[64, 128, 192])]
    fn streamed_lines_are_not_flushed_but_the_fence_stays(
        #[case] off: u64,
        #[case] len: u64,
        #[case] streamed: (u64, u64),
        #[case] lines: &[u64],
    ) {
        let mut r = Rec::default();
        persist_range_streamed(&mut r, FlushMode::Cpu, off, len, streamed).unwrap();
        assert_eq!(&r.lines[..], lines);
        assert_eq!(r.fences, 1);
        assert!(r.fence_after_last_line);
        assert!(r.msyncs.is_empty());
    }

    #[test]
    fn streamed_lines_on_fence_only_and_msync_targets() {
        let mut r = Rec::default();
        persist_range_streamed(&mut r, FlushMode::FenceOnly, 128, 256, (128, 384)).unwrap();
        assert!(r.lines.is_empty() && r.msyncs.is_empty());
        assert_eq!(r.fences, 1);
        // msync targets still msync every page of the range, after a fence.
        let mut r = Rec::default();
        persist_range_streamed(&mut r, FlushMode::Msync, 100, 5000, (128, 5056)).unwrap();
        assert_eq!(&r.msyncs[..], &[(0, 8192)]);
        assert_eq!(r.fences, 1);
        assert!(r.lines.is_empty());
        // Nothing streamed: exactly persist_range.
        let mut r = Rec::default();
        persist_range_streamed(&mut r, FlushMode::Msync, 100, 5000, (0, 0)).unwrap();
        assert_eq!((&r.msyncs[..], r.fences), (&[(0, 8192)][..], 0));
        // An empty range does nothing.
        let mut r = Rec::default();
        persist_range_streamed(&mut r, FlushMode::Cpu, 128, 0, (128, 192)).unwrap();
        assert_eq!((r.lines.len(), r.fences), (0, 0));
    }

    #[test]
    fn msync_errors_are_returned() {
        struct Failing;
        impl FlushOps for Failing {
            fn flush_line(&mut self, _: u64) {}
            fn fence(&mut self) {}
            fn msync(&mut self, _: u64, _: u64) -> Result<(), FlushError> {
                Err(FlushError { errno: 5 })
            }
        }
        assert_eq!(
            persist_range(&mut Failing, FlushMode::Msync, 0, 1),
            Err(FlushError { errno: 5 })
        );
    }
}
