//! Unit tests of the pool set parser: hand-written cases (rstest tables)
//! and property tests (proptest) of `parse(emit(x)) == x`.

use super::*;
use proptest::prelude::*;
use rstest::rstest;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use PoolSetErrorKind as K;

fn ok(input: &[u8]) -> PoolSet<'_> {
    PoolSet::parse(input).unwrap_or_else(|e| panic!("{e} in {:?}", String::from_utf8_lossy(input)))
}

fn fail(input: &[u8]) -> (u32, PoolSetErrorKind) {
    match PoolSet::parse(input) {
        Ok(set) => panic!("accepted {:?} as {set:?}", String::from_utf8_lossy(input)),
        Err(e) => (e.line, e.kind),
    }
}

fn emitted(set: &PoolSet<'_>) -> String {
    let mut s = String::new();
    emit(set, &mut s).expect("writing to a String cannot fail");
    s
}

fn part_sizes(set: &PoolSet<'_>, replica: usize) -> Vec<PartSize> {
    set.replica(replica)
        .expect("replica")
        .parts()
        .map(|p| p.size())
        .collect()
}

// ---------------------------------------------------------------- sizes --

#[rstest]
#[case("4096", 4096)]
#[case("+8192", 8192)]
#[case("007K", 7 << 10)]
#[case("4096B", 4096)]
#[case("5K", 5 << 10)]
#[case("3M", 3 << 20)]
#[case("2G", 2 << 30)]
#[case("6T", 6 << 40)]
#[case("7P", 7 << 50)]
#[case("4KiB", 4 << 10)]
#[case("3MiB", 3 << 20)]
#[case("2GiB", 2 << 30)]
#[case("6TiB", 6 << 40)]
#[case("7PiB", 7 << 50)]
#[case("5kB", 5_000)]
#[case("3MB", 3_000_000)]
#[case("2GB", 2_000_000_000)]
#[case("6TB", 6_000_000_000_000)]
#[case("7PB", 7_000_000_000_000_000)]
#[case("16383P", 16383 << 50)]
#[case("18446744073709551615", u64::MAX)]
#[case("18446PB", 18_446_000_000_000_000_000)]
fn every_suffix_pmdk_accepts(#[case] size: &str, #[case] bytes: u64) {
    assert_eq!(parse_size(size), Ok(bytes));
    let text = format!("PMEMPOOLSET\n{size} /mnt/part\n");
    let set = ok(text.as_bytes());
    assert_eq!(part_sizes(&set, 0), [PartSize::Fixed(bytes)]);
    assert_eq!(set.pool_size(), Some(bytes & !4095));
}

#[rstest]
// Spellings util_parse_size does not have (case matters).
#[case("1KB", K::WrongSize)]
#[case("1kb", K::WrongSize)]
#[case("1k", K::WrongSize)]
#[case("1b", K::WrongSize)]
#[case("1Gb", K::WrongSize)]
#[case("1gB", K::WrongSize)]
#[case("1GIB", K::WrongSize)]
#[case("1Gi", K::WrongSize)]
#[case("1iB", K::WrongSize)]
#[case("1BB", K::WrongSize)]
#[case("1GK", K::WrongSize)]
#[case("1Bg", K::WrongSize)]
#[case("1GBGBGBGBGB", K::WrongSize)]
#[case("G", K::WrongSize)]
#[case("1.5G", K::WrongSize)]
#[case("0x10", K::WrongSize)]
#[case("1e9", K::WrongSize)]
#[case("auto", K::WrongSize)]
#[case("AUTOX", K::WrongSize)]
#[case("+-1", K::WrongSize)]
#[case("-", K::WrongSize)]
#[case("-G", K::WrongSize)]
#[case("-1X", K::WrongSize)]
// Stricter than PMDK: negative sizes (PMDK wraps -1G to 2^64 - 2^30).
#[case("-1G", K::NegativeSize)]
#[case("-4096", K::NegativeSize)]
#[case("-0", K::NegativeSize)]
// Zero (PMDK: "incorrect format of size" too).
#[case("0", K::ZeroSize)]
#[case("0G", K::ZeroSize)]
#[case("+0", K::ZeroSize)]
#[case("000KiB", K::ZeroSize)]
// Stricter than PMDK: overflow (PMDK clamps or wraps; 16384P wraps to 0).
#[case("18446744073709551616", K::SizeOverflow)]
#[case("99999999999999999999999", K::SizeOverflow)]
#[case("16384P", K::SizeOverflow)]
#[case("16777216T", K::SizeOverflow)]
#[case("18447PB", K::SizeOverflow)]
#[case("17179869184G", K::SizeOverflow)]
// Stricter than PMDK: less than one page.
#[case("1", K::PartTooSmall { size: 1 })]
#[case("4095", K::PartTooSmall { size: 4095 })]
#[case("3K", K::PartTooSmall { size: 3072 })]
#[case("4kB", K::PartTooSmall { size: 4000 })]
fn bad_sizes(#[case] size: &str, #[case] kind: PoolSetErrorKind) {
    let text = format!("PMEMPOOLSET\n# a comment\n{size} /mnt/part\n");
    assert_eq!(fail(text.as_bytes()), (3, kind));
    let err = PoolSet::parse(text.as_bytes()).expect_err("rejected");
    assert!(err.to_string().starts_with("line 3: "), "{err}");
}

