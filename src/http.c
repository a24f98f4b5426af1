/* http.c - incremental HTTP/1.1 request parser (RFC 9112).
 *
 * A small state machine over the states of http.h. The head, chunk-size,
 * chunk-terminator and trailer states work on whole lines; the body states
 * count bytes. A line that lies entirely inside the caller's buffer is
 * parsed where it lies. Only a line cut by the end of a feed is copied into
 * p->line, so feeding whole buffers copies nothing and body bytes are never
 * copied at all.
 *
 * Decisions the header leaves open:
 *
 * - Empty lines before a request line (RFC 9112 §2.2) are skipped. They are
 *   part of no message: message offsets and message_len do not count them,
 *   but http_req_feed's return value does, since they were consumed. From
 *   any event, the message's first byte is at (bytes consumed so far, this
 *   feed included) - p->message_offset.
 * - On malformed input http_req_feed returns the number of bytes of that
 *   call before the line in which the error was found (request line, header,
 *   blank line, chunk-size line, chunk terminator or trailer). If that line
 *   began in an earlier call, its first bytes were already reported consumed
 *   (they were buffered), so the total consumed on error depends on the
 *   split. The events before the error, and the error, do not.
 * - Where a lenient reading could frame a request differently from the
 *   server (the smuggling family), the parser refuses: the caller then
 *   passes the connection through untouched, which is always safe. So
 *   Content-Length lists must not have empty members, transfer codings must
 *   be bare tokens with "chunked" last and only there, and trailing
 *   whitespace after a chunk size is an error unless an extension follows.
 *   RFC 9112 lets a recipient take a bare LF for CRLF in the start line and
 *   fields only: chunk-size lines and the end of chunk data must end in
 *   CRLF (a server that skips two bytes after the data, unchecked, would
 *   frame a bare LF differently). An HTTP/1.0 request with
 *   Transfer-Encoding has faulty framing (RFC 9112 §6.1): refused.
 * - CONNECT ends with its head whatever its framing headers say (they are
 *   still validated): what follows is the tunnel. Its info reports
 *   HTTP_BODY_NONE.
 * - A message whose length would not fit in size_t (a Content-Length or a
 *   chunk near 2^64, or past 4 GiB on 32-bit systems) is an error, so that
 *   message_len is always exact.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* What a processing step asks of the feed loop: carry on, return what has
 * been consumed (out of input, or a callback paused), or return what was
 * consumed before the failing line. */
enum step { STEP_GO, STEP_STOP, STEP_FAIL };

/* ---- characters ------------------------------------------------------- */

/* Request-target bytes: anything but SP and CTLs. Bytes above 0x7f are let
 * through because clients do send raw UTF-8 paths and servers take them. */
static inline int is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

static inline unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* ---- events ----------------------------------------------------------- */

static int paused(int r)
{
    return r == HTTP_PAUSE ? STEP_STOP : STEP_GO;
}

static int emit_request_line(struct http_req_parser *p, const char *m,
                             size_t mlen, const char *t, size_t tlen, int v)
{
    if (!p->cb || !p->cb->on_request_line)
        return STEP_GO;
    return paused(p->cb->on_request_line(p->ctx, m, mlen, t, tlen, v));
}

static int emit_header(struct http_req_parser *p, const char *name,
                       size_t name_len, const char *value, size_t value_len,
                       size_t line_start, size_t line_len)
{
    if (!p->cb || !p->cb->on_header)
        return STEP_GO;
    return paused(p->cb->on_header(p->ctx, name, name_len, value, value_len,
                                   line_start, line_len));
}

static int emit_head_done(struct http_req_parser *p,
                          const struct http_head_info *info)
{
    if (!p->cb || !p->cb->on_headers_complete)
        return STEP_GO;
    return paused(p->cb->on_headers_complete(p->ctx, info));
}

