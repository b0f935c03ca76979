//! The pool set file grammar of `poolset(5)`.
//!
//! [`PoolSet::parse`] reads the bytes of a pool set file the way PMDK 1.12.1's
//! `util_poolset_parse` does (same accepted files, same error reasons, same
//! line numbers), without allocating and without touching the file system,
//! and is stricter than PMDK where PMDK's result is unsafe or contradicts
//! its own manual (see `docs/poolset.md`).
//!
//! # Grammar
//!
//! ```text
//! file      = "PMEMPOOLSET" EOL { line }
//! line      = ( blank | comment | option | replica | remote | part ) EOL
//! comment   = "#" anything               ; also after a part, replica or option
//! option    = "OPTION" 1*( WS ( "SINGLEHDR" | "NOHDRS" ) )
//! replica   = "REPLICA"                  ; starts a local replica
//! remote    = "REPLICA" WS node WS descriptor     ; descriptor not starting with '/'
//! part      = [WS] size WS path [WS]     ; path starting with '/'
//! size      = "AUTO" | ["+"] digits [suffix]
//! suffix    = B K M G T P KiB MiB GiB TiB PiB kB MB GB TB PB
//! WS        = 1*( " " | TAB )
//! EOL       = LF | CR LF | end of file (not for the first line)
//! ```
//!
//! A blank line is one with nothing before its end; a line of spaces is an
//! error, as in PMDK. `#` starts a comment anywhere. The first replica is
//! local and starts right after `PMEMPOOLSET`; every local replica needs at
//! least one part; a remote replica has no part lines.
//!
//! # Sizes
//!
//! Every part is rounded down to a multiple of [`PAGE_SIZE`]. A replica's
//! usable size is the sum of its rounded part sizes minus one
//! [`POOL_HDR_SIZE`] for every header but the first (the first part's header
//! is part of the pool). Each part has a header, unless `OPTION SINGLEHDR`
//! (one header per replica) or `OPTION NOHDRS` (none). A remote replica counts
//! as one part of [`REMOTE_REPLICA_SIZE`] bytes. The pool size is the
//! smallest usable size of the local replicas.

use core::fmt;

mod emit;
mod size;
#[cfg(all(test, feature = "std"))]
mod tests;

pub use emit::emit;
pub use size::{parse_size, CanonicalSize, SizeError, SUFFIXES};

/// The literal first line of every pool set file (`POOLSET_HDR_SIG`).
pub const SIGNATURE: &str = "PMEMPOOLSET";
/// Most replicas (local and remote together) one pool set may have.
pub const MAX_REPLICAS: usize = 64;
/// Most parts one local replica may have.
pub const MAX_PARTS: u32 = 1024;
/// Mapping granularity (`Mmap_align` on Linux): part sizes are rounded down
/// to a multiple of it.
pub const PAGE_SIZE: u64 = 4096;
/// Size of the pool header each part (or only the first) starts with.
pub const POOL_HDR_SIZE: u64 = 4096;
/// Size PMDK gives the single fake part of a remote replica: room for the
/// pool header and the pool descriptor.
pub const REMOTE_REPLICA_SIZE: u64 = 2 * POOL_HDR_SIZE;
/// Smallest part size accepted: one page. PMDK rounds parts down to whole
/// pages, so a smaller part would hold nothing (not even its header).
pub const MIN_PART_SIZE: u64 = PAGE_SIZE;

const OPTION_SIG: &[u8] = b"OPTION";
const REPLICA_SIG: &[u8] = b"REPLICA";
const AUTO: &str = "AUTO";

/// Pool set options (`OPTION` lines). They apply to the whole file, wherever
/// they appear in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// `SINGLEHDR`: only the first part of each replica has a header.
    pub single_hdr: bool,
    /// `NOHDRS`: no part has a header (remote pool sets only).
    pub no_hdrs: bool,
}

impl Options {
    /// PMDK's `OPTION_SINGLEHDR` bit.
    pub const SINGLEHDR_BIT: u32 = 0x1;
    /// PMDK's `OPTION_NOHDRS` bit.
    pub const NOHDRS_BIT: u32 = 0x2;

