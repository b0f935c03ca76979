//! Persistent memory facts from the kernel: Device DAX detection and size,
//! NVDIMM region of a part, its persistence domain, `deep_flush`, and the
//! `PMEM_IS_PMEM_FORCE` override.
//!
//! Everything reads sysfs under a root that is `/sys` in production and a
//! fake tree in tests.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where sysfs is mounted.
pub const SYSFS: &str = "/sys";

/// The environment variable libpmem reads to force `pmem_is_pmem`'s answer.
pub const PMEM_IS_PMEM_FORCE: &str = "PMEM_IS_PMEM_FORCE";

/// What a part path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory (a directory pool set).
    Directory,
    /// A Device DAX character device with this `st_rdev`.
    DevDax {
        /// The device number.
        rdev: u64,
    },
}

/// Classifies `meta` the way libpmem2's `pmem2_get_type_from_stat` does: a
/// character device is a Device DAX when `/sys/dev/char/M:m/subsystem`
/// resolves to a directory named `dax`. `Ok(None)` for any other type.
pub fn file_kind(sysfs: &Path, meta: &fs::Metadata) -> io::Result<Option<FileKind>> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(Some(FileKind::Regular));
    }
    if ft.is_dir() {
        return Ok(Some(FileKind::Directory));
    }
    if !ft.is_char_device() {
        return Ok(None);
    }
    let rdev = meta.rdev();
    let subsystem = fs::canonicalize(char_dev_dir(sysfs, rdev).join("subsystem"))?;
    if subsystem.file_name().is_some_and(|n| n == "dax") {
        Ok(Some(FileKind::DevDax { rdev }))
    } else {
        Ok(None)
    }
}

/// `/sys/dev/char/M:m`.
pub fn char_dev_dir(sysfs: &Path, rdev: u64) -> PathBuf {
    sysfs
        .join("dev/char")
        .join(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// `/sys/dev/block/M:m` of the device a file lives on.
pub fn block_dev_dir(sysfs: &Path, dev: u64) -> PathBuf {
    sysfs
        .join("dev/block")
        .join(format!("{}:{}", libc::major(dev), libc::minor(dev)))
}

/// Parses a sysfs number the way `strtoull(s, &end, base)` followed by a
/// check for a final `'\n'` does; `base == 0` accepts `0x` hex and decimal.
fn parse_sysfs_number(text: &str, base: u32) -> Option<u64> {
    let body = text.strip_suffix('\n')?;
    let (digits, radix) = match base {
        0 => match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None => match body.strip_prefix('0') {
                Some(octal) if !octal.is_empty() => (octal, 8),
                _ => (body, 10),
            },
        },
        b => (body, b),
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The size of a Device DAX (`/sys/dev/char/M:m/size`).
pub fn devdax_size(sysfs: &Path, rdev: u64) -> io::Result<u64> {
    let p = char_dev_dir(sysfs, rdev).join("size");
    let text = fs::read_to_string(&p)?;
    parse_sysfs_number(&text, 0).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid Device DAX size {text:?} in {}", p.display()),
        )
    })
}

/// The mapping alignment of a Device DAX: the first `dax_region/align`
/// found walking up from the device's sysfs directory (libpmem2's
/// `pmem2_device_dax_alignment_from_stat`; decimal, or hex on kernels
/// before 4.9).
pub fn devdax_alignment(sysfs: &Path, rdev: u64) -> io::Result<u64> {
    let dev = fs::canonicalize(char_dev_dir(sysfs, rdev))?;
    let stop = sysfs.join("devices");
    let mut dir = dev.as_path();
    while let Some(parent) = dir.parent() {
        if dir == stop {
            break;
        }
        let p = parent.join("dax_region/align");
        if let Ok(text) = fs::read_to_string(&p) {
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("invalid alignment {text:?} in {}", p.display()),
                )
            };
            let mut align = parse_sysfs_number(&text, 10).ok_or_else(bad)?;
            if !align.is_power_of_two() {
                align = parse_sysfs_number(&text, 16).ok_or_else(bad)?;
            }
            if !align.is_power_of_two() {
                return Err(bad());
            }
            return Ok(align);
        }
        dir = parent;
    }
    // No region alignment published: the page size.
    Ok(4096)
}

