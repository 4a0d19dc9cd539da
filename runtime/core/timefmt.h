/* timefmt.h -- time as integer ms UTC: scenario durations, ISO 8601 instants, local days. */
#ifndef AS_TIMEFMT_H
#define AS_TIMEFMT_H

#include <stdint.h>

#define AS_SECOND 1000ll
#define AS_MINUTE (60 * AS_SECOND)
#define AS_HOUR (60 * AS_MINUTE)
#define AS_DAY (24 * AS_HOUR)
/* The platform's time zone (docs/rulebook.md conventions): UTC+8, no DST. */
#define AS_TZ_OFFSET (8 * AS_HOUR)

/* Parses a docs/design.md#scenario-files duration: whole numbers with units d, h, m, s, each at
 * most once and in that order ("90s", "7d12h", "0s"). Returns 0 and sets *ms, or -1 when malformed.
 */
int as__duration_parse(const char *s, int64_t *ms);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC). Returns 0 and sets *ms, or -1. */
int as__instant_parse(const char *s, int64_t *ms);
/* Writes "YYYY-MM-DDTHH:MM:SS.fffZ" into buf (at least 25 bytes). */
void as__instant_format(int64_t ms, char *buf, int len);
/* floor((t + 8h) / 24h): the platform-local calendar day of t. */
int64_t as__local_day(int64_t t_ms);

#endif
