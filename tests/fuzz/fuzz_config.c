/* fuzz_config.c - the configuration parser (src/config.c) under libFuzzer.
 *
 * Input, after the seed: the values of the RETRYSAFE_* variables, one per
 * line, in the order of vars[] below; a missing line is an unset variable.
 * config_load runs on them through a fake environment, as in
 * tests/unit/test_config.c. Properties:
 *   - it succeeds (only running out of memory may fail it), and twice on
 *     the same values gives the same configuration and the same warnings;
 *   - what it built is well-formed: the key's header and every per-host one
 *     a valid, unreserved, distinct name; hosts lower case and each found by
 *     config_match_host; methods upper-case distinct tokens, each enabled;
 *     strings verbatim or absent; numbers the value or the default, with
 *     exactly one warning for a value it refused;
 *   - with the k-th allocation failing, for every k, it fails and leaves
 *     the configuration empty (config.h), never half built, and leaks
 *     nothing (LeakSanitizer).
 * To make allocations fail, config.c is compiled into this file with its
 * malloc and realloc renamed to ones the harness controls (the core's own
 * config.o is then not linked). That also lets the checks use config.c's
 * own header_problem(), so "valid" means what config.c says it means.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "fuzz_util.h"

static long fail_at = -1;    /* the allocation that fails; -1: none */
static long allocations;     /* made since the count was reset */

static int allocation_fails(void)
{
    return allocations++ == fail_at;
}

static void *fuzz_malloc(size_t n)
{
    return allocation_fails() ? NULL : malloc(n);
}

static void *fuzz_realloc(void *p, size_t n)
{
    return allocation_fails() ? NULL : realloc(p, n);
}

#define malloc(n) fuzz_malloc(n)
#define realloc(p, n) fuzz_realloc(p, n)
#include "config.c"
#undef malloc
#undef realloc

/* In the order the input gives their values. */
static const char *const vars[] = {
    "RETRYSAFE_HOSTS", "RETRYSAFE_HEADER", "RETRYSAFE_METHODS",
    "RETRYSAFE_MODE", "RETRYSAFE_SCOPE", "RETRYSAFE_WINDOW",
    "RETRYSAFE_IGNORE_FIELDS", "RETRYSAFE_JOURNAL", "RETRYSAFE_MAX_BODY",
    "RETRYSAFE_WAIT", "RETRYSAFE_ON_UNKNOWN", "RETRYSAFE_LATE_WAIT",
    "RETRYSAFE_MAX_RESPONSE", "RETRYSAFE_SECRET", "RETRYSAFE_LOG",
    "RETRYSAFE_LOG_FILE",
};
#define N_VARS (sizeof vars / sizeof vars[0])

struct env {
    char *values[N_VARS];    /* NULL: unset */
    struct buf warnings;     /* each warning and its NUL */
    size_t n_warnings;
};

static const char *env_lookup(void *ctx, const char *name)
{
    const struct env *e = ctx;

    for (size_t i = 0; i < N_VARS; i++)
        if (strcmp(vars[i], name) == 0)
            return e->values[i];
    fuzz_check(0, "config_load asked for a variable the harness does not know");
    return NULL;
}

static void env_warn(void *ctx, const char *message)
{
    struct env *e = ctx;
    size_t n = strlen(message);

    fuzz_check(n > 0 && n < WARN_MAX, "empty warning");
    fuzz_check(buf_append(&e->warnings, message, n + 1) == 0,
               "out of memory in the harness");
    e->n_warnings++;
}

static const char *value_of(const struct env *e, const char *var)
{
    const char *v = env_lookup((void *)e, var);
    return v && *v ? v : NULL;
}

/* ---- a configuration as bytes, to compare two loads ---- */

static void put(struct buf *b, const void *p, size_t n)
{
    fuzz_check(buf_append(b, p, n) == 0, "out of memory in the harness");
}

static void put_str(struct buf *b, const char *s)
{
    put(b, s ? s : "\1(null)", strlen(s ? s : "\1(null)") + 1);
}

static void put_strv(struct buf *b, char *const *v, size_t n)
{
    put(b, &n, sizeof n);
    for (size_t i = 0; i < n; i++)
        put_str(b, v[i]);
}

static struct buf serialize(const struct config *c)
{
    struct buf b = { 0 };

