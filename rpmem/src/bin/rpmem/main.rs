//! `rpmem`: the command-line tool of remote persistent memory.
//!
//! `rpmem demo` shows the whole thing working on this machine; `create`,
//! `info`, `remove`, `put`, `get` work on pools on any target, `list` shows
//! the pool set files a target offers; `bench`
//! measures the data path beside raw-TCP baselines; `poolset` checks a pool
//! set file. See `docs/rpmem-cli.md`.

// No panic on untrusted input, enforced (issue 15): outside tests, no unwrap,
// expect, panic! or unchecked indexing; fallible code returns typed errors.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

/// `println!` for the tool's text, silent under `--quiet`, that never
/// panics: a failed write (a full disk, a closed pipe) is remembered by
/// [`out::failed`] and makes the tool fail at the end (see [`out::check`]).
macro_rules! say {
    ($($arg:tt)*) => {{
        if !$crate::out::quiet() {
            emit!($($arg)*);
        }
    }};
}

/// [`say!`] for what the user asked for explicitly (a `--json` object):
/// printed under `--quiet` too.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::out::failed(e);
        }
    }};
}

/// `eprintln!` for notes, silent under `--quiet`, that never panics: when
/// stderr itself cannot be written there is nowhere left to report it (the
/// exit status still tells).
macro_rules! tell {
    ($($arg:tt)*) => {{
        if !$crate::out::quiet() {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), $($arg)*);
        }
    }};
}

mod baseline;
mod bench;
mod bench_cmd;
mod cli;
mod demo;
mod error;
mod files;
mod list_cmd;
mod local;
mod out;
mod pool_cmds;
mod poolset_cmd;
mod set_attr_cmd;
mod transfer;
mod values;

use cli::{Cli, Command};
use error::{CliResult, EXIT_OK};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0, usage errors to stderr
            // with 2.
            let printed = e.print().and_then(|()| out::flush());
            if let Err(pe) = printed {
                if !e.use_stderr() {
                    let _ = writeln!(
                        std::io::stderr(),
                        "rpmem: cannot write to standard output: {pe}"
                    );
                    return ExitCode::from(error::EXIT_LOCAL);
                }
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    out::set_quiet(cli.quiet);
    if cli.verbose {
        out::set_verbose();
    }
    let name = subcommand_name(&cli.command);
    let result = run(&cli.command).and_then(|code| out::check().map(|()| code));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut text = e.to_string();
            if conn_of(&cli.command).is_some_and(|c| c.launch.is_some()) {
                // The library names the environment variable; the user
                // chose local mode with the option.
                text = text.replace("(RPMEM_LAUNCH=local)", "(--launch local)");
            }
            // Errors are printed under --quiet too.
            let _ = writeln!(std::io::stderr(), "rpmem {name}: {text}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The connection options of a subcommand that has them.
fn conn_of(c: &Command) -> Option<&cli::ConnArgs> {
    match c {
        Command::Create(a) => Some(&a.conn),
        Command::Info(a) => Some(&a.conn),
        Command::Remove(a) => Some(&a.conn),
        Command::List(a) => Some(&a.conn),
        Command::SetAttr(a) => Some(&a.conn),
        Command::Put(a) => Some(&a.conn),
        Command::Get(a) => Some(&a.conn),
        Command::Bench(a) => Some(&a.conn),
        Command::Demo(_) | Command::Poolset(_) => None,
    }
}

fn subcommand_name(c: &Command) -> &'static str {
    match c {
        Command::Demo(_) => "demo",
        Command::Create(_) => "create",
        Command::Info(_) => "info",
        Command::Remove(_) => "remove",
        Command::List(_) => "list",
        Command::SetAttr(_) => "set-attr",
        Command::Put(_) => "put",
        Command::Get(_) => "get",
        Command::Bench(_) => "bench",
        Command::Poolset(_) => "poolset",
    }
}

fn run(c: &Command) -> CliResult<u8> {
    match c {
        Command::Demo(a) => demo::demo(a).map(|()| EXIT_OK),
        Command::Create(a) => pool_cmds::create(a).map(|()| EXIT_OK),
        Command::Info(a) => pool_cmds::info(a).map(|()| EXIT_OK),
        Command::Remove(a) => pool_cmds::remove(a).map(|()| EXIT_OK),
        Command::List(a) => list_cmd::list(a).map(|()| EXIT_OK),
        Command::SetAttr(a) => set_attr_cmd::set_attr(a).map(|()| EXIT_OK),
        Command::Put(a) => transfer::put(a).map(|()| EXIT_OK),
        Command::Get(a) => transfer::get(a).map(|()| EXIT_OK),
        Command::Bench(a) => bench_cmd::bench(a).map(|()| EXIT_OK),
        Command::Poolset(a) => poolset_cmd::poolset(a),
    }
}
