/* outbound.c - request assembly, the tag decision, and byte accounting.
 *
 * Each request goes through these states:
 *   FRESH      between requests
 *   UNDECIDED  bytes held while the request line and headers arrive
 *   PASS       not ours: the rest of the request goes straight out
 *   TAG        ours: held until complete, then sent with the key added
 * A request is passed on as soon as something rules it out (its method, its
 * host, an application key, a body over the limit). Bytes that are not HTTP
 * switch the connection to pass-through for good.
 *
 * Within one call, what is to be sent is collected as an iovec list (struct
 * emit) that points into the caller's buffer or into our own, and goes out
 * in one real send. What the socket does not take is copied to the queue.
 */
#include "outbound.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "canon.h"
#include "log.h"

/* Held requests keep at most this much memory once they are done. */
#define OUTBOUND_KEEP (64 * 1024)
#define EMIT_MAX 16
/* The parser is fed at most this much of the caller's buffer at a time,
 * and a batch is sent once it holds this much: so what a full socket leaves
 * to the queue, and how far a held request can run past its limit, are
 * bounded by this rather than by the size of the caller's write. */
#define OUTBOUND_STEP (64 * 1024)

struct emit {
    struct iovec iov[EMIT_MAX];
    int cnt;
    int internal;      /* an entry points into our own buffers */
    int recorded;      /* it carries the request just recorded */
    int must_flush;
    int stop;          /* the socket is full: take nothing more this call */
    int send_errno;
    /* Entries from retract_from on are caller bytes of a connection passed
     * through for good: what the socket does not take of them is simply
     * not taken, as without us, instead of being copied to the queue. */
    int retract_from;  /* -1: none */
    size_t retracted;  /* caller bytes given back by the last flush */
    int sent_any;      /* some byte of the last flush went out */
    int any_sent_this_call;
    size_t bytes;      /* in iov[0..cnt) */
};

/* Set for the duration of one outbound_write: the callbacks need them. */
struct outbound_call {
    struct outbound *ob;
    const struct outbound_io *io;
};

static const struct http_req_callbacks request_callbacks;

void outbound_init(struct outbound *ob, const struct outbound_env *env,
                   int tls, const char *peer)
{
    memset(ob, 0, sizeof(*ob));
    ob->env = env;
    ob->tls = tls;
    snprintf(ob->peer, sizeof(ob->peer), "%s", peer ? peer : "");
    http_req_init(&ob->parser, &request_callbacks, NULL);
    ob->msg = OUTBOUND_FRESH;
}

void outbound_free(struct outbound *ob)
{
    http_req_free(&ob->parser);
    buf_free(&ob->request_line);
    buf_free(&ob->canonical);
    buf_free(&ob->head);
    buf_free(&ob->body);
    buf_free(&ob->queue);
}

int outbound_idle(const struct outbound *ob)
{
    return ob->msg == OUTBOUND_FRESH && ob->queue.len == 0 && ob->held == 0;
}

static int holding_request(const struct outbound *ob)
{
    return (ob->msg == OUTBOUND_UNDECIDED || ob->msg == OUTBOUND_TAG) && ob->head.len > 0;
}

int outbound_holding(const struct outbound *ob)
{
    return holding_request(ob) || ob->queue.len > 0;
}

/* ---- the decision, made from parser events ---------------------------- */

static int decide_pass(struct outbound *ob, const char *why)
{
    if (log_enabled(CONFIG_LOG_DEBUG))
        log_msg(CONFIG_LOG_DEBUG, "request passed through untagged: %s", why);
    ob->msg = OUTBOUND_PASS;
    return HTTP_PAUSE;
}

static const char *target_path(const struct outbound *ob, size_t *len);

