/* unit_common.h -- what every suite of tests/unit/ would otherwise write again: the runner's
 * main, a runtime with the bundled packs, a collector for the library's callbacks, the wall
 * clock. Header-only: each suite is its own executable. */
#ifndef AS_UNIT_COMMON_H
#define AS_UNIT_COMMON_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aftersale/aftersale.h"

/* Runs the suite and gives main's exit status. `fork` 1 runs each test in a child of its own
 * whatever CK_FORK says; 0 leaves it to CK_FORK (Check's default: forked). */
static inline int unit_run(Suite *s, int fork)
{
    SRunner *sr = srunner_create(s);
    if (fork) srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* A runtime made with `o` (NULL: the defaults) and the bundled packs of plugins/ loaded,
 * asserting both; `err` (may be NULL) is what they said. */
static inline as_runtime *unit_runtime(const as_options *o, as_error *err)
{
    as_error scratch;
    if (err == NULL) err = &scratch;
    *err = (as_error){0};
    as_runtime *rt = as_runtime_new(o, err);
    ck_assert_msg(rt != NULL, "as_runtime_new: %s", err->msg);
    int rc = as_runtime_load_packs_dir(rt, AS_SOURCE_ROOT "/plugins", err);
    ck_assert_msg(rc == 0, "packs: %s", err->msg);
    return rt;
}

/* What one of the library's callbacks said: as_done_cb and as_read_cb have the same shape
 * (ud, code, text), so one collector serves commands, pipe lines and reads. `calls` counts the
 * calls (each answer must come exactly once); `text` is a copy of the last message or JSON
 * (owned, "" for NULL), freed by unit_reply_clear. */
typedef struct unit_reply {
    int calls;
    int code;
    char *text;
} unit_reply;

static inline void unit_reply_cb(void *ud, int code, const char *text)
{
    unit_reply *r = ud;
    r->calls++;
    r->code = code;
    free(r->text);
    r->text = strdup(text ? text : "");
    ck_assert_ptr_nonnull(r->text);
}

static inline void unit_reply_clear(unit_reply *r)
{
    free(r->text);
    *r = (unit_reply){0};
}

static inline int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
