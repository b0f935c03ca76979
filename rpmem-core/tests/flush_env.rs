//! `FlushInstr::from_env` honours libpmem's `PMEM_NO_CLWB` and
//! `PMEM_NO_CLFLUSHOPT` (only the value `1` switches an instruction off).
//! Its own test binary with one test: it changes the process environment.

use rpmem_core::flush::cpu::FlushInstr;

#[test]
fn only_the_value_1_switches_an_instruction_off() {
    let cases = [
        (None, None, (false, false)),
        (Some("1"), None, (true, false)),
        (Some("0"), None, (false, false)),
        (Some("1"), Some("1"), (true, true)),
        (None, Some("1"), (false, true)),
        (Some("yes"), Some("0"), (false, false)),
    ];
    for (clwb, clflushopt, (no_clwb, no_clflushopt)) in cases {
        for (name, value) in [("PMEM_NO_CLWB", clwb), ("PMEM_NO_CLFLUSHOPT", clflushopt)] {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
        assert_eq!(
            FlushInstr::from_env(),
            FlushInstr::detect_with(no_clwb, no_clflushopt),
            "PMEM_NO_CLWB={clwb:?} PMEM_NO_CLFLUSHOPT={clflushopt:?}"
        );
    }
}
