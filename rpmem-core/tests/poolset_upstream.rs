//! Every pool set file of PMDK 1.12.1's `util_poolset_parse` test, parsed
//! and compared with what PMDK printed for it (`expected/poolN.txt`).
//!
//! Each case must give the same result as PMDK (OK or ERROR, error reason
//! and line, replica count, options, remote flag, per replica the part
//! count, header count and usable size, per part the size and path, and the
//! pool size), except the cases in [`deviation`], where this parser is
//! deliberately different and the test asserts its own result instead.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rpmem_core::poolset::{PartSize, PoolSet, PoolSetError, PoolSetErrorKind};

fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/pmdk-1.12.1/tests/util_poolset_parse")
}

/// What PMDK printed for one replica.
#[derive(Debug, PartialEq)]
struct ExpReplica {
    remote: Option<(String, String)>,
    nparts: u32,
    nhdrs: u32,
    repsize: u64,
    parts: Vec<(u64, String)>,
}

/// What PMDK printed for one pool set file.
#[derive(Debug, PartialEq)]
enum Expected {
    Ok {
        nreplicas: usize,
        options: u32,
        remote: bool,
        poolsize: u64,
        replicas: Vec<ExpReplica>,
    },
    Error {
        reason: String,
        line: u32,
    },
}

/// Reads `key=value` out of a space-separated line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    line.split(' ')
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn num<T: std::str::FromStr>(line: &str, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    field(line, key).parse().expect("a number")
}

fn parse_expected(text: &str) -> Expected {
    let mut lines = text.lines();
    let head = lines.next().expect("a first line");
    if head.contains(": ERROR ") {
        // msg=poolN.set [reason:line]
        let open = head.find(" [").expect("[") + 2;
        let close = head.rfind(']').expect("]");
        let inner = &head[open..close];
        let colon = inner.rfind(':').expect(":");
        return Expected::Error {
            reason: inner[..colon].to_string(),
            line: inner[colon + 1..].parse().expect("a line number"),
        };
    }
    assert!(head.contains(": OK "), "{head}");
    assert_eq!(field(head, "directory_based"), "0");
    assert_eq!(field(head, "resvsize"), field(head, "poolsize"));
    let options = u32::from_str_radix(field(head, "options").trim_start_matches("0x"), 16)
        .expect("hex options");
    let mut replicas: Vec<ExpReplica> = Vec::new();
    for line in lines {
        let line = line.trim_start();
        if line.starts_with("replica ") {
            let remote = line.contains(" REMOTE ").then(|| {
                (
                    field(line, "node").to_string(),
                    field(line, "desc").to_string(),
                )
            });
            if remote.is_none() {
                assert_eq!(field(line, "resvsize"), field(line, "repsize"));
                assert_eq!(field(line, "ndirs"), "0");
            }
            replicas.push(ExpReplica {
                remote,
                nparts: num(line, "nparts"),
                nhdrs: num(line, "nhdrs"),
                repsize: num(line, "repsize"),
                parts: Vec::new(),
            });
        } else if line.starts_with("part ") {
            let path = line.split_once(" path=").expect("path=").1.to_string();
            replicas
                .last_mut()
                .expect("a replica before a part")
                .parts
                .push((num(line, "size"), path));
        } else {
            panic!("unexpected line {line:?}");
        }
    }
    Expected::Ok {
        nreplicas: num(head, "nreplicas"),
        options,
        remote: field(head, "remote") == "1",
        poolsize: num(head, "poolsize"),
        replicas,
    }
}

/// Our result in the same shape as PMDK's, or our error.
fn observe(set: &PoolSet<'_>) -> Expected {
    Expected::Ok {
        nreplicas: set.nreplicas(),
        options: set.options().bits(),
        remote: set.has_remote(),
        poolsize: set.pool_size().expect("no AUTO part"),
        replicas: set
            .replicas()
            .map(|r| ExpReplica {
                remote: r
                    .remote()
                    .map(|t| (t.node().to_string(), t.descriptor().to_string())),
                nparts: r.nparts(),
                nhdrs: r.nhdrs(),
                repsize: r.size().expect("no AUTO part"),
                parts: r
                    .parts()
                    .map(|p| (p.size().bytes().expect("fixed"), p.path().to_string()))
                    .collect(),
            })
            .collect(),
    }
}

