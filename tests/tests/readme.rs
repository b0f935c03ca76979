//! The README's Rust example is `rpmem/examples/replicate.rs`, word for word,
//! and it works as written on the first pool set a user writes: an ordinary
//! one, with headers (issue: it used to pass no attributes, which rpmemd
//! refuses for such a pool set).

use std::fs;
use std::path::Path;
use std::process::Command;

use rpmem_e2e::{example_bin, TestEnv};

fn workspace_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The body of the first fenced block of `lang` after `heading`.
fn code_block(text: &str, heading: &str, lang: &str) -> String {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let fence = format!("```{lang}\n");
    let open = start
        + text[start..]
            .find(&fence)
            .unwrap_or_else(|| panic!("no {fence:?} after {heading:?}"))
        + fence.len();
    let close = open
        + text[open..]
            .find("```\n")
            .unwrap_or_else(|| panic!("the {lang} block after {heading:?} is not closed"));
    text[open..close].to_owned()
}

#[test]
fn readme_example_is_the_example_file() {
    let readme = workspace_file("README.md");
    let block = code_block(&readme, "## Use it from Rust", "rust,no_run");
    let example = workspace_file("rpmem/examples/replicate.rs");
    assert_eq!(
        block, example,
        "README's Rust example and rpmem/examples/replicate.rs differ"
    );
}

#[test]
fn readme_example_runs_against_a_pool_set_with_headers() {
    let env = TestEnv::new();
    // What a user writes first: one part, no options (so: headers).
    let parts = env.poolset("pool.set", &[8 << 20], false);
    let out = Command::new(example_bin("rpmem", "replicate"))
        .args(["localhost", "pool.set"])
        .env("RPMEM_LAUNCH", "local")
        .env("RPMEM_CMD", env.command())
        .env_remove("RPMEM_PROVIDER")
        .output()
        .expect("running the example");
    assert!(
        out.status.success(),
        "the README example failed ({}):\n{}\nrpmemd's log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        env.log()
    );
    // The header holds the example's signature and the data is where it said.
    let header = TestEnv::file_bytes(&parts[0], 0, 8);
    assert_eq!(&header, b"MYAPP\0\0\0");
    let data = TestEnv::file_bytes(&parts[0], 4096, 18);
    assert_eq!(&data, b"hello, remote pmem");
}
