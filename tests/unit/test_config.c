/* test_config.c - RETRYSAFE_* parsing, host matching, durations and sizes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "suites.h"

/* ---- a fake environment and a warning collector ---- */

struct env {
    const char *name;
    const char *value;
};

#define ENV(...) ((const struct env[]){__VA_ARGS__, {NULL, NULL}})

static const char *env_lookup(void *ctx, const char *name)
{
    for (const struct env *e = ctx; e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e->value;
    return NULL;
}

struct warnings {
    int count;
    char last[512];
    char all[8192];
};

static void collect(void *ctx, const char *message)
{
    struct warnings *w = ctx;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", message);
    size_t used = strlen(w->all);
    snprintf(w->all + used, sizeof w->all - used, "%s\n", message);
}

static struct config cfg;
static struct warnings warned;

static void load(const struct env *env)
{
    memset(&warned, 0, sizeof warned);
    ck_assert_int_eq(config_load(&cfg, env_lookup, (void *)env, collect,
                                 &warned), 0);
}

static void teardown(void)
{
    config_free(&cfg);
}

#define NO_ENV ENV({"UNRELATED", "x"})

/* ---- defaults ---- */

static void assert_defaults(const struct config *c)
{
    ck_assert_uint_eq(c->n_hosts, 0);
    ck_assert_uint_eq(c->n_methods, 1);
    ck_assert_str_eq(c->methods[0], "POST");
    ck_assert_uint_eq(c->n_header_names, 1);
    ck_assert_str_eq(c->header_names[0], "Idempotency-Key");
    ck_assert_int_eq(c->mode, CONFIG_MODE_TAG);
    ck_assert_ptr_nonnull(c->scope);
    ck_assert_str_eq(c->scope, "");
    ck_assert_uint_eq(c->window_ms, 24ULL * 3600 * 1000);
    ck_assert_uint_eq(c->n_ignore_fields, 0);
    ck_assert_ptr_null(c->journal);
    ck_assert_uint_eq(c->max_body, 8ULL << 20);
    ck_assert_uint_eq(c->wait_ms, 30000);
    ck_assert_int_eq(c->on_unknown_resend, 0);
    ck_assert_uint_eq(c->late_wait_ms, 60000);
    ck_assert_uint_eq(c->max_response, 1ULL << 20);
    ck_assert_ptr_null(c->secret);
    ck_assert_int_eq(c->log_level, CONFIG_LOG_WARN);
    ck_assert_ptr_null(c->log_file);
}

START_TEST(test_defaults)
{
    load(NO_ENV);
    ck_assert_int_eq(warned.count, 0);
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_defaults_without_lookup)
{
    ck_assert_int_eq(config_load(&cfg, NULL, NULL, NULL, NULL), 0);
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_empty_means_unset)
{
    load(ENV({"RETRYSAFE_HOSTS", ""}, {"RETRYSAFE_METHODS", ""},
             {"RETRYSAFE_HEADER", ""}, {"RETRYSAFE_MODE", ""},
             {"RETRYSAFE_SCOPE", ""}, {"RETRYSAFE_WINDOW", ""},
             {"RETRYSAFE_IGNORE_FIELDS", ""}, {"RETRYSAFE_JOURNAL", ""},
             {"RETRYSAFE_MAX_BODY", ""}, {"RETRYSAFE_WAIT", ""},
             {"RETRYSAFE_ON_UNKNOWN", ""}, {"RETRYSAFE_LATE_WAIT", ""},
             {"RETRYSAFE_MAX_RESPONSE", ""}, {"RETRYSAFE_SECRET", ""},
             {"RETRYSAFE_LOG", ""}, {"RETRYSAFE_LOG_FILE", ""}));
    ck_assert_int_eq(warned.count, 0);
    assert_defaults(&cfg);
}
END_TEST

/* ---- every variable, good ---- */

START_TEST(test_all_good)
{
    load(ENV({"RETRYSAFE_HOSTS", "api.stripe.com"},
             {"RETRYSAFE_METHODS", "post, put ,PATCH"},
             {"RETRYSAFE_HEADER", "X-Request-Id"},
             {"RETRYSAFE_MODE", "guard"},
             {"RETRYSAFE_SCOPE", " run 42 "},
             {"RETRYSAFE_WINDOW", "7d"},
             {"RETRYSAFE_IGNORE_FIELDS", " timestamp, nonce ,,request.id "},
             {"RETRYSAFE_JOURNAL", "redis://localhost:6379/0"},
             {"RETRYSAFE_MAX_BODY", "64KiB"},
             {"RETRYSAFE_WAIT", "250ms"},
             {"RETRYSAFE_ON_UNKNOWN", "resend"},
             {"RETRYSAFE_LATE_WAIT", "15m"},
             {"RETRYSAFE_MAX_RESPONSE", "2MB"},
             {"RETRYSAFE_SECRET", " s3cret "},
             {"RETRYSAFE_LOG", "debug"},
             {"RETRYSAFE_LOG_FILE", "/tmp/retrysafe.log"}));
    ck_assert_msg(warned.count == 0, "unexpected warnings:\n%s", warned.all);
    ck_assert_uint_eq(cfg.n_hosts, 1);
    ck_assert_str_eq(cfg.hosts[0].name, "api.stripe.com");
    ck_assert_uint_eq(cfg.n_methods, 3);
    ck_assert_str_eq(cfg.methods[0], "POST");
    ck_assert_str_eq(cfg.methods[1], "PUT");
    ck_assert_str_eq(cfg.methods[2], "PATCH");
    ck_assert_str_eq(cfg.header_names[0], "X-Request-Id");
    ck_assert_int_eq(cfg.mode, CONFIG_MODE_GUARD);
    ck_assert_str_eq(cfg.scope, " run 42 ");        /* verbatim */
    ck_assert_uint_eq(cfg.window_ms, 7ULL * 24 * 3600 * 1000);
    ck_assert_uint_eq(cfg.n_ignore_fields, 3);
    ck_assert_str_eq(cfg.ignore_fields[0], "timestamp");
    ck_assert_str_eq(cfg.ignore_fields[1], "nonce");
    ck_assert_str_eq(cfg.ignore_fields[2], "request.id");
    ck_assert_str_eq(cfg.journal, "redis://localhost:6379/0");
    ck_assert_uint_eq(cfg.max_body, 64 * 1024);
    ck_assert_uint_eq(cfg.wait_ms, 250);
    ck_assert_int_eq(cfg.on_unknown_resend, 1);
    ck_assert_uint_eq(cfg.late_wait_ms, 15 * 60 * 1000);
    ck_assert_uint_eq(cfg.max_response, 2000000);
    ck_assert_str_eq(cfg.secret, " s3cret ");       /* verbatim */
    ck_assert_int_eq(cfg.log_level, CONFIG_LOG_DEBUG);
    ck_assert_str_eq(cfg.log_file, "/tmp/retrysafe.log");
}
END_TEST

START_TEST(test_words_any_case)
{
    static const struct { const char *mode; enum config_mode want; } modes[] = {
        {"tag", CONFIG_MODE_TAG}, {"GUARD", CONFIG_MODE_GUARD},
        {" Observe ", CONFIG_MODE_OBSERVE},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        load(ENV({"RETRYSAFE_MODE", modes[i].mode}));
        ck_assert_int_eq(warned.count, 0);
        ck_assert_int_eq(cfg.mode, modes[i].want);
        config_free(&cfg);
    }
    static const char *const levels[] = {"off", "error", "WARN", "Info", "debug"};
    for (int i = 0; i < 5; i++) {
        load(ENV({"RETRYSAFE_LOG", levels[i]}));
        ck_assert_int_eq(warned.count, 0);
        ck_assert_int_eq(cfg.log_level, (enum config_log_level)i);
        config_free(&cfg);
    }
    load(ENV({"RETRYSAFE_ON_UNKNOWN", "REFUSE"}));
    ck_assert_int_eq(warned.count, 0);
    ck_assert_int_eq(cfg.on_unknown_resend, 0);
}
END_TEST

/* ---- every variable, bad ---- */

START_TEST(test_all_bad)
{
    load(ENV({"RETRYSAFE_HOSTS", "bad host"},
             {"RETRYSAFE_METHODS", "P OST"},
             {"RETRYSAFE_HEADER", "Idem Key"},
             {"RETRYSAFE_MODE", "gaurd"},
             {"RETRYSAFE_WINDOW", "forever"},
             {"RETRYSAFE_MAX_BODY", "12 parsecs"},
             {"RETRYSAFE_WAIT", "-5s"},
             {"RETRYSAFE_ON_UNKNOWN", "retry"},
             {"RETRYSAFE_LATE_WAIT", "1.5m"},
             {"RETRYSAFE_MAX_RESPONSE", "1TiB"},
             {"RETRYSAFE_LOG", "verbose"}));
    /* One per variable, plus "no valid method" for METHODS. */
    ck_assert_msg(warned.count == 12, "%d warnings:\n%s", warned.count,
                  warned.all);
    ck_assert_uint_eq(cfg.n_hosts, 0);
    ck_assert_uint_eq(cfg.n_methods, 1);
    ck_assert_str_eq(cfg.methods[0], "POST");
    ck_assert_str_eq(cfg.header_names[0], "Idempotency-Key");
    ck_assert_int_eq(cfg.mode, CONFIG_MODE_TAG);
    ck_assert_uint_eq(cfg.window_ms, 24ULL * 3600 * 1000);
    ck_assert_uint_eq(cfg.max_body, 8ULL << 20);
    ck_assert_uint_eq(cfg.wait_ms, 30000);
    ck_assert_int_eq(cfg.on_unknown_resend, 0);
    ck_assert_uint_eq(cfg.late_wait_ms, 60000);
    ck_assert_uint_eq(cfg.max_response, 1ULL << 20);
    ck_assert_int_eq(cfg.log_level, CONFIG_LOG_WARN);

    /* Each warning names its variable and value. */
    static const char *const named[] = {
        "RETRYSAFE_HOSTS entry \"bad host\"", "\"P OST\"",
        "RETRYSAFE_HEADER=\"Idem Key\"", "RETRYSAFE_MODE=\"gaurd\"",
        "RETRYSAFE_WINDOW=\"forever\"", "RETRYSAFE_WAIT=\"-5s\"",
        "RETRYSAFE_ON_UNKNOWN=\"retry\"", "RETRYSAFE_LATE_WAIT=\"1.5m\"",
        "RETRYSAFE_MAX_RESPONSE=\"1TiB\"", "RETRYSAFE_LOG=\"verbose\"",
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        ck_assert_msg(strstr(warned.all, named[i]), "no warning with %s in:\n%s",
                      named[i], warned.all);
}
END_TEST

START_TEST(test_warning_text)
{
    load(ENV({"RETRYSAFE_MAX_BODY", "12 parsecs"}));
    ck_assert_int_eq(warned.count, 1);
    ck_assert_str_eq(warned.last, "RETRYSAFE_MAX_BODY=\"12 parsecs\" is not a "
                     "size (like 512, 64KiB, 8MiB); using 8MiB");
    config_free(&cfg);

    load(ENV({"RETRYSAFE_WAIT", "forever"}));
    ck_assert_int_eq(warned.count, 1);
    ck_assert_str_eq(warned.last, "RETRYSAFE_WAIT=\"forever\" is not a duration "
                     "(like 250ms, 30s, 15m, 24h, 7d); using 30s");
    config_free(&cfg);

    load(ENV({"RETRYSAFE_MODE", "gaurd"}));
    ck_assert_str_eq(warned.last, "RETRYSAFE_MODE=\"gaurd\" is not one of tag, "
                     "guard, observe; using tag");
    config_free(&cfg);

    load(ENV({"RETRYSAFE_HOSTS", "api.example.com:99999"}));
    ck_assert_str_eq(warned.last, "RETRYSAFE_HOSTS entry "
                     "\"api.example.com:99999\" has a bad port (1 to 65535); "
                     "skipping it");
}
END_TEST

START_TEST(test_warnings_without_sink)
{
    /* A NULL warning sink drops warnings and still applies defaults. */
    ck_assert_int_eq(config_load(&cfg, env_lookup,
                                 (void *)ENV({"RETRYSAFE_MODE", "x"}), NULL,
                                 NULL), 0);
    ck_assert_int_eq(cfg.mode, CONFIG_MODE_TAG);
}
END_TEST

/* ---- durations and sizes ---- */

START_TEST(test_parse_duration)
{
    static const struct { const char *in; uint64_t ms; } good[] = {
        {"0", 0}, {"30", 30000}, {"250ms", 250}, {"30s", 30000},
        {"15m", 900000}, {"24h", 86400000}, {"7d", 604800000},
        {"1D", 86400000}, {"10MS", 10}, {"007s", 7000},
        {"18446744073709551615ms", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 12345;
        ck_assert_msg(config_parse_duration(good[i].in, &ms) == 0, "%s rejected",
                      good[i].in);
        ck_assert_msg(ms == good[i].ms, "%s -> %llu", good[i].in,
                      (unsigned long long)ms);
    }
    static const char *const bad[] = {
        "", "s", "-1", "+1s", "1.5h", " 30s", "30s ", "30 s", "30sec", "1h30m",
        "30x", "0x10", "18446744073709551616", "18446744073709552s",
        "213503982334601d",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 777;
        ck_assert_msg(config_parse_duration(bad[i], &ms) == -1, "%s accepted",
                      bad[i]);
        ck_assert_uint_eq(ms, 777);
    }
    uint64_t ms;
    ck_assert_int_eq(config_parse_duration(NULL, &ms), -1);
}
END_TEST

START_TEST(test_parse_size)
{
    static const struct { const char *in; uint64_t bytes; } good[] = {
        {"0", 0}, {"512", 512}, {"512b", 512}, {"64KiB", 65536},
        {"64k", 65536}, {"64kb", 64000}, {"64KB", 64000}, {"8MiB", 8388608},
        {"8M", 8388608}, {"8mib", 8388608}, {"8MB", 8000000},
        {"1GiB", 1073741824}, {"1G", 1073741824}, {"1GB", 1000000000},
        {"17179869183GiB", 17179869183ULL << 30},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t b = 12345;
        ck_assert_msg(config_parse_size(good[i].in, &b) == 0, "%s rejected",
                      good[i].in);
        ck_assert_msg(b == good[i].bytes, "%s -> %llu", good[i].in,
                      (unsigned long long)b);
    }
    static const char *const bad[] = {
        "", "KiB", "-1", "1.5MiB", "8 MiB", "12 parsecs", "1TiB", "1Ki",
        "1KiBs", " 1", "18446744073709551616", "17179869184GiB",
        "18446744073709551615k",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t b = 777;
        ck_assert_msg(config_parse_size(bad[i], &b) == -1, "%s accepted",
                      bad[i]);
        ck_assert_uint_eq(b, 777);
    }
}
END_TEST

START_TEST(test_values_trimmed)
{
    load(ENV({"RETRYSAFE_WAIT", " 5s "}, {"RETRYSAFE_MAX_BODY", "\t1MiB\n"},
             {"RETRYSAFE_HEADER", " X-Key "}));
    ck_assert_int_eq(warned.count, 0);
    ck_assert_uint_eq(cfg.wait_ms, 5000);
    ck_assert_uint_eq(cfg.max_body, 1 << 20);
    ck_assert_str_eq(cfg.header_names[0], "X-Key");
}
END_TEST

/* ---- hosts ---- */

START_TEST(test_hosts_parsed)
{
    load(ENV({"RETRYSAFE_HOSTS",
              " API.Example.com , api.example.com:8443,*.Stripe.com, *,"
              "[::1]:8080,[2001:DB8::1], fe80::1 ,, 10.0.0.1:80 ,"
              "*.internal:9000,*:8081"}));
    ck_assert_msg(warned.count == 0, "unexpected warnings:\n%s", warned.all);
    static const struct {
        enum config_host_kind kind; const char *name; int port;
    } want[] = {
        {CONFIG_HOST_EXACT, "api.example.com", 0},
        {CONFIG_HOST_EXACT, "api.example.com", 8443},
        {CONFIG_HOST_SUFFIX, "stripe.com", 0},
        {CONFIG_HOST_ANY, "*", 0},
        {CONFIG_HOST_EXACT, "::1", 8080},
        {CONFIG_HOST_EXACT, "2001:db8::1", 0},
        {CONFIG_HOST_EXACT, "fe80::1", 0},
        {CONFIG_HOST_EXACT, "10.0.0.1", 80},
        {CONFIG_HOST_SUFFIX, "internal", 9000},
        {CONFIG_HOST_ANY, "*", 8081},
    };
    ck_assert_uint_eq(cfg.n_hosts, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < cfg.n_hosts; i++) {
        ck_assert_msg(cfg.hosts[i].kind == want[i].kind, "entry %zu kind", i);
        ck_assert_str_eq(cfg.hosts[i].name, want[i].name);
        ck_assert_int_eq(cfg.hosts[i].port, want[i].port);
        ck_assert_uint_eq(cfg.hosts[i].header_index, 0);
    }
}
END_TEST

START_TEST(test_hosts_invalid_skipped)
{
    static const char *const bad[] = {
        "api.example.com:0", "api.example.com:65536", "api.example.com:",
        "api.example.com:http", ":8080", "*.", "*.:80", "bad host",
        "bad/host", "user@host", "api.*.com", "**.com", ".example.com",
        "[::1", "[::1]x", "[]", "[::1]:", "[example.com]", "fe80::zz",
        "host=", "host=Bad Header", "host=Content-Length", "=X-Key",
        "host=A=B",
    };
    char list[1024] = "good.example.com";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcat(list, ",");
        strcat(list, bad[i]);
    }
    load(ENV({"RETRYSAFE_HOSTS", list}));
    ck_assert_msg(warned.count == (int)(sizeof bad / sizeof bad[0]),
                  "%d warnings:\n%s", warned.count, warned.all);
    ck_assert_uint_eq(cfg.n_hosts, 1);
    ck_assert_str_eq(cfg.hosts[0].name, "good.example.com");
    ck_assert_uint_eq(cfg.n_header_names, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char quoted[128];
        snprintf(quoted, sizeof quoted, "entry \"%s\"", bad[i]);
        ck_assert_msg(strstr(warned.all, quoted), "no warning names %s",
                      quoted);
    }
}
END_TEST

START_TEST(test_per_host_headers)
{
    load(ENV({"RETRYSAFE_HEADER", "Idempotency-Key"},
             {"RETRYSAFE_HOSTS",
              "api.paypal.com=PayPal-Request-Id, api.stripe.com,"
              "sandbox.paypal.com = paypal-request-id,"
              "api.other.com=IDEMPOTENCY-KEY, x.com:8443=X-Key"}));
    ck_assert_msg(warned.count == 0, "unexpected warnings:\n%s", warned.all);
    ck_assert_uint_eq(cfg.n_header_names, 3);
    ck_assert_str_eq(cfg.header_names[0], "Idempotency-Key");
    ck_assert_str_eq(cfg.header_names[1], "PayPal-Request-Id");
    ck_assert_str_eq(cfg.header_names[2], "X-Key");
    ck_assert_uint_eq(cfg.n_hosts, 5);
    ck_assert_str_eq(cfg.hosts[0].name, "api.paypal.com");
    ck_assert_uint_eq(cfg.hosts[0].header_index, 1);
    ck_assert_uint_eq(cfg.hosts[1].header_index, 0);
    ck_assert_uint_eq(cfg.hosts[2].header_index, 1);   /* case-insensitive */
    ck_assert_uint_eq(cfg.hosts[3].header_index, 0);
    ck_assert_str_eq(cfg.hosts[4].name, "x.com");
    ck_assert_int_eq(cfg.hosts[4].port, 8443);
    ck_assert_uint_eq(cfg.hosts[4].header_index, 2);
}
END_TEST

START_TEST(test_header_bad)
{
    static const char *const bad[] = {
        "Idem Key", "Idem:Key", "Key\"", "Content-Length", "transfer-encoding",
        "Host",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load(ENV({"RETRYSAFE_HEADER", bad[i]}));
        ck_assert_msg(warned.count == 1, "%s: %d warnings", bad[i],
                      warned.count);
        ck_assert_str_eq(cfg.header_names[0], "Idempotency-Key");
        config_free(&cfg);
    }
    load(ENV({"RETRYSAFE_HEADER", "X_Weird.Token!~"}));
    ck_assert_int_eq(warned.count, 0);
    ck_assert_str_eq(cfg.header_names[0], "X_Weird.Token!~");
}
END_TEST

static const struct config_host *match(const char *host, int port)
{
    return config_match_host(&cfg, host, strlen(host), port);
}

START_TEST(test_match_table)
{
    load(ENV({"RETRYSAFE_HOSTS",
              "api.example.com, pinned.example.com:8443, *.stripe.com,"
              "[::1]:8080, 2001:db8::1, api.paypal.com=PayPal-Request-Id"}));
    ck_assert_int_eq(warned.count, 0);
    static const struct {
        const char *host; int port; const char *entry; /* NULL: no match */
    } cases[] = {
        {"api.example.com", 443, "api.example.com"},
        {"API.EXAMPLE.COM", 80, "api.example.com"},
        {"api.example.com.evil", 443, NULL},
        {"xapi.example.com", 443, NULL},
        {"example.com", 443, NULL},
        {"pinned.example.com", 8443, "pinned.example.com"},
        {"pinned.example.com", 443, NULL},
        {"api.stripe.com", 443, "stripe.com"},
        {"a.b.Stripe.COM", 443, "stripe.com"},
        {"stripe.com", 443, NULL},          /* *.suffix needs a label */
        {".stripe.com", 443, NULL},
        {"evilstripe.com", 443, NULL},
        {"::1", 8080, "::1"},
        {"::1", 80, NULL},
        {"2001:DB8::1", 443, "2001:db8::1"},
        {"api.paypal.com", 443, "api.paypal.com"},
        {"", 80, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct config_host *h = match(cases[i].host, cases[i].port);
        if (!cases[i].entry)
            ck_assert_msg(h == NULL, "%s:%d matched %s", cases[i].host,
                          cases[i].port, h ? h->name : "");
        else
            ck_assert_msg(h && strcmp(h->name, cases[i].entry) == 0,
                          "%s:%d matched %s, want %s", cases[i].host,
                          cases[i].port, h ? h->name : "nothing",
                          cases[i].entry);
    }
    ck_assert_uint_eq(match("api.paypal.com", 443)->header_index, 1);
    /* host_len, not NUL: a prefix of a longer buffer. */
    ck_assert_ptr_nonnull(config_match_host(&cfg, "api.example.com:443", 15,
                                            443));
}
END_TEST

START_TEST(test_match_any_and_order)
{
    load(ENV({"RETRYSAFE_HOSTS", "special.com:8080=X-Special, *:8080, *"}));
    ck_assert_int_eq(warned.count, 0);
    ck_assert_ptr_eq(match("special.com", 8080), &cfg.hosts[0]);
    ck_assert_ptr_eq(match("special.com", 80), &cfg.hosts[2]);
    ck_assert_ptr_eq(match("other.com", 8080), &cfg.hosts[1]);
    ck_assert_ptr_eq(match("anything.at.all", 1), &cfg.hosts[2]);
    ck_assert_ptr_eq(match("::1", 443), &cfg.hosts[2]);
}
END_TEST

START_TEST(test_match_none)
{
    load(NO_ENV);
    ck_assert_ptr_null(match("api.example.com", 443));
    ck_assert_ptr_null(config_match_host(NULL, "x", 1, 80));
}
END_TEST

/* ---- methods ---- */

START_TEST(test_methods)
{
    load(ENV({"RETRYSAFE_METHODS", " post,Put, DELETE ,,P@TCH,post,PATCH"}));
    ck_assert_int_eq(warned.count, 1);
    ck_assert_ptr_nonnull(strstr(warned.last, "\"P@TCH\""));
    ck_assert_uint_eq(cfg.n_methods, 4);
    ck_assert_str_eq(cfg.methods[0], "POST");
    ck_assert_str_eq(cfg.methods[1], "PUT");
    ck_assert_str_eq(cfg.methods[2], "DELETE");
    ck_assert_str_eq(cfg.methods[3], "PATCH");
    ck_assert(config_method_enabled(&cfg, "POST", 4));
    ck_assert(config_method_enabled(&cfg, "PATCH", 5));
    ck_assert(config_method_enabled(&cfg, "POSTX", 4));    /* length given */
    ck_assert(!config_method_enabled(&cfg, "post", 4));    /* case matters */
    ck_assert(!config_method_enabled(&cfg, "GET", 3));
    ck_assert(!config_method_enabled(&cfg, "POS", 3));
    ck_assert(!config_method_enabled(&cfg, "POSTS", 5));
}
END_TEST

START_TEST(test_methods_none_valid)
{
    load(ENV({"RETRYSAFE_METHODS", "P OST, ,G[ET"}));
    ck_assert_int_eq(warned.count, 3);
    ck_assert_ptr_nonnull(strstr(warned.last, "no valid method; using POST"));
    ck_assert_uint_eq(cfg.n_methods, 1);
    ck_assert(config_method_enabled(&cfg, "POST", 4));

    config_free(&cfg);
    load(ENV({"RETRYSAFE_METHODS", " , "}));
    ck_assert_int_eq(warned.count, 1);
    ck_assert(config_method_enabled(&cfg, "POST", 4));
}
END_TEST

/* ---- freeing ---- */

START_TEST(test_free_safe)
{
    struct config zero;
    memset(&zero, 0, sizeof zero);
    config_free(&zero);
    config_free(NULL);

    /* Partially filled, as config_load leaves it midway. */
    struct config part;
    memset(&part, 0, sizeof part);
    part.methods = malloc(sizeof *part.methods);
    part.methods[0] = strdup("POST");
    part.n_methods = 1;
    part.scope = strdup("");
    config_free(&part);
    ck_assert_ptr_null(part.methods);

    load(ENV({"RETRYSAFE_HOSTS", "a.com=X-A"}, {"RETRYSAFE_SECRET", "s"}));
    config_free(&cfg);
    config_free(&cfg);   /* twice is fine: free zeroes */
    ck_assert_uint_eq(cfg.n_hosts, 0);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *vars = tcase_create("variables");
    tcase_add_checked_fixture(vars, NULL, teardown);
    tcase_add_test(vars, test_defaults);
    tcase_add_test(vars, test_defaults_without_lookup);
    tcase_add_test(vars, test_empty_means_unset);
    tcase_add_test(vars, test_all_good);
    tcase_add_test(vars, test_words_any_case);
    tcase_add_test(vars, test_all_bad);
    tcase_add_test(vars, test_warning_text);
    tcase_add_test(vars, test_warnings_without_sink);
    tcase_add_test(vars, test_values_trimmed);
    tcase_add_test(vars, test_free_safe);
    suite_add_tcase(s, vars);

    TCase *numbers = tcase_create("numbers");
    tcase_add_test(numbers, test_parse_duration);
    tcase_add_test(numbers, test_parse_size);
    suite_add_tcase(s, numbers);

    TCase *hosts = tcase_create("hosts");
    tcase_add_checked_fixture(hosts, NULL, teardown);
    tcase_add_test(hosts, test_hosts_parsed);
    tcase_add_test(hosts, test_hosts_invalid_skipped);
    tcase_add_test(hosts, test_per_host_headers);
    tcase_add_test(hosts, test_header_bad);
    tcase_add_test(hosts, test_match_table);
    tcase_add_test(hosts, test_match_any_and_order);
    tcase_add_test(hosts, test_match_none);
    suite_add_tcase(s, hosts);

    TCase *methods = tcase_create("methods");
    tcase_add_checked_fixture(methods, NULL, teardown);
    tcase_add_test(methods, test_methods);
    tcase_add_test(methods, test_methods_none_valid);
    suite_add_tcase(s, methods);
    return s;
}
