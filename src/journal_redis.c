/* journal_redis.c - the journal in a Redis server, shared by every machine
 * that names it: RETRYSAFE_JOURNAL=redis://[user:password@]host:port[/db].
 * See journal.h for what a journal does; journal_redis_lua.c for what is
 * stored and the scripts that store it; journal_redis_log.c for reading
 * the attempt log back.
 *
 * Fail open, always: a Redis server that is down, slow or restarting must
 * cost a request its record, never the request. Every command waits at
 * most REDIS_COMMAND_TIMEOUT_MS (a connection REDIS_CONNECT_TIMEOUT_MS);
 * after a failure the connection is dropped and, for REDIS_RETRY_MS
 * (doubled after each slow failure in a row, up to REDIS_RETRY_MAX_MS), calls
 * fail at once rather than each wait again; the next call after that
 * connects anew. A connection the server closed while it sat idle (its
 * `timeout` setting) is noticed before use and replaced at once. The
 * shim warns once and goes on tagging.
 *
 * An attempt in flight belongs to its process through a lease (P owner:
 * TOKEN, REDIS_LEASE_MS) that every write renews, and that the writer
 * thread renews while the process has attempts in flight (journal_
 * keepalive). Another machine cannot ask the kernel whether a pid lives:
 * an attempt whose owner's lease lapsed is one whose outcome is unknown.
 *
 * Like every backend, this sees one call at a time (journal.c).
 */
#include "journal_redis.h"
#include "clock.h"
#include "redis_url.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum {
    REDIS_CONNECT_TIMEOUT_MS = 1000,
    REDIS_COMMAND_TIMEOUT_MS = JOURNAL_BUSY_TIMEOUT_MS,
    REDIS_RETRY_MS = 3000,
    REDIS_RETRY_MAX_MS = 30000,
    REDIS_LEASE_MS = 15000,
    /* How long answers and keys are kept when the attempt names no
     * window (the tool's writes). */
    REDIS_DEFAULT_TTL_MS = 24 * 3600 * 1000,
    /* How often guard mode's claim looks again when its record lost a
     * race with another writer of the same key, before it gives up. */
    REDIS_CLAIM_TRIES = 50,
    /* The schema of the keys (journal_redis_lua.c). */
    REDIS_SCHEMA = 1,
};

/* A window's TTL is at most this (ten years): the scripts write every
 * number with Lua's tostring(), exact only below 10^14. */
static const int64_t REDIS_MAX_TTL_MS = (int64_t)10 * 365 * 24 * 3600 * 1000;

struct rd {
    struct redis_url url;
    char where[320];          /* the location without credentials */
    redisContext *c;          /* NULL: not connected */
    char sha[REDIS_SCRIPTS][41];
    int64_t epoch_proposal;   /* for a server that has none: see epoch_proposal */
    int64_t asked_ms;         /* when the exchange now ending began (monotonic) */
};

/* ---- this process ---- */

/* Who owns this process's attempts in flight: a random token, new in each
 * process (a pid is not unique across machines, or after fork). */
static struct {
    pthread_mutex_t lock;
    pid_t pid;
    char token[33];
} self = { PTHREAD_MUTEX_INITIALIZER, 0, "" };

