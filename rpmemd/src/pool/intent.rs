//! The intent record that makes SET_ATTR atomic across the parts of a pool.
//!
//! PMDK rewrites the part headers one after the other; a crash in between
//! leaves parts with different attributes (and a different pool set uuid),
//! and such a pool never opens again. rpmemd instead:
//!
//! 1. computes every part's new header and writes all of them, with the
//!    path of each part and a fingerprint of its current header, to an
//!    intent record next to the pool set file (`<pool set file name>`
//!    followed by [`SUFFIX`]), with a checksum over the whole record; the
//!    record file and its directory are synced (`fsync`);
//! 2. rewrites each part's header from the record, each made durable
//!    (`msync`, or CPU flushes and deep flush for a Device DAX) before the
//!    next;
//! 3. removes the record and syncs the directory.
//!
//! Opening the pool first looks for the record (with every part locked):
//!
//! * a valid record means the rewrite may have started: every header that
//!   is not yet the new one is rewritten from the record (the roll
//!   forward), then the record is removed;
//! * a record that is cut short or fails its checksum was never durable, so
//!   no header was touched: it is removed and the headers are used as they
//!   are;
//! * a valid record that does not fit the pool (other part paths, or a part
//!   whose header is neither the one before nor the one after the
//!   rewrite) is refused with an error naming it: rpmemd never writes a
//!   header it cannot account for.
//!
//! The record format is in `docs/pool_hdr.md` ("SET_ATTR intent record").

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rpmem_core::flush::cpu::FlushInstr;
use rpmem_core::pool_hdr::{PoolHdrRepr, POOL_HDR_SIZE};

use super::error::PoolError;
use super::header;
use super::parts::PartFile;
use super::path::{sys_fsync_dir, sys_openat, sys_unlinkat};
use crate::logging::escape;

/// What follows the pool set file's name in the name of its intent record
/// (`db.set` -> `db.set.rpmemd-set-attr`). Pool set names ending in it are
/// refused, so that no pool set file can be taken for a record.
pub const SUFFIX: &str = ".rpmemd-set-attr";
/// The first 8 bytes of a record.
pub const MAGIC: [u8; 8] = *b"RPMDSATR";
/// The record format version.
pub const VERSION: u32 = 1;
/// Most header parts a record may hold (a pool set replica has at most 1024 parts).
const MAX_RECORD_PARTS: usize = 1024;
/// Longest part path a record may hold.
const MAX_RECORD_PATH: usize = 4096;
/// Bytes before the first part entry.
const FIXED_LEN: usize = 24;
/// Largest record read.
const MAX_RECORD_LEN: usize =
    FIXED_LEN + MAX_RECORD_PARTS * (4 + MAX_RECORD_PATH + 8 + POOL_HDR_SIZE) + 8;

/// FNV-1a, 64 bits: the record's checksum and the header fingerprints
/// (fixed here, so records written by one rpmemd version read in another).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One part of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The part's path, as the pool set file gives it.
    pub path: Vec<u8>,
    /// [`fnv1a64`] of the part's header before the rewrite.
    pub old_fingerprint: u64,
    /// The part's new header.
    pub new_header: Box<[u8; POOL_HDR_SIZE]>,
}

/// A decoded intent record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// One entry per part with a header, in pool order.
    pub entries: Vec<Entry>,
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let s = bytes.get(*at..end)?;
    *at = end;
    Some(s)
}

