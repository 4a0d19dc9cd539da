#!/usr/bin/env bash
# scripts/arrows on fake runtime trees: a tree whose includes all point down passes; each
# wrong arrow, however it is spelled, fails with exit 1 and names its file and line.
# Argument: the arrows script.
set -uo pipefail
arrows=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# A tree with every kind of allowed arrow: own headers, the layers below by each spelling
# (relative, from an include dir, angled), the public headers quoted and angled, system
# headers, a core header named like a system one, cli onto api. Every header a bad include
# below names exists, or it would count as a system header.
good() { # dir
  local r=$1
  mkdir -p "$r"/{include/aftersale,core,lua,native,store,request,lib,api,cli}
  printf "inc = include_directories('include')\ndep = include_directories('.')\n" >"$r/meson.build"
  printf '#include <stddef.h>\n' >"$r/include/aftersale/base.h"
  printf '#include "aftersale/base.h"\n' >"$r/include/aftersale/top.h"
  printf '#include "aftersale/top.h"\n#include "limits.h"\n' >"$r/core/core.h"
  printf '#include <limits.h>\n' >"$r/core/limits.h"
  printf '#include "core.h"\n#include <stdio.h>\n' >"$r/core/core.c"
  printf '#include "../core/core.h"\n' >"$r/store/store.h"
  printf '#include "store.h"\n#include "core/core.h"\n' >"$r/store/store.c"
  printf '#include "../core/core.h"\n' >"$r/request/request.c"
  printf '#include <core/core.h>\n' >"$r/lua/lua_engine.c"
  printf '#include "../core/core.h"\n' >"$r/native/native.c"
  printf '#include "../core/core.h"\n' >"$r/native/native.h"
  printf '#include "../core/core.h"\n' >"$r/request/request.h"
  printf '#include "../store/store.h"\n#include "../core/core.h"\n' >"$r/lib/lib.c"
  printf '#include "../core/core.h"\n' >"$r/lib/lib.h"
  printf '#include <aftersale/top.h>\n' >"$r/api/http.h"
  printf '#include "http.h"\n#include "aftersale/base.h"\n#include <jansson.h>\n' >"$r/api/http.c"
  printf '#include "cli.h"\n#include "../api/http.h"\n#include <aftersale/top.h>\n' >"$r/cli/main.c"
  printf '#include "api/http.h"\n' >"$r/cli/cli.h"
}

expect_ok() { # what, dir
  local out rc
  out=$("$arrows" "$2" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "arrows: ok" ]; then
    echo "ok   $1"
  else
    echo "FAIL $1: exit $rc, expected 0: $out"; fails=$((fails + 1))
  fi
}

n=0
expect_bad() { # what, file (relative to the tree), include line to add
  n=$((n + 1))
  local r=$tmp/bad$n out rc
  good "$r"
  mkdir -p "$(dirname "$r/$2")"
  printf '/* a comment line */\n%s\n' "$3" >>"$r/$2"
  local line
  line=$(wc -l <"$r/$2")
  out=$("$arrows" "$r" 2>&1); rc=$?
  if [ $rc -ne 1 ]; then
    echo "FAIL $1: exit $rc, expected 1: $out"; fails=$((fails + 1))
  elif ! grep -qF "$r/$2:$line:" <<<"$out"; then
    echo "FAIL $1: output does not name $2:$line: $out"; fails=$((fails + 1))
  elif [ "$(grep -c ':[0-9]*: ' <<<"$out")" -ne 1 ]; then
    echo "FAIL $1: expected exactly one wrong arrow: $out"; fails=$((fails + 1))
  else
    echo "ok   $1: $(head -n1 <<<"$out" | sed "s|$r/||")"
  fi
}

good "$tmp/good"
expect_ok "a tree whose arrows all point down" "$tmp/good"
expect_ok "ROOT given with a trailing slash" "$tmp/good/"

expect_bad "public header onto core" include/aftersale/top.h '#include "../../core/core.h"'
expect_bad "core onto lib (relative)" core/core.c '#include "../lib/lib.h"'
expect_bad "core onto store (from the include dir)" core/core.c '#include "store/store.h"'
expect_bad "core onto api (angled)" core/limits.h '#include <api/http.h>'
expect_bad "request onto store, its neighbour" request/request.c '#include "../store/store.h"'
expect_bad "lua onto native" lua/lua_engine.c '#include "native/native.h"'
expect_bad "store onto lib" store/store.c '#include "../lib/lib.h"'
expect_bad "lib onto api" lib/lib.c '#include "../api/http.h"'
expect_bad "lib onto cli" lib/lib.c '#include <cli/cli.h>'
expect_bad "api onto core (dir-relative)" api/http.c '#include "../core/core.h"'
expect_bad "api onto core (include dir)" api/http.h '#include "core/core.h"'
expect_bad "api onto lib" api/http.c '#include "../lib/lib.h"'
expect_bad "api onto cli" api/http.c '#include "../cli/cli.h"'
expect_bad "cli onto store" cli/main.c '#include <store/store.h>'
expect_bad "cli onto request" cli/main.c '#include "../request/request.h"'

# A directory the layer table does not place fails as a whole, not per include.
good "$tmp/extra"
mkdir "$tmp/extra/extra" && printf '#include <stdio.h>\n' >"$tmp/extra/extra/x.c"
out=$("$arrows" "$tmp/extra" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -qF "$tmp/extra/extra/x.c:1: not in any layer" <<<"$out"; then
  echo "ok   a directory in no layer"
else
  echo "FAIL a directory in no layer: exit $rc: $out"; fails=$((fails + 1))
fi

exit $fails
