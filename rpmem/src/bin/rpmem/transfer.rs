//! `rpmem put` and `rpmem get`: a local file into a pool and back, in
//! 1 MiB chunks over several lanes, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rpmem::{Lane, Region, RemotePool, PERSIST_RELAXED};

use crate::cli::{GetArgs, PutArgs, TransferArgs};
use crate::error::{CliError, CliResult};
use crate::files::{describe, Sink, Source};
use crate::pool_cmds::region;
use crate::values::{human_bytes, round_up_page};

/// Bytes moved by one operation.
pub const CHUNK: u64 = 1 << 20;
/// Transfers at least this long get a progress bar (on a terminal).
pub const PROGRESS_MIN: u64 = 4 << 20;
/// The default pool offset: the first byte after the pool header.
pub const HEADER_END: u64 = 4096;

/// A progress bar on stderr when it is a terminal and the transfer is
/// long; hidden otherwise.
pub fn progress(total: u64, what: &str, t: &TransferArgs) -> ProgressBar {
    if t.no_progress
        || crate::out::quiet()
        || total < PROGRESS_MIN
        || !std::io::stderr().is_terminal()
    {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `work(lane, chunk_offset, chunk_len)` for every chunk of
/// `[0, total)` on lanes `0..lanes` of `pool`, one thread per lane, chunks
/// handed out in order. Stops at the first failure.
fn for_each_chunk<F>(
    pool: &RemotePool,
    lanes: u32,
    total: u64,
    bar: &ProgressBar,
    work: F,
) -> CliResult
where
    F: Fn(&mut Lane<'_>, u64, u64) -> CliResult + Sync,
{
    let next = AtomicU64::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let handles = (0..lanes.min(pool.nlanes()).max(1))
        .map(|i| pool.lane(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::rpmem("taking the pool's lanes"))?;
    let results: Vec<CliResult> = std::thread::scope(|s| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|mut lane| {
                let (next, failed, work) = (&next, &failed, &work);
                s.spawn(move || -> CliResult {
                    while !failed.load(Ordering::Relaxed) {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= total {
                            break;
                        }
                        let len = CHUNK.min(total - start);
                        if let Err(e) = work(&mut lane, start, len) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        bar.inc(len);
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(CliError::Failed("a transfer thread panicked".to_owned()))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// The smallest size a pool is opened with: PMDK's minimum pool (8 KiB),
/// so that a pool with a header still has a usable byte after it (rpmemd
/// refuses a size of 4096 with headers).
pub const MIN_OPEN: u64 = 8192;

/// The region size that covers `[offset, offset + len)`, with the default
/// offset ([`HEADER_END`]) when `offset` is `None`; at least [`MIN_OPEN`].
fn region_size(offset: Option<u64>, len: u64) -> CliResult<u64> {
    let at = offset.unwrap_or(HEADER_END);
    at.checked_add(len)
        .and_then(round_up_page)
        .map(|end| end.max(MIN_OPEN))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "offset {at} plus length {len} is past the largest possible pool (2^64 bytes)"
            ))
        })
}

/// The offset to use: the one given, else the first byte after the header
/// (0 for a pool without headers).
fn data_offset(offset: Option<u64>, pool: &RemotePool) -> u64 {
    offset.unwrap_or(if pool.has_headers() { HEADER_END } else { 0 })
}

/// The summary line after a progress bar.
fn finish(bytes: u64, started: Instant, summary: String) {
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        format!(" at {}/s", human_bytes((bytes as f64 / secs) as u64))
    } else {
        String::new()
    };
    tell!("{summary}{rate}");
}

fn open(
    pool_args: &crate::cli::PoolArgs,
    region: Arc<Region>,
    lanes: u32,
    opts: &rpmem::Options,
    size: u64,
) -> CliResult<RemotePool> {
    let (target, set) = (&pool_args.target, &pool_args.pool_set);
    RemotePool::open(target, set, region, lanes, opts).map_err(CliError::rpmem(format!(
        "cannot open pool set {set:?} on {target} with a size of {size} bytes"
    )))
}

/// `rpmem put`.
pub fn put(args: &PutArgs) -> CliResult {
    let opts = args.conn.options()?;
    let name = describe(&args.file, "standard input");
    let source = Source::open(&args.file)?;
    let len = source.len()?;
    let size = region_size(args.offset, len)?;
    let region = region(size, "the pool size needed")?;
    let pool = open(
        &args.pool,
        Arc::clone(&region),
        args.transfer.lanes,
        &opts,
        size,
    )?;
    let offset = data_offset(args.offset, &pool);
    let lanes_used = args.transfer.lanes.min(pool.nlanes()).max(1);
    if pool.has_headers() && offset < HEADER_END && len > 0 {
        let _ = pool.close();
        return Err(CliError::Usage(format!(
            "--offset {offset} is inside the pool header of pool set {:?} on {} (its first \
             {HEADER_END} bytes), which put may not write; give an offset of {HEADER_END} or more",
            args.pool.pool_set, args.pool.target
        )));
    }
    let bar = progress(
        len,
        &format!("put {}", display_name(&args.file)),
        &args.transfer,
    );
    let started = Instant::now();
    let result = for_each_chunk(&pool, args.transfer.lanes, len, &bar, |lane, at, n| {
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
        source
            .read_at(&mut buf, at)
            .map_err(CliError::io(format!("cannot read {name} at byte {at}")))?;
        let pool_at = offset + at;
        let region_at = usize::try_from(pool_at).unwrap_or(usize::MAX);
        region
            .write_at(region_at, &buf)
            .map_err(CliError::rpmem("copying file bytes into the region"))?;
        lane.persist(pool_at, n, PERSIST_RELAXED)
            .map_err(CliError::rpmem(format!(
                "cannot persist {n} bytes at pool offset {pool_at} of pool set {:?} on {}",
                args.pool.pool_set, args.pool.target
            )))
    });
    let shown = !bar.is_hidden();
    bar.finish_and_clear();
    result?;
    let elapsed = started.elapsed();
    if shown {
        finish(
            len,
            started,
            format!(
                "put {} bytes of {name} into pool set {:?} on {} at offset {offset}",
                len, args.pool.pool_set, args.pool.target
            ),
        );
    }
    pool.close().map_err(CliError::rpmem(format!(
        "closing pool set {:?} on {}",
        args.pool.pool_set, args.pool.target
    )))?;
    if args.transfer.json {
        emit!(
            "{}",
            transfer_json(&args.pool, &name, offset, len, lanes_used, elapsed)
        );
    }
    Ok(())
}

/// The `--json` object of `put` and `get`.
fn transfer_json(
    pool: &crate::cli::PoolArgs,
    file: &str,
    offset: u64,
    len: u64,
    lanes: u32,
    elapsed: Duration,
) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    serde_json::json!({
        "target": pool.target,
        "pool_set": pool.pool_set,
        "file": file,
        "offset": offset,
        "length": len,
        "lanes": lanes,
        "seconds": secs,
        "mib_s": if secs > 0.0 { Some(len as f64 / secs / f64::from(1u32 << 20)) } else { None },
    })
}

/// Most chunks `get` reads at once before writing them out in order.
const WINDOW_CHUNKS: u64 = 64;

/// `rpmem get`.
pub fn get(args: &GetArgs) -> CliResult {
    let opts = args.conn.options()?;
    let len = args.length;
    let size = region_size(args.offset, len)?;
    let region = region(size, "the pool size needed")?;
    // The output first: a directory that cannot be written fails before
    // anything is started on the target. Dropping the sink on failure
    // removes only its temporary file.
    let mut sink = Sink::prepare(&args.file)?;
    if args.transfer.json && sink.is_stdout() {
        return Err(CliError::Usage(
            "--json cannot be used when get writes the data to standard output".to_owned(),
        ));
    }
    let pool = open(&args.pool, region, args.transfer.lanes, &opts, size)?;
    let offset = data_offset(args.offset, &pool);
    sink.start()?;
    let bar = progress(
        len,
        &format!("get {}", display_name(&args.file)),
        &args.transfer,
    );
    let started = Instant::now();
    let lanes = args.transfer.lanes.min(pool.nlanes()).max(1);
    let window = CHUNK * u64::from(lanes).min(WINDOW_CHUNKS);
    let mut buf = Vec::new();
    let mut done = 0;
    let mut result = Ok(());
    while done < len && result.is_ok() {
        let n = window.min(len - done);
        buf.resize(usize::try_from(n).unwrap_or(0), 0);
        result = read_range(&pool, lanes, offset + done, &mut buf, &bar, args)
            .and_then(|()| sink.write_all(&buf));
        done += n;
    }
    let shown = !bar.is_hidden();
    bar.finish_and_clear();
    result?;
    let name = sink.name();
    sink.commit()?;
    let elapsed = started.elapsed();
    if shown {
        finish(
            len,
            started,
            format!(
                "got {len} bytes from pool set {:?} on {} at offset {offset} into {name}",
                args.pool.pool_set, args.pool.target,
            ),
        );
    }
    pool.close().map_err(CliError::rpmem(format!(
        "closing pool set {:?} on {}",
        args.pool.pool_set, args.pool.target
    )))?;
    if args.transfer.json {
        emit!(
            "{}",
            transfer_json(&args.pool, &name, offset, len, lanes, elapsed)
        );
    }
    Ok(())
}

/// Reads pool bytes `[at, at + buf.len())` into `buf`, 1 MiB chunks spread
/// over `lanes` lanes, one thread each.
fn read_range(
    pool: &RemotePool,
    lanes: u32,
    at: u64,
    buf: &mut [u8],
    bar: &ProgressBar,
    args: &GetArgs,
) -> CliResult {
    let chunk = usize::try_from(CHUNK).unwrap_or(usize::MAX);
    let nchunks = buf.len().div_ceil(chunk);
    let chunks = Mutex::new(buf.chunks_mut(chunk).enumerate());
    let handles = (0..lanes.min(u32::try_from(nchunks).unwrap_or(u32::MAX)).max(1))
        .map(|i| pool.lane(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::rpmem("taking the pool's lanes"))?;
    let results: Vec<CliResult> = std::thread::scope(|s| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|mut lane| {
                let chunks = &chunks;
                s.spawn(move || -> CliResult {
                    loop {
                        let next = chunks
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .next();
                        let Some((i, part)) = next else {
                            return Ok(());
                        };
                        let pool_at = at + i as u64 * CHUNK;
                        let n = part.len();
                        lane.read(pool_at, part).map_err(CliError::rpmem(format!(
                            "cannot read {n} bytes at pool offset {pool_at} of pool set {:?} on {}",
                            args.pool.pool_set, args.pool.target
                        )))?;
                        bar.inc(n as u64);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(CliError::Failed("a transfer thread panicked".to_owned()))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

fn display_name(p: &Path) -> String {
    if crate::files::is_dash(p) {
        return "-".to_owned();
    }
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
