/* test_guard.c - replayed answers, final statuses and 409 refusals. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "guard.h"
#include "suites.h"

#define KEY "Yk3_pQz8Lw0aB7cD-eF1gH2iJ3kL4mN5"

/* What out holds before each call: a call appends, never overwrites. */
static const char before[] = "earlier bytes|";

/* guard_replay of recorded (a C string) appended after `before`, as a C
 * string to free (the part after `before`), or NULL when it fails; a
 * failure must leave out's length as it was. */
static char *replay(const char *recorded)
{
    struct buf out = { 0 };
    ck_assert_int_eq(buf_append(&out, before, strlen(before)), 0);
    int r = guard_replay(recorded, strlen(recorded), &out);
    ck_assert_uint_ge(out.len, strlen(before));
    ck_assert(memcmp(out.data, before, strlen(before)) == 0);
    char *s = NULL;
    if (r == 0) {
        size_t n = out.len - strlen(before);
        s = malloc(n + 1);
        ck_assert_ptr_nonnull(s);
        memcpy(s, out.data + strlen(before), n);
        s[n] = '\0';
    } else {
        ck_assert_int_eq(r, -1);
        ck_assert_uint_eq(out.len, strlen(before));
    }
    buf_free(&out);
    return s;
}

static void replay_is(const char *recorded, const char *want)
{
    char *got = replay(recorded);
    ck_assert_msg(got != NULL, "replay failed for %s", recorded);
    ck_assert_msg(strcmp(got, want) == 0, "%s\n->\n%s\nwant\n%s", recorded, got, want);
    free(got);
}

static void replay_fails(const char *recorded)
{
    char *got = replay(recorded);
    ck_assert_msg(got == NULL, "%s should fail, got %s", recorded, got ? got : "");
}

START_TEST(replay_content_length)
{
    replay_is("HTTP/1.1 201 Created\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 27\r\n"
              "\r\n"
              "{\"id\":\"ch_1\",\"amount\":4200}",
              "HTTP/1.1 201 Created\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 27\r\n"
              "Connection: close\r\n"
              "Idempotent-Replayed: true\r\n"
              "\r\n"
              "{\"id\":\"ch_1\",\"amount\":4200}");
    /* No headers at all, no body; and an HTTP/1.0 answer. */
    replay_is("HTTP/1.1 204 No Content\r\n\r\n",
              "HTTP/1.1 204 No Content\r\nConnection: close\r\n"
              "Idempotent-Replayed: true\r\n\r\n");
    replay_is("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
              "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
              "Idempotent-Replayed: true\r\n\r\nok");
}
END_TEST

START_TEST(replay_chunked_body_untouched)
{
    /* The body holds an empty line, a "Connection" trailer and a line that
     * looks like a status line: none of it is the head, all of it stays. */
    const char *body = "8\r\nab\r\n\r\ncd\r\n"
                       "11\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "0\r\n"
                       "Digest: sha-256=abc\r\n"
                       "Connection: keep-alive\r\n"
                       "\r\n";
    char recorded[512], want[512];
    snprintf(recorded, sizeof recorded, "HTTP/1.1 200 OK\r\n"
             "Transfer-Encoding: chunked\r\nTrailer: Digest\r\n\r\n%s", body);
    snprintf(want, sizeof want, "HTTP/1.1 200 OK\r\n"
             "Transfer-Encoding: chunked\r\nTrailer: Digest\r\n"
             "Connection: close\r\nIdempotent-Replayed: true\r\n\r\n%s", body);
    replay_is(recorded, want);
}
END_TEST

START_TEST(replay_drops_keep_alive)
{
    replay_is("HTTP/1.1 200 OK\r\n"
              "Date: Sat, 28 Nov 2026 03:04:05 GMT\r\n"
              "Connection: keep-alive\r\n"
              "Content-Length: 0\r\n"
              "Keep-Alive: timeout=5\r\n"
              "Proxy-Connection: keep-alive\r\n"
              "Server: test\r\n"
              "\r\n",
              "HTTP/1.1 200 OK\r\n"
              "Date: Sat, 28 Nov 2026 03:04:05 GMT\r\n"
              "Content-Length: 0\r\n"
              "Server: test\r\n"
              "Connection: close\r\n"
              "Idempotent-Replayed: true\r\n"
              "\r\n");
    /* A Connection: close of the server's own is replaced, not doubled. */
    replay_is("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye",
              "HTTP/1.1 200 OK\r\nConnection: close\r\n"
              "Idempotent-Replayed: true\r\n\r\nbye");
}
END_TEST