/* A request to an enabled host goes out untagged: the journal says so. */
static int decide_skip(struct outbound_call *call, const char *why, uint64_t body_len)
{
    struct outbound *ob = call->ob;
    if (call->io->record && ob->host) {
        char authority[KEY_AUTHORITY_MAX];
        int alen = key_normalize_authority(ob->authority, ob->authority_len, ob->tls,
                                           authority, sizeof(authority));
        size_t path_len = 0;
        const char *path = target_path(ob, &path_len);
        struct outbound_record rec = {
            .method = ob->request_line.data, .method_len = ob->method_len,
            .authority = alen > 0 ? authority : ob->authority,
            .authority_len = alen > 0 ? (size_t)alen : ob->authority_len,
            .path = path ? path : "", .path_len = path_len,
            .key = "", .fingerprint = "", .tls = ob->tls,
            .body_len = body_len, .skipped = 1,
        };
        call->io->record(call->io->ctx, &rec);
    }
    return decide_pass(ob, why);
}

static int match_authority(struct outbound *ob)
{
    const char *host;
    size_t host_len;
    int port;
    if (key_split_authority(ob->authority, ob->authority_len, ob->tls ? 443 : 80,
                            &host, &host_len, &port) != 0)
        return 0;
    ob->host = config_match_host(ob->env->cfg, host, host_len, port);
    return ob->host != NULL;
}

static int set_authority(struct outbound *ob, const char *s, size_t len)
{
    if (len == 0 || len > sizeof(ob->authority))
        return -1;
    memcpy(ob->authority, s, len);
    ob->authority_len = len;
    return 0;
}

static int on_request_line(void *ctx, const char *method, size_t method_len,
                           const char *target, size_t target_len, int version)
{
    struct outbound *ob = ((struct outbound_call *)ctx)->ob;
    (void)version;
    ob->is_head = method_len == 4 && memcmp(method, "HEAD", 4) == 0;
    if (!config_method_enabled(ob->env->cfg, method, method_len))
        return decide_pass(ob, "method not enabled");
    ob->method_len = method_len;
    ob->target_len = target_len;
    if (buf_append(&ob->request_line, method, method_len) != 0 ||
        buf_append(&ob->request_line, " ", 1) != 0 ||
        buf_append(&ob->request_line, target, target_len) != 0)
        return decide_pass(ob, "out of memory");

    const char *authority, *path;
    size_t authority_len, path_len;
    int tls;
    if (http_split_target(target, target_len, &authority, &authority_len,
                          &path, &path_len, &tls) != 0)
        return decide_pass(ob, "request target not understood");
    if (!authority)
        return HTTP_CONTINUE;
    /* absolute-form, as sent to a forward proxy: the target names the host
     * and any Host header is to be ignored (RFC 9112, 3.2.2). */
    ob->authority_from_target = 1;
    if (set_authority(ob, authority, authority_len) != 0 || !match_authority(ob))
        return decide_pass(ob, "host not enabled");
    return HTTP_CONTINUE;
}

static void note_key_headers(struct outbound *ob, const char *name, size_t len)
{
    const struct config *cfg = ob->env->cfg;
    for (size_t i = 0; i < cfg->n_header_names && i < 32; i++)
        if (http_name_equals(name, len, cfg->header_names[i]))
            ob->app_header_mask |= 1u << i;
}

static int on_header(void *ctx, const char *name, size_t name_len,
                     const char *value, size_t value_len,
                     size_t line_start, size_t line_len)
{
    struct outbound *ob = ((struct outbound_call *)ctx)->ob;
    if (ob->msg == OUTBOUND_PASS)
        return HTTP_CONTINUE;
    note_key_headers(ob, name, name_len);
    if (http_name_equals(name, name_len, "Content-Type")) {
        ob->body_kind = canon_kind_of(value, value_len);
        return HTTP_CONTINUE;
    }
    if (http_name_equals(name, name_len, "Expect")) {
        if (value_len == 12 && http_name_equals(value, value_len, "100-continue")) {
            ob->expect_start = line_start;
            ob->expect_len = line_len;
        }
        return HTTP_CONTINUE;
    }
    if (!http_name_equals(name, name_len, "Host") || ob->authority_from_target)
        return HTTP_CONTINUE;
    if (ob->authority_len)
        return decide_pass(ob, "more than one Host header");
    if (set_authority(ob, value, value_len) != 0 || !match_authority(ob))
        return decide_pass(ob, "host not enabled");
    return HTTP_CONTINUE;
}

static int answer_continue(struct outbound_call *call)
{
    static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return call->io->answer(call->io->ctx, continue_line, sizeof(continue_line) - 1);
}

