//! From a pool set file to a list of part files: the plan (what each part
//! is, how big, where it sits in the pool), and opening or creating the
//! part files with their locks.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rpmem_core::poolset::{Options, PartSize, PoolSet};

use super::error::PoolError;
use super::pmem::{self, FileKind};

/// `RPMEM_MIN_PART`: the smallest part rpmemd accepts (2 MiB).
pub const MIN_PART: u64 = 2 << 20;
/// `RPMEM_MIN_POOL`: the smallest pool rpmemd accepts (8 KiB).
pub const MIN_POOL: u64 = 8 << 10;
/// Size of a part header.
pub const HDR_SIZE: u64 = 4096;
/// Mode of created part files. PMDK creates them with mode 0 and then
/// `chmod`s them to the daemon's mode (0666 by default: world-writable);
/// here they are created owner-only.
pub const PART_MODE: u32 = 0o600;
/// Extension of the part files in a directory pool set (`PMEM_EXT`).
pub const PMEM_EXT: &str = ".pmem";
/// Most part files one directory pool set may hold.
pub const MAX_DIR_PARTS: usize = 1024;

/// Whether the plan is for creating or opening a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Create a new pool.
    Create,
    /// Open an existing pool.
    Open,
}

/// What one part is, before its file is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartPlan {
    /// Path of the part file (or Device DAX).
    pub path: PathBuf,
    /// Its size in bytes (`AUTO` resolved).
    pub size: u64,
    /// Regular file (existing or to be created) or Device DAX.
    pub devdax: Option<DevDax>,
    /// True when the file exists already.
    pub exists: bool,
}

/// Facts about a Device DAX part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevDax {
    /// Device number.
    pub rdev: u64,
    /// Mapping alignment.
    pub align: u64,
}

impl PartPlan {
    /// Mapping granularity of the part.
    pub fn align(&self) -> u64 {
        self.devdax.map_or(HDR_SIZE, |d| d.align.max(HDR_SIZE))
    }
}

/// The parts of a pool set and how they are laid out.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The pool set file (for messages).
    pub set_path: PathBuf,
    /// Its options.
    pub options: Options,
    /// The parts in pool order.
    pub parts: Vec<PartPlan>,
}

/// Where one part sits in the pool mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Offset in the pool.
    pub pool_off: u64,
    /// Offset in the part file where the mapping starts (0 for part 0, the
    /// header size for later parts with headers, else 0).
    pub file_off: u64,
    /// Bytes mapped.
    pub len: u64,
}

impl Plan {
    /// Number of part headers (`rep->nhdrs`).
    pub fn nhdrs(&self) -> usize {
        let n = u32::try_from(self.parts.len()).unwrap_or(u32::MAX);
        usize::try_from(self.options.headers(n)).unwrap_or(usize::MAX)
    }

    /// The layout of PMDK's `util_replica_map_local`: part 0 is mapped
    /// whole (its header is the start of the pool); every later part is
    /// mapped from just after its header when every part has one, else
    /// whole. Each length is rounded down to the part's alignment. `None`
    /// when a part is too small for its header or the sum overflows.
    pub fn layout(&self) -> Option<(Vec<Slot>, u64)> {
        let skip = if self.options.single_hdr || self.options.no_hdrs {
            0
        } else {
            HDR_SIZE
        };
        let mut slots = Vec::with_capacity(self.parts.len());
        let mut off: u64 = 0;
        for (i, p) in self.parts.iter().enumerate() {
            let file_off = if i == 0 { 0 } else { skip };
            let usable = p.size.checked_sub(file_off)?;
            let len = usable & !(p.align() - 1);
            slots.push(Slot {
                pool_off: off,
                file_off,
                len,
            });
            off = off.checked_add(len)?;
        }
        Some((slots, off))
    }
}

