#!/usr/bin/env bash
# The whole test suite: what CI runs and what a developer runs.
#
#   ./test.sh            everything (format, lints, tests, no_std proof, fuzzing,
#                        the RDMA tests and benchmark in the rxe VM rig)
#   FUZZ_SECONDS=0 ./test.sh   skip the fuzzing step
#   RXE=0 ./test.sh      skip the rxe VM rig (it needs root and QEMU; see docs/rxe-rig.md)
#   PACKAGES=0 ./test.sh skip building, installing and purging the Debian packages (needs
#                        root; see docs/packaging.md)
#   PACKAGES_CHROOT=0 ./test.sh  the packages without their clean-chroot stage (debootstrap)
#
# Installs the Debian packages it needs when run as root.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
RXE=${RXE:-1}
PACKAGES=${PACKAGES:-1}
results=()
failed=0

step() {
  local name=$1; shift
  echo "==> $name"
  local start=$SECONDS
  if "$@"; then
    results+=("ok     $name ($((SECONDS - start)) s)")
  else
    results+=("FAILED $name ($((SECONDS - start)) s)")
    failed=$((failed + 1))
  fi
}

bash .ci/install-deps

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked
# The native RDMA data path (cargo feature `verbs`, needs rdma-core and libclang): lints here,
# tests in the rxe VM rig below. Own target dir: features change the rpmem/rpmemd builds.
verbs_features=rpmem/verbs,rpmemd/verbs,rpmem-verbs/verbs,rpmem-e2e/verbs
step "cargo clippy --features verbs" env CARGO_TARGET_DIR=target/verbs \
  cargo clippy --workspace --all-targets --locked --features "$verbs_features" -- -D warnings
step "no_std link check" cargo build --locked --manifest-path rpmem-core/nostd-check/Cargo.toml
# loom models of the lane slots (rpmem) and the shutdown coordinator (rpmemd);
# docs/loom.md. Own target dir: the cfg changes every crate's build.
step "loom models" env RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --locked -p rpmem -p rpmemd --test loom
step "sim: crash check" cargo run -p sim --release --locked -- check --seeds 300
# The seeded bugs exist only with --cfg rpmem_mutants (no Cargo.toml can switch them on), in
# their own target dir: the simulator's mutant tests, the engine's, and the matrix.
mutant_env=(env RUSTFLAGS="--cfg rpmem_mutants" CARGO_TARGET_DIR=target/mutants)
mutants() {
  "${mutant_env[@]}" cargo test --release --locked -p sim &&
    "${mutant_env[@]}" cargo test --release --locked -p rpmem-core --test persist_engine --test mutation_survivors_persist &&
    "${mutant_env[@]}" cargo run -p sim --release --locked -- mutants
}
step "sim: mutant matrix" mutants
# What we ship carries no seeded bug: release builds of the programs and the C library, checked
# for the hooks' marker, beside the positive control (the mutant step's sim has it).
release_has_no_mutants() {
  cargo build --release --locked -p rpmemd -p rpmem -p librpmem &&
    .ci/no-mutant-hooks.sh --absent target/release/rpmemd target/release/rpmem \
      target/release/librpmem_c.so &&
    .ci/no-mutant-hooks.sh --present target/mutants/release/sim
}
step "release binaries carry no seeded bugs" release_has_no_mutants
# The Debian packages from that release build (docs/packaging.md): man pages render, cargo-deb
# builds rpmemd, rpmem-tools, librpmem1 and librpmem-dev, lintian passes, dpkg -i, the
# installed files work (C program via pkg-config, pmempool with a replica over real ssh), dpkg -r
# keeps only the edited conffile and --purge leaves nothing. Needs root; PACKAGES=0 skips it.
if [ "$PACKAGES" != 0 ]; then
  step "Debian packages: build, lintian, install, use, purge" tests/packages/check.sh
fi

fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet || return 1
  fi
  local crate targets t ref seeds dict work
  ref="$PWD/tests/vectors/pmdk-1.12.1"
  # Fuzz into a temporary copy of each committed corpus, so CI never grows the tree's.
  work=$(mktemp -d) || return 1
  for crate in rpmem-core/fuzz rpmemd/fuzz; do
    targets=$(cd "$crate" && cargo fuzz list) || { rm -rf "$work"; return 1; }
    for t in $targets; do
      # Seed from PMDK's own files where they fit the target.
      case $t in
        poolset_parse) seeds="$ref/tests/util_poolset_parse" ;;
        pool_hdr_decode) seeds="$ref/pool_hdr" ;;
        oob_messages) seeds="$ref/wire" ;;
        *) seeds="" ;;
      esac
      [ -n "$seeds" ] && [ -d "$seeds" ] || seeds=""
      dict=""
      if [ -f "$crate/dict/$t.dict" ]; then dict="-dict=$PWD/$crate/dict/$t.dict"; fi
      mkdir -p "$work/$t"
      if [ -d "$crate/corpus/$t" ]; then cp -R "$crate/corpus/$t/." "$work/$t/"; fi
      echo "--- fuzz $t for ${FUZZ_SECONDS}s (AddressSanitizer)"
      # Stable toolchain with AddressSanitizer: its runtime ships with rust-std for
      # x86_64-unknown-linux-gnu, and RUSTC_BOOTSTRAP lets cargo-fuzz pass -Zsanitizer
      # (docs/fuzzing.md). A panic, a sanitizer report or a crash fails the run; the input
      # is left in $crate/artifacts/$t/ (ignored by git).
      (cd "$crate" && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer address "$t" \
          "$work/$t" $seeds -- $dict \
          -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1) ||
        { rm -rf "$work"; return 1; }
    done
  done
  rm -rf "$work"
}
# RDMA over soft-RoCE and emulated pmem in a QEMU guest: the verbs tests, pmem detection, and
# the benchmark beside perftest (docs/rxe-rig.md, docs/verbs.md).
if [ "$RXE" != 0 ]; then
  step "rxe rig: RDMA tests and benchmark" env RXE_TARGET_DIR=target/verbs tests/rxe/ci.sh
fi

if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzz targets (${FUZZ_SECONDS}s each)" fuzz
fi

echo
echo "Summary:"
printf '  %s\n' "${results[@]}"
total=${#results[@]}
echo "steps: $((total - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
