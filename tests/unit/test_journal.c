/* test_journal.c - the journal: creation and refusals, recording, the
 * window, reading back, and many processes and threads at once. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "scratch.h"
#include "suites.h"

#define WINDOW 86400000   /* 24h, in ms */
#define NOBODY 65534      /* an unprivileged uid for tests run as root */

static char base[PATH_MAX];   /* a fresh mkdtemp directory per test */
static char path[PATH_MAX];   /* base/journal.db */

static void setup(void)
{
    scratch_make(base, "journal");
    pathf(path, "%s/journal.db", base);
}

static void teardown(void)
{
    scratch_remove(base);
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    ck_assert_msg(lstat(p, &st) == 0, "%s: %s", p, strerror(errno));
    return st.st_mode & 07777;
}

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void write_file(const char *p, const char *text, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* The whole file, malloc'd; *len gets its size. */
static char *read_file(const char *p, size_t *len)
{
    static const size_t max = 1 << 16;
    char *buf = malloc(max);
    ck_assert_ptr_nonnull(buf);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ssize_t n = read(fd, buf, max);
    ck_assert_int_ge(n, 0);
    close(fd);
    *len = (size_t)n;
    return buf;
}

static struct journal *open_ok(const char *p, int create)
{
    char err[512] = "";
    struct journal *j = journal_open(p, create, err, sizeof err);
    ck_assert_msg(j != NULL, "journal_open(%s): %s", p, err);
    return j;
}

/* Expects journal_open to fail with a reason containing want. */
static void open_refused(const char *p, int create, const char *want)
{
    char err[512] = "";
    struct journal *j = journal_open(p, create, err, sizeof err);
    if (j)
        journal_close(j);
    ck_assert_msg(j == NULL, "journal_open(%s) succeeded", p ? p : "NULL");
    ck_assert_msg(strstr(err, want), "reason \"%s\" lacks \"%s\"", err, want);
}

static struct journal_attempt attempt_of(const char *host, const char *key,
                                         const char *fingerprint,
                                         int generation, int64_t time_ms)
{
    struct journal_attempt a = {
        .time_ms = time_ms, .pid = 4242, .exe = "agent", .method = "POST",
        .host = host, .path = "/v1/charges", .key = key,
        .fingerprint = fingerprint, .generation = generation, .tls = 1,
        .body_len = 17, .outcome = *key ? JOURNAL_PENDING : JOURNAL_SKIPPED,
    };
    return a;
}

/* Records an attempt; returns its attempt number, *id its row. */
static int begin_ok(struct journal *j, const struct journal_attempt *a,
                    int64_t *id)
{
    int64_t row = 0;
    int attempt = 0;
    ck_assert_msg(journal_begin(j, a, &row, &attempt) == 0, "journal_begin: %s",
                  journal_error(j));
    ck_assert_int_gt(row, 0);
    ck_assert_int_gt(attempt, 0);
    if (id)
        *id = row;
    return attempt;
}

static int64_t add(struct journal *j, const char *host, const char *key,
                   int64_t time_ms)
{
    struct journal_attempt a = attempt_of(host, key, *key ? "fp" : "", 0, time_ms);
    int64_t id;
    begin_ok(j, &a, &id);
    return id;
}

static int generation_of(struct journal *j, const char *fingerprint,
                         int64_t now_ms)
{
    int g = -1;
    ck_assert_msg(journal_generation(j, fingerprint, now_ms, WINDOW, &g) == 0,
                  "journal_generation: %s", journal_error(j));
    return g;
}

/* ---- reading rows back ---- */

struct seen {
    struct journal_row row;   /* strings: see rows_of */
    char exe[32], method[32], host[64], path[64], key[64], fingerprint[64];
};

struct rows {
    struct seen *r;
    int n;
    int stop_after;           /* 0: never stop */
};

static void copy_text(char *out, size_t size, const char *in)
{
    ck_assert_uint_lt(strlen(in), size);
    memcpy(out, in, strlen(in) + 1);
}

static int collect(void *ctx, const struct journal_row *row)
{
    struct rows *rs = ctx;
    rs->r = realloc(rs->r, (size_t)(rs->n + 1) * sizeof *rs->r);
    ck_assert_ptr_nonnull(rs->r);
    struct seen *s = &rs->r[rs->n++];
    s->row = *row;
    copy_text(s->exe, sizeof s->exe, row->exe);
    copy_text(s->method, sizeof s->method, row->method);
    copy_text(s->host, sizeof s->host, row->host);
    copy_text(s->path, sizeof s->path, row->path);
    copy_text(s->key, sizeof s->key, row->key);
    copy_text(s->fingerprint, sizeof s->fingerprint, row->fingerprint);
    return rs->stop_after && rs->n >= rs->stop_after;
}

/* Points each row's strings at its copies, once realloc is done moving. */
static void point_strings(struct rows *rs)
{
    for (int i = 0; i < rs->n; i++) {
        struct seen *s = &rs->r[i];
        s->row.exe = s->exe;
        s->row.method = s->method;
        s->row.host = s->host;
        s->row.path = s->path;
        s->row.key = s->key;
        s->row.fingerprint = s->fingerprint;
    }
}

static struct rows rows_of(struct journal *j, const char *host,
                           int64_t since_ms, int64_t limit)
{
    struct journal_filter f = { host, since_ms, limit };
    struct rows rs = { NULL, 0, 0 };
    ck_assert_msg(journal_each(j, &f, collect, &rs) == 0, "journal_each: %s",
                  journal_error(j));
    point_strings(&rs);
    return rs;
}

static int count_rows(struct journal *j)
{
    struct rows rs = rows_of(j, NULL, 0, 0);
    free(rs.r);
    return rs.n;
}

/* An SQL integer read straight from the file, beside the journal. */
static int64_t sql_int(const char *p, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *p, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE |
                                     SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- outcomes and locations ---- */

START_TEST(test_outcome_names)
{
    static const char *const names[] = {
        "pending", "completed", "unknown", "failed", "skipped", "replayed", "refused"
    };
    ck_assert_int_eq(sizeof(names) / sizeof(names[0]), JOURNAL_OUTCOMES);
    for (int i = 0; i < JOURNAL_OUTCOMES; i++) {
        enum journal_outcome o = JOURNAL_PENDING;
        ck_assert_str_eq(journal_outcome_name((enum journal_outcome)i), names[i]);
        ck_assert_int_eq(journal_outcome_parse(names[i], &o), 0);
        ck_assert_int_eq(o, i);
    }
    ck_assert_str_eq(journal_outcome_name((enum journal_outcome)42), "invalid");
    ck_assert_int_eq(journal_outcome_parse("Completed", NULL), -1);
    ck_assert_int_eq(journal_outcome_parse("", NULL), -1);
    ck_assert_int_eq(journal_outcome_parse(NULL, NULL), -1);
}
END_TEST

START_TEST(test_locations)
{
    char err[512];
    open_refused(NULL, 1, "no journal location");
    open_refused("", 1, "no journal location");
    open_refused("off", 1, "journal is off");
    /* Port 1 of the loopback: nothing listens there. */
    open_refused("redis://127.0.0.1:1/0", 1,
                 "cannot connect to Redis at redis://127.0.0.1:1: Connection refused");
    /* The same server again, at once: not asked, it is resting. */
    open_refused("redis://127.0.0.1:1", 1, "redis://127.0.0.1:1 failed moments ago");
    open_refused("REDIS://127.0.0.1:2", 1, "Connection refused");
    open_refused("redis://127.0.0.1:99999", 1, "port must be a number");
    open_refused("rediss://127.0.0.1:1", 1, "rediss:// needs hiredis with TLS");
    open_refused("ftp://host/x.db", 1, "unknown journal location scheme \"ftp://\"");
    open_refused("file:journal.db", 1, "not a file: URI");

    /* A redis URL may carry a password: never repeated in a message. */
    ck_assert_ptr_null(journal_open("redis://:hunter2@127.0.0.1:1", 1, err, sizeof err));
    ck_assert_ptr_null(strstr(err, "hunter2"));
    /* No room for the reason is fine too. */
    ck_assert_ptr_null(journal_open("off", 1, NULL, 0));
    ck_assert_int_eq(exists("off"), 0);
}
END_TEST

/* ---- creation ---- */

START_TEST(test_create_modes)
{
    char deep[PATH_MAX], p[PATH_MAX];
    /* A hostile umask: every mode must come out as stated anyway. */
    mode_t old = umask(0277);
    pathf(deep, "%s/a/b/journal.db", base);
    struct journal *j = open_ok(deep, 1);
    add(j, "h", "k", 1);
    umask(old);

    pathf(p, "%s/a", base);
    ck_assert_uint_eq(mode_of(p), 0700);
    pathf(p, "%s/a/b", base);
    ck_assert_uint_eq(mode_of(p), 0700);
    ck_assert_uint_eq(mode_of(base), 0700);   /* existing: untouched */
    ck_assert_uint_eq(mode_of(deep), 0600);
    pathf(p, "%s-wal", deep);
    ck_assert_uint_eq(mode_of(p), 0600);
    pathf(p, "%s-shm", deep);
    ck_assert_uint_eq(mode_of(p), 0600);
    journal_close(j);
}
END_TEST

START_TEST(test_open_missing)
{
    char deep[PATH_MAX], dir[PATH_MAX];
    open_refused(path, 0, "no journal at");
    ck_assert_int_eq(exists(path), 0);
    pathf(dir, "%s/x", base);
    pathf(deep, "%s/x/journal.db", base);
    open_refused(deep, 0, "no journal at");
    ck_assert_int_eq(exists(dir), 0);
}
END_TEST

START_TEST(test_relative_and_empty_file)
{
    /* An empty file (touch) is an empty journal; a relative path works. */
    write_file(path, "", 0);
    ck_assert_int_eq(chdir(base), 0);
    struct journal *j = open_ok("journal.db", 0);
    add(j, "h", "k", 1);
    journal_close(j);
    j = open_ok("sub/journal.db", 1);
    journal_close(j);
    ck_assert_int_eq(chdir("/"), 0);
    j = open_ok(path, 0);
    ck_assert_int_eq(count_rows(j), 1);
    journal_close(j);
}
END_TEST

START_TEST(test_reopen_keeps_rows)
{
    struct journal *j = open_ok(path, 1);
    int64_t first = add(j, "h", "k1", 1);
    add(j, "h", "k2", 2);
    add(j, "h", "k3", 3);
    journal_close(j);

    j = open_ok(path, 0);
    ck_assert_int_eq(count_rows(j), 3);
    ck_assert_int_gt(add(j, "h", "k4", 4), first + 2);
    struct journal_attempt a = attempt_of("h", "k1", "fp", 0, 5);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 2);
    journal_close(j);

    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 4);
    ck_assert_int_eq(sql_int(path, "PRAGMA application_id"), 0x52534a4c);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM pragma_journal_mode"
                                   " WHERE journal_mode = 'wal'"), 1);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
    journal_close(open_ok(path, 1));
    sql_exec(path, "PRAGMA user_version = 99");
    open_refused(path, 1, "written by a newer retrysafe (schema 99");
}
END_TEST