static int on_headers_complete(void *ctx, const struct http_head_info *info)
{
    struct outbound_call *call = ctx;
    struct outbound *ob = call->ob;
    const struct config *cfg = ob->env->cfg;

    ob->info = *info;
    if (ob->msg == OUTBOUND_PASS)
        return HTTP_CONTINUE;
    if (!ob->authority_len) {
        /* HTTP/1.0 without Host: the peer address is all there is. */
        if (set_authority(ob, ob->peer, strlen(ob->peer)) != 0 || !match_authority(ob))
            return decide_pass(ob, "no Host header and peer not enabled");
    }
    if (ob->app_header_mask & (1u << ob->host->header_index))
        return decide_pass(ob, "the application sent its own key");
    if (!ob->env->keys)
        return decide_skip(call, "no secret to derive keys with", info->content_length);
    if (info->framing == HTTP_BODY_LENGTH && info->content_length > cfg->max_body) {
        log_msg(CONFIG_LOG_WARN, "request body of %llu bytes is over RETRYSAFE_MAX_BODY; "
                "sent untagged", (unsigned long long)info->content_length);
        return decide_skip(call, "body over the limit", info->content_length);
    }
    ob->msg = OUTBOUND_TAG;

    /* The key needs the whole body, so the head cannot go out before the
     * body arrives; a client waiting for 100 Continue would stall. Answer it
     * here, and drop the Expect line so the server sends no 100 of its own. */
    int has_body = info->framing == HTTP_BODY_CHUNKED ||
                   (info->framing == HTTP_BODY_LENGTH && info->content_length > 0);
    if (ob->expect_len && has_body && answer_continue(call) == 0)
        ob->expect_answered = 1;
    return HTTP_CONTINUE;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    struct outbound_call *call = ctx;
    struct outbound *ob = call->ob;
    if (ob->msg != OUTBOUND_TAG || ob->info.framing != HTTP_BODY_CHUNKED)
        return HTTP_CONTINUE;
    if (ob->body.len + len > ob->env->cfg->max_body) {
        log_msg(CONFIG_LOG_WARN, "chunked request body is over RETRYSAFE_MAX_BODY; sent untagged");
        return decide_skip(call, "body over the limit", ob->body.len + len);
    }
    if (buf_append(&ob->body, data, len) != 0)
        return decide_pass(ob, "out of memory");
    return HTTP_CONTINUE;
}

static int on_message_complete(void *ctx, size_t message_len)
{
    struct outbound *ob = ((struct outbound_call *)ctx)->ob;
    ob->message_complete = 1;
    ob->message_len = message_len;
    return HTTP_PAUSE;
}

