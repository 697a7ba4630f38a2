#!/usr/bin/env bash
# Cached access decisions end when spaces says so, not when they expire. With the engine's and
# the reload service's caches set to 60 s (TSR_ENGINE_ACCESS_CACHE_MS, TSR_RELOAD_ACCESS_CACHE_MS),
# a service user assigned to a shared space (producer) opens an app of the space over QIX, reads
# its data model metadata from each serving engine replica directly (the second read of a replica
# is answered from its cache: spaces is not asked again) and queues a reload; then the admin
# removes the user's assignment. Within seconds a NEW QIX session of the user is refused (4203),
# both replicas answer 403 (each consumes spaces' events in a group of its own) and the reload
# service refuses the user's reload: only the event explains it, the TTL is a minute away.
# The admin, in the same tenant, keeps access; the engine reloader consumes the events too.
# Last, the admin holds two enigma.js sessions on another app and deletes the app: every
# replica closes its sessions of it with 4204 within seconds (spaces' app.deleted event), and the
# app's folder under the engine's state is tombstoned and removed after the grace
# (TSR_ENGINE_DELETE_GRACE_S=2 here) while the other app's folder stays.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qix-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/ws" ] || it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"

export TSR_ENGINE_ACCESS_CACHE_MS=60000 TSR_RELOAD_ACCESS_CACHE_MS=60000 TSR_ENGINE_DELETE_GRACE_S=2
it_stack_up A
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $cred"
auth=(-H "Authorization: Bearer $key")
J=(-H "Content-Type: application/json")
body=/tmp/it-body.$$
logs=$A_STATE/local/logs

it_expect_status "$A_URL/api/v1/users" 201 "${auth[@]}" "${J[@]}" -d '{"serviceUser":true,"name":"viewer"}'
viewer=$(jq -r .id "$body")
it_expect_status "$A_URL/api/v1/api-keys" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"description\":\"viewer\",\"sub\":\"$viewer\"}"
vkey=$(jq -r .token "$body")
vauth=(-H "Authorization: Bearer $vkey")
it_expect_status "$A_URL/api/v1/spaces" 201 "${auth[@]}" "${J[@]}" -d '{"name":"access events"}'
sid=$(jq -r .id "$body")
it_expect_status "$A_URL/api/v1/apps" 200 "${auth[@]}" "${J[@]}" \
  -d "{\"attributes\":{\"name\":\"access-events\",\"spaceId\":\"$sid\"}}"
app=$(jq -r .attributes.id "$body")
it_expect_status "$A_URL/api/v1/spaces/$sid/assignments" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"type\":\"user\",\"assigneeId\":\"$viewer\",\"roles\":[\"producer\"]}"
asg=$(jq -r .id "$body")
it_ok "viewer $viewer assigned producer in space $sid holding app $app"

# Every consumer of spaces' events holds its partitions (the mock broker's group join takes
# about 3 s); answers kept before that are dropped when it does.
for svc in engine-1 engine-2 engine-reloader reload; do
  for _ in $(seq 300); do
    grep -q 'events consumer assigned' "$logs/$svc.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q 'events consumer assigned' "$logs/$svc.log" ||
    { tail -n 20 "$logs/$svc.log" >&2; it_fail "$svc: the access events consumer was not assigned"; }
done
it_ok "engine-1, engine-2, engine-reloader and reload consume spaces' events in their own groups"

open_doc() {
  WS="ws://127.0.0.1:$A_PORT/app/$app" KEY=$1 APP_ID=$app timeout 30 node "$NODE_DIR/open_doc.js" ||
    it_fail "open_doc.js"
}
access_asked() { grep -c '"route":"/internal/v1/access"' "$logs/spaces.log" || true; }
jwt=$(it_platform_jwt "$A_PORT" "$vkey")
[ -n "$jwt" ] || it_fail "no platform JWT for the viewer"
meta() { # replica offset (3 or 4): the status of the viewer's metadata read
  curl -s -o "$body" -w '%{http_code}' -H "X-Tsr-Token: $jwt" \
    "http://127.0.0.1:$((A_PORT + $1))/api/v1/apps/$app/data/metadata"
}

reload_post() {
  curl -s -o "$body" -w '%{http_code}' "${vauth[@]}" "${J[@]}" -X POST \
    -d "{\"appId\":\"$app\"}" "$A_URL/api/v1/reloads"
}
[ "$(open_doc "$vkey")" = opened ] || it_fail "the viewer cannot open the app"
# The setup's own events (space, assignment, app) may still be on their way and drop the first
# answers; read until a round of reads on both replicas asks spaces nothing.
cached=0 prev=-1
for _ in $(seq 30); do
  for off in 3 4; do
    [ "$(meta $off)" = 200 ] || it_fail "engine +$off metadata: $(cat "$body")"
  done
  # Queued, or 409 while the last one is active: either way past the access check.
  code=$(reload_post)
  [ "$code" = 201 ] || [ "$code" = 409 ] || it_fail "the viewer's reload: $code $(cat "$body")"
  n=$(access_asked)
  [ "$n" = "$prev" ] && { cached=1; break; }
  prev=$n
  sleep 0.2
