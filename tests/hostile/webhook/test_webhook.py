#!/usr/bin/env python3
"""Hostile webhook tests: a real `aftersale serve` delivering refund instructions to real
receivers (http.server on 127.0.0.1, and https with a self-signed certificate).

usage: test_webhook.py AFTERSALE_BINARY PACKS_DIR [unittest arguments...]

What docs/api.md (Webhooks) promises and each test checks:
- every delivery is signed: HMAC-SHA256 over "<X-Aftersale-Timestamp>.<body>" with the URL's
  secret, in X-Aftersale-Signature as v1=<hex>; it verifies with that secret, not another;
- a case id full of CR, LF and quotes forges nothing: not a header, not a body field, not an
  acknowledgement of another case's refund;
- a receiver that accepts and never answers times out (--webhook-timeout-ms) and is retried,
  and does not hold up the other receivers;
- --webhook-inflight bounds the transfers at once, and every delivery still arrives;
- a refund instructed again after refund_failed has a new key;
- acknowledgements are per URL and durable: after a restart only the URL that did not answer
  2xx gets the instruction again;
- https with --webhook-ca, to a host name (localhost), and refused without the CA;
- serve refuses a webhook without a secret, a short secret, a URL that is not http(s).
"""
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

if len(sys.argv) < 3:
    sys.stderr.write(__doc__)
    sys.exit(2)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api"))
import test_api as api  # noqa: E402  (the arguments, new_id and free_port; reads sys.argv)

EXE, PACKS, UNITTEST_ARGV = api.EXE, api.PACKS, api.UNITTEST_ARGV
new_id, free_port = api.new_id, api.free_port

KEYS_TEXT = "k-platform platform\nk-b1 buyer:B1\nk-s1 merchant:S1\n"
PLATFORM, B1, S1 = "k-platform", "k-b1", "k-s1"
SECRET = b"s3cret-for-the-webhook-tests-0123456789"
OTHER_SECRET = b"another-secret-of-the-same-length-000000"

def wait_for(cond, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def signature(secret, ts, body):
    return "v1=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, headers, body: bytes, tolerance_ms=300_000) -> bool:
    """docs/api.md's receiver check, as printed there."""
    ts = headers["X-Aftersale-Timestamp"]
    want = "v1=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(int(ts) - time.time() * 1000) <= tolerance_ms
    return fresh and hmac.compare_digest(want, headers["X-Aftersale-Signature"])


# ==========================================================================================
# The receiver
# ==========================================================================================

class Receiver:
    """An HTTP(S) server on 127.0.0.1 recording every POST. `answer(n, body)` gives the status
    of the n-th request (0-based) with that key, or None to accept and never answer."""

    def __init__(self, answer=lambda n, key: 204, tls=None, delay=0.0):
        self.answer = answer
        self.delay = delay
        self.lock = threading.Lock()
        self.received = []       # (time, path, headers, body)
        self.per_key = {}        # key -> requests seen
        self.active = 0
        self.max_active = 0
        self.release = threading.Event()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    key = json.loads(body).get("key")
                except ValueError:
                    key = None
                with rec.lock:
                    rec.received.append((time.time(), self.path, dict(self.headers), body))
                    tries = rec.per_key.get(key, 0)
                    rec.per_key[key] = tries + 1
                    rec.active += 1
                    rec.max_active = max(rec.max_active, rec.active)
                try:
                    status = rec.answer(tries, key)
                    if status is None:          # accept, read, never answer
                        rec.release.wait(60)
                        self.close_connection = True
                        return
                    if rec.delay:
                        time.sleep(rec.delay)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with rec.lock:
                        rec.active -= 1

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a kept-alive connection reset by a stopping server is expected

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/refunds", host="127.0.0.1", scheme="http"):
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self, key=None):
        with self.lock:
            out = [json.loads(b) for _, _, _, b in self.received]
        return [b for b in out if key is None or b.get("key") == key]

    def requests(self):
        with self.lock:
            return list(self.received)

    def count(self, key):
        with self.lock:
            return self.per_key.get(key, 0)


# ==========================================================================================
# The server
# ==========================================================================================

