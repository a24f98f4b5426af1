/* journal_sqlite.c - the journal in one SQLite file shared by every process
 * of the user on the machine. See journal.h; journal.c serialises calls, so
 * nothing here is ever entered twice at once.
 *
 * This runs inside other people's processes, possibly beside their own use
 * of the same libsqlite3. So it changes nothing process-wide (no
 * sqlite3_config, no shutdown): every setting below belongs to its own
 * connection.
 *
 * Many processes write at once. The file is in WAL mode, so readers never
 * block writers; every write transaction starts with BEGIN IMMEDIATE, so
 * the wait for the write lock happens at BEGIN, where the busy handler
 * waits (up to JOURNAL_BUSY_TIMEOUT_MS), and never midway through, where
 * SQLite would fail at once rather than deadlock. synchronous=NORMAL: in
 * WAL mode a commit then costs no fsync; a power cut may lose the last
 * records, never the file. The fsyncs come with checkpoints, which the
 * commit that fills the WAL past 1000 pages runs (SQLite's default): two
 * fsyncs every hundred or so attempts, paid by one call.
 *
 * Every statement is prepared once, at open, with bound parameters only.
 */
#include "journal_backend.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* PRAGMA application_id of every retrysafe journal: "RSJL". Tells our
 * file from another program's database before anything is written. */
#define APPLICATION_ID 0x52534a4c

/* Rows deleted per transaction by prune: short enough that the shim's
 * writers, waiting at most JOURNAL_BUSY_TIMEOUT_MS, never notice. */
#define PRUNE_BATCH 1000

/* ---- schema ---- */

/* How keys and fingerprints are indexed (schema 4): by a prefix. The
 * same text in the index and in every lookup, which is how SQLite knows
 * to use an index on an expression. The whole key is compared as +key:
 * given "key = ?1", SQLite would put ?1 for key in the prefix term too
 * (constant propagation), which then no longer matches the index. */
#define KEY_PREFIX(x) "substr(" x ", 1, 8)"
#define FP_PREFIX(x) "substr(" x ", 1, 16)"
#define BY_KEY(param) KEY_PREFIX("key") " = " KEY_PREFIX(param) " AND +key = " param
/* A newer generation replaces the stored one; an attempt of the same one
 * may only move its first attempt earlier; older ones change nothing. */
#define OPERATION_UPSERT \
    "ON CONFLICT(fp) DO UPDATE SET" \
    " first_ms = CASE WHEN excluded.generation > generation" \
    "  THEN excluded.first_ms ELSE min(first_ms, excluded.first_ms) END," \
    " generation = excluded.generation" \
    " WHERE excluded.generation >= generation"

/* migrations[v] takes a journal from schema version v to v + 1, inside the
 * transaction that checked v, and ends by stating its version. Append
 * only; never edit a released step. 'pending' in the partial index must
 * stay journal_outcome_name(JOURNAL_PENDING).
 *
 * attempts: one row per attempt. AUTOINCREMENT because a process finishes
 * its row by id, maybe long after: an id must never be handed out twice,
 * even after prune emptied the table.
 * operations: the newest generation of each fingerprint and the time of
 * its first attempt, the window's whole state: one lookup, exact, and kept
 * by prune, so a request made again later never gets an old key back. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE attempts("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time_ms INTEGER NOT NULL,"        /* wall clock, ms since the epoch */
    " pid INTEGER NOT NULL,"
    " exe TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " key TEXT NOT NULL,"               /* '' when not tagged */
    " fingerprint TEXT NOT NULL,"
    " generation INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " tls INTEGER NOT NULL,"
    " body_len INTEGER NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 0,"
    " outcome TEXT NOT NULL,"           /* journal_outcome_name() */
    " duration_ms INTEGER NOT NULL DEFAULT -1);"
    "CREATE INDEX attempts_key ON attempts(key, attempt);"
    "CREATE INDEX attempts_time ON attempts(time_ms);"
    "CREATE INDEX attempts_host ON attempts(host, key);"
    "CREATE INDEX attempts_pending ON attempts(pid) WHERE outcome = 'pending';"
    "CREATE TABLE operations("
    " fingerprint TEXT PRIMARY KEY,"
    " generation INTEGER NOT NULL,"
    " first_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "PRAGMA application_id = 1381190220;"   /* APPLICATION_ID */
    "PRAGMA user_version = 1;",
    /* 1 -> 2: guard mode. answers: the final answer of each key, as the
     * server sent it (bytes NULL when it was too large to keep). forgets:
     * `retrysafe forget` - a key's attempts up to after_id no longer
     * count. */
    "CREATE TABLE answers("
    " key TEXT PRIMARY KEY,"
    " attempt_id INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " too_large INTEGER NOT NULL,"
    " bytes BLOB);"
    "CREATE INDEX answers_time ON answers(time_ms);"
    "CREATE TABLE forgets("
    " key TEXT PRIMARY KEY,"
    " after_id INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "PRAGMA user_version = 2;",
    /* 2 -> 3: every attempt paid for an index by host that only `retrysafe
     * stats` and `dump --host` used, which scan the table well enough. */
    ("DROP INDEX IF EXISTS attempts_host;"
     "PRAGMA user_version = 3;"),
    /* 3 -> 4: smaller indexes, for the writes' sake. Keys and fingerprints
     * are MACs, as good as random: every attempt landed on a random page
     * of both indexes, and wide entries (a 32-character key, a 64-digit
     * fingerprint) made those indexes many pages. A key is now indexed by
     * its first 8 characters (48 bits; lookups compare the whole key
     * too), and an operation is stored under its fingerprint's first 16
     * hex digits (64 bits, which the filter of seen fingerprints uses as
     * well: two operations would share a row at odds of about one in
     * 2^64 / n^2). With both, a journal of 100,000 attempts takes a new
     * one in about 60 % of the time. */
    ("DROP INDEX IF EXISTS attempts_key;"
     "CREATE INDEX attempts_key_prefix ON attempts(" KEY_PREFIX("key") ");"
     "CREATE TABLE operations_v4("
     " fp TEXT PRIMARY KEY,"             /* the fingerprint's 16 first digits */
     " generation INTEGER NOT NULL,"
     " first_ms INTEGER NOT NULL"
     ") WITHOUT ROWID;"
     "INSERT INTO operations_v4(fp, generation, first_ms)"
     " SELECT " FP_PREFIX("fingerprint") ", generation, first_ms FROM operations"
     " WHERE true " OPERATION_UPSERT ";"
     "DROP TABLE operations;"
     "ALTER TABLE operations_v4 RENAME TO operations;"
     "PRAGMA user_version = 4;"),
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- statements ---- */

