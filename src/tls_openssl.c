/* tls_openssl.c - OpenSSL's entry points. The plaintext a client hands to
 * SSL_write runs through the same outbound stream as a plain socket's
 * bytes; what SSL_read returns feeds the same flights. Keyed by the SSL
 * object, never by its fd.
 *
 * OpenSSL's write contract is kept: without SSL_MODE_ENABLE_PARTIAL_WRITE
 * an SSL_write writes everything or fails (WANT_WRITE/WANT_READ) and is
 * retried with the same buffer; bytes of that buffer we already took are
 * skipped on the retry. Our own writes of held bytes may be retried from
 * another buffer, so SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set on every
 * session we follow (it only relaxes a check).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "flight.h"
#include "hooks.h"
#include "shim.h"
#include "tls_alpn.h"
#include "tls_map.h"
#include "tls_openssl.h"

struct tls_call {
    struct conn *c;
    SSL *ssl;
    int last_ret;      /* the last failing real SSL_write's return */
    int last_errno;    /* and the errno it left, which the caller may read */
};

/* One SSL_write per piece: a write that fails is retried with the same
 * bytes, and the pieces after the first may be the caller's, which the
 * outbound stream can hand back rather than queue. */
static ssize_t tls_send(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct tls_call *t = ctx;
    (void)iovcnt;
    size_t len = iov[0].iov_len;
    int r = ossl.write(t->ssl, iov[0].iov_base, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0)
        return r;
    t->last_ret = r;
    t->last_errno = errno;
    int err = ossl.get_error(t->ssl, r);
    errno = err == OSSL_ERROR_WANT_READ || err == OSSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
    return -1;
}

static int tls_answer(void *ctx, const char *bytes, size_t len)
{
    return conn_add_answer(((struct tls_call *)ctx)->c, bytes, len);
}

static int tls_wait(void *ctx)
{
    struct tls_call *t = ctx;
    int fd = ossl.get_fd ? ossl.get_fd(t->ssl) : -1;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
    return fd >= 0 && real.poll(&p, 1, -1) > 0 ? 0 : -1;
}

/* As for a plain socket (hooks_send.c): the answer is served by SSL_read,
 * and the shut read side wakes whoever polls the socket. */
static enum outbound_verdict tls_record(void *ctx, const struct outbound_record *rec)
{
    struct tls_call *t = ctx;
    enum outbound_verdict v = flight_record(t->c, rec);
    int fd = v == OUTBOUND_ANSWERED ? tls_openssl_socket(t->c, t->ssl) : -1;
    if (fd >= 0)
        real.shutdown(fd, SHUT_RD);
    return v;
}

int tls_openssl_socket(struct conn *c, SSL *ssl)
{
    int fd = ossl.get_fd ? ossl.get_fd(ssl) : -1;
    if (fd < 0)
        fd = c->sock_fd;
    /* Only the socket the session's records went through: the fd number
     * may have been closed and reused since (a session freed after its
     * socket was closed). */
    return fd >= 0 && c->sock_fd >= 0 && conn_same_socket(c, fd) ? fd : -1;
}

static void tls_failed(void *ctx, int err)
{
    flight_failed(((struct tls_call *)ctx)->c, err);
}

static void tls_passed(void *ctx, int head)
{
    flight_passed(((struct tls_call *)ctx)->c, head);
}

