/* codec.h -- the request layer's JSON: parsing input (every parse of the library goes through
 * as__json_parse) into typed commands (core/command.h), and the JSON views of cases, orders
 * and metrics. Core never sees JSON text; this layer turns it into as_cmd and back. */
#ifndef AS_CODEC_H
#define AS_CODEC_H

#include <jansson.h>

#include "../core/runtime.h"

/* Parses `len` bytes of `text` (rejecting duplicate keys) into *out (the caller's
 * reference): 0, AS_EBAD_REQUEST "malformed JSON: <why>" (with the line when `with_line`), or
 * AS_ENOMEM when one of jansson's allocations failed on the way -- the text may be fine. Every
 * parse of the library goes through here: jansson is safe under a failed allocation only so
 * (alloc.h as__json_parse_begin). */
int as__json_parse(const char *text, size_t len, int with_line, json_t **out, as_error *err);
int as__cmd_parse_open(as_cmd *cmd, json_t *obj);
int as__cmd_parse_act(as_cmd *cmd, const char *action, json_t *payload);
json_t *as__case_json(const as_case *c);
/* An order as the keys of POST /v1/orders (instants left out until they happen, buyer_credit
 * when known), each line with its `attempts` too (opens and revisions on it). NULL on OOM. */
json_t *as__order_json(const as_order *o);
json_t *as__metrics_json(const as_metrics *m);

#endif
