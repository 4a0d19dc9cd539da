#!/usr/bin/env python3
"""test_openapi.py -- checks `aftersale serve` against docs/openapi.yaml.

usage: test_openapi.py AFTERSALE_BINARY SOURCE_ROOT

Starts a real server on 127.0.0.1 (free port, temporary --db and --keys, the bundled packs,
a --webhook pointing at a receiver run here), drives a realistic flow through every endpoint
-- orders, order events, cases opened and acted on by every role, the worklist, shop
metrics, rule uploads -- and the refusals of every status, and checks each answer:

  * its status is one the spec declares for that path and method (a path or method the spec
    does not list may only answer 404 or 405, as the spec's description says);
  * its Content-Type is the declared media type, and its body validates against the schema
    the spec declares for that status ($refs resolved, OpenAPI's `nullable` turned into JSON
    Schema, then Draft 4 validation, which is what OpenAPI 3.0 schema objects are based on);
  * the status is the one the flow expects (a request the server answers differently from
    the documented behaviour fails the test, even when that status is declared).

Request bodies meant to succeed are validated against the declared request schema too, and
some that must fail are checked to be refused by the schema as well. The webhook deliveries
are validated against the WebhookDelivery schema. Every operation must have been answered
with its success status at least once. Exit status 0 when everything holds, 1 otherwise.
"""
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import jsonschema
    import yaml
except ImportError as e:  # Debian's python3-yaml / python3-jsonschema serve /usr/bin/python3
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3" \
            and not os.environ.get("AS_OPENAPI_REEXEC"):
        os.environ["AS_OPENAPI_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("test_openapi: %s (scripts/deps installs python3-yaml and python3-jsonschema)" % e)

DAY = 86400 * 1000
FAILURES = []
SEEN = {}  # (template, method) -> set of statuses


def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, flush=True)


# ==========================================================================================
# The spec
# ==========================================================================================

