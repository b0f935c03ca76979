//! A reliable-connected queue pair per lane: send queue, the remote NIC's
//! buffers, and the initiator's completion queue.
//!
//! The life of an operation, each arrow a separate step the scheduler may
//! delay (other lanes run meanwhile):
//!
//! ```text
//! post ──► transmit ──► execute at the remote NIC ──► (READ, FLUSH: response back)
//!  (send queue)   (NIC/PCIe buffers: not placed)      placement / delivery / persistence
//!                 └──► acknowledged: WRITE/SEND may complete
//! ```
//!
//! RC rules kept by construction:
//!
//! * operations are transmitted and executed in posting order, so WRITEs are
//!   placed in order and a READ, SEND or FLUSH is executed only after every
//!   earlier WRITE of the queue pair was placed;
//! * a WRITE or SEND completes once it reached the remote NIC — **not**
//!   once placed; a READ completes once its response came back, which
//!   happens only after execution;
//! * an RDMA FLUSH (IBTA, persistent placement type) is executed by the
//!   responder in order like a READ: when it executes, the responder makes
//!   its range persistent (the world does it on the target memory), and
//!   only then does its response travel back ([`Qp::mark_executed`]). A
//!   FLUSH never completes on mere transmission;
//! * send-queue completions are reported in posting order; unsignaled WRITEs
//!   complete silently;
//! * a lost connection drops everything not yet executed and reports a
//!   failed completion.

use std::collections::VecDeque;

use rpmem_core::persist::{Op, OpKind, ReadDest};
use rpmem_core::wire::persist::RESP_LEN;

/// Where an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqState {
    /// In the send queue, not yet on the wire.
    Posted,
    /// At the remote NIC (acknowledged for WRITE/SEND), maybe not executed.
    Transmitted,
    /// A READ or FLUSH the remote NIC executed: its response is back.
    Executed,
}

/// A send-queue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqEntry {
    /// Sequence number in the queue pair (1-based, posting order).
    pub id: u64,
    /// The operation as the engine posted it.
    pub op: Op,
    /// WRITE: the data (read from the local region when posted); SEND: the
    /// whole message; READ, FLUSH: empty.
    pub payload: Vec<u8>,
    /// Progress.
    pub state: SqState,
}

