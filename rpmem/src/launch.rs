//! Starting rpmemd: over ssh exactly as librpmem does, or directly on this
//! host (local mode), with its stdin and stdout on socket pairs (the
//! out-of-band channel) and its stderr collected by a reader thread.
//!
//! librpmem's argv (`rpmem_ssh.c`):
//!
//! ```text
//! <RPMEM_SSH> [-p <port>] -T [-4] -oBatchMode=yes [<user>@]<host> '<RPMEM_CMD> <args>'
//! ```
//!
//! `-T` keeps ssh from allocating a terminal (the channel carries binary
//! data), `-oBatchMode=yes` makes it fail instead of asking for a password.
//! Extra arguments from [`Options::ssh_args`](crate::Options::ssh_args) go
//! right after the program.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::options::{Launch, Options};
use crate::target::Target;

/// Most bytes of rpmemd's stderr kept (the last ones win).
const STDERR_KEEP: usize = 16 * 1024;
/// How long dropping a [`Remote`] whose child has exited waits for the
/// stderr reader thread to see end of file, so that it can be joined: a
/// library unloaded after `close` (libpmemobj `dlclose`s librpmem) must
/// leave no thread of its own running.
const READER_JOIN_GRACE: Duration = Duration::from_secs(1);

/// What to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    /// argv, program first.
    pub(crate) argv: Vec<String>,
    /// `"ssh"` or `"rpmemd"`: who the child is, for messages.
    pub(crate) who: &'static str,
    /// Remove `SSH_CONNECTION` from the child's environment (local mode).
    pub(crate) strip_ssh_connection: bool,
    /// Set `SSH_CONNECTION` to this in the child's environment (local mode
    /// on a non-loopback address of this host, for RDMA: rpmemd listens on
    /// the address sshd would have given it).
    pub(crate) ssh_connection: Option<String>,
}

