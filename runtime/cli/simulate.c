/* simulate.c -- `aftersale simulate`: seeded synthetic traffic through a headless runtime.
 *
 * Shops, buyers, orders and after-sales cases are drawn from one splitmix64 stream seeded by
 * --seed, and every command goes through the public API on a virtual clock, in time order, so
 * that the bundled packs' deadlines fire in between exactly as they would in production. The
 * same options give the same output byte for byte (the timing figures aside, --no-timing drops
 * them): it is a load generator for the engine and a way to see what the rulebook's metrics
 * and the 4x flag make of a month of traffic.
 *
 * The run is event-driven: orders are created in paid order (their paid times rise with their
 * index), and each order's next step (ship, deliver, open, a party's answer) waits in a binary
 * heap keyed by time, ties by the sequence number it was pushed with. Each order follows a
 * plan: the case type and reason drawn at creation, then each party's answer drawn when its
 * turn comes. A command refused because a deadline moved the case first is counted, and the
 * plan goes on where the deadline led. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aftersale/aftersale.h"
#include "cli.h"

#define MIN_MS (60 * 1000LL)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define MAX_SHOPS 1000000L
#define MAX_ORDERS 100000000L
#define MAX_MERCHANT_PACKS 64
#define TOP_SHOPS 20
#define NCODES (AS__ERR_END - AS__ERR_FIRST - 1)
#define CODE_SLOT(code) ((code)-AS__ERR_FIRST - 1)

/* ---- Options ---------------------------------------------------------------------------- */

enum { CAT_APPAREL, CAT_FRESH, CAT_ELECTRONICS, NCATS };
static const char *const cat_names[NCATS] = {"apparel", "fresh_food", "electronics"};

typedef struct merchant_pack {
    char shop[65];
    const char *file; /* borrowed from argv */
} merchant_pack;

typedef struct sim_opts {
    uint64_t seed;
    long shops, orders, days;
    long case_rate, reject_rate, offer_rate, escalate_rate, buyer_win_rate, bad_shops;
    long cat_weight[NCATS];
    int64_t response_median, response_p90, start_ms;
    const char *packs;
    merchant_pack merchant[MAX_MERCHANT_PACKS];
    int nmerchant;
    int json, timing;
} sim_opts;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: aftersale simulate [OPTIONS]\n"
        "\n"
        "Runs seeded synthetic after-sales traffic through a headless runtime with the\n"
        "bundled packs on a virtual clock, and prints what came of it: per shop the\n"
        "rulebook's metrics (docs/rulebook.md#metrics) at the end of the order span,\n"
        "the flagged shops, money refunded, cases by final state, deadline decisions,\n"
        "refusals by code, and transitions per second. The same options print the same\n"
        "output (but the timing; --no-timing leaves it out).\n"
        "\n"
        "  --seed N               the random stream (default 1)\n"
        "  --shops N              shops, S0..S<N-1>, each selling one category (default 1000)\n"
        "  --orders N             orders, placed evenly over --days (default 1000000)\n"
        "  --days N               the span over which orders are placed, 1-365 (default 30)\n"
        "  --start INSTANT        when the span starts (default 2026-03-01T00:00:00Z)\n"
        "  --case-rate PERMILLE   orders that get an after-sales case (default 150)\n"
        "  --categories LIST      shops' category weights (default\n"
        "                         apparel=50,fresh_food=30,electronics=20)\n"
        "  --response-median DUR  merchants' median time to answer a case (default 6h)\n"
        "  --response-p90 DUR     its 90th percentile, log-normal in between (default 40h);\n"
        "                         answers after merchant_response (48h, fresh food 24h)\n"
        "                         meet the case auto-agreed\n"
        "  --reject-rate PERMILLE merchant answers that reject (default 100; x3 in bad shops)\n"
        "  --offer-rate PERMILLE  partial refunds answered with an offer of half (default 300)\n"
        "  --escalate-rate PERMILLE  rejections the buyer escalates (default 400)\n"
        "  --buyer-win-rate PERMILLE platform rulings for the buyer (default 500)\n"
        "  --bad-shops PERMILLE   shops with 3x the case and reject rates (default 20)\n"
        "  --merchant-pack SHOP=FILE  load FILE as SHOP's merchant rules (repeatable)\n"
        "  --packs DIR            the bundled Lua rule packs (default: %s)\n"
        "  --json                 one JSON document, every shop in it\n"
        "  --no-timing            leave out elapsed seconds and transitions/s\n"
        "  -h, --help             this text\n"
        "\n"
        "Case types and reasons by category (weights; all eligible under the bundled packs\n"
        "when opened in time): apparel: cancellation 10, return_refund/size_fit 30,\n"
        "return_refund/no_reason 20, exchange/size_fit 10, return_refund/quality 10,\n"
        "partial_refund/not_as_described 10, exchange/wrong_item 5,\n"
        "refund_only/damaged_in_transit 5; fresh_food: cancellation 10,\n"
        "refund_only/spoiled 35, partial_refund/spoiled 30, reship/damaged_in_transit 15,\n"
        "refund_only/missing_item 10; electronics: cancellation 10,\n"
        "return_refund/no_reason 35, return_refund/quality 20, exchange/quality 10,\n"
        "repair/quality 15, return_refund/not_as_described 10. A cancellation is a\n"
        "refund_only before shipment.\n"
        "\n"
        "Text output lists the top %d shops by dispute refund rate and every flagged shop.\n"
        "Exit status 0, 1 when the runtime could not start, 2 for a usage error.\n",
        as__cli_packs_dir(), TOP_SHOPS);
}

static int bad(const char *opt, const char *what)
{
    fprintf(stderr, "aftersale simulate: --%s %s\n", opt, what);
    return 2;
}

/* A whole number in [lo, hi] into *out: 0, or 2 with the message printed. */
static int whole(const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    /* strtoll saturates a number past its range (ERANGE): that is no value in [lo, hi] */
    if (end == text || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
        char what[96];
        snprintf(what, sizeof what, "takes a whole number from %ld to %ld", lo, hi);
        return bad(opt, what);
    }
    *out = (long)v;
    return 0;
}

static int duration(const char *opt, const char *text, int64_t *out)
{
    /* at most a year: a sampled answer time (up to a few times the p90) then stays far from
     * the int64 range of the clock */
    if (as_duration_parse(text, out) != 0 || *out <= 0 || *out > 365 * DAY_MS)
        return bad(opt, "takes a positive duration up to 365d, like 90s, 6h or 2d");
    return 0;
}

