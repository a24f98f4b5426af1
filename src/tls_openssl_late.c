/* tls_openssl_late.c - SSL_free, and late answers over OpenSSL.
 *
 * A client that times out frees its SSL object while the server may still
 * be answering. In guard mode, when the session waits for the answer to a
 * guarded request, the free is deferred: the session is moved onto a
 * private duplicate of its socket (SSL_set_fd) and handed to the late
 * reader (late.h), which reads the answer through OpenSSL and frees the
 * session afterwards. The application's own BIO (curl's calls back into
 * curl, whose state is about to go) is freed by SSL_set_fd right here, and
 * the application's fd is left for it to close, as it would have been.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "flight.h"
#include "hooks.h"
#include "late.h"
#include "log.h"
#include "shim.h"
#include "tls_map.h"
#include "tls_openssl.h"

/* Once the process starts to exit, OpenSSL's own atexit handler frees its
 * global state: the late reader must not be inside OpenSSL then. */
static pthread_mutex_t in_openssl = PTHREAD_MUTEX_INITIALIZER;
static int exit_handler_set;

static void stop_late_reads(void)
{
    pthread_mutex_lock(&in_openssl);   /* held until the process is gone */
}

static ssize_t late_read(void *arg, void *buf, size_t len)
{
    SSL *ssl = arg;
    pthread_mutex_lock(&in_openssl);
    /* SSL_get_error reads the thread's error queue (the host's libcrypto
     * keeps it): another session's failure must not read as this one's. */
    if (ossl.err_clear)
        ossl.err_clear();
    int r = ossl.read(ssl, buf, len > 65536 ? 65536 : (int)len);
    int err = r > 0 ? 0 : ossl.get_error(ssl, r);
    pthread_mutex_unlock(&in_openssl);
    if (r > 0)
        return r;
    if (err == OSSL_ERROR_WANT_READ || err == OSSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err == OSSL_ERROR_ZERO_RETURN || (err == OSSL_ERROR_SYSCALL && r == 0))
        return 0;
    log_msg(CONFIG_LOG_DEBUG, "guard: late TLS read failed: SSL_read %d, error %d", r, err);
    errno = EIO;
    return -1;
}

static void late_free(void *arg)
{
    pthread_mutex_lock(&in_openssl);
    ossl.free(arg);
    pthread_mutex_unlock(&in_openssl);
}

/* The rbio closes the application's fd when freed (BIO_CLOSE): it must not
 * now, since the session keeps reading; so it is told not to, and the
 * caller closes that fd itself, as SSL_free would have. */
static int take_over_close(SSL *ssl)
{
    void *rbio = ossl.get_rbio ? ossl.get_rbio(ssl) : NULL;
    if (!rbio || !ossl.bio_ctrl ||
        ossl.bio_ctrl(rbio, OSSL_BIO_CTRL_GET_CLOSE, 0, NULL) != OSSL_BIO_CLOSE)
        return 0;
    ossl.bio_ctrl(rbio, OSSL_BIO_CTRL_SET_CLOSE, OSSL_BIO_NOCLOSE, NULL);
    return 1;
}

/* After SSL_free the application's state is gone, but the session still
 * holds its callbacks and their arguments (curl -v's message callback,
 * curl's new-session callback, python's keylog callback find theirs
 * through the app data): reading on would call into freed memory. The
 * session's own callbacks are cleared; those of the SSL_CTX (which the
 * session still uses) find no app data and return, as curl's and
 * python's do. */
static int cut_loose(SSL *ssl)
{
    if (!ossl.set_msg_callback || !ossl.set_info_callback || !ossl.set_ex_data)
        return -1;
    ossl.set_msg_callback(ssl, NULL);
    ossl.set_info_callback(ssl, NULL);
    return ossl.set_ex_data(ssl, 0, NULL) == 1 ? 0 : -1;
}

/* Whether this session can be read on after its free. */
static int adoptable(SSL *ssl)
{
    const struct config *cfg = shim_config();
    return cfg && cfg->mode == CONFIG_MODE_GUARD && cfg->late_wait_ms > 0 &&
           ossl.set_fd && ossl.free && ossl.get_rbio && ossl.get_wbio &&
           /* one BIO for both ways: SSL_set_fd frees exactly one */
           ossl.get_rbio(ssl) == ossl.get_wbio(ssl);
}

