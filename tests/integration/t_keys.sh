#!/usr/bin/env bash
# Every key "sftprelayd -K" prints (core, each source, sink and transform,
# the server) is documented in sftprelay.conf(5): a new key without an
# entry there fails here.  A key of a group list ("server.users[].name") is
# documented by its own name inside that key's entry.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${abs_top_builddir:=$top}"
page=$top/man/sftprelay.conf.5
keys=$("$abs_top_builddir/sftprelayd" -K | awk '/^  [a-z]/ { print $1 }')
[ -n "$keys" ] || { echo "FAIL: sftprelayd -K printed no keys"; exit 1; }
n=0 missing=0
for key in $keys; do
    case $key in
    *'[].'*) name=${key##*.} ;;
    *) name=$key ;;
    esac
    if ! grep -qxF ".It Cm $name" "$page"; then
        echo "FAIL: $key: no \".It Cm $name\" in man/sftprelay.conf.5"
        missing=$((missing + 1))
    fi
    n=$((n + 1))
done
[ "$missing" = 0 ] || { echo "$((n - missing)) passed, $missing failed"; exit 1; }
echo "$n passed, 0 failed"
