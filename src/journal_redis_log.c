/* journal_redis_log.c - the Redis journal's attempt log, read back for
 * `retrysafe dump`, `stats` and `prune`.
 *
 * The log is a capped stream of events: "b" when an attempt begins (all
 * its fields) and "f" when it ends (outcome, status, duration). Reading
 * folds them into rows: an attempt's row is its "b" with its latest "f"
 * applied. Ids grow with the stream (both are written by the same
 * script, one at a time, and the epoch in an id's top bits changes only
 * when the data, the stream with it, was lost), so a row is found by
 * bisection. An "f" whose
 * "b" was trimmed off the front of the stream is dropped with it.
 */
#include "journal_redis.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* Entries read per XRANGE. */
#define PAGE "1000"

struct row {
    struct journal_row r;
    char *strings;            /* exe, method, host, path, key, fingerprint,
                                 owner */
    const char *owner;        /* the process's lease token */
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static void rows_free(struct rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        free(rows->v[i].strings);
    free(rows->v);
}

/* The value of field name in an entry's [name, value, ...] array. */
static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return fields->element[i + 1]->type == REDIS_REPLY_STRING
                   ? fields->element[i + 1] : NULL;
    }
    return NULL;
}

static int64_t number(const redisReply *fields, const char *name)
{
    const redisReply *v = field(fields, name);
    return v ? strtoll(v->str, NULL, 10) : 0;
}

static enum journal_outcome outcome_of(const redisReply *fields)
{
    const redisReply *v = field(fields, "o");
    enum journal_outcome o = JOURNAL_UNKNOWN;
    if (v)
        journal_outcome_parse(v->str, &o);
    return o;
}

static struct row *find(struct rows *rows, int64_t id)
{
    size_t lo = 0, hi = rows->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows->v[mid].r.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rows->n && rows->v[lo].r.id == id ? &rows->v[lo] : NULL;
}

/* A row from a "b" event. Its strings are copied into one block. */
static int add_row(struct rows *rows, const redisReply *fields)
{
    static const char *const names[] = { "x", "m", "h", "p", "k", "f", "w" };
    enum { N = sizeof(names) / sizeof(names[0]) };
    const redisReply *text[N];
    size_t size = 0;
    for (int i = 0; i < N; i++) {
        text[i] = field(fields, names[i]);
        size += (text[i] ? text[i]->len : 0) + 1;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 256;
        struct row *v = realloc(rows->v, cap * sizeof(*v));
        if (!v)
            return -1;
        rows->v = v;
        rows->cap = cap;
    }
    struct row *row = &rows->v[rows->n];
    if (!(row->strings = malloc(size)))
        return -1;
    const char *at[N];
    char *p = row->strings;
    for (int i = 0; i < N; i++) {
        size_t len = text[i] ? text[i]->len : 0;
        if (len)
            memcpy(p, text[i]->str, len);
        p[len] = '\0';
        at[i] = p;
        p += len + 1;
    }
    row->r = (struct journal_row){
        .id = rd_id_of(number(fields, "ep"), number(fields, "id")),
        .time_ms = number(fields, "t"),
        .pid = (int)number(fields, "pid"),
        .exe = at[0], .method = at[1], .host = at[2], .path = at[3], .key = at[4],
        .fingerprint = at[5],
        .generation = (int)number(fields, "g"), .attempt = (int)number(fields, "n"),
        .tls = (int)number(fields, "tls"), .body_len = number(fields, "len"),
        .status = (int)number(fields, "s"), .outcome = outcome_of(fields),
        .duration_ms = number(fields, "d"), .settled = 1,
    };
    row->owner = at[6];
    /* Out of order only if the counter was reset under a live log (a
     * server restarted without its data, the stream kept): the row is
     * dropped rather than break the bisection. */
    if (rows->n > 0 && rows->v[rows->n - 1].r.id >= row->r.id) {
        free(row->strings);
        return 0;
    }
    rows->n++;
    return 0;
}

static void apply_end(struct rows *rows, const redisReply *fields)
{
    struct row *row = find(rows, rd_id_of(number(fields, "ep"), number(fields, "id")));
    if (!row)
        return;
    row->r.outcome = outcome_of(fields);
    row->r.status = (int)number(fields, "s");
    row->r.duration_ms = number(fields, "d");
}

/* Calls fn with the fields of every event of the log up to end (an
 * XRANGE bound: "+" for all), oldest first, a page at a time. fn returns
 * -1 to fail. */
static int each_event(struct rd *r, const char *end, const char *what,
                      int (*fn)(void *ctx, const redisReply *fields), void *ctx)
{
    char start[64] = "-";
    for (;;) {
        const char *argv[] = { "XRANGE", REDIS_PREFIX "log", start, end, "COUNT", PAGE };
        redisReply *reply = rd_command(r, 6, argv, NULL, what);
        if (!reply)
            return -1;
        if (reply->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            return journal_fail("%s Redis: its log is not a stream", what);
        }
        size_t got = reply->elements;
        int rc = 0;
        for (size_t i = 0; i < got && rc == 0; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            rc = fn(ctx, e->element[1]);
            if (e->element[0]->len + 2 <= sizeof(start)) {
                start[0] = '(';   /* the next page starts after it */
                memcpy(start + 1, e->element[0]->str, e->element[0]->len + 1);
            }
        }
        freeReplyObject(reply);
        if (rc < 0)
            return journal_fail("%s Redis: out of memory", what);
        if (got < (size_t)atoi(PAGE))
            return 0;
    }
}

static int kind_is(const redisReply *fields, const char *kind)
{
    const redisReply *e = field(fields, "e");
    return e && strcmp(e->str, kind) == 0;
}

