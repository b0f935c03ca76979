//! A lane of whichever data path the session uses: TCP ([`LaneConn`]) or
//! native RDMA (`VerbsLane`, cargo feature `verbs`), each the I/O of one
//! [`Driver`] that runs the calls over the rpmem-core engine.

use std::sync::Arc;

use crate::driver::{Call, Driver};
use crate::error::Error;
use crate::lane::{LaneConn, LaneSetup};
use crate::launch::RemoteInfo;
use crate::region::Region;
#[cfg(feature = "verbs")]
use crate::verbs_lane::VerbsLane;

/// One connected lane. (Its owner boxes it, so the size difference of the
/// variants costs nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum DataLane {
    /// Our TCP data path.
    Tcp(Driver<LaneConn>),
    /// Native RDMA.
    #[cfg(feature = "verbs")]
    Verbs(Driver<VerbsLane>),
}

impl DataLane {
    /// The lane's number.
    pub(crate) fn index(&self) -> u32 {
        match self {
            DataLane::Tcp(l) => l.index(),
            #[cfg(feature = "verbs")]
            DataLane::Verbs(l) => l.index(),
        }
    }

    /// Closes the connection.
    pub(crate) fn shutdown(&self) {
        match self {
            DataLane::Tcp(l) => l.shutdown(),
            #[cfg(feature = "verbs")]
            DataLane::Verbs(l) => l.shutdown(),
        }
    }

    /// Runs one call (`rpmem_persist`, `rpmem_read`, ...) to its result.
    pub(crate) fn call(&mut self, call: Call<'_>) -> Result<(), Error> {
        match self {
            DataLane::Tcp(l) => l.call(call),
            #[cfg(feature = "verbs")]
            DataLane::Verbs(l) => l.call(call),
        }
    }
}

/// A lane of a pool: connected, or (TCP) not yet.
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
    /// Connected: calls go straight to the lane.
    Ready(DataLane),
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

impl LaneSlot {
    /// The lane's number.
    pub(crate) fn index(&self) -> u32 {
        match self {
            LaneSlot::Ready(l) => l.index(),
            LaneSlot::Pending(p) => p.setup.params.lane,
        }
    }

    /// Closes the connection, if there is one.
    pub(crate) fn shutdown(&self) {
        if let LaneSlot::Ready(l) = self {
            l.shutdown();
        }
    }

    /// The connected lane, connecting it first if it is still pending. A
    /// failed connection leaves it pending: the call fails with the reason,
    /// and a later call tries again.
    pub(crate) fn ready(&mut self) -> Result<&mut DataLane, Error> {
        if let LaneSlot::Pending(p) = self {
            let conn = LaneConn::connect(&p.setup, Arc::clone(&p.region), p.remote.clone())?;
            log::debug!(
                "rpmem: lane {} of {} connected on first use",
                p.setup.params.lane,
                p.setup.host
            );
            *self = LaneSlot::Ready(DataLane::Tcp(conn));
        }
        match self {
            LaneSlot::Ready(l) => Ok(l),
            LaneSlot::Pending(p) => Err(Error::InvalidArgument(format!(
                "lane {} is still not connected",
                p.setup.params.lane
            ))),
        }
    }
}
