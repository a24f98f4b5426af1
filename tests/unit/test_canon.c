/* test_canon.c - canonical JSON and form bodies for fingerprints. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canon.h"
#include "suites.h"

/* The canonical form of body (a C string), as a C string to free, or NULL
 * when canon_body fails. */
static char *canon_n(enum canon_kind kind, const char *body, size_t len,
                     const char *const *ignore, size_t n_ignore)
{
    struct buf out = { 0 };
    if (canon_body(kind, body, len, ignore, n_ignore, &out) < 0) {
        ck_assert_uint_eq(out.len, 0);
        buf_free(&out);
        return NULL;
    }
    char *s = malloc(out.len + 1);
    ck_assert_ptr_nonnull(s);
    if (out.len)
        memcpy(s, out.data, out.len);
    s[out.len] = '\0';
    buf_free(&out);
    return s;
}

static void expect_ig(enum canon_kind kind, const char *body,
                      const char *const *ignore, size_t n_ignore, const char *want)
{
    char *got = canon_n(kind, body, strlen(body), ignore, n_ignore);
    ck_assert_msg(got != NULL, "failed to canonicalise %s", body);
    ck_assert_msg(strcmp(got, want) == 0, "%s -> %s, want %s", body, got, want);
    free(got);
}

static void expect(enum canon_kind kind, const char *body, const char *want)
{
    expect_ig(kind, body, NULL, 0, want);
}

static void expect_fail(enum canon_kind kind, const char *body)
{
    char *got = canon_n(kind, body, strlen(body), NULL, 0);
    ck_assert_msg(got == NULL, "%s should fail, got %s", body, got ? got : "");
}

static void json_is(const char *body, const char *want)
{
    expect(CANON_JSON, body, want);
}

static void json_fails(const char *body)
{
    expect_fail(CANON_JSON, body);
}

static void form_is(const char *body, const char *want)
{
    expect(CANON_FORM, body, want);
}

static void form_fails(const char *body)
{
    expect_fail(CANON_FORM, body);
}

START_TEST(json_regenerated_is_same)
{
    const char *a = "{\"to\":\"bob@example.com\",\"subject\":\"Hi\","
                    "\"body\":{\"text\":\"hello\",\"html\":null},\"cc\":[1,2]}";
    const char *b = "{\n  \"cc\" : [ 1 , 2 ],\n  \"body\": {\"html\": null,\t\"text\": \"hello\"},\r\n"
                    "  \"subject\":\"Hi\", \"to\":\"bob@example.com\" }  \n";
    const char *want = "{\"body\":{\"html\":null,\"text\":\"hello\"},\"cc\":[1,2],"
                       "\"subject\":\"Hi\",\"to\":\"bob@example.com\"}";
    json_is(a, want);
    json_is(b, want);
}
END_TEST

START_TEST(json_keys_sorted_by_unescaped_bytes)
{
    json_is("{\"b\":1,\"ab\":2,\"a\":3}", "{\"a\":3,\"ab\":2,\"b\":1}");
    /* U+0001 (escaped on output) sorts before 'A'; é (C3 A9) after 'z'. */
    json_is("{\"z\":1,\"\\u00e9\":2,\"A\":3,\"\\u0001\":4}",
         "{\"\\u0001\":4,\"A\":3,\"z\":1,\"\xc3\xa9\":2}");
    json_is("{\"\":1,\" \":2}", "{\"\":1,\" \":2}");
    /* Only empty keys and strings: nothing ever lands in the scratch. */
    json_is("{\"\":{\"\":\"\"}}", "{\"\":{\"\":\"\"}}");
    json_fails("{\"\":1,\"\":2}");
}
END_TEST

