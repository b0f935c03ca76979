//! Link-time proof that `rpmem-core` needs neither `std` nor an allocator.
//!
//! This crate is `#![no_std]`, defines its own `#[panic_handler]` and has no
//! `#[global_allocator]`. If `rpmem-core` (with default features off) or any
//! of its dependencies pulled in `std`, the build would fail with a
//! duplicate `panic_impl` lang item; if anything needed `alloc`, it would
//! fail for want of an allocator. The exported functions call every decoder
//! and state machine, so their code is really compiled into the artefact.
#![no_std]

use core::panic::PanicInfo;

use rpmem_core::flush::{cpu::FlushInstr, FlushMode};
use rpmem_core::oob::{Client, Limits, Server};
use rpmem_core::persist::{StreamServer, Target, TargetParams};
use rpmem_core::policy::Method;
use rpmem_core::pool_hdr::PoolHdrRepr;
use rpmem_core::poolset::PoolSet;
use rpmem_core::wire::oob::Request;

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

/// # Safety
/// `ptr` must be null or point to `len` readable bytes.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// Runs `input` through every decoder and machine; returns a bit per success.
///
/// # Safety
/// `ptr` must be null or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rpmem_check_decoders(ptr: *const u8, len: usize) -> u32 {
    // SAFETY: forwarded contract.
    let input = unsafe { bytes(ptr, len) };
    let mut ok = 0u32;
    if PoolSet::parse(input).is_ok_and(|s| s.pool_size().is_some()) {
        ok |= 1;
    }
    if PoolHdrRepr::parse_bytes(input).is_ok() {
        ok |= 2;
    }
    if Request::parse(input).is_ok() {
        ok |= 4;
    }
    let mut server = Server::new(Limits::default());
    if server.handle_input(input).is_ok() {
        ok |= 8;
    }
    let mut client = Client::new();
    if client.handle_input(input).is_ok() {
        ok |= 16;
    }
    let params = TargetParams {
        nlanes: 4,
        pool_size: 1 << 20,
        min_offset: 4096,
        inline_max: 8192,
        flush_mode: FlushMode::Cpu,
        method: Method::Gpspm,
    };
    if let Ok(target) = Target::new(params) {
        if target.handle_persist_msg(input).is_ok() {
            ok |= 32;
        }
        let mut stream = StreamServer::new(target);
        if stream.on_hello(input, &[7; 32]).is_ok() {
            ok |= 64;
        }
    }
    ok
}

/// The TCP lane handshake and record layer (`rpmem_core::seal`): a
/// handshake answered for the hello in `ptr`, a record sealed in a stack
/// buffer and opened through an [`Inbound`](rpmem_core::seal::Inbound) on
/// another; returns the opened length.
///
/// # Safety
/// `ptr` must be null or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rpmem_check_seal(ptr: *const u8, len: usize) -> usize {
    use rpmem_core::seal::{ClientHandshake, Inbound, LaneMode, ServerHandshake, INBOUND_BUF_LEN};
    // SAFETY: forwarded contract.
    let input = unsafe { bytes(ptr, len) };
    let secret = [7u8; 32];
    let mut hello = [0u8; 48];
    for (d, s) in hello.iter_mut().zip(input) {
        *d = *s;
    }
    let Ok((server, answer)) =
        ServerHandshake::on_hello(&secret, &hello, [3; 32], 4, LaneMode::Sealed)
    else {
        return 0;
    };
    let client = ClientHandshake::new(&secret, server.lane(), LaneMode::Sealed, [4; 32]);
    let Ok((proof, ckeys)) = client.on_server_hello(&answer) else {
        return 0;
    };
    let (Ok(skeys), Some((mut sealer, _))) = (server.on_proof(&proof), ckeys.client()) else {
        return 0;
    };
    let Some((_, opener)) = skeys.server() else {
        return 0;
    };
    let mut rec = [0u8; 128];
    let n = match sealer.seal_from(input.get(..64).unwrap_or(input), &mut rec) {
        Ok(n) => n,
        Err(_) => return 0,
    };
    static mut BUF: [u8; INBOUND_BUF_LEN] = [0; INBOUND_BUF_LEN];
    // SAFETY: the only use of BUF, in a check that runs once at a time.
    let buf: &mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(BUF) };
    let Ok(mut inbound) = Inbound::new(opener, buf) else {
        return 0;
    };
    let space = inbound.space();
    for (d, s) in space.iter_mut().zip(rec.get(..n).unwrap_or(&[])) {
        *d = *s;
    }
    inbound.received(n);
    match inbound.open_next() {
        Ok(true) => inbound.plaintext().len(),
        _ => 0,
    }
}

/// Flushes a buffer with the best instruction of the running CPU.
///
/// # Safety
/// `ptr` must be null or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rpmem_check_flush(ptr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    FlushInstr::detect().persist(unsafe { bytes(ptr, len) });
}
