#!/usr/bin/env bash
# bench/qix: the engine service's selection round trip at 1.6M rows (issue 9). Starts a local
# stack (tests/integration/lib.sh) from BUILD_DIR, generates the Sales CSVs (SALES_MODEL.md,
# md5 checked) into the engine's data files folder of the stack's tenant, creates an app in
# spaces, loads it and checks Q1–Q7 with tests/qix-node/sales_test.js, then measures with
# enigma.js through nginx (qix.js): select one Country + GetLayout of 4 objects (2 hypercubes,
# 2 list objects), p50/p99 for 1 session and for 200 concurrent sessions; beside it the same
# 4 answers as SQL on DuckDB (duck.mjs, @duckdb/node-api from bench/engine/node, 2 threads)
# with 1 and 200 concurrent connections, and the ratio Tessera/DuckDB.
# QIX_BENCH_ITERS (1 session, default 100), QIX_BENCH_CONC_ITERS (per session at 200,
# default 3), QIX_BENCH_SESSIONS (default 200), QIX_BENCH_OPEN_BATCH (sessions opening at once,
# default all).
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export TSR_BUILD_DIR=$build TSR_SOURCE_DIR=$(cd "$here/../.." && pwd)
rows=1600000
iters=${QIX_BENCH_ITERS:-100}
citers=${QIX_BENCH_CONC_ITERS:-3}
conc=${QIX_BENCH_SESSIONS:-200}
data=${ENGINE_BENCH_DIR:-${TMPDIR:-/tmp}/tsr-bench-engine-$rows}
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"
# 200 sessions opening at once are one principal (the API key). The engine caches and
# coalesces its access checks to spaces (TSR_ENGINE_ACCESS_CACHE_MS), so spaces' per-principal
# rate limit stays on (QIX_BENCH_RATE_LIMIT=0 turns it off to compare).
if [ -n "${QIX_BENCH_RATE_LIMIT:-}" ]; then export TSR_RATE_LIMIT_PER_MIN=$QIX_BENCH_RATE_LIMIT; fi

[ -d "$TSR_SOURCE_DIR/tests/qix-node/node_modules/enigma.js" ] || it_fail "tests/qix-node/node_modules missing: run scripts/deps.sh"
if [ ! -f "$TSR_SOURCE_DIR/bench/engine/node/node_modules/.package-lock.json" ]; then
  (cd "$TSR_SOURCE_DIR/bench/engine/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

mkdir -p "$data"
if [ ! -f "$data/Sales.csv" ] || [ ! -f "$data/.complete" ]; then
  echo "generating $rows rows into $data"
  "$build/bench/engine/tsr-salesgen" "$data" "$rows" >"$data/md5.txt"
  touch "$data/.complete"
fi
got=$(awk '$2 == "Sales.csv" {print $1}' "$data/md5.txt")
[ "$got" = c4f86d963cad2d37aaffaec8b2e94dd3 ] || it_fail "md5 of Sales.csv: $got"

it_stack_up A
key=$(jq -r .apiKey "$A_STATE/local/credentials.json")
tenant=$(jq -r .tenantId "$A_STATE/local/credentials.json")
mkdir -p "$A_STATE/engine/datafiles/$tenant"
cp "$data"/{Customers,Products,Calendar,Sales}.csv "$A_STATE/engine/datafiles/$tenant/"
app=$(curl -sf -X POST "$A_URL/api/v1/apps" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"attributes":{"name":"qix-bench"}}' |
  jq -r .attributes.id) || it_fail "POST /api/v1/apps"
export ENGINE_WS="ws://127.0.0.1:$A_PORT" KEY=$key APP_ID=$app
node "$TSR_SOURCE_DIR/tests/qix-node/sales_test.js" >"$A_STATE/setup.out" ||
  { cat "$A_STATE/setup.out"; it_fail "loading / checking the Sales app"; }
echo "Sales app $app: $rows rows loaded, Q1-Q7 equal SALES_MODEL.md's answers"

t1=$(timeout 300 node "$here/qix.js" 1 "$iters") || it_fail "qix.js 1"
tn=$(timeout 300 node "$here/qix.js" "$conc" "$citers") || it_fail "qix.js $conc"
d1=$(node "$here/duck.mjs" "$data" 1 "$iters") || it_fail "duck.mjs 1"
dn=$(node "$here/duck.mjs" "$data" "$conc" "$citers") || it_fail "duck.mjs $conc"

echo
echo "selection round trip at $rows rows (select 1 Country + 4 layouts), ms; $(nproc) CPUs"
printf '%-26s %9s %9s %9s %9s %9s %9s %8s %8s\n' sessions tsr_p50 tsr_p99 duck_p50 duck_p99 \
  ratio_p50 ratio_p99 tsr_rt/s duck_rt/s
row() {
  jq -rn --argjson t "$2" --argjson d "$3" --arg n "$1" \
    '[$n, ($t.p50|.*100|round/100), ($t.p99|.*100|round/100), ($d.p50|.*100|round/100),
      ($d.p99|.*100|round/100), ($t.p50/$d.p50|.*100|round/100), ($t.p99/$d.p99|.*100|round/100),
      ($t.samples*1000/$t.wall|round), ($d.samples*1000/$d.wall|round)] | @tsv' |
    awk -F'\t' '{printf "%-26s %9s %9s %9s %9s %9s %9s %8s %8s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
}
row "1 ($iters round trips)" "$t1" "$d1"
row "$conc concurrent (x$citers)" "$tn" "$dn"
echo "tsr = Tessera engine via nginx + enigma.js (WebSocket, JSON); duck = DuckDB in-process SQL, same answers"
jq -rn --argjson a "$t1" --argjson b "$tn" \
  '"session opens (WebSocket + OpenDoc + 4 objects), ms: 1: p50 \($a.open_p50) p99 \($a.open_p99); \($b.sessions) at once: p50 \($b.open_p50) p99 \($b.open_p99), \($b.open_retries) retried"'
spaces_checks=$(grep -c '/internal/v1/access' "$A_STATE/local/logs/spaces.log" 2>/dev/null || echo 0)
echo "engine access checks answered by spaces during the run: $spaces_checks"

