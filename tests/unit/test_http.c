/* test_http.c - the request parser, fed every sample at every split.
 *
 * A recorder turns the parser's events into a text trace, one line per
 * event, consecutive body events coalesced, closed by the parser's final
 * state. A sample passes when feeding it whole, byte by byte, at every
 * two-way split and at random splits gives one and the same trace. The
 * recorder also checks every offset an event reports against the bytes of
 * the sample, and the driver checks that a paused feed stopped right after
 * the bytes of the event that paused it.
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


/* Printable ASCII as is, anything else (and the backslash) as \xNN. */
static void text_escaped(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            text_add(t, s + i, 1);
        else
            text_printf(t, "\\x%02x", c);
    }
}

/* ---- recorder ----------------------------------------------------------- */

enum {
    EV_LINE = 1, EV_HEADER = 2, EV_HEAD = 4, EV_BODY = 8, EV_DONE = 16,
    EV_ALL = 31
};

struct rec {
    struct http_req_parser p;
    struct text trace;
    int in_body;          /* the last event was on_body: coalesce the next */
    unsigned pause_on;    /* the events that answer HTTP_PAUSE */
    int paused;           /* the last event answered HTTP_PAUSE */
    const char *stream;   /* the whole sample; every feed is a slice of it */
    size_t stream_len;
    size_t base;          /* stream offset of the current message */
    size_t next;          /* stream offset just past the last message */
    size_t end;           /* stream offset just past the last event's bytes */
};

static int answer(struct rec *r, unsigned kind)
{
    if (kind != EV_BODY)
        r->in_body = 0;
    r->paused = (r->pause_on & kind) != 0;
    return r->paused ? HTTP_PAUSE : HTTP_CONTINUE;
}

/* Where the next message starts: after the last one and its preamble. */
static size_t skip_preamble(const struct rec *r, size_t b)
{
    for (;;) {
        if (b < r->stream_len && r->stream[b] == '\n')
            b += 1;
        else if (b + 1 < r->stream_len && r->stream[b] == '\r' &&
                 r->stream[b + 1] == '\n')
            b += 2;
        else
            return b;
    }
}

static int rec_line(void *ctx, const char *m, size_t ml, const char *t,
                    size_t tl, int v)
{
    struct rec *r = ctx;
    const char *nl;

    r->base = skip_preamble(r, r->next);
    nl = memchr(r->stream + r->base, '\n', r->stream_len - r->base);
    expect(nl != NULL, "request line without LF");
    r->end = (size_t)(nl - r->stream) + 1;
    expect_eq(r->p.message_offset, r->end - r->base, "request line end");
    expect(memcmp(r->stream + r->base, m, ml) == 0, "method bytes");
    expect(memcmp(r->stream + r->base + ml + 1, t, tl) == 0, "target bytes");
    text_add(&r->trace, "L ", 2);
    text_escaped(&r->trace, m, ml);
    text_add(&r->trace, " ", 1);
    text_escaped(&r->trace, t, tl);
    text_printf(&r->trace, " %d\n", v);
    return answer(r, EV_LINE);
}

static int rec_header(void *ctx, const char *name, size_t name_len,
                      const char *value, size_t value_len, size_t line_start,
                      size_t line_len)
{
    struct rec *r = ctx;
    const char *line = r->stream + r->base + line_start;

    r->end = r->base + line_start + line_len;
    expect(r->end <= r->stream_len, "header past the sample");
    expect_eq(r->p.message_offset, line_start + line_len, "header end");
    expect(memcmp(line, name, name_len) == 0 && line[name_len] == ':',
           "header name not at line_start");
    expect(r->stream[r->end - 1] == '\n', "header line_len");
    text_add(&r->trace, "H ", 2);
    text_escaped(&r->trace, name, name_len);
    text_add(&r->trace, "=", 1);
    text_escaped(&r->trace, value, value_len);
    text_printf(&r->trace, "@%zu+%zu\n", line_start, line_len);
    return answer(r, EV_HEADER);
}

static int rec_head(void *ctx, const struct http_head_info *info)
{
    struct rec *r = ctx;
    const char *blank = r->stream + r->base + info->blank_line_start;
    size_t blank_len = info->head_len - info->blank_line_start;

    r->end = r->base + info->head_len;
    expect(r->end <= r->stream_len, "head past the sample");
    expect_eq(r->p.message_offset, info->head_len, "head_len");
    expect(blank_len == 1 ? blank[0] == '\n'
                          : blank_len == 2 && blank[0] == '\r' &&
                                blank[1] == '\n',
           "blank_line_start");
    switch (info->framing) {
    case HTTP_BODY_NONE:
        text_add(&r->trace, "C none", 6);
        break;
    case HTTP_BODY_LENGTH:
        text_printf(&r->trace, "C len %llu",
                    (unsigned long long)info->content_length);
        break;
    case HTTP_BODY_CHUNKED:
        text_add(&r->trace, "C chunked", 9);
        break;
    }
    text_printf(&r->trace, " blank %zu head %zu%s\n", info->blank_line_start,
                info->head_len, info->upgrade ? " upgrade" : "");
    return answer(r, EV_HEAD);
}

static int rec_body(void *ctx, const char *data, size_t len)
{
    struct rec *r = ctx;

    /* Body bytes are never copied: they lie in the caller's buffer. */
    expect(len > 0, "empty body event");
    expect(data >= r->stream && data + len <= r->stream + r->stream_len,
           "body bytes not in the caller's buffer");
    r->end = (size_t)(data - r->stream) + len;
    if (r->in_body) {
        r->trace.len--;  /* reopen the last "B ...\n" line */
    } else {
        text_add(&r->trace, "B ", 2);
    }
    text_escaped(&r->trace, data, len);
    text_add(&r->trace, "\n", 1);
    r->in_body = 1;
    return answer(r, EV_BODY);
}

static int rec_done(void *ctx, size_t message_len)
{
    struct rec *r = ctx;

    r->end = r->base + message_len;
    r->next = r->end;
    expect(r->end <= r->stream_len, "message past the sample");
    expect(http_req_idle(&r->p) || http_req_is_tunnel(&r->p),
           "not idle after a message");
    text_printf(&r->trace, "M %zu\n", message_len);
    return answer(r, EV_DONE);
}

static const struct http_req_callbacks rec_callbacks = {
    rec_line, rec_header, rec_head, rec_body, rec_done
};

