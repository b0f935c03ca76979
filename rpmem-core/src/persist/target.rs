//! The target: validating persist messages and the ranges of emulated
//! WRITE / READ, and turning a message into steps.
//!
//! PMDK's rpmemd checks only the lane and that `[addr, addr + size)` lies in
//! the pool, then runs `pmem_memcpy_persist` (inline), `pmem_persist` /
//! `msync` (flush) or its deep persist. We check more: every flag bit, that
//! the range does not touch the pool header (`min_offset`), overflow, and
//! that inline data is exactly `size` bytes and at most `inline_max`.

use heapless::Vec;

use super::PersistMode;
use crate::flush::{
    deep_persist_range, persist_range, FlushError, FlushMode, FlushOps, CACHE_LINE,
};
use crate::policy::Method;
use crate::wire::persist::{self as wire, PersistMsg, PersistMsgRepr, PersistRespRepr, RESP_LEN};

/// Configuration of the target side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetParams {
    /// Lanes of the connection.
    pub nlanes: u32,
    /// Size of the pool in bytes.
    pub pool_size: u64,
    /// Lowest offset the data path may write (4096 with headers, else 0).
    pub min_offset: u64,
    /// Most data bytes one inline persist message may carry.
    pub inline_max: u64,
    /// How this target makes bytes durable.
    pub flush_mode: FlushMode,
    /// Method announced to the initiator. Informational: like PMDK's
    /// rpmemd, the target executes every valid message whatever the method.
    pub method: Method,
}

/// Target parameters that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetConfigError {
    /// `nlanes` is 0.
    #[error("nlanes is 0: a connection needs at least one lane")]
    NoLanes,
    /// `pool_size` is 0.
    #[error("pool_size is 0")]
    EmptyPool,
    /// `min_offset >= pool_size`.
    #[error("min_offset {min_offset} leaves no usable byte in a pool of {pool_size} bytes")]
    MinOffsetBeyondPool {
        /// The minimum offset.
        min_offset: u64,
        /// The pool size.
        pool_size: u64,
    },
}

/// A request the target refuses. The connection should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Undecodable persist message.
    #[error("malformed persist message: {0}")]
    Msg(wire::Error),
    /// Lane out of range.
    #[error("{what}: lane {lane} does not exist (the connection has {nlanes} lanes)")]
    BadLane {
        /// What carried it: `"persist message lane field"`, `"WRITE"`, `"READ"`.
        what: &'static str,
        /// The lane named.
        lane: u32,
        /// Lanes of the connection.
        nlanes: u32,
    },
    /// A write below `min_offset`.
    #[error("{what}: offset {offset} is below {min}; the first {min} bytes hold the pool header")]
    BelowMinOffset {
        /// What carried it (`"persist message addr field"`, `"WRITE"`).
        what: &'static str,
        /// The offset named.
        offset: u64,
        /// Lowest allowed offset.
        min: u64,
    },
    /// A range outside the pool (or overflowing).
    #[error("{what}: range at offset {offset} of length {len} does not fit in the pool of {pool_size} bytes")]
    OutOfPool {
        /// What carried it.
        what: &'static str,
        /// The offset named.
        offset: u64,
        /// The length named.
        len: u64,
        /// Pool size.
        pool_size: u64,
    },
    /// Inline data longer than the inline buffer.
    #[error("PERSIST_SEND message carries {size} data bytes (size field), more than the inline buffer of {max}")]
    InlineTooLarge {
        /// The size field.
        size: u64,
        /// The inline buffer size.
        max: u64,
    },
}

/// One thing the target does for a persist message, in order. A driver (or
/// the simulator) may stop between any two steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetStep<'a> {
    /// Copy `data` to the pool at `offset`, with 8-byte stores for every
    /// aligned 8-byte word (8-byte failure atomicity).
    CopyInline {
        /// Pool offset.
        offset: u64,
        /// The inline data.
        data: &'a [u8],
    },
    /// Make `[offset, offset + len)` durable with `mode`
    /// ([`crate::flush::persist_range`]).
    Flush {
        /// How.
        mode: FlushMode,
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Make `[offset, offset + len)` durable down to the lowest domain
    /// ([`crate::flush::deep_persist_range`]).
    DeepFlush {
        /// How.
        mode: FlushMode,
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Send these response bytes (`rpmem_msg_persist_resp`).
    Respond([u8; RESP_LEN]),
}

impl TargetStep<'_> {
    /// Run this one step; returns the response bytes for `Respond`.
    pub fn execute<M: TargetMemory + ?Sized>(
        &self,
        mem: &mut M,
    ) -> Result<Option<[u8; RESP_LEN]>, FlushError> {
        match *self {
            TargetStep::CopyInline { offset, data } => {
                mem.copy_in(offset, data);
                Ok(None)
            }
            TargetStep::Flush { mode, offset, len } => {
                persist_range(mem, mode, offset, len).map(|()| None)
            }
            TargetStep::DeepFlush { mode, offset, len } => {
                deep_persist_range(mem, mode, offset, len).map(|()| None)
            }
            TargetStep::Respond(bytes) => Ok(Some(bytes)),
        }
    }
}

