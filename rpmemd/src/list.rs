//! `rpmemd --list` (our extension, PMDK's rpmemd has no such mode): lists the pool set files
//! of `poolset-dir`, by the names a client passes, with whether each one parses and its pool
//! size or its parse error.
//!
//! The directory is walked from a descriptor, one directory at a time relative to its parent
//! and opened with `O_NOFOLLOW`, so the walk never leaves `poolset-dir`: symbolic links to
//! directories are not descended into, and a symbolic link to a file is resolved with the
//! rules of a session ([`PoolsetDir::open_file`]: a link that leads out of the directory is
//! refused, so it is not listed). The walk is bounded ([`MAX_DEPTH`], [`MAX_ENTRIES`],
//! [`MAX_SETS`], [`MAX_OUTPUT`]); when a bound stops it, or a subdirectory cannot be read, the
//! output says that the list is incomplete and why.
//!
//! # Output (stdout), one record per line, fields separated by a tab
//!
//! ```text
//! rpmemd-list  1  <poolset-dir>
//! set  <name>  ok  <pool size in bytes | auto>  <replicas>  <options: - | SINGLEHDR | NOHDRS | SINGLEHDR,NOHDRS>
//! set  <name>  invalid  <line | ->  <error>
//! incomplete  <reason>
//! end  <number of set lines>
//! ```
//!
//! The line format (records, escaping with [`escape`]'s scheme, the cut of long texts) is the
//! core's [`rpmem_core::list`], which the rpmem library (`rpmem::list_pool_sets`) reads back
//! with, strictly: no tab, line end or other control character is ever written raw.

use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rpmem_core::list::{Field, Record, SetStatus, WRITE_BUDGET};
use rpmem_core::poolset::{Options, PoolSet, SIGNATURE};

use crate::config::{Config, Origin};
use crate::exit;
use crate::pool::{
    check_name, sys_fstatat_nofollow, sys_openat, PoolError, PoolsetDir, MAX_POOLSET_FILE,
};

pub use rpmem_core::list::{FORMAT, FORMAT_VERSION};
/// Deepest directory searched, counted from `poolset-dir` (its own entries are depth 0).
pub const MAX_DEPTH: usize = 16;
/// Most directory entries examined in the whole walk.
pub const MAX_ENTRIES: usize = 100_000;
/// Most pool set files listed.
pub const MAX_SETS: usize = 10_000;
/// Most bytes of output before the last records
/// ([`rpmem_core::list::WRITE_BUDGET`]); the rpmem library accepts at most 1 MiB.
pub const MAX_OUTPUT: usize = WRITE_BUDGET;

/// One pool set file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its path relative to `poolset-dir`, as bytes (names need not be UTF-8).
    pub name: Vec<u8>,
    /// Whether it parses.
    pub status: EntryStatus,
}

/// What the parser says of a pool set file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    /// It parses.
    Valid {
        /// The pool size; `None` when it depends on an `AUTO` part (a Device DAX).
        pool_size: Option<u64>,
        /// Number of replicas.
        replicas: usize,
        /// Its `OPTION`s.
        options: Options,
    },
    /// It does not parse, or a client cannot name or read it.
    Invalid {
        /// The line of the error, when the parser found one.
        line: Option<u32>,
        /// What is wrong.
        error: String,
    },
}

/// The result of a walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The pool set files found, sorted by name.
    pub entries: Vec<Entry>,
    /// Why the list may miss pool set files (bounds reached, unreadable directories).
    pub incomplete: Vec<String>,
}

/// Why nothing could be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// `poolset-dir` cannot be opened or read.
    #[error("poolset-dir {} cannot be {what}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// `opened` or `read`.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening it as a session would failed.
    #[error("{0}")]
    Pool(#[from] PoolError),
}

/// Escapes `bytes` for one field of the output with the project's one scheme
/// ([`rpmem_core::text`]): `\\`, `\t`, `\n`, `\r`, other ASCII control characters and bytes
/// that are not UTF-8 as `\xHH`, and Unicode control and invisible formatting characters (C1
/// controls, bidirectional overrides, zero-width characters) as `\u{HHHH}`. Everything else
/// stays as it is.
pub fn escape(bytes: &[u8]) -> String {
    rpmem_core::text::Escaped(bytes).to_string()
}