START_TEST(test_foreign_database_refused)
{
    size_t before_len, after_len;
    sql_exec(path, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
                   "INSERT INTO customers(name) VALUES('ada')");
    ck_assert_int_eq(chmod(path, 0600), 0);
    char *before = read_file(path, &before_len);
    open_refused(path, 1, "is not a retrysafe journal: it is another program's");
    char *after = read_file(path, &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert_int_eq(memcmp(before, after, before_len), 0);
    /* Still in its own journal mode: nothing switched it to WAL. */
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM pragma_journal_mode"
                                   " WHERE journal_mode = 'delete'"), 1);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_corrupt_file)
{
    static const char garbage[] = "this is certainly not an SQLite database\n";
    char big[8192];
    size_t len;
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = garbage[i % (sizeof garbage - 1)];

    write_file(path, garbage, sizeof garbage - 1);
    open_refused(path, 1, "is not a retrysafe journal: file is not a database");
    open_refused(path, 0, "is not a retrysafe journal: file is not a database");
    write_file(path, big, sizeof big);
    open_refused(path, 1, "is not a retrysafe journal: file is not a database");
    char *after = read_file(path, &len);
    ck_assert_uint_eq(len, sizeof big);
    ck_assert_int_eq(memcmp(after, big, len), 0);
    free(after);
}
END_TEST

/* Runs fn(arg) in a child process as an unprivileged user (root is not
 * stopped by modes) and expects it to return 0. */
static void as_unprivileged(int (*fn)(const char *arg), const char *arg)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(3);
        _exit(fn(arg));
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %d", status);
}

static int refused_with(const char *p, const char *want)
{
    char err[512] = "";
    struct journal *j = journal_open(p, 1, err, sizeof err);
    if (j || !strstr(err, want)) {
        fprintf(stderr, "journal_open(%s): \"%s\", want \"%s\"\n", p, err, want);
        return 1;
    }
    return 0;
}

static int unwritable_file(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/journal.db", dir);
    return refused_with(p, "Permission denied") ||
           refused_with(p, "cannot create journal");
}

static int unwritable_dir(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/sub/journal.db", dir);
    return refused_with(p, "cannot create directory");
}

START_TEST(test_unwritable_location)
{
    char dir[PATH_MAX];
    pathf(dir, "%s/ro", base);
    ck_assert_int_eq(mkdir(dir, 0555), 0);
    ck_assert_int_eq(chmod(dir, 0555), 0);
    ck_assert_int_eq(chmod(base, 0755), 0);
    as_unprivileged(unwritable_file, dir);
    as_unprivileged(unwritable_dir, dir);

    /* Not a directory on the way. */
    char p[PATH_MAX];
    write_file(path, "", 0);
    pathf(p, "%s/journal.db/sub/journal.db", base);
    open_refused(p, 1, "Not a directory");
}
END_TEST

START_TEST(test_symlink_refused)
{
    char link_path[PATH_MAX], dangling[PATH_MAX], target[PATH_MAX];
    journal_close(open_ok(path, 1));
    pathf(link_path, "%s/link.db", base);
    ck_assert_int_eq(symlink(path, link_path), 0);
    open_refused(link_path, 1, "is a symbolic link");
    open_refused(link_path, 0, "is a symbolic link");

    /* A dangling link is not followed to create its target either. */
    pathf(dangling, "%s/dangling.db", base);
    pathf(target, "%s/target.db", base);
    ck_assert_int_eq(symlink(target, dangling), 0);
    open_refused(dangling, 1, "is a symbolic link");
    ck_assert_int_eq(exists(target), 0);
}
END_TEST

START_TEST(test_other_owner_refused)
{
    if (geteuid() == 0) {
        journal_close(open_ok(path, 1));
        ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
        open_refused(path, 1, "belongs to uid 65534, not to uid 0");
    } else {
        open_refused("/etc/passwd", 0, "belongs to uid 0");
    }
}
END_TEST

START_TEST(test_loose_mode_refused)
{
    journal_close(open_ok(path, 1));
    ck_assert_int_eq(chmod(path, 0620), 0);
    open_refused(path, 1, "mode 0620 lets other users change it");
    ck_assert_int_eq(chmod(path, 0644), 0);   /* readable is fine */
    journal_close(open_ok(path, 0));
}
END_TEST

START_TEST(test_not_regular_refused)
{
    char fifo[PATH_MAX];
    open_refused(base, 1, "not a regular file");
    pathf(fifo, "%s/fifo.db", base);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    open_refused(fifo, 1, "not a regular file");   /* and does not hang */
}
END_TEST

/* ---- recording ---- */

START_TEST(test_begin_finish_roundtrip)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = {
        .time_ms = 1700000000123, .pid = 31337, .exe = "python3",
        .method = "POST", .host = "api.stripe.com", .path = "/v1/charges",
        .key = "rs_abc", .fingerprint = "f00d", .generation = 3, .tls = 1,
        .body_len = 4096, .outcome = JOURNAL_PENDING,
    };
    int64_t id = 0;
    int attempt = 0;
    ck_assert_int_eq(journal_begin(j, &a, &id, &attempt), 0);
    ck_assert_int_gt(id, 0);
    ck_assert_int_eq(attempt, 1);

    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 1);
    const struct journal_row *r = &rs.r[0].row;
    ck_assert_int_eq(r->id, id);
    ck_assert_int_eq(r->time_ms, 1700000000123);
    ck_assert_int_eq(r->pid, 31337);
    ck_assert_str_eq(r->exe, "python3");
    ck_assert_str_eq(r->method, "POST");
    ck_assert_str_eq(r->host, "api.stripe.com");
    ck_assert_str_eq(r->path, "/v1/charges");
    ck_assert_str_eq(r->key, "rs_abc");
    ck_assert_str_eq(r->fingerprint, "f00d");
    ck_assert_int_eq(r->generation, 3);
    ck_assert_int_eq(r->attempt, 1);
    ck_assert_int_eq(r->tls, 1);
    ck_assert_int_eq(r->body_len, 4096);
    ck_assert_int_eq(r->status, 0);
    ck_assert_int_eq(r->outcome, JOURNAL_PENDING);
    ck_assert_int_eq(r->duration_ms, -1);
    free(rs.r);

    ck_assert_int_eq(journal_finish(j, id, JOURNAL_COMPLETED, 201, 250), 0);
    rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_int_eq(rs.r[0].row.status, 201);
    ck_assert_int_eq(rs.r[0].row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(rs.r[0].row.duration_ms, 250);
    free(rs.r);

    /* NULL strings are stored as "", outputs may be NULL. */
    struct journal_attempt bare = { .time_ms = 5, .outcome = JOURNAL_SKIPPED };
    ck_assert_int_eq(journal_begin(j, &bare, NULL, NULL), 0);
    rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 2);   /* the older one first */
    ck_assert_str_eq(rs.r[0].row.exe, "");
    ck_assert_str_eq(rs.r[0].row.key, "");
    ck_assert_int_eq(rs.r[0].row.outcome, JOURNAL_SKIPPED);
    free(rs.r);
    journal_close(j);
}
END_TEST

/* Every value goes in as a bound parameter and comes back as it went in:
 * SQL in it is never run, and no byte is changed (control characters,
 * invalid UTF-8, format directives). */
START_TEST(test_hostile_strings)
{
    static const char *const hostile[] = {
        "'); DROP TABLE attempts;--", "\" OR 1=1 --", "\x1b[2J\r\n\tend\x7f",
        "\xff\xfe\xc3\x28\xed\xa0\x80", "%s%n%x%%", "?1 ?2 :a @b $c ''''",
    };
    const size_t n = sizeof hostile / sizeof *hostile;
    struct journal *j = open_ok(path, 1);
    for (size_t i = 0; i < n; i++) {
        const char *v = hostile[i];
        struct journal_attempt a = {
            .time_ms = 1000 + (int64_t)i, .pid = 7, .exe = v, .method = v,
            .host = v, .path = v, .key = v, .fingerprint = v,
            .outcome = JOURNAL_PENDING,
        };
        begin_ok(j, &a, NULL);
        /* Found as it was stored: within the window, its generation 0. */
        ck_assert_int_eq(generation_of(j, v, 2000), 0);
    }
    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, (int)n);
    for (size_t i = 0; i < n; i++) {
        const struct journal_row *r = &rs.r[i].row;
        ck_assert_str_eq(r->exe, hostile[i]);
        ck_assert_str_eq(r->method, hostile[i]);
        ck_assert_str_eq(r->host, hostile[i]);
        ck_assert_str_eq(r->path, hostile[i]);
        ck_assert_str_eq(r->key, hostile[i]);
        ck_assert_str_eq(r->fingerprint, hostile[i]);
        ck_assert_int_eq(r->attempt, 1);
    }
    free(rs.r);
    /* A filter is a value too: it matches its own row only. */
    for (size_t i = 0; i < n; i++) {
        rs = rows_of(j, hostile[i], 0, 0);
        ck_assert_int_eq(rs.n, 1);
        ck_assert_str_eq(rs.r[0].row.host, hostile[i]);
        free(rs.r);
    }
    int attempts = 0, answers = 0;
    ck_assert_int_eq(journal_forget(j, hostile[0], &attempts, &answers), 0);
    ck_assert_int_eq(attempts, 1);
    journal_close(j);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM attempts"), (int64_t)n);
}
END_TEST

