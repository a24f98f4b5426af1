/* tls_openssl_find.c - finding libssl's functions (see tls_openssl.h). */
#include "tls_openssl.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <string.h>

struct openssl_calls ossl;

static pthread_mutex_t find_lock = PTHREAD_MUTEX_INITIALIZER;

/* The first loaded object, other than this library, that defines
 * SSL_write: libssl itself, or a library with OpenSSL built in. */
static int find_libssl(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    void **found = arg;
    if (!info->dlpi_name || !info->dlpi_name[0])
        return 0;
    /* RTLD_NOLOAD: a handle to the copy already there, never a new one.
     * The handle is kept, so that copy can never be unloaded under us. */
    void *handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle)
        return 0;
    void *fn = dlsym(handle, "SSL_write");
    Dl_info where;
    if (fn && dladdr(fn, &where) && where.dli_fbase != found[1]) {
        found[0] = handle;
        return 1;
    }
    dlclose(handle);
    return 0;
}

static void *loaded_libssl(void)
{
    Dl_info self;
    void *found[2] = { NULL, NULL };
    if (dladdr((void *)openssl_ensure, &self))
        found[1] = self.dli_fbase;
    dl_iterate_phdr(find_libssl, found);
    return found[0];
}

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
    FIND(free, "SSL_free");
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
    FIND(ctx_free, "SSL_CTX_free");
}

int openssl_ensure(void)
{
    if (__atomic_load_n(&ossl.ready, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&find_lock);
    if (!ossl.ready) {
        find_all(NULL);
        if (!ossl.write)
            find_all(loaded_libssl());
        if (ossl.write && ossl.read && ossl.free && ossl.get_error)
            __atomic_store_n(&ossl.ready, 1, __ATOMIC_RELEASE);
    }
    int ready = ossl.ready;
    pthread_mutex_unlock(&find_lock);
    return ready ? 0 : -1;
}
