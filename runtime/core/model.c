/* model.c -- names and properties of the vocabulary in model.h. */
#include "model.h"

#include <string.h>

#define NAME1(up, low, ...) #low,
static const char *const type_names[] = {AS_TYPE_MAP(NAME1)};
static const char *const reason_names[] = {AS_REASON_MAP(NAME1)};
static const char *const state_names[] = {AS_STATE_MAP(NAME1)};
static const char *const deadline_names[] = {AS_DEADLINE_MAP(NAME1)};
static const char *const role_names[] = {AS_ROLE_MAP(NAME1)};
static const char *const action_names[] = {AS_ACTION_MAP(NAME1)};
static const char *const remedy_names[] = {AS_REMEDY_MAP(NAME1)};
#undef NAME1

#define STATE_DL(up, low, dl, term) AS_DL_##dl,
static const unsigned char state_deadline[] = {AS_STATE_MAP(STATE_DL)};
#undef STATE_DL
#define STATE_TERM(up, low, dl, term) term,
static const unsigned char state_terminal[] = {AS_STATE_MAP(STATE_TERM)};
#undef STATE_TERM
#define DL_ACT(up, low, act, who) AS_ACT_##act,
static const unsigned char deadline_action[] = {AS_DEADLINE_MAP(DL_ACT)};
#undef DL_ACT
#define DL_WHO(up, low, act, who) AS_ROLE_##who == AS_ROLE_MERCHANT,
static const bool deadline_merchants[] = {AS_DEADLINE_MAP(DL_WHO)};
#undef DL_WHO
#define ACT_ROLE(up, low, role) AS_ROLE_##role,
static const unsigned char action_role[] = {AS_ACTION_MAP(ACT_ROLE)};
#undef ACT_ROLE

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : "unknown";
}

static int index_of(const char *const *names, int n, const char *s)
{
    if (s == NULL) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

#define NAMED(noun, table)                                                                 \
    const char *as__##noun##_name(int i) { return name_of(table, COUNT(table), i); }       \
    int as__##noun##_from(const char *s) { return index_of(table, COUNT(table), s); }
NAMED(type, type_names)
NAMED(reason, reason_names)
NAMED(state, state_names)
NAMED(deadline, deadline_names)
NAMED(role, role_names)
NAMED(action, action_names)
NAMED(remedy, remedy_names)
#undef NAMED

bool as__state_terminal(int s)
{
    return s >= 0 && s < AS_STATE_COUNT && state_terminal[s];
}

as_deadline_kind as__state_deadline(int s)
{
    return s >= 0 && s < AS_STATE_COUNT ? (as_deadline_kind)state_deadline[s] : AS_DL_NONE;
}

as_action as__deadline_action(as_deadline_kind k)
{
    return (as_action)deadline_action[k];
}

bool as__deadline_is_merchants(as_deadline_kind k)
{
    return deadline_merchants[k];
}

as_role as__action_role(as_action a)
{
    return (as_role)action_role[a];
}

as_remedy as__type_remedy(as_type t)
{
    switch (t) {
    case AS_TYPE_RETURN_REFUND: return AS_REMEDY_REFUND;
    case AS_TYPE_EXCHANGE: return AS_REMEDY_EXCHANGE;
    case AS_TYPE_REPAIR: return AS_REMEDY_REPAIR;
    default: return AS_REMEDY_NONE;
    }
}