#[test]
fn parse_size_reports_the_reason() {
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size(""), Err(SizeError::Format));
    assert_eq!(parse_size("-1G"), Err(SizeError::Negative));
    assert_eq!(parse_size("16384P"), Err(SizeError::Overflow));
    assert_eq!(parse_size("1 G"), Err(SizeError::Format));
}

#[rstest]
#[case(4096, "4K")]
#[case(4097, "4097")]
#[case(1000, "1000")]
#[case(1 << 20, "1M")]
#[case(3 << 30, "3G")]
#[case(1536 << 20, "1536M")]
#[case(107_374_182_400, "100G")]
#[case(1 << 50, "1P")]
#[case(1 << 63, "8192P")]
#[case(u64::MAX, "18446744073709551615")]
#[case(0, "0")]
fn canonical_sizes(#[case] bytes: u64, #[case] text: &str) {
    assert_eq!(CanonicalSize(bytes).to_string(), text);
    assert_eq!(parse_size(text), Ok(bytes));
}

// ------------------------------------------------------------ structure --

#[rstest]
// The signature line.
#[case(b"", 1, K::Signature)]
#[case(b"PMEMPOOLSET", 1, K::Signature)]
#[case(b"PMEMPOOLSET\r", 1, K::Signature)]
#[case(b"PMEMPOOLSET\r\r\n4K /a\n", 1, K::Signature)]
#[case(b"pmempoolset\n4K /a\n", 1, K::Signature)]
#[case(b" PMEMPOOLSET\n4K /a\n", 1, K::Signature)]
#[case(b"PMEMPOOLSET \n4K /a\n", 1, K::Signature)]
#[case(b"PMEMPOOLSET # comment\n4K /a\n", 1, K::Signature)]
#[case(b"\xef\xbb\xbfPMEMPOOLSET\n4K /a\n", 1, K::Signature)]
#[case(b"\nPMEMPOOLSET\n4K /a\n", 1, K::Signature)]
// No parts: reported on the line after the last one.
#[case(b"PMEMPOOLSET\n", 2, K::NoPoolSetParts)]
#[case(b"PMEMPOOLSET\r\n", 2, K::NoPoolSetParts)]
#[case(b"PMEMPOOLSET\n# only a comment", 3, K::NoPoolSetParts)]
#[case(b"PMEMPOOLSET\nREPLICA\n4K /a\n", 2, K::NoPoolSetParts)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA", 4, K::NoReplicaParts)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA\n\n\n", 6, K::NoReplicaParts)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA\nREPLICA\n4K /b\n", 4, K::NoReplicaParts)]
// PMDK's quirk: a remote replica line does not check the local replica
// before it, so an empty replica is found later.
#[case(b"PMEMPOOLSET\nREPLICA node set\n", 3, K::NoReplicaParts)]
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA\nREPLICA node set\n",
    5,
    K::NoReplicaParts
)]
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA\nREPLICA n s\nREPLICA\n4K /b\n",
    5,
    K::NoReplicaParts
)]
#[case(b"PMEMPOOLSET\nREPLICA node set\n4K /a\n", 3, K::UnexpectedRemoteParts)]
// Remote replicas.
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA node set\n4K /b\n",
    4,
    K::UnexpectedRemoteParts
)]
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA node set\n  garbage\n",
    4,
    K::UnexpectedRemoteParts
)]
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA node set\n\xff\n",
    4,
    K::UnexpectedRemoteParts
)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA node /set\n", 3, K::RelativePathExpected)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA node\n", 3, K::RemoteReplicaExpected)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA \n", 3, K::RemoteReplicaExpected)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA # local?\n", 3, K::RemoteReplicaExpected)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA a b c\n", 3, K::InvalidToken)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICAS\n", 3, K::ReplicaExpected)]
#[case(b"PMEMPOOLSET\n4K /a\nREPLICA#\n", 4, K::NoReplicaParts)]
#[case(b"PMEMPOOLSET\n4K /a\n REPLICA\n", 3, K::InvalidToken)]
#[case(b"PMEMPOOLSET\n4K /a\nreplica\n", 3, K::InvalidToken)]
// Options.
#[case(b"PMEMPOOLSET\nOPTION\n4K /a\n", 2, K::MissingOptionName)]
#[case(b"PMEMPOOLSET\nOPTION \t # none\n4K /a\n", 2, K::MissingOptionName)]
#[case(b"PMEMPOOLSET\nOPTION singlehdr\n4K /a\n", 2, K::UnknownOption)]
#[case(b"PMEMPOOLSET\nOPTION SINGLEHDR XXX\n4K /a\n", 2, K::UnknownOption)]
#[case(b"PMEMPOOLSET\nOPTIONS NOHDRS\n4K /a\n", 2, K::UnknownOption)]
// Stricter than PMDK: it takes these as OPTION SINGLEHDR / NOHDRS.
#[case(b"PMEMPOOLSET\nOPTIONSINGLEHDR\n4K /a\n", 2, K::UnknownOption)]
#[case(b"PMEMPOOLSET\nOPTIONNOHDRS\n4K /a\n", 2, K::UnknownOption)]
// Stricter than PMDK: SINGLEHDR with NOHDRS, wherever they are.
#[case(
    b"PMEMPOOLSET\nOPTION SINGLEHDR NOHDRS\n4K /a\n",
    2,
    K::ConflictingOptions
)]
#[case(
    b"PMEMPOOLSET\nOPTION NOHDRS\n4K /a\nREPLICA\n4K /b\nOPTION SINGLEHDR\n",
    6,
    K::ConflictingOptions
)]
// Part lines.
#[case(b"PMEMPOOLSET\n4K a\n", 2, K::AbsolutePathExpected)]
#[case(b"PMEMPOOLSET\n4K ./a\n", 2, K::AbsolutePathExpected)]
#[case(b"PMEMPOOLSET\n4K\n", 2, K::InvalidToken)]
#[case(b"PMEMPOOLSET\n4K /a /b\n", 2, K::InvalidToken)]
#[case(b"PMEMPOOLSET\n/a 4K\n", 2, K::AbsolutePathExpected)]
#[case(b"PMEMPOOLSET\n4X /a\n", 2, K::WrongSize)]
#[case(b"PMEMPOOLSET\n4X a\n", 2, K::AbsolutePathExpected)]
#[case(b"PMEMPOOLSET\n    \n4K /a\n", 2, K::InvalidToken)]
#[case(b"PMEMPOOLSET\n\t# indented comment\n4K /a\n", 2, K::InvalidToken)]
#[case(b"PMEMPOOLSET\nAUTO /dev/dax0.0/\n", 2, K::AutoSizeOnDirectory)]
// Stricter than PMDK: control characters and bad UTF-8 before a comment.
#[case(b"PMEMPOOLSET\n4K /a\r\r\n", 2, K::ControlCharacter { byte: 0x0d, column: 6 })]
#[case(b"PMEMPOOLSET\n4K /a\r", 2, K::ControlCharacter { byte: 0x0d, column: 6 })]
#[case(b"PMEMPOOLSET\n4K /a\0b\n", 2, K::ControlCharacter { byte: 0, column: 6 })]
#[case(b"PMEMPOOLSET\n4K\x0b/a\n", 2, K::ControlCharacter { byte: 0x0b, column: 3 })]
#[case(b"PMEMPOOLSET\n4K /\x7f\n", 2, K::ControlCharacter { byte: 0x7f, column: 5 })]
#[case(b"PMEMPOOLSET\n4K /\xff\x01\n", 2, K::NotUtf8 { column: 5 })]
#[case(b"PMEMPOOLSET\n4K /\x01\xff\n", 2, K::ControlCharacter { byte: 1, column: 5 })]
#[case(b"PMEMPOOLSET\n4K /caf\xc3\n", 2, K::NotUtf8 { column: 8 })]
// Stricter than PMDK: a replica larger than 2^64 bytes.
#[case(
    b"PMEMPOOLSET\n16777215T /a\n16777215T /b\n",
    3,
    K::ReplicaSizeOverflow
)]
#[case(
    b"PMEMPOOLSET\n4K /a\nREPLICA\n8192P /b\n8192P /c\n",
    5,
    K::ReplicaSizeOverflow
)]
fn rejected(#[case] input: &[u8], #[case] line: u32, #[case] kind: PoolSetErrorKind) {
    assert_eq!(fail(input), (line, kind));
}

