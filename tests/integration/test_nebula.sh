#!/usr/bin/env bash
# nebula.js against the engine in headless Chromium (issues 9 and 12): the app view of web/
# (React + @nebula.js/stardust + enigma.js over the ingress's cookie-authenticated WebSocket)
# driven by tests/e2e/nebula.mjs (Debian's chromium, npm playwright-core) on a real local stack.
# Part 1: a sheet with sn-filter-pane, sn-bar-chart, sn-kpi and sn-table built through the
# sheet editor on a small inline table; a click on a bar selects it and the filter pane's list
# object shows the selection; back/forward/lock/clear; the sheet survives a page reload.
# Part 2 (skipped with TSR_NEBULA_SALES=0): the Sales model at 1.6M rows (tsr-salesgen, md5
# checked) uploaded through the hub, reloaded through POST /api/v1/reloads, a filter pane on
# Country and a bar chart of Sales by Region equal to SALES_MODEL.md's Q1; a click on Country 03
# leaves one bar equal to the same sum computed from the CSVs with awk, and the filter pane's
# colours match the states. Screenshots: $TSR_BUILD_DIR/artifacts/e2e-nebula/.
source "$(dirname "$0")/lib.sh"

src=$TSR_SOURCE_DIR
command -v node >/dev/null || it_fail "node is missing (make deps)"
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || it_fail "$chromium is missing (make deps installs Debian's chromium)"
[ -d "$src/tests/e2e/node_modules/playwright-core" ] || it_fail "tests/e2e has no node_modules (make deps)"
if ! ls "$src"/web/dist/assets/AppView-*.js >/dev/null 2>&1; then
  [ -d "$src/web/node_modules/@nebula.js/stardust" ] || it_fail "web/ has no node_modules (make deps)"
  (cd "$src/web" && npm run build --silent >/dev/null) || it_fail "web build"
fi

sales_dir=
sales_ref=
if [ "${TSR_NEBULA_SALES:-1}" != 0 ]; then
  gen=$TSR_BUILD_DIR/bench/engine/tsr-salesgen
  [ -x "$gen" ] || it_fail "no generator at $gen"
  # Sales.csv at 1.6M rows (~67 MB) is above spaces' default cap for one data file.
  export TSR_SPACES_DATAFILE_MAX_BYTES=134217728
fi

it_stack_up A
creds=$A_STATE/local/credentials.json

if [ "${TSR_NEBULA_SALES:-1}" != 0 ]; then
  sales_dir=$A_STATE/sales
  mkdir -p "$sales_dir"
  t0=$SECONDS
  "$gen" "$sales_dir" 1600000 >"$sales_dir/md5.txt" || it_fail "tsr-salesgen"
  got=$(awk '$2 == "Sales.csv" {print $1}' "$sales_dir/md5.txt")
  [ "$got" = c4f86d963cad2d37aaffaec8b2e94dd3 ] || it_fail "md5 of Sales.csv: $got"
  # The reference for one country, straight from the CSVs: Sum(Quantity*UnitPrice) in cents.
  sales_ref=$(awk -F, -v c="Country 03" '
    FNR == 1 { next }
    FILENAME ~ /Customers/ { if ($3 == c) { keep[$1] = 1; region = $4 } ; next }
    ($3 in keep) { cents += $5 * int($6 * 100 + 0.5) }
    END { printf "{\"country\":\"%s\",\"region\":\"%s\",\"sales\":%.2f}", c, region, cents / 100 }' \
    "$sales_dir/Customers.csv" "$sales_dir/Sales.csv")
  it_ok "Sales CSVs at 1.6M rows generated (md5 matches); reference from awk: $sales_ref ($((SECONDS - t0)) s)"
fi

artifacts=$TSR_BUILD_DIR/artifacts/e2e-nebula
rm -rf "$artifacts"
start=$SECONDS
TSR_URL=$A_URL TSR_CREDS=$creds E2E_ARTIFACTS=$artifacts CHROMIUM=$chromium SALES_DIR=$sales_dir \
  SALES_REF=$sales_ref timeout 600 node "$src/tests/e2e/nebula.mjs" ||
  { tail -n 20 "$A_STATE"/local/logs/engine-*.log >&2 || true; it_fail "browser test (screenshots in $artifacts)"; }
it_ok "nebula.js browser test in $((SECONDS - start)) s; screenshots in $artifacts"
