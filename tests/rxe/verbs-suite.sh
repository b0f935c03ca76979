#!/usr/bin/env bash
# Runs inside the rxe rig (as tests/rxe/run.sh's COMMAND): every test that needs RDMA or
# emulated pmem, then the benchmark of the library over verbs with APM and GPSPM, whose
# figures are set beside the perftest baselines the rig measured in the same guest run, and
# APM's beside the transport's own WRITE + READ (rpmem-verbs' example raw_apm_lat), then
# interleaved rounds of ib_read_lat, raw_apm_lat and rpmem's APM persist whose per-round
# ratios give the APM figure against ib_read_lat and the device's floor (the WRITE + READ
# over the READ alone, which no APM initiator can beat).
#
#   tests/rxe/verbs-suite.sh TARGET_DIR
#
# TARGET_DIR/rxe-tests lists the test binaries to run (one path per line, written by
# tests/rxe/ci.sh); TARGET_DIR/debug holds an rpmemd built with `--features verbs` for them,
# TARGET_DIR/release the rpmem and rpmemd of the benchmark, built the same way.
# Exits non-zero if any test failed or the benchmark could not run. Ratios are reported, not
# judged (TCG timings are only good as ratios within one guest run): see docs/BENCHMARKS.md.
set -u

tdir=$1
failed=0
out=${RXE_OUT:-/tmp}
export RPMEM_HW_TESTS=1 TMPDIR=$TMPFS_DIR RUST_BACKTRACE=1

while IFS= read -r t; do
	[ -n "$t" ] || continue
	echo "=== $(basename "$t")"
	if ! "$t" --test-threads=1; then
		echo "FAILED: $t"
		failed=$((failed + 1))
	fi
done <"$tdir/rxe-tests"

# --- benchmark -------------------------------------------------------------------------------
bench_dir=$(mktemp -d -p "$TMPFS_DIR" rpmem-bench.XXXXXX)
mkdir -p "$bench_dir/sets"
rpmem=$tdir/release/rpmem
rpmemd=$tdir/release/rpmemd
for m in gpspm apm; do
	{
		echo "poolset-dir = $bench_dir/sets"
		echo "use-syslog = no"
		echo "log-file = $bench_dir/$m.log"
		echo "log-level = info"
		if [ $m = apm ]; then echo "persist-apm = yes"; else echo "persist-general = yes"; fi
	} >"$bench_dir/$m.conf"
done
printf 'PMEMPOOLSET\n64M %s/g.part0\n' "$bench_dir" >"$bench_dir/sets/g.set"
have_dax=0
if [ -n "${DAX_DEV:-}" ]; then
	have_dax=1
	printf 'PMEMPOOLSET\nAUTO %s\n' "$DAX_DEV" >"$bench_dir/sets/a.set"
