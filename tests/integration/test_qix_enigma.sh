#!/usr/bin/env bash
# pkg/qix with the real enigma.js 2.15 client (npm, tests/qix-node, installed by
# scripts/deps.sh): the unit test binary's fixture server (`test_qix --serve`, an in-memory
# test backend, not product code) on a free loopback port, driven by
# tests/qix-node/enigma_test.js: OnConnected, Global methods, OpenDoc, doc and object methods,
# named parameters, change notifications (on responses and unsolicited), error codes, close
# arrays, close 4204, the 401 before the upgrade, and SIGTERM during a session: close 4003,
# on which enigma (suspendOnClose) suspends, and the server exits 0.
set -euo pipefail

BUILD=${TSR_BUILD_DIR:?TSR_BUILD_DIR must point at the build directory}
SRC=${TSR_SOURCE_DIR:?TSR_SOURCE_DIR must point at the source directory}
SERVER=$BUILD/tests/test_qix
NODE_DIR=$SRC/tests/qix-node
[ -x "$SERVER" ] || { echo "FAIL: $SERVER not built"; exit 1; }
command -v node >/dev/null || { echo "FAIL: node required (scripts/deps.sh)"; exit 1; }
[ -d "$NODE_DIR/node_modules/enigma.js" ] ||
  { echo "FAIL: $NODE_DIR/node_modules missing: run scripts/deps.sh"; exit 1; }

WORK=$(mktemp -d /tmp/tsr-it-qix.XXXXXX)
PID=""
cleanup() {
  local rc=$?
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ $rc -ne 0 ]; then echo "--- server log ---"; tail -n 30 "$WORK/server.log" || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

"$SERVER" --serve "$WORK/port" 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 100); do
  [ -s "$WORK/port" ] && break
  kill -0 "$PID" 2>/dev/null || { echo "FAIL: fixture server exited"; exit 1; }
  sleep 0.05
done
[ -s "$WORK/port" ] || { echo "FAIL: fixture server did not start"; exit 1; }

# The last check sends the server SIGTERM itself (QIX_SERVER_PID) with a session open.
QIX_PORT=$(cat "$WORK/port") QIX_SERVER_PID=$PID timeout 120 node "$NODE_DIR/enigma_test.js"

# Graceful stop: the drain closed the session with 4003 and the server exits 0.
rc=0
wait "$PID" || rc=$?
PID=""
[ $rc -eq 0 ] || { echo "FAIL: fixture server exited $rc after SIGTERM"; exit 1; }
echo "ok - fixture server drained on SIGTERM"
