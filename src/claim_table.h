/* claim_table.h - guard mode's claims in flight, in memory every process
 * of the user shares (journal.db-claims beside the journal, mapped).
 *
 * journal_claim decides in one SQLite transaction, committed before the
 * request may leave: about 200 us of CPU per request, most of guard
 * mode's cost. A request whose fingerprint the filter never saw has no
 * history to read, so all that must be decided is who sends it first.
 * The table decides that with one compare-and-swap: every claim of a key
 * first takes the key's slot. A claim that goes on to the journal sets its
 * fingerprint's bits in the filter and gives the slot back at once; a
 * fast one (the filter, looked at while holding the slot, never saw the
 * fingerprint) sends, queues its row, and holds the slot until the row is
 * written. So a twin that finds the slot held waits, as it would for a
 * pending row, and one that finds it held by a dead process knows an
 * attempt may have left unrecorded: its outcome is unknown.
 *
 * A slot is one 64-bit word (41 bits of the key's hash, the holder's pid)
 * and the time of the holder's attempt. The key's slot is fixed by its
 * hash; a slot held for another key is not waited for: the claim sets its
 * bits, looks at the slot once more (a twin may have taken it), and goes
 * to the journal without a slot. A twin that takes the slot later sees the
 * bits and goes to the journal too, where one transaction orders the two.
 */
#ifndef RETRYSAFE_CLAIM_TABLE_H
#define RETRYSAFE_CLAIM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "shared_file.h"

/* Slots in the table: far more than claims in flight at once. */
#define CLAIM_TABLE_SLOTS 65536
#define CLAIM_TABLE_BYTES (CLAIM_TABLE_SLOTS * 16)

struct claim_table;
/* Maps the table file at path, made (0600) when there is none. A zeroed
 * file is an empty table, so processes racing to make it agree. NULL when
 * it cannot be used (another owner, writable by others, a link, another
 * size, no room on the disk, no memory). *id (may be NULL): the file. */
struct claim_table *claim_table_open(const char *path, struct file_id *id);
void claim_table_close(struct claim_table *t);
/* The table in a zeroed or existing region of CLAIM_TABLE_BYTES, 8-byte
 * aligned, shared by every process that uses it (tests). */
struct claim_table *claim_table_at(void *region);

/* What is known of a slot's holder. */
struct claim_holder {
    int pid;              /* 0: none (the slot was abandoned) */
    int64_t time_ms;
    uint64_t word;        /* the slot as it was */
};

enum claim_take {
    CLAIM_TAKEN,          /* the slot is ours now */
    CLAIM_TAKEN_FROM_DEAD,/* ours now; *holder, dead, held it for this key:
                             its attempt may have left, unrecorded */
    CLAIM_HELD,           /* held for this key by *holder, alive: a twin */
    CLAIM_BUSY,           /* held for another key by *holder, alive */
    CLAIM_BLOCKED         /* held for another key by a dead process */
};

/* A taken slot, to give back. */
struct claim_ref {
    struct claim_table *table;
    uint32_t slot;
    uint64_t word;
};

/* Tries to take key's slot for pid; time_ms is our attempt's. */
enum claim_take claim_table_take(struct claim_table *t, const char *key, int pid,
                                 int64_t time_ms, struct claim_holder *holder,
                                 struct claim_ref *ref);
/* Gives the slot back, if it is still ref's (ref NULL or without a
 * table: nothing). */
void claim_table_release(const struct claim_ref *ref);
/* Hands the slot, if still ref's, to holder (its holder before us). */
void claim_table_give_back(const struct claim_ref *ref, const struct claim_holder *holder);
/* Leaves the slot held for its key by no live process: the row that would
 * have released it was never written, so to a twin its attempt's outcome
 * is unknown. */
void claim_table_abandon(const struct claim_ref *ref);

#endif