/* ---- driver ------------------------------------------------------------- */

struct run {
    char *trace;      /* events, then the final state */
    size_t consumed;  /* all bytes the parser took */
};

static const char *state_name(enum http_req_state s)
{
    static const char *names[] = {
        "line", "headers", "body", "chunk-size", "chunk-data",
        "chunk-data-end", "trailers", "tunnel", "error"
    };
    return names[s];
}

/* Feeds the slices [0,cuts[0]), [cuts[0],cuts[1]) ... [cuts[n-1],len) of
 * s, each again after a pause. Every slice is a piece of s itself, so that
 * the recorder can check pointers and offsets against the sample. */
static struct run run_cuts(const char *s, size_t len, const size_t *cuts,
                           size_t ncuts, unsigned pause_on)
{
    struct rec r;
    struct run out;
    size_t off = 0;

    memset(&r, 0, sizeof r);
    http_req_init(&r.p, &rec_callbacks, &r);
    r.pause_on = pause_on;
    r.stream = s;
    r.stream_len = len;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        for (;;) {
            size_t got;
            r.paused = 0;
            got = http_req_feed(&r.p, s + off, to - off);
            expect(got <= to - off, "consumed more than fed");
            off += got;
            if (!r.paused)
                break;
            expect_eq(off, r.end, "paused feed stopped");
        }
        if (off < to)
            break;
    }
    if (off < len) {
        /* Only an error or a tunnel leaves bytes, and then for good. */
        expect(http_req_failed(&r.p) || http_req_is_tunnel(&r.p),
               "bytes left without an error or a tunnel");
        expect_eq(http_req_feed(&r.p, s + off, len - off), 0,
                  "consumed after an error or in a tunnel");
    }
    if (http_req_failed(&r.p)) {
        expect(r.p.error != NULL, "error without a reason");
        /* How much an error consumed depends on the split (see http.c). */
        text_printf(&r.trace, "E %s\n", r.p.error);
    } else {
        text_printf(&r.trace, "S %s off %zu used %zu\n",
                    state_name(r.p.state), r.p.message_offset, off);
    }
    http_req_free(&r.p);
    out.trace = r.trace.s ? r.trace.s : strdup("");
    out.consumed = off;
    return out;
}

static struct run run_whole(const char *s, size_t len, unsigned pause_on)
{
    return run_cuts(s, len, NULL, 0, pause_on);
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

/* Traces can be long (a 64 KiB header): show where they part, not all. */
static void expect_same(const char *want, struct run got, const char *how)
{
    size_t i = 0, from;

    while (want[i] && want[i] == got.trace[i])
        i++;
    from = i > 60 ? i - 60 : 0;
    ck_assert_msg(want[i] == got.trace[i],
                  "%s differs at %zu:\n...%.120s\ninstead of\n...%.120s", how,
                  i, got.trace + from, want + from);
    free(got.trace);
}

/* The trace of s fed whole, after checking that byte-by-byte, two-way and
 * random splits give the same. Large samples skip the two-way splits. */
static struct run check_splits(const char *s, size_t len, unsigned pause_on)
{
    struct run whole = run_whole(s, len, pause_on);
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char how[64];