/// Lists the pool set files of `poolset_dir`.
pub fn list(poolset_dir: &Path) -> Result<Listing, ListError> {
    let sets = PoolsetDir::open(poolset_dir)?;
    let root = open_dir(None, poolset_dir.as_os_str().as_bytes(), false).map_err(|source| {
        ListError::Dir {
            path: poolset_dir.to_path_buf(),
            what: "opened",
            source,
        }
    })?;
    let mut walk = Walk {
        sets: &sets,
        listing: Listing::default(),
        budget: MAX_ENTRIES,
        exhausted: false,
        stopped: false,
    };
    let root_entries = walk.read_dir(&root).map_err(|source| ListError::Dir {
        path: poolset_dir.to_path_buf(),
        what: "read",
        source,
    })?;
    walk.directory(&root, &[], 0, root_entries);
    walk.listing
        .entries
        .sort_by(|a, b| a.name.as_slice().cmp(b.name.as_slice()));
    Ok(walk.listing)
}

/// The state of one walk.
struct Walk<'a> {
    sets: &'a PoolsetDir,
    listing: Listing,
    /// Directory entries that may still be read.
    budget: usize,
    /// [`MAX_ENTRIES`] entries were read (and it was noted).
    exhausted: bool,
    /// A bound was reached: nothing more is listed.
    stopped: bool,
}

impl Walk<'_> {
    /// Looks at the `entries` of directory `dir` (`prefix` relative to `poolset-dir`, empty
    /// for the directory itself), at `depth`.
    fn directory(&mut self, dir: &OwnedFd, prefix: &[u8], depth: usize, entries: Vec<Vec<u8>>) {
        for name in entries {
            if self.stopped {
                return;
            }
            let rel = join(prefix, &name);
            let Ok(c) = CString::new(name.as_slice()) else {
                continue;
            };
            let Ok(st) = sys_fstatat_nofollow(dir.as_fd(), &c) else {
                // Removed meanwhile.
                continue;
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => self.subdirectory(dir, &c, &rel, depth),
                libc::S_IFREG => self.regular_file(dir, &c, rel),
                libc::S_IFLNK => self.symlink(rel),
                _ => {}
            }
        }
    }

    fn subdirectory(&mut self, parent: &OwnedFd, name: &CStr, rel: &[u8], depth: usize) {
        if depth.saturating_add(1) > MAX_DEPTH {
            self.note(format!(
                "directories more than {MAX_DEPTH} levels below poolset-dir were not searched \
                 (e.g. {})",
                escape(rel)
            ));
            return;
        }
        let opened = open_dir(Some(parent.as_fd()), name.to_bytes(), true)
            .and_then(|fd| self.read_dir(&fd).map(|entries| (fd, entries)));
        match opened {
            Ok((fd, entries)) => self.directory(&fd, rel, depth.saturating_add(1), entries),
            Err(e) => self.note(format!("directory {} cannot be read: {e}", escape(rel))),
        }
    }

    fn regular_file(&mut self, parent: &OwnedFd, name: &CStr, rel: Vec<u8>) {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let Ok(fd) = sys_openat(Some(parent.as_fd()), name, flags, 0) else {
            // Unreadable files are not pool set files a session could read either.
            return;
        };
        self.file(std::fs::File::from(fd), rel);
    }

    /// A symbolic link is listed when it leads, inside `poolset-dir`, to a regular file that is
    /// a pool set file: a session resolves it the same way.
    fn symlink(&mut self, rel: Vec<u8>) {
        let Ok(name) = std::str::from_utf8(&rel) else {
            return;
        };
        let Ok(file) = self.sets.open_file(name) else {
            return;
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => self.file(file, rel),
            _ => {}
        }
    }

    /// Lists `file` (`rel`) if it is a pool set file.
    fn file(&mut self, file: std::fs::File, rel: Vec<u8>) {
        let mut bytes = Vec::new();
        let mut head = (&file).take(SIGNATURE.len() as u64);
        if head.read_to_end(&mut bytes).is_err() || bytes != SIGNATURE.as_bytes() {
            return;
        }
        let status = match (&file)
            .take(MAX_POOLSET_FILE.saturating_add(1))
            .read_to_end(&mut bytes)
        {
            Err(e) => invalid(None, format!("cannot be read: {e}")),
            Ok(_) if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_POOLSET_FILE => {
                invalid(None, "the pool set file is larger than 1 MiB".to_owned())
            }
            Ok(_) => match PoolSet::parse(&bytes) {
                Ok(set) => EntryStatus::Valid {
                    pool_size: set.pool_size(),
                    replicas: set.nreplicas(),
                    options: set.options(),
                },
                Err(e) => invalid(Some(e.line), e.kind.to_string()),
            },
        };
        let status = match nameable(&rel) {
            Ok(()) => status,
            Err(why) => invalid(None, why),
        };
        if self.listing.entries.len() >= MAX_SETS {
            self.stop(format!("stopped after {MAX_SETS} pool set files"));
            return;
        }
        self.listing.entries.push(Entry { name: rel, status });
    }

    /// The names in `dir`, sorted; counts them against [`MAX_ENTRIES`] and stops the walk
    /// when they reach it (the names read so far are still looked at).
    fn read_dir(&mut self, dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
        let (names, more) = read_dir(dir, self.budget)?;
        self.budget = self.budget.saturating_sub(names.len());
        if more && !self.exhausted {
            // What was read is still looked at, but no more entries are read.
            self.exhausted = true;
            self.note(format!(
                "stopped after reading {MAX_ENTRIES} directory entries"
            ));
        }
        Ok(names)
    }

    fn note(&mut self, text: String) {
        log::warn!("listing pool sets: {text}");
        self.listing.incomplete.push(text);
    }

    fn stop(&mut self, text: String) {
        self.stopped = true;
        self.note(text);
    }
}

