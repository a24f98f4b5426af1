/* late.h - guard mode: answers that arrive after the application gave up.
 *
 * A client that times out closes its connection (or frees its TLS
 * session) while the server may still be working; the answer that comes
 * later is the truth its retry needs. So when the application lets go of a
 * connection that still waits for the answer to a guarded request, the
 * socket is kept open on a private fd number and a background thread
 * (started at the first such connection, ended when none is left) reads
 * the answer and records it, up to RETRYSAFE_LATE_WAIT, while the process
 * lives. The application's fd number is closed as it asked: a reused
 * number never sees these bytes.
 */
#ifndef RETRYSAFE_LATE_H
#define RETRYSAFE_LATE_H

#include <sys/types.h>

#include "conn.h"

/* How the answer is read when the bytes on the socket are not the
 * answer itself (TLS). */
struct late_source {
    /* Up to len plaintext bytes: the count, 0 at the end of the stream,
     * -1 with errno (EAGAIN: nothing yet). */
    ssize_t (*read)(void *arg, void *buf, size_t len);
    /* After the last read: lets go of arg (the deferred SSL_free). */
    void (*finish)(void *arg);
    void *arg;
};

/* A private duplicate of fd for late reading, close-on-exec and numbered
 * high, away from the numbers the application uses; -1 on failure. */
int late_private_fd(int fd);

/* Reads the answers c still waits for from priv (a late_private_fd), in
 * the background; src NULL: the socket's bytes are the answers. Takes
 * priv, and a reference on c, in every case. Returns 0, or -1 when it
 * could not (c's requests are then abandoned: outcome unknown). */
int late_watch(struct conn *c, int priv, const struct late_source *src);

/* The application is closing fd, c's last fd: adopts c when it waits for
 * a guarded answer. Returns 1 when adopted, else 0. */
int late_adopt_socket(struct conn *c, int fd);

/* The socket behind fd (c's) is about to outlive the application's close
 * of fd through a private dup: drops fd's epoll registrations now, and
 * marks c so its close drops any made later. 0 when the socket cannot
 * safely outlive the close (a registration we do not know of). */
int late_may_outlive(struct conn *c, int fd);

void late_fork(enum fork_phase phase);

#endif
