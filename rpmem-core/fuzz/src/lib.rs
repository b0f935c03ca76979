//! What the fuzz targets share: the pool they serve and its limits, the
//! session secret, the core's target built from them, the sealed handshake
//! of a client that knows the secret, and a pool that checks every access.

use rpmem_core::flush::{FlushError, FlushMode, FlushOps};
use rpmem_core::persist::{Method, Next, StreamTarget, Target, TargetMemory, TargetParams};
use rpmem_core::seal::{ClientHandshake, LaneKeys, LaneMode};

/// Size of the pool the targets serve, in bytes.
pub const POOL: u64 = 1 << 16;
/// Lowest offset the data path may write (the pool header is below).
pub const MIN: u64 = 4096;
/// The session secret.
pub const SECRET: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

/// The core's target (GPSPM) for `nlanes` lanes of a [`POOL`]-byte pool
/// writable from [`MIN`].
pub fn target(nlanes: u32, inline_max: u64, flush_mode: FlushMode) -> Target {
    Target::new(TargetParams {
        nlanes,
        pool_size: POOL,
        min_offset: MIN,
        inline_max,
        flush_mode,
        method: Method::Gpspm,
    })
    .unwrap()
}

/// Runs the sealed handshake of lane `number` against `lane`, a fresh
/// machine, as a client that knows [`SECRET`] (with nonce `client_nonce`)
/// runs it: its hello, the server's hello checked, its proof. Returns once
/// the machine asks to claim lane `number` (the caller answers the claim),
/// with the keys the machine hands out and the client's keys.
pub fn sealed_handshake(
    lane: &mut StreamTarget,
    number: u32,
    client_nonce: [u8; 32],
) -> (LaneKeys, LaneKeys) {
    let c = ClientHandshake::new(&SECRET, number, LaneMode::Sealed, client_nonce);
    lane.handle_bytes(c.hello()).unwrap();
    let Next::Send { bytes, .. } = lane.poll() else {
        panic!("no server hello");
    };
    let (proof, client_keys) = c.on_server_hello(bytes.try_into().unwrap()).unwrap();
    lane.on_sent();
    lane.handle_bytes(&proof).unwrap();
    assert_eq!(lane.poll(), Next::Claim { lane: number });
    let server_keys = lane.take_keys().unwrap();
    (server_keys, client_keys)
}

/// A pool of `pool.len()` bytes for a target engine, whose writes must stay
/// at or above `min` and whose flushes inside the pool (checked: a panic is
/// what the fuzzer reports).
pub struct FakeMem {
    /// The pool's bytes.
    pub pool: Vec<u8>,
    /// Lowest offset a write may touch (the pool header is below).
    pub min: u64,
}

impl FakeMem {
    /// A zeroed pool of `size` bytes, writable from `min`.
    pub fn new(size: u64, min: u64) -> FakeMem {
        FakeMem {
            pool: vec![0; size as usize],
            min,
        }
    }

    fn size(&self) -> u64 {
        self.pool.len() as u64
    }
}

impl FlushOps for FakeMem {
    fn flush_line(&mut self, offset: u64) {
        assert!(
            offset < self.size(),
            "flush of line {offset} outside the pool"
        );
    }
    fn fence(&mut self) {}
    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.size()));
        Ok(())
    }
}

impl TargetMemory for FakeMem {
    fn copy_in(&mut self, offset: u64, data: &[u8]) {
        assert!(offset >= self.min, "write into the pool header at {offset}");
        let s = offset as usize;
        self.pool[s..s + data.len()].copy_from_slice(data);
    }
}
