//! The line format of `rpmemd --list` (our extension; PMDK's rpmemd has no list mode), once
//! for both sides: rpmemd writes its records with [`Record`]'s `Display`
//! ([`Record::write_line`]), the rpmem library reads them back with [`Reader`], strictly.
//!
//! One record per line, fields separated by a tab:
//!
//! ```text
//! rpmemd-list  1  <poolset-dir>
//! set  <name>  ok  <pool size in bytes | auto>  <replicas>  <- | SINGLEHDR | NOHDRS | SINGLEHDR,NOHDRS>
//! set  <name>  invalid  <line | ->  <error>
//! incomplete  <reason>
//! end  <number of set records>
//! ```
//!
//! Names, the directory and texts are escaped with the project's one scheme
//! ([`crate::text`]): no tab, line end or other control character is ever written raw. An
//! error or a reason is cut to [`MAX_TEXT`] characters (then ends in `...`).
//!
//! The reader takes at most [`MAX_OUTPUT`] bytes that end with a line end; the first record
//! is the header with version [`FORMAT_VERSION`]; every record has its exact fields, numbers
//! are decimal digits only, every escape is valid and no character that must be escaped
//! appears raw; the `end` record comes last and counts the `set` records. Anything else is a
//! [`ListError`] naming the line. A writer keeps its output within [`WRITE_BUDGET`] plus its
//! last records.

use core::fmt::{self, Write};

use crate::poolset::Options;
use crate::text;

/// The first field of the first line.
pub const FORMAT: &str = "rpmemd-list";
/// The format version (the second field of the first line).
pub const FORMAT_VERSION: u32 = 1;
/// Most bytes of output a reader accepts.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Most bytes of `set` records and header a writer writes; the `incomplete` and `end`
/// records after them fit in what is left of [`MAX_OUTPUT`].
pub const WRITE_BUDGET: usize = 960 * 1024;
/// Longest error or reason text written, in characters (a byte that is not UTF-8 counts as
/// one); a longer one is cut and ends in `...`.
pub const MAX_TEXT: usize = 512;
/// Characters of a bad line shown in a [`ListError`].
const SHOWN_LINE: usize = 120;

/// The bytes of one field: as a writer has them, or as the reader found them.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    /// Bytes as they are (a name need not be UTF-8), escaped when written.
    Raw(&'a [u8]),
    /// A field as read: escaped, and checked (every escape valid, no character raw that
    /// must be escaped).
    Escaped(&'a str),
}

impl<'a> Field<'a> {
    /// Text as it is, escaped when written.
    pub fn text(text: &'a str) -> Field<'a> {
        Field::Raw(text.as_bytes())
    }

    /// The field's bytes, unescaped.
    pub fn bytes(&self) -> FieldBytes<'a> {
        match *self {
            Field::Raw(b) => FieldBytes {
                raw: b,
                escaped: "",
                pending: [0; 4],
                at: 0,
                len: 0,
            },
            Field::Escaped(s) => FieldBytes {
                raw: &[],
                escaped: s,
                pending: [0; 4],
                at: 0,
                len: 0,
            },
        }
    }

    /// Writes the field escaped, at most `max` characters of it (then `...`).
    fn write(&self, out: &mut impl Write, max: Option<usize>) -> fmt::Result {
        let bytes = match *self {
            Field::Raw(b) => b,
            Field::Escaped(s) => return out.write_str(s),
        };
        let mut left = max.unwrap_or(usize::MAX);
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if left == 0 {
                    return out.write_str("...");
                }
                left -= 1;
                text::write_char(out, c)?;
            }
            for b in chunk.invalid() {
                if left == 0 {
                    return out.write_str("...");
                }
                left -= 1;
                write!(out, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Two fields are equal when their bytes are.
impl PartialEq for Field<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes().eq(other.bytes())
    }
}

impl Eq for Field<'_> {}

/// The bytes of a [`Field`], unescaped ([`Field::bytes`]).
#[derive(Clone, Debug)]
pub struct FieldBytes<'a> {
    raw: &'a [u8],
    escaped: &'a str,
    pending: [u8; 4],
    at: usize,
    len: usize,
}

impl Iterator for FieldBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.at < self.len {
            let b = self.pending.get(self.at).copied();
            self.at += 1;
            return b;
        }
        if let Some((&b, rest)) = self.raw.split_first() {
            self.raw = rest;
            return Some(b);
        }
        // A checked field decodes without error; an unchecked one stops at its first error.
        let (unit, rest) = decode(self.escaped).ok()??;
        self.escaped = rest;
        match unit {
            Unit::Byte(b) => Some(b),
            Unit::Char(c) => {
                let n = c.encode_utf8(&mut self.pending).len();
                self.at = 1;
                self.len = n;
                self.pending.first().copied()
            }
        }
    }
}

