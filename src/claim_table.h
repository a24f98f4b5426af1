/* claim_table.h - guard mode's claims in flight, in memory every process
 * of the user shares (a region of the seen filter's file, seen_filter.h).
 *
 * journal_claim decides in one SQLite transaction, committed before the
 * request may leave: about 200 us of CPU per request, most of guard
 * mode's cost. A request whose fingerprint the filter never saw has no
 * history to read, so all that must be decided is who sends it first.
 * The table decides that with one compare-and-swap: every claim of a key,
 * fast or not, first takes the key's slot, and holds it until the key's
 * row is in the journal. So a twin that finds the slot held waits, as it
 * would for a pending row, and one that finds it held by a dead process
 * knows an attempt may have left unrecorded: its outcome is unknown.
 *
 * A slot is one 64-bit word (41 bits of the key's hash, the holder's pid)
 * and the time of the holder's attempt. The key's slot is fixed by its
 * hash: a slot held for another key is waited for like a twin, or, when
 * that holder died, left alone (its own key's retries need it) while the
 * claim goes to the journal without a slot, which is safe: no claim of
 * our key can take that slot either.
 */
#ifndef RETRYSAFE_CLAIM_TABLE_H
#define RETRYSAFE_CLAIM_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* Slots in the table: far more than claims in flight at once. */
#define CLAIM_TABLE_SLOTS 65536
#define CLAIM_TABLE_BYTES (CLAIM_TABLE_SLOTS * 16)

/* The table in a zeroed (new) or existing region of CLAIM_TABLE_BYTES,
 * 8-byte aligned, shared by every process that uses it. */
struct claim_table;
struct claim_table *claim_table_at(void *region);

/* What is known of a slot's holder. */
struct claim_holder {
    int pid;
    int64_t time_ms;
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
    uint32_t slot;
    uint64_t word;
};

/* Tries to take key's slot for pid; time_ms is our attempt's. */
enum claim_take claim_table_take(struct claim_table *t, const char *key, int pid,
                                 int64_t time_ms, struct claim_holder *holder,
                                 struct claim_ref *ref);
/* Gives the slot back, if it is still ref's. */
void claim_table_release(struct claim_table *t, const struct claim_ref *ref);

#endif
