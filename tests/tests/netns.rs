//! rpmem across two hosts, not one (issue 15): three network namespaces the
//! test makes, with addresses of its own choosing.
//!
//! ```text
//!   B (client) 10.231.1.2 --veth-- 10.231.1.1  A (sshd + rpmemd)  10.231.2.1 --veth-- 10.231.2.2 C
//! ```
//!
//! sshd runs in A on 10.231.1.1 and starts rpmemd as on any remote host;
//! the client in B creates a pool with 2 lanes over real ssh and persists
//! through both. rpmemd's `SSH_CONNECTION` names B's address as the client
//! and A's as the server, and its data path listens on A's. C reaches A
//! (sshd answers it), but rpmemd's data port must not take C's connections.
//! A raw `AF_PACKET` capture on B's end of the A-B veth holds every byte
//! the client exchanged with A: a known payload pattern must never be among
//! them.
//!
//! Needs root (network namespaces, veth pairs, packet capture) and
//! `ip` (iproute2) and OpenSSH: as another user each test says why on
//! stderr and returns. The namespaces are removed on every exit of the test
//! (a guard, also when it fails), and ones left by a killed earlier run are
//! removed first.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rpmem::{RemotePool, PERSIST_RELAXED};
use rpmem_e2e::sshd::Sshd;
use rpmem_e2e::{attr, get, put, region, TestEnv};

const MIB: u64 = 1 << 20;
const POOL: u64 = 4 * MIB;
/// Prefix of every namespace this test makes (`<prefix><pid>-<tag><host>`).
const PREFIX: &str = "rpmem-nt-";
/// A payload nobody else sends: 64 bytes, repeated over 64 KiB.
const PAYLOAD: &[u8; 64] = b"rpmem netns payload pattern: must never be seen on the wire 0042";

/// Why this process cannot make namespaces, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "not root: network namespaces and veth pairs need root (CI runs as root)".into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is missing".into()),
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three namespaces A, B, C joined as drawn above; removed on drop.
struct Hosts {
    names: [String; 3],
}

impl Hosts {
    const A_B: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 2);
    const A_C: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 1);
    const C: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 2);

    fn new(tag: &str) -> Hosts {
        remove_stale();
        let pid = std::process::id();
        let names = ["a", "b", "c"].map(|h| format!("{PREFIX}{pid}-{tag}{h}"));
        // The guard exists before the first namespace does.
        let hosts = Hosts { names };
        let [a, b, c] = &hosts.names;
        for n in [a, b, c] {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", a, "link", "add", "vab", "type", "veth", "peer", "name", "vba", "netns", b,
        ]);
        ip(&[
            "-n", a, "link", "add", "vac", "type", "veth", "peer", "name", "vca", "netns", c,
        ]);
        for (n, dev, addr) in [
            (a, "vab", Self::A_B),
            (b, "vba", Self::B),
            (a, "vac", Self::A_C),
            (c, "vca", Self::C),
        ] {
            ip(&["-n", n, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        // C reaches A's B-side address through A (A does not forward: the
        // address is its own).
        ip(&[
            "-n",
            c,
            "route",
            "add",
            "10.231.1.0/24",
            "via",
            &Self::A_C.to_string(),
        ]);
        hosts
    }

    fn a(&self) -> &str {
        &self.names[0]
    }
    fn b(&self) -> &str {
        &self.names[1]
    }
    fn c(&self) -> &str {
        &self.names[2]
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for n in &self.names {
            // Deleting a namespace removes its veth ends (and so the pairs).
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Removes namespaces of earlier runs whose process is gone (a run killed
/// before its guard could clean up).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Moves the calling thread into namespace `name` (only this thread, and
/// what it starts afterwards: processes, sockets).
fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("open /run/netns/{name}: {e}"));
    // SAFETY: setns on a namespace file we hold open; affects only the
    // calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a thread in namespace `name`.
fn in_ns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            enter(name);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A raw capture of every frame on one interface of one namespace.
struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Capture {
    fn start(ns: &str, dev: &str) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (ns, dev) = (ns.to_owned(), dev.to_owned());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, frames) = (Arc::clone(&stop), Arc::clone(&frames));
            thread::spawn(move || {
                enter(&ns);
                let proto = (libc::ETH_P_ALL as u16).to_be();
                // SAFETY: plain socket(2) call.
                let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
                assert!(
                    fd >= 0,
                    "AF_PACKET socket: {}",
                    std::io::Error::last_os_error()
                );
                let cname = std::ffi::CString::new(dev.clone()).unwrap();
                // SAFETY: a NUL-terminated name.
                let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
                assert_ne!(index, 0, "no interface {dev} in {ns}");
                // SAFETY: sockaddr_ll is plain data; zero is a valid value.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = index as i32;
                // SAFETY: binds fd to a sockaddr_ll of the right size.
                let rc = unsafe {
                    libc::bind(
                        fd,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 100_000,
                };
                // SAFETY: SO_RCVTIMEO with a timeval.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        (&tv as *const libc::timeval).cast(),
                        std::mem::size_of::<libc::timeval>() as u32,
                    )
                };
                ready_tx.send(()).unwrap();
                let mut buf = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: recv into a buffer of buf.len() bytes.
                    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if n > 0 {
                        frames.lock().unwrap().push(buf[..n as usize].to_vec());
                    }
                }
                // SAFETY: our descriptor, closed once.
                unsafe { libc::close(fd) };
            })
        };
        ready_rx.recv().expect("capture thread started");
        Capture {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    /// Stops and returns the frames captured.
    fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("capture thread");
        }
        std::mem::take(&mut *self.frames.lock().unwrap())
    }
}

