//! CPU cache flush instructions.
//!
//! The instruction is chosen once, the way libpmem2 does it: on x86_64
//! `clwb` if CPUID leaf 7 EBX bit 24 says it exists, else `clflushopt`
//! (bit 23), else `clflush`; every flush sequence ends with `sfence`
//! (`clflush` is ordered on its own but the fence costs nothing extra).
//! On aarch64 `dc cvap` (clean to the point of persistence) where the CPU
//! has it, else `dc cvac`, followed by `dsb ish`.
//!
//! Stable Rust has no `_mm_clwb` / `_mm_clflushopt` intrinsics and
//! `is_x86_feature_detected!("clwb")` does not compile, so detection reads
//! CPUID directly and the instructions are emitted with `asm!`.
//!
//! Also the 64-byte line stores ([`store_line`]: cached `movdqa` or
//! non-temporal `movntdq`) that rpmemd stores received data with.
//!
//! This is the one place in `rpmem-core` with `unsafe` code.
#![allow(unsafe_code)]

use super::CACHE_LINE;

/// One cache-line write-back instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushInstr {
    /// x86_64 `clwb`: write back, may keep the line cached.
    Clwb,
    /// x86_64 `clflushopt`: write back and evict, weakly ordered.
    ClflushOpt,
    /// x86_64 `clflush`: write back and evict, strongly ordered.
    Clflush,
    /// aarch64 `dc cvap`: clean to the point of persistence.
    DcCvap,
    /// aarch64 `dc cvac`: clean to the point of coherency.
    DcCvac,
    /// No instruction on this architecture: only a compiler/CPU fence.
    /// Used only where no flush instruction exists (such a target cannot
    /// use the CPU flush method; the daemon falls back to `msync`).
    Unsupported,
}

/// CPUID leaf 7, sub-leaf 0, EBX bit for `clflushopt`.
pub const CPUID7_EBX_CLFLUSHOPT: u32 = 1 << 23;
/// CPUID leaf 7, sub-leaf 0, EBX bit for `clwb`.
pub const CPUID7_EBX_CLWB: u32 = 1 << 24;

impl FlushInstr {
    /// Choose from CPUID leaf 7 EBX with the `PMEM_NO_CLWB` /
    /// `PMEM_NO_CLFLUSHOPT` overrides already applied. Pure, so every path
    /// can be tested on any machine.
    pub const fn from_cpuid7_ebx(ebx: u32, no_clwb: bool, no_clflushopt: bool) -> FlushInstr {
        if ebx & CPUID7_EBX_CLWB != 0 && !no_clwb {
            FlushInstr::Clwb
        } else if ebx & CPUID7_EBX_CLFLUSHOPT != 0 && !no_clflushopt {
            FlushInstr::ClflushOpt
        } else {
            FlushInstr::Clflush
        }
    }

    /// The best instruction of the running CPU, with the given overrides.
    pub fn detect_with(no_clwb: bool, no_clflushopt: bool) -> FlushInstr {
        #[cfg(target_arch = "x86_64")]
        {
            // CPUID exists on every x86_64 CPU (the intrinsic is safe); leaf 7
            // is only read when the maximum leaf (leaf 0 EAX) reaches it.
            let max_leaf = core::arch::x86_64::__cpuid(0).eax;
            let ebx = if max_leaf >= 7 {
                core::arch::x86_64::__cpuid_count(7, 0).ebx
            } else {
                0
            };
            FlushInstr::from_cpuid7_ebx(ebx, no_clwb, no_clflushopt)
        }
        #[cfg(target_arch = "aarch64")]
        {
            let _ = (no_clwb, no_clflushopt);
            #[cfg(feature = "std")]
            if std::arch::is_aarch64_feature_detected!("dpb") {
                return FlushInstr::DcCvap;
            }
            FlushInstr::DcCvac
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = (no_clwb, no_clflushopt);
            FlushInstr::Unsupported
        }
    }

    /// The best instruction of the running CPU, without overrides.
    pub fn detect() -> FlushInstr {
        FlushInstr::detect_with(false, false)
    }

