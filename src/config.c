/* config.c - RETRYSAFE_* variables -> one struct config. See config.h.
 *
 * Pure: variables come from the caller's lookup function and warnings go to
 * the caller's sink. Every bad value costs one warning and falls back to its
 * default; only running out of memory fails the load.
 *
 * A variable set to the empty string counts as unset: "RETRYSAFE_SECRET="
 * must not become an empty HMAC key, nor "RETRYSAFE_HEADER=" an empty name.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ascii.h"

#define WARN_MAX 512

#define DEFAULT_HEADER   "Idempotency-Key"
#define DEFAULT_METHOD   "POST"
#define DURATION_EXAMPLE "like 250ms, 30s, 15m, 24h, 7d"
#define SIZE_EXAMPLE     "like 512, 64KiB, 8MiB"

struct loader {
    config_lookup_fn lookup;
    void *lookup_ctx;
    config_warn_fn warn;
    void *warn_ctx;
};

/* ---- ASCII helpers ----
 * Not <ctype.h>: the host process may run under a locale (tr_TR) where
 * tolower('I') is not 'i', and names and tokens here are ASCII by definition. */

static inline char ascii_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static inline int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* RFC 9110 5.6.2 tchar. */
static int is_tchar(char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(s[i]))
            return 0;
    return 1;
}

/* Whether s[0..n) equals the NUL-terminated word, ignoring ASCII case. */
static int span_eq_ci(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n; i++)
        if (word[i] == '\0' || ascii_lower(s[i]) != ascii_lower(word[i]))
            return 0;
    return word[i] == '\0';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static char *dup_span(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

/* ---- numbers ---- */

/* Reads the leading decimal digits of s[0..n) into *v; *used is how many.
 * Fails on no digits or on overflow. */
static int parse_digits(const char *s, size_t n, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n && is_digit(s[i]); i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    if (i == 0)
        return -1;
    *v = x;
    *used = i;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t factor;
};

static const struct unit duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000},
    {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000}, {NULL, 0}
};

/* Binary K/M/G because memory sizes are; KB/MB/GB for those who mean 1000. */
static const struct unit size_units[] = {
    {"", 1}, {"b", 1},
    {"k", 1ULL << 10}, {"kib", 1ULL << 10}, {"kb", 1000ULL},
    {"m", 1ULL << 20}, {"mib", 1ULL << 20}, {"mb", 1000000ULL},
    {"g", 1ULL << 30}, {"gib", 1ULL << 30}, {"gb", 1000000000ULL},
    {NULL, 0}
};

/* A number followed by one of units' suffixes (any case), nothing else. */
static int parse_with_units(const char *s, size_t n, const struct unit *units,
                            uint64_t *out)
{
    uint64_t v;
    size_t used;
    if (!s || parse_digits(s, n, &v, &used) < 0)
        return -1;
    for (const struct unit *u = units; u->suffix; u++) {
        if (!span_eq_ci(s + used, n - used, u->suffix))
            continue;
        if (v > UINT64_MAX / u->factor)
            return -1;
        *out = v * u->factor;
        return 0;
    }
    return -1;
}

int config_parse_duration(const char *s, uint64_t *ms)
{
    if (!s || !ms)
        return -1;
    return parse_with_units(s, strlen(s), duration_units, ms);
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    if (!s || !bytes)
        return -1;
    return parse_with_units(s, strlen(s), size_units, bytes);
}