done
[ $cached = 1 ] || it_fail "the replicas ask spaces on every read (caches never hit)"
it_ok "the viewer opened the app over QIX, read its metadata on both replicas and queued a reload, the last round answered from the caches"

it_expect_status "$A_URL/api/v1/spaces/$sid/assignments/$asg" 204 "${auth[@]}" -X DELETE
t0=$(date +%s%N)
ok=0
for _ in $(seq 150); do
  s3=$(meta 3) s4=$(meta 4)
  if [[ $s3 =~ ^40[34]$ ]] && [[ $s4 =~ ^40[34]$ ]]; then ok=1; break; fi
  sleep 0.1
done
[ $ok = 1 ] || it_fail "the replicas still grant the viewer 15 s after the assignment went"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 30000 ] || it_fail "refused only after $ms ms: the TTL, not the event"
got=$(open_doc "$vkey")
[[ $got =~ ^closed\ 420[34]$ ]] || it_fail "a new QIX session of the viewer: $got, want closed 4203/4204"
code=$(reload_post)
[ "$code" = 404 ] || [ "$code" = 403 ] || it_fail "the viewer's reload after removal: $code $(cat "$body")"
it_ok "assignment removed: both replicas refuse the viewer ($s3, $s4) after $ms ms (TTL 60 s), a new QIX session is $got, the reload service answers $code"

[ "$(open_doc "$key")" = opened ] || it_fail "the admin lost the app"
# The refusal may come first (another event, e.g. the reload's, can have dropped the entries
# already); the removal's own line follows within moments.
for svc in engine-1 engine-2 reload; do
  seen=0
  for _ in $(seq 50); do
    grep -q "access cache: com.tessera.v1.space.member.removed $sid dropped" "$logs/$svc.log" &&
      { seen=1; break; }
    sleep 0.1
  done
  [ $seen = 1 ] || { grep -h "access cache" "$logs/$svc.log" >&2; it_fail "$svc did not log the invalidation"; }
done
it_ok "the admin still opens the app; the replicas logged the invalidation"

# A deleted app's open sessions are closed by whichever replica serves them (4204).
it_expect_status "$A_URL/api/v1/apps" 200 "${auth[@]}" "${J[@]}" \
  -d "{\"attributes\":{\"name\":\"deleted-live\",\"spaceId\":\"$sid\"}}"
app2=$(jq -r .attributes.id "$body")
held=()
for i in 1 2; do
  WS="ws://127.0.0.1:$A_PORT/app/$app2" KEY=$key APP_ID=$app2 WAIT_MS=20000 \
    node "$NODE_DIR/hold_doc.js" >"$body.hold$i" 2>&1 &
  held+=($!)
done
for i in 1 2; do
  for _ in $(seq 150); do
    grep -q '^opened' "$body.hold$i" && break
    grep -q -e '^error' -e '^closed' "$body.hold$i" && break
    sleep 0.1
  done
  grep -q '^opened' "$body.hold$i" || it_fail "enigma session $i on $app2: $(cat "$body.hold$i")"
done
folder=$A_STATE/engine/apps/$app2
[ -f "$folder/app.json" ] || it_fail "the engine has no folder for $app2 ($folder)"
t1=$(date +%s%N)
it_expect_status "$A_URL/api/v1/apps/$app2" 200 "${auth[@]}" -X DELETE
for i in 1 2; do
  wait "${held[$((i - 1))]}" || it_fail "enigma session $i was not closed: $(cat "$body.hold$i")"
  line=$(grep '^closed' "$body.hold$i" || true)
  [[ $line =~ ^closed\ 4204\ ([0-9]+)$ ]] || it_fail "enigma session $i: $(cat "$body.hold$i"), want closed 4204"
done
close_ms=$((($(date +%s%N) - t1) / 1000000))
[ "$close_ms" -lt 10000 ] || it_fail "the sessions closed only $close_ms ms after the delete"

grep -q "engined: app $app2 deleted" "$logs"/engine-[12].log ||
  it_fail "no engine replica logged the deleted app's sessions"
rm -f "$body".hold1 "$body".hold2
it_ok "app $app2 deleted with two enigma.js sessions open: both closed 4204 within $close_ms ms"

# The folder: tombstoned by the replicas at the event, removed by a sweep after the grace.
gone=0
for _ in $(seq 200); do
  [ -e "$folder" ] || { gone=1; break; }
  sleep 0.1
done
[ $gone = 1 ] || it_fail "the deleted app's folder is still there 20 s later: $(ls -a "$folder")"
gone_ms=$((($(date +%s%N) - t1) / 1000000))
[ "$gone_ms" -ge 2000 ] || it_fail "the folder went after $gone_ms ms, before the 2 s grace"
ls -a "$A_STATE/engine/apps" | grep -q '^\.trash-' && it_fail "trash left in engine/apps"
[ -f "$A_STATE/engine/apps/$app/app.json" ] || it_fail "the other app's folder went too"
it_ok "app $app2's folder removed $gone_ms ms after the delete (grace 2 s); $app's folder kept"

echo "# refused ${ms} ms after the assignment was removed"
echo "# deleted app's folder removed ${gone_ms} ms after the delete (grace 2 s)"
