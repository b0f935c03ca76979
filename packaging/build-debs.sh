#!/bin/sh
# Builds the Debian packages of rpmem-rs for this machine's Debian (12):
#
#   rpmemd        /usr/bin/rpmemd, rpmemd(1), completions, /etc/rpmemd/rpmemd.conf
#   rpmem-tools   /usr/bin/rpmem, rpmem(1), completions
#   librpmem1     /usr/lib/<triplet>/librpmem.so.1.0.0 and the soname link
#   librpmem-dev  librpmem.h, librpmem.pc, the librpmem.so link, section 3 and 7 pages
#
# usage: packaging/build-debs.sh [OUTDIR]     (default: <target dir>/debian)
#
# Needs cargo-deb (`cargo install cargo-deb --locked`) and dpkg-dev. The metadata is in the
# [package.metadata.deb] sections of rpmemd/, rpmem/ and librpmem/Cargo.toml; this script
# builds the release binaries once, makes librpmem.pc with librpmem/install.sh, runs cargo-deb
# for each package and completes them where cargo-deb stops (md5sums; librpmem1's strip,
# Depends, shlibs and symbols).
# docs/packaging.md.
set -eu

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
out=${1:-$target/debian}
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

if ! cargo deb --version >/dev/null 2>&1; then
	echo "build-debs.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
	exit 1
fi

cargo build --release --locked -p rpmemd -p rpmem -p librpmem

# librpmem.pc as installed under /usr (the paths are written into it).
stage=$target/release/packaging
rm -rf "$stage"
librpmem/install.sh --prefix /usr --libdir "/usr/lib/$triplet" --destdir "$stage/root" \
	--lib "$target/release/librpmem_c.so" >/dev/null
cp "$stage/root/usr/lib/$triplet/pkgconfig/librpmem.pc" "$stage/librpmem.pc"

mkdir -p "$out"
# Packages of an earlier version would be taken for this one's below.
rm -f "$out"/rpmemd_*.deb "$out"/rpmem-tools_*.deb "$out"/librpmem1_*.deb \
	"$out"/librpmem-dev_*.deb
deb() { cargo deb --no-build --locked --output "$out" "$@"; }
deb -p rpmemd
deb -p rpmem
deb -p librpmem --multiarch=same --variant lib
deb -p librpmem --multiarch=same --variant dev

# Where cargo-deb stops, as debhelper would go on (docs/packaging.md): every package gets the
# md5sums file (dh_md5sums); librpmem1, which cargo-deb does not take for a library (it takes
# only files named *.so), is stripped as a shared library (dh_strip), gets its Depends from
# dpkg-shlibdeps (dh_shlibdeps), and the shlibs and symbols files that let dpkg-shlibdeps find
# librpmem1 for programs linked with -lrpmem (dh_makeshlibs).
version=$(dpkg-deb -f "$(ls "$out"/librpmem1_*_*.deb)" Version)
upstream=${version%-*}
mkdir -p "$stage/shlibdeps/debian" && : > "$stage/shlibdeps/debian/control"
for deb in "$out"/rpmemd_*_*.deb "$out"/rpmem-tools_*_*.deb "$out"/librpmem1_*_*.deb \
	"$out"/librpmem-dev_*_*.deb; do
	work=$stage/repack
	rm -rf "$work"
	dpkg-deb -R "$deb" "$work"
	case $(basename "$deb") in
	librpmem1_*)
		so=$work/usr/lib/$triplet/librpmem.so.1.0.0
		strip --remove-section=.comment --remove-section=.note --strip-unneeded "$so"
		depends=$(cd "$stage/shlibdeps" && dpkg-shlibdeps -O "$so" |
			sed -n 's/^shlibs:Depends=//p')
		[ -n "$depends" ] || { echo "build-debs.sh: dpkg-shlibdeps found no Depends" >&2; exit 1; }
		sed -i "s/^Depends:.*/Depends: $depends/" "$work/DEBIAN/control"
		echo "librpmem 1 librpmem1 (>= $upstream)" > "$work/DEBIAN/shlibs"
		# The symbols file (dh_makeshlibs runs dpkg-gensymbols): the twelve functions of
		# LIBRPMEM_1.0, each since this version.
		gensym=$stage/gensymbols
		mkdir -p "$gensym/debian"
		printf 'Source: rpmem-rs\n\nPackage: librpmem1\nArchitecture: any\n' > "$gensym/debian/control"
		cp packaging/debian/changelog "$gensym/debian/changelog"
		(cd "$gensym" && dpkg-gensymbols -q -plibrpmem1 -P"$work" -v"$upstream" \
			-O"$work/DEBIAN/symbols")
		sed -i '1a\* Build-Depends-Package: librpmem-dev' "$work/DEBIAN/symbols"
		chmod 0644 "$work/DEBIAN/shlibs" "$work/DEBIAN/symbols"
		size=$(du -k -s --apparent-size "$work/usr" | cut -f1)
		sed -i "s/^Installed-Size:.*/Installed-Size: $size/" "$work/DEBIAN/control"
		;;
	esac
	# Conffiles are left out, as dh_md5sums does (dpkg keeps their sums itself).
	sed 's|^/||' "$work/DEBIAN/conffiles" 2>/dev/null > "$stage/conffiles" || : > "$stage/conffiles"
	(cd "$work" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort |
		grep -v -x -F -f "$stage/conffiles" | tr '\n' '\0' | xargs -0 md5sum > DEBIAN/md5sums)
	chmod 0644 "$work/DEBIAN/md5sums"
	dpkg-deb --root-owner-group -Zxz -b "$work" "$deb" >/dev/null
done

# librpmem-dev depends on exactly this librpmem1 (librpmem/Cargo.toml says the version).
dev_deb=$(ls "$out"/librpmem-dev_*_*.deb)
case "$(dpkg-deb -f "$dev_deb" Depends)" in
*"librpmem1 (= $version)"*) ;;
*)
	echo "build-debs.sh: librpmem-dev must depend on librpmem1 (= $version): fix" \
		"[package.metadata.deb.variants.dev] in librpmem/Cargo.toml" >&2
	exit 1
	;;
esac
