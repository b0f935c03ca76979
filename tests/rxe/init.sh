#!/bin/busybox sh
# shellcheck shell=dash
# /init of the rxe rig's initramfs (built by tests/rxe/run.sh; runs in the guest as PID 1).
#
# Loads the virtio/9p/overlay modules packed next to it (/modules.list, in load order), mounts
# the host's root file system read-only over virtio-9p (mount tag "hostroot"), puts a tmpfs
# overlay on top of it so the guest can write anywhere, mounts the rig's writable output
# directory (mount tag "rxeout") at /rxe, bind-mounts the guest kernel's modules from the rig's
# cache over /lib/modules/<version>, and switch_roots into the result, running the guest-side
# script named by rxe.init= on the kernel command line.
#
# Any failure here powers the guest off at once (after saying why on the console): the host
# side then finds no status file and fails the run.

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "rxe-init: FAILED: $*"
	echo "RXE-RIG-STATUS=init-failed"
	sync
	poweroff -f
	# poweroff -f does not return; if it does, make the kernel panic (panic=-1 reboots, and
	# qemu -no-reboot then exits).
	exit 1
}

mkdir -p /proc /sys /dev /lower /rw /newroot
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"

rxe_init=
rxe_kmod=
rxe_kver=
for arg in $(cat /proc/cmdline); do
	case $arg in
	rxe.init=*) rxe_init=${arg#rxe.init=} ;;
	rxe.kmod=*) rxe_kmod=${arg#rxe.kmod=} ;;
	rxe.kver=*) rxe_kver=${arg#rxe.kver=} ;;
	esac
done
[ -n "$rxe_init" ] && [ -n "$rxe_kmod" ] && [ -n "$rxe_kver" ] ||
	fail "kernel command line lacks rxe.init=, rxe.kmod= or rxe.kver="

read -r up _ </proc/uptime
echo "rxe-init: started $up s after kernel start"
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/modules/$mod" || fail "insmod $mod"
done </modules.list

# The virtio-9p devices appear asynchronously once virtio_pci has probed: retry (bounded).
opts=trans=virtio,version=9p2000.L,msize=262144
i=0
until mount -t 9p -o "ro,$opts,cache=loose" hostroot /lower 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		mount -t 9p -o "ro,$opts,cache=loose" hostroot /lower
		grep -E '9p|overlay' /proc/filesystems
		ls -l /sys/bus/virtio/devices/ /sys/bus/pci/devices/
		cat /sys/bus/virtio/devices/*/mount_tag
		lsmod
		dmesg | tail -30
		fail "could not mount the host root (9p tag hostroot) within 10 s"
	fi
	sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	fail "mount overlay"

mkdir -p /newroot/rxe
mount -t 9p -o "$opts,cache=none" rxeout /newroot/rxe || fail "mount rxeout over 9p"

[ -d "/newroot$rxe_kmod" ] || fail "guest kernel modules not found at $rxe_kmod"
mkdir -p "/newroot/lib/modules/$rxe_kver"
mount -o bind "/newroot$rxe_kmod" "/newroot/lib/modules/$rxe_kver" || fail "bind-mount modules"

[ -x "/newroot$rxe_init" ] || fail "guest script $rxe_init not found or not executable"

for d in proc sys dev; do
	mkdir -p "/newroot/$d"
	mount --move "/$d" "/newroot/$d" || fail "move /$d"
done

read -r up _ </newroot/proc/uptime
echo "rxe-init: host root mounted, switching root $up s after kernel start"
exec switch_root /newroot "$rxe_init"
