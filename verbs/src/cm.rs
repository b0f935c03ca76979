//! Connection management with librdmacm: listening, resolving, connecting,
//! accepting and rejecting, each connection on an event channel of its own.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdma_sys::{
    ibv_context, rdma_accept, rdma_ack_cm_event, rdma_bind_addr, rdma_cm_event, rdma_cm_event_type,
    rdma_cm_id, rdma_conn_param, rdma_connect, rdma_create_event_channel, rdma_create_id,
    rdma_destroy_event_channel, rdma_destroy_id, rdma_disconnect, rdma_event_channel,
    rdma_get_cm_event, rdma_listen, rdma_migrate_id, rdma_port_space, rdma_reject,
    rdma_resolve_addr, rdma_resolve_route,
};

use crate::error::Error;
use crate::mem::Pd;
use crate::qp::{Endpoint, EndpointConfig};
use crate::MAX_PRIVATE_DATA;

/// An event channel: the file descriptor librdmacm reports connection
/// events on. Non-blocking.
pub(crate) struct Channel(NonNull<rdma_event_channel>);

// SAFETY: an event channel is a file descriptor wrapper; librdmacm's calls
// on it are thread-safe.
unsafe impl Send for Channel {}
// SAFETY: as for `Send`.
unsafe impl Sync for Channel {}

/// One connection event, copied out of librdmacm's event (which is then
/// acknowledged at once).
pub(crate) struct Event {
    pub(crate) kind: rdma_cm_event_type::Type,
    pub(crate) status: i32,
    pub(crate) id: *mut rdma_cm_id,
    pub(crate) private: Vec<u8>,
}

impl Channel {
    pub(crate) fn new() -> Result<Arc<Channel>, Error> {
        // SAFETY: no preconditions.
        let ch = unsafe { rdma_create_event_channel() };
        let ch = NonNull::new(ch).ok_or_else(|| Error::last_os("rdma_create_event_channel"))?;
        let ch = Channel(ch);
        let fd = ch.fd();
        // SAFETY: `fd` is the channel's open descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above; only the O_NONBLOCK flag changes.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(Error::last_os(
                "making the rdma_cm event channel non-blocking",
            ));
        }
        Ok(Arc::new(ch))
    }

    pub(crate) fn as_ptr(&self) -> *mut rdma_event_channel {
        self.0.as_ptr()
    }

    pub(crate) fn fd(&self) -> RawFd {
        // SAFETY: the channel is valid while `self` exists.
        unsafe { (*self.0.as_ptr()).fd }
    }

    /// The next event, if one is there now.
    pub(crate) fn try_next(&self) -> Result<Option<Event>, Error> {
        let mut ev: *mut rdma_cm_event = std::ptr::null_mut();
        // SAFETY: the channel is valid; `ev` receives an event we ack below.
        let rc = unsafe { rdma_get_cm_event(self.as_ptr(), &mut ev) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(Error {
                what: "rdma_get_cm_event".to_owned(),
                source: e,
            });
        }
        // SAFETY: librdmacm returned a valid event; we read its fields and
        // copy its private data (`private_data_len` bytes at
        // `private_data`, valid until the ack) before acknowledging it.
        let event = unsafe {
            let e = &*ev;
            let conn = e.param.conn;
            let mut private = Vec::new();
            if !conn.private_data.is_null() && conn.private_data_len > 0 {
                let n = usize::from(conn.private_data_len);
                private.extend_from_slice(std::slice::from_raw_parts(
                    conn.private_data.cast::<u8>(),
                    n,
                ));
            }
            let event = Event {
                kind: e.event,
                status: e.status,
                id: e.id,
                private,
            };
            rdma_ack_cm_event(ev);
            event
        };
        Ok(Some(event))
    }

    /// The next event within `timeout` (`None` when none came).
    pub(crate) fn next(&self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            poll_in(&[self.fd()], left)?;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: every identifier on this channel holds an `Arc<Channel>`,
        // so none is left.
        unsafe { rdma_destroy_event_channel(self.0.as_ptr()) };
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns the
/// readiness of each.
pub(crate) fn poll_in(fds: &[RawFd], timeout: Duration) -> Result<Vec<bool>, Error> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: `pfds` is a valid array of `pfds.len()` entries.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error {
                what: "poll".to_owned(),
                source: e,
            });
        }
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// A connection identifier (`rdma_cm_id`) and the channel it reports on.
pub struct Id {
    id: NonNull<rdma_cm_id>,
    channel: Arc<Channel>,
}