START_TEST(json_numbers_by_value)
{
    const char *ones[] = { "1", "1.0", "1e0", "10e-1", "0.1e1", "1E+0", "100e-2",
                           "1.000", "0.01e2", "1e-0", "1.0E00" };
    for (size_t i = 0; i < sizeof ones / sizeof *ones; i++)
        json_is(ones[i], "1");
    json_is("2", "2");                     /* 1 and 2 differ */
    json_is("100", "1e2");
    json_is("1.50", "15e-1");
    json_is("-0.5", "-5e-1");
    json_is("0.001", "1e-3");
    json_is("120.034", "120034e-3");
    json_is("1e400", "1e400");             /* exact, no overflow to inf */
    json_is("1e401", "1e401");
    json_is("1e-400", "1e-400");
    json_is("123456789012345678901234567890", "12345678901234567890123456789e1");
    json_is("0.30000000000000004", "30000000000000004e-17"); /* not a double's 0.3 */
    json_is("0.3", "3e-1");
    json_is("1e0000000000000000000000005", "1e5");  /* leading zeros of the exponent */
    json_is("1e999999999999999999", "1e999999999999999999");
    json_fails("1e1000000000000000000");  /* 19 significant exponent digits */
    /* The same values written otherwise: their canonical form would have
     * those 19 digits and not canonicalise again (found by fuzz_canon). */
    json_fails("10e999999999999999999");
    json_fails("0.1e-999999999999999999");
    json_is("0.1e999999999999999999", "1e999999999999999998");
    const char *zeros[] = { "0", "-0", "0.0", "-0.0", "0e10", "-0.000e-5", "0E+99" };
    for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
        json_is(zeros[i], "0");
    json_is("[1,1.0,-0,2.50]", "[1,1,0,25e-1]");
}
END_TEST

