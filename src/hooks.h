/* hooks.h - what the hook files share. Only the shim includes this.
 *
 * The hooks are split by what they stand in front of: hooks_send.c (the
 * write family), hooks_recv.c (the read family), hooks_fd.c (connect,
 * close, dup, fork: a connection's lifetime), hooks_poll.c (poll,
 * select, epoll: readiness) and hooks_exec.c (exec: the queue is written
 * before the image goes). Each hook is a few lines: an untracked fd goes
 * straight to the real call, a tracked one to its connection.
 */
#ifndef RETRYSAFE_HOOKS_H
#define RETRYSAFE_HOOKS_H

#include <sys/socket.h>

#include "conn.h"
#include "real.h"

#define EXPORT __attribute__((visibility("default")))

/* Set while the shim does its own work (logging, loading the secret): the
 * I/O that causes is the shim's, not the application's, and is not tracked. */
extern __thread int hooks_in_shim __attribute__((tls_model("initial-exec")));

/* close() and shutdown() give a full socket this long to take what we
 * hold before the bytes would be lost with the connection. */
#define HOOKS_RELEASE_ON_CLOSE_MS 2000

/* Set while SSL_write runs on a TLS connection: the socket its records go
 * through is learnt on the way (curl's own BIO hides it from SSL_get_fd). */
extern __thread struct conn *hooks_tls_writer __attribute__((tls_model("initial-exec")));
void hooks_note_tls_socket(int fd);

/* The connection behind fd, acquired, when the caller's bytes on it are
 * ours to watch; NULL otherwise. */
static inline struct conn *hooks_tracked(int fd)
{
    if (!conn_maybe_tracked(fd))
        return NULL;
    if (hooks_in_shim) {
        if (hooks_tls_writer)
            hooks_note_tls_socket(fd);
        return NULL;
    }
    return conn_acquire(fd);
}

/* Whether this process owns the table: not a vfork()ed child running in its
 * parent's memory (Python's subprocess closes every inherited fd that way). */
int hooks_table_is_ours(void);

/* The application will send no more of the request held on c (it waits
 * for an answer, shuts down or closes): what is held goes out, untagged,
 * waiting for the socket at most wait_ms in all (-1: as long as it takes).
 * Skipped when another thread is sending on c right now. */
void hooks_release_held(struct conn *c, int fd, int wait_ms);

/* The process is ending with sockets still open (exit() or _exit()
 * without close): the kernel closes them, and what is held on them would
 * go with them. It goes out first, as at close(); TLS sessions are left
 * alone (their bytes need the library's own write). */
void hooks_release_all_held(void);

/* Bytes are about to reach the socket behind our back (sendfile, MSG_OOB,
 * ancillary data): what is held goes first, then the connection passes
 * through for good, since its stream is no longer ours to follow. Returns
 * -1 (EAGAIN) when what is held could not go first: the bypassing call
 * must not overtake it. */
int hooks_bypass(int fd);

/* fd is about to be closed, explicitly or by dup2/close_range: forget it,
 * and when it was the socket's last fd, send what is held first. */
void hooks_forget_closing(int fd);

/* Starts tracking a connected (or TCP Fast Open) socket; NULL if not ours. */
int hooks_trackable(int fd, const struct sockaddr *addr);
struct conn *hooks_track(int fd, const struct sockaddr *addr, socklen_t len);

#endif
