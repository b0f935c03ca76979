//! The remote pool: create / open / set_attr / close / remove, and the lanes.
//!
//! # Lanes and threads
//!
//! librpmem lets any thread call `rpmem_persist(rpp, ..., lane, ...)` and
//! leaves it to the application never to use one lane from two threads at
//! once. Here the types enforce it:
//!
//! * [`RemotePool::lane`] hands out a [`Lane`]: `Send` (move it to a worker
//!   thread) but not `Sync`, with `&mut self` methods, so one lane is used by
//!   one thread at a time without any lock on the data path. While the
//!   handle exists, nobody else can use that lane ([`Error::LaneInUse`]);
//!   dropping it gives the lane back.
//! * [`RemotePool::persist`] and the other `RemotePool` data calls take a
//!   lane number and lock that lane for the call, for code that prefers
//!   librpmem's shape.
//!
//! A `Lane` borrows the pool, so the pool cannot be closed while one is out.
//!
//! # Lanes connect on first use
//!
//! Over TCP a lane's connection (and rpmemd's thread for it) is made by the
//! first call on that lane, not when the pool opens: a pool granted 1024
//! lanes, as libpmemobj asks for, costs what the lanes it uses cost. Lane 0
//! is the exception: it connects while the pool opens, so an unreachable data
//! port or a refused hello fails `create`/`open`, not a later persist. The
//! first call on any other lane takes one more round trip (connect and
//! hello); a failure to connect fails that call and the next call tries
//! again. RDMA lanes are all connected when the pool opens.

use std::cell::Cell;
use std::marker::PhantomData;
use std::time::Duration;

use rpmem_core::negotiate::{self, Answer, SessionParams};
use rpmem_core::oob::{CreateRequest, OpenRequest};
use rpmem_core::persist::{Method, Placement};
use rpmem_core::wire::oob::{PoolDesc, Provider, CLOSE_FLAGS_REMOVE};
use rpmem_core::PoolAttr;

use crate::datapath::{LaneSlot, PendingTcp};
use crate::driver::Call;
use crate::error::Error;
#[cfg(loom)]
use crate::lane::LaneConn;
use crate::lane::LaneSetup;
use crate::launch::{self, Remote};
use crate::oob::{OobSession, STDERR_GRACE};
use crate::options::{Launch, Options, Transport};
use crate::region::Region;
use crate::sync::{self, Mutex};
use crate::target::Target;
use std::sync::Arc;

/// `RPMEM_REMOVE_FORCE`: ignore errors when removing an inconsistent pool.
pub const REMOVE_FORCE: u32 = 1;
/// `RPMEM_REMOVE_POOL_SET`: also remove the pool set file.
pub const REMOVE_POOL_SET: u32 = 2;

/// How long `Drop` waits for rpmemd to exit before killing it.
const DROP_GRACE: Duration = Duration::from_secs(1);

/// An open remote pool (librpmem's `RPMEMpool`).
///
/// Close it with [`RemotePool::close`]. Dropping it without closing ends
/// the session abruptly (rpmemd sees end of file on its stdin and, if it does
/// not exit within a second, is killed): every persist that returned success
/// is durable on the target either way.
#[derive(Debug)]
pub struct RemotePool {
    // Declared first: dropped before the session, so lanes go first.
    lanes: Box<[Mutex<Option<Box<LaneSlot>>>]>,
    oob: Mutex<Option<OobSession>>,
    target: Target,
    pool_set: String,
    region: Arc<Region>,
    nlanes: u32,
    attr: Option<PoolAttr>,
    method: Method,
    port: u16,
    opts: Options,
}

/// What `create` and `open` share.
pub(crate) struct Request<'a> {
    pub(crate) target: &'a str,
    pub(crate) pool_set: &'a str,
    pub(crate) region: Arc<Region>,
    pub(crate) nlanes: u32,
    pub(crate) opts: &'a Options,
}

