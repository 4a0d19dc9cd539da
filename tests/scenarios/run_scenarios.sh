#!/usr/bin/env bash
# Runs the public contract scenarios (tests/scenarios/public), every scenario of this project
# and every pack's own tests through the real `aftersale run`, which exits 0 only when every
# expectation holds. Extra arguments (e.g. --native electronics) go to `aftersale run`.
set -euo pipefail
shopt -s nullglob
bin=$1 root=$2
shift 2
files=("$root"/tests/scenarios/public/*.json "$root"/tests/scenarios/*.json
       "$root"/plugins/*/tests/*.json)
exec "$bin" run "$@" "${files[@]}"