/* 1..65535, digits only. */
static int parse_port(const char *s, size_t n, int *port)
{
    uint64_t v;
    size_t used;
    if (n == 0 || n > 5 || parse_digits(s, n, &v, &used) < 0 || used != n)
        return -1;
    if (v == 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* ---- warnings ---- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void warnf(const struct loader *ld, const char *fmt, ...)
{
    char msg[WARN_MAX];
    va_list ap;
    if (!ld->warn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld->warn(ld->warn_ctx, msg);
}

/* The variable's value, or NULL when unset or empty. */
static const char *lookup(const struct loader *ld, const char *name)
{
    const char *v = ld->lookup ? ld->lookup(ld->lookup_ctx, name) : NULL;
    return v && *v ? v : NULL;
}

/* ---- growable arrays ---- */

static int strv_push(char ***v, size_t *n, char *s)
{
    char **grown = realloc(*v, (*n + 1) * sizeof **v);
    if (!grown) {
        free(s);
        return -1;
    }
    grown[(*n)++] = s;
    *v = grown;
    return 0;
}

static void strv_free(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static int strv_contains(char *const *v, size_t n, const char *s, size_t len,
                         int ignore_case)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(v[i]) != len)
            continue;
        if (ignore_case ? span_eq_ci(s, len, v[i]) : memcmp(s, v[i], len) == 0)
            return 1;
    }
    return 0;
}

/* Calls fn on each trimmed, non-empty item of a comma-separated list.
 * Stops with -1 as soon as fn reports running out of memory. */
typedef int (*item_fn)(const struct loader *ld, struct config *cfg,
                       const char *item, size_t len);

static int for_each_item(const struct loader *ld, struct config *cfg,
                         const char *list, item_fn fn)
{
    const char *p = list;
    while (p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &len);
        if (len > 0 && fn(ld, cfg, item, len) < 0)
            return -1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* ---- header names ---- */

/* Adding a second copy of one of these would change how the request is
 * framed, routed or read, so none of them may be the key's header. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection",
    "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect",
    "content-type", "content-encoding", NULL
};

/* NULL when name can carry the key, else why not. */
static const char *header_problem(const char *name, size_t n)
{
    if (n == 0)
        return "is empty";
    if (!is_token(name, n))
        return "is not a valid header name";
    for (const char *const *r = reserved_headers; *r; r++)
        if (span_eq_ci(name, n, *r))
            return "is a header the request's framing depends on";
    return NULL;
}

/* The index of name in header_names, adding it when new. */
static int header_intern(struct config *cfg, const char *name, size_t n,
                         size_t *index)
{
    for (size_t i = 0; i < cfg->n_header_names; i++) {
        if (strlen(cfg->header_names[i]) == n &&
            span_eq_ci(name, n, cfg->header_names[i])) {
            *index = i;
            return 0;
        }
    }
    char *copy = dup_span(name, n);
    if (!copy || strv_push(&cfg->header_names, &cfg->n_header_names, copy) < 0)
        return -1;
    *index = cfg->n_header_names - 1;
    return 0;
}

static int load_header(const struct loader *ld, struct config *cfg)
{
    const char *v = lookup(ld, "RETRYSAFE_HEADER");
    const char *name = DEFAULT_HEADER;
    size_t n = strlen(DEFAULT_HEADER);
    size_t index;
    if (v) {
        const char *t = v;
        size_t tn = strlen(v);
        trim(&t, &tn);
        const char *why = header_problem(t, tn);
        if (why) {
            warnf(ld, "RETRYSAFE_HEADER=\"%s\" %s; using " DEFAULT_HEADER,
                  v, why);
        } else {
            name = t;
            n = tn;
        }
    }
    return header_intern(cfg, name, n, &index);
}

/* ---- hosts ---- */

struct host_spec {
    enum config_host_kind kind;
    const char *name;
    size_t name_len;
    int port;
};

/* A DNS-ish name: letters, digits, '-', '_', '.'; not starting with '.'. */
static int host_name_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

/* Hex digits, ':' and '.' (for "::ffff:1.2.3.4"), at least two colons. */
static int ipv6_ok(const char *s, size_t n)
{
    size_t colons = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':')
            colons++;
        else if (!is_hex(s[i]) && s[i] != '.')
            return 0;
    }
    return colons >= 2;
}

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* "[v6]" or "[v6]:port". */
static const char *parse_bracketed(const char *s, size_t n, struct host_spec *hs,
                                   const char **port, size_t *port_len)
{
    const char *close = memchr(s, ']', n);
    if (!close)
        return "has '[' without ']'";
    hs->kind = CONFIG_HOST_EXACT;
    hs->name = s + 1;
    hs->name_len = (size_t)(close - s) - 1;
    size_t rest = n - (size_t)(close - s) - 1;
    if (hs->name_len == 0)
        return "has an empty host name";
    if (!ipv6_ok(hs->name, hs->name_len))
        return "is not an IPv6 address inside its brackets";
    if (rest == 0)
        return NULL;
    if (close[1] != ':')
        return "has something other than a port after ']'";
    *port = close + 2;
    *port_len = rest - 1;
    return NULL;
}

