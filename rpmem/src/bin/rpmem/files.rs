//! The local side of `put` and `get`: where the bytes come from and where
//! they go, without ever destroying what the tool did not create.
//!
//! `get` writes a regular file through a temporary file beside it
//! (`O_EXCL`, mode 0600 while it is written), made durable and renamed over
//! the destination only once every byte arrived; a symbolic link is
//! followed to the file it points to (the link stays); a destination that
//! is not a regular file (a FIFO, a device) is opened without truncation
//! only after the pool is open and written in order; `-`, `/dev/stdout`
//! and `/dev/fd/N` write to the open descriptor itself. Nothing is removed
//! or truncated on failure, except the temporary file.
//!
//! `put` reads a regular file in place; standard input (`-`) and anything
//! that is not a regular file (a pipe, `<(...)`) are read into memory
//! first, at most [`MAX_STREAM`] bytes, because the pool is opened with a
//! size that covers the whole transfer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

/// Most bytes `put` reads from standard input or a pipe (1 GiB).
pub const MAX_STREAM: u64 = 1 << 30;

/// True when `p` is `-`: standard input or output.
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// A name for messages: "standard input"/"standard output" for `-`.
pub fn describe(p: &Path, dash: &str) -> String {
    if is_dash(p) {
        dash.to_owned()
    } else {
        p.display().to_string()
    }
}

/// Where `put` reads from.
pub enum Source {
    /// A regular file, read in place.
    File(File),
    /// Standard input or a pipe, read whole.
    Memory(Vec<u8>),
}

impl Source {
    /// Opens `path` (`-`: standard input).
    pub fn open(path: &Path) -> CliResult<Source> {
        if is_dash(path) {
            return read_stream(io::stdin().lock(), "standard input").map(Source::Memory);
        }
        let name = path.display();
        let file = File::open(path).map_err(CliError::io(format!("cannot open {name}")))?;
        let meta = file
            .metadata()
            .map_err(CliError::io(format!("cannot read the size of {name}")))?;
        if meta.is_dir() {
            return Err(CliError::Local(format!(
                "{name} is a directory, not a file to put"
            )));
        }
        if meta.is_file() {
            Ok(Source::File(file))
        } else {
            read_stream(file, &name.to_string()).map(Source::Memory)
        }
    }

    /// The number of bytes to put.
    pub fn len(&self) -> CliResult<u64> {
        match self {
            Source::File(f) => f
                .metadata()
                .map(|m| m.len())
                .map_err(CliError::io("cannot read the size of the file")),
            Source::Memory(v) => Ok(v.len() as u64),
        }
    }

    /// Fills `buf` with the bytes at `at`.
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        match self {
            Source::File(f) => f.read_exact_at(buf, at),
            Source::Memory(v) => {
                let start = usize::try_from(at).map_err(|_| short())?;
                let src = start
                    .checked_add(buf.len())
                    .and_then(|end| v.get(start..end))
                    .ok_or_else(short)?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }
}

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the input ended early")
}

/// Reads `r` to its end, at most [`MAX_STREAM`] bytes.
fn read_stream(r: impl Read, name: &str) -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(MAX_STREAM + 1)
        .read_to_end(&mut buf)
        .map_err(CliError::io(format!("cannot read {name}")))?;
    if buf.len() as u64 > MAX_STREAM {
        return Err(CliError::Local(format!(
            "{name} holds more than {} bytes (1 GiB), the most put reads into memory from \
             standard input or a pipe; put a regular file instead",
            MAX_STREAM
        )));
    }
    Ok(buf)
}

/// Where `get` writes.
pub enum Sink {
    /// A temporary file beside `dest`, renamed over it by [`Sink::commit`].
    Temp {
        /// The temporary file (removed when dropped uncommitted).
        file: tempfile::NamedTempFile,
        /// The file it replaces or creates (a link already followed).
        dest: PathBuf,
        /// The permission bits it gets before the rename.
        mode: u32,
        /// The owner of the file it replaces, kept when this process may.
        owner: Option<(u32, u32)>,
    },
    /// Not a regular file (FIFO, device): opened by [`Sink::start`] for
    /// writing, without creating or truncating it.
    Special {
        /// Its path.
        path: PathBuf,
        /// Open once the pool is open.
        file: Option<File>,
    },
    /// An open descriptor of this process (`-`, `/dev/stdout`, `/dev/fd/N`),
    /// written where it stands; never closed.
    Fd {
        /// The descriptor, borrowed.
        file: ManuallyDrop<File>,
        /// For messages.
        name: String,
    },
}

/// The descriptor `path` names, for `/dev/stdout`, `/dev/stderr`,
/// `/dev/fd/N` and `/proc/self/fd/N`.
fn fd_path(path: &Path) -> Option<RawFd> {
    let s = path.to_str()?;
    match s {
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => {}
    }
    let n = s
        .strip_prefix("/dev/fd/")
        .or_else(|| s.strip_prefix("/proc/self/fd/"))?;
    n.parse().ok()
}

/// The process's file mode creation mask.
fn umask() -> libc::mode_t {
    // SAFETY: umask only sets and returns the mask; it is restored at once
    // (before any thread of this tool starts).
    let old = unsafe { libc::umask(0o077) };
    unsafe { libc::umask(old) };
    old
}

