/* guard.c - answers in the server's place (rules in guard.h).
 *
 * A replay rewrites only the hop-by-hop headers of the head: the body is
 * copied as it came, so the client decodes exactly what the server sent
 * (chunks, trailers and all). A refusal is written whole: its body is built
 * first, since the head announces its length.
 */
#include "guard.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ascii.h"

/* ---- final statuses -------------------------------------------------- */

int guard_status_is_final(int status)
{
    /* 408 and 425: the server did not process the request; 409 and 429:
     * it refused for now (a lock, a rate limit), so doing it later is
     * still the first time. */
    if (status == 408 || status == 409 || status == 425 || status == 429)
        return 0;
    return status >= 200 && status <= 499;
}

/* ---- replay ---------------------------------------------------------- */

/* One line of a head: its text is [start, end), without CR LF or LF; the
 * next line starts at next. */
struct line {
    size_t start, end, next;
};

/* Finds the line at `at`; -1 when no LF ends it (the head is incomplete). */
static int line_at(const char *s, size_t len, size_t at, struct line *l)
{
    const char *lf = memchr(s + at, '\n', len - at);
    if (!lf)
        return -1;
    l->start = at;
    l->next = (size_t)(lf - s) + 1;
    l->end = l->next - 1;
    if (l->end > at && s[l->end - 1] == '\r')
        l->end--;
    return 0;
}

/* Whether a header line is one that would keep the client's connection
 * open. Whitespace before the colon is invalid (RFC 9112 §5.1), but a
 * lenient client may still read the name without it, so it goes too. */
static int is_hop_header(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return 0;
    size_t name = (size_t)(colon - s);
    while (name > 0 && (s[name - 1] == ' ' || s[name - 1] == '\t'))
        name--;
    return ascii_ieq(s, name, "connection") || ascii_ieq(s, name, "keep-alive")
           || ascii_ieq(s, name, "proxy-connection");
}

/* Copies the header lines after the status line, except the hop-by-hop
 * ones, to out; sets *empty to where the empty line ending the head
 * starts. A continuation line (obs-fold) shares the fate of the line it
 * continues; one right after the status line continues nothing and is
 * kept, as every other byte is. */
static int copy_fields(const char *s, size_t len, size_t at, struct buf *out,
                       size_t *empty)
{
    int dropping = 0;
    struct line l;
    for (;;) {
        if (line_at(s, len, at, &l) < 0)
            return -1;
        if (l.end == l.start)
            break;
        if (s[l.start] != ' ' && s[l.start] != '\t')
            dropping = is_hop_header(s + l.start, l.end - l.start);
        if (!dropping && buf_append(out, s + l.start, l.next - l.start) < 0)
            return -1;
        at = l.next;
    }
    *empty = l.start;
    return 0;
}

int guard_replay(const char *recorded, size_t len, struct buf *out)
{
    size_t was = out->len, empty;
    struct line status;
    if (len < 7 || memcmp(recorded, "HTTP/1.", 7) != 0
        || line_at(recorded, len, 0, &status) < 0)
        return -1;
    const char *eol = status.end + 1 < status.next ? "\r\n" : "\n";
    size_t eol_len = strlen(eol);
    if (buf_append(out, recorded, status.next) < 0
        || copy_fields(recorded, len, status.next, out, &empty) < 0
        || buf_append(out, "Connection: close", 17) < 0
        || buf_append(out, eol, eol_len) < 0
        || buf_append(out, "Idempotent-Replayed: true", 25) < 0
        || buf_append(out, eol, eol_len) < 0
        || buf_append(out, recorded + empty, len - empty) < 0) {
        out->len = was;
        return -1;
    }
    return 0;
}

/* ---- refusal --------------------------------------------------------- */

static const char *str(const char *s)
{
    return s ? s : "";
}

