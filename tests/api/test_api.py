#!/usr/bin/env python3
"""API tests for `aftersale serve`: a real server process on a free port, a temporary SQLite
file and keys file, driven over HTTP/1.1 with the standard library only.

usage: test_api.py AFTERSALE_BINARY PACKS_DIR [unittest arguments...]

Covers the HTTP contract of docs/design.md#check-order, #error-codes (and their statuses) and #interfaces
(endpoints, bearer keys bound to principals), docs/pipe.md (the runtime requests the routes map
onto, idempotency keys, durable answers), keep-alive and pipelining, the size limits, crash
durability (SIGKILL right after an answer) and a graceful SIGTERM.
"""
import hashlib
import http.client
import itertools
import json
import os
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

if len(sys.argv) < 3:
    sys.stderr.write(__doc__)
    sys.exit(2)
EXE = os.path.abspath(sys.argv[1])
PACKS = os.path.abspath(sys.argv[2])
UNITTEST_ARGV = [sys.argv[0]] + sys.argv[3:]

HOUR = 3600 * 1000
DAY = 24 * HOUR
MIB = 1 << 20

# Keys file of the shared server: comments, blank lines and trailing comments are allowed.
KEYS_TEXT = """# API keys of the test server
k-platform platform

k-b1 buyer:B1      # buyer A
k-b2 buyer:B2      # buyer B
k-s1 merchant:S1   # the shop of the test orders
k-s2 merchant:S2   # another shop
k-log logistics
k-w1 merchant:W1   # worklist shop
k-wb buyer:WB
k-r1 merchant:R1   # rule upload shop
k-v1 merchant:V1   # rule versions shop
k-bt1 merchant:BT1 # backtest shop
"""
PLATFORM, B1, B2, S1, S2, LOG = "k-platform", "k-b1", "k-b2", "k-s1", "k-s2", "k-log"

# The action names in the order of the runtime's action table (`actions` lists follow it).
ACTION_ORDER = [
    "open", "revise", "withdraw", "escalate", "accept_offer", "decline_offer", "confirm_receipt",
    "ship_return", "agree", "finish_repair", "refund_instead", "reject", "offer", "confirm_return",
    "reject_return", "inspect", "ship_replacement", "rule_for_buyer", "rule_for_merchant",
    "refund_succeeded", "refund_failed", "return_delivered", "delivered",
]

_ids = itertools.count(1)


def new_id(prefix):
    return "%s%d" % (prefix, next(_ids))


def now_ms():
    return int(time.time() * 1000)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ==========================================================================================
# HTTP helpers
# ==========================================================================================

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body
        self.json = None
        if headers.get("content-type", "").startswith("application/json") and body:
            try:
                self.json = json.loads(body.decode())
            except ValueError:
                self.json = None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def raw_request(method, path, body=None, key=None, headers=(), version="HTTP/1.1"):
    """The bytes of one request, for raw-socket tests."""
    lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
    if key is not None:
        lines.append("Authorization: Bearer %s" % key)
    lines.extend(headers)
    b = encode_body(body)
    if b is not None:
        lines.append("Content-Type: application/json")
        lines.append("Content-Length: %d" % len(b))
    elif method in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b or b"")


def read_response(f):
    """One response from a buffered socket file; None at EOF (or a reset) before a status line."""
    try:
        line = f.readline()
    except ConnectionResetError:
        return None
    if not line:
        return None
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = f.read(n) if n else b""
    return Resp(status, headers, body)


def hangup(sock, f=None):
    """Closes a client connection for real (a socket file keeps the descriptor open)."""
    if f is not None:
        f.close()
    sock.close()