#[rstest]
#[case(b"PMEMPOOLSET\n4K /a# comment", "/a")]
#[case(b"PMEMPOOLSET\n4K /a#b\n", "/a")]
#[case(b"PMEMPOOLSET\n4K\t/a\t# tab, comment\n", "/a")]
#[case(b"PMEMPOOLSET\n \t 4K \t /a \t\n", "/a")]
#[case(b"PMEMPOOLSET\n4K /caf\xc3\xa9/\xe6\x97\xa5\n", "/caf\u{e9}/\u{65e5}")]
#[case(
    b"PMEMPOOLSET\n4K /a # \xff\x00\x01 bytes in a comment are ignored\n",
    "/a"
)]
#[case(b"PMEMPOOLSET\r\n\r\n4K /a\r\n", "/a")]
#[case(
    b"PMEMPOOLSET\n4K /path\\with\"odd'chars$\n",
    "/path\\with\"odd'chars$"
)]
fn accepted_single_part(#[case] input: &[u8], #[case] path: &str) {
    let set = ok(input);
    assert_eq!(set.nreplicas(), 1);
    let parts: Vec<Part<'_>> = set.replica(0).expect("replica 0").parts().collect();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].path(), path);
    assert_eq!(parts[0].size(), PartSize::Fixed(4096));
}