START_TEST(test_bad_calls)
{
    struct journal *j = open_ok(path, 1);
    ck_assert_int_eq(journal_finish(j, 999, JOURNAL_COMPLETED, 200, 1), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no attempt 999"));

    struct journal_attempt a = attempt_of("h", "k", "fp", 0, 1);
    a.outcome = (enum journal_outcome)42;
    ck_assert_int_eq(journal_begin(j, &a, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "outcome 42"));
    ck_assert_int_eq(journal_begin(j, NULL, NULL, NULL), -1);
    ck_assert_int_eq(journal_each(j, NULL, NULL, NULL), -1);
    ck_assert_int_eq(journal_stats(j, NULL, NULL), -1);
    int g;
    ck_assert_int_eq(journal_generation(j, NULL, 0, WINDOW, &g), -1);
    ck_assert_int_eq(journal_finish_process(j, 1, (enum journal_outcome)-1), -1);
    ck_assert_int_eq(journal_begin(NULL, &a, NULL, NULL), -1);
    ck_assert_str_eq(journal_error(NULL), "no journal");
    ck_assert_int_eq(count_rows(j), 0);
    journal_close(j);
    journal_close(NULL);
}
END_TEST

START_TEST(test_attempt_numbering)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = attempt_of("h", "key-a", "fa", 0, 10);
    struct journal_attempt b = attempt_of("h", "key-b", "fb", 0, 11);
    struct journal_attempt skipped = attempt_of("h", "", "", 0, 12);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 1);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 2);
    ck_assert_int_eq(begin_ok(j, &b, NULL), 1);
    ck_assert_int_eq(begin_ok(j, &skipped, NULL), 1);
    ck_assert_int_eq(begin_ok(j, &skipped, NULL), 1);
    a.time_ms = 20;
    ck_assert_int_eq(begin_ok(j, &a, NULL), 3);

    /* Pruning older attempts never hands out a number twice. */
    int64_t deleted = 0;
    ck_assert_int_eq(journal_prune(j, 15, &deleted), 0);
    ck_assert_int_eq(deleted, 5);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 4);
    ck_assert_int_eq(begin_ok(j, &b, NULL), 1);
    journal_close(j);
}
END_TEST

START_TEST(test_generation_window)
{
    struct journal *j = open_ok(path, 1);
    const int64_t t0 = 1000000;
    ck_assert_int_eq(generation_of(j, "fp", t0), 0);   /* never seen */

    struct journal_attempt a = attempt_of("h", "k0", "fp", 0, t0);
    begin_ok(j, &a, NULL);
    ck_assert_int_eq(generation_of(j, "fp", t0), 0);
    ck_assert_int_eq(generation_of(j, "fp", t0 + WINDOW - 1), 0);
    ck_assert_int_eq(generation_of(j, "fp", t0 + WINDOW), 1);   /* expired */
    ck_assert_int_eq(generation_of(j, "fp", t0 - 5), 0);        /* clock step */
    ck_assert_int_eq(generation_of(j, "other", t0), 0);

    /* A retry late in the window does not extend it: first attempts count. */
    a.time_ms = t0 + WINDOW - 10;
    begin_ok(j, &a, NULL);
    ck_assert_int_eq(generation_of(j, "fp", t0 + WINDOW), 1);

    /* The next operation opens its own window. */
    const int64_t t1 = t0 + WINDOW + 5;
    struct journal_attempt b = attempt_of("h", "k1", "fp", 1, t1);
    begin_ok(j, &b, NULL);
    ck_assert_int_eq(generation_of(j, "fp", t1 + WINDOW - 1), 1);
    ck_assert_int_eq(generation_of(j, "fp", t1 + WINDOW), 2);

    /* A late attempt of an older generation changes nothing. */
    a.time_ms = t1 + 100;
    begin_ok(j, &a, NULL);
    ck_assert_int_eq(generation_of(j, "fp", t1 + WINDOW), 2);

    /* An attempt of the same generation stamped earlier (another
     * process's clock) moves the window's start back. */
    b.time_ms = t1 - 1000;
    begin_ok(j, &b, NULL);
    ck_assert_int_eq(generation_of(j, "fp", t1 + WINDOW - 500), 2);

    /* Pruned rows do not bring an old generation (and its key) back. */
    ck_assert_int_eq(journal_prune(j, INT64_MAX, NULL), 0);
    ck_assert_int_eq(count_rows(j), 0);
    ck_assert_int_eq(generation_of(j, "fp", t1 + 10 * (int64_t)WINDOW), 2);

    /* No window at all: every request is a new operation. */
    int g = -1;
    ck_assert_int_eq(journal_generation(j, "fp", t1, 0, &g), 0);
    ck_assert_int_eq(g, 2);
    journal_close(j);
}
END_TEST

/* ---- reading ---- */

START_TEST(test_each_filters)
{
    struct journal *j = open_ok(path, 1);
    /* t = 100..109, hosts a b a b ...; one row stamped earlier, added last. */
    for (int i = 0; i < 10; i++)
        add(j, i % 2 ? "b" : "a", "k", 100 + i);
    add(j, "b", "k", 50);

    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 11);
    ck_assert_int_eq(rs.r[0].row.time_ms, 50);   /* oldest first, by time */
    for (int i = 1; i < rs.n; i++)
        ck_assert_int_eq(rs.r[i].row.time_ms, 100 + i - 1);
    free(rs.r);

    rs = rows_of(j, "a", 0, 0);
    ck_assert_int_eq(rs.n, 5);
    for (int i = 0; i < rs.n; i++)
        ck_assert_str_eq(rs.r[i].row.host, "a");
    free(rs.r);

    rs = rows_of(j, NULL, 105, 0);
    ck_assert_int_eq(rs.n, 5);
    ck_assert_int_eq(rs.r[0].row.time_ms, 105);
    free(rs.r);

    rs = rows_of(j, NULL, 0, 3);   /* the newest 3, oldest first */
    ck_assert_int_eq(rs.n, 3);
    ck_assert_int_eq(rs.r[0].row.time_ms, 107);
    ck_assert_int_eq(rs.r[1].row.time_ms, 108);
    ck_assert_int_eq(rs.r[2].row.time_ms, 109);
    free(rs.r);

    rs = rows_of(j, "b", 0, 2);
    ck_assert_int_eq(rs.n, 2);
    ck_assert_int_eq(rs.r[0].row.time_ms, 107);
    ck_assert_int_eq(rs.r[1].row.time_ms, 109);
    free(rs.r);

    rs = rows_of(j, "b", 104, 100);
    ck_assert_int_eq(rs.n, 3);
    ck_assert_int_eq(rs.r[0].row.time_ms, 105);
    free(rs.r);

    rs = rows_of(j, "nobody", 0, 0);
    ck_assert_int_eq(rs.n, 0);
    free(rs.r);

    /* The callback stops the walk. */
    struct rows stop = { NULL, 0, 2 };
    ck_assert_int_eq(journal_each(j, NULL, collect, &stop), 0);
    ck_assert_int_eq(stop.n, 2);
    free(stop.r);
    journal_close(j);
}
END_TEST

struct stats_seen {
    struct journal_host_stats s[4];
    char host[4][32];
    int n;
};

static int collect_stats(void *ctx, const struct journal_host_stats *s)
{
    struct stats_seen *ss = ctx;
    ck_assert_int_lt(ss->n, 4);
    ss->s[ss->n] = *s;
    copy_text(ss->host[ss->n], sizeof ss->host[0], s->host);
    ss->s[ss->n].host = ss->host[ss->n];
    ss->n++;
    return 0;
}

static void finish_ok(struct journal *j, int64_t id, enum journal_outcome o,
                      int status)
{
    ck_assert_msg(journal_finish(j, id, o, status, 7) == 0, "journal_finish: %s",
                  journal_error(j));
}

