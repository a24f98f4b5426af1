/* private_path.h - may a directory hold this user's private files?
 *
 * The journal, the secret and the files beside them are trusted by every
 * process of the user: guard mode acts on what the journal says, and the
 * secret decides every key. Whoever can rename or replace an entry in one
 * of their directories, or in any directory above, can swap them for his
 * own. So, as OpenSSH's StrictModes does for ~/.ssh, each directory from
 * the file's own up to / is checked, after symbolic links are resolved:
 *
 *   - it belongs to the user (the effective uid) or to root;
 *   - if everyone may write it, it has the sticky bit (like /tmp), which
 *     keeps other users from renaming or deleting what is not theirs;
 *   - if its group may write it, it has the sticky bit or belongs to the
 *     user: a group-writable directory of the user's own is the usual
 *     result of umask 002 with a private group per user, and its group is
 *     the user's choice; one of root's is shared with the whole group.
 *
 * Every symbolic link on the way must belong to the user or to root too:
 * another user's link can be pointed elsewhere after the check.
 *
 * The files themselves are checked where they are opened (owned by the
 * user, no one else may write them, never a link). */
#ifndef RETRYSAFE_PRIVATE_PATH_H
#define RETRYSAFE_PRIVATE_PATH_H

#include <stddef.h>

/* Checks dir and every directory above it. The part of dir that does not
 * exist yet is skipped (whoever makes it makes it 0700): the nearest
 * existing ancestor and those above it are checked, so a caller checks
 * once before creating and once after. Returns 0, or -1 with a reason
 * naming the directory in err. */
int private_path_check_dir(const char *dir, char *err, size_t err_size);

/* The same for the directory that holds file ("." for a bare name). */
int private_path_check_file(const char *file, char *err, size_t err_size);

#endif
