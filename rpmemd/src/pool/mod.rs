//! Pool storage of rpmemd: the pool set directory, part files and their
//! headers, the contiguous mapping of a pool, exclusive locking, and the
//! persistent-memory facts the persistency policy needs.
//!
//! The operations are PMDK 1.12.1's `rpmemd_db` ones (`src/tools/rpmemd/
//! rpmemd_db.c` over `src/common/set.c`):
//!
//! * [`Pool::create`] — create the pool a pool set file describes, with the
//!   client's attributes written into every part header;
//! * [`Pool::open`] — open it again, validating every header, and get the
//!   attributes back ([`Pool::attr`]) with the pool size ([`Pool::len`]);
//! * [`Pool::set_attr`], [`Pool::close`], [`Pool::close_and_remove`];
//! * [`remove`] — rpmemd's `--remove` (with `--force`), optionally also
//!   removing the pool set file.
//!
//! Every failure is a [`PoolError`] naming the file, part or field, and
//! [`PoolError::status`] gives the `RPMEM_ERR_*` status the client is
//! answered with (PMDK's `rpmemd_db_get_status` mapping of the `errno` its
//! `rpmemd_db` leaves).
//!
//! A [`Pool`] owns the mapping and the locks; it implements
//! [`rpmem_core::flush::FlushOps`] (also for `&Pool`, so lanes can share
//! it) for the persist engines.
//!
//! Differences from PMDK are listed in `docs/rpmemd.md` ("Pool storage").

mod error;
mod handle;
mod header;
mod intent;
mod map;
mod parts;
mod path;
// The system call wrappers `rpmemd --list` walks the pool set directory with.
pub(crate) use path::{sys_fstatat_nofollow, sys_openat};
mod pmem;

pub use error::{status, status_from_errno, NameProblem, PoolError};
pub use handle::{
    remove, remove_report, remove_with, Pool, PoolOptions, PoolsetFileFate, RemoveOptions,
    RemoveReport, MAX_POOLSET_FILE,
};
pub use header::DEVICE_DAX_ZERO_LEN;
#[doc(hidden)]
pub use intent::SetAttrCrash;
pub use intent::{Recovery, SUFFIX as INTENT_SUFFIX};
pub use parts::{part_file_name, HDR_SIZE, MIN_PART, MIN_POOL, PART_MODE, PMEM_EXT};
pub use path::{check_name, PoolsetDir, Strategy, MAX_COMPONENT_LEN, MAX_NAME_LEN, MAX_SYMLINKS};
pub use pmem::{parse_force, region_deep_flush, PMEM_IS_PMEM_FORCE, SYSFS};
