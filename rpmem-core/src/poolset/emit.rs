//! Writing a pool set back as a canonical pool set file.

use super::{PoolSet, SIGNATURE};
use core::fmt::{self, Write};

/// Writes `set` as a canonical pool set file: the signature, the options
/// (`OPTION SINGLEHDR` / `OPTION NOHDRS`, one per line), then every replica
/// (`REPLICA` or `REPLICA <node> <descriptor>`, none before the master) with
/// its parts as `<size> <path>`, sizes with the largest exact binary suffix.
/// Lines end with LF; there are no comments and no blank lines.
///
/// [`PoolSet::parse`] reads the output back to a pool set equal to `set`.
pub fn emit(set: &PoolSet<'_>, out: &mut impl Write) -> fmt::Result {
    out.write_str(SIGNATURE)?;
    out.write_char('\n')?;
    let options = set.options();
    if options.single_hdr {
        out.write_str("OPTION SINGLEHDR\n")?;
    }
    if options.no_hdrs {
        out.write_str("OPTION NOHDRS\n")?;
    }
    for replica in set.replicas() {
        match replica.remote() {
            Some(remote) => {
                writeln!(out, "REPLICA {} {}", remote.node(), remote.descriptor())?;
            }
            None if replica.index() > 0 => out.write_str("REPLICA\n")?,
            None => {}
        }
        for part in replica.parts() {
            writeln!(out, "{} {}", part.size(), part.path())?;
        }
    }
    Ok(())
}
