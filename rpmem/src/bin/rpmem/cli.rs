//! The command line (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{CliError, CliResult};
use crate::values;

/// rpmem: remote persistent memory from the command line.
///
/// rpmem copies memory into a pool (a set of files described by a pool set
/// file) on another host and makes it durable there. It starts rpmemd on
/// that host over ssh, or directly on this host in local mode
/// (`--launch local` or RPMEM_LAUNCH=local). Start with `rpmem demo`.
#[derive(Debug, Parser)]
#[command(
    name = "rpmem",
    version,
    propagate_version = true,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Cli {
    /// Print nothing but errors, --json objects and the data of `get -`:
    /// the exit status tells the result
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say on stderr how rpmemd is started and what the library logs
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show rpmem working end to end on this machine, with nothing to set up.
    ///
    /// Starts rpmemd locally with a pool in a temporary directory, replicates
    /// a few MiB over several lanes, reopens the pool, reads everything back
    /// and verifies it, prints latency and throughput, and removes what it
    /// created.
    Demo(DemoArgs),
    /// Create a pool on the target from a pool set file there.
    ///
    /// The pool set file (a path relative to rpmemd's poolset-dir) must exist
    /// on the target; its part files are created. An attribute not given
    /// gets its default: signature "RPMEM", major version 1, feature flags
    /// 0, a fresh random pool set uuid and pool uuid, the pool's own uuid as
    /// the next and the previous replica's, and zero user flags (which
    /// rpmemd replaces with its architecture flags).
    Create(CreateArgs),
    /// Open a pool and print its attributes, lanes and persistency method.
    Info(InfoArgs),
    /// Remove a pool's part files on the target (and with --pool-set its pool set file).
    Remove(RemoveArgs),
    /// List the pool set files the target offers, and whether each one parses.
    ///
    /// Runs `rpmemd --list` on the target: every pool set file in rpmemd's poolset-dir
    /// (subdirectories too), by the name to pass as POOLSET, with its pool size or its error.
    List(ListArgs),
    /// Change attributes stored in a pool's header; the others stay as they are.
    ///
    /// Opens the pool, writes the stored attributes with the options given
    /// replaced, opens the pool again and prints what it now holds.
    SetAttr(SetAttrArgs),
    /// Replicate a local file into a pool.
    Put(PutArgs),
    /// Read bytes of a pool into a local file.
    Get(GetArgs),
    /// Measure persist/flush/read latency and throughput, beside raw-TCP baselines.
    ///
    /// Against TARGET POOLSET the pool must exist (see `rpmem create`) and
    /// its data after the first 4096 bytes is overwritten. With --local,
    /// rpmemd is started on this host with a scratch pool, as in the demo.
    Bench(BenchArgs),
    /// Check a pool set file and print its replicas, parts, options and sizes.
    Poolset(PoolsetArgs),
}

/// How to reach rpmemd. Unset options come from the RPMEM_* environment
/// variables, and then from the defaults.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// How rpmemd is started: "ssh", or "local" (executed directly on this
    /// host; the target must be localhost) [env: RPMEM_LAUNCH]
    #[arg(long, value_name = "ssh|local", value_parser = ["ssh", "local"])]
    pub launch: Option<String>,
    /// The command that starts rpmemd on the target, e.g. "rpmemd -c
    /// /etc/rpmemd.conf"; in local mode the bare word rpmemd is the rpmemd
    /// next to this program, else one built by cargo, else on $PATH [env:
    /// RPMEM_CMD]
    #[arg(long, value_name = "COMMAND")]
    pub cmd: Option<String>,
    /// The ssh client program [env: RPMEM_SSH]
    #[arg(long, value_name = "PROGRAM")]
    pub ssh: Option<String>,
    /// An extra argument for ssh, repeat for several (e.g. --ssh-arg=-F
    /// --ssh-arg=/path/ssh_config)
    #[arg(long = "ssh-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ssh_args: Vec<String>,
    /// Seconds to wait for each answer of rpmemd, and for a transfer that
    /// makes no progress [default: 30]
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Microseconds a waiting call polls its socket before it sleeps
    /// [env: RPMEM_SPIN_US] [default: 50]
    #[arg(long, value_name = "MICROSECONDS")]
    pub spin_us: Option<u64>,
}

