#!/usr/bin/env bash
# App export and import through nginx (Qlik's POST /api/v1/apps/{id}/export → 201 + Location
# /api/v1/temp-contents/{id}, POST /api/v1/apps/import with the app file as an octet-stream
# body), with the bootstrap admin's API key: an app gets a data file, a script and a sheet over
# enigma.js and a reload on the stack's reloader; it is exported, downloaded and imported as a
# new app, and both open over enigma.js with the same script, tables, rows, Sum(Amount) and
# sheet (and the same REST data model metadata). A corrupt or truncated file answers 400 in the
# error shape and creates no item; another tenant gets 404 for the export and the download; a
# space member whose role has no export (basicconsumer) gets 403, a user without access 404,
# and may not import into that space (403); the export lands in the audit trail as
# com.tessera.v1.app.exported. A copy (POST /api/v1/apps/{id}/copy) and a publish to a managed
# space open over enigma.js with the same content; another tenant's copy of the app is 404.
# Then @qlik/api does the round trip with its own client.
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qix-node
API_DIR=$TSR_SOURCE_DIR/tests/qlik-api-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/enigma.js" ] || it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"

export TSR_LOCAL_RELOADERS=1
it_stack_up A
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $cred"
auth=(-H "Authorization: Bearer $key")
J=(-H "Content-Type: application/json")
body=/tmp/it-body.$$
logs=$A_STATE/local/logs
it_ok "stack up"

# ---- an app with data ------------------------------------------------------------------------
it_expect_status "$A_URL/api/v1/apps" 200 "${auth[@]}" "${J[@]}" -X POST \
  --data '{"attributes":{"name":"transfer source"}}'
app=$(jq -er .attributes.id "$body") || it_fail "create app: $(cat "$body")"
printf 'Country,Amount\nSweden,10\nNorway,20\nDenmark,5\n' >"$A_STATE/sales.csv"
it_expect_status "$A_URL/api/v1/data-files" 201 "${auth[@]}" -F "File=@$A_STATE/sales.csv" \
  -F 'Json={"name":"sales.csv"};type=application/json'
out=$(BASE=$A_URL KEY=$key APP_A=$app MODE=script timeout 60 node "$NODE_DIR/app_transfer.js") ||
  it_fail "app_transfer.js script: $out"
it_expect_status "$A_URL/api/v1/reloads" 201 "${auth[@]}" "${J[@]}" -X POST --data "{\"appId\":\"$app\"}"
rid=$(jq -r .id "$body")
st=""
for _ in $(seq 600); do
  st=$(curl -fsS "${auth[@]}" "$A_URL/api/v1/reloads/$rid" | jq -r .status)
  case $st in SUCCEEDED | FAILED | CANCELED | EXCEEDED_LIMIT) break ;; esac
  sleep 0.1
done
[ "$st" = SUCCEEDED ] || { tail -n 20 "$logs/engine-reloader.log" >&2; it_fail "reload: $st"; }
it_ok "app $app: data file, script and sheet over enigma.js, reload SUCCEEDED"

# ---- export, download ------------------------------------------------------------------------
hdrs=$A_STATE/export.headers
it_expect_status "$A_URL/api/v1/apps/$app/export" 201 "${auth[@]}" -X POST -D "$hdrs"
loc=$(tr -d '\r' <"$hdrs" | sed -n 's/^[Ll]ocation: //p')
[[ $loc =~ ^/api/v1/temp-contents/[0-9a-f]{32}$ ]] || it_fail "Location: '$loc'"
t0=$(date +%s%N)
got=$(curl -s -o "$A_STATE/app.tsra" -w '%{http_code}' -D "$A_STATE/dl.headers" "${auth[@]}" "$A_URL$loc")
[ "$got" = 200 ] || it_fail "download $loc: $got"
ms=$((($(date +%s%N) - t0) / 1000000))
size=$(stat -c %s "$A_STATE/app.tsra")
[ "$size" -gt 100 ] || it_fail "download of $size bytes"
grep -qi '^content-disposition: attachment; filename="transfer source.tsra"' "$A_STATE/dl.headers" ||
  it_fail "download headers: $(cat "$A_STATE/dl.headers")"