/// The cases where this parser deliberately differs from PMDK, and what it
/// must give instead. `None`: not a deviation.
fn deviation(name: &str, set: &Result<PoolSet<'_>, PoolSetError>) -> Option<()> {
    let conflict = |line| {
        assert_eq!(
            set.as_ref().err(),
            Some(&PoolSetError {
                line,
                kind: PoolSetErrorKind::ConflictingOptions
            }),
            "{name}"
        );
    };
    // The parts PMDK could not stat: it resolves AUTO at parse time and the
    // test machine had no such Device DAX. We record AUTO and leave it to
    // the daemon.
    let auto_part = |replica: usize, part: usize, path: &str| {
        let set = set.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = set
            .replica(replica)
            .and_then(|r| r.parts().nth(part))
            .expect("the AUTO part");
        assert_eq!(p.size(), PartSize::Auto, "{name}");
        assert_eq!(p.path(), path, "{name}");
        assert!(p.must_be_device_dax());
        assert_eq!(set.pool_size(), None, "{name}: AUTO makes the size unknown");
        let resolved = set.pool_size_with(|_| Some(1 << 40));
        assert!(resolved.is_some(), "{name}");
    };
    match name {
        // SINGLEHDR with NOHDRS: PMDK only logs it; the manual says it fails.
        "pool55.set" => conflict(3),
        "pool56.set" => conflict(2),
        "pool57.set" => conflict(4),
        "pool59.set" => conflict(6),
        "pool40.set" => {
            auto_part(0, 0, "/mountpoint0/myfile.part0");
            let set = set.as_ref().expect("parsed");
            assert_eq!(set.nreplicas(), 1);
            let r0 = set.replica(0).expect("replica 0");
            assert_eq!(r0.size(), None);
            assert_eq!(r0.size_with(|_| Some(8192)), Some(8192));
        }
        "pool42.set" => {
            auto_part(1, 0, "/mountpoint5/mymirror1.part0");
            let set = set.as_ref().expect("parsed");
            assert_eq!(set.nreplicas(), 2);
            let r1 = set.replica(1).expect("replica 1");
            assert_eq!(r1.nparts(), 2);
            // 1 TiB + 400 GiB, minus one extra header.
            assert_eq!(
                r1.size_with(|_| Some(1 << 40)),
                Some((1 << 40) + (400 << 30) - 4096)
            );
            // Replica 0 (700 GiB, 3 headers) is now the smaller one.
            assert_eq!(set.pool_size_with(|_| Some(1 << 40)), Some(751_619_268_608));
        }
        "pool43.set" => {
            auto_part(1, 0, "/mountpoint5/mymirror1.part0");
            let set = set.as_ref().expect("parsed");
            let long = set.replica(0).and_then(|r| r.parts().next()).expect("part");
            assert_eq!(long.path().len(), 3985, "the 3985-byte path is kept whole");
        }
        // PMDK stops at the AUTO part on line 4; we go on and find the
        // absolute descriptor of the remote replica on line 7.
        "pool41.set" => assert_eq!(
            set.as_ref().err(),
            Some(&PoolSetError {
                line: 7,
                kind: PoolSetErrorKind::RelativePathExpected
            }),
            "pool41.set"
        ),
        _ => return None,
    }
    Some(())
}

#[test]
fn every_upstream_pool_set_matches_pmdk() {
    let dir = upstream_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.into_string().expect("a UTF-8 name"))
        .filter(|name| name.starts_with("pool") && name.ends_with(".set"))
        .collect();
    names.sort();
    assert!(names.len() >= 63, "expected pool0..pool62, found {names:?}");

    let mut deviations = BTreeSet::new();
    let mut checked = 0;
    for name in &names {
        let input = fs::read(dir.join(name)).expect("the .set file");
        let stem = name.trim_end_matches(".set");
        let expected_text = fs::read_to_string(dir.join("expected").join(format!("{stem}.txt")))
            .expect("the expected file");
        let expected = parse_expected(&expected_text);
        let result = PoolSet::parse(&input);

        if deviation(name, &result).is_some() {
            deviations.insert(name.clone());
            continue;
        }
        match (&expected, &result) {
            (Expected::Error { reason, line }, Err(e)) => {
                assert_eq!(e.line, *line, "{name}: error line ({e})");
                assert_eq!(&e.kind.to_string(), reason, "{name}: error reason");
                assert_eq!(e.to_string(), format!("line {line}: {reason}"));
            }
            (Expected::Ok { .. }, Ok(set)) => {
                assert_eq!(observe(set), expected, "{name}");
                // What the text tells about the parts: nothing here is AUTO
                // or ends in '/'.
                for r in set.replicas() {
                    for p in r.parts() {
                        assert!(!p.must_be_device_dax() && !p.must_be_directory());
                    }
                }
                // And the canonical form reads back to the same set.
                let text = set.to_string();
                let again = PoolSet::parse(text.as_bytes()).expect("emitted text parses");
                assert_eq!(&again, set, "{name}: round trip of\n{text}");
            }
            (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
        checked += 1;
    }
    let listed: BTreeSet<String> = [
        "pool40.set",
        "pool41.set",
        "pool42.set",
        "pool43.set",
        "pool55.set",
        "pool56.set",
        "pool57.set",
        "pool59.set",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        deviations, listed,
        "every documented deviation was exercised"
    );
    assert_eq!(checked + deviations.len(), names.len());
}

/// The upstream log (`grep0.log.match`) names the same reason and line as
/// the per-case expected files; check our errors against it too.
#[test]
fn upstream_log_reasons_match() {
    let dir = upstream_dir();
    let log = fs::read_to_string(dir.join("grep0.log.match")).expect("grep0.log.match");
    let mut seen = 0;
    for line in log.lines() {
        let Some(open) = line.find(" [") else {
            continue;
        };
        let name = line[..open].trim_start_matches("$(*)").replace("$(nW)", "");
        let inner = &line[open + 2..line.rfind(']').expect("]")];
        let (reason, at) = inner.rsplit_once(':').expect("reason:line");
        let input = fs::read(dir.join(&name)).expect("the .set file");
        let result = PoolSet::parse(&input);
        if deviation(&name, &result).is_some() {
            continue;
        }
        let e = result.expect_err(&name);
        assert_eq!(e.kind.to_string(), reason, "{name}");
        assert_eq!(e.line.to_string(), at, "{name}");
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} error cases in the log");
}
