#!/usr/bin/env bash
# Services trust only identity's signed token (pkg/auth), on the real local stack: reached
# directly (bypassing nginx), spaces, reload, audit and engine (REST and the QIX WebSocket
# upgrade) answer 401 to forged X-Tsr-* headers without a token or with a forged, tampered or
# foreign one, and work with a valid token whose claims replace whatever headers came along.
# Service tokens need the platform token. A service refuses to start without
# TSR_AUTH_JWKS_URL unless TSR_AUTH_TRUST_HEADERS is set. nginx caches positive authentication
# answers for TSR_AUTHN_CACHE_SECONDS: identity is asked once per period, and a revoked API key
# is refused once the period is over.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

CACHE_S=3
export TSR_AUTHN_CACHE_SECONDS=$CACHE_S
it_stack_up A
unset TSR_AUTHN_CACHE_SECONDS
cred=$A_STATE/local/credentials.json
key=$(jq -r .apiKey "$cred")
tenant=$(jq -r .tenantId "$cred")
P=$A_PORT
[ "$(stat -c %a "$A_STATE/local/service-token")" = 600 ] || it_fail "service-token mode"
grep -q "^TSR_AUTH_JWKS_URL=http://127.0.0.1:$((P + 1))/api/v1/identity/keys\$" \
  "$A_STATE/local/auth.env" || it_fail "auth.env: $(cat "$A_STATE/local/auth.env")"

