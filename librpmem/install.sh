#!/bin/sh
# Installs librpmem.so.1 (the C library of rpmem-rs), its header and its
# pkg-config file:
#
#   <libdir>/librpmem.so.1.0.0
#   <libdir>/librpmem.so.1 -> librpmem.so.1.0.0   (the soname)
#   <libdir>/librpmem.so   -> librpmem.so.1       (for -lrpmem)
#   <includedir>/librpmem.h
#   <libdir>/pkgconfig/librpmem.pc                (from librpmem.pc.in)
#
# usage: librpmem/install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR]
#                            [--destdir DIR] [--lib FILE]
#
# --prefix      default /usr/local; --libdir default <prefix>/lib,
#               --includedir default <prefix>/include (the paths written
#               into librpmem.pc)
# --destdir     staging root prepended to every path written (packaging)
# --lib         the shared object to install; by default the script runs
#               `cargo build --release -p librpmem` and installs
#               <target dir>/release/librpmem_c.so
#
# After installing into a system directory, run ldconfig.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
libdir=
includedir=
destdir=
lib=
# The librpmem API of PMDK 1.12.1 (RPMEM_MAJOR_VERSION.RPMEM_MINOR_VERSION
# = 1.3 in the header).
version=1.12.1

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) prefix=$2; shift 2 ;;
	--libdir) libdir=$2; shift 2 ;;
	--includedir) includedir=$2; shift 2 ;;
	--destdir) destdir=$2; shift 2 ;;
	--lib) lib=$2; shift 2 ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
libdir=${libdir:-$prefix/lib}
includedir=${includedir:-$prefix/include}

if [ -z "$lib" ]; then
	cargo build --release -p librpmem --manifest-path "$here/../Cargo.toml" >&2
	target=${CARGO_TARGET_DIR:-$here/../target}
	lib=$target/release/librpmem_c.so
fi
if [ ! -f "$lib" ]; then
	echo "install.sh: $lib does not exist" >&2
	exit 1
fi

install -d "$destdir$libdir" "$destdir$libdir/pkgconfig" "$destdir$includedir"
install -m 0755 "$lib" "$destdir$libdir/librpmem.so.1.0.0"
ln -sf librpmem.so.1.0.0 "$destdir$libdir/librpmem.so.1"
ln -sf librpmem.so.1 "$destdir$libdir/librpmem.so"
install -m 0644 "$here/include/librpmem.h" "$destdir$includedir/librpmem.h"
sed -e "s|@prefix@|$prefix|" -e "s|@libdir@|$libdir|" \
	-e "s|@includedir@|$includedir|" -e "s|@version@|$version|" \
	"$here/librpmem.pc.in" > "$destdir$libdir/pkgconfig/librpmem.pc"
chmod 0644 "$destdir$libdir/pkgconfig/librpmem.pc"
echo "installed librpmem.so.1 into $destdir$libdir, librpmem.h into $destdir$includedir"
