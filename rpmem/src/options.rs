//! Session options: how rpmemd is started, lane limits, deadlines and
//! polling, from the environment (as librpmem reads it) or a builder.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RPMEM_LAUNCH` | `ssh` | `ssh`: start rpmemd over ssh; `local`: execute rpmemd directly on this host (the target must be a loopback name or address; with `RPMEM_PROVIDER=verbs` also an IP address of this host) |
//! | `RPMEM_SSH` | `ssh` | the ssh client program |
//! | `RPMEM_CMD` | `rpmemd` | the command run on the target; `a\|b\|c` takes them in turn, one per session |
//! | `RPMEM_MAX_NLANES` | unlimited | most lanes asked for |
//! | `RPMEM_WORK_QUEUE_SIZE` | 50 | operations a lane may have in flight |
//! | `RPMEM_SPIN_US` | 50 | microseconds a waiting call polls before it sleeps |
//! | `RPMEM_PROVIDER` | `tcp` | data path: `tcp` (any network), or `verbs` (native RDMA; the library and rpmemd must be built with the cargo feature `verbs`) |
//! | `RPMEM_DATA_ADDR` | unset | a test hook: TCP lanes connect to this `HOST:PORT` (`[V6]:PORT`) instead of the address and port rpmemd announced, e.g. a proxy in front of rpmemd's data port (`tests/tests/proxy.rs`) |
//! | `RPMEM_TCP_PLAINTEXT` | `0` | `1`: TCP lanes in the clear after the handshake (which still proves the session secret both ways), only with an rpmemd configured `tcp-plaintext = yes`; logged. `0`: every lane sealed (AES-256-GCM, `docs/protocol.md`), and an rpmemd that offers only plaintext is refused |
//! | `RPMEM_RDMA_FLUSH` | `1` | `1`: over verbs, make writes durable with RDMA FLUSH where rpmemd offers it and this host's device can post it; `0`: always use the method rpmemd announces (APM or GPSPM) |
//!
//! An empty variable counts as unset (as in librpmem). A value that cannot
//! be used is an error ([`Error::Env`]); librpmem logged it and used the
//! default.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::Error;

/// `RPMEM_LAUNCH`.
pub const ENV_LAUNCH: &str = "RPMEM_LAUNCH";
/// `RPMEM_SSH`.
pub const ENV_SSH: &str = "RPMEM_SSH";
/// `RPMEM_CMD`.
pub const ENV_CMD: &str = "RPMEM_CMD";
/// `RPMEM_MAX_NLANES`.
pub const ENV_MAX_NLANES: &str = "RPMEM_MAX_NLANES";
/// `RPMEM_WORK_QUEUE_SIZE`.
pub const ENV_WORK_QUEUE_SIZE: &str = "RPMEM_WORK_QUEUE_SIZE";
/// `RPMEM_SPIN_US`.
pub const ENV_SPIN_US: &str = "RPMEM_SPIN_US";
/// `RPMEM_PROVIDER`.
pub const ENV_PROVIDER: &str = "RPMEM_PROVIDER";
/// `RPMEM_RDMA_FLUSH` (ours).
pub const ENV_RDMA_FLUSH: &str = "RPMEM_RDMA_FLUSH";
/// `RPMEM_TCP_PLAINTEXT` (ours).
pub const ENV_TCP_PLAINTEXT: &str = "RPMEM_TCP_PLAINTEXT";
/// `RPMEM_DATA_ADDR` (ours, a test hook).
pub const ENV_DATA_ADDR: &str = "RPMEM_DATA_ADDR";

/// The default ssh client (`RPMEM_DEF_SSH`).
pub const DEFAULT_SSH: &str = "ssh";
/// The default remote command (`RPMEM_DEF_CMD`).
pub const DEFAULT_CMD: &str = "rpmemd";
/// The default work queue size of a lane (PMDK's `Rpmem_wq_size`).
pub const DEFAULT_WQ_SIZE: u32 = rpmem_core::persist::DEFAULT_WQ_SIZE;
/// The default polling budget of a waiting call.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// The default deadline of every control-path wait.
pub const DEFAULT_CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline of a data-path call without progress.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(30);
/// The inline persist buffer asked for: 64 KiB (librpmem asks for 8 KiB,
/// `RPMEM_DEF_BUFF_SIZE`, sized for registered RDMA buffers). On TCP a
/// bigger buffer means fewer round trips for large non-relaxed persists.
pub const DEFAULT_INLINE_SIZE: u64 = 64 * 1024;

