/* journal_queue.c - queued journal writes and their writer thread. See
 * journal_queue.h. */
#include "journal_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "claim_table.h"
#include "clock.h"
#include "hooks.h"
#include "shim.h"

/* Busy waits (JOURNAL_BUSY_TIMEOUT_MS each) before a batch is given up. */
#define WRITE_TRIES 5
/* A batch is written once this many rows are queued, or GATHER_MS after
 * its first: a commit costs the same for one row as for hundreds, and a
 * busy client would otherwise wake the writer, and commit, per row. */
#define BATCH_FULL 256
#define GATHER_MS 2
/* An attempt whose outcome has not come yet is held back from its batch
 * for up to HOLD_MS, so that one insert of the finished row replaces an
 * insert, an index entry for the pending row, and an update: for a fast
 * server, most of what a row costs. A slower answer finds its row written
 * pending, as before. Exit and fork write held rows at once. */
#define HOLD_MS 100
/* Rows queued at most: past this, the thread that queues waits for the
 * writer. Under more load than the journal can take, requests slow down
 * to its pace rather than rows being dropped or memory growing. */
#define QUEUE_MAX 4096
/* How often the writer renews this process's lease on its attempts in
 * flight, for a journal that keeps one (journal_keepalive: Redis's lasts
 * 15 s), while the process may have any. */
#define KEEPALIVE_MS 5000
/* The longest an exiting process waits for its rows, however busy the
 * journal (the wait ends sooner when the writer stops making progress). */
#define FLUSH_MAX_MS 30000

struct journal_ticket {
    int refs;                  /* atomic: the caller's, and each queued op's */
    int64_t id;                /* atomic: the row, once written (0: not yet,
                                  or never: its batch failed) */
    int outcome_queued;        /* atomic: its FINISH or ANSWER is queued */
    int claimed;               /* holds claim until its row is written */
    struct claim_ref claim;
    unsigned long batch;       /* writer only: the batch that writes the row */
    int index;                 /*   and its place there */
};

struct queued {
    enum journal_op_kind kind;
    struct journal_ticket *ticket;
    struct journal_attempt attempt;   /* BEGIN: strings point into text */
    char *text;
    int64_t queued_ms;                /* BEGIN: CLOCK_MONOTONIC */
    enum journal_outcome outcome;
    int status;
    int64_t duration_ms;
    char *answer;                     /* ANSWER: a copy */
    size_t answer_len;
    int too_large;
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_ready = PTHREAD_COND_INITIALIZER;  /* ops to write */
static pthread_cond_t queue_done = PTHREAD_COND_INITIALIZER;   /* a batch ended */
static struct queued *pending;
static size_t n_pending, cap_pending;
static size_t n_held;          /* pending[0..n_held): held back (HOLD_MS) */
static int64_t held_until_ms;  /*   until then at the latest (monotonic) */
static size_t writing;         /* rows in the batch the writer holds */
static struct queued *writing_batch;   /*   and the batch itself */
static int writer_running;
static struct journal *writer_journal;   /* the writer's own connection */
static int writer_journal_closed;        /* by fork: reopen it (see attach) */
static int flushing;                     /* someone waits: write at once */
static int keepalive_wanted;             /* attempts may be in flight */
static unsigned long long queued_total;  /* rows ever queued, and written */
static unsigned long long written_total; /*   (or given up): for flush */

/* now + ms on CLOCK_REALTIME, which the condition variables use. */
static void deadline_in(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* ---- tickets ---- */

static struct journal_ticket *ticket_new(int64_t id)
{
    struct journal_ticket *t = calloc(1, sizeof(*t));
    if (t) {
        t->refs = 1;
        t->id = id;
        t->index = -1;
    }
    return t;
}

static void ticket_release(struct journal_ticket *t)
{
    if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(t);
}

/* ---- the writer ---- */

static void queued_free(struct queued *q)
{
    ticket_release(q->ticket);
    free(q->text);
    free(q->answer);
}

/* The batch as journal ops: an outcome refers to its row by id once the
 * row exists, or to its BEGIN in this same batch. */
static void to_ops(struct queued *batch, size_t n, unsigned long seq, struct journal_op *ops)
{
    for (size_t i = 0; i < n; i++) {
        struct queued *q = &batch[i];
        struct journal_ticket *t = q->ticket;
        ops[i] = (struct journal_op){
            .kind = q->kind, .attempt = q->attempt, .ref = -1, .outcome = q->outcome,
            .status = q->status, .duration_ms = q->duration_ms, .answer = q->answer,
            .answer_len = q->answer_len, .too_large = q->too_large,
        };
        if (q->kind == JOURNAL_OP_BEGIN) {
            t->batch = seq;
            t->index = (int)i;
        } else if (t->batch == seq && t->index >= 0 && q->kind == JOURNAL_OP_FINISH) {
            /* Its row is written in this batch: written finished, one
             * write instead of an insert and an update. */
            struct journal_op *row = &ops[t->index];
            row->attempt.outcome = q->outcome;
            row->status = q->status;
            row->duration_ms = q->duration_ms;
            ops[i].id = 0;   /* nothing left to do */
        } else if (t->batch == seq && t->index >= 0) {
            /* An answer: its outcome, too, is written with the row. */
            struct journal_op *row = &ops[t->index];
            row->attempt.outcome = JOURNAL_COMPLETED;
            row->status = q->status;
            row->duration_ms = q->duration_ms;
            ops[i].ref = t->index;
        } else {
            ops[i].id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
        }
    }
}

/* A batch that fails for good (not a busy journal: one row it cannot
 * take) goes again one op at a time, so one bad row costs only itself. */
static void apply_one_by_one(struct journal *j, struct journal_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].ref >= 0) {
            ops[i].id = ops[ops[i].ref].id;
            ops[i].ref = -1;
        }
        journal_apply(j, &ops[i], 1);
    }
}

