#!/usr/bin/env bash
# Checks that binaries carry none of the simulator's seeded bugs.
#
#   .ci/no-mutant-hooks.sh --absent BIN...   each BIN must not contain the hooks
#   .ci/no-mutant-hooks.sh --present BIN...  each BIN must contain them (the
#                                            positive control: a sim built with
#                                            RUSTFLAGS="--cfg rpmem_mutants")
#
# The hooks bring a marker text with them (rpmem_core::flush::mutants::MARKER,
# kept in every binary that links a hook). See docs/simulation.md, "Keeping
# mutants out of shipped builds".
set -euo pipefail
marker='rpmem-core: seeded-bug hooks compiled in (--cfg rpmem_mutants)'
mode=${1:?usage: $0 --absent|--present BIN...}
shift
[ $# -gt 0 ] || { echo "$0: no binary given" >&2; exit 2; }
status=0
for bin in "$@"; do
  if [ ! -f "$bin" ]; then
    echo "no-mutant-hooks: $bin does not exist" >&2
    status=1
    continue
  fi
  if grep -qaF -- "$marker" "$bin"; then found=yes; else found=no; fi
  case $mode in
    --absent)
      if [ $found = yes ]; then
        echo "no-mutant-hooks: $bin CONTAINS the seeded-bug hooks" >&2
        status=1
      else
        echo "no-mutant-hooks: $bin: no seeded-bug hooks"
      fi ;;
    --present)
      if [ $found = no ]; then
        echo "no-mutant-hooks: $bin lacks the marker although it was built with the hooks: the check would see nothing" >&2
        status=1
      else
        echo "no-mutant-hooks: $bin: hooks present (positive control)"
      fi ;;
    *) echo "$0: unknown mode $mode" >&2; exit 2 ;;
  esac
done
exit $status
