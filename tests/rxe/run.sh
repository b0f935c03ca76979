#!/usr/bin/env bash
# The soft-RoCE (rxe) + emulated-pmem VM test rig.  See docs/rxe-rig.md.
#
#   tests/rxe/run.sh [OPTIONS] [-- COMMAND [ARG...]]
#
# Boots a throw-away QEMU guest (TCG, no network card) whose root file system is this host's
# root, read-only over virtio-9p with a tmpfs overlay on top, so the guest sees this checkout
# and everything built in it (writes land in guest memory and vanish; /run is fresh).
# In the guest it brings up the soft-RoCE device rxe0 on a guest-only veth pair, sets up
# /dev/pmem0 (ext4 mounted -o dax), a plain non-DAX ext4 mount for the msync path, a tmpfs, a
# Device DAX namespace when it can, checks that MAP_SYNC works on the DAX mount (and is refused
# on the plain one), probes what rxe0 can do (tests/rxe/rxe-caps.c), runs a verbs/rdmacm smoke
# check and the perftest baselines (ib_write_lat, ib_read_lat, ib_send_lat, ib_write_bw),
# prints their figures, then runs COMMAND (if given) with bash in the current directory, with:
#
#   RXE_DEV=rxe0  RXE_ADDR=198.18.0.1 (rxe0's netdev)  RXE_GID_INDEX=1  RXE_NETDEV=vrxe0
#   PMEM_DEV=/dev/pmem0  PMEM_DIR=/mnt/pmem (ext4, DAX)  PLAIN_DIR=/mnt/plain (ext4, no DAX)
#   TMPFS_DIR=/mnt/tmpfs  DAX_DEV=/dev/dax1.0 (empty when no Device DAX namespace was made)
#   RXE_OUT=/rxe (this run's directory on the host, writable: copy results there)
#
# COMMAND's exit status becomes this script's; any failure of the rig itself exits non-zero.
#
# Options (each also settable by the environment variable shown):
#   --kernel bookworm|backports   guest kernel: Debian 12's linux-image-amd64 (6.1, default) or
#                                 bookworm-backports' (6.12: rxe has RDMA FLUSH and ATOMIC WRITE)
#                                 [RXE_KERNEL]
#   --no-baseline                 skip the smoke check and perftest baselines [RXE_BASELINE=0]
#   --iters N                     perftest iterations (default 1000) [RXE_ITERS]
#   --timeout S                   hard limit on the whole VM run, seconds (default 900)
#                                 [RXE_TIMEOUT]
#   --cmd-timeout S               limit on COMMAND inside the guest (default: the VM limit
#                                 less 240 s for boot, setup and baselines) [RXE_CMD_TIMEOUT]
#   --mem SIZE / --smp N          guest memory (default 2G, at least 2G: the emulated pmem
#                                 lies at 1G-1.25G and 1.5G-1.625G) / vCPUs (default 2)
#                                 [RXE_MEM/RXE_SMP]
#   --refresh                     fetch the guest kernel again even if cached [RXE_REFRESH=1]
# Other environment: RXE_CACHE (default <repo>/target/rxe), RXE_PASS_ENV (names of extra host
# variables to pass to COMMAND; PATH, HOME, CARGO_HOME, CARGO_TARGET_DIR,
# CARGO_BUILD_TARGET_DIR, RUSTUP_HOME, RUSTUP_TOOLCHAIN, RUST_BACKTRACE, RUST_LOG and RUSTFLAGS
# are passed when set).  COMMAND also gets CARGO_NET_OFFLINE=true and CARGO_TERM_COLOR=never.
#
# Needs root (apt-get, and QEMU's 9p export of /); installs missing Debian packages itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
t_start=$(date +%s.%N)

kernel=${RXE_KERNEL:-bookworm}
baseline=${RXE_BASELINE:-1}
iters=${RXE_ITERS:-1000}
vm_timeout=${RXE_TIMEOUT:-900}
cmd_timeout=${RXE_CMD_TIMEOUT:-}
mem=${RXE_MEM:-2G}
smp=${RXE_SMP:-2}
refresh=${RXE_REFRESH:-0}
cache=${RXE_CACHE:-$repo/target/rxe}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