static int emit_body(struct http_req_parser *p, const char *data, size_t len)
{
    if (!p->cb || !p->cb->on_body)
        return STEP_GO;
    return paused(p->cb->on_body(p->ctx, data, len));
}

static int emit_complete(struct http_req_parser *p, size_t message_len)
{
    if (!p->cb || !p->cb->on_message_complete)
        return STEP_GO;
    return paused(p->cb->on_message_complete(p->ctx, message_len));
}

/* ---- state ------------------------------------------------------------ */

static int fail(struct http_req_parser *p, const char *why)
{
    p->state = HTTP_REQ_ERROR;
    p->error = why;
    return STEP_FAIL;
}

/* Forgets the finished message but keeps the line buffer's allocation. */
static void reset_message(struct http_req_parser *p)
{
    p->state = HTTP_REQ_LINE;
    p->message_offset = 0;
    p->remaining = 0;
    p->seen_content_length = 0;
    p->content_length = 0;
    p->seen_transfer_encoding = 0;
    p->chunked = 0;
    p->upgrade = 0;
    p->is_connect = 0;
    p->line_len = 0;
    p->line_start = 0;
}

static int finish_message(struct http_req_parser *p)
{
    size_t len = p->message_offset;
    int tunnel = p->upgrade;

    /* Reset before the callback, so that it sees an idle parser. */
    reset_message(p);
    if (tunnel)
        p->state = HTTP_REQ_TUNNEL;
    return emit_complete(p, len);
}

/* ---- field lines -------------------------------------------------------- */

/* Content-Length (see content_length_list). With Transfer-Encoding too, a
 * request is refused: the two could frame it differently. */
static const char *content_length(struct http_req_parser *p, const char *v,
                                  size_t n)
{
    if (p->seen_transfer_encoding)
        return "Transfer-Encoding with Content-Length";
    return content_length_list(v, n, &p->seen_content_length,
                               &p->content_length);
}

/* Transfer-Encoding: a list of codings, across all such headers, whose last
 * member, and only that one, is chunked (RFC 9112 §6.1). Whether the list
 * ends in chunked is decided at the end of the head, since a later header
 * may still append it. */
static const char *transfer_encoding(struct http_req_parser *p,
                                     const char *v, size_t n)
{
    size_t i = 0;

    if (p->seen_content_length)
        return "Transfer-Encoding with Content-Length";
    if (p->version == 10)
        return "Transfer-Encoding in HTTP/1.0";
    p->seen_transfer_encoding = 1;
    for (;;) {
        size_t b = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        if (i == b)
            return "bad Transfer-Encoding";
        if (p->chunked)
            return "coding after chunked";
        p->chunked = http_name_equals(v + b, i - b, "chunked");
        i = skip_ows(v, i, n);
        if (i == n)
            return NULL;
        if (v[i] != ',')
            return "bad Transfer-Encoding";
        i = skip_ows(v, i + 1, n);
    }
}

/* Headers that decide where the message ends. */
static const char *framing_header(struct http_req_parser *p,
                                  const struct field *f)
{
    /* The length tells the three names apart before any comparison. */
    switch (f->name_len) {
    case 7:
        if (http_name_equals(f->name, f->name_len, "upgrade"))
            p->upgrade = 1;
        return NULL;
    case 14:
        if (http_name_equals(f->name, f->name_len, "content-length"))
            return content_length(p, f->value, f->value_len);
        return NULL;
    case 17:
        if (http_name_equals(f->name, f->name_len, "transfer-encoding"))
            return transfer_encoding(p, f->value, f->value_len);
        return NULL;
    default:
        return NULL;
    }
}

/* ---- lines by state ----------------------------------------------------- */

static int parse_version(const char *s, size_t n)
{
    if (n != 8 || memcmp(s, "HTTP/1.", 7) != 0)
        return 0;
    if (s[7] == '1')
        return 11;
    if (s[7] == '0')
        return 10;
    return 0;
}

