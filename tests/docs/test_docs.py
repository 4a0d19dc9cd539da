"""The project's docs kept true: docs/design.md's tables against the code's own lists, and
every link and section reference in the tree against the headings it names.

What is compared, and with what:
  - the states (with their deadline and terminal mark), the deadlines (the system action each
    fires and whose window it is), the actions by role, the case types, reasons and remedies of
    docs/design.md against the X-macro lists of runtime/core/model.h;
  - the error codes of docs/design.md, in order, against AS_ERRNO_MAP of
    runtime/include/aftersale/error.h;
  - the limits table of docs/design.md against runtime/core/limits.h, and the Python tests'
    copy of those limits (tests/api/limits_table.py) against the same header;
  - every Markdown link [..](file.md#anchor) in README.md and docs/, and every
    `docs/NAME.md#anchor` a comment or message anywhere in the tree cites, against the headings
    of that file (GitHub's anchor rule);
  - every command `aftersale --help` lists against the man page and the README.

Usage: test_docs.py SOURCE_ROOT AFTERSALE
Prints one line per finding and the summary line 'N passed, M failed'; exit 1 on a finding."""

import os
import re
import subprocess
import sys

ROOT, AFTERSALE = sys.argv[1], sys.argv[2]
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL %s%s" % (name, ": " + detail if detail else ""))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def xmacro(text, name):
    """The rows XX(a, b, ...) of the X-macro list `name`, as lists of stripped arguments."""
    m = re.search(r"#define %s\(XX\)(.*?)(?:\n\s*\n|\n#)" % name, text, re.S)
    if m is None:
        raise SystemExit("no %s list" % name)
    rows = []
    for args in re.findall(r"XX\(([^()]*(?:\([^()]*\)[^()]*)*)\)", m.group(1)):
        rows.append([a.strip() for a in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", args)])
    return rows


def section(md, heading):
    """The text under `heading` (a whole heading line) up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = md.split("\n")
    start = lines.index(heading) + 1
    out = []
    for line in lines[start:]:
        m = re.match(r"(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    return "\n".join(out)


def tables(text):
    """The tables of `text`, each a list of rows of cells (header and rule rows dropped)."""
    found, cur = [], []
    for line in text.split("\n") + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            found.append(cur[2:])
            cur = []
    return found


def ticked(cell):
    return re.findall(r"`([^`]+)`", cell)


design = read("docs/design.md")
model = read("runtime/core/model.h")

# ---- states, deadlines, actions, types, reasons, remedies ----------------------------------

states = xmacro(model, "AS_STATE_MAP")
state_table = tables(section(design, "### States"))
doc_states = [(ticked(r[0])[0], r[2].strip("`"), r[1].startswith("terminal")) for r in state_table[0]]
code_states = [(s[1], "none" if s[2] == "NONE" else s[2].lower(), s[3] == "1") for s in states]
for d, c in zip(doc_states, code_states):
    if c[2]:
        d = (d[0], "none" if d[1] == "—" else d[1], d[2])
    check("state %s" % c[0], d == c, "docs/design.md says %s, model.h %s" % (d, c))
check("state count", len(doc_states) == len(code_states),
      "%d in docs/design.md, %d in model.h" % (len(doc_states), len(code_states)))

deadlines = xmacro(model, "AS_DEADLINE_MAP")
doc_dl = [(ticked(r[0])[0], ticked(r[1])[0], r[2]) for r in state_table[1]]
code_dl = [(d[1], d[2].lower(), d[3].lower()) for d in deadlines]
check("deadlines", doc_dl == code_dl, "docs/design.md %s, model.h %s" % (doc_dl, code_dl))

actions = xmacro(model, "AS_ACTION_MAP")
doc_actions = {}
for r in tables(section(design, "### Actions and payloads"))[0]:
    for a in ticked(r[1]):
        doc_actions[a] = r[0]
code_actions = {a[1]: a[2].lower() for a in actions}
check("actions by role", doc_actions == code_actions,
      "only in docs: %s; only in model.h: %s; role differs: %s" % (
          sorted(set(doc_actions) - set(code_actions)), sorted(set(code_actions) - set(doc_actions)),
          sorted(a for a in doc_actions if a in code_actions and doc_actions[a] != code_actions[a])))

case_text = section(design, "### Case")
for label, macro in (("Case types", "AS_TYPE_MAP"), ("Reasons", "AS_REASON_MAP")):
    para = re.search(r"%s: (.*?)\n\n" % label, case_text, re.S).group(1)
    want = [r[1] for r in xmacro(model, macro)]
    check(label.lower(), ticked(para) == want, "docs/design.md %s, model.h %s" % (ticked(para), want))
remedy_row = [r for r in tables(case_text)[0] if r[0] == "`remedy`"][0]
want = [r[1] for r in xmacro(model, "AS_REMEDY_MAP")]
got = [t for t in ticked(remedy_row[1]) if t != "null"]
check("remedies", got == want, "docs/design.md %s, model.h %s" % (got, want))

# ---- error codes ---------------------------------------------------------------------------

errors = [e[1] for e in xmacro(read("runtime/include/aftersale/error.h"), "AS_ERRNO_MAP")]
doc_errors = [ticked(r[0])[0] for r in tables(section(design, "## Error codes"))[0]]
check("error codes", doc_errors == errors, "docs/design.md %s, error.h %s" % (doc_errors, errors))

# ---- limits --------------------------------------------------------------------------------

limits = {}
for name, value in re.findall(r"#define (AS_MAX_\w+) \(?([0-9]+u? << [0-9]+|[0-9]+)(?:LL)?\)?",
                              read("runtime/core/limits.h")):
    limits[name] = eval(value.replace("u", "")) if "<<" in value else int(value)
limit_rows = {r[0]: r[1] for r in tables(section(design, "## Limits"))[0]}


def row(prefix):
    return [v for k, v in limit_rows.items() if k.startswith(prefix)][0]


def num(text):
    return int(text.replace(",", ""))


def expect_limit(what, cell, pattern, value):
    m = re.search(pattern, cell)
    check("limit %s" % what, m is not None and num(m.group(1)) == value,
          "docs/design.md says %r, limits.h %d" % (cell, value))


expect_limit("identifier", row("identifier"), r"1–(\d+) bytes", limits["AS_MAX_ID"])
expect_limit("text", row("text"), r"1–(\d+) bytes", limits["AS_MAX_TEXT"])
expect_limit("evidence", row("evidence"), r"at most (\d+)", limits["AS_MAX_EVIDENCE"])
expect_limit("order lines", row("lines of an order"), r"1–(\d+)", limits["AS_MAX_ORDER_LINES"])
expect_limit("case items", row("items of a case"), r"1–(\d+)", limits["AS_MAX_CASE_ITEMS"])
expect_limit("qty", row("`qty`"), r"1–([\d,]+)", limits["AS_MAX_QTY"])
expect_limit("price", row("`price`"), r"0–([\d,]+) fen", limits["AS_MAX_MONEY"])
expect_limit("order total", row("an order"), r"at most ([\d,]+) fen", limits["AS_MAX_MONEY"])
expect_limit("times", row("times"), r"0–([\d,]+) ms", limits["AS_MAX_TIME"])
expect_limit("version", row("a pack's `version`"), r"1–(\d+) bytes", limits["AS_MAX_VERSION"])
src = re.search(r"at most (\d+) MiB", row("a merchant pack's source"))
check("limit source", src is not None and int(src.group(1)) << 20 == limits["AS_MAX_SOURCE"],
      "docs/design.md %r, limits.h %d" % (row("a merchant pack's source"), limits["AS_MAX_SOURCE"]))

sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
import limits_table  # noqa: E402  (the Python tests' copy)

for py, c in (("MAX_ID", "AS_MAX_ID"), ("MAX_TEXT", "AS_MAX_TEXT"),
              ("MAX_EVIDENCE", "AS_MAX_EVIDENCE"), ("MAX_LINES", "AS_MAX_ORDER_LINES"),
              ("MAX_CASE_ITEMS", "AS_MAX_CASE_ITEMS"), ("MAX_QTY", "AS_MAX_QTY"),
              ("MAX_MONEY", "AS_MAX_MONEY"), ("MAX_TIME", "AS_MAX_TIME")):
    check("limits_table.%s" % py, getattr(limits_table, py) == limits[c],
          "tests/api/limits_table.py %d, limits.h %d" % (getattr(limits_table, py), limits[c]))

# ---- links and section references ----------------------------------------------------------


def anchors(md):
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces
    to '-', a repeated one numbered."""
    seen, out = {}, set()
    in_code = False
    for line in md.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"#+ (.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else "%s-%d" % (slug, n))
    return out


anchor_cache = {}


def resolves(path, anchor):
    if not os.path.isfile(os.path.join(ROOT, path)):
        return False
    if not anchor:
        return True
    if path not in anchor_cache:
        anchor_cache[path] = anchors(read(path))
    return anchor in anchor_cache[path]


tracked = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True)
files = tracked.stdout.split() if tracked.returncode == 0 else []
if not files:  # not a git checkout (an unpacked release): every file below the root
    for d, _, names in os.walk(ROOT):
        if os.path.relpath(d, ROOT).split(os.sep)[0].startswith(("build", ".git")):
            continue
        files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names]

