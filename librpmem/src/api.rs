//! The twelve functions of librpmem, with PMDK 1.12.1's argument rules and
//! `errno` values, over [`rpmem::RemotePool`].
//!
//! Every function runs its body under [`std::panic::catch_unwind`]: a
//! panic fails the call (`EIO`, "internal error" in `rpmem_errormsg()`)
//! and never unwinds into C.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use rpmem::{Error, PoolAttr, Region, RemotePool, FLUSH_RELAXED, PERSIST_RELAXED};

use crate::attr::RpmemPoolAttr;
use crate::env;
use crate::errmsg;

/// `RPMEM_MAJOR_VERSION`.
pub const MAJOR_VERSION: c_uint = 1;
/// `RPMEM_MINOR_VERSION`.
pub const MINOR_VERSION: c_uint = 3;
/// `RPMEM_REMOVE_FORCE | RPMEM_REMOVE_POOL_SET`.
const REMOVE_FLAGS_ALL: c_int = 0x3;
/// Bytes at the start of a pool with headers that the data path may not
/// write (`RPMEM_HDR_SIZE`).
pub const HDR_SIZE: usize = 4096;

/// `RPMEMpool`: the handle C programs hold.
#[derive(Debug)]
pub struct RpmemPool {
    pool: RemotePool,
    size: usize,
    nlanes: c_uint,
    no_headers: bool,
    /// PMDK's `rpp->error`: the errno of the first failure that left the
    /// pool unusable, 0 while it is usable.
    error: AtomicI32,
    /// That failure in words.
    cause: Mutex<String>,
}

/// A failed call: the errno to set and the message for `rpmem_errormsg()`.
#[derive(Debug)]
pub struct Failure {
    errno: c_int,
    message: String,
    /// True when the failure leaves the pool unusable.
    fatal: bool,
}

impl Failure {
    /// A refused argument: `EINVAL`, the pool stays usable.
    fn inval(message: impl Into<String>) -> Failure {
        Failure {
            errno: libc::EINVAL,
            message: message.into(),
            fatal: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            errno: e.errno(),
            fatal: e.is_fatal(),
            message: e.to_string(),
        }
    }
}

impl From<env::EnvError> for Failure {
    fn from(e: env::EnvError) -> Failure {
        Failure::inval(e.0)
    }
}

/// Runs `body` as C function `func`: on failure (or panic) sets the
/// thread's message to "`func`: what failed", sets `errno` (last, so that
/// nothing done afterwards changes it) and returns `failed`.
fn entry<T>(func: &str, failed: T, body: impl FnOnce() -> Result<T, Failure>) -> T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return v,
        Ok(Err(f)) => f,
        Err(payload) => Failure {
            errno: libc::EIO,
            message: format!(
                "internal error in the library (a panic: {}); please report it",
                panic_text(payload.as_ref())
            ),
            fatal: true,
        },
    };
    errmsg::set(&format!("{func}: {}", failure.message));
    errmsg::set_errno(failure.errno);
    failed
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// A C string argument as UTF-8 text.
///
/// # Safety
///
/// `p` is null or points to a NUL-terminated string that stays valid and
/// unchanged during the call.
unsafe fn text_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::inval(format!("{what} is NULL")));
    }
    // SAFETY: not null, and the caller promises a valid C string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Failure::inval(format!("{what} {s:?} is not valid UTF-8")))
}

/// `rpmem_check_args` of PMDK, in its order.
fn check_args(
    pool_addr: *mut c_void,
    pool_size: usize,
    nlanes: *mut c_uint,
) -> Result<(), Failure> {
    let page = Region::page_size();
    if pool_addr.is_null() {
        return Err(Failure::inval("invalid pool address (NULL)"));
    }
    if !(pool_addr as usize).is_multiple_of(page) {
        return Err(Failure::inval(format!(
            "pool address {pool_addr:p} must be aligned to the page size ({page})"
        )));
    }
    if !pool_size.is_multiple_of(page) {
        return Err(Failure::inval(format!(
            "pool size {pool_size} must be aligned to the page size ({page})"
        )));
    }
    if pool_size == 0 {
        return Err(Failure::inval("invalid pool size 0"));
    }
    if nlanes.is_null() {
        return Err(Failure::inval("lanes pointer cannot be NULL"));
    }
    // SAFETY: not null; the caller promises it points to an unsigned.
    if unsafe { nlanes.read() } == 0 {
        return Err(Failure::inval("number of lanes must be positive"));
    }
    Ok(())
}

