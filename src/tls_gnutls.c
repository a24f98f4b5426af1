/* tls_gnutls.c - GnuTLS's entry points (Debian's wget, curl-gnutls), mapped
 * onto the same outbound stream and flights as OpenSSL's, keyed by the
 * session pointer.
 *
 * gnutls_record_send may send less than asked, and after GNUTLS_E_AGAIN or
 * GNUTLS_E_INTERRUPTED it is called again with the same data: the plain
 * socket's accounting (a partial count, or a failure with the held byte
 * skipped on the retry) fits it as it is. libgnutls is never linked. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>

#include "flight.h"
#include "hooks.h"
#include "shim.h"
#include "tls_find.h"
#include "tls_map.h"

typedef struct gnutls_session_int *gnutls_session_t;

enum {
    GNUTLS_E_AGAIN_ = -28,
    GNUTLS_E_INTERRUPTED_ = -52,
};

static struct {
    int ready;
    ssize_t (*send)(gnutls_session_t, const void *, size_t);
    ssize_t (*recv)(gnutls_session_t, void *, size_t);
    void (*deinit)(gnutls_session_t);
    int (*transport_get_int)(gnutls_session_t);   /* optional (3.1.9) */
} gtls;

static pthread_mutex_t find_lock = PTHREAD_MUTEX_INITIALIZER;

void tls_gnutls_fork(enum fork_phase phase)
{
    fork_lock(&find_lock, phase);
}

static void *gnutls_symbol(void *handle, const char *name)
{
    return handle ? dlsym(handle, name) : dlsym(RTLD_NEXT, name);
}

#define FIND(field, name) do { \
        union { void *p; __typeof__(gtls.field) f; } u = { gnutls_symbol(handle, name) }; \
        gtls.field = u.f; \
    } while (0)

