//! Where a session's data path listens (the server side of `SSH_CONNECTION`)
//! and the session secret its connections must prove.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};

use rpmem_core::wire::tcp::SECRET_LEN;

/// Environment variable with `SSH_CONNECTION`'s
/// `client_ip client_port server_ip server_port`.
pub const SSH_CONNECTION_ENV: &str = "SSH_CONNECTION";

/// Why the listening address cannot be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SSH_CONNECTION {value:?} has no usable server address (third field): {reason}")]
pub struct ListenAddrError {
    /// The variable's value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The address the data path listens on: the server side of
/// `SSH_CONNECTION` (its third field, IPv4 or IPv6, with an optional
/// `%zone`), or 127.0.0.1 when the variable is unset (local mode: rpmemd
/// started without ssh, by tests and `rpmem demo`). The port is 0 (the
/// kernel picks one).
pub fn listen_addr(ssh_connection: Option<&str>) -> Result<SocketAddr, ListenAddrError> {
    let Some(value) = ssh_connection else {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    };
    let err = |reason| ListenAddrError {
        value: value.to_owned(),
        reason,
    };
    let field = value
        .split_ascii_whitespace()
        .nth(2)
        .ok_or_else(|| err("fewer than three fields"))?;
    let (ip, zone) = match field.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (field, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| err("not an IP address"))?;
    match (ip, zone) {
        (IpAddr::V4(_), Some(_)) => Err(err("an IPv4 address with a zone")),
        (IpAddr::V4(_), None) | (IpAddr::V6(_), None) => Ok(SocketAddr::new(ip, 0)),
        (IpAddr::V6(v6), Some(zone)) => {
            let scope = zone_index(zone).ok_or_else(|| err("unknown IPv6 zone"))?;
            Ok(SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope)))
        }
    }
}

/// The only address the data path accepts connections from: the client
/// side of `SSH_CONNECTION` (its first field, an IPv6 zone dropped), or
/// `None` (from anyone) when the variable is unset (local mode) or its
/// first field is not an IP address.
pub fn client_addr(ssh_connection: Option<&str>) -> Option<IpAddr> {
    let field = ssh_connection?.split_ascii_whitespace().next()?;
    let ip = field.split_once('%').map_or(field, |(ip, _)| ip);
    ip.parse().ok()
}

/// An IPv6 zone (`eth0` or a number) as an interface index.
fn zone_index(zone: &str) -> Option<u32> {
    if let Ok(n) = zone.parse::<u32>() {
        return Some(n);
    }
    let name = std::ffi::CString::new(zone).ok()?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// A fresh session secret from the kernel's random source (`getrandom`).
pub fn fresh_secret() -> io::Result<[u8; SECRET_LEN]> {
    let secret = rpmem_core::seal::fresh_random::<SECRET_LEN>()?;
    if secret.iter().all(|&b| b == 0) {
        // 2^-256: the kernel's random source is broken.
        return Err(io::Error::other("getrandom returned 32 zero bytes"));
    }
    Ok(secret)
}
