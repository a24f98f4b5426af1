/* test_key.c - key derivation and authority normalisation.
 *
 * The expected keys were computed independently of key.c with Python:
 *
 *   python3 -c 'import hmac,hashlib,base64,sys
 *   k=lambda m,a,p,s,b,sec=b"test-secret": base64.urlsafe_b64encode(hmac.new(sec,
 *     b"retrysafe key v1\n"+b"".join(len(f).to_bytes(8,"big")+f for f in (m,a,p,s,b)),
 *     hashlib.sha256).digest()[:24]).decode()
 *   print(k(b"POST",b"api.example.com",b"/v1/charges",b"",b"{\"amount\":100}"))'
 *
 * with the arguments shown next to each vector below.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"
#include "suites.h"

#define SECRET "test-secret"
#define BODY "{\"amount\":100}"

/* k(b"POST", b"api.example.com", b"/v1/charges", b"", BODY) */
#define KEY_BASE "APZo7W1sDuunTnFJ3TYBFjjRmpMDpMNX"
/* k(b"POST", b"api.example.com:8080", b"/v1/charges", b"", BODY) */
#define KEY_PORT_8080 "eFTapmOVZXsiljtq6G2oYfcUNpuP3ysq"
/* k(b"POST", b"api.example.com", b"/v1/charges", b"run-42", BODY) */
#define KEY_SCOPE "Dl4piMOXc0fc-gmqZ9zJq5P0Ac2CpX96"
/* k(b"POST", b"api.example.com", b"/v1/charges", b"", b"") */
#define KEY_EMPTY_BODY "39qNAO7I7sIXuzXR4OVq2s7CMgPyxf2Y"
/* k(b"POST", b"api.example.com", b"/upload", b"",
 *   bytes(i % 251 for i in range(1 << 20))) */
#define KEY_MIB "aMcrHSXcovb5PUA4SH2UhSfCY-0a5h5F"
/* k(b"POST", b"[::1]", b"/x", b"", b"hi") */
#define KEY_V6 "x3FTn0tffka_KVEhvFBD1WazJTXANOxH"
/* k(..., sec=b"other") with the KEY_BASE request */
#define KEY_OTHER_SECRET "75lZkB6uNt9o4kYYIgbASvI1Tbq7UtpN"

static struct key_ctx *ctx;

static void setup(void)
{
    ctx = key_ctx_new(SECRET, strlen(SECRET));
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void)
{
    key_ctx_free(ctx);
    ctx = NULL;
}

static struct key_request request(const char *method, const char *authority,
                                  int tls, const char *path, const char *scope,
                                  const char *body)
{
    return (struct key_request){
        .method = method, .method_len = strlen(method),
        .authority = authority, .authority_len = strlen(authority),
        .tls = tls,
        .path = path, .path_len = strlen(path),
        .scope = scope, .scope_len = strlen(scope),
        .body = body, .body_len = strlen(body),
    };
}

static struct key_request base_request(void)
{
    return request("POST", "api.example.com", 0, "/v1/charges", "", BODY);
}

typedef char key_buf[KEY_CHARS + 1];

/* Derives into out; fails the test when derivation does. */
static const char *derive(const struct key_request *req, key_buf out)
{
    ck_assert_int_eq(key_derive(ctx, req, out), 0);
    return out;
}

/* ---- vectors ---- */

START_TEST(test_vector_base)
{
    key_buf k;
    struct key_request r = base_request();
    ck_assert_str_eq(derive(&r, k), KEY_BASE);
}
END_TEST

START_TEST(test_vector_port_kept)
{
    key_buf k;
    struct key_request r = base_request();
    r.authority = "api.example.com:8080";
    r.authority_len = strlen(r.authority);
    ck_assert_str_eq(derive(&r, k), KEY_PORT_8080);
}
END_TEST

START_TEST(test_vector_scope)
{
    key_buf k;
    struct key_request r = base_request();
    r.scope = "run-42";
    r.scope_len = 6;
    ck_assert_str_eq(derive(&r, k), KEY_SCOPE);
}
END_TEST

START_TEST(test_vector_empty_body)
{
    key_buf k;
    struct key_request r = base_request();
    r.body = NULL;
    r.body_len = 0;
    ck_assert_str_eq(derive(&r, k), KEY_EMPTY_BODY);
    r.body = "";
    ck_assert_str_eq(derive(&r, k), KEY_EMPTY_BODY);
}
END_TEST

