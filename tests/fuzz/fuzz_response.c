/* fuzz_response.c - the response parser (src/http_response.c) under
 * libFuzzer.
 *
 * The stream is parsed in one feed, byte by byte, and in fuzzer-chosen
 * pieces with callbacks that pause at fuzzer-chosen events; then the
 * connection closes (http_res_eof). Which answers belong to HEAD or CONNECT
 * requests is drawn from the seed, per answer, the same in every run, and
 * told to the parser as the connection code does: once at the start, then
 * after each final answer for the next one. The three runs must report the
 * same events and end in the same error or state (http.h: "Events are the
 * same however the stream is split"), and every event must be one the
 * header allows: status codes in 100..599, interim answers only for 1xx
 * but 101, no head event for an interim answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "http.h"

struct rec {
    struct buf trace;
    struct http_res_parser *p;
    struct fuzz_rng *pauses;  /* NULL: never pause */
    int paused;
    uint64_t requests;        /* the seed of which requests are HEAD/CONNECT */
    unsigned answer;          /* final answers so far */
    int head_seen;            /* on_headers_complete for the current answer */
};

static void put_num(struct rec *r, uint64_t v)
{
    fuzz_check(buf_append(&r->trace, &v, sizeof v) == 0,
               "out of memory in the harness");
}

/* Request i is HEAD one time in four, CONNECT one in eight. */
static void tell_request(struct rec *r)
{
    struct fuzz_rng g = { r->requests ^ (r->answer * 0x9e3779b97f4a7c15u) };
    uint64_t x = fuzz_next(&g);

    http_res_set_request(r->p, (x & 3) == 0, (x >> 2 & 7) == 0);
}

static int verdict(struct rec *r)
{
    if (r->pauses && fuzz_below(r->pauses, 4) == 0) {
        r->paused = 1;
        return HTTP_PAUSE;
    }
    return HTTP_CONTINUE;
}

static int on_head(void *ctx, int status)
{
    struct rec *r = ctx;

    put_num(r, 'H');
    put_num(r, (uint64_t)status);
    fuzz_check(status >= 100 && status <= 599, "status code out of range");
    fuzz_check(status >= 200 || status == 101, "head event for an interim answer");
    fuzz_check(!r->head_seen, "two head events for one answer");
    r->head_seen = 1;
    return verdict(r);
}

static int on_done(void *ctx, int status, int interim)
{
    struct rec *r = ctx;

    put_num(r, 'M');
    put_num(r, (uint64_t)status);
    put_num(r, (uint64_t)interim);
    fuzz_check(status >= 100 && status <= 599, "status code out of range");
    fuzz_check(interim == (status < 200 && status != 101),
               "interim flag does not match the status");
    fuzz_check(interim != r->head_seen, "final answer without a head event");
    if (!interim) {
        /* Whether the server closes after it is the answer's own. */
        put_num(r, (uint64_t)r->p->closes_after);
        r->answer++;
        tell_request(r);
    }
    r->head_seen = 0;
    return verdict(r);
}

static const struct http_res_callbacks callbacks = { on_head, on_done };

static size_t feed(void *parser, const char *data, size_t len)
{
    return http_res_feed(parser, data, len);
}

static struct buf run(const char *s, size_t n, enum fuzz_split how,
                      struct fuzz_rng *rng, uint64_t requests)
{
    struct http_res_parser p;
    struct rec r = { .p = &p, .requests = requests };
    struct fuzz_feeder feeder = { feed, &p, &r.paused };
    size_t pos;

    if (how == FUZZ_PIECES)
        r.pauses = rng;
    http_res_init(&p, &callbacks, &r);
    tell_request(&r);
    pos = fuzz_feed(&feeder, s, n, how, rng);
    fuzz_check(pos == n || p.state == HTTP_RES_ERROR || p.state == HTTP_RES_TUNNEL,
               "bytes left without an error or a tunnel");
    r.paused = 0;
    http_res_eof(&p);
    put_num(&r, 'E');
    if (p.state == HTTP_RES_ERROR) {
        fuzz_check(p.error != NULL, "error without a reason");
        fuzz_check(buf_append(&r.trace, p.error, strlen(p.error)) == 0,
                   "out of memory in the harness");
    } else {
        put_num(&r, (uint64_t)p.state);
        put_num(&r, pos);
    }
    http_res_free(&p);
    return r.trace;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_rng rng;
    struct buf whole, bytes, pieces;

    fuzz_split_seed(&data, &size, &rng);
    uint64_t requests = rng.s;
    const char *s = (const char *)data;
    whole = run(s, size, FUZZ_WHOLE, &rng, requests);
    pieces = run(s, size, FUZZ_PIECES, &rng, requests);
    fuzz_same(whole.data, whole.len, pieces.data, pieces.len, "random split or pause changed the events");
    if (size <= 4096) {
        bytes = run(s, size, FUZZ_BYTES, &rng, requests);
        fuzz_same(whole.data, whole.len, bytes.data, bytes.len, "byte-by-byte feeding changed the events");
        buf_free(&bytes);
    }
    buf_free(&whole);
    buf_free(&pieces);
    return 0;
}
