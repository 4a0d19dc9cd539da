"""Hostile merchant packs (the tenant-safe issue): each uploads a hostile merchant Lua pack
through `PUT /v1/shops/{shop}/rules` of a real `aftersale serve` and asserts the documented
outcome (docs/api.md, docs/rules.md: a failing or overstepping merchant answer is dropped and
recorded in the case history; an upload whose top level throws or runs out of budget is 500
rule_error; another source under a used version is 409 conflict), that the case stays sane,
and that the server keeps answering (also after a SIGKILL and a restart where a hook ran as a
deadline fired).
Usage: test_packs.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api"))
import test_api as api  # noqa: E402  (the Server and request helpers; reads sys.argv)

PRICE = 19900  # the price of the default order line of api.order_body
HOSTILE = 'setmetatable({}, { __index = function() error("x") end })'
BUDGET_S = 5.0  # not a speed assertion: a hook call that hangs would take far longer


def pack(name, version="1", **hooks):
    """A merchant pack: hooks maps a hook name to (params, body)."""
    fns = "".join(",\n  %s = function(%s) %s end" % (h, p, b) for h, (p, b) in hooks.items())
    return 'return { name = "%s", version = "%s"%s }\n' % (name, version, fns)


class PackCase(api.OwnServer):
    """Helpers; the tests are in the classes below."""

    shop, key = "R1", "k-r1"

    def healthy(self):
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    def upload(self, src, status=200, code=None):
        t0 = time.time()
        r = self.req("PUT", "/v1/shops/%s/rules" % self.shop, src, self.key)
        self.assertLess(time.time() - t0, BUDGET_S * 4, "the upload took too long")
        if code is None:
            self.assertOk(r, status)
        else:
            self.assertError(r, status, code)
        return r

    def shop_case(self, **kw):
        oid = self.make_order(self.shop, "B1")
        t0 = time.time()
        cid = self.open_case(oid, **kw)
        self.assertLess(time.time() - t0, BUDGET_S, "opening the case took too long")
        return oid, cid

    def notes(self, case):
        return [e.get("note", "") for e in case["history"]]

    def assertDropped(self, case):
        self.assertTrue(any("dropped" in n for n in self.notes(case)),
                        "no dropped merchant answer recorded: %r" % case["history"])

    def assertSane(self, case, state="requested"):
        self.assertEqual(case["state"], state, case)
        self.assertEqual(case["refund_amount"], PRICE, case)


class MetatableAnswers(PackCase):

    def test_metatable_answers_are_dropped(self):
        hooks = {h: (p, "return " + HOSTILE) for h, p in (
            ("eligibility", "o, r, now"), ("refund_amount", "c, o"), ("deadlines", "c, o"),
            ("priority", "c, o"), ("auto_decide", "c, o, now"), ("inspection", "c, o"),
            ("instant_refund", "c, o"), ("on_inspection", "c, o, r, now"))}
        self.upload(pack("meta", **hooks))
        _, cid = self.shop_case()
        c = self.get(cid)
        self.assertSane(c)
        self.assertDropped(c)
        self.assertEqual(c["rules"]["merchant"], "meta@1")
        self.assertIsInstance(c["deadline"]["due"], int)
        self.assertGreater(c["deadline"]["due"], c["opened_at"])
        self.assertOk(self.act(cid, self.key, "agree"))
        r = self.act(cid, "k-b1", "ship_return", {"carrier": "SF", "tracking": "T1"})
        self.assertOk(r)
        c = self.get(cid)
        self.assertEqual(c["state"], "returning", c)  # instant_refund dropped: no refund yet
        self.assertEqual(c["refund_amount"], PRICE, c)
        notes = [n for n in self.notes(c) if "dropped" in n]
        for hook in ("eligibility", "refund_amount", "priority", "auto_decide", "inspection",
                     "instant_refund"):
            self.assertTrue(any("hook %s " % hook in n for n in notes), (hook, notes))
        # the host never ran the answer's __index (its error would name "x")
        for n in self.notes(c):
            self.assertFalse(n.endswith(": x"), n)
        self.healthy()


class DeadlinePacks(PackCase):
    """A copy of the packs with merchant_response = 1.5 s, so a deadline fires while serving."""

    def packs_dir(self):
        return api.packs_with_merchant_response(self, 1500)

    def test_metatable_answer_from_a_hook_run_as_a_deadline_fires_then_sigkill(self):
        # deadlines runs on every entry into a state with a deadline: here the auto_agree the
        # fired merchant_response deadline takes, on the loop's timer
        self.upload(pack("meta-dl", deadlines=("c, o", "return " + HOSTILE)))
        _, cid = self.shop_case()
        c = self.wait_state(cid, "awaiting_return")
        self.assertEqual(c["state"], "awaiting_return", c)
        self.assertEqual(c["history"][-1]["action"], "auto_agree", c)
        self.assertEqual(c["refund_amount"], PRICE, c)
        # the engine reads the answer raw (tests/unit/test_lua_engine.c): a duration only an
        # __index would give is none, so the platform's buyer_ship deadline stands
        self.assertIsInstance(c.get("deadline"), dict, c)
        self.assertEqual(c["deadline"]["kind"], "buyer_ship", c)
        self.assertGreater(c["deadline"]["due"], c["history"][-1]["at"], c)
        self.healthy()
        before = self.get(cid)
        self.server.kill()
        self.server.restart()
        self.healthy()
        self.assertEqual(self.get(cid), before)

    def test_metatable_answer_when_the_deadline_fires_while_down(self):
        self.upload(pack("meta-dl", deadlines=("c, o", "return " + HOSTILE)))
        _, cid = self.shop_case()
        self.server.kill()
        time.sleep(2.0)
        self.server.restart()
        c = self.wait_state(cid, "awaiting_return")
        self.assertEqual(c["state"], "awaiting_return", c)
        self.assertEqual(c["refund_amount"], PRICE, c)
        self.server.kill()
        self.server.restart()
        self.healthy()
        self.assertEqual(self.get(cid)["state"], "awaiting_return")


class PackAnswers(PackCase):

    def test_buyer_ship_maxinteger_does_not_close_the_return(self):
        self.upload(pack("maxdl", deadlines=("c, o", "return { buyer_ship = math.maxinteger }")))
        _, cid = self.shop_case()
        self.assertOk(self.act(cid, self.key, "agree"))
        time.sleep(1.5)  # a due that wrapped around would fire at once
        c = self.get(cid)
        self.assertEqual(c["state"], "awaiting_return", c)
        self.assertEqual(c["refund_amount"], PRICE, c)
        # dropped and recorded (outside 0 .. 365 days): the platform's buyer_ship stands
        self.assertDropped(c)
        self.assertTrue(any("buyer_ship" in n for n in self.notes(c)), c["history"])
        agreed = [e for e in c["history"] if e["action"] == "agree"][0]["at"]
        self.assertEqual(c["deadline"]["kind"], "buyer_ship", c)
        self.assertGreater(c["deadline"]["due"], agreed, c)
        self.assertLessEqual(c["deadline"]["due"], agreed + 365 * api.DAY, c)
        self.server.kill()
        self.server.restart()
        time.sleep(1.0)
        self.assertEqual(self.get(cid)["state"], "awaiting_return")
        self.healthy()

    def test_refund_amounts_that_are_not_integers_are_dropped(self):
        for i, v in enumerate(["1.5", "0/0", "1/0", "-1/0", "2^63", "1e300", "-(2^63)",
                               "math.maxinteger", "math.mininteger", "'12'", "0.0"]):
            with self.subTest(amount=v):
                self.upload(pack("money", str(i + 1), refund_amount=("c, o", "return " + v)))
                _, cid = self.shop_case()
                c = self.get(cid)
                self.assertSane(c)
                if v != "0.0":
                    self.assertDropped(c)
        self.healthy()

    def test_no_addresses_reach_a_pack(self):
        msg = ("tostring(print) .. '|' .. tostring(tostring) .. '|' .. tostring({}) .. '|' .. "
               "tostring(o) .. '|' .. tostring(c.items) .. '|' .. string.format('%s', {})")
        self.upload(pack("addr", auto_decide=("c, o, now",
                                              "return { action = 'reject', reason = %s }" % msg)))
        _, cid = self.shop_case()
        c = self.get(cid)
        self.assertEqual(c["state"], "rejected", c)  # the merchant's own (legal) answer
        text = repr(c)
        self.assertIn("nil|function|table|userdata|userdata|table", text)
        self.assertNotRegex(text, r"0x[0-9a-fA-F]{4,}")
        self.assertNotRegex(text, r"(function|table|userdata|builtin): *[0-9a-fA-F]{6,}")
        self.assertNotEqual(c["refund_amount"], 0, c)
        self.healthy()

    def test_string_and_table_bombs_return_within_budget(self):
        bombs = [
            "local s = string.rep('x', 60000) for i = 1, 1e9 do utf8.len(s) end return true",
            "table.move({}, 1, 1 << 62, 1, {}) return true",
            "for i = 1, 1e9 do local s = string.rep('x', 16 << 20) end return true",
            "return string.rep('x', 1 << 30) ~= nil",
            "local s = string.rep('x', 1 << 20) for i = 1, 40 do s = s .. s end return true",
        ]
        for i, b in enumerate(bombs):
            with self.subTest(bomb=b):
                self.upload(pack("bomb", str(i + 1), eligibility=("o, r, now", b),
                                 refund_amount=("c, o", b.replace("return true", "return 1"))))
                _, cid = self.shop_case()
                c = self.get(cid)
                self.assertSane(c)
                self.assertDropped(c)
                self.healthy()


class PackLoads(PackCase):

    def test_pack_table_with_looping_metamethods(self):
        loop = "function() while true do end end"
        src = ("return setmetatable({ name = 'loopy', version = '1' }, { __index = %s, "
               "__pairs = %s, __len = %s, __newindex = %s, __eq = %s })" % ((loop,) * 5))
        t0 = time.time()
        r = self.req("PUT", "/v1/shops/%s/rules" % self.shop, src, self.key)
        self.assertLess(time.time() - t0, BUDGET_S * 4)
        self.assertIn(r.status, (200, 400, 500), r)
        self.healthy()
        if r.status == 200:  # read raw (tests/unit/test_lua_engine.c): loaded, and serves
            _, cid = self.shop_case()
            self.assertEqual(self.get(cid)["rules"]["merchant"], "loopy@1")
            self.assertSane(self.get(cid))
        # a top level that loops: out of budget, 500 rule_error
        self.upload("while true do end return { name = 'spin', version = '1' }", 500, "rule_error")
        self.healthy()
        _, cid = self.shop_case()
        self.assertSane(self.get(cid))
        t0 = time.time()
        proc = self.server.proc
        rc = self.server.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, "SIGTERM: %r" % (rc,))
        self.assertLess(time.time() - t0, 5.0, "SIGTERM took too long")
        self.assertIsNotNone(proc.poll())
        self.server.restart()
        self.healthy()

    def test_math_random_at_load_is_refused_and_others_start(self):
        r = self.upload("local r = math.random(6) return { name = 'dice', version = '1' }",
                        500, "rule_error")
        self.assertIn("math.random", r.json["message"])
        self.upload("math.randomseed(7) return { name = 'dice', version = '2' }", 500, "rule_error")
        r = self.req("GET", "/v1/shops/%s/rules" % self.shop, None, self.key)
        self.assertEqual((r.status, r.json["versions"]), (200, []), r)
        # another shop's pack loads and serves, also across a restart
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules",
                               pack("v1-ok", refund_amount=("c, o", "return nil")), "k-v1"))
        self.server.kill()
        self.server.restart()
        self.healthy()
        oid = self.make_order("V1", "B1")
        cid = self.open_case(oid)
        self.assertEqual(self.get(cid)["rules"]["merchant"], "v1-ok@1")
        _, cid = self.shop_case()
        self.assertNotIn("merchant", self.get(cid)["rules"])

    def test_versions_conflict_and_same_source(self):
        a = pack("ver", refund_amount=("c, o", "return nil"))
        b = pack("ver", refund_amount=("c, o", "return 1"))
        self.upload(a)
        r = self.upload(b, 409, "conflict")
        self.assertIn("ver@1", r.json["message"])
        self.upload(a)
        r = self.req("GET", "/v1/shops/%s/rules" % self.shop, None, self.key)
        self.assertEqual([(v["name"], v["version"]) for v in r.json["versions"]], [("ver", "1")])
        r = self.req("GET", "/v1/shops/%s/rules/1" % self.shop, None, self.key)
        self.assertEqual((r.status, r.json["source"]), (200, a))
        _, cid = self.shop_case()
        self.assertEqual(self.get(cid)["rules"]["merchant"], "ver@1")
        self.assertSane(self.get(cid))
        self.healthy()


if __name__ == "__main__":
    prog = unittest.main(argv=api.UNITTEST_ARGV, verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