impl RemotePool {
    /// Creates the pool described by pool set file `pool_set` (relative to
    /// rpmemd's pool set directory) on `target` (`[user@]host[:port]`), and
    /// replicates `region` into it (`rpmem_create`).
    ///
    /// `nlanes` is the number of lanes asked for (at least 1); the pool has
    /// at most that many ([`RemotePool::nlanes`]). `attr` are the pool's
    /// attributes; `None` (or all-zero attributes) creates a pool without
    /// headers, whose pool set file must say `OPTION NOHDRS`; with headers
    /// the first 4096 bytes of the pool cannot be written.
    pub fn create(
        target: &str,
        pool_set: &str,
        region: Arc<Region>,
        nlanes: u32,
        attr: Option<&PoolAttr>,
        opts: &Options,
    ) -> Result<RemotePool, Error> {
        let attr = attr.copied().unwrap_or(PoolAttr::ZERO);
        let req = Request {
            target,
            pool_set,
            region,
            nlanes,
            opts,
        };
        RemotePool::start(req, Some(attr))
    }

    /// Opens the existing pool of pool set file `pool_set` on `target` and
    /// replicates `region` into it (`rpmem_open`). The pool's attributes are
    /// in [`RemotePool::attr`] (`None` for a pool without headers).
    pub fn open(
        target: &str,
        pool_set: &str,
        region: Arc<Region>,
        nlanes: u32,
        opts: &Options,
    ) -> Result<RemotePool, Error> {
        let req = Request {
            target,
            pool_set,
            region,
            nlanes,
            opts,
        };
        RemotePool::start(req, None)
    }

    fn start(req: Request<'_>, create: Option<PoolAttr>) -> Result<RemotePool, Error> {
        let target = Target::parse(req.target)?;
        if req.nlanes == 0 {
            return Err(Error::InvalidArgument(
                "the number of lanes must be at least 1".to_owned(),
            ));
        }
        let desc = PoolDesc::from_text(req.pool_set).map_err(|e| {
            Error::InvalidArgument(format!("pool set name {:?}: {e}", req.pool_set))
        })?;
        let command = req.opts.cmd.next_command().to_owned();
        let spec = launch::spec(req.opts, &target, &command, &[])?;
        let remote = Remote::spawn(&spec, true)?;
        RemotePool::establish(remote, target, desc, req, create)
    }

