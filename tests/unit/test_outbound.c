/* test_outbound.c - request assembly and byte accounting against a fake
 * socket that takes bytes in random amounts, refuses with EAGAIN, and
 * records exactly what reached it. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "key.h"
#include "outbound.h"
#include "suites.h"

#define SECRET "unit-test-secret"

/* ---- a configuration from a table of variables ------------------------ */

struct vars {
    const char *names[8];
    const char *values[8];
};

static const char *lookup(void *ctx, const char *name)
{
    const struct vars *v = ctx;
    for (int i = 0; i < 8 && v->names[i]; i++)
        if (strcmp(v->names[i], name) == 0)
            return v->values[i];
    return NULL;
}

static void ignore_warning(void *ctx, const char *message)
{
    (void)ctx;
    (void)message;
}

struct fixture {
    struct config cfg;
    struct outbound_env env;
    struct outbound ob;
};

static void fixture_init(struct fixture *f, const char *hosts, const char *max_body)
{
    struct vars v = { { "RETRYSAFE_HOSTS", "RETRYSAFE_MAX_BODY" }, { hosts, max_body } };
    ck_assert_int_eq(config_load(&f->cfg, lookup, &v, ignore_warning, NULL), 0);
    f->env.cfg = &f->cfg;
    f->env.keys = key_ctx_new(SECRET, strlen(SECRET));
    ck_assert_ptr_nonnull(f->env.keys);
    outbound_init(&f->ob, &f->env, 0, "127.0.0.1:8080");
}

static void fixture_free(struct fixture *f)
{
    outbound_free(&f->ob);
    key_ctx_free(f->env.keys);
    config_free(&f->cfg);
}

/* ---- the fake socket ---------------------------------------------------- */

struct fake_socket {
    struct buf received;
    struct buf answered;
    unsigned seed;
    int max_take;        /* 0: take everything */
    int eagain_percent;  /* chance that a send takes nothing */
    long capacity;       /* bytes it takes before EAGAIN; 0: no limit */
    int sends;
    enum outbound_verdict verdict;   /* what fake_record answers */
    int records;
    struct outbound_record last;     /* strings: see fake_record */
    char key[KEY_CHARS + 1];
};

