/* test_http_response.c - the response parser, fed every sample at every
 * split.
 *
 * A recorder turns the parser's events into a text trace, one line per
 * event, closed by the parser's final state. A sample passes when feeding
 * it whole, byte by byte, at every two-way split and at random splits gives
 * one and the same trace. When events pause the parser, the driver writes
 * where each paused feed stopped ("@N", a stream offset) after the event:
 * that too must not depend on the split, and the samples say where it is.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "suites.h"
#include "trace_text.h"


/* The trace without the "@N" pause positions: what an unpaused run gives. */
static char *without_positions(const char *trace)
{
    struct text t = { 0 };

    for (const char *s = trace; *s; s++) {
        if (s[0] == ' ' && s[1] == '@') {
            for (s += 2; *s >= '0' && *s <= '9'; s++)
                ;
            s--;
            continue;
        }
        text_add(&t, s, 1);
    }
    return t.s ? t.s : strdup("");
}

/* ---- recorder ----------------------------------------------------------- */

enum { EV_HEAD = 1, EV_DONE = 2, EV_ALL = 3 };

struct rec {
    struct http_res_parser p;
    struct text trace;
    unsigned pause_on;   /* the events that answer HTTP_PAUSE */
    int paused;          /* the last event answered HTTP_PAUSE */
    /* What each final answer is to, in order: 'G' anything plain, 'H' HEAD,
     * 'C' CONNECT; past the end, plain. NULL: all plain. */
    const char *requests;
    size_t answer;       /* final answers completed */
};

static int request_is(const struct rec *r, char kind)
{
    return r->requests && r->answer < strlen(r->requests) &&
           r->requests[r->answer] == kind;
}

/* What a caller does: say what the request of the next answer was, here
 * at the start and from each final answer's on_message_complete. */
static void announce_request(struct rec *r)
{
    if (request_is(r, 'H') || request_is(r, 'C'))
        http_res_set_request(&r->p, request_is(r, 'H'), request_is(r, 'C'));
}

static int answer(struct rec *r, unsigned kind)
{
    r->paused = (r->pause_on & kind) != 0;
    return r->paused ? HTTP_PAUSE : HTTP_CONTINUE;
}

static int rec_head(void *ctx, int status)
{
    struct rec *r = ctx;
    enum http_res_state s = r->p.state;

    expect(status == 101 || (status >= 200 && status <= 599),
           "head of an interim answer");
    expect(s == HTTP_RES_BODY || s == HTTP_RES_CHUNK_SIZE ||
               s == HTTP_RES_UNTIL_CLOSE,
           "state after a head");
    expect(r->p.head_request == request_is(r, 'H') &&
               r->p.connect_request == request_is(r, 'C'),
           "request settings lost before the answer's end");
    text_printf(&r->trace, "H %d\n", status);
    return answer(r, EV_HEAD);
}

static int rec_done(void *ctx, int status, int interim)
{
    struct rec *r = ctx;
    enum http_res_state s = r->p.state;

    expect(interim == (status >= 100 && status < 200 && status != 101),
           "interim flag");
    expect(s == HTTP_RES_LINE || (!interim && s == HTTP_RES_TUNNEL),
           "not ready for the next answer");
    expect(r->p.line_len == 0, "a line left over");
    if (interim) {
        expect(r->p.head_request == request_is(r, 'H') &&
                   r->p.connect_request == request_is(r, 'C'),
               "request settings lost after an interim answer");
        text_printf(&r->trace, "M %d interim\n", status);
    } else {
        expect(!r->p.head_request && !r->p.connect_request,
               "request settings kept after a final answer");
        r->answer++;
        announce_request(r);
        text_printf(&r->trace, "M %d\n", status);
    }
    return answer(r, EV_DONE);
}

static const struct http_res_callbacks rec_callbacks = { rec_head, rec_done };

/* ---- samples ------------------------------------------------------------ */

struct sample {
    const char *name;
    const char *bytes;
    size_t len;
    const char *requests;  /* see struct rec */
    int eof;               /* the connection closes after the bytes */
    const char *trace;     /* fed whole, pausing at every event */
};

#define SAMPLE(name, bytes, requests, eof, trace) \
    { name, bytes, sizeof(bytes) - 1, requests, eof, trace }

