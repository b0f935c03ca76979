//! Standard output that reports its failures: every write of the tool's
//! results goes through `say!` (or [`check`] for raw bytes), and a write
//! that failed (`/dev/full`, a closed pipe) makes the subcommand fail with
//! exit status 3 and a message on stderr instead of exiting 0.

use std::io::{self, Write};
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
