//! The local memory region a pool replicates.
//!
//! librpmem replicates memory the application owns: the application writes
//! into it, then calls `persist(offset, len)`, and the library reads the
//! bytes from the same memory and sends them. [`Region`] is that memory in
//! a form Rust can share between threads soundly:
//!
//! * it is page-aligned and a whole number of pages long (librpmem's rule);
//! * it is `Send + Sync` and every method takes `&self`: several threads may
//!   write different parts while lanes send others;
//! * [`Region::write_at`] and [`Region::read_at`] copy with relaxed atomic
//!   8-byte accesses, so even racing calls on the same bytes are not
//!   undefined behaviour (the bytes read are then some mix of old and new,
//!   as with any unsynchronised memory);
//! * the library itself only hands addresses to the kernel (`sendmsg`,
//!   `recv`), or copies with the same atomic accesses;
//! * [`Region::slice_mut`] gives a plain `&mut [u8]` for code that needs one
//!   (e.g. to build a structure in place), under a documented contract.
//!
//! Memory comes from an anonymous mapping ([`Region::new`], zeroed) or from
//! the caller ([`Region::from_raw_parts`], e.g. a mapped pmem file).

use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

const WORD: usize = 8;

/// Page-aligned memory replicated by a remote pool. See the module
/// documentation.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    mapped: bool,
}

// SAFETY: a `Region` is a pointer to memory that is valid for its whole life
// (its own mapping, or memory the caller of `from_raw_parts` promised to keep
// valid). Every access through `&self` is atomic (`write_at`, `read_at`,
// `copy_in`) or done by the kernel on a raw address; plain references only
// come from `unsafe` methods whose callers promise exclusivity. So sharing
// and sending it between threads cannot cause a data race.
unsafe impl Send for Region {}
// SAFETY: see `Send` above.
unsafe impl Sync for Region {}

