/* test_seen_filter.c - the shared Bloom filter of fingerprints: never a
 * "never seen" for one added, by this mapping or another; a new filter is
 * put in place only once filled; files that are not its own, incomplete
 * or declared invalid are not trusted. */
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

static int fills;

/* What the journal knows: fingerprints 0..99. */
static int fill_hundred(void *ctx, struct seen_filter *f)
{
    (void)ctx;
    char fp[17];
    struct stat st;
    fills++;
    ck_assert_int_ne(stat(path, &st), 0);   /* not in place while filling */
    for (int i = 0; i < 100; i++) {
        fingerprint_of(i, fp);
        seen_filter_add(f, fp);
    }
    return 0;
}

static int fill_fails(void *ctx, struct seen_filter *f)
{
    (void)ctx, (void)f;
    return -1;
}

START_TEST(test_added_are_seen_everywhere)
{
    fills = 0;
    struct seen_filter *a = seen_filter_open(path, fill_hundred, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(fills, 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    struct seen_filter *b = seen_filter_open(path, fill_hundred, NULL);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(fills, 1);             /* the existing one */
    char fp[17];
    for (int i = 0; i < 100; i++) {         /* what the fill added */
        fingerprint_of(i, fp);
        ck_assert_int_eq(seen_filter_maybe(b, fp), 1);
    }
    for (int i = 100; i < 20000; i++) {
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
    ck_assert_int_eq(seen_filter_maybe(NULL, fp), 1);   /* no filter: ask */
}
END_TEST

START_TEST(test_failed_fill_leaves_nothing)
{
    ck_assert_ptr_null(seen_filter_open(path, fill_fails, NULL));
    struct stat st;
    ck_assert_int_ne(stat(path, &st), 0);
    fills = 0;
    struct seen_filter *f = seen_filter_open(path, fill_hundred, NULL);
    ck_assert_ptr_nonnull(f);
    seen_filter_close(f);
}
END_TEST

START_TEST(test_untrusted_files)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "short", 5), 5);
    close(fd);
    fills = 0;
    ck_assert_ptr_null(seen_filter_open(path, fill_hundred, NULL));   /* wrong size */
    ck_assert_int_eq(truncate(path, 4096 + (2 << 20)), 0);
    ck_assert_ptr_null(seen_filter_open(path, fill_hundred, NULL));   /* not complete */
    ck_assert_int_eq(fills, 0);
    ck_assert_int_eq(unlink(path), 0);

    struct seen_filter *f = seen_filter_open(path, fill_hundred, NULL);
    ck_assert_ptr_nonnull(f);
    char fp[17];
    fingerprint_of(500, fp);
    ck_assert_int_eq(seen_filter_maybe(f, fp), 0);
    /* Declared invalid (byte 12: the header's invalid flag): everything
     * may have been seen. */
    fd = open(path, O_WRONLY);
    static const unsigned int one = 1;
    ck_assert_int_eq(pwrite(fd, &one, 4, 12), 4);
    close(fd);
    ck_assert_int_eq(seen_filter_maybe(f, fp), 1);
    seen_filter_close(f);

    ck_assert_int_eq(unlink(path), 0);
    ck_assert_ptr_nonnull(f = seen_filter_open(path, fill_hundred, NULL));
    seen_filter_close(f);
    ck_assert_int_eq(chmod(path, 0622), 0);
    ck_assert_ptr_null(seen_filter_open(path, fill_hundred, NULL));   /* others may write */
    char link[PATH_MAX + 32];
    snprintf(link, sizeof link, "%s/link", dir);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_ptr_null(seen_filter_open(link, fill_hundred, NULL));   /* a link */
}
END_TEST

Suite *seen_filter_suite(void)
{
    Suite *s = suite_create("seen_filter");
    TCase *tc = tcase_create("filter");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_added_are_seen_everywhere);
    tcase_add_test(tc, test_failed_fill_leaves_nothing);
    tcase_add_test(tc, test_untrusted_files);
    suite_add_tcase(s, tc);
    return s;
}
