#!/usr/bin/env bash
# make bench: run every bench/<name>/run.sh in turn with the build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
for b in "$root"/bench/*/run.sh; do
  echo "== $(basename "$(dirname "$b")")"
  "$b" "$build"
done
