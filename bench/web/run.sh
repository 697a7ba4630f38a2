#!/usr/bin/env bash
# bench/web: click → chart repainted in the browser at 1.6M rows. Starts a local stack from
# BUILD_DIR (tests/integration/lib.sh), generates the Sales CSVs (SALES_MODEL.md, md5 checked)
# into the engine's data files folder of the stack's tenant, creates an app and loads it with
# tests/qix-node/sales_test.js (which also checks Q1–Q7), then click.mjs drives the app view
# (web/dist) in headless Chromium: a sheet with a filter pane on Region and a bar chart of
# Sales by Country, WEB_BENCH_CLICKS (default 30) clicks on Region values, p50/p95 of the time
# from mousedown to the first repainted frame and to the settled bars.
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export TSR_BUILD_DIR=$build TSR_SOURCE_DIR=$(cd "$here/../.." && pwd)
rows=1600000
clicks=${WEB_BENCH_CLICKS:-30}
data=${ENGINE_BENCH_DIR:-${TMPDIR:-/tmp}/tsr-bench-engine-$rows}
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || it_fail "no Chromium (make deps installs Debian's chromium)"
[ -d "$TSR_SOURCE_DIR/tests/e2e/node_modules/playwright-core" ] || it_fail "tests/e2e/node_modules missing: make deps"
[ -d "$TSR_SOURCE_DIR/tests/qix-node/node_modules/enigma.js" ] || it_fail "tests/qix-node/node_modules missing: make deps"
ls "$TSR_SOURCE_DIR"/web/dist/assets/AppView-*.js >/dev/null 2>&1 || (cd "$TSR_SOURCE_DIR" && make web >/dev/null)

mkdir -p "$data"
if [ ! -f "$data/Sales.csv" ] || [ ! -f "$data/.complete" ]; then
  echo "generating $rows rows into $data"
  "$build/bench/engine/tsr-salesgen" "$data" "$rows" >"$data/md5.txt"
  touch "$data/.complete"
fi
got=$(awk '$2 == "Sales.csv" {print $1}' "$data/md5.txt")
[ "$got" = c4f86d963cad2d37aaffaec8b2e94dd3 ] || it_fail "md5 of Sales.csv: $got"

it_stack_up A
creds=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$creds")
tenant=$(jq -r .tenantId "$creds")
mkdir -p "$A_STATE/engine/datafiles/$tenant"
cp "$data"/{Customers,Products,Calendar,Sales}.csv "$A_STATE/engine/datafiles/$tenant/"
app=$(curl -sf -X POST "$A_URL/api/v1/apps" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"attributes":{"name":"web-bench"}}' |
  jq -r .attributes.id) || it_fail "POST /api/v1/apps"
ENGINE_WS="ws://127.0.0.1:$A_PORT" KEY=$key APP_ID=$app \
  node "$TSR_SOURCE_DIR/tests/qix-node/sales_test.js" >"$A_STATE/setup.out" ||
  { cat "$A_STATE/setup.out"; it_fail "loading / checking the Sales app"; }
echo "Sales app $app: $rows rows loaded, Q1-Q7 equal SALES_MODEL.md's answers"

shots=$build/artifacts/bench-web
mkdir -p "$shots"
r=$(TSR_URL=$A_URL TSR_CREDS=$creds APP_ID=$app ITERS=$clicks SHOTS=$shots \
  timeout 600 node "$here/click.mjs") || it_fail "click.mjs"
echo
echo "click in a filter pane → bar chart repainted, Chromium (headless) at $rows rows, ms; $(nproc) CPUs"
jq -r '"  \(.clicks) clicks: first repainted frame p50 \(.first_p50) p95 \(.first_p95); settled p50 \(.settled_p50) p95 \(.settled_p95)"' <<<"$r"
jq -r '"  of which mousedown → the last QIX answer before that frame (engine + WebSocket): p50 \(.qix_p50) p95 \(.qix_p95)"' <<<"$r"
echo "  (first: mousedown → the first frame showing the new data; sn-bar-chart then animates to its"
echo "   final layout: settled = the last change, after which nothing moved for 300 ms)"
echo "  screenshots: $shots"
