/* conn.h - the table from fd numbers to tracked connections.
 *
 * One entry per fd of a connected AF_INET/AF_INET6 stream socket that the
 * shim watches; dup'ed fds share their connection, as they share the
 * socket. An untracked fd costs one load: conn_maybe_tracked().
 *
 * Lifetime: the table holds a reference for each fd that names a
 * connection; conn_acquire() takes another under the fd's stripe lock, so a
 * connection closed by one thread lives on until another thread that is
 * still using it lets go.
 */
#ifndef RETRYSAFE_CONN_H
#define RETRYSAFE_CONN_H

#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"
#include "http.h"
#include "outbound.h"

#define CONN_EPOLL_SLOTS 2

struct journal_ticket;

struct conn_flight {
    struct journal_ticket *ticket;  /* its journal row (journal_queue.h);
                                       NULL: a request not journaled */
    int64_t start_ms;          /* monotonic */
    int head;                  /* a HEAD request: its answer has no body */
    int capture;               /* guard mode: its answer is kept for replays */
};

struct conn_epoll {
    int epfd;                  /* -1: slot free */
    int fd;                    /* the fd it was registered through */
    struct epoll_event event;
};

struct conn {
    int refs;                  /* atomic */
    int fds;                   /* atomic: table slots naming this connection */
    int holding;               /* atomic: the outbound stream holds bytes */
    int fd_list[4];            /* under in_lock: fds naming it (-1: none) */
    dev_t dev;                 /* which socket: fd numbers get reused */
    ino_t ino;
    int sock_fd;               /* TLS: the socket its records went through
                                  (-1: not seen); dev and ino name it */
    int tls_reset_deferred;    /* atomic: an SSL_set_connect_state put off
                                  (tls_openssl_late.c) */

    pthread_mutex_t out_lock;  /* guards out, fastopen_* */
    struct outbound out;
    struct buf retry_copy;     /* GnuTLS: the data of a send that failed with
                                  E_AGAIN, for a retry made with NULL, 0 */
    int fastopen;              /* first send carries MSG_FASTOPEN and this address */
    struct sockaddr_storage fastopen_addr;
    socklen_t fastopen_len;

    pthread_mutex_t in_lock;   /* guards answer, epoll, flights, res */
    struct buf answer;         /* served to reads before the socket's bytes */
    size_t answer_off;
    int has_answer;            /* atomic: answer holds unread bytes */
    struct conn_epoll epoll[CONN_EPOLL_SLOTS];
    int epoll_unrecorded;      /* a registration did not fit the slots */
    int late_dup;              /* atomic: a private dup keeps the socket open
                                  after the application closes it (late.h) */

    /* Requests waiting for their answers, oldest first (see flight.h). */
    struct conn_flight *flights;
    size_t n_flights, cap_flights;
    int awaiting;              /* atomic: n_flights > 0 */
    struct http_res_parser res;
    int res_done;              /* set by the parser: 0, -1 an interim answer
                                  ended, else the status of a final one */
    struct buf capture;        /* the oldest flight's answer so far */
    int capture_over;          /* it outgrew RETRYSAFE_MAX_RESPONSE */

    struct conn *next_live, *prev_live;  /* under the live-list lock */
};

extern struct conn **conn_table;
extern int conn_table_size;
/* How many connections hold a synthetic answer not read yet. */
extern int conn_answers_pending;
/* How many connections hold bytes the application counts as sent. */
extern int conn_holding_count;
/* The process whose connections the table holds. */
extern pid_t conn_owner_pid;

static inline int conn_maybe_tracked(int fd)
{
    struct conn **table = __atomic_load_n(&conn_table, __ATOMIC_ACQUIRE);
    return table && (unsigned)fd < (unsigned)conn_table_size &&
           __atomic_load_n(&table[fd], __ATOMIC_RELAXED) != NULL;
}

/* Whether fd's slot names c: close() empties it before the real close. */
static inline int conn_slot_is(int fd, const struct conn *c)
{
    struct conn **table = __atomic_load_n(&conn_table, __ATOMIC_ACQUIRE);
    return table && (unsigned)fd < (unsigned)conn_table_size &&
           __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE) == c;
}

