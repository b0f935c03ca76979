//! The library's man pages — librpmem(7), the section 3 pages with their `.so` links, and
//! poolset(5) — are generated from their Markdown sources `man/src/<page>.<section>.md` by
//! `man/mdroff.rs`; this test fails when a committed page differs from what its source gives,
//! or when `man/man3`, `man/man5` or `man/man7` hold a page that no source makes
//! (`REGENERATE_DOCS=1` writes them, and removes such pages). The section 1 sources in the
//! same directory (`rpmemd.1.md`, `rpmem.1.md`) are converted too, so that an error in them
//! fails here as well, but their pages are made with the clap definitions by man/docgen.rs in
//! the programs' own `generated_docs` tests. See docs/packaging.md.

#[path = "../../man/mdroff.rs"]
mod mdroff;

use std::path::{Path, PathBuf};

/// The `.TH` source and manual fields, as on the pages generated from clap (man/docgen.rs).
const SOURCE: &str = concat!("rpmem-rs ", env!("CARGO_PKG_VERSION"));
const MANUAL: &str = "rpmem-rs";
/// The sections whose pages come from Markdown.
const SECTIONS: [&str; 3] = ["3", "5", "7"];

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

/// Every generated file, relative to `man/`, with its text.
fn generated() -> Vec<(String, String)> {
    let src = man_dir().join("src");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    sources.sort();
    assert!(!sources.is_empty(), "no Markdown page in {}", src.display());
    let mut files = Vec::new();
    for path in sources {
        let name = format!("man/src/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let page = mdroff::convert(&name, &text, SOURCE, MANUAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            name,
            format!("man/src/{}.{}.md", page.title, page.section),
            "a source's file name is its page's title and section"
        );
        if page.section == "1" {
            // rpmemd(1) and rpmem(1): man/docgen.rs fills their placeholders.
            continue;
        }
        assert!(
            SECTIONS.contains(&page.section.as_str()),
            "{name}: section {} is not generated from Markdown",
            page.section
        );
        assert!(
            page.placeholders.is_empty(),
            "{name}: placeholders {:?} are filled only on section 1 pages",
            page.placeholders
        );
        files.extend(page.files());
    }
    files
}

#[test]
fn generated_docs_markdown_pages_are_current() {
    let files = generated();
    let man = man_dir();
    let write = std::env::var_os("REGENERATE_DOCS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, text) in &files {
        let full = man.join(path);
        if write {
            std::fs::create_dir_all(full.parent().unwrap()).expect("creating the man directory");
            std::fs::write(&full, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!("man/{path}"));
        }
    }
    // A page in the generated sections that no source makes (a renamed page, a dropped alias).
    for section in SECTIONS {
        let dir = man.join(format!("man{section}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let name = format!(
                "man{section}/{}",
                entry.expect("an entry").file_name().to_string_lossy()
            );
            if !files.iter().any(|(p, _)| *p == name) {
                if write {
                    std::fs::remove_file(man.join(&name)).expect("removing a page without source");
                } else {
                    stale.push(format!("man/{name} (no source makes it)"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with man/src/*.md: {}; run `REGENERATE_DOCS=1 cargo test -p librpmem \
         generated_docs` and commit them",
        stale.join(", ")
    );
}