jwt=$(it_platform_jwt "$P" "$key")
[ -n "$jwt" ] || it_fail "no platform token from identity"
uid=$(cut -d. -f2 <<<"$jwt" | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .sub) || true
[ ${#uid} = 24 ] || it_fail "token sub: $uid"
forged=(-H "X-Tsr-Tenant-Id: $tenant" -H "X-Tsr-User-Id: $uid" -H "X-Tsr-Roles: TenantAdmin,User")

# A tampered token: the payload names another tenant and more roles, the signature is the old.
b64url() { base64 -w0 | tr '/+' '_-' | tr -d '='; }
payload=$(cut -d. -f2 <<<"$jwt" | tr '_-' '/+')
while [ $((${#payload} % 4)) != 0 ]; do payload="$payload="; done
tampered_payload=$(base64 -d <<<"$payload" | jq -c '.roles = ["TenantAdmin","AuditAdmin","User"]' | b64url)
tampered="$(cut -d. -f1 <<<"$jwt").$tampered_payload.$(cut -d. -f3 <<<"$jwt")"
# alg none with the same claims.
none="$(printf '{"alg":"none","typ":"tsr+jwt","kid":"x"}' | b64url).$(cut -d. -f2 <<<"$jwt")."

# ---- direct calls: spaces, reload, audit, engine ------------------------------------------
direct() { echo "http://127.0.0.1:$((P + $1))"; }
targets=("2:/api/v1/spaces" "5:/api/v1/reloads?limit=5" "6:/api/v1/audits?limit=5"
  "3:/api/v1/apps/0123456789abcdef01234567/data/metadata")
for t in "${targets[@]}"; do
  off=${t%%:*} path=${t#*:}
  url="$(direct "$off")$path"
  it_expect_status "$url" 401 "${forged[@]}"
  it_expect_error_body 401
  it_expect_status "$url" 401 "${forged[@]}" -H "X-Tsr-Token: not-a-token"
  it_expect_status "$url" 401 "${forged[@]}" -H "X-Tsr-Token: $tampered"
  it_expect_status "$url" 401 "${forged[@]}" -H "X-Tsr-Token: $none"
  want=200
  [ "$off" = 3 ] && want=404 # no such app: past authentication, refused by the access decision
  it_expect_status "$url" "$want" -H "X-Tsr-Token: $jwt"
done
it_ok "spaces, reload, audit, engine direct: forged headers, garbage, tampered and alg-none tokens 401; a valid token works"

# The QIX WebSocket upgrade goes through the same check.
ws() { # extra curl args: the status of the upgrade request
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 --http1.1 -H 'Connection: Upgrade' \
    -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$@" \
    "$(direct 3)/app/0123456789abcdef01234567" || true
}
[ "$(ws "${forged[@]}")" = 401 ] || it_fail "QIX upgrade with forged headers: $(ws "${forged[@]}")"
[ "$(ws "${forged[@]}" -H "X-Tsr-Token: $tampered")" = 401 ] || it_fail "QIX upgrade, tampered token"
[ "$(ws -H "X-Tsr-Token: $jwt")" = 101 ] || it_fail "QIX upgrade with a token: $(ws -H "X-Tsr-Token: $jwt")"
it_ok "QIX upgrade: 401 without a valid token, 101 with one"

# Claims decide, not headers: a User-only token plus X-Tsr-Roles: TenantAdmin is no admin.
svc() { # userId roles-json: a service token from identity (needs the platform token)
  curl -s -H "Authorization: Bearer $(cat "$A_STATE/local/service-token")" \
    -H 'Content-Type: application/json' \
    -d "{\"tenantId\":\"$tenant\",\"userId\":\"$1\",\"roles\":$2}" \
    "$(direct 1)/internal/v1/service-tokens" | jq -r .token
}
user_jwt=$(svc "$uid" '["User"]')
[ -n "$user_jwt" ] && [ "$user_jwt" != null ] || it_fail "service token"
it_expect_status "$(direct 6)/api/v1/audits?limit=5" 403 -H "X-Tsr-Token: $user_jwt" \
  -H "X-Tsr-Roles: TenantAdmin"
it_expect_status "$(direct 6)/api/v1/audits?limit=5" 200 -H "X-Tsr-Token: $(svc "$uid" '["TenantAdmin"]')"
# Without the platform token identity mints nothing.
it_expect_status "$(direct 1)/internal/v1/service-tokens" 401 -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d "{\"tenantId\":\"$tenant\",\"userId\":\"$uid\"}"
it_expect_status "$(direct 1)/internal/v1/service-tokens" 400 \
  -H "Authorization: Bearer $(cat "$A_STATE/local/service-token")" -H 'Content-Type: application/json' \
  -d "{\"tenantId\":\"$tenant\",\"userId\":\"root; rm\"}"
it_ok "roles come from the token's claims; service tokens only with the platform token"

# ---- a service without TSR_AUTH_JWKS_URL ----------------------------------------------------
port=$((P + 7))
rc=0
env -u TSR_AUTH_JWKS_URL -u TSR_AUTH_TRUST_HEADERS TSR_STATE_DIR=$A_STATE TSR_SERVICE_PORT=$port \
  timeout 10 "$TSR_BUILD_DIR/cmd/spaces/tessera-spaces" >"$A_STATE/nojwks.log" 2>&1 || rc=$?
[ $rc != 0 ] && [ $rc != 124 ] || it_fail "spaces started without TSR_AUTH_JWKS_URL (rc $rc)"
grep -q TSR_AUTH_JWKS_URL "$A_STATE/nojwks.log" || it_fail "no reason logged: $(cat "$A_STATE/nojwks.log")"
env -u TSR_AUTH_JWKS_URL TSR_AUTH_TRUST_HEADERS=1 TSR_STATE_DIR=$A_STATE TSR_SERVICE_PORT=$port \
  "$TSR_BUILD_DIR/cmd/spaces/tessera-spaces" >"$A_STATE/trust.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/health/live" && break; sleep 0.1; done
grep -q "SECURITY WARNING: TSR_AUTH_TRUST_HEADERS" "$A_STATE/trust.log" ||
  it_fail "no warning when trusting headers: $(cat "$A_STATE/trust.log")"
it_expect_status "http://127.0.0.1:$port/api/v1/spaces" 200 "${forged[@]}"
kill -TERM $pid
wait $pid || true
it_ok "a service refuses to start without TSR_AUTH_JWKS_URL; TSR_AUTH_TRUST_HEADERS=1 starts it with a warning"

# ---- nginx's authentication cache and revocation --------------------------------------------
authn_count() { grep -c '"route":"/internal/v1/authn"' "$A_STATE/local/logs/identity.log" || true; }
it_expect_status "$A_URL/api/v1/api-keys" 201 -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"description":"revoked by test_auth","expiry":"P1D"}'
k2=$(jq -r .token /tmp/it-body.$$)
k2_id=$(jq -r .id /tmp/it-body.$$)
before=$(authn_count)
for _ in 1 2 3 4 5; do it_expect_status "$A_URL/api/v1/spaces" 200 -H "Authorization: Bearer $k2"; done
asked=$(( $(authn_count) - before ))
[ "$asked" -le 2 ] || it_fail "identity asked $asked times for 5 requests within the cache period"
# A write is another cache entry than a read (sessions need their CSRF token for it).
it_expect_status "$A_URL/api/v1/api-keys/$k2_id" 204 -X DELETE -H "Authorization: Bearer $key"
t0=$(date +%s.%N)
refused_at=""
while :; do
  st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $k2" "$A_URL/api/v1/spaces")
  now=$(date +%s.%N)
  if [ "$st" = 401 ]; then refused_at=$(echo "$now - $t0" | bc); break; fi
  [ "$st" = 200 ] || it_fail "revoked key: status $st"
  (( $(echo "$now - $t0 > $CACHE_S + 1" | bc) )) && break
  sleep 0.2
done
[ -n "$refused_at" ] || it_fail "a revoked key still works $((CACHE_S + 1)) s after revocation"
sleep $((CACHE_S + 1))
it_expect_status "$A_URL/api/v1/spaces" 401 -H "Authorization: Bearer $k2"
it_expect_error_body 401
it_ok "authn cache: identity asked $asked time(s) for 5 requests; a revoked key refused after ${refused_at}s (period ${CACHE_S}s)"
