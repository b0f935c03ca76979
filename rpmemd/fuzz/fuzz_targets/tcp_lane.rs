//! Fuzz target: rpmemd's socket receive path. rpmemd's real TCP data path
//! (`TcpServer`: the accepting thread that reads hellos, then a lane
//! worker) serves a 64 KiB pool on 127.0.0.1; each input is one connection
//! to it that sends the input's bytes in pieces of a size the input
//! chooses, then closes its sending side.
//!
//! Checked: nothing panics (a panic in any of rpmemd's threads aborts the
//! process); rpmemd closes the connection within 10 s of the input's end,
//! so no hello, record, frame or body waits for ever; the pool is written
//! only where the protocol allows it: it lies between two `PROT_NONE`
//! pages and its 4 KiB header (below `min_offset`) is read-only, so a store
//! outside `[min_offset, size)` is a SIGSEGV, which the fuzzer reports. A
//! lane can be claimed once per session, so after an input that claimed
//! one the data path is stopped (every worker gone, within 10 s) and the
//! next input gets a new one over the same pool.
//!
//! Input: byte 0 bits 0-1 choose what the bytes are —
//! 0: everything, hello included, to a sealed data path;
//! 1: a sealed handshake for lane `(byte >> 2) % 4` first, then the bytes
//!    sealed into records of one piece each (frames through the real
//!    record layer);
//! 2: a sealed handshake, then the bytes as they are (forged records);
//! 3: a plaintext handshake with a data path configured for plaintext
//!    lanes, then the bytes as they are (frames in the clear);
//! bit 4: a pause of 100 µs after each piece, so rpmemd sees the split.
//! Byte 1 is the piece size minus one; the bytes follow.
//!
//! `cargo fuzz run -s address tcp_lane corpus/tcp_lane`
#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::ptr::NonNull;
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rpmem_core::flush::cpu::FlushInstr;
use rpmem_core::flush::FlushMode;
use rpmem_core::persist::{Method, Target, TargetParams};
use rpmem_core::seal::{ClientHandshake, LaneMode, Sealer, SERVER_HELLO_LEN};
use rpmemd::transport::tcp::{TcpConfig, TcpServer};
use rpmemd::transport::{DeepFlush, PoolMemory};

const PAGE: usize = 4096;
/// The pool: its first page is the header.
const POOL: usize = 16 * PAGE;
const MIN: usize = PAGE;
const NLANES: u32 = 4;
const SECRET: [u8; 32] = *b"0123456789abcdef0123456789abcdef";
/// How long rpmemd may take to answer a hello, to close a connection after
/// its input ended, and to stop.
const DEADLINE: Duration = Duration::from_secs(10);

/// The running data paths (sealed, plaintext), each until an input claims
/// one of its lanes.
static SERVERS: Mutex<[Option<(TcpServer, SocketAddr)>; 2]> = Mutex::new([None, None]);
/// The pool's address (mapped once).
static POOL_BASE: OnceLock<usize> = OnceLock::new();

/// AddressSanitizer's defaults for this target: no leak check. libFuzzer
/// checks for leaks after an input that allocated more than it freed, which
/// here is rpmemd's threads (the accepting thread, workers, a data path
/// stopping) holding memory between two inputs: reported as leaks at
/// random. Memory errors are still reported.
#[no_mangle]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_leaks=0".as_ptr()
}

/// The pool: `POOL` bytes between two inaccessible pages, the header page
/// read-only. Mapped once, for the life of the process.
fn map_pool() -> usize {
    // libFuzzer's main is not Rust's: a write to a socket rpmemd closed
    // would kill the process with SIGPIPE.
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: a fresh anonymous mapping that nothing else refers to; it is
    // never unmapped.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            POOL + 2 * PAGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let base = p.cast::<u8>().wrapping_add(PAGE);
    // SAFETY: both ranges lie inside the mapping just made, on page
    // boundaries.
    unsafe {
        assert_eq!(libc::mprotect(base.cast(), MIN, libc::PROT_READ), 0);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        assert_eq!(
            libc::mprotect(base.wrapping_add(MIN).cast(), POOL - MIN, rw),
            0
        );
    }
    base as usize
}