static unsigned next_random(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static ssize_t fake_send(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct fake_socket *s = ctx;
    s->sends++;
    if (s->eagain_percent && (int)(next_random(&s->seed) % 100) < s->eagain_percent) {
        errno = EAGAIN;
        return -1;
    }
    if (s->capacity < 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t budget = s->max_take ? 1 + next_random(&s->seed) % (unsigned)s->max_take : (size_t)-1;
    if (s->capacity > 0 && budget > (size_t)s->capacity)
        budget = (size_t)s->capacity;
    size_t taken = 0;
    for (int i = 0; i < iovcnt && budget > 0; i++) {
        size_t n = iov[i].iov_len < budget ? iov[i].iov_len : budget;
        ck_assert_int_eq(buf_append(&s->received, iov[i].iov_base, n), 0);
        taken += n;
        budget -= n;
    }
    if (s->capacity > 0 && (s->capacity -= (long)taken) == 0)
        s->capacity = -1;
    return (ssize_t)taken;
}

static int fake_answer(void *ctx, const char *bytes, size_t len)
{
    struct fake_socket *s = ctx;
    return buf_append(&s->answered, bytes, len);
}

static int fake_wait(void *ctx)
{
    struct fake_socket *s = ctx;
    /* The peer read everything: the socket takes bytes again. */
    s->capacity = 0;
    s->eagain_percent = 0;
    return 0;
}

static enum outbound_verdict fake_record(void *ctx, const struct outbound_record *rec)
{
    struct fake_socket *s = ctx;
    s->records++;
    s->last = *rec;
    ck_assert_uint_lt(strlen(rec->key), sizeof(s->key));
    memcpy(s->key, rec->key, strlen(rec->key) + 1);
    s->last.key = s->key;
    s->last.method = s->last.authority = s->last.path = s->last.fingerprint = NULL;
    return s->verdict;
}

/* Writes all of data as a careful non-blocking client would: in pieces of
 * random size up to max_write, resuming after partial writes and EAGAIN.
 * Checks the accounting invariant after every call. */
static void client_write(struct fixture *f, struct fake_socket *s,
                         const char *data, size_t len, int max_write)
{
    struct outbound_io io = { .send = fake_send, .answer = fake_answer,
                             .wait_writable = fake_wait, .ctx = s };
    size_t done = 0;
    int stalls = 0;
    while (done < len) {
        size_t piece = len - done;
        if (max_write && piece > (size_t)max_write)
            piece = 1 + next_random(&s->seed) % (unsigned)max_write;
        if (piece > len - done)
            piece = len - done;
        /* Sometimes hand the piece over as two iovecs. */
        struct iovec iov[2] = { { (void *)(data + done), piece }, { NULL, 0 } };
        int iovcnt = 1;
        if (piece > 1 && next_random(&s->seed) % 2) {
            iov[0].iov_len = piece / 2;
            iov[1].iov_base = (void *)(data + done + piece / 2);
            iov[1].iov_len = piece - piece / 2;
            iovcnt = 2;
        }
        ssize_t r = outbound_write(&f->ob, iov, iovcnt, &io);
        if (r < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert_int_lt(++stalls, 100000);
            continue;
        }
        ck_assert_uint_le((size_t)r, piece);
        done += (size_t)r;
        /* Anything queued must keep a caller byte unacknowledged: the held
         * byte, or bytes the caller has not been told were written. */
        if (f->ob.queue.len)
            ck_assert(f->ob.held == 1 || done < len);
    }
    ck_assert_uint_eq(f->ob.queue.len, 0);
    ck_assert_uint_eq(f->ob.held, 0);
}

static char *expected_with_key(const char *request, const char *method,
                               const char *authority, const char *path,
                               const char *body, size_t body_len,
                               const char *header, const char *drop_line)
{
    struct key_ctx *keys = key_ctx_new(SECRET, strlen(SECRET));
    struct key_request req = {
        .method = method, .method_len = strlen(method),
        .authority = authority, .authority_len = strlen(authority),
        .path = path, .path_len = strlen(path),
        .scope = "", .scope_len = 0,
        .body = body, .body_len = body_len,
    };
    char key[KEY_CHARS + 1];
    ck_assert_int_eq(key_derive(keys, &req, key), 0);
    key_ctx_free(keys);

    const char *blank = strstr(request, "\r\n\r\n");
    ck_assert_ptr_nonnull(blank);
    size_t head = (size_t)(blank - request) + 2;
    struct buf out = { 0 };
    const char *drop = drop_line ? strstr(request, drop_line) : NULL;
    if (drop && (size_t)(drop - request) < head) {
        buf_append(&out, request, (size_t)(drop - request));
        const char *after = drop + strlen(drop_line);
        buf_append(&out, after, head - (size_t)(after - request));
    } else {
        buf_append(&out, request, head);
    }
    buf_append(&out, header, strlen(header));
    buf_append(&out, ": ", 2);
    buf_append(&out, key, KEY_CHARS);
    buf_append(&out, "\r\n", 2);
    buf_append(&out, request + head, strlen(request + head));
    buf_append(&out, "", 1);
    return out.data;
}

static void assert_received_bytes(struct fake_socket *s, const char *expected, size_t len)
{
    ck_assert_uint_eq(s->received.len, len);
    ck_assert_int_eq(memcmp(s->received.data, expected, len), 0);
}

static void assert_received(struct fake_socket *s, const char *expected)
{
    assert_received_bytes(s, expected, strlen(expected));
}

static const char post[] =
    "POST /v1/charges?x=1 HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "amount=2000";

/* Runs request through every kind of client and socket behaviour and
 * checks that the socket always ends with expected. */
static void check_all_ways(const char *hosts, const char *request, size_t len,
                           const char *expected, size_t expected_len)
{
    static const struct { int max_write, max_take, eagain; } ways[] = {
        { 0, 0, 0 }, { 1, 0, 0 }, { 7, 0, 0 }, { 0, 1, 0 }, { 0, 5, 30 },
        { 3, 2, 50 }, { 64, 13, 20 }, { 1, 1, 60 },
    };
    for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
        for (unsigned seed = 1; seed <= 20; seed++) {
            struct fixture f;
            fixture_init(&f, hosts, NULL);
            struct fake_socket s = { .seed = seed, .max_take = ways[w].max_take,
                                     .eagain_percent = ways[w].eagain };
            client_write(&f, &s, request, len, ways[w].max_write);
            ck_assert_uint_eq(s.received.len, expected_len);
            ck_assert_int_eq(memcmp(s.received.data, expected, expected_len), 0);
            buf_free(&s.received);
            buf_free(&s.answered);
            fixture_free(&f);
        }
    }
}

START_TEST(post_gets_key_before_blank_line)
{
    char *expected = expected_with_key(post, "POST", "127.0.0.1:8080", "/v1/charges?x=1",
                                       "amount=2000", 11, "Idempotency-Key", NULL);
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1 };
    client_write(&f, &s, post, strlen(post), 0);
    assert_received(&s, expected);
    ck_assert_int_eq(s.sends, 1);
    buf_free(&s.received);
    fixture_free(&f);
    free(expected);
}
END_TEST

