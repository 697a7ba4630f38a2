#!/usr/bin/env bash
# OIDC sign-in end to end against a real OpenID Provider (npm oidc-provider, tests/oidc) on
# loopback, through nginx on the local stack: a TenantAdmin configures the provider with the
# stack's API key, then curl with a cookie jar runs the authorization-code + PKCE flow (the
# provider's dev login and consent forms), the callback creates the user just in time, and
# the session cookie reaches GET /api/v1/users/me. Refused: a tampered state, a replayed
# callback, a callback without the browser's state cookie, tenant B using tenant A's
# provider (start and callback), and ID tokens the provider's token endpoint tampers with
# (another signing key, wrong aud, wrong iss, expired).
source "$TSR_SOURCE_DIR/tests/integration/lib.sh"

oidc_dir=$TSR_SOURCE_DIR/tests/oidc
[ -d "$oidc_dir/node_modules/oidc-provider" ] || it_fail "tests/oidc has no node_modules (make deps)"
admin=$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin

tmp=$(mktemp -d /tmp/tsr-it-oidc.XXXXXX)
ppid_=""
oidc_cleanup() {
  if [ -n "$ppid_" ]; then kill "$ppid_" 2>/dev/null || true; wait "$ppid_" 2>/dev/null || true; fi
  rm -rf "$tmp"
  it_cleanup
}
trap oidc_cleanup EXIT

it_stack_up A
key=$(jq -r .apiKey "$A_STATE/local/credentials.json")
AUTH=(-H "Authorization: Bearer $key")

# ---- the provider configuration (secret sealed, never returned) ------------------------------
secret="it-secret-$RANDOM$RANDOM"
body=$(jq -nc --arg s "$secret" '{protocol: "OIDC", provider: "generic", interactive: true,
  description: "test OP", options: {discoveryUrl: "http://127.0.0.1:9/.well-known/openid-configuration",
  clientId: "tessera-it", clientSecret: $s, scope: "openid email profile"}}')
it_expect_status "$A_URL/api/v1/identity-providers" 201 "${AUTH[@]}" \
  -H 'Content-Type: application/json' -d "$body"
idp=$(jq -r .id /tmp/it-body.$$)
grep -q "$secret" /tmp/it-body.$$ && it_fail "create returned the client secret"
cb="$A_URL/api/v1/identity/oidc/$idp/callback"

# The real provider, now that the redirect URI is known; then point the config at it.
(cd "$oidc_dir" && exec node provider.js tessera-it "$secret" "$cb" alice@corp.test) \
  >"$tmp/op.out" 2>"$tmp/op.err" &
ppid_=$!
for _ in $(seq 100); do [ -s "$tmp/op.out" ] && break; sleep 0.1; done
issuer=$(jq -r .issuer "$tmp/op.out") || it_fail "provider did not start: $(cat "$tmp/op.err")"
patch=$(jq -nc --arg u "$issuer/.well-known/openid-configuration" \
  '[{op: "replace", path: "/options/discoveryUrl", value: $u}]')
it_expect_status "$A_URL/api/v1/identity-providers/$idp" 200 "${AUTH[@]}" \
  -H 'Content-Type: application/json' -X PATCH -d "$patch"
it_expect_status "$A_URL/api/v1/identity-providers" 200 "${AUTH[@]}"
jq -e --arg i "$idp" '.data | length == 1 and .[0].id == $i and (.[0].options | has("clientSecret") | not)' \
  /tmp/it-body.$$ >/dev/null || it_fail "list: $(cat /tmp/it-body.$$)"
grep -q "$secret" /tmp/it-body.$$ && it_fail "list returned the client secret"
it_ok "identity provider created, patched and listed; the secret is never returned"