def at_eof(sock, f=None, timeout=10):
    """True when the peer closed the connection (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        data = f.read(1) if f is not None else sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return data == b""


class Server:
    """One `aftersale serve` process on a free port, on a database in `workdir`."""

    def __init__(self, workdir, packs=PACKS, keys_text=KEYS_TEXT, args=()):
        self.dir = workdir
        self.args = list(args)  # more `serve` options
        self.db = os.path.join(workdir, "db")
        self.keys = os.path.join(workdir, "keys")
        self.packs = packs
        with open(self.keys, "w") as f:
            f.write(keys_text)
        self.proc = None
        self.port = None
        self.starts = 0
        self.errpath = None
        self.preexec = None  # run in the child before exec (resource limits)

    def start(self):
        for attempt in range(5):
            self.starts += 1
            port = free_port()
            self.errpath = os.path.join(self.dir, "stderr.%d" % self.starts)
            errf = open(self.errpath, "wb")
            proc = subprocess.Popen(
                [EXE, "serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                 "--keys", self.keys, "--packs", self.packs] + self.args,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                preexec_fn=self.preexec)
            errf.close()
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/healthz")
                    r = c.getresponse()
                    r.read()
                    c.close()
                    if r.status == 200:
                        self.proc, self.port = proc, port
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                raise RuntimeError("aftersale serve did not answer /healthz:\n" + self.stderr())
            if "cannot listen" in self.stderr():
                continue  # the port was taken between bind(0) and the server's bind: again
            raise RuntimeError("aftersale serve exited %d:\n%s" % (proc.returncode, self.stderr()))
        raise RuntimeError("no free port found")

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Signals the server, waits, returns its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "did not exit within %ds of signal %d" % (timeout, sig)

    def kill(self):
        """SIGKILL: no chance to flush anything."""
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self):
        return self.start()

    def sanitizer_report(self):
        err = self.stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                       "runtime error:"):
            if marker in err:
                return err
        return None

    # --- requests --------------------------------------------------------------------------

    def request(self, method, path, body=None, key=None, headers=None, timeout=60):
        h = {}
        if key is not None:
            h["Authorization"] = "Bearer %s" % key
        b = encode_body(body)
        if b is not None:
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=b, headers=h)
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        except (ConnectionError, http.client.HTTPException):
            # a server dying as it dropped us: let it finish, so the test that saw it is blamed
            if self.proc is not None:
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            raise
        finally:
            c.close()

    def connect(self, timeout=30):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s, s.makefile("rb")


def describe_status(rc):
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %r" % (rc,)


def stop_checked(testcase_or_none, server):
    """Stops `server` with SIGTERM; fails on an exit status other than 0 or a sanitizer report
    (and when the server had died before the signal)."""
    if server is None or server.proc is None:
        return
    died = server.proc.poll()
    rc = server.stop()
    report = server.sanitizer_report()
    if died is not None or rc != 0 or report:
        what = ("had died before SIGTERM: " if died is not None else "after SIGTERM: ") + describe_status(rc)
        msg = "aftersale serve %s\n%s" % (what, server.stderr()[-6000:])
        if testcase_or_none is not None:
            testcase_or_none.fail(msg)
        raise AssertionError(msg)


# ==========================================================================================
# The shared server and the test vocabulary
# ==========================================================================================

SHARED = None
SHARED_DIR = None


def setUpModule():
    global SHARED, SHARED_DIR
    SHARED_DIR = tempfile.mkdtemp(prefix="aftersale-api-")
    SHARED = Server(SHARED_DIR).start()


def tearDownModule():
    try:
        stop_checked(None, SHARED)
    finally:
        shutil.rmtree(SHARED_DIR, ignore_errors=True)


def order_body(oid, shop="S1", buyer="B1", items=None, **extra):
    body = {"id": oid, "shop": shop, "buyer": buyer,
            "items": items or [{"sku": "T1", "category": "apparel", "qty": 1, "price": 19900}],
            "shipping_fee": 0, "freight_insurance": False}
    body.update(extra)
    return body


def case_body(cid, oid, ctype="return_refund", reason="no_reason", sku="T1", qty=1, **extra):
    body = {"id": cid, "order": oid, "type": ctype, "reason": reason,
            "items": [{"sku": sku, "qty": qty}]}
    body.update(extra)
    return body


class ApiCase(unittest.TestCase):
    """Helpers over a server (the shared one unless a class sets `server`)."""

    maxDiff = None
    server = None

    @property
    def srv(self):
        return self.server or SHARED

    def setUp(self):
        # The shared server may have died in an earlier test (which then failed): start it again
        # on the same database, so that one crash does not fail every test after it.
        if self.server is None and (SHARED.proc is None or SHARED.proc.poll() is not None):
            SHARED.proc = None
            SHARED.restart()

    def tearDown(self):
        srv = self.srv
        if srv.proc is not None and srv.proc.poll() is not None:
            rc = srv.proc.returncode
            srv.proc = None
            err = srv.stderr()[-6000:]
            if self.server is None:
                SHARED.restart()
            self.fail("aftersale serve died during this test (%s)\n%s" % (describe_status(rc), err))

    def req(self, method, path, body=None, key=None, headers=None):
        return self.srv.request(method, path, body, key, headers)

    # --- assertions ------------------------------------------------------------------------

    def assertOk(self, r, status=200):
        self.assertEqual((r.status, r.json), (status, {"ok": True}), r)
        self.assertEqual(r.headers.get("content-type"), "application/json")

    def assertError(self, r, status, code):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json", r)
        self.assertIsInstance(r.json, dict, r)
        self.assertEqual(sorted(r.json), ["error", "message"], r)
        self.assertEqual(r.json["error"], code, r)
        self.assertIsInstance(r.json["message"], str, r)
        self.assertTrue(r.json["message"], "the message is empty: %r" % r)

    # --- fixtures --------------------------------------------------------------------------

    def make_order(self, shop="S1", buyer="B1", stage="delivered", items=None, **extra):
        oid = new_id("O")
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid, shop, buyer, items, **extra),
                               PLATFORM), 201)
        if stage in ("shipped", "delivered"):
            self.assertOk(self.req("POST", "/v1/orders/%s/ship" % oid, None, PLATFORM))
        if stage == "delivered":
            self.assertOk(self.req("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM))
        return oid

    def open_case(self, oid, key=B1, **kw):
        cid = new_id("C")
        self.assertOk(self.req("POST", "/v1/cases", case_body(cid, oid, **kw), key), 201)
        return cid

    def new_case(self, shop="S1", buyer="B1", key=B1, **kw):
        oid = self.make_order(shop, buyer)
        return oid, self.open_case(oid, key, **kw)

    def act(self, cid, key, action, payload=None, version=None, as_=None, headers=None, **extra):
        body = {"action": action}
        if payload is not None:
            body["payload"] = payload
        if version is not None:
            body["version"] = version
        if as_ is not None:
            body["as"] = as_
        body.update(extra)
        return self.req("POST", "/v1/cases/%s/actions" % cid, body, key, headers)

    def wait_state(self, cid, state, timeout=20):
        deadline = time.time() + timeout
        while True:
            c = self.get(cid)
            if c["state"] == state or time.time() > deadline:
                return c
            time.sleep(0.1)

    def get(self, cid, key=PLATFORM):
        r = self.req("GET", "/v1/cases/%s" % cid, None, key)
        self.assertEqual(r.status, 200, r)
        return r.json

    def assertUnchanged(self, cid, before):
        after = self.get(cid)
        self.assertEqual(after, before, "a refused command changed the case")


def actions_in_order(names):
    return sorted(names, key=ACTION_ORDER.index)


# What each role may take in the states of a return_refund case (docs/rulebook.md#where-agreement-leads, docs/design.md#states-and-actions).
RR_ACTIONS = {
    "requested": {"buyer": ["revise", "withdraw"], "merchant": ["agree", "reject"], "platform": []},
    "awaiting_return": {"buyer": ["withdraw", "ship_return"], "merchant": [], "platform": []},
    "returning": {"buyer": [], "merchant": ["confirm_return", "reject_return"], "platform": []},
    "rejected": {"buyer": ["revise", "withdraw", "escalate"], "merchant": [], "platform": []},
    "platform_review": {"buyer": [], "merchant": [], "platform": ["rule_for_buyer", "rule_for_merchant"]},
    "refunding": {"buyer": [], "merchant": [], "platform": ["refund_succeeded", "refund_failed"]},
    "refunded": {"buyer": [], "merchant": [], "platform": []},
    "closed": {"buyer": [], "merchant": [], "platform": []},
}
LOGISTICS_ACTIONS = ["return_delivered", "delivered"]


def platform_actions(state):
    """The platform takes its own actions, and the buyer's and merchant's with "as"."""
    a = RR_ACTIONS[state]
    return actions_in_order(a["buyer"] + a["merchant"] + a["platform"])


# ==========================================================================================
# Endpoints
# ==========================================================================================

class Endpoints(ApiCase):

    def test_healthz(self):
        r = self.req("GET", "/healthz")
        self.assertOk(r)
        r = self.req("GET", "/healthz", key="no-such-key")
        self.assertOk(r)

    def test_create_order(self):
        oid = new_id("O")
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 201)
        # an id already in use is bad_request (docs/design.md#limits)
        self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 400, "bad_request")

    def test_create_order_bad_shapes(self):
        for body in (order_body(new_id("O"), color="red"),            # unknown key
                     {"id": new_id("O"), "shop": "S1", "buyer": "B1"},  # no items
                     order_body(new_id("O"), shipping_fee=-1),          # out of range
                     order_body(new_id("O"), items=[{"sku": "T1", "category": "apparel",
                                                     "qty": 1, "price": "1"}])):
            self.assertError(self.req("POST", "/v1/orders", body, PLATFORM), 400, "bad_request")

    def test_order_events(self):
        oid = self.make_order(stage="paid")
        self.assertError(self.req("POST", "/v1/orders/%s/confirm" % oid, None, PLATFORM),
                         409, "invalid_state")  # not delivered yet
        self.assertOk(self.req("POST", "/v1/orders/%s/ship" % oid, None, PLATFORM))
        self.assertError(self.req("POST", "/v1/orders/%s/ship" % oid, None, PLATFORM),
                         409, "invalid_state")  # already shipped
        self.assertOk(self.req("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM))
        self.assertOk(self.req("POST", "/v1/orders/%s/confirm" % oid, None, PLATFORM))
        self.assertError(self.req("POST", "/v1/orders/%s/confirm" % oid, None, PLATFORM),
                         409, "invalid_state")
        self.assertError(self.req("POST", "/v1/orders/NO-SUCH-ORDER/ship", None, PLATFORM),
                         404, "not_found")
        self.assertError(self.req("POST", "/v1/orders/%s/cancel" % oid, None, PLATFORM),
                         404, "not_found")

    def test_order_events_take_effect(self):
        oid = self.make_order(stage="paid")
        # docs/rulebook.md#eligibility stage 1 #2: before shipment only refund_only
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid), B1)
        self.assertError(r, 422, "not_eligible")
        self.assertOk(self.req("POST", "/v1/orders/%s/ship" % oid, None, PLATFORM))
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, ctype="exchange"), B1)
        self.assertError(r, 422, "not_eligible")  # shipped, not delivered: no exchange yet
        self.assertOk(self.req("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM))
        self.open_case(oid, ctype="exchange")

    def test_open_case_and_get(self):
        oid = self.make_order()
        cid = new_id("C")
        self.assertOk(self.req("POST", "/v1/cases", case_body(cid, oid), B1), 201)
        c = self.get(cid, B1)
        t = c.get("opened_at")
        self.assertIsInstance(t, int)
        self.assertLess(abs(t - now_ms()), 60000)
        self.assertEqual(c, {
            "id": cid, "order": oid, "type": "return_refund", "reason": "no_reason",
            "category": "apparel", "items": [{"sku": "T1", "qty": 1}], "state": "requested",
            "version": 1, "refund_amount": 19900, "requested_amount": None, "bad_permille": None,
            "remedy": None, "priority": 4, "evidence": [], "opened_at": t,
            "rules": {"platform": "platform@3", "category": "apparel@2"},
            "deadline": {"kind": "merchant_response", "due": t + 48 * HOUR},
            "history": [{"at": t, "actor": "buyer:B1", "action": "open", "from": "",
                         "to": "requested", "decided_by": "buyer:B1",
                         "refund": {"amount": 19900, "paid": 19900, "shipping_fee": 0,
                                    "return_shipping": 0, "source": "default"},
                         "rules": {"platform": "platform@3", "category": "apparel@2"}}],
            "actions": ["revise", "withdraw"],
        })
        # opening the same id again is bad_request; an unknown order not_found
        self.assertError(self.req("POST", "/v1/cases", case_body(cid, oid), B1), 400, "bad_request")
        self.assertError(self.req("POST", "/v1/cases", case_body(new_id("C"), "NO-SUCH-ORDER"), B1),
                         404, "not_found")

    def test_get_case_ignores_query_string(self):
        _, cid = self.new_case()
        r = self.req("GET", "/v1/cases/%s?fields=all&x=1" % cid, key=B1)
        self.assertEqual((r.status, r.json["id"]), (200, cid), r)

    def test_return_refund_through_every_party(self):
        oid, cid = self.new_case()
        c = self.get(cid)
        t0 = c["opened_at"]
        hist = c["history"]

        def step(key, action, payload=None, as_=None, state=None, version=None, deadline=None,
                 actor=None, note=None, refund=None):
            self.assertOk(self.act(cid, key, action, payload, as_=as_))
            c = self.get(cid)
            self.assertEqual((c["state"], c["version"]), (state, version), c)
            e = c["history"][-1]
            want = {"at": e["at"], "actor": actor, "action": action, "from": hist[-1]["to"],
                    "to": state, "rules": c["rules"], "decided_by": actor}
            if note is not None:
                want["note"] = note
            if refund is not None:
                want["refund"] = refund
            self.assertEqual(e, want)
            self.assertEqual(c["history"][:-1], hist)
            hist.append(e)
            self.assertEqual(c["deadline"],
                             None if deadline is None else {"kind": deadline[0],
                                                            "due": e["at"] + deadline[1]})
            self.assertEqual(c["refund_amount"], 19900)
            self.assertEqual(c["actions"], platform_actions(state))
            self.assertEqual(self.get(cid, B1)["actions"], RR_ACTIONS[state]["buyer"])
            self.assertEqual(self.get(cid, S1)["actions"], RR_ACTIONS[state]["merchant"])
            self.assertEqual(self.get(cid, LOG)["actions"], LOGISTICS_ACTIONS)
            return c

        self.assertEqual(c["actions"], platform_actions("requested"))
        step(S1, "agree", state="awaiting_return", version=2, deadline=("buyer_ship", 7 * DAY),
             actor="merchant:S1")
        step(B1, "ship_return", {"carrier": "SF", "tracking": "SF1", "shipping_cost": 1200},
             state="returning", version=3, deadline=("merchant_receive", 10 * DAY),
             actor="buyer:B1", note="SF SF1")
        # the refund as instructed, with its parts: the shipping back is the buyer's here
        c = step(S1, "confirm_return", state="refunding", version=4, actor="merchant:S1",
                 refund={"amount": 19900, "paid": 19900, "shipping_fee": 0,
                         "return_shipping": 1200, "source": "default"})
        c = step(PLATFORM, "refund_succeeded", state="refunded", version=5, actor="platform")
        self.assertGreaterEqual(hist[-1]["at"], t0)
        self.assertEqual(c["remedy"], None)

    def test_logistics_news_changes_no_state(self):
        _, cid = self.new_case()
        self.assertOk(self.act(cid, LOG, "delivered"))
        self.assertOk(self.act(cid, LOG, "return_delivered"))
        c = self.get(cid)
        self.assertEqual(c["state"], "requested")
        self.assertEqual([(e["actor"], e["action"], e["from"], e["to"]) for e in c["history"][1:]],
                         [("logistics", "delivered", "requested", "requested"),
                          ("logistics", "return_delivered", "requested", "requested")])
        self.assertEqual(c["deadline"]["kind"], "merchant_response")

    def test_reject_escalate_and_ruling(self):
        _, cid = self.new_case()
        self.assertOk(self.act(cid, S1, "reject", {"reason": "as_described"}))
        c = self.get(cid, B1)
        self.assertEqual((c["state"], c["actions"], c["history"][-1].get("note")),
                         ("rejected", ["revise", "withdraw", "escalate"], "as_described"))
        self.assertEqual(c["deadline"], {"kind": "escalation_window",
                                         "due": c["history"][-1]["at"] + 7 * DAY})
        self.assertOk(self.act(cid, B1, "escalate"))
        c = self.get(cid)
        self.assertEqual((c["state"], c["deadline"], c["actions"]),
                         ("platform_review", None, ["rule_for_buyer", "rule_for_merchant"]))
        self.assertEqual(self.get(cid, B1)["actions"], [])
        self.assertEqual(self.get(cid, S1)["actions"], [])
        self.assertOk(self.act(cid, PLATFORM, "rule_for_buyer"))
        c = self.get(cid)
        self.assertEqual((c["state"], c["history"][-1]["actor"]), ("awaiting_return", "platform"))

    def test_partial_refund_offer_and_accept(self):
        oid = self.make_order()
        cid = self.open_case(oid, ctype="partial_refund", reason="quality", evidence=["p1"],
                             requested_amount=10000)
        c = self.get(cid, S1)
        self.assertEqual((c["refund_amount"], c["priority"], c["actions"]),
                         (10000, 1, ["agree", "reject", "offer"]))
        self.assertError(self.act(cid, S1, "offer", {"amount": 0}), 400, "bad_request")
        self.assertError(self.act(cid, S1, "offer", {"amount": 19901}), 400, "bad_request")
        self.assertOk(self.act(cid, S1, "offer", {"amount": 5000}))
        c = self.get(cid, B1)
        self.assertEqual((c["state"], c["actions"]),
                         ("negotiating", ["withdraw", "accept_offer", "decline_offer"]))
        self.assertEqual(c["deadline"], {"kind": "buyer_response",
                                         "due": c["history"][-1]["at"] + 48 * HOUR})
        self.assertOk(self.act(cid, B1, "accept_offer"))
        c = self.get(cid)
        self.assertEqual((c["state"], c["refund_amount"]), ("refunding", 5000))


# ==========================================================================================
# Error codes and statuses
# ==========================================================================================

class Errors(ApiCase):

    def test_malformed_json(self):
        _, cid = self.new_case()
        before = self.get(cid)
        for body in (b"{", b"{\"action\": \"withdraw\",}", b"[1, 2]", b"\"withdraw\"", b"\xff\xfe",
                     b"{\"action\": \"withdraw\", \"action\": \"withdraw\"}"):
            r = self.req("POST", "/v1/cases/%s/actions" % cid, body, B1)
            self.assertError(r, 400, "bad_request")
        for body in (b"{", b"[]"):
            self.assertError(self.req("POST", "/v1/orders", body, PLATFORM), 400, "bad_request")
            self.assertError(self.req("POST", "/v1/cases", body, B1), 400, "bad_request")
        self.assertUnchanged(cid, before)

    def test_bad_action_bodies(self):
        _, cid = self.new_case()
        before = self.get(cid)
        cases = [
            {"action": "withdraw", "reason": "changed my mind"},     # unknown key in the body
            {"action": "frobnicate"},                                 # unknown action
            {"action": "auto_agree"},                                 # the system's, never a caller's
            {"action": "open"},                                       # open is POST /v1/cases
            {},                                                       # no action
            {"action": 7},                                            # wrong type
            {"action": "reject", "payload": {"reason": "x", "extra": 1}},  # unknown payload key
            {"action": "agree", "payload": {"note": "x"}},            # payload on a no-payload action
            {"action": "reject", "payload": "as_described"},          # payload not an object
            {"action": "agree", "version": "1"},                      # version of the wrong type
        ]
        for body in cases:
            key = S1 if body.get("action") in ("reject", "agree") else B1
            r = self.req("POST", "/v1/cases/%s/actions" % cid, body, key)
            self.assertError(r, 400, "bad_request")
        r = self.req("POST", "/v1/cases/%s/actions" % cid, b"", B1)  # empty body: no action
        self.assertError(r, 400, "bad_request")
        self.assertUnchanged(cid, before)

    def test_unauthorized(self):
        _, cid = self.new_case()
        before = self.get(cid)
        probes = [("GET", "/v1/cases/%s" % cid, None),
                  ("GET", "/v1/cases/NO-SUCH-CASE", None),          # nothing else is revealed
                  ("POST", "/v1/cases/%s/actions" % cid, {"action": "withdraw"}),
                  ("POST", "/v1/cases/NO-SUCH-CASE/actions", {"action": "withdraw"}),
                  ("POST", "/v1/cases", case_body(new_id("C"), "O1")),
                  ("POST", "/v1/orders", order_body(new_id("O"))),
                  ("POST", "/v1/orders/O1/ship", None),
                  ("GET", "/v1/no-such-endpoint", None),
                  ("POST", "/v1/cases/%s/actions" % cid, b"{")]
        for method, path, body in probes:
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer "},
                            {"Authorization": "Basic azpi"}, {"Authorization": "k-b1"},
                            {"Authorization": "Bearer k-b1x"}, {"X-Api-Key": "k-b1"}):
                r = self.req(method, path, body, None, headers)
                self.assertError(r, 401, "unauthorized")
        self.assertUnchanged(cid, before)

    def test_bearer_scheme_is_case_insensitive(self):
        # RFC 9110 §11.1: the authentication scheme is a case-insensitive token.
        _, cid = self.new_case()
        for scheme in ("bearer", "BEARER"):
            r = self.req("GET", "/v1/cases/%s" % cid, headers={"Authorization": "%s k-b1" % scheme})
            self.assertEqual(r.status, 200, "Authorization: %s k-b1 -> %r" % (scheme, r))

    def test_not_found(self):
        self.assertError(self.req("GET", "/v1/cases/NO-SUCH-CASE", key=B1), 404, "not_found")
        self.assertError(self.req("POST", "/v1/cases/NO-SUCH-CASE/actions", {"action": "withdraw"}, B1),
                         404, "not_found")
        _, cid = self.new_case()
        for method, path in (("GET", "/nope"), ("GET", "/"), ("GET", "/v2/cases/%s" % cid),
                             ("GET", "/v1/nope"), ("POST", "/v1/nope"),
                             ("GET", "/v1/orders/O1"), ("GET", "/v1/cases/%s/history" % cid),
                             ("POST", "/v1/cases/%s/act" % cid),
                             ("POST", "/v1/cases/%s/actions/x" % cid)):
            r = self.req(method, path, {} if method == "POST" else None, PLATFORM)
            self.assertError(r, 404, "not_found")

    def test_method_not_allowed(self):
        _, cid = self.new_case()
        for method in ("DELETE", "PATCH", "PUT"):
            r = self.req(method, "/v1/cases/%s" % cid, {}, PLATFORM)
            self.assertEqual(r.status, 405, r)
            self.assertError(r, 405, "bad_request")

    def test_invalid_state(self):
        _, cid = self.new_case()
        before = self.get(cid)
        self.assertError(self.act(cid, B1, "escalate"), 409, "invalid_state")
        self.assertError(self.act(cid, B1, "confirm_receipt"), 409, "invalid_state")
        self.assertError(self.act(cid, S1, "confirm_return"), 409, "invalid_state")
        self.assertError(self.act(cid, PLATFORM, "refund_succeeded"), 409, "invalid_state")
        self.assertUnchanged(cid, before)

    def test_conflict_on_stale_version(self):
        _, cid = self.new_case()
        before = self.get(cid)
        self.assertError(self.act(cid, S1, "agree", version=0), 409, "conflict")
        self.assertError(self.act(cid, S1, "agree", version=2), 409, "conflict")
        self.assertUnchanged(cid, before)
        self.assertOk(self.act(cid, S1, "agree", version=1))
        self.assertError(self.act(cid, B1, "withdraw", version=1), 409, "conflict")
        self.assertOk(self.act(cid, B1, "withdraw", version=2))
        self.assertEqual(self.get(cid)["state"], "closed")

    def test_duplicate_case(self):
        oid, cid = self.new_case()
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, ctype="exchange"), B1)
        self.assertError(r, 409, "duplicate_case")
        self.assertOk(self.act(cid, B1, "withdraw"))  # the SKU is free again
        self.open_case(oid, ctype="exchange")

    def test_eligibility_refusals(self):
        t = now_ms()
        late = self.make_order(stage="paid", paid_at=t - 40 * DAY, shipped_at=t - 39 * DAY,
                               delivered_at=t - 30 * DAY)
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), late), B1)
        self.assertError(r, 422, "window_expired")
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), late, reason="quality",
                                                     evidence=["p1"]), B1)
        self.assertError(r, 422, "window_expired")
        oid = self.make_order()
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, reason="quality"), B1)
        self.assertError(r, 422, "evidence_required")
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, ctype="partial_refund",
                                                     reason="quality", evidence=["p1"],
                                                     requested_amount=19901), B1)
        self.assertError(r, 422, "amount_exceeds_paid")
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, ctype="refund_only"), B1)
        self.assertError(r, 422, "not_eligible")  # no money without the goods back
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, reason="teleported"), B1)
        self.assertError(r, 400, "bad_request")
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, sku="NOPE"), B1)
        self.assertError(r, 400, "bad_request")
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid, qty=2), B1)
        self.assertError(r, 400, "bad_request")
        # none of them opened anything: the SKU is still free
        self.open_case(oid, reason="quality", evidence=["p1"])

    def test_revise_is_checked_like_an_open(self):
        _, cid = self.new_case()
        r = self.act(cid, B1, "revise", {"reason": "quality"})
        self.assertError(r, 422, "evidence_required")
        self.assertOk(self.act(cid, B1, "revise", {"reason": "quality", "evidence": ["p1", "p2"]}))
        c = self.get(cid, B1)
        self.assertEqual((c["reason"], c["evidence"], c["priority"], c["version"]),
                         ("quality", ["p1", "p2"], 1, 2))


# ==========================================================================================
# Check order (docs/design.md#check-order: the first failing check is the answer)
# ==========================================================================================

class CheckOrder(ApiCase):

    def test_unauthorized_before_everything(self):
        r = self.req("POST", "/v1/cases/NO-SUCH-CASE/actions", b"{", None)
        self.assertError(r, 401, "unauthorized")
        r = self.req("POST", "/v1/orders", b"{", "wrong")
        self.assertError(r, 401, "unauthorized")

    def test_not_found_before_unknown_key(self):
        r = self.req("POST", "/v1/cases/NO-SUCH-CASE/actions", {"action": "withdraw", "colour": 1}, B1)
        self.assertError(r, 404, "not_found")

    def test_not_found_before_malformed_json(self):
        r = self.req("POST", "/v1/cases/NO-SUCH-CASE/actions", b"{", B1)
        self.assertError(r, 404, "not_found")

    def test_not_found_before_unknown_action(self):
        r = self.req("POST", "/v1/cases/NO-SUCH-CASE/actions", {"action": "frobnicate"}, B1)
        self.assertError(r, 404, "not_found")

    def test_bad_request_before_forbidden_wrong_buyer(self):
        _, cid = self.new_case()
        self.assertError(self.act(cid, B2, "frobnicate"), 400, "bad_request")

    def test_bad_request_before_forbidden_unknown_key(self):
        _, cid = self.new_case()
        r = self.req("POST", "/v1/cases/%s/actions" % cid, {"action": "agree", "colour": 1}, S2)
        self.assertError(r, 400, "bad_request")
        r = self.req("POST", "/v1/cases/%s/actions" % cid, b"{", S2)
        self.assertError(r, 400, "bad_request")

    def test_bad_request_before_forbidden_role(self):
        _, cid = self.new_case()
        # a buyer's (forbidden) agree with a payload the action does not take
        self.assertError(self.act(cid, B1, "agree", {"colour": 1}), 400, "bad_request")

    def test_as_of_the_wrong_type_is_bad_request(self):
        # check 3 (a value of the wrong type) before check 4; an "as" that is a string but no
        # principal is a party the case does not know: forbidden
        _, cid = self.new_case()
        before = self.get(cid)
        self.assertError(self.act(cid, PLATFORM, "withdraw", as_=5), 400, "bad_request")
        self.assertError(self.act(cid, PLATFORM, "withdraw", as_=None, **{"as": ["buyer:B1"]}),
                         400, "bad_request")
        self.assertError(self.act(cid, PLATFORM, "withdraw", as_="buyer:"), 403, "forbidden")
        self.assertUnchanged(cid, before)

    def test_forbidden_before_invalid_state(self):
        _, cid = self.new_case()
        self.assertError(self.act(cid, B2, "escalate"), 403, "forbidden")
        self.assertError(self.act(cid, S1, "escalate"), 403, "forbidden")
        self.assertError(self.act(cid, B1, "confirm_return"), 403, "forbidden")

    def test_forbidden_before_conflict(self):
        _, cid = self.new_case()
        self.assertError(self.act(cid, S2, "agree", version=9), 403, "forbidden")
        self.assertError(self.act(cid, B1, "agree", version=9), 403, "forbidden")

    def test_invalid_state_before_conflict(self):
        _, cid = self.new_case()
        self.assertError(self.act(cid, B1, "escalate", version=9), 409, "invalid_state")

    def test_conflict_before_out_of_range(self):
        oid = self.make_order()
        cid = self.open_case(oid, ctype="partial_refund", reason="quality", evidence=["p1"])
        self.assertError(self.act(cid, S1, "offer", {"amount": 0}, version=9), 409, "conflict")
        self.assertError(self.act(cid, S1, "offer", {"amount": 0}, version=1), 400, "bad_request")


# ==========================================================================================
# Permissions: buyer A, buyer B, shop S1, shop S2, platform (with and without "as")
# ==========================================================================================

class Permissions(ApiCase):

    def test_read_matrix(self):
        _, cid = self.new_case()
        expect = {B1: 200, B2: 403, S1: 200, S2: 403, PLATFORM: 200, LOG: 200}
        for key, status in expect.items():
            r = self.req("GET", "/v1/cases/%s" % cid, key=key)
            if status == 200:
                self.assertEqual((r.status, r.json["id"]), (200, cid), (key, r))
            else:
                self.assertError(r, 403, "forbidden")
            self.assertError(self.req("GET", "/v1/cases/NO-SUCH-CASE", key=key), 404, "not_found")

    def test_actions_listed_per_caller(self):
        _, cid = self.new_case()
        self.assertEqual(self.get(cid, B1)["actions"], ["revise", "withdraw"])
        self.assertEqual(self.get(cid, S1)["actions"], ["agree", "reject"])
        self.assertEqual(self.get(cid, PLATFORM)["actions"], ["revise", "withdraw", "agree", "reject"])
        self.assertEqual(self.get(cid, LOG)["actions"], LOGISTICS_ACTIONS)

    def test_action_matrix(self):
        _, cid = self.new_case()
        before = self.get(cid)
        refused = [
            (B2, {"action": "withdraw"}),                            # wrong buyer
            (B2, {"action": "revise", "payload": {"evidence": ["x"]}}),
            (S2, {"action": "agree"}),                               # other shop's merchant
            (S2, {"action": "reject", "payload": {"reason": "x"}}),
            (B1, {"action": "agree"}),                               # buyer doing a merchant action
            (B1, {"action": "reject", "payload": {"reason": "x"}}),
            (S1, {"action": "withdraw"}),                            # merchant doing a buyer action
            (B1, {"action": "rule_for_buyer"}),                      # buyer doing a platform action
            (S1, {"action": "refund_succeeded"}),
            (B1, {"action": "delivered"}),                           # a party posing as logistics
            (S1, {"action": "return_delivered"}),
            (LOG, {"action": "agree"}),                              # logistics doing a merchant action
            (LOG, {"action": "withdraw"}),
            (PLATFORM, {"action": "agree"}),                         # the platform's key, no "as"
            (PLATFORM, {"action": "withdraw"}),
            (B1, {"action": "withdraw", "as": "buyer:B1"}),          # "as" is the platform's alone
            (B2, {"action": "withdraw", "as": "buyer:B1"}),
            (S1, {"action": "agree", "as": "merchant:S1"}),
            (S2, {"action": "agree", "as": "merchant:S1"}),
            (LOG, {"action": "withdraw", "as": "buyer:B1"}),
            (PLATFORM, {"action": "withdraw", "as": "buyer:B2"}),    # "as" a party not on the case
            (PLATFORM, {"action": "agree", "as": "merchant:S2"}),
            (PLATFORM, {"action": "agree", "as": "buyer:B1"}),       # "as" the wrong role
            (PLATFORM, {"action": "withdraw", "as": "merchant:S1"}),
            (PLATFORM, {"action": "withdraw", "as": "nobody"}),
        ]
        for key, body in refused:
            r = self.req("POST", "/v1/cases/%s/actions" % cid, body, key)
            self.assertError(r, 403, "forbidden")
        self.assertUnchanged(cid, before)
        # platform's own action: right role, wrong state
        self.assertError(self.act(cid, PLATFORM, "rule_for_buyer"), 409, "invalid_state")
        self.assertUnchanged(cid, before)

    def test_platform_as_merchant_and_buyer(self):
        _, cid = self.new_case()
        self.assertOk(self.act(cid, PLATFORM, "agree", as_="merchant:S1"))
        self.assertOk(self.act(cid, PLATFORM, "withdraw", as_="buyer:B1"))
        c = self.get(cid)
        self.assertEqual((c["state"], c["refund_amount"], c["deadline"], c["actions"]),
                         ("closed", 0, None, []))
        self.assertEqual([(e["actor"], e["action"]) for e in c["history"]],
                         [("buyer:B1", "open"), ("merchant:S1", "agree"), ("buyer:B1", "withdraw")])

    def test_open_permissions(self):
        oid = self.make_order()
        for key, body in ((B2, case_body(new_id("C"), oid)),                     # wrong buyer
                          (S1, case_body(new_id("C"), oid)),                     # merchants never open
                          (S2, case_body(new_id("C"), oid)),
                          (LOG, case_body(new_id("C"), oid)),
                          (B1, dict(case_body(new_id("C"), oid), **{"as": "buyer:B1"})),
                          (S1, dict(case_body(new_id("C"), oid), **{"as": "buyer:B1"})),
                          (PLATFORM, dict(case_body(new_id("C"), oid), **{"as": "buyer:B2"})),
                          (PLATFORM, dict(case_body(new_id("C"), oid), **{"as": "merchant:S1"}))):
            r = self.req("POST", "/v1/cases", body, key)
            self.assertError(r, 403, "forbidden")
        cid = new_id("C")
        r = self.req("POST", "/v1/cases", dict(case_body(cid, oid), **{"as": "buyer:B1"}), PLATFORM)
        self.assertOk(r, 201)
        c = self.get(cid, B1)
        self.assertEqual(c["history"][0]["actor"], "buyer:B1")
        self.assertError(self.req("GET", "/v1/cases/%s" % cid, key=B2), 403, "forbidden")

    def test_only_the_platform_writes_orders(self):
        oid = self.make_order(stage="paid")
        for key in (B1, S1, LOG):
            self.assertError(self.req("POST", "/v1/orders", order_body(new_id("O")), key),
                             403, "forbidden")
            for ev in ("ship", "deliver", "confirm"):
                self.assertError(self.req("POST", "/v1/orders/%s/%s" % (oid, ev), None, key),
                                 403, "forbidden")
        # the order is still unshipped: only refund_only may be opened
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid), B1)
        self.assertError(r, 422, "not_eligible")

    def test_listed_actions_are_takeable(self):
        """Every action a GET lists for its caller is accepted from that caller."""
        for key, role, as_ in ((B1, "buyer", None), (S1, "merchant", None)):
            _, cid = self.new_case()
            listed = self.get(cid, key)["actions"]
            self.assertTrue(listed)
            for action in listed:
                _, cid = self.new_case()
                payload = {"reason": "as_described"} if action == "reject" else None
                if action == "revise":
                    payload = {"evidence": ["p9"]}
                self.assertOk(self.act(cid, key, action, payload, as_=as_))
        _, cid = self.new_case()
        for action in self.get(cid, PLATFORM)["actions"]:
            _, cid2 = self.new_case()
            as_ = "buyer:B1" if action in ("revise", "withdraw") else "merchant:S1"
            payload = {"reason": "as_described"} if action == "reject" else None
            if action == "revise":
                payload = {"evidence": ["p9"]}
            self.assertOk(self.act(cid2, PLATFORM, action, payload, as_=as_))


# ==========================================================================================
# Idempotency-Key
# ==========================================================================================

class Idempotency(ApiCase):

    def test_action_twice_applies_once(self):
        _, cid = self.new_case()
        h = {"Idempotency-Key": "agree-%s" % cid}
        r1 = self.act(cid, S1, "agree", headers=h)
        r2 = self.act(cid, S1, "agree", headers=h)
        self.assertOk(r1)
        self.assertOk(r2)
        self.assertEqual(r1.body, r2.body)
        c = self.get(cid)
        self.assertEqual((c["state"], c["version"], len(c["history"])), ("awaiting_return", 2, 2))
        # without the key the same command is a new one, and refused in the new state
        self.assertError(self.act(cid, S1, "agree"), 409, "invalid_state")

    def test_open_twice_creates_one_case(self):
        oid = self.make_order()
        cid = new_id("C")
        h = {"Idempotency-Key": "open-%s" % cid}
        for _ in range(3):
            self.assertOk(self.req("POST", "/v1/cases", case_body(cid, oid), B1, h), 201)
        c = self.get(cid)
        self.assertEqual((c["version"], len(c["history"])), (1, 1))
        self.assertError(self.req("POST", "/v1/cases", case_body(cid, oid), B1), 400, "bad_request")

    def test_order_twice(self):
        oid = new_id("O")
        h = {"Idempotency-Key": "order-%s" % oid}
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM, h), 201)
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM, h), 201)
        self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 400, "bad_request")

    def test_refusal_is_remembered(self):
        _, cid = self.new_case()
        h = {"Idempotency-Key": "esc-%s" % cid}
        r1 = self.act(cid, B1, "escalate", headers=h)
        self.assertError(r1, 409, "invalid_state")
        self.assertOk(self.act(cid, S1, "reject", {"reason": "as_described"}))
        r2 = self.act(cid, B1, "escalate", headers=h)  # now allowed, but the key was spent
        self.assertEqual((r2.status, r2.json), (r1.status, r1.json))
        self.assertEqual(self.get(cid)["state"], "rejected")

    def test_keys_are_per_principal(self):
        _, c1 = self.new_case()
        _, c2 = self.new_case()
        h = {"Idempotency-Key": "shared-%s" % c1}
        self.assertOk(self.act(c1, S1, "agree", headers=h))
        self.assertOk(self.act(c2, B1, "withdraw", headers=h))  # another principal's key space
        self.assertEqual((self.get(c1)["state"], self.get(c2)["state"]), ("awaiting_return", "closed"))

    def test_long_keys_do_not_collide(self):
        """Two different keys with a long common prefix are two commands: either both apply,
        or a key the server cannot keep whole is refused; never the first answer for the
        second command with the second command dropped."""
        prefix = "k" * 700
        oa, ob = new_id("O"), new_id("O")
        r1 = self.req("POST", "/v1/orders", order_body(oa), PLATFORM, {"Idempotency-Key": prefix + "-a"})
        r2 = self.req("POST", "/v1/orders", order_body(ob), PLATFORM, {"Idempotency-Key": prefix + "-b"})
        for r, oid in ((r1, oa), (r2, ob)):
            if r.status == 400:  # refused whole: nothing was created
                self.assertError(r, 400, "bad_request")
                self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 201)
            else:
                self.assertOk(r, 201)
                self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM),
                                 400, "bad_request")  # it exists

    def test_key_of_64_bytes_and_one_past(self):
        oid = new_id("O")
        h = {"Idempotency-Key": ("%s-" % oid).ljust(64, "x")}
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM, h), 201)
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM, h), 201)
        self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 400, "bad_request")
        other = new_id("O")
        for bad in [("%s-" % other).ljust(65, "x"), "k|1", "k 1", ".", ".."]:
            r = self.req("POST", "/v1/orders", order_body(other), PLATFORM, {"Idempotency-Key": bad})
            self.assertError(r, 400, "bad_request")
            self.assertIn("Idempotency-Key", r.json["message"])
        # nothing was created under the refused keys
        self.assertOk(self.req("POST", "/v1/orders", order_body(other), PLATFORM), 201)

    def test_key_outside_the_identifier_limits(self):
        """docs/design.md#limits: an idempotency key is an identifier; another is 400, nothing applied."""
        oid = new_id("O")
        for key in (("%s-" % oid).ljust(65, "x"), "a b", "a\"b", "a/b", "%0D%0A", ".", ".."):
            r = self.req("POST", "/v1/orders", order_body(oid), PLATFORM, {"Idempotency-Key": key})
            self.assertError(r, 400, "bad_request")
            self.assertIn("Idempotency-Key", r.json["message"])
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 201)

    def test_same_key_pipelined(self):
        _, cid = self.new_case()
        one = raw_request("POST", "/v1/cases/%s/actions" % cid, {"action": "agree"}, S1,
                          ["Idempotency-Key: pipe-%s" % cid])
        s, f = self.srv.connect()
        try:
            s.sendall(one * 3)
            for _ in range(3):
                r = read_response(f)
                self.assertOk(r)
        finally:
            hangup(s, f)
        c = self.get(cid)
        self.assertEqual((c["state"], c["version"], len(c["history"])), ("awaiting_return", 2, 2))


