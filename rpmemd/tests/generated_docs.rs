//! rpmemd(1) and rpmemd's shell completions are generated from the clap definition
//! (`rpmemd::cli::Cli`) and `man/src/rpmemd.1.md`; this test fails when the committed files are
//! out of date (`REGENERATE_DOCS=1` rewrites them). See man/docgen.rs and docs/packaging.md.

#[path = "../../man/docgen.rs"]
mod docgen;

use clap::CommandFactory;

/// rpmemd's command as its man page and completions show it: the help texts without the
/// backquoted option names that begin them (rpmemd prints its own `--help`, not clap's), and
/// `--log-level` with the level names the configuration accepts (its parser is a function,
/// which clap cannot list).
fn command() -> clap::Command {
    let levels = rpmemd::config::LogLevel::ALL.map(|l| l.as_str());
    rpmemd::cli::Cli::command()
        .mut_args(|arg| match arg.get_help().map(|h| h.to_string()) {
            Some(help) => arg.help(docgen::strip_option_prefix(&help)),
            None => arg,
        })
        .mut_arg("log_level", |arg| {
            arg.value_parser(clap::builder::PossibleValuesParser::new(levels))
        })
}

#[test]
fn generated_docs_are_current() {
    let mut files = vec![(
        std::path::PathBuf::from("man/man1/rpmemd.1"),
        docgen::man_page(&command(), "man/src/rpmemd.1.md"),
    )];
    files.extend(docgen::completions(&command()));
    docgen::check_or_write(&files);
}

/// `rpmemd --help` sends an installed user to the installed manual, not into a source tree.
#[test]
fn generated_docs_help_points_to_the_man_page() {
    let help = rpmemd::cli::help_text();
    let last = help.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
    assert!(
        help.contains("`man rpmemd`"),
        "rpmemd --help does not name `man rpmemd`:\n{help}"
    );
    assert!(
        std::path::Path::new(&docgen::repo_root().join("man/man1/rpmemd.1")).is_file(),
        "the page --help names is man/man1/rpmemd.1"
    );
    assert!(
        last.contains("docs/rpmemd.md"),
        "the Markdown is named for source readers: {last}"
    );
}
