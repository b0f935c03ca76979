//! The raw baselines of `rpmem bench` and `rpmem demo`: what the kernel and
//! the hardware give without rpmem, measured with the standard library only.
//!
//! A TCP ping-pong ([`PING_LEN`] bytes out, [`PONG_LEN`] back: the shape of
//! a small persist and its answer), a one-way TCP stream, 1 MiB written and
//! answered, and `memcpy` bandwidth; plus the statistics the benchmark
//! reports them with ([`percentile`], [`mib_per_s`]).
//!
//! This file depends on nothing but `std`, so that librpmem's benchmark
//! example compiles the same file (`#[path]`) for its own TCP baseline
//! instead of a copy, and rpmem's library keeps no benchmark API.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bytes of one message of the ping-pong baseline (a small persist).
pub const PING_LEN: usize = 64;
/// Bytes of one answer of the ping-pong baseline (a persist response).
pub const PONG_LEN: usize = 8;

/// The `q`-quantile (0.0 to 1.0) of sorted samples, nearest rank; 0 for no
/// samples.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    let index = rank.clamp(1, n) - 1;
    sorted.get(index).copied().unwrap_or(0)
}

/// MiB/s for `bytes` moved in `elapsed`.
pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / (1u64 << 20) as f64 / secs
}

/// A connected pair of TCP sockets on `ip`, with `TCP_NODELAY` (as rpmem's
/// lanes have it): (client, server).
fn tcp_pair(ip: IpAddr) -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
    let addr = listener.local_addr()?;
    let client = TcpStream::connect(addr)?;
    let (server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}