# ==========================================================================================
# Keep-alive and pipelining
# ==========================================================================================

class KeepAliveAndPipelining(ApiCase):

    def test_keep_alive(self):
        _, cid = self.new_case()
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            socks = set()
            for i in range(6):
                if i % 2:
                    c.request("GET", "/v1/cases/%s" % cid, headers={"Authorization": "Bearer k-b1"})
                else:
                    c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.getheader("Connection"))
                socks.add(id(c.sock))
                self.assertIsNotNone(c.sock, "the server closed a keep-alive connection")
            self.assertEqual(len(socks), 1)
        finally:
            c.close()

    def test_pipelined_answers_in_order(self):
        _, cid = self.new_case()
        path = "/v1/cases/%s" % cid
        act = "/v1/cases/%s/actions" % cid
        reqs = [
            raw_request("GET", "/healthz"),
            raw_request("GET", path, key=B1),
            raw_request("POST", act, {"action": "agree"}, S1),
            raw_request("GET", path, key=S1),
            raw_request("POST", "/v1/cases/NO-SUCH-CASE/actions", {"action": "agree"}, S1),
            raw_request("POST", act, {"action": "agree"}, S1),
            raw_request("GET", path),
            raw_request("POST", act, {"action": "ship_return",
                                      "payload": {"carrier": "SF", "tracking": "T9"}}, B1),
            raw_request("GET", path, key=B2),
            raw_request("GET", path, key=B1),
        ]
        s, f = self.srv.connect()
        try:
            s.sendall(b"".join(reqs))
            got = [read_response(f) for _ in reqs]
        finally:
            hangup(s, f)
        self.assertNotIn(None, got, got)
        self.assertOk(got[0])
        self.assertEqual((got[1].status, got[1].json["state"], got[1].json["version"]),
                         (200, "requested", 1))
        self.assertOk(got[2])
        self.assertEqual((got[3].status, got[3].json["state"], got[3].json["version"]),
                         (200, "awaiting_return", 2))
        self.assertError(got[4], 404, "not_found")
        self.assertError(got[5], 409, "invalid_state")
        self.assertError(got[6], 401, "unauthorized")
        self.assertOk(got[7])
        self.assertError(got[8], 403, "forbidden")
        self.assertEqual((got[9].status, got[9].json["state"], got[9].json["version"]),
                         (200, "returning", 3))

    def test_pipelined_writes(self):
        ids = [new_id("O") for _ in range(40)]
        s, f = self.srv.connect()
        try:
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids))
            for _ in ids:
                self.assertOk(read_response(f), 201)
            # all 40 exist: the same 40 again are each refused, in order
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids))
            for o in ids:
                r = read_response(f)
                self.assertError(r, 400, "bad_request")
                self.assertIn(o, r.json["message"])
        finally:
            hangup(s, f)

    def test_many_pipelined(self):
        _, cid = self.new_case()
        reqs = []
        for i in range(1000):
            reqs.append(raw_request("GET", "/healthz") if i % 2 else
                        raw_request("GET", "/v1/cases/%s?n=%d" % (cid, i), key=B1))
        s, f = self.srv.connect()
        try:
            s.sendall(b"".join(reqs))
            for i in range(1000):
                r = read_response(f)
                if i % 2:
                    self.assertOk(r)
                else:
                    self.assertEqual((r.status, r.json["id"]), (200, cid), (i, r))
        finally:
            hangup(s, f)

    def test_answers_larger_than_the_socket_takes(self):
        # a client that reads nothing until it has sent everything, through a small receive
        # buffer: the answers back up in the server's socket, which then takes only part of
        # one; the rest must follow whole and in order
        _, cid = self.new_case()
        reqs = []
        for i in range(2000):
            reqs.append(raw_request("GET", "/metrics") if i % 2 else
                        raw_request("GET", "/v1/cases/%s?n=%d" % (cid, i), key=B1))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", self.srv.port))
        f = s.makefile("rb")
        try:
            s.sendall(b"".join(reqs))
            time.sleep(0.3)
            for i in range(2000):
                r = read_response(f)
                self.assertIsNotNone(r, i)
                if i % 2:
                    self.assertEqual(r.status, 200, (i, r))
                    self.assertIn(b"aftersale_http_requests_total", r.body)
                else:
                    self.assertEqual((r.status, r.json["id"]), (200, cid), (i, r))
        finally:
            hangup(s, f)

    def test_chunked_request(self):
        oid = new_id("O")
        body = json.dumps(order_body(oid)).encode()
        head = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-platform\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 20]), body[i:i + 20])
                          for i in range(0, len(body), 20))
        s, f = self.srv.connect()
        try:
            s.sendall(head + chunks + b"0\r\n\r\n" + raw_request("GET", "/healthz"))
            self.assertOk(read_response(f), 201)
            self.assertOk(read_response(f))
        finally:
            hangup(s, f)
        self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 400, "bad_request")

    def test_request_split_across_writes(self):
        oid = new_id("O")
        data = raw_request("POST", "/v1/orders", order_body(oid), PLATFORM)
        s, f = self.srv.connect()
        try:
            for piece in (data[:5], data[5:40], data[40:-10], data[-10:]):
                s.sendall(piece)
                time.sleep(0.05)
            self.assertOk(read_response(f), 201)
        finally:
            hangup(s, f)

    def test_http10_closes(self):
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("GET", "/healthz", version="HTTP/1.0"))
            r = read_response(f)
            self.assertOk(r)
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_connection_close(self):
        _, cid = self.new_case()
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("GET", "/v1/cases/%s" % cid, key=B1, headers=["Connection: close"])
                      + raw_request("GET", "/healthz"))
            r = read_response(f)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assertTrue(at_eof(s, f), "a response after Connection: close")
        finally:
            hangup(s, f)

    def test_half_close_after_pipelined_writes(self):
        """The client's EOF: what was sent is answered, then the server closes."""
        ids = [new_id("O") for _ in range(3)]
        s, f = self.srv.connect()
        try:
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids)
                      + raw_request("GET", "/healthz"))
            s.shutdown(socket.SHUT_WR)
            for _ in ids:
                self.assertOk(read_response(f), 201)
            self.assertOk(read_response(f))
            self.assertTrue(at_eof(s, f, timeout=5),
                            "the connection stays open after the client's EOF and the last answer")
        finally:
            hangup(s, f)

    def test_client_gone_before_the_answer(self):
        oid = new_id("O")
        s, f = self.srv.connect()
        s.sendall(raw_request("POST", "/v1/orders", order_body(oid), PLATFORM) * 3)
        hangup(s, f)
        # the writes were read, so the first is applied and the others refused; the server lives on
        deadline = time.time() + 30
        while True:
            r = self.req("POST", "/v1/orders", order_body(oid), PLATFORM)
            if r.status == 400 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertError(r, 400, "bad_request")
        time.sleep(0.5)  # the other two answers are written after the durable commit
        self.assertOk(self.req("GET", "/healthz"))

    def test_client_reset_with_answers_pending(self):
        for _ in range(20):
            s, f = self.srv.connect()
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(new_id("O")), PLATFORM)
                               for _ in range(5)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            hangup(s, f)  # RST, not FIN
        time.sleep(0.5)  # the answers are written after the durable commit
        self.assertOk(self.req("GET", "/healthz"))
        self.assertOk(self.req("POST", "/v1/orders", order_body(new_id("O")), PLATFORM), 201)