static const struct sample samples[] = {
    SAMPLE("200 with Content-Length",
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
           "Content-Length: 5\r\n\r\nhello",
           NULL, 0,
           "H 200 @64\n"
           "M 200 @69\n"
           "S line used 69\n"),
    SAMPLE("chunked with extensions and trailers",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n",
           NULL, 0,
           "H 200 @47\n"
           "M 200 @96\n"
           "S line used 96\n"),
    SAMPLE("chunked: upper case, leading zeros, quoted extension",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
           "000A ; name=\"a;b\"\r\n0123456789\r\n0\r\n\r\n",
           NULL, 0,
           "H 200 @47\n"
           "M 200 @83\n"
           "S line used 83\n"),
    SAMPLE("204 has no body: what follows is the next answer",
           "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
           NULL, 0,
           "H 204 @36\n"
           "M 204 @36\n"
           "H 200 @74\n"
           "M 200 @76\n"
           "S line used 76\n"),
    SAMPLE("204 with Transfer-Encoding: chunked, still no body",
           "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
           NULL, 0,
           "H 204 @55\n"
           "M 204 @55\n"
           "H 200 @93\n"
           "M 200 @93\n"
           "S line used 93\n"),
    SAMPLE("304 with Content-Length: no body",
           "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n"
           "Content-Length: 1234\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
           NULL, 0,
           "H 304 @62\n"
           "M 304 @62\n"
           "H 200 @100\n"
           "M 200 @100\n"
           "S line used 100\n"),
    SAMPLE("HEAD answer with Content-Length: no body; the next is to GET",
           "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
           "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop",
           "HG", 0,
           "H 200 @41\n"
           "M 200 @41\n"
           "H 404 @86\n"
           "M 404 @89\n"
           "S line used 89\n"),
    SAMPLE("100 Continue, then 200, in one buffer",
           "HTTP/1.1 100 Continue\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
           NULL, 0,
           "M 100 interim @25\n"
           "H 200 @63\n"
           "M 200 @67\n"
           "S line used 67\n"),
    SAMPLE("103 Early Hints, then 201",
           "HTTP/1.1 103 Early Hints\r\n"
           "Link: </style.css>; rel=preload; as=style\r\n\r\n"
           "HTTP/1.1 201 Created\r\nLocation: /v1/charges/ch_1\r\n"
           "Content-Length: 2\r\n\r\n{}",
           NULL, 0,
           "M 103 interim @71\n"
           "H 201 @142\n"
           "M 201 @144\n"
           "S line used 144\n"),
    SAMPLE("1xx in a row, one with a Content-Length it does not use",
           "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"
           "HTTP/1.1 102 Processing\r\n\r\n"
           "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
           NULL, 0,
           "M 100 interim @44\n"
           "M 102 interim @71\n"
           "M 103 interim @111\n"
           "H 200 @149\n"
           "M 200 @149\n"
           "S line used 149\n"),
    SAMPLE("HEAD outlives an interim answer, not the final one",
           "HTTP/1.1 100 Continue\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
           "HG", 0,
           "M 100 interim @25\n"
           "H 200 @64\n"
           "M 200 @64\n"
           "H 200 @102\n"
           "M 200 @103\n"
           "S line used 103\n"),
    SAMPLE("101 Switching Protocols: tunnel bytes are not consumed",
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n\r\n\x81\x05hello",
           NULL, 0,
           "H 101 @77\n"
           "M 101 @77\n"
           "S tunnel used 77\n"),
    SAMPLE("200 to CONNECT: the tunnel starts after the head",
           "HTTP/1.1 200 Connection Established\r\nContent-Length: 10\r\n\r\n"
           "\x16\x03\x03\x00\x10HTTP/1.1 200 OK\r\n\r\n",
           "C", 0,
           "H 200 @59\n"
           "M 200 @59\n"
           "S tunnel used 59\n"),
    SAMPLE("407 to CONNECT has a body; the next CONNECT's 200 a tunnel",
           "HTTP/1.1 407 Proxy Authentication Required\r\n"
           "Content-Length: 3\r\n\r\nno!"
           "HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03",
           "CC", 0,
           "H 407 @65\n"
           "M 407 @68\n"
           "H 200 @87\n"
           "M 200 @87\n"
           "S tunnel used 87\n"),
    SAMPLE("read until close, completed by http_res_eof",
           "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
           "<p>HTTP/1.1 200 OK\r\n\r\n</p>",
           NULL, 1,
           "H 200 @44\n"
           "eof\n"
           "M 200\n"
           "S line used 70\n"),
    SAMPLE("Transfer-Encoding not ending in chunked: read until close",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
           "0\r\n\r\n\x1f\x8b",
           NULL, 1,
           "H 200 @53\n"
           "eof\n"
           "M 200\n"
           "S line used 60\n"),
    SAMPLE("Transfer-Encoding and Content-Length: Transfer-Encoding wins",
           "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
           "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
           "HTTP/1.1 204 \r\n\r\n",
           NULL, 0,
           "H 200 @68\n"
           "M 200 @81\n"
           "H 204 @98\n"
           "M 204 @98\n"
           "S line used 98\n"),
    SAMPLE("two pipelined answers in one buffer",
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
           "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
           "2\r\nxy\r\n0\r\n\r\n",
           NULL, 0,
           "H 200 @38\n"
           "M 200 @41\n"
           "H 201 @93\n"
           "M 201 @105\n"
           "S line used 105\n"),
    SAMPLE("bare LF line endings",
           "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n",
           NULL, 0,
           "H 200 @35\n"
           "M 200 @37\n"
           "H 200 @82\n"
           "M 200 @90\n"
           "S line used 90\n"),
    SAMPLE("status without reason, and with an empty one",
           "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"
           "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
           NULL, 0,
           "H 200 @35\n"
           "M 200 @35\n"
           "H 404 @71\n"
           "M 404 @71\n"
           "S line used 71\n"),
    SAMPLE("HTTP/1.0, a higher minor version, status 599",
           "HTTP/1.0 204 x\r\n\r\nHTTP/1.9 599 \r\nContent-Length: 1\r\n\r\nz",
           NULL, 0,
           "H 204 @18\n"
           "M 204 @18\n"
           "H 599 @54\n"
           "M 599 @55\n"
           "S line used 55\n"),
    SAMPLE("Content-Length repeated and listed, all equal",
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
           "content-length: 3, 3\r\n\r\nxyz",
           NULL, 0,
           "H 200 @60\n"
           "M 200 @63\n"
           "S line used 63\n"),
    SAMPLE("a body that looks like an answer is a body",
           "HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n"
           "\r\nHTTP/1.1 500 Oops\r\n\r\n\0"
           "HTTP/1.1 204 x\r\n\r\n",
           NULL, 0,
           "H 200 @39\n"
           "M 200 @63\n"
           "H 204 @81\n"
           "M 204 @81\n"
           "S line used 81\n"),
    SAMPLE("eof inside a counted body completes nothing",
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
           NULL, 1,
           "H 200 @39\n"
           "eof\n"
           "S body used 44\n"),
    SAMPLE("eof inside a chunk completes nothing",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
           NULL, 1,
           "H 200 @47\n"
           "eof\n"
           "S chunk-data used 53\n"),
    SAMPLE("eof inside a head completes nothing",
           "HTTP/1.1 200 OK\r\nContent-Len",
           NULL, 1,
           "eof\n"
           "S headers used 28\n"),
};

