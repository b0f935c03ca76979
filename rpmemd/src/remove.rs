//! `rpmemd --remove <poolset> [--force] [--pool-set]`: removes a pool
//! instead of serving a session.
//!
//! As PMDK's rpmemd, nothing is written to stdout in this mode (the captured
//! PMDK sessions show no byte, and PMDK's librpmem takes any byte there for a
//! protocol error): the result is the exit status, 0 when everything that was
//! to be removed is gone, otherwise the errno of the first failure (PMDK's
//! rule: librpmem makes it `rpmem_remove`'s errno). What was and was not
//! removed is logged; when something was not removed it is also written to
//! stderr, file by file, so that the client can show it.

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

/// The exit status of a failed removal: the errno behind `e` (the system
/// call's, or the one librpmem gives its rpmemd status), as PMDK's rpmemd;
/// `EBUSY` for a part in use (its `flock` says `EWOULDBLOCK`).
fn failed(e: &PoolError) -> exit::Status {
    if e.rpmem_status() == rpmem_core::wire::oob::Status::Busy {
        return exit::Status::RemoveFailed(libc::EBUSY as u8);
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut errno = None;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            errno = io.raw_os_error();
            break;
        }
        cause = c.source();
    }
    let errno = errno.unwrap_or_else(|| i32::try_from(e.rpmem_status().errno()).unwrap_or(1));
    exit::Status::RemoveFailed(u8::try_from(errno).ok().filter(|&n| n > 0).unwrap_or(1))
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
            return failed(&e);
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
        let first = report
            .left
            .first()
            .map(|(_, e)| e)
            .or(match &report.poolset_file {
                pool::PoolsetFileFate::Left(e) => Some(e),
                _ => None,
            });
        return first.map_or(exit::Status::Failure, failed);
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
