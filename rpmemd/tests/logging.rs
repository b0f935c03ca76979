//! rpmemd logging through the built binary: the log file (mode, appending, level), syslog
//! through a socket of our own (priorities, level), stderr before the configuration is read,
//! and stdout kept free of anything but protocol bytes.

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

const NOT_IMPLEMENTED: &str = "sessions are not implemented in this build";

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

    /// A command running rpmemd with `-c rpmemd.conf` and no other configuration source.
    fn command(&self, extra_args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .arg("-c")
            .arg(self.path("rpmemd.conf"))
            .args(extra_args)
            .env("HOME", self.dir.path())
            .env("RPMEMD_GLOBAL_CONFIG", self.path("no-global.conf"))
            .env_remove("RPMEMD_SYSLOG_SOCKET")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, extra_args: &[&str]) -> Output {
        self.command(extra_args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stdout.is_empty(),
        "stdout: {:?}",
        text(&output.stdout)
    );
    // The client learns why on stderr even though the log goes to the file.
    assert!(text(&output.stderr).contains(NOT_IMPLEMENTED));
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(file_levels(&content), levels_up_to(level), "{content}");
    assert!(
        content.contains(&format!("]: err: {NOT_IMPLEMENTED}\n")),
        "{content}"
    );
    let pid = format!("rpmemd[{}]: ", output_pid(&content));
    assert!(content.lines().all(|l| l.contains(&pid)), "{content}");
}

/// The pid in the first log line (all lines of one run carry the same one).
fn output_pid(content: &str) -> String {
    content
        .split_once("rpmemd[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(pid, _)| pid.to_owned())
        .unwrap_or_default()
}

#[test]
fn log_file_is_created_0640_and_appended() {
    let scratch = Scratch::new();
    let log = scratch.path("new.log");
    scratch.config(&format!("log-file = {}\nlog-level = info\n", log.display()));
    let first = scratch.run(&[]);
    assert_eq!(first.status.code(), Some(1));
    let mode = fs::metadata(&log).map(|m| m.permissions().mode() & 0o7777);
    let mode = mode.unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert_eq!(mode & !0o640, 0, "mode {mode:o} is looser than 0640");
    let after_first = fs::read_to_string(&log).unwrap_or_default();
    assert!(after_first.contains(NOT_IMPLEMENTED));

    let second = scratch.run(&[]);
    assert_eq!(second.status.code(), Some(1));
    let after_second = fs::read_to_string(&log).unwrap_or_default();
    assert!(after_second.starts_with(&after_first), "not appended");
    assert_eq!(
        after_second.matches(NOT_IMPLEMENTED).count(),
        2,
        "{after_second}"
    );
}

#[test]
fn existing_log_file_keeps_its_content() {
    let scratch = Scratch::new();
    let log = scratch.path("old.log");
    assert!(fs::write(&log, "previous line\n").is_ok());
    scratch.config(&format!("log-file = {}\n", log.display()));
    let output = scratch.run(&[]);
    assert_eq!(output.status.code(), Some(1));
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert!(content.starts_with("previous line\n"), "{content}");
    assert!(content.contains(NOT_IMPLEMENTED), "{content}");
}

#[test]
fn log_file_that_cannot_be_opened_stops_rpmemd() {
    let scratch = Scratch::new();
    let log = scratch.path("no/such/dir/rpmemd.log");
    scratch.config(&format!("log-file = {}\n", log.display()));
    let output = scratch.run(&[]);
    assert_eq!(output.status.code(), Some(4));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot open log file {}", log.display())),
        "{stderr}"
    );
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
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stdout.is_empty(),
        "stdout: {:?}",
        text(&output.stdout)
    );
    assert!(text(&output.stderr).contains(NOT_IMPLEMENTED));

    // LOG_USER (8) + severity: err 3, warning 4, notice 5, info 6, debug 7.
    let priorities: BTreeSet<u8> = messages.iter().filter_map(|m| priority(m)).collect();
    assert_eq!(
        priorities,
        expected.iter().copied().collect::<BTreeSet<u8>>(),
        "{messages:#?}"
    );
    assert_eq!(priorities.len(), expected.len());
    assert!(
        messages.iter().all(|m| m.contains(" rpmemd[")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("<11>") && m.ends_with(&format!("]: {NOT_IMPLEMENTED}"))),
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
    assert_eq!(output.status.code(), Some(1));
    assert!(!log.exists());
    assert_eq!(messages.len(), 1, "{messages:#?}");
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
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("rpmemd.conf:5"), "{stderr}");
    assert!(stderr.contains("\nbogus line"), "{stderr}");
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
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach syslog at {}", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("rpmemd: notice: configuration\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("rpmemd: info: "), "{stderr}");
    // Reported once, not twice, when the log itself is stderr.
    assert_eq!(stderr.matches(NOT_IMPLEMENTED).count(), 1, "{stderr}");
}

#[test]
fn remove_request_is_logged_and_refused() {
    let scratch = Scratch::new();
    let log = scratch.path("rpmemd.log");
    scratch.config(&format!("log-file = {}\nlog-level = info\n", log.display()));
    let output = scratch.run(&["-r", "pool.set", "-f", "-s"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(text(&output.stderr).contains("removing pools is not implemented in this build"));
    let content = fs::read_to_string(&log).unwrap_or_default();
    assert!(content.contains("info: removing 'pool.set'"), "{content}");
}

#[test]
fn stdout_is_empty_on_every_failure_path() {
    let scratch = Scratch::new();
    scratch.config(&format!(
        "log-file = {}\nlog-level = debug\n",
        scratch.path("l.log").display()
    ));
    for args in [&["--bogus"][..], &["-c", "/nonexistent/x.conf"], &[]] {
        let output = scratch.run(args);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: {:?}",
            text(&output.stdout)
        );
    }
}

#[test]
fn log_path_helpers_agree() {
    // Guard for the helpers above: a line in the documented format yields its level.
    let line = "2024-01-01T00:00:00.000Z rpmemd[7]: notice: user: x\n";
    assert_eq!(file_levels(line), BTreeSet::from(["notice".to_owned()]));
    assert_eq!(output_pid(line), "7");
    assert_eq!(priority("<13>Jan  1 00:00:00 rpmemd[7]: x"), Some(13));
    assert!(Path::new(BIN).is_file());
}
