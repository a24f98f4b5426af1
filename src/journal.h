/* journal.h - the record of every tagged request and what became of it,
 * shared by every process of the user on the machine (or, in Redis, by
 * every machine that names the same server).
 *
 * An interface with one implementation per backend (journal_sqlite.c for
 * a file, journal_redis.c for redis://): journal_open picks one from the
 * location string. The shim
 * and the tool use the same calls, so `retrysafe dump` reads exactly what
 * the shim wrote. Nothing here ever stores a request body, a query string,
 * an Authorization header, a cookie or an answer body.
 *
 * Threads: one struct journal may be shared by every thread of a process;
 * calls are serialised inside. Callbacks (journal_each, journal_stats) run
 * with the journal held and must not call back into it (such a call fails).
 * Fork: see journal_fork_prepare. A child must never use its parent's
 * connection: without those calls, a child's calls on a journal its parent
 * opened fail, and journal_close there only frees memory.
 * Nothing here exits, aborts or changes process-wide state; every failure is
 * a -1 (or NULL) with its reason in journal_error.
 */
#ifndef RETRYSAFE_JOURNAL_H
#define RETRYSAFE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

/* How long a call waits for another process that holds the journal's write
 * lock before it fails. Bounded on purpose: a journal locked far too long
 * must cost the request its record, not stall it forever. */
enum { JOURNAL_BUSY_TIMEOUT_MS = 2000 };

enum journal_outcome {
    JOURNAL_PENDING,    /* sent (or about to be), no answer yet */
    JOURNAL_COMPLETED,  /* an answer arrived; status holds its code */
    JOURNAL_UNKNOWN,    /* the connection closed or the process ended first */
    JOURNAL_FAILED,     /* never reached the server: connect refused or reset
                         * before anything was sent, or sent after an answer
                         * that closed the connection */
    JOURNAL_SKIPPED,    /* to an enabled host, but not tagged (body too big) */
    JOURNAL_REPLAYED,   /* guard: not sent; the recorded answer was replayed */
    JOURNAL_REFUSED     /* guard: not sent; the program got a 409 */
};
enum { JOURNAL_OUTCOMES = JOURNAL_REFUSED + 1 };

/* Text names, as dump shows them: "pending", "completed", ... */
const char *journal_outcome_name(enum journal_outcome outcome);
int journal_outcome_parse(const char *name, enum journal_outcome *outcome);

/* One attempt of a request, as the shim starts it. Strings are
 * NUL-terminated; key and fingerprint may be "" for a skipped request. */
struct journal_attempt {
    int64_t time_ms;          /* wall clock, ms since the epoch */
    int pid;
    const char *exe;          /* program name (basename of /proc/self/exe) */
    const char *method;
    const char *host;         /* normalised authority: host[:port] */
    const char *path;         /* without the query string */
    const char *key;
    const char *fingerprint;  /* hex HMAC of the request: same request, same value */
    int generation;           /* which operation of this fingerprint (window) */
    int tls;
    int64_t body_len;
    enum journal_outcome outcome;  /* PENDING, or SKIPPED (journal_begin) */
    int64_t window_ms;        /* RETRYSAFE_WINDOW (0: unknown): how long a
                                 backend that expires what it keeps (Redis)
                                 keeps the key's state and answer */
};

/* A row as read back. Strings point into the journal's memory and are valid
 * only during the callback. */
struct journal_row {
    int64_t id;
    int64_t time_ms;
    int pid;
    const char *exe;
    const char *method;
    const char *host;
    const char *path;
    const char *key;
    const char *fingerprint;
    int generation;
    int attempt;              /* 1 for the first attempt with this key */
    int tls;
    int64_t body_len;
    int status;               /* 0: none */
    enum journal_outcome outcome;
    int64_t duration_ms;      /* -1: not finished */
    int settled;              /* the backend already turned a pending attempt
                                 of a process that is gone into unknown;
                                 else a reader asks the kernel about pid */
};

struct journal_filter {
    const char *host;         /* NULL: every host */
    int64_t since_ms;         /* 0: from the beginning */
    int64_t limit;            /* 0: no limit; else the newest limit rows */
};

/* Per host, for `retrysafe stats`. */
struct journal_host_stats {
    const char *host;
    int64_t requests;         /* attempts */
    int64_t keys;             /* distinct keys */
    int64_t retried_keys;     /* keys with more than one attempt */
    int64_t outcomes[JOURNAL_OUTCOMES];
    int64_t status_classes[6]; /* [1]..[5]: 1xx..5xx; [0]: no status */
};

struct journal;

/* Opens the journal at location: a file path (created, with its directory,
 * when create is set; directory 0700, file 0600). NULL on failure with the
 * reason in err. A path must name a regular file of this user (never a
 * symbolic link) holding a retrysafe journal or nothing. Or
 * "redis://[[user]:password@]host[:port][/db]": a Redis server, connected
 * to here (an unreachable one is an error). "rediss://" needs a hiredis
 * with TLS, which this build lacks: an error. "off" and any other
 * "scheme://" are errors. */