impl ConnArgs {
    /// The library options: the environment, then these arguments. In
    /// local mode a command whose program is the bare word `rpmemd` runs the
    /// rpmemd this tool finds (see [`crate::local::find_rpmemd`]), and the
    /// ssh options, which local mode does not use, are refused.
    pub fn options(&self) -> CliResult<rpmem::Options> {
        let opts = self.resolved()?;
        if crate::out::verbose() {
            describe_launch(&opts);
        }
        Ok(opts)
    }

    fn resolved(&self) -> CliResult<rpmem::Options> {
        let opts = self.merged()?;
        if opts.launch() != rpmem::Launch::Local {
            return Ok(opts);
        }
        self.refuse_ssh_options(&format!("with {}", self.launch_words()))?;
        let mut commands = Vec::new();
        for cmd in opts.commands().commands() {
            commands.push(crate::local::resolve_command(cmd, &mut |s| {
                tell!("rpmem: {s}")
            })?);
        }
        Ok(opts
            .to_builder()
            .commands(rpmem::CommandRotation::parse(&commands.join("|")))
            .build())
    }

    /// How the user asked for local mode, in their words.
    pub fn launch_words(&self) -> &'static str {
        if self.launch.is_some() {
            "--launch local"
        } else {
            "RPMEM_LAUNCH=local"
        }
    }

    fn refuse_ssh_options(&self, context: &str) -> CliResult {
        let given = if self.ssh.is_some() {
            Some("--ssh")
        } else if !self.ssh_args.is_empty() {
            Some("--ssh-arg")
        } else {
            None
        };
        match given {
            Some(opt) => Err(CliError::Usage(format!(
                "{opt} cannot be used {context}: rpmemd is started on this host without ssh"
            ))),
            None => Ok(()),
        }
    }

    /// The library options for `demo` and `bench --local` (`what`), which
    /// start their own rpmemd with a scratch configuration: an rpmemd
    /// command (`--cmd`, `RPMEM_CMD`), ssh launch or ssh options would be
    /// ignored, so they are refused.
    pub fn own_rpmemd_options(&self, what: &str) -> CliResult<rpmem::Options> {
        let refuse = |given: &str, fix: &str| {
            Err(CliError::Usage(format!(
                "{given}, but {what} starts its own rpmemd on this host with a scratch \
                 configuration: {fix}; choose that rpmemd program with --rpmemd PATH"
            )))
        };
        if self.cmd.is_some() {
            return refuse("--cmd was given", "leave --cmd out");
        }
        if std::env::var_os("RPMEM_CMD").is_some() {
            return refuse(
                "RPMEM_CMD is set in the environment",
                &format!("unset it (env -u RPMEM_CMD rpmem {what})"),
            );
        }
        match self.launch.as_deref() {
            Some("ssh") => return refuse("--launch ssh was given", "leave it out"),
            Some(_) => {}
            None => {
                if std::env::var("RPMEM_LAUNCH").is_ok_and(|v| v == "ssh") {
                    return refuse(
                        "RPMEM_LAUNCH=ssh is set in the environment",
                        &format!("unset it (env -u RPMEM_LAUNCH rpmem {what})"),
                    );
                }
            }
        }
        self.refuse_ssh_options(&format!("with {what}"))?;
        self.merged()
    }

    /// The environment, then these arguments.
    fn merged(&self) -> CliResult<rpmem::Options> {
        let env = rpmem::Options::from_env()
            .map_err(|e| CliError::Usage(format!("the environment is invalid: {e}")))?;
        let mut b = env.to_builder();
        if let Some(l) = &self.launch {
            if let Some(l) = rpmem::Launch::parse(l) {
                b = b.launch(l);
            }
        }
        if let Some(cmd) = &self.cmd {
            b = b.command(cmd.clone());
        }
        if let Some(ssh) = &self.ssh {
            b = b.ssh(ssh.clone());
        }
        if !self.ssh_args.is_empty() {
            b = b.ssh_args(self.ssh_args.iter().cloned());
        }
        if let Some(t) = self.timeout {
            b = b.control_timeout(t).data_timeout(t);
        }
        if let Some(us) = self.spin_us {
            b = b.spin(Duration::from_micros(us));
        }
        Ok(b.build())
    }
}

