#!/usr/bin/env bash
# The MongoDB code paths of pkg/blob (GridFS) and pkg/store against smartmongo, the
# MongoDB-wire test server from npm @push.rocks/smartmongo (tests/mongo/server.mjs, in memory,
# on a free loopback port). smartmongo is not MongoDB: the store contract cases it cannot pass
# (it enforces no unique indexes) are skipped by name in tests/unit/test_store.c. To run the
# same suites against a real MongoDB, see README.md ("The MongoDB code paths").
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

MONGO_DIR="$TSR_SOURCE_DIR/tests/mongo"
[ -d "$MONGO_DIR/node_modules/@push.rocks/smartmongo" ] ||
  it_fail "smartmongo not installed: run scripts/deps.sh (npm ci in tests/mongo)"
for bin in test_blob test_store; do
  [ -x "$TSR_BUILD_DIR/tests/$bin" ] || it_fail "$TSR_BUILD_DIR/tests/$bin not built"
done

WORK=$(mktemp -d /tmp/tsr-it-mongo.XXXXXX)
SERVER_PID=""
mongo_cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  it_cleanup
}
trap mongo_cleanup EXIT

node "$MONGO_DIR/server.mjs" "$WORK/uri" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/uri" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || it_fail "smartmongo exited: $(cat "$WORK/server.log")"
  sleep 0.1
done
[ -s "$WORK/uri" ] || it_fail "smartmongo did not start within 10 s"
URI=$(cat "$WORK/uri")
it_ok "smartmongo (MongoDB-wire test server) at $URI"

# pkg/blob: every backend case against files and GridFS.
env -u TSR_STORE_TEST_SMARTMONGO_URI TSR_MONGODB_URI="$URI" CK_RUN_CASE=backends \
  "$TSR_BUILD_DIR/tests/test_blob" >"$WORK/blob.log" 2>&1 ||
  { cat "$WORK/blob.log" >&2; it_fail "test_blob against smartmongo GridFS"; }
grep -q "GridFS backend at" "$WORK/blob.log" || it_fail "test_blob did not run the GridFS cases"
it_ok "pkg/blob on GridFS: $(grep -E '^[0-9]+%' "$WORK/blob.log")"

# pkg/store: the contract suite on the MongoDB backend, smartmongo's skip list applied.
env -u TSR_MONGODB_URI TSR_STORE_TEST_SMARTMONGO_URI="$URI" CK_RUN_CASE=smartmongo-contract \
  "$TSR_BUILD_DIR/tests/test_store" >"$WORK/store.log" 2>&1 ||
  { cat "$WORK/store.log" >&2; it_fail "store contract suite against smartmongo"; }
grep -qE '^100%: Checks: [1-9]' "$WORK/store.log" || it_fail "no store contract case ran"
it_ok "pkg/store MongoDB backend: $(grep -E '^[0-9]+%' "$WORK/store.log")"
grep '^SKIP' "$WORK/store.log" | sed 's/^/  /' || true

kill "$SERVER_PID"
wait "$SERVER_PID" || it_fail "smartmongo did not stop cleanly on SIGTERM"
SERVER_PID=""
it_ok "smartmongo stopped"