    /// Runs the session on a started rpmemd: request, lanes, handle.
    pub(crate) fn establish(
        remote: Remote,
        target: Target,
        desc: PoolDesc<'_>,
        req: Request<'_>,
        create: Option<PoolAttr>,
    ) -> Result<RemotePool, Error> {
        let opts = req.opts;
        let pool_size = req.region.len() as u64;
        let nlanes = req.nlanes.min(opts.max_nlanes).max(1);
        let host = target.host().to_owned();
        let mut session = OobSession::start(remote, &host, req.pool_set, opts.control_timeout)?;
        let (ibc, ext, attr) = match create {
            Some(attr) => {
                let r = session.create(&CreateRequest {
                    pool_size,
                    nlanes,
                    provider: provider(opts),
                    buff_size: opts.inline_size,
                    attr,
                    pool_desc: desc,
                })?;
                (r.ibc, r.ext, attr)
            }
            None => {
                let r = session.open(&OpenRequest {
                    pool_size,
                    nlanes,
                    provider: provider(opts),
                    buff_size: opts.inline_size,
                    pool_desc: desc,
                })?;
                (r.ibc, r.ext, r.attr)
            }
        };
        let made = RemotePool::connect_lanes(
            &target,
            req.pool_set,
            &req.region,
            opts,
            &session,
            ibc,
            ext,
            attr,
        );
        match made {
            Ok((lanes, method, port)) => {
                log::info!(
                    "rpmem: {} pool set {:?} on {target}: {} lane(s), {method}, data port {port}",
                    if create.is_some() {
                        "created"
                    } else {
                        "opened"
                    },
                    req.pool_set,
                    lanes.len()
                );
                let nlanes = u32::try_from(lanes.len()).unwrap_or(u32::MAX);
                Ok(RemotePool {
                    lanes: lanes
                        .into_iter()
                        .map(|l| Mutex::new(Some(Box::new(l))))
                        .collect(),
                    oob: Mutex::new(Some(session)),
                    target,
                    pool_set: req.pool_set.to_owned(),
                    region: req.region,
                    nlanes,
                    attr: (!attr.is_zero()).then_some(attr),
                    method,
                    port,
                    opts: opts.clone(),
                })
            }
            Err(e) => {
                // As librpmem: a pool just created is removed again.
                let flags = if create.is_some() {
                    CLOSE_FLAGS_REMOVE
                } else {
                    0
                };
                if session.is_established() {
                    let _ = session.close(flags);
                }
                session.finish();
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn connect_lanes(
        target: &Target,
        pool_set: &str,
        region: &Arc<Region>,
        opts: &Options,
        session: &OobSession,
        ibc: rpmem_core::wire::oob::IbcRepr,
        ext: Option<rpmem_core::wire::oob::ExtRepr>,
        attr: PoolAttr,
    ) -> Result<(Vec<LaneSlot>, Method, u16), Error> {
        let host = target.host().to_owned();
        let protocol = |detail: String| Error::Protocol {
            host: host.clone(),
            during: format!("setting up the data path of pool set {pool_set:?}"),
            detail,
        };
        let ext = ext.ok_or_else(|| {
            protocol("the response has no extension block with the session secret".to_owned())
        })?;
        let method = Method::from_wire(ibc.persist_method.0)
            .ok_or_else(|| protocol(format!("unknown persist method {}", ibc.persist_method)))?;
        let port = u16::try_from(ibc.port)
            .map_err(|_| protocol(format!("data port {} is not a TCP port", ibc.port)))?;
        // The core's acceptance of the answer: lanes, inline size and, from
        // the attributes (all zero: none), whether the pool has headers.
        let params = negotiate::accept(
            opts.inline_size,
            region.len() as u64,
            !attr.is_zero(),
            &Answer {
                nlanes: ibc.nlanes,
                max_inline: Some(ext.max_inline),
                announced: method,
            },
            method,
        );
        let data_host = match opts.launch {
            Launch::Local if target.is_loopback() => "127.0.0.1".to_owned(),
            Launch::Local | Launch::Ssh => host.clone(),
        };
        let info = Arc::clone(session.remote().info());
        if opts.transport == Transport::Verbs {
            let (lanes, method) = connect_verbs_lanes(
                &host,
                (&data_host, port),
                region,
                opts,
                session,
                (&ibc, &ext),
                &params,
            )?;
            return Ok((lanes, method, port));
        }
        let mode = tcp_lane_mode(&host, ext.flags, opts.tcp_plaintext)?;
        // TCP lanes connect on first use (`LaneSlot`), except lane 0: its
        // connection at open time shows that the data path works (the port is
        // reachable, the secret is right) before the pool is handed out.
        let mut lanes = Vec::new();
        for lane in 0..params.nlanes {
            let mut lane_params = params.lane(lane, Placement::Stream);
            lane_params.wq_size = opts.wq_size;
            // RPMEM_DATA_ADDR (a test hook) replaces where lanes connect.
            let addr = opts
                .data_addr
                .clone()
                .unwrap_or_else(|| (data_host.clone(), port));
            let setup = LaneSetup {
                host: host.clone(),
                addr,
                secret: ext.secret,
                mode,
                params: lane_params,
                spin: opts.spin,
                stall: opts.data_timeout,
                connect_timeout: opts.control_timeout,
                watch_fd: Some(session.remote().watch_fd()),
            };
            let mut slot = LaneSlot::Pending(PendingTcp {
                setup,
                region: Arc::clone(region),
                remote: Some(Arc::clone(&info)),
            });
            if lane == 0 {
                slot.connect()?;
            }
            lanes.push(slot);
        }
        Ok((lanes, method, port))
    }

    /// The target this pool is on.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The pool set name.
    pub fn pool_set(&self) -> &str {
        &self.pool_set
    }

    /// The replicated region.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Size of the pool (the region) in bytes.
    pub fn size(&self) -> u64 {
        self.region.len() as u64
    }

    /// Lanes granted: use lane numbers `0..nlanes()`.
    pub fn nlanes(&self) -> u32 {
        self.nlanes
    }

    /// The pool's attributes: those given to `create`, those stored in the
    /// pool for `open`; `None` for a pool without headers.
    pub fn attr(&self) -> Option<&PoolAttr> {
        self.attr.as_ref()
    }

    /// True when the pool has headers (its first 4096 bytes are not
    /// writable through the data path).
    pub fn has_headers(&self) -> bool {
        self.attr.is_some()
    }

    /// The persistency method the lanes run: the one rpmemd announced, or
    /// [`Method::RdmaFlush`] where rpmemd offered it and this host's RDMA
    /// device can post it (see [`Options::rdma_flush`]).
    pub fn persist_method(&self) -> Method {
        self.method
    }

    /// The TCP port of the data path.
    pub fn data_port(&self) -> u16 {
        self.port
    }

    /// Process id of the child this library started (ssh, or rpmemd in
    /// local mode), while the session runs.
    pub fn remote_pid(&self) -> Option<u32> {
        sync::lock(&self.oob)
            .as_ref()
            .map(|s| s.remote().info().pid)
    }

    /// The options the pool was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Takes lane `index` for this thread (see the module documentation).
    pub fn lane(&self, index: u32) -> Result<Lane<'_>, Error> {
        let slot = self.slot(index)?;
        let conn = sync::lock(slot)
            .take()
            .ok_or(Error::LaneInUse { lane: index })?;
        Ok(Lane {
            pool: self,
            conn: Some(conn),
            _not_sync: PhantomData,
        })
    }

    /// Takes every lane, in order (all must be free).
    pub fn lanes(&self) -> Result<Vec<Lane<'_>>, Error> {
        (0..self.nlanes).map(|i| self.lane(i)).collect()
    }

    fn slot(&self, index: u32) -> Result<&Mutex<Option<Box<LaneSlot>>>, Error> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.lanes.get(i))
            .ok_or(Error::NoSuchLane {
                lane: index,
                nlanes: self.nlanes,
            })
    }

    /// Runs `call` on lane `index`, holding its lock for the call.
    fn call_on(&self, index: u32, call: Call<'_>) -> Result<(), Error> {
        let slot = self.slot(index)?;
        let mut guard = sync::lock(slot);
        match guard.as_mut() {
            Some(slot) => slot.call(call),
            None => Err(Error::LaneInUse { lane: index }),
        }
    }

    /// `rpmem_persist` on lane `lane` (locks the lane for the call).
    /// `flags`: 0 or [`PERSIST_RELAXED`](crate::PERSIST_RELAXED).
    pub fn persist(&self, lane: u32, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        self.call_on(lane, Call::Persist { offset, len, flags })
    }

    /// `rpmem_deep_persist` on lane `lane`.
    pub fn deep_persist(&self, lane: u32, offset: u64, len: u64) -> Result<(), Error> {
        self.call_on(lane, Call::DeepPersist { offset, len })
    }

    /// `rpmem_flush` on lane `lane`. `flags`: 0 or
    /// [`FLUSH_RELAXED`](crate::FLUSH_RELAXED).
    pub fn flush(&self, lane: u32, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        self.call_on(lane, Call::Flush { offset, len, flags })
    }

    /// `rpmem_drain` on lane `lane`. `flags` must be 0.
    pub fn drain(&self, lane: u32, flags: u32) -> Result<(), Error> {
        self.call_on(lane, Call::Drain { flags })
    }

    /// `rpmem_read`: pool bytes at `offset` into `buf`, on lane `lane`.
    pub fn read(&self, lane: u32, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.call_on(lane, Call::Read { offset, buf })
    }

    /// Reads pool `[offset, offset + len)` into the region at the same
    /// offset, on lane `lane`.
    pub fn read_to_region(&self, lane: u32, offset: u64, len: u64) -> Result<(), Error> {
        self.call_on(lane, Call::ReadToRegion { offset, len })
    }

    /// `rpmem_set_attr`: replaces the attributes stored in the pool (`None`
    /// stores zeros). The pool stays open whatever the answer.
    pub fn set_attr(&self, attr: Option<&PoolAttr>) -> Result<(), Error> {
        let attr = attr.copied().unwrap_or(PoolAttr::ZERO);
        let mut guard = sync::lock(&self.oob);
        let session = guard.as_mut().ok_or_else(|| {
            Error::InvalidArgument("the session with rpmemd has already ended".to_owned())
        })?;
        session.set_attr(&attr)
    }

    /// `rpmem_close`: closes the data path, sends CLOSE, waits for the
    /// answer and for rpmemd to exit. The pool stays on the target.
    pub fn close(mut self) -> Result<(), Error> {
        self.close_lanes();
        let session = sync::lock(&self.oob).take();
        let Some(mut session) = session else {
            return Ok(());
        };
        let result = session.close(0);
        session.finish();
        result
    }

    fn close_lanes(&mut self) {
        for slot in self.lanes.iter() {
            if let Some(conn) = sync::lock(slot).take() {
                conn.shutdown();
            }
        }
    }
}