/* ---- driver ------------------------------------------------------------- */

static const char *state_name(enum http_res_state s)
{
    static const char *names[] = {
        "line", "headers", "body", "chunk-size", "chunk-data",
        "chunk-data-end", "trailers", "until-close", "tunnel", "error"
    };
    return names[s];
}

static int stuck(const struct http_res_parser *p)
{
    return p->state == HTTP_RES_ERROR || p->state == HTTP_RES_TUNNEL;
}

/* Feeds the slices [0,cuts[0]), [cuts[0],cuts[1]) ... [cuts[n-1],len) of
 * the sample, each again after a pause, and returns the trace. */
static char *run_cuts(const struct sample *smp, const size_t *cuts,
                      size_t ncuts, unsigned pause_on)
{
    const char *s = smp->bytes;
    size_t len = smp->len, off = 0;
    struct rec r;

    memset(&r, 0, sizeof r);
    http_res_init(&r.p, &rec_callbacks, &r);
    r.pause_on = pause_on;
    r.requests = smp->requests;
    announce_request(&r);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        for (;;) {
            size_t got;
            r.paused = 0;
            got = http_res_feed(&r.p, s + off, to - off);
            expect(got <= to - off, "consumed more than fed");
            off += got;
            if (!r.paused)
                break;
            r.trace.len--;  /* the paused event's line: say where it was */
            text_printf(&r.trace, " @%zu\n", off);
        }
        if (off < to)
            break;
    }
    if (off < len) {
        /* Only an error or a tunnel leaves bytes, and then for good. */
        expect(stuck(&r.p), "bytes left without an error or a tunnel");
        expect_eq(http_res_feed(&r.p, s + off, len - off), 0,
                  "consumed after an error or in a tunnel");
    }
    if (smp->eof) {
        text_add(&r.trace, "eof\n", 4);
        http_res_eof(&r.p);
    }
    if (r.p.state == HTTP_RES_ERROR) {
        expect(r.p.error != NULL, "error without a reason");
        /* How much an error consumed depends on the split. */
        text_printf(&r.trace, "E %s\n", r.p.error);
    } else {
        text_printf(&r.trace, "S %s used %zu\n", state_name(r.p.state), off);
    }
    http_res_free(&r.p);
    return r.trace.s ? r.trace.s : strdup("");
}

/* How much of the sample, fed whole, the parser took. */
static size_t consumed_whole(const struct sample *smp)
{
    struct http_res_parser p;
    size_t got;

    http_res_init(&p, NULL, NULL);
    got = http_res_feed(&p, smp->bytes, smp->len);
    http_res_free(&p);
    return got;
}

/* A fixed-seed xorshift, the same on every libc. */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Traces can be long: show where they part, not all. */
static void expect_same(const char *want, char *got, const char *how)
{
    size_t i = 0, from;

    while (want[i] && want[i] == got[i])
        i++;
    from = i > 60 ? i - 60 : 0;
    ck_assert_msg(want[i] == got[i],
                  "%s differs at %zu:\n...%.120s\ninstead of\n...%.120s", how,
                  i, got + from, want + from);
    free(got);
}

/* The trace of the sample fed whole, after checking that byte-by-byte,
 * two-way and random splits give the same. Large samples skip the two-way
 * splits. */
