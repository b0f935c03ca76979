#!/usr/bin/env bash
# The benchmark of RDMA FLUSH, inside the FLUSH rig (kernel 6.12, rdma-core >= 45, the QEMU
# NVDIMM; run by tests/rxe/flush-guest.sh):
#
#   tests/rxe/flush-bench.sh BIN_DIR
#
# BIN_DIR holds rpmem, rpmemd (both with --features verbs, built against the new rdma-core)
# and examples/raw_apm_lat. On a pool on the NVDIMM's Device DAX (persist-apm = yes, where
# rpmemd offers FLUSH), RXE_FLUSH_ROUNDS (default 5) rounds, each of: ib_read_lat,
# raw_apm_lat, a 64-byte relaxed persist with RDMA FLUSH (WRITE + FLUSH) and one with
# RPMEM_RDMA_FLUSH=0 on the same pool (APM: WRITE + READ), one lane, busy polling on both
# sides. Prints each round and the medians of the per-round ratios, and writes the summary to
# $RXE_OUT/flush-bench.txt. Exits non-zero if any figure could not be taken or a pool did not
# run the method asked for. Ratios are reported, not judged (see docs/BENCHMARKS.md).
set -u

bin=$1
rounds=${RXE_FLUSH_ROUNDS:-5}
[ -n "${NVDIMM_DAX_DEV:-}" ] || { echo "flush-bench: no NVDIMM Device DAX (NVDIMM_DAX_DEV)"; exit 1; }
bench_dir=$(mktemp -d -p "$TMPFS_DIR" flush-bench.XXXXXX)
mkdir -p "$bench_dir/sets"
rpmem=$bin/rpmem
raw_tool=$bin/examples/raw_apm_lat
# perftest_lat, raw_lat, persist_p50
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
{
	echo "poolset-dir = $bench_dir/sets"
	echo "use-syslog = no"
	echo "log-file = $bench_dir/rpmemd.log"
	echo "log-level = info"
	echo "persist-apm = yes"
} >"$bench_dir/rpmemd.conf"
printf 'PMEMPOOLSET\nAUTO %s\n' "$NVDIMM_DAX_DEV" >"$bench_dir/sets/n.set"
size=$(cat "/sys/bus/dax/devices/$(basename "$NVDIMM_DAX_DEV")/size")
cmd="$bin/rpmemd -c $bench_dir/rpmemd.conf"
export RPMEM_PROVIDER=verbs RPMEM_LAUNCH=local
"$rpmem" remove "$RXE_ADDR" n.set --force --cmd "$cmd" >/dev/null 2>&1 || true
"$rpmem" create "$RXE_ADDR" n.set --size "$size" --cmd "$cmd" >/dev/null 2>"$bench_dir/create.err" ||
	{ echo "flush-bench: FAILED: creating n.set: $(cat "$bench_dir/create.err")"; exit 1; }
failed=0
for i in $(seq "$rounds"); do
	perftest_lat ib_read_lat round- && raw_lat round- &&
		persist_p50 round-flush "RDMA FLUSH" "$RXE_ADDR" n.set "$cmd" --relaxed &&
		RPMEM_RDMA_FLUSH=0 persist_p50 round-apm APM "$RXE_ADDR" n.set "$cmd" --relaxed ||
		{ failed=1; break; }
done
"$rpmem" remove "$RXE_ADDR" n.set --force --cmd "$cmd" >/dev/null 2>&1 || true
cp "$bench_dir"/*.txt "$bench_dir"/*.json "$RXE_OUT/" 2>/dev/null

python3 - "$bench_dir" "$RXE_OUT/flush-bench.txt" <<'PY' || failed=1
import os, sys
d, out = sys.argv[1], sys.argv[2]

def figures(name):
    try:
        return [float(x) for x in open(os.path.join(d, f"round-{name}.txt")).read().split()]
    except (OSError, ValueError):
        return []

def med_range(v):
    s = sorted(v)
    n = len(s)
    m = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return f"{m:.2f}x ({s[0]:.2f}-{s[-1]:.2f})"

rounds = list(zip(figures("ib_read_lat"), figures("raw_floor"), figures("flush"), figures("apm")))
for i, (rl, floor, fl, apm) in enumerate(rounds, 1):
    print(f"FLUSH round {i}: ib_read_lat {rl:.1f} us, raw floor {floor:.2f}x, rpmem 64 B relaxed "
          f"persist p50: RDMA FLUSH {fl:.1f} us, APM {apm:.1f} us")
if not rounds:
    sys.exit("flush-bench: no complete round")
line = (f"RDMA FLUSH, relaxed, {len(rounds)} interleaved rounds (kernel 6.12, NVDIMM): rpmem 64 B "
        f"persist p50 {med_range([fl / rl for rl, _, fl, _ in rounds])} ib_read_lat and "
        f"{med_range([fl / apm for _, _, fl, apm in rounds])} APM on the same pool "
        f"(APM {med_range([apm / rl for rl, _, _, apm in rounds])} ib_read_lat; the device's "
        f"APM floor {med_range([r[1] for r in rounds])}); medians of the per-round ratios")
print(line)
with open(out, "w") as f:
    f.write(line + "\n")
PY
echo "flush-bench: exit status $failed"
exit "$failed"
