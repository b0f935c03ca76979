//! A lane of a pool, of whichever data path the session uses: TCP
//! ([`LaneConn`], connected on first use) or native RDMA (`VerbsLane`,
//! cargo feature `verbs`), each the I/O of one [`Driver`] that runs the
//! calls over the rpmem-core engine.

use std::sync::Arc;

use crate::driver::{Call, Driver};
use crate::error::Error;
use crate::lane::{LaneConn, LaneSetup};
use crate::launch::RemoteInfo;
use crate::region::Region;
#[cfg(feature = "verbs")]
use crate::verbs_lane::VerbsLane;

/// A lane of a pool: connected (TCP or RDMA), or (TCP) not yet.
///
/// A TCP lane connects on its first call, so a pool opened with many lanes
/// (libpmemobj asks for 1024 and uses one per thread) costs one connection,
/// one hello and one rpmemd thread per lane actually used, not per lane
/// granted. rpmemd accepts a lane's connection at any time during the
/// session. The pool connects lane 0 while it opens; RDMA lanes are all
/// connected then. (The pool boxes each slot, so the size difference of the
/// variants costs nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum LaneSlot {
    /// A connected lane of our TCP data path.
    Tcp(Driver<LaneConn>),
    /// A connected lane of native RDMA.
    #[cfg(feature = "verbs")]
    Verbs(Driver<VerbsLane>),
    /// A TCP lane that connects on its first call.
    Pending(PendingTcp),
}

/// Everything a TCP lane needs to connect later.
#[derive(Debug)]
pub(crate) struct PendingTcp {
    pub(crate) setup: LaneSetup,
    pub(crate) region: Arc<Region>,
    pub(crate) remote: Option<Arc<RemoteInfo>>,
}

impl PendingTcp {
    /// Connects the lane (the handshake included).
    fn connect(&self) -> Result<Driver<LaneConn>, Error> {
        let conn = LaneConn::connect(&self.setup, Arc::clone(&self.region), self.remote.clone())?;
        log::debug!(
            "rpmem: lane {} of {} connected on first use",
            self.setup.params.lane,
            self.setup.host
        );
        Ok(conn)
    }
}

impl LaneSlot {
    /// The lane's number.
    pub(crate) fn index(&self) -> u32 {
        match self {
            LaneSlot::Tcp(l) => l.index(),
            #[cfg(feature = "verbs")]
            LaneSlot::Verbs(l) => l.index(),
            LaneSlot::Pending(p) => p.setup.params.lane,
        }
    }

    /// Closes the connection, if there is one.
    pub(crate) fn shutdown(&self) {
        match self {
            LaneSlot::Tcp(l) => l.shutdown(),
            #[cfg(feature = "verbs")]
            LaneSlot::Verbs(l) => l.shutdown(),
            LaneSlot::Pending(_) => {}
        }
    }

    /// Connects a pending lane now. A failed connection leaves it pending:
    /// the error says why, and a later call tries again.
    pub(crate) fn connect(&mut self) -> Result<(), Error> {
        if let LaneSlot::Pending(p) = self {
            *self = LaneSlot::Tcp(p.connect()?);
        }
        Ok(())
    }

    /// Runs one call (`rpmem_persist`, `rpmem_read`, ...) to its result,
    /// connecting a pending lane first (a failed connection leaves it
    /// pending: the call fails with the reason, and a later call tries
    /// again).
    pub(crate) fn call(&mut self, call: Call<'_>) -> Result<(), Error> {
        match self {
            LaneSlot::Tcp(l) => l.call(call),
            #[cfg(feature = "verbs")]
            LaneSlot::Verbs(l) => l.call(call),
            LaneSlot::Pending(p) => {
                let mut conn = p.connect()?;
                let result = conn.call(call);
                *self = LaneSlot::Tcp(conn);
                result
            }
        }
    }
}