    put(&b, &c->n_hosts, sizeof c->n_hosts);
    for (size_t i = 0; i < c->n_hosts; i++) {
        const struct config_host *h = &c->hosts[i];
        put(&b, &h->kind, sizeof h->kind);
        put_str(&b, h->name);
        put(&b, &h->port, sizeof h->port);
        put(&b, &h->header_index, sizeof h->header_index);
    }
    put_strv(&b, c->methods, c->n_methods);
    put_strv(&b, c->header_names, c->n_header_names);
    put_strv(&b, c->ignore_fields, c->n_ignore_fields);
    put_str(&b, c->scope);
    put_str(&b, c->journal);
    put_str(&b, c->secret);
    put_str(&b, c->log_file);
    uint64_t nums[] = { c->mode, c->window_ms, c->max_body, c->wait_ms,
                        (uint64_t)c->on_unknown_resend, c->late_wait_ms,
                        c->max_response, c->log_level };
    put(&b, nums, sizeof nums);
    return b;
}

/* ---- what a loaded configuration must look like ---- */

static void check_names(char *const *v, size_t n, int header, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]);
        fuzz_check(header ? header_problem(v[i], len) == NULL : is_token(v[i], len),
                   what);
        for (size_t j = 0; j < i; j++)
            fuzz_check(!(strlen(v[j]) == len && span_eq_ci(v[i], len, v[j])), what);
    }
}

static void check_hosts(const struct config *c)
{
    char query[600];

    for (size_t i = 0; i < c->n_hosts; i++) {
        const struct config_host *h = &c->hosts[i];
        const char *name = h->kind == CONFIG_HOST_SUFFIX ? "a." : "";
        fuzz_check(h->name && h->name[0], "host entry without a name");
        for (const char *p = h->name; *p; p++)
            fuzz_check(*p < 'A' || *p > 'Z', "host name not lower case");
        fuzz_check(h->header_index < c->n_header_names, "host header out of range");
        fuzz_check(h->port >= 0 && h->port <= 65535, "host port out of range");
        int n = snprintf(query, sizeof query, "%s%s", name, h->name);
        if (n < 0 || (size_t)n >= sizeof query)
            continue;
        const struct config_host *m =
            config_match_host(c, query, (size_t)n, h->port ? h->port : 80);
        fuzz_check(m != NULL && m <= h, "an enabled host is not matched");
    }
}

static void check_methods(const struct config *c)
{
    fuzz_check(c->n_methods > 0, "no method enabled");
    check_names(c->methods, c->n_methods, 0, "method not a distinct token");
    for (size_t i = 0; i < c->n_methods; i++) {
        for (const char *p = c->methods[i]; *p; p++)
            fuzz_check(*p < 'a' || *p > 'z', "method not upper case");
        fuzz_check(config_method_enabled(c, c->methods[i], strlen(c->methods[i])),
                   "a configured method is not enabled");
    }
}

static void check_fields(const struct config *c)
{
    for (size_t i = 0; i < c->n_ignore_fields; i++) {
        const char *f = c->ignore_fields[i];
        size_t n = strlen(f);
        fuzz_check(n > 0 && !strchr(f, ',') && !is_space(f[0]) && !is_space(f[n - 1]),
                   "ignored field not a trimmed list item");
        for (size_t j = 0; j < i; j++)
            fuzz_check(strcmp(f, c->ignore_fields[j]) != 0, "ignored field twice");
    }
}

static int warned_about(const struct env *e, const char *var)
{
    size_t n = strlen(var), count = 0;

    for (size_t off = 0; off < e->warnings.len;) {
        const char *w = e->warnings.data + off;
        count += strncmp(w, var, n) == 0 && w[n] == '=';
        off += strlen(w) + 1;
    }
    return (int)count;
}

/* A duration or size: the value when it parses (spaces around it aside),
 * else the default and one warning naming the variable. */
static void check_number(const struct env *e, const char *var, int size,
                         uint64_t got, uint64_t def)
{
    const char *v = value_of(e, var);
    uint64_t want = def;
    int ok = 1;

    if (v) {
        const char *t = v;
        size_t n = strlen(v);
        trim(&t, &n);
        char *copy = strndup(t, n);
        fuzz_check(copy != NULL, "out of memory in the harness");
        ok = (size ? config_parse_size(copy, &want) : config_parse_duration(copy, &want)) == 0;
        if (!ok)
            want = def;
        free(copy);
    }
    fuzz_check(got == want, "a number is neither its value nor the default");
    fuzz_check(warned_about(e, var) == !ok, "a refused number not warned once");
}

