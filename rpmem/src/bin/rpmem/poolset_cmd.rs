//! `rpmem poolset FILE [--json]`: checks a pool set file with the same
//! parser rpmemd uses and prints what it describes.

use rpmem_core::poolset::{PartSize, PoolSet};
use serde_json::{json, Value};

use crate::cli::PoolsetArgs;
use crate::error::{CliError, CliResult, EXIT_FAILED, EXIT_LOCAL, EXIT_OK};
use crate::values::human_bytes;

/// The option names of a set, in file order of significance.
fn option_names(set: &PoolSet<'_>) -> Vec<&'static str> {
    let o = set.options();
    let mut v = Vec::new();
    if o.single_hdr {
        v.push("SINGLEHDR");
    }
    if o.no_hdrs {
        v.push("NOHDRS");
    }
    v
}

/// The parsed set as the JSON object of `--json`.
pub fn set_json(set: &PoolSet<'_>) -> Value {
    let replicas: Vec<Value> = set
        .replicas()
        .map(|r| {
            json!({
                "remote": r.remote().map(|t| json!({"node": t.node(), "descriptor": t.descriptor()})),
                "size": r.size(),
                "nparts": r.nparts(),
                "nhdrs": r.nhdrs(),
                "line": r.line(),
                "parts": r.parts().map(|p| json!({
                    "size": p.size().bytes(),
                    "path": p.path(),
                    "line": p.line(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "ok": true,
        "options": option_names(set),
        "pool_size": set.pool_size(),
        "replicas": replicas,
    })
}

fn part_size_text(s: PartSize) -> String {
    match s.bytes() {
        Some(b) => format!("{b} bytes ({})", human_bytes(b)),
        None => "AUTO (the size of the Device DAX, found by rpmemd)".to_owned(),
    }
}

fn print_set(file: &str, set: &PoolSet<'_>) {
    say!("{file}: a valid pool set file");
    let options = option_names(set);
    say!(
        "options: {}",
        if options.is_empty() {
            "none".to_owned()
        } else {
            options.join(" ")
        }
    );
    match set.pool_size() {
        Some(s) => say!(
            "pool size: {s} bytes ({}), the usable size of the smallest local replica",
            human_bytes(s)
        ),
        None => say!("pool size: unknown until rpmemd resolves the AUTO part sizes"),
    }
    for r in set.replicas() {
        let size = r.size().map_or_else(
            || "unknown (AUTO parts)".to_owned(),
            |s| format!("{s} bytes ({})", human_bytes(s)),
        );
        match r.remote() {
            Some(t) => say!(
                "replica {} (line {}): remote, node {:?}, pool set {:?} there",
                r.index(),
                r.line(),
                t.node(),
                t.descriptor()
            ),
            None => {
                say!(
                    "replica {} (line {}): local, {} part(s), {} header(s), usable size {size}",
                    r.index(),
                    r.line(),
                    r.nparts(),
                    r.nhdrs()
                );
                for (i, p) in r.parts().enumerate() {
                    say!(
                        "  part {i} (line {}): {}  {}",
                        p.line(),
                        part_size_text(p.size()),
                        p.path()
                    );
                }
            }
        }
    }
}

/// `rpmem poolset`. Returns the exit code: 0 valid, 1 invalid, 3 unreadable.
pub fn poolset(args: &PoolsetArgs) -> CliResult<u8> {
    let name = args.file.display().to_string();
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) if args.json => {
            emit!(
                "{}",
                json!({"ok": false, "line": null, "error": format!("cannot read {name}: {e}")})
            );
            return Ok(EXIT_LOCAL);
        }
        Err(e) => return Err(CliError::io(format!("cannot read pool set file {name}"))(e)),
    };
    let parsed = PoolSet::parse(&bytes);
    let result = match parsed {
        Ok(set) => {
            if args.json {
                emit!("{}", set_json(&set));
            } else {
                print_set(&name, &set);
            }
            Ok(EXIT_OK)
        }
        Err(e) => {
            if args.json {
                emit!(
                    "{}",
                    json!({"ok": false, "line": e.line, "error": e.kind.to_string()})
                );
                Ok(EXIT_FAILED)
            } else {
                Err(CliError::Failed(format!(
                    "{name} is not a valid pool set file: line {}: {}",
                    e.line, e.kind
                )))
            }
        }
    };
    result
}
