#!/usr/bin/env bash
# Each file in bad/ is broken on purpose: `aftersale run` must exit 2 without crashing and
# name the file (and the step, where the file has one) in its message. The expected words are
# in the file's first step's comment-free sibling: bad/NAME.json.expect holds a fixed string
# the message must contain.
set -uo pipefail
bin=$1 dir=$2
fails=0
for f in "$dir"/*.json; do
  want=$(cat "$f.expect")
  out=$("$bin" run "$f" 2>&1)
  rc=$?
  if [ $rc -ne 2 ]; then
    echo "FAIL $f: exit status $rc, expected 2"; fails=$((fails+1)); continue
  fi
  case "$out" in
    *"$f"*"$want"*) echo "ok   $(basename "$f"): $(echo "$out" | head -n1)";;
    *) echo "FAIL $f: message lacks '$want': $out"; fails=$((fails+1));;
  esac
done
# A missing file is a read error too.
out=$("$bin" run "$dir/does-not-exist.json" 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL missing file: exit $rc"; fails=$((fails+1)); }
exit $fails