    /// The options as PMDK's `set->options` bit mask.
    pub fn bits(self) -> u32 {
        let mut bits = 0;
        if self.single_hdr {
            bits |= Self::SINGLEHDR_BIT;
        }
        if self.no_hdrs {
            bits |= Self::NOHDRS_BIT;
        }
        bits
    }

    /// Number of headers in a replica of `nparts` parts (`rep->nhdrs`).
    /// `SINGLEHDR` wins over `NOHDRS`, as in PMDK (a parsed set never has both).
    pub fn headers(self, nparts: u32) -> u32 {
        if self.single_hdr {
            1
        } else if self.no_hdrs {
            0
        } else {
            nparts
        }
    }

    fn union(self, other: Options) -> Options {
        Options {
            single_hdr: self.single_hdr || other.single_hdr,
            no_hdrs: self.no_hdrs || other.no_hdrs,
        }
    }
}

/// The size column of a part line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartSize {
    /// A size in bytes (never zero, never below [`MIN_PART_SIZE`]).
    Fixed(u64),
    /// `AUTO`: the size of the Device DAX the path names, found out when the
    /// pool is created or opened.
    Auto,
}

impl PartSize {
    /// The size in bytes, `None` for `AUTO`.
    pub fn bytes(self) -> Option<u64> {
        match self {
            PartSize::Fixed(n) => Some(n),
            PartSize::Auto => None,
        }
    }
}

impl fmt::Display for PartSize {
    /// `AUTO`, or the size with the largest exact binary suffix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PartSize::Fixed(n) => CanonicalSize(n).fmt(f),
            PartSize::Auto => f.write_str(AUTO),
        }
    }
}

/// One part line of a local replica.
///
/// The text alone cannot tell whether the path names a regular file, a
/// directory (a directory pool set) or a Device DAX: only `stat` can, and
/// that is the daemon's job. What the text does tell is recorded by
/// [`Part::must_be_device_dax`] and [`Part::must_be_directory`].
///
/// Equality compares size and path, not the line number.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    size: PartSize,
    path: &'a str,
    line: u32,
}

impl<'a> Part<'a> {
    /// The size column.
    pub fn size(&self) -> PartSize {
        self.size
    }

    /// The absolute path (starts with `/`; no blanks, no `#`, no control
    /// characters).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The 1-based line of the file this part was read from.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The size rounded down to a multiple of [`PAGE_SIZE`]; `None` for `AUTO`.
    pub fn aligned_size(&self) -> Option<u64> {
        self.size.bytes().map(align_down)
    }

    /// True for an `AUTO` size: PMDK resolves `AUTO` only for a Device DAX
    /// (a regular file or a directory fails with "cannot determine size of a
    /// part").
    pub fn must_be_device_dax(&self) -> bool {
        self.size == PartSize::Auto
    }

    /// True when the path ends in `/`: it can only name a directory.
    pub fn must_be_directory(&self) -> bool {
        self.path.ends_with('/')
    }
}

impl PartialEq for Part<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.path == other.path
    }
}

impl Eq for Part<'_> {}

/// The target of a remote replica (`REPLICA <node> <descriptor>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteReplica<'a> {
    node: &'a str,
    descriptor: &'a str,
}

impl<'a> RemoteReplica<'a> {
    /// The node address, `[user@]host` as `ssh` takes it (not checked here).
    pub fn node(&self) -> &'a str {
        self.node
    }

    /// The remote pool set descriptor: a path relative to the target's pool
    /// set directory (does not start with `/`; `..` is not checked here).
    pub fn descriptor(&self) -> &'a str {
        self.descriptor
    }
}

/// What the parser keeps per replica.
#[derive(Clone, Copy, Debug)]
enum Rec<'a> {
    Local {
        /// Line of `PMEMPOOLSET` (replica 0) or of `REPLICA`.
        line: u32,
        /// Byte offset of the first line after that one.
        body: usize,
        /// Line number of that first line.
        body_line: u32,
        nparts: u32,
        /// Sum of the page-aligned sizes of the fixed-size parts.
        aligned_sum: u64,
        /// Number of `AUTO` parts.
        nauto: u32,
    },
    Remote {
        line: u32,
        remote: RemoteReplica<'a>,
    },
}