static int put(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* Appends each string given, up to a (char *)NULL. */
static int put_all(struct buf *b, ...)
{
    va_list ap;
    const char *s;
    int r = 0;
    va_start(ap, b);
    while (r == 0 && (s = va_arg(ap, const char *)) != NULL)
        r = put(b, s);
    va_end(ap);
    return r;
}

/* The decimal digits of v in num[24]; returns num. */
static const char *digits(char num[24], int64_t v)
{
    snprintf(num, 24, "%" PRId64, v);
    return num;
}

/* Writes the bytes of s as the inside of a JSON string. Only what RFC 8259
 * requires is escaped; bytes from 0x80 pass through, since host and path
 * are whatever the request said. */
static int put_escaped(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
            i++;
        if (buf_append(b, s + run, i - run) < 0)
            return -1;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char esc[6] = { '\\', (char)c, '0', '0', hex[c >> 4], hex[c & 15] };
        if (c < 0x20)
            esc[1] = 'u';
        if (buf_append(b, esc, c < 0x20 ? 6 : 2) < 0)
            return -1;
    }
    return 0;
}

/* A JSON string; NULL counts as empty. */
static int put_str(struct buf *b, const char *s)
{
    s = str(s);
    return put(b, "\"") < 0 || put_escaped(b, s, strlen(s)) < 0 || put(b, "\"") < 0
           ? -1 : 0;
}

/* A member after the first: ,"name":"s". */
static int put_member(struct buf *b, const char *name, const char *s)
{
    return put_all(b, ",\"", name, "\":", (char *)NULL) < 0 || put_str(b, s) < 0
           ? -1 : 0;
}

/* ,"name":v */
static int put_member_num(struct buf *b, const char *name, int64_t v)
{
    char num[24];
    return put_all(b, ",\"", name, "\":", digits(num, v), (char *)NULL);
}

/* RFC 3339 UTC with milliseconds into at. -1 for 0 and below, which the
 * journal uses for "none" (no attempt was made before 1970), and for times
 * without a 4-digit year (RFC 3339 knows no other). AT_SIZE is what the
 * format could take for any int, so the compiler can see nothing is cut. */
#define AT_SIZE 72
static int format_time(int64_t ms, char at[AT_SIZE])
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    time_t t = (time_t)sec;
    struct tm tm;
    if (ms <= 0 || (int64_t)t != sec || !gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900)
        return -1;
    snprintf(at, AT_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return 0;
}

/* What every refusal of one kind says. */
struct kind {
    const char *name, *title;
    const char *steps[3];   /* "%k" stands for the key; NULL ends early */
};

static const struct kind kinds[] = {
    [GUARD_UNKNOWN_OUTCOME] = {
        "unknown-outcome",
        "An earlier attempt of this request may already have succeeded",
        { "Check the resource's state on the server before retrying",
          "If it did not happen, run `retrysafe forget %k` to allow one more attempt",
          "Or set RETRYSAFE_ON_UNKNOWN=resend to resend requests whose outcome is unknown" } },
    [GUARD_IN_FLIGHT] = {
        "in-flight",
        "An earlier attempt of this request is still in flight",
        { "Wait and retry later: the first attempt is still running",
          "Or raise RETRYSAFE_WAIT to wait longer for it", NULL } },
    [GUARD_TOO_LARGE] = {
        "too-large",
        "This request already succeeded, but its answer was too large to replay",
        { "Read the resource's state from the server instead: the answer was over "
          "RETRYSAFE_MAX_RESPONSE",
          "Or run `retrysafe forget %k` to send it once more, knowing that the server "
          "will do it again", NULL } },
};

/* What is known, after the common start of the detail sentence. */
static int put_known(struct buf *t, const struct guard_refusal_info *in)
{
    char a[24], b[24];
    switch (in->why) {
    case GUARD_UNKNOWN_OUTCOME:
        return put(t, "the answer to an earlier attempt never arrived, so the server "
                      "may already have done it.");
    case GUARD_IN_FLIGHT:
        return put_all(t, "an earlier attempt", in->owner_pid > 0 ? " (process " : "",
                       in->owner_pid > 0 ? digits(a, in->owner_pid) : "",
                       in->owner_pid > 0 ? ")" : "", " still had no answer after this "
                       "retry waited ", digits(b, in->waited_ms), " ms.", (char *)NULL);
    default:
        return put_all(t, "the server answered it with status ", digits(a, in->status),
                       ", but that answer was too large to keep for replay.",
                       (char *)NULL);
    }
}