log() { printf '[rxe-rig] %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=${2:?--kernel needs a value}; shift 2 ;;
	--kernel=*) kernel=${1#*=}; shift ;;
	--no-baseline) baseline=0; shift ;;
	--iters) iters=${2:?--iters needs a value}; shift 2 ;;
	--timeout) vm_timeout=${2:?--timeout needs a value}; shift 2 ;;
	--cmd-timeout) cmd_timeout=${2:?--cmd-timeout needs a value}; shift 2 ;;
	--mem) mem=${2:?--mem needs a value}; shift 2 ;;
	--smp) smp=${2:?--smp needs a value}; shift 2 ;;
	--refresh) refresh=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) log "unknown argument: $1"; usage 2 >&2 ;;
	esac
done
command_given=0
[ $# -gt 0 ] && command_given=1

case $kernel in bookworm | backports) ;; *) die "--kernel must be bookworm or backports, not '$kernel'" ;; esac
[ -n "$cmd_timeout" ] || cmd_timeout=$((vm_timeout > 300 ? vm_timeout - 240 : 60))
for n in "$iters" "$vm_timeout" "$cmd_timeout" "$smp"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "expected a positive whole number, got '$n'"
done
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, exports / to the guest over 9p)"
case $here$cache in *[[:space:]]*) die "paths with white space are not supported: $here $cache" ;; esac