/// Reads the pool set file's part list and decides what each part is
/// (PMDK's `util_poolset_parse` + `util_parse_add_element` +
/// `util_poolset_check_devdax` + `util_poolset_directories_load`).
pub fn plan(
    set_path: &Path,
    set: &PoolSet<'_>,
    sysfs: &Path,
    purpose: Purpose,
) -> Result<Plan, PoolError> {
    // A remote pool set is one local replica: no remote replicas, no
    // further local ones.
    for r in set.replicas() {
        if r.is_remote() {
            return Err(PoolError::RemoteReplica {
                path: set_path.to_path_buf(),
                line: r.line(),
            });
        }
    }
    if set.nreplicas() != 1 {
        return Err(PoolError::Replicas {
            path: set_path.to_path_buf(),
            count: set.nreplicas(),
        });
    }
    let Some(rep) = set.replica(0) else {
        return Err(PoolError::Replicas {
            path: set_path.to_path_buf(),
            count: 0,
        });
    };

    let mut files: Vec<PartPlan> = Vec::new();
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for (i, part) in rep.parts().enumerate() {
        let path = PathBuf::from(part.path());
        let kind = match fs::metadata(&path) {
            Ok(meta) => match pmem::file_kind(sysfs, &meta) {
                Ok(Some(kind)) => Some(kind),
                Ok(None) => return Err(PoolError::UnsupportedFileType { part: i, path }),
                Err(source) => return Err(PoolError::io("stat (sysfs)", path, source)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(PoolError::io("stat", path, source)),
        };
        match kind {
            Some(FileKind::Directory) => {
                let size = match part.size() {
                    PartSize::Fixed(n) => n,
                    PartSize::Auto => return Err(PoolError::AutoSizeNotDevDax { part: i, path }),
                };
                dirs.push((path, size));
            }
            Some(FileKind::DevDax { rdev }) => {
                let actual = pmem::devdax_size(sysfs, rdev)
                    .map_err(|e| PoolError::io("read Device DAX size", &path, e))?;
                if let PartSize::Fixed(n) = part.size() {
                    if n != actual {
                        return Err(PoolError::PartSizeMismatch {
                            part: i,
                            path,
                            expected: n,
                            actual,
                        });
                    }
                }
                let align = pmem::devdax_alignment(sysfs, rdev)
                    .map_err(|e| PoolError::io("read Device DAX alignment", &path, e))?;
                files.push(PartPlan {
                    path,
                    size: actual,
                    devdax: Some(DevDax { rdev, align }),
                    exists: true,
                });
            }
            Some(FileKind::Regular) | None => {
                let size = match part.size() {
                    PartSize::Fixed(n) => n,
                    PartSize::Auto if kind.is_none() => {
                        return Err(PoolError::io(
                            "determine the AUTO size of",
                            path,
                            io::Error::from_raw_os_error(libc::ENOENT),
                        ))
                    }
                    PartSize::Auto => return Err(PoolError::AutoSizeNotDevDax { part: i, path }),
                };
                files.push(PartPlan {
                    path,
                    size,
                    devdax: None,
                    exists: kind.is_some(),
                });
            }
        }
        if !dirs.is_empty() && !files.is_empty() {
            return Err(PoolError::Layout {
                path: set_path.to_path_buf(),
                reason: "cannot mix directories and files in a pool set",
            });
        }
    }

    let options = set.options();
    let directory_based = !dirs.is_empty();
    if directory_based {
        if !options.single_hdr {
            return Err(PoolError::Layout {
                path: set_path.to_path_buf(),
                reason: "directory pool sets need OPTION SINGLEHDR (as in PMDK)",
            });
        }
        files = directory_parts(&dirs, purpose)?;
    }

    let plan = Plan {
        set_path: set_path.to_path_buf(),
        options,
        parts: files,
    };
    check_duplicates(&plan)?;
    check_devdax(&plan)?;
    Ok(plan)
}

/// No file may be two parts: the same path twice, or two paths of one
/// existing file (same device and inode).
fn check_duplicates(plan: &Plan) -> Result<(), PoolError> {
    let ids: Vec<Option<(u64, u64)>> = plan
        .parts
        .iter()
        .map(|p| fs::metadata(&p.path).ok().map(|m| (m.dev(), m.ino())))
        .collect();
    for (second, p) in plan.parts.iter().enumerate() {
        for first in 0..second {
            let same_path = plan.parts.get(first).is_some_and(|q| q.path == p.path);
            let same_file = matches!((ids.get(first), ids.get(second)), (Some(Some(a)), Some(Some(b))) if a == b);
            if same_path || same_file {
                return Err(PoolError::DuplicatePart {
                    first,
                    second,
                    path: p.path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Either all parts are Device DAX or none; several Device DAX parts with a
/// header each need a 4 KiB alignment (`util_poolset_check_devdax`).
fn check_devdax(plan: &Plan) -> Result<(), PoolError> {
    let ndax = plan.parts.iter().filter(|p| p.devdax.is_some()).count();
    if ndax != 0 && ndax != plan.parts.len() {
        return Err(PoolError::Layout {
            path: plan.set_path.clone(),
            reason: "either all the parts must be Device DAX or none",
        });
    }
    let headers_everywhere = !(plan.options.single_hdr || plan.options.no_hdrs);
    if ndax > 1 && headers_everywhere && plan.parts.iter().any(|p| p.align() != HDR_SIZE) {
        return Err(PoolError::Layout {
            path: plan.set_path.clone(),
            reason:
                "several Device DAX parts with an alignment other than 4 KiB need OPTION SINGLEHDR",
        });
    }
    Ok(())
}

/// The index of a directory pool set's part file name `NNNNNN.pmem`.
pub fn part_index(name: &str) -> Option<usize> {
    let digits = name.strip_suffix(PMEM_EXT)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name of part `index` of a directory pool set (`%06u.pmem`).
pub fn part_file_name(index: usize) -> String {
    format!("{index:06}{PMEM_EXT}")
}

/// Lists the part files of the directories of a directory pool set.
///
/// The files found must be numbered `000000.pmem` upwards without gaps or
/// duplicates. With none found, opening fails and creating plans one new
/// part per directory, sized as the directory's line says.
fn directory_parts(dirs: &[(PathBuf, u64)], purpose: Purpose) -> Result<Vec<PartPlan>, PoolError> {
    let mut found: Vec<(usize, PathBuf, u64)> = Vec::new();
    for (dir, _) in dirs {
        let rd = fs::read_dir(dir).map_err(|e| PoolError::io("read directory", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| PoolError::io("read directory", dir, e))?;
            let name = entry.file_name();
            let Some(index) = name.to_str().and_then(part_index) else {
                continue;
            };
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| PoolError::io("stat", &path, e))?;
            if !meta.file_type().is_file() {
                continue;
            }
            if found.len() >= MAX_DIR_PARTS {
                return Err(PoolError::DirectoryParts {
                    path: dir.clone(),
                    reason: format!("more than {MAX_DIR_PARTS} part files"),
                });
            }
            found.push((index, path, meta.len()));
        }
    }
    found.sort_by_key(|(i, _, _)| *i);
    for (want, (index, path, _)) in found.iter().enumerate() {
        if *index != want {
            let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            let reason = if *index < want {
                format!(
                    "part file {} is a duplicate of part {index}",
                    path.display()
                )
            } else {
                format!("part {want} ({}) is missing", part_file_name(want))
            };
            return Err(PoolError::DirectoryParts { path: dir, reason });
        }
    }
    if !found.is_empty() {
        return Ok(found
            .into_iter()
            .map(|(_, path, size)| PartPlan {
                path,
                size,
                devdax: None,
                exists: true,
            })
            .collect());
    }
    match purpose {
        Purpose::Open => Err(PoolError::DirectoryParts {
            path: dirs.first().map_or_else(PathBuf::new, |(d, _)| d.clone()),
            reason: "no part files (NNNNNN.pmem) in the pool set's directories".to_owned(),
        }),
        Purpose::Create => Ok(dirs
            .iter()
            .enumerate()
            .map(|(i, (dir, size))| PartPlan {
                path: dir.join(part_file_name(i)),
                size: *size,
                devdax: None,
                exists: false,
            })
            .collect()),
    }
}

/// An open, exclusively locked part file.
#[derive(Debug)]
pub struct PartFile {
    /// Index of the part.
    pub index: usize,
    /// Its path.
    pub path: PathBuf,
    /// The open file (holds the `flock`).
    pub file: File,
    /// Device DAX facts, `None` for a regular file.
    pub devdax: Option<DevDax>,
    /// True when this session created the file.
    pub created: bool,
    /// NVDIMM region under the part, if any.
    pub region: Option<u32>,
}

/// Takes the exclusive, non-blocking `flock` of a part
/// (`flock(LOCK_EX | LOCK_NB)`; `EWOULDBLOCK` means another session holds
/// the pool).
pub fn lock(file: &File, index: usize, path: &Path) -> Result<(), PoolError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(PoolError::Busy {
            part: index,
            path: path.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::EWOULDBLOCK),
        }),
        Err(fs::TryLockError::Error(source)) => Err(PoolError::io("flock", path, source)),
    }
}

fn region_of(sysfs: &Path, file: &File, devdax: Option<DevDax>) -> Option<u32> {
    match devdax {
        Some(d) => pmem::nd_region(&pmem::char_dev_dir(sysfs, d.rdev)),
        None => {
            let dev = file.metadata().ok()?.dev();
            pmem::nd_region(&pmem::block_dev_dir(sysfs, dev))
        }
    }
}

/// Opens an existing part read-write, locks it and checks its type and
/// size against the plan.
pub fn open_existing(index: usize, plan: &PartPlan, sysfs: &Path) -> Result<PartFile, PoolError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&plan.path)
        .map_err(|e| PoolError::io("open", &plan.path, e))?;
    lock(&file, index, &plan.path)?;
    let meta = file
        .metadata()
        .map_err(|e| PoolError::io("fstat", &plan.path, e))?;
    match plan.devdax {
        None => {
            if !meta.file_type().is_file() {
                return Err(PoolError::UnsupportedFileType {
                    part: index,
                    path: plan.path.clone(),
                });
            }
            if meta.len() != plan.size {
                return Err(PoolError::PartSizeMismatch {
                    part: index,
                    path: plan.path.clone(),
                    expected: plan.size,
                    actual: meta.len(),
                });
            }
        }
        Some(d) => {
            if meta.rdev() != d.rdev {
                return Err(PoolError::UnsupportedFileType {
                    part: index,
                    path: plan.path.clone(),
                });
            }
        }
    }
    let region = region_of(sysfs, &file, plan.devdax);
    Ok(PartFile {
        index,
        path: plan.path.clone(),
        file,
        devdax: plan.devdax,
        created: false,
        region,
    })
}

/// `posix_fallocate(fd, 0, size)`: allocates the blocks of a part so a
/// later store through the mapping cannot hit a full file system.
pub fn allocate(file: &File, path: &Path, size: u64) -> Result<(), PoolError> {
    let len = libc::off_t::try_from(size).map_err(|_| {
        PoolError::io(
            "posix_fallocate",
            path,
            io::Error::from_raw_os_error(libc::EFBIG),
        )
    })?;
    // SAFETY: plain system call on a descriptor owned by `file` for the
    // duration of the call.
    let err = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if err != 0 {
        return Err(PoolError::io(
            "posix_fallocate",
            path,
            io::Error::from_raw_os_error(err),
        ));
    }
    Ok(())
}

/// Creates a new part file (mode 0600, `O_EXCL`), locks it and allocates
/// its size. On failure after the file came to be, the file is removed.
pub fn create_new(index: usize, plan: &PartPlan, sysfs: &Path) -> Result<PartFile, PoolError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(PART_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(&plan.path)
        .map_err(|e| PoolError::io("create", &plan.path, e))?;
    let finish = || -> Result<(), PoolError> {
        lock(&file, index, &plan.path)?;
        // The umask may have cleared bits of 0600; set exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(PART_MODE))
            .map_err(|e| PoolError::io("fchmod", &plan.path, e))?;
        allocate(&file, &plan.path, plan.size)
    };
    if let Err(e) = finish() {
        drop(file);
        let _ = fs::remove_file(&plan.path);
        return Err(e);
    }
    let region = region_of(sysfs, &file, None);
    Ok(PartFile {
        index,
        path: plan.path.clone(),
        file,
        devdax: None,
        created: true,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("000000.pmem", Some(0))]
    #[case("000012.pmem", Some(12))]
    #[case("7.pmem", Some(7))]
    #[case(".pmem", None)]
    #[case("abc.pmem", None)]
    #[case("000001.pmemx", None)]
    #[case("-1.pmem", None)]
    #[case("000001", None)]
    fn part_file_names(#[case] name: &str, #[case] want: Option<usize>) {
        assert_eq!(part_index(name), want);
    }

    #[test]
    fn part_file_name_is_six_digits() {
        assert_eq!(part_file_name(3), "000003.pmem");
        assert_eq!(part_index(&part_file_name(42)), Some(42));
    }

    fn plan_of(sizes: &[u64], options: Options) -> Plan {
        Plan {
            set_path: "/x.set".into(),
            options,
            parts: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| PartPlan {
                    path: format!("/p{i}").into(),
                    size: *s,
                    devdax: None,
                    exists: false,
                })
                .collect(),
        }
    }

    #[rstest]
    // Every part has a header: later parts skip theirs.
    #[case(&[8192, 12288], false, false, &[(0, 0, 8192), (8192, 4096, 8192)], 16384)]
    // Sizes are rounded down to pages.
    #[case(&[8192 + 100, 12288 + 5], false, false, &[(0, 0, 8192), (8192, 4096, 8192)], 16384)]
    // SINGLEHDR: only part 0 has a header, later parts are mapped whole.
    #[case(&[8192, 12288], true, false, &[(0, 0, 8192), (8192, 0, 12288)], 20480)]
    // NOHDRS: no headers at all.
    #[case(&[8192, 12288], false, true, &[(0, 0, 8192), (8192, 0, 12288)], 20480)]
    fn layout_matches_pmdk(
        #[case] sizes: &[u64],
        #[case] single_hdr: bool,
        #[case] no_hdrs: bool,
        #[case] want: &[(u64, u64, u64)],
        #[case] total: u64,
    ) {
        let p = plan_of(
            sizes,
            Options {
                single_hdr,
                no_hdrs,
            },
        );
        let (slots, len) = p.layout().unwrap();
        let got: Vec<(u64, u64, u64)> = slots
            .iter()
            .map(|s| (s.pool_off, s.file_off, s.len))
            .collect();
        assert_eq!(got, want);
        assert_eq!(len, total);
    }

    #[test]
    fn header_counts_follow_options() {
        assert_eq!(plan_of(&[1, 1, 1], Options::default()).nhdrs(), 3);
        assert_eq!(
            plan_of(
                &[1, 1, 1],
                Options {
                    single_hdr: true,
                    no_hdrs: false
                }
            )
            .nhdrs(),
            1
        );
        assert_eq!(
            plan_of(
                &[1, 1, 1],
                Options {
                    single_hdr: false,
                    no_hdrs: true
                }
            )
            .nhdrs(),
            0
        );
    }
}
