//! A real OpenSSH server for the tests: `/usr/sbin/sshd` on a loopback
//! address and a free port, in the foreground (`-D -e -f <config>`), with a
//! host key, a client key and a configuration generated into a temporary
//! directory. The client side is an ssh configuration file (`ssh -F`) in the
//! same directory, handed to the library through
//! [`rpmem::OptionsBuilder::ssh_args`] or a wrapper script for `RPMEM_SSH`.
//!
//! Dropping the [`Sshd`] kills the server and every process it started
//! (connection handlers, shells, rpmemd).
//!
//! The ssh tests need the Debian packages `openssh-server` and
//! `openssh-client` (`.ci/install-deps` installs them). Without them a test
//! fails with a message that names the package, unless
//! `RPMEM_SKIP_SSH_TESTS=1` is set: then every ssh test returns early (it
//! passes) after saying so on stderr.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rpmem::{Launch, Options};

use crate::{TestEnv, CONTROL_TIMEOUT, DATA_TIMEOUT};

/// The OpenSSH server binary the harness runs.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The environment variable that skips the ssh tests when it is `1`.
pub const SKIP_ENV: &str = "RPMEM_SKIP_SSH_TESTS";
/// The Debian package with [`SSHD`].
pub const SERVER_PACKAGE: &str = "openssh-server";
/// The Debian package with `ssh` and `ssh-keygen`.
pub const CLIENT_PACKAGE: &str = "openssh-client";
/// sshd's privilege separation directory: sshd started as root refuses to
/// run without it.
pub const PRIVSEP_DIR: &str = "/run/sshd";
/// How long sshd may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the processes of a killed sshd may take to go away.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a free port (another process may take the port between
/// choosing it and sshd binding it).
const PORT_ATTEMPTS: u32 = 5;
/// Environment variables sshd accepts from the client (`AcceptEnv`); the
/// client sends them with `-o SetEnv=NAME=value`.
pub const ACCEPTED_ENV: [&str; 2] = ["RPMEMD_GLOBAL_CONFIG", "RPMEMD_SPIN_US"];

/// Why the ssh tests cannot run here, or `None` when they can: `skip` is
/// the value of [`SKIP_ENV`], `sshd` the server binary. Panics (the test
/// fails) with the package to install when a program is missing and
/// `skip` is not `1`.
pub fn skip_reason(sshd: &Path, skip: Option<&str>) -> Option<String> {
    if skip == Some("1") {
        return Some(format!("{SKIP_ENV}=1"));
    }
    if !sshd.exists() {
        panic!(
            "{} is missing: the ssh tests need an OpenSSH server; install the Debian \
             package {SERVER_PACKAGE} (apt-get install {SERVER_PACKAGE} {CLIENT_PACKAGE}, \
             or run .ci/install-deps), or set {SKIP_ENV}=1 to skip these tests",
            sshd.display()
        );
    }
    for program in ["ssh", "ssh-keygen"] {
        // Both print their version and usage on stderr: only whether they
        // run matters.
        match Command::new(program)
            .arg("-V")
            .stdin(Stdio::null())
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{program} is missing: the ssh tests need the OpenSSH client; install the \
                 Debian package {CLIENT_PACKAGE} (or run .ci/install-deps), or set \
                 {SKIP_ENV}=1 to skip these tests"
            ),
            Err(e) => panic!("cannot run {program}: {e}"),
            Ok(_) => {}
        }
    }
    None
}

/// The effective user id is root's.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Creates [`PRIVSEP_DIR`] (mode 0755) when sshd runs as root and it is
/// missing; sshd started by another user does not need it.
fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !is_root() || dir.is_dir() {
        return;
    }
    fs::create_dir_all(dir).unwrap_or_else(|e| {
        panic!("sshd needs its privilege separation directory {PRIVSEP_DIR}: mkdir: {e}")
    });
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {PRIVSEP_DIR}: {e}"));
}

