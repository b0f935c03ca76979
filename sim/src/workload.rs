//! Workloads: the calls each lane makes, drawn from a seed.

use core::fmt;

use crate::checker::MAX_WRITES;
use crate::rng::Rng;

/// One API call of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallSpec {
    /// `rpmem_persist(offset, len, relaxed ? RELAXED : 0)`.
    Persist {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
        /// RPMEM_PERSIST_RELAXED.
        relaxed: bool,
    },
    /// `rpmem_flush(offset, len, relaxed ? RELAXED : 0)`.
    Flush {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
        /// RPMEM_FLUSH_RELAXED.
        relaxed: bool,
    },
    /// `rpmem_drain(0)`.
    Drain,
    /// `rpmem_deep_persist(offset, len)`.
    DeepPersist {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// `rpmem_read(offset, len)`.
    Read {
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl CallSpec {
    /// The range the call writes, if it writes.
    pub fn written(&self) -> Option<(u64, u64)> {
        match *self {
            CallSpec::Persist { offset, len, .. }
            | CallSpec::Flush { offset, len, .. }
            | CallSpec::DeepPersist { offset, len } => Some((offset, len)),
            CallSpec::Drain | CallSpec::Read { .. } => None,
        }
    }
}

impl CallSpec {
    /// Whether the call's data travels by RDMA WRITE (RELAXED persist or
    /// flush, deep persist).
    pub fn travels_by_write(&self) -> bool {
        matches!(
            self,
            CallSpec::Persist { relaxed: true, .. }
                | CallSpec::Flush { relaxed: true, .. }
                | CallSpec::DeepPersist { .. }
        )
    }
}

impl fmt::Display for CallSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = |relaxed: bool| if relaxed { ", RELAXED" } else { "" };
        match *self {
            CallSpec::Persist {
                offset,
                len,
                relaxed,
            } => write!(f, "persist({offset}, {len}{})", r(relaxed)),
            CallSpec::Flush {
                offset,
                len,
                relaxed,
            } => write!(f, "flush({offset}, {len}{})", r(relaxed)),
            CallSpec::Drain => write!(f, "drain()"),
            CallSpec::DeepPersist { offset, len } => write!(f, "deep_persist({offset}, {len})"),
            CallSpec::Read { offset, len } => write!(f, "read({offset}, {len})"),
        }
    }
}

/// How big a workload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// A few calls per lane in a hot region of a few lines: overlaps and
    /// shared cache lines across lanes are common. Searched at every crash
    /// point.
    Small,
    /// Tens of calls per lane over the whole pool, larger ranges. Searched
    /// at sampled crash points.
    Large,
}

/// The calls of every lane.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Per lane, in order.
    pub lanes: Vec<Vec<CallSpec>>,
}

impl Workload {
    /// Calls in total.
    pub fn calls(&self) -> usize {
        self.lanes.iter().map(Vec::len).sum()
    }

    /// Draw a workload for `nlanes` lanes writing `[min_offset, pool_size)`.
    ///
    /// Lane 0 always starts with a RELAXED persist (so every run exercises
    /// the WRITE path), and at most [`MAX_WRITES`] calls write. Calls are
    /// drawn independently: a non-RELAXED flush is often followed, with no
    /// drain between, by a call of the same lane that travels by WRITE or
    /// reads an overlapping range (the initiator must hold those back until
    /// the inline data is answered).
    pub fn generate(
        rng: &mut Rng,
        size: Size,
        nlanes: u32,
        min_offset: u64,
        pool_size: u64,
    ) -> Workload {
        let usable = pool_size.saturating_sub(min_offset).max(1);
        let (calls_lo, calls_hi, hot) = match size {
            Size::Small => (2, 6, rng.range(64, 768).min(usable)),
            Size::Large => (15, 40, usable),
        };
        let per_lane_cap = MAX_WRITES / usize::try_from(nlanes.max(1)).unwrap_or(1);
        let mut lanes = Vec::new();
        for lane in 0..nlanes {
            let n = usize::try_from(rng.range(calls_lo, calls_hi)).unwrap_or(2);
            let mut calls = Vec::with_capacity(n);
            let mut writes = 0usize;
            for i in 0..n {
                let c = if lane == 0 && i == 0 {
                    let (offset, len) = Self::range(rng, size, min_offset, hot, pool_size);
                    CallSpec::Persist {
                        offset,
                        len,
                        relaxed: true,
                    }
                } else {
                    Self::call(rng, size, min_offset, hot, pool_size)
                };
                if c.written().is_some() {
                    if writes >= per_lane_cap {
                        continue;
                    }
                    writes += 1;
                }
                calls.push(c);
            }
            lanes.push(calls);
        }
        Workload { lanes }
    }

