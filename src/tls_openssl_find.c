/* tls_openssl_find.c - finding libssl's functions (see tls_openssl.h). */
#include "tls_openssl.h"

#include "tls_find.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

struct openssl_calls ossl;

static pthread_mutex_t find_lock = PTHREAD_MUTEX_INITIALIZER;

static void *symbol(void *handle, const char *name)
{
    return handle ? dlsym(handle, name) : dlsym(RTLD_NEXT, name);
}


#define FIND(field, name) do { \
        union { void *p; __typeof__(ossl.field) f; } u = { symbol(handle, name) }; \
        ossl.field = u.f; \
    } while (0)

static void find_all(void *handle)
{
    FIND(write, "SSL_write");
    FIND(write_ex, "SSL_write_ex");
    FIND(read, "SSL_read");
    FIND(read_ex, "SSL_read_ex");
    FIND(pending, "SSL_pending");
    FIND(clear, "SSL_clear");
    FIND(get_error, "SSL_get_error");
    FIND(get_fd, "SSL_get_fd");
    FIND(ctrl, "SSL_ctrl");
    FIND(is_server, "SSL_is_server");
    FIND(get_servername, "SSL_get_servername");
    FIND(get_ssl_ctx, "SSL_get_SSL_CTX");
    FIND(set_alpn_protos, "SSL_set_alpn_protos");
    FIND(ctx_set_alpn_protos, "SSL_CTX_set_alpn_protos");
    FIND(connect, "SSL_connect");
    FIND(do_handshake, "SSL_do_handshake");
    FIND(get_ex_new_index, "CRYPTO_get_ex_new_index");
    FIND(free, "SSL_free");
    FIND(set_fd, "SSL_set_fd");
    FIND(get_rbio, "SSL_get_rbio");
    FIND(bio_ctrl, "BIO_ctrl");
    FIND(set_connect_state, "SSL_set_connect_state");
    FIND(get_wbio, "SSL_get_wbio");
    FIND(set_msg_callback, "SSL_set_msg_callback");
    FIND(set_info_callback, "SSL_set_info_callback");
    FIND(set_ex_data, "SSL_set_ex_data");
    FIND(err_clear, "ERR_clear_error");
}

void tls_openssl_fork(enum fork_phase phase)
{
    fork_lock(&find_lock, phase);
}

int openssl_ensure(void)
{
    if (__atomic_load_n(&ossl.ready, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&find_lock);
    if (!ossl.ready) {
        find_all(NULL);
        if (!ossl.write)
            find_all(tls_find_library("SSL_write"));
        if (ossl.write && ossl.read && ossl.get_error) {
            tls_openssl_watch_frees();
            __atomic_store_n(&ossl.ready, 1, __ATOMIC_RELEASE);
        }
    }
    int ready = ossl.ready;
    pthread_mutex_unlock(&find_lock);
    return ready ? 0 : -1;
}
