/* journal.c - the journal interface, independent of where it is stored.
 * See journal.h.
 *
 * This file picks a backend from the location string and wraps every call
 * the same way: refuse it in a forked child (the parent's connection, and
 * possibly its locked mutex, came along with the fork), take the journal's
 * mutex, reopen the backend if journal_fork_prepare closed it, call the
 * backend, release. Backends (journal_sqlite.c, journal_redis.c) therefore see
 * one call at a time and hold no locks of their own.
 *
 * Error texts are per thread, like errno: two threads sharing a journal
 * must each read their own failure, not whichever came last.
 */
#include "journal.h"
#include "journal_backend.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

struct journal {
    const struct journal_ops *ops;
    void *state;              /* the backend's; NULL: closed for a fork */
    char *location;           /* to reopen after a fork */
    int create;
    pthread_mutex_t lock;     /* one call at a time */
    pid_t pid;                /* the process it belongs to */
    int forking;              /* journal_fork_prepare holds lock */
};

/* ---- errors ---- */

#define JOURNAL_ERROR_MAX 512

static _Thread_local struct {
    const struct journal *j;  /* the journal the text is about */
    char text[JOURNAL_ERROR_MAX];
    int busy;                 /* it was held locked too long */
} last_error;

int journal_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error.text, sizeof last_error.text, fmt, ap);
    va_end(ap);
    last_error.busy = 0;
    return -1;
}

int journal_fail_busy(const char *what)
{
    journal_fail("%s", what);
    last_error.busy = 1;
    return -1;
}

int journal_busy(const struct journal *j)
{
    return last_error.j == j && last_error.busy;
}

const char *journal_error(const struct journal *j)
{
    if (j && last_error.j != j)
        return "";
    return last_error.text;
}

/* ---- outcomes ---- */

/* Also the values stored by backends: renaming one is a schema change. */
static const char *const outcome_names[] = {
    [JOURNAL_PENDING] = "pending",
    [JOURNAL_COMPLETED] = "completed",
    [JOURNAL_UNKNOWN] = "unknown",
    [JOURNAL_FAILED] = "failed",
    [JOURNAL_SKIPPED] = "skipped",
    [JOURNAL_REPLAYED] = "replayed",
    [JOURNAL_REFUSED] = "refused",
};

const char *journal_outcome_name(enum journal_outcome outcome)
{
    if ((unsigned)outcome >= JOURNAL_OUTCOMES)
        return "invalid";
    return outcome_names[outcome];
}

int journal_outcome_parse(const char *name, enum journal_outcome *outcome)
{
    if (!name)
        return -1;
    for (unsigned i = 0; i < JOURNAL_OUTCOMES; i++) {
        if (strcmp(name, outcome_names[i]) == 0) {
            if (outcome)
                *outcome = (enum journal_outcome)i;
            return 0;
        }
    }
    return -1;
}

/* ---- backends ---- */

/* Locations of the form scheme://..., by scheme. Anything without a
 * scheme is a file path. */
static const struct {
    const char *scheme;
    const struct journal_ops *ops;
} schemes[] = {
    { "redis", &journal_redis_ops },
    { "rediss", &journal_redis_ops },   /* refused at open without TLS */
};

size_t journal_scheme_len(const char *location)
{
    size_t n = 0;
    while ((location[n] >= 'a' && location[n] <= 'z') ||
           (location[n] >= 'A' && location[n] <= 'Z') ||
           (n > 0 && ((location[n] >= '0' && location[n] <= '9') ||
                      location[n] == '+' || location[n] == '-' ||
                      location[n] == '.')))
        n++;
    return n > 0 && strncmp(location + n, "://", 3) == 0 ? n : 0;
}

/* The backend for location, or NULL with the reason set. The location is
 * never quoted whole: a redis:// URL may carry a password. */
