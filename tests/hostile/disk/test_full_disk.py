"""A full disk under a real `aftersale serve` (the crash-safe issue): the server runs with a
file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so a write past it fails with EFBIG as on a
full disk). Once a commit fails: that write is answered 503, every later write is refused,
/healthz is 503 naming the cause, a read of what the failed write changed is 503 (memory is
ahead of the disk), a read of what is durable still answers, and after a restart without the
limit every write answered 2xx is there and nothing answered 503 is.
Usage: test_full_disk.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import os
import resource
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api"))
import test_api as api  # noqa: E402  (the Server and request helpers; reads sys.argv)

HEADROOM = 256 << 10  # bytes a file may grow past the database's size before writes fail


class FullDisk(api.OwnServer):

    def limited(self, limit):
        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return preexec

    def test_a_failed_commit_stops_writes_and_shows_nothing_it_lost(self):
        _, durable = self.new_case(shop="S2", buyer="B2", key=api.B2)
        before = self.get(durable)
        items = [{"sku": "T%d" % i, "category": "apparel", "qty": 1, "price": 100}
                 for i in range(100)]
        oid = self.make_order(items=items)
        self.server.stop()
        limit = os.path.getsize(self.server.db) + HEADROOM
        self.server.preexec = self.limited(limit)
        self.server.start()
        acked, refused = [], None
        for i in range(100):
            cid = api.new_id("C")
            r = self.req("POST", "/v1/cases", api.case_body(cid, oid, sku="T%d" % i), api.B1)
            if r.status == 201:
                acked.append(cid)
                continue
            self.assertError(r, 503, "io")
            refused = cid
            break
        sys.stderr.write("%d opens acknowledged, then a commit failed under a %d-byte limit\n"
                         % (len(acked), limit))
        self.assertIsNotNone(refused, "100 case opens fit under a %d-byte file limit" % limit)
        health = self.req("GET", "/healthz")
        self.assertEqual(health.status, 503, health)
        self.assertEqual(health.json["ok"], False, health)
        self.assertEqual(health.json["error"], "io", health)
        self.assertTrue(health.json["message"], health)
        # what the failed commit changed is in memory only: never shown
        self.assertError(self.req("GET", "/v1/cases/" + refused, None, api.PLATFORM), 503, "io")
        self.assertError(self.req("GET", "/v1/cases?shop=S1", None, api.PLATFORM), 503, "io")
        # writes are refused from now on
        r = self.req("POST", "/v1/orders", api.order_body(api.new_id("O")), api.PLATFORM)
        self.assertError(r, 503, "io")
        self.assertError(self.act(durable, api.S2, "agree"), 503, "io")
        # what is durable is still read, as it was; the server keeps answering
        self.assertEqual(self.get(durable), before)
        listed = self.req("GET", "/v1/cases?shop=S2", None, api.PLATFORM)
        self.assertEqual([c["id"] for c in listed.json["cases"]], [durable], listed)
        for cid in acked:
            self.assertEqual(self.get(cid)["state"], "requested")
        self.assertEqual(self.req("GET", "/metrics").status, 200)
        self.server.stop()
        # a restart restores what is on disk: every acknowledged open, not the refused one
        self.server.preexec = None
        self.server.start()
        self.assertEqual(self.req("GET", "/healthz").status, 200)
        self.assertEqual(self.get(durable), before)
        for cid in acked:
            self.assertEqual(self.get(cid)["state"], "requested")
        self.assertError(self.req("GET", "/v1/cases/" + refused, None, api.PLATFORM), 404,
                         "not_found")
        self.assertOk(self.act(durable, api.S2, "agree"))


if __name__ == "__main__":
    prog = unittest.main(argv=api.UNITTEST_ARGV, verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
