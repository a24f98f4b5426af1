/* hooks.c - the entry points the process calls instead of libc's.
 *
 * Each hook is a few lines: an untracked fd goes straight to the real call
 * (one table load), a tracked one is handed to the connection's outbound
 * stream or answer buffer. No protocol logic lives here. A hook never lets
 * the shim's own errno reach the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "real.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

/* Set while the shim does its own work (logging, loading the secret): the
 * I/O that causes is the shim's, not the application's, and is not tracked. */
static __thread int in_shim __attribute__((tls_model("initial-exec")));

__attribute__((constructor)) static void hooks_load(void)
{
    real_ensure();
}

/* ---- outbound --------------------------------------------------------- */

enum send_kind { SEND_WRITE, SEND_SOCKET };

struct send_call {
    struct conn *c;
    int fd;
    int flags;
    enum send_kind kind;
    int wait_ms;          /* how long to wait for a full socket; -1: no limit */
};

/* close() and shutdown() give a full socket this long to take what we
 * hold before the bytes are lost with the connection. */
#define RELEASE_ON_CLOSE_MS 2000

static ssize_t real_send_iov(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct send_call *s = ctx;
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    if (s->c->fastopen) {
        /* sendto(MSG_FASTOPEN) connected nothing yet: our first send does. */
        m.msg_name = &s->c->fastopen_addr;
        m.msg_namelen = s->c->fastopen_len;
        s->c->fastopen = 0;
        return real.sendmsg(s->fd, &m, s->flags | MSG_FASTOPEN);
    }
    if (s->kind == SEND_WRITE)
        return real.writev(s->fd, iov, iovcnt);
    return real.sendmsg(s->fd, &m, s->flags);
}

static int add_answer(void *ctx, const char *bytes, size_t len)
{
    struct send_call *s = ctx;
    return conn_add_answer(s->c, bytes, len);
}

static int wait_writable(void *ctx)
{
    struct send_call *s = ctx;
    struct pollfd p = { .fd = s->fd, .events = POLLOUT };
    int r;
    do
        r = real.poll(&p, 1, s->wait_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

/* A sendto(MSG_FASTOPEN) whose bytes we held must still connect. */
static int finish_fastopen(struct conn *c, int fd)
{
    if (!c->fastopen)
        return 0;
    c->fastopen = 0;
    if (real.connect(fd, (struct sockaddr *)&c->fastopen_addr, c->fastopen_len) == 0 ||
        errno == EINPROGRESS)
        return 0;
    return -1;
}

static ssize_t send_tracked(struct conn *c, int fd, const struct iovec *iov, int iovcnt,
                            int flags, enum send_kind kind)
{
    int caller_errno = errno;
    in_shim++;
    pthread_mutex_lock(&c->out_lock);
    ssize_t r;
    if (outbound_idle(&c->out) && !conn_same_socket(c, fd)) {
        /* The fd was closed behind our back (fclose, closefrom) and its
         * number reused: not our connection any more. */
        pthread_mutex_unlock(&c->out_lock);
        conn_forget(fd);
        struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
        r = kind == SEND_WRITE ? real.writev(fd, iov, iovcnt) : real.sendmsg(fd, &m, flags);
    } else {
        struct send_call call = { c, fd, flags, kind, -1 };
        struct outbound_io io = { real_send_iov, add_answer, wait_writable, &call };
        r = outbound_write(&c->out, iov, iovcnt, &io);
        if (r >= 0 && finish_fastopen(c, fd) != 0)
            r = -1;
        int e = errno;
        conn_note_holding(c);
        pthread_mutex_unlock(&c->out_lock);
        errno = e;
    }
    caller_errno = r < 0 ? errno : caller_errno;
    in_shim--;
    conn_release(c);
    errno = caller_errno;
    return r;
}

/* The application will send no more of the request we hold (it waits for
 * an answer, or shuts down): let what we hold go, untagged. */
static void release_held(struct conn *c, int fd, int wait_ms)
{
    int e = errno;
    in_shim++;
    pthread_mutex_lock(&c->out_lock);
    if (outbound_holding(&c->out)) {
        struct send_call call = { c, fd, MSG_NOSIGNAL, SEND_SOCKET, wait_ms };
        struct outbound_io io = { real_send_iov, add_answer, wait_writable, &call };
        outbound_release(&c->out, &io);
        conn_note_holding(c);
    }
    pthread_mutex_unlock(&c->out_lock);
    in_shim--;
    errno = e;
}

static int holding_pending(void)
{
    return __atomic_load_n(&conn_holding_count, __ATOMIC_ACQUIRE) && !in_shim;
}

/* An fd the application waits on for reading only. */
static void release_if_waiting(int fd)
{
    if (!conn_maybe_tracked(fd))
        return;
    struct conn *c = conn_acquire(fd);
    if (!c)
        return;
    if (__atomic_load_n(&c->holding, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE))
        release_held(c, fd, -1);
    conn_release(c);
}

/* The connection behind fd, when the caller's bytes are ours to watch. */
static struct conn *tracked(int fd)
{
    if (!conn_maybe_tracked(fd) || in_shim)
        return NULL;
    return conn_acquire(fd);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    real_ensure();
    struct conn *c = tracked(fd);
    if (!c)
        return real.write(fd, buf, n);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, 0, SEND_WRITE);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    real_ensure();
    struct conn *c = tracked(fd);
    if (!c)
        return real.writev(fd, iov, iovcnt);
    return send_tracked(c, fd, iov, iovcnt, 0, SEND_WRITE);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    real_ensure();
    struct conn *c = (flags & MSG_OOB) ? NULL : tracked(fd);
    if (!c)
        return real.send(fd, buf, n, flags);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, flags, SEND_SOCKET);
}

