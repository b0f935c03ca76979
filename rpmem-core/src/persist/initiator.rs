//! The initiator's per-lane engine.
//!
//! # What each call posts
//!
//! | call | relaxed | posts |
//! |---|---|---|
//! | `persist` | no | inline SENDs (`PERSIST_SEND`, at most `inline_max` data bytes each), then the drain below |
//! | `persist` | yes | WRITEs, then the drain below |
//! | `deep_persist` | — | WRITEs, the drain below, one SEND (`DEEP_PERSIST`) for the whole range |
//! | `flush` | no | inline SENDs; returns once they are posted |
//! | `flush` | yes | WRITEs; returns once they are posted |
//! | `drain` | — | APM: one READ (8 bytes at offset 0) if WRITEs were posted since the last one; GPSPM: one SEND (`FLUSH_WRITE`) per range written since the last drain (ranges closer than 4 KiB are merged); RDMA FLUSH: one FLUSH per such range; then waits for every outstanding response, READ and FLUSH |
//! | `read` | — | READs of at most `max_op_len` bytes, pipelined |
//!
//! So `persist` = `flush` + `drain`: a successful persist also makes every
//! earlier flush of the lane durable, and a relaxed persist posts exactly
//! PMDK's sequences (APM: WRITE + READ; GPSPM: WRITE + SEND), or, with RDMA
//! FLUSH, WRITE + FLUSH as librpma does.
//!
//! # Inline data before WRITEs and READs
//!
//! A non-relaxed `flush` returns once its inline SENDs are posted. The NIC
//! places a later WRITE as soon as it arrives, but the target CPU copies an
//! inline message's data into the pool only when it handles the message,
//! possibly after that WRITE — the older inline bytes would then overwrite
//! the newer ones; a READ could likewise miss them. So the lane posts no
//! WRITE and no user READ while one of its `PERSIST_SEND` messages is
//! unanswered: the call waits (posts nothing, like on a full work queue)
//! until those responses arrived. Consecutive inline SENDs still pipeline
//! (up to `send_window`), and `FLUSH_WRITE`/`DEEP_PERSIST` messages,
//! APM's flushing READ and RDMA FLUSHes never hold anything back.
//!
//! # Work queue
//!
//! Every WRITE, READ, SEND and FLUSH takes one send-queue slot until a
//! signaled completion at or after it is reaped. READs, SENDs and FLUSHes
//! are signaled; WRITEs
//! are signaled every `k = max(1, wq_size / 2)`-th, so at most `k - 1`
//! unsignaled operations follow a signaled one and a full queue always holds
//! a signaled operation to wait for. The engine never has more than
//! `wq_size` operations outstanding; when the queue is full it posts nothing
//! until [`InitiatorLane::handle_completion`] frees room.

use heapless::{Deque, Vec};

use super::{
    Completion, Op, OpKind, PersistMode, PersistMsgRepr, PersistRespRepr, ReadDest, FLUSH_READ_LEN,
    FLUSH_READ_OFFSET, FLUSH_RELAXED, MAX_SEND_WINDOW, PERSIST_RELAXED,
};
use crate::policy::{Method, Placement};
use crate::wire::persist as wire;

/// Most signaled operations a lane tracks at once.
const SIGNALED_CAP: usize = 32;
/// Most disjoint written ranges GPSPM and RDMA FLUSH remember for the next
/// drain.
const PENDING_CAP: usize = 8;
/// Ranges this close (bytes) are merged into one flush request.
const MERGE_GAP: u64 = 4096;
/// Alignment kept at inline chunk boundaries (8-byte failure atomicity).
const ATOMIC: u64 = 8;
/// Longest range one RDMA FLUSH covers (its length field, the RETH's DMA
/// length, has 32 bits); longer ranges take several.
pub const MAX_FLUSH_LEN: u64 = 1 << 31;

/// Configuration of one lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneParams {
    /// This lane's number.
    pub lane: u32,
    /// Lanes of the connection (after negotiation).
    pub nlanes: u32,
    /// Persistency method announced by the target.
    pub method: Method,
    /// Size of the pool (and of the local region) in bytes.
    pub pool_size: u64,
    /// Lowest offset the data path may write: 4096 for pools with headers,
    /// 0 for pools without (`NOHDRS`).
    pub min_offset: u64,
    /// Most data bytes one inline persist message carries (PMDK's
    /// `buff_size`, 8192 by default; the message is 24 bytes longer).
    pub inline_max: u64,
    /// Send-queue depth of the lane (PMDK default 50).
    pub wq_size: u32,
    /// Persist messages that may await their response at once (PMDK: 1;
    /// the target must post as many receive buffers per lane).
    pub send_window: u32,
    /// Largest WRITE or READ the transport takes (`max_msg_size`).
    pub max_op_len: u64,
    /// How the transport places data.
    pub transport: Placement,
}

