/* parse_loop.c - the request parser's (src/http.c) throughput on a stream
 * of realistic ~1 KiB JSON POSTs sent back to back on one kept-alive
 * connection, the bytes the shim parses for each tracked connection.
 * usage: parse_loop MODE MIB
 *   MODE whole: each request handed to http_req_feed in one piece, as a
 *               client's write() hands it to the shim;
 *   MODE bytes: the same stream fed one byte per call (the worst split);
 *   MODE floor: the same calls to a function that only keeps the byte and
 *               looks for an LF: what any parser fed a byte per call costs
 *               at the least, the call itself.
 *   MIB: how much of the stream to parse, in MiB.
 * prints: "mb_per_s X" (MB = 10^6 bytes of the raw stream per second). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

/* Distinct requests in the stream: bodies differ, as a client's do. */
#define SAMPLES 1024

struct tally {
    long messages;
    unsigned long long body_bytes;
};

static int on_line(void *ctx, const char *m, size_t ml, const char *t, size_t tl, int v)
{
    (void)ctx, (void)m, (void)ml, (void)t, (void)tl, (void)v;
    return HTTP_CONTINUE;
}

static int on_header(void *ctx, const char *n, size_t nl, const char *v, size_t vl,
                     size_t start, size_t len)
{
    (void)ctx, (void)n, (void)nl, (void)v, (void)vl, (void)start, (void)len;
    return HTTP_CONTINUE;
}

static int on_head(void *ctx, const struct http_head_info *info)
{
    (void)ctx, (void)info;
    return HTTP_CONTINUE;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    (void)data;
    ((struct tally *)ctx)->body_bytes += len;
    return HTTP_CONTINUE;
}

static int on_done(void *ctx, size_t message_len)
{
    (void)message_len;
    ((struct tally *)ctx)->messages++;
    return HTTP_CONTINUE;
}

static const struct http_req_callbacks callbacks = {
    on_line, on_header, on_head, on_body, on_done
};

/* One request as an HTTP client library writes it: a head of the usual
 * headers and a JSON body, about 1 KiB in all. */
static int make_request(char *out, size_t cap, int i, int *body_len)
{
    char body[768];
    *body_len = snprintf(body, sizeof(body),
        "{\"order_id\":\"ord_%08d\",\"customer\":{\"id\":\"cus_%06d\","
        "\"email\":\"customer%d@example.com\",\"name\":\"Ada Lovelace\"},"
        "\"items\":[{\"sku\":\"SKU-%04d-A\",\"quantity\":%d,\"unit_amount\":1299},"
        "{\"sku\":\"SKU-%04d-B\",\"quantity\":1,\"unit_amount\":450}],"
        "\"currency\":\"eur\",\"shipping\":{\"line1\":\"12 Analytical Engine Road\","
        "\"city\":\"London\",\"postal_code\":\"NW1 %dAB\",\"country\":\"GB\"},"
        "\"metadata\":{\"source\":\"agent\",\"attempt\":1,\"trace\":\"%016x\"},"
        "\"description\":\"Bench order number %d, placed by a scripted agent\","
        "\"notes\":\"Leave at the front desk if nobody answers the door.\"}",
        i, i * 7, i, i % 9973, 1 + i % 5, (i * 3) % 9973, i % 10,
        (unsigned)i * 2654435761u, i);
    return snprintf(out, cap,
        "POST /v1/orders HTTP/1.1\r\n"
        "Host: api.example.com\r\n"
        "User-Agent: python-requests/2.31.0\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        "Accept: application/json\r\n"
        "Accept-Language: en-GB,en;q=0.9\r\n"
        "Connection: keep-alive\r\n"
        "Authorization: Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc%06d\r\n"
        "Content-Type: application/json\r\n"
        "X-Request-Trace: 00-%032x-01\r\n"
        "X-Client-Version: agent-sdk/4.12.0 (linux; x86_64)\r\n"
        "Content-Length: %d\r\n"
        "\r\n"
        "%s",
        i, (unsigned)i, *body_len, body);
}

/* The floor: one call per byte, the byte kept, an LF noticed; the state
 * in memory, as a parser's must be between calls. */
struct floor_state {
    size_t len, lines;
    char line[4096];
};

__attribute__((noinline)) static size_t floor_feed(struct floor_state *f, const char *data,
                                                   size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            f->lines++;
            f->len = 0;
        } else if (f->len < sizeof(f->line)) {
            f->line[f->len++] = data[i];
        }
    }
    return len;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "whole") && strcmp(argv[1], "bytes") &&
                      strcmp(argv[1], "floor"))) {
        fprintf(stderr, "usage: parse_loop whole|bytes|floor MIB\n");
        return 2;
    }
    int bytewise = strcmp(argv[1], "bytes") == 0;
    int floor_only = strcmp(argv[1], "floor") == 0;
    size_t total = (size_t)atol(argv[2]) << 20;

    /* The stream: SAMPLES requests back to back, fed again and again. */
    static char stream[SAMPLES * 2048];
    size_t offset[SAMPLES + 1], len = 0;
    unsigned long long stream_body = 0;
    for (int i = 0; i < SAMPLES; i++) {
        offset[i] = len;
        int body_len;
        int n = make_request(stream + len, sizeof(stream) - len, i, &body_len);
        if (n <= 0 || (size_t)n >= sizeof(stream) - len)
            return 1;
        stream_body += (unsigned long long)body_len;
        len += (size_t)n;
    }
    offset[SAMPLES] = len;

    struct tally tally = { 0 };
    struct http_req_parser p;
    http_req_init(&p, &callbacks, &tally);
    size_t fed = 0;
    long passes = 0;
    double t0 = now_s();
    struct floor_state floor_state = { 0 };
    while (fed < total) {
        if (floor_only) {
            for (size_t b = 0; b < len; b++)
                if (floor_feed(&floor_state, stream + b, 1) != 1)
                    goto failed;
        } else if (bytewise) {
            for (size_t b = 0; b < len; b++)
                if (http_req_feed(&p, stream + b, 1) != 1)
                    goto failed;
        } else {
            for (int i = 0; i < SAMPLES; i++) {
                size_t n = offset[i + 1] - offset[i];
                if (http_req_feed(&p, stream + offset[i], n) != n)
                    goto failed;
            }
        }
        fed += len;
        passes++;
    }
    double t1 = now_s();

    /* Every request parsed, every body byte delivered: the parser did the
     * whole job, not some early exit. (The floor saw every line.) */
    if (floor_only) {
        if (floor_state.lines == 0)
            return 1;
        printf("mb_per_s %.1f\nrequest_bytes %.0f\n", fed / (t1 - t0) / 1e6,
               (double)len / SAMPLES);
        return 0;
    }
    if (tally.messages != passes * SAMPLES || tally.body_bytes != passes * stream_body ||
        !http_req_idle(&p)) {
        fprintf(stderr, "parse_loop: %ld messages, %llu body bytes; expected %ld, %llu\n",
                tally.messages, tally.body_bytes, passes * SAMPLES, passes * stream_body);
        return 1;
    }
    http_req_free(&p);
    printf("mb_per_s %.1f\nrequest_bytes %.0f\n", fed / (t1 - t0) / 1e6, (double)len / SAMPLES);
    return 0;

failed:
    fprintf(stderr, "parse_loop: the parser stopped: %s\n", p.error ? p.error : "paused");
    return 1;
}