    ck_assert_ptr_nonnull(cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    expect_same(whole.trace,
                run_cuts(s, len, cuts, len ? len - 1 : 0, pause_on),
                "byte by byte");
    for (size_t k = 0; len <= 4096 && k <= len; k++) {
        snprintf(how, sizeof how, "split at %zu", k);
        expect_same(whole.trace, run_cuts(s, len, &k, 1, pause_on), how);
    }
    for (int round = 0; round < 100; round++) {
        size_t n = 1 + rng_next(&seed) % 8;
        for (size_t i = 0; i < n; i++)
            cuts[i] = len ? rng_next(&seed) % (len + 1) : 0;
        qsort(cuts, n, sizeof *cuts, cmp_size);
        snprintf(how, sizeof how, "random split %d", round);
        expect_same(whole.trace, run_cuts(s, len, cuts, n, pause_on), how);
    }
    free(cuts);
    return whole;
}

/* ---- samples ------------------------------------------------------------ */

struct sample {
    const char *name;
    const char *bytes;
    size_t len;
    const char *trace;  /* fed whole, without pauses */
};

#define SAMPLE(name, bytes, trace) { name, bytes, sizeof(bytes) - 1, trace }

static const struct sample samples[] = {
    SAMPLE("brief example",
           "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
           "L POST /x 11\n"
           "H Host=a@18+9\n"
           "H Content-Length=5@27+19\n"
           "C len 5 blank 46 head 48\n"
           "B hello\n"
           "M 53\n"
           "S line off 0 used 53\n"),
    SAMPLE("simple GET",
           "GET /index.html HTTP/1.1\r\nHost: example.com\r\n"
           "Accept: */*\r\n\r\n",
           "L GET /index.html 11\n"
           "H Host=example.com@26+19\n"
           "H Accept=*/*@45+13\n"
           "C none blank 58 head 60\n"
           "M 60\n"
           "S line off 0 used 60\n"),
    SAMPLE("POST with Content-Length",
           "POST /v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\n"
           "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
           "{\"amount\":42}",
           "L POST /v1/charges 11\n"
           "H Host=api.stripe.com@27+22\n"
           "H Content-Type=application/json@49+32\n"
           "H Content-Length=13@81+20\n"
           "C len 13 blank 101 head 103\n"
           "B {\"amount\":42}\n"
           "M 116\n"
           "S line off 0 used 116\n"),
    SAMPLE("chunked with extensions and trailers",
           "POST /up HTTP/1.1\r\nHost: a\r\n"
           "Transfer-Encoding: gzip, chunked\r\n\r\n"
           "5;name=val\r\nhello\r\n"
           "6 ; x=\"q;\"\r\n world\r\n"
           "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
           "000;last\r\nX-Checksum: abc\r\nX-Other:  z \r\n\r\n",
           "L POST /up 11\n"
           "H Host=a@19+9\n"
           "H Transfer-Encoding=gzip, chunked@28+34\n"
           "C chunked blank 62 head 64\n"
           "B hello worldabcdefghijklmnopqrstuvwxyz\n"
           "M 178\n"
           "S line off 0 used 178\n"),
    SAMPLE("two pipelined requests",
           "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
           "GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
           "L POST /a 11\n"
           "H Host=h@18+9\n"
           "H Content-Length=3@27+19\n"
           "C len 3 blank 46 head 48\n"
           "B abc\n"
           "M 51\n"
           "L GET /b 11\n"
           "H Host=h@17+9\n"
           "C none blank 26 head 28\n"
           "M 28\n"
           "S line off 0 used 79\n"),
    SAMPLE("keep-alive sequence",
           "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
           "POST /2 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
           "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
           "POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
           "DELETE /4 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy",
           "L GET /1 11\n"
           "H Host=h@17+9\n"
           "H Connection=keep-alive@26+24\n"
           "C none blank 50 head 52\n"
           "M 52\n"
           "L POST /2 11\n"
           "H Host=h@18+9\n"
           "H Connection=keep-alive@27+24\n"
           "H Transfer-Encoding=chunked@51+28\n"
           "C chunked blank 79 head 81\n"
           "B abc\n"
           "M 94\n"
           "L POST /3 11\n"
           "H Host=h@18+9\n"
           "H Content-Length=0@27+19\n"
           "C len 0 blank 46 head 48\n"
           "M 48\n"
           "L DELETE /4 11\n"
           "H Host=h@20+9\n"
           "H Content-Length=2@29+19\n"
           "C len 2 blank 48 head 50\n"
           "B xy\n"
           "M 52\n"
           "S line off 0 used 246\n"),
    SAMPLE("absolute-form target",
           "POST http://api.example.com:8080/v1/x?y=1 HTTP/1.1\r\n"
           "Host: api.example.com:8080\r\nContent-Length: 2\r\n\r\n{}",
           "L POST http://api.example.com:8080/v1/x?y=1 11\n"
           "H Host=api.example.com:8080@52+28\n"
           "H Content-Length=2@80+19\n"
           "C len 2 blank 99 head 101\n"
           "B {}\n"
           "M 103\n"
           "S line off 0 used 103\n"),
    SAMPLE("HTTP/1.0",
           "POST /form HTTP/1.0\r\nContent-Length: 7\r\n\r\na=1&b=2",
           "L POST /form 10\n"
           "H Content-Length=7@21+19\n"
           "C len 7 blank 40 head 42\n"
           "B a=1&b=2\n"
           "M 49\n"
           "S line off 0 used 49\n"),
    SAMPLE("bare LF line endings",
           "POST /lf HTTP/1.1\nHost: h\nContent-Length: 4\n\nbody"
           "POST /lf2 HTTP/1.1\r\nHost: h\nTransfer-Encoding: chunked\n\n"
           "4\r\nwxyz\r\n0\r\n\r\n",
           "L POST /lf 11\n"
           "H Host=h@18+8\n"
           "H Content-Length=4@26+18\n"
           "C len 4 blank 44 head 45\n"
           "B body\n"
           "M 49\n"
           "L POST /lf2 11\n"
           "H Host=h@20+8\n"
           "H Transfer-Encoding=chunked@28+27\n"
           "C chunked blank 55 head 56\n"
           "B wxyz\n"
           "M 70\n"
           "S line off 0 used 119\n"),
    SAMPLE("empty-line preamble",
           "\r\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
           "\r\nGET /again HTTP/1.1\r\n\r\n",
           "L GET / 11\n"
           "H Host=h@16+9\n"
           "C none blank 25 head 27\n"
           "M 27\n"
           "L GET /again 11\n"
           "C none blank 21 head 23\n"
           "M 23\n"
           "S line off 0 used 57\n"),
    SAMPLE("Expect: 100-continue",
           "POST /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
           "Content-Length: 5\r\n\r\n12345",
           "L POST /big 11\n"
           "H Host=h@20+9\n"
           "H Expect=100-continue@29+22\n"
           "H Content-Length=5@51+19\n"
           "C len 5 blank 70 head 72\n"
           "B 12345\n"
           "M 77\n"
           "S line off 0 used 77\n"),
    SAMPLE("CONNECT, then a tunnel",
           "CONNECT api.example.com:443 HTTP/1.1\r\n"
           "Host: api.example.com:443\r\n\r\n"
           "\x16\x03\x01\x02\x00 GET / HTTP/1.1\r\n\r\n",
           "L CONNECT api.example.com:443 11\n"
           "H Host=api.example.com:443@38+27\n"
           "C none blank 65 head 67 upgrade\n"
           "M 67\n"
           "S tunnel off 0 used 67\n"),
    SAMPLE("Upgrade: websocket",
           "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
           "\x81\x85\x00\x01\x02\x03frame",
           "L GET /chat 11\n"
           "H Host=h@20+9\n"
           "H Upgrade=websocket@29+20\n"
           "H Connection=Upgrade@49+21\n"
           "H Sec-WebSocket-Version=13@70+27\n"
           "C none blank 97 head 99 upgrade\n"
           "M 99\n"
           "S tunnel off 0 used 99\n"),
    SAMPLE("Upgrade with a body: the body, then the tunnel",
           "POST /h2c HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\n"
           "ok\x50\x52\x49",
           "L POST /h2c 11\n"
           "H Upgrade=h2c@20+14\n"
           "H Content-Length=2@34+19\n"
           "C len 2 blank 53 head 55 upgrade\n"
           "B ok\n"
           "M 57\n"
           "S tunnel off 0 used 57\n"),
    SAMPLE("Content-Length repeated and listed, all equal",
           "PUT /r HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3 ,3\r\n"
           "content-length:003\r\n\r\nxyz",
           "L PUT /r 11\n"
           "H Content-Length=3@17+19\n"
           "H Content-Length=3 ,3@36+22\n"
           "H content-length=003@58+20\n"
           "C len 3 blank 78 head 80\n"
           "B xyz\n"
           "M 83\n"
           "S line off 0 used 83\n"),
    SAMPLE("header values: empty, inner and outer whitespace, obs-text",
           "GET / HTTP/1.1\r\nX-Empty:\r\nX-Blank: \t \r\n"
           "X-Inner: \t a \t b \t\r\nX-Utf8: caf\xc3\xa9\r\n\r\n",
           "L GET / 11\n"
           "H X-Empty=@16+10\n"
           "H X-Blank=@26+13\n"
           "H X-Inner=a \\x09 b@39+20\n"
           "H X-Utf8=caf\\xc3\\xa9@59+15\n"
           "C none blank 74 head 76\n"
           "M 76\n"
           "S line off 0 used 76\n"),
    SAMPLE("binary body with CR, LF and NUL",
           "POST /bin HTTP/1.1\r\nContent-Length: 6\r\n\r\n\r\n\0\n\r\xff"
           "GET / HTTP/1.1\r\n\r\n",
           "L POST /bin 11\n"
           "H Content-Length=6@20+19\n"
           "C len 6 blank 39 head 41\n"
           "B \\x0d\\x0a\\x00\\x0a\\x0d\\xff\n"
           "M 47\n"
           "L GET / 11\n"
           "C none blank 16 head 18\n"
           "M 18\n"
           "S line off 0 used 65\n"),
    SAMPLE("OPTIONS *, token method, odd target bytes",
           "OPTIONS * HTTP/1.1\r\n\r\n"
           "M-SEARCH! /p?q=\xe2\x82\xac&r=%20#f HTTP/1.1\r\n\r\n",
           "L OPTIONS * 11\n"
           "C none blank 20 head 22\n"
           "M 22\n"
           "L M-SEARCH! /p?q=\\xe2\\x82\\xac&r=%20#f 11\n"
           "C none blank 37 head 39\n"
           "M 39\n"
           "S line off 0 used 61\n"),
    SAMPLE("chunked: upper case, leading zeros, no trailers",
           "POST /c HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
           "0000000000000000000002\r\nab\r\n"
           "3 \t;ext\r\ncde\r\n0\r\n\r\n",
           "L POST /c 11\n"
           "H Transfer-Encoding=CHUNKED@18+28\n"
           "C chunked blank 46 head 48\n"
           "B abcde\n"
           "M 95\n"
           "S line off 0 used 95\n"),
    SAMPLE("Transfer-Encoding across two headers",
           "POST /t HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
           "Transfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
           "L POST /t 11\n"
           "H Transfer-Encoding=gzip@18+25\n"
           "H Transfer-Encoding=chunked@43+28\n"
           "C chunked blank 71 head 73\n"
           "B z\n"
           "M 84\n"
           "S line off 0 used 84\n"),
    SAMPLE("long method and long target: past the early check",
           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!~"
           " /0123456789/0123456789/0123456789/0123456789/0123456789 HTTP/1.1"
           "\r\n\r\n",
           "L ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!~"
           " /0123456789/0123456789/0123456789/0123456789/0123456789 11\n"
           "C none blank 133 head 135\n"
           "M 135\n"
           "S line off 0 used 135\n"),
    SAMPLE("incomplete: a request cut inside its body",
           "POST /cut HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
           "L POST /cut 11\n"
           "H Content-Length=10@20+20\n"
           "C len 10 blank 40 head 42\n"
           "B 12345\n"
           "S body off 47 used 47\n"),
    SAMPLE("incomplete: a request cut inside a header line",
           "GET / HTTP/1.1\r\nHost: exa",
           "L GET / 11\n"
           "S headers off 25 used 25\n"),
};

static void check_sample(const struct sample *s, unsigned pause_on)
{
    struct run whole = check_splits(s->bytes, s->len, pause_on);

    ck_assert_msg(strcmp(whole.trace, s->trace) == 0,
                  "%s: trace\n%s\nwanted\n%s", s->name, whole.trace, s->trace);
    free(whole.trace);
}

START_TEST(test_samples)
{
    check_sample(&samples[_i], 0);
}
END_TEST

/* Pausing at any kind of event changes where feeds stop, never what they
 * report; run_cuts checks each paused feed stopped after its event. */
START_TEST(test_samples_paused)
{
    static const unsigned kinds[] = {
        EV_LINE, EV_HEADER, EV_HEAD, EV_BODY, EV_DONE, EV_ALL
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        check_sample(&samples[_i], kinds[k]);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

struct bad {
    const char *name;
    const char *bytes;
    size_t len;
    const char *why;
    size_t consumed;  /* fed whole: the bytes before the failing line */
};

#define BAD(name, bytes, why, consumed) \
    { name, bytes, sizeof(bytes) - 1, why, consumed }

static const struct bad bads[] = {
    BAD("garbage", "hello world, how are you?\r\n\r\n", "bad HTTP version", 0),
    BAD("garbage without spaces", "!!!!!!\r\n", "bad method", 0),
    BAD("TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "bad method", 0),
    BAD("binary", "\x00\x01\x02\x03\xff\xfe\n\n", "bad method", 0),
    BAD("HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "bad HTTP version", 0),
    BAD("missing version", "GET /\r\nHost: a\r\n\r\n", "no HTTP version", 0),
    BAD("lowercase version", "GET / http/1.1\r\n\r\n", "bad HTTP version", 0),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", "bad HTTP version", 0),
    BAD("trailing space after version", "GET / HTTP/1.1 \r\n\r\n",
        "bad HTTP version", 0),
    BAD("two spaces after method", "GET  / HTTP/1.1\r\n\r\n",
        "bad request target", 0),
    BAD("empty target", "GET \r\n\r\n", "bad request target", 0),
    BAD("control byte in target", "GET /a\x7f HTTP/1.1\r\n\r\n",
        "bad request target", 0),
    BAD("no method", " / HTTP/1.1\r\n\r\n", "bad method", 0),
    BAD("bad byte in a method, past the early check",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!~"
        "\x01 / HTTP/1.1\r\n\r\n",
        "bad method", 0),
    /* A CR that ends the early check's window when it arrives may be the
     * line's terminator; the byte after it says it is not, however the
     * stream was split (fuzz_request found the split at 64 missed it). */
    BAD("bare CR at the end of the early check's window",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-\rx",
        "bare CR in line", 0),
    BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "whitespace before colon", 16),
    BAD("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", "bad header name", 16),
    BAD("empty header name", "GET / HTTP/1.1\r\n: a\r\n\r\n",
        "bad header name", 16),
    BAD("obs-fold", "GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n",
        "obs-fold or leading whitespace", 24),
    BAD("whitespace before the first header",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "obs-fold or leading whitespace", 16),
    BAD("NUL in header value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
        "bad header value", 16),
    BAD("bare CR in header value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "bare CR in line", 16),
    BAD("bare CR ending a header line",
        "GET / HTTP/1.1\r\nHost: a\r\rX: b\r\n\r\n", "bare CR in line", 16),
    BAD("bare CR in request line", "GET /\r HTTP/1.1\r\n\r\n",
        "bare CR in line", 0),
    BAD("bare CR in preamble", "\r\r\nGET / HTTP/1.1\r\n\r\n",
        "bare CR in line", 0),
    BAD("Content-Length overflow",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "Content-Length overflow", 17),
    BAD("Content-Length 2^64",
        "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "Content-Length overflow", 17),
    BAD("Content-Length 2^64-1 does not fit a message",
        "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
        "body too large", 55),
    BAD("negative Content-Length",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad Content-Length",
        17),
    BAD("signed Content-Length",
        "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", "bad Content-Length",
        17),
    BAD("empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "bad Content-Length", 17),
    BAD("Content-Length with two numbers",
        "POST / HTTP/1.1\r\nContent-Length: 1 1\r\n\r\nx",
        "bad Content-Length", 17),
    BAD("Content-Length list with an empty member",
        "POST / HTTP/1.1\r\nContent-Length: 1,,1\r\n\r\nx",
        "bad Content-Length", 17),
    BAD("Content-Length list ending in a comma",
        "POST / HTTP/1.1\r\nContent-Length: 1,\r\n\r\nx",
        "bad Content-Length", 17),
    BAD("differing Content-Length headers",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        "hello!",
        "conflicting Content-Length", 36),
    BAD("differing Content-Length list",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!",
        "conflicting Content-Length", 17),
    BAD("Transfer-Encoding then Content-Length",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 5\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding with Content-Length", 45),
    BAD("Content-Length then Transfer-Encoding",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding with Content-Length", 36),
    BAD("Transfer-Encoding not ending in chunked",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "coding after chunked", 17),
    BAD("Transfer-Encoding without chunked",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
        "final coding is not chunked", 42),
    BAD("Transfer-Encoding chunked twice",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "coding after chunked", 45),
    BAD("Transfer-Encoding with parameters",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
        "bad Transfer-Encoding", 17),
    BAD("Transfer-Encoding empty",
        "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
        "bad Transfer-Encoding", 17),
    BAD("bad chunk size",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "bad chunk size", 47),
    BAD("empty chunk size",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "bad chunk size", 47),
    BAD("chunk size then whitespace",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n",
        "bad chunk size", 47),
    BAD("chunk size overflow",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "10000000000000000\r\n",
        "chunk size overflow", 47),
    BAD("chunk size that does not fit a message",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "FFFFFFFFFFFFFFFF\r\n",
        "chunk too large", 47),
    BAD("bare CR in chunk extension",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n",
        "bare CR in line", 47),
    BAD("bare LF ending a chunk size",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
        "bare LF in chunk framing", 47),
    BAD("bare LF ending chunk data",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n",
        "bare LF in chunk framing", 51),
    BAD("bare LF ending the chunked body",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
        "bare LF in chunk framing", 50),
    BAD("bare LF ending a trailer",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: v\n\r\n",
        "bare LF in chunk framing", 50),
    BAD("Transfer-Encoding in HTTP/1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding in HTTP/1.0", 17),
    BAD("chunk data longer than its size",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nxy\r\n0\r\n\r\n",
        "bad chunk terminator", 51),
    BAD("bad trailer",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nx\r\n0\r\nX-T : v\r\n\r\n",
        "whitespace before colon", 56),
    BAD("folded trailer",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\nX-T: v\r\n w\r\n\r\n",
        "obs-fold or leading whitespace", 58),
};

START_TEST(test_errors)
{
    const struct bad *b = &bads[_i];
    struct run whole = check_splits(b->bytes, b->len, 0);
    struct run again = run_whole(b->bytes, b->len, 0);
    char want[128];

    snprintf(want, sizeof want, "E %s\n", b->why);
    ck_assert_msg(strstr(whole.trace, want) != NULL, "%s: trace\n%s", b->name,
                  whole.trace);
    ck_assert_msg(again.consumed == b->consumed, "%s: consumed %zu, not %zu",
                  b->name, again.consumed, b->consumed);
    free(whole.trace);
    free(again.trace);
}
END_TEST

/* Not HTTP is known from the first byte: no waiting for an LF. */
START_TEST(test_error_early)
{
    struct http_req_parser p;

    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, "\x16", 1), 0);
    ck_assert(http_req_failed(&p));
    ck_assert_str_eq(p.error, "bad method");
    ck_assert_uint_eq(http_req_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    http_req_free(&p);

    /* A method still being typed, or a CR that may end it, is not judged. */
    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, "\r", 1), 1);
    ck_assert_uint_eq(http_req_feed(&p, "\n", 1), 1);
    ck_assert(http_req_idle(&p));
    ck_assert_uint_eq(http_req_feed(&p, "POS", 3), 3);
    ck_assert_uint_eq(http_req_feed(&p, "T\r", 2), 2);
    ck_assert(!http_req_failed(&p));
    ck_assert_uint_eq(http_req_feed(&p, "\n", 1), 0);
    ck_assert_str_eq(p.error, "bad method");
    http_req_free(&p);
}
END_TEST

/* A request whose head is exactly head_len bytes: the request line, one
 * header "X: aaa...", the blank line. */
static char *head_of(size_t head_len, size_t *len)
{
    static const char line[] = "GET / HTTP/1.1\r\nX: ";
    size_t fixed = sizeof line - 1 + 4;  /* and "\r\n\r\n" */
    char *s = malloc(head_len);

    ck_assert_ptr_nonnull(s);
    memcpy(s, line, sizeof line - 1);
    memset(s + sizeof line - 1, 'a', head_len - fixed);
    memcpy(s + head_len - 4, "\r\n\r\n", 4);
    *len = head_len;
    return s;
}

START_TEST(test_head_limit)
{
    size_t len;
    char *s = head_of(HTTP_MAX_HEAD, &len);
    struct run r = check_splits(s, len, 0);
    char want[64];

    snprintf(want, sizeof want, "C none blank %d head %d\nM %d\n",
             HTTP_MAX_HEAD - 2, HTTP_MAX_HEAD, HTTP_MAX_HEAD);
    ck_assert(strstr(r.trace, want) != NULL);
    free(r.trace);
    free(s);

    /* One byte more: the header still fits, the blank line does not. */
    s = head_of(HTTP_MAX_HEAD + 1, &len);
    r = check_splits(s, len, 0);
    snprintf(want, sizeof want, "@16+%d\nE head too large\n",
             HTTP_MAX_HEAD + 1 - 16 - 2);
    ck_assert(strlen(r.trace) > strlen(want));
    ck_assert_str_eq(r.trace + strlen(r.trace) - strlen(want), want);
    free(r.trace);
    free(s);
}
END_TEST

START_TEST(test_head_limit_long_line)
{
    size_t len = 16 + 8 + 1024 * 1024 + 4;
    char *s = malloc(len);
    struct run r;

    ck_assert_ptr_nonnull(s);
    memcpy(s, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memset(s + 23, 'a', len - 23 - 4);
    memcpy(s + len - 4, "\r\n\r\n", 4);
    r = check_splits(s, len, 0);
    ck_assert_str_eq(r.trace, "L GET / 11\nE head too large\n");
    free(r.trace);
    r = run_whole(s, len, 0);
    ck_assert_uint_eq(r.consumed, 16);
    free(r.trace);
    free(s);
}
END_TEST

START_TEST(test_head_limit_many_headers)
{
    static const char hdr[] = "X-Header: v\r\n";  /* 13 bytes */
    size_t n = 10000, len = 16 + n * (sizeof hdr - 1) + 2;
    char *s = malloc(len);
    struct run r;
    size_t off = 16, fitting = (HTTP_MAX_HEAD - 16) / (sizeof hdr - 1);
    char last[64];

    ck_assert_ptr_nonnull(s);
    memcpy(s, "GET / HTTP/1.1\r\n", 16);
    for (size_t i = 0; i < n; i++, off += sizeof hdr - 1)
        memcpy(s + off, hdr, sizeof hdr - 1);
    memcpy(s + off, "\r\n", 2);
    r = check_splits(s, len, 0);
    /* Every header that ends within the limit is reported, then the error. */
    snprintf(last, sizeof last, "H X-Header=v@%zu+13\nE head too large\n",
             16 + (fitting - 1) * 13);
    ck_assert_msg(strstr(r.trace, last) != NULL, "%s",
                  r.trace + strlen(r.trace) - 80);
    free(r.trace);
    free(s);
}
END_TEST

/* A chunk-size or trailer line is capped like a head line. */
START_TEST(test_long_chunk_line)
{
    static const char head[] =
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;";
    size_t len = sizeof head - 1 + HTTP_MAX_HEAD + 2;
    char *s = malloc(len);
    struct run r;

    ck_assert_ptr_nonnull(s);
    memcpy(s, head, sizeof head - 1);
    memset(s + sizeof head - 1, 'e', len - (sizeof head - 1) - 2);
    memcpy(s + len - 2, "\r\n", 2);
    r = check_splits(s, len, 0);
    ck_assert_msg(strstr(r.trace, "E line too long\n") != NULL, "%s", r.trace);
    free(r.trace);
    free(s);
}
END_TEST

/* ---- byte classes ------------------------------------------------------- */

static int rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int accepts(const char *s, size_t len)
{
    struct http_req_parser p;
    size_t got;
    int ok;

    http_req_init(&p, NULL, NULL);
    got = http_req_feed(&p, s, len);
    ok = got == len && http_req_idle(&p);
    http_req_free(&p);
    return ok;
}

START_TEST(test_method_bytes)
{
    char s[] = "A?B / HTTP/1.1\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[1] = (char)c;
        ck_assert_msg(accepts(s, sizeof s - 1) == rfc_tchar(c), "byte %d", c);
    }
}
END_TEST

START_TEST(test_target_bytes)
{
    char s[] = "GET /? HTTP/1.1\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[5] = (char)c;
        ck_assert_msg(accepts(s, sizeof s - 1) == (c > 0x20 && c != 0x7f),
                      "byte %d", c);
    }
}
END_TEST

START_TEST(test_value_bytes)
{
    char s[] = "GET / HTTP/1.1\r\nX: a?b\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[20] = (char)c;
        ck_assert_msg(accepts(s, sizeof s - 1) ==
                          (c == '\t' || (c >= 0x20 && c != 0x7f)),
                      "byte %d", c);
    }
}
END_TEST

START_TEST(test_name_bytes)
{
    char s[] = "GET / HTTP/1.1\r\nA?B: v\r\n\r\n";

    for (int c = 0; c < 256; c++) {
        s[17] = (char)c;
        /* "A:B: v" is a header A with the value "B: v" */
        ck_assert_msg(accepts(s, sizeof s - 1) == (rfc_tchar(c) || c == ':'),
                      "byte %d", c);
    }
}
END_TEST

/* ---- pauses ------------------------------------------------------------- */

struct pauser {
    unsigned pause_on;
    int events;
    size_t last_len;
};

static int pause_if(struct pauser *x, unsigned kind)
{
    x->events++;
    return (x->pause_on & kind) ? HTTP_PAUSE : HTTP_CONTINUE;
}

static int p_line(void *ctx, const char *m, size_t ml, const char *t,
                  size_t tl, int v)
{
    (void)m, (void)ml, (void)t, (void)tl, (void)v;
    return pause_if(ctx, EV_LINE);
}

static int p_header(void *ctx, const char *n, size_t nl, const char *v,
                    size_t vl, size_t ls, size_t ll)
{
    (void)n, (void)nl, (void)v, (void)vl, (void)ls, (void)ll;
    return pause_if(ctx, EV_HEADER);
}

static int p_head(void *ctx, const struct http_head_info *info)
{
    (void)info;
    return pause_if(ctx, EV_HEAD);
}

static int p_body(void *ctx, const char *d, size_t len)
{
    (void)d;
    ((struct pauser *)ctx)->last_len = len;
    return pause_if(ctx, EV_BODY);
}

static int p_done(void *ctx, size_t len)
{
    ((struct pauser *)ctx)->last_len = len;
    return pause_if(ctx, EV_DONE);
}

static const struct http_req_callbacks pause_callbacks = {
    p_line, p_header, p_head, p_body, p_done
};

START_TEST(test_pause_counts)
{
    static const char s[] =
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        "GET / HTTP/1.1\r\n\r\n";
    struct pauser x = { EV_ALL, 0, 0 };
    struct http_req_parser p;
    size_t len = sizeof s - 1, off = 0;
    /* Where each event's bytes end. */
    static const size_t stops[] = { 18, 27, 46, 48, 53, 53, 69, 71, 71 };

    http_req_init(&p, &pause_callbacks, &x);
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        off += http_req_feed(&p, s + off, len - off);
        ck_assert_uint_eq(off, stops[i]);
        ck_assert_int_eq(x.events, (int)i + 1);
    }
    ck_assert(http_req_idle(&p));
    ck_assert_uint_eq(http_req_feed(&p, s + off, len - off), 0);
    ck_assert_int_eq(x.events, 9);
    http_req_free(&p);
}
END_TEST

/* A request without a body completes with its blank line; if the caller
 * paused at the head, the completion comes with the next feed, even an
 * empty one. */
START_TEST(test_pause_head_no_body)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct pauser x = { EV_HEAD, 0, 0 };
    struct http_req_parser p;

    http_req_init(&p, &pause_callbacks, &x);
    ck_assert_uint_eq(http_req_feed(&p, s, sizeof s - 1), sizeof s - 1);
    ck_assert_int_eq(x.events, 3);
    ck_assert(!http_req_idle(&p));
    ck_assert_uint_eq(http_req_feed(&p, NULL, 0), 0);
    ck_assert_int_eq(x.events, 4);
    ck_assert_uint_eq(x.last_len, sizeof s - 1);
    ck_assert(http_req_idle(&p));
    http_req_free(&p);
}
END_TEST

START_TEST(test_pause_body_pieces)
{
    static const char s[] =
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct pauser x = { EV_BODY, 0, 0 };
    struct http_req_parser p;
    size_t off;

    http_req_init(&p, &pause_callbacks, &x);
    off = http_req_feed(&p, s, sizeof s - 1);
    ck_assert_uint_eq(off, 47 + 3 + 3);
    ck_assert_uint_eq(x.last_len, 3);
    /* Resumed byte by byte: the data end, the next size, then 'd'. */
    ck_assert_uint_eq(http_req_feed(&p, s + off, 1), 1);
    off++;
    while (x.last_len == 3)
        off += http_req_feed(&p, s + off, 1);
    ck_assert_uint_eq(off, 47 + 3 + 3 + 2 + 3 + 1);
    ck_assert_uint_eq(x.last_len, 1);
    off += http_req_feed(&p, s + off, sizeof s - 1 - off);
    ck_assert_uint_eq(x.last_len, 1);  /* 'e', paused again */
    off += http_req_feed(&p, s + off, sizeof s - 1 - off);
    ck_assert_uint_eq(off, sizeof s - 1);
    ck_assert_uint_eq(x.last_len, sizeof s - 1);
    ck_assert(http_req_idle(&p));
    http_req_free(&p);
}
END_TEST

/* ---- parser life ---------------------------------------------------------- */

START_TEST(test_no_callbacks)
{
    const struct sample *s = &samples[4];  /* two pipelined requests */
    static const struct http_req_callbacks none = { 0 };
    struct http_req_parser p;

    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, s->bytes, s->len), s->len);
    ck_assert(http_req_idle(&p));
    http_req_free(&p);
    http_req_init(&p, &none, NULL);
    for (size_t i = 0; i < s->len; i++)
        ck_assert_uint_eq(http_req_feed(&p, s->bytes + i, 1), 1);
    ck_assert(http_req_idle(&p));
    http_req_free(&p);
}
END_TEST

/* The line buffer outlives a message: keep-alive connections do not pay
 * for it again. */
START_TEST(test_line_buffer_kept)
{
    static const char s[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_req_parser p;
    char *line;
    size_t cap;

    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, s, 5), 5);
    ck_assert_ptr_nonnull(p.line);
    ck_assert_uint_eq(p.line_len, 5);
    ck_assert(!http_req_idle(&p));
    ck_assert_uint_eq(http_req_feed(&p, s + 5, sizeof s - 6), sizeof s - 6);
    ck_assert(http_req_idle(&p));
    line = p.line;
    cap = p.line_cap;
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_eq(p.line_len, 0);
    ck_assert_uint_eq(http_req_feed(&p, s, 3), 3);
    ck_assert_ptr_eq(p.line, line);
    ck_assert_uint_eq(p.line_cap, cap);
    http_req_free(&p);
    ck_assert_ptr_null(p.line);
    http_req_free(&p);  /* twice is harmless */
}
END_TEST

