/* ascii.h - letter case and hex digits the way HTTP and JSON mean them:
 * ASCII only, never
 * the locale's (a preloaded library runs under whatever locale the
 * program set). */
#ifndef RETRYSAFE_ASCII_H
#define RETRYSAFE_ASCII_H

#include <stddef.h>

static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The value of a hex digit, either case; -1 for anything else. */
static inline int ascii_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
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
