/* request.c -- commands from outside: the typed as_command (HTTP, embedders) and the pipe
 * protocol's JSON lines (docs/pipe.md), both parsed once into core's as_cmd and run under
 * their idempotency key by durable.c.
 *
 * The checks at this edge come first, in the order of docs/design.md#states-and-actions:
 * who may send the op, an unknown case (not_found before anything about the body), the
 * idempotency key, then the body's shape. */
#include <stdio.h>
#include <string.h>

#include "codec.h"

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/limits.h"

/* A parsed request for one command: the document it came from (owned) and what it asks. */
typedef struct request {
    as_op op;
    as_principal who;
    const char *target; /* borrowed from the caller or from `doc` */
    json_t *doc;        /* the body (an object), or NULL */
    const char *url;
    const char *source; /* rules.load */
    size_t source_len;
    char as[AS_MAX_ID + 16]; /* the "as" of a case body, copied: the body drops it */
} request;

static int run_case_open(as_runtime *rt, const request *r, as_error *err)
{
    as_cmd cmd;
    as__cmd_init(&cmd, r->who, AS_ACT_OPEN);
    as__cmd_parse_open(&cmd, r->doc);
    return as__case_open(rt, &cmd, err);
}

static int run_case_act(as_runtime *rt, const request *r, as_error *err)
{
    as_cmd cmd;
    as__cmd_init(&cmd, r->who, -1);
    cmd.case_id = r->target;
    json_t *action = json_object_get(r->doc, "action");
    as__cmd_parse_act(&cmd, json_string_value(action), json_object_get(r->doc, "payload"));
    json_t *ver = json_object_get(r->doc, "version");
    if (ver && !json_is_integer(ver) && cmd.shape_err == 0) {
        cmd.shape_err = AS_EBAD_REQUEST;
        snprintf(cmd.shape_msg, sizeof cmd.shape_msg, "'version' must be an integer");
    }
    if (ver && json_is_integer(ver)) cmd.version = json_integer_value(ver);
    return as__case_act(rt, &cmd, err);
}

static int run(as_runtime *rt, void *arg, as_error *err)
{
    const request *r = arg;
    switch (r->op) {
    case AS_OP_ORDER_CREATE: as__fire_due(rt); return as__order_create(rt, r->doc, err);
    case AS_OP_ORDER_SHIP: return as__order_event(rt, r->target, "ship", err);
    case AS_OP_ORDER_DELIVER: return as__order_event(rt, r->target, "deliver", err);
    case AS_OP_ORDER_CONFIRM: return as__order_event(rt, r->target, "confirm", err);
    case AS_OP_CASE_OPEN: return run_case_open(rt, r, err);
    case AS_OP_CASE_ACT: return run_case_act(rt, r, err);
    case AS_OP_RULES_LOAD:
        return as__merchant_upload(rt, r->target, r->source, r->source_len, err);
    case AS_OP_OUTBOX_ACK: return as__outbox_ack(rt, r->target, r->url, err);
    }
    return as__err(err, AS_EBAD_REQUEST, "unknown op");
}

/* Answers `done` with a refusal made before anything ran. */
static int refuse(as_done_cb done, void *ud, int code, const char *msg)
{
    if (done) done(ud, code, msg);
    return code;
}

/* The "as" of a case body: the platform acting for a party. Removed from the body. */
static int acting_party(request *r, as_error *err)
{
    json_t *as = json_object_get(r->doc, "as");
    if (as == NULL) return 0;
    if (!json_is_string(as)) return as__err(err, AS_EBAD_REQUEST, "'as' must be a principal string");
    if (r->who.role != AS_ROLE_PLATFORM)
        return as__err(err, AS_EFORBIDDEN, "only the platform key may act as another party");
    /* copied: the principal's id must outlive the body's "as", which open drops */
    if (json_string_length(as) >= sizeof r->as ||
        strlen(json_string_value(as)) != json_string_length(as) ||
        as__principal_parse(strcpy(r->as, json_string_value(as)), &r->who) != 0)
        return as__err(err, AS_EFORBIDDEN, "unknown principal '%.80s'", json_string_value(as));
    return 0;
}

static int check_act_keys(const json_t *body, as_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        (void)v;
        if (strcmp(k, "action") && strcmp(k, "payload") && strcmp(k, "version") && strcmp(k, "as"))
            return as__err(err, AS_EBAD_REQUEST, "unknown key '%s' in the action body", k);
    }
    return 0;
}

