#!/usr/bin/env bash
# The reload service on the real stack, through nginx with an API key: queue a reload of an
# app spaces knows (201 QUEUED, absolute links), one reload per app (409), cancel (204, then
# 409), cursor paging with absolute next links, reload-task CRUD, another tenant's reload and
# task answering 404 everywhere; Qlik's @qlik/api client on the same API (queue, 409, poll to
# SUCCEEDED, logs, paging, task CRUD); a (stand-in) reloader SIGKILLed mid-reload → the reload ends once,
# SUCCEEDED, on the other reloader with the next fencing token; then a scheduler leader
# SIGKILLed between two fires of daily tasks with a second reload replica running → each fire
# happens exactly once.
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

B_PID=""
W_PIDS=()
reload_cleanup() {
  if [ -n "$B_PID" ]; then kill "$B_PID" 2>/dev/null || true; wait "$B_PID" 2>/dev/null || true; fi
  for p in "${W_PIDS[@]+"${W_PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  it_cleanup
}
trap reload_cleanup EXIT

# Short leases so that a killed leader is replaced within seconds.
export TSR_RELOAD_LEASE_TTL_MS=2000 TSR_RELOAD_SCHEDULER_INTERVAL_MS=200
# Without the stack's engine reloader: this test checks QUEUED states and brings its own
# stand-in reloaders (tests/integration/test_reload_e2e.sh runs the real one).
export TSR_LOCAL_RELOADERS=0
it_stack_up A
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
tenant=$(jq -r .tenantId "$cred")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $cred"
auth=(-H "Authorization: Bearer $key" -H 'Content-Type: application/json')
body=/tmp/it-body.$$

# api METHOD PATH STATUS [JSON]: through nginx as tenant A's admin; the body lands in $body.
api() {
  local args=("${auth[@]}" -X "$1")
  [ $# -ge 4 ] && args+=(--data "$4")
  it_expect_status "$A_URL$2" "$3" "${args[@]}"
}

new_app() {
  api POST /api/v1/apps 200 "{\"attributes\":{\"name\":\"$1\"}}"
  jq -er '.attributes.id' "$body"
}

app=$(new_app reload-it-1) || it_fail "create app: $(cat "$body")"
it_ok "app $app created in spaces"

api POST /api/v1/reloads 201 "{\"appId\":\"$app\",\"partial\":false}"
rid=$(jq -r .id "$body")
jq -e --arg a "$app" --arg u "$A_URL/api/v1/reloads/$rid" \
  '.status == "QUEUED" and .appId == $a and .type == "external" and .links.self.href == $u' \
  "$body" >/dev/null || it_fail "queued reload: $(cat "$body")"
api GET "/api/v1/reloads/$rid" 200
jq -e '.status == "QUEUED"' "$body" >/dev/null || it_fail "get reload: $(cat "$body")"
api POST /api/v1/reloads 409 "{\"appId\":\"$app\"}"
it_expect_error_body 409
api POST /api/v1/reloads 404 '{"appId":"000000000000000000000000"}'
api POST /api/v1/reloads 400 '{"appId":"x","bogus":1}'
it_ok "POST /api/v1/reloads: 201 QUEUED with absolute links; 409 while one is active; 404; 400"

api POST "/api/v1/reloads/$rid/actions/cancel" 204
api GET "/api/v1/reloads/$rid" 200
jq -e '.status == "CANCELED"' "$body" >/dev/null || it_fail "canceled: $(cat "$body")"
api POST "/api/v1/reloads/$rid/actions/cancel" 409
it_ok "cancel: QUEUED → CANCELED (204), then 409"

for _ in 1 2; do
  api POST /api/v1/reloads 201 "{\"appId\":\"$app\"}"
  api POST "/api/v1/reloads/$(jq -r .id "$body")/actions/cancel" 204
done
api GET "/api/v1/reloads?appId=$app&limit=2" 200
next=$(jq -r '.links.next.href' "$body")
[ "$(jq '.data | length' "$body")" = 2 ] || it_fail "page 1: $(cat "$body")"
[[ "$next" == "$A_URL/api/v1/reloads?"* ]] || it_fail "next link not absolute: $next"
it_expect_status "$next" 200 "${auth[@]}"
[ "$(jq '.data | length' "$body")" = 1 ] && [ "$(jq '.links.next' "$body")" = null ] ||
  it_fail "page 2: $(cat "$body")"
api GET "/api/v1/reloads?appId=$app&filter=status%20eq%20%22CANCELED%22" 200
[ "$(jq '.data | length' "$body")" = 3 ] || it_fail "filter: $(cat "$body")"
it_ok "GET /api/v1/reloads: cursor paging with absolute next links, SCIM status filter"

api POST /api/v1/reload-tasks 201 "{\"appId\":\"$app\",\"timeZone\":\"Europe/Berlin\",
  \"startDateTime\":\"2030-03-31T02:30:00\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}"
tid=$(jq -r .id "$body")
# 2030-03-31 is Berlin's spring-forward day: 02:30 does not exist and fires at 03:30 CEST.
jq -e '.state == "Enabled" and .nextExecutionTime == "2030-03-31T01:30:00.000Z"' "$body" \
  >/dev/null || it_fail "task: $(cat "$body")"
api PUT "/api/v1/reload-tasks/$tid" 200 "$(jq -c '.state = "Disabled"' "$body")"
jq -e '.state == "Disabled" and .disabledCode == "MANUALLY"' "$body" >/dev/null ||
  it_fail "task put: $(cat "$body")"
api GET "/api/v1/reload-tasks?appId=$app" 200
[ "$(jq '.data | length' "$body")" = 1 ] || it_fail "task list: $(cat "$body")"
api POST /api/v1/reload-tasks 400 "{\"appId\":\"$app\",\"recurrence\":[\"RRULE:FREQ=NOPE\"]}"
it_ok "reload-tasks: create (RRULE in Europe/Berlin), replace, list, 400 on a bad RRULE"

# Another tenant: every endpoint answers 404 for tenant A's reload and task.
b=$("$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin" tenant-create --state-dir "$A_STATE" --name rb \
  --hostname rb.test --admin-email root@rb.test) || it_fail "tenant-create: $b"
key_b=$(jq -r .apiKey <<<"$b")
authb=(-H "Authorization: Bearer $key_b" -H 'Host: rb.test' -H 'Content-Type: application/json')
it_expect_status "$A_URL/api/v1/reloads/$rid" 404 "${authb[@]}"
it_expect_error_body 404
it_expect_status "$A_URL/api/v1/reloads/$rid/actions/cancel" 404 "${authb[@]}" -X POST
it_expect_status "$A_URL/api/v1/apps/$app/reloads/logs/$rid" 404 "${authb[@]}"
it_expect_status "$A_URL/api/v1/reload-tasks/$tid" 404 "${authb[@]}"
it_expect_status "$A_URL/api/v1/reload-tasks/$tid" 404 "${authb[@]}" -X PUT --data "{\"appId\":\"$app\"}"
it_expect_status "$A_URL/api/v1/reload-tasks/$tid" 404 "${authb[@]}" -X DELETE
it_expect_status "$A_URL/api/v1/reloads?appId=$app" 200 "${authb[@]}"
[ "$(jq '.data | length' "$body")" = 0 ] || it_fail "tenant b sees a's reloads: $(cat "$body")"
it_expect_status "$A_URL/api/v1/reloads" 404 "${authb[@]}" -X POST --data "{\"appId\":\"$app\"}"
api GET "/api/v1/reload-tasks/$tid" 200
it_ok "another tenant: 404 on every reload and task endpoint"

api DELETE "/api/v1/reload-tasks/$tid" 204
api GET "/api/v1/reload-tasks/$tid" 404

# Qlik's own client, @qlik/api (Node, API key), on the reloads and reload-tasks modules.
QNODE=$TSR_SOURCE_DIR/tests/qlik-api-node/node_modules
if command -v node >/dev/null && [ -d "$QNODE/@qlik/api" ]; then
  app_q=$(new_app reload-it-q) || it_fail "app q"
  mkdir -p "$A_STATE/qlik"
  ln -sfn "$QNODE" "$A_STATE/qlik/node_modules"
  echo '{"type":"module"}' >"$A_STATE/qlik/package.json"
  cat >"$A_STATE/qlik/reloads.mjs" <<'JS'
import { createQlikApi } from "@qlik/api";
const api = createQlikApi({
  hostConfig: { authType: "apikey", host: process.env.URL, apiKey: process.env.KEY },
});
const o = { noCache: true };
const appId = process.env.APP;
const status = async (p) => { try { return (await p).status; } catch (e) { return e.status; } };
const ids = [];
for (let i = 0; i < 3; i++) {
  const q = await api.reloads.queueReload({ appId, partial: false }, o);
  ids.push(q.data.id);
  if (i === 0) {
    if ((await status(api.reloads.queueReload({ appId }, o))) !== 409) throw new Error("no 409");
  }
  const g = await api.reloads.getReload(q.data.id, o);
  if (g.data.status !== "QUEUED") throw new Error("not queued: " + g.data.status);
  await api.reloads.cancelReload(q.data.id, o);
}
let resp = await api.reloads.getReloads({ appId, limit: 2 }, o);
const seen = resp.data.data.map((r) => r.id);
let pages = 1;
while (resp.next) { resp = await resp.next(o); pages++; seen.push(...resp.data.data.map((r) => r.id)); }
const canceled = (await api.reloads.getReload(ids[0], o)).data.status;
const t = await api.reloadTasks.createReloadTask({ appId, timeZone: "America/New_York",
  startDateTime: "2030-11-03T01:30:00", recurrence: ["RRULE:FREQ=DAILY"] }, o);
const got = await api.reloadTasks.getReloadTask(t.data.id, o);
const upd = await api.reloadTasks.updateReloadTask(t.data.id, { ...got.data, state: "Disabled" }, o);
const list = await api.reloadTasks.getReloadTasks({ appId }, o);
await api.reloadTasks.deleteReloadTask(t.data.id, o);
const gone = await status(api.reloadTasks.getReloadTask(t.data.id, o));
console.log(JSON.stringify({ seen: seen.length, distinct: new Set(seen).size, pages, canceled,
  next: t.data.nextExecutionTime, state: upd.data.state, tasks: list.data.data.length, gone }));
JS
  out=$(cd "$A_STATE/qlik" && URL=$A_URL KEY=$key APP=$app_q timeout 60 node reloads.mjs) ||
    it_fail "@qlik/api script failed: $out"
  echo "@qlik/api: $out"
  # 2030-11-03 01:30 New York happens twice (fall-back): the first, EDT, is the fire.
  jq -e '.seen == 3 and .distinct == 3 and .pages == 2 and .canceled == "CANCELED" and
    .next == "2030-11-03T05:30:00.000Z" and .state == "Disabled" and .tasks == 1 and
    .gone == 404' <<<"$out" >/dev/null || it_fail "@qlik/api: $out"
  it_ok "@qlik/api: queueReload, 409, getReload, cancelReload, getReloads paging (resp.next), reload-task CRUD"
else
  echo "skip: node or tests/qlik-api-node/node_modules/@qlik/api missing"
fi

# ---- a reloader SIGKILLed mid-reload ----------------------------------------------------------
# Two stand-in reloaders (bench/reload's worker mode: the real consumer group and worker state
# machine, a job that sleeps) until the engine's --role reloader runs in the stack.
# (Skipped once the stack runs a real reloader: it would join the same consumer group.)
W=$TSR_BUILD_DIR/bench/reload/reload_bench
if ls "$A_STATE"/local/pids/*reloader*.pid >/dev/null 2>&1; then
  echo "skip: the stack runs a reloader; the stand-in SIGKILL case needs the group to itself"
elif [ -x "$W" ]; then
  for i in 1 2; do
    TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE "$W" worker --owner "it-w$i" --job-ms 6000 \
      >"$A_STATE/local/logs/it-w$i.out" 2>"$A_STATE/local/logs/it-w$i.log" &
    W_PIDS+=($!)
  done
  for i in 1 2; do
    for _ in $(seq 100); do grep -q ready "$A_STATE/local/logs/it-w$i.out" && break; sleep 0.1; done
  done
  app_w=$(new_app reload-it-w) || it_fail "app w"
  api POST /api/v1/reloads 201 "{\"appId\":\"$app_w\"}"
  rw=$(jq -r .id "$body")
  victim=""
  for _ in $(seq 300); do
    for i in 1 2; do
      grep -q "start $app_w" "$A_STATE/local/logs/it-w$i.out" && victim=$i
    done
    [ -n "$victim" ] && break
    sleep 0.1
  done
  [ -n "$victim" ] || it_fail "no reloader started reload $rw"
  api GET "/api/v1/reloads/$rw" 200
  jq -e '.status == "RELOADING" and .attempts == 1' "$body" >/dev/null ||
    it_fail "not RELOADING: $(cat "$body")"
  kill -KILL "${W_PIDS[$((victim - 1))]}"
  it_ok "reloader $victim SIGKILLed mid-reload"
  st=""
  for _ in $(seq 600); do
    api GET "/api/v1/reloads/$rw" 200
    st=$(jq -r .status "$body")
    [ "$st" = RELOADING ] || [ "$st" = QUEUED ] || break
    sleep 0.1
  done
  jq -e '.status == "SUCCEEDED" and .attempts == 2' "$body" >/dev/null ||
    it_fail "after the kill: $(cat "$body")"
  survivor=$((3 - victim))
  grep -q "start $app_w 2" "$A_STATE/local/logs/it-w$survivor.out" ||
    it_fail "the survivor did not run it with the next fencing token"
  it_expect_status "$A_URL/api/v1/apps/$app_w/reloads/logs/$rw" 200 "${auth[@]}"
  grep -q "stand-in job" "$body" || it_fail "log: $(cat "$body")"
  it_ok "the reload ended once, SUCCEEDED, on the other reloader with token 2 (attempts 2)"
  # On Kafka: two runs started, exactly one reload.finished (distinct event ids).
  tap=$(TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE "$W" tap --reload "$rw" --wait-ms 8000) ||
    it_fail "tap: $tap"
  jq -e '.finished == 1 and .started == 2' <<<"$tap" >/dev/null ||
    it_fail "events on tessera.reloads.results for $rw: $tap"
  it_ok "tessera.reloads.results: 2 reload.started, exactly 1 reload.finished ($tap)"

  # Chaining through the whole pipeline: A's reload.finished (outbox → Kafka → the reload
  # service's results consumer) fires B, whose reload the surviving reloader runs.
  app_c1=$(new_app reload-it-c1) || it_fail "app c1"
  app_c2=$(new_app reload-it-c2) || it_fail "app c2"
  t=$(( $(date +%s) + 3 ))
  api POST /api/v1/reload-tasks 201 "{\"appId\":\"$app_c1\",\"startDateTime\":
    \"$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ)\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}"
  task_a=$(jq -r .id "$body")
  api POST /api/v1/reload-tasks 201 \
    "{\"appId\":\"$app_c2\",\"trigger\":{\"taskId\":\"$task_a\",\"on\":\"SUCCEEDED\"}}"
  ok=0
  for _ in $(seq 600); do
    api GET "/api/v1/reloads?appId=$app_c2" 200
    jq -e '.data | length == 1 and .[0].status == "SUCCEEDED" and .[0].type == "chronos"' \
      "$body" >/dev/null && { ok=1; break; }
    sleep 0.1
  done
  [ $ok = 1 ] || it_fail "chained task did not run: $(cat "$body")"
  api GET "/api/v1/reloads?appId=$app_c1" 200
  jq -e '.data | length == 1 and .[0].status == "SUCCEEDED"' "$body" >/dev/null ||
    it_fail "task A: $(cat "$body")"
  it_ok "schedule → reload → reload.finished over Kafka → chained task → its reload SUCCEEDED"

  if [ -f "$A_STATE/qlik/reloads.mjs" ]; then
    app_p=$(new_app reload-it-p) || it_fail "app p"
    cat >"$A_STATE/qlik/poll.mjs" <<'JS'
import { createQlikApi } from "@qlik/api";
const api = createQlikApi({
  hostConfig: { authType: "apikey", host: process.env.URL, apiKey: process.env.KEY },
});
const o = { noCache: true };
const appId = process.env.APP;
const q = await api.reloads.queueReload({ appId }, o);
let r = q.data;
for (let i = 0; i < 300 && ["QUEUED", "RELOADING"].includes(r.status); i++) {
  await new Promise((res) => setTimeout(res, 100));
  r = (await api.reloads.getReload(q.data.id, o)).data;
}
const log = (await api.apps.getAppReloadLog(appId, q.data.id, o)).data;
const logs = (await api.apps.getAppReloadLogs(appId, o)).data.data;
console.log(JSON.stringify({ status: r.status, log: String(log),
  listed: logs.some((l) => l.reloadId === q.data.id && l.success) }));
JS
    out=$(cd "$A_STATE/qlik" && URL=$A_URL KEY=$key APP=$app_p timeout 60 node poll.mjs) ||
      it_fail "@qlik/api poll script failed: $out"
    jq -e '.status == "SUCCEEDED" and (.log | contains("stand-in job")) and .listed' \
      <<<"$out" >/dev/null || it_fail "@qlik/api poll: $out"
    it_ok "@qlik/api: queueReload, poll getReload to SUCCEEDED, getAppReloadLog(s)"
  fi
  for p in "${W_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${W_PIDS[@]}" 2>/dev/null || true
  W_PIDS=()
fi

# Deleting an app in spaces (com.tessera.v1.app.deleted on tessera.apps) drops its tasks.
app_d=$(new_app reload-it-d) || it_fail "app d"
api POST /api/v1/reload-tasks 201 "{\"appId\":\"$app_d\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}"
task_d=$(jq -r .id "$body")
api DELETE "/api/v1/apps/$app_d" 200
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$A_URL/api/v1/reload-tasks/$task_d")" \
    = 404 ] && break
  sleep 0.1
done
it_expect_status "$A_URL/api/v1/reload-tasks/$task_d" 404 "${auth[@]}"
it_ok "app deleted in spaces → its reload task deleted"

# ---- scheduler leader kill ------------------------------------------------------------------
# A second reload replica on the same store; the stack's replica leads (it started first).
B_PORT=$((A_PORT + 8))
env $(it_auth_env "$A_STATE") TSR_SERVICE_PORT=$B_PORT TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE \
  "$TSR_BUILD_DIR/cmd/reload/tessera-reload" >>"$A_STATE/local/logs/reload-b.log" 2>&1 &
B_PID=$!
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$B_PORT/health/ready" && break
  sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$B_PORT/health/ready" || it_fail "replica b not ready"
grep -q "reload scheduler: leader" "$A_STATE/local/logs/reload.log" ||
  it_fail "the stack's replica does not lead"
grep -q "reload scheduler: leader" "$A_STATE/local/logs/reload-b.log" &&
  it_fail "replica b leads too"

app_x=$(new_app reload-it-x) || it_fail "app x"
app_y=$(new_app reload-it-y) || it_fail "app y"
# Daily tasks: X fires at T (before the kill), Y at T+4 s (while the leadership moves).
t=$(( $(date +%s) + 6 ))
at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
api POST /api/v1/reload-tasks 201 \
  "{\"appId\":\"$app_x\",\"startDateTime\":\"$(at $t)\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}"
task_x=$(jq -r .id "$body")
api POST /api/v1/reload-tasks 201 \
  "{\"appId\":\"$app_y\",\"startDateTime\":\"$(at $((t + 4)))\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}"
task_y=$(jq -r .id "$body")
while [ "$(date +%s)" -le $((t + 1)) ]; do sleep 0.2; done
leader=$(cat "$A_STATE/local/pids/reload.pid")
kill -KILL "$leader"
it_ok "leader (pid $leader) SIGKILLed one second after task X fired"
sleep 8 # lease TTL 2 s, Y due at T+4 s: B takes over and fires Y

# Count through replica B directly (nginx's upstream was the killed one), with the platform
# token identity mints for the key (the services believe nothing else).
count() {
  curl -s -H "X-Tsr-Token: $(it_platform_jwt "$A_PORT" "$key")" \
    "http://127.0.0.1:$B_PORT/api/v1/reloads?appId=$1&limit=100" |
    jq '[.data[] | select(.type == "chronos")] | length'
}
nx=$(count "$app_x")
ny=$(count "$app_y")
[ "$nx" = 1 ] || it_fail "task X fired $nx times (want 1)"
[ "$ny" = 1 ] || it_fail "task Y fired $ny times (want 1)"
grep -q "reload scheduler: leader" "$A_STATE/local/logs/reload-b.log" || it_fail "b never led"
grep -q "reload task $task_x fired" "$A_STATE/local/logs/reload.log" || it_fail "X not fired by a"
grep -q "reload task $task_y fired" "$A_STATE/local/logs/reload-b.log" || it_fail "Y not fired by b"
it_ok "leader killed between fires: X fired once (by the old leader), Y once (by the new one)"
