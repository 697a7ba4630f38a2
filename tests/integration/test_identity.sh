#!/usr/bin/env bash
# Identity end to end on a real process: tsr-admin bootstrap (credentials file, idempotent),
# tenant-create, then tessera-identity serving the authn decision, users, tenants and API keys
# over HTTP with tenant isolation. Starts identity directly (the local stack does not yet run
# the bootstrap); tears down what it started.
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

admin=$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin
ident=$TSR_BUILD_DIR/cmd/identity/tessera-identity
[ -x "$admin" ] && [ -x "$ident" ] || it_fail "build tsr-admin and tessera-identity first"

P=$(it_free_port_block) || it_fail "no free port block"
state=$(mktemp -d /tmp/tsr-it-identity.XXXXXX)
url="http://127.0.0.1:$P"
ipid=""
cleanup() {
  [ -n "$ipid" ] && kill "$ipid" 2>/dev/null && wait "$ipid" 2>/dev/null
  rm -rf "$state"
  it_cleanup
}
trap cleanup EXIT

# ---- bootstrap ----------------------------------------------------------------------------
out=$("$admin" bootstrap --state-dir "$state" --url "$url") || it_fail "bootstrap: $out"
jq -e '.created == true' <<<"$out" >/dev/null || it_fail "bootstrap output: $out"
cred=$state/local/credentials.json
[ "$(stat -c %a "$cred")" = 600 ] || it_fail "credentials mode $(stat -c %a "$cred")"
jq -e --arg u "$url" '.url == $u and (.tenantId | length == 24) and (.user | length > 0)
    and (.password | length >= 20) and (.apiKey | startswith("tsrk_"))' "$cred" >/dev/null ||
  it_fail "credentials content: $(jq -c 'del(.password, .apiKey)' "$cred")"
sum=$(sha256sum "$cred")
out=$("$admin" bootstrap --state-dir "$state" --url "$url") || it_fail "second bootstrap: $out"
jq -e '.created == false' <<<"$out" >/dev/null || it_fail "second bootstrap: $out"
[ "$(sha256sum "$cred")" = "$sum" ] || it_fail "second bootstrap rewrote credentials"
"$admin" bootstrap --state-dir "$state" >/dev/null 2>&1 && it_fail "bootstrap without --url"
it_ok "tsr-admin bootstrap: credentials.json 0600, idempotent"

key_a=$(jq -r .apiKey "$cred")
tenant_a=$(jq -r .tenantId "$cred")
b=$("$admin" tenant-create --state-dir "$state" --name b --hostname b.test \
  --admin-email root@b.test) || it_fail "tenant-create: $b"
key_b=$(jq -r .apiKey <<<"$b")
"$admin" tenant-create --state-dir "$state" --name c --hostname b.test >/dev/null 2>&1 &&
  it_fail "a hostname was given to two tenants"
it_ok "tsr-admin tenant-create: second tenant with its admin; hostname unique"

# ---- the service ------------------------------------------------------------------------------
TSR_STATE_DIR=$state TSR_SERVICE_PORT=$((P + 1)) "$ident" >"$state/identity.log" 2>&1 &
ipid=$!
base="http://127.0.0.1:$((P + 1))"
for _ in $(seq 100); do
  curl -s -o /dev/null "$base/health/ready" && break
  sleep 0.1
done
it_expect_status "$base/health/ready" 200

A=(-H "Host: 127.0.0.1:$P" -H "Authorization: Bearer $key_a")
hdrs=$(curl -s -D - -o /dev/null "${A[@]}" "$base/internal/v1/authn" | tr -d '\r')
grep -q '^HTTP/1.1 200' <<<"$hdrs" || it_fail "authn: $hdrs"
grep -qi "^x-tsr-tenant-id: $tenant_a\$" <<<"$hdrs" || it_fail "authn tenant header: $hdrs"
grep -qi '^x-tsr-roles: TenantAdmin,User$' <<<"$hdrs" || it_fail "authn roles header: $hdrs"
jwt=$(sed -n 's/^[Xx]-[Tt]sr-[Tt]oken: //p' <<<"$hdrs")
[ -n "$jwt" ] || it_fail "authn: no X-Tsr-Token"
kid=$(cut -d. -f1 <<<"$jwt" | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .kid) || true
it_expect_status "$base/api/v1/identity/keys" 200
jq -e --arg k "$kid" '.keys | any(.kid == $k and .kty == "EC" and .crv == "P-256")' \
  /tmp/it-body.$$ >/dev/null || it_fail "JWKS lacks kid $kid: $(cat /tmp/it-body.$$)"
