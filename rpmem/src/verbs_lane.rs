//! One lane of the native RDMA data path (cargo feature `verbs`): an
//! [`InitiatorLane`] over one RC queue pair of `rpmem-verbs`.
//!
//! The engine's operations map one to one onto verbs:
//!
//! * `Write` → RDMA WRITE from the region (registered once for all lanes)
//!   to the pool at the same offset (the pool's address and rkey came in
//!   the CREATE/OPEN response); unsignaled ones report nothing;
//! * `Read { Flush }` → an 8-byte RDMA READ into a sink (APM);
//! * `Flush` → an RDMA FLUSH with the persistent placement type of the
//!   range (method RDMA FLUSH: rpmemd offered it, with the extension flag
//!   `RDMA_FLUSH`, and this host's device can post it; the first lane
//!   decides for all, from the protection domain's
//!   [`flush_support`](rpmem_verbs::Pd::flush_support));
//! * `Read { User }` → an RDMA READ into one of the lane's registered read
//!   slots, copied into the caller's buffer when it completes (the buffer is
//!   registered once, not per call);
//! * `Send` → a SEND of the 24-byte persist message from a send slot, plus
//!   the inline data gathered straight from the region; rpmemd answers each
//!   with an 8-byte SEND into one of the lane's posted receive buffers.
//!
//! An operation that finds no free slot waits in a queue (in order, so the
//! engine's ordering holds) until a completion frees one. What one round
//! posts goes to the device as one list ([`Endpoint::begin_batch`]): one
//! `ibv_post_send`, one doorbell for a WRITE and the READ behind it. While nothing
//! moves, a call spins on the completion queue for the spin budget, then
//! sleeps on the completion channel in slices, watching rpmemd's channel
//! (ssh's or rpmemd's stdout hanging up) and the data deadline.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use rpmem_core::persist::{
    Completion, InitiatorLane, LaneParams, Method, Op, OpKind, ReadDest, StreamClient,
};
use rpmem_core::policy;
use rpmem_core::wire::persist::RESP_LEN;
use rpmem_core::wire::tcp::{HELLO_ACK_LEN, SECRET_LEN};
use rpmem_verbs::{
    resolve, Access, Connected, Endpoint, EndpointConfig, FlushType, Memory, Mr, Pd, Remote, Wake,
    Wc, WcKind,
};

use crate::driver::{deliver, Driver, LaneCx, LaneIo, ReadInto};
use crate::error::Error;
use crate::launch::RemoteInfo;
use crate::oob::STDERR_GRACE;
use crate::region::Region;

/// Bytes of one READ slot (also the longest WRITE or READ posted).
pub(crate) const READ_SLOT: usize = 256 * 1024;
/// READ slots per lane (READs of one call in flight at once).
const READ_SLOTS: u32 = 4;
/// How long one sleep on the completion channel lasts before the lane
/// checks rpmemd's channel and the deadline again.
const SLICE: Duration = Duration::from_millis(100);

/// The region as memory the NIC may read (WRITE and SEND sources; it is
/// registered without write access, so the NIC never writes it).
struct RegionMem(Arc<Region>);

// SAFETY: a `Region` is valid memory for its whole life (its own mapping or
// memory its creator promised to keep valid), and the `Arc` keeps it alive
// as long as this value exists; the registration gives the NIC no write
// access, so Rust references to the region never race with NIC writes.
unsafe impl Memory for RegionMem {
    fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What every lane of a pool shares: the device's protection domain and the
/// region's registration.
pub(crate) struct Shared {
    pd: Arc<Pd>,
    region_mr: Arc<Mr>,
    /// The method every lane runs: the announced one, or RDMA FLUSH.
    method: Method,
}

impl Shared {
    /// The method the lanes run.
    pub(crate) fn method(&self) -> Method {
        self.method
    }
}

/// Everything a lane needs to connect.
pub(crate) struct VerbsSetup {
    pub(crate) host: String,
    pub(crate) addr: (String, u16),
    pub(crate) secret: [u8; SECRET_LEN],
    /// Engine parameters; `method` is the one rpmemd announced.
    pub(crate) params: LaneParams,
    /// rpmemd offers RDMA FLUSH and the options allow it.
    pub(crate) flush_offered: bool,
    pub(crate) remote: Remote,
    pub(crate) spin: Duration,
    pub(crate) stall: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) watch_fd: Option<RawFd>,
}

/// The RDMA I/O of one connected lane (the shared state and the core's
/// [`InitiatorLane`] are in its [`Driver`]).
pub(crate) struct VerbsLane {
    ep: Box<Endpoint>,
    region: Arc<Region>,
    blocked: VecDeque<Op>,
    reads: Vec<Option<(ReadDest, u64)>>,
    wcs: Vec<Wc>,
    watch_fd: Option<RawFd>,
    /// rpmemd registers the pool from here on: below it (the pool header)
    /// every RDMA access would end in a remote access error.
    min_offset: u64,
}