/// Whether a client can name `rel`: UTF-8 and accepted by the session's name rules.
fn nameable(rel: &[u8]) -> Result<(), String> {
    let name = std::str::from_utf8(rel)
        .map_err(|_| "the name is not UTF-8: a client cannot name this file".to_owned())?;
    check_name(name)
        .map(|_| ())
        .map_err(|e| format!("a client cannot use this name: {e}"))
}

fn invalid(line: Option<u32>, error: String) -> EntryStatus {
    EntryStatus::Invalid { line, error }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut rel = prefix.to_vec();
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
    rel
}

/// The output for `listing` of `poolset_dir`, at most [`MAX_OUTPUT`] bytes plus the last
/// records (an `incomplete` line and the `end` line).
pub fn render(poolset_dir: &Path, listing: &Listing) -> String {
    let mut out = String::new();
    let dir = Field::Raw(poolset_dir.as_os_str().as_bytes());
    // Writing into a String cannot fail.
    let _ = Record::Header { poolset_dir: dir }.write_line(&mut out);
    let mut sets = 0u64;
    let mut stopped = None;
    let mut line = String::new();
    for entry in &listing.entries {
        let status = match &entry.status {
            EntryStatus::Valid {
                pool_size,
                replicas,
                options,
            } => SetStatus::Valid {
                pool_size: *pool_size,
                replicas: u32::try_from(*replicas).unwrap_or(u32::MAX),
                options: *options,
            },
            EntryStatus::Invalid { line, error } => SetStatus::Invalid {
                line: *line,
                error: Field::text(error),
            },
        };
        line.clear();
        let name = Field::Raw(&entry.name);
        let _ = Record::Set { name, status }.write_line(&mut line);
        if out.len().saturating_add(line.len()) > MAX_OUTPUT {
            stopped = Some(format!(
                "stopped after {sets} pool set files: the list reached {} KiB",
                MAX_OUTPUT / 1024
            ));
            break;
        }
        out.push_str(&line);
        sets = sets.saturating_add(1);
    }
    for text in listing.incomplete.iter().chain(&stopped) {
        let reason = Field::text(text);
        let _ = Record::Incomplete { reason }.write_line(&mut out);
    }
    let _ = Record::End { sets }.write_line(&mut out);
    out
}

/// Runs `--list` for this process: lists `poolset-dir` on stdout and gives the exit status.
pub fn run(config: &Config, origin: &Origin) -> exit::Status {
    let dir = &config.poolset_dir;
    log::info!("listing the pool sets of '{}'", dir.display());
    let listing = match list(dir) {
        Ok(listing) => listing,
        Err(e) => {
            let message = format!(
                "cannot list the pool sets: {e} (poolset-dir is set by {origin}; \
                 rpmemd --check-config checks the configuration)"
            );
            log::error!("{message}");
            if !crate::logging::logs_to_stderr() {
                let _ = writeln!(io::stderr(), "{}: {message}", crate::logging::IDENT);
            }
            return exit::Status::Failure;
        }
    };
    let text = render(dir, &listing);
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {
            log::info!(
                "listed {} pool set file(s) of '{}'",
                listing.entries.len(),
                dir.display()
            );
            exit::Status::Success
        }
        Err(e) => {
            log::error!("cannot write the list to stdout: {e}");
            exit::Status::Failure
        }
    }
}

