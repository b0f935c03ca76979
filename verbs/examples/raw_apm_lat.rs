//! The transport's own cost of APM's persist, without rpmem: a 64-byte RDMA
//! WRITE followed by an 8-byte RDMA READ on the same queue pair, waited for
//! by busy polling, in rounds that alternate with the 8-byte READ alone (what
//! `ib_read_lat` measures); prints the median and the 99th percentile of
//! each and the ratio of the medians.
//!
//! ```text
//! raw_apm_lat ADDR [ITERATIONS] [--separate]
//! ```
//!
//! ADDR is an address of an RDMA device (the rxe rig's `RXE_ADDR`); the
//! target side runs in a thread of this process on the same device, as
//! perftest's server does in the rig. By default the WRITE and the READ go
//! out as one list (one `ibv_post_send`), as rpmem's lanes post them;
//! `--separate` posts them one by one. The benchmark of `tests/rxe/
//! verbs-suite.sh` sets rpmem's APM figure beside this one (the library's
//! overhead over the same work requests) and beside `ib_read_lat` (the
//! issue's baseline, one READ); the ratio of the two raw figures is the
//! floor any APM persist has on the device, whoever posts it.
//!
//! Output, one line: `raw WRITE+READ 64 B: p50 <us> us, p99 <us> us; READ 8
//! B alone: p50 <us> us, p99 <us> us; ratio <r>; <n> iterations each,
//! alternating (one list|separate posts)`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rpmem_verbs::{
    resolve, Access, Buf, Connected, EndpointConfig, Listener, Mr, Remote, Wake, WcKind,
};

const T: Duration = Duration::from_secs(10);
/// Iterations run before the measured ones.
const WARMUP: usize = 1000;

fn config(source: Option<Arc<Mr>>, remote: Option<Remote>) -> EndpointConfig {
    EndpointConfig {
        send_slots: 1,
        send_slot_len: 64,
        recv_slots: 1,
        recv_slot_len: 64,
        read_slots: 0,
        read_slot_len: 0,
        max_send_wr: 16,
        max_inline: 64,
        source,
        remote,
    }
}

fn run(addr: SocketAddr, iterations: usize, separate: bool) -> Result<String, String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: rpmem_verbs::Error| format!("{what}: {err}")
    };
    let listener = Listener::bind(addr, 4).map_err(e("listening"))?;
    let port = listener
        .local_addr()
        .ok_or("the listener has no address")?
        .port();
    let pd = listener.pd().map_err(e("protection domain"))?;
    let target = Mr::register(
        &pd,
        Buf::new(65536).map_err(e("target buffer"))?,
        Access::LOCAL_WRITE | Access::REMOTE_WRITE | Access::REMOTE_READ,
    )
    .map_err(e("registering the target"))?;
    let remote = Remote {
        addr: target.addr(),
        rkey: target.rkey(),
        len: target.len() as u64,
    };
    let server = thread::spawn(move || -> Result<(), String> {
        let req = listener
            .next_request(T)
            .map_err(e("waiting for the connection"))?
            .ok_or("no connection request")?;
        let mut ep = req
            .endpoint(&pd, config(None, None))
            .map_err(e("target endpoint"))?
            .accept(b"ok", T)
            .map_err(e("accepting"))?;
        // The target CPU does nothing: wait for the disconnect.
        loop {
            let mut out = Vec::new();
            ep.poll(&mut out).map_err(e("polling"))?;
            if ep.wait(Duration::from_millis(200)).map_err(e("waiting"))? == Wake::Disconnected {
                drop(target);
                return Ok(());
            }
        }
    });
    let r = resolve(SocketAddr::new(addr.ip(), port), T).map_err(e("resolving"))?;
    let cpd = r.pd().map_err(e("client protection domain"))?;
    let src = Arc::new(
        Mr::register(
            &cpd,
            Buf::new(4096).map_err(e("source buffer"))?,
            Access::LOCAL_READ,
        )
        .map_err(e("registering the source"))?,
    );
    let mut ep = match r
        .endpoint(&cpd, config(Some(src), Some(remote)))
        .map_err(e("client endpoint"))?
        .connect(b"hi", T)
        .map_err(e("connecting"))?
    {
        Connected::Accepted(ep, _) => ep,
        Connected::Rejected(_, status) => return Err(format!("rejected (status {status})")),
    };
    // Alternating rounds: the WRITE + READ of APM, then the READ alone (what
    // `ib_read_lat` measures), so that both figures see the same moments of
    // the device and the host.
    let mut both = Vec::with_capacity(iterations);
    let mut alone = Vec::with_capacity(iterations);
    let mut wcs = Vec::new();
    // Rounds to warm up, not counted (under QEMU's TCG the first runs of a
    // code path also pay for translating it).
    for i in 0..iterations.saturating_add(WARMUP) {
        for with_write in [true, false] {
            let start = Instant::now();
            if !separate {
                ep.begin_batch();
            }
            if with_write {
                ep.post_write(1, 0, 64, 4096, false)
                    .map_err(e("posting the WRITE"))?;
            }
            ep.post_read_discard(2, 0, 8)
                .map_err(e("posting the READ"))?;
            if !separate {
                ep.end_batch().map_err(e("posting the list"))?;
            }
            loop {
                wcs.clear();
                ep.poll(&mut wcs).map_err(e("polling"))?;
                if let Some(wc) = wcs.iter().find(|w| w.kind == WcKind::Discard) {
                    if !wc.is_ok() {
                        return Err(format!("the READ failed: {}", wc.status_str()));
                    }
                    break;
                }
            }
            if i >= WARMUP {
                let took = start.elapsed();
                if with_write {
                    both.push(took);
                } else {
                    alone.push(took);
                }
            }
        }
    }
    drop(ep);
    server
        .join()
        .map_err(|_| "the target thread panicked".to_owned())??;
    let (b50, b99) = percentiles(&mut both);
    let (a50, a99) = percentiles(&mut alone);
    Ok(format!(
        "raw WRITE+READ 64 B: p50 {b50:.2} us, p99 {b99:.2} us; READ 8 B alone: p50 {a50:.2} us, \
         p99 {a99:.2} us; ratio {:.2}; {} iterations each, alternating ({})",
        if a50 > 0.0 { b50 / a50 } else { 0.0 },
        both.len(),
        if separate {
            "separate posts"
        } else {
            "one list"
        }
    ))
}

/// The median and the 99th percentile of `lat`, in microseconds.
fn percentiles(lat: &mut [Duration]) -> (f64, f64) {
    lat.sort_unstable();
    let pick = |q: f64| {
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    (pick(0.5), pick(0.99))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let separate = args.iter().any(|a| a == "--separate");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--separate").collect();
    let usage = "usage: raw_apm_lat ADDR [ITERATIONS] [--separate]";
    let Some(addr) = rest.first().and_then(|a| a.parse().ok()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let iterations = match rest.get(1) {
        None => 2000,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("ITERATIONS must be a positive number, not {n:?}\n{usage}");
                return ExitCode::from(2);
            }
        },
    };
    match run(SocketAddr::new(addr, 0), iterations, separate) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("raw_apm_lat: {msg}");
            ExitCode::FAILURE
        }
    }
}
