#!/usr/bin/env bash
# bench/crypto: AES-256-GCM seal/open MB/s (streaming and one-shot) next to `openssl speed -evp
# aes-256-gcm`, ES256/RS256 JWT sign and verify per second, argon2id hash time.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR}
"$build/bench/crypto/bench_crypto" --mb "${CRYPTO_BENCH_MB:-256}"