/* "apparel=50,fresh_food=30": every category named once at most; the others get 0. */
static int categories(const char *text, long *weight)
{
    long seen[NCATS] = {0}, sum = 0;
    memset(weight, 0, NCATS * sizeof *weight);
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "=,");
        int c = 0;
        while (c < NCATS && (strlen(cat_names[c]) != n || strncmp(p, cat_names[c], n) != 0))
            c++;
        if (c == NCATS || p[n] != '=' || seen[c]++)
            return bad("categories", "takes NAME=WEIGHT,... of apparel, fresh_food, electronics");
        char num[24];
        size_t m = strcspn(p + n + 1, ",");
        if (m == 0 || m >= sizeof num) return bad("categories", "takes whole-number weights");
        memcpy(num, p + n + 1, m);
        num[m] = '\0';
        if (whole("categories", num, 0, 1000000, &weight[c])) return 2;
        sum += weight[c];
        p += n + 1 + m;
        if (*p == ',' && *++p == '\0') return bad("categories", "has an empty entry");
    }
    if (sum == 0) return bad("categories", "needs weights that add up to more than 0");
    return 0;
}

static int merchant_pack_opt(sim_opts *o, const char *text)
{
    const char *eq = strchr(text, '=');
    if (eq == NULL || eq[1] == '\0' || !as_id_valid(text, (size_t)(eq - text)))
        return bad("merchant-pack", "takes SHOP=FILE with SHOP a shop id");
    if (o->nmerchant == MAX_MERCHANT_PACKS) return bad("merchant-pack", "is given too often");
    merchant_pack *m = &o->merchant[o->nmerchant++];
    memcpy(m->shop, text, (size_t)(eq - text));
    m->shop[eq - text] = '\0';
    m->file = eq + 1;
    return 0;
}

enum {
    O_SEED = 256,
    O_SHOPS,
    O_ORDERS,
    O_DAYS,
    O_START,
    O_CASE_RATE,
    O_CATEGORIES,
    O_MEDIAN,
    O_P90,
    O_REJECT,
    O_OFFER,
    O_ESCALATE,
    O_WIN,
    O_BAD,
    O_MERCHANT,
    O_PACKS,
    O_JSON,
    O_NO_TIMING
};

static int one_option(sim_opts *o, int c, const char *arg)
{
    long v = 0;
    int rc = 0;
    switch (c) {
    case O_SEED:
        /* a seed is any 64-bit pattern, but as a whole number no user mistypes as negative */
        rc = whole("seed", arg, 0, LONG_MAX, &v);
        o->seed = (uint64_t)v;
        return rc;
    case O_SHOPS:
        return whole("shops", arg, 1, MAX_SHOPS, &o->shops);
    case O_ORDERS:
        return whole("orders", arg, 1, MAX_ORDERS, &o->orders);
    case O_DAYS:
        return whole("days", arg, 1, 365, &o->days);
    case O_START:
        if (as_instant_parse(arg, &o->start_ms) != 0)
            return bad("start", "takes an instant like 2026-03-01T00:00:00Z");
        return 0;
    case O_CASE_RATE:
        return whole("case-rate", arg, 0, 1000, &o->case_rate);
    case O_CATEGORIES:
        return categories(arg, o->cat_weight);
    case O_MEDIAN:
        return duration("response-median", arg, &o->response_median);
    case O_P90:
        return duration("response-p90", arg, &o->response_p90);
    case O_REJECT:
        return whole("reject-rate", arg, 0, 1000, &o->reject_rate);
    case O_OFFER:
        return whole("offer-rate", arg, 0, 1000, &o->offer_rate);
    case O_ESCALATE:
        return whole("escalate-rate", arg, 0, 1000, &o->escalate_rate);
    case O_WIN:
        return whole("buyer-win-rate", arg, 0, 1000, &o->buyer_win_rate);
    case O_BAD:
        return whole("bad-shops", arg, 0, 1000, &o->bad_shops);
    case O_MERCHANT:
        return merchant_pack_opt(o, arg);
    case O_PACKS:
        o->packs = arg;
        return 0;
    case O_JSON:
        o->json = 1;
        return 0;
    case O_NO_TIMING:
        o->timing = 0;
        return 0;
    }
    return 2;
}

/* Returns -1 to go on, or the exit status. */
static int parse_options(sim_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {{"seed", required_argument, NULL, O_SEED},
                                         {"shops", required_argument, NULL, O_SHOPS},
                                         {"orders", required_argument, NULL, O_ORDERS},
                                         {"days", required_argument, NULL, O_DAYS},
                                         {"start", required_argument, NULL, O_START},
                                         {"case-rate", required_argument, NULL, O_CASE_RATE},
                                         {"categories", required_argument, NULL, O_CATEGORIES},
                                         {"response-median", required_argument, NULL, O_MEDIAN},
                                         {"response-p90", required_argument, NULL, O_P90},
                                         {"reject-rate", required_argument, NULL, O_REJECT},
                                         {"offer-rate", required_argument, NULL, O_OFFER},
                                         {"escalate-rate", required_argument, NULL, O_ESCALATE},
                                         {"buyer-win-rate", required_argument, NULL, O_WIN},
                                         {"bad-shops", required_argument, NULL, O_BAD},
                                         {"merchant-pack", required_argument, NULL, O_MERCHANT},
                                         {"packs", required_argument, NULL, O_PACKS},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"no-timing", no_argument, NULL, O_NO_TIMING},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    *o = (sim_opts){.seed = 1,
                    .shops = 1000,
                    .orders = 1000000,
                    .days = 30,
                    .case_rate = 150,
                    .reject_rate = 100,
                    .offer_rate = 300,
                    .escalate_rate = 400,
                    .buyer_win_rate = 500,
                    .bad_shops = 20,
                    .cat_weight = {50, 30, 20},
                    .response_median = 6 * HOUR_MS,
                    .response_p90 = 40 * HOUR_MS,
                    .start_ms = 1772323200000LL,
                    .packs = as__cli_packs_dir(),
                    .timing = 1};
    int c;
    optind = 1;
    opterr = 0; /* our own one-line message below */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr,
                    "aftersale simulate: unknown option or missing value: %s "
                    "(see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (one_option(o, c, optarg)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "aftersale simulate: takes no operand: %s\n", argv[optind]);
        return 2;
    }
    if (o->response_p90 < o->response_median)
        return bad("response-p90", "must not be below --response-median");
    return -1;
}

/* ---- Randomness ------------------------------------------------------------------------ */

/* splitmix64: one 64-bit state, every output a full-period bijection of it. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); the modulo bias at n <= 2^32 is below 2^-32, far under any figure here. */
static uint64_t below(uint64_t *s, uint64_t n)
{
    return next_u64(s) % n;
}

static int chance(uint64_t *s, long permille)
{
    return (long)below(s, 1000) < permille;
}

