//! Target platforms and the (method x platform) configurations the
//! simulator runs, with the policy's verdict on each.
//!
//! Three methods: GPSPM and APM (announced by the target in PMDK's
//! `persist_method` field) and RDMA FLUSH (offered by the target with an
//! extension flag and chosen by the initiator, see
//! [`rpmem_core::policy`]). The model's NICs always support FLUSH, so RDMA
//! FLUSH is allowed exactly where [`policy::offer_rdma_flush`] offers it.

use core::fmt;

use rpmem_core::flush::FlushMode;
use rpmem_core::policy::{self, Method, Placement, PolicyInput};

/// What the target machine looks like to a byte the NIC or the CPU writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Name used on the command line and in reports.
    pub name: &'static str,
    /// DDIO on (allocating writes): NIC writes land in the CPU cache. Off
    /// (non-allocating writes): they go straight to the memory controller.
    pub ddio: bool,
    /// eADR: the CPU cache is inside the persistence domain.
    pub eadr: bool,
    /// The pool is persistent memory. When false it is a file-backed DRAM
    /// mapping (page cache) made durable only by `msync` (or the kernel's
    /// own write-back).
    pub pmem: bool,
    /// The memory controller's write-pending queue is NOT in the persistence
    /// domain for the failure modelled (a Device DAX region whose ADR cannot
    /// be trusted): only `deep_flush` drains it to media. On such a platform
    /// only deep persists promise durability.
    pub wpq_volatile: bool,
}

impl Platform {
    /// The policy's input for this platform with the administrator's
    /// settings. `persist-apm` may only be set when DDIO is off
    /// (`rpmemd(1)`: "must be set only if the target platform has
    /// non-allocating writes IO enabled").
    pub fn policy_input(&self, persist_apm: bool) -> PolicyInput {
        PolicyInput {
            persist_apm,
            persist_general: true,
            pool_is_pmem: self.pmem,
            cache_persistent: self.eadr,
            placement: Placement::Rdma,
        }
    }

    /// Whether a deep persist reaches further than a plain persist here
    /// (reported to the initiator in the extension block).
    pub fn deep_differs(&self) -> bool {
        self.wpq_volatile
    }

    /// Whether plain persists promise durability on this platform (false
    /// when the only promise is that of deep persists).
    pub fn plain_persist_durable(&self) -> bool {
        !self.wpq_volatile
    }

    /// Whether a byte the NIC places (no CPU flush) survives a crash: the
    /// physical fact APM relies on (and RDMA FLUSH does not).
    pub fn placement_is_durable(&self) -> bool {
        self.pmem && !self.wpq_volatile && (self.eadr || !self.ddio)
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        format!(
            "{}, {}, DDIO {}{}",
            if self.pmem {
                "persistent memory"
            } else {
                "file-backed DRAM (msync)"
            },
            if self.eadr { "eADR" } else { "ADR" },
            if self.ddio { "on" } else { "off" },
            if self.wpq_volatile {
                ", volatile write-pending queue (deep flush only)"
            } else {
                ""
            }
        )
    }
}

/// Every platform the simulator knows.
pub const PLATFORMS: [Platform; 7] = [
    Platform {
        name: "adr-ddio",
        ddio: true,
        eadr: false,
        pmem: true,
        wpq_volatile: false,
    },
    Platform {
        name: "adr-noddio",
        ddio: false,
        eadr: false,
        pmem: true,
        wpq_volatile: false,
    },
    Platform {
        name: "eadr-ddio",
        ddio: true,
        eadr: true,
        pmem: true,
        wpq_volatile: false,
    },
    Platform {
        name: "eadr-noddio",
        ddio: false,
        eadr: true,
        pmem: true,
        wpq_volatile: false,
    },
    Platform {
        name: "dram-ddio",
        ddio: true,
        eadr: false,
        pmem: false,
        wpq_volatile: false,
    },
    Platform {
        name: "dram-noddio",
        ddio: false,
        eadr: false,
        pmem: false,
        wpq_volatile: false,
    },
    Platform {
        name: "devdax-wpq",
        ddio: false,
        eadr: false,
        pmem: true,
        wpq_volatile: true,
    },
];

