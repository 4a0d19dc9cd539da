"""Every value the API accepts is stored and restored exactly (issue 11 item 1; docs/api.md
"Limits", docs/design.md#limits), through a real `aftersale pipe --db FILE` (docs/pipe.md).

A seeded generator draws commands: orders with every field between its minimum and its maximum
(identifiers of 1 and 64 bytes from the whole alphabet, texts cut exactly at 256 bytes out of
1- to 4-byte UTF-8 — CJK, emoji —, 100 lines, qty 1 and 10,000, prices 0 and 10^10 fen, times
0 and the end of year 9999), cases of every type and reason with evidence lists of up to 32
entries, and every action with random payloads, valid and invalid, from the right principal
and from the wrong one, some with a version or an idempotency key (resent: the same answer,
applied once); refund instructions are acknowledged (`outbox.ack`) now and then. One shop's merchant rules make merchant_response due after 1 ms, so deadlines
fire on the real clock too. Commands run one at a time: an accepted order or case reads back
exactly as sent (every field; evidence, reasons and notes byte for byte), and each refused
command on a case must leave the case's JSON exactly as it was (and a refused order.create
leaves no order).

After each round every case (`case.get`) and every order (`order.get`) is recorded, the
process is stopped — SIGTERM, SIGKILL after all answers arrived, or end of input, in turn —
and started again on the same file, and every case and order must read JSON-equal to what was
recorded. Then the next round goes on from the restored state.

Usage: test_property.py AFTERSALE_BINARY PACKS_DIR
Environment: PROPERTY_SEED (default: random, printed), PROPERTY_COMMANDS (1000),
PROPERTY_RESTARTS (4), PROPERTY_KEEP=1 keeps the temp dir. Prints at the end:
seed, commands, accepted, refused, restarts, cases compared, orders compared."""
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
from limits_table import (  # noqa: E402  (docs/design.md#limits, one copy for the tests)
    ID_CHARS, MAX_ID, MAX_TEXT, MAX_EVIDENCE, MAX_LINES, MAX_CASE_ITEMS, MAX_QTY, MAX_MONEY,
    MAX_TIME)
DAY = 86_400_000
TYPES = ["refund_only", "return_refund", "exchange", "repair", "partial_refund", "reship"]
REASONS = ["no_reason", "quality", "not_as_described", "wrong_item", "missing_item",
           "damaged_in_transit", "not_received", "late_delivery", "size_fit", "spoiled"]
CATEGORIES = ["apparel", "electronics", "fresh_food"]
# action: the role that may take it (model.h AS_ACTION_MAP)
ACTIONS = {
    "revise": "buyer", "withdraw": "buyer", "escalate": "buyer", "accept_offer": "buyer",
    "decline_offer": "buyer", "confirm_receipt": "buyer", "ship_return": "buyer",
    "agree": "merchant", "finish_repair": "merchant", "refund_instead": "merchant",
    "reject": "merchant", "offer": "merchant", "confirm_return": "merchant",
    "reject_return": "merchant", "inspect": "merchant", "ship_replacement": "merchant",
    "rule_for_buyer": "platform", "rule_for_merchant": "platform",
    "refund_succeeded": "platform", "refund_failed": "platform",
    "return_delivered": "logistics", "delivered": "logistics",
}
# the actions that lead on from each state (most draws take one of these, so that cases travel
# through the whole workflow; the rest are any action, mostly refused with invalid_state)
NEXT = {
    "requested": ["agree", "reject", "offer", "revise", "withdraw"],
    "negotiating": ["accept_offer", "decline_offer", "revise"],
    "rejected": ["escalate", "revise"],
    "platform_review": ["rule_for_buyer", "rule_for_merchant"],
    "awaiting_return": ["ship_return"],
    "returning": ["return_delivered", "confirm_return", "reject_return"],
    "inspecting": ["inspect"],
    "repairing": ["finish_repair", "refund_instead"],
    "reshipping": ["ship_replacement"],
    "delivering": ["confirm_receipt", "delivered"],
    "refunding": ["refund_succeeded", "refund_failed"],
}
FAST_SHOP = "FAST"
FAST_RULES = ('return { name = "fast", version = "1", '
              'deadlines = function() return { merchant_response = 1 } end }')
