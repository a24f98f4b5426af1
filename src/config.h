/* config.h - the environment, parsed once into one immutable struct.
 *
 * Pure: the caller supplies the variable lookup and the warning sink, so
 * the parser can be tested without touching the process environment. Bad
 * values produce one warning each and fall back to the documented default.
 */
#ifndef RETRYSAFE_CONFIG_H
#define RETRYSAFE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum config_mode { CONFIG_MODE_TAG, CONFIG_MODE_GUARD, CONFIG_MODE_OBSERVE };

enum config_log_level {
    CONFIG_LOG_OFF, CONFIG_LOG_ERROR, CONFIG_LOG_WARN,
    CONFIG_LOG_INFO, CONFIG_LOG_DEBUG
};

enum config_host_kind {
    CONFIG_HOST_EXACT,   /* "api.example.com" */
    CONFIG_HOST_SUFFIX,  /* "*.example.com": any name ending ".example.com" */
    CONFIG_HOST_ANY      /* "*" */
};

struct config_host {
    enum config_host_kind kind;
    char *name;          /* lower case; for SUFFIX the part after "*."; for
                            an IPv6 literal without brackets */
    int port;            /* 0: any port */
    size_t header_index; /* into config.header_names */
};

struct config {
    struct config_host *hosts;
    size_t n_hosts;

    char **methods;      /* upper case */
    size_t n_methods;

    /* Every distinct header name in use: [0] is RETRYSAFE_HEADER, the rest
     * come from per-host "host=Header" entries. */
    char **header_names;
    size_t n_header_names;

    enum config_mode mode;
    char *scope;                  /* never NULL; "" when unset */
    uint64_t window_ms;
    char **ignore_fields;
    size_t n_ignore_fields;
    char *journal;                /* NULL: default location */
    uint64_t max_body;
    uint64_t wait_ms;
    int on_unknown_resend;        /* RETRYSAFE_ON_UNKNOWN=resend */
    uint64_t late_wait_ms;
    uint64_t max_response;
    char *secret;                 /* NULL: generated secret file */
    enum config_log_level log_level;
    char *log_file;               /* NULL: stderr */
};

/* Returns the value of a variable, or NULL when unset. */
typedef const char *(*config_lookup_fn)(void *ctx, const char *name);
/* Receives one human-readable warning (no trailing newline). */
typedef void (*config_warn_fn)(void *ctx, const char *message);

/* Fills cfg from the variables. Returns 0, or -1 when out of memory (cfg is
 * then empty and safe to free). */
int config_load(struct config *cfg, config_lookup_fn lookup, void *lookup_ctx,
                config_warn_fn warn, void *warn_ctx);
void config_free(struct config *cfg);

/* The entry that enables host (any case, no brackets around IPv6) on port,
 * or NULL. The first matching entry wins. Port 0: not known (a TLS
 * session's server name without its socket), any entry for the name. */
const struct config_host *config_match_host(const struct config *cfg,
                                            const char *host, size_t host_len,
                                            int port);

/* Whether method (case-sensitive, as sent) is to be tagged. */
int config_method_enabled(const struct config *cfg,
                          const char *method, size_t len);

/* "30s", "15m", "24h", "7d", "250ms", or a bare number of seconds.
 * Returns 0, or -1 for anything else or an overflow. */
int config_parse_duration(const char *s, uint64_t *ms);
/* "512", "64KiB", "8MiB", "1GiB" (also KB/MB/GB as powers of 1000, and the
 * bare suffixes K, M, G as powers of 1024). Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *bytes);

#endif