START_TEST(post_survives_every_split_and_partial_send)
{
    char *expected = expected_with_key(post, "POST", "127.0.0.1:8080", "/v1/charges?x=1",
                                       "amount=2000", 11, "Idempotency-Key", NULL);
    check_all_ways("127.0.0.1:8080", post, strlen(post), expected, strlen(expected));
    free(expected);
}
END_TEST

START_TEST(untouched_requests_pass_byte_for_byte)
{
    static const char *const requests[] = {
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        "PUT /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 3\r\n\r\nabc",
        "POST /x HTTP/1.1\r\nHost: other.example:8080\r\nContent-Length: 3\r\n\r\nabc",
        "POST /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nidempotency-KEY: mine\r\n"
        "Content-Length: 3\r\n\r\nabc",
        "\x16\x03\x01\x02\x01\x01\x02\x01\xfc\x03\x03 not http at all",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        check_all_ways("127.0.0.1:8080", requests[i], strlen(requests[i]),
                       requests[i], strlen(requests[i]));
}
END_TEST

START_TEST(untouched_get_is_one_send)
{
    static const char get[] = "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1 };
    client_write(&f, &s, get, strlen(get), 0);
    assert_received(&s, get);
    ck_assert_int_eq(s.sends, 1);
    buf_free(&s.received);
    fixture_free(&f);
}
END_TEST

START_TEST(chunked_body_keyed_on_decoded_bytes)
{
    static const char chunked[] =
        "POST /c HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6;ext=1\r\namount\r\n5\r\n=2000\r\n0\r\nX-Trailer: t\r\n\r\n";
    char *expected = expected_with_key(chunked, "POST", "127.0.0.1:8080", "/c",
                                       "amount=2000", 11, "Idempotency-Key", NULL);
    check_all_ways("127.0.0.1:8080", chunked, strlen(chunked), expected, strlen(expected));
    free(expected);
}
END_TEST

START_TEST(expect_continue_answered_and_dropped)
{
    static const char req[] =
        "POST /up HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nExpect: 100-continue\r\n"
        "Content-Length: 5\r\n\r\nhello";
    char *expected = expected_with_key(req, "POST", "127.0.0.1:8080", "/up", "hello", 5,
                                       "Idempotency-Key", "Expect: 100-continue\r\n");
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 3 };
    size_t head = strlen(req) - 5;
    client_write(&f, &s, req, head, 0);
    /* The head alone: nothing sent yet, and the client has its 100. */
    ck_assert_uint_eq(s.received.len, 0);
    ck_assert_uint_eq(s.answered.len, strlen("HTTP/1.1 100 Continue\r\n\r\n"));
    ck_assert_int_eq(memcmp(s.answered.data, "HTTP/1.1 100 Continue\r\n\r\n", s.answered.len), 0);
    client_write(&f, &s, req + head, 5, 0);
    assert_received(&s, expected);
    buf_free(&s.received);
    buf_free(&s.answered);
    fixture_free(&f);
    free(expected);
}
END_TEST