    /// The std-side selector: like [`detect`](Self::detect) but honouring
    /// libpmem's environment variables `PMEM_NO_CLWB=1` and
    /// `PMEM_NO_CLFLUSHOPT=1`, so tests and administrators can force each path.
    #[cfg(feature = "std")]
    pub fn from_env() -> FlushInstr {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| v == "1");
        FlushInstr::detect_with(set("PMEM_NO_CLWB"), set("PMEM_NO_CLFLUSHOPT"))
    }

    /// Can this instruction make data durable on its own architecture?
    pub const fn is_supported(self) -> bool {
        !matches!(self, FlushInstr::Unsupported)
    }

    /// libpmem's name for the instruction (for logs).
    pub const fn name(self) -> &'static str {
        match self {
            FlushInstr::Clwb => "clwb",
            FlushInstr::ClflushOpt => "clflushopt",
            FlushInstr::Clflush => "clflush",
            FlushInstr::DcCvap => "dc cvap",
            FlushInstr::DcCvac => "dc cvac",
            FlushInstr::Unsupported => "none",
        }
    }

    /// Write back the cache line that holds `*byte`.
    ///
    /// Taking a reference makes this safe: the line is mapped and readable.
    /// An instruction of another architecture than the running one does
    /// nothing.
    #[inline]
    pub fn flush_line(self, byte: &u8) {
        // SAFETY: a reference is always valid for reads.
        unsafe { self.flush_line_raw(byte) }
    }

    /// Write back the cache line that holds the byte at `p`.
    ///
    /// For memory that other threads may be writing concurrently (a pool
    /// shared by lane workers), where forming a `&u8` would assert that no one
    /// writes it. The instructions only write the line back; they neither read
    /// nor change its contents as the program sees them.
    ///
    /// # Safety
    ///
    /// `p` must point into a mapping that stays mapped for the duration of
    /// the call (flushing an unmapped address faults).
    #[inline]
    pub unsafe fn flush_line_raw(self, p: *const u8) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller guarantees `p` is mapped; clwb only writes
            // the line back and changes no architectural state. CPUID
            // reported support (or the caller chose it on a CPU that has it).
            FlushInstr::Clwb => unsafe {
                core::arch::asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags));
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for clwb; clflushopt also evicts the line.
            FlushInstr::ClflushOpt => unsafe {
                core::arch::asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags));
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: clflush exists on every x86_64 CPU (SSE2 baseline) and
            // the caller guarantees `p` is mapped.
            FlushInstr::Clflush => unsafe { core::arch::x86_64::_mm_clflush(p) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `p` is mapped (caller); `dc cvap` needs ARMv8.2 DPB,
            // which `detect` checked.
            FlushInstr::DcCvap => unsafe {
                core::arch::asm!("dc cvap, {0}", in(reg) p, options(nostack, preserves_flags));
            },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `p` is mapped (caller); `dc cvac` is baseline ARMv8.
            FlushInstr::DcCvac => unsafe {
                core::arch::asm!("dc cvac, {0}", in(reg) p, options(nostack, preserves_flags));
            },
            _ => {
                let _ = p;
            }
        }
    }

    /// Order every earlier flush before what follows; after it the flushed
    /// lines are durable (given a persistence domain at the memory controller).
    #[inline]
    pub fn fence(self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: sfence exists on every x86_64 CPU and has no memory operands.
        unsafe {
            core::arch::x86_64::_mm_sfence()
        };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `dsb ish` has no operands and only orders memory accesses.
        unsafe {
            core::arch::asm!("dsb ish", options(nostack, preserves_flags))
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// Write back every cache line overlapping `data`, then fence.
    pub fn persist(self, data: &[u8]) {
        if let Some(first) = data.first() {
            let addr = first as *const u8 as usize;
            for i in line_starts(addr, data.len()) {
                if let Some(b) = data.get(i) {
                    self.flush_line(b);
                }
            }
        }
        self.fence();
    }
}

/// For `len` bytes at address `addr`: the index of one byte in each cache
/// line they overlap, in order (the first byte, then the first byte of each
/// following line). What [`FlushInstr::persist`] flushes, kept apart so the
/// arithmetic is tested without flushing anything.
pub fn line_starts(addr: usize, len: usize) -> impl Iterator<Item = usize> {
    let line = CACHE_LINE as usize;
    let first_next = line - addr % line;
    let rest = (first_next..len).step_by(line);
    (len > 0).then_some(0).into_iter().chain(rest)
}

/// How [`store_line`] stores a 64-byte line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStore {
    /// Ordinary 16-byte aligned stores (`movdqa`): the line stays in the
    /// cache and needs a write-back to become durable.
    Cached,
    /// Non-temporal 16-byte stores (`movntdq`): the line goes towards
    /// memory without being kept in the cache and needs only the fence
    /// (`sfence`) that every persist ends with.
    NonTemporal,
}

