/* fuzz_util.h - what every harness shares: a property check that libFuzzer
 * reports as a crash, and a stream of choices drawn from the fuzzer's
 * bytes, so that a failing input replays the same splits and verdicts.
 *
 * Each harness takes the first FUZZ_SEED_BYTES bytes of its input as the
 * seed of its choices (where to split, when to pause, how much the fake
 * socket takes); the rest is the data under test.
 */
#ifndef RETRYSAFE_FUZZ_UTIL_H
#define RETRYSAFE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FUZZ_SEED_BYTES 4

/* A property the harness checks is false: report it and stop, so that
 * libFuzzer saves the input. Not assert(): that vanishes under NDEBUG. */
static inline void fuzz_check(int ok, const char *what)
{
    if (ok)
        return;
    fprintf(stderr, "property violated: %s\n", what);
    __builtin_trap();
}

static inline void fuzz_dump(const char *label, const char *s, size_t n,
                             size_t from)
{
    fprintf(stderr, "%s (%zu bytes) from %zu: ", label, n, from);
    for (size_t i = from; i < n && i < from + 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

/* Two results that must be equal: where they part is shown, then the
 * check fails. */
static inline void fuzz_same(const char *a, size_t an, const char *b,
                             size_t bn, const char *what)
{
    size_t i = 0;

    while (i < an && i < bn && a[i] == b[i])
        i++;
    if (i == an && i == bn)
        return;
    i = i > 40 ? i - 40 : 0;
    fuzz_dump("expected", a, an, i);
    fuzz_dump("got     ", b, bn, i);
    fuzz_check(0, what);
}

struct fuzz_rng {
    uint64_t s;
};

/* Splits the input into the seed and the data. */
static inline void fuzz_split_seed(const uint8_t **data, size_t *size,
                                   struct fuzz_rng *rng)
{
    uint64_t s = 0x9e3779b97f4a7c15u;

    for (size_t i = 0; i < FUZZ_SEED_BYTES && i < *size; i++)
        s = (s ^ (*data)[i]) * 0x100000001b3u;
    rng->s = s;
    if (*size < FUZZ_SEED_BYTES) {
        *data += *size;
        *size = 0;
        return;
    }
    *data += FUZZ_SEED_BYTES;
    *size -= FUZZ_SEED_BYTES;
}

/* splitmix64: every seed gives a well-mixed sequence. */
static inline uint64_t fuzz_next(struct fuzz_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A number in [0, n); 0 when n is 0. */
static inline size_t fuzz_below(struct fuzz_rng *r, size_t n)
{
    return n ? (size_t)(fuzz_next(r) % n) : 0;
}

/* A piece size in [1, left]: mostly small, since small pieces are where
 * the line-buffering paths are; sometimes all that is left. */
static inline size_t fuzz_piece(struct fuzz_rng *r, size_t left)
{
    size_t k = fuzz_below(r, 8);

    if (left == 0)
        return 0;
    if (k == 0)
        return left;
    if (k < 4)
        return 1 + fuzz_below(r, left < 4 ? left : 4);
    return 1 + fuzz_below(r, left);
}

/* How a harness hands a stream to an incremental parser. */
enum fuzz_split { FUZZ_WHOLE, FUZZ_BYTES, FUZZ_PIECES };

struct fuzz_feeder {
    size_t (*feed)(void *parser, const char *data, size_t len);
    void *parser;
    int *paused;    /* set by the parser's callbacks when they pause */
};

/* Feeds s[0..n) whole, byte by byte, or in random pieces with empty feeds
 * between them, resuming after every pause, even past the last byte: an
 * event may still be due then (http.h: a paused parser resumes at the next
 * feed). Returns how many bytes were consumed; fewer than n only when the
 * parser stopped for good, which must then consume nothing more. */
static inline size_t fuzz_feed(const struct fuzz_feeder *f, const char *s,
                               size_t n, enum fuzz_split how,
                               struct fuzz_rng *rng)
{
    size_t pos = 0;

    *f->paused = 0;
    while (pos < n || *f->paused) {
        size_t piece = how == FUZZ_WHOLE ? n - pos
                     : how == FUZZ_BYTES ? (pos < n) : fuzz_piece(rng, n - pos);
        size_t k;
        if (how == FUZZ_PIECES && fuzz_below(rng, 8) == 0) {
            *f->paused = 0;
            fuzz_check(f->feed(f->parser, NULL, 0) == 0, "empty feed consumed bytes");
        }
        *f->paused = 0;
        k = f->feed(f->parser, piece ? s + pos : NULL, piece);
        fuzz_check(k <= piece, "consumed more than fed");
        pos += k;
        if (k < piece && !*f->paused)
            break;
    }
    if (pos < n)
        fuzz_check(f->feed(f->parser, s + pos, n - pos) == 0,
                   "consumed after stopping for good");
    return pos;
}

#endif
