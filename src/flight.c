/* flight.c - requests in flight, matched to their answers, journaled. */
#include "flight.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "guard.h"
#include "journal.h"
#include "journal_queue.h"
#include "seen_filter.h"
#include "log.h"
#include "shim.h"
#include "clock.h"

int flight_awaiting_count;

/* Under in_lock. Only connections awaiting answers cost the read hooks. */
static void note_awaiting(struct conn *c)
{
    int now = c->n_flights > 0;
    if (now == c->awaiting)
        return;
    __atomic_store_n(&c->awaiting, now, __ATOMIC_RELEASE);
    if (now)
        __atomic_add_fetch(&flight_awaiting_count, 1, __ATOMIC_ACQ_REL);
    else
        __atomic_sub_fetch(&flight_awaiting_count, 1, __ATOMIC_ACQ_REL);
}

/* Queues the flight's outcome; its ticket is used up. */
static void finish(const struct conn_flight *f, enum journal_outcome outcome, int status)
{
    journal_queue_finish(f->ticket, outcome, status,
                         clock_ms(CLOCK_MONOTONIC) - f->start_ms);
}

/* The parser must know whether the answer it reads next is to a HEAD. */
static void expect_answer_to_oldest(struct conn *c)
{
    if (c->n_flights)
        http_res_set_request(&c->res, c->flights[0].head, 0);
}

static void pop_oldest(struct conn *c)
{
    memmove(c->flights, c->flights + 1, (c->n_flights - 1) * sizeof(*c->flights));
    c->n_flights--;
    expect_answer_to_oldest(c);
    note_awaiting(c);
}

static void flight_abandon_locked(struct conn *c);
static void end_flights_locked(struct conn *c, enum journal_outcome outcome);

static void capture_reset(struct conn *c)
{
    buf_reset(&c->capture, 64 * 1024);
    c->capture_over = 0;
}

/* The oldest request got its final answer. In guard mode a final status
 * comes with the answer's bytes, kept for the retries to come. */
static void complete_oldest(struct conn *c, int status)
{
    const struct conn_flight *f = &c->flights[0];
    if (f->ticket && f->capture && guard_status_is_final(status)) {
        int64_t duration = clock_ms(CLOCK_MONOTONIC) - f->start_ms;
        const char *bytes = c->capture_over ? NULL : c->capture.data ? c->capture.data : "";
        journal_queue_answer(f->ticket, status, duration, bytes, c->capture.len,
                             c->capture_over);
    } else {
        finish(f, JOURNAL_COMPLETED, status);
    }
    capture_reset(c);
    pop_oldest(c);
}

/* The parser stops right after each answer, so the bytes it consumed up
 * to then are exactly that answer's. */
static int on_answer(void *ctx, int status, int interim)
{
    struct conn *c = ctx;
    if (c->n_flights == 0)
        return HTTP_CONTINUE;
    c->res_done = interim ? -1 : status;
    return HTTP_PAUSE;
}

/* Under in_lock: bytes the parser took belong to the oldest request's
 * answer; kept while it is a guarded one, up to RETRYSAFE_MAX_RESPONSE. */
static void capture_bytes(struct conn *c, const char *p, size_t len)
{
    if (!c->n_flights || !c->flights[0].capture || c->capture_over || len == 0)
        return;
    const struct config *cfg = shim_config();
    if (!cfg || c->capture.len + len > cfg->max_response ||
        buf_append(&c->capture, p, len) != 0) {
        buf_reset(&c->capture, 0);
        c->capture_over = 1;
    }
}

/* Under in_lock, after the parser took bytes: what ended there. */
static void after_feed(struct conn *c)
{
    int done = c->res_done;
    c->res_done = 0;
    if (done < 0)
        capture_reset(c);      /* a 100 Continue is no part of the answer */
    else if (done > 0 && c->n_flights) {
        complete_oldest(c, done);
        /* The server ends the connection after that answer and reads no
         * request sent after it: those never took effect, and a retry of
         * one is its first real attempt. */
        if (c->res.closes_after && c->n_flights)
            end_flights_locked(c, JOURNAL_FAILED);
    }
}

static const struct http_res_callbacks answer_callbacks = {
    .on_message_complete = on_answer,
};