// SAFETY: librdmacm's calls on an identifier are thread-safe; `Id` exposes
// only those and reads of fields librdmacm sets before we read them.
unsafe impl Send for Id {}
// SAFETY: as for `Send`.
unsafe impl Sync for Id {}

impl Id {
    fn create(channel: Arc<Channel>) -> Result<Id, Error> {
        let mut id: *mut rdma_cm_id = std::ptr::null_mut();
        // SAFETY: a valid channel; `id` receives the new identifier.
        let rc = unsafe {
            rdma_create_id(
                channel.as_ptr(),
                &mut id,
                std::ptr::null_mut(),
                rdma_port_space::RDMA_PS_TCP,
            )
        };
        if rc != 0 {
            return Err(Error::last_os("rdma_create_id"));
        }
        let id = NonNull::new(id).ok_or_else(|| Error::last_os("rdma_create_id"))?;
        Ok(Id { id, channel })
    }

    /// Takes over an identifier librdmacm created for a connection request
    /// (reported on `channel`).
    fn adopt(id: *mut rdma_cm_id, channel: Arc<Channel>) -> Option<Id> {
        NonNull::new(id).map(|id| Id { id, channel })
    }

    pub(crate) fn as_ptr(&self) -> *mut rdma_cm_id {
        self.id.as_ptr()
    }

    pub(crate) fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// Moves the identifier's events to `channel`.
    fn migrate(&mut self, channel: Arc<Channel>) -> Result<(), Error> {
        // SAFETY: both valid; no event of this id is unacknowledged (we ack
        // every event as soon as it is read).
        if unsafe { rdma_migrate_id(self.as_ptr(), channel.as_ptr()) } != 0 {
            return Err(Error::last_os("rdma_migrate_id"));
        }
        self.channel = channel;
        Ok(())
    }

    /// The device context the identifier is bound to, once bound or
    /// resolved.
    pub(crate) fn verbs(&self) -> Option<NonNull<ibv_context>> {
        // SAFETY: the identifier is valid; `verbs` is a plain field.
        NonNull::new(unsafe { (*self.as_ptr()).verbs })
    }

    /// The device's name, or `"?"`.
    pub(crate) fn device_name(&self) -> String {
        let Some(ctx) = self.verbs() else {
            return "?".to_owned();
        };
        // SAFETY: a valid context has a valid device whose name is a
        // NUL-terminated array.
        unsafe {
            let dev = (*ctx.as_ptr()).device;
            if dev.is_null() {
                return "?".to_owned();
            }
            std::ffi::CStr::from_ptr((*dev).name.as_ptr())
                .to_string_lossy()
                .into_owned()
        }
    }

    /// The local address (after bind or resolve).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        // SAFETY: the identifier is valid; the route's source address is a
        // sockaddr_storage-sized union.
        unsafe { sockaddr_to_std(&(*self.as_ptr()).route.addr.src_addr_union.src_storage) }
    }

    /// The peer's address (after a connection request or resolve).
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        // SAFETY: as for `local_addr`.
        unsafe { sockaddr_to_std(&(*self.as_ptr()).route.addr.dst_addr_union.dst_storage) }
    }

    /// `rdma_disconnect` (moves the queue pair to the error state, which
    /// flushes every posted work request; both sides see `DISCONNECTED`).
    pub(crate) fn disconnect(&self) {
        // SAFETY: a valid identifier; failing (not connected) is harmless.
        let _ = unsafe { rdma_disconnect(self.as_ptr()) };
    }
}

