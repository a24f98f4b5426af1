/* test_redis_url.c - redis:// journal locations: what each part means, and
 * every malformed one refused without quoting its password. */
#include <check.h>
#include <string.h>

#include "redis_url.h"
#include "suites.h"

static struct redis_url parsed(const char *location)
{
    struct redis_url u;
    char err[300] = "";
    ck_assert_msg(redis_url_parse(location, &u, err, sizeof(err)) == 0, "%s: %s",
                  location, err);
    return u;
}

static void refused(const char *location, const char *why)
{
    struct redis_url u;
    char err[300] = "";
    ck_assert_msg(redis_url_parse(location, &u, err, sizeof(err)) == -1, "%s accepted",
                  location);
    ck_assert_msg(strstr(err, why) != NULL, "%s: \"%s\" lacks \"%s\"", location, err, why);
    ck_assert_msg(strstr(err, "s3cr3t") == NULL, "%s: the password is quoted: %s",
                  location, err);
}

START_TEST(test_defaults)
{
    struct redis_url u = parsed("redis://cache.internal");
    ck_assert_str_eq(u.host, "cache.internal");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "");
    u = parsed("redis://127.0.0.1:7000/");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 0);
}
END_TEST

START_TEST(test_every_part)
{
    struct redis_url u = parsed("REDISS://agent:pa%40ss%3Aw@10.0.0.5:6380/3");
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.user, "agent");
    ck_assert_str_eq(u.password, "pa@ss:w");
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);
    /* A password alone, and one holding a raw '@': the last '@' ends it. */
    u = parsed("redis://:p@ss@h:1");
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.host, "h");
    u = parsed("redis://[::1]:6390/15");
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 6390);
    ck_assert_int_eq(u.db, 15);
    u = parsed("redis://[fe80::1]");
    ck_assert_int_eq(u.port, 6379);
}
END_TEST

START_TEST(test_refused)
{
    refused("http://h:1", "not a redis://");
    refused("redis://", "no host");
    refused("redis://:6379", "no host");
    refused("redis://h:0", "port");
    refused("redis://h:65536", "port");
    refused("redis://h:12x", "port");
    refused("redis://h:", "port");
    refused("redis://h:1/x", "database");
    refused("redis://h:1/-1", "database");
    refused("redis://h:1?db=2", "query");
    refused("redis://h:1#f", "query");
    refused("redis://s3cr3t@h", "need a ':'");
    refused("redis://u:@h", "empty password");
    refused("redis://u:s3cr3t%4@h", "bad or too long");
    refused("redis://u:s3cr3t%00@h", "bad or too long");
    refused("redis://[::1", "IPv6");
    refused("redis://[]:1", "IPv6");
    refused("redis://[::1]x", "IPv6");
    refused("redis://h%20x:1", "bad character");
    char long_host[400] = "redis://";
    memset(long_host + 8, 'a', 300);
    refused(long_host, "too long");
}
END_TEST

START_TEST(test_describe_leaves_out_credentials)
{
    char out[320];
    struct redis_url u = parsed("redis://u:s3cr3t@[::1]:6390/2");
    redis_url_describe(&u, out, sizeof(out));
    ck_assert_str_eq(out, "redis://[::1]:6390/2");
    u = parsed("redis://:s3cr3t@h");
    redis_url_describe(&u, out, sizeof(out));
    ck_assert_str_eq(out, "redis://h:6379");
}
END_TEST

Suite *redis_url_suite(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_part);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_describe_leaves_out_credentials);
    suite_add_tcase(s, tc);
    return s;
}