impl Region {
    /// The system page size (`sysconf(_SC_PAGESIZE)`, 4096 if unknown).
    pub fn page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
    }

    /// A zeroed region of `len` bytes from an anonymous private mapping.
    /// `len` must be a non-zero multiple of the page size.
    pub fn new(len: usize) -> Result<Region, Error> {
        check_len(len)?;
        // SAFETY: a new anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Io {
                what: format!("mapping {len} bytes of anonymous memory for a region"),
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| Error::Io {
            what: "mmap returned a null address".to_owned(),
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        Ok(Region {
            ptr,
            len,
            mapped: true,
        })
    }

    /// A region over memory the caller owns, e.g. a mapped file. `ptr` must
    /// be page-aligned and `len` a non-zero multiple of the page size
    /// (checked).
    ///
    /// # Safety
    ///
    /// Until the returned `Region` is dropped (and every `Arc` holding it):
    ///
    /// * `[ptr, ptr + len)` must stay valid for reads and writes (mapped,
    ///   not freed, not unmapped, not remapped);
    /// * any access to that memory other than through this `Region` must
    ///   not race with the region's accesses in a way that is a data race
    ///   in Rust: use atomic accesses, or make sure no `Region` method and no
    ///   library call (persist, flush, read) touches the same bytes at the
    ///   same time. The library's own sending and receiving is done by the
    ///   kernel on raw addresses.
    pub unsafe fn from_raw_parts(ptr: *mut u8, len: usize) -> Result<Region, Error> {
        check_len(len)?;
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| Error::InvalidArgument("the region address is null".to_owned()))?;
        let page = Region::page_size();
        if !(ptr.as_ptr() as usize).is_multiple_of(page) {
            return Err(Error::InvalidArgument(format!(
                "the region address {:p} is not aligned to the page size ({page})",
                ptr.as_ptr()
            )));
        }
        Ok(Region {
            ptr,
            len,
            mapped: false,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte. Writing through it is subject to the same rules as
    /// [`Region::slice_mut`].
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `data` into the region at `offset`.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        self.copy_in(offset, data);
        Ok(())
    }

    /// Copies region bytes starting at `offset` into `buf`: the aligned
    /// middle one relaxed 8-byte load per word, the unaligned ends from
    /// one load each.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        let head = ((WORD - offset % WORD) % WORD).min(buf.len());
        let (head_buf, rest) = buf.split_at_mut(head);
        self.read_within_word(offset, head_buf);
        let mut at = offset + head;
        let mut words = rest.chunks_exact_mut(WORD);
        for dst in &mut words {
            dst.copy_from_slice(&self.word(at).load(Ordering::Relaxed).to_ne_bytes());
            at += WORD;
        }
        self.read_within_word(at, words.into_remainder());
        Ok(())
    }

    /// Copies the `buf.len()` bytes at `at` into `buf`; they lie inside one
    /// aligned word of a checked range (nothing is loaded when `buf` is
    /// empty, so `at` may then be the region's end).
    fn read_within_word(&self, at: usize, buf: &mut [u8]) {
        if buf.is_empty() {
            return;
        }
        let word_start = at - at % WORD;
        let skip = at - word_start;
        let word = self.word(word_start).load(Ordering::Relaxed).to_ne_bytes();
        if let Some(src) = word.get(skip..skip + buf.len()) {
            buf.copy_from_slice(src);
        }
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), Error> {
        self.check(offset, len)?;
        let chunk = [byte; 4096];
        let mut pos = 0usize;
        while pos < len {
            let n = (len - pos).min(chunk.len());
            self.copy_in(offset + pos, chunk.get(..n).unwrap_or(&[]));
            pos += n;
        }
        Ok(())
    }

    /// A plain shared slice of `range`.
    ///
    /// # Safety
    ///
    /// While the slice is alive nothing may write those bytes: no
    /// [`Region::write_at`] / [`Region::fill`], no `read_to_region` of the
    /// library on an overlapping range, no [`Region::slice_mut`] of an
    /// overlapping range, and no write through [`Region::as_ptr`].
    pub unsafe fn slice(&self, range: Range<usize>) -> Result<&[u8], Error> {
        let len = range
            .end
            .checked_sub(range.start)
            .ok_or_else(|| bad_range(&range))?;
        self.check(range.start, len)?;
        // SAFETY: in bounds (checked); the caller promises no writer.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(range.start), len) })
    }

    /// A plain exclusive slice of `range`, e.g. to build a structure in
    /// place before persisting it.
    ///
    /// # Safety
    ///
    /// While the slice is alive nothing else may access those bytes: no
    /// [`Region::write_at`] / [`Region::read_at`] / [`Region::fill`] /
    /// [`Region::slice`] / `slice_mut` of an overlapping range, no access
    /// through [`Region::as_ptr`], and no library `read_to_region` of an
    /// overlapping range. A persist or flush of an overlapping range may run
    /// (the kernel reads the bytes; what it sends is whatever they hold at
    /// that moment), as with RDMA.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, range: Range<usize>) -> Result<&mut [u8], Error> {
        let len = range
            .end
            .checked_sub(range.start)
            .ok_or_else(|| bad_range(&range))?;
        self.check(range.start, len)?;
        // SAFETY: in bounds (checked); the caller promises exclusivity.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(range.start), len) })
    }

    /// Checks that `[offset, offset + len)` lies inside the region.
    pub(crate) fn check(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::InvalidArgument(format!(
                "range at offset {offset} of length {len} does not fit in the region of {} bytes",
                self.len
            ))),
        }
    }

    /// The address of byte `offset` when `[offset, offset + len)` lies inside
    /// the region, for handing to the kernel.
    pub(crate) fn raw(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let offset = usize::try_from(offset).ok()?;
        let len = usize::try_from(len).ok()?;
        self.check(offset, len).ok()?;
        // SAFETY: offset <= len of the mapping (checked above).
        Some(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Atomic copy into the region; the range must have been checked.
    pub(crate) fn copy_in(&self, offset: usize, data: &[u8]) {
        let mut pos = 0usize;
        while pos < data.len() {
            let at = offset.saturating_add(pos);
            let word_start = at - at % WORD;
            let skip = at - word_start;
            let take = (WORD - skip).min(data.len() - pos);
            let cell = self.word(word_start);
            let src = data.get(pos..pos + take).unwrap_or(&[]);
            if take == WORD {
                let mut b = [0u8; WORD];
                b.copy_from_slice(src);
                cell.store(u64::from_ne_bytes(b), Ordering::Relaxed);
            } else {
                let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    let mut b = old.to_ne_bytes();
                    if let Some(dst) = b.get_mut(skip..skip + take) {
                        dst.copy_from_slice(src);
                    }
                    Some(u64::from_ne_bytes(b))
                });
            }
            pos += take;
        }
    }

    /// The aligned word at `word_start` (a multiple of 8 inside the region:
    /// the region is page-aligned and a whole number of pages long).
    fn word(&self, word_start: usize) -> &AtomicU64 {
        // SAFETY: `word_start` is a multiple of 8 below `len` (callers derive
        // it from a checked offset), the base is page-aligned, so the
        // address is aligned and in bounds for 8 bytes. All accesses the
        // library makes through `&self` are atomic, and the unsafe slice
        // methods forbid overlapping use.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(word_start).cast::<u64>()) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: our own mapping of exactly `len` bytes, unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        }
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("owned_mapping", &self.mapped)
            .finish()
    }
}

fn check_len(len: usize) -> Result<(), Error> {
    let page = Region::page_size();
    if len == 0 || !len.is_multiple_of(page) {
        return Err(Error::InvalidArgument(format!(
            "the region size {len} must be a non-zero multiple of the page size ({page})"
        )));
    }
    Ok(())
}