# ==========================================================================================
# Limits
# ==========================================================================================

def send_in_thread(sock, data):
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Limits(ApiCase):

    def assertTooLarge(self, r, status):
        self.assertIsNotNone(r, "no answer")
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json, {"error": "bad_request", "message": "request too large"})
        self.assertEqual(r.headers.get("connection", "").lower(), "close")

    def test_body_of_exactly_1_mib_is_accepted(self):
        oid = new_id("O")
        body = json.dumps(order_body(oid)).encode()
        body = body[:-1] + b" " * (MIB - len(body)) + b"}"
        self.assertEqual(len(body), MIB)
        self.assertOk(self.req("POST", "/v1/orders", body, PLATFORM), 201)

    def test_body_above_1_mib_by_content_length(self):
        s, f = self.srv.connect()
        try:
            head = ("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-platform\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (MIB + 1)).encode()
            s.sendall(head + b" " * 65536)
            self.assertTooLarge(read_response(f), 413)
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_body_above_1_mib_sent_whole(self):
        oid = new_id("O")
        body = json.dumps(order_body(oid)).encode()
        body = body[:-1] + b" " * (MIB + 1 - len(body)) + b"}"
        s, f = self.srv.connect()
        try:
            send_in_thread(s, raw_request("POST", "/v1/orders", body, PLATFORM))
            self.assertTooLarge(read_response(f), 413)
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)
        # nothing was created
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 201)

    def test_chunked_body_above_1_mib(self):
        s, f = self.srv.connect()
        try:
            head = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-platform\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            send_in_thread(s, head + chunk * 17 + b"0\r\n\r\n")
            self.assertTooLarge(read_response(f), 413)
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_huge_header(self):
        for extra in (["X-Big: " + "a" * 20000],
                      ["X-Pad-%d: %s" % (i, "b" * 500) for i in range(40)]):
            s, f = self.srv.connect()
            try:
                s.sendall(raw_request("GET", "/healthz", headers=extra))
                self.assertTooLarge(read_response(f), 431)
                self.assertTrue(at_eof(s, f))
            finally:
                hangup(s, f)

    def test_huge_url(self):
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("GET", "/v1/cases/" + "A" * 20000, key=B1))
            self.assertTooLarge(read_response(f), 431)
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_headers_under_the_limit(self):
        r = self.req("GET", "/healthz", headers={"X-Pad-%d" % i: "c" * 1000 for i in range(10)})
        self.assertOk(r)

    def test_request_trickled_too_slowly(self):
        """docs/api.md: a request not complete within 10 s of its first byte is 408."""
        data = raw_request("GET", "/healthz", headers=["X-Slow: " + "s" * 40])
        s, f = self.srv.connect()
        try:
            start = time.time()
            i = 0
            try:
                while time.time() - start < 11.5 and i < len(data) - 1:
                    s.sendall(data[i:i + 1])  # a byte every half second keeps the idle timer quiet
                    i += 1
                    time.sleep(0.5)
                s.sendall(data[i:])
            except OSError:
                pass  # the server answered 408 and closed while we were still trickling
            r = read_response(f)
            self.assertIsNotNone(r, "no answer")
            self.assertEqual((r.status, r.json),
                             (408, {"error": "bad_request", "message": "request too slow"}))
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_garbage(self):
        for junk in (b"HELLO WORLD\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 10,
                     b"GET /healthz HTTP/9.9.9 nonsense\r\n\r\n", b"\x00" * 100):
            s, f = self.srv.connect()
            try:
                s.sendall(junk)
                r = read_response(f)
                self.assertIsNotNone(r, junk)
                self.assertEqual((r.status, r.json),
                                 (400, {"error": "bad_request", "message": "malformed HTTP"}), junk)
                self.assertEqual(r.headers.get("connection", "").lower(), "close")
                self.assertTrue(at_eof(s, f))
            finally:
                hangup(s, f)

    def test_garbage_after_a_pending_write(self):
        oid = new_id("O")
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("POST", "/v1/orders", order_body(oid), PLATFORM)
                      + b"\x01\x02 garbage\r\n\r\n")
            self.assertOk(read_response(f), 201)  # answered once durable, before the 400
            r = read_response(f)
            self.assertEqual((r.status, r.json),
                             (400, {"error": "bad_request", "message": "malformed HTTP"}))
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_too_large_after_a_pending_write(self):
        oid = new_id("O")
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("POST", "/v1/orders", order_body(oid), PLATFORM)
                      + raw_request("GET", "/healthz", headers=["X-Big: " + "a" * 20000]))
            self.assertOk(read_response(f), 201)
            self.assertTooLarge(read_response(f), 431)
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)

    def test_garbage_after_a_good_request(self):
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("GET", "/healthz") + b"\x01\x02 garbage\r\n\r\n")
            self.assertOk(read_response(f))
            r = read_response(f)
            self.assertEqual((r.status, r.json),
                             (400, {"error": "bad_request", "message": "malformed HTTP"}))
            self.assertTrue(at_eof(s, f))
        finally:
            hangup(s, f)
        self.assertOk(self.req("GET", "/healthz"))