static char *check_splits(const struct sample *smp, unsigned pause_on)
{
    size_t len = smp->len;
    char *whole = run_cuts(smp, NULL, 0, pause_on);
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char how[64];

    ck_assert_ptr_nonnull(cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    expect_same(whole, run_cuts(smp, cuts, len ? len - 1 : 0, pause_on),
                "byte by byte");
    for (size_t k = 0; len <= 4096 && k <= len; k++) {
        snprintf(how, sizeof how, "split at %zu", k);
        expect_same(whole, run_cuts(smp, &k, 1, pause_on), how);
    }
    for (int round = 0; round < 100; round++) {
        size_t n = 1 + rng_next(&seed) % 8;
        for (size_t i = 0; i < n; i++)
            cuts[i] = len ? rng_next(&seed) % (len + 1) : 0;
        qsort(cuts, n, sizeof *cuts, cmp_size);
        snprintf(how, sizeof how, "random split %d", round);
        expect_same(whole, run_cuts(smp, cuts, n, pause_on), how);
    }
    free(cuts);
    return whole;
}

static void check_trace(const char *name, char *got, const char *want)
{
    ck_assert_msg(strcmp(got, want) == 0, "%s: trace\n%s\nwanted\n%s", name,
                  got, want);
    free(got);
}

START_TEST(test_samples)
{
    const struct sample *smp = &samples[_i];
    char *want = without_positions(smp->trace);

    check_trace(smp->name, check_splits(smp, 0), want);
    free(want);
}
END_TEST

/* Pausing changes where feeds stop, never what they report; pausing at
 * every event shows where each one's bytes end. */
START_TEST(test_samples_paused)
{
    const struct sample *smp = &samples[_i];
    char *want = without_positions(smp->trace);

    check_trace(smp->name, check_splits(smp, EV_ALL), smp->trace);
    for (unsigned kind = EV_HEAD; kind <= EV_DONE; kind <<= 1) {
        char *got = check_splits(smp, kind);
        check_trace(smp->name, without_positions(got), want);
        free(got);
    }
    free(want);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

struct bad {
    struct sample s;
    const char *why;
    size_t consumed;  /* fed whole: the bytes before the failing line */
};

#define BAD(name, bytes, why, consumed) \
    { SAMPLE(name, bytes, NULL, 0, NULL), why, consumed }

static const struct bad bads[] = {
    BAD("garbage", "hello world, how are you?\r\n\r\n", "bad HTTP version", 0),
    BAD("HTTP/2 SETTINGS frame",
        "\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
        "bad HTTP version", 0),
    BAD("HTTP/2 GOAWAY to an HTTP/1.1 request",
        "\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        "bad HTTP version", 0),
    BAD("TLS alert", "\x15\x03\x03\x00\x02\x02\x28", "bad HTTP version", 0),
    BAD("HTTP/2 status line", "HTTP/2 200\r\n\r\n", "bad HTTP version", 0),
    BAD("lower-case version", "http/1.1 200 OK\r\n\r\n", "bad HTTP version",
        0),
    BAD("two-digit minor version", "HTTP/1.10 200 OK\r\n\r\n",
        "bad HTTP version", 0),
    BAD("HTTP/0.9-style body", "<html>hello</html>\n", "bad HTTP version", 0),
    BAD("empty line before the status line", "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "bad HTTP version", 0),
    BAD("version alone", "HTTP/1.1\r\n\r\n", "no status code", 0),
    BAD("short version", "HTTP/1\r\n\r\n", "bad HTTP version", 0),
    BAD("two spaces before the code", "HTTP/1.1  200 OK\r\n\r\n",
        "bad status code", 0),
    BAD("two-digit code", "HTTP/1.1 20 OK\r\n\r\n", "bad status code", 0),
    BAD("two-digit code, line end", "HTTP/1.1 20\r\n\r\n", "bad status code",
        0),
    BAD("four-digit code", "HTTP/1.1 2000 OK\r\n\r\n", "bad status code", 0),
    BAD("no space before the reason", "HTTP/1.1 200OK\r\n\r\n",
        "bad status code", 0),
    BAD("code below 100", "HTTP/1.1 099 Low\r\n\r\n", "bad status code", 0),
    BAD("code above 599", "HTTP/1.1 600 High\r\n\r\n", "bad status code", 0),
    BAD("letter in the code", "HTTP/1.1 2x0 OK\r\n\r\n", "bad status code",
        0),
    BAD("control byte in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n",
        "bad reason phrase", 0),
    BAD("bare CR in the reason", "HTTP/1.1 200 O\rK\r\n\r\n",
        "bare CR in line", 0),
    BAD("bare CR ending the code", "HTTP/1.1 200\r\r\n\r\n", "bare CR in line",
        0),
    BAD("not HTTP after a complete answer",
        "HTTP/1.1 204 x\r\n\r\nXTTP/1.1 204 x\r\n\r\n", "bad HTTP version",
        18),
    BAD("obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\n\r\n",
        "obs-fold or leading whitespace", 25),
    BAD("space before colon", "HTTP/1.1 200 OK\r\nServer : x\r\n\r\n",
        "whitespace before colon", 17),
    BAD("no colon", "HTTP/1.1 200 OK\r\nServer\r\n\r\n", "bad header name",
        17),
    BAD("NUL in a header value", "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        "bad header value", 17),
    BAD("Content-Length overflow",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "Content-Length overflow", 17),
    BAD("Content-Length 2^64",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "Content-Length overflow", 17),
    BAD("conflicting Content-Length headers",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        "hello!",
        "conflicting Content-Length", 36),
    BAD("conflicting Content-Length list",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
        "conflicting Content-Length", 17),
    BAD("negative Content-Length",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length",
        17),
    BAD("bad Content-Length in an answer without a body",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
        "bad Content-Length", 27),
    BAD("bad Content-Length beside Transfer-Encoding",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 1 2\r\n\r\n0\r\n\r\n",
        "bad Content-Length", 45),
    BAD("Transfer-Encoding with parameters",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
        "bad Transfer-Encoding", 17),
    BAD("empty Transfer-Encoding",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
        "bad Transfer-Encoding", 17),
    BAD("bad chunk size",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "bad chunk size", 47),
    BAD("empty chunk size",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "bad chunk size", 47),
    BAD("chunk size then whitespace",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n",
        "bad chunk size", 47),
    BAD("chunk size overflow",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "10000000000000000\r\n",
        "chunk size overflow", 47),
    BAD("chunk data longer than its size",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nxy\r\n0\r\n\r\n",
        "bad chunk terminator", 51),
    BAD("bad trailer",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\nX-T : v\r\n\r\n",
        "whitespace before colon", 50),
};

START_TEST(test_errors)
{
    const struct bad *b = &bads[_i];
    char *trace = check_splits(&b->s, 0);
    char want[128];
    size_t used = consumed_whole(&b->s);

    snprintf(want, sizeof want, "E %s\n", b->why);
    ck_assert_msg(strstr(trace, want) != NULL, "%s: trace\n%s", b->s.name,
                  trace);
    ck_assert_msg(used == b->consumed, "%s: consumed %zu, not %zu", b->s.name,
                  used, b->consumed);
    free(trace);
}
END_TEST

/* Not HTTP is known from the first byte: no waiting for an LF. */
START_TEST(test_error_early)
{
    struct http_res_parser p;

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, "\0", 1), 0);
    ck_assert_int_eq(p.state, HTTP_RES_ERROR);
    ck_assert_str_eq(p.error, "bad HTTP version");
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
    http_res_free(&p);

    /* A status line still arriving, or a CR that may end it, is not judged;
     * a wrong byte in its first bytes is, at once. */
    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.", 7), 7);
    ck_assert_uint_eq(http_res_feed(&p, "1 2", 3), 3);
    ck_assert_uint_eq(http_res_feed(&p, "\r", 1), 1);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    ck_assert_uint_eq(http_res_feed(&p, "\n", 1), 0);
    ck_assert_str_eq(p.error, "bad status code");
    http_res_free(&p);

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.1 7", 10), 0);
    ck_assert_str_eq(p.error, "bad status code");
    http_res_free(&p);

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.1 200\r", 13), 13);
    ck_assert_uint_eq(http_res_feed(&p, "\n\r\n", 3), 3);
    ck_assert_int_eq(p.state, HTTP_RES_UNTIL_CLOSE);
    http_res_free(&p);
}
END_TEST

/* ---- byte classes and status codes -------------------------------------- */

/* The trace of one answer fed whole, for the tables below. */
static char *run_one(const char *s, size_t len, const char *requests)
{
    struct sample smp = SAMPLE("one", "", NULL, 0, NULL);

    smp.bytes = s;
    smp.len = len;
    smp.requests = requests;
    return run_cuts(&smp, NULL, 0, 0);
}

/* Every three-character code, to each kind of request: which are refused,
 * which are interim, which end with their head, which become a tunnel.
 * The answer carries "Content-Length: 1" and one body byte, 'x', which a
 * bodiless answer leaves to be the (malformed) start of the next one. */
START_TEST(test_status_codes)
{
    static const char *kinds[] = { "G", "H", "C" };

    for (int code = 0; code < 1000; code++) {
        for (size_t k = 0; k < 3; k++) {
            char s[64], want[128];
            int n = snprintf(s, sizeof s,
                             "HTTP/1.1 %03d R\r\nContent-Length: 1\r\n\r\nx",
                             code);
            char *got = run_one(s, (size_t)n, kinds[k]);
            int head = k == 1, connect = k == 2;

            if (code < 100 || code > 599)
                snprintf(want, sizeof want, "E bad status code\n");
            else if (code < 200 && code != 101)
                snprintf(want, sizeof want,
                         "M %d interim\nE bad HTTP version\n", code);
            else if (code == 101 || (connect && code / 100 == 2))
                snprintf(want, sizeof want, "H %d\nM %d\nS tunnel used %d\n",
                         code, code, n - 1);
            else if (head || code == 204 || code == 304)
                snprintf(want, sizeof want,
                         "H %d\nM %d\nE bad HTTP version\n", code, code);
            else
                snprintf(want, sizeof want, "H %d\nM %d\nS line used %d\n",
                         code, code, n);
            ck_assert_msg(strcmp(got, want) == 0, "%03d to %s: %s", code,
                          kinds[k], got);
            free(got);
        }
    }
}
END_TEST

static int accepts(const char *s, size_t len)
{
    struct http_res_parser p;
    size_t got;
    int ok;

    http_res_init(&p, NULL, NULL);
    got = http_res_feed(&p, s, len);
    ok = got == len && p.state == HTTP_RES_LINE;
    http_res_free(&p);
    return ok;
}

START_TEST(test_version_bytes)
{
    char s[] = "HTTP/1.? 204 x\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[7] = (char)c;
        ck_assert_msg(accepts(s, sizeof s - 1) == (c >= '0' && c <= '9'),
                      "byte %d", c);
    }
}
END_TEST

START_TEST(test_reason_bytes)
{
    char s[] = "HTTP/1.1 204 a?b\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[14] = (char)c;
        ck_assert_msg(accepts(s, sizeof s - 1) ==
                          (c == '\t' || (c >= 0x20 && c != 0x7f)),
                      "byte %d", c);
    }
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

/* A bodiless answer (204) with a head of exactly head_len bytes: the status
 * line, one header "X: aaa...", the blank line; after an interim answer
 * when interim is set. */
static struct sample head_of(size_t head_len, int interim)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char line[] = "HTTP/1.1 204 OK\r\nX: ";
    size_t pre = interim ? sizeof cont - 1 : 0;
    size_t fixed = sizeof line - 1 + 4;  /* and "\r\n\r\n" */
    struct sample smp = SAMPLE("head", "", NULL, 0, NULL);
    char *s = malloc(pre + head_len);

    ck_assert_ptr_nonnull(s);
    memcpy(s, cont, pre);
    memcpy(s + pre, line, sizeof line - 1);
    memset(s + pre + sizeof line - 1, 'a', head_len - fixed);
    memcpy(s + pre + head_len - 4, "\r\n\r\n", 4);
    smp.bytes = s;
    smp.len = pre + head_len;
    return smp;
}

START_TEST(test_head_limit)
{
    struct sample smp = head_of(HTTP_MAX_HEAD, 0);
    char want[64];

    snprintf(want, sizeof want, "H 204\nM 204\nS line used %d\n",
             HTTP_MAX_HEAD);
    check_trace("largest head", check_splits(&smp, 0), want);
    free((char *)smp.bytes);

    /* Each answer's head has the whole limit. */
    smp = head_of(HTTP_MAX_HEAD, 1);
    snprintf(want, sizeof want, "M 100 interim\nH 204\nM 204\nS line used %zu\n",
             smp.len);
    check_trace("largest head after a 100", check_splits(&smp, 0), want);
    free((char *)smp.bytes);

    /* One byte more: the header still fits, the blank line does not. */
    smp = head_of(HTTP_MAX_HEAD + 1, 0);
    check_trace("head too large", check_splits(&smp, 0), "E head too large\n");
    ck_assert_uint_eq(consumed_whole(&smp), HTTP_MAX_HEAD - 1);
    free((char *)smp.bytes);
}
END_TEST

/* A status line longer than the limit: refused for its start when that is
 * wrong, else for its size, however it arrives. */
START_TEST(test_long_status_line)
{
    static const struct {
        const char *start;
        const char *why;
    } cases[] = {
        { "HTTP/1.1 2x0 ", "E bad status code\n" },
        { "HTTP/1.1 200\r", "E bare CR in line\n" },
        { "HTTP/1.1 200 ", "E head too large\n" },
        { "\x16\x03\x01", "E bad HTTP version\n" },
    };
    size_t len = HTTP_MAX_HEAD + 100;
    char *s = malloc(len);

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sample smp = SAMPLE("long status line", "", NULL, 0, NULL);
        size_t n = strlen(cases[i].start);

        memcpy(s, cases[i].start, n);
        memset(s + n, 'a', len - n - 4);
        memcpy(s + len - 4, "\r\n\r\n", 4);
        smp.bytes = s;
        smp.len = len;
        check_trace(cases[i].start, check_splits(&smp, 0), cases[i].why);
    }
    free(s);
}
END_TEST