enum stmt {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_NEXT_ATTEMPT, ST_INSERT, ST_OPERATION, ST_FINISH, ST_NEWEST,
    ST_EACH, ST_EACH_NEWEST, ST_STATS, ST_PRUNE, ST_FINISH_PROCESS,
    ST_BARRIER, ST_KEY_ATTEMPTS, ST_ANSWER, ST_SAVE_ANSWER, ST_KEY_COUNT,
    ST_FORGET, ST_DROP_ANSWER, ST_PRUNE_ANSWERS, ST_PRUNE_FORGETS,
    ST_FINGERPRINTS,
    ST_COUNT
};

#define ROW_COLUMNS "id, time_ms, pid, exe, method, host, path, key, " \
    "fingerprint, generation, attempt, tls, body_len, status, outcome, duration_ms"
#define ROW_FILTER "WHERE time_ms >= ?1 AND (?2 IS NULL OR host = ?2)"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* The highest, not the count: still distinct after prune removed some. */
    [ST_NEXT_ATTEMPT] =
        "SELECT coalesce(max(attempt), 0) + 1 FROM attempts WHERE " BY_KEY("?1"),
    [ST_INSERT] =
        "INSERT INTO attempts(time_ms, pid, exe, method, host, path, key,"
        " fingerprint, generation, attempt, tls, body_len, outcome, status,"
        " duration_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15)",
    [ST_OPERATION] =
        "INSERT INTO operations(fp, generation, first_ms)"
        " VALUES(" FP_PREFIX("?1") ", ?2, ?3) " OPERATION_UPSERT,
    [ST_FINISH] =
        "UPDATE attempts SET outcome = ?2, status = ?3, duration_ms = ?4"
        " WHERE id = ?1",
    [ST_NEWEST] =
        "SELECT generation, first_ms FROM operations WHERE fp = " FP_PREFIX("?1"),
    [ST_EACH] =
        "SELECT " ROW_COLUMNS " FROM attempts " ROW_FILTER
        " ORDER BY time_ms, id",
    [ST_EACH_NEWEST] =
        "SELECT * FROM (SELECT " ROW_COLUMNS " FROM attempts " ROW_FILTER
        " ORDER BY time_ms DESC, id DESC LIMIT ?3) ORDER BY time_ms, id",
    /* Per (host, key) first, so keys and retried keys come out of the same
     * pass as the counts. ?1..?5: the outcome names, in enum order. */
    [ST_STATS] =
        "SELECT host, sum(n), sum(key <> ''), sum(key <> '' AND n > 1),"
        " sum(o0), sum(o1), sum(o2), sum(o3), sum(o4), sum(o5), sum(o6),"
        " sum(s0), sum(s1), sum(s2), sum(s3), sum(s4), sum(s5)"
        " FROM (SELECT host, key, count(*) AS n,"
        "  sum(outcome = ?1) AS o0, sum(outcome = ?2) AS o1,"
        "  sum(outcome = ?3) AS o2, sum(outcome = ?4) AS o3,"
        "  sum(outcome = ?5) AS o4, sum(outcome = ?6) AS o5,"
        "  sum(outcome = ?7) AS o6,"
        "  sum(status NOT BETWEEN 100 AND 599) AS s0,"
        "  sum(status BETWEEN 100 AND 199) AS s1,"
        "  sum(status BETWEEN 200 AND 299) AS s2,"
        "  sum(status BETWEEN 300 AND 399) AS s3,"
        "  sum(status BETWEEN 400 AND 499) AS s4,"
        "  sum(status BETWEEN 500 AND 599) AS s5"
        "  FROM attempts GROUP BY host, key)"
        " GROUP BY host ORDER BY host",
    [ST_PRUNE] =
        "DELETE FROM attempts WHERE id IN"
        " (SELECT id FROM attempts WHERE time_ms < ?1 LIMIT ?2)",
    [ST_FINISH_PROCESS] =
        "UPDATE attempts SET outcome = ?2 WHERE pid = ?1 AND outcome = 'pending'",
    [ST_BARRIER] =
        "SELECT after_id FROM forgets WHERE key = ?1",
    [ST_KEY_ATTEMPTS] =
        "SELECT id, pid, outcome, time_ms, attempt FROM attempts"
        " WHERE " BY_KEY("?1") " AND +id > ?2 ORDER BY id",   /* +: by key, not id */
    [ST_ANSWER] =
        "SELECT status, too_large, bytes FROM answers"
        " WHERE key = ?1 AND attempt_id > ?2",
    /* The key comes from the attempt's own row. */
    [ST_SAVE_ANSWER] =
        "INSERT INTO answers(key, attempt_id, time_ms, status, too_large, bytes)"
        " SELECT key, id, ?2, ?3, ?4, ?5 FROM attempts WHERE id = ?1 AND key <> ''"
        " ON CONFLICT(key) DO UPDATE SET attempt_id = excluded.attempt_id,"
        " time_ms = excluded.time_ms, status = excluded.status,"
        " too_large = excluded.too_large, bytes = excluded.bytes"
        /* A late answer to an older attempt (one forgotten since) must
         * not replace a newer attempt's. */
        " WHERE excluded.attempt_id > answers.attempt_id",
    /* The barrier covers the key's attempts and its answer, even when
     * prune took the attempts and left the (younger) answer. */
    [ST_KEY_COUNT] =
        "SELECT (SELECT count(*) FROM attempts WHERE " BY_KEY("?1") "),"
        " max((SELECT coalesce(max(id), 0) FROM attempts WHERE " BY_KEY("?1") "),"
        "  (SELECT coalesce(max(attempt_id), 0) FROM answers WHERE key = ?1)),"
        " (SELECT count(*) FROM answers WHERE key = ?1)",
    [ST_FORGET] =
        "INSERT INTO forgets(key, after_id, time_ms) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(key) DO UPDATE SET after_id = excluded.after_id,"
        " time_ms = excluded.time_ms",
    [ST_DROP_ANSWER] = "DELETE FROM answers WHERE key = ?1",
    [ST_PRUNE_ANSWERS] = "DELETE FROM answers WHERE time_ms < ?1",
    /* A barrier is younger than every attempt it hides: once it is older
     * than the cut, so are they, and they are gone. */
    [ST_PRUNE_FORGETS] = "DELETE FROM forgets WHERE time_ms < ?1",
    /* What the filter of seen fingerprints needs: their 64 first bits. */
    [ST_FINGERPRINTS] = "SELECT fp FROM operations",
};

