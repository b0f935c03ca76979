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
#   NVDIMM_DAX_DEV=/dev/daxN.0 (with --nvdimm; empty otherwise or when its setup failed)
#   PMEM_DEV=/dev/pmem0  PMEM_DIR=/mnt/pmem (ext4, DAX)  PLAIN_DIR=/mnt/plain (ext4, no DAX)
#   TMPFS_DIR=/mnt/tmpfs  DAX_DEV=/dev/dax1.0 (empty when no Device DAX namespace was made)
#   RXE_OUT=/rxe (this run's directory on the host, writable: copy results there)
#   RXE_KERNEL=bookworm|backports  RXE_RDMA_CORE=system|new
#   RXE_RDMA_CORE_DIR=<cache>/rdma-core-<version> (empty with the host's rdma-core)
#
# COMMAND's exit status becomes this script's; any failure of the rig itself exits non-zero.
#
# Options (each also settable by the environment variable shown):
#   --kernel bookworm|backports   guest kernel: Debian 12's linux-image-amd64 (6.1, default) or
#                                 bookworm-backports' (6.12: rxe has RDMA FLUSH and ATOMIC WRITE)
#                                 [RXE_KERNEL]
#   --rdma-core system|new        user-space RDMA libraries of the guest's processes: the host's
#                                 (Debian 12: rdma-core 44, default) or a newer rdma-core built
#                                 once from Debian trixie's source package into
#                                 <cache>/rdma-core-<version> (never into /usr) and put first on
#                                 the guest's LD_LIBRARY_PATH; with --kernel backports this is
#                                 what RDMA FLUSH from user space needs [RXE_RDMA_CORE]
#   --nvdimm                      also give the guest a 128 MiB ACPI NVDIMM (QEMU nvdimm device,
#                                 NFIT): its namespace becomes Device DAX NVDIMM_DAX_DEV, memory
#                                 the kernel lists as real persistent memory (the memmap= ranges
#                                 are "legacy" pmem, on which rxe refuses the FLUSH_PERSISTENT
#                                 registration right) [RXE_NVDIMM=1]
#   --no-baseline                 skip the smoke check and perftest baselines [RXE_BASELINE=0]
#   --iters N                     perftest iterations (default 1000) [RXE_ITERS]
#   --timeout S                   hard limit on the whole VM run, seconds (default 900)
#                                 [RXE_TIMEOUT]
#   --cmd-timeout S               limit on COMMAND inside the guest (default: the VM limit
#                                 less 240 s for boot, setup and baselines) [RXE_CMD_TIMEOUT]
#   --mem SIZE / --smp N          guest memory (default 2G, at least 2G: the emulated pmem
#                                 lies at 1G-1.25G and 1.5G-1.625G) / vCPUs (default 2)
#                                 [RXE_MEM/RXE_SMP]
#   --prepare-only                install packages, fetch the kernel, build the initramfs, the
#                                 probe (and with --rdma-core new, rdma-core), then exit 0
#                                 without booting (to build against the new rdma-core first)
#   --refresh                     fetch the guest kernel (and, with --rdma-core new, the
#                                 rdma-core source) again and rebuild even if cached
#                                 [RXE_REFRESH=1]
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
rdma_core=${RXE_RDMA_CORE:-system}
nvdimm=${RXE_NVDIMM:-0}
prepare_only=0
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
	--rdma-core) rdma_core=${2:?--rdma-core needs a value}; shift 2 ;;
	--rdma-core=*) rdma_core=${1#*=}; shift ;;
	--no-baseline) baseline=0; shift ;;
	--nvdimm) nvdimm=1; shift ;;
	--prepare-only) prepare_only=1; shift ;;
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
case $rdma_core in system | new) ;; *) die "--rdma-core must be system or new, not '$rdma_core'" ;; esac
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
# building rdma-core from source (--rdma-core new): its build dependencies, without the
# optional ones (man pages need pandoc, pyverbs cython; udev/systemd/valgrind support is off)
[ "$rdma_core" = new ] && packages+=(cmake ninja-build pkg-config libnl-3-dev libnl-route-3-dev)
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

