//! rpmemd logging: one [`log::Log`] implementation with three destinations.
//!
//! Until the configuration is read, messages of level `err` go to stderr (ssh carries them to
//! the client), prefixed with `rpmemd: `. [`configure`] then switches to the configured
//! destination and level: the log file (opened for appending, created with mode 0640), or
//! syslog through the local socket (`/dev/log`, or [`SYSLOG_SOCKET_ENV`]).
//!
//! # Levels
//!
//! rpmemd has five levels, the `log` crate has five too but no "notice". The mapping:
//!
//! | rpmemd   | emit with                         | syslog priority |
//! |----------|-----------------------------------|-----------------|
//! | `err`    | `log::error!`                     | `LOG_ERR`       |
//! | `warn`   | `log::warn!`                      | `LOG_WARNING`   |
//! | `notice` | [`notice!`] (`log::info!` with target [`NOTICE_TARGET`]) | `LOG_NOTICE` |
//! | `info`   | `log::info!` (any other target)   | `LOG_INFO`      |
//! | `debug`  | `log::debug!` and `log::trace!`   | `LOG_DEBUG`     |
//!
//! The configured level is honoured for every destination, syslog included.
//!
//! # Hostile text
//!
//! Text a client controls (pool set names, descriptors, anything a peer sent) goes into a
//! message through [`escape`], which writes control characters, the Unicode characters that
//! move or hide text (line and paragraph separators, bidirectional controls) and backslashes
//! as escapes. As a second line of defence every message is passed through [`sanitize`] before
//! it reaches the log file or syslog, so that no message can hold a line end or a terminal
//! escape sequence, whatever its source: one record is one line.
//!
//! # Floods
//!
//! Messages that a peer can cause at will without a valid session (refused lane connections)
//! go through a [`RateLimit`]: the first few of each kind per interval are logged, the rest
//! are counted and summed up in one line, `N more <kind> suppressed in the last T s`, when the
//! interval is over or the data path stops. A legitimate session's data path never touches a
//! limit (and never reads the clock for one).

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use syslog::LogFormat;

use crate::config::{Config, LogLevel};

/// The `log` target that marks a record as rpmemd level `notice` (see [`notice!`]).
pub const NOTICE_TARGET: &str = "rpmemd::notice";
/// Environment variable naming the syslog socket to use instead of `/dev/log`
/// (a test and operations knob).
pub const SYSLOG_SOCKET_ENV: &str = "RPMEMD_SYSLOG_SOCKET";
/// The program name used as the syslog tag and in messages.
pub const IDENT: &str = "rpmemd";
/// Permissions a new log file is created with (further narrowed by the umask).
pub const LOG_FILE_MODE: u32 = 0o640;

/// Logs a message at rpmemd level `notice` (`log::info!` with target [`NOTICE_TARGET`]).
macro_rules! notice {
    ($($arg:tt)+) => {
        ::log::info!(target: $crate::logging::NOTICE_TARGET, $($arg)+)
    };
}
pub(crate) use notice;

/// Whether `c` must not reach a log as it is: a control character (C0, DEL, C1), or a Unicode
/// character that breaks a line or reorders or hides text (the project's one set:
/// [`rpmem_core::text::is_hostile`]).
pub fn is_hostile_char(c: char) -> bool {
    rpmem_core::text::is_hostile(c)
}

/// Client-controlled text for a log message (see [`escape`]).
pub type Escaped<'a> = rpmem_core::text::Escaped<'a>;

/// Wraps text a client controls for a log message with the project's one escaping scheme
/// ([`rpmem_core::text`]): `\n`, `\r`, `\t`, other ASCII control characters as `\xHH`, the
/// other characters of [`is_hostile_char`] as `\u{HHHH}`, and `\` as `\\`, so the message stays
/// one line, cannot drive a terminal, and reads back unambiguously. Printable text (non-ASCII
/// letters included) is kept.
pub fn escape(text: &str) -> Escaped<'_> {
    rpmem_core::text::Escaped(text.as_bytes())
}