static int fold(void *ctx, const redisReply *fields)
{
    if (kind_is(fields, "b"))
        return add_row(ctx, fields);
    if (kind_is(fields, "f"))
        apply_end(ctx, fields);
    return 0;
}

/* Whether owner's lease still runs: 1, 0, or -1. */
static int owner_alive(struct rd *r, const char *owner)
{
    char key[sizeof(REDIS_PREFIX) + 80];
    snprintf(key, sizeof(key), REDIS_PREFIX "owner:%.64s", owner);
    const char *argv[] = { "EXISTS", key };
    redisReply *reply = rd_command(r, 2, argv, NULL, "cannot read the journal in");
    if (!reply)
        return -1;
    int alive = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    return alive;
}

/* Every row the log holds, in id order. A pending attempt whose owner's
 * lease is gone will never learn its outcome: it reads as unknown, as
 * guard mode's claim would record it. */
static int read_rows(struct rd *r, struct rows *rows)
{
    if (each_event(r, "+", "cannot read the journal in", fold, rows) < 0)
        return -1;
    const char *checked = NULL;
    int alive = 1;
    for (size_t i = 0; i < rows->n; i++) {
        struct row *row = &rows->v[i];
        if (row->r.outcome != JOURNAL_PENDING)
            continue;
        if (!checked || strcmp(checked, row->owner) != 0) {
            if ((alive = owner_alive(r, row->owner)) < 0)
                return -1;
            checked = row->owner;
        }
        if (!alive)
            row->r.outcome = JOURNAL_UNKNOWN;
    }
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const struct journal_row *x = &((const struct row *)a)->r, *y = &((const struct row *)b)->r;
    if (x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int rd_each(void *state, const struct journal_filter *f,
            int (*fn)(void *ctx, const struct journal_row *row), void *ctx)
{
    struct rows rows = { 0 };
    if (read_rows(state, &rows) < 0) {
        rows_free(&rows);
        return -1;
    }
    /* Kept rows move to the front, then go out oldest first. */
    size_t kept = 0;
    for (size_t i = 0; i < rows.n; i++) {
        const struct journal_row *r = &rows.v[i].r;
        if ((f->since_ms > 0 && r->time_ms < f->since_ms) ||
            (f->host && strcmp(r->host, f->host) != 0)) {
            free(rows.v[i].strings);
            continue;
        }
        rows.v[kept++] = rows.v[i];
    }
    rows.n = kept;
    if (rows.n > 1)
        qsort(rows.v, rows.n, sizeof(*rows.v), by_time);
    size_t first = f->limit > 0 && (size_t)f->limit < rows.n ? rows.n - (size_t)f->limit : 0;
    for (size_t i = first; i < rows.n; i++)
        if (fn(ctx, &rows.v[i].r))
            break;
    rows_free(&rows);
    return 0;
}

static int by_host_key(const void *a, const void *b)
{
    const struct journal_row *x = &((const struct row *)a)->r, *y = &((const struct row *)b)->r;
    int c = strcmp(x->host, y->host);
    return c ? c : strcmp(x->key, y->key);
}

static int status_class(int status)
{
    return status >= 100 && status <= 599 ? status / 100 : 0;
}

int rd_stats(void *state, int (*fn)(void *ctx, const struct journal_host_stats *s),
             void *ctx)
{
    struct rows rows = { 0 };
    if (read_rows(state, &rows) < 0) {
        rows_free(&rows);
        return -1;
    }
    if (rows.n > 1)
        qsort(rows.v, rows.n, sizeof(*rows.v), by_host_key);
    struct journal_host_stats h;
    for (size_t i = 0; i < rows.n;) {
        memset(&h, 0, sizeof(h));
        h.host = rows.v[i].r.host;
        size_t end = i;
        while (end < rows.n && strcmp(rows.v[end].r.host, h.host) == 0) {
            /* One key's rows are together: counted as a key once. */
            size_t key_end = end;
            while (key_end < rows.n && by_host_key(&rows.v[key_end], &rows.v[end]) == 0) {
                const struct journal_row *r = &rows.v[key_end].r;
                h.requests++;
                if ((unsigned)r->outcome < JOURNAL_OUTCOMES)
                    h.outcomes[r->outcome]++;
                h.status_classes[status_class(r->status)]++;
                key_end++;
            }
            if (rows.v[end].r.key[0]) {
                h.keys++;
                h.retried_keys += key_end - end > 1;
            }
            end = key_end;
        }
        i = end;
        if (fn(ctx, &h))
            break;
    }
    rows_free(&rows);
    return 0;
}

static int count_begins(void *ctx, const redisReply *fields)
{
    *(int64_t *)ctx += kind_is(fields, "b");
    return 0;
}

int rd_prune(void *state, int64_t before_ms, int64_t *deleted)
{
    struct rd *r = state;
    const char *what = "cannot prune the journal in";
    /* Entry ids are the server's clock in ms. The attempts that begin
     * before the cut are counted first: XTRIM counts events, and an
     * attempt is one or two of them. */
    char end[32];
    snprintf(end, sizeof(end), "(%lld", (long long)(before_ms > 0 ? before_ms : 0));
    int64_t n = 0;
    if (each_event(r, end, what, count_begins, &n) < 0)
        return -1;
    const char *argv[] = { "XTRIM", REDIS_PREFIX "log", "MINID", end + 1 };
    redisReply *reply = rd_command(r, 4, argv, NULL, what);
    if (!reply)
        return -1;
    freeReplyObject(reply);
    *deleted = n;
    return 0;
}