it_ok "export → 201 Location $loc; download $size bytes as an attachment ($ms ms)"

# ---- import: a new app with the same content ---------------------------------------------------
n_apps() { curl -fsS "${auth[@]}" "$A_URL/api/v1/items?resourceType=app&limit=100" | jq '.data | length'; }
before=$(n_apps)
t0=$(date +%s%N)
it_expect_status "$A_URL/api/v1/apps/import?name=transfer%20copy" 200 "${auth[@]}" -X POST \
  -H 'Content-Type: application/octet-stream' --data-binary "@$A_STATE/app.tsra"
ms=$((($(date +%s%N) - t0) / 1000000))
copy=$(jq -er .attributes.id "$body") || it_fail "import: $(cat "$body")"
[ "$copy" != "$app" ] || it_fail "the import reused the source's id"
jq -e '.attributes.name == "transfer copy"' "$body" >/dev/null || it_fail "import: $(cat "$body")"
[ "$(n_apps)" = $((before + 1)) ] || it_fail "items after the import: $(n_apps), want $((before + 1))"
it_expect_status "$A_URL/api/v1/items?resourceType=app&name=transfer%20copy" 200 "${auth[@]}"
jq -e --arg a "$copy" 'any(.data[]; .resourceId == $a)' "$body" >/dev/null ||
  it_fail "the imported app is not an item: $(head -c 300 "$body")"
it_ok "import → 200 NxApp, app $copy listed in items ($ms ms)"
out=$(BASE=$A_URL KEY=$key APP_A=$app APP_B=$copy MODE=compare timeout 60 node "$NODE_DIR/app_transfer.js") ||
  it_fail "app_transfer.js compare: $out"
echo "# $out"
for a in "$app" "$copy"; do
  curl -fsS "${auth[@]}" "$A_URL/api/v1/apps/$a/data/metadata" |
    jq -c '[.tables[] | [.name, .no_of_rows, .no_of_fields]]' >"$A_STATE/md-$a.json"
done
cmp -s "$A_STATE/md-$app.json" "$A_STATE/md-$copy.json" ||
  it_fail "metadata differs: $(cat "$A_STATE/md-$app.json") vs $(cat "$A_STATE/md-$copy.json")"
jq -e '.[0][1] == 3' "$A_STATE/md-$copy.json" >/dev/null || it_fail "rows: $(cat "$A_STATE/md-$copy.json")"
it_ok "both apps open over enigma.js with the same script, tables, rows, Sum(Amount) and sheet; metadata $(cat "$A_STATE/md-$copy.json")"

# ---- bad files: 400 in the error shape, nothing created ----------------------------------------
before=$(n_apps)
cp "$A_STATE/app.tsra" "$A_STATE/corrupt.tsra"
# Flip every bit of the middle byte (a constant could equal the byte already there).
mid=$(od -An -tu1 -j $((size / 2)) -N1 "$A_STATE/app.tsra" | tr -d ' ')
printf "\\x$(printf %02x $((mid ^ 255)))" |
  dd of="$A_STATE/corrupt.tsra" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$A_STATE/app.tsra" "$A_STATE/corrupt.tsra" && it_fail "the corrupt copy equals the original"
head -c $((size - 9)) "$A_STATE/app.tsra" >"$A_STATE/short.tsra"
printf 'not an app file' >"$A_STATE/junk.tsra"
for f in corrupt short junk; do
  it_expect_status "$A_URL/api/v1/apps/import?name=$f" 400 "${auth[@]}" -X POST \
    -H 'Content-Type: application/octet-stream' --data-binary "@$A_STATE/$f.tsra"
  it_expect_error_body 400
done
[ "$(n_apps)" = "$before" ] || it_fail "a refused import created an item"
left=$(find "$A_STATE/engine/transfer/uploads" -type f | wc -l)
[ "$left" = 0 ] || it_fail "$left upload files left behind"
it_ok "corrupt, truncated and junk files → 400 error body; no item, no upload left"

# ---- another tenant ----------------------------------------------------------------------------
b=$("$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin" tenant-create --state-dir "$A_STATE" --name b \
  --hostname b.test --admin-email root@b.test) || it_fail "tenant-create: $b"