fn take_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    take(bytes, at, 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn take_u64(bytes: &[u8], at: &mut usize) -> Option<u64> {
    take(bytes, at, 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

impl Record {
    /// The record's bytes (see `docs/pool_hdr.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(FIXED_LEN + self.entries.len() * (4 + 64 + 8 + POOL_HDR_SIZE) + 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let n = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // total length, below
        for e in &self.entries {
            let len = u32::try_from(e.path.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&e.path);
            out.extend_from_slice(&e.old_fingerprint.to_le_bytes());
            out.extend_from_slice(&e.new_header[..]);
        }
        let total = u64::try_from(out.len() + 8).unwrap_or(u64::MAX);
        if let Some(slot) = out.get_mut(16..24) {
            slot.copy_from_slice(&total.to_le_bytes());
        }
        let sum = fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes a record; the error says why the bytes are not a complete,
    /// intact record.
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        if bytes.is_empty() {
            return Err("it is empty".to_owned());
        }
        if bytes.len() < FIXED_LEN + 8 {
            return Err(format!("it has only {} bytes", bytes.len()));
        }
        let body_len = bytes.len() - 8;
        let Some((body, sum)) = bytes.split_at_checked(body_len) else {
            return Err(format!("it has only {} bytes", bytes.len()));
        };
        let stored = u64::from_le_bytes(sum.try_into().unwrap_or([0; 8]));
        let computed = fnv1a64(body);
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err("it does not start with the record's magic".to_owned());
        }
        let mut at = 8;
        let version = take_u32(bytes, &mut at).unwrap_or(0);
        let n = take_u32(bytes, &mut at).unwrap_or(0);
        let total = take_u64(bytes, &mut at).unwrap_or(0);
        if total != u64::try_from(bytes.len()).unwrap_or(u64::MAX) {
            return Err(format!(
                "it has {} bytes, its length field says {total}",
                bytes.len()
            ));
        }
        if stored != computed {
            return Err(format!(
                "its checksum is wrong (stored {stored:#018x}, computed {computed:#018x})"
            ));
        }
        if version != VERSION {
            return Err(format!("it has version {version}, not {VERSION}"));
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n == 0 || n > MAX_RECORD_PARTS {
            return Err(format!("it holds {n} parts"));
        }
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let bad = || format!("part entry {i} is cut short");
            let len = take_u32(body, &mut at).ok_or_else(bad)?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_RECORD_PATH {
                return Err(format!("part entry {i} has a path of {len} bytes"));
            }
            let path = take(body, &mut at, len).ok_or_else(bad)?.to_vec();
            let old_fingerprint = take_u64(body, &mut at).ok_or_else(bad)?;
            let mut new_header = Box::new([0u8; POOL_HDR_SIZE]);
            new_header.copy_from_slice(take(body, &mut at, POOL_HDR_SIZE).ok_or_else(bad)?);
            entries.push(Entry {
                path,
                old_fingerprint,
                new_header,
            });
        }
        if at != body_len {
            return Err(format!(
                "{} bytes follow the last part entry",
                body_len - at
            ));
        }
        Ok(Record { entries })
    }
}

/// The record's file name for the pool set file `file_name`: the name followed by [`SUFFIX`];
/// when that would pass `NAME_MAX` (255 bytes), the name's first 200 bytes, a dot and the
/// [`fnv1a64`] of the whole name in hex, then [`SUFFIX`].
pub fn record_name(file_name: &str) -> String {
    if file_name.len() + SUFFIX.len() <= 255 {
        return format!("{file_name}{SUFFIX}");
    }
    let mut cut = 200;
    while !file_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}.{:016x}{SUFFIX}",
        &file_name[..cut],
        fnv1a64(file_name.as_bytes())
    )
}

/// Where the intent record of one pool set name lives: the directory that
/// holds the pool set file (resolved beneath `poolset-dir` as the pool set
/// file is, and held open) and the record's name in it.
#[derive(Debug)]
pub struct IntentFile {
    /// The directory (an `O_PATH` descriptor).
    dir: OwnedFd,
    /// `<pool set file name><SUFFIX>`.
    name: CString,
    /// `poolset-dir/<pool set name><SUFFIX>`, for messages.
    display: PathBuf,
}

/// What opening a pool did with an intent record it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// A valid record: the headers of these parts were rewritten from it
    /// (none when every header was already the new one), and it was
    /// removed.
    RolledForward {
        /// Indexes of the parts whose header was rewritten.
        rewritten: Vec<usize>,
    },
    /// An incomplete record (the rewrite had not started): removed, the
    /// headers kept.
    Discarded {
        /// Why the record is not a complete one.
        reason: String,
    },
}

impl IntentFile {
    /// The record of the pool set file `file_name` in directory `dir`.
    pub fn new(dir: OwnedFd, file_name: &str, display: PathBuf) -> Result<IntentFile, PoolError> {
        let display = display.with_file_name(record_name(file_name));
        let name = CString::new(record_name(file_name)).map_err(|_| {
            PoolError::io("open", &display, io::Error::from_raw_os_error(libc::EINVAL))
        })?;
        Ok(IntentFile { dir, name, display })
    }

