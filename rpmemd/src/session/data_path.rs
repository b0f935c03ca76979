//! The data-path start of a CREATE or OPEN: the pool created or opened, the
//! persistency method chosen, the lanes granted, the TCP or verbs server
//! started; and its stop before the pool is closed.

use std::net::SocketAddr;

use rpmem_core::attr::PoolAttr;
use rpmem_core::negotiate::{self, SessionParams};
use rpmem_core::persist::Target;
use rpmem_core::policy::{self, Decision, Placement, PolicyInput};
use rpmem_core::wire::oob::{ext_flags, CommonRepr, ExtRepr, IbcRepr, PersistMethod, Status};
use rpmem_core::wire::tcp::SECRET_LEN;

use super::{fresh_secret, offer, Failure, Session, Settings};
use crate::logging::{self, notice};
use crate::pool::{Pool, PoolError, PoolsetDir};
use crate::transport::tcp::{TcpConfig, TcpServer};
use crate::transport::PoolMemory;

/// The running data path of a session.
#[derive(Debug)]
enum DataPath {
    Tcp(TcpServer),
    #[cfg(feature = "verbs")]
    Verbs(crate::transport::verbs::VerbsServer),
}

impl DataPath {
    fn stop(&mut self) -> usize {
        match self {
            DataPath::Tcp(s) => s.stop(),
            #[cfg(feature = "verbs")]
            DataPath::Verbs(s) => s.stop(),
        }
    }
}

/// The open pool of a session and its data path. The data path is stopped
/// (every lane worker joined) before the pool is closed; field order makes
/// a drop do the same.
pub(super) struct Active {
    data: Option<DataPath>,
    pub(super) pool: Pool,
    pub(super) created: bool,
    pub(super) name: String,
}

impl Active {
    /// Stops the data path, then closes the pool (removing its parts when
    /// `remove`).
    pub(super) fn finish(mut self, remove: bool) -> Result<(), PoolError> {
        if let Some(mut data) = self.data.take() {
            let open = data.stop();
            log::info!("data path stopped ({open} connections were open)");
        }
        let Active { pool, name, .. } = self;
        if remove {
            notice!("removing '{}'", logging::escape(&name));
            pool.close_and_remove()?;
            log::info!("removed '{}'", logging::escape(&name));
            Ok(())
        } else {
            pool.close()?;
            log::info!("pool closed");
            Ok(())
        }
    }
}

