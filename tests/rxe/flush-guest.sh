#!/usr/bin/env bash
# Guest side of tests/rxe/flush-check.sh (run as tests/rxe/run.sh's COMMAND):
#
#   tests/rxe/flush-guest.sh EXPECT NEW_HEADERS_TEST OLD_HEADERS_TEST
#
# Runs rpmem-verbs' rxe test built against rdma-core >= 45 headers with
# RPMEM_VERBS_EXPECT_FLUSH=EXPECT (1: FLUSH must be detected and work, 0: must be reported
# absent), then the one built against the host's rdma-core 44 headers with
# RPMEM_VERBS_EXPECT_FLUSH=0 (without the headers there is never FLUSH).
set -u
expect=$1 new=$2 old=$3
export RUST_BACKTRACE=1
echo "=== rxe test built with rdma-core >= 45 headers (RPMEM_VERBS_EXPECT_FLUSH=$expect)"
RPMEM_VERBS_EXPECT_FLUSH=$expect "$new" --test-threads=1 --nocapture
a=$?
echo "=== rxe test built with the host's rdma-core 44 headers (RPMEM_VERBS_EXPECT_FLUSH=0)"
RPMEM_VERBS_EXPECT_FLUSH=0 "$old" --test-threads=1 --nocapture
b=$?
echo "flush-guest: exit status $a (new headers), $b (host headers)"
[ "$a" = 0 ] && [ "$b" = 0 ]
