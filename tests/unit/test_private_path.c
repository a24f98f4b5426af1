/* test_private_path.c - which directories may hold the user's private
 * files: owners, world- and group-writable ones, the sticky bit, links. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "location.h"
#include "private_path.h"
#include "scratch.h"
#include "suites.h"

#define NOBODY 65534   /* an unprivileged uid for tests run as root */

static char base[PATH_MAX];   /* a fresh mkdtemp directory per test, 0700 */

static void setup(void)
{
    scratch_make(base, "private");
}

static void teardown(void)
{
    scratch_remove(base);
}

/* base/name made with mode (whatever the umask); its path in out. */
static void make_dir(char out[PATH_MAX], const char *name, mode_t mode)
{
    pathf(out, "%s/%s", base, name);
    ck_assert_int_eq(mkdir(out, 0700), 0);
    ck_assert_int_eq(chmod(out, mode), 0);
}

static void dir_ok(const char *dir)
{
    char err[512] = "";
    ck_assert_msg(private_path_check_dir(dir, err, sizeof err) == 0, "%s: %s", dir, err);
}

static void file_ok(const char *file)
{
    char err[512] = "";
    ck_assert_msg(private_path_check_file(file, err, sizeof err) == 0, "%s: %s", file, err);
}

/* Refused, with a reason that contains want. */
static void file_refused(const char *file, const char *want)
{
    char err[512] = "";
    errno = 12345;
    ck_assert_int_eq(private_path_check_file(file, err, sizeof err), -1);
    ck_assert_int_eq(errno, 12345);
    ck_assert_msg(strstr(err, want), "%s: reason \"%s\" lacks \"%s\"", file, err, want);
}

START_TEST(test_own_directories)
{
    char file[PATH_MAX], missing[PATH_MAX];
    dir_ok(base);
    dir_ok("/");
    pathf(file, "%s/journal.db", base);
    file_ok(file);
    /* Not made yet: its nearest existing ancestor is what counts. */
    pathf(missing, "%s/a/b/c", base);
    dir_ok(missing);
    pathf(file, "%s/a/b/c/journal.db", base);
    file_ok(file);
    /* A bare name: in the current directory. */
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(base), 0);
    file_ok("journal.db");
    ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

START_TEST(test_world_writable)
{
    char ww[PATH_MAX], file[PATH_MAX], below[PATH_MAX], want[PATH_MAX];
    make_dir(ww, "ww", 0777);
    pathf(want, "directory %s is writable by every user and has no sticky bit", ww);
    pathf(file, "%s/journal.db", ww);
    file_refused(file, want);
    /* Any directory above counts, existing or not yet. */
    pathf(below, "%s/own", ww);
    ck_assert_int_eq(mkdir(below, 0700), 0);
    pathf(file, "%s/own/journal.db", ww);
    file_refused(file, want);
    pathf(file, "%s/not/yet/journal.db", ww);
    file_refused(file, want);

    /* Like /tmp: the sticky bit keeps others from renaming our entries. */
    ck_assert_int_eq(chmod(ww, 01777), 0);
    pathf(file, "%s/own/journal.db", ww);
    file_ok(file);
}
END_TEST

/* A group-writable directory of root's, seen by an unprivileged user. */
static int group_writable_as_other(const char *dir)
{
    char file[PATH_MAX + 16], err[512] = "";
    snprintf(file, sizeof file, "%s/journal.db", dir);
    if (private_path_check_file(file, err, sizeof err) != -1 ||
        !strstr(err, "belongs to root and is writable by group")) {
        fprintf(stderr, "%s: \"%s\"\n", file, err);
        return 1;
    }
    return 0;
}

