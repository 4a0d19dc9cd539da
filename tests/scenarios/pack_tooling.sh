#!/usr/bin/env bash
# The pack tooling that explains: `aftersale run --explain` / `test -v` print each step's
# decisions with their provenance (docs/design.md#provenance), a failed expectation prints the
# history that led there, and `aftersale check` warns of hooks a merchant layer never asks.
# Runs the real binary from the source root, so that file:line paths are known.
set -uo pipefail
bin=$(realpath "$1") root=$2
cd "$root" || exit 1
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
has() { # NAME TEXT NEEDLE
  case "$2" in *"$3"*) echo "ok   $1";; *) echo "FAIL $1: lacks '$3' in:"; echo "$2"; fails=$((fails+1));; esac
}
out=$("$bin" run --explain plugins/fresh_food/tests/provenance_auto_agree.json 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL run --explain: exit $rc"; fails=$((fails+1)); }
has "explain names the step" "$out" "provenance_auto_agree.json: step 4 (at 1d2h)"
has "explain names rule, pack, hook, why" "$out" \
  'C1 +1d2h system agree requested -> refunding, decided by rule:auto_decide [category fresh_food@4 auto_decide], why: "a claim of at most 50 yuan with evidence: fresh food cannot wait for a reply"'
has "explain names the refund's parts" "$out" "refund 3000 fen (default; paid 3000, shipping fee 0, buyer's return shipping 0)"
has "explain names a fired deadline" "$out" "C2 +2d3h system auto_agree requested -> refunding, decided by deadline:merchant_response [category fresh_food@4 deadlines]"
has "the summary line is last" "$(printf '%s' "$out" | tail -n1)" "1 passed, 0 failed"
out=$("$bin" test -v plugins/fresh_food 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL test -v: exit $rc"; fails=$((fails+1)); }
has "test -v explains too" "$out" "decided by rule:auto_decide [category fresh_food@4 auto_decide]"
out=$("$bin" run --explain tests/scenarios/r1_6_merchant_hook_throws.json 2>&1)
has "a failed hook is explained with its file:line" "$out" \
  "failed, answer dropped [merchant s1-broken@1 auto_decide]: merchant rule failed and was dropped: s1-broken@1: hook auto_decide failed: tests/scenarios/rules/m_throws.lua:9: auto_decide exploded (at tests/scenarios/rules/m_throws.lua:9)"
# a wrong expectation: the failure line, then the history that led there, exit 1
sed -e 's/"refund_amount": 3000,/"refund_amount": 2999,/' -e 's/"pack": "fresh_food@4",$/"pack": "fresh_food@9",/' \
  plugins/fresh_food/tests/provenance_auto_agree.json > "$tmp/wrong.json"
out=$("$bin" run "$tmp/wrong.json" 2>&1); rc=$?
[ $rc -eq 1 ] || { echo "FAIL a failed expectation: exit $rc, expected 1"; fails=$((fails+1)); }
has "the failed value" "$out" "step 5 (at 1d2h): case C1: expected refund_amount 2999, found 3000"
has "the failed entry" "$out" 'case C1: expected a history entry {"action":"agree"'
has "the history under it" "$out" "  the history of C1:
  C1 +1d2h buyer:B1 open (new) -> requested, decided by buyer:B1"
has "the decision behind it" "$out" "decided by rule:auto_decide [category fresh_food@4 auto_decide]"
# check: a pack without categories defining order_check is warned about, still valid (0)
printf 'return { name = "m", version = "1", order_check = function(o) return nil end,\n  priority = function(c, o) return 2 end }\n' > "$tmp/m.lua"
out=$("$bin" check "$tmp/m.lua" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL check with a warning: exit $rc, expected 0"; fails=$((fails+1)); }
has "check warns of an ignored hook" "$out" "warning: order_check: an order is checked by the platform and category packs only"
out=$("$bin" check plugins/electronics/electronics.lua 2>&1)
case "$out" in *warning*) echo "FAIL a category pack's order_check is not warned about: $out"; fails=$((fails+1));; *) echo "ok   no warning for a category pack";; esac
exit $fails