/// The NVDIMM region (`regionN`) whose sysfs subtree holds `dev_dir`
/// (`/sys/dev/char/M:m` of a Device DAX or `/sys/dev/block/M:m` of the
/// device under a file), or `None` when the device is no NVDIMM namespace.
pub fn nd_region(dev_dir: &Path) -> Option<u32> {
    let real = fs::canonicalize(dev_dir).ok()?;
    real.components().rev().find_map(|c| {
        let name = c.as_os_str().to_str()?;
        let n = name.strip_prefix("region")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    })
}

/// `/sys/bus/nd/devices/regionN`.
fn region_dir(sysfs: &Path, region: u32) -> PathBuf {
    sysfs.join("bus/nd/devices").join(format!("region{region}"))
}

/// True when the region's `persistence_domain` is `cpu_cache` (eADR: the
/// CPU caches are inside the persistence domain).
pub fn region_cache_persistent(sysfs: &Path, region: u32) -> bool {
    fs::read_to_string(region_dir(sysfs, region).join("persistence_domain"))
        .map(|s| s.trim() == "cpu_cache")
        .unwrap_or(false)
}

/// Writes `1` to the region's `deep_flush` file (libpmem2's
/// `pmem2_deep_flush_write`) unless it reads `0` (nothing to flush). A
/// region without the file has no deep flush: that is success.
pub fn region_deep_flush(sysfs: &Path, region: u32) -> io::Result<()> {
    let p = region_dir(sysfs, region).join("deep_flush");
    match fs::read_to_string(&p) {
        Ok(s) if s == "0\n" => Ok(()),
        Ok(_) => fs::write(&p, b"1"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The value of `PMEM_IS_PMEM_FORCE` as libpmem reads it: exactly `"0"` or
/// `"1"`, anything else is ignored.
pub fn parse_force(value: Option<&str>) -> Option<bool> {
    match value {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    }
}

/// [`parse_force`] of the process environment.
pub fn force_from_env() -> Option<bool> {
    let v = std::env::var(PMEM_IS_PMEM_FORCE).ok();
    parse_force(v.as_deref())
}

/// Is a part persistent memory?
///
/// PMDK (`util_replica_set_is_pmem`): a Device DAX, or mapped with
/// `MAP_SYNC`, or `pmem_is_pmem` says so (which `PMEM_IS_PMEM_FORCE`
/// overrides). Here `PMEM_IS_PMEM_FORCE=1` makes every part pmem and
/// `PMEM_IS_PMEM_FORCE=0` makes every part but a Device DAX not pmem (a
/// Device DAX cannot be made durable with `msync`, so it stays pmem).
pub fn part_is_pmem(devdax: bool, map_sync: bool, force: Option<bool>) -> bool {
    match force {
        Some(true) => true,
        Some(false) => devdax,
        None => devdax || map_sync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::os::unix::fs::symlink;

    #[rstest]
    #[case("123\n", 0, Some(123))]
    #[case("0x200000\n", 0, Some(0x20_0000))]
    #[case("010\n", 0, Some(8))]
    #[case("0\n", 0, Some(0))]
    #[case("123", 0, None)]
    #[case("\n", 0, None)]
    #[case("12x\n", 10, None)]
    #[case("200000\n", 16, Some(0x20_0000))]
    #[case("99999999999999999999999\n", 10, None)]
    fn sysfs_numbers_parse_like_strtoull(
        #[case] text: &str,
        #[case] base: u32,
        #[case] want: Option<u64>,
    ) {
        assert_eq!(parse_sysfs_number(text, base), want);
    }

    #[rstest]
    #[case(Some("1"), Some(true))]
    #[case(Some("0"), Some(false))]
    #[case(Some("yes"), None)]
    #[case(Some("10"), None)]
    #[case(Some(""), None)]
    #[case(None, None)]
    fn force_values(#[case] v: Option<&str>, #[case] want: Option<bool>) {
        assert_eq!(parse_force(v), want);
    }

    #[rstest]
    #[case(false, false, None, false)]
    #[case(false, true, None, true)]
    #[case(true, false, None, true)]
    #[case(false, false, Some(true), true)]
    #[case(false, true, Some(false), false)]
    #[case(true, false, Some(false), true)]
    fn pmem_decision(
        #[case] devdax: bool,
        #[case] sync: bool,
        #[case] force: Option<bool>,
        #[case] want: bool,
    ) {
        assert_eq!(part_is_pmem(devdax, sync, force), want);
    }

    /// A fake sysfs with Device DAX 251:3 in region 2, whose region is eADR.
    fn fake_sysfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        let dev = s.join("devices/platform/e820_pmem/ndbus0/region2/dax2.0/dax/dax2.0");
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(s.join("devices/platform/e820_pmem/ndbus0/region2/dax2.0/dax_region"))
            .unwrap();
        fs::write(
            s.join("devices/platform/e820_pmem/ndbus0/region2/dax2.0/dax_region/align"),
            "2097152\n",
        )
        .unwrap();
        fs::create_dir_all(s.join("class/dax")).unwrap();
        symlink(s.join("class/dax"), dev.join("subsystem")).unwrap();
        fs::write(dev.join("size"), "1073741824\n").unwrap();
        fs::create_dir_all(s.join("dev/char")).unwrap();
        symlink(&dev, s.join("dev/char/251:3")).unwrap();
        let region = s.join("devices/platform/e820_pmem/ndbus0/region2");
        fs::write(region.join("persistence_domain"), "cpu_cache\n").unwrap();
        fs::write(region.join("deep_flush"), "1\n").unwrap();
        fs::create_dir_all(s.join("bus/nd/devices")).unwrap();
        symlink(&region, s.join("bus/nd/devices/region2")).unwrap();
        t
    }

    #[test]
    fn devdax_facts_come_from_sysfs() {
        let t = fake_sysfs();
        let rdev = libc::makedev(251, 3);
        assert_eq!(devdax_size(t.path(), rdev).unwrap(), 1 << 30);
        assert_eq!(devdax_alignment(t.path(), rdev).unwrap(), 2 << 20);
        assert_eq!(nd_region(&char_dev_dir(t.path(), rdev)), Some(2));
        assert!(region_cache_persistent(t.path(), 2));
        assert!(!region_cache_persistent(t.path(), 7));
        region_deep_flush(t.path(), 2).unwrap();
        let written =
            fs::read_to_string(t.path().join("bus/nd/devices/region2/deep_flush")).unwrap();
        assert_eq!(written, "1");
        // No deep_flush file: nothing to do.
        region_deep_flush(t.path(), 9).unwrap();
        assert!(devdax_size(t.path(), libc::makedev(1, 1)).is_err());
    }

    #[test]
    fn regular_files_and_directories_are_classified_without_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"x").unwrap();
        let none = Path::new("/nonexistent-sysfs");
        assert_eq!(
            file_kind(none, &fs::metadata(&f).unwrap()).unwrap(),
            Some(FileKind::Regular)
        );
        assert_eq!(
            file_kind(none, &fs::metadata(t.path()).unwrap()).unwrap(),
            Some(FileKind::Directory)
        );
        // /dev/null is a character device but not a Device DAX.
        if let Ok(m) = fs::metadata("/dev/null") {
            assert_eq!(file_kind(Path::new(SYSFS), &m).unwrap(), None);
        }
    }
}
