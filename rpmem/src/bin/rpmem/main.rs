//! `rpmem`: the command-line tool of remote persistent memory.
//!
//! `rpmem demo` shows the whole thing working on this machine; `create`,
//! `info`, `remove`, `put`, `get` work on pools on any target; `bench`
//! measures the data path beside raw-TCP baselines; `poolset` checks a pool
//! set file. See `docs/rpmem-cli.md`.

use std::process::ExitCode;

use clap::Parser;

/// `println!` that ignores a closed stdout (e.g. `rpmem ... | head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench_cmd;
mod cli;
mod demo;
mod error;
mod files;
mod local;
mod pool_cmds;
mod poolset_cmd;
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
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let name = subcommand_name(&cli.command);
    match run(&cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rpmem {name}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn subcommand_name(c: &Command) -> &'static str {
    match c {
        Command::Demo(_) => "demo",
        Command::Create(_) => "create",
        Command::Info(_) => "info",
        Command::Remove(_) => "remove",
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
        Command::Put(a) => transfer::put(a).map(|()| EXIT_OK),
        Command::Get(a) => transfer::get(a).map(|()| EXIT_OK),
        Command::Bench(a) => bench_cmd::bench(a).map(|()| EXIT_OK),
        Command::Poolset(a) => poolset_cmd::poolset(a),
    }
}
