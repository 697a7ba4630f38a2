#!/usr/bin/env bash
# The Sales model (../shared/bench/SALES_MODEL.md) at 1.6M rows on the real local stack: the
# built generator (bench/engine tsr-salesgen) writes the four CSV files (md5 sums checked);
# Sales.csv (~67 MB) is over spaces' data-file cap, so the files go to the engine's own data
# files folder $TSR_STATE_DIR/engine/datafiles/<tenant>/ (where a session's DoReload resolves
# lib://DataFiles/<name>); an app is created through spaces, and tests/qix-node/sales_test.js
# (enigma.js through nginx with the admin API key) sets the model's load script, reloads and
# checks Q1–Q7 (hypercubes, list object states, selections) against the reference answers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qix-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/enigma.js" ] || it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"
gen=$TSR_BUILD_DIR/bench/engine/tsr-salesgen
[ -x "$gen" ] || it_fail "no generator at $gen"

t_start=$SECONDS
it_stack_up A
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
tenant=$(jq -r .tenantId "$cred")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $cred"
it_ok "stack up ($((SECONDS - t_start)) s)"

t0=$SECONDS
dir=$A_STATE/engine/datafiles/$tenant
mkdir -p "$dir"
"$gen" "$dir" 1600000 >"$A_STATE/md5.txt" || it_fail "tsr-salesgen"
declare -A want=([Customers.csv]=bff66fd40cb04214f48fda7dd53b280f
  [Products.csv]=9f4c3f58e7279ca0eeaebcf8e38c1c70 [Calendar.csv]=524090f62180d95fe042a503635ea778
  [Sales.csv]=c4f86d963cad2d37aaffaec8b2e94dd3)
for f in "${!want[@]}"; do
  got=$(awk -v f="$f" '$2 == f {print $1}' "$A_STATE/md5.txt")
  [ "$got" = "${want[$f]}" ] || it_fail "md5 of $f: $got, want ${want[$f]}"
done
it_ok "1.6M-row Sales CSVs generated into engine/datafiles/<tenant>, md5 sums match ($((SECONDS - t0)) s)"

app=$(curl -sf -X POST "$A_URL/api/v1/apps" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"attributes":{"name":"sales-1.6m"}}' |
  jq -r .attributes.id) || it_fail "POST /api/v1/apps"
[ -n "$app" ] && [ "$app" != null ] || it_fail "no app id from spaces"
it_ok "app $app created in spaces"

t0=$SECONDS
ENGINE_WS="ws://127.0.0.1:$A_PORT" KEY=$key APP_ID=$app timeout 80 node "$NODE_DIR/sales_test.js" ||
  { tail -n 20 "$A_STATE"/local/logs/engine-*.log >&2 || true; it_fail "sales_test.js"; }
it_ok "Sales 1.6M: reload and Q1–Q7 equal SALES_MODEL.md's answers ($((SECONDS - t0)) s; total $((SECONDS - t_start)) s)"
