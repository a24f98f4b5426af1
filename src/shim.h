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

/* The process's configuration, once started (NULL before). */
const struct config *shim_config(void);

/* The journal for this process (a forked child opens its own), or NULL
 * when it is off or unusable right now: requests then go out tagged and
 * unrecorded. */
struct journal *shim_journal(void);
/* The filter of fingerprints the journal may know (seen_filter.h), once
 * the journal is open; NULL when there is none. */
struct seen_filter *shim_seen_filter(void);
/* Guard mode's claim table beside the journal (claim_table.h); NULL when
 * there is none (then every claim reads the journal). */
struct claim_table *shim_claim_table(void);
/* Guard mode: maps the filter and the claim table again if the files at
 * their paths are no longer the mapped ones (deleted, replaced): claims
 * must meet the other processes' in the same files. */
void shim_check_shared_files(void);
/* The journal if this process has it open already; never opens one. */
struct journal *shim_journal_if_open(void);
/* A journal call failed: warn once; the request goes on regardless. */
void shim_journal_trouble(const char *why);

/* Starts a detached thread of the shim's own (the late reader, the journal
 * writer) with every signal blocked: signals are the application's
 * threads' business. Returns 0 or -1. */
int shim_start_thread(void *(*fn)(void *), void *arg);

/* The program's name, for the journal. */
const char *shim_exe_name(void);

/* True once the shim has decided it will never track anything. */
int shim_disabled(void);

/* Around fork(): a start under way in another thread must not leave its
 * lock held in the child. */
void shim_fork_prepare(void);
void shim_fork_parent(void);
void shim_fork_child(void);

#endif
