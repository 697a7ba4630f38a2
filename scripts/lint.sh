#!/usr/bin/env bash
# House-style checks: clang-format conformance and banned functions in C sources.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files --cached --others --exclude-standard -- 'cmd/*.[ch]' 'pkg/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' | sort -u |
  while read -r f; do [ -f "$f" ] && echo "$f"; done)
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "lint: $f is not clang-formatted (run: make format)"; bad=1
  fi
done
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi)\s*\(' $files; then
  echo "lint: banned function used (strcpy strcat sprintf vsprintf gets strtok atoi)"; bad=1
fi
[ "$bad" = 0 ] && echo "lint: ok"
exit "$bad"