/// A replica of a parsed pool set (a cheap view; copy it freely).
///
/// Equality compares the kind, the remote target or the parts, not line
/// numbers or indexes.
#[derive(Clone, Copy)]
pub struct Replica<'a> {
    input: &'a [u8],
    options: Options,
    index: usize,
    rec: Rec<'a>,
}

impl<'a> Replica<'a> {
    /// Position of this replica in the set (0 is the master replica).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The 1-based line that starts this replica (1, the `PMEMPOOLSET` line,
    /// for replica 0).
    pub fn line(&self) -> u32 {
        match self.rec {
            Rec::Local { line, .. } | Rec::Remote { line, .. } => line,
        }
    }

    /// True for a remote replica.
    pub fn is_remote(&self) -> bool {
        matches!(self.rec, Rec::Remote { .. })
    }

    /// The remote target, `None` for a local replica.
    pub fn remote(&self) -> Option<RemoteReplica<'a>> {
        match self.rec {
            Rec::Remote { remote, .. } => Some(remote),
            Rec::Local { .. } => None,
        }
    }

    /// Number of parts as PMDK counts them (`rep->nparts`): the part lines
    /// of a local replica, 1 for a remote replica (its fake header part).
    pub fn nparts(&self) -> u32 {
        match self.rec {
            Rec::Local { nparts, .. } => nparts,
            Rec::Remote { .. } => 1,
        }
    }

    /// Number of part headers (`rep->nhdrs`), which depends on the options.
    pub fn nhdrs(&self) -> u32 {
        self.options.headers(self.nparts())
    }

    /// True when at least one part has an `AUTO` size.
    pub fn has_auto_parts(&self) -> bool {
        matches!(self.rec, Rec::Local { nauto, .. } if nauto > 0)
    }

    /// The part lines of a local replica, in file order (none for a remote
    /// replica).
    pub fn parts(&self) -> Parts<'a> {
        match self.rec {
            Rec::Local {
                body,
                body_line,
                nparts,
                ..
            } => Parts {
                lines: Lines {
                    input: self.input,
                    pos: body,
                    number: body_line.saturating_sub(1),
                },
                remaining: nparts,
            },
            Rec::Remote { .. } => Parts {
                lines: Lines {
                    input: &[],
                    pos: 0,
                    number: 0,
                },
                remaining: 0,
            },
        }
    }

    /// The usable size in bytes (`rep->repsize`); `None` if a part is `AUTO`.
    pub fn size(&self) -> Option<u64> {
        match self.rec {
            Rec::Local {
                aligned_sum, nauto, ..
            } => {
                if nauto > 0 {
                    None
                } else {
                    usable_size(aligned_sum, self.nhdrs())
                }
            }
            Rec::Remote { .. } => usable_size(REMOTE_REPLICA_SIZE, self.nhdrs()),
        }
    }

    /// The usable size once the `AUTO` parts are known: `resolve_auto` is
    /// called for each `AUTO` part and returns its size in bytes. `None` if
    /// it returns `None` or the sum does not fit in 64 bits.
    pub fn size_with<F>(&self, mut resolve_auto: F) -> Option<u64>
    where
        F: FnMut(&Part<'a>) -> Option<u64>,
    {
        if self.is_remote() {
            return self.size();
        }
        let mut sum: u64 = 0;
        for part in self.parts() {
            let bytes = match part.size {
                PartSize::Fixed(n) => n,
                PartSize::Auto => resolve_auto(&part)?,
            };
            sum = sum.checked_add(align_down(bytes))?;
        }
        usable_size(sum, self.nhdrs())
    }
}

impl PartialEq for Replica<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.remote(), other.remote()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.nparts() == other.nparts() && self.parts().eq(other.parts()),
            _ => false,
        }
    }
}

impl Eq for Replica<'_> {}

impl fmt::Debug for Replica<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Replica");
        d.field("index", &self.index).field("line", &self.line());
        match self.remote() {
            Some(remote) => d.field("remote", &remote),
            None => d.field("parts", &DebugIter(self.parts())),
        };
        d.finish()
    }
}