/// `--verbose`: how each session starts rpmemd.
pub fn describe_launch(opts: &rpmem::Options) {
    let commands = opts.commands().commands().join(" | ");
    match opts.launch() {
        rpmem::Launch::Local => tell!("rpmem: rpmemd is started on this host as: {commands}"),
        rpmem::Launch::Ssh => tell!(
            "rpmem: rpmemd is started over ssh ({} -T -oBatchMode=yes{}) as: {commands}",
            opts.ssh(),
            opts.ssh_args()
                .iter()
                .map(|a| format!(" {a}"))
                .collect::<String>()
        ),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{text:?}: the timeout must be above 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A target address as the library reads it (checked before anything starts).
fn parse_target(text: &str) -> Result<String, String> {
    rpmem::Target::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    values::parse_size(text)
}

fn parse_lanes(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number of lanes from 1 to 1024")),
    }
}

/// Where the target is and which pool.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The target host: [USER@]HOST[:SSH_PORT], an IPv6 address in brackets
    /// when a port follows; "localhost" in local mode
    #[arg(value_name = "TARGET", value_parser = parse_target)]
    pub target: String,
    /// The pool set file on the target, relative to rpmemd's poolset-dir
    #[arg(value_name = "POOLSET")]
    pub pool_set: String,
}

/// `rpmem demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The rpmemd program [default: rpmemd next to this program, else one
    /// built by cargo for this checkout, else on $PATH]
    #[arg(long, value_name = "PATH")]
    pub rpmemd: Option<PathBuf>,
    /// Where to make the scratch directory [default: /dev/shm when it
    /// exists, else the system's temporary directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Lanes (TCP connections, one thread each) for the large transfers
    #[arg(long, default_value = "4", value_parser = parse_lanes)]
    pub lanes: u32,
    /// Megabytes replicated by the large transfers
    #[arg(long, value_name = "MIB", default_value = "12", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub mib: u32,
    /// Instead of explaining each step, print one JSON object with the
    /// figures at the end (after verification passed)
    #[arg(long)]
    pub json: bool,
}

/// The pool attributes an option can give: `create` stores defaults for the
/// others (see its long help), `set-attr` keeps the stored ones.
#[derive(Debug, Args, Clone, Default)]
pub struct AttrFields {
    /// Pool signature, at most 8 ASCII characters
    #[arg(long, value_name = "TEXT", value_parser = values::parse_signature)]
    pub signature: Option<[u8; 8]>,
    /// Major version of the pool format
    #[arg(long, value_name = "N", value_parser = values::parse_u32)]
    pub major: Option<u32>,
    /// Compatible feature flags (decimal or 0x hex)
    #[arg(long, value_name = "FLAGS", value_parser = values::parse_u32)]
    pub compat: Option<u32>,
    /// Incompatible feature flags
    #[arg(long, value_name = "FLAGS", value_parser = values::parse_u32)]
    pub incompat: Option<u32>,
    /// Read-only compatible feature flags
    #[arg(long, value_name = "FLAGS", value_parser = values::parse_u32)]
    pub ro_compat: Option<u32>,
    /// Uuid of the pool set
    #[arg(long, value_name = "UUID", value_parser = values::parse_uuid)]
    pub poolset_uuid: Option<[u8; 16]>,
    /// Uuid of the pool's first part
    #[arg(long, value_name = "UUID", value_parser = values::parse_uuid)]
    pub uuid: Option<[u8; 16]>,
    /// Uuid of the next replica
    #[arg(long, value_name = "UUID", value_parser = values::parse_uuid)]
    pub next_uuid: Option<[u8; 16]>,
    /// Uuid of the previous replica
    #[arg(long, value_name = "UUID", value_parser = values::parse_uuid)]
    pub prev_uuid: Option<[u8; 16]>,
    /// User flags, 32 hexadecimal digits
    #[arg(long, value_name = "HEX", value_parser = values::parse_user_flags)]
    pub user_flags: Option<[u8; 16]>,
}

