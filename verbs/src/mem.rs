//! Protection domains, memory registrations and registered buffers.

use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use rdma_sys::{ibv_access_flags, ibv_alloc_pd, ibv_dealloc_pd, ibv_dereg_mr, ibv_mr, ibv_pd};

use crate::cm::Id;
use crate::error::Error;
use crate::flush::{self, FlushSupport};

/// A protection domain on the device a connection identifier resolved to.
///
/// It keeps that identifier (and so librdmacm's open device context) alive:
/// registrations and queue pairs made from it stay valid as long as they
/// hold the `Arc<Pd>`.
pub struct Pd {
    pd: NonNull<ibv_pd>,
    anchor: Arc<Id>,
    flush: OnceLock<FlushSupport>,
}

// SAFETY: a protection domain is a kernel object; libibverbs' calls on it
// (registration, QP creation, deallocation) are thread-safe, and `Pd` hands
// out no reference into memory it points to.
unsafe impl Send for Pd {}
// SAFETY: as for `Send`; `&Pd` allows only thread-safe verbs.
unsafe impl Sync for Pd {}

impl std::fmt::Debug for Pd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pd").field("pd", &self.pd).finish()
    }
}

impl Pd {
    /// Allocates a protection domain on `anchor`'s device.
    pub(crate) fn new(anchor: Arc<Id>) -> Result<Arc<Pd>, Error> {
        let ctx = anchor.verbs().ok_or_else(|| {
            Error::other(
                "ibv_alloc_pd",
                std::io::ErrorKind::NotFound,
                "the connection identifier is not bound to an RDMA device".to_owned(),
            )
        })?;
        // SAFETY: `ctx` is the device context librdmacm opened for `anchor`,
        // valid while `anchor` exists; the PD keeps `anchor`.
        let pd = unsafe { ibv_alloc_pd(ctx.as_ptr()) };
        let pd = NonNull::new(pd).ok_or_else(|| Error::last_os("ibv_alloc_pd"))?;
        Ok(Arc::new(Pd {
            pd,
            anchor,
            flush: OnceLock::new(),
        }))
    }

    pub(crate) fn as_ptr(&self) -> *mut ibv_pd {
        self.pd.as_ptr()
    }