static int trackable(int fd, const struct sockaddr *addr);
static struct conn *track(int fd, const struct sockaddr *addr, socklen_t len);

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                      const struct sockaddr *addr, socklen_t addr_len)
{
    real_ensure();
    struct conn *c = NULL;
    if ((flags & MSG_FASTOPEN) && addr && !conn_maybe_tracked(fd) && !in_shim &&
        trackable(fd, addr)) {
        c = track(fd, addr, addr_len);
        if (c && addr_len <= sizeof(c->fastopen_addr)) {
            memcpy(&c->fastopen_addr, addr, addr_len);
            c->fastopen_len = addr_len;
            c->fastopen = 1;
        }
    } else if (!(flags & MSG_OOB)) {
        c = tracked(fd);
    }
    if (!c)
        return real.sendto(fd, buf, n, flags, addr, addr_len);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, flags & ~MSG_FASTOPEN, SEND_SOCKET);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    real_ensure();
    /* Ancillary data (fd passing) and MSG_OOB stay the application's. */
    struct conn *c = (flags & MSG_OOB) || msg->msg_controllen || msg->msg_name
                         ? NULL : tracked(fd);
    if (!c)
        return real.sendmsg(fd, msg, flags);
    return send_tracked(c, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, SEND_SOCKET);
}

EXPORT int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags)
{
    real_ensure();
    if (!conn_maybe_tracked(fd) || in_shim)
        return real.sendmmsg(fd, msgs, vlen, flags);
    /* On a stream socket the messages are consecutive stream bytes. */
    unsigned int i;
    for (i = 0; i < vlen && i <= INT_MAX; i++) {
        ssize_t r = sendmsg(fd, &msgs[i].msg_hdr, flags);
        if (r < 0)
            return i > 0 ? (int)i : -1;
        msgs[i].msg_len = (unsigned int)r;
        size_t want = 0;
        for (size_t j = 0; j < msgs[i].msg_hdr.msg_iovlen; j++)
            want += msgs[i].msg_hdr.msg_iov[j].iov_len;
        if ((size_t)r < want)
            return (int)i + 1;
    }
    return (int)i;
}

/* ---- inbound: serve synthetic answers before the socket's bytes ------- */

