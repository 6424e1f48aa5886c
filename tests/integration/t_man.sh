#!/usr/bin/env bash
# The man pages are clean under mandoc -Tlint.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v mandoc >/dev/null || { echo "mandoc missing"; exit 1; }
n=0
for page in "$top"/man/*.[158]; do
    out=$(mandoc -Tlint -W warning "$page" 2>&1 || true)
    [ -z "$out" ] || { echo "FAIL: $page"; echo "$out"; exit 1; }
    n=$((n + 1))
done
echo "$n passed, 0 failed"