static void check_string(const struct env *e, const char *var, const char *got)
{
    const char *v = value_of(e, var);
    fuzz_check(v ? got && strcmp(got, v) == 0 : got == NULL, "string not verbatim");
}

static void check_config(const struct config *c, const struct env *e)
{
    fuzz_check(c->n_header_names > 0, "no key header");
    check_names(c->header_names, c->n_header_names, 1, "bad or repeated header name");
    check_hosts(c);
    check_methods(c);
    check_fields(c);
    fuzz_check(c->mode <= CONFIG_MODE_OBSERVE && c->log_level <= CONFIG_LOG_DEBUG &&
               (c->on_unknown_resend == 0 || c->on_unknown_resend == 1),
               "a word setting out of range");
    fuzz_check(c->scope != NULL, "scope is NULL");
    check_string(e, "RETRYSAFE_JOURNAL", c->journal);
    check_string(e, "RETRYSAFE_SECRET", c->secret);
    check_string(e, "RETRYSAFE_LOG_FILE", c->log_file);
    fuzz_check(strcmp(c->scope, value_of(e, "RETRYSAFE_SCOPE") ? value_of(e, "RETRYSAFE_SCOPE")
                                                                 : "") == 0,
               "scope not verbatim");
    check_number(e, "RETRYSAFE_WINDOW", 0, c->window_ms, 24ULL * 3600 * 1000);
    check_number(e, "RETRYSAFE_WAIT", 0, c->wait_ms, 30 * 1000);
    check_number(e, "RETRYSAFE_LATE_WAIT", 0, c->late_wait_ms, 60 * 1000);
    check_number(e, "RETRYSAFE_MAX_BODY", 1, c->max_body, 8ULL << 20);
    check_number(e, "RETRYSAFE_MAX_RESPONSE", 1, c->max_response, 1ULL << 20);
}

/* ---- the runs ---- */

static void parse_values(struct env *e, const char *s, size_t n)
{
    const char *end = s + n;

    memset(e, 0, sizeof *e);
    for (size_t i = 0; i < N_VARS && s <= end && n > 0; i++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *stop = nl ? nl : end;
        /* A NUL ends an environment value where it stands. */
        e->values[i] = strndup(s, (size_t)(stop - s));
        fuzz_check(e->values[i] != NULL, "out of memory in the harness");
        if (!nl)
            break;
        s = nl + 1;
    }
}

static void env_free(struct env *e)
{
    for (size_t i = 0; i < N_VARS; i++)
        free(e->values[i]);
    buf_free(&e->warnings);
}

static int all_zero(const struct config *c)
{
    static const struct config zero;
    return memcmp(c, &zero, sizeof zero) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_rng rng;
    struct env e, again;
    struct config cfg, cfg2;

    fuzz_split_seed(&data, &size, &rng);
    parse_values(&e, (const char *)data, size);
    parse_values(&again, (const char *)data, size);

    fail_at = -1;
    allocations = 0;
    fuzz_check(config_load(&cfg, env_lookup, &e, env_warn, &e) == 0,
               "config_load failed with memory to spare");
    long needed = allocations;
    check_config(&cfg, &e);

    fuzz_check(config_load(&cfg2, env_lookup, &again, env_warn, &again) == 0,
               "config_load failed the second time");
    struct buf a = serialize(&cfg), b = serialize(&cfg2);
    fuzz_same(a.data, a.len, b.data, b.len, "two loads gave two configurations");
    fuzz_same(e.warnings.data, e.warnings.len, again.warnings.data, again.warnings.len,
              "two loads gave other warnings");
    buf_free(&a);
    buf_free(&b);
    config_free(&cfg2);
    config_free(&cfg);
    fuzz_check(all_zero(&cfg), "config_free left something behind");

    /* Every allocation in turn fails (a sample when there are many). */
    long tries = needed < 64 ? needed : 64;
    for (long k = 0; k < tries; k++) {
        fail_at = needed <= 64 ? k : (long)fuzz_below(&rng, (size_t)needed);
        allocations = 0;
        if (config_load(&cfg, env_lookup, &again, NULL, NULL) == 0) {
            config_free(&cfg);
            fuzz_check(0, "config_load succeeded without memory");
        }
        fuzz_check(all_zero(&cfg), "failed config_load left a half-built config");
    }
    fail_at = -1;
    env_free(&e);
    env_free(&again);
    return 0;
}