class Spec:
    # OpenAPI-only keywords that JSON Schema draft 4 does not know (nullable is translated)
    DROP = {"nullable", "example", "examples", "externalDocs", "xml", "discriminator",
            "readOnly", "writeOnly", "deprecated"}

    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        if self.doc.get("openapi") != "3.0.3":
            fail("spec: openapi is %r, not 3.0.3" % self.doc.get("openapi"))
        self.templates = []
        for tpl in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(tpl)) + "$"
            # literal segments win over parameters: fewer parameters first
            self.templates.append((tpl.count("{"), tpl, re.compile(rx)))
        self.templates.sort()
        self._check_spec()

    def ref(self, ref):
        if not ref.startswith("#/"):
            raise ValueError("external $ref %s" % ref)
        node = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.ref(node["$ref"])
        return node

    def to_jsonschema(self, node, depth=0):
        """An OpenAPI 3.0 schema object as a self-contained draft 4 JSON Schema."""
        if depth > 64:
            raise ValueError("schema nesting too deep (a $ref cycle?)")
        if isinstance(node, list):
            return [self.to_jsonschema(n, depth + 1) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return self.to_jsonschema(self.ref(node["$ref"]), depth + 1)
        out = {}
        for k, v in node.items():
            if k in self.DROP:
                continue
            if k in ("properties", "patternProperties"):
                out[k] = {name: self.to_jsonschema(s, depth + 1) for name, s in v.items()}
            elif k in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
                out[k] = self.to_jsonschema(v, depth + 1)
            else:
                out[k] = v
        if node.get("nullable") is True:
            return {"anyOf": [out, {"type": "null"}]}
        return out

    def validator(self, schema_node):
        s = self.to_jsonschema(schema_node)
        return jsonschema.Draft4Validator(s)

    def _check_spec(self):
        d = self.doc
        for key in ("info", "paths", "components"):
            if key not in d:
                fail("spec: no %s" % key)
        for name in ("Order", "CaseOpen", "ActionRequest", "Case", "CaseList", "Metrics", "Rules",
                     "Error", "Ok"):
            if name not in d["components"]["schemas"]:
                fail("spec: components/schemas has no %s" % name)
        for name, s in d["components"]["schemas"].items():
            try:
                jsonschema.Draft4Validator.check_schema(self.to_jsonschema(s))
            except Exception as e:  # noqa: BLE001 - any failure is a spec error
                fail("spec: components/schemas/%s: %s" % (name, e))
        ids = set()
        for tpl, item in d["paths"].items():
            for method, op in item.items():
                if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                    continue
                if op.get("operationId") in ids:
                    fail("spec: duplicate operationId %s" % op.get("operationId"))
                ids.add(op.get("operationId"))
                if not op.get("responses"):
                    fail("spec: %s %s declares no responses" % (method, tpl))
                for status, resp in op["responses"].items():
                    resp = self.deref(resp)
                    if "content" not in resp:
                        fail("spec: %s %s %s has no content" % (method, tpl, status))
                        continue
                    for mt, media in resp["content"].items():
                        try:
                            jsonschema.Draft4Validator.check_schema(
                                self.to_jsonschema(media.get("schema", {})))
                        except Exception as e:  # noqa: BLE001
                            fail("spec: %s %s %s %s: %s" % (method, tpl, status, mt, e))

    def route(self, path):
        for _, tpl, rx in self.templates:
            if rx.match(path):
                return tpl
        return None

    def operation(self, method, path):
        """(template, operation or None) for a request."""
        tpl = self.route(path)
        if tpl is None:
            return None, None
        item = self.doc["paths"][tpl]
        m = method.lower()
        if tpl in ("/healthz", "/metrics"):
            m = "get"  # they answer any method
        return tpl, item.get(m)

    def response_decl(self, op, status):
        resps = op["responses"]
        for key in (str(status), "%dXX" % (status // 100), "default"):
            if key in resps:
                return key, self.deref(resps[key])
        return None, None

    def request_schema(self, op, media="application/json"):
        body = op.get("requestBody")
        if body is None:
            return None
        body = self.deref(body)
        media = body.get("content", {}).get(media)
        return None if media is None else media.get("schema")


SPEC = None


# ==========================================================================================
# HTTP
# ==========================================================================================

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"), object_pairs_hook=no_duplicates)

    def __repr__(self):
        return "%d %s" % (self.status, self.body[:300].decode("utf-8", "replace"))


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r in a JSON object" % k)
        d[k] = v
    return d


def parse_responses(data):
    """Every complete response in `data` (bodies framed by Content-Length); the rest."""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        head = data[:end].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ", head[0] + " ")
        if not m:
            raise ValueError("not an HTTP response: %r" % head[0])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", "0"))
        if len(data) < end + 4 + n:
            return out, data
        out.append(Response(int(m.group(1)), headers, data[end + 4:end + 4 + n]))
        data = data[end + 4 + n:]


def read_all(sock, timeout=30.0):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        pass  # what arrived before the reset is kept
    return data


class Server:
    def __init__(self, exe, root, tmp, webhook_port, extra=(), name="api"):
        self.port = free_port()
        self.keys = {who: secrets.token_hex(16) for who in
                     ("platform", "merchant:S1", "merchant:S2", "buyer:B1", "buyer:B2", "logistics")}
        keys_path = os.path.join(tmp, name + "-keys.txt")
        with open(keys_path, "w") as f:
            f.write("# test keys\n")
            for who, key in self.keys.items():
                f.write("%s %s\n" % (key, who))
        secret_path = os.path.join(tmp, name + "-webhook.secret")
        with open(secret_path, "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        self.log_path = os.path.join(tmp, name + "-serve.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [exe, "serve", "--listen", "127.0.0.1:%d" % self.port, "--db",
             os.path.join(tmp, name + ".db"), "--keys", keys_path, "--packs",
             os.path.join(root, "plugins"), "--webhook",
             "http://127.0.0.1:%d/hooks/refunds" % webhook_port,
             "--webhook-secret-file", secret_path,
             # the 1025-connection check comes from one address: past the global limit
             "--max-conns-per-client", "2000"] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("aftersale serve exited %d:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
                    if read_all(s).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("aftersale serve did not start:\n" + self.log_text())

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("aftersale serve did not stop within 60 s of SIGTERM")
        self.log.close()
        return self.proc.returncode

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_request(method, path, body=None, key=None, headers=None, close=True):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if key:
        lines.append("Authorization: Bearer " + key)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# ==========================================================================================
# Checking an answer against the spec
# ==========================================================================================

def check(label, method, path, resp, expect=None):
    """Validates `resp` to `method path` against the spec; `expect` is a status or a set."""
    bare = path.split("?", 1)[0]
    tpl, op = SPEC.operation(method, bare)
    where = "%s: %s %s -> %d" % (label, method, path, resp.status)
    if expect is not None:
        want = {expect} if isinstance(expect, int) else set(expect)
        if resp.status not in want:
            fail("%s: expected %s; body %s" % (where, "/".join(map(str, sorted(want))),
                                                resp.body[:300].decode("utf-8", "replace")))
    if op is None:
        # not in the spec: the description says 404 for unknown paths (and GET/POST on a
        # listed path without that method), 405 for other methods on /v1/; 401 comes first
        allowed = {404, 401, 400} if method in ("GET", "POST") or not bare.startswith("/v1/") \
            else {405, 401}
        if resp.status not in allowed:
            fail("%s: %s %s is not in the spec, which allows only %s here" % (where, method, bare, sorted(allowed)))
        schema = SPEC.doc["components"]["schemas"]["Error"]
        validate_body(where, resp, "application/json", schema)
        SEEN.setdefault((tpl or bare, method), set()).add(resp.status)
        return resp
    SEEN.setdefault((tpl, method if tpl not in ("/healthz", "/metrics") else "GET"), set()).add(resp.status)
    _, decl = SPEC.response_decl(op, resp.status)
    if decl is None:
        fail("%s: status %d is not declared for %s %s (declared: %s)" %
             (where, resp.status, method.upper(), tpl, ", ".join(sorted(op["responses"]))))
        return resp
    content = decl.get("content", {})
    if not content:
        if resp.body:
            fail("%s: the spec declares no body, got %r" % (where, resp.body[:100]))
        return resp
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in content:
        fail("%s: Content-Type %r, the spec declares %s" % (where, ctype, sorted(content)))
        return resp
    validate_body(where, resp, ctype, content[ctype].get("schema", {}))
    return resp


def validate_body(where, resp, ctype, schema):
    if ctype == "application/json":
        try:
            instance = resp.json()
        except ValueError as e:
            fail("%s: body is not JSON (%s): %r" % (where, e, resp.body[:200]))
            return
    else:
        instance = resp.body.decode("utf-8")
    errors = sorted(SPEC.validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    for e in errors[:5]:
        fail("%s: body does not match the spec at /%s: %s" %
             (where, "/".join(map(str, e.path)), e.message[:300]))


def check_request(label, method, path, body, valid=True):
    """The request body against the declared request schema: accepted iff `valid`."""
    _, op = SPEC.operation(method, path.split("?", 1)[0])
    schema = SPEC.request_schema(op) if op else None
    if schema is None:
        fail("%s: no JSON request body declared for %s %s" % (label, method, path))
        return
    errors = list(SPEC.validator(schema).iter_errors(body))
    if valid and errors:
        fail("%s: the request body does not match the spec: %s" % (label, errors[0].message[:300]))
    if not valid and not errors:
        fail("%s: the spec accepts a request body the server refuses: %s" % (label, json.dumps(body)))


# ==========================================================================================
# The webhook receiver
# ==========================================================================================

class Hooks:
    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # (path, headers, body bytes, status answered)
        self.attempts = {}  # key -> attempts so far
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                idem = self.headers.get("Idempotency-Key", "")
                with hooks.lock:
                    tries = hooks.attempts.get(idem, 0)
                    hooks.attempts[idem] = tries + 1
                    status = 503 if tries == 0 else 204  # the first attempt fails: retried
                    hooks.received.append((self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self, key):
        with self.lock:
            return [r for r in self.received if r[1].get("Idempotency-Key") == key]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ==========================================================================================
# The flow
# ==========================================================================================

class Flow:
    def __init__(self, srv):
        self.srv = srv
        self.k = srv.keys
        self.now = int(time.time() * 1000)

    def call(self, label, method, path, body=None, who=None, expect=None, headers=None,
             key=None, spec_rejects=False, code=None):
        """One request on its own connection; checked (`code`: the error code expected);
        returns the Response."""
        k = key if key is not None else (self.k[who] if who else None)
        if isinstance(body, dict) and expect is not None:
            codes = {expect} if isinstance(expect, int) else set(expect)
            if all(200 <= c < 300 for c in codes) and method == "POST":
                check_request(label, method, path, body, valid=True)
            if spec_rejects:
                check_request(label, method, path, body, valid=False)
        with self.srv.connect() as s:
            s.sendall(build_request(method, path, body, k, headers))
            data = read_all(s)
        got, rest = parse_responses(data)
        if len(got) != 1 or rest:
            fail("%s: %s %s: expected one response, got %d (+%d bytes): %r" %
                 (label, method, path, len(got), len(rest), data[:300]))
            return Response(0, {}, b"") if not got else got[0]
        r = check(label, method, path, got[0], expect)
        if code is not None and r.status >= 400:
            try:
                if r.json().get("error") != code:
                    fail("%s: error %r, expected %r" % (label, r.json().get("error"), code))
            except ValueError:
                pass
        return r

    def case(self, cid, who="platform"):
        r = self.call("read " + cid, "GET", "/v1/cases/" + cid, who=who, expect=200)
        return r.json() if r.status == 200 else {}

    def order(self, oid, shop, buyer, items, **extra):
        body = {"id": oid, "shop": shop, "buyer": buyer, "items": items}
        body.update(extra)
        self.call("order " + oid, "POST", "/v1/orders", body, "platform", 201)

    def run(self):
        n, D = self.now, DAY
        self.service()
        self.orders(n, D)
        self.open_cases()
        self.reads()
        self.actions()
        self.worklist()
        self.metrics_and_rules()
        self.attempt_limit()
        self.routing()
        self.clock_real()
        self.transport()

    # ---- service endpoints ----------------------------------------------------------------
    def service(self):
        self.call("health", "GET", "/healthz", expect=200)
        self.call("health, any method", "POST", "/healthz", expect=200)
        self.call("prometheus", "GET", "/metrics", expect=200)

    # ---- orders and their events ----------------------------------------------------------
    def orders(self, n, D):
        o1 = {"id": "O1", "shop": "S1", "buyer": "B1", "shipping_fee": 800, "buyer_credit": 750,
              "freight_insurance": True,
              "items": [{"sku": "T1", "category": "apparel", "qty": 2, "price": 19900},
                        {"sku": "T2", "category": "apparel", "qty": 1, "price": 5000}]}
        r1 = self.call("create O1 with a key", "POST", "/v1/orders", o1, "platform", 201,
                       headers={"Idempotency-Key": "order-O1"})
        r2 = self.call("create O1, same key again", "POST", "/v1/orders", o1, "platform", 201,
                       headers={"Idempotency-Key": "order-O1"})
        if r1.body != r2.body:
            fail("idempotent replay: %r then %r" % (r1, r2))
        self.call("create O1 again without the key", "POST", "/v1/orders", o1, "platform", 400)
        self.call("order by a merchant", "POST", "/v1/orders", dict(o1, id="OX"), "merchant:S1", 403)
        self.call("order without a key", "POST", "/v1/orders", dict(o1, id="OX"), None, 401)
        self.call("order with an unknown key", "POST", "/v1/orders", dict(o1, id="OX"), key="nope", expect=401)
        self.call("order, malformed JSON", "POST", "/v1/orders", "{\"id\": ", "platform", 400)
        self.call("order, unknown key", "POST", "/v1/orders", dict(o1, id="OX", colour="red"),
                  "platform", 400, spec_rejects=True)
        self.call("order, no items", "POST", "/v1/orders", dict(o1, id="OX", items=[]), "platform", 400,
                  spec_rejects=True)
        self.call("order, bad IMEI", "POST", "/v1/orders",
                  {"id": "OX", "shop": "S2", "buyer": "B2", "items": [
                      {"sku": "E9", "category": "electronics", "qty": 1, "price": 100,
                       "serial": "490154203237519"}]}, "platform", 400)
        self.call("ship O1", "POST", "/v1/orders/O1/ship", None, "platform", 200)
        self.call("deliver O1", "POST", "/v1/orders/O1/deliver", {}, "platform", 200)
        self.call("deliver O1 again", "POST", "/v1/orders/O1/deliver", None, "platform", 409)
        self.call("an unknown event", "POST", "/v1/orders/O1/explode", None, "platform", 404)
        self.call("event on an unknown order", "POST", "/v1/orders/O404/ship", None, "platform", 404)
        self.call("event by a merchant", "POST", "/v1/orders/O1/confirm", None, "merchant:S1", 403)
        # O2: paid, not shipped
        self.order("O2", "S1", "B1", [{"sku": "P1", "category": "apparel", "qty": 1, "price": 9900}])
        self.call("confirm before delivery", "POST", "/v1/orders/O2/confirm", None, "platform", 409)
        # O3: delivered 30 days ago
        self.order("O3", "S1", "B1", [{"sku": "Q1", "category": "apparel", "qty": 1, "price": 9900}],
                   paid_at=n - 35 * D, shipped_at=n - 33 * D, delivered_at=n - 30 * D)
        # O4, O5: electronics delivered 10 and 400 days ago
        self.order("O4", "S2", "B2", [{"sku": "E1", "category": "electronics", "qty": 1,
                                       "price": 399900, "serial": "SN-0001"}],
                   paid_at=n - 14 * D, shipped_at=n - 12 * D, delivered_at=n - 10 * D)
        self.order("O5", "S2", "B2", [{"sku": "E2", "category": "electronics", "qty": 1,
                                       "price": 299900, "serial": "SN-0002"}],
                   paid_at=n - 404 * D, shipped_at=n - 402 * D, delivered_at=n - 400 * D)
        # O6: partial refunds; O7: attempts; O8: pipelining; delivered yesterday
        for oid, sku in (("O6", "R1"), ("O7", "A1"), ("O8", "R8")):
            self.order(oid, "S1", "B1", [{"sku": sku, "category": "apparel", "qty": 1, "price": 12000}],
                       paid_at=n - 3 * D, shipped_at=n - 2 * D, delivered_at=n - D)
        self.call("confirm O6", "POST", "/v1/orders/O6/confirm", None, "platform", 200)

    # ---- opening cases --------------------------------------------------------------------
    def open_cases(self):
        c1 = {"id": "C1", "order": "O1", "type": "refund_only", "reason": "quality",
              "items": [{"sku": "T1", "qty": 1}], "evidence": ["photo-1"]}
        self.call("buyer opens C1", "POST", "/v1/cases", c1, "buyer:B1", 201)
        self.call("case id in use", "POST", "/v1/cases", c1, "buyer:B1", 400)
        self.call("a second case on T1", "POST", "/v1/cases", dict(c1, id="C1b"), "buyer:B1", 409,
                  code="duplicate_case")
        self.call("another buyer's order", "POST", "/v1/cases", dict(c1, id="C1c"), "buyer:B2", 403)
        self.call("a merchant opens", "POST", "/v1/cases", dict(c1, id="C1d"), "merchant:S1", 403)
        self.call("a buyer with as", "POST", "/v1/cases", dict(c1, id="C1e", **{"as": "buyer:B1"}),
                  "buyer:B1", 403)
        self.call("unknown order", "POST", "/v1/cases", dict(c1, id="C1f", order="O404"), "buyer:B1", 404)
        self.call("unknown case key", "POST", "/v1/cases", dict(c1, id="C1g", colour="red"), "buyer:B1",
                  400, spec_rejects=True)
        self.call("unknown type", "POST", "/v1/cases", dict(c1, id="C1h", type="teleport"), "buyer:B1",
                  400, spec_rejects=True)
        self.call("no evidence", "POST", "/v1/cases",
                  {"id": "C1i", "order": "O1", "type": "refund_only", "reason": "quality",
                   "items": [{"sku": "T2", "qty": 1}]}, "buyer:B1", 422, code="evidence_required")
        self.call("not shipped", "POST", "/v1/cases",
                  {"id": "C1j", "order": "O2", "type": "return_refund", "reason": "quality",
                   "items": [{"sku": "P1", "qty": 1}], "evidence": ["p"]}, "buyer:B1", 422,
                  code="not_eligible")
        self.call("too late", "POST", "/v1/cases",
                  {"id": "C1k", "order": "O3", "type": "refund_only", "reason": "quality",
                   "items": [{"sku": "Q1", "qty": 1}], "evidence": ["p"]}, "buyer:B1", 422,
                  code="window_expired")
        self.call("三包 day 10: no return", "POST", "/v1/cases",
                  {"id": "C1l", "order": "O4", "type": "return_refund", "reason": "quality",
                   "items": [{"sku": "E1", "qty": 1}], "evidence": ["p"]}, "buyer:B2", 422,
                  code="remedy_not_allowed")
        self.call("三包 day 400", "POST", "/v1/cases",
                  {"id": "C1m", "order": "O5", "type": "repair", "reason": "quality",
                   "items": [{"sku": "E2", "qty": 1}], "evidence": ["p"]}, "buyer:B2", 422,
                  code="warranty_expired")
        self.call("asks above paid", "POST", "/v1/cases",
                  {"id": "C1n", "order": "O6", "type": "partial_refund", "reason": "quality",
                   "items": [{"sku": "R1", "qty": 1}], "evidence": ["p"],
                   "requested_amount": 999999}, "buyer:B1", 422, code="amount_exceeds_paid")
        # the platform for a buyer; an exchange on day 10 of 三包
        self.call("platform as buyer opens C2", "POST", "/v1/cases",
                  {"as": "buyer:B1", "id": "C2", "order": "O1", "type": "return_refund",
                   "reason": "size_fit", "items": [{"sku": "T2", "qty": 1}]}, "platform", 201)
        self.call("B2 opens C5 (exchange)", "POST", "/v1/cases",
                  {"id": "C5", "order": "O4", "type": "exchange", "reason": "quality",
                   "items": [{"sku": "E1", "qty": 1}], "evidence": ["p1", "p2"]}, "buyer:B2", 201)
        self.call("C4 partial refund", "POST", "/v1/cases",
                  {"id": "C4", "order": "O6", "type": "partial_refund", "reason": "quality",
                   "items": [{"sku": "R1", "qty": 1}], "evidence": ["p"], "requested_amount": 3000},
                  "buyer:B1", 201, headers={"Idempotency-Key": "open-C4"})

    # ---- reading cases --------------------------------------------------------------------
    def reads(self):
        for who in ("buyer:B1", "merchant:S1", "platform", "logistics"):
            c = self.case("C1", who)
            if c and c.get("state") != "requested":
                fail("C1 should be requested, is %s" % c.get("state"))
        c = self.case("C1", "merchant:S1")
        if c and set(c.get("actions", [])) != {"agree", "reject"}:
            fail("C1 merchant actions: %s" % c.get("actions"))
        self.call("another buyer reads C1", "GET", "/v1/cases/C1", who="buyer:B2", expect=403)
        self.call("another shop reads C1", "GET", "/v1/cases/C1", who="merchant:S2", expect=403)
        self.call("unknown case", "GET", "/v1/cases/C404", who="platform", expect=404)
        self.call("no key", "GET", "/v1/cases/C1", expect=401)
        self.call("Basic, not Bearer", "GET", "/v1/cases/C1", headers={
            "Authorization": "Basic " + self.k["platform"]}, expect=401)

    # ---- acting on cases ------------------------------------------------------------------
    def actions(self):
        act = "/v1/cases/%s/actions"
        self.call("stale version", "POST", act % "C1", {"action": "agree", "version": 0},
                  "merchant:S1", 409, code="conflict")
        self.call("another shop acts", "POST", act % "C1", {"action": "agree"}, "merchant:S2", 403)
        self.call("unknown action", "POST", act % "C1", {"action": "fly"}, "merchant:S1", 400,
                  spec_rejects=True)
        self.call("unknown body key", "POST", act % "C1", {"action": "agree", "bogus": 1},
                  "merchant:S1", 400, spec_rejects=True)
        self.call("unknown payload key", "POST", act % "C1",
                  {"action": "agree", "payload": {"bogus": 1}}, "merchant:S1", 400, spec_rejects=True)
        self.call("reject without reason", "POST", act % "C1", {"action": "reject"}, "merchant:S1", 400)
        self.call("body not an object", "POST", act % "C1", "[1, 2]", "merchant:S1", 400)
        self.call("a merchant withdraws", "POST", act % "C1", {"action": "withdraw"}, "merchant:S1", 403)
        self.call("the platform agrees without as", "POST", act % "C1", {"action": "agree"},
                  "platform", 403)
        self.call("a merchant with as", "POST", act % "C1", {"action": "agree", "as": "buyer:B1"},
                  "merchant:S1", 403)
        self.call("as an unknown principal", "POST", act % "C1", {"action": "agree", "as": "nobody"},
                  "platform", 403)
        self.call("unknown case", "POST", act % "C404", {"action": "agree"}, "merchant:S1", 404)
        v = self.case("C1", "merchant:S1").get("version", 1)
        a1 = self.call("agree C1", "POST", act % "C1", {"action": "agree", "version": v},
                       "merchant:S1", 200, headers={"Idempotency-Key": "agree-C1"})
        a2 = self.call("agree C1, retried", "POST", act % "C1", {"action": "agree", "version": v},
                       "merchant:S1", 200, headers={"Idempotency-Key": "agree-C1"})
        if a1.body != a2.body:
            fail("idempotent replay of agree: %r then %r" % (a1, a2))
        self.call("agree C1 again, no key", "POST", act % "C1", {"action": "agree"}, "merchant:S1", 409,
                  code="invalid_state")
        c = self.case("C1")
        if c and c.get("state") != "refunding":
            fail("C1 after agree: %s" % c.get("state"))
        self.call("refund callback", "POST", act % "C1", {"action": "refund_succeeded"}, "platform", 200)
        self.case("C1", "buyer:B1")

        # C2: return_refund, merchant agrees through the platform, the buyer ships
        self.call("platform as merchant agrees C2", "POST", act % "C2",
                  {"action": "agree", "as": "merchant:S1", "payload": None}, "platform", 200)
        c2 = self.case("C2", "buyer:B1")
        if not any(h.get("action") == "agree" and h.get("actor") == "merchant:S1"
                   for h in c2.get("history", [])):
            fail("C2: the platform's agree as merchant:S1 is not in the history as such: %s"
                 % c2.get("history"))
        self.call("buyer ships C2", "POST", act % "C2",
                  {"action": "ship_return", "payload": {"carrier": "SF", "tracking": "SF100",
                                                        "shipping_cost": 1200}}, "buyer:B1", 200)
        self.call("tracking news", "POST", act % "C2", {"action": "return_delivered"}, "logistics", 200)
        c2 = self.case("C2", "logistics")
        if c2.get("state") == "returning":
            self.call("merchant confirms C2", "POST", act % "C2", {"action": "confirm_return"},
                      "merchant:S1", 200)
        c2 = self.case("C2")
        if c2.get("state") == "refunding":
            self.call("refund failed", "POST", act % "C2",
                      {"action": "refund_failed", "payload": {"reason": "card_closed"}}, "platform", 200)
            self.call("refund C2", "POST", act % "C2", {"action": "refund_succeeded"}, "platform", 200)
        self.case("C2", "merchant:S1")

        # C4: partial refund, offer, decline, escalate, ruling
        self.call("offer above cap", "POST", act % "C4", {"action": "offer", "payload": {"amount": 10 ** 9}},
                  "merchant:S1", 400)
        self.call("offer", "POST", act % "C4", {"action": "offer", "payload": {"amount": 2000}},
                  "merchant:S1", 200)
        self.case("C4", "buyer:B1")
        self.call("decline", "POST", act % "C4", {"action": "decline_offer"}, "buyer:B1", 200)
        self.call("revise, evidence dropped", "POST", act % "C4",
                  {"action": "revise", "payload": {"evidence": []}}, "buyer:B1", 422,
                  code="evidence_required")
        self.call("revise", "POST", act % "C4",
                  {"action": "revise", "payload": {"requested_amount": 2500, "evidence": ["p", "q"]}},
                  "buyer:B1", 200)
        self.call("reject", "POST", act % "C4", {"action": "reject", "payload": {"reason": "as_described"}},
                  "merchant:S1", 200)
        self.call("escalate", "POST", act % "C4", {"action": "escalate"}, "buyer:B1", 200)
        self.case("C4")
        self.call("rule for buyer", "POST", act % "C4", {"action": "rule_for_buyer"}, "platform", 200)
        self.case("C4", "merchant:S1")

        # C5: electronics exchange; agree, ship, receive, inspect
        self.call("S2 agrees C5", "POST", act % "C5", {"action": "agree"}, "merchant:S2", 200)
        self.call("B2 ships C5", "POST", act % "C5",
                  {"action": "ship_return", "payload": {"carrier": "JD", "tracking": "JD7"}}, "buyer:B2", 200)
        self.call("S2 receives C5", "POST", act % "C5",
                  {"action": "confirm_return", "payload": {"serial": "SN-0001"}}, "merchant:S2", 200)
        if self.case("C5", "merchant:S2").get("state") == "inspecting":
            self.call("bad result", "POST", act % "C5", {"action": "inspect", "payload": {"result": "meh"}},
                      "merchant:S2", 400, spec_rejects=True)
            self.call("inspect", "POST", act % "C5", {"action": "inspect", "payload": {"result": "fault"}},
                      "merchant:S2", 200)
        if self.case("C5", "buyer:B2").get("state") == "reshipping":
            self.call("ship replacement", "POST", act % "C5",
                      {"action": "ship_replacement", "payload": {"carrier": "JD", "tracking": "JD8"}},
                      "merchant:S2", 200)
            self.call("buyer confirms", "POST", act % "C5", {"action": "confirm_receipt"}, "buyer:B2", 200)
        c5 = self.case("C5", "buyer:B2")
        if c5 and c5.get("state") != "completed":
            fail("C5 should have completed, is %s" % c5.get("state"))

    # ---- the worklist ---------------------------------------------------------------------
    def worklist(self):
        self.call("C3", "POST", "/v1/cases",
                  {"id": "C3", "order": "O1", "type": "refund_only", "reason": "wrong_item",
                   "items": [{"sku": "T1", "qty": 1}], "evidence": ["p"]}, "buyer:B1", 201)
        self.call("C6", "POST", "/v1/cases",
                  {"id": "C6", "order": "O2", "type": "refund_only", "reason": "not_received",
                   "items": [{"sku": "P1", "qty": 1}]}, "buyer:B1", 201)
        page = self.call("worklist page 1", "GET", "/v1/cases?shop=S1&limit=1", who="merchant:S1",
                         expect=200).json()
        seen = [c["id"] for c in page.get("cases", [])]
        hops = 0
        while page.get("cursor") and hops < 20:
            page = self.call("worklist next page", "GET", "/v1/cases?limit=1&cursor=" + page["cursor"],
                             who="merchant:S1", expect=200).json()
            seen += [c["id"] for c in page.get("cases", [])]
            hops += 1
        if sorted(seen) != sorted(set(seen)) or len(seen) < 2:
            fail("worklist pages: %s" % seen)
        self.call("terminal state", "GET", "/v1/cases?state=refunded", who="platform", expect=200)
        self.call("buyer's worklist", "GET", "/v1/cases", who="buyer:B1", expect=200)
        self.call("another shop", "GET", "/v1/cases?shop=S2", who="merchant:S1", expect=403)
        self.call("logistics", "GET", "/v1/cases", who="logistics", expect=403)
        self.call("limit 0", "GET", "/v1/cases?limit=0", who="platform", expect=400)
        self.call("unknown state", "GET", "/v1/cases?state=lost", who="platform", expect=400)
        self.call("no key", "GET", "/v1/cases", expect=401)

    # ---- shop metrics and rules -----------------------------------------------------------
    def metrics_and_rules(self):
        self.call("S1 metrics", "GET", "/v1/shops/S1/metrics", who="merchant:S1", expect=200)
        self.call("S2 metrics by the platform", "GET", "/v1/shops/S2/metrics", who="platform", expect=200)
        m = self.call("a shop without events", "GET", "/v1/shops/S404/metrics", who="platform",
                      expect=200).json()
        if m.get("main_category") is not None or m.get("orders") != 0:
            fail("S404 metrics: %s" % m)
        self.call("S1 metrics by S2", "GET", "/v1/shops/S1/metrics", who="merchant:S2", expect=403)
        self.call("S1 metrics by a buyer", "GET", "/v1/shops/S1/metrics", who="buyer:B1", expect=403)
        self.call("metrics without a key", "GET", "/v1/shops/S1/metrics", expect=401)

        rules = "/v1/shops/S1/rules"
        good = ('-- S1: 30-day returns\nreturn { name = "s1-30-day", version = "2",\n'
                '  eligibility = function(order, request, now) return nil end }\n')
        self.call("upload rules", "PUT", rules, good, "merchant:S1", 200,
                  headers={"Content-Type": "text/x-lua"})
        self.call("the platform uploads S2's", "PUT", "/v1/shops/S2/rules",
                  'return { name = "s2", version = "1" }', "platform", 200)
        self.call("S2 uploads S1's", "PUT", rules, good, "merchant:S2", 403)
        self.call("a buyer uploads", "PUT", rules, good, "buyer:B1", 403)
        self.call("no key", "PUT", rules, good, None, 401)
        self.call("syntax error", "PUT", rules, "return { name = ", "merchant:S1", 400)
        self.call("not a table", "PUT", rules, "return 5", "merchant:S1", 400)
        self.call("a category pack", "PUT", rules,
                  'return { name = "x", version = "1", categories = {"apparel"} }', "merchant:S1", 400)
        self.call("throws while loading", "PUT", rules, 'error("boom")', "merchant:S1", 500,
                  code="rule_error")
        # Lua source is bytes: a pack whose strings are not UTF-8 either loads or is refused as
        # bad_request -- never "out of memory, try later"
        self.call("source not UTF-8", "PUT", rules,
                  b'return { name = "s1-\xff\xfe", version = "3" }', "merchant:S1", (200, 400))
        self.call("another source under s1-30-day@2", "PUT", rules, good + "-- changed\n",
                  "merchant:S1", 409, code="conflict")
        self.call("S1's versions", "GET", rules, who="merchant:S1", expect=200)
        small = ('return { name = "s1-small", version = "1",\n  auto_decide = function(c, o, now)\n'
                 '    if c.refund_amount <= 10000 then return { action = "agree" } end end }\n')
        self.call("backtest S1's cases", "POST", rules + "/backtest", small, "merchant:S1", 200)
        self.call("backtest by the platform", "POST", rules + "/backtest", small, "platform", 200)
        self.call("S2 backtests S1's", "POST", rules + "/backtest", small, "merchant:S2", 403)
        self.call("a buyer backtests", "POST", rules + "/backtest", small, "buyer:B1", 403)
        self.call("backtest without a key", "POST", rules + "/backtest", small, None, 401)
        self.call("backtest a syntax error", "POST", rules + "/backtest", "return { name = ",
                  "merchant:S1", 400)
        self.call("backtest a throwing top level", "POST", rules + "/backtest", 'error("boom")',
                  "merchant:S1", 500, code="rule_error")
        self.call("S1's versions by S2", "GET", rules, who="merchant:S2", expect=403)
        self.call("S1's versions without a key", "GET", rules, expect=401)
        self.call("S1's version 2", "GET", rules + "/2", who="platform", expect=200)
        self.call("S1's version 2 by a buyer", "GET", rules + "/2", who="buyer:B1", expect=403)
        self.call("S1's version 2 without a key", "GET", rules + "/2", expect=401)
        self.call("a version S1 never uploaded", "GET", rules + "/99", who="merchant:S1", expect=404)
        self.call("rules for a buyer", "GET", "/v1/rules", who="buyer:B1", expect=403)
        got = self.call("packs in force", "GET", "/v1/rules", who="merchant:S1", expect=200).json()
        if got.get("merchants", {}).get("S1", "").split("@")[0] not in ("s1-30-day", "s1-\ufffd\ufffd"):
            fail("GET /v1/rules: S1's pack is %r" % got.get("merchants", {}).get("S1"))
        self.call("rules without a key", "GET", "/v1/rules", expect=401)
        # a case opened now pins the merchant pack
        self.call("C7 after the upload", "POST", "/v1/cases",
                  {"id": "C7", "order": "O7", "type": "return_refund", "reason": "no_reason",
                   "items": [{"sku": "A1", "qty": 1}]}, "buyer:B1", 201)
        c7 = self.case("C7", "buyer:B1")
        if c7 and "merchant" not in c7.get("rules", {}):
            fail("C7 did not pin S1's merchant pack: %s" % c7.get("rules"))

    # ---- attempt limit --------------------------------------------------------------------
    def attempt_limit(self):
        act = "/v1/cases/%s/actions"
        self.call("withdraw C7", "POST", act % "C7", {"action": "withdraw"}, "buyer:B1", 200)
        for i in range(4):  # C7 was the first open of A1
            cid = "CA%d" % i
            self.call("open %s" % cid, "POST", "/v1/cases",
                      {"id": cid, "order": "O7", "type": "return_refund", "reason": "no_reason",
                       "items": [{"sku": "A1", "qty": 1}]}, "buyer:B1", 201)
            self.call("withdraw %s" % cid, "POST", act % cid, {"action": "withdraw"}, "buyer:B1", 200)
        self.call("the sixth open", "POST", "/v1/cases",
                  {"id": "CA9", "order": "O7", "type": "return_refund", "reason": "no_reason",
                   "items": [{"sku": "A1", "qty": 1}]}, "buyer:B1", 422, code="attempt_limit")

    # ---- paths and methods the spec does not list -----------------------------------------
    # ---- the clock ------------------------------------------------------------------------
    def clock_real(self):
        for who in ("platform", "buyer:B1", "merchant:S1", "logistics"):
            r = self.call("the real clock, " + who, "GET", "/v1/clock", who=who, expect=200)
            if r.status == 200 and r.json().get("clock") != "real":
                fail("GET /v1/clock on the default server: %r" % r)
        self.call("the clock without a key", "GET", "/v1/clock", expect=401)
        self.call("advance a real clock", "POST", "/v1/clock/advance", {"by": "48h"}, "platform",
                  409, code="conflict")
        self.call("advance, merchant", "POST", "/v1/clock/advance", {"by": "48h"}, "merchant:S1",
                  403, code="forbidden")

    def clock_virtual(self):
        """On a `--clock virtual` server: a case whose merchant_response fires on a move."""
        t0 = self.call("the virtual clock", "GET", "/v1/clock", who="platform", expect=200).json()
        if t0.get("clock") != "virtual":
            fail("GET /v1/clock on --clock virtual: %r" % t0)
        now = t0.get("now", 0)
        self.order("V1", "S1", "B1", [{"sku": "T1", "category": "apparel", "qty": 1, "price": 19900}])
        self.call("deliver V1", "POST", "/v1/orders/V1/deliver", None, "platform", 200)
        self.call("open VC1", "POST", "/v1/cases",
                  {"id": "VC1", "order": "V1", "type": "return_refund", "reason": "no_reason",
                   "items": [{"sku": "T1", "qty": 1}]}, "buyer:B1", 201)
        r = self.call("advance 48h", "POST", "/v1/clock/advance", {"by": "48h"}, "platform", 200)
        want = {"now": now + 48 * 3600000, "fired": [
            {"case": "VC1", "deadline": "merchant_response", "at": now + 48 * 3600000,
             "action": "auto_agree", "to": "awaiting_return"}]}
        if r.status == 200 and r.json() != want:
            fail("advance 48h: %r, expected %r" % (r.json(), want))
        self.call("advance to now", "POST", "/v1/clock/advance", {"to": now + 48 * 3600000},
                  "platform", 200)
        t1 = now + 49 * 3600000
        rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t1 // 1000)) + ".%03dZ" % (t1 % 1000)
        r = self.call("advance to an RFC 3339 instant", "POST", "/v1/clock/advance", {"to": rfc},
                      "platform", 200)
        if r.status == 200 and r.json() != {"now": t1, "fired": []}:
            fail("advance to %s: %r" % (rfc, r.json()))
        self.call("advance past a year on", "POST", "/v1/clock/advance",
                  {"to": "2999-01-01T00:00:00Z"}, "platform", 400)
        for label, body in (("both", {"by": "1h", "to": now}), ("neither", {}),
                            ("unknown member", {"by": "1h", "x": 1}), ("garbage", {"by": "soon"}),
                            ("a number", {"by": 3600000}), ("negative", {"by": "-1h"})):
            self.call("advance, " + label, "POST", "/v1/clock/advance", body, "platform", 400,
                      spec_rejects=True, code="bad_request")
        self.call("advance 0s", "POST", "/v1/clock/advance", {"by": "0s"}, "platform", 400)
        self.call("advance 366d", "POST", "/v1/clock/advance", {"by": "366d"}, "platform", 400)
        self.call("advance, malformed", "POST", "/v1/clock/advance", "{\"by\":", "platform", 400)
        self.call("advance, buyer", "POST", "/v1/clock/advance", {"by": "1h"}, "buyer:B1", 403)
        self.call("advance, no key", "POST", "/v1/clock/advance", {"by": "1h"}, None, 401)
        c = self.case("VC1")
        if c.get("state") != "awaiting_return":
            fail("VC1 after the move: %s" % c.get("state"))

    def routing(self):
        self.call("unknown path", "GET", "/nope", expect=404)
        self.call("unknown /v1 path", "GET", "/v1/nothing", who="platform", expect=404)
        self.call("unknown /v1 path, no key", "GET", "/v1/nothing", expect=401)
        self.call("GET on a POST path", "GET", "/v1/orders", who="platform", expect=404)
        self.call("POST on a GET path", "POST", "/v1/cases/C1", {"action": "agree"}, "merchant:S1", 404)
        self.call("DELETE a case", "DELETE", "/v1/cases/C1", who="platform", expect=405)
        self.call("PUT a case", "PUT", "/v1/cases", {"id": "C9"}, "platform", 405)
        self.call("PATCH metrics", "PATCH", "/v1/shops/S1/metrics", who="merchant:S1", expect=405)

    # ---- the connection level -------------------------------------------------------------
    def transport(self):
        k = self.k
        # pipelining: a write (answered once durable), then reads, answered in request order
        reqs = [("POST", "/v1/cases", {"id": "C8", "order": "O8", "type": "refund_only",
                                        "reason": "quality", "items": [{"sku": "R8", "qty": 1}],
                                        "evidence": ["p"]}, k["buyer:B1"], 201),
                ("GET", "/v1/cases/C8", None, k["buyer:B1"], 200),
                ("GET", "/healthz", None, None, 200),
                ("POST", "/v1/cases/C8/actions", {"action": "withdraw"}, k["buyer:B1"], 200),
                ("GET", "/v1/cases?state=closed", None, k["buyer:B1"], 200),
                ("GET", "/v1/cases/C404", None, k["platform"], 404)]
        with self.srv.connect() as s:
            payload = b"".join(build_request(m, p, b, key, close=(i == len(reqs) - 1))
                               for i, (m, p, b, key, _) in enumerate(reqs))
            s.sendall(payload)
            data = read_all(s)
        got, rest = parse_responses(data)
        if len(got) != len(reqs) or rest:
            fail("pipelining: %d requests, %d answers (+%d bytes)" % (len(reqs), len(got), len(rest)))
        for (m, p, _, _, want), r in zip(reqs, got):
            check("pipelined", m, p, r, want)
        if len(got) >= 2 and got[1].status == 200 and got[1].json().get("id") != "C8":
            fail("pipelining: answers out of order")
        if len(got) >= 2 and got[1].status == 200 and got[1].json().get("state") not in ("requested", "refunding"):
            fail("pipelining: the read after the open saw %s" % got[1].json().get("state"))

        # keep-alive: two requests, two answers, connection stays open
        with self.srv.connect() as s:
            s.sendall(build_request("GET", "/healthz", close=False))
            time.sleep(0.2)
            s.sendall(build_request("GET", "/v1/rules", key=k["platform"], close=True))
            got, _ = parse_responses(read_all(s))
            if len(got) != 2:
                fail("keep-alive: %d answers" % len(got))
            for (m, p), r in zip((("GET", "/healthz"), ("GET", "/v1/rules")), got):
                check("keep-alive", m, p, r, 200)

        # HTTP/1.0: answered, then closed
        with self.srv.connect() as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            got, _ = parse_responses(read_all(s))
            if len(got) != 1 or got[0].headers.get("connection", "").lower() != "close":
                fail("HTTP/1.0: %r" % got)
            else:
                check("HTTP/1.0", "GET", "/healthz", got[0], 200)

        # 413: a declared body above 1 MiB is refused at once
        with self.srv.connect() as s:
            s.sendall(("POST /v1/cases HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
                       "Content-Length: %d\r\n\r\n" % (k["buyer:B1"], 2 << 20)).encode() + b"{" * 4096)
            got, _ = parse_responses(read_all(s))
            if len(got) != 1:
                fail("413: %d answers" % len(got))
            else:
                check("body too large", "POST", "/v1/cases", got[0], 413)
        # ... and a chunked one that grows past it: exactly 1 MiB, read by the server, then
        # one byte more (sent alone, so that nothing is left unread when the server closes)
        with self.srv.connect() as s:
            s.sendall(("PUT /v1/shops/S1/rules HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n" % k["merchant:S1"]).encode())
            chunk = b"-" * 65536
            for _ in range(16):
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            time.sleep(0.5)
            s.sendall(b"1\r\n-\r\n")
            got, _ = parse_responses(read_all(s))
            if len(got) != 1:
                fail("chunked 413: %d answers" % len(got))
            else:
                check("chunked body too large", "PUT", "/v1/shops/S1/rules", got[0], 413)

        # 431: headers above 16 KiB
        with self.srv.connect() as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n" + b"".join(
                b"X-Filler-%d: %s\r\n" % (i, b"a" * 4000) for i in range(5)) + b"\r\n")
            got, _ = parse_responses(read_all(s))
            if len(got) != 1:
                fail("431: %d answers" % len(got))
            else:
                check("headers too large", "GET", "/healthz", got[0], 431)

        # 400: not HTTP at all
        with self.srv.connect() as s:
            s.sendall(b"HELLO THERE\r\n\r\n")
            got, _ = parse_responses(read_all(s))
            if len(got) != 1 or got[0].status != 400:
                fail("malformed HTTP: %r" % got)
            else:
                validate_body("malformed HTTP", got[0], "application/json",
                              SPEC.doc["components"]["responses"]["BadRequest"]["content"]
                              ["application/json"]["schema"])

        # 408: a request trickled over more than 10 s
        with self.srv.connect() as s:
            s.sendall(b"GET /v1/rules HTTP/1.1\r\nHost: x\r\n")
            time.sleep(10.5)
            try:
                s.sendall(b"Authorization: Bearer " + k["platform"].encode() + b"\r\n\r\n")
            except OSError:
                pass
            got, _ = parse_responses(read_all(s))
            if len(got) != 1:
                fail("408: %d answers" % len(got))
            else:
                check("request too slow", "GET", "/v1/rules", got[0], 408)

        # 503: the 1025th connection
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft < 1200:
            print("note: RLIMIT_NOFILE %d: the 1025-connection check is skipped" % soft)
            return
        held = []
        try:
            for _ in range(1024):
                held.append(self.srv.connect())
            time.sleep(0.5)
            with self.srv.connect() as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                got, _ = parse_responses(read_all(s, 10))
            if len(got) != 1:
                fail("1025th connection: %d answers" % len(got))
            else:
                check("too many connections", "GET", "/healthz", got[0], 503)
                if got[0].status == 503 and got[0].json().get("error") != "io":
                    fail("too many connections: %r" % got[0])
        finally:
            for h in held:
                h.close()
        time.sleep(0.5)
        self.call("serving again", "GET", "/healthz", expect=200)


def prometheus_checks(flow):
    r = flow.call("final metrics", "GET", "/metrics", expect=200)
    text = r.body.decode()
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            if line and not re.match(r"^# (TYPE|HELP) [a-zA-Z_:][a-zA-Z0-9_:]* ", line):
                fail("/metrics: bad comment line %r" % line)
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.eE+]+)$', line)
        if not m:
            fail("/metrics: bad sample line %r" % line)
            continue
        values[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    for name in ('aftersale_http_requests_total{class="2xx"}', 'aftersale_http_requests_total{class="4xx"}',
                 "aftersale_commands_total", "aftersale_http_request_duration_seconds_count",
                 "aftersale_commit_seconds_count"):
        if values.get(name, 0) <= 0:
            fail("/metrics: %s is %s" % (name, values.get(name)))
    # transitions are counted by case type and the state entered
    by_state = {k: v for k, v in values.items() if k.startswith("aftersale_transitions_total{")}
    if not by_state or not any('state="refunded"' in k for k in by_state):
        fail("/metrics: no aftersale_transitions_total{type,state} into refunded: %s" % by_state)
    buckets = [v for k, v in values.items() if k.startswith("aftersale_http_request_duration_seconds_bucket")]
    if buckets != sorted(buckets):
        fail("/metrics: the latency histogram's buckets are not cumulative")
    return values


def main():
    global SPEC
    if len(sys.argv) != 3:
        sys.exit("usage: test_openapi.py AFTERSALE_BINARY SOURCE_ROOT")
    exe, root = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    SPEC = Spec(os.path.join(root, "docs", "openapi.yaml"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # for us and the server
    hooks = Hooks()
    with tempfile.TemporaryDirectory(prefix="as-openapi-") as tmp:
        srv = Server(exe, root, tmp, hooks.port)
        try:
            flow = Flow(srv)
            try:
                flow.run()
                # webhooks: C1's first refund instruction (first attempt answered 503, so retried)
                deadline = time.time() + 30
                while time.time() < deadline:
                    if any(r[3] == 204 for r in hooks.delivered("C1:refund:1")):
                        break
                    time.sleep(0.1)
                got = hooks.delivered("C1:refund:1")
                if not any(r[3] == 204 for r in got):
                    fail("webhook: C1:refund:1 not delivered (attempts: %d)" % len(got))
                if len(got) < 2:
                    fail("webhook: a 503 answer was not retried (%d attempts)" % len(got))
                wh = jsonschema.Draft4Validator(
                    SPEC.to_jsonschema(SPEC.doc["components"]["schemas"]["WebhookDelivery"]))
                with hooks.lock:
                    received = list(hooks.received)
                for path, headers, body, _ in received:
                    try:
                        j = json.loads(body)
                    except ValueError:
                        fail("webhook: body is not JSON: %r" % body[:200])
                        continue
                    for e in wh.iter_errors(j):
                        fail("webhook body %s: %s" % (body[:200], e.message))
                    if headers.get("Idempotency-Key") != j.get("key"):
                        fail("webhook: Idempotency-Key %r, body key %r" % (headers.get("Idempotency-Key"), j.get("key")))
                    if path != "/hooks/refunds":
                        fail("webhook: POSTed to %s" % path)
                c1 = [json.loads(r[2]) for r in got[:1]]
                if c1 and (c1[0].get("case") != "C1" or c1[0].get("amount") != 19900):
                    fail("webhook: C1's refund is %s" % c1[0])
                values = prometheus_checks(flow)
                vsrv = Server(exe, root, tmp, hooks.port, extra=("--clock", "virtual"), name="virtual")
                try:
                    Flow(vsrv).clock_virtual()
                finally:
                    if vsrv.stop() != 0:
                        fail("the --clock virtual server exited %s after SIGTERM" % vsrv.proc.returncode)
                if values.get('aftersale_webhook_deliveries_total{result="delivered"}', 0) < 1 or \
                        values.get('aftersale_webhook_deliveries_total{result="failed"}', 0) < 1:
                    fail("/metrics: webhook counters %s" % {k: v for k, v in values.items() if "webhook" in k})
            except Exception:
                import traceback
                traceback.print_exc()
                fail("the flow stopped on an exception")
        finally:
            rc = srv.stop()
            hooks.stop()
            if rc != 0:
                fail("aftersale serve exited %s after SIGTERM" % rc)
            if FAILURES:
                print("--- server log (tail) ---\n" + srv.log_text())

    # coverage: every operation answered its success status at least once
    for tpl, item in SPEC.doc["paths"].items():
        for method, op in item.items():
            ok = [s for s in op.get("responses", {}) if s.startswith("2")]
            seen = SEEN.get((tpl, method.upper()), set())
            if not any(str(s) in ok for s in seen):
                fail("coverage: %s %s never answered %s (saw %s)" % (method.upper(), tpl, "/".join(ok), sorted(seen)))
    print("operations and statuses seen:")
    for (tpl, method), statuses in sorted(SEEN.items()):
        print("  %-7s %-30s %s" % (method, tpl, " ".join(map(str, sorted(statuses)))))
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        return 1
    print("all answers match docs/openapi.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
