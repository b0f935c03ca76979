//! rpmemd logging through the built binary: the log file (mode, appending, level, format),
//! syslog through a socket of our own (priorities, level), stderr before the configuration is
//! read, and stdout kept free of anything but the protocol's status words.
//!
//! Every run has stdin at `/dev/null`, so a session starts (status word 0), finds end of file
//! before any request, and ends with the failure word `ECONNRESET` and exit status 1.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");

/// What rpmemd logs (at `err`) when stdin ends before any request.
const NO_REQUEST: &str = "the client closed the out-of-band connection without a request";

/// stdout of a session whose stdin is `/dev/null`: the start-up status word 0, then the failure
/// word `ECONNRESET` (104 = 0x68), both 4-byte little-endian.
const NO_REQUEST_STDOUT: [u8; 8] = [0x00, 0x00, 0x00, 0x00, 0x68, 0x00, 0x00, 0x00];

/// The start-up status word of a configuration failure: `EINVAL` (22 = 0x16).
const EINVAL_WORD: [u8; 4] = [0x16, 0x00, 0x00, 0x00];

/// The start-up status word of a file that does not exist: `ENOENT` (2).
const ENOENT_WORD: [u8; 4] = [0x02, 0x00, 0x00, 0x00];

/// The start-up status word of a log file that is a directory: `EISDIR` (21 = 0x15).
const EISDIR_WORD: [u8; 4] = [0x15, 0x00, 0x00, 0x00];

/// The five levels, most severe first.
const LEVELS: [&str; 5] = ["err", "warn", "notice", "info", "debug"];