/* What the header's comment promises the caller about offsets: from any
 * event, the message starts at (consumed so far) - message_offset. */
START_TEST(test_offsets_across_preamble)
{
    static const char s[] = "\r\n\nGET / HTTP/1.1\r\n\r\n";
    struct pauser x = { EV_LINE, 0, 0 };
    struct http_req_parser p;
    size_t got;

    http_req_init(&p, &pause_callbacks, &x);
    got = http_req_feed(&p, s, sizeof s - 1);
    ck_assert_uint_eq(got, 3 + 16);
    ck_assert_uint_eq(got - p.message_offset, 3);
    got += http_req_feed(&p, s + got, sizeof s - 1 - got);
    ck_assert_uint_eq(got, sizeof s - 1);
    ck_assert_uint_eq(x.last_len, 18);  /* message_len leaves it out */
    http_req_free(&p);
}
END_TEST

START_TEST(test_tunnel_and_error_consume_nothing)
{
    static const char connect[] =
        "CONNECT h:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    struct http_req_parser p;

    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, connect, sizeof connect - 1), 26);
    ck_assert(http_req_is_tunnel(&p));
    ck_assert(!http_req_idle(&p));
    ck_assert_uint_eq(http_req_feed(&p, connect + 26, 4), 0);
    ck_assert_uint_eq(http_req_feed(&p, NULL, 0), 0);
    http_req_free(&p);

    http_req_init(&p, NULL, NULL);
    ck_assert_uint_eq(http_req_feed(&p, "GET / HTTP/1.1\r\nA:\x01\r\n", 22), 16);
    ck_assert(http_req_failed(&p));
    ck_assert_str_eq(p.error, "bad header value");
    ck_assert_uint_eq(http_req_feed(&p, "\r\n", 2), 0);
    http_req_free(&p);
}
END_TEST