START_TEST(test_stats)
{
    struct journal *j = open_ok(path, 1);
    /* b first, to see host order. */
    finish_ok(j, add(j, "b.example", "k3", 1), JOURNAL_FAILED, 0);
    add(j, "b.example", "k4", 2);                      /* pending */
    finish_ok(j, add(j, "b.example", "k5", 3), JOURNAL_COMPLETED, 503);
    finish_ok(j, add(j, "a.example", "k1", 4), JOURNAL_UNKNOWN, 0);
    finish_ok(j, add(j, "a.example", "k1", 5), JOURNAL_COMPLETED, 200);
    finish_ok(j, add(j, "a.example", "k1", 6), JOURNAL_COMPLETED, 200);
    finish_ok(j, add(j, "a.example", "k2", 7), JOURNAL_COMPLETED, 404);
    finish_ok(j, add(j, "a.example", "k6", 8), JOURNAL_COMPLETED, 302);
    finish_ok(j, add(j, "a.example", "k6", 9), JOURNAL_COMPLETED, 100);
    add(j, "a.example", "", 10);                        /* skipped */
    add(j, "a.example", "", 11);

    struct stats_seen ss = { .n = 0 };
    ck_assert_int_eq(journal_stats(j, collect_stats, &ss), 0);
    ck_assert_int_eq(ss.n, 2);

    const struct journal_host_stats *a = &ss.s[0], *b = &ss.s[1];
    ck_assert_str_eq(a->host, "a.example");
    ck_assert_int_eq(a->requests, 8);
    ck_assert_int_eq(a->keys, 3);
    ck_assert_int_eq(a->retried_keys, 2);
    ck_assert_int_eq(a->outcomes[JOURNAL_PENDING], 0);
    ck_assert_int_eq(a->outcomes[JOURNAL_COMPLETED], 5);
    ck_assert_int_eq(a->outcomes[JOURNAL_UNKNOWN], 1);
    ck_assert_int_eq(a->outcomes[JOURNAL_FAILED], 0);
    ck_assert_int_eq(a->outcomes[JOURNAL_SKIPPED], 2);
    ck_assert_int_eq(a->status_classes[0], 3);
    ck_assert_int_eq(a->status_classes[1], 1);
    ck_assert_int_eq(a->status_classes[2], 2);
    ck_assert_int_eq(a->status_classes[3], 1);
    ck_assert_int_eq(a->status_classes[4], 1);
    ck_assert_int_eq(a->status_classes[5], 0);

    ck_assert_str_eq(b->host, "b.example");
    ck_assert_int_eq(b->requests, 3);
    ck_assert_int_eq(b->keys, 3);
    ck_assert_int_eq(b->retried_keys, 0);
    ck_assert_int_eq(b->outcomes[JOURNAL_PENDING], 1);
    ck_assert_int_eq(b->outcomes[JOURNAL_COMPLETED], 1);
    ck_assert_int_eq(b->outcomes[JOURNAL_FAILED], 1);
    ck_assert_int_eq(b->status_classes[0], 2);
    ck_assert_int_eq(b->status_classes[5], 1);

    /* The same key on two hosts counts once per host. */
    add(j, "b.example", "k1", 12);
    ss.n = 0;
    ck_assert_int_eq(journal_stats(j, collect_stats, &ss), 0);
    ck_assert_int_eq(ss.s[0].retried_keys, 2);
    ck_assert_int_eq(ss.s[1].keys, 4);
    ck_assert_int_eq(ss.s[1].retried_keys, 0);
    journal_close(j);
}
END_TEST

START_TEST(test_prune)
{
    struct journal *j = open_ok(path, 1);
    for (int i = 1; i <= 10; i++)
        add(j, "h", "k", i);
    int64_t deleted = -1;
    ck_assert_int_eq(journal_prune(j, 6, &deleted), 0);
    ck_assert_int_eq(deleted, 5);
    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 5);
    ck_assert_int_eq(rs.r[0].row.time_ms, 6);
    free(rs.r);
    ck_assert_int_eq(journal_prune(j, 6, &deleted), 0);
    ck_assert_int_eq(deleted, 0);

    /* More than one batch. */
    struct journal_attempt a = attempt_of("h", "many", "fm", 0, 20);
    for (int i = 0; i < 2345; i++)
        begin_ok(j, &a, NULL);
    ck_assert_int_eq(journal_prune(j, 21, &deleted), 0);
    ck_assert_int_eq(deleted, 2350);
    ck_assert_int_eq(count_rows(j), 0);
    journal_close(j);
}
END_TEST

START_TEST(test_finish_process)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = attempt_of("h", "k", "fp", 0, 1);
    int64_t done;
    a.pid = 111;
    begin_ok(j, &a, NULL);
    begin_ok(j, &a, NULL);
    begin_ok(j, &a, &done);
    finish_ok(j, done, JOURNAL_COMPLETED, 200);
    a.pid = 222;
    begin_ok(j, &a, NULL);

    ck_assert_int_eq(journal_finish_process(j, 111, JOURNAL_UNKNOWN), 0);
    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, 4);
    ck_assert_int_eq(rs.r[0].row.outcome, JOURNAL_UNKNOWN);
    ck_assert_int_eq(rs.r[1].row.outcome, JOURNAL_UNKNOWN);
    ck_assert_int_eq(rs.r[2].row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(rs.r[2].row.status, 200);
    ck_assert_int_eq(rs.r[3].row.outcome, JOURNAL_PENDING);
    free(rs.r);
    ck_assert_int_eq(journal_finish_process(j, 333, JOURNAL_UNKNOWN), 0);
    journal_close(j);
}
END_TEST

/* ---- threads and processes ---- */

struct reentry {
    struct journal *j;
    int rc;
    char err[256];
};

static int call_back_in(void *ctx, const struct journal_row *row)
{
    struct reentry *re = ctx;
    struct journal_attempt a = attempt_of("h", "k", "fp", 0, row->time_ms);
    re->rc = journal_begin(re->j, &a, NULL, NULL);
    snprintf(re->err, sizeof re->err, "%s", journal_error(re->j));
    return 1;
}

START_TEST(test_callback_reentry)
{
    struct journal *j = open_ok(path, 1);
    add(j, "h", "k", 1);
    struct reentry re = { j, 0, "" };
    /* Fails instead of deadlocking; the walk itself is fine. */
    ck_assert_int_eq(journal_each(j, NULL, call_back_in, &re), 0);
    ck_assert_int_eq(re.rc, -1);
    ck_assert_ptr_nonnull(strstr(re.err, "its own callback"));
    ck_assert_int_eq(count_rows(j), 1);
    journal_close(j);
}
END_TEST

static int wait_ok(pid_t pid)
{
    int status = 0;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) ?
           WEXITSTATUS(status) : -1;
}

START_TEST(test_fork_without_handlers)
{
    struct journal *j = open_ok(path, 1);
    add(j, "h", "k", 1);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct journal_attempt a = attempt_of("h", "k", "fp", 0, 2);
        int ok = journal_begin(j, &a, NULL, NULL) == -1 &&
                 strstr(journal_error(j), "journal_fork_child") != NULL;
        journal_close(j);   /* frees memory, leaves the parent's alone */
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(wait_ok(pid), 0);
    add(j, "h", "k", 3);
    ck_assert_int_eq(count_rows(j), 2);
    journal_close(j);
}
END_TEST

/* POSIX locks process pid holds on the file at p, from /proc/locks; -1
 * when that cannot be read. */
static int locks_held(pid_t pid, const char *p)
{
    struct stat st;
    char line[256];
    FILE *f = fopen("/proc/locks", "r");
    if (!f || stat(p, &st) != 0) {
        if (f)
            fclose(f);
        return -1;
    }
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        long lock_pid;
        unsigned long ino;
        if (!strstr(line, "->") &&
            sscanf(line, "%*s %*s %*s %*s %ld %*x:%*x:%lu", &lock_pid, &ino) == 2 &&
            lock_pid == (long)pid && ino == (unsigned long)st.st_ino)
            n++;
    }
    fclose(f);
    return n;
}

START_TEST(test_fork_with_handlers)
{
    struct journal *j = open_ok(path, 1);
    add(j, "h", "k", 1);
    journal_fork_prepare(j);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        journal_fork_child(j);
        struct journal_attempt a = attempt_of("h", "k", "fp", 0, 2);
        int attempt = 0;
        int ok = journal_begin(j, &a, NULL, &attempt) == 0 && attempt == 2;
        /* Its own connection, with its own real locks: a connection open
         * in the parent at fork time would have left SQLite believing
         * it held them already (0 here). */
        ok = ok && locks_held(getpid(), path) > 0;
        journal_close(j);
        _exit(ok ? 0 : 1);
    }
    journal_fork_parent(j);
    ck_assert_int_eq(wait_ok(pid), 0);
    struct journal_attempt a = attempt_of("h", "k", "fp", 0, 3);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 3);
    ck_assert_int_eq(count_rows(j), 3);
    journal_close(j);
}
END_TEST

#define WRITERS 8
#define PER_WRITER 50
#define KEYS 10

/* One writer's work: PER_WRITER attempts over KEYS shared keys, each
 * begun and finished. Returns 0, or -1 with the reason on stderr. */
static int write_batch(struct journal *j, int writer)
{
    char key[16], fp[16];
    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(key, sizeof key, "k%d", i % KEYS);
        snprintf(fp, sizeof fp, "f%d", i % KEYS);
        struct journal_attempt a = attempt_of("h", key, fp, 0, 1000 + i);
        a.pid = writer;
        int64_t id = 0;
        int attempt = 0, g = -1;
        if (journal_generation(j, fp, 1000 + i, WINDOW, &g) != 0 ||
            journal_begin(j, &a, &id, &attempt) != 0 ||
            journal_finish(j, id, JOURNAL_COMPLETED, 200, 1) != 0) {
            fprintf(stderr, "writer %d: %s\n", writer, journal_error(j));
            return -1;
        }
    }
    return 0;
}

/* Exactly WRITERS * PER_WRITER rows, every one finished, and the attempt
 * numbers of each key exactly 1..n: none lost, none given twice. */
static void check_all_written(struct journal *j)
{
    const int per_key = WRITERS * PER_WRITER / KEYS;
    char seen[KEYS][WRITERS * PER_WRITER / KEYS + 1];
    memset(seen, 0, sizeof seen);
    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, WRITERS * PER_WRITER);
    for (int i = 0; i < rs.n; i++) {
        const struct journal_row *r = &rs.r[i].row;
        int k = atoi(r->key + 1);
        ck_assert_int_eq(r->outcome, JOURNAL_COMPLETED);
        ck_assert_int_ge(r->attempt, 1);
        ck_assert_int_le(r->attempt, per_key);
        ck_assert_msg(!seen[k][r->attempt], "key %s attempt %d twice", r->key,
                      r->attempt);
        seen[k][r->attempt] = 1;
    }
    free(rs.r);
}

START_TEST(test_processes_concurrent)
{
    int go[2];
    pid_t pids[WRITERS];
    ck_assert_int_eq(pipe(go), 0);
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w] == 0) {
            char c, err[512] = "";
            close(go[1]);
            (void)!read(go[0], &c, 1);   /* all start at once, on a new file */
            struct journal *j = journal_open(path, 1, err, sizeof err);
            if (!j) {
                fprintf(stderr, "writer %d: %s\n", w, err);
                _exit(1);
            }
            int rc = write_batch(j, w);
            journal_close(j);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int w = 0; w < WRITERS; w++)
        ck_assert_msg(wait_ok(pids[w]) == 0, "writer %d failed", w);

    struct journal *j = open_ok(path, 0);
    check_all_written(j);
    journal_close(j);
}
END_TEST