impl Session<'_> {
    /// Creates (`attr` given) or opens the pool, checks it, chooses the
    /// persistency method and starts the data path. Any failure after the
    /// pool was created removes it again, as PMDK's rpmemd does.
    pub(super) fn open_pool(
        &mut self,
        common: &CommonRepr,
        name: Option<&str>,
        attr: Option<&PoolAttr>,
    ) -> Result<(Active, IbcRepr, ExtRepr), Failure> {
        let Some(name) = name else {
            return Err(Failure::logged(
                Status::BadName,
                "the pool descriptor is not valid UTF-8",
            ));
        };
        let settings = self.settings;
        let dir = PoolsetDir::open(&settings.poolset_dir).map_err(|e| Failure::pool(&e))?;
        let created = attr.is_some();
        let pool = match attr {
            Some(a) => {
                let a = (!a.is_zero()).then_some(a);
                Pool::create_with(&dir, name, a, &settings.pool_options)
            }
            None => Pool::open_with(&dir, name, &settings.pool_options),
        }
        .map_err(|e| Failure::pool(&e))?;
        let mut active = Active {
            data: None,
            pool,
            created,
            name: name.to_owned(),
        };
        match self.start_data_path(&mut active, common) {
            Ok((ibc, ext)) => Ok((active, ibc, ext)),
            Err(failure) => {
                if let Err(e) = active.finish(created) {
                    log::error!("cleaning up after the failed request: {e}");
                }
                Err(failure)
            }
        }
    }

    fn start_data_path(
        &self,
        active: &mut Active,
        common: &CommonRepr,
    ) -> Result<(IbcRepr, ExtRepr), Failure> {
        let settings = self.settings;
        let pool = &active.pool;
        if let Err(e) = pool.check_requested_size(common.pool_size) {
            return Err(Failure::pool(&e));
        }
        // The out-of-band server refuses other providers before this.
        let placement = Placement::of_provider(common.provider).ok_or_else(|| {
            Failure::logged(
                Status::ProvNoSup,
                format_args!("provider {} has no data path here", common.provider),
            )
        })?;
        let verbs = placement == Placement::Rdma;
        let decision = choose_method(settings, pool, placement)?;
        // A verbs lane keeps one receive buffer per message in flight posted
        // (registered memory), a TCP lane one buffer: the budget bounds what
        // all lanes hold together.
        let grant = negotiate::grant(
            common.nlanes,
            common.buff_size,
            &offer(settings.nthreads, verbs),
        );
        let (nlanes, inline) = (grant.nlanes, grant.inline_max);
        if nlanes < common.nlanes {
            log::info!(
                "granting {nlanes} of the {} lanes asked for (nthreads {}, inline buffer {inline} bytes)",
                common.nlanes,
                settings.nthreads
            );
        }
        let params = SessionParams::granted(
            grant,
            common.pool_size,
            !pool.options().no_hdrs,
            decision.method,
        );
        let target = Target::new(params.target(decision.flush)).map_err(|e| {
            Failure::logged(
                Status::BadSize,
                format_args!(
                    "the requested pool size {} is unusable: {e}",
                    common.pool_size
                ),
            )
        })?;
        let secret = fresh_secret().map_err(|e| {
            Failure::logged(
                Status::Fatal,
                format_args!("cannot draw the session secret: {e}"),
            )
        })?;
        let bind = settings
            .listen
            .clone()
            .map_err(|e| Failure::logged(Status::FatalConn, e))?;
        // SAFETY: the pool outlives the data path: `Active::finish` (and
        // dropping an `Active`) stops the data path, which waits for every
        // lane worker (and drops the RDMA registration), before the pool is
        // closed; nothing takes a slice of the pool while the data path runs.
        let mem = unsafe { PoolMemory::from_pool(pool) }
            .ok_or_else(|| Failure::logged(Status::Fatal, "the pool mapping has a null address"))?;
        let (data, port, raddr, rkey, flush_registered) = if verbs {
            Self::start_verbs(settings, bind, target, secret, mem, pool.is_pmem())?
        } else {
            let mut config = TcpConfig::new(bind);
            config.spin = settings.spin;
            config.plaintext = settings.tcp_plaintext;
            config.peer = settings.peer;
            let server = TcpServer::start(&config, target, secret, mem).map_err(|e| {
                Failure::logged(
                    Status::FatalConn,
                    format_args!("cannot listen on {bind} for the data path: {e}"),
                )
            })?;
            log::info!("data path listening on {}", server.local_addr());
            let port = server.port();
            (DataPath::Tcp(server), port, 0, 0, false)
        };
        let mut flags = 0;
        if pool.is_pmem() {
            flags |= ext_flags::PMEM;
        }
        if !verbs && settings.tcp_plaintext {
            flags |= ext_flags::PLAINTEXT;
            log::warn!("TCP lanes of this session are plaintext (tcp-plaintext = yes)");
        }
        if !pool.is_pmem() || !pool.deep_flush_regions().is_empty() {
            flags |= ext_flags::DEEP_FLUSH;
        }
        if verbs
            && policy::offer_rdma_flush(policy_input(settings, pool, placement), flush_registered)
        {
            flags |= ext_flags::RDMA_FLUSH;
            notice!(
                "RDMA FLUSH offered: the client may make its writes durable with persistent FLUSH instead of {}",
                decision.method
            );
        }
        let ibc = IbcRepr {
            port: u32::from(port),
            persist_method: PersistMethod(decision.method.wire_value()),
            rkey: u64::from(rkey),
            raddr,
            nlanes,
        };
        let ext = ExtRepr {
            secret,
            flags,
            max_inline: u32::try_from(inline).unwrap_or(u32::MAX),
        };
        active.data = Some(data);
        Ok((ibc, ext))
    }

    #[cfg(feature = "verbs")]
    fn start_verbs(
        settings: &Settings,
        bind: SocketAddr,
        target: Target,
        secret: [u8; SECRET_LEN],
        mem: PoolMemory,
        pmem: bool,
    ) -> Result<(DataPath, u16, u64, u32, bool), Failure> {
        use crate::transport::verbs::{FlushRegistration, VerbsConfig, VerbsServer};
        let config = VerbsConfig {
            bind,
            spin: settings.spin,
            send_window: rpmem_core::persist::MAX_SEND_WINDOW,
            max_pending: crate::transport::tcp::MAX_PENDING,
            flush: pmem,
            peer: settings.peer,
        };
        let server = VerbsServer::start(&config, target, secret, mem).map_err(|e| {
            Failure::logged(
                Status::FatalConn,
                format_args!("cannot start the RDMA data path on {bind}: {e}"),
            )
        })?;
        let addr = server.local_addr();
        log::info!(
            "RDMA data path listening on {addr} ({}), pool registered at {:#x} rkey {:#x}",
            server.device(),
            server.raddr(),
            server.rkey()
        );
        let (raddr, rkey) = (server.raddr(), server.rkey());
        let flush = *server.flush() == FlushRegistration::Registered;
        if !flush {
            log::info!("RDMA FLUSH not offered: {}", server.flush());
        }
        Ok((DataPath::Verbs(server), addr.port(), raddr, rkey, flush))
    }

    #[cfg(not(feature = "verbs"))]
    fn start_verbs(
        _settings: &Settings,
        _bind: SocketAddr,
        _target: Target,
        _secret: [u8; SECRET_LEN],
        _mem: PoolMemory,
        _pmem: bool,
    ) -> Result<(DataPath, u16, u64, u32, bool), Failure> {
        // The out-of-band server refuses the provider before this.
        Err(Failure::logged(
            Status::ProvNoSup,
            "this rpmemd was built without the verbs data path (cargo feature `verbs`)",
        ))
    }
}

/// The persistency method for `pool` (logged at `notice` with the reason);
/// `RPMEM_ERR_POOL_CFG` when the configuration enables none.
fn choose_method(
    settings: &Settings,
    pool: &Pool,
    placement: Placement,
) -> Result<Decision, Failure> {
    match policy::select(policy_input(settings, pool, placement)) {
        Ok(d) => {
            notice!("persistency method: {} ({})", d.method, d.reason);
            log::info!(
                "    target flush: {:?} (flush instruction {})",
                d.flush,
                pool.flush_instr().name()
            );
            Ok(d)
        }
        Err(e) => Err(Failure::logged(Status::PoolCfg, e)),
    }
}

/// What the policy decides on for `pool` under `settings`.
fn policy_input(settings: &Settings, pool: &Pool, placement: Placement) -> PolicyInput {
    PolicyInput {
        persist_apm: settings.persist_apm,
        persist_general: settings.persist_general,
        pool_is_pmem: pool.is_pmem(),
        cache_persistent: pool.cache_persistent(),
        placement,
    }
}
