# Shared helpers for integration tests (sourced). Each test starts its own local stack on a
# free port block with its own state dir and tears it down on exit.
set -euo pipefail
: "${TSR_SOURCE_DIR:?}" "${TSR_BUILD_DIR:?}"
export TSR_BUILD_DIR TSR_SOURCE_DIR

it_fail() { echo "FAIL: $*" >&2; exit 1; }
it_ok() { echo "ok - $*"; }

# A base port P such that P..P+9 are all free on loopback. Below Linux's ephemeral range
# (32768+), so no outgoing connection or port-0 listener (devkafka's brokers) takes one of them
# between this check and the bind.
it_free_port_block() {
  local tries=0 p i busy
  while [ $tries -lt 50 ]; do
    p=$((20000 + (RANDOM % 1270) * 10))
    busy=0
    for i in $(seq 0 9); do
      if (exec 3<>/dev/tcp/127.0.0.1/$((p + i))) 2>/dev/null; then busy=1; break; fi
    done
    [ $busy = 0 ] && { echo "$p"; return 0; }
    tries=$((tries + 1))
  done
  return 1
}

# it_stack_up VAR_PREFIX: starts a stack; sets ${prefix}_PORT, ${prefix}_STATE, ${prefix}_URL.
IT_STACKS=()
# Another process may still take a port of the block before a service binds it: then the
# stack is torn down and started again on another block (3 attempts).
it_stack_up() {
  local port state attempt
  for attempt in 1 2 3; do
    port=$(it_free_port_block) || it_fail "no free port block"
    state=$(mktemp -d /tmp/tsr-it.XXXXXX)
    IT_STACKS+=("$port:$state")
    if TSR_PORT=$port TSR_STATE_DIR=$state "$TSR_SOURCE_DIR/deploy/local/stack" up >/dev/null; then
      break
    fi
    if [ $attempt = 3 ] || ! grep -qsiE 'address already in use|cannot listen|bind\(\)' \
        "$state"/local/logs/*.log "$state"/local/nginx/logs/error.log; then
      cat "$state"/local/logs/*.log >&2 2>/dev/null || true
      it_fail "stack up"
    fi
    echo "# stack up on port $port hit a port in use; retrying on another block" >&2
    TSR_PORT=$port TSR_STATE_DIR=$state "$TSR_SOURCE_DIR/deploy/local/stack" down >/dev/null 2>&1 || true
  done
  printf -v "$1_PORT" '%s' "$port"
  printf -v "$1_STATE" '%s' "$state"
  printf -v "$1_URL" '%s' "http://127.0.0.1:$port"
}

it_cleanup() {
  local s port state
  for s in "${IT_STACKS[@]+"${IT_STACKS[@]}"}"; do
    port=${s%%:*}; state=${s#*:}
    TSR_PORT=$port TSR_STATE_DIR=$state "$TSR_SOURCE_DIR/deploy/local/stack" down >/dev/null 2>&1 || true
    rm -rf "$state"
  done
}
trap it_cleanup EXIT

# it_expect_status URL STATUS [curl args...]
it_expect_status() {
  local url=$1 want=$2; shift 2
  local got
  got=$(curl -s -o /tmp/it-body.$$ -w '%{http_code}' "$@" "$url") || true
  [ "$got" = "$want" ] || it_fail "$url: status $got, want $want: $(head -c 400 /tmp/it-body.$$)"
}

# it_expect_error_body STATUS: the last body has the platform's error shape for STATUS.
it_expect_error_body() {
  jq -e --arg s "$1" '.errors[0].status == $s and (.errors[0].code == "HTTP-" + $s)
      and (.errors[0].title | length > 0) and (.errors[0].detail | length > 0)
      and (.traceId | length > 0)' /tmp/it-body.$$ >/dev/null ||
    it_fail "not an error body for $1: $(cat /tmp/it-body.$$)"
}

# it_auth_env STATE: the auth knobs a stack gave its services (KEY=VALUE words), for a test that
# starts a service binary itself: env $(it_auth_env "$A_STATE") ... tessera-<service>
it_auth_env() { cat "$1/local/auth.env"; }

# it_platform_jwt PORT API_KEY: the platform JWT identity mints for that key (what nginx forwards
# as X-Tsr-Token), for calling a service directly without the ingress; empty when refused.
it_platform_jwt() {
  curl -s -D - -o /dev/null -H "Host: 127.0.0.1:$1" -H "Authorization: Bearer $2" \
    -H 'X-Original-Method: GET' "http://127.0.0.1:$(($1 + 1))/internal/v1/authn" |
    tr -d '\r' | sed -n 's/^[Xx]-[Tt]sr-[Tt]oken: //p'
}