READ_TIMEOUT = 60.0
# code points by UTF-8 length: ASCII (with the JSON-escaped ones), Latin, CJK and other 3-byte,
# emoji and other 4-byte (no controls, no surrogates, no noncharacter trouble)
POOLS = [
    [chr(c) for c in range(0x20, 0x7F)],
    [chr(c) for c in range(0xA0, 0x800)],
    [chr(c) for c in list(range(0x4E00, 0x9FFF)) + list(range(0x3040, 0x30FF)) + [0x20AC, 0xFFFD]],
    [chr(c) for c in list(range(0x1F300, 0x1F64F)) + list(range(0x20000, 0x2A6DF)) + [0x10FFFD]],
]


class Failure(Exception):
    pass


def first_diff(a, b, path="$"):
    """Where two JSON values first differ, as a path and the two values there."""
    if type(a) is not type(b):
        return "%s: %r vs %r" % (path, a, b)
    if isinstance(a, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return "%s.%s: %s vs %s" % (path, k, "absent" if k not in a else repr(a[k])[:200],
                                            "absent" if k not in b else repr(b[k])[:200])
            d = first_diff(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None if len(a) == len(b) else "%s: %d vs %d entries" % (path, len(a), len(b))
    return None if a == b else "%s: %r vs %r" % (path, a, b)


# ==========================================================================================
# The pipe
# ==========================================================================================

class Pipe:
    """One `aftersale pipe` process; requests one at a time, answers matched by id."""

    def __init__(self, exe, packs, db):
        self.exe, self.packs, self.db = exe, packs, db
        self.next_id = 0
        self.outbox = []
        self.start()

    def start(self):
        self.p = subprocess.Popen([self.exe, "pipe", "--db", self.db, "--packs", self.packs],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(self.p.stdout, self.lines),
                                       daemon=True)
        self.reader.start()
        self.errs = []
        threading.Thread(target=self._drain, args=(self.p.stderr, self.errs), daemon=True).start()

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line)
        q.put(None)

    @staticmethod
    def _drain(f, out):
        for line in f:
            out.append(line.decode(errors="replace"))

    def call(self, req):
        self.next_id += 1
        rid = self.next_id
        req = dict(req, id=rid)
        data = json.dumps(req, ensure_ascii=False).encode() + b"\n"
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except BrokenPipeError:
            raise Failure("the pipe died; stderr: %s" % "".join(self.errs)[-2000:])
        deadline = time.monotonic() + READ_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure("no answer to %r within %ss" % (req, READ_TIMEOUT))
            if line is None:
                raise Failure("the pipe exited (rc %s) before answering %r; stderr: %s"
                              % (self.p.wait(), req, "".join(self.errs)[-2000:]))
            a = json.loads(line)
            if "outbox" in a:
                self.outbox.append(a["outbox"])
                continue
            if a.get("id") is None and a.get("error") == "bad_request" and \
                    a.get("message", "").startswith("malformed JSON"):
                return a  # a line the pipe could not parse has no id to echo (a NUL)
            if a.get("id") != rid:
                raise Failure("an answer %r to no request in flight (waiting for %d)" % (a, rid))
            return a

    def stop(self, how):
        if how == "eof":
            self.p.stdin.close()
            rc = self.p.wait(timeout=60)
            if rc != 0:
                raise Failure("pipe exited %d at end of input; stderr: %s"
                              % (rc, "".join(self.errs)[-2000:]))
        else:
            self.p.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
            self.p.wait(timeout=60)
            try:
                self.p.stdin.close()
            except BrokenPipeError:
                pass
        self.reader.join(timeout=10)

    def restart(self):
        self.start()


# ==========================================================================================
# Values at their limits
# ==========================================================================================

class Gen:
    def __init__(self, rnd):
        self.r = rnd
        self.used = set()

    def ident(self, prefix=""):
        """A fresh identifier: 1 byte, 64 bytes or anything between, from the whole alphabet."""
        r = self.r
        for _ in range(1000):
            n = r.choice([1, MAX_ID, MAX_ID, r.randint(1, MAX_ID)])
            s = (prefix + "".join(r.choice(ID_CHARS) for _ in range(n)))[:n]
            if s in (".", "..") or s in self.used:
                continue
            self.used.add(s)
            return s
        raise AssertionError("no fresh identifier")

    def bad_ident(self):
        r = self.r
        return r.choice(["", ".", "..", "x" * (MAX_ID + 1), "a/b", "a b", "é", "a\u0000b",
                         "O?1", "a%2f"])

    def text(self, n=None):
        """UTF-8 of exactly n bytes (default: 1, 256 or between), chars of 1-4 bytes, cut at
        the limit: filled until the next char does not fit, then padded with ASCII."""
        r = self.r
        if n is None:
            n = r.choice([1, MAX_TEXT, MAX_TEXT, r.randint(1, MAX_TEXT)])
        widths = r.choice([[0, 1, 2, 3], [2], [3], [3, 2], [0, 3]])
        out, size = [], 0
        if n >= 2 and r.random() < 0.1:  # JSON's escaped characters first
            out, size = ['"\\'], 2
        while True:
            c = r.choice(POOLS[r.choice(widths)])
            b = len(c.encode())
            if size + b > n:
                break
            out.append(c)
            size += b
        out.append("x" * (n - size))
        s = "".join(out)
        assert len(s.encode()) == n, (n, len(s.encode()))
        return s

    def bad_text(self):
        r = self.r
        return r.choice(["", self.text(MAX_TEXT) + "x", self.text(MAX_TEXT - 1) + "é",
                         "a\u0001b", "tab\there", "nl\n", "del\u007f", "c1\u0085", 12, None,
                         ["x"]])

    def money(self):
        r = self.r
        return r.choice([0, MAX_MONEY, 1, r.randint(0, MAX_MONEY), r.randint(0, 100000)])

    def time_at(self, now):
        r = self.r
        return r.choice([0, MAX_TIME, now - r.randint(0, 3 * DAY), now - r.randint(0, 30 * DAY),
                         now + r.randint(0, DAY)])


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


# ==========================================================================================
# The run
# ==========================================================================================

class Run:
    def __init__(self, exe, packs, seed, commands, restarts):
        self.seed, self.commands, self.restarts = seed, commands, restarts
        self.r = random.Random(seed)
        self.g = Gen(self.r)
        self.dir = tempfile.mkdtemp(prefix="aftersale-property-")
        self.pipe = Pipe(exe, packs, os.path.join(self.dir, "p.db"))
        self.orders = {}   # id -> the order body sent (accepted ones)
        self.cases = {}    # id -> (order id, shop, buyer)
        self.states = {}   # id -> its state after the last command on it
        self.order_ids, self.case_ids, self.by_order = [], [], {}  # for drawing in O(1)
        self.accepted = self.refused = self.sent = 0
        self.cases_compared = self.orders_compared = self.restarted = 0
        self.last_keyed = None  # (request, answer) of the last command with a key
        self.codes = {}

    def now(self):
        return int(time.time() * 1000)

    def write(self, req):
        self.sent += 1
        a = self.pipe.call(req)
        if a.get("ok"):
            self.accepted += 1
        else:
            self.refused += 1
            self.codes[a.get("error")] = self.codes.get(a.get("error"), 0) + 1
            if not a.get("error") or a["error"] in ("unknown", "io", "no_memory"):
                raise Failure("an undocumented or I/O answer %r to %r" % (a, req))
        return a

    def get_case(self, cid):
        a = self.pipe.call({"op": "case.get", "case": cid})
        if "case" not in a:
            raise Failure("case %r is gone: %r" % (cid, a))
        return a["case"]

    def get_order(self, oid):
        a = self.pipe.call({"op": "order.get", "order": oid})
        if "order" not in a:
            raise Failure("order %r is gone: %r" % (oid, a))
        return a["order"]

    # ---- drawing commands ---------------------------------------------------------------

    def draw_order(self):
        r, g, now = self.r, self.g, self.now()
        oid = g.ident("O")
        shop = r.choice(self.shops)
        buyer = r.choice(self.buyers)
        cat = r.choice(CATEGORIES)
        n = r.choice([1, 1, 2, 3, MAX_LINES, r.randint(1, MAX_LINES)])
        lines, skus = [], set()
        budget = MAX_MONEY
        fee = r.choice([0, 0, r.randint(0, 2000), MAX_MONEY if n == 1 and r.random() < 0.1 else 0])
        budget -= fee
        for i in range(n):
            sku = g.ident("S")
            while sku in skus:
                sku = g.ident("S")
            skus.add(sku)
            qty = r.choice([1, 1, 2, MAX_QTY, r.randint(1, MAX_QTY)])
            # the price fills what is left of the 10^10 total, or not
            room = budget // (qty * (n - i)) if qty else 0
            price = r.choice([0, room, r.randint(0, max(0, room)), min(room, 19900)])
            budget -= price * qty
            line = {"sku": sku, "category": cat if r.random() < 0.9 else r.choice(CATEGORIES),
                    "qty": qty, "price": price}
            if r.random() < 0.3:
                if line["category"] == "electronics" and r.random() < 0.5:
                    body = "".join(r.choice("0123456789") for _ in range(14))
                    line["serial"] = body + luhn_digit(body)
                else:
                    line["serial"] = g.text()
            for flag in ("live", "custom_made", "no_reason_excluded"):
                if r.random() < 0.15:
                    line[flag] = r.random() < 0.5
            lines.append(line)
        body = {"id": oid, "shop": shop, "buyer": buyer, "items": lines}
        if fee or r.random() < 0.3:
            body["shipping_fee"] = fee
        base = now - r.choice([DAY, 3 * DAY, 10 * DAY, 0])
        pick = r.random()
        if pick < 0.6:  # a plausible life: paid, shipped, delivered (windows open)
            body["paid_at"] = base - DAY
            if r.random() < 0.8:
                body["shipped_at"] = base - DAY // 2
                if r.random() < 0.8:
                    body["delivered_at"] = base
                    if r.random() < 0.2:
                        body["confirmed_at"] = base + 1
        elif pick < 0.9:  # times at their bounds
            for k in ("paid_at", "shipped_at", "delivered_at", "confirmed_at"):
                if r.random() < 0.6:
                    body[k] = g.time_at(now)
        if r.random() < 0.3:
            body["freight_insurance"] = r.random() < 0.5
        if r.random() < 0.4:
            body["buyer_credit"] = r.choice([0, 1000, r.randint(0, 1000)])
        return oid, body

    def spoil_order(self, body):
        """One field outside its limits (or one unknown key)."""
        r, g = self.r, self.g
        body = json.loads(json.dumps(body))
        line = r.choice(body["items"])
        what = r.randrange(12)
        if what == 0: body["id"] = g.bad_ident()
        elif what == 1: body["shop"] = g.bad_ident()
        elif what == 2: line["sku"] = g.bad_ident()
        elif what == 3: line["qty"] = r.choice([0, -1, MAX_QTY + 1, 1.5, "1"])
        elif what == 4: line["price"] = r.choice([-1, MAX_MONEY + 1, "0", None])
        elif what == 5: line["serial"] = g.bad_text()
        elif what == 6: body["paid_at"] = r.choice([-1, MAX_TIME + 1, "now", 1.0])
        elif what == 7: body["items"] = body["items"] * 0 if r.random() < 0.5 else \
            [dict(line, sku="S%d" % i) for i in range(MAX_LINES + 1)]
        elif what == 8: body["buyer_credit"] = r.choice([-1, 1001, True])
        elif what == 9: body["shipping_fee"] = MAX_MONEY + 1
        elif what == 10: body["surprise"] = 1
        else: line["category"] = r.choice(["", "toys", g.bad_ident()])
        return body

    def draw_case(self):
        r, g = self.r, self.g
        oid = r.choice(self.order_ids)
        order = self.orders[oid]
        cat = r.choice(order["items"])["category"]
        lines = [l for l in order["items"] if l["category"] == cat]
        k = r.choice([1, 1, len(lines), r.randint(1, len(lines))])
        items = [{"sku": l["sku"], "qty": r.choice([1, l["qty"], r.randint(1, l["qty"])])}
                 for l in r.sample(lines, min(k, MAX_CASE_ITEMS))]
        cid = g.ident("C")
        body = {"id": cid, "order": oid, "type": r.choice(TYPES), "reason": r.choice(REASONS),
                "items": items}
        if r.random() < 0.5:  # one that the packs mostly accept
            body["type"] = r.choice(["refund_only", "return_refund", "return_refund", "exchange",
                                     "repair", "reship"])
            body["reason"] = r.choice(["quality", "not_as_described", "no_reason"])
            if cat == "fresh_food":
                body["type"] = r.choice(["refund_only", "partial_refund", "reship"])
                body["reason"] = r.choice(["quality", "spoiled"])
            if "delivered_at" not in order:
                body["type"] = "refund_only"
            if body["type"] == "partial_refund":
                body["requested_amount"] = r.choice([1, 100])
            body["evidence"] = [g.text() for _ in range(r.choice([1, MAX_EVIDENCE,
                                                                   r.randint(1, MAX_EVIDENCE)]))]
        elif r.random() < 0.7:
            body["evidence"] = [g.text() for _ in range(r.choice([1, MAX_EVIDENCE,
                                                                   r.randint(0, MAX_EVIDENCE)]))]
        if body["type"] == "partial_refund" or r.random() < 0.1:
            body["requested_amount"] = g.money()
        if cat == "fresh_food" or r.random() < 0.1:
            body["bad_permille"] = r.choice([1, 1000, r.randint(1, 1000)])
        return cid, body

    def spoil_case(self, body):
        r, g = self.r, self.g
        body = json.loads(json.dumps(body))
        what = r.randrange(8)
        if what == 0: body["id"] = g.bad_ident()
        elif what == 1: body["evidence"] = [g.text(1)] * (MAX_EVIDENCE + 1)
        elif what == 2: body["evidence"] = [g.bad_text()]
        elif what == 3: body["items"][0]["sku"] = g.bad_ident()
        elif what == 4: body["requested_amount"] = MAX_MONEY + 1
        elif what == 5: body["items"] = [dict(body["items"][0])] * (MAX_CASE_ITEMS + 1)
        elif what == 6: body["type"] = r.choice(["refund", "", 3])
        else: body["colour"] = "red"
        return body

    # ---- an accepted value is echoed back as it was sent --------------------------------

    def echoed_order(self, body, got):
        want = {"id": body["id"], "shop": body["shop"], "buyer": body["buyer"],
                "shipping_fee": body.get("shipping_fee", 0),
                "freight_insurance": body.get("freight_insurance", False),
                "buyer_credit": body.get("buyer_credit")}
        for k in ("shipped_at", "delivered_at", "confirmed_at"):
            want[k] = body.get(k)
        if "paid_at" in body:
            want["paid_at"] = body["paid_at"]
        want["items"] = [{"sku": l["sku"], "category": l["category"], "qty": l["qty"],
                          "price": l["price"], "serial": l.get("serial"),
                          "live": l.get("live", False), "custom_made": l.get("custom_made", False),
                          "no_reason_excluded": l.get("no_reason_excluded", False)}
                         for l in body["items"]]
        # order.get leaves out what the order does not have (an instant not yet happened, an
        # unknown buyer_credit, a line's serial), as POST /v1/orders takes it
        got = dict(got, items=[dict({"serial": None},
                                    **{k: v for k, v in l.items() if k != "attempts"})
                               for l in got["items"]])
        d = first_diff(want, {k: got.get(k) for k in want})
        if d:
            raise Failure("order %r is not what was sent: %s" % (body["id"], d))

    def echoed_case(self, body, got):
        want = {"id": body["id"], "order": body["order"], "type": body["type"],
                "items": body["items"], "evidence": body.get("evidence", []),
                "bad_permille": body.get("bad_permille"),
                "requested_amount": body.get("requested_amount")}
        d = first_diff(want, {k: got[k] for k in want})
        if d:
            raise Failure("case %r is not what was sent: %s" % (body["id"], d))

    def principal(self, role, cid):
        oid, shop, buyer = self.cases[cid]
        r = self.r
        if r.random() < 0.1:  # the wrong one
            role = r.choice(["buyer", "merchant", "platform", "logistics", "stranger"])
            if role == "stranger":
                return r.choice(["buyer:" + self.g.ident("B"), "merchant:" + self.g.ident("M"),
                                 "nobody", "buyer:", "buyer:..", ""])
        if role == "buyer":
            return "buyer:" + buyer
        if role == "merchant":
            return "merchant:" + shop
        return role

    def payload(self, action):
        r, g = self.r, self.g
        valid = r.random() < 0.8
        p = None
        if action == "revise":
            p = {}
            if r.random() < 0.5: p["reason"] = r.choice(REASONS)
            if r.random() < 0.5:
                p["evidence"] = [g.text() for _ in range(r.choice([1, MAX_EVIDENCE,
                                                                    r.randint(0, MAX_EVIDENCE)]))]
            if r.random() < 0.3: p["requested_amount"] = g.money()
            if r.random() < 0.2: p["bad_permille"] = r.choice([1, 1000, r.randint(1, 1000)])
            if not valid:
                p[r.choice(["evidence", "requested_amount", "reason", "carrier"])] = \
                    r.choice([[g.text(1)] * (MAX_EVIDENCE + 1), MAX_MONEY + 1, 7, "x"])
        elif action in ("ship_return", "ship_replacement"):
            p = {"carrier": g.text(), "tracking": g.text()}
            if action == "ship_return" and r.random() < 0.5: p["shipping_cost"] = g.money()
            if not valid:
                p[r.choice(["carrier", "tracking"])] = g.bad_text()
        elif action in ("reject", "reject_return", "refund_failed"):
            p = {"reason": g.text()} if valid or r.random() < 0.3 else {"reason": g.bad_text()}
        elif action == "offer":
            p = {"amount": g.money()} if valid else {"amount": r.choice([MAX_MONEY + 1, "1", None])}
        elif action == "confirm_return":
            p = {"serial": g.text()} if r.random() < 0.5 else {}
            if not valid: p = {"serial": g.bad_text()}
        elif action == "inspect":
            p = {"result": r.choice(["fault", "no_fault"])} if valid else \
                {"result": r.choice(["maybe", 1])}
        elif not valid:
            p = {"unexpected": True}
        if p == {} and r.random() < 0.5:
            p = None
        return p

    def draw_act(self):
        r = self.r
        cid = r.choice(self.case_ids)
        state = self.states.get(cid)
        if state in NEXT and r.random() < 0.7:
            action = r.choice(NEXT[state])
        elif r.random() < 0.97:
            action = r.choice(list(ACTIONS))
        else:
            action = r.choice(["open", "auto_agree", "fly", ""])
        req = {"op": "case.act", "as": self.principal(ACTIONS.get(action, "platform"), cid),
               "case": cid, "action": action}
        p = self.payload(action)
        if p is not None:
            req["payload"] = p
        return cid, req

    # ---- one command --------------------------------------------------------------------

    def keyed(self, req):
        if self.r.random() < 0.1:
            req["key"] = self.g.ident("K")
        return req

    def step(self):
        r = self.r
        # an idempotency key resent: the same answer, nothing applied twice
        if self.last_keyed and r.random() < 0.05:
            req, first = self.last_keyed
            cid = req.get("case", {}).get("id") if req["op"] == "case.open" else req.get("case")
            before = self.get_case(cid) if cid in self.cases else None
            a = self.write(req)
            if a.get("ok") != first.get("ok") or a.get("error") != first.get("error"):
                raise Failure("key %r answered %r, first %r" % (req["key"], a, first))
            if before is not None and self.get_case(cid) != before:
                raise Failure("a resent key %r changed case %r" % (req["key"], cid))
            return
        pick = r.random()
        if not self.orders or pick < 0.15:
            oid, body = self.draw_order()
            if r.random() < 0.15:
                body = self.spoil_order(body)
                a = self.write({"op": "order.create", "order": body})
                if a.get("ok"):
                    raise Failure("a spoiled order was accepted: %s" % json.dumps(body)[:600])
                bid = body.get("id")
                if isinstance(bid, str) and bid not in self.orders:
                    g = self.pipe.call({"op": "order.get", "order": bid})
                    if "order" in g:
                        raise Failure("refused order %r exists: %r" % (bid, a))
                return
            a = self.write({"op": "order.create", "order": body})
            if a.get("ok"):
                self.orders[oid] = body
                self.order_ids.append(oid)
                self.echoed_order(body, self.get_order(oid))
            elif a["error"] != "bad_request" or "add up" not in a.get("message", "") and \
                    "Luhn" not in a.get("message", ""):
                raise Failure("order refused: %r for %s" % (a, json.dumps(body)[:600]))
            elif self.pipe.call({"op": "order.get", "order": oid}).get("order"):
                raise Failure("refused order %r exists" % oid)
        elif pick < 0.17 and self.pipe.outbox:
            # the platform confirms a refund instruction: here, or only for one URL
            key = r.choice(self.pipe.outbox)["key"]
            req = {"op": "outbox.ack", "key": key}
            if r.random() < 0.3:
                req["url"] = "https://hooks.example/" + self.g.ident("U")
            if not self.write(req).get("ok"):
                raise Failure("outbox.ack of %r refused" % key)
        elif pick < 0.2:
            oid = r.choice(self.order_ids)
            self.write({"op": "order." + r.choice(["ship", "deliver", "confirm", "lose"]),
                        "order": oid})
        elif not self.cases or pick < 0.45:
            cid, body = self.draw_case()
            order = self.orders[body["order"]]
            spoiled = r.random() < 0.1
            if spoiled:
                body = self.spoil_case(body)
            who = "buyer:" + order["buyer"] if r.random() < 0.9 else \
                r.choice(["merchant:" + order["shop"], "buyer:" + self.g.ident("B"), "platform"])
            req = self.keyed({"op": "case.open", "as": who, "case": body})
            # the other cases of the order must not change when this one is refused
            siblings = self.by_order.get(body["order"], [])[:3]
            before = {c: self.get_case(c) for c in siblings}
            a = self.write(req)
            if "key" in req:
                self.last_keyed = (req, a)
            if a.get("ok"):
                if order["shop"] == FAST_SHOP:
                    time.sleep(0.003)  # its merchant_response falls due: a seed replays alike
                got = self.get_case(cid)
                self.states[cid] = got["state"]
                self.echoed_case(body, got)
                if spoiled:
                    raise Failure("a spoiled case was accepted: %s" % json.dumps(body)[:600])
                self.cases[cid] = (body["order"], order["shop"], order["buyer"])
                self.case_ids.append(cid)
                self.by_order.setdefault(body["order"], []).append(cid)
            else:
                if spoiled is False and isinstance(body.get("id"), str):
                    if "case" in self.pipe.call({"op": "case.get", "case": cid}):
                        raise Failure("refused case %r exists: %r" % (cid, a))
                for c, j in before.items():
                    if self.get_case(c) != j:
                        raise Failure("a refused case.open %r changed case %r" % (a, c))
        else:
            cid, req = self.draw_act()
            self.keyed(req)
            before = self.get_case(cid)
            if r.random() < 0.2:
                req["version"] = r.choice([before["version"], before["version"] - 1, 10**6])
            a = self.write(req)
            if "key" in req:
                self.last_keyed = (req, a)
            if a.get("ok"):
                got = self.get_case(cid)
                self.states[cid] = got["state"]
                p = req.get("payload") or {}
                if req["action"] == "revise" and "evidence" in p and \
                        got["evidence"] != p["evidence"]:
                    raise Failure("revise kept other evidence in %r: %s" % (cid, first_diff(
                        p["evidence"], got["evidence"])))
                if req["action"] in ("reject", "reject_return", "refund_failed") and \
                        not any(h.get("note") == p["reason"] for h in got["history"]):
                    raise Failure("%s's reason is not in %r's history" % (req["action"], cid))
            else:
                after = self.get_case(cid)
                if after != before:
                    raise Failure("refused %s (%r) changed case %r:\nbefore %s\nafter  %s"
                                  % (req["action"], a, cid, json.dumps(before, ensure_ascii=False),
                                     json.dumps(after, ensure_ascii=False)))

    # ---- a round: commands, record, stop, restart, compare -----------------------------

    def barrier(self):
        """A small valid write: its answer means every batch before it is durable (batches
        are committed and synced in order), also the ones holding fired deadlines."""
        oid, body = self.draw_order()
        body = {"id": oid, "shop": body["shop"], "buyer": body["buyer"],
                "items": [dict(body["items"][0], qty=1, price=1)]}
        body["items"][0].pop("serial", None)
        a = self.write({"op": "order.create", "order": body})
        if not a.get("ok"):
            raise Failure("the barrier order was refused: %r" % a)
        self.orders[oid] = body
        self.order_ids.append(oid)

    def snapshot(self):
        time.sleep(0.05)  # the FAST shop's 1 ms merchant_response deadlines fall due
        self.barrier()
        cases = {c: self.get_case(c) for c in self.cases}
        orders = {o: self.get_order(o) for o in self.orders}
        self.barrier()  # a deadline fired by the reads themselves is durable too
        return cases, orders

    def check_round(self, how):
        before_cases, before_orders = self.snapshot()
        self.pipe.stop(how)
        self.pipe.restart()
        self.restarted += 1
        for cid, j in before_cases.items():
            after = self.get_case(cid)
            if after != j:
                raise Failure("case %r after a restart (%s) differs at %s\nbefore %s\nafter  %s"
                              % (cid, how, first_diff(j, after), json.dumps(j, ensure_ascii=False),
                                 json.dumps(after, ensure_ascii=False)))
            self.cases_compared += 1
        for oid, j in before_orders.items():
            after = self.get_order(oid)
            if after != j:
                raise Failure("order %r after a restart (%s) differs at %s\nbefore %s\nafter  %s"
                              % (oid, how, first_diff(j, after), json.dumps(j, ensure_ascii=False),
                                 json.dumps(after, ensure_ascii=False)))
            self.orders_compared += 1

    def run(self):
        self.shops = [self.g.ident("M") for _ in range(3)] + [FAST_SHOP]
        self.g.used.add(FAST_SHOP)
        self.buyers = [self.g.ident("B") for _ in range(4)]
        a = self.write({"op": "rules.load", "shop": FAST_SHOP, "source": FAST_RULES})
        if not a.get("ok"):
            raise Failure("rules.load: %r" % a)
        hows = ["term", "kill", "eof"]
        per_round = max(1, self.commands // max(1, self.restarts))
        done = 0
        for rnd in range(max(1, self.restarts)):
            n = per_round if rnd < self.restarts - 1 else self.commands - done
            for _ in range(n):
                self.step()
            done += n
            self.check_round(hows[rnd % len(hows)])
        self.pipe.stop("eof")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    exe, packs = sys.argv[1], sys.argv[2]
    seed = int(os.environ.get("PROPERTY_SEED") or random.SystemRandom().randrange(1 << 32))
    commands = int(os.environ.get("PROPERTY_COMMANDS", "1000"))
    restarts = int(os.environ.get("PROPERTY_RESTARTS", "4"))
    print("property: seed %d (replay with PROPERTY_SEED=%d), %d commands, %d restarts"
          % (seed, seed, commands, restarts), flush=True)
    run = Run(exe, packs, seed, commands, restarts)
    t0 = time.monotonic()
    ok = True
    try:
        run.run()
    except Failure as e:
        ok = False
        print("FAIL (seed %d, after %d commands): %s" % (seed, run.sent, e), flush=True)
    finally:
        if run.pipe.p.poll() is None:
            run.pipe.p.kill()
            run.pipe.p.wait()
    print("property: seed %d, commands %d, accepted %d, refused %d, restarts %d, "
          "cases compared %d, orders compared %d (%d cases, %d orders), %.1f s"
          % (seed, run.sent, run.accepted, run.refused, run.restarted, run.cases_compared,
             run.orders_compared, len(run.cases), len(run.orders), time.monotonic() - t0))
    print("property: refusals by code: %s" % json.dumps(run.codes, sort_keys=True))
    if os.environ.get("PROPERTY_KEEP"):
        print("property: kept %s" % run.dir)
    else:
        shutil.rmtree(run.dir, ignore_errors=True)
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
