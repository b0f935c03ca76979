//! [`Pool`]: an open pool (mapping, part files and their locks), and the
//! operations of PMDK's `rpmemd_db`: create, open, set attributes, close,
//! close and remove, remove by name.

use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rpmem_core::attr::{PoolAttr, Uuid};
use rpmem_core::flush::cpu::FlushInstr;
use rpmem_core::flush::{FlushError, FlushOps};
use rpmem_core::pool_hdr::{
    attr_for_create, check_parts, from_attr, to_attr, PartLinks, PoolHdrRepr, POOL_FEAT_SINGLEHDR,
    POOL_HDR_SIZE,
};
use rpmem_core::poolset::{Options, PoolSet};

use super::error::PoolError;
use super::header;
use super::intent::{fnv1a64, Entry, IntentFile, Record, Recovery, SetAttrCrash};
use super::map::Mapping;
use super::parts::{self, PartFile, PartPlan, Plan, Purpose, Slot, MIN_PART, MIN_POOL};
use super::path::PoolsetDir;
use super::pmem::{self, FileKind};

/// Largest pool set file read (a pool set file is a few lines of text).
pub const MAX_POOLSET_FILE: u64 = 1 << 20;

/// Environment-dependent settings of pool operations.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// `PMEM_IS_PMEM_FORCE`: `Some(true)` makes every part pmem,
    /// `Some(false)` every part but a Device DAX not pmem.
    pub pmem_force: Option<bool>,
    /// Where sysfs is mounted (`/sys`).
    pub sysfs: PathBuf,
    /// The cache flush instruction ([`FlushInstr::from_env`]).
    pub flush: FlushInstr,
}

impl PoolOptions {
    /// The settings of this process: `PMEM_IS_PMEM_FORCE`,
    /// `PMEM_NO_CLWB` / `PMEM_NO_CLFLUSHOPT`, `/sys`.
    pub fn from_env() -> PoolOptions {
        PoolOptions {
            pmem_force: pmem::force_from_env(),
            sysfs: PathBuf::from(pmem::SYSFS),
            flush: FlushInstr::from_env(),
        }
    }
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self::from_env()
    }
}

/// How [`remove`] treats failures and the pool set file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Ignore errors (rpmemd's `--force`): remove whatever can be removed.
    pub force: bool,
    /// Also remove the pool set file itself.
    pub remove_poolset_file: bool,
}

/// One part as mapped into the pool.
#[derive(Debug)]
struct MappedPart {
    file: PartFile,
    slot: Slot,
    size: u64,
    map_sync: bool,
    pmem: bool,
}

/// An open pool: the contiguous mapping of all its parts, the part files
/// with their exclusive locks, and its attributes. Dropping it (or
/// [`Pool::close`]) unmaps the pool and releases the locks.
#[derive(Debug)]
pub struct Pool {
    // Field order is drop order: unmap before the files (and locks) go.
    map: Mapping,
    parts: Vec<MappedPart>,
    name: String,
    set_path: PathBuf,
    options: Options,
    nhdrs: usize,
    attr: PoolAttr,
    is_pmem: bool,
    cache_persistent: bool,
    flush: FlushInstr,
    sysfs: PathBuf,
    intent: IntentFile,
    recovery: Option<Recovery>,
}

