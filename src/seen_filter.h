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

#include "shared_file.h"

struct seen_filter;

/* Adds every fingerprint the journal knows to a new filter f: 0, or -1
 * when it could not (the filter is then not used). */
typedef int (*seen_filter_fill_fn)(void *ctx, struct seen_filter *f);

/* Maps the filter file at path, made (0600) and filled by fill when there
 * is none. NULL when it cannot be used (another owner, a link, wrong size,
 * not complete, declared invalid, no memory): then every lookup asks the
 * journal. */
struct seen_filter *seen_filter_open(const char *path, seen_filter_fill_fn fill, void *ctx);
void seen_filter_close(struct seen_filter *f);
/* Declares the filter at path invalid for every process (one that cannot
 * keep it up to date): from then on, every lookup asks the journal.
 * Returns 1 when it was marked (or there is no filter to mark), else 0. */
int seen_filter_declare_invalid(const char *path);
/* The file f maps. */
struct file_id seen_filter_file_id(const struct seen_filter *f);

/* fingerprint: the journal's hex fingerprint (key.h). */
void seen_filter_add(struct seen_filter *f, const char *fingerprint);
/* 0 only when fingerprint was certainly never added. */
int seen_filter_maybe(const struct seen_filter *f, const char *fingerprint);

#endif
