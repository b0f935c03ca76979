# Shell functions the rig's benchmarks share (sourced by tests/rxe/verbs-suite.sh and
# tests/rxe/flush-bench.sh inside the guest). The caller sets:
#   bench_dir   where the figures go (one file per figure kind, one line per figure)
#   raw_tool    rpmem-verbs' example raw_apm_lat
#   rpmem       the rpmem command-line tool
# and runs in the rig's environment (RXE_DEV, RXE_ADDR, RXE_GID_INDEX).

# perftest_lat TOOL [PREFIX]: the median (t_typical, us) of one perftest latency run on this
# guest's rxe device, appended to $bench_dir/PREFIXTOOL.txt. Run right before and after every
# benchmark case: under TCG the guest's speed follows the host's load, so only figures taken
# close together compare.
perftest_lat() {
	local tool=$1 prefix=${2:-} line
	for _ in 1 2 3; do
		timeout 60 "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n 500 -F >/dev/null 2>&1 &
		local srv=$!
		sleep 0.3
		line=$(timeout 60 "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n 500 -F "$RXE_ADDR" 2>/dev/null |
			awk '/t_typical/ { getline; print $5; exit }')
		wait "$srv" 2>/dev/null
		case $line in
		'' | inf* | nan* | 0.00) continue ;;
		*) echo "$line" >>"$bench_dir/$prefix$tool.txt"; return 0 ;;
		esac
	done
	echo "perftest $tool gave no figure"
	return 1
}

# raw_lat [PREFIX]: the transport's own APM persist, without rpmem ($raw_tool: a 64-byte WRITE
# and an 8-byte READ posted as one list, in rounds that alternate with the 8-byte READ alone,
# busy polling; 1000 rounds of warm-up, then 2000 of each measured). Appends the p50 (us) of
# WRITE + READ to $bench_dir/PREFIXraw_write_read.txt, of the READ alone to PREFIXraw_read.txt
# and the ratio of the two (the device's floor for APM) to PREFIXraw_floor.txt.
raw_lat() {
	local line
	line=$(timeout 120 "$raw_tool" "$RXE_ADDR" 2000 2>&1) || {
		echo "raw_apm_lat failed: $line"
		return 1
	}
	python3 - "$bench_dir/${1:-}" "$line" <<'PY' || { echo "raw_apm_lat printed no figures: $line"; return 1; }
import re, sys
prefix, line = sys.argv[1], sys.argv[2]
p50 = re.findall(r"p50 ([0-9.]+) us", line)
ratio = re.search(r"ratio ([0-9.]+)", line)
if len(p50) != 2 or not ratio:
    sys.exit(1)
for name, v in (("raw_write_read", p50[0]), ("raw_read", p50[1]), ("raw_floor", ratio.group(1))):
    with open(prefix + name + ".txt", "a") as f:
        f.write(v + "\n")
PY
}

# persist_p50 FILE METHOD TARGET SET CMD [BENCH ARGS...]: one `rpmem bench` of 64-byte persists
# on one lane, busy polling on both sides (2000 operations); appends the p50 (us) to
# $bench_dir/FILE.txt. Fails unless the pool ran persistency method METHOD (its name as
# `rpmem info` prints it), so that a figure is never filed under the wrong method.
persist_p50() {
	local file=$1 method=$2 target=$3 set=$4 cmd=$5
	shift 5
	RPMEMD_SPIN_US=10000 "$rpmem" bench "$target" "$set" --cmd "$cmd" --mode persist --sizes 64 \
		--lanes 1 --ops 2000 --seconds 1 --spin-us 10000 --json "$@" \
		>"$bench_dir/$file.json" 2>"$bench_dir/$file.err" ||
		{ echo "FAILED: rpmem bench for $file: $(cat "$bench_dir/$file.err")"; return 1; }
	python3 - "$bench_dir/$file.json" "$method" >>"$bench_dir/$file.txt" <<'PY' ||
import json, sys
d = json.load(open(sys.argv[1]))
method = d["setup"]["persist_method"]
if method != sys.argv[2]:
    sys.exit(f"the pool ran {method}, not {sys.argv[2]}")
print([r["p50_us"] for r in d["results"] if r["mode"] == "persist" and r["size"] == 64 and r["lanes"] == 1][0])
PY
		{ echo "FAILED: rpmem bench for $file gave no $method figure"; return 1; }
}
