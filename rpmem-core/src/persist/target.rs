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
    deep_persist_range, persist_range, persist_range_streamed, FlushError, FlushMode, FlushOps,
    CACHE_LINE,
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
    /// A persist message that names another lane than the connection it
    /// arrived on (transports with one connection per lane: verbs).
    #[error("persist message lane field is {got}, but it arrived on lane {lane}")]
    LaneMismatch {
        /// The lane field.
        got: u32,
        /// The lane of the connection.
        lane: u32,
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
    /// Copy `data` to the pool at `offset`, with one store of at least 8
    /// bytes for every aligned 8-byte word (8-byte failure atomicity). Run
    /// by [`execute`] / [`TargetPlan::execute_step`] on a target that
    /// flushes CPU caches, the whole cache lines may go out with
    /// non-temporal stores ([`TargetMemory::copy_in_streaming`]); the plan's
    /// flush then skips them and keeps its fence.
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
    /// Run this one step on its own; returns the response bytes for
    /// `Respond`. The inline copy uses [`TargetMemory::copy_in`] and the
    /// flush covers every line of its range: a step run this way knows
    /// nothing of the steps before it. [`TargetPlan::execute_step`] runs a
    /// step as part of its plan (and may stream the inline copy).
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
    /// Whether [`execute_step`](Self::execute_step) offers the inline copy
    /// to [`TargetMemory::copy_in_streaming`] (inline data on a target
    /// that flushes CPU caches).
    stream_inline: bool,
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

    /// Whether running this plan with [`execute`] or
    /// [`execute_step`](Self::execute_step) lets the memory store the
    /// inline data's whole cache lines with non-temporal stores: a
    /// `PERSIST_SEND` message on a target whose flush mode is
    /// [`FlushMode::Cpu`], where those lines then need no write-back. Not
    /// with [`FlushMode::FenceOnly`] (eADR: cached stores need no
    /// write-back either, and cost less), never on an `msync` target, whose
    /// `msync` must find every byte in the page cache.
    pub fn streams_inline(&self) -> bool {
        self.stream_inline
    }

    /// Run step `index` of the plan (nothing, `Ok(None)`, past the last
    /// one); returns the response bytes for `Respond`. `streamed` carries
    /// what the inline copy leaves for the flush: start every plan with
    /// `(0, 0)` and hand the same value to each of its steps, in order.
    ///
    /// Where [`streams_inline`](Self::streams_inline) says so, the inline
    /// copy goes through [`TargetMemory::copy_in_streaming`] and `streamed`
    /// becomes the cache lines it reports stored with non-temporal stores,
    /// clipped to the whole lines of the copy (an unaligned report counts as
    /// none). The flush then skips those lines and still ends with its
    /// fence ([`crate::flush::persist_range_streamed`]): after the plan
    /// every byte of the range is durable exactly as with the full flush.
    /// Every other step runs as [`TargetStep::execute`].
    pub fn execute_step<M: TargetMemory + ?Sized>(
        &self,
        index: usize,
        mem: &mut M,
        streamed: &mut (u64, u64),
    ) -> Result<Option<[u8; RESP_LEN]>, FlushError> {
        let Some(step) = self.steps.get(index) else {
            return Ok(None);
        };
        match *step {
            TargetStep::CopyInline { offset, data } if self.stream_inline => {
                let reported = mem.copy_in_streaming(offset, data);
                let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
                *streamed = whole_lines_within(offset, len, reported);
                Ok(None)
            }
            TargetStep::Flush { mode, offset, len } => {
                persist_range_streamed(mem, mode, offset, len, *streamed).map(|()| None)
            }
            _ => step.execute(mem),
        }
    }
}

/// The part of `reported` (cache lines `[from, to)`) that lies within the
/// whole cache lines of `[offset, offset + len)`; `(0, 0)` when that is
/// nothing or `reported` is not line aligned.
fn whole_lines_within(offset: u64, len: u64, reported: (u64, u64)) -> (u64, u64) {
    let line = CACHE_LINE - 1;
    let (from, to) = reported;
    if from & line != 0 || to & line != 0 {
        return (0, 0);
    }
    let Some(first) = offset.checked_add(line).map(|o| o & !line) else {
        return (0, 0);
    };
    let Some(end) = offset.checked_add(len).map(|e| e & !line) else {
        return (0, 0);
    };
    let (from, to) = (from.max(first), to.min(end));
    if from < to {
        (from, to)
    } else {
        (0, 0)
    }
}