/// The levels let through when `configured` is set.
fn levels_up_to(configured: &str) -> BTreeSet<String> {
    let last = LEVELS.iter().position(|l| *l == configured).unwrap_or(0);
    LEVELS
        .iter()
        .take(last + 1)
        .map(|l| (*l).to_owned())
        .collect()
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `rpmemd.conf` with these lines plus an absolute poolset-dir.
    fn config(&self, lines: &str) -> PathBuf {
        let path = self.path("rpmemd.conf");
        let content = format!("poolset-dir = {}\n{lines}", self.dir.path().display());
        assert!(fs::write(&path, content).is_ok());
        path
    }

    /// Sets up `cmd` to run rpmemd with `-c rpmemd.conf`, no other configuration source, and
    /// an environment that does not depend on the caller's.
    fn prepare(&self, cmd: &mut Command, extra_args: &[&str]) {
        cmd.current_dir(self.dir.path())
            .arg("-c")
            .arg(self.path("rpmemd.conf"))
            .args(extra_args)
            .env("HOME", self.dir.path())
            .env("RPMEMD_GLOBAL_CONFIG", self.path("no-global.conf"))
            .env("USER", "logging-test")
            .env_remove("RPMEMD_SYSLOG_SOCKET")
            .env_remove("RPMEMD_SPIN_US")
            .env_remove("SSH_CONNECTION")
            .stdin(Stdio::null());
    }

    /// A command running rpmemd (see [`Scratch::prepare`]).
    fn command(&self, extra_args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        self.prepare(&mut cmd, extra_args);
        cmd
    }

    fn run(&self, extra_args: &[&str]) -> Output {
        self.command(extra_args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    }

    /// Runs rpmemd with umask 0, so that files get exactly the mode rpmemd asks for.
    fn run_with_umask_0(&self, extra_args: &[&str]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("umask 0 && exec \"$0\" \"$@\"").arg(BIN);
        self.prepare(&mut cmd, extra_args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {BIN} through sh: {e}"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks a run whose session ended for lack of a request: exit 1, stdout exactly the two
/// status words.
fn assert_no_request_session(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(
        output.stdout,
        NO_REQUEST_STDOUT,
        "stdout: {:?}",
        text(&output.stdout)
    );
}

/// The level names found in a log file (`<time> rpmemd[<pid>]: <level>: <message>`).
fn file_levels(content: &str) -> BTreeSet<String> {
    content
        .lines()
        .filter_map(|line| line.split_once("]: "))
        .filter_map(|(_, rest)| rest.split_once(": "))
        .map(|(level, _)| level.to_owned())
        .collect()
}

/// Whether `line` has the documented log file shape:
/// `YYYY-MM-DDThh:mm:ss.mmmZ rpmemd[<pid>]: <level>: <message>`.
fn is_file_line(line: &str) -> bool {
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    let time_ok = time.len() == 24
        && time.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let Some(rest) = rest.strip_prefix("rpmemd[") else {
        return false;
    };
    let Some((pid, rest)) = rest.split_once("]: ") else {
        return false;
    };
    let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    let level_ok = rest
        .split_once(": ")
        .is_some_and(|(level, _)| LEVELS.contains(&level));
    time_ok && pid_ok && level_ok
}

/// The pid in the first log line (all lines of one run carry the same one).
fn output_pid(content: &str) -> String {
    content
        .split_once("rpmemd[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(pid, _)| pid.to_owned())
        .unwrap_or_default()
}

#[rstest]
#[case::err("err")]
#[case::warn("warn")]
#[case::notice("notice")]
#[case::info("info")]
#[case::debug("debug")]
fn log_file_honours_the_level(#[case] level: &str) {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    // persist-general = no with persist-apm = no makes rpmemd warn.
    scratch.config(&format!(
        "use-syslog = no\nlog-file = {}\nlog-level = {level}\npersist-general = no\n",
        log.display()
    ));
    let output = scratch.run(&[]);
    assert_no_request_session(&output);
    // The client learns why on stderr even though the log goes to the file; nothing else of
    // the log reaches stderr.
    assert_eq!(text(&output.stderr), format!("rpmemd: {NO_REQUEST}\n"));
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(file_levels(&content), levels_up_to(level), "{content}");
    assert!(content.lines().all(is_file_line), "{content}");
    assert!(
        content.contains(&format!("]: err: {NO_REQUEST}\n")),
        "{content}"
    );
    let pid = format!("rpmemd[{}]: ", output_pid(&content));
    assert!(content.lines().all(|l| l.contains(&pid)), "{content}");
    // One start-up line of each of the lower levels, when they are let through.
    let expected_lines = [
        (
            "warn",
            "warn: persist-apm and persist-general are both 'no'",
        ),
        ("notice", "notice: user: logging-test\n"),
        ("notice", "notice: ssh connection: (null)\n"),
        ("info", "info: rpmemd version "),
        ("debug", "debug:     persist GPSPM: no\n"),
    ];
    for (line_level, fragment) in expected_lines {
        assert_eq!(
            content.contains(fragment),
            levels_up_to(level).contains(line_level),
            "{fragment:?} at level {level}:\n{content}"
        );
    }
}

#[test]
fn log_file_is_created_0640_and_appended() {
    let scratch = Scratch::new();
    let log = scratch.path("new.log");
    scratch.config(&format!("log-file = {}\nlog-level = warn\n", log.display()));
    let first = scratch.run_with_umask_0(&[]);
    assert_no_request_session(&first);
    // With umask 0 the mode is exactly the one rpmemd asked for.
    let mode = fs::metadata(&log).map(|m| m.permissions().mode() & 0o7777);
    let mode = mode.unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert_eq!(mode, 0o640, "mode {mode:04o}");
    let after_first = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(after_first.matches(NO_REQUEST).count(), 1, "{after_first}");
    // A file rpmemd created itself is not reported as too loose.
    assert!(!after_first.contains("looser than"), "{after_first}");

    let second = scratch.run(&[]);
    assert_no_request_session(&second);
    let after_second = fs::read_to_string(&log).unwrap_or_default();
    assert!(after_second.starts_with(&after_first), "not appended");
    assert_eq!(
        after_second.matches(NO_REQUEST).count(),
        2,
        "{after_second}"
    );
    let appended = after_second.get(after_first.len()..).unwrap_or_default();
    assert_ne!(
        output_pid(&after_first),
        output_pid(appended),
        "{after_second}"
    );
}

#[test]
fn existing_log_file_keeps_its_content_and_its_loose_mode_is_reported() {
    let scratch = Scratch::new();
    let log = scratch.path("old.log");
    assert!(fs::write(&log, "previous line\n").is_ok());
    assert!(fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).is_ok());
    scratch.config(&format!("log-file = {}\nlog-level = warn\n", log.display()));
    let output = scratch.run(&[]);
    assert_no_request_session(&output);
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert!(content.starts_with("previous line\n"), "{content}");
    assert!(content.contains(NO_REQUEST), "{content}");
    assert!(
        content.contains(&format!(
            "]: warn: log file {} has mode 0644, looser than 0640\n",
            log.display()
        )),
        "{content}"
    );
    // rpmemd reports the mode but leaves it as it is.
    let mode = fs::metadata(&log).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(mode.ok(), Some(0o644));
}

#[rstest]
#[case::missing_directory("no/such/dir/rpmemd.log", ENOENT_WORD)]
#[case::a_directory(".", EISDIR_WORD)]
fn log_file_that_cannot_be_opened_stops_rpmemd(#[case] name: &str, #[case] word: [u8; 4]) {
    let scratch = Scratch::new();
    let log = scratch.path(name);
    scratch.config(&format!("log-file = {}\n", log.display()));
    let output = scratch.run(&[]);
    assert_eq!(output.status.code(), Some(4));
    // Only the start-up status word, carrying the open errno: no session was served.
    assert_eq!(output.stdout, word, "stdout: {:?}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("rpmemd: cannot open log file {}: ", log.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(NO_REQUEST), "{stderr}");
}

/// A syslog socket of our own: collects datagrams while rpmemd runs (the kernel queue of a
/// datagram socket is short, so reading must go on while rpmemd writes).
struct SyslogServer {
    socket: UnixDatagram,
    path: PathBuf,
}

impl SyslogServer {
    fn bind(path: PathBuf) -> SyslogServer {
        let socket = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        assert!(socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .is_ok());
        SyslogServer { socket, path }
    }

    /// Runs `cmd` with the socket as its syslog; returns its output and the messages received.
    fn collect(&self, mut cmd: Command) -> (Output, Vec<String>) {
        cmd.env("RPMEMD_SYSLOG_SOCKET", &self.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = false;
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => messages.push(text(buf.get(..n).unwrap_or_default())),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if exited {
                        break;
                    }
                    // Read once more after the exit to drain what was queued.
                    exited = matches!(child.try_wait(), Ok(Some(_)));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("recv: {e}"),
            }
            assert!(Instant::now() < deadline, "rpmemd did not finish");
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait: {e}"));
        (output, messages)
    }
}

/// `<PRI>` of a syslog message.
fn priority(message: &str) -> Option<u8> {
    message
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(pri, _)| pri.parse().ok())
}

#[rstest]
#[case::err("err", &[11])]
#[case::warn("warn", &[11, 12])]
#[case::notice("notice", &[11, 12, 13])]
#[case::info("info", &[11, 12, 13, 14])]
#[case::debug("debug", &[11, 12, 13, 14, 15])]
fn syslog_priorities_and_level(#[case] level: &str, #[case] expected: &[u8]) {
    let scratch = Scratch::new();
    let server = SyslogServer::bind(scratch.path("log.sock"));
    scratch.config(&format!(
        "use-syslog = yes\nlog-level = {level}\npersist-general = no\n"
    ));
    let (output, messages) = server.collect(scratch.command(&[]));
    assert_no_request_session(&output);
    // syslog was reached: stderr gets the reason the session ended, and nothing else.
    assert_eq!(text(&output.stderr), format!("rpmemd: {NO_REQUEST}\n"));

    // LOG_USER (8) + severity: err 3, warning 4, notice 5, info 6, debug 7.
    let priorities: BTreeSet<u8> = messages.iter().filter_map(|m| priority(m)).collect();
    assert_eq!(
        priorities,
        expected.iter().copied().collect::<BTreeSet<u8>>(),
        "{messages:#?}"
    );
    assert_eq!(
        messages.iter().filter(|m| priority(m).is_none()).count(),
        0,
        "{messages:#?}"
    );
    assert!(
        messages.iter().all(|m| m.contains(" rpmemd[")),
        "{messages:#?}"
    );
    let errors: Vec<&String> = messages.iter().filter(|m| m.starts_with("<11>")).collect();
    assert_eq!(errors.len(), 1, "{messages:#?}");
    assert!(
        errors
            .iter()
            .all(|m| m.ends_with(&format!("]: {NO_REQUEST}"))),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .filter(|m| m.starts_with("<12>"))
            .all(|m| m.contains("no persistency method is enabled")),
        "{messages:#?}"
    );
}

#[test]
fn cli_use_syslog_overrides_the_file() {
    let scratch = Scratch::new();
    let server = SyslogServer::bind(scratch.path("log.sock"));
    let log = scratch.path("unused.log");
    scratch.config(&format!("log-file = {}\nlog-level = err\n", log.display()));
    let (output, messages) = server.collect(scratch.command(&["--use-syslog"]));
    assert_no_request_session(&output);
    assert!(!log.exists());
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("<11>") && m.ends_with(&format!("]: {NO_REQUEST}"))),
        "{messages:#?}"
    );
}

#[test]
fn errors_before_the_configuration_go_to_stderr_only() {
    let scratch = Scratch::new();
    let server = SyslogServer::bind(scratch.path("log.sock"));
    let log = scratch.path("never.log");
    scratch.config(&format!(
        "use-syslog = yes\nlog-level = debug\nlog-file = {}\nbogus line\n",
        log.display()
    ));
    let (output, messages) = server.collect(scratch.command(&["--use-syslog"]));
    assert_eq!(output.status.code(), Some(3));
    // Only the start-up status word, carrying EINVAL: no session was served.
    assert_eq!(
        output.stdout,
        EINVAL_WORD,
        "stdout: {:?}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("rpmemd: Invalid config file line at "),
        "{stderr}"
    );
    assert!(stderr.contains("rpmemd.conf:5"), "{stderr}");
    assert!(stderr.ends_with("\nbogus line\n"), "{stderr}");
    assert!(messages.is_empty(), "{messages:#?}");
    assert!(!log.exists());
}

#[test]
fn unreachable_syslog_falls_back_to_stderr() {
    let scratch = Scratch::new();
    scratch.config("use-syslog = yes\nlog-level = notice\n");
    let missing = scratch.path("missing.sock");
    let output = scratch
        .command(&[])
        .env("RPMEMD_SYSLOG_SOCKET", &missing)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_no_request_session(&output);
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "rpmemd: warning: cannot reach syslog at {} (",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("rpmemd: notice: configuration\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("rpmemd: info: "), "{stderr}");
    // Reported once, not twice, when the log itself is stderr (errors carry no level name).
    assert_eq!(stderr.matches(NO_REQUEST).count(), 1, "{stderr}");
    assert!(
        stderr.ends_with(&format!("\nrpmemd: {NO_REQUEST}\n")),
        "{stderr}"
    );
}

#[test]
fn invalid_spin_budget_is_logged_as_a_warning() {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!("log-file = {}\nlog-level = warn\n", log.display()));
    let output = scratch
        .command(&[])
        .env("RPMEMD_SPIN_US", "fast")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_no_request_session(&output);
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        content.contains("]: warn: RPMEMD_SPIN_US=\"fast\" is not a number of microseconds"),
        "{content}"
    );
    assert_eq!(file_levels(&content), levels_up_to("warn"), "{content}");
}

// A failed removal exits with its errno (ENOENT: the pool set file does not exist), as PMDK's.
#[rstest]
#[case::refused(&["-r", "pool.set", "-s"], libc::ENOENT, &[
    "info: removing 'pool.set' with its pool set file\n",
    "err: removing 'pool.set' failed: ",
])]
#[case::forced(&["-r", "pool.set", "-f", "-s"], 0, &[
    "info: removing 'pool.set' (force) with its pool set file\n",
    "notice: removed 'pool.set': 0 part(s) removed, pool set file did not exist\n",
])]
fn remove_request_is_logged(
    #[case] args: &[&str],
    #[case] status: i32,
    #[case] fragments: &[&str],
) {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!("log-file = {}\nlog-level = info\n", log.display()));
    let output = scratch.run(args);
    assert_eq!(output.status.code(), Some(status));
    // Remove mode writes no status word.
    assert!(
        output.stdout.is_empty(),
        "stdout: {:?}",
        text(&output.stdout)
    );
    let content = fs::read_to_string(&log).unwrap_or_default();
    for fragment in fragments {
        assert!(content.contains(fragment), "{fragment:?}:\n{content}");
    }
    assert!(content.lines().all(is_file_line), "{content}");
    // A failure reaches the client on stderr too; a success leaves stderr empty.
    let stderr = text(&output.stderr);
    if status == 0 {
        assert_eq!(stderr, "");
    } else {
        assert!(
            stderr.starts_with("rpmemd: removing 'pool.set' failed: "),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// stdout carries the start-up status word only when a session was asked for, and nothing but
/// status words on any failure path.
#[rstest]
#[case::usage_error(&["--bogus"], 2, &[])]
#[case::missing_config_file(&["-c", "/nonexistent/x.conf"], 3, &ENOENT_WORD)]
#[case::relative_poolset_dir(&["--poolset-dir", "relative"], 3, &EINVAL_WORD)]
#[case::log_file_cannot_be_opened(&["--log-file", "/nonexistent/dir/x.log"], 4, &ENOENT_WORD)]
#[case::session_without_request(&[], 1, &NO_REQUEST_STDOUT)]
#[case::remove_failure(&["-r", "x.set"], libc::ENOENT, &[])]
#[case::remove_with_config_failure(&["-r", "x.set", "-c", "/nonexistent/x.conf"], 3, &[])]
#[case::dump_config_failure(&["--dump-config", "-c", "/nonexistent/x.conf"], 3, &[])]
fn stdout_holds_only_status_words_on_every_failure_path(
    #[case] args: &[&str],
    #[case] status: i32,
    #[case] stdout: &[u8],
) {
    let scratch = Scratch::new();
    scratch.config(&format!(
        "log-file = {}\nlog-level = debug\n",
        scratch.path("l.log").display()
    ));
    let output = scratch.run(args);
    assert_eq!(output.status.code(), Some(status), "{args:?}");
    assert_eq!(
        output.stdout,
        stdout,
        "{args:?}: {:?}",
        text(&output.stdout)
    );
    // The reason is on stderr.
    assert!(!output.stderr.is_empty(), "{args:?}");
}

#[test]
fn log_path_helpers_agree() {
    // Guard for the helpers above: a line in the documented format yields its level.
    let line = "2024-01-01T00:00:00.000Z rpmemd[7]: notice: user: x\n";
    assert_eq!(file_levels(line), BTreeSet::from(["notice".to_owned()]));
    assert_eq!(output_pid(line), "7");
    assert!(is_file_line(line.trim_end()));
    assert!(!is_file_line("2024-01-01 00:00:00 rpmemd[7]: notice: x"));
    assert!(!is_file_line(
        "2024-01-01T00:00:00.000Z rpmemd[]: notice: x"
    ));
    assert!(!is_file_line("2024-01-01T00:00:00.000Z rpmemd[7]: loud: x"));
    assert_eq!(priority("<13>Jan  1 00:00:00 rpmemd[7]: x"), Some(13));
    assert_eq!(levels_up_to("notice").len(), 3);
    // The status words are the errno values, little-endian.
    assert_eq!(u32::from_le_bytes(EINVAL_WORD), libc::EINVAL.unsigned_abs());
    assert_eq!(u32::from_le_bytes(ENOENT_WORD), libc::ENOENT.unsigned_abs());
    assert_eq!(u32::from_le_bytes(EISDIR_WORD), libc::EISDIR.unsigned_abs());
    assert_eq!(
        NO_REQUEST_STDOUT[4..],
        libc::ECONNRESET.unsigned_abs().to_le_bytes()
    );
    assert!(Path::new(BIN).is_file());
}

// ------------------------------------------------ syslog fallback reasons

/// Runs a session with `use-syslog = yes` and `RPMEMD_SYSLOG_SOCKET` set to `socket` (unset
/// when None) and gives the first stderr line: the fallback warning.
fn syslog_warning(scratch: &Scratch, socket: Option<&Path>) -> String {
    scratch.config("use-syslog = yes\nlog-level = notice\n");
    let mut cmd = scratch.command(&[]);
    if let Some(socket) = socket {
        cmd.env("RPMEMD_SYSLOG_SOCKET", socket);
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_no_request_session(&output);
    text(&output.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn syslog_fallback_says_a_missing_socket_does_not_exist() {
    let scratch = Scratch::new();
    let missing = scratch.path("missing.sock");
    let warning = syslog_warning(&scratch, Some(&missing));
    assert_eq!(
        warning,
        format!(
            "rpmemd: warning: cannot reach syslog at {} (it does not exist); logging to stderr",
            missing.display()
        )
    );
}

#[test]
fn syslog_fallback_says_refused_only_for_a_socket_nobody_listens_on() {
    let scratch = Scratch::new();
    let dead = scratch.path("dead.sock");
    // A socket file whose socket is gone: connecting to it is refused.
    drop(UnixDatagram::bind(&dead).unwrap_or_else(|e| panic!("{e}")));
    let warning = syslog_warning(&scratch, Some(&dead));
    assert_eq!(
        warning,
        format!(
            "rpmemd: warning: cannot reach syslog at {} (connection refused: no syslog daemon \
             is listening on it); logging to stderr",
            dead.display()
        )
    );
    // A directory is not a socket (connect(2) says "refused" for it too).
    let dir = scratch.path("a-dir");
    assert!(fs::create_dir(&dir).is_ok());
    let warning = syslog_warning(&scratch, Some(&dir));
    assert_eq!(
        warning,
        format!(
            "rpmemd: warning: cannot reach syslog at {} (it is a directory, not a socket); \
             logging to stderr",
            dir.display()
        )
    );
}

/// Without `RPMEMD_SYSLOG_SOCKET`, on a machine without a syslog daemon (no `/dev/log`), the
/// warning must say that `/dev/log` does not exist, not that a connection was refused.
#[test]
fn syslog_fallback_on_a_machine_without_dev_log() {
    if Path::new("/dev/log").exists() {
        eprintln!("skipped: /dev/log exists here");
        return;
    }
    let scratch = Scratch::new();
    let warning = syslog_warning(&scratch, None);
    assert!(
        warning.starts_with("rpmemd: warning: cannot reach syslog at /dev/log (it does not exist)"),
        "{warning}"
    );
    assert!(warning.ends_with("; logging to stderr"), "{warning}");
    for path in ["/var/run/syslog", "/var/run/log"] {
        if !Path::new(path).exists() {
            assert!(
                warning.contains(&format!("{path} (it does not exist)")),
                "{warning}"
            );
        }
    }
}

// ------------------------------------------------ pool attribute headings

/// The size of the one-part pool the heading test creates (the smallest part).
const ATTR_POOL_SIZE: u64 = 2 << 20;

/// One rpmemd session driven through the out-of-band client machine over its stdin/stdout.
struct OobSession {
    child: std::process::Child,
    client: rpmem_core::oob::Client,
    pending: Vec<u8>,
}

impl OobSession {
    fn start(scratch: &Scratch) -> OobSession {
        let mut cmd = scratch.command(&[]);
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PMEM_IS_PMEM_FORCE", "0")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let mut session = OobSession {
            child,
            client: rpmem_core::oob::Client::new(),
            pending: Vec::new(),
        };
        assert_eq!(session.event(), rpmem_core::oob::ClientEvent::Ready);
        session
    }

    fn event(&mut self) -> rpmem_core::oob::ClientEvent {
        use std::io::Read;
        loop {
            if !self.pending.is_empty() {
                let (used, event) = self
                    .client
                    .handle_input(&self.pending)
                    .unwrap_or_else(|e| panic!("client machine: {e}"));
                self.pending.drain(..used);
                if let Some(event) = event {
                    return event;
                }
            }
            let mut buf = [0u8; 4096];
            let stdout = self.child.stdout.as_mut();
            let n = stdout.map_or(0, |s| s.read(&mut buf).unwrap_or(0));
            assert!(n > 0, "rpmemd closed stdout");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, bytes: &[u8]) -> rpmem_core::oob::ClientEvent {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut();
        let sent = stdin.map(|s| s.write_all(bytes).and_then(|()| s.flush()));
        assert!(matches!(sent, Some(Ok(()))), "writing to rpmemd failed");
        self.event()
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.code(), Some(0));
    }
}

fn heading_attr() -> rpmem_core::attr::PoolAttr {
    let mut attr = rpmem_core::attr::PoolAttr::ZERO;
    attr.signature = *b"HEADING\0";
    attr.major = 1;
    attr.poolset_uuid = [1; 16];
    attr.uuid = [2; 16];
    attr.next_uuid = [2; 16];
    attr.prev_uuid = [2; 16];
    attr
}

/// CREATE, SET_ATTR and CLOSE in one session, then OPEN and CLOSE in another.
fn create_set_attr_open(scratch: &Scratch) {
    use rpmem_core::oob::{ClientEvent, CreateRequest, OpenRequest};
    use rpmem_core::wire::oob::{PoolDesc, Provider};
    let part = scratch.path("heading.part");
    let set = format!("PMEMPOOLSET\n{ATTR_POOL_SIZE} {}\n", part.display());
    assert!(fs::write(scratch.path("heading.set"), set).is_ok());
    let desc = PoolDesc::from_text("heading.set").unwrap_or_else(|e| panic!("{e}"));

    let mut s = OobSession::start(scratch);
    let create = CreateRequest {
        pool_size: ATTR_POOL_SIZE,
        nlanes: 1,
        provider: Provider::TCP,
        buff_size: 8192,
        attr: heading_attr(),
        pool_desc: desc,
    };
    let bytes = s.client.send_create(&create).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::Created(_)), "{event:?}");
    let bytes = s.client.send_set_attr(&heading_attr()).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::AttrSet), "{event:?}");
    let bytes = s.client.send_close(0).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::Closed), "{event:?}");
    s.finish();

    let mut s = OobSession::start(scratch);
    let open = OpenRequest {
        pool_size: ATTR_POOL_SIZE,
        nlanes: 1,
        provider: Provider::TCP,
        buff_size: 8192,
        pool_desc: desc,
    };
    let bytes = s.client.send_open(&open).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::Opened(_)), "{event:?}");
    let bytes = s.client.send_close(0).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::Closed), "{event:?}");
    s.finish();
}