/// The name of the user running the tests (the ssh login name).
fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `id -un`: {e}"));
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !name.is_empty(),
        "`id -un` gave no user name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// Generates an ed25519 key pair without a passphrase at `path` (and
/// `path.pub`).
pub fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({CLIENT_PACKAGE}): {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen -f {} failed ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A free TCP port on `ip` (bound and released at once).
fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::new(ip, 0))?
        .local_addr()?
        .port())
}

/// True when this machine can listen on the IPv6 loopback address `::1`.
pub fn ipv6_loopback_available() -> bool {
    TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)).is_ok()
}

/// One process of the process table: parent and state letter.
#[derive(Clone, Copy, Debug)]
struct ProcEntry {
    ppid: u32,
    state: char,
}

/// The process table from `/proc`.
fn process_table() -> HashMap<u32, ProcEntry> {
    let mut table = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return table;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold blanks and parentheses.
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid) {
            table.insert(pid, ProcEntry { ppid, state });
        }
    }
    table
}

/// Every descendant of `root` (children, their children, ...), zombies
/// included.
fn descendants_of(root: u32, table: &HashMap<u32, ProcEntry>) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, e) in table {
            if e.ppid == parent && !found.contains(pid) && *pid != root {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

/// The command name of a process (`/proc/<pid>/comm`).
pub fn process_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// True while `pid` exists and is not a zombie (unlike
/// [`crate::process_alive`], which counts a zombie as alive).
pub fn process_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: sending a signal to a process this harness started (or
        // one of its descendants); a vanished process only yields ESRCH.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A running OpenSSH server on a loopback address, with its keys and
/// configuration in a temporary directory. Killed with all its processes on
/// drop.
#[derive(Debug)]
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
    user: String,
}

impl Sshd {
    /// Starts sshd on 127.0.0.1; `None` when [`SKIP_ENV`] is `1` (a line
    /// on stderr says so). Panics when sshd cannot be started.
    pub fn start() -> Option<Sshd> {
        Sshd::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts sshd listening on `ip` (a loopback address) and a free port;
    /// `None` when [`SKIP_ENV`] is `1`.
    pub fn start_on(ip: IpAddr) -> Option<Sshd> {
        let skip = std::env::var(SKIP_ENV).ok();
        if let Some(reason) = skip_reason(Path::new(SSHD), skip.as_deref()) {
            eprintln!("skipping a test over real ssh: {reason}");
            return None;
        }
        ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("rpmem-sshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let base = dir.path().to_path_buf();
        let p = |name: &str| base.join(name);
        keygen(&p("host_ed25519"), "rpmem-e2e host key");
        keygen(&p("client_ed25519"), "rpmem-e2e client key");
        fs::copy(p("client_ed25519.pub"), p("authorized_keys"))
            .unwrap_or_else(|e| panic!("authorized_keys: {e}"));
        write(&p("known_hosts"), "");
        write(
            &p("ssh_config"),
            &format!(
                "# ssh client configuration of the rpmem ssh tests\n\
                 Host *\n\
                 \x20 IdentityFile {key}\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 UserKnownHostsFile {known}\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 StrictHostKeyChecking accept-new\n\
                 \x20 PasswordAuthentication no\n\
                 \x20 KbdInteractiveAuthentication no\n\
                 \x20 ConnectTimeout 10\n\
                 \x20 ServerAliveInterval 5\n\
                 \x20 ServerAliveCountMax 3\n\
                 \x20 LogLevel ERROR\n",
                key = p("client_ed25519").display(),
                known = p("known_hosts").display(),
            ),
        );
        write(
            &p("ssh"),
            &format!(
                "#!/bin/sh\n# ssh with the rpmem ssh tests' client configuration\nexec ssh -F '{}' \"$@\"\n",
                p("ssh_config").display()
            ),
        );
        fs::set_permissions(p("ssh"), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod ssh wrapper: {e}"));
        let user = current_user();

        let mut failures = Vec::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port =
                free_port(ip).unwrap_or_else(|e| panic!("no free TCP port on {ip} for sshd: {e}"));
            let addr = SocketAddr::new(ip, port);
            match launch(&base, addr) {
                Ok(child) => {
                    return Some(Sshd {
                        dir,
                        child,
                        addr,
                        user,
                    })
                }
                Err(why) => {
                    let in_use = why.contains("Address already in use");
                    failures.push(format!("attempt {attempt} on {addr}: {why}"));
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("sshd did not start: {}", failures.join("; "));
    }

    /// The address sshd listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The login name (the user running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The rpmem target: `user@127.0.0.1:PORT` or `user@[::1]:PORT`.
    pub fn target(&self) -> String {
        format!("{}@{}", self.user, self.addr)
    }

    /// Process id of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A path in the harness directory (`ssh_config`, `sshd.log`, keys).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The ssh client configuration file (for `ssh -F`).
    pub fn ssh_config(&self) -> PathBuf {
        self.path("ssh_config")
    }

    /// A wrapper script usable as `RPMEM_SSH` (one program): it runs
    /// `ssh -F <ssh_config> "$@"`.
    pub fn ssh_wrapper(&self) -> PathBuf {
        self.path("ssh")
    }

    /// The extra ssh arguments that select the test configuration.
    pub fn ssh_args(&self) -> Vec<String> {
        vec!["-F".to_owned(), self.ssh_config().display().to_string()]
    }

    /// Options that start `env`'s rpmemd through this server: ssh launch,
    /// [`Sshd::ssh_args`], `env`'s command, the test deadlines.
    pub fn options(&self, env: &TestEnv) -> Options {
        Options::builder()
            .launch(Launch::Ssh)
            .ssh_args(self.ssh_args())
            .command(env.command())
            .control_timeout(CONTROL_TIMEOUT)
            .data_timeout(DATA_TIMEOUT)
            .build()
    }

    /// Runs `remote_command` over ssh (batch mode, no terminal, stdin
    /// `/dev/null`); killed when it takes longer than [`CONTROL_TIMEOUT`].
    /// For short outputs only (they wait in the pipes until it ends).
    pub fn run(&self, remote_command: &str) -> Output {
        let mut child = Command::new(self.ssh_wrapper())
            .arg("-p")
            .arg(self.port().to_string())
            .args(["-T", "-oBatchMode=yes"])
            .arg(format!("{}@{}", self.user, self.addr.ip()))
            .arg(remote_command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"));
        let end = Instant::now() + CONTROL_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= end {
                signal(child.id(), libc::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("ssh: {e}"))
    }

    /// sshd's log so far (`-e`: everything it logs, at `VERBOSE`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// The running (not zombie) processes below sshd named `name`
    /// (`/proc/<pid>/comm`), e.g. `"rpmemd"`.
    pub fn remote_processes(&self, name: &str) -> Vec<u32> {
        descendants_of(self.pid(), &process_table())
            .into_iter()
            .filter(|pid| process_running(*pid) && process_name(*pid).as_deref() == Some(name))
            .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// Starts sshd with the configuration for `addr` written into `dir` and
/// waits (at most [`START_TIMEOUT`]) until it says it listens. On failure
/// sshd is gone and the error holds its log.
fn launch(dir: &Path, addr: SocketAddr) -> Result<Child, String> {
    let config = dir.join("sshd_config");
    let log_path = dir.join("sshd.log");
    write(&config, &sshd_config(dir, addr));
    let log = fs::File::create(&log_path).unwrap_or_else(|e| panic!("sshd.log: {e}"));
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
    let read_log = || fs::read_to_string(&log_path).unwrap_or_default();
    let end = Instant::now() + START_TIMEOUT;
    let why = loop {
        if read_log().contains("Server listening on") {
            return Ok(child);
        }
        match child.try_wait() {
            Ok(Some(status)) => break format!("sshd {status}: {}", read_log().trim()),
            Ok(None) => {}
            Err(e) => break format!("waiting for sshd: {e}"),
        }
        if Instant::now() >= end {
            break format!(
                "sshd did not listen within {START_TIMEOUT:?}: {}",
                read_log().trim()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    kill_tree(&mut child);
    Err(why)
}

/// Kills `child` and every process below it, and reaps `child`. Bounded
/// by [`STOP_TIMEOUT`].
fn kill_tree(child: &mut Child) {
    let root = child.id();
    let end = Instant::now() + STOP_TIMEOUT;
    // Freeze the whole tree first: a stopped process forks nothing, and the
    // children of a living process stay its children (found through /proc).
    // Killing from the top would let a child forked at that moment escape
    // to init. (The processes below sshd call setsid: no process group
    // holds them all.)
    let mut frozen = vec![root];
    signal(root, libc::SIGSTOP);
    loop {
        let table = process_table();
        let mut settled = true;
        for pid in descendants_of(root, &table) {
            if !frozen.contains(&pid) {
                signal(pid, libc::SIGSTOP);
                frozen.push(pid);
                settled = false;
            }
        }
        // Stopped, or ended, or already reaped.
        let all_stopped = frozen.iter().all(|pid| {
            table
                .get(pid)
                .is_none_or(|e| matches!(e.state, 'T' | 't' | 'Z' | 'X'))
        });
        if (settled && all_stopped) || Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for pid in frozen.iter().rev() {
        signal(*pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// The server configuration: listen on `addr` only, keys and pid file in
/// `dir`, public key login only, no PAM, no strict modes (the directory is
/// in /tmp), root allowed (CI runs as root).
fn sshd_config(dir: &Path, addr: SocketAddr) -> String {
    let p = |name: &str| dir.join(name).display().to_string();
    format!(
        "# sshd configuration of the rpmem ssh tests\n\
         ListenAddress {addr}\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PermitRootLogin yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitUserEnvironment no\n\
         PrintMotd no\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         AcceptEnv {accept}\n\
         LogLevel VERBOSE\n",
        host_key = p("host_ed25519"),
        pid = p("sshd.pid"),
        keys = p("authorized_keys"),
        accept = ACCEPTED_ENV.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_variable_skips() {
        let reason = skip_reason(Path::new("/nonexistent/sshd"), Some("1"));
        assert_eq!(reason.as_deref(), Some("RPMEM_SKIP_SSH_TESTS=1"));
    }

    #[test]
    #[should_panic(expected = "install the Debian package openssh-server")]
    fn missing_sshd_fails_and_names_the_package() {
        skip_reason(Path::new("/nonexistent/sshd"), None);
    }

    #[test]
    #[should_panic(expected = "RPMEM_SKIP_SSH_TESTS=1 to skip")]
    fn missing_sshd_with_another_skip_value_fails() {
        skip_reason(Path::new("/nonexistent/sshd"), Some("0"));
    }

    #[test]
    fn process_tree_of_this_process() {
        let me = std::process::id();
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let below = descendants_of(me, &process_table());
        assert!(below.contains(&child.id()), "{below:?}");
        assert_eq!(process_name(child.id()).as_deref(), Some("sleep"));
        assert!(process_running(child.id()));
        kill_tree(&mut child);
        assert!(!process_running(child.id()));
    }

    #[test]
    fn configuration_names_the_address_and_the_files() {
        let dir = Path::new("/tmp/x");
        let v4 = sshd_config(dir, "127.0.0.1:2222".parse().expect("addr"));
        assert!(v4.contains("ListenAddress 127.0.0.1:2222\n"), "{v4}");
        assert!(
            v4.contains("AuthorizedKeysFile /tmp/x/authorized_keys\n"),
            "{v4}"
        );
        assert!(v4.contains("PidFile /tmp/x/sshd.pid\n"), "{v4}");
        assert!(
            v4.contains("StrictModes no\nUsePAM no\nPermitRootLogin yes\n"),
            "{v4}"
        );
        let v6 = sshd_config(dir, "[::1]:2222".parse().expect("addr"));
        assert!(v6.contains("ListenAddress [::1]:2222\n"), "{v6}");
    }
}
