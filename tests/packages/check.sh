#!/usr/bin/env bash
# The Debian packages, built, linted, installed and used as installed (docs/packaging.md):
#
#   1. every man page in man/ renders without a warning (man --warnings);
#   2. packaging/build-debs.sh builds rpmemd, rpmem-tools, librpmem1 and librpmem-dev (it
#      reuses the release build of test.sh's step "release binaries carry no seeded bugs");
#   3. lintian on each package: its output is in the log, any error or warning fails;
#   4. dpkg -i, then against the installed files only (a clean environment: PATH of system
#      directories, no LD_LIBRARY_PATH, no build tree): rpmemd --version, the shipped
#      rpmemd.conf changes no default, man -w, the completions, pkg-config, a C program built
#      with `cc $(pkg-config --cflags --libs librpmem)` that creates, persists, reopens and
#      reads a pool in local mode, and Debian's pmempool creating an obj pool with a remote
#      replica (REPLICA root@127.0.0.1:PORT remote.set) through real ssh (an sshd of its own
#      on 127.0.0.1), the installed library and the rpmemd an ssh session finds on its PATH,
#      and a libpmemobj program (pmemobj_tx.c, Debian's libpmemobj-dev) doing transactions on
#      such a pool, which pmempool sync then rebuilds from the remote replica alone;
#   5. dpkg -r of rpmemd keeps only the conffile, as the administrator edited it; --purge
#      removes it; purging the others leaves none of their files and no librpmem in the
#      dynamic loader's cache;
#   6. in a clean Debian 12 chroot (debootstrap minbase): dpkg -i, the programs and the
#      library run with only the packages' Depends, and dpkg --purge gives back exactly the
#      file system debootstrap made (PACKAGES_CHROOT=0 skips it).
#
# Needs root (it installs into /usr and purges again; the packages are purged on any exit),
# cargo-deb (installed with `cargo install cargo-deb --locked` when missing), and the Debian
# packages lintian, man-db, dpkg-dev, pkg-config, build-essential, pmdk-tools,
# libpmemobj-dev and debootstrap (.ci/install-deps).
set -euo pipefail
# (Under pipefail a reader that stops early, like grep -q, can fail the pipeline with the
# writer's SIGPIPE: the readers here read their whole input.)

cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/debian
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=/usr/lib/$triplet
packages=(rpmemd rpmem-tools librpmem1 librpmem-dev)

if [ "$(id -u)" -ne 0 ]; then
	echo "check.sh: needs root (it installs the packages with dpkg -i and purges them)" >&2
	exit 1
fi

say() { echo "--- $*"; }
die() { echo "check.sh: FAILED: $*" >&2; exit 1; }

# 1. The man pages of the tree. `.so` links resolve relative to man/.
say "man pages render without warnings"
for page in man/man?/*.[0-9]; do
	warnings=$(cd man && MANWIDTH=80 man --warnings -l "${page#man/}" 2>&1 >/dev/null)
	[ -z "$warnings" ] || die "$page: $warnings"
done

# 2. Build.
if ! cargo deb --version >/dev/null 2>&1; then
	say "installing cargo-deb"
	cargo install cargo-deb --locked --quiet
fi
say "packaging/build-debs.sh"
rm -rf "$out"
packaging/build-debs.sh "$out"
debs=()
for p in "${packages[@]}"; do
	f=$(ls "$out/${p}"_*_*.deb) || die "no package $p in $out"
	debs+=("$f")
done

# 3. lintian. initial-upload-closes-no-bugs: these packages are not uploaded to Debian, so
# there is no ITP bug for their first changelog entry to close (docs/packaging.md).
# Each package on its own, so that the log has every package's output (informational,
# pedantic and experimental tags included) under its name.
for deb in "${debs[@]}"; do
	say "lintian ${deb##*/}"
	lintian --pedantic --display-info --display-experimental \
		--suppress-tags initial-upload-closes-no-bugs --fail-on error,warning "$deb" ||
		die "lintian reported errors or warnings for ${deb##*/}"
	echo "lintian ${deb##*/}: no errors, no warnings"
done