it_expect_status "$base/api/v1/users/me" 200 -H "Host: 127.0.0.1:$P" -H "Authorization: Bearer $jwt"
it_expect_status "$base/internal/v1/authn" 401 -H "Host: 127.0.0.1"
it_expect_error_body 401
it_expect_status "$base/internal/v1/authn" 401 -H "Host: b.test" -H "Authorization: Bearer $key_a"
it_expect_status "$base/internal/v1/authn" 200 -H "Host: b.test" -H "Authorization: Bearer $key_b"
it_ok "authn: 200 with X-Tsr-* principal headers; 401 without or with another tenant's key"

it_expect_status "$base/api/v1/users/me" 200 "${A[@]}"
jq -e '.email == "admin@tessera.local" and .status == "active"' /tmp/it-body.$$ >/dev/null ||
  it_fail "users/me: $(cat /tmp/it-body.$$)"
it_expect_status "$base/api/v1/tenants/me" 200 "${A[@]}"
jq -e --arg t "$tenant_a" '.id == $t and (.hostnames | index("127.0.0.1"))' /tmp/it-body.$$ \
  >/dev/null || it_fail "tenants/me: $(cat /tmp/it-body.$$)"
it_expect_status "$base/api/v1/roles" 200 "${A[@]}"
it_ok "users/me, tenants/me, roles"

B=(-H "Host: b.test" -H "Authorization: Bearer $key_b")
it_expect_status "$base/api/v1/users/me" 200 "${B[@]}"
user_b=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$base/api/v1/users/$user_b" 404 "${A[@]}"
it_expect_error_body 404
cross=$(jq -c 'del(.traceId)' /tmp/it-body.$$)
it_expect_status "$base/api/v1/users/0123456789abcdef01234567" 404 "${A[@]}"
[ "$(jq -c 'del(.traceId)' /tmp/it-body.$$)" = "$cross" ] || it_fail "cross-tenant 404 differs"
it_expect_status "$base/api/v1/users/$user_b" 404 "${A[@]}" -X DELETE
it_expect_status "$base/api/v1/users/$user_b" 200 "${B[@]}"
it_ok "tenant isolation: B's user is a 404 for A, identical to a missing one, and survives"

J=(-H 'Content-Type: application/json')
it_expect_status "$base/api/v1/users" 201 "${A[@]}" "${J[@]}" -d '{"email":"ann@example.com"}'
it_expect_status "$base/api/v1/users" 409 "${A[@]}" "${J[@]}" -d '{"email":"ANN@example.com"}'
it_expect_status "$base/api/v1/users" 400 "${A[@]}" "${J[@]}" -d '{"email":"x@y.z","root":1}'
it_expect_error_body 400
it_expect_status "$base/api/v1/api-keys" 201 "${A[@]}" "${J[@]}" -d '{"description":"it","expiry":"P1D"}'
tok=$(jq -r .token /tmp/it-body.$$)
kid=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$base/api/v1/users/me" 200 -H "Host: localhost" -H "Authorization: Bearer $tok"
it_expect_status "$base/api/v1/api-keys" 200 "${A[@]}"
jq -e 'all(.data[]; has("token") | not) and all(.data[]; has("hash") | not)' /tmp/it-body.$$ \
  >/dev/null || it_fail "api-keys list leaks a secret"
it_expect_status "$base/api/v1/api-keys/$kid" 404 "${B[@]}" -X DELETE
it_expect_status "$base/api/v1/api-keys/$kid" 204 "${A[@]}" -X DELETE
it_expect_status "$base/api/v1/users/me" 401 -H "Host: localhost" -H "Authorization: Bearer $tok"
it_ok "users create/conflict/400, API key create → use → delete → refused"

# Browser session: login sets an HttpOnly cookie; writes need the CSRF token.
jar=$state/cookies
pw=$(jq -r .password "$cred")
login=$(jq -n --arg p "$pw" '{email: "admin@tessera.local", password: $p}')
h=$(curl -s -D - -o /dev/null -c "$jar" -H "Host: 127.0.0.1:$P" "${J[@]}" -d "$login" \
  "$base/api/v1/identity/login" | tr -d '\r')
