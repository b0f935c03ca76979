//! The session options of a C call: `rpmem::Options::from_env()` plus
//! PMDK's provider switches `RPMEM_ENABLE_VERBS` and `RPMEM_ENABLE_SOCKETS`.

use rpmem::{Options, Transport, ENV_PROVIDER};

/// `RPMEM_ENABLE_VERBS`: PMDK's switch of the libfabric verbs provider.
pub const ENV_ENABLE_VERBS: &str = "RPMEM_ENABLE_VERBS";
/// `RPMEM_ENABLE_SOCKETS`: PMDK's switch of the libfabric sockets provider.
pub const ENV_ENABLE_SOCKETS: &str = "RPMEM_ENABLE_SOCKETS";

/// Why the environment cannot be used (always `EINVAL`).
#[derive(Debug)]
pub struct EnvError(pub String);

/// Options from the environment, read through `lookup`.
///
/// `RPMEM_PROVIDER` (`tcp` or `verbs`) decides the data path when set.
/// Otherwise `RPMEM_ENABLE_VERBS` set to a non-zero number selects the
/// native RDMA path (PMDK's verbs provider, which wins over sockets there
/// too), and everything else uses the TCP path, which takes the place of
/// PMDK's sockets provider (`RPMEM_ENABLE_SOCKETS` is accepted; TCP is
/// always available). Both switches must be decimal numbers when set, as
/// PMDK's `strtol` check requires.
pub fn options_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Options, EnvError> {
    let opts = Options::from_lookup(&lookup).map_err(|e| EnvError(e.to_string()))?;
    let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let verbs = switch(ENV_ENABLE_VERBS, get(ENV_ENABLE_VERBS))?;
    switch(ENV_ENABLE_SOCKETS, get(ENV_ENABLE_SOCKETS))?;
    if get(ENV_PROVIDER).is_some() {
        return Ok(opts);
    }
    let transport = match verbs {
        Some(v) if v != 0 => Transport::Verbs,
        _ => Transport::Tcp,
    };
    Ok(opts.to_builder().transport(transport).build())
}

/// Options from the process environment.
pub fn options() -> Result<Options, EnvError> {
    options_from(|name| std::env::var(name).ok())
}

/// Parses a PMDK boolean switch: a decimal `int`.
fn switch(name: &str, value: Option<String>) -> Result<Option<i64>, EnvError> {
    let Some(v) = value else { return Ok(None) };
    let n = v
        .trim_start()
        .parse::<i64>()
        .ok()
        .filter(|n| i32::try_from(*n).is_ok());
    n.map(Some).ok_or_else(|| {
        EnvError(format!(
            "environment variable {name}={v:?} is invalid: expected a decimal number (0 disables, other values enable)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> Result<Options, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        options_from(|name| map.get(name).cloned())
    }

    #[test]
    fn provider_switches_map_onto_transports() {
        let t = |vars: &[(&str, &str)]| opts(vars).expect("valid").transport();
        assert_eq!(t(&[]), Transport::Tcp);
        assert_eq!(t(&[(ENV_ENABLE_SOCKETS, "1")]), Transport::Tcp);
        assert_eq!(t(&[(ENV_ENABLE_VERBS, "0")]), Transport::Tcp);
        assert_eq!(t(&[(ENV_ENABLE_VERBS, "1")]), Transport::Verbs);
        assert_eq!(
            t(&[(ENV_ENABLE_VERBS, "1"), (ENV_ENABLE_SOCKETS, "1")]),
            Transport::Verbs
        );
        assert_eq!(
            t(&[(ENV_ENABLE_VERBS, "1"), ("RPMEM_PROVIDER", "tcp")]),
            Transport::Tcp
        );
        assert_eq!(t(&[("RPMEM_PROVIDER", "verbs")]), Transport::Verbs);
    }

    #[test]
    fn bad_switches_and_variables_are_refused_with_their_name() {
        for (name, value) in [
            (ENV_ENABLE_VERBS, "yes"),
            (ENV_ENABLE_SOCKETS, "1x"),
            (ENV_ENABLE_VERBS, "99999999999"),
            ("RPMEM_MAX_NLANES", "0"),
            ("RPMEM_LAUNCH", "rsh"),
        ] {
            let e = opts(&[(name, value)]).expect_err("invalid");
            assert!(e.0.contains(name), "{name}: {}", e.0);
        }
    }
}