/* ,"detail":"POST /v1/charges on api.example.com was first sent at ...". */
static int put_detail(struct buf *b, const struct guard_refusal_info *in, const char *at)
{
    struct buf t = { 0 };
    char n[24];
    int r = put_all(&t, str(in->method), " ", str(in->path), " on ", str(in->host),
                    " was first sent ", at ? "at " : "at an unknown time", at ? at : "",
                    " (", digits(n, in->attempts), in->attempts == 1 ? " attempt" :
                    " attempts", " so far), and ", (char *)NULL);
    if (r == 0)
        r = put_known(&t, in);
    if (r == 0)
        r = put(b, ",\"detail\":\"") < 0 || put_escaped(b, t.data, t.len) < 0
            || put(b, "\"") < 0 ? -1 : 0;
    buf_free(&t);
    return r;
}

static int put_outcome(struct buf *b, const struct guard_refusal_info *in)
{
    char pid[24];
    if (in->why == GUARD_TOO_LARGE)
        return put(b, ",\"succeeded\":true") < 0
               || put_member_num(b, "original_status", in->status) < 0 ? -1 : 0;
    if (put(b, ",\"may_have_succeeded\":true") < 0)
        return -1;
    if (in->why != GUARD_IN_FLIGHT)
        return 0;
    if (put_all(b, ",\"owner_pid\":", in->owner_pid > 0 ? digits(pid, in->owner_pid)
                : "null", (char *)NULL) < 0)
        return -1;
    return put_member_num(b, "waited_ms", in->waited_ms);
}

static int put_steps(struct buf *b, const struct kind *k, const char *key)
{
    if (put(b, ",\"next_steps\":[") < 0)
        return -1;
    for (size_t i = 0; i < 3 && k->steps[i]; i++) {
        const char *s = k->steps[i], *mark = strstr(s, "%k");
        size_t before = mark ? (size_t)(mark - s) : strlen(s);
        if (put(b, i ? ",\"" : "\"") < 0 || put_escaped(b, s, before) < 0
            || (mark && (put_escaped(b, key, strlen(key)) < 0
                         || put_escaped(b, mark + 2, strlen(mark + 2)) < 0))
            || put(b, "\"") < 0)
            return -1;
    }
    return put(b, "]");
}

static int put_body(struct buf *b, const struct guard_refusal_info *in)
{
    const struct kind *k = &kinds[in->why];
    char at[AT_SIZE];
    int known = format_time(in->first_ms, at) == 0;
    return put_all(b, "{\"type\":\"tag:retrysafe,2026:", k->name, "\"", (char *)NULL) < 0
           || put_member(b, "title", k->title) < 0
           || put_member_num(b, "status", 409) < 0
           || put_detail(b, in, known ? at : NULL) < 0
           || put_member(b, "idempotency_key", in->key) < 0
           || put(b, ",\"request\":{\"method\":") < 0 || put_str(b, in->method) < 0
           || put(b, ",\"host\":") < 0 || put_str(b, in->host) < 0
           || put(b, ",\"path\":") < 0 || put_str(b, in->path) < 0
           || put(b, "},\"first_attempt_at\":") < 0
           || (known ? put_str(b, at) : put(b, "null")) < 0
           || put_member_num(b, "attempts", in->attempts) < 0
           || put_outcome(b, in) < 0
           || put_steps(b, k, str(in->key)) < 0
           || put(b, "}\n") < 0 ? -1 : 0;
}

int guard_refusal(const struct guard_refusal_info *info, struct buf *out)
{
    if ((unsigned)info->why >= sizeof kinds / sizeof *kinds)
        return -1;
    struct buf body = { 0 };
    size_t was = out->len;
    char len[24];
    int r = put_body(&body, info);
    if (r == 0)
        r = put_all(out, "HTTP/1.1 409 Conflict\r\n"
                    "Content-Type: application/problem+json\r\n"
                    "Content-Length: ", digits(len, (int64_t)body.len), "\r\n"
                    "Connection: close\r\n"
                    "Retrysafe-Refused: ", kinds[info->why].name, "\r\n"
                    "Idempotency-Key: ", str(info->key), "\r\n\r\n", (char *)NULL);
    if (r == 0)
        r = buf_append(out, body.data, body.len);
    if (r < 0)
        out->len = was;
    buf_free(&body);
    return r;
}