/* Who may send `op`, before anything is looked up. */
static int check_sender(const as_command *c, const as_principal *who, as_error *err)
{
    switch (c->op) {
    case AS_OP_ORDER_CREATE:
        if (who->role != AS_ROLE_PLATFORM)
            return as__err(err, AS_EFORBIDDEN, "only the platform creates orders");
        return 0;
    case AS_OP_ORDER_SHIP:
    case AS_OP_ORDER_DELIVER:
    case AS_OP_ORDER_CONFIRM:
        if (who->role != AS_ROLE_PLATFORM)
            return as__err(err, AS_EFORBIDDEN, "only the platform reports order events");
        return 0;
    case AS_OP_OUTBOX_ACK:
        if (who->role != AS_ROLE_PLATFORM)
            return as__err(err, AS_EFORBIDDEN, "only the platform acknowledges instructions");
        return 0;
    case AS_OP_RULES_LOAD:
        if (who->role != AS_ROLE_PLATFORM &&
            !(who->role == AS_ROLE_MERCHANT && c->target && strcmp(who->id, c->target) == 0))
            return as__err(err, AS_EFORBIDDEN, "only the shop (or the platform) uploads its rules");
        return 0;
    case AS_OP_CASE_OPEN:
    case AS_OP_CASE_ACT: return 0;
    }
    return as__err(err, AS_EBAD_REQUEST, "unknown op %d", (int)c->op);
}

/* Parses the body of a JSON op: an object, or {} when there is none. */
static int parse_body(const as_command *c, json_t **out, as_error *err)
{
    if (c->body == NULL || c->body_len == 0) {
        *out = json_object();
        return *out ? 0 : as__err(err, AS_ENOMEM, "out of memory");
    }
    int rc = as__json_parse(c->body, c->body_len, 0, out, err);
    if (rc == 0 && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        rc = as__err(err, AS_EBAD_REQUEST, "malformed JSON: not an object");
    }
    return rc;
}

int as_runtime_command(as_runtime *rt, const as_command *c, as_done_cb done, void *ud)
{
    as_error err = {0};
    request r = {.op = c->op, .target = c->target, .url = c->url};
    if (as__principal_parse(c->principal, &r.who) != 0)
        return refuse(done, ud, as__err(&err, AS_EFORBIDDEN, "unknown principal '%s'",
                                        c->principal ? c->principal : ""), err.msg);
    int rc = check_sender(c, &r.who, &err);
    if (rc) return refuse(done, ud, rc, err.msg);
    /* an outbox key is made of ids ("CASE:refund:N"), not one: it only has to be given */
    int needs_id = c->op != AS_OP_ORDER_CREATE && c->op != AS_OP_CASE_OPEN && c->op != AS_OP_OUTBOX_ACK;
    if (c->op == AS_OP_OUTBOX_ACK && (c->target == NULL || c->target[0] == '\0'))
        return refuse(done, ud, as__err(&err, AS_EBAD_REQUEST, "'outbox.ack' needs a 'key'"), err.msg);
    if (needs_id && (c->target == NULL || !as_id_valid(c->target, strlen(c->target))))
        return refuse(done, ud, as__err(&err, c->op == AS_OP_RULES_LOAD ? AS_EBAD_REQUEST : AS_ENOT_FOUND,
                                        "unknown identifier (1-64 bytes of A-Z a-z 0-9 . _ : -)"),
                      err.msg);
    if (c->op == AS_OP_CASE_ACT && as__case_get(rt, c->target) == NULL)
        return refuse(done, ud, as__err(&err, AS_ENOT_FOUND, "unknown case"), err.msg);
    if (c->key && as__limit_id(c->key, c->key_len) != 0)
        return refuse(done, ud, as__limit_err(&err, "Idempotency-Key", AS_LIMIT_ID_WHAT), err.msg);
    if (c->op == AS_OP_RULES_LOAD) {
        r.source = c->body ? c->body : "";
        r.source_len = c->body ? c->body_len : 0;
    } else if (c->op == AS_OP_ORDER_CREATE || c->op == AS_OP_CASE_OPEN || c->op == AS_OP_CASE_ACT) {
        if ((rc = parse_body(c, &r.doc, &err)) != 0) return refuse(done, ud, rc, err.msg);
        if (c->op == AS_OP_CASE_ACT) rc = check_act_keys(r.doc, &err);
        if (rc == 0 && c->op != AS_OP_ORDER_CREATE) rc = acting_party(&r, &err);
        if (rc == 0 && c->op == AS_OP_CASE_OPEN) json_object_del(r.doc, "as");
        if (rc) {
            json_decref(r.doc);
            return refuse(done, ud, rc, err.msg);
        }
    }
    /* keys are per principal: two parties' "k1" are two keys */
    char key[AS_MAX_ID * 2 + 16];
    if (c->key) snprintf(key, sizeof key, "%s|%.*s", c->principal, (int)c->key_len, c->key);
    rc = as__durable_run(rt, c->key ? key : NULL, run, &r, done, ud);
    json_decref(r.doc);
    return rc;
}

