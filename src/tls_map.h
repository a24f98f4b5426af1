/* tls_map.h - TLS sessions to the connections that carry their plaintext.
 *
 * A TLS session (an OpenSSL SSL *, a GnuTLS session) is named by its
 * pointer, not by an fd; its connection holds the same outbound stream,
 * answers and flights as a plain socket's. The map holds one reference on
 * each connection. */
#ifndef RETRYSAFE_TLS_MAP_H
#define RETRYSAFE_TLS_MAP_H

#include "conn.h"

/* Each TLS module's own locks, for tls_fork. */
void tls_gnutls_fork(enum fork_phase phase);

/* How many sessions are tracked: zero means every TLS hook is a straight
 * pass-through. */
extern int tls_map_count;

/* The session's connection, acquired, or NULL. */
struct conn *tls_map_acquire(const void *session);
/* The session's connection, created when absent, acquired; NULL when out
 * of memory. */
struct conn *tls_map_track(const void *session, const struct outbound_env *env,
                           const char *peer);
/* The session ends: the map lets go of its connection. */
void tls_map_forget(const void *session);

/* The TLS modules' locks around fork() (see enum fork_phase). */
void tls_fork(enum fork_phase phase);

#endif