/* A duration with the given median and 90th percentile, log-normal: response times have a
 * long right tail, and the tail is what meets the deadlines. Floating point is for the shape
 * only; the result is whole milliseconds, at least one second. */
static int64_t lognormal(uint64_t *s, int64_t median, int64_t p90)
{
    double u1 = ((double)(next_u64(s) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1) */
    double u2 = (double)(next_u64(s) >> 11) / 9007199254740992.0;
    double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    double sigma = log((double)p90 / (double)median) / 1.2815515655446004;
    double ms = (double)median * exp(sigma * z);
    if (ms > 365.0 * DAY_MS) ms = 365.0 * DAY_MS;
    return ms < 1000.0 ? 1000 : (int64_t)ms;
}

/* ---- The model ------------------------------------------------------------------------- */

/* What a case asks for. A cancellation opens before shipment; the others after delivery. */
typedef struct plan {
    const char *type, *reason;
    int weight;
    unsigned evidence : 1, cancel : 1, returns : 1, fault : 1, partial : 1, reship : 1, inspect : 1;
} plan;

#define CANCEL                                                                                     \
    {                                                                                              \
        "refund_only", "no_reason", 10, 0, 1, 0, 0, 0, 0, 0                                        \
    }
static const plan plans[NCATS][8] = {
    [CAT_APPAREL] = {CANCEL,
                     {"return_refund", "size_fit", 30, 0, 0, 1, 0, 0, 0, 0},
                     {"return_refund", "no_reason", 20, 0, 0, 1, 0, 0, 0, 0},
                     {"exchange", "size_fit", 10, 0, 0, 1, 0, 0, 0, 0},
                     {"return_refund", "quality", 10, 1, 0, 1, 1, 0, 0, 0},
                     {"partial_refund", "not_as_described", 10, 1, 0, 0, 1, 1, 0, 0},
                     {"exchange", "wrong_item", 5, 1, 0, 1, 1, 0, 0, 0},
                     {"refund_only", "damaged_in_transit", 5, 1, 0, 0, 1, 0, 0, 0}},
    [CAT_FRESH] = {CANCEL,
                   {"refund_only", "spoiled", 35, 1, 0, 0, 0, 0, 0, 0},
                   {"partial_refund", "spoiled", 30, 1, 0, 0, 0, 1, 0, 0},
                   {"reship", "damaged_in_transit", 15, 1, 0, 0, 1, 0, 1, 0},
                   {"refund_only", "missing_item", 10, 1, 0, 0, 0, 0, 0, 0}},
    [CAT_ELECTRONICS] = {CANCEL,
                         {"return_refund", "no_reason", 35, 0, 0, 1, 0, 0, 0, 0},
                         {"return_refund", "quality", 20, 1, 0, 1, 1, 0, 0, 1},
                         {"exchange", "quality", 10, 1, 0, 1, 1, 0, 0, 1},
                         {"repair", "quality", 15, 1, 0, 1, 1, 0, 0, 1},
                         {"return_refund", "not_as_described", 10, 1, 0, 1, 1, 0, 0, 0}},
};
#define NO_PLAN 0xff

/* Per category: unit prices and how long after delivery buyers open (fresh food is judged
 * within 48h, the others within 7 or 15 days: the tails are the window_expired refusals). */
static const struct {
    int64_t price_lo, price_hi, fee, open_median, open_p90;
} cat_shape[NCATS] = {
    [CAT_APPAREL] = {3000, 60000, 800, 2 * DAY_MS, 6 * DAY_MS},
    [CAT_FRESH] = {2000, 30000, 1500, 8 * HOUR_MS, 30 * HOUR_MS},
    [CAT_ELECTRONICS] = {30000, 900000, 0, 2 * DAY_MS, 6 * DAY_MS},
};

/* The steps an order waits in the heap for. */
typedef enum step {
    ST_SHIP,
    ST_DELIVER,
    ST_OPEN,
    ST_ANSWER,
    ST_OFFER_ANSWER,
    ST_ESCALATE,
    ST_RULING,
    ST_SHIP_RETURN,
    ST_RECEIVE,
    ST_INSPECT,
    ST_SHIP_REPLACEMENT,
    ST_FINISH_REPAIR,
    ST_CONFIRM_RECEIPT
} step;

typedef struct sim_order {
    int64_t price, fee;
    uint32_t shop, buyer;
    uint16_t credit, permille;
    uint8_t plan; /* index into plans[cat], NO_PLAN without a case */
    uint8_t cat;
    uint8_t held : 1; /* the merchant holds the returned goods (rulebook: goods held) */
    uint8_t opened : 1;
} sim_order;

typedef struct shop {
    char id[16], principal[32];
    uint8_t cat, bad;
    long orders, cases;
    int64_t refunded_fen;
    json_t *metrics; /* owned; the library's metrics at the end of the span */
} shop;

typedef struct action {
    int64_t at;
    uint64_t seq;
    uint32_t order;
    uint8_t step;
} action;

/* Everything one run owns: freed by sim_free. */
typedef struct sim {
    const sim_opts *o;
    uint64_t rng;
    as_runtime *rt;
    shop *shops;       /* owned, o->shops */
    sim_order *orders; /* owned, o->orders */
    action *heap;      /* owned */
    size_t nheap, capheap;
    uint64_t seq;
    long nbuyers, cases_opened, opens_refused, commands, refunds;
    int64_t refunded_fen;
    long refused[NCODES];
    double t0, last_bar;
    int bar;
} sim;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- The heap of pending actions -------------------------------------------------------- */

static int earlier(const action *a, const action *b)
{
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static int push(sim *s, uint32_t order, step st, int64_t at)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 4096;
        action *h = as_realloc(s->heap, cap * sizeof *h);
        if (h == NULL) return AS_ENOMEM;
        s->heap = h, s->capheap = cap;
    }
    size_t i = s->nheap++;
    action a = {at, s->seq++, order, (uint8_t)st};
    while (i > 0 && earlier(&a, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = a;
    return 0;
}

static action pop(sim *s)
{
    action top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0, n = s->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && earlier(&s->heap[c + 1], &s->heap[c])) c++;
        if (!earlier(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* ---- Commands ------------------------------------------------------------------------- */

/* "PREFIX<n>" into buf: ids are made for every command, so no printf. */
static const char *id_of(char *buf, const char *prefix, uint32_t n)
{
    char tmp[12];
    int len = 0;
    do
        tmp[len++] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    size_t p = strlen(prefix);
    memcpy(buf, prefix, p);
    while (len)
        buf[p++] = tmp[--len];
    buf[p] = '\0';
    return buf;
}

/* Counts the outcome of one command; returns its code. */
static int outcome(sim *s, int rc)
{
    s->commands++;
    if (rc < 0 && rc > AS__ERR_FIRST && rc < AS__ERR_END) s->refused[CODE_SLOT(rc)]++;
    return rc;
}

static int act(sim *s, uint32_t i, int merchant, const char *action, const char *payload)
{
    char buyer[32], cid[16];
    const char *who = merchant ? s->shops[s->orders[i].shop].principal
                               : id_of(buyer, "buyer:B", s->orders[i].buyer);
    as_error err;
    return outcome(s, as_case_act_json(s->rt, who, id_of(cid, "C", i), action, payload, -1, &err));
}

static int platform_act(sim *s, uint32_t i, const char *action)
{
    char cid[16];
    as_error err;
    return outcome(s,
                   as_case_act_json(s->rt, "platform", id_of(cid, "C", i), action, NULL, -1, &err));
}

/* Writes the document `j` (taken) into `buf` as JSON text: jansson writes it, the caller's
 * buffer holds it (no allocation for the text). 0, or -1 when it does not fit or `j` is NULL
 * (out of memory). */
static int json_text(json_t *j, char *buf, size_t size)
{
    size_t n = j ? json_dumpb(j, buf, size - 1, JSON_COMPACT) : 0;
    json_decref(j);
    if (n == 0 || n >= size) return -1;
    buf[n] = '\0';
    return 0;
}

static const plan *plan_of(const sim *s, uint32_t i)
{
    const sim_order *o = &s->orders[i];
    return o->plan == NO_PLAN ? NULL : &plans[o->cat][o->plan];
}

static int create_order(sim *s, uint32_t i)
{
    const sim_order *o = &s->orders[i];
    char json[400], oid[16], bid[16];
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:i, s:I}], s:I, s:i}", "id", id_of(oid, "O", i),
                  "shop", s->shops[o->shop].id, "buyer", id_of(bid, "B", o->buyer), "items", "sku",
                  "K1", "category", cat_names[o->cat], "qty", 1, "price", (json_int_t)o->price,
                  "shipping_fee", (json_int_t)o->fee, "buyer_credit", (int)o->credit);
    if (json_text(j, json, sizeof json) != 0) return outcome(s, AS_ENOMEM);
    as_error err;
    return outcome(s, as_order_create_json(s->rt, json, &err));
}