/// Iterator over the parts of a local replica ([`Replica::parts`]).
#[derive(Clone, Debug)]
pub struct Parts<'a> {
    lines: Lines<'a>,
    remaining: u32,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Part<'a>;

    fn next(&mut self) -> Option<Part<'a>> {
        while self.remaining > 0 {
            let raw = self.lines.next()?;
            let Some(text) = significant(raw.text) else {
                continue;
            };
            match classify(text) {
                Ok(Line::Part { size, path }) => {
                    self.remaining = self.remaining.saturating_sub(1);
                    return Some(Part {
                        size,
                        path,
                        line: raw.number,
                    });
                }
                Ok(Line::Options(_)) => {}
                // The input was validated by `PoolSet::parse`, so a replica
                // body holds only parts, options, comments and blank lines.
                Ok(Line::LocalReplica | Line::RemoteReplica(_)) | Err(_) => {
                    self.remaining = 0;
                }
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Parts<'_> {}
impl core::iter::FusedIterator for Parts<'_> {}

/// A parsed pool set file, borrowing the file's bytes.
///
/// Built only by [`PoolSet::parse`], so every `PoolSet` is valid: replica 0
/// is local, every local replica has 1 to [`MAX_PARTS`] parts, there are at
/// most [`MAX_REPLICAS`] replicas, and no replica's size overflows.
///
/// Equality compares options and replicas (not line numbers), so
/// `PoolSet::parse(emit(x)) == x`.
#[derive(Clone)]
pub struct PoolSet<'a> {
    input: &'a [u8],
    options: Options,
    replicas: heapless::Vec<Rec<'a>, MAX_REPLICAS>,
}

impl<'a> PoolSet<'a> {
    /// Parses the bytes of a pool set file.
    ///
    /// Errors carry the 1-based line PMDK reports; errors found at the end
    /// of the file (no parts) name the line after the last one.
    pub fn parse(input: &'a [u8]) -> Result<PoolSet<'a>, PoolSetError> {
        Parser::new(input).run()
    }

    /// The options (`OPTION` lines) of the file.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Number of replicas, local and remote (at least 1).
    pub fn nreplicas(&self) -> usize {
        self.replicas.len()
    }

    /// Replica `index`, `None` past the last one.
    pub fn replica(&self, index: usize) -> Option<Replica<'a>> {
        self.replicas.get(index).map(|&rec| Replica {
            input: self.input,
            options: self.options,
            index,
            rec,
        })
    }

    /// All replicas in file order; replica 0 is the master (always local).
    pub fn replicas(&self) -> Replicas<'_, 'a> {
        Replicas { set: self, next: 0 }
    }

    /// True when at least one replica is remote (`set->remote`).
    pub fn has_remote(&self) -> bool {
        self.replicas
            .iter()
            .any(|rec| matches!(rec, Rec::Remote { .. }))
    }

    /// The pool size (`set->poolsize`): the smallest usable size of the
    /// local replicas. `None` if a local replica has an `AUTO` part.
    pub fn pool_size(&self) -> Option<u64> {
        self.pool_size_with(|_| None)
    }

    /// The pool size once the `AUTO` parts are known; see
    /// [`Replica::size_with`].
    pub fn pool_size_with<F>(&self, mut resolve_auto: F) -> Option<u64>
    where
        F: FnMut(&Part<'a>) -> Option<u64>,
    {
        let mut min: Option<u64> = None;
        for replica in self.replicas().filter(|r| !r.is_remote()) {
            let size = replica.size_with(&mut resolve_auto)?;
            min = Some(min.map_or(size, |m| m.min(size)));
        }
        min
    }
}

/// Iterator over the replicas of a pool set ([`PoolSet::replicas`]).
#[derive(Clone, Debug)]
pub struct Replicas<'s, 'a> {
    set: &'s PoolSet<'a>,
    next: usize,
}

impl<'a> Iterator for Replicas<'_, 'a> {
    type Item = Replica<'a>;

    fn next(&mut self) -> Option<Replica<'a>> {
        let replica = self.set.replica(self.next)?;
        self.next = self.next.saturating_add(1);
        Some(replica)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.set.nreplicas().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Replicas<'_, '_> {}
impl core::iter::FusedIterator for Replicas<'_, '_> {}

impl PartialEq for PoolSet<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options
            && self.nreplicas() == other.nreplicas()
            && self.replicas().eq(other.replicas())
    }
}

