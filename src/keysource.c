/* keysource.c - where the key-derivation secret comes from. */
#include "keysource.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "location.h"
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

static struct key_ctx *keys_of(const char *secret, char *err, size_t err_size)
{
    struct key_ctx *keys = key_ctx_new(secret, strlen(secret));
    if (!keys)
        snprintf(err, err_size, "libcrypto cannot set up HMAC-SHA256");
    return keys;
}

struct key_ctx *keysource_open_local(char *err, size_t err_size)
{
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
    struct key_ctx *keys = keys_of(secret, err, err_size);
    /* The secret lives on only inside the keyed MAC context. */
    memset(secret, 0, strlen(secret));
    free(secret);
    return keys;
}

/* The secret every machine sharing the journal at location uses: the
 * first to ask stores its proposal there, once (journal_shared_secret). */
static struct key_ctx *shared_keys(const char *location, char *err, size_t err_size)
{
    char proposal[SECRET_CHARS + 1], secret[256];
    struct key_ctx *keys = NULL;
    if (secret_generate(proposal) != 0) {
        snprintf(err, err_size, "no random bytes for a secret");
        return NULL;
    }
    struct journal *j = journal_open(location, 0, err, err_size);
    if (!j)
        return NULL;
    if (journal_shared_secret(j, proposal, secret, sizeof(secret)) == 0)
        keys = keys_of(secret, err, err_size);
    else
        snprintf(err, err_size, "cannot read the shared secret: %s", journal_error(j));
    journal_close(j);
    memset(proposal, 0, sizeof(proposal));
    memset(secret, 0, sizeof(secret));
    return keys;
}

struct key_ctx *keysource_open(const struct config *cfg, const char *journal, char *err,
                               size_t err_size)
{
    if (cfg->secret)
        return keys_of(cfg->secret, err, err_size);
    char location[4096];
    if (location_journal(journal ? journal : cfg->journal, location, sizeof(location)) ==
            LOCATION_FOUND &&
        journal_scheme_len(location) > 0)
        return shared_keys(location, err, err_size);
    return keysource_open_local(err, err_size);
}
