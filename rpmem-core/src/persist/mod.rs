//! Per-lane persist engines of the initiator and the target.
//!
//! The same engine code is driven by every transport: our TCP data path,
//! native ibverbs, and the simulator. It does no I/O, reads no clock, starts
//! no thread and allocates nothing. Its inputs are API calls, completions and
//! received bytes; its outputs are operations to post ([`Op`]), bytes to
//! send, and steps for the target to execute ([`TargetStep`]). A driver (or
//! the simulator) can stop between any two of them.
//!
//! # The abstract data path
//!
//! Every transport implements three operations, modelled on RDMA verbs on a
//! reliable connection (one connection per lane):
//!
//! * [`Op::Write`] copies local region `[offset, offset + len)` to the pool at
//!   the same offset (librpmem replicates at equal offsets). Placement only:
//!   the bytes are not durable yet.
//! * [`Op::Read`] reads pool bytes: into the caller's buffer
//!   ([`ReadDest::User`], `rpmem_read`), or 8 bytes that are thrown away
//!   ([`ReadDest::Flush`], APM's read-after-write that pushes earlier WRITEs
//!   of the lane into the persistence domain).
//! * [`Op::Send`] sends one persist message (`rpmem_msg_persist`,
//!   [`crate::wire::persist`]); the target answers each with one 8-byte
//!   response, reported as [`Completion::Recv`].
//! * [`Op::Flush`] (method [`Method::RdmaFlush`] only): an IBTA RDMA FLUSH
//!   with the persistent placement type of pool `[offset, offset + len)`;
//!   its completion says the target made what earlier WRITEs of the lane
//!   placed in that range durable.
//!
//! Operations of one lane are executed in order (RC ordering: a READ, SEND
//! or FLUSH is executed after every earlier WRITE of its lane has been
//! placed), and send-queue completions are reported in posting order.
//!
//! # Initiator
//!
//! [`InitiatorLane`]: one per lane, so lanes are independent. A call
//! (`persist`, `deep_persist`, `flush`, `drain`, `read`) validates its
//! arguments and returns at once; the driver then loops:
//!
//! ```text
//! lane.persist(offset, len, flags)?;
//! loop {
//!     while let Some(op) = lane.poll_op() { post(op) }
//!     if let Some(result) = lane.poll_done() { break result }
//!     lane.handle_completion(wait_for_completion())?;
//! }
//! ```
//!
//! # Target
//!
//! [`Target`] validates a received persist message and returns a
//! [`TargetPlan`]: copy inline data, flush, respond. [`execute`] runs a plan
//! against a [`TargetMemory`] through [`crate::flush::persist_range`], the
//! same code in the daemon and the simulator.
//!
//! # Stream transports
//!
//! [`StreamClient`] and [`StreamServer`] turn operations into the frames of
//! [`crate::wire::tcp`] and back, for transports where the target CPU copies
//! received bytes into the pool. [`StreamInitiator`] is the whole
//! initiator side of one TCP lane (engine, framing, hello, send queue,
//! reassembly, the completions a stream makes up): its driver only moves
//! bytes between it and a socket. [`StreamTarget`] is the target side of
//! one TCP lane (hello and header reassembly, `WRITE` body pieces and the
//! cache-line arithmetic of which lines go to memory as they arrive, plans,
//! answers and whether they may be held back).

mod initiator;
mod stream;
mod stream_initiator;
mod stream_target;
mod target;

pub use initiator::{
    CallError, CallKind, ConfigError, InitiatorLane, LaneError, LaneParams, MAX_FLUSH_LEN,
};
pub use stream::{
    ClientError, ClientFrame, FrameBody, HelloAccepted, HelloReject, ServerError, ServerFrame,
    ServerMsg, ServerStep, StreamClient, StreamServer,
};
pub use stream_initiator::{
    Chunk, ReadSink, StreamInitiator, StreamLaneError, Transmit, MAX_QUEUED_FRAMES,
};
pub use stream_target::{BodyPiece, Next, StreamTarget, ANSWER_LEN};
pub use target::{
    execute, Target, TargetConfigError, TargetError, TargetMemory, TargetParams, TargetPlan,
    TargetStep,
};

pub use crate::policy::{Method, Placement};
pub use crate::wire::persist::{PersistMode, PersistMsgRepr, PersistRespRepr};

/// `RPMEM_PERSIST_RELAXED`: persist without the 8-byte failure atomicity
/// guarantee (the data may travel by WRITE).
pub const PERSIST_RELAXED: u32 = 1;
/// `RPMEM_FLUSH_RELAXED`: flush without the 8-byte failure atomicity
/// guarantee.
pub const FLUSH_RELAXED: u32 = 1;
/// `RPMEM_HDR_SIZE`: bytes at the start of a pool with headers that the data
/// path must not write.
pub const POOL_HDR_SIZE: u64 = 4096;
/// `RPMEM_DEF_BUFF_SIZE`: PMDK's inline buffer, the most data bytes one
/// persist message carries.
pub const DEFAULT_INLINE_MAX: u64 = 8192;
/// PMDK's default work queue size (`RPMEM_WORK_QUEUE_SIZE`).
pub const DEFAULT_WQ_SIZE: u32 = 50;
/// Length of APM's flushing READ (`RPMEM_RAW_SIZE`).
pub const FLUSH_READ_LEN: u64 = 8;
/// Pool offset APM's flushing READ reads (PMDK reads at the pool start).
pub const FLUSH_READ_OFFSET: u64 = 0;
/// Largest number of persist messages a lane may have in flight.
pub const MAX_SEND_WINDOW: u32 = 16;

