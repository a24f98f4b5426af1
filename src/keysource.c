/* keysource.c - where the key-derivation secret comes from. */
#include "keysource.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private_path.h"
#include "secret.h"

/* Whoever could swap the secret would know every key: its directory must
 * be the user's (private_path.h). */
static int private_dir(const char *dir, char *err, size_t err_size)
{
    char why[400];
    if (private_path_check_dir(dir, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, err_size, "refusing the secret in %s: %s", dir, why);
    return -1;
}

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
    /* Checked before it is made and again after: another user may make
     * it in between, in a sticky directory like /tmp. */
    if (private_dir(dir, err, err_size) != 0)
        return NULL;
    if (secret_make_dir(dir) != 0) {
        snprintf(err, err_size, "cannot create %s", dir);
        return NULL;
    }
    if (private_dir(dir, err, err_size) != 0)
        return NULL;
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