/// A formatted message made safe for one log line: every [`is_hostile_char`] is escaped as
/// [`escape`] does; with `keep_newlines`, line ends and tabs stay (for rpmemd's own multi-line
/// errors on stderr before the configuration is read, which show a configuration file line). Backslashes are kept: text a client controls is
/// escaped at its source with [`escape`].
pub fn sanitize(message: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| is_hostile_char(c) && !(keep_newlines && matches!(c, '\n' | '\t'));
    if !message.chars().any(bad) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 16);
    for c in message.chars() {
        if bad(c) {
            let _ = rpmem_core::text::write_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A rate limit for one kind of message a peer can cause at will (refused connections): the
/// first `burst` occurrences of each `interval` are logged, the others counted; the count is
/// logged in one line, `N more <kind> suppressed in the last T s`, by the first occurrence after
/// the interval, by [`RateLimit::flush_expired`], or by [`RateLimit::flush`].
///
/// Only the refusal paths use it: the clock is read when an occurrence is counted, never on
/// the data path of a legitimate session.
#[derive(Debug)]
pub struct RateLimit {
    kind: &'static str,
    burst: u32,
    interval: Duration,
    /// Occurrences suppressed and not yet summed up (read without the lock).
    pending: AtomicU64,
    window: Mutex<Option<(Instant, u32)>>,
}

impl RateLimit {
    /// A limit for messages about `kind` (plural, e.g. `"lane connections refused"`).
    pub const fn new(kind: &'static str, burst: u32, interval: Duration) -> RateLimit {
        RateLimit {
            kind,
            burst,
            interval,
            pending: AtomicU64::new(0),
            window: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(Instant, u32)>> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one occurrence; true when it is to be logged.
    pub fn admit(&self) -> bool {
        let now = Instant::now();
        let mut window = self.lock();
        match &mut *window {
            Some((start, logged)) if now.saturating_duration_since(*start) < self.interval => {
                if *logged < self.burst {
                    *logged += 1;
                    true
                } else {
                    self.pending.fetch_add(1, Ordering::Relaxed);
                    false
                }
            }
            _ => {
                self.summarise(window.map(|(start, _)| start), now);
                *window = Some((now, 1));
                true
            }
        }
    }

    fn summarise(&self, start: Option<Instant>, now: Instant) {
        let n = self.pending.swap(0, Ordering::Relaxed);
        if n > 0 {
            let secs = start.map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
            log::warn!("{n} more {} suppressed in the last {secs:.1} s", self.kind);
        }
    }

    /// Logs the summary of the current interval if it is over and something was suppressed.
    /// Reads the clock only when something was.
    pub fn flush_expired(&self) {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = Instant::now();
        let mut window = self.lock();
        if let Some((start, _)) = *window {
            if now.saturating_duration_since(start) >= self.interval {
                self.summarise(Some(start), now);
                *window = None;
            }
        }
    }

    /// Logs the summary of whatever was suppressed, now (the data path stops).
    pub fn flush(&self) {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let window = self.lock();
        self.summarise(window.map(|(start, _)| start), Instant::now());
    }
}

/// The rpmemd level of a `log` record.
pub fn rpmemd_level(metadata: &log::Metadata<'_>) -> LogLevel {
    match metadata.level() {
        log::Level::Error => LogLevel::Err,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info if metadata.target() == NOTICE_TARGET => LogLevel::Notice,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug | log::Level::Trace => LogLevel::Debug,
    }
}

/// The `log` maximum level that lets every record of `level` (and more severe) through.
pub const fn max_level_filter(level: LogLevel) -> log::LevelFilter {
    match level {
        LogLevel::Err => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Notice | LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Trace,
    }
}

/// The syslog severity of a level (`LOG_ERR` = 3 ... `LOG_DEBUG` = 7).
pub const fn syslog_severity(level: LogLevel) -> syslog::Severity {
    match level {
        LogLevel::Err => syslog::Severity::LOG_ERR,
        LogLevel::Warn => syslog::Severity::LOG_WARNING,
        LogLevel::Notice => syslog::Severity::LOG_NOTICE,
        LogLevel::Info => syslog::Severity::LOG_INFO,
        LogLevel::Debug => syslog::Severity::LOG_DEBUG,
    }
}

/// Where log messages go once the configuration is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A log file, opened for appending.
    File(PathBuf),
    /// syslog through a local socket: the given path, or the system's default.
    Syslog(Option<PathBuf>),
}

impl Destination {
    /// The destination the configuration asks for; `syslog_socket` overrides `/dev/log`.
    pub fn from_config(config: &Config, syslog_socket: Option<PathBuf>) -> Destination {
        if config.use_syslog {
            Destination::Syslog(syslog_socket)
        } else {
            Destination::File(config.log_file.clone())
        }
    }
}

/// Failures setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// Another logger was installed first.
    #[error("cannot install the logger: {0}")]
    Install(#[from] log::SetLoggerError),
    /// The log file cannot be opened for appending.
    #[error("cannot open log file {}: {source}", path.display())]
    OpenFile {
        /// The configured log file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// The syslog sockets tried, in order, when [`SYSLOG_SOCKET_ENV`] is not set (those of the
/// `syslog` crate: Linux's, then the BSDs' and macOS's).
pub const SYSLOG_DEFAULT_SOCKETS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];

/// No syslog socket could be connected to: every path tried, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogUnreachable {
    /// The paths tried, in order, each with the reason it could not be used.
    pub tried: Vec<(PathBuf, String)>,
}

impl fmt::Display for SyslogUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot reach syslog")?;
        for (i, (path, why)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { " at" } else { "," };
            write!(f, "{sep} {} ({why})", path.display())?;
        }
        Ok(())
    }
}

/// The `io::Error` inside a `syslog` crate error, if there is one.
fn syslog_io_error(e: &syslog::Error) -> Option<&io::Error> {
    match e {
        syslog::Error::Io(io) | syslog::Error::Write(io) => Some(io),
        syslog::Error::Initialization(inner) => inner
            .downcast_ref::<syslog::Error>()
            .and_then(syslog_io_error)
            .or_else(|| inner.downcast_ref::<io::Error>()),
    }
}

/// What kind of file `meta` is, for "is a ..., not a socket".
fn file_kind_name(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a socket"
    }
}