/* Whether a read on fd with flags would wait for the server. */
static int read_blocks(int fd, int flags)
{
    if (flags & MSG_DONTWAIT)
        return 0;
    int fl = real.fcntl(fd, F_GETFL);
    return fl >= 0 && !(fl & O_NONBLOCK);
}

/* Before a read: bytes we answered in the server's place (a 100 Continue)
 * are served first; with none to serve, a blocking reader waits for the
 * server, so a request it left unfinished is let go. Returns the bytes
 * served. */
static ssize_t take_answer(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    int answers = __atomic_load_n(&conn_answers_pending, __ATOMIC_ACQUIRE);
    int holding = __atomic_load_n(&conn_holding_count, __ATOMIC_ACQUIRE);
    if ((!answers && !holding) || in_shim)
        return 0;
    struct conn *c = conn_acquire(fd);
    if (!c)
        return 0;
    size_t n = conn_take_answer(c, iov, iovcnt, flags & MSG_PEEK);
    if (n == 0 && __atomic_load_n(&c->holding, __ATOMIC_ACQUIRE) && read_blocks(fd, flags))
        release_held(c, fd, -1);
    conn_release(c);
    return (ssize_t)n;
}

static ssize_t take_answer1(int fd, void *buf, size_t len, int flags)
{
    struct iovec iov = { buf, len };
    return len ? take_answer(fd, &iov, 1, flags) : 0;
}

EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len, 0);
    return n > 0 ? n : real.read(fd, buf, len);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len < buflen ? len : buflen, 0);
    if (n > 0)
        return n;
    return real.read_chk ? real.read_chk(fd, buf, len, buflen) : real.read(fd, buf, len);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    real_ensure();
    ssize_t n = take_answer(fd, iov, iovcnt, 0);
    return n > 0 ? n : real.readv(fd, iov, iovcnt);
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len, flags);
    return n > 0 ? n : real.recv(fd, buf, len, flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len < buflen ? len : buflen, flags);
    if (n > 0)
        return n;
    return real.recv_chk ? real.recv_chk(fd, buf, len, buflen, flags)
                         : real.recv(fd, buf, len, flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                        struct sockaddr *addr, socklen_t *addr_len)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len, flags);
    if (n > 0) {
        if (addr_len)
            *addr_len = 0;
        return n;
    }
    return real.recvfrom(fd, buf, len, flags, addr, addr_len);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                              struct sockaddr *addr, socklen_t *addr_len)
{
    real_ensure();
    ssize_t n = take_answer1(fd, buf, len < buflen ? len : buflen, flags);
    if (n > 0) {
        if (addr_len)
            *addr_len = 0;
        return n;
    }
    if (real.recvfrom_chk)
        return real.recvfrom_chk(fd, buf, len, buflen, flags, addr, addr_len);
    return real.recvfrom(fd, buf, len, flags, addr, addr_len);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    real_ensure();
    ssize_t n = take_answer(fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
    if (n > 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
        return n;
    }
    return real.recvmsg(fd, msg, flags);
}

/* ---- connections: birth, copies, death ------------------------------- */

static int trackable(int fd, const struct sockaddr *addr)
{
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return 0;
    if (shim_disabled())
        return 0;
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static struct conn *track(int fd, const struct sockaddr *addr, socklen_t len)
{
    in_shim++;
    const struct outbound_env *env = shim_start();
    struct conn *c = env ? conn_track(fd, addr, len, env) : NULL;
    in_shim--;
    return c;
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    real_ensure();
    int r = real.connect(fd, addr, len);
    int e = errno;
    if (in_shim || (r != 0 && e != EINPROGRESS && e != EINTR))
        return r;
    if (trackable(fd, addr))
        conn_release(track(fd, addr, len));
    errno = e;
    return r;
}

/* Forgets fd; when it was the socket's last fd, sends what we hold first. */
static void forget_closing(int fd)
{
    int e = errno;
    struct conn *c = conn_acquire(fd);
    if (conn_forget(fd) && c && !in_shim)
        release_held(c, fd, RELEASE_ON_CLOSE_MS);
    conn_release(c);
    errno = e;
}

EXPORT int close(int fd)
{
    real_ensure();
    /* Forget first: once close returns, the number may name a new socket. */
    if (conn_maybe_tracked(fd))
        forget_closing(fd);
    return real.close(fd);
}

EXPORT int shutdown(int fd, int how)
{
    real_ensure();
    if (how != SHUT_RD && conn_maybe_tracked(fd) && !in_shim) {
        struct conn *c = conn_acquire(fd);
        if (c)
            release_held(c, fd, RELEASE_ON_CLOSE_MS);
        conn_release(c);
    }
    return real.shutdown(fd, how);
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    real_ensure();
    int e = errno;
#ifdef CLOSE_RANGE_CLOEXEC
    if (!(flags & CLOSE_RANGE_CLOEXEC))
#endif
        conn_forget_range(first, last);
    errno = e;
    if (real.close_range)
        return real.close_range(first, last, flags);
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

EXPORT int dup(int fd)
{
    real_ensure();
    int r = real.dup(fd);
    if (r >= 0 && conn_maybe_tracked(fd)) {
        int e = errno;
        conn_dup(fd, r);
        errno = e;
    }
    return r;
}

static int after_dup_to(int oldfd, int newfd, int r)
{
    if (r < 0 || oldfd == newfd)
        return r;
    int e = errno;
    if (conn_maybe_tracked(oldfd) || conn_maybe_tracked(newfd))
        conn_dup(oldfd, newfd);
    errno = e;
    return r;
}

EXPORT int dup2(int oldfd, int newfd)
{
    real_ensure();
    return after_dup_to(oldfd, newfd, real.dup2(oldfd, newfd));
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    real_ensure();
    return after_dup_to(oldfd, newfd, real.dup3(oldfd, newfd, flags));
}

static int fcntl_common(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = fn(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && conn_maybe_tracked(fd)) {
        int e = errno;
        conn_dup(fd, r);
        errno = e;
    }
    return r;
}

/* Every fcntl argument is an int, a long or a pointer; passing on one
 * pointer-sized value is how libc's own wrappers forward it. */
EXPORT int fcntl(int fd, int cmd, ...)
{
    real_ensure();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real.fcntl, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
    real_ensure();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real.fcntl64 ? real.fcntl64 : real.fcntl, fd, cmd, arg);
}

EXPORT pid_t fork(void)
{
    real_ensure();
    if (!conn_table)
        return real.fork();
    conn_fork_prepare();
    pid_t pid = real.fork();
    int e = errno;
    if (pid == 0)
        conn_fork_child();
    else
        conn_fork_parent();
    errno = e;
    return pid;
}

/* ---- readiness: a synthetic answer makes its fd readable -------------- */

static int answers_pending(void)
{
    return __atomic_load_n(&conn_answers_pending, __ATOMIC_ACQUIRE) && !in_shim;
}

/* Marks fds holding answers readable; returns how many it marked. */
static int poll_answers(struct pollfd *fds, nfds_t n)
{
    int marked = 0;
    for (nfds_t i = 0; i < n; i++)
        if ((fds[i].events & POLLIN) && conn_has_answer(fds[i].fd))
            marked++;
    return marked;
}

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

static int polls_for_writing(const struct pollfd *fds, nfds_t n, int fd)
{
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd == fd && (fds[i].events & POLLOUT))
            return 1;
    return 0;
}

/* Waiting to read and not to write: the application expects an answer.
 * (A zero timeout only asks; it does not wait. An fd may appear more than
 * once: curl lists it for reading and for writing separately.) */
static void release_poll_waiters(const struct pollfd *fds, nfds_t n, int waits)
{
    if (!waits || !holding_pending())
        return;
    for (nfds_t i = 0; i < n; i++)
        if ((fds[i].events & POLLIN) && conn_maybe_tracked(fds[i].fd) &&
            !polls_for_writing(fds, n, fds[i].fd))
            release_if_waiting(fds[i].fd);
}

static void release_select_waiters(int nfds, const fd_set *readfds, const fd_set *writefds,
                                   int waits)
{
    if (!waits || !holding_pending() || !readfds)
        return;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
        if (FD_ISSET(fd, readfds) && !(writefds && FD_ISSET(fd, writefds)))
            release_if_waiting(fd);
}

static void release_epoll_waiters(int epfd, int waits)
{
    if (!waits || !holding_pending())
        return;
    struct conn *conns[16];
    int fds[16];
    int n = conn_epoll_waiting(epfd, conns, fds, 16);
    for (int i = 0; i < n; i++) {
        release_held(conns[i], fds[i], -1);
        conn_release(conns[i]);
    }
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    real_ensure();
    release_poll_waiters(fds, n, timeout != 0);
    if (!answers_pending() || !poll_answers(fds, n))
        return real.poll(fds, n, timeout);
    return merge_poll(fds, n, real.poll(fds, n, 0));
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask)
{
    real_ensure();
    release_poll_waiters(fds, n, !timeout || timeout->tv_sec || timeout->tv_nsec);
    if (!answers_pending() || !poll_answers(fds, n))
        return real.ppoll(fds, n, timeout, mask);
    struct timespec zero = { 0, 0 };
    return merge_poll(fds, n, real.ppoll(fds, n, &zero, mask));
}

static int select_answers(int nfds, fd_set *readfds)
{
    int marked = 0;
    for (int fd = 0; readfds && fd < nfds && fd < FD_SETSIZE; fd++)
        if (FD_ISSET(fd, readfds) && conn_has_answer(fd))
            marked++;
    return marked;
}

static int merge_select(int nfds, fd_set *readfds, fd_set *wanted, int r)
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
    release_select_waiters(nfds, readfds, writefds,
                           !timeout || timeout->tv_sec || timeout->tv_usec);
    if (!answers_pending() || !select_answers(nfds, readfds))
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
    release_select_waiters(nfds, readfds, writefds,
                           !timeout || timeout->tv_sec || timeout->tv_nsec);
    if (!answers_pending() || !select_answers(nfds, readfds))
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

/* Answers first, then whatever the kernel has ready without waiting. */
static int epoll_with_answers(int epfd, struct epoll_event *events, int max,
                              int (*wait_now)(int, struct epoll_event *, int, void *),
                              void *arg)
{
    int n = conn_epoll_answers(epfd, events, max);
    if (n == 0 || n >= max)
        return n;
    int r = wait_now(epfd, events + n, max - n, arg);
    if (r < 0)
        return n;
    /* An fd both answered and ready: report it once. */
    int total = n;
    for (int i = n; i < n + r; i++) {
        int dup_of = -1;
        for (int j = 0; j < n; j++)
            if (events[j].data.u64 == events[i].data.u64)
                dup_of = j;
        if (dup_of >= 0)
            events[dup_of].events |= events[i].events;
        else
            events[total++] = events[i];
    }
    return total;
}

static int epoll_wait_now(int epfd, struct epoll_event *events, int max, void *arg)
{
    (void)arg;
    return real.epoll_wait(epfd, events, max, 0);
}

static int epoll_pwait_now(int epfd, struct epoll_event *events, int max, void *arg)
{
    return real.epoll_pwait(epfd, events, max, 0, arg);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    real_ensure();
    release_epoll_waiters(epfd, timeout != 0);
    if (answers_pending() && max > 0) {
        int n = epoll_with_answers(epfd, events, max, epoll_wait_now, NULL);
        if (n > 0)
            return n;
    }
    return real.epoll_wait(epfd, events, max, timeout);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout,
                       const sigset_t *mask)
{
    real_ensure();
    release_epoll_waiters(epfd, timeout != 0);
    if (answers_pending() && max > 0) {
        int n = epoll_with_answers(epfd, events, max, epoll_pwait_now, (void *)mask);
        if (n > 0)
            return n;
    }
    return real.epoll_pwait(epfd, events, max, timeout, mask);
}