/// How rpmemd is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Launch {
    /// `ssh [-p port] -T [-4] -oBatchMode=yes [user@]host '<RPMEM_CMD>'`,
    /// as librpmem does; the data path connects to the same host.
    #[default]
    Ssh,
    /// Execute `<RPMEM_CMD>` directly on this host, without ssh or a shell
    /// (the command is split at whitespace). The target must be a loopback
    /// name or address; the data path connects to 127.0.0.1. `SSH_CONNECTION`
    /// is removed from rpmemd's environment, so it listens on 127.0.0.1.
    /// With [`Transport::Verbs`] the target may also be an IP address of this
    /// host (RDMA cannot use loopback): rpmemd then gets `SSH_CONNECTION`
    /// naming that address, as sshd would set it, and listens there.
    Local,
}

impl Launch {
    /// Parses `ssh` or `local`.
    pub fn parse(text: &str) -> Option<Launch> {
        match text {
            "ssh" => Some(Launch::Ssh),
            "local" => Some(Launch::Local),
            _ => None,
        }
    }
}

/// The data path of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// Our TCP data path: one TCP connection per lane, on any network.
    #[default]
    Tcp,
    /// Native RDMA (ibverbs, one RC queue pair per lane): the target host's
    /// address must belong to an RDMA device on both sides. Needs the cargo
    /// feature `verbs` in the library and in rpmemd.
    Verbs,
}

impl Transport {
    /// Parses `tcp` or `verbs`.
    pub fn parse(text: &str) -> Option<Transport> {
        match text {
            "tcp" => Some(Transport::Tcp),
            "verbs" => Some(Transport::Verbs),
            _ => None,
        }
    }

    /// `tcp` or `verbs`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Verbs => "verbs",
        }
    }

    /// How this transport places data, in the core's terms (the one type
    /// the persistency policy, the wire's provider field and the simulator
    /// use): TCP copies through the target's CPU, verbs places by RDMA.
    pub fn placement(self) -> rpmem_core::persist::Placement {
        match self {
            Transport::Tcp => rpmem_core::persist::Placement::Stream,
            Transport::Verbs => rpmem_core::persist::Placement::Rdma,
        }
    }
}

/// The commands of `RPMEM_CMD`, taken in turn: each session (create, open,
/// remove) uses the next one, wrapping around, as librpmem does for the
/// replicas of a pool set. Clones share the turn.
#[derive(Clone, Debug)]
pub struct CommandRotation {
    commands: Arc<[String]>,
    next: Arc<AtomicUsize>,
}

impl CommandRotation {
    /// Splits `text` at `|` (librpmem's rule: every piece is a command,
    /// empty ones included, so `a||b` has three).
    pub fn parse(text: &str) -> CommandRotation {
        let commands: Vec<String> = text.split('|').map(str::to_owned).collect();
        CommandRotation {
            commands: commands.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A rotation of one command.
    pub fn single(command: impl Into<String>) -> CommandRotation {
        CommandRotation {
            commands: vec![command.into()].into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The commands, in order.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// The command for the next session.
    pub fn next_command(&self) -> &str {
        let n = self.commands.len().max(1);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        self.commands.get(i).map_or(DEFAULT_CMD, String::as_str)
    }
}

/// Options of a session. Build them with [`Options::builder`] (defaults) or
/// [`Options::from_env`] (librpmem's environment variables), or take
/// [`Options::default`].
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) launch: Launch,
    pub(crate) ssh: String,
    pub(crate) ssh_args: Vec<String>,
    pub(crate) ssh_ipv4: bool,
    pub(crate) cmd: CommandRotation,
    pub(crate) max_nlanes: u32,
    pub(crate) wq_size: u32,
    pub(crate) spin: Duration,
    pub(crate) control_timeout: Duration,
    pub(crate) data_timeout: Duration,
    pub(crate) inline_size: u64,
    pub(crate) transport: Transport,
    pub(crate) rdma_flush: bool,
    /// `RPMEM_TCP_PLAINTEXT`: TCP lanes in the clear (both sides must
    /// choose it).
    pub(crate) tcp_plaintext: bool,
    /// `RPMEM_DATA_ADDR`: where TCP lanes connect instead of rpmemd's
    /// announced address (host, port).
    pub(crate) data_addr: Option<(String, u16)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            launch: Launch::Ssh,
            ssh: DEFAULT_SSH.to_owned(),
            ssh_args: Vec::new(),
            ssh_ipv4: false,
            cmd: CommandRotation::single(DEFAULT_CMD),
            max_nlanes: u32::MAX,
            wq_size: DEFAULT_WQ_SIZE,
            spin: DEFAULT_SPIN,
            control_timeout: DEFAULT_CONTROL_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            inline_size: DEFAULT_INLINE_SIZE,
            transport: Transport::Tcp,
            rdma_flush: true,
            tcp_plaintext: false,
            data_addr: None,
        }
    }
}