START_TEST(replay_names_case_insensitive)
{
    replay_is("HTTP/1.1 200 OK\r\n"
              "connection: Keep-Alive\r\n"
              "KEEP-ALIVE: max=3\r\n"
              "proxy-CONNECTION: keep-alive\r\n"
              "Connection : keep-alive\r\n"      /* invalid, but a client may take it */
              "Connection-Id: 7\r\n"             /* other names starting alike stay */
              "X-Connection: a\r\n"
              "Keep-Alive-Ish: b\r\n"
              "\r\n",
              "HTTP/1.1 200 OK\r\n"
              "Connection-Id: 7\r\n"
              "X-Connection: a\r\n"
              "Keep-Alive-Ish: b\r\n"
              "Connection: close\r\n"
              "Idempotent-Replayed: true\r\n"
              "\r\n");
}
END_TEST

START_TEST(replay_line_endings)
{
    replay_is("HTTP/1.1 200 OK\n"
              "Content-Length: 3\n"
              "Connection: keep-alive\n"
              "\n"
              "a\r\n",
              "HTTP/1.1 200 OK\n"
              "Content-Length: 3\n"
              "Connection: close\n"
              "Idempotent-Replayed: true\n"
              "\n"
              "a\r\n");
    /* Mixed: added lines follow the status line; every other line keeps
     * its own ending, the empty line included. */
    replay_is("HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\n",
              "HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\nConnection: close\r\n"
              "Idempotent-Replayed: true\r\n\n");
    replay_is("HTTP/1.1 200 OK\nA: 1\r\n\r\n",
              "HTTP/1.1 200 OK\nA: 1\r\nConnection: close\n"
              "Idempotent-Replayed: true\n\r\n");
}
END_TEST

START_TEST(replay_folded_headers)
{
    replay_is("HTTP/1.1 200 OK\r\n"
              "X-Note: first\r\n"
              "  second\r\n"
              "\tthird\r\n"
              "Connection: keep-alive,\r\n"
              " Upgrade\r\n"
              "\t, close\r\n"
              "Keep-Alive: timeout=5,\n"
              " max=100\n"
              "Content-Length: 0\r\n"
              "X-After: yes\r\n"
              " folded too\r\n"
              "\r\n",
              "HTTP/1.1 200 OK\r\n"
              "X-Note: first\r\n"
              "  second\r\n"
              "\tthird\r\n"
              "Content-Length: 0\r\n"
              "X-After: yes\r\n"
              " folded too\r\n"
              "Connection: close\r\n"
              "Idempotent-Replayed: true\r\n"
              "\r\n");
}
END_TEST