struct sq {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;
    int64_t wait_start_ms;    /* when the current wait for a lock began */
    unsigned seed;            /* for the pauses' jitter */
};

/* ---- errors ---- */

/* Reports the connection's last error, as "<what> <path>: <why>". */
static int fail_db(struct sq *s, const char *what)
{
    int code = sqlite3_extended_errcode(s->db) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        char text[512];
        snprintf(text, sizeof(text), "%s %s: another process kept it locked "
                 "for over %d ms", what, s->path, JOURNAL_BUSY_TIMEOUT_MS);
        return journal_fail_busy(text);
    }
    if (code == SQLITE_NOTADB)
        return journal_fail("%s is not a retrysafe journal: %s", s->path,
                            sqlite3_errmsg(s->db));
    return journal_fail("%s %s: %s", what, s->path, sqlite3_errmsg(s->db));
}

/* ---- statement helpers ---- */

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Steps a statement that returns no row, and resets it. */
static int run(struct sq *s, enum stmt id, const char *what)
{
    int rc = sqlite3_step(s->st[id]) == SQLITE_DONE ? 0 : fail_db(s, what);
    sqlite3_reset(s->st[id]);
    return rc;
}

/* Runs constant SQL (setup and migrations only). */
static int exec(struct sq *s, const char *sql, const char *what)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
           : fail_db(s, what);
}

/* Ends a failed transaction, if SQLite has not already; the first error
 * is the one worth reporting, so this one reports nothing. */
static void rollback(struct sq *s)
{
    if (sqlite3_get_autocommit(s->db))
        return;
    sqlite3_step(s->st[ST_ROLLBACK]);
    sqlite3_reset(s->st[ST_ROLLBACK]);
}

static int begin_write(struct sq *s, const char *what)
{
    rollback(s);   /* never inherit a transaction a failure left open */
    return run(s, ST_BEGIN, what);
}

static int commit(struct sq *s, const char *what)
{
    if (run(s, ST_COMMIT, what) == 0)
        return 0;
    rollback(s);
    return -1;
}

static int valid_outcome(enum journal_outcome outcome)
{
    return (unsigned)outcome < JOURNAL_OUTCOMES;
}

/* ---- the file ---- */

/* Makes one directory of the journal's path unless it exists. A new one
 * is 0700 whatever the umask; an existing one is left as its owner set it
 * (and may be a link: ~/.local is often one). */
static int make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (mkdir(dir, 0700) == 0 && chmod(dir, 0700) == 0)
        return 0;
    /* Another process made it between the stat and the mkdir. */
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (errno == EEXIST)
        errno = ENOTDIR;
    return journal_fail("cannot create directory %s for the journal: %s",
                        dir, strerror(errno));
}

/* mkdir -p of the directory that holds path. */
static int make_parents(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return journal_fail("cannot open journal %s: out of memory", path);
    char *end = strrchr(dir, '/');
    int rc = 0;
    if (end && end > dir) {
        *end = '\0';
        /* Each prefix ending before a '/' or at the end; "//" names none. */
        for (char *p = dir + 1; rc == 0 && p <= end; p++) {
            if ((*p != '/' && *p != '\0') || p[-1] == '/')
                continue;
            char saved = *p;
            *p = '\0';
            rc = make_dir(dir);
            *p = saved;
        }
    }
    free(dir);
    return rc;
}

/* Creates an empty journal file, 0600 whatever the umask, unless the name
 * exists (as anything, even a dangling link: O_EXCL never follows one).
 * SQLite gives its -wal and -shm files the same mode. */
static int create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
                  O_NOCTTY, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0
               : journal_fail("cannot create journal %s: %s", path,
                              strerror(errno));
    int rc = fchmod(fd, 0600) == 0 ? 0
             : journal_fail("cannot create journal %s: %s", path,
                            strerror(errno));
    close(fd);
    return rc;
}

/* The journal must be a regular file of this user, never a link: other
 * processes of the user trust what it says (guard mode acts on it). */