# ==========================================================================================
# Worklist, shop metrics, rules, /metrics
# ==========================================================================================

class WorklistAndMetrics(ApiCase):

    @classmethod
    def setUpClass(cls):
        self = cls("test_rules_listing")
        W = {"shop": "W1", "buyer": "WB", "key": "k-wb"}
        cls.cases = {}
        for name, kw in (("noreason1", {}), ("quality", {"reason": "quality", "evidence": ["p"]}),
                         ("noreason2", {}), ("wrong", {"reason": "wrong_item", "evidence": ["p"]}),
                         ("closed", {})):
            _, cid = self.new_case(W["shop"], W["buyer"], W["key"], **kw)
            cls.cases[name] = cid
        self.assertOk(self.act(cls.cases["closed"], "k-wb", "withdraw"))
        cls.due = {n: self.get(c).get("deadline") and self.get(c)["deadline"]["due"]
                   for n, c in cls.cases.items()}

    def entry(self, name):
        c = self.get(self.cases[name])
        return {"id": c["id"], "order": c["order"], "state": c["state"], "type": c["type"],
                "version": c["version"], "priority": c["priority"], "due": self.due[name]}

    def test_worklist_order_and_pages(self):
        want = [self.entry(n) for n in ("quality", "wrong", "noreason1", "noreason2")]
        r = self.req("GET", "/v1/cases?shop=W1", key="k-w1")
        self.assertEqual((r.status, r.json), (200, {"cases": want, "cursor": None}), r)
        r = self.req("GET", "/v1/cases", key="k-w1")  # a merchant's worklist is its shop's
        self.assertEqual((r.status, r.json), (200, {"cases": want, "cursor": None}), r)
        r = self.req("GET", "/v1/cases?shop=W1&limit=2", key="k-w1")
        self.assertEqual((r.status, r.json), (200, {"cases": want[:2], "cursor": "2"}), r)
        r = self.req("GET", "/v1/cases?shop=W1&limit=2&cursor=2", key="k-w1")
        self.assertEqual((r.status, r.json), (200, {"cases": want[2:], "cursor": None}), r)
        r = self.req("GET", "/v1/cases?shop=W1", key=PLATFORM)
        self.assertEqual((r.status, r.json), (200, {"cases": want, "cursor": None}), r)
        r = self.req("GET", "/v1/cases?shop=W1&state=closed", key="k-w1")
        self.assertEqual((r.status, r.json),
                         (200, {"cases": [self.entry("closed")], "cursor": None}), r)

    def test_worklist_scoping(self):
        want = [self.entry(n) for n in ("quality", "wrong", "noreason1", "noreason2")]
        r = self.req("GET", "/v1/cases", key="k-wb")
        self.assertEqual((r.status, r.json), (200, {"cases": want, "cursor": None}), r)
        r = self.req("GET", "/v1/cases?shop=W1", key=B1)  # another buyer sees none of them
        self.assertEqual((r.status, r.json), (200, {"cases": [], "cursor": None}), r)
        self.assertError(self.req("GET", "/v1/cases?shop=W1", key=S1), 403, "forbidden")
        self.assertError(self.req("GET", "/v1/cases", key=LOG), 403, "forbidden")
        self.assertError(self.req("GET", "/v1/cases?shop=W1"), 401, "unauthorized")

    def test_worklist_bad_queries(self):
        for q in ("state=bogus", "limit=0", "limit=1001", "cursor=-1", "limit=x"):
            self.assertError(self.req("GET", "/v1/cases?shop=W1&" + q, key="k-w1"), 400, "bad_request")

    def test_shop_metrics(self):
        r = self.req("GET", "/v1/shops/W1/metrics", key="k-w1")
        self.assertEqual(r.status, 200, r)
        m = r.json
        self.assertEqual((m["orders"], m["cases_opened"], m["refunds"], m["flagged"]), (5, 5, 0, False))
        for k in ("orders", "cases_opened", "refunds", "dispute_refunds", "auto_agreed",
                  "after_sales_rate", "refund_rate", "dispute_refund_rate", "intervention_rate",
                  "flagged"):
            self.assertIn(k, m)
        r2 = self.req("GET", "/v1/shops/W1/metrics", key=PLATFORM)
        self.assertEqual((r2.status, r2.json), (200, m))
        for key in (S1, "k-wb", B1, LOG):
            self.assertError(self.req("GET", "/v1/shops/W1/metrics", key=key), 403, "forbidden")
        self.assertError(self.req("GET", "/v1/shops/W1/metrics"), 401, "unauthorized")

    def test_rules_listing(self):
        r = self.req("GET", "/v1/rules", key=PLATFORM)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["platform"], "platform@3")
        self.assertEqual(sorted(r.json["categories"]), ["apparel", "electronics", "fresh_food"])
        self.assertError(self.req("GET", "/v1/rules"), 401, "unauthorized")

    def test_prometheus(self):
        r1 = self.req("GET", "/metrics")
        self.assertEqual(r1.status, 200)
        self.assertEqual(r1.headers.get("content-type"), "text/plain; version=0.0.4")

        def samples(r):
            out = {}
            for line in r.body.decode().splitlines():
                if line and not line.startswith("#"):
                    name, value = line.rsplit(" ", 1)
                    out[name] = float(value)
            return out

        a = samples(r1)
        self.req("GET", "/v1/cases/NO-SUCH-CASE", key=B1)
        b = samples(self.req("GET", "/metrics"))
        self.assertEqual(b['aftersale_http_requests_total{class="4xx"}'],
                         a['aftersale_http_requests_total{class="4xx"}'] + 1)
        # the platform's worklist (every case not ended) against the gauges
        open_cases, with_deadline = 0, 0
        cursor = "0"
        while cursor is not None:
            r = self.req("GET", "/v1/cases?limit=1000&cursor=%s" % cursor, key=PLATFORM)
            self.assertEqual(r.status, 200, r)
            open_cases += len(r.json["cases"])
            with_deadline += sum(1 for e in r.json["cases"] if e["due"] is not None)
            cursor = r.json["cursor"]
        self.assertEqual(b["aftersale_pending_deadlines"], with_deadline)
        self.assertEqual(b["aftersale_open_cases"], open_cases,
                         "aftersale_open_cases is not the number of cases not yet ended")


class BacktestCalls:
    """The candidates and calls of the backtest tests."""

    SMALL_CLAIMS = ('return { name = "bt-small-claims", version = "1",\n'
                    '  auto_decide = function(case, order, now)\n'
                    '    if case.refund_amount <= 10000 then\n'
                    '      return { action = "agree", why = "a small claim" } end end }\n')
    # each call as long as the Lua budget lets it be (then dropped as a rule failure)
    SLOW = ('return { name = "bt-slow", version = "1",\n'
            '  auto_decide = function(case, order, now) while true do end end }\n')

    def record(self, shop, sku, cat, price, reason, answer):
        oid = self.make_order(shop, "B1", items=[{"sku": sku, "category": cat, "qty": 1,
                                                   "price": price}])
        cid = self.open_case(oid, B1, ctype="refund_only", reason=reason, sku=sku,
                             evidence=["photo"])
        if answer == "agree":
            self.assertOk(self.act(cid, PLATFORM, "agree", as_="merchant:" + shop))
        elif answer == "reject":
            self.assertOk(self.act(cid, PLATFORM, "reject", {"reason": "worn"},
                                   as_="merchant:" + shop))
        return cid

    def backtest(self, shop, source, key):
        return self.req("POST", "/v1/shops/%s/rules/backtest" % shop, source, key)