/// Reads exactly `buf.len()` bytes; on a non-blocking socket it spins.
fn read_exact_spin(sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match sock.read(buf.get_mut(got..).unwrap_or(&mut [])) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf`; on a non-blocking socket it spins.
fn write_all_spin(sock: &mut TcpStream, buf: &[u8]) -> io::Result<()> {
    let mut put = 0;
    while put < buf.len() {
        match sock.write(buf.get(put..).unwrap_or(&[])) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => put += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs `serve` on the server end of a fresh TCP pair on `ip` (see
/// [`tcp_pair`]) in a thread named `name`, and `drive` on the client end in
/// this thread; then shuts the client end down and joins the thread. Both
/// ends are non-blocking when `busy`. The client's error comes first, then
/// the server's.
fn with_peer<T>(
    ip: IpAddr,
    busy: bool,
    name: &str,
    serve: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
    drive: impl FnOnce(&mut TcpStream) -> io::Result<T>,
) -> io::Result<T> {
    let (mut client, server) = tcp_pair(ip)?;
    client.set_nonblocking(busy)?;
    server.set_nonblocking(busy)?;
    let peer = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || serve(server))?;
    let result = drive(&mut client);
    let _ = client.shutdown(Shutdown::Both);
    let served = peer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other(format!("the {name} thread panicked"))));
    let value = result?;
    served?;
    Ok(value)
}

/// `warmup` untimed calls of `exchange`, then `rounds` timed ones. Returns
/// the sorted times of the timed calls in nanoseconds.
fn timed_rounds(
    warmup: u32,
    rounds: u32,
    mut exchange: impl FnMut() -> io::Result<()>,
) -> io::Result<Vec<u64>> {
    let mut samples = Vec::with_capacity(usize::try_from(rounds).unwrap_or(0));
    for i in 0..rounds.saturating_add(warmup) {
        let t = Instant::now();
        exchange()?;
        if i >= warmup {
            samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    }
    samples.sort_unstable();
    Ok(samples)
}

/// Round trips of [`PING_LEN`] bytes out and [`PONG_LEN`] back; `busy`:
/// both ends poll non-blocking sockets without ever sleeping. Returns the
/// sorted round-trip times in nanoseconds.
pub fn ping_pong(ip: IpAddr, busy: bool, rounds: u32) -> io::Result<Vec<u64>> {
    let warmup = (rounds / 10).clamp(1, 1000);
    let total = rounds.saturating_add(warmup);
    let echo = move |mut server: TcpStream| {
        let mut ping = [0u8; PING_LEN];
        let pong = [1u8; PONG_LEN];
        for _ in 0..total {
            read_exact_spin(&mut server, &mut ping)?;
            write_all_spin(&mut server, &pong)?;
        }
        Ok(())
    };
    with_peer(ip, busy, "baseline-pong", echo, |client| {
        let ping = [2u8; PING_LEN];
        let mut pong = [0u8; PONG_LEN];
        timed_rounds(warmup, rounds, || {
            write_all_spin(client, &ping)?;
            read_exact_spin(client, &mut pong)
        })
    })
}

/// One-way stream of `bytes` bytes in 1 MiB writes; the reader discards
/// them and answers one byte at the end. Returns MiB/s.
pub fn tcp_stream(ip: IpAddr, bytes: u64) -> io::Result<f64> {
    const CHUNK: usize = 1 << 20;
    let sink = move |mut server: TcpStream| {
        let mut buf = vec![0u8; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let n = server.read(buf.get_mut(..want).unwrap_or(&mut []))?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left = left.saturating_sub(n as u64);
        }
        server.write_all(&[1])
    };
    let elapsed = with_peer(ip, false, "baseline-sink", sink, |client| {
        let data = vec![3u8; CHUNK];
        let start = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            client.write_all(data.get(..n).unwrap_or(&[]))?;
            left -= n as u64;
        }
        client.read_exact(&mut [0u8; 1])?;
        Ok(start.elapsed())
    })?;
    Ok(mib_per_s(bytes, elapsed))
}

/// `rounds` times: `len` bytes written to a TCP socket, and the reader's
/// one-byte answer once it has all of them (blocking I/O, `TCP_NODELAY`).
/// Returns the sorted times in nanoseconds.
pub fn write_ack(ip: IpAddr, len: usize, rounds: u32) -> io::Result<Vec<u64>> {
    let warmup = (rounds / 10).clamp(1, 50);
    let total = rounds.saturating_add(warmup);
    let reader = move |mut server: TcpStream| {
        let mut buf = vec![0u8; len];
        for _ in 0..total {
            server.read_exact(&mut buf)?;
            server.write_all(&[1])?;
        }
        Ok(())
    };
    with_peer(ip, false, "baseline-ack", reader, |client| {
        let data = vec![4u8; len];
        let mut ack = [0u8; 1];
        timed_rounds(warmup, rounds, || {
            client.write_all(&data)?;
            client.read_exact(&mut ack)
        })
    })
}

/// `memcpy` bandwidth: copies between two 64 MiB buffers (touched first)
/// until `bytes` were copied. Returns MiB/s.
pub fn memcpy_bandwidth(bytes: u64) -> f64 {
    const LEN: usize = 64 << 20;
    let src = vec![5u8; LEN];
    let mut dst = vec![0u8; LEN];
    dst.copy_from_slice(&src);
    let rounds = bytes.div_ceil(LEN as u64).max(1);
    let start = Instant::now();
    for _ in 0..rounds {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    mib_per_s(rounds * LEN as u64, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let cases: [(&[u64], f64, u64); 7] = [
            (&[], 0.5, 0),
            (&[7], 0.5, 7),
            (&[7], 0.99, 7),
            (&[1, 2, 3, 4], 0.5, 2),
            (&[1, 2, 3, 4], 0.75, 3),
            (&[1, 2, 3, 4], 1.0, 4),
            (&[1, 2, 3, 4], 0.0, 1),
        ];
        for (sorted, q, want) in cases {
            assert_eq!(percentile(sorted, q), want, "{sorted:?} at {q}");
        }
    }

    #[test]
    fn percentile_of_a_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
    }

    #[test]
    fn mib_per_s_divides() {
        assert_eq!(mib_per_s(1 << 20, Duration::from_secs(1)), 1.0);
        assert_eq!(mib_per_s(1 << 20, Duration::ZERO), 0.0);
    }

    #[test]
    fn ping_pong_returns_every_round_sorted() {
        let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        for busy in [true, false] {
            let s = ping_pong(lo, busy, 50).expect("loopback ping-pong");
            assert_eq!(s.len(), 50);
            assert!(s.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
        }
    }

    #[test]
    fn write_ack_and_stream_move_all_their_bytes() {
        let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let s = write_ack(lo, 100_000, 20).expect("loopback write-ack");
        assert_eq!(s.len(), 20);
        assert!(s.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
        // Not a whole number of 1 MiB writes: the last one is short.
        let mib_s = tcp_stream(lo, (3 << 20) + 5).expect("loopback stream");
        assert!(mib_s > 0.0, "{mib_s}");
    }
}