    /// Make some non-RELAXED persists and flushes cover whole cache lines
    /// (each with probability `num / den`, drawn from `rng`, a stream of
    /// its own so that the rest of the workload stays as drawn): their
    /// inline messages then carry whole lines, which the target may store
    /// with non-temporal stores. Ranges that would leave
    /// `[min_offset, pool_size)` stay as they are.
    pub fn line_align_some(
        &mut self,
        rng: &mut Rng,
        (num, den): (u64, u64),
        min_offset: u64,
        pool_size: u64,
    ) {
        let line = 64u64;
        for call in self.lanes.iter_mut().flatten() {
            let (CallSpec::Persist {
                offset,
                len,
                relaxed: false,
            }
            | CallSpec::Flush {
                offset,
                len,
                relaxed: false,
            }) = call
            else {
                continue;
            };
            if !rng.chance(num, den) {
                continue;
            }
            let o = *offset & !(line - 1);
            let l = len.saturating_add(*offset - o).saturating_add(line - 1) & !(line - 1);
            if o >= min_offset && o.saturating_add(l) <= pool_size {
                *offset = o;
                *len = l;
            }
        }
    }

    fn call(rng: &mut Rng, size: Size, min: u64, hot: u64, pool: u64) -> CallSpec {
        let (offset, len) = Self::range(rng, size, min, hot, pool);
        match rng.below(100) {
            0..=19 => CallSpec::Persist {
                offset,
                len,
                relaxed: true,
            },
            20..=39 => CallSpec::Persist {
                offset,
                len,
                relaxed: false,
            },
            40..=51 => CallSpec::Flush {
                offset,
                len,
                relaxed: true,
            },
            52..=61 => CallSpec::Flush {
                offset,
                len,
                relaxed: false,
            },
            62..=71 => CallSpec::Drain,
            72..=91 => CallSpec::DeepPersist { offset, len },
            _ => {
                // Reads may also cover the pool header.
                let offset = rng.range(0, offset);
                CallSpec::Read {
                    offset,
                    len: len.min(pool.saturating_sub(offset)).max(1),
                }
            }
        }
    }