markdown = [f for f in files if f.endswith(".md")]
for f in markdown:
    base = os.path.dirname(f)
    text = re.sub(r"```.*?```", "", read(f), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(base, path)) if path else f
        check("link %s -> %s" % (f, target), resolves(path, anchor))

cited = set()
for f in files:
    if not f.endswith((".c", ".h", ".py", ".lua", ".sh", ".build", ".md", ".yaml", ".1")) and \
            not f.startswith("scripts/"):
        continue
    try:
        text = read(f)
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        continue
    for path, anchor in re.findall(r"\b(docs/[a-z_]+\.md)#([a-z0-9-]+)", text):
        cited.add((f, path, anchor))
for f, path, anchor in sorted(cited):
    check("%s cites %s#%s" % (f, path, anchor), resolves(path, anchor))
check("the tree cites sections", len(cited) > 100, "only %d citations found" % len(cited))

# the project stands on its own: nothing outside the copied public scenarios cites the outside
# contract (its files, its folder or its section numbers), and every scenario of the project's
# own names the section it proves
outside = re.compile(r"\.\./shared|\b(?:RULES|DESIGN)(?:\.md)?\s*§?\s*\d|\b(?:RULES|DESIGN)\.md\b")
for f in files:
    if f.startswith("tests/scenarios/public/") or f == "tests/docs/test_docs.py":
        continue
    try:
        text = read(f)
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        continue
    for n, line in enumerate(text.split("\n"), 1):
        if outside.search(line) or ("§" in line and "RFC" not in line):
            check("%s:%d cites the project's docs" % (f, n), False, line.strip()[:100])
