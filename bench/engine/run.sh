#!/usr/bin/env bash
# bench/engine: the Sales model (SALES_MODEL.md) in Tessera and in DuckDB, same run.
# Generates the CSV files (checked against the model's MD5 sums where known), installs
# @duckdb/node-api into bench/engine/node (npm ci from the lock file), then runs
# ENGINE_BENCH_PROCS processes of each side, each answering Q1–Q7 ENGINE_BENCH_RUNS times,
# and prints per query the medians (ms), the ratio and whether the answers agree.
# ENGINE_BENCH_ROWS (default 1600000; 10000000 for the target size), ENGINE_BENCH_DIR to
# reuse generated files.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
rows=${ENGINE_BENCH_ROWS:-1600000}
procs=${ENGINE_BENCH_PROCS:-3}
runs=${ENGINE_BENCH_RUNS:-5}
data=${ENGINE_BENCH_DIR:-${TMPDIR:-/tmp}/tsr-bench-engine-$rows}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

mkdir -p "$data"
if [ ! -f "$data/Sales.csv" ] || [ ! -f "$data/.complete" ]; then
  echo "generating $rows rows into $data"
  "$build/bench/engine/tsr-salesgen" "$data" "$rows" > "$data/md5.txt"
  touch "$data/.complete"
fi
declare -A want=([Customers.csv]=bff66fd40cb04214f48fda7dd53b280f
  [Products.csv]=9f4c3f58e7279ca0eeaebcf8e38c1c70 [Calendar.csv]=524090f62180d95fe042a503635ea778)
case "$rows" in
  1600000) want[Sales.csv]=c4f86d963cad2d37aaffaec8b2e94dd3 ;;
  10000000) want[Sales.csv]=37357b669928cfc69ac34db8d27d9730 ;;
esac
for f in "${!want[@]}"; do
  got=$(awk -v f="$f" '$2 == f {print $1}' "$data/md5.txt")
  if [ "$got" != "${want[$f]}" ]; then echo "md5 of $f: $got, want ${want[$f]}" >&2; exit 1; fi
done
echo "generator: md5 sums match SALES_MODEL.md"

if [ ! -f "$here/node/node_modules/.package-lock.json" ] ||
   [ "$here/node/package-lock.json" -nt "$here/node/node_modules/.package-lock.json" ]; then
  (cd "$here/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

for i in $(seq "$procs"); do
  "$build/bench/engine/bench_engine" "$data" "$runs" >> "$out/tessera.jsonl"
  node "$here/node/duck.mjs" "$data" "$runs" >> "$out/duckdb.jsonl"
done
node "$here/node/report.mjs" "$out/tessera.jsonl" "$out/duckdb.jsonl"
