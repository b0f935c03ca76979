//! `rpmem_errormsg()`'s per-thread buffer and `errno`.
//!
//! Each thread has one fixed buffer (PMDK's is 8 KiB too), so the pointer
//! `rpmem_errormsg()` returns stays valid for the thread's life and its
//! text stays the same until the next failing call on that thread. The
//! buffer needs no destructor, so using it registers no thread-local
//! destructor (which would keep the library from unloading).

use std::cell::Cell;
use std::ffi::{c_char, c_int};

/// Size of the buffer, terminating NUL included.
pub const MSG_LEN: usize = 8192;

thread_local! {
    static MSG: [Cell<u8>; MSG_LEN] = const { [const { Cell::new(0) }; MSG_LEN] };
}

/// Replaces this thread's message with `text` (cut at `MSG_LEN - 1` bytes
/// on a character boundary; a NUL inside becomes a space).
pub fn set(text: &str) {
    let mut end = text.len().min(MSG_LEN - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = text.as_bytes().get(..end).unwrap_or_default();
    MSG.with(|buf| {
        for (cell, &b) in buf.iter().zip(bytes) {
            cell.set(if b == 0 { b' ' } else { b });
        }
        if let Some(cell) = buf.get(bytes.len()) {
            cell.set(0);
        }
    });
}

/// This thread's message, NUL-terminated (empty before any failure).
pub fn ptr() -> *const c_char {
    MSG.with(|buf| buf.as_ptr().cast::<c_char>())
}

/// This thread's message as Rust text (for tests).
pub fn text() -> String {
    MSG.with(|buf| {
        let bytes: Vec<u8> = buf.iter().map(Cell::get).take_while(|&b| b != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns the address of the calling thread's
    // errno, valid for the thread's life; writing an int there is what
    // setting errno means.
    unsafe { *libc::__errno_location() = value };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_cut_terminated_and_the_pointer_is_stable() {
        let p = ptr();
        set("first failure");
        assert_eq!(text(), "first failure");
        set("a\0b");
        assert_eq!(text(), "a b");
        let long = "é".repeat(MSG_LEN);
        set(&long);
        let got = text();
        assert!(got.len() < MSG_LEN && got.chars().all(|c| c == 'é'));
        assert_eq!(ptr(), p);
        let other = std::thread::spawn(|| {
            set("other thread");
            text()
        })
        .join()
        .expect("thread");
        assert_eq!(other, "other thread");
        assert!(text().starts_with('é'));
    }
}
