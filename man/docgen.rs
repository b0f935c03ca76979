//! Generates a program's man page and shell completions from its clap definition, and checks
//! that the committed copies are current (docs/packaging.md).
//!
//! The command-line parts of a page (SYNOPSIS, OPTIONS, COMMANDS) come from the `clap::Command`;
//! everything else (NAME, DESCRIPTION, CONFIGURATION FILES, EXIT STATUS, ...) from one Markdown
//! source, `man/src/<page>.1.md`, converted by `man/mdroff.rs` like the library's pages, in
//! which a line `<!-- @SYNOPSIS@ -->`, `<!-- @OPTIONS@ -->` or `<!-- @COMMANDS@ -->` stands
//! where the generated part goes. No roff is written by hand, and neither part can drift from
//! the program: the check fails when a committed file differs from what this generates.
//!
//! This file is not a crate: the tests that generate `rpmem(1)` (a unit test of the `rpmem`
//! binary, where its `Cli` lives) and `rpmemd(1)` (`rpmemd/tests/generated_docs.rs`) include it
//! with `#[path]`. `REGENERATE_DOCS=1` makes them write the files instead of comparing.

// Each includer uses a part (rpmemd alone strips its help texts).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;

/// The Markdown converter; this generator uses the page's body and placeholders only.
#[allow(dead_code)]
#[path = "mdroff.rs"]
mod mdroff;

/// The `.TH` source field of every page.
pub const SOURCE: &str = concat!("rpmem-rs ", env!("CARGO_PKG_VERSION"));
/// The `.TH` manual field of every page.
pub const MANUAL: &str = "rpmem-rs";

/// The repository's root (this file is `man/docgen.rs`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

/// Makes rpmemd's help texts fit a man page: its doc comments begin with the option in
/// backquotes (``"`-c/--config`: the only ..."``), which the page shows beside the text anyway.
pub fn strip_option_prefix(help: &str) -> String {
    let text = match help
        .strip_prefix('`')
        .and_then(|rest| rest.split_once("`: "))
    {
        Some((_, text)) => text,
        None => help,
    };
    text.replace('`', "\"")
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).expect("rendering into memory");
    String::from_utf8(out).expect("roff is UTF-8")
}

/// The SYNOPSIS and OPTIONS of one (sub)command, with `heading` for the options.
fn synopsis_and_options(cmd: &Command, sub: bool) -> (String, String) {
    let man = Man::new(cmd.clone());
    let synopsis = render(|w| man.render_synopsis_section(w));
    let options = render(|w| man.render_options_section(w));
    // Each fragment starts with the definition of the \*(Aq string that the title has made.
    let aq = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let synopsis = synopsis
        .replacen(".SH SYNOPSIS\n", "", 1)
        .replacen(aq, "", 1);
    let options = options.replacen(aq, "", 1);
    let options = if sub {
        options.replacen(".SH OPTIONS\n", "", 1)
    } else {
        options
    };
    (synopsis, options)
}

/// The COMMANDS section: each visible subcommand with its synopsis, description and options
/// (the global options and `--help` are in OPTIONS once).
fn commands_section(cmd: &Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub = sub.clone().mut_args(|a| {
            if a.is_global_set() || a.get_id() == "help" || a.get_id() == "version" {
                a.hide(true)
            } else {
                a
            }
        });
        let (synopsis, options) = synopsis_and_options(&sub, true);
        out.push_str(&format!(
            ".SS {}\n",
            sub.get_bin_name().unwrap_or(sub.get_name())
        ));
        out.push_str(&synopsis);
        let about = sub.get_long_about().or(sub.get_about());
        if let Some(about) = about {
            for para in about.to_string().split("\n\n") {
                out.push_str(".PP\n");
                out.push_str(&escape_text(para.trim()));
                out.push('\n');
            }
        }
        if !options.trim().is_empty() {
            out.push_str(".PP\n");
            out.push_str(&options);
        }
    }
    out
}