impl AttrFields {
    /// `stored` with the attributes given replaced; `None` when none is
    /// given.
    pub fn apply(&self, stored: &rpmem::PoolAttr) -> Option<rpmem::PoolAttr> {
        let any = self.signature.is_some()
            || self.major.is_some()
            || self.compat.is_some()
            || self.incompat.is_some()
            || self.ro_compat.is_some()
            || self.poolset_uuid.is_some()
            || self.uuid.is_some()
            || self.next_uuid.is_some()
            || self.prev_uuid.is_some()
            || self.user_flags.is_some();
        any.then(|| rpmem::PoolAttr {
            signature: self.signature.unwrap_or(stored.signature),
            major: self.major.unwrap_or(stored.major),
            compat_features: self.compat.unwrap_or(stored.compat_features),
            incompat_features: self.incompat.unwrap_or(stored.incompat_features),
            ro_compat_features: self.ro_compat.unwrap_or(stored.ro_compat_features),
            poolset_uuid: self.poolset_uuid.unwrap_or(stored.poolset_uuid),
            uuid: self.uuid.unwrap_or(stored.uuid),
            next_uuid: self.next_uuid.unwrap_or(stored.next_uuid),
            prev_uuid: self.prev_uuid.unwrap_or(stored.prev_uuid),
            user_flags: self.user_flags.unwrap_or(stored.user_flags),
        })
    }
}

/// Pool attributes for `create`.
#[derive(Debug, Args, Clone, Default)]
pub struct AttrArgs {
    /// Create a pool without headers (the pool set file must say OPTION NOHDRS)
    #[arg(long, conflicts_with_all = ["signature", "major", "compat", "incompat", "ro_compat", "poolset_uuid", "uuid", "next_uuid", "prev_uuid", "user_flags"])]
    pub no_headers: bool,
    #[command(flatten)]
    pub fields: AttrFields,
}