/* The session's connection: found, or started for a client session. */
static struct conn *session(SSL *ssl)
{
    struct conn *c = tls_map_acquire(ssl);
    if (c || hooks_in_shim || (ossl.is_server && ossl.is_server(ssl)))
        return c;
    hooks_in_shim++;
    const struct outbound_env *env = shim_start();
    if (env) {
        c = tls_map_track(ssl, env, "");
        if (c && ossl.ctrl)
            ossl.ctrl(ssl, OSSL_CTRL_MODE, OSSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
    }
    hooks_in_shim--;
    return c;
}

/* Writes num plaintext bytes through the outbound stream. Returns 1 with
 * *written, or the failing real call's return (<= 0) for the caller. */
static int write_plaintext(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    struct conn *c = session(ssl);
    if (!c)
        return -2; /* not ours: the caller passes the call through */
    tls_openssl_apply_reset(c, ssl);
    int caller_errno = errno;
    hooks_in_shim++;
    pthread_mutex_lock(&c->out_lock);
    struct tls_call t = { c, ssl, 0, 0 };
    struct outbound_io io = {
        .send = tls_send, .answer = tls_answer, .wait_writable = tls_wait,
        .generation = flight_generation, .record = tls_record, .failed = tls_failed,
        .passed = tls_passed, .ctx = &t,
    };
    struct iovec iov = { (void *)buf, num };
    struct conn *outer = hooks_tls_writer;   /* TLS inside TLS (a proxy) */
    hooks_tls_writer = c;
    ssize_t r = outbound_write(&c->out, &iov, 1, &io);
    hooks_tls_writer = outer;
    long mode = ossl.ctrl ? ossl.ctrl(ssl, OSSL_CTRL_MODE, 0, NULL) : 0;
    int rc = 1;
    if (r >= 0 && ((size_t)r == num || (r > 0 && (mode & OSSL_MODE_ENABLE_PARTIAL_WRITE)))) {
        *written = (size_t)r;
    } else {
        /* All or nothing: the retry brings the same buffer from its start;
         * what we took of it is skipped then. */
        c->out.held += r > 0 ? (size_t)r : 0;
        rc = t.last_ret < 0 ? t.last_ret : (t.last_ret == 0 ? 0 : -1);
        caller_errno = t.last_errno;
    }
    conn_note_holding(c);
    pthread_mutex_unlock(&c->out_lock);
    hooks_in_shim--;
    conn_release(c);
    errno = caller_errno;
    return rc;
}

EXPORT int SSL_write(SSL *ssl, const void *buf, int num)
{
    if (openssl_ensure() != 0)
        return -1;
    if (num <= 0 || !ssl)
        return ossl.write(ssl, buf, num);
    size_t written = 0;
    int rc = write_plaintext(ssl, buf, (size_t)num, &written);
    if (rc == -2)
        return ossl.write(ssl, buf, num);
    return rc == 1 ? (int)written : rc;
}

EXPORT int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    if (openssl_ensure() != 0 || !ossl.write_ex)
        return 0;
    if (num == 0 || !ssl)
        return ossl.write_ex(ssl, buf, num, written);
    size_t done = 0;
    int rc = write_plaintext(ssl, buf, num, &done);
    if (rc == -2)
        return ossl.write_ex(ssl, buf, num, written);
    if (rc != 1)
        return 0;
    if (written)
        *written = done;
    return 1;
}

/* Answers we gave in the server's place (a 100 Continue) come first. */
static size_t take_answer(struct conn *c, void *buf, size_t num)
{
    struct iovec iov = { buf, num };
    return c && num ? conn_take_answer(c, &iov, 1, 0) : 0;
}

/* What the application read: its answers complete journaled requests. */
static void after_read(struct conn *c, SSL *ssl, const void *buf, int r)
{
    if (!c || !__atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE))
        return;
    int e = errno;
    hooks_in_shim++;
    if (r > 0) {
        struct iovec iov = { (void *)buf, (size_t)r };
        flight_read(c, &iov, 1, (size_t)r);
    } else if (ossl.get_error(ssl, r) == OSSL_ERROR_ZERO_RETURN) {
        flight_eof(c);
    }
    hooks_in_shim--;
    errno = e;
}

EXPORT int SSL_read(SSL *ssl, void *buf, int num)
{
    if (openssl_ensure() != 0)
        return -1;
    struct conn *c = hooks_in_shim ? NULL : tls_map_acquire(ssl);
    tls_openssl_apply_reset(c, ssl);
    size_t served = num > 0 ? take_answer(c, buf, (size_t)num) : 0;
    int r = served ? (int)served : ossl.read(ssl, buf, num);
    if (!served)
        after_read(c, ssl, buf, r);
    conn_release(c);
    return r;
}