/// What `rpmem_create` and `rpmem_open` share: checks, the region, the
/// session, the handle and `*nlanes`.
///
/// # Safety
///
/// As for `rpmem_create` (the C contract of its arguments).
unsafe fn start(
    target: *const c_char,
    pool_set_name: *const c_char,
    pool_addr: *mut c_void,
    pool_size: usize,
    nlanes: *mut c_uint,
    create: Option<Option<PoolAttr>>,
) -> Result<Box<RpmemPool>, Failure> {
    // SAFETY: the caller's contract on the strings.
    let target = unsafe { text_arg(target, "target") }?;
    // SAFETY: as above.
    let pool_set = unsafe { text_arg(pool_set_name, "pool set name") }?;
    check_args(pool_addr, pool_size, nlanes)?;
    // SAFETY: checked not null above; the caller's contract.
    let asked = unsafe { nlanes.read() };
    let opts = env::options()?;
    // SAFETY: the address is page-aligned and not null, the size a non-zero
    // multiple of the page size (checked); the C contract of rpmem_create
    // is that [pool_addr, pool_addr + pool_size) is the application's
    // memory, valid until rpmem_close. The library only reads it to send
    // (and writes it only in read_to_region, which the C API does not use).
    let region = unsafe { Region::from_raw_parts(pool_addr.cast::<u8>(), pool_size) }?;
    let region = Arc::new(region);
    let pool = match create {
        Some(attr) => RemotePool::create(target, pool_set, region, asked, attr.as_ref(), &opts)?,
        None => RemotePool::open(target, pool_set, region, asked, &opts)?,
    };
    let granted = pool.nlanes();
    // SAFETY: checked not null; the caller's contract.
    unsafe { nlanes.write(granted) };
    Ok(Box::new(RpmemPool {
        size: pool_size,
        nlanes: granted,
        no_headers: !pool.has_headers(),
        pool,
        error: AtomicI32::new(0),
        cause: Mutex::new(String::new()),
    }))
}

/// `rpmem_create`.
///
/// # Safety
///
/// `target` and `pool_set_name` are NULL or C strings; `nlanes` is NULL or
/// points to an `unsigned`; `create_attr` is NULL or points to a `struct
/// rpmem_pool_attr`; `[pool_addr, pool_addr + pool_size)` is memory the
/// application keeps mapped until `rpmem_close`.
pub unsafe extern "C" fn rpmem_create(
    target: *const c_char,
    pool_set_name: *const c_char,
    pool_addr: *mut c_void,
    pool_size: usize,
    nlanes: *mut c_uint,
    create_attr: *const RpmemPoolAttr,
) -> *mut RpmemPool {
    entry("rpmem_create", ptr::null_mut(), || {
        // SAFETY: NULL or a valid struct (the caller's contract).
        let attr = unsafe { create_attr.as_ref() }.map(PoolAttr::from);
        // SAFETY: the caller's contract, passed on.
        let pool = unsafe {
            start(
                target,
                pool_set_name,
                pool_addr,
                pool_size,
                nlanes,
                Some(attr),
            )
        }?;
        Ok(Box::into_raw(pool))
    })
}

/// `rpmem_open`.
///
/// # Safety
///
/// As [`rpmem_create`]; `open_attr` is NULL or points to writable memory
/// for a `struct rpmem_pool_attr`.
pub unsafe extern "C" fn rpmem_open(
    target: *const c_char,
    pool_set_name: *const c_char,
    pool_addr: *mut c_void,
    pool_size: usize,
    nlanes: *mut c_uint,
    open_attr: *mut RpmemPoolAttr,
) -> *mut RpmemPool {
    entry("rpmem_open", ptr::null_mut(), || {
        // SAFETY: the caller's contract, passed on.
        let pool = unsafe { start(target, pool_set_name, pool_addr, pool_size, nlanes, None) }?;
        if !open_attr.is_null() {
            let attr = pool.pool.attr().copied().unwrap_or(PoolAttr::ZERO);
            // SAFETY: not null; the caller promises room for the struct.
            unsafe { open_attr.write(RpmemPoolAttr::from(&attr)) };
        }
        Ok(Box::into_raw(pool))
    })
}

