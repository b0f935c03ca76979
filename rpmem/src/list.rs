//! [`list_pool_sets`]: the pool set files a target offers, from `rpmemd --list` (an extension
//! of this project's rpmemd; PMDK's has no such mode).
//!
//! rpmemd writes one record per line, fields separated by a tab, every name and text escaped
//! (`docs/rpmemd.md`, "List mode"):
//!
//! ```text
//! rpmemd-list  1  <poolset-dir>
//! set  <name>  ok  <pool size | auto>  <replicas>  <- | SINGLEHDR | NOHDRS | SINGLEHDR,NOHDRS>
//! set  <name>  invalid  <line | ->  <error>
//! incomplete  <reason>
//! end  <number of set records>
//! ```
//!
//! The output is read strictly: at most [`MAX_LIST_OUTPUT`] bytes, UTF-8, every record with its
//! exact fields, every escape valid, no raw control character, the `end` record last with the
//! right count. Anything else is [`Error::Protocol`] naming the line.

use std::time::Instant;

use crate::error::Error;
use crate::launch::{self, Remote};
use crate::oob::STDERR_GRACE;
use crate::options::Options;
use crate::target::Target;

/// Most bytes of `rpmemd --list` output read (rpmemd writes at most 960 KiB and its last
/// records).
pub const MAX_LIST_OUTPUT: usize = 1 << 20;

/// The format version of `rpmemd --list` this library reads.
const FORMAT_VERSION: &str = "1";

/// The pool set files of a target's pool set directory ([`list_pool_sets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSetList {
    /// rpmemd's `poolset-dir` (its path on the target).
    pub poolset_dir: String,
    /// The pool set files, sorted by name.
    pub entries: Vec<PoolSetEntry>,
    /// Why pool set files may be missing from `entries` (rpmemd's bounds reached, a directory
    /// it could not read); empty when the list is complete.
    pub incomplete: Vec<String>,
}

/// One pool set file of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSetEntry {
    /// Its path relative to `poolset-dir`: the name to pass to [`RemotePool::create`](crate::RemotePool::create)
    /// and the others. A name that is not UTF-8 (which no client can pass; the entry is then
    /// [`PoolSetStatus::Invalid`]) has its invalid bytes replaced by U+FFFD here.
    pub name: String,
    /// What rpmemd's parser says of it.
    pub status: PoolSetStatus,
    bytes: Vec<u8>,
}

impl PoolSetEntry {
    /// The name with every control and invisible formatting character escaped (`\n`, `\t`,
    /// `\\`, `\xHH`, `\u{HHHH}`), safe to print on a terminal; it shows a byte that is not
    /// UTF-8 as `\xHH`.
    pub fn display_name(&self) -> String {
        escape(&self.bytes)
    }

    /// True when the pool set file parses (and a client can name it).
    pub fn is_valid(&self) -> bool {
        matches!(self.status, PoolSetStatus::Valid { .. })
    }
}

/// Whether a pool set file parses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolSetStatus {
    /// It parses.
    #[non_exhaustive]
    Valid {
        /// The pool size in bytes; `None` when it depends on an `AUTO` part (a Device DAX,
        /// sized only when the pool is created or opened).
        pool_size: Option<u64>,
        /// The number of replicas.
        replicas: u32,
        /// `OPTION SINGLEHDR`.
        single_hdr: bool,
        /// `OPTION NOHDRS`.
        no_hdrs: bool,
    },
    /// It does not parse, or a client cannot name or read it.
    #[non_exhaustive]
    Invalid {
        /// The line of the pool set file with the error, when there is one.
        line: Option<u32>,
        /// What is wrong.
        error: String,
    },
}

