/* key.c - Idempotency-Key derivation. See key.h for the message layout.
 *
 * libcrypto is used only for SHA-256's block functions: they use no
 * library context, no provider, no configuration and no error queue, so
 * the host process's own use of libcrypto sees nothing of ours (a stale
 * error left in the per-thread queue would make the host's next
 * SSL_get_error() report a failure that is not its own).
 */
#include "key.h"

/* SHA256_Init and its kin: see "HMAC" below. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ascii.h"

/* 24 bytes = 192 bits = exactly 32 base64 characters, no padding. */
#define KEY_MAC_BYTES 24

static const char key_domain[] = "retrysafe key v1\n";
static const char fingerprint_domain[] = "retrysafe fingerprint v1\n";

/* ---- authority ---- */

struct authority {
    const char *host;     /* without brackets */
    size_t host_len;
    int bracketed;
    int port;             /* -1 when absent or empty */
};

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static inline int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ASCII only: the host's locale must not change a key. */
/* RFC 3986 reg-name: unreserved, pct-encoded, sub-delims. This excludes
 * spaces, controls, '@' (userinfo does not belong in Host), ':' and '/'. */
static int reg_name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_alnum(c) && (c == '\0' || !strchr("-._~%!$&'()*+,;=", c)))
            return 0;
    }
    return 1;
}

/* The inside of "[...]": hex digits, ':' and '.' (for "::ffff:1.2.3.4"). */
static int ip_literal_ok(const char *s, size_t n)
{
    int colon = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':')
            colon = 1;
        else if (!is_hex(s[i]) && s[i] != '.')
            return 0;
    }
    return colon;
}

/* Digits only, 1..65535; leading zeros allowed so "x:080" means port 80. */
static int port_parse(const char *s, size_t n, int *port)
{
    long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *port = (int)v;
    return 0;
}

static int authority_parse(const char *in, size_t len, struct authority *a)
{
    const char *port = NULL;
    size_t port_len = 0;

    if (!in || len == 0)
        return -1;
    a->bracketed = in[0] == '[';
    if (a->bracketed) {
        const char *close = memchr(in, ']', len);
        if (!close)
            return -1;
        a->host = in + 1;
        a->host_len = (size_t)(close - in) - 1;
        size_t rest = len - (size_t)(close - in) - 1;
        if (!ip_literal_ok(a->host, a->host_len))
            return -1;
        if (rest > 0) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        const char *colon = memchr(in, ':', len);
        a->host = in;
        a->host_len = colon ? (size_t)(colon - in) : len;
        if (colon) {
            port = colon + 1;
            port_len = len - a->host_len - 1;
        }
        /* Rejects a second ':' too: a bare IPv6 literal is no authority. */
        if (!reg_name_ok(a->host, a->host_len))
            return -1;
    }
    if (a->host_len == 0)
        return -1;
    a->port = -1;
    /* "host:" is allowed by RFC 3986 and means the default port. */
    if (port_len > 0 && port_parse(port, port_len, &a->port) < 0)
        return -1;
    return 0;
}

int key_normalize_authority(const char *in, size_t len, int tls,
                            char *out, size_t out_size)
{
    struct authority a;
    char port[8] = "";
    size_t n = 0;

    if (!out || authority_parse(in, len, &a) < 0)
        return -1;
    if (a.port != -1 && a.port != (tls ? 443 : 80))
        snprintf(port, sizeof port, ":%d", a.port);
    size_t need = a.host_len + 2 * (size_t)a.bracketed + strlen(port);
    if (need > out_size || need > (size_t)INT_MAX)
        return -1;
    if (a.bracketed)
        out[n++] = '[';
    for (size_t i = 0; i < a.host_len; i++)
        out[n++] = ascii_lower(a.host[i]);
    if (a.bracketed)
        out[n++] = ']';
    memcpy(out + n, port, strlen(port));
    return (int)need;
}

int key_split_authority(const char *in, size_t len, int default_port,
                        const char **host, size_t *host_len, int *port)
{
    struct authority a;
    if (!host || !host_len || !port || authority_parse(in, len, &a) < 0)
        return -1;
    *host = a.host;
    *host_len = a.host_len;
    *port = a.port == -1 ? default_port : a.port;
    return 0;
}

/* ---- HMAC ---- */

/* HMAC-SHA256 (RFC 2104) over libcrypto's SHA-256 block functions. The
 * secret's two padded blocks are hashed once, when the context is made;
 * a key then costs two struct copies and the hashing of the request's own
 * bytes, with no allocation, no provider lookup and no library context.
 * EVP_MAC_CTX_dup() per request, the documented way, cost about a tenth
 * of a busy client's CPU (`make bench`, part b). The block functions are
 * deprecated in OpenSSL 3 in favour of EVP, which cannot copy a keyed
 * state without allocating; they remain in every 3.x release. They touch
 * no thread's error queue and no configuration, so the host's libcrypto
 * state is left as it was. */
#define SHA256_BLOCK 64

struct key_ctx {
    SHA256_CTX inner;   /* after the block (secret ^ ipad): copied per MAC */
    SHA256_CTX outer;   /* after the block (secret ^ opad) */
};

void key_ctx_free(struct key_ctx *ctx)
{
    if (!ctx)
        return;
    OPENSSL_cleanse(ctx, sizeof *ctx);   /* the states stand for the secret */
    free(ctx);
}