static void owner_token(char out[33])
{
    pthread_mutex_lock(&self.lock);
    if (self.pid != getpid()) {
        unsigned char raw[16];
        if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
            /* Unique enough: no two live processes of a machine share a
             * pid, and the time tells machines apart as well as it can. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t a = (uint64_t)getpid(), b = (uint64_t)ts.tv_sec * 1000000000u +
                                                 (uint64_t)ts.tv_nsec;
            memcpy(raw, &a, 8);
            memcpy(raw + 8, &b, 8);
        }
        for (int i = 0; i < 16; i++)
            snprintf(self.token + 2 * i, 3, "%02x", raw[i]);
        self.pid = getpid();
    }
    memcpy(out, self.token, 33);
    pthread_mutex_unlock(&self.lock);
}

/* ---- failures ---- */

/* When the server last failed, for every connection of the process to
 * it (the secret's, the journal's, the writer's): one that just failed
 * is not asked again by another before the rest is over: REDIS_RETRY_MS,
 * doubled after each slow failure in a row (a server that accepts and
 * does not answer costs every request a wait), up to REDIS_RETRY_MAX_MS.
 * A quick failure (refused: the server is down) rests REDIS_RETRY_MS, so
 * the journal is back soon after the server is. The
 * server is known by a hash of its location: the shim has one, the tool
 * and the tests may try several. Atomics, not a lock: a fork may come at
 * any time, and a torn pair costs at most one needless wait. */
static int64_t server_retry_at_ms;   /* monotonic */
static int64_t server_failed_ms;     /* when the last failure was counted */
static uint64_t server_resting_hash; /* the server resting */
static int server_failures;          /* in a row */

static uint64_t hash_of(const char *where)
{
    uint64_t h = 14695981039346656037ull;   /* FNV-1a */
    for (; *where; where++)
        h = (h ^ (unsigned char)*where) * 1099511628211ull;
    return h;
}

static int server_resting(const struct rd *r);

static void server_failed(const struct rd *r, int slow)
{
    /* Connections that fail together (the writer's beside a request's)
     * are one failure, not several in a row: so is one whose question
     * was already on its way when another's failure was counted. */
    if (server_resting(r) ||
        r->asked_ms <= __atomic_load_n(&server_failed_ms, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&server_failed_ms, clock_ms(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
    __atomic_store_n(&server_resting_hash, hash_of(r->where), __ATOMIC_RELAXED);
    if (!slow)
        __atomic_store_n(&server_failures, 0, __ATOMIC_RELAXED);
    int n = __atomic_add_fetch(&server_failures, 1, __ATOMIC_RELAXED);
    int64_t rest = (int64_t)REDIS_RETRY_MS << (n < 5 ? n - 1 : 4);
    if (rest > REDIS_RETRY_MAX_MS)
        rest = REDIS_RETRY_MAX_MS;
    __atomic_store_n(&server_retry_at_ms, clock_ms(CLOCK_MONOTONIC) + rest,
                     __ATOMIC_RELAXED);
}

static void server_answered(void)
{
    __atomic_store_n(&server_failures, 0, __ATOMIC_RELAXED);
}

static int server_resting(const struct rd *r)
{
    return __atomic_load_n(&server_resting_hash, __ATOMIC_RELAXED) == hash_of(r->where) &&
           clock_ms(CLOCK_MONOTONIC) < __atomic_load_n(&server_retry_at_ms, __ATOMIC_RELAXED);
}

static int fail_io(struct rd *r, const char *what)
{
    int e = errno;
    const char *why = r->c && r->c->errstr[0] ? r->c->errstr : "connection lost";
    int slow = e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT || e == EINPROGRESS;
    if (r->c && r->c->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK))
        why = "no answer in time";
    journal_fail("%s Redis at %s: %s", what, r->where, why);
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    server_failed(r, slow);
    return -1;
}

/* ---- SIGPIPE ---- */

/* hiredis writes with write(): to a server that closed the connection,
 * that raises SIGPIPE, which kills a host that never asked for it. Around
 * every exchange the signal is blocked, and one raised by our write is
 * taken back before it is unblocked. One the host had pending is left. */
struct pipe_guard {
    sigset_t old;
    int was_pending;
};

static void pipe_guard_on(struct pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

static void pipe_guard_off(struct pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connecting ---- */

static struct timeval ms_to_tv(int ms)
{
    return (struct timeval){ ms / 1000, (ms % 1000) * 1000 };
}

/* A command on a connection being set up: 0 if it answered as expected. */
static int setup_command(struct rd *r, int argc, const char **argv, const char *what)
{
    redisReply *reply = redisCommandArgv(r->c, argc, argv, NULL);
    if (!reply)
        return fail_io(r, what);
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Never quote an AUTH's arguments: only the server's words. */
        rc = journal_fail("%s Redis at %s: %.200s", what, r->where, reply->str);
    }
    freeReplyObject(reply);
    return rc;
}

/* Loads every script in one round trip, keeping their SHA1s. */
static int load_scripts(struct rd *r)
{
    for (int i = 0; i < REDIS_SCRIPTS; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", redis_scripts[i] };
        if (redisAppendCommandArgv(r->c, 3, argv, NULL) != REDIS_OK)
            return fail_io(r, "cannot load scripts into");
    }
    int rc = 0;
    for (int i = 0; i < REDIS_SCRIPTS; i++) {
        void *raw = NULL;
        if (redisGetReply(r->c, &raw) != REDIS_OK)
            return fail_io(r, "cannot load scripts into");
        redisReply *reply = raw;
        if (reply->type == REDIS_REPLY_STRING && reply->len == 40)
            memcpy(r->sha[i], reply->str, 41);
        else if (rc == 0)
            rc = journal_fail("cannot load scripts into Redis at %s: %.200s", r->where,
                              reply->type == REDIS_REPLY_ERROR ? reply->str
                                                               : "unexpected reply");
        freeReplyObject(reply);
    }
    return rc;
}

static int set_once(struct rd *r, const char *name, const char *proposal,
                    char *out, size_t size);
static int64_t epoch_proposal(void);

/* The keys under REDIS_PREFIX must be a journal this code understands:
 * its schema, stored once by the first process to connect. */
static int check_schema(struct rd *r)
{
    char mine[16], theirs[32];
    snprintf(mine, sizeof(mine), "%d", REDIS_SCHEMA);
    if (set_once(r, "version", mine, theirs, sizeof(theirs)) < 0)
        return -1;
    if (strcmp(theirs, mine) == 0)
        return 0;
    return journal_fail("the journal in Redis at %s was written by another retrysafe "
                        "(schema %.20s; this one knows %s)", r->where, theirs, mine);
}

static int connect_now(struct rd *r)
{
    const char *what = "cannot connect to";
    r->asked_ms = clock_ms(CLOCK_MONOTONIC);
    r->epoch_proposal = epoch_proposal();
    r->c = redisConnectWithTimeout(r->url.host, r->url.port,
                                   ms_to_tv(REDIS_CONNECT_TIMEOUT_MS));
    if (!r->c) {
        journal_fail("%s Redis at %s: out of memory", what, r->where);
        server_failed(r, 0);
        return -1;
    }
    if (r->c->err)
        return fail_io(r, what);
    /* Never inherited by a program the host executes. */
    fcntl(r->c->fd, F_SETFD, fcntl(r->c->fd, F_GETFD) | FD_CLOEXEC);
    if (redisSetTimeout(r->c, ms_to_tv(REDIS_COMMAND_TIMEOUT_MS)) != REDIS_OK)
        return fail_io(r, what);
    int rc = 0;
    if (r->url.password[0]) {
        const char *with_user[] = { "AUTH", r->url.user, r->url.password };
        const char *alone[] = { "AUTH", r->url.password };
        rc = r->url.user[0] ? setup_command(r, 3, with_user, "cannot log in to")
                            : setup_command(r, 2, alone, "cannot log in to");
    }
    char db[16];
    snprintf(db, sizeof(db), "%d", r->url.db);
    const char *select[] = { "SELECT", db };
    if (rc == 0 && r->url.db)
        rc = setup_command(r, 2, select, "cannot select the database of");
    if (rc == 0)
        rc = load_scripts(r);
    if (rc == 0)
        rc = check_schema(r);
    if (rc == 0)
        server_answered();
    if (rc < 0 && r->c) {
        /* Refused (a wrong password, a foreign journal): asking again at
         * once would be refused the same way. */
        redisFree(r->c);
        r->c = NULL;
        server_failed(r, 0);
    }
    return rc;
}

/* Whether the server closed the connection while it sat idle (its
 * `timeout`, a restart), or left bytes nobody asked for: found before a
 * command is sent into it and lost. One system call, no round trip. */
static int closed_by_server(const struct rd *r)
{
    char byte;
    ssize_t n = recv(r->c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int connected(struct rd *r)
{
    if (r->c && !closed_by_server(r))
        return 0;
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    if (server_resting(r))
        return journal_fail("Redis at %s failed moments ago (the first failure "
                            "says why); not asking it again yet", r->where);
    return connect_now(r);
}

/* ---- commands ---- */

/* The command's reply, an error reply included; NULL when the exchange
 * failed (reported). */
static redisReply *exchange(struct rd *r, int argc, const char **argv,
                            const size_t *lens, const char *what)
{
    struct pipe_guard g;
    pipe_guard_on(&g);
    redisReply *reply = NULL;
    if (connected(r) == 0) {
        r->asked_ms = clock_ms(CLOCK_MONOTONIC);
        reply = redisCommandArgv(r->c, argc, argv, lens);
        if (!reply)
            fail_io(r, what);
    }
    pipe_guard_off(&g);
    return reply;
}

static redisReply *refused(struct rd *r, redisReply *reply, const char *what)
{
    journal_fail("%s Redis at %s: %.300s", what, r->where, reply->str);
    freeReplyObject(reply);
    return NULL;
}

redisReply *rd_command(struct rd *r, int argc, const char **argv, const size_t *lens,
                       const char *what)
{
    redisReply *reply = exchange(r, argc, argv, lens, what);
    return reply && reply->type == REDIS_REPLY_ERROR ? refused(r, reply, what) : reply;
}

/* A command's arguments, built up: texts (borrowed) and numbers (kept
 * here). A number's pointer is set by args_ready, once the arrays stop
 * moving. */
struct args {
    const char **v;
    size_t *len;
    char (*num)[24];
    int n, cap;
};

static int args_room(struct args *a, int more)
{
    if (a->n + more <= a->cap)
        return 0;
    int cap = a->cap ? a->cap : 32;
    while (cap < a->n + more)
        cap *= 2;
    const char **v = realloc(a->v, (size_t)cap * sizeof(*v));
    if (v)
        a->v = v;
    size_t *len = v ? realloc(a->len, (size_t)cap * sizeof(*len)) : NULL;
    if (len)
        a->len = len;
    char (*num)[24] = len ? realloc(a->num, (size_t)cap * sizeof(*num)) : NULL;
    if (!num)
        return journal_fail("cannot write to Redis: out of memory");
    a->num = num;
    a->cap = cap;
    return 0;
}

static void args_ready(struct args *a)
{
    for (int i = 0; i < a->n; i++)
        if (!a->v[i])
            a->v[i] = a->num[i];
}

static void args_free(struct args *a)
{
    free(a->v);
    free(a->len);
    free(a->num);
}

static void add_bytes(struct args *a, const char *s, size_t len)
{
    a->v[a->n] = s ? s : "";
    a->len[a->n++] = s ? len : 0;
}

static void add_text(struct args *a, const char *s)
{
    add_bytes(a, s, s ? strlen(s) : 0);
}

static void add_int(struct args *a, int64_t v)
{
    int n = snprintf(a->num[a->n], sizeof(a->num[0]), "%" PRId64, v);
    a->v[a->n] = NULL;
    a->len[a->n++] = (size_t)n;
}

/* ---- scripts ---- */

/* An epoch for a server that has none (journal_redis_lua.c): random,
 * 1 to 2^20 - 1, so that it fits an id's top bits (rd_id_of). Drawn once
 * per connection, not per script: it matters only the rare time the
 * server's data is gone. */
static int64_t epoch_proposal(void)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (unsigned)clock_ms(CLOCK_MONOTONIC) ^ (unsigned)getpid() << 8;
    v &= (1u << 20) - 1;
    return v ? v : 1;
}

/* Starts a script's arguments: EVALSHA, its SHA1, no KEYS, the prefix,
 * the log's cap and r's epoch proposal (journal_redis_lua.c). */
static int script_args(const struct rd *r, struct args *a, int more)
{
    if (args_room(a, 6 + more) < 0)
        return -1;
    add_text(a, "EVALSHA");
    add_text(a, "");          /* the SHA1: known only once connected */
    add_text(a, "0");
    add_text(a, REDIS_PREFIX);
    add_text(a, REDIS_LOG_CAP);
    add_int(a, r->epoch_proposal);
    return 0;
}

/* Runs script with a's arguments. A server that lost its scripts (a
 * restart, SCRIPT FLUSH) gets them again, once. */
static redisReply *run_script(struct rd *r, enum redis_script script, struct args *a,
                              const char *what)
{
    args_ready(a);
    for (int tries = 0;; tries++) {
        if (connected(r) < 0)
            return NULL;
        a->v[1] = r->sha[script];
        a->len[1] = strlen(r->sha[script]);
        redisReply *reply = exchange(r, a->n, a->v, a->len, what);
        if (!reply || reply->type != REDIS_REPLY_ERROR)
            return reply;
        if (tries > 0 || strncmp(reply->str, "NOSCRIPT", 8) != 0)
            return refused(r, reply, what);
        freeReplyObject(reply);
        struct pipe_guard g;
        pipe_guard_on(&g);
        int rc = load_scripts(r);
        pipe_guard_off(&g);
        if (rc < 0)
            return NULL;
    }
}

static int64_t integer_at(const redisReply *reply, size_t i)
{
    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
        return 0;
    const redisReply *e = reply->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static int unexpected(struct rd *r, redisReply *reply, const char *what)
{
    if (reply)
        freeReplyObject(reply);
    return journal_fail("%s Redis at %s: unexpected reply", what, r->where);
}

static int set_once(struct rd *r, const char *name, const char *proposal,
                    char *out, size_t size)
{
    const char *what = "cannot read the journal in";
    struct args a = { 0 };
    redisReply *reply = NULL;
    if (script_args(r, &a, 2) == 0) {
        add_text(&a, name);
        add_text(&a, proposal);
        reply = run_script(r, REDIS_SET_ONCE, &a, what);
    }
    args_free(&a);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_STRING || reply->len >= size)
        return unexpected(r, reply, what);
    memcpy(out, reply->str, reply->len + 1);
    freeReplyObject(reply);
    return 0;
}

/* ---- open, close ---- */

static void rd_close(void *state)
{
    struct rd *r = state;
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r);
}

/* In a forked child: the connection is the parent's. Its socket is
 * closed here without a word on it (the parent's stays open), and the
 * child connects anew at its first call. */
static void rd_drop_in_child(void *state)
{
    /* Just forked, one thread: the token's lock may have been held by a
     * thread of the parent, and the token is the parent's anyway. */
    self.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    self.pid = 0;
    struct rd *r = state;
    if (r && r->c) {
        close(r->c->fd);
        r->c->fd = -1;
        redisFree(r->c);
        r->c = NULL;
    }
    rd_close(r);
}

static void *rd_open(const char *location, int create)
{
    (void)create;   /* a Redis journal is made by its first write */
    struct rd *r = calloc(1, sizeof(*r));
    char err[300];
    if (!r) {
        journal_fail("cannot open the journal: out of memory");
        return NULL;
    }
    if (redis_url_parse(location, &r->url, err, sizeof(err)) < 0) {
        journal_fail("%s", err);
        rd_close(r);
        return NULL;
    }
    redis_url_describe(&r->url, r->where, sizeof(r->where));
    if (r->url.tls) {
        journal_fail("cannot use %s: rediss:// needs hiredis with TLS (1.0 or "
                     "later); this build has hiredis %d.%d, without it", r->where,
                     HIREDIS_MAJOR, HIREDIS_MINOR);
        rd_close(r);
        return NULL;
    }
    struct pipe_guard g;
    pipe_guard_on(&g);
    int rc = connected(r);
    pipe_guard_off(&g);
    if (rc < 0) {
        rd_close(r);
        return NULL;
    }
    return r;
}

/* ---- writing ---- */

static int64_t ttl_of(const struct journal_attempt *a)
{
    return a->window_ms <= 0 ? REDIS_DEFAULT_TTL_MS
           : a->window_ms < REDIS_MAX_TTL_MS ? a->window_ms : REDIS_MAX_TTL_MS;
}

static void add_begin(struct args *a, const struct journal_attempt *at,
                      enum journal_outcome outcome, int status, int64_t duration_ms)
{
    add_text(a, "B");
    add_int(a, at->time_ms);
    add_int(a, at->pid);
    add_text(a, at->exe);
    add_text(a, at->method);
    add_text(a, at->host);
    add_text(a, at->path);
    add_text(a, at->key);
    add_text(a, at->fingerprint);
    add_int(a, at->generation);
    add_int(a, at->tls != 0);
    add_int(a, at->body_len);
    add_text(a, journal_outcome_name(outcome));
    add_int(a, status);
    add_int(a, outcome == JOURNAL_PENDING ? -1 : duration_ms);
    add_int(a, ttl_of(at));
}

enum { BEGIN_ARGS = 16, FINISH_ARGS = 7, ANSWER_ARGS = 9 };

static int valid_outcome(enum journal_outcome outcome)
{
    return (unsigned)outcome < JOURNAL_OUTCOMES;
}

static int add_op(struct args *a, const struct journal_op *ops, const struct journal_op *op)
{
    switch (op->kind) {
    case JOURNAL_OP_BEGIN:
        if (!valid_outcome(op->attempt.outcome))
            return journal_fail("cannot record an attempt with outcome %d",
                                (int)op->attempt.outcome);
        if (args_room(a, BEGIN_ARGS) < 0)
            return -1;
        add_begin(a, &op->attempt, op->attempt.outcome, op->status, op->duration_ms);
        return 0;
    case JOURNAL_OP_FINISH:
        if (!valid_outcome(op->outcome))
            return journal_fail("cannot record outcome %d", (int)op->outcome);
        if (args_room(a, FINISH_ARGS) < 0)
            return -1;
        add_text(a, "F");
        add_int(a, rd_id_number(op->id));
        add_int(a, op->ref);
        add_int(a, rd_id_epoch(op->id));
        add_text(a, journal_outcome_name(op->outcome));
        add_int(a, op->status);
        add_int(a, op->duration_ms);
        return 0;
    case JOURNAL_OP_ANSWER:
        if (args_room(a, ANSWER_ARGS) < 0)
            return -1;
        add_text(a, "A");
        add_int(a, rd_id_number(op->id));
        add_int(a, op->ref);
        add_int(a, rd_id_epoch(op->id));
        add_int(a, op->status);
        add_int(a, op->duration_ms);
        add_int(a, op->too_large != 0);
        add_bytes(a, op->too_large ? "" : op->answer, op->too_large ? 0 : op->answer_len);
        add_text(a, op->ref >= 0 && ops[op->ref].attempt.outcome == JOURNAL_COMPLETED
                    ? "1" : "0");
        return 0;
    }
    return journal_fail("unknown journal op %d", (int)op->kind);
}

/* Runs the apply script on ops; expect_key (or NULL) must still be at
 * version expect_v. Sets each BEGIN's id (and *attempt, the first's
 * number). Returns 0, 1 when expect_key changed (nothing written), 2 when
 * an op's attempt was gone (the others were applied), or -1. */
static int apply_ops(struct rd *r, struct journal_op *ops, size_t n,
                     const char *expect_key, const char *expect_v, int *attempt)
{
    const char *what = "cannot record attempts in";
    char owner[33], pid[24];
    owner_token(owner);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    struct args a = { 0 };
    int rc = script_args(r, &a, 5);
    if (rc == 0) {
        add_text(&a, owner);
        add_text(&a, pid);
        add_int(&a, REDIS_LEASE_MS);
        add_text(&a, expect_key ? expect_key : "");
        add_text(&a, expect_v ? expect_v : "");
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_op(&a, ops, &ops[i]);
    redisReply *reply = rc == 0 ? run_script(r, REDIS_APPLY, &a, what) : NULL;
    args_free(&a);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY)
        return unexpected(r, reply, what);
    if (reply->elements == 1 && integer_at(reply, 0) == -1) {
        freeReplyObject(reply);
        return 1;
    }
    if (reply->elements != n)
        return unexpected(r, reply, what);
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        int64_t id = integer_at(e, 0) ? rd_id_of(integer_at(e, 2), integer_at(e, 0)) : 0;
        if (ops[i].kind == JOURNAL_OP_BEGIN)
            ops[i].id = id;
        else if (id == 0)
            rc = 2;
        if (i == 0 && attempt)
            *attempt = (int)integer_at(e, 1);
    }
    freeReplyObject(reply);
    return rc;
}

static int rd_apply(void *state, struct journal_op *ops, size_t n)
{
    int rc = apply_ops(state, ops, n, NULL, NULL, NULL);
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == JOURNAL_OP_BEGIN)
                ops[i].id = 0;
    return rc < 0 ? -1 : 0;
}

static int rd_begin(void *state, const struct journal_attempt *a, int64_t *id,
                    int *attempt)
{
    struct journal_op op = { .kind = JOURNAL_OP_BEGIN, .attempt = *a, .ref = -1 };
    int n = 1;
    if (apply_ops(state, &op, 1, NULL, NULL, &n) != 0)
        return -1;
    if (id)
        *id = op.id;
    if (attempt)
        *attempt = a->key && *a->key ? n : 1;
    return 0;
}

/* One op on an existing attempt; its absence is an error, as in SQLite. */
static int one_op(struct rd *r, struct journal_op *op, const char *what)
{
    int rc = apply_ops(r, op, 1, NULL, NULL, NULL);
    if (rc == 2)
        return journal_fail("%s %s: no attempt %lld (pruned, or ended long ago?)", what,
                            r->where, (long long)op->id);
    return rc == 0 ? 0 : -1;
}

static int rd_finish(void *state, int64_t id, enum journal_outcome outcome, int status,
                     int64_t duration_ms)
{
    struct journal_op op = { .kind = JOURNAL_OP_FINISH, .id = id, .ref = -1,
                             .outcome = outcome, .status = status,
                             .duration_ms = duration_ms };
    return one_op(state, &op, "cannot record an outcome in");
}

static int rd_finish_answer(void *state, int64_t id, int status, int64_t duration_ms,
                            const char *answer, size_t len, int too_large)
{
    struct journal_op op = { .kind = JOURNAL_OP_ANSWER, .id = id, .ref = -1,
                             .status = status, .duration_ms = duration_ms,
                             .answer = answer, .answer_len = len, .too_large = too_large };
    return one_op(state, &op, "cannot record an answer in");
}

static int rd_finish_process(void *state, int pid, enum journal_outcome outcome)
{
    struct rd *r = state;
    const char *what = "cannot record the outcomes of a process in";
    if (pid != (int)getpid())
        return journal_fail("%s %s: only a process's own attempts can be ended there",
                            what, r->where);
    if (!valid_outcome(outcome))
        return journal_fail("cannot record outcome %d", (int)outcome);
    char owner[33];
    owner_token(owner);
    struct args a = { 0 };
    redisReply *reply = NULL;
    if (script_args(r, &a, 2) == 0) {
        add_text(&a, owner);
        add_text(&a, journal_outcome_name(outcome));
        reply = run_script(r, REDIS_FINISH_OWNER, &a, what);
    }
    args_free(&a);
    if (!reply)
        return -1;
    freeReplyObject(reply);
    return 0;
}

static int rd_keepalive(void *state)
{
    struct rd *r = state;
    char owner[33], pid[24];
    owner_token(owner);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    struct args a = { 0 };
    redisReply *reply = NULL;
    if (script_args(r, &a, 3) == 0) {
        add_text(&a, owner);
        add_text(&a, pid);
        add_int(&a, REDIS_LEASE_MS);
        reply = run_script(r, REDIS_KEEPALIVE, &a, "cannot renew a lease in");
    }
    args_free(&a);
    if (!reply)
        return -1;
    int more = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    return more;
}

/* ---- guard mode ---- */

/* The look script's answer, into out->state (and the answer's bytes into
 * out); *version gets the key's v. */
static int read_look(struct rd *r, redisReply *reply, struct journal_claim *out,
                     char *version, size_t size)
{
    const char *what = "cannot read the journal in";
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 10 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len >= size ||
        reply->element[9]->type != REDIS_REPLY_STRING)
        return unexpected(r, reply, what);
    memcpy(version, reply->element[0]->str, reply->element[0]->len + 1);
    struct journal_key_state *k = &out->state;
    k->attempts = (int)integer_at(reply, 1);
    k->first_ms = integer_at(reply, 2);
    k->in_flight = (int)integer_at(reply, 3);
    k->in_flight_pid = (int)integer_at(reply, 4);
    k->unknown = (int)integer_at(reply, 5);
    k->answered = integer_at(reply, 6) != 0;
    k->answer_status = (int)integer_at(reply, 7);
    k->answer_too_large = integer_at(reply, 8) != 0;
    if (k->answered && !k->answer_too_large) {
        const redisReply *bytes = reply->element[9];
        out->answer = malloc(bytes->len ? bytes->len : 1);
        if (!out->answer) {
            freeReplyObject(reply);
            return journal_fail("cannot read an answer from %s: out of memory", r->where);
        }
        memcpy(out->answer, bytes->str, bytes->len);
        out->answer_len = bytes->len;
    }
    freeReplyObject(reply);
    return 0;
}

/* Looks at the key (one script), decides by the common rule, and records
 * the attempt (another) only if the key did not change in between: of
 * several machines claiming at once, one records first, and the others
 * look again and see it. A new key skips the look. */
static int rd_claim(void *state, const struct journal_attempt *a,
                    const struct journal_guard_rules *rules, struct journal_claim *out)
{
    struct rd *r = state;
    const char *what = "cannot read the journal in";
    /* Most requests are new: a key no machine has seen is sent, by the
     * rule, and recorded in one script that checks it is new, without a
     * look first. A key with a past is looked at. */
    const struct journal_key_state fresh = { 0 };
    if (journal_guard_rule(&fresh, rules) == JOURNAL_SEND) {
        memset(out, 0, sizeof(*out));
        struct journal_op op = { .kind = JOURNAL_OP_BEGIN, .attempt = *a, .ref = -1 };
        op.attempt.outcome = JOURNAL_PENDING;
        int rc = apply_ops(r, &op, 1, a->key, "new", &out->attempt);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            out->verdict = JOURNAL_SEND;
            out->id = op.id;
            return 0;
        }
    }
    for (int tries = 0; tries < REDIS_CLAIM_TRIES; tries++) {
        memset(out, 0, sizeof(*out));
        struct args look = { 0 };
        redisReply *reply = NULL;
        if (script_args(r, &look, 1) == 0) {
            add_text(&look, a->key);
            reply = run_script(r, REDIS_LOOK, &look, what);
        }
        args_free(&look);
        char version[32];
        if (!reply || read_look(r, reply, out, version, sizeof(version)) < 0)
            return -1;
        out->verdict = journal_guard_rule(&out->state, rules);
        if (out->verdict != JOURNAL_REPLAY) {
            free(out->answer);
            out->answer = NULL;
            out->answer_len = 0;
        }
        if (out->verdict == JOURNAL_WAIT)
            return 0;
        struct journal_op op = { .kind = JOURNAL_OP_BEGIN, .attempt = *a, .ref = -1,
                                 .status = journal_claim_status(out) };
        op.attempt.outcome = journal_claim_outcome(out->verdict);
        int rc = apply_ops(r, &op, 1, a->key, version, &out->attempt);
        if (rc == 0) {
            out->id = op.id;
            return 0;
        }
        free(out->answer);
        memset(out, 0, sizeof(*out));
        if (rc < 0)
            return -1;
    }
    return journal_fail("cannot claim a key in %s: other writers kept changing it",
                        r->where);
}

static int rd_forget(void *state, const char *key, int *attempts, int *answers)
{
    struct rd *r = state;
    const char *what = "cannot forget a key in";
    struct args a = { 0 };
    redisReply *reply = NULL;
    if (script_args(r, &a, 1) == 0) {
        add_text(&a, key);
        reply = run_script(r, REDIS_FORGET, &a, what);
    }
    args_free(&a);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return unexpected(r, reply, what);
    *attempts = (int)integer_at(reply, 0);
    *answers = (int)integer_at(reply, 1);
    freeReplyObject(reply);
    return 0;
}

/* ---- reading ---- */

static int rd_newest(void *state, const char *fingerprint, int *found, int *generation,
                     int64_t *first_ms)
{
    struct rd *r = state;
    char key[sizeof(REDIS_PREFIX) + 32];
    snprintf(key, sizeof(key), REDIS_PREFIX "op:%.16s", fingerprint);
    const char *argv[] = { "HMGET", key, "g", "t" };
    redisReply *reply = rd_command(r, 4, argv, NULL, "cannot look up an operation in");
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return unexpected(r, reply, "cannot look up an operation in");
    *found = reply->element[0]->type == REDIS_REPLY_STRING;
    if (*found) {
        *generation = (int)integer_at(reply, 0);
        *first_ms = integer_at(reply, 1);
    }
    freeReplyObject(reply);
    return 0;
}

static int rd_each_fingerprint(void *state, int (*fn)(void *ctx, const char *fingerprint),
                               void *ctx)
{
    struct rd *r = state;
    const char *what = "cannot read the journal in";
    char cursor[32] = "0";
    const size_t skip = strlen(REDIS_PREFIX "op:");
    do {
        const char *argv[] = { "SCAN", cursor, "MATCH", REDIS_PREFIX "op:*", "COUNT", "1000" };
        redisReply *reply = rd_command(r, 6, argv, NULL, what);
        if (!reply)
            return -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[0]->len >= sizeof(cursor) ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
            return unexpected(r, reply, what);
        memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
        int stop = 0;
        for (size_t i = 0; i < reply->element[1]->elements && !stop; i++) {
            const redisReply *k = reply->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING && k->len > skip)
                stop = fn(ctx, k->str + skip);
        }
        freeReplyObject(reply);
        if (stop)
            return 0;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

static int rd_shared_secret(void *state, const char *proposal, char *out, size_t size)
{
    return set_once(state, "secret", proposal, out, size);
}

static long rd_full_scan_steps(void *state)
{
    (void)state;
    return 0;   /* no SQL: every lookup is by key */
}

const struct journal_ops journal_redis_ops = {
    .open = rd_open,
    .close = rd_close,
    .drop_in_child = rd_drop_in_child,
    .begin = rd_begin,
    .finish = rd_finish,
    .newest = rd_newest,
    .each = rd_each,
    .stats = rd_stats,
    .prune = rd_prune,
    .finish_process = rd_finish_process,
    .claim = rd_claim,
    .finish_answer = rd_finish_answer,
    .forget = rd_forget,
    .apply = rd_apply,
    .each_fingerprint = rd_each_fingerprint,
    .full_scan_steps = rd_full_scan_steps,
    .keepalive = rd_keepalive,
    .shared_secret = rd_shared_secret,
};
