#!/bin/bash
# Guest side of the rxe rig (tests/rxe/run.sh): runs as PID 1 in the QEMU guest after the
# initramfs (tests/rxe/init.sh) has switch_rooted into the host root (9p, read-only) + tmpfs
# overlay.  /rxe is the run directory shared with the host (writable): config and command.sh
# come in through it; status, summary and logs go out through it.
#
# Sets up rxe0 on a guest-only veth pair, /dev/pmem0 with an ext4 DAX mount, a plain ext4
# mount, a Device DAX namespace when it can, checks MAP_SYNC, runs the smoke check and the
# perftest baselines, then the command, writes /rxe/status ("exit=N") and powers off.

set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C
umask 022

OUT=/rxe
HERE=$(dirname "$(readlink -f "$0")")
T0=$EPOCHREALTIME

# Addresses from 198.18.0.0/15 (RFC 2544, set aside for benchmarking); they exist only inside
# this guest, which has no network card.
RXE_DEV=rxe0
RXE_NETDEV=vrxe0
RXE_PEER=vrxe1
RXE_ADDR=198.18.0.1
RXE_PEER_ADDR=198.18.0.2
RXE_GID_INDEX=1
PMEM_DEV=/dev/pmem0
PMEM_DIR=/mnt/pmem
PLAIN_DIR=/mnt/plain
TMPFS_DIR=/mnt/tmpfs
DAX_DEV=

RXE_BASELINE=1
RXE_ITERS=1000
RXE_CMD_TIMEOUT=780
RXE_COMMAND_GIVEN=0
RXE_KERNEL=bookworm
RXE_RDMA_CORE=system
RXE_RDMA_CORE_DIR=
RXE_RDMA_CORE_VERSION=
RXE_NVDIMM=0
NVDIMM_DAX_DEV=
# shellcheck disable=SC1091
[ -f "$OUT/config" ] && . "$OUT/config"

failures=0
setup_ok=1

