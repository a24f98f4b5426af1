/* claim_table.c - guard mode's claims in flight. See claim_table.h. */
#include "claim_table.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PID_BITS 23                     /* pid_max is at most 2^22 */
#define PID_MASK ((UINT64_C(1) << PID_BITS) - 1)
/* The holder of an abandoned slot: above pid_max, so never alive. */
#define NO_PID PID_MASK
#define TAG_BITS 41

struct claim_table {
    uint64_t words[CLAIM_TABLE_SLOTS];  /* tag << PID_BITS | pid; 0: free */
    int64_t times[CLAIM_TABLE_SLOTS];   /* the holder's attempt, ms */
};

_Static_assert(sizeof(struct claim_table) == CLAIM_TABLE_BYTES, "table layout");

struct claim_table *claim_table_at(void *region)
{
    return region;
}

/* The file must be ours in the way the journal is: a regular file of this
 * user that no one else may write. */
static int usable(int fd, struct stat *st)
{
    return fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_uid == geteuid() &&
           !(st->st_mode & 022);
}

struct claim_table *claim_table_open(const char *path, struct file_id *id)
{
    int e = errno;
    struct stat st;
    void *p = MAP_FAILED;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd >= 0 && usable(fd, &st)) {
        /* Sized by whoever finds it empty, the same size from each (see
         * shared_file_size). Only this size is mapped: a mapping past a
         * file's end would fault. */
        if (st.st_size == 0 && fchmod(fd, 0600) == 0 &&
            shared_file_size(fd, CLAIM_TABLE_BYTES) == 0)
            fstat(fd, &st);
        if (st.st_size == CLAIM_TABLE_BYTES)
            p = mmap(NULL, CLAIM_TABLE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (id)
        *id = p != MAP_FAILED ? (struct file_id){ st.st_dev, st.st_ino }
                              : (struct file_id){ 0, 0 };
    if (fd >= 0)
        close(fd);   /* the mapping outlives it: no descriptor is kept */
    errno = e;
    return p == MAP_FAILED ? NULL : p;
}

void claim_table_close(struct claim_table *t)
{
    if (t)
        munmap(t, CLAIM_TABLE_BYTES);
}

/* FNV-1a: keys are MACs already; this only spreads them over slots. */
static uint64_t hash_of(const char *key)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

/* Same machine only; a pid we may not signal is someone's, alive. Pid 0
 * is an abandoned slot's: no process (kill would signal our group). */
static int alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static struct claim_holder holder_of(const struct claim_table *t, uint32_t slot,
                                     uint64_t word)
{
    uint64_t pid = word & PID_MASK;
    return (struct claim_holder){
        pid == NO_PID ? 0 : (int)pid, __atomic_load_n(&t->times[slot], __ATOMIC_ACQUIRE), word
    };
}

enum claim_take claim_table_take(struct claim_table *t, const char *key, int pid,
                                 int64_t time_ms, struct claim_holder *holder,
                                 struct claim_ref *ref)
{
    int e = errno;
    uint64_t h = hash_of(key);
    uint32_t slot = (uint32_t)(h % CLAIM_TABLE_SLOTS);
    uint64_t tag = (h >> 16) & ((UINT64_C(1) << TAG_BITS) - 1);
    uint64_t mine = (tag ? tag : 1) << PID_BITS | ((uint64_t)pid & PID_MASK);
    enum claim_take result;
    for (;;) {
        uint64_t word = __atomic_load_n(&t->words[slot], __ATOMIC_ACQUIRE);
        int same_key = word >> PID_BITS == mine >> PID_BITS;
        if (word != 0) {
            *holder = holder_of(t, slot, word);
            if (alive(holder->pid)) {
                result = same_key ? CLAIM_HELD : CLAIM_BUSY;
                break;
            }
            if (!same_key) {
                result = CLAIM_BLOCKED;
                break;
            }
        }
        /* Free, or this key's slot left by a dead holder: ours if the word
         * is still what we read. */
        if (__atomic_compare_exchange_n(&t->words[slot], &word, mine, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&t->times[slot], time_ms, __ATOMIC_RELEASE);
            *ref = (struct claim_ref){ t, slot, mine };
            result = word ? CLAIM_TAKEN_FROM_DEAD : CLAIM_TAKEN;
            break;
        }
    }
    errno = e;
    return result;
}

/* The slot becomes to, if it is still ref's. */
static void hand_over(const struct claim_ref *ref, uint64_t to)
{
    uint64_t word = ref && ref->table ? ref->word : 0;
    if (word)
        __atomic_compare_exchange_n(&ref->table->words[ref->slot], &word, to, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE);
}

void claim_table_release(const struct claim_ref *ref)
{
    hand_over(ref, 0);
}

void claim_table_give_back(const struct claim_ref *ref, const struct claim_holder *holder)
{
    hand_over(ref, holder->word);
}

void claim_table_abandon(const struct claim_ref *ref)
{
    hand_over(ref, ref ? (ref->word & ~PID_MASK) | NO_PID : 0);
}
