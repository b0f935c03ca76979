//! `rpmemd --check-config`: loads the configuration exactly as a session does and then checks
//! what a session would use, like `sshd -t`: the log file (opened for appending, created when
//! missing, as a session opens it) or the syslog socket, and the pool set directory (exists,
//! is a readable directory, opens as a session opens it).
//!
//! The report goes to stdout (this mode serves no session, so stdout is free); every failed
//! check is also written to stderr, naming the value and where it was set (`file:line`, a
//! command-line option or the default). The exit status is that of the first failed check: 3
//! for the pool set directory (a configuration problem), 4 for the log destination (logging
//! cannot be set up), 0 when every check passed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::config::{Config, Loaded, Origin};
use crate::exit::Status;
use crate::logging::{self, LOG_FILE_MODE};
use crate::pool::PoolsetDir;

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed; the text says what was found.
    Ok(String),
    /// Passed, but something deserves attention.
    Warning(String),
    /// Not run, and why.
    Skipped(String),
    /// Failed: what is wrong, and the exit status it gives.
    Failed(String, Status),
}

/// What `--check-config` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The text printed on stdout.
    pub text: String,
    /// The failed checks, in order, as written to stderr (without the `rpmemd: ` prefix).
    pub failures: Vec<String>,
    /// The exit status: the first failure's, or success.
    pub status: Status,
}

fn yes_no(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The kind of a file that is not what was expected, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file or directory"
    }
}

/// Checks the log destination a session would set up.
pub fn check_logging(config: &Config, origin: &Origin, syslog_socket: Option<&Path>) -> Outcome {
    if config.use_syslog {
        return match logging::check_syslog(syslog_socket) {
            Ok(socket) => Outcome::Ok(format!("syslog is reachable at {}", socket.display())),
            Err(e) => Outcome::Failed(
                format!(
                    "use-syslog = yes (set by {origin}), but {e}; a session would log to stderr, \
                     which goes back to the client, not to this host's log"
                ),
                Status::Logging,
            ),
        };
    }
    let path = &config.log_file;
    let existed = std::fs::symlink_metadata(path).is_ok();
    match logging::check_log_file(path) {
        Ok(loose) => {
            let how = if existed { "it exists" } else { "created it" };
            match loose {
                Some(mode) => Outcome::Warning(format!(
                    "log file {} opens for appending ({how}), but its mode {mode:04o} is looser \
                     than {LOG_FILE_MODE:04o}",
                    path.display()
                )),
                None => Outcome::Ok(format!(
                    "log file {} opens for appending ({how})",
                    path.display()
                )),
            }
        }
        Err(e) => Outcome::Failed(
            format!("log-file {} (set by {origin}): {e}", path.display()),
            Status::Logging,
        ),
    }
}

/// Checks the pool set directory: it exists, is a directory, can be listed, and opens as a
/// session opens it.
pub fn check_poolset_dir(config: &Config, origin: &Origin) -> Outcome {
    let path = &config.poolset_dir;
    let failed = |what: String| {
        Outcome::Failed(
            format!("poolset-dir {} (set by {origin}) {what}", path.display()),
            Status::Config,
        )
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return failed("does not exist".to_owned())
        }
        Err(e) => return failed(format!("cannot be examined: {e}")),
        Ok(meta) if !meta.is_dir() => {
            return failed(format!("is not a directory (it is {})", kind_of(&meta)))
        }
        Ok(_) => {}
    }
    if let Err(e) = std::fs::read_dir(path) {
        return failed(format!("is a directory that cannot be read: {e}"));
    }
    if let Err(e) = PoolsetDir::open(path) {
        return failed(format!("cannot be opened as a session opens it: {e}"));
    }
    Outcome::Ok(format!(
        "pool set directory {} exists and is a readable directory",
        path.display()
    ))
}

/// Runs every check and builds the report.
pub fn check(loaded: &Loaded, syslog_socket: Option<&Path>) -> Report {
    let config = &loaded.config;
    let origins = &loaded.origins;
    let mut text =
        String::from("rpmemd: checking the configuration as a session loads and uses it\n");
    text.push_str("configuration files:\n");
    for file in &loaded.files {
        let state = if file.read {
            "read"
        } else {
            "not found, skipped"
        };
        let _ = writeln!(text, "  {}: {state}", file.path.display());
    }
    text.push_str("effective configuration:\n");
    let values = [
        (
            "log-file",
            config.log_file.display().to_string(),
            &origins.log_file,
        ),
        (
            "poolset-dir",
            config.poolset_dir.display().to_string(),
            &origins.poolset_dir,
        ),
        (
            "persist-apm",
            yes_no(config.persist_apm).to_owned(),
            &origins.persist_apm,
        ),
        (
            "persist-general",
            yes_no(config.persist_general).to_owned(),
            &origins.persist_general,
        ),
        (
            "use-syslog",
            yes_no(config.use_syslog).to_owned(),
            &origins.use_syslog,
        ),
        (
            "log-level",
            config.log_level.to_string(),
            &origins.log_level,
        ),
        ("nthreads", config.nthreads.to_string(), &origins.nthreads),
    ];
    for (key, value, origin) in values {
        let _ = writeln!(text, "  {key} = {value}   ({origin})");
    }

    let log_origin = if config.use_syslog {
        &origins.use_syslog
    } else {
        &origins.log_file
    };
    let mut outcomes = vec![check_logging(config, log_origin, syslog_socket)];
    if config.use_syslog {
        outcomes.push(Outcome::Skipped(format!(
            "log file {}: not used (use-syslog = yes)",
            config.log_file.display()
        )));
    }
    outcomes.push(check_poolset_dir(config, &origins.poolset_dir));
    if !config.persist_apm && !config.persist_general {
        outcomes.push(Outcome::Warning(
            "persist-apm and persist-general are both no: every CREATE and OPEN will be refused \
             (RPMEM_ERR_POOL_CFG)"
                .to_owned(),
        ));
    }

    text.push_str("checks:\n");
    let mut failures = Vec::new();
    let mut status = Status::Success;
    for outcome in outcomes {
        match outcome {
            Outcome::Ok(what) => {
                let _ = writeln!(text, "  ok: {what}");
            }
            Outcome::Warning(what) => {
                let _ = writeln!(text, "  warning: {what}");
            }
            Outcome::Skipped(what) => {
                let _ = writeln!(text, "  skipped: {what}");
            }
            Outcome::Failed(what, failure_status) => {
                let _ = writeln!(text, "  FAILED: {what}");
                if status == Status::Success {
                    status = failure_status;
                }
                failures.push(what);
            }
        }
    }
    if failures.is_empty() {
        text.push_str("configuration OK\n");
    } else {
        let _ = writeln!(
            text,
            "configuration NOT OK: {} check(s) failed (exit status {})",
            failures.len(),
            status.code()
        );
    }
    Report {
        text,
        failures,
        status,
    }
}

/// `--check-config` for this process: checks, prints the report on stdout and the failures on
/// stderr, and gives the exit status.
pub fn run(loaded: &Loaded, syslog_socket: Option<&Path>) -> Status {
    let report = check(loaded, syslog_socket);
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(report.text.as_bytes())
        .and_then(|()| stdout.flush());
    let mut stderr = std::io::stderr().lock();
    for failure in &report.failures {
        let _ = writeln!(stderr, "{}: {failure}", logging::IDENT);
    }
    match written {
        Ok(()) => report.status,
        Err(e) => {
            let _ = writeln!(stderr, "{}: cannot write to stdout: {e}", logging::IDENT);
            if report.status == Status::Success {
                Status::Failure
            } else {
                report.status
            }
        }
    }
}