/// The messages of a log file, without time, pid and level.
fn messages(content: &str) -> Vec<String> {
    content
        .lines()
        .filter_map(|line| line.split_once("]: "))
        .filter_map(|(_, rest)| rest.split_once(": "))
        .map(|(_, message)| message.to_owned())
        .collect()
}

/// "pool attributes:" (CREATE, OPEN) and "new pool attributes:" (SET_ATTR) are headings: at
/// `notice` they used to be logged alone, their fields being `info`. A heading is logged only
/// with the fields under it.
#[rstest]
#[case::notice("notice", 0)]
#[case::info("info", 3)]
fn pool_attribute_headings_come_with_their_fields(#[case] level: &str, #[case] headings: usize) {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!(
        "use-syslog = no\nlog-file = {}\nlog-level = {level}\n",
        log.display()
    ));
    create_set_attr_open(&scratch);
    let content = fs::read_to_string(&log).unwrap_or_default();
    let messages = messages(&content);
    let mut found = 0;
    for (i, message) in messages.iter().enumerate() {
        if message.ends_with("attributes:") {
            found += 1;
            let next = messages.get(i + 1).map(String::as_str).unwrap_or("");
            assert!(
                next.starts_with("    signature: 'HEADING'"),
                "heading {message:?} is followed by {next:?}:\n{content}"
            );
        }
    }
    assert_eq!(found, headings, "{content}");
    // The requests themselves are still logged at notice.
    assert!(content.contains("notice: create request:"), "{content}");
    assert!(content.contains("notice: open request:"), "{content}");
}