/* A chunk-size or trailer line is capped like a head. */
START_TEST(test_long_chunk_line)
{
    static const char head[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;";
    struct sample smp = SAMPLE("long chunk line", "", NULL, 0, NULL);
    size_t len = sizeof head - 1 + HTTP_MAX_HEAD + 2;
    char *s = malloc(len);

    ck_assert_ptr_nonnull(s);
    memcpy(s, head, sizeof head - 1);
    memset(s + sizeof head - 1, 'e', len - (sizeof head - 1) - 2);
    memcpy(s + len - 2, "\r\n", 2);
    smp.bytes = s;
    smp.len = len;
    check_trace("long chunk line", check_splits(&smp, 0),
                "H 200\nE line too long\n");
    free(s);
}
END_TEST

/* Bodies are stepped over, never copied: a body or chunk of any size costs
 * one step per feed, and no line buffer. */
START_TEST(test_large_bodies_skipped)
{
    static const char *heads[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "FFFFFFFFFFFFFFFF\r\n",
    };
    size_t chunk = 1 << 20;
    char *body = calloc(1, chunk);

    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < 2; i++) {
        struct http_res_parser p;
        uint64_t left;

        http_res_init(&p, NULL, NULL);
        ck_assert_uint_eq(http_res_feed(&p, heads[i], strlen(heads[i])),
                          strlen(heads[i]));
        ck_assert_int_eq(p.state, i == 0 ? HTTP_RES_BODY : HTTP_RES_CHUNK_DATA);
        left = p.remaining;
        ck_assert(left == UINT64_MAX);
        for (int k = 0; k < 64; k++) {
            ck_assert_uint_eq(http_res_feed(&p, body, chunk), chunk);
            left -= chunk;
            ck_assert(p.remaining == left);
        }
        ck_assert_ptr_null(p.line);
        http_res_free(&p);
    }
    free(body);
}
END_TEST

