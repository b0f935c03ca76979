//! rpmemd configuration: defaults, configuration files and command-line overrides.
//!
//! The effective configuration is built in layers, each one overriding the previous:
//!
//! 1. the defaults of the manual (`log-file = /var/log/rpmemd.log`, `poolset-dir = $HOME`,
//!    `persist-apm = no`, `persist-general = yes`, `use-syslog = yes`, `log-level = err`);
//! 2. the global file `/etc/rpmemd/rpmemd.conf` (path overridable with `RPMEMD_GLOBAL_CONFIG`);
//! 3. the user file `$HOME/.rpmemd.conf`;
//! 4. the command-line options.
//!
//! `-c <path>` replaces layers 2 and 3 with one file, which must exist. Missing optional files
//! are skipped. Every line of every file read must be valid (see [`parse_line`]), otherwise the
//! whole configuration is refused with an error naming `file:line` and showing the line.
//!
//! After all layers, `$HOME` in `poolset-dir` and in `log-file` is replaced with the home
//! directory (see [`substitute_home`]) and each result must be an absolute path. Where every
//! value came from (a file and line, a command-line option, the default) is kept in
//! [`Origins`], so that errors and `--check-config` can name it.
//!
//! Like PMDK, setting `log-file` also switches `use-syslog` to `no` at that point; a later
//! `use-syslog` line (or the `--use-syslog` flag, wherever it stands) switches it back on.

use std::ffi::{CStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Location of the global configuration file.
pub const GLOBAL_CONFIG_FILE: &str = "/etc/rpmemd/rpmemd.conf";
/// Environment variable overriding [`GLOBAL_CONFIG_FILE`] (a test and operations knob).
pub const GLOBAL_CONFIG_ENV: &str = "RPMEMD_GLOBAL_CONFIG";
/// Name of the user configuration file inside the home directory.
pub const USER_CONFIG_FILE_NAME: &str = ".rpmemd.conf";
/// Default `log-file`.
pub const DEFAULT_LOG_FILE: &str = "/var/log/rpmemd.log";
/// Placeholder in `poolset-dir` replaced with the home directory.
pub const HOME_PLACEHOLDER: &str = "$HOME";
/// Default `nthreads`: 0 lets the transport choose (PMDK: one thread per online CPU, at most one
/// per lane).
pub const DEFAULT_NTHREADS: usize = 0;

/// The five rpmemd log levels, from the most to the least severe.
///
/// The order is meaningful: a configured level lets through every message whose level is
/// less than or equal to it (`Err < Warn < Notice < Info < Debug`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `err`: error conditions.
    Err,
    /// `warn`: warning conditions.
    Warn,
    /// `notice`: normal, but significant, conditions.
    Notice,
    /// `info`: informational messages.
    Info,
    /// `debug`: debug-level messages.
    Debug,
}

impl LogLevel {
    /// Every level, most severe first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Err,
        LogLevel::Warn,
        LogLevel::Notice,
        LogLevel::Info,
        LogLevel::Debug,
    ];

    /// The configuration-file spelling of the level (`err`, `warn`, `notice`, `info`, `debug`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Err => "err",
            LogLevel::Warn => "warn",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log level name that is not one of `err warn notice info debug`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (expected one of: err, warn, notice, info, debug)")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    fn from_str(s: &str) -> Result<Self, UnknownLogLevel> {
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| UnknownLogLevel(s.to_owned()))
    }
}

/// A configuration key, as written in configuration files and as a long command-line flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `log-file`: log file location.
    LogFile,
    /// `poolset-dir`: pool set files directory.
    PoolsetDir,
    /// `persist-apm`: enable the Appliance Persistency Method.
    PersistApm,
    /// `persist-general`: enable the General Purpose Server Persistency Method.
    PersistGeneral,
    /// `use-syslog`: log through syslog instead of the log file.
    UseSyslog,
    /// `log-level`: the least severe level logged.
    LogLevel,
    /// `tcp-plaintext`: TCP lanes in the clear (after a handshake that
    /// still proves the session secret), for clients that chose it too.
    TcpPlaintext,
}

impl Key {
    /// Every key accepted in a configuration file.
    pub const ALL: [Key; 7] = [
        Key::LogFile,
        Key::PoolsetDir,
        Key::PersistApm,
        Key::PersistGeneral,
        Key::UseSyslog,
        Key::LogLevel,
        Key::TcpPlaintext,
    ];

