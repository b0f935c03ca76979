//! [`PoolError`]: everything that can go wrong with a pool, and the PMDK
//! status code each failure is answered with.

use std::io;
use std::path::PathBuf;

use rpmem_core::pool_hdr::HdrError;
use rpmem_core::poolset::PoolSetError;
use rpmem_core::wire::oob::Status;

/// The status codes of PMDK's `enum rpmem_err` (`rpmem_common.h`) as the
/// numbers that go on the wire: [`Status`] of `rpmem_core::wire::oob`.
pub mod status {
    use rpmem_core::wire::oob::Status;

    /// `RPMEM_SUCCESS`.
    pub const SUCCESS: u32 = Status::Success.to_u32();
    /// `RPMEM_ERR_BADPROTO`.
    pub const BADPROTO: u32 = Status::BadProto.to_u32();
    /// `RPMEM_ERR_BADNAME`: invalid pool set name.
    pub const BADNAME: u32 = Status::BadName.to_u32();
    /// `RPMEM_ERR_BADSIZE`: the pool is smaller than the size asked for.
    pub const BADSIZE: u32 = Status::BadSize.to_u32();
    /// `RPMEM_ERR_BADNLANES`.
    pub const BADNLANES: u32 = Status::BadNlanes.to_u32();
    /// `RPMEM_ERR_BADPROVIDER`.
    pub const BADPROVIDER: u32 = Status::BadProvider.to_u32();
    /// `RPMEM_ERR_FATAL`: any other failure.
    pub const FATAL: u32 = Status::Fatal.to_u32();
    /// `RPMEM_ERR_FATAL_CONN`.
    pub const FATAL_CONN: u32 = Status::FatalConn.to_u32();
    /// `RPMEM_ERR_BUSY`: the pool is in use by another session.
    pub const BUSY: u32 = Status::Busy.to_u32();
    /// `RPMEM_ERR_EXISTS`: the pool already exists.
    pub const EXISTS: u32 = Status::Exists.to_u32();
    /// `RPMEM_ERR_PROVNOSUP`.
    pub const PROVNOSUP: u32 = Status::ProvNoSup.to_u32();
    /// `RPMEM_ERR_NOEXIST`: the pool set file or a part does not exist.
    pub const NOEXIST: u32 = Status::NoExist.to_u32();
    /// `RPMEM_ERR_NOACCESS`: permission denied.
    pub const NOACCESS: u32 = Status::NoAccess.to_u32();
    /// `RPMEM_ERR_POOL_CFG`: invalid pool set configuration.
    pub const POOL_CFG: u32 = Status::PoolCfg.to_u32();
}

/// The status PMDK's rpmemd answers for a failed pool operation that left
/// `errno` at `errno` (`rpmemd_db_get_status`).
pub fn status_from_errno(errno: i32) -> Status {
    match errno {
        libc::EEXIST => Status::Exists,
        libc::EACCES => Status::NoAccess,
        libc::ENOENT => Status::NoExist,
        libc::EWOULDBLOCK => Status::Busy,
        libc::EBADF => Status::BadName,
        libc::EINVAL => Status::PoolCfg,
        _ => Status::Fatal,
    }
}

/// Why a pool set name from a client was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name contains a NUL byte.
    Nul,
    /// The name starts with `/`.
    Absolute,
    /// A component is `..`.
    DotDot,
    /// A symbolic link on the way points outside the pool set directory
    /// (an absolute target, or one whose `..` climbs above it).
    SymlinkEscapes,
    /// Too many symbolic links on the way (a loop).
    TooManySymlinks,
    /// A component is too long or the name holds too many components.
    TooLong,
    /// The name ends like a SET_ATTR intent record (`.rpmemd-set-attr`).
    Reserved,
}

impl NameProblem {
    /// Words for the message.
    pub fn describe(self) -> &'static str {
        match self {
            NameProblem::Empty => "the name is empty",
            NameProblem::Nul => "the name contains a NUL byte",
            NameProblem::Absolute => {
                "absolute names are not allowed (names are relative to the pool set directory)"
            }
            NameProblem::DotDot => "'..' components are not allowed",
            NameProblem::SymlinkEscapes => "a symbolic link points outside the pool set directory",
            NameProblem::TooManySymlinks => "too many levels of symbolic links",
            NameProblem::TooLong => "the name or one of its components is too long",
            NameProblem::Reserved => {
                "names ending in '.rpmemd-set-attr' are reserved for rpmemd's SET_ATTR intent records"
            }
        }
    }
}