static int check_file(const char *path, const struct stat *st)
{
    if (S_ISLNK(st->st_mode))
        return journal_fail("refusing journal %s: it is a symbolic link", path);
    if (!S_ISREG(st->st_mode))
        return journal_fail("refusing journal %s: it is not a regular file",
                            path);
    if (st->st_uid != geteuid())
        return journal_fail("refusing journal %s: it belongs to uid %lu, not "
                            "to uid %lu", path, (unsigned long)st->st_uid,
                            (unsigned long)geteuid());
    if (st->st_mode & 022)
        return journal_fail("refusing journal %s: mode %04o lets other users "
                            "change it (chmod 600 %s)", path,
                            (unsigned)(st->st_mode & 07777), path);
    return 0;
}

static int prepare_file(const char *path, int create)
{
    struct stat st;
    /* SQLite built with URI support would read "file:..." as options. */
    if (strncmp(path, "file:", 5) == 0)
        return journal_fail("journal location %s: give a plain file path, "
                            "not a file: URI", path);
    if (create && (make_parents(path) < 0 || create_file(path) < 0))
        return -1;
    if (lstat(path, &st) == 0)
        return check_file(path, &st);
    if (errno == ENOENT)
        return journal_fail("no journal at %s", path);
    return journal_fail("cannot open journal %s: %s", path, strerror(errno));
}

/* ---- waiting for locks ---- */

/* Sleeps a little before the tries-th retry: short, growing, jittered
 * pauses (0.1 ms up to 4 ms). SQLite's own busy handler sleeps up to
 * 100 ms at a time: under heavy contention a process could miss every
 * gap between other writers' short transactions and fail; many short
 * tries share the lock fairly. */
static void pause_before_retry(struct sq *s, int tries)
{
    long us = 100L << (tries < 6 ? tries : 6);
    if (us > 4000)
        us = 4000;
    us = us / 2 + (long)(rand_r(&s->seed) % (unsigned)(us / 2 + 1));
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* The connection's busy handler: retry until JOURNAL_BUSY_TIMEOUT_MS
 * after the first refusal, then let the call fail. */
static int busy_wait(void *arg, int tries)
{
    struct sq *s = arg;
    if (tries == 0)
        s->wait_start_ms = clock_ms(CLOCK_MONOTONIC);
    else if (clock_ms(CLOCK_MONOTONIC) - s->wait_start_ms >= JOURNAL_BUSY_TIMEOUT_MS)
        return 0;
    pause_before_retry(s, tries);
    return 1;
}

/* ---- connecting ---- */

/* path with the links of its directory resolved (malloc'd), or NULL.
 * SQLite's NOFOLLOW refuses a link anywhere in the name, and a state
 * directory reached through one (a symlinked ~/.local) is common; the
 * links on the way were checked (private_path: the user's or root's),
 * and the file itself is still never followed. */
static char *with_real_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path))
                      : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL, *out = NULL;
    const char *name = slash ? slash + 1 : path;
    if (real && (out = malloc(strlen(real) + strlen(name) + 2)))
        sprintf(out, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", name);
    free(real);
    free(dir);
    return out;
}

static int connect_db(struct sq *s)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
    flags |= SQLITE_OPEN_NOFOLLOW;
#endif
#ifdef SQLITE_OPEN_EXRESCODE
    flags |= SQLITE_OPEN_EXRESCODE;
#endif
    char *real = with_real_dir(s->path);
    int rc = sqlite3_open_v2(real ? real : s->path, &s->db, flags, NULL);
    free(real);
    if (rc != SQLITE_OK)
        return journal_fail("cannot open journal %s: %s", s->path,
                            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    /* No connection mutex: the host's libsqlite3 runs single-threaded
     * (built so, or configured so by the host), and the host's threads
     * calling it beside ours would corrupt its state. */
    if (!sqlite3_db_mutex(s->db))
        return journal_fail("cannot open journal %s: this process's SQLite "
                            "library runs without thread safety", s->path);
    sqlite3_extended_result_codes(s->db, 1);
    s->seed = (unsigned)getpid() ^ (unsigned)(uintptr_t)s;
    sqlite3_busy_handler(s->db, busy_wait, s);
    /* A modest cache (this lives in someone else's process). No memory
     * map of the file: an I/O error on a mapped page (a network home
     * directory) would be a SIGBUS in the host, not an error we can
     * survive. trusted_schema: functions in the schema never run on our
     * behalf. */
    return exec(s, "PRAGMA synchronous = NORMAL;"
                   "PRAGMA trusted_schema = OFF;"
                   "PRAGMA cache_size = -2048;"
                   "PRAGMA journal_size_limit = 4194304;",
                "cannot set up journal");
}

/* Reads what the file is: ours (at *version), empty (version 0), or
 * something else (an error). */
static int identify(struct sq *s, int *version)
{
    static const char sql[] =
        "SELECT (SELECT application_id FROM pragma_application_id),"
        " (SELECT user_version FROM pragma_user_version),"
        " (SELECT count(*) FROM sqlite_master)";
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = fail_db(s, "cannot read journal");
    } else {
        int app = sqlite3_column_int(st, 0);
        int ver = sqlite3_column_int(st, 1);
        int tables = sqlite3_column_int(st, 2);
        if (app == APPLICATION_ID && ver > SCHEMA_VERSION)
            journal_fail("journal %s was written by a newer retrysafe "
                         "(schema %d; this one knows up to %d)", s->path, ver,
                         SCHEMA_VERSION);
        else if (app == APPLICATION_ID || (app == 0 && ver == 0 && tables == 0)) {
            *version = ver;
            rc = 0;
        } else
            journal_fail("%s is not a retrysafe journal: it is another "
                         "program's SQLite database", s->path);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Switches a new journal to WAL mode (a no-op for every later open: the
 * mode is stored in the file). The switch reads the header, then writes
 * it; when another process wins the race to write it first, SQLite
 * answers BUSY at once rather than call the busy handler (waiting while
 * holding a read lock could deadlock). So wait here, read again, and find
 * the winner's WAL header: bounded by the same timeout. */
static int set_wal(struct sq *s)
{
    sqlite3_stmt *st = NULL;
    const char *mode = NULL;
    int64_t deadline = clock_ms(CLOCK_MONOTONIC) + JOURNAL_BUSY_TIMEOUT_MS;
    int tries = 0;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
                                NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) != SQLITE_ROW &&
           (rc & 0xff) == SQLITE_BUSY && clock_ms(CLOCK_MONOTONIC) < deadline) {
        sqlite3_reset(st);
        pause_before_retry(s, tries++);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_ROW)
        rc = fail_db(s, "cannot use WAL mode for journal");
    else if (!(mode = (const char *)sqlite3_column_text(st, 0)) ||
             sqlite3_stricmp(mode, "wal") != 0)
        rc = journal_fail("cannot use WAL mode for journal %s: it stays in "
                          "%s mode", s->path, mode ? mode : "another");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* Brings the schema to SCHEMA_VERSION. Under the write lock, the version
 * is read again: another process may have migrated meanwhile. */