/// Reads the pool set file `name` from `dir`.
fn read_set(dir: &PoolsetDir, name: &str) -> Result<(PathBuf, Vec<u8>), PoolError> {
    let set_path = dir.display(name);
    let file = dir.open_file(name)?;
    let meta = file
        .metadata()
        .map_err(|e| PoolError::io("fstat", &set_path, e))?;
    if !meta.is_file() {
        return Err(PoolError::Layout {
            path: set_path,
            reason: "the pool set file is not a regular file",
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_POOLSET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PoolError::io("read", &set_path, e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_POOLSET_FILE {
        return Err(PoolError::Layout {
            path: set_path,
            reason: "the pool set file is larger than 1 MiB",
        });
    }
    Ok((set_path, bytes))
}

fn parse<'a>(set_path: &Path, bytes: &'a [u8]) -> Result<PoolSet<'a>, PoolError> {
    PoolSet::parse(bytes).map_err(|source| PoolError::Parse {
        path: set_path.to_path_buf(),
        source,
    })
}

/// Size checks shared by create and open: the pool (`RPMEM_MIN_POOL`)
/// first, then every part (`RPMEM_MIN_PART`), as PMDK orders them.
fn check_sizes(plan: &Plan) -> Result<(Vec<Slot>, u64), PoolError> {
    let (slots, len) = plan.layout().ok_or_else(|| PoolError::Layout {
        path: plan.set_path.clone(),
        reason: "the parts do not fit their headers or their sizes overflow",
    })?;
    if len < MIN_POOL {
        return Err(PoolError::PoolTooSmall {
            path: plan.set_path.clone(),
            size: len,
            min: MIN_POOL,
        });
    }
    for (i, p) in plan.parts.iter().enumerate() {
        if p.size < MIN_PART {
            return Err(PoolError::PartTooSmall {
                part: i,
                path: p.path.clone(),
                size: p.size,
                min: MIN_PART,
            });
        }
    }
    Ok((slots, len))
}

/// Reserves the pool's address range and maps every part into it.
fn map_parts(
    files: &[PartFile],
    slots: &[Slot],
    len: u64,
    plan: &Plan,
) -> Result<(Mapping, Vec<bool>), PoolError> {
    let align = plan
        .parts
        .iter()
        .map(PartPlan::align)
        .max()
        .unwrap_or(parts::HDR_SIZE);
    let too_big = |part| PoolError::Map {
        part,
        path: plan.set_path.clone(),
        source: std::io::Error::from_raw_os_error(libc::ENOMEM),
    };
    let len = usize::try_from(len).map_err(|_| too_big(usize::MAX))?;
    let align = usize::try_from(align).map_err(|_| too_big(usize::MAX))?;
    let mut map = Mapping::reserve(len, align).map_err(|source| PoolError::Map {
        part: usize::MAX,
        path: plan.set_path.clone(),
        source,
    })?;
    let mut syncs = Vec::with_capacity(files.len());
    for (f, s) in files.iter().zip(slots) {
        let at = usize::try_from(s.pool_off).map_err(|_| too_big(f.index))?;
        let n = usize::try_from(s.len).map_err(|_| too_big(f.index))?;
        let sync = map
            .map_fixed(at, f.file.as_fd(), s.file_off, n)
            .map_err(|source| PoolError::Map {
                part: f.index,
                path: f.path.clone(),
                source,
            })?;
        syncs.push(sync);
    }
    Ok((map, syncs))
}

/// Undoes a failed create: removes the part files this session created,
/// and zeroes the header page of the existing ones it kept (their first
/// page was verified zero before anything was written, so this restores
/// them).
fn discard(files: Vec<PartFile>, opts: &PoolOptions) {
    for f in files {
        if f.created {
            let path = f.path.clone();
            drop(f);
            let _ = fs::remove_file(&path);
        } else {
            let zero = [0u8; rpmem_core::pool_hdr::POOL_HDR_SIZE];
            let _ = header::write(&f, &zero, opts.flush, &opts.sysfs);
        }
    }
}

impl Pool {
    /// Creates the pool described by the pool set file `name` with the
    /// client's attributes (`None` for a pool set with `OPTION NOHDRS`;
    /// PMDK's rpmemd passes `NULL` when the client's attributes are all
    /// zero). Settings come from the environment ([`PoolOptions::from_env`]).
    pub fn create(
        dir: &PoolsetDir,
        name: &str,
        attr: Option<&PoolAttr>,
    ) -> Result<Pool, PoolError> {
        Self::create_with(dir, name, attr, &PoolOptions::from_env())
    }

    /// [`Pool::create`] with explicit settings.
    ///
    /// Checks, in PMDK's order: the name; the pool set file (parse, one
    /// local replica, parts' types and sizes); attributes against
    /// `NOHDRS` and `SINGLEHDR`; pool and part sizes. Then opens or creates
    /// every part file (mode 0600, locked, allocated), refuses parts whose
    /// first page holds data, maps the parts contiguously and writes every
    /// part header. On any failure, the part files created so far are
    /// removed again.
    pub fn create_with(
        dir: &PoolsetDir,
        name: &str,
        attr: Option<&PoolAttr>,
        opts: &PoolOptions,
    ) -> Result<Pool, PoolError> {
        let (set_path, bytes) = read_set(dir, name)?;
        let set = parse(&set_path, &bytes)?;
        let plan = parts::plan(&set_path, &set, &opts.sysfs, Purpose::Create)?;
        let options = plan.options;
        match (attr, options.no_hdrs) {
            (None, false) => {
                return Err(PoolError::Attributes {
                    path: set_path,
                    reason: "the pool set has headers, but the client gave no pool attributes",
                })
            }
            (Some(_), true) => {
                return Err(PoolError::Attributes {
                    path: set_path,
                    reason: "pool attributes are not supported for pool sets without headers (OPTION NOHDRS)",
                })
            }
            _ => {}
        }
        if let Some(a) = attr {
            if options.single_hdr != (a.incompat_features & POOL_FEAT_SINGLEHDR != 0) {
                return Err(PoolError::SingleHdrMismatch {
                    path: set_path,
                    options_single_hdr: options.single_hdr,
                    incompat: a.incompat_features,
                });
            }
        }
        let (slots, len) = check_sizes(&plan)?;
        let intent = dir.intent_file(name)?;

        let mut files: Vec<PartFile> = Vec::with_capacity(plan.parts.len());
        match Self::create_parts(&plan, &slots, len, attr, opts, &intent, &mut files) {
            Ok((map, syncs, attr)) => Ok(Self::assemble(
                name, plan, map, files, slots, syncs, attr, opts, intent, None,
            )),
            Err(e) => {
                discard(files, opts);
                Err(e)
            }
        }
    }

    /// The fallible middle of create: files, mapping, headers.
    #[allow(clippy::too_many_arguments)]
    fn create_parts(
        plan: &Plan,
        slots: &[Slot],
        len: u64,
        attr: Option<&PoolAttr>,
        opts: &PoolOptions,
        intent: &IntentFile,
        files: &mut Vec<PartFile>,
    ) -> Result<(Mapping, Vec<bool>, PoolAttr), PoolError> {
        for (i, p) in plan.parts.iter().enumerate() {
            if p.exists {
                // Closed again (not removed) if it turns out to hold data.
                let f = parts::open_existing(i, p, &opts.sysfs)?;
                if f.devdax.is_none() {
                    parts::allocate(&f.file, &f.path, p.size)?;
                }
                if let Some((offset, value)) = header::first_nonzero(&f)? {
                    return Err(PoolError::PartExists {
                        part: i,
                        path: p.path.clone(),
                        offset,
                        value,
                    });
                }
                files.push(f);
            } else {
                files.push(parts::create_new(i, p, &opts.sysfs)?);
            }
        }
        let (map, syncs) = map_parts(files, slots, len, plan)?;
        // Every part is new or was zero: a SET_ATTR intent record under this
        // name belongs to a pool that is gone, and must not be applied to
        // this one.
        if intent.remove()? {
            log::warn!(
                "removed the SET_ATTR intent record {} of a former pool of this name",
                crate::logging::escape(&intent.path().to_string_lossy())
            );
        }
        let attr = match attr {
            None => PoolAttr::ZERO,
            Some(a) => {
                let fresh =
                    |what| header::fresh_uuid().map_err(|e| PoolError::io(what, "/dev/urandom", e));
                let eff = attr_for_create(a, fresh("read")?, fresh("read")?);
                let nhdrs = plan.nhdrs();
                let mut uuids: Vec<Uuid> = Vec::with_capacity(nhdrs);
                uuids.push(eff.uuid);
                for _ in 1..nhdrs {
                    uuids.push(fresh("read")?);
                }
                let mut first = None;
                for (i, f) in files.iter().enumerate().take(nhdrs) {
                    let links = PartLinks::ring(&uuids, i).unwrap_or(PartLinks::single(eff.uuid));
                    let meta = f
                        .file
                        .metadata()
                        .map_err(|e| PoolError::io("fstat", &f.path, e))?;
                    let crtime = u64::try_from(meta.ctime()).unwrap_or(0);
                    let hdr = from_attr(&eff, links, crtime);
                    header::write(f, &hdr.to_bytes(), opts.flush, &opts.sysfs)?;
                    if first.is_none() {
                        first = Some(hdr);
                    }
                }
                first.map_or(eff, |h| to_attr(&h))
            }
        };
        Ok((map, syncs, attr))
    }

    /// Opens the existing pool described by the pool set file `name`.
    /// Settings come from the environment ([`PoolOptions::from_env`]).
    pub fn open(dir: &PoolsetDir, name: &str) -> Result<Pool, PoolError> {
        Self::open_with(dir, name, &PoolOptions::from_env())
    }

    /// [`Pool::open`] with explicit settings.
    ///
    /// Opens and locks every part, checks the sizes, validates every part
    /// header as PMDK's `util_header_check_remote` does (not zero, valid
    /// checksum, same signature / major / features / pool set uuid /
    /// replica uuids / user flags as part 0, part uuids linked in a ring),
    /// allocates the blocks of every part file (`posix_fallocate`: holes
    /// become an ENOSPC error here rather than SIGBUS at a store), maps the
    /// parts and reads the attributes from part 0's header (all zero for
    /// `NOHDRS`).
    pub fn open_with(dir: &PoolsetDir, name: &str, opts: &PoolOptions) -> Result<Pool, PoolError> {
        let (set_path, bytes) = read_set(dir, name)?;
        let set = parse(&set_path, &bytes)?;
        let plan = parts::plan(&set_path, &set, &opts.sysfs, Purpose::Open)?;
        let (slots, len) = check_sizes(&plan)?;
        let mut files: Vec<PartFile> = Vec::with_capacity(plan.parts.len());
        for (i, p) in plan.parts.iter().enumerate() {
            files.push(parts::open_existing(i, p, &opts.sysfs)?);
        }
        let nhdrs = plan.nhdrs();
        // Every part is locked: complete (or discard) an interrupted
        // SET_ATTR before the headers are looked at.
        let intent = dir.intent_file(name)?;
        let hdr_files = files.get(..nhdrs).unwrap_or(&files[..]);
        let recovery = intent.recover(hdr_files, opts.flush, &opts.sysfs)?;
        let mut hdrs: Vec<PoolHdrRepr> = Vec::with_capacity(nhdrs);
        for f in files.iter().take(nhdrs) {
            let bytes = header::read(f)?;
            let hdr = PoolHdrRepr::parse_bytes(&bytes).map_err(|source| PoolError::Header {
                part: f.index,
                path: f.path.clone(),
                source,
            })?;
            hdrs.push(hdr);
        }
        let attr = if hdrs.is_empty() {
            PoolAttr::ZERO
        } else {
            check_parts(&hdrs).map_err(|source| PoolError::Headers {
                path: set_path.clone(),
                source,
            })?;
            hdrs.first().map_or(PoolAttr::ZERO, to_attr)
        };
        // A part file may have holes (restored with `cp --sparse`, or
        // punched): a store into a hole needs a block, and on a full file
        // system the mapping answers it with SIGBUS. Allocating them now
        // turns that into an ENOSPC error naming the part. Blocks already
        // allocated cost nothing, and no byte changes.
        for (f, p) in files.iter().zip(&plan.parts) {
            if f.devdax.is_none() {
                parts::allocate(&f.file, &f.path, p.size)?;
            }
        }
        let (map, syncs) = map_parts(&files, &slots, len, &plan)?;
        Ok(Self::assemble(
            name, plan, map, files, slots, syncs, attr, opts, intent, recovery,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        name: &str,
        plan: Plan,
        map: Mapping,
        files: Vec<PartFile>,
        slots: Vec<Slot>,
        syncs: Vec<bool>,
        attr: PoolAttr,
        opts: &PoolOptions,
        intent: IntentFile,
        recovery: Option<Recovery>,
    ) -> Pool {
        let nhdrs = plan.nhdrs();
        let parts: Vec<MappedPart> = files
            .into_iter()
            .zip(slots)
            .zip(syncs)
            .zip(plan.parts.iter().map(|p| p.size))
            .map(|(((file, slot), map_sync), size)| {
                let pmem = pmem::part_is_pmem(file.devdax.is_some(), map_sync, opts.pmem_force);
                MappedPart {
                    file,
                    slot,
                    size,
                    map_sync,
                    pmem,
                }
            })
            .collect();
        let is_pmem = !parts.is_empty() && parts.iter().all(|p| p.pmem);
        let cache_persistent = is_pmem
            && parts.iter().all(|p| {
                p.file
                    .region
                    .is_some_and(|r| pmem::region_cache_persistent(&opts.sysfs, r))
            });
        Pool {
            map,
            parts,
            name: name.to_owned(),
            set_path: plan.set_path,
            options: plan.options,
            nhdrs,
            attr,
            is_pmem,
            cache_persistent,
            flush: opts.flush,
            sysfs: opts.sysfs.clone(),
            intent,
            recovery,
        }
    }

    /// What opening the pool did with a SET_ATTR intent record it found
    /// (`None`: there was none).
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Where this pool's SET_ATTR intent record is written.
    pub fn intent_record_path(&self) -> &Path {
        self.intent.path()
    }

    /// The pool set name the pool was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the pool set file.
    pub fn poolset_path(&self) -> &Path {
        &self.set_path
    }

    /// The pool set file's options.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The pool attributes (all zero for a pool without headers).
    pub fn attr(&self) -> PoolAttr {
        self.attr
    }

    /// Size of the pool in bytes (`set->poolsize`; starts with part 0's
    /// header when the pool has headers).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Never true: a pool is at least `RPMEM_MIN_POOL` bytes.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// [`Pool::len`] as `u64`.
    pub fn size(&self) -> u64 {
        u64::try_from(self.map.len()).unwrap_or(u64::MAX)
    }

    /// Number of parts.
    pub fn nparts(&self) -> usize {
        self.parts.len()
    }

    /// The part files' paths, in pool order.
    pub fn part_paths(&self) -> impl Iterator<Item = &Path> {
        self.parts.iter().map(|p| p.file.path.as_path())
    }

    /// Offset in the pool and length of part `index`'s mapping.
    pub fn part_range(&self, index: usize) -> Option<(u64, u64)> {
        self.parts.get(index).map(|p| (p.slot.pool_off, p.slot.len))
    }

    /// Whether part `index` was mapped with `MAP_SYNC`.
    pub fn part_map_sync(&self, index: usize) -> Option<bool> {
        self.parts.get(index).map(|p| p.map_sync)
    }

    /// The whole pool.
    pub fn as_slice(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Start of the pool, for transports that write into it.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// True when every part is persistent memory (Device DAX, `MAP_SYNC`
    /// mapping, or `PMEM_IS_PMEM_FORCE=1`).
    pub fn is_pmem(&self) -> bool {
        self.is_pmem
    }

    /// True when the pool is pmem and every part's NVDIMM region reports
    /// the CPU caches in its persistence domain (eADR,
    /// `persistence_domain` = `cpu_cache`).
    pub fn cache_persistent(&self) -> bool {
        self.cache_persistent
    }

    /// The flush instruction [`FlushOps::flush_line`] uses.
    pub fn flush_instr(&self) -> FlushInstr {
        self.flush
    }

    /// `rpmemd_check_pool`: the client may use at most the pool's size
    /// (`RPMEM_ERR_BADSIZE` otherwise).
    pub fn check_requested_size(&self, requested: u64) -> Result<(), PoolError> {
        if requested > self.size() {
            return Err(PoolError::RequestTooBig {
                pool_size: self.size(),
                requested,
            });
        }
        Ok(())
    }

    /// Rewrites every part header with new attributes (PMDK's
    /// `util_replica_set_attr`: all attribute fields, part 0's uuid and the
    /// ring links to it; `crtime` and shutdown state kept), each header made
    /// durable before the next. `None` is only valid for a pool without
    /// headers (and does nothing); attributes for such a pool are refused.
    pub fn set_attr(&mut self, attr: Option<&PoolAttr>) -> Result<(), PoolError> {
        self.set_attr_until(attr, None)
    }

    /// For crash tests only: [`Pool::set_attr`] that stops at `crash` as if
    /// the process died there (the caller then drops the pool, which
    /// unmaps it and releases its locks, as the kernel does for a dead
    /// process). Not reachable from the protocol, the command line or the
    /// environment.
    #[doc(hidden)]
    pub fn set_attr_crash_test(
        &mut self,
        attr: &PoolAttr,
        crash: SetAttrCrash,
    ) -> Result<(), PoolError> {
        self.set_attr_until(Some(attr), Some(crash))
    }

    fn set_attr_until(
        &mut self,
        attr: Option<&PoolAttr>,
        crash: Option<SetAttrCrash>,
    ) -> Result<(), PoolError> {
        let n = self.nhdrs;
        let attr =
            match (attr, n) {
                (None, 0) => return Ok(()),
                (Some(_), 0) => return Err(PoolError::Attributes {
                    path: self.set_path.clone(),
                    reason:
                        "cannot set pool attributes for a pool set without headers (OPTION NOHDRS)",
                }),
                (None, _) => {
                    return Err(PoolError::Attributes {
                        path: self.set_path.clone(),
                        reason: "no pool attributes given for a pool set with headers",
                    })
                }
                (Some(a), _) => a,
            };
        // 1. Every part's new header, computed before anything is written.
        let mut olds = Vec::with_capacity(n);
        let mut entries = Vec::with_capacity(n);
        for (i, p) in self.parts.iter().enumerate().take(n) {
            let f = &p.file;
            let bytes = header::read(f)?;
            let mut hdr = PoolHdrRepr::parse_bytes(&bytes).map_err(|source| PoolError::Header {
                part: i,
                path: f.path.clone(),
                source,
            })?;
            hdr.apply_set_attr(attr, i, n);
            entries.push(Entry {
                path: f.path.as_os_str().as_bytes().to_vec(),
                old_fingerprint: fnv1a64(&bytes),
                new_header: Box::new(hdr.to_bytes()),
            });
            olds.push(bytes);
        }
        let new_attr = entries
            .first()
            .and_then(|e| PoolHdrRepr::parse_bytes(&e.new_header[..]).ok())
            .map(|h| to_attr(&h));
        let record = Record { entries }.encode();

        // 2. The intent record, durable (file and directory) before any
        // header changes.
        match crash {
            Some(SetAttrCrash::BeforeRecord) => return Ok(()),
            Some(SetAttrCrash::TornRecord(k)) => {
                return self.intent.write(record.get(..k).unwrap_or(&record), false);
            }
            Some(SetAttrCrash::HoledRecord) => {
                // 512 bytes from the start of part 0's new header (which
                // holds the signature, the features and the uuids).
                let mut holed = record.clone();
                let at = 24
                    + 4
                    + self
                        .parts
                        .first()
                        .map_or(0, |p| p.file.path.as_os_str().len())
                    + 8;
                let end = (at + 512).min(holed.len());
                if let Some(hole) = holed.get_mut(at..end) {
                    hole.fill(0);
                }
                return self.intent.write(&holed, false);
            }
            _ => {}
        }
        self.intent.write(&record, true)?;
        if crash == Some(SetAttrCrash::RecordDurable) {
            return Ok(());
        }
        let Ok(Record { entries }) = Record::decode(&record) else {
            return Err(PoolError::Intent {
                path: self.intent.path().to_path_buf(),
                reason: "the record just written does not decode".to_owned(),
            });
        };

        // 3. Each header, durable before the next.
        for (i, (p, e)) in self.parts.iter().zip(&entries).enumerate() {
            let f = &p.file;
            if crash == Some(SetAttrCrash::TornHeader(i)) {
                let mut torn = olds.get(i).copied().unwrap_or([0; POOL_HDR_SIZE]);
                for (t, n) in torn
                    .iter_mut()
                    .zip(e.new_header.iter())
                    .take(POOL_HDR_SIZE / 2)
                {
                    *t = *n;
                }
                return header::write(f, &torn, self.flush, &self.sysfs);
            }
            if let Err(err) = header::write(f, &e.new_header, self.flush, &self.sysfs) {
                log::error!(
                    "SET_ATTR stopped at part {i} of {n}: {err}; the intent record {} stays, \
                     and opening the pool again completes the rewrite",
                    crate::logging::escape(&self.intent.path().to_string_lossy())
                );
                return Err(err);
            }
            if crash == Some(SetAttrCrash::AfterHeader(i)) {
                return Ok(());
            }
        }
        if let Some(a) = new_attr {
            self.attr = a;
        }

        // 4. The record goes. If it cannot, the new headers stand anyway:
        // opening the pool finds them all new and removes the record then.
        if let Err(e) = self.intent.remove() {
            log::warn!("SET_ATTR is complete, but its intent record stays: {e}");
        }
        Ok(())
    }

    /// Unmaps the pool and releases the locks.
    pub fn close(self) -> Result<(), PoolError> {
        drop(self);
        Ok(())
    }

    /// Unmaps the pool and removes every part (a Device DAX part gets its
    /// first 2 MiB zeroed instead), as PMDK's rpmemd does on a close with
    /// `RPMEM_CLOSE_FLAGS_REMOVE`. The pool set file stays. The locks are
    /// held until the parts are gone.
    pub fn close_and_remove(self) -> Result<(), PoolError> {
        let Pool {
            map,
            parts,
            name,
            flush,
            sysfs,
            intent,
            ..
        } = self;
        drop(map);
        let mut failures = Vec::new();
        // A record left by a SET_ATTR whose removal failed belongs to the
        // pool that goes now.
        if let Err(e) = intent.remove() {
            failures.push(e);
        }
        for p in &parts {
            let r = match p.file.devdax {
                Some(_) => header::zero_devdax(&p.file, p.size, flush, &sysfs),
                None => fs::remove_file(&p.file.path)
                    .map_err(|e| PoolError::io("unlink", &p.file.path, e)),
            };
            if let Err(e) = r {
                failures.push(e);
            }
        }
        drop(parts);
        failure_summary(&name, failures)
    }

    /// Pointer to the byte at pool offset `offset`, `None` past the end.
    fn ptr_at(&self, offset: u64) -> Option<*const u8> {
        let off = usize::try_from(offset).ok().filter(|&o| o < self.len())?;
        // `wrapping_add` computes the address without asserting anything;
        // `off < len` keeps it inside the mapping.
        Some(self.map.as_ptr().cast_const().wrapping_add(off))
    }

    /// The NVDIMM regions whose `deep_flush` a deep persist must trigger
    /// (those under Device DAX parts; see [`FlushOps::deep_flush`]), for a
    /// data path that makes pool bytes durable without borrowing the pool.
    pub fn deep_flush_regions(&self) -> Vec<u32> {
        let mut regions: Vec<u32> = self
            .parts
            .iter()
            .filter(|p| p.file.devdax.is_some())
            .filter_map(|p| p.file.region)
            .collect();
        regions.sort_unstable();
        regions.dedup();
        regions
    }

    /// Where sysfs is mounted for this pool (for [`super::region_deep_flush`]).
    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }
}

fn failure_summary(name: &str, mut failures: Vec<PoolError>) -> Result<(), PoolError> {
    if failures.is_empty() {
        return Ok(());
    }
    let more = failures.len() - 1;
    let first = failures.swap_remove(0);
    if more == 0 {
        return Err(first);
    }
    Err(PoolError::Remove {
        name: name.to_owned(),
        first: Box::new(first),
        more,
    })
}

/// What [`remove`] removes: a part file, or the start of a Device DAX.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    devdax: Option<parts::DevDax>,
    size: u64,
}

/// Every local part of every replica of `set` (PMDK's
/// `util_poolset_foreach_part`; a remote replica is an error).
fn removal_targets(
    set_path: &Path,
    set: &PoolSet<'_>,
    sysfs: &Path,
) -> Result<Vec<Target>, PoolError> {
    let mut out = Vec::new();
    for r in set.replicas() {
        if r.is_remote() {
            return Err(PoolError::RemoteReplica {
                path: set_path.to_path_buf(),
                line: r.line(),
            });
        }
        for (i, part) in r.parts().enumerate() {
            let path = PathBuf::from(part.path());
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                // Missing: opening it will report it.
                Err(_) => {
                    out.push(Target {
                        path,
                        devdax: None,
                        size: 0,
                    });
                    continue;
                }
            };
            match pmem::file_kind(sysfs, &meta) {
                Ok(Some(FileKind::Directory)) => {
                    let rd = fs::read_dir(&path)
                        .map_err(|e| PoolError::io("read directory", &path, e))?;
                    for entry in rd {
                        let entry = entry.map_err(|e| PoolError::io("read directory", &path, e))?;
                        let is_part = entry
                            .file_name()
                            .to_str()
                            .and_then(parts::part_index)
                            .is_some();
                        if is_part && entry.file_type().is_ok_and(|t| t.is_file()) {
                            out.push(Target {
                                path: entry.path(),
                                devdax: None,
                                size: 0,
                            });
                        }
                    }
                }
                Ok(Some(FileKind::DevDax { rdev })) => {
                    let size = pmem::devdax_size(sysfs, rdev)
                        .map_err(|e| PoolError::io("read Device DAX size", &path, e))?;
                    let align = pmem::devdax_alignment(sysfs, rdev)
                        .map_err(|e| PoolError::io("read Device DAX alignment", &path, e))?;
                    out.push(Target {
                        path,
                        devdax: Some(parts::DevDax { rdev, align }),
                        size,
                    });
                }
                Ok(Some(FileKind::Regular)) => out.push(Target {
                    path,
                    devdax: None,
                    size: meta.len(),
                }),
                Ok(None) => return Err(PoolError::UnsupportedFileType { part: i, path }),
                Err(e) => return Err(PoolError::io("stat (sysfs)", path, e)),
            }
        }
    }
    Ok(out)
}

/// What happened to the pool set file in [`remove_report`].
#[derive(Debug)]
pub enum PoolsetFileFate {
    /// Not asked to remove it (`remove_poolset_file` false).
    Kept,
    /// Removed.
    Removed,
    /// Asked to remove it, but it did not exist (only with `force`).
    Missing,
    /// Kept although asked to remove it, because parts of the pool were left: the pool set
    /// file is what lets the pool be removed again.
    KeptForLeftParts,
    /// Asked to remove it, but unlinking it failed.
    Left(PoolError),
}

/// What [`remove_report`] removed and what it did not, file by file.
#[derive(Debug)]
pub struct RemoveReport {
    /// Parts removed (unlinked, or a Device DAX's first 2 MiB zeroed).
    pub removed: Vec<PathBuf>,
    /// Parts that did not exist (only with `force`; without it a missing part is an error).
    pub missing: Vec<PathBuf>,
    /// Parts that exist and were not removed, each with why (only with `force`, or when an
    /// unlink failed after every part was locked).
    pub left: Vec<(PathBuf, PoolError)>,
    /// The pool set file.
    pub poolset_file: PoolsetFileFate,
    /// With `force`: why the pool set file could not be read or parsed; its parts, if it names
    /// any, are then unknown and were not removed.
    pub unreadable: Option<PoolError>,
}

impl RemoveReport {
    /// True when something that was to be removed is still there: a part, or the pool set
    /// file when it was to be removed too.
    pub fn left_something(&self) -> bool {
        !self.left.is_empty()
            || matches!(
                self.poolset_file,
                PoolsetFileFate::Left(_) | PoolsetFileFate::KeptForLeftParts
            )
    }

    /// One line: how many parts were removed, did not exist, were left; the pool set file.
    pub fn summary(&self) -> String {
        let mut items = vec![format!("{} part(s) removed", self.removed.len())];
        if !self.missing.is_empty() {
            items.push(format!("{} part(s) did not exist", self.missing.len()));
        }
        if !self.left.is_empty() {
            items.push(format!("{} part(s) NOT removed", self.left.len()));
        }
        items.push(
            match &self.poolset_file {
                PoolsetFileFate::Kept => "pool set file kept",
                PoolsetFileFate::Removed => "pool set file removed",
                PoolsetFileFate::Missing => "pool set file did not exist",
                PoolsetFileFate::KeptForLeftParts => {
                    "pool set file NOT removed (kept because parts were left)"
                }
                PoolsetFileFate::Left(_) => "pool set file NOT removed",
            }
            .to_owned(),
        );
        if self.unreadable.is_some() {
            items.push("the pool set file could not be read, so its parts are unknown".to_owned());
        }
        items.join(", ")
    }

    /// One line per file and per problem, for logs and stderr.
    pub fn details(&self, set_path: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for (path, why) in &self.left {
            lines.push(format!("not removed: {}: {why}", path.display()));
        }
        match &self.poolset_file {
            PoolsetFileFate::Left(why) => lines.push(format!(
                "not removed: pool set file {}: {why}",
                set_path.display()
            )),
            PoolsetFileFate::KeptForLeftParts => lines.push(format!(
                "not removed: pool set file {}: kept because parts were left, so that the pool \
                 can be removed again",
                set_path.display()
            )),
            PoolsetFileFate::Removed => {
                lines.push(format!("removed: pool set file {}", set_path.display()));
            }
            PoolsetFileFate::Missing => lines.push(format!(
                "did not exist: pool set file {}",
                set_path.display()
            )),
            PoolsetFileFate::Kept => {}
        }
        if let Some(why) = &self.unreadable {
            lines.push(format!(
                "unknown parts: {why}; any part files it names were not removed"
            ));
        }
        for path in &self.removed {
            lines.push(format!("removed: {}", path.display()));
        }
        for path in &self.missing {
            lines.push(format!("did not exist: {}", path.display()));
        }
        lines
    }
}

/// Removes the pool described by the pool set file `name` (rpmemd's
/// `--remove`, PMDK's `rpmemd_db_pool_remove`): every part file is locked
/// (a pool in use is `Busy`) and unlinked; a Device DAX part gets its
/// first 2 MiB zeroed instead. With `remove_poolset_file` the pool set file
/// goes too.
///
/// Without `force`, nothing is removed unless every part can be locked
/// first, and the pool set file is only removed when every part was. With
/// `force`, errors do not stop the removal: whatever can be removed is, and
/// missing files are fine; an invalid name is still an error. Either way,
/// anything that was to be removed and is still there (a part in use, a
/// failed unlink, the pool set file) makes this an error: the first
/// failure (see [`remove_report`] for the whole account).
pub fn remove(dir: &PoolsetDir, name: &str, opts: RemoveOptions) -> Result<(), PoolError> {
    remove_with(dir, name, opts, &PoolOptions::from_env())
}

/// [`remove`] with explicit settings.
pub fn remove_with(
    dir: &PoolsetDir,
    name: &str,
    opts: RemoveOptions,
    popts: &PoolOptions,
) -> Result<(), PoolError> {
    let report = remove_report(dir, name, opts, popts)?;
    let mut failures: Vec<PoolError> = report.left.into_iter().map(|(_, e)| e).collect();
    if let PoolsetFileFate::Left(e) = report.poolset_file {
        failures.push(e);
    }
    failure_summary(name, failures)
}

/// Removes the pool as [`remove`] does and tells what was and was not removed.
///
/// `Err` means nothing was removed: an invalid name, or, without `force`, a
/// pool set file that cannot be read or a part that cannot be opened or
/// locked. `Ok` may still have left files behind
/// ([`RemoveReport::left_something`]): with `force`, parts that could not be
/// locked (in use) or opened; with or without it, failed unlinks. The pool set
/// file is kept whenever a part was left.
pub fn remove_report(
    dir: &PoolsetDir,
    name: &str,
    opts: RemoveOptions,
    popts: &PoolOptions,
) -> Result<RemoveReport, PoolError> {
    super::path::check_name(name)?;
    let mut report = RemoveReport {
        removed: Vec::new(),
        missing: Vec::new(),
        left: Vec::new(),
        poolset_file: PoolsetFileFate::Kept,
        unreadable: None,
    };
    let mut set_missing = false;
    let targets = match read_set(dir, name) {
        Ok((set_path, bytes)) => {
            parse(&set_path, &bytes).and_then(|set| removal_targets(&set_path, &set, &popts.sysfs))
        }
        Err(e) => {
            set_missing = e.status() == super::error::status::NOEXIST;
            Err(e)
        }
    };
    let targets = match targets {
        Ok(t) => t,
        Err(e) if !opts.force => return Err(e),
        Err(e @ PoolError::BadName { .. }) => return Err(e),
        Err(e) => {
            if !set_missing {
                report.unreadable = Some(e);
            }
            Vec::new()
        }
    };

    // Phase 1: open and lock every part.
    let mut locked: Vec<(PartFile, u64)> = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let opened = fs::OpenOptions::new()
            .read(true)
            .write(t.devdax.is_some())
            .open(&t.path);
        let opened = match opened {
            Err(e) if opts.force && e.kind() == std::io::ErrorKind::NotFound => {
                report.missing.push(t.path);
                continue;
            }
            other => other
                .map_err(|e| PoolError::io("open", &t.path, e))
                .and_then(|file| parts::lock(&file, i, &t.path).map(|()| file)),
        };
        match opened {
            Ok(file) => locked.push((
                PartFile {
                    index: i,
                    path: t.path,
                    file,
                    devdax: t.devdax,
                    created: false,
                    region: None,
                },
                t.size,
            )),
            Err(e) if !opts.force => return Err(e),
            Err(e) => report.left.push((t.path, e)),
        }
    }

    // Phase 2: remove them.
    for (f, size) in &locked {
        let r = match f.devdax {
            Some(_) => header::zero_devdax(f, *size, popts.flush, &popts.sysfs),
            None => fs::remove_file(&f.path).map_err(|e| PoolError::io("unlink", &f.path, e)),
        };
        match r {
            Ok(()) => report.removed.push(f.path.clone()),
            Err(e) => report.left.push((f.path.clone(), e)),
        }
    }
    // A SET_ATTR intent record of the removed pool goes with it (it would
    // otherwise outlive the pool set file), while the parts are still
    // locked; a failure only warns, the pool itself is gone. Not when parts
    // were left, or are unknown (an unreadable pool set file with --force):
    // the record may still be needed to open them.
    if report.left.is_empty() && report.unreadable.is_none() {
        match dir.intent_file(name).and_then(|i| i.remove()) {
            Ok(true) => log::info!(
                "removed the SET_ATTR intent record of '{}'",
                crate::logging::escape(name)
            ),
            Ok(false) => {}
            Err(e) => log::warn!(
                "removing the SET_ATTR intent record of '{}' failed: {e}",
                crate::logging::escape(name)
            ),
        }
    }

    drop(locked);

    if opts.remove_poolset_file {
        report.poolset_file = if !report.left.is_empty() {
            PoolsetFileFate::KeptForLeftParts
        } else {
            match dir.unlink(name) {
                Ok(()) => PoolsetFileFate::Removed,
                Err(e) if opts.force && e.status() == super::error::status::NOEXIST => {
                    PoolsetFileFate::Missing
                }
                Err(e) => PoolsetFileFate::Left(e),
            }
        };
    }
    Ok(report)
}

impl FlushOps for &Pool {
    fn flush_line(&mut self, offset: u64) {
        // A raw pointer, not a `&u8`: lane threads may be writing the line.
        if let Some(p) = self.ptr_at(offset) {
            // SAFETY: `ptr_at` only returns pointers inside the mapping, which
            // `self` keeps mapped for the duration of the call.
            unsafe { self.flush.flush_line_raw(p) };
        }
    }

    fn fence(&mut self) {
        self.flush.fence();
    }

    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        let end = offset.saturating_add(len);
        for p in &self.parts {
            let start = p.slot.pool_off.max(offset);
            let stop = p.slot.pool_off.saturating_add(p.slot.len).min(end);
            if start >= stop {
                continue;
            }
            let (Ok(s), Ok(n)) = (usize::try_from(start), usize::try_from(stop - start)) else {
                return Err(FlushError {
                    errno: libc::EOVERFLOW,
                });
            };
            self.map.msync(s, n).map_err(|e| FlushError {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        }
        Ok(())
    }

    fn deep_flush(&mut self) -> Result<(), FlushError> {
        for p in &self.parts {
            if let (Some(_), Some(r)) = (p.file.devdax, p.file.region) {
                pmem::region_deep_flush(&self.sysfs, r).map_err(|e| FlushError {
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                })?;
            }
        }
        Ok(())
    }
}

impl FlushOps for Pool {
    fn flush_line(&mut self, offset: u64) {
        let mut shared: &Pool = self;
        shared.flush_line(offset);
    }

    fn fence(&mut self) {
        let mut shared: &Pool = self;
        shared.fence();
    }

    fn msync(&mut self, offset: u64, len: u64) -> Result<(), FlushError> {
        let mut shared: &Pool = self;
        shared.msync(offset, len)
    }

    fn deep_flush(&mut self) -> Result<(), FlushError> {
        let mut shared: &Pool = self;
        shared.deep_flush()
    }
}
