/* tool_journal.h - what the journal commands share: opening the journal the
 * shim writes, reading durations, and printing fields safely. */
#ifndef RETRYSAFE_TOOL_JOURNAL_H
#define RETRYSAFE_TOOL_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "journal.h"

/* Opens the journal named by --journal (option, may be NULL), else
 * RETRYSAFE_JOURNAL, else the default location. Prints a clear message and
 * returns NULL when there is none, it cannot be read, or the shim would
 * refuse it (location_journal_private): for commands that change it. */
struct journal *tool_open_journal(const char *option);
/* The same, with the journal's path in path. */
struct journal *tool_open_journal_at(const char *option, char *path, size_t size);
/* The same for a command that only reads: a journal the shim would refuse
 * (location_journal_private) is opened after a warning. */
struct journal *tool_open_journal_to_read(const char *option);

/* Wall-clock milliseconds since the epoch. */
int64_t tool_now_ms(void);

/* The outcome as a reader should see it: a pending attempt whose process
 * is gone will never learn its answer, so it is unknown. */
enum journal_outcome tool_outcome(const struct journal_row *row);

/* "2026-11-28T01:02:03.456Z" */
void tool_iso_time(int64_t ms, char *out, size_t size);

/* s as a JSON string, quotes included: valid JSON and valid UTF-8, whatever
 * s holds. Control characters (C0, DEL, C1) and U+2028/2029 as \uNNNN, so
 * the line is safe on a terminal too; a byte that is not part of
 * well-formed UTF-8 as \ufffd (JSON strings are Unicode: such a byte has
 * no exact form). */
void tool_json_string(FILE *out, const char *s);
/* s for a terminal table: control and non-ASCII bytes as \xNN and a
 * backslash as \\, so journal content can never move the cursor, fake a
 * row, or pass for an escape. */
void tool_table_field(FILE *out, const char *s, int width);

#endif
