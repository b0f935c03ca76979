//! `rpmem set-attr`: changes some attributes stored in a pool's header.

use serde_json::json;

use crate::cli::SetAttrArgs;
use crate::error::{CliError, CliResult};
use crate::pool_cmds::{attr_json, attr_lines, print_lines, region, stored_attributes};
use crate::transfer::MIN_OPEN;

/// `rpmem set-attr`.
pub fn set_attr(args: &SetAttrArgs) -> CliResult {
    let opts = args.conn.options()?;
    let (target, set) = (&args.pool.target, &args.pool.pool_set);
    // An empty change is a usage error before anything starts.
    if args.attr.apply(&rpmem::PoolAttr::ZERO).is_none() {
        return Err(CliError::Usage(
            "give at least one attribute to change (--signature, --major, --compat, \
             --incompat, --ro-compat, --poolset-uuid, --uuid, --next-uuid, --prev-uuid, \
             --user-flags)"
                .to_owned(),
        ));
    }
    let region = region(MIN_OPEN, "the size to open the pool with")?;
    let pool = rpmem::RemotePool::open(target, set, region, 1, &opts).map_err(CliError::rpmem(
        format!("cannot open pool set {set:?} on {target}"),
    ))?;
    let Some(stored) = pool.attr().copied() else {
        let _ = pool.close();
        return Err(CliError::Failed(format!(
            "pool set {set:?} on {target} has no header (OPTION NOHDRS): it stores no attributes"
        )));
    };
    let Some(new) = args.attr.apply(&stored) else {
        let _ = pool.close();
        return Err(CliError::Usage(
            "give at least one attribute to change".to_owned(),
        ));
    };
    pool.set_attr(Some(&new)).map_err(CliError::rpmem(format!(
        "cannot store the attributes of pool set {set:?} on {target}"
    )))?;
    pool.close().map_err(CliError::rpmem(format!(
        "closing pool set {set:?} on {target} after storing its attributes"
    )))?;
    let done = format!("stored new attributes in pool set {set:?} on {target}");
    let now = stored_attributes(target, set, &opts, &done)?;
    if args.json {
        emit!(
            "{}",
            json!({
                "target": target,
                "pool_set": set,
                "before": attr_json(&stored),
                "attributes": attr_json(&now),
            })
        );
    } else {
        say!("stored new attributes in pool set {set:?} on {target}; it now holds:");
        print_lines(&attr_lines(&now));
    }
    Ok(())
}
