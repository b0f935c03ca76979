//! Safe resolution of client-supplied pool set names under `poolset-dir`.
//!
//! A name is a relative path. It is refused when it is empty, holds a NUL
//! byte, starts with `/`, has a `..` component, or reaches outside the
//! directory through a symbolic link (an absolute link target, or a
//! relative one whose `..` climbs above the directory). Symbolic links that
//! stay inside the directory are followed.
//!
//! The kernel does the resolution with `openat2(2)` and `RESOLVE_BENEATH`
//! where it has it. Where it does not (`ENOSYS`), an equivalent walk opens
//! one component at a time relative to the previous directory with
//! `O_NOFOLLOW`, expands symbolic links itself and refuses any that would
//! leave the directory. When `openat2` refuses a name, the walk runs once
//! more to tell which component was at fault.
//!
//! PMDK's rpmemd concatenates the directory and the name, so it accepts
//! `../escape.set`; this code does not.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::error::{NameProblem, PoolError};

/// Longest name accepted (`PATH_MAX`).
pub const MAX_NAME_LEN: usize = 4096;
/// Longest component accepted (`NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Most symbolic links expanded while resolving one name (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// `struct open_how` of `linux/openat2.h` (libc's is `#[non_exhaustive]`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `RESOLVE_BENEATH`: no absolute paths, no `..` above the start, no
/// symbolic link leading outside.
const RESOLVE_BENEATH: u64 = 0x08;
/// `RESOLVE_NO_MAGICLINKS`: no `/proc/self/fd/N`-style links.
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

/// How names are resolved (public for tests of both ways).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `openat2` with `RESOLVE_BENEATH`, falling back to [`Strategy::Walk`]
    /// when the kernel lacks it.
    Openat2,
    /// The component-by-component walk only.
    Walk,
}

/// Checks the text of a pool set name and returns its components (without
/// empty and `.` components). Does not touch the file system.
pub fn check_name(name: &str) -> Result<Vec<&str>, PoolError> {
    let bad = |component: &str, problem| PoolError::BadName {
        name: name.to_owned(),
        component: component.to_owned(),
        problem,
    };
    if name.is_empty() {
        return Err(bad(name, NameProblem::Empty));
    }
    if name.contains('\0') {
        return Err(bad(name, NameProblem::Nul));
    }
    if name.starts_with('/') {
        return Err(bad(name, NameProblem::Absolute));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(name, NameProblem::TooLong));
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        if c == ".." {
            return Err(bad(c, NameProblem::DotDot));
        }
        if c.len() > MAX_COMPONENT_LEN {
            return Err(bad(c, NameProblem::TooLong));
        }
        if c.ends_with(super::intent::SUFFIX) {
            return Err(bad(c, NameProblem::Reserved));
        }
        if !c.is_empty() && c != "." {
            out.push(c);
        }
    }
    if out.is_empty() {
        // "." or "./" names the directory itself, not a pool set file.
        return Err(bad(name, NameProblem::Empty));
    }
    Ok(out)
}

/// The pool set directory, held open so every name is resolved relative to
/// the same directory even if its path is renamed meanwhile.
#[derive(Debug)]
pub struct PoolsetDir {
    fd: OwnedFd,
    path: PathBuf,
    strategy: Strategy,
}

impl PoolsetDir {
    /// Opens the pool set directory (the administrator's `poolset-dir`; its
    /// own path may contain symbolic links).
    pub fn open(path: impl AsRef<Path>) -> Result<PoolsetDir, PoolError> {
        Self::open_with(path, Strategy::Openat2)
    }

