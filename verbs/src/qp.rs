//! One connected RC queue pair with its completion queue and registered
//! buffers.
//!
//! Buffers are divided in slots. A slot posted to the NIC (a SEND not yet
//! completed, a RECV not yet completed, a READ destination not yet
//! completed) cannot be borrowed: [`Endpoint::recv_data`] and
//! [`Endpoint::take_read`] only give slots whose completion was polled, and
//! posting again needs `&mut self`, which no outstanding borrow allows.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rdma_sys::{
    ibv_ack_cq_events, ibv_comp_channel, ibv_cq, ibv_create_comp_channel, ibv_create_cq,
    ibv_destroy_comp_channel, ibv_destroy_cq, ibv_get_cq_event, ibv_poll_cq, ibv_post_recv,
    ibv_post_send, ibv_qp, ibv_qp_cap, ibv_qp_init_attr, ibv_qp_type, ibv_recv_wr,
    ibv_req_notify_cq, ibv_send_flags, ibv_send_wr, ibv_sge, ibv_wc, ibv_wr_opcode,
    rdma_cm_event_type, rdma_create_qp, rdma_destroy_qp,
};

use crate::cm::{poll_in, Id};
use crate::error::Error;
use crate::flush::{FlushSupport, FlushType};
use crate::mem::{Access, Buf, Mr, Pd};

/// Bytes at the end of the READ buffer that discarded READs land in.
const SINK_LEN: usize = 64;
/// Completions read per `ibv_poll_cq`.
const POLL_BATCH: usize = 16;
/// Completion events acknowledged at once.
const ACK_BATCH: u32 = 64;

/// A remote registration: where WRITEs go and READs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Address of its first byte in the peer's address space.
    pub addr: u64,
    /// Its remote key.
    pub rkey: u32,
    /// Its length.
    pub len: u64,
}

/// How to build an endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// SENDs that may be outstanding at once.
    pub send_slots: u32,
    /// Bytes of each SEND buffer slot (the part copied from the caller).
    pub send_slot_len: usize,
    /// RECV buffers kept posted.
    pub recv_slots: u32,
    /// Bytes of each RECV buffer.
    pub recv_slot_len: usize,
    /// READ destination slots.
    pub read_slots: u32,
    /// Bytes of each READ slot.
    pub read_slot_len: usize,
    /// Send queue depth: WRITEs, READs and SENDs outstanding at once.
    pub max_send_wr: u32,
    /// Inline data asked for (what the device grants is
    /// [`Endpoint::max_inline`]).
    pub max_inline: u32,
    /// Local memory RDMA WRITEs and SEND tails read from.
    pub source: Option<Arc<Mr>>,
    /// The peer's memory WRITEs and READs address.
    pub remote: Option<Remote>,
}

/// Kind of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WcKind {
    /// A SEND left; its slot is free again.
    Send,
    /// An RDMA WRITE finished.
    Write,
    /// An RDMA READ into a slot finished; take the bytes with
    /// [`Endpoint::take_read`].
    Read,
    /// An RDMA READ whose bytes are thrown away finished, or an RDMA
    /// FLUSH ([`Endpoint::post_flush`]; [`Wc::is_flush`] tells them apart):
    /// both are the point at which earlier WRITEs are known to have
    /// reached the target's memory.
    Discard,
    /// A message arrived in a RECV slot; read it with
    /// [`Endpoint::recv_data`], then post the slot again.
    Recv,
}

/// One work completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wc {
    /// What completed.
    pub kind: WcKind,
    /// The caller's tag given when posting (0 for RECVs).
    pub tag: u32,
    /// The slot (SEND, READ, RECV).
    pub slot: u32,
    /// `ibv_wc_status` (0 = success).
    pub status: u32,
    /// Bytes received (RECV) or read (READ).
    pub byte_len: u32,
    /// An RDMA FLUSH (reported with kind `Discard`).
    flush: bool,
}

impl Wc {
    /// Whether it succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == 0
    }

    /// Whether this is the completion of an RDMA FLUSH
    /// ([`Endpoint::post_flush`]; its `kind` is [`WcKind::Discard`]).
    pub fn is_flush(&self) -> bool {
        self.flush
    }

    /// `ibv_wc_status_str` of the status.
    pub fn status_str(&self) -> String {
        // SAFETY: returns a static string for any value.
        let s = unsafe { rdma_sys::ibv_wc_status_str(self.status) };
        if s.is_null() {
            return format!("status {}", self.status);
        }
        // SAFETY: a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(s) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Why [`Endpoint::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The completion queue was armed just now: poll it once more before
    /// waiting (a completion may have come before the arming).
    Rearmed,
    /// A completion event: poll the completion queue.
    Completion,
    /// The connection is gone (the peer disconnected, or
    /// [`Disconnector::disconnect`]); outstanding work completes with
    /// errors.
    Disconnected,
    /// Nothing happened within the time given.
    TimedOut,
}

/// Disconnects an endpoint from another thread (wakes its waits).
#[derive(Clone)]
pub struct Disconnector(Arc<Id>);

impl Disconnector {
    /// `rdma_disconnect`: the queue pair moves to the error state and every
    /// posted work request completes with an error.
    pub fn disconnect(&self) {
        self.0.disconnect();
    }
}