/// The pool behind a handle.
///
/// # Safety
///
/// `rpp` is NULL or a handle from `rpmem_create`/`rpmem_open` not yet
/// closed.
unsafe fn handle<'a>(rpp: *mut RpmemPool) -> Result<&'a RpmemPool, Failure> {
    // SAFETY: NULL or a live handle (the caller's contract); handles are
    // only read through shared references until rpmem_close.
    unsafe { rpp.cast_const().as_ref() }.ok_or_else(|| Failure::inval("the pool handle is NULL"))
}

impl RpmemPool {
    /// Fails with the earlier fatal error, as PMDK's `rpp->error` does.
    fn check_usable(&self) -> Result<(), Failure> {
        let e = self.error.load(Ordering::Acquire);
        if e == 0 {
            return Ok(());
        }
        let cause = self.cause.lock().map(|c| c.clone()).unwrap_or_default();
        Err(Failure {
            errno: e,
            message: format!("the pool is unusable after an earlier failure: {cause}"),
            fatal: false,
        })
    }

    /// Runs a data-path call; a fatal failure makes the pool unusable.
    fn data_call(
        &self,
        body: impl FnOnce(&RpmemPool) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.check_usable()?;
        let result = catch_unwind(AssertUnwindSafe(|| body(self))).unwrap_or_else(|payload| {
            Err(Failure {
                errno: libc::EIO,
                message: format!(
                    "internal error in the library (a panic: {}); please report it",
                    panic_text(payload.as_ref())
                ),
                fatal: true,
            })
        });
        if let Err(f) = &result {
            if f.fatal {
                self.break_with(f);
            }
        }
        result
    }

    fn break_with(&self, f: &Failure) {
        let errno = if f.errno == 0 { libc::EIO } else { f.errno };
        if self
            .error
            .compare_exchange(0, errno, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if let Ok(mut c) = self.cause.lock() {
                c.clone_from(&f.message);
            }
        }
    }

    /// Lane and range rules of PMDK's `rpmem_fip_persist`/`_flush`.
    fn check_lane_range(&self, offset: usize, length: usize, lane: c_uint) -> Result<(), Failure> {
        self.check_lane(lane)?;
        let end = offset.checked_add(length);
        if offset >= self.size || end.is_none_or(|e| e > self.size) {
            return Err(Failure::inval(format!(
                "range at offset {offset} of {length} bytes is outside the pool of {} bytes",
                self.size
            )));
        }
        Ok(())
    }

    fn check_lane(&self, lane: c_uint) -> Result<(), Failure> {
        if lane >= self.nlanes {
            return Err(Failure::inval(format!(
                "lane {lane} is out of range: the pool has {} lane(s)",
                self.nlanes
            )));
        }
        Ok(())
    }

    fn check_header(&self, offset: usize) -> Result<(), Failure> {
        if !self.no_headers && offset < HDR_SIZE {
            return Err(Failure::inval(format!(
                "offset ({offset}) in pool is less than {HDR_SIZE} bytes (the pool header)"
            )));
        }
        Ok(())
    }
}

/// `size_t` as the `u64` the Rust API takes.
fn u64_of(n: usize) -> u64 {
    n as u64
}

/// `rpmem_persist`.
///
/// # Safety
///
/// `rpp` is NULL or an open handle.
pub unsafe extern "C" fn rpmem_persist(
    rpp: *mut RpmemPool,
    offset: usize,
    length: usize,
    lane: c_uint,
    flags: c_uint,
) -> c_int {
    entry("rpmem_persist", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.data_call(|h| {
            if flags & !PERSIST_RELAXED != 0 {
                return Err(Failure::inval(format!("invalid flags (0x{flags:x})")));
            }
            h.check_header(offset)?;
            h.check_lane_range(offset, length, lane)?;
            if length == 0 {
                return Ok(());
            }
            Ok(h.pool
                .persist(lane, u64_of(offset), u64_of(length), flags)?)
        })?;
        Ok(0)
    })
}