class Server:
    def __init__(self, workdir, hooks, extra=()):
        """`hooks`: [(url, secret bytes or None)]; `extra`: more serve arguments."""
        self.dir = workdir
        self.db = os.path.join(workdir, "db")
        self.keys = os.path.join(workdir, "keys")
        with open(self.keys, "w") as f:
            f.write(KEYS_TEXT)
        self.args = []
        for i, (url, secret) in enumerate(hooks):
            self.args += ["--webhook", url]
            if secret is not None:
                path = os.path.join(workdir, "secret%d" % i)
                with open(path, "wb") as f:
                    f.write(secret + b"\n")
                self.args += ["--webhook-secret-file", path]
        self.args += list(extra)
        self.proc = None
        self.starts = 0

    def cmd(self, port):
        return [EXE, "serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db, "--keys",
                self.keys, "--packs", PACKS] + self.args

    def start(self):
        self.starts += 1
        self.port = free_port()
        self.errpath = os.path.join(self.dir, "stderr.%d" % self.starts)
        with open(self.errpath, "wb") as errf:
            self.proc = subprocess.Popen(self.cmd(self.port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("aftersale serve did not start:\n" + self.stderr())

    def run_refused(self):
        """Runs serve expecting a refusal at start: (exit status, stderr)."""
        p = subprocess.run(self.cmd(free_port()), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, testcase):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        died = proc.poll()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "no exit within 60 s of SIGTERM"
        err = self.stderr()
        bad = [m for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:") if m in err]
        if died is not None or rc != 0 or bad:
            testcase.fail("aftersale serve: died=%r rc=%r\n%s" % (died, rc, err[-6000:]))

    def request(self, method, path, body=None, key=None):
        h = {"Authorization": "Bearer %s" % key} if key else {}
        data = None
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            c.close()

    # --- the road to a refund instruction ---------------------------------------------------

    def refund_case(self, testcase, cid=None, price=19900, agree=True):
        """An unshipped order and a refund_only case the merchant agrees to (with `agree`;
        else the shop's rules agree at open): one refund instruction (docs/rulebook.md#eligibility).
        Returns (201, the case id) or the refusal of the case's opening."""
        oid = new_id("O")
        cid = cid or new_id("C")
        order = {"id": oid, "shop": "S1", "buyer": "B1", "shipping_fee": 0,
                 "freight_insurance": False,
                 "items": [{"sku": "T1", "category": "apparel", "qty": 1, "price": price}]}
        st, j = self.request("POST", "/v1/orders", order, PLATFORM)
        testcase.assertEqual(st, 201, j)
        case = {"id": cid, "order": oid, "type": "refund_only", "reason": "no_reason",
                "items": [{"sku": "T1", "qty": 1}]}
        st, j = self.request("POST", "/v1/cases", case, B1)
        if st != 201:
            return st, j
        if agree:
            st, j = self.act(cid, S1, "agree")
            testcase.assertEqual(st, 200, j)
        return 201, cid

    def act(self, cid, key, action, payload=None):
        body = {"action": action}
        if payload is not None:
            body["payload"] = payload
        return self.request("POST", "/v1/cases/%s/actions" % cid, body, key)


class WebhookCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="aftersale-webhook-")
        self.receivers = []
        self.server = None

    def tearDown(self):
        try:
            if self.server:
                self.server.stop(self)
        finally:
            for r in self.receivers:
                r.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.receivers.append(r)
        return r

    def serve(self, hooks, *extra):
        self.server = Server(self.dir, hooks, extra).start()
        return self.server

    def refund(self, **kw):
        st, cid = self.server.refund_case(self, **kw)
        self.assertEqual(st, 201, cid)
        return cid

    def assertSigned(self, req, secret):
        _, _, headers, body = req
        ts = headers.get("X-Aftersale-Timestamp")
        sig = headers.get("X-Aftersale-Signature")
        self.assertIsNotNone(ts, headers)
        self.assertTrue(ts.isdigit(), ts)
        self.assertLess(abs(int(ts) - time.time() * 1000), 60000, "timestamp is not now")
        self.assertTrue(hmac.compare_digest(sig or "", signature(secret, ts, body)),
                        "signature %r does not verify" % sig)


# ==========================================================================================
# Tests
# ==========================================================================================

class Signing(WebhookCase):
    def test_signature_verifies_with_its_secret_only(self):
        a = self.receiver()
        b = self.receiver()
        self.serve([(a.url(), SECRET), (b.url("/other"), OTHER_SECRET)])
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(key) and b.count(key), 20), "not delivered")
        ra, rb = a.requests()[0], b.requests()[0]
        self.assertSigned(ra, SECRET)
        self.assertSigned(rb, OTHER_SECRET)
        # the documented check accepts each with its own secret, refuses the other's
        self.assertTrue(verify(SECRET, ra[2], ra[3]))
        self.assertTrue(verify(OTHER_SECRET, rb[2], rb[3]))
        self.assertFalse(verify(OTHER_SECRET, ra[2], ra[3]))
        self.assertFalse(verify(SECRET, rb[2], rb[3]))
        # each URL's signature fails with the other's secret, and with the body changed
        _, _, h, body = ra
        ts = h["X-Aftersale-Timestamp"]
        self.assertNotEqual(h["X-Aftersale-Signature"], signature(OTHER_SECRET, ts, body))
        forged = body.replace(b'"amount":19900', b'"amount":99999999')
        self.assertNotEqual(forged, body)
        self.assertNotEqual(h["X-Aftersale-Signature"], signature(SECRET, ts, forged))
        self.assertNotEqual(h["X-Aftersale-Signature"], signature(SECRET, str(int(ts) + 1), body))
        self.assertEqual(json.loads(body), {"key": key, "kind": "refund", "case": cid,
                                            "amount": 19900})
        self.assertEqual(h["Idempotency-Key"], key)
        self.assertEqual(h["Content-Type"], "application/json")
        self.assertEqual(ra[1], "/refunds")
        self.assertEqual(rb[1], "/other")

    def test_retry_is_signed_afresh(self):
        a = self.receiver(answer=lambda n, key: 503 if n == 0 else 200)
        self.serve([(a.url(), SECRET)])
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(key) >= 2, 20), "a 503 was not retried")
        for req in a.requests():
            self.assertSigned(req, SECRET)


