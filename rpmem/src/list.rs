//! [`list_pool_sets`]: the pool set files a target offers, from `rpmemd --list` (an extension
//! of this project's rpmemd; PMDK's has no such mode).
//!
//! rpmemd writes one record per line, fields separated by a tab, every name and text escaped
//! (`docs/rpmemd.md`, "List mode"; the format is the core's [`rpmem_core::list`], which both
//! sides use):
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

use rpmem_core::list::{Field, Reader, Record, SetStatus};

use crate::error::Error;
use crate::launch::{self, Remote};
use crate::oob::STDERR_GRACE;
use crate::options::Options;
use crate::target::Target;

/// Most bytes of `rpmemd --list` output read (rpmemd writes at most 960 KiB and its last
/// records): [`rpmem_core::list::MAX_OUTPUT`].
pub const MAX_LIST_OUTPUT: usize = rpmem_core::list::MAX_OUTPUT;

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
/// A non-zero exit status of rpmemd (or ssh) is [`Error::ListFailed`] with rpmemd's own
/// message (e.g. its `poolset-dir` does not exist); output that breaks the format is
/// [`Error::Protocol`] naming the line; losing rpmemd's output is [`Error::Disconnected`]; no
/// end within the timeout is [`Error::Timeout`].
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
        return Err(Error::ListFailed {
            host,
            message: if text.is_empty() {
                "it wrote nothing on stderr".to_owned()
            } else {
                format!("{text}{hint}")
            },
            exit,
        });
    }
    parse(&out).map_err(|detail| Error::Protocol {
        host,
        during,
        detail,
    })
}

/// Parses the whole output of `rpmemd --list` with the core's [`Reader`]; the error names the
/// line.
pub(crate) fn parse(out: &[u8]) -> Result<PoolSetList, String> {
    let mut list = PoolSetList {
        poolset_dir: String::new(),
        entries: Vec::new(),
        incomplete: Vec::new(),
    };
    for record in Reader::new(out).map_err(|e| e.to_string())? {
        match record.map_err(|e| e.to_string())? {
            Record::Header { poolset_dir } => list.poolset_dir = text(poolset_dir),
            Record::Set { name, status } => {
                let status = match status {
                    SetStatus::Valid {
                        pool_size,
                        replicas,
                        options,
                    } => PoolSetStatus::Valid {
                        pool_size,
                        replicas,
                        single_hdr: options.single_hdr,
                        no_hdrs: options.no_hdrs,
                    },
                    SetStatus::Invalid { line, error } => PoolSetStatus::Invalid {
                        line,
                        error: text(error),
                    },
                };
                let bytes: Vec<u8> = name.bytes().collect();
                list.entries.push(PoolSetEntry {
                    name: String::from_utf8_lossy(&bytes).into_owned(),
                    status,
                    bytes,
                });
            }
            Record::Incomplete { reason } => list.incomplete.push(text(reason)),
            Record::End { .. } => {}
        }
    }
    Ok(list)
}

/// A field as text (invalid UTF-8 replaced).
fn text(field: Field<'_>) -> String {
    String::from_utf8_lossy(&field.bytes().collect::<Vec<u8>>()).into_owned()
}

/// rpmemd's escaping (`rpmemd::list::escape`), the project's one scheme: [`rpmem_core::text`].
pub(crate) fn escape(bytes: &[u8]) -> String {
    rpmem_core::text::Escaped(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list as rpmemd writes it, with the core's writer.
    fn good() -> String {
        use rpmem_core::poolset::Options;
        let set = |name, status| Record::Set { name, status };
        let records = [
            Record::Header {
                poolset_dir: Field::text("/home/a/sets"),
            },
            set(
                Field::text("a.set"),
                SetStatus::Valid {
                    pool_size: Some(8 << 20),
                    replicas: 1,
                    options: Options::default(),
                },
            ),
            set(
                Field::text("dev.set"),
                SetStatus::Valid {
                    pool_size: None,
                    replicas: 2,
                    options: Options {
                        single_hdr: true,
                        no_hdrs: false,
                    },
                },
            ),
            set(
                Field::text("new\nline\x1b\u{202e}.set"),
                SetStatus::Invalid {
                    line: Some(3),
                    error: Field::text("incorrect format of size"),
                },
            ),
            set(
                Field::Raw(b"caf\xe9.set"),
                SetStatus::Invalid {
                    line: None,
                    error: Field::text("the name is not UTF-8"),
                },
            ),
            Record::Incomplete {
                reason: Field::text("directory x cannot be read"),
            },
            Record::End { sets: 4 },
        ];
        let mut out = String::new();
        for r in records {
            r.write_line(&mut out).expect("a String takes every line");
        }
        out
    }

    #[test]
    fn a_good_list_parses() {
        let l = parse(good().as_bytes()).expect("parses");
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
        // The core's reader checks every record (its tests have every case); the library
        // passes its error on with the line.
        let cases: &[(&[u8], &str)] = &[
            (b"", "rpmemd wrote nothing on stdout"),
            (b"rpmemd-list\t1\t/d\n", "no end record"),
            (
                b"rpmemd-list\t1\t/d\nset\ta\tok\tlots\t1\t-\nend\t1\n",
                "line 2 (set\\ta\\tok\\tlots\\t1\\t-): invalid pool size \"lots\"",
            ),
            (
                b"rpmemd-list\t1\t/d\nset\t\xff\tinvalid\t-\te\nend\t1\n",
                "line 2 (set\\t\\xff\\tinvalid\\t-\\te): the line is not UTF-8",
            ),
        ];
        for (input, want) in cases {
            match parse(input) {
                Ok(l) => panic!("{input:?} parsed: {l:?}"),
                Err(e) => assert!(e.contains(want), "{input:?}: {e:?} should say {want:?}"),
            }
        }
        let mut big = b"rpmemd-list\t1\t/d\n".to_vec();
        big.resize(MAX_LIST_OUTPUT + 1, b'\n');
        assert!(parse(&big).expect_err("too big").contains("longer than"));
    }

    #[test]
    fn a_failing_rpmemd_is_list_failed() {
        let opts = |command: &str| {
            crate::Options::builder()
                .launch(crate::Launch::Local)
                .control_timeout(std::time::Duration::from_secs(10))
                .command(command)
                .build()
        };
        // `ls --list` fails with its own message, as an rpmemd without --list would.
        let e = list_pool_sets("localhost", &opts("ls")).expect_err("ls has no --list");
        let Error::ListFailed {
            host,
            exit,
            message,
        } = &e
        else {
            panic!("expected ListFailed: {e}");
        };
        assert_eq!(host, "localhost");
        assert!(exit.contains("exited with status 2"), "{exit}");
        assert!(message.contains("--list"), "{message}");
        assert!(message.contains("this rpmemd has no --list"), "{message}");
        assert_eq!(e.errno(), libc::EREMOTEIO);
        assert!(e.is_fatal());
        assert!(
            e.to_string().starts_with(
                "rpmemd on localhost could not list the pool set files of its poolset-dir ("
            ),
            "{e}"
        );
        // Silent failure: the exit status, and that nothing was said.
        let e = list_pool_sets("localhost", &opts("false")).expect_err("false fails");
        assert!(
            matches!(&e, Error::ListFailed { exit, message, .. }
                if exit.contains("exited with status 1") && message == "it wrote nothing on stderr"),
            "{e}"
        );
    }
}