START_TEST(replay_incomplete_head_fails)
{
    replay_fails("");
    replay_fails("HTTP/1.1 200 OK");
    replay_fails("HTTP/1.1 200 OK\r\n");
    replay_fails("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
    replay_fails("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r");
    replay_fails("HTTP/1.1 200 OK\r\nA: b\r\n \r\n");   /* a fold is not empty */
}
END_TEST

START_TEST(replay_not_http1_fails)
{
    replay_fails("HTTP/2 200\r\ncontent-length: 0\r\n\r\n");
    replay_fails("HTTP/1\r\n\r\n");
    replay_fails("http/1.1 200 OK\r\n\r\n");
    replay_fails("\r\nHTTP/1.1 200 OK\r\n\r\n");
    replay_fails(" HTTP/1.1 200 OK\r\n\r\n");
    replay_fails("garbage\r\n\r\n");
    replay_fails("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
}
END_TEST

START_TEST(status_final)
{
    static const struct { int status, final; } cases[] = {
        { 100, 0 }, { 101, 0 }, { 199, 0 }, { 200, 1 }, { 201, 1 }, { 204, 1 },
        { 302, 1 }, { 304, 1 }, { 400, 1 }, { 404, 1 }, { 408, 0 }, { 409, 0 },
        { 410, 1 }, { 422, 1 }, { 425, 0 }, { 429, 0 }, { 499, 1 }, { 500, 0 },
        { 503, 0 }, { 599, 0 }, { 600, 0 }, { 0, 0 }, { -1, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ck_assert_msg(guard_status_is_final(cases[i].status) == cases[i].final,
                      "status %d: want %d", cases[i].status, cases[i].final);
}
END_TEST

/* The refusal everything below starts from: 2026-11-29T03:04:05.123Z. */
static struct guard_refusal_info info(enum guard_refusal why)
{
    struct guard_refusal_info in = {
        .why = why, .key = KEY, .method = "POST", .host = "api.example.com",
        .path = "/v1/charges", .first_ms = INT64_C(1795921445123), .attempts = 2,
    };
    return in;
}

/* A refusal split into its head and body, each a C string to free. */
struct answer {
    char *head, *body;
};

/* guard_refusal appended after `before`; checks that the head ends where the
 * first empty line is and that its Content-Length is the body's length. */
static struct answer refuse(const struct guard_refusal_info *in)
{
    struct buf out = { 0 };
    ck_assert_int_eq(buf_append(&out, before, strlen(before)), 0);
    ck_assert_int_eq(guard_refusal(in, &out), 0);
    ck_assert(memcmp(out.data, before, strlen(before)) == 0);
    const char *msg = out.data + strlen(before);
    size_t len = out.len - strlen(before);
    ck_assert_msg(memchr(msg, '\0', len) == NULL, "a NUL in the refusal");
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len && !end; i++)
        if (memcmp(msg + i, "\r\n\r\n", 4) == 0)
            end = msg + i + 4;
    ck_assert_ptr_nonnull(end);
    struct answer a = { strndup(msg, (size_t)(end - msg)),
                        strndup(end, len - (size_t)(end - msg)) };
    ck_assert(a.head && a.body);
    const char *cl = strstr(a.head, "\r\nContent-Length: ");
    ck_assert_ptr_nonnull(cl);
    ck_assert_uint_eq(strtoul(cl + 18, NULL, 10), strlen(a.body));
    buf_free(&out);
    return a;
}

static void answer_free(struct answer *a)
{
    free(a->head);
    free(a->body);
}

static void head_is(const struct answer *a, const char *kind)
{
    char want[512];
    snprintf(want, sizeof want, "HTTP/1.1 409 Conflict\r\n"
             "Content-Type: application/problem+json\r\n"
             "Content-Length: %zu\r\n"
             "Connection: close\r\n"
             "Retrysafe-Refused: %s\r\n"
             "Idempotency-Key: " KEY "\r\n"
             "\r\n", strlen(a->body), kind);
    ck_assert_str_eq(a->head, want);
}

START_TEST(refusal_unknown_outcome)
{
    struct guard_refusal_info in = info(GUARD_UNKNOWN_OUTCOME);
    struct answer a = refuse(&in);
    head_is(&a, "unknown-outcome");
    ck_assert_uint_eq(strlen(a.body), 807);
    ck_assert_str_eq(a.body,
        "{\"type\":\"tag:retrysafe,2026:unknown-outcome\","
        "\"title\":\"An earlier attempt of this request may already have succeeded\","
        "\"status\":409,"
        "\"detail\":\"POST /v1/charges on api.example.com was first sent at "
        "2026-11-29T03:04:05.123Z (2 attempts so far), and the answer to an earlier "
        "attempt never arrived, so the server may already have done it.\","
        "\"idempotency_key\":\"" KEY "\","
        "\"request\":{\"method\":\"POST\",\"host\":\"api.example.com\","
        "\"path\":\"/v1/charges\"},"
        "\"first_attempt_at\":\"2026-11-29T03:04:05.123Z\","
        "\"attempts\":2,"
        "\"may_have_succeeded\":true,"
        "\"next_steps\":[\"Check the resource's state on the server before retrying\","
        "\"If it did not happen, run `retrysafe forget " KEY "` to allow one more "
        "attempt\","
        "\"Or set RETRYSAFE_ON_UNKNOWN=resend to resend requests whose outcome is "
        "unknown\"]}\n");
    answer_free(&a);
}
END_TEST

START_TEST(refusal_in_flight)
{
    struct guard_refusal_info in = info(GUARD_IN_FLIGHT);
    in.attempts = 1;
    in.owner_pid = 4242;
    in.waited_ms = 30000;
    struct answer a = refuse(&in);
    head_is(&a, "in-flight");
    ck_assert_str_eq(a.body,
        "{\"type\":\"tag:retrysafe,2026:in-flight\","
        "\"title\":\"An earlier attempt of this request is still in flight\","
        "\"status\":409,"
        "\"detail\":\"POST /v1/charges on api.example.com was first sent at "
        "2026-11-29T03:04:05.123Z (1 attempt so far), and an earlier attempt "
        "(process 4242) still had no answer after this retry waited 30000 ms.\","
        "\"idempotency_key\":\"" KEY "\","
        "\"request\":{\"method\":\"POST\",\"host\":\"api.example.com\","
        "\"path\":\"/v1/charges\"},"
        "\"first_attempt_at\":\"2026-11-29T03:04:05.123Z\","
        "\"attempts\":1,"
        "\"may_have_succeeded\":true,"
        "\"owner_pid\":4242,"
        "\"waited_ms\":30000,"
        "\"next_steps\":[\"Wait and retry later: the first attempt is still running\","
        "\"Or raise RETRYSAFE_WAIT to wait longer for it\"]}\n");
    answer_free(&a);

    /* An owner nobody knows is null, and the sentence names none. */
    in.owner_pid = 0;
    a = refuse(&in);
    head_is(&a, "in-flight");
    ck_assert_ptr_nonnull(strstr(a.body, ", and an earlier attempt still had no answer "
                                         "after this retry waited 30000 ms.\""));
    ck_assert_ptr_nonnull(strstr(a.body, ",\"owner_pid\":null,\"waited_ms\":30000,"));
    answer_free(&a);
}
END_TEST

START_TEST(refusal_too_large)
{
    struct guard_refusal_info in = info(GUARD_TOO_LARGE);
    in.attempts = 1;
    in.status = 201;
    struct answer a = refuse(&in);
    head_is(&a, "too-large");
    ck_assert_str_eq(a.body,
        "{\"type\":\"tag:retrysafe,2026:too-large\","
        "\"title\":\"This request already succeeded, but its answer was too large to "
        "replay\","
        "\"status\":409,"
        "\"detail\":\"POST /v1/charges on api.example.com was first sent at "
        "2026-11-29T03:04:05.123Z (1 attempt so far), and the server answered it with "
        "status 201, but that answer was too large to keep for replay.\","
        "\"idempotency_key\":\"" KEY "\","
        "\"request\":{\"method\":\"POST\",\"host\":\"api.example.com\","
        "\"path\":\"/v1/charges\"},"
        "\"first_attempt_at\":\"2026-11-29T03:04:05.123Z\","
        "\"attempts\":1,"
        "\"succeeded\":true,"
        "\"original_status\":201,"
        "\"next_steps\":[\"Read the resource's state from the server instead: the "
        "answer was over RETRYSAFE_MAX_RESPONSE\","
        "\"Or run `retrysafe forget " KEY "` to send it once more, knowing that the "
        "server will do it again\"]}\n");
    ck_assert_ptr_null(strstr(a.body, "may_have_succeeded"));
    answer_free(&a);
}
END_TEST

START_TEST(refusal_escapes_request)
{
    struct guard_refusal_info in = info(GUARD_UNKNOWN_OUTCOME);
    in.path = "/a\"b\\c\nd\x01" "e\x1f\x7f\xc3\xa9/";
    in.host = "h\"\r\n:1";
    struct answer a = refuse(&in);
    head_is(&a, "unknown-outcome");
    ck_assert_ptr_nonnull(strstr(a.body,
        "\"request\":{\"method\":\"POST\",\"host\":\"h\\\"\\u000d\\u000a:1\","
        "\"path\":\"/a\\\"b\\\\c\\u000ad\\u0001e\\u001f\x7f\xc3\xa9/\"},"));
    ck_assert_ptr_nonnull(strstr(a.body,
        "\"detail\":\"POST /a\\\"b\\\\c\\u000ad\\u0001e\\u001f\x7f\xc3\xa9/ on "
        "h\\\"\\u000d\\u000a:1 was first sent at "));
    /* Nothing from the request reaches the head or breaks the body's line. */
    ck_assert_ptr_null(strstr(a.head, "/a"));
    ck_assert_ptr_eq(strchr(a.body, '\n'), a.body + strlen(a.body) - 1);
    ck_assert_ptr_null(strchr(a.body, '\r'));
    answer_free(&a);
}
END_TEST

START_TEST(refusal_times)
{
    /* The member, and what the detail sentence says: never 1970 for "none". */
    static const struct { int64_t ms; const char *json, *text; } cases[] = {
        { 1, "\"1970-01-01T00:00:00.001Z\"", "at 1970-01-01T00:00:00.001Z" },
        { INT64_C(1795921445123), "\"2026-11-29T03:04:05.123Z\"",
          "at 2026-11-29T03:04:05.123Z" },
        { INT64_C(1795835045123), "\"2026-11-28T03:04:05.123Z\"",
          "at 2026-11-28T03:04:05.123Z" },
        { INT64_C(1795921445007), "\"2026-11-29T03:04:05.007Z\"",
          "at 2026-11-29T03:04:05.007Z" },
        { INT64_C(253402300799999), "\"9999-12-31T23:59:59.999Z\"",
          "at 9999-12-31T23:59:59.999Z" },
        { 0, "null", "at an unknown time" },          /* the journal's "none" */
        { -1, "null", "at an unknown time" },
        { INT64_C(253402300800000), "null", "at an unknown time" },  /* year 10000 */
        { INT64_MAX, "null", "at an unknown time" },
        { INT64_MIN, "null", "at an unknown time" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct guard_refusal_info in = info(GUARD_UNKNOWN_OUTCOME);
        in.first_ms = cases[i].ms;
        struct answer a = refuse(&in);
        char member[64], sentence[96];
        snprintf(member, sizeof member, ",\"first_attempt_at\":%s,", cases[i].json);
        snprintf(sentence, sizeof sentence, " was first sent %s (2 attempts so far), ",
                 cases[i].text);
        ck_assert_msg(strstr(a.body, member) && strstr(a.body, sentence),
                      "%lld: want %s and %s in %s", (long long)cases[i].ms, member,
                      sentence, a.body);
        answer_free(&a);
    }
}
END_TEST

START_TEST(refusal_bad_kind_leaves_out)
{
    struct guard_refusal_info in = info((enum guard_refusal)3);
    struct buf out = { 0 };
    ck_assert_int_eq(buf_append(&out, before, strlen(before)), 0);
    ck_assert_int_eq(guard_refusal(&in, &out), -1);
    ck_assert_uint_eq(out.len, strlen(before));
    buf_free(&out);
}
END_TEST

Suite *guard_suite(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("guard");
    tcase_add_test(tc, replay_content_length);
    tcase_add_test(tc, replay_chunked_body_untouched);
    tcase_add_test(tc, replay_drops_keep_alive);
    tcase_add_test(tc, replay_names_case_insensitive);
    tcase_add_test(tc, replay_line_endings);
    tcase_add_test(tc, replay_folded_headers);
    tcase_add_test(tc, replay_incomplete_head_fails);
    tcase_add_test(tc, replay_not_http1_fails);
    tcase_add_test(tc, status_final);
    tcase_add_test(tc, refusal_unknown_outcome);
    tcase_add_test(tc, refusal_in_flight);
    tcase_add_test(tc, refusal_too_large);
    tcase_add_test(tc, refusal_escapes_request);
    tcase_add_test(tc, refusal_times);
    tcase_add_test(tc, refusal_bad_kind_leaves_out);
    suite_add_tcase(s, tc);
    return s;
}