impl Eq for PoolSet<'_> {}

impl fmt::Debug for PoolSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSet")
            .field("options", &self.options)
            .field("replicas", &DebugIter(self.replicas()))
            .finish()
    }
}

impl fmt::Display for PoolSet<'_> {
    /// The canonical pool set file; see [`emit`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        emit(self, f)
    }
}

/// A pool set file error and the 1-based line it was found on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PoolSetError {
    /// 1-based line number, as PMDK counts it.
    pub line: u32,
    /// What is wrong on that line.
    pub kind: PoolSetErrorKind,
}

/// What is wrong with a pool set file. Texts that PMDK has are PMDK's
/// (`parser_errstr` in `set.c`); the rest are this parser's stricter rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PoolSetErrorKind {
    /// The first line is not `PMEMPOOLSET` followed by a line end.
    #[error("the first line must be exactly 'PMEMPOOLSET'")]
    Signature,
    /// The master replica (replica 0) has no part.
    #[error("no pool set parts")]
    NoPoolSetParts,
    /// A local replica other than the master has no part.
    #[error("no replica parts")]
    NoReplicaParts,
    /// A part line without both a size and a path, or with more tokens; or
    /// a remote replica line with more than two tokens.
    #[error("invalid token found in the current line")]
    InvalidToken,
    /// A line starting with `REPLICA` followed by neither an end nor a blank.
    #[error("exactly 'REPLICA' expected")]
    ReplicaExpected,
    /// `REPLICA` followed by fewer than two tokens.
    #[error("address of remote node and descriptor of remote pool set expected")]
    RemoteReplicaExpected,
    /// The size is neither `AUTO` nor digits with an optional known suffix.
    #[error("incorrect format of size")]
    WrongSize,
    /// The size is zero (PMDK rejects it with the same text).
    #[error("incorrect format of size (a part size must not be zero)")]
    ZeroSize,
    /// Stricter than PMDK: a negative size such as `-1G`.
    #[error("incorrect format of size (negative sizes are not allowed)")]
    NegativeSize,
    /// Stricter than PMDK: the size does not fit in 64 bits.
    #[error("incorrect format of size (the size does not fit in 64 bits)")]
    SizeOverflow,
    /// Stricter than PMDK: the part is smaller than one page.
    #[error("part size {size} is smaller than the minimum of 4096 bytes (one page)")]
    PartTooSmall {
        /// The size given, in bytes.
        size: u64,
    },
    /// `AUTO` with a path ending in `/`: `AUTO` needs a Device DAX, such a
    /// path can only be a directory (PMDK fails the same line with this text).
    #[error("cannot determine size of a part (AUTO needs a Device DAX, but a path ending in '/' names a directory)")]
    AutoSizeOnDirectory,
    /// Stricter than PMDK: the sum of the replica's part sizes overflows.
    #[error("the sum of this replica's part sizes does not fit in 64 bits")]
    ReplicaSizeOverflow,
    /// The path of a part does not start with `/`.
    #[error("incorrect path (must be an absolute one)")]
    AbsolutePathExpected,
    /// The descriptor of a remote replica starts with `/`.
    #[error("incorrect descriptor (must be a relative path)")]
    RelativePathExpected,
    /// A part line after a remote replica.
    #[error("unexpected parts for remote replica")]
    UnexpectedRemoteParts,
    /// An `OPTION` line naming something other than `SINGLEHDR` / `NOHDRS`
    /// (including `OPTION` glued to a name, such as `OPTIONSINGLEHDR`).
    #[error("unknown option")]
    UnknownOption,
    /// An `OPTION` line without any option name.
    #[error("missing option name")]
    MissingOptionName,
    /// Stricter than PMDK: `SINGLEHDR` and `NOHDRS` both given (the manual
    /// says they are mutually exclusive; PMDK only logs it).
    #[error("options SINGLEHDR and NOHDRS are mutually exclusive")]
    ConflictingOptions,
    /// More than [`MAX_REPLICAS`] replicas.
    #[error("too many replicas: at most {} are supported", MAX_REPLICAS)]
    TooManyReplicas,
    /// More than [`MAX_PARTS`] parts in one replica.
    #[error("too many parts in one replica: at most {} are supported", MAX_PARTS)]
    TooManyParts,
    /// The line (before any comment) is not valid UTF-8.
    #[error("the line is not valid UTF-8 (bad byte at column {column})")]
    NotUtf8 {
        /// 1-based byte column of the first bad byte.
        column: u32,
    },
    /// The line (before any comment) holds a control character other than
    /// TAB (a CR is allowed only right before the LF).
    #[error("control character 0x{byte:02x} at column {column}")]
    ControlCharacter {
        /// The byte.
        byte: u8,
        /// 1-based byte column.
        column: u32,
    },
}

