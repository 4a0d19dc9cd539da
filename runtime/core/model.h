/* model.h -- the vocabulary of docs/design.md#limits: case types, reasons, states, actions, actors,
 * deadline kinds and remedies, each an X-macro list so that enum and name stay one table. */
#ifndef AS_MODEL_H
#define AS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AS_TYPE_MAP(XX)                                                                    \
    XX(REFUND_ONLY, refund_only)                                                           \
    XX(RETURN_REFUND, return_refund)                                                       \
    XX(EXCHANGE, exchange)                                                                 \
    XX(REPAIR, repair)                                                                     \
    XX(PARTIAL_REFUND, partial_refund)                                                     \
    XX(RESHIP, reship)

#define AS_REASON_MAP(XX)                                                                  \
    XX(NO_REASON, no_reason)                                                               \
    XX(QUALITY, quality)                                                                   \
    XX(NOT_AS_DESCRIBED, not_as_described)                                                 \
    XX(WRONG_ITEM, wrong_item)                                                             \
    XX(MISSING_ITEM, missing_item)                                                         \
    XX(DAMAGED_IN_TRANSIT, damaged_in_transit)                                             \
    XX(NOT_RECEIVED, not_received)                                                         \
    XX(LATE_DELIVERY, late_delivery)                                                       \
    XX(SIZE_FIT, size_fit)                                                                 \
    XX(SPOILED, spoiled)

/* state, its deadline kind (NONE when the state has none), terminal flag */
#define AS_STATE_MAP(XX)                                                                   \
    XX(REQUESTED, requested, MERCHANT_RESPONSE, 0)                                         \
    XX(NEGOTIATING, negotiating, BUYER_RESPONSE, 0)                                        \
    XX(REJECTED, rejected, ESCALATION_WINDOW, 0)                                           \
    XX(PLATFORM_REVIEW, platform_review, NONE, 0)                                          \
    XX(AWAITING_RETURN, awaiting_return, BUYER_SHIP, 0)                                    \
    XX(RETURNING, returning, MERCHANT_RECEIVE, 0)                                          \
    XX(INSPECTING, inspecting, INSPECTION, 0)                                              \
    XX(REPAIRING, repairing, REPAIR, 0)                                                    \
    XX(RESHIPPING, reshipping, MERCHANT_SHIP, 0)                                           \
    XX(DELIVERING, delivering, BUYER_CONFIRM, 0)                                           \
    XX(REFUNDING, refunding, NONE, 0)                                                      \
    XX(REFUNDED, refunded, NONE, 1)                                                        \
    XX(COMPLETED, completed, NONE, 1)                                                      \
    XX(CLOSED, closed, NONE, 1)

/* deadline kind, the system action it fires, whose window it is (docs/rulebook.md#merchant-bounds)
 */
#define AS_DEADLINE_MAP(XX)                                                                \
    XX(MERCHANT_RESPONSE, merchant_response, AUTO_AGREE, MERCHANT)                         \
    XX(BUYER_RESPONSE, buyer_response, AUTO_DECLINE, BUYER)                                \
    XX(ESCALATION_WINDOW, escalation_window, AUTO_CLOSE, BUYER)                            \
    XX(BUYER_SHIP, buyer_ship, AUTO_CLOSE, BUYER)                                          \
    XX(MERCHANT_RECEIVE, merchant_receive, AUTO_CONFIRM_RETURN, MERCHANT)                  \
    XX(INSPECTION, inspection, AUTO_INSPECT, MERCHANT)                                     \
    XX(MERCHANT_SHIP, merchant_ship, AUTO_REFUND, MERCHANT)                                \
    XX(REPAIR, repair, AUTO_REFUND, MERCHANT)                                              \
    XX(BUYER_CONFIRM, buyer_confirm, AUTO_COMPLETE, BUYER)

#define AS_ROLE_MAP(XX)                                                                    \
    XX(BUYER, buyer)                                                                       \
    XX(MERCHANT, merchant)                                                                 \
    XX(PLATFORM, platform)                                                                 \
    XX(LOGISTICS, logistics)                                                               \
    XX(SYSTEM, system)

