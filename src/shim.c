/* shim.c - the preloaded library's process-wide state.
 *
 * Nothing happens at load time: the environment is read, the secret loaded
 * and the fd table created at the first connection the shim could track.
 */
#include "shim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "keysource.h"

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int state = SHIM_NOT_STARTED;
static struct config config;
static struct outbound_env env;

static const char *lookup_env(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

/* Config warnings wait until the log is opened with the config's own
 * level and file; a few are enough to tell a user what is wrong. */
#define SHIM_HELD_WARNINGS 8
static char held_warnings[SHIM_HELD_WARNINGS][256];
static int n_held_warnings;

static void hold_warning(void *ctx, const char *message)
{
    (void)ctx;
    if (n_held_warnings < SHIM_HELD_WARNINGS)
        snprintf(held_warnings[n_held_warnings++], sizeof(held_warnings[0]), "%s", message);
}

static void log_held_warnings(void)
{
    for (int i = 0; i < n_held_warnings; i++)
        log_msg(CONFIG_LOG_WARN, "%s", held_warnings[i]);
    n_held_warnings = 0;
}

static int start(void)
{
    const char *hosts = getenv("RETRYSAFE_HOSTS");
    if (!hosts || !*hosts)
        return SHIM_DISABLED;
    if (config_load(&config, lookup_env, NULL, hold_warning, NULL) != 0)
        return SHIM_DISABLED;
    log_open(config.log_level, config.log_file);
    log_held_warnings();
    if (config.n_hosts == 0) {
        log_msg(CONFIG_LOG_WARN, "RETRYSAFE_HOSTS names no usable host; nothing is tagged");
        return SHIM_DISABLED;
    }
    env.cfg = &config;
    char err[512];
    env.keys = keysource_open(&config, err, sizeof(err));
    if (!env.keys)
        log_msg(CONFIG_LOG_WARN, "no key secret: %s; set RETRYSAFE_SECRET. "
                "Requests pass untagged", err);
    if (conn_table_init() != 0) {
        log_msg(CONFIG_LOG_WARN, "cannot allocate the connection table; shim disabled");
        return SHIM_DISABLED;
    }
    log_msg(CONFIG_LOG_INFO, "active for %zu host pattern(s)", config.n_hosts);
    return SHIM_ACTIVE;
}

const struct outbound_env *shim_start(void)
{
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s == SHIM_NOT_STARTED) {
        pthread_mutex_lock(&start_lock);
        s = state;
        if (s == SHIM_NOT_STARTED) {
            s = start();
            __atomic_store_n(&state, s, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&start_lock);
    }
    return s == SHIM_ACTIVE ? &env : NULL;
}

int shim_disabled(void)
{
    return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == SHIM_DISABLED;
}

void shim_fork_prepare(void)
{
    pthread_mutex_lock(&start_lock);
}

void shim_fork_parent(void)
{
    pthread_mutex_unlock(&start_lock);
}

void shim_fork_child(void)
{
    pthread_mutex_init(&start_lock, NULL);
}