impl Options {
    /// A builder starting from the defaults.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder {
            opts: Options::default(),
        }
    }

    /// The defaults with librpmem's environment variables applied (see the
    /// module documentation).
    pub fn from_env() -> Result<Options, Error> {
        Options::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Options::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Options, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut o = Options::default();
        if let Some(v) = get(ENV_LAUNCH) {
            o.launch = Launch::parse(&v).ok_or(Error::Env {
                name: ENV_LAUNCH,
                value: v,
                reason: "expected \"ssh\" or \"local\"",
            })?;
        }
        if let Some(v) = get(ENV_SSH) {
            o.ssh = v;
        }
        if let Some(v) = get(ENV_CMD) {
            // Every rotation read from the environment shares one turn, so
            // that sessions take the commands in order however often the
            // options are read (librpmem reads RPMEM_CMD once per process).
            o.cmd = CommandRotation {
                next: env_turn(),
                ..CommandRotation::parse(&v)
            };
        }
        if let Some(v) = get(ENV_MAX_NLANES) {
            o.max_nlanes = parse_positive(ENV_MAX_NLANES, v)?;
        }
        if let Some(v) = get(ENV_WORK_QUEUE_SIZE) {
            o.wq_size = parse_positive(ENV_WORK_QUEUE_SIZE, v)?;
        }
        if let Some(v) = get(ENV_PROVIDER) {
            o.transport = Transport::parse(&v).ok_or(Error::Env {
                name: ENV_PROVIDER,
                value: v,
                reason: "expected \"tcp\" or \"verbs\"",
            })?;
        }
        if let Some(v) = get(ENV_SPIN_US) {
            let us = parse_decimal(&v).ok_or(Error::Env {
                name: ENV_SPIN_US,
                value: v,
                reason: "expected a number of microseconds (decimal digits)",
            })?;
            o.spin = Duration::from_micros(us);
        }
        if let Some(v) = get(ENV_RDMA_FLUSH) {
            o.rdma_flush = match v.as_str() {
                "1" => true,
                "0" => false,
                _ => {
                    return Err(Error::Env {
                        name: ENV_RDMA_FLUSH,
                        value: v,
                        reason: "expected 0 or 1",
                    })
                }
            };
        }
        if let Some(v) = get(ENV_TCP_PLAINTEXT) {
            o.tcp_plaintext = match v.as_str() {
                "1" => true,
                "0" => false,
                _ => {
                    return Err(Error::Env {
                        name: ENV_TCP_PLAINTEXT,
                        value: v,
                        reason: "expected 0 or 1",
                    })
                }
            };
        }
        if let Some(v) = get(ENV_DATA_ADDR) {
            o.data_addr = Some(parse_host_port(&v).ok_or(Error::Env {
                name: ENV_DATA_ADDR,
                value: v,
                reason: "expected HOST:PORT or [IPV6]:PORT",
            })?);
        }
        Ok(o)
    }

    /// A builder starting from these options.
    pub fn to_builder(&self) -> OptionsBuilder {
        OptionsBuilder { opts: self.clone() }
    }

    /// How rpmemd is started.
    pub fn launch(&self) -> Launch {
        self.launch
    }

    /// The ssh client program.
    pub fn ssh(&self) -> &str {
        &self.ssh
    }

    /// Extra ssh arguments, placed right after the program.
    pub fn ssh_args(&self) -> &[String] {
        &self.ssh_args
    }

    /// Whether ssh is given `-4`.
    pub fn ssh_ipv4(&self) -> bool {
        self.ssh_ipv4
    }

    /// The remote commands, taken in turn.
    pub fn commands(&self) -> &CommandRotation {
        &self.cmd
    }

    /// Most lanes asked for.
    pub fn max_nlanes(&self) -> u32 {
        self.max_nlanes
    }

    /// Operations a lane may have in flight.
    pub fn wq_size(&self) -> u32 {
        self.wq_size
    }

    /// How long a waiting call polls before it sleeps.
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// TCP lanes in the clear (`RPMEM_TCP_PLAINTEXT=1`).
    pub fn tcp_plaintext(&self) -> bool {
        self.tcp_plaintext
    }

    /// Deadline of each control-path wait.
    pub fn control_timeout(&self) -> Duration {
        self.control_timeout
    }

    /// Deadline of a data-path call that makes no progress.
    pub fn data_timeout(&self) -> Duration {
        self.data_timeout
    }

    /// Inline persist buffer size asked for.
    pub fn inline_size(&self) -> u64 {
        self.inline_size
    }

    /// The data path.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Whether RDMA lanes use RDMA FLUSH where rpmemd offers it and the
    /// local device can post it (default true).
    pub fn rdma_flush(&self) -> bool {
        self.rdma_flush
    }

    /// `RPMEM_DATA_ADDR`: where TCP lanes connect instead of the address and
    /// port rpmemd announced (a test hook), if set.
    pub fn data_addr(&self) -> Option<(&str, u16)> {
        self.data_addr.as_ref().map(|(h, p)| (h.as_str(), *p))
    }
}