AUTO_AGREE = b"""return { name = 'auto-agree', version = '1',
  auto_decide = function(case, order, now) return { action = 'agree' } end }"""


class Forgery(WebhookCase):
    # the merchant's rules agree at open, so a case whose id cannot stand in a URL still gets
    # to refunding (and to the webhook) without an action on /v1/cases/{id}
    HOSTILE_IDS = [
        "F1\r\nX-Forged: 1\r\n\r\n{\"key\":\"V:refund:1\",\"amount\":99999999}",
        "F2\",\"amount\":99999999,\"x\":\"",
        "F3\nIdempotency-Key: V",
    ]

    def test_hostile_case_ids_forge_nothing(self):
        # the victim's instruction is never answered 2xx: if a hostile id could acknowledge
        # it, it would not come back after the restart
        vcid = new_id("C")
        victim = {"key": vcid + ":refund:1"}

        def answer(n, key):
            return 503 if key == victim["key"] else 200

        a = self.receiver(answer=answer)
        srv = self.serve([(a.url(), SECRET)], "--webhook-timeout-ms", "2000")
        self.refund(cid=vcid)
        self.assertTrue(wait_for(lambda: a.count(victim["key"]) >= 1, 20))
        st, got = srv.request("PUT", "/v1/shops/S1/rules", AUTO_AGREE, PLATFORM)
        self.assertEqual(st, 200, got)
        accepted = []
        for hostile in self.HOSTILE_IDS + ['%s:refund:1","x":"' % vcid]:
            st, got = srv.refund_case(self, cid=hostile, agree=False)
            if st == 400:
                self.assertEqual(got.get("error"), "bad_request", got)  # refused at the edge
            else:
                self.assertEqual(st, 201, got)
                accepted.append(hostile)
        for hostile in accepted:
            key = hostile + ":refund:1"
            self.assertTrue(wait_for(lambda: a.count(key) >= 1, 20), "not delivered: %r" % key)
        time.sleep(0.5)
        for _, path, headers, body in a.requests():
            j = json.loads(body)  # one well-formed JSON object per request, nothing after it
            self.assertEqual(sorted(j), ["amount", "case", "key", "kind"], j)
            self.assertEqual(j["amount"], 19900, "a forged amount: %r" % j)
            self.assertEqual(j["key"], j["case"] + ":refund:1", j)
            self.assertIn(j["case"], accepted + [vcid], j)
            self.assertNotIn("X-Forged", headers)
            self.assertEqual(path, "/refunds")
            ik = headers["Idempotency-Key"]
            self.assertNotRegex(ik, r"[\r\n\" ]", "raw bytes in the header: %r" % ik)
            if j["key"] == victim["key"]:
                self.assertEqual(ik, victim["key"])
        # the victim's refund was not acknowledged by anyone: delivered again after a restart
        srv.stop(self)
        before = a.count(victim["key"])
        srv.start()
        self.assertTrue(wait_for(lambda: a.count(victim["key"]) > before, 20),
                        "the victim's unacknowledged refund was not delivered after the restart:"
                        " a hostile case id acknowledged it")
        # and every accepted hostile one was acknowledged (2xx): not delivered again
        time.sleep(1.0)
        for hostile in accepted:
            self.assertEqual(a.count(hostile + ":refund:1"), 1, hostile)


