/* seen_filter.h - which request fingerprints the journal may know, without
 * asking it.
 *
 * Every tagged request asks the journal which operation (generation) its
 * fingerprint belongs to: a read transaction on the request's path, the
 * biggest cost left there once writes were queued. Most requests are new
 * (an agent's tool calls differ), and for a fingerprint the journal has
 * never seen the answer is always generation 0. This filter answers "never
 * seen" for those without the journal: a Bloom filter in a file beside the
 * journal, mapped shared by every process of the user, whose bits are set
 * when a fingerprint is queued for the journal. "Maybe seen" (a false
 * positive, or a real one) still asks the journal, so answers are exactly
 * those of the journal; bits are never cleared (prune leaves them: only
 * more false positives).
 */
#ifndef RETRYSAFE_SEEN_FILTER_H
#define RETRYSAFE_SEEN_FILTER_H

#include <stddef.h>

struct seen_filter;

/* Maps (creating it, 0600, if absent) the filter file at path; *created
 * is set when this call made it, empty: the caller then adds what the
 * journal knows already. NULL when it cannot be used (another owner, a
 * link, wrong size, no memory): then every lookup asks the journal. */
struct seen_filter *seen_filter_open(const char *path, int *created);
void seen_filter_close(struct seen_filter *f);

/* fingerprint: the journal's hex fingerprint (key.h). */
void seen_filter_add(struct seen_filter *f, const char *fingerprint);
/* 0 only when fingerprint was certainly never added. */
int seen_filter_maybe(const struct seen_filter *f, const char *fingerprint);

#endif