    /// The key's name (`log-file`, `poolset-dir`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Key::LogFile => "log-file",
            Key::PoolsetDir => "poolset-dir",
            Key::PersistApm => "persist-apm",
            Key::PersistGeneral => "persist-general",
            Key::UseSyslog => "use-syslog",
            Key::LogLevel => "log-level",
            Key::TcpPlaintext => "tcp-plaintext",
        }
    }

    /// Looks a key up by its exact, case-sensitive name.
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One configuration assignment, from a file line or a command-line option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `log-file = <path>`.
    LogFile(String),
    /// `poolset-dir = <path>` (before `$HOME` substitution).
    PoolsetDir(String),
    /// `persist-apm = yes|no`.
    PersistApm(bool),
    /// `persist-general = yes|no`.
    PersistGeneral(bool),
    /// `use-syslog = yes|no`.
    UseSyslog(bool),
    /// `log-level = err|warn|notice|info|debug`.
    LogLevel(LogLevel),
    /// `tcp-plaintext = yes|no`.
    TcpPlaintext(bool),
}

/// Why a value is not acceptable for its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Paths must not be empty.
    #[error("the value is empty")]
    Empty,
    /// Paths cannot contain NUL bytes.
    #[error("the value contains a NUL byte")]
    Nul,
    /// Booleans are spelled `yes` or `no`.
    #[error("{0:?} is not a boolean (expected yes or no)")]
    NotBool(String),
    /// The log level is not one of the five names.
    #[error(transparent)]
    LogLevel(#[from] UnknownLogLevel),
}

/// Checks a path value: not empty, no NUL byte.
pub fn parse_path_value(value: &str) -> Result<String, ValueError> {
    if value.is_empty() {
        Err(ValueError::Empty)
    } else if value.contains('\0') {
        Err(ValueError::Nul)
    } else {
        Ok(value.to_owned())
    }
}

/// Parses a boolean value: exactly `yes` or `no`.
pub fn parse_bool_value(value: &str) -> Result<bool, ValueError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(ValueError::NotBool(other.to_owned())),
    }
}

/// Parses a log level value: exactly one of `err warn notice info debug`.
pub fn parse_log_level_value(value: &str) -> Result<LogLevel, ValueError> {
    Ok(value.parse::<LogLevel>()?)
}

impl Setting {
    /// Parses `value` (already trimmed) as the value of `key`.
    pub fn parse(key: Key, value: &str) -> Result<Setting, ValueError> {
        Ok(match key {
            Key::LogFile => Setting::LogFile(parse_path_value(value)?),
            Key::PoolsetDir => Setting::PoolsetDir(parse_path_value(value)?),
            Key::PersistApm => Setting::PersistApm(parse_bool_value(value)?),
            Key::PersistGeneral => Setting::PersistGeneral(parse_bool_value(value)?),
            Key::UseSyslog => Setting::UseSyslog(parse_bool_value(value)?),
            Key::LogLevel => Setting::LogLevel(parse_log_level_value(value)?),
            Key::TcpPlaintext => Setting::TcpPlaintext(parse_bool_value(value)?),
        })
    }
}

/// Why one configuration file line is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The part before `#` is not valid UTF-8.
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    /// Content without a `key = value` shape.
    #[error("expected 'key = value'")]
    MissingEquals,
    /// Nothing but blanks before `=`.
    #[error("the key before '=' is empty")]
    EmptyKey,
    /// A key that is not one of the seven configuration keys.
    #[error(
        "unknown key {0:?} (known keys: log-file, poolset-dir, persist-apm, persist-general, \
         use-syslog, log-level, tcp-plaintext)"
    )]
    UnknownKey(String),
    /// Nothing but blanks (or a comment) after `=`.
    #[error("the value of {0} is empty")]
    EmptyValue(Key),
    /// The value does not suit the key.
    #[error("invalid value for {key}: {source}")]
    InvalidValue {
        /// The key whose value is wrong.
        key: Key,
        /// What is wrong with it.
        source: ValueError,
    },
}

/// Blanks trimmed around keys and values: the C locale `isspace` set, so `\r` of CRLF files too.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn trim_blanks(s: &str) -> &str {
    s.trim_matches(is_blank)
}

/// Parses one configuration file line (without or with its `\n`).
///
/// Grammar: `#` starts a comment anywhere on the line; a line with nothing but blanks before
/// the comment is ignored (`Ok(None)`); anything else must be `key = value` where the key and
/// the value are trimmed of blanks (space, tab, `\r`, `\n`, `\v`, `\f`), split at the first `=`,
/// the key is one of [`Key::ALL`] (case-sensitive) and the value suits the key.
pub fn parse_line(line: &[u8]) -> Result<Option<Setting>, LineError> {
    let content = match line.iter().position(|&b| b == b'#') {
        Some(comment) => line.split_at(comment).0,
        None => line,
    };
    let content = std::str::from_utf8(content).map_err(|_| LineError::NotUtf8)?;
    if trim_blanks(content).is_empty() {
        return Ok(None);
    }
    let (key, value) = content.split_once('=').ok_or(LineError::MissingEquals)?;
    let key = trim_blanks(key);
    let value = trim_blanks(value);
    if key.is_empty() {
        return Err(LineError::EmptyKey);
    }
    let key = Key::from_name(key).ok_or_else(|| LineError::UnknownKey(key.to_owned()))?;
    if value.is_empty() {
        return Err(LineError::EmptyValue(key));
    }
    Setting::parse(key, value)
        .map(Some)
        .map_err(|source| LineError::InvalidValue { key, source })
}

