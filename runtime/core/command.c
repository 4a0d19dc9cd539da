/* command.c -- see command.h. */
#include "command.h"

#include <stddef.h>
#include <string.h>

void as__cmd_init(as_cmd *cmd, as_principal who, int action)
{
    memset(cmd, 0, offsetof(as_cmd, evidence));
    cmd->who = who;
    cmd->action = action;
    cmd->version = -1;
    cmd->reason = -1;
    cmd->result = -1;
    cmd->type = -1;
    cmd->bad_permille = -1;
    cmd->requested_amount = -1;
    cmd->by_hook = cmd->by_layer = cmd->by_deadline = AS_NONE_U8;
}

int as__principal_parse(const char *s, as_principal *p)
{
    static const struct {
        const char *prefix;
        as_role role;
        int has_id;
    } forms[] = {{"buyer:", AS_ROLE_BUYER, 1}, {"merchant:", AS_ROLE_MERCHANT, 1},
                 {"platform", AS_ROLE_PLATFORM, 0}, {"logistics", AS_ROLE_LOGISTICS, 0}};
    if (s == NULL) return -1;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t n = strlen(forms[i].prefix);
        if (forms[i].has_id ? strncmp(s, forms[i].prefix, n) == 0 &&
                                  as__limit_id(s + n, strlen(s + n)) == 0
                            : strcmp(s, forms[i].prefix) == 0) {
            p->role = forms[i].role;
            p->id = forms[i].has_id ? s + n : NULL;
            return 0;
        }
    }
    return -1;
}
