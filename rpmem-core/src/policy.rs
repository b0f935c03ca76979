//! Persistency method policy: the table of `rpmemd(1)`, PERSISTENCY METHODS,
//! as a pure function.
//!
//! | persist-apm | persist-general | pool is pmem | placement | method | target flush |
//! |---|---|---|---|---|---|
//! | yes | any | yes | RDMA | APM | CPU flush (for inline and deep persists) |
//! | yes | any | yes | stream (TCP) | GPSPM | CPU flush |
//! | yes | any | no | any | GPSPM | `msync` |
//! | no | yes | yes | any | GPSPM | CPU flush |
//! | no | yes | no | any | GPSPM | `msync` |
//! | no | no | any | any | refused | — |
//!
//! Differences from PMDK 1.12.1, which ignores `persist-general` entirely
//! and falls back to GPSPM whatever it says:
//!
//! * with both methods disabled we refuse the pool instead of silently
//!   using GPSPM, because the administrator asked for no method;
//! * APM needs the NIC to place data in the persistence domain
//!   (non-allocating writes). A stream transport (our TCP data path) places
//!   data with the target CPU's stores, which land in the CPU cache, so APM
//!   is never chosen for it;
//! * when the platform reports that CPU caches are inside the persistence
//!   domain (eADR, `persistence_domain = cpu_cache`), a fence is enough and
//!   the per-line flush is skipped.
//!
//! # RDMA FLUSH, the third method (ours)
//!
//! Where the target's RDMA device accepts IBTA RDMA FLUSH with the
//! persistent placement type into the pool's registration (rxe from Linux
//! 6.2 with rdma-core 45, on memory the kernel lists as persistent memory),
//! the target *offers* it ([`offer_rdma_flush`]) with the extension flag
//! `RDMA_FLUSH`, while it still announces APM or GPSPM above in PMDK's
//! field (a PMDK initiator knows no third value). An initiator whose own
//! device can post FLUSH then makes its WRITEs durable with FLUSH of the
//! written ranges instead of the announced method's READ or SEND
//! ([`initiator_method`], [`Method::RdmaFlush`]); one that cannot uses the
//! announced method. As librpma: the target says what its memory allows,
//! the initiator chooses what it posts. Unlike APM, FLUSH does not rely on
//! the administrator's word that the NIC writes into the persistence
//! domain: the responder itself makes the range persistent before it
//! acknowledges the FLUSH.

use crate::flush::FlushMode;
use crate::wire::oob::Provider;

/// How data gets from the initiator into the target's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// The NIC writes into the pool by DMA (RDMA WRITE): ibverbs, the simulator.
    Rdma,
    /// The target CPU copies received bytes into the pool (TCP).
    Stream,
}

impl Placement {
    /// The placement of the data path a request names on the wire: our
    /// native verbs provider places by RDMA, our TCP provider by stream;
    /// `None` for PMDK's libfabric providers and unknown values, which have
    /// no data path here.
    pub fn of_provider(provider: Provider) -> Option<Placement> {
        match provider {
            Provider::VERBS => Some(Placement::Rdma),
            Provider::TCP => Some(Placement::Stream),
            _ => None,
        }
    }

    /// The provider a request names for this placement (the inverse of
    /// [`Placement::of_provider`]).
    pub fn provider(self) -> Provider {
        match self {
            Placement::Rdma => Provider::VERBS,
            Placement::Stream => Provider::TCP,
        }
    }

    /// Every placement, in the order [`Placement::name`]s are listed.
    pub const ALL: [Placement; 2] = [Placement::Rdma, Placement::Stream];

    /// The placement's one name, as command lines take it and reports print
    /// it: `rdma` for [`Placement::Rdma`], `tcp` for [`Placement::Stream`]
    /// (our only stream transport).
    pub const fn name(self) -> &'static str {
        match self {
            Placement::Rdma => "rdma",
            Placement::Stream => "tcp",
        }
    }

    /// Parses a [`Placement::name`], in any ASCII case; `stream` is also
    /// accepted for [`Placement::Stream`]. The error names the word and the
    /// accepted names.
    pub fn from_name(word: &str) -> Result<Placement, UnknownPlacement<'_>> {
        if word.eq_ignore_ascii_case("stream") {
            return Ok(Placement::Stream);
        }
        Placement::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(word))
            .ok_or(UnknownPlacement { word })
    }
}