/* action, the role that takes it */
#define AS_ACTION_MAP(XX)                                                                  \
    XX(OPEN, open, BUYER)                                                                  \
    XX(REVISE, revise, BUYER)                                                              \
    XX(WITHDRAW, withdraw, BUYER)                                                          \
    XX(ESCALATE, escalate, BUYER)                                                          \
    XX(ACCEPT_OFFER, accept_offer, BUYER)                                                  \
    XX(DECLINE_OFFER, decline_offer, BUYER)                                                \
    XX(CONFIRM_RECEIPT, confirm_receipt, BUYER)                                            \
    XX(SHIP_RETURN, ship_return, BUYER)                                                    \
    XX(AGREE, agree, MERCHANT)                                                             \
    XX(FINISH_REPAIR, finish_repair, MERCHANT)                                             \
    XX(REFUND_INSTEAD, refund_instead, MERCHANT)                                           \
    XX(REJECT, reject, MERCHANT)                                                           \
    XX(OFFER, offer, MERCHANT)                                                             \
    XX(CONFIRM_RETURN, confirm_return, MERCHANT)                                           \
    XX(REJECT_RETURN, reject_return, MERCHANT)                                             \
    XX(INSPECT, inspect, MERCHANT)                                                         \
    XX(SHIP_REPLACEMENT, ship_replacement, MERCHANT)                                       \
    XX(RULE_FOR_BUYER, rule_for_buyer, PLATFORM)                                           \
    XX(RULE_FOR_MERCHANT, rule_for_merchant, PLATFORM)                                     \
    XX(REFUND_SUCCEEDED, refund_succeeded, PLATFORM)                                       \
    XX(REFUND_FAILED, refund_failed, PLATFORM)                                             \
    XX(RETURN_DELIVERED, return_delivered, LOGISTICS)                                      \
    XX(DELIVERED, delivered, LOGISTICS)                                                    \
    XX(AUTO_AGREE, auto_agree, SYSTEM)                                                     \
    XX(AUTO_DECLINE, auto_decline, SYSTEM)                                                 \
    XX(AUTO_CLOSE, auto_close, SYSTEM)                                                     \
    XX(AUTO_CONFIRM_RETURN, auto_confirm_return, SYSTEM)                                   \
    XX(AUTO_INSPECT, auto_inspect, SYSTEM)                                                 \
    XX(AUTO_REFUND, auto_refund, SYSTEM)                                                   \
    XX(AUTO_COMPLETE, auto_complete, SYSTEM)

#define AS_REMEDY_MAP(XX)                                                                  \
    XX(REFUND, refund)                                                                     \
    XX(EXCHANGE, exchange)                                                                 \
    XX(REPAIR, repair)                                                                     \
    XX(REJECT, reject)

/* A one-byte id (a layer, hook or deadline kind) that names none. */
#define AS_NONE_U8 0xFF

#define AS__ENUM1(up, ...) AS_TYPE_##up,
typedef enum { AS_TYPE_MAP(AS__ENUM1) AS_TYPE_COUNT } as_type;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_REASON_##up,
typedef enum { AS_REASON_MAP(AS__ENUM1) AS_REASON_COUNT } as_reason;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_STATE_##up,
typedef enum { AS_STATE_MAP(AS__ENUM1) AS_STATE_COUNT } as_state;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_DL_##up,
typedef enum { AS_DEADLINE_MAP(AS__ENUM1) AS_DL_COUNT, AS_DL_NONE = AS_DL_COUNT } as_deadline_kind;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_ROLE_##up,
typedef enum { AS_ROLE_MAP(AS__ENUM1) AS_ROLE_COUNT } as_role;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_ACT_##up,
typedef enum { AS_ACTION_MAP(AS__ENUM1) AS_ACT_COUNT } as_action;
#undef AS__ENUM1
#define AS__ENUM1(up, ...) AS_REMEDY_##up,
typedef enum { AS_REMEDY_NONE = -1, AS_REMEDY_MAP(AS__ENUM1) AS_REMEDY_COUNT } as_remedy;
#undef AS__ENUM1

/* Names are the contract's spelling; lookups return -1 for an unknown name. */
const char *as__type_name(int t);
const char *as__reason_name(int r);
const char *as__state_name(int s);
const char *as__deadline_name(int k);
const char *as__role_name(int r);
const char *as__action_name(int a);
const char *as__remedy_name(int r);
int as__type_from(const char *s);
int as__reason_from(const char *s);
int as__state_from(const char *s);
int as__deadline_from(const char *s);
int as__role_from(const char *s);
int as__action_from(const char *s);
int as__remedy_from(const char *s);

bool as__state_terminal(int s);
/* The deadline kind a state waits on, AS_DL_NONE when it has none (docs/rulebook.md#deadlines). */
as_deadline_kind as__state_deadline(int s);
/* The system action a deadline kind fires. */
as_action as__deadline_action(as_deadline_kind k);
/* True when the deadline is the merchant's own window: a merchant may shorten it
 * (docs/rulebook.md#merchant-bounds). */
bool as__deadline_is_merchants(as_deadline_kind k);
as_role as__action_role(as_action a);

/* The remedy a case type asks for once its goods are back, AS_REMEDY_NONE when none. */
as_remedy as__type_remedy(as_type t);

#endif
