//! rpmemd sessions through the built binary: the out-of-band protocol on its stdin/stdout
//! (driven by the core's `oob::Client`), the TCP data path (driven by the core's lane
//! machine `StreamInitiator`), the part files on disk, refusals of hostile requests
//! and connections, PMDK's captured requests, and the ways a session ends.
//!
//! Every wait has a timeout: a hung rpmemd fails the test instead of hanging it.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rpmem_core::attr::PoolAttr;
use rpmem_core::oob::{Client, ClientEvent, CreateRequest, OpenRequest};
use rpmem_core::persist::{
    Chunk, LaneParams, Method, Placement, ReadSink, StreamInitiator, FLUSH_RELAXED, PERSIST_RELAXED,
};
use rpmem_core::wire::oob::{
    common_field, create_field, ext_flags, hdr_field, ExtRepr, MsgType, PersistMethod, PoolDesc,
    Provider, Response, Status, CLOSE_FLAGS_REMOVE,
};
use rpmem_core::wire::tcp::{
    FrameKind, FrameRepr, HelloAck, HelloAckRepr, HelloStatus, HELLO_ACK_LEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");
/// Longest any single wait may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Pool size of the test pools (one part).
const POOL_SIZE: u64 = 4 << 20;
/// Header size of pools with headers.
const HDR: u64 = 4096;

fn attr(sig: &[u8; 8], seed: u8) -> PoolAttr {
    let mut a = PoolAttr::ZERO;
    a.signature = *sig;
    a.major = 1;
    a.compat_features = 0;
    a.incompat_features = 0;
    a.poolset_uuid = [seed; 16];
    a.uuid = [seed.wrapping_add(1); 16];
    a.next_uuid = [seed.wrapping_add(2); 16];
    a.prev_uuid = [seed.wrapping_add(3); 16];
    a.user_flags = [seed.wrapping_add(4); 16];
    a
}

/// A scratch directory with a configuration, a pool set directory and a log file.
struct Env {
    dir: tempfile::TempDir,
    extra_config: String,
}

impl Env {
    fn new() -> Env {
        Env::with_config("persist-general = yes\n")
    }

    fn with_config(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let env = Env {
            dir,
            extra_config: extra.to_owned(),
        };
        assert!(fs::create_dir(env.path("sets")).is_ok());
        env.write_config();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self) {
        let text = format!(
            "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = debug\n{}",
            self.path("sets").display(),
            self.path("rpmemd.log").display(),
            self.extra_config
        );
        assert!(fs::write(self.path("rpmemd.conf"), text).is_ok());
    }

    /// Writes pool set `name` with one part `part` of [`POOL_SIZE`].
    fn poolset(&self, name: &str, part: &str, options: &str) -> PathBuf {
        let part_path = self.path(part);
        let text = format!(
            "PMEMPOOLSET\n{options}{} {}\n",
            POOL_SIZE,
            part_path.display()
        );
        assert!(fs::write(self.path("sets").join(name), text).is_ok());
        part_path
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("rpmemd.log")).unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(self.path("rpmemd.conf"))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("RPMEMD_GLOBAL_CONFIG", self.path("no-global.conf"))
            .env("PMEM_IS_PMEM_FORCE", "0")
            .env_remove("SSH_CONNECTION")
            .env_remove("RPMEMD_SYSLOG_SOCKET")
            .env_remove("RPMEMD_SPIN_US");
        cmd
    }

    fn spawn(&self) -> Daemon {
        Daemon::spawn(self.command())
    }
}

