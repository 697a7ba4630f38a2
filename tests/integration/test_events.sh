#!/usr/bin/env bash
# pkg/events across separate processes through cmd/devkafka (librdkafka mock cluster):
#   1. events produced by one process are consumed by another, each applied once;
#   2. a consumer killed after its effect but before the commit gets the message again and
#      the dedupe set applies it once;
#   3. a producer facing injected broker errors, leader changes and all brokers down for a
#      while retries and loses nothing, keeping per-key order;
#   4. a process killed between its store write and the publish, and one killed after the
#      publish but before marking the outbox, still gets every event out exactly once.
# Every process keeps its state in pkg/store (SQLite files under $WORK): the app's documents
# are committed with their events (store outbox, relayed through tsr_store_events_outbox) and
# the consumers' effects with their processed ids (tsr_store_events_dedupe). Helpers:
# tests/integration/events/evtool. Asserts counts, never timings; waits are bounded so a
# failure ends the test instead of hanging it.
set -euo pipefail

BUILD=${TSR_BUILD_DIR:?TSR_BUILD_DIR must point at the build directory}
DEVKAFKA=$BUILD/cmd/devkafka/devkafka
EVTOOL=$BUILD/tests/integration/events/evtool
for b in "$DEVKAFKA" "$EVTOOL"; do
  [ -x "$b" ] || { echo "FAIL: $b not built (tests/integration/events must be built)"; exit 1; }
done
command -v jq >/dev/null || { echo "FAIL: jq required"; exit 1; }