static void write_batch(struct queued *batch, size_t n, unsigned long seq)
{
    struct journal_op *ops = malloc(n * sizeof(*ops));
    /* Without a connection of its own (it could not be opened), the
     * writer uses the process's: slower, but nothing is lost. */
    struct journal *j = writer_journal ? writer_journal : shim_journal_if_open();
    if (ops && j) {
        to_ops(batch, n, seq, ops);
        /* Under load another process may hold the write lock past one
         * busy wait: the rows are tried again rather than dropped. */
        int tries = 0, rc;
        while ((rc = journal_apply(j, ops, n)) != 0 && ++tries < WRITE_TRIES)
            ;
        if (rc != 0) {
            shim_journal_trouble(journal_error(j));
            if (!journal_busy(j))
                apply_one_by_one(j, ops, n);
        }
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == JOURNAL_OP_BEGIN) {
                __atomic_store_n(&batch[i].ticket->id, ops[i].id, __ATOMIC_RELEASE);
                batch[i].ticket->index = -1;
            }
    }
    free(ops);
    /* A claimed row is the claim once written: its slot is released. One
     * never written leaves the slot held by no one: to a twin, an attempt
     * whose outcome is unknown. */
    for (size_t i = 0; i < n; i++) {
        struct journal_ticket *t = batch[i].ticket;
        if (batch[i].kind != JOURNAL_OP_BEGIN || !t->claimed)
            continue;
        if (__atomic_load_n(&t->id, __ATOMIC_ACQUIRE))
            claim_table_release(&t->claim);
        else
            claim_table_abandon(&t->claim);
    }
}

/* Under queue_lock, which it lets go meanwhile: renews the lease, and
 * asks again later only if the journal says attempts are in flight (or
 * could not be asked). */
static void renew_lease(void)
{
    pthread_mutex_unlock(&queue_lock);
    struct journal *j = writer_journal ? writer_journal : shim_journal_if_open();
    int more = j ? journal_keepalive(j) : 0;
    pthread_mutex_lock(&queue_lock);
    keepalive_wanted = more != 0;
}

/* Under queue_lock: waits until rows are queued (or held ones are due),
 * then lets more gather. */