/// Why connecting to the syslog socket `path` failed with `e`, in words: it does not exist,
/// it is not a socket, nobody listens on it (refused), permission, or the system's reason.
pub fn why_unreachable(path: &Path, e: &syslog::Error) -> String {
    use std::os::unix::fs::FileTypeExt;
    let io = syslog_io_error(e);
    match std::fs::metadata(path) {
        Err(m) if m.kind() == io::ErrorKind::NotFound => return "it does not exist".to_owned(),
        Ok(meta) if !meta.file_type().is_socket() => {
            return match file_kind_name(&meta) {
                "not a socket" => "it is not a socket".to_owned(),
                kind => format!("it is {kind}, not a socket"),
            };
        }
        _ => {}
    }
    match io {
        Some(io) if io.raw_os_error() == Some(libc::ECONNREFUSED) => {
            "connection refused: no syslog daemon is listening on it".to_owned()
        }
        Some(io) if io.kind() == io::ErrorKind::NotFound => "it does not exist".to_owned(),
        Some(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            format!("permission denied: {io}")
        }
        Some(io) => io.to_string(),
        None => e.to_string(),
    }
}

/// A connection to the syslog socket, reconnected once when a send fails.
struct SyslogSink {
    socket: Option<PathBuf>,
    logger: SyslogLogger,
}

impl SyslogSink {
    fn formatter() -> syslog::Formatter3164 {
        syslog::Formatter3164 {
            facility: syslog::Facility::LOG_USER,
            hostname: None,
            process: IDENT.to_owned(),
            pid: std::process::id(),
        }
    }

