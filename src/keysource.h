/* keysource.h - the key context for a configuration: keyed with
 * RETRYSAFE_SECRET; else, with a journal in Redis, with the secret stored
 * there for every machine; else with the user's generated secret file.
 * Shared by the shim and the tool so both derive the same keys. */
#ifndef RETRYSAFE_KEYSOURCE_H
#define RETRYSAFE_KEYSOURCE_H

#include <stddef.h>

#include "config.h"
#include "key.h"

/* journal: the journal's location if not cfg's (the tool's --journal), or
 * NULL. NULL on failure, with the reason in err. When a journal in Redis
 * was to give the secret and cannot (a machine that never reached it),
 * the user's own secret keys the requests, and err says so: a warning. */
struct key_ctx *keysource_open(const struct config *cfg, const char *journal, char *err,
                               size_t err_size);

#endif