static int migrate(struct sq *s)
{
    const char *what = "cannot set up journal";
    int version = 0;
    if (exec(s, "BEGIN IMMEDIATE", what) < 0)
        return -1;
    int rc = identify(s, &version);
    for (; rc == 0 && version < SCHEMA_VERSION; version++)
        rc = exec(s, migrations[version], what);
    if (rc == 0)
        rc = exec(s, "COMMIT", what);
    if (rc < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Identity first: WAL mode is a change to the file, and a file that is not
 * ours must be left exactly as it was. */
static int load_schema(struct sq *s)
{
    int version = 0;
    if (identify(s, &version) < 0 || set_wal(s) < 0)
        return -1;
    return version == SCHEMA_VERSION ? 0 : migrate(s);
}

static int prepare_all(struct sq *s)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL)
                != SQLITE_OK)
            return fail_db(s, "cannot prepare statements for journal");
    return 0;
}

static void sq_close(void *state)
{
    struct sq *s = state;
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static void *sq_open(const char *path, int create)
{
    struct sq *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        journal_fail("cannot open journal %s: out of memory", path);
        sq_close(s);
        return NULL;
    }
    if (prepare_file(path, create) < 0 || connect_db(s) < 0 ||
        load_schema(s) < 0 || prepare_all(s) < 0) {
        sq_close(s);
        return NULL;
    }
    return s;
}

/* ---- recording ---- */

static int next_attempt(struct sq *s, const char *key, int *attempt)
{
    sqlite3_stmt *st = s->st[ST_NEXT_ATTEMPT];
    int rc = -1;
    if (bind_text(st, 1, key) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *attempt = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        fail_db(s, "cannot number an attempt in");
    }
    sqlite3_reset(st);
    return rc;
}

/* outcome and status: the row's whole outcome (an attempt that was never
 * sent is finished when it is recorded). */
static int insert_attempt(struct sq *s, const struct journal_attempt *a,
                          int attempt, enum journal_outcome outcome, int status,
                          int64_t duration_ms)
{
    sqlite3_stmt *st = s->st[ST_INSERT];
    if (sqlite3_bind_int64(st, 1, a->time_ms) ||
        sqlite3_bind_int(st, 2, a->pid) ||
        bind_text(st, 3, a->exe) || bind_text(st, 4, a->method) ||
        bind_text(st, 5, a->host) || bind_text(st, 6, a->path) ||
        bind_text(st, 7, a->key) || bind_text(st, 8, a->fingerprint) ||
        sqlite3_bind_int(st, 9, a->generation) ||
        sqlite3_bind_int(st, 10, attempt) ||
        sqlite3_bind_int(st, 11, a->tls != 0) ||
        sqlite3_bind_int64(st, 12, a->body_len) ||
        bind_text(st, 13, journal_outcome_name(outcome)) ||
        sqlite3_bind_int(st, 14, status) ||
        sqlite3_bind_int64(st, 15, outcome == JOURNAL_PENDING ? -1 : duration_ms))
        return fail_db(s, "cannot record an attempt in");
    return run(s, ST_INSERT, "cannot record an attempt in");
}

static int note_operation(struct sq *s, const struct journal_attempt *a)
{
    sqlite3_stmt *st = s->st[ST_OPERATION];
    if (bind_text(st, 1, a->fingerprint) ||
        sqlite3_bind_int(st, 2, a->generation) ||
        sqlite3_bind_int64(st, 3, a->time_ms))
        return fail_db(s, "cannot record an operation in");
    return run(s, ST_OPERATION, "cannot record an operation in");
}

/* Inside a write transaction: numbers the attempt, inserts its row and
 * notes its operation (the window's state). */
static int record_attempt(struct sq *s, const struct journal_attempt *a,
                          enum journal_outcome outcome, int status,
                          int64_t duration_ms, int64_t *id, int *attempt)
{
    int rc = a->key && *a->key ? next_attempt(s, a->key, attempt) : 0;
    if (rc == 0)
        rc = insert_attempt(s, a, *attempt, outcome, status, duration_ms);
    *id = sqlite3_last_insert_rowid(s->db);
    if (rc == 0 && a->fingerprint && *a->fingerprint)
        rc = note_operation(s, a);
    return rc;
}

/* Numbering and inserting in one IMMEDIATE transaction: two processes
 * retrying the same key at once get distinct attempt numbers. */
static int sq_begin(void *state, const struct journal_attempt *a, int64_t *id,
                    int *attempt)
{
    struct sq *s = state;
    const char *what = "cannot record an attempt in";
    int n = 1;
    if (!valid_outcome(a->outcome))
        return journal_fail("cannot record an attempt with outcome %d",
                            (int)a->outcome);
    int64_t rowid = 0;
    if (begin_write(s, what) < 0)
        return -1;
    int rc = record_attempt(s, a, a->outcome, 0, 0, &rowid, &n);
    if (rc == 0)
        rc = commit(s, what);
    if (rc < 0) {
        rollback(s);
        return -1;
    }
    if (id)
        *id = rowid;
    if (attempt)
        *attempt = n;
    return 0;
}