START_TEST(test_vector_mib_body)
{
    size_t n = 1u << 20;
    unsigned char *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)(i % 251);
    key_buf k;
    struct key_request r = request("POST", "api.example.com", 0, "/upload",
                                   "", "");
    r.body = body;
    r.body_len = n;
    ck_assert_str_eq(derive(&r, k), KEY_MIB);
    free(body);
}
END_TEST

START_TEST(test_vector_ipv6)
{
    key_buf k;
    struct key_request r = request("POST", "[::1]:80", 0, "/x", "", "hi");
    ck_assert_str_eq(derive(&r, k), KEY_V6);
}
END_TEST

START_TEST(test_vector_other_secret)
{
    struct key_ctx *other = key_ctx_new("other", 5);
    char k[KEY_CHARS + 1];
    struct key_request r = base_request();
    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(key_derive(other, &r, k), 0);
    ck_assert_str_eq(k, KEY_OTHER_SECRET);
    key_ctx_free(other);
}
END_TEST

/* ---- properties ---- */

START_TEST(test_same_inputs_same_key)
{
    struct key_request r = base_request();
    char a[KEY_CHARS + 1], b[KEY_CHARS + 1];
    ck_assert_int_eq(key_derive(ctx, &r, a), 0);
    ck_assert_int_eq(key_derive(ctx, &r, b), 0);
    ck_assert_str_eq(a, b);
    /* A second context with the same secret agrees: keys survive restarts. */
    struct key_ctx *again = key_ctx_new(SECRET, strlen(SECRET));
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(key_derive(again, &r, b), 0);
    ck_assert_str_eq(a, b);
    key_ctx_free(again);
}
END_TEST

START_TEST(test_each_field_changes_key)
{
    struct key_request base = base_request();
    key_buf k0, k;
    derive(&base, k0);
    struct key_request r;

    r = base; r.method = "PUT"; r.method_len = 3;
    ck_assert_str_ne(derive(&r, k), k0);
    r = base; r.authority = "api.example.org"; r.authority_len = 15;
    ck_assert_str_ne(derive(&r, k), k0);
    r = base; r.path = "/v1/refunds"; r.path_len = 11;
    ck_assert_str_ne(derive(&r, k), k0);
    r = base; r.path = "/v1/charges?x=1"; r.path_len = 15;
    ck_assert_str_ne(derive(&r, k), k0);
    r = base; r.scope = "a"; r.scope_len = 1;
    ck_assert_str_ne(derive(&r, k), k0);
    r = base; r.body = "{\"amount\":101}"; r.body_len = 14;
    ck_assert_str_ne(derive(&r, k), k0);
}
END_TEST

START_TEST(test_field_boundaries)
{
    /* Without length prefixes these would hash the same bytes. */
    struct key_request a = request("POST", "h", 0, "/x", "", "");
    struct key_request b = request("PO", "h", 0, "ST/x", "", "");
    struct key_request c = request("POST", "h", 0, "/", "x", "");
    struct key_request d = request("POST", "h", 0, "/", "", "x");
    key_buf ka, kb, kc, kd;
    derive(&a, ka);
    derive(&b, kb);
    ck_assert_str_ne(ka, kb);
    derive(&c, kc);
    derive(&d, kd);
    ck_assert_str_ne(kc, kd);
    ck_assert_str_ne(ka, kc);
}
END_TEST

START_TEST(test_default_port_dropped)
{
    struct key_request plain = base_request();
    key_buf k0, tls443, k;
    derive(&plain, k0);
    struct key_request r = plain;

    r.authority = "API.example.com:80";
    r.authority_len = strlen(r.authority);
    ck_assert_str_eq(derive(&r, k), k0);

    r.authority = "api.example.com:";   /* empty port = default */
    r.authority_len = strlen(r.authority);
    ck_assert_str_eq(derive(&r, k), k0);

    r.tls = 1;
    r.authority = "api.example.com:443";
    r.authority_len = strlen(r.authority);
    derive(&r, tls443);
    r.authority = "Api.Example.Com";
    r.authority_len = strlen(r.authority);
    ck_assert_str_eq(derive(&r, k), tls443);

    /* :443 is not the default of plain HTTP, nor :80 of TLS. */
    r.tls = 0;
    r.authority = "api.example.com:443";
    r.authority_len = strlen(r.authority);
    ck_assert_str_ne(derive(&r, k), k0);
    r.tls = 1;
    r.authority = "api.example.com:80";
    r.authority_len = strlen(r.authority);
    ck_assert_str_ne(derive(&r, k), tls443);

    r.tls = 0;
    r.authority = "api.example.com:8080";
    r.authority_len = strlen(r.authority);
    ck_assert_str_eq(derive(&r, k), KEY_PORT_8080);
}
END_TEST

