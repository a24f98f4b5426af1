/* shim.c - the preloaded library's process-wide state.
 *
 * Nothing happens at load time: the environment is read, the secret loaded
 * and the fd table created at the first connection the shim could track.
 */
#include "shim.h"

#include <pthread.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "flight.h"
#include "hooks.h"
#include "journal.h"
#include "journal_queue.h"
#include "keysource.h"
#include "lazy_deps.h"
#include "location.h"
#include "secret.h"
#include "seen_filter.h"
#include "claim_table.h"
#include "clock.h"

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int state = SHIM_NOT_STARTED;
static struct config config;
static struct outbound_env env;
static char exe_name[64] = "?";

/* The journal: opened at the first request that needs it, per process.
 * After a failure to open it, not tried again for a while: a file's
 * trouble needs a person; a server's (Redis) may pass in seconds. */
#define SHIM_JOURNAL_RETRY_MS 30000
#define SHIM_SERVER_RETRY_MS 3000
static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static struct journal *journal;
static pid_t journal_pid;
static int64_t journal_failed_ms;   /* last failure to open; 0: none */
static int64_t journal_retry_ms = SHIM_JOURNAL_RETRY_MS;
static int journal_warned;
static int journal_off;     /* RETRYSAFE_JOURNAL=off */
static struct seen_filter *seen;   /* beside the journal; NULL: none */
static struct claim_table *claims; /* guard mode's, beside it; NULL: none */
/* Where those are, and which files (as mapped): guard mode checks that
 * they are still the ones at their paths (shim_check_shared_files).
 * Written under shared_lock, taken after journal_lock. */
static char seen_path[4096 + 8], claims_path[4096 + 8];
static struct file_id seen_id, claims_id;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static struct file_id file_id_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (struct file_id){ st.st_dev, st.st_ino }
                                : (struct file_id){ 0, 0 };
}

static int same_file(struct file_id a, struct file_id b)
{
    return a.ino != 0 && a.dev == b.dev && a.ino == b.ino;
}
static pid_t forking_pid;   /* the parent, during our fork hook */

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

/* A setuid or setgid program, or one that gained file capabilities, runs
 * on behalf of another user than the one who set its environment: nothing
 * there may steer it (a journal or log path, hosts to rewrite requests
 * to). The kernel says so in AT_SECURE, for glibc and musl alike; the
 * loader's own refusal of LD_PRELOAD paths does not cover a library
 * installed setuid in a system directory. Such a process gets no hooks
 * acting, no files, no threads, no output. */
static int secure_exec(void)
{
    return getauxval(AT_SECURE) != 0;
}

/* The key secret (keysource.h). NULL: requests go out untagged. */
static struct key_ctx *open_keys(void)
{
    char err[768];
    struct key_ctx *keys = keysource_open(&config, NULL, err, sizeof(err));
    if (!keys)
        log_msg(CONFIG_LOG_WARN, "no key secret: %s; set RETRYSAFE_SECRET. "
                "Requests pass untagged", err);
    else if (err[0])
        log_msg(CONFIG_LOG_WARN, "%s", err);
    return keys;
}