static void wait_for_batch(void)
{
    while (n_pending == n_held && !(n_held > 0 && flushing)) {
        if (n_held == 0 && keepalive_wanted) {
            struct timespec due;
            deadline_in(&due, KEEPALIVE_MS);
            if (pthread_cond_timedwait(&queue_ready, &queue_lock, &due) == ETIMEDOUT)
                renew_lease();
            continue;
        }
        if (n_held == 0) {
            pthread_cond_wait(&queue_ready, &queue_lock);
            continue;
        }
        int64_t left = held_until_ms - clock_ms(CLOCK_MONOTONIC);
        struct timespec due;
        deadline_in(&due, left > 0 ? (int)left : 0);
        if (left <= 0 ||
            pthread_cond_timedwait(&queue_ready, &queue_lock, &due) == ETIMEDOUT)
            break;
    }
    struct timespec until;
    deadline_in(&until, GATHER_MS);
    while (n_pending < BATCH_FULL && !flushing)
        if (pthread_cond_timedwait(&queue_ready, &queue_lock, &until) == ETIMEDOUT)
            break;
}

/* Under queue_lock: moves the young attempts of batch whose outcome is
 * not queued yet back to the (empty) queue, ahead of anything queued
 * later; *n becomes what is left to write now. */
static void hold_back(struct queued *batch, size_t *n)
{
    size_t kept = 0, held = 0;
    int64_t now = clock_ms(CLOCK_MONOTONIC);
    held_until_ms = INT64_MAX;
    for (size_t i = 0; i < *n; i++) {
        struct queued *q = &batch[i];
        int hold = !flushing && q->kind == JOURNAL_OP_BEGIN &&
                   now - q->queued_ms < HOLD_MS &&
                   !__atomic_load_n(&q->ticket->outcome_queued, __ATOMIC_ACQUIRE);
        if (hold && held == 0 && !(pending = malloc(*n * sizeof(*pending))))
            hold = 0;   /* no memory to hold it: written now */
        if (hold) {
            pending[held++] = *q;
            if (q->queued_ms + HOLD_MS < held_until_ms)
                held_until_ms = q->queued_ms + HOLD_MS;
        } else {
            batch[kept++] = *q;
        }
    }
    n_pending = n_held = held;
    cap_pending = held ? *n : 0;
    *n = kept;
}

static void *writer(void *arg)
{
    (void)arg;
    hooks_in_shim = 1;   /* its I/O is the shim's own */
    unsigned long seq = 0;
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        wait_for_batch();
        struct queued *batch = pending;
        size_t n = n_pending;
        pending = NULL;
        n_pending = cap_pending = n_held = 0;
        hold_back(batch, &n);
        writing = n;
        writing_batch = batch;
        pthread_mutex_unlock(&queue_lock);

        write_batch(batch, n, ++seq);
        for (size_t i = 0; i < n; i++)
            queued_free(&batch[i]);
        free(batch);

        pthread_mutex_lock(&queue_lock);
        writing = 0;
        writing_batch = NULL;
        written_total += n;
        keepalive_wanted = 1;
        pthread_cond_broadcast(&queue_done);
        pthread_mutex_unlock(&queue_lock);
    }
    return NULL;
}

/* Under queue_lock. */
static int start_writer(void)
{
    if (!writer_running)
        writer_running = shim_start_thread(writer, NULL) == 0;
    return writer_running ? 0 : -1;
}

/* Queues q (taken over). When nothing can be queued, q is written here,
 * synchronously, so that no row is lost for want of a thread. */
static void enqueue(struct queued *q)
{
    int e = errno;
    if (__atomic_exchange_n(&writer_journal_closed, 0, __ATOMIC_ACQ_REL) && writer_journal)
        journal_ping(writer_journal);   /* here, not in the writer: see attach */
    pthread_mutex_lock(&queue_lock);
    int ok = start_writer() == 0;
    while (ok && n_pending >= QUEUE_MAX)
        pthread_cond_wait(&queue_done, &queue_lock);
    if (ok && n_pending == cap_pending) {
        size_t cap = cap_pending ? 2 * cap_pending : 64;
        struct queued *grown = realloc(pending, cap * sizeof(*grown));
        if (grown) {
            pending = grown;
            cap_pending = cap;
        } else {
            ok = 0;
        }
    }
    if (ok) {
        pending[n_pending++] = *q;
        queued_total++;
        if (n_pending == n_held + 1 || n_pending == BATCH_FULL)
            pthread_cond_signal(&queue_ready);
    }
    pthread_mutex_unlock(&queue_lock);
    if (!ok) {
        /* The same writer code, on this thread: slower, but recorded. */
        pthread_mutex_lock(&queue_lock);
        while (writing)
            pthread_cond_wait(&queue_done, &queue_lock);
        writing = 1;
        pthread_mutex_unlock(&queue_lock);
        write_batch(q, 1, 0);
        queued_free(q);
        pthread_mutex_lock(&queue_lock);
        writing = 0;
        pthread_cond_broadcast(&queue_done);
        pthread_mutex_unlock(&queue_lock);
    }
    errno = e;
}

