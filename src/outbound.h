/* outbound.h - one connection's outbound stream.
 *
 * Takes the bytes the application writes, in the application's pieces;
 * assembles each request until it can decide; passes untouched requests on
 * as early as the decision allows; holds a request to be tagged until it is
 * complete (the key depends on the body), then emits it with the key header
 * added. Knows nothing of sockets: the real send and the way to answer the
 * application are callbacks, so every path runs in unit tests.
 *
 * Byte accounting. outbound_write returns what a send() on the socket would:
 * how many of the caller's bytes are taken, or -1 with errno. Bytes taken are
 * either sent, held in the request being assembled, or queued after a partial
 * send. While anything is queued, one caller byte stays unacknowledged, so the
 * caller is bound to call again and the queue never waits on a call that
 * might never come.
 */
#ifndef RETRYSAFE_OUTBOUND_H
#define RETRYSAFE_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "key.h"

/* A request to an enabled host, as the journal records it. Pointers are
 * valid during the record callback only. */
struct outbound_record {
    const char *method;      size_t method_len;
    const char *authority;   size_t authority_len;  /* normalised */
    const char *path;        size_t path_len;       /* with the query */
    const char *key;         /* "" when skipped */
    const char *fingerprint; /* "" when skipped */
    int generation;
    int tls;
    uint64_t body_len;
    int skipped;             /* passed on untagged */
};

enum outbound_verdict { OUTBOUND_SEND, OUTBOUND_ANSWERED };

struct outbound_io {
    /* Sends bytes to the real socket: the count sent, or -1 with errno. */
    ssize_t (*send)(void *ctx, const struct iovec *iov, int iovcnt);
    /* Makes bytes readable by the application as if the server sent them
     * (a 100 Continue). Returns 0, or -1 when that cannot be done. */
    int (*answer)(void *ctx, const char *bytes, size_t len);
    /* Waits until the socket can take more. Returns 0, or -1 when it gave
     * up (its own time limit, or an error). */
    int (*wait_writable)(void *ctx);
    /* Which operation of this fingerprint a request is now (the window);
     * NULL or failure: 0. */
    key_generation_fn generation;
    /* A request to an enabled host was decided: tagged and about to be
     * sent, or skipped. NULL: nothing is recorded. For a tagged request,
     * returns OUTBOUND_SEND, or OUTBOUND_ANSWERED when the application got
     * its answer without it (guard mode: a replay or a 409): the request
     * is then never sent, and the connection passes the rest through. */
    enum outbound_verdict (*record)(void *ctx, const struct outbound_record *rec);
    /* The request last recorded could not be sent at all: the connection
     * was refused or reset before its first byte. */
    void (*failed)(void *ctx, int err);
    /* A request passed through untouched (its answer comes in its turn).
     * head: it was a HEAD request. */
    void (*passed)(void *ctx, int head);
    void *ctx;
};

/* What a connection shares with every other: immutable after start-up. */
struct outbound_env {
    const struct config *cfg;
    struct key_ctx *keys;     /* NULL: no secret, nothing can be tagged */
};

enum outbound_msg { OUTBOUND_FRESH, OUTBOUND_UNDECIDED, OUTBOUND_PASS, OUTBOUND_TAG };

struct outbound {
    const struct outbound_env *env;
    int tls;
    char peer[64];            /* "ip:port", used when a request has no Host */

    struct http_req_parser parser;
    int passthrough;          /* for good: not HTTP, a tunnel, or no memory */
    int discarding;           /* for good: a request was answered here (guard
                                 mode) with Connection: close; what follows
                                 would reach a server that has hung up */

    /* The current request. */
    enum outbound_msg msg;
    struct buf head;          /* raw bytes held back (head, and body if tagged) */
    struct buf body;          /* decoded body of a chunked request */
    struct buf request_line;  /* method SP target, copied as they arrive */
    size_t method_len;
    size_t target_len;
    char authority[KEY_AUTHORITY_MAX];
    size_t authority_len;     /* 0: none yet */
    int authority_from_target;
    int is_head;              /* a HEAD request: its answer has no body */
    int body_kind;            /* enum canon_kind, from Content-Type */
    struct buf canonical;     /* the body in canonical form, for the key */
    const struct config_host *host;    /* the enabling entry, once known */
    unsigned app_header_mask; /* bit i: the request has header_names[i] */
    size_t expect_start, expect_len;   /* an "Expect: 100-continue" line */
    int expect_answered;      /* we sent 100 Continue; drop the line */
    struct http_head_info info;
    int message_complete;
    size_t message_len;
    char key_line[256];
    size_t key_line_len;

    /* Bytes due to the socket that a partial send left behind. */
    struct buf queue;
    /* Caller bytes at the start of the next call that were taken already. */
    size_t held;
    /* The queue holds a recorded request of which nothing was sent yet. */
    int unsent_record;
};

void outbound_init(struct outbound *ob, const struct outbound_env *env,
                   int tls, const char *peer);
void outbound_free(struct outbound *ob);

ssize_t outbound_write(struct outbound *ob, const struct iovec *iov, int iovcnt,
                       const struct outbound_io *io);

/* Nothing held, nothing queued, between requests. */
int outbound_idle(const struct outbound *ob);

/* Whether bytes the application counts as sent are still here: an
 * unfinished request held for its key, or a queue a partial send left. */
int outbound_holding(const struct outbound *ob);

/* The application waits for an answer, or shuts down or closes, while we
 * hold an unfinished request: it will send no more of it, so what is held
 * goes out as it came, untagged, and the rest of the request passes through.
 * Waits for the socket as io->wait_writable allows. Returns 0 when
 * everything went out, -1 when some is still queued. */
int outbound_release(struct outbound *ob, const struct outbound_io *io);

/* The stream is no longer ours to follow (bytes went out behind our back):
 * pass everything through from now on. Call after outbound_release; a
 * request still held is kept until it can go. */
void outbound_pass_for_good(struct outbound *ob);

/* In a forked child: what is held is the parent's to send. A connection
 * forked mid-request passes through in the child; an idle one goes on. */
void outbound_disown(struct outbound *ob);

#endif