impl Sink {
    /// Prepares the output `path` (`-`: standard output). A regular file
    /// gets its temporary file now, so that a directory that cannot be
    /// written fails before anything starts on the target.
    pub fn prepare(path: &Path) -> CliResult<Sink> {
        let name = path.display().to_string();
        let fd = if is_dash(path) {
            Some(1)
        } else {
            fd_path(path)
        };
        if let Some(fd) = fd {
            // SAFETY: F_GETFD only asks whether `fd` is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(CliError::Local(format!(
                    "{name}: file descriptor {fd} is not open"
                )));
            }
            // SAFETY: `fd` is open (checked above) and the File is never
            // dropped (ManuallyDrop), so the descriptor is only borrowed.
            let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            let name = match (is_dash(path), fd) {
                (true, _) => "standard output".to_owned(),
                (false, 1) => format!("{name} (standard output)"),
                (false, 2) => format!("{name} (standard error)"),
                (false, _) => name,
            };
            return Ok(Sink::Fd { file, name });
        }
        let (dest, existing) = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (path.to_path_buf(), None),
            Err(e) => return Err(CliError::io(format!("cannot look at {name}"))(e)),
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(path).map_err(|e| {
                    CliError::Local(format!(
                        "{name} is a symbolic link that does not lead to an existing file \
                         ({e}); give the path of the file to write"
                    ))
                })?;
                let m = fs::metadata(&real)
                    .map_err(CliError::io(format!("cannot look at {}", real.display())))?;
                (real, Some(m))
            }
            Ok(m) => (path.to_path_buf(), Some(m)),
        };
        let (mode, owner) = match &existing {
            None => (0o666 & !umask(), None),
            Some(m) if m.is_dir() => {
                return Err(CliError::Local(format!(
                    "{name} is a directory; give the path of a file to write"
                )))
            }
            Some(m) if !m.is_file() => {
                return Ok(Sink::Special {
                    path: path.to_path_buf(),
                    file: None,
                })
            }
            Some(m) => {
                check_writable(&dest)?;
                (m.permissions().mode() & 0o777, Some((m.uid(), m.gid())))
            }
        };
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = dest
            .file_name()
            .map_or_else(|| "get".into(), |n| n.to_string_lossy().into_owned());
        let file = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(".rpmem-partial")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(CliError::io(format!(
                "cannot create a temporary file in {} to receive {name}",
                dir.display()
            )))?;
        Ok(Sink::Temp {
            file,
            dest,
            mode,
            owner,
        })
    }

    /// Opens a special file for writing (once the pool is open: opening a
    /// FIFO waits for its reader).
    pub fn start(&mut self) -> CliResult {
        if let Sink::Special { path, file } = self {
            if file.is_none() {
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(&*path)
                    .map_err(CliError::io(format!(
                        "cannot open {} for writing",
                        path.display()
                    )))?;
                *file = Some(f);
            }
        }
        Ok(())
    }

    /// True when the bytes go to this process's standard output.
    pub fn is_stdout(&self) -> bool {
        use std::os::fd::AsRawFd;
        matches!(self, Sink::Fd { file, .. } if file.as_raw_fd() == 1)
    }

    /// What is written, for messages.
    pub fn name(&self) -> String {
        match self {
            Sink::Temp { dest, .. } => dest.display().to_string(),
            Sink::Special { path, .. } => path.display().to_string(),
            Sink::Fd { name, .. } => name.clone(),
        }
    }

    /// Appends `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> CliResult {
        let name = self.name();
        let result = match self {
            Sink::Temp { file, .. } => file.as_file_mut().write_all(buf),
            Sink::Special { file: Some(f), .. } => f.write_all(buf),
            Sink::Special { file: None, .. } => Err(io::Error::other("not open")),
            Sink::Fd { file, .. } => (&**file).write_all(buf),
        };
        result.map_err(CliError::io(format!("cannot write {name}")))
    }

    /// Finishes a complete transfer: the temporary file is made durable,
    /// given its final mode and renamed over the destination.
    pub fn commit(self) -> CliResult {
        match self {
            Sink::Temp {
                file,
                dest,
                mode,
                owner,
            } => {
                let name = dest.display().to_string();
                let f = file.as_file();
                if let Some((uid, gid)) = owner {
                    // Keep the replaced file's owner where this process may
                    // (root); otherwise the new file is this user's.
                    let _ = std::os::unix::fs::fchown(f, Some(uid), Some(gid));
                }
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(CliError::io(format!("cannot set the mode of {name}")))?;
                f.sync_all()
                    .map_err(CliError::io(format!("cannot flush {name} to disk")))?;
                file.persist(&dest).map_err(|e| {
                    CliError::io(format!("cannot rename the data into {name}"))(e.error)
                })?;
                if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            Sink::Special { file, path } => match file {
                Some(mut f) => f
                    .flush()
                    .map_err(CliError::io(format!("cannot write {}", path.display()))),
                None => Ok(()),
            },
            Sink::Fd { file, name } => (&*file)
                .flush()
                .map_err(CliError::io(format!("cannot write {name}"))),
        }
    }
}

/// Refuses an existing file this user may not write, as a shell's `>`
/// would (replacing it by rename would otherwise succeed).
fn check_writable(p: &Path) -> CliResult {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| CliError::Local(format!("{} has a NUL byte in its name", p.display())))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(CliError::io(format!("cannot write {}", p.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
