//! rpmemd as a library: everything the `rpmemd` binary runs, so that tests
//! and tools can drive the parts directly.
//!
//! * [`cli`], [`config`], [`logging`], [`exit`]: start-up (command line,
//!   configuration files, log destinations, exit statuses);
//! * [`pool`]: pool set directory, part files, mapping, locking;
//! * [`session`]: one librpmem session on stdin/stdout (the out-of-band
//!   server), with the persistency method choice;
//! * [`transport`]: the data path (TCP lanes);
//! * [`remove`]: `rpmemd --remove`;
//! * [`list`]: `rpmemd --list`;
//! * [`check`]: `rpmemd --check-config`;
//! * [`sync`]: the synchronisation facade (std, or loom under `cfg(loom)`).

// No panic on untrusted input, enforced (issue 15): outside tests, no unwrap,
// expect, panic! or unchecked indexing; fallible code returns typed errors.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod check;
pub mod cli;
pub mod config;
pub mod exit;
pub mod list;
pub mod logging;
pub mod pool;
pub mod remove;
pub mod session;
pub mod sync;
pub mod transport;