static int order_event(sim *s, uint32_t i, const char *event)
{
    char oid[16];
    as_error err;
    return outcome(s, as_order_event(s->rt, id_of(oid, "O", i), event, &err));
}

static int open_case(sim *s, uint32_t i)
{
    const sim_order *o = &s->orders[i];
    const plan *p = plan_of(s, i);
    char json[400], cid[16], oid[16], buyer[32];
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:i}]}", "id", id_of(cid, "C", i), "order",
                          id_of(oid, "O", i), "type", p->type, "reason", p->reason, "items", "sku",
                          "K1", "qty", 1);
    if (j && p->partial && o->cat == CAT_FRESH)
        json_object_set_new(j, "bad_permille", json_integer((json_int_t)o->permille));
    else if (j && p->partial)
        json_object_set_new(j, "requested_amount", json_integer((json_int_t)(o->price * 3 / 10)));
    if (j && p->evidence) json_object_set_new(j, "evidence", json_pack("[s]", "photo1"));
    if (json_text(j, json, sizeof json) != 0) return outcome(s, AS_ENOMEM);
    as_error err;
    return outcome(s, as_case_open_json(s->rt, id_of(buyer, "buyer:B", o->buyer), json, &err));
}

/* ---- Plans ---------------------------------------------------------------------------- */

static int64_t response(sim *s, uint32_t i)
{
    int64_t t = lognormal(&s->rng, s->o->response_median, s->o->response_p90);
    return s->shops[s->orders[i].shop].bad ? t * 2 : t;
}

static long reject_rate(const sim *s, uint32_t i)
{
    long r = s->o->reject_rate * (s->shops[s->orders[i].shop].bad ? 3 : 1);
    return r > 1000 ? 1000 : r;
}

/* The refund a return_refund asks for once shipped back: what instant refund judges. */
static int instant(const sim *s, uint32_t i, int64_t shipping_cost)
{
    const sim_order *o = &s->orders[i];
    const plan *p = plan_of(s, i);
    int64_t amount = o->price + (p->fault ? shipping_cost : 0);
    return strcmp(p->type, "return_refund") == 0 && !p->inspect && o->credit >= 600 &&
           amount <= 150000;
}

#define RETURN_SHIPPING 1200 /* fen, what the buyer pays the carrier */

/* Where agreement leads (docs/rulebook.md#where-agreement-leads), from the simulator's side:
 * what is next for the parties once the case is agreed, or once the return is accepted. */
static int after_agree(sim *s, uint32_t i, int64_t now)
{
    const plan *p = plan_of(s, i);
    if (p->reship)
        return push(s, i, ST_SHIP_REPLACEMENT, now + lognormal(&s->rng, DAY_MS, 60 * HOUR_MS));
    if (!p->returns) return 0;         /* refunding: auto_pay pays at once */
    if (chance(&s->rng, 30)) return 0; /* never ships back: buyer_ship closes it */
    return push(s, i, ST_SHIP_RETURN, now + lognormal(&s->rng, DAY_MS, 4 * DAY_MS));
}

static int after_accept(sim *s, uint32_t i, int64_t now)
{
    const plan *p = plan_of(s, i);
    if (strcmp(p->type, "exchange") == 0)
        return push(s, i, ST_SHIP_REPLACEMENT, now + lognormal(&s->rng, DAY_MS, 60 * HOUR_MS));
    if (strcmp(p->type, "repair") == 0)
        return push(s, i, ST_FINISH_REPAIR, now + lognormal(&s->rng, 5 * DAY_MS, 12 * DAY_MS));
    return 0;
}

/* A rejection: the buyer escalates some, lets the others close. */
static int after_reject(sim *s, uint32_t i, int64_t now)
{
    if (!chance(&s->rng, s->o->escalate_rate)) return 0;
    return push(s, i, ST_ESCALATE, now + lognormal(&s->rng, DAY_MS, 4 * DAY_MS));
}

