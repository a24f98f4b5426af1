/* claim_table.c - guard mode's claims in flight. See claim_table.h. */
#include "claim_table.h"

#include <errno.h>
#include <signal.h>

#define PID_BITS 23                     /* pid_max is at most 2^22 */
#define PID_MASK ((UINT64_C(1) << PID_BITS) - 1)
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

/* FNV-1a: keys are MACs already; this only spreads them over slots. */
static uint64_t hash_of(const char *key)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

/* Same machine only; a pid we may not signal is someone's, alive. */
static int alive(int pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

static struct claim_holder holder_of(const struct claim_table *t, uint32_t slot,
                                     uint64_t word)
{
    return (struct claim_holder){
        (int)(word & PID_MASK), __atomic_load_n(&t->times[slot], __ATOMIC_ACQUIRE)
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
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&t->times[slot], time_ms, __ATOMIC_RELEASE);
            *ref = (struct claim_ref){ slot, mine };
            result = word ? CLAIM_TAKEN_FROM_DEAD : CLAIM_TAKEN;
            break;
        }
    }
    errno = e;
    return result;
}

void claim_table_release(struct claim_table *t, const struct claim_ref *ref)
{
    uint64_t word = ref->word;
    __atomic_compare_exchange_n(&t->words[ref->slot], &word, 0, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}
