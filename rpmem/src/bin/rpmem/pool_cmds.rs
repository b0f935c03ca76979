//! `rpmem create`, `rpmem info`, `rpmem remove`.

use std::sync::Arc;

use rpmem::{PoolAttr, Region, RemotePool};
use serde_json::{json, Value};

use crate::cli::{AttrArgs, CreateArgs, InfoArgs, RemoveArgs};
use crate::error::{CliError, CliResult};
use crate::values::{self, format_signature, format_uuid, hex, human_bytes};

/// The default signature of `rpmem create`.
pub const DEFAULT_SIGNATURE: [u8; 8] = *b"RPMEM\0\0\0";

/// A zeroed region of `size` bytes, which must be a whole number of pages.
pub fn region(size: u64, what: &str) -> CliResult<Arc<Region>> {
    if size == 0 || !size.is_multiple_of(values::PAGE) {
        return Err(CliError::Usage(format!(
            "{what} {size} is not a positive multiple of the page size ({} bytes)",
            values::PAGE
        )));
    }
    let len = usize::try_from(size).map_err(|_| {
        CliError::Usage(format!(
            "{what} {size} does not fit in this machine's memory"
        ))
    })?;
    Region::new(len)
        .map(Arc::new)
        .map_err(CliError::rpmem(format!(
            "allocating {} of local memory",
            human_bytes(size)
        )))
}

/// The attributes `create` stores: the options given, defaults for the
/// rest. `None` for `--no-headers`.
pub fn attributes(a: &AttrArgs) -> CliResult<Option<PoolAttr>> {
    if a.no_headers {
        return Ok(None);
    }
    let a = &a.fields;
    let random = || values::random_uuid().map_err(CliError::io("reading random bytes for a uuid"));
    let uuid = match a.uuid {
        Some(u) => u,
        None => random()?,
    };
    let poolset_uuid = match a.poolset_uuid {
        Some(u) => u,
        None => random()?,
    };
    Ok(Some(PoolAttr {
        signature: a.signature.unwrap_or(DEFAULT_SIGNATURE),
        major: a.major.unwrap_or(1),
        compat_features: a.compat.unwrap_or(0),
        incompat_features: a.incompat.unwrap_or(0),
        ro_compat_features: a.ro_compat.unwrap_or(0),
        poolset_uuid,
        uuid,
        next_uuid: a.next_uuid.unwrap_or(uuid),
        prev_uuid: a.prev_uuid.unwrap_or(uuid),
        user_flags: a.user_flags.unwrap_or([0; 16]),
    }))
}

/// The attributes as JSON.
pub fn attr_json(a: &PoolAttr) -> Value {
    json!({
        "signature": format_signature(&a.signature),
        "major": a.major,
        "compat_features": a.compat_features,
        "incompat_features": a.incompat_features,
        "ro_compat_features": a.ro_compat_features,
        "poolset_uuid": format_uuid(&a.poolset_uuid),
        "uuid": format_uuid(&a.uuid),
        "next_uuid": format_uuid(&a.next_uuid),
        "prev_uuid": format_uuid(&a.prev_uuid),
        "user_flags": hex(&a.user_flags),
    })
}

/// The attributes as aligned text lines.
pub fn attr_lines(a: &PoolAttr) -> Vec<(&'static str, String)> {
    vec![
        ("signature", format!("{:?}", format_signature(&a.signature))),
        ("major version", a.major.to_string()),
        ("compat features", format!("0x{:08x}", a.compat_features)),
        (
            "incompat features",
            format!("0x{:08x}", a.incompat_features),
        ),
        (
            "ro-compat features",
            format!("0x{:08x}", a.ro_compat_features),
        ),
        ("pool set uuid", format_uuid(&a.poolset_uuid)),
        ("uuid", format_uuid(&a.uuid)),
        ("next replica uuid", format_uuid(&a.next_uuid)),
        ("prev replica uuid", format_uuid(&a.prev_uuid)),
        ("user flags", hex(&a.user_flags)),
    ]
}

pub fn print_lines(lines: &[(&str, String)]) {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in lines {
        say!("  {k:<width$}  {v}");
    }
}

/// A description of the pool as JSON (create and info).
fn pool_json(pool: &RemotePool, size_key: &str) -> Value {
    json!({
        "target": pool.target().to_string(),
        "pool_set": pool.pool_set(),
        size_key: pool.size(),
        "lanes": pool.nlanes(),
        "persist_method": pool.persist_method().name(),
        "data_port": pool.data_port(),
        "headers": pool.has_headers(),
        "attributes": pool.attr().map(attr_json),
    })
}

fn pool_lines(pool: &RemotePool) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("lanes", pool.nlanes().to_string()),
        (
            "persistency method",
            format!(
                "{} ({})",
                pool.persist_method().name(),
                method_words(pool.persist_method())
            ),
        ),
        ("data port", pool.data_port().to_string()),
        (
            "headers",
            if pool.has_headers() {
                "yes (the first 4096 bytes hold the pool header)".to_owned()
            } else {
                "no (OPTION NOHDRS)".to_owned()
            },
        ),
    ];
    if let Some(a) = pool.attr() {
        lines.extend(attr_lines(a));
    }
    lines
}

