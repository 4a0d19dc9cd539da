/* timefmt.c -- see timefmt.h. */
#include "timefmt.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int as__duration_parse(const char *s, int64_t *ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'d', AS_DAY}, {'h', AS_HOUR}, {'m', AS_MINUTE}, {'s', AS_SECOND}};
    int next = 0, parts = 0;
    int64_t total = 0;
    if (s == NULL || *s == '\0') return -1;
    while (*s) {
        if (!isdigit((unsigned char)*s)) return -1;
        int64_t n = 0;
        while (isdigit((unsigned char)*s)) {
            if (n > (int64_t)1e12) return -1;
            n = n * 10 + (*s++ - '0');
        }
        int u = next;
        while (u < 4 && units[u].unit != *s) u++;
        if (u == 4) return -1;
        int64_t part;
        if (__builtin_mul_overflow(n, units[u].ms, &part) ||
            __builtin_add_overflow(total, part, &total))
            return -1;
        next = u + 1;
        parts++;
        s++;
    }
    *ms = total;
    return parts > 0 ? 0 : -1;
}

int as__instant_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    static const char shape[] = "dddd-dd-ddTdd:dd:dd"; /* digits only: no signs, no spaces */
    if (s == NULL || strlen(s) < sizeof shape - 1) return -1;
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return -1;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
    const char *p = s + n;
    int frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3) frac = frac * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 3; digits++) frac *= 10;
    }
    if (strcmp(p, "Z") != 0) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 0;
}

void as__instant_format(int64_t ms, char *buf, int len)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)t * 1000));
}

int64_t as__local_day(int64_t t_ms)
{
    int64_t x = t_ms + AS_TZ_OFFSET;
    return x >= 0 ? x / AS_DAY : -((-x + AS_DAY - 1) / AS_DAY);
}