// ------------------------------------------------ hostile text and floods

/// A pool set name that tries to forge a log line (a newline, a whole log line after it) and
/// to colour a terminal (an escape sequence).
const FORGING_NAME: &str =
    "evil\n2026-01-01T00:00:00.000Z rpmemd[1]: err: forged line\u{1b}[31mred\u{202e}.set";
/// [`FORGING_NAME`] as rpmemd must log it.
const FORGING_NAME_ESCAPED: &str =
    "evil\\n2026-01-01T00:00:00.000Z rpmemd[1]: err: forged line\\x1b[31mred\\u{202e}.set";

/// The bytes a client sends on stdin for one OPEN of `name` (the client machine is fed the
/// start-up status word first, as if rpmemd had sent it).
fn open_request_bytes(name: &str) -> Vec<u8> {
    use rpmem_core::oob::{ClientEvent, OpenRequest};
    use rpmem_core::wire::oob::{PoolDesc, Provider};
    let mut client = rpmem_core::oob::Client::new();
    let (_, event) = client
        .handle_input(&[0, 0, 0, 0])
        .unwrap_or_else(|e| panic!("client machine: {e}"));
    assert_eq!(event, Some(ClientEvent::Ready));
    let open = OpenRequest {
        pool_size: ATTR_POOL_SIZE,
        nlanes: 1,
        provider: Provider::TCP,
        buff_size: 8192,
        pool_desc: PoolDesc::from_text(name).unwrap_or_else(|e| panic!("{e}")),
    };
    client
        .send_open(&open)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a session whose stdin holds one OPEN of [`FORGING_NAME`] (refused: no such pool set).
fn forging_session(scratch: &Scratch) -> Command {
    let request = scratch.path("open-request.bin");
    assert!(fs::write(&request, open_request_bytes(FORGING_NAME)).is_ok());
    let stdin = fs::File::open(&request).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = scratch.command(&[]);
    cmd.stdin(Stdio::from(stdin));
    cmd
}

/// Control characters, and the Unicode ones that move or hide text.
fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}'))
}

