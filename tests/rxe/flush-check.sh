#!/usr/bin/env bash
# RDMA FLUSH in the verbs layer (rpmem-verbs), shown both ways in the rxe rig:
#
#   tests/rxe/flush-check.sh
#
# 1. prepares the rig with --rdma-core new (builds trixie's rdma-core into target/rxe/ once);
# 2. builds the layer's rxe test twice: against the host's rdma-core 44 headers (no FLUSH
#    compiled in) and, with PKG_CONFIG_PATH pointing at the new rdma-core, against its headers
#    (cfg rpmem_verbs_flush);
#    Against the new headers it also builds rpmemd and the library's end-to-end tests over
#    RDMA (rpmem-e2e tests/verbs.rs);
# 3. boots the rig with --kernel backports --rdma-core new --nvdimm: the new-headers test must
#    detect FLUSH and complete WRITE + FLUSH (global on anonymous memory; persistent and global
#    on the NVDIMM's Device DAX) with the data read back; the old-headers test must report no
#    FLUSH; then the end-to-end tests run with RPMEM_EXPECT_RDMA_FLUSH=1: rpmemd offers FLUSH
#    for a pool on the NVDIMM's Device DAX and the library uses it (persists, flush/drain, deep
#    persist, reopen without FLUSH and read back, SIGKILL of rpmemd keeps every acknowledged
#    persist), and falls back to APM on the memmap= Device DAX, where rxe refuses the right;
#    then the benchmark of RDMA FLUSH (tests/rxe/flush-bench.sh, release builds against the new
#    headers): a 64-byte persist with FLUSH beside ib_read_lat and APM on the same pool;
# 4. boots the default rig (kernel 6.1, rdma-core 44): both tests must report no FLUSH (the
#    new-headers binary then runs on libibverbs 44 and a kernel without FLUSH).
#
# Needs root and what tests/rxe/ci.sh needs.  Target directories: target/verbs (RXE_TARGET_DIR,
# shared with ci.sh) and target/verbs-flush (RXE_FLUSH_TARGET_DIR).  Exits non-zero if either
# run fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
cd "$repo"
cache=${RXE_CACHE:-$repo/target/rxe}
sys_dir=${RXE_TARGET_DIR:-$repo/target/verbs}
new_dir=${RXE_FLUSH_TARGET_DIR:-$repo/target/verbs-flush}

# test_binary TARGET_DIR PACKAGE FEATURES TEST [ENV...]: builds integration test TEST of
# PACKAGE with FEATURES into TARGET_DIR, prints its executable
test_binary() {
	local dir=$1 package=$2 features=$3 name=$4
	shift 4
	env "$@" CARGO_TARGET_DIR="$dir" cargo test --locked -p "$package" --features "$features" \
		--test "$name" --no-run --message-format=json 2>/dev/null |
		python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and (m.get("target") or {}).get("name") == name:
        print(m["executable"])
' "$name"
}

"$here/run.sh" --rdma-core new --prepare-only
rc_dir=$(readlink -f "$cache/rdma-core")
[ -f "$rc_dir/.complete" ] || { echo "flush-check: no rdma-core in $rc_dir" >&2; exit 1; }

echo "flush-check: building the rxe test against the host's rdma-core headers ($sys_dir)"
sys_bin=$(test_binary "$sys_dir" rpmem-verbs verbs rxe)
echo "flush-check: building the rxe test against $rc_dir's headers ($new_dir)"
new_bin=$(test_binary "$new_dir" rpmem-verbs verbs rxe PKG_CONFIG_PATH="$rc_dir/lib/pkgconfig")
echo "flush-check: building rpmemd and the end-to-end tests over RDMA against $rc_dir's headers"
PKG_CONFIG_PATH="$rc_dir/lib/pkgconfig" CARGO_TARGET_DIR="$new_dir" \
	cargo build --locked -p rpmemd --features rpmemd/verbs
e2e_bin=$(test_binary "$new_dir" rpmem-e2e rpmem-e2e/verbs verbs \
	PKG_CONFIG_PATH="$rc_dir/lib/pkgconfig")
[ -x "$sys_bin" ] && [ -x "$new_bin" ] && [ -x "$e2e_bin" ] ||
	{ echo "flush-check: a test binary was not built" >&2; exit 1; }
[ -x "$new_dir/debug/rpmemd" ] || { echo "flush-check: no $new_dir/debug/rpmemd" >&2; exit 1; }
echo "flush-check: building the benchmark's rpmem, rpmemd and raw_apm_lat (release) against $rc_dir's headers"
PKG_CONFIG_PATH="$rc_dir/lib/pkgconfig" CARGO_TARGET_DIR="$new_dir" \
	cargo build --locked --release -p rpmem -p rpmemd --features rpmem/verbs,rpmemd/verbs
PKG_CONFIG_PATH="$rc_dir/lib/pkgconfig" CARGO_TARGET_DIR="$new_dir" \
	cargo build --locked --release -p rpmem-verbs --features verbs --example raw_apm_lat
echo "flush-check: $sys_bin"
echo "flush-check: $new_bin"
echo "flush-check: $e2e_bin"

status=0
echo "flush-check: run 1 of 2: --kernel backports --rdma-core new --nvdimm (FLUSH expected)"
"$here/run.sh" --kernel backports --rdma-core new --nvdimm --no-baseline -- \
	"$here/flush-guest.sh" 1 "$new_bin" "$sys_bin" "$e2e_bin" "$new_dir/release" || status=1
last=$(ls -td "$cache/runs"/*/ 2>/dev/null | head -n 1)
echo "flush-check: benchmark of RDMA FLUSH (${last:-no run directory}):"
if [ -n "$last" ] && [ -s "$last/flush-bench.txt" ]; then
	sed 's/^/  /' "$last/flush-bench.txt"
else
	echo "  no results"
fi
echo "flush-check: run 2 of 2: the default rig, kernel 6.1 and rdma-core 44 (no FLUSH expected)"
"$here/run.sh" --no-baseline -- "$here/flush-guest.sh" 0 "$new_bin" "$sys_bin" || status=1
echo "flush-check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
