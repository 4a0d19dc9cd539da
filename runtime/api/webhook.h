/* webhook.h -- delivering the outbox over HTTP(S), signed (docs/api.md, Webhooks). */
#ifndef AS_WEBHOOK_H
#define AS_WEBHOOK_H

#include <stdint.h>
#include <uv.h>

#include "aftersale/aftersale.h"

#define AS_WEBHOOK_MAX 8
#define AS_WEBHOOK_SECRET_MIN 16   /* bytes */
#define AS_WEBHOOK_SECRET_MAX 4096 /* bytes */

typedef struct as_webhooks as_webhooks;

typedef struct as_webhook_stats {
    uint64_t delivered; /* 2xx answers */
    uint64_t failed;    /* attempts that failed (connect, timeout, TLS, non-2xx) */
    int64_t backlog;    /* deliveries (entry, URL) not yet answered 2xx: in flight, queued
                         * or waiting to retry */
} as_webhook_stats;

typedef struct as_webhook_target {
    const char *url;         /* http://HOST[:PORT]/PATH or https://...; HOST any name */
    const char *secret_file; /* the signing secret: the file's bytes, a trailing newline
                              * dropped, AS_WEBHOOK_SECRET_MIN..MAX of them */
} as_webhook_target;

typedef struct as_webhook_options {
    const as_webhook_target *targets; /* borrowed during as__webhooks_new only */
    int ntargets;                     /* 1..AS_WEBHOOK_MAX */
    unsigned connect_ms;              /* 0: 5000 */
    unsigned timeout_ms;              /* the whole exchange, connect included; 0: 10000 */
    unsigned max_inflight;            /* transfers at once; 0: 16 */
    const char *ca_file;              /* CAs to trust for https; NULL: the system's */
} as_webhook_options;

/* Checks every URL and reads every secret; refuses a bad one with AS_EBAD_REQUEST and a
 * sentence naming it. Free with as__webhooks_stop, a run of the loop, as__webhooks_free. */
int as__webhooks_new(uv_loop_t *loop, as_runtime *rt, const as_webhook_options *o,
                     as_webhooks **out, as_error *err);
/* An as_outbox_cb: POSTs the entry to every URL that has not acknowledged it (see
 * as__outbox_acked), retrying with backoff until a 2xx, and acknowledges it to the runtime
 * per URL, then for every URL once the last one answered. */
void as__webhooks_deliver(as_webhooks *w, const char *kind, const char *case_id, int64_t amount,
                          const char *key);
/* The JSON body of an entry, `{"key", "kind", "case", "amount"}` (malloc'd, the caller
 * frees it); NULL on OOM or a string that is not UTF-8. */
char *as__webhooks_body(const char *kind, const char *case_id, int64_t amount, const char *key);
/* Valid until as__webhooks_free. */
const as_webhook_stats *as__webhooks_stats(const as_webhooks *w);
/* Aborts what is in flight and stops retrying (what is not acknowledged is delivered again
 * after the next start) and closes the handles; run the loop afterwards, then free. */
void as__webhooks_stop(as_webhooks *w);
/* NULL is a no-op. */
void as__webhooks_free(as_webhooks *w);

#endif