impl std::fmt::Debug for VerbsLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerbsLane")
            .field("blocked", &self.blocked.len())
            .finish()
    }
}

fn conn_err(setup: &VerbsSetup, what: impl Into<String>, message: String) -> Error {
    Error::Connection {
        host: setup.host.clone(),
        lane: setup.params.lane,
        what: what.into(),
        message,
    }
}

fn words(remote: Option<&Arc<RemoteInfo>>) -> String {
    remote
        .map(|r| format!("; {}", r.describe(STDERR_GRACE)))
        .unwrap_or_default()
}

impl VerbsLane {
    /// Resolves rpmemd's address, creates the queue pair (and, for the
    /// first lane, the protection domain and the region's registration in
    /// `shared`), connects with the hello as private data and checks the
    /// answer.
    pub(crate) fn connect(
        setup: &VerbsSetup,
        region: Arc<Region>,
        remote: Option<Arc<RemoteInfo>>,
        shared: &mut Option<Shared>,
    ) -> Result<Driver<VerbsLane>, Error> {
        let index = setup.params.lane;
        let (host, port) = (&setup.addr.0, setup.addr.1);
        let what = format!("connecting over RDMA to {host} port {port}");
        let addr: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| conn_err(setup, what.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| {
                conn_err(
                    setup,
                    what.clone(),
                    "the name resolves to no address".to_owned(),
                )
            })?;
        let verbs_err = |e: rpmem_verbs::Error| {
            conn_err(
                setup,
                what.clone(),
                format!("{e}{}", words(remote.as_ref())),
            )
        };
        let resolved = resolve(addr, setup.connect_timeout).map_err(verbs_err)?;
        if shared.is_none() {
            let pd = resolved.pd().map_err(verbs_err)?;
            let region_mr = Mr::register(&pd, RegionMem(Arc::clone(&region)), Access::LOCAL_READ)
                .map_err(verbs_err)?;
            let method = policy::initiator_method(
                setup.params.method,
                setup.flush_offered,
                pd.flush_support().persistent,
                true,
            );
            *shared = Some(Shared {
                pd,
                region_mr: Arc::new(region_mr),
                method,
            });
        }
        let Some(sh) = shared.as_ref() else {
            return Err(conn_err(setup, what, "no protection domain".to_owned()));
        };
        let params = LaneParams {
            method: sh.method,
            ..setup.params
        };
        let engine = InitiatorLane::new(params).map_err(|e| Error::Protocol {
            host: setup.host.clone(),
            during: format!("setting up lane {index}"),
            detail: format!("rpmemd's answer gives lane parameters that cannot work: {e}"),
        })?;
        let window = setup.params.send_window.max(1);
        let config = EndpointConfig {
            send_slots: window,
            send_slot_len: 64,
            recv_slots: window,
            recv_slot_len: RESP_LEN,
            read_slots: READ_SLOTS,
            read_slot_len: READ_SLOT,
            max_send_wr: setup.params.wq_size.max(1),
            max_inline: 256,
            source: Some(Arc::clone(&sh.region_mr)),
            remote: Some(setup.remote),
        };
        let pending = resolved.endpoint(&sh.pd, config).map_err(verbs_err)?;
        let stream = StreamClient::new(index);
        let hello = stream.hello(&setup.secret);
        let ep = match pending
            .connect(&hello, setup.connect_timeout)
            .map_err(verbs_err)?
        {
            Connected::Accepted(ep, private) => {
                let ack = private.get(..HELLO_ACK_LEN).unwrap_or(&[]);
                stream.on_hello_ack(ack).map_err(|e| Error::Protocol {
                    host: setup.host.clone(),
                    during: format!("opening lane {index}"),
                    detail: e.to_string(),
                })?;
                ep
            }
            Connected::Rejected(private, status) => {
                let detail = match private.get(..HELLO_ACK_LEN) {
                    Some(ack) if ack.iter().any(|&b| b != 0) => match stream.on_hello_ack(ack) {
                        Err(e) => e.to_string(),
                        Ok(()) => "rejected with an answer that says OK".to_owned(),
                    },
                    _ => format!("rejected without a reason (transport status {status})"),
                };
                return Err(conn_err(
                    setup,
                    what,
                    format!(
                        "rpmemd refused the lane: {detail}{}",
                        words(remote.as_ref())
                    ),
                ));
            }
        };
        if sh.method == Method::RdmaFlush && !ep.flush_support().persistent {
            return Err(conn_err(
                setup,
                what,
                "the device offers persistent RDMA FLUSH, but this lane's queue pair cannot post it"
                    .to_owned(),
            ));
        }
        let nreads = usize::try_from(READ_SLOTS).unwrap_or(0);
        Ok(Driver {
            cx: LaneCx {
                index,
                engine,
                remote,
                broken: None,
                host: setup.host.clone(),
                spin: setup.spin,
                stall: setup.stall,
                label: " (RDMA)",
            },
            io: VerbsLane {
                ep,
                region,
                blocked: VecDeque::new(),
                reads: vec![None; nreads],
                wcs: Vec::with_capacity(16),
                watch_fd: setup.watch_fd,
                min_offset: setup.params.min_offset,
            },
        })
    }

