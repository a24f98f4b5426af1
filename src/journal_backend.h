/* journal_backend.h - what a journal backend provides, and what journal.c
 * provides to it. Private to journal*.c.
 *
 * journal.c owns struct journal: it picks the backend from the location,
 * serialises callers with one mutex and refuses calls after fork, so a
 * backend sees one call at a time, from the process that opened it, and
 * needs no locking of its own. A backend reports every failure through
 * journal_fail() and returns -1 (NULL from open).
 */
#ifndef RETRYSAFE_JOURNAL_BACKEND_H
#define RETRYSAFE_JOURNAL_BACKEND_H

#include "journal.h"

struct journal_ops {
    /* Returns the backend's state, or NULL. */
    void *(*open)(const char *location, int create);
    void (*close)(void *state);
    int (*begin)(void *state, const struct journal_attempt *a, int64_t *id,
                 int *attempt);
    int (*finish)(void *state, int64_t id, enum journal_outcome outcome,
                  int status, int64_t duration_ms);
    /* The newest generation recorded for fingerprint and the time of its
     * first attempt; *found = 0 when there is none. The window rule itself
     * lives in journal.c, the same for every backend. */
    int (*newest)(void *state, const char *fingerprint, int *found,
                  int *generation, int64_t *first_ms);
    int (*each)(void *state, const struct journal_filter *filter,
                int (*fn)(void *ctx, const struct journal_row *row), void *ctx);
    int (*stats)(void *state,
                 int (*fn)(void *ctx, const struct journal_host_stats *s),
                 void *ctx);
    int (*prune)(void *state, int64_t before_ms, int64_t *deleted);
    int (*finish_process)(void *state, int pid, enum journal_outcome outcome);
    int (*claim)(void *state, const struct journal_attempt *a,
                 const struct journal_guard_rules *rules, struct journal_claim *out);
    int (*finish_answer)(void *state, int64_t id, int status, int64_t duration_ms,
                         const char *answer, size_t len, int too_large);
    int (*forget)(void *state, const char *key, int *attempts, int *answers);
    int (*apply)(void *state, struct journal_op *ops, size_t n);
    int (*each_fingerprint)(void *state,
                            int (*fn)(void *ctx, const char *fingerprint), void *ctx);
    long (*full_scan_steps)(void *state);   /* see journal_full_scan_steps */

    /* Optional (NULL: not needed by this backend). */
    /* A forked child's copy of the state: released without any I/O on
     * the parent's connection. With it, fork keeps the parent's
     * connection open (journal_fork_prepare closes it otherwise). */
    void (*drop_in_child)(void *state);
    int (*keepalive)(void *state);           /* see journal_keepalive */
    int (*shared_secret)(void *state, const char *proposal, char *out,
                         size_t size);       /* see journal_shared_secret */
};

/* Whether process pid still runs (a pending attempt of a dead one has an
 * unknown outcome). Same machine only. */
int journal_process_alive(int pid);

/* How a claim's verdict is recorded: its attempt's outcome (a replayed
 * answer, a refusal, or pending for one sent) and status (the replayed
 * answer's, or the 409 of a refusal). The same in every backend. */
enum journal_outcome journal_claim_outcome(enum journal_verdict verdict);
int journal_claim_status(const struct journal_claim *claim);

extern const struct journal_ops journal_sqlite_ops;
extern const struct journal_ops journal_redis_ops;

/* The same for a journal another process kept locked too long (see
 * journal_busy). */
int journal_fail_busy(const char *what);

/* Sets this thread's error text (see journal_error) and returns -1. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int journal_fail(const char *fmt, ...);

#endif
