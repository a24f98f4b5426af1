/* trace_text.h - what the parser suites share: cheap checks and a growable
 * text that event traces are written into. */
#ifndef RETRYSAFE_TRACE_TEXT_H
#define RETRYSAFE_TRACE_TEXT_H

#include <stddef.h>

/* ck_assert reports every passing check to the runner, a write to a pipe
 * each time. The parser suites check millions of times, so they call Check
 * only when a check fails. */
void expect(int ok, const char *what);
void expect_eq(size_t got, size_t want, const char *what);

struct text {
    char *s;
    size_t len, cap;
};

void text_add(struct text *t, const char *s, size_t n);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void text_printf(struct text *t, const char *fmt, ...);

#endif
