#!/usr/bin/env bash
# Install what Tessera needs to build, test and run on Debian 12: Debian packages (apt) and
# the npm packages of every folder listed in scripts/npm-dirs.txt (npm ci from the committed
# lock file). Idempotent: installs only what is missing, so it is cheap to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake pkg-config clang clang-format
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libssl-dev
  libmongoc-dev libbson-dev librdkafka-dev kcat
  check libwslay-dev libical-dev libzstd-dev libcurl4-openssl-dev
  libargon2-dev
  nginx curl jq wrk nodejs npm
  chromium  # browser tests (tests/e2e, driven by npm playwright-core)
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node and npm may come from outside Debian (e.g. a preinstalled Node); accept working ones.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ -f scripts/npm-dirs.txt ]; then
  while read -r dir; do
    case "$dir" in ''|'#'*) continue ;; esac
    [ -f "$dir/package-lock.json" ] || { echo "deps: $dir has no package-lock.json" >&2; exit 1; }
    stamp="$dir/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
      echo "deps: npm ci in $dir"
      (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
  done < scripts/npm-dirs.txt
fi
echo "deps: ok"