/// A pool mapping the target writes into.
pub trait TargetMemory: FlushOps {
    /// Copy `data` into the pool at `offset` (already validated). Every
    /// aligned 8-byte word inside the range must be written with one 8-byte
    /// store, so that after a crash it holds either its old or its new value.
    fn copy_in(&mut self, offset: u64, data: &[u8]);

    /// Copy `data` into the pool at `offset` (already validated) like
    /// [`copy_in`](Self::copy_in), except that whole cache lines of the
    /// range may be stored with non-temporal stores (x86 `movntdq` /
    /// `movnti`: every aligned 8-byte word still by one store of at least
    /// 8 bytes, at an aligned address). Returns the cache lines
    /// `[from, to)` stored that way: every byte of them by this call, with
    /// non-temporal stores only. Such lines are not left dirty in the
    /// cache; the bytes wait in write-combining buffers until the next
    /// [`fence`](FlushOps::fence) and may reach memory, word by word, at
    /// any time before it. Return an empty pair (`from == to`) when
    /// nothing was streamed.
    ///
    /// Called only by plans whose flush is a CPU cache flush
    /// ([`TargetPlan::streams_inline`]); the plan's flush then skips the
    /// returned lines and keeps its fence. The default streams nothing: it
    /// is `copy_in`.
    fn copy_in_streaming(&mut self, offset: u64, data: &[u8]) -> (u64, u64) {
        self.copy_in(offset, data);
        (offset, offset)
    }
}