/// The platform called `name`.
pub fn platform(name: &str) -> Option<Platform> {
    PLATFORMS.iter().copied().find(|p| p.name == name)
}

/// Every method the simulator runs, in report order.
pub const METHODS: [Method; 3] = [Method::Gpspm, Method::Apm, Method::RdmaFlush];

/// The short name of `method` in reports and on the command line
/// (upper case here; `--method` takes it in any case): `GPSPM`, `APM`,
/// `FLUSH`.
pub fn method_label(method: Method) -> &'static str {
    match method {
        Method::Gpspm => "GPSPM",
        Method::Apm => "APM",
        Method::RdmaFlush => "FLUSH",
    }
}

/// The `--method` argument that selects `method`: `gpspm`, `apm`, `flush`.
pub fn method_arg(method: Method) -> &'static str {
    match method {
        Method::Gpspm => "gpspm",
        Method::Apm => "apm",
        Method::RdmaFlush => "flush",
    }
}

/// The policy's verdict on running `method` on a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A configuration rpmemd may choose (with a legal administrator
    /// setting): the checker must find no violation.
    Allowed,
    /// Forbidden, and the model predicts lost data: the checker must find
    /// loss (proof that it can see it).
    ForbiddenLossExpected,
    /// Forbidden by rpmemd(1), but in this model the data is safe anyway
    /// (APM with DDIO on and eADR: the cache the NIC writes into is
    /// persistent). Reported, not counted either way.
    ForbiddenSafeInModel,
}

/// A (method x platform) configuration and how the target flushes in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// The platform.
    pub platform: Platform,
    /// The persistency method the initiator's lanes run with: the one the
    /// target announces (chosen by the policy, or forced for a forbidden
    /// configuration), or RDMA FLUSH, which the target offers (by the
    /// policy, or forced) beside announcing [`Config::announced`].
    pub method: Method,
    /// The target's flush primitive (from the policy).
    pub flush: FlushMode,
    /// The policy's verdict.
    pub verdict: Verdict,
    /// How data reaches the pool: by RDMA (the NIC places WRITEs) or over
    /// TCP (rpmemd's CPU receives every byte; [`Config::tcp`]).
    pub placement: Placement,
}

impl Config {
    /// The configuration of `method` on `platform`, judged by
    /// [`policy::select`]: allowed when some legal administrator setting
    /// makes the policy pick `method`; for [`Method::RdmaFlush`], judged by
    /// [`policy::offer_rdma_flush`] with a registration that accepts FLUSH
    /// (allowed when some legal setting makes the target offer it).
    pub fn new(platform: Platform, method: Method) -> Config {
        // GPSPM's flush primitive is the platform's primitive under either
        // method (select never fails with persist-general = yes).
        let flush = policy::select(platform.policy_input(false))
            .map(|d| d.flush)
            .unwrap_or(FlushMode::Msync);
        // persist-apm may be set by a careful administrator only with
        // non-allocating writes (DDIO off).
        let apm_settings: &[bool] = if platform.ddio {
            &[false]
        } else {
            &[false, true]
        };
        let allowed = apm_settings.iter().any(|&apm| {
            let input = platform.policy_input(apm);
            match method {
                Method::RdmaFlush => policy::offer_rdma_flush(input, true),
                Method::Gpspm | Method::Apm => {
                    policy::select(input).is_ok_and(|d| d.method == method)
                }
            }
        });
        let verdict = if allowed {
            Verdict::Allowed
        } else if method == Method::Apm && platform.placement_is_durable() {
            Verdict::ForbiddenSafeInModel
        } else {
            Verdict::ForbiddenLossExpected
        };
        Config {
            platform,
            method,
            flush,
            verdict,
            placement: Placement::Rdma,
        }
    }

