/* test_secret.c - the secret file: creation, reuse, races, refusals. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secret.h"
#include "scratch.h"
#include "suites.h"

static char base[PATH_MAX];   /* a fresh mkdtemp directory per test */
static char dir[PATH_MAX];    /* base/state: where the secret lives */

static void setup(void)
{
    scratch_make(base, "secret");
    pathf(dir, "%s/state", base);
}

static void teardown(void)
{
    scratch_remove(base);
}

static void path_in(char *out, const char *d, const char *name)
{
    pathf(out, "%s/%s", d, name);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void write_file(const char *path, const char *text, size_t len,
                       mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Loads the secret or fails the test with the reason. */
static char *load_ok(const char *d)
{
    char err[512];
    char *secret = NULL;
    int rc = secret_load_or_create(d, &secret, err, sizeof err);
    ck_assert_msg(rc == 0, "secret_load_or_create: %s", err);
    ck_assert_ptr_nonnull(secret);
    return secret;
}

/* Expects a refusal whose reason contains want. */
static void load_refused(const char *d, const char *want)
{
    char err[512] = "";
    char *secret = (char *)"untouched";
    ck_assert_int_eq(secret_load_or_create(d, &secret, err, sizeof err), -1);
    ck_assert_ptr_null(secret);
    ck_assert_msg(strstr(err, want), "reason \"%s\" lacks \"%s\"", err, want);
}

/* ---- directories ---- */

START_TEST(test_make_dir)
{
    char deep[PATH_MAX];
    pathf(deep, "%s/a/b/c", base);
    ck_assert_int_eq(chmod(base, 0755), 0);
    ck_assert_int_eq(secret_make_dir(deep), 0);
    ck_assert_uint_eq(mode_of(deep), 0700);
    pathf(deep, "%s/a/b", base);
    ck_assert_uint_eq(mode_of(deep), 0700);
    pathf(deep, "%s/a", base);
    ck_assert_uint_eq(mode_of(deep), 0700);
    ck_assert_uint_eq(mode_of(base), 0755);     /* existing parent untouched */

    /* Again, and with a trailing slash and doubled slashes. */
    pathf(deep, "%s//a/b/c/", base);
    ck_assert_int_eq(secret_make_dir(deep), 0);
}
END_TEST

START_TEST(test_make_dir_fails)
{
    char file[PATH_MAX], under[PATH_MAX];
    path_in(file, base, "file");
    write_file(file, "x", 1, 0600);
    errno = 0;
    ck_assert_int_eq(secret_make_dir(file), -1);
    ck_assert_int_eq(errno, ENOTDIR);
    pathf(under, "%s/sub/dir", file);
    ck_assert_int_eq(secret_make_dir(under), -1);
    ck_assert_int_eq(errno, ENOTDIR);
    ck_assert_int_eq(secret_make_dir(""), -1);
    ck_assert_int_eq(secret_make_dir(NULL), -1);
}
END_TEST

START_TEST(test_state_dir)
{
    char out[PATH_MAX];
    ck_assert_int_eq(setenv("XDG_STATE_HOME", "/xdg/state", 1), 0);
    ck_assert_int_eq(setenv("HOME", "/home/someone", 1), 0);
    ck_assert_int_eq(secret_state_dir(out, sizeof out), 0);
    ck_assert_str_eq(out, "/xdg/state/retrysafe");

    /* Relative XDG_STATE_HOME is invalid per the XDG spec: ignored. */
    ck_assert_int_eq(setenv("XDG_STATE_HOME", "relative/state", 1), 0);
    ck_assert_int_eq(secret_state_dir(out, sizeof out), 0);
    ck_assert_str_eq(out, "/home/someone/.local/state/retrysafe");

    ck_assert_int_eq(unsetenv("XDG_STATE_HOME"), 0);
    ck_assert_int_eq(secret_state_dir(out, sizeof out), 0);
    ck_assert_str_eq(out, "/home/someone/.local/state/retrysafe");

    /* Too small a buffer is an error, not a cut path. */
    ck_assert_int_eq(secret_state_dir(out, 10), -1);

    /* No HOME: the password database's. */
    ck_assert_int_eq(unsetenv("HOME"), 0);
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_dir && pw->pw_dir[0] == '/') {
        char want[PATH_MAX];
        pathf(want, "%s/.local/state/retrysafe", pw->pw_dir);
        ck_assert_int_eq(secret_state_dir(out, sizeof out), 0);
        ck_assert_str_eq(out, want);
    }
}
END_TEST

/* ---- creating and reading ---- */

START_TEST(test_create)
{
    char path[PATH_MAX], text[128];
    char *secret = load_ok(dir);   /* dir does not exist yet */

    ck_assert_uint_eq(strlen(secret), 64);
    for (int i = 0; i < 64; i++)
        ck_assert_msg((secret[i] >= '0' && secret[i] <= '9') ||
                      (secret[i] >= 'a' && secret[i] <= 'f'),
                      "not lowercase hex: %s", secret);
    ck_assert_uint_eq(mode_of(dir), 0700);
    path_in(path, dir, "secret");
    ck_assert_uint_eq(mode_of(path), 0600);

    /* The file holds the secret and a newline. */
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ssize_t n = read(fd, text, sizeof text);
    close(fd);
    ck_assert_int_eq(n, 65);
    ck_assert_int_eq(memcmp(text, secret, 64), 0);
    ck_assert_int_eq(text[64], '\n');

    /* Only the secret is left behind: no temp files. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(d);
    ck_assert_int_eq(entries, 1);
    free(secret);
}
END_TEST

START_TEST(test_reuse)
{
    char *first = load_ok(dir);
    char *second = load_ok(dir);
    ck_assert_str_eq(first, second);
    free(first);
    free(second);

    /* Each creation is random. */
    char other[PATH_MAX];
    path_in(other, base, "other");
    first = load_ok(dir);
    second = load_ok(other);
    ck_assert_str_ne(first, second);
    free(first);
    free(second);
}
END_TEST

START_TEST(test_race)
{
    enum { N = 8 };
    int go[2], results[2];
    pid_t pids[N];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(results), 0);

    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            char c, *secret = NULL, err[256], line[65];
            close(go[1]);
            /* Wait for the start signal so all children race together. */
            (void)!read(go[0], &c, 1);
            if (secret_load_or_create(dir, &secret, err, sizeof err) < 0 ||
                strlen(secret) != 64)
                _exit(1);
            memcpy(line, secret, 64);
            line[64] = '\n';
            _exit(write(results[1], line, 65) == 65 ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);           /* EOF: every child starts now */
    close(results[1]);

    for (int i = 0; i < N; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child %d failed", i);
    }
    char all[N * 65];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof all && (n = read(results[0], all + got,
                                         sizeof all - got)) > 0)
        got += (size_t)n;
    close(results[0]);
    ck_assert_uint_eq(got, sizeof all);

    char *mine = load_ok(dir);
    for (int i = 0; i < N; i++)
        ck_assert_msg(memcmp(all + 65 * i, mine, 64) == 0,
                      "child %d got another secret", i);
    free(mine);
}
END_TEST