fi
raw_tool=$tdir/release/examples/raw_apm_lat
# perftest_lat, raw_lat, persist_p50
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
export RPMEM_PROVIDER=verbs RPMEM_LAUNCH=local
bench() { # NAME CONF SET SIZE [BENCH ARGS...]
	local name=$1 conf=$2 set=$3 size=$4
	shift 4
	local cmd="$rpmemd -c $bench_dir/$conf"
	# A pool left by an earlier test (or a Device DAX holding data) is removed first.
	"$rpmem" remove "$RXE_ADDR" "$set" --force --cmd "$cmd" >/dev/null 2>&1 || true
	"$rpmem" create "$RXE_ADDR" "$set" --size "$size" --cmd "$cmd" >/dev/null 2>"$bench_dir/$name.create.err" ||
		{ echo "FAILED: creating $set for $name: $(cat "$bench_dir/$name.create.err")"; return 1; }
	perftest_lat ib_send_lat && perftest_lat ib_read_lat && raw_lat || return 1
	"$rpmem" bench "$RXE_ADDR" "$set" --cmd "$cmd" --mode persist --sizes 64,4K,1M --lanes 2 \
		--seconds 1 --ops 2000 --json "$@" >"$bench_dir/$name.json" 2>"$bench_dir/$name.err" ||
		{ echo "FAILED: bench $name: $(cat "$bench_dir/$name.err")"; return 1; }
	perftest_lat ib_send_lat && perftest_lat ib_read_lat && raw_lat || return 1
	"$rpmem" remove "$RXE_ADDR" "$set" --force --cmd "$cmd" >/dev/null 2>&1 || true
}
# apm_rounds N SIZE: N rounds, each of ib_read_lat, raw_apm_lat and rpmem's APM relaxed 64 B
# persist (one lane, busy polling on both sides) back to back, on the Device DAX pool a.set of
# SIZE bytes; each round's figures go to $bench_dir/round-*.txt, one line per round. The
# summary sets each round's rpmem figure beside that round's ib_read_lat and takes the median
# of the ratios: under TCG the guest's speed drifts within a run, and figures seconds apart
# compare better than medians over minutes.
apm_rounds() {
	local n=$1 size=$2 i cmd="$rpmemd -c $bench_dir/apm.conf"
	"$rpmem" remove "$RXE_ADDR" a.set --force --cmd "$cmd" >/dev/null 2>&1 || true
	"$rpmem" create "$RXE_ADDR" a.set --size "$size" --cmd "$cmd" >/dev/null 2>"$bench_dir/rounds.err" ||
		{ echo "FAILED: creating a.set for the APM rounds: $(cat "$bench_dir/rounds.err")"; return 1; }
	for i in $(seq "$n"); do
		perftest_lat ib_read_lat round- && raw_lat round- || return 1
		persist_p50 round-apm APM "$RXE_ADDR" a.set "$cmd" --relaxed || return 1
	done
	"$rpmem" remove "$RXE_ADDR" a.set --force --cmd "$cmd" >/dev/null 2>&1 || true
}
# perftest busy-polls; so do both sides here (a 10 ms spin budget, longer than any operation
# under TCG), so that the ratios compare the same way of waiting. Under TCG a sleeping waiter
# pays about a millisecond per wake-up, so the default budget (50 us) is reported as well.
busy="--spin-us 10000"
export RPMEMD_SPIN_US=10000
bench gpspm gpspm.conf g.set 64M $busy || failed=$((failed + 1))
bench gpspm-relaxed gpspm.conf g.set 64M --relaxed $busy || failed=$((failed + 1))
if [ $have_dax = 1 ]; then
	dax_size=$(cat "/sys/bus/dax/devices/$(basename "$DAX_DEV")/size")
	bench apm-relaxed apm.conf a.set "$dax_size" --relaxed $busy || failed=$((failed + 1))
	bench apm apm.conf a.set "$dax_size" $busy || failed=$((failed + 1))
	unset RPMEMD_SPIN_US
	bench apm-relaxed-spin50 apm.conf a.set "$dax_size" --relaxed --spin-us 50 || failed=$((failed + 1))
	apm_rounds "${RXE_APM_ROUNDS:-7}" "$dax_size" || failed=$((failed + 1))
else
	echo "no Device DAX namespace: APM (which needs pmem) not benchmarked"