class RulesBacktest(BacktestCalls, ApiCase):
    """POST /v1/shops/{shop}/rules/backtest (docs/api.md): the shop's recorded cases replayed
    under a candidate, on a worker thread, nothing written."""

    def test_small_claims(self):
        food = self.record("BT1", "F1", "fresh_food", 30000, "spoiled", "agree")
        small = self.record("BT1", "T1", "apparel", 5000, "quality", "agree")
        worn = self.record("BT1", "T2", "apparel", 8000, "quality", "reject")
        before = self.get(worn)
        r = self.backtest("BT1", self.SMALL_CLAIMS, "k-bt1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertEqual((r.json["shop"], r.json["baseline_rules"]), ("BT1", None))
        changed = {c["case"]: c for c in r.json["changed"]}
        self.assertEqual(sorted(changed), sorted([small, worn]))
        self.assertNotIn(food, changed)  # above 100 yuan: the candidate leaves it alone
        self.assertEqual(changed[small]["baseline"]["auto_decisions"], 0)
        self.assertEqual(changed[small]["candidate"], {"state": "refunding", "refund_amount": 5000,
                                                       "auto_decisions": 1, "deadlines": []})
        self.assertEqual(changed[worn]["candidate"]["state"], "refunding")
        self.assertNotEqual(changed[worn]["baseline"]["state"], "refunding")
        t = r.json["totals"]
        self.assertEqual(t["refunded"], {"baseline": 35000, "candidate": 43000, "delta": 8000})
        self.assertEqual(t["auto_agreed"]["delta"], 2)
        self.assertEqual((t["cases"], t["changed"]), (3, 2))
        self.assertEqual(t["skipped"], {"baseline": 0, "candidate": 2})  # the two merchant answers
        self.assertEqual(self.get(worn), before, "a backtest changed a case")
        self.assertNotIn("BT1", self.req("GET", "/v1/rules", key=PLATFORM).json["merchants"])
        # the platform may too; another shop's merchant and a buyer may not
        self.assertEqual(self.backtest("BT1", self.SMALL_CLAIMS, PLATFORM).json, r.json)
        self.assertError(self.backtest("BT1", self.SMALL_CLAIMS, S1), 403, "forbidden")
        self.assertError(self.backtest("BT1", self.SMALL_CLAIMS, B1), 403, "forbidden")
        self.assertError(self.backtest("BT1", self.SMALL_CLAIMS, None), 401, "unauthorized")
        r = self.backtest("BT1", "return { name = ", "k-bt1")
        self.assertError(r, 400, "bad_request")
        self.assertIn("merchant rules of BT1", r.json["message"])
        self.assertError(self.backtest("BT1", "return { name = \"x\", version = \"1\",\n"
                                       "  categories = { \"apparel\" } }", "k-bt1"),
                         400, "bad_request")

    def test_same_source_changes_nothing(self):
        self.assertOk(self.req("PUT", "/v1/shops/BT2/rules", self.SMALL_CLAIMS, PLATFORM))
        self.record("BT2", "T1", "apparel", 5000, "quality", None)
        self.record("BT2", "F1", "fresh_food", 30000, "spoiled", "agree")
        r = self.backtest("BT2", self.SMALL_CLAIMS, PLATFORM)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["baseline_rules"], r.json["changed"]), ("1", []))
        t = r.json["totals"]
        self.assertEqual((t["cases"], t["changed"], t["refunded"]["delta"]), (2, 0, 0))
        self.assertEqual(t["skipped"], {"baseline": 0, "candidate": 0})

    def test_the_server_answers_during_a_backtest(self):
        for i in range(100):
            self.record("BT3", "T%d" % i, "apparel", 5000, "quality", None)
        result = {}

        def run():
            t0 = time.monotonic()
            result["r"] = self.backtest("BT3", self.SLOW, PLATFORM)
            result["s"] = time.monotonic() - t0

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        h = self.req("GET", "/healthz")
        healthz_s = time.monotonic() - t0
        still_running = th.is_alive()
        th.join(60)
        self.assertEqual(h.status, 200, h)
        self.assertEqual(result["r"].status, 200, result["r"])
        self.assertTrue(still_running, "the backtest was over in %.2f s: too short to tell"
                        % result["s"])
        self.assertLess(healthz_s, result["s"] / 2, "healthz waited for the backtest")


class MerchantRulesUpload(ApiCase):

    RULES = ('return { name = "r1-returns", version = "7",\n'
             '  eligibility = function(order, request, now) return true end }\n')

    def test_upload_and_effect(self):
        t = now_ms()
        oid = self.make_order("R1", "B1", stage="paid", paid_at=t - 25 * DAY,
                              shipped_at=t - 24 * DAY, delivered_at=t - 20 * DAY)
        r = self.req("POST", "/v1/cases", case_body(new_id("C"), oid), B1)
        self.assertError(r, 422, "window_expired")
        for key in (S1, B1, LOG):
            self.assertError(self.req("PUT", "/v1/shops/R1/rules", self.RULES, key), 403, "forbidden")
        self.assertError(self.req("PUT", "/v1/shops/R1/rules", self.RULES), 401, "unauthorized")
        self.assertError(self.req("PUT", "/v1/shops/R1/rules", "return {", "k-r1"), 400, "bad_request")
        self.assertError(self.req("PUT", "/v1/shops/R1/rules",
                                  'return { name = "x", version = "1", categories = { "apparel" } }',
                                  "k-r1"), 400, "bad_request")
        self.assertNotIn("R1", self.req("GET", "/v1/rules", key=PLATFORM).json["merchants"])
        self.assertOk(self.req("PUT", "/v1/shops/R1/rules", self.RULES, "k-r1"))
        r = self.req("GET", "/v1/rules", key=PLATFORM)
        self.assertEqual(r.json["merchants"].get("R1"), "r1-returns@7")
        cid = self.open_case(oid)  # the shop's 30-day returns (docs/rulebook.md#merchant-bounds)
        self.assertEqual(self.get(cid)["rules"], {"platform": "platform@3", "category": "apparel@2",
                                                  "merchant": "r1-returns@7"})

    def test_history_says_who_decided_and_why(self):
        """docs/design.md#provenance over HTTP: a category rule's auto-agreement with its pack,
        hook, why and the refund's parts; a merchant hook that throws, dropped with its file:line;
        a merchant's auto-decision with its own why."""
        fresh = [{"sku": "F1", "category": "fresh_food", "qty": 1, "price": 3000}]
        oid = self.make_order("R3", "B1", items=fresh)
        cid = self.open_case(oid, type="refund_only", reason="spoiled", sku="F1",
                             evidence=["photo-1"])
        c = self.wait_state(cid, "refunding")
        agree = c["history"][1]
        self.assertEqual(agree, {
            "at": agree["at"], "actor": "system", "action": "agree", "from": "requested",
            "to": "refunding", "decided_by": "rule:auto_decide", "hook": "auto_decide",
            "layer": "category", "pack": "fresh_food@4",
            "why": "a claim of at most 50 yuan with evidence: fresh food cannot wait for a reply",
            "refund": {"amount": 3000, "paid": 3000, "shipping_fee": 0, "return_shipping": 0,
                       "source": "default"},
            "rules": {"platform": "platform@3", "category": "fresh_food@4"}})
        src = ('return { name = "r3-rules", version = "1",\n'
               '  priority = function(c, o) error("priority exploded") end,\n'
               '  auto_decide = function(c, o, now)\n'
               '    return { action = "agree", why = "we trust our buyers" } end }\n')
        self.assertOk(self.req("PUT", "/v1/shops/R3/rules", src, PLATFORM))
        oid = self.make_order("R3", "B1")
        cid = self.open_case(oid, type="refund_only", reason="quality", evidence=["photo-2"])
        h = self.wait_state(cid, "refunding")["history"]
        dropped = [e for e in h if "dropped" in e]
        self.assertEqual(len(dropped), 1, h)
        self.assertEqual(dropped[0]["dropped"], {"hook": "priority", "layer": "merchant",
                                                 "pack": "r3-rules@1", "failed": True,
                                                 "where": "merchant rules of R3:2"}, dropped)
        self.assertIn("priority exploded", dropped[0]["note"])
        self.assertNotIn("decided_by", dropped[0])
        agree = [e for e in h if e["action"] == "agree"][0]
        self.assertEqual((agree["decided_by"], agree["layer"], agree["pack"], agree["why"]),
                         ("rule:auto_decide", "merchant", "r3-rules@1", "we trust our buyers"))

    def test_history_names_the_packs_each_entry_ran_under(self):
        def rules(version):
            return self.RULES.replace("r1-returns", "r2-returns").replace('"7"', '"%d"' % version)
        self.assertOk(self.req("PUT", "/v1/shops/R2/rules", rules(1), PLATFORM))
        _, old = self.new_case("R2", "B1")
        self.assertOk(self.req("PUT", "/v1/shops/R2/rules", rules(2), PLATFORM))
        # an entry made after the upload still ran under the packs the case pinned
        self.assertOk(self.act(old, PLATFORM, "agree", as_="merchant:R2"))
        case = self.get(old)
        self.assertEqual(case["rules"]["merchant"], "r2-returns@1")
        self.assertEqual([e["action"] for e in case["history"]], ["open", "agree"])
        for e in case["history"]:
            self.assertEqual(e["rules"], case["rules"])
        _, new = self.new_case("R2", "B1")
        self.assertEqual([e["rules"]["merchant"] for e in self.get(new)["history"]],
                         ["r2-returns@2"])


# ==========================================================================================
# Durability, restarts, signals, options
# ==========================================================================================

class OwnServer(ApiCase):
    """A test with its own server and directory."""

    packs = None
    args = ()  # more `serve` options

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="aftersale-api-own-")
        self.server = Server(self.tmp, packs=self.packs_dir(), args=self.args).start()

    def packs_dir(self):
        return PACKS

    def tearDown(self):
        try:
            stop_checked(self, self.server)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class BacktestAndStop(BacktestCalls, OwnServer):
    """A backtest on the pool when its client goes away, or when the server is told to stop:
    the server goes on serving, then stops cleanly once the backtest is over (SIGTERM waits
    for it, as for any answer still owed)."""

    def slow_backtest_in_flight(self, shop):
        for i in range(150):
            self.record(shop, "T%d" % i, "apparel", 5000, "quality", None)
        result = {}

        def run():
            result["r"] = self.backtest(shop, self.SLOW, PLATFORM)

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.1)
        self.assertTrue(th.is_alive(), "the backtest was over too soon to tell: %r" % result)
        return th, result

    def test_client_gone_mid_backtest(self):
        for i in range(150):
            self.record("BT4", "T%d" % i, "apparel", 5000, "quality", None)
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        c.request("POST", "/v1/shops/BT4/rules/backtest", body=self.SLOW.encode(),
                  headers={"Authorization": "Bearer %s" % PLATFORM})
        time.sleep(0.1)
        c.close()  # gone before the answer
        th, result = self.slow_backtest_in_flight("BT5")
        th.join(120)
        self.assertEqual(result["r"].status, 200, result["r"])
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    def test_sigterm_waits_for_a_running_backtest(self):
        th, result = self.slow_backtest_in_flight("BT6")
        t0 = time.monotonic()
        rc = self.server.stop()
        th.join(120)
        self.assertEqual(rc, 0, self.server.stderr()[-3000:])
        self.assertIsNone(self.server.sanitizer_report())
        # the answer still owed was given before the exit
        self.assertIn("r", result, "no answer: the server exited under a running backtest")
        self.assertEqual(result["r"].status, 200, result["r"])
        self.assertLess(time.monotonic() - t0, 120)


