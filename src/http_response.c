/* http_response.c - incremental HTTP/1.1 response parser (RFC 9112 §4, §6.3).
 *
 * The twin of the request parser in http.c, for the bytes a connection
 * reads. It only follows the framing, so that each answer can be matched to
 * its request: two events per final answer (its head, its end), one per
 * interim answer. It never alters, copies or keeps body bytes: a counted
 * body or chunk is skipped in one step per feed, a read-until-close body is
 * taken whole. Lines are parsed where they lie; only a line cut by the end
 * of a feed is copied into p->line.
 *
 * Decisions the header leaves open:
 *
 * - A status line is "HTTP/1." DIGIT SP 3DIGIT, then SP and a reason phrase
 *   (possibly empty) or nothing at all ("HTTP/1.1 200"). Any minor version
 *   is taken (RFC 9112 §2.3: a recipient treats a higher minor version as
 *   the highest it knows). The code must lie in 100..599, since RFC 9110
 *   §15 calls others invalid. Nothing else stands where a status line is
 *   expected, not even an empty line: whatever could make us frame answers
 *   differently from the client is an error, after which the caller stops
 *   following the connection. The bytes still reach the program unchanged.
 * - The start of a status line is judged as it arrives, so a stream that is
 *   not HTTP/1.x (an HTTP/2 server's SETTINGS frame, TLS) is refused from
 *   its first bytes rather than after an LF that may never come.
 * - Header lines, Content-Length and chunk-size lines are judged by the
 *   request parser's rules (http_internal.h). Transfer-Encoding is a list of
 *   bare tokens as in requests, but only its last member matters: chunked
 *   framing if it is "chunked", read-until-close otherwise (RFC 9112 §6.3
 *   point 4). With Content-Length too, Transfer-Encoding wins (point 3);
 *   the Content-Length must still be well-formed.
 * - Framing headers are validated even in answers that cannot have a body
 *   (HEAD, 1xx, 204, 304) or that become a tunnel: they are still headers.
 * - 1xx answers other than 101 are interim: on_message_complete(interim 1)
 *   after their empty line, no on_headers_complete, and the request's
 *   settings (http_res_set_request) carry over to the next answer. 101 is
 *   final: both events, then TUNNEL.
 * - Trailers are validated like headers and not reported.
 * - On malformed input http_res_feed returns the number of bytes of that
 *   call before the line in which the error was found, as http_req_feed
 *   does. The events before the error, and the error, do not depend on how
 *   the stream was split.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* What a processing step asks of the feed loop: carry on, return what has
 * been consumed (out of input, or a callback paused), or return what was
 * consumed before the failing line. */
enum step { STEP_GO, STEP_STOP, STEP_FAIL };

/* ---- events ----------------------------------------------------------- */

static int paused(int r)
{
    return r == HTTP_PAUSE ? STEP_STOP : STEP_GO;
}

static int emit_head_done(struct http_res_parser *p, int status)
{
    if (!p->cb || !p->cb->on_headers_complete)
        return STEP_GO;
    return paused(p->cb->on_headers_complete(p->ctx, status));
}

static int emit_complete(struct http_res_parser *p, int status, int interim)
{
    if (!p->cb || !p->cb->on_message_complete)
        return STEP_GO;
    return paused(p->cb->on_message_complete(p->ctx, status, interim));
}

/* ---- state ------------------------------------------------------------ */

static int fail(struct http_res_parser *p, const char *why)
{
    p->state = HTTP_RES_ERROR;
    p->error = why;
    return STEP_FAIL;
}

/* Forgets the finished answer but keeps the line buffer's allocation and
 * what the request was: an interim answer's request is still waiting. */
static void reset_answer(struct http_res_parser *p)
{
    p->state = HTTP_RES_LINE;
    p->status = 0;
    p->remaining = 0;
    p->seen_content_length = 0;
    p->content_length = 0;
    p->chunked = 0;
    p->seen_transfer_encoding = 0;
    p->tunnel = 0;
    p->http10 = 0;
    p->conn_close = 0;
    p->conn_keep_alive = 0;
    p->head_bytes = 0;
    p->line_len = 0;
}