/// Rounds down to a multiple of [`PAGE_SIZE`].
fn align_down(bytes: u64) -> u64 {
    bytes & !(PAGE_SIZE - 1)
}

/// `repsize`: the aligned sum minus one header for every header but the
/// first. `None` only if the headers do not fit (impossible for a parsed set).
fn usable_size(aligned_sum: u64, nhdrs: u32) -> Option<u64> {
    let extra_headers = u64::from(nhdrs.saturating_sub(1)).checked_mul(POOL_HDR_SIZE)?;
    aligned_sum.checked_sub(extra_headers)
}

/// Debug-prints the items of an iterator as a list.
struct DebugIter<I>(I);

impl<I> fmt::Debug for DebugIter<I>
where
    I: Iterator + Clone,
    I::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

/// One physical line.
#[derive(Clone, Copy, Debug)]
struct RawLine<'a> {
    /// 1-based line number.
    number: u32,
    /// The bytes without the LF and without a CR right before it.
    text: &'a [u8],
    /// False for a last line that ends at the end of the input.
    terminated: bool,
}

/// Splits the input into lines at LF, dropping a CR right before the LF
/// (PMDK's `util_fgets` CRLF conversion).
#[derive(Clone, Debug)]
struct Lines<'a> {
    input: &'a [u8],
    /// Byte offset of the next line.
    pos: usize,
    /// Number of the line returned last (0 before the first).
    number: u32,
}

impl<'a> Lines<'a> {
    fn new(input: &'a [u8]) -> Self {
        Lines {
            input,
            pos: 0,
            number: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = RawLine<'a>;

    fn next(&mut self) -> Option<RawLine<'a>> {
        let rest = self.input.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (text, terminated, consumed) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i)?, true, i.saturating_add(1)),
            None => (rest, false, rest.len()),
        };
        let text = match text.strip_suffix(b"\r") {
            Some(stripped) if terminated => stripped,
            _ => text,
        };
        self.pos = self.pos.saturating_add(consumed);
        self.number = self.number.saturating_add(1);
        Some(RawLine {
            number: self.number,
            text,
            terminated,
        })
    }
}

/// The part of a line that matters: `None` for a blank line or a comment
/// line, else everything before the first `#` (possibly only blanks, which
/// is an error later, as in PMDK).
fn significant(text: &[u8]) -> Option<&[u8]> {
    if text.is_empty() {
        return None;
    }
    let cut = match text.iter().position(|&b| b == b'#') {
        Some(i) => text.get(..i)?,
        None => text,
    };
    if cut.is_empty() {
        None
    } else {
        Some(cut)
    }
}

