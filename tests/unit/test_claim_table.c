/* test_claim_table.c - guard mode's claims in flight (claim_table.h): who
 * holds a key's slot, twins, other keys, dead holders, and many processes
 * racing for one key over a shared mapping. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "claim_table.h"
#include "suites.h"

static void *region;
static struct claim_table *table;

static void setup(void)
{
    /* Shared and zeroed, as the filter's file maps it. */
    region = mmap(NULL, CLAIM_TABLE_BYTES, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(region, MAP_FAILED);
    table = claim_table_at(region);
}

static void teardown(void)
{
    munmap(region, CLAIM_TABLE_BYTES);
}

/* A pid that certainly belongs to no process: a child, reaped. */
static int dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return pid;
}

/* Two keys that share a slot, found by trying: the table has 65536. */
static void colliding_keys(char a[32], char b[32])
{
    struct claim_holder h;
    struct claim_ref ref, first;
    snprintf(a, 32, "key-a");
    ck_assert_int_eq(claim_table_take(table, a, getpid(), 1, &h, &first), CLAIM_TAKEN);
    for (int i = 0;; i++) {
        ck_assert_int_lt(i, 10000000);
        snprintf(b, 32, "key-b-%d", i);
        enum claim_take r = claim_table_take(table, b, getpid(), 1, &h, &ref);
        if (r == CLAIM_BUSY)
            break;
        ck_assert_int_eq(r, CLAIM_TAKEN);   /* not a 57-bit collision with a */
        claim_table_release(&ref);
    }
    claim_table_release(&first);
}

START_TEST(test_take_hold_release)
{
    struct claim_holder h = { 0 };
    struct claim_ref mine, other;
    ck_assert_int_eq(claim_table_take(table, "k1", getpid(), 1000, &h, &mine), CLAIM_TAKEN);
    /* A twin, even in this very process (another thread), waits. */
    ck_assert_int_eq(claim_table_take(table, "k1", getpid(), 2000, &h, &other), CLAIM_HELD);
    ck_assert_int_eq(h.pid, getpid());
    ck_assert_int_eq(h.time_ms, 1000);
    /* Other keys are not held up. */
    ck_assert_int_eq(claim_table_take(table, "k2", getpid(), 1500, &h, &other), CLAIM_TAKEN);
    claim_table_release(&mine);
    ck_assert_int_eq(claim_table_take(table, "k1", getpid(), 3000, &h, &mine), CLAIM_TAKEN);
    claim_table_release(&mine);
    claim_table_release(&other);
}
END_TEST

START_TEST(test_release_only_own)
{
    struct claim_holder h;
    struct claim_ref first, second;
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 1, &h, &first), CLAIM_TAKEN);
    claim_table_release(&first);
    ck_assert_int_eq(claim_table_take(table, "k", getppid(), 2, &h, &second), CLAIM_TAKEN);
    /* A stale release (the first holder's, again) leaves the second's. */
    claim_table_release(&first);
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 3, &h, &first), CLAIM_HELD);
    ck_assert_int_eq(h.pid, getppid());
}
END_TEST

START_TEST(test_dead_holder_of_same_key)
{
    struct claim_holder h;
    struct claim_ref ref;
    int dead = dead_pid();
    ck_assert_int_eq(claim_table_take(table, "k", dead, 1234, &h, &ref), CLAIM_TAKEN);
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 5000, &h, &ref),
                     CLAIM_TAKEN_FROM_DEAD);
    ck_assert_int_eq(h.pid, dead);
    ck_assert_int_eq(h.time_ms, 1234);
    /* Ours now. */
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 6000, &h, &ref), CLAIM_HELD);
    ck_assert_int_eq(h.pid, getpid());
    ck_assert_int_eq(h.time_ms, 5000);
}
END_TEST

START_TEST(test_other_key_busy_or_blocked)
{
    char a[32], b[32];
    struct claim_holder h;
    struct claim_ref ref;
    colliding_keys(a, b);
    /* Held for a by a live process: b waits for it. */
    struct claim_ref a_ref;
    ck_assert_int_eq(claim_table_take(table, a, getppid(), 1, &h, &a_ref), CLAIM_TAKEN);
    ck_assert_int_eq(claim_table_take(table, b, getpid(), 2, &h, &ref), CLAIM_BUSY);
    ck_assert_int_eq(h.pid, getppid());
    claim_table_release(&a_ref);
    ck_assert_int_eq(claim_table_take(table, b, getpid(), 2, &h, &ref), CLAIM_TAKEN);
    claim_table_release(&ref);
    /* Held for a by a dead one: b must leave it to a's retries. */
    int dead = dead_pid();
    ck_assert_int_eq(claim_table_take(table, a, dead, 1, &h, &a_ref), CLAIM_TAKEN);
    ck_assert_int_eq(claim_table_take(table, b, getpid(), 2, &h, &ref), CLAIM_BLOCKED);
    ck_assert_int_eq(claim_table_take(table, a, getpid(), 3, &h, &ref), CLAIM_TAKEN_FROM_DEAD);
}
END_TEST