struct key_ctx *key_ctx_new(const void *secret, size_t secret_len)
{
    /* An empty secret would make every key computable by anyone. */
    if (!secret || secret_len == 0)
        return NULL;
    struct key_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    unsigned char block[SHA256_BLOCK] = {0}, pad[SHA256_BLOCK];
    if (secret_len > SHA256_BLOCK)
        SHA256(secret, secret_len, block);   /* RFC 2104: long keys are hashed */
    else
        memcpy(block, secret, secret_len);
    for (int i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&ctx->inner);
    SHA256_Update(&ctx->inner, pad, sizeof pad);
    for (int i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&ctx->outer);
    SHA256_Update(&ctx->outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
    return ctx;
}

static void mac_update(SHA256_CTX *m, const void *data, size_t len)
{
    SHA256_Update(m, data, len);
}

/* One field: its length as 8 big-endian bytes, then its bytes. The length
 * prefix keeps ("PO", "ST/x") and ("POST", "/x") apart. */
static int mac_field(SHA256_CTX *m, const void *data, size_t len)
{
    unsigned char prefix[8];
    uint64_t n = (uint64_t)len;
    if (!data && len > 0)
        return -1;
    for (int i = 7; i >= 0; i--, n >>= 8)
        prefix[i] = (unsigned char)(n & 0xff);
    mac_update(m, prefix, sizeof prefix);
    if (len > 0)
        mac_update(m, data, len);
    return 0;
}

static int mac_fields(SHA256_CTX *m, const struct key_request *req,
                      const char *authority, size_t authority_len)
{
    mac_update(m, key_domain, sizeof key_domain - 1);
    if (mac_field(m, req->method, req->method_len) < 0 ||
        mac_field(m, authority, authority_len) < 0 ||
        mac_field(m, req->path, req->path_len) < 0 ||
        mac_field(m, req->scope, req->scope_len) < 0 ||
        mac_field(m, req->body, req->body_len) < 0)
        return -1;
    return 0;
}

/* A later operation of the same request (after the window) adds a sixth
 * field, the generation's decimal digits; generation 0 adds nothing. */
static void mac_generation(SHA256_CTX *m, int generation)
{
    char digits[16];
    int n = snprintf(digits, sizeof digits, "%d", generation);
    if (generation > 0)
        mac_field(m, digits, (size_t)n);
}

/* Ends the inner hash m and returns HMAC's outer hash of it. */
static void mac_final(const struct key_ctx *ctx, SHA256_CTX *m,
                      unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned char inner[SHA256_DIGEST_LENGTH];
    SHA256_CTX outer = ctx->outer;
    SHA256_Final(inner, m);
    SHA256_Update(&outer, inner, sizeof inner);
    SHA256_Final(out, &outer);
}

static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* n is a multiple of 3 here, so there is never padding to write. */
    for (size_t i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    *out = '\0';
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* fingerprint = HMAC(secret, "retrysafe fingerprint v1\n" || M0), where M0
 * is the generation-0 key's whole MAC: one pass over the body serves both,
 * and the fingerprint reveals neither the request nor its key. */
static void fingerprint_of(const struct key_ctx *ctx,
                           const unsigned char m0[SHA256_DIGEST_LENGTH],
                           char out[KEY_FINGERPRINT_CHARS + 1])
{
    unsigned char mac[SHA256_DIGEST_LENGTH];
    SHA256_CTX m = ctx->inner;
    mac_update(&m, fingerprint_domain, sizeof fingerprint_domain - 1);
    mac_update(&m, m0, SHA256_DIGEST_LENGTH);
    mac_final(ctx, &m, mac);
    hex(mac, KEY_FINGERPRINT_CHARS / 2, out);
}

int key_for_request(struct key_ctx *ctx, const struct key_request *req,
                    key_generation_fn generation_of, void *arg,
                    char key[KEY_CHARS + 1], char fingerprint[KEY_FINGERPRINT_CHARS + 1],
                    int *generation)
{
    char authority[KEY_AUTHORITY_MAX];
    unsigned char m0[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
    int gen = req ? req->generation : 0;

    if (!ctx || !req)
        return -1;
    int authority_len = key_normalize_authority(req->authority, req->authority_len,
                                                req->tls, authority, sizeof authority);
    if (authority_len < 0)
        return -1;

    SHA256_CTX first = ctx->inner;
    if (mac_fields(&first, req, authority, (size_t)authority_len) != 0)
        return -1;
    /* The generation is known only once the fingerprint is: keep the MAC
     * state after the five fields for a later operation's key. */
    SHA256_CTX later = first;
    mac_final(ctx, &first, m0);
    fingerprint_of(ctx, m0, fingerprint);
    if (generation_of && generation_of(arg, fingerprint, &gen) != 0)
        gen = 0;
    if (gen > 0) {
        mac_generation(&later, gen);
        mac_final(ctx, &later, mac);
        base64url(mac, KEY_MAC_BYTES, key);
    } else {
        base64url(m0, KEY_MAC_BYTES, key);
    }
    if (generation)
        *generation = gen;
    return 0;
}

int key_derive(struct key_ctx *ctx, const struct key_request *req, char out[KEY_CHARS + 1])
{
    char fingerprint[KEY_FINGERPRINT_CHARS + 1];
    return out ? key_for_request(ctx, req, NULL, NULL, out, fingerprint, NULL) : -1;
}

int key_fingerprint(struct key_ctx *ctx, const struct key_request *req,
                    char out[KEY_FINGERPRINT_CHARS + 1])
{
    char key[KEY_CHARS + 1];
    return out ? key_for_request(ctx, req, NULL, NULL, key, out, NULL) : -1;
}
