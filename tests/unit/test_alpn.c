/* test_alpn.c - taking h2 out of an ALPN offer. */
#include <check.h>
#include <string.h>

#include "alpn.h"
#include "suites.h"

static unsigned int filter(const char *protos, unsigned int len, unsigned char *out)
{
    return alpn_without_h2((const unsigned char *)protos, len, out, 64);
}

START_TEST(h2_removed_rest_kept_in_order)
{
    unsigned char out[64];
    unsigned int n = filter("\x02h2\x08http/1.1", 12, out);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(memcmp(out, "\x08http/1.1", 9), 0);
    n = filter("\x08http/1.1\x02h2\x08http/1.0", 21, out);
    ck_assert_uint_eq(n, 18);
    ck_assert_int_eq(memcmp(out, "\x08http/1.1\x08http/1.0", 18), 0);
}
END_TEST

START_TEST(nothing_to_change)
{
    unsigned char out[64];
    ck_assert_uint_eq(filter("\x08http/1.1", 9, out), 0);     /* no h2 */
    ck_assert_uint_eq(filter("\x02h2", 3, out), 0);           /* only h2 */
    ck_assert_uint_eq(filter("\x03h2c\x02h3", 7, out), 0);    /* h2c is not h2 */
    ck_assert_uint_eq(filter("", 0, out), 0);
}
END_TEST

START_TEST(malformed_left_alone)
{
    unsigned char out[64];
    ck_assert_uint_eq(filter("\x02h2\x09http/1.1", 12, out), 0); /* overruns */
    ck_assert_uint_eq(filter("\x00\x02h2", 4, out), 0);          /* empty name */
    unsigned char small[4];
    ck_assert_uint_eq(alpn_without_h2((const unsigned char *)"\x02h2\x08http/1.1", 12,
                                      small, sizeof(small)), 0);
}
END_TEST

Suite *alpn_suite(void)
{
    Suite *s = suite_create("alpn");
    TCase *tc = tcase_create("alpn");
    tcase_add_test(tc, h2_removed_rest_kept_in_order);
    tcase_add_test(tc, nothing_to_change);
    tcase_add_test(tc, malformed_left_alone);
    suite_add_tcase(s, tc);
    return s;
}