class Timeouts(WebhookCase):
    def test_stalled_receiver_times_out_is_retried_and_blocks_no_one(self):
        stall = self.receiver(answer=lambda n, key: None if n == 0 else 200)
        fine = self.receiver()
        self.serve([(stall.url(), SECRET), (fine.url(), SECRET)], "--webhook-timeout-ms", "1500")
        t0 = time.time()
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: fine.count(key) == 1, 10), "the other receiver waited")
        self.assertTrue(wait_for(lambda: stall.count(key) >= 1, 10))
        t_fine = fine.requests()[0][0]
        t_stall0 = stall.requests()[0][0]
        self.assertTrue(wait_for(lambda: stall.count(key) >= 2, 20), "no retry after a timeout")
        t_stall1 = stall.requests()[1][0]
        # the retry came after the 1.5 s timeout (plus the first backoff), not before
        self.assertGreater(t_stall1 - t_stall0, 1.4)
        self.assertLess(t_stall1 - t_stall0, 10)
        # delivered side by side: the other receiver did not wait for the stall's timeout
        self.assertLess(t_fine - t0, 10)
        self.assertLess(abs(t_fine - t_stall0), 1.0,
                        "the fine receiver got it %.2f s after the stalled one" % (t_fine - t_stall0))
        self.assertIn("timed out", self.server.stderr().lower())

    def test_stall_does_not_hold_other_deliveries(self):
        # the same receiver stalls the first request of one key; the others flow around it
        first = {}

        def answer(n, key):
            if first.setdefault("key", key) == key and n == 0:
                return None
            return 200

        a = self.receiver(answer=answer)
        self.serve([(a.url(), SECRET)], "--webhook-timeout-ms", "3000")
        cids = [self.refund() for _ in range(5)]
        keys = [c + ":refund:1" for c in cids]
        self.assertTrue(wait_for(lambda: all(a.count(k) >= 1 for k in keys), 10))
        stalled = first["key"]
        others = [k for k in keys if k != stalled]
        # the others answered while the first still hung (within its 3 s timeout)
        t_stall = [t for t, _, _, b in a.requests() if json.loads(b)["key"] == stalled][0]
        t_last = max(t for t, _, _, b in a.requests() if json.loads(b)["key"] in others)
        self.assertLess(t_last - t_stall, 2.5)
        self.assertTrue(wait_for(lambda: a.count(stalled) >= 2, 20))


    def test_sigterm_with_a_stalled_delivery_in_flight(self):
        # stop() aborts the transfer (its socket, its timers): exit 0 at once, sanitizer
        # clean, and the instruction, never answered, comes again after the start
        mode = {"stall": True}
        a = self.receiver(answer=lambda n, key: None if mode["stall"] else 200)
        srv = self.serve([(a.url(), SECRET)], "--webhook-timeout-ms", "60000")
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(key) == 1, 20))
        t0 = time.time()
        srv.stop(self)
        self.assertLess(time.time() - t0, 10, "the stop waited for the stalled delivery")
        mode["stall"] = False
        srv.start()
        self.assertTrue(wait_for(lambda: a.count(key) == 2, 20))

