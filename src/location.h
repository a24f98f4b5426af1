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

/* Whether the journal at path may be trusted where it is: its directory
 * and every one above pass private_path_check_file (the -seen and -claims
 * files beside it share that directory). A location with a scheme
 * ("redis://") is not a file and passes. Returns 0, or -1 with "refusing
 * journal PATH: why" in err. Callers check before journal_open creates
 * what is missing and again after. */
int location_journal_private(const char *path, char *err, size_t err_size);

/* location as messages may show it: a path as it is; a server's URL
 * without its user and password ("redis://host:6379/1"). */
void location_describe(const char *location, char *out, size_t size);

#endif
