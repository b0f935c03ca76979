//! Seal and open one record of the TCP lane record layer
//! (`rpmem_core::seal`: AES-256-GCM from RustCrypto `aes-gcm`) at 64 B and
//! 64 KiB, best of five timed loops, no criterion. The figures and the
//! comparison that chose the crate are in docs/BENCHMARKS.md.
//!
//! `cargo run --release -p rpmem-core --example seal_bench`

use std::time::Instant;

use rpmem_core::seal::{ClientHandshake, LaneMode, ServerHandshake, RECORD_HEADER_LEN, TAG_LEN};

fn main() {
    let secret = [0x42; 32];
    let client = ClientHandshake::new(&secret, 0, LaneMode::Sealed, [1; 32]);
    let (server, answer) =
        ServerHandshake::on_hello(&secret, client.hello(), [2; 32], 1, LaneMode::Sealed)
            .expect("hello");
    let (proof, ckeys) = client.on_server_hello(&answer).expect("server proof");
    let skeys = server.on_proof(&proof).expect("client proof");
    let (mut sealer, _) = ckeys.client().expect("sealed");
    let (_, mut opener) = skeys.server().expect("sealed");
    for size in [64usize, 64 * 1024] {
        let mut rec = vec![0x5au8; size + RECORD_HEADER_LEN + TAG_LEN];
        let iters = (200_000_000 / (size + 200)).max(2000);
        let mut round = || {
            let n = sealer.seal_in_place(&mut rec, size).expect("seal");
            let pt = opener.open(&mut rec[..n]).expect("open");
            assert_eq!(pt.len(), size);
        };
        for _ in 0..iters / 10 {
            round();
        }
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..iters {
                round();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
        }
        println!(
            "seal+open {size:>6} B: {best:10.1} ns  {:6.2} GB/s",
            size as f64 / best
        );
    }
}