grep -q '^HTTP/1.1 204' <<<"$h" || it_fail "login: $h"
grep -qi '^set-cookie: tsr_session=.*HttpOnly' <<<"$h" || it_fail "login cookie: $h"
csrf=$(sed -n 's/^qlik-csrf-token: //Ip' <<<"$h")
C=(-b "$jar" -H "Host: 127.0.0.1:$P")
it_expect_status "$base/api/v1/users/me" 200 "${C[@]}"
it_expect_status "$base/api/v1/api-keys" 403 "${C[@]}" "${J[@]}" -d '{"description":"s"}'
it_expect_status "$base/api/v1/api-keys" 201 "${C[@]}" "${J[@]}" -H "qlik-csrf-token: $csrf" \
  -d '{"description":"s"}'
it_expect_status "$base/internal/v1/authn" 403 "${C[@]}" -H "X-Original-Method: POST"
it_expect_status "$base/internal/v1/authn" 200 "${C[@]}" -H "X-Original-Method: POST" \
  -H "qlik-csrf-token: $csrf"
bad=$(jq -n '{email: "admin@tessera.local", password: "wrong"}')
it_expect_status "$base/api/v1/identity/login" 401 -H "Host: 127.0.0.1:$P" "${J[@]}" -d "$bad"
it_expect_error_body 401
it_ok "login → session cookie → CSRF enforced on writes and in the authn decision"

pt=$("$admin" platform-token --state-dir "$state" --name it | jq -r .token)
it_expect_status "$base/internal/v1/tenants" 401 "${A[@]}" "${J[@]}" -d '{"name":"c","hostnames":["c.test"]}'
it_expect_status "$base/internal/v1/tenants" 201 -H "Authorization: Bearer $pt" "${J[@]}" \
  -d '{"name":"c","hostnames":["c.test"],"adminEmail":"root@c.test"}'
key_c=$(jq -r .admin.apiKey /tmp/it-body.$$)
it_expect_status "$base/api/v1/tenants/me" 200 -H "Host: c.test" -H "Authorization: Bearer $key_c"
it_ok "internal tenant creation with a platform token (tsr-admin platform-token)"

tenant_b=$(jq -r .id <<<"$b")
"$admin" tenant-delete --state-dir "$state" --id "$tenant_b" >/dev/null || it_fail "tenant-delete"
it_expect_status "$base/api/v1/users/me" 401 "${B[@]}"
it_expect_status "$base/api/v1/users/me" 200 "${A[@]}"
"$admin" tenant-delete --state-dir "$state" --id "$tenant_b" >/dev/null 2>&1 &&
  it_fail "deleting a deleted tenant succeeded"
it_ok "tsr-admin tenant-delete: B's key stops working at once, A unaffected"

# Keys at rest: tsr-admin and identity share one KEK (0600) and one store; a tenant has a
# wrapped DEK until it is deleted; the signing key's PEM is stored sealed; changes leave
# CloudEvents in the outbox.
db=$state/store.db
[ "$(stat -c %a "$state/local/kek")" = 600 ] || it_fail "kek mode $(stat -c %a "$state/local/kek")"
q() { sqlite3 -cmd '.timeout 5000' "$db" "$1"; }
[ "$(q "SELECT count(*) FROM d_identity_deks WHERE tenant='$tenant_a'")" = 1 ] ||
  it_fail "tenant A has no DEK record"
[ "$(q "SELECT count(*) FROM d_identity_deks WHERE tenant='$tenant_b'")" = 0 ] ||
  it_fail "tenant B's DEK survived its deletion"
[ "$(q "SELECT count(*) FROM d_identity_signing_keys")" -ge 1 ] || it_fail "no signing key stored"
[ "$(q "SELECT count(*) FROM d_identity_signing_keys WHERE doc LIKE '%PRIVATE KEY%'")" = 0 ] ||
  it_fail "a signing key is stored in the clear"
q "SELECT payload FROM outbox WHERE topic='tessera.identity'" |
  jq -se --arg t "$tenant_b" 'any(.type == "com.tessera.v1.tenant.deleted" and .tenantid == $t)' \
    >/dev/null || it_fail "no tenant.deleted event in the outbox"
it_ok "KEK 0600, DEK per tenant shredded on delete, signing key sealed, events in the outbox"

# State survives a restart (SQLite under the state dir).
kill "$ipid"; wait "$ipid" || true
TSR_STATE_DIR=$state TSR_SERVICE_PORT=$((P + 1)) "$ident" >>"$state/identity.log" 2>&1 &
ipid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "$base/health/ready" && break
  sleep 0.1
done
it_expect_status "$base/api/v1/users/me" 200 "${A[@]}"
it_ok "identity restarts with its state"