struct writer {
    pthread_t thread;
    struct journal *j;
    int index;
    int rc;
};

static void *write_thread(void *arg)
{
    struct writer *w = arg;
    w->rc = write_batch(w->j, w->index);
    return NULL;
}

START_TEST(test_threads_shared)
{
    struct writer w[WRITERS];
    struct journal *j = open_ok(path, 1);
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){ .j = j, .index = i, .rc = -1 };
        ck_assert_int_eq(pthread_create(&w[i].thread, NULL, write_thread, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(pthread_join(w[i].thread, NULL), 0);
        ck_assert_int_eq(w[i].rc, 0);
    }
    check_all_written(j);
    journal_close(j);
}
END_TEST

/* Each thread reads its own error, whatever the other one did since. */
static void *fail_once(void *arg)
{
    struct journal *j = arg;
    journal_finish(j, 12345, JOURNAL_COMPLETED, 200, 1);
    return NULL;
}

START_TEST(test_errors_per_thread)
{
    struct journal *j = open_ok(path, 1);
    pthread_t t;
    ck_assert_int_eq(journal_finish(j, 777, JOURNAL_COMPLETED, 200, 1), -1);
    ck_assert_int_eq(pthread_create(&t, NULL, fail_once, j), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no attempt 777"));

    /* The error is about the journal it came from. */
    char other_path[PATH_MAX];
    pathf(other_path, "%s/other.db", base);
    struct journal *other = open_ok(other_path, 1);
    ck_assert_str_eq(journal_error(other), "");
    journal_close(other);
    journal_close(j);
}
END_TEST

/* ---- guard mode ---- */

START_TEST(test_guard_rule)
{
    enum { S = JOURNAL_SEND, P = JOURNAL_REPLAY, W = JOURNAL_WAIT,
           U = JOURNAL_REFUSE_UNKNOWN, I = JOURNAL_REFUSE_IN_FLIGHT,
           T = JOURNAL_REFUSE_TOO_LARGE };
    /* A state, then the verdict for each (may_wait, resend_unknown):
     * (0,0) (0,1) (1,0) (1,1). Counts above 1 count as much as 1; a
     * too_large flag without an answer means nothing. */
    static const struct {
        int answered, too_large, in_flight, unknown;
        int want[4];
    } table[] = {
        { 0, 0, 0, 0, { S, S, S, S } },
        { 0, 0, 0, 3, { U, S, U, S } },
        { 0, 0, 2, 0, { I, I, W, W } },
        { 0, 0, 1, 1, { I, I, W, W } },
        { 0, 1, 0, 0, { S, S, S, S } },
        { 0, 1, 0, 1, { U, S, U, S } },
        { 0, 1, 1, 0, { I, I, W, W } },
        { 0, 1, 1, 2, { I, I, W, W } },
        { 1, 0, 0, 0, { P, P, P, P } },
        { 1, 0, 0, 1, { P, P, P, P } },
        { 1, 0, 1, 0, { P, P, P, P } },
        { 1, 0, 2, 2, { P, P, P, P } },
        { 1, 1, 0, 0, { T, T, T, T } },
        { 1, 1, 0, 1, { T, T, T, T } },
        { 1, 1, 1, 0, { T, T, T, T } },
        { 1, 1, 1, 1, { T, T, T, T } },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        for (int r = 0; r < 4; r++) {
            struct journal_key_state k = {
                .attempts = 5, .first_ms = 100, .answer_status = 200,
                .answered = table[i].answered,
                .answer_too_large = table[i].too_large,
                .in_flight = table[i].in_flight,
                .in_flight_pid = table[i].in_flight ? 77 : 0,
                .unknown = table[i].unknown,
            };
            struct journal_guard_rules rules = { .may_wait = r >> 1,
                                                 .resend_unknown = r & 1 };
            ck_assert_msg((int)journal_guard_rule(&k, &rules) == table[i].want[r],
                          "row %zu may_wait %d resend %d: verdict %d, want %d",
                          i, rules.may_wait, rules.resend_unknown,
                          (int)journal_guard_rule(&k, &rules), table[i].want[r]);
        }
    }
}
END_TEST

/* An attempt of this process (alive) at time_ms, for guard mode. */
static struct journal_attempt guard_attempt(const char *key, int64_t time_ms)
{
    struct journal_attempt a = attempt_of("g.example", key, "fg", 0, time_ms);
    a.pid = getpid();
    return a;
}

static enum journal_verdict claim_ok(struct journal *j,
                                     const struct journal_attempt *a,
                                     int may_wait, int resend_unknown,
                                     struct journal_claim *out)
{
    struct journal_guard_rules rules = { may_wait, resend_unknown };
    ck_assert_msg(journal_claim(j, a, &rules, out) == 0, "journal_claim: %s",
                  journal_error(j));
    return out->verdict;
}

/* The row with that id, as read back now; its strings in the copies. */
static struct seen row_by_id(struct journal *j, int64_t id)
{
    struct rows rs = rows_of(j, NULL, 0, 0);
    struct seen found;
    int n = 0;
    for (int i = 0; i < rs.n; i++)
        if (rs.r[i].row.id == id) {
            found = rs.r[i];
            n++;
        }
    free(rs.r);
    ck_assert_msg(n == 1, "%d rows with id %lld", n, (long long)id);
    /* The strings are in the copies (found.key, ...): the row's pointers
     * would not survive the return. */
    found.row.exe = found.row.method = found.row.host = NULL;
    found.row.path = found.row.key = found.row.fingerprint = NULL;
    return found;
}

/* A process id that ran and is gone (reaped). */
static int dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(wait_ok(pid), 0);
    ck_assert_int_eq(kill(pid, 0), -1);
    return pid;
}

START_TEST(test_claim_new_key)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-new", 1000);
    a.outcome = JOURNAL_SKIPPED;   /* ignored: a claim decides */
    struct journal_claim c;
    memset(&c, 0x5a, sizeof c);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_gt(c.id, 0);
    ck_assert_int_eq(c.attempt, 1);
    ck_assert_ptr_null(c.answer);
    ck_assert_uint_eq(c.answer_len, 0);
    ck_assert_int_eq(c.state.attempts, 0);
    ck_assert_int_eq(c.state.first_ms, 0);
    ck_assert_int_eq(c.state.in_flight, 0);
    ck_assert_int_eq(c.state.unknown, 0);
    ck_assert_int_eq(c.state.answered, 0);

    ck_assert_int_eq(count_rows(j), 1);
    struct seen s = row_by_id(j, c.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_PENDING);
    ck_assert_int_eq(s.row.attempt, 1);
    ck_assert_int_eq(s.row.status, 0);
    ck_assert_int_eq(s.row.duration_ms, -1);
    ck_assert_int_eq(s.row.pid, getpid());
    ck_assert_int_eq(s.row.time_ms, 1000);
    ck_assert_str_eq(s.key, "k-new");
    ck_assert_str_eq(s.host, "g.example");
    ck_assert_str_eq(s.fingerprint, "fg");

    /* Another key is another request. */
    struct journal_attempt b = guard_attempt("k-other", 1001);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 1);
    ck_assert_int_eq(count_rows(j), 2);
    journal_close(j);
}
END_TEST

START_TEST(test_claim_bad_calls)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("", 1);
    struct journal_guard_rules rules = { 1, 0 };
    struct journal_claim c;
    memset(&c, 0x5a, sizeof c);
    ck_assert_int_eq(journal_claim(j, &a, &rules, &c), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no keyed attempt"));
    ck_assert_int_eq(c.verdict, JOURNAL_SEND);   /* zeroed, not left as it was */
    ck_assert_int_eq(c.id, 0);
    ck_assert_ptr_null(c.answer);
    a.key = NULL;
    ck_assert_int_eq(journal_claim(j, &a, &rules, &c), -1);
    a.key = "k";
    ck_assert_int_eq(journal_claim(j, NULL, &rules, &c), -1);
    ck_assert_int_eq(journal_claim(j, &a, NULL, &c), -1);
    ck_assert_int_eq(journal_claim(j, &a, &rules, NULL), -1);
    ck_assert_int_eq(journal_claim(NULL, &a, &rules, &c), -1);
    ck_assert_int_eq(count_rows(j), 0);

    ck_assert_int_eq(journal_finish_answer(j, 999, 200, 1, "x", 1, 0), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no attempt 999"));
    int attempts = -1;
    ck_assert_int_eq(journal_forget(j, "", &attempts, NULL), -1);
    ck_assert_int_eq(journal_forget(j, NULL, NULL, NULL), -1);
    ck_assert_int_eq(journal_forget(NULL, "k", NULL, NULL), -1);
    journal_close(j);
}
END_TEST

START_TEST(test_claim_twin_in_flight)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-twin", 1000);
    struct journal_claim first, c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &first), JOURNAL_SEND);

    /* Pending, of a live process (this one): wait, recording nothing. */
    a.time_ms = 1005;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_WAIT);
    ck_assert_int_eq(c.id, 0);
    ck_assert_int_eq(c.state.in_flight, 1);
    ck_assert_int_eq(c.state.in_flight_pid, getpid());
    ck_assert_int_eq(c.state.attempts, 1);
    ck_assert_int_eq(c.state.first_ms, 1000);
    ck_assert_int_eq(c.state.unknown, 0);
    ck_assert_int_eq(count_rows(j), 1);
    /* ... and with unknown outcomes to resend, still wait. */
    ck_assert_int_eq(claim_ok(j, &a, 1, 1, &c), JOURNAL_WAIT);
    ck_assert_int_eq(count_rows(j), 1);

    /* The wait is over: refused, and the refusal is recorded. */
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_REFUSE_IN_FLIGHT);
    ck_assert_int_gt(c.id, first.id);
    ck_assert_int_eq(c.attempt, 2);
    ck_assert_int_eq(c.state.in_flight_pid, getpid());
    ck_assert_ptr_null(c.answer);
    ck_assert_int_eq(count_rows(j), 2);
    struct seen s = row_by_id(j, c.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_REFUSED);
    ck_assert_int_eq(s.row.status, 409);
    ck_assert_int_eq(s.row.attempt, 2);
    ck_assert_int_eq(s.row.duration_ms, 0);
    ck_assert_int_eq(s.row.time_ms, 1005);
    s = row_by_id(j, first.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_PENDING);

    /* A refusal is no twin: the sender is still the one in flight. */
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_REFUSE_IN_FLIGHT);
    ck_assert_int_eq(c.attempt, 3);
    ck_assert_int_eq(c.state.in_flight, 1);
    ck_assert_int_eq(c.state.attempts, 2);
    ck_assert_int_eq(c.state.first_ms, 1000);   /* the first, not the last */

    /* Once it is finished, without an answer kept, the key is free. */
    finish_ok(j, first.id, JOURNAL_FAILED, 0);
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 4);
    journal_close(j);
}
END_TEST

