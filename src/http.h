/* http.h - incremental HTTP/1.1 request parser.
 *
 * Pure: bytes in, events out. No I/O, no globals, no knowledge of sockets.
 * The caller feeds the bytes of one connection's outbound stream in order,
 * in pieces of any size; the parser reports each request's line, headers,
 * decoded body and end through callbacks. Events are the same however the
 * stream is split (body data may arrive in more, smaller pieces).
 *
 * Offsets in events count bytes from the first byte of the current message,
 * so a caller that keeps the raw message can find any line in it.
 */
#ifndef RETRYSAFE_HTTP_H
#define RETRYSAFE_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* A request head (request line plus headers) larger than this is refused:
 * the parser reports an error and the caller passes the connection through. */
#define HTTP_MAX_HEAD (64 * 1024)

/* Callbacks return HTTP_CONTINUE, or HTTP_PAUSE to make http_req_feed return
 * right after the bytes that produced the event. */
enum { HTTP_CONTINUE = 0, HTTP_PAUSE = 1 };

enum http_framing {
    HTTP_BODY_NONE,    /* no body: neither Content-Length nor chunked */
    HTTP_BODY_LENGTH,  /* Content-Length bytes follow the head */
    HTTP_BODY_CHUNKED  /* Transfer-Encoding: chunked */
};

struct http_head_info {
    enum http_framing framing;
    uint64_t content_length;  /* valid when framing == HTTP_BODY_LENGTH */
    size_t blank_line_start;  /* offset of the empty line that ends the head */
    size_t head_len;          /* offset of the first body byte */
    int upgrade;              /* CONNECT, or an Upgrade header: after this
                                 message the stream is no longer HTTP */
};

struct http_req_callbacks {
    /* method and target point into the parser's or caller's memory and are
     * valid only during the call. version is 10 or 11. */
    int (*on_request_line)(void *ctx, const char *method, size_t method_len,
                           const char *target, size_t target_len, int version);
    /* value has leading and trailing whitespace removed. line_start and
     * line_len locate the whole header line, terminator included. */
    int (*on_header)(void *ctx, const char *name, size_t name_len,
                     const char *value, size_t value_len,
                     size_t line_start, size_t line_len);
    int (*on_headers_complete)(void *ctx, const struct http_head_info *info);
    /* Decoded body bytes (chunk framing removed). */
    int (*on_body)(void *ctx, const char *data, size_t len);
    /* message_len counts every raw byte of the message, trailers included. */
    int (*on_message_complete)(void *ctx, size_t message_len);
};

enum http_req_state {
    HTTP_REQ_LINE,       /* before or inside a request line */
    HTTP_REQ_HEADERS,
    HTTP_REQ_BODY,       /* Content-Length body */
    HTTP_REQ_CHUNK_SIZE,
    HTTP_REQ_CHUNK_DATA,
    HTTP_REQ_CHUNK_DATA_END, /* the CRLF after chunk data */
    HTTP_REQ_TRAILERS,
    HTTP_REQ_TUNNEL,     /* after CONNECT or Upgrade: not HTTP any more */
    HTTP_REQ_ERROR       /* malformed input: not HTTP, stays here */
};

struct http_req_parser {
    enum http_req_state state;
    const struct http_req_callbacks *cb;
    void *ctx;

    size_t message_offset;  /* raw bytes of the current message consumed */
    uint64_t remaining;     /* body or chunk bytes still expected */

    /* Framing learnt from the headers of the current message. */
    int seen_content_length;
    uint64_t content_length;
    int seen_transfer_encoding;
    int chunked;
    int upgrade;
    int is_connect;
    int version;            /* of the current request: 10 or 11 */

    /* A line that arrived in pieces, kept until its terminator arrives. */
    char *line;
    size_t line_len;
    size_t line_cap;
    size_t line_start;       /* message offset of the buffered line */
    size_t line_room;        /* bytes that may join it unexamined but for
                                an LF (see http_req_feed); 0: none */

    const char *error;       /* why the parser entered HTTP_REQ_ERROR */
};

void http_req_init(struct http_req_parser *p,
                   const struct http_req_callbacks *cb, void *ctx);
void http_req_free(struct http_req_parser *p);

/* Consumes bytes of the stream; returns how many. Fewer than len means a
 * callback paused, or the parser is in HTTP_REQ_ERROR or HTTP_REQ_TUNNEL
 * (then it consumes nothing more). A paused parser resumes at the next feed,
 * which must start with the first unconsumed byte. */
