"""`aftersale backtest`: a shop's recorded cases replayed under a candidate merchant pack.

A small history is recorded through the real `aftersale pipe --db` (docs/pipe.md): shop S1
sells apparel and fresh food; its merchant agrees to C1 (apparel, 50 yuan), rejects C2
(apparel, 80 yuan, which the buyer escalates) and agrees to C3 (fresh food, 300 yuan); another
shop's case is on the same file. A candidate that auto-agrees claims of at most 100 yuan must
change exactly C1 (auto-decided now, same refund) and C2 (refunding 8000 instead of platform
review), skip the three merchant and buyer commands it made moot, and report the money Δ
+8000 fen, auto-agreed Δ +2, disputes Δ -1. A candidate with the source already in force
changes nothing. Usage errors exit 2, a missing file 1. `db export --scenario` writes the same
history as a scenario that passes when run.

Usage: test_backtest.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

EXE, PACKS = sys.argv[1], sys.argv[2]

SMALL_CLAIMS = """return {
  name = "s1-small-claims", version = "1",
  auto_decide = function(case, order, now)
    if case.refund_amount <= 10000 then return { action = "agree", why = "a small claim" } end
  end,
}
"""


def order(oid, shop, buyer, sku, cat, price):
    return {"op": "order.create", "order": {"id": oid, "shop": shop, "buyer": buyer, "items": [
        {"sku": sku, "category": cat, "qty": 1, "price": price}]}}


def open_case(buyer, cid, oid, sku, reason):
    return {"op": "case.open", "as": buyer, "case": {
        "id": cid, "order": oid, "type": "refund_only", "reason": reason,
        "items": [{"sku": sku, "qty": 1}], "evidence": ["photo"]}}


def act(who, cid, action, payload=None):
    r = {"op": "case.act", "as": who, "case": cid, "action": action}
    if payload:
        r["payload"] = payload
    return r


def record(db, first=(), refusals=0):
    """Records the history on `db`; `refusals` commands are expected to be refused."""
    reqs = list(first) + [
        order("O1", "S1", "B1", "T1", "apparel", 5000),
        order("O2", "S1", "B2", "T2", "apparel", 8000),
        order("O3", "S1", "B3", "F1", "fresh_food", 30000),
        order("O9", "S9", "B3", "T9", "apparel", 5000),
    ]
    for o in ("O1", "O2", "O3", "O9"):
        reqs += [{"op": "order.ship", "order": o}, {"op": "order.deliver", "order": o}]
    reqs += [
        open_case("buyer:B1", "C1", "O1", "T1", "quality"),
        open_case("buyer:B2", "C2", "O2", "T2", "quality"),
        open_case("buyer:B3", "C3", "O3", "F1", "spoiled"),
        open_case("buyer:B3", "C9", "O9", "T9", "quality"),
        act("merchant:S1", "C1", "agree"),
        act("merchant:S1", "C2", "reject", {"reason": "worn"}),
        act("buyer:B2", "C2", "escalate"),
        act("merchant:S1", "C3", "agree"),
        act("merchant:S9", "C9", "agree"),
    ]
    text = "".join(json.dumps(dict(r, id=i)) + "\n" for i, r in enumerate(reqs))
    p = subprocess.run([EXE, "pipe", "--db", db, "--packs", PACKS], input=text.encode(),
                       capture_output=True, timeout=60)
    answers = [json.loads(l) for l in p.stdout.decode().splitlines()]
    refused = [a for a in answers if "error" in a]
    if p.returncode != 0 or len(refused) != refusals:
        raise AssertionError("pipe: rc %d, refused %r" % (p.returncode, refused))


def run(*args):
    """The binary with `args` and no input: (exit status, stdout, stderr); a sanitizer's
    report fails the test."""
    p = subprocess.run([EXE] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    err = p.stderr.decode()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if marker in err:
            raise AssertionError(err)
    return p.returncode, p.stdout.decode(), err


def backtest(*args):
    return run("backtest", "--packs", PACKS, *args)


class Backtest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cand = os.path.join(cls.tmp.name, "small_claims.lua")
        with open(cls.cand, "w") as f:
            f.write(SMALL_CLAIMS)
        cls.db = os.path.join(cls.tmp.name, "shop.db")
        record(cls.db)
        cls.same_db = os.path.join(cls.tmp.name, "same.db")
        # the pack in force when recording: it agrees at open, so the three later commands
        # of C1 and C2 are refused, and not recorded (a refused command leaves no row)
        record(cls.same_db, [{"op": "rules.load", "shop": "S1", "source": SMALL_CLAIMS}], 3)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def report(self, db, *more):
        rc, out, err = backtest("--db", db, "--shop", "S1", "--rules", self.cand, "--json",
                                *more)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def test_candidate_changes_exactly_the_small_claims(self):
        r = self.report(self.db)
        self.assertEqual(r["shop"], "S1")
        self.assertIsNone(r["baseline_rules"])
        changed = {c["case"]: c for c in r["changed"]}
        self.assertEqual(sorted(changed), ["C1", "C2"])
        c1, c2 = changed["C1"], changed["C2"]
        self.assertEqual(c1["baseline"], {"state": "refunding", "refund_amount": 5000,
                                          "auto_decisions": 0, "deadlines": []})
        self.assertEqual(c1["candidate"], {"state": "refunding", "refund_amount": 5000,
                                           "auto_decisions": 1, "deadlines": []})
        self.assertEqual(c2["baseline"]["state"], "platform_review")
        self.assertEqual(c2["candidate"], {"state": "refunding", "refund_amount": 8000,
                                           "auto_decisions": 1, "deadlines": []})
        t = r["totals"]
        self.assertEqual(t["refunded"], {"baseline": 35000, "candidate": 43000, "delta": 8000})
        self.assertEqual(t["auto_agreed"], {"baseline": 0, "candidate": 2, "delta": 2})
        self.assertEqual(t["disputes"], {"baseline": 1, "candidate": 0, "delta": -1})
        self.assertEqual(t["cases"], 3)  # S9's case is not S1's
        self.assertEqual(t["changed"], 2)
        # C1's agree, C2's reject and escalate: moot once the candidate agreed
        self.assertEqual(t["skipped"], {"baseline": 0, "candidate": 3})

    def test_table(self):
        rc, out, err = backtest("--db", self.db, "--shop", "S1", "--rules", self.cand)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertTrue(any(l.startswith("C2\tplatform_review 8000 fen") for l in lines), out)
        self.assertIn("refunded 35000 -> 43000 fen (+8000)", out)
        self.assertIn("disputes 1 -> 0 (-1)", out)
        self.assertIn("3 cases compared, 2 changed; commands skipped: 0 baseline, 3 candidate",
                      out)

    def test_same_source_changes_nothing(self):
        r = self.report(self.same_db)
        self.assertEqual(r["baseline_rules"], "1")
        self.assertEqual(r["changed"], [])
        t = r["totals"]
        self.assertEqual(t["refunded"]["delta"], 0)
        self.assertEqual(t["skipped"], {"baseline": 0, "candidate": 0})
        self.assertEqual(t["cases"], 3)

    def test_the_file_is_not_written(self):
        def state():
            with open(self.db, "rb") as f:
                return os.stat(self.db).st_mtime_ns, f.read()
        before = state()
        self.report(self.db)
        self.assertEqual(state(), before)

    def test_missing_file_exits_1(self):
        rc, out, err = backtest("--db", os.path.join(self.tmp.name, "nope.db"), "--shop", "S1",
                                "--rules", self.cand)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("nope.db", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "nope.db")))

    def test_unreadable_candidate_exits_1(self):
        rc, out, err = backtest("--db", self.db, "--shop", "S1", "--rules",
                                os.path.join(self.tmp.name, "none.lua"))
        self.assertEqual(rc, 1)
        self.assertIn("none.lua", err)

    def test_usage_errors_exit_2(self):
        for args in ([], ["--db", self.db], ["--db", self.db, "--shop", "S1"],
                     ["--shop", "S1", "--rules", self.cand],
                     ["--db", self.db, "--shop", "S1", "--rules", self.cand, "extra"],
                     ["--bogus"]):
            rc, out, err = backtest(*args)
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, "", args)
            self.assertIn("usage: aftersale backtest", err, args)

    def test_help(self):
        rc, out, err = backtest("--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: aftersale backtest", out)



class ExportScenario(unittest.TestCase):
    """`db export --scenario`: the same recorded history as a scenario file a pack's tests
    can keep; run as it is, it passes (the replay ends where the file did); a recorded
    outcome the replay does not reach fails, with the history under it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.db = os.path.join(cls.tmp.name, "shop.db")
        record(cls.db)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def export(self, shop="S1"):
        rc, out, err = run("db", "export", "--scenario", "--shop", shop, "--packs", PACKS, self.db)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def run_scenario(self, doc):
        path = os.path.join(self.tmp.name, "exported.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return run("run", "--packs", PACKS, path)

    def test_the_shops_cases_and_commands_in_time_order(self):
        doc = self.export()
        self.assertTrue(doc["name"].startswith("design.md#scenario-files: the recorded cases of shop S1"))
        self.assertEqual(doc["payments"], "manual")
        steps = doc["steps"]
        opened = [s["case"]["id"] for s in steps if s.get("do") == "case.open"]
        self.assertEqual(opened, ["C1", "C2", "C3"])  # not S9's C9
        acts = [(s["as"], s["case"], s["action"]) for s in steps if s.get("do") == "case.act"]
        self.assertEqual(acts, [("merchant:S1", "C1", "agree"), ("merchant:S1", "C2", "reject"),
                                ("buyer:B2", "C2", "escalate"), ("merchant:S1", "C3", "agree")])
        self.assertEqual([s["payload"] for s in steps if s.get("action") == "reject"],
                         [{"reason": "worn"}])
        creates = [s["order"]["id"] for s in steps if s.get("do") == "order.create"]
        self.assertEqual(creates, ["O1", "O2", "O3"])
        expects = {s["expect"]["case"]: s["expect"] for s in steps if "expect" in s}
        self.assertEqual(expects["C2"], {"case": "C2", "state": "platform_review",
                                         "refund_amount": 8000})
        self.assertEqual(expects["C1"]["state"], "refunding")

    def test_it_runs_as_a_scenario_and_passes(self):
        rc, out, err = self.run_scenario(self.export())
        self.assertEqual((rc, out.splitlines()[-1]), (0, "1 passed, 0 failed"), out + err)

    def test_an_outcome_the_replay_does_not_reach_fails(self):
        doc = self.export()
        for s in doc["steps"]:
            if s.get("expect", {}).get("case") == "C2":
                s["expect"]["state"] = "refunded"
        rc, out, err = self.run_scenario(doc)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("case C2: expected state \"refunded\", found \"platform_review\"", out)
        self.assertIn("  the history of C2:", out)

    def test_usage_and_unknown_shop(self):
        for args in (["--scenario", self.db], ["--shop", "S1", self.db], ["--scenario", "--shop"]):
            rc, out, err = run("db", "export", *args)
            self.assertEqual((rc, out), (2, ""), args)
        rc, out, err = run("db", "export", "--scenario", "--shop", "NOPE", "--packs", PACKS, self.db)
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("shop 'NOPE' has no recorded orders", err)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[3:])