START_TEST(test_newline_stripped)
{
    static const struct { const char *text; const char *secret; } cases[] = {
        {"abc\n", "abc"},
        {"abc", "abc"},
        {"abc\n\n", "abc\n"},        /* exactly one newline goes */
        {"pass phrase\n", "pass phrase"},
    };
    char path[PATH_MAX];
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(path, dir, "secret");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text, strlen(cases[i].text), 0600);
        char *secret = load_ok(dir);
        ck_assert_str_eq(secret, cases[i].secret);
        free(secret);
    }
}
END_TEST

START_TEST(test_length_limits)
{
    char path[PATH_MAX], text[300];
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(path, dir, "secret");
    memset(text, 'x', sizeof text);

    text[256] = '\n';
    write_file(path, text, 257, 0600);      /* 256 bytes and a newline */
    char *secret = load_ok(dir);
    ck_assert_uint_eq(strlen(secret), 256);
    free(secret);

    memset(text, 'x', sizeof text);
    write_file(path, text, 257, 0600);
    load_refused(dir, "longer than 256 bytes");
    write_file(path, "", 0, 0600);
    load_refused(dir, "is empty");
    write_file(path, "\n", 1, 0600);
    load_refused(dir, "is empty");
    write_file(path, "a\0b\n", 4, 0600);
    load_refused(dir, "NUL");
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refuse_loose_modes)
{
    static const mode_t bad[] = {0640, 0604, 0620, 0602, 0660, 0644, 0666};
    char path[PATH_MAX];
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(path, dir, "secret");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[32];
        write_file(path, "abc\n", 4, bad[i]);
        pathf(want, "mode %04o", (unsigned)bad[i]);
        load_refused(dir, want);
    }
    /* 0400 is private enough. */
    write_file(path, "abc\n", 4, 0400);
    char *secret = load_ok(dir);
    ck_assert_str_eq(secret, "abc");
    free(secret);
}
END_TEST

