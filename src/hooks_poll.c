/* hooks_poll.c - readiness. An fd holding an answer of ours (a 100
 * Continue) is readable, whatever the kernel says; and an application that
 * waits to read, not to write, on an fd where we hold its unfinished request
 * will send no more of it, so we let the request go. */
#include <errno.h>
#include <limits.h>

#include "hooks.h"

static int answers_pending(void)
{
    return __atomic_load_n(&conn_answers_pending, __ATOMIC_ACQUIRE) && !hooks_in_shim;
}

static int holding_pending(void)
{
    return __atomic_load_n(&conn_holding_count, __ATOMIC_ACQUIRE) && !hooks_in_shim;
}

static int timespec_ms(const struct timespec *t)
{
    if (!t)
        return -1;
    long long ms = (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int timeval_ms(const struct timeval *t)
{
    if (!t)
        return -1;
    long long ms = (long long)t->tv_sec * 1000 + t->tv_usec / 1000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* fd waited on for reading only: let go what we hold for it, spending at
 * most the caller's own timeout waiting for the socket. */
static void release_if_waiting(int fd, int wait_ms)
{
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return;
    if (!__atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE))
        hooks_release_held(c, fd, wait_ms);
    conn_release(c);
}

static int polls_for_writing(const struct pollfd *fds, nfds_t n, int fd)
{
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd == fd && (fds[i].events & POLLOUT))
            return 1;
    return 0;
}

/* A zero timeout only asks; it does not wait. An fd may appear more than
 * once: curl lists it for reading and for writing separately. */
static void release_poll_waiters(const struct pollfd *fds, nfds_t n, int wait_ms)
{
    if (wait_ms == 0 || !holding_pending())
        return;
    for (nfds_t i = 0; i < n; i++)
        if ((fds[i].events & POLLIN) && conn_maybe_tracked(fds[i].fd) &&
            !polls_for_writing(fds, n, fds[i].fd))
            release_if_waiting(fds[i].fd, wait_ms);
}

static void release_select_waiters(int nfds, const fd_set *readfds, const fd_set *writefds,
                                   int wait_ms)
{
    if (wait_ms == 0 || !holding_pending() || !readfds)
        return;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
        if (FD_ISSET(fd, readfds) && !(writefds && FD_ISSET(fd, writefds)))
            release_if_waiting(fd, wait_ms);
}

static void release_epoll_waiters(int epfd, int wait_ms)
{
    if (wait_ms == 0 || !holding_pending())
        return;
    struct conn *conns[16];
    int fds[16];
    int n = conn_epoll_waiting(epfd, conns, fds, 16);
    for (int i = 0; i < n; i++) {
        /* The fd it was registered through may have been closed after a
         * dup; the registration lives on through the other fd. */
        int fd = conn_same_socket(conns[i], fds[i]) ? fds[i] : conn_some_fd(conns[i]);
        if (fd >= 0)
            hooks_release_held(conns[i], fd, wait_ms);
        conn_release(conns[i]);
    }
}

/* Whether any fd asked about holds an answer. */
static int poll_has_answers(const struct pollfd *fds, nfds_t n)
{
    if (!answers_pending())
        return 0;
    for (nfds_t i = 0; i < n; i++)
        if ((fds[i].events & POLLIN) && conn_has_answer(fds[i].fd))
            return 1;
    return 0;
}

/* After a zero-timeout real poll: add our answers to what the kernel said. */
static int merge_poll(struct pollfd *fds, nfds_t n, int r)
{
    if (r < 0)
        return r;
    int ready = 0;
    for (nfds_t i = 0; i < n; i++) {
        if ((fds[i].events & POLLIN) && conn_has_answer(fds[i].fd))
            fds[i].revents |= POLLIN;
        ready += fds[i].revents != 0;
    }
    return ready;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    real_ensure();
    release_poll_waiters(fds, n, timeout);
    if (!poll_has_answers(fds, n))
        return real.poll(fds, n, timeout);
    return merge_poll(fds, n, real.poll(fds, n, 0));
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fds_len)
{
    real_ensure();
    if (!real.poll_chk)
        return poll(fds, n, timeout);
    release_poll_waiters(fds, n, timeout);
    if (!poll_has_answers(fds, n))
        return real.poll_chk(fds, n, timeout, fds_len);
    return merge_poll(fds, n, real.poll_chk(fds, n, 0, fds_len));
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask)
{
    real_ensure();
    release_poll_waiters(fds, n, timespec_ms(timeout));
    if (!poll_has_answers(fds, n))
        return real.ppoll(fds, n, timeout, mask);
    struct timespec zero = { 0, 0 };
    return merge_poll(fds, n, real.ppoll(fds, n, &zero, mask));
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                       const sigset_t *mask, size_t fds_len)
{
    real_ensure();
    if (!real.ppoll_chk)
        return ppoll(fds, n, timeout, mask);
    release_poll_waiters(fds, n, timespec_ms(timeout));
    if (!poll_has_answers(fds, n))
        return real.ppoll_chk(fds, n, timeout, mask, fds_len);
    struct timespec zero = { 0, 0 };
    return merge_poll(fds, n, real.ppoll_chk(fds, n, &zero, mask, fds_len));
}

static int select_has_answers(int nfds, fd_set *readfds)
{
    if (!answers_pending() || !readfds)
        return 0;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
        if (FD_ISSET(fd, readfds) && conn_has_answer(fd))
            return 1;
    return 0;
}

static int merge_select(int nfds, fd_set *readfds, const fd_set *wanted, int r)
{
    if (r < 0)
        return r;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
        if (FD_ISSET(fd, wanted) && conn_has_answer(fd) && !FD_ISSET(fd, readfds)) {
            FD_SET(fd, readfds);
            r++;
        }
    return r;
}

EXPORT int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                  struct timeval *timeout)
{
    real_ensure();
    release_select_waiters(nfds, readfds, writefds, timeval_ms(timeout));
    if (!select_has_answers(nfds, readfds))
        return real.select(nfds, readfds, writefds, exceptfds, timeout);
    fd_set wanted = *readfds;
    struct timeval zero = { 0, 0 };
    return merge_select(nfds, readfds, &wanted,
                        real.select(nfds, readfds, writefds, exceptfds, &zero));
}