/// An invalid line of a configuration file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid config file line at {}:{line}: {reason}\n{text}", file.display())]
pub struct FileLineError {
    /// The file as it was named (command line, default location or home directory).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The line as written, without its line ending.
    pub text: String,
    /// What is wrong with it.
    pub reason: LineError,
}

/// Parses the whole text of a configuration file named `file` into its settings, in order.
pub fn parse_text(file: &Path, text: &[u8]) -> Result<Vec<Setting>, FileLineError> {
    Ok(parse_text_lines(file, text)?
        .into_iter()
        .map(|(_, setting)| setting)
        .collect())
}

/// [`parse_text`], each setting with its 1-based line number.
pub fn parse_text_lines(file: &Path, text: &[u8]) -> Result<Vec<(usize, Setting)>, FileLineError> {
    let mut settings = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        match parse_line(line) {
            Ok(Some(setting)) => settings.push((index.saturating_add(1), setting)),
            Ok(None) => {}
            Err(reason) => {
                let shown = line.strip_suffix(b"\r").unwrap_or(line);
                return Err(FileLineError {
                    file: file.to_path_buf(),
                    line: index.saturating_add(1),
                    text: String::from_utf8_lossy(shown).into_owned(),
                    reason,
                });
            }
        }
    }
    Ok(settings)
}

/// Replaces `$HOME` in `value` with `home`.
///
/// Every occurrence of `$HOME` that is not followed by an ASCII letter or digit is replaced;
/// `$HOMEsuffix` or `$HOME2` stay as written.
pub fn substitute_home(value: &str, home: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find(HOME_PLACEHOLDER) {
        let (before, from_placeholder) = rest.split_at(pos);
        let after = from_placeholder
            .strip_prefix(HOME_PLACEHOLDER)
            .unwrap_or(from_placeholder);
        out.push_str(before);
        if after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            out.push_str(HOME_PLACEHOLDER);
        } else {
            out.push_str(home);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Anything that stops rpmemd from building its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `-c` file, or an existing optional file, cannot be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file as named.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A configuration file line is invalid.
    #[error(transparent)]
    Line(#[from] FileLineError),
    /// `poolset-dir` is not absolute once `$HOME` is replaced.
    #[error(
        "poolset-dir {value:?} (set by {origin}) is not an absolute path (written as {raw:?}; \
         $HOME is {home:?})"
    )]
    PoolsetDirNotAbsolute {
        /// The value after `$HOME` substitution.
        value: String,
        /// The value as configured.
        raw: String,
        /// The home directory used for `$HOME`.
        home: String,
        /// Where the value was set.
        origin: Origin,
    },
    /// `log-file` is not absolute once `$HOME` is replaced.
    #[error(
        "log-file {value:?} (set by {origin}) is not an absolute path (written as {raw:?}; \
         $HOME is {home:?}); a relative log file would be opened in whatever directory rpmemd \
         starts in"
    )]
    LogFileNotAbsolute {
        /// The value after `$HOME` substitution.
        value: String,
        /// The value as configured.
        raw: String,
        /// The home directory used for `$HOME`.
        home: String,
        /// Where the value was set.
        origin: Origin,
    },
    /// `HOME` is not set and the password database has no usable entry.
    #[error("cannot determine the home directory: HOME is not set and {0}")]
    NoHome(String),
    /// `HOME` (or the password entry) is not valid UTF-8.
    #[error("the home directory {0:?} is not valid UTF-8")]
    HomeNotUtf8(OsString),
}

/// What rpmemd takes from its process environment to find its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    /// The home directory: `$HOME`, or the password entry of the real user ID when unset.
    pub home: String,
    /// The global configuration file ([`GLOBAL_CONFIG_FILE`] unless [`GLOBAL_CONFIG_ENV`] is set).
    pub global_config: PathBuf,
}

impl Environment {
    /// Reads `HOME` (falling back to the password database) and `RPMEMD_GLOBAL_CONFIG`.
    pub fn from_process() -> Result<Environment, ConfigError> {
        let home = match std::env::var_os("HOME") {
            Some(home) => home,
            None => passwd_home().map_err(|e| ConfigError::NoHome(e.to_string()))?,
        };
        let home = home.into_string().map_err(ConfigError::HomeNotUtf8)?;
        let global_config = std::env::var_os(GLOBAL_CONFIG_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(GLOBAL_CONFIG_FILE));
        Ok(Environment {
            home,
            global_config,
        })
    }