impl Drop for RemotePool {
    fn drop(&mut self) {
        self.close_lanes();
        if let Some(session) = sync::lock(&self.oob).take() {
            session.abandon(DROP_GRACE);
        }
    }
}

/// One lane held by one thread: `Send`, not `Sync`, `&mut self` calls.
/// Dropping it gives the lane back to the pool.
///
/// A `Lane` can be moved to another thread, but not shared by two:
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<rpmem::Lane<'static>>();
/// ```
#[derive(Debug)]
pub struct Lane<'p> {
    pool: &'p RemotePool,
    conn: Option<Box<LaneSlot>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Lane<'_> {
    fn call(&mut self, call: Call<'_>) -> Result<(), Error> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| Error::InvalidArgument("the lane handle is empty".to_owned()))?
            .call(call)
    }

    /// The lane number.
    pub fn index(&self) -> u32 {
        self.conn.as_ref().map_or(u32::MAX, |c| c.index())
    }

    /// The pool.
    pub fn pool(&self) -> &RemotePool {
        self.pool
    }

    /// `rpmem_persist`: makes region `[offset, offset + len)` durable on
    /// the target, and every earlier flush of this lane. `flags`: 0 (8-byte
    /// failure atomicity: the data travels inside persist messages) or
    /// [`PERSIST_RELAXED`](crate::PERSIST_RELAXED).
    pub fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        self.call(Call::Persist { offset, len, flags })
    }

    /// `rpmem_deep_persist`: as `persist`, then flushes the range to the
    /// lowest persistence domain the target reaches.
    pub fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        self.call(Call::DeepPersist { offset, len })
    }

    /// `rpmem_flush`: sends region `[offset, offset + len)`; a later
    /// [`drain`](Lane::drain) or persist on this lane makes it durable.
    /// Returns once the bytes are handed to the kernel. `flags`: 0 or
    /// [`FLUSH_RELAXED`](crate::FLUSH_RELAXED).
    pub fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        self.call(Call::Flush { offset, len, flags })
    }

    /// `rpmem_drain`: makes every earlier flush of this lane durable.
    /// `flags` must be 0.
    pub fn drain(&mut self, flags: u32) -> Result<(), Error> {
        self.call(Call::Drain { flags })
    }

    /// `rpmem_read`: pool bytes at `offset` into `buf` (received straight
    /// into it). Reading the pool header is allowed.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.call(Call::Read { offset, buf })
    }

    /// Reads pool `[offset, offset + len)` into the region at the same
    /// offset (received straight into it).
    pub fn read_to_region(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        self.call(Call::ReadToRegion { offset, len })
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(slot) = self.pool.slot(conn.index()) {
                *sync::lock(slot) = Some(conn);
            }
        }
    }
}

