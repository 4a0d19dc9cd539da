"""Seeds tests/fuzz/corpus_record/ for fuzz_record.c with real stored rows and edge cases.

Usage: make_corpus_record.py AFTERSALE_BINARY PACKS_DIR [OUT_DIR]

Runs `aftersale pipe` on a fresh database with the orders of fuzz_record.c (same ids, lines,
categories) and cases at their limits (64-byte ids, 32 evidence entries of 256 bytes of 3- and
4-byte UTF-8, reasons and carriers of 256 bytes, amounts at 10^10 fen) driven through several
actions, then writes each stored ORDER, CASE and EVENT row's data and each entry's command
(`select data from ...`, `select cmd from events`) as a seed: the selector byte of fuzz_record.c (0 order, 1 case, 2 event, 3 batch, 4
command) and the bytes.
It adds batches made of those rows and hand-made edge cases (truncations, absent and huge
lengths, counts past their limits, trailing bytes, a NUL inside a string). Not run by the
tests: the seeds are committed; run it again when the record layout changes. Two kinds of
seed are not made here and are kept as they are: found_* (inputs the fuzzer found) and
v4_command* (commands in the schema-4 layout, 00 before them as the migration to schema 5
stores them, taken from this script's output of that schema)."""
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile

ORDERS = [
    {"id": "O1", "shop": "S1", "buyer": "B1", "shipping_fee": 500, "buyer_credit": 800,
     "items": [{"sku": "T1", "category": "apparel", "qty": 2, "price": 19900},
               {"sku": "T2", "category": "apparel", "qty": 10000, "price": 0}]},
    {"id": "O2", "shop": "S2", "buyer": "B2",
     "items": [{"sku": "P1", "category": "electronics", "qty": 1, "price": 359900,
                "serial": "490154203237518"}]},
    {"id": "O3", "shop": "S1", "buyer": "B1",
     "items": [{"sku": "F1", "category": "fresh_food", "qty": 1, "price": 16000, "live": True}]},
]
ID64 = ("K" + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")[:64]


def text(n, unit):
    s = ""
    while len((s + unit).encode()) <= n:
        s += unit
    return s + "x" * (n - len(s.encode()))


def main():
    exe, packs = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus_record")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "seed.db")
    ev32 = [text(256, "😀") if i % 2 else text(256, "质") for i in range(32)]
    reqs = [{"op": "rules.load", "shop": "S1",
             "source": 'return { name = "s1", version = "2" }'}]
    reqs += [{"op": "order.create", "order": o} for o in ORDERS]
    reqs += [{"op": "order.deliver", "order": "O1"}, {"op": "order.deliver", "order": "O2"},
             {"op": "order.deliver", "order": "O3"}]
    reqs += [
        {"op": "case.open", "as": "buyer:B1", "case": {
            "id": ID64, "order": "O1", "type": "refund_only", "reason": "quality",
            "items": [{"sku": "T1", "qty": 2}], "evidence": ev32}},
        {"op": "case.act", "as": "merchant:S1", "case": ID64, "action": "reject",
         "payload": {"reason": text(256, "拒")}},
        {"op": "case.act", "as": "buyer:B1", "case": ID64, "action": "escalate"},
        {"op": "case.act", "as": "platform", "case": ID64, "action": "rule_for_buyer"},
        {"op": "case.act", "as": "platform", "case": ID64, "action": "refund_failed",
         "payload": {"reason": text(256, "🏦")}},
        {"op": "case.open", "as": "buyer:B2", "case": {
            "id": "K2", "order": "O2", "type": "return_refund", "reason": "quality",
            "items": [{"sku": "P1", "qty": 1}], "evidence": ["p"]}},
        {"op": "case.act", "as": "merchant:S2", "case": "K2", "action": "agree"},
        {"op": "case.act", "as": "buyer:B2", "case": "K2", "action": "ship_return",
         "payload": {"carrier": text(256, "é"), "tracking": text(256, "📦"),
                     "shipping_cost": 10_000_000_000}},
        {"op": "case.act", "as": "logistics", "case": "K2", "action": "return_delivered"},
        {"op": "case.act", "as": "merchant:S2", "case": "K2", "action": "confirm_return",
         "payload": {"serial": "490154203237518"}},
        {"op": "case.open", "as": "buyer:B1", "case": {
            "id": "K3", "order": "O3", "type": "partial_refund", "reason": "spoiled",
            "items": [{"sku": "F1", "qty": 1}], "evidence": ["s"], "bad_permille": 1000,
            "requested_amount": 16000}},
        {"op": "case.open", "as": "buyer:B1", "case": {
            "id": "K", "order": "O1", "type": "exchange", "reason": "not_as_described",
            "items": [{"sku": "T2", "qty": 10000}], "evidence": ["e"]}},
        {"op": "case.act", "as": "merchant:S1", "case": "K", "action": "agree"},
    ]
    data = "".join(json.dumps(dict(r, id=i), ensure_ascii=False) + "\n" for i, r in enumerate(reqs))
    p = subprocess.run([exe, "pipe", "--db", db, "--packs", packs], input=data.encode(),
                       capture_output=True, timeout=60)
    answers = [json.loads(l) for l in p.stdout.decode().splitlines()]
    bad = [a for a in answers if "error" in a]
    if p.returncode != 0 or bad:
        sys.exit("pipe: rc %d, refused %r" % (p.returncode, bad))
    con = sqlite3.connect(db)
    rows = {"order": [r for (r,) in con.execute("select data from orders")],
            "case": [r for (r,) in con.execute("select data from cases")],
            "event": [r for (r,) in con.execute("select data from events order by rowid")],
            "command": [r for (r,) in con.execute("select cmd from events where cmd is not null"
                                                  " order by case_id, n")]}
    events = list(con.execute("select case_id, n, data, cmd from events order by rowid"))
    cases = list(con.execute("select id, order_id, due, data from cases"))
    con.close()
    seeds = {}
    sel = {"order": b"\0", "case": b"\1", "event": b"\2", "command": b"\4"}
    for kind, blobs in rows.items():
        for i, b in enumerate(blobs):
            seeds["%s%02d" % (kind, i)] = sel[kind] + bytes(b)

    def s(v):
        v = v.encode() if isinstance(v, str) else v
        return struct.pack("<I", len(v)) + v

    def batch(records):
        return b"\3" + b"".join(records)

    rec_orders = [b"\1" + s(o["id"]) + s(bytes(b)) for o, b in zip(ORDERS, rows["order"])]
    rec_cases = [b"\2" + s(cid) + s(oid) + struct.pack("<q", due if due is not None else -2**63)
                 + s(bytes(b)) for cid, oid, due, b in cases]
    rec_events = [b"\3" + s(cid) + struct.pack("<I", n) + s(bytes(b))
                  + (s(bytes(c)) if c is not None else struct.pack("<I", 0xFFFFFFFF))
                  for cid, n, b, c in events]
    seeds["batch_rows"] = batch(rec_orders + rec_cases + rec_events[:4])
    seeds["batch_other"] = batch([
        b"\4" + s("K2:refund:1") + s("refund") + s("K2") + struct.pack("<q", 359900),
        b"\5" + s("K2:refund:1") + s("https://x/hook"),
        b"\5" + s("K2:refund:1") + struct.pack("<I", 0xFFFFFFFF),
        b"\6" + s("key-1") + struct.pack("<i", -3) + s("bad request"),
        b"\7" + s("") + s("platform") + s("1") + s("return {}") + b"\1" + s("0" * 64)
        + struct.pack("<q", 1)])
    # edge cases around the real rows
    order0, case0, ev0 = bytes(rows["order"][0]), bytes(rows["case"][0]), bytes(rows["event"][0])
    seeds["edge_empty_order"] = b"\0"
    seeds["edge_order_cut"] = b"\0" + order0[:len(order0) // 2]
    seeds["edge_order_trailing"] = b"\0" + order0 + b"\0"
    seeds["edge_order_absent_id"] = b"\0" + struct.pack("<I", 0xFFFFFFFF) + order0[6:]
    seeds["edge_order_huge_len"] = b"\0" + struct.pack("<I", 0xFFFFFFFE) + order0[4:]
    seeds["edge_order_nul_in_id"] = b"\0" + s("O\0") + order0[6:]
    seeds["edge_case_cut"] = b"\1" + case0[:-1]
    seeds["edge_case_trailing"] = b"\1" + case0 + b"x"
    seeds["edge_event_cut"] = b"\2" + ev0[:9]
    seeds["edge_event_trailing"] = b"\2" + ev0 + b"\0"
    cmd0 = bytes(rows["command"][0])
    seeds["edge_command_cut"] = b"\4" + cmd0[:-1]
    seeds["edge_command_trailing"] = b"\4" + cmd0 + b"\0"
    seeds["edge_command_system_role"] = b"\4" + cmd0[:10] + b"\4" + cmd0[11:]
    seeds["edge_command_layout_unknown"] = b"\4" + b"\2" + cmd0[1:]
    seeds["edge_batch_unknown_kind"] = b"\3\x09" + s("x")
    seeds["edge_batch_cut"] = seeds["batch_rows"][:40]
    for name, b in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b)
    print("%d seeds in %s (%d orders, %d cases, %d events, %d commands)"
          % (len(seeds), out, len(rows["order"]), len(rows["case"]), len(rows["event"]),
             len(rows["command"])))


if __name__ == "__main__":
    main()
