//! A lane of whichever data path the session uses: TCP ([`LaneConn`]) or
//! native RDMA (`VerbsLane`, cargo feature `verbs`). Both drive the same
//! rpmem-core engine; this only forwards the calls.

use crate::driver::DriveLane;
use crate::error::Error;
use crate::lane::LaneConn;
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