static int merchant_answer(sim *s, uint32_t i, int64_t now)
{
    const sim_order *o = &s->orders[i];
    const plan *p = plan_of(s, i);
    if (p->partial && chance(&s->rng, s->o->offer_rate)) {
        int64_t ask = o->cat == CAT_FRESH ? o->price * o->permille / 1000 : o->price * 3 / 10;
        char payload[48];
        if (json_text(json_pack("{s:I}", "amount", (json_int_t)(ask / 2 > 0 ? ask / 2 : 1)),
                      payload, sizeof payload) != 0)
            return outcome(s, AS_ENOMEM);
        if (act(s, i, 1, "offer", payload) == 0)
            return push(s, i, ST_OFFER_ANSWER,
                        now + lognormal(&s->rng, 12 * HOUR_MS, 40 * HOUR_MS));
    } else if (chance(&s->rng, reject_rate(s, i))) {
        if (act(s, i, 1, "reject", "{\"reason\":\"not as the buyer says\"}") == 0)
            return after_reject(s, i, now);
    } else {
        act(s, i, 1, "agree", NULL);
    }
    /* agreed, or refused because auto_agree or auto_decide got there first: agreed either way */
    return after_agree(s, i, now);
}

static int ship_return(sim *s, uint32_t i, int64_t now)
{
    char payload[96], tracking[16];
    if (json_text(json_pack("{s:s, s:s, s:i}", "carrier", "SF", "tracking",
                            id_of(tracking, "SF", i), "shipping_cost", RETURN_SHIPPING),
                  payload, sizeof payload) != 0)
        return outcome(s, AS_ENOMEM);
    if (act(s, i, 0, "ship_return", payload) != 0 || instant(s, i, RETURN_SHIPPING)) return 0;
    /* the parcel takes two days, then the merchant's own pace */
    return push(s, i, ST_RECEIVE, now + 2 * DAY_MS + response(s, i));
}

static int receive(sim *s, uint32_t i, int64_t now)
{
    const plan *p = plan_of(s, i);
    if (!p->fault && chance(&s->rng, reject_rate(s, i) / 4)) {
        int rc = act(s, i, 1, "reject_return", "{\"reason\":\"worn\"}");
        if (rc == 0) {
            s->orders[i].held = 1;
            return after_reject(s, i, now);
        }
        if (rc != AS_EINVALID_STATE) return 0;
    } else {
        int rc = act(s, i, 1, "confirm_return", NULL);
        if (rc != 0 && rc != AS_EINVALID_STATE) return 0;
    }
    /* confirmed, or auto_confirm_return was first */
    if (p->inspect) return push(s, i, ST_INSPECT, now + lognormal(&s->rng, DAY_MS, 60 * HOUR_MS));
    return after_accept(s, i, now);
}

static int inspect(sim *s, uint32_t i, int64_t now)
{
    if (chance(&s->rng, 150)) {
        if (act(s, i, 1, "inspect", "{\"result\":\"no_fault\"}") == 0) {
            s->orders[i].held = 1;
            return after_reject(s, i, now);
        }
    } else {
        act(s, i, 1, "inspect", "{\"result\":\"fault\"}");
    }
    return after_accept(s, i, now); /* fault, or auto_inspect (fault) was first */
}

static int ruling(sim *s, uint32_t i, int64_t now)
{
    if (!chance(&s->rng, s->o->buyer_win_rate)) {
        platform_act(s, i, "rule_for_merchant");
        return 0;
    }
    if (platform_act(s, i, "rule_for_buyer") != 0) return 0;
    return s->orders[i].held ? after_accept(s, i, now) : after_agree(s, i, now);
}

static int delivered(sim *s, uint32_t i, int64_t now)
{
    const sim_order *o = &s->orders[i];
    if (o->plan == NO_PLAN || plan_of(s, i)->cancel) return 0;
    int64_t wait = lognormal(&s->rng, cat_shape[o->cat].open_median, cat_shape[o->cat].open_p90);
    return push(s, i, ST_OPEN, now + wait);
}

static int opened(sim *s, uint32_t i, int64_t now)
{
    if (open_case(s, i) != 0) {
        s->opens_refused++;
        return 0;
    }
    s->orders[i].opened = 1;
    s->cases_opened++;
    s->shops[s->orders[i].shop].cases++;
    return push(s, i, ST_ANSWER, now + response(s, i));
}

static int run_step(sim *s, const action *a)
{
    uint32_t i = a->order;
    int64_t now = a->at;
    switch ((step)a->step) {
    case ST_SHIP:
        order_event(s, i, "ship");
        return push(s, i, ST_DELIVER, now + lognormal(&s->rng, 2 * DAY_MS, 4 * DAY_MS));
    case ST_DELIVER:
        order_event(s, i, "deliver");
        return delivered(s, i, now);
    case ST_OPEN:
        return opened(s, i, now);
    case ST_ANSWER:
        return merchant_answer(s, i, now);
    case ST_OFFER_ANSWER:
        if (chance(&s->rng, 750)) return act(s, i, 0, "accept_offer", NULL), 0;
        if (act(s, i, 0, "decline_offer", NULL) != 0) return 0;
        return after_reject(s, i, now);
    case ST_ESCALATE:
        if (act(s, i, 0, "escalate", NULL) != 0) return 0;
        return push(s, i, ST_RULING, now + lognormal(&s->rng, DAY_MS, 3 * DAY_MS));
    case ST_RULING:
        return ruling(s, i, now);
    case ST_SHIP_RETURN:
        return ship_return(s, i, now);
    case ST_RECEIVE:
        return receive(s, i, now);
    case ST_INSPECT:
        return inspect(s, i, now);
    case ST_SHIP_REPLACEMENT:
    case ST_FINISH_REPAIR:
        if (act(s, i, 1, a->step == ST_FINISH_REPAIR ? "finish_repair" : "ship_replacement",
                a->step == ST_FINISH_REPAIR ? NULL : "{\"carrier\":\"SF\",\"tracking\":\"R1\"}"))
            return 0;
        if (chance(&s->rng, 300)) return 0; /* never confirms: buyer_confirm completes it */
        return push(s, i, ST_CONFIRM_RECEIPT, now + lognormal(&s->rng, 2 * DAY_MS, 6 * DAY_MS));
    case ST_CONFIRM_RECEIPT:
        act(s, i, 0, "confirm_receipt", NULL);
        return 0;
    }
    return 0;
}

/* ---- Orders and shops ------------------------------------------------------------------ */

static int pick_weighted(uint64_t *rng, const long *w, int n)
{
    long sum = 0;
    for (int k = 0; k < n; k++)
        sum += w[k];
    long r = (long)below(rng, (uint64_t)sum);
    int k = 0;
    while (r >= w[k])
        r -= w[k++];
    return k;
}

static uint8_t pick_plan(uint64_t *rng, int cat)
{
    long w[8] = {0};
    for (int k = 0; k < 8; k++)
        w[k] = plans[cat][k].weight;
    return (uint8_t)pick_weighted(rng, w, 8);
}