# 4. Install, then use what is installed.
scratch=$(mktemp -d /tmp/rpmem-packages.XXXXXX)
chmod 0755 "$scratch"
purge_all() {
	local installed=()
	for p in "${packages[@]}"; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -v "not-installed" >/dev/null; then
			installed+=("$p")
		fi
	done
	[ ${#installed[@]} -eq 0 ] || dpkg --purge "${installed[@]}" >/dev/null
}
sshd_pid=
cleanup() {
	[ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null || true
	purge_all || true
	rm -rf "$scratch"
}
trap cleanup EXIT

say "dpkg -i"
dpkg -i "${debs[@]}"
verify=$(dpkg --verify "${packages[@]}")
[ -z "$verify" ] || die "dpkg --verify: $verify"

# A clean environment: system directories only, no LD_LIBRARY_PATH, nothing of the tree.
home=$scratch/home
mkdir -p "$home"
sys() {
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" \
		LANG=C.UTF-8 "$@"
}

say "the installed programs"
[ "$(sys sh -c 'command -v rpmemd')" = /usr/bin/rpmemd ] || die "rpmemd is not /usr/bin/rpmemd"
[ "$(sys sh -c 'command -v rpmem')" = /usr/bin/rpmem ] || die "rpmem is not /usr/bin/rpmem"
version=$(dpkg-query -W -f='${Version}' rpmemd)
sys rpmemd --version | tee "$scratch/v"
grep -qx "rpmemd version ${version%-*}" "$scratch/v" || die "rpmemd --version: $(cat "$scratch/v")"
sys rpmem --version

say "/etc/rpmemd/rpmemd.conf is a conffile and changes no default"
dpkg-query -W -f='${Conffiles}\n' rpmemd | grep " /etc/rpmemd/rpmemd.conf " >/dev/null ||
	die "/etc/rpmemd/rpmemd.conf is not a conffile of rpmemd"
sys rpmemd --dump-config > "$scratch/with-conf"
sys env RPMEMD_GLOBAL_CONFIG="$scratch/none" rpmemd --dump-config > "$scratch/defaults"
diff -u "$scratch/defaults" "$scratch/with-conf" ||
	die "the installed rpmemd.conf changes the built-in defaults"

say "man pages"
for page in rpmemd rpmem librpmem rpmem_errormsg rpmem_create rpmem_open rpmem_persist \
	rpmem_read poolset; do
	path=$(sys man -w "$page") || die "man -w $page"
	echo "$page: $path"
	case $path in
	/usr/share/man/*) ;;
	*) die "man -w $page: $path is not an installed page" ;;
	esac
	zcat "$path" | grep "rpmem-rs" >/dev/null || die "$path is not our page"
	warnings=$(sys env MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null)
	[ -z "$warnings" ] || die "man $page: $warnings"
done

say "PMDK's rpmemd(1) and poolset(5) are diverted aside, not overwritten"
dpkg-divert --list rpmemd
restored=()
for f in /usr/share/man/man1/rpmemd.1.gz:rpmemd-pmdk.1.gz /usr/share/man/man5/poolset.5.gz:poolset-pmdk.5.gz; do
	[ "$(dpkg-divert --listpackage "${f%%:*}")" = rpmemd ] || die "${f%%:*} is not diverted by rpmemd"
	aside=$(dirname "${f%%:*}")/${f##*:}
	[ ! -e "$aside" ] || restored+=("${f%%:*}")
done

say "shell completions"
sys bash -c 'source /usr/share/bash-completion/completions/rpmem &&
	source /usr/share/bash-completion/completions/rpmemd && complete -p rpmem rpmemd'
for f in /usr/share/zsh/vendor-completions/_rpmem /usr/share/zsh/vendor-completions/_rpmemd \
	/usr/share/fish/vendor_completions.d/rpmem.fish \
	/usr/share/fish/vendor_completions.d/rpmemd.fish; do
	[ -s "$f" ] || die "$f is missing"
done

say "the dynamic loader finds the installed library"
first=$(ldconfig -p | awk '$1 == "librpmem.so.1" && !n++ { print $NF }')
# (/lib is /usr/lib on Debian 12: compare the files the names resolve to.)
ours=$(readlink -f "$libdir/librpmem.so.1")
[ "$ours" = "$libdir/librpmem.so.1.0.0" ] || die "$libdir/librpmem.so.1 resolves to $ours"
[ -n "$first" ] && [ "$(readlink -f "$first")" = "$ours" ] ||
	die "ldconfig resolves librpmem.so.1 to '$first', not the installed $ours"
[ "$(readlink "$libdir/librpmem.so.1")" = librpmem.so.1.0.0 ] || die "soname link"
[ "$(readlink "$libdir/librpmem.so")" = librpmem.so.1 ] || die "development link"

say "pkg-config and a C program"
flags=$(sys pkg-config --cflags --libs librpmem)
echo "pkg-config --cflags --libs librpmem: $flags"
# shellcheck disable=SC2086 # the flags are words
sys cc -Wall -Werror -o "$scratch/persist" tests/packages/persist.c $flags
loaded=$(sys ldd "$scratch/persist" | awk '$1 == "librpmem.so.1" { print $3 }')
echo "the program loads librpmem.so.1 from $loaded"
[ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = "$ours" ] ||
	die "the program does not load the installed $ours"

# The shlibs and symbols files of librpmem1 give a program linked with -lrpmem its Depends.
mkdir -p "$scratch/shlibdeps/debian" && : > "$scratch/shlibdeps/debian/control"
deps=$(cd "$scratch/shlibdeps" && dpkg-shlibdeps -O "$scratch/persist")
echo "dpkg-shlibdeps of the program: $deps"
case $deps in
*"librpmem1 (>= ${version%-*})"*) ;;
*) die "dpkg-shlibdeps does not give the program a dependency on librpmem1: $deps" ;;
esac

# rpmemd's configuration and pool set directory for local mode.
pools=$scratch/pools
mkdir -p "$pools"
cat > "$scratch/rpmemd.conf" <<CONF
poolset-dir = $pools
log-file = $scratch/rpmemd.log
use-syslog = no
log-level = info
CONF
printf 'PMEMPOOLSET\n8M %s/c.part0\n' "$pools" > "$pools/c.set"
local_mode=(RPMEM_LAUNCH=local "RPMEM_CMD=/usr/bin/rpmemd -c $scratch/rpmemd.conf")
sys env "${local_mode[@]}" "$scratch/persist" c.set ||
	die "the C program failed; rpmemd's log: $(cat "$scratch/rpmemd.log" 2>/dev/null)"

# Debian's libpmemobj flow through real ssh to 127.0.0.1: an sshd of our own (its keys and
# configuration in the scratch directory), root logging in with a key; the session's shell
# finds the installed rpmemd on its PATH.
say "sshd on 127.0.0.1"
ssh_dir=$scratch/ssh
mkdir -p "$ssh_dir" /run/sshd
ssh-keygen -q -t ed25519 -N '' -C "rpmem packages test host" -f "$ssh_dir/host_key"
ssh-keygen -q -t ed25519 -N '' -C "rpmem packages test client" -f "$ssh_dir/client_key"
cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
for attempt in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat > "$ssh_dir/sshd_config" <<CONF
ListenAddress 127.0.0.1:$port
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
CONF
	echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$ssh_dir/host_key.pub")" > "$ssh_dir/known_hosts"
	/usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" 2> "$ssh_dir/sshd.log" &
	sshd_pid=$!
	for _ in $(seq 50); do
		grep -q "Server listening" "$ssh_dir/sshd.log" && break
		kill -0 "$sshd_pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "Server listening" "$ssh_dir/sshd.log" && break
	kill "$sshd_pid" 2>/dev/null || true
	wait "$sshd_pid" 2>/dev/null || true
	sshd_pid=
	[ "$attempt" -lt 5 ] || die "sshd did not start: $(cat "$ssh_dir/sshd.log")"
done
cat > "$ssh_dir/ssh_config" <<CONF
Host *
  IdentityFile $ssh_dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $ssh_dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  LogLevel ERROR
CONF
printf '#!/bin/sh\nexec ssh -F %s "$@"\n' "$ssh_dir/ssh_config" > "$ssh_dir/ssh"
chmod 0755 "$ssh_dir/ssh"
target=root@127.0.0.1:$port
found=$(sys "$ssh_dir/ssh" -T -p "$port" root@127.0.0.1 'command -v rpmemd') ||
	die "ssh to 127.0.0.1:$port failed: $(cat "$ssh_dir/sshd.log")"
[ "$found" = /usr/bin/rpmemd ] || die "an ssh session finds rpmemd at '$found', not /usr/bin/rpmemd"
echo "an ssh session on 127.0.0.1:$port runs /usr/bin/rpmemd"

say "pmempool: an obj pool with a replica on $target through the installed librpmem and rpmemd"
over_ssh=(RPMEM_SSH="$ssh_dir/ssh" "RPMEM_CMD=rpmemd -c $scratch/rpmemd.conf")
printf 'PMEMPOOLSET\n16M %s/remote.part0\n' "$pools" > "$pools/remote.set"
printf 'PMEMPOOLSET\n16M %s/local.part0\nREPLICA %s remote.set\n' "$scratch" "$target" \
	> "$scratch/local.set"
sys env "${over_ssh[@]}" pmempool create --layout pkgtest obj "$scratch/local.set" ||
	die "pmempool create; rpmemd's log: $(cat "$scratch/rpmemd.log" 2>/dev/null)"
[ -s "$pools/remote.part0" ] || die "rpmemd did not create the replica's part"
grep -q "ssh connection: 127.0.0.1" "$scratch/rpmemd.log" ||
	die "rpmemd was not started by sshd: $(cat "$scratch/rpmemd.log")"
sys env "${over_ssh[@]}" pmempool info "$scratch/local.set" > "$scratch/info"
grep -q "Replica 1 - remote" "$scratch/info" || die "pmempool info: $(cat "$scratch/info")"
# Past the pool headers (their uuids differ) the replica holds the local part's bytes.
cmp -i 8192 "$scratch/local.part0" "$pools/remote.part0" ||
	die "the replica differs from the local part past the headers"
sys env "${over_ssh[@]}" pmempool rm "$scratch/local.set"
[ ! -e "$pools/remote.part0" ] || die "pmempool rm left the replica's part"

# A libpmemobj program of our own (Debian's libpmemobj-dev) doing transactions on a pool with a
# replica over ssh; then the local part is deleted and pmempool sync rebuilds it from the
# remote replica alone, and every committed transaction is there.
say "libpmemobj transactions on a pool with a replica on $target"
sys cc -Wall -Werror -o "$scratch/pmemobj_tx" tests/packages/pmemobj_tx.c -lpmemobj
printf 'PMEMPOOLSET\n16M %s/tx-remote.part0\n' "$pools" > "$pools/tx-remote.set"
printf 'PMEMPOOLSET\n16M %s/tx.part0\nREPLICA %s tx-remote.set\n' "$scratch" "$target" \
	> "$scratch/tx.set"
# (PMEM_IS_PMEM_FORCE: libpmemobj flushes the local part instead of msync()ing every persist.)
tx=(env "${over_ssh[@]}" PMEM_IS_PMEM_FORCE=1 "$scratch/pmemobj_tx" "$scratch/tx.set")
sessions=$(grep -c "ssh connection: 127.0.0.1" "$scratch/rpmemd.log")
sys "${tx[@]}" write 100 || die "libpmemobj transactions; rpmemd's log: $(cat "$scratch/rpmemd.log")"
[ "$(grep -c "ssh connection: 127.0.0.1" "$scratch/rpmemd.log")" -gt "$sessions" ] ||
	die "the transactions did not go through an rpmemd that sshd started"
rm "$scratch/tx.part0"
sys env "${over_ssh[@]}" pmempool sync "$scratch/tx.set" ||
	die "pmempool sync from the remote replica; rpmemd's log: $(cat "$scratch/rpmemd.log")"
sys "${tx[@]}" check 100 || die "the transactions are not all on the remote replica"
sys env "${over_ssh[@]}" pmempool rm "$scratch/tx.set"
[ ! -e "$pools/tx-remote.part0" ] || die "pmempool rm left the transactions' replica part"
kill "$sshd_pid"
wait "$sshd_pid" 2>/dev/null || true
sshd_pid=

# 5. Remove and purge.
for p in "${packages[@]}"; do
	dpkg-query -L "$p" > "$scratch/files.$p"
done
gone() { # the files and links of package $1 other than the conffile $2 no longer exist
	local path owners
	while read -r path; do
		[ "$path" = "${2:-}" ] && continue
		# A page that rpmemd diverted is back under its name, owned by its Debian package.
		owners=$(dpkg-query -S "$path" 2>/dev/null | grep -v '^diversion' |
			sed 's/: .*//; s/:[a-z0-9]*$//' | tr ', ' '\n\n' | grep -vx -e "$1" -e '' || true)
		[ -n "$owners" ] && continue
		if [ -L "$path" ] || { [ -e "$path" ] && [ ! -d "$path" ]; }; then
			die "$path of $1 is still there"
		fi
	done < "$scratch/files.$1"
}

say "dpkg -r rpmemd keeps the administrator's conffile, --purge removes it"
conf=/etc/rpmemd/rpmemd.conf
echo "log-level = notice # edited by the administrator" >> "$conf"
dpkg -r rpmemd
gone rpmemd "$conf"
grep -q "edited by the administrator" "$conf" || die "dpkg -r lost the edited $conf"
[ "$(ls -A /etc/rpmemd)" = rpmemd.conf ] || die "/etc/rpmemd holds more than rpmemd.conf"
[ "$(dpkg-query -W -f='${Status}' rpmemd)" = "deinstall ok config-files" ] ||
	die "rpmemd is not in the config-files state after dpkg -r"
dpkg --purge rpmemd
[ ! -e /etc/rpmemd ] || die "dpkg --purge left /etc/rpmemd"
gone rpmemd

# The pages of Debian's PMDK packages have their names back.
for f in /usr/share/man/man1/rpmemd.1.gz /usr/share/man/man5/poolset.5.gz; do
	[ -z "$(dpkg-divert --listpackage "$f")" ] || die "$f is still diverted"
done
for f in "${restored[@]}"; do
	[ -e "$f" ] || die "$f did not get its name back"
	echo "$f: $(dpkg-query -S "$f")"
done

say "dpkg --purge of the others leaves nothing"
dpkg --purge rpmem-tools librpmem-dev librpmem1
for p in rpmem-tools librpmem-dev librpmem1; do
	gone "$p"
	[ ! -e "/usr/share/doc/$p" ] || die "/usr/share/doc/$p is still there"
done
if ldconfig -p | grep "librpmem.so.1 " >/dev/null; then
	die "the dynamic loader's cache still lists librpmem.so.1: $(ldconfig -p | grep librpmem)"
fi

# 6. A clean Debian 12 (debootstrap --variant=minbase, nothing else installed): the packages'
# Depends are all the programs and the library need, their maintainer scripts work there, and
# dpkg --purge gives back exactly the file system that was there before dpkg -i. The minbase
# tree is kept as <target dir>/packages-chroot.tar.gz for the next run (DEBIAN_MIRROR: where
# debootstrap downloads from). PACKAGES_CHROOT=0 skips this stage.
if [ "${PACKAGES_CHROOT:-1}" != 0 ]; then
	say "a clean Debian 12 chroot: dpkg -i, use, purge"
	chroot_dir=$scratch/chroot
	cache=${CARGO_TARGET_DIR:-$root/target}/packages-chroot.tar.gz
	if [ -s "$cache" ]; then
		mkdir "$chroot_dir" && tar -xzf "$cache" -C "$chroot_dir"
	else
		debootstrap --variant=minbase bookworm "$chroot_dir" \
			"${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$scratch/debootstrap.log" 2>&1 ||
			die "debootstrap: $(tail -20 "$scratch/debootstrap.log")"
		tar -czf "$cache.tmp" -C "$chroot_dir" . || die "writing $cache.tmp"
		mv "$cache.tmp" "$cache"
	fi
	in_chroot() {
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$chroot_dir" "$@"
	}
	# Every path, its type and link target, outside dpkg's and apt's own state and logs.
	tree() {
		(cd "$chroot_dir" && find . -xdev \( -path ./var/lib/dpkg -o -path ./var/log \
			-o -path ./var/cache -o -path ./tmp -o -path ./var/lib/apt \) -prune -o \
			-printf '%y %m %p %l\n' | LC_ALL=C sort)
	}
	tree > "$scratch/chroot.before"
	mkdir -p "$chroot_dir/tmp/debs"
	cp "${debs[@]}" "$chroot_dir/tmp/debs/"
	in_chroot sh -c 'dpkg -i /tmp/debs/*.deb' || die "dpkg -i in the clean chroot"
	in_chroot rpmemd --version
	in_chroot rpmem --version
	in_chroot rpmemd --dump-config > /dev/null || die "rpmemd --dump-config in the chroot"
	ldd_out=$(in_chroot /usr/bin/ldd "/usr/lib/$triplet/librpmem.so.1")
	echo "$ldd_out"
	case $ldd_out in
	*"not found"*) die "librpmem.so.1 misses a library in a clean system: $ldd_out" ;;
	esac
	cached=$(in_chroot ldconfig -p | awk '$1 == "librpmem.so.1" && !n++ { print $NF }')
	[ -n "$cached" ] && [ "$(in_chroot readlink -f "$cached")" = "$libdir/librpmem.so.1.0.0" ] ||
		die "the chroot's loader cache resolves librpmem.so.1 to '$cached'"
	for p in "${packages[@]}"; do
		[ "$(in_chroot dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] ||
			die "$p is not installed in the chroot"
	done
	in_chroot dpkg --purge "${packages[@]}" || die "dpkg --purge in the clean chroot"
	rm -rf "$chroot_dir/tmp/debs"
	tree > "$scratch/chroot.after"
	diff -u "$scratch/chroot.before" "$scratch/chroot.after" ||
		die "dpkg -i then --purge changed the clean chroot's file system (above)"
	echo "the clean chroot is back to what debootstrap made"
fi
echo "check.sh: the packages build, pass lintian, install, work and purge cleanly"