static int start(void)
{
    if (secure_exec())
        return SHIM_DISABLED;
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
    if (lazy_deps_load(err, sizeof(err)) != 0) {
        log_msg(CONFIG_LOG_WARN, "%s; shim disabled", err);
        return SHIM_DISABLED;
    }
    env.keys = open_keys();
    if (conn_table_init() != 0) {
        log_msg(CONFIG_LOG_WARN, "cannot allocate the connection table; shim disabled");
        return SHIM_DISABLED;
    }
    journal_off = config.journal && strcmp(config.journal, "off") == 0;
    if (journal_off && config.mode == CONFIG_MODE_GUARD)
        log_msg(CONFIG_LOG_WARN, "RETRYSAFE_MODE=guard needs the journal, and "
                "RETRYSAFE_JOURNAL=off: requests are tagged, not guarded");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *slash = strrchr(exe, '/');
        const char *base = slash ? slash + 1 : exe;
        size_t len = strlen(base) < sizeof(exe_name) - 1 ? strlen(base) : sizeof(exe_name) - 1;
        memcpy(exe_name, base, len);
        exe_name[len] = '\0';
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

/* The journal's SQLite connection is closed across fork (see
 * journal_fork_prepare) and reopened at its next use in each process, so
 * the child keeps the journal and gets real file locks of its own. */
void shim_fork_prepare(void)
{
    pthread_mutex_lock(&start_lock);
    pthread_mutex_lock(&journal_lock);
    pthread_mutex_lock(&shared_lock);
    forking_pid = getpid();
    if (journal && journal_pid == forking_pid)
        journal_fork_prepare(journal);
    journal_queue_fork(FORK_PREPARE);
}

void shim_fork_parent(void)
{
    journal_queue_fork(FORK_PARENT);
    if (journal && journal_pid == forking_pid)
        journal_fork_parent(journal);
    pthread_mutex_unlock(&shared_lock);
    pthread_mutex_unlock(&journal_lock);
    pthread_mutex_unlock(&start_lock);
}

void shim_fork_child(void)
{
    journal_queue_fork(FORK_CHILD);
    if (journal && journal_pid == forking_pid) {
        journal_fork_child(journal);
        journal_pid = getpid();
    }
    pthread_mutex_init(&start_lock, NULL);
    pthread_mutex_init(&journal_lock, NULL);
    pthread_mutex_init(&shared_lock, NULL);
}

const struct config *shim_config(void)
{
    return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == SHIM_ACTIVE ? &config : NULL;
}

int shim_start_thread(void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

const char *shim_exe_name(void)
{
    return exe_name;
}

static int add_seen(void *ctx, const char *fingerprint)
{
    seen_filter_add(ctx, fingerprint);
    return 0;
}

/* A new filter learns every fingerprint the journal has. */
static int fill_seen(void *ctx, struct seen_filter *f)
{
    return journal_each_fingerprint(ctx, add_seen, f);
}

/* The filter beside the journal (seen_filter.h). Without it, lookups
 * read the journal. In guard mode, the claim table too (claim_table.h);
 * a guard process that lacks either would claim without telling the
 * others' fast claims, so it declares the filter invalid for all: no
 * claim is then made without the journal. Under shared_lock. A filter or
 * table replaced under us is left mapped, never unmapped: another thread
 * may be looking at it. */
static void open_shared_files(void)
{
    struct seen_filter *f = seen_filter_open(seen_path, fill_seen, journal);
    seen_id = f ? seen_filter_file_id(f) : (struct file_id){ 0, 0 };
    __atomic_store_n(&seen, f, __ATOMIC_RELEASE);
    if (config.mode != CONFIG_MODE_GUARD)
        return;
    struct claim_table *t = claim_table_open(claims_path, &claims_id);
    __atomic_store_n(&claims, t, __ATOMIC_RELEASE);
    if (!f || !t) {
        static int warned;
        int marked = seen_filter_declare_invalid(seen_path);
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_ACQ_REL))
            log_msg(CONFIG_LOG_WARN, "guard: cannot use %s; %s", f ? claims_path : seen_path,
                    marked ? "every claim reads the journal"
                           : "the other processes' claims may not see this one's");
    }
}

struct seen_filter *shim_seen_filter(void)
{
    return __atomic_load_n(&seen, __ATOMIC_ACQUIRE);
}

struct claim_table *shim_claim_table(void)
{
    return __atomic_load_n(&claims, __ATOMIC_ACQUIRE);
}