/// `rpmem_deep_persist`.
///
/// # Safety
///
/// `rpp` is NULL or an open handle.
pub unsafe extern "C" fn rpmem_deep_persist(
    rpp: *mut RpmemPool,
    offset: usize,
    length: usize,
    lane: c_uint,
) -> c_int {
    entry("rpmem_deep_persist", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.data_call(|h| {
            // PMDK refuses offsets inside the header area even for pools
            // without headers.
            if offset < HDR_SIZE {
                return Err(Failure::inval(format!(
                    "offset ({offset}) in pool is less than {HDR_SIZE} bytes"
                )));
            }
            h.check_lane_range(offset, length, lane)?;
            if length == 0 {
                return Ok(());
            }
            Ok(h.pool.deep_persist(lane, u64_of(offset), u64_of(length))?)
        })?;
        Ok(0)
    })
}

/// `rpmem_flush`.
///
/// # Safety
///
/// `rpp` is NULL or an open handle.
pub unsafe extern "C" fn rpmem_flush(
    rpp: *mut RpmemPool,
    offset: usize,
    length: usize,
    lane: c_uint,
    flags: c_uint,
) -> c_int {
    entry("rpmem_flush", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.data_call(|h| {
            if flags & !FLUSH_RELAXED != 0 {
                return Err(Failure::inval(format!("invalid flags (0x{flags:x})")));
            }
            h.check_header(offset)?;
            h.check_lane_range(offset, length, lane)?;
            if length == 0 {
                return Ok(());
            }
            Ok(h.pool.flush(lane, u64_of(offset), u64_of(length), flags)?)
        })?;
        Ok(0)
    })
}

/// `rpmem_drain`.
///
/// # Safety
///
/// `rpp` is NULL or an open handle.
pub unsafe extern "C" fn rpmem_drain(rpp: *mut RpmemPool, lane: c_uint, flags: c_uint) -> c_int {
    entry("rpmem_drain", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.data_call(|h| {
            if flags != 0 {
                return Err(Failure::inval(format!("invalid flags (0x{flags:x})")));
            }
            h.check_lane(lane)?;
            Ok(h.pool.drain(lane, 0)?)
        })?;
        Ok(0)
    })
}

/// `rpmem_read`.
///
/// # Safety
///
/// `rpp` is NULL or an open handle; `buff` is NULL or writable for
/// `length` bytes and not accessed by anything else during the call.
pub unsafe extern "C" fn rpmem_read(
    rpp: *mut RpmemPool,
    buff: *mut c_void,
    offset: usize,
    length: usize,
    lane: c_uint,
) -> c_int {
    entry("rpmem_read", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.data_call(|h| {
            h.check_lane(lane)?;
            if length == 0 {
                return Ok(());
            }
            if buff.is_null() {
                return Err(Failure::inval("the buffer is NULL"));
            }
            if offset.checked_add(length).is_none_or(|e| e > h.size) {
                return Err(Failure::inval(format!(
                    "range at offset {offset} of {length} bytes is outside the pool of {} bytes",
                    h.size
                )));
            }
            // SAFETY: not null; the caller promises `length` writable bytes
            // that nothing else touches during the call.
            let buf = unsafe { std::slice::from_raw_parts_mut(buff.cast::<u8>(), length) };
            Ok(h.pool.read(lane, u64_of(offset), buf)?)
        })?;
        Ok(0)
    })
}

/// `rpmem_set_attr`. As in PMDK, a failure here does not make the pool
/// unusable.
///
/// # Safety
///
/// `rpp` is NULL or an open handle; `attr` is NULL or points to a
/// `struct rpmem_pool_attr`.
pub unsafe extern "C" fn rpmem_set_attr(rpp: *mut RpmemPool, attr: *const RpmemPoolAttr) -> c_int {
    entry("rpmem_set_attr", -1, || {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rpp) }?;
        h.check_usable()?;
        // SAFETY: NULL or a valid struct (the caller's contract).
        let attr = unsafe { attr.as_ref() }.map(PoolAttr::from);
        h.pool.set_attr(attr.as_ref())?;
        Ok(0)
    })
}

/// `rpmem_close`: ends the session and frees the handle, whatever the
/// answer (as PMDK).
///
/// # Safety
///
/// `rpp` is NULL or an open handle, used by no other thread now or later.
pub unsafe extern "C" fn rpmem_close(rpp: *mut RpmemPool) -> c_int {
    entry("rpmem_close", -1, || {
        if rpp.is_null() {
            return Err(Failure::inval("the pool handle is NULL"));
        }
        // SAFETY: a live handle made by Box::into_raw, given back once.
        let h = unsafe { Box::from_raw(rpp) };
        h.pool.close()?;
        Ok(0)
    })
}

