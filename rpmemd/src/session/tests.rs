//! Unit tests of the session: listening address, grants, secrets, and
//! whole sessions driven through [`serve_to`](super::serve_to).

use super::*;
use rpmem_core::attr::PoolAttr;
use rpmem_core::negotiate;
use rpmem_core::oob::ClientEvent;
use rpmem_core::wire::oob::Provider;
use rpmem_core::wire::tcp::SECRET_LEN;
use rstest::rstest;

#[rstest]
#[case(None, "127.0.0.1:0")]
#[case(Some("10.0.0.2 51234 10.0.0.1 22"), "10.0.0.1:0")]
#[case(Some("::1 51234 ::1 22"), "[::1]:0")]
#[case(Some("2001:db8::2 4 2001:db8::1 22"), "[2001:db8::1]:0")]
#[case(Some("fe80::2%1 4 fe80::1%1 22"), "[fe80::1%1]:0")]
fn listens_on_the_server_side_of_ssh_connection(
    #[case] value: Option<&str>,
    #[case] expected: &str,
) {
    let addr = listen_addr(value).unwrap();
    assert_eq!(addr.to_string(), expected);
}

#[rstest]
#[case(None, None)]
#[case(Some("10.0.0.2 51234 10.0.0.1 22"), Some("10.0.0.2"))]
#[case(Some("2001:db8::2 4 2001:db8::1 22"), Some("2001:db8::2"))]
#[case(Some("fe80::2%1 4 fe80::1%1 22"), Some("fe80::2"))]
#[case(Some("client.example 4 10.0.0.1 22"), None)]
#[case(Some(""), None)]
fn data_connections_come_from_the_client_side_of_ssh_connection(
    #[case] value: Option<&str>,
    #[case] expected: Option<&str>,
) {
    assert_eq!(
        client_addr(value),
        expected.map(|a| a.parse::<std::net::IpAddr>().unwrap())
    );
}

#[rstest]
#[case("", "fewer than three fields")]
#[case("1.2.3.4 5", "fewer than three fields")]
#[case("1.2.3.4 5 host.example 22", "not an IP address")]
#[case("1.2.3.4 5 1.2.3.5%eth0 22", "an IPv4 address with a zone")]
#[case("::1 5 fe80::1%no-such-interface-x 22", "unknown IPv6 zone")]
fn bad_ssh_connection_values_are_named(#[case] value: &str, #[case] reason: &str) {
    let e = listen_addr(Some(value)).unwrap_err();
    assert_eq!(e.reason, reason);
    assert!(e.to_string().contains(&format!("{value:?}")));
}

#[rstest]
#[case(4, 0, 8192, false, 4)]
#[case(0, 0, 8192, false, 1)]
#[case(2000, 0, 8192, false, MAX_NLANES)]
#[case(64, 8, 8192, false, 8)]
#[case(1024, 0, 1 << 20, false, 255)]
#[case(u32::MAX, 1 << 40, 1 << 20, false, 255)]
#[case(1024, 0, 1 << 20, true, 15)]
fn lanes_granted_are_bounded(
    #[case] requested: u32,
    #[case] nthreads: usize,
    #[case] inline: u64,
    #[case] rdma: bool,
    #[case] expected: u32,
) {
    let g = negotiate::grant(requested, inline, &offer(nthreads, rdma));
    assert_eq!(g.nlanes, expected);
}

#[rstest]
#[case(0, 8192)]
#[case(1, 8)]
#[case(8192, 8192)]
#[case(u64::MAX, MAX_BUFF_SIZE)]
fn inline_buffer(#[case] asked: u64, #[case] granted: u64) {
    assert_eq!(
        negotiate::grant(1, asked, &offer(0, false)).inline_max,
        granted
    );
}

#[test]
fn secrets_are_fresh() {
    let a = fresh_secret().unwrap();
    let b = fresh_secret().unwrap();
    assert_ne!(a, b);
    assert_ne!(a, [0; SECRET_LEN]);
}

#[test]
fn only_our_tcp_provider_is_served() {
    let l = limits();
    assert!(l.providers.allows(Provider::TCP));
    assert!(!l.providers.allows(Provider::LIBFABRIC_SOCKETS));
    assert!(!l.providers.allows(Provider::LIBFABRIC_VERBS));
    assert_eq!(l.providers.allows(Provider::VERBS), cfg!(feature = "verbs"));
    assert_eq!(l.max_nlanes, MAX_NLANES);
}

/// What the client saw of one session driven through [`serve_to`].
struct Seen {
    events: Vec<ClientEvent>,
    ending: Ending,
    stderr: String,
}

/// Runs a session in a thread on socket pairs; `requests` gives the
/// bytes of each request once the previous event arrived (`None`: stop
/// sending and close stdin).
fn drive(
    poolset_dir: &std::path::Path,
    mut requests: impl FnMut(&mut rpmem_core::oob::Client, usize) -> Option<Vec<u8>>,
) -> Seen {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    let settings = Settings {
        poolset_dir: poolset_dir.to_path_buf(),
        persist_apm: false,
        persist_general: true,
        nthreads: 0,
        listen: listen_addr(None),
        peer: None,
        spin: tcp::DEFAULT_SPIN,
        tcp_plaintext: false,
        pool_options: crate::pool::PoolOptions::from_env(),
    };
    let (mut stdin, stdin_server) = UnixStream::pair().unwrap();
    let (mut stdout, mut stdout_server) = UnixStream::pair().unwrap();
    stdout
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let server = std::thread::spawn(move || {
        let mut errors = Vec::new();
        let ending = serve_to(
            &settings,
            stdin_server.as_fd(),
            &mut stdout_server,
            &mut errors,
            None,
        );
        (ending, String::from_utf8(errors).unwrap())
    });
    let mut client = rpmem_core::oob::Client::new();
    let mut events = Vec::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let (used, event) = client.handle_input(&pending).unwrap();
        pending.drain(..used);
        if let Some(event) = event {
            events.push(event);
            match requests(&mut client, events.len()) {
                Some(bytes) => stdin.write_all(&bytes).unwrap(),
                None => break,
            }
            continue;
        }
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
    }
    drop(stdin);
    let (ending, stderr) = server.join().unwrap();
    Seen {
        events,
        ending,
        stderr,
    }
}

