//! [`rpmem_replica::Replica`] for [`Lane`]: application code written against
//! the trait runs on real lanes here and on simulated ones in `sim` (see
//! `docs/crash-testing.md`).

use rpmem_replica::Replica;

use crate::{Error, Lane};

fn local_offset(offset: u64) -> Result<usize, Error> {
    usize::try_from(offset)
        .map_err(|_| Error::InvalidArgument(format!("offset {offset} does not fit in usize")))
}

impl Replica for Lane<'_> {
    type Error = Error;

    fn size(&self) -> u64 {
        self.pool().size()
    }

    fn data_start(&self) -> u64 {
        if self.pool().has_headers() {
            rpmem_core::persist::POOL_HDR_SIZE
        } else {
            0
        }
    }

    /// [`Region::write_at`](crate::Region::write_at) on the pool's region.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.pool().region().write_at(local_offset(offset)?, data)
    }

    fn read_local(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.pool().region().read_at(local_offset(offset)?, buf)
    }

    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        Lane::persist(self, offset, len, flags)
    }

    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        Lane::deep_persist(self, offset, len)
    }

    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), Error> {
        Lane::flush(self, offset, len, flags)
    }

    fn drain(&mut self, flags: u32) -> Result<(), Error> {
        Lane::drain(self, flags)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        Lane::read(self, offset, buf)
    }
}

#[cfg(test)]
mod tests {
    /// Application code written against the trait takes rpmem's lanes (the
    /// end-to-end run against rpmemd is in the next slice of issue 16).
    #[test]
    fn lanes_are_replicas() {
        fn is_replica<R: rpmem_replica::Replica<Error = crate::Error>>() {}
        is_replica::<crate::Lane<'static>>();
    }
}