class InFlight(WebhookCase):
    def test_forty_deliveries_with_four_in_flight_all_arrive(self):
        a = self.receiver(delay=0.15)
        self.serve([(a.url(), SECRET)], "--webhook-inflight", "4")
        keys = [self.refund() + ":refund:1" for _ in range(40)]
        self.assertTrue(wait_for(lambda: all(a.count(k) >= 1 for k in keys), 60),
                        "missing: %s" % [k for k in keys if not a.count(k)])
        self.assertLessEqual(a.max_active, 4, "more than 4 deliveries in flight")
        self.assertEqual(sorted(b["key"] for b in a.bodies()), sorted(keys))  # once each

    def test_bound_is_reached_when_work_queues(self):
        # a slow receiver and deliveries made all at once: the bound is used, not 1 at a time
        gate = threading.Event()
        a = self.receiver(answer=lambda n, key: (gate.wait(20), 200)[1])
        self.serve([(a.url(), SECRET)], "--webhook-inflight", "3", "--webhook-timeout-ms",
                   "30000")
        keys = [self.refund() + ":refund:1" for _ in range(8)]
        self.assertTrue(wait_for(lambda: a.active == 3, 20), "active %d" % a.active)
        time.sleep(0.5)
        self.assertEqual(a.active, 3, "the bound was passed")
        gate.set()
        self.assertTrue(wait_for(lambda: all(a.count(k) >= 1 for k in keys), 30))
        self.assertLessEqual(a.max_active, 3)


class Keys(WebhookCase):
    def test_refund_failed_instructs_with_a_new_key(self):
        a = self.receiver()
        srv = self.serve([(a.url(), SECRET)])
        cid = self.refund()
        self.assertTrue(wait_for(lambda: a.count(cid + ":refund:1") == 1, 20))
        st, j = srv.act(cid, PLATFORM, "refund_failed", {"reason": "bank down"})
        self.assertEqual(st, 200, j)
        self.assertTrue(wait_for(lambda: a.count(cid + ":refund:2") == 1, 20),
                        "the refund instructed again has no new key: %s" % a.bodies())
        st, j = srv.act(cid, PLATFORM, "refund_failed", {"reason": "bank down again"})
        self.assertEqual(st, 200, j)
        self.assertTrue(wait_for(lambda: a.count(cid + ":refund:3") == 1, 20))
        # a receiver that deduplicates by key saw three instructions, each once
        self.assertEqual([b["key"] for b in a.bodies()],
                         [cid + ":refund:%d" % n for n in (1, 2, 3)])
        # the count survives a restart: the next one is 4, not 1 again
        srv.stop(self)
        srv.start()
        st, j = srv.act(cid, PLATFORM, "refund_failed", {"reason": "once more"})
        self.assertEqual(st, 200, j)
        self.assertTrue(wait_for(lambda: a.count(cid + ":refund:4") == 1, 20), a.bodies())
        # (an instruction whose 2xx was still on its way at the stop may come twice: at least
        # once, under the same key)
        self.assertEqual(sorted(set(b["key"] for b in a.bodies())),
                         [cid + ":refund:%d" % n for n in (1, 2, 3, 4)])


