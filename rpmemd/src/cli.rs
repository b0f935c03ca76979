//! rpmemd command line.
//!
//! The options of the rpmemd manual, PMDK's undocumented `-s/--pool-set` and `-t/--nthreads`,
//! and our `--dump-config`, `--check-config` and `-l/--list`. `--help` and `--version` are handled by rpmemd itself (not clap) so
//! that their text is PMDK's and goes to stdout only when asked for.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{self, LogLevel, Overrides, Setting};

/// The usage line.
pub const USAGE: &str = "usage: rpmemd [--version] [--help] [<args>]";

/// The option list printed by `--help`.
const OPTIONS_HELP: &str = "\
Options:
  -c, --config <path>           configuration file location
  -r, --remove <poolset>        remove pool described by given poolset file
  -f, --force                   ignore errors when removing a pool
  -s, --pool-set                with --remove: remove the pool set file too
  -l, --list                    list the pool set files of the pool set directory
  -t, --nthreads <num>          number of processing threads (0: automatic)
  -h, --help                    display help message and exit
  -V, --version                 display target daemon version and exit
      --log-file <path>         log file location
      --poolset-dir <path>      pool set files directory
      --persist-apm             enable Appliance Persistency Method
      --persist-general         enable General Server Persistency Mechanism
      --use-syslog              use syslog(3) for logging messages
      --log-level <level>       set log level value
                                        err     error conditions
                                        warn    warning conditions
                                        notice  normal, but significant, condition
                                        info    informational message
                                        debug   debug-level message
      --dump-config             print the effective configuration and exit
      --check-config            check the configuration as a session would use it
                                (log file, syslog, pool set directory) and exit
";

/// The `--version` text (one line).
pub fn version_text() -> String {
    format!("rpmemd version {}\n", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text.
pub fn help_text() -> String {
    format!(
        "{USAGE}\n{}\n{OPTIONS_HELP}\n\
         For complete documentation see rpmemd(1): `man rpmemd`\n\
         (in the source tree: docs/rpmemd.md).\n",
        version_text()
    )
}

/// Parses a `-t/--nthreads` value: a decimal number of threads, digits only.
pub fn parse_nthreads(value: &str) -> Result<usize, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid number of threads -- '{value}'"));
    }
    value
        .parse::<usize>()
        .map_err(|_| format!("invalid number of threads -- '{value}' (too large)"))
}

/// The rpmemd command line.
#[derive(Parser, Clone, Debug, Default, PartialEq, Eq)]
#[command(
    name = "rpmemd",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    /// `-V/--version`: print the version and exit.
    #[arg(short = 'V', long)]
    pub version: bool,

    /// `-h/--help`: print the help and exit.
    #[arg(short = 'h', long)]
    pub help: bool,

    /// `-c/--config`: the only configuration file to read (must exist).
    #[arg(short = 'c', long, value_name = "path", allow_hyphen_values = true)]
    pub config: Option<PathBuf>,

    /// `-r/--remove`: remove the pool described by this pool set file (relative to
    /// `poolset-dir`) instead of serving a session.
    #[arg(short = 'r', long, value_name = "poolset", allow_hyphen_values = true)]
    pub remove: Option<String>,

    /// `-l/--list`: list the pool set files of `poolset-dir` instead of serving a session
    /// (our extension).
    #[arg(short = 'l', long, conflicts_with_all = ["remove", "force", "pool_set"])]
    pub list: bool,

    /// `-f/--force`: ignore errors when removing a pool.
    #[arg(short = 'f', long, requires = "remove")]
    pub force: bool,

    /// `-s/--pool-set`: with `--remove`, remove the pool set file too.
    #[arg(short = 's', long = "pool-set", requires = "remove")]
    pub pool_set: bool,

    /// `-t/--nthreads`: number of processing threads (0: automatic).
    #[arg(short = 't', long, value_name = "num", allow_hyphen_values = true,
          value_parser = parse_nthreads)]
    pub nthreads: Option<usize>,

    /// `--log-file`: log file location.
    #[arg(long, value_name = "path", allow_hyphen_values = true,
          value_parser = config::parse_path_value)]
    pub log_file: Option<String>,

    /// `--poolset-dir`: pool set files directory (`$HOME` is replaced).
    #[arg(long, value_name = "path", allow_hyphen_values = true,
          value_parser = config::parse_path_value)]
    pub poolset_dir: Option<String>,

    /// `--persist-apm`: enable the Appliance Persistency Method.
    #[arg(long)]
    pub persist_apm: bool,

    /// `--persist-general`: enable the General Purpose Server Persistency Method.
    #[arg(long)]
    pub persist_general: bool,

    /// `--use-syslog`: log through syslog.
    #[arg(long)]
    pub use_syslog: bool,

    /// `--log-level`: the least severe level logged.
    #[arg(long, value_name = "level", allow_hyphen_values = true,
          value_parser = config::parse_log_level_value)]
    pub log_level: Option<LogLevel>,

    /// `--dump-config`: print the effective configuration and exit.
    #[arg(long)]
    pub dump_config: bool,

    /// `--check-config`: check the configuration as a session would use it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// A `-r/--remove` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveRequest {
    /// The pool set file, relative to `poolset-dir`.
    pub poolset: String,
    /// `-f`: ignore errors while removing.
    pub force: bool,
    /// `-s`: remove the pool set file too.
    pub pool_set: bool,
}

