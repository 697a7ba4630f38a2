#!/usr/bin/env bash
# Reloads requested over REST run on the stack's engine reloader (tessera-engine --role
# reloader), end to end: an app created in spaces, a data file uploaded through spaces (sealed
# under the tenant key), the app's script set over enigma.js (SetScript + DoSave) reading
# lib://DataFiles/sales.csv; POST /api/v1/reloads with the API key → SUCCEEDED, the log says the
# file came from spaces, and the open enigma.js session is pushed a change and sees the data.
# Then the data file changes and a reloader is SIGKILLed mid-reload (TSR_FAULTPOINT
# engine.reload.before_switch: after the new model file is written, before the version pointer
# moves): the app's model is untouched (same version, still opens), the reload stays RELOADING
# until a restarted reloader takes it with the next fencing token and ends it once, SUCCEEDED
# (attempts 2; on Kafka two reload.started and exactly one reload.finished), and a session that
# stayed open is pushed the new data. Last, a reloader SIGSTOPped just before its version
# switch (TSR_ENGINE_RELOAD_TEST_PAUSE_MS) while another takes the run over: continued, its
# switch is refused by its stale fencing token and its result too (one reload.finished). And
# @qlik/api queues a reload after the data file changed, polls it to SUCCEEDED, reads its log.
# Last, the live log: polled with ?offset= during a reload of a bigger file, it shows the
# statement and rows loaded before the reload ends.
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qix-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/enigma.js" ] || it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"

R_PIDS=()
WATCH_PID=""
e2e_cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  for p in "${R_PIDS[@]+"${R_PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  it_cleanup
}
trap e2e_cleanup EXIT

# A short run lease: a killed reloader's run is taken over within seconds.
export TSR_RELOAD_LEASE_TTL_MS=2000 TSR_LOCAL_RELOADERS=1
t_start=$SECONDS
it_stack_up A
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $cred"
auth=(-H "Authorization: Bearer $key")
body=/tmp/it-body.$$
logs=$A_STATE/local/logs
[ -f "$A_STATE/local/pids/engine-reloader.pid" ] || it_fail "the stack runs no engine reloader"
it_ok "stack up with an engine reloader ($((SECONDS - t_start)) s)"

it_expect_status "$A_URL/api/v1/apps" 200 "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST --data '{"attributes":{"name":"reload-e2e"}}'
app=$(jq -er .attributes.id "$body") || it_fail "create app: $(cat "$body")"
printf 'Country,Amount\nSweden,10\nNorway,20\n' >"$A_STATE/sales-v1.csv"
it_expect_status "$A_URL/api/v1/data-files" 201 "${auth[@]}" -F "File=@$A_STATE/sales-v1.csv" \
  -F 'Json={"name":"sales.csv"};type=application/json'
fid=$(jq -er .id "$body") || it_fail "upload: $(cat "$body")"
it_ok "app $app and data file sales.csv ($fid) created in spaces"

t0=$SECONDS
out=$(BASE=$A_URL KEY=$key APP_ID=$app MODE=first EXPECT=30 timeout 120 \
  node "$NODE_DIR/reload_e2e.js") ||
  { tail -n 30 "$logs/engine-reloader.log" >&2 || true; it_fail "reload_e2e.js first: $out"; }
echo "first reload: $out"
jq -e '.status == "SUCCEEDED" and .attempts == 1 and .after == "30"' <<<"$out" >/dev/null ||
  it_fail "first reload: $out"
rid1=$(jq -r .reloadId <<<"$out")
it_ok "SetScript+DoSave over enigma.js, POST /api/v1/reloads → SUCCEEDED, log says spaces, open session pushed a change and sees Sum(Amount)=30 ($((SECONDS - t0)) s)"

appdir=$A_STATE/engine/apps/$app
ptr1=$(cat "$appdir/model.ptr") || it_fail "no version pointer"
jq -e '.token >= 1 and .seq >= 1' <<<"$ptr1" >/dev/null || it_fail "pointer: $ptr1"
grep -q "reload $rid1 of app $app started" "$logs/engine-reloader.log" ||
  it_fail "the stack's reloader did not run $rid1"