/// Checks a line's significant bytes for control characters and UTF-8.
fn check_text(bytes: &[u8]) -> Result<&str, PoolSetErrorKind> {
    let column = |i: usize| u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1);
    let control = bytes
        .iter()
        .position(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
    let utf8 = core::str::from_utf8(bytes);
    match (control, utf8) {
        (Some(i), Err(e)) if e.valid_up_to() < i => Err(PoolSetErrorKind::NotUtf8 {
            column: column(e.valid_up_to()),
        }),
        (Some(i), _) => Err(PoolSetErrorKind::ControlCharacter {
            byte: bytes.get(i).copied().unwrap_or(0),
            column: column(i),
        }),
        (None, Err(e)) => Err(PoolSetErrorKind::NotUtf8 {
            column: column(e.valid_up_to()),
        }),
        (None, Ok(s)) => Ok(s),
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The blank-separated tokens of a line (PMDK's `strtok_r(" \t")`).
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_blank).filter(|t| !t.is_empty())
}

/// A significant line, classified.
#[derive(Clone, Copy, Debug)]
enum Line<'a> {
    Options(Options),
    LocalReplica,
    RemoteReplica(RemoteReplica<'a>),
    Part { size: PartSize, path: &'a str },
}

fn starts_with_keyword(bytes: &[u8]) -> bool {
    bytes.starts_with(OPTION_SIG) || bytes.starts_with(REPLICA_SIG)
}

/// Classifies a significant line and checks it the way PMDK does, in
/// PMDK's order of checks.
fn classify(bytes: &[u8]) -> Result<Line<'_>, PoolSetErrorKind> {
    let s = check_text(bytes)?;
    if let Some(rest) = s.strip_prefix("OPTION") {
        return parse_options(rest).map(Line::Options);
    }
    if let Some(rest) = s.strip_prefix("REPLICA") {
        return parse_replica(rest);
    }
    parse_part(s)
}

fn parse_options(rest: &str) -> Result<Options, PoolSetErrorKind> {
    // Stricter than PMDK, which compares only the first six bytes and so
    // takes `OPTIONSINGLEHDR` as `OPTION SINGLEHDR`.
    if rest.chars().next().is_some_and(|c| !is_blank(c)) {
        return Err(PoolSetErrorKind::UnknownOption);
    }
    let mut options = Options::default();
    let mut count = 0u32;
    for name in tokens(rest) {
        match name {
            "SINGLEHDR" => options.single_hdr = true,
            "NOHDRS" => options.no_hdrs = true,
            _ => return Err(PoolSetErrorKind::UnknownOption),
        }
        count = count.saturating_add(1);
    }
    if count == 0 {
        return Err(PoolSetErrorKind::MissingOptionName);
    }
    Ok(options)
}

fn parse_replica(rest: &str) -> Result<Line<'_>, PoolSetErrorKind> {
    let Some(first) = rest.chars().next() else {
        return Ok(Line::LocalReplica);
    };
    if !is_blank(first) {
        return Err(PoolSetErrorKind::ReplicaExpected);
    }
    let mut toks = tokens(rest);
    let (Some(node), Some(descriptor)) = (toks.next(), toks.next()) else {
        return Err(PoolSetErrorKind::RemoteReplicaExpected);
    };
    if toks.next().is_some() {
        return Err(PoolSetErrorKind::InvalidToken);
    }
    if descriptor.starts_with('/') {
        return Err(PoolSetErrorKind::RelativePathExpected);
    }
    Ok(Line::RemoteReplica(RemoteReplica { node, descriptor }))
}

fn parse_part(s: &str) -> Result<Line<'_>, PoolSetErrorKind> {
    let mut toks = tokens(s);
    let (Some(size), Some(path), None) = (toks.next(), toks.next(), toks.next()) else {
        return Err(PoolSetErrorKind::InvalidToken);
    };
    if !path.starts_with('/') {
        return Err(PoolSetErrorKind::AbsolutePathExpected);
    }
    if size == AUTO {
        if path.ends_with('/') {
            return Err(PoolSetErrorKind::AutoSizeOnDirectory);
        }
        return Ok(Line::Part {
            size: PartSize::Auto,
            path,
        });
    }
    let bytes = match parse_size(size) {
        Ok(0) => return Err(PoolSetErrorKind::ZeroSize),
        Ok(n) => n,
        Err(SizeError::Format) => return Err(PoolSetErrorKind::WrongSize),
        Err(SizeError::Negative) => return Err(PoolSetErrorKind::NegativeSize),
        Err(SizeError::Overflow) => return Err(PoolSetErrorKind::SizeOverflow),
    };
    if bytes < MIN_PART_SIZE {
        return Err(PoolSetErrorKind::PartTooSmall { size: bytes });
    }
    Ok(Line::Part {
        size: PartSize::Fixed(bytes),
        path,
    })
}