impl LaneParams {
    /// Parameters with PMDK's defaults: 8192-byte inline buffer, work queue
    /// of 50, one message in flight, 1 GiB operations.
    pub fn new(
        lane: u32,
        nlanes: u32,
        method: Method,
        pool_size: u64,
        min_offset: u64,
        transport: Placement,
    ) -> LaneParams {
        LaneParams {
            lane,
            nlanes,
            method,
            pool_size,
            min_offset,
            inline_max: super::DEFAULT_INLINE_MAX,
            wq_size: super::DEFAULT_WQ_SIZE,
            send_window: 1,
            max_op_len: 1 << 30,
            transport,
        }
    }
}

/// Lane parameters that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `nlanes` is 0.
    #[error("nlanes is 0: a connection needs at least one lane")]
    NoLanes,
    /// `lane >= nlanes`.
    #[error("lane {lane} does not exist: nlanes is {nlanes}")]
    LaneOutOfRange {
        /// The lane asked for.
        lane: u32,
        /// Lanes of the connection.
        nlanes: u32,
    },
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
    /// `inline_max < 8`.
    #[error("inline_max is {inline_max}: an inline persist must carry at least 8 bytes")]
    InlineMaxTooSmall {
        /// The value given.
        inline_max: u64,
    },
    /// `wq_size` is 0.
    #[error("wq_size is 0: the send queue needs at least one slot")]
    ZeroWqSize,
    /// `send_window` outside `1..=16`.
    #[error("send_window is {window}: it must be between 1 and {max}")]
    BadSendWindow {
        /// The value given.
        window: u32,
        /// The largest allowed.
        max: u32,
    },
    /// `max_op_len` is 0.
    #[error("max_op_len is 0: the transport must take operations of at least one byte")]
    ZeroMaxOpLen,
    /// APM over a stream transport.
    #[error("APM needs RDMA placement: over a stream transport (TCP) the target CPU copies the data into its cache, where a READ does not make it durable")]
    ApmNeedsRdma,
    /// RDMA FLUSH over a stream transport.
    #[error("RDMA FLUSH needs RDMA placement: a stream transport (TCP) has no FLUSH operation")]
    RdmaFlushNeedsRdma,
    /// APM with a pool too small for its 8-byte READ.
    #[error("pool of {pool_size} bytes is smaller than APM's 8-byte flushing READ")]
    PoolTooSmallForApm {
        /// The pool size.
        pool_size: u64,
    },
}

/// Which API call is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `rpmem_persist`.
    Persist,
    /// `rpmem_deep_persist`.
    DeepPersist,
    /// `rpmem_flush`.
    Flush,
    /// `rpmem_drain`.
    Drain,
    /// `rpmem_read`.
    Read,
}

/// A broken lane: the transport failed or the peer broke the protocol. The
/// lane accepts no further call; the connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// A completion for another lane was delivered here.
    #[error("completion for lane {got} was delivered to lane {expected}")]
    WrongLane {
        /// Lane named by the completion.
        got: u32,
        /// This lane.
        expected: u32,
    },
    /// A send-queue completion that matches no outstanding signaled operation.
    #[error("unexpected {got} completion: {}", match expected {
        Some(k) => match k {
            OpKind::Write => "the oldest outstanding signaled operation is a WRITE",
            OpKind::Read => "the oldest outstanding signaled operation is a READ",
            OpKind::Send => "the oldest outstanding signaled operation is a SEND",
            OpKind::Recv => "a RECV is awaited",
            OpKind::Flush => "the oldest outstanding signaled operation is a FLUSH",
        },
        None => "no signaled operation is outstanding",
    })]
    UnexpectedCompletion {
        /// Kind of completion received.
        got: OpKind,
        /// Kind expected next, if any.
        expected: Option<OpKind>,
    },
    /// A persist response that cannot be decoded.
    #[error("malformed persist response: {0}")]
    BadResponse(wire::Error),
    /// A persist response while none is awaited.
    #[error("persist response received, but no persist message awaits one")]
    UnexpectedResponse,
    /// A persist response that answers another request.
    #[error(
        "persist response {field} is {got}, but the request awaiting an answer has {expected}"
    )]
    ResponseMismatch {
        /// `"lane"` or `"flags"`.
        field: &'static str,
        /// Value in the response.
        got: u32,
        /// Value of the request.
        expected: u32,
    },
    /// The transport reported a failed operation.
    #[error("{op} failed on the transport (status {status})")]
    OpFailed {
        /// What failed.
        op: OpKind,
        /// Transport status.
        status: i32,
    },
}