/// What the command line asks rpmemd to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Print the help text and exit.
    Help,
    /// Print the version and exit.
    Version,
    /// Print the effective configuration and exit.
    DumpConfig,
    /// Check the configuration as a session would use it, report, and exit.
    CheckConfig,
    /// List the pool set files of `poolset-dir`.
    List,
    /// Remove a pool.
    Remove(RemoveRequest),
    /// Serve one librpmem session on stdin/stdout.
    Session,
}

impl Cli {
    /// Parses the arguments (the first one is the program name).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args)
    }

    /// What to do, in priority order: help, version, check-config, dump-config, list, remove,
    /// session (`--list` and `--remove` exclude each other).
    pub fn request(&self) -> Request {
        if self.help {
            Request::Help
        } else if self.version {
            Request::Version
        } else if self.check_config {
            Request::CheckConfig
        } else if self.dump_config {
            Request::DumpConfig
        } else if self.list {
            Request::List
        } else if let Some(poolset) = &self.remove {
            Request::Remove(RemoveRequest {
                poolset: poolset.clone(),
                force: self.force,
                pool_set: self.pool_set,
            })
        } else {
            Request::Session
        }
    }

    /// The configuration overrides given on the command line.
    ///
    /// Settings come out in the order `log-file`, `poolset-dir`, `persist-apm`,
    /// `persist-general`, `use-syslog`, `log-level`, so that `--use-syslog` wins over the
    /// "log file means no syslog" rule of `--log-file` wherever the flags stand.
    pub fn overrides(&self) -> Overrides {
        let mut settings = Vec::new();
        if let Some(path) = &self.log_file {
            settings.push(Setting::LogFile(path.clone()));
        }
        if let Some(path) = &self.poolset_dir {
            settings.push(Setting::PoolsetDir(path.clone()));
        }
        if self.persist_apm {
            settings.push(Setting::PersistApm(true));
        }
        if self.persist_general {
            settings.push(Setting::PersistGeneral(true));
        }
        if self.use_syslog {
            settings.push(Setting::UseSyslog(true));
        }
        if let Some(level) = self.log_level {
            settings.push(Setting::LogLevel(level));
        }
        Overrides {
            config_file: self.config.clone(),
            settings,
            nthreads: self.nthreads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("rpmemd").chain(args.iter().copied()))
    }

    #[test]
    fn every_option() {
        let cli = parse(&[
            "-c",
            "in.conf",
            "-r",
            "pool.set",
            "-f",
            "-s",
            "-t",
            "4",
            "--log-file=/l",
            "--poolset-dir",
            "$HOME/p",
            "--persist-apm",
            "--persist-general",
            "--use-syslog",
            "--log-level=notice",
        ])
        .ok();
        let expected = Cli {
            config: Some(PathBuf::from("in.conf")),
            remove: Some("pool.set".into()),
            force: true,
            pool_set: true,
            nthreads: Some(4),
            log_file: Some("/l".into()),
            poolset_dir: Some("$HOME/p".into()),
            persist_apm: true,
            persist_general: true,
            use_syslog: true,
            log_level: Some(LogLevel::Notice),
            ..Cli::default()
        };
        assert_eq!(cli, Some(expected));
    }

    #[rstest]
    #[case::help(&["-h", "-V"], Request::Help)]
    #[case::version(&["--version", "--dump-config"], Request::Version)]
    #[case::dump(&["--dump-config", "-r", "x"], Request::DumpConfig)]
    #[case::check(&["--dump-config", "--check-config", "-r", "x"], Request::CheckConfig)]
    #[case::remove(&["--remove", "x", "--force"],
        Request::Remove(RemoveRequest { poolset: "x".into(), force: true, pool_set: false }))]
    #[case::list(&["-l", "--log-level", "debug"], Request::List)]
    #[case::list_long(&["--list"], Request::List)]
    #[case::dump_over_list(&["--list", "--dump-config"], Request::DumpConfig)]
    #[case::session(&["--log-level", "debug"], Request::Session)]
    fn requests(#[case] args: &[&str], #[case] expected: Request) {
        assert_eq!(parse(args).ok().map(|c| c.request()), Some(expected));
    }

    #[rstest]
    #[case::unknown(&["--bogus"])]
    #[case::positional(&["print_HOME_env"])]
    #[case::nthreads_word(&["-t", "abc"])]
    #[case::nthreads_negative(&["-t", "-1"])]
    #[case::nthreads_plus(&["-t", "+1"])]
    #[case::nthreads_empty(&["--nthreads="])]
    #[case::bad_level(&["--log-level=Invalid"])]
    #[case::empty_log_file(&["--log-file="])]
    #[case::empty_poolset_dir(&["--poolset-dir", ""])]
    #[case::flag_with_value(&["--persist-apm=yes"])]
    #[case::force_alone(&["-f"])]
    #[case::pool_set_alone(&["--pool-set"])]
    #[case::config_without_path(&["-c"])]
    #[case::list_and_remove(&["--list", "-r", "x"])]
    #[case::list_with_force(&["--list", "-f"])]
    #[case::list_with_value(&["--list=x"])]
    #[case::list_with_pool_set(&["-l", "-s"])]
    fn usage_errors(#[case] args: &[&str]) {
        assert!(parse(args).is_err());
    }

    #[test]
    fn repeated_options_take_the_last() {
        let cli = parse(&[
            "--log-level=debug",
            "--log-level=warn",
            "--use-syslog",
            "--use-syslog",
        ]);
        let cli = cli.ok();
        assert_eq!(cli.as_ref().and_then(|c| c.log_level), Some(LogLevel::Warn));
        assert!(cli.is_some_and(|c| c.use_syslog));
    }

    #[test]
    fn overrides_order_puts_use_syslog_after_log_file() {
        let cli = parse(&["--use-syslog", "--log-file=/l", "--log-level=info"]).ok();
        let settings = cli.map(|c| c.overrides().settings);
        assert_eq!(
            settings,
            Some(vec![
                Setting::LogFile("/l".into()),
                Setting::UseSyslog(true),
                Setting::LogLevel(LogLevel::Info),
            ])
        );
    }

    #[test]
    fn nthreads_values() {
        assert_eq!(parse_nthreads("0"), Ok(0));
        assert_eq!(parse_nthreads("16"), Ok(16));
        assert!(parse_nthreads("99999999999999999999999").is_err());
        assert!(parse_nthreads(" 1").is_err());
    }

    #[test]
    fn help_lists_every_option() {
        let help = help_text();
        for option in [
            "-c, --config <path>",
            "-r, --remove <poolset>",
            "-f, --force",
            "-s, --pool-set",
            "-l, --list",
            "-t, --nthreads <num>",
            "-h, --help",
            "-V, --version",
            "--log-file <path>",
            "--poolset-dir <path>",
            "--persist-apm",
            "--persist-general",
            "--use-syslog",
            "--log-level <level>",
            "--dump-config",
            "--check-config",
        ] {
            assert!(help.contains(option), "{option}");
        }
        assert!(help.starts_with(USAGE));
    }
}
