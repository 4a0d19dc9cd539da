"""Hostile inputs at the edge (the tenant-safe issue, item 1): every limit of docs/api.md
"Limits" at its bound and one past it, through a real `aftersale serve`.

At the bound a value is accepted, stored, and echoed back byte for byte, also after a SIGKILL
and a restart. One past it the request is refused with 400 bad_request naming the field, and
nothing changed: the same id can still be created afterwards, and the server keeps answering.
Usage: test_limits.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api"))
import test_api as api  # noqa: E402  (the Server and request helpers; reads sys.argv)
from limits_table import ID_CHARS, MAX_MONEY, MAX_TIME  # noqa: E402  (docs/design.md#limits)


def ident(prefix, n=64):
    """An identifier of exactly n bytes that uses every allowed byte class."""
    s = prefix + ID_CHARS
    return (s * (n // len(s) + 1))[:n]


def text(n):
    """Exactly n bytes of UTF-8: quotes, a backslash, <>&, CJK and an emoji, no control."""
    base = '"\\<>&\' 质量问题 📦 '
    out = ""
    while len((out + base).encode()) <= n:
        out += base
    while len(out.encode()) < n:
        out += "x"
    assert len(out.encode()) == n
    return out


class Limits(api.OwnServer):

    def order(self, oid, lines, **extra):
        return api.order_body(oid, shop="S1", buyer="B1", items=lines, **extra)

    def assertRefused(self, r, field):
        self.assertError(r, 400, "bad_request")
        if "\\u0000" in r.json["message"]:  # a NUL never gets past the JSON parser
            return
        self.assertIn(field, r.json["message"])

    def healthy(self):
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    # ---- at the bounds ------------------------------------------------------------------

    def test_everything_at_its_bound_is_kept_exactly_across_a_restart(self):
        oid, cid = ident("O"), ident("C")
        skus = [ident("S%03d" % i) for i in range(100)]
        lines = [{"sku": s, "category": "apparel", "qty": 10000, "price": 10000,
                  "serial": text(256)} for s in skus]
        # 100 lines x 10,000 units x 10,000 fen: the order total is exactly 10^10 fen
        self.assertOk(self.req("POST", "/v1/orders", self.order(oid, lines), api.PLATFORM), 201)
        evidence = [text(256)[:-len(str(i))] + str(i) for i in range(32)]
        case = api.case_body(cid, oid, ctype="refund_only", reason="quality", evidence=evidence)
        case["items"] = [{"sku": s, "qty": 10000} for s in skus]
        self.assertOk(self.req("POST", "/v1/cases", case, api.B1), 201)
        reason = text(256)
        self.assertOk(self.act(cid, api.S1, "reject", {"reason": reason}))
        before = self.get(cid)
        self.assertEqual(before["id"], cid)
        self.assertEqual(before["order"], oid)
        self.assertEqual(before["evidence"], evidence)
        self.assertEqual([i["sku"] for i in before["items"]], skus)
        self.assertEqual(before["refund_amount"], MAX_MONEY)  # 10^10 fen, no overflow
        self.assertIn(reason, [e.get("note") for e in before["history"]])
        self.server.kill()
        self.server.restart()
        self.assertEqual(self.get(cid), before)
        # the buyer escalates, the platform rules for the buyer: 10^10 fen refunded
        self.assertOk(self.act(cid, api.B1, "escalate"))
        self.assertOk(self.act(cid, api.PLATFORM, "rule_for_buyer"))
        self.assertEqual(self.get(cid)["refund_amount"], MAX_MONEY)

    def test_times_and_amounts_at_their_bounds(self):
        oid = api.new_id("OT")
        body = self.order(oid, [{"sku": "T1", "category": "apparel", "qty": 1,
                                 "price": MAX_MONEY}], paid_at=MAX_TIME)
        self.assertOk(self.req("POST", "/v1/orders", body, api.PLATFORM), 201)
        oid2 = api.new_id("OT")
        body = self.order(oid2, [{"sku": "T1", "category": "apparel", "qty": 1, "price": 0}],
                          paid_at=0, shipping_fee=MAX_MONEY)
        self.assertOk(self.req("POST", "/v1/orders", body, api.PLATFORM), 201)
        # a partial refund's requested amount at the bound passes the shape; the amount check
        # then compares it with what was paid
        oid3 = self.make_order()
        cid = api.new_id("C")
        r = self.req("POST", "/v1/cases", api.case_body(cid, oid3, ctype="partial_refund",
                     reason="quality", evidence=["p"], requested_amount=MAX_MONEY), api.B1)
        self.assertError(r, 422, "amount_exceeds_paid")
        r = self.req("POST", "/v1/cases", api.case_body(cid, oid3, ctype="partial_refund",
                     reason="quality", evidence=["p"], requested_amount=MAX_MONEY + 1), api.B1)
        self.assertRefused(r, "requested_amount")
        self.healthy()

    # ---- one past -----------------------------------------------------------------------

    def test_identifiers_one_past_and_unsafe_bytes(self):
        line = {"sku": "T1", "category": "apparel", "qty": 1, "price": 100}
        bad_ids = [ident("O", 65), "", ".", "..", "a b", "a/b", "a%2Fb", "a\r\nX-Forged: 1",
                   'a"b', "a\\b", "a\u0000b", "质", "a|b", "a?b", "a#b"]
        for bad in bad_ids:
            with self.subTest(id=bad):
                r = self.req("POST", "/v1/orders", self.order(bad, [line]), api.PLATFORM)
                self.assertRefused(r, "'id'")
                for field in ("shop", "buyer"):
                    body = self.order(api.new_id("O"), [line])
                    body[field] = bad
                    self.assertRefused(self.req("POST", "/v1/orders", body, api.PLATFORM), field)
                for field in ("sku", "category"):
                    item = dict(line)
                    item[field] = bad
                    r = self.req("POST", "/v1/orders", self.order(api.new_id("O"), [item]),
                                 api.PLATFORM)
                    self.assertRefused(r, "items[]." + field)
        # a case id one past; the order id of a case is a lookup: not found
        oid = self.make_order()
        r = self.req("POST", "/v1/cases", api.case_body(ident("C", 65), oid), api.B1)
        self.assertRefused(r, "'id'")
        r = self.req("POST", "/v1/cases", api.case_body("C-x", ident("O", 65)), api.B1)
        self.assertError(r, 404, "not_found")
        self.healthy()
        # nothing was made: the bound id is still free
        self.assertOk(self.req("POST", "/v1/orders", self.order(ident("O"), [line]),
                               api.PLATFORM), 201)

    def test_texts_counts_money_times_one_past(self):
        line = {"sku": "T1", "category": "apparel", "qty": 1, "price": 100}
        cases = [
            ("items[].qty", [dict(line, qty=10001)], {}),
            ("items[].price", [dict(line, price=MAX_MONEY + 1)], {}),
            ("'items'", [dict(line, sku="S%d" % i) for i in range(101)], {}),
            ("'items' add up", [dict(line, price=MAX_MONEY // 2, qty=2)], {"shipping_fee": 1}),
            ("shipping_fee", [line], {"shipping_fee": MAX_MONEY + 1}),
            ("paid_at", [line], {"paid_at": MAX_TIME + 1}),
            ("delivered_at", [line], {"delivered_at": -1}),
            ("items[].serial", [dict(line, serial=text(257))], {}),
            ("items[].serial", [dict(line, serial="SN\n1")], {}),
            ("unknown category 'furniture' (known: ", [dict(line, category="furniture")], {}),
        ]
        for field, lines, extra in cases:
            with self.subTest(field=field):
                oid = api.new_id("O")
                r = self.req("POST", "/v1/orders", self.order(oid, lines, **extra), api.PLATFORM)
                self.assertRefused(r, field)
                # nothing was stored under the id
                ok = self.order(oid, [line])
                self.assertOk(self.req("POST", "/v1/orders", ok, api.PLATFORM), 201)

        oid = self.make_order()
        one_past = [
            ("evidence", {"evidence": ["p"] * 33}),
            ("evidence[]", {"evidence": [text(257)]}),
            ("evidence[]", {"evidence": ["bad\tid"]}),
            ("evidence[]", {"evidence": [""]}),
        ]
        for field, extra in one_past:
            with self.subTest(field=field):
                cid = api.new_id("C")
                r = self.req("POST", "/v1/cases", api.case_body(cid, oid, reason="quality",
                                                                ctype="refund_only", **extra), api.B1)
                self.assertRefused(r, field)
                self.assertError(self.req("GET", "/v1/cases/%s" % cid, None, api.PLATFORM),
                                 404, "not_found")
        case = api.case_body(api.new_id("C"), oid, reason="quality", ctype="refund_only",
                             evidence=["p"])
        case["items"] = [{"sku": "T1", "qty": 1}] * 101
        self.assertRefused(self.req("POST", "/v1/cases", case, api.B1), "items")

        # action payloads
        _, cid = self.new_case()
        before = self.get(cid)
        for action, payload, field in [
                ("reject", {"reason": text(257)}, "reason"),
                ("reject", {"reason": "as\x00described"}, "reason"),
                ("reject", {"reason": "\u0085"}, "reason"),
                ("offer", {"amount": MAX_MONEY + 1}, "amount")]:
            with self.subTest(action=action, field=field):
                self.assertRefused(self.act(cid, api.S1, action, payload), field)
        self.assertEqual(self.get(cid), before)
        self.assertOk(self.act(cid, api.S1, "agree"))
        for payload, field in [({"carrier": text(257), "tracking": "T"}, "carrier"),
                               ({"carrier": "SF", "tracking": "T\r\n1"}, "tracking"),
                               ({"carrier": "SF", "tracking": "T", "shipping_cost": MAX_MONEY + 1},
                                "shipping_cost")]:
            with self.subTest(field=field):
                self.assertRefused(self.act(cid, api.B1, "ship_return", payload), field)
        self.assertEqual(self.get(cid)["state"], "awaiting_return")
        self.assertOk(self.act(cid, api.B1, "ship_return",
                               {"carrier": text(256), "tracking": text(256)}))
        self.healthy()

    def test_unknown_ids_in_paths_are_not_found(self):
        for bad in [ident("C", 65), "..", "C%0D%0AX:1", "C%22"]:
            with self.subTest(id=bad):
                r = self.req("GET", "/v1/cases/%s" % bad, None, api.PLATFORM)
                self.assertError(r, 404, "not_found")
        self.healthy()


if __name__ == "__main__":
    prog = unittest.main(argv=api.UNITTEST_ARGV, verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
