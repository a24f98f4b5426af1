/* scratch.h - a fresh directory per test, removed after it, for suites
 * that touch the file system (secret, journal). */
#ifndef RETRYSAFE_SCRATCH_H
#define RETRYSAFE_SCRATCH_H

#include <limits.h>

/* Makes /tmp/retrysafe-<name>-XXXXXX in base, failing the test if it can't. */
void scratch_make(char base[PATH_MAX], const char *name);
/* Removes base and everything below it, whatever modes a test left. */
void scratch_remove(const char *base);

/* snprintf into a PATH_MAX buffer, failing the test if it does not fit. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void pathf(char *out, const char *fmt, ...);

#endif