/// Escapes plain text for a roff text line.
fn escape_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim().replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.pop();
    out
}

/// The man page of `cmd` from its Markdown source `source` (relative to the repository, e.g.
/// `man/src/rpmemd.1.md`; see the module comment): the page's title and section are the
/// source's front matter. Panics naming the source when it cannot be read or converted, is
/// not `<program>.1.md`, has an unknown placeholder, or lacks one that the command needs
/// (SYNOPSIS and OPTIONS; COMMANDS when it has visible subcommands), each exactly once.
pub fn man_page(cmd: &Command, source: &str) -> String {
    let mut cmd = cmd.clone();
    cmd.build();
    let text = std::fs::read_to_string(repo_root().join(source))
        .unwrap_or_else(|e| panic!("reading {source}: {e}"));
    let page = mdroff::convert(source, &text, SOURCE, MANUAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (page.title.as_str(), page.section.as_str()),
        (cmd.get_name(), "1"),
        "{source}: the front matter's title and section are not the program's"
    );
    assert!(
        page.aliases.is_empty(),
        "{source}: a section 1 page made from clap has no aliases"
    );
    let mut needed = vec!["SYNOPSIS", "OPTIONS"];
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        needed.push("COMMANDS");
    }
    let mut placeholders = page.placeholders.clone();
    placeholders.sort();
    needed.sort();
    assert_eq!(
        placeholders, needed,
        "{source}: the placeholders `<!-- @NAME@ -->` must be these, each once"
    );
    let man = Man::new(cmd.clone())
        .title(page.title.to_ascii_uppercase())
        .section(&page.section)
        .source(SOURCE)
        .manual(MANUAL);
    let mut out = String::new();
    out.push_str(&format!(
        ".\\\" Generated from the clap definition of {} and {source}\n\
         .\\\" by man/docgen.rs and man/mdroff.rs; edit those, then run\n\
         .\\\" REGENERATE_DOCS=1 cargo test -p rpmem -p rpmemd -p librpmem generated_docs\n",
        cmd.get_name(),
    ));
    out.push_str(&render(|w| man.render_title(w)));
    for line in page.body.lines() {
        match line {
            ".\\\" @SYNOPSIS@" => {
                out.push_str(".SH SYNOPSIS\n");
                out.push_str(&synopsis_and_options(&cmd, false).0);
            }
            ".\\\" @OPTIONS@" => out.push_str(&synopsis_and_options(&cmd, false).1),
            ".\\\" @COMMANDS@" => out.push_str(&commands_section(&cmd)),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The completion scripts of `cmd` as (path relative to the repository, text): bash, zsh and
/// fish, under `completions/`.
pub fn completions(cmd: &Command) -> Vec<(PathBuf, String)> {
    let name = cmd.get_name().to_owned();
    [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ]
    .into_iter()
    .map(|(shell, file)| {
        let mut cmd = cmd.clone();
        let text = render(|w| {
            clap_complete::generate(shell, &mut cmd, name.clone(), w);
            Ok(())
        });
        (PathBuf::from("completions").join(file), text)
    })
    .collect()
}

/// Compares each generated file with the committed one (paths relative to the repository);
/// with `REGENERATE_DOCS=1` in the environment writes them instead. Panics naming every file
/// that is out of date.
pub fn check_or_write(files: &[(PathBuf, String)]) {
    let root = repo_root();
    let write = std::env::var_os("REGENERATE_DOCS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, text) in files {
        let full = root.join(path);
        if write {
            std::fs::create_dir_all(full.parent().expect("a file in a directory"))
                .expect("creating the directory");
            std::fs::write(&full, text).expect("writing a generated file");
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the clap definitions and man/src: {}; run \
         `REGENERATE_DOCS=1 cargo test -p rpmem -p rpmemd -p librpmem generated_docs` and commit them",
        stale.join(", ")
    );
}