fn start(plaintext: bool) -> (TcpServer, SocketAddr) {
    let base = NonNull::new(*POOL_BASE.get_or_init(map_pool) as *mut u8).unwrap();
    let target = Target::new(TargetParams {
        nlanes: NLANES,
        pool_size: POOL as u64,
        min_offset: MIN as u64,
        inline_max: 256,
        flush_mode: FlushMode::Cpu,
        method: Method::Gpspm,
    })
    .unwrap();
    // SAFETY: the mapping is `POOL` bytes from a page boundary, readable
    // (writable from `MIN`), never unmapped, nothing forms a reference to
    // it, and one data path at a time writes it.
    let mem = unsafe { PoolMemory::new(base, POOL, FlushInstr::detect(), DeepFlush::default()) };
    let mut config = TcpConfig::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    config.plaintext = plaintext;
    let server = TcpServer::start(&config, target, SECRET, mem).unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// Stops `server`, which must be done (every worker gone) within `DEADLINE`.
fn stop(mut server: TcpServer) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(DEADLINE).is_ok(),
        "rpmemd's data path did not stop within {DEADLINE:?} after its connection closed"
    );
}

/// The handshake for `lane` in `mode`; the client's record sealer when the
/// lane is sealed and rpmemd accepted the proof's preconditions. `None`
/// when rpmemd refused or closed (then the input's bytes still go out).
fn handshake(s: &mut TcpStream, lane: u32, mode: LaneMode) -> Option<Option<Sealer>> {
    let hs = ClientHandshake::new(&SECRET, lane, mode, [7; 32]);
    s.write_all(hs.hello()).ok()?;
    let mut reply = [0u8; SERVER_HELLO_LEN];
    match s.read_exact(&mut reply) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("rpmemd did not answer a valid hello within {DEADLINE:?}")
        }
        Err(_) => return None,
    }
    let (proof, keys) = hs
        .on_server_hello(&reply)
        .unwrap_or_else(|e| panic!("rpmemd's answer to a valid hello: {e}"));
    s.write_all(&proof).ok()?;
    Some(keys.client().map(|(sealer, _)| sealer))
}

/// Reads until rpmemd closes the connection; false if it did not within
/// `DEADLINE`.
fn drain(mut s: TcpStream) -> bool {
    let end = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            // Closed with our bytes unread: a reset.
            Err(_) => return true,
        }
        if Instant::now() > end {
            return false;
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [mode, piece, bytes @ ..] = input else {
        return;
    };
    let kind = mode & 3;
    let lane = u32::from(mode >> 2) % NLANES;
    let pause = mode & 16 != 0;
    let piece = usize::from(*piece) + 1;
    let which = usize::from(kind == 3);
    let mut servers = SERVERS.lock().unwrap();
    let (server, addr) = servers[which].get_or_insert_with(|| start(kind == 3));

    let mut s = TcpStream::connect(*addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    let mut sealer = None;
    let mut open = true;
    if kind != 0 {
        let lane_mode = if kind == 3 {
            LaneMode::Plaintext
        } else {
            LaneMode::Sealed
        };
        match handshake(&mut s, lane, lane_mode) {
            Some(sl) if kind == 1 => sealer = sl,
            Some(_) => {}
            None => open = false,
        }
    }
    // rpmemd's answers (a READ_RESP can be large) are read meanwhile, so
    // neither side blocks on a full buffer.
    let reader = s.try_clone().unwrap();
    let drained = std::thread::spawn(move || drain(reader));
    let mut record = vec![0u8; piece + 64];
    for chunk in bytes.chunks(piece).take_while(|_| open) {
        let out = match sealer.as_mut() {
            Some(sl) => {
                let n = sl.seal_from(chunk, &mut record).unwrap();
                &record[..n]
            }
            None => chunk,
        };
        match s.write_all(out) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("rpmemd stopped reading for {DEADLINE:?} without closing the connection")
            }
            // rpmemd closed the connection (a refusal or a protocol error).
            Err(_) => break,
        }
        if pause {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    assert!(
        drained.join().unwrap(),
        "rpmemd did not close the connection within {DEADLINE:?} of the input's end"
    );
    if server.lanes_connected() > 0 {
        if let Some((server, _)) = servers[which].take() {
            stop(server);
        }
    }
});
