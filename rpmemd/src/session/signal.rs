//! SIGTERM, SIGINT and SIGHUP as bytes on a pipe (the self-pipe trick).
//!
//! The handler does the two async-signal-safe things a handler may do: it
//! stores the signal number in an atomic and writes one byte to a
//! non-blocking pipe. The session's stdin loop polls the pipe's read end next
//! to stdin, so a signal wakes it wherever it waits, and it then ends the
//! session cleanly (lanes stopped and joined, pool unmapped, locks released).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sync::signal_safe::{AtomicI32, Ordering};

/// The signals that end a session cleanly.
pub const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Write end of the pipe, for the handler (-1: none).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// The last signal caught (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot; saving and
    // restoring it keeps the interrupted code's errno intact.
    let saved = unsafe { *libc::__errno_location() };
    CAUGHT.store(signo, Ordering::SeqCst);
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        // The pipe is non-blocking, so a full pipe drops the byte (one is
        // already waiting there) instead of blocking the handler.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The installed handlers and their pipe. Dropping it restores the default
/// dispositions.
#[derive(Debug)]
pub struct SignalPipe {
    read: OwnedFd,
    /// Kept open for the handler (closed on drop, after the handlers are gone).
    _write: OwnedFd,
}

impl SignalPipe {
    /// Creates the pipe and installs the handler for [`SIGNALS`].
    pub fn install() -> io::Result<SignalPipe> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for &signo in &SIGNALS {
            // SAFETY: a zeroed sigaction is a valid value to fill in.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: `sa_mask` is a field of `action`; sigemptyset only
            // initialises it.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            // SAFETY: installs a handler that only touches atomics and
            // write(2); `action` is fully initialised.
            let rc = unsafe { libc::sigaction(signo, &action, std::ptr::null_mut()) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                restore_defaults();
                return Err(e);
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    /// The read end, readable once a signal arrived.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The signal caught, if any (the pipe is drained).
    pub fn caught(&self) -> Option<libc::c_int> {
        let mut buf = [0u8; 16];
        // SAFETY: reads into a local buffer from our non-blocking pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        match CAUGHT.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        restore_defaults();
        WRITE_FD.store(-1, Ordering::SeqCst);
    }
}

fn restore_defaults() {
    for &signo in &SIGNALS {
        // SAFETY: SIG_DFL is always a valid disposition.
        unsafe { libc::signal(signo, libc::SIG_DFL) };
    }
}

/// The name of a signal for the log (`SIGTERM`), or its number.
pub fn name(signo: libc::c_int) -> String {
    match signo {
        libc::SIGTERM => "SIGTERM".to_owned(),
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGHUP => "SIGHUP".to_owned(),
        other => format!("signal {other}"),
    }
}