    /// `$HOME/.rpmemd.conf`.
    pub fn user_config(&self) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.home, USER_CONFIG_FILE_NAME))
    }
}

/// The home directory of the real user ID from the password database.
#[allow(unsafe_code)]
fn passwd_home() -> io::Result<OsString> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut buf: Vec<u8> = vec![0; 1024];
    loop {
        let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` is writable storage for one
        // passwd, `buf` is writable for `buf.len()` bytes, `result` is a writable pointer.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                entry.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len().saturating_mul(2), 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("there is no password entry for user ID {uid}"),
            ));
        }
        // SAFETY: getpwuid_r succeeded and `result` points at `entry`, whose string fields
        // point into `buf`, which is still alive and unchanged.
        let dir = unsafe { (*result).pw_dir };
        if dir.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the password entry for user ID {uid} has no home directory"),
            ));
        }
        // SAFETY: `dir` is a NUL-terminated string inside `buf` (see above).
        let dir = unsafe { CStr::from_ptr(dir) };
        return Ok(OsString::from_vec(dir.to_bytes().to_vec()));
    }
}

/// Command-line input to the configuration: the `-c` file and the option overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-c/--config`: the only configuration file to read.
    pub config_file: Option<PathBuf>,
    /// Configuration options given on the command line, applied in this order after all files.
    pub settings: Vec<Setting>,
    /// `-t/--nthreads`.
    pub nthreads: Option<usize>,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where log messages go when `use_syslog` is false (absolute, `$HOME` replaced).
    pub log_file: PathBuf,
    /// The directory pool set names are resolved in (absolute, `$HOME` replaced).
    pub poolset_dir: PathBuf,
    /// The Appliance Persistency Method is allowed.
    pub persist_apm: bool,
    /// The General Purpose Server Persistency Method is allowed.
    pub persist_general: bool,
    /// Log through syslog instead of `log_file`.
    pub use_syslog: bool,
    /// The least severe level logged.
    pub log_level: LogLevel,
    /// Number of processing threads; 0 lets the transport choose.
    pub nthreads: usize,
    /// TCP lanes in the clear, for clients that chose it too (default
    /// off: every lane is sealed; `docs/protocol.md`).
    pub tcp_plaintext: bool,
}

/// Where a configuration value came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// Nothing set it: the default of the manual.
    #[default]
    Default,
    /// A configuration file line.
    File {
        /// The file as named.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A command-line option (its long name, without `--`).
    CommandLine(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::CommandLine(name) => write!(f, "the command-line option --{name}"),
        }
    }
}

/// Where each value of the effective configuration came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    /// `log-file`.
    pub log_file: Origin,
    /// `poolset-dir`.
    pub poolset_dir: Origin,
    /// `persist-apm`.
    pub persist_apm: Origin,
    /// `persist-general`.
    pub persist_general: Origin,
    /// `use-syslog` (a `log-file` setting turns it off, and is then its origin).
    pub use_syslog: Origin,
    /// `log-level`.
    pub log_level: Origin,
    /// `nthreads` (`-t`).
    pub nthreads: Origin,
    /// `tcp-plaintext`.
    pub tcp_plaintext: Origin,
}

/// A configuration file rpmemd looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLookup {
    /// The file as named.
    pub path: PathBuf,
    /// Whether it was read (false: an optional file that does not exist, skipped).
    pub read: bool,
}

/// The effective configuration with where it came from (for `--check-config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Where each value came from.
    pub origins: Origins,
    /// The configuration files looked for, in order.
    pub files: Vec<FileLookup>,
}

/// The configuration while layers are applied (`poolset_dir` and `log_file` still raw).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layered {
    log_file: String,
    poolset_dir: String,
    persist_apm: bool,
    persist_general: bool,
    use_syslog: bool,
    log_level: LogLevel,
    nthreads: usize,
    tcp_plaintext: bool,
    origins: Origins,
    files: Vec<FileLookup>,
}

impl Layered {
    fn defaults() -> Layered {
        Layered {
            log_file: DEFAULT_LOG_FILE.to_owned(),
            poolset_dir: HOME_PLACEHOLDER.to_owned(),
            persist_apm: false,
            persist_general: true,
            use_syslog: true,
            log_level: LogLevel::Err,
            nthreads: DEFAULT_NTHREADS,
            tcp_plaintext: false,
            origins: Origins::default(),
            files: Vec::new(),
        }
    }

    #[cfg(test)]
    fn apply(&mut self, setting: &Setting) {
        self.apply_from(setting, Origin::Default);
    }