/* Returns 0, 1 when no row has that id (pruned meanwhile), or -1. */
static int update_outcome(struct sq *s, int64_t id, enum journal_outcome outcome,
                          int status, int64_t duration_ms)
{
    sqlite3_stmt *st = s->st[ST_FINISH];
    const char *what = "cannot record an outcome in";
    if (!valid_outcome(outcome))
        return journal_fail("cannot record outcome %d", (int)outcome);
    if (sqlite3_bind_int64(st, 1, id) ||
        bind_text(st, 2, journal_outcome_name(outcome)) ||
        sqlite3_bind_int(st, 3, status) ||
        sqlite3_bind_int64(st, 4, duration_ms))
        return fail_db(s, what);
    if (run(s, ST_FINISH, what) < 0)
        return -1;
    return sqlite3_changes(s->db) == 0;
}

static int sq_finish(void *state, int64_t id, enum journal_outcome outcome,
                     int status, int64_t duration_ms)
{
    struct sq *s = state;
    int rc = update_outcome(s, id, outcome, status, duration_ms);
    if (rc > 0)
        return journal_fail("cannot record an outcome in %s: no attempt %lld "
                            "(pruned?)", s->path, (long long)id);
    return rc;
}

static int sq_finish_process(void *state, int pid, enum journal_outcome outcome)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[ST_FINISH_PROCESS];
    const char *what = "cannot record the outcomes of a process in";
    if (!valid_outcome(outcome))
        return journal_fail("cannot record outcome %d", (int)outcome);
    if (sqlite3_bind_int(st, 1, pid) ||
        bind_text(st, 2, journal_outcome_name(outcome)))
        return fail_db(s, what);
    return run(s, ST_FINISH_PROCESS, what);
}

static int sq_prune(void *state, int64_t before_ms, int64_t *deleted)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[ST_PRUNE];
    const char *what = "cannot prune journal";
    int n = PRUNE_BATCH;
    *deleted = 0;
    /* One short transaction per batch: a writer never waits for more. */
    while (n == PRUNE_BATCH) {
        if (sqlite3_bind_int64(st, 1, before_ms) ||
            sqlite3_bind_int(st, 2, PRUNE_BATCH))
            return fail_db(s, what);
        if (run(s, ST_PRUNE, what) < 0)
            return -1;
        n = sqlite3_changes(s->db);
        *deleted += n;
    }
    if (sqlite3_bind_int64(s->st[ST_PRUNE_ANSWERS], 1, before_ms) ||
        sqlite3_bind_int64(s->st[ST_PRUNE_FORGETS], 1, before_ms))
        return fail_db(s, what);
    if (run(s, ST_PRUNE_ANSWERS, what) < 0 || run(s, ST_PRUNE_FORGETS, what) < 0)
        return -1;
    return 0;
}

/* ---- guard mode ---- */

static const char *text_column(sqlite3_stmt *st, int i);

/* The id up to which key's attempts were forgotten (0: none). */
static int barrier_of(struct sq *s, const char *key, int64_t *after_id)
{
    sqlite3_stmt *st = s->st[ST_BARRIER];
    int rc = bind_text(st, 1, key) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
    *after_id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    return rc;
}

/* Counts key's attempts since the barrier into k. A pending attempt of a
 * process that is gone will never be finished by it: it becomes unknown
 * here, for dump as much as for the rule. */
static int read_attempts(struct sq *s, const char *key, int64_t after_id,
                         struct journal_key_state *k)
{
    sqlite3_stmt *st = s->st[ST_KEY_ATTEMPTS];
    int64_t dead[16];
    int n_dead = 0, rc;
    if (bind_text(st, 1, key) || sqlite3_bind_int64(st, 2, after_id))
        return fail_db(s, "cannot read journal");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum journal_outcome o = JOURNAL_UNKNOWN;
        int pid = sqlite3_column_int(st, 1);
        journal_outcome_parse(text_column(st, 2), &o);
        if (!k->first_ms)
            k->first_ms = sqlite3_column_int64(st, 3);
        if (sqlite3_column_int(st, 4) > k->attempts)
            k->attempts = sqlite3_column_int(st, 4);
        if (o == JOURNAL_PENDING && journal_process_alive(pid)) {
            k->in_flight++;
            k->in_flight_pid = pid;
        } else if (o == JOURNAL_PENDING || o == JOURNAL_UNKNOWN) {
            k->unknown++;
            if (o == JOURNAL_PENDING && n_dead < 16)
                dead[n_dead++] = sqlite3_column_int64(st, 0);
        }
    }
    rc = rc == SQLITE_DONE ? 0 : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    for (int i = 0; rc == 0 && i < n_dead; i++)
        rc = sq_finish(s, dead[i], JOURNAL_UNKNOWN, 0, -1);
    return rc;
}

/* The key's final answer since the barrier, into k (and a copy of its
 * bytes into out when asked). */
static int read_answer(struct sq *s, const char *key, int64_t after_id,
                       struct journal_key_state *k, struct journal_claim *out)
{
    sqlite3_stmt *st = s->st[ST_ANSWER];
    if (bind_text(st, 1, key) || sqlite3_bind_int64(st, 2, after_id))
        return fail_db(s, "cannot read journal");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        k->answered = 1;
        k->answer_status = sqlite3_column_int(st, 0);
        k->answer_too_large = sqlite3_column_int(st, 1) != 0;
        /* An empty blob reads back as NULL: only too_large says "none". */
        const void *bytes = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        if (k->answer_too_large)
            ;
        else if (out && !(out->answer = malloc(len ? len : 1)))
            rc = journal_fail("cannot read an answer from %s: out of memory",
                              s->path);
        else if (out) {
            if (len)
                memcpy(out->answer, bytes, len);
            out->answer_len = len;
        }
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
         : rc == -1 ? -1 : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    return rc;
}