impl Spec {
    /// The command line for messages.
    pub(crate) fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// librpmem's ssh argv for running `remote_cmd` on `target`.
pub(crate) fn ssh_argv(
    ssh: &str,
    extra: &[String],
    ipv4: bool,
    target: &Target,
    remote_cmd: &str,
) -> Vec<String> {
    let mut argv = vec![ssh.to_owned()];
    argv.extend(extra.iter().cloned());
    if let Some(port) = target.port() {
        argv.push("-p".to_owned());
        argv.push(port.to_string());
    }
    argv.push("-T".to_owned());
    if ipv4 {
        argv.push("-4".to_owned());
    }
    argv.push("-oBatchMode=yes".to_owned());
    argv.push(target.ssh_destination());
    argv.push(remote_cmd.to_owned());
    argv
}

/// The remote command line: `RPMEM_CMD` followed by `args`, each quoted for
/// the remote shell when it needs it (librpmem appended them unquoted).
pub(crate) fn remote_command_line(cmd: &str, args: &[&str]) -> String {
    let mut line = cmd.to_owned();
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    line
}

/// `text` as one word of a POSIX shell: unchanged when it only holds safe
/// characters, otherwise in single quotes.
pub(crate) fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if safe {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The spec for one session (`args` empty) or `--remove` on `target`.
pub(crate) fn spec(
    opts: &Options,
    target: &Target,
    command: &str,
    args: &[&str],
) -> Result<Spec, Error> {
    match opts.launch {
        Launch::Ssh => Ok(Spec {
            argv: ssh_argv(
                &opts.ssh,
                &opts.ssh_args,
                opts.ssh_ipv4,
                target,
                &remote_command_line(command, args),
            ),
            who: "ssh",
            strip_ssh_connection: false,
            ssh_connection: None,
        }),
        Launch::Local => {
            let ssh_connection = if target.is_loopback() {
                None
            } else {
                match local_rdma_address(opts, target) {
                    Some(ip) => Some(format!("{ip} 0 {ip} 0")),
                    None => {
                        return Err(Error::InvalidTarget {
                            target: target.to_string(),
                            reason: "local launch (RPMEM_LAUNCH=local) needs a loopback target \
                                     (localhost, 127.0.0.0/8 or ::1), or with \
                                     RPMEM_PROVIDER=verbs an IP address of this host"
                                .to_owned(),
                        });
                    }
                }
            };
            let mut argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            if argv.is_empty() {
                return Err(Error::InvalidArgument(
                    "the rpmemd command (RPMEM_CMD) is empty".to_owned(),
                ));
            }
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            Ok(Spec {
                argv,
                who: "rpmemd",
                strip_ssh_connection: ssh_connection.is_none(),
                ssh_connection,
            })
        }
    }
}

/// With the verbs transport, a target that is an IP address of this host
/// (one a socket can bind to): local launch then runs rpmemd here, listening
/// on that address as it would for an ssh connection to it (RDMA cannot use
/// loopback).
fn local_rdma_address(opts: &Options, target: &Target) -> Option<std::net::IpAddr> {
    if opts.transport != crate::options::Transport::Verbs {
        return None;
    }
    let ip: std::net::IpAddr = target.host().parse().ok()?;
    std::net::UdpSocket::bind((ip, 0)).ok().map(|_| ip)
}

/// rpmemd's stderr as collected so far.
#[derive(Debug, Default)]
struct StderrState {
    bytes: Vec<u8>,
    eof: bool,
}

/// The stderr collector shared by the reader thread and everyone who
/// describes a failure.
#[derive(Debug, Default)]
pub(crate) struct StderrLog {
    state: Mutex<StderrState>,
    changed: Condvar,
}

impl StderrLog {
    fn append(&self, data: &[u8]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.bytes.extend_from_slice(data);
        if s.bytes.len() > STDERR_KEEP {
            let cut = s.bytes.len() - STDERR_KEEP;
            s.bytes.drain(..cut);
        }
        self.changed.notify_all();
    }

    fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.eof = true;
        self.changed.notify_all();
    }

    /// Waits until the stream ended or `grace` passed; true if it ended.
    fn ended(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.eof {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = match self.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Waits until the stream ended or `grace` passed; returns the text.
    pub(crate) fn text(&self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.eof {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = match self.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        clean_text(&s.bytes)
    }
}

/// Stderr bytes as one line of text: lossy UTF-8, control characters
/// dropped, non-empty lines joined with "; ".
pub(crate) fn clean_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What failure descriptions need of the child, shareable with lanes.
#[derive(Debug)]
pub(crate) struct RemoteInfo {
    /// `"ssh"` or `"rpmemd"`.
    pub(crate) who: &'static str,
    /// Process id of the child.
    pub(crate) pid: u32,
    /// Its stderr.
    pub(crate) stderr: Arc<StderrLog>,
    /// How it ended, once its owner reaped it.
    reaped: Mutex<Option<String>>,
}

impl RemoteInfo {
    /// How the child ended, without reaping it; `None` while it runs.
    pub(crate) fn peek_exit(&self) -> Option<String> {
        if let Some(text) = self
            .reaped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(text);
        }
        if self.pid == 0 {
            return None;
        }
        let pid = libc::id_t::try_from(self.pid).ok()?;
        // SAFETY: siginfo_t is plain data; waitid only writes it. WNOWAIT
        // leaves the child to be reaped by its owner.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: reading the fields waitid filled in (si_pid is 0 when the
        // child has not changed state).
        let (si_pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if r != 0 || si_pid == 0 {
            return None;
        }
        Some(match code {
            libc::CLD_EXITED => format!("exited with status {status}"),
            libc::CLD_KILLED | libc::CLD_DUMPED => {
                format!("was killed by signal {status}{}", signal_name(status))
            }
            _ => "ended".to_owned(),
        })
    }

    /// rpmemd's own words about a failure: its stderr (waiting up to
    /// `grace` for the rest when it has ended), else how it ended. Never
    /// empty.
    ///
    /// A failure seen on a channel usually comes a moment before the process
    /// is seen to end, so this first waits up to `grace` for it to end.
    pub(crate) fn describe(&self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        let mut exit = self.peek_exit();
        while exit.is_none() && Instant::now() < deadline && self.pid != 0 {
            std::thread::sleep(Duration::from_millis(2));
            exit = self.peek_exit();
        }
        let wait = if exit.is_some() || self.pid == 0 {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        let text = self.stderr.text(wait);
        match (text.is_empty(), exit) {
            (false, Some(exit)) => format!("{text} ({} {exit})", self.who),
            (false, None) => text,
            (true, Some(exit)) => format!("{} {exit} and wrote nothing on stderr", self.who),
            (true, None) => format!("{} is still running and wrote nothing on stderr", self.who),
        }
    }
}

/// Outcome of a read from rpmemd's stdout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    /// Bytes were read.
    Data(usize),
    /// End of file: rpmemd closed its stdout (exited).
    Eof,
    /// The deadline passed.
    Timeout,
}

/// A started rpmemd (or ssh) with its channels.
#[derive(Debug)]
pub(crate) struct Remote {
    /// `None` for an in-process stand-in (unit tests).
    child: Option<Child>,
    stdin: Option<UnixStream>,
    stdout: UnixStream,
    reader: Option<std::thread::JoinHandle<()>>,
    info: Arc<RemoteInfo>,
    command: String,
    status: Option<ExitStatus>,
}

impl Remote {
    /// Starts `spec`. With `channel == false` stdin is `/dev/null` (for
    /// `--remove`).
    pub(crate) fn spawn(spec: &Spec, channel: bool) -> Result<Remote, Error> {
        let command = spec.display();
        let launch_err = |source: io::Error| Error::Launch {
            command: command.clone(),
            source,
        };
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(Error::InvalidArgument("empty command".to_owned()));
        };
        let (in_ours, in_theirs) = UnixStream::pair().map_err(launch_err)?;
        let (out_ours, out_theirs) = UnixStream::pair().map_err(launch_err)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdout(Stdio::from(OwnedFd::from(out_theirs)))
            .stderr(Stdio::piped());
        if channel {
            cmd.stdin(Stdio::from(OwnedFd::from(in_theirs)));
        } else {
            drop(in_theirs);
            cmd.stdin(Stdio::null());
        }
        if spec.strip_ssh_connection {
            cmd.env_remove("SSH_CONNECTION");
        }
        if let Some(value) = &spec.ssh_connection {
            cmd.env("SSH_CONNECTION", value);
        }
        let mut child = cmd.spawn().map_err(launch_err)?;
        // Our copies of the child's ends must go, or end of file never comes.
        drop(cmd);
        let stderr_log = Arc::new(StderrLog::default());
        let reader = child
            .stderr
            .take()
            .and_then(|err| collect_stderr(Box::new(err), &stderr_log));
        let pid = child.id();
        Remote::assemble(
            spec.who,
            Some(child),
            pid,
            channel.then_some(in_ours),
            out_ours,
            reader,
            stderr_log,
            command,
        )
    }

    /// A stand-in for a process: the other ends of `stdin` and `stdout`
    /// are served in this process, and `stderr` is read like a child's.
    #[cfg(test)]
    pub(crate) fn in_process(
        stdin: UnixStream,
        stdout: UnixStream,
        stderr: Box<dyn Read + Send>,
    ) -> Result<Remote, Error> {
        let log = Arc::new(StderrLog::default());
        let reader = collect_stderr(stderr, &log);
        Remote::assemble(
            "rpmemd",
            None,
            0,
            Some(stdin),
            stdout,
            reader,
            log,
            "(in-process rpmemd)".to_owned(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        who: &'static str,
        child: Option<Child>,
        pid: u32,
        stdin: Option<UnixStream>,
        stdout: UnixStream,
        reader: Option<std::thread::JoinHandle<()>>,
        stderr_log: Arc<StderrLog>,
        command: String,
    ) -> Result<Remote, Error> {
        if reader.is_none() {
            stderr_log.finish();
        }
        let set_nb = |s: &UnixStream| {
            s.set_nonblocking(true).map_err(|source| Error::Io {
                what: "making the channel to rpmemd non-blocking".to_owned(),
                source,
            })
        };
        let mut remote = Remote {
            info: Arc::new(RemoteInfo {
                who,
                pid,
                stderr: stderr_log,
                reaped: Mutex::new(None),
            }),
            child,
            stdin,
            stdout,
            reader,
            command,
            status: None,
        };
        if let Some(s) = &remote.stdin {
            if let Err(e) = set_nb(s) {
                remote.kill_and_reap();
                return Err(e);
            }
        }
        if let Err(e) = set_nb(&remote.stdout) {
            remote.kill_and_reap();
            return Err(e);
        }
        Ok(remote)
    }

    /// What failure descriptions need, shareable with lanes.
    pub(crate) fn info(&self) -> &Arc<RemoteInfo> {
        &self.info
    }

    /// The command line, for messages.
    pub(crate) fn command(&self) -> &str {
        &self.command
    }

    /// The fd of rpmemd's stdout: hangs up when rpmemd (or ssh) goes away.
    pub(crate) fn watch_fd(&self) -> RawFd {
        self.stdout.as_raw_fd()
    }

    /// Writes all of `bytes` to rpmemd's stdin before `deadline`.
    pub(crate) fn send_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), io::Error> {
        let Some(stdin) = &self.stdin else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        let fd = stdin.as_raw_fd();
        let mut done = 0usize;
        while done < bytes.len() {
            let rest = bytes.get(done..).unwrap_or(&[]);
            // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                done = done.saturating_add(n.unsigned_abs());
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    if !poll_one(fd, libc::POLLOUT, deadline)? {
                        return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
                    }
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what rpmemd's stdout has, waiting until `deadline`.
    pub(crate) fn recv_some(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<Recv> {
        let fd = self.stdout.as_raw_fd();
        loop {
            match (&self.stdout).read(buf) {
                Ok(0) => return Ok(Recv::Eof),
                Ok(n) => return Ok(Recv::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !poll_one(fd, libc::POLLIN, deadline)? {
                        return Ok(Recv::Timeout);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(Recv::Eof),
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes our end of rpmemd's stdin (it sees end of file).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the child to exit until `deadline`.
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let child = self.child.as_mut()?;
        let mut pause = Duration::from_micros(200);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.status = Some(st);
                    self.note_exit(&st);
                    return self.status;
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub(crate) fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
            if let Some(st) = self.status {
                self.note_exit(&st);
            }
        }
        self.status
    }

    /// Records how the child ended for `RemoteInfo::describe`.
    fn note_exit(&self, st: &ExitStatus) {
        *self.info.reaped.lock().unwrap_or_else(|p| p.into_inner()) = Some(describe_status(st));
    }

    /// Ends the session's process: closes stdin, waits until `deadline`
    /// for it to exit, kills it otherwise. Returns how it ended.
    pub(crate) fn finish(&mut self, deadline: Instant) -> Option<ExitStatus> {
        self.close_stdin();
        match self.wait_until(deadline) {
            Some(st) => Some(st),
            None => self.kill_and_reap(),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Never leave a zombie or a stray rpmemd behind.
        self.finish(Instant::now() + Duration::from_secs(1));
        if let Some(r) = self.reader.take() {
            // The reader ends at end of file, which the child's exit gives
            // a moment later: wait for it (bounded, for a grandchild that
            // holds stderr open) and join, so no thread outlives the
            // session. After `finish` the reader only returns.
            let exited = self.child.is_some() && self.status.is_some();
            if r.is_finished() || (exited && self.info.stderr.ended(READER_JOIN_GRACE)) {
                let _ = r.join();
            }
        }
    }
}

/// Starts the thread that collects `err` into `log`.
fn collect_stderr(
    mut err: Box<dyn Read + Send>,
    log: &Arc<StderrLog>,
) -> Option<std::thread::JoinHandle<()>> {
    let log = Arc::clone(log);
    std::thread::Builder::new()
        .name("rpmem-stderr".to_owned())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => log.append(buf.get(..n).unwrap_or(&[])),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            log.finish();
        })
        .ok()
}

/// Describes an exit status in words.
pub(crate) fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
        _ => "ended".to_owned(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

/// Waits until `fd` is ready for `events` or `deadline` passes; `Ok(false)`
/// on timeout. Hang-ups and errors count as ready (the next I/O call tells).
pub(crate) fn poll_one(fd: RawFd, events: libc::c_short, deadline: Instant) -> io::Result<bool> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = poll_ms(deadline - now);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

/// A poll timeout in milliseconds, rounded up, at least 1.
pub(crate) fn poll_ms(d: Duration) -> libc::c_int {
    let ms = d.as_micros().div_ceil(1000).max(1);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn target(t: &str) -> Target {
        Target::parse(t).expect("valid target")
    }

    #[rstest]
    #[case("host", false, &["ssh", "-T", "-oBatchMode=yes", "host", "rpmemd"])]
    #[case("alice@host:2222", false,
        &["ssh", "-p", "2222", "-T", "-oBatchMode=yes", "alice@host", "rpmemd"])]
    #[case("[::1]:22", true, &["ssh", "-p", "22", "-T", "-4", "-oBatchMode=yes", "::1", "rpmemd"])]
    fn ssh_argv_is_librpmems(#[case] t: &str, #[case] ipv4: bool, #[case] want: &[&str]) {
        assert_eq!(ssh_argv("ssh", &[], ipv4, &target(t), "rpmemd"), want);
    }

    #[test]
    fn ssh_extra_args_follow_the_program() {
        let argv = ssh_argv(
            "/usr/bin/ssh",
            &["-F".to_owned(), "/tmp/cfg".to_owned()],
            false,
            &target("h:1"),
            "rpmemd --remove x",
        );
        assert_eq!(
            argv,
            [
                "/usr/bin/ssh",
                "-F",
                "/tmp/cfg",
                "-p",
                "1",
                "-T",
                "-oBatchMode=yes",
                "h",
                "rpmemd --remove x"
            ]
        );
    }

    #[rstest]
    #[case("rpmemd", &[], "rpmemd")]
    #[case("rpmemd", &["--remove", "pool.set", "--force"], "rpmemd --remove pool.set --force")]
    #[case("/opt/rpmemd -c /x", &["--remove", "a b.set"], "/opt/rpmemd -c /x --remove 'a b.set'")]
    #[case("rpmemd", &["--remove", "it's;rm"], r"rpmemd --remove 'it'\''s;rm'")]
    #[case("rpmemd", &["--remove", ""], "rpmemd --remove ''")]
    fn remote_command_quotes_arguments(
        #[case] cmd: &str,
        #[case] args: &[&str],
        #[case] want: &str,
    ) {
        assert_eq!(remote_command_line(cmd, args), want);
    }

    #[test]
    fn local_spec_splits_the_command_and_needs_loopback() {
        let opts = Options::builder().launch(Launch::Local).build();
        let s = spec(
            &opts,
            &target("localhost"),
            "/bin/rpmemd  -c /x.conf",
            &["--remove", "a b"],
        )
        .expect("spec");
        assert_eq!(s.argv, ["/bin/rpmemd", "-c", "/x.conf", "--remove", "a b"]);
        assert!(s.strip_ssh_connection);
        assert_eq!(s.who, "rpmemd");
        let e = spec(&opts, &target("example.com"), "rpmemd", &[]).expect_err("not loopback");
        assert!(e.to_string().contains("loopback"), "{e}");
        let e = spec(&opts, &target("127.0.0.1"), "  ", &[]).expect_err("empty command");
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn local_verbs_spec_runs_rpmemd_on_an_address_of_this_host() {
        use crate::options::Transport;
        let verbs = Options::builder()
            .launch(Launch::Local)
            .transport(Transport::Verbs)
            .build();
        // Loopback: as for TCP.
        let s = spec(&verbs, &target("localhost"), "rpmemd", &[]).expect("spec");
        assert!(s.strip_ssh_connection && s.ssh_connection.is_none());
        // An address of TEST-NET-3 (documentation only) is not one of this host.
        let e = spec(&verbs, &target("203.0.113.77"), "rpmemd", &[]).expect_err("not local");
        assert!(e.to_string().contains("RPMEM_PROVIDER=verbs"), "{e}");
        // An address of this host (the source of a route, if there is one):
        // rpmemd gets SSH_CONNECTION naming it, as sshd would set it.
        let local = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|u| u.connect("192.0.2.1:9").map(|()| u))
            .and_then(|u| u.local_addr())
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
        if let Some(ip) = local {
            let s = spec(&verbs, &target(&ip.to_string()), "rpmemd", &[]).expect("spec");
            assert!(!s.strip_ssh_connection);
            assert_eq!(s.ssh_connection, Some(format!("{ip} 0 {ip} 0")));
            // TCP keeps local mode on loopback.
            let tcp = Options::builder().launch(Launch::Local).build();
            assert!(spec(&tcp, &target(&ip.to_string()), "rpmemd", &[]).is_err());
        }
    }

    #[test]
    fn ssh_spec_uses_options() {
        let opts = Options::builder().ssh("myssh").ssh_ipv4(true).build();
        let s = spec(&opts, &target("u@h"), "rpmemd -x", &["--remove", "p.set"]).expect("spec");
        assert_eq!(
            s.argv,
            [
                "myssh",
                "-T",
                "-4",
                "-oBatchMode=yes",
                "u@h",
                "rpmemd -x --remove p.set"
            ]
        );
        assert_eq!(s.who, "ssh");
        assert!(!s.strip_ssh_connection);
    }

    #[test]
    fn clean_text_joins_lines() {
        assert_eq!(clean_text(b"rpmemd: a\r\n\n  b \x07\n"), "rpmemd: a; b");
        assert_eq!(clean_text(b""), "");
        assert_eq!(clean_text(b"\xffx"), "\u{fffd}x");
    }

    #[test]
    fn spawn_collects_stderr_and_exit_status() {
        let s = Spec {
            argv: vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()],
            who: "rpmemd",
            strip_ssh_connection: true,
            ssh_connection: None,
        };
        let mut r = Remote::spawn(&s, true).expect("spawn");
        let mut buf = [0u8; 8];
        let got = r
            .recv_some(&mut buf, Instant::now() + Duration::from_secs(10))
            .expect("recv");
        assert_eq!(got, Recv::Eof);
        let info = Arc::clone(r.info());
        let text = info.describe(Duration::from_secs(5));
        assert!(text.contains("boom"), "{text}");
        assert!(text.contains("exited with status 3"), "{text}");
        let st = r
            .finish(Instant::now() + Duration::from_secs(5))
            .expect("status");
        assert_eq!(st.code(), Some(3));
        assert_eq!(describe_status(&st), "exited with status 3");
    }

    #[test]
    fn spawn_failure_names_the_command() {
        let s = Spec {
            argv: vec!["/nonexistent/rpmemd-xyz".into()],
            who: "rpmemd",
            strip_ssh_connection: true,
            ssh_connection: None,
        };
        let e = Remote::spawn(&s, true).expect_err("no such program");
        assert!(e.to_string().contains("/nonexistent/rpmemd-xyz"), "{e}");
    }

    #[test]
    fn recv_times_out_and_describe_says_still_running() {
        let s = Spec {
            argv: vec!["sleep".into(), "30".into()],
            who: "rpmemd",
            strip_ssh_connection: true,
            ssh_connection: None,
        };
        let mut r = Remote::spawn(&s, true).expect("spawn");
        let start = Instant::now();
        let got = r
            .recv_some(&mut [0u8; 4], Instant::now() + Duration::from_millis(50))
            .expect("recv");
        assert_eq!(got, Recv::Timeout);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(
            r.info().describe(Duration::from_millis(10)),
            "rpmemd is still running and wrote nothing on stderr"
        );
        let st = r.finish(Instant::now()).expect("killed");
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn channel_carries_bytes_both_ways() {
        let s = Spec {
            argv: vec!["cat".into()],
            who: "rpmemd",
            strip_ssh_connection: true,
            ssh_connection: None,
        };
        let mut r = Remote::spawn(&s, true).expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        r.send_all(b"hello", deadline).expect("send");
        let mut got = Vec::new();
        while got.len() < 5 {
            let mut buf = [0u8; 16];
            match r.recv_some(&mut buf, deadline).expect("recv") {
                Recv::Data(n) => got.extend_from_slice(&buf[..n]),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"hello");
        r.close_stdin();
        let st = r.wait_until(deadline).expect("cat exits at end of file");
        assert!(st.success());
    }

    #[test]
    fn shell_quote_cases() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
