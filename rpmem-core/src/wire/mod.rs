//! Wire formats.
//!
//! Every format is a zero-copy view over a byte buffer with one validation
//! step (`new_checked`) after which no accessor can fail or panic, plus a
//! plain value type (`*Repr`) with `parse` and `emit` (the smoltcp `wire`
//! style). Field offsets live in one `mod field` per format.
//!
//! * [`oob`] — the out-of-band messages carried over the ssh channel,
//!   byte-compatible with PMDK 1.12.1 `rpmem_proto.h`, plus our extensions.
//! * [`persist`] — `rpmem_msg_persist` / `rpmem_msg_persist_resp`, the
//!   in-band persist request the target executes (all transports).
//! * [`tcp`] — the framing of our TCP data path (lane hello with the
//!   session secret, WRITE / READ / SEND frames).

pub mod oob;
pub mod persist;
pub mod tcp;