START_TEST(pipelined_requests_each_decided)
{
    static const char get[] = "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    static const char p1[] =
        "POST /b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\nx";
    static const char p2[] =
        "POST /b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\ny";
    char all[512], expected[1024];
    snprintf(all, sizeof(all), "%s%s%s%s", get, p1, get, p2);
    char *e1 = expected_with_key(p1, "POST", "127.0.0.1:8080", "/b", "x", 1,
                                 "Idempotency-Key", NULL);
    char *e2 = expected_with_key(p2, "POST", "127.0.0.1:8080", "/b", "y", 1,
                                 "Idempotency-Key", NULL);
    snprintf(expected, sizeof(expected), "%s%s%s%s", get, e1, get, e2);
    ck_assert_str_ne(e1, e2);
    check_all_ways("127.0.0.1:8080", all, strlen(all), expected, strlen(expected));
    free(e1);
    free(e2);
}
END_TEST

START_TEST(body_over_limit_passes_untagged)
{
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", "4");
    struct fake_socket s = { .seed = 1 };
    client_write(&f, &s, post, strlen(post), 3);
    assert_received(&s, post);
    buf_free(&s.received);
    fixture_free(&f);
}
END_TEST

START_TEST(absolute_form_uses_target_authority)
{
    static const char req[] =
        "POST http://API.example.com/v1/x HTTP/1.1\r\nHost: ignored.example\r\n"
        "Content-Length: 2\r\n\r\nhi";
    char *expected = expected_with_key(req, "POST", "api.example.com", "/v1/x", "hi", 2,
                                       "X-Key", NULL);
    check_all_ways("*.example.com=X-Key", req, strlen(req), expected, strlen(expected));
    free(expected);
}
END_TEST

START_TEST(non_http_after_http_passes_through)
{
    static const char mixed[] =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\r\n"
        "\x81\x85POST / HTTP/1.1\r\n";
    check_all_ways("*", mixed, sizeof(mixed) - 1, mixed, sizeof(mixed) - 1);
}
END_TEST

START_TEST(queued_bytes_keep_one_byte_back)
{
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1, .capacity = 1 };
    struct outbound_io io = { .send = fake_send, .answer = fake_answer,
                             .wait_writable = fake_wait, .ctx = &s };
    struct iovec iov = { (void *)post, strlen(post) };
    ssize_t r = outbound_write(&f.ob, &iov, 1, &io);
    /* The socket took one byte of many: the rest is queued, and the last
     * caller byte is not acknowledged, so the caller must come back. */
    ck_assert_int_eq(r, (ssize_t)strlen(post) - 1);
    ck_assert_uint_gt(f.ob.queue.len, 0);
    iov.iov_base = (void *)(post + r);
    iov.iov_len = 1;
    ck_assert_int_eq(outbound_write(&f.ob, &iov, 1, &io), -1);
    ck_assert_int_eq(errno, EAGAIN);
    s.capacity = 0;
    ck_assert_int_eq(outbound_write(&f.ob, &iov, 1, &io), 1);
    ck_assert_uint_eq(f.ob.queue.len, 0);
    buf_free(&s.received);
    fixture_free(&f);
}
END_TEST

static void repeat(struct buf *b, const char *s, int times)
{
    for (int i = 0; i < times; i++)
        ck_assert_int_eq(buf_append(b, s, strlen(s)), 0);
}

/* A chunked request to the fixture's host: chunk (a whole chunk, size line
 * to terminator) repeated times, then the last chunk. */