/* ---- pauses ------------------------------------------------------------- */

struct pauser {
    unsigned pause_on;
    int events;
    int status, interim;
};

static int p_head(void *ctx, int status)
{
    struct pauser *x = ctx;

    x->events++;
    x->status = status;
    x->interim = -1;
    return (x->pause_on & EV_HEAD) ? HTTP_PAUSE : HTTP_CONTINUE;
}

static int p_done(void *ctx, int status, int interim)
{
    struct pauser *x = ctx;

    x->events++;
    x->status = status;
    x->interim = interim;
    return (x->pause_on & EV_DONE) ? HTTP_PAUSE : HTTP_CONTINUE;
}

static const struct http_res_callbacks pause_callbacks = { p_head, p_done };

START_TEST(test_pause_counts)
{
    static const char s[] =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        "HTTP/1.1 204 \r\n\r\n";
    struct pauser x = { EV_ALL, 0, 0, 0 };
    struct http_res_parser p;
    size_t len = sizeof s - 1, off = 0;
    /* Where each event's bytes end. */
    static const size_t stops[] = { 25, 63, 68, 85, 85 };

    http_res_init(&p, &pause_callbacks, &x);
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        off += http_res_feed(&p, s + off, len - off);
        ck_assert_uint_eq(off, stops[i]);
        ck_assert_int_eq(x.events, (int)i + 1);
    }
    ck_assert_int_eq(x.status, 204);
    ck_assert_int_eq(x.interim, 0);
    ck_assert_uint_eq(http_res_feed(&p, s + off, len - off), 0);
    ck_assert_int_eq(x.events, 5);
    http_res_free(&p);
}
END_TEST

/* An answer without a body completes with its blank line; if the caller
 * paused at the head, the completion comes with the next feed, even an
 * empty one, and so does the switch to a tunnel. */