    /// [`PoolsetDir::open`] with a chosen resolution strategy.
    pub fn open_with(path: impl AsRef<Path>, strategy: Strategy) -> Result<PoolsetDir, PoolError> {
        let path = path.as_ref().to_path_buf();
        let dir_err = |source| PoolError::PoolsetDir {
            path: path.clone(),
            source,
        };
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| dir_err(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let fd = sys_openat(
            None,
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(dir_err)?;
        Ok(PoolsetDir { fd, path, strategy })
    }

    /// The directory's path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `dir/name`, for messages.
    pub fn display(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the pool set file `name` for reading (non-blocking, so a FIFO
    /// cannot stall the daemon; check the file type before reading).
    pub fn open_file(&self, name: &str) -> Result<File, PoolError> {
        let comps = check_name(name)?;
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        let fd = self.resolve(name, &comps, flags)?;
        Ok(File::from(fd))
    }

    /// Removes the directory entry `name` (the pool set file). A final
    /// symbolic link is removed itself, not its target.
    pub fn unlink(&self, name: &str) -> Result<(), PoolError> {
        let (dir, last) = self.open_parent(name)?;
        let c =
            cstring(last).map_err(|source| PoolError::io("unlink", self.display(name), source))?;
        sys_unlinkat(dir.as_fd(), &c).map_err(|source| {
            if source.raw_os_error() == Some(libc::ENOENT) {
                PoolError::NoPoolSet {
                    name: name.to_owned(),
                    dir: self.path.clone(),
                    component: last.to_owned(),
                }
            } else {
                PoolError::io("unlink", self.display(name), source)
            }
        })
    }

    /// The directory holding the entry `name` names, resolved beneath the
    /// pool set directory (`O_PATH`), and that entry's last component
    /// (never empty, `.` or `..`, no `/`). A symbolic link as the last
    /// component is not followed. [`PoolsetDir::unlink`] and the SET_ATTR
    /// intent record of `name` (sessions and `--remove`) work in it; public
    /// so the name-resolution fuzz target (`rpmemd/fuzz`) checks it.
    pub fn open_parent<'n>(&self, name: &'n str) -> Result<(OwnedFd, &'n str), PoolError> {
        let comps = check_name(name)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(PoolError::BadName {
                name: name.to_owned(),
                component: name.to_owned(),
                problem: NameProblem::Empty,
            });
        };
        let dir = if parents.is_empty() {
            self.fd
                .try_clone()
                .map_err(|e| PoolError::io("dup", &self.path, e))?
        } else {
            self.resolve(
                name,
                parents,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )?
        };
        Ok((dir, *last))
    }

    /// The SET_ATTR intent record of the pool set file `name`: in the
    /// directory holding it (resolved beneath the pool set directory, and
    /// held open), named after it with [`super::intent::SUFFIX`].
    pub(super) fn intent_file(&self, name: &str) -> Result<super::intent::IntentFile, PoolError> {
        let (dir, last) = self.open_parent(name)?;
        super::intent::IntentFile::new(dir, last, self.display(name))
    }

    /// Resolves the checked components `comps` of `name` beneath the
    /// directory and opens the result with `flags`.
    fn resolve(&self, name: &str, comps: &[&str], flags: i32) -> Result<OwnedFd, PoolError> {
        let joined = comps.join("/");
        if self.strategy == Strategy::Openat2 {
            let c = cstring(&joined)
                .map_err(|source| PoolError::io("open", self.display(name), source))?;
            match sys_openat2_beneath(self.fd.as_fd(), &c, flags) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
                Err(e) => {
                    // Let the walk name the component at fault; if the walk
                    // succeeds (the tree changed meanwhile), report openat2's
                    // verdict.
                    return match walk(self.fd.as_fd(), comps, flags) {
                        Err(w) => Err(self.walk_error(name, w)),
                        Ok(_) => Err(self.openat2_error(name, e)),
                    };
                }
            }
        }
        walk(self.fd.as_fd(), comps, flags).map_err(|w| self.walk_error(name, w))
    }

    fn openat2_error(&self, name: &str, e: io::Error) -> PoolError {
        match e.raw_os_error() {
            Some(libc::EXDEV) => PoolError::BadName {
                name: name.to_owned(),
                component: name.to_owned(),
                problem: NameProblem::SymlinkEscapes,
            },
            Some(libc::ELOOP) => PoolError::BadName {
                name: name.to_owned(),
                component: name.to_owned(),
                problem: NameProblem::TooManySymlinks,
            },
            Some(libc::ENOENT) => PoolError::NoPoolSet {
                name: name.to_owned(),
                dir: self.path.clone(),
                component: name.to_owned(),
            },
            _ => PoolError::io("open", self.display(name), e),
        }
    }

    fn walk_error(&self, name: &str, w: WalkError) -> PoolError {
        match w {
            WalkError::Problem { component, problem } => PoolError::BadName {
                name: name.to_owned(),
                component,
                problem,
            },
            WalkError::Io { component, source } => {
                if source.raw_os_error() == Some(libc::ENOENT) {
                    PoolError::NoPoolSet {
                        name: name.to_owned(),
                        dir: self.path.clone(),
                        component,
                    }
                } else {
                    PoolError::io("open", self.display(name), source)
                }
            }
        }
    }
}

/// A failure of the walk, with the component concerned.
#[derive(Debug)]
enum WalkError {
    /// The name leaves the directory or loops.
    Problem {
        component: String,
        problem: NameProblem,
    },
    /// A system call failed on `component`.
    Io {
        component: String,
        source: io::Error,
    },
}

/// Resolves `comps` beneath `root` one component at a time and opens the
/// last with `flags | O_NOFOLLOW` (symbolic links have been expanded by
/// then). Every directory is opened with `O_PATH | O_NOFOLLOW` relative to
/// the previous one, so nothing outside `root` is ever reached: an
/// absolute link target or a `..` above `root` is refused.
fn walk(root: BorrowedFd<'_>, comps: &[&str], flags: i32) -> Result<OwnedFd, WalkError> {
    let mut queue: VecDeque<String> = comps.iter().map(|c| (*c).to_owned()).collect();
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0usize;
    while let Some(comp) = queue.pop_front() {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp == ".." {
            // Only a symbolic link target can bring one here.
            if stack.pop().is_none() {
                return Err(WalkError::Problem {
                    component: comp,
                    problem: NameProblem::SymlinkEscapes,
                });
            }
            continue;
        }
        let cur = stack.last().map_or(root, |fd| fd.as_fd());
        let io_err = |source| WalkError::Io {
            component: comp.clone(),
            source,
        };
        let c = cstring(&comp).map_err(io_err)?;
        let st = sys_fstatat_nofollow(cur, &c).map_err(io_err)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            links = links.saturating_add(1);
            if links > MAX_SYMLINKS {
                return Err(WalkError::Problem {
                    component: comp,
                    problem: NameProblem::TooManySymlinks,
                });
            }
            let target = sys_readlinkat(cur, &c).map_err(io_err)?;
            if target.starts_with('/') {
                return Err(WalkError::Problem {
                    component: comp,
                    problem: NameProblem::SymlinkEscapes,
                });
            }
            for t in target.split('/').rev() {
                queue.push_front(t.to_owned());
            }
            continue;
        }
        let rest_is_empty = queue.iter().all(|c| c.is_empty() || c == ".");
        if rest_is_empty {
            return sys_openat(Some(cur), &c, flags | libc::O_NOFOLLOW, 0).map_err(io_err);
        }
        let fd = sys_openat(
            Some(cur),
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(io_err)?;
        stack.push(fd);
    }
    // Only reachable when the name ends in a symbolic link whose target
    // ends in `.` or `..` (`sub/self -> .`): the name is then the directory
    // the walk stands in, which is opened as `openat2` opens it (the pool
    // set directory itself included), so both strategies agree; a caller
    // that wants a file checks the type (found by the `pool_names` fuzz
    // target: the walk refused with `EISDIR` what `openat2` opened).
    let cur = stack.last().map_or(root, |fd| fd.as_fd());
    sys_openat(Some(cur), c".", flags | libc::O_NOFOLLOW, 0).map_err(|source| WalkError::Io {
        component: comps.last().map_or_else(String::new, |c| (*c).to_owned()),
        source,
    })
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat(dir, path, flags, mode)`; `dir == None` means `AT_FDCWD`.
pub(crate) fn sys_openat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: i32,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is a valid NUL-terminated string that outlives the
    // call; `dirfd` is AT_FDCWD or a descriptor borrowed for the call.
    let fd = unsafe {
        libc::openat(
            dirfd,
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, path, {flags, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS})`.
fn sys_openat2_beneath(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: u64::from((flags | libc::O_CLOEXEC) as u32),
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: raw openat2 system call; `path` is NUL-terminated and `how`
    // is a live `struct open_how` whose exact size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: `fd` was just returned by openat2 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(dir, path, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn sys_fstatat_nofollow(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated, `st` points to writable memory of
    // the right size, `dir` is borrowed for the call.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat returned 0, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// `readlinkat(dir, path)` as text.
fn sys_readlinkat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<String> {
    let mut buf = vec![0u8; MAX_NAME_LEN];
    // SAFETY: `buf` is writable for `buf.len()` bytes; `path` is
    // NUL-terminated; `dir` is borrowed for the call.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            path.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|_| io::Error::from_raw_os_error(libc::EILSEQ))
}

/// `fsync` of the directory `dir` (an `O_PATH` descriptor is reopened
/// readable first: `fsync` needs a real open file).
pub(super) fn sys_fsync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let dot = c".";
    let fd = sys_openat(Some(dir), dot, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    File::from(fd).sync_all()
}

/// `unlinkat(dir, path, 0)`.
pub(super) fn sys_unlinkat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; `dir` is borrowed for the call.
    let ret = unsafe { libc::unlinkat(dir.as_raw_fd(), path.as_ptr(), 0) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    #[rstest]
    #[case("", NameProblem::Empty, "")]
    #[case(".", NameProblem::Empty, ".")]
    #[case("./", NameProblem::Empty, "./")]
    #[case("/etc/passwd", NameProblem::Absolute, "/etc/passwd")]
    #[case("../escape.set", NameProblem::DotDot, "..")]
    #[case("a/../b.set", NameProblem::DotDot, "..")]
    #[case("a/..", NameProblem::DotDot, "..")]
    #[case("a\0b", NameProblem::Nul, "a\0b")]
    fn bad_names_are_refused_by_text(
        #[case] name: &str,
        #[case] problem: NameProblem,
        #[case] comp: &str,
    ) {
        match check_name(name) {
            Err(PoolError::BadName {
                problem: p,
                component,
                name: n,
            }) => {
                assert_eq!(p, problem);
                assert_eq!(component, comp);
                assert_eq!(n, name);
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }

    #[test]
    fn overlong_component_is_refused() {
        let long = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert!(matches!(
            check_name(&format!("a/{long}")),
            Err(PoolError::BadName {
                problem: NameProblem::TooLong,
                ..
            })
        ));
    }

    #[rstest]
    #[case("a.set", &["a.set"])]
    #[case("./a.set", &["a.set"])]
    #[case("d//e/./f.set", &["d", "e", "f.set"])]
    #[case("..a/b..", &["..a", "b.."])]
    fn good_names_split_into_components(#[case] name: &str, #[case] want: &[&str]) {
        assert_eq!(check_name(name).unwrap(), want);
    }

    /// root/ (the pool set dir) with files and links, and a file outside.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("a.set"), b"A").unwrap();
        std::fs::write(root.join("sub/b.set"), b"B").unwrap();
        std::fs::write(root.join("sub/deeper/c.set"), b"C").unwrap();
        std::fs::write(t.path().join("outside.set"), b"OUT").unwrap();
        std::fs::create_dir(t.path().join("outdir")).unwrap();
        std::fs::write(t.path().join("outdir/x.set"), b"X").unwrap();
        symlink("a.set", root.join("inside-link.set")).unwrap();
        symlink("../a.set", root.join("sub/up-link.set")).unwrap();
        symlink("deeper", root.join("sub/dirlink")).unwrap();
        symlink("../outside.set", root.join("out-link.set")).unwrap();
        symlink(t.path().join("outside.set"), root.join("abs-link.set")).unwrap();
        symlink("../outdir", root.join("outdir-link")).unwrap();
        symlink("sub/../../outside.set", root.join("sneaky.set")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        (t, root)
    }

    fn read(d: &PoolsetDir, name: &str) -> Result<String, PoolError> {
        let mut s = String::new();
        d.open_file(name)?.read_to_string(&mut s).unwrap();
        Ok(s)
    }

    #[rstest]
    #[case(Strategy::Openat2)]
    #[case(Strategy::Walk)]
    fn links_inside_are_followed(#[case] strategy: Strategy) {
        let (_t, root) = tree();
        let d = PoolsetDir::open_with(&root, strategy).unwrap();
        assert_eq!(read(&d, "a.set").unwrap(), "A");
        assert_eq!(read(&d, "sub/b.set").unwrap(), "B");
        assert_eq!(read(&d, "inside-link.set").unwrap(), "A");
        assert_eq!(read(&d, "sub/up-link.set").unwrap(), "A");
        assert_eq!(read(&d, "sub/dirlink/c.set").unwrap(), "C");
        assert_eq!(read(&d, "./sub//deeper/c.set").unwrap(), "C");
    }

    /// A name ending in a link to `.` or `..` names a directory: both
    /// strategies open it (the walk used to refuse with `EISDIR` what
    /// `openat2` opened; found by the `pool_names` fuzz target); the pool
    /// set directory itself can be reached that way, nothing above it.
    #[rstest]
    #[case(Strategy::Openat2)]
    #[case(Strategy::Walk)]
    fn a_link_to_a_directory_opens_that_directory(#[case] strategy: Strategy) {
        use std::os::unix::fs::MetadataExt;
        let (_t, root) = tree();
        symlink(".", root.join("sub/selflink")).unwrap();
        symlink("..", root.join("sub/rootlink")).unwrap();
        let d = PoolsetDir::open_with(&root, strategy).unwrap();
        for (name, want) in [
            ("sub/selflink", root.join("sub")),
            ("sub/selflink/", root.join("sub")),
            ("sub/rootlink", root.clone()),
            ("sub/dirlink/", root.join("sub/deeper")),
        ] {
            let m = d.open_file(name).unwrap().metadata().unwrap();
            assert!(m.is_dir(), "{name}");
            assert_eq!(m.ino(), std::fs::metadata(&want).unwrap().ino(), "{name}");
        }
    }

    #[rstest]
    #[case(Strategy::Openat2, "out-link.set", "..")]
    #[case(Strategy::Walk, "out-link.set", "..")]
    #[case(Strategy::Openat2, "abs-link.set", "abs-link.set")]
    #[case(Strategy::Walk, "abs-link.set", "abs-link.set")]
    #[case(Strategy::Openat2, "outdir-link/x.set", "..")]
    #[case(Strategy::Walk, "outdir-link/x.set", "..")]
    #[case(Strategy::Openat2, "sneaky.set", "..")]
    #[case(Strategy::Walk, "sneaky.set", "..")]
    fn links_pointing_out_are_refused(
        #[case] strategy: Strategy,
        #[case] name: &str,
        #[case] comp: &str,
    ) {
        let (_t, root) = tree();
        let d = PoolsetDir::open_with(&root, strategy).unwrap();
        match read(&d, name) {
            Err(e @ PoolError::BadName { .. }) => {
                assert_eq!(e.status(), super::super::error::status::BADNAME);
                let PoolError::BadName {
                    problem, component, ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(problem, NameProblem::SymlinkEscapes);
                assert_eq!(component, comp);
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    #[rstest]
    #[case(Strategy::Openat2)]
    #[case(Strategy::Walk)]
    fn loops_and_missing_names_are_reported(#[case] strategy: Strategy) {
        let (_t, root) = tree();
        let d = PoolsetDir::open_with(&root, strategy).unwrap();
        assert!(matches!(
            read(&d, "loop1"),
            Err(PoolError::BadName {
                problem: NameProblem::TooManySymlinks,
                ..
            })
        ));
        match read(&d, "sub/nope/x.set") {
            Err(PoolError::NoPoolSet { component, .. }) => assert_eq!(component, "nope"),
            other => panic!("{other:?}"),
        }
    }

    #[rstest]
    #[case(Strategy::Openat2)]
    #[case(Strategy::Walk)]
    fn unlink_removes_inside_only(#[case] strategy: Strategy) {
        let (t, root) = tree();
        let d = PoolsetDir::open_with(&root, strategy).unwrap();
        d.unlink("sub/b.set").unwrap();
        assert!(!root.join("sub/b.set").exists());
        // A link is removed itself; its target stays.
        d.unlink("out-link.set").unwrap();
        assert!(t.path().join("outside.set").exists());
        assert!(matches!(
            d.unlink("outdir-link/x.set"),
            Err(PoolError::BadName { .. })
        ));
        assert!(t.path().join("outdir/x.set").exists());
        assert!(matches!(
            d.unlink("nope.set"),
            Err(PoolError::NoPoolSet { .. })
        ));
    }
}
