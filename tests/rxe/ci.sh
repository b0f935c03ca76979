#!/usr/bin/env bash
# The RDMA part of CI: builds the verbs data path and its tests (cargo feature `verbs`), boots
# the rxe rig (tests/rxe/run.sh) and runs tests/rxe/verbs-suite.sh in it: the verbs layer's own
# test, the library's end-to-end tests over RDMA (GPSPM on a file, APM on Device DAX, a wrong
# secret refused), rpmemd's pmem detection on emulated pmem, and the benchmark over rxe beside
# the perftest baselines of the same guest run. Then tests/rxe/flush-check.sh: RDMA FLUSH
# detected and working with Linux 6.12 + rdma-core 56 (built from Debian's source package into
# target/rxe/), and reported absent on the default rig (RXE_FLUSH=0 skips this part).
#
#   tests/rxe/ci.sh [run.sh OPTIONS]
#
# Needs root and the build dependencies of rdma-sys (libibverbs-dev librdmacm-dev
# libclang-dev, installed by .ci/install-deps); run.sh installs what the guest needs.
# Target directory: target/verbs (RXE_TARGET_DIR), so that the default build's binaries,
# built without RDMA, are left alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
cd "$repo"
export CARGO_TARGET_DIR=${RXE_TARGET_DIR:-$repo/target/verbs}
features=rpmem/verbs,rpmemd/verbs,rpmem-verbs/verbs,rpmem-e2e/verbs

echo "rxe ci: building the verbs data path and its tests in $CARGO_TARGET_DIR"
cargo build --locked --release -p rpmem -p rpmemd --features rpmem/verbs,rpmemd/verbs
cargo build --locked --release -p rpmem-verbs --features verbs --example raw_apm_lat
cargo build --locked -p rpmemd --features rpmemd/verbs
cargo test --locked --no-run -p rpmem-verbs -p rpmem-e2e -p rpmemd --features "$features" \
	--message-format=json-render-diagnostics 2>/dev/null |
	python3 -c '
import json, sys
# Integration test targets: rpmem-verbs tests/rxe.rs, rpmem-e2e tests/verbs.rs, rpmemd
# tests/pmem_hw.rs and tests/verbs_header.rs.
want = {"rxe", "verbs", "pmem_hw", "verbs_header"}
found = set()
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("kind") == ["test"] and t.get("name") in want:
        found.add(t["name"])
        print(m["executable"])
if want - found:
    sys.exit(f"test binaries not built: {sorted(want - found)}")
' >"$CARGO_TARGET_DIR/rxe-tests"
# What of the verbs path needs no device runs here, on the host: rpmemd's registered range
# and the rate limits of refused RDMA connection requests.
echo "rxe ci: rpmemd's verbs unit tests (no device needed)"
cargo test --locked -p rpmemd --features rpmemd/verbs --lib transport::verbs
echo "rxe ci: test binaries:"
sed 's/^/  /' "$CARGO_TARGET_DIR/rxe-tests"
status=0
"$here/run.sh" "$@" -- "$here/verbs-suite.sh" "$CARGO_TARGET_DIR" || status=$?
# The run directory run.sh just used (the newest), and the benchmark's ratios in it.
runs=${RXE_CACHE:-$repo/target/rxe}/runs
last=$(ls -td "$runs"/*/ 2>/dev/null | head -n 1)
echo
echo "rxe ci: benchmark over rxe (${last:-no run directory}):"
if [ -n "$last" ] && [ -s "$last/verbs-bench.txt" ]; then
	sed 's/^/  /' "$last/verbs-bench.txt"
else
	echo "  no results"
fi
if [ "${RXE_FLUSH:-1}" != 0 ]; then
	echo
	echo "rxe ci: RDMA FLUSH detection, both ways (tests/rxe/flush-check.sh)"
	RXE_TARGET_DIR=$CARGO_TARGET_DIR "$here/flush-check.sh" || status=$?
fi
echo "rxe ci: exit status $status"
exit "$status"