static void make_shops(sim *s)
{
    for (long k = 0; k < s->o->shops; k++) {
        shop *sh = &s->shops[k];
        id_of(sh->id, "S", (uint32_t)k);
        snprintf(sh->principal, sizeof sh->principal, "merchant:%s", sh->id);
        sh->cat = (uint8_t)pick_weighted(&s->rng, s->o->cat_weight, NCATS);
        sh->bad = (uint8_t)chance(&s->rng, s->o->bad_shops);
    }
}

/* Orders are paid evenly over the span, each at a random instant of its own slot, so paid
 * times rise with the index and need no heap. The first instant is one past the start: the
 * metrics window at the span's end is (end - 30d, end]. */
static int64_t paid_at(const sim *s, uint32_t i, int64_t jitter)
{
    int64_t span = s->o->days * DAY_MS;
    return s->o->start_ms + 1 + span * i / s->o->orders + jitter;
}

static int new_order(sim *s, uint32_t i, int64_t now)
{
    sim_order *o = &s->orders[i];
    o->shop = (uint32_t)below(&s->rng, (uint64_t)s->o->shops);
    o->buyer = (uint32_t)below(&s->rng, (uint64_t)s->nbuyers);
    const shop *sh = &s->shops[o->shop];
    o->cat = sh->cat;
    o->price = cat_shape[o->cat].price_lo +
               (int64_t)below(&s->rng, (uint64_t)(cat_shape[o->cat].price_hi -
                                                  cat_shape[o->cat].price_lo + 1));
    o->fee = cat_shape[o->cat].fee;
    o->credit = (uint16_t)below(&s->rng, 1001);
    o->permille = (uint16_t)(100 + below(&s->rng, 801));
    long rate = s->o->case_rate * (sh->bad ? 3 : 1);
    o->plan = chance(&s->rng, rate > 1000 ? 1000 : rate) ? pick_plan(&s->rng, o->cat) : NO_PLAN;
    s->shops[o->shop].orders++;
    if (create_order(s, i) != 0) return 0;
    if (o->plan != NO_PLAN && plan_of(s, i)->cancel)
        return push(s, i, ST_OPEN, now + lognormal(&s->rng, 2 * HOUR_MS, 10 * HOUR_MS));
    return push(s, i, ST_SHIP, now + lognormal(&s->rng, 12 * HOUR_MS, 36 * HOUR_MS));
}

/* The outbox: with auto_pay every refund instruction is paid as it is given. */
static void on_outbox(void *data, const char *kind, const char *case_id, int64_t amount_fen,
                      const char *key)
{
    (void)key;
    sim *s = data;
    if (strcmp(kind, "refund") != 0 || case_id[0] != 'C') return;
    uint32_t i = (uint32_t)strtoul(case_id + 1, NULL, 10);
    s->refunds++;
    s->refunded_fen += amount_fen;
    s->shops[s->orders[i].shop].refunded_fen += amount_fen;
}

/* The library's view of every shop, as the platform would read it at the end of the span. */
static int snapshot_metrics(sim *s)
{
    for (long k = 0; k < s->o->shops; k++) {
        char *text = as_shop_metrics_json(s->rt, s->shops[k].id);
        s->shops[k].metrics = text ? json_loads(text, 0, NULL) : NULL;
        as_free(text);
        if (s->shops[k].metrics == NULL) return AS_ENOMEM;
    }
    return 0;
}

/* ---- The run ---------------------------------------------------------------------------- */

/* A bar on a terminal only, redrawn at most ten times a second of work. */
static void progress(sim *s, uint32_t created)
{
    if (!s->bar) return;
    double now = mono_s();
    if (now - s->last_bar < 0.1) return;
    s->last_bar = now;
    long pct = (long)((int64_t)created * 100 / s->o->orders);
    fprintf(stderr, "\r[%-50.*s] %3ld%% orders, %zu pending  ", (int)(pct / 2),
            "##################################################", pct, s->nheap);
}

static int run(sim *s)
{
    const int64_t end = s->o->start_ms + s->o->days * DAY_MS;
    const int64_t slot = s->o->days * DAY_MS / s->o->orders;
    uint32_t next = 0;
    int snapped = 0, rc = 0;
    int64_t next_paid = paid_at(s, 0, slot > 1 ? (int64_t)below(&s->rng, (uint64_t)slot) : 0);
    while (rc == 0 && (next < (uint32_t)s->o->orders || s->nheap)) {
        int64_t t_heap = s->nheap ? s->heap[0].at : INT64_MAX;
        int64_t t_order = next < (uint32_t)s->o->orders ? next_paid : INT64_MAX;
        int64_t t = t_order <= t_heap ? t_order : t_heap;
        if (!snapped && t > end) {
            as_runtime_advance(s->rt, end);
            if ((rc = snapshot_metrics(s)) != 0) break;
            snapped = 1;
        }
        as_runtime_advance(s->rt, t);
        if (t_order <= t_heap) {
            rc = new_order(s, next++, t);
            next_paid = paid_at(s, next, slot > 1 ? (int64_t)below(&s->rng, (uint64_t)slot) : 0);
        } else {
            action a = pop(s);
            rc = run_step(s, &a);
        }
        if ((s->commands & 4095) == 0) progress(s, next);
    }
    if (rc == 0 && !snapped) {
        as_runtime_advance(s->rt, end);
        rc = snapshot_metrics(s);
    }
    if (s->bar) fputs("\r\033[K", stderr);
    return rc;
}

/* ---- The report ------------------------------------------------------------------------ */

static void count(json_t *obj, const char *key, json_int_t n)
{
    json_t *v = json_object_get(obj, key);
    if (v)
        json_integer_set(v, json_integer_value(v) + n);
    else
        json_object_set_new(obj, key, json_integer(n));
}

/* Each case's final state, and the system's actions in its history: the deadlines' auto_*
 * and the auto_decide hooks' answers at open, in all and by the pack the entry names
 * (docs/design.md#provenance: the rule that decided, or set the deadline; "host" when none). */
static int scan_cases(sim *s, json_t *states, json_t *autos, json_t *by_pack)
{
    for (uint32_t i = 0; i < (uint32_t)s->o->orders; i++) {
        if (!s->orders[i].opened) continue;
        char cid[16];
        char *text = as_case_get_json(s->rt, id_of(cid, "C", i));
        json_t *c = text ? json_loads(text, 0, NULL) : NULL;
        as_free(text);
        if (c == NULL) return AS_ENOMEM;
        count(states, json_string_value(json_object_get(c, "state")), 1);
        size_t k;
        json_t *h;
        json_array_foreach(json_object_get(c, "history"), k, h)
        {
            if (strcmp(json_string_value(json_object_get(h, "actor")), "system") != 0) continue;
            /* a system agree or reject is an auto_decide hook's answer at open, not a deadline */
            const char *a = json_string_value(json_object_get(h, "action"));
            char key[64];
            snprintf(key, sizeof key, "%s%s", strncmp(a, "auto_", 5) ? "auto_decide:" : "", a);
            count(autos, key, 1);
            const char *pack = json_string_value(json_object_get(h, "pack"));
            json_t *per = json_object_get(by_pack, pack ? pack : "host");
            if (per == NULL) json_object_set_new(by_pack, pack ? pack : "host", per = json_object());
            if (per == NULL) return AS_ENOMEM;
            count(per, key, 1);
        }
        json_decref(c);
    }
    return 0;
}