/// Everything that can go wrong when creating, opening, changing, closing
/// or removing a pool. Each variant names the file (and part index) or the
/// field concerned; [`PoolError::status`] gives the PMDK status code.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool set name from the client is not acceptable.
    #[error("pool set name {name:?} refused at component {component:?}: {}", problem.describe())]
    BadName {
        /// The name as given.
        name: String,
        /// The offending component (or the whole name).
        component: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// The pool set directory itself cannot be opened.
    #[error("cannot open the pool set directory {path:?}: {source}")]
    PoolsetDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The pool set file (or a directory on the way to it) does not exist.
    #[error("pool set file {name:?} does not exist in the pool set directory {dir:?} (missing component {component:?})")]
    NoPoolSet {
        /// The pool set name.
        name: String,
        /// The pool set directory.
        dir: PathBuf,
        /// The first component that does not exist.
        component: String,
    },
    /// A system call on a file failed.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// What was being done (`"open"`, `"posix_fallocate"`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The pool set file does not parse.
    #[error("pool set file {path:?}: {source}")]
    Parse {
        /// The pool set file.
        path: PathBuf,
        /// Line and reason.
        source: PoolSetError,
    },
    /// The pool set file names a remote replica: a remote pool cannot have
    /// replicas of its own.
    #[error("pool set file {path:?}: line {line}: a remote pool set cannot have a remote replica")]
    RemoteReplica {
        /// The pool set file.
        path: PathBuf,
        /// The line of the `REPLICA <node> <descriptor>`.
        line: u32,
    },
    /// The pool set file has more than one replica.
    #[error(
        "pool set file {path:?} has {count} replicas, a remote pool set must have exactly one"
    )]
    Replicas {
        /// The pool set file.
        path: PathBuf,
        /// Number of replicas.
        count: usize,
    },
    /// A part is smaller than `RPMEM_MIN_PART`.
    #[error("part {part} ({path:?}) is {size} bytes, the minimum part size is {min} bytes")]
    PartTooSmall {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// `RPMEM_MIN_PART`.
        min: u64,
    },
    /// The pool is smaller than `RPMEM_MIN_POOL`.
    #[error(
        "pool set {path:?} gives a pool of {size} bytes, the minimum pool size is {min} bytes"
    )]
    PoolTooSmall {
        /// The pool set file.
        path: PathBuf,
        /// The usable pool size.
        size: u64,
        /// `RPMEM_MIN_POOL`.
        min: u64,
    },
    /// The client asked for more bytes than the pool has.
    #[error("the pool has {pool_size} bytes, the client asked for {requested}")]
    RequestTooBig {
        /// Size of the pool.
        pool_size: u64,
        /// Size requested.
        requested: u64,
    },
    /// An existing part's size differs from the pool set file.
    #[error("part {part} ({path:?}) is {actual} bytes, the pool set file says {expected}")]
    PartSizeMismatch {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
        /// Size in the pool set file.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// An `AUTO`-sized part is not a Device DAX.
    #[error("part {part} ({path:?}) has size AUTO, which only a Device DAX can have")]
    AutoSizeNotDevDax {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
    },
    /// A part is neither a regular file, a directory nor a Device DAX.
    #[error("part {part} ({path:?}) is not a regular file, a directory or a Device DAX")]
    UnsupportedFileType {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
    },
    /// Some parts are Device DAX and some are not, or directories and files
    /// are mixed, or Device DAX parts with headers have an alignment other
    /// than 4 KiB.
    #[error("pool set file {path:?}: {reason}")]
    Layout {
        /// The pool set file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two parts of the pool set name the same file.
    #[error("parts {first} and {second} are the same file {path:?}")]
    DuplicatePart {
        /// Index of the first part.
        first: usize,
        /// Index of the part that repeats it.
        second: usize,
        /// The file.
        path: PathBuf,
    },
    /// A directory of a directory pool set holds part files that do not
    /// form the sequence `000000.pmem`, `000001.pmem`, ...
    #[error("directory {path:?}: {reason}")]
    DirectoryParts {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pool set file has `OPTION NOHDRS` but the client gave
    /// attributes, or headers but no attributes.
    #[error("pool set file {path:?}: {reason}")]
    Attributes {
        /// The pool set file.
        path: PathBuf,
        /// What does not match.
        reason: &'static str,
    },
    /// The client's `SINGLEHDR` incompat feature and the pool set's
    /// `OPTION SINGLEHDR` disagree.
    #[error(
        "pool set file {path:?}: OPTION SINGLEHDR is {}, but the incompat features {incompat:#x} {} SINGLEHDR",
        if *options_single_hdr { "set" } else { "not set" },
        if *options_single_hdr { "lack" } else { "have" }
    )]
    SingleHdrMismatch {
        /// The pool set file.
        path: PathBuf,
        /// Whether the file has `OPTION SINGLEHDR`.
        options_single_hdr: bool,
        /// The client's incompat features.
        incompat: u32,
    },
    /// A part to be created already holds data.
    #[error("part {part} ({path:?}) already holds data (byte {offset} of its first page is {value:#04x}): the pool exists")]
    PartExists {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
        /// First non-zero byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// A part is locked by another session.
    #[error("part {part} ({path:?}) is in use by another process (flock: {source})")]
    Busy {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
        /// The `flock` error.
        source: io::Error,
    },
    /// A part header is invalid.
    #[error("part {part} ({path:?}): {source}")]
    Header {
        /// Index of the part.
        part: usize,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        source: HdrError,
    },
    /// The headers of the parts do not agree with each other.
    #[error("pool set {path:?}: {source}")]
    Headers {
        /// The pool set file.
        path: PathBuf,
        /// What is wrong.
        source: HdrError,
    },
    /// Mapping a part failed.
    #[error("mapping part {part} ({path:?}) failed: {source}")]
    Map {
        /// Index of the part (`usize::MAX` for the address space reservation).
        part: usize,
        /// Its path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A SET_ATTR intent record left by an interrupted SET_ATTR does not
    /// fit the pool: rpmemd neither applies nor discards it.
    #[error("the SET_ATTR intent record {path:?} does not fit the pool: {reason}; it was left as it is (remove it by hand if the pool was re-created or changed since)")]
    Intent {
        /// The record.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Several things failed while removing a pool; the first is kept.
    #[error("removing pool set {name:?}: {first} (and {more} more failure(s))")]
    Remove {
        /// The pool set name.
        name: String,
        /// The first failure.
        first: Box<PoolError>,
        /// How many more failures there were.
        more: usize,
    },
}

impl PoolError {
    /// Builds [`PoolError::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> PoolError {
        PoolError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The PMDK status (`RPMEM_ERR_*`) a client is answered with, as PMDK's
    /// `rpmemd_db_get_status` would map the `errno` PMDK's `rpmemd_db`
    /// leaves for the same failure.
    pub fn rpmem_status(&self) -> Status {
        match self {
            PoolError::BadName { .. } => Status::BadName,
            PoolError::NoPoolSet { .. } => Status::NoExist,
            PoolError::PoolsetDir { source, .. }
            | PoolError::Io { source, .. }
            | PoolError::Map { source, .. } => source
                .raw_os_error()
                .map_or(Status::Fatal, status_from_errno),
            PoolError::Parse { .. }
            | PoolError::RemoteReplica { .. }
            | PoolError::Replicas { .. }
            | PoolError::PartTooSmall { .. }
            | PoolError::PoolTooSmall { .. }
            | PoolError::PartSizeMismatch { .. }
            | PoolError::AutoSizeNotDevDax { .. }
            | PoolError::UnsupportedFileType { .. }
            | PoolError::Layout { .. }
            | PoolError::DuplicatePart { .. }
            | PoolError::DirectoryParts { .. }
            | PoolError::Attributes { .. }
            | PoolError::SingleHdrMismatch { .. }
            | PoolError::Header { .. }
            | PoolError::Headers { .. }
            | PoolError::Intent { .. } => Status::PoolCfg,
            PoolError::RequestTooBig { .. } => Status::BadSize,
            PoolError::PartExists { .. } => Status::Exists,
            PoolError::Busy { .. } => Status::Busy,
            PoolError::Remove { first, .. } => first.rpmem_status(),
        }
    }

    /// [`PoolError::rpmem_status`] as the wire number (see [`status`]).
    pub fn status(&self) -> u32 {
        self.rpmem_status().to_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(libc::EEXIST, status::EXISTS)]
    #[case(libc::EACCES, status::NOACCESS)]
    #[case(libc::ENOENT, status::NOEXIST)]
    #[case(libc::EWOULDBLOCK, status::BUSY)]
    #[case(libc::EBADF, status::BADNAME)]
    #[case(libc::EINVAL, status::POOL_CFG)]
    #[case(libc::EIO, status::FATAL)]
    #[case(libc::ENOSPC, status::FATAL)]
    fn errno_maps_like_rpmemd_db_get_status(#[case] errno: i32, #[case] want: u32) {
        assert_eq!(status_from_errno(errno).to_u32(), want);
        let e = PoolError::io("open", "/x", io::Error::from_raw_os_error(errno));
        assert_eq!(e.status(), want);
    }

    #[test]
    fn status_values_are_pmdks() {
        let all = [
            status::SUCCESS,
            status::BADPROTO,
            status::BADNAME,
            status::BADSIZE,
            status::BADNLANES,
            status::BADPROVIDER,
            status::FATAL,
            status::FATAL_CONN,
            status::BUSY,
            status::EXISTS,
            status::PROVNOSUP,
            status::NOEXIST,
            status::NOACCESS,
            status::POOL_CFG,
        ];
        for (i, s) in all.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn messages_name_the_file_and_part() {
        let e = PoolError::PartTooSmall {
            part: 1,
            path: "/pm/p1".into(),
            size: 4096,
            min: 2 << 20,
        };
        let m = e.to_string();
        assert!(
            m.contains("part 1") && m.contains("/pm/p1") && m.contains("2097152"),
            "{m}"
        );
        let e = PoolError::BadName {
            name: "a/../b".into(),
            component: "..".into(),
            problem: NameProblem::DotDot,
        };
        assert!(e.to_string().contains("\"..\""), "{e}");
        assert_eq!(e.status(), status::BADNAME);
    }
}