/* ---- the interface ---- */

void journal_queue_attach(struct journal *j)
{
    pthread_mutex_lock(&queue_lock);
    if (!writer_journal)
        writer_journal = j;
    else
        journal_close(j);   /* another thread attached one first */
    pthread_mutex_unlock(&queue_lock);
}

static char *copy_strings(struct journal_attempt *a)
{
    const char **fields[] = { &a->exe, &a->method, &a->host, &a->path, &a->key,
                              &a->fingerprint };
    size_t len = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        len += strlen(*fields[i] ? *fields[i] : "") + 1;
    char *text = malloc(len), *p = text;
    for (size_t i = 0; text && i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t n = strlen(*fields[i] ? *fields[i] : "") + 1;
        memcpy(p, *fields[i] ? *fields[i] : "", n);
        *fields[i] = p;
        p += n;
    }
    return text;
}

/* Queues a's row; claim: the slot its row releases once written. */
static struct journal_ticket *begin(const struct journal_attempt *a,
                                    const struct claim_ref *claim)
{
    struct journal_ticket *t = ticket_new(0);
    struct queued q = { .kind = JOURNAL_OP_BEGIN, .ticket = t, .attempt = *a,
                        .queued_ms = clock_ms(CLOCK_MONOTONIC) };
    if (!t || !(q.text = copy_strings(&q.attempt))) {
        free(t);
        return NULL;
    }
    t->refs = 2;   /* the caller's and the op's */
    if (claim) {
        t->claimed = 1;
        t->claim = *claim;
    }
    enqueue(&q);
    return t;
}

struct journal_ticket *journal_queue_begin(const struct journal_attempt *a)
{
    return begin(a, NULL);
}

struct journal_ticket *journal_queue_begin_claimed(const struct journal_attempt *a,
                                                  const struct claim_ref *claim)
{
    return begin(a, claim);
}

struct journal_ticket *journal_queue_ticket(int64_t id)
{
    /* Its row is in flight, written by the claim: the writer keeps the
     * process's lease on it, even before it has rows of its own. Woken
     * only if it was not keeping one already: not once per request. */
    pthread_mutex_lock(&queue_lock);
    if (!keepalive_wanted) {
        keepalive_wanted = 1;
        if (start_writer() == 0)
            pthread_cond_signal(&queue_ready);
    }
    pthread_mutex_unlock(&queue_lock);
    return ticket_new(id);
}

void journal_queue_finish(struct journal_ticket *t, enum journal_outcome outcome,
                          int status, int64_t duration_ms)
{
    if (!t)
        return;
    struct queued q = { .kind = JOURNAL_OP_FINISH, .ticket = t, .outcome = outcome,
                        .status = status, .duration_ms = duration_ms };
    __atomic_store_n(&t->outcome_queued, 1, __ATOMIC_RELEASE);
    enqueue(&q);
}

void journal_queue_answer(struct journal_ticket *t, int status, int64_t duration_ms,
                          const char *answer, size_t len, int too_large)
{
    if (!t)
        return;
    struct queued q = { .kind = JOURNAL_OP_ANSWER, .ticket = t, .status = status,
                        .duration_ms = duration_ms, .answer_len = len,
                        .too_large = too_large };
    if (!too_large && !(q.answer = malloc(len ? len : 1))) {
        /* No memory for the copy: the outcome without the bytes, which a
         * retry answers with 409 rather than a replay. */
        q.too_large = 1;
    } else if (!too_large) {
        memcpy(q.answer, answer, len);
    }
    __atomic_store_n(&t->outcome_queued, 1, __ATOMIC_RELEASE);
    enqueue(&q);
}

