#!/usr/bin/env bash
# Guest side of tests/rxe/flush-check.sh (run as tests/rxe/run.sh's COMMAND):
#
#   tests/rxe/flush-guest.sh EXPECT NEW_HEADERS_TEST OLD_HEADERS_TEST [E2E_TEST [BENCH_BIN_DIR]]
#
# Runs rpmem-verbs' rxe test built against rdma-core >= 45 headers with
# RPMEM_VERBS_EXPECT_FLUSH=EXPECT (1: FLUSH must be detected and work, 0: must be reported
# absent), then the one built against the host's rdma-core 44 headers with
# RPMEM_VERBS_EXPECT_FLUSH=0 (without the headers there is never FLUSH); then, when given,
# rpmem-e2e's RDMA tests (built against the new headers) with RPMEM_EXPECT_RDMA_FLUSH=EXPECT;
# then, when BENCH_BIN_DIR is given, the benchmark of RDMA FLUSH (tests/rxe/flush-bench.sh).
set -u
expect=$1 new=$2 old=$3 e2e=${4:-} bench_bin=${5:-}
export RUST_BACKTRACE=1
echo "=== rxe test built with rdma-core >= 45 headers (RPMEM_VERBS_EXPECT_FLUSH=$expect)"
RPMEM_VERBS_EXPECT_FLUSH=$expect "$new" --test-threads=1 --nocapture
a=$?
echo "=== rxe test built with the host's rdma-core 44 headers (RPMEM_VERBS_EXPECT_FLUSH=0)"
RPMEM_VERBS_EXPECT_FLUSH=0 "$old" --test-threads=1 --nocapture
b=$?
c=0
if [ -n "$e2e" ]; then
	echo "=== rpmem-e2e over RDMA, new headers (RPMEM_EXPECT_RDMA_FLUSH=$expect)"
	RPMEM_HW_TESTS=1 TMPDIR=$TMPFS_DIR RPMEM_EXPECT_RDMA_FLUSH=$expect "$e2e" --test-threads=1
	c=$?
fi
d=0
if [ -n "$bench_bin" ]; then
	echo "=== the benchmark of RDMA FLUSH (tests/rxe/flush-bench.sh)"
	"$(dirname "${BASH_SOURCE[0]}")/flush-bench.sh" "$bench_bin"
	d=$?
fi
echo "flush-guest: exit status $a (new headers), $b (host headers), $c (end-to-end), $d (benchmark)"
[ "$a" = 0 ] && [ "$b" = 0 ] && [ "$c" = 0 ] && [ "$d" = 0 ]
