//! `rpmem list TARGET [--json]`: the pool set files a target offers (`rpmemd --list`).

use rpmem::{PoolSetEntry, PoolSetList, PoolSetStatus};
use serde_json::{json, Value};

use crate::cli::ListArgs;
use crate::error::{CliError, CliResult};
use crate::values::human_bytes;

/// Widest name column of the text output (longer names push their line's text right).
const NAME_COLUMN: usize = 40;

/// `rpmem list`.
pub fn list(args: &ListArgs) -> CliResult {
    let opts = args.conn.options()?;
    let target = &args.target;
    let what = format!("cannot list the pool set files on {target}");
    // rpmemd (or ssh) ran and exited with a failure (`Error::ListFailed`), as a failed
    // `remove`: exit status 1.
    let list = rpmem::list_pool_sets(target, &opts).map_err(CliError::rpmem(what))?;
    if args.json {
        emit!("{}", list_json(target, &list));
    } else {
        print_list(target, &list);
    }
    Ok(())
}

fn options(single_hdr: bool, no_hdrs: bool) -> Vec<&'static str> {
    let mut v = Vec::new();
    if single_hdr {
        v.push("SINGLEHDR");
    }
    if no_hdrs {
        v.push("NOHDRS");
    }
    v
}

fn entry_json(e: &PoolSetEntry) -> Value {
    match &e.status {
        PoolSetStatus::Valid {
            pool_size,
            replicas,
            single_hdr,
            no_hdrs,
            ..
        } => json!({
            "name": e.name,
            "name_escaped": e.display_name(),
            "valid": true,
            "pool_size": pool_size,
            "replicas": replicas,
            "options": options(*single_hdr, *no_hdrs),
        }),
        PoolSetStatus::Invalid { line, error, .. } => json!({
            "name": e.name,
            "name_escaped": e.display_name(),
            "valid": false,
            "line": line,
            "error": error,
        }),
        _ => json!({
            "name": e.name,
            "name_escaped": e.display_name(),
            "valid": e.is_valid(),
        }),
    }
}

fn list_json(target: &str, list: &PoolSetList) -> Value {
    json!({
        "target": target,
        "poolset_dir": list.poolset_dir,
        "pool_sets": list.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "complete": list.incomplete.is_empty(),
        "incomplete": list.incomplete,
    })
}

fn entry_text(e: &PoolSetEntry) -> String {
    match &e.status {
        PoolSetStatus::Valid {
            pool_size,
            replicas,
            single_hdr,
            no_hdrs,
            ..
        } => {
            let size = match pool_size {
                Some(s) => format!("{} ({s} bytes)", human_bytes(*s)),
                None => "size set by a Device DAX (AUTO)".to_owned(),
            };
            let mut text = format!(
                "{size}, {replicas} replica{}",
                if *replicas == 1 { "" } else { "s" }
            );
            for o in options(*single_hdr, *no_hdrs) {
                text.push_str(", OPTION ");
                text.push_str(o);
            }
            text
        }
        PoolSetStatus::Invalid { line, error, .. } => match line {
            Some(l) => format!("INVALID: line {l}: {error}"),
            None => format!("INVALID: {error}"),
        },
        _ => "unknown".to_owned(),
    }
}

fn print_list(target: &str, list: &PoolSetList) {
    // rpmemd's texts come escaped; the names are escaped again here from their bytes.
    let dir = printable(&list.poolset_dir);
    if list.entries.is_empty() {
        say!("no pool set files in rpmemd's poolset-dir \"{dir}\" on {target}");
    } else {
        say!("pool set files in rpmemd's poolset-dir \"{dir}\" on {target}:");
        let names: Vec<String> = list
            .entries
            .iter()
            .map(PoolSetEntry::display_name)
            .collect();
        let width = names
            .iter()
            .map(|n| n.chars().count())
            .filter(|&w| w <= NAME_COLUMN)
            .max()
            .unwrap_or(0);
        for (name, e) in names.iter().zip(&list.entries) {
            say!("  {name:<width$}  {}", printable(&entry_text(e)));
        }
        let invalid = list.entries.iter().filter(|e| !e.is_valid()).count();
        say!("{} pool set file(s), {invalid} invalid", list.entries.len());
    }
    for reason in &list.incomplete {
        say!("the list may be incomplete: {}", printable(reason));
    }
}

/// `text` escaped as the library escapes names ([`PoolSetEntry::display_name`]; one scheme,
/// `rpmem_core::text`): rpmemd's texts come unescaped from the library.
fn printable(text: &str) -> String {
    rpmem_core::text::Escaped(text.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("plain text: ok"), "plain text: ok");
        assert_eq!(printable("a\tb\nc\\"), "a\\tb\\nc\\\\");
        assert_eq!(printable("\x1b[2J\u{202e}x"), "\\x1b[2J\\u{202e}x");
    }
}