/* Returns 1 when ssl was handed to the late reader (not to be freed now). */
static int adopt(SSL *ssl)
{
    if (!adoptable(ssl))
        return 0;
    struct conn *c = tls_map_acquire(ssl);
    int fd = c && flight_guarded_waiting(c) ? tls_openssl_socket(c, ssl) : -1;
    struct conn *sock = fd >= 0 ? conn_acquire(fd) : NULL;
    int priv = sock && late_may_outlive(sock, fd) ? late_private_fd(fd) : -1;
    conn_release(sock);
    if (priv < 0 || cut_loose(ssl) != 0) {
        if (priv >= 0)
            real.close(priv);
        conn_release(c);
        return 0;
    }
    int fd_is_bios = ossl.get_fd && ossl.get_fd(ssl) == fd;
    int close_app_fd = fd_is_bios && take_over_close(ssl);
    if (ossl.set_fd(ssl, priv) != 1) {
        real.close(priv);
        conn_release(c);
        return 0;   /* the free goes ahead: the answer is not read */
    }
    int fl = real.fcntl(priv, F_GETFL);
    if (fl >= 0)
        real.fcntl(priv, F_SETFL, fl | O_NONBLOCK);
    if (!__atomic_exchange_n(&exit_handler_set, 1, __ATOMIC_ACQ_REL))
        atexit(stop_late_reads);
    struct late_source src = { late_read, late_free, ssl };
    late_watch(c, priv, &src);
    if (close_app_fd) {
        hooks_forget_closing(fd);
        real.close(fd);
    }
    conn_release(c);
    return 1;
}

EXPORT void SSL_free(SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.free) {
        /* libssl is loaded (the caller has an SSL) but was not found:
         * the next definition is the real one. */
        union { void *p; void (*fn)(SSL *); } next = { dlsym(RTLD_NEXT, "SSL_free") };
        if (next.fn)
            next.fn(ssl);
        return;
    }
    if (ssl && !hooks_in_shim && __atomic_load_n(&tls_map_count, __ATOMIC_ACQUIRE)) {
        int e = errno;
        hooks_in_shim++;
        int adopted = adopt(ssl);
        hooks_in_shim--;
        errno = e;
        if (adopted)
            return;
    }
    ossl.free(ssl);
}

/* curl resets a session to the start of a handshake just before freeing
 * it; done to a session whose answer is due, that would lose the answer.
 * So, for such a session only, the reset waits: for nothing, if the free
 * follows (the usual case), or until the application uses the session
 * again (tls_openssl_apply_reset), which gives up the answer. */
EXPORT void SSL_set_connect_state(SSL *ssl)
{
    if (openssl_ensure() != 0 || !ossl.set_connect_state) {
        union { void *p; void (*fn)(SSL *); } next = {
            dlsym(RTLD_NEXT, "SSL_set_connect_state") };
        if (next.fn)
            next.fn(ssl);
        return;
    }
    const struct config *cfg = shim_config();
    struct conn *c = ssl && !hooks_in_shim && cfg && cfg->mode == CONFIG_MODE_GUARD &&
                     __atomic_load_n(&tls_map_count, __ATOMIC_ACQUIRE)
                     ? tls_map_acquire(ssl) : NULL;
    int defer = c && flight_guarded_waiting(c);
    if (defer)
        __atomic_store_n(&c->tls_reset_deferred, 1, __ATOMIC_RELEASE);
    conn_release(c);
    if (!defer)
        ossl.set_connect_state(ssl);
}

void tls_openssl_apply_reset(struct conn *c, SSL *ssl)
{
    if (!c || !__atomic_exchange_n(&c->tls_reset_deferred, 0, __ATOMIC_ACQ_REL))
        return;
    int e = errno;
    hooks_in_shim++;
    flight_abandon(c);
    ossl.set_connect_state(ssl);
    hooks_in_shim--;
    errno = e;
}

/* A fork while the late reader is inside OpenSSL would copy OpenSSL's own
 * locks held: the fork waits for it to come out. Taken before the TLS map's
 * lock, as at run time (SSL_free runs the map's free callback). */
void tls_openssl_late_fork(enum fork_phase phase)
{
    fork_lock(&in_openssl, phase);
}
