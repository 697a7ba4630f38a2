#!/usr/bin/env bash
# bench/authn: requests/s and p50/p99 of GET /internal/v1/authn (the nginx auth_request
# decision) for a Bearer API key and for a session cookie, next to the HTTP floor of the same
# process (GET /health/live), in one run. Starts tessera-identity directly on a free port
# over a temporary state dir bootstrapped by tsr-admin; tears down what it started.
# Usage: bench/authn/run.sh [BUILD_DIR]   (env: DURATION=10s CONNECTIONS=32 THREADS=1)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export TSR_BUILD_DIR=$(cd "${1:-$root/build}" && pwd)
export TSR_SOURCE_DIR=$root
dur=${DURATION:-10s}
conns=${CONNECTIONS:-32}
threads=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is not installed (make deps)"; exit 1; }

source "$root/tests/integration/lib.sh"
admin=$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin
ident=$TSR_BUILD_DIR/cmd/identity/tessera-identity
[ -x "$admin" ] && [ -x "$ident" ] || { echo "build tsr-admin and tessera-identity first"; exit 1; }

P=$(it_free_port_block) || { echo "no free port block"; exit 1; }
state=$(mktemp -d /tmp/tsr-bench-authn.XXXXXX)
ipid=""
cleanup() {
  if [ -n "$ipid" ]; then kill "$ipid" 2>/dev/null || true; wait "$ipid" 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT

"$admin" bootstrap --state-dir "$state" --url "http://127.0.0.1:$P" >/dev/null
cred=$state/local/credentials.json
key=$(jq -r .apiKey "$cred")
pw=$(jq -r .password "$cred")
# The benchmark measures the authn decision, not the rate limiter.
TSR_RATE_LIMIT_PER_MIN=0 TSR_STATE_DIR=$state TSR_SERVICE_PORT=$((P + 1)) \
  "$ident" >"$state/identity.log" 2>&1 &
ipid=$!
base="http://127.0.0.1:$((P + 1))"
for _ in $(seq 100); do
  curl -s -o /dev/null "$base/health/ready" && break
  sleep 0.1
done
host="127.0.0.1:$P"

login=$(jq -n --arg p "$pw" '{email: "admin@tessera.local", password: $p}')
cookie=$(curl -s -D - -o /dev/null -H "Host: $host" -H 'Content-Type: application/json' \
  -d "$login" "$base/api/v1/identity/login" | tr -d '\r' |
  sed -n 's/^[Ss]et-[Cc]ookie: \(tsr_session=[^;]*\).*/\1/p' | head -n1)
[ -n "$cookie" ] || { echo "login gave no session cookie"; cat "$state/identity.log"; exit 1; }

# What nginx's auth_request sends along: the original method and URI (a missing method counts
# as unsafe and a cookie without the CSRF token would then be refused).
orig=("X-Original-Method: GET" "X-Original-URI: /api/v1/users/me")
check() { # expect 200 from authn with the given header
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "${orig[0]}" -H "${orig[1]}" \
    -H "$1" "$base/internal/v1/authn")
  [ "$code" = 200 ] || { echo "authn with ${1%%:*} gave $code"; exit 1; }
}
check "Authorization: Bearer $key"
check "Cookie: $cookie"

run_wrk() { # url header... -> "rps p50_ms p99_ms non2xx"
  local url=$1 h args=()
  shift
  for h in "$@"; do args+=(-H "$h"); done
  wrk -t"$threads" -c"$conns" -d"$dur" --latency "${args[@]}" "$url" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad }'
}

read -r f_rps f_p50 f_p99 f_bad <<<"$(run_wrk "$base/health/live" "Host: $host")"
read -r k_rps k_p50 k_p99 k_bad <<<"$(run_wrk "$base/internal/v1/authn" "Host: $host" \
  "${orig[@]}" "Authorization: Bearer $key")"
read -r c_rps c_p50 c_p99 c_bad <<<"$(run_wrk "$base/internal/v1/authn" "Host: $host" \
  "${orig[@]}" "Cookie: $cookie")"
echo "bench/authn: GET /internal/v1/authn vs /health/live, wrk -t$threads -c$conns -d$dur, $(nproc) cores, same run"
printf '%-22s %10s %9s %9s %9s %8s\n' path "req/s" "p50 ms" "p99 ms" "non-2xx" "vs floor"
row() { awk -v n="$1" -v r="$2" -v a="$3" -v b="$4" -v x="$5" -v f="$f_rps" \
  'BEGIN { printf "%-22s %10s %9s %9s %9s %8.2f\n", n, r, a, b, x, r / f }'; }
row "health/live (floor)" "$f_rps" "$f_p50" "$f_p99" "$f_bad"
row "authn API key" "$k_rps" "$k_p50" "$k_p99" "$k_bad"
row "authn session cookie" "$c_rps" "$c_p50" "$c_p99" "$c_bad"
[ "$k_bad" = 0 ] && [ "$c_bad" = 0 ] || { echo "authn answered non-2xx under load"; exit 1; }