struct journal *journal_open(const char *location, int create, char *err, size_t err_size);

/* The length of location's "scheme" before "://" ("redis"), or 0 when it
 * has none: a file path. */
size_t journal_scheme_len(const char *location);

void journal_close(struct journal *j);

/* Records an attempt before its first byte leaves. Returns 0 with the row id
 * (always > 0) and the attempt number of its key (1 for the first; always 1
 * for key ""), or -1. id and attempt may be NULL. Attempt numbers of a key
 * are distinct across processes, and survive journal_prune as long as a row
 * of the key is left. */
int journal_begin(struct journal *j, const struct journal_attempt *a,
                  int64_t *id, int *attempt);

/* Records how the attempt ended. status 0: no answer. -1 when no row has
 * that id (pruned meanwhile). */
int journal_finish(struct journal *j, int64_t id, enum journal_outcome outcome,
                   int status, int64_t duration_ms);

/* The window: which operation a request with this fingerprint belongs to
 * now. The newest generation whose first attempt is less than window_ms
 * before now_ms; otherwise a new one (0 for a fingerprint never seen,
 * newest + 1 after the window). Returns 0 or -1. Does not record anything:
 * journal_begin does. */
int journal_generation(struct journal *j, const char *fingerprint, int64_t now_ms,
                       int64_t window_ms, int *generation);

/* Calls fn for each matching row, oldest first (by time_ms, then id); fn
 * returns non-zero to stop. filter may be NULL. Returns 0 or -1. */
int journal_each(struct journal *j, const struct journal_filter *filter,
                 int (*fn)(void *ctx, const struct journal_row *row), void *ctx);

/* Calls fn once per host, in host order; fn returns non-zero to stop.
 * keys and retried_keys leave out key "" (skipped requests). */
int journal_stats(struct journal *j,
                  int (*fn)(void *ctx, const struct journal_host_stats *s), void *ctx);

/* Deletes rows older than before_ms; *deleted (may be NULL) gets the count.
 * Deletes in small batches, so other processes are never locked out for
 * long. The newest generation of each fingerprint is kept: a request made
 * again after its rows are gone gets a new key, never an old one. */
int journal_prune(struct journal *j, int64_t before_ms, int64_t *deleted);

/* Every PENDING row of process pid becomes outcome (UNKNOWN at exit). */
int journal_finish_process(struct journal *j, int pid, enum journal_outcome outcome);

/* ---- batches ---- */

/* A write, for journal_apply. */
enum journal_op_kind {
    JOURNAL_OP_BEGIN,     /* journal_begin(attempt): sets id; an
                             attempt.outcome other than PENDING comes with
                             status and duration_ms (a finish folded in) */
    JOURNAL_OP_FINISH,    /* journal_finish(id, outcome, status, duration_ms) */
    JOURNAL_OP_ANSWER     /* journal_finish_answer(id, status, duration_ms,
                             answer, answer_len, too_large); after a BEGIN
                             of the same batch that came completed (the
                             outcome folded in), the answer alone */
};

struct journal_op {
    enum journal_op_kind kind;
    struct journal_attempt attempt;   /* BEGIN */
    int64_t id;               /* the row; BEGIN: set by journal_apply */
    int ref;                  /* >= 0: the row is that of ops[ref], a BEGIN
                                 of the same batch (id is then ignored) */
    enum journal_outcome outcome;
    int status;
    int64_t duration_ms;
    const char *answer;
    size_t answer_len;
    int too_large;
};

/* Applies ops in order, all in one transaction: a process's writes of many
 * requests cost one commit (group commit). An op whose row is gone (id 0,
 * or pruned) is skipped; any other failure rolls everything back. */
int journal_apply(struct journal *j, struct journal_op *ops, size_t n);

/* ---- guard mode ---- */

/* What the journal knows of a key, counting only attempts after its last
 * journal_forget. */
struct journal_key_state {
    int attempts;             /* the highest attempt number so far (0: none) */
    int64_t first_ms;         /* when the first of them was made (0: none) */
    int in_flight;            /* pending attempts of processes still alive */
    int in_flight_pid;        /* one of those processes */
    int unknown;              /* attempts whose outcome is unknown (a pending
                                 attempt of a dead process counts here) */
    int answered;             /* an attempt got a final answer (see
                                 journal_finish_answer) */
    int answer_status;
    int answer_too_large;     /* it was recorded without its bytes */
};

