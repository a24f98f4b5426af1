/* secret.h - the key-derivation secret shared by every process of a user.
 *
 * RETRYSAFE_SECRET wins when set. Otherwise the file "secret" in the state
 * directory holds it: created once, atomically, from 32 random bytes written
 * as 64 hex characters, mode 0600 in a 0700 directory, and read by every later
 * process. The secret is the file's text (without a trailing newline), used
 * exactly as RETRYSAFE_SECRET would be, so copying it to another machine's
 * RETRYSAFE_SECRET reproduces the same keys there.
 */
#ifndef RETRYSAFE_SECRET_H
#define RETRYSAFE_SECRET_H

#include <stddef.h>

/* The state directory: $XDG_STATE_HOME/retrysafe, else
 * $HOME/.local/state/retrysafe (HOME from the password database when unset).
 * Returns 0, or -1 when no directory can be named or it does not fit. */
int secret_state_dir(char *out, size_t out_size);

/* Creates path and any missing parents; the last component gets mode 0700.
 * Returns 0 or -1 (errno set). */
int secret_make_dir(const char *path);

/* Reads the secret file in dir, creating it if absent. On success returns 0
 * and a malloc'd NUL-terminated secret in *out. On failure returns -1 and
 * writes a reason to err. */
int secret_load_or_create(const char *dir, char **out, char *err, size_t err_size);

/* Reads the secret file name in dir ("shared-secret" keeps a copy of the
 * one a Redis journal shares: keysource.c). Returns 0 with a malloc'd
 * secret in *out, 1 when there is no such file, or -1 with the reason in
 * err. */
int secret_load_file(const char *dir, const char *name, char **out, char *err,
                     size_t err_size);

/* Replaces the file name in dir with secret, atomically, mode 0600.
 * Returns 0, or -1 with the reason in err. */
int secret_store_file(const char *dir, const char *name, const char *secret,
                      char *err, size_t err_size);

/* A new secret, as the file would hold it: 64 random hex characters.
 * Returns 0, or -1 (errno set). */
enum { SECRET_CHARS = 64 };
int secret_generate(char out[SECRET_CHARS + 1]);

#endif
