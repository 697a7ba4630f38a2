#!/usr/bin/env bash
# The spaces service on the real local stack, through nginx, driven by Qlik's own client
# (@qlik/api 2.19 in Node, tests/qlik-api-node, installed by scripts/deps.sh) with the
# bootstrap admin's API key from credentials.json: space, assignment, apps listed through items
# with cursor paging, a data file uploaded/listed/downloaded, everything deleted. Then, with
# curl: the principal headers nginx sets cannot be forged by a client, /internal is not routed
# from outside, responses match api/openapi/spaces.yaml, a group's assignment reaches its
# members, data files are sealed at rest, and the outbox relay published the events (devkafka).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NODE_DIR=$TSR_SOURCE_DIR/tests/qlik-api-node
command -v node >/dev/null || it_fail "node required (scripts/deps.sh)"
[ -d "$NODE_DIR/node_modules/@qlik/api" ] ||
  it_fail "$NODE_DIR/node_modules missing: run scripts/deps.sh"

it_stack_up A
creds=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$creds")
[ -n "$key" ] && [ "$key" != null ] || it_fail "no apiKey in $creds"
auth=(-H "Authorization: Bearer $key")

TSR_URL=$A_URL TSR_API_KEY=$key TSR_SPACES_DIRECT="http://127.0.0.1:$((A_PORT + 2))" \
  TSR_IDENTITY_DIRECT="http://127.0.0.1:$((A_PORT + 1))" \
  TSR_PLATFORM_TOKEN="$(cat "$A_STATE/local/service-token")" \
  timeout 120 node "$NODE_DIR/spaces_test.mjs" || it_fail "@qlik/api flow (see above)"

# Without credentials nginx answers 401 before the service.
it_expect_status "$A_URL/api/v1/spaces" 401
it_expect_error_body 401
# A client cannot pose as another tenant or user: nginx overwrites X-Tsr-*.
it_expect_status "$A_URL/api/v1/spaces" 200 "${auth[@]}" -H "X-Tsr-Tenant-Id: evil" \
  -H "X-Tsr-User-Id: evil"
jq -e '.data | type == "array"' /tmp/it-body.$$ >/dev/null || it_fail "spaces list shape"
it_expect_status "$A_URL/api/v1/spaces" 201 "${auth[@]}" -H "Content-Type: application/json" \
  -H "X-Tsr-User-Id: evil" -d '{"name":"forged owner"}'
owner=$(jq -r .ownerId /tmp/it-body.$$)
[ "$owner" != evil ] || it_fail "a client-sent X-Tsr-User-Id was trusted"
sid=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/spaces/$sid" 204 "${auth[@]}" -X DELETE
it_ok "principal headers cannot be forged through nginx"
# The internal access API is not reachable through the ingress.
# (nginx's catch-all may serve the web app's index.html; never the service's JSON answer.)
curl -s -o /tmp/it-body.$$ "${auth[@]}" "$A_URL/internal/v1/access?resource=space:$sid" || true
if jq -e '.actions' /tmp/it-body.$$ >/dev/null 2>&1; then
  it_fail "/internal/v1/access is routed from outside"
fi
it_ok "/internal is not routed from outside"