#[test]
fn crlf_file_equals_lf_file() {
    let lf = "PMEMPOOLSET\n# master\n100G /m0/p0 # first\n\n200G\t/m1/p1\nOPTION SINGLEHDR\nREPLICA\n300G /m2/p0\nREPLICA host set\n";
    let crlf = lf.replace('\n', "\r\n");
    let a = ok(lf.as_bytes());
    let b = ok(crlf.as_bytes());
    assert_eq!(a, b);
    assert_eq!(a.options().bits(), Options::SINGLEHDR_BIT);
    assert_eq!(b.replica(0).expect("r0").size(), Some(300 << 30));
    let lines: Vec<u32> = b
        .replica(0)
        .expect("r0")
        .parts()
        .map(|p| p.line())
        .collect();
    assert_eq!(lines, [3, 5]);
    assert_eq!(b.replica(1).expect("r1").line(), 7);
    assert_eq!(b.replica(2).expect("r2").line(), 9);
}

#[test]
fn remote_replicas() {
    let text = b"PMEMPOOLSET\n1G /a\nREPLICA user@host pools/remote.set\nREPLICA\n2G /b\nREPLICA [::1] x\n";
    let set = ok(text);
    assert_eq!(set.nreplicas(), 4);
    assert!(set.has_remote());
    let r1 = set.replica(1).expect("r1");
    assert!(r1.is_remote());
    let remote = r1.remote().expect("remote");
    assert_eq!(remote.node(), "user@host");
    assert_eq!(remote.descriptor(), "pools/remote.set");
    assert_eq!((r1.nparts(), r1.nhdrs(), r1.size()), (1, 1, Some(8192)));
    assert_eq!(r1.parts().count(), 0);
    assert_eq!(r1.line(), 3);
    let r3 = set.replica(3).expect("r3");
    assert_eq!(
        r3.remote().map(|r| (r.node(), r.descriptor())),
        Some(("[::1]", "x"))
    );
    // The pool size ignores remote replicas (8192 would be the minimum).
    assert_eq!(set.pool_size(), Some(1 << 30));
    assert!(set.replica(4).is_none());

    let nohdrs = ok(b"PMEMPOOLSET\nOPTION NOHDRS\n1G /a\nREPLICA host set\n");
    let r1 = nohdrs.replica(1).expect("r1");
    assert_eq!((r1.nparts(), r1.nhdrs(), r1.size()), (1, 0, Some(8192)));
    assert!(!ok(b"PMEMPOOLSET\n1G /a\n").has_remote());
}

#[test]
fn auto_parts() {
    let set = ok(b"PMEMPOOLSET\nAUTO /dev/dax0.0\n1G /mnt/b\nREPLICA\n2G /mnt/c\n");
    let r0 = set.replica(0).expect("r0");
    assert!(r0.has_auto_parts());
    let parts: Vec<Part<'_>> = r0.parts().collect();
    assert_eq!(parts[0].size(), PartSize::Auto);
    assert!(parts[0].must_be_device_dax());
    assert!(!parts[0].must_be_directory());
    assert_eq!(parts[0].aligned_size(), None);
    assert!(!parts[1].must_be_device_dax());
    assert_eq!(r0.size(), None);
    assert_eq!(set.pool_size(), None);
    // A 3 GiB + 100-byte device: aligned down, minus one extra header.
    let dax = (3 << 30) + 100;
    assert_eq!(r0.size_with(|_| Some(dax)), Some((4 << 30) - 4096));
    assert_eq!(set.pool_size_with(|_| Some(dax)), Some(2 << 30));
    assert_eq!(set.pool_size_with(|_| None), None);
    assert_eq!(r0.size_with(|_| Some(u64::MAX)), None, "sum overflows");
    assert!(!set.replica(1).expect("r1").has_auto_parts());
}

#[test]
fn directory_paths_are_recorded() {
    let set = ok(b"PMEMPOOLSET\nOPTION SINGLEHDR\n1T /mnt/pmem0/dir/\n");
    let part = set.replica(0).and_then(|r| r.parts().next()).expect("part");
    assert!(part.must_be_directory());
    assert!(!part.must_be_device_dax());
}