/// The TCP ports (source, destination) of an Ethernet + IPv4 + TCP frame.
fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 6 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let tcp = frame.get(14 + ihl..14 + ihl + 4)?;
    Some((
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    ))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The `SSH_CONNECTION` of process `pid`.
fn ssh_connection(pid: u32) -> String {
    let env = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    env.split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"SSH_CONNECTION="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("rpmemd has SSH_CONNECTION")
}

/// What one run across the namespaces saw.
struct Run {
    frames: Vec<Vec<u8>>,
    data_port: u16,
    /// C's attempt at the data port: Ok(how it ended) or the connect error.
    from_c: Result<String, std::io::Error>,
    c_reaches_sshd: bool,
}

/// sshd + rpmemd in A, the client in B (2 lanes, persists through both,
/// checked on the part file), C tries the data port; the capture runs on
/// B's veth throughout.
fn run(tag: &str) -> Option<Run> {
    if let Some(why) = skip_reason() {
        eprintln!("netns test skipped: {why}");
        return None;
    }
    let hosts = Hosts::new(tag);
    // `None`: the ssh tests are skipped (RPMEM_SKIP_SSH_TESTS=1; it said so).
    let sshd = in_ns(hosts.a(), || Sshd::start_on(IpAddr::V4(Hosts::A_B)))?;
    let env = TestEnv::new();
    let parts = env.poolset("two.set", &[POOL], false);
    let opts = sshd.options(&env);
    let target = sshd.target();
    let capture = Capture::start(hosts.b(), "vba");
    let r = region(POOL);
    let block: Vec<u8> = PAYLOAD.iter().copied().cycle().take(65_536).collect();
    let (data_port, rpmemd_env) = in_ns(hosts.b(), || {
        let pool = RemotePool::create(&target, "two.set", r.clone(), 2, Some(&attr(1)), &opts)
            .unwrap_or_else(|e| panic!("create from B over ssh: {e}\nsshd log:\n{}", sshd.log()));
        assert_eq!(pool.nlanes(), 2, "two lanes");
        let rpmemd = sshd.remote_processes("rpmemd");
        assert_eq!(rpmemd.len(), 1, "one rpmemd below sshd");
        let rpmemd_env = ssh_connection(rpmemd[0]);
        for lane in 0..2u32 {
            let off = 4096 + u64::from(lane) * 65_536;
            put(&r, off, &block);
            pool.persist(lane, off, block.len() as u64, 0)
                .unwrap_or_else(|e| panic!("persist on lane {lane}: {e}"));
            pool.persist(lane, off + 2 * 65_536, 64, PERSIST_RELAXED)
                .unwrap_or_else(|e| panic!("relaxed persist on lane {lane}: {e}"));
        }
        let port = pool.data_port();
        // C's turn while the session is open.
        let from_c = in_ns(hosts.c(), || {
            try_data_port(SocketAddr::new(IpAddr::V4(Hosts::A_B), port))
        });
        let c_reaches_sshd = in_ns(hosts.c(), || {
            TcpStream::connect_timeout(&sshd.addr(), Duration::from_secs(3)).is_ok()
        });
        pool.close().unwrap_or_else(|e| panic!("close: {e}"));
        (port, (rpmemd_env, from_c, c_reaches_sshd))
    });
    let frames = capture.finish();
    let (rpmemd_env, from_c, c_reaches_sshd) = rpmemd_env;
    // SSH_CONNECTION: client B, server A, and rpmemd listened on A's address.
    let fields: Vec<&str> = rpmemd_env.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "SSH_CONNECTION {rpmemd_env:?}");
    assert_eq!(
        fields[0],
        Hosts::B.to_string(),
        "client side of {rpmemd_env:?}"
    );
    assert_eq!(
        fields[2],
        Hosts::A_B.to_string(),
        "server side of {rpmemd_env:?}"
    );
    assert_ne!(fields[0], fields[2]);
    let log = env.log();
    assert!(
        log.contains(&format!(
            "data path listening on {}:{data_port}",
            Hosts::A_B
        )),
        "rpmemd's listen address:\n{log}"
    );
    // Both lanes' bytes are in the part file (past the 4 KiB header).
    for lane in 0..2u64 {
        let off = 4096 + lane * 65_536;
        assert_eq!(
            TestEnv::file_bytes(&parts[0], off, block.len()),
            block,
            "lane {lane}'s persist on the target"
        );
        assert_eq!(get(&r, off, 64), block[..64].to_vec());
    }
    drop(sshd);
    drop(hosts);
    Some(Run {
        frames,
        data_port,
        from_c,
        c_reaches_sshd,
    })
}