# Process creation is slow under TCG (tenths of a second), so the timing helpers use bash's
# $EPOCHREALTIME and arithmetic only.  since T: sets REPLY to the seconds since T (one decimal).
since() {
	local a=${1/./} b=${EPOCHREALTIME/./}
	local d=$(((10#$b - 10#$a) / 100000))
	REPLY="$((d / 10)).$((d % 10))"
}
say() {
	since "$T0"
	echo "[rxe-guest ${REPLY}s] $*"
}
# summary lines go to the console and to /rxe/summary, which the host prints at the end
note() {
	say "$*"
	echo "$*" >>"$OUT/summary"
}

finish() {
	local code=$1
	since "$T0"
	note "guest total: $REPLY s; exit status $code"
	echo "exit=$code" >"$OUT/status.tmp" && mv "$OUT/status.tmp" "$OUT/status"
	sync
	echo "RXE-RIG-STATUS=$code"
	poweroff -f 2>/dev/null || /bin/busybox poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 10
	exit "$code"
}

# run NAME CMD...: a setup or check step, timed; a failure is counted and reported
run() {
	local name=$1
	shift
	local t
	t=$EPOCHREALTIME
	if "$@"; then
		since "$t"
		note "ok      $name ($REPLY s)"
		return 0
	fi
	since "$t"
	note "FAILED  $name ($REPLY s)"
	failures=$((failures + 1))
	return 1
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or time runs out
wait_for() {
	local limit=$1
	shift
	local i=0
	local n=$((limit * 10))
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le "$n" ] || return 1
		sleep 0.1
	done
}

: >"$OUT/summary"

# --- base system ---------------------------------------------------------------------------
# /tmp stays the host's (through the overlay: readable, writes stay in the guest), so that a
# checkout or a command under the host's /tmp is visible; /run is fresh.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname rxe-guest
ip link set lo up
ulimit -l unlimited
read -r uptime_s _ </proc/uptime
say "kernel $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo); guest script started $uptime_s s after kernel start"
note "guest kernel: $(uname -r)"

# --rdma-core new: every process of the guest (probe, smoke check, perftest, the command) loads
# libibverbs and librdmacm from the rdma-core built into the rig's cache; that libibverbs has
# its provider directory and libibverbs.d compiled in, both inside the same directory.
if [ "$RXE_RDMA_CORE" = new ] && [ -n "$RXE_RDMA_CORE_DIR" ]; then
	export LD_LIBRARY_PATH=$RXE_RDMA_CORE_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	note "rdma-core: $RXE_RDMA_CORE_VERSION from $RXE_RDMA_CORE_DIR (LD_LIBRARY_PATH)"
else
	note "rdma-core: the host's ($(dpkg-query -W -f='${Version}' libibverbs1 2>/dev/null || echo '?'))"
fi

modules() {
	# libnvdimm first, skipping ndctl's modprobe.d hook (ndctl load-keys: no keys here)
	modprobe --ignore-install libnvdimm &&
		modprobe -a rdma_rxe ib_uverbs rdma_ucm veth nd_e820 nd_pmem dax_pmem device_dax ext4 brd &&
		if [ "$RXE_NVDIMM" = 1 ]; then modprobe nfit; fi
}
run "load modules" modules || setup_ok=0

# --- soft-RoCE on a guest-only veth pair -------------------------------------------------------
rxe_up() {
	ip link add "$RXE_NETDEV" type veth peer name "$RXE_PEER" &&
		ip addr add "$RXE_ADDR/24" dev "$RXE_NETDEV" &&
		ip addr add "$RXE_PEER_ADDR/24" dev "$RXE_PEER" &&
		ip link set "$RXE_NETDEV" up && ip link set "$RXE_PEER" up &&
		rdma link add "$RXE_DEV" type rxe netdev "$RXE_NETDEV" || return 1
	local gid=/sys/class/infiniband/$RXE_DEV/ports/1/gids/$RXE_GID_INDEX
	local typ=/sys/class/infiniband/$RXE_DEV/ports/1/gid_attrs/types/$RXE_GID_INDEX
	# GID index 1 becomes the RoCEv2 IPv4-mapped GID once the address is seen; port ACTIVE.
	local want
	# shellcheck disable=SC2086 # split the address at its dots
	want=$(IFS=. && set -- $RXE_ADDR && printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$@")
	wait_for 10 grep -qix "$want" "$gid" ||
		{ say "GID $RXE_GID_INDEX of $RXE_DEV is $(cat "$gid" 2>&1), not ::ffff:$RXE_ADDR"; return 1; }
	wait_for 10 grep -q "RoCE v2" "$typ" || { say "GID type is $(cat "$typ" 2>&1)"; return 1; }
	wait_for 10 grep -q ACTIVE "/sys/class/infiniband/$RXE_DEV/ports/1/state" ||
		{ say "port state: $(cat "/sys/class/infiniband/$RXE_DEV/ports/1/state")"; return 1; }
	rdma link show
	note "rxe: $RXE_DEV on $RXE_NETDEV, $RXE_ADDR, GID index $RXE_GID_INDEX = $(cat "$gid") ($(cat "$typ"))"
}
run "rxe0 on guest-only veth" rxe_up || setup_ok=0

# --- persistent memory -------------------------------------------------------------------------
pmem_up() {
	wait_for 10 test -b "$PMEM_DEV" || { say "$PMEM_DEV did not appear"; return 1; }
	mkfs.ext4 -q -F -b 4096 -L rxe-pmem "$PMEM_DEV" &&
		mkdir -p "$PMEM_DIR" &&
		mount -t ext4 -o dax "$PMEM_DEV" "$PMEM_DIR" || return 1
	grep -E "^$PMEM_DEV $PMEM_DIR ext4 .*dax" /proc/mounts ||
		{ say "$PMEM_DIR is not mounted with dax"; return 1; }
	note "pmem: $PMEM_DEV ($(($(blockdev --getsize64 "$PMEM_DEV") / 1048576)) MiB) ext4 -o dax at $PMEM_DIR"
}
run "pmem0 + ext4 DAX mount" pmem_up || setup_ok=0

plain_up() {
	# brd ramdisk: a real block device, so ext4 goes through the page cache and msync writes
	# back (the non-DAX path); tmpfs if brd is missing.
	mkdir -p "$PLAIN_DIR"
	if [ -b /dev/ram0 ] || { rmmod brd 2>/dev/null; modprobe brd rd_nr=1 rd_size=131072 && wait_for 5 test -b /dev/ram0; }; then
		mkfs.ext4 -q -F -b 4096 -L rxe-plain /dev/ram0 && mount -t ext4 /dev/ram0 "$PLAIN_DIR" || return 1
		note "plain: /dev/ram0 (brd) ext4 without dax at $PLAIN_DIR"
	else
		mount -t tmpfs -o size=256m tmpfs "$PLAIN_DIR" || return 1
		note "plain: tmpfs at $PLAIN_DIR (brd unavailable)"
	fi
}
run "plain (non-DAX) mount" plain_up || setup_ok=0

tmpfs_up() {
	mkdir -p "$TMPFS_DIR" && mount -t tmpfs -o size=256m tmpfs "$TMPFS_DIR" &&
		note "tmpfs: $TMPFS_DIR (shmem: rxe can register it, unlike ext4 page cache on 6.12)"
}
run "tmpfs mount" tmpfs_up || setup_ok=0

run "MAP_SYNC accepted on $PMEM_DIR, refused on $PLAIN_DIR" \
	python3 "$HERE/mapsync.py" file "$PMEM_DIR" accept file "$PLAIN_DIR" refuse || setup_ok=0

# ns_provider NSDIR: the provider of the nvdimm bus a namespace is on ("e820", "ACPI.NFIT")
ns_provider() {
	local p
	p=$(readlink -f "$1")
	while [ "$p" != / ] && [ ! -f "$p/provider" ]; do p=${p%/*}; done
	cat "$p/provider" 2>/dev/null
}

devdax_up() {
	# The second legacy (e820) region's raw namespace (the one that is not pmem0) becomes
	# Device DAX with 4 KiB alignment.
	local ns='' nsdir d
	for nsdir in /sys/bus/nd/devices/namespace*; do
		[ -e "$nsdir/block/${PMEM_DEV#/dev/}" ] && continue
		[ "$(ns_provider "$nsdir")" = e820 ] || continue
		[ -d "$nsdir/block" ] && { ns=${nsdir##*/}; break; }
	done
	[ -n "$ns" ] || { say "no second raw pmem namespace for Device DAX"; return 1; }
	ndctl create-namespace -f -e "$ns" -m devdax -a 4096 >"$OUT/ndctl-devdax.json" 2>&1 ||
		{ cat "$OUT/ndctl-devdax.json"; return 1; }
	wait_for 5 compgen -G "/dev/dax*" || { say "no /dev/dax* appeared"; return 1; }
	for d in /dev/dax*; do DAX_DEV=$d; done
	python3 "$HERE/mapsync.py" devdax "$DAX_DEV" || { DAX_DEV=; return 1; }
	note "devdax: $DAX_DEV (from $ns, $(($(<"/sys/bus/dax/devices/${DAX_DEV#/dev/}/size") / 1048576)) MiB, align 4096)"
}
# Device DAX is a bonus: its failure is reported but does not fail the run.
run "Device DAX namespace (optional)" devdax_up || failures=$((failures - 1))

nvdimm_up() {
	# --nvdimm: the ACPI NVDIMM's raw namespace (label-less, so one namespace spans it)
	# becomes Device DAX too; this memory is IORES_DESC_PERSISTENT_MEMORY, not legacy pmem.
	local ns='' nsdir before d
	wait_for 10 compgen -G "/sys/bus/nd/devices/ndbus*/provider" || return 1
	for nsdir in /sys/bus/nd/devices/namespace*; do
		[ "$(ns_provider "$nsdir")" = ACPI.NFIT ] || continue
		[ -d "$nsdir/block" ] && { ns=${nsdir##*/}; break; }
	done
	[ -n "$ns" ] || { say "no raw namespace on the ACPI.NFIT bus"; ls -l /sys/bus/nd/devices/; return 1; }
	before=$(compgen -G "/dev/dax*")
	ndctl create-namespace -f -e "$ns" -m devdax -a 4096 >"$OUT/ndctl-nvdimm.json" 2>&1 ||
		{ cat "$OUT/ndctl-nvdimm.json"; return 1; }
	wait_for 5 test "$(compgen -G "/dev/dax*" | wc -l)" -gt "$(grep -c . <<<"$before")" ||
		{ say "no new /dev/dax* appeared"; return 1; }
	for d in /dev/dax*; do grep -qx "$d" <<<"$before" || NVDIMM_DAX_DEV=$d; done
	python3 "$HERE/mapsync.py" devdax "$NVDIMM_DAX_DEV" || { NVDIMM_DAX_DEV=; return 1; }
	note "nvdimm: $NVDIMM_DAX_DEV (ACPI NFIT $ns, $(($(<"/sys/bus/dax/devices/${NVDIMM_DAX_DEV#/dev/}/size") / 1048576)) MiB, align 4096)"
}
if [ "$RXE_NVDIMM" = 1 ]; then
	run "NVDIMM (NFIT) Device DAX namespace" nvdimm_up || setup_ok=0
fi

# --- RDMA capabilities: MR registration on each memory kind, FLUSH, ATOMIC WRITE -------------
caps_probe() {
	local rc
	timeout 60 "$OUT/rxe-caps" "$RXE_DEV" "$RXE_GID_INDEX" "fsdax=$PMEM_DIR" "devdax=$DAX_DEV" \
		"file=$PLAIN_DIR" "shmem=$TMPFS_DIR" "nvdimm=$NVDIMM_DAX_DEV" >"$OUT/rxe-caps.log" 2>&1
	rc=$?
	cat "$OUT/rxe-caps.log"
	while read -r line; do note "caps: $line"; done < <(grep '^RESULT ' "$OUT/rxe-caps.log" | cut -c8-)
	return "$rc"
}
if [ "$setup_ok" = 1 ] && [ -x "$OUT/rxe-caps" ]; then
	run "verbs probe (rxe-caps: loopback RC WRITE/READ, MR kinds, ATOMIC WRITE, FLUSH)" caps_probe
elif [ ! -x "$OUT/rxe-caps" ]; then
	note "verbs probe not run: rxe-caps was not built on the host"
fi

# --- smoke check and perftest baselines ---------------------------------------------------------
listening() { ss -Hltn "sport = :$1" | grep -q .; }

# pair NAME PORT SERVER-CMD -- CLIENT-CMD: run a server in the background, wait until it
# listens on TCP PORT, run the client; both bounded by timeouts; logs in /rxe/NAME.*.log
pair() {
	local name=$1 port=$2
	shift 2
	local server=() client=()
	while [ "$1" != -- ]; do server+=("$1"); shift; done
	shift
	client=("$@")
	timeout 60 "${server[@]}" >"$OUT/$name.server.log" 2>&1 &
	local spid=$!
	if ! wait_for 20 listening "$port"; then
		say "$name: server did not listen on port $port"
		kill "$spid" 2>/dev/null
		wait "$spid"
		cat "$OUT/$name.server.log"
		return 1
	fi
	timeout 60 "${client[@]}" >"$OUT/$name.client.log" 2>&1
	local crc=$?
	wait "$spid"
	local src=$?
	if [ "$crc" != 0 ] || [ "$src" != 0 ]; then
		say "$name: client exit $crc, server exit $src"
		tail -n 20 "$OUT/$name.server.log" "$OUT/$name.client.log"
		return 1
	fi
}

smoke() {
	ibv_devinfo -d "$RXE_DEV" >"$OUT/ibv_devinfo.log" 2>&1 || { cat "$OUT/ibv_devinfo.log"; return 1; }
	grep -q "PORT_ACTIVE" "$OUT/ibv_devinfo.log" || { cat "$OUT/ibv_devinfo.log"; return 1; }
	# verbs with an explicit GID (what perftest and the rpmem verbs transport do)
	pair ibv_rc_pingpong 18515 ibv_rc_pingpong -d "$RXE_DEV" -g "$RXE_GID_INDEX" -n 200 \
		-- ibv_rc_pingpong -d "$RXE_DEV" -g "$RXE_GID_INDEX" -n 200 "$RXE_ADDR" || return 1
	# librdmacm address resolution and connection setup over rxe0 (rping's server exits after
	# serving one client; the client is retried while the server may not be listening yet)
	timeout 90 rping -s -a "$RXE_ADDR" -p 7471 -C 20 >"$OUT/rping.server.log" 2>&1 &
	local spid=$! crc=1 try
	for try in 1 2 3; do
		sleep "$try"
		timeout 60 rping -c -a "$RXE_ADDR" -p 7471 -C 20 -v >"$OUT/rping.client.log" 2>&1
		crc=$?
		[ "$crc" = 0 ] && break
	done
	timeout 10 tail --pid="$spid" -f /dev/null
	kill "$spid" 2>/dev/null
	wait "$spid"
	local src=$?
	if [ "$crc" != 0 ] || [ "$(grep -c 'ping data' "$OUT/rping.client.log")" != 20 ]; then
		say "rping: client exit $crc, server exit $src"
		tail -n 20 "$OUT/rping.server.log" "$OUT/rping.client.log"
		return 1
	fi
}

# perftest calibrates its cycle counter against gettimeofday and gives up ("Correlation
# coefficient r^2 < 0.9"; figures print as inf or 0.00) when TCG on a busy host makes the two
# disagree.  perf_try HEADER-PATTERN TOOL ARGS... runs server + client up to 3 times until the
# client prints finite figures, and leaves the result line in $perf_line.
perf_try() {
	local pattern=$1 tool=$2 attempt
	shift 2
	perf_line=
	for attempt in 1 2 3; do
		pair "$tool" 18515 "$tool" "$@" -- "$tool" "$@" "$RXE_ADDR" || return 1
		perf_line=$(awk -v p="$pattern" '$0 ~ p { getline; print; exit }' "$OUT/$tool.client.log")
		if [ -z "$perf_line" ]; then
			say "$tool: no result line"
			cat "$OUT/$tool.client.log"
			return 1
		fi
		# every figure after "#bytes #iterations" must be finite and above zero
		awk '{ for (i = 3; i <= NF; i++) if ($i ~ /inf|nan/ || $i + 0 <= 0) exit 1 }' \
			<<<"$perf_line" && return 0
		say "$tool: attempt $attempt: perftest could not calibrate its clock: $perf_line"
	done
	return 1
}

# perf_lat TOOL: one perftest latency test (server + client in this guest, both on rxe0)
perf_lat() {
	local tool=$1
	perf_try t_typical "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n "$RXE_ITERS" -F || return 1
	# bytes iterations t_min t_max t_typical t_avg t_stdev 99% 99.9%
	# shellcheck disable=SC2086 # split the result line into its columns
	set -- $perf_line
	note "$(printf 'perftest %-12s %s B x %s: typical %s us, avg %s us, min %s us, 99%% %s us, 99.9%% %s us' \
		"$tool" "$1" "$2" "$5" "$6" "$3" "$8" "$9")"
}

perf_bw() {
	local tool=ib_write_bw
	perf_try "BW average" "$tool" -d "$RXE_DEV" -x "$RXE_GID_INDEX" -n "$RXE_ITERS" -F -s 65536 ||
		return 1
	# bytes iterations BW-peak BW-average MsgRate
	# shellcheck disable=SC2086 # split the result line into its columns
	set -- $perf_line
	note "$(printf 'perftest %-12s %s B x %s: average %s MB/s, peak %s MB/s, %s Mpps' \
		"$tool" "$1" "$2" "$4" "$3" "$5")"
}

if [ "$RXE_BASELINE" = 1 ]; then
	if [ "$setup_ok" = 1 ]; then
		run "smoke: ibv_devinfo, ibv_rc_pingpong, rping" smoke
		for tool in ib_write_lat ib_read_lat ib_send_lat; do
			run "$tool" perf_lat "$tool"
		done
		run "ib_write_bw" perf_bw
	else
		note "skipped the smoke check and perftest: setup failed"
	fi
fi

# --- the command -----------------------------------------------------------------------------
cmd_status=0
if [ "$RXE_COMMAND_GIVEN" = 1 ]; then
	if [ "$setup_ok" = 1 ]; then
		say "running the command: $(tail -n 1 "$OUT/command.sh" | cut -c6-)"
		t=$EPOCHREALTIME
		env RXE_DEV="$RXE_DEV" RXE_ADDR="$RXE_ADDR" RXE_GID_INDEX="$RXE_GID_INDEX" \
			RXE_NETDEV="$RXE_NETDEV" PMEM_DEV="$PMEM_DEV" PMEM_DIR="$PMEM_DIR" \
			PLAIN_DIR="$PLAIN_DIR" TMPFS_DIR="$TMPFS_DIR" DAX_DEV="$DAX_DEV" RXE_OUT="$OUT" \
			RXE_KERNEL="$RXE_KERNEL" RXE_RDMA_CORE="$RXE_RDMA_CORE" \
			RXE_RDMA_CORE_DIR="$RXE_RDMA_CORE_DIR" NVDIMM_DAX_DEV="$NVDIMM_DAX_DEV" \
			CARGO_NET_OFFLINE=true CARGO_TERM_COLOR=never \
			timeout -k 5 "$RXE_CMD_TIMEOUT" bash "$OUT/command.sh" </dev/null
		cmd_status=$?
		[ "$cmd_status" = 124 ] && say "the command hit its ${RXE_CMD_TIMEOUT} s limit"
		since "$t"
		note "command exit status $cmd_status ($REPLY s)"
	else
		note "command not run: setup failed"
		cmd_status=1
	fi
fi

if [ "$setup_ok" != 1 ] || [ "$failures" -gt 0 ]; then
	note "rig: $failures step(s) failed"
	[ "$cmd_status" = 0 ] && cmd_status=1
fi
finish "$cmd_status"
