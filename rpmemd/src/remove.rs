//! `rpmemd --remove <poolset> [--force] [--pool-set]`: removes a pool
//! instead of serving a session.
//!
//! As PMDK's rpmemd, nothing is written to stdout in this mode (the captured
//! PMDK sessions show no byte, and PMDK's librpmem takes any byte there for a
//! protocol error): the result is the exit status, 0 when everything that was
//! to be removed is gone, 1 otherwise. What was and was not removed is logged;
//! when something was not removed it is also written to stderr, file by file,
//! so that the client can show it.

use std::io::Write;

use crate::cli::RemoveRequest;
use crate::config::Config;
use crate::exit;
use crate::logging::notice;
use crate::pool::{self, PoolError, PoolOptions, PoolsetDir, RemoveOptions, RemoveReport};

/// Removes the pool set `request.poolset` of `poolset_dir` with the pool
/// module's [`pool::remove_report`].
pub fn remove(
    poolset_dir: &std::path::Path,
    request: &RemoveRequest,
    options: &PoolOptions,
) -> Result<RemoveReport, PoolError> {
    let dir = PoolsetDir::open(poolset_dir)?;
    pool::remove_report(
        &dir,
        &request.poolset,
        RemoveOptions {
            force: request.force,
            remove_poolset_file: request.pool_set,
        },
        options,
    )
}

/// Writes `line` to stderr unless the log already goes there.
fn tell_client(line: &str) {
    if !crate::logging::logs_to_stderr() {
        let _ = writeln!(std::io::stderr(), "{}: {line}", crate::logging::IDENT);
    }
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
    let report = match remove(&config.poolset_dir, request, &PoolOptions::from_env()) {
        Ok(report) => report,
        Err(e) => {
            let message = format!(
                "removing '{}' failed: {e}; nothing was removed",
                request.poolset
            );
            log::error!("{message}");
            tell_client(&message);
            return exit::Status::Failure;
        }
    };
    let set_path = config.poolset_dir.join(&request.poolset);
    let summary = report.summary();
    let details = report.details(&set_path);
    if report.left_something() {
        let message = format!(
            "removing '{}' left files behind{}: {summary}",
            request.poolset,
            if request.force {
                " (--force removes what it can)"
            } else {
                ""
            }
        );
        log::error!("{message}");
        tell_client(&message);
        for line in &details {
            log::error!("    {line}");
            tell_client(line);
        }
        return exit::Status::Failure;
    }
    notice!("removed '{}': {summary}", request.poolset);
    for line in &details {
        log::info!("    {line}");
    }
    if report.unreadable.is_some() {
        // Nothing known was left, but the client should know that the parts were not found.
        for line in details.iter().filter(|l| l.starts_with("unknown parts:")) {
            log::warn!("{line}");
            tell_client(&format!("warning: {line}"));
        }
    }
    exit::Status::Success
}