/// The steps for one validated persist message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPlan<'a> {
    msg: PersistMsgRepr,
    steps: Vec<TargetStep<'a>, 3>,
}

impl<'a> TargetPlan<'a> {
    /// The message the plan answers.
    pub fn msg(&self) -> &PersistMsgRepr {
        &self.msg
    }

    /// The steps, in execution order.
    pub fn steps(&self) -> &[TargetStep<'a>] {
        &self.steps
    }

    /// The response bytes the plan sends.
    pub fn response(&self) -> [u8; RESP_LEN] {
        PersistRespRepr::answering(&self.msg).to_bytes()
    }
}

/// A pool mapping the target writes into.
pub trait TargetMemory: FlushOps {
    /// Copy `data` into the pool at `offset` (already validated). Every
    /// aligned 8-byte word inside the range must be written with one 8-byte
    /// store, so that after a crash it holds either its old or its new value.
    fn copy_in(&mut self, offset: u64, data: &[u8]);
}

/// Run every step of `plan`; returns the response bytes to send. Sending
/// them after this returns is always safe.
pub fn execute<M: TargetMemory + ?Sized>(
    plan: &TargetPlan<'_>,
    mem: &mut M,
) -> Result<Option<[u8; RESP_LEN]>, FlushError> {
    let mut resp = None;
    for step in plan.steps() {
        if let Some(r) = step.execute(mem)? {
            resp = Some(r);
        }
    }
    Ok(resp)
}

/// The target side of a connection: stateless per message, so one value
/// serves every lane (and every thread: it is `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    p: TargetParams,
}

impl Target {
    /// A target for these parameters.
    pub fn new(p: TargetParams) -> Result<Target, TargetConfigError> {
        if p.nlanes == 0 {
            return Err(TargetConfigError::NoLanes);
        }
        if p.pool_size == 0 {
            return Err(TargetConfigError::EmptyPool);
        }
        if p.min_offset >= p.pool_size {
            return Err(TargetConfigError::MinOffsetBeyondPool {
                min_offset: p.min_offset,
                pool_size: p.pool_size,
            });
        }
        Ok(Target { p })
    }

    /// The parameters.
    pub fn params(&self) -> &TargetParams {
        &self.p
    }