/// Opens the directory `path` (relative to `dir`, or as given with `None`) for reading its
/// entries; `nofollow`: refuse a symbolic link.
fn open_dir(dir: Option<BorrowedFd<'_>>, path: &[u8], nofollow: bool) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    sys_openat(dir, &c, flags, 0)
}

/// The names in directory `dir` (without `.` and `..`), sorted, at most `limit` of them, and
/// whether there were more.
fn read_dir(dir: &OwnedFd, limit: usize) -> io::Result<(Vec<Vec<u8>>, bool)> {
    // `closedir` closes the descriptor it was given: give it a duplicate.
    let dup = dir.try_clone()?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: `raw` is an open directory descriptor we own; on success `fdopendir` takes it.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: `fdopendir` failed, so `raw` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    let mut names = Vec::new();
    let mut more = false;
    let result = loop {
        // SAFETY: resetting this thread's errno, to tell the end of the directory from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a live directory stream.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break match e.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(e),
            };
        }
        // SAFETY: `ent` points to a valid dirent until the next readdir on `dirp`; `d_name` is
        // NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            if names.len() >= limit {
                more = true;
                break Ok(());
            }
            names.push(name.to_vec());
        }
    };
    // SAFETY: `dirp` is live and not used after this.
    unsafe { libc::closedir(dirp) };
    result?;
    names.sort();
    Ok((names, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_plain_names_and_escapes_the_rest() {
        assert_eq!(escape(b"pools/db.set"), "pools/db.set");
        assert_eq!(escape("café ü.set".as_bytes()), "café ü.set");
        assert_eq!(escape(b"a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(escape(b"\x1b[31mred\x7f"), "\\x1b[31mred\\x7f");
        assert_eq!(escape(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(
            escape("\u{202e}txt.set\u{85}".as_bytes()),
            "\\u{202e}txt.set\\u{0085}"
        );
    }

    #[test]
    fn render_bounds_its_output() {
        let entry = Entry {
            name: vec![b'n'; 200],
            status: invalid(Some(1), "e".repeat(600)),
        };
        let listing = Listing {
            entries: vec![entry; 10_000],
            incomplete: Vec::new(),
        };
        let out = render(Path::new("/d"), &listing);
        assert!(out.len() <= MAX_OUTPUT + 1024, "{}", out.len());
        assert!(out.contains("\nincomplete\tstopped after "));
        assert!(out.ends_with('\n'));
        let last = out.lines().last().unwrap_or_default();
        let sets = out.lines().filter(|l| l.starts_with("set\t")).count();
        assert_eq!(last, format!("end\t{sets}"));
        // Each error was cut to the core's bound.
        let first = out.lines().nth(1).unwrap_or_default();
        assert!(
            first.ends_with(&format!("\t{}...", "e".repeat(512))),
            "{first}"
        );
    }

    #[test]
    fn render_writes_what_the_core_reads_back() {
        let listing = Listing {
            entries: vec![
                Entry {
                    name: b"a\tb\xff.set".to_vec(),
                    status: EntryStatus::Valid {
                        pool_size: None,
                        replicas: 2,
                        options: Options {
                            single_hdr: false,
                            no_hdrs: true,
                        },
                    },
                },
                Entry {
                    name: b"c.set".to_vec(),
                    status: invalid(None, "bad\nline".to_owned()),
                },
            ],
            incomplete: vec!["directory \u{202e} cannot be read".to_owned()],
        };
        let out = render(Path::new("/d\n"), &listing);
        let records: Vec<Record<'_>> = rpmem_core::list::Reader::new(out.as_bytes())
            .expect("a whole list")
            .collect::<Result<_, _>>()
            .expect("every record reads");
        assert_eq!(
            records,
            [
                Record::Header {
                    poolset_dir: Field::text("/d\n")
                },
                Record::Set {
                    name: Field::Raw(b"a\tb\xff.set"),
                    status: SetStatus::Valid {
                        pool_size: None,
                        replicas: 2,
                        options: Options {
                            single_hdr: false,
                            no_hdrs: true
                        }
                    }
                },
                Record::Set {
                    name: Field::text("c.set"),
                    status: SetStatus::Invalid {
                        line: None,
                        error: Field::text("bad\nline")
                    }
                },
                Record::Incomplete {
                    reason: Field::text("directory \u{202e} cannot be read")
                },
                Record::End { sets: 2 },
            ]
        );
    }
}