/// What the remote NIC holds, not yet executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Place `data` at pool `offset`.
    Write {
        /// Pool offset.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Read pool `[offset, offset + len)` for send-queue entry `sq_id`.
    Read {
        /// The entry to mark done.
        sq_id: u64,
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Destination at the initiator.
        dest: ReadDest,
    },
    /// Deliver a persist message to the target CPU.
    Send {
        /// The message bytes.
        bytes: Vec<u8>,
    },
    /// Make pool `[offset, offset + len)` persistent (RDMA FLUSH,
    /// persistent placement type) for send-queue entry `sq_id`.
    Flush {
        /// The entry to mark done.
        sq_id: u64,
        /// Pool offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

/// A completion queue entry for the initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cqe {
    /// A signaled WRITE completed.
    Write,
    /// A READ completed.
    Read,
    /// A SEND completed.
    Send,
    /// A FLUSH completed: the responder made its range persistent.
    Flush,
    /// A persist response arrived.
    Recv([u8; RESP_LEN]),
    /// An operation failed (connection lost).
    Failed(OpKind),
}

/// The `errno` reported with failed completions (`ECONNRESET`).
pub const CONN_RESET: i32 = 104;

/// One lane's queue pair.
#[derive(Clone, Debug, Default)]
pub struct Qp {
    sq: VecDeque<SqEntry>,
    next_id: u64,
    inbound: VecDeque<Inbound>,
    cq: VecDeque<Cqe>,
    broken: bool,
}

impl Qp {
    /// An empty, connected queue pair.
    pub fn new() -> Qp {
        Qp::default()
    }

    /// Whether the connection was lost.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Entries in the send queue (not yet completed).
    pub fn sq(&self) -> &VecDeque<SqEntry> {
        &self.sq
    }

    /// Operations at the remote NIC, not executed.
    pub fn inbound(&self) -> &VecDeque<Inbound> {
        &self.inbound
    }

    /// Post `op` with its payload. On a broken connection the operation
    /// fails at once.
    pub fn post(&mut self, op: Op, payload: Vec<u8>) -> u64 {
        self.next_id = self.next_id.saturating_add(1);
        if self.broken {
            self.cq.push_back(Cqe::Failed(op.kind()));
            return self.next_id;
        }
        self.sq.push_back(SqEntry {
            id: self.next_id,
            op,
            payload,
            state: SqState::Posted,
        });
        self.next_id
    }

    /// Whether an operation waits to be transmitted.
    pub fn can_transmit(&self) -> bool {
        self.sq.iter().any(|e| e.state == SqState::Posted)
    }

    /// Put the oldest untransmitted operation on the wire: it reaches the
    /// remote NIC's buffers. Returns its id.
    pub fn transmit(&mut self) -> Option<u64> {
        let e = self.sq.iter_mut().find(|e| e.state == SqState::Posted)?;
        e.state = SqState::Transmitted;
        let inbound = match e.op {
            Op::Write { offset, .. } => Inbound::Write {
                offset,
                data: e.payload.clone(),
            },
            Op::Read {
                offset, len, dest, ..
            } => Inbound::Read {
                sq_id: e.id,
                offset,
                len,
                dest,
            },
            Op::Send { .. } => Inbound::Send {
                bytes: e.payload.clone(),
            },
            Op::Flush { offset, len, .. } => Inbound::Flush {
                sq_id: e.id,
                offset,
                len,
            },
        };
        self.inbound.push_back(inbound);
        Some(e.id)
    }

    /// Whether the remote NIC has something to execute.
    pub fn can_execute(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// The next operation for the remote NIC to execute, in order.
    pub fn pop_inbound(&mut self) -> Option<Inbound> {
        self.inbound.pop_front()
    }

    /// The remote NIC executed READ or FLUSH `sq_id` (answered the READ,
    /// made the FLUSH's range persistent) and its response came back: the
    /// entry may complete. Other entries are left as they are.
    pub fn mark_executed(&mut self, sq_id: u64) {
        if let Some(e) = self
            .sq
            .iter_mut()
            .find(|e| e.id == sq_id && matches!(e.op, Op::Read { .. } | Op::Flush { .. }))
        {
            e.state = SqState::Executed;
        }
    }

    /// Whether the oldest operation can complete.
    pub fn can_complete(&self) -> bool {
        match self.sq.front() {
            Some(e) => match e.op {
                Op::Read { .. } | Op::Flush { .. } => e.state == SqState::Executed,
                Op::Write { .. } | Op::Send { .. } => e.state != SqState::Posted,
            },
            None => false,
        }
    }

    /// Complete the oldest operation (queueing its completion when
    /// signaled); returns it.
    pub fn complete(&mut self) -> Option<SqEntry> {
        if !self.can_complete() {
            return None;
        }
        let e = self.sq.pop_front()?;
        if e.op.is_signaled() {
            self.cq.push_back(match e.op.kind() {
                OpKind::Write => Cqe::Write,
                OpKind::Read => Cqe::Read,
                OpKind::Flush => Cqe::Flush,
                OpKind::Send | OpKind::Recv => Cqe::Send,
            });
        }
        Some(e)
    }

    /// A persist response arrived from the target (dropped when the
    /// connection is lost).
    pub fn push_recv(&mut self, resp: [u8; RESP_LEN]) {
        if !self.broken {
            self.cq.push_back(Cqe::Recv(resp));
        }
    }

    /// Whether a completion waits to be reaped.
    pub fn can_reap(&self) -> bool {
        !self.cq.is_empty()
    }

    /// The oldest completion.
    pub fn reap(&mut self) -> Option<Cqe> {
        self.cq.pop_front()
    }

    /// The connection is lost: everything not executed is dropped and a
    /// failed completion reported.
    pub fn break_connection(&mut self) {
        if self.broken {
            return;
        }
        self.broken = true;
        let kind = self.sq.front().map_or(OpKind::Send, |e| e.op.kind());
        self.sq.clear();
        self.inbound.clear();
        self.cq.push_back(Cqe::Failed(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(offset: u64, signaled: bool) -> Op {
        Op::Write {
            lane: 0,
            offset,
            len: 8,
            signaled,
        }
    }

    fn read() -> Op {
        Op::Read {
            lane: 0,
            offset: 0,
            len: 8,
            dest: ReadDest::Flush,
        }
    }

    fn flush(offset: u64, len: u64) -> Op {
        Op::Flush {
            lane: 0,
            offset,
            len,
        }
    }

    #[test]
    fn operations_are_executed_in_posting_order() {
        let mut qp = Qp::new();
        qp.post(write(64, false), vec![1; 8]);
        qp.post(read(), Vec::new());
        qp.post(write(128, true), vec![2; 8]);
        assert!(!qp.can_execute());
        while qp.transmit().is_some() {}
        let order: Vec<_> = std::iter::from_fn(|| qp.pop_inbound())
            .map(|i| match i {
                Inbound::Write { offset, .. } => offset,
                Inbound::Read { .. } => 0,
                Inbound::Send { .. } => 1,
                Inbound::Flush { .. } => 2,
            })
            .collect();
        assert_eq!(order, vec![64, 0, 128]);
    }

    #[test]
    fn write_completes_when_transmitted_read_only_when_executed() {
        let mut qp = Qp::new();
        qp.post(write(64, true), vec![1; 8]);
        qp.post(read(), Vec::new());
        assert!(!qp.can_complete());
        qp.transmit();
        // Acknowledged by the remote NIC, not placed: completes anyway.
        assert!(qp.can_complete());
        qp.complete();
        assert_eq!(qp.reap(), Some(Cqe::Write));
        let read_id = qp.transmit().unwrap();
        assert!(!qp.can_complete());
        // The READ is behind the WRITE at the remote NIC.
        assert!(matches!(qp.pop_inbound(), Some(Inbound::Write { .. })));
        assert!(matches!(qp.pop_inbound(), Some(Inbound::Read { .. })));
        qp.mark_executed(read_id);
        assert!(qp.can_complete());
        qp.complete();
        assert_eq!(qp.reap(), Some(Cqe::Read));
    }

    #[test]
    fn completions_are_in_posting_order_and_unsignaled_are_silent() {
        let mut qp = Qp::new();
        let r = qp.post(read(), Vec::new());
        qp.post(write(64, false), vec![1; 8]);
        qp.post(write(72, true), vec![1; 8]);
        qp.transmit();
        qp.transmit();
        qp.transmit();
        // The WRITEs are acknowledged but the READ at the head is not back.
        assert!(!qp.can_complete());
        qp.mark_executed(r);
        qp.complete();
        qp.complete();
        qp.complete();
        let cqes: Vec<_> = std::iter::from_fn(|| qp.reap()).collect();
        assert_eq!(cqes, vec![Cqe::Read, Cqe::Write]);
    }

    #[test]
    fn connection_loss_drops_buffers_and_fails() {
        let mut qp = Qp::new();
        qp.post(write(64, true), vec![1; 8]);
        qp.transmit();
        qp.break_connection();
        assert!(!qp.can_execute() && !qp.can_complete());
        assert_eq!(qp.reap(), Some(Cqe::Failed(OpKind::Write)));
        qp.post(read(), Vec::new());
        assert_eq!(qp.reap(), Some(Cqe::Failed(OpKind::Read)));
        qp.push_recv([0; 8]);
        assert!(!qp.can_reap());
    }

    #[test]
    fn flush_is_executed_after_every_earlier_write() {
        let mut qp = Qp::new();
        qp.post(write(64, false), vec![1; 8]);
        qp.post(write(128, false), vec![2; 8]);
        let f = qp.post(flush(64, 72), Vec::new());
        qp.post(write(256, true), vec![3; 8]);
        while qp.transmit().is_some() {}
        let order: Vec<_> = std::iter::from_fn(|| qp.pop_inbound()).collect();
        assert_eq!(order.len(), 4);
        assert!(matches!(order[0], Inbound::Write { offset: 64, .. }));
        assert!(matches!(order[1], Inbound::Write { offset: 128, .. }));
        assert_eq!(
            order[2],
            Inbound::Flush {
                sq_id: f,
                offset: 64,
                len: 72
            }
        );
        assert!(matches!(order[3], Inbound::Write { offset: 256, .. }));
    }

    #[test]
    fn flush_completes_only_after_execution_never_on_transmission() {
        let mut qp = Qp::new();
        qp.post(write(64, false), vec![1; 8]);
        let f = qp.post(flush(64, 8), Vec::new());
        assert_eq!(qp.transmit(), Some(1));
        assert_eq!(qp.transmit(), Some(f));
        // Both at the remote NIC: the unsignaled WRITE may complete, the
        // FLUSH may not (it is not executed).
        assert!(qp.can_complete());
        assert_eq!(qp.complete().map(|e| e.id), Some(1));
        assert!(!qp.can_complete());
        assert_eq!(qp.complete(), None);
        assert!(matches!(qp.pop_inbound(), Some(Inbound::Write { .. })));
        // Placing the WRITE is not enough either.
        assert!(!qp.can_complete());
        assert!(matches!(
            qp.pop_inbound(),
            Some(Inbound::Flush { sq_id, .. }) if sq_id == f
        ));
        assert!(!qp.can_complete());
        qp.mark_executed(f);
        assert!(qp.can_complete());
        assert_eq!(qp.complete().map(|e| e.op), Some(flush(64, 8)));
        assert_eq!(qp.reap(), Some(Cqe::Flush));
        assert_eq!(qp.reap(), None);
    }

    #[test]
    fn marking_a_write_executed_changes_nothing() {
        let mut qp = Qp::new();
        let w = qp.post(write(64, true), vec![1; 8]);
        qp.mark_executed(w);
        // Still posted: not transmitted, cannot complete.
        assert!(!qp.can_complete());
        assert_eq!(qp.sq().front().map(|e| e.state), Some(SqState::Posted));
    }

    #[test]
    fn connection_loss_fails_an_outstanding_flush() {
        let mut qp = Qp::new();
        qp.post(flush(64, 8), Vec::new());
        qp.transmit();
        qp.break_connection();
        assert!(!qp.can_execute() && !qp.can_complete());
        assert_eq!(qp.reap(), Some(Cqe::Failed(OpKind::Flush)));
    }
}