/// A call rejected before anything was posted. The lane is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Another call is in flight, or its result was not collected.
    #[error("lane is busy: a {0:?} call is in flight or its result has not been collected with poll_done")]
    Busy(CallKind),
    /// The lane broke earlier.
    #[error("lane is broken: {0}")]
    Broken(LaneError),
    /// Flags with undefined bits.
    #[error("flags 0x{flags:x} are invalid: only 0x{allowed:x} may be set")]
    UnknownFlags {
        /// Flags given.
        flags: u32,
        /// Flags allowed for this call.
        allowed: u32,
    },
    /// Offset inside the pool header.
    #[error("offset {offset} is below {min}: the first {min} bytes of the pool hold its header")]
    BelowMinOffset {
        /// Offset given.
        offset: u64,
        /// Lowest allowed offset.
        min: u64,
    },
    /// `offset + length` overflows.
    #[error("offset {offset} + length {len} overflows")]
    RangeOverflow {
        /// Offset given.
        offset: u64,
        /// Length given.
        len: u64,
    },
    /// Range not inside the pool.
    #[error(
        "range at offset {offset} of length {len} does not fit in the pool of {pool_size} bytes"
    )]
    OutOfPool {
        /// Offset given.
        offset: u64,
        /// Length given.
        len: u64,
        /// Pool size.
        pool_size: u64,
    },
}

/// A half-open byte range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
}

impl Range {
    fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Overlapping, adjacent, or at most `MERGE_GAP` apart.
    fn near(self, other: Range) -> bool {
        self.start <= other.end.saturating_add(MERGE_GAP)
            && other.start <= self.end.saturating_add(MERGE_GAP)
    }

