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

/* This machine's copy of the secret a Redis journal shares. */
#define SHARED_SECRET_FILE "shared-secret"

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

/* The state directory, made if missing, and checked private before and
 * after: another user may make it in between, in a sticky directory like
 * /tmp. */
static int state_dir(char *dir, size_t size, char *err, size_t err_size)
{
    if (secret_state_dir(dir, size) != 0) {
        snprintf(err, err_size, "no state directory for the secret (HOME unset?)");
        return -1;
    }
    if (private_dir(dir, err, err_size) != 0)
        return -1;
    if (secret_make_dir(dir) != 0) {
        snprintf(err, err_size, "cannot create %s", dir);
        return -1;
    }
    return private_dir(dir, err, err_size);
}

/* Keyed with the user's own secret file. */
static struct key_ctx *open_local(char *err, size_t err_size)
{
    char dir[PATH_MAX];
    char *secret = NULL;
    if (state_dir(dir, sizeof(dir), err, err_size) != 0 ||
        secret_load_or_create(dir, &secret, err, err_size) != 0)
        return NULL;
    struct key_ctx *keys = keys_of(secret, err, err_size);
    /* The secret lives on only inside the keyed MAC context. */
    memset(secret, 0, strlen(secret));
    free(secret);
    return keys;
}

/* The secret of every machine sharing the journal at location. Each
 * proposes its copy (or, having none, a new one); the first one stored is
 * everybody's (journal_shared_secret), and each machine keeps a copy of
 * it once the server said which it is. So keys stay the same when the
 * server cannot be asked, and when it lost its data: the copies are
 * proposed again. NULL when this machine never learnt it and the server
 * cannot be asked. */
static struct key_ctx *shared_keys(const char *location, char *err, size_t err_size)
{
    char dir[PATH_MAX], proposal[SECRET_CHARS + 1], stored[256];
    char *copy = NULL;
    if (state_dir(dir, sizeof(dir), err, err_size) != 0)
        return NULL;
    int have_copy = secret_load_file(dir, SHARED_SECRET_FILE, &copy, err, err_size);
    if (have_copy < 0)
        return NULL;
    if (have_copy > 0 && secret_generate(proposal) != 0) {
        snprintf(err, err_size, "no random bytes for a secret");
        return NULL;
    }
    struct journal *j = journal_open(location, 0, err, err_size);
    int asked = j && journal_shared_secret(j, copy ? copy : proposal, stored,
                                           sizeof(stored)) == 0;
    if (j && !asked)
        snprintf(err, err_size, "cannot read the shared secret: %s", journal_error(j));
    journal_close(j);
    struct key_ctx *keys = NULL;
    if (asked) {
        char why[256];
        /* A copy that could not be written only costs the next process
         * that cannot reach the server its shared keys. */
        if (!copy || strcmp(stored, copy) != 0)
            secret_store_file(dir, SHARED_SECRET_FILE, stored, why, sizeof(why));
        keys = keys_of(stored, err, err_size);
    } else if (copy) {
        /* As this machine last learnt it: the keys are right, and the
         * journal's own warning tells of the server. */
        err[0] = '\0';
        keys = keys_of(copy, err, err_size);
    }
    memset(stored, 0, sizeof(stored));
    memset(proposal, 0, sizeof(proposal));
    if (copy) {
        memset(copy, 0, strlen(copy));
        free(copy);
    }
    return keys;
}

struct key_ctx *keysource_open(const struct config *cfg, const char *journal, char *err,
                               size_t err_size)
{
    if (err_size)
        err[0] = '\0';
    if (cfg->secret)
        return keys_of(cfg->secret, err, err_size);
    char location[4096];
    if (location_journal(journal ? journal : cfg->journal, location, sizeof(location)) !=
            LOCATION_FOUND ||
        journal_scheme_len(location) == 0)
        return open_local(err, err_size);
    struct key_ctx *keys = shared_keys(location, err, err_size);
    if (keys)
        return keys;
    /* Tagged all the same, consistently within this machine. */
    char why[400];
    snprintf(why, sizeof(why), "%s", err);
    keys = open_local(err, err_size);
    if (keys)
        snprintf(err, err_size, "%s; keys come from this machine's own secret, which "
                 "other machines do not share (set RETRYSAFE_SECRET on every machine)",
                 why);
    return keys;
}
