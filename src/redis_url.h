/* redis_url.h - what a redis:// journal location says. */
#ifndef RETRYSAFE_REDIS_URL_H
#define RETRYSAFE_REDIS_URL_H

#include <stddef.h>

/* redis://[[user]:password@]host[:port][/db] or rediss://... (TLS).
 * host is a name, an IPv4 address or [an IPv6 address]; user and
 * password may be %-encoded. */
struct redis_url {
    int tls;                  /* rediss:// */
    char host[256];
    int port;                 /* 6379 unless given */
    int db;                   /* 0 unless given */
    char user[128];           /* "" : AUTH with the password alone */
    char password[256];       /* "" : no AUTH */
};

/* Parses location into *out. Returns 0, or -1 with the reason in err;
 * the reason never quotes the password. */
int redis_url_parse(const char *location, struct redis_url *out, char *err,
                    size_t err_size);

/* "host:port" (or "[v6]:port"), "/db" when not 0: the location without
 * its credentials, fit for messages. */
void redis_url_describe(const struct redis_url *u, char *out, size_t size);

#endif