#[rstest]
// Default: one header per part, all but the first taken off.
#[case("", 3, (12 << 20) - 2 * 4096)]
#[case("OPTION SINGLEHDR\n", 1, 12 << 20)]
#[case("OPTION NOHDRS\n", 0, 12 << 20)]
#[case("OPTION SINGLEHDR # again\nOPTION\tSINGLEHDR\tSINGLEHDR\n", 1, 12 << 20)]
fn headers_and_sizes(#[case] options: &str, #[case] nhdrs: u32, #[case] size: u64) {
    // Options placed after the parts apply too (pool50 upstream).
    let before = format!("PMEMPOOLSET\n{options}4M /a\n4M /b\n4M /c\n");
    let after = format!("PMEMPOOLSET\n4M /a\n4M /b\n{options}4M /c\n");
    for text in [before, after] {
        let set = ok(text.as_bytes());
        let r0 = set.replica(0).expect("r0");
        assert_eq!((r0.nparts(), r0.nhdrs(), r0.size()), (3, nhdrs, Some(size)));
        assert_eq!(set.pool_size(), Some(size));
    }
}

#[test]
fn unaligned_parts_are_rounded_down() {
    // 5000 and 9000 bytes: 4096 + 8192 aligned, minus one header.
    let set = ok(b"PMEMPOOLSET\n5000 /a\n9000 /b\nREPLICA\n1000000B /c\n");
    let r0 = set.replica(0).expect("r0");
    assert_eq!(r0.size(), Some(8192));
    let aligned: Vec<Option<u64>> = r0.parts().map(|p| p.aligned_size()).collect();
    assert_eq!(aligned, [Some(4096), Some(8192)]);
    assert_eq!(set.replica(1).expect("r1").size(), Some(999_424));
    assert_eq!(set.pool_size(), Some(8192));
}

#[test]
fn bounds() {
    let replicas = |n: usize, remote_last: bool| {
        let mut s = String::from("PMEMPOOLSET\n4K /r0\n");
        for i in 1..n {
            if remote_last && i == n - 1 {
                s.push_str("REPLICA node desc\n");
            } else {
                s.push_str(&format!("REPLICA\n4K /r{i}\n"));
            }
        }
        s
    };
    assert_eq!(
        ok(replicas(MAX_REPLICAS, false).as_bytes()).nreplicas(),
        MAX_REPLICAS
    );
    assert_eq!(
        ok(replicas(MAX_REPLICAS, true).as_bytes()).nreplicas(),
        MAX_REPLICAS
    );
    let too_many = replicas(MAX_REPLICAS + 1, false);
    // Replica i >= 1 starts on line 3 + 2 * (i - 1): the 65th (i = 64) on 129.
    assert_eq!(fail(too_many.as_bytes()), (129, K::TooManyReplicas));
    let too_many_remote = replicas(MAX_REPLICAS + 1, true);
    assert_eq!(fail(too_many_remote.as_bytes()), (129, K::TooManyReplicas));

    let parts = |n: u32| {
        let mut s = String::from("PMEMPOOLSET\n4K /first\nREPLICA\n");
        for i in 0..n {
            s.push_str(&format!("4K /p{i}\n"));
        }
        s
    };
    let max = parts(MAX_PARTS);
    let set = ok(max.as_bytes());
    let r1 = set.replica(1).expect("r1");
    assert_eq!(r1.nparts(), MAX_PARTS);
    assert_eq!(r1.parts().len(), 1024);
    assert_eq!(r1.parts().last().map(|p| p.path()), Some("/p1023"));
    assert_eq!(r1.size(), Some(4096));
    assert_eq!(
        fail(parts(MAX_PARTS + 1).as_bytes()),
        (4 + MAX_PARTS, K::TooManyParts)
    );
}

#[test]
fn error_display_names_the_line() {
    let e = PoolSet::parse(b"PMEMPOOLSET\n100G /a\nREPLICA\n10X0G /b\n").expect_err("bad size");
    assert_eq!(e.to_string(), "line 4: incorrect format of size");
    let e = PoolSet::parse(b"PMEMPOOLSET\nOPTION SINGLEHDR NOHDRS\n").expect_err("conflict");
    assert_eq!(
        e.to_string(),
        "line 2: options SINGLEHDR and NOHDRS are mutually exclusive"
    );
    let e = PoolSet::parse(b"PMEMPOOLSET\n1G /\xff\n").expect_err("utf-8");
    assert_eq!(
        e.to_string(),
        "line 2: the line is not valid UTF-8 (bad byte at column 5)"
    );
    let e = PoolSet::parse(b"PMEMPOOLSET\n1G /\x01\n").expect_err("control");
    assert_eq!(e.to_string(), "line 2: control character 0x01 at column 5");
    let e = PoolSet::parse(b"PMEMPOOLSET\n12 /a\n").expect_err("small");
    assert_eq!(
        e.to_string(),
        "line 2: part size 12 is smaller than the minimum of 4096 bytes (one page)"
    );
}

