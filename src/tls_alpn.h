/* tls_alpn.h - keeping h2 out of the ALPN offer for enabled hosts.
 *
 * OpenSSL has no getter for the list a client offers, so the hooks on
 * SSL_set_alpn_protos and SSL_CTX_set_alpn_protos remember it, and just
 * before the handshake the list is set again without "h2" when the server
 * name (SNI) is an enabled host: the client then speaks HTTP/1.1, which
 * can be tagged. Other hosts keep their offer untouched. */
#ifndef RETRYSAFE_TLS_ALPN_H
#define RETRYSAFE_TLS_ALPN_H

#include <stddef.h>

#include "conn.h"

/* owner: an SSL or an SSL_CTX. protos: ALPN wire format. */
void tls_alpn_remember(const void *owner, const unsigned char *protos, unsigned int len);
void tls_alpn_forget(const void *owner);

void tls_alpn_fork(enum fork_phase phase);

/* The list offered for ssl (its own, else ctx's) without "h2", when host
 * (the SNI; the port is the peer's of fd; with no fd, any entry for the name) is enabled and the list
 * offers h2 and something else. Returns the new list's length in out, or 0
 * when the offer is to stay as it is. */
unsigned int tls_alpn_without_h2(const void *ssl, const void *ctx, const char *host, int fd,
                                 unsigned char *out, size_t size);

#endif