    /// Connects to `socket`, or to the first of [`SYSLOG_DEFAULT_SOCKETS`] that takes the
    /// connection. The error says, for every path tried, why it could not be used.
    fn connect(socket: Option<&Path>) -> Result<(SyslogLogger, PathBuf), SyslogUnreachable> {
        let candidates: Vec<&Path> = match socket {
            Some(path) => vec![path],
            None => SYSLOG_DEFAULT_SOCKETS.iter().map(Path::new).collect(),
        };
        let mut tried = Vec::with_capacity(candidates.len());
        for path in candidates {
            match syslog::unix_custom(Self::formatter(), path) {
                Ok(logger) => return Ok((logger, path.to_path_buf())),
                Err(e) => tried.push((path.to_path_buf(), why_unreachable(path, &e))),
            }
        }
        Err(SyslogUnreachable { tried })
    }

    fn send_once(&mut self, level: LogLevel, message: &str) -> syslog::Result<()> {
        let logger = &mut self.logger;
        logger
            .formatter
            .format(&mut logger.backend, syslog_severity(level), message)
    }

    fn send(&mut self, level: LogLevel, message: &str) {
        if self.send_once(level, message).is_ok() {
            return;
        }
        // The syslog daemon may have restarted: reconnect once and retry.
        if let Ok((logger, _)) = Self::connect(self.socket.as_deref()) {
            self.logger = logger;
            let _ = self.send_once(level, message);
        }
    }
}

enum Sink {
    Stderr,
    File(File),
    Syslog(Box<SyslogSink>),
}

struct State {
    level: LogLevel,
    sink: Sink,
    /// [`configure`] ran: from then on line ends are escaped on stderr too.
    configured: bool,
}

/// The process-wide logger.
struct RpmemdLogger {
    state: Mutex<State>,
}

static LOGGER: RpmemdLogger = RpmemdLogger {
    state: Mutex::new(State {
        level: LogLevel::Err,
        sink: Sink::Stderr,
        configured: false,
    }),
};

impl RpmemdLogger {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl log::Log for RpmemdLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        rpmemd_level(metadata) <= self.lock().level
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = rpmemd_level(record.metadata());
        let mut state = self.lock();
        if level > state.level {
            return;
        }
        let message = record.args().to_string();
        let keep_newlines = !state.configured;
        // A failure to log cannot itself be logged anywhere useful: it is dropped.
        match &mut state.sink {
            Sink::Stderr => {
                let message = sanitize(&message, keep_newlines);
                let _ = io::stderr()
                    .lock()
                    .write_all(stderr_line(level, &format_args!("{message}")).as_bytes());
            }
            Sink::File(file) => {
                let line = file_line(
                    SystemTime::now(),
                    std::process::id(),
                    level,
                    &format_args!("{message}"),
                );
                let _ = file.write_all(line.as_bytes());
            }
            Sink::Syslog(sink) => sink.send(level, &sanitize(&message, false)),
        }
    }

    fn flush(&self) {
        if let Sink::File(file) = &mut self.lock().sink {
            let _ = file.flush();
        }
    }
}

/// A message as written to stderr: `rpmemd: <message>`, with the level named unless `err`.
pub fn stderr_line(level: LogLevel, message: &fmt::Arguments<'_>) -> String {
    match level {
        LogLevel::Err => format!("{IDENT}: {message}\n"),
        other => format!("{IDENT}: {other}: {message}\n"),
    }
}

/// A message as written to the log file: `<UTC time> rpmemd[<pid>]: <level>: <message>`, on
/// one line ([`sanitize`]).
pub fn file_line(
    time: SystemTime,
    pid: u32,
    level: LogLevel,
    message: &fmt::Arguments<'_>,
) -> String {
    let message = message.to_string();
    format!(
        "{} {IDENT}[{pid}]: {level}: {}\n",
        format_utc(time),
        sanitize(&message, false)
    )
}

/// Formats a time as `YYYY-MM-DDThh:mm:ss.mmmZ` (UTC); times before 1970 show as the epoch.
pub fn format_utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Gregorian date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Installs the process-wide logger: stderr, level `err`. Call once, first thing in `main`.
pub fn install() -> Result<(), LoggingError> {
    log::set_logger(&LOGGER)?;
    log::set_max_level(max_level_filter(LogLevel::Err));
    Ok(())
}