/* `fen` as yuan with two decimals, by integer arithmetic. */
static const char *yuan(int64_t fen, char *buf, size_t cap)
{
    uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(buf, cap, "%s%" PRIu64 ".%02u", fen < 0 ? "-" : "", a / 100, (unsigned)(a % 100));
    return buf;
}

/* Sums the runtime's transition counters into *transitions; *fired its deadlines. */
static int runtime_counts(sim *s, json_int_t *transitions, json_int_t *fired)
{
    as_error err;
    char *text = as_runtime_stats_json(s->rt, &err);
    json_t *st = text ? json_loads(text, 0, NULL) : NULL;
    as_free(text);
    if (st == NULL) return AS_ENOMEM;
    size_t k;
    json_t *e;
    *transitions = 0;
    json_array_foreach(json_object_get(st, "transitions"), k, e) *transitions +=
        json_integer_value(json_object_get(e, "count"));
    *fired = json_integer_value(json_object_get(st, "deadlines_fired"));
    json_decref(st);
    return 0;
}

static json_t *options_json(const sim_opts *o)
{
    json_t *cats = json_object();
    for (int c = 0; c < NCATS; c++)
        json_object_set_new(cats, cat_names[c], json_integer(o->cat_weight[c]));
    json_t *mp = json_object();
    for (int k = 0; k < o->nmerchant; k++)
        json_object_set_new(mp, o->merchant[k].shop, json_string(o->merchant[k].file));
    char start[32];
    as_instant_format(o->start_ms, start, sizeof start);
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:o}",
        "seed", (json_int_t)o->seed, "shops", (json_int_t)o->shops, "orders", (json_int_t)o->orders,
        "days", (json_int_t)o->days, "start", start, "case_rate", (json_int_t)o->case_rate,
        "categories", cats, "response_median_ms", (json_int_t)o->response_median, "response_p90_ms",
        (json_int_t)o->response_p90, "reject_rate", (json_int_t)o->reject_rate, "offer_rate",
        (json_int_t)o->offer_rate, "escalate_rate", (json_int_t)o->escalate_rate, "buyer_win_rate",
        (json_int_t)o->buyer_win_rate, "bad_shops", (json_int_t)o->bad_shops, "merchant_packs", mp);
}

static json_t *shops_json(const sim *s, json_t *flagged)
{
    json_t *arr = json_array();
    for (long k = 0; k < s->o->shops; k++) {
        const shop *sh = &s->shops[k];
        char y[32];
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:s, s:O}", "shop", sh->id, "category",
                           cat_names[sh->cat], "bad", sh->bad, "orders", (json_int_t)sh->orders,
                           "cases_opened", (json_int_t)sh->cases, "refunded_fen",
                           (json_int_t)sh->refunded_fen, "refunded_yuan",
                           yuan(sh->refunded_fen, y, sizeof y), "metrics", sh->metrics));
        if (json_is_true(json_object_get(sh->metrics, "flagged")))
            json_array_append_new(flagged, json_string(sh->id));
    }
    return arr;
}

/* The whole report as one document; the text output is printed from it. */
static json_t *report(sim *s, double elapsed)
{
    json_t *states = json_object(), *autos = json_object(), *refusals = json_object(),
           *by_pack = json_object();
    json_int_t transitions = 0, fired = 0;
    if (scan_cases(s, states, autos, by_pack) != 0 ||
        runtime_counts(s, &transitions, &fired) != 0) {
        json_decref(states), json_decref(autos), json_decref(refusals), json_decref(by_pack);
        return NULL;
    }
    for (int k = 0; k < NCODES; k++)
        if (s->refused[k]) count(refusals, as_err_name(AS__ERR_FIRST + 1 + k), s->refused[k]);
    json_t *flagged = json_array();
    json_t *shops = shops_json(s, flagged);
    char y[32], at[32];
    as_instant_format(s->o->start_ms + s->o->days * DAY_MS, at, sizeof at);
    json_t *doc = json_pack(
        "{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:s, s:o, s:o}",
        "options", options_json(s->o), "orders", (json_int_t)s->o->orders, "cases_opened",
        (json_int_t)s->cases_opened, "opens_refused", (json_int_t)s->opens_refused, "commands",
        (json_int_t)s->commands, "refunds", (json_int_t)s->refunds, "refunded_fen",
        (json_int_t)s->refunded_fen, "refunded_yuan", yuan(s->refunded_fen, y, sizeof y),
        "cases_by_state", states, "auto_decisions", autos, "auto_decisions_by_pack", by_pack,
        "refusals", refusals, "transitions",
        transitions, "deadlines_fired", fired, "metrics_at", at, "flagged", flagged, "shops",
        shops);
    if (doc && s->o->timing)
        json_object_set_new(
            doc, "timing",
            json_pack("{s:f, s:I}", "elapsed_seconds", elapsed, "transitions_per_sec",
                      (json_int_t)(elapsed > 0 ? (double)transitions / elapsed : 0)));
    return doc;
}

static void print_counts(const char *title, json_t *obj)
{
    printf("%s:\n", title);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
        printf("  %-22s %" JSON_INTEGER_FORMAT "\n", k, json_integer_value(v));
}

typedef struct ranked {
    double rate;
    size_t index;
} ranked;

static int by_rate(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->rate != y->rate) return x->rate > y->rate ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void print_shop(json_t *sh)
{
    json_t *m = json_object_get(sh, "metrics");
#define I(o, k) json_integer_value(json_object_get(o, k))
#define R(k) json_real_value(json_object_get(m, k))
    printf("  %-8s %-11s %3s %7" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT
           " %6" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT
           " %7.4f %7.4f %7.4f %7.4f %s %14s\n",
           json_string_value(json_object_get(sh, "shop")),
           json_string_value(json_object_get(sh, "category")),
           json_is_true(json_object_get(sh, "bad")) ? "bad" : "", I(m, "orders"),
           I(m, "cases_opened"), I(m, "refunds"), I(m, "dispute_refunds"), I(m, "auto_agreed"),
           R("after_sales_rate"), R("refund_rate"), R("dispute_refund_rate"),
           R("intervention_rate"), json_is_true(json_object_get(m, "flagged")) ? "F" : "-",
           json_string_value(json_object_get(sh, "refunded_yuan")));
#undef I
#undef R
}

