//! rpmemd — the target process of rpmem, started over ssh by librpmem.
//!
//! Start-up: parse the command line, read the configuration, set up logging, then either
//! remove a pool (`-r`) or serve one session on stdin/stdout. Nothing but protocol bytes goes to
//! stdout, except the output of `--help`, `--version` and `--dump-config`, which exit at once.

mod cli;
mod config;
mod exit;
mod logging;

use std::io::Write;
use std::process::ExitCode;

use cli::{Cli, RemoveRequest, Request};
use config::Config;
use exit::Status;

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
        Request::DumpConfig | Request::Remove(_) | Request::Session => {}
    }

    let config = match config::Environment::from_process()
        .and_then(|env| config::load(&env, &cli.overrides()))
    {
        Ok(config) => config,
        Err(e) => {
            log::error!("{e}");
            return Status::Config;
        }
    };
    if request == Request::DumpConfig {
        return print_stdout(&config.dump());
    }

    let syslog_socket = std::env::var_os(logging::SYSLOG_SOCKET_ENV).map(Into::into);
    let destination = logging::Destination::from_config(&config, syslog_socket);
    if let Err(e) = logging::configure(config.log_level, &destination) {
        log::error!("{e}");
        return Status::Logging;
    }
    log_startup(&config);

    match request {
        Request::Remove(remove) => remove_pool(&config, &remove),
        // Help, version and dump-config returned above.
        Request::Session | Request::Help | Request::Version | Request::DumpConfig => {
            run_session(&config)
        }
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

/// Logs who started rpmemd and with which configuration.
fn log_startup(config: &Config) {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| "(null)".to_owned());
    log::info!("{} version {}", logging::IDENT, env!("CARGO_PKG_VERSION"));
    logging::notice!("ssh connection: {}", env("SSH_CONNECTION"));
    logging::notice!("user: {}", env("USER"));
    config.log_summary();
}

/// Reports a failure to the client (stderr, which ssh carries) and to the log.
fn fail(message: &str) -> Status {
    log::error!("{message}");
    if !logging::logs_to_stderr() {
        let _ = writeln!(std::io::stderr(), "{}: {message}", logging::IDENT);
    }
    Status::Failure
}

/// Serves one librpmem session on stdin/stdout.
///
/// Placeholder until the pool and session code lands: it refuses with a clear error.
fn run_session(_config: &Config) -> Status {
    fail("sessions are not implemented in this build")
}

/// Removes the pool described by `request.poolset` (relative to `poolset-dir`).
///
/// Placeholder until the pool code lands: it refuses with a clear error.
fn remove_pool(_config: &Config, request: &RemoveRequest) -> Status {
    log::info!("removing '{}'", request.poolset);
    fail("removing pools is not implemented in this build")
}
