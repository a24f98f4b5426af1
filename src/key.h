/* key.h - the Idempotency-Key of a request.
 *
 * key = base64url(HMAC-SHA256(secret, message)[0..24)): 32 characters of
 * [A-Za-z0-9_-], 192 bits. message is the domain tag "retrysafe key v1\n"
 * followed by five fields, each as an 8-byte big-endian length and its bytes:
 * method, authority (normalised: lower case, default port dropped),
 * path with query, scope, body (and the generation, when above 0). Nothing else goes in: not other headers, not
 * the program, the process or the time.
 */
#ifndef RETRYSAFE_KEY_H
#define RETRYSAFE_KEY_H

#include <stddef.h>

#define KEY_CHARS 32
#define KEY_FINGERPRINT_CHARS 32
#define KEY_AUTHORITY_MAX 512

struct key_request {
    const char *method;    size_t method_len;
    const char *authority; size_t authority_len; /* as sent; normalised here */
    int tls;                                     /* default port 443, not 80 */
    const char *path;      size_t path_len;
    const char *scope;     size_t scope_len;
    const void *body;      size_t body_len;
    int generation;        /* the window's operation number; 0 the first */
};

struct key_ctx;

/* A context keyed once with the secret; derivations copy it, so the secret's
 * HMAC setup is paid once per process. NULL when libcrypto fails. */
struct key_ctx *key_ctx_new(const void *secret, size_t secret_len);
void key_ctx_free(struct key_ctx *ctx);

/* Writes KEY_CHARS characters and a NUL to out. Returns 0 or -1. A
 * generation above 0 adds a sixth field, its decimal digits. */
int key_derive(struct key_ctx *ctx, const struct key_request *req,
               char out[KEY_CHARS + 1]);

/* The request's fingerprint for the journal: 32 hex characters of
 * HMAC(secret, "retrysafe fingerprint v1\n" || M0), M0 being the whole MAC
 * of the five-field message. It names the request without revealing it or
 * its key, and does not depend on the generation. */
int key_fingerprint(struct key_ctx *ctx, const struct key_request *req,
                    char out[KEY_FINGERPRINT_CHARS + 1]);

/* Says which operation (generation) a fingerprint is now: 0, or -1 when it
 * cannot tell (generation 0 is used). */
typedef int (*key_generation_fn)(void *arg, const char *fingerprint, int *generation);

/* Fingerprint and key in one pass over the body: generation_of (may be
 * NULL: req->generation is used) is asked with the fingerprint, and the key
 * is derived for the generation it names, which goes to *generation. */
int key_for_request(struct key_ctx *ctx, const struct key_request *req,
                    key_generation_fn generation_of, void *arg,
                    char key[KEY_CHARS + 1], char fingerprint[KEY_FINGERPRINT_CHARS + 1],
                    int *generation);

/* Lower-cases the host part and drops ":80" (":443" when tls) from an
 * authority such as "Example.COM:80" or "[::1]:8080". Returns the length
 * written to out (not NUL-terminated), or -1 if it does not fit or is not an
 * authority. */
int key_normalize_authority(const char *in, size_t len, int tls,
                            char *out, size_t out_size);

/* Splits a normalised or raw authority into host (without brackets for IPv6)
 * and port (default_port when absent). Returns 0 or -1. */
int key_split_authority(const char *in, size_t len, int default_port,
                        const char **host, size_t *host_len, int *port);

#endif