    fn apply_from(&mut self, setting: &Setting, origin: Origin) {
        let o = &mut self.origins;
        match setting {
            Setting::LogFile(path) => {
                self.log_file.clone_from(path);
                // PMDK: naming a log file means logging to it.
                self.use_syslog = false;
                o.use_syslog = origin.clone();
                o.log_file = origin;
            }
            Setting::PoolsetDir(path) => {
                self.poolset_dir.clone_from(path);
                o.poolset_dir = origin;
            }
            Setting::PersistApm(on) => {
                self.persist_apm = *on;
                o.persist_apm = origin;
            }
            Setting::PersistGeneral(on) => {
                self.persist_general = *on;
                o.persist_general = origin;
            }
            Setting::UseSyslog(on) => {
                self.use_syslog = *on;
                o.use_syslog = origin;
            }
            Setting::LogLevel(level) => {
                self.log_level = *level;
                o.log_level = origin;
            }
            Setting::TcpPlaintext(on) => {
                self.tcp_plaintext = *on;
                o.tcp_plaintext = origin;
            }
        }
    }

    fn apply_file(&mut self, path: &Path, required: bool) -> Result<(), ConfigError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if !required && is_missing(&e) => {
                self.files.push(FileLookup {
                    path: path.to_path_buf(),
                    read: false,
                });
                return Ok(());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        for (line, setting) in parse_text_lines(path, &text)? {
            let origin = Origin::File {
                path: path.to_path_buf(),
                line,
            };
            self.apply_from(&setting, origin);
        }
        self.files.push(FileLookup {
            path: path.to_path_buf(),
            read: true,
        });
        Ok(())
    }
}

/// A missing optional file: it, or a directory on its path, does not exist.
fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The long option that sets `setting` on the command line.
fn option_name(setting: &Setting) -> &'static str {
    match setting {
        Setting::LogFile(_) => Key::LogFile.name(),
        Setting::PoolsetDir(_) => Key::PoolsetDir.name(),
        Setting::PersistApm(_) => Key::PersistApm.name(),
        Setting::PersistGeneral(_) => Key::PersistGeneral.name(),
        Setting::UseSyslog(_) => Key::UseSyslog.name(),
        Setting::LogLevel(_) => Key::LogLevel.name(),
        Setting::TcpPlaintext(_) => Key::TcpPlaintext.name(),
    }
}

/// Builds the effective configuration from the defaults, the files and the command line.
pub fn load(env: &Environment, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_traced(env, overrides).map(|loaded| loaded.config)
}

/// [`load`], keeping where every value came from and which files were looked for.
pub fn load_traced(env: &Environment, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let mut layered = Layered::defaults();
    match &overrides.config_file {
        Some(path) => layered.apply_file(path, true)?,
        None => {
            layered.apply_file(&env.global_config, false)?;
            layered.apply_file(&env.user_config(), false)?;
        }
    }
    for setting in &overrides.settings {
        layered.apply_from(setting, Origin::CommandLine(option_name(setting)));
    }
    if let Some(nthreads) = overrides.nthreads {
        layered.nthreads = nthreads;
        layered.origins.nthreads = Origin::CommandLine("nthreads");
    }

    let poolset_dir = substitute_home(&layered.poolset_dir, &env.home);
    if !Path::new(&poolset_dir).is_absolute() {
        return Err(ConfigError::PoolsetDirNotAbsolute {
            value: poolset_dir,
            raw: layered.poolset_dir,
            home: env.home.clone(),
            origin: layered.origins.poolset_dir,
        });
    }
    let log_file = substitute_home(&layered.log_file, &env.home);
    if !Path::new(&log_file).is_absolute() {
        return Err(ConfigError::LogFileNotAbsolute {
            value: log_file,
            raw: layered.log_file,
            home: env.home.clone(),
            origin: layered.origins.log_file,
        });
    }
    Ok(Loaded {
        config: Config {
            log_file: PathBuf::from(log_file),
            poolset_dir: PathBuf::from(poolset_dir),
            persist_apm: layered.persist_apm,
            persist_general: layered.persist_general,
            use_syslog: layered.use_syslog,
            log_level: layered.log_level,
            nthreads: layered.nthreads,
            tcp_plaintext: layered.tcp_plaintext,
        },
        origins: layered.origins,
        files: layered.files,
    })
}