impl core::fmt::Display for Placement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// [`Placement::from_name`] was given a word that names no placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownPlacement<'a> {
    /// The word given.
    pub word: &'a str,
}

impl core::fmt::Display for UnknownPlacement<'_> {
    /// `unknown placement "x": use rdma or tcp`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown placement {:?}: use ", self.word)?;
        for (i, p) in Placement::ALL.iter().enumerate() {
            let sep = match i {
                0 => "",
                i if i + 1 == Placement::ALL.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{}", p.name())?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownPlacement<'_> {}

/// Persistency method (`enum rpmem_persist_method`; the values are PMDK's
/// wire values in `rpmem_msg_ibc_attr.persist_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// General Purpose Server Persistency Method: the target CPU flushes on
    /// request of each persist message.
    Gpspm = 1,
    /// Appliance Persistency Method: an RDMA READ after the WRITEs makes them
    /// durable; the target CPU is not involved.
    Apm = 2,
    /// IBTA RDMA FLUSH (persistent placement type) of the written ranges
    /// after the WRITEs makes them durable; the target CPU is not involved.
    /// Ours: the value 3 never travels in PMDK's `persist_method` field (see
    /// the module documentation), so [`Method::from_wire`] does not accept it.
    RdmaFlush = 3,
}

impl Method {
    /// The wire value (`RPMEM_PM_GPSPM` = 1, `RPMEM_PM_APM` = 2; 3 for
    /// [`Method::RdmaFlush`], which is never announced in PMDK's field).
    pub const fn wire_value(self) -> u32 {
        self as u32
    }

    /// Decode the `persist_method` field of a CREATE/OPEN response: GPSPM
    /// or APM, the values PMDK defines (a target offers RDMA FLUSH with an
    /// extension flag, never with this field).
    pub const fn from_wire(v: u32) -> Option<Method> {
        match v {
            1 => Some(Method::Gpspm),
            2 => Some(Method::Apm),
            _ => None,
        }
    }

    /// PMDK's name for the method.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Gpspm => "GPSPM",
            Method::Apm => "APM",
            Method::RdmaFlush => "RDMA FLUSH",
        }
    }

    /// The target CPU takes no part in making WRITEs durable (APM, RDMA
    /// FLUSH): the initiator's drain posts an RDMA operation, not a persist
    /// message.
    pub const fn nic_persists(self) -> bool {
        matches!(self, Method::Apm | Method::RdmaFlush)
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyInput {
    /// `persist-apm` from the configuration.
    pub persist_apm: bool,
    /// `persist-general` from the configuration.
    pub persist_general: bool,
    /// Every part of the pool set is persistent memory (`MAP_SYNC` mapping
    /// succeeded, Device DAX, or forced by `PMEM_IS_PMEM_FORCE=1`).
    pub pool_is_pmem: bool,
    /// The platform keeps CPU caches in the persistence domain (eADR).
    pub cache_persistent: bool,
    /// How the transport places data.
    pub placement: Placement,
}

/// Why a method was chosen, for the daemon's `notice` log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// APM enabled, pool on pmem, RDMA placement.
    ApmOnPmem,
    /// APM enabled but the pool is not pmem: GPSPM with `msync`.
    ApmNotPmem,
    /// APM enabled but the transport copies with the CPU: GPSPM.
    ApmStreamPlacement,
    /// GPSPM enabled (APM not), pool on pmem.
    GpspmOnPmem,
    /// GPSPM enabled (APM not), pool not pmem.
    GpspmNotPmem,
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Reason::ApmOnPmem => "persist-apm is enabled and every part is persistent memory",
            Reason::ApmNotPmem => {
                "persist-apm is enabled but the pool is not persistent memory, \
                 falling back to GPSPM with msync"
            }
            Reason::ApmStreamPlacement => {
                "persist-apm is enabled but the TCP transport writes through the CPU cache, \
                 so GPSPM is used"
            }
            Reason::GpspmOnPmem => {
                "persist-general is enabled and every part is persistent memory (CPU flush)"
            }
            Reason::GpspmNotPmem => {
                "persist-general is enabled and the pool is not persistent memory (msync)"
            }
        })
    }
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Method announced to the initiator.
    pub method: Method,
    /// How the target makes bytes durable when it has to (GPSPM persists,
    /// inline persists and deep persists under either method).
    pub flush: FlushMode,
    /// Why, for the log.
    pub reason: Reason,
}

