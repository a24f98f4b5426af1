/* journal_queue.c - queued journal writes and their writer thread. See
 * journal_queue.h. */
#include "journal_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hooks.h"
#include "shim.h"

/* Busy waits (JOURNAL_BUSY_TIMEOUT_MS each) before a batch is given up. */
#define WRITE_TRIES 5
/* A batch is written once this many rows are queued, or GATHER_MS after
 * its first: a commit costs the same for one row as for hundreds, and a
 * busy client would otherwise wake the writer, and commit, per row. */
#define BATCH_FULL 256
#define GATHER_MS 2
/* Rows queued at most: past this, the thread that queues waits for the
 * writer. Under more load than the journal can take, requests slow down
 * to its pace rather than rows being dropped or memory growing. */
#define QUEUE_MAX 4096

struct journal_ticket {
    int refs;                  /* atomic: the caller's, and each queued op's */
    int64_t id;                /* atomic: the row, once written (0: not yet,
                                  or never: its batch failed) */
    unsigned long batch;       /* writer only: the batch that writes the row */
    int index;                 /*   and its place there */
};

struct queued {
    enum journal_op_kind kind;
    struct journal_ticket *ticket;
    struct journal_attempt attempt;   /* BEGIN: strings point into text */
    char *text;
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
static size_t writing;         /* rows in the batch the writer holds */
static int writer_running;
static struct journal *writer_journal;   /* the writer's own connection */
static int writer_journal_closed;        /* by fork: reopen it (see attach) */
static int flushing;                     /* someone waits: write at once */

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
            ops[i].ref = t->index;
        } else {
            ops[i].id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
        }
    }
}

static void write_batch(struct queued *batch, size_t n, unsigned long seq)
{
    struct journal_op *ops = malloc(n * sizeof(*ops));
    if (ops && writer_journal) {
        to_ops(batch, n, seq, ops);
        /* Under load another process may hold the write lock past one
         * busy wait: the rows are tried again rather than dropped. */
        int tries = 0, rc;
        while ((rc = journal_apply(writer_journal, ops, n)) != 0 && ++tries < WRITE_TRIES)
            ;
        if (rc != 0)
            shim_journal_trouble(journal_error(writer_journal));
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == JOURNAL_OP_BEGIN) {
                __atomic_store_n(&batch[i].ticket->id, ops[i].id, __ATOMIC_RELEASE);
                batch[i].ticket->index = -1;
            }
    }
    free(ops);
}

/* Under queue_lock: waits until rows are queued, then lets more gather. */
static void wait_for_batch(void)
{
    while (n_pending == 0)
        pthread_cond_wait(&queue_ready, &queue_lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += GATHER_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (n_pending < BATCH_FULL && !flushing)
        if (pthread_cond_timedwait(&queue_ready, &queue_lock, &until) == ETIMEDOUT)
            break;
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
        n_pending = cap_pending = 0;
        writing = n;
        pthread_mutex_unlock(&queue_lock);

        write_batch(batch, n, ++seq);
        for (size_t i = 0; i < n; i++)
            queued_free(&batch[i]);
        free(batch);

        pthread_mutex_lock(&queue_lock);
        writing = 0;
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
        if (n_pending == 1 || n_pending == BATCH_FULL)
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

struct journal_ticket *journal_queue_begin(const struct journal_attempt *a)
{
    struct journal_ticket *t = ticket_new(0);
    struct queued q = { .kind = JOURNAL_OP_BEGIN, .ticket = t, .attempt = *a };
    if (!t || !(q.text = copy_strings(&q.attempt))) {
        free(t);
        return NULL;
    }
    t->refs = 2;   /* the caller's and the op's */
    enqueue(&q);
    return t;
}

struct journal_ticket *journal_queue_ticket(int64_t id)
{
    return ticket_new(id);
}

void journal_queue_finish(struct journal_ticket *t, enum journal_outcome outcome,
                          int status, int64_t duration_ms)
{
    if (!t)
        return;
    struct queued q = { .kind = JOURNAL_OP_FINISH, .ticket = t, .outcome = outcome,
                        .status = status, .duration_ms = duration_ms };
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
    enqueue(&q);
}

void journal_queue_drop(struct journal_ticket *t)
{
    ticket_release(t);
}

static void flush_locked(int timeout_ms);

size_t journal_queue_flush(int timeout_ms)
{
    pthread_mutex_lock(&queue_lock);
    flush_locked(timeout_ms);
    size_t left = n_pending + writing;
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

/* Under queue_lock. Waits while the writer makes progress: a batch that
 * ends within timeout_ms renews the wait, so a busy journal delays the
 * exit but loses nothing; a writer stuck for timeout_ms ends the wait. */
static void flush_locked(int timeout_ms)
{
    struct timespec deadline;
    deadline_in(&deadline, timeout_ms);
    flushing++;
    pthread_cond_signal(&queue_ready);
    size_t left = n_pending + writing;
    while (writer_running && left) {
        if (pthread_cond_timedwait(&queue_done, &queue_lock, &deadline) == ETIMEDOUT)
            break;
        if (n_pending + writing < left)
            deadline_in(&deadline, timeout_ms);
        left = n_pending + writing;
    }
    flushing--;
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
            journal_fork_parent(writer_journal);
        writer_journal_closed = 1;
        pthread_mutex_unlock(&queue_lock);
    } else {
        if (writer_journal)
            journal_fork_child(writer_journal);
        writer_journal_closed = 1;
        pthread_mutex_init(&queue_lock, NULL);
        pthread_cond_init(&queue_ready, NULL);
        pthread_cond_init(&queue_done, NULL);
        pending = NULL;        /* the parent's: left, not freed */
        n_pending = cap_pending = 0;
        writing = 0;
        writer_running = 0;
    }
}