    /// Decode and validate one received persist message (exactly the bytes
    /// received) and plan its execution.
    pub fn handle_persist_msg<'a>(&self, bytes: &'a [u8]) -> Result<TargetPlan<'a>, TargetError> {
        let (msg, data) = self.check_persist_msg(bytes)?;
        Ok(self.plan(msg, data, None))
    }

    /// Decode and validate a persist message; its header and inline data.
    fn check_persist_msg<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<(PersistMsgRepr, &'a [u8]), TargetError> {
        let view = PersistMsg::new_checked(bytes).map_err(TargetError::Msg)?;
        let msg = PersistMsgRepr::parse(&view).map_err(TargetError::Msg)?;
        self.check_lane("persist message lane field", msg.lane)?;
        self.check_range(
            "persist message addr/size fields",
            msg.offset,
            msg.size,
            true,
        )?;
        if msg.mode == PersistMode::PersistSend && msg.size > self.p.inline_max {
            return Err(TargetError::InlineTooLarge {
                size: msg.size,
                max: self.p.inline_max,
            });
        }
        Ok((msg, view.data()))
    }

    /// [`handle_persist_msg`](Self::handle_persist_msg) for a lane whose
    /// pool lines `[written_back.0, written_back.1)` (cache-line aligned)
    /// were all written back (`flush_line`, no fence) after this lane last
    /// stored into them, and not stored into by this lane since.
    ///
    /// The plan is the same except for a persist (not inline, not deep) in
    /// [`FlushMode::Cpu`] whose range starts inside those lines: its flush
    /// starts after them. Every line of the range that is not skipped is
    /// flushed as usual, the last line of the range always is, and the
    /// fence before the response is always there, so after the plan every
    /// line of the range is durable exactly as with the full plan (the
    /// skipped lines' write-back is ordered by that fence). In every other
    /// case `written_back` is ignored.
    pub fn handle_persist_msg_written_back<'a>(
        &self,
        bytes: &'a [u8],
        written_back: (u64, u64),
    ) -> Result<TargetPlan<'a>, TargetError> {
        let (msg, data) = self.check_persist_msg(bytes)?;
        Ok(self.plan(msg, data, Some(written_back)))
    }

    /// Validate an emulated WRITE of `[offset, offset + len)` on `lane`
    /// before receiving its bytes straight into the pool.
    pub fn check_write(&self, lane: u32, offset: u64, len: u64) -> Result<(), TargetError> {
        self.check_lane("WRITE", lane)?;
        self.check_range("WRITE", offset, len, true)
    }

    /// Validate an emulated READ of `[offset, offset + len)` on `lane`.
    /// Reading the pool header is allowed (as `rpmem_read` allows it).
    pub fn check_read(&self, lane: u32, offset: u64, len: u64) -> Result<(), TargetError> {
        self.check_lane("READ", lane)?;
        self.check_range("READ", offset, len, false)
    }

    fn check_lane(&self, what: &'static str, lane: u32) -> Result<(), TargetError> {
        if lane >= self.p.nlanes {
            return Err(TargetError::BadLane {
                what,
                lane,
                nlanes: self.p.nlanes,
            });
        }
        Ok(())
    }

    fn check_range(
        &self,
        what: &'static str,
        offset: u64,
        len: u64,
        writes: bool,
    ) -> Result<(), TargetError> {
        if writes && offset < self.p.min_offset {
            return Err(TargetError::BelowMinOffset {
                what,
                offset,
                min: self.p.min_offset,
            });
        }
        let fits = match offset.checked_add(len) {
            Some(end) => end <= self.p.pool_size,
            None => false,
        };
        if !fits {
            return Err(TargetError::OutOfPool {
                what,
                offset,
                len,
                pool_size: self.p.pool_size,
            });
        }
        Ok(())
    }

    fn plan<'a>(
        &self,
        msg: PersistMsgRepr,
        data: &'a [u8],
        written_back: Option<(u64, u64)>,
    ) -> TargetPlan<'a> {
        let resp = TargetStep::Respond(PersistRespRepr::answering(&msg).to_bytes());
        let (offset, len, mode) = (msg.offset, msg.size, self.p.flush_mode);
        let flush = match msg.mode {
            PersistMode::DeepPersist if !mutant(Mutant::DeepAsPlain) => {
                Some(TargetStep::DeepFlush { mode, offset, len })
            }
            PersistMode::PersistSend if mutant(Mutant::InlineWithoutFlush) => None,
            PersistMode::FlushWrite if mode == FlushMode::Cpu => {
                let (offset, len) = match written_back {
                    Some(lines) => skip_written_back(offset, len, lines),
                    None => (offset, len),
                };
                Some(TargetStep::Flush { mode, offset, len })
            }
            _ => Some(TargetStep::Flush { mode, offset, len }),
        };
        let mut steps = Vec::new();
        // Capacity 3 holds every combination pushed below.
        if msg.mode == PersistMode::PersistSend {
            let _ = steps.push(TargetStep::CopyInline { offset, data });
        }
        if mutant(Mutant::RespondBeforeFlush) {
            let _ = steps.push(resp);
            if let Some(f) = flush {
                let _ = steps.push(f);
            }
        } else {
            if let Some(f) = flush {
                let _ = steps.push(f);
            }
            let _ = steps.push(resp);
        }
        TargetPlan { msg, steps }
    }
}

/// The part of `[offset, offset + len)` still to flush when the lines
/// `[lines.0, lines.1)` were written back already: the range minus those
/// lines when they cover its first line, never less than its last line.
/// Otherwise (they do not cover the first line, the range is empty, or it
/// wraps) the range itself.
fn skip_written_back(offset: u64, len: u64, lines: (u64, u64)) -> (u64, u64) {
    let (from, to) = lines;
    let line_mask = !(CACHE_LINE - 1);
    let Some(end) = offset.checked_add(len) else {
        return (offset, len);
    };
    if len == 0 || from & !line_mask != 0 || to & !line_mask != 0 {
        return (offset, len);
    }
    let first = offset & line_mask;
    // `len > 0`, so `end - 1` does not underflow.
    let last = end.wrapping_sub(1) & line_mask;
    if !(from <= first && first < to) {
        return (offset, len);
    }
    let start = to.min(last).max(offset);
    (start, end.saturating_sub(start))
}