/// Where the bytes of a READ go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadDest {
    /// APM's read-after-write: 8 bytes read only to make earlier WRITEs of
    /// the lane durable; the data is thrown away. Valid only with RDMA
    /// placement into a persistence domain (DDIO off).
    Flush,
    /// `rpmem_read`: the bytes go to the caller's buffer at `buf_offset`.
    User {
        /// Offset in the caller's buffer of the first byte read.
        buf_offset: u64,
    },
}

/// An operation for the transport to post on a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Copy local region `[offset, offset + len)` to the pool at `offset`.
    Write {
        /// Lane to post on.
        lane: u32,
        /// Offset in the local region and in the pool.
        offset: u64,
        /// Bytes to copy (at least 1).
        len: u64,
        /// Report [`Completion::Write`] when done. Unsignaled WRITEs must not
        /// be reported: their queue slots are freed by the next signaled
        /// completion (selective signalling).
        signaled: bool,
    },
    /// Read pool `[offset, offset + len)`. Always signaled.
    Read {
        /// Lane to post on.
        lane: u32,
        /// Pool offset.
        offset: u64,
        /// Bytes to read (at least 1).
        len: u64,
        /// Where the bytes go.
        dest: ReadDest,
    },
    /// Send one persist message. Always signaled ([`Completion::Send`]);
    /// the target's answer is reported as [`Completion::Recv`].
    Send {
        /// Lane to post on.
        lane: u32,
        /// The 24-byte message header.
        msg: PersistMsgRepr,
        /// The message carries data: local region `[msg.offset, msg.offset +
        /// msg.size)` follows the header.
        inline: bool,
    },
    /// RDMA FLUSH, persistent placement type, of pool `[offset, offset +
    /// len)`: completes ([`Completion::Flush`]) once what earlier WRITEs of
    /// the lane placed there is durable. Always signaled; moves no data.
    Flush {
        /// Lane to post on.
        lane: u32,
        /// Pool offset.
        offset: u64,
        /// Bytes to make durable (at least 1).
        len: u64,
    },
}

impl Op {
    /// Lane the operation is posted on.
    pub fn lane(&self) -> u32 {
        match *self {
            Op::Write { lane, .. }
            | Op::Read { lane, .. }
            | Op::Send { lane, .. }
            | Op::Flush { lane, .. } => lane,
        }
    }

    /// Kind of the operation.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Write { .. } => OpKind::Write,
            Op::Read { .. } => OpKind::Read,
            Op::Send { .. } => OpKind::Send,
            Op::Flush { .. } => OpKind::Flush,
        }
    }

    /// Whether the transport must report a completion for it.
    pub fn is_signaled(&self) -> bool {
        match *self {
            Op::Write { signaled, .. } => signaled,
            Op::Read { .. } | Op::Send { .. } | Op::Flush { .. } => true,
        }
    }

    /// Bytes the operation moves: WRITE/READ length, the whole message
    /// length of a SEND (header plus inline data), none for a FLUSH.
    pub fn wire_len(&self) -> u64 {
        match self {
            Op::Write { len, .. } | Op::Read { len, .. } => *len,
            Op::Send { msg, .. } => msg.buffer_len(),
            Op::Flush { .. } => 0,
        }
    }
}

/// Kind of an operation or a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// RDMA WRITE (or its emulation).
    Write,
    /// RDMA READ (or its emulation).
    Read,
    /// SEND of a persist message.
    Send,
    /// Receipt of a persist response.
    Recv,
    /// RDMA FLUSH.
    Flush,
}

impl OpKind {
    /// Upper-case name, as in the protocol documents.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Write => "WRITE",
            OpKind::Read => "READ",
            OpKind::Send => "SEND",
            OpKind::Recv => "RECV",
            OpKind::Flush => "FLUSH",
        }
    }
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Something the transport reports back to a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion<'a> {
    /// A signaled WRITE finished.
    Write {
        /// Lane it was posted on.
        lane: u32,
    },
    /// A READ finished (its data is in place).
    Read {
        /// Lane it was posted on.
        lane: u32,
    },
    /// A SEND left (its buffer may be reused).
    Send {
        /// Lane it was posted on.
        lane: u32,
    },
    /// A FLUSH finished: the range is durable.
    Flush {
        /// Lane it was posted on.
        lane: u32,
    },
    /// A persist response arrived.
    Recv {
        /// Lane it arrived on.
        lane: u32,
        /// The response bytes (`rpmem_msg_persist_resp`, 8 bytes).
        bytes: &'a [u8],
    },
    /// An operation failed (work completion error, connection lost).
    Failed {
        /// Lane of the operation.
        lane: u32,
        /// What failed.
        op: OpKind,
        /// Transport status (errno, `ibv_wc_status`), for the log.
        status: i32,
    },
}

impl Completion<'_> {
    /// Lane the completion belongs to.
    pub fn lane(&self) -> u32 {
        match *self {
            Completion::Write { lane }
            | Completion::Read { lane }
            | Completion::Send { lane }
            | Completion::Flush { lane }
            | Completion::Recv { lane, .. }
            | Completion::Failed { lane, .. } => lane,
        }
    }

    /// Kind of the completion.
    pub fn kind(&self) -> OpKind {
        match self {
            Completion::Write { .. } => OpKind::Write,
            Completion::Read { .. } => OpKind::Read,
            Completion::Send { .. } => OpKind::Send,
            Completion::Flush { .. } => OpKind::Flush,
            Completion::Recv { .. } => OpKind::Recv,
            Completion::Failed { op, .. } => *op,
        }
    }
}