fn open_request(client: &mut rpmem_core::oob::Client, name: &str) -> Vec<u8> {
    let req = rpmem_core::oob::OpenRequest {
        pool_size: 1 << 20,
        nlanes: 1,
        provider: Provider::TCP,
        buff_size: 8192,
        pool_desc: rpmem_core::wire::oob::PoolDesc::from_text(name).unwrap(),
    };
    client.send_open(&req).unwrap().to_vec()
}

fn create_request(client: &mut rpmem_core::oob::Client, name: &str, provider: Provider) -> Vec<u8> {
    let req = rpmem_core::oob::CreateRequest {
        pool_size: 1 << 20,
        nlanes: 1,
        provider,
        buff_size: 8192,
        attr: PoolAttr::ZERO,
        pool_desc: rpmem_core::wire::oob::PoolDesc::from_text(name).unwrap(),
    };
    client.send_create(&req).unwrap().to_vec()
}

fn assert_refused(seen: &Seen, request: MsgType, status: Status, words: &[&str]) {
    assert!(
        matches!(
            seen.events.last(),
            Some(ClientEvent::Failed { status: s, request: r }) if *s == status && *r == request
        ),
        "{:?}",
        seen.events
    );
    assert!(
        matches!(seen.ending, Ending::Refused { request: r, status: s } if r == request && s == status),
        "{}",
        seen.ending
    );
    // One line, `rpmemd: <reason>`, naming the cause.
    assert!(seen.stderr.starts_with("rpmemd: "), "{:?}", seen.stderr);
    assert!(seen.stderr.ends_with('\n'), "{:?}", seen.stderr);
    assert_eq!(seen.stderr.matches('\n').count(), 1, "{:?}", seen.stderr);
    for w in words {
        assert!(
            seen.stderr.contains(w),
            "{w:?} missing in {:?}",
            seen.stderr
        );
    }
}

#[test]
fn a_refused_open_tells_the_reason_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let seen = drive(dir.path(), |c, n| {
        (n == 1).then(|| open_request(c, "missing.set"))
    });
    assert_refused(&seen, MsgType::Open, Status::NoExist, &["missing.set"]);
}

#[test]
fn a_refused_create_tells_the_reason_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    // Too small for a pool: the pool module refuses it.
    std::fs::write(
        dir.path().join("tiny.set"),
        format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n4096 {}\n",
            dir.path().join("tiny.part").display()
        ),
    )
    .unwrap();
    let seen = drive(dir.path(), |c, n| {
        (n == 1).then(|| create_request(c, "tiny.set", Provider::TCP))
    });
    let Some(ClientEvent::Failed { status, .. }) = seen.events.last() else {
        panic!("{:?}", seen.events);
    };
    assert_refused(&seen, MsgType::Create, *status, &["tiny.set"]);
}

#[test]
fn a_create_the_server_machine_rejects_tells_the_reason_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let seen = drive(dir.path(), |c, n| {
        (n == 1).then(|| create_request(c, "p.set", Provider::LIBFABRIC_SOCKETS))
    });
    assert_refused(&seen, MsgType::Create, Status::ProvNoSup, &["provider"]);
}

#[test]
fn a_served_session_writes_nothing_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.set"),
        format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n{} {}\n",
            8 << 20,
            dir.path().join("ok.part").display()
        ),
    )
    .unwrap();
    let seen = drive(dir.path(), |c, n| match n {
        1 => Some(create_request(c, "ok.set", Provider::TCP)),
        2 => Some(c.send_close(0).unwrap().to_vec()),
        _ => None,
    });
    assert!(
        matches!(
            seen.events.as_slice(),
            [
                ClientEvent::Ready,
                ClientEvent::Created(_),
                ClientEvent::Closed
            ]
        ),
        "{:?}",
        seen.events
    );
    assert!(
        matches!(seen.ending, Ending::Closed(s) if s.is_success()),
        "{}",
        seen.ending
    );
    assert_eq!(seen.stderr, "");
}

#[rstest]
#[case("no such pool set", "rpmemd: no such pool set\n")]
#[case("line one\n  line two\n", "rpmemd: line one; line two\n")]
#[case("", "rpmemd: \n")]
fn refusal_lines_are_one_line(#[case] reason: &str, #[case] line: &str) {
    assert_eq!(refusal_line(reason), line);
}

#[test]
fn endings_map_to_exit_statuses_and_failure_words() {
    let closed = Ending::Closed(Status::Success);
    assert_eq!(closed.exit_status(), exit::Status::Success);
    assert_eq!(closed.failure_errno(), None);
    let refused = Ending::Refused {
        request: MsgType::Create,
        status: Status::ProvNoSup,
    };
    assert_eq!(refused.exit_status(), exit::Status::Success);
    assert_eq!(refused.failure_errno(), None);
    let signal = Ending::Signal(libc::SIGTERM);
    assert_eq!(signal.exit_status(), exit::Status::Failure);
    assert_eq!(signal.failure_errno(), Some(errno::ECONNABORTED));
    assert_eq!(signal.to_string(), "terminated by SIGTERM");
    assert_eq!(Ending::NoRequest.exit_status(), exit::Status::Failure);
}