    /// The record's path, for messages.
    pub fn path(&self) -> &Path {
        &self.display
    }

    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Makes the directory entry changes durable.
    fn sync_dir(&self) -> Result<(), PoolError> {
        sys_fsync_dir(self.dir())
            .map_err(|e| PoolError::io("fsync the directory of", &self.display, e))
    }

    /// The record's bytes; `None` when there is none.
    pub fn read_bytes(&self) -> Result<Option<Vec<u8>>, PoolError> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = match sys_openat(Some(self.dir()), &self.name, flags, 0) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENAMETOOLONG)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(PoolError::io("open", &self.display, e)),
        };
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| PoolError::io("fstat", &self.display, e))?;
        if !meta.is_file() {
            return Err(PoolError::Intent {
                path: self.display.clone(),
                reason: "it is not a regular file".to_owned(),
            });
        }
        let mut bytes = Vec::new();
        file.take(u64::try_from(MAX_RECORD_LEN).unwrap_or(u64::MAX) + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| PoolError::io("read", &self.display, e))?;
        Ok(Some(bytes))
    }

    /// Writes `bytes` as the record (created 0600, replacing an old one);
    /// with `durable`, syncs the file and its directory.
    pub fn write(&self, bytes: &[u8], durable: bool) -> Result<(), PoolError> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW;
        let fd = sys_openat(Some(self.dir()), &self.name, flags, 0o600)
            .map_err(|e| PoolError::io("create", &self.display, e))?;
        let mut file = File::from(fd);
        file.write_all(bytes)
            .map_err(|e| PoolError::io("write", &self.display, e))?;
        if durable {
            file.sync_all()
                .map_err(|e| PoolError::io("fsync", &self.display, e))?;
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Removes the record (if there is one) and syncs the directory.
    /// Returns whether there was one.
    pub fn remove(&self) -> Result<bool, PoolError> {
        match sys_unlinkat(self.dir(), &self.name) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENAMETOOLONG)
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(PoolError::io("unlink", &self.display, e)),
        }
        self.sync_dir()?;
        Ok(true)
    }

    /// Before a pool is opened (every part locked): completes or discards
    /// an interrupted SET_ATTR (see the module documentation). `files` are
    /// the parts with a header.
    pub fn recover(
        &self,
        files: &[PartFile],
        flush: FlushInstr,
        sysfs: &Path,
    ) -> Result<Option<Recovery>, PoolError> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        let record = match Record::decode(&bytes) {
            Ok(r) => r,
            Err(reason) => {
                self.remove()?;
                log::warn!(
                    "discarded the incomplete SET_ATTR intent record {} ({reason}): it never \
                     became durable, so no pool header had been rewritten; the pool keeps its \
                     headers",
                    escape(&self.display.to_string_lossy())
                );
                return Ok(Some(Recovery::Discarded { reason }));
            }
        };
        let misfit = |reason: String| PoolError::Intent {
            path: self.display.clone(),
            reason,
        };
        if record.entries.len() != files.len() {
            return Err(misfit(format!(
                "it holds the headers of {} parts, the pool set has {} parts with a header",
                record.entries.len(),
                files.len()
            )));
        }
        let mut todo = Vec::new();
        for (i, (e, f)) in record.entries.iter().zip(files).enumerate() {
            if e.path != f.path.as_os_str().as_bytes() {
                return Err(misfit(format!(
                    "its part {i} is {:?}, the pool set file's is {:?}",
                    String::from_utf8_lossy(&e.path),
                    f.path
                )));
            }
            if let Err(err) = PoolHdrRepr::parse_bytes(&e.new_header[..]) {
                return Err(misfit(format!("its header for part {i} is invalid: {err}")));
            }
            let current = header::read(f)?;
            if current == *e.new_header {
                continue;
            }
            let torn = PoolHdrRepr::parse_bytes(&current).is_err();
            if torn || fnv1a64(&current) == e.old_fingerprint {
                todo.push(i);
            } else {
                return Err(misfit(format!(
                    "part {i} ({:?}) has a valid header that is neither the one before nor the \
                     one after the interrupted SET_ATTR (was the pool changed by other means?)",
                    f.path
                )));
            }
        }
        for &i in &todo {
            if let (Some(f), Some(e)) = (files.get(i), record.entries.get(i)) {
                header::write(f, &e.new_header, flush, sysfs)?;
            }
        }
        self.remove()?;
        log::warn!(
            "completed an interrupted SET_ATTR from its intent record {}: {} of {} part \
             header(s) rewritten{}",
            escape(&self.display.to_string_lossy()),
            todo.len(),
            files.len(),
            if todo.is_empty() {
                String::new()
            } else {
                format!(
                    " (part(s) {})",
                    todo.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        Ok(Some(Recovery::RolledForward { rewritten: todo }))
    }
}

/// Where [`super::Pool::set_attr_crash_test`] stops, as if rpmemd died
/// there. For crash tests only: nothing in rpmemd's protocol, command line
/// or environment reaches it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAttrCrash {
    /// Nothing written yet.
    BeforeRecord,
    /// The intent record holds only its first `n` bytes (a crash while it
    /// was being written, before it was durable).
    TornRecord(usize),
    /// The whole intent record was written, but one 512-byte block in its
    /// middle never reached the disk (reads as zeros).
    HoledRecord,
    /// The intent record is durable (file and directory synced); no header
    /// rewritten yet.
    RecordDurable,
    /// Part `k`'s header is half rewritten (its first 2048 bytes new, the
    /// rest old); parts before it have their new header.
    TornHeader(usize),
    /// Parts `0..=k` have their new header.
    AfterHeader(usize),
    /// Every header rewritten and the intent record removed.
    RecordRemoved,
}

