/* fuzz_outbound.c - the whole outbound path (src/outbound.c) under
 * libFuzzer: request assembly, the tag decision, key injection and byte
 * accounting, against a fake socket.
 *
 * The input, after the seed, is what an application writes on one
 * connection. The seed picks a configuration (which hosts, methods, body
 * limit, observe mode, a secret or none), writes the input in pieces of
 * random sizes, as one to three iovecs, to a socket that takes random
 * partial counts or refuses with EAGAIN or EINTR; a careful non-blocking
 * client resumes after each. Then the application waits for its answer
 * (outbound_release). Properties:
 *   - every return is in the caller's coordinates: a count in 1..offered
 *     or -1 with EAGAIN/EINTR; the counts add up to the input; nothing
 *     stays queued once all is acknowledged (outbound.h);
 *   - the bytes the socket took are the input with, for each request
 *     recorded as tagged, one "<header>: <key>\r\n" line before its empty
 *     line, carrying the recorded key, and with one "Expect: 100-continue"
 *     line dropped per 100 Continue answered to the application; nothing
 *     else added, lost or moved. The check walks input and output itself;
 *   - when the seed has the recorder answer a tagged request in the
 *     server's place (guard mode's replay), the socket gets exactly the
 *     above up to that request's first byte, and nothing after;
 *   - the same input written another way gives the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "fuzz_util.h"
#include "key.h"
#include "log.h"
#include "outbound.h"

#define SECRET "fuzz-secret"

struct fake {
    struct fuzz_rng *rng;
    struct buf received;
    int open;                /* after wait_writable: takes everything */
    int answers;             /* 100 Continue given to the application */
    int answer_fails;        /* it cannot be (the same for every run) */
    struct buf keys;         /* the keys recorded for tagged requests */
    int answer_at;           /* the tagged request answered here; -1 none */
    int tagged;
    int answered;            /* it was: nothing from it on is sent */
    char method[16];         /* its method, as far as it fits */
    size_t method_len;
};

static void grow(struct buf *b, const void *p, size_t n)
{
    fuzz_check(buf_append(b, p, n) == 0, "out of memory in the harness");
}

static ssize_t fake_send(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct fake *f = ctx;
    size_t total = 0, budget, taken = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    fuzz_check(total > 0, "outbound sent nothing");
    if (!f->open && fuzz_below(f->rng, 4) == 0) {
        errno = fuzz_below(f->rng, 8) == 0 ? EINTR : EAGAIN;
        return -1;
    }
    budget = f->open || fuzz_below(f->rng, 3) == 0 ? total
                                                    : 1 + fuzz_below(f->rng, total);
    for (int i = 0; i < iovcnt && taken < budget; i++) {
        size_t n = budget - taken < iov[i].iov_len ? budget - taken : iov[i].iov_len;
        grow(&f->received, iov[i].iov_base, n);
        taken += n;
    }
    return (ssize_t)taken;
}

static int fake_answer(void *ctx, const char *bytes, size_t len)
{
    struct fake *f = ctx;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    fuzz_check(len == sizeof cont - 1 && memcmp(bytes, cont, len) == 0,
               "answered something other than 100 Continue");
    if (f->answer_fails)
        return -1;
    f->answers++;
    return 0;
}

static int fake_wait(void *ctx)
{
    struct fake *f = ctx;

    f->open = 1;
    return 0;
}

static enum outbound_verdict fake_record(void *ctx, const struct outbound_record *rec)
{
    struct fake *f = ctx;

    if (rec->skipped) {
        fuzz_check(rec->key[0] == '\0', "a skipped request has a key");
        return OUTBOUND_SEND;
    }
    fuzz_check(strlen(rec->key) == KEY_CHARS, "a tagged request without a key");
    if (f->tagged++ == f->answer_at) {
        /* Guard mode's replay: the application has its answer, the
         * request is never sent, nor anything after it. */
        f->answered = 1;
        f->method_len = rec->method_len < sizeof f->method ? rec->method_len
                                                            : sizeof f->method;
        memcpy(f->method, rec->method, f->method_len);
        return OUTBOUND_ANSWERED;
    }
    grow(&f->keys, rec->key, KEY_CHARS);
    return OUTBOUND_SEND;
}

/* ---- the configuration the seed picks ---- */