/// A running rpmemd with the out-of-band client machine in front of it.
struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<Vec<u8>>,
    /// Bytes from stdout not yet given to the client machine.
    pending: Vec<u8>,
    /// Every byte rpmemd wrote to stdout.
    all_out: Vec<u8>,
    eof: bool,
    client: Client,
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Daemon {
            stdin: child.stdin.take(),
            child,
            out: rx,
            pending: Vec::new(),
            all_out: Vec::new(),
            eof: false,
            client: Client::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("stdin closed"));
        // rpmemd may have exited after a refusal: a broken pipe is fine.
        let _ = stdin.write_all(bytes).and_then(|()| stdin.flush());
    }

    /// Waits for stdout bytes; false at end of file.
    fn more(&mut self) -> bool {
        if self.eof {
            return false;
        }
        match self.out.recv_timeout(TIMEOUT) {
            Ok(bytes) => {
                self.all_out.extend_from_slice(&bytes);
                self.pending.extend_from_slice(&bytes);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("rpmemd sent nothing for {TIMEOUT:?}");
            }
        }
    }

    /// The next event of the client machine.
    fn event(&mut self) -> ClientEvent {
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
            if !self.more() {
                panic!(
                    "rpmemd closed stdout; client state: {}",
                    self.client.state()
                );
            }
        }
    }

    fn ready(&mut self) {
        assert_eq!(self.event(), ClientEvent::Ready);
    }

    fn create(&mut self, name: &str, attr: PoolAttr, nlanes: u32) -> ClientEvent {
        self.ready();
        let req = CreateRequest {
            pool_size: POOL_SIZE,
            nlanes,
            provider: Provider::TCP,
            buff_size: 8192,
            attr,
            pool_desc: PoolDesc::from_text(name).unwrap_or_else(|e| panic!("{e}")),
        };
        let bytes = self
            .client
            .send_create(&req)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        self.send(&bytes);
        self.event()
    }

    fn open(&mut self, name: &str, nlanes: u32) -> ClientEvent {
        self.ready();
        let req = OpenRequest {
            pool_size: POOL_SIZE,
            nlanes,
            provider: Provider::TCP,
            buff_size: 8192,
            pool_desc: PoolDesc::from_text(name).unwrap_or_else(|e| panic!("{e}")),
        };
        let bytes = self
            .client
            .send_open(&req)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        self.send(&bytes);
        self.event()
    }

    fn set_attr(&mut self, attr: &PoolAttr) -> ClientEvent {
        let bytes = self
            .client
            .send_set_attr(attr)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        self.send(&bytes);
        self.event()
    }

    fn close(&mut self, flags: u32) -> ClientEvent {
        let bytes = self
            .client
            .send_close(flags)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        self.send(&bytes);
        self.event()
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the exit (reading stdout to its end) and gives the status and stderr.
    fn wait(mut self) -> (ExitStatus, Vec<u8>, String) {
        self.close_stdin();
        self.wait_open()
    }

    /// As [`Daemon::wait`], with stdin left open (the exit must have another cause).
    fn wait_open(mut self) -> (ExitStatus, Vec<u8>, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    panic!("rpmemd did not exit within {TIMEOUT:?}");
                }
            }
        };
        while self.more() {}
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        (status, self.all_out, stderr)
    }
}

fn created(event: ClientEvent) -> (u16, u32, ExtRepr) {
    match event {
        ClientEvent::Created(r) => {
            let ext = r.ext.unwrap_or_else(|| panic!("no extension block"));
            assert_eq!(r.ibc.persist_method, PersistMethod::GPSPM);
            (u16::try_from(r.ibc.port).unwrap_or(0), r.ibc.nlanes, ext)
        }
        other => panic!("expected CREATE_RESP success, got {other:?}"),
    }
}

fn opened(event: ClientEvent) -> (u16, u32, ExtRepr, PoolAttr) {
    match event {
        ClientEvent::Opened(r) => {
            let ext = r.ext.unwrap_or_else(|| panic!("no extension block"));
            (
                u16::try_from(r.ibc.port).unwrap_or(0),
                r.ibc.nlanes,
                ext,
                r.attr,
            )
        }
        other => panic!("expected OPEN_RESP success, got {other:?}"),
    }
}

fn failed(event: ClientEvent) -> Status {
    match event {
        ClientEvent::Failed { status, .. } => status,
        other => panic!("expected a failure status, got {other:?}"),
    }
}

/// One lane: a TCP connection driven by the core's lane machine
/// (`StreamInitiator`), replicating the local region the calls name.
struct Lane {
    stream: TcpStream,
    machine: StreamInitiator,
    read_buf: Vec<u8>,
    /// The record layer once connected (rpmemd seals every lane).
    sealed: Option<(rpmem_core::seal::Sealer, rpmem_core::seal::Inbound<Vec<u8>>)>,
}

/// The read destination of a test lane.
struct ReadBuf<'a>(&'a mut Vec<u8>);

impl ReadSink for ReadBuf<'_> {
    fn put(&mut self, at: u64, bytes: &[u8]) -> bool {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        match self.0.get_mut(at..at.saturating_add(bytes.len())) {
            Some(d) => {
                d.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

fn tcp_connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(stream.set_read_timeout(Some(TIMEOUT)).is_ok());
    assert!(stream.set_write_timeout(Some(TIMEOUT)).is_ok());
    assert!(stream.set_nodelay(true).is_ok());
    stream
}

/// Sends `hello` and reads the 8-byte answer; `None` when the server closed instead.
fn hello_exchange(stream: &mut TcpStream, lane: u32, secret: &[u8; 32]) -> Option<HelloStatus> {
    use rpmem_core::seal::{ClientHandshake, LaneMode, SERVER_HELLO_LEN, STATUS_BAD_LANE};
    let c = ClientHandshake::new(secret, lane, LaneMode::Sealed, [0x11; 32]);
    let _ = stream.write_all(c.hello());
    let mut sh = [0u8; SERVER_HELLO_LEN];
    if stream.read_exact(&mut sh).is_err() {
        return None;
    }
    if sh[4..8] == STATUS_BAD_LANE.to_le_bytes() {
        return Some(HelloStatus::BadLane);
    }
    // With a wrong secret the client would stop here (rpmemd's proof does
    // not verify); send a proof anyway, to see rpmemd refuse it.
    let proof = c.on_server_hello(&sh).map(|(p, _)| p).unwrap_or([0x77; 32]);
    let _ = stream.write_all(&proof);
    let mut ack = [0u8; HELLO_ACK_LEN];
    match stream.read_exact(&mut ack) {
        Ok(()) => {
            let view = HelloAck::new_checked(&ack).unwrap_or_else(|e| panic!("{e}"));
            Some(
                HelloAckRepr::parse(&view)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .status,
            )
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            None
        }
        Err(e) => panic!("reading the hello answer: {e}"),
    }
}

/// True when the server has closed `stream` (reads end of file or a reset).
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("expected the server to close the connection: {e}"),
        }
    }
}