#[test]
fn emit_is_canonical() {
    let input = b"PMEMPOOLSET\n# c\n100G /m0/p0\n1000000B\t/m1/p1 # x\nOPTION NOHDRS\nREPLICA\nAUTO /dev/dax1.0\nREPLICA u@h rel/set.set\n";
    let set = ok(input);
    let text = emitted(&set);
    assert_eq!(
        text,
        "PMEMPOOLSET\nOPTION NOHDRS\n100G /m0/p0\n1000000 /m1/p1\nREPLICA\nAUTO /dev/dax1.0\nREPLICA u@h rel/set.set\n"
    );
    assert_eq!(set.to_string(), text);
    let again = ok(text.as_bytes());
    assert_eq!(again, set);
    assert_eq!(emitted(&again), text);
    let single = ok(b"PMEMPOOLSET\nOPTION SINGLEHDR\n4K /a\n");
    assert_eq!(emitted(&single), "PMEMPOOLSET\nOPTION SINGLEHDR\n4K /a\n");
}

#[test]
fn equality_ignores_lines_but_not_content() {
    let a = ok(b"PMEMPOOLSET\n4K /a\nREPLICA\n4K /b\n");
    let b = ok(b"PMEMPOOLSET\n\n# moved\n4096 /a\n\nREPLICA\n\n4K /b\n");
    assert_eq!(a, b);
    let c = ok(b"PMEMPOOLSET\n4K /a\nREPLICA\n8K /b\n");
    let d = ok(b"PMEMPOOLSET\n4K /a\nREPLICA\n4K /c\n");
    let e = ok(b"PMEMPOOLSET\n4K /a\nREPLICA n b\n");
    let f = ok(b"PMEMPOOLSET\nOPTION SINGLEHDR\n4K /a\nREPLICA\n4K /b\n");
    let g = ok(b"PMEMPOOLSET\n4K /a\nREPLICA\n4K /b\n4K /c\n");
    for other in [&c, &d, &e, &f, &g] {
        assert_ne!(&a, other);
    }
    assert_ne!(a.replica(1), e.replica(1));
    assert_eq!(a.replica(0), e.replica(0));
}

#[test]
fn debug_output_shows_the_structure() {
    let set = ok(b"PMEMPOOLSET\n4K /a\nREPLICA n d\n");
    let dbg = format!("{set:?}");
    assert!(dbg.contains("\"/a\""), "{dbg}");
    assert!(dbg.contains("node: \"n\""), "{dbg}");
    assert!(dbg.contains("Fixed(4096)"), "{dbg}");
}

#[test]
fn iterators_report_exact_lengths() {
    let set =
        ok(b"PMEMPOOLSET\n4K /a\n# x\nOPTION SINGLEHDR\n4K /b\nREPLICA\n4K /c\nREPLICA n d\n");
    let mut replicas = set.replicas();
    assert_eq!(replicas.len(), 3);
    let r0 = replicas.next().expect("r0");
    assert_eq!(replicas.len(), 2);
    let mut parts = r0.parts();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts.next().map(|p| (p.path(), p.line())), Some(("/a", 2)));
    assert_eq!(parts.len(), 1);
    assert_eq!(parts.next().map(|p| (p.path(), p.line())), Some(("/b", 5)));
    assert_eq!(parts.next(), None);
    assert_eq!(parts.next(), None);
    assert_eq!(replicas.nth(1).map(|r| r.index()), Some(2));
    assert!(replicas.next().is_none());
}

// ------------------------------------------------------------ proptests --

/// A pool set as the tests think of it.
#[derive(Clone, Debug)]
enum ModelReplica {
    Local(Vec<(PartSize, String)>),
    Remote(String, String),
}

#[derive(Clone, Debug)]
struct Model {
    options: Options,
    replicas: Vec<ModelReplica>,
}

impl Model {
    /// The expected usable size of a replica, computed independently.
    fn replica_size(&self, r: &ModelReplica) -> Option<u64> {
        let nhdrs = |n: u64| {
            if self.options.single_hdr {
                1
            } else if self.options.no_hdrs {
                0
            } else {
                n
            }
        };
        match r {
            ModelReplica::Remote(..) => Some(8192),
            ModelReplica::Local(parts) => {
                let mut sum: u128 = 0;
                for (size, _) in parts {
                    sum += u128::from(size.bytes()? / 4096 * 4096);
                }
                let hdrs = nhdrs(parts.len() as u64);
                let total = sum - u128::from(hdrs.saturating_sub(1) * 4096);
                Some(u64::try_from(total).expect("generated sizes fit"))
            }
        }
    }
}