    fn union(self, other: Range) -> Range {
        Range {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// What a signaled send-queue entry was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SqWhat {
    Write,
    ReadFlush,
    ReadUser,
    Send,
    Flush,
}

impl SqWhat {
    fn kind(self) -> OpKind {
        match self {
            SqWhat::Write => OpKind::Write,
            SqWhat::ReadFlush | SqWhat::ReadUser => OpKind::Read,
            SqWhat::Send => OpKind::Send,
            SqWhat::Flush => OpKind::Flush,
        }
    }
}

/// A signaled operation awaiting its completion; `seq` is its position in
/// the lane's posting order (1-based).
#[derive(Clone, Copy, Debug)]
struct Signaled {
    what: SqWhat,
    seq: u64,
}

/// A persist message awaiting its response.
#[derive(Clone, Copy, Debug)]
struct Awaited {
    /// Flags of the message, echoed by the response.
    flags: u32,
    /// The message carries inline data (`PERSIST_SEND`): until it is
    /// answered the target CPU may not have copied that data yet.
    inline: bool,
}

/// Data movement of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Xfer {
    Nothing,
    Write { cur: u64, end: u64, deep: bool },
    Inline { cur: u64, end: u64 },
    Read { cur: u64, end: u64, start: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Transfer,
    DrainPost,
    DeepSend,
    Wait,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    kind: CallKind,
    xfer: Xfer,
    phase: Phase,
    /// The call ends with a drain (persist, deep persist, drain).
    drain: bool,
    /// Range of the deep persist message still to send.
    deep: Option<Range>,
}

enum Progress {
    Posted(Op),
    Blocked,
    PhaseDone,
}

/// The initiator's engine for one lane. See the module documentation for
/// what each call posts.
#[derive(Debug)]
pub struct InitiatorLane {
    p: LaneParams,
    /// Signal every `k`-th WRITE.
    k: u32,
    /// Operations posted so far.
    sq_posted: u64,
    /// Operations known complete (all up to this sequence number).
    sq_freed: u64,
    /// Unsignaled operations posted since the last signaled one.
    unsignaled_run: u32,
    /// Signaled operations awaiting completion, in posting order.
    signaled: Deque<Signaled, SIGNALED_CAP>,
    /// SENDs awaiting their send completion.
    sends_in_sq: u32,
    /// Persist messages awaiting their response, in order.
    responses: Deque<Awaited, { MAX_SEND_WINDOW as usize }>,
    /// APM: WRITEs posted since the last flushing READ.
    apm_dirty: bool,
    /// Flushing READs (APM) and FLUSHes (RDMA FLUSH) awaiting completion.
    flush_reads: u32,
    /// User READs awaiting completion.
    user_reads: u32,
    /// GPSPM, RDMA FLUSH: ranges written since the last drain, not yet
    /// covered by a persist message or a FLUSH.
    pending: Vec<Range, PENDING_CAP>,
    /// GPSPM, RDMA FLUSH: a pending range pushed out by a new one; made
    /// durable next.
    evict: Option<Range>,
    call: Option<Call>,
    /// Result of the finished call, until collected.
    done: Option<(CallKind, Result<(), LaneError>)>,
    broken: Option<LaneError>,
}

impl InitiatorLane {
    /// A lane with nothing in flight.
    pub fn new(p: LaneParams) -> Result<InitiatorLane, ConfigError> {
        if p.nlanes == 0 {
            return Err(ConfigError::NoLanes);
        }
        if p.lane >= p.nlanes {
            return Err(ConfigError::LaneOutOfRange {
                lane: p.lane,
                nlanes: p.nlanes,
            });
        }
        if p.pool_size == 0 {
            return Err(ConfigError::EmptyPool);
        }
        if p.min_offset >= p.pool_size {
            return Err(ConfigError::MinOffsetBeyondPool {
                min_offset: p.min_offset,
                pool_size: p.pool_size,
            });
        }
        if p.inline_max < ATOMIC {
            return Err(ConfigError::InlineMaxTooSmall {
                inline_max: p.inline_max,
            });
        }
        if p.wq_size == 0 {
            return Err(ConfigError::ZeroWqSize);
        }
        if p.send_window == 0 || p.send_window > MAX_SEND_WINDOW {
            return Err(ConfigError::BadSendWindow {
                window: p.send_window,
                max: MAX_SEND_WINDOW,
            });
        }
        if p.max_op_len == 0 {
            return Err(ConfigError::ZeroMaxOpLen);
        }
        if p.method == Method::RdmaFlush && p.transport == Placement::Stream {
            return Err(ConfigError::RdmaFlushNeedsRdma);
        }
        if p.method == Method::Apm {
            if p.transport == Placement::Stream {
                return Err(ConfigError::ApmNeedsRdma);
            }
            if p.pool_size < FLUSH_READ_OFFSET.saturating_add(FLUSH_READ_LEN) {
                return Err(ConfigError::PoolTooSmallForApm {
                    pool_size: p.pool_size,
                });
            }
        }
        Ok(InitiatorLane {
            p,
            k: (p.wq_size / 2).max(1),
            sq_posted: 0,
            sq_freed: 0,
            unsignaled_run: 0,
            signaled: Deque::new(),
            sends_in_sq: 0,
            responses: Deque::new(),
            apm_dirty: false,
            flush_reads: 0,
            user_reads: 0,
            pending: Vec::new(),
            evict: None,
            call: None,
            done: None,
            broken: None,
        })
    }

    /// The lane's parameters.
    pub fn params(&self) -> &LaneParams {
        &self.p
    }

    /// The call in flight, if any.
    pub fn call_in_flight(&self) -> Option<CallKind> {
        self.call.map(|c| c.kind)
    }

    /// No call in flight and no result waiting to be collected.
    pub fn is_idle(&self) -> bool {
        self.call.is_none() && self.done.is_none()
    }

    /// The error that broke the lane, if it is broken.
    pub fn broken(&self) -> Option<LaneError> {
        self.broken
    }

    /// Operations posted whose send-queue slot is not known to be free
    /// (signaled or not). Never exceeds `wq_size`.
    pub fn outstanding(&self) -> u64 {
        self.sq_posted.saturating_sub(self.sq_freed)
    }

    /// True when the lane waits for at least one completion (a signaled
    /// operation or a persist response). When a call is in flight, nothing
    /// is left to post and this is false, the driver has found a bug.
    pub fn expects_completion(&self) -> bool {
        !self.signaled.is_empty() || !self.responses.is_empty()
    }

    /// Make `[offset, offset + len)` of the local region durable in the pool
    /// (`rpmem_persist`). `flags`: 0 or [`PERSIST_RELAXED`]. Also makes
    /// every earlier flush of this lane durable. A zero `len` only drains.
    pub fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
        self.check_ready()?;
        check_flags(flags, PERSIST_RELAXED)?;
        let end = self.check_range(offset, len, true)?;
        let xfer = self.data_xfer(offset, end, flags & PERSIST_RELAXED != 0);
        self.start(CallKind::Persist, xfer, true, None);
        Ok(())
    }

    /// Like [`persist`](Self::persist), then flush the range down to the
    /// lowest persistence domain software reaches (`rpmem_deep_persist`).
    /// The data travels by WRITE, as in PMDK.
    pub fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
        self.check_ready()?;
        let end = self.check_range(offset, len, true)?;
        let (xfer, deep) = if len == 0 {
            (Xfer::Nothing, None)
        } else {
            (
                Xfer::Write {
                    cur: offset,
                    end,
                    deep: true,
                },
                Some(Range { start: offset, end }),
            )
        };
        self.start(CallKind::DeepPersist, xfer, true, deep);
        Ok(())
    }