class PerUrlAck(WebhookCase):
    def test_restart_redelivers_only_to_the_url_that_failed(self):
        mode = {"fail": True}
        good = self.receiver()
        bad = self.receiver(answer=lambda n, key: 500 if mode["fail"] else 200)
        srv = self.serve([(good.url(), SECRET), (bad.url(), OTHER_SECRET)])
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: good.count(key) == 1 and bad.count(key) >= 2, 20))
        time.sleep(0.5)  # the good URL's acknowledgement is committed
        srv.stop(self)
        mode["fail"] = False
        bad_before = bad.count(key)
        srv.start()
        self.assertTrue(wait_for(lambda: bad.count(key) > bad_before, 20),
                        "the failing URL did not get it again after the restart")
        time.sleep(1.0)
        self.assertEqual(good.count(key), 1, "the URL that acknowledged got it again")
        self.assertSigned(bad.requests()[-1], OTHER_SECRET)
        # both have it now: a second restart delivers it nowhere
        time.sleep(0.5)
        srv.stop(self)
        n_bad = bad.count(key)
        srv.start()
        time.sleep(1.5)
        self.assertEqual(good.count(key), 1)
        self.assertEqual(bad.count(key), n_bad, "acknowledged by every URL, yet sent again")

    def test_unacknowledged_everywhere_is_redelivered_everywhere(self):
        mode = {"up": False}
        a = self.receiver(answer=lambda n, key: 200 if mode["up"] else 503)
        b = self.receiver(answer=lambda n, key: 200 if mode["up"] else 503)
        srv = self.serve([(a.url(), SECRET), (b.url(), SECRET)])
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(key) >= 1 and b.count(key) >= 1, 20))
        srv.stop(self)
        mode["up"] = True
        na, nb = a.count(key), b.count(key)
        srv.start()
        self.assertTrue(wait_for(lambda: a.count(key) > na and b.count(key) > nb, 20))


    def test_entry_done_once_every_configured_url_has_it(self):
        # A answers, B does not; restarted with A only, the entry is handed back, A has it
        # already: it is not sent to A again and is done, so B added back gets nothing
        a = self.receiver()
        b = self.receiver(answer=lambda n, key: 503)
        srv = self.serve([(a.url(), SECRET), (b.url(), SECRET)])
        cid = self.refund()
        key = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(key) == 1 and b.count(key) >= 1, 20))
        time.sleep(0.5)
        srv.stop(self)
        only_a = Server(self.dir, [(a.url(), SECRET)])
        only_a.start()
        time.sleep(1.0)
        only_a.stop(self)
        self.assertEqual(a.count(key), 1)
        nb = b.count(key)
        srv.start()
        time.sleep(1.5)
        self.assertEqual(a.count(key), 1)
        self.assertEqual(b.count(key), nb, "an entry done for every URL was sent again")

class Https(WebhookCase):
    def make_cert(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command to make a self-signed certificate")
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return cert, key

    def test_https_to_a_host_name_with_the_ca(self):
        cert, key = self.make_cert()
        a = self.receiver(tls=(cert, key))
        self.serve([(a.url(host="localhost", scheme="https"), SECRET)], "--webhook-ca", cert)
        cid = self.refund()
        k = cid + ":refund:1"
        self.assertTrue(wait_for(lambda: a.count(k) == 1, 20), self.server.stderr()[-2000:])
        self.assertSigned(a.requests()[0], SECRET)
        self.assertEqual(a.bodies()[0]["case"], cid)

    def test_https_refused_without_the_ca(self):
        cert, key = self.make_cert()
        a = self.receiver(tls=(cert, key))
        self.serve([(a.url(host="localhost", scheme="https"), SECRET)])
        self.refund()
        self.assertTrue(wait_for(lambda: "SSL" in self.server.stderr() or
                                 "certificate" in self.server.stderr(), 20),
                        self.server.stderr()[-2000:])
        self.assertEqual(a.requests(), [], "delivered to a receiver whose certificate is not trusted")


class StartRefusals(WebhookCase):
    def test_webhook_without_secret_refused(self):
        rc, err = Server(self.dir, [("http://127.0.0.1:9/x", None)]).run_refused()
        self.assertEqual(rc, 2, err)
        self.assertIn("needs --webhook-secret-file", err)

    def test_short_secret_refused(self):
        rc, err = Server(self.dir, [("http://127.0.0.1:9/x", b"short")]).run_refused()
        self.assertEqual(rc, 1, err)
        self.assertIn("16 to 4096 bytes", err)

    def test_not_http_refused(self):
        for url in ("ftp://127.0.0.1/x", "http://", "127.0.0.1:80/x", "file:///etc/passwd"):
            rc, err = Server(self.dir, [(url, SECRET)]).run_refused()
            self.assertEqual(rc, 1, (url, err))
            self.assertIn("not an http:// or https:// URL", err)

    def test_secret_before_any_webhook_refused(self):
        path = os.path.join(self.dir, "s")
        with open(path, "wb") as f:
            f.write(SECRET)
        rc, err = Server(self.dir, [], ["--webhook-secret-file", path]).run_refused()
        self.assertEqual(rc, 2, err)
        self.assertIn("follows its own webhook", err)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV, verbosity=2)