/* Resets before each callback, so that it sees a parser ready for the next
 * answer and may call http_res_set_request for it. */
static int finish_interim(struct http_res_parser *p)
{
    int status = p->status;

    reset_answer(p);
    return emit_complete(p, status, 1);
}

static int finish_final(struct http_res_parser *p)
{
    int status = p->status, tunnel = p->tunnel;

    /* HTTP/1.0 closes unless kept alive; 1.1 keeps alive unless closed. */
    p->closes_after = p->conn_close || (p->http10 && !p->conn_keep_alive);
    reset_answer(p);
    p->head_request = 0;
    p->connect_request = 0;
    if (tunnel)
        p->state = HTTP_RES_TUNNEL;
    return emit_complete(p, status, 0);
}

/* ---- lines by state ----------------------------------------------------- */

/* The fixed start of a status line, "HTTP/1.1 200 ", checked as it arrives
 * (see early_check). */
enum { STATUS_START = 13 };

/* Judges s[0..n) as a status line (whole = 1) or as the start of one. A
 * start is refused only where the whole line would be, and for the same
 * reason: the bytes are judged in order and each by its position alone. */
static const char *check_status(const char *s, size_t n, int whole)
{
    /* '#' a digit, '%' the first digit of a status code, else itself. */
    static const char form[] = "HTTP/1.# %##";
    size_t i, fixed = n < 12 ? n : 12;

    for (i = 0; i < fixed; i++) {
        char c = s[i], f = form[i];
        int ok = f == '#' ? c >= '0' && c <= '9'
               : f == '%' ? c >= '1' && c <= '5'
                          : c == f;
        if (!ok)
            return bad_byte(c, i < 9 ? "bad HTTP version" : "bad status code");
    }
    if (n < 12) {
        if (!whole)
            return NULL;
        return n < 8 ? "bad HTTP version" : n == 8 ? "no status code"
                                                   : "bad status code";
    }
    if (n > 12 && s[12] != ' ')
        return bad_byte(s[12], "bad status code");
    for (i = 13; whole && i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return bad_byte(s[i], "bad reason phrase");
    return NULL;
}

static int status_line(struct http_res_parser *p, const char *s, size_t n)
{
    const char *why = check_status(s, n, 1);

    if (why)
        return fail(p, why);
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    p->http10 = s[7] == '0';
    p->state = HTTP_RES_HEADERS;
    return STEP_GO;
}

/* Transfer-Encoding: a list of codings across all such headers, each a
 * bare token. Only whether the last is chunked decides the framing. */
static const char *transfer_encoding(struct http_res_parser *p,
                                     const char *v, size_t n)
{
    size_t i = 0;

    p->seen_transfer_encoding = 1;
    for (;;) {
        size_t b = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        if (i == b)
            return "bad Transfer-Encoding";
        p->chunked = http_name_equals(v + b, i - b, "chunked");
        i = skip_ows(v, i, n);
        if (i == n)
            return NULL;
        if (v[i] != ',')
            return "bad Transfer-Encoding";
        i = skip_ows(v, i + 1, n);
    }
}

/* Connection: a list of options. Only "close" and "keep-alive" matter
 * here; a malformed list is no reason to lose the answer's framing, so it
 * is read as far as it goes. */
static void connection_options(struct http_res_parser *p, const char *v, size_t n)
{
    size_t i = skip_ows(v, 0, n);

    while (i < n) {
        size_t b = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        if (http_name_equals(v + b, i - b, "close"))
            p->conn_close = 1;
        else if (http_name_equals(v + b, i - b, "keep-alive"))
            p->conn_keep_alive = 1;
        i = skip_ows(v, i, n);
        if (i == n || v[i] != ',')
            return;
        i = skip_ows(v, i + 1, n);
    }
}

/* Headers that decide where the answer ends. */
static const char *framing_header(struct http_res_parser *p,
                                  const struct field *f)
{
    if (http_name_equals(f->name, f->name_len, "content-length"))
        return content_length_list(f->value, f->value_len,
                                   &p->seen_content_length,
                                   &p->content_length);
    if (http_name_equals(f->name, f->name_len, "transfer-encoding"))
        return transfer_encoding(p, f->value, f->value_len);
    return NULL;
}

static int header_line(struct http_res_parser *p, const char *s, size_t n)
{
    struct field f;
    const char *why = split_field(s, n, &f);

    if (!why)
        why = framing_header(p, &f);
    if (!why && http_name_equals(f.name, f.name_len, "connection"))
        connection_options(p, f.value, f.value_len);
    return why ? fail(p, why) : STEP_GO;
}

/* RFC 9112 §6.3, in its order. An answer without a body goes to BODY with
 * nothing remaining, which completes it at once, or at the next feed if
 * on_headers_complete pauses. */
static int end_of_head(struct http_res_parser *p)
{
    int status = p->status;

    if (status < 200 && status != 101)
        return finish_interim(p);
    p->tunnel = status == 101 || (p->connect_request && status / 100 == 2);
    p->state = HTTP_RES_BODY;
    p->remaining = 0;
    if (p->tunnel || p->head_request || status == 204 || status == 304)
        ;  /* no body, whatever the headers say */
    else if (p->seen_transfer_encoding)
        p->state = p->chunked ? HTTP_RES_CHUNK_SIZE : HTTP_RES_UNTIL_CLOSE;
    else if (p->seen_content_length)
        p->remaining = p->content_length;
    else
        p->state = HTTP_RES_UNTIL_CLOSE;
    return emit_head_done(p, status);
}

static int chunk_size_line(struct http_res_parser *p, const char *s, size_t n)
{
    uint64_t size = 0;
    const char *why = chunk_size(s, n, &size);

    if (why)
        return fail(p, why);
    p->state = size == 0 ? HTTP_RES_TRAILERS : HTTP_RES_CHUNK_DATA;
    p->remaining = size;
    return STEP_GO;
}

static int trailer_line(struct http_res_parser *p, const char *s, size_t n)
{
    struct field f;
    const char *why = split_field(s, n, &f);

    return why ? fail(p, why) : STEP_GO;
}

/* A complete line of n bytes, LF removed. */
static int take_line(struct http_res_parser *p, const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\r')
        n--;
    switch (p->state) {
    case HTTP_RES_LINE:
        return status_line(p, s, n);
    case HTTP_RES_HEADERS:
        return n == 0 ? end_of_head(p) : header_line(p, s, n);
    case HTTP_RES_CHUNK_SIZE:
        return chunk_size_line(p, s, n);
    case HTTP_RES_CHUNK_DATA_END:
        if (n > 0)
            return fail(p, bad_byte(s[0], "bad chunk terminator"));
        p->state = HTTP_RES_CHUNK_SIZE;
        return STEP_GO;
    case HTTP_RES_TRAILERS:
        return n == 0 ? finish_final(p) : trailer_line(p, s, n);
    default:
        return fail(p, "internal error: bad state");
    }
}

/* ---- line assembly ------------------------------------------------------ */

static int line_append(struct http_res_parser *p, const char *s, size_t n)
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

/* Judges the start of a status line: what is buffered of it, then take
 * bytes at s (an LF last when complete). It runs before the size limit is
 * applied, so that a line that is both malformed and too long gets the
 * same verdict however it was split. A CR at the end of what is here may
 * be the terminator's, so it waits for the next byte. Once more than
 * STATUS_START bytes were buffered, all of the start has been judged. */
static int early_check(struct http_res_parser *p, const char *s, size_t take,
                       int complete)
{
    char start[STATUS_START + 1];
    size_t have = p->line_len, known = have + take - (complete ? 1 : 0);
    size_t n = known < sizeof start ? known : sizeof start;
    const char *why;

    if (have > STATUS_START)
        return STEP_GO;
    if (have > 0)
        memcpy(start, p->line, have);
    memcpy(start + have, s, n - have);
    if (n == known && n > 0 && start[n - 1] == '\r')
        n--;
    why = check_status(start, n < STATUS_START ? n : STATUS_START, 0);
    return why ? fail(p, why) : STEP_GO;
}

/* Takes the next line, or what is here of it, from data[*pos]. The head
 * (status line and headers) is capped as a whole, any other line (chunk
 * size, trailer) on its own, so buffering stays bounded. */
static int step_line(struct http_res_parser *p, const char *data, size_t len,
                     size_t *pos)
{
    size_t avail = len - *pos;
    int head = p->state == HTTP_RES_LINE || p->state == HTTP_RES_HEADERS;
    const char *s, *nl, *line;
    size_t take, n;

    /* Not even data + 0 before this check: data may be NULL when len is 0. */
    if (avail == 0)
        return STEP_STOP;
    s = line = data + *pos;
    nl = memchr(s, '\n', avail);
    take = nl ? (size_t)(nl - s) + 1 : avail;
    if (p->state == HTTP_RES_LINE &&
        early_check(p, s, take, nl != NULL) != STEP_GO)
        return STEP_FAIL;
    if (head && take > HTTP_MAX_HEAD - p->head_bytes)
        return fail(p, "head too large");
    if (!head && take > HTTP_MAX_HEAD - p->line_len)
        return fail(p, "line too long");
    /* Copy only what must outlive this call: a line without its end, or
     * the end of a line whose start came in an earlier call. */
    if ((!nl || p->line_len > 0) && line_append(p, s, take) != STEP_GO)
        return STEP_FAIL;
    *pos += take;
    if (head)
        p->head_bytes += take;
    if (!nl)
        return STEP_STOP;
    n = take;
    if (p->line_len > 0) {
        line = p->line;
        n = p->line_len;
        p->line_len = 0;
    }
    return take_line(p, line, n - 1);
}

/* ---- bodies ------------------------------------------------------------- */

/* Steps over the body bytes that are here, up to what the framing expects:
 * one step however many there are. */
static void skip_bytes(struct http_res_parser *p, size_t len, size_t *pos)
{
    size_t avail = len - *pos;
    size_t n = avail < p->remaining ? avail : (size_t)p->remaining;

    *pos += n;
    p->remaining -= n;
}

static int step_body(struct http_res_parser *p, size_t len, size_t *pos)
{
    if (p->remaining == 0)
        return finish_final(p);
    if (*pos == len)
        return STEP_STOP;
    skip_bytes(p, len, pos);
    return STEP_GO;
}

static int step_chunk_data(struct http_res_parser *p, size_t len, size_t *pos)
{
    if (p->remaining == 0) {
        p->state = HTTP_RES_CHUNK_DATA_END;
        return STEP_GO;
    }
    if (*pos == len)
        return STEP_STOP;
    skip_bytes(p, len, pos);
    return STEP_GO;
}

/* ---- interface ---------------------------------------------------------- */

void http_res_init(struct http_res_parser *p,
                   const struct http_res_callbacks *cb, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->state = HTTP_RES_LINE;
    p->cb = cb;
    p->ctx = ctx;
}

void http_res_free(struct http_res_parser *p)
{
    free(p->line);
    p->line = NULL;
    p->line_len = 0;
    p->line_cap = 0;
}

void http_res_set_request(struct http_res_parser *p, int head_request,
                          int connect_request)
{
    p->head_request = head_request != 0;
    p->connect_request = connect_request != 0;
}

/* One step per line, body piece or event. */
size_t http_res_feed(struct http_res_parser *p, const char *data, size_t len)
{
    size_t pos = 0;

    for (;;) {
        size_t before = pos;
        int r;

        switch (p->state) {
        case HTTP_RES_TUNNEL:
        case HTTP_RES_ERROR:
            return pos;
        case HTTP_RES_UNTIL_CLOSE:
            return len;  /* all of it is body, up to the end of the stream */
        case HTTP_RES_BODY:
            r = step_body(p, len, &pos);
            break;
        case HTTP_RES_CHUNK_DATA:
            r = step_chunk_data(p, len, &pos);
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

/* Only a read-until-close body ends with the connection. Anything else
 * left unfinished (a status line, a head, a counted or chunked body cut
 * short) is not a complete answer, so nothing is reported. */
void http_res_eof(struct http_res_parser *p)
{
    if (p->state == HTTP_RES_UNTIL_CLOSE)
        (void)finish_final(p);
}