fn yes_no(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

impl Config {
    /// The `--dump-config` text: one `key = value` line per setting, configuration-file names,
    /// `yes`/`no` for booleans, in the order `log-file`, `poolset-dir`, `persist-apm`,
    /// `persist-general`, `use-syslog`, `log-level`, `tcp-plaintext` (only when `yes`, so that
    /// the dump of a PMDK configuration is PMDK's), `nthreads`.
    pub fn dump(&self) -> String {
        format!(
            "log-file = {}\npoolset-dir = {}\npersist-apm = {}\npersist-general = {}\n\
             use-syslog = {}\nlog-level = {}\n{}nthreads = {}\n",
            self.log_file.display(),
            self.poolset_dir.display(),
            yes_no(self.persist_apm),
            yes_no(self.persist_general),
            yes_no(self.use_syslog),
            self.log_level,
            if self.tcp_plaintext {
                "tcp-plaintext = yes\n"
            } else {
                ""
            },
            self.nthreads,
        )
    }

    /// Logs the configuration as PMDK's rpmemd does at start-up (notice and debug levels), and
    /// warns about settings that leave no persistency method enabled.
    pub fn log_summary(&self) {
        crate::logging::notice!("configuration");
        crate::logging::notice!("    pool set directory: '{}'", self.poolset_dir.display());
        crate::logging::notice!("    number of threads: {}", self.nthreads);
        log::debug!("    persist APM: {}", yes_no(self.persist_apm));
        log::debug!("    persist GPSPM: {}", yes_no(self.persist_general));
        log::debug!("    use syslog: {}", yes_no(self.use_syslog));
        log::debug!("    log file: {}", self.log_file.display());
        log::debug!("    log level: {}", self.log_level);
        if self.tcp_plaintext {
            log::warn!(
                "tcp-plaintext = yes: TCP lanes of clients that chose plaintext too (RPMEM_TCP_PLAINTEXT=1) cross the network in the clear; other clients are refused"
            );
        }
        if !self.persist_apm && !self.persist_general {
            log::warn!(
                "persist-apm and persist-general are both 'no': no persistency method is enabled"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::empty(b"", None)]
    #[case::blank(b" \t \r", None)]
    #[case::comment(b"# log-level = bogus", None)]
    #[case::indented_comment(b"\t\t  # comment", None)]
    #[case::plain(b"log-file=/a", Some(Setting::LogFile("/a".into())))]
    #[case::spaces(b"  log-file \t=\t /a b  ", Some(Setting::LogFile("/a b".into())))]
    #[case::crlf(b"log-level = info\r", Some(Setting::LogLevel(LogLevel::Info)))]
    #[case::crlf_with_newline(b"use-syslog=no\r\n", Some(Setting::UseSyslog(false)))]
    #[case::trailing_comment(b"poolset-dir=/x # c", Some(Setting::PoolsetDir("/x".into())))]
    #[case::comment_glued(b"poolset-dir=/x#y", Some(Setting::PoolsetDir("/x".into())))]
    #[case::second_equals(b"log-file = /a=b", Some(Setting::LogFile("/a=b".into())))]
    #[case::apm_yes(b"persist-apm=yes", Some(Setting::PersistApm(true)))]
    #[case::general_no(b"persist-general = no", Some(Setting::PersistGeneral(false)))]
    #[case::level_err(b"log-level=err", Some(Setting::LogLevel(LogLevel::Err)))]
    #[case::level_warn(b"log-level=warn", Some(Setting::LogLevel(LogLevel::Warn)))]
    #[case::level_notice(b"log-level=notice", Some(Setting::LogLevel(LogLevel::Notice)))]
    #[case::level_debug(b"log-level=debug", Some(Setting::LogLevel(LogLevel::Debug)))]
    #[case::vt_ff(b"\x0blog-level=debug\x0c", Some(Setting::LogLevel(LogLevel::Debug)))]
    #[case::latin1_comment(b"log-level=info # caf\xe9", Some(Setting::LogLevel(LogLevel::Info)))]
    fn valid_lines(#[case] line: &[u8], #[case] expected: Option<Setting>) {
        assert_eq!(parse_line(line), Ok(expected));
    }

    #[rstest]
    #[case::semicolon_comment(b"; invalid comment format", LineError::MissingEquals)]
    #[case::word(b"log-file", LineError::MissingEquals)]
    #[case::equals_in_comment(b"log-file # = /a", LineError::MissingEquals)]
    #[case::empty_key(b" = /a", LineError::EmptyKey)]
    #[case::unknown_key(b"dir=  \t\t  \t\t# invalid dir path", LineError::UnknownKey("dir".into()))]
    #[case::key_case(b"Log-File = /a", LineError::UnknownKey("Log-File".into()))]
    #[case::cli_only_key(b"nthreads = 4", LineError::UnknownKey("nthreads".into()))]
    #[case::config_key(b"config = /a", LineError::UnknownKey("config".into()))]
    #[case::blank_value(b"log-file=  \t\t  \t\t # x", LineError::EmptyValue(Key::LogFile))]
    #[case::no_value(b"poolset-dir =", LineError::EmptyValue(Key::PoolsetDir))]
    #[case::bad_level(
        b"log-level=Invalid",
        LineError::InvalidValue {
            key: Key::LogLevel,
            source: ValueError::LogLevel(UnknownLogLevel("Invalid".into())),
        }
    )]
    #[case::bad_bool(
        b"use-syslog = Yes",
        LineError::InvalidValue { key: Key::UseSyslog, source: ValueError::NotBool("Yes".into()) }
    )]
    #[case::bool_number(
        b"persist-apm = 1",
        LineError::InvalidValue { key: Key::PersistApm, source: ValueError::NotBool("1".into()) }
    )]
    #[case::nul(
        b"log-file = /a\0b",
        LineError::InvalidValue { key: Key::LogFile, source: ValueError::Nul }
    )]
    #[case::not_utf8(b"log-file = /caf\xe9", LineError::NotUtf8)]
    fn invalid_lines(#[case] line: &[u8], #[case] expected: LineError) {
        assert_eq!(parse_line(line), Err(expected));
    }

    #[test]
    fn text_keeps_order_and_counts_lines() {
        let text = b"# header\r\nlog-level = info\r\n\r\nlog-level = debug\nlog-file=/l";
        let settings = parse_text(Path::new("x.conf"), text);
        assert_eq!(
            settings,
            Ok(vec![
                Setting::LogLevel(LogLevel::Info),
                Setting::LogLevel(LogLevel::Debug),
                Setting::LogFile("/l".into()),
            ])
        );
    }

    #[test]
    fn text_error_names_file_line_and_text() {
        let text = b"log-level = info\r\n\n  oops # what\r\nlog-level = debug\n";
        let err = parse_text(Path::new("dir/x.conf"), text).err();
        let expected = FileLineError {
            file: PathBuf::from("dir/x.conf"),
            line: 3,
            text: "  oops # what".into(),
            reason: LineError::MissingEquals,
        };
        assert_eq!(err, Some(expected.clone()));
        let shown = expected.to_string();
        assert!(shown.starts_with("Invalid config file line at dir/x.conf:3: "));
        assert!(shown.ends_with("\n  oops # what"));
    }

    #[rstest]
    #[case::alone("$HOME", "/h")]
    #[case::slash("$HOME/suffix", "/h/suffix")]
    #[case::prefix("prefix$HOME", "prefix/h")]
    #[case::sticky("$HOMEstickysuffix", "$HOMEstickysuffix")]
    #[case::digit("$HOME2", "$HOME2")]
    #[case::underscore("$HOME_x", "/h_x")]
    #[case::dash("$HOME-x", "/h-x")]
    #[case::twice("$HOME/$HOME", "/h//h")]
    #[case::sticky_then_plain("/a/$HOMEx/$HOME", "/a/$HOMEx//h")]
    #[case::none("/srv/pools", "/srv/pools")]
    #[case::lowercase("$home", "$home")]
    #[case::non_ascii_follows("$HOMEé", "/hé")]
    fn home_substitution(#[case] value: &str, #[case] expected: &str) {
        assert_eq!(substitute_home(value, "/h"), expected);
    }

    fn env_with(home: &str, global: &Path) -> Environment {
        Environment {
            home: home.to_owned(),
            global_config: global.to_path_buf(),
        }
    }

    #[test]
    fn defaults_follow_the_manual() {
        let dir = tempfile::tempdir().ok();
        let dir = dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"));
        let env = env_with("/home/u", &dir.join("missing.conf"));
        let config = load(&env, &Overrides::default()).ok();
        assert_eq!(
            config,
            Some(Config {
                log_file: PathBuf::from("/var/log/rpmemd.log"),
                poolset_dir: PathBuf::from("/home/u"),
                persist_apm: false,
                persist_general: true,
                use_syslog: true,
                log_level: LogLevel::Err,
                nthreads: 0,
                tcp_plaintext: false,
            })
        );
    }

    #[rstest]
    #[case::file_only(&[Setting::LogFile("/l".into())], false)]
    #[case::syslog_after(&[Setting::LogFile("/l".into()), Setting::UseSyslog(true)], true)]
    #[case::syslog_before(&[Setting::UseSyslog(true), Setting::LogFile("/l".into())], false)]
    fn log_file_turns_syslog_off(#[case] settings: &[Setting], #[case] syslog: bool) {
        let mut layered = Layered::defaults();
        for setting in settings {
            layered.apply(setting);
        }
        assert_eq!(layered.use_syslog, syslog);
        assert_eq!(layered.log_file, "/l");
    }

    #[test]
    fn dump_format() {
        let config = Config {
            log_file: PathBuf::from("/l"),
            poolset_dir: PathBuf::from("/p"),
            persist_apm: true,
            persist_general: false,
            use_syslog: false,
            log_level: LogLevel::Notice,
            nthreads: 3,
            tcp_plaintext: true,
        };
        assert_eq!(
            config.dump(),
            "log-file = /l\npoolset-dir = /p\npersist-apm = yes\npersist-general = no\n\
             use-syslog = no\nlog-level = notice\ntcp-plaintext = yes\nnthreads = 3\n"
        );
    }

    #[test]
    fn dump_parses_back() {
        let config = Config {
            log_file: PathBuf::from("/var/log/x.log"),
            poolset_dir: PathBuf::from("/srv"),
            persist_apm: true,
            persist_general: true,
            use_syslog: true,
            log_level: LogLevel::Debug,
            nthreads: 0,
            tcp_plaintext: false,
        };
        let dump = config.dump();
        let without_nthreads: Vec<&str> = dump
            .lines()
            .filter(|l| !l.starts_with("nthreads"))
            .collect();
        let parsed = parse_text(Path::new("dump"), without_nthreads.join("\n").as_bytes());
        let mut layered = Layered::defaults();
        for setting in parsed.iter().flatten() {
            layered.apply(setting);
        }
        assert_eq!(layered.log_file, "/var/log/x.log");
        assert_eq!(layered.poolset_dir, "/srv");
        assert!(layered.persist_apm && layered.persist_general && layered.use_syslog);
        assert_eq!(layered.log_level, LogLevel::Debug);
    }

    #[test]
    fn passwd_home_is_absolute() {
        let home = passwd_home().ok();
        assert!(home.is_some_and(|h| Path::new(&h).is_absolute()));
    }

    #[rstest]
    #[case::relative("pools", "pools")]
    #[case::sticky("$HOMEx", "$HOMEx")]
    #[case::prefix("prefix$HOME", "prefix/h")]
    fn relative_poolset_dir_is_refused(#[case] raw: &str, #[case] value: &str) {
        let env = env_with("/h", Path::new("/nonexistent/rpmemd.conf"));
        let overrides = Overrides {
            settings: vec![Setting::PoolsetDir(raw.into())],
            ..Overrides::default()
        };
        let err = load(&env, &overrides).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains(&format!("{value:?}"))),
            "{err:?}"
        );
    }

    #[rstest]
    #[case::home("$HOME/.rpmemd.log", "/h/.rpmemd.log")]
    #[case::absolute("/var/log/x.log", "/var/log/x.log")]
    #[case::sticky_stays("/l/$HOMEx.log", "/l/$HOMEx.log")]
    fn log_file_home_is_replaced(#[case] raw: &str, #[case] expected: &str) {
        let env = env_with("/h", Path::new("/nonexistent/rpmemd.conf"));
        let overrides = Overrides {
            settings: vec![Setting::LogFile(raw.into())],
            ..Overrides::default()
        };
        let config = load(&env, &overrides).ok();
        assert_eq!(config.map(|c| c.log_file), Some(PathBuf::from(expected)));
    }

    #[rstest]
    #[case::relative("rpmemd.log", "rpmemd.log")]
    #[case::sticky("$HOMEx/l", "$HOMEx/l")]
    fn relative_log_file_is_refused_naming_the_option(#[case] raw: &str, #[case] value: &str) {
        let env = env_with("/h", Path::new("/nonexistent/rpmemd.conf"));
        let overrides = Overrides {
            settings: vec![Setting::LogFile(raw.into())],
            ..Overrides::default()
        };
        let err = load(&env, &overrides).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.starts_with(&format!("log-file {value:?} (set by the command-line option --log-file) is not an absolute path")), "{err}");
    }

    #[test]
    fn origins_name_file_and_line() {
        let dir = tempfile::tempdir().ok();
        let dir = dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"));
        let conf = dir.join("c.conf");
        assert!(std::fs::write(&conf, "# x\nlog-level = info\n\nlog-file = /l\n").is_ok());
        let env = env_with("/h", &dir.join("missing.conf"));
        let overrides = Overrides {
            config_file: Some(conf.clone()),
            settings: vec![Setting::PersistApm(true)],
            nthreads: Some(2),
        };
        let loaded = load_traced(&env, &overrides).ok();
        let origins = loaded
            .as_ref()
            .map(|l| l.origins.clone())
            .unwrap_or_default();
        assert_eq!(
            origins.log_level,
            Origin::File {
                path: conf.clone(),
                line: 2
            }
        );
        assert_eq!(
            origins.log_file,
            Origin::File {
                path: conf.clone(),
                line: 4
            }
        );
        assert_eq!(
            origins.use_syslog,
            Origin::File {
                path: conf.clone(),
                line: 4
            }
        );
        assert_eq!(origins.persist_apm, Origin::CommandLine("persist-apm"));
        assert_eq!(origins.nthreads, Origin::CommandLine("nthreads"));
        assert_eq!(origins.poolset_dir, Origin::Default);
        assert_eq!(
            loaded.map(|l| l.files),
            Some(vec![FileLookup {
                path: conf,
                read: true
            }])
        );
    }

    #[test]
    fn level_order_and_names() {
        let mut sorted = LogLevel::ALL;
        sorted.sort();
        assert_eq!(sorted, LogLevel::ALL);
        for level in LogLevel::ALL {
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
        }
        assert!("ERR".parse::<LogLevel>().is_err());
        assert!("warning".parse::<LogLevel>().is_err());
    }
}
