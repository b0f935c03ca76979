//! `rpmem demo`: the whole thing on this machine, explained as it runs.
//!
//! It starts rpmemd locally with a pool in a scratch directory, creates the
//! pool, measures small persists (latency) and large ones (throughput) on one
//! and several lanes, closes, reopens with an empty local copy, reads
//! everything back and verifies it (and the pool file itself), then removes
//! the pool and the scratch directory.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem::{Lane, PoolAttr, Region, RemotePool, PERSIST_RELAXED};

use crate::bench_cmd::{bench_options, set_daemon_spin};
use crate::cli::{ConnArgs, DemoArgs};
use crate::error::{CliError, CliResult};
use crate::local::{LocalTarget, LOCAL_TARGET};
use crate::values::{fill_pattern, format_uuid, human_bytes};

/// The pool set file of the demo.
const SET: &str = "demo.set";
/// Small persists measured.
const SMALL_OPS: u64 = 2000;
/// Bytes of one small persist.
const SMALL: u64 = 64;
/// Pool offset of the small records: right after the pool header.
const SMALL_AT: u64 = 4096;
/// Pool offset of the large data.
const LARGE_AT: u64 = 1 << 20;
/// Bytes of one large persist.
const CHUNK: u64 = 1 << 20;
/// Times each large pass writes the whole area (for a steadier figure).
const PASSES: u64 = 4;
/// Pattern seeds: small records, large data on one lane, then on all lanes.
const SEED_SMALL: u64 = 7;
const SEED_ONE_LANE: u64 = 1;
const SEED_ALL_LANES: u64 = 2;

fn step(n: u32, title: &str) {
    say!();
    say!("[{n}/7] {title}");
}

/// Width of the demo's text.
const WIDTH: usize = 96;

