/* fuzz_request.c -- libFuzzer target: arbitrary bytes as a runtime request (docs/pipe.md, the
 * shape every HTTP write becomes) against a runtime holding orders and open cases. Whatever
 * the input, the runtime must answer with a documented code and stay consistent: every case
 * still renders, and its version equals its history length (one entry per applied command).
 *
 * clang -fsanitize=fuzzer,address: scripts/fuzz. Built without libFuzzer it is driven by
 * replay.c over the corpus, so the seeds run in every test build. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "core/runtime.h"

static as_runtime *rt;

static void setup(void)
{
    as_options o = {.start_ms = 1772323200000LL, .auto_pay = 1};
    as_error err = {0};
    rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, AS_SOURCE_ROOT "/plugins", &err) != 0) {
        fprintf(stderr, "fuzz: %s\n", err.msg);
        abort();
    }
    static const char *const orders[] = {
        "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\",\"category\":"
        "\"apparel\",\"qty\":2,\"price\":19900}],\"shipping_fee\":500,\"buyer_credit\":800}",
        "{\"id\":\"O2\",\"shop\":\"S2\",\"buyer\":\"B2\",\"items\":[{\"sku\":\"P1\",\"category\":"
        "\"electronics\",\"qty\":1,\"price\":359900,\"serial\":\"490154203237518\"}]}",
        "{\"id\":\"O3\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"F1\",\"category\":"
        "\"fresh_food\",\"qty\":1,\"price\":16000,\"live\":true}]}",
    };
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) as_order_create_json(rt, orders[i], &err);
    as_order_event(rt, "O1", "deliver", &err);
    as_order_event(rt, "O2", "deliver", &err);
    as_order_event(rt, "O3", "ship", &err);
    as_case_open_json(rt, "buyer:B1",
                      "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":"
                      "\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                      &err);
}

static void check(void)
{
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        if (c->v.version > c->nhist) abort(); /* an applied command without its history entry */
        char *j = as_case_get_json(rt, c->id);
        if (j == NULL) abort();
        as_free(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rt == NULL) setup();
    char *text = malloc(size + 1);
    if (text == NULL) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = as_runtime_submit(rt, text, NULL, NULL);
    if (rc != 0 && strcmp(as_err_name(rc), "unknown") == 0) abort(); /* not a documented code */
    free(text);
    check();
    return 0;
}