#[test]
fn a_pool_set_name_cannot_forge_a_log_file_line() {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!(
        "use-syslog = no\nlog-file = {}\nlog-level = debug\n",
        log.display()
    ));
    let output = forging_session(&scratch)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    // The refused OPEN is answered and the session ends by the protocol.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let content = fs::read_to_string(&log).unwrap_or_default();
    // Every line is one of rpmemd's, with this run's pid; none was forged.
    let pid = output_pid(&content);
    assert!(!pid.is_empty() && pid != "1", "{content}");
    for line in content.lines() {
        assert!(is_file_line(line), "not a log line: {line:?}\n{content}");
        assert!(line.contains(&format!(" rpmemd[{pid}]: ")), "{line:?}");
        assert!(!has_control(line), "control character in {line:?}");
    }
    // The descriptor is logged on exactly one line, escaped.
    let descriptor: Vec<&str> = content
        .lines()
        .filter(|l| l.contains("pool descriptor:"))
        .collect();
    assert_eq!(
        descriptor,
        [format!(
            "{}notice:     pool descriptor: '{FORGING_NAME_ESCAPED}'",
            descriptor
                .first()
                .and_then(|l| l.split_once("notice: "))
                .map_or("", |(head, _)| head)
        )],
        "{content}"
    );
    // The client's stderr gets the refusal on one line too.
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!has_control(stderr.trim_end_matches('\n')), "{stderr:?}");
}