size_t http_req_feed(struct http_req_parser *p, const char *data, size_t len);

static inline int http_req_failed(const struct http_req_parser *p)
{
    return p->state == HTTP_REQ_ERROR;
}

static inline int http_req_is_tunnel(const struct http_req_parser *p)
{
    return p->state == HTTP_REQ_TUNNEL;
}

/* True between messages: no byte of a next request consumed yet. */
static inline int http_req_idle(const struct http_req_parser *p)
{
    return p->state == HTTP_REQ_LINE && p->message_offset == 0;
}

/* Splits a request target into authority and path-with-query.
 * origin-form "/p?q" gives no authority and path "/p?q"; absolute-form
 * "http://Host:8080/p?q" gives authority "Host:8080" and path "/p?q" ("/" if
 * empty). Sets *is_tls for an https scheme. Pointers point into target.
 * Returns 0, or -1 for a target that is neither. */
int http_split_target(const char *target, size_t len,
                      const char **authority, size_t *authority_len,
                      const char **path, size_t *path_len, int *is_tls);

/* Case-insensitive comparison of a header name with a NUL-terminated one. */
int http_name_equals(const char *name, size_t len, const char *want);


/* ---- responses ---------------------------------------------------------
 *
 * Incremental HTTP/1.1 response parser, fed the bytes a connection reads,
 * in order and in pieces of any size. It follows the framing (RFC 9112,
 * 6.3) so that each answer can be matched to its request: Content-Length,
 * chunked, read-until-close, no body for 1xx, 204, 304 and answers to HEAD
 * (the caller says which, see http_res_set_request), and answers to
 * CONNECT (2xx) and 101 Switching Protocols, after which the stream is no
 * longer HTTP. Events are the same however the stream is split.
 */

enum http_res_state {
    HTTP_RES_LINE,        /* before or inside a status line */
    HTTP_RES_HEADERS,
    HTTP_RES_BODY,        /* Content-Length body */
    HTTP_RES_CHUNK_SIZE,
    HTTP_RES_CHUNK_DATA,
    HTTP_RES_CHUNK_DATA_END,
    HTTP_RES_TRAILERS,
    HTTP_RES_UNTIL_CLOSE, /* body ends when the connection does */
    HTTP_RES_TUNNEL,      /* after 101, or 2xx to CONNECT */
    HTTP_RES_ERROR
};

struct http_res_callbacks {
    /* A final answer's status line and headers have arrived (not called for
     * 1xx). */
    int (*on_headers_complete)(void *ctx, int status);
    /* An answer is complete. interim is set for 1xx answers, which precede
     * the final answer to the same request. */
    int (*on_message_complete)(void *ctx, int status, int interim);
};

struct http_res_parser {
    enum http_res_state state;
    const struct http_res_callbacks *cb;
    void *ctx;
    int status;
    int head_request;        /* the current answer is to HEAD: no body */
    int connect_request;     /* the current answer is to CONNECT */
    uint64_t remaining;
    int seen_content_length;
    uint64_t content_length;
    int chunked;             /* the last transfer coding is chunked */
    int seen_transfer_encoding;
    int tunnel;              /* after this answer the stream is not HTTP */
    int http10;              /* the current answer is HTTP/1.0 */
    int conn_close;          /* its Connection header lists "close" */
    int conn_keep_alive;     /* ... or "keep-alive" */
    /* Set as the final answer's on_message_complete is called, and kept
     * until the next final answer: the server ends the connection after
     * it (RFC 9112 §9.6, §9.3), so it reads no request sent after it. */
    int closes_after;
    size_t head_bytes;       /* bytes of the current head, bounded */
    char *line;
    size_t line_len;
    size_t line_cap;
    const char *error;
};

void http_res_init(struct http_res_parser *p, const struct http_res_callbacks *cb, void *ctx);
void http_res_free(struct http_res_parser *p);

/* Says what the request was that the next (or current, if its head has not
 * completed) answer belongs to. Reset to 0 after each final answer. */
void http_res_set_request(struct http_res_parser *p, int head_request, int connect_request);

/* Consumes bytes; returns how many (fewer only when a callback paused or
 * the parser is in ERROR or TUNNEL). */
size_t http_res_feed(struct http_res_parser *p, const char *data, size_t len);

/* The connection closed: a read-until-close answer is complete (its
 * on_message_complete fires); any other unfinished answer is not. */
void http_res_eof(struct http_res_parser *p);

#endif