START_TEST(test_pause_head_no_body)
{
    static const char *answers[] = {
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    };

    for (size_t i = 0; i < 2; i++) {
        struct pauser x = { EV_HEAD, 0, 0, 0 };
        struct http_res_parser p;
        size_t len = strlen(answers[i]);

        http_res_init(&p, &pause_callbacks, &x);
        ck_assert_uint_eq(http_res_feed(&p, answers[i], len), len);
        ck_assert_int_eq(x.events, 1);
        ck_assert_int_eq(p.state, HTTP_RES_BODY);
        ck_assert_uint_eq(http_res_feed(&p, NULL, 0), 0);
        ck_assert_int_eq(x.events, 2);
        ck_assert_int_eq(x.interim, 0);
        ck_assert_int_eq(p.state, i == 0 ? HTTP_RES_LINE : HTTP_RES_TUNNEL);
        http_res_free(&p);
    }
}
END_TEST

/* ---- parser life -------------------------------------------------------- */

START_TEST(test_no_callbacks)
{
    const struct sample *s = &samples[7];  /* 100 Continue, then 200 */
    static const struct http_res_callbacks none = { 0 };
    struct http_res_parser p;

    ck_assert_str_eq(s->name, "100 Continue, then 200, in one buffer");
    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, s->bytes, s->len), s->len);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    http_res_free(&p);
    http_res_init(&p, &none, NULL);
    for (size_t i = 0; i < s->len; i++)
        ck_assert_uint_eq(http_res_feed(&p, s->bytes + i, 1), 1);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    http_res_free(&p);
}
END_TEST

/* Whether the server ends the connection after a final answer (RFC 9112
 * §9.3, §9.6), read whole and one byte at a time. */
static int closes_after(const char *answer, int bytewise)
{
    struct http_res_parser p;
    size_t len = strlen(answer), fed = 0;

    http_res_init(&p, NULL, NULL);
    while (fed < len) {
        size_t n = bytewise ? 1 : len - fed;
        ck_assert_uint_eq(http_res_feed(&p, answer + fed, n), n);
        fed += n;
    }
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    int closes = p.closes_after;
    http_res_free(&p);
    return closes;
}

START_TEST(test_closes_after)
{
    static const struct {
        const char *answer;
        int closes;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0 },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 1 },
        { "HTTP/1.1 200 OK\r\nconnection:  Keep-Alive , CLOSE \r\n"
          "Content-Length: 0\r\n\r\n", 1 },
        { "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nConnection: close\r\n"
          "Content-Length: 0\r\n\r\n", 1 },
        { "HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", 0 },
        { "HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n", 0 },
        { "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1 },
        { "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 0 },
        /* An interim answer's options are its own; the final one decides. */
        { "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n"
          "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0 },
        /* Each final answer decides anew. */
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++)
            ck_assert_msg(closes_after(cases[i].answer, bytewise) == cases[i].closes,
                          "case %zu (%s): closes_after should be %d", i,
                          bytewise ? "byte by byte" : "whole", cases[i].closes);
}
END_TEST

/* Lines that lie whole in a feed are parsed where they lie; a line cut by
 * a feed's end is buffered, and the buffer outlives the answer. */
START_TEST(test_line_buffer)
{
    static const char s[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "HTTP/1.1 204 x\r\n\r\n";
    struct http_res_parser p;
    char *line;
    size_t cap;

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, s, sizeof s - 1), sizeof s - 1);
    ck_assert_ptr_null(p.line);
    http_res_free(&p);

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, s, 5), 5);
    ck_assert_ptr_nonnull(p.line);
    ck_assert_uint_eq(p.line_len, 5);
    ck_assert_uint_eq(http_res_feed(&p, s + 5, 40 - 5), 40 - 5);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    ck_assert_uint_eq(p.line_len, 0);
    line = p.line;
    cap = p.line_cap;
    ck_assert_uint_eq(http_res_feed(&p, s + 40, 3), 3);
    ck_assert_ptr_eq(p.line, line);
    ck_assert_uint_eq(p.line_cap, cap);
    http_res_free(&p);
    ck_assert_ptr_null(p.line);
    http_res_free(&p);  /* twice is harmless */
}
END_TEST

/* What the request was: kept through interim answers, forgotten after the
 * final one, and normalised to 0 or 1. */
START_TEST(test_request_settings)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    struct http_res_parser p;

    http_res_init(&p, NULL, NULL);
    ck_assert_int_eq(p.head_request, 0);
    ck_assert_int_eq(p.connect_request, 0);
    http_res_set_request(&p, 7, 0);
    ck_assert_int_eq(p.head_request, 1);
    ck_assert_uint_eq(http_res_feed(&p, cont, sizeof cont - 1),
                      sizeof cont - 1);
    ck_assert_int_eq(p.head_request, 1);
    /* The head of the final answer is partly here: still its request. */
    ck_assert_uint_eq(http_res_feed(&p, ok, 10), 10);
    http_res_set_request(&p, 0, 0);
    ck_assert_uint_eq(http_res_feed(&p, ok + 10, sizeof ok - 11),
                      sizeof ok - 11);
    ck_assert_int_eq(p.state, HTTP_RES_BODY);
    ck_assert(p.remaining == 3);
    ck_assert_uint_eq(http_res_feed(&p, "abc", 3), 3);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);

    /* A CONNECT answered 407 then 200 on a new CONNECT nobody announced:
     * the 200 is an ordinary answer. */
    http_res_set_request(&p, 0, -1);
    ck_assert_int_eq(p.connect_request, 1);
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.1 407 x\r\n"
                                        "Content-Length: 0\r\n\r\n", 37), 37);
    ck_assert_int_eq(p.connect_request, 0);
    ck_assert_uint_eq(http_res_feed(&p, ok, sizeof ok - 1), sizeof ok - 1);
    ck_assert_int_eq(p.state, HTTP_RES_BODY);
    http_res_free(&p);
}
END_TEST