EXPORT int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)
{
    if (openssl_ensure() != 0 || !ossl.read_ex)
        return 0;
    struct conn *c = hooks_in_shim ? NULL : tls_map_acquire(ssl);
    tls_openssl_apply_reset(c, ssl);
    size_t served = take_answer(c, buf, num);
    int rc;
    if (served) {
        if (readbytes)
            *readbytes = served;
        rc = 1;
    } else {
        size_t got = 0;
        rc = ossl.read_ex(ssl, buf, num, &got);
        if (readbytes)
            *readbytes = got;
        after_read(c, ssl, buf, rc == 1 ? (int)got : 0);
    }
    conn_release(c);
    return rc;
}

EXPORT int SSL_pending(const SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.pending)
        return 0;
    int n = ossl.pending(ssl);
    struct conn *c = tls_map_acquire(ssl);
    if (c && __atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&c->in_lock);
        n += (int)(c->answer.len - c->answer_off);
        pthread_mutex_unlock(&c->in_lock);
    }
    conn_release(c);
    return n;
}

/* OpenSSL frees SSL and SSL_CTX objects by reference count, often from
 * inside libssl itself: only its own free callback knows when one is
 * really gone. Registered once per process, on the libssl found. */
static void ssl_gone(void *parent, void *ptr, void *ad, int idx, long argl, void *argp)
{
    (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    if (parent) {
        tls_map_forget(parent);
        tls_alpn_forget(parent);
    }
}

static void ctx_gone(void *parent, void *ptr, void *ad, int idx, long argl, void *argp)
{
    (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    if (parent)
        tls_alpn_forget(parent);
}

void tls_openssl_watch_frees(void)
{
    if (!ossl.get_ex_new_index)
        return;
    ossl.get_ex_new_index(OSSL_EX_INDEX_SSL, 0, NULL, NULL, NULL, ssl_gone);
    ossl.get_ex_new_index(OSSL_EX_INDEX_SSL_CTX, 0, NULL, NULL, NULL, ctx_gone);
}

EXPORT int SSL_clear(SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.clear)
        return 0;
    if (ssl)
        tls_map_forget(ssl);
    return ossl.clear(ssl);
}

EXPORT int SSL_set_alpn_protos(SSL *ssl, const unsigned char *protos, unsigned int len)
{
    if (openssl_ensure() != 0 || !ossl.set_alpn_protos)
        return 1;
    int r = ossl.set_alpn_protos(ssl, protos, len);
    if (r == 0)
        tls_alpn_remember(ssl, protos, len);
    return r;
}

EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *protos, unsigned int len)
{
    if (openssl_ensure() != 0 || !ossl.ctx_set_alpn_protos)
        return 1;
    int r = ossl.ctx_set_alpn_protos(ctx, protos, len);
    if (r == 0)
        tls_alpn_remember(ctx, protos, len);
    return r;
}

/* Before the ClientHello: an enabled host must not be offered h2, so the
 * client speaks HTTP/1.1, which can be tagged. */
static void before_handshake(SSL *ssl, int client)
{
    if (ssl && !hooks_in_shim && __atomic_load_n(&tls_map_count, __ATOMIC_ACQUIRE)) {
        struct conn *c = tls_map_acquire(ssl);
        tls_openssl_apply_reset(c, ssl);
        conn_release(c);
    }
    if (!ssl || hooks_in_shim || !ossl.get_servername || !ossl.set_alpn_protos ||
        (!client && ossl.is_server && ossl.is_server(ssl)))
        return;
    const char *host = ossl.get_servername(ssl, OSSL_NAMETYPE_HOST_NAME);
    if (!host)
        return;
    int e = errno;
    hooks_in_shim++;
    unsigned char filtered[256];
    int fd = ossl.get_fd ? ossl.get_fd(ssl) : -1;
    SSL_CTX *ctx = ossl.get_ssl_ctx ? ossl.get_ssl_ctx(ssl) : NULL;
    unsigned int len = tls_alpn_without_h2(ssl, ctx, host, fd, filtered, sizeof(filtered));
    if (len)
        ossl.set_alpn_protos(ssl, filtered, len);
    hooks_in_shim--;
    errno = e;
}

EXPORT int SSL_connect(SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.connect)
        return -1;
    before_handshake(ssl, 1);
    return ossl.connect(ssl);
}

EXPORT int SSL_do_handshake(SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.do_handshake)
        return -1;
    before_handshake(ssl, 0);
    return ossl.do_handshake(ssl);
}