class RuleVersions(OwnServer):
    """docs/design.md#pack-versions version identity: name@version names one source for good."""

    @staticmethod
    def src(version, body="return true"):
        return ('-- rules of V1 店\n' +
                'return { name = "v1-rules", version = "%s",\n'
                '  eligibility = function(order, request, now) %s end }\n' % (version, body))

    def versions(self):
        r = self.req("GET", "/v1/shops/V1/rules", None, "k-v1")
        self.assertEqual(r.status, 200, r)
        return r.json["versions"]

    def test_conflict_same_source_listing_and_source(self):
        a, b = self.src("1"), self.src("1", "return nil")
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", a, "k-v1"))
        r = self.req("PUT", "/v1/shops/V1/rules", b, "k-v1")
        self.assertError(r, 409, "conflict")
        self.assertIn("v1-rules@1", r.json["message"])
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", a, "k-v1"))  # the same source: that version
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", self.src("2"), "k-v1"))
        vs = self.versions()
        self.assertEqual([(v["name"], v["version"], v["in_force"]) for v in vs],
                         [("v1-rules", "1", False), ("v1-rules", "2", True)])
        self.assertEqual(vs[0]["sha256"], hashlib.sha256(a.encode()).hexdigest())
        for v in vs:
            self.assertIsInstance(v["uploaded_at"], int)
            self.assertEqual(v["cases_pinned"], 0)
        # version 1 is no longer in force and no case pins it: its source is pruned, its
        # identity kept
        self.assertEqual([v.get("pruned", False) for v in vs], [True, False])
        r = self.req("GET", "/v1/shops/V1/rules/1", None, PLATFORM)
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json["source"], r)
        r = self.req("GET", "/v1/shops/V1/rules/2", None, PLATFORM)
        self.assertEqual(r.json["source"], self.src("2"))
        self.assertError(self.req("GET", "/v1/shops/V1/rules/9", None, "k-v1"), 404, "not_found")
        self.assertError(self.req("GET", "/v1/shops/V1/rules", None, S1), 403, "forbidden")
        self.assertError(self.req("GET", "/v1/shops/V1/rules/1", None, B1), 403, "forbidden")
        # a version may go back in force (the same source brings the pruned one back); another
        # source under it stays refused
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", a, "k-v1"))
        self.assertEqual([v["in_force"] for v in self.versions()], [True, False])
        r = self.req("GET", "/v1/shops/V1/rules/1", None, PLATFORM)
        self.assertEqual(r.json["source"], a)  # every byte, the CJK comment included
        self.assertError(self.req("PUT", "/v1/shops/V1/rules", b, "k-v1"), 409, "conflict")
        # pruned across a restart too: version 2's identity stays, its source is gone
        self.server.stop()
        self.server.start()
        vs = self.versions()
        self.assertEqual([(v["in_force"], v.get("pruned", False)) for v in vs],
                         [(True, False), (False, True)])
        self.assertEqual(self.req("GET", "/v1/shops/V1/rules/1", None, PLATFORM).json["source"], a)
        self.assertError(self.req("PUT", "/v1/shops/V1/rules", self.src("2", "return nil"), "k-v1"),
                         409, "conflict")
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", self.src("2"), "k-v1"))
        r = self.req("GET", "/v1/shops/V1/rules/2", None, PLATFORM)
        self.assertEqual(r.json["source"], self.src("2"))
        # bad names and versions are refused at the edge
        for bad in ('return { name = "a b", version = "1" }', 'return { name = "n", version = "1:2" }',
                    'return { name = "n", version = "%s" }' % ("9" * 33)):
            self.assertError(self.req("PUT", "/v1/shops/V1/rules", bad, "k-v1"), 400, "bad_request")
        self.assertEqual(len(self.versions()), 2)

    def test_pins_and_versions_survive_a_restart(self):
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", self.src("1"), "k-v1"))
        _, old = self.new_case("V1", "B1")
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", self.src("2"), "k-v1"))
        before = self.versions()
        self.assertEqual([v["cases_pinned"] for v in before], [1, 0])
        self.server.kill()
        self.server.restart()
        self.assertEqual(self.versions(), before)
        self.assertEqual(self.get(old)["rules"]["merchant"], "v1-rules@1")
        self.assertError(self.req("PUT", "/v1/shops/V1/rules", self.src("1", "return nil"), "k-v1"),
                         409, "conflict")

    def test_a_stored_pack_that_fails_to_load_does_not_stop_the_server(self):
        self.assertOk(self.req("PUT", "/v1/shops/V1/rules", self.src("1"), "k-v1"))
        _, cid = self.new_case("V1", "B1")
        self.server.stop()
        # a source that loaded under an older, laxer host (say one with math.random): it
        # fails to load today
        bad = 'error("no longer loads"); return { name = "v1-rules", version = "1" }'
        con = sqlite3.connect(self.server.db)
        con.execute("UPDATE packs SET source = ?, sha256 = ? WHERE shop = 'V1'",
                    (bad, hashlib.sha256(bad.encode()).hexdigest()))
        con.commit()
        con.close()
        self.server.restart()
        self.assertEqual(self.req("GET", "/healthz").status, 200)
        [v] = self.versions()
        self.assertIn("failed", v)
        metrics = self.req("GET", "/metrics").body.decode()
        self.assertIn("aftersale_merchant_packs_failed 1", metrics)
        self.assertRegex(metrics, r"aftersale_pack_load_failures_total [1-9]")
        # the shop's cases go on without its rules; the failure is in the history
        self.assertOk(self.act(cid, "k-v1", "agree"))
        _, new = self.new_case("V1", "B1")
        notes = [e.get("note", "") for e in self.get(new)["history"]]
        self.assertTrue(any("failed to load" in n for n in notes), notes)


class PlatformPackVersions(OwnServer):
    """A changed platform pack file under a version that cases pin is refused at start;
    a new version starts, and the open case keeps the old source from the store."""

    def packs_dir(self):
        self.packs_copy = os.path.join(self.tmp, "packs")
        shutil.copytree(PACKS, self.packs_copy)
        return self.packs_copy

    def test_changed_file_under_pinned_version_then_bumped(self):
        _, cid = self.new_case("S1", "B1")
        version = self.get(cid)["rules"]["platform"]
        self.server.stop()
        path = os.path.join(self.packs_copy, "platform", "platform.lua")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write("-- changed\n" + text)
        with self.assertRaises(RuntimeError) as ctx:
            self.server.restart()
        self.assertIn(version, str(ctx.exception))
        self.assertIn("new version", str(ctx.exception))
        with open(path, "w") as f:
            f.write("-- changed\n" + text.replace('version = "3"', 'version = "4"'))
        self.server.restart()
        self.assertEqual(self.get(cid)["rules"]["platform"], version)
        self.assertOk(self.act(cid, S1, "agree"))
        _, new = self.new_case("S1", "B1")
        self.assertEqual(self.get(new)["rules"]["platform"], "platform@4")


class Durability(OwnServer):

    def test_sigkill_right_after_answers(self):
        oid = new_id("O")
        self.assertOk(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 201)
        self.server.kill()
        self.server.restart()
        self.assertOk(self.req("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM))
        self.server.kill()
        self.server.restart()
        self.assertError(self.req("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM),
                         409, "invalid_state")
        cid = new_id("C")
        self.assertOk(self.req("POST", "/v1/cases", case_body(cid, oid), B1), 201)
        self.server.kill()
        self.server.restart()
        c = self.get(cid)
        self.assertEqual((c["state"], c["version"]), ("requested", 1))
        h = {"Idempotency-Key": "agree-once"}
        self.assertOk(self.act(cid, S1, "agree", headers=h))
        self.server.kill()
        self.server.restart()
        c = self.get(cid, B1)
        self.assertEqual((c["state"], c["version"], c["actions"]),
                         ("awaiting_return", 2, ["withdraw", "ship_return"]))
        self.assertEqual([(e["actor"], e["action"]) for e in c["history"]],
                         [("buyer:B1", "open"), ("merchant:S1", "agree")])
        self.assertEqual(c["deadline"], {"kind": "buyer_ship", "due": c["history"][1]["at"] + 7 * DAY})
        # the idempotency key survives the restart: the first answer, not applied again
        self.assertOk(self.act(cid, S1, "agree", headers=h))
        self.assertEqual(self.get(cid)["version"], 2)

    def test_sigkill_after_a_pipelined_burst(self):
        ids = [new_id("O") for _ in range(25)]
        s, f = self.server.connect()
        try:
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids))
            for _ in ids:
                self.assertOk(read_response(f), 201)
            self.server.kill()
        finally:
            hangup(s, f)
        self.server.restart()
        for o in ids:
            self.assertError(self.req("POST", "/v1/orders", order_body(o), PLATFORM), 400, "bad_request")


    def test_sigkill_during_load_keeps_every_acknowledged_write(self):
        """The hosted issue: a SIGKILL while writes are in flight on several connections, then
        a restart that still has every write whose answer arrived (others may or may not)."""
        conns, acked, lock = [], [], threading.Lock()
        batches = [[new_id("O") for _ in range(300)] for _ in range(4)]

        def reader(f, ids):
            for o in ids:
                r = read_response(f)
                if r is None:
                    return
                if r.status == 201:
                    with lock:
                        acked.append(o)

        threads = []
        for ids in batches:
            s, f = self.server.connect()
            conns.append((s, f))
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids))
            t = threading.Thread(target=reader, args=(f, ids))
            t.start()
            threads.append(t)
        deadline = time.time() + 10
        while time.time() < deadline:
            with lock:
                if len(acked) >= 200:
                    break
            time.sleep(0.001)
        self.server.kill()
        for t in threads:
            t.join(10)
        for s, f in conns:
            hangup(s, f)
        with lock:
            got = list(acked)
        self.assertGreater(len(got), 0, "nothing was acknowledged before the kill")
        self.server.restart()
        for o in got:
            self.assertError(self.req("POST", "/v1/orders", order_body(o), PLATFORM), 400,
                             "bad_request")

class Signals(OwnServer):

    def test_sigterm_exits_0(self):
        oid = new_id("O")
        s, f = self.server.connect()
        try:
            s.sendall(raw_request("POST", "/v1/orders", order_body(oid), PLATFORM))
            self.assertOk(read_response(f), 201)
            # an idle keep-alive connection is open while the signal comes
            rc = self.server.stop(signal.SIGTERM, timeout=30)
            self.assertEqual(rc, 0, self.server.stderr())
            self.assertIsNone(self.server.sanitizer_report(), self.server.stderr())
            self.assertTrue(at_eof(s, f, timeout=5))
        finally:
            hangup(s, f)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.server.port), timeout=5).close()
        self.server.restart()
        self.assertError(self.req("POST", "/v1/orders", order_body(oid), PLATFORM), 400, "bad_request")

    def test_sigterm_answers_what_was_read(self):
        ids = [new_id("O") for _ in range(30)]
        s, f = self.server.connect()
        try:
            s.sendall(b"".join(raw_request("POST", "/v1/orders", order_body(o), PLATFORM) for o in ids))
            first = read_response(f)  # every request of the burst has been read by now
            self.server.proc.send_signal(signal.SIGTERM)
            got = [first] + [read_response(f) for _ in ids[1:]]
            for r in got:
                self.assertOk(r, 201)
            self.assertTrue(at_eof(s, f, timeout=10))
        finally:
            hangup(s, f)
        rc = self.server.proc.wait(30)
        self.server.proc = None
        self.assertEqual(rc, 0, self.server.stderr())
        self.assertIsNone(self.server.sanitizer_report(), self.server.stderr())
        self.server.restart()
        for o in ids:
            self.assertError(self.req("POST", "/v1/orders", order_body(o), PLATFORM), 400, "bad_request")

    def test_sigint_exits_0(self):
        rc = self.server.stop(signal.SIGINT, timeout=30)
        self.assertEqual(rc, 0, self.server.stderr())
        self.assertIsNone(self.server.sanitizer_report(), self.server.stderr())


class Connections(OwnServer):
    # every test connection comes from 127.0.0.1: lift the per-address limit (64) above the
    # global one to reach the latter (tests/hostile/http tests the per-address one)
    args = ("--max-conns-per-client", "2000")

    def test_connection_limit(self):
        """Beyond 1024 open connections a new one gets 503 and is closed; the others are served."""
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1200 and hard >= 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
            soft = min(hard, 4096)
        if soft < 1200:
            self.skipTest("RLIMIT_NOFILE %d is too low to open 1025 connections" % soft)
        try:
            with open("/proc/%d/limits" % self.server.proc.pid) as f:
                for line in f:
                    if line.startswith("Max open files"):
                        server_soft = int(line.split()[3])
                        if server_soft < 1100:
                            self.skipTest("the server's RLIMIT_NOFILE %d is below 1025 connections"
                                          % server_soft)
        except (OSError, ValueError):
            pass
        conns = []
        try:
            for _ in range(1024):
                conns.append(self.server.connect())
            # the server has accepted them all once one of them is answered
            s, f = conns[-1]
            s.sendall(raw_request("GET", "/healthz"))
            self.assertOk(read_response(f))
            extra, ef = self.server.connect()
            try:
                r = read_response(ef)
                self.assertIsNotNone(r, "connection 1025 closed without an answer")
                self.assertEqual((r.status, r.json), (503, {"error": "io", "message": "too many connections"}))
                self.assertTrue(at_eof(extra, ef))
            finally:
                hangup(extra, ef)
            s, f = conns[0]
            s.sendall(raw_request("GET", "/healthz"))
            self.assertOk(read_response(f))
        finally:
            for s, f in conns:
                hangup(s, f)
        deadline = time.time() + 30
        while True:  # the server notices the closes and serves new connections again
            r = self.req("GET", "/healthz")
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertOk(r)


def packs_with_merchant_response(testcase, ms):
    """A copy of the bundled packs under testcase.tmp whose platform pack gives
    merchant_response `ms` instead of 48 h, so that a deadline fires while serving; its dir."""
    d = os.path.join(testcase.tmp, "packs")
    shutil.copytree(PACKS, d)
    p = os.path.join(d, "platform", "platform.lua")
    with open(p) as f:
        src = f.read()
    testcase.assertIn("merchant_response = 48 * HOUR,", src)
    with open(p, "w") as f:
        f.write(src.replace("merchant_response = 48 * HOUR,", "merchant_response = %d," % ms))
    return d