static void chunked_request(struct buf *req, const char *method, const char *chunk,
                            int times)
{
    repeat(req, method, 1);
    repeat(req, " /c HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                "Transfer-Encoding: chunked\r\n\r\n", 1);
    repeat(req, chunk, times);
    repeat(req, "0\r\n\r\n", 1);
}

/* A chunked request whose framing (long chunk extensions) outweighs its
 * little data: the raw bytes held for a key are bounded too, and the
 * verdict must not depend on the writes: in one call, as in small ones,
 * it goes out untagged, byte for byte. */
START_TEST(chunk_framing_over_limit_untagged_however_written)
{
    struct buf chunk = { 0 }, req = { 0 };
    repeat(&chunk, "1;", 1);
    repeat(&chunk, "e", 40000);
    repeat(&chunk, "\r\nX\r\n", 1);
    chunked_request(&req, "POST", chunk.data, 4);
    buf_free(&chunk);
    static const int max_write[] = { 0, 1000 };
    for (size_t i = 0; i < sizeof(max_write) / sizeof(max_write[0]); i++) {
        struct fixture f;
        fixture_init(&f, "127.0.0.1:8080", "64");
        struct fake_socket s = { .seed = 1 };
        client_write(&f, &s, req.data, req.len, max_write[i]);
        assert_received_bytes(&s, req.data, req.len);
        buf_free(&s.received);
        fixture_free(&f);
    }
    buf_free(&req);
}
END_TEST

/* One large write of a request passed through (its body in many small
 * chunks, parsed as it goes) to a socket that fills at once: what the
 * socket did not take is not copied whole, only a bounded step of it. */
START_TEST(full_socket_queues_a_bounded_step)
{
    struct buf req = { 0 };
    chunked_request(&req, "PUT", "1\r\nX\r\n", 200000);
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1, .capacity = 1000 };
    struct outbound_io io = { .send = fake_send, .answer = fake_answer,
                             .wait_writable = fake_wait, .ctx = &s };
    struct iovec iov = { req.data, req.len };
    ssize_t r = outbound_write(&f.ob, &iov, 1, &io);
    ck_assert_int_gt(r, 0);
    ck_assert_uint_le(f.ob.queue.len, 2 * 64 * 1024);
    ck_assert_uint_le((size_t)r, 1000 + f.ob.queue.len);
    s.capacity = 0;
    client_write(&f, &s, req.data + r, req.len - (size_t)r, 0);
    assert_received_bytes(&s, req.data, req.len);
    buf_free(&s.received);
    buf_free(&req);
    fixture_free(&f);
}
END_TEST

/* ---- guard mode: the recorder answers in the server's place ---------- */

static const struct outbound_io recording_io = {
    .send = fake_send, .answer = fake_answer, .wait_writable = fake_wait,
    .record = fake_record,
};

/* Writes data in pieces of piece bytes (0: one call) to a socket that takes
 * everything; each call must take its whole piece. Returns the sum. */
static size_t write_pieces(struct fixture *f, struct fake_socket *s,
                           const char *data, size_t len, size_t piece)
{
    struct outbound_io io = recording_io;
    io.ctx = s;
    size_t done = 0;
    while (done < len) {
        size_t n = piece && piece < len - done ? piece : len - done;
        struct iovec iov = { (void *)(data + done), n };
        ssize_t r = outbound_write(&f->ob, &iov, 1, &io);
        ck_assert_int_eq(r, (ssize_t)n);
        done += (size_t)r;
    }
    return done;
}

/* The key the request would carry: from what expected_with_key puts in. */
static void key_in(const char *tagged, const char *header, char key[KEY_CHARS + 1])
{
    const char *line = strstr(tagged, header);
    ck_assert_ptr_nonnull(line);
    memcpy(key, line + strlen(header) + 2, KEY_CHARS);
    key[KEY_CHARS] = '\0';
}