/* Under in_lock. Returns 0, or -1 when out of memory. */
static int push(struct conn *c, struct journal_ticket *ticket, int head, int capture)
{
    if (c->n_flights == c->cap_flights) {
        size_t cap = c->cap_flights ? 2 * c->cap_flights : 4;
        struct conn_flight *grown = realloc(c->flights, cap * sizeof(*grown));
        if (!grown)
            return -1;
        c->flights = grown;
        c->cap_flights = cap;
    }
    if (!c->res.cb)
        http_res_init(&c->res, &answer_callbacks, c);
    c->flights[c->n_flights++] =
        (struct conn_flight){ ticket, clock_ms(CLOCK_MONOTONIC), head, capture };
    if (c->n_flights == 1)
        expect_answer_to_oldest(c);
    note_awaiting(c);
    return 0;
}

/* NUL-terminated copy of s[0..len), cut at '?' when strip_query is set. */
static void copy_field(char *out, size_t size, const char *s, size_t len, int strip_query)
{
    const char *q = strip_query ? memchr(s, '?', len) : NULL;
    if (q)
        len = (size_t)(q - s);
    if (len >= size)
        len = size - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

enum outbound_verdict flight_record(struct conn *c, const struct outbound_record *rec)
{
    struct journal *j = shim_journal();
    const struct config *cfg = shim_config();
    int head = rec->method_len == 4 && memcmp(rec->method, "HEAD", 4) == 0;
    char method[32], host[KEY_AUTHORITY_MAX + 1], path[2048];
    copy_field(method, sizeof(method), rec->method, rec->method_len, 0);
    copy_field(host, sizeof(host), rec->authority, rec->authority_len, 0);
    /* The query string can hold credentials: it is never stored. */
    copy_field(path, sizeof(path), rec->path, rec->path_len, 1);
    struct journal_attempt a = {
        .time_ms = clock_ms(CLOCK_REALTIME), .pid = (int)getpid(), .exe = shim_exe_name(),
        .method = method, .host = host, .path = path,
        .key = rec->key, .fingerprint = rec->fingerprint, .generation = rec->generation,
        .tls = rec->tls, .body_len = (int64_t)rec->body_len,
        .window_ms = cfg ? (int64_t)cfg->window_ms : 0,
        .outcome = rec->skipped ? JOURNAL_SKIPPED : JOURNAL_PENDING,
    };
    struct journal_ticket *ticket = NULL;
    int guard = j && !rec->skipped && cfg && cfg->mode == CONFIG_MODE_GUARD;
    if (guard && __atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE)) {
        /* Pipelined behind answers not read yet: an answer given here
         * would be read before theirs. Journaled and tagged, not guarded. */
        log_msg(CONFIG_LOG_INFO, "guard: %s %s%s is pipelined behind unanswered "
                "requests; sent tagged, not guarded", method, host, path);
        guard = 0;
    }
    /* Before its row can exist anywhere, so that a lookup that misses it
     * in the filter could only have missed it in the journal too (guard
     * mode's claim sets them itself, after looking). */
    if (j && !rec->skipped && !guard)
        seen_filter_add(shim_seen_filter(), rec->fingerprint);
    if (guard) {
        /* The claim is made before the request leaves, always. */
        if (flight_guard_claim(c, j, &a, &ticket) == OUTBOUND_ANSWERED)
            return OUTBOUND_ANSWERED;
    } else if (j) {
        ticket = journal_queue_begin(&a);
    }
    if (rec->skipped) {
        journal_queue_drop(ticket);
        return OUTBOUND_SEND;
    }
    pthread_mutex_lock(&c->in_lock);
    if (push(c, ticket, head, guard && ticket) != 0) {
        finish(&(struct conn_flight){ ticket, clock_ms(CLOCK_MONOTONIC), head, 0 },
               JOURNAL_UNKNOWN, 0);
        flight_abandon_locked(c);   /* answers can no longer be matched */
    }
    pthread_mutex_unlock(&c->in_lock);
    return OUTBOUND_SEND;
}