/* "host", "host:port", "*.suffix[:port]", "*[:port]". */
static const char *parse_named(const char *s, size_t n, struct host_spec *hs,
                               const char **port, size_t *port_len)
{
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    if (colon) {
        *port = colon + 1;
        *port_len = n - name_len - 1;
    }
    hs->kind = CONFIG_HOST_EXACT;
    hs->name = s;
    hs->name_len = name_len;
    if (name_len == 1 && s[0] == '*') {
        hs->kind = CONFIG_HOST_ANY;
        return NULL;
    }
    if (name_len >= 2 && s[0] == '*' && s[1] == '.') {
        hs->kind = CONFIG_HOST_SUFFIX;
        hs->name += 2;
        hs->name_len -= 2;
    }
    if (hs->name_len == 0)
        return "has an empty host name";
    if (!host_name_ok(hs->name, hs->name_len))
        return "has characters not allowed in a host name";
    return NULL;
}

/* Fills hs from one entry without its "=Header" part. NULL on success,
 * else the reason the entry is skipped. */
static const char *parse_host(const char *s, size_t n, struct host_spec *hs)
{
    const char *port = NULL;
    size_t port_len = 0;
    const char *why;

    hs->port = 0;
    if (n == 0)
        return "has an empty host name";
    if (s[0] == '[') {
        why = parse_bracketed(s, n, hs, &port, &port_len);
    } else if (count_char(s, n, ':') >= 2) {
        /* A bare IPv6 literal: with so many colons no port can be told
         * apart, so it matches every port. */
        hs->kind = CONFIG_HOST_EXACT;
        hs->name = s;
        hs->name_len = n;
        why = ipv6_ok(s, n) ? NULL : "is not a valid IPv6 address";
    } else {
        why = parse_named(s, n, hs, &port, &port_len);
    }
    if (why)
        return why;
    if (port && parse_port(port, port_len, &hs->port) < 0)
        return "has a bad port (1 to 65535)";
    return NULL;
}

static int host_push(struct config *cfg, const struct host_spec *hs,
                     size_t header_index)
{
    const char *name = hs->kind == CONFIG_HOST_ANY ? "*" : hs->name;
    size_t name_len = hs->kind == CONFIG_HOST_ANY ? 1 : hs->name_len;
    char *copy = dup_span(name, name_len);
    if (!copy)
        return -1;
    for (size_t i = 0; i < name_len; i++)
        copy[i] = ascii_lower(copy[i]);
    struct config_host *grown =
        realloc(cfg->hosts, (cfg->n_hosts + 1) * sizeof *grown);
    if (!grown) {
        free(copy);
        return -1;
    }
    cfg->hosts = grown;
    cfg->hosts[cfg->n_hosts++] = (struct config_host){
        .kind = hs->kind, .name = copy, .port = hs->port,
        .header_index = header_index,
    };
    return 0;
}

static int host_item(const struct loader *ld, struct config *cfg,
                     const char *item, size_t len)
{
    const char *eq = memchr(item, '=', len);
    const char *host = item;
    size_t host_len = eq ? (size_t)(eq - item) : len;
    struct host_spec hs;
    size_t header_index = 0;

    trim(&host, &host_len);
    const char *why = parse_host(host, host_len, &hs);
    if (why) {
        warnf(ld, "RETRYSAFE_HOSTS entry \"%.*s\" %s; skipping it",
              (int)len, item, why);
        return 0;
    }
    if (eq) {
        const char *header = eq + 1;
        size_t header_len = len - (size_t)(eq - item) - 1;
        trim(&header, &header_len);
        why = header_problem(header, header_len);
        if (why) {
            warnf(ld, "RETRYSAFE_HOSTS entry \"%.*s\": the header name after "
                  "'=' %s; skipping the entry", (int)len, item, why);
            return 0;
        }
        if (header_intern(cfg, header, header_len, &header_index) < 0)
            return -1;
    }
    return host_push(cfg, &hs, header_index);
}

/* ---- methods and fields ---- */

