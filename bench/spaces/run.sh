#!/usr/bin/env bash
# bench/spaces: list and get requests/s, p50 and p99 of the spaces service with 10,000 items in
# one tenant. First in-process (the whole request pipeline through tsr_httpd_inject, no
# sockets), then over HTTP with wrk on a local stack: direct to the service and through nginx
# (API key checked by identity on every request).
# Usage: bench/spaces/run.sh [BUILD_DIR]   (env: ITEMS=10000 DURATION=10s CONNECTIONS=16
# THREADS=2, INPROC_SECONDS=5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export TSR_BUILD_DIR=$(cd "${1:-$root/build}" && pwd)
export TSR_SOURCE_DIR=$root
items=${ITEMS:-10000}
dur=${DURATION:-10s}
conns=${CONNECTIONS:-16}
threads=${THREADS:-2}
bin=$TSR_BUILD_DIR/bench/spaces/bench_spaces
[ -x "$bin" ] || { echo "bench_spaces not built"; exit 1; }

"$bin" inproc "$items" "$threads" "${INPROC_SECONDS:-5}"

command -v wrk >/dev/null || { echo "wrk is not installed (make deps): HTTP part skipped"; exit 0; }
source "$root/tests/integration/lib.sh"
export TSR_RATE_LIMIT_PER_MIN=0
it_stack_up S
key=$(jq -r .apiKey "$S_STATE/local/credentials.json")
tenant=$(jq -r .tenantId "$S_STATE/local/credentials.json")
user=$(curl -fsS -H "Authorization: Bearer $key" "$S_URL/api/v1/users/me" | jq -r .id)
read -r space app <<<"$("$bin" seed "sqlite:$S_STATE/store.db" "file:$S_STATE/blobs" \
  "$tenant" "$user" "$items")"

run_wrk() { # url header... -> "rps p50_ms p99_ms"
  local u=$1; shift
  wrk -t"$threads" -c"$conns" -d"$dur" --latency "$@" "$u" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
direct="http://127.0.0.1:$((S_PORT + 2))"
# Direct calls carry the platform token identity mints for the key (services verify it).
dh=(-H "X-Tsr-Token: $(it_platform_jwt "$S_PORT" "$key")")
nh=(-H "Authorization: Bearer $key")
curl -fs "${dh[@]}" "$direct/api/v1/apps/$app" >/dev/null
curl -fs "${nh[@]}" "$S_URL/api/v1/apps/$app" >/dev/null
echo "bench/spaces over HTTP: $items items, wrk -t$threads -c$conns -d$dur, $(nproc) cores"
printf '%-40s %10s %10s %10s\n' request "req/s" "p50 ms" "p99 ms"
for p in "/api/v1/items?limit=100" "/api/v1/items?resourceType=app&spaceId=$space&limit=100" \
  "/api/v1/apps/$app" "/api/v1/items/$app"; do
  short=${p/$space/{space\}}; short=${short/$app/{id\}}
  read -r r50 a50 b50 <<<"$(run_wrk "$direct$p" "${dh[@]}")"
  printf '%-40s %10s %10s %10s\n' "direct  GET $short" "$r50" "$a50" "$b50"
  read -r r50 a50 b50 <<<"$(run_wrk "$S_URL$p" "${nh[@]}")"
  printf '%-40s %10s %10s %10s\n' "nginx   GET $short" "$r50" "$a50" "$b50"
done