START_TEST(answered_request_never_sent)
{
    char *tagged = expected_with_key(post, "POST", "127.0.0.1:8080", "/v1/charges?x=1",
                                     "amount=2000", 11, "Idempotency-Key", NULL);
    char key[KEY_CHARS + 1];
    key_in(tagged, "Idempotency-Key", key);
    const size_t len = strlen(post);
    /* 0: one call; else the first call takes split bytes, the second the rest. */
    for (size_t split = 0; split < len; split++) {
        struct fixture f;
        fixture_init(&f, "127.0.0.1:8080", NULL);
        struct fake_socket s = { .seed = 1, .verdict = OUTBOUND_ANSWERED };
        size_t sum = write_pieces(&f, &s, post, split ? split : len, 0);
        ck_assert_int_eq(s.records, split == 0 ? 1 : 0);
        sum += write_pieces(&f, &s, post + sum, len - sum, 0);
        ck_assert_uint_eq(sum, len);
        ck_assert_int_eq(s.records, 1);
        ck_assert_str_eq(s.key, key);
        ck_assert_int_eq(s.last.skipped, 0);
        ck_assert_int_eq(s.sends, 0);
        ck_assert_uint_eq(s.received.len, 0);
        ck_assert_int_eq(outbound_holding(&f.ob), 0);

        /* The next request (the same POST) is taken and dropped: the
         * answer said Connection: close. */
        ck_assert_uint_eq(write_pieces(&f, &s, post, len, 0), len);
        ck_assert_uint_eq(s.received.len, 0);
        ck_assert_int_eq(s.sends, 0);
        ck_assert_int_eq(s.records, 1);
        buf_free(&s.received);
        fixture_free(&f);
    }
    free(tagged);
}
END_TEST

START_TEST(answered_request_byte_by_byte)
{
    static const char get[] = "GET /after HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    char *tagged = expected_with_key(post, "POST", "127.0.0.1:8080", "/v1/charges?x=1",
                                     "amount=2000", 11, "Idempotency-Key", NULL);
    char key[KEY_CHARS + 1], after[512];
    key_in(tagged, "Idempotency-Key", key);
    snprintf(after, sizeof(after), "%s%s", get, post);
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1, .verdict = OUTBOUND_ANSWERED };
    ck_assert_uint_eq(write_pieces(&f, &s, post, strlen(post), 1), strlen(post));
    ck_assert_int_eq(s.records, 1);
    ck_assert_str_eq(s.key, key);
    ck_assert_int_eq(s.sends, 0);
    ck_assert_uint_eq(s.received.len, 0);

    /* What follows, byte by byte too, is taken, dropped and unrecorded. */
    ck_assert_uint_eq(write_pieces(&f, &s, after, strlen(after), 1), strlen(after));
    ck_assert_uint_eq(s.received.len, 0);
    ck_assert_int_eq(s.sends, 0);
    ck_assert_int_eq(s.records, 1);
    buf_free(&s.received);
    fixture_free(&f);
    free(tagged);
}
END_TEST

START_TEST(answered_with_pipelined_request_in_same_call)
{
    char all[512];
    snprintf(all, sizeof(all), "%s%s", post, post);
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1, .verdict = OUTBOUND_ANSWERED };
    ck_assert_uint_eq(write_pieces(&f, &s, all, strlen(all), 0), strlen(all));
    /* Neither reached the socket: the second follows an answer that
     * closed the connection. */
    ck_assert_uint_eq(s.received.len, 0);
    ck_assert_int_eq(s.sends, 0);
    ck_assert_int_eq(s.records, 1);
    buf_free(&s.received);
    fixture_free(&f);
}
END_TEST

