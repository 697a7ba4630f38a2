#!/usr/bin/env bash
# The audit service on a real local stack (nginx + identity + devkafka + tessera-audit):
#   1. audit events produced to tessera.audit are listed through nginx with the tenant
#      admin's API key: filtered, paged with absolute next links, every event once; and
#      through @qlik/api's own audits functions (tests/qlik-api-node) in Node; responses
#      validate against api/openapi/audit.yaml;
#   2. the audit service killed with SIGKILL while consuming, and again by the faultpoint
#      consumer.after_effect (effect committed, offset not), then restarted: no event lost,
#      none stored twice; events the producer publishes twice are stored once;
#   3. verify (HTTP and tsr-admin) passes, then reports a record altered in the database;
#   4. another tenant's key sees none of it: its list is empty and the event answers 404;
#   5. a space created through the spaces service (outbox → Kafka) appears in the trail
#      (skipped with a message while spaces cannot create one).
# Helpers: bench/audit/audit_bench (producer). Asserts counts, never timings; every wait is
# bounded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

B=$TSR_BUILD_DIR
BENCH=$B/bench/audit/audit_bench
ADMIN=$B/cmd/tsr-admin/tsr-admin
AUDIT_BIN=$B/cmd/audit/tessera-audit
for b in "$BENCH" "$ADMIN" "$AUDIT_BIN"; do
  [ -x "$b" ] || it_fail "$b not built"
done
command -v jq >/dev/null || it_fail "jq required"
command -v sqlite3 >/dev/null || it_fail "sqlite3 required"

step() { echo "--- $(date +%T) $*"; }

wait_for() { # seconds command...
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.3
  done
}

it_stack_up A
CRED=$A_STATE/local/credentials.json
KEY=$(jq -r .apiKey "$CRED")
TENANT=$(jq -r .tenantId "$CRED")
BOOT=$(cat "$A_STATE/kafka/bootstrap")
PIDF=$A_STATE/local/pids/audit.pid
LOG=$A_STATE/local/logs/audit.log

api() { # path [curl args...]: GET through nginx as tenant A's admin, body on stdout
  local p=$1; shift
  curl -fsS --max-time 20 -H "Authorization: Bearer $KEY" "$@" "$A_URL$p"
}

# The platform records events of its own first (identity's bootstrap: tenant, admin user, API
# key); BASE is that count once it has settled, and stored counts only what this test produced.
seq_now() { api /api/v1/audits/verify | jq -r .head.seq; }
stored() { local n; n=$(seq_now) && echo $((n - BASE)); }
stored_is() { [ "$(stored 2>/dev/null || echo -1)" = "$1" ]; }