static const struct http_req_callbacks request_callbacks = {
    .on_request_line = on_request_line,
    .on_header = on_header,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- emitting and sending --------------------------------------------- */

static void emit_add(struct emit *e, const char *p, size_t len, int internal)
{
    if (len == 0)
        return;
    if (!internal && e->cnt > 0 && (e->retract_from < 0 || e->retract_from < e->cnt)) {
        struct iovec *last = &e->iov[e->cnt - 1];
        if ((const char *)last->iov_base + last->iov_len == p) {
            last->iov_len += len;
            e->bytes += len;
            return;
        }
    }
    e->bytes += len;
    e->iov[e->cnt].iov_base = (void *)p;
    e->iov[e->cnt].iov_len = len;
    e->cnt++;
    e->internal |= internal;
    if (e->cnt >= EMIT_MAX - 4)
        e->must_flush = 1;
}

/* Sends iov[*first..cnt) until the socket takes no more, advancing *first
 * and trimming the first unsent entry. Returns 0 when all went out, else -1
 * with the send's errno. */
static int send_all(const struct outbound_io *io, struct iovec *iov, int cnt, int *first)
{
    int i = *first;
    while (i < cnt) {
        ssize_t r = io->send(io->ctx, iov + i, cnt - i);
        if (r < 0)
            break;
        size_t sent = (size_t)r;
        while (i < cnt && sent >= iov[i].iov_len)
            sent -= iov[i++].iov_len;
        if (i < cnt) {
            iov[i].iov_base = (char *)iov[i].iov_base + sent;
            iov[i].iov_len -= sent;
        }
    }
    *first = i;
    return i < cnt ? -1 : 0;
}

static int queue_rest(struct outbound *ob, const struct iovec *iov, int first, int cnt)
{
    size_t before = ob->queue.len;
    for (int i = first; i < cnt; i++)
        if (buf_append(&ob->queue, iov[i].iov_base, iov[i].iov_len) != 0) {
            ob->queue.len = before;
            return -1;
        }
    return 0;
}

/* Sends iov[*first..cnt), waiting for the socket whenever it is full, as
 * long as io->wait_writable agrees to wait. Returns 0 when all went out. */
static int send_waiting(const struct outbound_io *io, struct iovec *iov, int cnt, int *first)
{
    while (send_all(io, iov, cnt, first) != 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (io->wait_writable(io->ctx) != 0)
            return -1;
    }
    return 0;
}

/* Sends e. Whatever the socket does not take is copied to the queue; returns
 * -1 with the send's errno in that case. */
/* Caller bytes past the point of no more parsing. */
static void emit_retractable(struct emit *e, const char *p, size_t len)
{
    if (len == 0)
        return;
    if (e->retract_from < 0)
        e->retract_from = e->cnt;
    emit_add(e, p, len, 0);
}

/* Refused or reset before anything was sent: the request never left. */
static int never_left(int err)
{
    return err == ECONNREFUSED || err == ECONNRESET || err == EPIPE || err == ENOTCONN;
}

/* A send failed for good (reset, refused, broken pipe): unlike a full
 * socket, waiting will not help. */
static int hard_error(int err)
{
    return err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ENOBUFS &&
           err != ENOMEM;
}

/* The connection is dead: nothing we hold can ever be sent. */
static void connection_broken(struct outbound *ob)
{
    buf_reset(&ob->queue, 0);
    ob->held = 0;
    ob->unsent_record = 0;
    ob->passthrough = 1;
    ob->msg = OUTBOUND_FRESH;
}

static int emit_flush(struct outbound *ob, struct emit *e, const struct outbound_io *io)
{
    int first = 0, rc = 0;
    size_t first_len = e->cnt ? e->iov[0].iov_len : 0;
    e->retracted = 0;
    if (e->cnt)
        e->sent_any = 1;
    if (e->cnt && send_all(io, e->iov, e->cnt, &first) != 0) {
        int saved = errno;
        int untouched = first == 0 && e->iov[0].iov_len == first_len;
        if (untouched)
            e->sent_any = 0;
        if (e->recorded && io->failed && untouched && never_left(saved))
            io->failed(io->ctx, saved);
        int keep_to = e->retract_from >= 0 && e->retract_from < e->cnt ? e->retract_from
                                                                       : e->cnt;
        for (int i = keep_to > first ? keep_to : first; i < e->cnt; i++)
            e->retracted += e->iov[i].iov_len;
        if (hard_error(saved)) {
            connection_broken(ob);
        } else if (first < keep_to) {
            if (queue_rest(ob, e->iov, first, keep_to) == 0) {
                ob->unsent_record = e->recorded && untouched;
            } else {
                /* no memory to keep the rest: wait it out rather than lose it */
                send_waiting(io, e->iov, keep_to, &first);
            }
        }
        rc = -1;
        errno = saved;
    }
    e->cnt = 0;
    e->bytes = 0;
    e->internal = 0;
    e->recorded = 0;
    e->must_flush = 0;
    e->retract_from = -1;
    e->any_sent_this_call |= e->sent_any;
    e->sent_any = 0;
    return rc;
}

/* Sends the queue, waiting for the socket if asked to. Returns 0 when it
 * is empty. */
static int queue_flush(struct outbound *ob, const struct outbound_io *io, int wait)
{
    struct iovec iov = { ob->queue.data, ob->queue.len };
    int first = 0;
    int rc = wait ? send_waiting(io, &iov, 1, &first) : send_all(io, &iov, 1, &first);
    int saved = errno;
    size_t sent = ob->queue.len - (first ? 0 : iov.iov_len);
    if (sent)
        ob->unsent_record = 0;
    buf_consume(&ob->queue, sent);
    if (rc == 0) {
        buf_reset(&ob->queue, OUTBOUND_KEEP);
    } else if (hard_error(saved)) {
        if (ob->unsent_record && io->failed && never_left(saved))
            io->failed(io->ctx, saved);
        connection_broken(ob);
    }
    errno = saved;
    return rc;
}

/* The held bytes as they arrived, less an Expect line we answered. */
static void emit_held(struct outbound *ob, struct emit *e, size_t upto)
{
    size_t len = upto < ob->head.len ? upto : ob->head.len;
    if (!ob->expect_answered || ob->expect_start >= len) {
        emit_add(e, ob->head.data, len, 1);
        return;
    }
    emit_add(e, ob->head.data, ob->expect_start, 1);
    size_t after = ob->expect_start + ob->expect_len;
    if (after < len)
        emit_add(e, ob->head.data + after, len - after, 1);
}

/* The target's path and query (absolute-form loses its scheme and host). */
static const char *target_path(const struct outbound *ob, size_t *len)
{
    if (ob->request_line.len < ob->method_len + 1 + ob->target_len)
        return NULL;
    const char *target = ob->request_line.data + ob->method_len + 1;
    *len = ob->target_len;
    if (!ob->authority_from_target)
        return target;
    const char *a, *path;
    size_t a_len;
    int tls;
    if (http_split_target(target, ob->target_len, &a, &a_len, &path, len, &tls) != 0)
        return NULL;
    return path;
}

/* Derives the request's key (through the window's generation), writes the
 * key line, and tells the recorder before a byte of it leaves. Returns 0,
 * 1 when the recorder answered the request itself, or -1. */
static int build_key_line(struct outbound *ob, const struct outbound_io *io)
{
    const struct config *cfg = ob->env->cfg;
    size_t path_len = 0;
    const char *path = target_path(ob, &path_len);
    if (!path)
        return -1;
    struct key_request req = {
        .method = ob->request_line.data, .method_len = ob->method_len,
        .authority = ob->authority, .authority_len = ob->authority_len,
        .tls = ob->tls,
        .path = path, .path_len = path_len,
        .scope = cfg->scope, .scope_len = strlen(cfg->scope),
    };
    if (ob->info.framing == HTTP_BODY_CHUNKED) {
        req.body = ob->body.data;
        req.body_len = ob->body.len;
    } else if (ob->info.framing == HTTP_BODY_LENGTH) {
        req.body = ob->head.data + ob->info.head_len;
        req.body_len = (size_t)ob->info.content_length;
    }
    /* A regenerated tool call (other key order, spacing, number spelling)
     * is the same request: JSON and form bodies count by their canonical
     * form. One that does not parse counts by its bytes. */
    size_t body_len = req.body_len;
    ob->canonical.len = 0;
    if (ob->body_kind != CANON_RAW &&
        canon_body((enum canon_kind)ob->body_kind, req.body, req.body_len,
                   (const char *const *)cfg->ignore_fields, cfg->n_ignore_fields,
                   &ob->canonical) == 0) {
        req.body = ob->canonical.data ? ob->canonical.data : "";
        req.body_len = ob->canonical.len;
    }
    char fingerprint[KEY_FINGERPRINT_CHARS + 1];
    char key[KEY_CHARS + 1];
    if (key_for_request(ob->env->keys, &req, io->generation, io->ctx, key, fingerprint,
                        &req.generation) != 0)
        return -1;
    const char *name = cfg->header_names[ob->host->header_index];
    int n = snprintf(ob->key_line, sizeof(ob->key_line), "%s: %s\r\n", name, key);
    if (n < 0 || (size_t)n >= sizeof(ob->key_line))
        return -1;
    ob->key_line_len = (size_t)n;
    if (io->record) {
        char authority[KEY_AUTHORITY_MAX];
        int alen = key_normalize_authority(ob->authority, ob->authority_len, ob->tls,
                                           authority, sizeof(authority));
        struct outbound_record rec = {
            .method = req.method, .method_len = req.method_len,
            .authority = authority, .authority_len = alen > 0 ? (size_t)alen : 0,
            .path = path, .path_len = path_len,
            .key = key, .fingerprint = fingerprint, .generation = req.generation,
            .tls = ob->tls, .body_len = body_len,
        };
        if (io->record(io->ctx, &rec) == OUTBOUND_ANSWERED)
            return 1;
    }
    if (log_enabled(CONFIG_LOG_DEBUG))
        log_msg(CONFIG_LOG_DEBUG, "tagged %.*s %.*s with %s", (int)ob->method_len,
                ob->request_line.data, (int)ob->authority_len, ob->authority, key);
    return 0;
}

/* The complete request with the key line before the empty line. */
static void emit_tagged(struct outbound *ob, struct emit *e, const struct outbound_io *io)
{
    int built = build_key_line(ob, io);
    if (built > 0) {
        /* Answered in the server's place, with Connection: close: the
         * request never leaves, and what the application writes after it
         * is dropped, as by a server that answered and hung up (its
         * retries are guarded on their own new connections). */
        ob->discarding = 1;
        return;
    }
    if (built < 0) {
        log_msg(CONFIG_LOG_WARN, "could not derive a key; request sent untagged");
        emit_held(ob, e, ob->head.len);
        ob->msg = OUTBOUND_PASS;   /* its answer keeps its place (flights) */
        return;
    }
    size_t blank = ob->info.blank_line_start;
    emit_held(ob, e, blank);
    /* Observe mode journals the key a request would carry, and sends it
     * as it came. */
    if (ob->env->cfg->mode != CONFIG_MODE_OBSERVE)
        emit_add(e, ob->key_line, ob->key_line_len, 1);
    emit_add(e, ob->head.data + blank, ob->head.len - blank, 1);
    e->recorded = io->record != NULL;
}

/* ---- taking the caller's bytes ---------------------------------------- */

static void begin_request(struct outbound *ob)
{
    buf_reset(&ob->head, OUTBOUND_KEEP);
    buf_reset(&ob->body, OUTBOUND_KEEP);
    buf_reset(&ob->canonical, OUTBOUND_KEEP);
    ob->request_line.len = 0;
    ob->msg = OUTBOUND_UNDECIDED;
    ob->method_len = ob->target_len = 0;
    ob->authority_len = 0;
    ob->authority_from_target = 0;
    ob->is_head = 0;
    ob->body_kind = CANON_RAW;
    ob->host = NULL;
    ob->app_header_mask = 0;
    ob->expect_start = ob->expect_len = 0;
    ob->expect_answered = 0;
    ob->message_complete = 0;
    ob->message_len = 0;
}

static void end_request(struct outbound *ob, const struct outbound_io *io)
{
    if (ob->msg == OUTBOUND_PASS && io && io->passed)
        io->passed(io->ctx, ob->is_head);
    ob->msg = OUTBOUND_FRESH;
    if (http_req_is_tunnel(&ob->parser))
        ob->passthrough = 1;
}

/* Not HTTP, or no memory: what is held goes out as it came, then everything. */
static size_t give_up(struct outbound *ob, struct emit *e, const char *p, size_t len,
                      const char *why)
{
    log_msg(CONFIG_LOG_INFO, "connection passed through from now on: %s", why);
    if (ob->msg == OUTBOUND_UNDECIDED || ob->msg == OUTBOUND_TAG)
        emit_held(ob, e, ob->head.len);
    emit_retractable(e, p, len);
    ob->passthrough = 1;
    ob->msg = OUTBOUND_FRESH;
    return len;
}

/* Chunk framing can outweigh the data: the raw bytes held for a key are
 * bounded too, whole or not, so that the verdict does not depend on how
 * the request was split into writes. */
static int over_raw_limit(const struct outbound *ob)
{
    return ob->head.len > 2 * ob->env->cfg->max_body + HTTP_MAX_HEAD;
}

/* A request whose held bytes must go out ahead of what follows. */
static size_t take_undecided(struct outbound *ob, struct emit *e, const char *p, size_t len,
                             const struct outbound_io *io)
{
    if (len > OUTBOUND_STEP)
        len = OUTBOUND_STEP;
    size_t k = http_req_feed(&ob->parser, p, len);
    if (http_req_failed(&ob->parser))
        return give_up(ob, e, p, len, ob->parser.error ? ob->parser.error : "not HTTP");

    if (ob->msg == OUTBOUND_PASS) {
        emit_held(ob, e, ob->head.len);
        emit_add(e, p, k, 0);
        if (ob->message_complete)
            end_request(ob, io);
        return k;
    }
    /* The held head lacks p[0..k): it all goes out from p, as it came. */
    if (buf_append(&ob->head, p, k) != 0)
        return give_up(ob, e, p, len, "out of memory");
    if (ob->msg == OUTBOUND_TAG && over_raw_limit(ob)) {
        struct outbound_call call = { ob, io };
        log_msg(CONFIG_LOG_WARN, "request is over RETRYSAFE_MAX_BODY; sent untagged");
        decide_skip(&call, "raw bytes over the limit", ob->body.len);
    }
    if (ob->message_complete) {
        if (ob->msg == OUTBOUND_TAG)
            emit_tagged(ob, e, io);
        else
            emit_held(ob, e, ob->head.len);
        e->must_flush = 1;
        end_request(ob, io);
        return k;
    }
    if (ob->msg == OUTBOUND_PASS)
        emit_held(ob, e, ob->head.len);
    return k;
}

/* Body bytes of a request we pass on go straight from the caller's buffer
 * and are counted only once the socket took them: a large upload is never
 * copied, and a full socket gets the caller EAGAIN as it would without us. */
static size_t send_passing_body(struct outbound *ob, struct emit *e, const char *p,
                                size_t len, const struct outbound_io *io)
{
    size_t k = len < ob->parser.remaining ? len : (size_t)ob->parser.remaining;
    struct iovec v = { (void *)p, k };
    ssize_t r = io->send(io->ctx, &v, 1);
    if (r <= 0) {
        e->stop = 1;
        e->send_errno = r < 0 ? errno : EAGAIN;
        return 0;
    }
    http_req_feed(&ob->parser, p, (size_t)r);
    if (ob->message_complete)
        end_request(ob, io);
    if ((size_t)r < k)
        e->stop = 1;
    return (size_t)r;
}

static int in_counted_body(const struct http_req_parser *p)
{
    return (p->state == HTTP_REQ_BODY || p->state == HTTP_REQ_CHUNK_DATA) && p->remaining > 0;
}

static size_t take_passing(struct outbound *ob, struct emit *e, const char *p, size_t len,
                           const struct outbound_io *io)
{
    if (in_counted_body(&ob->parser)) {
        /* What precedes the body goes first, so the body can go uncopied. */
        if (e->cnt) {
            e->must_flush = 1;
            return 0;
        }
        return send_passing_body(ob, e, p, len, io);
    }
    if (len > OUTBOUND_STEP)
        len = OUTBOUND_STEP;
    size_t k = http_req_feed(&ob->parser, p, len);
    if (http_req_failed(&ob->parser))
        return give_up(ob, e, p, len, ob->parser.error ? ob->parser.error : "not HTTP");
    emit_add(e, p, k, 0);
    if (ob->message_complete)
        end_request(ob, io);
    return k;
}

/* Takes some of p; returns how much (0: flush e first, then call again;
 * or e->stop: the socket is full). */
static size_t take(struct outbound *ob, struct emit *e, const char *p, size_t len,
                   const struct outbound_io *io)
{
    if (ob->discarding)
        return len;
    if (ob->passthrough) {
        emit_retractable(e, p, len);
        return len;
    }
    /* A full batch goes out before more is parsed (OUTBOUND_STEP). */
    if (e->bytes >= OUTBOUND_STEP) {
        e->must_flush = 1;
        return 0;
    }
    if (ob->msg == OUTBOUND_FRESH) {
        /* Line ends between requests belong to no request. */
        size_t n = 0;
        while (n < len && (p[n] == '\r' || p[n] == '\n'))
            n++;
        if (n) {
            emit_add(e, p, n, 0);
            return n;
        }
        /* The new request reuses our buffers: what points into them must
         * go out first. */
        if (e->internal) {
            e->must_flush = 1;
            return 0;
        }
        begin_request(ob);
    }
    if (ob->msg == OUTBOUND_PASS)
        return take_passing(ob, e, p, len, io);
    return take_undecided(ob, e, p, len, io);
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* The caller's answer once nothing more will be taken in this call. skip
 * counts the bytes taken by an earlier call (the held byte). */
static ssize_t acknowledge(struct outbound *ob, size_t taken, size_t skip, int send_errno)
{
    errno = send_errno ? send_errno : EAGAIN;
    if (ob->queue.len == 0)
        return taken > 0 ? (ssize_t)taken : -1;
    /* Bytes are queued: the last byte taken in this call stays
     * unacknowledged, so the caller must call again to finish. If this call
     * took nothing new, all of it is unacknowledged already. */
    if (taken == skip)
        return taken > 0 ? (ssize_t)taken : -1;
    ob->held = 1;
    return taken > 1 ? (ssize_t)(taken - 1) : -1;
}

ssize_t outbound_write(struct outbound *ob, const struct iovec *iov, int iovcnt,
                       const struct outbound_io *io)
{
    size_t n = iov_total(iov, iovcnt);
    if (ob->queue.len && queue_flush(ob, io, 0) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (ob->discarding && ob->held == 0)
        return (ssize_t)n;
    if (ob->held > n)
        ob->held = n;
    /* Not HTTP (TLS, say): the kernel's own semantics, nothing copied. */
    if (ob->passthrough && ob->held == 0)
        return io->send(io->ctx, iov, iovcnt);

    struct outbound_call call = { ob, io };
    ob->parser.ctx = &call;

    size_t taken = ob->held < n ? ob->held : n;
    size_t held_before = taken;
    ob->held = 0;
    size_t skip = taken;
    struct emit e = { .cnt = 0, .retract_from = -1 };
    int send_errno = 0;

    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        size_t s = skip < len ? skip : len;
        p += s;
        len -= s;
        skip -= s;
        while (len > 0) {
            size_t k = take(ob, &e, p, len, io);
            p += k;
            len -= k;
            taken += k;
            if (e.stop) {
                send_errno = e.send_errno;
                goto done;
            }
            if (!e.must_flush)
                continue;
            if (emit_flush(ob, &e, io) != 0) {
                send_errno = errno;
                taken -= e.retracted;
                goto done;
            }
        }
    }
    if (emit_flush(ob, &e, io) != 0) {
        send_errno = errno;
        taken -= e.retracted;
    }
done:
    ob->parser.ctx = NULL;
    if (send_errno && hard_error(send_errno)) {
        /* As the kernel would: a write that got some bytes out reports
         * them, else the error; what we held dies with the connection. */
        errno = send_errno;
        return taken > held_before && e.any_sent_this_call ? (ssize_t)taken : -1;
    }
    return acknowledge(ob, taken, held_before, send_errno);
}

int outbound_release(struct outbound *ob, const struct outbound_io *io)
{
    struct emit e = { .cnt = 0, .retract_from = -1 };
    if (holding_request(ob)) {
        log_msg(CONFIG_LOG_INFO, "the application stopped sending in the middle of a "
                "request; it goes out untagged, as it came");
        if (ob->msg == OUTBOUND_TAG) {
            struct outbound_call call = { ob, io };
            decide_skip(&call, "unfinished", ob->info.content_length);
        }
        emit_held(ob, &e, ob->head.len);
        ob->msg = OUTBOUND_PASS;
    }
    int first = 0;
    if (ob->queue.len && queue_flush(ob, io, 1) != 0) {
        if (!hard_error(errno))
            queue_rest(ob, e.iov, 0, e.cnt);
        return -1;
    }
    if (e.cnt && send_waiting(io, e.iov, e.cnt, &first) != 0) {
        if (hard_error(errno))
            connection_broken(ob);
        else
            queue_rest(ob, e.iov, first, e.cnt);
        return -1;
    }
    return 0;
}

void outbound_disown(struct outbound *ob)
{
    if (outbound_idle(ob))
        return;
    buf_free(&ob->head);
    buf_free(&ob->body);
    buf_free(&ob->queue);
    ob->held = 0;
    ob->msg = OUTBOUND_FRESH;
    ob->passthrough = 1;
}

void outbound_pass_for_good(struct outbound *ob)
{
    if (holding_request(ob))
        return;
    ob->passthrough = 1;
    ob->msg = OUTBOUND_FRESH;
}
