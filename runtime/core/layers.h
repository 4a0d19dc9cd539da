/* layers.h -- asking the rule layers (platform -> category -> merchant) and combining their
 * answers (docs/design.md#hooks-and-layers): the last non-nil answer stands, the merchant's only
 * within the bounds of docs/rulebook.md#merchant-bounds. A failing platform or category hook fails
 * the command with rule_error, except while a deadline fires (`lenient`): then, like every failing
 * or out-of-bounds merchant answer, it is dropped and written down as a note for the history. */
#ifndef AS_LAYERS_H
#define AS_LAYERS_H

#include <stddef.h>

#include "pack.h"
#include "timefmt.h"

#define AS_MAX_NOTES 8
#define AS_PRIORITY_MAX 100
#define AS_DURATION_MAX (365 * AS_DAY) /* the longest deadline a rule may give */

/* docs/design.md#limits text: 1-256 bytes of UTF-8 with no control characters. Both engines check a
 * text answer with it before copying it whole. */
int as__answer_text_ok(const char *s, size_t len);
/* A code a refusal may carry: one of docs/design.md#states-and-actions's, not unauthorized, nomem
 * or io. */
int as__refusal_code_ok(int code);

/* A dropped answer or a failed hook, for the history. */
typedef struct as_note {
    char *text;  /* owned until taken by the history */
    char *where; /* owned until taken: a failed hook's file:line, or NULL */
    uint8_t layer, hook, failed;
} as_note;

typedef struct as_layers {
    as_pack *const *packs; /* [AS_LAYER_COUNT], entries may be NULL */
    as_hook_args args;
    int lenient;
    int nnotes;
    as_note notes[AS_MAX_NOTES];
    /* provenance (docs/design.md#provenance): per hook, the layer whose answer stood in the
     * last call (AS_NONE_U8: none did) */
    uint8_t stood[AS_HOOK_COUNT];
    uint64_t calls;            /* hook calls made, for the stats */
    uint64_t failures[AS_LAYER_COUNT];
    uint64_t dropped;          /* merchant answers dropped */
    /* the words the auto_decide answer that stood gave: last, and set only with
     * stood[AS_HOOK_AUTO_DECIDE], so that as__layers_init need not clear it */
    char why[AS_ANSWER_TEXT_MAX + 1];
} as_layers;

void as__layers_init(as_layers *L, as_pack *const *packs, const as_order *o, const as_case *c,
                     const as_case_vals *v, int64_t now_ms);
void as__layers_clear_notes(as_layers *L);

/* Stage 2 eligibility: 0 allowed, a refusal code with the sentence in err, or
 * AS_ERULE_ERROR. */
int as__layers_eligibility(as_layers *L, as_error *err);
/* order_check of one pack: 0, a refusal, or AS_ERULE_ERROR. */
int as__layers_order_check(as_pack *p, const as_hook_args *a, as_error *err);
/* refund_amount: *amount holds the C default on entry and the combined answer on return;
 * stood[REFUND_AMOUNT] names the last layer whose answer changed it;
 * answers above `cap_fen` are out of bounds. */
int as__layers_refund_amount(as_layers *L, int64_t cap_fen, int64_t *amount, as_error *err);
int as__layers_priority(as_layers *L, int *priority, as_error *err);
/* The duration of deadline `kind` (the current state's); *given = 0 when no layer set one. */
int as__layers_deadline(as_layers *L, as_deadline_kind kind, int64_t *ms, int *given,
                        as_error *err);
/* auto_decide: *decision = 0 none, 1 agree, 2 reject (reason copied into `reason`). */
int as__layers_decide(as_layers *L, int *decision, char *reason, size_t len, as_error *err);
/* inspection / instant_refund: *yes = 1 when the combined answer is true. */
int as__layers_flag(as_layers *L, as_hook h, int *yes, as_error *err);
/* on_inspection: *remedy holds the default on entry. */
int as__layers_remedy(as_layers *L, int fault, int *remedy, as_error *err);

#endif