struct setup {
    struct config cfg;
    struct outbound_env env;
    int tls;
    int answer_fails;
    int answer_at;
};

struct vars {
    const char *hosts, *methods, *max_body, *mode;
};

static const char *lookup(void *ctx, const char *name)
{
    const struct vars *v = ctx;

    if (strcmp(name, "RETRYSAFE_HOSTS") == 0)
        return v->hosts;
    if (strcmp(name, "RETRYSAFE_METHODS") == 0)
        return v->methods;
    if (strcmp(name, "RETRYSAFE_MAX_BODY") == 0)
        return v->max_body;
    if (strcmp(name, "RETRYSAFE_MODE") == 0)
        return v->mode;
    if (strcmp(name, "RETRYSAFE_IGNORE_FIELDS") == 0)
        return "nonce,meta.id";
    return NULL;
}

static void setup_init(struct setup *s, struct fuzz_rng *rng, struct key_ctx *keys)
{
    static const char *const hosts[] = {
        "*", "127.0.0.1:8080", "*.example.com=X-Key, 127.0.0.1", "api.example.com",
    };
    struct vars v = {
        hosts[fuzz_below(rng, 4)],
        fuzz_below(rng, 2) ? NULL : "POST,PUT,PATCH,GET",
        fuzz_below(rng, 3) ? NULL : "16",
        fuzz_below(rng, 6) ? NULL : "observe",
    };

    fuzz_check(config_load(&s->cfg, lookup, &v, NULL, NULL) == 0, "config_load failed");
    s->env.cfg = &s->cfg;
    s->env.keys = fuzz_below(rng, 8) ? keys : NULL;
    s->tls = fuzz_below(rng, 4) == 0;
    s->answer_fails = fuzz_below(rng, 4) == 0;
    s->answer_at = fuzz_below(rng, 4) == 0 ? (int)fuzz_below(rng, 3) : -1;
}

/* ---- checking what the socket got ---- */

static int is_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* The length of a "<one of the header names>: <key>\r\n" line at s, or 0. */
static size_t key_line_at(const struct config *cfg, const char *s, size_t n)
{
    for (size_t h = 0; h < cfg->n_header_names; h++) {
        const char *name = cfg->header_names[h];
        size_t nl = strlen(name), len = nl + 2 + KEY_CHARS + 2;
        if (n < len || memcmp(s, name, nl) != 0 || memcmp(s + nl, ": ", 2) != 0 ||
            memcmp(s + nl + 2 + KEY_CHARS, "\r\n", 2) != 0)
            continue;
        size_t k = 0;
        while (k < KEY_CHARS && is_key_char(s[nl + 2 + k]))
            k++;
        if (k == KEY_CHARS)
            return len;
    }
    return 0;
}

