"""`aftersale simulate`: seeded synthetic traffic through the real binary.

Small runs (20 shops, 5,000 orders): the same seed prints the same bytes and another seed other
ones; the report's totals agree with each other and with the library's metrics (refund_rate is
refunds over orders, all of a shop's orders are in the window at the end of a 30-day span); a
merchant pack that agrees to everything at open leaves that shop no merchant_response timeouts;
every bad option exits 2 with one line on stderr and nothing on stdout.

Usage: test_simulate.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

EXE, PACKS = sys.argv[1], sys.argv[2]
SMALL = ["--shops", "20", "--orders", "5000"]


def simulate(*args):
    """Runs `aftersale simulate --packs PACKS ARGS`; (exit status, stdout, stderr)."""
    p = subprocess.run([EXE, "simulate", "--packs", PACKS] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=240)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def report(*args):
    rc, out, err = simulate(*(SMALL + ["--json"] + list(args)))
    if rc != 0:
        raise AssertionError("simulate exited %d: %s" % (rc, err))
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if marker in err:
            raise AssertionError(err)
    return json.loads(out)


class Determinism(unittest.TestCase):

    def test_same_seed_same_bytes(self):
        a = simulate(*(SMALL + ["--json", "--no-timing", "--seed", "7"]))
        b = simulate(*(SMALL + ["--json", "--no-timing", "--seed", "7"]))
        self.assertEqual(a[0], 0, a[2])
        self.assertEqual(a[1], b[1])
        self.assertNotIn("timing", json.loads(a[1]))

    def test_same_seed_same_text(self):
        a = simulate(*(SMALL + ["--no-timing"]))
        b = simulate(*(SMALL + ["--no-timing"]))
        self.assertEqual(a[0], 0, a[2])
        self.assertEqual(a[1], b[1])
        self.assertIn("flagged shops:", a[1])
        self.assertEqual(a[2], "")  # no progress bar when stderr is not a terminal

    def test_other_seed_other_output(self):
        a = simulate(*(SMALL + ["--json", "--no-timing", "--seed", "1"]))
        b = simulate(*(SMALL + ["--json", "--no-timing", "--seed", "2"]))
        self.assertNotEqual(a[1], b[1])

    def test_timing_is_there_by_default(self):
        t = report()["timing"]
        self.assertGreater(t["elapsed_seconds"], 0)
        self.assertGreater(t["transitions_per_sec"], 0)


class Totals(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.r = report("--seed", "3")

    def test_the_options_are_echoed(self):
        o = self.r["options"]
        self.assertEqual((o["seed"], o["shops"], o["orders"], o["days"]), (3, 20, 5000, 30))

    def test_cases_by_final_state_sum_to_cases_opened(self):
        self.assertGreater(self.r["cases_opened"], 500)
        self.assertEqual(sum(self.r["cases_by_state"].values()), self.r["cases_opened"])
        self.assertEqual(sum(s["cases_opened"] for s in self.r["shops"]), self.r["cases_opened"])

    def test_most_cases_are_accepted(self):
        self.assertLess(self.r["opens_refused"] * 10, self.r["cases_opened"])

    def test_money_adds_up(self):
        fen = self.r["refunded_fen"]
        self.assertGreater(fen, 0)
        self.assertEqual(sum(s["refunded_fen"] for s in self.r["shops"]), fen)
        self.assertEqual(self.r["refunded_yuan"], "%d.%02d" % (fen // 100, fen % 100))
        for s in self.r["shops"]:
            f = s["refunded_fen"]
            self.assertEqual(s["refunded_yuan"], "%d.%02d" % (f // 100, f % 100))
        # auto_pay: every refund instructed is paid, and each is one case's
        self.assertEqual(self.r["refunds"], self.r["cases_by_state"].get("refunded", 0))

    def test_orders_add_up(self):
        self.assertEqual(sum(s["orders"] for s in self.r["shops"]), 5000)
        self.assertEqual(len(self.r["shops"]), 20)

    def test_library_metrics_semantics(self):
        for s in self.r["shops"]:
            m = s["metrics"]
            # every order of a 30-day span is in the window that ends with it
            self.assertEqual(m["orders"], s["orders"], s["shop"])
            self.assertLessEqual(m["cases_opened"], s["cases_opened"])
            self.assertLessEqual(m["dispute_refunds"], m["refunds"])
            if m["orders"]:
                self.assertAlmostEqual(m["refund_rate"], m["refunds"] / m["orders"], places=4)
                self.assertAlmostEqual(m["dispute_refund_rate"],
                                       m["dispute_refunds"] / m["orders"], places=4)
            self.assertEqual(m["flagged"], s["shop"] in self.r["flagged"])

    def test_deadlines_fire_and_commands_race_them(self):
        autos = self.r["auto_decisions"]
        for kind in ("auto_agree", "auto_close", "auto_complete"):
            self.assertGreater(autos.get(kind, 0), 0, kind)
        deadline_actions = sum(v for k, v in autos.items()
                               if k.startswith("auto_") and not k.startswith("auto_decide:"))
        self.assertEqual(deadline_actions, self.r["deadlines_fired"])
        self.assertGreater(self.r["refusals"].get("invalid_state", 0), 0)
        self.assertGreater(self.r["refusals"].get("window_expired", 0), 0)
        self.assertGreater(self.r["transitions"], self.r["cases_opened"])

    def test_auto_decisions_by_pack_add_up(self):
        # each system decision is counted once under the pack its history entry names
        by_pack = self.r["auto_decisions_by_pack"]
        total = {}
        for per in by_pack.values():
            for k, v in per.items():
                total[k] = total.get(k, 0) + v
        self.assertEqual(total, self.r["auto_decisions"])
        self.assertGreater(by_pack.get("fresh_food@4", {}).get("auto_decide:agree", 0), 0, by_pack)
        self.assertGreater(by_pack.get("platform@3", {}).get("auto_close", 0), 0, by_pack)

    def test_auto_agreed_metric_matches_the_histories(self):
        # the metrics are read at the end of the span; cases go on timing out after it
        in_window = sum(s["metrics"]["auto_agreed"] for s in self.r["shops"])
        self.assertGreater(in_window, 0)
        self.assertLessEqual(in_window, self.r["auto_decisions"]["auto_agree"])


class MerchantPacks(unittest.TestCase):

    def test_a_pack_that_agrees_at_once_ends_the_timeouts(self):
        base = report("--seed", "5")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write('local AGREE = { action = "agree" }\n'
                    'return { name = "agree-all", version = "1",\n'
                    '  auto_decide = function(case, order, now) return AGREE end }\n')
            path = f.name
        try:
            args = ["--seed", "5"]
            for k in range(20):
                args += ["--merchant-pack", "S%d=%s" % (k, path)]
            r = report(*args)
        finally:
            os.unlink(path)
        self.assertGreater(base["auto_decisions"].get("auto_agree", 0), 0)
        self.assertEqual(r["auto_decisions"].get("auto_agree", 0), 0)
        self.assertGreater(r["auto_decisions"]["auto_decide:agree"],
                           base["auto_decisions"].get("auto_decide:agree", 0))
        self.assertEqual(len(r["options"]["merchant_packs"]), 20)
        self.assertEqual(sum(s["metrics"]["auto_agreed"] for s in r["shops"]), 0)

    def test_an_unreadable_pack_stops_the_start(self):
        rc, out, err = simulate(*(SMALL + ["--merchant-pack", "S1=/nonexistent.lua"]))
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("S1", err)


class Usage(unittest.TestCase):

    def test_help(self):
        rc, out, err = simulate("--help")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("usage: aftersale simulate"))
        for opt in ("--seed", "--shops", "--orders", "--days", "--case-rate", "--categories",
                    "--response-median", "--response-p90", "--reject-rate", "--offer-rate",
                    "--escalate-rate", "--buyer-win-rate", "--merchant-pack", "--packs",
                    "--json"):
            self.assertIn(opt, out)

    def test_bad_values(self):
        bad = [["--shops", "0"], ["--shops", "-5"], ["--shops", "ten"], ["--orders", "0"],
               ["--orders", "1x"], ["--days", "0"], ["--days", "366"], ["--seed", "-1"], ["--seed", "9223372036854775808"], ["--orders", "99999999999999999999"], ["--response-median", "366d"],
               ["--seed", ""], ["--case-rate", "1001"], ["--reject-rate", "-1"],
               ["--offer-rate", "x"], ["--escalate-rate", "2000"], ["--buyer-win-rate", "-3"],
               ["--bad-shops", "1.5"], ["--categories", "toys=10"],
               ["--categories", "apparel=0,fresh_food=0"], ["--categories", "apparel"],
               ["--categories", "apparel=5,apparel=5"], ["--categories", "apparel=-1"],
               ["--categories", ""], ["--categories", "apparel=1,"],
               ["--response-median", "soon"], ["--response-median", "0s"],
               ["--response-median", "10h", "--response-p90", "5h"],
               ["--start", "yesterday"], ["--merchant-pack", "S1"],
               ["--merchant-pack", "bad id=x.lua"], ["--unknown"], ["--shops"],
               ["operand"]]
        for args in bad:
            rc, out, err = simulate(*args)
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, "", args)
            self.assertTrue(err.startswith("aftersale simulate: "), (args, err))
            self.assertEqual(err.count("\n"), 1, (args, err))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[3:])