/* ---- http_split_target and http_name_equals ----------------------------- */

struct target_case {
    const char *target;
    int ok;
    const char *authority;  /* NULL: none */
    const char *path;
    int tls;
};

static const struct target_case targets[] = {
    { "/", 0, NULL, "/", 0 },
    { "/v1/charges?expand[]=x", 0, NULL, "/v1/charges?expand[]=x", 0 },
    { "//double", 0, NULL, "//double", 0 },
    { "*", 0, NULL, "*", 0 },
    { "http://api.example.com/v1/x?y=1", 0, "api.example.com", "/v1/x?y=1",
      0 },
    { "HTTPS://Host:8443/p", 0, "Host:8443", "/p", 1 },
    { "hTtP://h", 0, "h", "/", 0 },
    { "https://h/", 0, "h", "/", 1 },
    { "http://[::1]:8080/x", 0, "[::1]:8080", "/x", 0 },
    { "http://[::1]/x", 0, "[::1]", "/x", 0 },
    { "http://h:/x", 0, "h:", "/x", 0 },
    { "api.example.com:443", 0, "api.example.com:443", "", 0 },
    { "[2001:db8::1]:443", 0, "[2001:db8::1]:443", "", 0 },
    { "", -1, NULL, NULL, 0 },
    { "**", -1, NULL, NULL, 0 },
    { "x", -1, NULL, NULL, 0 },
    { "host", -1, NULL, NULL, 0 },
    { "host:", -1, NULL, NULL, 0 },
    { ":443", -1, NULL, NULL, 0 },
    { "host:44a", -1, NULL, NULL, 0 },
    { "user@host:443", -1, NULL, NULL, 0 },
    { "http://user:pw@h/x", -1, NULL, NULL, 0 },
    { "http:///x", -1, NULL, NULL, 0 },
    { "http://", -1, NULL, NULL, 0 },
    { "http://h?q=1", -1, NULL, NULL, 0 },
    { "http://h#f", -1, NULL, NULL, 0 },
    { "http://h:8x/", -1, NULL, NULL, 0 },
    { "http://[::1/x", -1, NULL, NULL, 0 },
    { "http://[]/x", -1, NULL, NULL, 0 },
    { "http://[::1]x/", -1, NULL, NULL, 0 },
    { "ftp://h/x", -1, NULL, NULL, 0 },
    { "http:/h/x", -1, NULL, NULL, 0 },
};

