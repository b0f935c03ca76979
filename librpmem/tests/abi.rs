//! The shared object's ABI: soname `librpmem.so.1`, and exactly PMDK's
//! twelve functions exported, each under the version `LIBRPMEM_1.0`
//! (PMDK's `librpmem.link`).

mod common;

use std::process::Command;

const FUNCTIONS: [&str; 12] = [
    "rpmem_check_version",
    "rpmem_close",
    "rpmem_create",
    "rpmem_deep_persist",
    "rpmem_drain",
    "rpmem_errormsg",
    "rpmem_flush",
    "rpmem_open",
    "rpmem_persist",
    "rpmem_read",
    "rpmem_remove",
    "rpmem_set_attr",
];

fn tool(program: &str, args: &[&str]) -> String {
    let so = common::built_so();
    let out = Command::new(program)
        .args(args)
        .arg(&so)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install binutils): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} {} failed: {}",
        so.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn soname_is_librpmem_so_1() {
    let dynamic = tool("readelf", &["-d", "-W"]);
    let sonames: Vec<&str> = dynamic.lines().filter(|l| l.contains("(SONAME)")).collect();
    assert_eq!(sonames.len(), 1, "{dynamic}");
    assert!(
        sonames[0].ends_with("Library soname: [librpmem.so.1]"),
        "{}",
        sonames[0]
    );
}

#[test]
fn exactly_the_twelve_functions_are_exported_with_librpmem_1_0() {
    let nm = tool("nm", &["-D", "--defined-only"]);
    let mut exported: Vec<(String, String)> = nm
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            Some((kind.to_owned(), name.to_owned()))
        })
        .collect();
    exported.sort();
    let want: Vec<(String, String)> = FUNCTIONS
        .iter()
        .map(|f| ("T".to_owned(), format!("{f}@@LIBRPMEM_1.0")))
        .collect();
    // The version definition itself is listed as an absolute symbol by
    // some binutils versions; nothing else may be there.
    exported.retain(|(kind, name)| !(kind == "A" && name == "LIBRPMEM_1.0"));
    assert_eq!(exported, want, "nm -D --defined-only:\n{nm}");
}

#[test]
fn the_version_node_is_librpmem_1_0() {
    let versions = tool("readelf", &["-V", "-W"]);
    let defs: Vec<&str> = versions
        .lines()
        .skip_while(|l| !l.starts_with("Version definition section"))
        .take_while(|l| !l.is_empty())
        .filter(|l| l.contains("Name:"))
        .collect();
    assert_eq!(defs.len(), 2, "{versions}");
    assert!(defs[0].contains("Flags: BASE") && defs[0].ends_with("Name: librpmem.so.1"));
    assert!(defs[1].ends_with("Name: LIBRPMEM_1.0"), "{}", defs[1]);
}
