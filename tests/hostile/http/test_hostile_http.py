#!/usr/bin/env python3
"""Hostile HTTP clients against a real `aftersale serve` (issue 10, "a server a client cannot
starve"): a stalled partial request, a pipeliner that never reads, a huge request line, too
many or too long headers, a connection flood from one address, requests pipelined after a
closing answer, and identifiers outside docs/design.md#limits in every path position.

Each test asserts the status docs/api.md documents, that nothing changed (the case reads as
before), and (in tearDown) that the server still answers /healthz and exits cleanly, with no
sanitizer report.

usage: test_hostile_http.py AFTERSALE_BINARY PACKS_DIR [unittest arguments...]
"""
import os
import socket
import sys
import threading
import time
import unittest

# The API tests' server and HTTP helpers (they read the same two arguments).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api"))
import test_api as api  # noqa: E402

raw_request, read_response, hangup, at_eof = (api.raw_request, api.read_response, api.hangup,
                                              api.at_eof)
PLATFORM, B1, S1 = api.PLATFORM, api.B1, api.S1
TOO_LARGE = {"error": "bad_request", "message": "request too large"}
MALFORMED = {"error": "bad_request", "message": "malformed HTTP"}
TOO_SLOW = {"error": "bad_request", "message": "request too slow"}


def vm_rss(pid):
    """The process's resident set size in bytes (/proc/PID/status VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Hostile(api.OwnServer):
    """A server of its own per test (the options differ), checked alive after each test."""

    def tearDown(self):
        try:
            if self.server.proc is not None and self.server.proc.poll() is None:
                self.assertOk(self.healthz_eventually())
        finally:
            super().tearDown()

    def healthz_eventually(self, wait=10):
        """/healthz, once the server has seen this test's connections go (a per-address limit
        counts them until it does)."""
        deadline = time.time() + wait
        while True:
            r = self.req("GET", "/healthz")
            if r.status != 503 or time.time() > deadline:
                return r
            time.sleep(0.05)

    def served_connection(self, wait=10):
        """A connection the server serves (one it has just seen closed may still count against
        the address for a moment): (sock, file) after a 200 on /healthz."""
        deadline = time.time() + wait
        while True:
            s, f = self.srv.connect()
            s.sendall(raw_request("GET", "/healthz"))
            r = read_response(f)
            if r is not None and r.status == 200:
                return s, f
            hangup(s, f)
            if time.time() > deadline:
                self.fail("no connection served within %d s: %r" % (wait, r))
            time.sleep(0.05)

    def case_on_one_connection(self):
        """An order and a case on it, set up over one keep-alive connection: (order, case)."""
        oid, cid = api.new_id("O"), api.new_id("C")
        reqs = [raw_request("POST", "/v1/orders", api.order_body(oid), PLATFORM),
                raw_request("POST", "/v1/orders/%s/ship" % oid, None, PLATFORM),
                raw_request("POST", "/v1/orders/%s/deliver" % oid, None, PLATFORM),
                raw_request("POST", "/v1/cases", api.case_body(cid, oid), B1,
                            ["Connection: close"])]
        got = self.exchange(b"".join(reqs))
        self.assertEqual([r.status for r in got], [201, 200, 200, 201], got)
        return oid, cid

    def assertClosingError(self, r, status, body):
        self.assertIsNotNone(r, "no answer")
        self.assertEqual((r.status, r.json), (status, body), r)
        self.assertEqual(r.headers.get("connection", "").lower(), "close", r)

    def exchange(self, data, timeout=10):
        """Sends `data` on a new connection, reads until the server closes: the answers."""
        s, f = self.srv.connect(timeout)
        got = []
        try:
            s.sendall(data)
            while True:
                r = read_response(f)
                if r is None:
                    break
                got.append(r)
        finally:
            hangup(s, f)
        return got


# ==========================================================================================
# Slow clients: the request deadline and the idle close are timers
# ==========================================================================================

class SlowClients(Hostile):
    args = ("--request-ms", "1500", "--idle-ms", "3000")

    def test_stalled_partial_request_gets_408(self):
        """Half a request and then nothing: 408 after request_ms, from the timer, and closed."""
        _, cid = self.new_case()
        s, f = self.srv.connect()
        try:
            t0 = time.time()
            s.sendall(b"GET /v1/cases/%s HTTP/1.1\r\nHost: x\r\nAuthor" % cid.encode())
            r = read_response(f)
            waited = time.time() - t0
            self.assertClosingError(r, 408, TOO_SLOW)
            self.assertTrue(1.4 <= waited < 4, "408 after %.2f s, want about 1.5 s" % waited)
            self.assertTrue(at_eof(s, f, timeout=5))
        finally:
            hangup(s, f)

    def test_stalled_body_is_not_run(self):
        """A write whose body never arrives whole: 408, and the case is not touched."""
        _, cid = self.new_case()
        before = self.get(cid)
        whole = raw_request("POST", "/v1/cases/%s/actions" % cid, {"action": "agree"}, S1)
        s, f = self.srv.connect()
        try:
            s.sendall(whole[:-3])
            self.assertClosingError(read_response(f), 408, TOO_SLOW)
            self.assertTrue(at_eof(s, f, timeout=5))
        finally:
            hangup(s, f)
        self.assertUnchanged(cid, before)

    def test_idle_keep_alive_connection_closed(self):
        s, f = self.srv.connect()
        try:
            s.sendall(raw_request("GET", "/healthz"))
            self.assertOk(read_response(f))
            t0 = time.time()
            self.assertTrue(at_eof(s, f, timeout=10), "an idle connection stays open")
            waited = time.time() - t0
            self.assertTrue(2.5 <= waited < 6, "closed after %.2f s idle, want about 3 s" % waited)
        finally:
            hangup(s, f)

    def test_blank_lines_do_not_hold_a_connection(self):
        """CRLFs between requests are no request: they neither start the 408 clock nor keep
        the connection from its idle close."""
        s, f = self.srv.connect()
        try:
            t0 = time.time()
            closed = False
            while time.time() - t0 < 8 and not closed:
                try:
                    s.sendall(b"\r\n")
                except OSError:
                    closed = True
                    break
                closed = at_eof(s, None, timeout=0.5)
            self.assertTrue(closed, "CRLFs kept a connection open past idle_ms")
        finally:
            hangup(s, f)


# ==========================================================================================
# Back-pressure: a pipeliner that never reads
# ==========================================================================================

class NeverReadingPipeliner(Hostile):
    args = ("--idle-ms", "4000")
    N = 50000

    def setUp(self):
        # ASan keeps freed blocks in a quarantine (256 MiB by default), which would count in
        # the RSS whatever the server holds: keep it small for this measure
        self.saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (self.saved + ":" if self.saved else "") + "quarantine_size_mb=1"
        try:
            super().setUp()
        finally:
            if self.saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = self.saved

    def pipeliner(self):
        """A connection with a small receive buffer (the answers back up in the server)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(60)
        s.connect(("127.0.0.1", self.server.port))
        return s, s.makefile("rb")

    def test_rss_bounded_then_every_answer_in_order(self):
        _, c1 = self.new_case()
        _, c2 = self.new_case()
        pad = ["X-Pad: " + "p" * 400]  # ~0.5 KiB a request: more than the socket buffers hold
        kinds = [("case", c1), ("metrics", None), ("case", c2), ("healthz", None)]
        one = {"case": lambda cid: raw_request("GET", "/v1/cases/%s" % cid, key=B1, headers=pad),
               "metrics": lambda _: raw_request("GET", "/metrics", headers=pad),
               "healthz": lambda _: raw_request("GET", "/healthz", headers=pad)}
        data = b"".join(one[k](cid) for k, cid in (kinds[i % 4] for i in range(self.N)))
        pid = self.server.proc.pid
        base = vm_rss(pid)
        peak = [base]
        sampling = [True]

        def sample():
            while sampling[0]:
                peak[0] = max(peak[0], vm_rss(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        s, f = self.pipeliner()
        sent = [0]

        def send():
            view = memoryview(data)
            try:
                while sent[0] < len(data):
                    try:
                        sent[0] += s.send(view[sent[0]:sent[0] + 65536])
                    except socket.timeout:
                        pass  # the server is not reading: keep trying
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        try:
            sender.start()
            # wait until the server stops reading: the sender makes no progress for 1 s
            last, still = -1, 0
            while still < 10:
                time.sleep(0.1)
                still = still + 1 if sent[0] == last else 0
                last = sent[0]
            self.assertLess(sent[0], len(data), "the server read everything without back-pressure")
            time.sleep(0.5)
            held = vm_rss(pid) - base
            # meanwhile another client is served at once
            t0 = time.time()
            self.assertOk(self.req("GET", "/healthz"))
            self.assertLess(time.time() - t0, 2)
            # now read: every answer, whole and in request order
            for i in range(self.N):
                kind, cid = kinds[i % 4]
                r = read_response(f)
                self.assertIsNotNone(r, "answer %d of %d missing" % (i, self.N))
                self.assertEqual(r.status, 200, (i, r))
                if kind == "case":
                    self.assertEqual(r.json["id"], cid, i)
                elif kind == "metrics":
                    self.assertIn(b"aftersale_http_requests_total", r.body, i)
                else:
                    self.assertEqual(r.json, {"ok": True}, i)
            sender.join(10)
            self.assertEqual(sent[0], len(data))
        finally:
            sampling[0] = False
            hangup(s, f)
        sampler.join()
        grown = peak[0] - base
        sys.stderr.write("\nnever-reading pipeliner: %d requests (%.1f MiB); server RSS %.1f MiB at "
                         "start, +%.1f MiB while stalled, peak +%.1f MiB\n"
                         % (self.N, len(data) / 2**20, base / 2**20, held / 2**20, grown / 2**20))
        # the answers alone are ~90 MiB: without back-pressure they all sit in the server
        self.assertLess(grown, 32 << 20, "the server's RSS grew by %d MiB" % (grown >> 20))

    def test_never_reading_client_is_disconnected_after_idle_ms(self):
        """Answers that make no progress for idle_ms: the connection is closed."""
        s, f = self.pipeliner()
        req = raw_request("GET", "/metrics")
        closed = False
        try:
            t0 = time.time()
            s.settimeout(1)
            while time.time() - t0 < 20 and not closed:
                try:
                    s.send(req * 200)
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
            self.assertTrue(closed, "a client reading nothing held its connection for 20 s")
            self.assertGreater(time.time() - t0, 3.5)
        finally:
            hangup(s, f)


# ==========================================================================================
# Header limits: the request line counts, and so do the headers' number and lengths
# ==========================================================================================

class HeaderLimits(Hostile):

    def test_huge_request_line(self):
        _, cid = self.new_case()
        before = self.get(cid)
        for url in ("/v1/cases/%s?x=%s" % (cid, "u" * (100 << 10)), "/" + "A" * (100 << 10)):
            got = self.exchange(raw_request("GET", url, key=B1)
                                + raw_request("POST", "/v1/cases/%s/actions" % cid,
                                              {"action": "agree"}, S1))
            self.assertEqual(len(got), 1, got)
            self.assertClosingError(got[0], 431, TOO_LARGE)
        self.assertUnchanged(cid, before)

    def test_request_line_and_headers_at_the_limit(self):
        """16 KiB: the URL, header names and values together (not the method, version,
        separators); at the limit accepted, one byte more 431."""
        fixed = len("Host") + len("127.0.0.1") + len("/healthz?p=")
        at = raw_request("GET", "/healthz?p=" + "q" * (16384 - fixed))
        r = self.exchange(at + raw_request("GET", "/healthz", headers=["Connection: close"]))
        self.assertEqual([x.status for x in r], [200, 200], r)
        over = raw_request("GET", "/healthz?p=" + "q" * (16385 - fixed))
        got = self.exchange(over)
        self.assertEqual(len(got), 1, got)
        self.assertClosingError(got[0], 431, TOO_LARGE)

    def test_too_many_headers(self):
        ok = ["X-H%d: v" % i for i in range(99)]  # + Host: 100 headers
        r = self.exchange(raw_request("GET", "/healthz", headers=ok)
                          + raw_request("GET", "/healthz", headers=["Connection: close"]))
        self.assertEqual([x.status for x in r], [200, 200], r)
        got = self.exchange(raw_request("GET", "/healthz", headers=ok + ["X-One-Too-Many: v"]))
        self.assertEqual(len(got), 1, got)
        self.assertClosingError(got[0], 431, TOO_LARGE)

    def test_header_name_and_value_lengths(self):
        for headers, status in ((["X" * 1024 + ": v"], 200), (["X" * 1025 + ": v"], 431),
                                (["X-Long: " + "v" * 8192], 200), (["X-Long: " + "v" * 8193], 431)):
            got = self.exchange(raw_request("GET", "/healthz", headers=headers + ["Connection: close"]))
            self.assertEqual(len(got), 1, (headers[0][:20], got))
            if status == 200:
                self.assertOk(got[0])
            else:
                self.assertClosingError(got[0], 431, TOO_LARGE)


# ==========================================================================================
# Nothing pipelined after a closing answer runs
# ==========================================================================================

class AfterAClosingAnswer(Hostile):

    def check_nothing_after(self, first, statuses):
        """`first`, then a pipelined agree on a fresh case: only `statuses` come back and the
        case is as it was."""
        _, cid = self.new_case()
        before = self.get(cid)
        oid = api.new_id("O")
        got = self.exchange(first
                            + raw_request("POST", "/v1/cases/%s/actions" % cid, {"action": "agree"}, S1)
                            + raw_request("POST", "/v1/orders", api.order_body(oid), PLATFORM))
        self.assertEqual([r.status for r in got], statuses, got)
        self.assertEqual(got[-1].headers.get("connection", "").lower(), "close", got)
        self.assertUnchanged(cid, before)
        # the order was never created: creating it now works
        self.assertOk(self.req("POST", "/v1/orders", api.order_body(oid), PLATFORM), 201)
        return got

    def test_after_malformed_http(self):
        got = self.check_nothing_after(b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", [400])
        self.assertEqual(got[0].json, MALFORMED)

    def test_after_connection_close(self):
        self.check_nothing_after(raw_request("GET", "/healthz", headers=["Connection: close"]), [200])

    def test_after_http10(self):
        self.check_nothing_after(raw_request("GET", "/healthz", version="HTTP/1.0"), [200])

    def test_after_a_complete_request_too_large(self):
        got = self.check_nothing_after(raw_request("GET", "/healthz", headers=["X-Big: " + "b" * 20000]),
                                       [431])
        self.assertEqual(got[0].json, TOO_LARGE)

    def test_after_a_body_too_large(self):
        head = ("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-platform\r\n"
                "Content-Length: %d\r\n\r\n" % (api.MIB + 1)).encode()
        got = self.check_nothing_after(head, [413])
        self.assertEqual(got[0].json, TOO_LARGE)

    def test_after_a_closing_write_still_waiting_for_its_commit(self):
        """The closing answer is a write's (answered once durable): the write after it is not
        run meanwhile."""
        _, cid = self.new_case()
        act = "/v1/cases/%s/actions" % cid
        got = self.exchange(raw_request("POST", act, {"action": "agree"}, S1, ["Connection: close"])
                            + raw_request("POST", act, {"action": "ship_return", "payload":
                                          {"carrier": "SF", "tracking": "T1"}}, B1))
        self.assertEqual([r.status for r in got], [200], got)
        c = self.get(cid)
        self.assertEqual((c["state"], c["version"]), ("awaiting_return", 2))


# ==========================================================================================
# Connections per client address
# ==========================================================================================

class ConnectionFlood(Hostile):
    args = ("--max-conns-per-client", "4")

    def test_fifth_connection_refused_first_four_served(self):
        held = []
        try:
            for _ in range(4):  # each is accepted and served
                held.append(self.served_connection())
            for _ in range(3):  # the 5th, again and again
                s, f = self.srv.connect()
                try:
                    r = read_response(f)
                    self.assertIsNotNone(r, "the 5th connection closed without an answer")
                    self.assertEqual((r.status, r.json), (503, {
                        "error": "io", "message": "too many connections from this address"}))
                    self.assertTrue(at_eof(s, f))
                finally:
                    hangup(s, f)
            for s, f in held:  # the first four are still served
                s.sendall(raw_request("GET", "/healthz"))
                self.assertOk(read_response(f))
        finally:
            for s, f in held:
                hangup(s, f)
        # once they are gone, the address is served again
        self.assertOk(self.healthz_eventually())

    def test_flood_of_connections(self):
        _, cid = self.case_on_one_connection()
        self.healthz_eventually()
        before = self.get(cid)
        kept, flood = [], []
        try:
            for _ in range(4):
                kept.append(self.served_connection())
            for _ in range(200):
                s, f = self.srv.connect()
                flood.append((s, f))
                try:  # a write the flood would like to run
                    s.sendall(raw_request("POST", "/v1/cases/%s/actions" % cid, {"action": "agree"}, S1))
                except OSError:
                    pass
            told = 0
            for s, f in flood:  # each is told 503, or reset before it could read it
                r = read_response(f)
                if r is not None:
                    self.assertEqual((r.status, r.json["error"]), (503, "io"), r)
                    told += 1
                self.assertTrue(at_eof(s, f))
            self.assertGreater(told, 0)
            for s, f in kept:
                s.sendall(raw_request("GET", "/v1/cases/%s" % cid, key=B1))
                r = read_response(f)
                self.assertEqual((r.status, r.json["id"]), (200, cid))
        finally:
            for s, f in kept + flood:
                hangup(s, f)
        self.assertEqual(self.healthz_eventually().status, 200)
        self.assertUnchanged(cid, before)


# ==========================================================================================
# Identifiers outside docs/design.md#limits in every path position
# ==========================================================================================

class PathIdentifiers(Hostile):
    # ids that are none: percent-escapes are not decoded ('%' is not an identifier byte)
    NOT_IDS = ["%0D%0A", "%0d%0aX-Forged:%201", "%22", "%00", "a%2Fb", ".", "..", "x" * 65,
               "a'b", "a\"b", "a<b", "a,b", "a%20b", "%C3%A9", "\u00e9"]

    def positions(self, cid, oid, bad):
        """(method, path, body, key) for each place an identifier stands in a path."""
        return [("GET", "/v1/cases/%s" % bad, None, B1),
                ("POST", "/v1/cases/%s/actions" % bad, {"action": "agree"}, S1),
                ("POST", "/v1/orders/%s/ship" % bad, None, PLATFORM),
                ("POST", "/v1/orders/%s/confirm" % bad, None, PLATFORM),
                ("GET", "/v1/shops/%s/metrics" % bad, None, PLATFORM),
                ("PUT", "/v1/shops/%s/rules" % bad, "return {name='x', version='1'}", PLATFORM)]

    def test_ids_outside_the_limits_are_unknown(self):
        oid, cid = self.new_case()
        before = self.get(cid)
        rules_before = self.req("GET", "/v1/rules", key=PLATFORM).json
        for bad in self.NOT_IDS + [cid + s for s in ("%0D%0A", "%22", "'", "\"", "%00")] + [cid + "x" * 64]:
            for method, path, body, key in self.positions(cid, oid, bad):
                r = self.exchange(raw_request(method, path, body, key, ["Connection: close"]))
                self.assertEqual(len(r), 1, (path, r))
                self.assertError(r[0], 404, "not_found")
                self.assertNotIn(b"\r", r[0].body)
                self.assertNotIn(b"Forged", r[0].body + b"".join(
                    k.encode() for k in r[0].headers))
        self.assertUnchanged(cid, before)
        self.assertEqual(self.req("GET", "/v1/rules", key=PLATFORM).json, rules_before)

    def test_without_a_key_it_is_401_first(self):
        r = self.req("GET", "/v1/cases/%0D%0A")
        self.assertError(r, 401, "unauthorized")

    def test_raw_control_bytes_are_malformed_http(self):
        """CR, LF, NUL or a space inside the path cannot be sent: the request line breaks."""
        _, cid = self.new_case()
        before = self.get(cid)
        for raw in (b"\r\n", b"\n", b"\x00", b" x", b"\x7f"):
            req = (b"POST /v1/cases/" + cid.encode() + raw + b"/actions HTTP/1.1\r\nHost: x\r\n"
                   b"Authorization: Bearer k-s1\r\nContent-Length: 18\r\n\r\n{\"action\":\"agree\"}")
            got = self.exchange(req)
            self.assertTrue(got, raw)
            self.assertIn(got[0].status, (400, 404), (raw, got))
            if got[0].status == 400:
                self.assertEqual(got[0].json, MALFORMED)
            else:
                self.assertError(got[0], 404, "not_found")
        self.assertUnchanged(cid, before)

    def test_64_byte_id_is_one_65_is_none(self):
        oid = self.make_order()
        cid = ("C%s-" % api.new_id("")).ljust(64, "z")
        self.assertOk(self.req("POST", "/v1/cases", api.case_body(cid, oid), B1), 201)
        self.assertEqual(self.get(cid)["id"], cid)
        self.assertError(self.req("GET", "/v1/cases/%sz" % cid, key=B1), 404, "not_found")

    def test_empty_segments_are_no_route(self):
        _, cid = self.new_case()
        for path in ("/v1//cases/%s" % cid, "/v1/cases//%s" % cid, "/v1/cases/%s/" % cid):
            self.assertError(self.req("GET", path, key=B1), 404, "not_found")


if __name__ == "__main__":
    unittest.main(argv=api.UNITTEST_ARGV, verbosity=2)