START_TEST(test_key_alphabet_and_length)
{
    char body[16];
    for (int i = 0; i < 500; i++) {
        snprintf(body, sizeof body, "%d", i);
        struct key_request r = request("POST", "h", 0, "/", "", body);
        key_buf k;
        derive(&r, k);
        ck_assert_uint_eq(strlen(k), KEY_CHARS);
        for (size_t j = 0; j < KEY_CHARS; j++) {
            char ch = k[j];
            int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
            ck_assert_msg(ok, "bad character '%c' in key %s", ch, k);
        }
    }
}
END_TEST

START_TEST(test_derive_rejects)
{
    char k[KEY_CHARS + 1];
    struct key_request r = base_request();
    r.authority = "user@api.example.com";
    r.authority_len = strlen(r.authority);
    ck_assert_int_eq(key_derive(ctx, &r, k), -1);
    r = base_request();
    r.body = NULL;      /* NULL with a length is a caller bug, not a body */
    ck_assert_int_eq(key_derive(ctx, &r, k), -1);
    r = base_request();
    ck_assert_int_eq(key_derive(NULL, &r, k), -1);
    ck_assert_int_eq(key_derive(ctx, NULL, k), -1);
    ck_assert_ptr_null(key_ctx_new("", 0));
    ck_assert_ptr_null(key_ctx_new(NULL, 3));
    key_ctx_free(NULL);
}
END_TEST

/* Hooks derive keys from many threads at once, all from one context. */
static void *derive_many(void *arg)
{
    struct key_request r = base_request();
    key_buf k;
    (void)arg;
    for (int i = 0; i < 2000; i++)
        if (key_derive(ctx, &r, k) != 0 || strcmp(k, KEY_BASE) != 0)
            return (void *)1;
    return NULL;
}

START_TEST(test_threads_share_ctx)
{
    pthread_t threads[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, derive_many, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *result;
        ck_assert_int_eq(pthread_join(threads[i], &result), 0);
        ck_assert_ptr_null(result);
    }
}
END_TEST

/* ---- authority ---- */

static const char *normalize(const char *in, int tls)
{
    static char out[KEY_AUTHORITY_MAX + 1];
    int n = key_normalize_authority(in, strlen(in), tls, out, KEY_AUTHORITY_MAX);
    if (n < 0)
        return NULL;
    out[n] = '\0';
    return out;
}