EXPORT int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                   const struct timespec *timeout, const sigset_t *mask)
{
    real_ensure();
    release_select_waiters(nfds, readfds, writefds, timespec_ms(timeout));
    if (!select_has_answers(nfds, readfds))
        return real.pselect(nfds, readfds, writefds, exceptfds, timeout, mask);
    fd_set wanted = *readfds;
    struct timespec zero = { 0, 0 };
    return merge_select(nfds, readfds, &wanted,
                        real.pselect(nfds, readfds, writefds, exceptfds, &zero, mask));
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    real_ensure();
    int r = real.epoll_ctl(epfd, op, fd, event);
    if (r == 0 && conn_maybe_tracked(fd)) {
        int e = errno;
        conn_epoll_ctl(epfd, op, fd, event);
        errno = e;
    }
    return r;
}

/* Our answers first, then whatever the kernel has ready without waiting. */
static int epoll_with_answers(int epfd, struct epoll_event *events, int max,
                              const sigset_t *mask, int use_pwait)
{
    int n = conn_epoll_answers(epfd, events, max);
    if (n == 0 || n >= max)
        return n;
    int e = errno;
    int r = use_pwait ? real.epoll_pwait(epfd, events + n, max - n, 0, mask)
                      : real.epoll_wait(epfd, events + n, max - n, 0);
    errno = e;
    if (r < 0)
        return n;
    /* An fd both answered and ready: report it once. */
    int total = n;
    for (int i = n; i < n + r; i++) {
        int seen = -1;
        for (int j = 0; j < n; j++)
            if (events[j].data.u64 == events[i].data.u64)
                seen = j;
        if (seen >= 0)
            events[seen].events |= events[i].events;
        else
            events[total++] = events[i];
    }
    return total;
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    real_ensure();
    release_epoll_waiters(epfd, timeout);
    if (answers_pending() && max > 0) {
        int n = epoll_with_answers(epfd, events, max, NULL, 0);
        if (n > 0)
            return n;
    }
    return real.epoll_wait(epfd, events, max, timeout);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout,
                       const sigset_t *mask)
{
    real_ensure();
    release_epoll_waiters(epfd, timeout);
    if (answers_pending() && max > 0) {
        int n = epoll_with_answers(epfd, events, max, mask, 1);
        if (n > 0)
            return n;
    }
    return real.epoll_pwait(epfd, events, max, timeout, mask);
}