/// The state of `util_poolset_parse`'s loop.
struct Parser<'a> {
    lines: Lines<'a>,
    set: PoolSet<'a>,
    /// PMDK's `nparts`: parts of the last *local* replica. A remote replica
    /// line neither checks nor resets it, which decides where an empty local
    /// replica is reported.
    nparts: u32,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8]) -> Self {
        Parser {
            lines: Lines::new(input),
            set: PoolSet {
                input,
                options: Options::default(),
                replicas: heapless::Vec::new(),
            },
            nparts: 0,
        }
    }

    fn run(mut self) -> Result<PoolSet<'a>, PoolSetError> {
        let err = |line: u32, kind| PoolSetError { line, kind };
        match self.lines.next() {
            Some(first) if first.terminated && first.text == SIGNATURE.as_bytes() => {}
            _ => return Err(err(1, PoolSetErrorKind::Signature)),
        }
        self.start_local(1).map_err(|kind| err(1, kind))?;
        let mut last = 1u32;
        while let Some(raw) = self.lines.next() {
            last = raw.number;
            if let Some(text) = significant(raw.text) {
                self.line(text).map_err(|kind| err(raw.number, kind))?;
            }
        }
        if self.nparts == 0 {
            return Err(err(last.saturating_add(1), self.no_parts()));
        }
        Ok(self.set)
    }

    /// The error for a local replica without parts.
    fn no_parts(&self) -> PoolSetErrorKind {
        if self.set.replicas.len() == 1 {
            PoolSetErrorKind::NoPoolSetParts
        } else {
            PoolSetErrorKind::NoReplicaParts
        }
    }

    fn start_local(&mut self, line: u32) -> Result<(), PoolSetErrorKind> {
        let rec = Rec::Local {
            line,
            body: self.lines.pos,
            body_line: line.saturating_add(1),
            nparts: 0,
            aligned_sum: 0,
            nauto: 0,
        };
        self.set
            .replicas
            .push(rec)
            .map_err(|_| PoolSetErrorKind::TooManyReplicas)?;
        self.nparts = 0;
        Ok(())
    }

    fn line(&mut self, text: &'a [u8]) -> Result<(), PoolSetErrorKind> {
        let line = self.lines.number;
        // PMDK rejects any non-keyword line after a remote replica before
        // looking at it.
        if !starts_with_keyword(text)
            && matches!(self.set.replicas.last(), Some(Rec::Remote { .. }))
        {
            return Err(PoolSetErrorKind::UnexpectedRemoteParts);
        }
        match classify(text)? {
            Line::Options(options) => {
                self.set.options = self.set.options.union(options);
                if self.set.options.single_hdr && self.set.options.no_hdrs {
                    return Err(PoolSetErrorKind::ConflictingOptions);
                }
            }
            Line::LocalReplica => {
                if self.nparts == 0 {
                    return Err(self.no_parts());
                }
                self.start_local(line)?;
            }
            Line::RemoteReplica(remote) => {
                self.set
                    .replicas
                    .push(Rec::Remote { line, remote })
                    .map_err(|_| PoolSetErrorKind::TooManyReplicas)?;
            }
            Line::Part { size, .. } => {
                let Some(Rec::Local {
                    nparts,
                    aligned_sum,
                    nauto,
                    ..
                }) = self.set.replicas.last_mut()
                else {
                    return Err(PoolSetErrorKind::UnexpectedRemoteParts);
                };
                if *nparts >= MAX_PARTS {
                    return Err(PoolSetErrorKind::TooManyParts);
                }
                match size {
                    PartSize::Fixed(bytes) => {
                        *aligned_sum = aligned_sum
                            .checked_add(align_down(bytes))
                            .ok_or(PoolSetErrorKind::ReplicaSizeOverflow)?;
                    }
                    PartSize::Auto => *nauto = nauto.saturating_add(1),
                }
                *nparts = nparts.saturating_add(1);
                self.nparts = self.nparts.saturating_add(1);
            }
        }
        Ok(())
    }
}
