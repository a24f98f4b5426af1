/* tls_alpn.c - remembered ALPN offers, and h2 taken out for enabled hosts. */
#include "tls_alpn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "alpn.h"
#include "config.h"
#include "shim.h"

#define ALPN_SLOTS 128
#define ALPN_MAX 255

struct alpn_slot {
    const void *owner;
    unsigned int len;
    unsigned char protos[ALPN_MAX];
};

static struct alpn_slot slots[ALPN_SLOTS];
static unsigned int next_slot;
static pthread_mutex_t alpn_lock = PTHREAD_MUTEX_INITIALIZER;

static struct alpn_slot *slot_of(const void *owner)
{
    for (int i = 0; i < ALPN_SLOTS; i++)
        if (slots[i].owner == owner)
            return &slots[i];
    return NULL;
}

void tls_alpn_remember(const void *owner, const unsigned char *protos, unsigned int len)
{
    if (!owner)
        return;
    pthread_mutex_lock(&alpn_lock);
    struct alpn_slot *s = slot_of(owner);
    if (!s && len)
        s = &slots[next_slot++ % ALPN_SLOTS];  /* oldest gives way */
    if (s) {
        s->owner = len && len <= ALPN_MAX && protos ? owner : NULL;
        s->len = s->owner ? len : 0;
        if (s->owner)
            memcpy(s->protos, protos, len);
    }
    pthread_mutex_unlock(&alpn_lock);
}

void tls_alpn_forget(const void *owner)
{
    pthread_mutex_lock(&alpn_lock);
    struct alpn_slot *s = owner ? slot_of(owner) : NULL;
    if (s)
        s->owner = NULL;
    pthread_mutex_unlock(&alpn_lock);
}

static int peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    /* curl and asyncio give OpenSSL their own BIO: the session has no fd
     * to ask, and guessing from other connections would guess wrong. Port
     * 0 matches the host's entries whatever their port: at worst a host
     * enabled on another port loses h2, never a tag. */
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

void tls_alpn_fork(enum fork_phase phase)
{
    fork_lock(&alpn_lock, phase);
}

unsigned int tls_alpn_without_h2(const void *ssl, const void *ctx, const char *host, int fd,
                                 unsigned char *out, size_t size)
{
    const struct config *cfg = shim_start() ? shim_config() : NULL;
    if (!cfg || !config_match_host(cfg, host, strlen(host), peer_port(fd)))
        return 0;
    unsigned char offer[ALPN_MAX];
    unsigned int len = 0;
    pthread_mutex_lock(&alpn_lock);
    struct alpn_slot *s = slot_of(ssl);
    if (!s && ctx)
        s = slot_of(ctx);
    if (s) {
        len = s->len;
        memcpy(offer, s->protos, len);
    }
    pthread_mutex_unlock(&alpn_lock);
    return len ? alpn_without_h2(offer, len, out, size) : 0;
}