START_TEST(test_refuse_symlink)
{
    char path[PATH_MAX], target[PATH_MAX];
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(target, base, "elsewhere");
    write_file(target, "abc\n", 4, 0600);
    path_in(path, dir, "secret");
    ck_assert_int_eq(symlink(target, path), 0);
    load_refused(dir, "symbolic link");

    /* A dangling link is refused too, not replaced. */
    ck_assert_int_eq(unlink(target), 0);
    load_refused(dir, "symbolic link");
    ck_assert_int_eq(access(target, F_OK), -1);
}
END_TEST

START_TEST(test_refuse_not_regular)
{
    char path[PATH_MAX];
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(path, dir, "secret");
    ck_assert_int_eq(mkdir(path, 0700), 0);
    load_refused(dir, "not a regular file");
    ck_assert_int_eq(rmdir(path), 0);
    /* A FIFO must not hang the open. */
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    load_refused(dir, "not a regular file");
}
END_TEST

START_TEST(test_refuse_foreign_owner)
{
    char path[PATH_MAX];
    if (geteuid() != 0)
        return;   /* only root can give a file away */
    ck_assert_int_eq(secret_make_dir(dir), 0);
    path_in(path, dir, "secret");
    write_file(path, "abc\n", 4, 0600);
    ck_assert_int_eq(chown(path, 12345, 12345), 0);
    load_refused(dir, "belongs to uid 12345");
}
END_TEST

START_TEST(test_cannot_create)
{
    char file[PATH_MAX], under[PATH_MAX];
    path_in(file, base, "file");
    write_file(file, "x", 1, 0600);
    pathf(under, "%s/state", file);
    char want[PATH_MAX];
    pathf(want, "cannot open %s/secret: Not a directory", under);
    load_refused(under, want);

    /* Unwritable directory (meaningless for root, who may write anyway). */
    if (geteuid() != 0) {
        ck_assert_int_eq(secret_make_dir(dir), 0);
        ck_assert_int_eq(chmod(dir, 0500), 0);
        pathf(want, "cannot create %s/secret: Permission "
                 "denied", dir);
        load_refused(dir, want);
    }
    char *secret = (char *)"x";
    ck_assert_int_eq(secret_load_or_create(NULL, &secret, NULL, 0), -1);
    ck_assert_int_eq(secret_load_or_create(dir, NULL, NULL, 0), -1);
}
END_TEST

START_TEST(test_no_fd_leaks)
{
    char path[PATH_MAX], err[256];
    char *secret;
    int before = count_fds();
    ck_assert_int_gt(before, 0);

    secret = load_ok(dir);                      /* create */
    free(secret);
    secret = load_ok(dir);                      /* read */
    free(secret);
    path_in(path, dir, "secret");
    ck_assert_int_eq(chmod(path, 0644), 0);     /* refuse after open */
    ck_assert_int_eq(secret_load_or_create(dir, &secret, err, sizeof err), -1);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(symlink("/nonexistent", path), 0);
    ck_assert_int_eq(secret_load_or_create(dir, &secret, err, sizeof err), -1);

    ck_assert_int_eq(count_fds(), before);
}
END_TEST

Suite *secret_suite(void)
{
    Suite *s = suite_create("secret");
    TCase *dirs = tcase_create("directories");
    tcase_add_checked_fixture(dirs, setup, teardown);
    tcase_add_test(dirs, test_make_dir);
    tcase_add_test(dirs, test_make_dir_fails);
    tcase_add_test(dirs, test_state_dir);
    suite_add_tcase(s, dirs);

    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, setup, teardown);
    tcase_add_test(files, test_create);
    tcase_add_test(files, test_reuse);
    tcase_add_test(files, test_race);
    tcase_add_test(files, test_newline_stripped);
    tcase_add_test(files, test_length_limits);
    tcase_add_test(files, test_no_fd_leaks);
    suite_add_tcase(s, files);

    TCase *refusals = tcase_create("refusals");
    tcase_add_checked_fixture(refusals, setup, teardown);
    tcase_add_test(refusals, test_refuse_loose_modes);
    tcase_add_test(refusals, test_refuse_symlink);
    tcase_add_test(refusals, test_refuse_not_regular);
    tcase_add_test(refusals, test_refuse_foreign_owner);
    tcase_add_test(refusals, test_cannot_create);
    suite_add_tcase(s, refusals);
    return s;
}
