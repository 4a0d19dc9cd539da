/* worklist.h -- each shop's index of its cases in worklist order: priority (1 first, none as
 * 100), then the pending deadline (none last), then id (docs/api.md "Worklist").
 *
 * A shop keeps two lists: its open cases and its ended ones. A command that changes a case
 * marks its shop's open list unsorted; a read sorts that one shop's list (and only when it
 * changed since the last read), so a worklist read never sorts another shop's cases, nor
 * every case of the runtime. Room in both lists is reserved when a case is added, so the
 * moves a commit makes cannot fail. */
#ifndef AS_WORKLIST_H
#define AS_WORKLIST_H

#include <stdint.h>

#include "domain.h"

typedef struct as_worklist {
    as_case **v; /* owned array; the cases are the runtime's */
    uint32_t len, cap;
    int sorted;
} as_worklist;

typedef struct as_shop_cases {
    as_worklist open, closed;
} as_shop_cases;

/* Room for one more case in `w` (open and, for when it ends, closed): 0 or AS_ENOMEM. */
int as__worklist_reserve(as_shop_cases *w);
/* Adds `c` (its room reserved) to the list its state belongs to. */
void as__worklist_add(as_shop_cases *w, as_case *c);
/* After a command changed `c`, which was open: its order may have changed, and if it has
 * ended it moves to the closed list. */
void as__worklist_changed(as_shop_cases *w, as_case *c);
/* Calls fn for each case of `w`'s open (closed = 0) or ended list in worklist order, until
 * fn returns non-zero; fn NULL only sorts the list. */
void as__worklist_walk(as_shop_cases *w, int closed, int (*fn)(void *ud, const as_case *c),
                       void *ud);
/* The next case in worklist order between two sorted lists' heads (merging shops). */
int as__worklist_cmp(const as_case *x, const as_case *y);
void as__worklist_free(as_shop_cases *w);

#endif
