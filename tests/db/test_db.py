"""`aftersale db check|backup|export` against a real `aftersale serve` file (docs/db.md).

Each tool opens the file read-only without the writer lock, so each is run here while a server
holds the file (and, for the backup, while it takes writes). A damaged row is made with the
sqlite3 module on a stopped server's file: `db check` names it by table and key and exits 1, and
a server refuses to start on it, naming the same row and pointing to `db check`.

Usage: test_db.py AFTERSALE_BINARY PACKS_DIR [unittest args]"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import test_api as api  # noqa: E402  (the Server and request helpers; reads sys.argv)


def db(*args):
    """Runs `aftersale db ARGS`; (exit status, stdout, stderr)."""
    p = subprocess.run([api.EXE, "db"] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sanitizer_free(testcase, *texts):
    for t in texts:
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            testcase.assertNotIn(marker, t)


class DbTools(api.OwnServer):

    def populate(self, n=3):
        """n orders, each with a case taken a step or two; their case ids."""
        ids = []
        for i in range(n):
            _, cid = self.new_case()
            self.assertOk(self.act(cid, api.S1, "agree"))
            if i % 2:
                self.assertOk(self.act(cid, api.B1, "ship_return",
                                       {"carrier": "SF", "tracking": "T%d" % i}))
            ids.append(cid)
        return ids

    def check(self, path=None):
        rc, out, err = db("check", path or self.server.db)
        sanitizer_free(self, out, err)
        return rc, out, err

    def stop_server(self):
        api.stop_checked(self, self.server)

    def damage(self, *statements):
        con = sqlite3.connect(self.server.db)
        for s in statements:
            con.execute(*s) if isinstance(s, tuple) else con.execute(s)
        con.commit()
        con.close()

    def assertRefusedStart(self, *needles):
        """A server on the file exits 1 at start; its sentence holds every needle."""
        p = subprocess.run([api.EXE, "serve", "--listen", "127.0.0.1:%d" % api.free_port(),
                            "--db", self.server.db, "--keys", self.server.keys, "--packs",
                            api.PACKS], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err)
        for n in needles:
            self.assertIn(n, err)
        return err

    # --- check ----------------------------------------------------------------------------

    def test_check_is_clean_while_the_server_runs(self):
        cids = self.populate()
        rc, out, err = self.check()
        self.assertEqual(rc, 0, out + err)
        last = out.strip().splitlines()[-1]
        self.assertIn(self.server.db + ": clean", last)
        self.assertIn("3 orders, 3 cases", last)
        self.assertEqual(err, "")
        # the server goes on writing after it
        self.assertOk(self.act(cids[0], api.B1, "ship_return", {"carrier": "SF", "tracking": "X"}))

    def test_damaged_case_row_is_named_and_stops_a_start(self):
        cids = self.populate()
        self.stop_server()
        self.damage(("UPDATE cases SET data = x'01020304' WHERE id = ?", (cids[1],)))
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("cases %s: its data does not decode as a case" % cids[1], out)
        self.assertNotIn("cases %s:" % cids[0], out)
        self.assertIn("problem", out.strip().splitlines()[-1])
        err = self.assertRefusedStart("cases %s" % cids[1],
                                      "aftersale db check %s" % self.server.db)
        self.assertIn("could not be restored", err)
        rc, out, err = db("export", self.server.db)
        self.assertEqual(rc, 1, err)
        self.assertIn("cases %s" % cids[1], err)
        self.assertIn("aftersale db check", err)

    def test_damaged_command_is_named_but_starts(self):
        """An entry's command (events.cmd) is read by backtest only: check names it, a start
        does not stop at it. Each party's command is in its entry's row, a system entry has
        none."""
        cids = self.populate(2)
        self.stop_server()
        con = sqlite3.connect(self.server.db)
        rows = con.execute("SELECT n, cmd IS NOT NULL FROM events WHERE case_id = ?"
                           " ORDER BY n", (cids[0],)).fetchall()
        con.close()
        self.assertEqual(rows[0], (0, 1))  # the buyer's open
        self.assertEqual(rows[1], (1, 1))  # the merchant's agree
        self.damage(("UPDATE events SET cmd = x'0102' WHERE case_id = ? AND n = 1",
                     (cids[0],)))
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("events %s#1: its command does not decode" % cids[0], out)
        self.assertIn("1 problem", out.strip().splitlines()[-1])
        self.server.restart()
        self.assertEqual(self.get(cids[0])["state"], "awaiting_return")

    def test_damaged_order_row_is_named(self):
        self.populate(1)
        self.stop_server()
        oid = sqlite3.connect(self.server.db).execute("SELECT id FROM orders").fetchone()[0]
        self.damage(("UPDATE orders SET data = substr(data, 1, 9) WHERE id = ?", (oid,)))
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("orders %s: its data does not decode as an order" % oid, out)
        self.assertRefusedStart("orders %s" % oid, "aftersale db check")

    def test_orphan_event_gap_and_orphan_outbox_are_reported(self):
        cids = self.populate(2)
        self.stop_server()
        self.damage("INSERT INTO events(case_id, n, data)"
                    " SELECT 'C-nowhere', 0, data FROM events LIMIT 1",
                    ("INSERT INTO events(case_id, n, data)"
                     " SELECT case_id, 7, data FROM events WHERE case_id = ? AND n = 0",
                     (cids[0],)),
                    "INSERT INTO outbox(key, kind, case_id, amount)"
                    " VALUES('k-orphan', 'refund', 'C-gone', 100)")
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("events C-nowhere#0: its case 'C-nowhere' is not stored", out)
        self.assertIn("events %s#7: entry 7 of case '%s' comes after" % (cids[0], cids[0]), out)
        self.assertIn("outbox k-orphan: names case 'C-gone', which is not stored", out)
        self.assertIn("3 problems", out.strip().splitlines()[-1])
        self.assertRefusedStart("events C-nowhere#0", "aftersale db check")

    def test_damaged_page_is_reported_with_a_summary(self):
        self.populate(2)
        self.stop_server()
        copy = os.path.join(self.tmp, "copy.db")  # a file of its own: no -wal to replay
        self.assertEqual(db("backup", self.server.db, copy)[0], 0)
        con = sqlite3.connect(copy)
        page = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'orders'").fetchone()[0]
        con.close()
        with open(copy, "r+b") as f:
            f.seek(page * (root - 1))
            f.write(b"\x0d\xff\xff\xff\x00\x10\x77" * 4)  # a b-tree page header gone wrong
        rc, out, err = self.check(copy)
        self.assertEqual(rc, 1, out + err)
        lines = out.strip().splitlines()
        self.assertTrue(lines[0].startswith("database: "), out)
        self.assertIn("Page %d" % root, out)
        self.assertRegex(lines[-1], r"^aftersale db check: .*: \d+ problems \(\? orders, ")

    def test_pack_source_that_does_not_match_its_sha256(self):
        self.populate(1)
        self.stop_server()
        self.damage("UPDATE packs SET source = source || ' ' WHERE shop = '' AND name = 'apparel'")
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"packs \(platform\)/apparel@\S+: its source does not match its "
                              r"stored SHA-256")

    def test_rows_are_checked_against_the_packs_a_server_would_load(self):
        cids = self.populate(1)
        packs = os.path.join(self.tmp, "packs")
        shutil.copytree(api.PACKS, packs)
        with open(os.path.join(packs, "platform", "platform.lua"), "a") as f:
            f.write("\n-- changed under the same version\n")
        rc, out, err = self.check()
        self.assertEqual(rc, 0, out + err)
        rc, out, err = db("check", "--packs", packs, self.server.db)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("cases %s: the platform pack platform@" % cids[0], out)
        self.assertIn("was changed under a version that cases pin", out)
        rc, out, err = db("check", "--packs", os.path.join(self.tmp, "nowhere"), self.server.db)
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("nowhere", err)

    def test_older_schema_and_foreign_files_are_refused_untouched(self):
        self.populate(1)
        self.stop_server()
        old = os.path.join(self.tmp, "old.db")
        rc, out, err = db("backup", self.server.db, old)
        self.assertEqual(rc, 0, err)
        con = sqlite3.connect(old)
        con.execute("PRAGMA user_version = 1")
        con.close()
        with open(old, "rb") as f:
            before = f.read()
        for cmd in ("check", "export"):
            rc, out, err = db(cmd, old)
            self.assertEqual(rc, 1, err)
            self.assertIn("older than this build's", err)
            self.assertIn("aftersale serve --db %s" % old, err)
        with open(old, "rb") as f:
            self.assertEqual(f.read(), before)
        text = os.path.join(self.tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("not a database\n")
        rc, out, err = db("check", text)
        self.assertEqual(rc, 1)
        self.assertIn("not a database aftersale can read", err)
        rc, out, err = db("check", os.path.join(self.tmp, "missing.db"))
        self.assertEqual(rc, 1)
        self.assertIn("cannot open", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "missing.db")))

    # --- backup ---------------------------------------------------------------------------

    def test_backup_while_the_server_takes_writes(self):
        self.populate(2)
        acked, stop, errors = [], threading.Event(), []

        def writer():
            try:
                while not stop.is_set():
                    oid = api.new_id("OB")
                    r = self.req("POST", "/v1/orders", api.order_body(oid), api.PLATFORM)
                    if r.status != 201:
                        errors.append(r)
                        return
                    acked.append(oid)
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        try:
            while len(acked) < 20 and t.is_alive():
                threading.Event().wait(0.01)
            before = list(acked)  # acknowledged before the backup began
            dest = os.path.join(self.tmp, "copy.db")
            rc, out, err = db("backup", self.server.db, dest)
            self.assertEqual(rc, 0, err)
            self.assertIn("copied to %s" % dest, out)
        finally:
            stop.set()
            t.join()
        self.assertEqual(errors, [])
        self.assertFalse(os.path.exists(dest + ".partial"))
        rc, out, err = self.check(dest)
        self.assertEqual(rc, 0, out + err)
        stored = {r[0] for r in sqlite3.connect(dest).execute("SELECT id FROM orders")}
        self.assertTrue(set(before) <= stored, sorted(set(before) - stored))
        # a copy is a file of its own: no write-ahead log beside it after reading it
        self.assertFalse(os.path.exists(dest + "-wal"))
        # an existing DEST is refused, --force replaces it; the server's own file never
        rc, out, err = db("backup", self.server.db, dest)
        self.assertEqual(rc, 1)
        self.assertIn("--force", err)
        rc, out, err = db("backup", "--force", self.server.db, dest)
        self.assertEqual(rc, 0, err)
        rc, out, err = db("backup", "--force", dest, self.server.db)
        self.assertEqual(rc, 1)
        self.assertIn("pid %d" % self.server.proc.pid, err)
        # and the copy serves
        self.stop_server()
        self.server.db = dest
        self.server.start()
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    # --- export ---------------------------------------------------------------------------

    def test_export_lines_match_the_api(self):
        cids = self.populate(3)
        rc, out, err = db("export", self.server.db)
        self.assertEqual(rc, 0, err)
        lines = [json.loads(l) for l in out.splitlines()]
        for l in lines:
            self.assertEqual(len(l), 1, l)
            self.assertIn(next(iter(l)), ("order", "case"))
        cases = {l["case"]["id"]: l["case"] for l in lines if "case" in l}
        orders = [l["order"] for l in lines if "order" in l]
        self.assertEqual(sorted(cases), sorted(cids))
        for cid in cids:
            # GET adds what the asking key may do next, and each entry's copy of the case's
            # rules (docs/db.md); the rest is the same case
            got = self.get(cid)
            del got["actions"]
            for e in got["history"]:
                self.assertEqual(e.pop("rules"), got["rules"])
            self.assertEqual(cases[cid], got)
        self.assertEqual([o["id"] for o in orders], sorted(o["id"] for o in orders))
        # each order's line comes before its cases
        seen = set()
        for l in lines:
            if "order" in l:
                seen.add(l["order"]["id"])
            else:
                self.assertIn(l["case"]["order"], seen)
        o = orders[0]
        self.assertEqual((o["shop"], o["buyer"], o["items"][0]["sku"]), ("S1", "B1", "T1"))
        self.assertIn("delivered_at", o)

    # --- one writer per file --------------------------------------------------------------

    def test_second_server_is_refused_while_the_tools_read(self):
        self.populate(1)
        self.assertRefusedStart("pid %d" % self.server.proc.pid, "one writer per file")
        for args in (["check", self.server.db], ["export", self.server.db],
                     ["backup", self.server.db, os.path.join(self.tmp, "b.db")]):
            rc, out, err = db(*args)
            self.assertEqual(rc, 0, (args, out, err))
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    # --- usage ----------------------------------------------------------------------------

    def test_help_and_usage_errors(self):
        for args in ([], ["check"], ["check", "a", "b"], ["export"], ["backup", "x"],
                     ["backup", "--bogus", "a", "b"], ["nope"]):
            rc, out, err = db(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn("usage: aftersale db", err)
        for args in (["--help"], ["check", "--help"], ["backup", "--help"], ["export", "-h"]):
            rc, out, err = db(*args)
            self.assertEqual(rc, 0, args)
            self.assertIn("usage: aftersale db", out)
        p = subprocess.run([api.EXE, "--help"], capture_output=True)
        self.assertIn(b"db COMMAND", p.stdout)


if __name__ == "__main__":
    prog = unittest.main(argv=api.UNITTEST_ARGV, verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