/// The mode of a session's TCP lanes: sealed unless both sides chose
/// plaintext (rpmemd says so with the `PLAINTEXT` extension flag, the
/// client with `RPMEM_TCP_PLAINTEXT=1`); a mismatch is refused, naming the
/// side that did not choose it.
pub(crate) fn tcp_lane_mode(
    host: &str,
    ext_flags: u32,
    client_plaintext: bool,
) -> Result<rpmem_core::seal::LaneMode, Error> {
    use rpmem_core::seal::LaneMode;
    use rpmem_core::wire::oob::ext_flags::PLAINTEXT;
    let refused = |detail: &str| Error::Protocol {
        host: host.to_owned(),
        during: "choosing the data path's protection".to_owned(),
        detail: detail.to_owned(),
    };
    match (ext_flags & PLAINTEXT != 0, client_plaintext) {
        (false, false) => Ok(LaneMode::Sealed),
        (true, true) => {
            log::warn!(
                "{host}: plaintext TCP lanes (RPMEM_TCP_PLAINTEXT=1 and rpmemd's tcp-plaintext = yes): the pool's bytes cross the network in the clear"
            );
            Ok(LaneMode::Plaintext)
        }
        (true, false) => Err(refused(
            "rpmemd offers only plaintext TCP lanes (its configuration says tcp-plaintext = yes) and this client did not choose plaintext (RPMEM_TCP_PLAINTEXT=1): refused by the client",
        )),
        (false, true) => Err(refused(
            "this client chose plaintext TCP lanes (RPMEM_TCP_PLAINTEXT=1) but rpmemd seals every lane (its configuration does not say tcp-plaintext = yes): refused by rpmemd's configuration",
        )),
    }
}