/* http_res_eof completes only a read-until-close answer. */
START_TEST(test_eof)
{
    static const struct {
        const char *bytes;
        enum http_res_state state;  /* before and after eof */
    } cases[] = {
        { "", HTTP_RES_LINE },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", HTTP_RES_LINE },
        { "HTTP/1.1 2", HTTP_RES_LINE },
        { "HTTP/1.1 200 OK\r\n", HTTP_RES_HEADERS },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP_RES_BODY },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          HTTP_RES_CHUNK_SIZE },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx",
          HTTP_RES_CHUNK_DATA_END },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
          HTTP_RES_TRAILERS },
        { "HTTP/1.1 101 x\r\n\r\n", HTTP_RES_TUNNEL },
        { "nope", HTTP_RES_ERROR },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pauser x = { 0, 0, 0, 0 };
        struct http_res_parser p;
        int events;

        http_res_init(&p, &pause_callbacks, &x);
        http_res_feed(&p, cases[i].bytes, strlen(cases[i].bytes));
        ck_assert_msg(p.state == cases[i].state, "case %zu: state %d", i,
                      (int)p.state);
        events = x.events;
        http_res_eof(&p);
        ck_assert_int_eq(x.events, events);
        ck_assert_int_eq(p.state, cases[i].state);
        http_res_free(&p);
    }
}
END_TEST

/* After eof completes a read-until-close answer, the parser is as new,
 * HEAD setting included. */
START_TEST(test_eof_until_close)
{
    static const char s[] = "HTTP/1.0 500 Oops\r\n\r\nbody";
    struct pauser x = { EV_ALL, 0, 0, 0 };
    struct http_res_parser p;

    http_res_init(&p, &pause_callbacks, &x);
    http_res_set_request(&p, 0, 1);  /* a CONNECT, refused */
    ck_assert_uint_eq(http_res_feed(&p, s, sizeof s - 1), 21);
    ck_assert_uint_eq(http_res_feed(&p, s + 21, sizeof s - 22), sizeof s - 22);
    ck_assert_int_eq(p.state, HTTP_RES_UNTIL_CLOSE);
    ck_assert_int_eq(x.events, 1);
    http_res_eof(&p);
    ck_assert_int_eq(x.events, 2);
    ck_assert_int_eq(x.status, 500);
    ck_assert_int_eq(x.interim, 0);
    ck_assert_int_eq(p.state, HTTP_RES_LINE);
    ck_assert_int_eq(p.connect_request, 0);
    http_res_eof(&p);  /* nothing more to complete */
    ck_assert_int_eq(x.events, 2);
    http_res_free(&p);
}
END_TEST

START_TEST(test_tunnel_and_error_consume_nothing)
{
    static const char up[] = "HTTP/1.1 101 x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    struct http_res_parser p;

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, up, sizeof up - 1), 18);
    ck_assert_int_eq(p.state, HTTP_RES_TUNNEL);
    ck_assert_uint_eq(http_res_feed(&p, up + 18, 4), 0);
    ck_assert_uint_eq(http_res_feed(&p, NULL, 0), 0);
    http_res_free(&p);

    http_res_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_res_feed(&p, "HTTP/1.1 200 OK\r\nA:\x01\r\n", 23),
                      17);
    ck_assert_int_eq(p.state, HTTP_RES_ERROR);
    ck_assert_str_eq(p.error, "bad header value");
    ck_assert_uint_eq(http_res_feed(&p, "\r\n", 2), 0);
    http_res_free(&p);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *http_response_suite(void)
{
    Suite *s = suite_create("http_response");
    TCase *samples_tc = tcase_create("samples");
    TCase *errors_tc = tcase_create("errors");
    TCase *pause_tc = tcase_create("pause");
    TCase *misc_tc = tcase_create("misc");

    /* Every split of every sample takes a while under sanitizers; under
     * valgrind, run with CK_FORK=no (no timeouts) or raise
     * CK_TIMEOUT_MULTIPLIER. */
    tcase_set_timeout(samples_tc, 60);
    tcase_set_timeout(errors_tc, 60);
    tcase_set_timeout(pause_tc, 60);
    tcase_set_timeout(misc_tc, 60);
    tcase_add_loop_test(samples_tc, test_samples, 0, COUNT(samples));
    tcase_add_loop_test(errors_tc, test_errors, 0, COUNT(bads));
    tcase_add_test(errors_tc, test_error_early);
    tcase_add_test(errors_tc, test_status_codes);
    tcase_add_test(errors_tc, test_version_bytes);
    tcase_add_test(errors_tc, test_reason_bytes);
    tcase_add_test(errors_tc, test_head_limit);
    tcase_add_test(errors_tc, test_long_status_line);
    tcase_add_test(errors_tc, test_long_chunk_line);
    tcase_add_loop_test(pause_tc, test_samples_paused, 0, COUNT(samples));
    tcase_add_test(pause_tc, test_pause_counts);
    tcase_add_test(pause_tc, test_pause_head_no_body);
    tcase_add_test(misc_tc, test_large_bodies_skipped);
    tcase_add_test(misc_tc, test_no_callbacks);
    tcase_add_test(misc_tc, test_line_buffer);
    tcase_add_test(misc_tc, test_request_settings);
    tcase_add_test(misc_tc, test_eof);
    tcase_add_test(misc_tc, test_eof_until_close);
    tcase_add_test(misc_tc, test_closes_after);
    tcase_add_test(misc_tc, test_tunnel_and_error_consume_nothing);
    suite_add_tcase(s, samples_tc);
    suite_add_tcase(s, errors_tc);
    suite_add_tcase(s, pause_tc);
    suite_add_tcase(s, misc_tc);
    return s;
}
