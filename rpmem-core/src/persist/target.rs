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
use crate::flush::{deep_persist_range, persist_range, FlushError, FlushMode, FlushOps};
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
        Ok(self.plan(msg, view.data()))
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

    fn plan<'a>(&self, msg: PersistMsgRepr, data: &'a [u8]) -> TargetPlan<'a> {
        let resp = TargetStep::Respond(PersistRespRepr::answering(&msg).to_bytes());
        let (offset, len, mode) = (msg.offset, msg.size, self.p.flush_mode);
        let flush = match msg.mode {
            PersistMode::DeepPersist if !mutant(Mutant::DeepAsPlain) => {
                Some(TargetStep::DeepFlush { mode, offset, len })
            }
            PersistMode::PersistSend if mutant(Mutant::InlineWithoutFlush) => None,
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