/// `HOST:PORT` or `[IPV6]:PORT` (port 1..=65535) as (host, port).
fn parse_host_port(v: &str) -> Option<(String, u16)> {
    let (host, port) = v.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Builds [`Options`].
#[derive(Clone, Debug)]
pub struct OptionsBuilder {
    opts: Options,
}

impl OptionsBuilder {
    /// How rpmemd is started ([`Launch::Ssh`] by default).
    pub fn launch(mut self, launch: Launch) -> Self {
        self.opts.launch = launch;
        self
    }

    /// The ssh client program (`RPMEM_SSH`; one program, not split).
    pub fn ssh(mut self, program: impl Into<String>) -> Self {
        self.opts.ssh = program.into();
        self
    }

    /// Extra arguments for ssh, placed right after the program (e.g.
    /// `["-F", "/path/ssh_config"]`). librpmem has no such setting.
    pub fn ssh_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.opts.ssh_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Give ssh `-4` (librpmem did for the libfabric sockets provider).
    pub fn ssh_ipv4(mut self, on: bool) -> Self {
        self.opts.ssh_ipv4 = on;
        self
    }

    /// The data path (`RPMEM_PROVIDER`; [`Transport::Tcp`] by default).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.opts.transport = transport;
        self
    }

    /// Use RDMA FLUSH where offered and possible (`true` by default);
    /// `false` keeps the method rpmemd announces.
    pub fn rdma_flush(mut self, on: bool) -> Self {
        self.opts.rdma_flush = on;
        self
    }

    /// One remote command (`RPMEM_CMD` without `|`).
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.opts.cmd = CommandRotation::single(command);
        self
    }

    /// Remote commands taken in turn (`RPMEM_CMD` with `|`).
    pub fn commands(mut self, rotation: CommandRotation) -> Self {
        self.opts.cmd = rotation;
        self
    }

    /// Most lanes asked for (`RPMEM_MAX_NLANES`); 0 counts as 1.
    pub fn max_nlanes(mut self, n: u32) -> Self {
        self.opts.max_nlanes = n.max(1);
        self
    }

    /// Operations a lane may have in flight (`RPMEM_WORK_QUEUE_SIZE`); 0
    /// counts as 1.
    pub fn wq_size(mut self, n: u32) -> Self {
        self.opts.wq_size = n.max(1);
        self
    }

    /// TCP lanes in the clear after the handshake (`RPMEM_TCP_PLAINTEXT`);
    /// rpmemd must be configured `tcp-plaintext = yes` too. Default off.
    pub fn tcp_plaintext(mut self, on: bool) -> Self {
        self.opts.tcp_plaintext = on;
        self
    }

    /// How long a waiting call polls before it sleeps (`RPMEM_SPIN_US`).
    pub fn spin(mut self, d: Duration) -> Self {
        self.opts.spin = d;
        self
    }

    /// Deadline of each control-path wait: rpmemd's start-up word, each
    /// response, connecting a lane, rpmemd's exit after close.
    pub fn control_timeout(mut self, d: Duration) -> Self {
        self.opts.control_timeout = d;
        self
    }

    /// Deadline of a data-path call that makes no progress (no byte sent
    /// or received for this long).
    pub fn data_timeout(mut self, d: Duration) -> Self {
        self.opts.data_timeout = d;
        self
    }

    /// Inline persist buffer size asked for ([`DEFAULT_INLINE_SIZE`] by
    /// default; librpmem's is 8192); rpmemd may grant less.
    pub fn inline_size(mut self, bytes: u64) -> Self {
        // An inline persist carries at least one 8-byte word.
        self.opts.inline_size = bytes.max(8);
        self
    }

    /// The options.
    pub fn build(self) -> Options {
        self.opts
    }
}