#[test]
fn a_pool_set_name_cannot_forge_a_syslog_message() {
    let scratch = Scratch::new();
    let server = SyslogServer::bind(scratch.path("log.sock"));
    scratch.config("use-syslog = yes\nlog-level = debug\n");
    let (output, messages) = server.collect(forging_session(&scratch));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(!has_control(m), "control character in syslog message {m:?}");
    }
    let descriptor: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("pool descriptor:"))
        .collect();
    assert_eq!(descriptor.len(), 1, "{messages:#?}");
    assert!(
        descriptor
            .iter()
            .all(|m| m.ends_with(&format!("pool descriptor: '{FORGING_NAME_ESCAPED}'"))),
        "{messages:#?}"
    );
}

#[test]
fn a_pool_set_name_cannot_forge_a_line_on_the_stderr_fallback() {
    let scratch = Scratch::new();
    scratch.config("use-syslog = yes\nlog-level = debug\n");
    let mut cmd = forging_session(&scratch);
    cmd.env("RPMEMD_SYSLOG_SOCKET", scratch.path("no-such.sock"));
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot reach syslog"), "{stderr}");
    for line in stderr.lines() {
        assert!(
            line.starts_with("rpmemd: "),
            "not one of rpmemd's lines: {line:?}"
        );
        assert!(!has_control(line), "control character in {line:?}");
    }
    assert!(
        stderr.contains(&format!("pool descriptor: '{FORGING_NAME_ESCAPED}'")),
        "{stderr}"
    );
}

