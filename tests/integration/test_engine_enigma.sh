#!/usr/bin/env bash
# The engine service on the real local stack, driven through nginx by the real enigma.js 2.15
# (tests/qix-node/engine_test.js) with the admin API key from credentials.json: an app created
# in spaces (the engine asks spaces for access decisions), OpenDoc, SetScript with INLINE data,
# DoReload, a hypercube session object, a selection and the changed layouts, Evaluate, a push
# to a second session after a reload, a bookmark (created, selections changed, applied: the
# selection is back), a script variable (SET) and a session variable with $(v) expansion, an
# alternate state with its own selections, the REST data model metadata; a second tenant (tsr-admin
# tenant-create, its own hostname and key) gets close 4204 / error 1003 / 404 for the app,
# exactly as for a missing one; finally SIGTERM of both engine replicas closes the session
# with 4003 and the replicas exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qix-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/enigma.js" ] || it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"

it_stack_up A
cred=$A_STATE/local/credentials.json
key_a=$(jq -r .apiKey "$cred")
tenant_a=$(jq -r .tenantId "$cred")
[ -n "$key_a" ] && [ "$key_a" != null ] || it_fail "no apiKey in $cred"

b=$("$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin" tenant-create --state-dir "$A_STATE" --name b \
  --hostname b.test --admin-email root@b.test) || it_fail "tenant-create: $b"
key_b=$(jq -r .apiKey <<<"$b")
it_ok "stack up; second tenant b.test created"

# The app record lives in spaces (POST /api/v1/apps, as @qlik/api does); the engine asks spaces
# for access and creates the app's content on first open.
app_id=$(curl -sf -X POST "$A_URL/api/v1/apps" -H "Authorization: Bearer $key_a" \
  -H 'Content-Type: application/json' -d '{"attributes":{"name":"engine-it"}}' |
  jq -r .attributes.id) || it_fail "POST /api/v1/apps"
[ -n "$app_id" ] && [ "$app_id" != null ] || it_fail "no app id from spaces"
it_ok "app $app_id created in spaces"

pids="$(cat "$A_STATE/local/pids/engine-1.pid") $(cat "$A_STATE/local/pids/engine-2.pid")"
ENGINE_WS="ws://127.0.0.1:$A_PORT" KEY_A=$key_a KEY_B=$key_b HOST_B=b.test TENANT_A=$tenant_a \
  APP_ID="$app_id" ENGINE_PIDS="$pids" timeout 180 node "$NODE_DIR/engine_test.js" ||
  { tail -n 20 "$A_STATE"/local/logs/engine-*.log >&2 || true; it_fail "engine_test.js"; }

# The drained replicas exit on their own (the stack's down would SIGKILL a hung one).
for p in $pids; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && it_fail "engine $p did not exit after SIGTERM"
done
it_ok "engine replicas drained and exited after SIGTERM"