/// What a `set` record says of a pool set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetStatus<'a> {
    /// It parses.
    Valid {
        /// The pool size; `None` when it depends on an `AUTO` part (a Device DAX).
        pool_size: Option<u64>,
        /// Number of replicas (at least 1).
        replicas: u32,
        /// Its `OPTION`s.
        options: Options,
    },
    /// It does not parse, or a client cannot name or read it.
    Invalid {
        /// The line of the error, when the parser found one.
        line: Option<u32>,
        /// What is wrong.
        error: Field<'a>,
    },
}

/// One line of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The first line: [`FORMAT`], [`FORMAT_VERSION`] and rpmemd's `poolset-dir`.
    Header {
        /// The directory, as rpmemd has it.
        poolset_dir: Field<'a>,
    },
    /// A pool set file, by the name a client passes (relative to `poolset-dir`).
    Set {
        /// The name.
        name: Field<'a>,
        /// Whether it parses.
        status: SetStatus<'a>,
    },
    /// Why the list may miss pool set files.
    Incomplete {
        /// The reason.
        reason: Field<'a>,
    },
    /// The last line, with the number of `set` records.
    End {
        /// The number of `set` records before it.
        sets: u64,
    },
}

impl Record<'_> {
    /// Writes the record and its line end.
    pub fn write_line(&self, out: &mut impl Write) -> fmt::Result {
        write!(out, "{self}")?;
        out.write_char('\n')
    }
}

/// The record's line, without its line end.
impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Header { poolset_dir } => {
                write!(f, "{FORMAT}\t{FORMAT_VERSION}\t")?;
                poolset_dir.write(f, None)
            }
            Record::Set { name, status } => {
                f.write_str("set\t")?;
                name.write(f, None)?;
                match status {
                    SetStatus::Valid {
                        pool_size,
                        replicas,
                        options,
                    } => {
                        f.write_str("\tok\t")?;
                        match pool_size {
                            Some(s) => write!(f, "{s}")?,
                            None => f.write_str("auto")?,
                        }
                        write!(f, "\t{replicas}\t{}", options_text(*options))
                    }
                    SetStatus::Invalid { line, error } => {
                        f.write_str("\tinvalid\t")?;
                        match line {
                            Some(l) => write!(f, "{l}\t")?,
                            None => f.write_str("-\t")?,
                        }
                        error.write(f, Some(MAX_TEXT))
                    }
                }
            }
            Record::Incomplete { reason } => {
                f.write_str("incomplete\t")?;
                reason.write(f, Some(MAX_TEXT))
            }
            Record::End { sets } => write!(f, "end\t{sets}"),
        }
    }
}

/// The options as the format writes them.
fn options_text(o: Options) -> &'static str {
    match (o.single_hdr, o.no_hdrs) {
        (false, false) => "-",
        (true, false) => "SINGLEHDR",
        (false, true) => "NOHDRS",
        (true, true) => "SINGLEHDR,NOHDRS",
    }
}

