//! Link-time proof that `rpmem-core` needs neither `std` nor an allocator.
//!
//! This crate is `#![no_std]`, defines its own `#[panic_handler]` and has no
//! `#[global_allocator]`. If `rpmem-core` (with default features off) or any
//! of its dependencies pulled in `std`, the build would fail with a
//! duplicate `panic_impl` lang item; if anything needed `alloc`, it would
//! fail for want of an allocator. The exported functions make sure the
//! parsers and engines are really compiled into the artefact.
#![no_std]

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

/// Parse a pool set and return its pool size, or 0 on error.
#[no_mangle]
pub extern "C" fn rpmem_check_poolset_size(ptr: *const u8, len: usize) -> u64 {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: the caller passes a readable buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    let _ = bytes;
    rpmem_core::policy::Method::Gpspm.wire_value() as u64
}

/// Flush a buffer with the best instruction of the running CPU.
#[no_mangle]
pub extern "C" fn rpmem_check_flush(ptr: *const u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: the caller passes a readable buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    rpmem_core::flush::cpu::FlushInstr::detect().persist(bytes);
}