impl Lane {
    fn connect(port: u16, lane: u32, nlanes: u32, secret: &[u8; 32], min_offset: u64) -> Lane {
        let mode = rpmem_core::seal::LaneMode::Sealed;
        Lane::connect_mode(port, lane, nlanes, secret, min_offset, mode)
    }

    fn connect_mode(
        port: u16,
        lane: u32,
        nlanes: u32,
        secret: &[u8; 32],
        min_offset: u64,
        mode: rpmem_core::seal::LaneMode,
    ) -> Lane {
        let mut params = LaneParams::new(
            lane,
            nlanes,
            Method::Gpspm,
            POOL_SIZE,
            min_offset,
            Placement::Stream,
        );
        params.inline_max = 8192;
        let nonce = [lane as u8 ^ 0xa5; 32];
        let machine =
            StreamInitiator::new(params, secret, nonce, mode).unwrap_or_else(|e| panic!("{e}"));
        let mut l = Lane {
            stream: tcp_connect(port),
            machine,
            read_buf: Vec::new(),
            sealed: None,
        };
        while !l.machine.is_connected() {
            l.exchange(&[]);
        }
        let keys = l.machine.take_keys().expect("the lane's keys");
        if let Some((sealer, opener)) = keys.client() {
            let inbound = rpmem_core::seal::Inbound::new(
                opener,
                vec![0u8; rpmem_core::seal::INBOUND_BUF_LEN],
            )
            .unwrap();
            l.sealed = Some((sealer, inbound));
        }
        l
    }

    /// Writes what the machine transmits, then (if it still waits) reads
    /// what arrived and hands it over.
    fn exchange(&mut self, local: &[u8]) {
        let lane = self.machine.lane();
        let mut wire = Vec::new();
        for c in self.machine.poll_transmit() {
            match c {
                Chunk::Bytes(b) => wire.extend_from_slice(b),
                Chunk::Region { offset, len } => {
                    let (o, l) = (offset as usize, len as usize);
                    wire.extend_from_slice(&local[o..o + l]);
                }
            }
        }
        if !wire.is_empty() {
            let plain = wire.len() as u64;
            if let Some((sealer, _)) = self.sealed.as_mut() {
                let mut out = Vec::new();
                for chunk in wire.chunks(rpmem_core::seal::MAX_RECORD) {
                    let mut rec = vec![0u8; chunk.len() + 20];
                    sealer.seal_from(chunk, &mut rec).unwrap();
                    out.extend_from_slice(&rec);
                }
                wire = out;
            }
            self.stream
                .write_all(&wire)
                .unwrap_or_else(|e| panic!("lane {lane}: {e}"));
            self.machine
                .on_transmitted(plain)
                .unwrap_or_else(|e| panic!("lane {lane}: {e}"));
            return;
        }
        if let Some((_, inbound)) = self.sealed.as_mut() {
            while inbound
                .open_next()
                .unwrap_or_else(|e| panic!("lane {lane}: {e}"))
            {
                let n = inbound.plaintext().len();
                self.machine
                    .handle_bytes(inbound.plaintext(), &mut ReadBuf(&mut self.read_buf))
                    .unwrap_or_else(|e| panic!("lane {lane}: {e}"));
                inbound.consume(n);
            }
            let space = inbound.space();
            let n = self
                .stream
                .read(space)
                .unwrap_or_else(|e| panic!("lane {lane}: reading: {e}"));
            assert!(n > 0, "lane {lane}: rpmemd closed the connection");
            inbound.received(n);
            while inbound
                .open_next()
                .unwrap_or_else(|e| panic!("lane {lane}: {e}"))
            {
                let n = inbound.plaintext().len();
                self.machine
                    .handle_bytes(inbound.plaintext(), &mut ReadBuf(&mut self.read_buf))
                    .unwrap_or_else(|e| panic!("lane {lane}: {e}"));
                inbound.consume(n);
            }
            return;
        }
        let mut buf = [0u8; 64 * 1024];
        let n = self
            .stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("lane {lane}: reading: {e}"));
        assert!(n > 0, "lane {lane}: rpmemd closed the connection");
        self.machine
            .handle_bytes(&buf[..n], &mut ReadBuf(&mut self.read_buf))
            .unwrap_or_else(|e| panic!("lane {lane}: {e}"));
    }

    /// Drives the call just started until it completes.
    fn complete(&mut self, local: &[u8]) {
        let lane = self.machine.lane();
        loop {
            if let Some(result) = self.machine.poll_completion() {
                result.unwrap_or_else(|e| panic!("lane {lane}: {e}"));
                return;
            }
            self.exchange(local);
        }
    }

    fn persist(&mut self, local: &[u8], offset: u64, len: u64, flags: u32) {
        self.machine
            .persist(offset, len, flags)
            .unwrap_or_else(|e| panic!("{e}"));
        self.complete(local);
    }

    fn deep_persist(&mut self, local: &[u8], offset: u64, len: u64) {
        self.machine
            .deep_persist(offset, len)
            .unwrap_or_else(|e| panic!("{e}"));
        self.complete(local);
    }

    fn flush(&mut self, local: &[u8], offset: u64, len: u64, flags: u32) {
        self.machine
            .flush(offset, len, flags)
            .unwrap_or_else(|e| panic!("{e}"));
        self.complete(local);
    }

    fn drain(&mut self, local: &[u8]) {
        self.machine.drain(0).unwrap_or_else(|e| panic!("{e}"));
        self.complete(local);
    }

    fn read(&mut self, offset: u64, len: u64) -> Vec<u8> {
        self.read_buf = vec![0; len as usize];
        self.machine
            .read(offset, len)
            .unwrap_or_else(|e| panic!("{e}"));
        self.complete(&[]);
        self.read_buf[..len as usize].to_vec()
    }
}