enum journal_verdict {
    JOURNAL_SEND,             /* journaled as pending: send it */
    JOURNAL_REPLAY,           /* journaled as replayed: give the recorded answer */
    JOURNAL_WAIT,             /* a twin is in flight: nothing journaled; ask again */
    JOURNAL_REFUSE_UNKNOWN,   /* journaled as refused: an earlier outcome is unknown */
    JOURNAL_REFUSE_IN_FLIGHT, /* journaled as refused: the twin is still in flight */
    JOURNAL_REFUSE_TOO_LARGE  /* journaled as refused: the answer was not kept */
};

struct journal_guard_rules {
    int may_wait;             /* 0: the wait is over; a twin in flight refuses */
    int resend_unknown;       /* RETRYSAFE_ON_UNKNOWN=resend */
};

/* The rule, the same for every backend: a final answer is replayed (or,
 * kept without its bytes, refused); a twin in flight is waited for; an
 * unknown outcome refuses unless told to resend; otherwise send. */
enum journal_verdict journal_guard_rule(const struct journal_key_state *k,
                                        const struct journal_guard_rules *rules);

struct journal_claim {
    enum journal_verdict verdict;
    int64_t id;               /* the row recorded (0 for WAIT) */
    int attempt;              /* its attempt number */
    struct journal_key_state state;   /* before this attempt */
    char *answer;             /* REPLAY: the recorded answer (malloc'd) */
    size_t answer_len;
};

/* Guard mode's journal_begin: looks at the key's state, decides by
 * journal_guard_rule, and records the attempt accordingly, all in one
 * transaction, so of several processes sending the same request at once
 * exactly one gets JOURNAL_SEND. a->outcome is ignored. Returns 0 or -1;
 * on 0 the caller frees out->answer. */
int journal_claim(struct journal *j, const struct journal_attempt *a,
                  const struct journal_guard_rules *rules,
                  struct journal_claim *out);

/* journal_finish(id, COMPLETED, status, duration) and, in the same
 * transaction, the answer kept for the attempt's key: len bytes of answer,
 * or too_large (answer NULL) when it was over RETRYSAFE_MAX_RESPONSE. */
int journal_finish_answer(struct journal *j, int64_t id, int status,
                          int64_t duration_ms, const char *answer, size_t len,
                          int too_large);

/* Allows key once more: its attempts so far no longer count (they stay in
 * the journal) and its recorded answer is dropped. *attempts and *answers
 * (either may be NULL) get how many attempts and answers (0 or 1) the
 * journal held for key: both 0 when it knows no such key. */
int journal_forget(struct journal *j, const char *key, int *attempts, int *answers);

/* Around fork(), for a journal kept open by a process that may fork
 * (pthread_atfork order): prepare waits for calls in progress and closes
 * the journal's connection; parent and child release the journal, which
 * reopens its connection at its next call in either process. SQLite needs
 * this: a connection open at fork time leaves lock bookkeeping in the
 * child's copy of the library, and any connection the child opened to the
 * same file later would trust it and go without real locks. */
void journal_fork_prepare(struct journal *j);
/* The parent's reopens the connection at once, in the forking thread. */
void journal_fork_parent(struct journal *j);
void journal_fork_child(struct journal *j);

/* Calls fn with every fingerprint the window knows (one per operation;
 * its first 16 hex digits are all the journal keeps, and all the filter
 * of seen fingerprints uses); fn returns non-zero to stop. Returns 0 or
 * -1. */
int journal_each_fingerprint(struct journal *j,
                             int (*fn)(void *ctx, const char *fingerprint), void *ctx);

/* How many rows j's statements stepped through in full scans of a table
 * since the last call, which starts the count again; -1 on error. Lookups
 * by key and by fingerprint must make none: tests check with this that
 * the journal's indexes are used as meant. */
long journal_full_scan_steps(struct journal *j);

/* For a backend whose attempts in flight are alive by a lease (Redis):
 * renews this process's lease, if it has attempts in flight. Returns 1 if
 * it has (call again within a few seconds), 0 if not or if the backend
 * needs no lease, -1 on failure. */
int journal_keepalive(struct journal *j);

/* For a backend shared by machines (Redis): the key secret stored in it,
 * stored as proposal by this call if it held none (so the first machine's
 * proposal is everybody's). Returns 0 with it in out, 1 if the backend
 * keeps no secret (a file), or -1. */
int journal_shared_secret(struct journal *j, const char *proposal, char *out,
                          size_t size);

/* Opens j's connection now if it is closed (after fork), so that the
 * files it opens get their fd numbers in the caller's thread, at a time
 * the caller chooses. Returns 0 or -1. */
int journal_ping(struct journal *j);

/* The text of this thread's last failed call on j, for warnings ("" if
 * none). Per thread, so another thread's failure never replaces it. */
const char *journal_error(const struct journal *j);
/* Whether that failure was another process keeping j locked too long
 * (worth trying again later), not something wrong with the call. */
int journal_busy(const struct journal *j);

#endif
