/* shim.h - the preloaded library's process-wide state and its lazy start. */
#ifndef RETRYSAFE_SHIM_H
#define RETRYSAFE_SHIM_H

#include "outbound.h"

enum shim_state { SHIM_NOT_STARTED, SHIM_ACTIVE, SHIM_DISABLED };

/* Starts the shim if this is the first tracked connection: reads the
 * environment, opens the log, loads the secret. Returns the environment
 * connections share, or NULL when the shim has nothing to do (no hosts
 * enabled) or could not start. */
const struct outbound_env *shim_start(void);

/* True once the shim has decided it will never track anything. */
int shim_disabled(void);

/* Around fork(): a start under way in another thread must not leave its
 * lock held in the child. */
void shim_fork_prepare(void);
void shim_fork_parent(void);
void shim_fork_child(void);

#endif