static int method_item(const struct loader *ld, struct config *cfg,
                       const char *item, size_t len)
{
    if (!is_token(item, len)) {
        warnf(ld, "RETRYSAFE_METHODS entry \"%.*s\" is not a valid method; "
              "skipping it", (int)len, item);
        return 0;
    }
    char *upper = dup_span(item, len);
    if (!upper)
        return -1;
    for (size_t i = 0; i < len; i++)
        upper[i] = ascii_upper(upper[i]);
    if (strv_contains(cfg->methods, cfg->n_methods, upper, len, 0)) {
        free(upper);
        return 0;
    }
    return strv_push(&cfg->methods, &cfg->n_methods, upper);
}

static int load_methods(const struct loader *ld, struct config *cfg)
{
    const char *v = lookup(ld, "RETRYSAFE_METHODS");
    if (v && for_each_item(ld, cfg, v, method_item) < 0)
        return -1;
    if (cfg->n_methods > 0)
        return 0;
    if (v)
        warnf(ld, "RETRYSAFE_METHODS=\"%s\" names no valid method; using "
              DEFAULT_METHOD, v);
    char *def = dup_span(DEFAULT_METHOD, strlen(DEFAULT_METHOD));
    if (!def)
        return -1;
    return strv_push(&cfg->methods, &cfg->n_methods, def);
}

static int field_item(const struct loader *ld, struct config *cfg,
                      const char *item, size_t len)
{
    (void)ld;
    if (strv_contains(cfg->ignore_fields, cfg->n_ignore_fields, item, len, 0))
        return 0;
    char *copy = dup_span(item, len);
    if (!copy)
        return -1;
    return strv_push(&cfg->ignore_fields, &cfg->n_ignore_fields, copy);
}

/* ---- scalars ---- */

/* One of words (any case, surrounding space ignored) -> its index. */
static int pick_word(const struct loader *ld, const char *var,
                     const char *const *words, const char *choices,
                     int def)
{
    const char *v = lookup(ld, var);
    if (!v)
        return def;
    const char *t = v;
    size_t n = strlen(v);
    trim(&t, &n);
    for (int i = 0; words[i]; i++)
        if (span_eq_ci(t, n, words[i]))
            return i;
    warnf(ld, "%s=\"%s\" is not one of %s; using %s", var, v, choices,
          words[def]);
    return def;
}

static uint64_t pick_number(const struct loader *ld, const char *var,
                            const struct unit *units, const char *what,
                            const char *example, const char *def_text,
                            uint64_t def)
{
    const char *v = lookup(ld, var);
    uint64_t x;
    if (!v)
        return def;
    const char *t = v;
    size_t n = strlen(v);
    trim(&t, &n);
    if (parse_with_units(t, n, units, &x) == 0)
        return x;
    warnf(ld, "%s=\"%s\" is not a %s (%s); using %s", var, v, what, example,
          def_text);
    return def;
}

static uint64_t pick_duration(const struct loader *ld, const char *var,
                              const char *def_text, uint64_t def)
{
    return pick_number(ld, var, duration_units, "duration", DURATION_EXAMPLE,
                       def_text, def);
}

static uint64_t pick_size(const struct loader *ld, const char *var,
                          const char *def_text, uint64_t def)
{
    return pick_number(ld, var, size_units, "size", SIZE_EXAMPLE, def_text,
                       def);
}

/* A verbatim copy of the variable into *out, NULL when unset. */
static int pick_string(const struct loader *ld, const char *var, char **out)
{
    const char *v = lookup(ld, var);
    *out = NULL;
    if (!v)
        return 0;
    *out = dup_span(v, strlen(v));
    return *out ? 0 : -1;
}

static const char *const mode_words[] = {"tag", "guard", "observe", NULL};
static const char *const unknown_words[] = {"refuse", "resend", NULL};
static const char *const log_words[] = {
    "off", "error", "warn", "info", "debug", NULL
};