/// Lists the pool set files `target` offers (`[user@]host[:port]`), by running
/// `<RPMEM_CMD> --list` there, over ssh or in local mode as every session. Each entry says
/// whether the file parses, with its pool size, or its error.
///
/// A non-zero exit status of rpmemd (or ssh) is [`Error::Disconnected`] with rpmemd's own
/// message (e.g. its `poolset-dir` does not exist); output that breaks the format is
/// [`Error::Protocol`] naming the line; no end within the timeout is [`Error::Timeout`].
pub fn list_pool_sets(target: &str, opts: &Options) -> Result<PoolSetList, Error> {
    let target = Target::parse(target)?;
    let command = opts.cmd.next_command().to_owned();
    let spec = launch::spec(opts, &target, &command, &["--list"])?;
    let mut remote = Remote::spawn(&spec, false)?;
    let host = target.host().to_owned();
    let during = format!(
        "listing the pool set files of its poolset-dir ({})",
        launch::remote_command_line(&command, &["--list"])
    );
    let deadline = Instant::now() + opts.control_timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match remote.recv_some(&mut buf, deadline) {
            Ok(launch::Recv::Data(n)) => {
                out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                if out.len() > MAX_LIST_OUTPUT {
                    remote.kill_and_reap();
                    return Err(Error::Protocol {
                        host,
                        during,
                        detail: format!(
                            "the list is longer than {} KiB, the most this library reads",
                            MAX_LIST_OUTPUT / 1024
                        ),
                    });
                }
            }
            Ok(launch::Recv::Eof) => break,
            Ok(launch::Recv::Timeout) => {
                let message = remote.info().describe(std::time::Duration::ZERO);
                remote.kill_and_reap();
                return Err(Error::Timeout {
                    host,
                    during,
                    after: opts.control_timeout,
                    message,
                });
            }
            Err(e) => {
                remote.kill_and_reap();
                return Err(Error::Disconnected {
                    host,
                    during,
                    message: format!("reading its output failed: {e}"),
                });
            }
        }
    }
    let Some(status) = remote.wait_until(deadline) else {
        let message = remote.info().describe(std::time::Duration::ZERO);
        remote.kill_and_reap();
        return Err(Error::Timeout {
            host,
            during,
            after: opts.control_timeout,
            message,
        });
    };
    if !status.success() {
        let text = remote.info().stderr.text(STDERR_GRACE);
        let exit = format!("{} {}", spec.who, launch::describe_status(&status));
        let hint = if text.contains("unexpected argument '--list'")
            || text.contains("unrecognized option")
        {
            " (this rpmemd has no --list: it is older than this rpmem, or PMDK's)"
        } else {
            ""
        };
        return Err(Error::Disconnected {
            host,
            during,
            message: if text.is_empty() {
                format!("{exit} and wrote nothing on stderr")
            } else {
                format!("{text} ({exit}){hint}")
            },
        });
    }
    parse(&out).map_err(|detail| Error::Protocol {
        host,
        during,
        detail,
    })
}

/// Parses the whole output of `rpmemd --list`; the error names the line.
pub(crate) fn parse(out: &[u8]) -> Result<PoolSetList, String> {
    if out.is_empty() {
        return Err("rpmemd wrote nothing on stdout".to_owned());
    }
    if out.len() > MAX_LIST_OUTPUT {
        return Err(format!(
            "the list is longer than {} KiB",
            MAX_LIST_OUTPUT / 1024
        ));
    }
    let Some(body) = out.strip_suffix(b"\n") else {
        return Err("the output does not end with a line end (cut short?)".to_owned());
    };
    let mut lines = body.split(|&b| b == b'\n').enumerate();
    let mut list = PoolSetList {
        poolset_dir: String::new(),
        entries: Vec::new(),
        incomplete: Vec::new(),
    };
    let mut ended = false;
    let mut first = true;
    for (index, raw) in lines.by_ref() {
        let number = index.saturating_add(1);
        let at = |what: String| format!("line {number} ({}): {what}", shown(raw));
        if ended {
            return Err(at("a record after the end record".to_owned()));
        }
        let line = std::str::from_utf8(raw).map_err(|_| at("the line is not UTF-8".to_owned()))?;
        let fields: Vec<&str> = line.split('\t').collect();
        if first {
            first = false;
            match fields.as_slice() {
                ["rpmemd-list", version, dir] => {
                    if *version != FORMAT_VERSION {
                        return Err(at(format!(
                            "format version {version:?}, this rpmem reads version {FORMAT_VERSION}"
                        )));
                    }
                    list.poolset_dir = text(dir).map_err(at)?;
                }
                _ => return Err(at("expected the header rpmemd-list 1 <dir>".to_owned())),
            }
            continue;
        }
        match fields.as_slice() {
            ["set", name, "ok", size, replicas, options] => {
                let bytes = unescape(name).map_err(at)?;
                let pool_size = match *size {
                    "auto" => None,
                    s => Some(number_field(s, "pool size").map_err(at)?),
                };
                let replicas =
                    u32::try_from(number_field(replicas, "number of replicas").map_err(at)?)
                        .ok()
                        .filter(|&r| r > 0)
                        .ok_or_else(|| at(format!("invalid number of replicas {replicas:?}")))?;
                let (single_hdr, no_hdrs) = match *options {
                    "-" => (false, false),
                    "SINGLEHDR" => (true, false),
                    "NOHDRS" => (false, true),
                    "SINGLEHDR,NOHDRS" => (true, true),
                    o => return Err(at(format!("unknown options {o:?}"))),
                };
                list.entries.push(entry(
                    bytes,
                    PoolSetStatus::Valid {
                        pool_size,
                        replicas,
                        single_hdr,
                        no_hdrs,
                    },
                ));
            }
            ["set", name, "invalid", line_no, error] => {
                let bytes = unescape(name).map_err(at)?;
                let line = match *line_no {
                    "-" => None,
                    l => Some(
                        u32::try_from(number_field(l, "line number").map_err(at)?)
                            .map_err(|_| at(format!("line number {l:?} is too large")))?,
                    ),
                };
                let error = text(error).map_err(at)?;
                list.entries
                    .push(entry(bytes, PoolSetStatus::Invalid { line, error }));
            }
            ["incomplete", reason] => list.incomplete.push(text(reason).map_err(at)?),
            ["end", count] => {
                let count = number_field(count, "count").map_err(at)?;
                if u64::try_from(list.entries.len()).ok() != Some(count) {
                    return Err(at(format!(
                        "the end record counts {count} pool set file(s), the list has {}",
                        list.entries.len()
                    )));
                }
                ended = true;
            }
            [kind, ..] => {
                return Err(at(format!(
                    "unknown record {:?} or wrong number of fields ({})",
                    kind,
                    fields.len()
                )))
            }
            [] => return Err(at("an empty line".to_owned())),
        }
    }
    if !ended {
        return Err("the output has no end record (cut short?)".to_owned());
    }
    Ok(list)
}