# every event of the tenant through the list API, following links.next (absolute URLs)
list_all() {
  local url="$A_URL/api/v1/audits?limit=100&sort=%2BeventTime" out
  : >"$A_STATE/all.jsonl"
  while [ -n "$url" ]; do
    case $url in "$A_URL"/*) ;; *) it_fail "link not absolute: $url" ;; esac
    out=$(curl -fsS --max-time 20 -H "Authorization: Bearer $KEY" "$url")
    jq -c '.data[]' <<<"$out" >>"$A_STATE/all.jsonl"
    url=$(jq -r '.links.next.href // empty' <<<"$out")
  done
}

restart_audit() { # [env...]: start tessera-audit as the stack does, wait until ready
  env $(it_auth_env "$A_STATE") "$@" TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE TSR_SERVICE_PORT=$((A_PORT + 6)) \
    TSR_REPLICA=audit TSR_KAFKA_BOOTSTRAP=$BOOT "$AUDIT_BIN" >>"$LOG" 2>&1 &
  echo $! >"$PIDF"
}

# the audit service's last log lines, then fail
afail() {
  echo "--- tail of $LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  it_fail "$@"
}

ready() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$((A_PORT + 6))/health/ready"; }

prev=-1 same=0
for _ in $(seq 60); do
  n=$(seq_now 2>/dev/null || echo -1)
  if [ "$n" != -1 ] && [ "$n" = "$prev" ]; then same=$((same + 1)); else same=0; fi
  [ $same -ge 4 ] && break
  prev=$n
  sleep 1
done
[ $same -ge 4 ] || it_fail "the audit chain did not settle: head $(seq_now)"
BASE=$prev
echo "# platform events before the test: $BASE"

step "1. produce, list through nginx"
"$BENCH" produce --bootstrap "$BOOT" --tenant "$TENANT" --count 300 --prefix it-a >/dev/null
wait_for 120 stored_is 300 || afail "stored $(stored), want 300"
page=$(api "/api/v1/audits?limit=7")
[ "$(jq '.data | length' <<<"$page")" = 7 ] || it_fail "limit 7: $page"
jq -e --arg u "$A_URL/api/v1/audits?" '.links.next.href | startswith($u)' <<<"$page" >/dev/null ||
  it_fail "next link: $(jq -c .links <<<"$page")"
jq -e --arg t "$TENANT" 'all(.data[]; .tenantId == $t and (.links.self.href | length > 0))' \
  <<<"$page" >/dev/null || it_fail "envelope: $page"
n=$(api "/api/v1/audits?limit=100&eventType=com.tessera.v1.access.denied" | jq '.data | length')
[ "$n" = 75 ] || it_fail "eventType filter: $n, want 75"
n=$(api "/api/v1/audits?limit=100&userId=u3" | jq '.data | length')
[ "$n" = 60 ] || it_fail "userId filter: $n, want 60"
api /api/v1/audits/types | jq -e '.data | length >= 4 and index("com.tessera.v1.access.denied") != null' \
  >/dev/null || it_fail "types: $(api /api/v1/audits/types)"
api /api/v1/audits/sources | jq -e '.data | index("/tessera/identity") != null' >/dev/null ||
  it_fail "sources: $(api /api/v1/audits/sources)"
api "/api/v1/audits/archive?date=$(date -u +%F)" >"$A_STATE/archive.ndjson"
[ "$(wc -l <"$A_STATE/archive.ndjson")" -ge 300 ] || it_fail "archive lines"
it_expect_status "$A_URL/api/v1/audits" 401
it_expect_error_body 401
it_expect_status "$A_URL/api/v1/audits?limit=500" 400 -H "Authorization: Bearer $KEY"
it_expect_error_body 400
it_ok "listed, filtered and paged through nginx"

step "1a. responses match api/openapi/audit.yaml"
# check_spec PATH STATUS FILE: FILE validates against the spec's response schema (needs the
# python3 yaml and jsonschema modules; skipped with a message otherwise).
check_spec() {
  python3 - "$TSR_SOURCE_DIR/api/openapi/audit.yaml" "$@" <<'PY'
import json, sys, yaml, jsonschema
spec_file, path, status, body = sys.argv[1:5]
spec = yaml.safe_load(open(spec_file))
resp = spec["paths"][path]["get"]["responses"][status]
if "$ref" in resp:
    resp = spec["components"]["responses"][resp["$ref"].split("/")[-1]]
schema = dict(resp["content"]["application/json"]["schema"])
schema["components"] = spec["components"]
jsonschema.validate(json.load(open(body)), schema)
PY
}
if python3 -c 'import yaml, jsonschema' 2>/dev/null; then
  S=$A_STATE/spec
  mkdir -p "$S"
  api "/api/v1/audits?limit=5" >"$S/list.json"
  first=$(jq -r '.data[0].id' "$S/list.json")
  api "/api/v1/audits/$first" >"$S/one.json"
  api /api/v1/audits/types >"$S/types.json"
  api /api/v1/audits/sources >"$S/sources.json"
  api /api/v1/audits/settings >"$S/settings.json"
  api /api/v1/audits/verify >"$S/verify.json"
  curl -s -H "Authorization: Bearer $KEY" "$A_URL/api/v1/audits/0123456789abcdef01234567" >"$S/404.json"
  curl -s -H "Authorization: Bearer $KEY" "$A_URL/api/v1/audits?limit=0" >"$S/400.json"
  for c in "/api/v1/audits 200 list" "/api/v1/audits/{id} 200 one" "/api/v1/audits/types 200 types" \
    "/api/v1/audits/sources 200 sources" "/api/v1/audits/settings 200 settings" \
    "/api/v1/audits/verify 200 verify" "/api/v1/audits/{id} 404 404" "/api/v1/audits 400 400"; do
    set -- $c
    check_spec "$1" "$2" "$S/$3.json" || it_fail "$1 $2 does not match the spec: $(head -c 300 "$S/$3.json")"
  done
  it_ok "8 responses validate against api/openapi/audit.yaml"
else
  echo "skip: python3 yaml/jsonschema missing, responses not checked against the spec"
fi

step "1b. Qlik's own client: @qlik/api audits functions"
QNODE=$TSR_SOURCE_DIR/tests/qlik-api-node/node_modules
if command -v node >/dev/null && [ -d "$QNODE/@qlik/api" ]; then
  mkdir -p "$A_STATE/qlik"
  ln -sfn "$QNODE" "$A_STATE/qlik/node_modules"
  echo '{"type":"module"}' >"$A_STATE/qlik/package.json"
  cat >"$A_STATE/qlik/audits.mjs" <<'JS'
import { createQlikApi } from "@qlik/api";
const api = createQlikApi({
  hostConfig: { authType: "apikey", host: process.env.URL, apiKey: process.env.KEY },
});
const opts = { noCache: true };
let resp = await api.audits.getAudits({ limit: 20, eventType: "com.tessera.v1.access.denied",
                                        sort: "+eventTime" }, opts);
const ids = resp.data.data.map((e) => e.id);
let pages = 1;
while (resp.next) {
  resp = await resp.next();
  pages++;
  ids.push(...resp.data.data.map((e) => e.id));
}
const one = await api.audits.getAudit(ids[0], opts);
const types = await api.audits.getAuditTypes(opts);
const sources = await api.audits.getAuditSources(opts);
const settings = await api.audits.getAuditsSettings(opts);
let missing = 0;
try {
  await api.audits.getAudit("0123456789abcdef01234567", opts);
} catch (e) {
  missing = e.status;
}
console.log(JSON.stringify({ n: ids.length, distinct: new Set(ids).size, pages,
  one: one.data.id === ids[0], types: types.data.data.length, sources: sources.data.data,
  ttl: settings.data.data.EventTTL, missing }));
JS
  out=$(cd "$A_STATE/qlik" && URL=$A_URL KEY=$KEY timeout 60 node audits.mjs) ||
    it_fail "@qlik/api script failed: $out"
  echo "@qlik/api: $out"
  jq -e '.n == 75 and .distinct == 75 and .pages == 4 and .one and .types >= 4 and
    .missing == 404 and .ttl > 0' <<<"$out" >/dev/null || it_fail "@qlik/api: $out"
  it_ok "@qlik/api lists, pages (resp.next), gets, types, sources, settings"
else
  echo "skip: node or tests/qlik-api-node/node_modules/@qlik/api missing"
fi

step "2a. SIGKILL mid-consume, restart"
"$BENCH" produce --bootstrap "$BOOT" --tenant "$TENANT" --count 3000 --prefix it-b >/dev/null &
PROD=$!
wait_for 60 bash -c "[ \"\$(curl -fsS -H 'Authorization: Bearer $KEY' '$A_URL/api/v1/audits/verify' | jq .head.seq)\" -gt 400 ]" ||
  it_fail "consumption did not start"
kill -KILL "$(cat "$PIDF")"
at_kill=$(sqlite3 -cmd ".timeout 15000" "$A_STATE/store.db" "SELECT count(*) FROM d_audit_events WHERE tenant='$TENANT'")
echo "killed with $at_kill stored"
wait "$PROD" || it_fail "producer failed"
restart_audit
wait_for 120 ready || afail "audit not ready after restart"
wait_for 180 stored_is 3300 || afail "after SIGKILL: stored $(stored), want 3300"
it_ok "nothing lost across SIGKILL (killed at $at_kill of 3300)"

step "2b. crash after the store write, before the offset commit (faultpoint)"
kill -TERM "$(cat "$PIDF")"
wait_for 30 bash -c "! kill -0 $(cat "$PIDF") 2>/dev/null" || it_fail "audit did not stop on TERM"
restart_audit TSR_FAULTPOINT=consumer.after_effect:20
"$BENCH" produce --bootstrap "$BOOT" --tenant "$TENANT" --count 100 --prefix it-c >/dev/null
wait_for 120 bash -c "! kill -0 $(cat "$PIDF") 2>/dev/null" || afail "faultpoint did not fire"
restart_audit
wait_for 120 ready || afail "audit not ready after the faultpoint"
wait_for 120 stored_is 3400 || afail "after faultpoint: stored $(stored), want 3400"
it_ok "redelivered event applied once"

step "2c. the producer publishes everything again"
"$BENCH" produce --bootstrap "$BOOT" --tenant "$TENANT" --count 300 --prefix it-a >/dev/null
"$BENCH" produce --bootstrap "$BOOT" --tenant "$TENANT" --count 1 --prefix it-d >/dev/null
wait_for 120 stored_is 3401 || afail "stored $(stored), want 3401"
list_all
jq -c 'select(.eventId | startswith("it-"))' "$A_STATE/all.jsonl" >"$A_STATE/it.jsonl"
mv "$A_STATE/it.jsonl" "$A_STATE/all.jsonl"
total=$(wc -l <"$A_STATE/all.jsonl")
distinct=$(jq -r .eventId "$A_STATE/all.jsonl" | sort -u | wc -l)
[ "$total" = 3401 ] && [ "$distinct" = 3401 ] || it_fail "listed $total, distinct $distinct"
for p in it-a it-b it-c; do
  c=$(jq -r .eventId "$A_STATE/all.jsonl" | grep -c "^$p-") || true
  case $p in it-a) want=300 ;; it-b) want=3000 ;; it-c) want=100 ;; esac
  [ "$c" = "$want" ] || it_fail "$p: $c events, want $want"
done
it_ok "3401 events, each once (duplicates skipped)"

step "3. verify, then tamper"
api /api/v1/audits/verify | jq -e '.ok == true and .checked == (3401 + $base)' --argjson base "$BASE" >/dev/null ||
  it_fail "verify: $(api /api/v1/audits/verify)"
"$ADMIN" audit verify --state-dir "$A_STATE" >"$A_STATE/verify.out" || it_fail "tsr-admin verify: $(cat "$A_STATE/verify.out")"
jq -e '.ok' "$A_STATE/verify.out" >/dev/null || it_fail "tsr-admin verify output"
sqlite3 -cmd ".timeout 15000" "$A_STATE/store.db" "UPDATE d_audit_events SET doc=json_set(doc,'\$.userId','mallory')
  WHERE tenant='$TENANT' AND json_extract(doc,'\$.seq')=1234"
api /api/v1/audits/verify | jq -e '.ok == false and .firstBreak.seq == 1234 and
  .firstBreak.reason == "hash-mismatch"' >/dev/null || it_fail "verify after tamper: $(api /api/v1/audits/verify)"
set +e
"$ADMIN" audit verify --state-dir "$A_STATE" --tenant "$TENANT" >"$A_STATE/verify.out"
rc=$?
set -e
[ $rc = 3 ] || it_fail "tsr-admin verify exit $rc, want 3"
jq -e '.firstBreak.seq == 1234' "$A_STATE/verify.out" >/dev/null || it_fail "tsr-admin report"
it_ok "altered record reported at seq 1234 (HTTP and tsr-admin)"

step "4. another tenant"
out=$("$ADMIN" tenant-create --state-dir "$A_STATE" --name other --hostname other.test \
  --admin-email root@other.test)
KEY_B=$(jq -r .apiKey <<<"$out")
id=$(head -n1 "$A_STATE/all.jsonl" | jq -r .id)
api "/api/v1/audits/$id" | jq -e --arg id "$id" '.id == $id' >/dev/null || it_fail "own event"
it_expect_status "$A_URL/api/v1/audits/$id" 404 -H "Host: other.test" -H "Authorization: Bearer $KEY_B"
it_expect_error_body 404
# The other tenant sees only its own events (identity's records of its creation), none of A's.
n=$(curl -fsS -H "Host: other.test" -H "Authorization: Bearer $KEY_B" "$A_URL/api/v1/audits?limit=100" |
  jq --arg a "$TENANT" '[.data[] | select(.tenantId == $a or (.eventId | startswith("it-")))] | length')
[ "$n" = 0 ] || it_fail "other tenant lists $n of tenant A's events"
it_ok "cross-tenant read answers 404"
step "5. a real action: a space created through spaces reaches the trail (outbox, Kafka)"
code=$(curl -s -o "$A_STATE/space.json" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{"name":"audit-it","type":"shared"}' \
  "$A_URL/api/v1/spaces") || true
if [ "$code" = 201 ]; then
  sid=$(jq -r .id "$A_STATE/space.json")
  space_audited() {
    api "/api/v1/audits?eventType=com.tessera.v1.space.created&limit=100" |
      jq -e --arg s "$sid" 'any(.data[]; .extensions.topLevelResourceId == $s and
        .source == "/tessera/spaces")' >/dev/null
  }
  wait_for 60 space_audited || afail "space $sid created but no audit event"
  it_ok "space.created from the spaces service is in the audit trail"
else
  echo "skip: POST /api/v1/spaces answered $code: $(head -c 300 "$A_STATE/space.json")"
fi
echo "PASS test_audit"