B=(-H "Host: b.test" -H "Authorization: Bearer $(jq -r .apiKey <<<"$b")")
it_expect_status "$A_URL/api/v1/apps/$app/export" 404 "${B[@]}" -X POST
it_expect_error_body 404
it_expect_status "$A_URL$loc" 404 "${B[@]}"
it_expect_error_body 404
it_ok "another tenant: 404 for the export and for the download"

# ---- copy and publish carry the content (spaces has the engine copy it before the record) ------
engine_apps() { find "$A_STATE/engine/apps" -mindepth 1 -maxdepth 1 -type d | wc -l; }
t0=$(date +%s%N)
it_expect_status "$A_URL/api/v1/apps/$app/copy" 200 "${auth[@]}" "${J[@]}" -X POST \
  --data '{"attributes":{"name":"transfer duplicate"}}'
ms=$((($(date +%s%N) - t0) / 1000000))
dup=$(jq -er .attributes.id "$body") || it_fail "copy: $(cat "$body")"
jq -e '.attributes.name == "transfer duplicate"' "$body" >/dev/null || it_fail "copy: $(cat "$body")"
out=$(BASE=$A_URL KEY=$key APP_A=$app APP_B=$dup MODE=compare timeout 60 node "$NODE_DIR/app_transfer.js") ||
  it_fail "app_transfer.js compare after the copy: $out"
grep -q "app $app content copied to $dup (copy, with data)" "$logs"/engine-[12].log ||
  it_fail "no engine log line for the copy of $app to $dup"
it_ok "copy → 200 ($ms ms); app $dup opens over enigma.js with the same script, tables, rows, Sum(Amount) and sheet"
it_expect_status "$A_URL/api/v1/spaces" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"name\":\"publish space $$\",\"type\":\"managed\"}"
psid=$(jq -r .id "$body")
t0=$(date +%s%N)
it_expect_status "$A_URL/api/v1/apps/$app/publish" 200 "${auth[@]}" "${J[@]}" -X POST \
  --data "{\"spaceId\":\"$psid\"}"
ms=$((($(date +%s%N) - t0) / 1000000))
pub=$(jq -er .attributes.id "$body") || it_fail "publish: $(cat "$body")"
jq -e --arg s "$psid" '.attributes.spaceId == $s' "$body" >/dev/null || it_fail "publish: $(cat "$body")"
out=$(BASE=$A_URL KEY=$key APP_A=$app APP_B=$pub MODE=compare timeout 60 node "$NODE_DIR/app_transfer.js") ||
  it_fail "app_transfer.js compare after the publish: $out"
curl -fsS "${auth[@]}" "$A_URL/api/v1/apps/$pub/data/metadata" |
  jq -c '[.tables[] | [.name, .no_of_rows, .no_of_fields]]' >"$A_STATE/md-$pub.json"
cmp -s "$A_STATE/md-$app.json" "$A_STATE/md-$pub.json" ||
  it_fail "published metadata differs: $(cat "$A_STATE/md-$pub.json")"
it_ok "publish to a managed space → 200 ($ms ms); app $pub opens with the same content and metadata"
before=$(n_apps)
dirs=$(engine_apps)
it_expect_status "$A_URL/api/v1/apps/$app/copy" 404 "${B[@]}" "${J[@]}" -X POST --data '{}'
it_expect_error_body 404
[ "$(n_apps)" = "$before" ] || it_fail "a refused copy created an item"
[ "$(engine_apps)" = "$dirs" ] || it_fail "a refused copy created engine content"
it_ok "another tenant's copy of the app: 404, no item, no content"

# ---- permissions from the role table -----------------------------------------------------------
it_expect_status "$A_URL/api/v1/users" 201 "${auth[@]}" "${J[@]}" -d '{"serviceUser":true,"name":"viewer"}'
viewer=$(jq -r .id "$body")
it_expect_status "$A_URL/api/v1/api-keys" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"description\":\"viewer\",\"sub\":\"$viewer\"}"
V=(-H "Authorization: Bearer $(jq -r .token "$body")")
it_expect_status "$A_URL/api/v1/spaces" 201 "${auth[@]}" "${J[@]}" -d "{\"name\":\"transfer space $$\",\"type\":\"managed\"}"
sid=$(jq -r .id "$body")
it_expect_status "$A_URL/api/v1/spaces/$sid/assignments" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"type\":\"user\",\"assigneeId\":\"$viewer\",\"roles\":[\"basicconsumer\"]}"
it_expect_status "$A_URL/api/v1/apps/import?spaceId=$sid" 200 "${auth[@]}" -X POST \
  -H 'Content-Type: application/octet-stream' --data-binary "@$A_STATE/app.tsra"
