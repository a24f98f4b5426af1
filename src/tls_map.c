/* tls_map.c - TLS sessions to connections: a small chained hash table. */
#include "tls_map.h"

#include "tls_alpn.h"
#include "tls_openssl.h"

#include <stdint.h>
#include <stdlib.h>

#define TLS_MAP_BUCKETS 256

struct tls_entry {
    const void *session;
    struct conn *c;
    struct tls_entry *next;
};

int tls_map_count;
static struct tls_entry *buckets[TLS_MAP_BUCKETS];
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;

static struct tls_entry **bucket(const void *session)
{
    uintptr_t h = (uintptr_t)session;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15u;
    return &buckets[(h >> 24) % TLS_MAP_BUCKETS];
}

static struct tls_entry *find(const void *session)
{
    for (struct tls_entry *e = *bucket(session); e; e = e->next)
        if (e->session == session)
            return e;
    return NULL;
}

void tls_fork(enum fork_phase phase)
{
    /* In a fixed order, the same in every process. */
    tls_openssl_fork(phase);
    tls_openssl_late_fork(phase);
    tls_gnutls_fork(phase);
    tls_alpn_fork(phase);
    fork_lock(&map_lock, phase);
}

struct conn *tls_map_acquire(const void *session)
{
    if (!__atomic_load_n(&tls_map_count, __ATOMIC_ACQUIRE))
        return NULL;
    pthread_mutex_lock(&map_lock);
    struct tls_entry *e = find(session);
    struct conn *c = e ? e->c : NULL;
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&map_lock);
    return c;
}

struct conn *tls_map_track(const void *session, const struct outbound_env *env,
                           const char *peer)
{
    pthread_mutex_lock(&map_lock);
    struct tls_entry *e = find(session);
    if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
        e->session = session;
        e->c = conn_new(peer, env, 1);
        if (!e->c) {
            free(e);
            e = NULL;
        } else {
            struct tls_entry **b = bucket(session);
            e->next = *b;
            *b = e;
            __atomic_add_fetch(&tls_map_count, 1, __ATOMIC_ACQ_REL);
        }
    }
    struct conn *c = e ? e->c : NULL;
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&map_lock);
    return c;
}

void tls_map_forget(const void *session)
{
    if (!__atomic_load_n(&tls_map_count, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&map_lock);
    struct tls_entry **link = bucket(session), *e;
    while ((e = *link) && e->session != session)
        link = &e->next;
    if (e) {
        *link = e->next;
        __atomic_sub_fetch(&tls_map_count, 1, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&map_lock);
    if (e) {
        conn_release(e->c);
        free(e);
    }
}
