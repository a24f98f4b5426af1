/* journal_queue.h - the shim's journal writes, off the request's path.
 *
 * A journal write transaction costs about a hundred microseconds and a few
 * system calls; done by the thread that sends a request, twice per request,
 * it would cost a busy client most of its speed. So the rows a request
 * leaves (its attempt, its outcome, guard mode's answer) are queued here,
 * and one writer thread per process, started at the first write, applies
 * whatever has queued up in one transaction (journal_apply: group commit).
 * Writes reach the journal within one commit of being queued, in order.
 *
 * What that costs in guarantees: an attempt is journaled just after its
 * first byte leaves, not before; a process killed in between loses the
 * rows still queued. Guard mode's claim (journal_claim) stays synchronous:
 * the request that goes out is journaled pending first, always.
 *
 * Rows are named by tickets: a ticket stands for its row before the row
 * exists, so an outcome can be queued right behind its attempt.
 */
#ifndef RETRYSAFE_JOURNAL_QUEUE_H
#define RETRYSAFE_JOURNAL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "journal.h"

struct journal_ticket;

/* Queues a's row (copied). Returns its ticket, or NULL when out of memory
 * (nothing is recorded then). */
struct journal_ticket *journal_queue_begin(const struct journal_attempt *a);
/* The same for a guard-mode claim made in the claim table (claim_table.h):
 * the slot is released once the row is written. NULL when out of memory
 * (the slot is then the caller's to release). */
struct claim_ref;
struct journal_ticket *journal_queue_begin_claimed(const struct journal_attempt *a,
                                                  const struct claim_ref *claim);
/* A ticket for a row journal_claim already wrote; NULL when out of memory. */
struct journal_ticket *journal_queue_ticket(int64_t id);

/* Queue the row's outcome, and use up the ticket (t may be NULL). */
void journal_queue_finish(struct journal_ticket *t, enum journal_outcome outcome,
                          int status, int64_t duration_ms);
/* The same with guard mode's answer (copied), as journal_finish_answer. */
void journal_queue_answer(struct journal_ticket *t, int status, int64_t duration_ms,
                          const char *answer, size_t len, int too_large);
/* Gives up a ticket whose row needs no outcome (a skipped request's). */
void journal_queue_drop(struct journal_ticket *t);

/* The connection the writer uses: opened by the caller, in an application
 * thread, never by the writer itself. A file the shim opens takes the
 * lowest free fd number: opened at some random moment by a background
 * thread, it could take the number the application just closed, and
 * bytes the application still writes to that number would land in the
 * journal. For the same reason the writer's connection, closed around
 * fork, is reopened by the next application thread that queues a row. */
void journal_queue_attach(struct journal *j);

/* Waits up to timeout_ms for everything queued to be written: the process
 * is ending. Returns how many rows are still not written. */
size_t journal_queue_flush(int timeout_ms);
/* The same from _exit(), which may be called anywhere, even in a signal
 * handler: gives up at once if the queue's lock is taken. */
void journal_queue_flush_at_exit(int timeout_ms);

/* Before exec, after a flush: the claims of rows still not written leave
 * their slots held by no one (claim_table_abandon), since the new image
 * keeps the pid but not the queue. */
void journal_queue_abandon_claims(void);

/* Around fork(): the child has no writer, and what is queued is the
 * parent's to write. */
void journal_queue_fork(enum fork_phase phase);

#endif
