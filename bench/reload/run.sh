#!/usr/bin/env bash
# bench/reload: queue-to-start latency and reloads per minute with 2 workers, end to end through
# the store outbox, the relay, cmd/devkafka and the reloader consumer group (stand-in job).
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
"$build/bench/reload/reload_bench" bench --devkafka "$build/cmd/devkafka/devkafka" \
  --count "${RELOAD_BENCH_COUNT:-200}" --workers 2 --job-ms "${RELOAD_BENCH_JOB_MS:-0}"