/* Looking and recording in one IMMEDIATE transaction: no other process
 * can claim the key in between. */
static int sq_claim(void *state, const struct journal_attempt *a,
                    const struct journal_guard_rules *rules,
                    struct journal_claim *out)
{
    struct sq *s = state;
    const char *what = "cannot record an attempt in";
    int64_t after_id = 0;
    if (begin_write(s, what) < 0)
        return -1;
    int rc = barrier_of(s, a->key, &after_id);
    if (rc == 0)
        rc = read_attempts(s, a->key, after_id, &out->state);
    if (rc == 0)
        rc = read_answer(s, a->key, after_id, &out->state, out);
    if (rc == 0) {
        out->verdict = journal_guard_rule(&out->state, rules);
        if (out->verdict != JOURNAL_REPLAY) {
            free(out->answer);
            out->answer = NULL;
            out->answer_len = 0;
        }
    }
    if (rc == 0 && out->verdict != JOURNAL_WAIT) {
        rc = record_attempt(s, a, journal_claim_outcome(out->verdict),
                            journal_claim_status(out), 0, &out->id, &out->attempt);
    }
    if (rc == 0)
        rc = commit(s, what);
    if (rc < 0) {
        rollback(s);
        free(out->answer);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* Inside a write transaction: the attempt completed, and its answer is
 * kept for the key. Returns 0, 1 when the row is gone, or -1. */
/* outcome_recorded: the row says completed already (its BEGIN, in the
 * same batch, came with the outcome folded in). */
static int save_answer(struct sq *s, int64_t id, int status, int64_t duration_ms,
                       const char *answer, size_t len, int too_large, int outcome_recorded)
{
    sqlite3_stmt *st = s->st[ST_SAVE_ANSWER];
    const char *what = "cannot record an answer in";
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (len > INT32_MAX)
        return journal_fail("%s %s: %zu bytes", what, s->path, len);
    int rc = outcome_recorded ? 0
                              : update_outcome(s, id, JOURNAL_COMPLETED, status, duration_ms);
    if (rc == 0 &&
        (sqlite3_bind_int64(st, 1, id) ||
         sqlite3_bind_int64(st, 2, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000) ||
         sqlite3_bind_int(st, 3, status) ||
         sqlite3_bind_int(st, 4, too_large != 0) ||
         (too_large || !answer ? sqlite3_bind_null(st, 5)
                               : sqlite3_bind_blob(st, 5, answer, (int)len, SQLITE_STATIC))))
        rc = fail_db(s, what);
    if (rc == 0)
        rc = run(s, ST_SAVE_ANSWER, what);
    sqlite3_bind_null(st, 5);   /* the statement must not keep the pointer */
    return rc;
}

static int sq_finish_answer(void *state, int64_t id, int status,
                            int64_t duration_ms, const char *answer, size_t len,
                            int too_large)
{
    struct sq *s = state;
    const char *what = "cannot record an answer in";
    if (begin_write(s, what) < 0)
        return -1;
    int rc = save_answer(s, id, status, duration_ms, answer, len, too_large, 0);
    if (rc > 0)
        rc = journal_fail("%s %s: no attempt %lld (pruned?)", what, s->path,
                          (long long)id);
    if (rc == 0)
        rc = commit(s, what);
    if (rc < 0)
        rollback(s);
    return rc;
}

/* One op of a batch. Returns 0 (or 1: its row is gone, skipped) or -1. */
static int apply_one(struct sq *s, struct journal_op *ops, struct journal_op *op)
{
    int64_t id = op->ref >= 0 ? ops[op->ref].id : op->id;
    int attempt = 1;
    switch (op->kind) {
    case JOURNAL_OP_BEGIN:
        if (!valid_outcome(op->attempt.outcome))
            return journal_fail("cannot record an attempt with outcome %d",
                                (int)op->attempt.outcome);
        /* An outcome queued in the same batch comes with the row. */
        return record_attempt(s, &op->attempt, op->attempt.outcome, op->status,
                              op->duration_ms, &op->id, &attempt);
    case JOURNAL_OP_FINISH:
        return id > 0 ? update_outcome(s, id, op->outcome, op->status, op->duration_ms)
                      : 1;
    case JOURNAL_OP_ANSWER:
        return id > 0 ? save_answer(s, id, op->status, op->duration_ms, op->answer,
                                    op->answer_len, op->too_large,
                                    op->ref >= 0 &&
                                    ops[op->ref].attempt.outcome == JOURNAL_COMPLETED)
                      : 1;
    }
    return journal_fail("unknown journal op %d", (int)op->kind);
}

static int sq_apply(void *state, struct journal_op *ops, size_t n)
{
    struct sq *s = state;
    const char *what = "cannot record a batch in";
    if (begin_write(s, what) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++)
        rc = apply_one(s, ops, &ops[i]);
    if (rc >= 0)
        rc = commit(s, what);
    if (rc < 0) {
        rollback(s);
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == JOURNAL_OP_BEGIN)
                ops[i].id = 0;
    }
    return rc < 0 ? -1 : 0;
}

static int sq_forget(void *state, const char *key, int *attempts, int *answers)
{
    struct sq *s = state;
    sqlite3_stmt *count = s->st[ST_KEY_COUNT], *forget = s->st[ST_FORGET];
    const char *what = "cannot forget a key in";
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (begin_write(s, what) < 0)
        return -1;
    int64_t last_id = 0;
    int rc = bind_text(count, 1, key) == SQLITE_OK ? sqlite3_step(count) : SQLITE_ERROR;
    if (rc == SQLITE_ROW) {
        *attempts = sqlite3_column_int(count, 0);
        last_id = sqlite3_column_int64(count, 1);
        *answers = sqlite3_column_int(count, 2);
        rc = 0;
    } else {
        rc = fail_db(s, what);
    }
    sqlite3_reset(count);
    if (rc == 0 && (*attempts > 0 || *answers > 0)) {
        if (bind_text(forget, 1, key) || sqlite3_bind_int64(forget, 2, last_id) ||
            sqlite3_bind_int64(forget, 3,
                               (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000) ||
            bind_text(s->st[ST_DROP_ANSWER], 1, key))
            rc = fail_db(s, what);
        if (rc == 0)
            rc = run(s, ST_FORGET, what);
        if (rc == 0)
            rc = run(s, ST_DROP_ANSWER, what);
    }
    if (rc == 0)
        rc = commit(s, what);
    if (rc < 0)
        rollback(s);
    return rc;
}

/* ---- reading ---- */

static int sq_newest(void *state, const char *fingerprint, int *found,
                     int *generation, int64_t *first_ms)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[ST_NEWEST];
    int rc = bind_text(st, 1, fingerprint) == SQLITE_OK ? sqlite3_step(st)
                                                        : SQLITE_ERROR;
    *found = rc == SQLITE_ROW;
    if (*found) {
        *generation = sqlite3_column_int(st, 0);
        *first_ms = sqlite3_column_int64(st, 1);
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
         : fail_db(s, "cannot look up an operation in");
    sqlite3_reset(st);
    return rc;
}

static const char *text_column(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static void read_row(sqlite3_stmt *st, struct journal_row *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->time_ms = sqlite3_column_int64(st, 1);
    r->pid = sqlite3_column_int(st, 2);
    r->exe = text_column(st, 3);
    r->method = text_column(st, 4);
    r->host = text_column(st, 5);
    r->path = text_column(st, 6);
    r->key = text_column(st, 7);
    r->fingerprint = text_column(st, 8);
    r->generation = sqlite3_column_int(st, 9);
    r->attempt = sqlite3_column_int(st, 10);
    r->tls = sqlite3_column_int(st, 11);
    r->body_len = sqlite3_column_int64(st, 12);
    r->status = sqlite3_column_int(st, 13);
    if (journal_outcome_parse(text_column(st, 14), &r->outcome) < 0)
        r->outcome = JOURNAL_UNKNOWN;
    r->duration_ms = sqlite3_column_int64(st, 15);
    r->settled = 0;   /* a reader asks the kernel about a pending row's pid */
}

static int sq_each(void *state, const struct journal_filter *f,
                   int (*fn)(void *ctx, const struct journal_row *row),
                   void *ctx)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[f->limit > 0 ? ST_EACH_NEWEST : ST_EACH];
    struct journal_row row;
    int rc = SQLITE_ERROR;
    if (sqlite3_bind_int64(st, 1, f->since_ms > 0 ? f->since_ms : INT64_MIN) ||
        (f->host ? bind_text(st, 2, f->host) : sqlite3_bind_null(st, 2)) ||
        (f->limit > 0 && sqlite3_bind_int64(st, 3, f->limit)))
        return fail_db(s, "cannot read journal");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_row(st, &row);
        if (fn(ctx, &row))
            break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
         : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    return rc;
}

static void read_stats(sqlite3_stmt *st, struct journal_host_stats *h)
{
    h->host = text_column(st, 0);
    h->requests = sqlite3_column_int64(st, 1);
    h->keys = sqlite3_column_int64(st, 2);
    h->retried_keys = sqlite3_column_int64(st, 3);
    for (int i = 0; i < JOURNAL_OUTCOMES; i++)
        h->outcomes[i] = sqlite3_column_int64(st, 4 + i);
    for (int i = 0; i < 6; i++)
        h->status_classes[i] = sqlite3_column_int64(st, 4 + JOURNAL_OUTCOMES + i);
}

static int sq_stats(void *state,
                    int (*fn)(void *ctx, const struct journal_host_stats *s),
                    void *ctx)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[ST_STATS];
    struct journal_host_stats h;
    int rc = SQLITE_OK;
    for (int i = 0; i < JOURNAL_OUTCOMES && rc == SQLITE_OK; i++)
        rc = bind_text(st, 1 + i, journal_outcome_name((enum journal_outcome)i));
    if (rc != SQLITE_OK)
        return fail_db(s, "cannot read journal");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_stats(st, &h);
        if (fn(ctx, &h))
            break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
         : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    return rc;
}

static int sq_each_fingerprint(void *state,
                               int (*fn)(void *ctx, const char *fingerprint), void *ctx)
{
    struct sq *s = state;
    sqlite3_stmt *st = s->st[ST_FINGERPRINTS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (fn(ctx, text_column(st, 0)))
            break;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail_db(s, "cannot read journal");
    sqlite3_reset(st);
    return rc;
}

static long sq_full_scan_steps(void *state)
{
    struct sq *s = state;
    long steps = 0;
    for (int i = 0; i < ST_COUNT; i++)
        if (s->st[i])
            steps += sqlite3_stmt_status(s->st[i], SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
    return steps;
}

const struct journal_ops journal_sqlite_ops = {
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .finish = sq_finish,
    .newest = sq_newest,
    .each = sq_each,
    .stats = sq_stats,
    .prune = sq_prune,
    .finish_process = sq_finish_process,
    .claim = sq_claim,
    .finish_answer = sq_finish_answer,
    .forget = sq_forget,
    .apply = sq_apply,
    .each_fingerprint = sq_each_fingerprint,
    .full_scan_steps = sq_full_scan_steps,
};
