#!/usr/bin/env bash
# bench/http: requests/s and p99 latency of a trivial JSON route (GET /health/live of the
# identity service), hit directly and through the nginx ingress, side by side in one run.
# Usage: bench/http/run.sh [BUILD_DIR]   (env: DURATION=10s CONNECTIONS=32 THREADS=1)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export TSR_BUILD_DIR=$(cd "${1:-$root/build}" && pwd)
export TSR_SOURCE_DIR=$root
dur=${DURATION:-10s}
conns=${CONNECTIONS:-32}
threads=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is not installed (make deps)"; exit 1; }

source "$root/tests/integration/lib.sh"
# The benchmark measures the HTTP path, not the rate limiter.
export TSR_RATE_LIMIT_PER_MIN=0
it_stack_up S

run_wrk() { # url -> "rps p50_ms p99_ms"
  wrk -t"$threads" -c"$conns" -d"$dur" --latency "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

direct="http://127.0.0.1:$((S_PORT + 1))/health/live"
via="$S_URL/health/identity/live"
curl -fs "$direct" >/dev/null && curl -fs "$via" >/dev/null
read -r d_rps d_p50 d_p99 <<<"$(run_wrk "$direct")"
read -r n_rps n_p50 n_p99 <<<"$(run_wrk "$via")"
echo "bench/http: GET /health/live, wrk -t$threads -c$conns -d$dur, $(nproc) cores, same run"
printf '%-14s %12s %10s %10s\n' path "req/s" "p50 ms" "p99 ms"
printf '%-14s %12s %10s %10s\n' direct "$d_rps" "$d_p50" "$d_p99"
printf '%-14s %12s %10s %10s\n' "via nginx" "$n_rps" "$n_p50" "$n_p99"
awk -v a="$d_rps" -v b="$n_rps" 'BEGIN { printf "ratio direct/nginx req/s: %.2f\n", a / b }'
