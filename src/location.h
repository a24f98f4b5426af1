/* location.h - where the journal is, for the shim and the tool alike. */
#ifndef RETRYSAFE_LOCATION_H
#define RETRYSAFE_LOCATION_H

#include <stddef.h>

enum location_kind { LOCATION_OFF, LOCATION_FOUND, LOCATION_NONE };

/* configured is RETRYSAFE_JOURNAL (or a --journal option), NULL when unset:
 * "off" gives LOCATION_OFF; a value is copied to out; unset gives
 * journal.db in the state directory. LOCATION_NONE: no location can be
 * named (HOME unset, or too long). */
enum location_kind location_journal(const char *configured, char *out, size_t size);

#endif