START_TEST(test_normalize_ok)
{
    static const struct { const char *in; int tls; const char *out; } cases[] = {
        {"Example.COM", 0, "example.com"},
        {"example.com:80", 0, "example.com"},
        {"example.com:443", 1, "example.com"},
        {"example.com:443", 0, "example.com:443"},
        {"example.com:80", 1, "example.com:80"},
        {"example.com:8080", 0, "example.com:8080"},
        {"example.com:080", 0, "example.com"},
        {"example.com:08080", 0, "example.com:8080"},
        {"example.com:", 0, "example.com"},
        {"[::1]:80", 0, "[::1]"},
        {"[::1]:", 0, "[::1]"},
        {"[::1]", 1, "[::1]"},
        {"[::1]:8443", 1, "[::1]:8443"},
        {"[2001:DB8::A]:443", 1, "[2001:db8::a]"},
        {"127.0.0.1:80", 0, "127.0.0.1"},
        {"my_host-1.local", 0, "my_host-1.local"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = normalize(cases[i].in, cases[i].tls);
        ck_assert_msg(got && strcmp(got, cases[i].out) == 0,
                      "%s (tls %d) -> %s, want %s", cases[i].in, cases[i].tls,
                      got ? got : "(rejected)", cases[i].out);
    }
}
END_TEST

START_TEST(test_normalize_rejects)
{
    static const char *const bad[] = {
        "", ":80", "[]", "[]:80", "example.com:0", "example.com:65536",
        "example.com:99999999999", "example.com:8o", "example.com:-1",
        "exa mple.com", "example.com\r", "user@example.com", "::1",
        "[::1", "[::1]x", "[::1]:x", "[not-v6]",
        "example.com/path", "a:1:2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(normalize(bad[i], 0) == NULL, "accepted \"%s\"", bad[i]);
    /* An embedded NUL is a control character too. */
    char out[64];
    ck_assert_int_eq(key_normalize_authority("a\0b", 3, 0, out, sizeof out), -1);
}
END_TEST

START_TEST(test_normalize_fits)
{
    char out[11];
    ck_assert_int_eq(key_normalize_authority("example.com", 11, 0, out, 11), 11);
    ck_assert_int_eq(key_normalize_authority("example.com", 11, 0, out, 10), -1);
    ck_assert_int_eq(key_normalize_authority("[::1]:8080", 10, 0, out, 10), 10);
    ck_assert_int_eq(key_normalize_authority("[::1]:8080", 10, 0, out, 9), -1);
    /* Longer than KEY_AUTHORITY_MAX: key_derive refuses rather than cut. */
    char big[KEY_AUTHORITY_MAX + 10];
    memset(big, 'a', sizeof big);
    char k[KEY_CHARS + 1];
    struct key_request r = base_request();
    r.authority = big;
    r.authority_len = sizeof big;
    ck_assert_int_eq(key_derive(ctx, &r, k), -1);
}
END_TEST

START_TEST(test_split)
{
    const char *host;
    size_t len;
    int port;
    ck_assert_int_eq(key_split_authority("Example.com:8080", 16, 80, &host, &len,
                                         &port), 0);
    ck_assert_uint_eq(len, 11);
    ck_assert_int_eq(memcmp(host, "Example.com", 11), 0);
    ck_assert_int_eq(port, 8080);

    ck_assert_int_eq(key_split_authority("example.com", 11, 443, &host, &len,
                                         &port), 0);
    ck_assert_uint_eq(len, 11);
    ck_assert_int_eq(port, 443);

    ck_assert_int_eq(key_split_authority("example.com:", 12, 80, &host, &len,
                                         &port), 0);
    ck_assert_int_eq(port, 80);

    ck_assert_int_eq(key_split_authority("[::1]:8443", 10, 443, &host, &len,
                                         &port), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(host, "::1", 3), 0);
    ck_assert_int_eq(port, 8443);

    ck_assert_int_eq(key_split_authority("[fe80::1]", 9, 80, &host, &len,
                                         &port), 0);
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(port, 80);

    ck_assert_int_eq(key_split_authority("", 0, 80, &host, &len, &port), -1);
    ck_assert_int_eq(key_split_authority("h:x", 3, 80, &host, &len, &port), -1);
    ck_assert_int_eq(key_split_authority("[::1", 4, 80, &host, &len, &port), -1);
}
END_TEST

Suite *key_suite(void)
{
    Suite *s = suite_create("key");
    TCase *vectors = tcase_create("vectors");
    tcase_add_checked_fixture(vectors, setup, teardown);
    tcase_add_test(vectors, test_vector_base);
    tcase_add_test(vectors, test_vector_port_kept);
    tcase_add_test(vectors, test_vector_scope);
    tcase_add_test(vectors, test_vector_empty_body);
    tcase_add_test(vectors, test_vector_mib_body);
    tcase_add_test(vectors, test_vector_ipv6);
    tcase_add_test(vectors, test_vector_other_secret);
    suite_add_tcase(s, vectors);

    TCase *props = tcase_create("properties");
    tcase_add_checked_fixture(props, setup, teardown);
    tcase_add_test(props, test_same_inputs_same_key);
    tcase_add_test(props, test_each_field_changes_key);
    tcase_add_test(props, test_field_boundaries);
    tcase_add_test(props, test_default_port_dropped);
    tcase_add_test(props, test_key_alphabet_and_length);
    tcase_add_test(props, test_derive_rejects);
    tcase_add_test(props, test_threads_share_ctx);
    suite_add_tcase(s, props);

    TCase *auth = tcase_create("authority");
    tcase_add_checked_fixture(auth, setup, teardown);
    tcase_add_test(auth, test_normalize_ok);
    tcase_add_test(auth, test_normalize_rejects);
    tcase_add_test(auth, test_normalize_fits);
    tcase_add_test(auth, test_split);
    suite_add_tcase(s, auth);
    return s;
}