WORK=$(mktemp -d /tmp/tsr-it-events.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "--- logs (failure) ---"
    for f in "$WORK"/*.log; do echo "== $f"; tail -n 30 "$f"; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $(date +%T) $*"; }

# wait_for <seconds> <command...>: poll a condition every 0.2 s.
wait_for() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# ctl <command...>: one line to devkafka's control port, echo the reply, fail unless "ok".
ctl() {
  local reply
  exec 9<>"/dev/tcp/127.0.0.1/$CTL_PORT"
  printf '%s\n' "$*" >&9
  IFS= read -r reply <&9
  exec 9>&-
  echo "$reply"
  [[ $reply == ok* ]] || fail "devkafka control '$*': $reply"
}

# check <db>: the counts of a store file as JSON (evtool check).
check() { "$EVTOOL" check --store "sqlite:$1"; }

# expect_once <db> <n>: every event applied exactly once, order kept per key.
expect_once() {
  local out
  out=$(check "$1")
  echo "check $1: $out"
  [ "$(jq .effects <<<"$out")" = "$2" ] || fail "$1: effects != $2"
  [ "$(jq .distinct <<<"$out")" = "$2" ] || fail "$1: distinct != $2"
  [ "$(jq .orderOk <<<"$out")" = true ] || fail "$1: per-key order broken"
}

# start_consumer <name> <group> <topic> <count> [env...]: background consumer, waits for its
# group assignment (joins take seconds; producing before would race the assignment).
start_consumer() {
  local name=$1 group=$2 topic=$3 count=$4; shift 4
  rm -f "$WORK/$name.ready"
  env "$@" "$EVTOOL" consume --bootstrap "$BOOTSTRAP" --group "$group" --topic "$topic" \
    --store "sqlite:$WORK/$name.db" --count "$count" --timeout 90 --ready "$WORK/$name.ready" \
    >>"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  wait_for 30 test -e "$WORK/$name.ready" || fail "$name: no group assignment within 30 s"
}

step "start devkafka"
"$DEVKAFKA" --state-dir "$WORK/state" --brokers 3 >"$WORK/devkafka.log" 2>&1 &
DK_PID=$!
PIDS+=("$DK_PID")
wait_for 20 test -s "$WORK/state/kafka/bootstrap" || fail "devkafka wrote no bootstrap file"
BOOTSTRAP=$(cat "$WORK/state/kafka/bootstrap")
CTL_PORT=$(cat "$WORK/state/kafka/control")
echo "bootstrap=$BOOTSTRAP control=$CTL_PORT"
ctl ping
ctl topics | grep -q "tessera.apps:8" || fail "catalogue topics missing"
for t in it.cross it.crash it.errors it.outbox; do ctl create-topic "$t" 4 >/dev/null; done

step "1. produced by one process, consumed by another"
start_consumer c1 g.cross it.cross 50
"$EVTOOL" produce --bootstrap "$BOOTSTRAP" --topic it.cross --count 50 --prefix cross \
  >>"$WORK/p1.log" 2>&1 || fail "producer process failed"
wait "$LAST_PID" || fail "consumer c1 did not apply 50 events"
expect_once "$WORK/c1.db" 50

step "2. consumer killed after its effect, before the commit"
start_consumer c2 g.crash it.crash 30 TSR_FAULTPOINT=consumer.after_effect:10
"$EVTOOL" produce --bootstrap "$BOOTSTRAP" --topic it.crash --count 30 --prefix crash \
  >>"$WORK/p2.log" 2>&1 || fail "producer process failed"
set +e
wait "$LAST_PID"
rc=$?
set -e
[ $rc -eq 137 ] || fail "consumer c2 should have been killed at the faultpoint (rc=$rc)"
out=$(check "$WORK/c2.db")
[ "$(jq .effects <<<"$out")" = 10 ] || fail "c2 before restart: $out"
# The restarted member first waits out the dead one's session (6 s), then gets the
# uncommitted 10th message again.
start_consumer c2 g.crash it.crash 30
wait "$LAST_PID" || fail "restarted consumer c2 did not finish"
expect_once "$WORK/c2.db" 30
dups=$(jq .duplicates <<<"$(check "$WORK/c2.db")")
[ "$dups" -ge 1 ] || fail "the message handled before the crash was not redelivered"
echo "redelivered and skipped by dedupe: $dups"

step "3. producer against injected broker errors and brokers down"
start_consumer c3 g.errors it.errors 120
ctl push-errors produce NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS_AFTER_APPEND \
  REQUEST_TIMED_OUT LEADER_NOT_AVAILABLE NOT_LEADER_FOR_PARTITION _TRANSPORT
ctl broker-push-errors all produce NOT_ENOUGH_REPLICAS REQUEST_TIMED_OUT
ctl leader it.errors 0 2 # leader changes: the producer must follow them
ctl leader it.errors 1 3
"$EVTOOL" produce --bootstrap "$BOOTSTRAP" --topic it.errors --count 60 --prefix err1 \
  >>"$WORK/p3.log" 2>&1 || fail "producer lost messages under injected errors"
left=$(ctl errors-left all produce | awk '{print $2}')
[ "$left" -lt 6 ] || fail "no injected broker error was hit (left=$left of 6)"
echo "per-broker injected produce errors consumed by the producer: $((6 - left)) of 6"
ctl broker-down all
"$EVTOOL" produce --bootstrap "$BOOTSTRAP" --topic it.errors --count 60 --prefix err2 \
  >>"$WORK/p3.log" 2>&1 &
P3=$!
PIDS+=("$P3")
sleep 3 # brokers stay down while the producer retries (not an assertion)
ctl broker-up all
wait "$P3" || fail "producer lost messages across a broker outage"
wait "$LAST_PID" || fail "consumer c3 did not apply 120 events"
expect_once "$WORK/c3.db" 120

step "4. outbox: killed between store write and publish, and after publish before mark"
start_consumer c4 g.outbox it.outbox 40
set +e
TSR_FAULTPOINT=outbox.after_write:15 "$EVTOOL" app --store "sqlite:$WORK/app.db" \
  --bootstrap "$BOOTSTRAP" --topic it.outbox --count 40 --prefix ob >>"$WORK/app.log" 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "app should have been killed after its 15th write (rc=$rc)"
out=$(check "$WORK/app.db")
echo "app after crash: $out"
[ "$(jq .writes <<<"$out")" = 15 ] || fail "15 committed writes expected"
[ "$(jq .outboxUnsent <<<"$out")" = 15 ] || fail "nothing should have been published yet"
set +e
TSR_FAULTPOINT=relay.after_publish "$EVTOOL" app --store "sqlite:$WORK/app.db" \
  --bootstrap "$BOOTSTRAP" --topic it.outbox --count 40 --prefix ob >>"$WORK/app.log" 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "app should have been killed after its first publish (rc=$rc)"
out=$(check "$WORK/app.db")
echo "app after second crash: $out"
[ "$(jq .writes <<<"$out")" = 40 ] || fail "40 committed writes expected"
[ "$(jq .outboxUnsent <<<"$out")" = 40 ] || fail "published but unmarked rows must stay unsent"
"$EVTOOL" app --store "sqlite:$WORK/app.db" --bootstrap "$BOOTSTRAP" --topic it.outbox --count 40 \
  --prefix ob >>"$WORK/app.log" 2>&1 || fail "app restart did not drain the outbox"
out=$(check "$WORK/app.db")
[ "$(jq .outboxUnsent <<<"$out")" = 0 ] || fail "outbox not drained: $out"
wait "$LAST_PID" || fail "consumer c4 did not apply 40 events"
expect_once "$WORK/c4.db" 40
dups=$(jq .duplicates <<<"$(check "$WORK/c4.db")")
[ "$dups" -ge 1 ] || fail "rows published before the relay crash were not republished"
echo "republished after the relay crash and skipped by dedupe: $dups"

step "devkafka stops on SIGTERM with exit 0"
kill -TERM "$DK_PID"
wait "$DK_PID" || fail "devkafka exit status $?"
[ ! -e "$WORK/state/kafka/bootstrap" ] || fail "devkafka left its bootstrap file behind"
PIDS=()
echo "PASS test_events"