# Responses validate against api/openapi/spaces.yaml (python3 yaml + jsonschema; skipped with a
# message otherwise). check_spec METHOD PATH STATUS FILE.
check_spec() {
  python3 - "$TSR_SOURCE_DIR/api/openapi/spaces.yaml" "$@" <<'PY'
import json, sys, yaml, jsonschema
spec_file, method, path, status, body = sys.argv[1:6]
spec = yaml.safe_load(open(spec_file))
resp = spec["paths"][path][method]["responses"][status]
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
  j=(-H "Content-Type: application/json")
  curl -fsS "${auth[@]}" "${j[@]}" -d '{"name":"spec space"}' "$A_URL/api/v1/spaces" >"$S/space_post.json"
  sid=$(jq -r .id "$S/space_post.json")
  curl -fsS "${auth[@]}" "${j[@]}" -d '{"assigneeId":"someone","roles":["consumer"]}' \
    "$A_URL/api/v1/spaces/$sid/assignments" >"$S/asg_post.json"
  curl -fsS "${auth[@]}" "${j[@]}" -d "{\"attributes\":{\"name\":\"spec app\",\"spaceId\":\"$sid\"}}" \
    "$A_URL/api/v1/apps" >"$S/app_post.json"
  aid=$(jq -r .attributes.id "$S/app_post.json")
  printf 'a\n1\n' >"$A_STATE/spec.csv"
  curl -fsS "${auth[@]}" -F "File=@$A_STATE/spec.csv" \
    -F "Json={\"name\":\"spec.csv\",\"connectionId\":\"$sid\"};type=application/json" \
    "$A_URL/api/v1/data-files" >"$S/df_post.json"
  fid=$(jq -r .id "$S/df_post.json")
  curl -fsS "${auth[@]}" "$A_URL/api/v1/spaces" >"$S/spaces.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/spaces/$sid" >"$S/space.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/spaces/$sid/assignments" >"$S/asgs.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/apps/$aid" >"$S/app.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/items?spaceId=$sid" >"$S/items.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/items/$aid" >"$S/item.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/data-files?connectionId=$sid" >"$S/dfs.json"
  curl -fsS "${auth[@]}" "$A_URL/api/v1/data-files/$fid" >"$S/df.json"
  curl -s "${auth[@]}" "$A_URL/api/v1/spaces/0123456789abcdef01234567" >"$S/404.json"
  curl -s "${auth[@]}" -X DELETE "$A_URL/api/v1/spaces/$sid" >"$S/412.json"
  for c in "post /api/v1/spaces 201 space_post" "post /api/v1/spaces/{spaceId}/assignments 201 asg_post" \
    "post /api/v1/apps 200 app_post" "post /api/v1/data-files 201 df_post" "get /api/v1/spaces 200 spaces" \
    "get /api/v1/spaces/{spaceId} 200 space" "get /api/v1/spaces/{spaceId}/assignments 200 asgs" \
    "get /api/v1/apps/{appId} 200 app" "get /api/v1/items 200 items" "get /api/v1/items/{itemId} 200 item" \
    "get /api/v1/data-files 200 dfs" "get /api/v1/data-files/{id} 200 df" \
    "get /api/v1/spaces/{spaceId} 404 404" "delete /api/v1/spaces/{spaceId} 412 412"; do
    set -- $c
    check_spec "$1" "$2" "$3" "$S/$4.json" ||
      it_fail "$1 $2 $3 does not match the spec: $(head -c 300 "$S/$4.json")"
  done
  it_expect_status "$A_URL/api/v1/spaces/$sid?force=true" 204 "${auth[@]}" -X DELETE
  it_ok "14 responses validate against api/openapi/spaces.yaml"
else
  echo "skip: python3 yaml/jsonschema missing, responses not checked against the spec"
fi

# Group assignments: a member of a group assigned to a space sees the space and its apps with
# the group's roles, and loses them when the assignment goes. The member is a service user with
# an API key the admin makes (no own assignment anywhere).
J=(-H "Content-Type: application/json")
it_expect_status "$A_URL/api/v1/users" 201 "${auth[@]}" "${J[@]}" -d '{"serviceUser":true,"name":"group member"}'
member=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/api-keys" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"description\":\"group member\",\"sub\":\"$member\"}"
mauth=(-H "Authorization: Bearer $(jq -r .token /tmp/it-body.$$)")
it_expect_status "$A_URL/api/v1/users" 201 "${auth[@]}" "${J[@]}" -d '{"serviceUser":true,"name":"stranger"}'
stranger=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/api-keys" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"description\":\"stranger\",\"sub\":\"$stranger\"}"
sauth=(-H "Authorization: Bearer $(jq -r .token /tmp/it-body.$$)")
it_expect_status "$A_URL/api/v1/groups" 201 "${auth[@]}" "${J[@]}" -d "{\"name\":\"it viewers $$\"}"
gid=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/users/$member" 204 "${auth[@]}" "${J[@]}" -X PATCH \
  -d "[{\"op\":\"replace\",\"path\":\"/assignedGroups\",\"value\":[{\"id\":\"$gid\"}]}]"
it_expect_status "$A_URL/api/v1/spaces" 201 "${auth[@]}" "${J[@]}" -d "{\"name\":\"group space $$\"}"
gsid=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/apps" 200 "${auth[@]}" "${J[@]}" \
  -d "{\"attributes\":{\"name\":\"group app\",\"spaceId\":\"$gsid\"}}"
gaid=$(jq -r .attributes.id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/spaces/$gsid" 404 "${mauth[@]}"
it_expect_status "$A_URL/api/v1/spaces/$gsid/assignments" 201 "${auth[@]}" "${J[@]}" \
  -d "{\"type\":\"group\",\"assigneeId\":\"$gid\",\"roles\":[\"consumer\"]}"
asg=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/spaces" 200 "${mauth[@]}"
jq -e --arg s "$gsid" 'any(.data[]; .id == $s)' /tmp/it-body.$$ >/dev/null ||
  it_fail "the group's space is not listed for its member: $(head -c 300 /tmp/it-body.$$)"
it_expect_status "$A_URL/api/v1/spaces/$gsid" 200 "${mauth[@]}"
jq -e '.meta.roles == ["consumer"]' /tmp/it-body.$$ >/dev/null ||
  it_fail "the member's roles in the space: $(jq -c .meta /tmp/it-body.$$)"
it_expect_status "$A_URL/api/v1/items?spaceId=$gsid" 200 "${mauth[@]}"
jq -e --arg a "$gaid" 'any(.data[]; .resourceId == $a)' /tmp/it-body.$$ >/dev/null ||
  it_fail "the group's app is not in the member's items: $(head -c 300 /tmp/it-body.$$)"
it_expect_status "$A_URL/api/v1/apps/$gaid" 200 "${mauth[@]}"
# consumer: read, not edit.
it_expect_status "$A_URL/api/v1/apps/$gaid" 403 "${mauth[@]}" "${J[@]}" -X PUT \
  -d '{"attributes":{"name":"renamed by a consumer"}}'
# A client naming the group in its own X-Tsr-Groups gains nothing: nginx overwrites it.
it_expect_status "$A_URL/api/v1/apps/$gaid" 404 "${sauth[@]}" -H "X-Tsr-Groups: $gid"
it_expect_status "$A_URL/api/v1/spaces/$gsid/assignments/$asg" 204 "${auth[@]}" -X DELETE
it_expect_status "$A_URL/api/v1/apps/$gaid" 404 "${mauth[@]}"
it_expect_status "$A_URL/api/v1/spaces/$gsid" 404 "${mauth[@]}"
it_expect_status "$A_URL/api/v1/spaces/$gsid?force=true" 204 "${auth[@]}" -X DELETE
it_expect_status "$A_URL/api/v1/groups/$gid" 204 "${auth[@]}" -X DELETE
it_ok "a group's assignment grants its members the space and its apps; removing it takes them away"

# Data files are sealed at rest under the tenant's DEK (the stack sets TSR_KEK_FILE).
marker="tessera-plaintext-marker-$$"
printf 'a,b\n%s,1\n' "$marker" > "$A_STATE/upload.csv"
it_expect_status "$A_URL/api/v1/data-files" 201 "${auth[@]}" -F "File=@$A_STATE/upload.csv" \
  -F 'Json={"name":"sealed.csv"};type=application/json'
fid=$(jq -r .id /tmp/it-body.$$)
[ -n "$(find "$A_STATE/blobs" -type f 2>/dev/null)" ] || it_fail "no blob written"
if grep -rq "$marker" "$A_STATE/blobs"; then it_fail "a data file is stored in plaintext"; fi
curl -fsS "${auth[@]}" "$A_URL/api/v1/data-files/$fid/content" | grep -q "$marker" ||
  it_fail "the sealed data file does not read back"
it_expect_status "$A_URL/api/v1/data-files/$fid" 204 "${auth[@]}" -X DELETE
it_ok "data files sealed at rest, read back through the service"

# The outbox relay (spaces' or another service's, under the shared lease): published rows
# are deleted from the store's outbox table.
db=$A_STATE/store.db
if [ -x "$TSR_BUILD_DIR/cmd/devkafka/devkafka" ] && command -v sqlite3 >/dev/null; then
  n=unknown
  for _ in $(seq 1 100); do
    n=$(sqlite3 "$db" "select count(*) from outbox where topic like 'tessera.%'" 2>/dev/null ||
      echo unknown)
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  [ "$n" = 0 ] || it_fail "events still in the outbox ($n): the relay did not publish them"
  # One relay per store: whichever service holds the shared lease publishes everyone's rows.
  grep -lq 'outbox relay started' "$A_STATE"/local/logs/*.log ||
    it_fail "no outbox relay started: $(tail -n 5 "$A_STATE/local/logs/spaces.log")"
  it_ok "outbox relay published every event"
fi
echo "ok - spaces integration"