    /// Whether this domain is on the device of `id` (a queue pair of `id`
    /// can only use a domain of its own device).
    pub(crate) fn same_device(&self, id: &Id) -> bool {
        match (self.anchor.verbs(), id.verbs()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// Name of the device (`rxe0`, `mlx5_0`).
    pub fn device_name(&self) -> String {
        self.anchor.device_name()
    }

    /// Which RDMA FLUSH placement types queue pairs of this domain can post
    /// (see [`FlushSupport`]): the device must advertise them, the loaded
    /// provider must create a queue pair that asks for FLUSH (a throw-away
    /// one is created and destroyed on the first call; the answer is kept),
    /// and this crate must have been built with rdma-core >= 45 headers
    /// ([`flush_compiled`](crate::flush_compiled)). Anything missing gives
    /// [`FlushSupport::NONE`], never an error.
    ///
    /// The target's memory additionally needs
    /// [`Access::FLUSH_GLOBAL`] / [`Access::FLUSH_PERSISTENT`] in its
    /// registration (rxe refuses the persistent right on memory that is not
    /// persistent memory).
    pub fn flush_support(&self) -> FlushSupport {
        *self.flush.get_or_init(|| match self.anchor.verbs() {
            Some(ctx) => flush::probe(ctx, self.pd.as_ptr()),
            None => FlushSupport::NONE,
        })
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: every registration and queue pair of this domain holds an
        // `Arc<Pd>`, so none is left; the pointer came from ibv_alloc_pd.
        let _ = unsafe { ibv_dealloc_pd(self.pd.as_ptr()) };
    }
}

/// Memory the NIC may be given access to.
///
/// # Safety
///
/// `as_ptr()..as_ptr() + len()` must be one range of readable and writable
/// memory, the same for every call, that stays valid (mapped, not freed, not
/// remapped) as long as the value exists; and nothing may hold a Rust
/// reference to those bytes while the NIC may write them (after a WRITE or
/// READ was posted into them and before its completion, or, for memory
/// registered for remote writes, as long as the registration exists), except
/// through raw pointers or atomics.
pub unsafe trait Memory: Send + Sync {
    /// First byte.
    fn as_ptr(&self) -> *mut u8;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the range is empty (it never is for a registration).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: an `Arc<M>` points to the same `M` for its whole life, so it
// describes the same valid range as `M` does, for as long as it exists.
unsafe impl<M: Memory + ?Sized> Memory for Arc<M> {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

/// Access rights of a registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access(u32);

impl Access {
    /// Only local reads (a WRITE or SEND source).
    pub const LOCAL_READ: Access = Access(0);
    /// The local NIC may write (RECV and READ destinations).
    pub const LOCAL_WRITE: Access = Access(ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0);
    /// Remote RDMA WRITE into it (needs `LOCAL_WRITE`).
    pub const REMOTE_WRITE: Access = Access(ibv_access_flags::IBV_ACCESS_REMOTE_WRITE.0);
    /// Remote RDMA READ from it.
    pub const REMOTE_READ: Access = Access(ibv_access_flags::IBV_ACCESS_REMOTE_READ.0);
    /// Remote RDMA FLUSH with global visibility placement
    /// (`IBV_ACCESS_FLUSH_GLOBAL`, rdma-core >= 45; the kernel's
    /// `IB_UVERBS_ACCESS_FLUSH_GLOBAL`). Ask for it only where
    /// [`Pd::flush_support`] says so: older kernels refuse the
    /// registration (`EINVAL`).
    pub const FLUSH_GLOBAL: Access = Access(1 << 8);
    /// Remote RDMA FLUSH with persistence placement
    /// (`IBV_ACCESS_FLUSH_PERSISTENT`); rxe refuses it (`EINVAL`) unless
    /// every page of the memory is persistent memory the kernel knows as
    /// such.
    pub const FLUSH_PERSISTENT: Access = Access(1 << 9);

    /// Both sets.
    pub const fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    /// Whether every right of `other` is in this set.
    pub const fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    fn bits(self) -> i32 {
        i32::try_from(self.0).unwrap_or(0)
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, rhs: Access) -> Access {
        self.union(rhs)
    }
}

/// A memory registration: the NIC may access the memory it owns with the
/// rights it was given, through its keys. Dropping it deregisters the
/// memory before the memory itself is dropped.
pub struct Mr {
    mr: NonNull<ibv_mr>,
    addr: u64,
    len: usize,
    lkey: u32,
    rkey: u32,
    // Field order matters: the registration is removed in `Drop::drop`,
    // then the memory and the domain are dropped.
    mem: Box<dyn Memory>,
    _pd: Arc<Pd>,
}

// SAFETY: a registration is a kernel object plus the `Memory` it owns
// (which is `Send + Sync`); `Mr` gives access to its memory only through
// the `Memory` contract (raw pointers).
unsafe impl Send for Mr {}
// SAFETY: as for `Send`; `&Mr` only reads immutable fields.
unsafe impl Sync for Mr {}

impl std::fmt::Debug for Mr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mr")
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("len", &self.len)
            .field("lkey", &self.lkey)
            .field("rkey", &self.rkey)
            .finish()
    }
}

impl Mr {
    /// Registers `mem` in `pd` with `access`.
    pub fn register(pd: &Arc<Pd>, mem: impl Memory + 'static, access: Access) -> Result<Mr, Error> {
        let mem: Box<dyn Memory> = Box::new(mem);
        let ptr = mem.as_ptr();
        let len = mem.len();
        if len == 0 || ptr.is_null() {
            return Err(Error::other(
                "ibv_reg_mr",
                std::io::ErrorKind::InvalidInput,
                "cannot register an empty range".to_owned(),
            ));
        }
        // SAFETY: `[ptr, ptr + len)` is valid memory for as long as `mem`
        // exists (the `Memory` contract); `mem` is dropped only after the
        // registration is removed (`Drop`), and the PD outlives it.
        let mr = unsafe { rdma_sys::ibv_reg_mr(pd.as_ptr(), ptr.cast(), len, access.bits()) };
        let mr = NonNull::new(mr).ok_or_else(|| {
            Error::last_os(format!(
                "ibv_reg_mr of {len} bytes at {ptr:p} on {}",
                pd.device_name()
            ))
        })?;
        // SAFETY: ibv_reg_mr returned a valid registration.
        let (lkey, rkey) = unsafe { ((*mr.as_ptr()).lkey, (*mr.as_ptr()).rkey) };
        Ok(Mr {
            mr,
            addr: ptr as u64,
            len,
            lkey,
            rkey,
            mem,
            _pd: Arc::clone(pd),
        })
    }

    /// Address of the first byte (what a peer puts in its WRITE/READ).
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Local key.
    pub fn lkey(&self) -> u32 {
        self.lkey
    }

    /// Remote key (what a peer needs to access it).
    pub fn rkey(&self) -> u32 {
        self.rkey
    }

    /// Copies `data` into the registered memory at `offset`. The NIC may
    /// access the same bytes at the same time (a peer's WRITE or READ);
    /// then the bytes seen are some mix of old and new, as with any DMA.
    pub fn copy_in(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        let dst = self.checked_ptr("copying into a registration", offset, data.len())?;
        // SAFETY: `[dst, dst + len)` lies inside the registered memory
        // (checked), which is valid while `self` exists; no Rust reference
        // to it exists (the `Memory` contract), so a raw copy is the only
        // access besides the NIC's.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Copies registered memory at `offset` into `buf` (see
    /// [`copy_in`](Self::copy_in) for concurrent NIC access).
    pub fn copy_out(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let src = self.checked_ptr("copying out of a registration", offset, buf.len())?;
        // SAFETY: as in `copy_in`, reading instead of writing.
        unsafe { std::ptr::copy_nonoverlapping(src.cast_const(), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn checked_ptr(&self, what: &str, offset: usize, len: usize) -> Result<*mut u8, Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.mem.as_ptr().wrapping_add(offset)),
            _ => Err(Error::other(
                what,
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes at offset {offset} pass the end of the {}-byte registration",
                    self.len
                ),
            )),
        }
    }

    /// Address of `[offset, offset + len)`, if it lies inside.
    pub(crate) fn range(&self, offset: u64, len: u64) -> Option<u64> {
        let end = offset.checked_add(len)?;
        if end > self.len as u64 {
            return None;
        }
        self.addr.checked_add(offset)
    }

    /// Raw pointer to byte `offset` (checked to lie inside).
    pub(crate) fn ptr_at(&self, offset: usize) -> Option<*mut u8> {
        if offset >= self.len {
            return None;
        }
        Some(self.mem.as_ptr().wrapping_add(offset))
    }
}

impl Drop for Mr {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ibv_reg_mr and is deregistered once;
        // the memory and the PD are still alive (fields dropped after this).
        let _ = unsafe { ibv_dereg_mr(self.mr.as_ptr()) };
    }
}

/// A page-aligned mapping for registering: zeroed anonymous memory
/// ([`Buf::new`]) or a shared mapping of a file or device
/// ([`Buf::map_shared`]). Unmapped when dropped.
pub struct Buf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Buf` owns its mapping; it is accessed only through raw pointers
// by the endpoint that owns the registration (slot discipline) and the NIC.
unsafe impl Send for Buf {}
// SAFETY: as for `Send`.
unsafe impl Sync for Buf {}

impl Buf {
    /// A buffer of at least `len` bytes (rounded up to whole pages).
    pub fn new(len: usize) -> Result<Buf, Error> {
        let page = 4096usize;
        let len = len
            .max(1)
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or_else(|| {
                Error::other(
                    "allocating a registered buffer",
                    std::io::ErrorKind::InvalidInput,
                    "length overflows".to_owned(),
                )
            })?;
        // SAFETY: a fresh anonymous mapping; touches no existing memory.
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
            return Err(Error::last_os(format!("mmap of a {len}-byte buffer")));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| {
            Error::other(
                "mmap",
                std::io::ErrorKind::Other,
                "returned a null address".to_owned(),
            )
        })?;
        Ok(Buf { ptr, len })
    }

    /// Maps the first `len` bytes of `file` (a file on a DAX or tmpfs
    /// mount, a Device DAX character device) shared, readable and
    /// writable, for registering: what the NIC writes lands in the file.
    /// `len` must be a whole number of pages (Device DAX wants its
    /// alignment); the mapping stays valid after `file` is closed.
    ///
    /// Other processes may change the file's bytes at any time; the
    /// registration's memory is only ever accessed through raw pointers
    /// ([`Mr::copy_in`], [`Mr::copy_out`]), like DMA.
    pub fn map_shared(file: &std::fs::File, len: usize) -> Result<Buf, Error> {
        use std::os::fd::AsRawFd;
        if len == 0 || !len.is_multiple_of(4096) {
            return Err(Error::other(
                "mapping a file for registering",
                std::io::ErrorKind::InvalidInput,
                format!("{len} bytes is not a whole, non-zero number of 4096-byte pages"),
            ));
        }
        // SAFETY: a fresh shared mapping of an open descriptor; touches no
        // existing memory of this process.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os(format!(
                "mmap of {len} bytes of a file, shared"
            )));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| {
            Error::other(
                "mmap",
                std::io::ErrorKind::Other,
                "returned a null address".to_owned(),
            )
        })?;
        Ok(Buf { ptr, len })
    }
}

// SAFETY: the mapping is valid until `Drop`, and never moves.
unsafe impl Memory for Buf {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; its registration (if any)
        // was removed first (`Mr` drops its memory after deregistering).
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