/// What is wrong with a field's escaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscapeError<'a> {
    /// A character that must be escaped, raw.
    Raw(char),
    /// `\x` not followed by two hexadecimal digits (what followed).
    Hex(&'a str),
    /// `\u` not followed by `{`.
    UnicodeBrace,
    /// `\u{` not closed after at most six hexadecimal digits (the digits).
    UnicodeOpen(&'a str),
    /// `\u{...}` that is not a Unicode scalar value (the digits).
    Unicode(&'a str),
    /// A backslash followed by another character.
    Unknown(char),
    /// A backslash at the end of the field.
    Trailing,
}

impl fmt::Display for EscapeError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EscapeError::Raw(c) => write!(
                f,
                "a raw control character U+{:04X} rpmemd must have escaped",
                u32::from(*c)
            ),
            EscapeError::Hex(h) => write!(f, "invalid escape \\x{h}"),
            EscapeError::UnicodeBrace => f.write_str("invalid escape \\u (expected \\u{HHHH})"),
            EscapeError::UnicodeOpen(h) => write!(f, "invalid escape \\u{{{h}"),
            EscapeError::Unicode(h) => write!(f, "invalid escape \\u{{{h}}}"),
            EscapeError::Unknown(c) => write!(f, "invalid escape \\{c}"),
            EscapeError::Trailing => f.write_str("a backslash at the end of a field"),
        }
    }
}

/// One decoded unit of an escaped field.
enum Unit {
    Byte(u8),
    Char(char),
}

/// Decodes the first unit of `s` (`None`: `s` is empty) and gives the rest.
fn decode(s: &str) -> Result<Option<(Unit, &str)>, EscapeError<'_>> {
    let mut chars = s.chars();
    let Some(c) = chars.next() else {
        return Ok(None);
    };
    if c != '\\' {
        if text::is_hostile(c) {
            return Err(EscapeError::Raw(c));
        }
        return Ok(Some((Unit::Char(c), chars.as_str())));
    }
    let Some(e) = chars.next() else {
        return Err(EscapeError::Trailing);
    };
    let rest = chars.as_str();
    let byte = match e {
        '\\' => b'\\',
        't' => b'\t',
        'n' => b'\n',
        'r' => b'\r',
        'x' => {
            let end = rest.char_indices().nth(2).map_or(rest.len(), |(i, _)| i);
            let hex = rest.get(..end).unwrap_or(rest);
            let byte = (hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(hex, 16).ok())
                .flatten()
                .ok_or(EscapeError::Hex(hex))?;
            return Ok(Some((Unit::Byte(byte), rest.get(end..).unwrap_or(""))));
        }
        'u' => {
            let digits = rest.strip_prefix('{').ok_or(EscapeError::UnicodeBrace)?;
            let n = digits
                .bytes()
                .take(6)
                .take_while(u8::is_ascii_hexdigit)
                .count();
            let hex = digits.get(..n).unwrap_or("");
            let after = digits
                .get(n..)
                .and_then(|a| a.strip_prefix('}'))
                .ok_or(EscapeError::UnicodeOpen(hex))?;
            let c = u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or(EscapeError::Unicode(hex))?;
            return Ok(Some((Unit::Char(c), after)));
        }
        other => return Err(EscapeError::Unknown(other)),
    };
    Ok(Some((Unit::Byte(byte), rest)))
}

/// Checks an escaped field.
fn checked(s: &str) -> Result<Field<'_>, EscapeError<'_>> {
    let mut rest = s;
    while let Some((_, r)) = decode(rest)? {
        rest = r;
    }
    Ok(Field::Escaped(s))
}

/// Which bound a number broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not decimal digits only, or zero where zero is not allowed.
    Invalid,
    /// Larger than this many bits hold.
    TooLarge(u32),
}