/// An indented paragraph, wrapped at [`WIDTH`].
fn detail(text: &str) {
    let indent = "      ";
    let mut line = String::from(indent);
    for word in text.split(' ') {
        if line.len() > indent.len() && line.len() + 1 + word.len() > WIDTH {
            say!("{line}");
            line = format!("{indent}  ");
        } else if line.len() > indent.len() && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    say!("{line}");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib_s(bytes: u64, d: Duration) -> String {
    format!("{:.0} MiB/s", crate::baseline::mib_per_s(bytes, d))
}

fn lib(what: &str) -> impl FnOnce(rpmem::Error) -> CliError {
    CliError::rpmem(what.to_owned())
}

/// The attributes the demo creates its pool with.
fn demo_attr() -> CliResult<PoolAttr> {
    let uuid = crate::values::random_uuid().map_err(CliError::io("reading random bytes"))?;
    let poolset_uuid =
        crate::values::random_uuid().map_err(CliError::io("reading random bytes"))?;
    Ok(PoolAttr {
        signature: *b"RPMEMDEM",
        major: 1,
        compat_features: 0,
        incompat_features: 0,
        ro_compat_features: 0,
        poolset_uuid,
        uuid,
        next_uuid: uuid,
        prev_uuid: uuid,
        user_flags: *b"rpmem demo flags",
    })
}

/// Writes the pattern of `seed` into region `[at, at + len)`.
fn write_pattern(region: &Region, seed: u64, at: u64, len: u64) -> CliResult {
    let mut buf = vec![0u8; usize::try_from(CHUNK).unwrap_or(0)];
    let mut off = at;
    while off < at + len {
        let n = CHUNK.min(at + len - off);
        let b = buf
            .get_mut(..usize::try_from(n).unwrap_or(0))
            .unwrap_or(&mut []);
        fill_pattern(b, seed, off);
        region
            .write_at(usize::try_from(off).unwrap_or(usize::MAX), b)
            .map_err(lib("writing the local copy"))?;
        off += n;
    }
    Ok(())
}

/// Runs `op(lane, offset, len)` for every 1 MiB chunk of `[at, at + len)`
/// on lanes `0..lanes`, one thread per lane. Returns the wall time.
fn on_lanes<F>(pool: &RemotePool, lanes: u32, at: u64, len: u64, op: F) -> CliResult<Duration>
where
    F: Fn(&mut Lane<'_>, u64, u64) -> Result<(), rpmem::Error> + Sync,
{
    let next = AtomicU64::new(at);
    let handles = (0..lanes)
        .map(|i| pool.lane(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(lib("taking the lanes"))?;
    let started = Instant::now();
    let results: Vec<Result<(), rpmem::Error>> = std::thread::scope(|s| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|mut lane| {
                let (next, op) = (&next, &op);
                s.spawn(move || loop {
                    let off = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if off >= at + len {
                        return Ok(());
                    }
                    op(&mut lane, off, CHUNK.min(at + len - off))?;
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(rpmem::Error::InvalidArgument(
                        "a lane thread panicked".to_owned(),
                    ))
                })
            })
            .collect()
    });
    let elapsed = started.elapsed();
    for r in results {
        r.map_err(lib("replicating over the lanes"))?;
    }
    Ok(elapsed)
}

/// Compares region (or file) bytes with the expected patterns; returns the
/// first mismatch as (offset, got, expected).
fn first_mismatch(bytes: &[u8], base: u64, seed: u64, at: u64, len: u64) -> Option<(u64, u8, u8)> {
    let start = usize::try_from(at.checked_sub(base)?).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let got = bytes.get(start..end)?;
    got.iter().enumerate().find_map(|(i, &g)| {
        let off = at + i as u64;
        let want = crate::values::pattern_byte(seed, off);
        (g != want).then_some((off, g, want))
    })
}

/// `rpmem demo`.
pub fn demo(a: &DemoArgs) -> CliResult {
    // Contradictory settings fail before anything is printed or started.
    let opts = bench_options(&ConnArgs::default(), Some("demo"))?;
    if a.json {
        // The narration is replaced by one JSON object at the end.
        crate::out::set_quiet(true);
    }
    let mut started = Instant::now();
    let large = u64::from(a.mib) << 20;
    let pool_size = LARGE_AT + large;
    let lanes = a.lanes;

    say!("rpmem demo: remote persistent memory, shown on this machine");
    say!();
    say!("rpmem copies part of a program's memory into a pool (files on another host)");
    say!("and tells the program when the bytes are durable there. On that host runs a");
    say!("small daemon, rpmemd, which rpmem normally starts over ssh. This demo runs");
    say!("both sides here: it starts rpmemd directly and talks to it over 127.0.0.1,");
    say!("with the same protocol and TCP data path as between two machines.");

    // 1. The target side.
    step(1, "Preparing the target side");
    set_daemon_spin(opts.spin());
    let lt = LocalTarget::new(
        a.rpmemd.as_deref(),
        a.dir.as_deref(),
        "rpmem-demo-",
        &mut |s| detail(s),
    )?;
    let (rpmemd, found) = lt.rpmemd();
    if found == crate::local::Found::BuiltNow {
        detail(&format!(
            "(building rpmemd took {:.0} s; the rest of the demo is timed from here)",
            started.elapsed().as_secs_f64()
        ));
        started = Instant::now();
    }
    detail(&format!(
        "rpmemd: {} ({})",
        rpmemd.display(),
        found.describe()
    ));
    detail(&format!(
        "scratch directory: {}{}",
        lt.path().display(),
        if lt.on_tmpfs() {
            " (in memory, tmpfs, standing in for persistent memory)"
        } else {
            ""
        }
    ));
    let part = lt.write_poolset(SET, pool_size, false)?;
    detail(&format!(
        "wrote rpmemd's configuration and the pool set file {SET}, which describes one {} file, {}",
        human_bytes(pool_size),
        part.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    let opts = lt.options(&opts);

    // 2. Create.
    step(2, "Creating the pool");
    let attr = demo_attr()?;
    let region = Arc::new(
        Region::new(usize::try_from(pool_size).unwrap_or(usize::MAX))
            .map_err(lib("allocating the local copy"))?,
    );
    let t = Instant::now();
    let pool = RemotePool::create(
        LOCAL_TARGET,
        SET,
        Arc::clone(&region),
        lanes,
        Some(&attr),
        &opts,
    )
    .map_err(lib("cannot create the demo pool"))?;
    detail(&format!(
        "rpmem started rpmemd, which created the {} pool file and wrote its 4 KiB header (signature {:?}, uuid {});",
        human_bytes(pool_size),
        "RPMEMDEM",
        format_uuid(&attr.uuid)
    ));
    detail(&format!(
        "then rpmem opened {} lanes: TCP connections, each for one thread at a time ({}).",
        pool.nlanes(),
        ms(t.elapsed())
    ));
    detail(&format!(
        "persistency method: {}: {}",
        pool.persist_method().name(),
        crate::pool_cmds::method_words(pool.persist_method())
    ));
    let lanes = pool.nlanes();
    let method = pool.persist_method().name();

    // 3. Small persists.
    step(
        3,
        &format!("Small writes: {SMALL_OPS} persists of {SMALL} bytes on one lane"),
    );
    detail("Each persist sends the bytes and waits until rpmemd answers that they are durable.");
    let mut samples = Vec::with_capacity(usize::try_from(SMALL_OPS).unwrap_or(0));
    {
        let mut lane = pool.lane(0).map_err(lib("taking lane 0"))?;
        let mut rec = [0u8; SMALL as usize];
        for i in 0..SMALL_OPS {
            let off = SMALL_AT + i * SMALL;
            fill_pattern(&mut rec, SEED_SMALL, off);
            region
                .write_at(usize::try_from(off).unwrap_or(usize::MAX), &rec)
                .map_err(lib("writing the local copy"))?;
            let t = Instant::now();
            lane.persist(off, SMALL, 0)
                .map_err(lib(&format!("persisting record {i}")))?;
            samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    }
    samples.sort_unstable();
    let p50 = crate::baseline::percentile(&samples, 0.5) as f64 / 1000.0;
    let p99 = crate::baseline::percentile(&samples, 0.99) as f64 / 1000.0;
    detail(&format!(
        "latency of one persist: median {p50:.1} µs, 99th percentile {p99:.1} µs"
    ));
    let mut tcp_rtt = None;
    if let Ok(rtt) = crate::baseline::ping_pong(IpAddr::V4(Ipv4Addr::LOCALHOST), true, 2000) {
        let raw = crate::baseline::percentile(&rtt, 0.5) as f64 / 1000.0;
        tcp_rtt = Some(raw);
        detail(&format!(
            "for scale: a bare TCP round trip (64 bytes there, 8 back) takes {raw:.1} µs here"
        ));
    }

    // 4. Large persists.
    step(
        4,
        &format!(
            "Large writes: {} MiB in 1 MiB persists, on one lane, then on {lanes} lanes at once",
            a.mib
        ),
    );
    detail("These use relaxed persists: the bytes stream to rpmemd, which makes them durable at the end.");
    write_pattern(&region, SEED_ONE_LANE, LARGE_AT, large)?;
    let persist = |lane: &mut Lane<'_>, off: u64, n: u64| lane.persist(off, n, PERSIST_RELAXED);
    // One untimed pass: both sides touch their memory for the first time.
    on_lanes(&pool, lanes, LARGE_AT, large, persist)?;
    let mut one = Duration::ZERO;
    for _ in 0..PASSES {
        one += on_lanes(&pool, 1, LARGE_AT, large, persist)?;
    }
    write_pattern(&region, SEED_ALL_LANES, LARGE_AT, large)?;
    let mut all = Duration::ZERO;
    for _ in 0..PASSES {
        all += on_lanes(&pool, lanes, LARGE_AT, large, persist)?;
    }
    detail(&format!(
        "throughput: 1 lane {}, {lanes} lanes {} ({} MiB written {PASSES} times each way, after one untimed pass)",
        mib_s(large * PASSES, one),
        mib_s(large * PASSES, all),
        a.mib
    ));

    // 5. Close and reopen.
    step(5, "Closing the pool and opening it again");
    let t = Instant::now();
    pool.close().map_err(lib("closing the pool"))?;
    drop(region);
    let region = Arc::new(
        Region::new(usize::try_from(pool_size).unwrap_or(usize::MAX))
            .map_err(lib("allocating a new local copy"))?,
    );
    let pool = RemotePool::open(LOCAL_TARGET, SET, Arc::clone(&region), lanes, &opts)
        .map_err(lib("cannot reopen the demo pool"))?;
    detail(&format!(
        "rpmemd exited; a new rpmemd opened the pool from its file ({}).",
        ms(t.elapsed())
    ));
    detail("The new local copy is empty (all zero): the data can only come back from the pool.");
    match pool.attr() {
        Some(got) if *got == attr => detail("The pool header still holds the attributes given at creation."),
        _ => {
            return Err(CliError::Failed(
                "verification FAILED: the reopened pool's attributes differ from those it was created with".to_owned(),
            ))
        }
    }

    // 6. Read back and verify.
    step(6, "Reading everything back and checking it");
    let small_len = SMALL_OPS * SMALL;
    let read = |lane: &mut Lane<'_>, off: u64, n: u64| lane.read_to_region(off, n);
    on_lanes(&pool, 1, SMALL_AT, small_len, read)?;
    let took = on_lanes(&pool, lanes, LARGE_AT, large, read)?;
    detail(&format!(
        "read {} over {lanes} lanes at {}",
        human_bytes(large + small_len),
        mib_s(large, took)
    ));
    let mut local = vec![0u8; usize::try_from(pool_size).unwrap_or(0)];
    region
        .read_at(0, &mut local)
        .map_err(lib("reading the local copy"))?;
    let on_disk =
        std::fs::read(&part).map_err(CliError::io(format!("reading {}", part.display())))?;
    for (what, bytes) in [
        ("the bytes read back", &local),
        ("the pool file on the target side", &on_disk),
    ] {
        let bad = first_mismatch(bytes, 0, SEED_SMALL, SMALL_AT, small_len)
            .or_else(|| first_mismatch(bytes, 0, SEED_ALL_LANES, LARGE_AT, large));
        if let Some((off, got, want)) = bad {
            return Err(CliError::Failed(format!(
                "verification FAILED: in {what}, pool offset {off} holds 0x{got:02x} instead of 0x{want:02x}"
            )));
        }
    }
    detail(&format!(
        "verification passed: all {} bytes written ({SMALL_OPS} small records and {} MiB of data) \
         came back intact, and the pool file holds them too.",
        small_len + large,
        a.mib
    ));
    pool.close().map_err(lib("closing the pool"))?;

    // 7. Clean up.
    step(7, "Cleaning up");
    rpmem::remove(LOCAL_TARGET, SET, rpmem::REMOVE_POOL_SET, &opts)
        .map_err(lib("removing the demo pool"))?;
    if part.exists() {
        return Err(CliError::Failed(format!(
            "rpmemd --remove left the pool file {} behind",
            part.display()
        )));
    }
    let dir = lt.path().to_path_buf();
    let (rpmemd_path, found) = {
        let (p, f) = lt.rpmemd();
        (p.display().to_string(), f)
    };
    let on_tmpfs = lt.on_tmpfs();
    lt.close()?;
    detail(&format!(
        "rpmemd removed the pool file and the pool set file; the scratch directory {} is gone.",
        dir.display()
    ));
    say!();
    say!(
        "Done in {:.1} s. Next: `rpmem bench --local` measures more carefully; `rpmem --help`",
        started.elapsed().as_secs_f64()
    );
    say!("lists the commands that work with a real remote host (create, info, put, get, ...).");
    if a.json {
        let mib = |bytes: u64, d: Duration| crate::baseline::mib_per_s(bytes, d);
        emit!(
            "{}",
            serde_json::json!({
                "verification": "passed",
                "rpmemd": rpmemd_path,
                "rpmemd_found": found.describe(),
                "scratch_dir": dir.display().to_string(),
                "on_tmpfs": on_tmpfs,
                "persist_method": method,
                "lanes": lanes,
                "mib": a.mib,
                "persist_64_p50_us": p50,
                "persist_64_p99_us": p99,
                "tcp_rtt_p50_us": tcp_rtt,
                "persist_1m_mib_s_1_lane": mib(large * PASSES, one),
                "persist_1m_mib_s_all_lanes": mib(large * PASSES, all),
                "read_mib_s_all_lanes": mib(large, took),
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}
