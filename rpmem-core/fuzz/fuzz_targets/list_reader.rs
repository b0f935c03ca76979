//! Fuzz target: read arbitrary bytes as the output of `rpmemd --list` with
//! `rpmem_core::list::Reader` (what the rpmem library does with what a remote
//! rpmemd, or anything in its place, writes). Reading must not panic; an
//! error must render; every record read must write a line that reads back as
//! an equal record; the fields' bytes written again with the writer's
//! escaping must read back as the same bytes.
//!
//! Each input is tried twice: as it is, and after a valid header line, so
//! that libFuzzer reaches the records without first finding the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_core::list::{Field, Reader, Record, SetStatus};

/// `record` written and read back, between a header and (for a record that
/// is not the end) an end record that counts it.
fn round_trip(record: &Record<'_>) {
    if let Record::End { .. } = record {
        // Its count is checked against the records before it, which are
        // not here.
        return;
    }
    let mut text = String::new();
    if !matches!(record, Record::Header { .. }) {
        text.push_str("rpmemd-list\t1\t/\n");
    }
    record.write_line(&mut text).expect("writing to a String");
    if let Record::Set { .. } = record {
        text.push_str("end\t1\n");
    } else {
        text.push_str("end\t0\n");
    }
    let mut read = Reader::new(text.as_bytes()).expect("a written list is whole");
    if !matches!(record, Record::Header { .. }) {
        assert!(matches!(read.next(), Some(Ok(Record::Header { .. }))));
    }
    match read.next() {
        Some(Ok(again)) => assert_eq!(&again, record, "round trip of\n{text}"),
        other => panic!("{other:?} reading back\n{text}"),
    }
}

/// A field's bytes written as raw bytes read back the same.
fn field_round_trip(field: Field<'_>) {
    let bytes: Vec<u8> = field.bytes().collect();
    round_trip(&Record::Incomplete {
        reason: Field::Raw(&bytes[..bytes.len().min(512)]),
    });
    let name = Record::Set {
        name: Field::Raw(&bytes),
        status: SetStatus::Invalid {
            line: None,
            error: Field::text(""),
        },
    };
    round_trip(&name);
}

fn check(data: &[u8]) {
    let reader = match Reader::new(data) {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for record in reader {
        match record {
            Ok(r) => {
                round_trip(&r);
                match r {
                    Record::Header { poolset_dir: f }
                    | Record::Incomplete { reason: f }
                    | Record::Set {
                        status: SetStatus::Invalid { error: f, .. },
                        ..
                    } => field_round_trip(f),
                    Record::Set { name, .. } => field_round_trip(name),
                    Record::End { .. } => {}
                }
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut headed = b"rpmemd-list\t1\t/d\n".to_vec();
    headed.extend_from_slice(data);
    check(&headed);
});
