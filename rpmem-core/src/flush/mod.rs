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
                #[cfg(feature = "mutants")]
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
            #[cfg(feature = "mutants")]
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
            ops.msync(first, end - first)
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

#[cfg(feature = "mutants")]
pub mod mutants {
    //! Seeded bugs for the simulator's mutant matrix (feature `mutants`).
    //! At most one is active at a time; the simulator sets it per run.
    use core::sync::atomic::{AtomicU8, Ordering};

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
    }

    impl Mutant {
        /// Every real mutant (not `None`).
        pub const ALL: [Mutant; 6] = [
            Mutant::RespondBeforeFlush,
            Mutant::FlushSkipsFence,
            Mutant::FlushMissesLastLine,
            Mutant::ApmWithoutRead,
            Mutant::InlineWithoutFlush,
            Mutant::DeepAsPlain,
        ];
    }

    static ACTIVE: AtomicU8 = AtomicU8::new(0);

    /// Switch `m` on (and every other mutant off).
    pub fn set(m: Mutant) {
        ACTIVE.store(m as u8, Ordering::SeqCst);
    }

    /// Is `m` the active mutant?
    pub fn active(m: Mutant) -> bool {
        m != Mutant::None && ACTIVE.load(Ordering::Relaxed) == m as u8
    }
}
