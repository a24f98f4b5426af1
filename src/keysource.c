/* keysource.c - where the key-derivation secret comes from. */
#include "keysource.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

struct key_ctx *keysource_open(const struct config *cfg, char *err, size_t err_size)
{
    struct key_ctx *keys = NULL;
    if (cfg->secret) {
        keys = key_ctx_new(cfg->secret, strlen(cfg->secret));
        if (!keys)
            snprintf(err, err_size, "libcrypto cannot set up HMAC-SHA256");
        return keys;
    }
    char dir[PATH_MAX];
    char *secret = NULL;
    if (secret_state_dir(dir, sizeof(dir)) != 0) {
        snprintf(err, err_size, "no state directory for the secret (HOME unset?)");
        return NULL;
    }
    if (secret_make_dir(dir) != 0) {
        snprintf(err, err_size, "cannot create %s", dir);
        return NULL;
    }
    if (secret_load_or_create(dir, &secret, err, err_size) != 0)
        return NULL;
    keys = key_ctx_new(secret, strlen(secret));
    if (!keys)
        snprintf(err, err_size, "libcrypto cannot set up HMAC-SHA256");
    /* The secret lives on only inside the keyed MAC context. */
    memset(secret, 0, strlen(secret));
    free(secret);
    return keys;
}
