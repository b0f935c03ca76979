#!/usr/bin/env bash
# Runs inside the rxe rig (as tests/rxe/run.sh's COMMAND): every test that needs RDMA or
# emulated pmem, then the benchmark of the library over verbs with APM and GPSPM, whose
# figures are set beside the perftest baselines the rig measured in the same guest run, and
# APM's beside the transport's own WRITE + READ (rpmem-verbs' example raw_apm_lat).
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
# perftest_lat TOOL: the median (t_typical, us) of one perftest latency run on this guest's
# rxe device, appended to $bench_dir/TOOL.txt. Run right before and after every benchmark
# case: under TCG the guest's speed follows the host's load, so only figures taken close
# together compare.
perftest_lat() {
	local tool=$1 line
	for _ in 1 2 3; do
		timeout 60 "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n 500 -F >/dev/null 2>&1 &
		local srv=$!
		sleep 0.3
		line=$(timeout 60 "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n 500 -F "$RXE_ADDR" 2>/dev/null |
			awk '/t_typical/ { getline; print $5; exit }')
		wait "$srv" 2>/dev/null
		case $line in
		'' | inf* | nan* | 0.00) continue ;;
		*) echo "$line" >>"$bench_dir/$tool.txt"; return 0 ;;
		esac
	done
	echo "perftest $tool gave no figure"
	return 1
}
# raw_lat: the p50 (us) of the transport's own WRITE + READ (rpmem-verbs' example raw_apm_lat:
# a 64-byte WRITE and an 8-byte READ posted as one list, busy polling, no rpmem; 1000 rounds
# of warm-up, then 2000 measured), appended to
# $bench_dir/raw_write_read.txt; taken around every case like the perftest figures.
raw_lat() {
	local line
	line=$(timeout 60 "$tdir/release/examples/raw_apm_lat" "$RXE_ADDR" 2000 2>&1) || {
		echo "raw_apm_lat failed: $line"
		return 1
	}
	awk '{ for (i = 1; i <= NF; i++) if ($i == "p50") { print $(i + 1); exit } }' <<<"$line" \
		>>"$bench_dir/raw_write_read.txt"
}
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
else
	echo "no Device DAX namespace: APM (which needs pmem) not benchmarked"
fi
cp "$bench_dir"/*.json "$bench_dir"/ib_*_lat.txt "$bench_dir"/raw_write_read.txt "$out/" 2>/dev/null

python3 - "$bench_dir" "$out" <<'PY' || failed=$((failed + 1))
import json, os, sys
bench_dir, out = sys.argv[1], sys.argv[2]

def perftest(tool):
    """Median of the medians (perftest, or raw_write_read) taken around the cases, in us."""
    try:
        v = sorted(float(x) for x in open(os.path.join(bench_dir, f"{tool}.txt")).read().split())
    except (OSError, ValueError):
        return None
    return v[len(v) // 2] if v else None

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
for tool in ("ib_read_lat", "ib_send_lat", "raw_write_read"):
    try:
        runs = open(os.path.join(bench_dir, f"{tool}.txt")).read().split()
    except OSError:
        runs = []
    print(f"perftest {tool} medians around the cases: {' '.join(runs)} us")
rows = [
    ("APM, relaxed (WRITE + READ)", "apm-relaxed", read_lat, "ib_read_lat", 1.3),
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
with open(os.path.join(out, "verbs-bench.txt"), "w") as f:
    f.write("\n".join(summary) + "\n")
if not summary:
    sys.exit("no benchmark results")
PY

echo "verbs suite: $failed failure(s)"
[ "$failed" = 0 ]