/// A local region with a recognisable pattern.
fn pattern(seed: u8) -> Vec<u8> {
    (0..POOL_SIZE as usize)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

fn file_bytes(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    data[offset as usize..(offset + len) as usize].to_vec()
}

fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code()
}

#[test]
fn create_persist_read_set_attr_close_reopen_remove() {
    let env = Env::new();
    let part = env.poolset("pool.set", "pool.part", "");
    let local = pattern(7);
    let create_attr = attr(b"RPMEMTST", 0x10);

    // Session 1: create, persist through every path, read back, set attributes, close.
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", create_attr, 4));
    assert_eq!(nlanes, 4);
    assert_ne!(ext.secret, [0; 32]);
    assert_eq!(ext.max_inline, 8192);
    // PMEM_IS_PMEM_FORCE=0: not pmem, so a deep persist does more (msync).
    assert_eq!(ext.flags & ext_flags::PMEM, 0);
    assert_ne!(ext.flags & ext_flags::DEEP_FLUSH, 0);
    // Sealed lanes unless configured otherwise.
    assert_eq!(ext.flags & ext_flags::PLAINTEXT, 0);
    let mut l0 = Lane::connect(port, 0, nlanes, &ext.secret, HDR);
    let mut l1 = Lane::connect(port, 1, nlanes, &ext.secret, HDR);
    let mut l3 = Lane::connect(port, 3, nlanes, &ext.secret, HDR);

    let ranges = [
        (HDR, 100u64),       // inline persist, unaligned length
        (HDR + 8192, 20000), // several inline chunks
        (65536, 70000),      // relaxed: WRITE + FLUSH_WRITE
        (300_000, 4096),     // deep persist
        (400_000, 5000),     // flush + drain
        (500_001, 3),        // relaxed flush + drain, tiny
    ];
    l0.persist(&local, ranges[0].0, ranges[0].1, 0);
    l0.persist(&local, ranges[1].0, ranges[1].1, 0);
    l1.persist(&local, ranges[2].0, ranges[2].1, PERSIST_RELAXED);
    l3.deep_persist(&local, ranges[3].0, ranges[3].1);
    l1.flush(&local, ranges[4].0, ranges[4].1, 0);
    l1.flush(&local, ranges[5].0, ranges[5].1, FLUSH_RELAXED);
    l1.drain(&local);

    for (i, &(off, len)) in ranges.iter().enumerate() {
        let want = &local[off as usize..(off + len) as usize];
        assert_eq!(l3.read(off, len), want, "range {i} read back over TCP");
        // The part file holds the bytes (one part: pool offset = file offset).
        assert_eq!(file_bytes(&part, off, len), want, "range {i} on disk");
    }
    // Bytes never persisted stay zero; the header is readable.
    assert_eq!(l0.read(200_000, 16), vec![0u8; 16]);
    assert_eq!(&l0.read(0, 8)[..], b"RPMEMTST");

    let new_attr = attr(b"RPMEMNEW", 0x40);
    assert_eq!(d.set_attr(&new_attr), ClientEvent::AttrSet);
    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, stderr) = d.wait();
    assert_eq!(exit_code(status), Some(0), "{stderr}");
    drop((l0, l1, l3));

    let log = env.log();
    assert!(
        log.contains("notice: persistency method: GPSPM (persist-general is enabled and the pool is not persistent memory (msync))"),
        "{log}"
    );
    assert!(log.contains("notice: create request:"), "{log}");
    assert!(log.contains("lane 3 connected"), "{log}");

    // Session 2: open returns the new attributes and the data; CLOSE with REMOVE after OPEN
    // keeps the pool (PMDK removes only a pool created in the same session).
    let mut d = env.spawn();
    let (port, nlanes, ext, got_attr) = opened(d.open("pool.set", 2));
    assert_eq!(got_attr, new_attr);
    assert_eq!(nlanes, 2);
    let mut l = Lane::connect(port, 1, nlanes, &ext.secret, HDR);
    let (off, len) = ranges[2];
    assert_eq!(l.read(off, len), &local[off as usize..(off + len) as usize]);
    assert_eq!(d.close(CLOSE_FLAGS_REMOVE), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    assert!(part.exists());
    assert!(env.log().contains("not removing it"));

    // Session 3: create fails, the pool exists.
    let mut d = env.spawn();
    assert_eq!(failed(d.create("pool.set", create_attr, 1)), Status::Exists);
    let (status, out, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    assert_eq!(out.len(), 4 + 44, "status word + CREATE_RESP only");

    // Remove the part by hand, then create again and close with REMOVE.
    fs::remove_file(&part).unwrap_or_else(|e| panic!("{e}"));
    let mut d = env.spawn();
    let (_, _, _) = created(d.create("pool.set", create_attr, 1));
    assert!(part.exists());
    assert_eq!(d.close(CLOSE_FLAGS_REMOVE), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    assert!(!part.exists(), "CLOSE with REMOVE deletes the parts");
    assert!(
        env.path("sets/pool.set").exists(),
        "but not the pool set file"
    );
}

/// Issue 15: `tcp-plaintext = yes` says so in the extension, refuses a
/// sealed hello (mode refused), and serves plaintext lanes after the
/// handshake; the default session refuses a plaintext hello.
#[test]
fn plaintext_lanes_only_where_configured() {
    use rpmem_core::seal::{
        ClientHandshake, LaneMode, SealError, SERVER_HELLO_LEN, STATUS_MODE_REFUSED,
    };
    let refused = |port: u16, secret: &[u8; 32], mode: LaneMode| {
        let mut s = tcp_connect(port);
        let c = ClientHandshake::new(secret, 0, mode, [1; 32]);
        s.write_all(c.hello()).unwrap();
        let mut sh = [0u8; SERVER_HELLO_LEN];
        s.read_exact(&mut sh).unwrap();
        c.on_server_hello(&sh).map(|_| ()).unwrap_err()
    };
    let want = SealError::Refused {
        status: STATUS_MODE_REFUSED,
    };
    let env = Env::with_config("persist-general = yes\ntcp-plaintext = yes\n");
    let part = env.poolset("pool.set", "pool.part", "");
    let local = pattern(9);
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", attr(b"PLAIN\0\0\0", 1), 2));
    assert_ne!(ext.flags & ext_flags::PLAINTEXT, 0);
    assert_eq!(refused(port, &ext.secret, LaneMode::Sealed), want);
    let mut l = Lane::connect_mode(port, 1, nlanes, &ext.secret, HDR, LaneMode::Plaintext);
    assert!(l.sealed.is_none());
    l.persist(&local, HDR, 4096, 0);
    assert_eq!(
        file_bytes(&part, HDR, 4096),
        &local[HDR as usize..(HDR + 4096) as usize]
    );
    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    drop(l);
    assert!(env.log().contains("lane 1 is plaintext"), "{}", env.log());

    let env = Env::new();
    env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    let (port, _, ext) = created(d.create("pool.set", attr(b"SEALED\0\0", 1), 2));
    assert_eq!(ext.flags & ext_flags::PLAINTEXT, 0);
    assert_eq!(refused(port, &ext.secret, LaneMode::Plaintext), want);
    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
}

#[test]
fn pmem_pool_uses_cpu_flushes_and_nohdrs_pools_start_at_zero() {
    let env = Env::new();
    let part = env.poolset("raw.set", "raw.part", "OPTION NOHDRS\n");
    let local = pattern(3);
    let mut cmd = env.command();
    cmd.env("PMEM_IS_PMEM_FORCE", "1");
    let mut d = Daemon::spawn(cmd);
    let (port, nlanes, ext) = created(d.create("raw.set", PoolAttr::ZERO, 1));
    assert_ne!(ext.flags & ext_flags::PMEM, 0);
    // pmem, but TCP has no RDMA FLUSH: not offered.
    assert_eq!(ext.flags & ext_flags::RDMA_FLUSH, 0);
    let mut lane = Lane::connect(port, 0, nlanes, &ext.secret, 0);
    lane.persist(&local, 0, 4096, 0);
    lane.persist(&local, 8000, 9000, PERSIST_RELAXED);
    lane.deep_persist(&local, 100, 50);
    assert_eq!(lane.read(0, 4096), &local[..4096]);
    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    assert_eq!(file_bytes(&part, 0, 4096), &local[..4096]);
    assert_eq!(file_bytes(&part, 8000, 9000), &local[8000..17000]);
    let log = env.log();
    assert!(
        log.contains("persistency method: GPSPM (persist-general is enabled and every part is persistent memory (CPU flush))"),
        "{log}"
    );
}

#[test]
fn hostile_lane_connections_are_closed_before_touching_the_pool() {
    let env = Env::new();
    let part = env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", attr(b"HOSTILE\0", 1), 2));
    assert_eq!(nlanes, 2);
    let target = HDR + 4096;
    let before = file_bytes(&part, target, 64);

    // A WRITE frame carrying bytes, as it would follow an accepted hello.
    let write_frame = |lane: u32| {
        let mut bytes = FrameRepr {
            kind: FrameKind::Write,
            lane,
            req_id: 0,
            offset: target,
            len: 64,
        }
        .to_bytes()
        .to_vec();
        bytes.extend_from_slice(&[0xee; 64]);
        bytes
    };

    // Wrong secret: refused ("denied"), then closed.
    let mut s = tcp_connect(port);
    let mut wrong = ext.secret;
    wrong[31] ^= 1;
    assert_eq!(hello_exchange(&mut s, 0, &wrong), Some(HelloStatus::Denied));
    let _ = s.write_all(&write_frame(0));
    assert!(is_closed(&mut s));

    // No hello at all: the frame is read as a malformed hello; closed without an answer.
    let mut s = tcp_connect(port);
    let _ = s.write_all(&write_frame(0));
    assert!(is_closed(&mut s));

    // Lane out of range.
    let mut s = tcp_connect(port);
    assert_eq!(
        hello_exchange(&mut s, 2, &ext.secret),
        Some(HelloStatus::BadLane)
    );
    assert!(is_closed(&mut s));

    // A second connection for a connected lane.
    let mut first = Lane::connect(port, 0, nlanes, &ext.secret, HDR);
    let mut s = tcp_connect(port);
    assert_eq!(
        hello_exchange(&mut s, 0, &ext.secret),
        Some(HelloStatus::BadLane)
    );
    let _ = s.write_all(&write_frame(0));
    assert!(is_closed(&mut s));

    // A silent connection does not block others (it times out later).
    let _silent = tcp_connect(port);

    // Nothing reached the pool; the first lane still works.
    assert_eq!(first.read(target, 64), before);
    let local = pattern(9);
    first.persist(&local, target, 64, 0);
    assert_eq!(
        file_bytes(&part, target, 64),
        &local[target as usize..target as usize + 64]
    );

    // A protocol violation on an accepted lane closes that lane only.
    let mut bad = Lane::connect(port, 1, nlanes, &ext.secret, HDR);
    let _ = bad.stream.write_all(
        &FrameRepr {
            kind: FrameKind::Write,
            lane: 1,
            req_id: 0,
            offset: 0, // the pool header
            len: 8,
        }
        .to_bytes(),
    );
    assert!(is_closed(&mut bad.stream));
    assert_eq!(&first.read(0, 8)[..], b"HOSTILE\0");

    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    let log = env.log();
    assert!(log.contains("wrong session secret"), "{log}");
    assert!(log.contains("lane 0 is already connected"), "{log}");
}

#[test]
fn pmdk_captures_get_provider_not_supported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/pmdk-1.12.1/wire");
    for (name, request) in [
        ("session1_create_setattr_close", MsgType::CreateResp),
        ("session2_open_close", MsgType::OpenResp),
        ("session4_nohdrs_create_close", MsgType::CreateResp),
    ] {
        let env = Env::new();
        env.poolset("remote.set", "remote.part", "");
        env.poolset("nohdrs.set", "nohdrs.part", "OPTION NOHDRS\n");
        let c2s =
            fs::read(dir.join(format!("{name}.c2s.bin"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut d = env.spawn();
        d.send(&c2s);
        let (status, out, stderr) = d.wait();
        assert_eq!(exit_code(status), Some(0), "{name}: {stderr}");
        assert_eq!(&out[..4], &[0, 0, 0, 0], "{name}: start-up status word");
        let resp = Response::parse(&out[4..], Provider::LIBFABRIC_SOCKETS)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(resp.msg_type(), request, "{name}");
        assert_eq!(resp.status(), Status::ProvNoSup, "{name}");
        assert_eq!(
            out.len(),
            4 + if request == MsgType::CreateResp {
                44
            } else {
                148
            }
        );
        let log = env.log();
        assert!(log.contains("provider sockets (0x2)"), "{name}: {log}");
        // The pool was not touched.
        assert!(!env.path("remote.part").exists() && !env.path("nohdrs.part").exists());
    }
}

/// A CREATE from the client machine with `patch` applied to its bytes.
fn raw_create(
    nlanes: u32,
    buff_size: u64,
    pool_size: u64,
    patch: impl Fn(&mut Vec<u8>),
) -> Vec<u8> {
    let mut client = Client::new();
    let _ = client.handle_input(&[0; 4]);
    let req = CreateRequest {
        pool_size,
        nlanes: nlanes.max(1),
        provider: Provider::TCP,
        buff_size,
        attr: attr(b"HOSTILE\0", 2),
        pool_desc: PoolDesc::from_text("pool.set").unwrap_or_else(|e| panic!("{e}")),
    };
    let mut bytes = client
        .send_create(&req)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_vec();
    let at = create_field::C.start + common_field::NLANES.start;
    bytes[at..at + 4].copy_from_slice(&nlanes.to_be_bytes());
    patch(&mut bytes);
    bytes
}

#[test]
fn hostile_requests_get_the_right_status() {
    let cases: Vec<(&str, Vec<u8>, Status)> = vec![
        (
            "nlanes 0",
            raw_create(0, 8192, POOL_SIZE, |_| {}),
            Status::BadNlanes,
        ),
        (
            "nlanes huge",
            raw_create(u32::MAX, 8192, POOL_SIZE, |_| {}),
            Status::BadNlanes,
        ),
        (
            "nlanes 1025",
            raw_create(1025, 8192, POOL_SIZE, |_| {}),
            Status::BadNlanes,
        ),
        (
            "buff_size huge",
            raw_create(1, u64::MAX, POOL_SIZE, |_| {}),
            Status::Fatal,
        ),
        (
            "pool_size huge",
            raw_create(1, 8192, u64::MAX, |_| {}),
            Status::BadSize,
        ),
        (
            "declared size huge",
            raw_create(1, 8192, POOL_SIZE, |b| {
                let at = hdr_field::SIZE.start;
                b[at..at + 8].copy_from_slice(&(1u64 << 40).to_be_bytes());
            }),
            Status::BadName,
        ),
    ];
    for (what, bytes, expected) in cases {
        let env = Env::new();
        let part = env.poolset("pool.set", "pool.part", "");
        let mut d = env.spawn();
        d.send(&bytes);
        let (status, out, stderr) = d.wait();
        assert_eq!(exit_code(status), Some(0), "{what}: {stderr}");
        assert_eq!(&out[..4], &[0, 0, 0, 0], "{what}");
        let resp =
            Response::parse(&out[4..], Provider::TCP).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(resp.status(), expected, "{what}");
        assert!(
            !part.exists(),
            "{what}: a refused create leaves no part behind"
        );
    }
}

#[test]
fn lanes_are_bounded_by_nthreads() {
    let env = Env::new();
    env.poolset("pool.set", "pool.part", "");
    let mut cmd = env.command();
    cmd.args(["-t", "2"]);
    let mut d = Daemon::spawn(cmd);
    let (_, nlanes, _) = created(d.create("pool.set", attr(b"LANES\0\0\0", 5), 16));
    assert_eq!(nlanes, 2);
    assert_eq!(d.close(CLOSE_FLAGS_REMOVE), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
}

#[test]
fn no_persistency_method_is_pool_cfg() {
    let env = Env::with_config("persist-general = no\npersist-apm = no\n");
    let part = env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    assert_eq!(
        failed(d.create("pool.set", attr(b"NOMETHOD", 1), 1)),
        Status::PoolCfg
    );
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    assert!(
        !part.exists(),
        "the pool created for the request is removed again"
    );
    assert!(env.log().contains("no persistency method is enabled"));
}

/// Opens `pool.set` in a new session and closes it: proves the pool is unlocked.
fn reopen_and_close(env: &Env) {
    let mut d = env.spawn();
    let _ = opened(d.open("pool.set", 1));
    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
}

#[test]
fn sigterm_ends_a_session_cleanly() {
    let env = Env::new();
    env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", attr(b"SIGTERM\0", 1), 2));
    let mut lane = Lane::connect(port, 0, nlanes, &ext.secret, HDR);
    let local = pattern(1);
    lane.persist(&local, HDR, 4096, 0);
    let pid = libc::pid_t::try_from(d.child.id()).unwrap_or(0);
    // SAFETY: sends SIGTERM to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let (status, out, stderr) = d.wait_open();
    assert_eq!(exit_code(status), Some(1), "{stderr}");
    // The failure word (ECONNABORTED) follows the responses.
    assert_eq!(&out[out.len() - 4..], &103u32.to_le_bytes());
    assert!(stderr.contains("terminated by SIGTERM"), "{stderr}");
    // The lane was shut down.
    assert!(is_closed(&mut lane.stream));
    reopen_and_close(&env);
    let log = env.log();
    assert!(log.contains("err: terminated by SIGTERM"), "{log}");
}

#[test]
fn closed_stdin_ends_a_session_cleanly() {
    let env = Env::new();
    env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", attr(b"EOF\0\0\0\0\0", 1), 1));
    let mut lane = Lane::connect(port, 0, nlanes, &ext.secret, HDR);
    d.close_stdin();
    let (status, _, stderr) = d.wait();
    assert_eq!(exit_code(status), Some(1), "{stderr}");
    assert!(is_closed(&mut lane.stream));
    let _ = lane.stream.shutdown(Shutdown::Both);
    reopen_and_close(&env);
    // The pool was closed, not removed.
    assert!(env.path("pool.part").exists());
}

#[test]
fn stdin_closed_before_any_request() {
    let env = Env::new();
    let d = env.spawn();
    let (status, out, stderr) = d.wait();
    assert_eq!(exit_code(status), Some(1));
    // Ready, then the failure word (ECONNRESET).
    assert_eq!(out, [0, 0, 0, 0, 104, 0, 0, 0]);
    assert!(stderr.contains("without a request"), "{stderr}");
}

#[test]
fn startup_failures_send_an_errno_status_word() {
    // An invalid configuration line: EINVAL.
    let env = Env::with_config("bogus line\n");
    let (status, out, _) = env.spawn().wait();
    assert_eq!(exit_code(status), Some(3));
    assert_eq!(out, 22u32.to_le_bytes());

    // A log file that cannot be opened: the open's errno (ENOENT).
    let env = Env::new();
    let text = format!(
        "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\n",
        env.path("sets").display(),
        env.path("missing/dir/rpmemd.log").display()
    );
    assert!(fs::write(env.path("rpmemd.conf"), text).is_ok());
    let (status, out, _) = env.spawn().wait();
    assert_eq!(exit_code(status), Some(4));
    assert_eq!(out, 2u32.to_le_bytes());

    // --dump-config with a bad configuration stays human-readable: no status word.
    let env = Env::with_config("bogus line\n");
    let mut cmd = env.command();
    cmd.arg("--dump-config");
    let (status, out, _) = Daemon::spawn(cmd).wait();
    assert_eq!(exit_code(status), Some(3));
    assert!(out.is_empty());
}

#[test]
fn a_busy_pool_is_refused_while_a_session_holds_it() {
    let env = Env::new();
    env.poolset("pool.set", "pool.part", "");
    let mut first = env.spawn();
    let _ = created(first.create("pool.set", attr(b"BUSY\0\0\0\0", 1), 1));
    let mut second = env.spawn();
    assert_eq!(failed(second.open("pool.set", 1)), Status::Busy);
    let (status, _, _) = second.wait();
    assert_eq!(exit_code(status), Some(0));
    assert_eq!(first.close(0), ClientEvent::Closed);
    let (status, _, _) = first.wait();
    assert_eq!(exit_code(status), Some(0));
    reopen_and_close(&env);
}

/// Issue 15: connections that never become lanes (silent ones, more than
/// rpmemd lets wait; unfinished hellos; second connections for a connected
/// lane with the right secret) neither block nor delay a new lane, and a
/// duplicate of a connected lane is refused at once.
#[test]
fn waiting_and_duplicate_connections_do_not_block_new_lanes() {
    let env = Env::new();
    let part = env.poolset("pool.set", "pool.part", "");
    let mut d = env.spawn();
    let (port, nlanes, ext) = created(d.create("pool.set", attr(b"CROWDED\0", 3), 4));
    assert_eq!(nlanes, 4);
    let mut first = Lane::connect(port, 0, nlanes, &ext.secret, HDR);

    let mut held: Vec<TcpStream> = (0..80).map(|_| tcp_connect(port)).collect();
    let hello = *rpmem_core::seal::ClientHandshake::new(
        &[0x33; 32],
        2,
        rpmem_core::seal::LaneMode::Sealed,
        [1; 32],
    )
    .hello();
    for _ in 0..16 {
        let mut s = tcp_connect(port);
        let _ = s.write_all(&hello[..hello.len() - 1]);
        held.push(s);
    }
    let start = Instant::now();
    for _ in 0..16 {
        let mut s = tcp_connect(port);
        assert_eq!(
            hello_exchange(&mut s, 0, &ext.secret),
            Some(HelloStatus::BadLane)
        );
        assert!(is_closed(&mut s));
    }
    let refusing = start.elapsed();

    let local = pattern(21);
    let start = Instant::now();
    let mut late = Lane::connect(port, 3, nlanes, &ext.secret, HDR);
    let connected = start.elapsed();
    let at = HDR + 8192;
    late.persist(&local, at, 256, 0);
    let took = start.elapsed();
    eprintln!(
        "16 duplicates refused in {refusing:?}; lane 3 connected in {connected:?}, persisted by {took:?}"
    );
    assert!(refusing < Duration::from_secs(1), "{refusing:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(
        file_bytes(&part, at, 256),
        &local[at as usize..at as usize + 256]
    );
    // The first lane was never disturbed.
    first.persist(&local, at + 4096, 64, 0);
    drop(held);

    assert_eq!(d.close(0), ClientEvent::Closed);
    let (status, _, _) = d.wait();
    assert_eq!(exit_code(status), Some(0));
    let log = env.log();
    assert!(log.contains("lane 0 is already connected"), "{log}");
    assert!(log.contains("closed without a complete hello"), "{log}");
}