/// Whether [`store_line`] exists on this CPU architecture (x86_64: SSE2,
/// which every x86_64 CPU has).
pub const CAN_STORE_LINES: bool = cfg!(target_arch = "x86_64");

/// Stores the 64 bytes of `line` at `dst` with four 16-byte stores of the
/// kind `how` says, each of which writes its two aligned 8-byte words at
/// once (8-byte failure atomicity). Returns false and stores nothing where
/// [`CAN_STORE_LINES`] is false or `dst` is not 16-byte aligned.
///
/// The stores happen inside the `asm!` block, the way the kernel's writes
/// by `recv` do: the caller holds no Rust reference to the destination.
///
/// # Safety
///
/// `[dst, dst + 64)` must be valid for writes and stay mapped for the call;
/// other threads may access it concurrently only through atomic accesses,
/// these stores, or from outside the program.
#[inline]
pub unsafe fn store_line(dst: *mut u8, line: &[u8; 64], how: LineStore) -> bool {
    if !CAN_STORE_LINES || !(dst as usize).is_multiple_of(16) {
        return false;
    }
    /// Four unaligned 16-byte loads from `line`, four 16-byte stores of
    /// instruction `$store` to `dst`.
    #[cfg(target_arch = "x86_64")]
    macro_rules! store_64 {
        ($store:literal) => {
            core::arch::asm!(
                "movdqu {a}, [{s}]",
                "movdqu {b}, [{s} + 16]",
                "movdqu {c}, [{s} + 32]",
                "movdqu {d}, [{s} + 48]",
                concat!($store, " [{t}], {a}"),
                concat!($store, " [{t} + 16], {b}"),
                concat!($store, " [{t} + 32], {c}"),
                concat!($store, " [{t} + 48], {d}"),
                s = in(reg) line.as_ptr(),
                t = in(reg) dst,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack, preserves_flags),
            )
        };
    }
    #[cfg(target_arch = "x86_64")]
    match how {
        // SAFETY: the caller guarantees `[dst, dst + 64)` writable and
        // mapped; `dst` is 16-byte aligned (checked above), as `movdqa`
        // needs; `line` is 64 readable bytes (unaligned loads); the xmm
        // registers used are declared clobbered, no stack or flags touched.
        LineStore::Cached => unsafe { store_64!("movdqa") },
        // SAFETY: as for `Cached`; `movntdq` needs the same 16-byte
        // alignment, checked above.
        LineStore::NonTemporal => unsafe { store_64!("movntdq") },
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (line, how);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0x1000, 0, &[])]
    #[case(0x1000, 1, &[0])]
    #[case(0x1000, 64, &[0])]
    #[case(0x1000, 65, &[0, 64])]
    #[case(0x1000, 128, &[0, 64])]
    #[case(0x1003, 61, &[0])]
    #[case(0x1003, 62, &[0, 61])]
    #[case(0x1003, 200, &[0, 61, 125, 189])]
    #[case(0x103f, 2, &[0, 1])]
    fn persist_touches_each_line_once(
        #[case] addr: usize,
        #[case] len: usize,
        #[case] want: &[usize],
    ) {
        let got: std::vec::Vec<usize> = line_starts(addr, len).collect();
        assert_eq!(got, want);
        // One index per line the range overlaps, each in a different line.
        let lines = if len == 0 {
            0
        } else {
            (addr + len - 1) / 64 - addr / 64 + 1
        };
        assert_eq!(got.len(), lines);
    }

    #[test]
    fn names_and_support() {
        for (i, name, supported) in [
            (FlushInstr::Clwb, "clwb", true),
            (FlushInstr::ClflushOpt, "clflushopt", true),
            (FlushInstr::Clflush, "clflush", true),
            (FlushInstr::DcCvap, "dc cvap", true),
            (FlushInstr::DcCvac, "dc cvac", true),
            (FlushInstr::Unsupported, "none", false),
        ] {
            assert_eq!(i.name(), name);
            assert_eq!(i.is_supported(), supported, "{name}");
        }
    }

    /// `detect_with` reads CPUID leaf 7 when the CPU has it: the answer is
    /// what `from_cpuid7_ebx` makes of this CPU's own leaf.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn detection_reads_this_cpus_leaf_7() {
        let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
        for (no_clwb, no_clflushopt) in [(false, false), (true, false), (true, true)] {
            assert_eq!(
                FlushInstr::detect_with(no_clwb, no_clflushopt),
                FlushInstr::from_cpuid7_ebx(ebx, no_clwb, no_clflushopt)
            );
        }
    }

    #[rstest]
    #[case(CPUID7_EBX_CLWB | CPUID7_EBX_CLFLUSHOPT, false, false, FlushInstr::Clwb)]
    #[case(CPUID7_EBX_CLWB | CPUID7_EBX_CLFLUSHOPT, true, false, FlushInstr::ClflushOpt)]
    #[case(CPUID7_EBX_CLWB | CPUID7_EBX_CLFLUSHOPT, true, true, FlushInstr::Clflush)]
    #[case(CPUID7_EBX_CLWB | CPUID7_EBX_CLFLUSHOPT, false, true, FlushInstr::Clwb)]
    #[case(CPUID7_EBX_CLFLUSHOPT, false, false, FlushInstr::ClflushOpt)]
    #[case(CPUID7_EBX_CLWB, true, false, FlushInstr::Clflush)]
    #[case(0, false, false, FlushInstr::Clflush)]
    #[case(!0, false, false, FlushInstr::Clwb)]
    fn selection_table(
        #[case] ebx: u32,
        #[case] no_clwb: bool,
        #[case] no_opt: bool,
        #[case] want: FlushInstr,
    ) {
        assert_eq!(FlushInstr::from_cpuid7_ebx(ebx, no_clwb, no_opt), want);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn overrides_are_honoured_on_this_cpu() {
        assert_ne!(FlushInstr::detect_with(true, false), FlushInstr::Clwb);
        assert_eq!(FlushInstr::detect_with(true, true), FlushInstr::Clflush);
    }

    /// Executes every instruction the running CPU supports on real memory of
    /// every alignment and length; a wrong encoding or a bad address would
    /// fault (SIGILL/SIGSEGV) and fail the test.
    #[test]
    fn flushing_real_memory_keeps_data() {
        // On x86_64 the overrides reach every instruction the CPU has.
        let candidates = [
            FlushInstr::detect(),
            FlushInstr::detect_with(true, false),
            FlushInstr::detect_with(true, true),
        ];
        let mut buf = [0u8; 1024];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8;
        }
        for instr in candidates {
            for start in [0usize, 1, 63, 64, 65, 200] {
                for len in [0usize, 1, 7, 64, 65, 128, 500] {
                    instr.persist(&buf[start..start + len]);
                }
            }
        }
        for (i, b) in buf.iter().enumerate() {
            assert_eq!(*b, i as u8);
        }
    }

    /// Both kinds of line store write exactly their 64 bytes at every
    /// 16-byte aligned place of a buffer, and refuse unaligned ones.
    #[test]
    fn line_stores_write_exactly_their_line() {
        #[repr(C, align(64))]
        struct Buf([u8; 256]);
        let line: [u8; 64] = core::array::from_fn(|i| i as u8 + 1);
        for how in [LineStore::Cached, LineStore::NonTemporal] {
            for at in [0usize, 16, 48, 64, 128, 192, 1, 8, 100] {
                let mut buf = Buf([0; 256]);
                let dst = buf.0.as_mut_ptr().wrapping_add(at);
                // SAFETY: `[dst, dst + 64)` lies in `buf`, borrowed by
                // nothing else during the call.
                let stored = unsafe { store_line(dst, &line, how) };
                fence_for_test();
                let aligned = at % 16 == 0;
                assert_eq!(stored, CAN_STORE_LINES && aligned, "{how:?} at {at}");
                if stored {
                    assert_eq!(&buf.0[at..at + 64], &line[..]);
                    assert!(buf.0[..at].iter().all(|&b| b == 0));
                    assert!(buf.0[at + 64..].iter().all(|&b| b == 0));
                } else {
                    assert!(buf.0.iter().all(|&b| b == 0));
                }
            }
        }
    }

    /// Orders the non-temporal stores before the test reads them back.
    fn fence_for_test() {
        FlushInstr::detect().fence();
    }
}
