//! A lane of whichever data path the session uses: TCP ([`LaneConn`]) or
//! native RDMA (`VerbsLane`, cargo feature `verbs`). Both drive the same
//! rpmem-core engine; this only forwards the calls.

use std::sync::Arc;

use crate::driver::Driven;
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
    Tcp(LaneConn),
    /// Native RDMA.
    #[cfg(feature = "verbs")]
    Verbs(VerbsLane),
}

macro_rules! forward {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            DataLane::Tcp($l) => $e,
            #[cfg(feature = "verbs")]
            DataLane::Verbs($l) => $e,
        }
    };
}

impl DataLane {
    /// The lane's number.
    pub(crate) fn index(&self) -> u32 {
        forward!(self, l => l.index())
    }

    /// Closes the connection.
    pub(crate) fn shutdown(&self) {
        forward!(self, l => l.shutdown())
    }

    /// `rpmem_persist`.
    pub(crate) fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        forward!(self, l => l.persist(offset, len, flags))
    }

    /// `rpmem_deep_persist`.
    pub(crate) fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        forward!(self, l => l.deep_persist(offset, len))
    }

    /// `rpmem_flush`.
    pub(crate) fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        forward!(self, l => l.flush(offset, len, flags))
    }

    /// `rpmem_drain`.
    pub(crate) fn drain(&mut self, flags: u32) -> Result<(), Error> {
        forward!(self, l => l.drain(flags))
    }

    /// `rpmem_read` into `buf`.
    pub(crate) fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        forward!(self, l => l.read(offset, buf))
    }

    /// `rpmem_read` into the region.
    pub(crate) fn read_to_region(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        forward!(self, l => l.read_to_region(offset, len))
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