/// Model checking only (built with `RUSTFLAGS="--cfg loom"`; see
/// `docs/loom.md`): a pool whose lanes are connected, with the production
/// [`LaneConn::connect`] (the handshake included; plaintext lanes), to a data-path server
/// the test runs at `addr`, without an rpmemd session (closing it sends no
/// CLOSE). Everything after construction is the production code.
#[cfg(loom)]
#[doc(hidden)]
impl RemotePool {
    /// Connects `nlanes` lanes of a pool of `region.len()` bytes without
    /// headers, with persistency method `method`; `watch_fd` stands for
    /// rpmemd's stdout (its hang-up breaks the lanes), `opts` gives the
    /// spin, data timeout and inline size.
    pub fn loom_connect(
        addr: std::net::SocketAddr,
        secret: [u8; rpmem_core::wire::tcp::SECRET_LEN],
        region: Arc<Region>,
        nlanes: u32,
        method: Method,
        watch_fd: Option<std::os::fd::RawFd>,
        opts: &Options,
    ) -> Result<RemotePool, Error> {
        let host = addr.ip().to_string();
        let session = SessionParams {
            nlanes,
            pool_size: region.len() as u64,
            headers: false,
            inline_max: opts.inline_size,
            method,
            announced: method,
        };
        let mut lanes = Vec::new();
        for lane in 0..nlanes {
            let mut params = session.lane(lane, Placement::Stream);
            params.wq_size = opts.wq_size;
            let setup = LaneSetup {
                host: host.clone(),
                addr: (host.clone(), addr.port()),
                secret,
                // The models are about the lanes' threads, not the record
                // layer: the fake server speaks frames in the clear after
                // the handshake.
                mode: rpmem_core::seal::LaneMode::Plaintext,
                params,
                spin: opts.spin,
                stall: opts.data_timeout,
                connect_timeout: opts.control_timeout,
                watch_fd,
            };
            lanes.push(LaneSlot::Tcp(LaneConn::connect(
                &setup,
                Arc::clone(&region),
                None,
            )?));
        }
        Ok(RemotePool {
            lanes: lanes
                .into_iter()
                .map(|l| Mutex::new(Some(Box::new(l))))
                .collect(),
            oob: Mutex::new(None),
            target: Target::parse(&host)?,
            pool_set: "loom.set".to_owned(),
            region,
            nlanes,
            attr: None,
            method,
            port: addr.port(),
            opts: opts.clone(),
        })
    }
}

// The thread-safety promises of the public types, checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<RemotePool>();
    send_sync::<Region>();
    send::<Lane<'static>>();
};

/// The out-of-band provider for the chosen transport.
fn provider(opts: &Options) -> Provider {
    opts.transport.placement().provider()
}

/// Connects every lane over RDMA (cargo feature `verbs`).
#[cfg(feature = "verbs")]
#[allow(clippy::too_many_arguments)]
fn connect_verbs_lanes(
    host: &str,
    addr: (&str, u16),
    region: &Arc<Region>,
    opts: &Options,
    session: &OobSession,
    (ibc, ext): (
        &rpmem_core::wire::oob::IbcRepr,
        &rpmem_core::wire::oob::ExtRepr,
    ),
    session_params: &SessionParams,
) -> Result<(Vec<LaneSlot>, Method), Error> {
    use crate::verbs_lane::{VerbsLane, VerbsSetup, READ_SLOT};
    use rpmem_core::wire::oob::ext_flags;
    let rkey = u32::try_from(ibc.rkey).map_err(|_| Error::Protocol {
        host: host.to_owned(),
        during: "setting up the RDMA data path".to_owned(),
        detail: format!("rkey {:#x} does not fit 32 bits", ibc.rkey),
    })?;
    let info = Arc::clone(session.remote().info());
    let mut shared = None;
    let mut lanes = Vec::new();
    for lane in 0..session_params.nlanes {
        let mut params = session_params.lane(lane, Placement::Rdma);
        params.wq_size = opts.wq_size;
        // A READ lands in one read slot.
        params.max_op_len = READ_SLOT as u64;
        let setup = VerbsSetup {
            host: host.to_owned(),
            addr: (addr.0.to_owned(), addr.1),
            secret: ext.secret,
            params,
            flush_offered: ext.flags & ext_flags::RDMA_FLUSH != 0 && opts.rdma_flush,
            remote: rpmem_verbs::Remote {
                addr: ibc.raddr,
                rkey,
                len: session_params.pool_size,
            },
            spin: opts.spin,
            stall: opts.data_timeout,
            connect_timeout: opts.control_timeout,
            watch_fd: Some(session.remote().watch_fd()),
        };
        lanes.push(LaneSlot::Verbs(VerbsLane::connect(
            &setup,
            Arc::clone(region),
            Some(Arc::clone(&info)),
            &mut shared,
        )?));
    }
    let method = shared
        .as_ref()
        .map_or(session_params.method, |s| s.method());
    Ok((lanes, method))
}