/* ==========================================================================================
 * The pipe protocol (docs/pipe.md)
 * ======================================================================================== */

/* A pipe request's op: the request (borrowed from `req`) or a refusal in err. */
static int pipe_request(json_t *req, request *r, const char **key, as_error *err)
{
    static const struct {
        const char *name;
        as_op op;
    } ops[] = {{"order.create", AS_OP_ORDER_CREATE}, {"order.ship", AS_OP_ORDER_SHIP},
               {"order.deliver", AS_OP_ORDER_DELIVER}, {"order.confirm", AS_OP_ORDER_CONFIRM},
               {"case.open", AS_OP_CASE_OPEN},       {"case.act", AS_OP_CASE_ACT},
               {"rules.load", AS_OP_RULES_LOAD},     {"outbox.ack", AS_OP_OUTBOX_ACK}};
    const char *op = json_string_value(json_object_get(req, "op"));
    if (op == NULL) return as__err(err, AS_EBAD_REQUEST, "a request needs an 'op'");
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && strcmp(ops[i].name, op) != 0) i++;
    if (i == sizeof ops / sizeof ops[0]) return as__err(err, AS_EBAD_REQUEST, "unknown op '%s'", op);
    *r = (request){.op = ops[i].op, .who = {AS_ROLE_PLATFORM, NULL}};
    /* an acknowledgement's "key" names the outbox entry, not a request: acknowledging
     * twice (another URL, a re-sent instruction) is applied each time, and is harmless */
    json_t *kj = json_object_get(req, "key");
    if (kj && r->op != AS_OP_OUTBOX_ACK &&
        !(json_is_string(kj) && as__limit_id(json_string_value(kj), json_string_length(kj)) == 0))
        return as__limit_err(err, "key", AS_LIMIT_ID_WHAT);
    *key = r->op == AS_OP_OUTBOX_ACK ? NULL : json_string_value(kj);
    switch (r->op) {
    case AS_OP_ORDER_CREATE: r->doc = json_object_get(req, "order"); return 0;
    case AS_OP_ORDER_SHIP:
    case AS_OP_ORDER_DELIVER:
    case AS_OP_ORDER_CONFIRM:
        if ((r->target = json_string_value(json_object_get(req, "order"))) == NULL)
            return as__err(err, AS_EBAD_REQUEST, "'%s' needs an 'order' id", op);
        return 0;
    case AS_OP_CASE_OPEN:
    case AS_OP_CASE_ACT: {
        const char *who = json_string_value(json_object_get(req, "as"));
        if (as__principal_parse(who, &r->who) != 0)
            return as__err(err, AS_EFORBIDDEN, "unknown principal '%s'", who ? who : "");
        if (r->op == AS_OP_CASE_OPEN) {
            r->doc = json_object_get(req, "case");
            return 0;
        }
        r->target = json_string_value(json_object_get(req, "case"));
        r->doc = req; /* its "action", "payload", "version" */
        return 0;
    }
    case AS_OP_RULES_LOAD: {
        json_t *shop = json_object_get(req, "shop"), *src = json_object_get(req, "source");
        if (!json_is_string(shop) || !json_is_string(src))
            return as__err(err, AS_EBAD_REQUEST, "'rules.load' needs 'shop' and 'source'");
        if (as__limit_id(json_string_value(shop), json_string_length(shop)))
            return as__limit_err(err, "shop", AS_LIMIT_ID_WHAT);
        r->target = json_string_value(shop);
        r->source = json_string_value(src);
        r->source_len = json_string_length(src);
        return 0;
    }
    case AS_OP_OUTBOX_ACK: {
        json_t *url = json_object_get(req, "url");
        if ((r->target = json_string_value(kj)) == NULL)
            return as__err(err, AS_EBAD_REQUEST, "'outbox.ack' needs a 'key'");
        if (url && !json_is_string(url))
            return as__err(err, AS_EBAD_REQUEST, "'outbox.ack': 'url' must be a string");
        r->url = json_string_value(url);
        return 0;
    }
    }
    return 0;
}