/* The top shops by dispute refund rate, then the flagged ones below them. */
static int print_shops(json_t *shops)
{
    size_t n = json_array_size(shops), k;
    ranked *r = as_malloc((n ? n : 1) * sizeof *r); /* freed below */
    if (r == NULL) return AS_ENOMEM;
    json_t *sh;
    json_array_foreach(shops, k, sh)
    {
        json_t *m = json_object_get(sh, "metrics");
        r[k] = (ranked){json_real_value(json_object_get(m, "dispute_refund_rate")), k};
    }
    qsort(r, n, sizeof *r, by_rate);
    printf("shops (top %d by dispute refund rate, and every flagged one):\n"
           "  %-8s %-11s %3s %7s %6s %6s %6s %6s %7s %7s %7s %7s %s %14s\n",
           TOP_SHOPS, "shop", "category", "", "orders", "cases", "refnds", "disput", "autoag",
           "aftersl", "refund", "dispute", "interv", "F", "refunded yuan");
    for (k = 0; k < n; k++) {
        sh = json_array_get(shops, r[k].index);
        if (k < TOP_SHOPS ||
            json_is_true(json_object_get(json_object_get(sh, "metrics"), "flagged")))
            print_shop(sh);
    }
    as_free(r);
    return 0;
}

static int print_text(json_t *d)
{
    json_t *o = json_object_get(d, "options");
#define I(o, k) json_integer_value(json_object_get(o, k))
    printf("aftersale simulate: seed %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
           " shops, %" JSON_INTEGER_FORMAT " orders over %" JSON_INTEGER_FORMAT " days from %s\n",
           I(o, "seed"), I(o, "shops"), I(o, "orders"), I(o, "days"),
           json_string_value(json_object_get(o, "start")));
    printf("cases opened %" JSON_INTEGER_FORMAT ", opens refused %" JSON_INTEGER_FORMAT
           ", commands %" JSON_INTEGER_FORMAT "\n",
           I(d, "cases_opened"), I(d, "opens_refused"), I(d, "commands"));
    printf("refunded %s yuan (%" JSON_INTEGER_FORMAT " fen) in %" JSON_INTEGER_FORMAT " refunds\n",
           json_string_value(json_object_get(d, "refunded_yuan")), I(d, "refunded_fen"),
           I(d, "refunds"));
    print_counts("cases by final state", json_object_get(d, "cases_by_state"));
    print_counts("auto decisions (deadlines, auto_decide)", json_object_get(d, "auto_decisions"));
    const char *pack;
    json_t *per;
    json_object_foreach(json_object_get(d, "auto_decisions_by_pack"), pack, per)
    {
        char title[160];
        snprintf(title, sizeof title, "  of them under %s", pack);
        print_counts(title, per);
    }
    print_counts("refusals by code", json_object_get(d, "refusals"));
    printf("metrics at %s, over the 30 days before it\n",
           json_string_value(json_object_get(d, "metrics_at")));
    if (print_shops(json_object_get(d, "shops")) != 0) return AS_ENOMEM;
    json_t *fl = json_object_get(d, "flagged");
    printf("flagged shops: %zu", json_array_size(fl));
    size_t k;
    json_t *v;
    json_array_foreach(fl, k, v) printf("%s%s", k ? ", " : " (", json_string_value(v));
    printf("%s\n", json_array_size(fl) ? ")" : "");
    printf("transitions %" JSON_INTEGER_FORMAT ", deadlines fired %" JSON_INTEGER_FORMAT "\n",
           I(d, "transitions"), I(d, "deadlines_fired"));
    json_t *t = json_object_get(d, "timing");
    if (t)
        printf("elapsed %.3f s, %" JSON_INTEGER_FORMAT " transitions/s\n",
               json_real_value(json_object_get(t, "elapsed_seconds")), I(t, "transitions_per_sec"));
#undef I
    return 0;
}

/* ---- Set-up and tear-down -------------------------------------------------------------- */

static void sim_free(sim *s)
{
    as_runtime_free(s->rt);
    for (long k = 0; s->shops && k < s->o->shops; k++)
        json_decref(s->shops[k].metrics);
    as_free(s->shops);
    as_free(s->orders);
    as_free(s->heap);
}

static int sim_start(sim *s, const sim_opts *o)
{
    *s = (sim){.o = o,
               .rng = o->seed,
               .nbuyers = o->orders / 3 > 0 ? o->orders / 3 : 1,
               .bar = !o->json && isatty(STDERR_FILENO)};
    as_options ro = {.start_ms = o->start_ms, .auto_pay = 1, .outbox = on_outbox, .outbox_data = s};
    as_error err = {0};
    s->shops = as_calloc((size_t)o->shops, sizeof *s->shops);
    s->orders = as_calloc((size_t)o->orders, sizeof *s->orders);
    if (s->shops == NULL || s->orders == NULL) {
        fprintf(stderr, "aftersale simulate: out of memory\n");
        return 1;
    }
    if ((s->rt = as_runtime_new(&ro, &err)) == NULL ||
        as_runtime_load_packs_dir(s->rt, o->packs, &err) != 0) {
        fprintf(stderr, "aftersale simulate: cannot start a runtime: %s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < o->nmerchant; k++)
        if (as_runtime_load_merchant(s->rt, o->merchant[k].shop, o->merchant[k].file, &err)) {
            fprintf(stderr, "aftersale simulate: --merchant-pack %s=%s: %s\n", o->merchant[k].shop,
                    o->merchant[k].file, err.msg);
            return 1;
        }
    make_shops(s);
    return 0;
}

int as__cli_simulate(int argc, char **argv)
{
    sim_opts o;
    int status = parse_options(&o, argc, argv);
    if (status >= 0) return status;
    sim s;
    status = sim_start(&s, &o);
    json_t *doc = NULL;
    if (status == 0) {
        s.t0 = mono_s();
        if (run(&s) != 0 || (doc = report(&s, mono_s() - s.t0)) == NULL) {
            fprintf(stderr, "aftersale simulate: out of memory\n");
            status = 1;
        }
    }
    if (doc && o.json) {
        if (json_dumpf(doc, stdout, JSON_INDENT(1)) != 0 || putchar('\n') == EOF) status = 1;
    } else if (doc && print_text(doc) != 0) {
        status = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) status = 1;
    json_decref(doc);
    sim_free(&s);
    return status;
}
