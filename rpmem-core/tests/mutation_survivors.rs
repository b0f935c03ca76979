//! Checks written for the mutants that cargo-mutants found surviving in
//! `flush/`, `persist/mod.rs` and `policy.rs` (docs/simulation.md, "cargo-mutants"):
//! each test below fails under at least one of them. The texts are what
//! rpmemd logs and what errors print, so they are part of the interface.

use rpmem_core::flush::FlushError;
use rpmem_core::persist::{Method, Op, OpKind, PersistMode, PersistMsgRepr, Placement, ReadDest};
use rpmem_core::policy::{select, PolicyInput, Reason};

#[test]
fn flush_error_names_the_errno() {
    let e = FlushError { errno: 5 };
    assert_eq!(e.to_string(), "flush failed (errno 5)");
}

#[test]
fn op_kinds_print_their_protocol_names() {
    let all = [
        (OpKind::Write, "WRITE"),
        (OpKind::Read, "READ"),
        (OpKind::Send, "SEND"),
        (OpKind::Recv, "RECV"),
        (OpKind::Flush, "FLUSH"),
    ];
    for (kind, name) in all {
        assert_eq!(kind.name(), name);
        assert_eq!(kind.to_string(), name);
    }
}

#[test]
fn wire_len_is_the_bytes_each_operation_moves() {
    let write = Op::Write {
        lane: 0,
        offset: 4096,
        len: 300,
        signaled: true,
    };
    let read = Op::Read {
        lane: 1,
        offset: 8192,
        len: 77,
        dest: ReadDest::Flush,
    };
    let msg = |mode, size| PersistMsgRepr {
        mode,
        completion: false,
        lane: 2,
        offset: 4096,
        size,
    };
    let inline = Op::Send {
        lane: 2,
        msg: msg(PersistMode::PersistSend, 64),
        inline: true,
    };
    let header_only = Op::Send {
        lane: 2,
        msg: msg(PersistMode::FlushWrite, 64),
        inline: false,
    };
    let flush = Op::Flush {
        lane: 3,
        offset: 4096,
        len: 1 << 20,
    };
    assert_eq!(write.wire_len(), 300);
    assert_eq!(read.wire_len(), 77);
    assert_eq!(inline.wire_len(), 24 + 64, "header plus inline data");
    assert_eq!(header_only.wire_len(), 24, "the header alone");
    assert_eq!(flush.wire_len(), 0, "a FLUSH moves no data");
}

#[test]
fn methods_decode_from_pmdks_wire_values_and_print_pmdks_names() {
    assert_eq!(Method::from_wire(1), Some(Method::Gpspm));
    assert_eq!(Method::from_wire(2), Some(Method::Apm));
    assert_eq!(Method::from_wire(0), None);
    assert_eq!(
        Method::from_wire(3),
        None,
        "RDMA FLUSH never travels in PMDK's field"
    );
    for (m, name) in [
        (Method::Gpspm, "GPSPM"),
        (Method::Apm, "APM"),
        (Method::RdmaFlush, "RDMA FLUSH"),
    ] {
        assert_eq!(m.name(), name);
        assert_eq!(m.to_string(), name);
        if m != Method::RdmaFlush {
            assert_eq!(Method::from_wire(m.wire_value()), Some(m));
        }
    }
}

#[test]
fn every_reason_says_which_setting_decided() {
    let input = |apm, general, pmem, placement| PolicyInput {
        persist_apm: apm,
        persist_general: general,
        pool_is_pmem: pmem,
        cache_persistent: false,
        placement,
    };
    let cases = [
        (input(true, false, true, Placement::Rdma), Reason::ApmOnPmem),
        (
            input(true, false, false, Placement::Rdma),
            Reason::ApmNotPmem,
        ),
        (
            input(true, false, true, Placement::Stream),
            Reason::ApmStreamPlacement,
        ),
        (
            input(false, true, true, Placement::Rdma),
            Reason::GpspmOnPmem,
        ),
        (
            input(false, true, false, Placement::Rdma),
            Reason::GpspmNotPmem,
        ),
    ];
    let mut texts = Vec::new();
    for (i, reason) in cases {
        let d = select(i).expect("a method is enabled");
        assert_eq!(d.reason, reason);
        let text = reason.to_string();
        let setting = if i.persist_apm {
            "persist-apm"
        } else {
            "persist-general"
        };
        assert!(text.contains(setting), "{reason:?}: {text:?}");
        texts.push(text);
    }
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 5, "each reason has its own text");
}