void journal_queue_drop(struct journal_ticket *t)
{
    ticket_release(t);
}

static size_t flush_locked(int timeout_ms);

/* The destructor may run from a signal handler that interrupted a thread
 * holding the queue's lock: the lock is waited for briefly, never for
 * good. */
size_t journal_queue_flush(int timeout_ms)
{
    struct timespec until;
    deadline_in(&until, 100);
    if (pthread_mutex_timedlock(&queue_lock, &until) != 0)
        return 0;
    size_t left = flush_locked(timeout_ms);
    pthread_mutex_unlock(&queue_lock);
    return left;
}

void journal_queue_flush_at_exit(int timeout_ms)
{
    if (pthread_mutex_trylock(&queue_lock) != 0)
        return;
    flush_locked(timeout_ms);
    pthread_mutex_unlock(&queue_lock);
}

/* Under queue_lock. Waits for the rows queued so far (not those other
 * threads keep queueing meanwhile), for as long as the writer makes
 * progress: a batch written within timeout_ms renews the wait, up to
 * FLUSH_MAX_MS in all. Returns how many of them are not written. */
static size_t flush_locked(int timeout_ms)
{
    unsigned long long target = queued_total;
    struct timespec deadline, cap;
    deadline_in(&deadline, timeout_ms);
    deadline_in(&cap, FLUSH_MAX_MS);
    flushing++;
    pthread_cond_signal(&queue_ready);
    unsigned long long seen = written_total;
    while (writer_running && written_total < target) {
        if (pthread_cond_timedwait(&queue_done, &queue_lock, &deadline) == ETIMEDOUT)
            break;
        if (written_total > seen)
            deadline_in(&deadline, timeout_ms);
        seen = written_total;
        if (deadline.tv_sec > cap.tv_sec)
            deadline = cap;
    }
    flushing--;
    return written_total < target ? (size_t)(target - written_total) : 0;
}

void journal_queue_abandon_claims(void)
{
    struct timespec until;
    deadline_in(&until, 100);
    if (pthread_mutex_timedlock(&queue_lock, &until) != 0)
        return;
    /* Queued, and in the batch the writer holds (it may be stuck on a
     * locked journal): a release that comes after all then finds the slot
     * changed and leaves it. */
    struct queued *lists[2] = { pending, writing_batch };
    size_t counts[2] = { n_pending, writing_batch ? writing : 0 };
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (lists[l][i].kind == JOURNAL_OP_BEGIN && lists[l][i].ticket->claimed)
                claim_table_abandon(&lists[l][i].ticket->claim);
    pthread_mutex_unlock(&queue_lock);
}

/* The writer's connection is closed around fork like every journal's
 * (journal_fork_prepare says why). The child starts with an empty queue
 * and no writer: the parent's queued rows are the parent's to write. */
void journal_queue_fork(enum fork_phase phase)
{
    if (phase == FORK_PREPARE) {
        pthread_mutex_lock(&queue_lock);
        if (writer_journal)
            journal_fork_prepare(writer_journal);
    } else if (phase == FORK_PARENT) {
        if (writer_journal)
            journal_fork_parent(writer_journal);   /* reopened here */
        pthread_mutex_unlock(&queue_lock);
    } else {
        if (writer_journal)
            journal_fork_child(writer_journal);
        writer_journal_closed = 1;   /* reopened by the first enqueue */
        flushing = 0;
        pthread_mutex_init(&queue_lock, NULL);
        pthread_cond_init(&queue_ready, NULL);
        pthread_cond_init(&queue_done, NULL);
        pending = NULL;        /* the parent's: left, not freed */
        n_pending = cap_pending = n_held = 0;
        writing = 0;
        writing_batch = NULL;
        writer_running = 0;
        keepalive_wanted = 0;   /* the parent's attempts are not the child's */
        /* The parent's rows counted as queued are not the child's to
         * write: left counted, the child's exit would wait for them. */
        queued_total = written_total = 0;
    }
}