    /// Posts what the engine allows, then reaps completions. Returns
    /// whether anything moved.
    fn pump_io(
        &mut self,
        cx: &mut LaneCx<InitiatorLane>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        let mut progressed = false;
        while let Some(op) = cx.engine.poll_op() {
            self.blocked.push_back(op);
            progressed = true;
        }
        // Everything the engine allows goes out as one list (one doorbell):
        // a relaxed persist's WRITE and its READ or FLUSH leave together.
        self.ep.begin_batch();
        let mut posted = Ok(());
        while let Some(op) = self.blocked.front().copied() {
            match self.post(cx, &op) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    posted = Err(e);
                    break;
                }
            }
            self.blocked.pop_front();
            progressed = true;
        }
        let ended = self.ep.end_batch();
        posted?;
        if let Err(e) = ended {
            return Err(cx.fail(format!("posting work requests: {e}")));
        }
        self.wcs.clear();
        let n = match self.ep.poll(&mut self.wcs) {
            Ok(n) => n,
            Err(e) => return Err(cx.fail(format!("polling completions: {e}"))),
        };
        let wcs = std::mem::take(&mut self.wcs);
        let mut result = Ok(());
        for wc in &wcs {
            if let Err(e) = self.complete(cx, wc, into) {
                result = Err(e);
                break;
            }
        }
        self.wcs = wcs;
        result?;
        Ok(progressed || n > 0)
    }

    /// Posts one operation; false when it must wait for a free slot.
    fn post(&mut self, cx: &mut LaneCx<InitiatorLane>, op: &Op) -> Result<bool, Error> {
        // The engine never writes below `min_offset`; a user read there
        // (the pool header) is refused here, with its reason, instead of
        // taking the queue pair to the error state with a remote access
        // error. (APM's flushing READ is moved above it, below.)
        if let Op::Read {
            offset,
            len,
            dest: ReadDest::User { .. },
            ..
        } = *op
        {
            if offset < self.min_offset {
                return Err(cx.fail(format!(
                    "an RDMA READ of {len} bytes at offset {offset}: rpmemd registers the pool \
                     from offset {} on (the pool header is not reachable over RDMA)",
                    self.min_offset
                )));
            }
        }
        let posted = match *op {
            Op::Write {
                offset,
                len,
                signaled,
                ..
            } => {
                let len =
                    u32::try_from(len).map_err(|_| cx.fail(format!("a WRITE of {len} bytes")))?;
                self.ep
                    .post_write(0, offset, len, offset, signaled)
                    .map(|()| true)
            }
            Op::Read {
                offset,
                len,
                dest: ReadDest::Flush,
                ..
            } => {
                let len =
                    u32::try_from(len).map_err(|_| cx.fail(format!("a READ of {len} bytes")))?;
                // APM's READ only has to follow the WRITEs on the queue pair;
                // what it reads does not matter. PMDK (and the engine) read
                // the pool's first bytes, which rpmemd does not register (the
                // header): read the first registered ones instead.
                let offset = offset.max(self.min_offset);
                self.ep.post_read_discard(0, offset, len).map(|()| true)
            }
            Op::Read {
                offset, len, dest, ..
            } => {
                let len32 =
                    u32::try_from(len).map_err(|_| cx.fail(format!("a READ of {len} bytes")))?;
                match self.ep.post_read(0, offset, len32) {
                    Ok(Some(slot)) => {
                        if let Some(r) = self.reads.get_mut(slot as usize) {
                            *r = Some((dest, len));
                        }
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Op::Flush { offset, len, .. } => {
                let len =
                    u32::try_from(len).map_err(|_| cx.fail(format!("a FLUSH of {len} bytes")))?;
                self.ep
                    .post_flush(0, offset, len, FlushType::Persistent)
                    .map(|()| true)
            }
            Op::Send { msg, inline, .. } => {
                let head = msg.to_bytes();
                let tail = if inline {
                    let size = u32::try_from(msg.size)
                        .map_err(|_| cx.fail(format!("an inline message of {} bytes", msg.size)))?;
                    Some((msg.offset, size))
                } else {
                    None
                };
                self.ep.post_send(0, &head, tail).map(|s| s.is_some())
            }
        };
        posted.map_err(|e| cx.fail(format!("posting a {}: {e}", op.kind())))
    }

    fn complete(
        &mut self,
        cx: &mut LaneCx<InitiatorLane>,
        wc: &Wc,
        into: &mut ReadInto<'_>,
    ) -> Result<(), Error> {
        let lane = cx.index;
        let op = match wc.kind {
            WcKind::Send => OpKind::Send,
            WcKind::Write => OpKind::Write,
            WcKind::Discard if wc.is_flush() => OpKind::Flush,
            WcKind::Read | WcKind::Discard => OpKind::Read,
            WcKind::Recv => OpKind::Recv,
        };
        if !wc.is_ok() {
            let status = wc.status_str();
            let c = Completion::Failed {
                lane,
                op,
                status: i32::try_from(wc.status).unwrap_or(i32::MAX),
            };
            let _ = cx.engine.handle_completion(c);
            let what = format!("{op} failed during a {}: {status}", cx.what());
            return Err(cx.lost(what));
        }
        let handled = match wc.kind {
            WcKind::Send => cx.engine.handle_completion(Completion::Send { lane }),
            WcKind::Write => cx.engine.handle_completion(Completion::Write { lane }),
            WcKind::Discard if wc.is_flush() => {
                cx.engine.handle_completion(Completion::Flush { lane })
            }
            WcKind::Discard => cx.engine.handle_completion(Completion::Read { lane }),
            WcKind::Read => {
                let slot = wc.slot as usize;
                let Some((dest, len)) = self.reads.get_mut(slot).and_then(Option::take) else {
                    return Err(cx.fail(format!("a READ completed in unused slot {slot}")));
                };
                let n = usize::try_from(len).unwrap_or(usize::MAX);
                let region = &self.region;
                let ok = self
                    .ep
                    .take_read(wc.slot, n, |bytes| deliver(region, into, dest, 0, bytes))
                    .unwrap_or(false);
                if !ok {
                    return Err(cx.fail(format!("the {len} bytes READ do not fit the destination")));
                }
                cx.engine.handle_completion(Completion::Read { lane })
            }
            WcKind::Recv => {
                let len = wc.byte_len as usize;
                let r = match self.ep.recv_data(wc.slot, len) {
                    Some(bytes) => cx
                        .engine
                        .handle_completion(Completion::Recv { lane, bytes }),
                    None => {
                        return Err(cx.fail(format!(
                            "rpmemd sent a {len}-byte answer, longer than a persist response"
                        )))
                    }
                };
                if let Err(e) = self.ep.post_recv(wc.slot) {
                    return Err(cx.fail(format!("posting a receive buffer again: {e}")));
                }
                r
            }
        };
        handled.map_err(|e| cx.fail(e.to_string()))
    }

    /// Fails the call if rpmemd's channel hung up.
    fn check_channel(&self, cx: &mut LaneCx<InitiatorLane>) -> Result<(), Error> {
        let Some(fd) = self.watch_fd else {
            return Ok(());
        };
        let mut p = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout does not block.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        if r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Err(cx.hung_up());
        }
        Ok(())
    }
}

impl LaneIo for VerbsLane {
    type Engine = InitiatorLane;

    fn pump(
        &mut self,
        cx: &mut LaneCx<InitiatorLane>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error> {
        self.pump_io(cx, into)
    }

    fn flushed(&self) -> bool {
        self.blocked.is_empty()
    }

    fn wait(
        &mut self,
        cx: &mut LaneCx<InitiatorLane>,
        into: &mut ReadInto<'_>,
        limit: Duration,
    ) -> Result<(), Error> {
        let wake = match self.ep.wait(SLICE.min(limit)) {
            Ok(w) => w,
            Err(e) => return Err(cx.fail(format!("waiting for completions: {e}"))),
        };
        match wake {
            Wake::Rearmed | Wake::Completion => Ok(()),
            // Take what completed first: a failed completion names the
            // cause better than the disconnect.
            Wake::Disconnected => {
                if self.pump_io(cx, into)? {
                    Ok(())
                } else {
                    let what = format!("rpmemd disconnected the RDMA lane during a {}", cx.what());
                    Err(cx.lost(what))
                }
            }
            Wake::TimedOut => self.check_channel(cx),
        }
    }

    fn waiting_for(&self, _cx: &LaneCx<InitiatorLane>) -> &'static str {
        if self.blocked.is_empty() {
            "waiting for completions"
        } else {
            "waiting for a free buffer slot"
        }
    }

    /// Disconnects (rpmemd's worker sees the lane end).
    fn shutdown(&self) {
        self.ep.disconnector().disconnect();
    }
}