START_TEST(test_split_target)
{
    const struct target_case *c = &targets[_i];
    const char *auth = "unset", *path = "unset";
    size_t auth_len = 99, path_len = 99;
    int tls = 99;
    int r = http_split_target(c->target, strlen(c->target), &auth, &auth_len,
                              &path, &path_len, &tls);

    ck_assert_msg(r == c->ok, "%s: %d", c->target, r);
    if (r != 0)
        return;
    if (c->authority) {
        ck_assert_uint_eq(auth_len, strlen(c->authority));
        ck_assert_mem_eq(auth, c->authority, auth_len);
        ck_assert(auth >= c->target && auth + auth_len <= c->target +
                                                          strlen(c->target));
    } else {
        ck_assert_uint_eq(auth_len, 0);
    }
    ck_assert_uint_eq(path_len, strlen(c->path));
    ck_assert_mem_eq(path, c->path, path_len);
    ck_assert_int_eq(tls, c->tls);
}
END_TEST

START_TEST(test_split_target_tolerates_null_outputs)
{
    ck_assert_int_eq(http_split_target("http://h/x", 10, NULL, NULL, NULL,
                                       NULL, NULL), 0);
    ck_assert_int_eq(http_split_target(NULL, 0, NULL, NULL, NULL, NULL, NULL),
                     -1);
}
END_TEST