START_TEST(answered_after_expect_continue)
{
    static const char req[] =
        "POST /up HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nExpect: 100-continue\r\n"
        "Content-Length: 5\r\n\r\nhello";
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct fixture f;
    fixture_init(&f, "127.0.0.1:8080", NULL);
    struct fake_socket s = { .seed = 1, .verdict = OUTBOUND_ANSWERED };
    size_t head = strlen(req) - 5;
    ck_assert_uint_eq(write_pieces(&f, &s, req, head, 0), head);
    /* Continue answered; the request not decided yet. */
    ck_assert_uint_eq(s.answered.len, strlen(cont));
    ck_assert_int_eq(memcmp(s.answered.data, cont, strlen(cont)), 0);
    ck_assert_int_eq(s.records, 0);
    ck_assert_uint_eq(s.received.len, 0);

    ck_assert_uint_eq(write_pieces(&f, &s, req + head, 5, 0), 5);
    ck_assert_int_eq(s.records, 1);
    ck_assert_uint_eq(s.last.body_len, 5);
    ck_assert_int_eq(s.sends, 0);
    ck_assert_uint_eq(s.received.len, 0);
    ck_assert_uint_eq(s.answered.len, strlen(cont));   /* no second 100 */

    ck_assert_uint_eq(write_pieces(&f, &s, post, strlen(post), 0), strlen(post));
    ck_assert_uint_eq(s.received.len, 0);
    ck_assert_int_eq(s.records, 1);
    buf_free(&s.received);
    buf_free(&s.answered);
    fixture_free(&f);
}
END_TEST

START_TEST(record_send_tags_as_before)
{
    char *tagged = expected_with_key(post, "POST", "127.0.0.1:8080", "/v1/charges?x=1",
                                     "amount=2000", 11, "Idempotency-Key", NULL);
    char key[KEY_CHARS + 1], expected[1024];
    key_in(tagged, "Idempotency-Key", key);
    snprintf(expected, sizeof(expected), "%s%s", tagged, tagged);
    static const size_t pieces[] = { 0, 1, 7 };
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct fixture f;
        fixture_init(&f, "127.0.0.1:8080", NULL);
        struct fake_socket s = { .seed = 1, .verdict = OUTBOUND_SEND };
        ck_assert_uint_eq(write_pieces(&f, &s, post, strlen(post), pieces[i]), strlen(post));
        assert_received(&s, tagged);
        ck_assert_int_eq(s.sends, 1);
        ck_assert_int_eq(s.records, 1);
        ck_assert_str_eq(s.key, key);
        ck_assert_int_eq(s.last.skipped, 0);
        ck_assert_uint_eq(s.last.body_len, 11);
        ck_assert_uint_eq(s.last.method_len, 4);
        ck_assert_uint_eq(s.last.path_len, strlen("/v1/charges?x=1"));
        /* And the next one is decided, tagged and recorded in its turn. */
        ck_assert_uint_eq(write_pieces(&f, &s, post, strlen(post), pieces[i]), strlen(post));
        assert_received(&s, expected);
        ck_assert_int_eq(s.records, 2);
        buf_free(&s.received);
        fixture_free(&f);
    }
    free(tagged);
}
END_TEST

Suite *outbound_suite(void)
{
    Suite *s = suite_create("outbound");
    TCase *tc = tcase_create("outbound");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, post_gets_key_before_blank_line);
    tcase_add_test(tc, post_survives_every_split_and_partial_send);
    tcase_add_test(tc, untouched_requests_pass_byte_for_byte);
    tcase_add_test(tc, untouched_get_is_one_send);
    tcase_add_test(tc, chunked_body_keyed_on_decoded_bytes);
    tcase_add_test(tc, expect_continue_answered_and_dropped);
    tcase_add_test(tc, pipelined_requests_each_decided);
    tcase_add_test(tc, body_over_limit_passes_untagged);
    tcase_add_test(tc, absolute_form_uses_target_authority);
    tcase_add_test(tc, non_http_after_http_passes_through);
    tcase_add_test(tc, queued_bytes_keep_one_byte_back);
    tcase_add_test(tc, chunk_framing_over_limit_untagged_however_written);
    tcase_add_test(tc, full_socket_queues_a_bounded_step);
    tcase_add_test(tc, answered_request_never_sent);
    tcase_add_test(tc, answered_request_byte_by_byte);
    tcase_add_test(tc, answered_with_pipelined_request_in_same_call);
    tcase_add_test(tc, answered_after_expect_continue);
    tcase_add_test(tc, record_send_tags_as_before);
    suite_add_tcase(s, tc);
    return s;
}