fn entry(bytes: Vec<u8>, status: PoolSetStatus) -> PoolSetEntry {
    PoolSetEntry {
        name: String::from_utf8_lossy(&bytes).into_owned(),
        status,
        bytes,
    }
}

/// A decimal number of digits only (no sign, no blanks).
fn number_field(s: &str, what: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} {s:?}"));
    }
    s.parse::<u64>()
        .map_err(|_| format!("{what} {s:?} does not fit 64 bits"))
}

/// An escaped text field as text (invalid UTF-8 replaced).
fn text(field: &str) -> Result<String, String> {
    unescape(field).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Reverses rpmemd's escaping strictly: `\\`, `\t`, `\n`, `\r`, `\xHH`, `\u{H...}` (a Unicode
/// scalar value); any other backslash sequence, or a character that must have been escaped, is
/// an error.
pub(crate) fn unescape(field: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if needs_escape(c) {
                return Err(format!(
                    "a raw control character U+{:04X} rpmemd must have escaped",
                    u32::from(c)
                ));
            }
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('t') => out.push(b'\t'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = (hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("invalid escape \\x{hex}"))?;
                out.push(byte);
            }
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err("invalid escape \\u (expected \\u{HHHH})".to_owned());
                }
                let mut hex = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(h) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                        _ => return Err(format!("invalid escape \\u{{{hex}")),
                    }
                }
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid escape \\u{{{hex}}}"))?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
            Some(other) => return Err(format!("invalid escape \\{other}")),
            None => return Err("a backslash at the end of a field".to_owned()),
        }
    }
    Ok(out)
}

/// The bytes of `raw` escaped and cut to 120 characters, to show a bad line in an error.
fn shown(raw: &[u8]) -> String {
    let text = escape(raw);
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", text.get(..i).unwrap_or("")),
        None => text,
    }
}

/// rpmemd's escaping (`rpmemd::list::escape`), the project's one scheme: [`rpmem_core::text`].
pub(crate) fn escape(bytes: &[u8]) -> String {
    rpmem_core::text::Escaped(bytes).to_string()
}