/// The configuration allows no method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no persistency method is enabled (persist-apm = no and persist-general = no)")]
pub struct NoMethodEnabled;

/// Choose the persistency method and the target's flush primitive.
pub fn select(input: PolicyInput) -> Result<Decision, NoMethodEnabled> {
    let cpu_flush = if input.cache_persistent {
        FlushMode::FenceOnly
    } else {
        FlushMode::Cpu
    };
    let (method, flush, reason) = match (input.persist_apm, input.persist_general) {
        (false, false) => return Err(NoMethodEnabled),
        (true, _) if !input.pool_is_pmem => (Method::Gpspm, FlushMode::Msync, Reason::ApmNotPmem),
        (true, _) if input.placement == Placement::Stream => {
            (Method::Gpspm, cpu_flush, Reason::ApmStreamPlacement)
        }
        (true, _) => (Method::Apm, cpu_flush, Reason::ApmOnPmem),
        (false, true) if input.pool_is_pmem => (Method::Gpspm, cpu_flush, Reason::GpspmOnPmem),
        (false, true) => (Method::Gpspm, FlushMode::Msync, Reason::GpspmNotPmem),
    };
    Ok(Decision {
        method,
        flush,
        reason,
    })
}

/// Whether a target offers RDMA FLUSH (extension flag `RDMA_FLUSH`) for a
/// pool: some method is enabled, the placement is RDMA, every part of the
/// pool is persistent memory, and the pool's registration accepts FLUSH
/// with the persistent placement type (`registered_for_flush`: the device
/// advertises it and registering with `IBV_ACCESS_FLUSH_PERSISTENT`
/// succeeded). A file-backed pool never gets it: FLUSH does not `msync`.
pub fn offer_rdma_flush(input: PolicyInput, registered_for_flush: bool) -> bool {
    select(input).is_ok()
        && input.placement == Placement::Rdma
        && input.pool_is_pmem
        && registered_for_flush
}