/// Whether messages currently go to stderr (before [`configure`], or after a syslog fallback).
pub fn logs_to_stderr() -> bool {
    matches!(LOGGER.lock().sink, Sink::Stderr)
}

/// Opens the log file for appending, creating it with [`LOG_FILE_MODE`].
fn open_log_file(path: &Path) -> Result<File, LoggingError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(|source| LoggingError::OpenFile {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file)
}

/// Connects to syslog as a session would (`socket`, or the system's sockets) and returns the
/// socket that took the connection; nothing is sent. For `--check-config`.
pub fn check_syslog(socket: Option<&Path>) -> Result<PathBuf, SyslogUnreachable> {
    SyslogSink::connect(socket).map(|(_, path)| path)
}

/// Opens the log file as a session would (appending, created with [`LOG_FILE_MODE`]) and
/// returns its mode when it is looser than that. For `--check-config`.
pub fn check_log_file(path: &Path) -> Result<Option<u32>, LoggingError> {
    let file = open_log_file(path)?;
    let mode = file.metadata().map(|m| m.permissions().mode()).ok();
    Ok(mode.filter(|mode| mode & 0o027 != 0).map(|m| m & 0o7777))
}

/// Switches logging to `destination` at `level`.
///
/// A log file that cannot be opened is an error (logging stays on stderr). A syslog socket that
/// cannot be reached is not: a warning goes to stderr and logging stays there, at `level`.
pub fn configure(level: LogLevel, destination: &Destination) -> Result<(), LoggingError> {
    let (sink, loose_mode) = match destination {
        Destination::File(path) => {
            let file = open_log_file(path)?;
            let mode = file.metadata().map(|m| m.permissions().mode()).ok();
            (Sink::File(file), mode.filter(|mode| mode & 0o027 != 0))
        }
        Destination::Syslog(socket) => match SyslogSink::connect(socket.as_deref()) {
            Ok((logger, _)) => (
                Sink::Syslog(Box::new(SyslogSink {
                    socket: socket.clone(),
                    logger,
                })),
                None,
            ),
            Err(e) => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "{IDENT}: warning: {e}; logging to stderr"
                );
                (Sink::Stderr, None)
            }
        },
    };
    {
        let mut state = LOGGER.lock();
        state.level = level;
        state.sink = sink;
        state.configured = true;
    }
    log::set_max_level(max_level_filter(level));
    if let (Some(mode), Destination::File(path)) = (loose_mode, destination) {
        log::warn!(
            "log file {} has mode {:04o}, looser than {LOG_FILE_MODE:04o}",
            path.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::time::Duration;

    fn metadata(level: log::Level, target: &str) -> log::Metadata<'_> {
        log::Metadata::builder().level(level).target(target).build()
    }

    #[rstest]
    #[case(log::Level::Error, "rpmemd", LogLevel::Err)]
    #[case(log::Level::Warn, "rpmemd::pool", LogLevel::Warn)]
    #[case(log::Level::Info, NOTICE_TARGET, LogLevel::Notice)]
    #[case(log::Level::Info, "rpmemd", LogLevel::Info)]
    #[case(log::Level::Debug, "rpmemd", LogLevel::Debug)]
    #[case(log::Level::Trace, NOTICE_TARGET, LogLevel::Debug)]
    fn level_mapping(#[case] level: log::Level, #[case] target: &str, #[case] expected: LogLevel) {
        assert_eq!(rpmemd_level(&metadata(level, target)), expected);
    }

    #[test]
    fn max_level_lets_the_configured_level_through() {
        for configured in LogLevel::ALL {
            for (level, target) in [
                (log::Level::Error, "x"),
                (log::Level::Warn, "x"),
                (log::Level::Info, NOTICE_TARGET),
                (log::Level::Info, "x"),
                (log::Level::Debug, "x"),
            ] {
                let md = metadata(level, target);
                if rpmemd_level(&md) <= configured {
                    assert!(
                        level <= max_level_filter(configured),
                        "{configured} {level}"
                    );
                }
            }
        }
    }

    #[test]
    fn severities() {
        let all: Vec<u8> = LogLevel::ALL
            .into_iter()
            .map(|l| syslog_severity(l) as u8)
            .collect();
        assert_eq!(all, [3, 4, 5, 6, 7]);
    }

    #[rstest]
    #[case(0, "1970-01-01T00:00:00.000Z")]
    #[case(951_782_400, "2000-02-29T00:00:00.000Z")]
    #[case(951_868_799, "2000-02-29T23:59:59.000Z")]
    #[case(951_868_800, "2000-03-01T00:00:00.000Z")]
    #[case(1_709_251_199, "2024-02-29T23:59:59.000Z")]
    #[case(4_102_444_800, "2100-01-01T00:00:00.000Z")]
    #[case(1_234_567_890, "2009-02-13T23:31:30.000Z")]
    fn utc_format(#[case] secs: u64, #[case] expected: &str) {
        let time = UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(format_utc(time), expected);
    }

    #[test]
    fn utc_format_millis_and_before_epoch() {
        let time = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(format_utc(time), "1970-01-01T00:00:01.500Z");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_utc(before), "1970-01-01T00:00:00.000Z");
    }

    #[rstest]
    #[case("plain name.set", "plain name.set")]
    #[case("a\nb", "a\\nb")]
    #[case("cr\r tab\t nul\0", "cr\\r tab\\t nul\\x00")]
    #[case("\u{1b}[31mred", "\\x1b[31mred")]
    #[case("del\u{7f} c1\u{85}", "del\\x7f c1\\u{0085}")]
    #[case("bidi\u{202e}txt \u{2028}", "bidi\\u{202e}txt \\u{2028}")]
    #[case("back\\slash", "back\\\\slash")]
    #[case("żółw ünïcödé 日本", "żółw ünïcödé 日本")]
    fn escape_makes_one_safe_line(#[case] input: &str, #[case] expected: &str) {
        let out = escape(input).to_string();
        assert_eq!(out, expected);
        assert!(!out.chars().any(is_hostile_char));
    }

    #[test]
    fn sanitize_escapes_what_escape_missed() {
        assert_eq!(sanitize("x\ny\u{1b}", false), "x\\ny\\x1b");
        assert_eq!(sanitize("x\ny\t\u{1b}", true), "x\ny\t\\x1b");
        assert!(matches!(sanitize("a \\ b", false), Cow::Borrowed("a \\ b")));
        assert_eq!(
            file_line(UNIX_EPOCH, 1, LogLevel::Err, &format_args!("a\nb")),
            "1970-01-01T00:00:00.000Z rpmemd[1]: err: a\\nb\n"
        );
    }

    #[test]
    fn rate_limit_logs_a_burst_then_counts() {
        let limit = RateLimit::new("things", 3, Duration::from_secs(3600));
        let admitted = (0..10).filter(|_| limit.admit()).count();
        assert_eq!(admitted, 3);
        assert_eq!(limit.pending.load(Ordering::Relaxed), 7);
        // Not expired yet: nothing summed up.
        limit.flush_expired();
        assert_eq!(limit.pending.load(Ordering::Relaxed), 7);
        limit.flush();
        assert_eq!(limit.pending.load(Ordering::Relaxed), 0);
        let short = RateLimit::new("things", 1, Duration::ZERO);
        // A zero interval: every occurrence starts a new interval and is logged.
        assert!((0..5).all(|_| short.admit()));
    }

    #[test]
    fn line_formats() {
        assert_eq!(
            stderr_line(LogLevel::Err, &format_args!("x {}", 1)),
            "rpmemd: x 1\n"
        );
        assert_eq!(
            stderr_line(LogLevel::Notice, &format_args!("y")),
            "rpmemd: notice: y\n"
        );
        assert_eq!(
            file_line(UNIX_EPOCH, 42, LogLevel::Warn, &format_args!("z")),
            "1970-01-01T00:00:00.000Z rpmemd[42]: warn: z\n"
        );
    }
}