/// A size and one of its spellings.
fn size_strategy() -> impl Strategy<Value = (PartSize, String)> {
    prop_oneof![
        1 => Just((PartSize::Auto, String::from("AUTO"))),
        12 => (0..=SUFFIXES.len(), 1u64..=1000, any::<bool>()).prop_map(|(i, mantissa, plus)| {
            let (suffix, mult) = SUFFIXES.get(i).copied().unwrap_or(("", 1));
            let mantissa = if mantissa * mult < 4096 { mantissa * 4096 } else { mantissa };
            let sign = if plus { "+" } else { "" };
            (PartSize::Fixed(mantissa * mult), format!("{sign}{mantissa}{suffix}"))
        }),
    ]
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9._\u{e9}\u{65e5}-]{1,8}", 1..4)
        .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn local_strategy() -> impl Strategy<Value = Vec<(PartSize, String, String)>> {
    prop::collection::vec(
        (size_strategy(), path_strategy(), any::<bool>()).prop_map(|((size, text), path, dir)| {
            // A trailing '/' only where the size is not AUTO.
            let path = if dir && size != PartSize::Auto {
                format!("{path}/")
            } else {
                path
            };
            (size, text, path)
        }),
        1..5,
    )
}

#[derive(Clone, Debug)]
enum GenReplica {
    Local(Vec<(PartSize, String, String)>),
    Remote(String, String),
}

fn model_strategy() -> impl Strategy<Value = (Model, Vec<GenReplica>, Vec<u8>)> {
    let replica = prop_oneof![
        3 => local_strategy().prop_map(GenReplica::Local),
        1 => ("[a-z]{1,6}(@[a-z0-9.]{1,8})?", "[a-z]{1,6}(/[a-z.]{1,6}){0,2}")
            .prop_map(|(n, d)| GenReplica::Remote(n, d)),
    ];
    (
        local_strategy(),
        prop::collection::vec(replica, 0..5),
        0u8..3,
        // Per-line decoration choices.
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(master, rest, opt, decor)| {
            let options = match opt {
                0 => Options::default(),
                1 => Options {
                    single_hdr: true,
                    no_hdrs: false,
                },
                _ => Options {
                    single_hdr: false,
                    no_hdrs: true,
                },
            };
            let mut gen = vec![GenReplica::Local(master)];
            gen.extend(rest);
            let model = Model {
                options,
                replicas: gen
                    .iter()
                    .map(|r| match r {
                        GenReplica::Local(parts) => ModelReplica::Local(
                            parts.iter().map(|(s, _, p)| (*s, p.clone())).collect(),
                        ),
                        GenReplica::Remote(n, d) => ModelReplica::Remote(n.clone(), d.clone()),
                    })
                    .collect(),
            };
            let text = render(&model, &gen, &decor);
            (model, gen, text)
        })
}

/// Writes a generated pool set with random but valid decoration: CRLF or
/// LF, comments, blank lines, blanks around tokens, options anywhere.
fn render(model: &Model, gen: &[GenReplica], decor: &[u8]) -> Vec<u8> {
    let mut d = decor.iter().copied().cycle();
    let mut next = move || d.next().unwrap_or(0);
    let mut lines: Vec<String> = Vec::new();
    let blank = |b: u8| match b % 4 {
        0 => " ",
        1 => "\t",
        2 => " \t ",
        _ => "  ",
    };
    let mut option_lines = Vec::new();
    if model.options.single_hdr {
        option_lines.push("OPTION SINGLEHDR");
    }
    if model.options.no_hdrs {
        option_lines.push("OPTION\tNOHDRS # trailing comment");
    }
    for (i, r) in gen.iter().enumerate() {
        match r {
            GenReplica::Local(parts) => {
                if i > 0 {
                    lines.push(String::from("REPLICA"));
                }
                for (_, size, path) in parts {
                    let lead = if next() % 4 == 0 { blank(next()) } else { "" };
                    let mid = blank(next());
                    let tail = match next() % 4 {
                        0 => String::from(" # comment"),
                        1 => String::from("#"),
                        2 => String::from(blank(next())),
                        _ => String::new(),
                    };
                    lines.push(format!("{lead}{size}{mid}{path}{tail}"));
                }
            }
            GenReplica::Remote(n, d) => {
                lines.push(format!("REPLICA{}{n}{}{d}", blank(next()), blank(next())));
            }
        }
        if next() % 3 == 0 {
            lines.push(String::from("# between"));
        }
        if next() % 3 == 0 {
            lines.push(String::new());
        }
    }
    for opt in option_lines {
        // Anywhere after the signature.
        let at = usize::from(next()) % (lines.len() + 1);
        lines.insert(at, String::from(opt));
    }
    let eol = if next() % 2 == 0 { "\n" } else { "\r\n" };
    let mut text = format!("PMEMPOOLSET{eol}");
    for l in &lines {
        text.push_str(l);
        text.push_str(eol);
    }
    if next() % 4 == 0 {
        // No line end after the last line.
        let trimmed = text.trim_end_matches(eol).len();
        text.truncate(trimmed);
    }
    text.into_bytes()
}