impl Drop for Id {
    fn drop(&mut self) {
        // SAFETY: the queue pair of this identifier (if any) was destroyed
        // by its `Endpoint`, which holds an `Arc<Id>`; all events were
        // acknowledged.
        let _ = unsafe { rdma_destroy_id(self.as_ptr()) };
    }
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn std_to_sockaddr(addr: &SocketAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in; we write through a pointer to our own local.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
        }
    }
    ss
}

fn event_name(kind: rdma_cm_event_type::Type) -> String {
    // SAFETY: rdma_event_str returns a static string for any value.
    let s = unsafe { rdma_sys::rdma_event_str(kind) };
    if s.is_null() {
        return format!("event {kind}");
    }
    // SAFETY: a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(s) }
        .to_string_lossy()
        .into_owned()
}

fn unexpected(what: &str, ev: &Event) -> Error {
    Error::other(
        what,
        io::ErrorKind::ConnectionRefused,
        format!("unexpected {} (status {})", event_name(ev.kind), ev.status),
    )
}

fn private_checked(what: &str, private: &[u8]) -> Result<u8, Error> {
    if private.len() > MAX_PRIVATE_DATA {
        return Err(Error::other(
            what,
            io::ErrorKind::InvalidInput,
            format!(
                "{} bytes of private data, at most {MAX_PRIVATE_DATA} fit",
                private.len()
            ),
        ));
    }
    Ok(private.len() as u8)
}

/// A listening identifier bound to one address (and so to one device).
pub struct Listener {
    id: Arc<Id>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.id.local_addr())
            .field("device", &self.id.device_name())
            .finish()
    }
}

impl Listener {
    /// Binds to `addr` (port 0: an ephemeral port) and listens. The address
    /// must belong to an RDMA device (a RoCE netdev or an IPoIB interface).
    pub fn bind(addr: SocketAddr, backlog: i32) -> Result<Listener, Error> {
        let ch = Channel::new()?;
        let id = Id::create(ch)?;
        let mut ss = std_to_sockaddr(&addr);
        // SAFETY: a valid identifier and a sockaddr of the right family.
        let rc = unsafe {
            rdma_bind_addr(
                id.as_ptr(),
                (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            )
        };
        if rc != 0 {
            return Err(Error::last_os(format!("rdma_bind_addr to {addr}")));
        }
        if id.verbs().is_none() {
            return Err(Error::other(
                format!("rdma_bind_addr to {addr}"),
                io::ErrorKind::AddrNotAvailable,
                "the address belongs to no RDMA device".to_owned(),
            ));
        }
        // SAFETY: a bound identifier.
        if unsafe { rdma_listen(id.as_ptr(), backlog) } != 0 {
            return Err(Error::last_os(format!("rdma_listen on {addr}")));
        }
        Ok(Listener { id: Arc::new(id) })
    }

    /// The address and port listened on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.id.local_addr()
    }

    /// Name of the device the address belongs to.
    pub fn device_name(&self) -> String {
        self.id.device_name()
    }

    /// A protection domain on the listener's device (where every accepted
    /// connection's queue pair lives).
    pub fn pd(&self) -> Result<Arc<Pd>, Error> {
        Pd::new(Arc::clone(&self.id))
    }

    /// Descriptor that becomes readable when a request may be waiting.
    pub fn fd(&self) -> RawFd {
        self.id.channel().fd()
    }

