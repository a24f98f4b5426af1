/* lazy_deps.h - SQLite and libcrypto loaded at the shim's start (see
 * lazy_deps.c for why). */
#ifndef RETRYSAFE_LAZY_DEPS_H
#define RETRYSAFE_LAZY_DEPS_H

#include <stddef.h>

/* Loads them (once). Returns 0, or -1 with the reason in err: nothing that
 * needs them may run then. */
int lazy_deps_load(char *err, size_t err_size);

#endif