START_TEST(test_group_writable)
{
    char gw[PATH_MAX], file[PATH_MAX];
    /* The user's own: umask 002 with a private group per user. */
    make_dir(gw, "gw", 0770);
    pathf(file, "%s/journal.db", gw);
    file_ok(file);
    if (geteuid() != 0)
        return;   /* only root can look at it as another user */
    /* Root's, to anyone else: shared with the whole group. */
    ck_assert_int_eq(chmod(base, 0755), 0);
    ck_assert_int_eq(chmod(gw, 0775), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(3);
        _exit(group_writable_as_other(gw));
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* With the sticky bit it is fine for root's too. */
    ck_assert_int_eq(chmod(gw, 01775), 0);
    file_ok(file);
}
END_TEST

START_TEST(test_other_owner)
{
    char other[PATH_MAX], file[PATH_MAX], want[PATH_MAX];
    if (geteuid() != 0)
        return;   /* only root can give a directory away */
    make_dir(other, "other", 0700);
    ck_assert_int_eq(chown(other, NOBODY, NOBODY), 0);
    pathf(want, "directory %s belongs to uid 65534, neither to uid 0 nor to root", other);
    pathf(file, "%s/journal.db", other);
    file_refused(file, want);
    pathf(file, "%s/sub/journal.db", other);
    file_refused(file, want);
}
END_TEST

START_TEST(test_links_resolved)
{
    char ww[PATH_MAX], good[PATH_MAX], link[PATH_MAX], file[PATH_MAX], want[PATH_MAX];
    make_dir(ww, "ww", 0777);
    make_dir(good, "good", 0700);
    /* The directory reached counts, not the name of the link. */
    pathf(link, "%s/to-ww", base);
    ck_assert_int_eq(symlink(ww, link), 0);
    pathf(file, "%s/journal.db", link);
    pathf(want, "directory %s is writable", ww);
    file_refused(file, want);
    pathf(link, "%s/to-good", base);
    ck_assert_int_eq(symlink(good, link), 0);
    pathf(file, "%s/journal.db", link);
    file_ok(file);
}
END_TEST

/* Links are followed one by one, relative and nested ones too; one of
 * another user's is refused, wherever it leads. */
START_TEST(test_other_users_links)
{
    char good[PATH_MAX], link[PATH_MAX], theirs[PATH_MAX], file[PATH_MAX], want[PATH_MAX];
    make_dir(good, "good", 0700);
    pathf(link, "%s/relative", base);
    ck_assert_int_eq(symlink("good", link), 0);
    pathf(file, "%s/relative/../relative/journal.db", base);
    file_ok(file);
    if (geteuid() != 0)
        return;   /* only root can give a link away */
    pathf(theirs, "%s/theirs", base);
    ck_assert_int_eq(symlink(good, theirs), 0);
    ck_assert_int_eq(lchown(theirs, NOBODY, NOBODY), 0);
    pathf(want, "link %s belongs to uid 65534, neither to uid 0 nor to root", theirs);
    pathf(file, "%s/journal.db", theirs);
    file_refused(file, want);
    /* Reached through a link of our own, relative, then absolute. */
    pathf(link, "%s/mine", base);
    ck_assert_int_eq(symlink("theirs", link), 0);
    pathf(file, "%s/mine/journal.db", base);
    file_refused(file, want);
    pathf(link, "%s/mine-absolute", base);
    ck_assert_int_eq(symlink(theirs, link), 0);
    pathf(file, "%s/mine-absolute/sub/journal.db", base);
    file_refused(file, want);
}
END_TEST

/* The journal's form of the check: a location with a scheme is no file. */
START_TEST(test_journal_location)
{
    char ww[PATH_MAX], file[PATH_MAX], want[PATH_MAX], err[512] = "";
    make_dir(ww, "ww", 0777);
    pathf(file, "%s/journal.db", ww);
    ck_assert_int_eq(location_journal_private(file, err, sizeof err), -1);
    pathf(want, "refusing journal %s: directory %s is writable", file, ww);
    ck_assert_msg(strstr(err, want), "\"%s\" lacks \"%s\"", err, want);
    ck_assert_int_eq(location_journal_private("redis://127.0.0.1/0", err, sizeof err), 0);
    pathf(file, "%s/redis://x", ww);   /* a path, whatever it contains */
    ck_assert_int_eq(location_journal_private(file, err, sizeof err), -1);
}
END_TEST

START_TEST(test_not_a_directory)
{
    char plain[PATH_MAX], file[PATH_MAX], want[PATH_MAX];
    pathf(plain, "%s/plain", base);
    int fd = open(plain, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    pathf(file, "%s/journal.db", plain);
    pathf(want, "%s is not a directory", plain);
    file_refused(file, want);
}
END_TEST

Suite *private_path_suite(void)
{
    Suite *s = suite_create("private_path");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_own_directories);
    tcase_add_test(tc, test_world_writable);
    tcase_add_test(tc, test_group_writable);
    tcase_add_test(tc, test_other_owner);
    tcase_add_test(tc, test_other_users_links);
    tcase_add_test(tc, test_links_resolved);
    tcase_add_test(tc, test_journal_location);
    tcase_add_test(tc, test_not_a_directory);
    suite_add_tcase(s, tc);
    return s;
}