START_TEST(test_claim_dead_twin_unknown)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-dead", 1000);
    struct journal_claim dead, c;
    a.pid = dead_pid();
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &dead), JOURNAL_SEND);
    ck_assert_int_eq(row_by_id(j, dead.id).row.outcome, JOURNAL_PENDING);

    /* Its sender is gone: no one will finish it; it may have gone out. */
    a = guard_attempt("k-dead", 1001);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REFUSE_UNKNOWN);
    ck_assert_int_eq(c.state.unknown, 1);
    ck_assert_int_eq(c.state.in_flight, 0);
    ck_assert_int_eq(c.attempt, 2);
    ck_assert_int_eq(row_by_id(j, dead.id).row.outcome, JOURNAL_UNKNOWN);
    struct seen s = row_by_id(j, c.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_REFUSED);
    ck_assert_int_eq(s.row.status, 409);

    /* Told to resend unknown outcomes: send. */
    ck_assert_int_eq(claim_ok(j, &a, 1, 1, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 3);
    ck_assert_int_eq(c.state.unknown, 1);
    ck_assert_int_eq(row_by_id(j, c.id).row.outcome, JOURNAL_PENDING);
    /* That one is alive: in flight beats unknown. */
    ck_assert_int_eq(claim_ok(j, &a, 1, 1, &c), JOURNAL_WAIT);
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_REFUSE_IN_FLIGHT);

    /* An outcome finished as unknown counts the same. */
    struct journal_attempt b = guard_attempt("k-closed", 2000);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_SEND);
    finish_ok(j, c.id, JOURNAL_UNKNOWN, 0);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_REFUSE_UNKNOWN);
    ck_assert_int_eq(c.state.unknown, 1);
    journal_close(j);
}
END_TEST

/* An HTTP answer with a NUL and a high byte in its body. */
static const char answer_bytes[] =
    "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\na\0b\xff\n";
#define ANSWER_LEN (sizeof answer_bytes - 1)

START_TEST(test_claim_replays_answer)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-ans", 1000);
    struct journal_claim sent, c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &sent), JOURNAL_SEND);
    ck_assert_msg(journal_finish_answer(j, sent.id, 201, 37, answer_bytes,
                                        ANSWER_LEN, 0) == 0,
                  "journal_finish_answer: %s", journal_error(j));
    struct seen s = row_by_id(j, sent.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(s.row.status, 201);
    ck_assert_int_eq(s.row.duration_ms, 37);

    a.time_ms = 1010;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_ptr_nonnull(c.answer);
    ck_assert_uint_eq(c.answer_len, ANSWER_LEN);
    ck_assert_int_eq(memcmp(c.answer, answer_bytes, ANSWER_LEN), 0);
    ck_assert_int_eq(c.state.answered, 1);
    ck_assert_int_eq(c.state.answer_status, 201);
    ck_assert_int_eq(c.state.answer_too_large, 0);
    ck_assert_int_gt(c.id, sent.id);
    ck_assert_int_eq(c.attempt, 2);
    free(c.answer);
    s = row_by_id(j, c.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_REPLAYED);
    ck_assert_int_eq(s.row.status, 201);
    ck_assert_int_eq(s.row.duration_ms, 0);
    ck_assert_int_eq(s.row.time_ms, 1010);

    /* An answer beats everything: a twin in flight, unknown outcomes. */
    struct journal_attempt twin = guard_attempt("k-ans", 1020);
    begin_ok(j, &twin, NULL);
    twin.pid = dead_pid();
    begin_ok(j, &twin, NULL);
    ck_assert_int_eq(claim_ok(j, &a, 0, 1, &c), JOURNAL_REPLAY);
    ck_assert_int_eq(c.state.in_flight, 1);
    ck_assert_int_eq(c.state.unknown, 1);
    ck_assert_uint_eq(c.answer_len, ANSWER_LEN);
    ck_assert_int_eq(memcmp(c.answer, answer_bytes, ANSWER_LEN), 0);
    free(c.answer);

    /* The answer is this key's only. */
    struct journal_attempt other = guard_attempt("k-ans2", 1030);
    ck_assert_int_eq(claim_ok(j, &other, 1, 0, &c), JOURNAL_SEND);
    ck_assert_ptr_null(c.answer);
    ck_assert_int_eq(c.state.answered, 0);
    journal_close(j);
}
END_TEST

START_TEST(test_claim_answer_too_large)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-big", 1000);
    struct journal_claim sent, c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &sent), JOURNAL_SEND);
    /* Neither bytes nor too_large: nothing to record, nothing changed. */
    ck_assert_int_eq(journal_finish_answer(j, sent.id, 200, 5, NULL, 0, 0), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no answer to record"));
    ck_assert_int_eq(row_by_id(j, sent.id).row.outcome, JOURNAL_PENDING);

    ck_assert_int_eq(journal_finish_answer(j, sent.id, 200, 5, NULL, 0, 1), 0);
    struct seen s = row_by_id(j, sent.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(s.row.status, 200);
    ck_assert_int_eq(s.row.duration_ms, 5);

    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REFUSE_TOO_LARGE);
    ck_assert_ptr_null(c.answer);
    ck_assert_uint_eq(c.answer_len, 0);
    ck_assert_int_eq(c.state.answered, 1);
    ck_assert_int_eq(c.state.answer_too_large, 1);
    ck_assert_int_eq(c.state.answer_status, 200);
    s = row_by_id(j, c.id);
    ck_assert_int_eq(s.row.outcome, JOURNAL_REFUSED);
    ck_assert_int_eq(s.row.status, 409);

    /* too_large wins over bytes given anyway: they are not kept. */
    struct journal_attempt b = guard_attempt("k-big2", 2000);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &sent), JOURNAL_SEND);
    ck_assert_int_eq(journal_finish_answer(j, sent.id, 200, 5, answer_bytes,
                                           ANSWER_LEN, 1), 0);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_REFUSE_TOO_LARGE);
    ck_assert_ptr_null(c.answer);
    journal_close(j);
}
END_TEST

START_TEST(test_forget)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-f", 1000);
    struct journal_claim c, kept;
    int attempts = -1;
    a.pid = dead_pid();
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    a = guard_attempt("k-f", 1001);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REFUSE_UNKNOWN);

    /* Another key, answered: forgetting k-f leaves it alone. */
    struct journal_attempt b = guard_attempt("k-keep", 1002);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &kept), JOURNAL_SEND);
    ck_assert_int_eq(journal_finish_answer(j, kept.id, 200, 1, "HTTP/1.1 200 OK\r\n\r\n",
                                           19, 0), 0);

    ck_assert_int_eq(journal_forget(j, "k-f", &attempts, NULL), 0);
    ck_assert_int_eq(attempts, 2);
    ck_assert_int_eq(count_rows(j), 3);   /* the rows stay */
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 3);       /* numbers go on */
    ck_assert_int_eq(c.state.attempts, 0);
    ck_assert_int_eq(c.state.unknown, 0);
    ck_assert_int_eq(c.state.first_ms, 0);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &kept), JOURNAL_REPLAY);
    free(kept.answer);

    /* An answered key, forgotten, goes out once more. */
    ck_assert_int_eq(journal_finish_answer(j, c.id, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_int_eq(c.attempt, 4);
    ck_assert_int_eq(c.state.attempts, 3);
    free(c.answer);
    attempts = -1;
    ck_assert_int_eq(journal_forget(j, "k-f", &attempts, NULL), 0);
    ck_assert_int_eq(attempts, 4);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 5);
    ck_assert_ptr_null(c.answer);
    ck_assert_int_eq(c.state.answered, 0);

    /* A pending attempt hidden by a forget is no twin either, and the
     * answer it gets later is not the key's. */
    int64_t hidden = c.id;
    ck_assert_int_eq(journal_forget(j, "k-f", NULL, NULL), 0);
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 6);
    ck_assert_int_eq(c.state.in_flight, 0);
    ck_assert_int_eq(journal_finish_answer(j, hidden, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_REFUSE_IN_FLIGHT);
    ck_assert_int_eq(c.state.answered, 0);
    ck_assert_ptr_null(c.answer);

    attempts = -1;
    ck_assert_int_eq(journal_forget(j, "k-nobody", &attempts, NULL), 0);
    ck_assert_int_eq(attempts, 0);
    attempts = -1;
    ck_assert_int_eq(journal_forget(j, "", &attempts, NULL), -1);
    ck_assert_ptr_nonnull(strstr(journal_error(j), "no key to forget"));
    ck_assert_int_eq(count_rows(j), 9);
    journal_close(j);
}
END_TEST

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_prune_answers)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-old", 1000);
    struct journal_claim c;
    int64_t deleted = -1;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    int64_t before = now_ms();
    ck_assert_int_eq(journal_finish_answer(j, c.id, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);

    /* A cut before the answer was kept leaves it. */
    ck_assert_int_eq(journal_prune(j, before - 1000, &deleted), 0);
    ck_assert_int_eq(deleted, 1);   /* the attempt, stamped 1000 */
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, ANSWER_LEN);
    free(c.answer);

    /* A cut after it takes it. */
    ck_assert_int_eq(journal_prune(j, now_ms() + 60000, &deleted), 0);
    ck_assert_int_eq(deleted, 1);   /* the replay */
    ck_assert_int_eq(count_rows(j), 0);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.state.answered, 0);
    ck_assert_ptr_null(c.answer);
    journal_close(j);
}
END_TEST