/// How many wrong-secret connections the flood test makes (issue 15: "10,000
/// bad hellos grow the log by less than 64 KiB").
const FLOOD: usize = 10_000;

#[test]
fn a_flood_of_wrong_secret_connections_gives_a_bounded_log() {
    use rpmem_core::oob::{ClientEvent, CreateRequest};
    use rpmem_core::wire::oob::{PoolDesc, Provider};
    use rpmem_core::wire::tcp::HELLO_ACK_LEN;
    use std::io::{Read, Write};

    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!(
        "use-syslog = no\nlog-file = {}\nlog-level = info\n",
        log.display()
    ));
    let part = scratch.path("flood.part");
    let set = format!("PMEMPOOLSET\n{ATTR_POOL_SIZE} {}\n", part.display());
    assert!(fs::write(scratch.path("flood.set"), set).is_ok());
    let mut s = OobSession::start(&scratch);
    let create = CreateRequest {
        pool_size: ATTR_POOL_SIZE,
        nlanes: 1,
        provider: Provider::TCP,
        buff_size: 8192,
        attr: heading_attr(),
        pool_desc: PoolDesc::from_text("flood.set").unwrap_or_else(|e| panic!("{e}")),
    };
    let bytes = s.client.send_create(&create).map(<[u8]>::to_vec);
    let port = match s.send(&bytes.unwrap_or_else(|e| panic!("{e}"))) {
        ClientEvent::Created(r) => u16::try_from(r.ibc.port).unwrap_or(0),
        other => panic!("{other:?}"),
    };
    let before = fs::read_to_string(&log).unwrap_or_default().len();
    // A client that does not know the secret: its hello, rpmemd's answer
    // (whose proof it cannot check), and a proof made up.
    let hs = rpmem_core::seal::ClientHandshake::new(
        &[0x5a; 32],
        0,
        rpmem_core::seal::LaneMode::Sealed,
        [1; 32],
    );
    let started = Instant::now();
    for i in 0..FLOOD {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert!(c.set_read_timeout(Some(Duration::from_secs(30))).is_ok());
        assert!(c.write_all(hs.hello()).is_ok());
        let mut server_hello = [0u8; rpmem_core::seal::SERVER_HELLO_LEN];
        assert!(
            c.read_exact(&mut server_hello).is_ok(),
            "connection {i}: no server hello"
        );
        assert!(c.write_all(&[0x77; rpmem_core::seal::PROOF_LEN]).is_ok());
        let mut ack = [0u8; HELLO_ACK_LEN];
        // The answer is "denied", then the connection closes.
        assert!(c.read_exact(&mut ack).is_ok(), "connection {i}: no answer");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    }
    let elapsed = started.elapsed();
    let bytes = s.client.send_close(0).map(<[u8]>::to_vec);
    let event = s.send(&bytes.unwrap_or_else(|e| panic!("{e}")));
    assert!(matches!(event, ClientEvent::Closed), "{event:?}");
    s.finish();

    let content = fs::read_to_string(&log).unwrap_or_default();
    let flood_log = content.get(before..).unwrap_or_default();
    let refusals: Vec<&str> = flood_log
        .lines()
        .filter(|l| l.contains("refused: wrong session secret"))
        .collect();
    let summaries: Vec<&str> = flood_log
        .lines()
        .filter(|l| {
            l.contains("more lane connections with a wrong session secret suppressed in the last")
        })
        .collect();
    let suppressed: usize = summaries
        .iter()
        .filter_map(|l| l.split_once("warn: "))
        .filter_map(|(_, m)| m.split_once(' '))
        .filter_map(|(n, _)| n.parse::<usize>().ok())
        .sum();
    // Every refusal is either logged or counted in a summary, the first one logged.
    assert_eq!(refusals.len() + suppressed, FLOOD, "{flood_log}");
    assert!(
        !summaries.is_empty(),
        "no suppression summary:\n{flood_log}"
    );
    // A few lines per 10-second window, not one or two per connection.
    let windows = usize::try_from(elapsed.as_secs() / 10).unwrap_or(usize::MAX) + 1;
    assert!(
        refusals.len() <= 5 * windows && summaries.len() <= windows + 1,
        "{} refusal lines and {} summaries in {elapsed:?}:\n{flood_log}",
        refusals.len(),
        summaries.len()
    );
    let total = flood_log.lines().count();
    assert!(
        total < 6 * windows + 10,
        "{total} log lines for {FLOOD} refused connections:\n{flood_log}"
    );
    assert!(
        flood_log.len() < 64 * 1024,
        "{} bytes of log for {FLOOD} refused connections",
        flood_log.len()
    );
}