fi
cp "$bench_dir"/*.json "$bench_dir"/*.txt "$out/" 2>/dev/null

python3 - "$bench_dir" "$out" <<'PY' || failed=$((failed + 1))
import json, os, sys
bench_dir, out = sys.argv[1], sys.argv[2]

def perftest(tool):
    """Median of the medians (perftest, or raw_apm_lat's) taken around the cases, in us."""
    return median(figures(tool))

def figures(name):
    """The figures of NAME.txt, one per line, in the order taken ([] if none)."""
    try:
        return [float(x) for x in open(os.path.join(bench_dir, f"{name}.txt")).read().split()]
    except (OSError, ValueError):
        return []

def median(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

def case(name, size, lanes=1):
    try:
        d = json.load(open(os.path.join(bench_dir, f"{name}.json")))
    except OSError:
        return None
    for r in d["results"]:
        if r["mode"] == "persist" and r["size"] == size and r["lanes"] == lanes:
            return r
    return None

read_lat, send_lat = perftest("ib_read_lat"), perftest("ib_send_lat")
raw_lat = perftest("raw_write_read")
for tool in ("ib_read_lat", "ib_send_lat", "raw_write_read", "raw_read", "raw_floor"):
    try:
        runs = open(os.path.join(bench_dir, f"{tool}.txt")).read().split()
    except OSError:
        runs = []
    unit = "x" if tool == "raw_floor" else " us"
    print(f"{tool} medians around the cases: {' '.join(runs)}{unit}")
rows = [
    ("APM, relaxed (WRITE + READ)", "apm-relaxed", read_lat, "ib_read_lat", None),
    ("APM, default flags (inline SEND)", "apm", None if send_lat is None else 2 * send_lat, "2 x ib_send_lat", None),
    ("GPSPM, default flags (inline SEND)", "gpspm", None if send_lat is None else 2 * send_lat, "2 x ib_send_lat", None),
    ("GPSPM, relaxed (WRITE + SEND)", "gpspm-relaxed", None if send_lat is None else 2 * send_lat, "2 x ib_send_lat", None),
    ("APM, relaxed, default 50 us spin (sleeps between operations)", "apm-relaxed-spin50", read_lat, "ib_read_lat", None),
]
summary = []
for title, name, base, base_name, target in rows:
    r = case(name, 64)
    if r is None:
        continue
    line = f"{title}: 64 B persist p50 {r['p50_us']:.1f} us, p99 {r['p99_us']:.1f} us"
    if base:
        ratio = r["p50_us"] / base
        line += f"; {ratio:.2f}x {base_name} ({base:.1f} us)"
        if target:
            line += f" (target <= {target})"
    if name.startswith("apm-relaxed") and raw_lat:
        line += f"; {r['p50_us'] / raw_lat:.2f}x the raw WRITE + READ ({raw_lat:.1f} us)"
    for size in (4096, 1 << 20):
        rs = case(name, size)
        if rs:
            line += f"; {size >> 10} KiB p50 {rs['p50_us']:.1f} us"
    summary.append(line)
    print(line)

# The interleaved rounds (apm_rounds): each round's figures side by side, then the medians of
# the per-round ratios. The floor is the device's own: raw_apm_lat's WRITE + READ over its READ
# alone, the two alternating in one process, so no APM persist on this device, whoever posts
# it, can come closer to one READ than that.
rounds = list(zip(figures("round-ib_read_lat"), figures("round-raw_write_read"),
                  figures("round-raw_read"), figures("round-raw_floor"), figures("round-apm")))
for i, (rl, rw, rr, fl, apm) in enumerate(rounds, 1):
    print(f"APM round {i}: ib_read_lat {rl:.1f} us, raw WRITE + READ {rw:.1f} us, raw READ alone "
          f"{rr:.1f} us (floor {fl:.2f}x), rpmem APM relaxed 64 B p50 {apm:.1f} us = {apm / rl:.2f}x ib_read_lat")
if rounds:
    def med_range(v):
        return f"{median(v):.2f}x ({min(v):.2f}-{max(v):.2f})"
    to_read = [apm / rl for rl, _, _, _, apm in rounds]
    line = (f"APM, relaxed, {len(rounds)} interleaved rounds: rpmem 64 B persist p50 "
            f"{med_range(to_read)} ib_read_lat, median of the per-round ratios (target <= 1.3); "
            f"{med_range([apm / rw for _, rw, _, _, apm in rounds])} the raw WRITE + READ; "
            f"the device's floor, raw WRITE + READ over the READ alone: {med_range([r[3] for r in rounds])}")
    summary.append(line)
    print(line)
with open(os.path.join(out, "verbs-bench.txt"), "w") as f:
    f.write("\n".join(summary) + "\n")
if not summary:
    sys.exit("no benchmark results")
PY

echo "verbs suite: $failed failure(s)"
[ "$failed" = 0 ]