/* The method of a request line, or of the first n bytes of one (whole = 0):
 * sets *len and returns NULL while it is well-formed so far. A prefix is
 * refused only where the whole line would be, and for the same reason. */
static const char *check_method(const char *s, size_t n, int whole,
                                size_t *len)
{
    size_t m = 0;

    while (m < n && is_tchar((unsigned char)s[m]))
        m++;
    *len = m;
    if (m == n)
        return whole ? "bad method" : NULL;
    if (m > 0 && s[m] == ' ')
        return NULL;
    return bad_byte(s[m], "bad method");
}

/* method SP request-target SP HTTP-version, each SP exactly one. */
static int request_line(struct http_req_parser *p, const char *s, size_t n)
{
    size_t m, t;
    int version;
    const char *why = check_method(s, n, 1, &m);

    if (why)
        return fail(p, why);
    t = m + 1;
    while (t < n && is_target_char((unsigned char)s[t]))
        t++;
    if (t == n)
        return fail(p, t == m + 1 ? "bad request target" : "no HTTP version");
    if (t == m + 1 || s[t] != ' ')
        return fail(p, bad_byte(s[t], "bad request target"));
    version = parse_version(s + t + 1, n - t - 1);
    if (!version)
        return fail(p, memchr(s + t + 1, '\r', n - t - 1) ? "bare CR in line"
                                                          : "bad HTTP version");
    p->is_connect = m == 7 && memcmp(s, "CONNECT", 7) == 0;
    p->upgrade = p->is_connect;
    p->version = version;
    p->state = HTTP_REQ_HEADERS;
    return emit_request_line(p, s, m, s + m + 1, t - m - 1, version);
}

static int header_line(struct http_req_parser *p, const char *s, size_t n,
                       size_t line_start)
{
    struct field f;
    const char *why = split_field(s, n, &f);

    if (why)
        return fail(p, why);
    why = framing_header(p, &f);
    if (why)
        return fail(p, why);
    return emit_header(p, f.name, f.name_len, f.value, f.value_len,
                       line_start, p->message_offset - line_start);
}

static int end_of_head(struct http_req_parser *p, size_t blank_line_start)
{
    struct http_head_info info = { 0 };

    if (p->seen_transfer_encoding && !p->chunked)
        return fail(p, "final coding is not chunked");
    info.blank_line_start = blank_line_start;
    info.head_len = p->message_offset;
    info.upgrade = p->upgrade;
    info.framing = HTTP_BODY_NONE;
    if (!p->is_connect && p->chunked) {
        info.framing = HTTP_BODY_CHUNKED;
    } else if (!p->is_connect && p->seen_content_length) {
        if (p->content_length > SIZE_MAX - info.head_len)
            return fail(p, "body too large");
        info.framing = HTTP_BODY_LENGTH;
        info.content_length = p->content_length;
    }
    /* With no body, HTTP_REQ_BODY with nothing remaining completes the
     * message at once, or at the next feed if this callback pauses. */
    p->state = info.framing == HTTP_BODY_CHUNKED ? HTTP_REQ_CHUNK_SIZE
                                                 : HTTP_REQ_BODY;
    p->remaining = info.content_length;
    return emit_head_done(p, &info);
}

static int chunk_size_line(struct http_req_parser *p, const char *s, size_t n)
{
    uint64_t size = 0;
    const char *why = chunk_size(s, n, &size);

    if (why)
        return fail(p, why);
    if (size == 0) {
        p->state = HTTP_REQ_TRAILERS;
        return STEP_GO;
    }
    if (size > SIZE_MAX - p->message_offset)
        return fail(p, "chunk too large");
    p->state = HTTP_REQ_CHUNK_DATA;
    p->remaining = size;
    return STEP_GO;
}

/* Trailers are checked like headers but not reported: RFC 9110 §6.5 lets
 * them carry nothing that changes the request's meaning or framing. */