fn bad_range(range: &Range<usize>) -> Error {
    Error::InvalidArgument(format!(
        "range {}..{} ends before it starts",
        range.start, range.end
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_region_is_zeroed_and_aligned() {
        let page = Region::page_size();
        let r = Region::new(2 * page).expect("region");
        assert_eq!(r.len(), 2 * page);
        assert!(!r.is_empty());
        assert_eq!(r.as_ptr() as usize % page, 0);
        let mut buf = vec![1u8; 2 * page];
        r.read_at(0, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn sizes_must_be_whole_pages() {
        let page = Region::page_size();
        for len in [0, 1, page - 1, page + 1] {
            let e = Region::new(len).expect_err("bad size");
            assert!(e.to_string().contains("multiple of the page size"), "{e}");
        }
    }

    #[test]
    fn from_raw_parts_checks_alignment() {
        let page = Region::page_size();
        let owner = Region::new(2 * page).expect("region");
        // SAFETY: `owner` outlives the borrowed regions and nothing else
        // touches it.
        unsafe {
            let e = Region::from_raw_parts(owner.as_ptr().add(8), page).expect_err("misaligned");
            assert!(e.to_string().contains("not aligned"), "{e}");
            assert!(Region::from_raw_parts(std::ptr::null_mut(), page).is_err());
            let borrowed = Region::from_raw_parts(owner.as_ptr(), page).expect("aligned");
            borrowed.write_at(10, b"abc").expect("write");
        }
        let mut b = [0u8; 3];
        owner.read_at(10, &mut b).expect("read");
        assert_eq!(&b, b"abc");
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        let page = Region::page_size();
        let r = Region::new(page).expect("region");
        assert!(r.write_at(page - 1, &[1, 2]).is_err());
        assert!(r.write_at(usize::MAX, &[1]).is_err());
        assert!(r.read_at(page, &mut [0u8; 1]).is_err());
        assert!(r.write_at(page, &[]).is_ok());
        assert!(r.fill(1, page, 0).is_err());
        // SAFETY: the ranges are refused before any slice is made.
        unsafe {
            #[allow(clippy::reversed_empty_ranges)]
            let backwards = 5..4;
            assert!(r.slice(backwards).is_err());
            assert!(r.slice_mut(0..page + 1).is_err());
        }
        assert!(r.raw(0, page as u64 + 1).is_none());
        assert!(r.raw(u64::MAX, 1).is_none());
    }

    #[test]
    fn slices_see_atomic_writes() {
        let page = Region::page_size();
        let r = Region::new(page).expect("region");
        r.fill(100, 50, 0xab).expect("fill");
        // SAFETY: no other access while the slices live.
        unsafe {
            assert!(r.slice(100..150).expect("slice").iter().all(|&b| b == 0xab));
            r.slice_mut(0..4).expect("slice").copy_from_slice(b"wxyz");
        }
        let mut b = [0u8; 4];
        r.read_at(0, &mut b).expect("read");
        assert_eq!(&b, b"wxyz");
    }

    #[test]
    fn concurrent_writers_of_neighbouring_bytes_do_not_clobber_each_other() {
        let page = Region::page_size();
        let r = std::sync::Arc::new(Region::new(page).expect("region"));
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let r = std::sync::Arc::clone(&r);
                std::thread::spawn(move || {
                    for i in 0..1000usize {
                        // Thread t owns every byte whose index % 4 == t.
                        let at = (i * 4 + usize::from(t)) % page;
                        r.write_at(at, &[t + 1]).expect("write");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let mut buf = vec![0u8; page];
        r.read_at(0, &mut buf).expect("read");
        for (i, b) in buf.iter().enumerate().take(4000) {
            assert_eq!(usize::from(*b), i % 4 + 1, "byte {i}");
        }
    }

    #[test]
    fn read_at_reaches_the_last_byte_from_any_alignment() {
        let page = Region::page_size();
        let r = Region::new(page).expect("region");
        let all: Vec<u8> = (0..page).map(|i| (i % 251) as u8).collect();
        r.write_at(0, &all).expect("write");
        for start in [page - 1, page - 7, page - 8, page - 13, page - 16, 3, 0] {
            let mut back = vec![0u8; page - start];
            r.read_at(start, &mut back).expect("read");
            assert_eq!(
                back.as_slice(),
                all.get(start..).expect("range"),
                "from {start}"
            );
        }
        let mut none = [0u8; 0];
        r.read_at(page, &mut none).expect("empty read at the end");
    }

    proptest! {
        #[test]
        fn write_then_read_round_trips(offset in 0usize..8192, data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let page = Region::page_size();
            let r = Region::new(3 * page).expect("region");
            r.write_at(offset, &data).expect("write");
            let mut back = vec![0u8; data.len()];
            r.read_at(offset, &mut back).expect("read");
            prop_assert_eq!(&back, &data);
            // The bytes around it are untouched.
            let mut before = [0u8; 1];
            if offset > 0 {
                r.read_at(offset - 1, &mut before).expect("read");
                prop_assert_eq!(before[0], 0);
            }
            let mut after = [0u8; 1];
            r.read_at(offset + data.len(), &mut after).expect("read");
            prop_assert_eq!(after[0], 0);
        }
    }
}
