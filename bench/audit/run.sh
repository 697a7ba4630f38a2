#!/usr/bin/env bash
# bench/audit: ingest events/s (apply_once + hash-chain append per event, SQLite store) and
# list p50/p99 with AUDIT_BENCH_EVENTS events in one tenant (default 1,000,000; the ingest of a
# million takes several minutes on the 2-core dev machine).
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
n=${AUDIT_BENCH_EVENTS:-1000000}
work=$(mktemp -d /tmp/tsr-bench-audit.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin=$build/bench/audit/audit_bench
"$bin" ingest --db "$work/store.db" --tenant bench-tenant --count "$n"
"$bin" list --db "$work/store.db" --tenant bench-tenant --queries "${AUDIT_BENCH_QUERIES:-2000}"