static int gnutls_ensure(void)
{
    if (__atomic_load_n(&gtls.ready, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&find_lock);
    void *handle = NULL;
    for (int pass = 0; pass < 2 && !gtls.ready; pass++) {
        if (pass == 1 && !(handle = tls_find_library("gnutls_record_send")))
            break;
        FIND(send, "gnutls_record_send");
        FIND(recv, "gnutls_record_recv");
        FIND(deinit, "gnutls_deinit");
        FIND(transport_get_int, "gnutls_transport_get_int");
            if (gtls.send && gtls.recv && gtls.deinit)
            __atomic_store_n(&gtls.ready, 1, __ATOMIC_RELEASE);
    }
    int ready = gtls.ready;
    pthread_mutex_unlock(&find_lock);
    return ready ? 0 : -1;
}

struct gnutls_call {
    struct conn *c;
    gnutls_session_t session;
    ssize_t last_ret;
    int last_errno;
};

/* One record per piece: see tls_send in tls_openssl.c. */
static ssize_t gnutls_send_iov(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct gnutls_call *g = ctx;
    (void)iovcnt;
    ssize_t r = gtls.send(g->session, iov[0].iov_base, iov[0].iov_len);
    if (r >= 0)
        return r;
    g->last_ret = r;
    g->last_errno = errno;
    errno = r == GNUTLS_E_AGAIN_ || r == GNUTLS_E_INTERRUPTED_ ? EAGAIN : EPIPE;
    return -1;
}

static int gnutls_answer(void *ctx, const char *bytes, size_t len)
{
    return conn_add_answer(((struct gnutls_call *)ctx)->c, bytes, len);
}

/* GnuTLS owns the transport (it may even be a custom one): nothing to
 * wait on from here. */
static int gnutls_wait(void *ctx)
{
    (void)ctx;
    return -1;
}

/* See tls_record in tls_openssl.c. */
static enum outbound_verdict gnutls_record(void *ctx, const struct outbound_record *rec)
{
    struct gnutls_call *g = ctx;
    enum outbound_verdict v = flight_record(g->c, rec);
    int fd = v == OUTBOUND_ANSWERED && gtls.transport_get_int
             ? gtls.transport_get_int(g->session) : -1;
    if (fd >= 0 && conn_maybe_tracked(fd))   /* a socket, not a stray pointer */
        real.shutdown(fd, SHUT_RD);
    return v;
}

static void gnutls_failed(void *ctx, int err)
{
    flight_failed(((struct gnutls_call *)ctx)->c, err);
}

static void gnutls_passed(void *ctx, int head)
{
    flight_passed(((struct gnutls_call *)ctx)->c, head);
}

static struct conn *client_session(gnutls_session_t session)
{
    struct conn *c = tls_map_acquire(session);
    /* A server session's writes are answers, which fail the request parser
     * at once and pass through: no need to tell servers apart (and
     * gnutls_session_get_flags cannot). */
    if (c || hooks_in_shim)
        return c;
    hooks_in_shim++;
    const struct outbound_env *env = shim_start();
    c = env ? tls_map_track(session, env, "") : NULL;
    hooks_in_shim--;
    return c;
}

EXPORT ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size)
{
    if (gnutls_ensure() != 0)
        return GNUTLS_E_INTERRUPTED_;
    struct conn *c = size && data ? client_session(session)
                                  : hooks_in_shim ? NULL : tls_map_acquire(session);
    if (!c)
        return gtls.send(session, data, size);
    int caller_errno = errno;
    hooks_in_shim++;
    pthread_mutex_lock(&c->out_lock);
    /* "Call again with NULL, 0" means: the data of the call that failed. */
    int retry = !data && size == 0 && c->retry_copy.len;
    if (retry) {
        data = c->retry_copy.data;
        size = c->retry_copy.len;
    } else if (!data || size == 0) {
        pthread_mutex_unlock(&c->out_lock);
        hooks_in_shim--;
        conn_release(c);
        errno = caller_errno;
        return gtls.send(session, data, size);
    }
    struct gnutls_call g = { c, session, 0, 0 };
    struct outbound_io io = {
        .send = gnutls_send_iov, .answer = gnutls_answer, .wait_writable = gnutls_wait,
        .generation = flight_generation, .record = gnutls_record, .failed = gnutls_failed,
        .passed = gnutls_passed, .ctx = &g,
    };
    struct iovec iov = { (void *)data, size };
    ssize_t r = outbound_write(&c->out, &iov, 1, &io);
    if (r < 0) {
        r = g.last_ret < 0 ? g.last_ret : GNUTLS_E_AGAIN_;
        caller_errno = g.last_errno;
        if (!retry && (r == GNUTLS_E_AGAIN_ || r == GNUTLS_E_INTERRUPTED_)) {
            c->retry_copy.len = 0;
            if (buf_append(&c->retry_copy, data, size) != 0)
                c->retry_copy.len = 0;
        }
    } else {
        buf_reset(&c->retry_copy, 0);
    }
    conn_note_holding(c);
    pthread_mutex_unlock(&c->out_lock);
    hooks_in_shim--;
    conn_release(c);
    errno = caller_errno;
    return r;
}

EXPORT ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t size)
{
    if (gnutls_ensure() != 0)
        return GNUTLS_E_INTERRUPTED_;
    struct conn *c = hooks_in_shim ? NULL : tls_map_acquire(session);
    struct iovec iov = { data, size };
    size_t served = c && size ? conn_take_answer(c, &iov, 1, 0) : 0;
    ssize_t r = served ? (ssize_t)served : gtls.recv(session, data, size);
    if (!served && c && __atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE) && r >= 0) {
        int e = errno;
        hooks_in_shim++;
        if (r > 0) {
            iov.iov_len = (size_t)r;
            flight_read(c, &iov, 1, (size_t)r);
        } else {
            flight_eof(c);
        }
        hooks_in_shim--;
        errno = e;
    }
    conn_release(c);
    return r;
}

EXPORT void gnutls_deinit(gnutls_session_t session)
{
    if (gnutls_ensure() != 0)
        return;
    if (session)
        tls_map_forget(session);
    gtls.deinit(session);
}