void shim_check_shared_files(void)
{
    /* Never waited for: a thread already checking does it for us, and a
     * claim made in a signal handler must not wait for the thread it
     * interrupted. */
    if (pthread_mutex_trylock(&shared_lock) != 0)
        return;
    /* Replaced, or missing here (a failure to open may have passed). */
    if (seen_path[0] && (!same_file(file_id_of(seen_path), seen_id) ||
                         !same_file(file_id_of(claims_path), claims_id))) {
        log_msg(CONFIG_LOG_INFO, "guard: the filter or claim table beside the "
                "journal is not the one mapped here; mapping it again");
        open_shared_files();
    }
    pthread_mutex_unlock(&shared_lock);
}

/* The process's journal and, beside it, the connection journal_queue's
 * writer uses: both opened here, in the application's thread (see
 * journal_queue_attach). */
static void open_journal(void)
{
    char location[4096], err[512] = "no location for it (HOME unset?)";
    int found = location_journal(config.journal, location, sizeof(location)) == LOCATION_FOUND;
    int server = found && journal_scheme_len(location) > 0;
    journal_retry_ms = server ? SHIM_SERVER_RETRY_MS : SHIM_JOURNAL_RETRY_MS;
    if (found && location_journal_private(location, err, sizeof(err)) == 0) {
        journal = journal_open(location, 1, err, sizeof(err));
        /* Again, now that what was missing exists: another user may have
         * made it in between, in a sticky directory like /tmp. */
        if (journal && location_journal_private(location, err, sizeof(err)) != 0) {
            journal_close(journal);
            journal = NULL;
        }
    }
    /* A server's journal has nothing beside it: without the filter and
     * the claim table, every lookup asks the journal, as it must when
     * other machines write to it too. */
    if (journal && !server) {
        pthread_mutex_lock(&shared_lock);
        snprintf(seen_path, sizeof(seen_path), "%s-seen", location);
        snprintf(claims_path, sizeof(claims_path), "%s-claims", location);
        open_shared_files();
        pthread_mutex_unlock(&shared_lock);
    }
    if (journal) {
        struct journal *writer = journal_open(location, 0, err, sizeof(err));
        if (writer)
            journal_queue_attach(writer);
        else
            shim_journal_trouble(err);
        journal_failed_ms = 0;
        return;
    }
    journal_failed_ms = clock_ms(CLOCK_MONOTONIC);
    shim_journal_trouble(err);
}

struct journal *shim_journal(void)
{
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != SHIM_ACTIVE || journal_off)
        return NULL;
    pid_t pid = getpid();
    pthread_mutex_lock(&journal_lock);
    if (journal_pid != pid) {
        /* A forked child must not use its parent's SQLite connection (or
         * close it: that would drop the parent's locks). It opens its own. */
        journal = NULL;
        journal_pid = pid;
        journal_failed_ms = 0;
    }
    if (!journal && (!journal_failed_ms ||
                     clock_ms(CLOCK_MONOTONIC) - journal_failed_ms > journal_retry_ms))
        open_journal();
    struct journal *j = journal;
    pthread_mutex_unlock(&journal_lock);
    return j;
}

struct journal *shim_journal_if_open(void)
{
    pthread_mutex_lock(&journal_lock);
    struct journal *j = journal_pid == getpid() ? journal : NULL;
    pthread_mutex_unlock(&journal_lock);
    return j;
}

void shim_journal_trouble(const char *why)
{
    if (__atomic_exchange_n(&journal_warned, 1, __ATOMIC_ACQ_REL))
        return;
    log_msg(CONFIG_LOG_WARN, "journal unusable: %s; requests still go out tagged, "
            "unrecorded", why ? why : "unknown error");
}

/* What this process still holds goes out before the kernel closes its
 * sockets; whatever it still waits on will never get its answer now. */
__attribute__((destructor)) static void shim_unload(void)
{
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != SHIM_ACTIVE)
        return;
    hooks_release_all_held();
    /* Its journal calls are the shim's own: a connection they make (to
     * Redis) must not be taken for the application's. */
    hooks_in_shim++;
    flight_process_exit();
    hooks_in_shim--;
}
