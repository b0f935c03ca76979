//! Reading and writing part headers, each through a short-lived mapping of
//! the part's first page (or first alignment unit of a Device DAX, which
//! cannot map less), as PMDK's `util_map_hdr` does.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;

use rpmem_core::attr::Uuid;
use rpmem_core::flush::cpu::FlushInstr;
use rpmem_core::pool_hdr::POOL_HDR_SIZE;

use super::error::PoolError;
use super::map::Mapping;
use super::parts::PartFile;
use super::pmem;

/// Bytes of a Device DAX that `remove` zeroes (`DEVICE_DAX_ZERO_LEN`).
pub const DEVICE_DAX_ZERO_LEN: u64 = 2 << 20;

fn map_start(part: &PartFile, len: u64) -> Result<Mapping, PoolError> {
    let align = part
        .devdax
        .map_or(POOL_HDR_SIZE as u64, |d| d.align.max(POOL_HDR_SIZE as u64));
    let len = len.max(POOL_HDR_SIZE as u64);
    let len = len.div_ceil(align).saturating_mul(align);
    let len = usize::try_from(len).map_err(|_| PoolError::Map {
        part: part.index,
        path: part.path.clone(),
        source: io::Error::from_raw_os_error(libc::ENOMEM),
    })?;
    Mapping::map_shared(part.file.as_fd(), 0, len)
        .map(|(m, _)| m)
        .map_err(|source| PoolError::Map {
            part: part.index,
            path: part.path.clone(),
            source,
        })
}

/// Makes `[0, len)` of `m` (a mapping of `part`) durable: `msync` for a
/// regular file (on a DAX file system too), CPU flushes and the region's
/// deep flush for a Device DAX (which `msync` cannot flush).
fn persist(
    part: &PartFile,
    m: &Mapping,
    len: usize,
    flush: FlushInstr,
    sysfs: &Path,
) -> Result<(), PoolError> {
    match part.devdax {
        None => m
            .msync(0, len)
            .map_err(|e| PoolError::io("msync", &part.path, e)),
        Some(_) => {
            flush.persist(m.bytes().get(..len).unwrap_or(m.bytes()));
            match part.region {
                Some(r) => pmem::region_deep_flush(sysfs, r)
                    .map_err(|e| PoolError::io("deep_flush", &part.path, e)),
                None => Ok(()),
            }
        }
    }
}

/// The 4096 header bytes at the start of `part`.
pub fn read(part: &PartFile) -> Result<[u8; POOL_HDR_SIZE], PoolError> {
    let m = map_start(part, POOL_HDR_SIZE as u64)?;
    let mut out = [0u8; POOL_HDR_SIZE];
    if let Some(src) = m.bytes().get(..POOL_HDR_SIZE) {
        out.copy_from_slice(src);
    }
    Ok(out)
}

/// The first non-zero byte of the first page of `part` and its value:
/// `None` when the page is all zero (no pool was ever created there).
pub fn first_nonzero(part: &PartFile) -> Result<Option<(usize, u8)>, PoolError> {
    let page = read(part)?;
    Ok(page
        .iter()
        .enumerate()
        .find(|(_, b)| **b != 0)
        .map(|(i, b)| (i, *b)))
}

/// Writes `bytes` as the header of `part` and makes it durable.
pub fn write(
    part: &PartFile,
    bytes: &[u8; POOL_HDR_SIZE],
    flush: FlushInstr,
    sysfs: &Path,
) -> Result<(), PoolError> {
    let mut m = map_start(part, POOL_HDR_SIZE as u64)?;
    if let Some(dst) = m.bytes_mut().get_mut(..POOL_HDR_SIZE) {
        dst.copy_from_slice(bytes);
    }
    persist(part, &m, POOL_HDR_SIZE, flush, sysfs)
}

/// Zeroes the first [`DEVICE_DAX_ZERO_LEN`] bytes of a Device DAX part (at
/// most `size`) and makes that durable: what "removing" a Device DAX means
/// (PMDK's `util_unlink` on a Device DAX).
pub fn zero_devdax(
    part: &PartFile,
    size: u64,
    flush: FlushInstr,
    sysfs: &Path,
) -> Result<(), PoolError> {
    let len = DEVICE_DAX_ZERO_LEN.min(size);
    let mut m = map_start(part, len)?;
    let n = usize::try_from(len).unwrap_or(usize::MAX).min(m.len());
    if let Some(dst) = m.bytes_mut().get_mut(..n) {
        dst.fill(0);
    }
    persist(part, &m, n, flush, sysfs)
}

/// A new random (version 4) uuid, as PMDK's `util_uuid_generate` gets from
/// the kernel.
pub fn fresh_uuid() -> io::Result<Uuid> {
    let mut u: Uuid = [0; 16];
    File::open("/dev/urandom")?.read_exact(&mut u)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_uuids_are_version_4_and_differ() {
        let a = fresh_uuid().unwrap();
        let b = fresh_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] & 0xc0, 0x80);
    }
}
