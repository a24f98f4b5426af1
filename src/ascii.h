/* ascii.h - letter case the way HTTP and JSON mean it: ASCII only, never
 * the locale's (a preloaded library runs under whatever locale the
 * program set). */
#ifndef RETRYSAFE_ASCII_H
#define RETRYSAFE_ASCII_H

#include <stddef.h>

static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether s[0..n) equals the lower-case literal lit, ignoring case. */
static inline int ascii_ieq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n && lit[i]; i++)
        if (ascii_lower(s[i]) != lit[i])
            return 0;
    return i == n && lit[i] == '\0';
}

#endif
