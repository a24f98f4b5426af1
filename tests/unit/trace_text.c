/* trace_text.c - cheap checks and growable text for the parser suites. */
#include "trace_text.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void expect(int ok, const char *what)
{
    if (!ok)
        ck_abort_msg("%s", what);
}

void expect_eq(size_t got, size_t want, const char *what)
{
    if (got != want)
        ck_abort_msg("%s: %zu, not %zu", what, got, want);
}

void text_add(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->s = realloc(t->s, cap);
        expect(t->s != NULL, "out of memory");
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

void text_printf(struct text *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    expect(n >= 0 && (size_t)n < sizeof buf, "trace line too long");
    text_add(t, buf, (size_t)n);
}
