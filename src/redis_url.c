/* redis_url.c - parsing redis:// journal locations. See redis_url.h. */
#include "redis_url.h"

#include "ascii.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies [p, end) into out, %-decoded. -1 when it does not fit, has a
 * bad escape, or decodes to a NUL (which no C string can hold). */
static int decode(const char *p, const char *end, char *out, size_t size)
{
    size_t n = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '%') {
            int hi = p + 2 < end ? ascii_hex_value(p[1]) : -1;
            int lo = hi >= 0 ? ascii_hex_value(p[2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            p += 2;
        }
        if (n + 1 >= size)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* A decimal number in [lo, hi], the whole of [p, end). */
static int number(const char *p, const char *end, int lo, int hi, int *out)
{
    long v = 0;
    if (p == end || end - p > 9)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int fail(char *err, size_t err_size, const char *why)
{
    snprintf(err, err_size, "journal location redis://...: %s", why);
    return -1;
}

int redis_url_parse(const char *location, struct redis_url *out, char *err,
                    size_t err_size)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p;
    if (strncasecmp(location, "redis://", 8) == 0)
        p = location + 8;
    else if (strncasecmp(location, "rediss://", 9) == 0) {
        p = location + 9;
        out->tls = 1;
    } else
        return fail(err, err_size, "not a redis:// or rediss:// URL");

    /* The authority ends at the first '/'; a '?' or '#' has no meaning here. */
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#')
        return fail(err, err_size, "query strings and fragments are not supported");
    /* Credentials end at the last '@': a password may hold one, %-encoded
     * or not. */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return fail(err, err_size, "credentials need a ':' (user:password@ "
                        "or :password@)");
        if (decode(p, colon, out->user, sizeof(out->user)) < 0 ||
            decode(colon + 1, at, out->password, sizeof(out->password)) < 0)
            return fail(err, err_size, "bad or too long user or password "
                        "(%-encode reserved characters)");
        if (!out->password[0])
            return fail(err, err_size, "empty password");
        p = at + 1;
    }

    const char *host_end, *port_at = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close || close == p + 1)
            return fail(err, err_size, "bad [IPv6] host");
        if (close + 1 < end && close[1] != ':')
            return fail(err, err_size, "bad [IPv6] host");
        if ((size_t)(close - p - 1) >= sizeof(out->host))
            return fail(err, err_size, "host name too long");
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        host_end = close + 1;
        if (host_end < end)
            port_at = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end)
            port_at = host_end + 1;
        else
            host_end = end;
        if (host_end == p)
            return fail(err, err_size, "no host");
        if ((size_t)(host_end - p) >= sizeof(out->host))
            return fail(err, err_size, "host name too long");
        memcpy(out->host, p, (size_t)(host_end - p));
        for (const char *q = out->host; *q; q++)
            if (*q == '%' || *q == ' ' || (unsigned char)*q < 0x21)
                return fail(err, err_size, "bad character in host");
    }
    if (port_at && number(port_at, end, 1, 65535, &out->port) < 0)
        return fail(err, err_size, "port must be a number from 1 to 65535");

    if (*end == '/' && end[1] != '\0' &&
        number(end + 1, end + 1 + strlen(end + 1), 0, 1000000, &out->db) < 0)
        return fail(err, err_size, "database must be a number (/0, /1, ...)");
    return 0;
}

void redis_url_describe(const struct redis_url *u, char *out, size_t size)
{
    int v6 = strchr(u->host, ':') != NULL;
    char db[24] = "";
    if (u->db)
        snprintf(db, sizeof(db), "/%d", u->db);
    snprintf(out, size, "%s://%s%s%s:%d%s", u->tls ? "rediss" : "redis",
             v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, db);
}