START_TEST(test_name_equals)
{
    ck_assert(http_name_equals("Content-Length", 14, "content-length"));
    ck_assert(http_name_equals("CONTENT-LENGTH", 14, "Content-Length"));
    ck_assert(http_name_equals("", 0, ""));
    ck_assert(!http_name_equals("Content-Length", 13, "content-length"));
    ck_assert(!http_name_equals("Content-Length", 14, "content-lengt"));
    ck_assert(!http_name_equals("Content-Lengtx", 14, "content-length"));
    ck_assert(!http_name_equals("Host", 4, ""));
    ck_assert(!http_name_equals("Host", 4, NULL));
    /* ASCII only: no folding of other bytes, '@' is not '`' */
    ck_assert(!http_name_equals("\xc9", 1, "\xe9"));
    ck_assert(!http_name_equals("@", 1, "`"));
    ck_assert(!http_name_equals("[", 1, "{"));
    /* The name is counted, not terminated: a NUL in it is just a byte. */
    ck_assert(!http_name_equals("a\0b", 3, "a"));
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
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
    tcase_add_loop_test(samples_tc, test_samples, 0, COUNT(samples));
    tcase_add_loop_test(errors_tc, test_errors, 0, COUNT(bads));
    tcase_add_test(errors_tc, test_error_early);
    tcase_add_test(errors_tc, test_head_limit);
    tcase_add_test(errors_tc, test_head_limit_long_line);
    tcase_add_test(errors_tc, test_head_limit_many_headers);
    tcase_add_test(errors_tc, test_long_chunk_line);
    tcase_add_test(errors_tc, test_method_bytes);
    tcase_add_test(errors_tc, test_target_bytes);
    tcase_add_test(errors_tc, test_value_bytes);
    tcase_add_test(errors_tc, test_name_bytes);
    tcase_add_loop_test(pause_tc, test_samples_paused, 0, COUNT(samples));
    tcase_add_test(pause_tc, test_pause_counts);
    tcase_add_test(pause_tc, test_pause_head_no_body);
    tcase_add_test(pause_tc, test_pause_body_pieces);
    tcase_add_test(misc_tc, test_no_callbacks);
    tcase_add_test(misc_tc, test_line_buffer_kept);
    tcase_add_test(misc_tc, test_offsets_across_preamble);
    tcase_add_test(misc_tc, test_tunnel_and_error_consume_nothing);
    tcase_add_loop_test(misc_tc, test_split_target, 0, COUNT(targets));
    tcase_add_test(misc_tc, test_split_target_tolerates_null_outputs);
    tcase_add_test(misc_tc, test_name_equals);
    suite_add_tcase(s, samples_tc);
    suite_add_tcase(s, errors_tc);
    suite_add_tcase(s, pause_tc);
    suite_add_tcase(s, misc_tc);
    return s;
}
