/* tool_journal.h - what the journal commands share: opening the journal the
 * shim writes, reading durations, and printing fields safely. */
#ifndef RETRYSAFE_TOOL_JOURNAL_H
#define RETRYSAFE_TOOL_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "journal.h"

/* Opens the journal named by --journal (option, may be NULL), else
 * RETRYSAFE_JOURNAL, else the default location. Prints a clear message and
 * returns NULL when there is none or it cannot be read. */
struct journal *tool_open_journal(const char *option);
/* The same, with the journal's path in path. */
struct journal *tool_open_journal_at(const char *option, char *path, size_t size);

/* Wall-clock milliseconds since the epoch. */
int64_t tool_now_ms(void);

/* The outcome as a reader should see it: a pending attempt whose process
 * is gone will never learn its answer, so it is unknown. */
enum journal_outcome tool_outcome(const struct journal_row *row);

/* "2026-11-28T01:02:03.456Z" */
void tool_iso_time(int64_t ms, char *out, size_t size);

/* s as a JSON string, quotes included. */
void tool_json_string(FILE *out, const char *s);
/* s for a terminal table: control and non-ASCII bytes as \xNN, so journal
 * content can never move the cursor or fake a row. */
void tool_table_field(FILE *out, const char *s, int width);

#endif