class Deadlines(OwnServer):
    """Short deadlines (a copy of the packs with merchant_response = 1.5 s) on the real clock."""

    def packs_dir(self):
        return packs_with_merchant_response(self, 1500)

    def test_deadline_fires_while_serving(self):
        oid = self.make_order()
        cid = self.open_case(oid)
        c = self.get(cid)
        self.assertEqual(c["deadline"], {"kind": "merchant_response", "due": c["opened_at"] + 1500})
        c = self.wait_state(cid, "awaiting_return")
        self.assertEqual(c["state"], "awaiting_return", c)
        e = c["history"][-1]
        self.assertEqual((e["actor"], e["action"], e["from"], e["to"]),
                         ("system", "auto_agree", "requested", "awaiting_return"))
        self.assertGreaterEqual(e["at"], c["opened_at"] + 1500)
        self.assertLess(e["at"], c["opened_at"] + 1500 + 10000)
        self.assertEqual(self.get(cid, S1)["actions"], [])
        self.assertEqual(self.get(cid, B1)["actions"], ["withdraw", "ship_return"])

    def test_deadline_passed_while_down(self):
        oid = self.make_order()
        cid = self.open_case(oid)
        self.server.kill()
        time.sleep(2.0)
        self.server.restart()
        c = self.wait_state(cid, "awaiting_return", timeout=5)
        self.assertEqual(c["state"], "awaiting_return", c)
        self.assertEqual((c["history"][-1]["actor"], c["history"][-1]["action"]), ("system", "auto_agree"))


class VirtualClock(OwnServer):
    """`aftersale serve --clock virtual` (docs/api.md#post-v1clockadvance--move-a-virtual-clock,
    docs/design.md#time-and-deadlines): the server's time moves only on POST /v1/clock/advance,
    which fires the deadlines passed in due order and answers what fired once it is durable."""

    args = ("--clock", "virtual")

    def clock(self, key=PLATFORM):
        r = self.req("GET", "/v1/clock", None, key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["clock", "now"], r)
        self.assertEqual(r.json["clock"], "virtual", r)
        return r.json["now"]

    def advance(self, body, key=PLATFORM):
        r = self.req("POST", "/v1/clock/advance", body, key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertEqual(sorted(r.json), ["fired", "now"], r)
        return r.json

    def test_time_stands_still_until_moved(self):
        t0 = self.clock()
        self.assertLess(abs(t0 - now_ms()), 60000)  # it started at the wall clock
        oid, cid = self.new_case()
        c = self.get(cid)
        self.assertEqual(c["opened_at"], t0)
        self.assertEqual(c["deadline"], {"kind": "merchant_response", "due": t0 + 48 * HOUR})
        time.sleep(0.3)
        self.assertEqual(self.clock(), t0)
        for key in (B1, S1, LOG):  # any key may read the clock
            self.assertEqual(self.clock(key), t0)
        self.assertError(self.req("GET", "/v1/clock"), 401, "unauthorized")

    def test_advance_48h_fires_merchant_response(self):
        t0 = self.clock()
        oid, cid = self.new_case()
        a = self.advance({"by": "48h"})
        self.assertEqual(a, {"now": t0 + 48 * HOUR, "fired": [
            {"case": cid, "deadline": "merchant_response", "at": t0 + 48 * HOUR,
             "action": "auto_agree", "to": "awaiting_return"}]})
        self.assertEqual(self.clock(), t0 + 48 * HOUR)
        c = self.get(cid)
        self.assertEqual(c["state"], "awaiting_return", c)
        e = c["history"][-1]
        self.assertEqual((e["at"], e["actor"], e["action"], e["from"], e["to"]),
                         (t0 + 48 * HOUR, "system", "auto_agree", "requested", "awaiting_return"))
        self.assertEqual(c["deadline"], {"kind": "buyer_ship", "due": t0 + 48 * HOUR + 7 * DAY})
        # the buyer acts at the moved time
        self.assertOk(self.act(cid, B1, "ship_return", {"carrier": "SF", "tracking": "T1"}))
        self.assertEqual(self.get(cid)["history"][-1]["at"], t0 + 48 * HOUR)

    def test_two_moves_fire_in_due_order(self):
        t0 = self.clock()
        _, c1 = self.new_case()
        self.assertEqual(self.advance({"by": "1h"}), {"now": t0 + HOUR, "fired": []})
        _, c2 = self.new_case()  # opened an hour after c1
        self.assertEqual(self.advance({"by": "47h"})["fired"],
                         [{"case": c1, "deadline": "merchant_response", "at": t0 + 48 * HOUR,
                           "action": "auto_agree", "to": "awaiting_return"}])
        self.assertEqual(self.get(c2)["state"], "requested")
        # one move past three deadlines: each at its own instant, in due order, the ones a
        # fired deadline set fired too
        a = self.advance({"by": "8d"})
        self.assertEqual(a["now"], t0 + 48 * HOUR + 8 * DAY)
        self.assertEqual(a["fired"], [
            {"case": c2, "deadline": "merchant_response", "at": t0 + 49 * HOUR,
             "action": "auto_agree", "to": "awaiting_return"},
            {"case": c1, "deadline": "buyer_ship", "at": t0 + 48 * HOUR + 7 * DAY,
             "action": "auto_close", "to": "closed"},
            {"case": c2, "deadline": "buyer_ship", "at": t0 + 49 * HOUR + 7 * DAY,
             "action": "auto_close", "to": "closed"}])
        for cid in (c1, c2):
            c = self.get(cid)
            self.assertEqual(c["state"], "closed")
            self.assertEqual([(e["actor"], e["action"]) for e in c["history"]],
                             [("buyer:B1", "open"), ("system", "auto_agree"), ("system", "auto_close")])

    def test_to_an_instant(self):
        t0 = self.clock()
        self.assertEqual(self.advance({"to": t0 + 90000}), {"now": t0 + 90000, "fired": []})
        # the same instant again (a retry) moves nothing and fires nothing
        self.assertEqual(self.advance({"to": t0 + 90000}), {"now": t0 + 90000, "fired": []})
        t1 = t0 + 90000 + HOUR
        rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t1 // 1000)) + ".%03dZ" % (t1 % 1000)
        self.assertEqual(self.advance({"to": rfc}), {"now": t1, "fired": []})
        self.assertError(self.req("POST", "/v1/clock/advance", {"to": t0}, PLATFORM),
                         400, "bad_request")  # time never goes back
        self.assertEqual(self.clock(), t1)

    def test_only_the_platform_moves_it(self):
        t0 = self.clock()
        oid, cid = self.new_case()
        before = self.get(cid)
        for key in (S1, B1, LOG):
            self.assertError(self.req("POST", "/v1/clock/advance", {"by": "48h"}, key),
                             403, "forbidden")
        self.assertError(self.req("POST", "/v1/clock/advance", {"by": "48h"}), 401, "unauthorized")
        self.assertEqual(self.clock(), t0)
        self.assertUnchanged(cid, before)

    def test_bad_bodies_change_nothing(self):
        t0 = self.clock()
        oid, cid = self.new_case()
        before = self.get(cid)
        for body in ({"by": 0}, {"by": "0s"}, {"by": "-1h"}, {"by": -3600000}, {"by": "366d"},
                     {"by": "365d1s"}, {"by": "soon"}, {"by": "48 h"}, {"by": ""}, {"by": None},
                     {"by": "48h", "reason": "tests"}, {"when": "48h"}, {}, [], "48h",
                     {"by": "48h", "to": t0 + 1}, {"to": -1}, {"to": "tomorrow"},
                     {"to": t0 + 366 * DAY}, b"{\"by\": ", b""):
            r = self.req("POST", "/v1/clock/advance", body, PLATFORM)
            self.assertError(r, 400, "bad_request")
        self.assertEqual(self.clock(), t0)
        self.assertUnchanged(cid, before)
        self.assertEqual(self.advance({"by": "365d"})["now"], t0 + 365 * DAY)  # the bound itself

    def test_state_survives_a_restart(self):
        t0 = self.clock()
        oid, cid = self.new_case()
        self.assertEqual(len(self.advance({"by": "48h"})["fired"]), 1)
        self.server.kill()  # SIGKILL right after the answer: it was durable before it
        self.server.restart()
        c = self.get(cid)
        self.assertEqual((c["state"], c["version"]), ("awaiting_return", 2), c)
        # the clock resumes where the file's last transition is, not back at the wall clock
        self.assertEqual(self.clock(), t0 + 48 * HOUR)
        self.assertEqual(self.advance({"by": "7d"})["fired"],
                         [{"case": cid, "deadline": "buyer_ship", "at": t0 + 48 * HOUR + 7 * DAY,
                           "action": "auto_close", "to": "closed"}])
        stop_checked(self, self.server)
        self.server.restart()
        self.assertEqual(self.get(cid)["state"], "closed")
        self.assertEqual(self.clock(), t0 + 48 * HOUR + 7 * DAY)

    def test_clock_start(self):
        stop_checked(self, self.server)
        self.server.args = ["--clock", "virtual", "--clock-start", "2026-03-01T00:00:00Z"]
        self.server.start()
        self.assertEqual(self.clock(), 1772323200000)


class RealClock(ApiCase):
    """The default server's clock is real: it is read, never moved (docs/api.md)."""

    def test_clock_reads_real(self):
        r = self.req("GET", "/v1/clock", None, B1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["clock"], "real")
        self.assertLess(abs(r.json["now"] - now_ms()), 60000)

    def test_advance_refused(self):
        oid, cid = self.new_case()
        before = self.get(cid)
        self.assertError(self.req("POST", "/v1/clock/advance", {"by": "48h"}, PLATFORM),
                         409, "conflict")
        self.assertError(self.req("POST", "/v1/clock/advance", {"by": "48h"}, S1), 403, "forbidden")
        self.assertError(self.req("POST", "/v1/clock/advance", {"by": "0s"}, PLATFORM),
                         400, "bad_request")  # the shape is checked first (docs/design.md#check-order)
        self.assertUnchanged(cid, before)


class ServeOptions(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="aftersale-api-opt-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_serve(self, *args, keys_text=None, timeout=60):
        argv = [EXE, "serve", "--db", os.path.join(self.tmp, "db"), "--packs", PACKS] + list(args)
        if keys_text is not None:
            k = os.path.join(self.tmp, "keys")
            with open(k, "w") as f:
                f.write(keys_text)
            argv += ["--keys", k]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_help(self):
        rc, out, _ = self.run_serve("--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: aftersale serve", out)

    def test_keys_required(self):
        rc, _, err = self.run_serve("--listen", "127.0.0.1:%d" % free_port())
        self.assertEqual(rc, 2)
        self.assertIn("usage", err)

    def test_bad_listen(self):
        for listen in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x"):
            rc, _, err = self.run_serve("--listen", listen, keys_text="k platform\n")
            self.assertEqual(rc, 2, listen)
            self.assertIn("--listen", err)
        rc, _, err = self.run_serve("--listen", "no-such-host:%d" % free_port(), keys_text="k platform\n")
        self.assertEqual(rc, 1)

    def test_bad_clock(self):
        for args, what in ((("--clock", "fake"), "--clock"), (("--clock", ""), "--clock"),
                           (("--clock", "Virtual"), "--clock"),
                           (("--clock-start", "2026-03-01T00:00:00Z"), "--clock virtual"),
                           (("--clock", "virtual", "--clock-start", "yesterday"), "--clock-start")):
            rc, _, err = self.run_serve("--listen", "127.0.0.1:%d" % free_port(), *args,
                                        keys_text="k platform\n")
            self.assertEqual(rc, 2, args)
            self.assertIn(what, err, args)
        rc, out, _ = self.run_serve("--help")
        self.assertIn("--clock real|virtual", out)

    def test_unknown_option(self):
        rc, _, err = self.run_serve("--frobnicate", keys_text="k platform\n")
        self.assertEqual(rc, 2)

    def test_bad_keys_files(self):
        port = free_port()
        for text, what in (("k wizard\n", ":1:"), ("# c\nk platform\nk buyer:B1\n", ":3:"),
                           ("k platform extra\n", ":1:"), ("k buyer:\n", ":1:")):
            rc, _, err = self.run_serve("--listen", "127.0.0.1:%d" % port, keys_text=text)
            self.assertEqual(rc, 1, text)
            self.assertIn(what, err, text)
        argv = ["--listen", "127.0.0.1:%d" % port, "--keys", os.path.join(self.tmp, "missing")]
        rc, _, err = self.run_serve(*argv)
        self.assertEqual(rc, 1)
        self.assertIn("missing", err)

    def test_port_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            rc, _, err = self.run_serve("--listen", "127.0.0.1:%d" % s.getsockname()[1],
                                        keys_text="k platform\n")
            self.assertEqual(rc, 1)
            self.assertIn("cannot listen", err)
        finally:
            s.close()


if __name__ == "__main__":
    prog = unittest.main(argv=UNITTEST_ARGV, verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