/// Connects to the data port and sends nothing: how the connection ended
/// within 2 s (rpmemd waits 3 s for a hello from a peer it accepts).
fn try_data_port(addr: SocketAddr) -> Result<String, std::io::Error> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 64];
    let how = match s.read(&mut buf) {
        Ok(0) => format!("closed by rpmemd after {:?}", start.elapsed()),
        Ok(n) => format!("{n} bytes from rpmemd"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            "still open after 2 s".to_owned()
        }
        Err(e) => format!("{e} after {:?}", start.elapsed()),
    };
    let _ = s.write_all(&[0; 48]);
    let _ = s.shutdown(Shutdown::Both);
    Ok(how)
}

#[test]
fn two_hosts_lanes_connect_from_the_client_host() {
    let Some(run) = run("l") else { return };
    // C reaches A: a refusal at the data port would be rpmemd's, not routing's.
    assert!(
        run.c_reaches_sshd,
        "C must reach A (sshd on {})",
        Hosts::A_B
    );
    run.check_capture();
}

#[test]
fn a_third_host_is_refused_at_the_data_port() {
    let Some(run) = run("r") else { return };
    assert!(
        run.c_reaches_sshd,
        "C must reach A (sshd on {})",
        Hosts::A_B
    );
    match &run.from_c {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "C's connect: {e}"),
        Ok(how) => assert!(
            how.starts_with("closed by rpmemd") || how.contains("reset"),
            "C's connection to the data port {}: {how} (rpmemd must accept only the ssh \
             client's address)",
            run.data_port
        ),
    }
}

impl Run {
    /// The capture saw the session: ssh and the data path's bytes.
    fn check_capture(&self) {
        let ports: Vec<(u16, u16)> = self.frames.iter().filter_map(|f| tcp_ports(f)).collect();
        let data_bytes: usize = self
            .frames
            .iter()
            .filter(|f| {
                tcp_ports(f).is_some_and(|(s, d)| s == self.data_port || d == self.data_port)
            })
            .map(Vec::len)
            .sum();
        assert!(
            data_bytes > 2 * 65_536,
            "only {data_bytes} bytes to or from the data port {} in {} frames captured on the A-B \
             veth ({} TCP)",
            self.data_port,
            self.frames.len(),
            ports.len()
        );
    }
}

#[test]
fn two_hosts_payload_never_on_the_wire() {
    let Some(run) = run("p") else { return };
    run.check_capture();
    let seen = run
        .frames
        .iter()
        .filter(|f| contains(f, &PAYLOAD[..32]))
        .count();
    assert_eq!(
        seen,
        0,
        "the payload pattern is in {seen} of the {} frames captured on the A-B veth",
        run.frames.len()
    );
}