START_TEST(json_number_grammar)
{
    const char *bad[] = { "01", "-01", "+1", ".5", "1.", "1.e1", "1e", "1e+", "-",
                          "--1", "0x10", "1 2", "NaN", "-NaN", "Infinity",
                          "-Infinity", "1,", "[1.]", "[.1]" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        json_fails(bad[i]);
}
END_TEST

START_TEST(json_strings_canonical)
{
    json_is("\"\\u00e9\"", "\"\xc3\xa9\"");
    json_is("\"\\u00E9\"", "\"\xc3\xa9\"");
    json_is("\"\xc3\xa9\"", "\"\xc3\xa9\"");
    json_is("\"a\\/b\"", "\"a/b\"");
    json_is("\"\\u0041\\u20ac\"", "\"A\xe2\x82\xac\"");
    /* Short forms for those that have one, \u00xx for the other controls. */
    json_is("\"\\u000a\\u0008\\f\\r\\t\"", "\"\\n\\b\\f\\r\\t\"");
    json_is("\"\\u0001\\u001F\\u0000\"", "\"\\u0001\\u001f\\u0000\"");
    json_is("\"\\u0022\\u005c\\\"\\\\\"", "\"\\\"\\\\\\\"\\\\\"");
    /* DEL and U+2028 stay raw. */
    json_is("\"\\u007f\\u2028\"", "\"\x7f\xe2\x80\xa8\"");
    json_is("\"\"", "\"\"");
}
END_TEST

START_TEST(json_surrogate_pairs)
{
    json_is("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    json_is("\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");
    json_is("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\"");
    json_is("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"");  /* U+10FFFF */
    json_is("\"\\ud800\\udc00\"", "\"\xf0\x90\x80\x80\"");  /* U+10000 */
}
END_TEST

START_TEST(json_bad_strings)
{
    json_fails("\"\\ud83d\"");            /* lone high surrogate */
    json_fails("\"\\ud83dx\"");
    json_fails("\"\\ud83d\\u0041\"");     /* high then not a low */
    json_fails("\"\\ud83d\\ud83d\"");
    json_fails("\"\\ude00\"");            /* lone low */
    json_fails("\"\xff\"");               /* invalid UTF-8 */
    json_fails("\"\xc0\xaf\"");           /* overlong */
    json_fails("\"\xe0\x80\xaf\"");
    json_fails("\"\xed\xa0\x80\"");       /* encoded surrogate */
    json_fails("\"\xe2\x82\"");           /* truncated */
    json_fails("\"\xf4\x90\x80\x80\"");   /* beyond U+10FFFF */
    json_fails("\"\x80\"");               /* stray continuation */
    json_fails("\"a\nb\"");               /* raw control byte */
    json_fails("\"a\tb\"");
    json_fails("\"\\x41\"");              /* unknown escape */
    json_fails("\"\\u12\"");
    json_fails("\"\\u12g4\"");
    json_fails("\"abc");                  /* unterminated */
    json_fails("\"abc\\");
    json_fails("'abc'");                  /* single quotes */
    json_fails("{'a':1}");
    /* A NUL byte inside a string is a raw control byte too. */
    ck_assert_ptr_null(canon_n(CANON_JSON, "\"a\0b\"", 5, NULL, 0));
}
END_TEST

START_TEST(json_arrays_keep_order)
{
    json_is("[1,2,3]", "[1,2,3]");
    json_is("[3,2,1]", "[3,2,1]");
    json_is("[ ]", "[]");
    json_is("{ }", "{}");
    json_is(" [ {\"b\":[],\"a\":{}} , [ [ ] ] ] ", "[{\"a\":{},\"b\":[]},[[]]]");
    json_is("[true,false,null]", "[true,false,null]");
}
END_TEST

START_TEST(json_top_level_scalars)
{
    json_is(" 42 ", "42");
    json_is("\"x\"", "\"x\"");
    json_is("true", "true");
    json_is("\tnull\n", "null");
}
END_TEST

START_TEST(json_invalid)
{
    const char *bad[] = {
        "",  "   ", "{\"a\":1,}", "[1,2,]", "[,1]", "{,}", "{\"a\":1 // c\n}",
        "{\"a\":1 /* c */}", "/* c */ {}", "{\"a\":NaN}", "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":1}", "{a:1}", "{\"a\" 1}", "{\"a\":}", "{\"a\":1",
        "[1", "[1 2]", "{} {}", "{}x", "tru", "True", "nul", "truex",
        "\xef\xbb\xbf{}", "\x0c{}", "{\"a\":1}}", "]", "}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        json_fails(bad[i]);
    /* Duplicates are found inside nested objects too. */
    json_fails("{\"o\":{\"k\":1,\"j\":2,\"k\":3}}");
}
END_TEST

static char *nested(int depth, char open, char close, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * (size_t)depth + n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, open, (size_t)depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, close, (size_t)depth);
    s[2 * depth + n] = '\0';
    return s;
}

START_TEST(json_depth_limit)
{
    char *ok = nested(CANON_MAX_DEPTH, '[', ']', "1");
    json_is(ok, ok);
    free(ok);
    char *deep = nested(CANON_MAX_DEPTH + 1, '[', ']', "1");
    json_fails(deep);
    free(deep);
    /* Objects count the same: 64 levels of {"a":...} pass, 65 fail. */
    struct buf b = { 0 };
    for (int i = 0; i < CANON_MAX_DEPTH + 1; i++) {
        if (i == CANON_MAX_DEPTH) {
            struct buf ok_obj = { 0 };
            buf_append(&ok_obj, b.data, b.len);
            buf_append(&ok_obj, "1", 1);
            for (int k = 0; k < CANON_MAX_DEPTH; k++)
                buf_append(&ok_obj, "}", 1);
            char *got = canon_n(CANON_JSON, ok_obj.data, ok_obj.len, NULL, 0);
            ck_assert_ptr_nonnull(got);
            ck_assert_int_eq(memcmp(got, ok_obj.data, ok_obj.len), 0);
            free(got);
            buf_free(&ok_obj);
        }
        buf_append(&b, "{\"a\":", 5);
    }
    buf_append(&b, "1", 1);
    for (int i = 0; i < CANON_MAX_DEPTH + 1; i++)
        buf_append(&b, "}", 1);
    ck_assert_ptr_null(canon_n(CANON_JSON, b.data, b.len, NULL, 0));
    buf_free(&b);
}
END_TEST

START_TEST(json_ignore_paths)
{
    const char *ig[] = { "nonce", "meta.ts", "a.b.c" };
    expect_ig(CANON_JSON,
              "{\"nonce\":\"x1\",\"to\":\"bob\",\"meta\":{\"ts\":17,\"id\":5},"
              "\"a\":{\"b\":{\"c\":1,\"d\":2},\"c\":3}}",
              ig, 3, "{\"a\":{\"b\":{\"d\":2},\"c\":3},\"meta\":{\"id\":5},\"to\":\"bob\"}");
    /* Two regenerated calls that differ only in ignored fields are the same. */
    expect_ig(CANON_JSON, "{\"to\":\"bob\",\"nonce\":\"other\",\"meta\":{\"id\":5,\"ts\":99},"
                          "\"a\":{\"c\":3,\"b\":{\"d\":2,\"c\":[7]}}}",
              ig, 3, "{\"a\":{\"b\":{\"d\":2},\"c\":3},\"meta\":{\"id\":5},\"to\":\"bob\"}");
    /* A path matches only at its place: "ts" at the top stays, nested
     * "nonce" stays, and a key spelled with a dot is not a path. */
    expect_ig(CANON_JSON, "{\"ts\":1,\"meta\":{\"nonce\":2},\"meta.ts\":3}", ig, 3,
              "{\"meta\":{\"nonce\":2},\"meta.ts\":3,\"ts\":1}");
    /* Arrays end a path. */
    expect_ig(CANON_JSON, "{\"meta\":[{\"ts\":1}],\"x\":[{\"nonce\":2}]}", ig, 3,
              "{\"meta\":[{\"ts\":1}],\"x\":[{\"nonce\":2}]}");
    /* A path to an object drops all of it; escaped keys match unescaped. */
    const char *whole[] = { "meta" };
    expect_ig(CANON_JSON, "{\"m\\u0065ta\":{\"ts\":1},\"k\":0}", whole, 1, "{\"k\":0}");
    /* Dropping every member leaves an empty object; a top-level array is
     * never touched. */
    expect_ig(CANON_JSON, "{\"nonce\":1}", ig, 3, "{}");
    expect_ig(CANON_JSON, "[{\"nonce\":1}]", ig, 3, "[{\"nonce\":1}]");
    /* An ignored value must still parse, and its key still counts. */
    char *got = canon_n(CANON_JSON, "{\"nonce\":[1,],\"a\":1}", 20, ig, 3);
    ck_assert_ptr_null(got);
    got = canon_n(CANON_JSON, "{\"nonce\":1,\"nonce\":2}", 21, ig, 3);
    ck_assert_ptr_null(got);
}
END_TEST

START_TEST(json_many_members)
{
    /* 5000 members in reverse order: sorting and buffer growth. */
    struct buf in = { 0 }, want = { 0 };
    enum { N = 5000 };
    char item[64];
    buf_append(&in, "{", 1);
    for (int i = N - 1; i >= 0; i--) {
        int n = snprintf(item, sizeof item, "%s\"k%05d\" : %d.0", i == N - 1 ? "" : ", ", i, i);
        buf_append(&in, item, (size_t)n);
    }
    buf_append(&in, "}", 1);
    buf_append(&want, "{", 1);
    for (int i = 0; i < N; i++) {
        char num[32];
        int v = i;
        int e = 0;
        while (v && v % 10 == 0)
            v /= 10, e++;
        if (e)
            snprintf(num, sizeof num, "%de%d", v, e);
        else
            snprintf(num, sizeof num, "%d", v);
        int n = snprintf(item, sizeof item, "%s\"k%05d\":%s", i ? "," : "", i, num);
        buf_append(&want, item, (size_t)n);
    }
    buf_append(&want, "}", 1);
    char *got = canon_n(CANON_JSON, in.data, in.len, NULL, 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), want.len);
    ck_assert_int_eq(memcmp(got, want.data, want.len), 0);
    free(got);
    buf_free(&in);
    buf_free(&want);
}
END_TEST

START_TEST(failure_leaves_out_as_it_was)
{
    struct buf out = { 0 };
    buf_append(&out, "prefix", 6);
    ck_assert_int_eq(canon_body(CANON_JSON, "{\"b\":1,\"a\":[1,", 14, NULL, 0, &out), -1);
    ck_assert_uint_eq(out.len, 6);
    ck_assert_int_eq(canon_body(CANON_FORM, "a=%zz", 5, NULL, 0, &out), -1);
    ck_assert_uint_eq(out.len, 6);
    ck_assert_int_eq(canon_body(CANON_JSON, "{\"b\":1,\"a\":2}", 13, NULL, 0, &out), 0);
    ck_assert_uint_eq(out.len, 6 + 13);
    ck_assert_int_eq(memcmp(out.data, "prefix{\"a\":2,\"b\":1}", out.len), 0);
    buf_free(&out);
}
END_TEST

START_TEST(raw_is_copied)
{
    struct buf out = { 0 };
    ck_assert_int_eq(canon_body(CANON_RAW, "{ \"b\":1 }\0x", 11, NULL, 0, &out), 0);
    ck_assert_uint_eq(out.len, 11);
    ck_assert_int_eq(memcmp(out.data, "{ \"b\":1 }\0x", 11), 0);
    buf_free(&out);
}
END_TEST

/* A request without a body hands canon_body NULL and 0 (outbound.c, for a
 * POST with a Content-Type and no body). Found by tests/fuzz/fuzz_canon:
 * the parsers did arithmetic on the NULL pointer, which only a build with
 * -fsanitize=undefined notices, and then it fails this test. */
START_TEST(null_empty_body)
{
    struct buf out = { 0 };
    ck_assert_int_eq(canon_body(CANON_FORM, NULL, 0, NULL, 0, &out), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(canon_body(CANON_JSON, NULL, 0, NULL, 0, &out), -1);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(canon_body(CANON_RAW, NULL, 0, NULL, 0, &out), 0);
    ck_assert_uint_eq(out.len, 0);
    buf_free(&out);
}
END_TEST

START_TEST(form_reordered_is_same)
{
    form_is("to=bob&subject=Hi&amount=100", "amount=100&subject=Hi&to=bob");
    form_is("amount=100&to=bob&subject=Hi", "amount=100&subject=Hi&to=bob");
    form_is("b=1&a=2&ab=3", "a=2&ab=3&b=1");
}
END_TEST

START_TEST(form_encoding_canonical)
{
    form_is("q=hello+world", "q=hello%20world");
    form_is("q=hello%20world", "q=hello%20world");
    form_is("q=a%2bb", "q=a%2Bb");                 /* %2B is '+', not a space */
    form_is("q=a%2Bb", "q=a%2Bb");
    form_is("t=%7e%41-._~", "t=~A-._~");           /* unreserved decoded */
    form_is("p=a/b?c:d@e", "p=a%2Fb%3Fc%3Ad%40e"); /* raw reserved encoded */
    form_is("v=1=2", "v=1%3D2");                   /* split at the first '=' */
    form_is("n=%C3%A9", "n=%C3%A9");
    form_is("n=\xc3\xa9", "n=%C3%A9");
    form_is("my+name=x", "my%20name=x");
    form_is("%61=1", "a=1");
}
END_TEST

START_TEST(form_pairs_edge_cases)
{
    form_is("", "");
    form_is("&&a=1&&b=2&", "a=1&b=2");              /* empty pairs dropped */
    form_is("flag&a=1", "a=1&flag=");               /* no '=': empty value */
    form_is("flag=&a=1", "a=1&flag=");
    form_is("=v&a=1", "=v&a=1");                    /* empty name kept */
    form_is("=&=", "=&=");
    /* Repeated names keep their order: a list, not a set. */
    form_is("tag=b&x=0&tag=a", "tag=b&tag=a&x=0");
    form_is("tag=a&tag=b", "tag=a&tag=b");
}
END_TEST

START_TEST(form_ignore)
{
    const char *ig[] = { "nonce", "ts", "meta.nonce" };
    expect_ig(CANON_FORM, "to=bob&nonce=123&ts=17&amount=5", ig, 3, "amount=5&to=bob");
    expect_ig(CANON_FORM, "ts=99&amount=5&to=bob&nonce=456", ig, 3, "amount=5&to=bob");
    /* Names are compared decoded; a plain name with a dot matches as is. */
    expect_ig(CANON_FORM, "non%63e=1&meta.nonce=2&Nonce=3", ig, 3, "Nonce=3");
    expect_ig(CANON_FORM, "nonce=1", ig, 3, "");
}
END_TEST

START_TEST(form_bad_escapes)
{
    const char *bad[] = { "a=%", "a=%4", "a=%zz", "a=%g0", "a=%0g", "%=1",
                          "a=1&b=%2", "a=%%41" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        form_fails(bad[i]);
    /* Even in an ignored pair. */
    const char *ig[] = { "nonce" };
    ck_assert_ptr_null(canon_n(CANON_FORM, "nonce=%x&a=1", 12, ig, 1));
}
END_TEST

static enum canon_kind kind(const char *ct)
{
    return canon_kind_of(ct, strlen(ct));
}

START_TEST(kind_of_content_type)
{
    ck_assert_int_eq(kind("application/json"), CANON_JSON);
    ck_assert_int_eq(kind("application/json; charset=utf-8"), CANON_JSON);
    ck_assert_int_eq(kind("application/json;charset=UTF-8"), CANON_JSON);
    ck_assert_int_eq(kind(" application/json "), CANON_JSON);
    ck_assert_int_eq(kind("APPLICATION/JSON"), CANON_JSON);
    ck_assert_int_eq(kind("application/vnd.api+json"), CANON_JSON);
    ck_assert_int_eq(kind("application/problem+JSON; charset=utf-8"), CANON_JSON);
    ck_assert_int_eq(kind("application/x-www-form-urlencoded"), CANON_FORM);
    ck_assert_int_eq(kind("Application/X-WWW-Form-Urlencoded; charset=utf-8"), CANON_FORM);
    ck_assert_int_eq(kind("text/plain"), CANON_RAW);
    ck_assert_int_eq(kind("multipart/form-data; boundary=x"), CANON_RAW);
    ck_assert_int_eq(kind("application/jsonx"), CANON_RAW);
    ck_assert_int_eq(kind("application/json-seq"), CANON_RAW);
    ck_assert_int_eq(kind("application/x-ndjson"), CANON_RAW);
    ck_assert_int_eq(kind("+json"), CANON_RAW);
    ck_assert_int_eq(kind("application/+json"), CANON_RAW);
    ck_assert_int_eq(kind("application/json garbage"), CANON_RAW);
    ck_assert_int_eq(kind(""), CANON_RAW);
    ck_assert_int_eq(canon_kind_of(NULL, 0), CANON_RAW);
    /* Only len bytes are looked at. */
    ck_assert_int_eq(canon_kind_of("application/jsonp", 16), CANON_JSON);
}
END_TEST

Suite *canon_suite(void)
{
    Suite *s = suite_create("canon");
    TCase *tc = tcase_create("canon");
    tcase_add_test(tc, json_regenerated_is_same);
    tcase_add_test(tc, json_keys_sorted_by_unescaped_bytes);
    tcase_add_test(tc, json_numbers_by_value);
    tcase_add_test(tc, json_number_grammar);
    tcase_add_test(tc, json_strings_canonical);
    tcase_add_test(tc, json_surrogate_pairs);
    tcase_add_test(tc, json_bad_strings);
    tcase_add_test(tc, json_arrays_keep_order);
    tcase_add_test(tc, json_top_level_scalars);
    tcase_add_test(tc, json_invalid);
    tcase_add_test(tc, json_depth_limit);
    tcase_add_test(tc, json_ignore_paths);
    tcase_add_test(tc, json_many_members);
    tcase_add_test(tc, failure_leaves_out_as_it_was);
    tcase_add_test(tc, raw_is_copied);
    tcase_add_test(tc, null_empty_body);
    tcase_add_test(tc, form_reordered_is_same);
    tcase_add_test(tc, form_encoding_canonical);
    tcase_add_test(tc, form_pairs_edge_cases);
    tcase_add_test(tc, form_ignore);
    tcase_add_test(tc, form_bad_escapes);
    tcase_add_test(tc, kind_of_content_type);
    suite_add_tcase(s, tc);
    return s;
}