static void load_scalars(const struct loader *ld, struct config *cfg)
{
    cfg->mode = (enum config_mode)pick_word(ld, "RETRYSAFE_MODE", mode_words,
        "tag, guard, observe", CONFIG_MODE_TAG);
    cfg->on_unknown_resend = pick_word(ld, "RETRYSAFE_ON_UNKNOWN",
        unknown_words, "refuse, resend", 0);
    cfg->log_level = (enum config_log_level)pick_word(ld, "RETRYSAFE_LOG",
        log_words, "off, error, warn, info, debug", CONFIG_LOG_WARN);
    cfg->window_ms = pick_duration(ld, "RETRYSAFE_WINDOW", "24h",
                                   24ULL * 3600 * 1000);
    cfg->wait_ms = pick_duration(ld, "RETRYSAFE_WAIT", "30s", 30 * 1000);
    cfg->late_wait_ms = pick_duration(ld, "RETRYSAFE_LATE_WAIT", "60s",
                                      60 * 1000);
    cfg->max_body = pick_size(ld, "RETRYSAFE_MAX_BODY", "8MiB", 8ULL << 20);
    cfg->max_response = pick_size(ld, "RETRYSAFE_MAX_RESPONSE", "1MiB",
                                  1ULL << 20);
}

static int load_strings(const struct loader *ld, struct config *cfg)
{
    const char *scope = lookup(ld, "RETRYSAFE_SCOPE");
    cfg->scope = dup_span(scope ? scope : "", scope ? strlen(scope) : 0);
    if (!cfg->scope)
        return -1;
    if (pick_string(ld, "RETRYSAFE_JOURNAL", &cfg->journal) < 0 ||
        pick_string(ld, "RETRYSAFE_SECRET", &cfg->secret) < 0 ||
        pick_string(ld, "RETRYSAFE_LOG_FILE", &cfg->log_file) < 0)
        return -1;
    const char *fields = lookup(ld, "RETRYSAFE_IGNORE_FIELDS");
    return fields ? for_each_item(ld, cfg, fields, field_item) : 0;
}

int config_load(struct config *cfg, config_lookup_fn lookup_fn,
                void *lookup_ctx, config_warn_fn warn, void *warn_ctx)
{
    const struct loader ld = {lookup_fn, lookup_ctx, warn, warn_ctx};
    if (!cfg)
        return -1;
    memset(cfg, 0, sizeof *cfg);
    load_scalars(&ld, cfg);
    /* The header first: header_names[0] must exist before per-host names. */
    const char *hosts = lookup(&ld, "RETRYSAFE_HOSTS");
    if (load_header(&ld, cfg) < 0 ||
        (hosts && for_each_item(&ld, cfg, hosts, host_item) < 0) ||
        load_methods(&ld, cfg) < 0 || load_strings(&ld, cfg) < 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_hosts; i++)
        free(cfg->hosts[i].name);
    free(cfg->hosts);
    strv_free(&cfg->methods, &cfg->n_methods);
    strv_free(&cfg->header_names, &cfg->n_header_names);
    strv_free(&cfg->ignore_fields, &cfg->n_ignore_fields);
    free(cfg->scope);
    free(cfg->journal);
    free(cfg->secret);
    free(cfg->log_file);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- queries ---- */

static int host_matches(const struct config_host *h, const char *host,
                        size_t host_len)
{
    size_t n = strlen(h->name);
    switch (h->kind) {
    case CONFIG_HOST_ANY:
        return 1;
    case CONFIG_HOST_EXACT:
        return host_len == n && span_eq_ci(host, host_len, h->name);
    case CONFIG_HOST_SUFFIX:
        /* "*.example.com" wants at least one label before ".example.com". */
        return host_len > n + 1 && host[host_len - n - 1] == '.' &&
               span_eq_ci(host + host_len - n, n, h->name);
    }
    return 0;
}

const struct config_host *config_match_host(const struct config *cfg,
                                            const char *host, size_t host_len,
                                            int port)
{
    if (!cfg || (!host && host_len > 0))
        return NULL;
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        const struct config_host *h = &cfg->hosts[i];
        if (h->port != 0 && port != 0 && h->port != port)
            continue;
        if (host_matches(h, host, host_len))
            return h;
    }
    return NULL;
}

int config_method_enabled(const struct config *cfg, const char *method,
                          size_t len)
{
    if (!cfg || !method)
        return 0;
    return strv_contains(cfg->methods, cfg->n_methods, method, len, 0);
}
