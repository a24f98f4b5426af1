/* fuzz_request.c - the request parser (src/http.c) under libFuzzer.
 *
 * The stream is parsed three ways: in one feed, byte by byte, and in pieces
 * of fuzzer-chosen sizes with callbacks that pause at fuzzer-chosen events
 * (and empty feeds between pieces). http.h promises the same events however
 * the stream is split, body bytes aside, which may come in more pieces: so
 * each run is recorded as a trace with body bytes joined, and the traces
 * must be equal, down to the error or the final state.
 *
 * The one-feed run also checks what the events say against the stream
 * itself: offsets locate the lines they name, body bytes are the stream's,
 * message lengths add up from one request to the next.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "http.h"

struct rec {
    struct buf trace;
    struct buf body;          /* body bytes since the last other event */
    struct fuzz_rng *pauses;  /* NULL: never pause */
    int paused;

    /* One-feed run only: the stream, to check events against. */
    const char *stream;
    size_t stream_len;
    size_t msg_start;         /* stream offset of the current message */
    size_t next_start;        /* where the next message may begin */
    struct http_head_info info;
    size_t body_seen;
};

static void put(struct buf *b, const void *p, size_t n)
{
    fuzz_check(buf_append(b, p, n) == 0, "out of memory in the harness");
}

static void put_num(struct rec *r, uint64_t v)
{
    put(&r->trace, &v, sizeof v);
}

static void put_bytes(struct rec *r, const char *s, size_t n)
{
    put_num(r, n);
    put(&r->trace, s, n);
}

/* Every event but body data first ends the body run. */
static void event(struct rec *r, char tag)
{
    if (r->body.len) {
        put(&r->trace, "B", 1);
        put_bytes(r, r->body.data, r->body.len);
        r->body.len = 0;
    }
    put(&r->trace, &tag, 1);
}

static int verdict(struct rec *r)
{
    if (r->pauses && fuzz_below(r->pauses, 4) == 0) {
        r->paused = 1;
        return HTTP_PAUSE;
    }
    return HTTP_CONTINUE;
}

static int inside(const struct rec *r, const char *p, size_t n)
{
    return p >= r->stream && n <= r->stream_len &&
           (size_t)(p - r->stream) <= r->stream_len - n;
}

/* Only empty lines may come between two messages (RFC 9112 §2.2). */
static void check_preamble(const struct rec *r, size_t from, size_t to)
{
    fuzz_check(from <= to, "request begins inside the previous message");
    for (size_t i = from; i < to; i++)
        fuzz_check(r->stream[i] == '\r' || r->stream[i] == '\n',
                   "bytes skipped before a request line");
}

static void check_target(const char *t, size_t tn)
{
    const char *auth = NULL, *path = NULL;
    size_t auth_len = 0, path_len = 0;
    int tls = -1;

    if (http_split_target(t, tn, &auth, &auth_len, &path, &path_len, &tls) != 0)
        return;
    fuzz_check(tls == 0 || tls == 1, "split target: tls not set");
    fuzz_check(!auth || (auth >= t && auth_len > 0 && auth + auth_len <= t + tn),
               "split target: authority outside the target");
    fuzz_check((path_len == 1 && path[0] == '/') ||
               (path >= t && path + path_len <= t + tn),
               "split target: path outside the target");
}

static int on_line(void *ctx, const char *m, size_t ml, const char *t,
                   size_t tl, int version)
{
    struct rec *r = ctx;

    event(r, 'L');
    put_bytes(r, m, ml);
    put_bytes(r, t, tl);
    put_num(r, (uint64_t)version);
    fuzz_check(version == 10 || version == 11, "bad version reported");
    fuzz_check(ml > 0 && tl > 0, "empty method or target");
    if (r->stream) {
        fuzz_check(inside(r, m, ml) && t == m + ml + 1 && inside(r, t, tl),
                   "request line not where the stream has it");
        r->msg_start = (size_t)(m - r->stream);
        check_preamble(r, r->next_start, r->msg_start);
        check_target(t, tl);
    }
    return verdict(r);
}

static int on_header(void *ctx, const char *name, size_t nl, const char *value,
                     size_t vl, size_t line_start, size_t line_len)
{
    struct rec *r = ctx;

    event(r, 'H');
    put_bytes(r, name, nl);
    put_bytes(r, value, vl);
    put_num(r, line_start);
    put_num(r, line_len);
    if (r->stream) {
        const char *line = r->stream + r->msg_start + line_start;
        fuzz_check(line_len > 0 && inside(r, line, line_len) && line == name &&
                   line[line_len - 1] == '\n',
                   "header line_start/line_len do not locate the line");
        fuzz_check(value >= name + nl + 1 && value + vl <= line + line_len,
                   "header value outside its line");
    }
    return verdict(r);
}

