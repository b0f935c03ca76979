//! Memory mappings: an address space reservation that part files are mapped
//! into with `MAP_FIXED` (so the parts form one contiguous pool, as PMDK's
//! `util_replica_map_local` lays them out), and small stand-alone mappings
//! of header pages.
//!
//! Every shared file mapping first tries `MAP_SHARED_VALIDATE | MAP_SYNC`
//! (libpmem2's `map_posix.c`): success means the file is on a DAX file
//! system or is a Device DAX and CPU cache flushes alone make stores
//! durable. `EOPNOTSUPP` / `EINVAL` fall back to plain `MAP_SHARED`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// One `mmap`ed range, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is a plain range of process memory with no thread
// affinity; it is unmapped exactly once, by Drop.
unsafe impl Send for Mapping {}
// SAFETY: shared access only hands out raw pointers or shared slices; all
// mutation through `&Mapping` goes through raw pointers whose use the
// caller answers for (as with any memory shared with an RDMA device).
unsafe impl Sync for Mapping {}

/// Page size the mapping code works with.
pub const PAGE: usize = 4096;

fn round_up(n: usize, align: usize) -> Option<usize> {
    let mask = align.checked_sub(1)?;
    n.checked_add(mask).map(|v| v & !mask)
}

fn off_t(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

impl Mapping {
    /// Reserves `len` bytes of address space (no access, no backing) whose
    /// start is a multiple of `align` (a power of two, at least a page).
    pub fn reserve(len: usize, align: usize) -> io::Result<Mapping> {
        let align = align.max(PAGE);
        if len == 0 || !align.is_power_of_two() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let len = round_up(len, PAGE).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let extra = align - PAGE;
        let total = len
            .checked_add(extra)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: an anonymous PROT_NONE mapping at an address of the
        // kernel's choice; it touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = p as usize;
        let aligned = round_up(start, align).unwrap_or(start);
        let head = aligned - start;
        let tail = extra - head;
        if head > 0 {
            // SAFETY: [start, start + head) lies inside the reservation just
            // made and nothing else uses it.
            unsafe { libc::munmap(p, head) };
        }
        if tail > 0 {
            // SAFETY: [aligned + len, aligned + len + tail) is the end of the
            // reservation just made; nothing else uses it.
            unsafe { libc::munmap((aligned + len) as *mut libc::c_void, tail) };
        }
        let ptr = NonNull::new(aligned as *mut u8)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mapping { ptr, len })
    }

    /// Maps `len` bytes of `fd` from `offset`, shared and writable, at an
    /// address of the kernel's choice. Returns the mapping and whether
    /// `MAP_SYNC` was granted.
    pub fn map_shared(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<(Mapping, bool)> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let (p, sync) = mmap_file(std::ptr::null_mut(), len, 0, fd, off_t(offset)?)?;
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok((Mapping { ptr, len }, sync))
    }

    /// Maps `len` bytes of `fd` from `offset` over `[at, at + len)` of this
    /// mapping (`MAP_FIXED`, replacing what was there). Returns whether
    /// `MAP_SYNC` was granted.
    pub fn map_fixed(
        &mut self,
        at: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<bool> {
        let end = at
            .checked_add(len)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if len == 0 || end > self.len || !at.is_multiple_of(PAGE) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let addr = self.ptr.as_ptr().wrapping_add(at).cast::<libc::c_void>();
        let (p, sync) = mmap_file(addr, len, libc::MAP_FIXED, fd, off_t(offset)?)?;
        if p != addr {
            // Cannot happen with MAP_FIXED; refuse rather than trust it.
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        Ok(sync)
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty mapping (never: mappings are not empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes. Only for mappings whose whole range is backed by
    /// a file (not a bare reservation).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: [ptr, ptr + len) is mapped readable for the life of self
        // (callers only use this on file-backed, PROT_READ mappings).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable (see [`Mapping::bytes`]).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, plus PROT_WRITE; `&mut self` makes this the
        // only slice handed out.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// `msync(MS_SYNC)` of `[off, off + len)`, widened to whole pages.
    pub fn msync(&self, off: usize, len: usize) -> io::Result<()> {
        let end = off
            .checked_add(len)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if end > self.len {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if len == 0 {
            return Ok(());
        }
        let start = off & !(PAGE - 1);
        let end = round_up(end, PAGE).unwrap_or(end).min(self.len);
        let addr = self.ptr.as_ptr().wrapping_add(start).cast::<libc::c_void>();
        // SAFETY: [start, end) lies inside this mapping and is page-aligned.
        let ret = unsafe { libc::msync(addr, end - start, libc::MS_SYNC) };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: [ptr, ptr + len) was mapped by this Mapping and is
        // unmapped only here; nothing borrowed from it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `mmap(addr, len, RW, MAP_SHARED_VALIDATE | MAP_SYNC | extra, fd, off)`,
/// falling back to `MAP_SHARED | extra` when `MAP_SYNC` is refused.
///
/// With `MAP_FIXED` the `MAP_SYNC` question is first asked with a mapping
/// at an address of the kernel's choice, which is unmapped at once: a
/// `MAP_FIXED` mmap that fails may already have unmapped the range it was
/// to replace (ext4 and xfs refuse `MAP_SYNC` on a non-DAX file only in
/// their `mmap` method, after the old range is gone), and another thread's
/// mmap could land in that hole before the fallback maps over it.
fn mmap_file(
    addr: *mut libc::c_void,
    len: usize,
    extra: i32,
    fd: BorrowedFd<'_>,
    off: libc::off_t,
) -> io::Result<(*mut libc::c_void, bool)> {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    if extra & libc::MAP_FIXED != 0 {
        let (probe, sync) = mmap_file(std::ptr::null_mut(), len, 0, fd, off)?;
        // SAFETY: `probe` was just mapped by this function, `len` bytes,
        // and nothing else knows of it.
        unsafe { libc::munmap(probe, len) };
        let flags = if sync {
            libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: `addr..addr + len` lies inside a reservation owned by the
        // caller (checked by `map_fixed`), which this replaces.
        let p = unsafe { libc::mmap(addr, len, prot, flags | extra, fd.as_raw_fd(), off) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        return Ok((p, sync));
    }
    // SAFETY: with `extra == 0` the kernel chooses a fresh address; with
    // MAP_FIXED, `addr..addr + len` lies inside a reservation owned by the
    // caller (checked by `map_fixed`), which this replaces.
    let p = unsafe {
        libc::mmap(
            addr,
            len,
            prot,
            libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC | extra,
            fd.as_raw_fd(),
            off,
        )
    };
    if p != libc::MAP_FAILED {
        return Ok((p, true));
    }
    let e = io::Error::last_os_error();
    if !matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
    ) {
        return Err(e);
    }
    // SAFETY: as above, without MAP_SYNC.
    let p = unsafe {
        libc::mmap(
            addr,
            len,
            prot,
            libc::MAP_SHARED | extra,
            fd.as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok((p, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reservation_is_aligned() {
        for align in [PAGE, 2 << 20] {
            let m = Mapping::reserve(3 * PAGE, align).unwrap();
            assert_eq!(m.as_ptr() as usize % align, 0);
            assert_eq!(m.len(), 3 * PAGE);
        }
        assert!(Mapping::reserve(0, PAGE).is_err());
        assert!(Mapping::reserve(PAGE, 3 * PAGE).is_err());
    }

    #[test]
    fn files_map_into_a_reservation_contiguously() {
        let t = tempfile::tempdir().unwrap();
        let a = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(t.path().join("a"))
            .unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(t.path().join("b"))
            .unwrap();
        a.set_len(2 * PAGE as u64).unwrap();
        b.set_len(3 * PAGE as u64).unwrap();
        let mut m = Mapping::reserve(4 * PAGE, PAGE).unwrap();
        m.map_fixed(0, a.as_fd(), 0, 2 * PAGE).unwrap();
        // b's first page is skipped (a header page).
        m.map_fixed(2 * PAGE, b.as_fd(), PAGE as u64, 2 * PAGE)
            .unwrap();
        m.bytes_mut()[2 * PAGE - 1] = 0xaa;
        m.bytes_mut()[2 * PAGE] = 0xbb;
        m.msync(2 * PAGE - 1, 2).unwrap();
        drop(m);
        let av = std::fs::read(t.path().join("a")).unwrap();
        let bv = std::fs::read(t.path().join("b")).unwrap();
        assert_eq!(av[2 * PAGE - 1], 0xaa);
        assert_eq!(bv[PAGE], 0xbb);
        assert_eq!(bv[0], 0);
    }

    #[test]
    fn fixed_mapping_outside_the_reservation_is_refused() {
        let t = tempfile::tempfile().unwrap();
        t.set_len(PAGE as u64).unwrap();
        let mut m = Mapping::reserve(PAGE, PAGE).unwrap();
        assert!(m.map_fixed(PAGE, t.as_fd(), 0, PAGE).is_err());
        assert!(m.map_fixed(1, t.as_fd(), 0, PAGE).is_err());
        assert!(m.msync(0, 2 * PAGE).is_err());
    }
}