# A private apt configuration in the cache: the host's Debian mirror for bookworm,
# bookworm-updates, bookworm-security and bookworm-backports, with its own lists and cache
# directories, so that nothing about the host's apt sources or lists changes.  Used to fetch
# guest kernels and, when the host has QEMU tools from backports, QEMU itself.
apt_priv=()
apt_private_init() {
	[ ${#apt_priv[@]} -gt 0 ] && return 0
	local a=$cache/apt-private all mirror security
	local key=/usr/share/keyrings/debian-archive-keyring.gpg
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
	all=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	mirror=$(grep -oE 'https?://[^ ]+/debian/?( |$)' <<<"$all" | head -n 1 | tr -d ' ' || true)
	security=$(grep -oE 'https?://[^ ]+/debian-security/?( |$)' <<<"$all" | head -n 1 |
		tr -d ' ' || true)
	mirror=${mirror:-http://deb.debian.org/debian}
	security=${security:-http://deb.debian.org/debian-security}
	{
		echo "deb [signed-by=$key] $mirror bookworm main"
		echo "deb [signed-by=$key] $mirror bookworm-updates main"
		echo "deb [signed-by=$key] $security bookworm-security main"
		echo "deb [signed-by=$key] $mirror bookworm-backports main"
	} >"$a/sources.list"
	apt_priv=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache")
	log "fetching package lists for bookworm and bookworm-backports from $mirror"
	timeout 300 apt-get "${apt_priv[@]}" update -q >"$a/update.log" 2>&1 ||
		{ cat "$a/update.log" >&2; die "apt-get update (private state in $a) failed"; }
}

# --- 1. Debian packages ------------------------------------------------------------------
# Host-side tools (QEMU, busybox for the initramfs, kmod's depmod/modprobe, gcc and
# libibverbs-dev for the verbs probe) and everything the guest runs (it runs the host's user
# space: rdma-core, perftest, iproute2, ndctl, python3...).
t=$(date +%s.%N)
mkdir -p "$cache"
packages=(qemu-system-x86 busybox-static kmod cpio xz-utils rdma-core ibverbs-providers
	ibverbs-utils perftest rdmacm-utils iproute2 e2fsprogs ndctl python3 gcc libc6-dev
	libibverbs-dev)
missing=()
qemu_backports=0
for p in "${packages[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] && continue
	# A host image that ships qemu-utils from bookworm-backports (QEMU 10) would lose it to
	# bookworm's qemu-system-x86 (7.2: qemu-utils 10 Breaks it): take QEMU from backports too.
	if [ "$p" = qemu-system-x86 ] &&
		[[ "$(dpkg-query -W -f='${Status} ${Version}' qemu-utils 2>/dev/null)" == "install ok installed "*bpo* ]]; then
		qemu_backports=1
		continue
	fi
	missing+=("$p")
done
# apt_install [APT-OPTION...] -- PACKAGE...
apt_install() {
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get "${opts[@]}" install -y -q \
		--no-install-recommends -o DPkg::Lock::Timeout=300 "$@" >>"$cache/apt.log" 2>&1 ||
		{ tail -20 "$cache/apt.log" >&2; die "apt-get install failed (log: $cache/apt.log)"; }
}
if [ ${#missing[@]} -gt 0 ]; then
	log "installing missing Debian packages: ${missing[*]}"
	timeout 600 apt-get update -q >/dev/null || die "apt-get update failed"
	apt_install -- "${missing[@]}"
fi
if [ $qemu_backports = 1 ]; then
	log "installing qemu-system-x86 from bookworm-backports (to match the installed qemu-utils)"
	apt_private_init
	apt_install "${apt_priv[@]}" -o APT::Default-Release=bookworm-backports -- \
		qemu-system-x86 qemu-utils
fi
log "packages ok ($(since "$t") s)"

# Steps 2-4 fill the shared cache: one run at a time (bounded wait).
exec 9>"$cache/.prepare.lock"
flock -w 1200 9 || die "another run kept $cache/.prepare.lock for 20 minutes"

# --- 2. guest kernel ---------------------------------------------------------------------
# The kernel package is fetched with `apt-get download` (private apt state, see above) and
# unpacked into the cache, not installed on the host: no /boot changes, no initramfs hooks.
t=$(date +%s.%N)
kdir=$cache/kernel-$kernel
if [ "$refresh" = 1 ] || [ ! -f "$kdir/.complete" ]; then
	apt_private_init
	aptopts=("${apt_priv[@]}")
	# bookworm: the highest version in bookworm/-updates/-security (backports is never a
	# candidate by default); backports: prefer bookworm-backports
	[ "$kernel" = backports ] && aptopts+=(-o APT::Default-Release=bookworm-backports)
	pkg=$(apt-cache "${aptopts[@]}" depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 ($kernel) to a kernel package"
	log "fetching guest kernel $pkg"
	rm -rf "$kdir.tmp"
	mkdir -p "$kdir.tmp/deb"
	chmod 0777 "$kdir.tmp/deb" # apt's _apt user downloads into it
	(cd "$kdir.tmp/deb" && timeout 900 apt-get "${aptopts[@]}" download -q "$pkg" >/dev/null 2>&1) ||
		die "apt-get download $pkg failed"
	dpkg-deb -x "$kdir.tmp/deb/"*.deb "$kdir.tmp/root" || die "unpacking $pkg failed"
	kver=$(ls "$kdir.tmp/root/lib/modules")
	[ -f "$kdir.tmp/root/boot/vmlinuz-$kver" ] || die "$pkg has no /boot/vmlinuz-$kver"
	depmod -b "$kdir.tmp/root" "$kver" || die "depmod for $kver failed"
	version=$(dpkg-deb -f "$kdir.tmp/deb/"*.deb Version)
	rm -rf "$kdir.tmp/deb" "$kdir"
	printf '%s %s %s\n' "$pkg" "$version" "$kver" >"$kdir.tmp/.complete"
	mv "$kdir.tmp" "$kdir"
fi
read -r kpkg kpkgver kver <"$kdir/.complete"
kroot=$kdir/root
log "guest kernel $kver ($kpkg $kpkgver) ($(since "$t") s)"

# --- 3. initramfs ------------------------------------------------------------------------
# busybox + the modules needed to reach the host root (virtio-pci, 9p, overlay) + init.sh.
t=$(date +%s.%N)
initrd=$cache/initrd-$kernel.cpio.gz
modpaths=$(modprobe -a -d "$kroot" -S "$kver" --show-depends virtio_pci 9pnet_virtio 9p overlay |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[ -n "$modpaths" ] || die "found no modules for the initramfs"
stamp=$( (cat "$here/init.sh" /bin/busybox "$kdir/.complete" && echo "$modpaths") | sha256sum | cut -c1-16)
if [ ! -f "$initrd" ] || [ "$(cat "$initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
	stage=$cache/initrd-$kernel.stage
	rm -rf "$stage"
	mkdir -p "$stage/bin" "$stage/modules"
	cp /bin/busybox "$stage/bin/busybox"
	install -m 0755 "$here/init.sh" "$stage/init"
	: >"$stage/modules.list"
	echo "$modpaths" | while read -r path; do
		name=$(basename "$path")
		case $name in
		*.ko.xz) xz -dc "$path" >"$stage/modules/${name%.xz}"; name=${name%.xz} ;;
		*.ko.zst) zstd -qdc "$path" >"$stage/modules/${name%.zst}"; name=${name%.zst} ;;
		*.ko) cp "$path" "$stage/modules/$name" ;;
		*) die "unexpected module file $path" ;;
		esac
		echo "$name" >>"$stage/modules.list"
	done
	[ -s "$stage/modules.list" ] || die "found no modules for the initramfs"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	echo "$stamp" >"$initrd.stamp"
	rm -rf "$stage"
fi
log "initramfs ok ($(since "$t") s)"

# --- 4. the verbs probe (tests/rxe/rxe-caps.c), built against the host's rdma-core ----------
t=$(date +%s.%N)
caps_bin=$cache/rxe-caps
caps_flags=()
grep -q ibv_wr_flush /usr/include/infiniband/verbs.h && caps_flags=(-DRXE_CAPS_FLUSH)
stamp=$( (cat "$here/rxe-caps.c" /usr/include/infiniband/verbs.h && echo "${caps_flags[*]}") |
	sha256sum | cut -c1-16)
if [ ! -x "$caps_bin" ] || [ "$(cat "$caps_bin.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -f "$caps_bin" "$caps_bin.stamp"
	if gcc -O2 -Wall -Wextra -Werror "${caps_flags[@]}" -o "$caps_bin" "$here/rxe-caps.c" -libverbs; then
		echo "$stamp" >"$caps_bin.stamp"
	else
		log "WARNING: building the verbs probe failed; the guest will skip it"
	fi
fi
log "verbs probe ok ($(since "$t") s)"
flock -u 9

# --- 5. run directory shared with the guest ----------------------------------------------
runs=$cache/runs
mkdir -p "$runs"
# keep the last few runs for inspection
find "$runs" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | head -n -4 | xargs -r rm -rf
out=$runs/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$out"
{
	echo "RXE_BASELINE=$baseline"
	echo "RXE_ITERS=$iters"
	echo "RXE_CMD_TIMEOUT=$cmd_timeout"
	echo "RXE_COMMAND_GIVEN=$command_given"
} >"$out/config"
[ -x "$caps_bin" ] && cp "$caps_bin" "$out/rxe-caps"
if [ $command_given = 1 ]; then
	{
		echo "# COMMAND given to tests/rxe/run.sh, run by the guest with bash"
		for v in PATH HOME CARGO_HOME CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR RUSTUP_HOME \
			RUSTUP_TOOLCHAIN RUST_BACKTRACE RUST_LOG RUSTFLAGS ${RXE_PASS_ENV:-}; do
			[ -n "${!v+set}" ] && printf 'export %s=%q\n' "$v" "${!v}"
		done
		printf 'cd -- %q || exit 125\n' "$PWD"
		printf 'exec'
		printf ' %q' "$@"
		printf '\n'
	} >"$out/command.sh"
fi

# --- 6. boot ------------------------------------------------------------------------------
# memmap=256M!1G and 128M!1536M turn two ranges of guest RAM into legacy (e820) persistent
# memory: /dev/pmem0 for the fsdax mount, the second region for a Device DAX namespace.
append="console=ttyS0 panic=-1 quiet loglevel=4 memmap=256M!1G memmap=128M!1536M"
append+=" rxe.init=$here/guest.sh rxe.kmod=$kroot/lib/modules/$kver rxe.kver=$kver"
log "booting the guest (TCG, ${smp} vCPUs, $mem, no NIC); output in $out/console.log"
t=$(date +%s.%N)
set +e
timeout -k 10 "$vm_timeout" qemu-system-x86_64 \
	-name rxe-rig -machine pc -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
	-display none -monitor none -serial stdio -nic none -no-reboot \
	-kernel "$kroot/boot/vmlinuz-$kver" -initrd "$initrd" -append "$append" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$out,mount_tag=rxeout,security_model=none,multidevs=remap" \
	</dev/null 2>&1 | tr -d '\r' | tee "$out/console.log"
rc=("${PIPESTATUS[@]}")
set -e
t_vm=$(since "$t")
log "guest ran for $t_vm s (qemu exit status ${rc[0]})"

# --- 7. results ---------------------------------------------------------------------------
status=1
if [ "${rc[0]}" = 124 ] || [ "${rc[0]}" = 137 ]; then
	log "ERROR: the VM run hit the ${vm_timeout} s limit and was killed"
elif [ ! -f "$out/status" ]; then
	log "ERROR: the guest wrote no status file (see $out/console.log)"
else
	# shellcheck disable=SC1091
	status=$(awk -F= '$1 == "exit" { print $2 }' "$out/status")
	[[ $status =~ ^[0-9]+$ ]] || { log "ERROR: malformed status file $out/status"; status=1; }
fi
if [ -f "$out/summary" ]; then
	echo
	cat "$out/summary"
fi
echo
printf '[rxe-rig] total %s s (VM %s s); exit status %s\n' "$(since "$t_start")" "$t_vm" "$status"
exit "$status"