impl SetAttrCrash {
    /// Every crash point of a SET_ATTR on a pool with `nhdrs` headers, in
    /// the order the steps run.
    pub fn every(nhdrs: usize) -> Vec<SetAttrCrash> {
        let mut v = vec![
            SetAttrCrash::BeforeRecord,
            SetAttrCrash::TornRecord(0),
            SetAttrCrash::TornRecord(7),
            SetAttrCrash::TornRecord(100),
            SetAttrCrash::HoledRecord,
            SetAttrCrash::RecordDurable,
        ];
        for k in 0..nhdrs {
            v.push(SetAttrCrash::TornHeader(k));
            v.push(SetAttrCrash::AfterHeader(k));
        }
        v.push(SetAttrCrash::RecordRemoved);
        v
    }

    /// True when the crash comes after the intent record was durable: the
    /// new attributes must win (the rewrite is completed on open).
    pub fn after_record(self) -> bool {
        !matches!(
            self,
            SetAttrCrash::BeforeRecord | SetAttrCrash::TornRecord(_) | SetAttrCrash::HoledRecord
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            entries: vec![
                Entry {
                    path: b"/pm/a".to_vec(),
                    old_fingerprint: 7,
                    new_header: Box::new([0x11; POOL_HDR_SIZE]),
                },
                Entry {
                    path: b"/pm/b".to_vec(),
                    old_fingerprint: 9,
                    new_header: Box::new([0x22; POOL_HDR_SIZE]),
                },
            ],
        }
    }

    #[test]
    fn records_round_trip() {
        let r = record();
        let bytes = r.encode();
        assert_eq!(&bytes[..8], b"RPMDSATR");
        assert_eq!(Record::decode(&bytes), Ok(r));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let bytes = record().encode();
        for n in 0..bytes.len() {
            assert!(Record::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        for i in (0..bytes.len()).step_by(97) {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Record::decode(&b).is_err(), "flipped byte {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::decode(&longer).is_err());
    }

    #[test]
    fn long_names_get_a_record_name_within_name_max() {
        assert_eq!(record_name("db.set"), "db.set.rpmemd-set-attr");
        let long = "ä".repeat(120); // 240 bytes
        let r = record_name(&long);
        assert!(
            r.len() <= 255 && r.ends_with(SUFFIX) && r.starts_with("ää"),
            "{r}"
        );
        assert_ne!(r, record_name(&format!("{long}x")));
    }

    #[test]
    fn fnv_is_the_published_function() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