/// The method an initiator runs its lanes with: RDMA FLUSH when the target
/// offers it (`offered`), the initiator's device can post persistent FLUSH
/// (`can_flush`) and the user did not turn it off (`allowed`); otherwise the
/// method the target announced.
pub const fn initiator_method(
    announced: Method,
    offered: bool,
    can_flush: bool,
    allowed: bool,
) -> Method {
    if offered && can_flush && allowed {
        Method::RdmaFlush
    } else {
        announced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn placements_and_providers_convert_both_ways() {
        for p in [Placement::Rdma, Placement::Stream] {
            assert_eq!(Placement::of_provider(p.provider()), Some(p));
        }
        for p in [
            Provider::UNKNOWN,
            Provider::LIBFABRIC_VERBS,
            Provider::LIBFABRIC_SOCKETS,
            Provider(7),
        ] {
            assert_eq!(Placement::of_provider(p), None, "{p}");
        }
    }

    #[rstest]
    #[case("rdma", Placement::Rdma)]
    #[case("RDMA", Placement::Rdma)]
    #[case("tcp", Placement::Stream)]
    #[case("Tcp", Placement::Stream)]
    #[case("stream", Placement::Stream)]
    fn placement_names_parse(#[case] word: &str, #[case] want: Placement) {
        assert_eq!(Placement::from_name(word), Ok(want));
    }

    #[test]
    fn placement_names_round_trip_and_print() {
        extern crate std;
        use std::string::ToString;
        for p in Placement::ALL {
            assert_eq!(Placement::from_name(p.name()), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Placement::Rdma.name(), "rdma");
        assert_eq!(Placement::Stream.name(), "tcp");
    }

    #[rstest]
    #[case("")]
    #[case("verbs")]
    #[case("tcp ")]
    fn unknown_placements_name_the_word_and_the_choices(#[case] word: &str) {
        extern crate std;
        use std::string::ToString;
        let e = Placement::from_name(word).unwrap_err();
        assert_eq!(e, UnknownPlacement { word });
        assert_eq!(
            e.to_string(),
            std::format!("unknown placement {word:?}: use rdma or tcp")
        );
    }

    fn input(apm: bool, general: bool, pmem: bool, placement: Placement) -> PolicyInput {
        PolicyInput {
            persist_apm: apm,
            persist_general: general,
            pool_is_pmem: pmem,
            cache_persistent: false,
            placement,
        }
    }

    #[rstest]
    #[case(true, true, true, Placement::Rdma, Method::Apm, FlushMode::Cpu)]
    #[case(true, false, true, Placement::Rdma, Method::Apm, FlushMode::Cpu)]
    #[case(true, false, false, Placement::Rdma, Method::Gpspm, FlushMode::Msync)]
    #[case(true, true, false, Placement::Rdma, Method::Gpspm, FlushMode::Msync)]
    #[case(true, true, true, Placement::Stream, Method::Gpspm, FlushMode::Cpu)]
    #[case(true, false, false, Placement::Stream, Method::Gpspm, FlushMode::Msync)]
    #[case(false, true, true, Placement::Rdma, Method::Gpspm, FlushMode::Cpu)]
    #[case(false, true, false, Placement::Rdma, Method::Gpspm, FlushMode::Msync)]
    #[case(false, true, true, Placement::Stream, Method::Gpspm, FlushMode::Cpu)]
    #[case(false, true, false, Placement::Stream, Method::Gpspm, FlushMode::Msync)]
    fn method_table(
        #[case] apm: bool,
        #[case] general: bool,
        #[case] pmem: bool,
        #[case] placement: Placement,
        #[case] method: Method,
        #[case] flush: FlushMode,
    ) {
        let d = select(input(apm, general, pmem, placement)).unwrap();
        assert_eq!((d.method, d.flush), (method, flush));
    }

    #[rstest]
    #[case(true, Placement::Rdma)]
    #[case(false, Placement::Stream)]
    fn no_method_is_refused(#[case] pmem: bool, #[case] placement: Placement) {
        assert_eq!(
            select(input(false, false, pmem, placement)),
            Err(NoMethodEnabled)
        );
    }

    #[test]
    fn apm_never_without_pmem_or_with_stream() {
        for apm in [false, true] {
            for general in [false, true] {
                for pmem in [false, true] {
                    for placement in [Placement::Rdma, Placement::Stream] {
                        if let Ok(d) = select(input(apm, general, pmem, placement)) {
                            if d.method == Method::Apm {
                                assert!(apm && pmem && placement == Placement::Rdma);
                            }
                            if !pmem {
                                assert_eq!(d.flush, FlushMode::Msync);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn eadr_fences_only_on_pmem() {
        let mut i = input(false, true, true, Placement::Rdma);
        i.cache_persistent = true;
        assert_eq!(select(i).unwrap().flush, FlushMode::FenceOnly);
        i.pool_is_pmem = false;
        assert_eq!(select(i).unwrap().flush, FlushMode::Msync);
    }

    #[test]
    fn wire_values_match_pmdk() {
        assert_eq!(Method::Gpspm.wire_value(), 1);
        assert_eq!(Method::Apm.wire_value(), 2);
        assert_eq!(Method::from_wire(2), Some(Method::Apm));
        assert_eq!(Method::from_wire(0), None);
        assert_eq!(Method::from_wire(3), None);
        assert_eq!(Method::RdmaFlush.wire_value(), 3);
    }

    #[test]
    fn rdma_flush_is_offered_only_for_pmem_over_rdma_with_a_flush_registration() {
        for apm in [false, true] {
            for general in [false, true] {
                for pmem in [false, true] {
                    for placement in [Placement::Rdma, Placement::Stream] {
                        for reg in [false, true] {
                            let i = input(apm, general, pmem, placement);
                            let offered = offer_rdma_flush(i, reg);
                            let expect =
                                (apm || general) && pmem && placement == Placement::Rdma && reg;
                            assert_eq!(offered, expect, "{i:?} registered {reg}");
                        }
                    }
                }
            }
        }
    }

    #[rstest]
    #[case(Method::Gpspm, true, true, true, Method::RdmaFlush)]
    #[case(Method::Apm, true, true, true, Method::RdmaFlush)]
    #[case(Method::Apm, false, true, true, Method::Apm)]
    #[case(Method::Gpspm, true, false, true, Method::Gpspm)]
    #[case(Method::Apm, true, true, false, Method::Apm)]
    fn the_initiator_uses_flush_only_when_offered_possible_and_allowed(
        #[case] announced: Method,
        #[case] offered: bool,
        #[case] can: bool,
        #[case] allowed: bool,
        #[case] expect: Method,
    ) {
        assert_eq!(initiator_method(announced, offered, can, allowed), expect);
        assert_eq!(expect.nic_persists(), expect != Method::Gpspm);
    }
}