static int on_head(void *ctx, const struct http_head_info *info)
{
    struct rec *r = ctx;

    event(r, 'C');
    put_num(r, (uint64_t)info->framing);
    put_num(r, info->content_length);
    put_num(r, info->blank_line_start);
    put_num(r, info->head_len);
    put_num(r, (uint64_t)info->upgrade);
    fuzz_check(info->blank_line_start < info->head_len &&
               info->head_len - info->blank_line_start <= 2,
               "blank line not at the end of the head");
    if (r->stream) {
        const char *blank = r->stream + r->msg_start + info->blank_line_start;
        size_t n = info->head_len - info->blank_line_start;
        fuzz_check(inside(r, blank, n) && blank[n - 1] == '\n' &&
                   (n == 1 || blank[0] == '\r'),
                   "blank_line_start does not locate the empty line");
        r->info = *info;
        r->body_seen = 0;
    }
    return verdict(r);
}

static int on_body(void *ctx, const char *data, size_t len)
{
    struct rec *r = ctx;

    fuzz_check(len > 0, "empty body event");
    put(&r->body, data, len);
    if (r->stream) {
        fuzz_check(inside(r, data, len), "body bytes not from the stream");
        if (r->info.framing == HTTP_BODY_LENGTH)
            fuzz_check(data == r->stream + r->msg_start + r->info.head_len +
                                   r->body_seen,
                       "Content-Length body bytes out of place");
        r->body_seen += len;
    }
    return verdict(r);
}

static int on_done(void *ctx, size_t message_len)
{
    struct rec *r = ctx;

    event(r, 'M');
    put_num(r, message_len);
    if (r->stream) {
        const struct http_head_info *in = &r->info;
        uint64_t want = in->head_len + (in->framing == HTTP_BODY_LENGTH
                                         ? in->content_length : 0);
        if (in->framing == HTTP_BODY_CHUNKED)
            fuzz_check(message_len >= in->head_len + r->body_seen + 3,
                       "chunked message shorter than its body");
        else
            fuzz_check(message_len == want, "message_len is not head + body");
        fuzz_check(r->body_seen == (in->framing == HTTP_BODY_LENGTH
                                    ? in->content_length : r->body_seen),
                   "Content-Length body incomplete at the end");
        r->next_start = r->msg_start + message_len;
        fuzz_check(r->next_start <= r->stream_len, "message ends past the stream");
    }
    return verdict(r);
}

static const struct http_req_callbacks callbacks = {
    on_line, on_header, on_head, on_body, on_done
};

static size_t feed(void *parser, const char *data, size_t len)
{
    return http_req_feed(parser, data, len);
}

/* Feeds s as split asks and returns the trace (the caller frees it). */
static struct buf run(const char *s, size_t n, enum fuzz_split how,
                      struct fuzz_rng *rng)
{
    struct rec r = { 0 };
    struct http_req_parser p;
    struct fuzz_feeder feeder = { feed, &p, &r.paused };
    size_t pos;

    if (how == FUZZ_WHOLE) {
        r.stream = s;
        r.stream_len = n;
    } else if (how == FUZZ_PIECES) {
        r.pauses = rng;
    }
    http_req_init(&p, &callbacks, &r);
    pos = fuzz_feed(&feeder, s, n, how, rng);
    fuzz_check(pos == n || http_req_failed(&p) || http_req_is_tunnel(&p),
               "bytes left without an error or a tunnel");
    event(&r, 'E');
    if (http_req_failed(&p)) {
        fuzz_check(p.error != NULL, "error without a reason");
        /* How much an error consumed depends on the split (see http.c). */
        put_bytes(&r, p.error, strlen(p.error));
    } else {
        put_num(&r, (uint64_t)p.state);
        put_num(&r, p.message_offset);
        put_num(&r, pos);
        if (r.stream && http_req_is_tunnel(&p))
            fuzz_check(pos == r.next_start, "tunnel does not start after its message");
    }
    http_req_free(&p);
    buf_free(&r.body);
    return r.trace;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_rng rng;
    struct buf whole, bytes, pieces;

    fuzz_split_seed(&data, &size, &rng);
    const char *s = (const char *)data;
    whole = run(s, size, FUZZ_WHOLE, &rng);
    pieces = run(s, size, FUZZ_PIECES, &rng);
    fuzz_same(whole.data, whole.len, pieces.data, pieces.len, "random split or pause changed the events");
    /* Byte by byte is the slowest way: only for inputs of a sane size. */
    if (size <= 4096) {
        bytes = run(s, size, FUZZ_BYTES, &rng);
        fuzz_same(whole.data, whole.len, bytes.data, bytes.len, "byte-by-byte feeding changed the events");
        buf_free(&bytes);
    }
    buf_free(&whole);
    buf_free(&pieces);
    return 0;
}