impl std::fmt::Debug for Disconnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disconnector")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Posted,
    Done,
}

/// Destroys the queue pair of an identifier when dropped.
struct QpGuard {
    id: Arc<Id>,
    qp: NonNull<ibv_qp>,
}

impl Drop for QpGuard {
    fn drop(&mut self) {
        // SAFETY: the identifier's QP, created by rdma_create_qp; destroyed
        // once, before the CQ it uses (field order of `Endpoint`).
        unsafe { rdma_destroy_qp(self.id.as_ptr()) };
    }
}

/// A completion queue and its completion channel.
struct Cq {
    cq: NonNull<ibv_cq>,
    comp: NonNull<ibv_comp_channel>,
    unacked: u32,
}

impl Drop for Cq {
    fn drop(&mut self) {
        // SAFETY: our CQ and channel; every event we got is acknowledged
        // before the CQ is destroyed, and the QP using the CQ is gone.
        unsafe {
            if self.unacked > 0 {
                ibv_ack_cq_events(self.cq.as_ptr(), self.unacked);
            }
            ibv_destroy_cq(self.cq.as_ptr());
            ibv_destroy_comp_channel(self.comp.as_ptr());
        }
    }
}

/// A connected (or about to be) RC queue pair. See the module docs.
pub struct Endpoint {
    // Drop order: the QP first, then its CQ, then the registrations it used,
    // then the domain.
    qp: QpGuard,
    cq: Cq,
    send: Mr,
    recv: Mr,
    read: Mr,
    source: Option<Arc<Mr>>,
    pd: Arc<Pd>,
    remote: Option<Remote>,
    send_slot_len: usize,
    recv_slot_len: usize,
    read_slot_len: usize,
    send_state: Vec<Slot>,
    recv_state: Vec<Slot>,
    read_state: Vec<Slot>,
    max_inline: u32,
    armed: bool,
    disconnected: bool,
    /// Work requests held back by [`Endpoint::begin_batch`], posted as one
    /// list by [`Endpoint::end_batch`].
    batch: Batch,
    /// What RDMA FLUSH this queue pair can post.
    flush: FlushSupport,
    /// Its extended handle, when it was created for FLUSH.
    #[cfg(rpmem_verbs_flush)]
    qpx: Option<NonNull<rdma_sys::ibv_qp_ex>>,
}

// SAFETY: the verbs objects may be used from any thread (one at a time:
// every posting method takes `&mut self`); the buffers are owned.
unsafe impl Send for Endpoint {}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("peer", &self.qp.id.peer_addr())
            .field("device", &self.pd.device_name())
            .field("max_inline", &self.max_inline)
            .finish()
    }
}

/// Work requests held back for one `ibv_post_send` (see
/// [`Endpoint::begin_batch`]); the vectors keep their capacity between
/// batches.
#[derive(Default)]
struct Batch {
    open: bool,
    wrs: Vec<ibv_send_wr>,
    sges: Vec<ibv_sge>,
    /// First scatter/gather entry and count of each request.
    sge_at: Vec<(usize, i32)>,
}

impl Batch {
    /// Copies `wr` and its scatter/gather list; the pointers are set when
    /// the list is posted.
    fn hold(&mut self, wr: &ibv_send_wr) {
        let at = self.sges.len();
        let count = usize::try_from(wr.num_sge).unwrap_or(0);
        if !wr.sg_list.is_null() && count > 0 {
            // SAFETY: every request held comes from this endpoint's posting
            // methods, whose `sg_list` points at `num_sge` live entries for
            // the duration of this call.
            let list = unsafe { std::slice::from_raw_parts(wr.sg_list, count) };
            self.sges.extend_from_slice(list);
        }
        // SAFETY: `ibv_send_wr` is a plain C structure (numbers, pointers,
        // unions of them) without drop glue: a bitwise copy is a valid value.
        let mut copy = unsafe { std::ptr::read(wr) };
        copy.next = std::ptr::null_mut();
        copy.sg_list = std::ptr::null_mut();
        self.wrs.push(copy);
        self.sge_at.push((
            at,
            i32::try_from(self.sges.len().saturating_sub(at)).unwrap_or(0),
        ));
    }

    fn clear(&mut self) {
        self.wrs.clear();
        self.sges.clear();
        self.sge_at.clear();
    }
}

/// What a work request was (the kinds of [`WcKind`] and RDMA FLUSH).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Send,
    Write,
    Read,
    Discard,
    Recv,
    Flush,
}

impl Op {
    fn kind(self) -> WcKind {
        match self {
            Op::Send => WcKind::Send,
            Op::Write => WcKind::Write,
            Op::Read => WcKind::Read,
            Op::Discard | Op::Flush => WcKind::Discard,
            Op::Recv => WcKind::Recv,
        }
    }
}

fn wr_id(op: Op, slot: u32, tag: u32) -> u64 {
    let k: u64 = match op {
        Op::Send => 1,
        Op::Write => 2,
        Op::Read => 3,
        Op::Discard => 4,
        Op::Recv => 5,
        Op::Flush => 6,
    };
    (k << 56) | (u64::from(slot & 0x00ff_ffff) << 32) | u64::from(tag)
}