/// `rpmem create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Pool size: bytes with an optional suffix (K, M, G, KiB, MiB, kB, MB,
    /// ...), a multiple of 4096, at most the pool set's size
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub size: u64,
    #[command(flatten)]
    pub attr: AttrArgs,
    /// Print the result as one JSON object
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Size to open the pool with: the protocol does not report a pool's
    /// size, rpmemd only refuses sizes above it (a multiple of 4096)
    #[arg(long, value_name = "SIZE", default_value = "8K", value_parser = parse_size_arg)]
    pub size: u64,
    /// Lanes to ask for
    #[arg(long, default_value = "1", value_parser = parse_lanes)]
    pub lanes: u32,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem set-attr`: each attribute given replaces the stored one.
#[derive(Debug, Args)]
pub struct SetAttrArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(flatten)]
    pub attr: AttrFields,
    /// Print the result as one JSON object
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Ignore errors while removing the part files
    #[arg(long)]
    pub force: bool,
    /// Remove the pool set file too
    #[arg(long = "pool-set", id = "remove_pool_set")]
    pub remove_pool_set: bool,
    /// Print the result as one JSON object (on failure too: "ok": false)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The target host: [USER@]HOST[:SSH_PORT] (see `rpmem create --help`)
    #[arg(value_name = "TARGET", value_parser = parse_target)]
    pub target: String,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Options of `put` and `get`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Lanes (TCP connections, one thread each) to move the data over
    #[arg(long, default_value = "4", value_parser = parse_lanes)]
    pub lanes: u32,
    /// Never show a progress bar (it is shown only on a terminal, for
    /// transfers of 4 MiB and more)
    #[arg(long)]
    pub no_progress: bool,
    /// When done, print one JSON object describing the transfer (not with
    /// get to standard output)
    #[arg(long)]
    pub json: bool,
}

/// `rpmem put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The local file to replicate; "-" reads standard input (into memory,
    /// at most 1 GiB)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Pool offset of the file's first byte [default: 4096, the first byte
    /// after the pool header; 0 for a pool without headers]
    #[arg(long, value_name = "N", value_parser = parse_size_arg)]
    pub offset: Option<u64>,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The local file to write: created, or replaced once every byte
    /// arrived (a symbolic link is followed); a FIFO or device is written
    /// in place; "-" writes standard output
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Pool offset of the first byte to read [default: as for put]
    #[arg(long, value_name = "N", value_parser = parse_size_arg)]
    pub offset: Option<u64>,
    /// Bytes to read
    #[arg(long, value_name = "N", value_parser = parse_size_arg)]
    pub length: u64,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `rpmem bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The target host (see `rpmem create --help`); not with --local
    #[arg(
        value_name = "TARGET",
        required_unless_present = "local",
        conflicts_with = "local",
        value_parser = parse_target
    )]
    pub target: Option<String>,
    /// The pool set file of an existing pool on the target; not with --local
    #[arg(value_name = "POOLSET", required_unless_present = "local")]
    pub pool_set: Option<String>,
    /// Start rpmemd on this host with a scratch pool, as `rpmem demo` does
    #[arg(long)]
    pub local: bool,
    /// The rpmemd program for --local (see `rpmem demo --help`)
    #[arg(long, value_name = "PATH", requires = "local")]
    pub rpmemd: Option<PathBuf>,
    /// Where --local makes its scratch directory (see `rpmem demo --help`)
    #[arg(long, value_name = "DIR", requires = "local")]
    pub dir: Option<PathBuf>,
    /// Operation sizes, comma-separated [default: 64,4K,1M]
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size_arg)]
    pub sizes: Vec<u64>,
    /// Lanes of the multi-lane throughput cases (the latency cases use 1)
    #[arg(long, default_value = "2", value_parser = parse_lanes)]
    pub lanes: u32,
    /// Operations to measure, comma-separated or repeated [default: all:
    /// persist, flush-drain, deep, read]
    #[arg(long, value_name = "MODE", value_delimiter = ',', value_parser = parse_mode)]
    pub mode: Vec<crate::bench::Mode>,
    /// Use the relaxed flags (PERSIST_RELAXED, FLUSH_RELAXED): no 8-byte
    /// atomicity, fewer messages
    #[arg(long)]
    pub relaxed: bool,
    /// Most timed operations per lane and case
    #[arg(long, value_name = "N", default_value = "20000", value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: u64,
    /// Longest time per case, in seconds
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    pub seconds: Duration,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn parse_mode(text: &str) -> Result<crate::bench::Mode, String> {
    crate::bench::Mode::parse(text)
        .ok_or_else(|| format!("{text:?} is not a mode: use persist, flush-drain, deep or read"))
}

/// `rpmem poolset`.
#[derive(Debug, Args)]
pub struct PoolsetArgs {
    /// The pool set file to check
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_needs_a_target_or_local() {
        assert!(Cli::try_parse_from(["rpmem", "bench"]).is_err());
        assert!(Cli::try_parse_from(["rpmem", "bench", "--local"]).is_ok());
        assert!(Cli::try_parse_from(["rpmem", "bench", "host", "p.set"]).is_ok());
        assert!(Cli::try_parse_from(["rpmem", "bench", "host", "p.set", "--local"]).is_err());
    }

    #[test]
    fn sizes_and_modes_split_at_commas() {
        let cli = Cli::try_parse_from([
            "rpmem",
            "bench",
            "--local",
            "--sizes",
            "64,4K",
            "--mode",
            "read,deep",
        ])
        .expect("valid");
        let Command::Bench(b) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(b.sizes, [64, 4096]);
        assert_eq!(b.mode, [crate::bench::Mode::Read, crate::bench::Mode::Deep]);
    }
}

/// The man page and completion generator (man/docgen.rs), for the test below.
#[cfg(test)]
#[path = "../../../../man/docgen.rs"]
mod docgen;

/// rpmem(1) and the tool's shell completions are generated from [`Cli`] and
/// `man/src/rpmem.1.md`; this test fails when the committed files are out of
/// date (`REGENERATE_DOCS=1` rewrites them). See man/docgen.rs and
/// docs/packaging.md. It is here because `Cli` lives in this binary.
#[cfg(test)]
mod generated_docs {
    use super::docgen;
    use clap::CommandFactory;

    #[test]
    fn generated_docs_are_current() {
        let cmd = super::Cli::command();
        let mut files = vec![(
            std::path::PathBuf::from("man/man1/rpmem.1"),
            docgen::man_page(&cmd, "man/src/rpmem.1.md"),
        )];
        files.extend(docgen::completions(&cmd));
        docgen::check_or_write(&files);
    }
}