/// A character rpmemd must have escaped ([`rpmem_core::text::is_hostile`]).
fn needs_escape(c: char) -> bool {
    rpmem_core::text::is_hostile(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "rpmemd-list\t1\t/home/a/sets\n\
        set\ta.set\tok\t8388608\t1\t-\n\
        set\tdev.set\tok\tauto\t2\tSINGLEHDR\n\
        set\tnew\\nline\\x1b\\u{202e}.set\tinvalid\t3\tincorrect format of size\n\
        set\tcaf\\xe9.set\tinvalid\t-\tthe name is not UTF-8\n\
        incomplete\tdirectory x cannot be read: Permission denied\n\
        end\t4\n";

    #[test]
    fn a_good_list_parses() {
        let l = parse(GOOD.as_bytes()).expect("parses");
        assert_eq!(l.poolset_dir, "/home/a/sets");
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.entries[0].name, "a.set");
        assert_eq!(
            l.entries[0].status,
            PoolSetStatus::Valid {
                pool_size: Some(8 << 20),
                replicas: 1,
                single_hdr: false,
                no_hdrs: false
            }
        );
        assert!(matches!(
            l.entries[1].status,
            PoolSetStatus::Valid {
                pool_size: None,
                replicas: 2,
                single_hdr: true,
                ..
            }
        ));
        assert_eq!(l.entries[2].name, "new\nline\x1b\u{202e}.set");
        assert_eq!(l.entries[2].display_name(), "new\\nline\\x1b\\u{202e}.set");
        assert!(matches!(
            &l.entries[2].status,
            PoolSetStatus::Invalid { line: Some(3), error } if error == "incorrect format of size"
        ));
        assert_eq!(l.entries[3].name, "caf\u{fffd}.set");
        assert_eq!(l.entries[3].display_name(), "caf\\xe9.set");
        assert_eq!(l.incomplete.len(), 1);
    }

    #[test]
    fn bad_lists_name_the_line() {
        let cases: &[(&str, &str)] = &[
            ("", "nothing"),
            ("rpmemd-list\t1\t/d\nend\t0", "line end"),
            (
                "rpmemd-list\t2\t/d\nend\t0\n",
                "line 1 (rpmemd-list\\t2\\t/d): format version",
            ),
            ("hello\nend\t0\n", "line 1 (hello): expected the header"),
            ("rpmemd-list\t1\t/d\n", "no end record"),
            ("rpmemd-list\t1\t/d\nend\t1\n", "line 2"),
            ("rpmemd-list\t1\t/d\nend\t0\nend\t0\n", "line 3"),
            (
                "rpmemd-list\t1\t/d\nset\ta\tok\t+1\t1\t-\nend\t1\n",
                "line 2",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\tok\t1\t0\t-\nend\t1\n",
                "replicas",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\tok\t1\t1\tX\nend\t1\n",
                "unknown options",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\tok\t1\t1\nend\t1\n",
                "wrong number of fields",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\\q\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\q",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\\x4\tinvalid\t-\te\nend\t1\n",
                "invalid escape \\x4",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\\u{110000}\tinvalid\t-\te\nend\t1\n",
                "line 2",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\x1b\tinvalid\t-\te\nend\t1\n",
                "raw control",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\\\tinvalid\t-\te\nend\t1\n",
                "backslash at the end",
            ),
            (
                "rpmemd-list\t1\t/d\nset\ta\tinvalid\t0x2\te\nend\t1\n",
                "line number",
            ),
            ("rpmemd-list\t1\t/d\n\nend\t0\n", "line 2"),
            (
                "rpmemd-list\t1\t/d\nwhat\tever\nend\t0\n",
                "unknown record \"what\"",
            ),
        ];
        for (input, want) in cases {
            match parse(input.as_bytes()) {
                Ok(l) => panic!("{input:?} parsed: {l:?}"),
                Err(e) => assert!(e.contains(want), "{input:?}: {e:?} should say {want:?}"),
            }
        }
        let not_utf8 = b"rpmemd-list\t1\t/d\nset\t\xff\tinvalid\t-\te\nend\t1\n";
        let e = parse(not_utf8).expect_err("not UTF-8");
        assert!(
            e.contains("line 2 (set\\t\\xff") && e.contains("not UTF-8"),
            "{e}"
        );
        let mut big = b"rpmemd-list\t1\t/d\n".to_vec();
        big.resize(MAX_LIST_OUTPUT + 1, b'x');
        assert!(parse(&big).expect_err("too big").contains("longer than"));
    }

    #[test]
    fn escape_and_unescape_round_trip() {
        for bytes in [
            &b"plain.set"[..],
            b"a\tb\nc\rd\\e",
            b"\x1b[2J\x7f",
            b"\xff\xfe",
            "\u{202e}caf\u{e9}\u{85}".as_bytes(),
        ] {
            let e = escape(bytes);
            assert!(!e.chars().any(needs_escape), "{e:?}");
            assert_eq!(unescape(&e).expect("unescapes"), bytes, "{e:?}");
        }
    }
}