/// What is wrong with the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    /// No output at all.
    Empty,
    /// More than [`MAX_OUTPUT`] bytes.
    TooLong,
    /// The output does not end with a line end.
    NoLineEnd,
    /// No `end` record.
    NoEnd,
    /// A record after the `end` record.
    AfterEnd,
    /// A line that is not UTF-8.
    NotUtf8,
    /// The first line is not a header.
    NoHeader,
    /// A header of another format version.
    Version(&'a str),
    /// A number field that is not a number in its bounds.
    Number {
        /// Which field.
        what: &'static str,
        /// Its text.
        text: &'a str,
        /// What is wrong with it.
        why: NumberError,
    },
    /// Options other than the four the format knows.
    Options(&'a str),
    /// The `end` record counts another number of `set` records.
    EndCount {
        /// What the `end` record says.
        claimed: u64,
        /// The `set` records before it.
        counted: u64,
    },
    /// A record of an unknown kind, or with the wrong number of fields.
    Record {
        /// Its first field.
        kind: &'a str,
        /// Its number of fields.
        fields: usize,
    },
    /// An empty line.
    EmptyLine,
    /// A field with a bad escape.
    Escape(EscapeError<'a>),
}

impl fmt::Display for ErrorKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Empty => f.write_str("rpmemd wrote nothing on stdout"),
            ErrorKind::TooLong => write!(f, "the list is longer than {} KiB", MAX_OUTPUT / 1024),
            ErrorKind::NoLineEnd => {
                f.write_str("the output does not end with a line end (cut short?)")
            }
            ErrorKind::NoEnd => f.write_str("the output has no end record (cut short?)"),
            ErrorKind::AfterEnd => f.write_str("a record after the end record"),
            ErrorKind::NotUtf8 => f.write_str("the line is not UTF-8"),
            ErrorKind::NoHeader => write!(f, "expected the header {FORMAT} {FORMAT_VERSION} <dir>"),
            ErrorKind::Version(v) => write!(
                f,
                "format version {v:?}, this rpmem reads version {FORMAT_VERSION}"
            ),
            ErrorKind::Number {
                what,
                text,
                why: NumberError::Invalid,
            } => write!(f, "invalid {what} {text:?}"),
            ErrorKind::Number {
                what,
                text,
                why: NumberError::TooLarge(bits),
            } => write!(f, "{what} {text:?} does not fit {bits} bits"),
            ErrorKind::Options(o) => write!(f, "unknown options {o:?}"),
            ErrorKind::EndCount { claimed, counted } => write!(
                f,
                "the end record counts {claimed} pool set file(s), the list has {counted}"
            ),
            ErrorKind::Record { kind, fields } => write!(
                f,
                "unknown record {kind:?} or wrong number of fields ({fields})"
            ),
            ErrorKind::EmptyLine => f.write_str("an empty line"),
            ErrorKind::Escape(e) => write!(f, "{e}"),
        }
    }
}

/// Output that breaks the format: what is wrong and, when one line is, which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListError<'a> {
    /// The line (counted from 1) and its bytes.
    pub line: Option<(usize, &'a [u8])>,
    /// What is wrong.
    pub kind: ErrorKind<'a>,
}

/// `line N (<the line, escaped, cut to 120 characters>): <what>`, or `<what>`.
impl fmt::Display for ListError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((number, raw)) = self.line {
            write!(f, "line {number} (")?;
            Field::Raw(raw).write(f, Some(SHOWN_LINE))?;
            f.write_str("): ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// Reads the whole output of `rpmemd --list`, record by record, strictly (see the module
/// documentation). Yields the header first and the `end` record last; after an error,
/// nothing more.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    number: usize,
    sets: u64,
    ended: bool,
    done: bool,
}

impl<'a> Reader<'a> {
    /// A reader of `out`: not empty, at most [`MAX_OUTPUT`] bytes, ending with a line end.
    pub fn new(out: &'a [u8]) -> Result<Reader<'a>, ListError<'a>> {
        let whole = |kind| ListError { line: None, kind };
        if out.is_empty() {
            return Err(whole(ErrorKind::Empty));
        }
        if out.len() > MAX_OUTPUT {
            return Err(whole(ErrorKind::TooLong));
        }
        if !out.ends_with(b"\n") {
            return Err(whole(ErrorKind::NoLineEnd));
        }
        Ok(Reader {
            rest: out,
            number: 0,
            sets: 0,
            ended: false,
            done: false,
        })
    }