static int trailer_line(struct http_req_parser *p, const char *s, size_t n)
{
    struct field f;
    const char *why = split_field(s, n, &f);

    return why ? fail(p, why) : STEP_GO;
}

/* A complete line of n bytes, LF removed, which began at message offset
 * start; p->message_offset is already past it. */
static int take_line(struct http_req_parser *p, const char *s, size_t n,
                     size_t start)
{
    int crlf = n > 0 && s[n - 1] == '\r';

    if (crlf)
        n--;
    /* The trailer section and the chunked body's last CRLF are framing
     * too (RFC 9112 §7.1): a server that reads them differently would
     * take the next request's first bytes for this one's end. */
    if (!crlf && (p->state == HTTP_REQ_CHUNK_SIZE ||
                  p->state == HTTP_REQ_CHUNK_DATA_END ||
                  p->state == HTTP_REQ_TRAILERS))
        return fail(p, "bare LF in chunk framing");
    switch (p->state) {
    case HTTP_REQ_LINE:
        if (n > 0)
            return request_line(p, s, n);
        p->message_offset = 0;  /* a preamble line: part of no message */
        return STEP_GO;
    case HTTP_REQ_HEADERS:
        if (n == 0)
            return end_of_head(p, start);
        return header_line(p, s, n, start);
    case HTTP_REQ_CHUNK_SIZE:
        return chunk_size_line(p, s, n);
    case HTTP_REQ_CHUNK_DATA_END:
        if (n > 0)
            return fail(p, bad_byte(s[0], "bad chunk terminator"));
        p->state = HTTP_REQ_CHUNK_SIZE;
        return STEP_GO;
    case HTTP_REQ_TRAILERS:
        if (n == 0)
            return finish_message(p);
        return trailer_line(p, s, n);
    default:
        return fail(p, "internal error: bad state");
    }
}

/* ---- line assembly ------------------------------------------------------ */

/* The head as a whole is capped, and so is every other line (a chunk-size
 * line with extensions, a trailer), so that buffering stays bounded. n may
 * be a prefix of the line: once a prefix is too long, so is the line, which
 * keeps the verdict the same however the stream is split. A head line
 * starts at or before HTTP_MAX_HEAD, since the lines before it passed. */
static int line_too_long(const struct http_req_parser *p, size_t start,
                         size_t n)
{
    if (p->state == HTTP_REQ_LINE || p->state == HTTP_REQ_HEADERS)
        return n > HTTP_MAX_HEAD - start;
    return n > HTTP_MAX_HEAD;
}

static int line_append(struct http_req_parser *p, const char *s, size_t n)
{
    size_t need = p->line_len + n;

    if (need > p->line_cap) {
        /* Double, within the limit: a long line costs log(n) reallocs. */
        size_t cap = p->line_cap ? p->line_cap * 2 : 256;
        char *line;
        if (cap > HTTP_MAX_HEAD)
            cap = HTTP_MAX_HEAD;
        if (cap < need)
            cap = need;
        line = realloc(p->line, cap);
        if (!line)
            return fail(p, "out of memory");
        p->line = line;
        p->line_cap = cap;
    }
    memcpy(p->line + p->line_len, s, n);
    p->line_len = need;
    return STEP_GO;
}

/* How much of a partial request line is checked before its end arrives. */
enum { EARLY_CHECK = 64 };

/* A stream that is not HTTP at all (TLS's 0x16, binary) is refused from its
 * first bytes, rather than after an LF that may never come or HTTP_MAX_HEAD
 * bytes. Only the method is judged, in the first EARLY_CHECK bytes, so the
 * cost per call is bounded; a CR at the very end may be the terminator's,
 * so it is not judged yet. */
static int early_check(struct http_req_parser *p)
{
    size_t n = p->line_len < EARLY_CHECK ? p->line_len : EARLY_CHECK;
    size_t m;
    const char *why;

    if (n == p->line_len && p->line[n - 1] == '\r')
        n--;
    why = check_method(p->line, n, 0, &m);
    return why ? fail(p, why) : STEP_GO;
}

