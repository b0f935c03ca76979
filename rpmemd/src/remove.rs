//! `rpmemd --remove <poolset> [--force] [--pool-set]`: removes a pool
//! instead of serving a session.
//!
//! As PMDK's rpmemd, nothing is written to stdout in this mode (the captured
//! PMDK sessions show no byte): the result is the exit status, 0 when the
//! pool was removed, 1 otherwise, with the reason on stderr and in the log.

use std::io::Write;

use crate::cli::RemoveRequest;
use crate::config::Config;
use crate::exit;
use crate::logging::notice;
use crate::pool::{self, PoolError, PoolOptions, PoolsetDir, RemoveOptions};

/// Removes the pool set `request.poolset` of `poolset_dir` with the pool
/// module's [`pool::remove_with`].
pub fn remove(
    poolset_dir: &std::path::Path,
    request: &RemoveRequest,
    options: &PoolOptions,
) -> Result<(), PoolError> {
    let dir = PoolsetDir::open(poolset_dir)?;
    pool::remove_with(
        &dir,
        &request.poolset,
        RemoveOptions {
            force: request.force,
            remove_poolset_file: request.pool_set,
        },
        options,
    )
}

/// Runs `--remove` for this process: logs, removes, and gives the exit
/// status.
pub fn run(config: &Config, request: &RemoveRequest) -> exit::Status {
    log::info!(
        "removing '{}'{}{}",
        request.poolset,
        if request.force { " (force)" } else { "" },
        if request.pool_set {
            " with its pool set file"
        } else {
            ""
        }
    );
    match remove(&config.poolset_dir, request, &PoolOptions::from_env()) {
        Ok(()) => {
            if request.force {
                // With --force, missing parts and sets are not errors, so
                // "removed" may mean "nothing was there".
                notice!("removed '{}' (--force: errors ignored)", request.poolset);
            } else {
                notice!("removed '{}'", request.poolset);
            }
            exit::Status::Success
        }
        Err(e) => {
            let message = format!("removing '{}' failed: {e}", request.poolset);
            log::error!("{message}");
            if !crate::logging::logs_to_stderr() {
                let _ = writeln!(std::io::stderr(), "{}: {message}", crate::logging::IDENT);
            }
            exit::Status::Failure
        }
    }
}