/// The target's seeded bugs (feature `mutants`).
#[derive(Clone, Copy)]
enum Mutant {
    RespondBeforeFlush,
    InlineWithoutFlush,
    DeepAsPlain,
}

#[cfg(feature = "mutants")]
fn mutant(m: Mutant) -> bool {
    use crate::flush::mutants::{active, Mutant as M};
    active(match m {
        Mutant::RespondBeforeFlush => M::RespondBeforeFlush,
        Mutant::InlineWithoutFlush => M::InlineWithoutFlush,
        Mutant::DeepAsPlain => M::DeepAsPlain,
    })
}

#[cfg(not(feature = "mutants"))]
fn mutant(_: Mutant) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // The written-back lines cover the start: flush from their end.
    #[case(100, 1000, (64, 640), (640, 460))]
    #[case(64, 1024, (64, 640), (640, 448))]
    // They cover everything: the last line is still flushed.
    #[case(128, 128, (128, 256), (192, 64))]
    #[case(128, 100, (0, 4096), (192, 36))]
    // One line only: nothing to skip.
    #[case(130, 10, (128, 192), (130, 10))]
    // They do not cover the first line: the whole range.
    #[case(100, 1000, (128, 640), (100, 1000))]
    #[case(100, 1000, (0, 64), (100, 1000))]
    #[case(1000, 100, (0, 512), (1000, 100))]
    // Unaligned report, empty or wrapping range: the whole range.
    #[case(100, 1000, (64, 650), (100, 1000))]
    #[case(100, 1000, (60, 640), (100, 1000))]
    #[case(100, 0, (64, 640), (100, 0))]
    #[case(u64::MAX - 10, 100, (u64::MAX - 63, u64::MAX - 63), (u64::MAX - 10, 100))]
    fn skip_written_back_cases(
        #[case] offset: u64,
        #[case] len: u64,
        #[case] lines: (u64, u64),
        #[case] want: (u64, u64),
    ) {
        assert_eq!(skip_written_back(offset, len, lines), want);
    }

    fn target(flush_mode: FlushMode) -> Target {
        Target::new(TargetParams {
            nlanes: 1,
            pool_size: 1 << 20,
            min_offset: 0,
            inline_max: 8192,
            flush_mode,
            method: Method::Gpspm,
        })
        .unwrap()
    }

    fn msg(mode: PersistMode, offset: u64, size: u64) -> [u8; wire::HEADER_LEN] {
        PersistMsgRepr {
            mode,
            completion: false,
            lane: 0,
            offset,
            size,
        }
        .to_bytes()
    }

    #[rstest]
    #[case(FlushMode::Cpu, PersistMode::DeepPersist)]
    #[case(FlushMode::Msync, PersistMode::FlushWrite)]
    #[case(FlushMode::FenceOnly, PersistMode::FlushWrite)]
    #[case(FlushMode::Msync, PersistMode::DeepPersist)]
    fn written_back_lines_change_only_cpu_flush_write_plans(
        #[case] flush: FlushMode,
        #[case] mode: PersistMode,
    ) {
        let t = target(flush);
        let bytes = msg(mode, 4096, 65536);
        assert_eq!(
            t.handle_persist_msg_written_back(&bytes, (4096, 4096 + 65536))
                .unwrap(),
            t.handle_persist_msg(&bytes).unwrap()
        );
    }

    #[test]
    fn a_cpu_flush_write_skips_and_keeps_its_fence_and_response() {
        let t = target(FlushMode::Cpu);
        let bytes = msg(PersistMode::FlushWrite, 4096, 65536);
        let plan = t
            .handle_persist_msg_written_back(&bytes, (4096, 4096 + 32768))
            .unwrap();
        let full = t.handle_persist_msg(&bytes).unwrap();
        assert_eq!(plan.msg(), full.msg());
        assert_eq!(plan.response(), full.response());
        assert_eq!(
            plan.steps(),
            &[
                TargetStep::Flush {
                    mode: FlushMode::Cpu,
                    offset: 4096 + 32768,
                    len: 32768
                },
                TargetStep::Respond(full.response())
            ]
        );
        // Invalid messages are refused as by handle_persist_msg.
        let bad = msg(PersistMode::FlushWrite, 1 << 20, 64);
        assert_eq!(
            t.handle_persist_msg_written_back(&bad, (0, 64)).err(),
            t.handle_persist_msg(&bad).err()
        );
    }
}