/// `rpmem_remove`.
///
/// # Safety
///
/// `target` and `pool_set` are NULL or C strings.
pub unsafe extern "C" fn rpmem_remove(
    target: *const c_char,
    pool_set: *const c_char,
    flags: c_int,
) -> c_int {
    entry("rpmem_remove", -1, || {
        if flags & !REMOVE_FLAGS_ALL != 0 {
            return Err(Failure::inval(format!(
                "invalid flags specified (0x{flags:x})"
            )));
        }
        // SAFETY: the caller's contract.
        let target = unsafe { text_arg(target, "target") }?;
        // SAFETY: the caller's contract.
        let pool_set = unsafe { text_arg(pool_set, "pool set name") }?;
        let opts = env::options()?;
        let flags = u32::try_from(flags).unwrap_or(0);
        rpmem::remove(target, pool_set, flags, &opts)?;
        Ok(0)
    })
}

/// `rpmem_check_version`: NULL when this library provides API version
/// `major_required`.`minor_required`, otherwise PMDK's text of the reason,
/// which is also the thread's error message (`errno` is not changed).
pub extern "C" fn rpmem_check_version(
    major_required: c_uint,
    minor_required: c_uint,
) -> *const c_char {
    let checked = catch_unwind(|| {
        if major_required != MAJOR_VERSION {
            Some(format!(
                "librpmem major version mismatch (need {major_required}, found {MAJOR_VERSION})"
            ))
        } else if minor_required > MINOR_VERSION {
            Some(format!(
                "librpmem minor version mismatch (need {minor_required}, found {MINOR_VERSION})"
            ))
        } else {
            None
        }
    });
    match checked {
        Ok(None) => ptr::null(),
        Ok(Some(text)) => {
            errmsg::set(&text);
            errmsg::ptr()
        }
        Err(_) => {
            errmsg::set("rpmem_check_version: internal error in the library (a panic)");
            errmsg::ptr()
        }
    }
}

/// `rpmem_errormsg`: the calling thread's last error message.
pub extern "C" fn rpmem_errormsg() -> *const c_char {
    errmsg::ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpmem_core::wire::oob::{MsgType, Status};

    fn refused(status: Status) -> Failure {
        Failure::from(Error::Refused {
            host: "node".to_owned(),
            request: MsgType::Open,
            pool_set: "p.set".to_owned(),
            status,
            message: "rpmemd: words".to_owned(),
        })
    }

    /// rpmemd's statuses become PMDK's errno values (`rpmem_util.c`).
    #[test]
    fn refusals_map_to_pmdks_errno_values() {
        let table = [
            (Status::BadProto, libc::EPROTONOSUPPORT),
            (Status::BadName, libc::EINVAL),
            (Status::BadSize, libc::EFBIG),
            (Status::BadNlanes, libc::EINVAL),
            (Status::BadProvider, libc::EINVAL),
            (Status::Fatal, libc::EREMOTEIO),
            (Status::FatalConn, libc::ECONNABORTED),
            (Status::Busy, libc::EBUSY),
            (Status::Exists, libc::EEXIST),
            (Status::ProvNoSup, libc::EMEDIUMTYPE),
            (Status::NoExist, libc::ENOENT),
            (Status::NoAccess, libc::EACCES),
            (Status::PoolCfg, libc::EINVAL),
        ];
        for (status, errno) in table {
            let f = refused(status);
            assert_eq!(f.errno, errno, "{status}");
            assert!(f.message.contains("p.set") && f.message.ends_with("rpmemd: words"));
        }
    }

    #[test]
    fn a_panic_fails_the_call_with_eio_and_says_so() {
        let r = entry("rpmem_test", -1, || -> Result<c_int, Failure> {
            panic!("boom")
        });
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EIO)
        );
        let m = errmsg::text();
        assert!(
            m.starts_with("rpmem_test: internal error") && m.contains("boom"),
            "{m}"
        );
    }

    #[test]
    fn errno_is_set_for_argument_failures_and_left_alone_on_success() {
        errmsg::set_errno(0);
        let r = entry("rpmem_test", -1, || Err(Failure::inval("bad")));
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(errmsg::text(), "rpmem_test: bad");
        errmsg::set_errno(7);
        assert_eq!(entry("rpmem_test", -1, || Ok(0)), 0);
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(7));
        assert_eq!(errmsg::text(), "rpmem_test: bad");
    }
}