    /// The TCP configuration of `platform`: the lanes are the core's
    /// stream machines over a modelled byte stream and rpmemd's CPU
    /// receives every byte, so the target flushes everything (GPSPM; the
    /// policy announces GPSPM for a stream placement whatever the
    /// administrator set, and never offers RDMA FLUSH). The flush primitive
    /// is the policy's. Always allowed: with `persist-general = yes` the
    /// policy picks GPSPM on every platform.
    pub fn tcp(platform: Platform) -> Config {
        let input = |apm: bool| PolicyInput {
            placement: Placement::Stream,
            ..platform.policy_input(apm)
        };
        let decision = policy::select(input(false));
        let flush = decision.map(|d| d.flush).unwrap_or(FlushMode::Msync);
        let allowed = [false, true].iter().any(|&apm| {
            (!apm || !platform.ddio)
                && policy::select(input(apm)).is_ok_and(|d| d.method == Method::Gpspm)
        });
        Config {
            platform,
            method: Method::Gpspm,
            flush,
            verdict: if allowed {
                Verdict::Allowed
            } else {
                Verdict::ForbiddenLossExpected
            },
            placement: Placement::Stream,
        }
    }

    /// Every TCP configuration: one per platform.
    pub fn all_tcp() -> Vec<Config> {
        PLATFORMS.iter().map(|&p| Config::tcp(p)).collect()
    }

    /// True for a TCP configuration.
    pub fn is_tcp(&self) -> bool {
        self.placement == Placement::Stream
    }

    /// Every configuration: each platform with GPSPM, APM and RDMA FLUSH.
    pub fn all() -> Vec<Config> {
        PLATFORMS
            .iter()
            .flat_map(|&p| METHODS.map(|m| Config::new(p, m)))
            .collect()
    }

    /// The method the simulated target announces in `persist_method`: for
    /// RDMA FLUSH the policy's choice with `persist-apm = no` (GPSPM), else
    /// [`Config::method`] itself.
    pub fn announced(&self) -> Method {
        match self.method {
            Method::RdmaFlush => policy::select(self.platform.policy_input(false))
                .map_or(Method::Gpspm, |d| d.method),
            m => m,
        }
    }

    /// Whether the simulated target offers RDMA FLUSH (extension flag
    /// `RDMA_FLUSH`): exactly in the RDMA FLUSH configurations, forced on
    /// the platforms where the policy would not offer it. GPSPM and APM
    /// configurations model a target whose registration does not accept
    /// FLUSH, so their initiators run the announced method.
    pub fn offers_rdma_flush(&self) -> bool {
        self.method == Method::RdmaFlush
    }

    /// True when the policy allows it.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = if self.is_tcp() {
            "TCP"
        } else {
            method_label(self.method)
        };
        write!(f, "{:<12} {:<5}", self.platform.name, method)
    }
}