/* Takes the next line, or what is here of it, from data[*pos]. */
static int step_line(struct http_req_parser *p, const char *data, size_t len,
                     size_t *pos)
{
    size_t avail = len - *pos;
    const char *s, *nl, *line;
    size_t take, n;

    /* Not even data + 0 before this check: data may be NULL when len is 0. */
    if (avail == 0)
        return STEP_STOP;
    s = line = data + *pos;
    if (p->line_len == 0)
        p->line_start = p->message_offset;
    nl = memchr(s, '\n', avail);
    take = nl ? (size_t)(nl - s) + 1 : avail;
    if (line_too_long(p, p->line_start, p->line_len + take))
        return fail(p, p->state == HTTP_REQ_LINE ||
                       p->state == HTTP_REQ_HEADERS ? "head too large"
                                                    : "line too long");
    /* Copy only what must outlive this call: a line without its end, or
     * the end of a line whose start came in an earlier call. */
    if ((!nl || p->line_len > 0) && line_append(p, s, take) != STEP_GO)
        return STEP_FAIL;
    /* <=: a window that ended with a CR, not judged then (it may be the
     * terminator), is judged again now that the next byte is here. */
    if (!nl && p->state == HTTP_REQ_LINE && p->line_len - take <= EARLY_CHECK &&
        early_check(p) != STEP_GO)
        return STEP_FAIL;
    *pos += take;
    p->message_offset += take;
    if (!nl)
        return STEP_STOP;
    n = take;
    if (p->line_len > 0) {
        line = p->line;
        n = p->line_len;
        p->line_len = 0;
    }
    return take_line(p, line, n - 1, p->line_start);
}

/* ---- bodies ------------------------------------------------------------- */

/* Hands on the body bytes that are here, up to what the framing expects. */
static int deliver(struct http_req_parser *p, const char *data, size_t len,
                   size_t *pos)
{
    size_t avail = len - *pos;
    const char *s;
    size_t n;

    if (avail == 0)
        return STEP_STOP;
    s = data + *pos;
    n = avail < p->remaining ? avail : (size_t)p->remaining;
    *pos += n;
    p->message_offset += n;
    p->remaining -= n;
    return emit_body(p, s, n);
}

static int step_body(struct http_req_parser *p, const char *data, size_t len,
                     size_t *pos)
{
    if (p->remaining == 0)
        return finish_message(p);
    return deliver(p, data, len, pos);
}

static int step_chunk_data(struct http_req_parser *p, const char *data,
                           size_t len, size_t *pos)
{
    if (p->remaining == 0) {
        p->state = HTTP_REQ_CHUNK_DATA_END;
        return STEP_GO;
    }
    return deliver(p, data, len, pos);
}

/* ---- interface ---------------------------------------------------------- */

void http_req_init(struct http_req_parser *p,
                   const struct http_req_callbacks *cb, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->state = HTTP_REQ_LINE;
    p->cb = cb;
    p->ctx = ctx;
}

void http_req_free(struct http_req_parser *p)
{
    free(p->line);
    p->line = NULL;
    p->line_len = 0;
    p->line_cap = 0;
}

