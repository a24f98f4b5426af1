/* flight.h - requests in flight on a connection, and how each ended.
 *
 * The outbound stream records each request it tags (or skips) in the
 * journal before its first byte leaves; the request then waits here, in
 * order, for its answer. The read hooks feed what the application reads to
 * the connection's response parser: a final answer completes the oldest
 * request (status, duration); a connection closed or a process ending
 * first leaves the rest with outcome unknown.
 */
#ifndef RETRYSAFE_FLIGHT_H
#define RETRYSAFE_FLIGHT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "outbound.h"

struct conn;

/* How many connections wait for answers to journaled requests. */
extern int flight_awaiting_count;

/* Journals rec (tagged: pending; skipped: final) and, when tagged, queues
 * it on c for its answer. In guard mode the journal may answer instead
 * (flight_guard_claim): then OUTBOUND_ANSWERED, and nothing is queued. */
enum outbound_verdict flight_record(struct conn *c, const struct outbound_record *rec);

/* Guard mode: claims the attempt a, waiting for a twin in flight as
 * RETRYSAFE_WAIT allows (claim_table.h: a request no process sent before
 * is claimed without a journal read). OUTBOUND_SEND with the ticket of its
 * row in *ticket (NULL when the journal failed: sent unguarded), or
 * OUTBOUND_ANSWERED once c holds the replay or the 409 for the
 * application to read. */
struct journal;
struct journal_attempt;
struct journal_ticket;
enum outbound_verdict flight_guard_claim(struct conn *c, struct journal *j,
                                         const struct journal_attempt *a,
                                         struct journal_ticket **ticket);
/* A request not journaled went out on c: if answers are awaited there, its
 * answer will come between theirs, so it takes its place in the queue. */
void flight_passed(struct conn *c, int head);
/* The request last recorded on c never left: outcome failed. */
void flight_failed(struct conn *c, int err);
/* The window's generation for a fingerprint, from the journal. */
int flight_generation(void *arg, const char *fingerprint, int *generation);

/* The application read n bytes (spread over iov) from c. */
void flight_read(struct conn *c, const struct iovec *iov, int iovcnt, size_t n);
/* The application read end of stream from c. */
void flight_eof(struct conn *c);
/* c is going away: what still waits for an answer will never get one. */
void flight_abandon(struct conn *c);

/* Whether c waits for the answer to a guarded request (guard mode): one
 * worth reading after the application gave up (late.h). */
int flight_guarded_waiting(struct conn *c);

/* The process is ending: its pending requests' outcome is unknown. */
void flight_process_exit(void);

#endif
