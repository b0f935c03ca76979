//! `sim`: a simulated RNIC and target persistence domains that crash-test
//! rpmem-core's protocol code — the same engines that ship, not a model of
//! them.
//!
//! A run ([`world::run`]) takes a seed and a (method x platform)
//! configuration ([`platform::Config`]). It performs the CREATE handshake
//! through [`rpmem_core::oob`]'s client and server machines, draws a
//! workload ([`workload`]), and steps the initiator lanes
//! ([`rpmem_core::persist::InitiatorLane`]), the reliable-connected queue
//! pairs ([`rnic`]), the target ([`rpmem_core::persist::Target`]) and the
//! target's memory ([`memory`]) in an order the seed decides. Between any two
//! steps it considers a crash: every word of the pool may end up with any of
//! its crash candidates ([`crash`]), and the [`checker`] judges whether a
//! promise made to the caller was broken.
//!
//! [`campaign`] runs many seeds over the configuration matrix (RDMA and TCP) and the
//! seeded bugs of `rpmem_core::flush::mutants`. `docs/simulation.md`
//! describes the model, what it covers and what it does not.
//!
//! [`app`] offers the same machinery to applications: their own code,
//! written against [`Replica`] (which `rpmem::Lane` implements too), run
//! against the simulated pool, and their own recovery check judging every
//! post-crash image ([`Simulation`]; `docs/crash-testing.md`).
#![warn(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod app;
pub mod campaign;
pub mod checker;
pub mod crash;
pub mod handshake;
pub mod memory;
pub mod platform;
pub mod rng;
pub mod rnic;
pub mod workload;
pub mod world;

pub use app::{Call, Replica, SimLane, Simulation};
pub use campaign::{check, mutants, CheckOptions, CheckSummary};
pub use platform::{Config, Platform, Verdict, PLATFORMS};
pub use world::{run, run_with_workload, Mode, RunOptions, RunReport};