void flight_passed(struct conn *c, int head)
{
    if (!__atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE))
        return;
    /* Its answer comes between those of journaled requests: keep its place. */
    pthread_mutex_lock(&c->in_lock);
    if (c->n_flights && push(c, NULL, head, 0) != 0)
        flight_abandon_locked(c);   /* answers can no longer be matched */
    pthread_mutex_unlock(&c->in_lock);
}

void flight_failed(struct conn *c, int err)
{
    (void)err;
    pthread_mutex_lock(&c->in_lock);
    if (c->n_flights) {
        c->n_flights--;
        finish(&c->flights[c->n_flights], JOURNAL_FAILED, 0);
        note_awaiting(c);
    }
    pthread_mutex_unlock(&c->in_lock);
}

int flight_generation(void *arg, const char *fingerprint, int *generation)
{
    (void)arg;
    /* Never seen by any process: its first operation, without a read (and
     * without the journal's lock: the filter exists only beside an open
     * journal). */
    struct seen_filter *seen = shim_seen_filter();
    if (seen && !seen_filter_maybe(seen, fingerprint)) {
        *generation = 0;
        return 0;
    }
    struct journal *j = shim_journal();
    if (!j)
        return -1;
    const struct config *cfg = shim_config();
    if (journal_generation(j, fingerprint, clock_ms(CLOCK_REALTIME),
                           (int64_t)cfg->window_ms, generation) != 0) {
        shim_journal_trouble(journal_error(j));
        return -1;
    }
    return 0;
}

void flight_read(struct conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    pthread_mutex_lock(&c->in_lock);
    for (int i = 0; i < iovcnt && n > 0 && c->n_flights; i++) {
        size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
        const char *p = iov[i].iov_base;
        n -= len;
        while (len > 0 && c->n_flights) {
            size_t used = http_res_feed(&c->res, p, len);
            capture_bytes(c, p, used);
            after_feed(c);
            if (c->res.state == HTTP_RES_ERROR || c->res.state == HTTP_RES_TUNNEL) {
                /* Answers we cannot follow: what waits stays unknown. */
                flight_abandon_locked(c);
                break;
            }
            p += used;
            len -= used;
            if (used == 0)
                break;
        }
    }
    pthread_mutex_unlock(&c->in_lock);
}

static void flight_abandon_locked(struct conn *c)
{
    end_flights_locked(c, JOURNAL_UNKNOWN);
}

/* Every request still waiting gets outcome, and the connection's answers
 * are no longer followed. */
static void end_flights_locked(struct conn *c, enum journal_outcome outcome)
{
    for (size_t i = 0; i < c->n_flights; i++)
        finish(&c->flights[i], outcome, 0);
    c->n_flights = 0;
    http_res_free(&c->res);
    memset(&c->res, 0, sizeof(c->res));
    c->res_done = 0;
    capture_reset(c);
    note_awaiting(c);
}

void flight_eof(struct conn *c)
{
    pthread_mutex_lock(&c->in_lock);
    if (c->n_flights) {
        http_res_eof(&c->res);   /* completes an answer read until the close */
        after_feed(c);
        flight_abandon_locked(c);
    }
    pthread_mutex_unlock(&c->in_lock);
}

void flight_abandon(struct conn *c)
{
    pthread_mutex_lock(&c->in_lock);
    if (c->n_flights)
        flight_abandon_locked(c);
    pthread_mutex_unlock(&c->in_lock);
}

int flight_guarded_waiting(struct conn *c)
{
    if (!__atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE))
        return 0;
    int guarded = 0;
    pthread_mutex_lock(&c->in_lock);
    for (size_t i = 0; i < c->n_flights && !guarded; i++)
        guarded = c->flights[i].capture;
    pthread_mutex_unlock(&c->in_lock);
    return guarded;
}

void flight_process_exit(void)
{
    /* What is queued first (answers that did come), then the rest. */
    size_t left = journal_queue_flush(JOURNAL_BUSY_TIMEOUT_MS);
    if (left) {
        char why[96];
        snprintf(why, sizeof(why), "the process ended with %zu row(s) not yet "
                 "written (the journal stayed locked)", left);
        shim_journal_trouble(why);
    }
    struct journal *j = shim_journal_if_open();
    if (j)
        journal_finish_process(j, (int)getpid(), JOURNAL_UNKNOWN);
}