fn check_against_model(set: &PoolSet<'_>, model: &Model) {
    assert_eq!(set.options(), model.options);
    assert_eq!(set.nreplicas(), model.replicas.len());
    let mut pool: Option<Option<u64>> = None;
    for (r, m) in set.replicas().zip(&model.replicas) {
        match m {
            ModelReplica::Remote(n, d) => {
                let remote = r.remote().expect("remote");
                assert_eq!(
                    (remote.node(), remote.descriptor()),
                    (n.as_str(), d.as_str())
                );
                assert_eq!(r.nparts(), 1);
            }
            ModelReplica::Local(parts) => {
                assert!(!r.is_remote());
                let got: Vec<(PartSize, String)> = r
                    .parts()
                    .map(|p| (p.size(), p.path().to_string()))
                    .collect();
                assert_eq!(&got, parts);
                assert_eq!(r.nparts() as usize, parts.len());
                for p in r.parts() {
                    assert_eq!(p.must_be_directory(), p.path().ends_with('/'));
                    assert_eq!(p.must_be_device_dax(), p.size() == PartSize::Auto);
                }
                let size = model.replica_size(m);
                pool = Some(match (pool, size) {
                    (None, s) => s,
                    (Some(Some(a)), Some(b)) => Some(a.min(b)),
                    _ => None,
                });
            }
        }
        assert_eq!(r.size(), model.replica_size(m));
    }
    assert_eq!(set.pool_size(), pool.flatten());
}

/// Fragments that make lines: keywords, sizes, paths, blanks and junk.
fn soup_strategy() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"OPTION"[..]),
        Just(&b"REPLICA"[..]),
        Just(&b"SINGLEHDR"[..]),
        Just(&b"NOHDRS"[..]),
        Just(&b"AUTO"[..]),
        Just(&b"4K"[..]),
        Just(&b"1G"[..]),
        Just(&b"-1G"[..]),
        Just(&b"16384P"[..]),
        Just(&b"8192P"[..]),
        Just(&b"0"[..]),
        Just(&b"/a"[..]),
        Just(&b"/d/"[..]),
        Just(&b"rel"[..]),
        Just(&b"host"[..]),
        Just(&b" "[..]),
        Just(&b"\t"[..]),
        Just(&b"#"[..]),
        Just(&b"\r"[..]),
        Just(&b"\xff"[..]),
        Just(&b"\x00"[..]),
        Just(&b"\xc3\xa9"[..]),
    ];
    let line = prop::collection::vec(fragment, 0..6).prop_map(|f| f.concat());
    prop::collection::vec(line, 0..12).prop_map(|lines| {
        let mut text = b"PMEMPOOLSET\n".to_vec();
        text.extend(lines.join(&b"\n"[..]));
        text
    })
}

/// Whatever the input, parsing does not panic, an error names a line that
/// exists (or the one after the last), and an accepted set round-trips.
fn check_any(input: &[u8]) {
    let nlines = input.split(|&b| b == b'\n').count();
    match PoolSet::parse(input) {
        Err(e) => {
            assert!(
                e.line >= 1 && e.line as usize <= nlines + 1,
                "{e} with {nlines} lines"
            );
            assert!(!e.to_string().is_empty());
        }
        Ok(set) => {
            let text = emitted(&set);
            let again = PoolSet::parse(text.as_bytes()).expect("emitted text parses");
            assert_eq!(again, set);
            assert_eq!(emitted(&again), text);
            assert!(!(set.options().single_hdr && set.options().no_hdrs));
            for r in set.replicas() {
                assert_eq!(
                    r.parts().count(),
                    if r.is_remote() {
                        0
                    } else {
                        r.nparts() as usize
                    }
                );
                assert!(r.nparts() >= 1 && r.nparts() <= MAX_PARTS);
                let _ = r.size();
            }
            assert!(set.replica(0).is_some_and(|r| !r.is_remote()));
            let _ = set.pool_size();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_sets_parse_to_their_model_and_round_trip((model, _gen, text) in model_strategy()) {
        let set = PoolSet::parse(&text)
            .unwrap_or_else(|e| panic!("{e} in\n{}", String::from_utf8_lossy(&text)));
        check_against_model(&set, &model);
        let canonical = emitted(&set);
        let again = PoolSet::parse(canonical.as_bytes()).expect("emitted text parses");
        prop_assert_eq!(&again, &set);
        check_against_model(&again, &model);
        prop_assert_eq!(emitted(&again), canonical.clone());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256)) {
        check_any(&input);
        let mut signed = b"PMEMPOOLSET\n".to_vec();
        signed.extend(&input);
        check_any(&signed);
    }

    #[test]
    fn line_soup_never_panics(input in soup_strategy()) {
        check_any(&input);
    }
}