    /// The next connection request, waiting at most `timeout`. Other
    /// listener events are skipped; losing the device is an error.
    pub fn next_request(&self, timeout: Duration) -> Result<Option<Request>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(ev) = self.id.channel().next(left)? else {
                return Ok(None);
            };
            match ev.kind {
                rdma_cm_event_type::RDMA_CM_EVENT_CONNECT_REQUEST => {
                    let Some(mut id) = Id::adopt(ev.id, Arc::clone(self.id.channel())) else {
                        continue;
                    };
                    // Every connection gets its own channel: its later events
                    // (established, disconnected) go to its own thread.
                    let ch = Channel::new()?;
                    id.migrate(ch)?;
                    return Ok(Some(Request {
                        id: Some(id),
                        private: ev.private,
                    }));
                }
                rdma_cm_event_type::RDMA_CM_EVENT_DEVICE_REMOVAL => {
                    return Err(unexpected("listening", &ev));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

/// A connection request a listener received. Dropping it rejects it.
pub struct Request {
    id: Option<Id>,
    private: Vec<u8>,
}

impl Request {
    /// The private data the initiator sent with the request.
    pub fn private_data(&self) -> &[u8] {
        &self.private
    }

    /// The initiator's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.id.as_ref().and_then(Id::peer_addr)
    }

    /// Rejects the request, telling the initiator `private` (at most
    /// [`MAX_PRIVATE_DATA`] bytes).
    pub fn reject(mut self, private: &[u8]) -> Result<(), Error> {
        let n = private_checked("rdma_reject", private)?;
        if let Some(id) = self.id.take() {
            // SAFETY: a connection request's identifier; `private` is `n`
            // readable bytes.
            if unsafe { rdma_reject(id.as_ptr(), private.as_ptr().cast(), n) } != 0 {
                return Err(Error::last_os("rdma_reject"));
            }
        }
        Ok(())
    }

    /// Creates the queue pair for this request (on `pd`'s device) with its
    /// buffers, receives posted; [`Pending::accept`] then answers.
    pub fn endpoint(mut self, pd: &Arc<Pd>, config: EndpointConfig) -> Result<Pending, Error> {
        let Some(id) = self.id.take() else {
            return Err(Error::other(
                "accepting",
                io::ErrorKind::InvalidInput,
                "request already answered".to_owned(),
            ));
        };
        let id = Arc::new(id);
        match Endpoint::create(Arc::clone(&id), pd, config) {
            Ok(ep) => Ok(Pending { ep }),
            Err(e) => {
                // SAFETY: the request's identifier (no QP was left on it).
                let _ = unsafe { rdma_reject(id.as_ptr(), std::ptr::null(), 0) };
                Err(e)
            }
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            // SAFETY: an unanswered request's identifier.
            let _ = unsafe { rdma_reject(id.as_ptr(), std::ptr::null(), 0) };
        }
    }
}

/// A resolved (initiator) identifier: its device is known, it can get a
/// protection domain and a queue pair.
pub struct Resolved {
    id: Arc<Id>,
}

/// Resolves `dst` (address and route) within `timeout`.
pub fn resolve(dst: SocketAddr, timeout: Duration) -> Result<Resolved, Error> {
    let ch = Channel::new()?;
    let id = Id::create(ch)?;
    let mut ss = std_to_sockaddr(&dst);
    let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: a valid identifier, a sockaddr of the right family; no source.
    let rc = unsafe {
        rdma_resolve_addr(
            id.as_ptr(),
            std::ptr::null_mut(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            ms,
        )
    };
    if rc != 0 {
        return Err(Error::last_os(format!("rdma_resolve_addr of {dst}")));
    }
    let grace = timeout + Duration::from_secs(1);
    wait_for(
        &id,
        rdma_cm_event_type::RDMA_CM_EVENT_ADDR_RESOLVED,
        &format!("resolving the address {dst}"),
        grace,
    )?;
    // SAFETY: an identifier whose address is resolved.
    if unsafe { rdma_resolve_route(id.as_ptr(), ms) } != 0 {
        return Err(Error::last_os(format!("rdma_resolve_route to {dst}")));
    }
    wait_for(
        &id,
        rdma_cm_event_type::RDMA_CM_EVENT_ROUTE_RESOLVED,
        &format!("resolving the route to {dst}"),
        grace,
    )?;
    Ok(Resolved { id: Arc::new(id) })
}

fn wait_for(
    id: &Id,
    want: rdma_cm_event_type::Type,
    what: &str,
    timeout: Duration,
) -> Result<Event, Error> {
    match id.channel().next(timeout)? {
        Some(ev) if ev.kind == want => Ok(ev),
        Some(ev) => Err(Error::other(
            what,
            io::ErrorKind::ConnectionRefused,
            format!("{} (status {})", event_name(ev.kind), ev.status),
        )),
        None => Err(Error::other(
            what,
            io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        )),
    }
}

impl Resolved {
    /// A new protection domain on this identifier's device.
    pub fn pd(&self) -> Result<Arc<Pd>, Error> {
        Pd::new(Arc::clone(&self.id))
    }

    /// Name of the device the route goes through.
    pub fn device_name(&self) -> String {
        self.id.device_name()
    }

    /// Creates the queue pair (on `pd`, which must be on this device) with
    /// its buffers, receives posted; [`Pending::connect`] then connects.
    pub fn endpoint(self, pd: &Arc<Pd>, config: EndpointConfig) -> Result<Pending, Error> {
        Ok(Pending {
            ep: Endpoint::create(self.id, pd, config)?,
        })
    }
}

/// A queue pair not yet connected.
pub struct Pending {
    ep: Endpoint,
}

/// The answer to [`Pending::connect`].
pub enum Connected {
    /// The target accepted; its private data.
    Accepted(Box<Endpoint>, Vec<u8>),
    /// The target rejected; its private data (possibly empty) and the
    /// transport's reason code.
    Rejected(Vec<u8>, i32),
}

impl Pending {
    /// Accepts the request (target side), sending `private`, and waits up
    /// to `timeout` for the connection to be established.
    pub fn accept(self, private: &[u8], timeout: Duration) -> Result<Endpoint, Error> {
        let n = private_checked("rdma_accept", private)?;
        let mut param = conn_param(private, n);
        // SAFETY: the request's identifier with its QP; `param` points to
        // `private`, which outlives the call.
        if unsafe { rdma_accept(self.ep.id().as_ptr(), &mut param) } != 0 {
            return Err(Error::last_os("rdma_accept"));
        }
        wait_for(
            self.ep.id(),
            rdma_cm_event_type::RDMA_CM_EVENT_ESTABLISHED,
            "waiting for the accepted connection to be established",
            timeout,
        )?;
        Ok(self.ep)
    }

    /// Connects (initiator side), sending `private`, and waits up to
    /// `timeout` for the answer.
    pub fn connect(self, private: &[u8], timeout: Duration) -> Result<Connected, Error> {
        let n = private_checked("rdma_connect", private)?;
        let mut param = conn_param(private, n);
        // SAFETY: a resolved identifier with its QP; `param` points to
        // `private`, which outlives the call.
        if unsafe { rdma_connect(self.ep.id().as_ptr(), &mut param) } != 0 {
            return Err(Error::last_os("rdma_connect"));
        }
        let what = "waiting for the target to answer the connection request";
        match self.ep.id().channel().next(timeout)? {
            Some(ev) if ev.kind == rdma_cm_event_type::RDMA_CM_EVENT_ESTABLISHED => {
                Ok(Connected::Accepted(Box::new(self.ep), ev.private))
            }
            Some(ev) if ev.kind == rdma_cm_event_type::RDMA_CM_EVENT_REJECTED => {
                Ok(Connected::Rejected(ev.private, ev.status))
            }
            Some(ev) => Err(unexpected(what, &ev)),
            None => Err(Error::other(
                what,
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            )),
        }
    }
}

fn conn_param(private: &[u8], n: u8) -> rdma_conn_param {
    rdma_conn_param {
        private_data: if n == 0 {
            std::ptr::null()
        } else {
            private.as_ptr().cast()
        },
        private_data_len: n,
        // One outstanding RDMA READ each way is all APM needs; allow a few
        // so `read` can pipeline.
        responder_resources: 16,
        initiator_depth: 16,
        flow_control: 1,
        retry_count: 7,
        rnr_retry_count: 7,
        srq: 0,
        qp_num: 0,
    }
}
