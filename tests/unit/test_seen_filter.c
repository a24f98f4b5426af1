/* test_seen_filter.c - the shared Bloom filter of fingerprints: never a
 * "never seen" for one added, by this mapping or another; refuses files
 * that are not its own. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scratch.h"
#include "seen_filter.h"
#include "suites.h"

static char dir[PATH_MAX], path[PATH_MAX + 32];

static void setup(void)
{
    scratch_make(dir, "seen");
    snprintf(path, sizeof path, "%s/journal.db-seen", dir);
}

static void teardown(void)
{
    scratch_remove(dir);
}

static void fingerprint_of(int i, char out[17])
{
    /* Spread like the HMAC fingerprints they stand for. */
    unsigned long long v = 0x9e3779b97f4a7c15ull * (unsigned long long)(i + 1);
    snprintf(out, 17, "%016llx", v ^ (v >> 29));
}

START_TEST(test_added_are_seen_everywhere)
{
    int created = -1;
    struct seen_filter *a = seen_filter_open(path, &created);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(created, 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    struct seen_filter *b = seen_filter_open(path, &created);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(created, 0);
    char fp[17];
    for (int i = 0; i < 20000; i++) {
        fingerprint_of(i, fp);
        seen_filter_add(a, fp);
    }
    int false_positives = 0;
    for (int i = 0; i < 20000; i++) {
        fingerprint_of(i, fp);
        ck_assert_int_eq(seen_filter_maybe(b, fp), 1);   /* through the other mapping */
        fingerprint_of(i + 1000000, fp);
        false_positives += seen_filter_maybe(b, fp);
    }
    ck_assert_int_lt(false_positives, 20);   /* ~1e-6 expected at this fill */
    seen_filter_close(a);
    seen_filter_close(b);
    /* The bits live in the file. */
    struct seen_filter *c = seen_filter_open(path, &created);
    fingerprint_of(7, fp);
    ck_assert_int_eq(seen_filter_maybe(c, fp), 1);
    seen_filter_close(c);
    ck_assert_int_eq(seen_filter_maybe(NULL, fp), 1);   /* no filter: ask */
}
END_TEST

START_TEST(test_refuses_foreign_files)
{
    int created = 0;
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "short", 5), 5);
    close(fd);
    ck_assert_ptr_null(seen_filter_open(path, &created));   /* wrong size */
    ck_assert_int_eq(chmod(path, 0622), 0);
    ck_assert_int_eq(truncate(path, 2 << 20), 0);
    ck_assert_ptr_null(seen_filter_open(path, &created));   /* others may write */
    char link[PATH_MAX + 32];
    snprintf(link, sizeof link, "%s/link", dir);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_ptr_null(seen_filter_open(link, &created));   /* a link */
}
END_TEST

Suite *seen_filter_suite(void)
{
    Suite *s = suite_create("seen_filter");
    TCase *tc = tcase_create("filter");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_added_are_seen_everywhere);
    tcase_add_test(tc, test_refuses_foreign_files);
    suite_add_tcase(s, tc);
    return s;
}