# ---- a reloader SIGKILLed mid-reload -----------------------------------------------------------
printf 'Country,Amount\nSweden,10\nNorway,20\nDenmark,5\n' >"$A_STATE/sales-v2.csv"
it_expect_status "$A_URL/api/v1/data-files/$fid" 201 "${auth[@]}" -X PUT \
  -F "File=@$A_STATE/sales-v2.csv" -F 'Json={"name":"sales.csv"};type=application/json'

# A session that stays open across the kill and the retry.
BASE=$A_URL KEY=$key APP_ID=$app MODE=watch EXPECT_BEFORE=30 EXPECT_AFTER=35 WAIT_MS=150000 \
  timeout 180 node "$NODE_DIR/reload_e2e.js" >"$A_STATE/watch.out" 2>&1 &
WATCH_PID=$!
for _ in $(seq 200); do grep -q '^ready' "$A_STATE/watch.out" && break; sleep 0.1; done
grep -q '^ready' "$A_STATE/watch.out" || it_fail "watch session: $(cat "$A_STATE/watch.out")"

# Replace the stack's reloader by one that dies at the faultpoint.
stack_reloader=$(cat "$A_STATE/local/pids/engine-reloader.pid")
kill -TERM "$stack_reloader"
for _ in $(seq 200); do kill -0 "$stack_reloader" 2>/dev/null || break; sleep 0.1; done
kill -0 "$stack_reloader" 2>/dev/null && it_fail "the stack's reloader did not stop"
# start_reloader NAME [VAR=value...]: a reloader, by default on TSR_PORT+9 (the stack's
# reloader's port, stopped first); its pid in $R_PID.
start_reloader() {
  local name=$1; shift
  env $(it_auth_env "$A_STATE") TSR_PORT="$A_PORT" TSR_STATE_DIR="$A_STATE" TSR_SERVICE_PORT=0 \
    TSR_REPLICA="$name" "$@" \
    "$TSR_BUILD_DIR/cmd/engine/tessera-engine" --role reloader >>"$logs/$name.log" 2>&1 &
  R_PID=$!
  R_PIDS+=("$R_PID")
}
start_reloader reloader-doomed TSR_FAULTPOINT=engine.reload.before_switch
doomed=$R_PID
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$((A_PORT + 9))/health/ready" && break
  sleep 0.1
