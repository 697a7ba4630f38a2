#!/usr/bin/env bash
# make fuzz: build every libFuzzer target under tests/fuzz with clang (ASan + UBSan) and run
# each for FUZZ_SECONDS (default 60) on its corpus in build-fuzz/corpus/<target>, seeded
# from tests/fuzz/seeds/<target> when present. Crashes are written next to the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTSR_FUZZ=ON -DTSR_SANITIZE=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)"
status=0
for bin in $(find build-fuzz/tests/fuzz -maxdepth 1 -type f -executable -name 'fuzz_*' | sort); do
  name=$(basename "$bin")
  corpus=build-fuzz/corpus/$name
  mkdir -p "$corpus" build-fuzz/crashes
  [ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "== $name (${secs}s)"
  if ! "$bin" -max_total_time="$secs" -artifact_prefix=build-fuzz/crashes/"$name"- "$corpus" \
      > build-fuzz/"$name".log 2>&1; then
    echo "$name: crash, see build-fuzz/$name.log and build-fuzz/crashes/"; status=1
  fi
  tail -n 1 build-fuzz/"$name".log
done
exit $status
