/* engine.h -- what the engine's files share; internal to core.
 *
 * The engine is split along its seams: facts.c (what a case and its order say about money and
 * units), orders.c (orders and their logistics events), txn.c (one command's transaction and
 * its commit), claims.c (what open and revise share), cases.c (open and act), deadlines.c
 * (firing them) and registry.c (the maps, the packs in force, the lifecycle). Their public
 * entry points are in runtime.h; this header holds what passes between them. */
#ifndef AS_ENGINE_H
#define AS_ENGINE_H

#include "layers.h"
#include "runtime.h"
#include "workflow.h"

/* One command's working set: the staged values, the layers, lazily asked conditions. Lives on
 * the stack of the command that runs it. */
typedef struct as_txn {
    as_runtime *rt;
    as_case *c;
    as_cmd *cmd; /* NULL for a system action without a payload */
    as_case_vals nv;
    as_error *err;
    int64_t now;
    int inspect_asked, inspect_yes;
    int remedy;          /* from on_inspection, -1 until asked */
    char **new_evidence; /* owned until commit */
    int64_t deadline_ms; /* -1: no deadline in the new state */
    int decision;        /* auto_decide on open and revise: 0 none, 1 agree, 2 reject */
    /* staged with nv (docs/design.md#provenance): the layer that set the new deadline's
     * duration, and where the refund amount came from */
    uint8_t deadline_layer, refund_source, refund_layer;
    /* the large members last: as__txn_init clears what comes before L, and L and the
     * reason are set up apart (a command's every transaction pays for what it clears) */
    as_layers L;
    char decide_reason[AS_ANSWER_TEXT_MAX + 1];
} as_txn;

/* facts.c */
int as__item_line(const as_order *o, const char *sku); /* -1: not on the order */
int as__case_covers(const as_case *c, int line);       /* units of `line` in the case */
/* Units of `line` settled by cases other than `self` (docs/rulebook.md#eligibility #4). */
int64_t as__settled_units(const as_order *o, int line, const as_case *self);
/* The most a refund may be: paid, return shipping once known, the fee where it goes back. */
int64_t as__refund_cap(const as_case *c, const as_case_vals *v);
int as__fault_evidence_reason(int reason);
/* Records a metrics event in the room the command reserved (as__txn_room). */
void as__event(as_runtime *rt, const as_order *o, as_event_kind k, int64_t val);
/* The most events one transition records: response, auto_agree or escalate, refund,
 * resolved; plus one per layer note. */
#define AS_TRANSITION_EVENTS 4

/* txn.c */
void as__txn_init(as_txn *t, as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient);
/* Drops what a refused command staged: its evidence copy and the layers' notes. */
void as__txn_abort(as_txn *t);
/* The workflow's condition callback (workflow.h), `ctx` an as_txn. */
int as__txn_cond(void *ctx, as_wf_cond cond);
/* After a refund_amount round: when a layer's answer stood, the amount is that rule's. */
void as__txn_refund_by_rule(as_txn *t);
/* Asks the layers for the deadline of the staged state into t->deadline_ms. */
int as__txn_deadline(as_txn *t);
/* Reserves everything a change of t->c needs before it is made: 0 or AS_ENOMEM in t->err. */
int as__txn_room(as_txn *t, uint32_t entries, size_t note_bytes);
/* 1 when t's command is journaled as a COMMAND record: a party's own command (not a system
 * action, nor the auto-pay inside another command) on a durable runtime. */
int as__txn_logged(const as_txn *t);
/* Writes t's command record, naming the history entry about to be appended, in the room
 * as__txn_room reserved: cannot fail. A no-op unless as__txn_logged. */
void as__txn_command(const as_txn *t);
/* Commits the staged transition to state `to`; `note` (may be NULL) is taken over either way.
 * 0, or AS_ENOMEM with nothing changed. */
int as__txn_commit(as_txn *t, const as_principal *who, int action, int to, char *note);
/* Appends a history entry in the room as__txn_room made, with t's provenance
 * (docs/design.md#provenance): its rule, its deadline, and the refund where the command set,
 * moved or instructs it. `note` and `why` are taken over. */
void as__hist_append(const as_txn *t, const as_principal *who, int action, int from, int to,
                     char *note, char *why);
/* Moves the layers' notes into the history as dropped-answer entries. */
void as__txn_notes(as_txn *t, const as_principal *who, int action);
void as__account_layers(as_runtime *rt, const as_layers *L);
/* 1 for logistics news: recorded in any state, starts nothing, keeps the version. */
int as__is_news(int action);

/* claims.c */
int as__claim(as_txn *t);
void as__count_attempt(as_runtime *rt, as_case *c);
/* Applies the auto_decide answer of t (committed) as the system's action, if it gave one. */
void as__decide(as_runtime *rt, as_case *c, const as_txn *t);

/* cases.c */
/* Checks 5-8 and the commit for a case a caller vetted (checks 1-4); `lenient` while a
 * deadline fires. */
int as__case_apply(as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient);
void as__case_free(as_case *c);

/* deadlines.c */
int as__schedule(as_runtime *rt, as_case *c, int64_t due);

#endif