# --- 3b. a newer rdma-core (only with --rdma-core new) ---------------------------------------
# Debian 12 ships rdma-core 44, which has no ibv_wr_flush (RDMA FLUSH came with rdma-core 45).
# Build the newest rdma-core of Debian trixie from its source package: the sources come from
# the configured Debian mirror through a private apt state (a deb-src line for trixie; nothing
# in the host's apt configuration changes), their SHA-256 sums are checked against the signed
# Sources index, Debian's patches are applied, and cmake installs the result into
# <cache>/rdma-core-<version> only (prefix, sysconfdir and provider directory all inside it, so
# the libibverbs built there loads its own providers and /usr stays untouched).  Man pages,
# pyverbs, udev and systemd support are left out.  Built once; later runs reuse it.
rc_dir=
rc_version=
rdma_core_build() {
	local a=$cache/apt-src mirror all ver src=$cache/rdma-core-src
	# a finished build is reused without asking the mirror (--refresh looks for a newer one)
	if [ "$refresh" != 1 ] && [ -f "$cache/rdma-core/.complete" ]; then
		rc_dir=$(readlink -f "$cache/rdma-core")
		return 0
	fi
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
	all=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	mirror=$(grep -oE 'https?://[^ ]+/debian/?( |$)' <<<"$all" | head -n 1 | tr -d ' ' || true)
	mirror=${mirror:-http://deb.debian.org/debian}
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
		>"$a/sources.list"
	local aopt=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache")
	log "fetching the trixie source index from $mirror"
	timeout 300 apt-get "${aopt[@]}" update -q >"$a/update.log" 2>&1 ||
		{ cat "$a/update.log" >&2; die "apt-get update (trixie sources, private state in $a) failed"; }
	apt-cache "${aopt[@]}" showsrc --only-source rdma-core >"$a/rdma-core.dsc.txt" 2>/dev/null ||
		die "trixie has no rdma-core source package"
	ver=$(awk '/^Version:/ { print $2 }' "$a/rdma-core.dsc.txt" | sort -V | tail -n 1)
	[ -n "$ver" ] || die "no rdma-core version in the trixie source index"
	local upstream=${ver%-*}
	upstream=${upstream#*:}
	local prefix=$cache/rdma-core-$upstream
	if [ "$refresh" != 1 ] && [ -f "$prefix/.complete" ]; then
		rc_dir=$prefix
		return 0
	fi
	# the Checksums-Sha256 lines of that version's stanza: "sha256 size name"
	local sums
	sums=$(awk -v v="$ver" '
		/^Package:/ { inpkg = 0 } /^Version:/ { inpkg = ($2 == v) }
		inpkg && /^Checksums-Sha256:/ { insum = 1; next }
		insum && /^ / { print $1 "  " $3; next }
		{ insum = 0 }' "$a/rdma-core.dsc.txt" | sort -u)
	grep -q 'orig\.tar' <<<"$sums" && grep -q 'debian\.tar' <<<"$sums" ||
		die "rdma-core $ver: no orig/debian tarball listed in the source index"
	rm -rf "$src"
	mkdir -p "$src"
	chmod 0777 "$src" # apt's _apt user downloads into it
	log "fetching the rdma-core $ver source package (trixie)"
	# The mirror may not serve the .dsc itself; the two tarballs are all the build needs, and
	# their sums are checked below against the signed index.
	(cd "$src" && timeout 600 apt-get "${aopt[@]}" source -d -q "rdma-core=$ver" \
		>"$src/download.log" 2>&1) || true
	(cd "$src" && grep -v '\.dsc$' <<<"$sums" | sha256sum -c --quiet -) ||
		{ cat "$src/download.log" >&2; die "downloading the rdma-core $ver sources failed or their sums differ"; }
	local t0 build=$cache/rdma-core-build
	t0=$(date +%s.%N)
	rm -rf "$build" "$prefix"
	mkdir -p "$build"
	tar -xzf "$src"/rdma-core_"$upstream".orig.tar.gz -C "$build" ||
		die "unpacking rdma-core_$upstream.orig.tar.gz failed"
	local tree=$build/rdma-core-$upstream
	[ -f "$tree/CMakeLists.txt" ] || die "rdma-core $upstream: no CMakeLists.txt in the tarball"
	tar -xJf "$src"/rdma-core_"$ver".debian.tar.xz -C "$tree" || die "unpacking the Debian part failed"
	if [ -f "$tree/debian/patches/series" ]; then
		local p
		while read -r p _; do
			case $p in '' | '#'*) continue ;; esac
			patch -d "$tree" -p1 -s <"$tree/debian/patches/$p" >>"$build/build.log" 2>&1 ||
				{ tail -20 "$build/build.log" >&2; die "Debian patch $p does not apply"; }
		done <"$tree/debian/patches/series"
	fi
	log "building rdma-core $upstream into $prefix (cmake + ninja, ~2 min on 2 cores)"
	# Installed straight into the final prefix (its paths are compiled in); .complete is
	# written last, so an interrupted build is redone by the next run.
	mkdir -p "$tree/build"
	(cd "$tree/build" && cmake -GNinja -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
		-DCMAKE_INSTALL_SYSTEMD_BINDIR="$prefix/lib/systemd" \
		-DNO_PYVERBS=1 -DNO_MAN_PAGES=1 -DENABLE_VALGRIND=0 -DENABLE_STATIC=0 .. &&
		nice ninja -j "$(nproc)" && ninja install) >>"$build/build.log" 2>&1 ||
		{ tail -30 "$build/build.log" >&2; die "building rdma-core $upstream failed (log: $build/build.log)"; }
	# nothing outside the prefix
	if grep -v "^$prefix/" "$tree/build/install_manifest.txt" | grep -q .; then
		die "rdma-core's install wrote outside $prefix: $(grep -v "^$prefix/" "$tree/build/install_manifest.txt" | head -3)"
	fi
	[ -f "$prefix/lib/libibverbs.so.1" ] && [ -f "$prefix/etc/libibverbs.d/rxe.driver" ] &&
		compgen -G "$prefix/lib/libibverbs/librxe-rdmav*.so" >/dev/null ||
		die "rdma-core $upstream installed no libibverbs, rxe provider or rxe.driver in $prefix"
	printf '%s %s\n' "$ver" "$(since "$t0")" >"$prefix/.complete"
	rm -rf "$build"
	rc_dir=$prefix
}
if [ "$rdma_core" = new ]; then
	t=$(date +%s.%N)
	rdma_core_build
	read -r rc_version rc_secs <"$rc_dir/.complete"
	ln -sfn "$(basename "$rc_dir")" "$cache/rdma-core"
	log "rdma-core $rc_version in $rc_dir (built in $rc_secs s; $(since "$t") s now)"
fi

# --- 4. the verbs probe (tests/rxe/rxe-caps.c), built against the rdma-core the guest uses --
t=$(date +%s.%N)
caps_flags=()
if [ "$rdma_core" = new ]; then
	caps_bin=$cache/rxe-caps-new
	caps_hdr=$rc_dir/include/infiniband/verbs.h
	caps_link=(-I"$rc_dir/include" -L"$rc_dir/lib" "-Wl,-rpath,$rc_dir/lib")
else
	caps_bin=$cache/rxe-caps
	caps_hdr=/usr/include/infiniband/verbs.h
	caps_link=()
fi
grep -q ibv_wr_flush "$caps_hdr" && caps_flags=(-DRXE_CAPS_FLUSH)
stamp=$( (cat "$here/rxe-caps.c" "$caps_hdr" && echo "${caps_flags[*]} ${caps_link[*]}") |
	sha256sum | cut -c1-16)
if [ ! -x "$caps_bin" ] || [ "$(cat "$caps_bin.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -f "$caps_bin" "$caps_bin.stamp"
	if gcc -O2 -Wall -Wextra -Werror "${caps_flags[@]}" "${caps_link[@]}" -o "$caps_bin" \
		"$here/rxe-caps.c" -libverbs; then
		echo "$stamp" >"$caps_bin.stamp"
	else
		log "WARNING: building the verbs probe failed; the guest will skip it"
	fi
fi
log "verbs probe ok ($(since "$t") s)"
flock -u 9
if [ "$prepare_only" = 1 ]; then
	log "prepared (--prepare-only): not booting; total $(since "$t_start") s"
	exit 0
fi

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
	echo "RXE_KERNEL=$kernel"
	echo "RXE_RDMA_CORE=$rdma_core"
	echo "RXE_RDMA_CORE_DIR=$rc_dir"
	echo "RXE_RDMA_CORE_VERSION=$rc_version"
	echo "RXE_NVDIMM=$nvdimm"
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
# --nvdimm: an ACPI NVDIMM (NFIT) in a memory hot-plug slot, backed by host RAM (contents
# are not kept across runs); the kernel registers it as IORES_DESC_PERSISTENT_MEMORY.
machine=pc
memopt=$mem
nvdimm_args=()
if [ "$nvdimm" = 1 ]; then
	machine=pc,nvdimm=on
	memopt=$mem,slots=2,maxmem=64G
	# shellcheck disable=SC2054 # QEMU's option values are comma-separated
	nvdimm_args=(-object memory-backend-ram,id=nvmem0,size=128M
		-device nvdimm,id=nvdimm0,memdev=nvmem0)
fi
t=$(date +%s.%N)
set +e
timeout -k 10 "$vm_timeout" qemu-system-x86_64 \
	-name rxe-rig -machine "$machine" -accel tcg,thread=multi -cpu max -smp "$smp" -m "$memopt" \
	"${nvdimm_args[@]}" \
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