done
it_expect_status "$A_URL/api/v1/reloads" 201 "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST --data "{\"appId\":\"$app\"}"
rid=$(jq -r .id "$body")
t0=$SECONDS
for _ in $(seq 600); do grep -q "faultpoint hit" "$logs/reloader-doomed.log" && break; sleep 0.1; done
grep -q "faultpoint hit" "$logs/reloader-doomed.log" ||
  { tail -n 20 "$logs/reloader-doomed.log" >&2; it_fail "the reloader did not reach the faultpoint"; }
wait "$doomed" 2>/dev/null || true
it_expect_status "$A_URL/api/v1/reloads/$rid" 200 "${auth[@]}"
jq -e '.status == "RELOADING" and .attempts == 1' "$body" >/dev/null ||
  it_fail "after the kill: $(cat "$body")"
[ "$(cat "$appdir/model.ptr")" = "$ptr1" ] || it_fail "the pointer moved: $(cat "$appdir/model.ptr")"
f1=$(jq -r .file <<<"$ptr1")
[ -s "$appdir/$f1" ] || it_fail "the current model file $f1 is gone"
ls "$appdir" | grep -q '^model\.staged\.' || ls "$appdir" | grep -q '^model-' ||
  it_fail "no staged model left by the killed run"
it_ok "reloader SIGKILLed after writing its model file, before the pointer switch: RELOADING, the current version untouched"

start_reloader reloader-2
st=""
for _ in $(seq 900); do
  it_expect_status "$A_URL/api/v1/reloads/$rid" 200 "${auth[@]}"
  st=$(jq -r .status "$body")
  [ "$st" = RELOADING ] || [ "$st" = QUEUED ] || break
  sleep 0.1
done
jq -e '.status == "SUCCEEDED" and .attempts == 2' "$body" >/dev/null ||
  { tail -n 20 "$logs/reloader-2.log" >&2; it_fail "after the restart: $(cat "$body")"; }
ptr2=$(cat "$appdir/model.ptr")
jq -e --argjson t "$(jq .token <<<"$ptr1")" '.token > $t' <<<"$ptr2" >/dev/null ||
  it_fail "pointer after the retry: $ptr2 (before: $ptr1)"
it_expect_status "$A_URL/api/v1/apps/$app/reloads/logs/$rid" 200 "${auth[@]}"
grep -q "from spaces" "$body" || it_fail "log: $(cat "$body")"
it_ok "a restarted reloader took the run with the next fencing token: SUCCEEDED, attempts 2, pointer $(jq -c . <<<"$ptr2") ($((SECONDS - t0)) s)"

W=$TSR_BUILD_DIR/bench/reload/reload_bench
if [ -x "$W" ]; then
  tap=$(TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE "$W" tap --reload "$rid" --wait-ms 8000) ||
    it_fail "tap: $tap"
  jq -e '.finished == 1 and .started == 2' <<<"$tap" >/dev/null ||
    it_fail "events on tessera.reloads.results for $rid: $tap"
  it_ok "tessera.reloads.results: 2 reload.started, exactly 1 reload.finished ($tap)"
else
  echo "skip: $W not built; Kafka events not counted"
fi

wait "$WATCH_PID" || it_fail "watch session: $(cat "$A_STATE/watch.out")"
WATCH_PID=""
grep -q '"after":"35"' "$A_STATE/watch.out" || it_fail "watch: $(cat "$A_STATE/watch.out")"
it_ok "the session open across the kill was pushed a change and sees Sum(Amount)=35"
# ---- a stale run's late write is refused by its fencing token ---------------------------------
# A reloader paused before its version switch (test hook) and SIGSTOPped there loses its lease;
# another reloader runs the reload with the next token and ends it; the stale one, continued,
# tries to switch the pointer with its older token: refused, and its result too.
printf 'Country,Amount\nSweden,10\nNorway,20\nDenmark,5\nFinland,100\n' >"$A_STATE/sales-v3.csv"
it_expect_status "$A_URL/api/v1/data-files/$fid" 201 "${auth[@]}" -X PUT \
  -F "File=@$A_STATE/sales-v3.csv" -F 'Json={"name":"sales.csv"};type=application/json'
kill -TERM "$R_PID"
wait "$R_PID" 2>/dev/null || true
start_reloader reloader-stale TSR_ENGINE_RELOAD_TEST_PAUSE_MS=8000
stale=$R_PID
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$((A_PORT + 9))/health/ready" && break
  sleep 0.1
done
it_expect_status "$A_URL/api/v1/reloads" 201 "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST --data "{\"appId\":\"$app\"}"
rid3=$(jq -r .id "$body")
t0=$SECONDS
for _ in $(seq 600); do grep -q "pausing" "$logs/reloader-stale.log" && break; sleep 0.1; done
grep -q "pausing" "$logs/reloader-stale.log" || it_fail "the reloader did not reach the pause"
kill -STOP "$stale"
ptr_paused=$(cat "$appdir/model.ptr")
start_reloader reloader-3 TSR_SERVICE_PORT=$((A_PORT + 8)) # the stopped one keeps +9
for _ in $(seq 900); do
  it_expect_status "$A_URL/api/v1/reloads/$rid3" 200 "${auth[@]}"
  st=$(jq -r .status "$body")
  [ "$st" = RELOADING ] || [ "$st" = QUEUED ] || break
  sleep 0.1
done
jq -e '.status == "SUCCEEDED" and .attempts == 2' "$body" >/dev/null ||
  { kill -CONT "$stale"; tail -n 15 "$logs/reloader-3.log" "$logs/reloader-stale.log" >&2
    it_fail "with the stale run stopped: $(cat "$body")"; }
ptr3=$(cat "$appdir/model.ptr")
jq -e --argjson t "$(jq .token <<<"$ptr_paused")" '.token > $t + 1' <<<"$ptr3" >/dev/null ||
  it_fail "pointer after the takeover: $ptr3 (before: $ptr_paused)"
kill -CONT "$stale"
for _ in $(seq 200); do grep -q "stale fencing token" "$logs/reloader-stale.log" && break; sleep 0.1; done
grep -q "stale fencing token" "$logs/reloader-stale.log" ||
  { tail -n 10 "$logs/reloader-stale.log" >&2; it_fail "the stale run's switch was not refused"; }
sleep 1
[ "$(cat "$appdir/model.ptr")" = "$ptr3" ] || it_fail "the stale run moved the pointer"
it_expect_status "$A_URL/api/v1/reloads/$rid3" 200 "${auth[@]}"
jq -e '.status == "SUCCEEDED" and .attempts == 2' "$body" >/dev/null ||
  it_fail "after the stale run continued: $(cat "$body")"
if [ -x "$W" ]; then
  tap=$(TSR_PORT=$A_PORT TSR_STATE_DIR=$A_STATE "$W" tap --reload "$rid3" --wait-ms 8000) ||
    it_fail "tap: $tap"
  jq -e '.finished == 1 and .started == 2' <<<"$tap" >/dev/null || it_fail "events for $rid3: $tap"
fi
# Watch mode prints "ready" once the cube shows EXPECT_BEFORE (then times out waiting).
# A few looks: the serving replica swaps within its pointer-watch interval (500 ms).
for _ in 1 2 3 4 5 6 7 8 9 10; do
  BASE=$A_URL KEY=$key APP_ID=$app MODE=watch EXPECT_BEFORE=135 EXPECT_AFTER=x WAIT_MS=1 \
    timeout 60 node "$NODE_DIR/reload_e2e.js" >"$A_STATE/new.out" 2>&1 || true
  grep -q '^ready' "$A_STATE/new.out" && break
  sleep 0.5
done
grep -q '^ready' "$A_STATE/new.out" ||
  it_fail "a new session does not see Sum(Amount)=135: $(cat "$A_STATE/new.out")"
it_ok "a stale run (SIGSTOPped before its switch) was refused by its fencing token; the reload ended once, SUCCEEDED by the next run; a new session sees 135 ($((SECONDS - t0)) s)"

# ---- Qlik's own client ---------------------------------------------------------------------------
# @qlik/api (API key) queues a reload of the app whose data file changed, polls it to SUCCEEDED
# and reads its log; a new session sees the new data.
QNODE=$TSR_SOURCE_DIR/tests/qlik-api-node/node_modules
if [ -d "$QNODE/@qlik/api" ]; then
  kill -TERM "$stale" 2>/dev/null || true
  wait "$stale" 2>/dev/null || true
  printf 'Country,Amount\nSweden,10\nNorway,20\nDenmark,5\nFinland,100\nIceland,1000\n' \
    >"$A_STATE/sales-v4.csv"
  it_expect_status "$A_URL/api/v1/data-files/$fid" 201 "${auth[@]}" -X PUT \
    -F "File=@$A_STATE/sales-v4.csv" -F 'Json={"name":"sales.csv"};type=application/json'
  mkdir -p "$A_STATE/qlik"
  ln -sfn "$QNODE" "$A_STATE/qlik/node_modules"
  echo '{"type":"module"}' >"$A_STATE/qlik/package.json"
  cat >"$A_STATE/qlik/reload.mjs" <<'JS'
import { createQlikApi } from "@qlik/api";
const api = createQlikApi({
  hostConfig: { authType: "apikey", host: process.env.URL, apiKey: process.env.KEY },
});
const o = { noCache: true };
const appId = process.env.APP;
const q = await api.reloads.queueReload({ appId, partial: false }, o);
let r = q.data;
for (let i = 0; i < 900 && ["QUEUED", "RELOADING"].includes(r.status); i++) {
  await new Promise((res) => setTimeout(res, 100));
  r = (await api.reloads.getReload(q.data.id, o)).data;
}
const log = (await api.apps.getAppReloadLog(appId, q.data.id, o)).data;
console.log(JSON.stringify({ status: r.status, attempts: r.attempts, log: String(log) }));
JS
  t0=$SECONDS
  out=$(cd "$A_STATE/qlik" && URL=$A_URL KEY=$key APP=$app timeout 120 node reload.mjs) ||
    it_fail "@qlik/api reload script failed: $out"
  jq -e '.status == "SUCCEEDED" and (.log | contains("data file sales.csv: from spaces"))' \
    <<<"$out" >/dev/null || it_fail "@qlik/api reload: $out"
  # The serving replica swaps the new version in within its pointer-watch interval (500 ms):
  # a session opened right at SUCCEEDED may still see the old one, so look a few times.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    BASE=$A_URL KEY=$key APP_ID=$app MODE=watch EXPECT_BEFORE=1135 EXPECT_AFTER=x WAIT_MS=1 \
      timeout 60 node "$NODE_DIR/reload_e2e.js" >"$A_STATE/new.out" 2>&1 || true
    grep -q '^ready' "$A_STATE/new.out" && break
    sleep 0.5
  done
  grep -q '^ready' "$A_STATE/new.out" ||
    it_fail "a new session does not see Sum(Amount)=1135: $(cat "$A_STATE/new.out")"
  it_ok "@qlik/api: queueReload of the app whose data file changed, poll to SUCCEEDED, getAppReloadLog; a session sees 1135 ($((SECONDS - t0)) s)"
else
  echo "skip: tests/qlik-api-node/node_modules/@qlik/api missing"
fi

# ---- the live reload log ------------------------------------------------------------------------
# A bigger data file, and a reloader that pauses 3 s before its version switch (after the script
# ran, so the run stays RELOADING): a client polling the log with ?offset= (X-Tsr-Log-Size: the
# next offset, X-Tsr-Reload-Status) sees the statement start and the rows loaded while the reload
# is still RELOADING, then the rest; the pieces add up to the whole log.
for p in "${R_PIDS[@]+"${R_PIDS[@]}"}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
for p in "${R_PIDS[@]+"${R_PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
awk 'BEGIN { print "Country,Amount"; for (i = 0; i < 1500000; i++) printf "C%d,%d\n", i % 5000, i % 1000 }' \
  >"$A_STATE/sales-big.csv"
it_expect_status "$A_URL/api/v1/data-files/$fid" 201 "${auth[@]}" -X PUT \
  -F "File=@$A_STATE/sales-big.csv" -F 'Json={"name":"sales.csv"};type=application/json'
start_reloader reloader-live TSR_ENGINE_RELOAD_TEST_PAUSE_MS=3000
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$((A_PORT + 9))/health/ready" && break
  sleep 0.1
done
it_expect_status "$A_URL/api/v1/reloads" 201 "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST --data "{\"appId\":\"$app\"}"
rid5=$(jq -r .id "$body")
t0=$SECONDS
live=$A_STATE/live.log
hdrs=$A_STATE/live.hdrs
: >"$live"
off=0 st="" early="" polls=0
for _ in $(seq 1200); do
  code=$(curl -s -o "$A_STATE/live.part" -D "$hdrs" -w '%{http_code}' "${auth[@]}" \
    "$A_URL/api/v1/apps/$app/reloads/logs/$rid5?offset=$off")
  [ "$code" = 200 ] || it_fail "log poll: $code $(cat "$A_STATE/live.part")"
  polls=$((polls + 1))
  cat "$A_STATE/live.part" >>"$live"
  off=$(tr -d '\r' <"$hdrs" | awk -F': ' 'tolower($1) == "x-tsr-log-size" { print $2 }')
  st=$(tr -d '\r' <"$hdrs" | awk -F': ' 'tolower($1) == "x-tsr-reload-status" { print $2 }')
  [ -n "$off" ] || it_fail "no X-Tsr-Log-Size: $(cat "$hdrs")"
  if [ -z "$early" ] && [ "$st" = RELOADING ] && grep -q "rows" "$live" &&
    grep -q "^line [0-9]*: Sales: LOAD" "$live"; then
    early="$((SECONDS - t0)) s: $(grep -c . "$live") lines"
  fi
  case "$st" in SUCCEEDED | FAILED | CANCELED | EXCEEDED_LIMIT) break ;; esac
  sleep 0.1
done
[ "$st" = SUCCEEDED ] || { tail -n 20 "$logs/reloader-live.log" >&2; it_fail "live reload: $st"; }
[ -n "$early" ] || it_fail "no statement or rows line before the end: $(cat "$live")"
grep -q "1500000 rows" "$live" || it_fail "live log: $(cat "$live")"
it_expect_status "$A_URL/api/v1/apps/$app/reloads/logs/$rid5" 200 "${auth[@]}"
sed 's/^/  log| /' "$live"
cmp -s "$body" "$live" || it_fail "the pieces differ from the log: $(diff "$body" "$live" | head)"
it_ok "live log: the statement start and rows loaded seen while RELOADING ($early), $polls incremental reads add up to the $(wc -c <"$live")-byte log"

ls "$A_STATE"/engine/datafiles/.runs 2>/dev/null | grep -v "\.$doomed\$" | grep -q . &&
  it_fail "run folders left behind: $(ls "$A_STATE"/engine/datafiles/.runs)"
echo "total $((SECONDS - t_start)) s"
