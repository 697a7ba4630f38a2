#!/usr/bin/env bash
# bench/store: pkg/store create/get/list operations per second on SQLite, with the raw sqlite3
# API doing the same operations as the peer figure (ratio = store / raw). Two tables:
#   1. database on tmpfs (/dev/shm), synchronous=normal: the cost of the code, store vs raw,
#      without the disk's noise;
#   2. database on disk ($TMPDIR), synchronous=full: durable commits as deployed (create is
#      bound by fsync there).
# With TSR_MONGODB_URI set, the store's figures against that MongoDB follow the first table.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
fast=$(mktemp -d "$shm/bench-store.XXXXXX")
disk=$(mktemp -d "${TMPDIR:-/tmp}/bench-store.XXXXXX")
trap 'rm -rf "$fast" "$disk"' EXIT
echo "-- database in $shm"
"$build/bench/store/bench_store" --count "${STORE_BENCH_COUNT:-20000}" --dir "$fast" \
  --sync normal --rounds 3
echo "-- database in $disk"
env -u TSR_MONGODB_URI "$build/bench/store/bench_store" --count "${STORE_BENCH_COUNT_FULL:-2000}" \
  --dir "$disk" --sync full --rounds 2
