#!/usr/bin/env bash
# bench/events: produce/consume events/s and end-to-end latency p50/p99 through cmd/devkafka.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
"$build/bench/events/bench_events" --devkafka "$build/cmd/devkafka/devkafka" \
  --count "${EVENTS_BENCH_COUNT:-50000}" --rate "${EVENTS_BENCH_RATE:-1000}"