/* The feed loop proper: one step per line, body piece or event. Kept out
 * of line so that http_req_feed's fast path stays a leaf: inlined, this
 * loop's register saves would cost more than the fast path itself. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static size_t feed_steps(struct http_req_parser *p, const char *data,
                         size_t len)
{
    size_t pos = 0;

    for (;;) {
        size_t before = pos;
        int r;

        switch (p->state) {
        case HTTP_REQ_TUNNEL:
        case HTTP_REQ_ERROR:
            return pos;
        case HTTP_REQ_BODY:
            r = step_body(p, data, len, &pos);
            break;
        case HTTP_REQ_CHUNK_DATA:
            r = step_chunk_data(p, data, len, &pos);
            break;
        default:
            r = step_line(p, data, len, &pos);
            break;
        }
        if (r == STEP_FAIL)
            return before;
        if (r == STEP_STOP)
            return pos;
    }
}

/* Some callers hand over a request a few bytes at a time (a program that
 * writes its head piecemeal, a writev of small iovecs, the worst case one
 * byte per call). Bytes that only extend a line already being buffered are
 * taken by http_req_feed without the general machinery: the slow path
 * leaves in line_room how many bytes may join the line with nothing to
 * judge but whether one is its LF, so that the fast path is a compare and
 * a copy. Every other path clears it, so a stale room is never used. */

/* Whether bytes without an LF may join the buffered line unexamined. */
static int line_extendable(const struct http_req_parser *p)
{
    size_t m;

    switch (p->state) {
    case HTTP_REQ_HEADERS:
    case HTTP_REQ_CHUNK_SIZE:
    case HTTP_REQ_TRAILERS:
        return 1;
    case HTTP_REQ_LINE:
        /* Once the method is complete, no byte can change the early
         * verdict; it is short, so looking costs little. A window that
         * ends with a CR is judged again by the next byte (step_line). */
        if (p->line_len > EARLY_CHECK)
            return 1;
        return p->line_len > 0 &&
               !check_method(p->line, p->line_len, 0, &m) &&
               m < p->line_len;
    default:
        return 0;
    }
}

/* Sets line_room after a slow feed: the buffer's free space, within the
 * line's limit (line_too_long), when a started line is being buffered. */
static void set_line_room(struct http_req_parser *p)
{
    size_t limit = HTTP_MAX_HEAD;

    p->line_room = 0;
    if (p->line_len == 0 || !line_extendable(p))
        return;
    if (p->state == HTTP_REQ_LINE || p->state == HTTP_REQ_HEADERS)
        limit = p->line_start < HTTP_MAX_HEAD ? HTTP_MAX_HEAD - p->line_start : 0;
    if (limit > p->line_cap)
        limit = p->line_cap;
    if (limit > p->line_len)
        p->line_room = limit - p->line_len;
}

/* Takes data into the buffered line when line_room allows and it holds no
 * LF. Returns 0 to leave it to the slow path. */
static inline int extend_line(struct http_req_parser *p, const char *data,
                              size_t len)
{
    char *dst;

    if (len == 0 || len > p->line_room)
        return 0;
    /* Copied as it is looked at: past line_len the buffer is scratch. */
    dst = p->line + p->line_len;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n')
            return 0;
        dst[i] = data[i];
    }
    p->line_len += len;
    p->line_room -= len;
    p->message_offset += len;
    return 1;
}

/* Body bytes that do not finish the body (or chunk) are by far the most
 * common feed of a program sending a large request in pieces: taken here,
 * they cost a few comparisons instead of a round of the step machinery.
 * All len bytes are consumed whatever on_body returns, as in deliver(). */
static int extend_body(struct http_req_parser *p, const char *data, size_t len)
{
    if ((p->state != HTTP_REQ_BODY && p->state != HTTP_REQ_CHUNK_DATA) || len == 0 ||
        len >= p->remaining)
        return 0;
    p->message_offset += len;
    p->remaining -= len;
    emit_body(p, data, len);
    return 1;
}

size_t http_req_feed(struct http_req_parser *p, const char *data, size_t len)
{
    if (extend_line(p, data, len) || extend_body(p, data, len))
        return len;
    p->line_room = 0;
    size_t used = feed_steps(p, data, len);
    set_line_room(p);
    return used;
}

/* ---- targets ------------------------------------------------------------ */

static void put(const char **ptr, size_t *len, const char *s, size_t n)
{
    if (ptr)
        *ptr = s;
    if (len)
        *len = n;
}