    /// A range in the usable part of the pool: in the hot region mostly,
    /// short mostly, sometimes word-aligned, sometimes spanning pages.
    fn range(rng: &mut Rng, size: Size, min: u64, hot: u64, pool: u64) -> (u64, u64) {
        let span = match size {
            Size::Small => hot,
            Size::Large => pool.saturating_sub(min),
        };
        let mut offset = min.saturating_add(rng.below(span.max(1)));
        let mut len = match rng.below(20) {
            0..=11 => rng.range(1, 72),
            12..=16 => rng.range(64, 300),
            17..=18 => rng.range(300, 1500),
            _ => rng.range(1500, 6000),
        };
        if rng.chance(1, 3) {
            offset &= !7;
            len = (len & !7).max(8);
        }
        let offset = offset.max(min).min(pool.saturating_sub(1));
        let len = len.min(pool.saturating_sub(offset)).max(1);
        (offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_in_the_usable_pool() {
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let size = if seed % 2 == 0 {
                Size::Small
            } else {
                Size::Large
            };
            let w = Workload::generate(&mut rng, size, 3, 4096, 4096 * 5);
            assert!(matches!(
                w.lanes[0].first(),
                Some(CallSpec::Persist { relaxed: true, .. })
            ));
            let mut writes = 0;
            for lane in &w.lanes {
                for c in lane {
                    if let Some((o, l)) = c.written() {
                        writes += 1;
                        assert!(o >= 4096 && l >= 1 && o + l <= 4096 * 5, "{c}");
                    }
                    if let CallSpec::Read { offset, len } = c {
                        assert!(*len >= 1 && offset + len <= 4096 * 5, "{c}");
                    }
                }
            }
            assert!(writes <= MAX_WRITES);
        }
    }

    /// The patterns that once exposed the initiator's "inline SEND overtaken
    /// by a later WRITE" bug are drawn by default: a non-RELAXED flush, then
    /// (no drain, persist or deep persist between) a call of the same lane
    /// that travels by WRITE, or a read, over an overlapping range.
    #[test]
    fn writes_and_reads_after_an_undrained_inline_flush_are_generated() {
        let (mut writes, mut reads) = (0, 0);
        for seed in 0..300 {
            let w = Workload::generate(&mut Rng::new(seed), Size::Small, 2, 4096, 4096 * 3);
            for lane in &w.lanes {
                let mut undrained: Vec<(u64, u64)> = Vec::new();
                for c in lane {
                    let (o, e) = match *c {
                        CallSpec::Read { offset, len } => (offset, offset + len),
                        _ => c.written().map_or((0, 0), |(o, l)| (o, o + l)),
                    };
                    let overlaps = undrained.iter().any(|&(a, b)| a < e && o < b);
                    if overlaps && c.travels_by_write() {
                        writes += 1;
                    }
                    if overlaps && matches!(c, CallSpec::Read { .. }) {
                        reads += 1;
                    }
                    match c {
                        CallSpec::Flush {
                            offset,
                            len,
                            relaxed: false,
                        } => undrained.push((*offset, offset + len)),
                        CallSpec::Flush { .. } | CallSpec::Read { .. } => {}
                        _ => undrained.clear(),
                    }
                }
            }
        }
        assert!(
            writes >= 20,
            "only {writes} overlapping WRITE-travelling calls"
        );
        // Reads start anywhere below their range (also in the header), so
        // fewer of them overlap.
        assert!(reads >= 1, "no overlapping read");
    }

    #[test]
    fn some_inline_ranges_become_whole_lines() {
        let mut aligned = 0;
        for seed in 0..100 {
            let w0 = Workload::generate(&mut Rng::new(seed), Size::Small, 2, 4096, 4096 * 3);
            let mut w = w0.clone();
            w.line_align_some(&mut Rng::new(seed + 1000), (1, 2), 4096, 4096 * 3);
            for (a, b) in w0.lanes.iter().flatten().zip(w.lanes.iter().flatten()) {
                match (a, b) {
                    (
                        CallSpec::Persist {
                            offset: o0,
                            len: l0,
                            relaxed: false,
                        },
                        CallSpec::Persist { offset, len, .. },
                    )
                    | (
                        CallSpec::Flush {
                            offset: o0,
                            len: l0,
                            relaxed: false,
                        },
                        CallSpec::Flush { offset, len, .. },
                    ) => {
                        // The new range covers the old one, in the pool.
                        assert!(offset <= o0 && o0 + l0 <= offset + len, "{a} -> {b}");
                        assert!(*offset >= 4096 && offset + len <= 4096 * 3);
                        if (offset, len) != (o0, l0) {
                            assert!(offset % 64 == 0 && len % 64 == 0 && *len >= 64);
                            aligned += 1;
                        }
                    }
                    _ => assert_eq!(a, b),
                }
            }
        }
        assert!(aligned >= 20, "only {aligned} ranges aligned");
    }

    #[test]
    fn same_seed_same_workload() {
        let a = Workload::generate(&mut Rng::new(5), Size::Large, 2, 4096, 8192 * 2);
        let b = Workload::generate(&mut Rng::new(5), Size::Large, 2, 4096, 8192 * 2);
        assert_eq!(a, b);
        assert!(a.calls() >= 30);
    }
}