    fn record(&mut self) -> Result<Option<Record<'a>>, ListError<'a>> {
        let Some(end) = self.rest.iter().position(|&b| b == b'\n') else {
            if self.ended {
                return Ok(None);
            }
            return Err(ListError {
                line: None,
                kind: ErrorKind::NoEnd,
            });
        };
        let raw = self.rest.get(..end).unwrap_or_default();
        self.rest = self.rest.get(end.saturating_add(1)..).unwrap_or_default();
        self.number = self.number.saturating_add(1);
        let at = |kind| ListError {
            line: Some((self.number, raw)),
            kind,
        };
        if self.ended {
            return Err(at(ErrorKind::AfterEnd));
        }
        let line = core::str::from_utf8(raw).map_err(|_| at(ErrorKind::NotUtf8))?;
        let record = if self.number == 1 {
            header(line)
        } else {
            body(line)
        }
        .map_err(at)?;
        match record {
            Record::Set { .. } => self.sets = self.sets.saturating_add(1),
            Record::End { sets } if sets != self.sets => {
                return Err(at(ErrorKind::EndCount {
                    claimed: sets,
                    counted: self.sets,
                }))
            }
            Record::End { .. } => self.ended = true,
            Record::Header { .. } | Record::Incomplete { .. } => {}
        }
        Ok(Some(record))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, ListError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.record();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r.transpose()
    }
}

/// The tab-separated fields of `line`: the first six, and how many there are.
fn fields(line: &str) -> ([&str; 6], usize) {
    let mut out = [""; 6];
    let mut n = 0usize;
    for (slot, field) in line.split('\t').enumerate() {
        if let Some(o) = out.get_mut(slot) {
            *o = field;
        }
        n = n.saturating_add(1);
    }
    (out, n)
}

fn header(line: &str) -> Result<Record<'_>, ErrorKind<'_>> {
    match fields(line) {
        ([FORMAT, version, dir, ..], 3) => {
            // Exactly as written: no leading zero.
            let exact = number(version, "format version", u64::from(u32::MAX))
                == Ok(u64::from(FORMAT_VERSION))
                && !version.starts_with('0');
            if !exact {
                return Err(ErrorKind::Version(version));
            }
            Ok(Record::Header {
                poolset_dir: checked(dir).map_err(ErrorKind::Escape)?,
            })
        }
        _ => Err(ErrorKind::NoHeader),
    }
}

fn body(line: &str) -> Result<Record<'_>, ErrorKind<'_>> {
    let field = |s| checked(s).map_err(ErrorKind::Escape);
    match fields(line) {
        (["set", name, "ok", size, count, options], 6) => {
            let name = field(name)?;
            let pool_size = match size {
                "auto" => None,
                s => Some(number(s, "pool size", u64::MAX)?),
            };
            let what = "number of replicas";
            let replicas = u32::try_from(number(count, what, u64::from(u32::MAX))?)
                .ok()
                .filter(|&r| r > 0)
                .ok_or(ErrorKind::Number {
                    what,
                    text: count,
                    why: NumberError::Invalid,
                })?;
            let options = match options {
                "-" => Options::default(),
                "SINGLEHDR" => Options {
                    single_hdr: true,
                    no_hdrs: false,
                },
                "NOHDRS" => Options {
                    single_hdr: false,
                    no_hdrs: true,
                },
                "SINGLEHDR,NOHDRS" => Options {
                    single_hdr: true,
                    no_hdrs: true,
                },
                o => return Err(ErrorKind::Options(o)),
            };
            Ok(Record::Set {
                name,
                status: SetStatus::Valid {
                    pool_size,
                    replicas,
                    options,
                },
            })
        }
        (["set", name, "invalid", at, error, ..], 5) => {
            let name = field(name)?;
            let line = match at {
                "-" => None,
                l => Some(
                    u32::try_from(number(l, "line number", u64::from(u32::MAX))?)
                        .unwrap_or(u32::MAX),
                ),
            };
            Ok(Record::Set {
                name,
                status: SetStatus::Invalid {
                    line,
                    error: field(error)?,
                },
            })
        }
        (["incomplete", reason, ..], 2) => Ok(Record::Incomplete {
            reason: field(reason)?,
        }),
        (["end", count, ..], 2) => Ok(Record::End {
            sets: number(count, "count", u64::MAX)?,
        }),
        (["", ..], 1) => Err(ErrorKind::EmptyLine),
        ([kind, ..], fields) => Err(ErrorKind::Record { kind, fields }),
    }
}

/// A decimal number of digits only (no sign, no blanks) of at most `max`.
fn number<'a>(s: &'a str, what: &'static str, max: u64) -> Result<u64, ErrorKind<'a>> {
    let err = |why| ErrorKind::Number { what, text: s, why };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(NumberError::Invalid));
    }
    let bits = 64u32.saturating_sub(max.leading_zeros());
    s.parse::<u64>()
        .ok()
        .filter(|&n| n <= max)
        .ok_or(err(NumberError::TooLarge(bits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed buffer for `Display` output (the core has no allocator).
    struct Buf {
        bytes: [u8; 4096],
        len: usize,
    }

    impl Buf {
        fn new() -> Buf {
            Buf {
                bytes: [0; 4096],
                len: 0,
            }
        }

        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.len]).unwrap()
        }
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    fn shown(d: impl fmt::Display) -> Buf {
        let mut b = Buf::new();
        write!(b, "{d}").unwrap();
        b
    }

    fn read(out: &[u8]) -> Result<usize, ListError<'_>> {
        let mut n = 0;
        for r in Reader::new(out)? {
            r?;
            n += 1;
        }
        Ok(n)
    }

    const GOOD: &str = "rpmemd-list\t1\t/home/a/sets\n\
        set\ta.set\tok\t8388608\t1\t-\n\
        set\tdev.set\tok\tauto\t2\tSINGLEHDR\n\
        set\tnew\\nline\\x1b\\u{202e}.set\tinvalid\t3\tincorrect format of size\n\
        set\tcaf\\xe9.set\tinvalid\t-\tthe name is not UTF-8\n\
        incomplete\tdirectory x cannot be read: Permission denied\n\
        end\t4\n";

    #[test]
    fn a_good_list_reads_record_by_record() {
        let mut r = Reader::new(GOOD.as_bytes()).unwrap();
        assert_eq!(
            r.next(),
            Some(Ok(Record::Header {
                poolset_dir: Field::text("/home/a/sets")
            }))
        );
        assert_eq!(
            r.next(),
            Some(Ok(Record::Set {
                name: Field::text("a.set"),
                status: SetStatus::Valid {
                    pool_size: Some(8 << 20),
                    replicas: 1,
                    options: Options::default(),
                }
            }))
        );
        assert!(matches!(
            r.next(),
            Some(Ok(Record::Set {
                status: SetStatus::Valid {
                    pool_size: None,
                    replicas: 2,
                    options: Options {
                        single_hdr: true,
                        no_hdrs: false
                    }
                },
                ..
            }))
        ));
        let Some(Ok(Record::Set { name, status })) = r.next() else {
            panic!("a set record");
        };
        assert_eq!(name, Field::text("new\nline\x1b\u{202e}.set"));
        assert_eq!(
            status,
            SetStatus::Invalid {
                line: Some(3),
                error: Field::text("incorrect format of size")
            }
        );
        let Some(Ok(Record::Set { name, .. })) = r.next() else {
            panic!("a set record");
        };
        assert_eq!(name, Field::Raw(b"caf\xe9.set"));
        assert!(matches!(r.next(), Some(Ok(Record::Incomplete { .. }))));
        assert_eq!(r.next(), Some(Ok(Record::End { sets: 4 })));
        assert_eq!(r.next(), None);
    }

    #[test]
    fn records_written_read_back_the_same() {
        let records = [
            Record::Header {
                poolset_dir: Field::Raw(b"/d/\tx\xff"),
            },
            Record::Set {
                name: Field::Raw(b"a\n\x1b[2J\xfe.set"),
                status: SetStatus::Valid {
                    pool_size: Some(u64::MAX),
                    replicas: u32::MAX,
                    options: Options {
                        single_hdr: true,
                        no_hdrs: true,
                    },
                },
            },
            Record::Set {
                name: Field::text("\u{202e}\u{85}\\.set"),
                status: SetStatus::Invalid {
                    line: None,
                    error: Field::text("bad\tsize"),
                },
            },
            Record::Set {
                name: Field::text("b.set"),
                status: SetStatus::Invalid {
                    line: Some(u32::MAX),
                    error: Field::text(""),
                },
            },
            Record::Incomplete {
                reason: Field::text("stopped\r\n"),
            },
            Record::End { sets: 3 },
        ];
        let mut out = Buf::new();
        for r in &records {
            r.write_line(&mut out).unwrap();
        }
        let text = out.as_str();
        assert!(!text
            .chars()
            .any(|c| c != '\t' && c != '\n' && text::is_hostile(c)));
        assert_eq!(text.matches('\n').count(), records.len());
        let mut read = Reader::new(text.as_bytes()).unwrap();
        for r in &records {
            assert_eq!(read.next(), Some(Ok(*r)), "{text}");
        }
        assert_eq!(read.next(), None);
    }

    #[test]
    fn texts_are_cut_names_are_not() {
        let long = [b'e'; MAX_TEXT + 10];
        let r = Record::Incomplete {
            reason: Field::Raw(&long),
        };
        let b = shown(r);
        assert_eq!(b.len, "incomplete\t".len() + MAX_TEXT + 3);
        assert!(b.as_str().ends_with("eee..."));
        // Escapes count as one character of the text.
        let mut controls = [0x1bu8; MAX_TEXT + 1];
        controls[0] = b'x';
        let b = shown(Record::Incomplete {
            reason: Field::Raw(&controls),
        });
        assert_eq!(b.len, "incomplete\t".len() + 1 + 4 * (MAX_TEXT - 1) + 3);
        let name = [b'n'; MAX_TEXT + 10];
        let b = shown(Record::Set {
            name: Field::Raw(&name),
            status: SetStatus::Valid {
                pool_size: None,
                replicas: 1,
                options: Options::default(),
            },
        });
        assert_eq!(b.len, "set\t".len() + name.len() + "\tok\tauto\t1\t-".len());
    }

    #[test]
    fn bad_lists_name_the_line() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "rpmemd wrote nothing on stdout"),
            (
                b"rpmemd-list\t1\t/d\nend\t0",
                "does not end with a line end",
            ),
            (
                b"rpmemd-list\t2\t/d\nend\t0\n",
                "line 1 (rpmemd-list\\t2\\t/d): format version \"2\", this rpmem reads version 1",
            ),
            (b"rpmemd-list\t01x\t/d\nend\t0\n", "format version \"01x\""),
            (
                b"hello\nend\t0\n",
                "line 1 (hello): expected the header rpmemd-list 1 <dir>",
            ),
            (b"rpmemd-list\t1\t/d\n", "no end record"),
            (
                b"rpmemd-list\t1\t/d\nend\t1\n",
                "line 2 (end\\t1): the end record counts 1 pool set file(s), the list has 0",
            ),
            (
                b"rpmemd-list\t1\t/d\nend\t0\nend\t0\n",
                "line 3 (end\\t0): a record after the end record",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t+1\t1\t-\nend\t1\n",
                "line 2 (set\\ta\\tok\\t+1\\t1\\t-): invalid pool size \"+1\"",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t18446744073709551616\t1\t-\nend\t1\n",
                "pool size \"18446744073709551616\" does not fit 64 bits",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t1\t0\t-\nend\t1\n",
                "invalid number of replicas \"0\"",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t1\t4294967296\t-\nend\t1\n",
                "number of replicas \"4294967296\" does not fit 32 bits",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t1\t1\tX\nend\t1\n",
                "unknown options \"X\"",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t1\t1\nend\t1\n",
                "unknown record \"set\" or wrong number of fields (5)",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\t1\t1\t-\t\nend\t1\n",
                "wrong number of fields (7)",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\q\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\q",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\x4\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\x4",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\xzz\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\xzz",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\u{110000}\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\u{110000}",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\u{1234567}\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\u{123456",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\u0041\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\u (expected \\u{HHHH})",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\x1b\tinvalid\t-\te\nend\t1\n",
                "line 2 (set\\ta\\x1b\\tinvalid\\t-\\te): a raw control character U+001B",
            ),
            (
                "rpmemd-list\t1\t/d\nincomplete\tx\u{202e}\nend\t0\n".as_bytes(),
                "a raw control character U+202E",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\\\tinvalid\t-\te\nend\t1\n",
                "a backslash at the end of a field",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tinvalid\t0x2\te\nend\t1\n",
                "invalid line number \"0x2\"",
            ),
            (
                b"rpmemd-list\t1\t/d\n\nend\t0\n",
                "line 2 (): an empty line",
            ),
            (
                b"rpmemd-list\t1\t/d\nwhat\tever\nend\t0\n",
                "unknown record \"what\" or wrong number of fields (2)",
            ),
            (
                b"rpmemd-list\t1\t/d\nrpmemd-list\t1\t/d\nend\t0\n",
                "line 2 (rpmemd-list\\t1\\t/d): unknown record \"rpmemd-list\"",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\t\xff\tinvalid\t-\te\nend\t1\n",
                "line 2 (set\\t\\xff\\tinvalid\\t-\\te): the line is not UTF-8",
            ),
        ];
        for (input, want) in cases {
            let e = read(input).expect_err("a bad list");
            let text = shown(e);
            assert!(
                text.as_str().contains(want),
                "{:?}: {} should say {want:?}",
                core::str::from_utf8(input),
                text.as_str()
            );
        }
    }

    #[test]
    fn a_bad_line_is_shown_escaped_and_cut() {
        let mut out = [b'a'; 300];
        out[..18].copy_from_slice(b"rpmemd-list\t1\t/d\n\x1b");
        out[299] = b'\n';
        let e = read(&out).expect_err("an unknown record");
        let text = shown(e);
        let shown_line = text
            .as_str()
            .strip_prefix("line 2 (\\x1b")
            .and_then(|t| t.split_once("...): "))
            .expect("cut with ...")
            .0;
        assert_eq!(shown_line.len(), SHOWN_LINE - 1);
    }

    #[test]
    fn the_output_is_bounded() {
        // Larger than MAX_OUTPUT: refused before any line is read (a byte array of that
        // size would not fit the stack of a test thread; a slice of a static will).
        static BIG: [u8; MAX_OUTPUT + 1] = [b'\n'; MAX_OUTPUT + 1];
        let e = Reader::new(&BIG).expect_err("too long");
        assert_eq!(e.kind, ErrorKind::TooLong);
        assert_eq!(shown(e).as_str(), "the list is longer than 1024 KiB");
        assert!(Reader::new(&BIG[..MAX_OUTPUT]).is_ok());
    }

    #[test]
    fn fields_decode_without_a_check_up_to_their_first_error() {
        let f = Field::Escaped("ab\\x41\\u{e9}\\q!");
        let mut bytes = [0u8; 8];
        let mut n = 0;
        for b in f.bytes() {
            bytes[n] = b;
            n += 1;
        }
        assert_eq!(&bytes[..n], "abA\u{e9}".as_bytes());
    }
}
