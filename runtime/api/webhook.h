/* webhook.h -- delivering the outbox over HTTP (the hosted issue's webhooks). */
#ifndef AS_WEBHOOK_H
#define AS_WEBHOOK_H

#include <stdint.h>
#include <uv.h>

#include "aftersale/aftersale.h"

#define AS_WEBHOOK_MAX 8

typedef struct as_webhooks as_webhooks;

typedef struct as_webhook_stats {
    uint64_t delivered; /* 2xx answers */
    uint64_t failed;    /* attempts that failed (connect, write, non-2xx) */
    int64_t backlog;    /* deliveries in flight or waiting to retry */
} as_webhook_stats;

/* `urls` are http://HOST[:PORT]/PATH (IPv4 hosts). */
int as__webhooks_new(uv_loop_t *loop, as_runtime *rt, const char *const *urls, int n,
                     as_webhooks **out, as_error *err);
/* An as_outbox_cb: POSTs the entry to every URL, retrying with backoff until a 2xx, then
 * acknowledges it to the runtime. */
void as__webhooks_deliver(as_webhooks *w, const char *kind, const char *case_id,
                          int64_t amount, const char *key);
const as_webhook_stats *as__webhooks_stats(const as_webhooks *w);
/* Stops retrying and closes what is in flight; run the loop afterwards, then free. */
void as__webhooks_stop(as_webhooks *w);
void as__webhooks_free(as_webhooks *w);

#endif
