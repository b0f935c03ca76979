//! rpmemd — the target process of rpmem, started over ssh by librpmem.
//!
//! Start-up: parse the command line, read the configuration, set up logging, then either
//! list the pool set files (`-l`), remove a pool (`-r`) or serve one session on stdin/stdout.
//! Nothing but protocol bytes goes to stdout, except the output of `--help`, `--version`,
//! `--dump-config`, `--check-config` and `--list`, which exit at once.

// No panic on untrusted input, enforced (issue 15): outside tests, no unwrap,
// expect, panic! or unchecked indexing; fallible code returns typed errors.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::io::Write;
use std::num::NonZeroU32;
use std::process::ExitCode;

use rpmem_core::oob::Server;
use rpmemd::cli::{self, Cli, Request};
use rpmemd::config::{self, Config, ConfigError};
use rpmemd::exit::Status;
use rpmemd::logging::{self, LoggingError, NOTICE_TARGET};
use rpmemd::{check, list, remove, session};

fn main() -> ExitCode {
    run(std::env::args_os()).into()
}

/// The whole program, from arguments to exit status.
fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> Status {
    if let Err(e) = logging::install() {
        let _ = writeln!(std::io::stderr(), "{}: {e}", logging::IDENT);
        return Status::Logging;
    }
    let cli = match Cli::try_parse_args(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap writes usage errors to stderr.
            let _ = e.print();
            return Status::Usage;
        }
    };
    let request = cli.request();
    match request {
        Request::Help => return print_stdout(&cli::help_text()),
        Request::Version => return print_stdout(&cli::version_text()),
        Request::DumpConfig
        | Request::CheckConfig
        | Request::List
        | Request::Remove(_)
        | Request::Session => {}
    }

    // Every request loads the configuration the same way (`--check-config` relies on it).
    let loaded = match config::Environment::from_process()
        .and_then(|env| config::load_traced(&env, &cli.overrides()))
    {
        Ok(loaded) => loaded,
        Err(e) => {
            log::error!("{e}");
            if request == Request::Session {
                send_startup_failure(config_errno(&e));
            }
            return Status::Config;
        }
    };
    let syslog_socket: Option<std::path::PathBuf> =
        std::env::var_os(logging::SYSLOG_SOCKET_ENV).map(Into::into);
    if request == Request::CheckConfig {
        return check::run(&loaded, syslog_socket.as_deref());
    }
    let poolset_dir_origin = loaded.origins.poolset_dir;
    let config = loaded.config;
    if request == Request::DumpConfig {
        return print_stdout(&config.dump());
    }

    let destination = logging::Destination::from_config(&config, syslog_socket);
    if let Err(e) = logging::configure(config.log_level, &destination) {
        log::error!("{e}");
        if request == Request::Session {
            send_startup_failure(logging_errno(&e));
        }
        return Status::Logging;
    }
    log_startup(&config);

    match request {
        Request::List => list::run(&config, &poolset_dir_origin),
        Request::Remove(remove) => remove::run(&config, &remove),
        // Help, version, dump-config and check-config returned above.
        Request::Session
        | Request::Help
        | Request::Version
        | Request::DumpConfig
        | Request::CheckConfig => session::run(&config),
    }
}

/// Writes the output of `--help`, `--version` or `--dump-config`.
fn print_stdout(text: &str) -> Status {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Status::Success,
        Err(e) => {
            log::error!("cannot write to stdout: {e}");
            Status::Failure
        }
    }
}

/// Tells the client that rpmemd could not start, as PMDK's rpmemd does: the
/// start-up status word carries an errno instead of 0.
fn send_startup_failure(errno: NonZeroU32) {
    let word = Server::failure_word(errno);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&word).and_then(|()| stdout.flush()) {
        log::error!("writing the start-up status failed: {e}");
    }
}

/// The errno of a configuration failure: the operating system's when a file
/// could not be read, `EINVAL` otherwise.
fn config_errno(e: &ConfigError) -> NonZeroU32 {
    let raw = match e {
        ConfigError::Read { source, .. } => source.raw_os_error(),
        _ => None,
    };
    nonzero_errno(raw)
}

/// The errno of a logging failure (the log file's `open`), `EINVAL` if none.
fn logging_errno(e: &LoggingError) -> NonZeroU32 {
    let raw = match e {
        LoggingError::OpenFile { source, .. } => source.raw_os_error(),
        LoggingError::Install(_) => None,
    };
    nonzero_errno(raw)
}

fn nonzero_errno(raw: Option<i32>) -> NonZeroU32 {
    raw.and_then(|e| u32::try_from(e).ok())
        .and_then(NonZeroU32::new)
        .or_else(|| u32::try_from(libc::EINVAL).ok().and_then(NonZeroU32::new))
        .unwrap_or(NonZeroU32::MIN)
}

/// Logs who started rpmemd and with which configuration.
fn log_startup(config: &Config) {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| "(null)".to_owned());
    log::info!("{} version {}", logging::IDENT, env!("CARGO_PKG_VERSION"));
    log::info!(target: NOTICE_TARGET, "ssh connection: {}", env("SSH_CONNECTION"));
    log::info!(target: NOTICE_TARGET, "user: {}", env("USER"));
    config.log_summary();
}