shared=$(jq -r .attributes.id "$body")
jq -e --arg s "$sid" '.attributes.spaceId == $s and .attributes.name == "transfer source"' "$body" \
  >/dev/null || it_fail "import into the space: $(cat "$body")"
it_expect_status "$A_URL/api/v1/apps/$shared/export" 403 "${V[@]}" -X POST
it_expect_error_body 403
it_expect_status "$A_URL/api/v1/apps/$app/export" 404 "${V[@]}" -X POST
it_expect_status "$A_URL/api/v1/apps/import?spaceId=$sid" 403 "${V[@]}" -X POST \
  -H 'Content-Type: application/octet-stream' --data-binary "@$A_STATE/app.tsra"
it_expect_status "$A_URL$loc" 404 "${V[@]}"
it_ok "basicconsumer: export 403, import into the space 403; no access: 404; another user's download 404"

# ---- the engine's copy route takes only service tokens ---------------------------------------
# Spaces decides the access and calls the engine with a service token; a user's own valid
# platform token sent straight to an engine replica is refused (even with a forged
# X-Tsr-Auth-Type, which the verifier replaces) and nothing is copied.
before=$(n_apps)
dirs=$(engine_apps)
for who in "$key" "${V[1]#Authorization: Bearer }"; do # the admin, the viewer (no access)
  jwt=$(it_platform_jwt "$A_PORT" "$who")
  [ -n "$jwt" ] || it_fail "no platform JWT for a direct engine call"
  for off in 3 4; do
    tgt=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    it_expect_status "http://127.0.0.1:$((A_PORT + off))/internal/v1/apps/$app/copy" 403 \
      -H "X-Tsr-Token: $jwt" -H 'X-Tsr-Auth-Type: service' "${J[@]}" -X POST \
      --data "{\"targetId\":\"$tgt\"}"
    it_expect_error_body 403
    [ ! -e "$A_STATE/engine/apps/$tgt" ] || it_fail "a refused engine copy created $tgt"
  done
done
[ "$(n_apps)" = "$before" ] || it_fail "a refused engine copy created an item"
[ "$(engine_apps)" = "$dirs" ] || it_fail "a refused engine copy created engine content"
grep -q "app copy refused to a caller of auth type" "$logs"/engine-[12].log ||
  it_fail "no engine log line for the refused copy"
it_ok "a user's own platform token straight to the engine's copy route (both replicas): 403, no item, no content"

# ---- the audit trail -------------------------------------------------------------------------
found=""
for _ in $(seq 150); do
  found=$(curl -fsS "${auth[@]}" \
    "$A_URL/api/v1/audits?limit=100&eventType=com.tessera.v1.app.exported" 2>/dev/null |
    jq -r --arg a "$app" '[.data[]? | select(.extensions.topLevelResourceId == $a and .data.tempContentId != null)] | length') || true
  [ -n "$found" ] && [ "$found" -ge 1 ] && break
  sleep 0.2
done
[ -n "$found" ] && [ "$found" -ge 1 ] ||
  it_fail "no com.tessera.v1.app.exported in the audit trail: $(curl -fsS "${auth[@]}" "$A_URL/api/v1/audits?limit=5" | head -c 600)"
it_ok "export recorded in the audit trail (com.tessera.v1.app.exported)"

# ---- @qlik/api ---------------------------------------------------------------------------------
if [ -d "$API_DIR/node_modules/@qlik/api" ]; then
  TSR_URL=$A_URL TSR_API_KEY=$key APP_ID=$app timeout 120 node "$API_DIR/app_transfer_test.mjs" ||
    it_fail "@qlik/api app transfer (see above)"
fi
echo "ok - app transfer integration"