START_TEST(test_guard_stats)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-s", 1000);
    struct journal_claim sent, c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &sent), JOURNAL_SEND);
    ck_assert_int_eq(claim_ok(j, &a, 0, 0, &c), JOURNAL_REFUSE_IN_FLIGHT);
    ck_assert_int_eq(journal_finish_answer(j, sent.id, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);
        free(c.answer);
    }

    struct stats_seen ss = { .n = 0 };
    ck_assert_int_eq(journal_stats(j, collect_stats, &ss), 0);
    ck_assert_int_eq(ss.n, 1);
    const struct journal_host_stats *h = &ss.s[0];
    ck_assert_str_eq(h->host, "g.example");
    ck_assert_int_eq(h->requests, 4);
    ck_assert_int_eq(h->keys, 1);
    ck_assert_int_eq(h->retried_keys, 1);
    ck_assert_int_eq(h->outcomes[JOURNAL_PENDING], 0);
    ck_assert_int_eq(h->outcomes[JOURNAL_COMPLETED], 1);
    ck_assert_int_eq(h->outcomes[JOURNAL_REPLAYED], 2);
    ck_assert_int_eq(h->outcomes[JOURNAL_REFUSED], 1);
    ck_assert_int_eq(h->outcomes[JOURNAL_UNKNOWN], 0);
    ck_assert_int_eq(h->status_classes[2], 3);
    ck_assert_int_eq(h->status_classes[4], 1);
    ck_assert_int_eq(h->status_classes[0], 0);
    journal_close(j);
}
END_TEST

/* Turns a journal's schema-4 indexes and operations table back into
 * schema 3's (full keys and fingerprints), keeping the rows; the
 * operations' full fingerprints come from the attempts. */
static void make_schema_3(const char *p)
{
    sql_exec(p, "DROP INDEX attempts_key_prefix;"
                "CREATE INDEX attempts_key ON attempts(key, attempt);"
                "ALTER TABLE operations RENAME TO operations_v4;"
                "CREATE TABLE operations(fingerprint TEXT PRIMARY KEY,"
                " generation INTEGER NOT NULL, first_ms INTEGER NOT NULL) WITHOUT ROWID;"
                "INSERT INTO operations SELECT DISTINCT a.fingerprint, o.generation,"
                " o.first_ms FROM operations_v4 o JOIN attempts a"
                " ON substr(a.fingerprint, 1, 16) = o.fp;"
                "DROP TABLE operations_v4;"
                "PRAGMA user_version = 3");
}

START_TEST(test_v1_journal_migrates)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-v1", 1000);
    int64_t id;
    begin_ok(j, &a, &id);
    finish_ok(j, id, JOURNAL_COMPLETED, 500);
    journal_close(j);
    /* As retrysafe before guard mode left it. */
    make_schema_3(path);
    sql_exec(path, "DROP TABLE answers; DROP TABLE forgets; PRAGMA user_version = 1");
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master"
                                   " WHERE name IN ('answers', 'forgets')"), 0);

    j = open_ok(path, 0);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 4);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master"
                                   " WHERE name IN ('answers', 'forgets')"), 2);
    ck_assert_int_eq(count_rows(j), 1);
    struct journal_claim c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(c.attempt, 2);
    ck_assert_int_eq(c.state.attempts, 1);
    ck_assert_int_eq(journal_finish_answer(j, c.id, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, ANSWER_LEN);
    free(c.answer);
    int attempts = 0;
    ck_assert_int_eq(journal_forget(j, "k-v1", &attempts, NULL), 0);
    ck_assert_int_eq(attempts, 3);
    journal_close(j);
}
END_TEST

/* Schema 3 -> 4: the operations keep their generation and first time
 * under the fingerprint's first 16 digits; keys keep their numbering. */
START_TEST(test_v3_journal_migrates)
{
    static const char fp[] = "0123456789abcdef0123456789abcdef"
                             "0123456789abcdef0123456789abcdef";
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = attempt_of("h", "k-old", fp, 0, 1000);
    begin_ok(j, &a, NULL);
    a = attempt_of("h", "k-newer", fp, 1, 5000);   /* the window's next operation */
    int64_t newer;
    begin_ok(j, &a, &newer);
    ck_assert_int_eq(journal_finish_answer(j, newer, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    journal_close(j);
    make_schema_3(path);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM answers WHERE key = 'k-newer'"), 1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM operations"
                                   " WHERE length(fingerprint) = 64"), 1);

    j = open_ok(path, 0);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 4);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master"
                                   " WHERE name = 'attempts_key'"), 0);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master"
                                   " WHERE name = 'attempts_key_prefix'"), 1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM operations"
                                   " WHERE fp = '0123456789abcdef'"
                                   " AND generation = 1 AND first_ms = 5000"), 1);
    /* Within the window of generation 1's first attempt: still 1. */
    ck_assert_int_eq(generation_of(j, fp, 6000), 1);
    /* The answer came along. */
    struct journal_attempt g = guard_attempt("k-newer", 6500);
    struct journal_claim c;
    ck_assert_int_eq(claim_ok(j, &g, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, ANSWER_LEN);
    ck_assert_int_eq(memcmp(c.answer, answer_bytes, ANSWER_LEN), 0);
    free(c.answer);
    a = attempt_of("h", "k-newer", fp, 1, 7000);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 3);
    journal_close(j);
}
END_TEST

/* Counts the fingerprints of 16 digits. */
static int note_fingerprint(void *ctx, const char *fingerprint)
{
    *(int *)ctx += strlen(fingerprint) == 16;
    return 0;
}

/* Every lookup by key or fingerprint goes through an index, in a journal
 * big enough that a scan would show: checked by SQLite's own count of
 * full-scan steps, not by timing. */
START_TEST(test_lookups_use_indexes)
{
    struct journal *j = open_ok(path, 1);
    struct journal_op ops[500];
    char keys[500][24], fps[500][72];
    for (int i = 0; i < 500; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%08d", i * 7919);
        snprintf(fps[i], sizeof fps[i], "%016x%048d", (unsigned)i * 2654435761u, i);
        ops[i] = (struct journal_op){ .kind = JOURNAL_OP_BEGIN, .ref = -1,
                                      .attempt = attempt_of("h", keys[i], fps[i], 0, 1000 + i) };
    }
    ck_assert_int_eq(journal_apply(j, ops, 500), 0);
    for (int i = 0; i < 100; i++)   /* answers enough that a scan would show */
        ck_assert_int_eq(journal_finish_answer(j, ops[i].id, 200, 1, answer_bytes,
                                               ANSWER_LEN, 0), 0);
    ck_assert_int_ge(journal_full_scan_steps(j), 0);   /* starts the count */

    struct journal_attempt a = attempt_of("h", keys[250], fps[250], 0, 2000);
    ck_assert_int_eq(begin_ok(j, &a, NULL), 2);                 /* by key */
    ck_assert_int_eq(generation_of(j, fps[250], 3000), 0);       /* by fingerprint */
    a = guard_attempt("key-claimed", 3000);
    struct journal_claim c;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);  /* by key */
    ck_assert_int_eq(journal_finish_answer(j, c.id, 201, 3, answer_bytes, ANSWER_LEN, 0), 0);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_REPLAY);  /* its answer, by key */
    ck_assert_int_eq(c.state.answer_status, 201);
    free(c.answer);
    ck_assert_int_eq(journal_forget(j, "key-claimed", NULL, NULL), 0);
    int attempts = 0;
    ck_assert_int_eq(journal_forget(j, keys[77], &attempts, NULL), 0);
    ck_assert_int_eq(attempts, 1);
    ck_assert_int_eq(journal_full_scan_steps(j), 0);

    /* The filter of seen fingerprints is filled from the 16-digit prefixes. */
    int prefixes = 0;
    ck_assert_int_eq(journal_each_fingerprint(j, note_fingerprint, &prefixes), 0);
    ck_assert_int_eq(prefixes, 500);
    journal_close(j);
}
END_TEST

#define CLAIMERS 4

struct claimed {
    int verdict;   /* -1: the claim failed */
    int pid;
    int in_flight_pid;
    int attempt;
};

/* One claimer: waits for the start, claims, reports, then stays alive
 * until told to go home (a pending row of a dead process is unknown).
 * Returns the child's exit status. */
static int claimer(int go, int report, int home)
{
    char c, err[512] = "";
    struct claimed r = { -1, getpid(), 0, 0 };
    (void)!read(go, &c, 1);
    struct journal *j = journal_open(path, 1, err, sizeof err);
    struct journal_attempt a = guard_attempt("k-race", 1000);
    struct journal_guard_rules rules = { 0, 0 };
    struct journal_claim cl;
    if (!j)
        fprintf(stderr, "claimer: %s\n", err);
    else if (journal_claim(j, &a, &rules, &cl) != 0)
        fprintf(stderr, "claimer: %s\n", journal_error(j));
    else
        r = (struct claimed){ (int)cl.verdict, getpid(), cl.state.in_flight_pid,
                              cl.attempt };
    (void)!write(report, &r, sizeof r);
    (void)!read(home, &c, 1);
    journal_close(j);
    return 0;
}

