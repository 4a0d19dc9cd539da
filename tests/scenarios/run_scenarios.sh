#!/usr/bin/env bash
# Runs every shared contract scenario and every scenario of this project through the real
# `aftersale run`, which exits 0 only when every expectation holds.
set -euo pipefail
shopt -s nullglob
bin=$1 root=$2
files=("$root"/tests/scenarios/*.json)
if [ -d "$root/../shared/scenarios" ]; then
  files=("$root"/../shared/scenarios/*.json "${files[@]}")
fi
exec "$bin" run "${files[@]}"