static size_t count_digits(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* host [":" port] with a non-empty host, a bracketed IPv6 literal allowed.
 * Userinfo ("user@host") is refused rather than parsed: RFC 9110 §4.2.4
 * deprecates it in http(s) URIs, and refusing keeps the host unambiguous. */
static int authority_ok(const char *s, size_t n, int need_port)
{
    size_t host_len = n, port_len;

    if (n == 0 || memchr(s, '@', n))
        return 0;
    if (s[0] == '[') {
        /* An IPv6 literal: its colons are not the port's. */
        const char *rb = memchr(s, ']', n);
        if (!rb || rb - s < 2)
            return 0;
        host_len = (size_t)(rb - s) + 1;
        if (host_len < n && s[host_len] != ':')
            return 0;
    } else {
        while (host_len > 0 && s[host_len - 1] != ':')
            host_len--;
        host_len = host_len > 0 ? host_len - 1 : n;  /* at the last colon */
    }
    if (host_len == 0)
        return 0;
    if (host_len == n)
        return !need_port;
    port_len = n - host_len - 1;
    if (count_digits(s + host_len + 1, port_len) != port_len)
        return 0;
    return port_len > 0 || !need_port;
}

/* The length of an "http://" or "https://" prefix (any case), or 0. */
static size_t scheme_len(const char *s, size_t n, int *tls)
{
    if (n >= 7 && http_name_equals(s, 7, "http://")) {
        *tls = 0;
        return 7;
    }
    if (n >= 8 && http_name_equals(s, 8, "https://")) {
        *tls = 1;
        return 8;
    }
    return 0;
}

/* absolute-form. An empty path becomes "/" (a static string, the one
 * result that does not point into target). A query straight after the
 * authority ("http://h?q") is refused rather than rewritten to "/?q",
 * which would need memory of our own. */
static int split_absolute(const char *s, size_t n, size_t skip, int tls,
                          const char **authority, size_t *authority_len,
                          const char **path, size_t *path_len, int *is_tls)
{
    size_t a = skip;

    while (a < n && s[a] != '/' && s[a] != '?' && s[a] != '#')
        a++;
    if (!authority_ok(s + skip, a - skip, 0))
        return -1;
    if (a < n && s[a] != '/')
        return -1;
    put(authority, authority_len, s + skip, a - skip);
    if (a == n)
        put(path, path_len, "/", 1);
    else
        put(path, path_len, s + a, n - a);
    if (is_tls)
        *is_tls = tls;
    return 0;
}

int http_split_target(const char *target, size_t len,
                      const char **authority, size_t *authority_len,
                      const char **path, size_t *path_len, int *is_tls)
{
    size_t skip;
    int tls = 0;

    if (!target || len == 0)
        return -1;
    if (target[0] == '/' || (len == 1 && target[0] == '*')) {
        /* origin-form, or asterisk-form (OPTIONS *) */
        put(authority, authority_len, NULL, 0);
        put(path, path_len, target, len);
    } else if ((skip = scheme_len(target, len, &tls)) > 0) {
        return split_absolute(target, len, skip, tls, authority,
                              authority_len, path, path_len, is_tls);
    } else if (authority_ok(target, len, 1)) {
        /* authority-form, as CONNECT sends: "host:port", no path */
        put(authority, authority_len, target, len);
        put(path, path_len, target + len, 0);
    } else {
        return -1;
    }
    if (is_tls)
        *is_tls = 0;
    return 0;
}

int http_name_equals(const char *name, size_t len, const char *want)
{
    size_t i;

    if (!want)
        return 0;
    /* Stops at want's NUL, so never reads past either string. */
    for (i = 0; i < len; i++)
        if (want[i] == '\0' ||
            ascii_lower((unsigned char)name[i]) !=
                ascii_lower((unsigned char)want[i]))
            return 0;
    return want[len] == '\0';
}