/* Parses one request line: an object, or a refusal. */
static int parse_line(const char *text, size_t len, json_t **req, as_error *err)
{
    int rc = as__json_parse(text, len, 0, req, err);
    if (rc == 0 && !json_is_object(*req)) {
        json_decref(*req);
        *req = NULL;
        rc = as__err(err, AS_EBAD_REQUEST, "malformed JSON: not an object");
    }
    return rc;
}

static int submit_parsed(as_runtime *rt, json_t *req, as_done_cb done, void *ud)
{
    as_error err = {0};
    request r;
    const char *key = NULL;
    int rc = pipe_request(req, &r, &key, &err);
    if (rc) return refuse(done, ud, rc, err.msg);
    return as__durable_run(rt, key, run, &r, done, ud);
}

int as_runtime_submit(as_runtime *rt, const char *request_json, as_done_cb done, void *ud)
{
    json_t *req;
    as_error err = {0};
    int rc = parse_line(request_json, request_json ? strlen(request_json) : 0, &req, &err);
    if (rc) return refuse(done, ud, rc, err.msg); /* jansson's nomem stays nomem: a retry may pass */
    rc = submit_parsed(rt, req, done, ud);
    json_decref(req);
    return rc;
}

/* One pipe request waiting for its answer: the "id" to echo. */
typedef struct pipe_wait {
    as_read_cb cb;
    void *ud;
    json_t *id; /* one reference */
    const char *name; /* a read's answer key ("case", "order"), NULL for a write */
} pipe_wait;

static void pipe_answer(pipe_wait *w, int code, const char *text)
{
    json_t *a = json_object(), *value = NULL;
    if (code == 0 && w->name && (code = as__json_parse(text, strlen(text), 0, &value, NULL)) != 0)
        text = "out of memory"; /* our own text: only memory can fail */
    if (a) json_object_set(a, "id", w->id ? w->id : json_null());
    if (code == 0 && w->name) json_object_set_new(a, w->name, value);
    else if (code == 0) json_object_set_new(a, "ok", json_true());
    else {
        json_object_set_new(a, "error", json_string(as_err_name(code)));
        json_object_set_new(a, "message", json_string(text ? text : ""));
    }
    char *line = a ? json_dumps(a, JSON_COMPACT) : NULL; /* owned here */
    json_decref(a);
    if (line == NULL) w->cb(w->ud, AS_ENOMEM, "{\"error\":\"nomem\",\"message\":\"out of memory\"}");
    else w->cb(w->ud, code, line);
    as__free(line);
    json_decref(w->id);
    as__free(w);
}

static void pipe_done(void *ud, int code, const char *message)
{
    pipe_answer(ud, code, message);
}

int as_runtime_request(as_runtime *rt, const char *line, size_t len, as_read_cb cb, void *ud)
{
    json_t *req;
    as_error err = {0};
    pipe_wait *w = as__malloc(sizeof *w); /* owned here, then by pipe_answer */
    if (w == NULL) {
        cb(ud, AS_ENOMEM, "{\"id\":null,\"error\":\"nomem\",\"message\":\"out of memory\"}");
        return AS_ENOMEM;
    }
    *w = (pipe_wait){cb, ud, NULL, NULL};
    int rc = parse_line(line, len, &req, &err);
    if (rc) {
        pipe_answer(w, rc, err.msg);
        return rc;
    }
    w->id = json_incref(json_object_get(req, "id"));
    const char *op = json_string_value(json_object_get(req, "op"));
    if (op && strcmp(op, "case.get") == 0) {
        w->name = "case";
        const char *id = json_string_value(json_object_get(req, "case"));
        rc = as_case_read(rt, id ? id : "", pipe_done, w);
    } else if (op && strcmp(op, "order.get") == 0) {
        w->name = "order";
        const char *id = json_string_value(json_object_get(req, "order"));
        rc = as_order_read(rt, id ? id : "", pipe_done, w);
    } else {
        rc = submit_parsed(rt, req, pipe_done, w);
    }
    json_decref(req);
    return rc;
}