static int lower(char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The length of an "Expect: 100-continue" line at s (any case, optional
 * spaces around the value, CRLF or LF), or 0. */
static size_t expect_line_at(const char *s, size_t n)
{
    static const char name[] = "expect:", value[] = "100-continue";
    const char *nl = memchr(s, '\n', n);
    size_t i = 0, end;

    if (!nl)
        return 0;
    end = (size_t)(nl - s);
    if (end > 0 && s[end - 1] == '\r')
        end--;
    for (; i < 7; i++)
        if (i >= end || lower(s[i]) != name[i])
            return 0;
    while (i < end && is_ows(s[i]))
        i++;
    while (end > i && is_ows(s[end - 1]))
        end--;
    if (end - i != 12)
        return 0;
    for (size_t k = 0; k < 12; k++)
        if (lower(s[i + k]) != value[k])
            return 0;
    return (size_t)(nl - s) + 1;
}

/* Walks the input and what the socket got side by side. Where they part,
 * the output must hold a key line before an empty line of the input, or
 * the input an Expect line the output lacks (the walk backs up to the
 * start of that line: the line after it may share its first bytes). */
static void check_output(const struct setup *s, const struct fake *f,
                         const char *in, size_t n)
{
    const char *out = f->received.data;
    size_t m = f->received.len, i = 0, o = 0, keys = 0;
    int expects = 0;

    while (i < n || o < m) {
        if (o == m && f->answered)
            break;
        if (i < n && o < m && in[i] == out[o]) {
            i++;
            o++;
            continue;
        }
        size_t len = o < m ? key_line_at(&s->cfg, out + o, m - o) : 0;
        if (len && i > 0 && in[i - 1] == '\n' && i < n && (in[i] == '\r' || in[i] == '\n')) {
            fuzz_check(keys * KEY_CHARS < f->keys.len &&
                       memcmp(f->keys.data + keys * KEY_CHARS, out + o + len - 2 - KEY_CHARS,
                              KEY_CHARS) == 0,
                       "a key line with a key that was not recorded");
            keys++;
            o += len;
            continue;
        }
        size_t start = i;
        while (start > 0 && in[start - 1] != '\n')
            start--;
        len = expect_line_at(in + start, n - start);
        fuzz_check(len > 0 && expects < f->answers && o >= i - start,
                   "the socket got other bytes than the input and key lines");
        o -= i - start;
        i = start + len;
        expects++;
    }
    if (f->answered) {
        /* What is left is the answered request, from its first byte (a
         * request may begin right after the body before it). */
        fuzz_check(i < n && n - i > f->method_len && memcmp(in + i, f->method, f->method_len) == 0,
                   "bytes before an answered request not sent, or some of it sent");
        fuzz_check(expects <= f->answers, "an Expect line dropped but not answered");
    } else {
        fuzz_check(expects == f->answers, "an Expect line answered but still sent");
    }
    if (s->cfg.mode == CONFIG_MODE_OBSERVE)
        fuzz_check(keys == 0, "observe mode added a key");
    else
        fuzz_check(keys * KEY_CHARS == f->keys.len, "a tagged request without its key line");
}

/* ---- the application ---- */

/* Writes all of in as a careful non-blocking client would, then waits for
 * the answer; returns what the socket got (the caller frees it). */
static struct buf write_all(const struct setup *s, struct fuzz_rng *rng,
                            const char *in, size_t n)
{
    struct fake f = { .rng = rng, .answer_fails = s->answer_fails,
                      .answer_at = s->answer_at };
    const struct outbound_io io = {
        .send = fake_send, .answer = fake_answer, .wait_writable = fake_wait,
        .record = fake_record, .ctx = &f,
    };
    struct outbound ob;
    size_t done = 0;
    int stalls = 0;

    outbound_init(&ob, &s->env, s->tls, "127.0.0.1:8080");
    while (done < n) {
        size_t piece = fuzz_piece(rng, n - done);
        size_t a = fuzz_below(rng, piece + 1), b = a + fuzz_below(rng, piece - a + 1);
        struct iovec iov[3] = {
            { (void *)(in + done), a }, { (void *)(in + done + a), b - a },
            { (void *)(in + done + b), piece - b },
        };
        ssize_t r = outbound_write(&ob, iov, 3, &io);
        if (r < 0) {
            fuzz_check(errno == EAGAIN || errno == EINTR, "write failed for good");
            fuzz_check(++stalls < 100000, "writes make no progress");
            continue;
        }
        fuzz_check(r > 0 && (size_t)r <= piece, "write returned more than offered, or 0");
        done += (size_t)r;
        stalls = 0;
        /* Queued bytes keep a caller byte unacknowledged (outbound.h). */
        if (ob.queue.len)
            fuzz_check(ob.held == 1 || done < n, "bytes queued with nothing held back");
    }
    fuzz_check(ob.queue.len == 0 && ob.held == 0, "bytes queued after the last write");
    fuzz_check(outbound_release(&ob, &io) == 0, "release did not send everything");
    fuzz_check(!outbound_holding(&ob), "still holding after release");
    check_output(s, &f, in, n);
    outbound_free(&ob);
    buf_free(&f.keys);
    return f.received;
}

static struct key_ctx *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Debug level, so that every log line is formatted, into nowhere. */
    log_open(CONFIG_LOG_DEBUG, "/dev/null");
    keys = key_ctx_new(SECRET, strlen(SECRET));
    return keys ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_rng rng;
    struct setup s;

    fuzz_split_seed(&data, &size, &rng);
    const char *in = (const char *)data;
    setup_init(&s, &rng, keys);
    struct buf first = write_all(&s, &rng, in, size);
    struct buf second = write_all(&s, &rng, in, size);
    fuzz_same(first.data, first.len, second.data, second.len,
              "written another way, the input gave other bytes");
    buf_free(&first);
    buf_free(&second);
    config_free(&s.cfg);
    return 0;
}
