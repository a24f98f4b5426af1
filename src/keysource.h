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
 * NULL. NULL on failure, with the reason in err. */
struct key_ctx *keysource_open(const struct config *cfg, const char *journal, char *err,
                               size_t err_size);

/* Keyed with the user's own secret file, whatever cfg says: the shim's
 * fallback when the journal's server cannot be asked. */
struct key_ctx *keysource_open_local(char *err, size_t err_size);

#endif