/* Creates the table. Returns 0 or -1. */
int conn_table_init(void);

/* A connection not named by any fd (a TLS session is named by its SSL
 * object): one reference, the caller's. NULL when out of memory. */
struct conn *conn_new(const char *peer, const struct outbound_env *env, int tls);

/* Starts tracking fd (replacing whatever stale entry had its number) and
 * returns it acquired, or NULL. */
struct conn *conn_track(int fd, const struct sockaddr *peer, socklen_t peer_len,
                        const struct outbound_env *env);
struct conn *conn_acquire(int fd);
/* Another reference on a connection the caller holds one on. */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);

/* An fd that names c now (-1: none known), to send on when the fd an
 * epoll registration was made through has since been closed. */
int conn_some_fd(struct conn *c);
/* The same, or -1 when c's lock is taken: for the process's last moments,
 * maybe in a signal handler that interrupted this thread holding it. */
int conn_some_fd_now(struct conn *c);
/* Whether this thread holds one of the fd table's locks now (a signal
 * handler that interrupted it there must take none). */
int conn_thread_holds_stripe(void);

/* Whether fd still names the socket c was made for. */
int conn_same_socket(const struct conn *c, int fd);

/* fd was closed: forget it (its connection lives while other fds share it).
 * Returns 1 when fd was the last fd naming its connection. */
int conn_forget(int fd);
/* fd no longer names c's socket: forgotten if its slot still names c
 * (returns 1), as when the fd was closed behind our back. A slot that
 * names something else now (returns 0) was closed through our hooks and
 * maybe taken by another connection since: it is kept. */
int conn_forget_stale(int fd, struct conn *c);

/* Call under out_lock after the outbound stream changed. */
void conn_note_holding(struct conn *c);
/* Fills conns (acquired) with up to max connections that hold bytes the
 * application counts as sent; returns how many. */
int conn_holding_list(struct conn **conns, int max);
/* newfd now names the same socket as oldfd. */
void conn_dup(int oldfd, int newfd);


/* Makes bytes readable as if the server had sent them. */
int conn_add_answer(struct conn *c, const char *bytes, size_t len);
/* Copies pending answer bytes into iov. Returns the count, 0 if none. */
size_t conn_take_answer(struct conn *c, const struct iovec *iov, int iovcnt, int peek);
int conn_has_answer(int fd);

void conn_epoll_ctl(int epfd, int op, int fd, const struct epoll_event *event);
/* fd, naming c, is about to be closed while a private dup keeps its socket
 * open: the registrations of fd in epoll sets, which the kernel would drop
 * only with the socket, are dropped now, so the application never hears
 * of the fd again. Returns -1 when some registration may be unknown to us
 * (then the socket must not outlive the close). */
int conn_epoll_drop_fd(struct conn *c, int fd);
/* fd is being closed: if it is an epoll fd we recorded, its registrations
 * die with it. */
void conn_epoll_closed(int fd);
/* Fills events with EPOLLIN for connections in epfd that hold an answer. */
int conn_epoll_answers(int epfd, struct epoll_event *events, int max);
/* Connections registered in epfd for reading only that hold bytes: the
 * application waits for an answer. Fills conns (acquired) and their fds. */
int conn_epoll_waiting(int epfd, struct conn **conns, int *fds, int max);

/* The phases of fork() for modules with locks of their own: prepare takes
 * the lock, the parent releases it, the child starts it afresh. */
enum fork_phase { FORK_PREPARE, FORK_PARENT, FORK_CHILD };

static inline void fork_lock(pthread_mutex_t *lock, enum fork_phase phase)
{
    if (phase == FORK_PREPARE)
        pthread_mutex_lock(lock);
    else if (phase == FORK_PARENT)
        pthread_mutex_unlock(lock);
    else
        pthread_mutex_init(lock, NULL);
}

/* Around fork(): the child must not inherit locks held by other threads. */
void conn_fork_prepare(void);
void conn_fork_parent(void);
void conn_fork_child(void);

#endif
