use rpmem::{Options, PoolAttr, Region, RemotePool, PERSIST_RELAXED};
use std::sync::Arc;

fn main() -> Result<(), rpmem::Error> {
    // `cargo run -p rpmem --example replicate -- alice@target pool.set`: the pool
    // set file is on the target, relative to rpmemd's poolset-dir.
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "alice@target".to_owned());
    let pool_set = args.next().unwrap_or_else(|| "pool.set".to_owned());
    // RPMEM_SSH, RPMEM_CMD, RPMEM_LAUNCH=local, ... (docs/rpmem.md)
    let opts = Options::from_env()?;

    // 1 MiB of local memory, replicated into the pool set on the target. The
    // pool header (its first 4096 bytes) holds your format's signature.
    let region = Arc::new(Region::new(1 << 20)?);
    let attr = PoolAttr {
        signature: *b"MYAPP\0\0\0",
        major: 1,
        ..PoolAttr::ZERO
    };
    let pool = RemotePool::create(&target, &pool_set, region.clone(), 4, Some(&attr), &opts)?;

    region.write_at(4096, b"hello, remote pmem")?;
    let mut lane = pool.lane(0)?; // one lane per thread: Send, not Sync
    lane.persist(4096, 18, 0)?; // durable on the target when this returns
    lane.persist(8192, 4096, PERSIST_RELAXED)?;
    drop(lane);
    pool.close()
}