/// Run every step of `plan` ([`TargetPlan::execute_step`], so the inline
/// copy may be streamed); returns the response bytes to send. Sending them
/// after this returns is always safe.
pub fn execute<M: TargetMemory + ?Sized>(
    plan: &TargetPlan<'_>,
    mem: &mut M,
) -> Result<Option<[u8; RESP_LEN]>, FlushError> {
    let mut resp = None;
    let mut streamed = (0, 0);
    for index in 0..plan.steps().len() {
        if let Some(r) = plan.execute_step(index, mem, &mut streamed)? {
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

    /// [`handle_persist_msg`](Self::handle_persist_msg) for a message that
    /// arrived on the connection of lane `lane`: its lane field must name
    /// that lane (the answer goes back on the same connection).
    pub fn handle_persist_msg_on_lane<'a>(
        &self,
        lane: u32,
        bytes: &'a [u8],
    ) -> Result<TargetPlan<'a>, TargetError> {
        let plan = self.handle_persist_msg(bytes)?;
        if plan.msg().lane != lane {
            return Err(TargetError::LaneMismatch {
                got: plan.msg().lane,
                lane,
            });
        }
        Ok(plan)
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
        // Streaming pays where the inline copy would otherwise be written
        // back line by line. With eADR (`FenceOnly`) cached stores are
        // durable as they are, and cheaper than non-temporal ones; `msync`
        // must find every byte in the page cache.
        let stream_inline = msg.mode == PersistMode::PersistSend && mode == FlushMode::Cpu;
        TargetPlan {
            msg,
            steps,
            stream_inline,
        }
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

#[cfg(rpmem_mutants)]
fn mutant(m: Mutant) -> bool {
    use crate::flush::mutants::{active, Mutant as M};
    active(match m {
        Mutant::RespondBeforeFlush => M::RespondBeforeFlush,
        Mutant::InlineWithoutFlush => M::InlineWithoutFlush,
        Mutant::DeepAsPlain => M::DeepAsPlain,
    })
}

#[cfg(not(rpmem_mutants))]
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

    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// What a plan asked of the memory, in order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Ev {
        Copy(u64, u64),
        CopyStreaming(u64, u64),
        Line(u64),
        Fence,
        Msync(u64, u64),
    }

    /// What a test memory's `copy_in_streaming` reports for `(offset, len)`.
    type Report = fn(u64, u64) -> (u64, u64);

    /// A memory that records every call; `stream` says what
    /// `copy_in_streaming` reports (`None`: the trait's default).
    struct Rec {
        ev: Vec<Ev>,
        stream: Option<Report>,
    }

    impl Rec {
        fn new(stream: Option<Report>) -> Rec {
            Rec {
                ev: Vec::new(),
                stream,
            }
        }
    }

    impl FlushOps for Rec {
        fn flush_line(&mut self, offset: u64) {
            self.ev.push(Ev::Line(offset));
        }
        fn fence(&mut self) {
            self.ev.push(Ev::Fence);
        }
        fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
            self.ev.push(Ev::Msync(offset, len));
            Ok(())
        }
    }

    impl TargetMemory for Rec {
        fn copy_in(&mut self, offset: u64, data: &[u8]) {
            self.ev.push(Ev::Copy(offset, data.len() as u64));
        }
        fn copy_in_streaming(&mut self, offset: u64, data: &[u8]) -> (u64, u64) {
            let len = data.len() as u64;
            match self.stream {
                Some(f) => {
                    self.ev.push(Ev::CopyStreaming(offset, len));
                    f(offset, len)
                }
                None => {
                    self.copy_in(offset, data);
                    (offset, offset)
                }
            }
        }
    }

    /// Streams every whole line of the copy, as rpmemd's pool does.
    fn whole(offset: u64, len: u64) -> (u64, u64) {
        ((offset + 63) & !63, (offset + len) & !63)
    }

    fn inline_msg(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::from(msg(PersistMode::PersistSend, offset, data.len() as u64));
        bytes.extend_from_slice(data);
        bytes
    }

    fn run(flush: FlushMode, mem: &mut Rec, offset: u64, len: usize) -> Option<[u8; RESP_LEN]> {
        let data = std::vec![0x5a; len];
        let bytes = inline_msg(offset, &data);
        let plan = target(flush).handle_persist_msg(&bytes).unwrap();
        let resp = execute(&plan, mem).unwrap();
        assert_eq!(resp, Some(plan.response()));
        resp
    }

    #[test]
    fn streamed_inline_lines_are_not_flushed_and_the_fence_stays() {
        let mut mem = Rec::new(Some(whole));
        run(FlushMode::Cpu, &mut mem, 4100, 300);
        // Whole lines [4160, 4352) streamed; the partial first and last
        // lines flushed, then the fence.
        assert_eq!(
            mem.ev,
            [
                Ev::CopyStreaming(4100, 300),
                Ev::Line(4096),
                Ev::Line(4352),
                Ev::Fence
            ]
        );
        // Every line streamed: nothing to flush, the fence all the same.
        let mut mem = Rec::new(Some(whole));
        run(FlushMode::Cpu, &mut mem, 4096, 256);
        assert_eq!(mem.ev, [Ev::CopyStreaming(4096, 256), Ev::Fence]);
    }

    #[test]
    fn a_memory_that_streams_nothing_gets_the_full_flush() {
        let mut mem = Rec::new(None);
        run(FlushMode::Cpu, &mut mem, 4100, 200);
        assert_eq!(
            mem.ev,
            [
                Ev::Copy(4100, 200),
                Ev::Line(4096),
                Ev::Line(4160),
                Ev::Line(4224),
                Ev::Line(4288),
                Ev::Fence
            ]
        );
    }

    #[test]
    fn fence_only_targets_copy_through_the_cache_and_fence() {
        let mut mem = Rec::new(Some(whole));
        run(FlushMode::FenceOnly, &mut mem, 4100, 300);
        assert_eq!(mem.ev, [Ev::Copy(4100, 300), Ev::Fence]);
    }

    #[test]
    fn msync_targets_never_stream_and_still_msync() {
        let mut mem = Rec::new(Some(whole));
        run(FlushMode::Msync, &mut mem, 4100, 5000);
        assert_eq!(mem.ev, [Ev::Copy(4100, 5000), Ev::Msync(4096, 8192)]);
        let plan_bytes = inline_msg(4100, &[1; 8]);
        let plan = target(FlushMode::Msync)
            .handle_persist_msg(&plan_bytes)
            .unwrap();
        assert!(!plan.streams_inline());
    }

    #[test]
    fn only_inline_copies_stream() {
        for mode in [PersistMode::FlushWrite, PersistMode::DeepPersist] {
            let bytes = msg(mode, 4096, 256);
            let plan = target(FlushMode::Cpu).handle_persist_msg(&bytes).unwrap();
            assert!(!plan.streams_inline());
            let mut mem = Rec::new(Some(whole));
            execute(&plan, &mut mem).unwrap();
            assert_eq!(
                mem.ev,
                [
                    Ev::Line(4096),
                    Ev::Line(4160),
                    Ev::Line(4224),
                    Ev::Line(4288),
                    Ev::Fence
                ],
                "{mode:?}"
            );
        }
    }

    #[test]
    fn bad_reports_are_clipped_or_ignored() {
        // Reaching past the copy: clipped to its whole lines.
        let mut mem = Rec::new(Some(|_, _| (0, 1 << 20)));
        run(FlushMode::Cpu, &mut mem, 4100, 300);
        assert_eq!(&mem.ev[1..], [Ev::Line(4096), Ev::Line(4352), Ev::Fence]);
        // Not line aligned: ignored, every line flushed.
        let mut mem = Rec::new(Some(|o, l| (o, o + l)));
        run(FlushMode::Cpu, &mut mem, 4100, 100);
        assert_eq!(&mem.ev[1..], [Ev::Line(4096), Ev::Line(4160), Ev::Fence]);
    }

    #[test]
    fn stepping_alone_does_not_stream() {
        let data = [7u8; 256];
        let bytes = inline_msg(4096, &data);
        let plan = target(FlushMode::Cpu).handle_persist_msg(&bytes).unwrap();
        assert!(plan.streams_inline());
        let mut mem = Rec::new(Some(whole));
        for step in plan.steps() {
            step.execute(&mut mem).unwrap();
        }
        assert_eq!(mem.ev.first(), Some(&Ev::Copy(4096, 256)));
        assert_eq!(
            mem.ev.iter().filter(|e| matches!(e, Ev::Line(_))).count(),
            4
        );
        // Stepping through the plan with its state streams; a step past the
        // end does nothing.
        let mut mem = Rec::new(Some(whole));
        let mut streamed = (0, 0);
        for i in 0..plan.steps().len() + 1 {
            plan.execute_step(i, &mut mem, &mut streamed).unwrap();
        }
        assert_eq!(streamed, (4096, 4352));
        assert_eq!(mem.ev, [Ev::CopyStreaming(4096, 256), Ev::Fence]);
    }

    #[rstest]
    #[case(100, 300, (128, 384), (128, 384))]
    #[case(100, 300, (0, 4096), (128, 384))]
    #[case(100, 300, (64, 128), (0, 0))]
    #[case(100, 30, (64, 192), (0, 0))]
    #[case(100, 300, (130, 384), (0, 0))]
    #[case(100, 300, (384, 128), (0, 0))]
    #[case(u64::MAX - 100, 100, (0, !63), (0, 0))]
    fn whole_lines_within_cases(
        #[case] offset: u64,
        #[case] len: u64,
        #[case] reported: (u64, u64),
        #[case] want: (u64, u64),
    ) {
        assert_eq!(whole_lines_within(offset, len, reported), want);
    }

    proptest! {
        /// Whatever the memory reports, every line of the range is either
        /// flushed or among the whole lines the copy streamed, no line
        /// outside the range is touched, and the last event is the fence.
        #[test]
        fn every_line_is_flushed_or_streamed_then_fenced(
            offset in 4096u64..8192,
            len in 1usize..1000,
            from in 0u64..200,
            to in 0u64..200,
        ) {
            let (from, to) = (4096 + from * 64, 4096 + to * 64);
            let data = std::vec![1u8; len];
            let bytes = inline_msg(offset, &data);
            let plan = target(FlushMode::Cpu).handle_persist_msg(&bytes).unwrap();
            let mut mem = Rec::new(None);
            // A memory that reports (from, to), whatever it is.
            let mut streamed = (0, 0);
            for i in 0..plan.steps().len() {
                if i == 0 {
                    mem.ev.push(Ev::CopyStreaming(offset, len as u64));
                    streamed = whole_lines_within(offset, len as u64, (from, to));
                    continue;
                }
                plan.execute_step(i, &mut mem, &mut streamed).unwrap();
            }
            let end = offset + len as u64;
            let mut line = offset & !63;
            while line < end {
                let flushed = mem.ev.contains(&Ev::Line(line));
                let skipped = streamed.0 <= line && line < streamed.1
                    && line >= offset && line + 64 <= end;
                prop_assert!(flushed != skipped, "line {line}: flushed {flushed}, skipped {skipped}");
                line += 64;
            }
            for e in &mem.ev {
                if let Ev::Line(l) = e {
                    prop_assert!(*l >= offset & !63 && *l < end);
                }
            }
            prop_assert_eq!(mem.ev.last(), Some(&Ev::Fence));
        }
    }
}