/// What a persistency method means, in words.
pub fn method_words(m: rpmem::Method) -> &'static str {
    match m {
        rpmem::Method::Gpspm => "rpmemd makes each persist durable with a CPU cache flush or msync",
        rpmem::Method::Apm => {
            "an RDMA READ after the writes makes them durable, rpmemd's CPU is not involved"
        }
        rpmem::Method::RdmaFlush => {
            "an RDMA FLUSH of the written ranges makes them durable, rpmemd's CPU is not involved"
        }
    }
}

/// `rpmem create`.
///
/// The CREATE answer does not carry the attributes rpmemd stored (it
/// replaces zero user flags with its architecture flags, PMDK's rule), so
/// after creating, a pool with headers is opened once more and the
/// attributes printed are the ones read back from the pool.
pub fn create(args: &CreateArgs) -> CliResult {
    let opts = args.conn.options()?;
    let attr = attributes(&args.attr)?;
    let region = region(args.size, "the pool size")?;
    let (target, set) = (&args.pool.target, &args.pool.pool_set);
    let pool = RemotePool::create(target, set, region, 1, attr.as_ref(), &opts).map_err(
        CliError::rpmem(format!("cannot create pool set {set:?} on {target}")),
    )?;
    let mut json = pool_json(&pool, "size");
    let mut lines = pool_lines(&pool);
    let size = pool.size();
    let headers = pool.has_headers();
    pool.close().map_err(CliError::rpmem(format!(
        "closing pool set {set:?} on {target} after creating it"
    )))?;
    if headers {
        let done = format!("created pool set {set:?} on {target}");
        let stored = stored_attributes(target, set, &opts, &done)?;
        if let Some(fields) = json.as_object_mut() {
            fields.insert("attributes".to_owned(), attr_json(&stored));
        }
        lines.truncate(lines.len().saturating_sub(attr_lines(&stored).len()));
        lines.extend(attr_lines(&stored));
    }
    if args.json {
        emit!("{json}");
    } else {
        say!(
            "created pool set {set:?} on {target}: {} ({size} bytes)",
            human_bytes(size),
        );
        print_lines(&lines);
    }
    Ok(())
}

/// The attributes stored in the pool, read back by opening it.
/// `done` says what happened before, for messages.
pub fn stored_attributes(
    target: &str,
    set: &str,
    opts: &rpmem::Options,
    done: &str,
) -> CliResult<PoolAttr> {
    let what = format!("{done}, but cannot open it again to read the attributes it stored");
    let region = region(
        crate::transfer::MIN_OPEN,
        "the size to read the attributes with",
    )?;
    let pool = RemotePool::open(target, set, region, 1, opts).map_err(CliError::rpmem(&what))?;
    let stored = pool.attr().copied();
    pool.close().map_err(CliError::rpmem(&what))?;
    stored.ok_or_else(|| CliError::Failed(format!("{what}: the reopened pool reports no header")))
}

/// `rpmem info`.
pub fn info(args: &InfoArgs) -> CliResult {
    let opts = args.conn.options()?;
    let region = region(args.size, "the size to open with (--size)")?;
    let (target, set) = (&args.pool.target, &args.pool.pool_set);
    let pool = RemotePool::open(target, set, region, args.lanes, &opts).map_err(
        CliError::rpmem(format!(
            "cannot open pool set {set:?} on {target} with a size of {} bytes",
            args.size
        )),
    )?;
    if args.json {
        emit!("{}", pool_json(&pool, "size_opened"));
    } else {
        say!("pool set {set:?} on {target}");
        let mut lines = vec![(
            "size",
            format!(
                "at least {} ({} bytes): opened with --size; rpmemd refuses sizes above the pool's",
                human_bytes(pool.size()),
                pool.size()
            ),
        )];
        lines.extend(pool_lines(&pool));
        print_lines(&lines);
    }
    pool.close().map_err(CliError::rpmem(format!(
        "closing pool set {set:?} on {target}"
    )))
}

/// `rpmem remove`.
///
/// With `--json`, one object: `"ok": true` and what was removed, or, when the removal
/// failed, `"ok": false` with the error (rpmemd's account of what was and was not removed);
/// the error also goes to stderr and the exit status is the same as without `--json`.
pub fn remove(args: &RemoveArgs) -> CliResult {
    let opts = args.conn.options()?;
    let mut flags = 0;
    if args.force {
        flags |= rpmem::REMOVE_FORCE;
    }
    if args.remove_pool_set {
        flags |= rpmem::REMOVE_POOL_SET;
    }
    let (target, set) = (&args.pool.target, &args.pool.pool_set);
    let result = rpmem::remove(target, set, flags, &opts).map_err(CliError::rpmem(format!(
        "cannot remove pool set {set:?} on {target}"
    )));
    if args.json {
        let object = match &result {
            Ok(()) => json!({
                "ok": true,
                "target": target,
                "pool_set": set,
                "force": args.force,
                "parts_removed": true,
                "pool_set_file_removed": args.remove_pool_set,
            }),
            // Nothing about what is left is claimed: rpmemd's message says it, file by file.
            Err(e) => json!({
                "ok": false,
                "target": target,
                "pool_set": set,
                "force": args.force,
                "error": e.to_string(),
            }),
        };
        emit!("{object}");
        return result;
    }
    result?;
    say!(
        "removed the pool of pool set {set:?} on {target}{}",
        if args.remove_pool_set {
            ", and the pool set file"
        } else {
            ""
        }
    );
    Ok(())
}