    /// Start copying `[offset, offset + len)` to the pool (`rpmem_flush`).
    /// `flags`: 0 or [`FLUSH_RELAXED`]. Done once everything is posted; a
    /// later [`drain`](Self::drain) or persist makes it durable. Without
    /// `FLUSH_RELAXED` the data travels inline, and the lane's next call
    /// that posts a WRITE or READ first waits for those messages' responses
    /// (see the module documentation).
    pub fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
        self.check_ready()?;
        check_flags(flags, FLUSH_RELAXED)?;
        let end = self.check_range(offset, len, true)?;
        let xfer = self.data_xfer(offset, end, flags & FLUSH_RELAXED != 0);
        self.start(CallKind::Flush, xfer, false, None);
        Ok(())
    }

    /// Make every earlier flush of this lane durable (`rpmem_drain`).
    /// `flags` must be 0.
    pub fn drain(&mut self, flags: u32) -> Result<(), CallError> {
        self.check_ready()?;
        check_flags(flags, 0)?;
        self.start(CallKind::Drain, Xfer::Nothing, true, None);
        Ok(())
    }

    /// Read pool `[offset, offset + len)` into the caller's buffer
    /// (`rpmem_read`); READ `n` carries buffer offset `ReadDest::User {
    /// buf_offset }`. Reading the pool header is allowed.
    pub fn read(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
        self.check_ready()?;
        let end = self.check_range(offset, len, false)?;
        let xfer = if len == 0 {
            Xfer::Nothing
        } else {
            Xfer::Read {
                cur: offset,
                end,
                start: offset,
            }
        };
        self.start(CallKind::Read, xfer, false, None);
        Ok(())
    }

    /// The next operation to post, or `None` when the lane must wait for a
    /// completion (or has nothing in flight).
    pub fn poll_op(&mut self) -> Option<Op> {
        self.step(true)
    }

    /// The result of the call in flight once it is complete; `None` while it
    /// still needs operations posted or completions reported.
    pub fn poll_done(&mut self) -> Option<Result<(), LaneError>> {
        if self.done.is_none() {
            // Settle phases that need nothing posted.
            let _ = self.step(false);
        }
        self.done.take().map(|(_, r)| r)
    }

    /// Report a completion of this lane. Completions of operations posted by
    /// an earlier call may arrive at any time, also while the lane is idle.
    /// An error breaks the lane and fails the call in flight.
    pub fn handle_completion(&mut self, c: Completion<'_>) -> Result<(), LaneError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let r = self.apply(c);
        if let Err(e) = r {
            self.broken = Some(e);
            if let Some(call) = self.call.take() {
                self.done = Some((call.kind, Err(e)));
            }
        }
        r
    }

    // ----- calls -----

    fn check_ready(&self) -> Result<(), CallError> {
        if let Some(e) = self.broken {
            return Err(CallError::Broken(e));
        }
        if let Some(c) = self.call {
            return Err(CallError::Busy(c.kind));
        }
        if let Some((kind, _)) = self.done {
            return Err(CallError::Busy(kind));
        }
        Ok(())
    }

    /// Check a range; returns its end.
    fn check_range(&self, offset: u64, len: u64, writes: bool) -> Result<u64, CallError> {
        if writes && offset < self.p.min_offset {
            return Err(CallError::BelowMinOffset {
                offset,
                min: self.p.min_offset,
            });
        }
        let end = offset
            .checked_add(len)
            .ok_or(CallError::RangeOverflow { offset, len })?;
        if offset >= self.p.pool_size || end > self.p.pool_size {
            return Err(CallError::OutOfPool {
                offset,
                len,
                pool_size: self.p.pool_size,
            });
        }
        Ok(end)
    }

    fn data_xfer(&self, offset: u64, end: u64, relaxed: bool) -> Xfer {
        if offset == end {
            Xfer::Nothing
        } else if relaxed {
            Xfer::Write {
                cur: offset,
                end,
                deep: false,
            }
        } else {
            Xfer::Inline { cur: offset, end }
        }
    }

    fn start(&mut self, kind: CallKind, xfer: Xfer, drain: bool, deep: Option<Range>) {
        self.call = Some(Call {
            kind,
            xfer,
            phase: Phase::Transfer,
            drain,
            deep,
        });
    }

    // ----- progress -----

    /// Advance the call in flight. With `allow_post == false` nothing is
    /// posted: only phases that need no operation are passed.
    fn step(&mut self, allow_post: bool) -> Option<Op> {
        loop {
            let call = self.call?;
            let progress = match call.phase {
                Phase::Transfer => self.transfer(call, allow_post),
                Phase::DrainPost => self.drain_post(allow_post),
                Phase::DeepSend => self.deep_send(call, allow_post),
                Phase::Wait => {
                    if self.wait_over(call) {
                        self.call = None;
                        self.done = Some((call.kind, Ok(())));
                        return None;
                    }
                    Progress::Blocked
                }
            };
            match progress {
                Progress::Posted(op) => return Some(op),
                Progress::Blocked => return None,
                Progress::PhaseDone => {
                    let next = match call.phase {
                        Phase::Transfer if call.drain => Phase::DrainPost,
                        Phase::Transfer | Phase::DrainPost => Phase::DeepSend,
                        Phase::DeepSend | Phase::Wait => Phase::Wait,
                    };
                    if let Some(c) = self.call.as_mut() {
                        c.phase = next;
                    }
                }
            }
        }
    }

    fn transfer(&mut self, call: Call, allow_post: bool) -> Progress {
        if let Some(r) = self.evict {
            if !(allow_post && self.can_post_range_flush()) {
                return Progress::Blocked;
            }
            let (head, tail) = self.split_range_flush(r);
            self.evict = tail;
            return Progress::Posted(self.post_range_flush(head));
        }
        match call.xfer {
            Xfer::Nothing => Progress::PhaseDone,
            Xfer::Write { cur, end, deep } => {
                if cur >= end {
                    return Progress::PhaseDone;
                }
                let len = end.saturating_sub(cur).min(self.p.max_op_len);
                let signaled = self.unsignaled_run.saturating_add(1) >= self.k;
                if !(allow_post && self.can_post(signaled) && !self.inline_unanswered()) {
                    return Progress::Blocked;
                }
                let next = cur.saturating_add(len);
                self.set_xfer(Xfer::Write {
                    cur: next,
                    end,
                    deep,
                });
                let what = if signaled { Some(SqWhat::Write) } else { None };
                self.account(what);
                if !deep {
                    self.note_written(Range {
                        start: cur,
                        end: next,
                    });
                }
                Progress::Posted(Op::Write {
                    lane: self.p.lane,
                    offset: cur,
                    len,
                    signaled,
                })
            }
            Xfer::Inline { cur, end } => {
                if cur >= end {
                    return Progress::PhaseDone;
                }
                if !(allow_post && self.can_post_send()) {
                    return Progress::Blocked;
                }
                let chunk_end = self.inline_chunk_end(cur, end);
                self.set_xfer(Xfer::Inline {
                    cur: chunk_end,
                    end,
                });
                let r = Range {
                    start: cur,
                    end: chunk_end,
                };
                Progress::Posted(self.post_send(PersistMode::PersistSend, r, true))
            }
            Xfer::Read { cur, end, start } => {
                if cur >= end {
                    return Progress::PhaseDone;
                }
                if !(allow_post && self.can_post(true) && !self.inline_unanswered()) {
                    return Progress::Blocked;
                }
                let len = end.saturating_sub(cur).min(self.p.max_op_len);
                self.set_xfer(Xfer::Read {
                    cur: cur.saturating_add(len),
                    end,
                    start,
                });
                self.account(Some(SqWhat::ReadUser));
                self.user_reads = self.user_reads.saturating_add(1);
                Progress::Posted(Op::Read {
                    lane: self.p.lane,
                    offset: cur,
                    len,
                    dest: ReadDest::User {
                        buf_offset: cur.saturating_sub(start),
                    },
                })
            }
        }
    }

    fn drain_post(&mut self, allow_post: bool) -> Progress {
        match self.p.method {
            Method::Apm => {
                if !self.apm_dirty {
                    return Progress::PhaseDone;
                }
                #[cfg(rpmem_mutants)]
                if crate::flush::mutants::active(crate::flush::mutants::Mutant::ApmWithoutRead) {
                    self.apm_dirty = false;
                    return Progress::PhaseDone;
                }
                if !(allow_post && self.can_post(true)) {
                    return Progress::Blocked;
                }
                self.apm_dirty = false;
                self.account(Some(SqWhat::ReadFlush));
                self.flush_reads = self.flush_reads.saturating_add(1);
                Progress::Posted(Op::Read {
                    lane: self.p.lane,
                    offset: FLUSH_READ_OFFSET,
                    len: FLUSH_READ_LEN,
                    dest: ReadDest::Flush,
                })
            }
            Method::Gpspm | Method::RdmaFlush => {
                let next = match self.evict {
                    Some(r) => Some((r, true)),
                    None => self.pending.first().map(|r| (*r, false)),
                };
                let Some((r, evicted)) = next else {
                    return Progress::PhaseDone;
                };
                #[cfg(rpmem_mutants)]
                if self.p.method == Method::RdmaFlush
                    && crate::flush::mutants::active(
                        crate::flush::mutants::Mutant::RdmaFlushWithoutFlush,
                    )
                {
                    self.evict = None;
                    self.pending.clear();
                    return Progress::PhaseDone;
                }
                if !(allow_post && self.can_post_range_flush()) {
                    return Progress::Blocked;
                }
                let (head, tail) = self.split_range_flush(r);
                match (evicted, tail) {
                    (true, tail) => self.evict = tail,
                    (false, Some(tail)) => {
                        if let Some(first) = self.pending.first_mut() {
                            *first = tail;
                        }
                    }
                    (false, None) => {
                        if !self.pending.is_empty() {
                            self.pending.remove(0);
                        }
                    }
                }
                Progress::Posted(self.post_range_flush(head))
            }
        }
    }

    /// Room to make one written range durable: a persist message (GPSPM) or
    /// a FLUSH.
    fn can_post_range_flush(&self) -> bool {
        match self.p.method {
            Method::RdmaFlush => self.can_post(true),
            Method::Gpspm | Method::Apm => self.can_post_send(),
        }
    }

    /// The part of `r` one operation makes durable, and the rest: a GPSPM
    /// message covers any range, a FLUSH at most [`MAX_FLUSH_LEN`] bytes.
    fn split_range_flush(&self, r: Range) -> (Range, Option<Range>) {
        if self.p.method != Method::RdmaFlush || r.len() <= MAX_FLUSH_LEN {
            return (r, None);
        }
        let cut = r.start.saturating_add(MAX_FLUSH_LEN);
        (
            Range {
                start: r.start,
                end: cut,
            },
            Some(Range {
                start: cut,
                end: r.end,
            }),
        )
    }

    /// Makes written range `r` durable: a `FLUSH_WRITE` message (GPSPM) or
    /// an RDMA FLUSH. Room was checked by [`can_post_range_flush`](Self::can_post_range_flush).
    fn post_range_flush(&mut self, r: Range) -> Op {
        if self.p.method == Method::RdmaFlush {
            self.account(Some(SqWhat::Flush));
            self.flush_reads = self.flush_reads.saturating_add(1);
            return Op::Flush {
                lane: self.p.lane,
                offset: r.start,
                len: r.len(),
            };
        }
        self.post_send(PersistMode::FlushWrite, r, false)
    }

    fn deep_send(&mut self, call: Call, allow_post: bool) -> Progress {
        let Some(r) = call.deep else {
            return Progress::PhaseDone;
        };
        if !(allow_post && self.can_post_send()) {
            return Progress::Blocked;
        }
        if let Some(c) = self.call.as_mut() {
            c.deep = None;
        }
        Progress::Posted(self.post_send(PersistMode::DeepPersist, r, false))
    }

    fn wait_over(&self, call: Call) -> bool {
        let drained = !call.drain || (self.responses.is_empty() && self.flush_reads == 0);
        drained && self.user_reads == 0
    }

    fn set_xfer(&mut self, xfer: Xfer) {
        if let Some(c) = self.call.as_mut() {
            c.xfer = xfer;
        }
    }

    /// Room for one more operation (signaled ones also need a tracking slot).
    fn can_post(&self, signaled: bool) -> bool {
        self.outstanding() < u64::from(self.p.wq_size) && !(signaled && self.signaled.is_full())
    }

    /// A `PERSIST_SEND` of this lane is still unanswered. No WRITE or user
    /// READ is posted then: the NIC executes a WRITE or READ as soon as it
    /// arrives, while the target CPU copies an inline message's data into
    /// the pool only when it handles the message (before answering it), so
    /// a WRITE to an overlapping range
    /// would be overwritten by the older inline bytes and a READ could miss
    /// them. Persist messages (their CPU work is done in order) and APM's
    /// flushing READ (its bytes are thrown away) need not wait.
    fn inline_unanswered(&self) -> bool {
        #[cfg(rpmem_mutants)]
        if crate::flush::mutants::active(crate::flush::mutants::Mutant::WriteOvertakesInline) {
            return false;
        }
        self.responses.iter().any(|a| a.inline)
    }

    /// Room for one more persist message.
    fn can_post_send(&self) -> bool {
        self.can_post(true)
            && self.sends_in_sq < self.p.send_window
            && (self.responses.len() as u64) < u64::from(self.p.send_window)
            && !self.responses.is_full()
    }

    /// Count a posted operation; `what` is `Some` when it is signaled.
    fn account(&mut self, what: Option<SqWhat>) {
        self.sq_posted = self.sq_posted.saturating_add(1);
        match what {
            Some(what) => {
                // Room was checked by `can_post`.
                let _ = self.signaled.push_back(Signaled {
                    what,
                    seq: self.sq_posted,
                });
                self.unsignaled_run = 0;
            }
            None => self.unsignaled_run = self.unsignaled_run.saturating_add(1),
        }
    }

    fn post_send(&mut self, mode: PersistMode, r: Range, inline: bool) -> Op {
        let msg = PersistMsgRepr {
            mode,
            completion: false,
            lane: self.p.lane,
            offset: r.start,
            size: r.len(),
        };
        self.account(Some(SqWhat::Send));
        self.sends_in_sq = self.sends_in_sq.saturating_add(1);
        // Room was checked by `can_post_send`.
        let _ = self.responses.push_back(Awaited {
            flags: msg.flags(),
            inline,
        });
        Op::Send {
            lane: self.p.lane,
            msg,
            inline,
        }
    }

    /// End of the inline chunk starting at `cur`: at most `inline_max` bytes,
    /// and, when the chunk does not reach `end`, cut at an 8-byte boundary so
    /// no aligned 8-byte word is split between two messages.
    fn inline_chunk_end(&self, cur: u64, end: u64) -> u64 {
        let max_end = cur.saturating_add(self.p.inline_max);
        if max_end >= end {
            return end;
        }
        let aligned = max_end & !(ATOMIC - 1);
        if aligned > cur {
            aligned
        } else {
            max_end
        }
    }

    /// Remember a range written by WRITE until the next drain.
    fn note_written(&mut self, r: Range) {
        match self.p.method {
            Method::Apm => self.apm_dirty = true,
            Method::Gpspm | Method::RdmaFlush => {
                let mut merged = r;
                let mut i = 0;
                while let Some(p) = self.pending.get(i).copied() {
                    if p.near(merged) {
                        merged = merged.union(p);
                        self.pending.remove(i);
                    } else {
                        i = i.saturating_add(1);
                    }
                }
                if let Err(merged) = self.pending.push(merged) {
                    if self.evict.is_none() && !self.pending.is_empty() {
                        // Full: the oldest range goes out in its own message.
                        self.evict = Some(self.pending.remove(0));
                        let _ = self.pending.push(merged);
                    } else if let Some(last) = self.pending.last_mut() {
                        *last = last.union(merged);
                    }
                }
            }
        }
    }

    // ----- completions -----

    fn apply(&mut self, c: Completion<'_>) -> Result<(), LaneError> {
        if c.lane() != self.p.lane {
            return Err(LaneError::WrongLane {
                got: c.lane(),
                expected: self.p.lane,
            });
        }
        match c {
            Completion::Write { .. } => self.reap(OpKind::Write),
            Completion::Read { .. } => self.reap(OpKind::Read),
            Completion::Send { .. } => self.reap(OpKind::Send),
            Completion::Flush { .. } => self.reap(OpKind::Flush),
            Completion::Recv { bytes, .. } => {
                let resp = PersistRespRepr::parse(bytes).map_err(LaneError::BadResponse)?;
                let Some(flags) = self.responses.front().map(|a| a.flags) else {
                    return Err(LaneError::UnexpectedResponse);
                };
                if resp.lane != self.p.lane {
                    return Err(LaneError::ResponseMismatch {
                        field: "lane",
                        got: resp.lane,
                        expected: self.p.lane,
                    });
                }
                if resp.flags != flags {
                    return Err(LaneError::ResponseMismatch {
                        field: "flags",
                        got: resp.flags,
                        expected: flags,
                    });
                }
                self.responses.pop_front();
                Ok(())
            }
            Completion::Failed { op, status, .. } => Err(LaneError::OpFailed { op, status }),
        }
    }

    fn reap(&mut self, got: OpKind) -> Result<(), LaneError> {
        let Some(front) = self.signaled.front().copied() else {
            return Err(LaneError::UnexpectedCompletion {
                got,
                expected: None,
            });
        };
        if front.what.kind() != got {
            return Err(LaneError::UnexpectedCompletion {
                got,
                expected: Some(front.what.kind()),
            });
        }
        self.signaled.pop_front();
        self.sq_freed = front.seq;
        match front.what {
            SqWhat::Write => {}
            SqWhat::ReadFlush | SqWhat::Flush => {
                self.flush_reads = self.flush_reads.saturating_sub(1)
            }
            SqWhat::ReadUser => self.user_reads = self.user_reads.saturating_sub(1),
            SqWhat::Send => self.sends_in_sq = self.sends_in_sq.saturating_sub(1),
        }
        Ok(())
    }
}

fn check_flags(flags: u32, allowed: u32) -> Result<(), CallError> {
    if flags & !allowed != 0 {
        return Err(CallError::UnknownFlags { flags, allowed });
    }
    Ok(())
}