static const struct journal_ops *pick_backend(const char *location)
{
    if (!location || !*location) {
        journal_fail("no journal location given");
        return NULL;
    }
    if (strcmp(location, "off") == 0) {
        journal_fail("the journal is off");
        return NULL;
    }
    size_t n = journal_scheme_len(location);
    if (n == 0)
        return &journal_sqlite_ops;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strlen(schemes[i].scheme) == n &&
            strncasecmp(location, schemes[i].scheme, n) == 0)
            return schemes[i].ops;
    journal_fail("unknown journal location scheme \"%.*s://\"; give a file "
                 "path or redis://host:port", (int)n, location);
    return NULL;
}

/* ---- open, close ---- */

/* Error-checking, so a callback that calls back into its own journal gets
 * EDEADLK (an error) instead of hanging its thread forever. */
static int init_lock(pthread_mutex_t *lock)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0)
        rc = pthread_mutex_init(lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

struct journal *journal_open(const char *location, int create, char *err,
                             size_t err_size)
{
    const struct journal_ops *ops = pick_backend(location);
    struct journal *j = NULL;
    int locked = 0;

    if (ops && (!(j = calloc(1, sizeof *j)) || !(j->location = strdup(location))))
        journal_fail("cannot open the journal: out of memory");
    else if (j && init_lock(&j->lock) != 0)
        journal_fail("cannot open the journal: no mutex");
    else if (j)
        locked = 1;
    if (locked) {
        j->ops = ops;
        j->create = create;
        j->pid = getpid();
        j->state = ops->open(location, create);
    }
    if (j && j->state)
        return j;

    if (err && err_size > 0)
        snprintf(err, err_size, "%s", last_error.text);
    if (locked)
        pthread_mutex_destroy(&j->lock);
    if (j)
        free(j->location);
    free(j);
    return NULL;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    /* In a forked child the connection's lock state is the parent's:
     * closing it here could checkpoint or remove files the parent still
     * uses, and the mutex may be held by a thread that does not exist
     * here. Leave both alone; only the memory is ours. */
    if (j->pid == getpid()) {
        if (j->state)
            j->ops->close(j->state);
        pthread_mutex_destroy(&j->lock);
    }
    free(j->location);
    free(j);
}

/* ---- fork ---- */

void journal_fork_prepare(struct journal *j)
{
    /* EDEADLK: fork from inside a callback; the connection stays, and the
     * child's calls fail as they would without these calls. */
    if (!j || j->pid != getpid() || pthread_mutex_lock(&j->lock) != 0)
        return;
    j->forking = 1;
    if (j->ops->drop_in_child)
        return;   /* kept: the child drops its copy */
    if (j->state)
        j->ops->close(j->state);
    j->state = NULL;
}

void journal_fork_parent(struct journal *j)
{
    if (!j || !j->forking || j->pid != getpid())
        return;
    j->forking = 0;
    /* Reopened here, in the thread that forked and before any other can
     * call: its files must not be opened by some background thread at a
     * moment the application could be reusing a number it just closed. */
    if (!j->state)
        j->state = j->ops->open(j->location, j->create);
    pthread_mutex_unlock(&j->lock);
}

void journal_fork_child(struct journal *j)
{
    if (!j || !j->forking)
        return;
    /* The lock belongs to a thread of the parent: start a fresh one. If
     * that fails, j stays the parent's and every call here fails. */
    j->forking = 0;
    if (j->ops->drop_in_child && j->state)
        j->ops->drop_in_child(j->state);
    j->state = NULL;
    if (init_lock(&j->lock) == 0)
        j->pid = getpid();
}

/* ---- calls ---- */

/* Takes j for one call; on failure its reason is j's error. */
static int enter(struct journal *j)
{
    int rc = 0;
    if (!j)
        rc = journal_fail("no journal");
    else if (j->pid != getpid())
        rc = journal_fail("this journal belongs to process %d: a forked "
                          "child may use it only after journal_fork_child",
                          (int)j->pid);
    else if ((rc = pthread_mutex_lock(&j->lock)) == EDEADLK)
        rc = journal_fail("the journal was called from its own callback");
    else if (rc != 0)
        rc = journal_fail("cannot lock the journal: %s", strerror(rc));
    else if (!j->state && !(j->state = j->ops->open(j->location, j->create))) {
        pthread_mutex_unlock(&j->lock);
        rc = -1;
    }
    if (rc < 0)
        last_error.j = j;
    return rc;
}

/* Releases j after the backend returned rc; a failure's text is j's. */
static int leave(struct journal *j, int rc)
{
    pthread_mutex_unlock(&j->lock);
    if (rc < 0)
        last_error.j = j;
    return rc < 0 ? -1 : 0;
}

int journal_each_fingerprint(struct journal *j,
                             int (*fn)(void *ctx, const char *fingerprint), void *ctx)
{
    if (enter(j) < 0)
        return -1;
    int rc = fn ? j->ops->each_fingerprint(j->state, fn, ctx) : journal_fail("no callback");
    return leave(j, rc);
}

long journal_full_scan_steps(struct journal *j)
{
    if (enter(j) < 0)
        return -1;
    long steps = j->ops->full_scan_steps(j->state);
    leave(j, 0);
    return steps;
}

int journal_keepalive(struct journal *j)
{
    if (j && !j->ops->keepalive)
        return 0;
    if (enter(j) < 0)
        return -1;
    int rc = j->ops->keepalive(j->state);
    leave(j, rc);
    return rc;
}

int journal_shared_secret(struct journal *j, const char *proposal, char *out,
                          size_t size)
{
    if (j && !j->ops->shared_secret)
        return 1;
    if (enter(j) < 0)
        return -1;
    int rc = proposal && *proposal && out && size
           ? j->ops->shared_secret(j->state, proposal, out, size)
           : journal_fail("no secret to propose");
    return leave(j, rc);
}

int journal_ping(struct journal *j)
{
    return enter(j) < 0 ? -1 : leave(j, 0);
}

int journal_begin(struct journal *j, const struct journal_attempt *a,
                  int64_t *id, int *attempt)
{
    if (enter(j) < 0)
        return -1;
    int rc = a ? j->ops->begin(j->state, a, id, attempt)
               : journal_fail("no attempt to record");
    return leave(j, rc);
}

int journal_finish(struct journal *j, int64_t id, enum journal_outcome outcome,
                   int status, int64_t duration_ms)
{
    if (enter(j) < 0)
        return -1;
    return leave(j, j->ops->finish(j->state, id, outcome, status, duration_ms));
}

int journal_generation(struct journal *j, const char *fingerprint,
                       int64_t now_ms, int64_t window_ms, int *generation)
{
    int found = 0, newest = 0;
    int64_t first_ms = 0;
    if (enter(j) < 0)
        return -1;
    int rc = fingerprint && generation
           ? j->ops->newest(j->state, fingerprint, &found, &newest, &first_ms)
           : journal_fail("no fingerprint or generation");
    if (leave(j, rc) < 0)
        return -1;
    /* A first attempt stamped later than now (another process's clock
     * step) counts as inside the window. */
    if (!found)
        *generation = 0;
    else if (now_ms - first_ms < window_ms)
        *generation = newest;
    else
        *generation = newest + 1;
    return 0;
}

int journal_each(struct journal *j, const struct journal_filter *filter,
                 int (*fn)(void *ctx, const struct journal_row *row), void *ctx)
{
    static const struct journal_filter everything = { NULL, 0, 0 };
    if (enter(j) < 0)
        return -1;
    int rc = fn ? j->ops->each(j->state, filter ? filter : &everything, fn, ctx)
                : journal_fail("no callback");
    return leave(j, rc);
}

int journal_stats(struct journal *j,
                  int (*fn)(void *ctx, const struct journal_host_stats *s),
                  void *ctx)
{
    if (enter(j) < 0)
        return -1;
    int rc = fn ? j->ops->stats(j->state, fn, ctx) : journal_fail("no callback");
    return leave(j, rc);
}

int journal_prune(struct journal *j, int64_t before_ms, int64_t *deleted)
{
    int64_t n = 0;
    if (enter(j) < 0)
        return -1;
    int rc = leave(j, j->ops->prune(j->state, before_ms, &n));
    if (deleted)
        *deleted = n;
    return rc;
}

/* ---- batches ---- */

int journal_apply(struct journal *j, struct journal_op *ops, size_t n)
{
    if (enter(j) < 0)
        return -1;
    int rc = ops || n == 0 ? (n ? j->ops->apply(j->state, ops, n) : 0)
                           : journal_fail("no ops to apply");
    return leave(j, rc);
}

/* ---- guard mode ---- */

enum journal_verdict journal_guard_rule(const struct journal_key_state *k,
                                        const struct journal_guard_rules *rules)
{
    if (k->answered)
        return k->answer_too_large ? JOURNAL_REFUSE_TOO_LARGE : JOURNAL_REPLAY;
    if (k->in_flight)
        return rules->may_wait ? JOURNAL_WAIT : JOURNAL_REFUSE_IN_FLIGHT;
    if (k->unknown && !rules->resend_unknown)
        return JOURNAL_REFUSE_UNKNOWN;
    return JOURNAL_SEND;
}

enum journal_outcome journal_claim_outcome(enum journal_verdict verdict)
{
    switch (verdict) {
    case JOURNAL_REPLAY:
        return JOURNAL_REPLAYED;
    case JOURNAL_REFUSE_UNKNOWN:
    case JOURNAL_REFUSE_IN_FLIGHT:
    case JOURNAL_REFUSE_TOO_LARGE:
        return JOURNAL_REFUSED;
    case JOURNAL_SEND:
    case JOURNAL_WAIT:   /* not recorded */
        break;
    }
    return JOURNAL_PENDING;
}

int journal_claim_status(const struct journal_claim *claim)
{
    switch (journal_claim_outcome(claim->verdict)) {
    case JOURNAL_REPLAYED:
        return claim->state.answer_status;
    case JOURNAL_REFUSED:
        return 409;
    default:
        return 0;
    }
}

int journal_process_alive(int pid)
{
    /* EPERM: it runs, as another user. */
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int journal_claim(struct journal *j, const struct journal_attempt *a,
                  const struct journal_guard_rules *rules,
                  struct journal_claim *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (enter(j) < 0)
        return -1;
    int rc = a && a->key && *a->key && rules && out
           ? j->ops->claim(j->state, a, rules, out)
           : journal_fail("no keyed attempt to claim");
    return leave(j, rc);
}

int journal_finish_answer(struct journal *j, int64_t id, int status,
                          int64_t duration_ms, const char *answer, size_t len,
                          int too_large)
{
    if (enter(j) < 0)
        return -1;
    int rc = answer || too_large
           ? j->ops->finish_answer(j->state, id, status, duration_ms, answer, len,
                                   too_large)
           : journal_fail("no answer to record");
    return leave(j, rc);
}

int journal_forget(struct journal *j, const char *key, int *attempts, int *answers)
{
    int n = 0, a = 0;
    if (enter(j) < 0)
        return -1;
    int rc = key && *key ? j->ops->forget(j->state, key, &n, &a)
                         : journal_fail("no key to forget");
    rc = leave(j, rc);
    if (attempts)
        *attempts = n;
    if (answers)
        *answers = a;
    return rc;
}

int journal_finish_process(struct journal *j, int pid,
                           enum journal_outcome outcome)
{
    if (enter(j) < 0)
        return -1;
    return leave(j, j->ops->finish_process(j->state, pid, outcome));
}