/// Without the `verbs` feature, RDMA lanes cannot be made.
#[cfg(not(feature = "verbs"))]
#[allow(clippy::too_many_arguments)]
fn connect_verbs_lanes(
    host: &str,
    _addr: (&str, u16),
    _region: &Arc<Region>,
    _opts: &Options,
    _session: &OobSession,
    _oob: (
        &rpmem_core::wire::oob::IbcRepr,
        &rpmem_core::wire::oob::ExtRepr,
    ),
    _params: &SessionParams,
) -> Result<(Vec<LaneSlot>, Method), Error> {
    Err(Error::InvalidArgument(format!(
        "RPMEM_PROVIDER=verbs (for {host}): this rpmem was built without the cargo feature `verbs`"
    )))
}

/// `rpmem_remove`: removes the pool of pool set file `pool_set` on `target`
/// by running `<RPMEM_CMD> --remove <pool_set> [--force] [--pool-set]`
/// there. `flags`: [`REMOVE_FORCE`], [`REMOVE_POOL_SET`], or 0. A non-zero
/// exit status is [`Error::RemoveFailed`] with rpmemd's message. rpmemd
/// exits non-zero whenever something that was to be removed is left, with
/// [`REMOVE_FORCE`] too (a part of a pool in use, a failed unlink), and its
/// message then lists what was and was not removed, file by file.
pub fn remove(target: &str, pool_set: &str, flags: u32, opts: &Options) -> Result<(), Error> {
    if flags & !(REMOVE_FORCE | REMOVE_POOL_SET) != 0 {
        return Err(Error::InvalidArgument(format!(
            "remove flags 0x{flags:x} are invalid: only REMOVE_FORCE (1) and REMOVE_POOL_SET (2) may be set"
        )));
    }
    let target = Target::parse(target)?;
    PoolDesc::from_text(pool_set)
        .map_err(|e| Error::InvalidArgument(format!("pool set name {pool_set:?}: {e}")))?;
    let mut args = vec!["--remove", pool_set];
    if flags & REMOVE_FORCE != 0 {
        args.push("--force");
    }
    if flags & REMOVE_POOL_SET != 0 {
        args.push("--pool-set");
    }
    let command = opts.cmd.next_command().to_owned();
    let spec = launch::spec(opts, &target, &command, &args)?;
    let mut remote = Remote::spawn(&spec, false)?;
    let deadline = std::time::Instant::now() + opts.control_timeout;
    // Drain stdout until rpmemd closes it (it prints nothing for --remove).
    let mut buf = [0u8; 256];
    loop {
        match remote.recv_some(&mut buf, deadline) {
            Ok(launch::Recv::Data(_)) => {}
            Ok(launch::Recv::Eof) | Err(_) => break,
            Ok(launch::Recv::Timeout) => break,
        }
    }
    let host = target.host().to_owned();
    let Some(status) = remote.wait_until(deadline) else {
        let message = remote.info().describe(std::time::Duration::ZERO);
        remote.kill_and_reap();
        return Err(Error::Timeout {
            host,
            during: format!("removing pool set {pool_set:?} ({})", remote.command()),
            after: opts.control_timeout,
            message,
        });
    };
    if status.success() {
        return Ok(());
    }
    let text = remote.info().stderr.text(STDERR_GRACE);
    let exit = format!("{} {}", spec.who, launch::describe_status(&status));
    Err(Error::RemoveFailed {
        host,
        pool_set: pool_set.to_owned(),
        code: status.code().unwrap_or(-1),
        message: if text.is_empty() {
            format!("{exit} and wrote nothing on stderr")
        } else {
            text
        },
        exit,
    })
}