/// Parse a method name (`apm` / `gpspm` / `flush` or `rdma-flush`, any
/// case).
pub fn parse_method(s: &str) -> Option<Method> {
    match s.to_ascii_lowercase().as_str() {
        "apm" => Some(Method::Apm),
        "gpspm" => Some(Method::Gpspm),
        "flush" | "rdma-flush" => Some(Method::RdmaFlush),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("adr-ddio", Method::Gpspm, Verdict::Allowed)]
    #[case("adr-ddio", Method::Apm, Verdict::ForbiddenLossExpected)]
    #[case("adr-noddio", Method::Apm, Verdict::Allowed)]
    #[case("eadr-ddio", Method::Apm, Verdict::ForbiddenSafeInModel)]
    #[case("eadr-noddio", Method::Apm, Verdict::Allowed)]
    #[case("dram-ddio", Method::Apm, Verdict::ForbiddenLossExpected)]
    #[case("dram-noddio", Method::Apm, Verdict::ForbiddenLossExpected)]
    #[case("dram-noddio", Method::Gpspm, Verdict::Allowed)]
    #[case("devdax-wpq", Method::Apm, Verdict::Allowed)]
    #[case("devdax-wpq", Method::Gpspm, Verdict::Allowed)]
    #[case("adr-ddio", Method::RdmaFlush, Verdict::Allowed)]
    #[case("adr-noddio", Method::RdmaFlush, Verdict::Allowed)]
    #[case("eadr-ddio", Method::RdmaFlush, Verdict::Allowed)]
    #[case("eadr-noddio", Method::RdmaFlush, Verdict::Allowed)]
    #[case("dram-ddio", Method::RdmaFlush, Verdict::ForbiddenLossExpected)]
    #[case("dram-noddio", Method::RdmaFlush, Verdict::ForbiddenLossExpected)]
    #[case("devdax-wpq", Method::RdmaFlush, Verdict::Allowed)]
    fn verdicts_follow_the_policy(#[case] p: &str, #[case] m: Method, #[case] v: Verdict) {
        let c = Config::new(platform(p).unwrap(), m);
        assert_eq!(c.verdict, v);
    }

    #[test]
    fn flush_primitive_follows_the_platform() {
        assert_eq!(
            Config::new(platform("adr-ddio").unwrap(), Method::Gpspm).flush,
            FlushMode::Cpu
        );
        assert_eq!(
            Config::new(platform("eadr-ddio").unwrap(), Method::Gpspm).flush,
            FlushMode::FenceOnly
        );
        assert_eq!(
            Config::new(platform("dram-ddio").unwrap(), Method::Apm).flush,
            FlushMode::Msync
        );
    }

    #[test]
    fn gpspm_is_allowed_everywhere() {
        for p in PLATFORMS {
            assert!(Config::new(p, Method::Gpspm).allowed(), "{}", p.name);
        }
    }

    #[test]
    fn all_covers_three_methods_on_every_platform() {
        let all = Config::all();
        assert_eq!(all.len(), 21);
        for p in PLATFORMS {
            for m in METHODS {
                assert_eq!(
                    all.iter()
                        .filter(|c| c.platform == p && c.method == m)
                        .count(),
                    1,
                    "{} {m}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn rdma_flush_is_allowed_exactly_where_the_target_offers_it() {
        for p in PLATFORMS {
            let c = Config::new(p, Method::RdmaFlush);
            let offered = [false, true].iter().any(|&apm| {
                (!apm || !p.ddio) && policy::offer_rdma_flush(p.policy_input(apm), true)
            });
            assert_eq!(c.allowed(), offered, "{}", p.name);
            assert_eq!(c.allowed(), p.pmem, "{}", p.name);
            // The target announces GPSPM beside the offer and flushes with
            // the platform's primitive for its inline and deep persists.
            assert_eq!(c.announced(), Method::Gpspm);
            assert!(c.offers_rdma_flush());
            assert_eq!(c.flush, Config::new(p, Method::Gpspm).flush);
        }
        for m in [Method::Gpspm, Method::Apm] {
            let c = Config::new(PLATFORMS[0], m);
            assert_eq!(c.announced(), m);
            assert!(!c.offers_rdma_flush());
        }
    }

    #[rstest]
    #[case("apm", Some(Method::Apm))]
    #[case("GPSPM", Some(Method::Gpspm))]
    #[case("flush", Some(Method::RdmaFlush))]
    #[case("rdma-flush", Some(Method::RdmaFlush))]
    #[case("Rdma-Flush", Some(Method::RdmaFlush))]
    #[case("rdma", None)]
    #[case("", None)]
    fn method_names_parse(#[case] s: &str, #[case] m: Option<Method>) {
        assert_eq!(parse_method(s), m);
        if let Some(m) = m {
            assert_eq!(parse_method(method_arg(m)), Some(m));
            assert_eq!(method_label(m).to_ascii_lowercase(), method_arg(m));
        }
    }

    #[test]
    fn tcp_is_gpspm_with_the_platforms_flush_and_always_allowed() {
        for p in PLATFORMS {
            let c = Config::tcp(p);
            assert!(c.allowed(), "{}", p.name);
            assert!(c.is_tcp());
            assert_eq!(c.method, Method::Gpspm);
            assert_eq!(c.flush, Config::new(p, Method::Gpspm).flush, "{}", p.name);
            assert!(!c.offers_rdma_flush());
            assert_eq!(c.announced(), Method::Gpspm);
        }
        assert_eq!(Config::all_tcp().len(), 7);
        let c = Config::tcp(platform("adr-ddio").unwrap());
        assert_eq!(c.to_string(), "adr-ddio     TCP  ");
    }

    #[test]
    fn display_keeps_the_columns() {
        let c = Config::new(platform("adr-ddio").unwrap(), Method::RdmaFlush);
        assert_eq!(c.to_string(), "adr-ddio     FLUSH");
        let c = Config::new(platform("adr-ddio").unwrap(), Method::Apm);
        assert_eq!(c.to_string(), "adr-ddio     APM  ");
    }
}
