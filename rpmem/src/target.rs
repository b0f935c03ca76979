//! Target node addresses: `[<user>@]<host>[:<port>]`, with an IPv6 address
//! in brackets when a port follows (`[::1]:2222`).
//!
//! The rules are those of PMDK's `rpmem_target_parse`:
//!
//! * the user is everything before the first `@`;
//! * a host starting with `[` runs to the next `]`, and `:<port>` may follow;
//! * otherwise a host with exactly one `:` is `host:port`, and a host with
//!   two or more (a bare IPv6 address) has no port;
//! * the host must not be empty.
//!
//! Stricter than PMDK (each would give ssh an argument it cannot use, or an
//! option it must not see):
//!
//! * an empty user (`@host`), an empty port (`host:`), a port that is not a
//!   decimal number in 1..=65535, and anything between `]` and `:` are
//!   refused (PMDK passed them on or ignored them);
//! * a user or host that starts with `-` is refused: ssh would take it as an
//!   option (`-oProxyCommand=...`);
//! * whitespace, control characters and a second `@` are refused anywhere.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::Error;

/// A parsed target node address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

impl Target {
    /// Parses `[<user>@]<host>[:<port>]` (see the module documentation).
    pub fn parse(text: &str) -> Result<Target, Error> {
        let bad = |reason: &str| Error::InvalidTarget {
            target: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(bad("it is empty; expected [user@]host[:port]"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or a control character"));
        }
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => {
                if user.is_empty() {
                    return Err(bad("the user name before '@' is empty"));
                }
                if user.starts_with('-') {
                    return Err(bad(
                        "the user name starts with '-', which ssh would take as an option",
                    ));
                }
                (Some(user.to_owned()), rest)
            }
            None => (None, text),
        };
        if rest.contains('@') {
            return Err(bad("it contains more than one '@'"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(bad("'[' opens an IPv6 address but no ']' closes it"));
            };
            let port = if after.is_empty() {
                None
            } else if let Some(port) = after.strip_prefix(':') {
                Some(port)
            } else {
                return Err(bad("only ':<port>' may follow the ']' of an IPv6 address"));
            };
            (host, port)
        } else {
            let colons = rest.matches(':').count();
            if colons == 1 {
                match rest.split_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                }
            } else {
                // No colon, or a bare IPv6 address (no port possible).
                (rest, None)
            }
        };
        if host.is_empty() {
            return Err(bad("the host name is empty"));
        }
        if host.starts_with('-') {
            return Err(bad(
                "the host name starts with '-', which ssh would take as an option",
            ));
        }
        if host.contains('[') || host.contains(']') {
            return Err(bad("brackets may only enclose the whole host name"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                parse_port(p)
                    .ok_or_else(|| bad("the port must be a decimal number from 1 to 65535"))?,
            ),
        };
        Ok(Target {
            user,
            host: host.to_owned(),
            port,
        })
    }

    /// The user name, if one was given.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host name or address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The ssh port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `user@host` or `host`: the destination argument of ssh (PMDK passes
    /// an IPv6 address without brackets, as ssh expects).
    pub fn ssh_destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// True for `localhost` and loopback addresses (`127.0.0.0/8`, `::1`):
    /// the only hosts local mode accepts.
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    }
}

/// A decimal port in 1..=65535 (no sign, no blanks).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Target, Error> {
        Target::parse(s)
    }
}

impl fmt::Display for Target {
    /// The canonical form: brackets around an IPv6 address when a port follows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match self.port {
            Some(port) if self.host.contains(':') => write!(f, "[{}]:{port}", self.host),
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("host", None, "host", None)]
    #[case("user@host", Some("user"), "host", None)]
    #[case("host:2222", None, "host", Some(2222))]
    #[case("user@host:22", Some("user"), "host", Some(22))]
    #[case("127.0.0.1", None, "127.0.0.1", None)]
    #[case("127.0.0.1:65535", None, "127.0.0.1", Some(65535))]
    #[case("::1", None, "::1", None)]
    #[case("fe80::1:2", None, "fe80::1:2", None)]
    #[case("[::1]", None, "::1", None)]
    #[case("[::1]:2222", None, "::1", Some(2222))]
    #[case("alice@[fe80::1]:1", Some("alice"), "fe80::1", Some(1))]
    #[case("alice@::1", Some("alice"), "::1", None)]
    #[case("a.b-c.example", None, "a.b-c.example", None)]
    fn parses_pmdk_forms(
        #[case] text: &str,
        #[case] user: Option<&str>,
        #[case] host: &str,
        #[case] port: Option<u16>,
    ) {
        let t = Target::parse(text).expect("valid target");
        assert_eq!(t.user(), user);
        assert_eq!(t.host(), host);
        assert_eq!(t.port(), port);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("@host", "user name before '@' is empty")]
    #[case("user@", "host name is empty")]
    #[case(":22", "host name is empty")]
    #[case("[]:22", "host name is empty")]
    #[case("[::1", "no ']' closes it")]
    #[case("[::1]x:22", "only ':<port>' may follow")]
    #[case("[::1]:", "port must be a decimal number")]
    #[case("host:", "port must be a decimal number")]
    #[case("host:0", "port must be a decimal number")]
    #[case("host:65536", "port must be a decimal number")]
    #[case("host:+22", "port must be a decimal number")]
    #[case("host:ssh", "port must be a decimal number")]
    #[case("-oProxyCommand=x", "starts with '-'")]
    #[case("-x@host", "starts with '-'")]
    #[case("a@b@c", "more than one '@'")]
    #[case("ho st", "whitespace")]
    #[case("host\n", "whitespace")]
    #[case("ho]st", "brackets")]
    fn refuses_bad_targets(#[case] text: &str, #[case] why: &str) {
        let err = Target::parse(text).expect_err("invalid target");
        let msg = err.to_string();
        assert!(msg.contains(why), "{msg:?} should contain {why:?}");
        assert!(
            msg.contains(&format!("{text:?}")),
            "{msg:?} should name the target"
        );
    }

    #[rstest]
    #[case("user@host", "user@host")]
    #[case("[::1]:22", "::1")]
    #[case("bob@[::1]", "bob@::1")]
    fn ssh_destination_has_no_brackets(#[case] text: &str, #[case] dest: &str) {
        assert_eq!(Target::parse(text).expect("valid").ssh_destination(), dest);
    }

    #[rstest]
    #[case("localhost", true)]
    #[case("LocalHost:22", true)]
    #[case("127.0.0.1", true)]
    #[case("127.1.2.3:7", true)]
    #[case("::1", true)]
    #[case("[::1]:22", true)]
    #[case("u@localhost", true)]
    #[case("example.com", false)]
    #[case("10.0.0.1", false)]
    #[case("::2", false)]
    fn loopback(#[case] text: &str, #[case] expected: bool) {
        assert_eq!(Target::parse(text).expect("valid").is_loopback(), expected);
    }

    proptest! {
        /// Display then parse gives the same target back.
        #[test]
        fn display_round_trips(
            user in proptest::option::of("[a-z][a-z0-9_]{0,8}"),
            host in prop_oneof!["[a-z][a-z0-9.-]{0,12}", "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,5}"],
            port in proptest::option::of(1u16..),
        ) {
            let t = Target { user, host, port };
            let back = Target::parse(&t.to_string()).expect("display output parses");
            prop_assert_eq!(back, t);
        }
    }
}