# ---- the flow -------------------------------------------------------------------------------
# oidc_flow JAR: from the sign-in start to the provider's redirect back to us; prints the
# callback URL (with code and state) without requesting it.
oidc_flow() {
  local jar=$1 url="$A_URL/api/v1/identity/oidc/$idp/login?returnto=/api/v1/users/me" loc
  local data=() i
  for i in $(seq 20); do
    curl -s -c "$jar" -b "$jar" -D "$tmp/h" -o "$tmp/b" "${data[@]}" "$url" || it_fail "curl $url"
    loc=$(tr -d '\r' <"$tmp/h" | sed -n 's/^[Ll]ocation: //p' | tail -1)
    data=()
    if [ -n "$loc" ]; then
      case "$loc" in /*) loc="$issuer$loc" ;; esac
      case "$loc" in "$cb"*) echo "$loc"; return 0 ;; esac
      url=$loc
    elif grep -q 'name="login"' "$tmp/b"; then
      data=(--data-urlencode prompt=login --data-urlencode login=alice --data-urlencode password=x)
    elif grep -qi 'consent\|authorize' "$tmp/b" && [[ $url == *"/interaction/"* ]]; then
      data=(--data-urlencode prompt=consent)
    else
      it_fail "flow stuck at $url: $(head -c 400 "$tmp/b")"
    fi
  done
  it_fail "too many redirects"
}

t0=$(date +%s)
jar=$tmp/jar1
back=$(oidc_flow "$jar")
[[ $back == *"code="* && $back == *"state="* ]] || it_fail "callback URL: $back"

# Tenant B (same stack, another hostname) cannot use A's provider, neither to start nor to
# finish; the refusal consumes nothing of A's sign-in.
"$admin" tenant-create --state-dir "$A_STATE" --name b --hostname b.test >"$tmp/b.json" ||
  it_fail "tenant-create b: $(cat "$tmp/b.json")"
it_expect_status "$A_URL/api/v1/identity/oidc/$idp/login" 404 -H "Host: b.test"
it_expect_error_body 404
state=$(sed -n 's/.*[?&]state=\([^&]*\).*/\1/p' <<<"$back")
it_expect_status "$back" 401 -H "Host: b.test" -H "Cookie: tsr_oidc=$state"
it_expect_error_body 401
# Tampered state (one character changed), and no state cookie at all.
bad=${state%?}$([ "${state: -1}" = A ] && echo B || echo A)
it_expect_status "${back/state=$state/state=$bad}" 401 -b "$jar"
grep -q "state" /tmp/it-body.$$ || it_fail "tampered state: $(cat /tmp/it-body.$$)"
it_expect_status "$back" 401
it_ok "refused: tenant B with A's provider, a tampered state, no state cookie"

# The real callback: session cookie + CSRF, then users/me as the new user through nginx.
hdr=$(curl -s -c "$jar" -b "$jar" -D - -o "$tmp/cb" "$back" | tr -d '\r')
grep -q '^HTTP/1.1 302' <<<"$hdr" || it_fail "callback: $(head -1 <<<"$hdr") $(cat "$tmp/cb")"
grep -qi '^set-cookie: tsr_session=tsrs_.*HttpOnly; SameSite=Lax' <<<"$hdr" || it_fail "no session cookie: $hdr"
grep -qi '^qlik-csrf-token: ' <<<"$hdr" || it_fail "no CSRF token: $hdr"
grep -qi '^location: /api/v1/users/me$' <<<"$hdr" || it_fail "returnto: $hdr"
it_expect_status "$A_URL/api/v1/users/me" 200 -b "$jar"
jq -e '.email == "alice@corp.test" and .status == "active" and .subject == "oidc|alice"
    and .name == "Test alice" and (.assignedGroups | map(select(.name == "tessera-eng"
    and .providerType == "idp")) | length == 1)' /tmp/it-body.$$ >/dev/null ||
  it_fail "users/me: $(cat /tmp/it-body.$$)"
uid=$(jq -r .id /tmp/it-body.$$)
it_expect_status "$A_URL/api/v1/csrf-token" 204 -b "$jar"
it_ok "code + PKCE flow through nginx: JIT user $uid signed in with a session cookie, groups mapped"

# Replaying the callback (same code and state) is refused.
it_expect_status "$back" 401 -b "$jar"

# A second sign-in finds the same user (no duplicate).
jar2=$tmp/jar2
back2=$(oidc_flow "$jar2")
curl -s -c "$jar2" -b "$jar2" -o /dev/null "$back2"
it_expect_status "$A_URL/api/v1/users/me" 200 -b "$jar2"
jq -e --arg u "$uid" '.id == $u' /tmp/it-body.$$ >/dev/null || it_fail "second login: $(cat /tmp/it-body.$$)"
it_expect_status "$A_URL/api/v1/users?limit=100" 200 "${AUTH[@]}"
[ "$(jq '[.data[] | select(.email == "alice@corp.test")] | length' /tmp/it-body.$$)" = 1 ] ||
  it_fail "duplicate JIT user"
it_ok "replayed callback refused; second sign-in is the same user ($(($(date +%s) - t0)) s)"

# A forged code with a real state: the provider refuses it, the state is spent all the same.
jar3=$tmp/jar3
back3=$(oidc_flow "$jar3")
it_expect_status "${back3/code=/code=x}" 401 -b "$jar3"
grep -q "token endpoint refused" /tmp/it-body.$$ || it_fail "forged code: $(cat /tmp/it-body.$$)"
it_expect_status "$back3" 401 -b "$jar3"
it_ok "forged code refused by the provider; its state cannot be used again"

# ID tokens the provider's token endpoint alters (tests/oidc/provider.js tamper modes): each
# callback is refused with the reason and sets no session; the state is spent all the same.
tamper() { curl -fs -o /dev/null "$issuer/__test/tamper?mode=$1" || it_fail "tamper mode $1"; }
for case in "otherkey:bad signature" "unknownkid:unknown kid" "aud:wrong audience" \
  "iss:wrong issuer" "expired:expired"; do
  mode=${case%%:*} why=${case#*:}
  tamper "$mode"
  tj=$tmp/jar-$mode
  tb=$(oidc_flow "$tj")
  hdr=$(curl -s -c "$tj" -b "$tj" -D - -o /tmp/it-body.$$ "$tb" | tr -d '\r')
  grep -q '^HTTP/1.1 401' <<<"$hdr" || it_fail "$mode: $(head -1 <<<"$hdr") $(cat /tmp/it-body.$$)"
  grep -q "jwt: $why\"" /tmp/it-body.$$ || it_fail "$mode: reason: $(cat /tmp/it-body.$$)"
  grep -qi '^set-cookie: tsr_session=tsrs_' <<<"$hdr" && it_fail "$mode: a session was set: $hdr"
  grep -q 'tsr_session.*tsrs_' "$tj" && it_fail "$mode: the jar holds a session"
  it_expect_status "$A_URL/api/v1/users/me" 401 -b "$tj"
  tamper none
  it_expect_status "$tb" 401 -b "$tj"
done
it_ok "ID token refused: signed by another key (same kid, unknown kid), wrong aud, wrong iss, expired; no session"

# The audit trail (outbox → Kafka → audit): the OIDC sign-ins and the failed one.
for _ in $(seq 100); do
  curl -s "${AUTH[@]}" "$A_URL/api/v1/audits?limit=100" >"$tmp/audits" || true
  ok=$(jq --arg i "$idp" '[.data[]? | select(.data.idpId == $i or .data.data.idpId == $i)
       | .eventType] | (index("com.tessera.v1.auth.login.succeeded") != null)
       and (index("com.tessera.v1.auth.login.failed") != null)' "$tmp/audits" 2>/dev/null || true)
  [ "$ok" = true ] && break
  sleep 0.1
done
[ "$ok" = true ] || it_fail "audit trail: $(jq -c '[.data[]? | {eventType, data}] | .[:6]' "$tmp/audits")"
it_ok "audit: OIDC sign-in succeeded and failed events with the provider id"

it_expect_status "$A_URL/api/v1/identity-providers/$idp" 204 "${AUTH[@]}" -X DELETE
it_expect_status "$A_URL/api/v1/identity/oidc/$idp/login" 404
it_ok "provider deleted; its sign-in start answers 404"
