//! Standard output that reports its failures: every write of the tool's
//! results goes through `say!` (or [`check`] for raw bytes), and a write
//! that failed (`/dev/full`, a closed pipe) makes the subcommand fail with
//! exit status 3 and a message on stderr instead of exiting 0.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{CliError, CliResult};

/// The first write error on stdout.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// Records a failed write on stdout (the first one is reported).
pub fn failed(e: io::Error) {
    let mut slot = FAILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(e);
    }
}

/// Flushes stdout.
pub fn flush() -> io::Result<()> {
    io::stdout().flush()
}

/// Flushes stdout and fails when any write to it failed.
pub fn check() -> CliResult {
    if let Err(e) = flush() {
        failed(e);
    }
    let first = FAILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match first {
        Some(e) => Err(CliError::io("cannot write to standard output")(e)),
        None => Ok(()),
    }
}

/// `--quiet`: no text but errors, `--json` objects and `get -`'s data.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets `--quiet`.
pub fn set_quiet(on: bool) {
    QUIET.store(on, Ordering::Relaxed);
}

/// True under `--quiet`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `--verbose`: what is started, and the library's log messages, on stderr.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// True under `--verbose`.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Sets `--verbose` and sends the library's log messages (debug and
/// above) to stderr.
pub fn set_verbose() {
    VERBOSE.store(true, Ordering::Relaxed);
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// The `--verbose` logger: one line per message on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Debug
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let text = r.args().to_string();
            let text = text.strip_prefix("rpmem: ").unwrap_or(&text);
            let _ = writeln!(
                io::stderr(),
                "rpmem: [{}] {text}",
                r.level().as_str().to_lowercase(),
            );
        }
    }

    fn flush(&self) {}
}