fn decode(id: u64) -> Option<(Op, u32, u32)> {
    let op = match id >> 56 {
        1 => Op::Send,
        2 => Op::Write,
        3 => Op::Read,
        4 => Op::Discard,
        5 => Op::Recv,
        6 => Op::Flush,
        _ => return None,
    };
    Some((op, ((id >> 32) & 0x00ff_ffff) as u32, id as u32))
}

fn invalid(what: &str, why: String) -> Error {
    Error::other(what, io::ErrorKind::InvalidInput, why)
}

fn slots_len(what: &str, n: u32, len: usize) -> Result<usize, Error> {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(len))
        .ok_or_else(|| invalid(what, format!("{n} slots of {len} bytes overflow")))
}

impl Endpoint {
    pub(crate) fn create(id: Arc<Id>, pd: &Arc<Pd>, c: EndpointConfig) -> Result<Endpoint, Error> {
        if !pd.same_device(&id) {
            return Err(invalid(
                "creating a queue pair",
                format!(
                    "the protection domain is on {}, the connection on {}",
                    pd.device_name(),
                    id.device_name()
                ),
            ));
        }
        if c.max_send_wr == 0 || c.send_slots == 0 || c.send_slot_len == 0 {
            return Err(invalid(
                "creating a queue pair",
                "the send queue and the send buffers need at least one slot".to_owned(),
            ));
        }
        let ctx = id.verbs().ok_or_else(|| {
            invalid(
                "creating a queue pair",
                "the connection is not bound to a device".to_owned(),
            )
        })?;
        // SAFETY: a valid device context (kept open by `id`).
        let comp = unsafe { ibv_create_comp_channel(ctx.as_ptr()) };
        let comp = NonNull::new(comp).ok_or_else(|| Error::last_os("ibv_create_comp_channel"))?;
        let cqe = c.max_send_wr.saturating_add(c.recv_slots).saturating_add(1);
        let cqe_i = i32::try_from(cqe).unwrap_or(i32::MAX);
        // SAFETY: a valid context and completion channel.
        let cq =
            unsafe { ibv_create_cq(ctx.as_ptr(), cqe_i, std::ptr::null_mut(), comp.as_ptr(), 0) };
        let Some(cq) = NonNull::new(cq) else {
            let e = Error::last_os(format!("ibv_create_cq with {cqe} entries"));
            // SAFETY: our channel, not used by anything.
            unsafe { ibv_destroy_comp_channel(comp.as_ptr()) };
            return Err(e);
        };
        let cq = Cq {
            cq,
            comp,
            unacked: 0,
        };
        // SAFETY: the channel's descriptor; only O_NONBLOCK changes.
        unsafe {
            let fd = (*comp.as_ptr()).fd;
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
            }
        }
        let cap = ibv_qp_cap {
            max_send_wr: c.max_send_wr,
            max_recv_wr: c.recv_slots.max(1),
            max_send_sge: 2,
            max_recv_sge: 1,
            max_inline_data: c.max_inline,
        };
        // Where FLUSH can be posted, the QP is created asking for it (and
        // for the operations ibv_post_send posts); a provider that refuses
        // gets the plain QP below, without FLUSH.
        #[cfg_attr(not(rpmem_verbs_flush), allow(unused_mut))]
        let mut granted: Option<ibv_qp_cap> = None;
        #[cfg_attr(not(rpmem_verbs_flush), allow(unused_mut))]
        let mut flush = FlushSupport::NONE;
        #[cfg(rpmem_verbs_flush)]
        let mut qpx = None;
        #[cfg(rpmem_verbs_flush)]
        if pd.flush_support().any() {
            if let Ok((got, x)) =
                crate::flush::create_qp_with_flush(id.as_ptr(), pd.as_ptr(), cq.cq.as_ptr(), cap)
            {
                granted = Some(got);
                if x.is_some() {
                    flush = pd.flush_support();
                }
                qpx = x;
            }
        }
        let granted = match granted {
            Some(g) => g,
            None => {
                let mut attr = ibv_qp_init_attr {
                    qp_context: std::ptr::null_mut(),
                    send_cq: cq.cq.as_ptr(),
                    recv_cq: cq.cq.as_ptr(),
                    srq: std::ptr::null_mut(),
                    cap,
                    qp_type: ibv_qp_type::IBV_QPT_RC,
                    sq_sig_all: 0,
                };
                // SAFETY: a resolved/requested identifier without a QP, a PD
                // of its device, and CQs of its context.
                if unsafe { rdma_create_qp(id.as_ptr(), pd.as_ptr(), &mut attr) } != 0 {
                    return Err(Error::last_os(format!(
                        "rdma_create_qp (send queue {}, {} receives, inline {}) on {}",
                        c.max_send_wr,
                        c.recv_slots,
                        c.max_inline,
                        pd.device_name()
                    )));
                }
                attr.cap
            }
        };
        // SAFETY: rdma_create_qp set the identifier's qp.
        let qp = NonNull::new(unsafe { (*id.as_ptr()).qp })
            .ok_or_else(|| Error::last_os("rdma_create_qp gave no queue pair"))?;
        let qp = QpGuard { id, qp };
        let send_len = slots_len("send buffer", c.send_slots, c.send_slot_len)?;
        let recv_len = slots_len(
            "receive buffer",
            c.recv_slots.max(1),
            c.recv_slot_len.max(1),
        )?;
        let read_len = slots_len("read buffer", c.read_slots, c.read_slot_len)?
            .checked_add(SINK_LEN)
            .ok_or_else(|| invalid("read buffer", "length overflows".to_owned()))?;
        let send = Mr::register(pd, Buf::new(send_len)?, Access::LOCAL_READ)?;
        let recv = Mr::register(pd, Buf::new(recv_len)?, Access::LOCAL_WRITE)?;
        let read = Mr::register(pd, Buf::new(read_len)?, Access::LOCAL_WRITE)?;
        let n = |v: u32| usize::try_from(v).unwrap_or(0);
        let mut ep = Endpoint {
            qp,
            cq,
            send,
            recv,
            read,
            source: c.source,
            pd: Arc::clone(pd),
            remote: c.remote,
            send_slot_len: c.send_slot_len,
            recv_slot_len: c.recv_slot_len.max(1),
            read_slot_len: c.read_slot_len,
            send_state: vec![Slot::Free; n(c.send_slots)],
            recv_state: vec![Slot::Free; n(c.recv_slots)],
            read_state: vec![Slot::Free; n(c.read_slots)],
            max_inline: granted.max_inline_data,
            armed: false,
            disconnected: false,
            batch: Batch::default(),
            flush,
            #[cfg(rpmem_verbs_flush)]
            qpx,
        };
        for slot in 0..c.recv_slots {
            ep.post_recv(slot)?;
        }
        Ok(ep)
    }

    pub(crate) fn id(&self) -> &Id {
        &self.qp.id
    }

    /// Inline data the queue pair takes (SENDs up to this long are copied
    /// at posting).
    pub fn max_inline(&self) -> u32 {
        self.max_inline
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.qp.id.peer_addr()
    }

    /// Name of the device.
    pub fn device_name(&self) -> String {
        self.pd.device_name()
    }

    /// A handle that disconnects this endpoint from another thread.
    pub fn disconnector(&self) -> Disconnector {
        Disconnector(Arc::clone(&self.qp.id))
    }

    /// Whether the connection is known to be gone.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected
    }

    /// Holds back the work requests posted from now on (WRITE, READ, SEND;
    /// not FLUSH, which first posts what is held) until
    /// [`end_batch`](Self::end_batch) posts them as one list: one
    /// `ibv_post_send`, one doorbell. Slots and ranges are checked when each
    /// is posted, as without a batch.
    pub fn begin_batch(&mut self) {
        self.batch.open = true;
    }

    /// Posts the work requests held since [`begin_batch`](Self::begin_batch)
    /// as one list, in order, and stops holding. On an error none of the
    /// list after the refused request was posted.
    pub fn end_batch(&mut self) -> Result<(), Error> {
        self.batch.open = false;
        self.submit_batch()
    }

    fn submit_batch(&mut self) -> Result<(), Error> {
        let b = &mut self.batch;
        if b.wrs.is_empty() {
            return Ok(());
        }
        // Link the list now that neither vector grows any more.
        let n = b.wrs.len();
        let sges = b.sges.as_mut_ptr();
        let wrs = b.wrs.as_mut_ptr();
        for (i, &(at, count)) in b.sge_at.iter().enumerate() {
            let Some(wr) = b.wrs.get_mut(i) else { break };
            wr.sg_list = if count == 0 {
                std::ptr::null_mut()
            } else {
                sges.wrapping_add(at)
            };
            wr.num_sge = count;
            wr.next = if i + 1 < n {
                wrs.wrapping_add(i + 1)
            } else {
                std::ptr::null_mut()
            };
        }
        let mut bad: *mut ibv_send_wr = std::ptr::null_mut();
        // SAFETY: our QP; the list's requests and scatter/gather entries live
        // in `self.batch` for the call (linked above to the vectors' final
        // buffers), and the memory they name is registered and stays so
        // until the QP is destroyed.
        let rc = unsafe { ibv_post_send(self.qp.qp.as_ptr(), wrs, &mut bad) };
        b.clear();
        if rc != 0 {
            return Err(Error::code(
                format!("ibv_post_send (a list of {n} work requests)"),
                rc,
            ));
        }
        Ok(())
    }

    fn post_send_wr(&mut self, wr: &mut ibv_send_wr, what: &str) -> Result<(), Error> {
        if self.batch.open {
            self.batch.hold(wr);
            return Ok(());
        }
        let mut bad: *mut ibv_send_wr = std::ptr::null_mut();
        // SAFETY: our QP; `wr` and its scatter/gather list are valid for the
        // call, and the memory they name is registered and stays so until
        // the QP is destroyed (the registrations outlive it).
        let rc = unsafe { ibv_post_send(self.qp.qp.as_ptr(), wr, &mut bad) };
        if rc != 0 {
            return Err(Error::code(format!("ibv_post_send ({what})"), rc));
        }
        Ok(())
    }

    fn remote_range(&self, what: &str, offset: u64, len: u64) -> Result<(u64, u32), Error> {
        let r = self
            .remote
            .ok_or_else(|| invalid(what, "no remote registration is known".to_owned()))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= r.len)
            .ok_or_else(|| {
                invalid(
                    what,
                    format!(
                        "remote range at {offset} of {len} bytes passes the end of the {}-byte registration",
                        r.len
                    ),
                )
            })?;
        let _ = end;
        let addr = r
            .addr
            .checked_add(offset)
            .ok_or_else(|| invalid(what, "remote address overflows".to_owned()))?;
        Ok((addr, r.rkey))
    }

    /// Posts an RDMA WRITE of source `[src_offset, src_offset + len)` to
    /// remote `remote_offset`. Unsignaled WRITEs report no completion
    /// (unless they fail). A WRITE of at most [`Endpoint::max_inline`]
    /// bytes is posted inline: its bytes are copied when the request is
    /// posted (at [`Endpoint::end_batch`] inside a batch), not fetched
    /// later by the device.
    pub fn post_write(
        &mut self,
        tag: u32,
        src_offset: u64,
        len: u32,
        remote_offset: u64,
        signaled: bool,
    ) -> Result<(), Error> {
        let what = "RDMA WRITE";
        let src = self
            .source
            .as_ref()
            .ok_or_else(|| invalid(what, "no source registration".to_owned()))?;
        let laddr = src.range(src_offset, u64::from(len)).ok_or_else(|| {
            invalid(
                what,
                format!(
                    "source range at {src_offset} of {len} bytes passes the end of the {}-byte region",
                    src.len()
                ),
            )
        })?;
        let lkey = src.lkey();
        let (raddr, rkey) = self.remote_range(what, remote_offset, u64::from(len))?;
        let mut sge = ibv_sge {
            addr: laddr,
            length: len,
            lkey,
        };
        // SAFETY: all-zero is a valid ibv_send_wr (null pointers, zero
        // numbers, inactive unions).
        let mut wr: ibv_send_wr = unsafe { std::mem::zeroed() };
        wr.wr_id = wr_id(Op::Write, 0, tag);
        wr.sg_list = &mut sge;
        wr.num_sge = 1;
        wr.opcode = ibv_wr_opcode::IBV_WR_RDMA_WRITE;
        let mut flags = if signaled {
            ibv_send_flags::IBV_SEND_SIGNALED.0
        } else {
            0
        };
        // A small WRITE travels inside the work request: the device need
        // not fetch the bytes (one DMA read fewer on a hardware NIC; no
        // memory-region lookup and copy in rxe's kernel requester).
        if len <= self.max_inline {
            flags |= ibv_send_flags::IBV_SEND_INLINE.0;
        }
        wr.send_flags = flags;
        wr.wr.rdma.remote_addr = raddr;
        wr.wr.rdma.rkey = rkey;
        self.post_send_wr(&mut wr, what)
    }

    /// Posts an RDMA READ of remote `[remote_offset, remote_offset + len)`
    /// into a free READ slot; `None` when every slot is busy.
    pub fn post_read(
        &mut self,
        tag: u32,
        remote_offset: u64,
        len: u32,
    ) -> Result<Option<u32>, Error> {
        let what = "RDMA READ";
        if len as usize > self.read_slot_len {
            return Err(invalid(
                what,
                format!(
                    "{len} bytes do not fit a {}-byte read slot",
                    self.read_slot_len
                ),
            ));
        }
        let Some(slot) = self.read_state.iter().position(|s| *s == Slot::Free) else {
            return Ok(None);
        };
        let (raddr, rkey) = self.remote_range(what, remote_offset, u64::from(len))?;
        let laddr = self
            .read
            .range((slot * self.read_slot_len) as u64, u64::from(len))
            .ok_or_else(|| invalid(what, "read slot outside the buffer".to_owned()))?;
        let slot32 = slot as u32;
        self.post_read_wr(wr_id(Op::Read, slot32, tag), laddr, len, raddr, rkey)?;
        if let Some(s) = self.read_state.get_mut(slot) {
            *s = Slot::Posted;
        }
        Ok(Some(slot32))
    }

    /// Posts an RDMA READ of at most 64 bytes whose data is thrown away
    /// (APM's READ that makes earlier WRITEs durable).
    pub fn post_read_discard(
        &mut self,
        tag: u32,
        remote_offset: u64,
        len: u32,
    ) -> Result<(), Error> {
        let what = "flushing RDMA READ";
        if len as usize > SINK_LEN || len == 0 {
            return Err(invalid(
                what,
                format!("{len} bytes; 1 to {SINK_LEN} allowed"),
            ));
        }
        let (raddr, rkey) = self.remote_range(what, remote_offset, u64::from(len))?;
        let sink = self.read.len() - SINK_LEN;
        let laddr = self
            .read
            .range(sink as u64, u64::from(len))
            .ok_or_else(|| invalid(what, "sink outside the buffer".to_owned()))?;
        self.post_read_wr(wr_id(Op::Discard, 0, tag), laddr, len, raddr, rkey)
    }

    fn post_read_wr(
        &mut self,
        id: u64,
        laddr: u64,
        len: u32,
        raddr: u64,
        rkey: u32,
    ) -> Result<(), Error> {
        let mut sge = ibv_sge {
            addr: laddr,
            length: len,
            lkey: self.read.lkey(),
        };
        // SAFETY: all-zero is a valid ibv_send_wr.
        let mut wr: ibv_send_wr = unsafe { std::mem::zeroed() };
        wr.wr_id = id;
        wr.sg_list = &mut sge;
        wr.num_sge = 1;
        wr.opcode = ibv_wr_opcode::IBV_WR_RDMA_READ;
        wr.send_flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
        wr.wr.rdma.remote_addr = raddr;
        wr.wr.rdma.rkey = rkey;
        self.post_send_wr(&mut wr, "RDMA READ")
    }

    /// Which RDMA FLUSH placement types this endpoint can post: its
    /// domain's [`Pd::flush_support`] when the queue pair was created for
    /// FLUSH (which the endpoint does by itself wherever the domain
    /// supports it), [`FlushSupport::NONE`] otherwise.
    pub fn flush_support(&self) -> FlushSupport {
        self.flush
    }

    /// Posts a signaled RDMA FLUSH of the remote range of `len` bytes at
    /// `remote_offset` with placement `kind`; it completes (as
    /// [`WcKind::Discard`] with [`Wc::is_flush`]) once the target has made
    /// every earlier WRITE of this queue pair to that range globally
    /// visible or persistent. The remote registration needs the matching
    /// right ([`FlushType::access`]); without it the FLUSH completes with
    /// an error status and the queue pair goes to the error state.
    ///
    /// Fails before posting (kind [`io::ErrorKind::Unsupported`]) when
    /// [`flush_support`](Self::flush_support) lacks `kind`, and for an
    /// empty range or one outside the remote registration.
    ///
    /// Mixing with the other posting methods is fine: they use
    /// `ibv_post_send`, this uses the `ibv_wr_*` API, and ibv_wr_post(3)
    /// allows both on one queue pair as long as no `ibv_post_send` falls
    /// inside an `ibv_wr_start`..`ibv_wr_complete` batch, which `&mut self`
    /// guarantees here.
    pub fn post_flush(
        &mut self,
        tag: u32,
        remote_offset: u64,
        len: u32,
        kind: FlushType,
    ) -> Result<(), Error> {
        let what = "RDMA FLUSH";
        if !self.flush.supports(kind) {
            return Err(Error::other(
                what,
                io::ErrorKind::Unsupported,
                format!(
                    "{kind} FLUSH is not available on this queue pair ({})",
                    if crate::flush::flush_compiled() {
                        "the device or the loaded rdma-core lacks it"
                    } else {
                        "built without rdma-core >= 45 headers"
                    }
                ),
            ));
        }
        if len == 0 {
            return Err(invalid(what, "an empty range".to_owned()));
        }
        let (raddr, rkey) = self.remote_range(what, remote_offset, u64::from(len))?;
        // The `ibv_wr_*` batch must not interleave with a held list: post
        // that first, in order.
        self.submit_batch()?;
        self.post_flush_wr(wr_id(Op::Flush, 0, tag), rkey, raddr, len, kind)
    }

    #[cfg(rpmem_verbs_flush)]
    fn post_flush_wr(
        &mut self,
        id: u64,
        rkey: u32,
        raddr: u64,
        len: u32,
        kind: FlushType,
    ) -> Result<(), Error> {
        let Some(qpx) = self.qpx else {
            return Err(Error::other(
                "RDMA FLUSH",
                io::ErrorKind::Unsupported,
                "the queue pair was not created for FLUSH".to_owned(),
            ));
        };
        // SAFETY: `qpx` is our live QP's extended handle, checked when the
        // endpoint was made; `&mut self` keeps every other posting method
        // out of the batch.
        let rc = unsafe { crate::flush::post(qpx, id, rkey, raddr, len, kind.placement()) };
        if rc != 0 {
            return Err(Error::code("ibv_wr_complete (RDMA FLUSH)", rc));
        }
        Ok(())
    }

    #[cfg(not(rpmem_verbs_flush))]
    fn post_flush_wr(
        &mut self,
        _id: u64,
        _rkey: u32,
        _raddr: u64,
        _len: u32,
        _kind: FlushType,
    ) -> Result<(), Error> {
        Err(Error::other(
            "RDMA FLUSH",
            io::ErrorKind::Unsupported,
            "built without rdma-core >= 45 headers".to_owned(),
        ))
    }

    /// Gives the bytes of a completed READ slot to `f` and frees the slot;
    /// `None` if the slot holds no completed READ or `len` exceeds it.
    pub fn take_read<R>(&mut self, slot: u32, len: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let i = slot as usize;
        if self.read_state.get(i) != Some(&Slot::Done) || len > self.read_slot_len {
            return None;
        }
        let p = self.read.ptr_at(i * self.read_slot_len)?;
        // SAFETY: the slot's READ completed and nothing is posted into it
        // (state Done), so the NIC does not write these bytes while the
        // slice lives; they lie inside the buffer (checked by `ptr_at` and
        // the slot arithmetic).
        let data = unsafe { std::slice::from_raw_parts(p.cast_const(), len) };
        let r = f(data);
        if let Some(s) = self.read_state.get_mut(i) {
            *s = Slot::Free;
        }
        Some(r)
    }

    /// Posts a SEND of `head` (copied into a free send slot) followed by
    /// source `[tail.0, tail.0 + tail.1)` if given, signaled. `None` when
    /// every send slot is busy.
    pub fn post_send(
        &mut self,
        tag: u32,
        head: &[u8],
        tail: Option<(u64, u32)>,
    ) -> Result<Option<u32>, Error> {
        let what = "SEND";
        if head.len() > self.send_slot_len || head.is_empty() {
            return Err(invalid(
                what,
                format!(
                    "{} header bytes; 1 to {} fit",
                    head.len(),
                    self.send_slot_len
                ),
            ));
        }
        let Some(slot) = self.send_state.iter().position(|s| *s == Slot::Free) else {
            return Ok(None);
        };
        let off = slot * self.send_slot_len;
        let dst = self
            .send
            .ptr_at(off)
            .ok_or_else(|| invalid(what, "send slot outside the buffer".to_owned()))?;
        // SAFETY: the slot is free (not posted), so the NIC does not read it
        // now; `head.len() <= send_slot_len` bytes fit in the slot.
        unsafe { std::ptr::copy_nonoverlapping(head.as_ptr(), dst, head.len()) };
        let mut sges = [
            ibv_sge {
                addr: self.send.addr() + off as u64,
                length: head.len() as u32,
                lkey: self.send.lkey(),
            },
            ibv_sge {
                addr: 0,
                length: 0,
                lkey: 0,
            },
        ];
        let mut nsge = 1;
        let mut total = head.len() as u64;
        if let Some((src_off, len)) = tail.filter(|t| t.1 > 0) {
            let src = self
                .source
                .as_ref()
                .ok_or_else(|| invalid(what, "no source registration".to_owned()))?;
            let addr = src.range(src_off, u64::from(len)).ok_or_else(|| {
                invalid(
                    what,
                    format!(
                        "source range at {src_off} of {len} bytes passes the end of the region"
                    ),
                )
            })?;
            sges[1] = ibv_sge {
                addr,
                length: len,
                lkey: src.lkey(),
            };
            nsge = 2;
            total += u64::from(len);
        }
        let mut flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
        if total <= u64::from(self.max_inline) {
            flags |= ibv_send_flags::IBV_SEND_INLINE.0;
        }
        // SAFETY: all-zero is a valid ibv_send_wr.
        let mut wr: ibv_send_wr = unsafe { std::mem::zeroed() };
        wr.wr_id = wr_id(Op::Send, slot as u32, tag);
        wr.sg_list = sges.as_mut_ptr();
        wr.num_sge = nsge;
        wr.opcode = ibv_wr_opcode::IBV_WR_SEND;
        wr.send_flags = flags;
        self.post_send_wr(&mut wr, what)?;
        if let Some(s) = self.send_state.get_mut(slot) {
            *s = Slot::Posted;
        }
        Ok(Some(slot as u32))
    }

    /// Posts RECV slot `slot` (again).
    pub fn post_recv(&mut self, slot: u32) -> Result<(), Error> {
        let i = slot as usize;
        match self.recv_state.get(i) {
            Some(Slot::Posted) => {
                return Err(invalid("RECV", format!("slot {slot} is already posted")));
            }
            None => return Err(invalid("RECV", format!("no slot {slot}"))),
            Some(_) => {}
        }
        let off = i * self.recv_slot_len;
        let addr = self
            .recv
            .range(off as u64, self.recv_slot_len as u64)
            .ok_or_else(|| invalid("RECV", "slot outside the buffer".to_owned()))?;
        let mut sge = ibv_sge {
            addr,
            length: self.recv_slot_len as u32,
            lkey: self.recv.lkey(),
        };
        let mut wr = ibv_recv_wr {
            wr_id: wr_id(Op::Recv, slot, 0),
            next: std::ptr::null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
        };
        let mut bad: *mut ibv_recv_wr = std::ptr::null_mut();
        // SAFETY: our QP; the slot is registered memory nobody references
        // (not posted, and no borrow of it can exist across `&mut self`).
        let rc = unsafe { ibv_post_recv(self.qp.qp.as_ptr(), &mut wr, &mut bad) };
        if rc != 0 {
            return Err(Error::code("ibv_post_recv", rc));
        }
        if let Some(s) = self.recv_state.get_mut(i) {
            *s = Slot::Posted;
        }
        Ok(())
    }

    /// The first `len` bytes of a RECV slot whose completion was polled and
    /// that is not posted again yet.
    pub fn recv_data(&self, slot: u32, len: usize) -> Option<&[u8]> {
        let i = slot as usize;
        if self.recv_state.get(i) != Some(&Slot::Done) || len > self.recv_slot_len {
            return None;
        }
        let p = self.recv.ptr_at(i * self.recv_slot_len)?;
        // SAFETY: the slot is not posted (state Done), so the NIC does not
        // write it while the borrow of `self` lasts (re-posting needs
        // `&mut self`); the bytes lie inside the buffer.
        Some(unsafe { std::slice::from_raw_parts(p.cast_const(), len) })
    }

    /// Reads up to `out.capacity() - out.len()` (at least 1) completions
    /// without waiting; returns how many were appended.
    pub fn poll(&mut self, out: &mut Vec<Wc>) -> Result<usize, Error> {
        // SAFETY: all-zero is a valid ibv_wc.
        let mut wcs: [ibv_wc; POLL_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: our CQ and an array of POLL_BATCH entries.
        let n = unsafe { ibv_poll_cq(self.cq.cq.as_ptr(), POLL_BATCH as i32, wcs.as_mut_ptr()) };
        if n < 0 {
            return Err(Error::code("ibv_poll_cq", n));
        }
        let n = n as usize;
        for wc in wcs.iter().take(n) {
            let Some((op, slot, tag)) = decode(wc.wr_id) else {
                continue;
            };
            let kind = op.kind();
            let i = slot as usize;
            let ok = wc.status == rdma_sys::ibv_wc_status::IBV_WC_SUCCESS;
            match kind {
                WcKind::Send => {
                    if let Some(s) = self.send_state.get_mut(i) {
                        *s = Slot::Free;
                    }
                }
                WcKind::Read => {
                    if let Some(s) = self.read_state.get_mut(i) {
                        *s = if ok { Slot::Done } else { Slot::Free };
                    }
                }
                WcKind::Recv => {
                    if let Some(s) = self.recv_state.get_mut(i) {
                        *s = Slot::Done;
                    }
                }
                WcKind::Write | WcKind::Discard => {}
            }
            out.push(Wc {
                kind,
                tag,
                slot,
                status: wc.status,
                byte_len: wc.byte_len,
                flush: op == Op::Flush,
            });
        }
        Ok(n)
    }

    /// Waits for a completion event, the connection's end, or `timeout`.
    /// Call it only after [`poll`](Self::poll) found nothing; on
    /// [`Wake::Rearmed`] poll once more before waiting again.
    pub fn wait(&mut self, timeout: Duration) -> Result<Wake, Error> {
        self.drain_cm_events()?;
        if self.disconnected {
            return Ok(Wake::Disconnected);
        }
        if !self.armed {
            // SAFETY: our CQ.
            let rc = unsafe { ibv_req_notify_cq(self.cq.cq.as_ptr(), 0) };
            if rc != 0 {
                return Err(Error::code("ibv_req_notify_cq", rc));
            }
            self.armed = true;
            return Ok(Wake::Rearmed);
        }
        let comp_fd = self.comp_fd();
        let cm_fd = self.qp.id.channel().fd();
        let ready = poll_in(&[comp_fd, cm_fd], timeout)?;
        if ready.get(1) == Some(&true) {
            self.drain_cm_events()?;
        }
        if ready.first() == Some(&true) && self.take_cq_event()? {
            return Ok(Wake::Completion);
        }
        if self.disconnected {
            return Ok(Wake::Disconnected);
        }
        Ok(Wake::TimedOut)
    }

    fn comp_fd(&self) -> RawFd {
        // SAFETY: our completion channel.
        unsafe { (*self.cq.comp.as_ptr()).fd }
    }

    fn take_cq_event(&mut self) -> Result<bool, Error> {
        let mut cq: *mut ibv_cq = std::ptr::null_mut();
        let mut ctx: *mut libc::c_void = std::ptr::null_mut();
        // SAFETY: our (non-blocking) completion channel.
        let rc = unsafe { ibv_get_cq_event(self.cq.comp.as_ptr(), &mut cq, &mut ctx) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(Error {
                what: "ibv_get_cq_event".to_owned(),
                source: e,
            });
        }
        self.armed = false;
        self.cq.unacked = self.cq.unacked.saturating_add(1);
        if self.cq.unacked >= ACK_BATCH {
            // SAFETY: our CQ; acknowledges events we received.
            unsafe { ibv_ack_cq_events(self.cq.cq.as_ptr(), self.cq.unacked) };
            self.cq.unacked = 0;
        }
        Ok(true)
    }

    fn drain_cm_events(&mut self) -> Result<(), Error> {
        while let Some(ev) = self.qp.id.channel().try_next()? {
            match ev.kind {
                rdma_cm_event_type::RDMA_CM_EVENT_DISCONNECTED
                | rdma_cm_event_type::RDMA_CM_EVENT_DEVICE_REMOVAL
                | rdma_cm_event_type::RDMA_CM_EVENT_TIMEWAIT_EXIT => self.disconnected = true,
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if !self.disconnected {
            self.qp.id.disconnect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_request_ids_round_trip() {
        for op in [
            Op::Send,
            Op::Write,
            Op::Read,
            Op::Discard,
            Op::Recv,
            Op::Flush,
        ] {
            for (slot, tag) in [(0, 0), (1, u32::MAX), (0x00ff_ffff, 7)] {
                assert_eq!(decode(wr_id(op, slot, tag)), Some((op, slot, tag)));
            }
        }
        assert_eq!(decode(0), None);
        assert_eq!(decode(7 << 56), None);
        assert_eq!(decode(9 << 56), None);
    }

    #[test]
    fn flush_completions_are_reported_as_discard() {
        assert_eq!(Op::Flush.kind(), WcKind::Discard);
        assert_eq!(Op::Discard.kind(), WcKind::Discard);
        assert_eq!(Op::Read.kind(), WcKind::Read);
        assert_ne!(wr_id(Op::Flush, 0, 1), wr_id(Op::Discard, 0, 1));
    }
}