for f in files:
    if f.endswith(".json") and (f.startswith("tests/scenarios/") or "/tests/" in f) and \
            not f.startswith(("tests/scenarios/public/", "tests/scenarios/bad/")) and \
            f.startswith(("tests/scenarios", "plugins/")):
        import json
        try:
            name = json.loads(read(f)).get("name", "")
        except ValueError:
            continue  # the parse-error fixtures
        m = re.match(r"((?:design|rulebook|rules)\.md)#([a-z0-9-]+)", name)
        check("%s names its section" % f, m is not None and resolves("docs/" + m.group(1), m.group(2)),
              name[:80])

# ---- the commands ---------------------------------------------------------------------------

top = subprocess.run([AFTERSALE, "--help"], capture_output=True, text=True).stdout
commands = re.findall(r"^  ([a-z]+) ", section("# x\n" + top, "# x").split("commands:")[1].split("\n\n")[0],
                      re.M)
check("aftersale --help lists commands", len(commands) >= 6, top)
man, readme = read("docs/aftersale.1"), read("README.md")
for c in commands:
    check("man page: %s" % c, re.search(r'^\.BI? "?%s\b' % c, man, re.M) is not None)
    check("README: aftersale %s" % c, re.search(r"aftersale %s\b" % c, readme) is not None)
    sub = subprocess.run([AFTERSALE, c, "--help"], capture_output=True, text=True)
    check("aftersale %s --help" % c, sub.returncode == 0 and sub.stdout.startswith("usage: aftersale %s" % c),
          "exit %d, %r" % (sub.returncode, sub.stdout[:80]))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