/// The turn shared by every rotation read from the environment.
fn env_turn() -> Arc<AtomicUsize> {
    static TURN: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    Arc::clone(TURN.get_or_init(|| Arc::new(AtomicUsize::new(0))))
}

/// librpmem's `rpmem_util_get_env_uint`: a positive decimal integer,
/// saturating at `u32::MAX`.
fn parse_positive(name: &'static str, value: String) -> Result<u32, Error> {
    match parse_decimal(&value) {
        Some(0) | None => Err(Error::Env {
            name,
            value,
            reason: "expected a positive integer (decimal digits)",
        }),
        Some(v) => Ok(u32::try_from(v).unwrap_or(u32::MAX)),
    }
}

/// Decimal digits only (no sign, no blanks), saturating at `u64::MAX`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> Result<Options, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Options::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_without_environment() {
        let o = opts(&[]).expect("defaults");
        assert_eq!(o.launch(), Launch::Ssh);
        assert_eq!(o.ssh(), "ssh");
        assert_eq!(o.commands().commands(), ["rpmemd"]);
        assert_eq!(o.max_nlanes(), u32::MAX);
        assert_eq!(o.wq_size(), 50);
        assert_eq!(o.spin(), Duration::from_micros(50));
        assert_eq!(o.control_timeout(), Duration::from_secs(30));
        assert_eq!(o.transport(), Transport::Tcp);
    }

    #[test]
    fn unknown_provider_is_named() {
        let e = opts(&[("RPMEM_PROVIDER", "sockets")]).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("RPMEM_PROVIDER") && text.contains("sockets"),
            "{text}"
        );
    }

    #[test]
    fn environment_values_apply() {
        let o = opts(&[
            ("RPMEM_LAUNCH", "local"),
            ("RPMEM_SSH", "/usr/bin/myssh"),
            ("RPMEM_CMD", "rpmemd -c a|rpmemd -c b"),
            ("RPMEM_MAX_NLANES", "3"),
            ("RPMEM_WORK_QUEUE_SIZE", "7"),
            ("RPMEM_SPIN_US", "0"),
            ("RPMEM_TCP_PLAINTEXT", "1"),
            ("RPMEM_PROVIDER", "verbs"),
            ("RPMEM_RDMA_FLUSH", "0"),
        ])
        .expect("valid");
        assert_eq!(o.transport(), Transport::Verbs);
        assert!(!o.rdma_flush());
        assert!(Options::default().rdma_flush());
        assert_eq!(o.launch(), Launch::Local);
        assert_eq!(o.ssh(), "/usr/bin/myssh");
        assert_eq!(o.commands().commands(), ["rpmemd -c a", "rpmemd -c b"]);
        assert_eq!(o.max_nlanes(), 3);
        assert_eq!(o.wq_size(), 7);
        assert_eq!(o.spin(), Duration::ZERO);
        assert!(o.tcp_plaintext());
    }

    #[test]
    fn data_addr_hook_parses_host_and_port() {
        assert_eq!(opts(&[]).expect("defaults").data_addr(), None);
        let o = opts(&[("RPMEM_DATA_ADDR", "127.0.0.1:4000")]).expect("valid");
        assert_eq!(o.data_addr(), Some(("127.0.0.1", 4000)));
        let o = opts(&[("RPMEM_DATA_ADDR", "[::1]:65535")]).expect("valid");
        assert_eq!(o.data_addr(), Some(("::1", 65535)));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            ":80",
            "::1:80",
            "[::1:80",
            "h:70000",
        ] {
            let e = opts(&[("RPMEM_DATA_ADDR", bad)]).expect_err(bad);
            assert!(e.to_string().contains("RPMEM_DATA_ADDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let o = opts(&[
            ("RPMEM_CMD", ""),
            ("RPMEM_MAX_NLANES", ""),
            ("RPMEM_LAUNCH", ""),
        ])
        .expect("valid");
        assert_eq!(o.commands().commands(), ["rpmemd"]);
        assert_eq!(o.max_nlanes(), u32::MAX);
        assert_eq!(o.launch(), Launch::Ssh);
    }

    #[test]
    fn huge_values_saturate() {
        let o = opts(&[("RPMEM_MAX_NLANES", "99999999999999999999999")]).expect("valid");
        assert_eq!(o.max_nlanes(), u32::MAX);
    }

    #[rstest]
    #[case("RPMEM_MAX_NLANES", "0")]
    #[case("RPMEM_MAX_NLANES", "-1")]
    #[case("RPMEM_MAX_NLANES", "4x")]
    #[case("RPMEM_MAX_NLANES", " 4")]
    #[case("RPMEM_WORK_QUEUE_SIZE", "+5")]
    #[case("RPMEM_WORK_QUEUE_SIZE", "0")]
    #[case("RPMEM_SPIN_US", "1.5")]
    #[case("RPMEM_TCP_PLAINTEXT", "yes")]
    #[case("RPMEM_LAUNCH", "rsh")]
    #[case("RPMEM_RDMA_FLUSH", "yes")]
    fn bad_values_are_errors_naming_the_variable(#[case] name: &str, #[case] value: &str) {
        let err = opts(&[(name, value)]).expect_err("invalid");
        let msg = err.to_string();
        assert!(
            msg.contains(name) && msg.contains(&format!("{value:?}")),
            "{msg}"
        );
        assert!(matches!(err, Error::Env { .. }));
    }

    #[test]
    fn rpmem_cmd_round_robin() {
        let r = CommandRotation::parse("a|b|c");
        let got: Vec<&str> = (0..7).map(|_| r.next_command()).collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a"]);
        // Clones share the turn.
        let r2 = r.clone();
        assert_eq!(r2.next_command(), "b");
        assert_eq!(r.next_command(), "c");
    }

    #[test]
    fn rpmem_cmd_keeps_empty_pieces_like_librpmem() {
        let r = CommandRotation::parse("a||b");
        assert_eq!(r.commands(), ["a", "", "b"]);
        let single = CommandRotation::parse("rpmemd --x");
        assert_eq!(single.next_command(), "rpmemd --x");
        assert_eq!(single.next_command(), "rpmemd --x");
    }

    #[test]
    fn builder_sets_everything() {
        let o = Options::builder()
            .launch(Launch::Local)
            .ssh("s")
            .ssh_args(["-F", "cfg"])
            .ssh_ipv4(true)
            .command("x")
            .max_nlanes(0)
            .wq_size(0)
            .spin(Duration::from_micros(5))
            .control_timeout(Duration::from_secs(2))
            .data_timeout(Duration::from_secs(3))
            .inline_size(4096)
            .build();
        assert_eq!(o.launch(), Launch::Local);
        assert_eq!(o.ssh_args(), ["-F", "cfg"]);
        assert!(o.ssh_ipv4());
        assert_eq!(o.max_nlanes(), 1);
        assert_eq!(o.wq_size(), 1);
        assert_eq!(o.data_timeout(), Duration::from_secs(3));
        assert_eq!(o.inline_size(), 4096);
        let again = o.to_builder().command("y").build();
        assert_eq!(again.commands().commands(), ["y"]);
        assert_eq!(again.launch(), Launch::Local);
    }
}