START_TEST(test_claim_race)
{
    int go[2], report[2], home[2];
    pid_t pids[CLAIMERS];
    struct claimed got[CLAIMERS];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(report), 0);
    ck_assert_int_eq(pipe(home), 0);
    journal_close(open_ok(path, 1));   /* created; each opens its own */
    for (int i = 0; i < CLAIMERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(report[0]);
            close(home[1]);
            _exit(claimer(go[0], report[1], home[0]));
        }
    }
    close(go[0]);
    close(report[1]);
    close(home[0]);
    close(go[1]);   /* all start at once */
    for (int i = 0; i < CLAIMERS; i++)
        ck_assert_int_eq(read(report[0], &got[i], sizeof got[i]), (ssize_t)sizeof got[i]);
    close(home[1]);   /* go home */
    close(report[0]);
    for (int i = 0; i < CLAIMERS; i++)
        ck_assert_int_eq(wait_ok(pids[i]), 0);

    int sender = -1, refused = 0, attempts_seen = 0;
    for (int i = 0; i < CLAIMERS; i++) {
        ck_assert_int_ne(got[i].verdict, -1);
        ck_assert_int_ge(got[i].attempt, 1);
        ck_assert_int_le(got[i].attempt, CLAIMERS);
        ck_assert_msg(!(attempts_seen & (1 << got[i].attempt)), "attempt %d twice",
                      got[i].attempt);
        attempts_seen |= 1 << got[i].attempt;
        if (got[i].verdict == JOURNAL_SEND) {
            ck_assert_int_eq(sender, -1);
            sender = got[i].pid;
            ck_assert_int_eq(got[i].attempt, 1);
        } else {
            ck_assert_int_eq(got[i].verdict, JOURNAL_REFUSE_IN_FLIGHT);
            refused++;
        }
    }
    ck_assert_int_ne(sender, -1);
    ck_assert_int_eq(refused, CLAIMERS - 1);
    for (int i = 0; i < CLAIMERS; i++)
        if (got[i].verdict != JOURNAL_SEND)
            ck_assert_int_eq(got[i].in_flight_pid, sender);

    struct journal *j = open_ok(path, 0);
    struct rows rs = rows_of(j, NULL, 0, 0);
    ck_assert_int_eq(rs.n, CLAIMERS);
    int pending = 0;
    for (int i = 0; i < rs.n; i++) {
        if (rs.r[i].row.outcome == JOURNAL_PENDING) {
            ck_assert_int_eq(rs.r[i].row.pid, sender);
            pending++;
        } else {
            ck_assert_int_eq(rs.r[i].row.outcome, JOURNAL_REFUSED);
            ck_assert_int_eq(rs.r[i].row.status, 409);
        }
    }
    ck_assert_int_eq(pending, 1);
    free(rs.r);
    journal_close(j);
}
END_TEST

/* Generous timeouts: valgrind, and 8 processes on a loaded machine. */
static TCase *group(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return tc;
}

/* Found by review: a prune that takes a key's attempts but not its younger
 * answer; a late answer of a forgotten attempt; an empty answer. */
START_TEST(test_guard_answer_edges)
{
    struct journal *j = open_ok(path, 1);
    struct journal_claim c, old, fresh;
    int attempts = -1, answers = -1;

    struct journal_attempt a = guard_attempt("k-pruned", 1000);
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(journal_finish_answer(j, c.id, 201, 1, answer_bytes, ANSWER_LEN, 0), 0);
    ck_assert_int_eq(journal_prune(j, 2000, NULL), 0);   /* the attempt, not the answer */
    ck_assert_int_eq(journal_forget(j, "k-pruned", &attempts, &answers), 0);
    ck_assert_int_eq(attempts, 0);
    ck_assert_int_eq(answers, 1);
    a.time_ms = 3000;
    ck_assert_int_eq(claim_ok(j, &a, 1, 0, &c), JOURNAL_SEND);

    struct journal_attempt b = guard_attempt("k-late", 4000);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &old), JOURNAL_SEND);
    ck_assert_int_eq(journal_forget(j, "k-late", NULL, NULL), 0);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &fresh), JOURNAL_SEND);
    ck_assert_int_eq(journal_finish_answer(j, fresh.id, 200, 1, "new", 3, 0), 0);
    ck_assert_int_eq(journal_finish_answer(j, old.id, 200, 1, "old", 3, 0), 0);
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, 3);
    ck_assert_int_eq(memcmp(c.answer, "new", 3), 0);
    free(c.answer);

    struct journal_attempt e = guard_attempt("k-empty", 5000);
    ck_assert_int_eq(claim_ok(j, &e, 1, 0, &c), JOURNAL_SEND);
    ck_assert_int_eq(journal_finish_answer(j, c.id, 204, 1, "", 0, 0), 0);
    ck_assert_int_eq(claim_ok(j, &e, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, 0);
    ck_assert_int_eq(c.state.answer_too_large, 0);
    free(c.answer);
    journal_close(j);
}
END_TEST

/* journal_apply: a batch in one transaction, outcomes referring to rows of
 * the same batch or of earlier ones; a gone row is skipped. */
START_TEST(test_apply_batch)
{
    struct journal *j = open_ok(path, 1);
    struct journal_attempt a = guard_attempt("k-b1", 1000), b = guard_attempt("k-b2", 1001);
    struct journal_op ops[] = {
        { .kind = JOURNAL_OP_BEGIN, .attempt = a, .ref = -1 },
        { .kind = JOURNAL_OP_BEGIN, .attempt = b, .ref = -1 },
        { .kind = JOURNAL_OP_FINISH, .ref = 0, .outcome = JOURNAL_COMPLETED,
          .status = 201, .duration_ms = 7 },
        { .kind = JOURNAL_OP_FINISH, .id = 999999, .ref = -1,
          .outcome = JOURNAL_UNKNOWN },                       /* no such row */
        { .kind = JOURNAL_OP_ANSWER, .ref = 1, .status = 200, .duration_ms = 9,
          .answer = "HTTP/1.1 200 OK\r\n\r\n", .answer_len = 19 },
    };
    ck_assert_int_eq(journal_apply(j, ops, 5), 0);
    ck_assert_int_gt(ops[0].id, 0);
    ck_assert_int_eq(ops[1].id, ops[0].id + 1);
    struct seen first = row_by_id(j, ops[0].id), second = row_by_id(j, ops[1].id);
    ck_assert_int_eq(first.row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(first.row.status, 201);
    ck_assert_int_eq(first.row.duration_ms, 7);
    ck_assert_int_eq(second.row.outcome, JOURNAL_COMPLETED);
    ck_assert_int_eq(count_rows(j), 2);
    struct journal_claim c;
    ck_assert_int_eq(claim_ok(j, &b, 1, 0, &c), JOURNAL_REPLAY);
    ck_assert_uint_eq(c.answer_len, 19);
    free(c.answer);

    /* A later batch refers to a row by id. */
    struct journal_op later = { .kind = JOURNAL_OP_FINISH, .id = ops[0].id, .ref = -1,
                                .outcome = JOURNAL_UNKNOWN };
    ck_assert_int_eq(journal_apply(j, &later, 1), 0);
    ck_assert_int_eq(row_by_id(j, ops[0].id).row.outcome, JOURNAL_UNKNOWN);

    /* A failing op rolls the whole batch back; its BEGINs get no id. */
    struct journal_attempt bad = guard_attempt("k-b3", 1002);
    bad.outcome = (enum journal_outcome)42;
    struct journal_op failing[] = {
        { .kind = JOURNAL_OP_BEGIN, .attempt = guard_attempt("k-b4", 1003), .ref = -1 },
        { .kind = JOURNAL_OP_BEGIN, .attempt = bad, .ref = -1 },
    };
    ck_assert_int_eq(journal_apply(j, failing, 2), -1);
    ck_assert_int_eq(failing[0].id, 0);
    ck_assert_int_eq(count_rows(j), 3);   /* 2 + the replayed claim */
    ck_assert_int_eq(journal_apply(j, NULL, 0), 0);
    journal_close(j);
}
END_TEST

Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = group(s, "names");
    tcase_add_test(tc, test_outcome_names);
    tcase_add_test(tc, test_locations);

    tc = group(s, "files");
    tcase_add_test(tc, test_create_modes);
    tcase_add_test(tc, test_open_missing);
    tcase_add_test(tc, test_relative_and_empty_file);
    tcase_add_test(tc, test_reopen_keeps_rows);
    tcase_add_test(tc, test_newer_schema_refused);
    tcase_add_test(tc, test_foreign_database_refused);
    tcase_add_test(tc, test_corrupt_file);
    tcase_add_test(tc, test_unwritable_location);
    tcase_add_test(tc, test_symlink_refused);
    tcase_add_test(tc, test_other_owner_refused);
    tcase_add_test(tc, test_loose_mode_refused);
    tcase_add_test(tc, test_not_regular_refused);

    tc = group(s, "records");
    tcase_add_test(tc, test_begin_finish_roundtrip);
    tcase_add_test(tc, test_hostile_strings);
    tcase_add_test(tc, test_bad_calls);
    tcase_add_test(tc, test_attempt_numbering);
    tcase_add_test(tc, test_generation_window);
    tcase_add_test(tc, test_each_filters);
    tcase_add_test(tc, test_stats);
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_finish_process);

    tc = group(s, "sharing");
    tcase_add_test(tc, test_callback_reentry);
    tcase_add_test(tc, test_fork_without_handlers);
    tcase_add_test(tc, test_fork_with_handlers);
    tcase_add_test(tc, test_processes_concurrent);
    tcase_add_test(tc, test_threads_shared);
    tcase_add_test(tc, test_errors_per_thread);

    tc = group(s, "guard");
    tcase_add_test(tc, test_guard_rule);
    tcase_add_test(tc, test_claim_new_key);
    tcase_add_test(tc, test_claim_bad_calls);
    tcase_add_test(tc, test_claim_twin_in_flight);
    tcase_add_test(tc, test_claim_dead_twin_unknown);
    tcase_add_test(tc, test_claim_replays_answer);
    tcase_add_test(tc, test_claim_answer_too_large);
    tcase_add_test(tc, test_forget);
    tcase_add_test(tc, test_prune_answers);
    tcase_add_test(tc, test_guard_stats);
    tcase_add_test(tc, test_guard_answer_edges);
    tcase_add_test(tc, test_apply_batch);
    tcase_add_test(tc, test_v1_journal_migrates);
    tcase_add_test(tc, test_v3_journal_migrates);
    tcase_add_test(tc, test_lookups_use_indexes);
    tcase_add_test(tc, test_claim_race);
    return s;
}
