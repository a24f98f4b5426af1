/* tls_openssl.h - the OpenSSL functions the TLS hooks call, found without
 * linking libssl and without loading it into a process that has not.
 *
 * dlsym(RTLD_NEXT) finds them when libssl is in the global scope (curl).
 * Python's _ssl module loads libssl with RTLD_LOCAL, where RTLD_NEXT finds
 * nothing: then the loaded libssl is found by walking the loaded objects
 * (dl_iterate_phdr) and asked with dlopen(RTLD_NOLOAD), which never loads
 * a new copy. Types stay opaque and the few constants are OpenSSL's stable
 * ABI values, so no OpenSSL header is needed to build the shim.
 */
#ifndef RETRYSAFE_TLS_OPENSSL_H
#define RETRYSAFE_TLS_OPENSSL_H

#include <stddef.h>

#include "conn.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

enum {
    OSSL_ERROR_WANT_READ = 2,
    OSSL_ERROR_WANT_WRITE = 3,
    OSSL_ERROR_ZERO_RETURN = 6,
    OSSL_CTRL_MODE = 33,
    OSSL_MODE_ENABLE_PARTIAL_WRITE = 0x1,
    OSSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2,
    OSSL_NAMETYPE_HOST_NAME = 0,
    OSSL_EX_INDEX_SSL = 0,
    OSSL_EX_INDEX_SSL_CTX = 1,
    OSSL_ERROR_SYSCALL = 5,
    OSSL_BIO_CTRL_SET_CLOSE = 9,
    OSSL_BIO_CTRL_GET_CLOSE = 8,
    OSSL_BIO_NOCLOSE = 0,
    OSSL_BIO_CLOSE = 1,
};

typedef void (*ossl_ex_free_fn)(void *parent, void *ptr, void *ad, int idx, long argl,
                                void *argp);

struct openssl_calls {
    int ready;
    int (*write)(SSL *, const void *, int);
    int (*write_ex)(SSL *, const void *, size_t, size_t *);
    int (*read)(SSL *, void *, int);
    int (*read_ex)(SSL *, void *, size_t, size_t *);
    int (*pending)(const SSL *);
    int (*clear)(SSL *);
    int (*get_error)(const SSL *, int);
    int (*get_fd)(const SSL *);
    long (*ctrl)(SSL *, int, long, void *);
    int (*is_server)(const SSL *);
    const char *(*get_servername)(const SSL *, int);
    SSL_CTX *(*get_ssl_ctx)(const SSL *);
    int (*set_alpn_protos)(SSL *, const unsigned char *, unsigned int);
    int (*ctx_set_alpn_protos)(SSL_CTX *, const unsigned char *, unsigned int);
    int (*connect)(SSL *);
    int (*do_handshake)(SSL *);
    int (*get_ex_new_index)(int, long, void *, void *, void *, ossl_ex_free_fn);
    void (*free)(SSL *);
    int (*set_fd)(SSL *, int);
    void *(*get_rbio)(const SSL *);
    long (*bio_ctrl)(void *, int, long, void *);   /* libcrypto's, through libssl */
    void (*set_connect_state)(SSL *);
    void *(*get_wbio)(const SSL *);
    void (*set_msg_callback)(SSL *, void *);
    void (*set_info_callback)(SSL *, void *);
    int (*set_ex_data)(SSL *, int, void *);
    void (*err_clear)(void);   /* the host's libcrypto's, not ours */
};

extern struct openssl_calls ossl;

/* Finds the functions (once found, always). Returns 0 when the essential
 * ones (write, read, get_error) are known. */
int openssl_ensure(void);

void tls_openssl_fork(enum fork_phase phase);
/* An SSL_set_connect_state we put off (tls_openssl_late.c) happens now:
 * the application uses the session again after all. */
void tls_openssl_apply_reset(struct conn *c, SSL *ssl);
/* The late reader's lock (tls_openssl_late.c): the child starts it afresh. */
void tls_openssl_late_fork(enum fork_phase phase);

/* The socket under ssl's records (SSL_get_fd, or the one its writes went
 * through), still naming the same socket; -1 when unknown. */
int tls_openssl_socket(struct conn *c, SSL *ssl);

/* Asks libssl to tell us when an SSL or SSL_CTX is really freed. */
void tls_openssl_watch_frees(void);

#endif