START_TEST(test_give_back_and_abandon)
{
    struct claim_holder h;
    struct claim_ref ref, dead_ref;
    int dead = dead_pid();
    ck_assert_int_eq(claim_table_take(table, "k", dead, 1234, &h, &dead_ref), CLAIM_TAKEN);
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 5000, &h, &ref),
                     CLAIM_TAKEN_FROM_DEAD);
    /* The dead one's attempt could not be journaled: the slot is its again. */
    claim_table_give_back(&ref, &h);
    ck_assert_int_eq(claim_table_take(table, "k", getpid(), 6000, &h, &ref),
                     CLAIM_TAKEN_FROM_DEAD);
    ck_assert_int_eq(h.pid, dead);
    /* Our row was never written: held by no one, so a twin takes it over. */
    claim_table_abandon(&ref);
    ck_assert_int_eq(claim_table_take(table, "k", getppid(), 7000, &h, &ref),
                     CLAIM_TAKEN_FROM_DEAD);
    ck_assert_int_eq(h.pid, 0);
    /* No table: nothing to give back. */
    struct claim_ref none = { 0 };
    claim_table_release(&none);
    claim_table_release(NULL);
}
END_TEST

/* The file beside the journal: made 0600 and sized by whoever finds it
 * empty; every opener maps the same table; others' files are refused. */
START_TEST(test_open_file)
{
    char dir[] = "/tmp/retrysafe-claims-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/journal.db-claims", dir);
    struct claim_table *a = claim_table_open(path, NULL), *b = claim_table_open(path, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, CLAIM_TABLE_BYTES);
    struct claim_holder h;
    struct claim_ref ref;
    ck_assert_int_eq(claim_table_take(a, "k", getpid(), 1, &h, &ref), CLAIM_TAKEN);
    ck_assert_int_eq(claim_table_take(b, "k", getpid(), 2, &h, &ref), CLAIM_HELD);
    claim_table_close(a);
    claim_table_close(b);
    /* Writable by others, or of another size: not ours to trust. */
    ck_assert_int_eq(chmod(path, 0666), 0);
    ck_assert_ptr_null(claim_table_open(path, NULL));
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(truncate(path, 4096), 0);
    ck_assert_ptr_null(claim_table_open(path, NULL));
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(symlink("/tmp", path), 0);
    ck_assert_ptr_null(claim_table_open(path, NULL));
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

#define RACERS 8

/* Many processes, one key, at once: exactly one takes it. */
START_TEST(test_race_one_winner)
{
    int go[2], report[2];
    pid_t racers[RACERS];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(report), 0);
    for (int i = 0; i < RACERS; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        racers[i] = pid;
        if (pid == 0) {
            char c;
            struct claim_holder h;
            struct claim_ref ref;
            close(go[1]);
            (void)!read(go[0], &c, 1);
            c = (char)claim_table_take(table, "raced", getpid(), 1, &h, &ref);
            (void)!write(report[1], &c, 1);
            pause();   /* alive until killed: a winner must look alive */
            _exit(0);
        }
    }
    close(go[0]);
    close(report[1]);   /* a racer that dies early ends the reads below */
    close(go[1]);       /* everyone goes */
    int taken = 0, held = 0;
    for (int i = 0; i < RACERS; i++) {
        char c;
        ck_assert_int_eq(read(report[0], &c, 1), 1);
        taken += c == CLAIM_TAKEN;
        held += c == CLAIM_HELD;
    }
    for (int i = 0; i < RACERS; i++) {
        kill(racers[i], SIGKILL);
        waitpid(racers[i], NULL, 0);
    }
    ck_assert_int_eq(taken, 1);
    ck_assert_int_eq(held, RACERS - 1);
}
END_TEST

Suite *claim_table_suite(void)
{
    Suite *s = suite_create("claim_table");
    TCase *tc = tcase_create("claims");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_take_hold_release);
    tcase_add_test(tc, test_release_only_own);
    tcase_add_test(tc, test_dead_holder_of_same_key);
    tcase_add_test(tc, test_other_key_busy_or_blocked);
    tcase_add_test(tc, test_give_back_and_abandon);
    tcase_add_test(tc, test_open_file);
    tcase_add_test(tc, test_race_one_winner);
    suite_add_tcase(s, tc);
    return s;
}
